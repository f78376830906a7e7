//! Boots the bundled bare-metal programs under real KVM and checks, through mmiolab's exit
//! status, stdout/stderr and access trace, that every trapped access reached the right
//! device with the right offset, width and value.
//!
//! Where /dev/kvm cannot be opened, the KVM tests are reported as ignored, with the reason,
//! never as passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

#[path = "support/status.rs"]
mod status;
use status::expect_status;

const MACHINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/baremetal.toml");
const DESCRIBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/described.toml");
const CHECKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/checks.toml");
const CHECKS_MORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/checks_more.toml");

fn main() {
    let args = Arguments::from_args();
    let kvm_missing = kvm_unavailable();
    if let Some(reason) = &kvm_missing {
        eprintln!("KVM tests are ignored: {reason}");
    }
    let kvm = |name: &'static str, f: fn() -> Result<(), Failed>| {
        Trial::test(name, f).with_ignored_flag(kvm_missing.is_some())
    };
    let trials = vec![
        kvm("mmio_widths_reach_the_device", mmio_widths_reach_the_device),
        kvm("pio_widths_reach_the_device", pio_widths_reach_the_device),
        kvm(
            "string_io_delivers_every_element_in_order",
            string_io_delivers_every_element_in_order,
        ),
        kvm("unmapped_accesses_read_all_ones", unmapped_accesses_read_all_ones),
        kvm(
            "exit_device_status_reaches_the_shell",
            exit_device_status_reaches_the_shell,
        ),
        kvm(
            "triple_fault_ends_with_a_clear_error",
            triple_fault_ends_with_a_clear_error,
        ),
        kvm("int3_reaches_the_guest_handler", int3_reaches_the_guest_handler),
        kvm("demo_runs_on_two_vcpus", demo_runs_on_two_vcpus),
        kvm(
            "timeout_stops_a_guest_that_never_exits",
            timeout_stops_a_guest_that_never_exits,
        ),
        kvm("flat_binary_with_load_addr", flat_binary_with_load_addr),
        kvm(
            "described_device_every_behaviour_and_interrupts",
            described_device_every_behaviour_and_interrupts,
        ),
        kvm(
            "checker_reports_each_broken_rule_exactly",
            checker_reports_each_broken_rule_exactly,
        ),
        kvm(
            "checker_reports_unaligned_order_and_stuck_interrupt",
            checker_reports_unaligned_order_and_stuck_interrupt,
        ),
        kvm("checker_off_changes_nothing", checker_off_changes_nothing),
        kvm(
            "checker_finds_nothing_in_legal_accesses",
            checker_finds_nothing_in_legal_accesses,
        ),
        kvm(
            "agent_rules_judge_the_modules_a_guest_agent_reports",
            agent_rules_judge_the_modules_a_guest_agent_reports,
        ),
        kvm("agent_tests_get_their_own_coverage", agent_tests_get_their_own_coverage),
        kvm(
            "golden_trace_matches_and_names_the_first_difference",
            golden_trace_matches_and_names_the_first_difference,
        ),
        kvm(
            "golden_trace_skips_volatile_registers",
            golden_trace_skips_volatile_registers,
        ),
        kvm("coverage_of_described_is_exact", coverage_of_described_is_exact),
        kvm(
            "fifo_host_sides_carry_data_through_files",
            fifo_host_sides_carry_data_through_files,
        ),
        kvm(
            "fifo_host_sides_carry_data_through_a_unix_socket",
            fifo_host_sides_carry_data_through_a_unix_socket,
        ),
        Trial::test("tree_prints_both_address_spaces", tree_prints_both_address_spaces),
        Trial::test(
            "test_expect_trace_judges_a_recorded_trace",
            test_expect_trace_judges_a_recorded_trace,
        ),
        Trial::test(
            "a_guest_test_with_a_finding_not_allowed_fails_itself",
            a_guest_test_with_a_finding_not_allowed_fails_itself,
        ),
        Trial::test(
            "models_lists_and_prints_the_bundled_descriptions",
            models_lists_and_prints_the_bundled_descriptions,
        ),
        Trial::test(
            "bad_machine_file_is_refused_before_boot",
            bad_machine_file_is_refused_before_boot,
        ),
        Trial::test(
            "device_tree_passes_dtc_without_warnings",
            device_tree_passes_dtc_without_warnings,
        )
        .with_ignored_flag(Command::new("dtc").arg("--version").output().is_err()),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn kvm_unavailable() -> Option<String> {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm cannot be opened read-write: {e}")),
    }
}

fn firmware(name: &str) -> PathBuf {
    mmiolab_firmware::elf(name).unwrap_or_else(|| panic!("no bundled firmware `{name}`"))
}

fn mmiolab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(args)
        .output()
        .expect("mmiolab runs")
}

/// Runs `program` on the bare-metal machine with tracing; returns the output and the trace.
fn run_traced(program: &str, extra: &[&str]) -> Result<(Output, Vec<Value>), Failed> {
    run_traced_on(MACHINE, program, extra)
}

/// Runs `program` on `machine` with tracing; returns the output and the trace.
fn run_traced_on(machine: &str, program: &str, extra: &[&str]) -> Result<(Output, Vec<Value>), Failed> {
    // Tests run in parallel, some the same program: each run gets its own directory.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-{program}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let got = run_traced_in(&dir, machine, program, extra)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(got)
}

/// Runs `program` on `machine` tracing into `dir`/trace.jsonl (left there); returns the
/// output and the trace.
fn run_traced_in(dir: &Path, machine: &str, program: &str, extra: &[&str]) -> Result<(Output, Vec<Value>), Failed> {
    let trace = dir.join("trace.jsonl");
    let fw = firmware(program);
    let mut args = vec![
        "run",
        "--config",
        machine,
        "--firmware",
        fw.to_str().ok_or("path is not UTF-8")?,
        "--timeout",
        "60",
        "--trace",
        trace.to_str().ok_or("path is not UTF-8")?,
    ];
    args.extend_from_slice(extra);
    let out = mmiolab(&args);
    let lines = std::fs::read_to_string(&trace)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?;
    Ok((out, lines))
}

/// The trace records of `space` accesses to `addr`, as (op, width, value, device, offset).
fn accesses(trace: &[Value], space: &str, addr: u64) -> Vec<(String, u64, String, Value, Value)> {
    let addr = format!("{addr:#x}");
    trace
        .iter()
        .filter(|r| r["space"] == space && r["addr"] == addr.as_str())
        .map(|r| {
            (
                r["op"].as_str().unwrap_or_default().to_owned(),
                r["width"].as_u64().unwrap_or_default(),
                r["value"].as_str().unwrap_or_default().to_owned(),
                r["device"].clone(),
                r["offset"].clone(),
            )
        })
        .collect()
}

fn access(op: &str, width: u64, value: &str, device: &str, offset: &str) -> (String, u64, String, Value, Value) {
    (
        op.to_owned(),
        width,
        value.to_owned(),
        Value::from(device),
        Value::from(offset),
    )
}

fn mmio_widths_reach_the_device() -> Result<(), Failed> {
    let (out, trace) = run_traced("mmio_widths", &[])?;
    expect_status(&out, 0)?;
    for (addr, width, value, offset) in [
        (0xd000_0010u64, 1, "0xa1", "0x10"),
        (0xd000_0012, 2, "0xb2c3", "0x12"),
        (0xd000_0014, 4, "0xd4e5f607", "0x14"),
        (0xd000_0018, 8, "0x123456789abcdef", "0x18"),
    ] {
        let seen = accesses(&trace, "mmio", addr);
        let want = vec![
            access("write", width, value, "mmio-regs", offset),
            access("read", width, value, "mmio-regs", offset),
        ];
        if seen != want {
            return Err(format!("at {addr:#x}: trace has {seen:?}, expected {want:?}").into());
        }
    }
    let id = accesses(&trace, "mmio", 0xd000_0000);
    if id != vec![access("read", 4, "0x4d4d494f", "mmio-regs", "0x0")] {
        return Err(format!("ID register read: {id:?}").into());
    }
    Ok(())
}

fn pio_widths_reach_the_device() -> Result<(), Failed> {
    let (out, trace) = run_traced("pio_widths", &[])?;
    expect_status(&out, 0)?;
    let seen = accesses(&trace, "pio", 0x30c);
    let want: Vec<_> = [(1, "0x5a"), (2, "0x6b7c"), (4, "0x8d9eafb0")]
        .iter()
        .flat_map(|&(w, v)| {
            [
                access("write", w, v, "port-regs", "0xc"),
                access("read", w, v, "port-regs", "0xc"),
            ]
        })
        .collect();
    if seen != want {
        return Err(format!("port 0x30c: trace has {seen:?}, expected {want:?}").into());
    }
    Ok(())
}

fn string_io_delivers_every_element_in_order() -> Result<(), Failed> {
    let (out, trace) = run_traced("string_io", &[])?;
    expect_status(&out, 0)?;
    let outs = accesses(&trace, "pio", 0x30c);
    let want: Vec<_> = b"mmiolab rep outs"
        .iter()
        .map(|b| access("write", 1, &format!("{b:#x}"), "port-regs", "0xc"))
        .collect();
    if outs != want {
        return Err(format!("rep outsb: trace has {outs:?}, expected {want:?}").into());
    }
    let ins = accesses(&trace, "pio", 0x310);
    let want: Vec<_> = (1..=8)
        .map(|v| access("read", 2, &format!("{v:#x}"), "seq", "0x0"))
        .collect();
    if ins != want {
        return Err(format!("rep insw: trace has {ins:?}, expected {want:?}").into());
    }
    Ok(())
}

fn unmapped_accesses_read_all_ones() -> Result<(), Failed> {
    let (out, trace) = run_traced("unmapped", &[])?;
    // The guest itself checks each value and exits non-zero on a mismatch.
    expect_status(&out, 0)?;
    let seen = accesses(&trace, "mmio", 0xd010_0000);
    let want = vec![
        ("read".to_owned(), 1, "0xff".to_owned(), Value::Null, Value::Null),
        ("read".to_owned(), 2, "0xffff".to_owned(), Value::Null, Value::Null),
        ("read".to_owned(), 4, "0xffffffff".to_owned(), Value::Null, Value::Null),
        (
            "read".to_owned(),
            8,
            "0xffffffffffffffff".to_owned(),
            Value::Null,
            Value::Null,
        ),
        ("write".to_owned(), 1, "0x12".to_owned(), Value::Null, Value::Null),
    ];
    if seen != want {
        return Err(format!("unmapped MMIO: trace has {seen:?}, expected {want:?}").into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("unmapped accesses: 4 MMIO reads, 1 MMIO writes, 1 port reads, 0 port writes") {
        return Err(format!("summary does not count the unmapped accesses:\n{stderr}").into());
    }
    Ok(())
}

fn exit_device_status_reaches_the_shell() -> Result<(), Failed> {
    let (out, _) = run_traced("exit_status", &[])?;
    expect_status(&out, 42)
}

fn triple_fault_ends_with_a_clear_error() -> Result<(), Failed> {
    let (out, _) = run_traced("triple_fault", &[])?;
    expect_status(&out, 1)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["triple fault (KVM_EXIT_SHUTDOWN)", "rip=0x", "cr3=0x9000"] {
        if !stderr.contains(needle) {
            return Err(format!("report lacks `{needle}`:\n{stderr}").into());
        }
    }
    Ok(())
}

fn int3_reaches_the_guest_handler() -> Result<(), Failed> {
    let (out, _) = run_traced("int3", &[])?;
    expect_status(&out, 0)
}

fn demo_runs_on_two_vcpus() -> Result<(), Failed> {
    let (out, trace) = run_traced("demo", &["--vcpus", "2"])?;
    expect_status(&out, 0)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.contains("mmiolab demo: bare-metal guest running in long mode")
        || !stdout.contains("PIO:  port 0x30c round trip ok")
    {
        return Err(format!("demo output:\n{stdout}").into());
    }
    let serial_bytes = trace.iter().filter(|r| r["device"] == "serial").count();
    if serial_bytes < stdout.len() {
        return Err(format!("{serial_bytes} serial writes traced for {} bytes printed", stdout.len()).into());
    }
    Ok(())
}

fn timeout_stops_a_guest_that_never_exits() -> Result<(), Failed> {
    // A flat binary that is one `jmp .` (eb fe) never exits on its own.
    let dir = std::env::temp_dir().join(format!("mmiolab-spin-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("spin.bin");
    std::fs::write(&bin, [0xeb, 0xfe])?;
    let out = mmiolab(&[
        "run",
        "--firmware",
        path_str(&bin)?,
        "--load-addr",
        "0x100000",
        "--timeout",
        "1",
    ]);
    std::fs::remove_dir_all(&dir)?;
    expect_status(&out, 124)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("timeout: the guest was still running after 1s") {
        return Err(format!("stderr:\n{stderr}").into());
    }
    Ok(())
}

fn flat_binary_with_load_addr() -> Result<(), Failed> {
    // mov al, 7; out 0xf4, al
    let dir = std::env::temp_dir().join(format!("mmiolab-flat-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("exit7.bin");
    std::fs::write(&bin, [0xb0, 0x07, 0xe6, 0xf4])?;
    let out = mmiolab(&[
        "run",
        "--firmware",
        path_str(&bin)?,
        "--load-addr",
        "0x200000",
        "--timeout",
        "30",
    ]);
    let low = mmiolab(&["run", "--firmware", path_str(&bin)?, "--load-addr", "0x1000"]);
    std::fs::remove_dir_all(&dir)?;
    expect_status(&out, 7)?;
    // Refused before a VM exists, as an input the machine cannot run (status 65).
    expect_status(&low, 65)?;
    if !String::from_utf8_lossy(&low.stderr).contains("[0x1000-0x1003] starts below 1 MiB (0x100000)") {
        return Err(format!("low load address: {}", String::from_utf8_lossy(&low.stderr)).into());
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str, Failed> {
    p.to_str().ok_or_else(|| "path is not UTF-8".into())
}

fn tree_prints_both_address_spaces() -> Result<(), Failed> {
    let out = mmiolab(&["tree", "--config", MACHINE]);
    expect_status(&out, 0)?;
    let want = "d0000000-d00fffff : platform\n\
                \x20 d0000000-d0000fff : mmio-regs\n\
                \x20   d0000000-d000000f : header\n\
                febfe000-febfe00f : syscon@febfe000\n\
                febff000-febff001 : pvpanic@febff000\n\
                \n\
                0060-0064 : i8042\n\
                00f4-00f7 : test-exit\n\
                00f8-00f8 : snapshot-marker\n\
                0300-030f : port-regs\n\
                0310-0311 : seq\n\
                03f8-03ff : serial\n";
    let got = String::from_utf8_lossy(&out.stdout);
    if got != want {
        return Err(format!("tree:\n{got}\nexpected:\n{want}").into());
    }
    Ok(())
}

fn bad_machine_file_is_refused_before_boot() -> Result<(), Failed> {
    // Status 65: an input was refused.
    let dir = std::env::temp_dir().join(format!("mmiolab-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[[device]]\nname = \"a\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n\
         [[device]]\nname = \"b\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000800, size = 0x1000 }]\n",
    )?;
    let out = mmiolab(&["tree", "--config", path_str(&cfg)?]);
    std::fs::remove_dir_all(&dir)?;
    expect_status(&out, 65)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want =
        "bad.toml: device[1].mmio[0]: MMIO region `b` [0xd0000800-0xd00017ff] overlaps `a` [0xd0000000-0xd0000fff]";
    if !stderr.contains(want) {
        return Err(format!("stderr:\n{stderr}\nexpected it to contain:\n{want}").into());
    }
    Ok(())
}

fn device_tree_passes_dtc_without_warnings() -> Result<(), Failed> {
    let machine = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest/machines/default.toml");
    let dir = std::env::temp_dir().join(format!("mmiolab-dt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let blob = dir.join("machine.dtb");
    let out = mmiolab(&["dt", "--config", machine, "--dtb", path_str(&blob)?]);
    expect_status(&out, 0)?;
    let dts = String::from_utf8_lossy(&out.stdout);
    for node in ["testdev@d0001000 {", "piodev@2e0 {", "ioapic@fec00000 {", "cpu@0 {"] {
        if !dts.contains(node) {
            return Err(format!("DTS lacks `{node}`:\n{dts}").into());
        }
    }
    let dtc = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts", "-o", "/dev/null"])
        .arg(&blob)
        .output()?;
    std::fs::remove_dir_all(&dir)?;
    let warnings = String::from_utf8_lossy(&dtc.stderr);
    if !dtc.status.success() || !warnings.trim().is_empty() {
        return Err(format!("dtc: {}\n{warnings}", dtc.status).into());
    }
    Ok(())
}

/// `firmware/asm/described.S` checks every register behaviour of a described device and
/// counts its interrupts (its exit status is the number of the first failed check); its
/// trace, by register and field with every side effect, must be the expected one line for
/// line (tests/expected/described.trace.jsonl).
fn described_device_every_behaviour_and_interrupts() -> Result<(), Failed> {
    let (out, trace) = run_traced_on(DESCRIBED, "described", &[])?;
    if out.status.code() != Some(0) {
        return Err(format!(
            "check {:?} of firmware/asm/described.S failed (its exit status is the check's number)\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    compare_with_expected_trace(&trace, "described.trace.jsonl")
}

/// Compares `trace`, without what varies from run to run (`seq`, `t_ns`, the `due_ns` of
/// scheduled effects), line by line with `tests/expected/NAME`. With `MMIOLAB_BLESS=1` it
/// writes that file instead (then review the diff before committing it).
fn compare_with_expected_trace(trace: &[Value], name: &str) -> Result<(), Failed> {
    let lines: Vec<String> = trace
        .iter()
        .map(|line| {
            let mut v = line.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("seq");
                o.remove("t_ns");
                if let Some(Value::Array(effects)) = o.get_mut("effects") {
                    for e in effects.iter_mut().filter_map(Value::as_object_mut) {
                        e.remove("due_ns");
                    }
                }
            }
            v.to_string()
        })
        .collect();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/expected")
        .join(name);
    if std::env::var_os("MMIOLAB_BLESS").is_some() {
        std::fs::write(&path, lines.join("\n") + "\n")?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path)?;
    let expected: Vec<&str> = expected.lines().collect();
    for (i, (got, want)) in lines.iter().zip(&expected).enumerate() {
        let want: Value = serde_json::from_str(want)?;
        let got_v: Value = serde_json::from_str(got)?;
        if got_v != want {
            return Err(format!("trace line {}: got\n  {got}\nexpected\n  {want}", i + 1).into());
        }
    }
    if lines.len() != expected.len() {
        return Err(format!("the trace has {} lines, expected {}", lines.len(), expected.len()).into());
    }
    Ok(())
}

/// A machine with the bundled 16550 at 0x2f8 whose FIFOs' host sides are `rx` and `tx`.
fn uart_machine(dir: &Path, rx: &str, tx: &str) -> Result<PathBuf, Failed> {
    let machine = dir.join("uart.toml");
    std::fs::write(
        &machine,
        format!(
            "[machine]\nmemory_mib = 64\n\n[[device]]\nname = \"uart\"\nmodel = \"uart16550\"\npio = [{{ base = 0x2f8, size = 8 }}]\nfifo = {{ rx = {{ from = \"{rx}\" }}, tx = {{ to = \"{tx}\" }} }}\n"
        ),
    )?;
    Ok(machine)
}

fn run_uart_echo(machine: &Path) -> Result<Output, Failed> {
    let fw = firmware("uart_echo");
    Ok(mmiolab(&[
        "run",
        "--config",
        machine.to_str().ok_or("path is not UTF-8")?,
        "--firmware",
        fw.to_str().ok_or("path is not UTF-8")?,
        "--timeout",
        "60",
    ]))
}

/// The receiver is fed from a file (more than its 16-byte FIFO holds: the rest waits on the
/// host side), the transmitter drains to a file; the guest echoes up to a newline.
fn fifo_host_sides_carry_data_through_files() -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-fifo-files", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let line = "a line longer than the sixteen-byte FIFO, echoed by the guest\n";
    std::fs::write(dir.join("in.txt"), format!("{line}not echoed"))?;
    let machine = uart_machine(&dir, "file:in.txt", "file:out.txt")?;
    let out = run_uart_echo(&machine)?;
    expect_status(&out, 0)?;
    let echoed = std::fs::read_to_string(dir.join("out.txt"))?;
    std::fs::remove_dir_all(&dir)?;
    if echoed != line {
        return Err(format!("the transmitter's file holds {echoed:?}, expected {line:?}").into());
    }
    Ok(())
}

/// Both sides on one Unix socket that the test listens on.
fn fifo_host_sides_carry_data_through_a_unix_socket() -> Result<(), Failed> {
    use std::io::{BufRead, Write};
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-fifo-socket", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("uart.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock)?;
    let peer = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        stream.write_all(b"hello over a socket\n")?;
        let mut echoed = String::new();
        std::io::BufReader::new(stream).read_line(&mut echoed)?;
        Ok(echoed)
    });
    let path = sock.to_str().ok_or("path is not UTF-8")?;
    let machine = uart_machine(&dir, &format!("unix:{path}"), &format!("unix:{path}"))?;
    let out = run_uart_echo(&machine)?;
    expect_status(&out, 0)?;
    let echoed = peer.join().map_err(|_| "the socket peer panicked")??;
    std::fs::remove_dir_all(&dir)?;
    if echoed != "hello over a socket\n" {
        return Err(format!("the socket got back {echoed:?}").into());
    }
    Ok(())
}

fn models_lists_and_prints_the_bundled_descriptions() -> Result<(), Failed> {
    let list = mmiolab(&["models"]);
    expect_status(&list, 0)?;
    let list = String::from_utf8_lossy(&list.stdout);
    for name in ["demo", "uart16550", "gpio-mmio", "parport", "isa-hole"] {
        if !list.lines().any(|l| l.split_whitespace().next() == Some(name)) {
            return Err(format!("`mmiolab models` does not list {name}:\n{list}").into());
        }
    }
    let uart = mmiolab(&["models", "uart16550"]);
    expect_status(&uart, 0)?;
    let text = String::from_utf8_lossy(&uart.stdout);
    if !text.contains("name = \"RBR\"") {
        return Err(format!("`mmiolab models uart16550` printed:\n{text}").into());
    }
    let nope = mmiolab(&["models", "nope"]);
    expect_status(&nope, 64)?;
    let err = String::from_utf8_lossy(&nope.stderr);
    if !err.contains("no bundled model `nope`; there are: demo") {
        return Err(format!("stderr: {err}").into());
    }
    Ok(())
}

/// A scratch directory for one test, removed by the test when it passes.
fn scratch(name: &str) -> Result<PathBuf, Failed> {
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A finding as (device, register, field, rule, count, allowed).
type FindingRow = (String, Value, Value, String, u64, bool);

/// A register's coverage as (name, reads, writes, fields read, fields written).
type CoverageRow<N> = (N, u64, u64, Vec<String>, Vec<String>);

/// The register rows of one device of a `mmiolab coverage --json` document.
fn coverage_rows(device: &Value) -> Result<Vec<CoverageRow<String>>, Failed> {
    let regs = device["registers"].as_array().ok_or("no registers")?;
    Ok(regs
        .iter()
        .map(|r| {
            let fields = |key: &str| {
                r["fields"]
                    .as_array()
                    .map(|fs| {
                        fs.iter()
                            .filter(|f| f[key] == true)
                            .filter_map(|f| f["name"].as_str().map(str::to_owned))
                            .collect::<Vec<String>>()
                    })
                    .unwrap_or_default()
            };
            (
                r["name"].as_str().unwrap_or("?").to_owned(),
                r["reads"].as_u64().unwrap_or(u64::MAX),
                r["writes"].as_u64().unwrap_or(u64::MAX),
                fields("read"),
                fields("written"),
            )
        })
        .collect())
}

/// `program` run on `machine` (with `extra` options) tracing into `dir`, then `mmiolab
/// coverage` of its trace: the run's output, the trace's lines and the coverage's JSON
/// document (its table is left in `dir`/coverage.txt).
fn run_with_coverage(
    dir: &Path,
    machine: &str,
    program: &str,
    extra: &[&str],
) -> Result<(Output, Vec<Value>, Value), Failed> {
    let (out, lines) = run_traced_in(dir, machine, program, extra)?;
    let trace = dir.join("trace.jsonl");
    let json = dir.join("coverage.json");
    let t = trace.to_str().ok_or("path is not UTF-8")?;
    let cov = mmiolab(&[
        "coverage",
        "--trace",
        t,
        "--config",
        machine,
        "--json",
        json.to_str().ok_or("path is not UTF-8")?,
    ]);
    expect_status(&cov, 0)?;
    std::fs::write(dir.join("coverage.txt"), &cov.stdout)?;
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    Ok((out, lines, doc))
}

/// `program` run on `machine` with `--check` and `--check-json` into a fresh directory
/// named `name`: the run's output, its trace, the findings of the JSON file, and the
/// directory (for the caller to remove).
fn run_checked(machine: &str, program: &str, name: &str) -> Result<Checked, Failed> {
    let dir = scratch(name)?;
    let json = dir.join("findings.json");
    let (out, trace) = run_traced_on(
        machine,
        program,
        &["--check", "--check-json", json.to_str().ok_or("path is not UTF-8")?],
    )?;
    let findings = findings_in(&json)?;
    Ok((out, trace, findings, dir))
}

/// What [`run_checked`] gives.
type Checked = (Output, Vec<Value>, Vec<FindingRow>, PathBuf);

/// The findings of a `--check-json` file.
fn findings_in(path: &Path) -> Result<Vec<FindingRow>, Failed> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let list = doc["findings"].as_array().ok_or("no findings array")?;
    list.iter()
        .map(|f| {
            Ok((
                f["device"].as_str().ok_or("device")?.to_owned(),
                f["register"].clone(),
                f["field"].clone(),
                f["rule"].as_str().ok_or("rule")?.to_owned(),
                f["count"].as_u64().ok_or("count")?,
                f["allowed"].as_bool().ok_or("allowed")?,
            ))
        })
        .collect()
}

/// `firmware/asm/checks.S` breaks each rule a known number of times (its header lists
/// them): `--check` must report exactly those findings, in the JSON file, on stderr and in
/// the trace, and exit 3 because some are not allowed.
fn checker_reports_each_broken_rule_exactly() -> Result<(), Failed> {
    let (out, trace, got, dir) = run_checked(CHECKS, "checks", "checks")?;
    expect_status(&out, 3)?;
    let s = |v: &str| Value::String(v.to_owned());
    let want = vec![
        ("chk".to_owned(), Value::Null, Value::Null, "hole".to_owned(), 1, false),
        (
            "chk".to_owned(),
            s("CFG"),
            Value::Null,
            "reserved-bits".to_owned(),
            1,
            false,
        ),
        (
            "chk".to_owned(),
            s("DATA"),
            s("q"),
            "write-full-fifo".to_owned(),
            1,
            false,
        ),
        (
            "chk".to_owned(),
            s("DATA"),
            s("q"),
            "read-empty-fifo".to_owned(),
            2,
            false,
        ),
        (
            "chk".to_owned(),
            s("ID"),
            s("ID"),
            "write-read-only".to_owned(),
            2,
            false,
        ),
        (
            "chk".to_owned(),
            s("KEY"),
            s("KEY"),
            "write-once-again".to_owned(),
            1,
            false,
        ),
        (
            "chk".to_owned(),
            s("TXDATA"),
            Value::Null,
            "read-write-only".to_owned(),
            3,
            false,
        ),
        (
            "chk".to_owned(),
            s("WIDE"),
            Value::Null,
            "bad-width".to_owned(),
            1,
            false,
        ),
        (
            "chk2".to_owned(),
            s("DATA"),
            s("q"),
            "read-empty-fifo".to_owned(),
            1,
            true,
        ),
    ];
    let sorted = |mut v: Vec<FindingRow>| {
        v.sort_by_key(|f| format!("{f:?}"));
        v
    };
    if sorted(got.clone()) != sorted(want.clone()) {
        return Err(format!("findings:\n{got:#?}\nexpected:\n{want:#?}").into());
    }
    // stderr: one line per finding, with its count.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = finding_lines(&stderr)?;
    let wanted_lines = [
        "mmiolab: check: read-write-only: chk.TXDATA at mmio 0xd000000c, vCPU 0, 3 times: read of a write-only register",
        "mmiolab: check: read-empty-fifo: chk2.DATA (q) at mmio 0xd0001018, vCPU 0, 1 time: read of an empty FIFO (the description forbids it) [allowed by the machine file]",
        "mmiolab: check: 8 finding(s), 1 more allowed by the machine file",
    ];
    for w in wanted_lines {
        if !lines.iter().any(|l| l == w) {
            return Err(format!("stderr lacks\n  {w}\nit has:\n{stderr}").into());
        }
    }
    if lines.len() != want.len() + 1 {
        return Err(format!(
            "stderr has {} check lines, expected {}:\n{stderr}",
            lines.len(),
            want.len() + 1
        )
        .into());
    }
    // The trace: one finding line per offending access, right after its access line.
    let mut per_rule = std::collections::BTreeMap::new();
    for (i, line) in trace.iter().enumerate() {
        if line["kind"] != "finding" {
            continue;
        }
        let prev = i
            .checked_sub(1)
            .and_then(|p| trace.get(p))
            .ok_or("a finding opens the trace")?;
        if prev["kind"] != "access" || prev["addr"] != line["addr"] || prev["reg"] != line["reg"] {
            return Err(format!("finding {line} does not follow its access (previous line {prev})").into());
        }
        let key = format!("{}.{}:{}", line["device"], line["reg"], line["rule"]);
        *per_rule.entry(key).or_insert(0u64) += 1;
    }
    let total: u64 = per_rule.values().sum();
    if total != want.iter().map(|w| w.4).sum::<u64>() {
        return Err(format!("the trace has these finding lines: {per_rule:?}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `firmware/asm/checks_more.S` breaks the rules unaligned, order and irq-stuck once each
/// (its header says how): exactly those three findings, on stderr, in the JSON file and in
/// the trace (the order and unaligned lines right after their access line); without
/// `--check` it exits 0 with no finding.
fn checker_reports_unaligned_order_and_stuck_interrupt() -> Result<(), Failed> {
    let (out, trace, got, dir) = run_checked(CHECKS_MORE, "checks_more", "checks-more")?;
    expect_status(&out, 3)?;
    let s = |v: &str| Value::String(v.to_owned());
    let mut want = vec![
        (
            "chk3".to_owned(),
            Value::Null,
            s("done"),
            "irq-stuck".to_owned(),
            1,
            false,
        ),
        (
            "chk3".to_owned(),
            s("DATA"),
            s("enable_before_data"),
            "order".to_owned(),
            1,
            false,
        ),
        (
            "chk3".to_owned(),
            s("WIN"),
            Value::Null,
            "unaligned".to_owned(),
            1,
            false,
        ),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(|f| format!("{f:?}"));
    want.sort_by_key(|f| format!("{f:?}"));
    if got_sorted != want {
        return Err(format!("findings:\n{got:#?}\nexpected:\n{want:#?}").into());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = finding_lines(&stderr)?;
    for w in [
        "mmiolab: check: order: chk3.DATA (enable_before_data) at mmio 0xd0000004, vCPU 0, 1 time: access made while the order rule's condition did not hold",
        "mmiolab: check: unaligned: chk3.WIN at mmio 0xd0000012, vCPU 0, 1 time: access at an address that is not a multiple of its width",
        "mmiolab: check: irq-stuck: chk3 (done) at mmio 0xd0000000, no vCPU, 1 time: level interrupt still asserted after consecutive EOIs (handler did not clear it)",
        "mmiolab: check: 3 finding(s), 0 more allowed by the machine file",
    ] {
        if !lines.iter().any(|l| l == w) {
            return Err(format!("stderr lacks\n  {w}\nit has:\n{stderr}").into());
        }
    }
    let findings: Vec<(usize, &Value)> = trace
        .iter()
        .enumerate()
        .filter(|(_, l)| l["kind"] == "finding")
        .collect();
    let rules: Vec<&str> = findings.iter().filter_map(|(_, l)| l["rule"].as_str()).collect();
    if rules != ["order", "unaligned", "irq-stuck"] {
        return Err(format!("the trace's finding lines are {rules:?}").into());
    }
    for (i, line) in findings.iter().take(2) {
        let prev = i
            .checked_sub(1)
            .and_then(|p| trace.get(p))
            .ok_or("a finding opens the trace")?;
        if prev["kind"] != "access" || prev["addr"] != line["addr"] || prev["reg"] != line["reg"] {
            return Err(format!("finding {line} does not follow its access (previous line {prev})").into());
        }
    }
    let (off, _) = run_traced_on(CHECKS_MORE, "checks_more", &[])?;
    expect_status(&off, 0)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Without `--check`, the same program exits 0 and its trace has no finding lines.
fn checker_off_changes_nothing() -> Result<(), Failed> {
    let (out, trace) = run_traced_on(CHECKS, "checks", &[])?;
    expect_status(&out, 0)?;
    if trace.iter().any(|l| l["kind"] == "finding") {
        return Err("finding lines without --check".into());
    }
    if String::from_utf8_lossy(&out.stderr).contains("check:") {
        return Err("check lines on stderr without --check".into());
    }
    Ok(())
}

/// `firmware/asm/agent.S` plays the Linux guest agent (module "fw" = its own code, tests t1
/// and t2, a claim, a release, a leak): with `--check` the agent's port answers and the
/// findings are exactly the four the program announces, each with its module, test and a
/// RIP inside the program; without `--check` nothing answers at the port (it exits 1).
fn agent_rules_judge_the_modules_a_guest_agent_reports() -> Result<(), Failed> {
    let dir = scratch("agent")?;
    let json = dir.join("findings.json");
    let (out, trace) = run_traced_on(
        CHECKS,
        "agent",
        &["--check-json", json.to_str().ok_or("path is not UTF-8")?],
    )?;
    expect_status(&out, 3)?;
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let mut got: Vec<String> = Vec::new();
    // The trace has a line per offending event: `count` of each finding of the report.
    let mut in_report: Vec<String> = Vec::new();
    for f in doc["findings"].as_array().ok_or("no findings array")? {
        let line = format!("{} {}", f["rule"].as_str().unwrap_or_default(), f["register"]);
        for _ in 0..f["count"].as_u64().ok_or("a finding without a count")? {
            in_report.push(line.clone());
        }
        let rip = f["rip"].as_str().ok_or("a finding without a RIP")?;
        let rip = u64::from_str_radix(rip.trim_start_matches("0x"), 16)?;
        if !(0x10_0000..0x10_1000).contains(&rip) {
            return Err(format!("RIP outside the program: {f}").into());
        }
        got.push(format!(
            "{} {} {} {} {}",
            f["rule"].as_str().unwrap_or_default(),
            f["device"].as_str().unwrap_or_default(),
            f["register"].as_str().unwrap_or("-"),
            f["module"].as_str().unwrap_or("-"),
            f["test"].as_str().unwrap_or("-"),
        ));
    }
    got.sort();
    let want = [
        "leaked-claim chk - fw t2",
        "leaked-mapping chk - fw t2",
        "unclaimed-access chk ID fw t1",
        "unclaimed-access chk KEY fw t1",
    ];
    if got != want {
        return Err(format!("findings {got:#?}, expected {want:#?}").into());
    }
    let mut in_trace: Vec<String> = trace
        .iter()
        .filter(|l| l["kind"] == "finding")
        .map(|l| format!("{} {}", l["rule"].as_str().unwrap_or_default(), l["reg"]))
        .collect();
    in_trace.sort();
    in_report.sort();
    if in_trace != in_report {
        return Err(format!("the trace's finding lines {in_trace:#?}, the report's {in_report:#?}").into());
    }
    // The program's test boundaries are lines of the trace too (JUnit finds a failed
    // test's accesses between them), in the order it sent them.
    let tests: Vec<String> = trace
        .iter()
        .filter(|l| l["kind"] == "test")
        .map(|l| l["test"].as_str().unwrap_or("(end)").to_owned())
        .collect();
    if tests.first().map(String::as_str) != Some("t1") || !tests.iter().any(|t| t == "t2") {
        return Err(format!("the trace's test boundaries: {tests:?}").into());
    }
    let (out, _) = run_traced_on(CHECKS, "agent", &[])?;
    expect_status(&out, 1)?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `firmware/asm/agent.S` reports tests t1 and t2 as the guest agent does: the trace has
/// their boundaries as `test` lines, in order, with each finding inside its test, and
/// `mmiolab coverage` counts each test's accesses (its header lists them) for that test:
/// figures derived from reading agent.S, not from the tool.
fn agent_tests_get_their_own_coverage() -> Result<(), Failed> {
    let dir = scratch("agent-coverage")?;
    let (out, lines, doc) = run_with_coverage(&dir, CHECKS, "agent", &["--check"])?;
    expect_status(&out, 3)?;
    // Boundaries in order; each finding inside the test the report names.
    let mut current = String::from("-");
    let mut boundaries = Vec::new();
    let mut findings = Vec::new();
    for l in &lines {
        match l["kind"].as_str() {
            Some("test") => {
                let (name, phase) = (l["test"].as_str().unwrap_or("?"), l["phase"].as_str().unwrap_or("?"));
                boundaries.push(format!("{phase} {name}"));
                current = if phase == "begin" {
                    name.to_owned()
                } else {
                    "-".to_owned()
                };
            }
            Some("finding") => findings.push(format!("{} {}", l["rule"].as_str().unwrap_or("?"), current)),
            _ => {}
        }
    }
    if boundaries != ["begin t1", "end t1", "begin t2", "end t2"] {
        return Err(format!("test lines {boundaries:?}").into());
    }
    let want = [
        "unclaimed-access t1",
        "unclaimed-access t1",
        "leaked-claim t2",
        "leaked-mapping t2",
    ];
    if findings != want {
        return Err(format!("finding lines by test {findings:?}, expected {want:?}").into());
    }
    let tests = doc["tests"].as_array().ok_or("no tests")?;
    let names: Vec<&str> = tests.iter().filter_map(|t| t["test"].as_str()).collect();
    if names != ["t1", "t2"] {
        return Err(format!("tests {names:?}").into());
    }
    // chk's touched registers (name, reads, writes, fields read, fields written): in t1,
    // the two ID reads and the KEY read; in t2, CFG written (EN and MODE) and read, TXDATA
    // written; in total, those and TICKS, read after t2 ended. chk2 is never touched.
    let en_mode = || vec!["EN".to_owned(), "MODE".to_owned()];
    let row = |n: &str, r: u64, w: u64, fr: Vec<String>, fw: Vec<String>| (n.to_owned(), r, w, fr, fw);
    let t1 = vec![row("ID", 2, 0, vec![], vec![]), row("KEY", 1, 0, vec![], vec![])];
    let t2 = vec![
        row("CFG", 1, 1, en_mode(), en_mode()),
        row("TXDATA", 0, 1, vec![], vec![]),
    ];
    let total: Vec<CoverageRow<String>> = t1
        .iter()
        .chain(&t2)
        .cloned()
        .chain([row("TICKS", 1, 0, vec![], vec![])])
        .collect();
    let touched = |devices: &Value, name: &str| -> Result<Vec<CoverageRow<String>>, Failed> {
        let list = devices.as_array().ok_or("no devices")?;
        let d = list.iter().find(|d| d["device"] == name).ok_or("a device is missing")?;
        let mut rows: Vec<CoverageRow<String>> = coverage_rows(d)?.into_iter().filter(|r| r.1 > 0 || r.2 > 0).collect();
        rows.sort();
        Ok(rows)
    };
    let sorted = |mut v: Vec<CoverageRow<String>>| {
        v.sort();
        v
    };
    for (what, devices, want) in [
        ("t1", &tests[0]["devices"], sorted(t1)),
        ("t2", &tests[1]["devices"], sorted(t2)),
        ("the total", &doc["devices"], sorted(total)),
    ] {
        let got = touched(devices, "chk")?;
        if got != want {
            return Err(format!("chk in {what}:\n{got:?}\nexpected:\n{want:?}").into());
        }
        if !touched(devices, "chk2")?.is_empty() {
            return Err(format!("chk2 touched in {what}").into());
        }
    }
    // Totals over chk and chk2: 16 registers, 4 fields, 12 behaviours (none fired).
    let counts = |t: &Value| -> Vec<u64> {
        [
            "registers",
            "registers_touched",
            "registers_read",
            "registers_written",
            "fields",
            "fields_touched",
            "fields_read",
            "fields_written",
            "behaviours",
            "behaviours_fired",
        ]
        .iter()
        .map(|k| t[*k].as_u64().unwrap_or(u64::MAX))
        .collect()
    };
    for (what, totals, want) in [
        ("t1", &tests[0]["totals"], [16, 2, 2, 0, 4, 0, 0, 0, 12, 0]),
        ("t2", &tests[1]["totals"], [16, 2, 1, 2, 4, 2, 2, 2, 12, 0]),
        ("the total", &doc["totals"], [16, 5, 4, 2, 4, 2, 2, 2, 12, 0]),
    ] {
        if counts(totals) != want {
            return Err(format!("totals of {what}: {totals}").into());
        }
    }
    let table = std::fs::read_to_string(dir.join("coverage.txt"))?;
    let line = "test t2: registers 2/16 touched (12.5%), 1 read (6.2%), 2 written (12.5%); fields 2/4 touched (50.0%), 2 read (50.0%), 2 written (50.0%); behaviours 0/12 fired (0.0%)";
    if !table.lines().any(|l| l == line) {
        return Err(format!("the table lacks\n  {line}\nit is:\n{table}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `firmware/asm/checks_clean.S` makes the legal accesses to the same registers: no
/// finding, exit 0, an empty JSON list.
fn checker_finds_nothing_in_legal_accesses() -> Result<(), Failed> {
    let (out, trace, got, dir) = run_checked(CHECKS, "checks_clean", "checks-clean")?;
    expect_status(&out, 0)?;
    if !got.is_empty() || trace.iter().any(|l| l["kind"] == "finding") {
        return Err(format!("findings in legal accesses: {got:?}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `--expect-trace` with the recorded trace of described.S matches (exit 0); with one
/// value changed in the MODS line it fails with status 4 and names the register.
fn golden_trace_matches_and_names_the_first_difference() -> Result<(), Failed> {
    let expected = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/expected/described.trace.jsonl");
    let fw = firmware("described");
    let run = |expect: &Path| -> Result<Output, Failed> {
        Ok(mmiolab(&[
            "run",
            "--config",
            DESCRIBED,
            "--firmware",
            fw.to_str().ok_or("path is not UTF-8")?,
            "--timeout",
            "60",
            "--expect-trace",
            expect.to_str().ok_or("path is not UTF-8")?,
        ]))
    };
    let out = run(&expected)?;
    expect_status(&out, 0)?;
    let text = std::fs::read_to_string(&expected)?;
    let needle = r#""value":"0xaa00a35","device":"beh","offset":"0xc","reg":"MODS""#;
    if text.matches(needle).count() != 1 {
        return Err(format!("the expected trace should hold one MODS write of 0xaa00a35 ({needle})").into());
    }
    let dir = scratch("golden")?;
    let changed = dir.join("changed.jsonl");
    std::fs::write(
        &changed,
        text.replace(needle, &needle.replace("0xaa00a35", "0xaa00a36")),
    )?;
    let out = run(&changed)?;
    expect_status(&out, 4)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("first difference at beh.MODS (trace line 6, expected line 6)") {
        return Err(format!("stderr does not name beh.MODS at line 6:\n{stderr}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A trace recorded from checks_clean.S matches a new run also with the value of TICKS
/// (volatile in the description) changed, and no longer with the value of CFG changed.
fn golden_trace_skips_volatile_registers() -> Result<(), Failed> {
    let dir = scratch("golden-volatile")?;
    let recorded = dir.join("recorded.jsonl");
    let fw = firmware("checks_clean");
    let fw = fw.to_str().ok_or("path is not UTF-8")?;
    let rec = recorded.to_str().ok_or("path is not UTF-8")?;
    let out = mmiolab(&[
        "run",
        "--config",
        CHECKS,
        "--firmware",
        fw,
        "--timeout",
        "60",
        "--trace",
        rec,
    ]);
    expect_status(&out, 0)?;
    let text = std::fs::read_to_string(&recorded)?;
    let run = |expect: &Path| {
        mmiolab(&[
            "run",
            "--config",
            CHECKS,
            "--firmware",
            fw,
            "--timeout",
            "60",
            "--expect-trace",
            expect.to_str().unwrap_or_default(),
        ])
    };
    let changed = |name: &str, from: &str, to: &str| -> Result<PathBuf, Failed> {
        if text.matches(from).count() != 1 {
            return Err(format!("the recorded trace should hold `{from}` once").into());
        }
        let path = dir.join(format!("changed-{name}.jsonl"));
        std::fs::write(&path, text.replace(from, to))?;
        Ok(path)
    };
    let ticks = changed(
        "ticks",
        r#""op":"read","addr":"0xd0000020","width":4,"value":"0x100""#,
        r#""op":"read","addr":"0xd0000020","width":4,"value":"0x999""#,
    )?;
    expect_status(&run(&ticks), 0)?;
    let cfg = changed(
        "cfg",
        r#""op":"read","addr":"0xd0000008","width":4,"value":"0xb""#,
        r#""op":"read","addr":"0xd0000008","width":4,"value":"0x3""#,
    )?;
    let out = run(&cfg);
    expect_status(&out, 4)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("first difference at chk.CFG") {
        return Err(format!("stderr does not name chk.CFG:\n{stderr}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `mmiolab coverage` on the trace of firmware/asm/described.S: every figure as the
/// program's accesses give it (derived from reading described.S, not from the tool).
fn coverage_of_described_is_exact() -> Result<(), Failed> {
    let dir = scratch("coverage")?;
    let (out, _, doc) = run_with_coverage(&dir, DESCRIBED, "described", &[])?;
    expect_status(&out, 0)?;
    let devices = doc["devices"].as_array().ok_or("no devices")?;
    let names: Vec<&str> = devices.iter().filter_map(|d| d["device"].as_str()).collect();
    if names != ["beh", "be"] {
        return Err(format!("devices {names:?}").into());
    }
    // (register, reads, writes, fields read, fields written). Reads and writes that reach
    // the register: a width the register rejects (WIDE's byte accesses) reaches nothing.
    // STATUS: 4 reads and a write in the checks, then per level interrupt the handler's
    // read and W1C write, plus 3 and 2 reads after the first and second interrupt. SEQ:
    // 2 + 300 + 1 + 1 reads. DATA: 5 pushes and 5 pops over MMIO, 3 + 3 by rep outsl/insl.
    // 0x24: reads reach RXD, the write reaches TXD. 0x2c: BANK0 and BANK1 by LCR.DLAB.
    let all = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let none: Vec<String> = Vec::new();
    let beh: Vec<CoverageRow<&str>> = vec![
        ("ID", 3, 1, none.clone(), none.clone()),
        ("CTRL", 0, 2, none.clone(), all(&["GO", "IE"])),
        (
            "STATUS",
            11,
            3,
            all(&["DONE", "ERR", "CNT"]),
            all(&["DONE", "ERR", "CNT"]),
        ),
        (
            "MODS",
            2,
            1,
            all(&["S", "T", "Z", "W", "C", "ZS", "ZT"]),
            all(&["S", "T", "Z", "W", "C", "ZS", "ZT"]),
        ),
        ("ONCE", 1, 2, none.clone(), none.clone()),
        ("RDSET", 2, 1, none.clone(), none.clone()),
        ("SEQ", 304, 1, all(&["N", "SAT"]), all(&["N", "SAT"])),
        ("DATA", 8, 8, none.clone(), none.clone()),
        (
            "FSTAT",
            4,
            1,
            all(&["LEVEL", "EMPTY", "FULL", "OVR", "UDR"]),
            all(&["LEVEL", "EMPTY", "FULL", "OVR", "UDR"]),
        ),
        ("RXD", 2, 0, none.clone(), none.clone()),
        ("TXD", 0, 1, none.clone(), none.clone()),
        ("LCR", 0, 2, none.clone(), all(&["DLAB"])),
        ("BANK0", 1, 1, none.clone(), none.clone()),
        ("BANK1", 1, 1, none.clone(), none.clone()),
        ("WIDE", 1, 1, none.clone(), none.clone()),
        ("SPLIT", 2, 2, none.clone(), none.clone()),
        ("LATER", 0, 1, none.clone(), none.clone()),
        ("CH[0]", 0, 0, none.clone(), none.clone()),
        ("CH[1]", 1, 0, all(&["GO", "DONE"]), none.clone()),
        ("CH[2]", 1, 1, all(&["GO", "DONE"]), all(&["GO", "DONE"])),
        ("CH[3]", 0, 0, none.clone(), none.clone()),
    ];
    let be: Vec<CoverageRow<&str>> = vec![
        ("WORD", 2, 0, none.clone(), none.clone()),
        ("KICK", 0, 1, none.clone(), none.clone()),
        ("PEND", 3, 1, none.clone(), none.clone()),
    ];
    for (device, want) in devices.iter().zip([&beh, &be]) {
        let got = coverage_rows(device)?;
        let want: Vec<CoverageRow<String>> = want
            .iter()
            .map(|(n, r, w, fr, fw)| ((*n).to_owned(), *r, *w, fr.clone(), fw.clone()))
            .collect();
        if got != want {
            return Err(format!("{} registers:\n{got:?}\nexpected:\n{want:?}", device["device"]).into());
        }
    }
    // Behaviours, in description order: W1C and read-to-clear fields, FIFO full /
    // overflow / underflow, effects (one per array element), interrupts raised / lowered.
    // The handler's W1C clears STATUS.DONE twice and its read clears STATUS.CNT twice;
    // writing 2 clears ERR, 0x100 SEQ.SAT, 0x30000 FSTAT.OVR and UDR; the fourth push
    // fills rx, the fifth overflows, the fifth pop underflows; complete runs twice, count
    // once per SEQ read (304); only CH[2] is started. In "be", the handler's write clears
    // PEND, set once by the kick effect, whose edge is the one interrupt.
    let beh_behaviours: Vec<(&str, u64)> = vec![
        ("w1c STATUS.DONE", 2),
        ("w1c STATUS.ERR", 1),
        ("rclr STATUS.CNT", 2),
        ("w1c SEQ.SAT", 1),
        ("w1c FSTAT.OVR", 1),
        ("w1c FSTAT.UDR", 1),
        ("w1c CH[0].DONE", 0),
        ("w1c CH[1].DONE", 0),
        ("w1c CH[2].DONE", 0),
        ("w1c CH[3].DONE", 0),
        ("fifo rx full", 1),
        ("fifo rx overflow", 1),
        ("fifo rx underflow", 1),
        ("effect complete", 2),
        ("effect count", 304),
        ("effect echo", 1),
        ("effect later", 1),
        ("effect chan[0]", 0),
        ("effect chan[1]", 0),
        ("effect chan[2]", 1),
        ("effect chan[3]", 0),
        ("irq done raised", 2),
        ("irq done lowered", 2),
    ];
    let be_behaviours: Vec<(&str, u64)> = vec![("w1c PEND", 1), ("effect kick", 1), ("irq kick raised", 1)];
    for (device, want) in devices.iter().zip([&beh_behaviours, &be_behaviours]) {
        let got: Vec<(String, u64)> = device["behaviours"]
            .as_array()
            .ok_or("no behaviours")?
            .iter()
            .map(|b| {
                (
                    b["what"].as_str().unwrap_or("?").to_owned(),
                    b["fired"].as_u64().unwrap_or(u64::MAX),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = want.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect();
        if got != want {
            return Err(format!("{} behaviours:\n{got:?}\nexpected:\n{want:?}", device["device"]).into());
        }
    }
    // Totals: beh has 21 registers (CH[0] and CH[3] never touched; 15 read, 17 written)
    // and 28 declared fields (CTRL 2, STATUS 3, MODS 7, SEQ 2, FSTAT 5, LCR 1, CH 4 x 2),
    // of which 21 read, 22 written, 24 touched; 16 of 23 behaviours fired. be: 3
    // registers, all touched, 2 read, 2 written, no declared fields, 3 of 3 behaviours.
    let totals = serde_json::json!({
        "registers": 24, "registers_read": 17, "registers_written": 19, "registers_touched": 22,
        "fields": 28, "fields_read": 21, "fields_written": 22, "fields_touched": 24,
        "behaviours": 26, "behaviours_fired": 19
    });
    if doc["totals"] != totals {
        return Err(format!("totals {}\nexpected {totals}", doc["totals"]).into());
    }
    let table = std::fs::read_to_string(dir.join("coverage.txt"))?;
    let want_line = "total: registers 22/24 touched (91.7%), 17 read (70.8%), 19 written (79.2%); fields 24/28 touched (85.7%), 21 read (75.0%), 22 written (78.6%); behaviours 19/26 fired (73.1%)";
    if !table.lines().any(|l| l == want_line) {
        return Err(format!("the table lacks\n{want_line}\nit is:\n{table}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `mmiolab test --check` (here judging a recorded run: --from-log, --findings): a guest
/// test during which the checker found what the machine file does not allow fails itself,
/// the finding under it, besides `register-check`; an allowed finding fails nothing.
fn a_guest_test_with_a_finding_not_allowed_fails_itself() -> Result<(), Failed> {
    let dir = scratch("test-finding-fails-its-test")?;
    let log = dir.join("console.log");
    std::fs::write(&log, "KTAP version 1\n1..2\nok 1 t_bad\nok 2 t_fine\n")?;
    let finding = |test: &str, register: &str, allowed: bool| {
        serde_json::json!({
            "rule": "write-read-only", "device": "beh", "region": "beh", "register": register,
            "space": "mmio", "addr": "0xd0000000", "count": 1, "allowed": allowed,
            "module": test, "test": test,
        })
    };
    let findings = dir.join("findings.json");
    std::fs::write(
        &findings,
        serde_json::json!({ "findings": [finding("t_bad", "ID", false), finding("t_fine", "MODS", true)] }).to_string(),
    )?;
    let out = mmiolab(&[
        "test",
        "--config",
        DESCRIBED,
        "--check",
        "--from-log",
        path_str(&log)?,
        "--findings",
        path_str(&findings)?,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "FAIL t_bad")
        .ok_or_else(|| format!("t_bad did not fail:\n{stdout}"))?;
    let under = lines.get(at + 1).copied().unwrap_or_default();
    if !(under.starts_with("    # checker: ") && under.contains("write-read-only") && under.contains("ID")) {
        return Err(format!("the finding is not under FAIL t_bad:\n{stdout}").into());
    }
    for want in ["PASS t_fine", "FAIL register-check"] {
        if !lines.contains(&want) {
            return Err(format!("no `{want}`:\n{stdout}").into());
        }
    }
    if out.status.code() != Some(1) {
        return Err(format!("exit status {:?}:\n{stdout}", out.status.code()).into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// `mmiolab test --from-log LOG --trace T --expect-trace E` judges the trace of a run made
/// elsewhere: a `golden-trace` result that passes when T matches E and fails, naming the
/// register, when it does not (no guest is booted).
fn test_expect_trace_judges_a_recorded_trace() -> Result<(), Failed> {
    let expected = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/expected/described.trace.jsonl");
    let dir = scratch("test-expect-trace")?;
    let log = dir.join("console.log");
    std::fs::write(&log, "KTAP version 1\n1..1\nok 1 something\n")?;
    let text = std::fs::read_to_string(&expected)?;
    let changed = dir.join("changed.jsonl");
    let needle = r#""value":"0xaa00a35","device":"beh","offset":"0xc","reg":"MODS""#;
    std::fs::write(
        &changed,
        text.replace(needle, &needle.replace("0xaa00a35", "0xaa00a36")),
    )?;
    let judge = |trace: &Path| -> Result<String, Failed> {
        let out = mmiolab(&[
            "test",
            "--config",
            DESCRIBED,
            "--from-log",
            path_str(&log)?,
            "--trace",
            path_str(trace)?,
            "--expect-trace",
            path_str(&expected)?,
        ]);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let same = judge(&expected)?;
    if !same.lines().any(|l| l == "PASS golden-trace") {
        return Err(format!("no PASS golden-trace:\n{same}").into());
    }
    let differs = judge(&changed)?;
    let lines: Vec<&str> = differs.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "FAIL golden-trace")
        .ok_or_else(|| format!("no FAIL golden-trace:\n{differs}"))?;
    let detail = lines.get(at + 1).copied().unwrap_or_default();
    if detail != "    first difference at beh.MODS (trace line 6, expected line 6):" {
        return Err(format!("the failure says {detail:?}:\n{differs}").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The checker's console lines without their guest RIPs. Each finding made by a vCPU names
/// the RIP of its first access, which must lie inside the program (loaded at 1 MiB);
/// findings of the VMM thread (`no vCPU`) and the summary have none.
fn finding_lines(stderr: &str) -> Result<Vec<String>, Failed> {
    let mut lines = Vec::new();
    for l in stderr.lines().filter(|l| l.starts_with("mmiolab: check: ")) {
        let (text, rip) = match l.split_once("; RIP 0x") {
            Some((text, rest)) => {
                let (hex, after) = rest.split_once(' ').unwrap_or((rest, ""));
                let rip = u64::from_str_radix(hex, 16).map_err(|_| format!("bad RIP in {l}"))?;
                (
                    format!("{text}{}{after}", if after.is_empty() { "" } else { " " }),
                    Some(rip),
                )
            }
            None => (l.to_owned(), None),
        };
        let needs_rip = !l.contains(" finding(s), ") && !l.contains(", no vCPU, ");
        if needs_rip && !rip.is_some_and(|r| (0x10_0000..0x10_1000).contains(&r)) {
            return Err(format!("no RIP inside the program in `{l}`").into());
        }
        lines.push(text);
    }
    Ok(lines)
}
