//! The guest physical address map: a PC's, reduced to what mmiolab needs.
//!
//! ```text
//! 0x0000_0000  RAM (low 640 KiB): boot structures, stack, zero page, command line, DTB
//! 0x000a_0000  legacy hole (VGA/ROM area): no RAM, devices may live here
//! 0x0010_0000  RAM: kernel / firmware image, initrd at the top
//! 0xc000_0000  32-bit MMIO gap: emulated devices
//! 0xfec0_0000  IOAPIC, 0xfee0_0000 LAPIC (in-kernel), up to 4 GiB
//! 0x1_0000_0000  RAM above 4 GiB, when the machine has more than 3 GiB
//! ```

use vm_memory::GuestAddress;

/// End of the low RAM block (start of the legacy hole).
pub const LOW_RAM_END: u64 = 0xa_0000;
/// Where RAM resumes above the legacy hole; firmware and kernels load here or above.
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// The in-kernel IOAPIC's base; devices stay below it.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// The in-kernel local APIC's base.
pub const LAPIC_START: u64 = 0xfee0_0000;
/// End of the 32-bit address space.
pub const FOUR_GIB: u64 = 0x1_0000_0000;

/// GDT (null, code32 0x08, code64 0x10, data 0x18, tss 0x20).
pub const GDT_START: u64 = 0x500;
/// Zero page (`boot_params`) for a Linux boot; `hvm_start_info` for PVH.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for a Linux boot.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Page-map level 4 of the initial identity map.
pub const PML4_START: u64 = 0x9000;
/// The one page-directory-pointer table.
pub const PDPT_START: u64 = 0xa000;
/// Page directories, one per GiB mapped, contiguous.
pub const PD_START: u64 = 0x10000;
/// At most this many GiB are identity-mapped (16 page directories end at 0x20000).
pub const MAX_MAPPED_GIB: u64 = 16;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Longest command line accepted.
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// setup_data entries (the DTB) for a Linux boot, and the memory map for PVH.
pub const SETUP_DATA_START: u64 = 0x30000;
/// Room for setup_data.
pub const SETUP_DATA_MAX_SIZE: u64 = 0x40000;
/// Initial stack pointer for bare-metal firmware (grows down towards SETUP_DATA_START).
pub const FIRMWARE_STACK_TOP: u64 = 0x9_f000;

/// Largest guest RAM accepted, so the identity map fits its reserved pages.
pub const MAX_MEMORY_MIB: u64 = (MAX_MAPPED_GIB - 4 + 3) * 1024;

/// The RAM blocks of a machine with `mem_bytes` of RAM: low RAM, RAM from 1 MiB up to the
/// MMIO gap, and what does not fit below the gap above 4 GiB.
pub fn ram_regions(mem_bytes: u64) -> Vec<(GuestAddress, u64)> {
    let mut regions = vec![(GuestAddress(0), mem_bytes.min(LOW_RAM_END))];
    if mem_bytes > HIMEM_START {
        regions.push((GuestAddress(HIMEM_START), mem_bytes.min(MMIO_GAP_START) - HIMEM_START));
    }
    if mem_bytes > MMIO_GAP_START {
        regions.push((GuestAddress(FOUR_GIB), mem_bytes - MMIO_GAP_START));
    }
    regions
}

/// The highest address the identity map must cover: all RAM and the MMIO gap.
pub fn mapped_top(mem_bytes: u64) -> u64 {
    ram_regions(mem_bytes)
        .iter()
        .map(|(start, size)| start.0 + size)
        .max()
        .unwrap_or(0)
        .max(FOUR_GIB)
}

/// Address windows where device MMIO regions may be placed.
pub const MMIO_WINDOWS: [(u64, u64); 2] = [(LOW_RAM_END, HIMEM_START), (MMIO_GAP_START, IOAPIC_START)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_machine_has_low_and_mid_ram() {
        let r = ram_regions(256 << 20);
        assert_eq!(
            r,
            vec![
                (GuestAddress(0), LOW_RAM_END),
                (GuestAddress(HIMEM_START), (256 << 20) - HIMEM_START)
            ]
        );
        assert_eq!(mapped_top(256 << 20), FOUR_GIB);
    }

    #[test]
    fn big_machine_spills_above_four_gib() {
        let r = ram_regions(4 << 30);
        assert_eq!(r[2], (GuestAddress(FOUR_GIB), 1 << 30));
        assert_eq!(mapped_top(4 << 30), 5 << 30);
        assert!(mapped_top(MAX_MEMORY_MIB << 20) <= MAX_MAPPED_GIB << 30);
    }
}
