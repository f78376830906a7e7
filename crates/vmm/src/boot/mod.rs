//! Loading what the VM runs and deciding how its boot vCPU starts.
//!
//! Two steps, so that a payload the machine cannot run is refused before any VM exists:
//! [`Payload::prepare`] opens the files and checks them against the machine (sizes, where
//! each byte would land, the entry point), [`Payload::load`] copies them into guest RAM
//! once it exists and writes the boot structures.

pub mod cpu;
pub mod elf;
mod firmware;
mod kernel;

use std::path::PathBuf;

use vm_memory::GuestMemoryMmap;

pub use cpu::{EntryMode, EntryRegs};
pub use firmware::Firmware;
pub use kernel::{BzImageError, Kernel, KernelImage, cmdline_error};

use crate::config::MachineConfig;
use crate::error::{Error, Result};

/// What a machine runs, read and checked, not yet in guest memory.
#[derive(Debug)]
pub enum Payload {
    /// A bare-metal program.
    Firmware(Firmware),
    /// A Linux kernel (bzImage or PVH ELF) with its initrd and command line.
    Kernel(Kernel),
}

impl Payload {
    /// Opens and checks the firmware or kernel (and initrd) `config` names.
    pub fn prepare(config: &MachineConfig) -> Result<Payload> {
        let m = &config.machine;
        let mem_bytes = config.memory_bytes();
        match (&m.firmware, &m.kernel) {
            (Some(fw), _) => Firmware::prepare(&config.resolve(fw), m.load_addr, mem_bytes).map(Payload::Firmware),
            (None, Some(kernel)) => {
                let initrd: Option<PathBuf> = m.initrd.as_ref().map(|p| config.resolve(p));
                let image = KernelImage {
                    kernel: &config.resolve(kernel),
                    initrd: initrd.as_deref(),
                    cmdline: m.cmdline.as_deref().unwrap_or(crate::machine::DEFAULT_CMDLINE),
                };
                Kernel::prepare(&image, mem_bytes).map(Payload::Kernel)
            }
            (None, None) => Err(Error::NoPayload),
        }
    }

    /// Copies the payload into `mem` (a machine of `mem_bytes`), with `dtb` for a kernel
    /// that takes one, and returns how to enter it.
    pub fn load(self, mem: &GuestMemoryMmap, mem_bytes: u64, dtb: Option<&[u8]>) -> Result<(EntryMode, EntryRegs)> {
        match self {
            Payload::Firmware(f) => f.load(mem, mem_bytes),
            Payload::Kernel(k) => k.load(mem, mem_bytes, dtb),
        }
    }
}
