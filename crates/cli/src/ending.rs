//! How mmiolab ends: one exit status per way a run (or any command) can end, the
//! summary line of a run, and where messages go when the outputs themselves fail.
//!
//! The table is [`STATUS_TABLE`]; `mmiolab --help` prints it and docs/reliability.md
//! repeats it (a test checks the two agree).

use std::io::{self, Write};
use std::os::fd::AsRawFd;

use mmiolab_vmm::output::HostFd;
use mmiolab_vmm::signals::signal_name;
use mmiolab_vmm::{RunReport, StopReason};

/// The guest faulted: triple fault, unhandled exit, emulation failure, a failed vCPU.
pub const FAULT: u8 = 1;
/// A Linux guest panicked (pvpanic).
pub const GUEST_PANIC: u8 = 2;
/// The command line is wrong.
pub const USAGE: u8 = 64;
/// An input was refused: the machine file, a payload, a description, a console log, or an
/// output path that names an input.
pub const INPUT: u8 = 65;
/// mmiolab or the host failed: /dev/kvm, a KVM call, a thread, an event source.
pub const HOST: u8 = 70;
/// An output could not be written: the console, the trace, a FIFO's file, a report.
pub const OUTPUT: u8 = 74;
/// `run --check` found a register rule broken that the machine file does not allow, and
/// the status would otherwise have been 0.
pub const FINDINGS: u8 = 3;
/// `run --expect-trace` found the trace different from the expected one, and the status
/// would otherwise have been 0 (and no finding made it 3).
pub const TRACE_DIFFERS: u8 = 4;
/// `--timeout` passed with the guest still running.
pub const TIMEOUT: u8 = 124;
/// Standard output or standard error was closed (a broken pipe): the shell's status for a
/// program killed by SIGPIPE, without the kill.
pub const CLOSED: u8 = 128 + 13;

/// A seccomp filter blocked a system call (mmiolab_vmm::seccomp): the report on stderr
/// names the call and the thread. The SIGSYS handler exits with it directly, so only the
/// table and its test name it here.
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the SIGSYS handler exits with the value itself")
)]
pub const SECCOMP: u8 = mmiolab_vmm::seccomp::BLOCKED_STATUS;

/// The exit status for a run stopped by signal `signo`: the shell's 128 + signal number.
pub fn signal_status(signo: i32) -> u8 {
    u8::try_from(128 + signo).unwrap_or(u8::MAX)
}

/// Every exit status and what it means (`mmiolab --help`, docs/reliability.md).
pub const STATUS_TABLE: &str = "\
Exit status:
  0      run: the guest powered off or reset the machine, or wrote 0 to the test-exit port,
         or reached the --snapshot-after marker (the snapshot is written); other commands:
         success
  N      run: the guest wrote N (1-255) to the test-exit port 0xf4; values that collide with
         the ones below are the guest's choice (the summary on stderr says which it was)
  1      run: the guest faulted (triple fault, unhandled exit, emulation failure), or ended
         without reaching the --snapshot-after marker; test: a test failed or the guest's
         run did not end cleanly
  2      the guest kernel panicked (pvpanic)
  3      run --check: a broken register rule the machine file does not allow (when the
         status would otherwise be 0)
  4      run --expect-trace: the trace differs from the expected one (likewise)
  64     the command line is wrong
  65     an input was refused: machine file, firmware, kernel, initrd, description, console
         log, or an output path that names one of them; a --restore snapshot that does
         not fit the machine file or is damaged
  70     mmiolab or the host failed: /dev/kvm, a KVM call, a thread, an event source
  74     an output could not be written: the console (stdout), the trace, a FIFO's file, a
         report; the cause is printed once
  124    --timeout passed with the guest still running
  129    stopped by SIGHUP; 130 by SIGINT; 143 by SIGTERM (128 + the signal number)
  141    standard output or standard error was closed (a broken pipe); quiet
  159    run, test: a seccomp filter blocked a system call (a bug: stderr names the call and
         the thread; the run ends at once, without a summary); --no-seccomp runs unfiltered
Every run that started the guest prints a summary line on stderr (unless --quiet or stderr
is gone) and leaves a complete trace, whichever way it ended.";

/// Writes `message` and a newline to standard error, without ever blocking for long or
/// panicking: a stderr that nobody reads, or that is closed or full, loses the message
/// (there is nowhere else to say it) rather than hang or crash mmiolab.
pub fn say(message: &str) {
    let mut line = String::with_capacity(message.len() + 1);
    line.push_str(message);
    line.push('\n');
    let mut err = HostFd::stderr();
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        if !writable_soon(&err) {
            return;
        }
        match err.write(rest) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
        }
    }
}

/// Whether `fd` can take a write within a few seconds (a hang guard for a blocked stderr).
fn writable_soon(fd: &HostFd) -> bool {
    const WAIT_MS: i32 = 3_000;
    let mut p = libc::pollfd {
        fd: fd.fd().as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, WAIT_MS) };
    n == 1 && p.revents & libc::POLLOUT != 0
}

/// A failure to write one of mmiolab's own outputs (standard output, a report file).
#[derive(Debug)]
pub struct OutputError {
    /// What was being written ("standard output").
    pub what: String,
    /// Why.
    pub source: io::Error,
}

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}: {}", self.what, self.source)
    }
}

// No `source()`: the message already holds the cause, and anyhow would print it twice.
impl std::error::Error for OutputError {}

impl OutputError {
    /// A reader that went away: a quiet ending.
    pub fn is_closed(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes all of `bytes` to standard output and flushes it.
pub fn to_stdout(bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| OutputError {
            what: "standard output".to_owned(),
            source,
        })
}

/// The exit status for a command that failed with `e`, and whether to stay quiet about it.
pub fn error_status(e: &anyhow::Error) -> (u8, bool) {
    use mmiolab_vmm::Error as VmmError;
    use mmiolab_vmm::files::FileError;
    let file_status = |f: &FileError| match f {
        FileError::IsInput { .. } | FileError::BadOutput { .. } => INPUT,
        FileError::Write { .. } => OUTPUT,
        _ => INPUT,
    };
    for cause in e.chain() {
        if let Some(o) = cause.downcast_ref::<OutputError>() {
            return if o.is_closed() { (CLOSED, true) } else { (OUTPUT, false) };
        }
        if let Some(v) = cause.downcast_ref::<VmmError>() {
            return match v {
                VmmError::Config(_) | VmmError::Load { .. } | VmmError::NoPayload | VmmError::BootSetup(_) => {
                    (INPUT, false)
                }
                VmmError::Input(f) | VmmError::Output(f) => (file_status(f), false),
                // A snapshot that does not fit the machine, or is damaged, is a bad input;
                // one that cannot be written is a failed output.
                VmmError::Snapshot(_) => (INPUT, false),
                VmmError::SnapshotFile(e) if e.is_write() => (OUTPUT, false),
                VmmError::SnapshotFile(_) => (INPUT, false),
                VmmError::SnapshotSave(_) => (HOST, false),
                VmmError::KvmOpen(_)
                | VmmError::Kvm(..)
                | VmmError::Memory(_)
                | VmmError::Host(..)
                | VmmError::Seccomp(_) => (HOST, false),
            };
        }
        if let Some(f) = cause.downcast_ref::<FileError>() {
            return (file_status(f), false);
        }
        if cause.is::<mmiolab_vmm::config::ConfigError>()
            || cause.is::<mmiolab_regmodel::DescriptionError>()
            || cause.is::<mmiolab_regmodel::header::HeaderError>()
        {
            return (INPUT, false);
        }
    }
    (HOST, false)
}

/// What ended a run, in words, and its exit status.
pub fn describe(reason: &StopReason) -> (u8, String) {
    match reason {
        StopReason::ExitDevice(v) => (*v, format!("guest wrote {v:#x} to the test-exit port")),
        StopReason::GuestReset => (0, "guest reset the machine".to_owned()),
        StopReason::GuestPowerOff => (0, "guest powered the machine off".to_owned()),
        StopReason::GuestPanic => (GUEST_PANIC, "guest kernel panicked (pvpanic)".to_owned()),
        StopReason::Fault(_) => (FAULT, "guest fault".to_owned()),
        StopReason::Timeout(after) => (TIMEOUT, format!("timeout: the guest was still running after {after:?}")),
        StopReason::Signal(signo) => (signal_status(*signo), format!("stopped by {}", signal_name(*signo))),
        StopReason::Output(f) if f.closed => (CLOSED, format!("{} was closed (broken pipe)", f.output)),
        StopReason::Output(f) => (OUTPUT, format!("{} could not be written: {}", f.output, f.cause)),
        StopReason::Snapshot(marker) => (0, format!("stopped for a snapshot at {marker}")),
    }
}

/// The exit status of a finished run, after printing its report on stderr: the fault
/// report (always), the trace's failure (always), and the summary line (unless `quiet`).
pub fn finish_run(report: &RunReport, quiet: bool, verdict: Option<(u8, &str)>) -> u8 {
    let (mut status, mut what) = describe(&report.reason);
    // The checker's or the golden trace's verdict replaces only a success.
    if let Some((code, why)) = verdict
        && status == 0
    {
        status = code;
        what = format!("{what}; but {why}");
    }
    if let StopReason::Fault(details) = &report.reason {
        say(&format!("mmiolab: guest stopped with a fault:\n{details}"));
    }
    if let Some(e) = &report.trace_error {
        match &report.reason {
            // The run already ended for this failure: add only what is known now.
            StopReason::Output(f) if f.output.starts_with("the trace") => {
                what = format!("{what} ({} records not written)", e.unwritten);
            }
            _ => {
                what = format!("{what}; but the trace could not be written whole: {e}");
                status = OUTPUT;
            }
        }
    }
    if let Some(dir) = &report.snapshot {
        what = format!("{what}, written to {}", dir.display());
    }
    if !quiet {
        let u = report.unmapped;
        say(&format!(
            "mmiolab: {what}; exit status {status}; {} exits; unmapped accesses: {} MMIO reads, {} MMIO writes, {} port reads, {} port writes{}",
            report.exits,
            u.mmio_reads,
            u.mmio_writes,
            u.pio_reads,
            u.pio_writes,
            if report.int3_reinjected > 0 {
                format!(
                    "; {} INT3 re-injected (host KVM cannot emulate them)",
                    report.int3_reinjected
                )
            } else {
                String::new()
            }
        ));
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_vmm::OutputFailure;
    use mmiolab_vmm::mmiolab_bus::UnmappedCounts;

    #[test]
    fn the_snapshot_stop_reads_as_mmiolab_test_finds_it_in_a_log() {
        let marker = mmiolab_vmm::snapshot::Marker::parse("console:KTAP").unwrap();
        let (status, what) = describe(&marker.reason());
        assert_eq!(status, 0);
        assert!(
            format!("mmiolab: {what}").starts_with(crate::guest_test::SNAPSHOT_STOP),
            "{what}"
        );
    }

    #[test]
    fn every_ending_has_its_status() {
        let closed = OutputFailure {
            output: "standard output".into(),
            cause: "Broken pipe".into(),
            closed: true,
        };
        let full = OutputFailure {
            output: "the trace file t".into(),
            cause: "No space left on device".into(),
            closed: false,
        };
        for (reason, status) in [
            (StopReason::ExitDevice(42), 42),
            (StopReason::GuestPowerOff, 0),
            (StopReason::GuestReset, 0),
            (StopReason::Snapshot("a write to port 0xf8".into()), 0),
            (StopReason::GuestPanic, 2),
            (StopReason::Fault("x".into()), 1),
            (StopReason::Timeout(std::time::Duration::from_secs(1)), 124),
            (StopReason::Signal(libc::SIGINT), 130),
            (StopReason::Signal(libc::SIGTERM), 143),
            (StopReason::Signal(libc::SIGHUP), 129),
            (StopReason::Output(closed), 141),
            (StopReason::Output(full), 74),
        ] {
            assert_eq!(describe(&reason).0, status, "{reason:?}");
            let line = format!("  {status:<6} ");
            let listed = STATUS_TABLE.contains(&line) || STATUS_TABLE.contains(&format!("; {status} by"));
            assert!(listed || status == 42, "status {status} is not in the table");
        }
        assert!(STATUS_TABLE.contains(&format!("  {SECCOMP:<6} ")));
        assert_eq!(SECCOMP, 159);
    }

    #[test]
    fn a_trace_that_fails_at_the_end_turns_a_clean_run_into_an_output_failure() {
        let report = RunReport {
            reason: StopReason::ExitDevice(0),
            unmapped: UnmappedCounts::default(),
            exits: 1,
            int3_reinjected: 0,
            trace_error: Some(mmiolab_vmm::trace::TraceFailure {
                cause: std::io::Error::other("No space left on device"),
                unwritten: 1,
            }),
            findings: Vec::new(),
            snapshot: None,
        };
        assert_eq!(finish_run(&report, true, None), OUTPUT);
        // A checker's verdict replaces only a success.
        assert_eq!(finish_run(&report, true, Some((FINDINGS, "findings"))), OUTPUT);
        let clean = RunReport {
            trace_error: None,
            ..report
        };
        assert_eq!(finish_run(&clean, true, Some((FINDINGS, "findings"))), FINDINGS);
    }
}
