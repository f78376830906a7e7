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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::files::MAX_MACHINE_FILE;
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
    /// Extra device-tree nodes at the root (`[[dt_node]]`), e.g. consumers of devices.
    #[serde(default, rename = "dt_node")]
    pub dt_nodes: Vec<DtNodeConfig>,
    /// The file this came from, for messages and relative paths.
    #[serde(skip)]
    pub source: PathBuf,
    /// Keys set from the command line, with the option that set them (`machine.memory_mib`
    /// → `--memory 1`): an error about such a key blames the option, not the file.
    #[serde(skip)]
    pub overrides: std::collections::BTreeMap<String, String>,
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

/// What a device does: a built-in Rust model, a bundled description, or a description file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceModel {
    /// Register file: ID, SIZE, DOORBELL, then plain storage (built in).
    Regfile,
    /// Sequence register: each read returns the next count (built in).
    Counter,
    /// A description bundled with mmiolab (`model = "uart16550"`).
    Bundled(String),
    /// A description file (`description = "dev.toml"`, resolved against the machine file).
    File(PathBuf),
    /// A peripheral of a CMSIS-SVD file (`svd = { file, peripheral }`), with the
    /// `description` file, if any, as an overlay that modifies and adds to it.
    Svd {
        /// The SVD file.
        file: PathBuf,
        /// The peripheral's name in it.
        peripheral: String,
        /// The overlay.
        overlay: Option<PathBuf>,
    },
}

/// `svd = { file = "stm32f4.svd", peripheral = "USART1" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvdSource {
    /// The SVD file (relative to the machine file).
    pub file: PathBuf,
    /// The peripheral to take.
    pub peripheral: String,
}

impl DeviceConfig {
    /// The device's model, from `model` or `description` (checked: exactly one is given).
    pub fn kind(&self) -> DeviceModel {
        if let Some(svd) = &self.svd {
            return DeviceModel::Svd {
                file: svd.file.clone(),
                peripheral: svd.peripheral.clone(),
                overlay: self.description.clone(),
            };
        }
        match (&self.model, &self.description) {
            (_, Some(file)) => DeviceModel::File(file.clone()),
            (Some(m), None) if m == "regfile" => DeviceModel::Regfile,
            (Some(m), None) if m == "counter" => DeviceModel::Counter,
            (Some(m), None) => DeviceModel::Bundled(m.clone()),
            (None, None) => DeviceModel::Regfile,
        }
    }

    /// Its IOAPIC pins, by interrupt line (empty: no interrupt).
    pub fn irqs(&self) -> &[u32] {
        self.irq.as_ref().map_or(&[], |i| i.0.as_slice())
    }

    /// The host sides of its FIFOs: (FIFO name, direction, endpoint), checked.
    pub fn fifo_hosts(&self) -> Result<Vec<FifoSide>, (String, String)> {
        let mut out = Vec::new();
        for (name, host) in &self.fifo {
            let (dir, text) = match (&host.from, &host.to) {
                (Some(f), None) => (FifoDirection::From, f),
                (None, Some(t)) => (FifoDirection::To, t),
                _ => return Err((name.clone(), "give `from` or `to` (one direction per FIFO)".to_owned())),
            };
            let endpoint = FifoHost::parse(text, dir).map_err(|e| (name.clone(), e))?;
            out.push((name.clone(), dir, endpoint));
        }
        Ok(out)
    }

    /// Whether the model is a description (bundled or a file).
    pub fn is_described(&self) -> bool {
        matches!(
            self.kind(),
            DeviceModel::Bundled(_) | DeviceModel::File(_) | DeviceModel::Svd { .. }
        )
    }
}

/// The host side of one FIFO of a described device (`fifo = { rx = { from = "stdin" } }`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FifoHostConfig {
    /// Where the FIFO's elements come from: `stdin`, `file:PATH` or `unix:PATH`.
    pub from: Option<String>,
    /// Where the FIFO's elements go: `stdout`, `stderr`, `file:PATH` or `unix:PATH`.
    pub to: Option<String>,
}

/// A host endpoint of a FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FifoHost {
    /// mmiolab's standard input (the guest's COM1 then gets no input).
    Stdin,
    /// mmiolab's standard output.
    Stdout,
    /// mmiolab's standard error.
    Stderr,
    /// A file: read whole when the run starts (`from`), or created and written (`to`).
    File(PathBuf),
    /// A listening Unix socket mmiolab connects to; `from` and `to` naming the same path
    /// share one connection.
    Unix(PathBuf),
}

/// One FIFO's host side: (FIFO name, direction, endpoint).
pub type FifoSide = (String, FifoDirection, FifoHost);

/// Which way a FIFO's host side carries data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoDirection {
    /// Host to guest: the host pushes, the guest pops.
    From,
    /// Guest to host: the guest pushes, the host drains.
    To,
}

impl FifoHost {
    fn parse(s: &str, dir: FifoDirection) -> Result<FifoHost, String> {
        let host = match (s, dir) {
            ("stdin", FifoDirection::From) => FifoHost::Stdin,
            ("stdout", FifoDirection::To) => FifoHost::Stdout,
            ("stderr", FifoDirection::To) => FifoHost::Stderr,
            _ => match s.split_once(':') {
                Some(("file", p)) if !p.is_empty() => FifoHost::File(PathBuf::from(p)),
                Some(("unix", p)) if !p.is_empty() => FifoHost::Unix(PathBuf::from(p)),
                _ => {
                    return Err(match dir {
                        FifoDirection::From => format!("`{s}`: `from` takes stdin, file:PATH or unix:PATH"),
                        FifoDirection::To => format!("`{s}`: `to` takes stdout, stderr, file:PATH or unix:PATH"),
                    });
                }
            },
        };
        Ok(host)
    }
}

/// A `[[device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique device name.
    pub name: String,
    /// Its model: `regfile` and `counter` are built in; any other name is a bundled
    /// description (`mmiolab models` lists them).
    pub model: Option<String>,
    /// A device description file (TOML, see docs/devices.md), instead of `model`; with
    /// `svd`, an overlay on the SVD peripheral.
    pub description: Option<PathBuf>,
    /// A peripheral of a CMSIS-SVD file as the register map.
    pub svd: Option<SvdSource>,
    /// Scales every register offset of a described device by `1 << reg_shift` (as the
    /// device tree's `reg-shift` says hardware does when registers sit on wider lanes).
    pub reg_shift: Option<u32>,
    /// Host sides of a described device's FIFOs, by FIFO name.
    #[serde(default)]
    pub fifo: std::collections::BTreeMap<String, FifoHostConfig>,
    /// The bus it sits on (default: the top of each address space).
    pub bus: Option<String>,
    /// Device-tree `compatible` (a string or a list); when set the device gets a DT node
    /// for a Linux guest.
    pub compatible: Option<Compatible>,
    /// IOAPIC pins (GSIs) it raises: one (`irq = 5`), or one per interrupt line of a
    /// described device (`irq = [5, 6]`, line 0 first).
    pub irq: Option<OneOrMany<u32>>,
    /// Its MMIO regions.
    #[serde(default)]
    pub mmio: Vec<RegionConfig>,
    /// Its I/O-port regions.
    #[serde(default)]
    pub pio: Vec<RegionConfig>,
    /// More of its device-tree node: `[device.dt]`.
    pub dt: Option<DeviceDtConfig>,
    /// What `--check` lets this device's driver do: `[device.check]`.
    pub check: Option<DeviceCheckConfig>,
}

/// `[device.check]`: rules of the register checker (`mmiolab run --check`, docs/checker.md)
/// that this device's driver may break without failing the run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceCheckConfig {
    /// Rule names (`read-empty-fifo`, `reserved-bits`, ...): their findings are still
    /// reported, marked allowed, and do not change the exit status.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Rules allowed only in the guest test named by the key (the test the guest agent
    /// reports, docs/checker.md): `[device.check.allow_in] my_test = ["write-read-only"]`.
    /// A finding of another test, or of no test, is not allowed by them.
    #[serde(default)]
    pub allow_in: std::collections::BTreeMap<String, Vec<String>>,
    /// Resamples (EOIs) in a row with a level interrupt line still asserted before the rule
    /// `irq-stuck` reports it (default 3).
    pub irq_stuck_after: Option<u32>,
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

/// One value or a list of them, as TOML writes either (`x = 5` or `x = [5, 6]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            One(T),
            Many(Vec<T>),
        }
        match Either::deserialize(deserializer) {
            Ok(Either::One(v)) => Ok(OneOrMany(vec![v])),
            Ok(Either::Many(v)) => Ok(OneOrMany(v)),
            Err(_) => Err(serde::de::Error::custom("expected a value or a list of values")),
        }
    }
}

/// A device's `compatible`: one string, or a list from the most specific to the most
/// general (`["vendor,uart", "ns16550a"]`), in the order the device-tree property lists them.
pub type Compatible = OneOrMany<String>;

/// `[device.dt]`: what a device's device-tree node carries besides the `compatible`, `reg`,
/// `interrupt-parent` and `interrupts` that mmiolab generates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDtConfig {
    /// Windows of the device's region that make up `reg`, in this order, named so in
    /// `reg-names`; empty: `reg` is the whole region and there is no `reg-names`.
    #[serde(default)]
    pub reg_names: Vec<String>,
    /// More properties, typed from their TOML values ([`DtValue::from_toml`]).
    #[serde(default)]
    pub properties: toml::Table,
    /// Child nodes.
    #[serde(default, rename = "child")]
    pub children: Vec<DtNodeConfig>,
}

/// A device-tree node written out in the machine file: a `[[dt_node]]` at the root, or a
/// `child` of a device's node or of another such node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DtNodeConfig {
    /// Node name, `name` or `name@unit-address`.
    pub name: String,
    /// Its properties, typed as a device's.
    #[serde(default)]
    pub properties: toml::Table,
    /// Child nodes.
    #[serde(default, rename = "child")]
    pub children: Vec<DtNodeConfig>,
}

/// A device-tree property value, typed from TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtValue {
    /// No value: a boolean property, present (`true` in the file).
    Empty,
    /// 32-bit cells.
    Cells(Vec<DtCell>),
    /// One string.
    Str(String),
    /// A string list.
    Strs(Vec<String>),
}

/// One cell of a [`DtValue::Cells`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtCell {
    /// A number.
    Num(u32),
    /// The phandle of the device, or `[[dt_node]]`, of this name (`"&name"` in the file).
    Ref(String),
}

/// A device-tree node with typed properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtNode {
    /// Node name.
    pub name: String,
    /// Properties, by name.
    pub properties: Vec<(String, DtValue)>,
    /// Child nodes.
    pub children: Vec<DtNode>,
}

/// A device-tree part of the file that cannot be used: the key below the part's own key
/// (`properties.reg-shift`, `child[1].name`, `[2]`; empty for the part itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtError {
    /// The key below the part's key.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl DtError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> DtError {
        DtError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error one level up, under `prefix` (`child[0]`, `properties.x`).
    fn under(self, prefix: &str) -> DtError {
        let key = if self.key.is_empty() {
            prefix.to_owned()
        } else if self.key.starts_with('[') {
            format!("{prefix}{}", self.key)
        } else {
            format!("{prefix}.{}", self.key)
        };
        DtError { key, ..self }
    }
}

/// Properties no machine-file node may set.
const DT_RESERVED_EVERYWHERE: [(&str, &str); 3] = [
    (
        "phandle",
        "is assigned by mmiolab to the nodes that a `&name` reference points at",
    ),
    (
        "linux,phandle",
        "is assigned by mmiolab to the nodes that a `&name` reference points at",
    ),
    ("name", "is implied by the node's name"),
];

/// Properties mmiolab generates on a device's node, and where each comes from.
const DT_GENERATED_ON_DEVICES: [(&str, &str); 6] = [
    ("compatible", "comes from the device's `compatible` key"),
    (
        "reg",
        "is generated from the device's region; choose windows of it with `reg_names`",
    ),
    ("reg-names", "is generated from `reg_names`"),
    ("interrupts", "is generated from the device's `irq`"),
    ("interrupt-parent", "is generated from the device's `irq`"),
    (
        "interrupts-extended",
        "would override the interrupt generated from the device's `irq`",
    ),
];

/// Why `name` cannot be a property name, if it cannot (Devicetree Specification 2.2.4:
/// 1 to 31 characters of `0-9 a-z A-Z , . _ + ? # -`).
fn dt_property_name_error(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",._+?#-".contains(c);
    if name.is_empty() || name.len() > 31 {
        return Some(format!("`{name}`: a property name has 1 to 31 characters"));
    }
    name.chars()
        .find(|&c| !allowed(c))
        .map(|c| format!("`{name}`: {c:?} is not allowed in a property name (0-9 a-z A-Z , . _ + ? # -)"))
}

/// Why `name` cannot be a node name, if it cannot (Devicetree Specification 2.2.1:
/// `node-name@unit-address`, the node name 1 to 31 characters of `0-9 a-z A-Z , . _ + -`
/// starting with a letter; vm-fdt refuses anything else).
fn dt_node_name_error(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",._+-".contains(c);
    let (base, unit) = match name.split_once('@') {
        Some((base, unit)) => (base, Some(unit)),
        None => (name, None),
    };
    if base.is_empty() || base.len() > 31 {
        return Some(format!("`{name}`: a node name has 1 to 31 characters before any `@`"));
    }
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some(format!("`{name}`: a node name starts with a letter"));
    }
    if let Some(c) = base.chars().find(|&c| !allowed(c)) {
        return Some(format!(
            "`{name}`: {c:?} is not allowed in a node name (0-9 a-z A-Z , . _ + -)"
        ));
    }
    match unit {
        Some("") => Some(format!("`{name}`: a unit address follows the `@`")),
        Some(unit) => unit
            .chars()
            .find(|&c| !allowed(c))
            .map(|c| format!("`{name}`: {c:?} is not allowed in a unit address (0-9 a-z A-Z , . _ + -)")),
        None => None,
    }
}

/// Why `s` cannot be a device-tree string, if it cannot.
fn dt_string_error(s: &str) -> Option<String> {
    s.contains('\0')
        .then(|| "contains a NUL character, which would end the device-tree string".to_owned())
}

impl DtValue {
    /// Types one TOML value; `Ok(None)` for `false`, which leaves the property out.
    ///
    /// An integer is a 32-bit cell, `{ u64 = n }` two cells (high, low), a string `"&name"`
    /// the phandle of the device or `[[dt_node]]` called `name`, any other string a string;
    /// a list of those is cells, or a string list when it holds only plain strings; `true` is
    /// an empty (boolean) property.
    pub fn from_toml(value: &toml::Value) -> Result<Option<DtValue>, DtError> {
        use toml::Value;
        match value {
            Value::Boolean(true) => Ok(Some(DtValue::Empty)),
            Value::Boolean(false) => Ok(None),
            Value::String(s) => match dt_reference(s)? {
                Some(target) => Ok(Some(DtValue::Cells(vec![DtCell::Ref(target)]))),
                None => match dt_string_error(s) {
                    Some(reason) => Err(DtError::new("", reason)),
                    None => Ok(Some(DtValue::Str(s.clone()))),
                },
            },
            Value::Array(items) if items.is_empty() => Err(DtError::new(
                "",
                "an empty list has no device-tree type; write `true` for a property without a value",
            )),
            Value::Array(items) => {
                let plain = |v: &Value| matches!(v, Value::String(s) if !s.starts_with('&'));
                if items.iter().all(plain) {
                    let mut strings = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        if let Value::String(s) = item {
                            if let Some(reason) = dt_string_error(s) {
                                return Err(DtError::new(format!("[{i}]"), reason));
                            }
                            strings.push(s.clone());
                        }
                    }
                    return Ok(Some(DtValue::Strs(strings)));
                }
                let mut cells = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if plain(item) {
                        return Err(DtError::new(
                            format!("[{i}]"),
                            "a string in a list of cells (integers, { u64 = ... }, `&name` references): \
                             a property is either cells or a list of strings",
                        ));
                    }
                    cells.extend(dt_cells(item).map_err(|e| e.under(&format!("[{i}]")))?);
                }
                Ok(Some(DtValue::Cells(cells)))
            }
            other => dt_cells(other).map(|cells| Some(DtValue::Cells(cells))),
        }
    }
}

/// The target of a `"&name"` reference, `None` for a plain string.
fn dt_reference(s: &str) -> Result<Option<String>, DtError> {
    match s.strip_prefix('&') {
        None => Ok(None),
        Some("") => Err(DtError::new(
            "",
            "`&` is followed by the name of a device or dt_node to reference",
        )),
        Some(target) => Ok(Some(target.to_owned())),
    }
}

/// The cells of one value that is not a string list: an integer, `{ u64 = n }` or `"&name"`.
fn dt_cells(value: &toml::Value) -> Result<Vec<DtCell>, DtError> {
    use toml::Value;
    match value {
        Value::Integer(n) => match u32::try_from(*n) {
            Ok(cell) => Ok(vec![DtCell::Num(cell)]),
            Err(_) if *n < 0 => Err(DtError::new("", format!("{n} is negative: cells are unsigned"))),
            Err(_) => Err(DtError::new(
                "",
                format!("{n:#x} does not fit in a 32-bit cell; write {{ u64 = {n:#x} }} for two cells"),
            )),
        },
        Value::Table(t) => match (t.len(), t.get("u64")) {
            (1, Some(Value::Integer(n))) => match u64::try_from(*n) {
                Ok(wide) => Ok(vec![DtCell::Num((wide >> 32) as u32), DtCell::Num(wide as u32)]),
                Err(_) => Err(DtError::new("u64", format!("{n} is negative: cells are unsigned"))),
            },
            _ => Err(DtError::new("", "a table value is { u64 = <integer> }")),
        },
        Value::String(s) => match dt_reference(s)? {
            Some(target) => Ok(vec![DtCell::Ref(target)]),
            None => Err(DtError::new("", "a string is not a cell")),
        },
        Value::Float(_) => Err(DtError::new("", "a float has no device-tree encoding")),
        Value::Datetime(_) => Err(DtError::new("", "a date has no device-tree encoding")),
        Value::Boolean(_) => Err(DtError::new(
            "",
            "a boolean is a whole property (`true`: present, `false`: left out), not a cell",
        )),
        Value::Array(_) => Err(DtError::new("", "a list inside a list; write the cells in one list")),
    }
}

/// Types every property of `table`, sorted by name, leaving out the `false` ones; refuses
/// invalid names and the ones no node may set. Error keys are `properties.<name>...`.
pub fn dt_properties(table: &toml::Table) -> Result<Vec<(String, DtValue)>, DtError> {
    let mut props = Vec::new();
    for (name, value) in table {
        let key = format!("properties.{name}");
        if let Some(reason) = dt_property_name_error(name) {
            return Err(DtError::new(key, reason));
        }
        if let Some((_, why)) = DT_RESERVED_EVERYWHERE.iter().find(|(n, _)| n == name) {
            return Err(DtError::new(key, format!("`{name}` {why}")));
        }
        if let Some(value) = DtValue::from_toml(value).map_err(|e| e.under(&key))? {
            props.push((name.clone(), value));
        }
    }
    // The TOML reader's table order is not the file's; sort so the output does not depend on it.
    props.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(props)
}

/// Types `children` (`child[i]...` in error keys); sibling names must differ.
pub fn dt_children(children: &[DtNodeConfig]) -> Result<Vec<DtNode>, DtError> {
    let mut nodes: Vec<DtNode> = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let key = format!("child[{i}]");
        if nodes.iter().any(|n| n.name == child.name) {
            return Err(DtError::new(
                format!("{key}.name"),
                format!("`{}` is the name of an earlier child of the same node", child.name),
            ));
        }
        nodes.push(child.to_node().map_err(|e| e.under(&key))?);
    }
    Ok(nodes)
}

impl DtNodeConfig {
    /// The typed node; error keys are relative to it (`name`, `properties.x`, `child[1].name`).
    pub fn to_node(&self) -> Result<DtNode, DtError> {
        if let Some(reason) = dt_node_name_error(&self.name) {
            return Err(DtError::new("name", reason));
        }
        Ok(DtNode {
            name: self.name.clone(),
            properties: dt_properties(&self.properties)?,
            children: dt_children(&self.children)?,
        })
    }
}

/// The first `&name` reference in `properties` or below in `children` whose target is not
/// in `targets`: its key (relative to the node) and the name.
fn dt_dangling_reference(
    properties: &[(String, DtValue)],
    children: &[DtNode],
    targets: &HashSet<&str>,
) -> Option<(String, String)> {
    for (name, value) in properties {
        if let DtValue::Cells(cells) = value {
            for cell in cells {
                // No list index in the key: a `{ u64 = n }` makes two cells of one list entry.
                if let DtCell::Ref(target) = cell
                    && !targets.contains(target.as_str())
                {
                    return Some((format!("properties.{name}"), target.clone()));
                }
            }
        }
    }
    children.iter().enumerate().find_map(|(i, child)| {
        dt_dangling_reference(&child.properties, &child.children, targets)
            .map(|(key, target)| (format!("child[{i}].{key}"), target))
    })
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
    /// The command-line option that set the key (`--memory 1`), when it was not the file.
    pub option: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.option, self.key.is_empty()) {
            (Some(option), _) => write!(f, "{option}: {}", self.reason),
            (None, true) => write!(f, "{}: {}", self.file.display(), self.reason),
            (None, false) => write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason),
        }
    }
}

/// Highest IOAPIC pin (the in-kernel IOAPIC has 24).
pub const MAX_IRQ: u32 = 23;
/// Pins the built-in devices use: the PIT/PIC cascade and timer (0, 2), the i8042's
/// keyboard port (1), COM1 (4).
pub const RESERVED_IRQS: [u32; 4] = [0, 1, 2, 4];

impl MachineConfig {
    /// Reads and checks `path`: a regular file of at most [`MAX_MACHINE_FILE`] bytes, UTF-8.
    pub fn load(path: &Path) -> Result<MachineConfig, ConfigError> {
        let whole = |reason: String| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason,
            option: None,
        };
        let bytes = crate::files::read_input(path, MAX_MACHINE_FILE, "a machine file may have")
            .map_err(|e| whole(e.reason()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            whole(format!(
                "not UTF-8 text (byte {} is not part of a UTF-8 character): is it a machine file?",
                e.utf8_error().valid_up_to()
            ))
        })?;
        MachineConfig::parse(&text, path)
    }

    /// Parses and checks `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<MachineConfig, ConfigError> {
        let mut config: MachineConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason: e.to_string().trim_end().to_owned(),
            option: None,
        })?;
        config.source = path.to_owned();
        config.check()?;
        Ok(config)
    }

    /// An error about `key` in this file; blamed on the command-line option that set `key`,
    /// if one did.
    pub fn error(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        let key = key.into();
        ConfigError {
            file: self.source.clone(),
            option: self.overrides.get(&key).cloned(),
            key,
            reason: reason.into(),
        }
    }

    /// Records that `key` (`machine.memory_mib`) was set by command-line `option`
    /// (`--memory 1`), so errors about it name the option.
    pub fn set_override(&mut self, key: &str, option: impl Into<String>) {
        self.overrides.insert(key.to_owned(), option.into());
    }

    /// The files this machine reads, each with what it is ("the machine file", "the
    /// firmware", "the description of device[0]"): an output must be none of them.
    pub fn input_files(&self) -> Vec<(String, PathBuf)> {
        let mut inputs = Vec::new();
        if self.source.is_file() {
            inputs.push(("the machine file".to_owned(), self.source.clone()));
        }
        let m = &self.machine;
        for (what, path) in [
            ("the firmware", &m.firmware),
            ("the kernel", &m.kernel),
            ("the initrd", &m.initrd),
        ] {
            if let Some(p) = path {
                inputs.push((what.to_owned(), self.resolve(p)));
            }
        }
        for (i, dev) in self.devices.iter().enumerate() {
            if let Some(d) = &dev.description {
                inputs.push((format!("the description of device[{i}]"), self.resolve(d)));
            }
            if let Some(svd) = &dev.svd {
                inputs.push((format!("the SVD file of device[{i}]"), self.resolve(&svd.file)));
            }
            for (fifo, host) in &dev.fifo {
                if let Some(FifoHost::File(p)) = host
                    .from
                    .as_deref()
                    .and_then(|f| FifoHost::parse(f, FifoDirection::From).ok())
                {
                    inputs.push((format!("the input file of device[{i}].fifo.{fifo}"), self.resolve(&p)));
                }
            }
        }
        inputs
    }

    /// The files FIFOs of described devices write (`to = "file:PATH"`), each with its key.
    pub fn fifo_output_files(&self) -> Vec<(String, PathBuf)> {
        let mut outputs = Vec::new();
        for (i, dev) in self.devices.iter().enumerate() {
            for (fifo, host) in &dev.fifo {
                if let Some(FifoHost::File(p)) = host
                    .to
                    .as_deref()
                    .and_then(|t| FifoHost::parse(t, FifoDirection::To).ok())
                {
                    outputs.push((format!("the output file of device[{i}].fifo.{fifo}"), self.resolve(&p)));
                }
            }
        }
        outputs
    }

    /// Checks the vCPU count against what this host's KVM can run (`KVM_CAP_MAX_VCPUS`).
    pub fn check_vcpus(&self, kvm_max: usize) -> Result<(), ConfigError> {
        let n = usize::from(self.machine.vcpus);
        if n > kvm_max {
            return Err(self.error(
                "machine.vcpus",
                format!("{n} vCPUs, but this host's KVM runs at most {kvm_max} per VM"),
            ));
        }
        Ok(())
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
        if let Some(why) = m.cmdline.as_deref().and_then(crate::boot::cmdline_error) {
            return Err(self.error("machine.cmdline", why));
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
            if let Some(reason) = region_name_error(&bus.name) {
                return Err(self.error(format!("{key}.name"), reason));
            }
            if let Some(w) = &bus.mmio {
                self.check_mmio_placement(&format!("{key}.mmio"), w.base, w.size)?;
            }
            if let Some(w) = &bus.pio {
                // A window decodes nothing itself: only the devices in it must avoid the
                // in-kernel ports.
                self.check_pio_placement(&format!("{key}.pio"), w.base, w.size, false)?;
            }
        }
        let mut irqs = HashSet::new();
        let bus_names: HashSet<&str> = self.buses.iter().map(|b| b.name.as_str()).collect();
        for (i, dev) in self.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            if !names.insert(dev.name.as_str()) {
                return Err(self.error(key, format!("name `{}` is used twice", dev.name)));
            }
            if let Some(reason) = region_name_error(&dev.name) {
                return Err(self.error(format!("{key}.name"), reason));
            }
            for (space, regions) in [("mmio", &dev.mmio), ("pio", &dev.pio)] {
                for (j, r) in regions.iter().enumerate() {
                    for (k, w) in r.windows.iter().enumerate() {
                        if let Some(reason) = region_name_error(&w.name) {
                            return Err(self.error(format!("{key}.{space}[{j}].windows[{k}].name"), reason));
                        }
                    }
                }
            }
            if let Some(bus) = &dev.bus
                && !bus_names.contains(bus.as_str())
            {
                return Err(self.error(format!("{key}.bus"), format!("no bus named `{bus}`")));
            }
            if dev.check.as_ref().and_then(|c| c.irq_stuck_after) == Some(0) {
                return Err(self.error(
                    format!("{key}.check.irq_stuck_after"),
                    "0: at least one resample must find the line still asserted",
                ));
            }
            let listed = dev.check.iter().flat_map(|c| {
                let always = c.allow.iter().enumerate().map(|(k, r)| (format!("allow[{k}]"), r));
                let in_test = c.allow_in.iter().flat_map(|(test, rules)| {
                    rules
                        .iter()
                        .enumerate()
                        .map(move |(k, r)| (format!("allow_in.{test}[{k}]"), r))
                });
                always.chain(in_test)
            });
            for (at, rule) in listed {
                if rule.parse::<crate::check::Rule>().is_err() {
                    return Err(self.error(
                        format!("{key}.check.{at}"),
                        format!(
                            "unknown rule `{rule}`; the rules are: {}",
                            crate::check::Rule::ALL.map(crate::check::Rule::name).join(", ")
                        ),
                    ));
                }
            }
            if dev.model.is_some() && dev.description.is_some() {
                return Err(self.error(key, "give `model` or `description`, not both"));
            }
            if dev.svd.is_some() && dev.model.is_some() {
                return Err(self.error(
                    key,
                    "give `model` or `svd`, not both (`description` is the SVD's overlay)",
                ));
            }
            if dev.model.is_none() && dev.description.is_none() && dev.svd.is_none() {
                return Err(self.error(
                    key,
                    "a device needs a `model` (regfile, counter or a bundled model), a `description` file or an `svd` peripheral",
                ));
            }
            if dev.is_described() {
                if dev.mmio.len() > 1 || dev.pio.len() > 1 || dev.mmio.len() + dev.pio.len() == 0 {
                    return Err(self.error(
                        key,
                        "a described device takes one mmio region, one pio region, or one of each (the same registers seen through both)",
                    ));
                }
                if dev.reg_shift.is_some_and(|s| s > 8) {
                    return Err(self.error(format!("{key}.reg_shift"), "at most 8"));
                }
                if let Err((fifo, why)) = dev.fifo_hosts() {
                    return Err(self.error(format!("{key}.fifo.{fifo}"), why));
                }
            } else {
                if dev.mmio.len() + dev.pio.len() != 1 {
                    return Err(self.error(
                        key,
                        format!("model {:?} takes exactly one mmio or pio region", dev.kind()),
                    ));
                }
                if dev.reg_shift.is_some() || !dev.fifo.is_empty() {
                    return Err(self.error(key, "reg_shift and fifo apply to described devices only"));
                }
            }
            for (j, r) in dev.mmio.iter().enumerate() {
                self.check_mmio_placement(&format!("{key}.mmio[{j}]"), r.base, r.size)?;
            }
            for (j, r) in dev.pio.iter().enumerate() {
                self.check_pio_placement(&format!("{key}.pio[{j}]"), r.base, r.size, true)?;
            }
            if dev.irqs().len() > 1 && !dev.is_described() {
                return Err(self.error(format!("{key}.irq"), "a built-in model has one interrupt line"));
            }
            if dev.irq.as_ref().is_some_and(|i| i.0.is_empty()) {
                return Err(self.error(format!("{key}.irq"), "an empty list: leave `irq` out for no interrupt"));
            }
            for &irq in dev.irqs() {
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
        self.check_dt()
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

    /// Ports must exist (up to 0xffff), and with `device`, avoid the ports KVM's in-kernel
    /// devices take: a guest access there never leaves the kernel, so a device placed there
    /// would never see one.
    fn check_pio_placement(&self, key: &str, base: u64, size: u64, device: bool) -> Result<(), ConfigError> {
        if size == 0 {
            return Err(self.error(key, "size 0: a region needs at least one byte"));
        }
        let Some(last) = base.checked_add(size - 1).filter(|&l| l <= 0xffff) else {
            return Err(self.error(key, format!("ports {base:#x}+{size:#x} run past 0xffff")));
        };
        let in_kernel = IN_KERNEL_PORTS.iter().find(|(lo, hi, _)| base <= *hi && last >= *lo);
        if let (true, Some((lo, hi, who))) = (device, in_kernel) {
            return Err(self.error(
                key,
                format!(
                    "ports {base:#x}-{last:#x} overlap {lo:#x}-{hi:#x}, which {who} handles inside KVM: the VMM never sees those accesses"
                ),
            ));
        }
        Ok(())
    }
}

/// I/O ports KVM's in-kernel irqchip and PIT (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2 with the
/// dummy speaker) handle without exiting: (first, last, what).
pub const IN_KERNEL_PORTS: [(u64, u64, &str); 5] = [
    (0x20, 0x21, "the master PIC"),
    (0x40, 0x43, "the PIT"),
    (0x61, 0x61, "the PIT's speaker port"),
    (0xa0, 0xa1, "the slave PIC"),
    (0x4d0, 0x4d1, "the PIC's edge/level control (ELCR)"),
];

/// Longest name of a bus, device or window.
pub const MAX_NAME_LEN: usize = 64;

/// Why `name` cannot name a bus, a device or a window, if it cannot: it appears in the
/// tree (`/proc/iomem` style, one name per line), in trace lines and filters, and in
/// device-tree node names, so it is 1 to 64 characters of `0-9 a-z A-Z , . _ + -`
/// starting with a letter or digit (the device-tree node-name characters).
pub fn region_name_error(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ",._+-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Some(format!("`{name}`: a name has 1 to {MAX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some(format!("`{name}`: a name starts with a letter or a digit"));
    }
    name.chars().find(|&c| !allowed(c)).map(|c| match c {
        '@' => format!("`{name}`: a name cannot hold `@`: mmiolab calls a device with a node `name@address`"),
        c => format!(
            "`{}`: {c:?} is not allowed in a name (0-9 a-z A-Z , . _ + -): names appear in the tree, the trace and device-tree node names",
            name.escape_debug()
        ),
    })
}

impl MachineConfig {
    /// An error about the device-tree part at `key` (`device[0].dt`), from a [`DtError`]
    /// below it.
    pub fn dt_error(&self, key: &str, e: DtError) -> ConfigError {
        let e = e.under(key);
        self.error(e.key, e.reason)
    }

    /// Whether `dev` gets a device-tree node: it has a `compatible`, and MMIO or a place on
    /// a bus with `compatible = "isa"` (I/O ports can only be described under an isa node).
    pub fn has_dt_node(&self, dev: &DeviceConfig) -> bool {
        let on_isa = || {
            self.buses
                .iter()
                .any(|b| dev.bus.as_ref() == Some(&b.name) && b.compatible.as_deref() == Some("isa"))
        };
        dev.compatible.is_some() && (!dev.mmio.is_empty() || on_isa())
    }

    /// Checks compatibles, `[device.dt]` and `[[dt_node]]`: names, values, properties that
    /// mmiolab generates, the windows `reg_names` names and the targets of `&name` references.
    fn check_dt(&self) -> Result<(), ConfigError> {
        // What `&name` can point at: the devices that get a node, and the extra nodes.
        let targets: HashSet<&str> = self
            .devices
            .iter()
            .filter(|d| self.has_dt_node(d))
            .map(|d| d.name.as_str())
            .chain(self.dt_nodes.iter().map(|n| n.name.as_str()))
            .collect();
        for (i, dev) in self.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            if let Some(OneOrMany(all)) = &dev.compatible {
                if all.is_empty() {
                    return Err(self.error(
                        format!("{key}.compatible"),
                        "an empty list: give at least one compatible string",
                    ));
                }
                for (k, c) in all.iter().enumerate() {
                    let key = if all.len() > 1 {
                        format!("{key}.compatible[{k}]")
                    } else {
                        format!("{key}.compatible")
                    };
                    if c.is_empty() {
                        return Err(self.error(key, "an empty string"));
                    }
                    if let Some(reason) = dt_string_error(c) {
                        return Err(self.error(key, reason));
                    }
                }
                if self.has_dt_node(dev) {
                    // The node is `name@unit-address`: the name is a node name without `@`.
                    let reason = if dev.name.contains('@') {
                        Some(format!(
                            "`{}`: the device-tree node is called `name@address`, so the name cannot hold `@`",
                            dev.name
                        ))
                    } else {
                        dt_node_name_error(&dev.name)
                    };
                    if let Some(reason) = reason {
                        return Err(self.error(format!("{key}.name"), reason));
                    }
                }
            }
            let Some(dt) = &dev.dt else { continue };
            let key = format!("{key}.dt");
            if dev.compatible.is_none() {
                return Err(self.error(key, "the device has no `compatible`, so no device-tree node to add to"));
            }
            if !self.has_dt_node(dev) {
                return Err(self.error(
                    key,
                    "a device with I/O ports gets a device-tree node only on a bus with compatible = \"isa\"",
                ));
            }
            self.check_reg_names(&key, dev, &dt.reg_names)?;
            for name in dt.properties.keys() {
                if let Some((_, why)) = DT_GENERATED_ON_DEVICES.iter().find(|(g, _)| g == name) {
                    return Err(self.error(format!("{key}.properties.{name}"), format!("`{name}` {why}")));
                }
            }
            let properties = dt_properties(&dt.properties).map_err(|e| self.dt_error(&key, e))?;
            let children = dt_children(&dt.children).map_err(|e| self.dt_error(&key, e))?;
            if let Some((below, target)) = dt_dangling_reference(&properties, &children, &targets) {
                return Err(self.error(format!("{key}.{below}"), self.dangling_reason(&target)));
            }
        }
        let mut seen = HashSet::new();
        // Device name -> index (check() has refused a name used twice).
        let device_index: HashMap<&str, usize> = if self.dt_nodes.is_empty() {
            HashMap::new()
        } else {
            self.devices
                .iter()
                .enumerate()
                .map(|(i, d)| (d.name.as_str(), i))
                .collect()
        };
        for (j, node) in self.dt_nodes.iter().enumerate() {
            let key = format!("dt_node[{j}]");
            let typed = node.to_node().map_err(|e| self.dt_error(&key, e))?;
            let name_key = format!("{key}.name");
            if !seen.insert(node.name.as_str()) {
                return Err(self.error(name_key, format!("`{}` is the name of an earlier dt_node", node.name)));
            }
            let base = node.name.split_once('@').map_or(node.name.as_str(), |(base, _)| base);
            if crate::fdt::GENERATED_ROOT_NODES.contains(&base) {
                return Err(self.error(name_key, format!("`{base}` is a node mmiolab generates at the root")));
            }
            if let Some(&i) = device_index.get(base) {
                return Err(self.error(
                    name_key,
                    format!("`{base}` is the name of device[{i}], and `&{base}` must point at one node"),
                ));
            }
            if let Some(i) = self
                .buses
                .iter()
                .position(|b| b.name == base && b.compatible.as_deref() == Some("isa"))
            {
                return Err(self.error(name_key, format!("`{base}` is the node of isa bus[{i}]")));
            }
            if let Some((below, target)) = dt_dangling_reference(&typed.properties, &typed.children, &targets) {
                return Err(self.error(format!("{key}.{below}"), self.dangling_reason(&target)));
            }
        }
        Ok(())
    }

    /// Checks that each of `names` is listed once and names one window of `dev`'s region.
    fn check_reg_names(&self, key: &str, dev: &DeviceConfig, names: &[String]) -> Result<(), ConfigError> {
        // check() has made sure there is exactly one region.
        let Some(region) = dev.mmio.first().or(dev.pio.first()) else {
            return Ok(());
        };
        for (k, name) in names.iter().enumerate() {
            let key = format!("{key}.reg_names[{k}]");
            if names.iter().take(k).any(|n| n == name) {
                return Err(self.error(key, format!("`{name}` is listed twice")));
            }
            match region.windows.iter().filter(|w| &w.name == name).count() {
                0 if region.windows.is_empty() => {
                    return Err(self.error(
                        key,
                        format!("the device's region has no window `{name}` (it has no windows)"),
                    ));
                }
                0 => {
                    let known: Vec<&str> = region.windows.iter().map(|w| w.name.as_str()).collect();
                    return Err(self.error(
                        key,
                        format!(
                            "the device's region has no window `{name}` (its windows: {})",
                            known.join(", ")
                        ),
                    ));
                }
                1 => {}
                n => {
                    return Err(self.error(
                        key,
                        format!("the device's region has {n} windows named `{name}`; a reg-names entry needs one"),
                    ));
                }
            }
            if let Some(reason) = dt_string_error(name) {
                return Err(self.error(key, reason));
            }
        }
        Ok(())
    }

    /// Why a `&target` reference points at nothing.
    fn dangling_reason(&self, target: &str) -> String {
        match self.devices.iter().find(|d| d.name == target) {
            Some(d) if d.compatible.is_none() => {
                format!("`&{target}`: device `{target}` has no `compatible`, so no device-tree node")
            }
            Some(_) => format!("`&{target}`: device `{target}` has I/O ports off an isa bus, so no device-tree node"),
            None => format!("`&{target}`: no device and no dt_node is named `{target}`"),
        }
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
        assert_eq!(c.devices[0].kind(), DeviceModel::Regfile);
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
    fn check_allow_takes_known_rules_only() {
        let dev = |allow: &str| {
            format!(
                "[[device]]\nname = \"r\"\nmodel = \"regfile\"\nmmio = [{{ base = 0xd0000000, size = 16 }}]\n[device.check]\nallow = {allow}\n"
            )
        };
        let c = parse(&dev(r#"["read-empty-fifo", "hole"]"#)).unwrap();
        let allow = c.devices[0].check.as_ref().map(|c| c.allow.clone());
        assert_eq!(allow, Some(vec!["read-empty-fifo".to_owned(), "hole".to_owned()]));
        let e = parse(&dev(r#"["hole", "read-empty"]"#)).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "m.toml: device[0].check.allow[1]: unknown rule `read-empty`; the rules are: bad-width, hole,"
            ),
            "{e}"
        );
        let c = parse(&dev("[\"unaligned\", \"order\", \"irq-stuck\"]\nirq_stuck_after = 5")).unwrap();
        assert_eq!(c.devices[0].check.as_ref().and_then(|c| c.irq_stuck_after), Some(5));
        let e = parse(&dev("[]\nirq_stuck_after = 0")).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.toml: device[0].check.irq_stuck_after: 0: at least one resample must find the line still asserted"
        );
        let c = parse(&dev("[]\n[device.check.allow_in]\nt1 = [\"hole\"]")).unwrap();
        let in_test = c.devices[0]
            .check
            .as_ref()
            .map(|c| c.allow_in.clone())
            .unwrap_or_default();
        assert_eq!(in_test.get("t1"), Some(&vec!["hole".to_owned()]));
        let e = parse(&dev("[]\n[device.check.allow_in]\nt1 = [\"hole\", \"holes\"]"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.toml: device[0].check.allow_in.t1[1]: unknown rule `holes`"),
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
        let e = parse("[[device]]\nname = \"r\"\nmodel = \"regfile\"\ndescription = \"x.toml\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("give `model` or `description`, not both"), "{e}");
        let e = parse(
            "[[device]]\nname = \"r\"\nmodel = \"regfile\"\nbus = \"nope\"\nmmio = [{ base = 0xd0000000, size = 1 }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("device[0].bus: no bus named `nope`"), "{e}");
    }

    #[test]
    fn names_ports_and_vcpus_that_cannot_work_are_refused() {
        let dev = |name: &str, region: &str| format!("[[device]]\nname = \"{name}\"\nmodel = \"regfile\"\n{region}\n");
        let mmio = "mmio = [{ base = 0xd0000000, size = 16 }]";
        for (text, want) in [
            (
                dev("x\\ty", mmio),
                "device[0].name: `x\\ty`: '\\t' is not allowed in a name",
            ),
            (
                dev("-x", mmio),
                "device[0].name: `-x`: a name starts with a letter or a digit",
            ),
            (dev(&"x".repeat(65), mmio), "device[0].name: `xxxx"),
            (
                dev("a\\\"b", mmio),
                "device[0].name: `a\\\"b`: '\"' is not allowed in a name",
            ),
            (
                dev(
                    "d",
                    "mmio = [{ base = 0xd0000000, size = 16, windows = [{ name = \"w w\", offset = 0, size = 4 }] }]",
                ),
                "device[0].mmio[0].windows[0].name: `w w`: ' ' is not allowed in a name",
            ),
            (
                dev("d", "pio = [{ base = 0x20, size = 2 }]"),
                "device[0].pio[0]: ports 0x20-0x21 overlap 0x20-0x21, which the master PIC handles inside KVM",
            ),
            (
                dev("d", "pio = [{ base = 0x4c0, size = 0x20 }]"),
                "device[0].pio[0]: ports 0x4c0-0x4df overlap 0x4d0-0x4d1, which the PIC's edge/level control (ELCR) handles inside KVM",
            ),
            (
                dev("d", "pio = [{ base = 0x10000, size = 1 }]"),
                "device[0].pio[0]: ports 0x10000+0x1 run past 0xffff",
            ),
            (
                "[[bus]]\nname = \"isa\"\npio = { base = 0xff00, size = 0x200 }\n".to_owned(),
                "bus[0].pio: ports 0xff00+0x200 run past 0xffff",
            ),
        ] {
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("m.toml: {want}")), "{text}\n{e}");
        }
        // A bus window may span the in-kernel ports: it decodes nothing itself.
        parse("[[bus]]\nname = \"isa\"\npio = { base = 0x0, size = 0x1000 }\n").unwrap();
        let c = parse("[machine]\nvcpus = 8\n").unwrap();
        c.check_vcpus(8).unwrap();
        assert_eq!(
            c.check_vcpus(4).unwrap_err().to_string(),
            "m.toml: machine.vcpus: 8 vCPUs, but this host's KVM runs at most 4 per VM"
        );
    }

    #[test]
    fn an_override_is_blamed_on_its_option() {
        let mut c = parse("[machine]\nmemory_mib = 64\n").unwrap();
        c.machine.memory_mib = 1;
        c.set_override("machine.memory_mib", "--memory 1");
        assert_eq!(
            c.check().unwrap_err().to_string(),
            "--memory 1: 1 MiB is outside 16..=15360"
        );
        c.machine.memory_mib = 64;
        c.machine.vcpus = 9;
        c.set_override("machine.vcpus", "--vcpus 9");
        assert_eq!(
            c.check_vcpus(2).unwrap_err().to_string(),
            "--vcpus 9: 9 vCPUs, but this host's KVM runs at most 2 per VM"
        );
        // Keys the command line did not set are still the file's.
        c.machine.vcpus = 1;
        c.machine.cmdline = Some("a\0b".to_owned());
        assert!(
            c.check()
                .unwrap_err()
                .to_string()
                .starts_with("m.toml: machine.cmdline: ")
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let c = MachineConfig::parse("[machine]\nfirmware = \"fw.elf\"\n", Path::new("/etc/m/x.toml")).unwrap();
        assert_eq!(
            c.resolve(c.machine.firmware.as_ref().unwrap()),
            Path::new("/etc/m/fw.elf")
        );
    }

    /// A device with a node and two windows, followed by `extra` (its `[device.dt]`...).
    fn dt_machine(extra: &str) -> String {
        format!(
            "[[bus]]\nname = \"isa\"\ncompatible = \"isa\"\npio = {{ base = 0x200, size = 0x100 }}\n\n\
             [[device]]\nname = \"plain\"\nmodel = \"regfile\"\nmmio = [{{ base = 0xd0001000, size = 0x10 }}]\n\n\
             [[device]]\nname = \"ports\"\nmodel = \"regfile\"\ncompatible = \"v,p\"\npio = [{{ base = 0x378, size = 8 }}]\n\n\
             [[device]]\nname = \"dev\"\nmodel = \"regfile\"\ncompatible = \"v,d\"\n\
             mmio = [{{ base = 0xd0000000, size = 0x10, windows = [{{ name = \"dat\", offset = 0, size = 4 }}, \
             {{ name = \"set\", offset = 4, size = 4 }}] }}]\n{extra}"
        )
    }

    #[test]
    fn dt_properties_are_typed() {
        let c = parse(&dt_machine(
            "[device.dt]\nproperties = { n = 2, w = { u64 = 0x100000002 }, l = [1, { u64 = 3 }, \"&dev\"], \
             s = \"x\", ss = [\"a\", \"b\"], t = true, f = false, r = \"&dev\" }\n",
        ))
        .unwrap();
        let dt = c.devices[2].dt.as_ref().unwrap();
        use DtCell::{Num, Ref};
        assert_eq!(
            dt_properties(&dt.properties).unwrap(),
            vec![
                (
                    "l".to_owned(),
                    DtValue::Cells(vec![Num(1), Num(0), Num(3), Ref("dev".to_owned())])
                ),
                ("n".to_owned(), DtValue::Cells(vec![Num(2)])),
                ("r".to_owned(), DtValue::Cells(vec![Ref("dev".to_owned())])),
                ("s".to_owned(), DtValue::Str("x".to_owned())),
                ("ss".to_owned(), DtValue::Strs(vec!["a".to_owned(), "b".to_owned()])),
                ("t".to_owned(), DtValue::Empty),
                ("w".to_owned(), DtValue::Cells(vec![Num(1), Num(2)])),
            ]
        );
        let c = parse(&dt_machine("").replace("\"v,d\"", "[\"v,d\", \"ns16550a\"]")).unwrap();
        assert_eq!(
            c.devices[2].compatible,
            Some(OneOrMany(vec!["v,d".to_owned(), "ns16550a".to_owned()]))
        );
    }

    #[test]
    fn bad_dt_sections_are_refused() {
        for (extra, message) in [
            (
                "[device.dt]\nproperties = { \"a b\" = 1 }\n",
                "device[2].dt.properties.a b: `a b`: ' ' is not allowed in a property name (0-9 a-z A-Z , . _ + ? # -)",
            ),
            (
                "[device.dt]\nproperties = { a-property-name-of-32-characters = 1 }\n",
                "device[2].dt.properties.a-property-name-of-32-characters: \
                 `a-property-name-of-32-characters`: a property name has 1 to 31 characters",
            ),
            (
                "[device.dt]\nproperties = { reg = 1 }\n",
                "device[2].dt.properties.reg: `reg` is generated from the device's region; choose windows of it with `reg_names`",
            ),
            (
                "[device.dt]\nproperties = { compatible = \"x\" }\n",
                "device[2].dt.properties.compatible: `compatible` comes from the device's `compatible` key",
            ),
            (
                "[device.dt]\nproperties = { interrupt-parent = 1 }\n",
                "device[2].dt.properties.interrupt-parent: `interrupt-parent` is generated from the device's `irq`",
            ),
            (
                "[device.dt]\nproperties = { big = 0x100000000 }\n",
                "device[2].dt.properties.big: 0x100000000 does not fit in a 32-bit cell; write { u64 = 0x100000000 } for two cells",
            ),
            (
                "[device.dt]\nproperties = { n = -1 }\n",
                "device[2].dt.properties.n: -1 is negative: cells are unsigned",
            ),
            (
                "[device.dt]\nproperties = { w = [1, { u64 = -2 }] }\n",
                "device[2].dt.properties.w[1].u64: -2 is negative: cells are unsigned",
            ),
            (
                "[device.dt]\nproperties = { w = { u32 = 1 } }\n",
                "device[2].dt.properties.w: a table value is { u64 = <integer> }",
            ),
            (
                "[device.dt]\nproperties = { f = 1.5 }\n",
                "device[2].dt.properties.f: a float has no device-tree encoding",
            ),
            (
                "[device.dt]\nproperties = { e = [] }\n",
                "device[2].dt.properties.e: an empty list has no device-tree type; write `true` for a property without a value",
            ),
            (
                "[device.dt]\nproperties = { m = [1, \"a\"] }\n",
                "device[2].dt.properties.m[1]: a string in a list of cells (integers, { u64 = ... }, `&name` references): \
                 a property is either cells or a list of strings",
            ),
            (
                "[device.dt]\nproperties = { m = [1, [2]] }\n",
                "device[2].dt.properties.m[1]: a list inside a list; write the cells in one list",
            ),
            (
                "[device.dt]\nproperties = { m = [1, true] }\n",
                "device[2].dt.properties.m[1]: a boolean is a whole property (`true`: present, `false`: left out), not a cell",
            ),
            (
                "[device.dt]\nproperties = { s = \"a\\u0000b\" }\n",
                "device[2].dt.properties.s: contains a NUL character, which would end the device-tree string",
            ),
            (
                "[device.dt]\nproperties = { r = \"&\" }\n",
                "device[2].dt.properties.r: `&` is followed by the name of a device or dt_node to reference",
            ),
            (
                "[device.dt]\nproperties = { r = [\"&nope\", 1] }\n",
                "device[2].dt.properties.r: `&nope`: no device and no dt_node is named `nope`",
            ),
            (
                "[device.dt]\nproperties = { r = \"&plain\" }\n",
                "device[2].dt.properties.r: `&plain`: device `plain` has no `compatible`, so no device-tree node",
            ),
            (
                "[device.dt]\nproperties = { r = \"&ports\" }\n",
                "device[2].dt.properties.r: `&ports`: device `ports` has I/O ports off an isa bus, so no device-tree node",
            ),
            (
                "[device.dt]\nreg_names = [\"dat\", \"dirout\"]\n",
                "device[2].dt.reg_names[1]: the device's region has no window `dirout` (its windows: dat, set)",
            ),
            (
                "[device.dt]\nreg_names = [\"dat\", \"dat\"]\n",
                "device[2].dt.reg_names[1]: `dat` is listed twice",
            ),
            (
                "[device.dt]\nregnames = [\"dat\"]\n",
                "unknown field `regnames`, expected one of `reg_names`, `properties`, `child`",
            ),
            (
                "[[device.dt.child]]\nname = \"1x\"\n",
                "device[2].dt.child[0].name: `1x`: a node name starts with a letter",
            ),
            (
                "[[device.dt.child]]\nname = \"led@\"\n",
                "device[2].dt.child[0].name: `led@`: a unit address follows the `@`",
            ),
            (
                "[[device.dt.child]]\nname = \"a\"\n[[device.dt.child]]\nname = \"a\"\n",
                "device[2].dt.child[1].name: `a` is the name of an earlier child of the same node",
            ),
            (
                "[[device.dt.child]]\nname = \"a\"\nproperties = { phandle = 1 }\n",
                "device[2].dt.child[0].properties.phandle: `phandle` is assigned by mmiolab to the nodes that a `&name` reference points at",
            ),
            (
                "[[device.dt.child]]\nname = \"a\"\n[[device.dt.child.child]]\nname = \"b\"\nproperties = { r = \"&nope\" }\n",
                "device[2].dt.child[0].child[0].properties.r: `&nope`: no device and no dt_node is named `nope`",
            ),
            (
                "[[dt_node]]\nname = \"cpus\"\n",
                "dt_node[0].name: `cpus` is a node mmiolab generates at the root",
            ),
            (
                "[[dt_node]]\nname = \"dev@0\"\n",
                "dt_node[0].name: `dev` is the name of device[2], and `&dev` must point at one node",
            ),
            (
                "[[dt_node]]\nname = \"isa\"\n",
                "dt_node[0].name: `isa` is the node of isa bus[0]",
            ),
            (
                "[[dt_node]]\nname = \"k\"\n[[dt_node]]\nname = \"k\"\n",
                "dt_node[1].name: `k` is the name of an earlier dt_node",
            ),
            (
                "[[dt_node]]\nname = \"k\"\n[[dt_node.child]]\nname = \"a\"\n[[dt_node.child]]\nname = \"b\"\n\
                 [[dt_node.child.child]]\nname = \"c/d\"\n",
                "dt_node[0].child[1].child[0].name: `c/d`: '/' is not allowed in a node name (0-9 a-z A-Z , . _ + -)",
            ),
            (
                "[[dt_node]]\nname = \"k\"\nproperties = { regmap = \"&k2\" }\n",
                "dt_node[0].properties.regmap: `&k2`: no device and no dt_node is named `k2`",
            ),
        ] {
            let e = parse(&dt_machine(extra)).unwrap_err().to_string();
            if message.starts_with("unknown field") {
                assert!(e.starts_with("m.toml: ") && e.contains(message), "{extra}: {e}");
            } else {
                assert_eq!(e, format!("m.toml: {message}"), "{extra}");
            }
        }
    }

    #[test]
    fn dt_on_a_device_without_a_node_and_bad_compatibles_are_refused() {
        let machine = dt_machine("");
        for (from, to, message) in [
            (
                "name = \"plain\"\nmodel = \"regfile\"\n",
                "name = \"plain\"\nmodel = \"regfile\"\ndt = {}\n",
                "device[0].dt: the device has no `compatible`, so no device-tree node to add to",
            ),
            (
                "compatible = \"v,p\"\n",
                "compatible = \"v,p\"\ndt = {}\n",
                "device[1].dt: a device with I/O ports gets a device-tree node only on a bus with compatible = \"isa\"",
            ),
            (
                "name = \"dev\"",
                "name = \"my dev\"",
                "device[2].name: `my dev`: ' ' is not allowed in a name (0-9 a-z A-Z , . _ + -): names appear in the tree, the trace and device-tree node names",
            ),
            (
                "name = \"dev\"",
                "name = \"dev@1\"",
                "device[2].name: `dev@1`: a name cannot hold `@`: mmiolab calls a device with a node `name@address`",
            ),
            (
                "compatible = \"v,d\"",
                "compatible = []",
                "device[2].compatible: an empty list: give at least one compatible string",
            ),
            (
                "compatible = \"v,d\"",
                "compatible = [\"v,d\", \"\"]",
                "device[2].compatible[1]: an empty string",
            ),
        ] {
            assert!(machine.contains(from), "{from}");
            let e = parse(&machine.replacen(from, to, 1)).unwrap_err().to_string();
            assert_eq!(e, format!("m.toml: {message}"));
        }
        // A device with ports on an isa bus has a node, so it can have a dt section.
        let isa = machine.replace(
            "compatible = \"v,p\"\n",
            "compatible = \"v,p\"\nbus = \"isa\"\ndt = {}\n",
        );
        let isa = isa.replace("base = 0x378", "base = 0x278");
        parse(&isa).unwrap();
    }
}
