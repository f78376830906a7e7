//! ELF images (ELF64 and ELF32, x86-64 or i386): read, checked against the machine before
//! any VM exists, then loaded.
//!
//! mmiolab reads the headers itself rather than through linux-loader, so that everything a
//! file can get wrong is found before the VM is built and said in plain words (which
//! segment lies where, and where RAM is), and so that ELF32 kernels boot through PVH as
//! they do under QEMU. What is checked:
//!
//! - the identification: ELF magic, 32 or 64 bits, little-endian, an executable (not an
//!   object file), for x86-64 or i386;
//! - the program headers lie inside the file, and there are at most [`MAX_PROGRAM_HEADERS`];
//! - every loadable segment (`PT_LOAD` with a memory size) has its file bytes inside the
//!   file, a file size no larger than its memory size, and lies in one block of guest RAM
//!   at or above [`layout::HIMEM_START`] (below it are mmiolab's boot structures;
//!   docs/firmware.md): not in the MMIO gap, not past the end of RAM;
//! - there is at least one loadable segment;
//! - the entry (`e_entry` for firmware, the PVH note's for a kernel) is inside a loaded
//!   segment.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::files::InputFile;
use crate::layout;

/// Program headers read at most (real images have a handful).
pub const MAX_PROGRAM_HEADERS: u16 = 512;
/// A `PT_NOTE` segment larger than this is not searched for the PVH note.
const MAX_NOTE_BYTES: u64 = 64 << 10;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry point of a PVH kernel.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// One loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address.
    pub paddr: u64,
    /// Where its bytes start in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// Bytes it occupies in memory (the rest is zeroed).
    pub memsz: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.paddr.saturating_add(self.memsz)
    }

    fn contains(&self, addr: u64) -> bool {
        (self.paddr..self.end()).contains(&addr)
    }
}

/// An ELF image's headers, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfImage {
    /// 32 or 64.
    pub bits: u8,
    /// `e_entry`.
    pub entry: u64,
    /// Loadable segments (those with a memory size), in file order.
    pub segments: Vec<Segment>,
    /// The PVH entry note's address, if the image has one.
    pub pvh_entry: Option<u64>,
}

/// Why an ELF image cannot be run on the machine (the messages say it in words, for the
/// user: "cannot load FILE: <this>").
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// No ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// Neither ELFCLASS32 nor ELFCLASS64.
    #[error("unknown ELF class {0} (neither 32- nor 64-bit)")]
    Class(u8),
    /// Shorter than its header.
    #[error("truncated: {len} bytes, shorter than an ELF header ({header})")]
    ShortHeader {
        /// File size.
        len: u64,
        /// Header size of its class.
        header: u64,
    },
    /// ELFDATA2MSB.
    #[error("a big-endian ELF file: x86 code is little-endian")]
    BigEndian,
    /// Not EM_X86_64 or EM_386.
    #[error("built for machine {0} ({name}), not x86-64 or i386", name = machine_name(*.0))]
    Machine(u16),
    /// Not ET_EXEC or ET_DYN.
    #[error("an ELF file of type {0} ({kind}), not an executable: link it first", kind = type_name(*.0))]
    NotExecutable(u16),
    /// `e_phentsize` does not match the class.
    #[error("its program headers are {size} bytes each, not the {want} of ELF{bits}")]
    HeaderSize {
        /// What the file says.
        size: u16,
        /// What the class needs.
        want: u16,
        /// 32 or 64.
        bits: u8,
    },
    /// More than [`MAX_PROGRAM_HEADERS`].
    #[error("{0} program headers, more than the {MAX_PROGRAM_HEADERS} mmiolab reads")]
    TooManyHeaders(u16),
    /// The program header table runs past the end of the file.
    #[error(
        "truncated: its program headers (offset {offset:#x}, {bytes} bytes) run past the end of the file ({len} bytes)"
    )]
    HeadersPastEnd {
        /// `e_phoff`.
        offset: u64,
        /// Size of the table.
        bytes: u64,
        /// File size.
        len: u64,
    },
    /// A loadable segment takes more from the file than it occupies in memory.
    #[error("program header {index}: a file size ({filesz:#x}) larger than its memory size ({memsz:#x})")]
    FileSizeOverMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A loadable segment's bytes run past the end of the file.
    #[error("truncated: program header {index} needs file bytes {start:#x}-{end:#x}, and the file has {len} bytes")]
    SegmentPastEnd {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        start: u64,
        /// `p_offset + p_filesz`.
        end: u64,
        /// File size.
        len: u64,
    },
    /// No loadable segment with a memory size.
    #[error("it has no loadable segment (PT_LOAD with a memory size): nothing to load")]
    NoLoadable,
    /// A segment's address plus its size overflows.
    #[error("loadable segment {index} at {paddr:#x} with {memsz:#x} bytes runs past the end of the address space")]
    Overflow {
        /// Index among the loadable segments.
        index: usize,
        /// Its address.
        paddr: u64,
        /// Its size.
        memsz: u64,
    },
    /// A segment is not where the machine has RAM for it.
    #[error(transparent)]
    Placement(#[from] PlacementError),
    /// The entry point is not in a loaded segment.
    #[error("its entry point {entry:#x} is not inside a loaded segment ({loaded})")]
    EntryOutside {
        /// The entry.
        entry: u64,
        /// The loaded ranges, for the message.
        loaded: String,
    },
    /// Reading or copying the file failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        error: String,
    },
}

/// A range that is not in one block of guest RAM at or above 1 MiB.
#[derive(Debug, thiserror::Error)]
#[error("{what} [{start:#x}-{last:#x}] {}", self.problem())]
pub struct PlacementError {
    /// What lies there ("loadable segment 0").
    pub what: String,
    /// First address.
    pub start: u64,
    /// Last address.
    pub last: u64,
    /// RAM of the machine, in bytes.
    pub mem_bytes: u64,
}

impl PlacementError {
    fn problem(&self) -> String {
        if self.start < layout::HIMEM_START {
            return format!(
                "starts below 1 MiB ({:#x}), where mmiolab keeps its boot structures (docs/firmware.md)",
                layout::HIMEM_START
            );
        }
        let blocks: Vec<String> = layout::ram_regions(self.mem_bytes)
            .iter()
            .map(|(base, size)| format!("{:#x}-{:#x}", base.0, base.0 + size - 1))
            .collect();
        let gap = self.start < layout::FOUR_GIB && self.last >= layout::MMIO_GAP_START;
        format!(
            "is outside guest RAM{}: the machine's {} MiB of RAM are at {}",
            if gap {
                format!(
                    " (it reaches into the MMIO gap {:#x}-{:#x}, where devices live)",
                    layout::MMIO_GAP_START,
                    layout::FOUR_GIB - 1
                )
            } else {
                String::new()
            },
            self.mem_bytes >> 20,
            blocks.join(", ")
        )
    }
}

fn type_name(t: u16) -> &'static str {
    match t {
        1 => "a relocatable object",
        4 => "a core dump",
        _ => "unknown",
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

fn read_at(file: &mut File, offset: u64, len: usize) -> Result<Vec<u8>, ElfError> {
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| ElfError::Io {
            what: format!("cannot read {len} bytes at offset {offset:#x}"),
            error: e.to_string(),
        })?;
    Ok(buf)
}

/// Whether `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

impl ElfImage {
    /// Reads the headers of `input` (already checked to be a regular file of bounded size).
    pub fn read(input: &mut InputFile) -> Result<ElfImage, ElfError> {
        let len = input.len;
        let ident = read_at(&mut input.file, 0, len.min(64) as usize)?;
        if !is_elf(&ident) {
            return Err(ElfError::NotElf);
        }
        let bits = match ident.get(4) {
            Some(1) => 32,
            Some(2) => 64,
            Some(&c) => return Err(ElfError::Class(c)),
            None => return Err(ElfError::ShortHeader { len, header: 52 }),
        };
        let header_size = if bits == 64 { 64 } else { 52 };
        if len < header_size {
            return Err(ElfError::ShortHeader {
                len,
                header: header_size,
            });
        }
        if ident.get(5) != Some(&1) {
            return Err(ElfError::BigEndian);
        }
        let e_type = u16_at(&ident, 16);
        let machine = u16_at(&ident, 18);
        if machine != EM_X86_64 && machine != EM_386 {
            return Err(ElfError::Machine(machine));
        }
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::NotExecutable(e_type));
        }
        let (entry, phoff, phentsize, phnum) = if bits == 64 {
            (
                u64_at(&ident, 24),
                u64_at(&ident, 32),
                u16_at(&ident, 54),
                u16_at(&ident, 56),
            )
        } else {
            (
                u64::from(u32_at(&ident, 24)),
                u64::from(u32_at(&ident, 28)),
                u16_at(&ident, 42),
                u16_at(&ident, 44),
            )
        };
        let want = if bits == 64 { 56 } else { 32 };
        if phnum > 0 && phentsize != want {
            return Err(ElfError::HeaderSize {
                size: phentsize,
                want,
                bits,
            });
        }
        if phnum > MAX_PROGRAM_HEADERS {
            return Err(ElfError::TooManyHeaders(phnum));
        }
        let table = u64::from(phnum) * u64::from(want);
        if phoff.checked_add(table).is_none_or(|end| end > len) {
            return Err(ElfError::HeadersPastEnd {
                offset: phoff,
                bytes: table,
                len,
            });
        }
        let headers = read_at(&mut input.file, phoff, table as usize)?;
        let mut segments = Vec::new();
        let mut notes = Vec::new();
        for i in 0..usize::from(phnum) {
            let h = headers.get(i * usize::from(want)..).unwrap_or_default();
            let (p_type, offset, paddr, filesz, memsz) = if bits == 64 {
                (u32_at(h, 0), u64_at(h, 8), u64_at(h, 24), u64_at(h, 32), u64_at(h, 40))
            } else {
                (
                    u32_at(h, 0),
                    u64::from(u32_at(h, 4)),
                    u64::from(u32_at(h, 12)),
                    u64::from(u32_at(h, 16)),
                    u64::from(u32_at(h, 20)),
                )
            };
            let in_file = offset.checked_add(filesz).is_some_and(|end| end <= len);
            match p_type {
                PT_LOAD if memsz > 0 || filesz > 0 => {
                    if filesz > memsz {
                        return Err(ElfError::FileSizeOverMemSize {
                            index: i,
                            filesz,
                            memsz,
                        });
                    }
                    if !in_file {
                        return Err(ElfError::SegmentPastEnd {
                            index: i,
                            start: offset,
                            end: offset.saturating_add(filesz),
                            len,
                        });
                    }
                    segments.push(Segment {
                        paddr,
                        offset,
                        filesz,
                        memsz,
                    });
                }
                PT_NOTE if in_file && filesz <= MAX_NOTE_BYTES => notes.push((offset, filesz)),
                _ => {}
            }
        }
        let mut pvh_entry = None;
        for (offset, size) in notes {
            let bytes = read_at(&mut input.file, offset, size as usize)?;
            pvh_entry = pvh_entry.or_else(|| pvh_note(&bytes));
        }
        Ok(ElfImage {
            bits,
            entry,
            segments,
            pvh_entry,
        })
    }

    /// Checks the segments against a machine with `mem_bytes` of RAM, and that `entry` (the
    /// address the vCPU will start at) is inside one of them.
    pub fn check(&self, mem_bytes: u64, entry: u64) -> Result<(), ElfError> {
        if self.segments.is_empty() {
            return Err(ElfError::NoLoadable);
        }
        for (i, s) in self.segments.iter().enumerate() {
            let end = s.paddr.checked_add(s.memsz).ok_or(ElfError::Overflow {
                index: i,
                paddr: s.paddr,
                memsz: s.memsz,
            })?;
            check_placement(&format!("loadable segment {i}"), s.paddr, end, mem_bytes)?;
        }
        if !self.segments.iter().any(|s| s.contains(entry)) {
            let loaded: Vec<String> = self
                .segments
                .iter()
                .map(|s| format!("{:#x}-{:#x}", s.paddr, s.end() - 1))
                .collect();
            return Err(ElfError::EntryOutside {
                entry,
                loaded: loaded.join(", "),
            });
        }
        Ok(())
    }

    /// The highest address loaded, plus one.
    pub fn end(&self) -> u64 {
        self.segments.iter().map(Segment::end).max().unwrap_or(0)
    }

    /// Copies the segments of `input` (the file these headers were read from) into `mem`,
    /// zeroing what the file does not fill. `check` must have passed.
    pub fn load(&self, input: &mut InputFile, mem: &GuestMemoryMmap) -> Result<(), ElfError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        for (i, s) in self.segments.iter().enumerate() {
            let io = |what: &str, e: &dyn std::fmt::Display| ElfError::Io {
                what: format!("segment {i}: {what}"),
                error: e.to_string(),
            };
            let count = usize::try_from(s.filesz).map_err(|e| io("too large for this host", &e))?;
            input
                .file
                .seek(SeekFrom::Start(s.offset))
                .map_err(|e| io("cannot seek to it", &e))?;
            mem.read_exact_volatile_from(GuestAddress(s.paddr), &mut input.file, count)
                .map_err(|e| io("cannot copy it into guest RAM (did the file change?)", &e))?;
            let mut at = s.paddr + s.filesz;
            while at < s.end() {
                let n = (s.end() - at).min(ZEROS.len() as u64) as usize;
                mem.write_slice(ZEROS.get(..n).unwrap_or_default(), GuestAddress(at))
                    .map_err(|e| io("cannot zero its end", &e))?;
                at += n as u64;
            }
        }
        Ok(())
    }
}

/// Checks that `[start, end)`, called `what`, lies in one block of guest RAM of a machine
/// with `mem_bytes`, at or above 1 MiB; the error says where it is instead, and where RAM is.
pub fn check_placement(what: &str, start: u64, end: u64, mem_bytes: u64) -> Result<(), PlacementError> {
    let in_ram = layout::ram_regions(mem_bytes)
        .iter()
        .any(|(base, size)| start >= base.0 && end <= base.0 + size);
    if start >= layout::HIMEM_START && in_ram {
        return Ok(());
    }
    Err(PlacementError {
        what: what.to_owned(),
        start,
        last: end.saturating_sub(1).max(start),
        mem_bytes,
    })
}

/// The PVH entry from a `PT_NOTE` segment's notes, if one is the Xen PHYS32_ENTRY note.
fn pvh_note(mut notes: &[u8]) -> Option<u64> {
    let pad = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0) as usize;
        let descsz = u32_at(notes, 4) as usize;
        let kind = u32_at(notes, 8);
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + pad(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name.strip_suffix(b"\0").unwrap_or(name) == b"Xen" {
            return match desc.len() {
                4 => Some(u64::from(u32_at(desc, 0))),
                8.. => Some(u64_at(desc, 0)),
                _ => None,
            };
        }
        notes = notes.get(desc_at + pad(descsz)..)?;
    }
    None
}

fn machine_name(m: u16) -> &'static str {
    match m {
        0 => "none",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC 64",
        40 => "ARM",
        183 => "AArch64",
        243 => "RISC-V",
        _ => "not x86",
    }
}

/// The byte-by-byte payload builders the CLI's reliability tests use: one ELF writer for
/// both (this module's tests use only `elf`).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../../tests/reliability/payload_files.rs"]
mod payload_files;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The ELF images of tests/reliability.rs, built the same way here.
    pub use super::payload_files::elf;

    /// A PT_NOTE body holding the Xen PVH entry note.
    pub fn pvh_note_bytes(entry: u32) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&entry.to_le_bytes());
        n
    }

    fn read(bytes: &[u8]) -> Result<ElfImage, String> {
        read_image(bytes).map_err(|e| e.to_string())
    }

    fn read_image(bytes: &[u8]) -> Result<ElfImage, ElfError> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("mmiolab-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}.elf"));
        std::fs::write(&path, bytes).unwrap();
        let mut input = crate::files::open_input(&path, 1 << 30, "a test file may have").unwrap();
        let r = ElfImage::read(&mut input);
        std::fs::remove_file(&path).unwrap();
        r
    }

    const MIB: u64 = 1 << 20;
    const CODE: &[u8] = &[0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe];

    #[test]
    fn both_classes_read_with_their_pvh_note() {
        let note = pvh_note_bytes(0x10_0000);
        for bits in [32, 64] {
            let mut payload = CODE.to_vec();
            payload.resize(0x10, 0);
            payload.extend_from_slice(&note);
            let bytes = elf(
                bits,
                if bits == 64 { EM_X86_64 } else { EM_386 },
                0x10_0000,
                &[
                    (PT_LOAD, 0x1000, 0x10_0000, 6, 0x2000),
                    (PT_NOTE, 0x1010, 0, note.len() as u64, 0),
                ],
                &payload,
            );
            let image = read(&bytes).unwrap();
            assert_eq!(image.bits, bits);
            assert_eq!(image.pvh_entry, Some(0x10_0000));
            assert_eq!(
                image.segments,
                [Segment {
                    paddr: 0x10_0000,
                    offset: 0x1000,
                    filesz: 6,
                    memsz: 0x2000
                }]
            );
            image.check(64 * MIB, 0x10_0000).unwrap();
        }
    }

    #[test]
    fn bad_headers_are_refused_in_words() {
        let load = [(PT_LOAD, 0x1000, 0x10_0000, 6, 6)];
        let ok = elf(64, EM_X86_64, 0x10_0000, &load, CODE);
        let mut big_endian = ok.clone();
        big_endian[5] = 2;
        let mut object = ok.clone();
        object[16] = 1;
        for (bytes, want) in [
            (b"MZ\x90\x00".to_vec(), "not an ELF file".to_owned()),
            (
                ok[..40].to_vec(),
                "truncated: 40 bytes, shorter than an ELF header (64)".to_owned(),
            ),
            (
                big_endian,
                "a big-endian ELF file: x86 code is little-endian".to_owned(),
            ),
            (
                object,
                "an ELF file of type 1 (a relocatable object), not an executable: link it first".to_owned(),
            ),
            (
                elf(64, 183, 0x10_0000, &load, CODE),
                "built for machine 183 (AArch64), not x86-64 or i386".to_owned(),
            ),
            (
                elf(
                    64,
                    EM_X86_64,
                    0x10_0000,
                    &[(PT_LOAD, 0x1000, 0x10_0000, 0x100, 0x100)],
                    CODE,
                ),
                format!(
                    "truncated: program header 0 needs file bytes 0x1000-0x1100, and the file has {} bytes",
                    0x1006
                ),
            ),
            (
                elf(64, EM_X86_64, 0x10_0000, &[(PT_LOAD, 0x1000, 0x10_0000, 6, 2)], CODE),
                "program header 0: a file size (0x6) larger than its memory size (0x2)".to_owned(),
            ),
        ] {
            assert_eq!(read(&bytes).unwrap_err(), want);
        }
        let mut cut = ok.clone();
        cut.truncate(100);
        assert!(
            read(&cut).unwrap_err().starts_with("truncated: its program headers"),
            "{:?}",
            read(&cut)
        );
    }

    #[test]
    fn segments_are_checked_against_the_machine() {
        let check = |paddr: u64, memsz: u64, entry: u64| {
            read(&elf(64, EM_X86_64, entry, &[(PT_LOAD, 0x1000, paddr, 6, memsz)], CODE))
                .unwrap()
                .check(64 * MIB, entry)
                .map_err(|e| e.to_string())
        };
        check(0x10_0000, 6, 0x10_0000).unwrap();
        assert_eq!(
            check(0x1000, 6, 0x1000).unwrap_err(),
            "loadable segment 0 [0x1000-0x1005] starts below 1 MiB (0x100000), where mmiolab keeps its boot structures (docs/firmware.md)"
        );
        assert_eq!(
            check(0x400_0000, 6, 0x400_0000).unwrap_err(),
            "loadable segment 0 [0x4000000-0x4000005] is outside guest RAM: the machine's 64 MiB of RAM are at 0x0-0x9ffff, 0x100000-0x3ffffff"
        );
        assert!(
            check(0x3ff_f000, 0x2000, 0x3ff_f000)
                .unwrap_err()
                .starts_with("loadable segment 0 [0x3fff000-0x4000fff] is outside guest RAM")
        );
        assert!(
            check(0xd000_0000, 6, 0xd000_0000)
                .unwrap_err()
                .contains("(it reaches into the MMIO gap 0xc0000000-0xffffffff, where devices live)")
        );
        assert_eq!(
            check(0x10_0000, 6, 0x20_0000).unwrap_err(),
            "its entry point 0x200000 is not inside a loaded segment (0x100000-0x100005)"
        );
        let none = read(&elf(64, EM_X86_64, 0x10_0000, &[(PT_NOTE, 0x1000, 0, 6, 0)], CODE)).unwrap();
        assert_eq!(
            none.check(64 * MIB, 0x10_0000).unwrap_err().to_string(),
            "it has no loadable segment (PT_LOAD with a memory size): nothing to load"
        );
    }
}
