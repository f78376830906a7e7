//! The raw loop: the least a KVM program can do to run the payload. It is the benchmark's
//! floor: whatever a VMM spends on a trapped access beyond this loop is its own overhead.
//!
//! It loads a PVH ELF into one RAM slot at guest address 0, writes an `hvm_start_info` and
//! the command line, starts the vCPU as the PVH ABI says (32-bit protected mode, paging off,
//! flat 4 GiB segments, EBX = start info), and answers every exit with no work: reads
//! return all ones, writes are dropped, and a write to port 0xf4 ends the run with that
//! status. By default the VM also gets the in-kernel irqchip and PIT that mmiolab creates,
//! so that both run on the same KVM configuration and differ only in user space.

use std::path::PathBuf;
use std::ptr::NonNull;

use anyhow::{Context, Result, bail, ensure};
use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_regs, kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};

use crate::elf;

/// The exit port (QEMU's isa-debug-exit, mmiolab's test-exit device).
pub const EXIT_PORT: u16 = 0xf4;

const GDT: u64 = 0x500;
const START_INFO: u64 = 0x7000;
const MEMMAP: u64 = 0x7100;
const CMDLINE: u64 = 0x2_0000;
const CMDLINE_MAX: usize = 0x1_0000;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const E820_RAM: u32 = 1;
const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
const X86_CR0_PE: u64 = 1;
const X86_CR0_ET: u64 = 1 << 4;

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The PVH ELF.
    pub kernel: PathBuf,
    /// Its command line.
    pub cmdline: String,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Create the in-kernel irqchip and PIT, as mmiolab does.
    pub irqchip: bool,
}

/// Exits by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every return from KVM_RUN, the final exit-port write included.
    pub exits: u64,
    /// Port writes (the final one excluded).
    pub pio_out: u64,
    /// Port reads.
    pub pio_in: u64,
    /// MMIO writes.
    pub mmio_write: u64,
    /// MMIO reads.
    pub mmio_read: u64,
}

/// How the run ended.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// The byte the guest wrote to the exit port.
    pub status: u8,
    /// What it did before.
    pub counts: Counts,
}

/// Anonymous memory backing guest RAM.
struct Ram {
    ptr: NonNull<u8>,
    len: usize,
}

impl Ram {
    fn new(len: usize) -> Result<Ram> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        ensure!(
            p != libc::MAP_FAILED,
            "mmap of {len} bytes of guest RAM: {}",
            std::io::Error::last_os_error()
        );
        Ok(Ram {
            ptr: NonNull::new(p.cast()).context("mmap returned NULL")?,
            len,
        })
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<()> {
        let start = usize::try_from(addr)?;
        let end = start.checked_add(bytes.len()).filter(|&e| e <= self.len);
        ensure!(
            end.is_some(),
            "{} bytes at {addr:#x} do not fit in guest RAM",
            bytes.len()
        );
        // SAFETY: `start..start + len` lies inside the mapping (checked above), which this
        // struct owns; the vCPU is not running while the loader writes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(start), bytes.len()) };
        Ok(())
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; the VM using it is gone by then
        // (`run` drops its VM before its RAM).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn flat(selector: u16, type_: u8) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Loads the payload and fills in the boot structures.
fn load(ram: &mut Ram, opts: &Options) -> Result<u32> {
    let file = std::fs::read(&opts.kernel).with_context(|| format!("reading {}", opts.kernel.display()))?;
    let image = elf::parse(&file).with_context(|| format!("loading {}", opts.kernel.display()))?;
    let entry = image
        .pvh_entry
        .with_context(|| format!("{} has no PVH entry note", opts.kernel.display()))?;
    for seg in &image.segments {
        ram.write(seg.paddr, &seg.data)?;
    }
    // GDT: null, 0x08 code (32-bit, flat), 0x10 data (flat), 0x18 TSS.
    let gdt: [u64; 4] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x0000_8b00_0000_0067];
    ram.write(GDT, &gdt.iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<_>>())?;
    ensure!(
        opts.cmdline.len() < CMDLINE_MAX && !opts.cmdline.contains('\0'),
        "bad command line"
    );
    let mut cmdline = opts.cmdline.clone().into_bytes();
    cmdline.push(0);
    ram.write(CMDLINE, &cmdline)?;
    // struct hvm_start_info (version 1) and a one-entry memory map.
    let mut info = Vec::with_capacity(56);
    info.extend(XEN_HVM_START_MAGIC.to_le_bytes());
    info.extend(1u32.to_le_bytes()); // version
    info.extend(0u32.to_le_bytes()); // flags
    info.extend(0u32.to_le_bytes()); // nr_modules
    info.extend(0u64.to_le_bytes()); // modlist_paddr
    info.extend(CMDLINE.to_le_bytes());
    info.extend(0u64.to_le_bytes()); // rsdp_paddr
    info.extend(MEMMAP.to_le_bytes());
    info.extend(1u32.to_le_bytes()); // memmap_entries
    info.extend(0u32.to_le_bytes()); // reserved
    ram.write(START_INFO, &info)?;
    let mut map = Vec::with_capacity(24);
    map.extend(0u64.to_le_bytes());
    map.extend((ram.len as u64).to_le_bytes());
    map.extend(E820_RAM.to_le_bytes());
    map.extend(0u32.to_le_bytes());
    ram.write(MEMMAP, &map)?;
    Ok(entry)
}

/// Runs the payload to its exit-port write.
pub fn run(opts: &Options) -> Result<Outcome> {
    let len = usize::try_from(opts.memory_mib << 20)?;
    let mut ram = Ram::new(len)?;
    let entry = load(&mut ram, opts)?;

    let kvm = Kvm::new().context("opening /dev/kvm")?;
    let vm = kvm.create_vm().context("KVM_CREATE_VM")?;
    vm.set_tss_address(KVM_TSS_ADDRESS).context("KVM_SET_TSS_ADDR")?;
    if opts.irqchip {
        vm.create_irq_chip().context("KVM_CREATE_IRQCHIP")?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit).context("KVM_CREATE_PIT2")?;
    }
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: len as u64,
        userspace_addr: ram.ptr.as_ptr() as u64,
        flags: 0,
    };
    // SAFETY: `ram` is a live mapping of exactly `memory_size` bytes that outlives `vm`
    // (declared before it, so dropped after it).
    unsafe { vm.set_user_memory_region(region) }.context("KVM_SET_USER_MEMORY_REGION")?;

    let mut vcpu = vm.create_vcpu(0).context("KVM_CREATE_VCPU")?;
    let mut sregs = vcpu.get_sregs().context("KVM_GET_SREGS")?;
    sregs.cs = flat(0x08, 0xb);
    let data = flat(0x10, 0x3);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = kvm_segment {
        limit: 0x67,
        selector: 0x18,
        s: 0,
        db: 0,
        g: 0,
        ..flat(0x18, 0xb)
    };
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 4 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
    sregs.cr4 = 0;
    sregs.efer = 0;
    vcpu.set_sregs(&sregs).context("KVM_SET_SREGS")?;
    let regs = kvm_regs {
        rip: entry.into(),
        rbx: START_INFO,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).context("KVM_SET_REGS")?;

    let mut c = Counts::default();
    loop {
        c.exits += 1;
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                if port == EXIT_PORT {
                    let status = data.first().copied().unwrap_or(0);
                    return Ok(Outcome { status, counts: c });
                }
                c.pio_out += 1;
            }
            Ok(VcpuExit::IoIn(_, data)) => {
                data.fill(0xff);
                c.pio_in += 1;
            }
            Ok(VcpuExit::MmioRead(_, data)) => {
                data.fill(0xff);
                c.mmio_read += 1;
            }
            Ok(VcpuExit::MmioWrite(..)) => c.mmio_write += 1,
            Ok(VcpuExit::Intr | VcpuExit::IrqWindowOpen) => {}
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Ok(other) => {
                let what = format!("{other:?}");
                let regs = vcpu.get_regs().map(|r| format!("rip={:#x}", r.rip)).unwrap_or_default();
                bail!("unexpected exit {what} after {} exits ({regs})", c.exits);
            }
            Err(e) => bail!("KVM_RUN: {e}"),
        }
    }
}
