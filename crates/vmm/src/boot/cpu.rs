//! x86_64 CPU state at entry: GDT, identity page tables, segment and control registers,
//! FPU, local APIC LINT pins, CPUID and boot MSRs.

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment};
use kvm_ioctls::{Cap, Kvm, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::error::{Error, Result};
use crate::layout;

/// GDT selectors (the Linux 64-bit boot protocol wants code at 0x10 and data at 0x18).
pub const CODE32_SELECTOR: u16 = 0x08;
/// 64-bit code.
pub const CODE64_SELECTOR: u16 = 0x10;
/// Flat data.
pub const DATA_SELECTOR: u16 = 0x18;
const TSS_SELECTOR: u16 = 0x20;

const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PAGE_PRESENT_RW: u64 = 0b11;
const PAGE_HUGE: u64 = 1 << 7;

/// A flat segment descriptor and the matching KVM segment.
#[derive(Clone, Copy)]
struct Segment {
    selector: u16,
    /// Access byte type field (code 0xb, data 0x3, busy TSS 0xb with s = 0).
    type_: u8,
    s: bool,
    long: bool,
    db: bool,
    limit: u32,
}

impl Segment {
    const CODE32: Segment = Segment {
        selector: CODE32_SELECTOR,
        type_: 0xb,
        s: true,
        long: false,
        db: true,
        limit: 0xf_ffff,
    };
    const CODE64: Segment = Segment {
        selector: CODE64_SELECTOR,
        type_: 0xb,
        s: true,
        long: true,
        db: false,
        limit: 0xf_ffff,
    };
    const DATA: Segment = Segment {
        selector: DATA_SELECTOR,
        type_: 0x3,
        s: true,
        long: false,
        db: true,
        limit: 0xf_ffff,
    };
    const TSS: Segment = Segment {
        selector: TSS_SELECTOR,
        type_: 0xb,
        s: false,
        long: false,
        db: false,
        limit: 0x67,
    };

    /// The 8-byte GDT descriptor (base 0; page granularity for the flat ones).
    fn descriptor(&self) -> u64 {
        let granular = self.s;
        let access = 0x80 | (u64::from(self.s) << 4) | u64::from(self.type_);
        let flags = (u64::from(granular) << 3) | (u64::from(self.db) << 2) | (u64::from(self.long) << 1);
        let limit = u64::from(self.limit);
        (limit & 0xffff) | ((limit >> 16) & 0xf) << 48 | access << 40 | flags << 52
    }

    fn kvm(&self) -> kvm_segment {
        let granular = self.s;
        kvm_segment {
            base: 0,
            limit: if granular {
                (self.limit << 12) | 0xfff
            } else {
                self.limit
            },
            selector: self.selector,
            type_: self.type_,
            present: 1,
            dpl: 0,
            db: u8::from(self.db),
            s: u8::from(self.s),
            l: u8::from(self.long),
            g: u8::from(granular),
            avl: 0,
            unusable: 0,
            padding: 0,
        }
    }
}

const GDT: [Segment; 4] = [Segment::CODE32, Segment::CODE64, Segment::DATA, Segment::TSS];

fn write_gdt(mem: &GuestMemoryMmap) -> Result<()> {
    let mut table = [0u64; 5];
    for seg in GDT {
        table[usize::from(seg.selector >> 3)] = seg.descriptor();
    }
    for (i, entry) in table.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(layout::GDT_START + 8 * i as u64))
            .map_err(|e| Error::BootSetup(format!("GDT: {e}")))?;
    }
    Ok(())
}

/// Identity-maps `[0, top)` with 2 MiB pages (top rounded up to whole GiB).
fn write_page_tables(mem: &GuestMemoryMmap, top: u64) -> Result<()> {
    let gibs = top.div_ceil(1 << 30);
    if gibs > layout::MAX_MAPPED_GIB {
        return Err(Error::BootSetup(format!("cannot identity-map {gibs} GiB")));
    }
    let w = |value: u64, at: u64| {
        mem.write_obj(value, GuestAddress(at))
            .map_err(|e| Error::BootSetup(format!("page tables: {e}")))
    };
    w(layout::PDPT_START | PAGE_PRESENT_RW, layout::PML4_START)?;
    for gib in 0..gibs {
        let pd = layout::PD_START + gib * 0x1000;
        w(pd | PAGE_PRESENT_RW, layout::PDPT_START + gib * 8)?;
        for i in 0..512 {
            w(((gib << 30) + (i << 21)) | PAGE_PRESENT_RW | PAGE_HUGE, pd + i * 8)?;
        }
    }
    Ok(())
}

/// How the vCPU starts.
#[derive(Clone, Copy, Debug)]
pub enum EntryMode {
    /// 64-bit long mode, identity paging over `[0, mapped_top)`.
    Long64 {
        /// Top of the identity map.
        mapped_top: u64,
    },
    /// 32-bit protected mode, paging off (PVH).
    Protected32,
}

/// Registers at entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntryRegs {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// RSI (Linux: the zero page).
    pub rsi: u64,
    /// RBX (PVH: the start info).
    pub rbx: u64,
}

/// Puts the boot vCPU in `mode` with `regs`, interrupts off.
pub fn setup_boot_vcpu(vcpu: &VcpuFd, mem: &GuestMemoryMmap, mode: EntryMode, regs: EntryRegs) -> Result<()> {
    let ioctl = |what: &'static str| move |e: kvm_ioctls::Error| Error::Kvm(what, e);
    write_gdt(mem)?;
    let mut sregs = vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
    sregs.gdt.base = layout::GDT_START;
    sregs.gdt.limit = (8 * 5 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    let data = Segment::DATA.kvm();
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = Segment::TSS.kvm();
    match mode {
        EntryMode::Long64 { mapped_top } => {
            write_page_tables(mem, mapped_top)?;
            sregs.cs = Segment::CODE64.kvm();
            sregs.cr3 = layout::PML4_START;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        EntryMode::Protected32 => {
            sregs.cs = Segment::CODE32.kvm();
            sregs.cr0 = (sregs.cr0 | X86_CR0_PE | X86_CR0_ET) & !X86_CR0_PG;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    vcpu.set_sregs(&sregs).map_err(ioctl("KVM_SET_SREGS"))?;
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(ioctl("KVM_SET_FPU"))?;
    let r = kvm_regs {
        rip: regs.rip,
        rsp: regs.rsp,
        rbp: regs.rsp,
        rsi: regs.rsi,
        rbx: regs.rbx,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&r).map_err(ioctl("KVM_SET_REGS"))
}

/// CPUID.1:ECX bit 31: "running under a hypervisor". KVM_GET_SUPPORTED_CPUID leaves it to
/// the VMM; without it Linux never looks at the KVM leaves, so it gets no kvm-clock and must
/// calibrate its TSC against the PIT, which fails on a loaded host and stalls the boot.
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.1:ECX bit 24: the local APIC's TSC-deadline timer mode. KVM emulates it when it
/// has KVM_CAP_TSC_DEADLINE_TIMER, but KVM_GET_SUPPORTED_CPUID leaves the bit to the VMM
/// (as QEMU and Firecracker set it). Without it Linux calibrates the APIC timer against
/// its clock at boot, a busy wait of a tenth of a second or more (measured: about 0.3 s of
/// the guest's clock nested).
const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;

/// Per-vCPU set-up common to every boot: CPUID (with this vCPU's APIC ID, the hypervisor
/// bit and the TSC-deadline timer where KVM has it), boot MSRs and the local APIC's LINT0 (ExtINT, for the PIC) and LINT1
/// (NMI) as a PC wires them.
pub fn setup_vcpu_common(kvm: &Kvm, vcpu: &VcpuFd, index: u8) -> Result<()> {
    let ioctl = |what: &'static str| move |e: kvm_ioctls::Error| Error::Kvm(what, e);
    let mut cpuid: CpuId = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
    let tsc_deadline = if kvm.check_extension(Cap::TscDeadlineTimer) {
        CPUID_1_ECX_TSC_DEADLINE
    } else {
        0
    };
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            1 => {
                entry.ebx = (entry.ebx & 0x00ff_ffff) | (u32::from(index) << 24);
                entry.ecx |= CPUID_1_ECX_HYPERVISOR | tsc_deadline;
            }
            0xb => entry.edx = u32::from(index),
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;

    const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
    const FAST_STRING: u64 = 1;
    let entries = [kvm_msr_entry {
        index: MSR_IA32_MISC_ENABLE,
        data: FAST_STRING,
        ..Default::default()
    }];
    let msrs = Msrs::from_entries(&entries).map_err(|e| Error::BootSetup(format!("MSR list: {e:?}")))?;
    let set = vcpu.set_msrs(&msrs).map_err(ioctl("KVM_SET_MSRS"))?;
    if set != entries.len() {
        log::warn!("vCPU {index}: KVM accepted {set} of {} boot MSRs", entries.len());
    }

    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const DELIVERY_EXTINT: u32 = 0x7;
    const DELIVERY_NMI: u32 = 0x4;
    let mut lapic = vcpu.get_lapic().map_err(ioctl("KVM_GET_LAPIC"))?;
    for (reg, mode) in [(APIC_LVT0, DELIVERY_EXTINT), (APIC_LVT1, DELIVERY_NMI)] {
        let mut bytes = [0u8; 4];
        for (b, r) in bytes.iter_mut().zip(&lapic.regs[reg..reg + 4]) {
            *b = *r as u8;
        }
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (r, b) in lapic.regs[reg..reg + 4].iter_mut().zip(value.to_le_bytes()) {
            *r = b as i8;
        }
    }
    vcpu.set_lapic(&lapic).map_err(ioctl("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_the_usual_encodings() {
        assert_eq!(Segment::CODE64.descriptor(), 0x00af_9b00_0000_ffff);
        assert_eq!(Segment::DATA.descriptor(), 0x00cf_9300_0000_ffff);
        assert_eq!(Segment::CODE32.descriptor(), 0x00cf_9b00_0000_ffff);
        assert_eq!(Segment::TSS.descriptor(), 0x0000_8b00_0000_0067);
        assert_eq!(Segment::CODE64.kvm().limit, 0xffff_ffff);
    }
}
