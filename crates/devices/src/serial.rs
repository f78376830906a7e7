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

/// The 16550's registers and its receive buffer, as vm-superio's `SerialState` holds them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSnapshot {
    /// DLL, DLM, IER, IIR, LCR, LSR, MCR, MSR, SCR.
    pub registers: [u8; 9],
    /// Bytes received and not yet read by the guest, as hex.
    pub receive: String,
}

impl crate::Snapshot for Serial {
    type State = SerialSnapshot;
    const KIND: &'static str = "serial-16550";
    const VERSION: u32 = 1;

    fn save(&self) -> SerialSnapshot {
        let s = crate::lock(&self.uart).state();
        SerialSnapshot {
            registers: [
                s.baud_divisor_low,
                s.baud_divisor_high,
                s.interrupt_enable,
                s.interrupt_identification,
                s.line_control,
                s.line_status,
                s.modem_control,
                s.modem_status,
                s.scratch,
            ],
            receive: crate::to_hex(&s.in_buffer),
        }
    }

    fn restore(&self, state: SerialSnapshot) -> Result<(), crate::StateError> {
        let bad = |why: &str| crate::StateError::malformed("serial-16550", why);
        let [dll, dlm, ier, iir, lcr, lsr, mcr, msr, scr] = state.registers;
        let saved = vm_superio::serial::SerialState {
            baud_divisor_low: dll,
            baud_divisor_high: dlm,
            interrupt_enable: ier,
            interrupt_identification: iir,
            line_control: lcr,
            line_status: lsr,
            modem_control: mcr,
            modem_status: msr,
            scratch: scr,
            in_buffer: crate::from_hex(&state.receive).ok_or_else(|| bad("receive buffer: not hex"))?,
        };
        let mut uart = crate::lock(&self.uart);
        let irq = uart.interrupt_evt().clone();
        // The output moves from the old model to the restored one.
        let old = std::mem::replace(
            &mut *uart,
            vm_superio::Serial::new(irq.clone(), Box::new(std::io::sink())),
        );
        let out = old.into_writer();
        *uart =
            vm_superio::Serial::from_state(&saved, irq.clone(), NoEvents, out).map_err(|e| bad(&format!("{e:?}")))?;
        // from_state re-raises a pending transmit/receive interrupt; the restored interrupt
        // controller already holds the one that was delivered, so drop the new edge.
        let _ = irq.event().read();
        Ok(())
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
        // The state, with the received byte, moves to a fresh UART.
        use crate::Snapshot;
        let other = Serial::new(IrqLine::new(4).unwrap(), Box::new(std::io::sink()));
        other.restore(serial.save()).unwrap();
        let mut b = [0u8; 1];
        other.pio_read(PioAddress(0x3f8), 0, &mut b);
        assert_eq!(b, [b'x']);
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
