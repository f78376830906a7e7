//! The bus of an mmiolab machine: one named resource tree per address space (MMIO and x86
//! I/O ports), rendered like the kernel's `/proc/iomem` and `/proc/ioports`, and a flat
//! dispatch table per space (sorted device ranges, binary search) that the vCPU threads share
//! read-only.
//!
//! The tree is the source of truth for what exists and where; the dispatch table is derived
//! from it once, when [`BusBuilder::build`] runs, so a trapped access never walks the tree.

#![deny(missing_docs)]

mod dispatch;
pub mod ratelimit;
mod tree;

pub use dispatch::{Bus, BusBuilder, LastHit, MmioDevice, PioDevice, Routed, UnmappedCounts};
pub use tree::{Range, RegionId, RegionKind, ResourceTree};

use std::fmt;

/// The two x86 address spaces a guest can reach devices through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressSpace {
    /// Memory-mapped I/O: physical addresses that no RAM backs.
    Mmio,
    /// x86 I/O ports (`in`/`out`), 0 to 0xffff.
    Pio,
}

impl AddressSpace {
    /// The highest address of this space.
    pub fn last_address(self) -> u64 {
        match self {
            AddressSpace::Mmio => u64::MAX,
            AddressSpace::Pio => u64::from(u16::MAX),
        }
    }
}

impl fmt::Display for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressSpace::Mmio => "MMIO",
            AddressSpace::Pio => "PIO",
        })
    }
}

/// Why a region could not be added to the bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// A region of size zero.
    #[error("{space} region `{name}` at {start:#x} has size 0")]
    ZeroSize {
        /// The address space.
        space: AddressSpace,
        /// The region's name.
        name: String,
        /// Its start address.
        start: u64,
    },
    /// A region whose end lies past the end of its address space.
    #[error(
        "{space} region `{name}` at {start:#x} of size {size:#x} runs past the end of the {space} space ({last:#x})"
    )]
    OutOfSpace {
        /// The address space.
        space: AddressSpace,
        /// The region's name.
        name: String,
        /// Its start address.
        start: u64,
        /// Its size.
        size: u64,
        /// The last address of the space.
        last: u64,
    },
    /// Two sibling regions share addresses.
    #[error("{space} region `{name}` {range} overlaps `{other}` {other_range}")]
    Overlap {
        /// The address space.
        space: AddressSpace,
        /// The region being added.
        name: String,
        /// Its range.
        range: Range,
        /// The region already there.
        other: String,
        /// That region's range.
        other_range: Range,
    },
    /// A region that does not fit inside the region it was put under.
    #[error("{space} region `{name}` {range} escapes its parent `{parent}` {parent_range}")]
    Escape {
        /// The address space.
        space: AddressSpace,
        /// The region being added.
        name: String,
        /// Its range.
        range: Range,
        /// The parent region.
        parent: String,
        /// The parent's range.
        parent_range: Range,
    },
    /// A device region placed inside another device's region: one access must reach exactly
    /// one device.
    #[error("{space} device `{name}` {range} is inside device `{outer}`; devices do not nest")]
    NestedDevice {
        /// The address space.
        space: AddressSpace,
        /// The device region being added.
        name: String,
        /// Its range.
        range: Range,
        /// The device region that contains it.
        outer: String,
    },
    /// The dispatch table refused a device region the tree accepted. The tree refuses
    /// overlaps and bad sizes first, so this means the two disagree: a bug, reported as such.
    #[error("{space} device `{name}` {range}: the dispatch table refused it: {reason}")]
    DispatchRefused {
        /// The address space.
        space: AddressSpace,
        /// The device region.
        name: String,
        /// Its range.
        range: Range,
        /// vm-device's reason.
        reason: String,
    },
    /// A parent id that does not belong to this tree.
    #[error("{space} region `{name}`: unknown parent region id {parent}")]
    UnknownParent {
        /// The address space.
        space: AddressSpace,
        /// The region being added.
        name: String,
        /// The id given.
        parent: usize,
    },
}

/// Result of bus construction.
pub type Result<T> = std::result::Result<T, BusError>;
