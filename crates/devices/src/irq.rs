//! Interrupt lines: an eventfd that the VMM registers with KVM as an irqfd for one GSI.
//!
//! An **edge** line ([`IrqLine::new`]) is a plain irqfd: each write of the eventfd makes KVM
//! pulse the GSI once.
//!
//! A **level** line ([`IrqLine::new_level`]) is an irqfd with a resample eventfd (KVM's
//! `KVM_IRQFD_FLAG_RESAMPLE`): a write of the eventfd makes KVM *assert* the GSI and keep it
//! asserted until the guest EOIs the interrupt; then KVM de-asserts it and signals the
//! resample eventfd. The VMM answers that signal with [`IrqLine::resample`], which asserts
//! the GSI again if the device still holds the line (crosvm's `IrqLevelEvent` pattern). So
//! a device's de-assertion takes effect at the guest's next EOI, which is when a guest looks
//! at the line again anyway: a handler clears the cause in the device, then EOIs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// How a line signals the interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqTrigger {
    /// One pulse per rising transition (or per [`IrqLine::raise`]).
    Edge,
    /// Held while the device asserts it; re-asserted after each guest EOI while still held.
    Level,
}

/// One interrupt line of a device.
///
/// Clones are handles to the same line (same eventfds, same level), so the VMM can keep one
/// to bind it to KVM while the device owns another. Without a VM the eventfd just counts
/// assertions, which is what device tests read back.
#[derive(Clone, Debug)]
pub struct IrqLine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    evt: EventFd,
    /// Only level lines have one.
    resample: Option<EventFd>,
    gsi: u32,
    trigger: IrqTrigger,
    /// The level the device drives, read by `resample` from the VMM thread.
    asserted: AtomicBool,
}

impl IrqLine {
    /// An edge-triggered line for `gsi`, not yet bound to a VM.
    pub fn new(gsi: u32) -> std::io::Result<IrqLine> {
        IrqLine::build(gsi, IrqTrigger::Edge, None)
    }

    /// A level-triggered line for `gsi`, with its resample eventfd, not yet bound to a VM.
    pub fn new_level(gsi: u32) -> std::io::Result<IrqLine> {
        IrqLine::build(gsi, IrqTrigger::Level, Some(EventFd::new(EFD_NONBLOCK)?))
    }

    fn build(gsi: u32, trigger: IrqTrigger, resample: Option<EventFd>) -> std::io::Result<IrqLine> {
        Ok(IrqLine {
            inner: Arc::new(Inner {
                evt: EventFd::new(EFD_NONBLOCK)?,
                resample,
                gsi,
                trigger,
                asserted: AtomicBool::new(false),
            }),
        })
    }

    /// The GSI (IOAPIC pin) the line is wired to.
    pub fn gsi(&self) -> u32 {
        self.inner.gsi
    }

    /// Edge or level.
    pub fn trigger(&self) -> IrqTrigger {
        self.inner.trigger
    }

    /// The eventfd to register as an irqfd.
    pub fn event(&self) -> &EventFd {
        &self.inner.evt
    }

    /// The eventfd KVM signals when the guest EOIs a level interrupt (`None` for an edge
    /// line): register it as the irqfd's resample fd and call [`IrqLine::resample`] when it
    /// becomes readable.
    pub fn resample_event(&self) -> Option<&EventFd> {
        self.inner.resample.as_ref()
    }

    /// Pulses the line once. On a level line this asserts the GSI until the guest's next
    /// EOI, whatever level the device holds.
    pub fn raise(&self) {
        self.signal();
    }

    /// Drives the line to `asserted`. A rising transition signals the interrupt controller
    /// (an edge line pulses once per rising transition); a falling one only records the
    /// level, which a level line's next [`IrqLine::resample`] honours.
    pub fn set_level(&self, asserted: bool) {
        let was = self.inner.asserted.swap(asserted, Ordering::AcqRel);
        if asserted && !was {
            self.signal();
        }
    }

    /// The level the device drives.
    pub fn is_asserted(&self) -> bool {
        self.inner.asserted.load(Ordering::Acquire)
    }

    /// KVM signalled the resample eventfd: the guest EOI'd and KVM de-asserted the GSI.
    /// Asserts it again if the device still holds the line.
    /// Does nothing on an edge line, which KVM never holds.
    pub fn resample(&self) {
        let Some(r) = &self.inner.resample else {
            return;
        };
        // Drain before looking at the level: a resample that races with this one must find
        // the fd readable again rather than be swallowed. EAGAIN only means a spurious call.
        let _ = r.read();
        if self.is_asserted() {
            self.signal();
        }
    }

    fn signal(&self) {
        if let Err(e) = self.inner.evt.write(1) {
            log::warn!("GSI {}: cannot raise the interrupt: {e}", self.inner.gsi);
        }
    }
}

impl vm_superio::Trigger for IrqLine {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.raise();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assertions signalled since the last call (the eventfd counter, read without blocking).
    fn signalled(fd: &EventFd) -> u64 {
        fd.read().unwrap_or(0)
    }

    #[test]
    fn edge_line_fires_once_per_rising_transition() {
        let line = IrqLine::new(5).unwrap();
        assert_eq!((line.gsi(), line.trigger()), (5, IrqTrigger::Edge));
        assert!(line.resample_event().is_none());
        line.set_level(true);
        line.set_level(true);
        assert_eq!(signalled(line.event()), 1);
        assert!(line.is_asserted());
        line.set_level(false);
        assert_eq!(signalled(line.event()), 0);
        line.set_level(true);
        assert_eq!(signalled(line.event()), 1);
        line.raise();
        line.raise();
        assert_eq!(signalled(line.event()), 2);
    }

    #[test]
    fn level_line_reasserts_on_resample_while_held() {
        let line = IrqLine::new_level(9).unwrap();
        assert_eq!(line.trigger(), IrqTrigger::Level);
        let resample = line.resample_event().unwrap().try_clone().unwrap();
        line.set_level(true);
        assert_eq!(signalled(line.event()), 1);
        // The guest EOIs; KVM de-asserts and signals the resample fd.
        resample.write(1).unwrap();
        line.resample();
        assert_eq!(signalled(line.event()), 1, "still held: asserted again");
        assert!(resample.read().is_err(), "resample drained the fd");
        line.set_level(false);
        assert_eq!(signalled(line.event()), 0);
        resample.write(1).unwrap();
        line.resample();
        assert_eq!(signalled(line.event()), 0, "released: stays de-asserted");
    }

    #[test]
    fn clones_share_the_line() {
        let line = IrqLine::new_level(3).unwrap();
        let other = line.clone();
        other.set_level(true);
        assert!(line.is_asserted());
        assert_eq!(signalled(line.event()), 1);
    }

    #[test]
    fn spurious_resample_of_an_edge_line_does_nothing() {
        let line = IrqLine::new(4).unwrap();
        line.set_level(true);
        assert_eq!(signalled(line.event()), 1);
        line.resample();
        assert_eq!(signalled(line.event()), 0);
    }
}
