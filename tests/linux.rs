//! The Linux tier: builds the guest kernel and test initramfs (cached), boots them under
//! mmiolab (directly on hardware KVM, else nested inside QEMU TCG, as
//! guest/run-tests.sh decides and prints), and requires every guest driver test and the
//! host-side /proc/iomem-vs-tree check to pass.

use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Tests the guest init runs (guest/initramfs/init), and the host's own check.
const EXPECTED: [&str; 6] = [
    "PASS mmio_fixed",
    "PASS platform_dt",
    "PASS pio_ports",
    "PASS platform_pio",
    "PASS devmem",
    "PASS host: guest resources match mmiolab tree",
];

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(
        &args,
        vec![Trial::test(
            "linux_guest_driver_tests_pass",
            linux_guest_driver_tests_pass,
        )],
    )
    .exit();
}

fn linux_guest_driver_tests_pass() -> Result<(), Failed> {
    let junit = format!("{ROOT}/target/guest/junit.xml");
    let out = Command::new("bash")
        .arg(format!("{ROOT}/guest/run-tests.sh"))
        .args(["--vmm", env!("CARGO_BIN_EXE_mmiolab"), "--junit", &junit])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Progress (kernel build, direct or nested and why) is on stderr: show it.
    eprintln!("{stderr}");
    println!("{stdout}");
    if !out.status.success() {
        return Err(format!("guest/run-tests.sh failed ({})", out.status).into());
    }
    for want in EXPECTED {
        if !stdout.lines().any(|l| l == want) {
            return Err(format!("missing `{want}` in the results").into());
        }
    }
    let xml = std::fs::read_to_string(&junit)?;
    if !xml.contains("failures=\"0\"") {
        return Err("the JUnit report records failures".into());
    }
    Ok(())
}
