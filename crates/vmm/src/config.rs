//! The machine description: a TOML file, read with serde, checked before any VM exists.
//!
//! ```toml
//! [machine]
//! memory_mib = 256
//! vcpus = 1
//! firmware = "demo.elf"        # or kernel = "bzImage", initrd = ..., cmdline = ...
//!
//! [[bus]]
//! name = "platform"
//! mmio = { base = 0xd0000000, size = 0x100000 }
//!
//! [[device]]
//! name = "testdev"
//! model = "regfile"
//! bus = "platform"
//! compatible = "mmiolab,testdev"
//! irq = 5
//! mmio = [{ base = 0xd0001000, size = 0x1000, windows = [{ name = "regs", offset = 0, size = 0x10 }] }]
//! ```
//!
//! Relative paths are relative to the file's directory.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::layout;

/// A machine description, as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// Memory, vCPUs and what to boot.
    #[serde(default)]
    pub machine: MachineSection,
    /// Bus windows that group devices.
    #[serde(default, rename = "bus")]
    pub buses: Vec<BusConfig>,
    /// Emulated devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    /// The file this came from, for messages and relative paths.
    #[serde(skip)]
    pub source: PathBuf,
}

/// The `[machine]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// Guest RAM in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Number of vCPUs.
    #[serde(default = "default_vcpus")]
    pub vcpus: u8,
    /// A bare-metal program: ELF64, or a flat binary when `load_addr` is set.
    pub firmware: Option<PathBuf>,
    /// Load address of a flat firmware binary (also its entry point).
    pub load_addr: Option<u64>,
    /// A Linux kernel (bzImage) or a PVH ELF.
    pub kernel: Option<PathBuf>,
    /// An initramfs for the kernel.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: Option<String>,
}

fn default_memory_mib() -> u64 {
    256
}

fn default_vcpus() -> u8 {
    1
}

impl Default for MachineSection {
    fn default() -> Self {
        MachineSection {
            memory_mib: default_memory_mib(),
            vcpus: default_vcpus(),
            firmware: None,
            load_addr: None,
            kernel: None,
            initrd: None,
            cmdline: None,
        }
    }
}

/// A `[[bus]]`: a named window that devices can sit in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Unique bus name.
    pub name: String,
    /// Device-tree `compatible` of the bus node ("simple-bus", "isa").
    pub compatible: Option<String>,
    /// Its MMIO window.
    pub mmio: Option<WindowConfig>,
    /// Its I/O-port window.
    pub pio: Option<WindowConfig>,
}

/// A bus window.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// First address.
    pub base: u64,
    /// Size in bytes (ports).
    pub size: u64,
}

/// What a device does; each is a model in `mmiolab-devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceModel {
    /// Register file: ID, SIZE, DOORBELL, then plain storage.
    Regfile,
    /// Sequence register: each read returns the next count.
    Counter,
}

/// A `[[device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique device name.
    pub name: String,
    /// Its model.
    pub model: DeviceModel,
    /// The bus it sits on (default: the top of each address space).
    pub bus: Option<String>,
    /// Device-tree `compatible`; when set the device gets a DT node for a Linux guest.
    pub compatible: Option<String>,
    /// IOAPIC pin (GSI) it raises.
    pub irq: Option<u32>,
    /// Its MMIO regions.
    #[serde(default)]
    pub mmio: Vec<RegionConfig>,
    /// Its I/O-port regions.
    #[serde(default)]
    pub pio: Vec<RegionConfig>,
}

/// One region of a device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// First address.
    pub base: u64,
    /// Size in bytes (ports).
    pub size: u64,
    /// Named parts of the region, shown in the tree.
    #[serde(default)]
    pub windows: Vec<SubWindowConfig>,
}

/// A named part of a device region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubWindowConfig {
    /// Its name.
    pub name: String,
    /// Offset from the region's base.
    pub offset: u64,
    /// Size.
    pub size: u64,
}

/// A machine description that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The key path inside it (`device[1].mmio[0]`), empty for the whole file.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

/// Highest IOAPIC pin (the in-kernel IOAPIC has 24).
pub const MAX_IRQ: u32 = 23;
/// Pins the built-in devices use: the PIT/PIC cascade and timer (0, 2), COM1 (4).
pub const RESERVED_IRQS: [u32; 3] = [0, 2, 4];

impl MachineConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<MachineConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        MachineConfig::parse(&text, path)
    }

    /// Parses and checks `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<MachineConfig, ConfigError> {
        let mut config: MachineConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        config.source = path.to_owned();
        config.check()?;
        Ok(config)
    }

    /// An error about `key` in this file.
    pub fn error(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.source.clone(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// `path` resolved against the directory of the file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.source.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.machine.memory_mib << 20
    }

    /// Checks everything that does not need the bus tree (the tree checks overlaps,
    /// nesting and sizes when the platform is built). Run again after changing fields.
    pub fn check(&self) -> Result<(), ConfigError> {
        let m = &self.machine;
        if !(16..=layout::MAX_MEMORY_MIB).contains(&m.memory_mib) {
            return Err(self.error(
                "machine.memory_mib",
                format!("{} MiB is outside 16..={}", m.memory_mib, layout::MAX_MEMORY_MIB),
            ));
        }
        if m.vcpus == 0 {
            return Err(self.error("machine.vcpus", "a machine needs at least one vCPU"));
        }
        if m.firmware.is_some() && m.kernel.is_some() {
            return Err(self.error("machine", "give either firmware or kernel, not both"));
        }
        if m.load_addr.is_some() && m.firmware.is_none() {
            return Err(self.error("machine.load_addr", "only applies to a flat firmware binary"));
        }
        if m.firmware.is_some() && (m.initrd.is_some() || m.cmdline.is_some()) {
            return Err(self.error("machine", "initrd and cmdline apply to a kernel, not to firmware"));
        }
        let mut names = HashSet::new();
        for (i, bus) in self.buses.iter().enumerate() {
            let key = format!("bus[{i}]");
            if !names.insert(bus.name.as_str()) {
                return Err(self.error(key, format!("name `{}` is used twice", bus.name)));
            }
            if bus.mmio.is_none() && bus.pio.is_none() {
                return Err(self.error(key, "a bus needs an mmio or a pio window"));
            }
            if let Some(w) = &bus.mmio {
                self.check_mmio_placement(&format!("{key}.mmio"), w.base, w.size)?;
            }
        }
        let mut irqs = HashSet::new();
        for (i, dev) in self.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            if !names.insert(dev.name.as_str()) {
                return Err(self.error(key, format!("name `{}` is used twice", dev.name)));
            }
            if let Some(bus) = &dev.bus
                && !self.buses.iter().any(|b| &b.name == bus)
            {
                return Err(self.error(format!("{key}.bus"), format!("no bus named `{bus}`")));
            }
            if dev.mmio.len() + dev.pio.len() != 1 {
                return Err(self.error(
                    key,
                    format!("model {:?} takes exactly one mmio or pio region", dev.model),
                ));
            }
            for (j, r) in dev.mmio.iter().enumerate() {
                self.check_mmio_placement(&format!("{key}.mmio[{j}]"), r.base, r.size)?;
            }
            if let Some(irq) = dev.irq {
                let key = format!("{key}.irq");
                if irq > MAX_IRQ {
                    return Err(self.error(key, format!("{irq} is not an IOAPIC pin (0..={MAX_IRQ})")));
                }
                if RESERVED_IRQS.contains(&irq) {
                    return Err(self.error(key, format!("pin {irq} is used by a built-in device")));
                }
                if !irqs.insert(irq) {
                    return Err(self.error(key, format!("pin {irq} is used by another device")));
                }
            }
        }
        Ok(())
    }

    fn check_mmio_placement(&self, key: &str, base: u64, size: u64) -> Result<(), ConfigError> {
        if size == 0 {
            return Err(self.error(key, "size 0: a region needs at least one byte"));
        }
        let end = base.checked_add(size);
        let inside = layout::MMIO_WINDOWS
            .iter()
            .any(|&(lo, hi)| base >= lo && end.is_some_and(|e| e <= hi));
        if inside {
            return Ok(());
        }
        let holes: Vec<String> = layout::MMIO_WINDOWS
            .iter()
            .map(|(lo, hi)| format!("{lo:#x}-{:#x}", hi - 1))
            .collect();
        Err(self.error(
            key,
            format!(
                "region {base:#x}+{size:#x} is not inside an MMIO hole ({}); RAM and the APICs live elsewhere",
                holes.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MachineConfig, ConfigError> {
        MachineConfig::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn defaults_and_a_device() {
        let c = parse("[[device]]\nname = \"r\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n")
            .unwrap();
        assert_eq!(c.machine.memory_mib, 256);
        assert_eq!(c.machine.vcpus, 1);
        assert_eq!(c.devices[0].model, DeviceModel::Regfile);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("[machine]\nmemory = 3\n").unwrap_err().to_string();
        assert!(e.starts_with("m.toml: "), "{e}");
        assert!(e.contains("unknown field `memory`"), "{e}");
    }

    #[test]
    fn region_outside_the_holes_is_refused() {
        let e = parse("[[device]]\nname = \"r\"\nmodel = \"regfile\"\nmmio = [{ base = 0x1000, size = 0x1000 }]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.toml: device[0].mmio[0]: region 0x1000+0x1000 is not inside an MMIO hole"),
            "{e}"
        );
    }

    #[test]
    fn zero_length_region_is_refused() {
        let e = parse("[[device]]\nname = \"r\"\nmodel = \"regfile\"\nmmio = [{ base = 0xd0000000, size = 0 }]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "m.toml: device[0].mmio[0]: size 0: a region needs at least one byte");
    }

    #[test]
    fn bad_irqs_and_names_are_refused() {
        let dev = |name: &str, irq: u32, base: u64| {
            format!(
                "[[device]]\nname = \"{name}\"\nmodel = \"regfile\"\nirq = {irq}\nmmio = [{{ base = {base}, size = 16 }}]\n"
            )
        };
        let e = parse(&dev("a", 4, 0xd000_0000)).unwrap_err().to_string();
        assert!(e.contains("device[0].irq: pin 4 is used by a built-in device"), "{e}");
        let e = parse(&dev("a", 30, 0xd000_0000)).unwrap_err().to_string();
        assert!(e.contains("is not an IOAPIC pin"), "{e}");
        let two = dev("a", 5, 0xd000_0000) + &dev("a", 6, 0xd000_1000);
        assert!(
            parse(&two)
                .unwrap_err()
                .to_string()
                .contains("device[1]: name `a` is used twice")
        );
        let shared = dev("a", 5, 0xd000_0000) + &dev("b", 5, 0xd000_1000);
        assert!(
            parse(&shared)
                .unwrap_err()
                .to_string()
                .contains("device[1].irq: pin 5 is used by another device")
        );
    }

    #[test]
    fn machine_section_is_checked() {
        assert!(
            parse("[machine]\nmemory_mib = 1\n")
                .unwrap_err()
                .to_string()
                .contains("machine.memory_mib")
        );
        assert!(
            parse("[machine]\nvcpus = 0\n")
                .unwrap_err()
                .to_string()
                .contains("machine.vcpus")
        );
        assert!(parse("[machine]\nfirmware = \"a\"\nkernel = \"b\"\n").is_err());
        assert!(parse("[machine]\nload_addr = 0x100000\n").is_err());
        let e = parse("[[device]]\nname = \"r\"\nmodel = \"fifo\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `fifo`"), "{e}");
        let e = parse(
            "[[device]]\nname = \"r\"\nmodel = \"regfile\"\nbus = \"nope\"\nmmio = [{ base = 0xd0000000, size = 1 }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("device[0].bus: no bus named `nope`"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let c = MachineConfig::parse("[machine]\nfirmware = \"fw.elf\"\n", Path::new("/etc/m/x.toml")).unwrap();
        assert_eq!(
            c.resolve(c.machine.firmware.as_ref().unwrap()),
            Path::new("/etc/m/fw.elf")
        );
    }
}
