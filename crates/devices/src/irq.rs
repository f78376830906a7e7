//! Interrupt lines of devices, wired to one GSI (IOAPIC pin) each.
//!
//! An **edge** line ([`IrqLine::new`]) is an eventfd the VMM registers with KVM as an irqfd:
//! each write makes KVM pulse the GSI once, without leaving the vCPU thread's fast path.
//!
//! A **level** line ([`IrqLine::new_level`]) carries the device's level to the interrupt
//! controller as it changes, through an [`IrqChip`] (KVM_IRQ_LINE): asserted while the
//! device's condition holds, de-asserted when it clears. The IOAPIC then does what real
//! hardware does: it delivers once, holds the pin's remote IRR until the guest's EOI, and
//! delivers again after the EOI only if the line is still high. So a driver that
//! acknowledges by write-1-to-clear before its EOI sees exactly one interrupt per event.
//!
//! Why not an irqfd with a resample fd (`KVM_IRQFD_FLAG_RESAMPLE`), as crosvm does: the
//! device cannot lower the GSI that way, only re-raise it when KVM reports an EOI; and on
//! this project's PVM-based KVM the resample fd fires when the interrupt is *delivered*,
//! before the handler has cleared the cause, which turned every event into two interrupts
//! (measured: about half of all runs). KVM_IRQ_LINE costs one ioctl per level change and
//! is exact on every KVM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// How a line signals the interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqTrigger {
    /// One pulse per rising transition (or per [`IrqLine::raise`]).
    Edge,
    /// Held high while the device asserts it.
    Level,
}

/// Sets the level of a GSI at the interrupt controller (the VMM implements it with
/// KVM_IRQ_LINE). Called with the device's lock held: it must not call into devices.
pub trait IrqChip: Send + Sync {
    /// Drives `gsi` to `level`.
    fn set_irq_line(&self, gsi: u32, level: bool) -> std::io::Result<()>;
}

/// One interrupt line of a device.
///
/// Clones are handles to the same line (same eventfd, same level, same chip), so the VMM
/// keeps one to bind it while the device owns another. An edge line's eventfd counts
/// pulses and an unconnected level line's counts rising transitions on it: device tests
/// read it back, and a VMM can bind it as an irqfd to make each rising edge one pulse.
#[derive(Clone, Debug)]
pub struct IrqLine {
    inner: Arc<Inner>,
}

struct Inner {
    evt: EventFd,
    gsi: u32,
    trigger: IrqTrigger,
    /// The level the device drives.
    asserted: AtomicBool,
    /// Where a level line's changes go once the VM exists.
    chip: OnceLock<Arc<dyn IrqChip>>,
    /// Set after the first failure to drive the chip, so a broken line logs once.
    failed: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqLine")
            .field("gsi", &self.gsi)
            .field("trigger", &self.trigger)
            .field("asserted", &self.asserted)
            .field("connected", &self.chip.get().is_some())
            .finish()
    }
}

impl IrqLine {
    /// An edge-triggered line for `gsi`, not yet bound to a VM.
    pub fn new(gsi: u32) -> std::io::Result<IrqLine> {
        IrqLine::build(gsi, IrqTrigger::Edge)
    }

    /// A level-triggered line for `gsi`, not yet connected to a VM.
    pub fn new_level(gsi: u32) -> std::io::Result<IrqLine> {
        IrqLine::build(gsi, IrqTrigger::Level)
    }

    fn build(gsi: u32, trigger: IrqTrigger) -> std::io::Result<IrqLine> {
        Ok(IrqLine {
            inner: Arc::new(Inner {
                evt: EventFd::new(EFD_NONBLOCK)?,
                gsi,
                trigger,
                asserted: AtomicBool::new(false),
                chip: OnceLock::new(),
                failed: AtomicBool::new(false),
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

    /// The line's eventfd, to register as an irqfd: an edge line signals it per pulse, a
    /// level line that is not connected to a chip per rising transition.
    pub fn event(&self) -> &EventFd {
        &self.inner.evt
    }

    /// Connects a level line to the interrupt controller and drives it to the level the
    /// device holds now. Later calls are ignored.
    pub fn connect(&self, chip: Arc<dyn IrqChip>) {
        if self.inner.chip.set(chip).is_ok() && self.is_asserted() {
            self.drive(true);
        }
    }

    /// One interrupt: a pulse of an edge line; on a level line a high-then-low pulse, which
    /// the IOAPIC delivers once.
    pub fn raise(&self) {
        match self.inner.trigger {
            IrqTrigger::Edge => self.signal(),
            IrqTrigger::Level => {
                self.drive(true);
                if !self.is_asserted() {
                    self.drive(false);
                }
            }
        }
    }

    /// Drives the line to `asserted`. An edge line pulses once per rising transition; a
    /// level line passes every change to the interrupt controller.
    pub fn set_level(&self, asserted: bool) {
        let was = self.inner.asserted.swap(asserted, Ordering::AcqRel);
        if was == asserted {
            return;
        }
        match self.inner.trigger {
            IrqTrigger::Edge if asserted => self.signal(),
            IrqTrigger::Edge => {}
            IrqTrigger::Level => self.drive(asserted),
        }
    }

    /// Takes `asserted` as the level the device drives, without a pulse or a call to the
    /// interrupt controller: a restored snapshot's level, whose delivery the restored
    /// controller state already holds. A level line drives it when it is connected.
    pub fn restore_level(&self, asserted: bool) {
        self.inner.asserted.store(asserted, Ordering::Release);
    }

    /// The level the device drives.
    pub fn is_asserted(&self) -> bool {
        self.inner.asserted.load(Ordering::Acquire)
    }

    fn drive(&self, level: bool) {
        let Some(chip) = self.inner.chip.get() else {
            // Not connected: a pulse of the eventfd per rising transition, which device
            // tests count, and which a VMM that binds the eventfd as an irqfd delivers.
            if level {
                self.signal();
            }
            return;
        };
        if let Err(e) = chip.set_irq_line(self.inner.gsi, level)
            && !self.inner.failed.swap(true, Ordering::AcqRel)
        {
            log::warn!("GSI {}: cannot set the interrupt level: {e}", self.inner.gsi);
        }
    }

    fn signal(&self) {
        if let Err(e) = self.inner.evt.write(1)
            && !self.inner.failed.swap(true, Ordering::AcqRel)
        {
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
    use std::sync::Mutex;

    /// Pulses signalled since the last call (the eventfd counter, read without blocking).
    fn signalled(fd: &EventFd) -> u64 {
        fd.read().unwrap_or(0)
    }

    #[derive(Default)]
    struct Chip(Mutex<Vec<(u32, bool)>>);

    impl IrqChip for Chip {
        fn set_irq_line(&self, gsi: u32, level: bool) -> std::io::Result<()> {
            self.0.lock().unwrap().push((gsi, level));
            Ok(())
        }
    }

    #[test]
    fn edge_line_fires_once_per_rising_transition() {
        let line = IrqLine::new(5).unwrap();
        assert_eq!((line.gsi(), line.trigger()), (5, IrqTrigger::Edge));
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
    fn level_line_passes_each_change_to_the_chip() {
        let line = IrqLine::new_level(9).unwrap();
        assert_eq!(line.trigger(), IrqTrigger::Level);
        line.set_level(true);
        let chip = Arc::new(Chip::default());
        line.connect(chip.clone());
        line.set_level(true);
        line.set_level(false);
        line.set_level(false);
        line.raise();
        assert_eq!(
            *chip.0.lock().unwrap(),
            vec![(9, true), (9, false), (9, true), (9, false)],
            "connect drives the held level; repeats are not passed on; a pulse is high then low"
        );
        assert_eq!(
            signalled(line.event()),
            1,
            "before connect, the rising edge was counted"
        );
    }

    #[test]
    fn clones_share_the_line() {
        let line = IrqLine::new_level(3).unwrap();
        let other = line.clone();
        other.set_level(true);
        assert!(line.is_asserted());
        assert_eq!(signalled(line.event()), 1);
    }
}
