//! A plain register file: the simplest device a driver can map, probe and poke.
//!
//! Layout (little endian, any access width):
//! - `0x0` ID, 32 bits, read-only: [`REGFILE_ID`] ("OIMM" in memory, 0x4d4d494f as a u32).
//! - `0x4` SIZE, 32 bits, read-only: the region size in bytes (saturated).
//! - `0x8` DOORBELL, 32 bits: a write touching it raises the device's interrupt once;
//!   reads return 0.
//! - everything else: read/write storage, zero at reset.
//!
//! A region smaller than 16 bytes (an 8-port I/O device, say) has only the ID at 0x0; the
//! rest is storage. Bytes outside the region read as all ones and ignore writes (the bus
//! never sends such accesses; this only keeps the model total).

use std::ops::Range;
use std::sync::Mutex;

use vm_device::bus::{MmioAddress, MmioAddressOffset, PioAddress, PioAddressOffset};
use vm_device::{DeviceMmio, DevicePio};

use crate::IrqLine;

/// Value of the ID register.
pub const REGFILE_ID: u32 = 0x4d4d_494f;

const ID: Range<u64> = 0..4;
const SIZE: Range<u64> = 4..8;
const DOORBELL: Range<u64> = 8..12;
/// Regions at least this large carry SIZE and DOORBELL.
const FULL_HEADER: u64 = 16;

/// The register file; see the module documentation for its layout.
#[derive(Debug)]
pub struct RegFile {
    bytes: Mutex<Vec<u8>>,
    irq: Option<IrqLine>,
}

impl RegFile {
    /// A register file of `size` bytes, raising `irq` on DOORBELL writes.
    pub fn new(size: usize, irq: Option<IrqLine>) -> RegFile {
        let mut bytes = vec![0u8; size];
        put(&mut bytes, ID, &REGFILE_ID.to_le_bytes());
        if size as u64 >= FULL_HEADER {
            let size32 = u32::try_from(size).unwrap_or(u32::MAX);
            put(&mut bytes, SIZE, &size32.to_le_bytes());
        }
        RegFile {
            bytes: Mutex::new(bytes),
            irq,
        }
    }

    /// The interrupt line, if the device has one.
    #[cfg(test)]
    fn irq(&self) -> Option<&IrqLine> {
        self.irq.as_ref()
    }

    /// The storage behind `[offset, offset + len)`, when it lies inside the region.
    fn span(offset: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let start = usize::try_from(offset).ok()?;
        Some(start..start.checked_add(len)?)
    }

    fn read(&self, offset: u64, data: &mut [u8]) {
        let bytes = crate::lock(&self.bytes);
        // DOORBELL is never stored (writes to it only ring), so its bytes stay zero and a
        // read is a plain copy of the storage, header included.
        match Self::span(offset, data.len()).and_then(|r| bytes.get(r)) {
            Some(src) => data.copy_from_slice(src),
            None => {
                // Runs past the end: the bytes that exist, all ones for the rest.
                for (i, out) in data.iter_mut().enumerate() {
                    let at = offset.saturating_add(i as u64);
                    *out = usize::try_from(at)
                        .ok()
                        .and_then(|a| bytes.get(a))
                        .copied()
                        .unwrap_or(0xff);
                }
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let mut bytes = crate::lock(&self.bytes);
        let full = bytes.len() as u64 >= FULL_HEADER;
        let header_end = if full { DOORBELL.end } else { ID.end };
        // The common case, plain storage past the header, is one copy.
        if offset >= header_end
            && let Some(dst) = Self::span(offset, data.len()).and_then(|r| bytes.get_mut(r))
        {
            dst.copy_from_slice(data);
            return;
        }
        let mut ring = false;
        for (i, value) in data.iter().enumerate() {
            let at = offset.saturating_add(i as u64);
            if ID.contains(&at) || (full && SIZE.contains(&at)) {
                continue;
            }
            if full && DOORBELL.contains(&at) {
                ring = true;
                continue;
            }
            if let Some(b) = usize::try_from(at).ok().and_then(|a| bytes.get_mut(a)) {
                *b = *value;
            }
        }
        drop(bytes);
        if let (true, Some(irq)) = (ring, &self.irq) {
            irq.raise();
        }
    }
}

impl crate::Snapshot for RegFile {
    /// Every byte of the register file, header included, as hex.
    type State = String;
    const KIND: &'static str = "regfile";
    const VERSION: u32 = 1;

    fn save(&self) -> String {
        crate::to_hex(&crate::lock(&self.bytes))
    }

    fn restore(&self, state: String) -> Result<(), crate::StateError> {
        let saved = crate::from_hex(&state).ok_or_else(|| crate::StateError::malformed("regfile", "not hex"))?;
        let mut bytes = crate::lock(&self.bytes);
        if saved.len() != bytes.len() {
            return Err(crate::StateError::malformed(
                "regfile",
                format!("{} bytes saved for a region of {}", saved.len(), bytes.len()),
            ));
        }
        *bytes = saved;
        Ok(())
    }
}

/// Copies `value` into `bytes[at]`, as far as `bytes` reaches.
fn put(bytes: &mut [u8], at: Range<u64>, value: &[u8]) {
    for (pos, v) in at.zip(value) {
        if let Some(b) = usize::try_from(pos).ok().and_then(|p| bytes.get_mut(p)) {
            *b = *v;
        }
    }
}

impl DeviceMmio for RegFile {
    fn mmio_read(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        self.read(offset, data);
    }

    fn mmio_write(&self, _base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        self.write(offset, data);
    }
}

impl DevicePio for RegFile {
    fn pio_read(&self, _base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        self.read(offset.into(), data);
    }

    fn pio_write(&self, _base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        self.write(offset.into(), data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dev: &RegFile, offset: u64, width: usize) -> u64 {
        let mut buf = [0u8; 8];
        dev.mmio_read(MmioAddress(0), offset, &mut buf[..width]);
        u64::from_le_bytes(buf)
    }

    fn write(dev: &RegFile, offset: u64, width: usize, value: u64) {
        dev.mmio_write(MmioAddress(0), offset, &value.to_le_bytes()[..width]);
    }

    #[test]
    fn header_is_read_only() {
        let dev = RegFile::new(0x1000, None);
        assert_eq!(read(&dev, 0, 4), u64::from(REGFILE_ID));
        assert_eq!(read(&dev, 4, 4), 0x1000);
        assert_eq!(read(&dev, 0, 8), 0x1000 << 32 | u64::from(REGFILE_ID));
        write(&dev, 0, 8, u64::MAX);
        assert_eq!(read(&dev, 0, 8), 0x1000 << 32 | u64::from(REGFILE_ID));
        assert_eq!(read(&dev, 1, 1), 0x49);
    }

    #[test]
    fn storage_round_trips_at_every_width() {
        let dev = RegFile::new(0x100, None);
        for (width, offset, value) in [
            (1, 0x10, 0xa5u64),
            (2, 0x12, 0xbeef),
            (4, 0x14, 0xdead_beef),
            (8, 0x18, 0x0123_4567_89ab_cdef),
        ] {
            write(&dev, offset, width, value);
            assert_eq!(read(&dev, offset, width), value, "width {width}");
        }
        // Mixed widths see the same little-endian bytes.
        write(&dev, 0x21, 2, 0x1234);
        assert_eq!(read(&dev, 0x22, 1), 0x12);
        assert_eq!(read(&dev, 0x20, 4), 0x0012_3400);
    }

    #[test]
    fn doorbell_raises_the_irq_and_reads_zero() {
        let dev = RegFile::new(0x100, Some(IrqLine::new(5).unwrap()));
        write(&dev, 8, 4, 1);
        write(&dev, 0x9, 1, 1);
        write(&dev, 0x10, 4, 1);
        assert_eq!(dev.irq().unwrap().event().read().unwrap(), 2);
        assert_eq!(read(&dev, 8, 4), 0);
    }

    #[test]
    fn a_write_across_doorbell_and_storage_rings_and_stores() {
        let dev = RegFile::new(0x100, Some(IrqLine::new(5).unwrap()));
        write(&dev, 8, 8, 0x1122_3344_5566_7788);
        assert_eq!(dev.irq().unwrap().event().read().unwrap(), 1);
        assert_eq!(read(&dev, 8, 8), 0x1122_3344_0000_0000);
    }

    #[test]
    fn small_region_has_only_the_id() {
        let dev = RegFile::new(8, None);
        let mut b = [0u8; 1];
        dev.pio_read(PioAddress(0x378), 0, &mut b);
        assert_eq!(b[0], 0x4f);
        dev.pio_write(PioAddress(0x378), 4, &[0x5a, 0x5b]);
        let mut two = [0u8; 2];
        dev.pio_read(PioAddress(0x378), 4, &mut two);
        assert_eq!(two, [0x5a, 0x5b]);
    }

    #[test]
    fn state_round_trips_and_a_size_mismatch_is_refused() {
        use crate::Snapshot;
        let dev = RegFile::new(0x20, None);
        write(&dev, 0x10, 4, 0xdead_beef);
        let other = RegFile::new(0x20, None);
        other.restore(dev.save()).unwrap();
        assert_eq!(read(&other, 0x10, 4), 0xdead_beef);
        let small = RegFile::new(0x10, None);
        assert_eq!(
            small.restore(dev.save()).unwrap_err().to_string(),
            "malformed `regfile` state: 32 bytes saved for a region of 16"
        );
    }

    #[test]
    fn accesses_past_the_end_never_panic() {
        let dev = RegFile::new(16, None);
        assert_eq!(read(&dev, 14, 4), 0xffff_0000);
        write(&dev, u64::MAX, 8, u64::MAX);
        assert_eq!(read(&dev, u64::MAX - 1, 8), 0xffff_ffff_ffff_ffff);
        let empty = RegFile::new(0, None);
        assert_eq!(read(&empty, 0, 4), 0xffff_ffff);
    }
}
