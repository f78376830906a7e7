//! The six access kinds the payload (`firmware/asm/pvh_bench.S`) can repeat, and the
//! command line that selects one.

use std::fmt;

use serde::Serialize;

/// What one guest instruction in the loop does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// `outb %al, %dx`.
    PioWrite,
    /// `movl %eax, (%edi)`.
    MmioWrite,
    /// `movl (%edi), %eax`.
    MmioRead,
}

/// Where the accesses go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A register file in mmiolab (`tests/machines/bench.toml`); a do-nothing device model
    /// in QEMU microvm.
    Device,
    /// An address nothing decodes, in either VMM.
    Unmapped,
}

/// One access kind: a letter on the payload's command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The payload's command-line letter.
    pub code: char,
    /// The instruction.
    pub access: Access,
    /// Its target.
    pub target: Target,
    /// Port or physical address.
    pub address: u64,
}

/// Port of the device target (mmiolab: `bench-port` storage offset 0x10; QEMU: fw_cfg data).
pub const PORT_DEVICE: u64 = 0x510;
/// A port nothing decodes.
pub const PORT_UNMAPPED: u64 = 0x200;
/// MMIO address of the device target (mmiolab: `bench-mmio` storage offset 0x10; QEMU: the
/// first virtio-mmio transport, offset 0x10).
pub const MMIO_DEVICE: u64 = 0xfeb0_0010;
/// An MMIO address nothing decodes.
pub const MMIO_UNMAPPED: u64 = 0xd000_0000;

/// Every kind, in report order.
pub const KINDS: [Kind; 6] = [
    Kind {
        code: 'p',
        access: Access::PioWrite,
        target: Target::Device,
        address: PORT_DEVICE,
    },
    Kind {
        code: 'P',
        access: Access::PioWrite,
        target: Target::Unmapped,
        address: PORT_UNMAPPED,
    },
    Kind {
        code: 'w',
        access: Access::MmioWrite,
        target: Target::Device,
        address: MMIO_DEVICE,
    },
    Kind {
        code: 'W',
        access: Access::MmioWrite,
        target: Target::Unmapped,
        address: MMIO_UNMAPPED,
    },
    Kind {
        code: 'r',
        access: Access::MmioRead,
        target: Target::Device,
        address: MMIO_DEVICE,
    },
    Kind {
        code: 'R',
        access: Access::MmioRead,
        target: Target::Unmapped,
        address: MMIO_UNMAPPED,
    },
];

impl Kind {
    /// `pio-write/device`, `mmio-read/unmapped`, ...
    pub fn id(&self) -> String {
        let access = match self.access {
            Access::PioWrite => "pio-write",
            Access::MmioWrite => "mmio-write",
            Access::MmioRead => "mmio-read",
        };
        let target = match self.target {
            Target::Device => "device",
            Target::Unmapped => "unmapped",
        };
        format!("{access}/{target}")
    }

    /// The kind named `s`: its id (`mmio-write/device`) or its payload letter (`w`).
    pub fn parse(s: &str) -> Option<Kind> {
        KINDS
            .iter()
            .copied()
            .find(|k| k.id() == s || (s.len() == 1 && s.starts_with(k.code)))
    }

    /// The payload's command line for `n` accesses. The count is padded to ten digits so
    /// the guest parses the same number of characters whatever `n` is.
    pub fn cmdline(&self, n: u64) -> String {
        format!("{} {n:010}", self.code)
    }

    /// What each VMM has at the target, for the report.
    pub fn what_answers(&self) -> &'static str {
        match (self.access, self.target) {
            (Access::PioWrite, Target::Device) => {
                "mmiolab: regfile bench-port @0x500 offset 0x10; QEMU: fw_cfg data port"
            }
            (_, Target::Device) => {
                "mmiolab: regfile bench-mmio @0xfeb00000 offset 0x10; QEMU: empty virtio-mmio transport"
            }
            (_, Target::Unmapped) => "nothing, in either VMM",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.access {
            Access::PioWrite => "port write (outb) to port",
            Access::MmioWrite => "MMIO write (movl) to",
            Access::MmioRead => "MMIO read (movl) from",
        };
        write!(f, "{what} {:#x}", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_letters_round_trip() {
        for k in KINDS {
            assert_eq!(Kind::parse(&k.id()), Some(k));
            assert_eq!(Kind::parse(&k.code.to_string()), Some(k));
        }
        assert_eq!(Kind::parse("x"), None);
        assert_eq!(KINDS[2].cmdline(20_000), "w 0000020000");
        assert_eq!(KINDS[0].cmdline(0).len(), KINDS[0].cmdline(9_999_999_999).len());
    }
}
