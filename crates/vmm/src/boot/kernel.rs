//! Booting a kernel: a bzImage through the Linux 64-bit boot protocol (zero page, e820,
//! command line, initrd, the DTB as a SETUP_DTB setup_data entry), or an ELF with a PVH
//! note (32-bit entry, `hvm_start_info` in EBX), as QEMU's `-kernel` and Firecracker do.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::{EntryMode, EntryRegs};
use crate::error::{Error, Result};
use crate::layout;

/// What to boot.
pub struct KernelImage<'a> {
    /// bzImage or PVH ELF.
    pub kernel: &'a Path,
    /// Initramfs, if any.
    pub initrd: Option<&'a Path>,
    /// Command line.
    pub cmdline: &'a str,
    /// Device tree blob handed to a bzImage kernel (PVH has no place for it).
    pub dtb: Option<&'a [u8]>,
}

const E820_RAM: u32 = 1;
const SETUP_DTB: u32 = 2;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// The 64-bit entry point sits this far into the protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// Loads `image` into `mem` and returns how to enter it.
pub fn load_kernel(mem: &GuestMemoryMmap, mem_bytes: u64, image: &KernelImage<'_>) -> Result<(EntryMode, EntryRegs)> {
    let path = image.kernel;
    let load_err = |reason: String| Error::Load {
        path: path.to_owned(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| load_err(e.to_string()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|e| load_err(format!("cannot read its header: {e}")))?;
    write_cmdline(mem, image.cmdline)?;
    if &magic == b"\x7fELF" {
        return load_pvh(mem, mem_bytes, image, &mut file);
    }
    let loaded = BzImage::load(mem, None, &mut file, Some(GuestAddress(layout::HIMEM_START)))
        .map_err(|e| load_err(format!("neither a PVH ELF nor a loadable bzImage: {e}")))?;
    let hdr = loaded
        .setup_header
        .ok_or_else(|| load_err("bzImage without a setup header".to_owned()))?;
    let mut params = boot_params {
        hdr,
        ..Default::default()
    };
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    params.hdr.cmdline_size = image.cmdline.len() as u32 + 1;
    if let Some(initrd) = image.initrd {
        let max = u64::from(hdr.initrd_addr_max).min(mem_bytes.min(layout::MMIO_GAP_START) - 1);
        let (start, size) = load_initrd(mem, initrd, max, loaded.kernel_end)?;
        params.hdr.ramdisk_image = start as u32;
        params.hdr.ramdisk_size = size as u32;
    }
    if let Some(dtb) = image.dtb {
        params.hdr.setup_data = write_setup_dtb(mem, dtb)?;
    }
    let ram = layout::ram_regions(mem_bytes);
    if ram.len() > params.e820_table.len() {
        return Err(Error::BootSetup("too many RAM regions for the e820 table".to_owned()));
    }
    for (slot, (start, size)) in params.e820_table.iter_mut().zip(&ram) {
        *slot = boot_e820_entry {
            addr: start.0,
            size: *size,
            r#type: E820_RAM,
        };
    }
    params.e820_entries = ram.len() as u8;
    LinuxBootConfigurator::write_bootparams(&BootParams::new(&params, GuestAddress(layout::ZERO_PAGE_START)), mem)
        .map_err(|e| Error::BootSetup(format!("zero page: {e}")))?;
    Ok((
        EntryMode::Long64 {
            mapped_top: layout::mapped_top(mem_bytes),
        },
        EntryRegs {
            rip: loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET,
            rsp: layout::BOOT_STACK_POINTER,
            rsi: layout::ZERO_PAGE_START,
            rbx: 0,
        },
    ))
}

fn load_pvh(
    mem: &GuestMemoryMmap,
    mem_bytes: u64,
    image: &KernelImage<'_>,
    file: &mut File,
) -> Result<(EntryMode, EntryRegs)> {
    let path = image.kernel;
    let load_err = |reason: String| Error::Load {
        path: path.to_owned(),
        reason,
    };
    let loaded = Elf::load(mem, None, file, Some(GuestAddress(layout::HIMEM_START)))
        .map_err(|e| load_err(format!("not a loadable ELF at or above 1 MiB: {e}")))?;
    let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap else {
        return Err(load_err(
            "the ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)".to_owned(),
        ));
    };
    let mut start = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: layout::CMDLINE_START,
        memmap_paddr: layout::SETUP_DATA_START,
        ..Default::default()
    };
    let ram = layout::ram_regions(mem_bytes);
    start.memmap_entries = ram.len() as u32;
    let mut params = BootParams::new(&start, GuestAddress(layout::ZERO_PAGE_START));
    for (i, (base, size)) in ram.iter().enumerate() {
        let entry = hvm_memmap_table_entry {
            addr: base.0,
            size: *size,
            type_: E820_RAM,
            reserved: 0,
        };
        let at = (i == 0).then_some(GuestAddress(layout::SETUP_DATA_START));
        params
            .add_section(&entry, at)
            .map_err(|e| Error::BootSetup(format!("PVH memory map: {e}")))?;
    }
    if let Some(initrd) = image.initrd {
        let (paddr, size) = load_initrd(
            mem,
            initrd,
            mem_bytes.min(layout::MMIO_GAP_START) - 1,
            loaded.kernel_end,
        )?;
        let module = hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        };
        let at = GuestAddress(layout::SETUP_DATA_START + 0x1000);
        params
            .add_module(&module, Some(at))
            .map_err(|e| Error::BootSetup(format!("PVH module list: {e}")))?;
        start.nr_modules = 1;
        start.modlist_paddr = at.0;
        params.header = vm_memory::ByteValued::as_slice(&start).to_vec();
    }
    PvhBootConfigurator::write_bootparams(&params, mem)
        .map_err(|e| Error::BootSetup(format!("PVH start info: {e}")))?;
    Ok((
        EntryMode::Protected32,
        EntryRegs {
            rip: entry.0,
            rbx: layout::ZERO_PAGE_START,
            ..Default::default()
        },
    ))
}

fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<()> {
    if cmdline.len() >= layout::CMDLINE_MAX_SIZE || cmdline.contains('\0') {
        return Err(Error::BootSetup(format!(
            "the command line must be under {} bytes and contain no NUL",
            layout::CMDLINE_MAX_SIZE
        )));
    }
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(layout::CMDLINE_START))
        .map_err(|e| Error::BootSetup(format!("command line: {e}")))
}

/// Puts the initrd as high as possible below `max_end`, page aligned, above `kernel_end`.
fn load_initrd(mem: &GuestMemoryMmap, path: &Path, max_end: u64, kernel_end: u64) -> Result<(u64, u64)> {
    let load_err = |reason: String| Error::Load {
        path: path.to_owned(),
        reason,
    };
    let data = std::fs::read(path).map_err(|e| load_err(e.to_string()))?;
    let size = data.len() as u64;
    let start = (max_end + 1)
        .checked_sub(size)
        .map(|s| s & !0xfff)
        .filter(|&s| s >= kernel_end)
        .ok_or_else(|| {
            load_err(format!(
                "{size} bytes do not fit in RAM between the kernel's end ({kernel_end:#x}) and {max_end:#x}"
            ))
        })?;
    mem.write_slice(&data, GuestAddress(start))
        .map_err(|e| load_err(e.to_string()))?;
    Ok((start, size))
}

/// Writes the DTB as the one setup_data entry and returns its address.
fn write_setup_dtb(mem: &GuestMemoryMmap, dtb: &[u8]) -> Result<u64> {
    const HEADER: u64 = 16;
    if dtb.len() as u64 > layout::SETUP_DATA_MAX_SIZE - HEADER {
        return Err(Error::BootSetup(format!(
            "device tree of {} bytes is too large",
            dtb.len()
        )));
    }
    let at = layout::SETUP_DATA_START;
    let w = |r: std::result::Result<(), vm_memory::GuestMemoryError>| {
        r.map_err(|e| Error::BootSetup(format!("setup_data: {e}")))
    };
    w(mem.write_obj(0u64, GuestAddress(at)))?;
    w(mem.write_obj(SETUP_DTB, GuestAddress(at + 8)))?;
    w(mem.write_obj(dtb.len() as u32, GuestAddress(at + 12)))?;
    w(mem.write_slice(dtb, GuestAddress(at + HEADER)))?;
    Ok(at)
}
