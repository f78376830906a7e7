//! The Linux tier: builds the guest kernel and test initramfs (cached), boots them under
//! mmiolab (directly on hardware KVM, else nested inside QEMU TCG, as guest/run-machine.sh
//! decides and prints), and requires every guest driver test and the host-side
//! /proc/iomem-vs-tree check to pass, and a guest panic to end the VM with status 2.

use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Tests the guest init runs (guest/initramfs/init), and the host's own checks (`host: `).
const EXPECTED: [&str; 26] = [
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
    "PASS gpio_mmio",
    "PASS parport_pc",
    "PASS serial_8250",
    // the checker's guest agent (docs/checker.md): a clean driver and two that break its
    // rules on purpose, each with exactly the findings it announces
    "PASS agent_clean",
    "PASS agent_unclaimed",
    "PASS agent_leak",
    "PASS host: guest resources match mmiolab tree",
    "PASS host: trace order of io_write_order",
    "PASS host: agent findings of agent_clean",
    "PASS host: agent findings of agent_unclaimed",
    "PASS host: agent findings of agent_leak",
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
                "examples_demo_driver_runs_as_its_readme_says",
                examples_demo_driver_runs_as_its_readme_says,
            ),
        ],
    )
    .exit();
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
    // The checker's report: the guest agent's findings about its test drivers carry the
    // module, the test and a guest RIP in the kernel's half (module text, or the kernel's
    // ioread32 for the access whose module was found on the guest stack).
    let report = std::fs::read_to_string(format!("{ROOT}/target/guest/default-findings.json"))?;
    let report: serde_json::Value = serde_json::from_str(&report)?;
    let mut agent = Vec::new();
    for f in report["findings"].as_array().ok_or("no findings array")? {
        let module = f["module"].as_str().unwrap_or_default();
        if !module.starts_with("agent_") {
            continue;
        }
        let rip = f["rip"].as_str().unwrap_or_default();
        if !rip.starts_with("0xffff") || f["test"] != module {
            return Err(format!("agent finding without a kernel RIP or its test: {f}").into());
        }
        agent.push(format!(
            "{} {} {} {}",
            module,
            f["rule"].as_str().unwrap_or_default(),
            f["device"].as_str().unwrap_or_default(),
            f["register"].as_str().unwrap_or("-")
        ));
    }
    agent.sort();
    let want = [
        "agent_leak leaked-claim apidev -",
        "agent_leak leaked-mapping apidev -",
        "agent_unclaimed unclaimed-access apidev ID",
        "agent_unclaimed unclaimed-access apidev SCRATCH",
    ];
    if agent != want {
        return Err(format!("the agent's findings about its test drivers: {agent:#?}, expected {want:#?}").into());
    }
    let console = std::fs::read_to_string(format!("{ROOT}/target/guest/default-console.log"))?;
    for claim in CLAIMS {
        if !console.lines().any(|l| l.trim_end_matches('\r').ends_with(claim)) {
            return Err(format!("no resource dump shows `{claim}`").into());
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
    let guest_tests = EXPECTED.iter().filter(|e| !e.starts_with("PASS host: ")).count();
    let passed = format!("mmiolab: {guest_tests} passed, 0 failed");
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
        let line = format!("\"kind\":\"test\",\"test\":\"{test}\"");
        if !trace.contains(&line) {
            return Err(format!("the trace has no boundary of {test}").into());
        }
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}
