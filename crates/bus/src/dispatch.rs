//! Building the bus and dispatching trapped accesses.
//!
//! Dispatch goes through mmiolab's own table (`DispatchTable`): each address space's
//! device ranges sorted by first address, found by binary search (O(log n)); the whole access
//! must lie inside one device's range, and the device gets its region base and the offset.
//! Ranges are validated with vm-device's `MmioRange`/`PioRange` and devices implement its
//! `DeviceMmio`/`DevicePio`; its `IoManager` is not used because registering checks the new
//! range against every registered one (O(n) per device, so O(n²) to build: 100,000 devices
//! took minutes, docs/performance.md). Overlaps are refused by the resource tree (sibling
//! neighbours in a `BTreeMap`) before a range reaches the table, and the table is sorted
//! once, when the bus is frozen. The bus is immutable once built, so vCPU threads share it
//! behind an `Arc` with no lock; devices synchronise their own state.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vm_device::bus::{MmioAddress, MmioRange, PioAddress, PioRange};
use vm_device::{DeviceMmio, DevicePio};

use crate::{AddressSpace, BusError, RegionId, RegionKind, ResourceTree, Result};

/// A device reachable through MMIO.
pub type MmioDevice = Arc<dyn DeviceMmio + Send + Sync>;
/// A device reachable through I/O ports.
pub type PioDevice = Arc<dyn DevicePio + Send + Sync>;

/// Where a trapped access went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routed {
    /// A device took it.
    Device,
    /// No device covers the whole access: reads returned all ones, writes were dropped.
    Unmapped,
}

/// One device range of a [`DispatchTable`]: first and last address (inclusive).
struct Entry<D: ?Sized> {
    base: u64,
    last: u64,
    dev: Arc<D>,
}

/// One address space's device ranges, sorted by first address and disjoint: a lookup is a
/// binary search. Built by pushing in any order and sorting once ([`DispatchTable::seal`]).
struct DispatchTable<D: ?Sized> {
    entries: Vec<Entry<D>>,
}

impl<D: ?Sized> Default for DispatchTable<D> {
    fn default() -> Self {
        DispatchTable { entries: Vec::new() }
    }
}

impl<D: ?Sized> DispatchTable<D> {
    fn push(&mut self, base: u64, last: u64, dev: Arc<D>) {
        self.entries.push(Entry { base, last, dev });
    }

    /// Sorts the ranges (O(n log n)). The resource tree has refused overlaps already, so
    /// neighbours are disjoint; that is asserted, not assumed, in debug builds.
    fn seal(&mut self) {
        self.entries.sort_unstable_by_key(|e| e.base);
        debug_assert!(
            self.entries.windows(2).all(|w| w[0].last < w[1].base),
            "the resource tree let overlapping device ranges through"
        );
    }

    /// The range holding `addr` and its device.
    #[inline]
    fn find(&self, addr: u64) -> Option<&Entry<D>> {
        let pos = self.entries.partition_point(|e| e.base <= addr);
        let e = self.entries.get(pos.checked_sub(1)?)?;
        (addr <= e.last).then_some(e)
    }
}

/// Collects regions and devices, then freezes them into a [`Bus`].
pub struct BusBuilder {
    mmio_table: DispatchTable<MmioDyn>,
    pio_table: DispatchTable<PioDyn>,
    mmio: ResourceTree,
    pio: ResourceTree,
}

impl Default for BusBuilder {
    fn default() -> Self {
        BusBuilder {
            mmio_table: DispatchTable::default(),
            pio_table: DispatchTable::default(),
            mmio: ResourceTree::new(AddressSpace::Mmio),
            pio: ResourceTree::new(AddressSpace::Pio),
        }
    }
}

impl BusBuilder {
    /// An empty bus.
    pub fn new() -> BusBuilder {
        BusBuilder::default()
    }

    /// The tree of `space`, for reading while building.
    pub fn tree(&self, space: AddressSpace) -> &ResourceTree {
        match space {
            AddressSpace::Mmio => &self.mmio,
            AddressSpace::Pio => &self.pio,
        }
    }

    fn tree_mut(&mut self, space: AddressSpace) -> &mut ResourceTree {
        match space {
            AddressSpace::Mmio => &mut self.mmio,
            AddressSpace::Pio => &mut self.pio,
        }
    }

    /// Adds a region that no device answers: a bus window (`Container`) or a named part of a
    /// device region (`Window`).
    pub fn add_region(
        &mut self,
        space: AddressSpace,
        parent: Option<RegionId>,
        name: &str,
        start: u64,
        size: u64,
        kind: RegionKind,
    ) -> Result<RegionId> {
        debug_assert!(kind != RegionKind::Device, "devices go through add_*_device");
        self.tree_mut(space).insert(parent, name, start, size, kind)
    }

    /// Adds `device` answering MMIO accesses to `size` bytes from `start`.
    pub fn add_mmio_device(
        &mut self,
        parent: Option<RegionId>,
        name: &str,
        start: u64,
        size: u64,
        device: MmioDevice,
    ) -> Result<RegionId> {
        let id = self.mmio.insert(parent, name, start, size, RegionKind::Device)?;
        // The tree has already refused overlaps, zero sizes and wrapping, so vm-device
        // cannot refuse this range; map its error anyway rather than trust that.
        let range = MmioRange::new(MmioAddress(start), size).map_err(|e| self.refused(AddressSpace::Mmio, id, e))?;
        self.mmio_table.push(range.base().0, range.last().0, device);
        Ok(id)
    }

    /// Adds `device` answering I/O-port accesses to `size` ports from `start`.
    pub fn add_pio_device(
        &mut self,
        parent: Option<RegionId>,
        name: &str,
        start: u16,
        size: u16,
        device: PioDevice,
    ) -> Result<RegionId> {
        let id = self
            .pio
            .insert(parent, name, start.into(), size.into(), RegionKind::Device)?;
        let range = PioRange::new(PioAddress(start), size).map_err(|e| self.refused(AddressSpace::Pio, id, e))?;
        self.pio_table
            .push(range.base().0.into(), range.last().0.into(), device);
        Ok(id)
    }

    fn refused(&self, space: AddressSpace, id: RegionId, why: vm_device::bus::Error) -> BusError {
        let tree = self.tree(space);
        BusError::DispatchRefused {
            space,
            name: tree.name(id).to_owned(),
            range: tree.range(id),
            reason: why.to_string(),
        }
    }

    /// Freezes the bus: sorts the dispatch tables and the trees' lookup tables (O(n log n)).
    pub fn build(mut self) -> Bus {
        self.mmio_table.seal();
        self.pio_table.seal();
        self.mmio.seal();
        self.pio.seal();
        Bus {
            mmio_table: self.mmio_table,
            pio_table: self.pio_table,
            mmio: self.mmio,
            pio: self.pio,
            unmapped: UnmappedCounters::default(),
        }
    }
}

#[derive(Default)]
struct UnmappedCounters {
    mmio_reads: AtomicU64,
    mmio_writes: AtomicU64,
    pio_reads: AtomicU64,
    pio_writes: AtomicU64,
}

/// How many accesses hit no device, since the bus was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnmappedCounts {
    /// MMIO reads.
    pub mmio_reads: u64,
    /// MMIO writes.
    pub mmio_writes: u64,
    /// I/O-port reads.
    pub pio_reads: u64,
    /// I/O-port writes.
    pub pio_writes: u64,
}

/// The frozen bus: resource trees plus the dispatch tables.
pub struct Bus {
    mmio_table: DispatchTable<MmioDyn>,
    pio_table: DispatchTable<PioDyn>,
    mmio: ResourceTree,
    pio: ResourceTree,
    unmapped: UnmappedCounters,
}

impl Bus {
    /// The tree of `space`.
    pub fn tree(&self, space: AddressSpace) -> &ResourceTree {
        match space {
            AddressSpace::Mmio => &self.mmio,
            AddressSpace::Pio => &self.pio,
        }
    }

    /// Counts of accesses that reached no device.
    pub fn unmapped_counts(&self) -> UnmappedCounts {
        let u = &self.unmapped;
        UnmappedCounts {
            mmio_reads: u.mmio_reads.load(Ordering::Relaxed),
            mmio_writes: u.mmio_writes.load(Ordering::Relaxed),
            pio_reads: u.pio_reads.load(Ordering::Relaxed),
            pio_writes: u.pio_writes.load(Ordering::Relaxed),
        }
    }

    #[inline]
    fn mmio_target<'b>(&'b self, last: &LastHit<'b>, addr: u64, len: usize) -> Option<Hit<'b, MmioDyn>> {
        last.mmio.find(addr, len, || {
            let e = self.mmio_table.find(addr)?;
            Some(Hit {
                base: e.base,
                last: e.last,
                dev: e.dev.as_ref(),
            })
        })
    }

    /// A guest MMIO read of `data.len()` bytes at `addr`.
    #[inline]
    pub fn mmio_read<'b>(&'b self, last: &LastHit<'b>, addr: u64, data: &mut [u8]) -> Routed {
        match self.mmio_target(last, addr, data.len()) {
            Some(hit) => {
                hit.dev.mmio_read(MmioAddress(hit.base), addr - hit.base, data);
                Routed::Device
            }
            None => {
                // A PC bus with nothing decoding the address floats high.
                data.fill(0xff);
                self.unmapped.mmio_reads.fetch_add(1, Ordering::Relaxed);
                crate::log_limited!(
                    log::Level::Debug,
                    "unmapped MMIO read at {addr:#x}, width {}",
                    data.len()
                );
                Routed::Unmapped
            }
        }
    }

    /// A guest MMIO write of `data` at `addr`.
    #[inline]
    pub fn mmio_write<'b>(&'b self, last: &LastHit<'b>, addr: u64, data: &[u8]) -> Routed {
        match self.mmio_target(last, addr, data.len()) {
            Some(hit) => {
                hit.dev.mmio_write(MmioAddress(hit.base), addr - hit.base, data);
                Routed::Device
            }
            None => {
                self.unmapped.mmio_writes.fetch_add(1, Ordering::Relaxed);
                crate::log_limited!(
                    log::Level::Debug,
                    "unmapped MMIO write at {addr:#x}, width {}",
                    data.len()
                );
                Routed::Unmapped
            }
        }
    }

    #[inline]
    fn pio_target<'b>(&'b self, last: &LastHit<'b>, port: u16, len: usize) -> Option<Hit<'b, PioDyn>> {
        last.pio.find(port.into(), len, || {
            let e = self.pio_table.find(port.into())?;
            Some(Hit {
                base: e.base,
                last: e.last,
                dev: e.dev.as_ref(),
            })
        })
    }

    /// A guest `in` of `data.len()` bytes from `port`.
    #[inline]
    pub fn pio_read<'b>(&'b self, last: &LastHit<'b>, port: u16, data: &mut [u8]) -> Routed {
        match self.pio_target(last, port, data.len()) {
            Some(hit) => {
                // The hit lies inside the 16-bit port space, so its base is a port.
                hit.dev
                    .pio_read(PioAddress(hit.base as u16), port - hit.base as u16, data);
                Routed::Device
            }
            None => {
                data.fill(0xff);
                self.unmapped.pio_reads.fetch_add(1, Ordering::Relaxed);
                crate::log_limited!(
                    log::Level::Debug,
                    "unmapped port read at {port:#x}, width {}",
                    data.len()
                );
                Routed::Unmapped
            }
        }
    }

    /// A guest `out` of `data` to `port`.
    #[inline]
    pub fn pio_write<'b>(&'b self, last: &LastHit<'b>, port: u16, data: &[u8]) -> Routed {
        match self.pio_target(last, port, data.len()) {
            Some(hit) => {
                hit.dev
                    .pio_write(PioAddress(hit.base as u16), port - hit.base as u16, data);
                Routed::Device
            }
            None => {
                self.unmapped.pio_writes.fetch_add(1, Ordering::Relaxed);
                crate::log_limited!(
                    log::Level::Debug,
                    "unmapped port write at {port:#x}, width {}",
                    data.len()
                );
                Routed::Unmapped
            }
        }
    }
}

type MmioDyn = dyn DeviceMmio + Send + Sync;
type PioDyn = dyn DevicePio + Send + Sync;

/// A device region found for an access: its first and last address and the device.
struct Hit<'b, D: ?Sized> {
    base: u64,
    last: u64,
    dev: &'b D,
}

impl<D: ?Sized> Clone for Hit<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D: ?Sized> Copy for Hit<'_, D> {}

/// The last device one address space dispatched to, and the last access that reached none.
struct HitCache<'b, D: ?Sized> {
    hit: Cell<Option<Hit<'b, D>>>,
    /// First and last address of the last unmapped access.
    miss: Cell<Option<(u64, u64)>>,
}

impl<D: ?Sized> Default for HitCache<'_, D> {
    fn default() -> Self {
        HitCache {
            hit: Cell::new(None),
            miss: Cell::new(None),
        }
    }
}

impl<'b, D: ?Sized> HitCache<'b, D> {
    /// The device whose region holds all `len` bytes from `addr`: the cached one if it does,
    /// else what `lookup` (the dispatch table) finds, which is then cached. An access that
    /// runs past the end of the region it starts in reaches no device. The same unmapped
    /// access twice in a row (an I/O-delay write to port 0x80, polling a register that is not
    /// there) is answered from the miss memory.
    #[inline]
    fn find(&self, addr: u64, len: usize, lookup: impl FnOnce() -> Option<Hit<'b, D>>) -> Option<Hit<'b, D>> {
        let end = addr.checked_add((len as u64).checked_sub(1)?)?;
        let fits = |h: &Hit<'b, D>| h.base <= addr && end <= h.last;
        if let Some(hit) = self.hit.get().filter(fits) {
            return Some(hit);
        }
        if self.miss.get() == Some((addr, end)) {
            return None;
        }
        match lookup().filter(fits) {
            Some(hit) => {
                self.hit.set(Some(hit));
                Some(hit)
            }
            None => {
                self.miss.set(Some((addr, end)));
                None
            }
        }
    }
}

/// One vCPU's memory of the devices it reached last, one per address space. Drivers touch
/// one device many times in a row; a hit costs two compares instead of the dispatch
/// table's binary search (docs/performance.md). The bus
/// never changes after it is built, so a cached entry never goes stale.
#[derive(Default)]
pub struct LastHit<'b> {
    mmio: HitCache<'b, MmioDyn>,
    pio: HitCache<'b, PioDyn>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use vm_device::bus::{MmioAddressOffset, PioAddressOffset};

    /// (region base, offset, width, data written).
    type Seen = (u64, u64, usize, Vec<u8>);

    /// Records every access it gets and answers reads with its offset's low byte.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<Seen>>,
    }

    impl DeviceMmio for Recorder {
        fn mmio_read(&self, base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
            data.fill(offset as u8);
            self.seen.lock().unwrap().push((base.0, offset, data.len(), vec![]));
        }
        fn mmio_write(&self, base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
            self.seen
                .lock()
                .unwrap()
                .push((base.0, offset, data.len(), data.to_vec()));
        }
    }

    impl DevicePio for Recorder {
        fn pio_read(&self, base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
            data.fill(offset as u8);
            self.seen
                .lock()
                .unwrap()
                .push((base.0.into(), offset.into(), data.len(), vec![]));
        }
        fn pio_write(&self, base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
            self.seen
                .lock()
                .unwrap()
                .push((base.0.into(), offset.into(), data.len(), data.to_vec()));
        }
    }

    fn bus_with(dev: &Arc<Recorder>) -> Bus {
        let mut b = BusBuilder::new();
        let plat = b
            .add_region(
                AddressSpace::Mmio,
                None,
                "platform",
                0xd000_0000,
                0x10_0000,
                RegionKind::Container,
            )
            .unwrap();
        b.add_mmio_device(Some(plat), "rec", 0xd000_1000, 0x100, dev.clone())
            .unwrap();
        b.add_pio_device(None, "recport", 0x378, 8, dev.clone()).unwrap();
        b.build()
    }

    #[test]
    fn mmio_reaches_device_with_offset_and_width() {
        let dev = Arc::new(Recorder::default());
        let bus = bus_with(&dev);
        let last = LastHit::default();
        let mut buf = [0u8; 8];
        assert_eq!(bus.mmio_read(&last, 0xd000_1010, &mut buf), Routed::Device);
        assert_eq!(buf, [0x10; 8]);
        assert_eq!(bus.mmio_write(&last, 0xd000_10ff, &[0xab]), Routed::Device);
        let seen = dev.seen.lock().unwrap();
        assert_eq!(seen[0], (0xd000_1000, 0x10, 8, vec![]));
        assert_eq!(seen[1], (0xd000_1000, 0xff, 1, vec![0xab]));
    }

    #[test]
    fn boundaries_and_straddling_accesses() {
        let dev = Arc::new(Recorder::default());
        let bus = bus_with(&dev);
        let last = LastHit::default();
        let mut four = [0u8; 4];
        // First and last byte of the device.
        assert_eq!(bus.mmio_read(&last, 0xd000_1000, &mut four[..1]), Routed::Device);
        assert_eq!(bus.mmio_read(&last, 0xd000_10fc, &mut four), Routed::Device);
        // Just outside on both sides, and an access running past the end.
        assert_eq!(bus.mmio_read(&last, 0xd000_0fff, &mut four[..1]), Routed::Unmapped);
        assert_eq!(bus.mmio_read(&last, 0xd000_1100, &mut four[..1]), Routed::Unmapped);
        assert_eq!(bus.mmio_read(&last, 0xd000_10fe, &mut four), Routed::Unmapped);
        assert_eq!(four, [0xff; 4]);
        // A container answers nothing.
        assert_eq!(bus.mmio_write(&last, 0xd000_2000, &[1]), Routed::Unmapped);
        assert_eq!(dev.seen.lock().unwrap().len(), 2);
        let c = bus.unmapped_counts();
        assert_eq!((c.mmio_reads, c.mmio_writes), (3, 1));
    }

    #[test]
    fn ports_reach_device_and_unmapped_ports_float_high() {
        let dev = Arc::new(Recorder::default());
        let bus = bus_with(&dev);
        let last = LastHit::default();
        let mut two = [0u8; 2];
        assert_eq!(bus.pio_read(&last, 0x37e, &mut two), Routed::Device);
        assert_eq!(two, [6, 6]);
        assert_eq!(bus.pio_write(&last, 0x37f, &[7]), Routed::Device);
        assert_eq!(bus.pio_read(&last, 0x37f, &mut two), Routed::Unmapped);
        assert_eq!(two, [0xff, 0xff]);
        assert_eq!(bus.pio_read(&last, 0xffff, &mut two), Routed::Unmapped);
        assert_eq!(bus.pio_write(&last, 0x80, &[1]), Routed::Unmapped);
        let c = bus.unmapped_counts();
        assert_eq!((c.pio_reads, c.pio_writes), (2, 1));
    }

    #[test]
    fn the_last_hit_cache_follows_the_access() {
        let a = Arc::new(Recorder::default());
        let b = Arc::new(Recorder::default());
        let mut builder = BusBuilder::new();
        builder.add_mmio_device(None, "a", 0x1000, 0x100, a.clone()).unwrap();
        builder.add_mmio_device(None, "b", 0x1100, 0x100, b.clone()).unwrap();
        let bus = builder.build();
        let last = LastHit::default();
        for addr in [0x1000, 0x10ff, 0x1100, 0x1000, 0x11fc] {
            bus.mmio_write(&last, addr, &[1, 2, 3, 4][..if addr == 0x10ff { 1 } else { 4 }]);
        }
        // A 4-byte access at 0x10fe starts in `a` (cached) but runs into `b`: no device.
        assert_eq!(bus.mmio_write(&last, 0x10fe, &[0; 4]), Routed::Unmapped);
        let offsets = |d: &Recorder| d.seen.lock().unwrap().iter().map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(offsets(&a), [0, 0xff, 0]);
        assert_eq!(offsets(&b), [0, 0xfc]);
        // Width 0 never reaches a device.
        assert_eq!(bus.mmio_write(&last, 0x1000, &[]), Routed::Unmapped);
        // A repeated miss is answered from the miss memory and still counted; a different
        // access after it still finds its device.
        for _ in 0..3 {
            assert_eq!(bus.mmio_write(&last, 0x2000, &[0]), Routed::Unmapped);
        }
        assert_eq!(bus.unmapped_counts().mmio_writes, 5);
        assert_eq!(bus.mmio_write(&last, 0x1100, &[0]), Routed::Device);
        assert_eq!(bus.mmio_write(&last, 0x2000, &[0]), Routed::Unmapped);
    }

    #[test]
    fn conflicting_device_is_refused_by_the_tree() {
        let dev = Arc::new(Recorder::default());
        let mut b = BusBuilder::new();
        b.add_mmio_device(None, "a", 0x1000, 0x100, dev.clone()).unwrap();
        let err = b.add_mmio_device(None, "b", 0x1080, 0x100, dev).err().unwrap();
        assert!(matches!(err, BusError::Overlap { .. }));
    }

    /// Devices added out of address order are each found at their first and last byte, and
    /// the gaps between them reach none (with a fresh cache per access, so every lookup goes
    /// through the table).
    #[test]
    fn the_table_finds_devices_added_in_any_order() {
        let devs: Vec<Arc<Recorder>> = (0..64).map(|_| Arc::new(Recorder::default())).collect();
        let mut b = BusBuilder::new();
        let order: Vec<u64> = (0..64).map(|i| (i * 37) % 64).collect();
        for &i in &order {
            b.add_mmio_device(
                None,
                &format!("d{i}"),
                0x10_0000 + i * 0x1000,
                0x100,
                devs[i as usize].clone(),
            )
            .unwrap();
            b.add_pio_device(
                None,
                &format!("p{i}"),
                0x1000 + i as u16 * 0x10,
                8,
                devs[i as usize].clone(),
            )
            .unwrap();
        }
        let bus = b.build();
        for i in 0..64u64 {
            let base = 0x10_0000 + i * 0x1000;
            for (addr, routed) in [
                (base, Routed::Device),
                (base + 0xff, Routed::Device),
                (base + 0x100, Routed::Unmapped),
            ] {
                assert_eq!(bus.mmio_write(&LastHit::default(), addr, &[1]), routed, "{addr:#x}");
            }
            let port = 0x1000 + i as u16 * 0x10;
            assert_eq!(bus.pio_write(&LastHit::default(), port + 7, &[2]), Routed::Device);
            assert_eq!(bus.pio_write(&LastHit::default(), port + 8, &[2]), Routed::Unmapped);
            let seen = devs[i as usize].seen.lock().unwrap();
            assert_eq!(
                seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
                [(base, 0), (base, 0xff), (port.into(), 7)]
            );
        }
    }
}
