//! The system controller: one 32-bit register through which a Linux guest powers the
//! machine off. Linux finds it through the device tree as a `syscon` region used by the
//! `syscon-poweroff` driver, which on power-off writes [`POWER_OFF`] to offset 0 (as a
//! read-modify-write). Without it an x86 guest with no ACPI halts on `poweroff` with
//! interrupts off, which a VMM with an in-kernel LAPIC never sees.

use std::sync::Arc;

use vm_device::DeviceMmio;
use vm_device::bus::{MmioAddress, MmioAddressOffset};

use crate::{StopReason, VmControl};

/// The value that powers the machine off.
pub const POWER_OFF: u32 = 1;
/// Size of the register block.
pub const SYSCTL_SIZE: u64 = 0x10;

/// Reads return 0; a 32-bit write of [`POWER_OFF`] to offset 0 stops the VM.
#[derive(Debug)]
pub struct SysCtl {
    control: Arc<VmControl>,
}

impl SysCtl {
    /// A controller that stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> SysCtl {
        SysCtl { control }
    }
}

impl DeviceMmio for SysCtl {
    fn mmio_read(&self, _base: MmioAddress, _offset: MmioAddressOffset, data: &mut [u8]) {
        data.fill(0);
    }

    fn mmio_write(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        // The low 4 bytes: a wider write of POWER_OFF powers off too.
        if offset == 0 && crate::le_u64(data) as u32 == POWER_OFF {
            self.control.request_stop(StopReason::GuestPowerOff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_off_write_stops_the_vm() {
        let control = Arc::new(VmControl::new().unwrap());
        let dev = SysCtl::new(control.clone());
        let mut word = [0xffu8; 4];
        dev.mmio_read(MmioAddress(0), 0, &mut word);
        assert_eq!(word, [0; 4]);
        dev.mmio_write(MmioAddress(0), 4, &POWER_OFF.to_le_bytes());
        dev.mmio_write(MmioAddress(0), 0, &2u32.to_le_bytes());
        assert!(!control.is_stopping());
        dev.mmio_write(MmioAddress(0), 0, &POWER_OFF.to_le_bytes());
        assert_eq!(control.reason(), Some(StopReason::GuestPowerOff));
    }
}
