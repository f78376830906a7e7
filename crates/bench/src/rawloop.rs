//! The raw loop: the least a KVM program can do to run the payload. It is the benchmark's
//! floor: whatever a VMM spends on a trapped access beyond this loop is its own overhead.
//!
//! The VM is set up exactly as mmiolab sets it up, with mmiolab's own code (guest RAM
//! memslots, the PVH loader, the boot vCPU's registers), so the two differ only in what
//! happens after `KVM_RUN` returns: here every exit gets no work at all (reads return all
//! ones, writes are dropped) and a write to port 0xf4 ends the run with that status. By
//! default the VM also gets the in-kernel irqchip and PIT that mmiolab creates.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kvm_bindings::{KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Kvm, VcpuExit};
use mmiolab_vmm::boot::{self, Kernel, KernelImage};
use mmiolab_vmm::machine::{KVM_TSS_ADDRESS, create_memory};

/// The exit port (QEMU's isa-debug-exit, mmiolab's test-exit device).
pub const EXIT_PORT: u16 = 0xf4;

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

/// Runs the payload to its exit-port write.
pub fn run(opts: &Options) -> Result<Outcome> {
    let mem_bytes = opts.memory_mib << 20;
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
    let mem = create_memory(&vm, mem_bytes, None)?;
    let image = KernelImage {
        kernel: &opts.kernel,
        initrd: None,
        cmdline: &opts.cmdline,
    };
    let (mode, regs) = Kernel::prepare(&image, mem_bytes)?.load(&mem, mem_bytes, None)?;
    let mut vcpu = vm.create_vcpu(0).context("KVM_CREATE_VCPU")?;
    boot::cpu::setup_boot_vcpu(&vcpu, &mem, mode, regs)?;

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
