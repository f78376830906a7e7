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

/// A stand-in for `mmiolab run` (`--vmm`), so run-machine.sh's direct path runs without a
/// VM: it records each call's arguments in $CALLS; a boot to `--snapshot-after
/// console:KTAP` prints up to the marker; a restore goes on with the rest of that line and
/// one KTAP result, which passes (status 0) from attempt $PASS_ON on (never when 0).
const STAND_IN: &str = r#"#!/bin/bash
echo "$*" >>"$CALLS"
case " $* " in
*" --snapshot-after console:KTAP "*) printf 'mmiolab: /init started\nKTAP'; exit 0 ;;
*" --restore "*)
	attempt=$(($(wc -l <"$CALLS") - 1))
	if [ "$PASS_ON" -ne 0 ] && [ "$attempt" -ge "$PASS_ON" ]; then
		printf ' version 1\n1..1\nok 1 a\n'; exit 0
	fi
	printf ' version 1\n1..1\nnot ok 1 a\n'; exit 1 ;;
esac
exit 9
"#;

/// docs/snapshot.md: run-machine.sh --snapshot-at TEXT --retries N, directly: one boot to
/// the marker, then restores of the same snapshot while they fail, at most N + 1, each
/// after its `mmiolab: restoring` line; the exit status is the last attempt's; and
/// `mmiolab test --from-log` of that log judges the last attempt, naming the failed ones.
#[test]
fn run_machine_retries_restores_directly_and_mmiolab_test_judges_the_last() {
    let dir = scratch("retries");
    let vmm = file(&dir, "vmm", STAND_IN);
    std::fs::set_permissions(&vmm, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let kernel = file(&dir, "bzImage", "");
    let initrd = file(&dir, "initramfs.cpio", "");
    let config = format!("{ROOT}/tests/machines/described.toml");
    let restore =
        |k: u32, of: u32| format!("mmiolab: restoring the snapshot taken at console:KTAP (attempt {k} of {of})\n");
    for (retries, pass_on, status, attempts) in [(2, 2, 0, 2), (1, 0, 1, 2), (0, 1, 0, 1)] {
        let calls = dir.join(format!("calls-{retries}-{pass_on}"));
        let log = dir.join(format!("log-{retries}-{pass_on}"));
        let out = Command::new("bash")
            .arg(format!("{ROOT}/guest/run-machine.sh"))
            .args(["--vmm", &vmm, "--config", &config, "--nested", "never"])
            .args(["--kernel", &kernel, "--initrd", &initrd, "--snapshot-at", "KTAP"])
            .args(["--retries", &retries.to_string()])
            .arg("--out")
            .arg(&dir)
            .arg("--log")
            .arg(&log)
            .env("CALLS", &calls)
            .env("PASS_ON", pass_on.to_string())
            .output()
            .expect("running bash");
        let what = format!("--retries {retries}, passing from attempt {pass_on}");
        assert_eq!(
            out.status.code(),
            Some(status),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let calls = std::fs::read_to_string(&calls).unwrap();
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(calls.len(), 1 + attempts, "{what}: {calls:?}");
        let snapshot = format!("{}/snapshot", dir.display());
        assert!(
            calls[0].contains(&format!("--snapshot-after console:KTAP --snapshot-dir {snapshot}")),
            "{what}: {calls:?}"
        );
        assert!(
            calls[1..].iter().all(|c| c.ends_with(&format!("--restore {snapshot}"))),
            "{what}: {calls:?}"
        );
        let mut want = "mmiolab: /init started\nKTAP".to_owned();
        for k in 1..=attempts {
            want.push_str(&restore(k as u32, retries + 1));
            let passes = pass_on != 0 && k >= pass_on;
            want.push_str(if passes {
                " version 1\n1..1\nok 1 a\n"
            } else {
                " version 1\n1..1\nnot ok 1 a\n"
            });
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap(), want, "{what}");
        if (retries, pass_on) != (2, 2) {
            continue;
        }
        let judged = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
            .args(["test", "--config", &config, "--from-log"])
            .arg(&log)
            .output()
            .expect("running mmiolab test");
        let stdout = String::from_utf8_lossy(&judged.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("mmiolab test: attempt 1 of 2 failed (failed: a); retried from the snapshot"),
            "{stdout}"
        );
        assert_eq!(lines.get(1).copied(), Some("PASS a"), "{stdout}");
    }
}
