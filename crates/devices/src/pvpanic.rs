//! pvpanic (QEMU's `pvpanic-mmio`, DT compatible "qemu,pvpanic-mmio"): a one-byte register
//! through which a Linux guest reports a kernel panic, so the VM ends with a failure status
//! instead of hanging or rebooting.

use std::sync::Arc;

use vm_device::DeviceMmio;
use vm_device::bus::{MmioAddress, MmioAddressOffset};

use crate::{StopReason, VmControl};

/// Event bit: the guest panicked.
const PANICKED: u8 = 1 << 0;
/// Event bit: a crash kernel was loaded (reported, not acted on).
const CRASH_LOADED: u8 = 1 << 1;

/// Reads advertise the supported events; writing `PANICKED` stops the VM.
#[derive(Debug)]
pub struct PvPanic {
    control: Arc<VmControl>,
}

impl PvPanic {
    /// A pvpanic device that stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> PvPanic {
        PvPanic { control }
    }
}

impl DeviceMmio for PvPanic {
    fn mmio_read(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        data.fill(0);
        if let (0, Some(first)) = (offset, data.first_mut()) {
            *first = PANICKED | CRASH_LOADED;
        }
    }

    fn mmio_write(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        if offset == 0 && data.first().is_some_and(|v| v & PANICKED != 0) {
            self.control.request_stop(StopReason::GuestPanic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_events_and_stops_on_panic() {
        let control = Arc::new(VmControl::new().unwrap());
        let dev = PvPanic::new(control.clone());
        let mut b = [0u8; 1];
        dev.mmio_read(MmioAddress(0), 0, &mut b);
        assert_eq!(b[0], 3);
        dev.mmio_write(MmioAddress(0), 0, &[CRASH_LOADED]);
        assert!(!control.is_stopping());
        dev.mmio_write(MmioAddress(0), 0, &[PANICKED]);
        assert_eq!(control.reason(), Some(StopReason::GuestPanic));
    }
}
