//! Running one child process and measuring it: wall time from just before `fork` to the
//! return of `wait4`, its exit status, CPU times and peak RSS (`wait4`'s rusage is the
//! child's own, not the maximum over all children as `getrusage(RUSAGE_CHILDREN)` would be).
//!
//! A child's peak RSS also counts the RSS of the process that started it, as it was when the
//! child called `exec` (the kernel carries the old address space's high-water mark over). So
//! the benchmark does not start runners itself: it starts `mmiolab-bench launch`, a small
//! process that starts the runner, measures it with [`run`] and writes a [`Finished`] as
//! JSON ([`run_launched`]). The launcher's own floor is measured on `/bin/true` and reported.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// One finished child.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finished {
    /// Process start (spawn) to exit (reaped).
    pub wall: Duration,
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Terminating signal, when it was killed.
    pub signal: Option<i32>,
    /// Peak resident set, KiB.
    pub maxrss_kib: u64,
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub sys: Duration,
    /// Its standard error (and standard output, when `capture_stdout`).
    pub output: String,
}

impl Finished {
    /// "exit status 32" / "killed by signal 9".
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".to_owned(),
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// Runs `cmd` to completion (killing it after `timeout`); its stdout goes to `log` as well
/// when `capture_stdout`, else to /dev/null, and its stderr always to `log`.
pub fn run(cmd: &mut Command, timeout: Duration, log: &Path, capture_stdout: bool) -> Result<Finished> {
    let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let out = if capture_stdout {
        Stdio::from(err.try_clone()?)
    } else {
        Stdio::null()
    };
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let reaped = reap(child, start, timeout)?;
    let output = std::fs::read_to_string(log).unwrap_or_default();
    if reaped.timed_out {
        bail!("{cmd:?} did not finish within {timeout:?}; its output:\n{output}");
    }
    Ok(reaped.finished(output))
}

/// A child reaped by [`reap`].
pub struct Reaped {
    /// Spawn to reaped.
    pub wall: Duration,
    /// `wait4`'s status.
    status: i32,
    /// `wait4`'s rusage: the child's own.
    usage: libc::rusage,
    /// The watchdog killed it.
    pub timed_out: bool,
}

impl Reaped {
    /// The measurement, with `output` as the child's captured output.
    pub fn finished(&self, output: String) -> Finished {
        Finished {
            wall: self.wall,
            code: libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status)),
            signal: libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status)),
            maxrss_kib: self.usage.ru_maxrss.max(0) as u64,
            user: timeval(self.usage.ru_utime),
            sys: timeval(self.usage.ru_stime),
            output,
        }
    }
}

/// Waits for `child` (spawned at `start`) with `wait4`, killing it once `timeout` has
/// passed.
pub fn reap(child: Child, start: Instant, timeout: Duration) -> Result<Reaped> {
    let pid = child.id() as libc::pid_t;
    let (done, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: plain kill(2) on our own child, which cannot have been reaped yet:
            // only the wait4 below reaps it, and it signals `done` first thing after.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child; both pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            let _ = done.send(());
            bail!("wait4 on {pid}: {e}");
        }
    }
    let wall = start.elapsed();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    // The child is reaped: make sure `Child`'s drop does nothing more (it does not wait).
    drop(child);
    Ok(Reaped {
        wall,
        status,
        usage,
        timed_out,
    })
}

/// Runs `program args` through `bench_exe launch` (see the module documentation) and returns
/// the launcher's measurement of it.
pub fn run_launched(
    bench_exe: &Path,
    program: &Path,
    args: &[std::ffi::OsString],
    timeout: Duration,
    log: &Path,
) -> Result<Finished> {
    let result = log.with_extension("result.json");
    let _ = std::fs::remove_file(&result);
    let mut cmd = Command::new(bench_exe);
    cmd.arg("launch")
        .arg("--timeout")
        .arg(timeout.as_secs().to_string())
        .arg("--log")
        .arg(log)
        .arg("--result")
        .arg(&result)
        .arg("--")
        .arg(program)
        .args(args);
    let launcher_log = log.with_extension("launcher.log");
    let outer = run(&mut cmd, timeout + Duration::from_secs(30), &launcher_log, true)?;
    let text = std::fs::read_to_string(&result).with_context(|| {
        format!(
            "the launcher wrote no result ({}): {}",
            outer.status_text(),
            outer.output.trim()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", result.display()))
}

/// `mmiolab-bench launch`: runs `program args` and writes its [`Finished`] to `result`.
pub fn launch(program: &Path, args: &[std::ffi::OsString], timeout: Duration, log: &Path, result: &Path) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let done = run(&mut cmd, timeout, log, false)?;
    std::fs::write(result, serde_json::to_string(&done)?).with_context(|| format!("writing {}", result.display()))
}
