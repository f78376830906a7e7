//! Just enough ELF for the raw loop: the `PT_LOAD` segments (placed at their physical
//! addresses) and the PVH entry note, from an ELF32 or an ELF64 file.
//!
//! The PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`) is read as Xen, QEMU and linux-loader read it:
//! name `"Xen\0"`, type 18, descriptor holding the 32-bit physical entry address (4 bytes,
//! or 8 in an ELF64 file as Linux writes it; the low 32 bits count).

use anyhow::{Context, Result, bail, ensure};

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// A loadable segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address.
    pub paddr: u64,
    /// File bytes.
    pub data: Vec<u8>,
    /// Size in memory (the rest is zeros).
    pub memsz: u64,
}

/// What a loader needs from the file.
#[derive(Debug)]
pub struct Image {
    /// Segments to load.
    pub segments: Vec<Segment>,
    /// The PVH entry point, if the file has the note.
    pub pvh_entry: Option<u32>,
}

fn bytes<const N: usize>(b: &[u8], at: u64) -> Result<[u8; N]> {
    let at = usize::try_from(at)?;
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .with_context(|| format!("truncated ELF: {N} bytes at {at:#x}"))
}

fn u16_at(b: &[u8], at: u64) -> Result<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: u64) -> Result<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: u64) -> Result<u64> {
    bytes(b, at).map(u64::from_le_bytes)
}

/// Parses an x86 ELF file.
pub fn parse(file: &[u8]) -> Result<Image> {
    ensure!(file.starts_with(b"\x7fELF"), "not an ELF file");
    ensure!(file.get(5) == Some(&1), "not a little-endian ELF file");
    let elf64 = match file.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => bail!("unknown ELF class"),
    };
    let (phoff, phentsize, phnum) = if elf64 {
        (u64_at(file, 32)?, u16_at(file, 54)?, u16_at(file, 56)?)
    } else {
        (u32_at(file, 28)?.into(), u16_at(file, 42)?, u16_at(file, 44)?)
    };
    ensure!(
        u64::from(phentsize) == if elf64 { 56 } else { 32 },
        "bad program header size {phentsize}"
    );
    let mut segments = Vec::new();
    let mut pvh_entry = None;
    for i in 0..u64::from(phnum) {
        let ph = phoff + i * u64::from(phentsize);
        let p_type = u32_at(file, ph)?;
        let (offset, paddr, filesz, memsz, align) = if elf64 {
            (
                u64_at(file, ph + 8)?,
                u64_at(file, ph + 24)?,
                u64_at(file, ph + 32)?,
                u64_at(file, ph + 40)?,
                u64_at(file, ph + 48)?,
            )
        } else {
            (
                u32_at(file, ph + 4)?.into(),
                u32_at(file, ph + 12)?.into(),
                u32_at(file, ph + 16)?.into(),
                u32_at(file, ph + 20)?.into(),
                u32_at(file, ph + 28)?.into(),
            )
        };
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(o, n)| file.get(o..o.checked_add(n)?))
            .with_context(|| format!("program header {i} runs past the end of the file"))?;
        match p_type {
            PT_LOAD if memsz > 0 => segments.push(Segment {
                paddr,
                data: data.to_vec(),
                memsz,
            }),
            PT_NOTE if pvh_entry.is_none() => pvh_entry = pvh_note(data, align)?,
            _ => {}
        }
    }
    Ok(Image { segments, pvh_entry })
}

/// The PVH entry in a note segment, if there is one.
fn pvh_note(notes: &[u8], align: u64) -> Result<Option<u32>> {
    let align = if align == 8 { 8 } else { 4 };
    let mut at = 0u64;
    while at + 12 <= notes.len() as u64 {
        let namesz = u64::from(u32_at(notes, at)?);
        let descsz = u64::from(u32_at(notes, at + 4)?);
        let n_type = u32_at(notes, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at + namesz.next_multiple_of(align);
        if n_type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && bytes::<4>(notes, name_at)? == *b"Xen\0" {
            ensure!(descsz >= 4, "PVH note with a {descsz}-byte descriptor");
            return Ok(Some(u32_at(notes, desc_at)?));
        }
        at = desc_at + descsz.next_multiple_of(align);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_payload_has_a_pvh_entry() {
        let path = mmiolab_firmware::elf("pvh_bench").unwrap();
        let image = parse(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(image.pvh_entry, Some(0x10_0000));
        assert_eq!(image.segments[0].paddr, 0x10_0000);
    }

    #[test]
    fn notes_are_skipped_until_the_xen_one() {
        let mut notes = Vec::new();
        // A GNU note first (name "GNU\0", 4-byte descriptor, type 3).
        for w in [4u32, 4, 3] {
            notes.extend(w.to_le_bytes());
        }
        notes.extend(b"GNU\0\x01\x02\x03\x04");
        for w in [4u32, 8, 18] {
            notes.extend(w.to_le_bytes());
        }
        notes.extend(b"Xen\0");
        notes.extend(0x12_3456u64.to_le_bytes());
        assert_eq!(pvh_note(&notes, 4).unwrap(), Some(0x12_3456));
        assert_eq!(pvh_note(&notes[..20], 4).unwrap(), None);
        assert!(parse(b"\x7fELF\x03").is_err());
    }
}
