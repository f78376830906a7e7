//! How devices (and the vCPU threads) ask for the whole VM to stop.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote `status` to the test-exit device.
    ExitDevice(u8),
    /// The guest reset the machine (keyboard-controller reset): a reboot request, taken as
    /// a clean end.
    GuestReset,
    /// The guest powered the machine off (through the system controller).
    GuestPowerOff,
    /// The guest kernel reported a panic through pvpanic.
    GuestPanic,
    /// A vCPU hit something it could not handle; the text is the report.
    Fault(String),
    /// The run's `--timeout` passed with the guest still running.
    Timeout(std::time::Duration),
    /// mmiolab was asked to stop by a signal (SIGINT, SIGTERM, SIGHUP): its number.
    Signal(i32),
    /// An output of the run (the console, the trace, a FIFO's host file) could not take
    /// what was written to it: the run ends rather than go on losing data.
    Output(OutputFailure),
    /// The guest reached the marker of `--snapshot-after` (`what` names it): the VM stops
    /// so that its state can be saved.
    Snapshot(String),
}

/// Which output failed and how, kept as text so that a [`StopReason`] stays comparable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFailure {
    /// The output, in words ("standard output (the guest console)", "the trace file ...").
    pub output: String,
    /// The cause, as the OS put it.
    pub cause: String,
    /// The reader went away (a broken pipe or a hung-up terminal) rather than the write
    /// failing: a quiet ending, as for any program whose reader has left.
    pub closed: bool,
}

impl OutputFailure {
    /// The failure of `output` with `error`.
    pub fn new(output: impl Into<String>, error: &std::io::Error) -> OutputFailure {
        OutputFailure {
            output: output.into(),
            cause: error.to_string(),
            closed: error.kind() == std::io::ErrorKind::BrokenPipe,
        }
    }
}

/// Shared by devices and vCPU threads: the first stop request wins, the rest are ignored.
#[derive(Debug)]
pub struct VmControl {
    stopping: AtomicBool,
    reason: Mutex<Option<StopReason>>,
    evt: EventFd,
}

impl VmControl {
    /// A control with no stop requested.
    pub fn new() -> std::io::Result<VmControl> {
        Ok(VmControl {
            stopping: AtomicBool::new(false),
            reason: Mutex::new(None),
            evt: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// Asks the VM to stop. Only the first request's reason is kept.
    pub fn request_stop(&self, reason: StopReason) {
        let mut slot = crate::lock(&self.reason);
        if slot.is_none() {
            *slot = Some(reason);
            self.stopping.store(true, Ordering::Release);
            // A full counter only means a wake-up is already pending.
            let _ = self.evt.write(1);
        }
    }

    /// Whether a stop was requested: one atomic load, cheap enough for every exit.
    #[inline]
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The reason of the first stop request.
    pub fn reason(&self) -> Option<StopReason> {
        crate::lock(&self.reason).clone()
    }

    /// Becomes readable when a stop is requested (for the VMM's event loop).
    pub fn event(&self) -> &EventFd {
        &self.evt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_wins_and_wakes_the_event() {
        let c = VmControl::new().unwrap();
        assert!(!c.is_stopping());
        assert!(c.event().read().is_err(), "nothing pending yet");
        c.request_stop(StopReason::ExitDevice(3));
        c.request_stop(StopReason::GuestPanic);
        assert!(c.is_stopping());
        assert_eq!(c.reason(), Some(StopReason::ExitDevice(3)));
        assert_eq!(c.event().read().unwrap(), 1);
    }
}
