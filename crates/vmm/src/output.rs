//! The run's host outputs (the guest console, FIFO host sides on stdout, stderr or a file):
//! writers that can neither hang a stopping VM nor fail silently.
//!
//! Two problems, two types:
//!
//! - A vCPU thread that writes the console to a pipe nobody reads blocks in `write(2)`.
//!   When the run must stop (`--timeout`, a signal), the VMM kicks each vCPU thread with a
//!   signal; the blocked `write` then returns `EINTR`. `std::io::Stdout` (and the default
//!   `write_all`) would retry it and block again, forever. [`HostFd`] writes straight to a
//!   file descriptor and hands `EINTR` back instead, so [`Output`] can give up when the run
//!   is stopping.
//! - A console or file that cannot take data (a closed pipe, a full disk) would otherwise
//!   lose every later byte with nobody told, or log once per byte. [`Output`] stops the run
//!   at the first failure with a [`StopReason::Output`] naming the output and the cause
//!   (reported once, in the run's summary) and drops everything after it.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use mmiolab_devices::{OutputFailure, StopReason, VmControl};

/// Unbuffered writes to a file descriptor the process does not own (1 or 2): one `write(2)`
/// per call, `EINTR` returned to the caller rather than retried.
#[derive(Debug, Clone, Copy)]
pub struct HostFd(RawFd);

impl HostFd {
    /// mmiolab's standard output.
    pub fn stdout() -> HostFd {
        HostFd(io::stdout().as_raw_fd())
    }

    /// mmiolab's standard error.
    pub fn stderr() -> HostFd {
        HostFd(io::stderr().as_raw_fd())
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'static> {
        // SAFETY: only the process's standard descriptors are wrapped, which stay open for
        // its lifetime (Rust's runtime never closes them).
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

impl Write for HostFd {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // SAFETY: `data` is a valid buffer of `data.len()` bytes for the call's duration.
        let n = unsafe { libc::write(self.0, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n.unsigned_abs())
    }

    /// As the default, but an interrupted write is returned, not retried (see the module
    /// documentation): the caller decides whether the run is stopping.
    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match self.write(data)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => data = data.get(n..).unwrap_or_default(),
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An output of a run: passes writes to `inner` until the first failure, which stops the
/// run (naming this output and the cause); everything after that is dropped.
pub struct Output {
    name: String,
    inner: Box<dyn Write + Send>,
    control: Arc<VmControl>,
    failed: bool,
}

impl Output {
    /// `inner`, called `name` in the run's report, stopping the run through `control`.
    pub fn new(name: impl Into<String>, inner: Box<dyn Write + Send>, control: Arc<VmControl>) -> Output {
        Output {
            name: name.into(),
            inner,
            control,
            failed: false,
        }
    }

    fn fail(&mut self, e: &io::Error) {
        self.failed = true;
        self.control
            .request_stop(StopReason::Output(OutputFailure::new(self.name.clone(), e)));
    }
}

impl Write for Output {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Ok(data.len());
        }
        loop {
            match self.inner.write(data) {
                Ok(n) => return Ok(n),
                // Interrupted while blocked: the VMM kicks vCPU threads only to stop them.
                // Give up (the stop already has its reason; this output's last bytes are
                // lost because nobody was reading them), and return an error that is not
                // `Interrupted`, which `write_all` would retry.
                Err(e) if e.kind() == io::ErrorKind::Interrupted && self.control.is_stopping() => {
                    self.failed = true;
                    return Err(io::Error::other("the run is stopping"));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                self.fail(&e);
                Err(e)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `ok` writes, then fails with `kind`.
    struct Failing {
        ok: usize,
        kind: io::ErrorKind,
    }

    impl Write for Failing {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(self.kind.into());
            }
            self.ok -= 1;
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_first_failure_stops_the_run_once_and_later_writes_are_dropped() {
        let control = Arc::new(VmControl::new().unwrap());
        let inner = Failing {
            ok: 2,
            kind: io::ErrorKind::StorageFull,
        };
        let mut out = Output::new("the console", Box::new(inner), control.clone());
        out.write_all(b"a").unwrap();
        out.write_all(b"b").unwrap();
        assert!(out.write_all(b"c").is_err());
        for _ in 0..1000 {
            out.write_all(b"d").unwrap();
        }
        let Some(StopReason::Output(f)) = control.reason() else {
            panic!("{:?}", control.reason())
        };
        assert_eq!(f.output, "the console");
        assert!(!f.closed);
        assert_eq!(f.cause, io::Error::from(io::ErrorKind::StorageFull).to_string());
    }

    #[test]
    fn a_broken_pipe_is_a_closed_output() {
        let control = Arc::new(VmControl::new().unwrap());
        let inner = Failing {
            ok: 0,
            kind: io::ErrorKind::BrokenPipe,
        };
        let mut out = Output::new("stdout", Box::new(inner), control.clone());
        assert!(out.write_all(b"x").is_err());
        assert!(matches!(control.reason(), Some(StopReason::Output(f)) if f.closed));
    }

    #[test]
    fn an_interrupted_write_gives_up_only_when_the_run_is_stopping() {
        let control = Arc::new(VmControl::new().unwrap());
        control.request_stop(StopReason::Signal(libc::SIGTERM));
        let inner = Failing {
            ok: 0,
            kind: io::ErrorKind::Interrupted,
        };
        let mut out = Output::new("stdout", Box::new(inner), control.clone());
        // Would loop forever if it retried.
        let e = out.write_all(b"x").unwrap_err();
        assert_eq!(e.to_string(), "the run is stopping");
        assert_eq!(
            control.reason(),
            Some(StopReason::Signal(libc::SIGTERM)),
            "the first reason stays"
        );
    }

    #[test]
    fn host_fd_hands_back_what_the_kernel_says() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned here.
        unsafe { libc::close(fds[0]) };
        let mut w = HostFd(fds[1]);
        // The read end is gone: EPIPE (SIGPIPE is ignored by the Rust runtime).
        assert_eq!(w.write_all(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        // SAFETY: owned here, closed once.
        unsafe { libc::close(fds[1]) };
    }
}
