//! SIGINT, SIGTERM and SIGHUP as a clean stop of the run.
//!
//! Their default action kills mmiolab on the spot: the trace's buffer is lost, no summary is
//! printed, the exit status says "killed". Instead [`StopSignals::block`] blocks the three
//! in the calling thread before any other thread exists (threads inherit the mask, so no
//! vCPU thread is ever interrupted by them) and opens a signalfd; the VMM's event loop
//! watches it like any other source and stops the VM with [`StopReason::Signal`], after
//! which the run ends as every run does: vCPUs joined, trace flushed, summary printed.
//!
//! [`StopReason::Signal`]: mmiolab_devices::StopReason::Signal

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The signals that stop a run cleanly.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A signalfd for [`STOP_SIGNALS`], which are blocked in the thread that made it.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset only adds valid
    // signal numbers to it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

impl StopSignals {
    /// Blocks [`STOP_SIGNALS`] in the calling thread and opens a signalfd for them. Call it
    /// before starting any thread that should not see them (the mask is inherited).
    pub fn block() -> io::Result<StopSignals> {
        let set = signal_set();
        // SAFETY: `set` is an initialised signal set; the old mask is not needed.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: signalfd returned a new descriptor that nothing else owns.
        Ok(StopSignals {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The next pending stop signal's number, if one is pending.
    pub fn take(&self) -> io::Result<Option<i32>> {
        // SAFETY: an all-zero signalfd_siginfo is a valid value of this plain C struct.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is a writable buffer of `size` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&raw mut info).cast(), size) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok((n.unsigned_abs() == size).then(|| i32::try_from(info.ssi_signo).unwrap_or(0)))
    }
}

impl AsRawFd for StopSignals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The conventional name of stop signal `signo` ("SIGINT"), for messages.
pub fn signal_name(signo: i32) -> String {
    match signo {
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        libc::SIGHUP => "SIGHUP".to_owned(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_read_from_the_fd() {
        // Blocks in this test's thread only; the signal is sent to this thread.
        let signals = StopSignals::block().unwrap();
        assert_eq!(signals.take().unwrap(), None);
        // SAFETY: pthread_self is this thread; SIGHUP is blocked here, so it stays pending.
        assert_eq!(unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGHUP) }, 0);
        assert_eq!(signals.take().unwrap(), Some(libc::SIGHUP));
        assert_eq!(signals.take().unwrap(), None);
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
    }
}
