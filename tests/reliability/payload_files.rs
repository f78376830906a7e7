//! Payload files for tests/reliability.rs, made byte by byte: small ELF images (both
//! classes, with or without the PVH note) and bzImage boot headers.

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// `mov al, 7; out 0xf4, al; jmp .`: exits with status 7, in 32- and in 64-bit mode.
pub const EXIT7: [u8; 6] = [0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe];

/// A small ELF: class `bits`, `machine`, `entry`, program headers (type, file offset,
/// physical address, file size, memory size); `payload` starts at file offset 0x1000.
pub fn elf(bits: u8, machine: u16, entry: u64, phdrs: &[(u32, u64, u64, u64, u64)], payload: &[u8]) -> Vec<u8> {
    let (eh, ph) = if bits == 64 { (64usize, 56usize) } else { (52, 32) };
    let mut f = vec![0u8; 0x1000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = if bits == 64 { 2 } else { 1 };
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&machine.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    let n = phdrs.len() as u16;
    let mut put = |at: usize, bytes: &[u8]| f[at..at + bytes.len()].copy_from_slice(bytes);
    if bits == 64 {
        put(24, &entry.to_le_bytes());
        put(32, &(eh as u64).to_le_bytes());
        put(52, &(eh as u16).to_le_bytes());
        put(54, &(ph as u16).to_le_bytes());
        put(56, &n.to_le_bytes());
    } else {
        put(24, &(entry as u32).to_le_bytes());
        put(28, &(eh as u32).to_le_bytes());
        put(40, &(eh as u16).to_le_bytes());
        put(42, &(ph as u16).to_le_bytes());
        put(44, &n.to_le_bytes());
    }
    for (i, &(t, off, pa, fs, ms)) in phdrs.iter().enumerate() {
        let at = eh + i * ph;
        put(at, &t.to_le_bytes());
        if bits == 64 {
            put(at + 8, &off.to_le_bytes());
            put(at + 16, &pa.to_le_bytes());
            put(at + 24, &pa.to_le_bytes());
            put(at + 32, &fs.to_le_bytes());
            put(at + 40, &ms.to_le_bytes());
        } else {
            put(at + 4, &(off as u32).to_le_bytes());
            put(at + 8, &(pa as u32).to_le_bytes());
            put(at + 12, &(pa as u32).to_le_bytes());
            put(at + 16, &(fs as u32).to_le_bytes());
            put(at + 20, &(ms as u32).to_le_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// An x86 PVH kernel that only exits with status 7: one segment at 1 MiB holding EXIT7,
/// and the Xen PHYS32_ENTRY note pointing at `entry`.
pub fn pvh_elf(bits: u8, entry: u32) -> Vec<u8> {
    let mut payload = EXIT7.to_vec();
    payload.resize(0x10, 0);
    let note_at = 0x1000 + payload.len() as u64;
    payload.extend_from_slice(&4u32.to_le_bytes()); // namesz
    payload.extend_from_slice(&4u32.to_le_bytes()); // descsz
    payload.extend_from_slice(&18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    payload.extend_from_slice(b"Xen\0");
    payload.extend_from_slice(&entry.to_le_bytes());
    let machine = if bits == 64 { 62 } else { 3 };
    elf(
        bits,
        machine,
        0x10_0000,
        &[(PT_LOAD, 0x1000, 0x10_0000, 6, 0x1000), (PT_NOTE, note_at, 0, 20, 0)],
        &payload,
    )
}

/// A bzImage header with the fields mmiolab checks: 64-bit entry, loaded high, protocol
/// 2.15, `init_size`; one setup sector, then `kernel_bytes` of "kernel".
pub fn bzimage(init_size: u32, kernel_bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; 1024 + kernel_bytes];
    b[0x1f1] = 1;
    b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    b[0x211] = 1;
    b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
    b[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes());
    b[0x236..0x238].copy_from_slice(&1u16.to_le_bytes());
    b[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
    b
}
