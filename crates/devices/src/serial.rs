//! The 16550 UART (vm-superio's model) on the I/O-port bus.

use std::io::Write;
use std::sync::Mutex;

use vm_device::DevicePio;
use vm_device::bus::{PioAddress, PioAddressOffset};
use vm_superio::serial::NoEvents;

use crate::IrqLine;

type Uart = vm_superio::Serial<IrqLine, NoEvents, Box<dyn Write + Send>>;

/// A 16550 UART whose transmitter writes to `out` and whose receiver is fed by
/// [`Serial::enqueue_input`]. Its registers are one byte wide: wider accesses read all
/// ones and are otherwise ignored.
pub struct Serial {
    uart: Mutex<Uart>,
}

impl std::fmt::Debug for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serial").finish_non_exhaustive()
    }
}

impl Serial {
    /// A UART raising `irq` and writing what the guest transmits to `out`.
    pub fn new(irq: IrqLine, out: Box<dyn Write + Send>) -> Serial {
        Serial {
            uart: Mutex::new(vm_superio::Serial::new(irq, out)),
        }
    }

    /// Queues host input for the guest to read; returns how many bytes fitted in the FIFO.
    pub fn enqueue_input(&self, input: &[u8]) -> usize {
        crate::lock(&self.uart).enqueue_raw_bytes(input).unwrap_or_default()
    }
}

impl DevicePio for Serial {
    fn pio_read(&self, _base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(offset), [byte]) => *byte = crate::lock(&self.uart).read(offset),
            (_, data) => data.fill(0xff),
        }
    }

    fn pio_write(&self, _base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        if let (Ok(offset), [value]) = (u8::try_from(offset), data)
            && let Err(e) = crate::lock(&self.uart).write(offset, *value)
        {
            log::debug!("serial: write of {value:#x} at offset {offset}: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmits_bytes_and_receives_input() {
        let sink = Sink::default();
        let serial = Serial::new(IrqLine::new(4).unwrap(), Box::new(sink.clone()));
        for b in b"hi" {
            serial.pio_write(PioAddress(0x3f8), 0, &[*b]);
        }
        assert_eq!(sink.0.lock().unwrap().as_slice(), b"hi");
        assert_eq!(serial.enqueue_input(b"x"), 1);
        let mut lsr = [0u8];
        serial.pio_read(PioAddress(0x3f8), 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut rx = [0u8];
        serial.pio_read(PioAddress(0x3f8), 0, &mut rx);
        assert_eq!(&rx, b"x");
    }

    #[test]
    fn wide_accesses_are_harmless() {
        let serial = Serial::new(IrqLine::new(4).unwrap(), Box::new(std::io::sink()));
        let mut four = [0u8; 4];
        serial.pio_read(PioAddress(0x3f8), 0, &mut four);
        assert_eq!(four, [0xff; 4]);
        serial.pio_write(PioAddress(0x3f8), 0, &[1, 2]);
        serial.pio_write(PioAddress(0x3f8), 0x1_00, &[1]);
    }
}
