//! What mmiolab promises about how it ends, what it reads and what it writes
//! (docs/reliability.md), checked on the real binary: runs stopped through a pty and by
//! kill, closed, full and blocked outputs, a trace on a full disk, outputs that would
//! clobber inputs, inputs that are not files or are too big, payloads the machine cannot
//! run (ELF files generated here), `mmiolab test` on guests that end badly after passing
//! KTAP, and a guest flooding the log.
//!
//! Guards: every child runs under a generous hang guard (it is killed and the test fails
//! if it is still running after [`GUARD`]); no assertion is about how long something took.
//! Where /dev/kvm cannot be opened, the tests that boot a guest are reported as ignored,
//! with the reason, never as passed.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

#[path = "reliability/payload_files.rs"]
mod payload_files;
use payload_files::{EXIT7, PT_LOAD, PT_NOTE, bzimage, elf, pvh_elf};
#[path = "reliability/seccomp.rs"]
mod seccomp;

const MACHINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/baremetal.toml");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// A child still running after this long is hung: killed, and the test fails.
const GUARD: Duration = Duration::from_secs(120);

fn main() {
    let args = Arguments::from_args();
    let kvm_missing = match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm cannot be opened read-write: {e}")),
    };
    if let Some(reason) = &kvm_missing {
        eprintln!("KVM tests are ignored: {reason}");
    }
    let kvm = |name: &'static str, f: fn() -> Result<(), Failed>| {
        Trial::test(name, f).with_ignored_flag(kvm_missing.is_some())
    };
    let plain = |name: &'static str, f: fn() -> Result<(), Failed>| Trial::test(name, f);
    let trials = vec![
        // How runs end.
        kvm(
            "sigint_through_a_pty_ends_the_run_cleanly",
            sigint_through_a_pty_ends_the_run_cleanly,
        ),
        kvm("sigterm_ends_the_run_cleanly", || stop_by_kill(libc::SIGTERM)),
        kvm("sigint_ends_the_run_cleanly", || stop_by_kill(libc::SIGINT)),
        kvm("sighup_ends_the_run_cleanly", || stop_by_kill(libc::SIGHUP)),
        kvm(
            "timeout_holds_while_stdout_is_blocked",
            timeout_holds_while_stdout_is_blocked,
        ),
        kvm(
            "closed_stdout_ends_a_printing_guest_quietly",
            closed_stdout_ends_a_printing_guest_quietly,
        ),
        kvm(
            "closed_stdout_ends_a_silent_guest_quietly",
            closed_stdout_ends_a_silent_guest_quietly,
        ),
        kvm("closed_stderr_ends_the_run", closed_stderr_ends_the_run),
        kvm(
            "full_stdout_ends_the_run_reported_once",
            full_stdout_ends_the_run_reported_once,
        ),
        kvm(
            "trace_write_error_ends_the_run_reported_once",
            trace_write_error_ends_the_run_reported_once,
        ),
        kvm(
            "trace_on_a_full_disk_keeps_only_whole_lines",
            trace_on_a_full_disk_keeps_only_whole_lines,
        ),
        kvm(
            "guest_endings_have_their_documented_statuses",
            guest_endings_have_their_documented_statuses,
        ),
        plain("exit_statuses_are_documented_alike", exit_statuses_are_documented_alike),
        // Output errors in every subcommand.
        plain(
            "full_stdout_in_every_subcommand_is_reported_once",
            full_stdout_in_every_subcommand_is_reported_once,
        ),
        plain(
            "closed_stdout_in_every_subcommand_is_quiet",
            closed_stdout_in_every_subcommand_is_quiet,
        ),
        plain(
            "header_on_a_full_disk_leaves_the_old_file",
            header_on_a_full_disk_leaves_the_old_file,
        ),
        // Clobbering.
        plain("outputs_never_overwrite_inputs", outputs_never_overwrite_inputs),
        plain(
            "a_run_refused_before_the_guest_starts_leaves_outputs_alone",
            a_run_refused_before_the_guest_starts_leaves_outputs_alone,
        ),
        // Inputs.
        plain(
            "inputs_that_are_not_files_or_too_big_are_refused_at_once",
            inputs_that_are_not_files_or_too_big_are_refused_at_once,
        ),
        plain(
            "payloads_the_machine_cannot_run_are_refused_with_the_reason",
            payloads_the_machine_cannot_run_are_refused_with_the_reason,
        ),
        plain(
            "kernels_and_initrds_that_do_not_fit_are_refused",
            kernels_and_initrds_that_do_not_fit_are_refused,
        ),
        kvm("elf32_and_elf64_pvh_kernels_boot", elf32_and_elf64_pvh_kernels_boot),
        kvm("elf32_firmware_boots", elf32_firmware_boots),
        // Machine files.
        plain(
            "command_line_overrides_are_blamed_on_the_option",
            command_line_overrides_are_blamed_on_the_option,
        ),
        plain(
            "machine_values_that_cannot_work_are_refused",
            machine_values_that_cannot_work_are_refused,
        ),
        // `mmiolab test`.
        kvm(
            "mmiolab_test_judges_how_the_run_ended",
            mmiolab_test_judges_how_the_run_ended,
        ),
        // Logs.
        kvm(
            "a_guest_flood_is_rate_limited_in_the_log",
            a_guest_flood_is_rate_limited_in_the_log,
        ),
        // Confinement.
        kvm(
            "every_thread_of_a_run_is_filtered",
            seccomp::every_thread_of_a_run_is_filtered,
        ),
        kvm(
            "a_blocked_call_ends_the_run_naming_it",
            seccomp::a_blocked_call_ends_the_run_naming_it,
        ),
        kvm(
            "mmiolab_test_reports_are_written_under_the_filter",
            seccomp::mmiolab_test_reports_are_written_under_the_filter,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// The mmiolab under test: this build's, or the one `MMIOLAB_BIN` names (to run these
/// checks against another build, e.g. an older one, and see which promises it breaks).
fn bin() -> String {
    std::env::var("MMIOLAB_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mmiolab").to_owned())
}

fn firmware(name: &str) -> PathBuf {
    mmiolab_firmware::elf(name).unwrap_or_else(|| panic!("no bundled firmware `{name}`"))
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mmiolab-reliability-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// mmiolab with `args`, default dispositions for the stop signals (a test run from a
/// background shell may inherit SIGINT ignored, which mmiolab rightly respects).
/// `mmiolab run` of the `forever` program (it prints and accesses devices until stopped) on
/// the test machine, traced to `trace`, ended by `--timeout SECS` when given.
fn forever(trace: &str, timeout: Option<&str>) -> Command {
    let fw = firmware("forever");
    let mut args = vec!["run", "-c", MACHINE, "--firmware", s(&fw), "--trace", trace];
    if let Some(secs) = timeout {
        args.extend(["--timeout", secs]);
    }
    mmiolab(&args)
}

fn mmiolab(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("RUST_LOG");
    // SAFETY: only async-signal-safe calls (signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// Waits for `child`, killing it (and failing) if it is still running after [`GUARD`].
fn wait_guarded(child: &mut Child) -> Result<ExitStatus, Failed> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > GUARD {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("mmiolab hung: still running after {GUARD:?}, killed").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to the end under the hang guard, stdout and stderr captured (in files, so a
/// child that writes a lot never blocks on a pipe).
fn output(cmd: &mut Command) -> Result<Output, Failed> {
    run_captured(cmd, None)
}

/// As [`output`], with stdout going to `stdout` (then `Output::stdout` is empty).
fn output_to(cmd: &mut Command, stdout: impl Into<Stdio>) -> Result<Output, Failed> {
    run_captured(cmd, Some(stdout.into()))
}

fn run_captured(cmd: &mut Command, stdout: Option<Stdio>) -> Result<Output, Failed> {
    let dir = Scratch::new(&format!("out-{}", next_id()));
    let (out, err) = (dir.path("stdout"), dir.path("stderr"));
    let captured = stdout.is_none();
    let stdout = match stdout {
        Some(s) => s,
        None => File::create(&out)?.into(),
    };
    let mut child = cmd
        .stdout(stdout)
        .stderr(File::create(&err)?)
        .stdin(Stdio::null())
        .spawn()?;
    let status = wait_guarded(&mut child)?;
    Ok(Output {
        status,
        stdout: if captured { std::fs::read(&out)? } else { Vec::new() },
        stderr: std::fs::read(&err)?,
    })
}

fn next_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Polls `cond` until it holds (the guest got going), failing after [`GUARD`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), Failed> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > GUARD {
            return Err(format!("gave up waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `e` with `what` in front of its message.
fn ctx(e: Failed, what: impl std::fmt::Display) -> Failed {
    format!("{what}: {}", e.message().unwrap_or("(no message)")).into()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expect_code(status: ExitStatus, want: i32, stderr: &str) -> Result<(), Failed> {
    match status.code() {
        Some(c) if c == want => Ok(()),
        Some(c) => Err(format!("exit status {c}, expected {want}\nstderr:\n{stderr}").into()),
        None => Err(format!(
            "killed by signal {:?}, expected exit status {want}\nstderr:\n{stderr}",
            status.signal()
        )
        .into()),
    }
}

fn expect_in(haystack: &str, needle: &str) -> Result<(), Failed> {
    if haystack.contains(needle) {
        Ok(())
    } else {
        Err(format!("expected `{needle}` in:\n{haystack}").into())
    }
}

/// No Rust panic, no backtrace: an error is reported by mmiolab, not by a crash.
fn expect_no_panic(stderr: &str) -> Result<(), Failed> {
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("mmiolab panicked:\n{stderr}").into());
    }
    Ok(())
}

/// What a `forever` trace says: the number of console bytes the guest wrote (serial
/// writes), and the last value it stored at 0xd0000020 (none if it never stored).
struct TraceCheck {
    serial_writes: u64,
    last_store: Option<u64>,
}

/// Reads the JSON-lines trace at `path` of the `forever` program and checks it is complete
/// and valid: every line valid UTF-8 and JSON, `seq` 0, 1, 2..., the stored values 0, 1,
/// 2... with none missing (so every access up to the stop is there, in order).
fn check_forever_trace(path: &Path) -> Result<TraceCheck, Failed> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|e| format!("the trace is not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the trace ends in the middle of a line".into());
    }
    let mut check = TraceCheck {
        serial_writes: 0,
        last_store: None,
    };
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("trace line {}: {e}: {line}", i + 1))?;
        if v["seq"].as_u64() != Some(i as u64) {
            return Err(format!("trace line {} has seq {}, expected {i}", i + 1, v["seq"]).into());
        }
        match (v["space"].as_str(), v["addr"].as_str()) {
            (Some("pio"), Some("0x3f8")) => check.serial_writes += 1,
            (Some("mmio"), Some("0xd0000020")) => {
                let value = v["value"]
                    .as_str()
                    .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                    .ok_or_else(|| format!("trace line {}: bad value", i + 1))?;
                let want = check.last_store.map_or(0, |l| l + 1);
                if value != want {
                    return Err(format!(
                        "trace line {}: store of {value}, expected {want}: a store is missing",
                        i + 1
                    )
                    .into());
                }
                check.last_store = Some(value);
            }
            _ => {}
        }
    }
    if check.last_store.is_none() {
        return Err("the trace has no store: the guest never ran?".into());
    }
    Ok(check)
}

/// The console and the trace agree: the guest stores N then prints one byte, so after a
/// stop the console holds every byte the trace records (`printed`), and the trace's last
/// store is that of the last printed byte or of the one after it.
fn expect_console_matches(check: &TraceCheck, printed: u64) -> Result<(), Failed> {
    if check.serial_writes != printed {
        return Err(format!(
            "the trace records {} console writes, the console holds {printed} bytes: trace records are missing",
            check.serial_writes
        )
        .into());
    }
    let last = check.last_store.unwrap_or(0);
    if last + 1 != printed && last != printed {
        return Err(format!("last store {last} does not follow the {printed} bytes printed").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// How runs end.

/// SIGINT, SIGTERM, SIGHUP sent with kill(2) to a running guest: the run ends with status
/// 128 + N, the summary names the signal, the trace holds every access up to the stop.
fn stop_by_kill(signo: i32) -> Result<(), Failed> {
    let dir = Scratch::new(&format!("kill-{signo}"));
    let (trace, console, err) = (dir.path("trace.jsonl"), dir.path("console"), dir.path("stderr"));
    let mut child = forever(s(&trace), None)
        .stdin(Stdio::null())
        .stdout(File::create(&console)?)
        .stderr(File::create(&err)?)
        .spawn()?;
    let printed = || std::fs::metadata(&console).map_or(0, |m| m.len());
    wait_until("the guest to print", || printed() > 2000)?;
    // SAFETY: kill(2) on the child's pid.
    unsafe { libc::kill(child.id() as i32, signo) };
    let status = wait_guarded(&mut child)?;
    let stderr = std::fs::read_to_string(&err)?;
    expect_code(status, 128 + signo, &stderr)?;
    let name = match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    expect_in(
        &stderr,
        &format!("mmiolab: stopped by {name}; exit status {}; ", 128 + signo),
    )?;
    let check = check_forever_trace(&trace)?;
    expect_console_matches(&check, printed())
}

/// Ctrl-C typed on mmiolab's controlling terminal (a pty): status 130, the summary on the
/// terminal, the trace complete, and the terminal's settings as they were (mmiolab never
/// changes them).
fn sigint_through_a_pty_ends_the_run_cleanly() -> Result<(), Failed> {
    let dir = Scratch::new("pty");
    let (trace, console) = (dir.path("trace.jsonl"), dir.path("console"));
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills the two descriptors; the name and settings are not asked for.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: openpty returned two new descriptors owned here.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let settings = |fd: &OwnedFd| -> Result<libc::termios, Failed> {
        // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is an open terminal.
        if unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) } != 0 {
            return Err(format!("tcgetattr: {}", std::io::Error::last_os_error()).into());
        }
        Ok(t)
    };
    let before = settings(&slave)?;
    let mut cmd = forever(s(&trace), None);
    let tty = slave.as_raw_fd();
    // SAFETY: setsid and ioctl are async-signal-safe; the child makes the pty its
    // controlling terminal so that the line discipline sends it SIGINT.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(File::create(&console)?)
        .stderr(Stdio::from(slave.try_clone()?))
        .spawn()?;
    let printed = || std::fs::metadata(&console).map_or(0, |m| m.len());
    wait_until("the guest to print", || printed() > 2000)?;
    // The terminal's interrupt character (VINTR, ^C).
    let intr = [before.c_cc[libc::VINTR]];
    // SAFETY: writing one byte from a live buffer to the pty's master.
    if unsafe { libc::write(master.as_raw_fd(), intr.as_ptr().cast(), 1) } != 1 {
        return Err(format!("writing ^C: {}", std::io::Error::last_os_error()).into());
    }
    let status = wait_guarded(&mut child)?;
    // What mmiolab wrote to the terminal (its stderr), read without waiting for more.
    // SAFETY: fcntl on the master, owned here.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut screen = Vec::new();
    let _ = File::from(master.try_clone()?).read_to_end(&mut screen);
    let screen = text(&screen);
    expect_code(status, 130, &screen)?;
    expect_in(&screen, "mmiolab: stopped by SIGINT; exit status 130; ")?;
    let after = settings(&slave)?;
    if (
        before.c_iflag,
        before.c_oflag,
        before.c_cflag,
        before.c_lflag,
        before.c_cc,
    ) != (after.c_iflag, after.c_oflag, after.c_cflag, after.c_lflag, after.c_cc)
    {
        return Err("the terminal's settings changed".into());
    }
    let check = check_forever_trace(&trace)?;
    expect_console_matches(&check, printed())
}

/// A pipe that holds one page (`F_SETPIPE_SZ`), for a writer to block on.
fn small_pipe() -> Result<(OwnedFd, OwnedFd), Failed> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()).into());
    }
    // SAFETY: pipe2 returned two new descriptors owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on the pipe owned here.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    Ok((r, w))
}

/// The guest prints to a pipe nobody reads: its vCPU blocks in write(2). `--timeout 2`
/// still ends the run (status 124) and the trace is complete; the console holds what the
/// pipe took, one byte fewer than the trace's console writes at most (the blocked one).
fn timeout_holds_while_stdout_is_blocked() -> Result<(), Failed> {
    let dir = Scratch::new("blocked");
    let (trace, err) = (dir.path("trace.jsonl"), dir.path("stderr"));
    let (read_end, write_end) = small_pipe()?;
    let mut child = forever(s(&trace), Some("2"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(File::create(&err)?)
        .spawn()?;
    let status = wait_guarded(&mut child)?;
    let stderr = std::fs::read_to_string(&err)?;
    expect_code(status, 124, &stderr)?;
    expect_in(
        &stderr,
        "mmiolab: timeout: the guest was still running after 2s; exit status 124",
    )?;
    // SAFETY: fcntl on the read end, owned here.
    unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut console = Vec::new();
    let _ = File::from(read_end).read_to_end(&mut console);
    let check = check_forever_trace(&trace)?;
    let printed = console.len() as u64;
    if printed < 4096 || !(printed..=printed + 1).contains(&check.serial_writes) {
        return Err(format!(
            "the pipe took {printed} bytes and the trace records {} console writes",
            check.serial_writes
        )
        .into());
    }
    Ok(())
}

/// A pipe whose read end is already closed.
fn closed_pipe() -> Result<OwnedFd, Failed> {
    let (r, w) = small_pipe()?;
    drop(r);
    Ok(w)
}

/// `mmiolab run | head -c 100`: the reader takes 100 bytes of the guest's console and
/// leaves. The run ends with the quiet status 141 (the next console write fails with
/// EPIPE, or epoll reports the pipe's error first), the summary says why, no error or
/// panic, and the trace is complete up to the stop.
fn closed_stdout_ends_a_printing_guest_quietly() -> Result<(), Failed> {
    let dir = Scratch::new("closed-stdout");
    let (trace, err) = (dir.path("trace.jsonl"), dir.path("stderr"));
    let (read_end, write_end) = small_pipe()?;
    let mut child = forever(s(&trace), Some("100"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(File::create(&err)?)
        .spawn()?;
    let mut head = [0u8; 100];
    let read = File::from(read_end).read_exact(&mut head);
    // The read end is closed here, as `head` exits.
    let status = wait_guarded(&mut child)?;
    read?;
    let stderr = std::fs::read_to_string(&err)?;
    expect_code(status, 141, &stderr)?;
    expect_in(&stderr, "was closed (broken pipe); exit status 141")?;
    expect_no_panic(&stderr)?;
    if stderr.contains("error") {
        return Err(format!("a closed pipe is not an error:\n{stderr}").into());
    }
    let check = check_forever_trace(&trace)?;
    if check.serial_writes < 100 {
        return Err(format!("{} console writes traced, 100 were read", check.serial_writes).into());
    }
    Ok(())
}

/// A guest that prints nothing, stdout a closed pipe: mmiolab notices the reader is gone
/// (epoll reports the pipe's error) and ends with 141 rather than run on.
fn closed_stdout_ends_a_silent_guest_quietly() -> Result<(), Failed> {
    let dir = Scratch::new("closed-silent");
    let err = dir.path("stderr");
    let spin = dir.path("spin.bin");
    std::fs::write(&spin, [0xeb, 0xfe])?; // jmp .
    let mut child = mmiolab(&[
        "run",
        "--firmware",
        s(&spin),
        "--load-addr",
        "0x100000",
        "--timeout",
        "100",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::from(closed_pipe()?))
    .stderr(File::create(&err)?)
    .spawn()?;
    let status = wait_guarded(&mut child)?;
    let stderr = std::fs::read_to_string(&err)?;
    expect_code(status, 141, &stderr)?;
    expect_in(
        &stderr,
        "mmiolab: standard output was closed (broken pipe); exit status 141",
    )
}

/// stderr a closed pipe, the guest silent: the run ends with 141 (there is nowhere to
/// print the summary).
fn closed_stderr_ends_the_run() -> Result<(), Failed> {
    let dir = Scratch::new("closed-stderr");
    let spin = dir.path("spin.bin");
    std::fs::write(&spin, [0xeb, 0xfe])?;
    let mut child = mmiolab(&[
        "run",
        "--firmware",
        s(&spin),
        "--load-addr",
        "0x100000",
        "--timeout",
        "100",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::from(closed_pipe()?))
    .spawn()?;
    let status = wait_guarded(&mut child)?;
    expect_code(status, 141, "(stderr was closed)")
}

/// stdout is /dev/full: the first console write fails, the run ends (74), the cause is
/// reported once, the trace is complete.
fn full_stdout_ends_the_run_reported_once() -> Result<(), Failed> {
    let dir = Scratch::new("full-stdout");
    let trace = dir.path("trace.jsonl");
    let out = output_to(
        &mut forever(s(&trace), Some("100")),
        File::options().write(true).open("/dev/full")?,
    )?;
    let stderr = text(&out.stderr);
    expect_code(out.status, 74, &stderr)?;
    expect_in(
        &stderr,
        "mmiolab: standard output (the guest console) could not be written: No space left on device",
    )?;
    if stderr.matches("No space left on device").count() != 1 {
        return Err(format!("the cause should be reported once:\n{stderr}").into());
    }
    let check = check_forever_trace(&trace)?;
    if check.serial_writes != 1 {
        return Err(format!("{} console writes, expected only the failed one", check.serial_writes).into());
    }
    Ok(())
}

/// The trace is /dev/full: the first write of the trace (when its buffer fills) fails, the
/// run ends (74) with the summary, the cause reported once.
fn trace_write_error_ends_the_run_reported_once() -> Result<(), Failed> {
    let out = output_to(&mut forever("/dev/full", Some("100")), Stdio::null())?;
    let stderr = text(&out.stderr);
    expect_code(out.status, 74, &stderr)?;
    expect_in(
        &stderr,
        "mmiolab: the trace file /dev/full could not be written: No space left on device",
    )?;
    expect_in(&stderr, "records not written); exit status 74; ")?;
    if stderr.matches("No space left on device").count() != 1 || stderr.lines().count() != 1 {
        return Err(format!("one line, the cause once:\n{stderr}").into());
    }
    Ok(())
}

/// The trace file's disk fills up (RLIMIT_FSIZE, with SIGXFSZ ignored, so writes past it
/// fail with EFBIG as on a full disk): the run ends (74) and the file holds only whole,
/// valid lines, in order from the first.
fn trace_on_a_full_disk_keeps_only_whole_lines() -> Result<(), Failed> {
    const LIMIT: u64 = 200_000;
    let dir = Scratch::new("fsize");
    let trace = dir.path("trace.jsonl");
    let mut cmd = forever(s(&trace), Some("100"));
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_to(&mut cmd, Stdio::null())?;
    let stderr = text(&out.stderr);
    expect_code(out.status, 74, &stderr)?;
    expect_in(&stderr, "could not be written: File too large")?;
    let len = std::fs::metadata(&trace)?.len();
    if len == 0 || len > LIMIT {
        return Err(format!("the trace has {len} bytes").into());
    }
    // Whole lines, seq from 0, stores from 0 with none missing.
    check_forever_trace(&trace).map(|_| ())
}

/// Each ending the guest chooses has its status and its summary, and leaves a valid trace.
fn guest_endings_have_their_documented_statuses() -> Result<(), Failed> {
    let dir = Scratch::new("endings");
    for (program, status, summary) in [
        (
            "exit_status",
            42,
            "mmiolab: guest wrote 0x2a to the test-exit port; exit status 42",
        ),
        ("poweroff", 0, "mmiolab: guest powered the machine off; exit status 0"),
        ("pvpanic", 2, "mmiolab: guest kernel panicked (pvpanic); exit status 2"),
        ("triple_fault", 1, "mmiolab: guest fault; exit status 1"),
    ] {
        let trace = dir.path(&format!("{program}.jsonl"));
        let fw = firmware(program);
        let out = output(&mut mmiolab(&[
            "run",
            "-c",
            MACHINE,
            "--firmware",
            s(&fw),
            "--trace",
            s(&trace),
            "--timeout",
            "100",
        ]))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, status, &stderr)?;
        expect_in(&stderr, summary)?;
        for (i, line) in std::fs::read_to_string(&trace)?.lines().enumerate() {
            serde_json::from_str::<Value>(line).map_err(|e| format!("{program}: trace line {}: {e}", i + 1))?;
        }
    }
    Ok(())
}

/// `mmiolab --help` and docs/reliability.md list the same exit statuses.
fn exit_statuses_are_documented_alike() -> Result<(), Failed> {
    let help = output(&mut mmiolab(&["--help"]))?;
    expect_code(help.status, 0, &text(&help.stderr))?;
    let help = text(&help.stdout);
    let table = help
        .split_once("Exit status:\n")
        .map(|(_, t)| t)
        .ok_or("--help has no exit status table")?;
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/reliability.md"))?;
    let block = doc
        .split_once("Exit status:\n")
        .and_then(|(_, t)| t.split_once("```"))
        .map(|(t, _)| t)
        .ok_or("docs/reliability.md has no exit status table")?;
    let norm = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    if norm(table) != norm(block) {
        return Err(format!("--help:\n{table}\ndocs/reliability.md:\n{block}").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Output errors in every subcommand.

/// The subcommands that write to stdout, with arguments that make them succeed.
fn stdout_commands(dir: &Scratch) -> Result<Vec<Vec<String>>, Failed> {
    let log = dir.path("console.log");
    std::fs::write(&log, "KTAP version 1\n1..1\nok 1 x\n")?;
    let default = format!("{ROOT}/guest/machines/default.toml");
    let cmds: Vec<Vec<&str>> = vec![
        vec!["tree", "-c", MACHINE],
        vec!["dt", "-c", &default],
        vec!["models"],
        vec!["models", "uart16550"],
        vec!["header", "-c", MACHINE],
        vec![
            "header",
            "-d",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/demo.toml"),
        ],
        vec!["test", "-c", MACHINE, "--from-log", s(&log)],
        vec!["--help"],
        vec!["run", "--help"],
        vec!["--version"],
    ];
    Ok(cmds
        .into_iter()
        .map(|c| c.into_iter().map(str::to_owned).collect())
        .collect())
}

/// stdout is /dev/full: every subcommand exits 74 with one error line naming the cause,
/// and never panics.
fn full_stdout_in_every_subcommand_is_reported_once() -> Result<(), Failed> {
    let dir = Scratch::new("full-all");
    for cmd in stdout_commands(&dir)? {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = output_to(&mut mmiolab(&args), File::options().write(true).open("/dev/full")?)?;
        let stderr = text(&out.stderr);
        expect_no_panic(&stderr).map_err(|e| ctx(e, format!("{cmd:?}")))?;
        expect_code(out.status, 74, &stderr).map_err(|e| ctx(e, format!("{cmd:?}")))?;
        let want = "mmiolab: error: cannot write standard output: No space left on device (os error 28)\n";
        if stderr != want {
            return Err(format!("{cmd:?}: stderr is\n{stderr}\nexpected\n{want}").into());
        }
    }
    // The blob of `dt --dtb` too.
    let out = output(&mut mmiolab(&[
        "dt",
        "-c",
        &format!("{ROOT}/guest/machines/default.toml"),
        "--dtb",
        "/dev/full",
    ]))?;
    let stderr = text(&out.stderr);
    expect_no_panic(&stderr)?;
    expect_code(out.status, 74, &stderr)?;
    expect_in(&stderr, "cannot write /dev/full: No space left on device")
}

/// stdout is a closed pipe (`mmiolab tree | head -0`): every subcommand exits 141, silently.
fn closed_stdout_in_every_subcommand_is_quiet() -> Result<(), Failed> {
    let dir = Scratch::new("closed-all");
    for cmd in stdout_commands(&dir)? {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = output_to(&mut mmiolab(&args), closed_pipe()?)?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 141, &stderr).map_err(|e| ctx(e, format!("{cmd:?}")))?;
        if !stderr.is_empty() {
            return Err(format!("{cmd:?}: a broken pipe is quiet, stderr is:\n{stderr}").into());
        }
    }
    Ok(())
}

/// `header -o` on a full disk (RLIMIT_FSIZE of 300 bytes: the header has about 800, the
/// error message about 110): status 74 with the cause, the old header untouched, no
/// temporary file left.
fn header_on_a_full_disk_leaves_the_old_file() -> Result<(), Failed> {
    let dir = Scratch::new("header-full");
    let out_h = dir.path("machine.h");
    std::fs::write(&out_h, "old\n")?;
    let mut cmd = mmiolab(&["header", "-c", MACHINE, "-o", s(&out_h)]);
    // SAFETY: setrlimit and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 300,
                rlim_max: 300,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut cmd)?;
    let stderr = text(&out.stderr);
    expect_no_panic(&stderr)?;
    expect_code(out.status, 74, &stderr)?;
    expect_in(&stderr, "File too large")?;
    if std::fs::read_to_string(&out_h)? != "old\n" {
        return Err("the old header was changed".into());
    }
    let names: Vec<_> = std::fs::read_dir(&dir.0)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    if names.len() != 1 {
        return Err(format!("files left behind: {names:?}").into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Clobbering.

/// Every output that names an input (also through a symbolic link) is refused with status
/// 65, and the input is left as it was.
fn outputs_never_overwrite_inputs() -> Result<(), Failed> {
    let dir = Scratch::new("clobber");
    let fw = dir.path("fw.elf");
    std::fs::copy(firmware("exit_status"), &fw)?;
    let machine = dir.path("m.toml");
    let desc = dir.path("dev.toml");
    std::fs::copy(format!("{ROOT}/models/demo.toml"), &desc)?;
    std::fs::write(
        &machine,
        "[machine]\nmemory_mib = 64\nfirmware = \"fw.elf\"\n\n[[device]]\nname = \"d\"\ndescription = \"dev.toml\"\n\
         compatible = \"x,d\"\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n",
    )?;
    std::os::unix::fs::symlink(&fw, dir.path("link-to-fw"))?;
    let log = dir.path("console.log");
    std::fs::write(&log, "KTAP version 1\n1..1\nok 1 x\n")?;
    let originals: Vec<(PathBuf, Vec<u8>)> = [&fw, &machine, &desc, &log]
        .iter()
        .map(|p| Ok((p.to_path_buf(), std::fs::read(p)?)))
        .collect::<Result<_, std::io::Error>>()?;
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run", "-c", s(&machine), "--trace", s(&fw)], "is the firmware"),
        (
            vec!["run", "-c", s(&machine), "--trace", s(&dir.path("link-to-fw"))],
            "is the firmware",
        ),
        (
            vec!["run", "-c", s(&machine), "--trace", s(&machine)],
            "is the machine file",
        ),
        (
            vec!["run", "-c", s(&machine), "--trace", s(&desc)],
            "is the description of device[0]",
        ),
        (
            vec!["dt", "-c", s(&machine), "--dtb", s(&desc)],
            "is the description of device[0]",
        ),
        (
            vec!["header", "-c", s(&machine), "-o", s(&machine)],
            "is an input of the header",
        ),
        (
            vec!["test", "-c", s(&machine), "--from-log", s(&log), "--junit", s(&log)],
            "is the console log",
        ),
        (
            vec!["test", "-c", s(&machine), "--from-log", s(&log), "--junit", s(&fw)],
            "is the firmware",
        ),
    ]
    .into_iter()
    .map(|(a, why)| (a.into_iter().map(str::to_owned).collect(), why))
    .collect();
    for (cmd, why) in cases {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = output(&mut mmiolab(&args))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr).map_err(|e| ctx(e, format!("{cmd:?}")))?;
        expect_in(&stderr, why)?;
        expect_in(&stderr, "refusing to write")?;
    }
    // A FIFO whose host side writes the machine file itself: refused when the file is read.
    let fifo_machine = dir.path("fifo.toml");
    std::fs::write(
        &fifo_machine,
        "[[device]]\nname = \"uart\"\nmodel = \"uart16550\"\npio = [{ base = 0x2f8, size = 8 }]\n\
         fifo = { tx = { to = \"file:fifo.toml\" } }\n",
    )?;
    let before = std::fs::read(&fifo_machine)?;
    let out = output(&mut mmiolab(&["tree", "-c", s(&fifo_machine)]))?;
    let stderr = text(&out.stderr);
    expect_code(out.status, 65, &stderr)?;
    expect_in(&stderr, "device[0].fifo.tx: ")?;
    expect_in(&stderr, "it is the machine file")?;
    if std::fs::read(&fifo_machine)? != before {
        return Err("the machine file was overwritten by its own FIFO".into());
    }
    for (path, bytes) in originals {
        if std::fs::read(&path)? != bytes {
            return Err(format!("{} was changed", path.display()).into());
        }
    }
    Ok(())
}

/// An existing trace file, and a FIFO's existing output file, survive a run refused before
/// the guest starts and commands that never start a guest.
fn a_run_refused_before_the_guest_starts_leaves_outputs_alone() -> Result<(), Failed> {
    let dir = Scratch::new("refused");
    let trace = dir.path("old.jsonl");
    std::fs::write(&trace, "keep\n")?;
    let bad = dir.path("bad.elf");
    std::fs::write(&bad, b"\x7fELF not really")?;
    let out = output(&mut mmiolab(&["run", "--firmware", s(&bad), "--trace", s(&trace)]))?;
    expect_code(out.status, 65, &text(&out.stderr))?;
    if std::fs::read_to_string(&trace)? != "keep\n" {
        return Err("the trace of a refused run overwrote the old one".into());
    }
    let machine = dir.path("m.toml");
    std::fs::write(
        &machine,
        "[[device]]\nname = \"uart\"\nmodel = \"uart16550\"\npio = [{ base = 0x2f8, size = 8 }]\n\
         fifo = { tx = { to = \"file:tx.out\" } }\n",
    )?;
    std::fs::write(dir.path("tx.out"), "keep\n")?;
    for args in [
        vec!["tree", "-c", s(&machine)],
        vec!["dt", "-c", s(&machine)],
        vec!["header", "-c", s(&machine)],
        vec!["run", "-c", s(&machine), "--firmware", s(&bad)],
    ] {
        output(&mut mmiolab(&args))?;
        if std::fs::read_to_string(dir.path("tx.out"))? != "keep\n" {
            return Err(format!("{args:?} truncated the FIFO's output file").into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// Makes a named pipe (nobody ever writes it: opening it for reading would wait forever).
fn mkfifo(path: &Path) -> Result<(), Failed> {
    let c = std::ffi::CString::new(s(path))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!("mkfifo: {}", std::io::Error::last_os_error()).into());
    }
    Ok(())
}

/// Directories, FIFOs, /dev/zero and oversized files, named as each kind of input, are
/// refused at once (status 65) with what they are.
fn inputs_that_are_not_files_or_too_big_are_refused_at_once() -> Result<(), Failed> {
    let dir = Scratch::new("inputs");
    let fifo = dir.path("fifo");
    mkfifo(&fifo)?;
    let big = dir.path("big");
    File::create(&big)?.set_len(300 << 20)?;
    let big_machine = dir.path("big.toml");
    File::create(&big_machine)?.set_len(2 << 20)?;
    let kernel = dir.path("k.elf");
    std::fs::write(&kernel, pvh_elf(64, 0x10_0000))?;
    let d = s(&dir.0);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["tree", "-c", d], "it is a directory, not a regular file"),
        (
            vec!["tree", "-c", s(&fifo)],
            "it is a named pipe (FIFO), not a regular file",
        ),
        (
            vec!["tree", "-c", "/dev/zero"],
            "it is a character device, not a regular file",
        ),
        (
            vec!["tree", "-c", s(&big_machine)],
            "it is 2097152 bytes, more than the 1 MiB a machine file may have",
        ),
        (vec!["run", "--firmware", d], "is a directory, not a regular file"),
        (
            vec!["run", "--firmware", s(&fifo)],
            "is a named pipe (FIFO), not a regular file",
        ),
        (
            vec!["run", "--firmware", "/dev/zero", "--load-addr", "0x100000"],
            "/dev/zero is a character device, not a regular file",
        ),
        (
            vec![
                "run",
                "--firmware",
                s(&big),
                "--load-addr",
                "0x100000",
                "--memory",
                "256",
            ],
            "is 314572800 bytes, more than the 256 MiB of RAM the machine has",
        ),
        (
            vec!["run", "--kernel", s(&fifo)],
            "is a named pipe (FIFO), not a regular file",
        ),
        (
            vec!["run", "--kernel", s(&kernel), "--initrd", "/dev/zero"],
            "/dev/zero is a character device, not a regular file",
        ),
        (
            vec!["run", "--kernel", s(&kernel), "--initrd", s(&big), "--memory", "256"],
            "more than the 256 MiB of RAM the machine has",
        ),
        (
            vec!["test", "-c", MACHINE, "--from-log", s(&fifo)],
            "is a named pipe (FIFO), not a regular file",
        ),
        (
            vec!["test", "-c", MACHINE, "--from-log", "/dev/zero"],
            "is a character device, not a regular file",
        ),
    ];
    for (args, want) in cases {
        let out = output(&mut mmiolab(&args))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr).map_err(|e| ctx(e, format!("{args:?}")))?;
        expect_in(&stderr, want).map_err(|e| ctx(e, format!("{args:?}")))?;
    }
    Ok(())
}

/// Generated ELF files the machine cannot run are refused before a VM exists, with the
/// reason in words (not the loader library's), status 65.
fn payloads_the_machine_cannot_run_are_refused_with_the_reason() -> Result<(), Failed> {
    let dir = Scratch::new("payloads");
    let x86 = 62;
    let load = |paddr: u64, memsz: u64| [(PT_LOAD, 0x1000, paddr, 6, memsz)];
    let mut truncated = elf(64, x86, 0x10_0000, &load(0x10_0000, 6), &EXIT7);
    truncated.truncate(90);
    let mut big_endian = elf(64, x86, 0x10_0000, &load(0x10_0000, 6), &EXIT7);
    big_endian[5] = 2;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "outside RAM",
            elf(64, x86, 0x2000_0000, &load(0x2000_0000, 6), &EXIT7),
            "loadable segment 0 [0x20000000-0x20000005] is outside guest RAM: the machine's 256 MiB of RAM are at 0x0-0x9ffff, 0x100000-0xfffffff",
        ),
        (
            "below the floor",
            elf(64, x86, 0x8000, &load(0x8000, 6), &EXIT7),
            "loadable segment 0 [0x8000-0x8005] starts below 1 MiB (0x100000), where mmiolab keeps its boot structures",
        ),
        (
            "in the MMIO gap",
            elf(64, x86, 0xd000_0000, &load(0xd000_0000, 6), &EXIT7),
            "(it reaches into the MMIO gap 0xc0000000-0xffffffff, where devices live)",
        ),
        (
            "memory size past RAM",
            elf(64, x86, 0xff0_0000, &load(0xff0_0000, 0x20_0000), &EXIT7),
            "loadable segment 0 [0xff00000-0x100fffff] is outside guest RAM",
        ),
        (
            "no loadable segment",
            elf(64, x86, 0x10_0000, &[(PT_NOTE, 0x1000, 0, 6, 0)], &EXIT7),
            "it has no loadable segment (PT_LOAD with a memory size): nothing to load",
        ),
        (
            "entry outside",
            elf(64, x86, 0x20_0000, &load(0x10_0000, 6), &EXIT7),
            "its entry point 0x200000 is not inside a loaded segment (0x100000-0x100005)",
        ),
        (
            "another machine",
            elf(64, 40, 0x10_0000, &load(0x10_0000, 6), &EXIT7),
            "built for machine 40 (ARM), not x86-64 or i386",
        ),
        ("truncated headers", truncated, "truncated: its program headers"),
        (
            "truncated segment",
            elf(
                64,
                x86,
                0x10_0000,
                &[(PT_LOAD, 0x1000, 0x10_0000, 0x100, 0x100)],
                &EXIT7,
            ),
            "truncated: program header 0 needs file bytes 0x1000-0x1100, and the file has 4102 bytes",
        ),
        (
            "big-endian",
            big_endian,
            "a big-endian ELF file: x86 code is little-endian",
        ),
        ("not an ELF", b"#!/bin/sh\necho hi\n".to_vec(), "not an ELF file"),
        (
            "file size over memory size",
            elf(64, x86, 0x10_0000, &[(PT_LOAD, 0x1000, 0x10_0000, 6, 4)], &EXIT7),
            "program header 0: a file size (0x6) larger than its memory size (0x4)",
        ),
    ];
    for (what, bytes, want) in cases {
        let fw = dir.path("fw.elf");
        std::fs::write(&fw, &bytes)?;
        let out = output(&mut mmiolab(&["run", "--firmware", s(&fw), "--memory", "256"]))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr).map_err(|e| ctx(e, what))?;
        expect_in(&stderr, &format!("mmiolab: error: cannot load {}: ", fw.display())).map_err(|e| ctx(e, what))?;
        expect_in(&stderr, want).map_err(|e| ctx(e, what))?;
    }
    // As a kernel: an ELF without the PVH note, and one whose PVH entry is outside.
    let k = dir.path("k.elf");
    std::fs::write(&k, elf(64, x86, 0x10_0000, &load(0x10_0000, 6), &EXIT7))?;
    let out = output(&mut mmiolab(&["run", "--kernel", s(&k)]))?;
    expect_code(out.status, 65, &text(&out.stderr))?;
    expect_in(
        &text(&out.stderr),
        "an ELF kernel without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)",
    )?;
    std::fs::write(&k, pvh_elf(32, 0x30_0000))?;
    let out = output(&mut mmiolab(&["run", "--kernel", s(&k)]))?;
    expect_code(out.status, 65, &text(&out.stderr))?;
    expect_in(
        &text(&out.stderr),
        "its entry point 0x300000 is not inside a loaded segment",
    )
}

/// A bzImage that needs more RAM than the machine has to decompress, and an initrd that
/// does not fit beside the kernel, are refused before a VM exists, in words.
fn kernels_and_initrds_that_do_not_fit_are_refused() -> Result<(), Failed> {
    let dir = Scratch::new("bzimage");
    let k = dir.path("bzImage");
    let cases: Vec<(Vec<u8>, Option<u64>, &str)> = vec![
        (
            b"not a kernel".to_vec(),
            None,
            "neither an ELF kernel nor a bzImage: 12 bytes is too short for a bzImage's boot header",
        ),
        (
            bzimage(0x4000_0000, 4096),
            None,
            "the kernel, which needs 0x40000000 bytes of RAM to decompress (its init_size), [0x100000-0x400fffff] is outside guest RAM",
        ),
        (
            bzimage(0x100_0000, 4096),
            Some(250 << 20),
            "does not fit in RAM between the kernel's end (0x1100000) and 0xfffffff: give the machine more memory",
        ),
    ];
    for (image, initrd, want) in cases {
        std::fs::write(&k, &image)?;
        let initrd_path = dir.path("initrd");
        let mut args = vec!["run", "--kernel", s(&k), "--memory", "256"];
        if let Some(size) = initrd {
            File::create(&initrd_path)?.set_len(size)?;
            args.extend(["--initrd", s(&initrd_path)]);
        }
        let out = output(&mut mmiolab(&args))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr)?;
        expect_in(&stderr, want)?;
    }
    Ok(())
}

/// PVH kernels in both ELF classes boot (QEMU boots ELF32 ones too): each exits with 7.
fn elf32_and_elf64_pvh_kernels_boot() -> Result<(), Failed> {
    let dir = Scratch::new("pvh");
    for bits in [32, 64] {
        let k = dir.path(&format!("k{bits}.elf"));
        std::fs::write(&k, pvh_elf(bits, 0x10_0000))?;
        let out = output(&mut mmiolab(&["run", "--kernel", s(&k), "--timeout", "100"]))?;
        expect_code(out.status, 7, &text(&out.stderr)).map_err(|e| ctx(e, format!("ELF{bits}")))?;
    }
    Ok(())
}

/// An ELF32 container for long-mode firmware loads and runs like an ELF64 one.
fn elf32_firmware_boots() -> Result<(), Failed> {
    let dir = Scratch::new("elf32-fw");
    let fw = dir.path("fw.elf");
    std::fs::write(
        &fw,
        elf(32, 3, 0x10_0000, &[(PT_LOAD, 0x1000, 0x10_0000, 6, 6)], &EXIT7),
    )?;
    let out = output(&mut mmiolab(&["run", "--firmware", s(&fw), "--timeout", "100"]))?;
    expect_code(out.status, 7, &text(&out.stderr))
}

// ---------------------------------------------------------------------------------------
// Machine files.

/// A value set on the command line that the machine cannot take is blamed on the option,
/// not on the machine file.
fn command_line_overrides_are_blamed_on_the_option() -> Result<(), Failed> {
    let fw = firmware("exit_status");
    for (args, want) in [
        (
            vec!["--memory", "1"],
            "mmiolab: error: --memory 1: 1 MiB is outside 16..=15360",
        ),
        (
            vec!["--vcpus", "0"],
            "mmiolab: error: --vcpus 0: a machine needs at least one vCPU",
        ),
    ] {
        let mut all = vec!["run", "-c", MACHINE, "--firmware", s(&fw)];
        all.extend(args);
        let out = output(&mut mmiolab(&all))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr)?;
        expect_in(&stderr, want)?;
        if stderr.contains("baremetal.toml") {
            return Err(format!("the machine file is blamed for the option:\n{stderr}").into());
        }
    }
    Ok(())
}

/// Values no VM can use are refused when the machine file is read, naming file and key.
fn machine_values_that_cannot_work_are_refused() -> Result<(), Failed> {
    let dir = Scratch::new("machines");
    let dev = |extra: &str| format!("[[device]]\nname = \"d\"\nmodel = \"regfile\"\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            "[machine]\nmemory_mib = 0\n".to_owned(),
            "machine.memory_mib: 0 MiB is outside 16..=15360",
        ),
        (
            "[machine]\nmemory_mib = 1000000\n".to_owned(),
            "machine.memory_mib: 1000000 MiB is outside 16..=15360",
        ),
        (
            "[machine]\nvcpus = 0\n".to_owned(),
            "machine.vcpus: a machine needs at least one vCPU",
        ),
        (
            dev("irq = 24\nmmio = [{ base = 0xd0000000, size = 16 }]"),
            "device[0].irq: 24 is not an IOAPIC pin (0..=23)",
        ),
        (
            dev("mmio = [{ base = 0x200000, size = 16 }]"),
            "device[0].mmio[0]: region 0x200000+0x10 is not inside an MMIO hole",
        ),
        (
            dev("mmio = [{ base = 0xfec00000, size = 16 }]"),
            "device[0].mmio[0]: region 0xfec00000+0x10 is not inside an MMIO hole",
        ),
        (
            dev("pio = [{ base = 0x40, size = 4 }]"),
            "device[0].pio[0]: ports 0x40-0x43 overlap 0x40-0x43, which the PIT handles inside KVM",
        ),
        (
            dev("pio = [{ base = 0xfff0, size = 0x20 }]"),
            "device[0].pio[0]: ports 0xfff0+0x20 run past 0xffff",
        ),
        (
            "[[device]]\nname = \"two\\nlines\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000000, size = 16 }]\n"
                .to_owned(),
            "device[0].name: `two\\nlines`: '\\n' is not allowed in a name",
        ),
        (
            "[[device]]\nname = \"a b\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000000, size = 16 }]\n".to_owned(),
            "device[0].name: `a b`: ' ' is not allowed in a name",
        ),
        (
            "[[bus]]\nname = \"\"\nmmio = { base = 0xd0000000, size = 0x1000 }\n".to_owned(),
            "bus[0].name: ``: a name has 1 to 64 characters",
        ),
        (
            "[machine]\ncmdline = \"a\\u0000b\"\n".to_owned(),
            "machine.cmdline: the command line must be under 65536 bytes and contain no NUL",
        ),
        (
            format!(
                "{}{}",
                dev("mmio = [{ base = 0xd0000000, size = 0x1000 }]"),
                "[[device]]\nname = \"e\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000800, size = 0x1000 }]\n"
            ),
            "device[1].mmio[0]: MMIO region `e` [0xd0000800-0xd00017ff] overlaps `d` [0xd0000000-0xd0000fff]",
        ),
    ];
    for (i, (machine, want)) in cases.into_iter().enumerate() {
        let path = dir.path(&format!("m{i}.toml"));
        std::fs::write(&path, &machine)?;
        let out = output(&mut mmiolab(&["tree", "-c", s(&path)]))?;
        let stderr = text(&out.stderr);
        expect_code(out.status, 65, &stderr).map_err(|e| ctx(e, machine))?;
        expect_in(&stderr, &format!("m{i}.toml: {want}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// `mmiolab test`.

/// Bare-metal stand-ins for a test guest print passing KTAP results and a matching
/// /proc/iomem, then end in different ways: only the clean end passes, each other one
/// fails with its reason named.
fn mmiolab_test_judges_how_the_run_ended() -> Result<(), Failed> {
    let dir = Scratch::new("ktap");
    for (program, status, want) in [
        ("ktap_exit0", 0, "mmiolab test: 4 passed, 0 failed"),
        ("ktap_exit3", 1, "the guest exited with status 3 (test-exit port)"),
        ("ktap_panic", 1, "the guest kernel panicked (pvpanic)"),
        (
            "ktap_fault",
            1,
            "the guest faulted: vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)",
        ),
        ("ktap_hang", 1, "the guest hung: still running after the timeout (2s)"),
    ] {
        let machine = dir.path(&format!("{program}.toml"));
        std::fs::write(
            &machine,
            format!(
                "[machine]\nmemory_mib = 64\nfirmware = \"{}\"\n\n[[device]]\nname = \"testdev\"\nmodel = \"regfile\"\n\
                 compatible = \"mmiolab,testdev\"\nmmio = [{{ base = 0xd0001000, size = 0x1000 }}]\n",
                s(&firmware(program))
            ),
        )?;
        let out = output(&mut mmiolab(&["test", "-c", s(&machine), "--timeout", "2"]))?;
        let stdout = text(&out.stdout);
        expect_code(out.status, status, &format!("{}\n{stdout}", text(&out.stderr))).map_err(|e| ctx(e, program))?;
        for passed in [
            "PASS first",
            "PASS second",
            "PASS host: guest resources match mmiolab tree",
        ] {
            expect_in(&stdout, passed).map_err(|e| ctx(e, program))?;
        }
        expect_in(&stdout, want).map_err(|e| ctx(e, program))?;
        if status != 0 {
            expect_in(&stdout, "FAIL host: the guest's run ended cleanly")?;
            expect_in(&stdout, "mmiolab test: 3 passed, 1 failed")?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Logs.

/// 80,000 accesses to nothing with debug logging on: a few dozen log lines, not 80,000.
fn a_guest_flood_is_rate_limited_in_the_log() -> Result<(), Failed> {
    let fw = firmware("flood");
    let out =
        output(mmiolab(&["run", "-c", MACHINE, "--firmware", s(&fw), "--timeout", "100"]).env("RUST_LOG", "debug"))?;
    let stderr = text(&out.stderr);
    expect_code(
        out.status,
        0,
        &stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n"),
    )?;
    expect_in(
        &stderr,
        "unmapped accesses: 20000 MMIO reads, 20000 MMIO writes, 20000 port reads, 20000 port writes",
    )?;
    let unmapped = stderr.lines().filter(|l| l.contains("unmapped")).count();
    // Four call sites, each at most BURST (10) + one per power of two up to 20000 (15).
    if unmapped > 4 * 25 + 1 {
        return Err(format!("{unmapped} log lines about unmapped accesses").into());
    }
    expect_in(&stderr, "the ones since the previous line were not logged")
}
