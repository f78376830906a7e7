//! Bare-metal programs: an ELF (64- or 32-bit container) or a flat binary, entered in
//! 64-bit long mode.
//!
//! The entry contract (docs/firmware.md): identity paging over RAM and the 32-bit MMIO
//! gap (2 MiB pages), CS = 0x10 (64-bit code), DS/ES/SS/FS/GS = 0x18 (flat data), no IDT,
//! RFLAGS = 0x2 (interrupts off), RSP = 0x9f000. The image must load at or above 1 MiB,
//! inside RAM; that is checked, with the rest of the image, before any VM exists
//! ([`Firmware::prepare`]).

use std::path::Path;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::elf::{ElfImage, check_placement};
use super::{EntryMode, EntryRegs};
use crate::error::{Error, Result};
use crate::files::{InputFile, open_input};
use crate::layout;

/// A firmware image, read and checked against the machine, ready to load.
#[derive(Debug)]
pub struct Firmware {
    input: InputFile,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Elf(ElfImage),
    Flat { addr: u64 },
}

fn load_err(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Load {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl Firmware {
    /// Opens `path` (flat at `load_addr` when given, else ELF) and checks it against a
    /// machine with `mem_bytes` of RAM: it must be a regular file no larger than RAM, and
    /// every byte it loads must land in RAM at or above 1 MiB, its entry inside what it loads.
    pub fn prepare(path: &Path, load_addr: Option<u64>, mem_bytes: u64) -> Result<Firmware> {
        let mut input = open_input(path, mem_bytes, "of RAM the machine has").map_err(|e| Error::Input(Box::new(e)))?;
        let kind = match load_addr {
            Some(addr) => {
                if input.len == 0 {
                    return Err(load_err(path, "the file is empty: nothing to run".to_owned()));
                }
                let end = addr
                    .checked_add(input.len)
                    .ok_or_else(|| load_err(path, format!("{} bytes at {addr:#x} overflow", input.len)))?;
                // A flat image is one segment starting at its load address.
                check_placement(
                    &format!("its {} bytes at the load address", input.len),
                    addr,
                    end,
                    mem_bytes,
                )
                .map_err(|r| load_err(path, r))?;
                Kind::Flat { addr }
            }
            None => {
                let image = ElfImage::read(&mut input).map_err(|r| load_err(path, r))?;
                image.check(mem_bytes, image.entry).map_err(|r| load_err(path, r))?;
                Kind::Elf(image)
            }
        };
        Ok(Firmware { input, kind })
    }

    /// Copies the image into `mem` and returns how to enter it.
    pub fn load(mut self, mem: &GuestMemoryMmap, mem_bytes: u64) -> Result<(EntryMode, EntryRegs)> {
        let path = self.input.path.clone();
        let rip = match &self.kind {
            Kind::Flat { addr } => {
                let count = usize::try_from(self.input.len)
                    .map_err(|_| load_err(&path, "too large for this host".to_owned()))?;
                use std::io::Seek;
                self.input.file.rewind().map_err(|e| load_err(&path, e.to_string()))?;
                vm_memory::Bytes::read_exact_volatile_from(mem, GuestAddress(*addr), &mut self.input.file, count)
                    .map_err(|e| {
                        load_err(
                            &path,
                            format!("cannot copy it into guest RAM (did the file change?): {e}"),
                        )
                    })?;
                *addr
            }
            Kind::Elf(image) => {
                image.load(&mut self.input, mem).map_err(|r| load_err(&path, r))?;
                image.entry
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
}
