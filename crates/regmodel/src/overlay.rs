//! Overlays: a TOML description that modifies another one, typically an imported SVD
//! peripheral, to add what SVD cannot say (effects, FIFOs, interrupt conditions) and to fix
//! what it says wrong.
//!
//! Merge rules ([`apply_overlay`]):
//! - `[device]`: each key the overlay gives replaces the base's.
//! - `[[register]]` whose `name` is a base register: that register is modified. Each key the
//!   overlay gives replaces the base's (`offset`, `width`, `reset`, `when`, `pop`, ...).
//!   Its `[[register.field]]`s merge by name: a base field is modified key by key (`bits`
//!   may be left out), a new field is appended and needs `bits`.
//! - Behaviour keys (`sw`, `on_write`, `on_read`, `singlepulse`, `sticky`, `value`, `values`,
//!   `counter`) replace the base's one by one (`values` as a whole map). Base keys that the
//!   overlay's keys rule out are dropped: giving `value` (a computed field) drops the base's
//!   `on_write`, `on_read`, `singlepulse` and `sticky`; giving an `sw` that cannot write drops
//!   the base's `on_write` and `singlepulse`, one that cannot read drops its `on_read`.
//! - When the overlay gives fields to a base register that had none, the register's
//!   `sw`, `on_write`, `on_read`, `singlepulse` and `sticky` become the defaults of those
//!   fields, and its `value`, `values` and `counter` (whole-register meanings) are dropped.
//! - Register-level behaviour keys on a register that has fields are refused.
//! - `[[register]]` with a new name: appended after the base's registers; it needs `offset`
//!   and each of its fields needs `bits`.
//! - `[[fifo]]`, `[[memory]]`, `[[interrupt]]`, `[[effect]]`: appended (a name used twice is
//!   then refused by [`crate::compile`]).
//!
//! A whole [`Description`] is an overlay too (`From<Description>`): there `offset` and
//! `bits` are always given, so they replace the base's, and keys at their default value
//! (`false`, `reject`, `little`, `full`, `hole_read = 0`) change nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::compile::DescriptionError;
use crate::schema::{
    Bits, CounterDesc, Description, EffectDesc, Endianness, FieldDesc, FifoDesc, InterruptDesc, MemoryDesc, OrderDesc,
    RegisterDesc, TracePolicy, WidthPolicy,
};

/// An overlay as written: the description format with every key optional except names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Device keys to replace.
    #[serde(default)]
    pub device: DeviceOverlay,
    /// Registers to modify (by name) or add.
    #[serde(default, rename = "register")]
    pub registers: Vec<RegisterOverlay>,
    /// FIFOs to add.
    #[serde(default, rename = "fifo")]
    pub fifos: Vec<FifoDesc>,
    /// Memory windows to add.
    #[serde(default, rename = "memory")]
    pub memories: Vec<MemoryDesc>,
    /// Interrupt outputs to add.
    #[serde(default, rename = "interrupt")]
    pub interrupts: Vec<InterruptDesc>,
    /// Effects to add.
    #[serde(default, rename = "effect")]
    pub effects: Vec<EffectDesc>,
    /// Order rules to add.
    #[serde(default, rename = "order")]
    pub orders: Vec<OrderDesc>,
}

/// The `[device]` table of an overlay: the keys of [`crate::schema::DeviceSection`], each
/// optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DeviceOverlay {
    pub name: Option<String>,
    pub description: Option<String>,
    pub endianness: Option<Endianness>,
    pub size: Option<u64>,
    pub hole_read: Option<u8>,
    pub trace: Option<TracePolicy>,
}

/// A `[[register]]` of an overlay: the keys of [`RegisterDesc`], each optional but `name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RegisterOverlay {
    pub name: String,
    pub offset: Option<u64>,
    pub width: Option<u32>,
    pub reset: Option<u64>,
    pub description: Option<String>,
    pub widths: Option<Vec<u32>>,
    pub bad_width: Option<WidthPolicy>,
    pub count: Option<u32>,
    pub stride: Option<u64>,
    pub when: Option<String>,
    pub pop: Option<String>,
    pub push: Option<String>,
    pub trace: Option<TracePolicy>,
    pub reserved_read: Option<u64>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldOverlay>,
    pub sw: Option<String>,
    pub on_write: Option<String>,
    pub on_read: Option<String>,
    pub singlepulse: Option<bool>,
    pub sticky: Option<bool>,
    pub value: Option<String>,
    pub values: Option<BTreeMap<String, u64>>,
    pub counter: Option<CounterDesc>,
}

/// A `[[register.field]]` of an overlay: the keys of [`FieldDesc`], each optional but `name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FieldOverlay {
    pub name: String,
    pub bits: Option<Bits>,
    pub reset: Option<u64>,
    pub description: Option<String>,
    pub sw: Option<String>,
    pub on_write: Option<String>,
    pub on_read: Option<String>,
    pub singlepulse: Option<bool>,
    pub sticky: Option<bool>,
    pub value: Option<String>,
    pub values: Option<BTreeMap<String, u64>>,
    pub counter: Option<CounterDesc>,
}

impl Overlay {
    /// Parses an overlay from TOML text.
    pub fn from_toml(text: &str) -> Result<Overlay, toml::de::Error> {
        toml::from_str(text)
    }
}

fn some_if(b: bool) -> Option<bool> {
    b.then_some(true)
}

impl From<FieldDesc> for FieldOverlay {
    fn from(f: FieldDesc) -> Self {
        FieldOverlay {
            name: f.name,
            bits: Some(f.bits),
            reset: f.reset,
            description: f.description,
            sw: f.sw,
            on_write: f.on_write,
            on_read: f.on_read,
            singlepulse: some_if(f.singlepulse),
            sticky: some_if(f.sticky),
            value: f.value,
            values: f.values,
            counter: f.counter,
        }
    }
}

impl From<RegisterDesc> for RegisterOverlay {
    fn from(r: RegisterDesc) -> Self {
        RegisterOverlay {
            name: r.name,
            offset: Some(r.offset),
            width: r.width,
            reset: r.reset,
            description: r.description,
            widths: r.widths,
            bad_width: (r.bad_width != WidthPolicy::default()).then_some(r.bad_width),
            count: r.count,
            stride: r.stride,
            when: r.when,
            pop: r.pop,
            push: r.push,
            trace: r.trace,
            reserved_read: r.reserved_read,
            fields: r.fields.into_iter().map(FieldOverlay::from).collect(),
            sw: r.sw,
            on_write: r.on_write,
            on_read: r.on_read,
            singlepulse: some_if(r.singlepulse),
            sticky: some_if(r.sticky),
            value: r.value,
            values: r.values,
            counter: r.counter,
        }
    }
}

impl From<Description> for Overlay {
    fn from(d: Description) -> Self {
        let dev = d.device;
        Overlay {
            device: DeviceOverlay {
                name: dev.name,
                description: dev.description,
                endianness: (dev.endianness != Endianness::default()).then_some(dev.endianness),
                size: dev.size,
                hole_read: (dev.hole_read != 0).then_some(dev.hole_read),
                trace: (dev.trace != TracePolicy::default()).then_some(dev.trace),
            },
            registers: d.registers.into_iter().map(RegisterOverlay::from).collect(),
            fifos: d.fifos,
            memories: d.memories,
            interrupts: d.interrupts,
            effects: d.effects,
            orders: d.orders,
        }
    }
}

fn fail<T>(key: impl Into<String>, reason: impl Into<String>) -> Result<T, DescriptionError> {
    Err(DescriptionError {
        file: PathBuf::new(),
        key: key.into(),
        reason: reason.into(),
    })
}

/// Applies `overlay` (an [`Overlay`] or a whole [`Description`]) to `base`, by the rules in
/// the module documentation. On an error (its key is the overlay's key path) `base` is left
/// as it was. The result is not compiled: call [`crate::compile`] on it.
pub fn apply_overlay(base: &mut Description, overlay: impl Into<Overlay>) -> Result<(), DescriptionError> {
    let overlay = overlay.into();
    let mut out = base.clone();
    let dev = overlay.device;
    let d = &mut out.device;
    replace(&mut d.name, dev.name);
    replace(&mut d.description, dev.description);
    replace(&mut d.size, dev.size);
    if let Some(v) = dev.endianness {
        d.endianness = v;
    }
    if let Some(v) = dev.hole_read {
        d.hole_read = v;
    }
    if let Some(v) = dev.trace {
        d.trace = v;
    }
    for (i, ro) in overlay.registers.into_iter().enumerate() {
        let key = format!("register[{i}]");
        match out.registers.iter_mut().find(|r| r.name == ro.name) {
            Some(r) => merge_register(r, ro, &key)?,
            None => out.registers.push(new_register(ro, &key)?),
        }
    }
    out.fifos.extend(overlay.fifos);
    out.memories.extend(overlay.memories);
    out.interrupts.extend(overlay.interrupts);
    out.effects.extend(overlay.effects);
    out.orders.extend(overlay.orders);
    *base = out;
    Ok(())
}

/// Parses `text` as an overlay and applies it to `base` (see [`apply_overlay`]).
pub fn apply_overlay_toml(base: &mut Description, text: &str) -> Result<(), DescriptionError> {
    let overlay = Overlay::from_toml(text).map_err(|e| DescriptionError {
        file: PathBuf::new(),
        key: String::new(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    apply_overlay(base, overlay)
}

fn replace<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

/// Reading and writing allowed by an `sw` value (None for a value the compiler refuses).
fn access_of(sw: &str) -> Option<(bool, bool)> {
    Some(match sw {
        "rw" | "read-write" | "rw1" | "read-writeOnce" => (true, true),
        "ro" | "r" | "read-only" => (true, false),
        "wo" | "w" | "write-only" | "w1" | "writeOnce" => (false, true),
        "na" => (false, false),
        _ => return None,
    })
}

/// Merges the behaviour keys of an overlay register or field into a base one (the two
/// kinds have the same key names).
macro_rules! merge_behaviour {
    ($dst:expr, $src:expr) => {{
        let dst = $dst;
        let src = $src;
        if src.value.is_some() {
            dst.on_write = None;
            dst.on_read = None;
            dst.singlepulse = false;
            dst.sticky = false;
        }
        if let Some((read, write)) = src.sw.as_deref().and_then(access_of) {
            if !write {
                dst.on_write = None;
                dst.singlepulse = false;
            }
            if !read {
                dst.on_read = None;
            }
        }
        replace(&mut dst.sw, src.sw);
        replace(&mut dst.on_write, src.on_write);
        replace(&mut dst.on_read, src.on_read);
        replace(&mut dst.value, src.value);
        replace(&mut dst.values, src.values);
        replace(&mut dst.counter, src.counter);
        if let Some(v) = src.singlepulse {
            dst.singlepulse = v;
        }
        if let Some(v) = src.sticky {
            dst.sticky = v;
        }
    }};
}

fn behaviour_given(r: &RegisterOverlay) -> bool {
    r.sw.is_some()
        || r.on_write.is_some()
        || r.on_read.is_some()
        || r.singlepulse.is_some()
        || r.sticky.is_some()
        || r.value.is_some()
        || r.values.is_some()
        || r.counter.is_some()
}

fn merge_register(r: &mut RegisterDesc, mut o: RegisterOverlay, key: &str) -> Result<(), DescriptionError> {
    if let Some(v) = o.offset {
        r.offset = v;
    }
    replace(&mut r.width, o.width);
    replace(&mut r.reset, o.reset);
    replace(&mut r.description, o.description.take());
    replace(&mut r.widths, o.widths.take());
    if let Some(v) = o.bad_width {
        r.bad_width = v;
    }
    replace(&mut r.count, o.count);
    replace(&mut r.stride, o.stride);
    replace(&mut r.when, o.when.take());
    replace(&mut r.pop, o.pop.take());
    replace(&mut r.push, o.push.take());
    replace(&mut r.trace, o.trace);
    replace(&mut r.reserved_read, o.reserved_read);

    let fields = std::mem::take(&mut o.fields);
    if r.fields.is_empty() && !fields.is_empty() {
        // The register's own behaviour becomes the default of the fields it gets.
        let defaults = FieldDesc {
            sw: r.sw.take(),
            on_write: r.on_write.take(),
            on_read: r.on_read.take(),
            singlepulse: std::mem::take(&mut r.singlepulse),
            sticky: std::mem::take(&mut r.sticky),
            ..FieldDesc::default()
        };
        r.value = None;
        r.values = None;
        r.counter = None;
        for (j, fo) in fields.into_iter().enumerate() {
            let fkey = format!("{key}.field[{j}]");
            match r.fields.iter_mut().find(|f| f.name == fo.name) {
                Some(f) => merge_field(f, fo),
                None => {
                    let mut f = FieldDesc {
                        name: fo.name.clone(),
                        ..defaults.clone()
                    };
                    f.bits = new_bits(&fo, &r.name, &fkey)?;
                    merge_field(&mut f, fo);
                    r.fields.push(f);
                }
            }
        }
    } else {
        for (j, fo) in fields.into_iter().enumerate() {
            let fkey = format!("{key}.field[{j}]");
            match r.fields.iter_mut().find(|f| f.name == fo.name) {
                Some(f) => merge_field(f, fo),
                None => {
                    let mut f = FieldDesc {
                        name: fo.name.clone(),
                        bits: new_bits(&fo, &r.name, &fkey)?,
                        ..FieldDesc::default()
                    };
                    merge_field(&mut f, fo);
                    r.fields.push(f);
                }
            }
        }
    }
    if behaviour_given(&o) {
        if !r.fields.is_empty() {
            return fail(
                key,
                format!(
                    "`{}` has fields: put behaviour keys (sw, on_write, on_read, singlepulse, sticky, value, values, counter) on its fields",
                    r.name
                ),
            );
        }
        merge_behaviour!(r, o);
    }
    Ok(())
}

fn new_bits(fo: &FieldOverlay, reg: &str, fkey: &str) -> Result<Bits, DescriptionError> {
    match &fo.bits {
        Some(b) => Ok(b.clone()),
        None => fail(
            format!("{fkey}.bits"),
            format!("`{reg}` has no field `{}` to modify: a new field needs `bits`", fo.name),
        ),
    }
}

fn merge_field(f: &mut FieldDesc, mut o: FieldOverlay) {
    if let Some(b) = o.bits.take() {
        f.bits = b;
    }
    replace(&mut f.reset, o.reset);
    replace(&mut f.description, o.description.take());
    merge_behaviour!(f, o);
}

fn new_register(o: RegisterOverlay, key: &str) -> Result<RegisterDesc, DescriptionError> {
    let Some(offset) = o.offset else {
        return fail(
            format!("{key}.offset"),
            format!(
                "the base has no register `{}` to modify: a new register needs an `offset`",
                o.name
            ),
        );
    };
    let mut r = RegisterDesc {
        name: o.name.clone(),
        offset,
        ..RegisterDesc::default()
    };
    merge_register(&mut r, o, key)?;
    Ok(r)
}
