//! Tells the tests whether `dtc` is installed: the device-tree tests compile mmiolab's
//! output with it when it is, and are reported as ignored (not passed) when it is not.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dtc_installed)");
    let found = std::process::Command::new("dtc")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        println!("cargo::rustc-cfg=dtc_installed");
    }
    // Look again when PATH changes, not on every build (that would rebuild the crate every
    // time). dtc installed into an unchanged PATH is seen after `touch crates/vmm/build.rs`.
    println!("cargo::rerun-if-env-changed=PATH");
}
