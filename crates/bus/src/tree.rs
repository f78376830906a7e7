//! A named, nesting resource tree like the kernel's `struct resource` tree.
//!
//! Siblings are kept in a `BTreeMap` by first address, so adding a region checks overlaps
//! against its two neighbours only (O(log n)) whatever the order regions come in. Once the
//! bus is frozen ([`ResourceTree::seal`]), the tree is also flattened into a sorted table of
//! segments, each naming the deepest region that holds it, so [`ResourceTree::deepest_at`]
//! is one binary search.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::{AddressSpace, BusError, Result};

/// An inclusive address range `start..=end`, never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    start: u64,
    end: u64,
}

impl Range {
    /// The range of `size` bytes from `start`, if `size > 0` and it does not wrap.
    pub fn new(start: u64, size: u64) -> Option<Range> {
        let end = start.checked_add(size.checked_sub(1)?)?;
        Some(Range { start, end })
    }

    /// First address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Last address (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr <= self.end
    }

    /// Whether `other` lies wholly inside.
    pub fn encloses(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}-{:#x}]", self.start, self.end)
    }
}

/// Handle of a region inside one [`ResourceTree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionId(usize);

impl RegionId {
    /// The index inside its tree, for messages.
    pub fn index(&self) -> usize {
        self.0
    }
}

/// What a region stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A container (a bus or bridge window): holds other regions, answers no access itself.
    Container,
    /// A device's register region: accesses inside it are dispatched to that device.
    Device,
    /// A named sub-window of a device region (its registers, a FIFO window ...): metadata that
    /// shows up in the rendering; accesses still go to the enclosing device.
    Window,
}

#[derive(Debug)]
struct Region {
    name: String,
    range: Range,
    kind: RegionKind,
    parent: Option<RegionId>,
    /// By start address; siblings never overlap.
    children: Siblings,
}

/// Regions side by side, by start address.
type Siblings = BTreeMap<u64, RegionId>;

/// One address space's tree of named regions: siblings never overlap and every child lies
/// inside its parent, as in the kernel's resource tree.
#[derive(Debug)]
pub struct ResourceTree {
    space: AddressSpace,
    regions: Vec<Region>,
    roots: Siblings,
    /// After [`ResourceTree::seal`] (and until the next insert): the address space cut
    /// into segments, by first address, each with the deepest region holding it (`None`
    /// between top-level regions).
    flat: Option<Vec<(u64, Option<RegionId>)>>,
}

impl ResourceTree {
    /// An empty tree for `space`.
    pub fn new(space: AddressSpace) -> ResourceTree {
        ResourceTree {
            space,
            regions: Vec::new(),
            roots: Siblings::new(),
            flat: None,
        }
    }

    /// Flattens the tree into its lookup table (O(n)): [`ResourceTree::deepest_at`] is then
    /// one binary search. Inserting afterwards drops the table (lookups walk the tree again)
    /// until the next `seal`.
    pub fn seal(&mut self) {
        let mut flat = Vec::with_capacity(2 * self.regions.len() + 1);
        self.flatten(&self.roots, None, 0, &mut flat);
        // Past the end of a space smaller than 64 bits lies nothing.
        if let Some(past) = self.space.last_address().checked_add(1) {
            flat.push((past, None));
        }
        self.flat = Some(flat);
    }

    /// Appends the segments of `level` (the children of `parent`, which starts at `from`
    /// or, at the top, at 0): each child's own segments, and the gaps between them, which
    /// belong to `parent`.
    fn flatten(&self, level: &Siblings, parent: Option<RegionId>, from: u64, flat: &mut Vec<(u64, Option<RegionId>)>) {
        // A segment starting where the last one did replaces it (a child at its parent's start).
        let push = |flat: &mut Vec<(u64, Option<RegionId>)>, start: u64, id: Option<RegionId>| match flat.last_mut() {
            Some(last) if last.0 == start => last.1 = id,
            _ => flat.push((start, id)),
        };
        let mut next = Some(from);
        for &id in level.values() {
            let r = &self.regions[id.0];
            if let Some(gap) = next.filter(|&n| n < r.range.start) {
                push(flat, gap, parent);
            }
            push(flat, r.range.start, Some(id));
            self.flatten(&r.children, Some(id), r.range.start, flat);
            // A region ending at the space's last address leaves nothing after it.
            next = r.range.end.checked_add(1);
        }
        let end = parent.map_or(self.space.last_address(), |p| self.regions[p.0].range.end);
        if let Some(rest) = next.filter(|&n| n <= end) {
            push(flat, rest, parent);
        }
    }

    /// Adds region `name` of `size` addresses from `start` under `parent` (or at the top).
    pub fn insert(
        &mut self,
        parent: Option<RegionId>,
        name: &str,
        start: u64,
        size: u64,
        kind: RegionKind,
    ) -> Result<RegionId> {
        let space = self.space;
        let range = self.checked_range(name, start, size)?;
        if let Some(p) = parent {
            let parent_region = self.regions.get(p.0).ok_or_else(|| BusError::UnknownParent {
                space,
                name: name.to_owned(),
                parent: p.0,
            })?;
            if !parent_region.range.encloses(&range) {
                return Err(BusError::Escape {
                    space,
                    name: name.to_owned(),
                    range,
                    parent: parent_region.name.clone(),
                    parent_range: parent_region.range,
                });
            }
            if kind == RegionKind::Device
                && let Some(outer) = self.enclosing_device(p)
            {
                return Err(BusError::NestedDevice {
                    space,
                    name: name.to_owned(),
                    range,
                    outer: self.regions[outer.0].name.clone(),
                });
            }
        }
        let siblings = match parent {
            Some(p) => &self.regions[p.0].children,
            None => &self.roots,
        };
        // Siblings are disjoint, so only the neighbours around the new start can overlap it.
        let before = siblings.range(..=range.start).next_back();
        let after = siblings.range(range.start..).next();
        for (_, id) in before.into_iter().chain(after) {
            let other = &self.regions[id.0];
            if other.range.overlaps(&range) {
                return Err(BusError::Overlap {
                    space,
                    name: name.to_owned(),
                    range,
                    other: other.name.clone(),
                    other_range: other.range,
                });
            }
        }
        let id = RegionId(self.regions.len());
        self.regions.push(Region {
            name: name.to_owned(),
            range,
            kind,
            parent,
            children: Siblings::new(),
        });
        match parent {
            Some(p) => self.regions[p.0].children.insert(range.start, id),
            None => self.roots.insert(range.start, id),
        };
        self.flat = None;
        Ok(id)
    }

    fn checked_range(&self, name: &str, start: u64, size: u64) -> Result<Range> {
        let space = self.space;
        if size == 0 {
            return Err(BusError::ZeroSize {
                space,
                name: name.to_owned(),
                start,
            });
        }
        Range::new(start, size)
            .filter(|r| r.end <= space.last_address())
            .ok_or_else(|| BusError::OutOfSpace {
                space,
                name: name.to_owned(),
                start,
                size,
                last: space.last_address(),
            })
    }

    /// The device region at or above `id`, if any.
    fn enclosing_device(&self, id: RegionId) -> Option<RegionId> {
        let mut cur = Some(id);
        while let Some(c) = cur {
            let region = &self.regions[c.0];
            if region.kind == RegionKind::Device {
                return Some(c);
            }
            cur = region.parent;
        }
        None
    }

    /// The region's name.
    pub fn name(&self, id: RegionId) -> &str {
        &self.regions[id.0].name
    }

    /// The region's range.
    pub fn range(&self, id: RegionId) -> Range {
        self.regions[id.0].range
    }

    /// The region's kind.
    pub fn kind(&self, id: RegionId) -> RegionKind {
        self.regions[id.0].kind
    }

    /// The deepest region containing `addr`: one binary search once sealed, else
    /// O(depth × log siblings).
    pub fn deepest_at(&self, addr: u64) -> Option<RegionId> {
        if let Some(flat) = &self.flat {
            let pos = flat.partition_point(|&(start, _)| start <= addr);
            return flat.get(pos.checked_sub(1)?)?.1;
        }
        self.deepest_walk(addr)
    }

    /// [`ResourceTree::deepest_at`] by walking down the tree.
    fn deepest_walk(&self, addr: u64) -> Option<RegionId> {
        let mut level = &self.roots;
        let mut found = None;
        loop {
            match level.range(..=addr).next_back() {
                Some((_, &id)) if self.regions[id.0].range.contains(addr) => {
                    found = Some(id);
                    level = &self.regions[id.0].children;
                }
                _ => return found,
            }
        }
    }

    /// The device region containing `addr`, if any.
    pub fn device_at(&self, addr: u64) -> Option<RegionId> {
        self.deepest_at(addr).and_then(|id| self.enclosing_device(id))
    }

    /// Every region, depth first in address order, with its depth (0 for top-level regions).
    pub fn walk(&self) -> Vec<(usize, RegionId)> {
        let mut out = Vec::with_capacity(self.regions.len());
        let mut stack: Vec<(usize, RegionId)> = self.roots.values().rev().map(|&id| (0, id)).collect();
        while let Some((depth, id)) = stack.pop() {
            out.push((depth, id));
            stack.extend(self.regions[id.0].children.values().rev().map(|&c| (depth + 1, c)));
        }
        out
    }

    /// The tree in the format of `/proc/iomem` (MMIO) or `/proc/ioports` (PIO): one line per
    /// region, `start-end : name`, two spaces of indent per level, addresses zero-padded to
    /// 8 hex digits (4 for I/O ports) and wider when they need it, as the kernel's `r_show`.
    pub fn render(&self) -> String {
        let width = if self.space.last_address() < 0x1_0000 { 4 } else { 8 };
        let mut out = String::new();
        for (depth, id) in self.walk() {
            let r = &self.regions[id.0];
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{:indent$}{:0width$x}-{:0width$x} : {}",
                "",
                r.range.start,
                r.range.end,
                r.name,
                indent = depth * 2,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mmio() -> ResourceTree {
        ResourceTree::new(AddressSpace::Mmio)
    }

    #[test]
    fn range_rejects_zero_and_wrap() {
        assert_eq!(Range::new(0x1000, 0), None);
        assert_eq!(Range::new(u64::MAX, 2), None);
        let whole = Range::new(0, u64::MAX).unwrap();
        assert_eq!(whole.end(), u64::MAX - 1);
        let r = Range::new(u64::MAX, 1).unwrap();
        assert_eq!((r.start(), r.end()), (u64::MAX, u64::MAX));
    }

    #[test]
    fn nested_regions_render_like_proc_iomem() {
        let mut t = mmio();
        let bus = t
            .insert(None, "platform", 0xd000_0000, 0x1000_0000, RegionKind::Container)
            .unwrap();
        let dev = t
            .insert(Some(bus), "testdev@d0001000", 0xd000_1000, 0x1000, RegionKind::Device)
            .unwrap();
        t.insert(Some(dev), "regs", 0xd000_1000, 0x100, RegionKind::Window)
            .unwrap();
        t.insert(Some(bus), "regfile@d0000000", 0xd000_0000, 0x1000, RegionKind::Device)
            .unwrap();
        t.insert(None, "System RAM", 0x10_0000, 0x100_0000, RegionKind::Container)
            .unwrap();
        t.insert(None, "high", 0x1_0000_0000_0000, 0x1000, RegionKind::Device)
            .unwrap();
        assert_eq!(
            t.render(),
            "00100000-010fffff : System RAM\n\
             d0000000-dfffffff : platform\n\
             \x20 d0000000-d0000fff : regfile@d0000000\n\
             \x20 d0001000-d0001fff : testdev@d0001000\n\
             \x20   d0001000-d00010ff : regs\n\
             1000000000000-1000000000fff : high\n"
        );
    }

    #[test]
    fn ioports_render_with_four_digits() {
        let mut t = ResourceTree::new(AddressSpace::Pio);
        t.insert(None, "serial", 0x3f8, 8, RegionKind::Device).unwrap();
        t.insert(None, "pic1", 0x20, 2, RegionKind::Device).unwrap();
        assert_eq!(t.render(), "0020-0021 : pic1\n03f8-03ff : serial\n");
    }

    #[test]
    fn sibling_overlap_names_both_regions() {
        let mut t = mmio();
        t.insert(None, "a", 0x1000, 0x1000, RegionKind::Device).unwrap();
        let err = t.insert(None, "b", 0x1fff, 0x10, RegionKind::Device).unwrap_err();
        assert_eq!(
            err.to_string(),
            "MMIO region `b` [0x1fff-0x200e] overlaps `a` [0x1000-0x1fff]"
        );
        // Overlap with the right-hand neighbour too.
        let err = t.insert(None, "c", 0x0, 0x1001, RegionKind::Device).unwrap_err();
        assert!(matches!(err, BusError::Overlap { ref other, .. } if other == "a"));
        // Touching is fine on both sides.
        t.insert(None, "d", 0x0, 0x1000, RegionKind::Device).unwrap();
        t.insert(None, "e", 0x2000, 0x1000, RegionKind::Device).unwrap();
    }

    #[test]
    fn escape_from_parent_is_refused() {
        let mut t = mmio();
        let p = t.insert(None, "bus", 0x1000, 0x1000, RegionKind::Container).unwrap();
        let err = t
            .insert(Some(p), "dev", 0x1800, 0x1000, RegionKind::Device)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "MMIO region `dev` [0x1800-0x27ff] escapes its parent `bus` [0x1000-0x1fff]"
        );
        let err = t.insert(Some(p), "low", 0xfff, 2, RegionKind::Device).unwrap_err();
        assert!(matches!(err, BusError::Escape { .. }));
    }

    #[test]
    fn devices_do_not_nest() {
        let mut t = mmio();
        let d = t.insert(None, "outer", 0x1000, 0x1000, RegionKind::Device).unwrap();
        let w = t.insert(Some(d), "win", 0x1000, 0x100, RegionKind::Window).unwrap();
        let err = t
            .insert(Some(w), "inner", 0x1000, 0x10, RegionKind::Device)
            .unwrap_err();
        assert!(matches!(err, BusError::NestedDevice { ref outer, .. } if outer == "outer"));
    }

    #[test]
    fn zero_size_and_out_of_space_are_refused() {
        let mut t = ResourceTree::new(AddressSpace::Pio);
        assert!(matches!(
            t.insert(None, "z", 0x10, 0, RegionKind::Device),
            Err(BusError::ZeroSize { .. })
        ));
        let err = t.insert(None, "big", 0xfff8, 9, RegionKind::Device).unwrap_err();
        assert!(matches!(err, BusError::OutOfSpace { last: 0xffff, .. }));
        t.insert(None, "top", 0xfff8, 8, RegionKind::Device).unwrap();
        let mut m = mmio();
        assert!(matches!(
            m.insert(None, "wrap", u64::MAX, 2, RegionKind::Device),
            Err(BusError::OutOfSpace { .. })
        ));
    }

    #[test]
    fn lookup_at_every_boundary() {
        for sealed in [false, true] {
            lookup_at_every_boundary_in(sealed);
        }
    }

    fn lookup_at_every_boundary_in(sealed: bool) {
        let mut t = mmio();
        let bus = t.insert(None, "bus", 0x1000, 0x3000, RegionKind::Container).unwrap();
        let a = t.insert(Some(bus), "a", 0x1000, 0x1000, RegionKind::Device).unwrap();
        let b = t.insert(Some(bus), "b", 0x3000, 0x1000, RegionKind::Device).unwrap();
        let w = t.insert(Some(b), "w", 0x3800, 0x10, RegionKind::Window).unwrap();
        if sealed {
            t.seal();
        }
        assert_eq!(t.deepest_at(0xfff), None);
        assert_eq!(t.deepest_at(0x1000), Some(a));
        assert_eq!(t.deepest_at(0x1fff), Some(a));
        assert_eq!(t.deepest_at(0x2000), Some(bus));
        assert_eq!(t.device_at(0x2000), None);
        assert_eq!(t.deepest_at(0x2fff), Some(bus));
        assert_eq!(t.deepest_at(0x3000), Some(b));
        assert_eq!(t.deepest_at(0x37ff), Some(b));
        assert_eq!(t.deepest_at(0x3800), Some(w));
        assert_eq!(t.device_at(0x380f), Some(b));
        assert_eq!(t.deepest_at(0x3810), Some(b));
        assert_eq!(t.deepest_at(0x3fff), Some(b));
        assert_eq!(t.deepest_at(0x4000), None);
        assert_eq!(t.name(b), "b");
        assert_eq!(t.kind(w), RegionKind::Window);
    }

    #[test]
    fn unknown_parent_is_an_error() {
        let mut other = mmio();
        let foreign = other.insert(None, "x", 0, 1, RegionKind::Container).unwrap();
        let mut t = mmio();
        assert!(matches!(
            t.insert(Some(foreign), "y", 0, 1, RegionKind::Device),
            Err(BusError::UnknownParent { .. })
        ));
    }

    /// A small deterministic generator for the randomised tests.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % below
        }
    }

    /// Random trees (containers, devices, windows, some touching, some at the ends of the
    /// space): the sealed table answers every address as walking the tree does, and the
    /// rendering does not depend on the order the regions came in.
    #[test]
    fn sealed_lookups_match_the_tree_walk() {
        for seed in 0..200 {
            let mut rng = Lcg(seed);
            let mut t = ResourceTree::new(if seed % 2 == 0 {
                AddressSpace::Pio
            } else {
                AddressSpace::Mmio
            });
            let last = t.space.last_address();
            let mut ids = Vec::new();
            for i in 0..40 {
                let parent = if ids.is_empty() || rng.next(3) == 0 {
                    None
                } else {
                    Some(ids[rng.next(ids.len() as u64) as usize])
                };
                let (lo, hi) = parent.map_or((0, last), |p: RegionId| (t.range(p).start(), t.range(p).end()));
                let start = match rng.next(4) {
                    0 => lo,
                    1 => hi.saturating_sub(rng.next(16)),
                    _ => lo + rng.next((hi - lo).min(0x1_0000) + 1),
                };
                let size = 1 + rng.next((hi - start).min(0x800) + 1);
                let kind = [RegionKind::Container, RegionKind::Device, RegionKind::Window][rng.next(3) as usize];
                if let Ok(id) = t.insert(
                    parent,
                    &format!("r{i}"),
                    start,
                    size.min((hi - start).saturating_add(1)),
                    kind,
                ) {
                    ids.push(id);
                }
            }
            let mut probes: Vec<u64> = vec![0, last];
            for &id in &ids {
                let r = t.range(id);
                probes.extend([r.start(), r.end()]);
                probes.extend(r.start().checked_sub(1));
                probes.extend(r.end().checked_add(1));
            }
            let walked: Vec<_> = probes.iter().map(|&a| t.deepest_at(a)).collect();
            t.seal();
            let flat = t.flat.clone().unwrap();
            assert!(flat.windows(2).all(|w| w[0].0 < w[1].0), "seed {seed}: {flat:?}");
            let sealed: Vec<_> = probes.iter().map(|&a| t.deepest_at(a)).collect();
            assert_eq!(walked, sealed, "seed {seed}");
        }
    }

    /// Siblings inserted in any order give the same tree, and the neighbour check still
    /// refuses every overlap.
    #[test]
    fn insertion_order_does_not_matter() {
        let n = 1000u64;
        let mut order: Vec<u64> = (0..n).collect();
        let mut rng = Lcg(7);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next(i as u64 + 1) as usize);
        }
        let build = |order: &[u64]| {
            let mut t = mmio();
            for &i in order {
                t.insert(None, &format!("d{i}"), 0x1000 * i, 0x800, RegionKind::Device)
                    .unwrap();
            }
            t
        };
        let sorted: Vec<u64> = (0..n).collect();
        let (a, mut b) = (build(&sorted), build(&order));
        assert_eq!(a.render(), b.render());
        for i in 0..n {
            let err = b
                .insert(None, "x", 0x1000 * i + 0x7ff, 2, RegionKind::Device)
                .unwrap_err();
            assert!(matches!(err, BusError::Overlap { ref other, .. } if *other == format!("d{i}")));
            b.insert(None, &format!("gap{i}"), 0x1000 * i + 0x800, 0x800, RegionKind::Device)
                .unwrap();
        }
    }
}
