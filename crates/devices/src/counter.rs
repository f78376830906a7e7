//! A sequence register: every read returns the next value of a counter, so the order in
//! which a guest's string input (`rep insw`) consumed the reads is visible in the data.

use std::sync::atomic::{AtomicU64, Ordering};

use vm_device::bus::{MmioAddress, MmioAddressOffset, PioAddress, PioAddressOffset};
use vm_device::{DeviceMmio, DevicePio};

/// Reads return 1, 2, 3 ... (little endian, truncated to the access width); a write sets
/// the counter to the value written. Offsets are ignored.
#[derive(Debug, Default)]
pub struct Counter {
    next: AtomicU64,
}

impl Counter {
    /// A counter whose first read returns 1.
    pub fn new() -> Counter {
        Counter::default()
    }

    fn read(&self, data: &mut [u8]) {
        let value = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        for (out, b) in data.iter_mut().zip(value.to_le_bytes()) {
            *out = b;
        }
    }

    fn write(&self, data: &[u8]) {
        self.next.store(crate::le_u64(data), Ordering::Relaxed);
    }
}

impl crate::Snapshot for Counter {
    /// The value the last read returned (the next read returns it plus one).
    type State = u64;
    const KIND: &'static str = "counter";
    const VERSION: u32 = 1;

    fn save(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    fn restore(&self, state: u64) -> Result<(), crate::StateError> {
        self.next.store(state, Ordering::Relaxed);
        Ok(())
    }
}

impl DevicePio for Counter {
    fn pio_read(&self, _base: PioAddress, _offset: PioAddressOffset, data: &mut [u8]) {
        self.read(data);
    }

    fn pio_write(&self, _base: PioAddress, _offset: PioAddressOffset, data: &[u8]) {
        self.write(data);
    }
}

impl DeviceMmio for Counter {
    fn mmio_read(&self, _base: MmioAddress, _offset: MmioAddressOffset, data: &mut [u8]) {
        self.read(data);
    }

    fn mmio_write(&self, _base: MmioAddress, _offset: MmioAddressOffset, data: &[u8]) {
        self.write(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_and_can_be_set() {
        let c = Counter::new();
        let mut two = [0u8; 2];
        c.pio_read(PioAddress(0), 0, &mut two);
        assert_eq!(two, [1, 0]);
        c.pio_read(PioAddress(0), 1, &mut two);
        assert_eq!(two, [2, 0]);
        c.pio_write(PioAddress(0), 0, &[0xff, 0x00]);
        let mut one = [0u8; 1];
        c.pio_read(PioAddress(0), 0, &mut one);
        assert_eq!(one, [0]);
        let mut long = [0u8; 9];
        c.mmio_read(MmioAddress(0), 0, &mut long);
        assert_eq!(long, [1, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_restored_counter_goes_on_from_the_saved_count() {
        use crate::Snapshot;
        let c = Counter::new();
        let mut one = [0u8; 1];
        c.pio_read(PioAddress(0), 0, &mut one);
        c.pio_read(PioAddress(0), 0, &mut one);
        let d = Counter::new();
        d.restore(c.save()).unwrap();
        d.pio_read(PioAddress(0), 0, &mut one);
        assert_eq!(one, [3]);
    }
}
