//! The test-exit device, as QEMU's `isa-debug-exit`: a guest write of `v` ends the VM and
//! mmiolab exits with status `v & 0xff`. (QEMU exits with `(v << 1) | 1`; mmiolab passes the
//! value through, so a guest's 0 is a shell's success.)

use std::sync::Arc;

use vm_device::DevicePio;
use vm_device::bus::{PioAddress, PioAddressOffset};

use crate::{StopReason, VmControl};

/// The conventional port of the test-exit device.
pub const EXIT_PORT: u16 = 0xf4;

/// Ends the VM with the status the guest writes.
#[derive(Debug)]
pub struct ExitDevice {
    control: Arc<VmControl>,
}

impl ExitDevice {
    /// An exit device that stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> ExitDevice {
        ExitDevice { control }
    }
}

impl DevicePio for ExitDevice {
    fn pio_read(&self, _base: PioAddress, _offset: PioAddressOffset, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn pio_write(&self, _base: PioAddress, _offset: PioAddressOffset, data: &[u8]) {
        // Only the low byte is the status, whatever the access width.
        let status = data.first().copied().unwrap_or(0);
        self.control.request_stop(StopReason::ExitDevice(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_stops_the_vm_with_the_low_byte() {
        let control = Arc::new(VmControl::new().unwrap());
        let dev = ExitDevice::new(control.clone());
        dev.pio_write(PioAddress(EXIT_PORT), 0, &0x1_2a_u32.to_le_bytes());
        assert_eq!(control.reason(), Some(StopReason::ExitDevice(0x2a)));
    }
}
