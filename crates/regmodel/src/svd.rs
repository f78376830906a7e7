//! Importing one peripheral of a CMSIS-SVD file as a [`Description`], and overlays that
//! add what SVD cannot say (effects, FIFOs, interrupt conditions) in TOML.
//!
//! [`import`] parses the file with `svd-parser`, resolving `derivedFrom`, expanding every
//! `dim` array and cluster, and pushing inherited register properties (`size`, `access`,
//! `resetValue`, `resetMask`) down to each register. It then maps one peripheral:
//!
//! | SVD | description |
//! | --- | --- |
//! | `register` (after expansion) | `[[register]]`, one per element: SVD arrays become plain registers (`CH[%s]` → `CH0`, `CH1`, ...; a cluster's registers are `CLUSTER_REG`), never `count`/`stride` arrays |
//! | `addressOffset` | `offset` (relative to the peripheral's base address) |
//! | `size` | `width` (8, 16, 32 or 64; other sizes drop the register, with a warning) |
//! | `resetValue` & `resetMask` | `reset` (bits outside `resetMask` reset to 0) |
//! | `field` `bitOffset`/`bitWidth`/`lsb`/`msb`/`bitRange` | `bits = "msb:lsb"` |
//! | `access` (field's, else the register's) | `sw`, in SVD's spelling |
//! | `modifiedWriteValues` (field's, else the register's) | `on_write`, in SVD's spelling (`modify` is the default and is left out) |
//! | `readAction` `clear` / `set` | `on_read = "clear"` / `"set"` |
//! | `readAction` `modify` / `modifyExternal` | nothing: the register is kept as storage and a [`WarningKind::ReadSideEffect`] names it |
//! | `enumeratedValues` | `values` (one name per value; read and read-write sets first) |
//! | `addressBlock` `usage = buffer` | a trapped `[[memory]]` named `BUFFER_<hex offset>` |
//! | `interrupt` | [`Import::interrupts`] (name, number): no `[[interrupt]]`, since SVD gives no condition |
//! | all `addressBlock`s | `device.size` (their end, when it covers the registers) |
//!
//! Names the format refuses are sanitized by [`sanitize_name`]; a register or field whose
//! name changed is reported as a [`WarningKind::Renamed`] warning.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use svd_parser::svd::{
    self, Access, AddressBlockUsage, Endian, EnumeratedValues, FieldInfo, MaybeArray, ModifiedWriteValues,
    PeripheralInfo, ReadAction, RegisterCluster, RegisterInfo, Usage,
};

use crate::schema::{Backing, Bits, Description, DeviceSection, Endianness, FieldDesc, MemoryDesc, RegisterDesc};

#[path = "overlay.rs"]
pub mod overlay;

pub use overlay::{DeviceOverlay, FieldOverlay, Overlay, RegisterOverlay, apply_overlay, apply_overlay_toml};

/// Longest name the format accepts.
const MAX_NAME: usize = 64;

/// An SVD file or peripheral that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvdError {
    /// The text is not XML, or not an SVD device that `svd-parser` accepts.
    #[error("not a usable CMSIS-SVD file: {0}")]
    Parse(String),
    /// No peripheral has the name asked for.
    #[error(
        "device `{device}` has no peripheral named `{name}`; its peripherals are: {}",
        available.join(", ")
    )]
    NoSuchPeripheral {
        /// The SVD device's name.
        device: String,
        /// The name asked for.
        name: String,
        /// Every peripheral of the device, in file order.
        available: Vec<String>,
    },
    /// The peripheral uses something the format has no counterpart for.
    #[error("peripheral `{peripheral}`: {reason}")]
    Unsupported {
        /// The peripheral.
        peripheral: String,
        /// Why.
        reason: String,
    },
}

/// What [`import`] made of one peripheral.
#[derive(Debug, Clone)]
pub struct Import {
    /// The description: registers, fields, memory windows; no FIFOs, interrupts or effects
    /// (add them with an overlay, see [`apply_overlay`]).
    pub description: Description,
    /// What could not be carried over exactly, by register.
    pub warnings: Vec<Warning>,
    /// The peripheral's interrupts, for the machine file to map.
    pub interrupts: Vec<SvdInterrupt>,
}

/// An SVD `<interrupt>` of the peripheral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvdInterrupt {
    /// Name, sanitized like every other name (usable as an `[[interrupt]]` name).
    pub name: String,
    /// Interrupt number in the SVD (the NVIC index on Cortex-M).
    pub value: u32,
    /// What it signals.
    pub description: Option<String>,
}

/// Something the import could not carry over exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The register concerned, by its name in the description (a memory window's name for
    /// a dropped window).
    pub register: String,
    /// What kind of loss.
    pub kind: WarningKind,
    /// What happened and what to do about it.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.register, self.message)
    }
}

/// Kinds of [`Warning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// `readAction` `modify` or `modifyExternal`: reading has a side effect no key declares.
    /// The register is kept; add a `read REG` effect (or `pop`) in an overlay.
    ReadSideEffect,
    /// A register or field name was changed to one the format accepts.
    Renamed,
    /// A register, field or memory window was left out.
    Dropped,
    /// A key was left out because it contradicts another (e.g. `oneToClear` on a read-only
    /// field).
    Adjusted,
}

/// The names of the peripherals of an SVD file, in file order (arrays expanded).
pub fn peripherals(xml: &str) -> Result<Vec<String>, SvdError> {
    Ok(parse(xml)?.peripherals.iter().map(|p| p.name.clone()).collect())
}

/// Imports peripheral `peripheral` (its exact name; a case-insensitive match is accepted
/// when it is unique) of the SVD text `xml`.
pub fn import(xml: &str, peripheral: &str) -> Result<Import, SvdError> {
    let device = parse(xml)?;
    let available = || device.peripherals.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let found = device.peripherals.iter().find(|p| p.name == peripheral).or_else(|| {
        let mut matches = device
            .peripherals
            .iter()
            .filter(|p| p.name.eq_ignore_ascii_case(peripheral));
        match (matches.next(), matches.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    });
    let Some(p) = found else {
        return Err(SvdError::NoSuchPeripheral {
            device: device.name.clone(),
            name: peripheral.to_owned(),
            available: available(),
        });
    };
    if device.address_unit_bits != 8 {
        return Err(SvdError::Unsupported {
            peripheral: p.name.clone(),
            reason: format!(
                "addressUnitBits is {}: only byte-addressed devices (8) can be imported",
                device.address_unit_bits
            ),
        });
    }
    let endianness = match device.cpu.as_ref().map(|c| c.endian) {
        Some(Endian::Big) => Endianness::Big,
        _ => Endianness::Little,
    };
    let mut im = Importer::default();
    im.peripheral(p, endianness);
    Ok(Import {
        description: im.desc,
        warnings: im.warnings,
        interrupts: p
            .interrupt
            .iter()
            .map(|i| SvdInterrupt {
                name: sanitize_name(&i.name),
                value: i.value,
                description: i.description.as_deref().map(clean_text),
            })
            .collect(),
    })
}

fn parse(xml: &str) -> Result<svd::Device, SvdError> {
    let config = svd_parser::Config::default().expand(true).expand_properties(true);
    svd_parser::parse_with_config(xml, &config).map_err(|e| SvdError::Parse(format!("{e:#}")))
}

/// The name the format accepts for an SVD name: characters other than ASCII letters,
/// digits and `_` become `_` (a `]` is dropped, so `CH[2]` becomes `CH_2`), a name that is
/// empty or starts with a digit gets a leading `_` (`1MBPS` → `_1MBPS`), the reserved
/// `value` becomes `value_`, and the result is cut to 64 characters.
pub fn sanitize_name(raw: &str) -> String {
    let mut s: String = raw
        .trim()
        .chars()
        .filter(|c| *c != ']')
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if s == "value" {
        s.push('_');
    }
    s.truncate(MAX_NAME);
    s
}

/// `name`, or `name_2`, `name_3`, ... if taken; records it as taken.
fn unique(taken: &mut HashSet<String>, name: String) -> String {
    if taken.insert(name.clone()) {
        return name;
    }
    for n in 2u32.. {
        let suffix = format!("_{n}");
        let mut base = name.clone();
        base.truncate(MAX_NAME - suffix.len());
        let candidate = base + &suffix;
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
    name
}

/// SVD descriptions carry layout: literal `\n`, line breaks, indentation. One line.
fn clean_text(text: &str) -> String {
    text.replace("\\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

/// An imported register with what the overlap check needs.
struct Imported {
    desc: RegisterDesc,
    readable: bool,
    writable: bool,
}

#[derive(Default)]
struct Importer {
    desc: Description,
    warnings: Vec<Warning>,
    reg_names: HashSet<String>,
}

impl Importer {
    fn warn(&mut self, register: &str, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            register: register.to_owned(),
            kind,
            message,
        });
    }

    fn peripheral(&mut self, p: &PeripheralInfo, endianness: Endianness) {
        self.desc.device = DeviceSection {
            name: Some(sanitize_name(&p.name)),
            description: p.description.as_deref().map(clean_text),
            endianness,
            ..DeviceSection::default()
        };
        let mut regs = Vec::new();
        if let Some(children) = &p.registers {
            for rc in children {
                self.register_cluster(rc, "", 0, &mut regs);
            }
        }
        let regs = self.drop_overlaps(regs);
        let span = regs
            .iter()
            .map(|r| r.offset + u64::from(r.width.unwrap_or(32) / 8))
            .max()
            .unwrap_or(0);
        self.desc.registers = regs;

        let blocks = p.address_block.as_deref().unwrap_or_default();
        for b in blocks.iter().filter(|b| b.usage == AddressBlockUsage::Buffer) {
            let (start, end) = (u64::from(b.offset), u64::from(b.offset) + u64::from(b.size));
            let name = format!("BUFFER_{:X}", b.offset);
            if b.size == 0 {
                continue;
            }
            if let Some(r) = self
                .desc
                .registers
                .iter()
                .find(|r| r.offset < end && start < r.offset + u64::from(r.width.unwrap_or(32) / 8))
            {
                let message = format!(
                    "buffer block {start:#x}..{end:#x} holds register `{}`: left out (registers win)",
                    r.name
                );
                self.warn(&name, WarningKind::Dropped, message);
                continue;
            }
            self.desc.memories.push(MemoryDesc {
                name,
                offset: start,
                size: u64::from(b.size),
                backing: Backing::Trapped,
                readonly: false,
                fill: 0,
                description: Some(format!("SVD addressBlock {start:#x}..{end:#x} (usage buffer)")),
            });
        }
        let block_end = blocks.iter().map(|b| u64::from(b.offset) + u64::from(b.size)).max();
        let mem_end = self.desc.memories.iter().map(|m| m.offset + m.size).max().unwrap_or(0);
        self.desc.device.size = block_end.filter(|e| *e >= span.max(mem_end) && *e > 0);
    }

    /// Registers of `rc` (clusters flattened with `CLUSTER_` prefixes, as svd-parser's
    /// expansion does; after expansion there are none left, this is for completeness).
    fn register_cluster(&mut self, rc: &RegisterCluster, prefix: &str, base: u64, out: &mut Vec<Imported>) {
        match rc {
            RegisterCluster::Register(MaybeArray::Single(r)) => {
                if let Some(i) = self.register(r, prefix, base) {
                    out.push(i);
                }
            }
            RegisterCluster::Register(MaybeArray::Array(info, dim)) => {
                for r in svd::register::expand(info, dim) {
                    if let Some(i) = self.register(&r, prefix, base) {
                        out.push(i);
                    }
                }
            }
            RegisterCluster::Cluster(c) => {
                let instances: Vec<svd::ClusterInfo> = match c {
                    MaybeArray::Single(info) => vec![info.clone()],
                    MaybeArray::Array(info, dim) => svd::cluster::expand(info, dim).collect(),
                };
                for ci in instances {
                    let p = format!("{prefix}{}_", ci.name);
                    for child in &ci.children {
                        self.register_cluster(child, &p, base + u64::from(ci.address_offset), out);
                    }
                }
            }
        }
    }

    fn register(&mut self, r: &RegisterInfo, prefix: &str, base: u64) -> Option<Imported> {
        let raw = format!("{prefix}{}", r.name);
        let name = unique(&mut self.reg_names, sanitize_name(&raw));
        if name != raw {
            self.warn(
                &name,
                WarningKind::Renamed,
                format!("SVD register `{raw}` is named `{name}`"),
            );
        }
        let width = r.properties.size.unwrap_or(32);
        if !matches!(width, 8 | 16 | 32 | 64) {
            self.warn(
                &name,
                WarningKind::Dropped,
                format!("{width}-bit register left out: a register is 8, 16, 32 or 64 bits wide"),
            );
            return None;
        }
        let wmask = mask(width);
        let reset = r.properties.reset_value.unwrap_or(0) & r.properties.reset_mask.unwrap_or(u64::MAX) & wmask;
        let mut reg = RegisterDesc {
            name: name.clone(),
            offset: base + u64::from(r.address_offset),
            width: Some(width),
            reset: Some(reset),
            description: r.description.as_deref().map(clean_text),
            ..RegisterDesc::default()
        };
        let access = r.properties.access;
        let inherited = Inherited {
            access,
            on_write: r.modified_write_values,
            read_action: r.read_action,
        };
        let mut read_side_effects = Vec::new();
        let fields: Vec<FieldInfo> = r
            .fields
            .iter()
            .flatten()
            .flat_map(|f| match f {
                MaybeArray::Single(info) => vec![info.clone()],
                MaybeArray::Array(info, dim) => svd::field::expand(info, dim).collect(),
            })
            .collect();
        let (readable, writable);
        if fields.is_empty() {
            let b = self.behaviour(&name, None, &inherited, None, width, &[], &mut read_side_effects);
            readable = b.readable;
            writable = b.writable;
            reg.sw = b.sw;
            reg.on_write = b.on_write;
            reg.on_read = b.on_read;
            reg.values = b.values;
        } else {
            let mut taken = HashSet::new();
            let mut covered = 0u64;
            let (mut any_read, mut any_write) = (false, false);
            for f in &fields {
                let fname = unique(&mut taken, sanitize_name(&f.name));
                if fname != f.name {
                    self.warn(
                        &name,
                        WarningKind::Renamed,
                        format!("SVD field `{raw}.{}` is named `{name}.{fname}`", f.name),
                    );
                }
                let (lsb, bits) = (f.bit_range.offset, f.bit_range.width);
                if bits == 0 || lsb.checked_add(bits).is_none_or(|end| end > width) {
                    self.warn(
                        &name,
                        WarningKind::Dropped,
                        format!(
                            "field `{fname}` (bits {}) lies outside the {width}-bit register: left out",
                            f.bit_range.bit_range()
                        ),
                    );
                    continue;
                }
                let fmask = mask(bits) << lsb;
                if covered & fmask != 0 {
                    self.warn(
                        &name,
                        WarningKind::Dropped,
                        format!("field `{fname}` overlaps an earlier field: left out"),
                    );
                    continue;
                }
                covered |= fmask;
                let b = self.behaviour(
                    &name,
                    Some(&fname),
                    &inherited,
                    Some(f),
                    bits,
                    &f.enumerated_values,
                    &mut read_side_effects,
                );
                any_read |= b.readable;
                any_write |= b.writable;
                reg.fields.push(FieldDesc {
                    name: fname,
                    bits: Bits::Range(format!("{}:{lsb}", lsb + bits - 1)),
                    description: f.description.as_deref().map(clean_text),
                    sw: b.sw,
                    on_write: b.on_write,
                    on_read: b.on_read,
                    values: b.values,
                    ..FieldDesc::default()
                });
            }
            if reg.fields.is_empty() {
                // Every field was left out: keep the register as one whole field.
                let b = self.behaviour(&name, None, &inherited, None, width, &[], &mut read_side_effects);
                reg.sw = b.sw;
                reg.on_write = b.on_write;
                reg.on_read = b.on_read;
                any_read = b.readable;
                any_write = b.writable;
            }
            readable = any_read;
            writable = any_write;
        }
        if !read_side_effects.is_empty() {
            let what = read_side_effects.join(", ");
            self.warn(
                &name,
                WarningKind::ReadSideEffect,
                format!(
                    "reading has a side effect the format cannot declare ({what}): kept as plain storage; model it in an overlay (a `read {name}` effect, or `pop` from a FIFO)"
                ),
            );
        }
        Some(Imported {
            desc: reg,
            readable,
            writable,
        })
    }

    /// Behaviour keys of a field (or of a register without fields when `field` is None).
    #[allow(clippy::too_many_arguments)]
    fn behaviour(
        &mut self,
        reg: &str,
        fname: Option<&str>,
        inherited: &Inherited,
        field: Option<&FieldInfo>,
        bits: u32,
        enums: &[EnumeratedValues],
        read_side_effects: &mut Vec<String>,
    ) -> Imported1 {
        let access = field.and_then(|f| f.access).or(inherited.access);
        let on_write = field.and_then(|f| f.modified_write_values).or(inherited.on_write);
        let read_action = field.and_then(|f| f.read_action).or(inherited.read_action);
        let readable = access.is_none_or(Access::can_read);
        let writable = access.is_none_or(Access::can_write);
        let what = fname.map_or_else(|| reg.to_owned(), |f| format!("{reg}.{f}"));
        let on_write = match on_write {
            None | Some(ModifiedWriteValues::Modify) => None,
            Some(w) if !writable => {
                self.warn(
                    reg,
                    WarningKind::Adjusted,
                    format!(
                        "`{what}` is {} but has modifiedWriteValues {}: left out",
                        access.map_or("", Access::as_str),
                        w.as_str()
                    ),
                );
                None
            }
            Some(w) => Some(w.as_str().to_owned()),
        };
        let on_read = match read_action {
            None => None,
            Some(ReadAction::Modify | ReadAction::ModifyExternal) => {
                read_side_effects.push(format!(
                    "readAction {} on `{what}`",
                    read_action.map_or("", ReadAction::as_str)
                ));
                None
            }
            Some(a) if !readable => {
                self.warn(
                    reg,
                    WarningKind::Adjusted,
                    format!(
                        "`{what}` is {} but has readAction {}: left out",
                        access.map_or("", Access::as_str),
                        a.as_str()
                    ),
                );
                None
            }
            Some(ReadAction::Clear) => Some("clear".to_owned()),
            Some(ReadAction::Set) => Some("set".to_owned()),
        };
        Imported1 {
            sw: access.map(|a| a.as_str().to_owned()),
            on_write,
            on_read,
            values: values(enums, bits),
            readable,
            writable,
        }
    }

    /// Registers that share bytes with an earlier one are left out (an SVD
    /// `alternateRegister`), unless the format allows the pair as is: same offset and
    /// width, one only readable and the other only writable.
    fn drop_overlaps(&mut self, regs: Vec<Imported>) -> Vec<RegisterDesc> {
        let mut kept: Vec<Imported> = Vec::new();
        for r in regs {
            let (start, end) = span_of(&r.desc);
            let clash = kept.iter().find(|k| {
                let (ks, ke) = span_of(&k.desc);
                let shares = ks < end && start < ke;
                let allowed = ks == start && ke == end && !(k.readable && r.readable) && !(k.writable && r.writable);
                shares && !allowed
            });
            if let Some(k) = clash {
                let message = format!(
                    "shares bytes {start:#x}..{end:#x} with `{}` (an alternate register): left out; add it in an overlay with a `when` condition",
                    k.desc.name
                );
                let name = r.desc.name.clone();
                self.warn(&name, WarningKind::Dropped, message);
                continue;
            }
            kept.push(r);
        }
        kept.into_iter().map(|k| k.desc).collect()
    }
}

fn span_of(r: &RegisterDesc) -> (u64, u64) {
    (r.offset, r.offset + u64::from(r.width.unwrap_or(32) / 8))
}

/// A register's keys that its fields inherit.
struct Inherited {
    access: Option<Access>,
    on_write: Option<ModifiedWriteValues>,
    read_action: Option<ReadAction>,
}

/// Behaviour keys of one imported field.
struct Imported1 {
    sw: Option<String>,
    on_write: Option<String>,
    on_read: Option<String>,
    values: Option<BTreeMap<String, u64>>,
    readable: bool,
    writable: bool,
}

/// Value names of a field: read (and read-write) sets first, then write sets; one name per
/// value (the first), names sanitized and made unique; values that do not fit the field and
/// `isDefault` entries (no value) are left out.
fn values(enums: &[EnumeratedValues], bits: u32) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let mut taken = HashSet::new();
    let mut named = HashSet::new();
    let read_first = enums
        .iter()
        .filter(|e| e.usage != Some(Usage::Write))
        .chain(enums.iter().filter(|e| e.usage == Some(Usage::Write)));
    for set in read_first {
        for v in &set.values {
            let Some(value) = v.value else { continue };
            if value > mask(bits) || !named.insert(value) {
                continue;
            }
            out.insert(unique(&mut taken, sanitize_name(&v.name)), value);
        }
    }
    (!out.is_empty()).then_some(out)
}
