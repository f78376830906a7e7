//! An interrupt line: an eventfd that the VMM registers with KVM as an irqfd for one GSI.

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// Raising the line writes the eventfd; KVM injects an edge on the GSI it is bound to.
/// Without a VM the eventfd just counts, which is what device tests read back.
#[derive(Debug)]
pub struct IrqLine {
    evt: EventFd,
    gsi: u32,
}

impl IrqLine {
    /// A line for `gsi`, not yet bound to a VM.
    pub fn new(gsi: u32) -> std::io::Result<IrqLine> {
        Ok(IrqLine {
            evt: EventFd::new(EFD_NONBLOCK)?,
            gsi,
        })
    }

    /// The eventfd to register as an irqfd.
    pub fn event(&self) -> &EventFd {
        &self.evt
    }

    /// Raises the line once (an edge).
    pub fn raise(&self) {
        if let Err(e) = self.evt.write(1) {
            log::warn!("GSI {}: cannot raise the interrupt: {e}", self.gsi);
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
