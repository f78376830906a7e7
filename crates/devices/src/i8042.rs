//! The i8042 keyboard controller (vm-superio's model), present so that a Linux guest's
//! `reboot` (keyboard-controller reset, command 0xfe) ends the VM cleanly.

use std::sync::{Arc, Mutex};

use vm_device::DevicePio;
use vm_device::bus::{PioAddress, PioAddressOffset};

use crate::{StopReason, VmControl};

/// Turns the controller's reset line into a VM stop.
#[derive(Debug)]
struct ResetLine(Arc<VmControl>);

impl vm_superio::Trigger for ResetLine {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.request_stop(StopReason::GuestReset);
        Ok(())
    }
}

/// The i8042 at ports 0x60-0x64.
#[derive(Debug)]
pub struct I8042 {
    inner: Mutex<vm_superio::I8042Device<ResetLine>>,
}

impl I8042 {
    /// Base port and number of ports the controller decodes.
    pub const PORTS: (u16, u16) = (0x60, 5);

    /// A controller whose reset command stops the VM through `control`.
    pub fn new(control: Arc<VmControl>) -> I8042 {
        I8042 {
            inner: Mutex::new(vm_superio::I8042Device::new(ResetLine(control))),
        }
    }
}

impl DevicePio for I8042 {
    fn pio_read(&self, _base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(offset), [byte]) => *byte = crate::lock(&self.inner).read(offset),
            (_, data) => data.fill(0xff),
        }
    }

    fn pio_write(&self, _base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        if let (Ok(offset), [value]) = (u8::try_from(offset), data) {
            // The reset line's trigger cannot fail.
            let _ = crate::lock(&self.inner).write(offset, *value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_stops_the_vm() {
        let control = Arc::new(VmControl::new().unwrap());
        let kbd = I8042::new(control.clone());
        kbd.pio_write(PioAddress(0x60), 4, &[0xfe]);
        assert_eq!(control.reason(), Some(StopReason::GuestReset));
    }
}
