//! Bare-metal programs: an ELF64 or a flat binary, entered in 64-bit long mode.
//!
//! The entry contract (docs/firmware.md): identity paging over RAM and the 32-bit MMIO
//! gap (2 MiB pages), CS = 0x10 (64-bit code), DS/ES/SS/FS/GS = 0x18 (flat data), no IDT,
//! RFLAGS = 0x2 (interrupts off), RSP = 0x9f000. The image must load at or above 1 MiB.

use std::fs::File;
use std::path::Path;

use linux_loader::loader::{KernelLoader, elf::Elf};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{EntryMode, EntryRegs};
use crate::error::{Error, Result};
use crate::layout;

/// Loads firmware from `path` (flat at `load_addr` when given, else ELF64) and returns how
/// to enter it.
pub fn load_firmware(
    mem: &GuestMemoryMmap,
    mem_bytes: u64,
    path: &Path,
    load_addr: Option<u64>,
) -> Result<(EntryMode, EntryRegs)> {
    let load_err = |reason: String| Error::Load {
        path: path.to_owned(),
        reason,
    };
    let rip = match load_addr {
        Some(addr) => {
            let image = std::fs::read(path).map_err(|e| load_err(e.to_string()))?;
            if addr < layout::HIMEM_START {
                return Err(load_err(format!(
                    "load address {addr:#x} is below {:#x}, where the boot structures live",
                    layout::HIMEM_START
                )));
            }
            mem.write_slice(&image, GuestAddress(addr))
                .map_err(|_| load_err(format!("{} bytes at {addr:#x} do not fit in guest RAM", image.len())))?;
            addr
        }
        None => {
            let mut file = File::open(path).map_err(|e| load_err(e.to_string()))?;
            let loaded = Elf::load(mem, None, &mut file, Some(GuestAddress(layout::HIMEM_START)))
                .map_err(|e| load_err(format!("not a loadable ELF64 image at or above 1 MiB: {e}")))?;
            loaded.kernel_load.0
        }
    };
    Ok((
        EntryMode::Long64 {
            mapped_top: layout::mapped_top(mem_bytes),
        },
        EntryRegs {
            rip,
            rsp: layout::FIRMWARE_STACK_TOP,
            ..Default::default()
        },
    ))
}
