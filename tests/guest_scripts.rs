//! The guest build scripts' options for a user's own kernel options, tests and files
//! (docs/linux.md, "Your own driver"): what they refuse, before any build starts, and that
//! every shell script that goes into the initramfs parses.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Runs `guest/SCRIPT ARGS` and returns (succeeded, stderr).
fn script(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/guest/{name}"))
        .args(args)
        .env("MMIOLAB_CACHE", scratch("cache"))
        .output()
        .expect("running bash");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmiolab-guest-scripts-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a scratch file");
    path.to_string_lossy().into_owned()
}

fn refused(name: &str, args: &[&str], why: &str) {
    let (ok, stderr) = script(name, args);
    assert!(!ok, "{name} {args:?} was accepted");
    assert!(stderr.contains(why), "{name} {args:?}: want `{why}` in: {stderr}");
}

#[test]
fn initramfs_build_refuses_bad_tests_and_files() {
    let dir = scratch("initramfs");
    let txt = file(&dir, "check.txt", "exit 0\n");
    let clash = file(&dir, "gpio_mmio.sh", "exit 0\n");
    let ko = file(&dir, "mydrv.ko", "not really a module\n");
    let build = "initramfs/build.sh";
    refused(build, &["--test", &txt], "ends in .sh");
    refused(build, &["--test", "/no/such/test.sh"], "not a regular file");
    refused(
        build,
        &["--test", &clash],
        "a test named gpio_mmio is already in the initramfs",
    );
    refused(build, &["--test"], "--test needs a script");
    refused(build, &["--file", &ko], "want SRC:DST with an absolute DST");
    refused(
        build,
        &["--file", &format!("{ko}:lib/mydrv.ko")],
        "want SRC:DST with an absolute DST",
    );
    refused(build, &["--file", "/no/such.ko:/lib/x.ko"], "is not a regular file");
    refused(
        build,
        &["--file", &format!("{ko}:/init")],
        "belongs to the bundled initramfs",
    );
    refused(
        build,
        &["--file", &format!("{ko}:/tests/x.sh")],
        "belongs to the bundled initramfs",
    );
    refused(build, &["--file", &format!("{ko}:/lib/../init")], "plain absolute path");
    refused(build, &["--bogus"], "unknown argument");
}

#[test]
fn kernel_build_refuses_bad_fragments_before_building() {
    let dir = scratch("kernel");
    let bad = file(&dir, "bad.fragment", "CONFIG_GPIOLIB=y\n\nnot a config line\n");
    refused(
        "kernel/build.sh",
        &["--fragment", &bad],
        "bad.fragment:3: unsupported line 'not a config line'",
    );
    refused(
        "kernel/build.sh",
        &["--fragment", "/no/such.fragment"],
        "not a regular file",
    );
    refused("kernel/build.sh", &["--fragment"], "--fragment needs a file");
}

#[test]
fn every_initramfs_script_parses() {
    let mut scripts: Vec<PathBuf> = ["init", "user-init", "ktap.sh"]
        .iter()
        .map(|f| PathBuf::from(format!("{ROOT}/guest/initramfs/{f}")))
        .collect();
    for entry in std::fs::read_dir(format!("{ROOT}/guest/initramfs/tests")).expect("reading the script tests") {
        scripts.push(entry.expect("reading the script tests").path());
    }
    assert!(scripts.len() >= 6, "{scripts:?}");
    // busybox sh is what runs them in the guest; a POSIX sh checks the same syntax.
    let (program, check): (&str, &[&str]) = if Path::new("/bin/busybox").exists() {
        ("/bin/busybox", &["sh", "-n"])
    } else {
        ("sh", &["-n"])
    };
    for s in scripts {
        let mut cmd = Command::new(program);
        cmd.args(check).arg(&s);
        let out = cmd.output().expect("running sh -n");
        assert!(
            out.status.success(),
            "{}: {}",
            s.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
