//! The Linux tier: builds the guest kernel and test initramfs (cached), boots them under
//! mmiolab (directly on hardware KVM, else nested inside QEMU TCG, as guest/run-machine.sh
//! decides and prints), and requires every guest driver test and the host-side
//! /proc/iomem-vs-tree check to pass, and a guest panic to end the VM with status 2; and a
//! guest booted once, saved before its first test and restored, to pass the driver tests.

use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "support/jenkins_schema.rs"]
mod jenkins_schema;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Tests the guest init runs (guest/initramfs/init), and the host's own checks (`host: `,
/// `register-check`).
const EXPECTED: [&str; 45] = [
    // the bundled KUnit suite (guest/drivers/mmiolab_kunit_demo.c), loaded first
    "PASS mmiolab_demo",
    "PASS mmio_fixed",
    "PASS short",
    "PASS silly",
    "PASS platform_dt",
    "PASS pio_ports",
    "PASS platform_pio",
    "PASS described_demo",
    "PASS io_accessors",
    "PASS io_rep_fifo",
    "PASS io_ram_windows",
    "PASS io_port_paths",
    "PASS io_write_order",
    "PASS io_bigendian",
    "PASS devmem",
    // the script tests, in name order
    "PASS devmem_poke",
    "PASS gpio_mmio",
    "PASS parport_pc",
    "PASS serial_8250",
    // the checker's guest agent (docs/checker.md): a clean driver and two that break its
    // rules on purpose, each with exactly the findings it announces
    "PASS agent_clean",
    "PASS agent_unclaimed",
    "PASS agent_leak",
    // the register checker's rules, each broken on purpose by one module
    "PASS rule_read_only",
    "PASS rule_write_only",
    "PASS rule_write_once",
    "PASS rule_width",
    "PASS rule_fifo_empty",
    "PASS rule_fifo_full",
    "PASS rule_order",
    "PASS rule_irq_stuck",
    "PASS host: guest resources match mmiolab tree",
    "PASS host: trace order of io_write_order",
    "PASS register-check",
    "PASS host: findings of agent_clean",
    "PASS host: findings of agent_unclaimed",
    "PASS host: findings of agent_leak",
    "PASS host: findings of devmem_poke",
    "PASS host: findings of rule_read_only",
    "PASS host: findings of rule_write_only",
    "PASS host: findings of rule_write_once",
    "PASS host: findings of rule_width",
    "PASS host: findings of rule_fifo_empty",
    "PASS host: findings of rule_fifo_full",
    "PASS host: findings of rule_order",
    "PASS host: findings of rule_irq_stuck",
];

/// Claims the guest's resource dumps must show (while the test module that makes each is
/// loaded), in the names the host's tree gives the devices; `mmiolab test` checks every
/// line that names a device, this that the new devices' claims are among them.
const CLAIMS: [&str; 8] = [
    "0378-037f : short",
    "000a0000-000effff : isa_hole",
    "d0020000-d0021fff : d0020000.apidev apidev@d0020000",
    "0180-01bf : d0020000.apidev",
    "d0030000-d0030fff : d0030000.bedev",
    // Linux's own drivers: gpio-mmio by reg-names, the 8250 driver on legacy COM2 and on
    // of_serial's node (both under the name of the machine file's `serial` window)
    "d0040000-d0040003 : d0040000.gpio dat",
    "02f8-02ff : serial",
    "d0041000-d004101f : serial",
];

fn main() {
    let mut args = Arguments::from_args();
    // Each trial is a whole (possibly nested) VM: on a small machine, one at a time.
    args.test_threads = Some(1);
    libtest_mimic::run(
        &args,
        vec![
            Trial::test("linux_guest_driver_tests_pass", linux_guest_driver_tests_pass),
            Trial::test(
                "linux_guest_power_off_ends_the_vm_with_status_0",
                linux_guest_power_off_ends_the_vm_with_status_0,
            ),
            Trial::test(
                "linux_guest_panic_ends_the_vm_with_status_2",
                linux_guest_panic_ends_the_vm_with_status_2,
            ),
            Trial::test(
                "linux_guest_restored_from_a_snapshot_passes_the_driver_tests",
                linux_guest_restored_from_a_snapshot_passes_the_driver_tests,
            ),
            Trial::test(
                "mmiolab_test_retries_a_failed_run_from_one_boot",
                mmiolab_test_retries_a_failed_run_from_one_boot,
            ),
            Trial::test(
                "examples_demo_driver_runs_as_its_readme_says",
                examples_demo_driver_runs_as_its_readme_says,
            ),
        ],
    )
    .exit();
}

/// Whether `console` holds the KTAP result line of mmio_fixed (its number follows the
/// KUnit suites).
fn ran_mmio_fixed(console: &str) -> bool {
    console.lines().any(|l| {
        let l = l.trim_end();
        l.ends_with(" mmio_fixed") && l.contains("ok ")
    })
}

/// How many of [`EXPECTED`] the guest's /init counts in its summary line (the rest are the
/// host's own checks).
fn guest_test_count() -> usize {
    EXPECTED
        .iter()
        .filter(|e| !e.starts_with("PASS host: ") && **e != "PASS register-check")
        .count()
}

/// Runs a guest/ script with the mmiolab under test; shows its progress (kernel build,
/// direct or nested and why), which it prints on stderr.
fn script(name: &str, args: &[&str]) -> Result<Output, Failed> {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/guest/{name}"))
        .args(["--vmm", env!("CARGO_BIN_EXE_mmiolab")])
        .args(args)
        .output()?;
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(out)
}

fn linux_guest_driver_tests_pass() -> Result<(), Failed> {
    let junit = format!("{ROOT}/target/guest/junit.xml");
    let out = script("run-tests.sh", &["--junit", &junit])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    if !out.status.success() {
        return Err(format!("guest/run-tests.sh failed ({})", out.status).into());
    }
    for want in EXPECTED {
        if !stdout.lines().any(|l| l == want) {
            return Err(format!("missing `{want}` in the results").into());
        }
    }
    // Each KUnit case and parameter is reported, nested under its suite.
    for want in [
        "    PASS demo_por_reads_one_once_after_reset",
        "        PASS 9 words (one word too many)",
    ] {
        if !stdout.lines().any(|l| l == want) {
            return Err(format!("missing the KUnit case `{want}` in the results").into());
        }
    }
    let xml = std::fs::read_to_string(&junit)?;
    if !xml.contains("failures=\"0\"") {
        return Err("the JUnit report records failures".into());
    }
    // the report of a real run is valid against the schema of the JUnit format
    // (tests/junit_schema.rs validates one with failures)
    match jenkins_schema::missing() {
        None => {
            let (valid, said) = jenkins_schema::validate(junit.as_ref())?;
            if !valid {
                return Err(format!("the JUnit report is not valid against the Jenkins schema:\n{said}").into());
            }
        }
        Some(reason) if std::env::var_os("CI").is_some() => return Err(format!("on CI: {reason}").into()),
        Some(reason) => eprintln!("the JUnit report is not validated against the Jenkins schema: {reason}"),
    }
    // The checker's report: the findings of the checker's own tests (agent_*, rule_*,
    // devmem_poke) are exactly those they make on purpose, each with its test and the RIP
    // of the code that made it (the module's, or the kernel's ioread32 for the access whose
    // module was found on the guest stack; user space's for the /dev/mem poke; none for a
    // stuck interrupt, which the VMM thread sees); every other finding is allowed by the
    // machine file, with the reason given there.
    let report = std::fs::read_to_string(format!("{ROOT}/target/guest/default-findings.json"))?;
    let report: serde_json::Value = serde_json::from_str(&report)?;
    let mut on_purpose = Vec::new();
    for f in report["findings"].as_array().ok_or("no findings array")? {
        let rule = f["rule"].as_str().unwrap_or_default();
        let test = f["test"].as_str().unwrap_or_default();
        let module = f["module"].as_str();
        let checker_test = ["agent_", "rule_", "devmem_poke"].iter().any(|p| test.starts_with(p));
        if !checker_test {
            if f["allowed"] != true {
                return Err(format!("a finding the machine file does not allow: {f}").into());
            }
            continue;
        }
        let rip = f["rip"].as_str().unwrap_or_default();
        let rip_ok = match (rule, module) {
            ("irq-stuck", Some(m)) => m == test && f["rip"].is_null(),
            ("devmem-poke", None) => rip.starts_with("0x") && !rip.starts_with("0xffff"),
            (_, Some(m)) => m == test && rip.starts_with("0xffff"),
            _ => false,
        };
        if !rip_ok {
            return Err(format!("a finding of test {test} without its module or RIP: {f}").into());
        }
        on_purpose.push(format!(
            "{} {} {} {}",
            test,
            rule,
            f["device"].as_str().unwrap_or_default(),
            f["register"].as_str().unwrap_or("-")
        ));
    }
    on_purpose.sort();
    let want = [
        "agent_leak leaked-claim apidev -",
        "agent_leak leaked-mapping apidev -",
        "agent_unclaimed unclaimed-access apidev ID",
        "agent_unclaimed unclaimed-access apidev SCRATCH",
        "devmem_poke devmem-poke isa_hole -",
        "rule_fifo_empty read-empty-fifo apidev SDATA",
        "rule_fifo_full write-full-fifo apidev SDATA",
        "rule_irq_stuck irq-stuck apidev -",
        "rule_order order apidev KICK",
        "rule_read_only write-read-only apidev ID",
        "rule_width bad-width apidev CFG32",
        "rule_write_once write-once-again apidev ONCE",
        "rule_write_only read-write-only apidev RAISE",
    ];
    if on_purpose != want {
        return Err(format!("the findings of the checker's tests: {on_purpose:#?}, expected {want:#?}").into());
    }
    rule_tests_coverage()?;
    let console = std::fs::read_to_string(format!("{ROOT}/target/guest/default-console.log"))?;
    for claim in CLAIMS {
        if !console.lines().any(|l| l.trim_end_matches('\r').ends_with(claim)) {
            return Err(format!("no resource dump shows `{claim}`").into());
        }
    }
    Ok(())
}

/// `mmiolab coverage` of the run's trace, which holds the registers the checker's rule
/// tests use (guest/run-tests.sh's default `--trace-filter`): per test, their reads and
/// writes and the behaviours they fired are exactly what the drivers (guest/drivers/rule_*.c)
/// did.
fn rule_tests_coverage() -> Result<(), Failed> {
    let json = format!("{ROOT}/target/guest/default-coverage.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args([
            "coverage",
            "--trace",
            &format!("{ROOT}/target/guest/default-trace.jsonl"),
        ])
        .args([
            "--config",
            &format!("{ROOT}/guest/machines/default.toml"),
            "--json",
            &json,
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("mmiolab coverage failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let apidev = |test: &str| {
        doc["tests"]
            .as_array()
            .and_then(|tests| tests.iter().find(|t| t["test"] == test))
            .and_then(|t| t["devices"].as_array())
            .and_then(|d| d.iter().find(|d| d["device"] == "apidev"))
            .cloned()
            .unwrap_or_default()
    };
    // (test, register, reads, writes): a write CFG32 refuses for its width reaches nothing
    let registers = [
        ("rule_width", "CFG32", 1, 0),
        ("rule_fifo_empty", "SDATA", 1, 0),
        ("rule_fifo_full", "SDATA", 2, 3),
        ("rule_write_once", "ONCE", 0, 2),
        ("rule_order", "GATE", 0, 2),
        ("rule_order", "KICK", 0, 2),
        ("rule_irq_stuck", "IRQ", 0, 2),
        ("rule_irq_stuck", "IRQSET", 0, 1),
    ];
    for (test, name, reads, writes) in registers {
        let dev = apidev(test);
        let reg = dev["registers"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .ok_or_else(|| format!("no coverage of apidev.{name} in test {test}: {dev}"))?;
        if (reg["reads"].as_u64(), reg["writes"].as_u64()) != (Some(reads), Some(writes)) {
            return Err(format!("test {test}: apidev.{name} {reg}, expected {reads} reads, {writes} writes").into());
        }
    }
    // (test, behaviour, times fired)
    let behaviours = [
        ("rule_fifo_empty", "fifo sq underflow", 1),
        ("rule_fifo_full", "fifo sq full", 1),
        ("rule_fifo_full", "fifo sq overflow", 1),
        ("rule_irq_stuck", "effect irqset", 1),
        ("rule_irq_stuck", "irq pend raised", 1),
        ("rule_irq_stuck", "w1c IRQ.PEND", 1),
        ("rule_irq_stuck", "irq pend lowered", 1),
    ];
    for (test, what, fired) in behaviours {
        let dev = apidev(test);
        let got = dev["behaviours"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["what"] == what))
            .and_then(|b| b["fired"].as_u64());
        if got != Some(fired) {
            return Err(format!("test {test}: `{what}` fired {got:?} times, expected {fired}").into());
        }
    }
    Ok(())
}

fn linux_guest_panic_ends_the_vm_with_status_2() -> Result<(), Failed> {
    let log = format!("{ROOT}/target/guest/panic-console.log");
    let out = script(
        "run-machine.sh",
        &[
            "--config",
            &format!("{ROOT}/guest/machines/panic.toml"),
            "--log",
            &log,
            "--timeout",
            "300",
        ],
    )?;
    let console = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(2) {
        return Err(format!(
            "expected exit status 2 (guest panic), got {:?}\n{console}",
            out.status.code()
        )
        .into());
    }
    for want in [
        "Kernel panic - not syncing: Requested init /does-not-exist failed",
        "guest kernel panicked (pvpanic)",
    ] {
        if !console.contains(want) {
            return Err(format!("the console lacks `{want}`:\n{console}").into());
        }
    }
    Ok(())
}

fn linux_guest_power_off_ends_the_vm_with_status_0() -> Result<(), Failed> {
    // The default machine, told to end with `poweroff -f` instead of the exit port.
    let dir = format!("{ROOT}/target/guest");
    std::fs::create_dir_all(&dir)?;
    let default = std::fs::read_to_string(format!("{ROOT}/guest/machines/default.toml"))?;
    let mut machine = String::new();
    for line in default.lines() {
        let line = match line.split_once(" = ") {
            Some(("kernel", _)) => format!("kernel = \"{dir}/bzImage\""),
            Some(("initrd", _)) => format!("initrd = \"{dir}/initramfs.cpio\""),
            // Description files are relative to the machine file, which moves.
            Some(("description", value)) => {
                format!("description = \"{ROOT}/guest/machines/{}\"", value.trim_matches('"'))
            }
            Some(("cmdline", value)) => format!("cmdline = \"{} mmiolab.end=poweroff\"", value.trim_matches('"')),
            _ => line.to_owned(),
        };
        machine.push_str(&line);
        machine.push('\n');
    }
    let config = format!("{dir}/poweroff.toml");
    std::fs::write(&config, machine)?;
    let log = format!("{dir}/poweroff-console.log");
    let out = script(
        "run-machine.sh",
        &["--config", &config, "--log", &log, "--timeout", "300"],
    )?;
    let console = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(0) {
        return Err(format!(
            "expected exit status 0 (power-off), got {:?}\n{console}",
            out.status.code()
        )
        .into());
    }
    // Every guest test passed: all of EXPECTED but the host's own checks.
    let passed = format!("mmiolab: {} passed, 0 failed", guest_test_count());
    for want in [
        passed.as_str(),
        "mmiolab: powering off",
        "guest powered the machine off",
    ] {
        if !console.contains(want) {
            return Err(format!("the console lacks `{want}`:\n{console}").into());
        }
    }
    Ok(())
}

/// docs/snapshot.md: the default machine booted to the first "KTAP" its /init prints (after
/// the guest agent loads, before the first test module), saved, and run to its end from a
/// restore of that snapshot in a new mmiolab process: every guest test passes and the guest's
/// status reaches the host through the test-exit port.
fn linux_guest_restored_from_a_snapshot_passes_the_driver_tests() -> Result<(), Failed> {
    let dir = format!("{ROOT}/target/guest");
    std::fs::create_dir_all(&dir)?;
    let log = format!("{dir}/snapshot-console.log");
    let out = script(
        "run-machine.sh",
        &["--snapshot-at", "KTAP", "--log", &log, "--timeout", "300"],
    )?;
    // The console is on stdout, directly and nested; the harness's line before the restore
    // too (mmiolab's own summaries are on stderr directly, on the console nested).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(0) {
        return Err(format!("expected exit status 0, got {:?}\n{stdout}{stderr}", out.status.code()).into());
    }
    let restore = "mmiolab: restoring the snapshot taken at console:KTAP (attempt 1 of 1)";
    let at = stdout
        .find(restore)
        .ok_or_else(|| format!("no restore (`{restore}`):\n{stdout}{stderr}"))?;
    if stdout.matches("mmiolab: restoring the snapshot").count() != 1 {
        return Err(format!("one restore expected:\n{stdout}").into());
    }
    let (before, after) = stdout.split_at(at);
    if !format!("{before}{stderr}").contains("stopped for a snapshot at the console printed `KTAP`") {
        return Err(format!("no snapshot was taken before the restore:\n{stdout}{stderr}").into());
    }
    let passed = format!("mmiolab: {} passed, 0 failed", guest_test_count());
    // The tests ran after the restore, and only there.
    if !after.contains(&passed) {
        return Err(format!("after the restore, the output lacks `{passed}`:\n{stdout}").into());
    }
    let exited = "guest wrote 0x0 to the test-exit port";
    if !format!("{after}{stderr}").contains(exited) {
        return Err(format!("the restored run did not end with `{exited}`:\n{stdout}{stderr}").into());
    }
    if !ran_mmio_fixed(after) {
        return Err(format!("after the restore, no result line of mmio_fixed:\n{stdout}").into());
    }
    if ran_mmio_fixed(before) {
        return Err(format!("the tests ran before the snapshot:\n{stdout}").into());
    }
    Ok(())
}

/// docs/snapshot.md: `mmiolab test --snapshot-at KTAP --retries 1` on a guest whose one
/// script test always fails boots once, runs the test from a restore, and again from a
/// second restore of the same snapshot; it reports both attempts and fails.
fn mmiolab_test_retries_a_failed_run_from_one_boot() -> Result<(), Failed> {
    let dir = format!("{ROOT}/target/guest/retry");
    std::fs::create_dir_all(&dir)?;
    let test = format!("{dir}/always_fails.sh");
    std::fs::write(&test, "#!/bin/sh\necho \"always fails\"\nexit 1\n")?;
    let initrd = format!("{dir}/initramfs.cpio");
    let mmiolab = env!("CARGO_BIN_EXE_mmiolab");
    let built = Command::new(mmiolab)
        .args(["guest", "initramfs", "--script", &test, "-o", &initrd])
        .output()?;
    if !built.status.success() {
        return Err(format!("mmiolab guest initramfs: {}", String::from_utf8_lossy(&built.stderr)).into());
    }
    // The kernel the other trials build (cached).
    let kernel = format!("{ROOT}/target/guest/bzImage");
    if !std::path::Path::new(&kernel).is_file() {
        script("run-machine.sh", &["--timeout", "300"])?;
    }
    let out = Command::new(mmiolab)
        .args(["test", "--config", &format!("{ROOT}/guest/machines/default.toml")])
        .args(["--kernel", &kernel, "--initrd", &initrd])
        .args([
            "--snapshot-at",
            "KTAP",
            "--retries",
            "1",
            "--timeout",
            "300",
            "--verbose",
        ])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    if out.status.code() != Some(1) {
        return Err(format!("expected exit status 1, got {:?}\n{stdout}", out.status.code()).into());
    }
    // One boot (the guest's /init started once), two restores, both reported.
    let boots = stdout.matches("mmiolab: /init started").count();
    let restores = stdout
        .matches("mmiolab: restoring the snapshot taken at console:KTAP (attempt ")
        .count();
    if boots != 1 || restores != 2 {
        return Err(format!("expected 1 boot and 2 restores, got {boots} and {restores}:\n{stdout}").into());
    }
    for want in [
        "mmiolab test: attempt 1 of 2 failed (failed: always_fails); retried from the snapshot",
        "FAIL always_fails",
        "PASS host: guest resources match mmiolab tree",
        "mmiolab test: 1 passed, 1 failed",
    ] {
        if !stdout.lines().any(|l| l == want) {
            return Err(format!("missing `{want}` in the results:\n{stdout}").into());
        }
    }
    Ok(())
}

/// Copies `from` (a directory of plain files) to `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// examples/demo-driver, run as its README tells a user: its first `sh` block, run by bash
/// in a copy of the project outside this checkout, with the mmiolab binary copied beside it
/// (first on PATH: an installed binary, whose guest kit is what it carries). Every test
/// and KUnit case must pass, and the JUnit report must hold the suite's cases.
fn examples_demo_driver_runs_as_its_readme_says() -> Result<(), Failed> {
    let tmp = std::env::temp_dir().join(format!("mmiolab-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let project = tmp.join("demo-driver");
    copy_tree(std::path::Path::new(&format!("{ROOT}/examples/demo-driver")), &project)?;
    std::fs::create_dir_all(tmp.join("bin"))?;
    std::fs::copy(env!("CARGO_BIN_EXE_mmiolab"), tmp.join("bin/mmiolab"))?;
    let readme = std::fs::read_to_string(project.join("README.md"))?;
    let commands = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or("examples/demo-driver/README.md has no sh block")?;
    let path = format!(
        "{}:{}",
        tmp.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", commands])
        .current_dir(&project)
        .env("PATH", path)
        .output()?;
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    if !out.status.success() {
        return Err(format!("the README's commands failed ({})", out.status).into());
    }
    for want in [
        "PASS tick",
        "    PASS tick_id_is_read_only",
        "    PASS tick_scratch_holds_a_write",
        "    PASS tick_done_is_write_one_to_clear",
        "PASS tick_drv",
        "PASS check_tick",
        "PASS host: guest resources match mmiolab tree",
        "PASS register-check",
        "mmiolab test: 5 passed, 0 failed",
    ] {
        if !stdout.lines().any(|l| l == want) {
            return Err(format!("missing `{want}` in the results").into());
        }
    }
    let xml = std::fs::read_to_string(project.join("build/junit.xml"))?;
    let report = quick_junit::Report::deserialize_from_str(&xml).map_err(|e| format!("the JUnit report: {e}"))?;
    let suite = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "tick")
        .ok_or("no suite `tick` in the JUnit report")?;
    if suite.test_cases.len() != 3 || report.failures != 0 {
        return Err(format!("the JUnit report: {xml}").into());
    }
    // The guest agent ran (--kbuild, --check): the trace marks each test of the run,
    // the KUnit module's by its name.
    let trace = std::fs::read_to_string(project.join("build/trace.jsonl"))?;
    for test in ["tick_kunit", "tick_drv", "check_tick"] {
        let line = format!("\"test\":\"{test}\",\"phase\":\"begin\"");
        if !trace.contains(&line) {
            return Err(format!("the trace has no boundary of {test}").into());
        }
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
