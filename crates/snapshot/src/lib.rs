//! The snapshot format of mmiolab (docs/snapshot.md): a directory holding
//!
//! - `manifest.json`: the format's name and version, the machine the snapshot was taken on
//!   (vCPUs, RAM, its devices), the layout of the memory file, and the state file's size
//!   and CRC-32. Written last, so a directory without one is not a snapshot;
//! - `state.json`: the VM's state: the machine's clock and trace sequence number, KVM's
//!   VM-wide state (in-kernel PIC, IOAPIC, PIT, kvmclock), each vCPU's registers as KVM
//!   exposes them, and each device model's state ([`mmiolab_devices::SavedState`]);
//! - `memory.bin`: guest RAM and the memslot-backed windows of described devices, raw, at
//!   the page-aligned offsets the manifest gives; all-zero pages are holes (a sparse file).
//!   A restore maps it copy-on-write (`MAP_PRIVATE`): the guest's writes never reach it.
//!
//! This crate knows the format only: reading refuses anything that does not fit it with an
//! error that says what, and never panics; the VMM (crates/vmm/src/snapshot.rs) fills and
//! applies the state.

#![deny(missing_docs)]
// Tests may index: a panic there is a test failure, not a crash on a user's file.
#![cfg_attr(test, allow(clippy::indexing_slicing))]

mod machine;
mod read;
mod write;

pub use machine::{DeviceSummary, MachineSummary};
pub use read::{Snapshot, parse_manifest, parse_state, read};
pub use write::{MemoryPiece, prepare_dir, write};

use mmiolab_devices::SavedState;
use serde::{Deserialize, Serialize};

/// The format's name, the manifest's `format`.
pub const FORMAT: &str = "mmiolab-snapshot";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The state's file name.
pub const STATE: &str = "state.json";
/// The memory file's name.
pub const MEMORY: &str = "memory.bin";
/// Offsets in the memory file are multiples of this (the host's page size).
pub const PAGE: u64 = 4096;

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version ([`VERSION`]).
    pub version: u32,
    /// The mmiolab version that wrote it (informational).
    pub mmiolab: String,
    /// The machine the snapshot was taken on; a restore refuses another.
    pub machine: MachineSummary,
    /// The memory file.
    pub memory: MemoryLayout,
    /// The state file: its size and CRC-32 (IEEE), checked before it is parsed.
    pub state: FileCheck,
}

/// Where each piece of guest memory is in the memory file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryLayout {
    /// The file's size in bytes.
    pub bytes: u64,
    /// The pieces, in the order the VMM maps them.
    pub regions: Vec<MemoryRegion>,
}

/// One piece of guest memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryRegion {
    /// `ram`, or `device.window` for a described device's memslot window.
    pub name: String,
    /// Guest-physical address.
    pub guest_addr: u64,
    /// Size in bytes (whole pages).
    pub size: u64,
    /// Offset in the memory file (page-aligned).
    pub offset: u64,
}

/// A file's size and CRC-32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheck {
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE 802.3, as zlib computes it).
    pub crc32: u32,
}

/// `state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The machine's clock (ns) when the VM stopped: the restored clock goes on from here,
    /// so a waiting effect's time left is its `due_ns` minus this.
    pub clock_ns: u64,
    /// The trace's next sequence number, if the run was traced: a traced restore starts
    /// there.
    pub trace_seq: Option<u64>,
    /// KVM's VM-wide state.
    pub vm: VmState,
    /// Each vCPU's state, vCPU 0 first.
    pub vcpus: Vec<VcpuState>,
    /// Each device model's state, by device name.
    pub devices: Vec<DeviceEntry>,
}

/// A KVM structure, as the raw bytes of its C layout in hex (`kvm_regs`, ...). The VMM
/// checks the length against the structure before using it.
pub type Blob = String;

/// KVM's VM-wide state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    /// `kvm_irqchip` of the master PIC (KVM_GET_IRQCHIP, chip 0).
    pub pic_master: Blob,
    /// `kvm_irqchip` of the slave PIC (chip 1).
    pub pic_slave: Blob,
    /// `kvm_irqchip` of the IOAPIC (chip 2).
    pub ioapic: Blob,
    /// `kvm_pit_state2` (KVM_GET_PIT2).
    pub pit: Blob,
    /// `kvm_clock_data` (KVM_GET_CLOCK): the guest's kvmclock.
    pub clock: Blob,
    /// The vCPUs' TSC frequency in kHz (KVM_GET_TSC_KHZ), when KVM reports it.
    pub tsc_khz: Option<u32>,
}

/// One vCPU's state, each part as KVM's GET ioctl returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuState {
    /// `kvm_mp_state`.
    pub mp_state: Blob,
    /// `kvm_regs`.
    pub regs: Blob,
    /// `kvm_sregs`.
    pub sregs: Blob,
    /// `kvm_xsave` (KVM_CAP_XSAVE), else absent.
    pub xsave: Option<Blob>,
    /// `kvm_fpu`, when there is no XSAVE state.
    pub fpu: Option<Blob>,
    /// `kvm_xcrs` (KVM_CAP_XCRS), else absent.
    pub xcrs: Option<Blob>,
    /// `kvm_debugregs` (KVM_CAP_DEBUGREGS), else absent.
    pub debugregs: Option<Blob>,
    /// `kvm_lapic_state`.
    pub lapic: Blob,
    /// Every MSR of KVM_GET_MSR_INDEX_LIST that KVM_GET_MSRS could read: (index, value).
    pub msrs: Vec<(u32, u64)>,
    /// `kvm_vcpu_events`.
    pub events: Blob,
}

/// A device's state in a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// The device's name in the machine file, or a built-in device's name (`serial`).
    pub name: String,
    /// Its state.
    pub saved: SavedState,
}

impl Eq for DeviceEntry {}

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file of the snapshot could not be read.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file of a snapshot being written could not be created, written or renamed.
    #[error("writing the snapshot: {path}: {source}")]
    Write {
        /// Which.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The directory holds no snapshot.
    #[error("{dir} is not a snapshot: {why}")]
    NotASnapshot {
        /// The directory.
        dir: String,
        /// Why not.
        why: String,
    },
    /// The snapshot's format version is not this build's.
    #[error(
        "{dir}: snapshot format version {found}, but this mmiolab reads version {VERSION}: take the snapshot again"
    )]
    Version {
        /// The directory.
        dir: String,
        /// The version found.
        found: u32,
    },
    /// A file of the snapshot is damaged or does not fit the format.
    #[error("{file}: {why}")]
    Corrupt {
        /// The file.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// The directory to write into is in use for something else.
    #[error("{dir}: {why}")]
    Refused {
        /// The directory.
        dir: String,
        /// Why.
        why: String,
    },
}

impl SnapshotError {
    /// The snapshot could not be written (an output failed), rather than read.
    pub fn is_write(&self) -> bool {
        matches!(self, SnapshotError::Write { .. })
    }

    fn write_io(path: &std::path::Path, source: std::io::Error) -> SnapshotError {
        SnapshotError::Write {
            path: path.display().to_string(),
            source,
        }
    }

    fn io(path: &std::path::Path, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn corrupt(file: &std::path::Path, why: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt {
            file: file.display().to_string(),
            why: why.into(),
        }
    }
}
