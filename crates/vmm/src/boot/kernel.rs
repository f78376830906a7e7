//! Booting a kernel: a bzImage through the Linux 64-bit boot protocol (zero page, e820,
//! command line, initrd, the DTB as a SETUP_DTB setup_data entry), or an ELF with a PVH
//! note (32-bit entry, `hvm_start_info` in EBX), as QEMU's `-kernel` and Firecracker do.

use std::io::Read;
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::elf::{ElfImage, PlacementError, check_placement};
use super::{EntryMode, EntryRegs};
use crate::error::{Error, Result};
use crate::files::{InputFile, open_input};
use crate::layout;

/// What to boot.
pub struct KernelImage<'a> {
    /// bzImage or PVH ELF.
    pub kernel: &'a Path,
    /// Initramfs, if any.
    pub initrd: Option<&'a Path>,
    /// Command line.
    pub cmdline: &'a str,
}

const E820_RAM: u32 = 1;
const SETUP_DTB: u32 = 2;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
/// The 64-bit entry point sits this far into the protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;

/// `XLF_KERNEL_64`: the kernel has the 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `LOADED_HIGH`: a bzImage (protected-mode code loaded at 1 MiB), not a zImage.
const LOADED_HIGH: u8 = 1 << 0;
/// Bytes of a bzImage's start that hold the setup header fields read here.
const SETUP_HEADER_END: usize = 0x270;
/// Where Linux lets a loader put the initrd when the kernel does not say (boot protocol).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

/// A kernel, its initrd and command line, read and checked against the machine, ready to
/// load.
#[derive(Debug)]
pub struct Kernel {
    input: InputFile,
    kind: KernelKind,
    initrd: Option<Initrd>,
    cmdline: String,
}

#[derive(Debug)]
enum KernelKind {
    BzImage,
    Pvh { image: ElfImage, entry: u64 },
}

#[derive(Debug)]
struct Initrd {
    input: InputFile,
    /// Where it goes (page aligned, as high as it fits).
    start: u64,
}

fn load_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Load {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The first bytes of a bzImage, with the setup header fields mmiolab checks.
struct BootHeader<'a>(&'a [u8]);

impl BootHeader<'_> {
    fn u8(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.u8(at), self.u8(at + 1)])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes([self.u8(at), self.u8(at + 1), self.u8(at + 2), self.u8(at + 3)])
    }
}

impl Kernel {
    /// Opens and checks `image` for a machine with `mem_bytes` of RAM: a PVH ELF (ELF64 or
    /// ELF32) whose segments and PVH entry lie in RAM at or above 1 MiB, or a 64-bit bzImage
    /// that fits in RAM below the MMIO gap as it decompresses; an initrd that fits between
    /// the kernel's end and the highest address the kernel accepts; a command line that fits
    /// its page.
    pub fn prepare(image: &KernelImage<'_>, mem_bytes: u64) -> Result<Kernel> {
        let path = image.kernel;
        check_cmdline(image.cmdline)?;
        let limit_what = "of RAM the machine has";
        let mut input = open_input(path, mem_bytes, limit_what).map_err(|e| Error::Input(Box::new(e)))?;
        let mut head = vec![0u8; SETUP_HEADER_END.min(input.len as usize)];
        input
            .file
            .read_exact(&mut head)
            .map_err(|e| load_err(path, format!("cannot read its header: {e}")))?;
        let below_gap = mem_bytes.min(layout::MMIO_GAP_START);
        let (kind, kernel_end, initrd_top) = if super::elf::is_elf(&head) {
            let image = ElfImage::read(&mut input).map_err(|r| load_err(path, r))?;
            let entry = image.pvh_entry.ok_or_else(|| {
                load_err(
                    path,
                    "an ELF kernel without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): mmiolab boots an ELF \
                     kernel only through PVH (build it with CONFIG_PVH=y), or give the bzImage"
                        .to_owned(),
                )
            })?;
            image.check(mem_bytes, entry).map_err(|r| load_err(path, r))?;
            let end = image.end();
            (KernelKind::Pvh { image, entry }, end, below_gap)
        } else {
            let (end, top) = check_bzimage(&BootHeader(&head), input.len, mem_bytes).map_err(|r| load_err(path, r))?;
            (KernelKind::BzImage, end, top.min(below_gap))
        };
        let initrd = match image.initrd {
            Some(p) => Some(place_initrd(p, kernel_end, initrd_top, mem_bytes)?),
            None => None,
        };
        Ok(Kernel {
            input,
            kind,
            initrd,
            cmdline: image.cmdline.to_owned(),
        })
    }

    /// Copies the kernel and initrd into `mem`, writes the boot structures (the DTB, if
    /// any, for a bzImage) and returns how to enter the kernel.
    pub fn load(mut self, mem: &GuestMemoryMmap, mem_bytes: u64, dtb: Option<&[u8]>) -> Result<(EntryMode, EntryRegs)> {
        write_cmdline(mem, &self.cmdline)?;
        let initrd = match self.initrd.take() {
            Some(i) => Some(load_initrd(mem, i)?),
            None => None,
        };
        match std::mem::replace(&mut self.kind, KernelKind::BzImage) {
            KernelKind::Pvh { image, entry } => {
                let path = self.input.path.clone();
                image.load(&mut self.input, mem).map_err(|r| load_err(&path, r))?;
                boot_pvh(mem, mem_bytes, entry, initrd)
            }
            KernelKind::BzImage => self.boot_bzimage(mem, mem_bytes, initrd, dtb),
        }
    }

    fn boot_bzimage(
        mut self,
        mem: &GuestMemoryMmap,
        mem_bytes: u64,
        initrd: Option<(u64, u64)>,
        dtb: Option<&[u8]>,
    ) -> Result<(EntryMode, EntryRegs)> {
        let path = self.input.path.clone();
        // Checked by `prepare`; linux-loader re-reads the header it needs for the zero page.
        let loaded = BzImage::load(mem, None, &mut self.input.file, Some(GuestAddress(layout::HIMEM_START)))
            .map_err(|e| load_err(&path, format!("the bzImage changed since it was checked: {e}")))?;
        let hdr = loaded
            .setup_header
            .ok_or_else(|| load_err(&path, "bzImage without a setup header".to_owned()))?;
        let mut params = boot_params {
            hdr,
            ..Default::default()
        };
        params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
        params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
        params.hdr.header = KERNEL_HDR_MAGIC;
        params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
        params.hdr.cmdline_size = self.cmdline.len() as u32 + 1;
        if let Some((start, size)) = initrd {
            params.hdr.ramdisk_image = start as u32;
            params.hdr.ramdisk_size = size as u32;
        }
        if let Some(dtb) = dtb {
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
}

/// Why a file is not a bzImage mmiolab can boot on the machine.
#[derive(Debug, thiserror::Error)]
pub enum BzImageError {
    /// Too short for the boot header.
    #[error("neither an ELF kernel nor a bzImage: {0} bytes is too short for a bzImage's boot header")]
    TooShort(u64),
    /// No boot flag or `HdrS` magic.
    #[error("neither an ELF kernel nor a bzImage (no \"HdrS\" boot header at offset 0x202)")]
    NoHeader,
    /// Boot protocol before 2.12.
    #[error("its boot protocol is {}.{:02}; mmiolab needs 2.12 or later (Linux 3.8 on)", .0 >> 8, .0 & 0xff)]
    OldProtocol(u16),
    /// Not loaded high.
    #[error("a zImage (loaded below 1 MiB), not a bzImage")]
    ZImage,
    /// No 64-bit entry point.
    #[error("not a 64-bit kernel: its boot header has no 64-bit entry point (XLF_KERNEL_64)")]
    Not64Bit,
    /// The setup code takes the whole file.
    #[error("truncated: its setup code takes {setup} bytes and the file has {len}")]
    Truncated {
        /// Setup code size.
        setup: u64,
        /// File size.
        len: u64,
    },
    /// Load address plus size overflows.
    #[error("its load address and size overflow")]
    Overflow,
    /// It does not fit in RAM as it decompresses.
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

/// Checks a bzImage's header against the machine; returns the end of the memory the
/// kernel occupies while it decompresses, and the highest address it accepts an initrd at.
fn check_bzimage(h: &BootHeader<'_>, len: u64, mem_bytes: u64) -> std::result::Result<(u64, u64), BzImageError> {
    if h.0.len() < SETUP_HEADER_END {
        return Err(BzImageError::TooShort(len));
    }
    if h.u16(0x1fe) != KERNEL_BOOT_FLAG_MAGIC || h.u32(0x202) != KERNEL_HDR_MAGIC {
        return Err(BzImageError::NoHeader);
    }
    let version = h.u16(0x206);
    if version < 0x020c {
        return Err(BzImageError::OldProtocol(version));
    }
    if h.u8(0x211) & LOADED_HIGH == 0 {
        return Err(BzImageError::ZImage);
    }
    if h.u16(0x236) & XLF_KERNEL_64 == 0 {
        return Err(BzImageError::Not64Bit);
    }
    let sects = match h.u8(0x1f1) {
        0 => 4,
        n => u64::from(n),
    };
    let setup = (sects + 1) * 512;
    let kernel = len
        .checked_sub(setup)
        .filter(|&k| k > 0)
        .ok_or(BzImageError::Truncated { setup, len })?;
    let start = u64::from(h.u32(0x214));
    let footprint = kernel.max(u64::from(h.u32(0x260)));
    let end = start.checked_add(footprint).ok_or(BzImageError::Overflow)?;
    check_placement(
        &format!("the kernel, which needs {footprint:#x} bytes of RAM to decompress (its init_size),"),
        start,
        end,
        mem_bytes,
    )?;
    let top = match h.u32(0x22c) {
        0 => DEFAULT_INITRD_ADDR_MAX,
        n => u64::from(n),
    };
    Ok((end, top.saturating_add(1)))
}

/// Opens the initrd and finds its place: as high as possible below `top` (exclusive),
/// page aligned, above `kernel_end`.
fn place_initrd(path: &Path, kernel_end: u64, top: u64, mem_bytes: u64) -> Result<Initrd> {
    let input = open_input(path, mem_bytes, "of RAM the machine has").map_err(|e| Error::Input(Box::new(e)))?;
    let size = input.len;
    let start = top
        .checked_sub(size)
        .map(|s| s & !0xfff)
        .filter(|&s| s >= kernel_end)
        .ok_or_else(|| {
            load_err(
                path,
                format!(
                    "the initrd ({size} bytes, {} MiB) does not fit in RAM between the kernel's end ({kernel_end:#x}) \
                     and {:#x}: give the machine more memory (memory_mib)",
                    size.div_ceil(1 << 20),
                    top.saturating_sub(1)
                ),
            )
        })?;
    Ok(Initrd { input, start })
}

fn load_initrd(mem: &GuestMemoryMmap, mut initrd: Initrd) -> Result<(u64, u64)> {
    let path = initrd.input.path.clone();
    let count = usize::try_from(initrd.input.len).map_err(|_| load_err(&path, "too large for this host".to_owned()))?;
    mem.read_exact_volatile_from(GuestAddress(initrd.start), &mut initrd.input.file, count)
        .map_err(|e| {
            load_err(
                &path,
                format!("cannot copy it into guest RAM (did the file change?): {e}"),
            )
        })?;
    Ok((initrd.start, initrd.input.len))
}

fn boot_pvh(
    mem: &GuestMemoryMmap,
    mem_bytes: u64,
    entry: u64,
    initrd: Option<(u64, u64)>,
) -> Result<(EntryMode, EntryRegs)> {
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
    if let Some((paddr, size)) = initrd {
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
            rip: entry,
            rbx: layout::ZERO_PAGE_START,
            ..Default::default()
        },
    ))
}

/// Why `cmdline` cannot be a kernel command line, if it cannot.
pub fn cmdline_error(cmdline: &str) -> Option<String> {
    (cmdline.len() >= layout::CMDLINE_MAX_SIZE || cmdline.contains('\0')).then(|| {
        format!(
            "the command line must be under {} bytes and contain no NUL",
            layout::CMDLINE_MAX_SIZE
        )
    })
}

fn check_cmdline(cmdline: &str) -> Result<()> {
    match cmdline_error(cmdline) {
        Some(why) => Err(Error::BootSetup(why)),
        None => Ok(()),
    }
}

fn write_cmdline(mem: &GuestMemoryMmap, cmdline: &str) -> Result<()> {
    check_cmdline(cmdline)?;
    let mut bytes = cmdline.as_bytes().to_vec();
    bytes.push(0);
    mem.write_slice(&bytes, GuestAddress(layout::CMDLINE_START))
        .map_err(|e| Error::BootSetup(format!("command line: {e}")))
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
