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

const MACHINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/baremetal.toml");
const DESCRIBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/described.toml");

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
            "fifo_host_sides_carry_data_through_files",
            fifo_host_sides_carry_data_through_files,
        ),
        kvm(
            "fifo_host_sides_carry_data_through_a_unix_socket",
            fifo_host_sides_carry_data_through_a_unix_socket,
        ),
        Trial::test("tree_prints_both_address_spaces", tree_prints_both_address_spaces),
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
    let dir = std::env::temp_dir().join(format!("mmiolab-test-{}-{program}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
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
    std::fs::remove_dir_all(&dir)?;
    Ok((out, lines))
}

fn expect_status(out: &Output, status: i32) -> Result<(), Failed> {
    if out.status.code() == Some(status) {
        return Ok(());
    }
    Err(format!(
        "expected exit status {status}, got {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
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
