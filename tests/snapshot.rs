//! Snapshot and restore under real KVM (docs/snapshot.md): `firmware/asm/snapshot.S` is
//! stopped at its marker by one mmiolab process and resumed by another, and must find its
//! registers, RAM, device counters, FIFO, waiting effect and pending level interrupt as it
//! left them (its exit status is the number of the first check that failed); the console and
//! the trace go on where they stopped. A snapshot that does not fit the machine, or is
//! damaged, is refused with what is wrong named.
//!
//! Where /dev/kvm cannot be opened, the KVM tests are reported as ignored, never as passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

#[path = "support/status.rs"]
mod status;
use status::expect_status;

const DESCRIBED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/described.toml");

fn main() {
    let args = Arguments::from_args();
    let kvm_missing = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("/dev/kvm cannot be opened read-write: {e}"));
    if let Some(reason) = &kvm_missing {
        eprintln!("KVM tests are ignored: {reason}");
    }
    let kvm = |name: &'static str, f: fn() -> Result<(), Failed>| {
        Trial::test(name, f).with_ignored_flag(kvm_missing.is_some())
    };
    let trials = vec![
        kvm(
            "a_program_resumes_where_the_port_marker_stopped_it",
            a_program_resumes_where_the_port_marker_stopped_it,
        ),
        kvm(
            "a_console_marker_splits_the_console_output_exactly",
            a_console_marker_splits_the_console_output_exactly,
        ),
        kvm(
            "a_snapshot_restores_again_and_again",
            a_snapshot_restores_again_and_again,
        ),
        kvm(
            "another_machine_file_is_refused_naming_the_difference",
            another_machine_file_is_refused_naming_the_difference,
        ),
        kvm(
            "a_damaged_or_cut_snapshot_is_refused",
            a_damaged_or_cut_snapshot_is_refused,
        ),
        kvm(
            "a_marker_never_reached_fails_the_run",
            a_marker_never_reached_fails_the_run,
        ),
        Trial::test("bad_snapshot_options_are_refused", bad_snapshot_options_are_refused),
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn mmiolab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(args)
        .output()
        .expect("mmiolab runs")
}

fn program() -> Result<String, Failed> {
    let fw = mmiolab_firmware::elf("snapshot").ok_or("no bundled firmware `snapshot`")?;
    Ok(fw.to_str().ok_or("path is not UTF-8")?.to_owned())
}

/// A scratch directory for one test, removed by the test when it passes.
fn scratch(name: &str) -> Result<PathBuf, Failed> {
    let dir = std::env::temp_dir().join(format!("mmiolab-snapshot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn s(p: &Path) -> Result<&str, Failed> {
    Ok(p.to_str().ok_or("path is not UTF-8")?)
}

fn trace_of(path: &Path) -> Result<Vec<Value>, Failed> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?)
}

/// Runs the program on the described machine up to `marker`, snapshotting into `dir/snap`,
/// with a trace in `dir/before.jsonl`.
fn take(dir: &Path, marker: &str) -> Result<(Output, PathBuf), Failed> {
    let snap = dir.join("snap");
    let trace = dir.join("before.jsonl");
    let fw = program()?;
    let out = mmiolab(&[
        "run",
        "--config",
        DESCRIBED,
        "--firmware",
        &fw,
        "--timeout",
        "60",
        "--trace",
        s(&trace)?,
        "--snapshot-after",
        marker,
        "--snapshot-dir",
        s(&snap)?,
    ]);
    expect_status(&out, 0)?;
    Ok((out, snap))
}

/// Resumes `snap` on `machine`, traced into `trace`.
fn restore(machine: &str, snap: &Path, trace: &Path) -> Output {
    mmiolab(&[
        "run",
        "--config",
        machine,
        "--restore",
        snap.to_str().unwrap_or_default(),
        "--timeout",
        "60",
        "--trace",
        trace.to_str().unwrap_or_default(),
    ])
}

fn a_program_resumes_where_the_port_marker_stopped_it() -> Result<(), Failed> {
    let dir = scratch("port")?;
    let (out, snap) = take(&dir, "port")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("stopped for a snapshot at a write to port 0xf8, written to") {
        return Err(format!("stderr: {err}").into());
    }
    if out.stdout != b"A\nSNAP\n" {
        return Err(format!("console before: {:?}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let before = trace_of(&dir.join("before.jsonl"))?;
    let last = before.last().ok_or("empty trace")?;
    if last["device"] != "snapshot-marker" || last["op"] != "write" {
        return Err(format!("the trace does not end at the marker: {last}").into());
    }
    // The state the program's checks rely on is in the snapshot, as the format says.
    let state: Value = serde_json::from_str(&std::fs::read_to_string(snap.join("state.json"))?)?;
    let beh = state["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "beh"))
        .ok_or("no state for device beh")?;
    let engine = &beh["saved"]["state"];
    if engine["fifos"] != serde_json::json!([[0xb1, 0xb2, 0xb3]]) {
        return Err(format!("FIFO state: {}", engine["fifos"]).into());
    }
    if engine["irq"] != 1 || engine["pending"].as_array().map(Vec::len) != Some(1) {
        return Err(format!("irq level / waiting effect: {engine}").into());
    }
    if state["trace_seq"] != last["seq"].as_u64().ok_or("seq")? + 1 {
        return Err(format!("trace_seq {} after seq {}", state["trace_seq"], last["seq"]).into());
    }

    // A new process resumes it: every check of the program passes.
    let after_trace = dir.join("after.jsonl");
    let out = restore(DESCRIBED, &snap, &after_trace);
    expect_status(&out, 0)?;
    if out.stdout != b"B\n" {
        return Err(format!("console after: {:?}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let after = trace_of(&after_trace)?;
    let first = after.first().ok_or("empty trace after the restore")?;
    if first["seq"] != last["seq"].as_u64().ok_or("seq")? + 1 {
        return Err(format!("the trace restarts at {first} after {last}").into());
    }
    // Its first access is the 'B' on COM1: the `out` to the marker port was completed before
    // the save, not repeated.
    if first["device"] != "serial" || first["value"] != "0x42" {
        return Err(format!("first access after the restore: {first}").into());
    }
    // The waiting effect fired on the second access after the restore, and the pending
    // interrupt was taken once (the handler's W1C of DONE|ERR).
    let status_reads: Vec<&Value> = after
        .iter()
        .filter(|r| r["reg"] == "STATUS" && r["op"] == "read")
        .collect();
    if status_reads.first().map(|r| &r["value"]) != Some(&Value::from("0xa50003")) {
        return Err(format!("first STATUS read after the restore: {:?}", status_reads.first()).into());
    }
    let acks = after
        .iter()
        .filter(|r| r["reg"] == "STATUS" && r["op"] == "write" && r["value"] == "0x3")
        .count();
    if acks != 1 {
        return Err(format!("{acks} acknowledgements of the level interrupt, expected 1").into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn a_console_marker_splits_the_console_output_exactly() -> Result<(), Failed> {
    let dir = scratch("console")?;
    let fw = program()?;
    let whole = mmiolab(&["run", "--config", DESCRIBED, "--firmware", &fw, "--timeout", "60"]);
    expect_status(&whole, 0)?;
    let (out, snap) = take(&dir, "console:SNAP")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("stopped for a snapshot at the console printed `SNAP`") {
        return Err(format!("stderr: {err}").into());
    }
    // The snapshot is taken on the text's last byte: the newline comes after the restore.
    if out.stdout != b"A\nSNAP" {
        return Err(format!("console before: {:?}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let resumed = restore(DESCRIBED, &snap, &dir.join("after.jsonl"));
    expect_status(&resumed, 0)?;
    let joined = [out.stdout, resumed.stdout].concat();
    if joined != whole.stdout {
        return Err(format!(
            "console split {:?}, whole run {:?}",
            String::from_utf8_lossy(&joined),
            String::from_utf8_lossy(&whole.stdout)
        )
        .into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn a_snapshot_restores_again_and_again() -> Result<(), Failed> {
    let dir = scratch("again")?;
    let (_, snap) = take(&dir, "port")?;
    let memory = std::fs::read(snap.join("memory.bin"))?;
    for i in 0..3 {
        let out = restore(DESCRIBED, &snap, &dir.join(format!("after{i}.jsonl")));
        expect_status(&out, 0)?;
    }
    // Mapped copy-on-write: the guest's writes never reached the file.
    if std::fs::read(snap.join("memory.bin"))? != memory {
        return Err("restoring changed the snapshot's memory file".into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn another_machine_file_is_refused_naming_the_difference() -> Result<(), Failed> {
    let dir = scratch("machine")?;
    let (_, snap) = take(&dir, "port")?;
    let text = std::fs::read_to_string(DESCRIBED)?
        .replace("irq = 6", "irq = 7")
        .replace("memory_mib = 64", "memory_mib = 128");
    let other = dir.join("other.toml");
    std::fs::write(&other, text)?;
    // Relative description paths resolve from the machine file's directory.
    std::os::unix::fs::symlink(
        Path::new(DESCRIBED).parent().ok_or("no parent")?.join("devices"),
        dir.join("devices"),
    )?;
    let out = restore(s(&other)?, &snap, &dir.join("after.jsonl"));
    expect_status(&out, 65)?;
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "was taken on another machine",
        "the snapshot has 64 MiB of RAM, the machine file 128 MiB",
        "device `be` has interrupt pins [6] in the snapshot, [7] in the machine file",
    ] {
        if !err.contains(want) {
            return Err(format!("stderr lacks {want:?}: {err}").into());
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn a_damaged_or_cut_snapshot_is_refused() -> Result<(), Failed> {
    let dir = scratch("damaged")?;
    let (_, snap) = take(&dir, "port")?;
    let refused = |what: &str, want: &str| -> Result<(), Failed> {
        let out = restore(DESCRIBED, &snap, &dir.join("after.jsonl"));
        expect_status(&out, 65).map_err(|e| format!("{what}: {e:?}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains(want) {
            return Err(format!("{what}: stderr lacks {want:?}: {err}").into());
        }
        Ok(())
    };
    // A flipped byte in the state.
    let state_path = snap.join("state.json");
    let state = std::fs::read(&state_path)?;
    let mut flipped = state.clone();
    let at = flipped.iter().position(|&b| b == b'0').ok_or("no digit")?;
    flipped[at] = b'1';
    std::fs::write(&state_path, &flipped)?;
    refused("a damaged state", "the file is damaged")?;
    std::fs::write(&state_path, &state)?;
    // The memory file cut short.
    let memory = snap.join("memory.bin");
    let len = std::fs::metadata(&memory)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&memory)?
        .set_len(len - 4096)?;
    refused("a cut memory file", "the file was cut or replaced")?;
    // No manifest: a snapshot whose writing was cut short.
    std::fs::remove_file(snap.join("manifest.json"))?;
    refused("no manifest", "is not a snapshot")?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn a_marker_never_reached_fails_the_run() -> Result<(), Failed> {
    let dir = scratch("never")?;
    let fw = program()?;
    let snap = dir.join("snap");
    let out = mmiolab(&[
        "run",
        "--config",
        DESCRIBED,
        "--firmware",
        &fw,
        "--timeout",
        "60",
        "--snapshot-after",
        "console:NEVER PRINTED",
        "--snapshot-dir",
        s(&snap)?,
    ]);
    // The guest's own clean exit does not hide that there is no snapshot.
    expect_status(&out, 1)?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("the guest never reached the snapshot marker: no snapshot was written") {
        return Err(format!("stderr: {err}").into());
    }
    if snap.join("manifest.json").exists() {
        return Err("a manifest was written".into());
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn bad_snapshot_options_are_refused() -> Result<(), Failed> {
    let out = mmiolab(&["run", "--snapshot-after", "tty:x", "--snapshot-dir", "/nonexistent"]);
    expect_status(&out, 64)?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.contains("give `port`") {
        return Err(format!("stderr: {err}").into());
    }
    let out = mmiolab(&["run", "--snapshot-after", "port"]);
    expect_status(&out, 64)?;
    let out = mmiolab(&["run", "--restore", "/x", "--firmware", "/y"]);
    expect_status(&out, 64)?;
    Ok(())
}
