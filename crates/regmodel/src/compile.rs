//! Checking a description and resolving it into a [`Model`]: arrays expanded, every name
//! resolved to an index, every expression and action parsed, the offset map built. Every
//! refusal names the key path (`register[3].field[1]`) and the reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::expr::{Expr, FifoProp, Operand, parse_int};
use crate::schema::{
    Backing, Behaviour, Bits, Description, EffectDesc, Endianness, FieldDesc, OrderDesc, RegisterDesc, TracePolicy,
    Trigger, WidthPolicy,
};

/// A description that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DescriptionError {
    /// The file (empty when compiled from text without one).
    pub file: PathBuf,
    /// Key path inside it (`register[3].field[1].bits`), empty for the whole file.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for DescriptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.as_os_str().is_empty(), self.key.is_empty()) {
            (true, true) => write!(f, "{}", self.reason),
            (true, false) => write!(f, "{}: {}", self.key, self.reason),
            (false, true) => write!(f, "{}: {}", self.file.display(), self.reason),
            (false, false) => write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason),
        }
    }
}

/// Largest description file read (a register map is text; anything larger is a mistake).
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most register instances (after array expansion) one device may have.
pub const MAX_REGISTERS: usize = 4096;
/// Bytes the register part of a map may span (the offset map costs two bytes per byte).
pub const MAX_REGISTER_SPAN: u64 = 1 << 20;
/// Most interrupt outputs and most lines per device.
pub const MAX_INTERRUPTS: usize = 32;
/// Largest FIFO depth.
pub const MAX_FIFO_DEPTH: u32 = 1 << 16;
/// Largest trapped memory window.
pub const MAX_TRAPPED_MEMORY: u64 = 16 << 20;
/// Page size for memslot-backed windows.
pub const PAGE: u64 = 4096;
/// Elements all FIFOs of a device hold together (what their buffers may grow to).
pub const MAX_FIFO_TOTAL: u64 = 1 << 22;
/// Bytes all trapped memory windows of a device hold together.
pub const MAX_TRAPPED_TOTAL: u64 = 64 << 20;
/// What the copies of text that arrays make may cost: every element of a register array,
/// and every instance of an `[i]` effect, gets its own names, descriptions, value names and
/// parsed expressions (expression text counts 16 times, for its parsed form). Without it,
/// `count = 4096` on a register with a 1 MiB description would take 4 GiB.
pub const MAX_EXPANDED_BYTES: usize = 128 << 20;
/// Most effects (after `[i]` effects are expanded element by element) one device may have.
pub const MAX_EFFECTS: usize = 1 << 14;

/// Software access of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Reads return the stored bits (else 0).
    pub read: bool,
    /// Writes reach the stored bits.
    pub write: bool,
    /// Only the first write counts.
    pub once: bool,
}

/// What a write does to a field's stored bits (`w` = bits written, `old` = stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWrite {
    /// `w`.
    Write,
    /// `old & !w`.
    OneToClear,
    /// `old | w`.
    OneToSet,
    /// `old ^ w`.
    OneToToggle,
    /// `old & w`.
    ZeroToClear,
    /// `old | !w`.
    ZeroToSet,
    /// `old ^ !w`.
    ZeroToToggle,
    /// 0.
    Clear,
    /// All ones.
    Set,
}

impl OnWrite {
    fn parse(s: &str) -> Option<OnWrite> {
        Some(match s {
            "write" | "modify" => OnWrite::Write,
            "w1c" | "woclr" | "oneToClear" => OnWrite::OneToClear,
            "w1s" | "woset" | "oneToSet" => OnWrite::OneToSet,
            "w1t" | "wot" | "oneToToggle" => OnWrite::OneToToggle,
            "w0c" | "wzc" | "zeroToClear" => OnWrite::ZeroToClear,
            "w0s" | "wzs" | "zeroToSet" => OnWrite::ZeroToSet,
            "w0t" | "wzt" | "zeroToToggle" => OnWrite::ZeroToToggle,
            "wclr" | "clear" => OnWrite::Clear,
            "wset" | "set" => OnWrite::Set,
            _ => return None,
        })
    }

    /// The new stored bits within `mask`, given the old ones and the bits written.
    pub fn apply(self, old: u64, w: u64, mask: u64) -> u64 {
        let new = match self {
            OnWrite::Write => w,
            OnWrite::OneToClear => old & !w,
            OnWrite::OneToSet => old | w,
            OnWrite::OneToToggle => old ^ w,
            OnWrite::ZeroToClear => old & w,
            OnWrite::ZeroToSet => old | !w,
            OnWrite::ZeroToToggle => old ^ !w,
            OnWrite::Clear => 0,
            OnWrite::Set => u64::MAX,
        };
        new & mask
    }
}

/// A register's write behaviour as bit masks, so that a write computes the register's new
/// value in a few operations whatever its number of fields (the field loop cost about 66
/// instructions per field on every write). Every behaviour makes a stored bit a function of
/// its old value and the bit written; `table[2 * old + written]` has a bit set where that
/// function gives 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteMasks {
    table: [u64; 4],
    /// Bits of all writable stored fields.
    pub writable: u64,
    /// Bits of write-once fields (writable until their first write).
    pub once: u64,
    /// Bits of stored fields a write cannot change: a write that differs there is noted.
    pub read_only: u64,
    /// Bits of writable fields whose changes are noted (every behaviour but plain `write`).
    pub noted: u64,
    /// Bits of self-clearing fields.
    pub singlepulse: u64,
}

impl WriteMasks {
    fn of(fields: &[Field]) -> WriteMasks {
        let mut m = WriteMasks::default();
        for f in fields.iter().filter(|f| f.value.is_none()) {
            if f.singlepulse {
                m.singlepulse |= f.mask;
            }
            if !f.access.write {
                m.read_only |= f.mask;
                continue;
            }
            for (k, t) in m.table.iter_mut().enumerate() {
                let (old, written) = (if k >= 2 { u64::MAX } else { 0 }, if k % 2 == 1 { u64::MAX } else { 0 });
                *t |= f.on_write.apply(old, written, f.mask);
            }
            m.writable |= f.mask;
            if f.access.once {
                m.once |= f.mask;
            }
            if f.on_write != OnWrite::Write {
                m.noted |= f.mask;
            }
        }
        m
    }

    /// Bits a write within `lanes` cannot change, with `done` the write-once bits already
    /// written.
    #[inline(always)]
    pub fn closed(&self, lanes: u64, done: u64) -> u64 {
        (self.read_only | (self.once & done)) & lanes
    }

    /// The register's new stored value after `w` is written within `lanes` over `old`,
    /// `done` being the write-once bits already written: [`OnWrite::apply`] field by field.
    #[inline(always)]
    pub fn apply(&self, old: u64, w: u64, lanes: u64, done: u64) -> u64 {
        let open = self.writable & lanes & !(self.once & done);
        let [t00, t01, t10, t11] = self.table;
        let bits = (t00 & !old & !w) | (t01 & !old & w) | (t10 & old & !w) | (t11 & old & w);
        (old & !open) | (bits & open)
    }
}

/// What a read does to a field's stored bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRead {
    /// Nothing.
    None,
    /// Cleared after the read.
    Clear,
    /// Set after the read.
    Set,
}

/// Counter behaviour of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Stop at the limits instead of wrapping.
    pub saturate: bool,
    /// Set on overflow.
    pub overflow: Option<FieldRef>,
    /// Set on underflow.
    pub underflow: Option<FieldRef>,
}

/// A resolved field (or whole register) of one register instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRef {
    /// Register instance.
    pub reg: u32,
    /// Field index in that register, or `None` for the whole register.
    pub field: Option<u32>,
    /// Shift of the lowest bit.
    pub shift: u32,
    /// Bits in register position.
    pub mask: u64,
}

/// A field of a register instance.
#[derive(Debug, Clone)]
pub struct Field {
    /// Name.
    pub name: String,
    /// `REG.FIELD` (just `REG` for the implicit field of a register without fields).
    pub path: String,
    /// Lowest bit.
    pub shift: u32,
    /// Bits in register position.
    pub mask: u64,
    /// Reset value in register position.
    pub reset: u64,
    /// What it is.
    pub description: Option<String>,
    /// Software access.
    pub access: Access,
    /// Write behaviour.
    pub on_write: OnWrite,
    /// Read behaviour.
    pub on_read: OnRead,
    /// Clears itself after a write's effects ran.
    pub singlepulse: bool,
    /// Effects only set its bits.
    pub sticky: bool,
    /// Computed on read.
    pub value: Option<Expr>,
    /// Value names, sorted by value.
    pub values: Vec<(String, u64)>,
    /// Counter behaviour.
    pub counter: Option<Counter>,
}

impl Field {
    /// The name of `value` (field position), if the description names it.
    pub fn value_name(&self, value: u64) -> Option<&str> {
        self.values.iter().find(|(_, v)| *v == value).map(|(n, _)| n.as_str())
    }
}

/// One register instance (an array element is one instance).
#[derive(Debug, Clone)]
pub struct Register {
    /// `CTRL`, or `CH[3]` for an array element.
    pub name: String,
    /// Index into [`Model::arrays`] and element number, for array elements.
    pub array: Option<(u32, u32)>,
    /// Byte offset in the region.
    pub offset: u64,
    /// Width in bytes (1, 2, 4, 8).
    pub width: u8,
    /// Reset value.
    pub reset: u64,
    /// What it is.
    pub description: Option<String>,
    /// Fields, at least one (a register without declared fields has one spanning it).
    pub fields: Vec<Field>,
    /// Whether the fields were declared (false: one implicit field).
    pub declared_fields: bool,
    /// A read can return stored bits of some field.
    pub readable: bool,
    /// A write can change some field.
    pub writable: bool,
    /// Allowed access widths, as a bit set of byte counts (bit 0 = 1 byte ... bit 3 = 8).
    pub widths: u8,
    /// What other widths do.
    pub bad_width: WidthPolicy,
    /// Banked-view condition.
    pub when: Option<Expr>,
    /// FIFO a read pops.
    pub pop: Option<u32>,
    /// FIFO a write pushes.
    pub push: Option<u32>,
    /// Trace policy.
    pub trace: TracePolicy,
    /// Changes on its own from run to run: golden-trace comparisons skip it.
    pub volatile: bool,
    /// Read value of bits no field covers.
    pub reserved_read: u64,
    /// Bits covered by fields.
    pub field_mask: u64,
    /// Bits a guest read returns from the device's state: readable stored fields and
    /// computed fields (the rest reads as `reserved_read`, or 0 for write-only fields).
    pub read_mask: u64,
    /// Bits of computed fields.
    pub computed_mask: u64,
    /// All bits of the register's width.
    pub width_mask: u64,
    /// Reads and writes are plain storage: no side effect, no effect, no interrupt reads it.
    pub plain: bool,
    /// The write behaviour of its fields, as masks.
    pub write_masks: WriteMasks,
    /// Effects a write fires: (field bits that must be written as 1, or all bits; effect).
    pub write_effects: Vec<(u64, u32)>,
    /// Effects a read fires: (bits the read must cover; effect).
    pub read_effects: Vec<(u64, u32)>,
}

impl Register {
    /// Nothing a guest read returns comes from the device: every field is write-only (or
    /// has no access), none is computed, and the read pops no FIFO. Reading it is a driver
    /// bug the checker reports (rule `read-write-only`).
    pub fn write_only(&self) -> bool {
        !self.readable
            && self.pop.is_none()
            && self.computed_mask == 0
            && self.read_effects.is_empty()
            && self.fields.iter().any(|f| f.access.write)
    }
}

/// A register array, for the C header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    /// Base name.
    pub name: String,
    /// Elements.
    pub count: u32,
    /// Bytes between elements.
    pub stride: u64,
    /// Instance index of element 0.
    pub first: u32,
}

/// A FIFO.
#[derive(Debug, Clone)]
pub struct Fifo {
    /// Name.
    pub name: String,
    /// Capacity.
    pub depth: u32,
    /// Element width in bits.
    pub width: u32,
    /// Set when a push finds it full.
    pub overflow: Option<FieldRef>,
    /// Set when a pop finds it empty.
    pub underflow: Option<FieldRef>,
    /// What a pop of an empty FIFO returns.
    pub empty_read: u64,
    /// The hardware forbids a pop while empty (a finding for `--check`).
    pub forbid_read_empty: bool,
    /// The hardware forbids a push while full (a finding for `--check`).
    pub forbid_write_full: bool,
    /// What it is.
    pub description: Option<String>,
    /// Effects fired by a push.
    pub push_effects: Vec<u32>,
    /// Effects fired by a pop.
    pub pop_effects: Vec<u32>,
}

impl Fifo {
    /// Mask of an element's bits.
    pub fn element_mask(&self) -> u64 {
        bits_mask(self.width)
    }
}

/// A memory window.
#[derive(Debug, Clone)]
pub struct Memory {
    /// Name.
    pub name: String,
    /// Offset in the region.
    pub offset: u64,
    /// Size.
    pub size: u64,
    /// Where its bytes live.
    pub backing: Backing,
    /// Guest writes are dropped.
    pub readonly: bool,
    /// Reset fill byte.
    pub fill: u8,
    /// What it is.
    pub description: Option<String>,
}

/// An interrupt output.
#[derive(Debug, Clone)]
pub struct Interrupt {
    /// Name.
    pub name: String,
    /// Condition, absent for a pulse-only output.
    pub when: Option<Expr>,
    /// Level or edge.
    pub trigger: Trigger,
    /// Line index of the machine device.
    pub line: u32,
    /// What it signals.
    pub description: Option<String>,
}

/// When an effect runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// At once, inside the access (or event) that fired it.
    None,
    /// After this many ns of the machine's clock.
    Ns(u64),
    /// After this many further accesses to the device.
    Accesses(u32),
}

/// The trigger mask of `write REG` / `read REG`: any access fires it.
pub const ANY_BITS: u64 = u64::MAX;

/// What fires an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectTrigger {
    /// A write to a register (bits that must be written as 1, or all bits).
    Write(u32, u64),
    /// A read of a register.
    Read(u32, u64),
    /// A push onto a FIFO (by the guest, an effect or the host).
    Push(u32),
    /// A pop from a FIFO.
    Pop(u32),
    /// Device reset.
    Reset,
}

/// One action of an effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// All bits of the target to 1.
    Set(FieldRef),
    /// All bits to 0.
    Clear(FieldRef),
    /// Invert.
    Toggle(FieldRef),
    /// Target = expression.
    Assign(FieldRef, Expr),
    /// Target += expression (counter semantics).
    Add(FieldRef, Expr),
    /// Target -= expression (counter semantics).
    Sub(FieldRef, Expr),
    /// Push the expression's value (default: the triggering value) onto a FIFO.
    Push(u32, Option<Expr>),
    /// Pop one element, into a field if given.
    Pop(u32, Option<FieldRef>),
    /// Empty a FIFO.
    Flush(u32),
    /// One edge on an interrupt output.
    Pulse(u32),
    /// Reset the device.
    Reset,
}

/// An effect.
#[derive(Debug, Clone)]
pub struct Effect {
    /// Name.
    pub name: String,
    /// What fires it.
    pub trigger: EffectTrigger,
    /// Checked when it fires.
    pub condition: Option<Expr>,
    /// When it runs.
    pub delay: Delay,
    /// What it does.
    pub actions: Vec<Action>,
}

/// Order rules a description may hold: the device keeps which ones an access broke in one
/// 64-bit mask.
pub const MAX_ORDERS: usize = 64;

/// An order rule of the register checker (`[[order]]`, docs/checker.md): an access that
/// matches it, made while `require` evaluates to 0, is a finding.
#[derive(Debug, Clone)]
pub struct Order {
    /// Name (the finding's field).
    pub name: String,
    /// It judges writes (else reads).
    pub write: bool,
    /// The register instance.
    pub reg: u32,
    /// Bits of the register the access must reach (register position): a field's, or all.
    pub mask: u64,
    /// What must hold just before the access.
    pub require: Expr,
    /// `require` as written, for reports.
    pub require_text: String,
}

/// A group of registers that share one offset and width: the candidates for an access
/// there, in file order.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Offset.
    pub offset: u64,
    /// Width in bytes.
    pub width: u8,
    /// Register instances.
    pub candidates: Vec<u32>,
}

/// A compiled, checked description.
#[derive(Debug, Clone)]
pub struct Model {
    /// Device name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// Byte order.
    pub endianness: Endianness,
    /// Bytes the map spans (a machine region must be at least this large).
    pub size: u64,
    /// Value of hole bytes.
    pub hole_read: u8,
    /// Register instances.
    pub registers: Vec<Register>,
    /// Register arrays.
    pub arrays: Vec<ArrayInfo>,
    /// FIFOs.
    pub fifos: Vec<Fifo>,
    /// Memory windows, by offset.
    pub memories: Vec<Memory>,
    /// Interrupt outputs.
    pub interrupts: Vec<Interrupt>,
    /// Effects.
    pub effects: Vec<Effect>,
    /// Effects fired by a reset.
    pub reset_effects: Vec<u32>,
    /// Slots.
    pub slots: Vec<Slot>,
    /// For each byte offset below the register span: slot index + 1, 0 for a hole.
    pub byte_slot: Vec<u16>,
    /// Number of interrupt lines used (highest `line` + 1).
    pub lines: u32,
    /// Order rules of the register checker (`[[order]]`); the engine never reads them.
    pub orders: Vec<Order>,
    /// The bus lane of each register start, `1 << reg_shift` bytes (1: no shift): the
    /// bytes of a register's lane past the register are the lane's padding, which an
    /// access of the lane's width covers (a byte register read 32 bits wide), not a hole.
    pub lane: u64,
}

/// Reads and compiles a description file.
pub fn load(path: &Path) -> Result<Model, DescriptionError> {
    let text = read_description(path)?;
    compile_text(&text, path)
}

/// Reads a description file's text, refusing what is not a regular file or is too large.
pub fn read_description(path: &Path) -> Result<String, DescriptionError> {
    let err = |reason: String| DescriptionError {
        file: path.to_owned(),
        key: String::new(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(err("not a regular file".to_owned()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!(
            "{} bytes is larger than the {} MiB a description may have",
            meta.len(),
            MAX_FILE_BYTES >> 20
        )));
    }
    std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))
}

/// Parses and compiles description text read from `path` (used in messages only).
pub fn compile_text(text: &str, path: &Path) -> Result<Model, DescriptionError> {
    let desc = Description::from_toml(text).map_err(|e| DescriptionError {
        file: path.to_owned(),
        key: String::new(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    compile(&desc).map_err(|mut e| {
        e.file = path.to_owned();
        e
    })
}

fn bits_mask(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

fn fail<T>(key: impl Into<String>, reason: impl Into<String>) -> Result<T, DescriptionError> {
    Err(DescriptionError {
        file: PathBuf::new(),
        key: key.into(),
        reason: reason.into(),
    })
}

/// A name usable in expressions, traces, C macros and device-tree-derived names.
fn check_name(key: &str, name: &str) -> Result<(), DescriptionError> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return fail(
            key,
            format!("name `{name}`: use 1-64 letters, digits and `_`, starting with a letter or `_`"),
        );
    }
    if name == "value" {
        return fail(key, "`value` is reserved: in expressions it means the access's value");
    }
    Ok(())
}

fn parse_bits(key: &str, bits: &Bits, width: u32) -> Result<(u32, u32), DescriptionError> {
    let (msb, lsb) = match bits {
        Bits::Bit(b) => (*b, *b),
        Bits::Range(text) => {
            let t = text.trim().trim_start_matches('[').trim_end_matches(']');
            let parse = |s: &str| s.trim().parse::<u32>().ok();
            match t.split_once(':') {
                Some((m, l)) => match (parse(m), parse(l)) {
                    (Some(m), Some(l)) => (m, l),
                    _ => {
                        return fail(
                            key,
                            format!("`{text}` is not a bit range: write \"msb:lsb\", e.g. \"7:4\""),
                        );
                    }
                },
                None => match parse(t) {
                    Some(b) => (b, b),
                    None => {
                        return fail(
                            key,
                            format!("`{text}` is not a bit range: write \"msb:lsb\", e.g. \"7:4\""),
                        );
                    }
                },
            }
        }
    };
    if msb < lsb {
        return fail(
            key,
            format!("bits {msb}:{lsb}: the first number is the most significant bit"),
        );
    }
    if msb >= width {
        return fail(key, format!("bits {msb}:{lsb} lie outside the {width}-bit register"));
    }
    Ok((lsb, msb - lsb + 1))
}

/// Parses a delay such as `50us`.
pub fn parse_delay(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '_')?;
    let (num, unit) = t.split_at(split);
    let n = parse_int(num)?;
    let scale = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// Compiles a parsed description.
pub fn compile(desc: &Description) -> Result<Model, DescriptionError> {
    compile_shifted(desc, 0)
}

/// Compiles a parsed description whose register offsets (and array strides) are scaled by
/// `1 << reg_shift`, as hardware does that puts byte registers on wider bus lanes.
pub fn compile_shifted(desc: &Description, reg_shift: u32) -> Result<Model, DescriptionError> {
    if reg_shift > 8 {
        return fail("reg_shift", format!("{reg_shift}: at most 8"));
    }
    Compiler {
        shift: reg_shift,
        ..Compiler::default()
    }
    .run(desc)
}

#[derive(Default)]
struct Compiler {
    registers: Vec<Register>,
    arrays: Vec<ArrayInfo>,
    /// Register base name -> (first instance, count, is array).
    reg_names: HashMap<String, (u32, u32, bool)>,
    fifo_names: HashMap<String, u32>,
    irq_names: HashMap<String, u32>,
    /// Register offsets and strides are shifted left by this.
    shift: u32,
    /// Bytes of expanded text so far (see [`MAX_EXPANDED_BYTES`]).
    expanded: usize,
}

/// What one instance of register `r` costs in [`MAX_EXPANDED_BYTES`].
fn instance_bytes(r: &RegisterDesc) -> usize {
    let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
    let expr = |t: &Option<String>| 16 * text(t);
    let values = |v: &Option<BTreeMap<String, u64>>| v.iter().flatten().map(|(n, _)| 32 + n.len()).sum::<usize>();
    let counter =
        |c: &Option<crate::schema::CounterDesc>| c.as_ref().map_or(0, |c| text(&c.overflow) + text(&c.underflow));
    let fields: usize = r
        .fields
        .iter()
        .map(|f| {
            2 * f.name.len()
                + r.name.len()
                + text(&f.description)
                + expr(&f.value)
                + values(&f.values)
                + counter(&f.counter)
        })
        .sum();
    2 * r.name.len()
        + text(&r.description)
        + expr(&r.when)
        + expr(&r.value)
        + values(&r.values)
        + counter(&r.counter)
        + fields
}

/// What one instance of effect `e` costs in [`MAX_EXPANDED_BYTES`].
fn effect_bytes(e: &EffectDesc) -> usize {
    let text =
        e.on.len() + e.condition.as_ref().map_or(0, String::len) + e.actions.iter().map(String::len).sum::<usize>();
    64 + e.name.as_ref().map_or(0, String::len) + 16 * text
}

impl Compiler {
    /// Counts `count` copies of `bytes` against [`MAX_EXPANDED_BYTES`].
    fn charge(&mut self, key: &str, bytes: usize, count: u32) -> Result<(), DescriptionError> {
        self.expanded = self.expanded.saturating_add(bytes.saturating_mul(count as usize));
        if self.expanded > MAX_EXPANDED_BYTES {
            return fail(
                key,
                format!(
                    "the description expands to more than {} MiB: arrays repeat their text, descriptions and expressions element by element",
                    MAX_EXPANDED_BYTES >> 20
                ),
            );
        }
        Ok(())
    }

    fn run(mut self, desc: &Description) -> Result<Model, DescriptionError> {
        let dev = &desc.device;
        let name = dev.name.clone().unwrap_or_else(|| "device".to_owned());
        check_name("device.name", &name)?;

        // Names first: fields and expressions may refer to any register or FIFO.
        for (i, f) in desc.fifos.iter().enumerate() {
            let key = format!("fifo[{i}]");
            check_name(&format!("{key}.name"), &f.name)?;
            if self.fifo_names.insert(f.name.clone(), i as u32).is_some() {
                return fail(key, format!("FIFO name `{}` is used twice", f.name));
            }
        }
        let mut total = 0usize;
        for (i, r) in desc.registers.iter().enumerate() {
            let key = format!("register[{i}]");
            check_name(&format!("{key}.name"), &r.name)?;
            if self.fifo_names.contains_key(&r.name) {
                return fail(key, format!("`{}` names both a register and a FIFO", r.name));
            }
            let count = r.count.unwrap_or(1);
            if count == 0 {
                return fail(format!("{key}.count"), "an array needs at least one element");
            }
            if self
                .reg_names
                .insert(r.name.clone(), (total as u32, count, r.count.is_some()))
                .is_some()
            {
                return fail(key, format!("register name `{}` is used twice", r.name));
            }
            total = total.saturating_add(count as usize);
            if total > MAX_REGISTERS {
                return fail(
                    key,
                    format!("more than {MAX_REGISTERS} registers (arrays counted element by element)"),
                );
            }
        }
        for (i, irq) in desc.interrupts.iter().enumerate() {
            let key = format!("interrupt[{i}]");
            check_name(&format!("{key}.name"), &irq.name)?;
            if self.irq_names.insert(irq.name.clone(), i as u32).is_some() {
                return fail(key, format!("interrupt name `{}` is used twice", irq.name));
            }
        }
        if desc.interrupts.len() > MAX_INTERRUPTS {
            return fail("interrupt", format!("more than {MAX_INTERRUPTS} interrupt outputs"));
        }

        let default_trace = dev.trace;
        for (i, r) in desc.registers.iter().enumerate() {
            self.expand_register(i, r, default_trace)?;
        }
        // Second pass: what needs every register to exist (expressions, counters).
        for (i, r) in desc.registers.iter().enumerate() {
            self.resolve_register(i, r)?;
        }

        let fifos = self.compile_fifos(desc)?;
        let interrupts = self.compile_interrupts(desc)?;
        let memories = compile_memories(desc)?;
        let mut model = Model {
            name,
            description: dev.description.clone(),
            endianness: dev.endianness,
            size: 0,
            hole_read: dev.hole_read,
            registers: Vec::new(),
            arrays: std::mem::take(&mut self.arrays),
            fifos,
            memories,
            interrupts,
            effects: Vec::new(),
            reset_effects: Vec::new(),
            slots: Vec::new(),
            byte_slot: Vec::new(),
            lines: 0,
            orders: Vec::new(),
            lane: 1 << self.shift,
        };
        model.lines = model.interrupts.iter().map(|i| i.line + 1).max().unwrap_or(0);
        self.compile_effects(desc, &mut model)?;
        model.orders = self.compile_orders(desc)?;
        let interrupt_operands: Vec<Operand> = {
            let mut ops = Vec::new();
            for irq in &model.interrupts {
                if let Some(e) = &irq.when {
                    e.operands(&mut ops);
                }
            }
            ops
        };
        let mut registers = std::mem::take(&mut self.registers);
        let mut watched_regs = vec![false; registers.len()];
        for op in &interrupt_operands {
            if let Operand::Field { reg, .. } = op
                && let Some(w) = watched_regs.get_mut(*reg as usize)
            {
                *w = true;
            }
        }
        for (idx, r) in registers.iter_mut().enumerate() {
            let watched = watched_regs.get(idx).copied().unwrap_or(false);
            r.computed_mask = r.fields.iter().filter(|f| f.value.is_some()).fold(0, |m, f| m | f.mask);
            r.read_mask = r
                .fields
                .iter()
                .filter(|f| f.access.read || f.value.is_some())
                .fold(0, |m, f| m | f.mask);
            r.write_masks = WriteMasks::of(&r.fields);
            r.plain = !watched
                && r.pop.is_none()
                && r.push.is_none()
                && r.write_effects.is_empty()
                && r.read_effects.is_empty()
                && r.fields.iter().all(|f| {
                    f.on_write == OnWrite::Write
                        && f.on_read == OnRead::None
                        && !f.singlepulse
                        && f.value.is_none()
                        && !f.access.once
                        // A write to a read-only field is noted (`Ignored`): not plain storage.
                        && f.access.write
                });
        }
        model.registers = registers;
        build_slots(desc, &mut model)?;
        let span = model
            .registers
            .iter()
            .map(|r| r.offset + u64::from(r.width))
            .chain(model.memories.iter().map(|m| m.offset + m.size))
            .max()
            .unwrap_or(0);
        // A declared size is in the description's own offsets: it scales with them.
        let declared = dev.size.map(|s| s.saturating_mul(1u64 << self.shift));
        model.size = match declared {
            Some(s) if s < span => {
                return fail(
                    "device.size",
                    format!("{s:#x} is smaller than the map, which reaches {span:#x}"),
                );
            }
            Some(0) => return fail("device.size", "a device needs at least one byte"),
            Some(s) => s,
            None => span.max(1),
        };
        check_memory_overlaps(&model)?;
        Ok(model)
    }

    fn expand_register(
        &mut self,
        i: usize,
        r: &RegisterDesc,
        default_trace: TracePolicy,
    ) -> Result<(), DescriptionError> {
        let key = format!("register[{i}]");
        let width_bits = r.width.unwrap_or(32);
        if !matches!(width_bits, 8 | 16 | 32 | 64) {
            return fail(
                format!("{key}.width"),
                format!("{width_bits} bits: a register is 8, 16, 32 or 64 bits wide"),
            );
        }
        let width = (width_bits / 8) as u8;
        let width_mask = bits_mask(width_bits);
        let mut widths = 0u8;
        match &r.widths {
            None => widths = 0b1111,
            Some(list) if list.is_empty() => {
                return fail(format!("{key}.widths"), "empty: leave `widths` out to accept any width");
            }
            Some(list) => {
                for w in list {
                    if !matches!(w, 8 | 16 | 32 | 64) || *w > width_bits {
                        return fail(
                            format!("{key}.widths"),
                            format!(
                                "{w} bits: allowed widths are 8, 16, 32 or 64 bits, at most the register's {width_bits}"
                            ),
                        );
                    }
                    widths |= (w / 8) as u8;
                }
            }
        }
        let reset = r.reset.unwrap_or(0);
        if reset & !width_mask != 0 {
            return fail(
                format!("{key}.reset"),
                format!("{reset:#x} does not fit in {width_bits} bits"),
            );
        }
        let count = r.count.unwrap_or(1);
        self.charge(&key, instance_bytes(r), count)?;
        let Some(stride) = r.stride.unwrap_or(u64::from(width)).checked_mul(1u64 << self.shift) else {
            return fail(format!("{key}.stride"), "too large");
        };
        if r.count.is_none() && r.stride.is_some() {
            return fail(format!("{key}.stride"), "only an array (`count`) has a stride");
        }
        if stride < u64::from(width) {
            return fail(
                format!("{key}.stride"),
                format!("{stride:#x} is smaller than the register's {width} bytes: elements would overlap"),
            );
        }

        // Fields, in register position.
        let declared = !r.fields.is_empty();
        let mut fields = Vec::new();
        if declared {
            if r.behaviour_keys_set() {
                return fail(
                    key,
                    "behaviour keys (sw, on_write, on_read, value, ...) go on the fields when a register has fields",
                );
            }
            let mut names = HashSet::new();
            let mut covered = 0u64;
            for (j, f) in r.fields.iter().enumerate() {
                let fkey = format!("{key}.field[{j}]");
                check_name(&format!("{fkey}.name"), &f.name)?;
                if !names.insert(f.name.as_str()) {
                    return fail(fkey, format!("field name `{}` is used twice in `{}`", f.name, r.name));
                }
                let (shift, bits) = parse_bits(&format!("{fkey}.bits"), &f.bits, width_bits)?;
                let mask = bits_mask(bits) << shift;
                if covered & mask != 0 {
                    let other = fields
                        .iter()
                        .find(|o: &&Field| o.mask & mask != 0)
                        .map_or("another field", |o| o.name.as_str());
                    return fail(format!("{fkey}.bits"), format!("overlaps field `{other}`"));
                }
                covered |= mask;
                let field_reset = match f.reset {
                    Some(v) if v > bits_mask(bits) => {
                        return fail(
                            format!("{fkey}.reset"),
                            format!("{v:#x} does not fit in the field's {bits} bits"),
                        );
                    }
                    Some(v) => v << shift,
                    None => reset & mask,
                };
                fields.push(field_from(&fkey, f, &r.name, shift, mask, field_reset, f.behaviour())?);
            }
        } else {
            fields.push(field_from(
                &key,
                &FieldDesc {
                    name: r.name.clone(),
                    description: None,
                    ..FieldDesc::default()
                },
                "",
                0,
                width_mask,
                reset,
                r.behaviour(),
            )?);
        }
        let field_mask = fields.iter().fold(0, |m, f| m | f.mask);
        let reserved_read = r.reserved_read.unwrap_or(0);
        if reserved_read & !(width_mask & !field_mask) != 0 {
            return fail(
                format!("{key}.reserved_read"),
                format!("{reserved_read:#x} sets bits that are not reserved (fields cover {field_mask:#x})"),
            );
        }
        let readable = fields.iter().any(|f| f.access.read || f.value.is_some());
        let writable = fields.iter().any(|f| f.access.write);
        let reset = fields.iter().fold(0, |v, f| v | f.reset);

        let (first, _, is_array) = self.reg_names.get(&r.name).copied().unwrap_or_default();
        if is_array {
            self.arrays.push(ArrayInfo {
                name: r.name.clone(),
                count,
                stride,
                first,
            });
        }
        let array_index = self.arrays.len().saturating_sub(1) as u32;
        for k in 0..count {
            let offset = u64::from(k)
                .checked_mul(stride)
                .and_then(|o| o.checked_add(r.offset.checked_mul(1u64 << self.shift)?))
                .filter(|o| {
                    o.checked_add(u64::from(width))
                        .is_some_and(|end| end <= MAX_REGISTER_SPAN)
                });
            let Some(offset) = offset else {
                return fail(
                    format!("{key}.offset"),
                    format!(
                        "registers must lie below {MAX_REGISTER_SPAN:#x}; put large buffers in a [[memory]] window"
                    ),
                );
            };
            let name = if is_array {
                format!("{}[{k}]", r.name)
            } else {
                r.name.clone()
            };
            let mut inst_fields = fields.clone();
            for f in &mut inst_fields {
                f.path = if declared {
                    format!("{name}.{}", f.name)
                } else {
                    name.clone()
                };
                if !declared {
                    f.name.clone_from(&name);
                }
            }
            self.registers.push(Register {
                name,
                array: is_array.then_some((array_index, k)),
                offset,
                width,
                reset,
                description: r.description.clone(),
                fields: inst_fields,
                declared_fields: declared,
                readable,
                writable,
                widths,
                bad_width: r.bad_width,
                when: None,
                pop: None,
                push: None,
                trace: r.trace.unwrap_or(default_trace),
                volatile: r.volatile,
                reserved_read,
                field_mask,
                read_mask: 0,
                computed_mask: 0,
                width_mask,
                plain: false,
                write_masks: WriteMasks::default(),
                write_effects: Vec::new(),
                read_effects: Vec::new(),
            });
        }
        Ok(())
    }

    /// Expressions and references of register `i`'s instances.
    fn resolve_register(&mut self, i: usize, r: &RegisterDesc) -> Result<(), DescriptionError> {
        let key = format!("register[{i}]");
        let (first, count, _) = self.reg_names.get(&r.name).copied().unwrap_or_default();
        let fifo = |k: &str, name: &Option<String>| -> Result<Option<u32>, DescriptionError> {
            match name {
                None => Ok(None),
                Some(n) => match self.fifo_names.get(n) {
                    Some(idx) => Ok(Some(*idx)),
                    None => fail(format!("{key}.{k}"), format!("no FIFO named `{n}`")),
                },
            }
        };
        let pop = fifo("pop", &r.pop)?;
        let push = fifo("push", &r.push)?;
        for k in 0..count {
            let idx = (first + k) as usize;
            let subst = |text: &str| text.replace("[i]", &format!("[{k}]"));
            let when = match &r.when {
                Some(text) => Some(self.expr(&format!("{key}.when"), &subst(text))?),
                None => None,
            };
            let mut values = Vec::new();
            let declared = !r.fields.is_empty();
            for (j, f) in self
                .registers
                .get(idx)
                .map(|reg| reg.fields.clone())
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let fdesc_beh = if declared {
                    r.fields.get(j).map(FieldDesc::behaviour)
                } else {
                    Some(r.behaviour())
                };
                let fkey = if declared {
                    format!("{key}.field[{j}]")
                } else {
                    key.clone()
                };
                let beh = fdesc_beh.unwrap_or_default();
                let value = match &beh.value {
                    Some(text) => Some(self.expr(&format!("{fkey}.value"), &subst(text))?),
                    None => None,
                };
                let counter = match &beh.counter {
                    Some(c) => Some(Counter {
                        saturate: c.saturate,
                        overflow: c
                            .overflow
                            .as_ref()
                            .map(|n| self.field_ref(&format!("{fkey}.counter.overflow"), &subst(n)))
                            .transpose()?,
                        underflow: c
                            .underflow
                            .as_ref()
                            .map(|n| self.field_ref(&format!("{fkey}.counter.underflow"), &subst(n)))
                            .transpose()?,
                    }),
                    None => None,
                };
                values.push((f.clone(), value, counter));
            }
            if let Some(reg) = self.registers.get_mut(idx) {
                reg.when = when;
                reg.pop = pop;
                reg.push = push;
                for (slot, (_, value, counter)) in reg.fields.iter_mut().zip(values) {
                    if value.is_some() {
                        slot.access.write = false;
                    }
                    slot.value = value;
                    slot.counter = counter;
                }
                reg.readable = reg.fields.iter().any(|f| f.access.read || f.value.is_some()) || reg.pop.is_some();
                reg.writable = reg.fields.iter().any(|f| f.access.write) || reg.push.is_some();
            }
        }
        Ok(())
    }

    fn operand(&self, name: &str) -> Result<Operand, String> {
        if name == "value" {
            return Ok(Operand::Value);
        }
        if let Some((fifo, prop)) = name.split_once('.')
            && let Some(idx) = self.fifo_names.get(fifo)
        {
            let prop = match prop {
                "level" => FifoProp::Level,
                "empty" => FifoProp::Empty,
                "full" => FifoProp::Full,
                "free" => FifoProp::Free,
                "depth" => FifoProp::Depth,
                _ => {
                    return Err(format!(
                        "FIFO `{fifo}` has no `{prop}`: use level, empty, full, free or depth"
                    ));
                }
            };
            return Ok(Operand::Fifo { fifo: *idx, prop });
        }
        let r = self.resolve_field(name)?;
        Ok(Operand::Field {
            reg: r.reg,
            shift: r.shift,
            mask: r.mask,
        })
    }

    /// `REG`, `REG.FIELD`, `REG[k]`, `REG[k].FIELD`.
    fn resolve_field(&self, name: &str) -> Result<FieldRef, String> {
        let (reg_part, field) = match name.split_once('.') {
            Some((r, f)) => (r, Some(f)),
            None => (name, None),
        };
        let (base, index) = match reg_part.split_once('[') {
            Some((b, rest)) => {
                let n = rest
                    .strip_suffix(']')
                    .and_then(parse_int)
                    .ok_or_else(|| format!("`{name}`: an index is written `NAME[3]`"))?;
                (b, Some(n))
            }
            None => (reg_part, None),
        };
        let Some(&(first, count, is_array)) = self.reg_names.get(base) else {
            return Err(format!("no register or FIFO named `{base}`"));
        };
        let k = match (is_array, index) {
            (true, Some(k)) if k < u64::from(count) => k as u32,
            (true, Some(k)) => return Err(format!("`{base}[{k}]`: `{base}` has {count} elements")),
            (true, None) => {
                return Err(format!(
                    "`{base}` is an array of {count}: name an element, `{base}[0]`..`{base}[{}]`",
                    count - 1
                ));
            }
            (false, Some(_)) => return Err(format!("`{base}` is not an array")),
            (false, None) => 0,
        };
        let reg = first + k;
        let Some(r) = self.registers.get(reg as usize) else {
            return Err(format!("no register named `{base}`"));
        };
        match field {
            // The whole register: the bits its fields cover (reserved bits hold no state).
            None => Ok(FieldRef {
                reg,
                field: None,
                shift: 0,
                mask: if r.declared_fields { r.field_mask } else { r.width_mask },
            }),
            Some(f) => match r.fields.iter().position(|x| x.name == f && r.declared_fields) {
                Some(j) => {
                    let fld = r.fields.get(j).ok_or_else(|| format!("no field `{f}`"))?;
                    Ok(FieldRef {
                        reg,
                        field: Some(j as u32),
                        shift: fld.shift,
                        mask: fld.mask,
                    })
                }
                None => Err(format!("register `{base}` has no field `{f}`")),
            },
        }
    }

    fn expr(&self, key: &str, text: &str) -> Result<Expr, DescriptionError> {
        Expr::parse(text, &|n| self.operand(n)).or_else(|reason| fail(key, reason))
    }

    fn field_ref(&self, key: &str, name: &str) -> Result<FieldRef, DescriptionError> {
        self.resolve_field(name.trim()).or_else(|reason| fail(key, reason))
    }

    fn compile_fifos(&self, desc: &Description) -> Result<Vec<Fifo>, DescriptionError> {
        let mut out = Vec::new();
        let mut total = 0u64;
        for (i, f) in desc.fifos.iter().enumerate() {
            let key = format!("fifo[{i}]");
            if f.depth == 0 || f.depth > MAX_FIFO_DEPTH {
                return fail(
                    format!("{key}.depth"),
                    format!("{}: a FIFO holds 1..={MAX_FIFO_DEPTH} elements", f.depth),
                );
            }
            total += u64::from(f.depth);
            if total > MAX_FIFO_TOTAL {
                return fail(
                    format!("{key}.depth"),
                    format!("the FIFOs of a device hold at most {MAX_FIFO_TOTAL} elements together"),
                );
            }
            let width = f.width.unwrap_or(8);
            if width == 0 || width > 64 {
                return fail(
                    format!("{key}.width"),
                    format!("{width} bits: an element is 1..=64 bits"),
                );
            }
            let flag =
                |k: &str, n: &Option<String>| n.as_ref().map(|n| self.field_ref(&format!("{key}.{k}"), n)).transpose();
            let empty_read = f.empty_read.unwrap_or(0);
            if empty_read & !bits_mask(width) != 0 {
                return fail(
                    format!("{key}.empty_read"),
                    format!("{empty_read:#x} does not fit in {width} bits"),
                );
            }
            out.push(Fifo {
                name: f.name.clone(),
                depth: f.depth,
                width,
                overflow: flag("overflow", &f.overflow)?,
                underflow: flag("underflow", &f.underflow)?,
                empty_read,
                forbid_read_empty: f.forbid_read_empty,
                forbid_write_full: f.forbid_write_full,
                description: f.description.clone(),
                push_effects: Vec::new(),
                pop_effects: Vec::new(),
            });
        }
        Ok(out)
    }

    fn compile_interrupts(&self, desc: &Description) -> Result<Vec<Interrupt>, DescriptionError> {
        let mut out = Vec::new();
        for (i, irq) in desc.interrupts.iter().enumerate() {
            let key = format!("interrupt[{i}]");
            if irq.line as usize >= MAX_INTERRUPTS {
                return fail(
                    format!("{key}.line"),
                    format!("{}: a device has lines 0..{MAX_INTERRUPTS}", irq.line),
                );
            }
            let when = irq
                .when
                .as_ref()
                .map(|w| self.expr(&format!("{key}.when"), w))
                .transpose()?;
            if when.is_none() && irq.trigger == Trigger::Level {
                return fail(
                    key,
                    "a level interrupt needs a `when` condition (a pulse-only output is `trigger = \"edge\"`)",
                );
            }
            out.push(Interrupt {
                name: irq.name.clone(),
                when,
                trigger: irq.trigger,
                line: irq.line,
                description: irq.description.clone(),
            });
        }
        // One line carries one trigger type: the device tree has one type per interrupt.
        for a in &out {
            if let Some(b) = out.iter().find(|b| b.line == a.line && b.trigger != a.trigger) {
                return fail(
                    "interrupt",
                    format!(
                        "`{}` and `{}` share line {} but one is level and the other edge",
                        a.name, b.name, a.line
                    ),
                );
            }
        }
        Ok(out)
    }

    fn compile_effects(&mut self, desc: &Description, model: &mut Model) -> Result<(), DescriptionError> {
        let mut effects = Vec::new();
        for (i, e) in desc.effects.iter().enumerate() {
            let key = format!("effect[{i}]");
            let name = e.name.clone().unwrap_or_else(|| format!("effect[{i}]"));
            if e.on.contains("[i]") {
                let count = self.array_count_in(&e.on).ok_or_else(|| DescriptionError {
                    file: PathBuf::new(),
                    key: format!("{key}.on"),
                    reason: format!("`{}` uses [i] but names no register array", e.on),
                })?;
                self.charge(&key, effect_bytes(e), count)?;
                if effects.len() + count as usize > MAX_EFFECTS {
                    return fail(
                        key,
                        format!("more than {MAX_EFFECTS} effects (`[i]` effects counted element by element)"),
                    );
                }
                for k in 0..count {
                    let s = |t: &str| t.replace("[i]", &format!("[{k}]"));
                    let inst = EffectDesc {
                        name: Some(format!("{name}[{k}]")),
                        on: s(&e.on),
                        condition: e.condition.as_deref().map(s),
                        after: e.after.clone(),
                        after_accesses: e.after_accesses,
                        actions: e.actions.iter().map(|a| s(a)).collect(),
                        description: None,
                    };
                    effects.push(self.effect(&key, &inst, format!("{name}[{k}]"))?);
                }
            } else {
                self.charge(&key, effect_bytes(e), 1)?;
                if effects.len() >= MAX_EFFECTS {
                    return fail(
                        key,
                        format!("more than {MAX_EFFECTS} effects (`[i]` effects counted element by element)"),
                    );
                }
                effects.push(self.effect(&key, e, name)?);
            }
        }
        let mut names = HashSet::new();
        for (i, e) in effects.iter().enumerate() {
            if !names.insert(e.name.as_str()) {
                return fail(
                    format!("effect[{i}].name"),
                    format!("effect name `{}` is used twice", e.name),
                );
            }
        }
        for (idx, e) in effects.iter().enumerate() {
            let idx = idx as u32;
            match e.trigger {
                EffectTrigger::Write(reg, mask) => {
                    if let Some(r) = self.registers.get_mut(reg as usize) {
                        r.write_effects.push((mask, idx));
                    }
                }
                EffectTrigger::Read(reg, mask) => {
                    if let Some(r) = self.registers.get_mut(reg as usize) {
                        r.read_effects.push((mask, idx));
                    }
                }
                EffectTrigger::Push(f) => {
                    if let Some(fifo) = model.fifos.get_mut(f as usize) {
                        fifo.push_effects.push(idx);
                    }
                }
                EffectTrigger::Pop(f) => {
                    if let Some(fifo) = model.fifos.get_mut(f as usize) {
                        fifo.pop_effects.push(idx);
                    }
                }
                EffectTrigger::Reset => model.reset_effects.push(idx),
            }
        }
        check_effect_cycles(&effects, model)?;
        model.effects = effects;
        Ok(())
    }

    fn compile_orders(&self, desc: &Description) -> Result<Vec<Order>, DescriptionError> {
        if desc.orders.len() > MAX_ORDERS {
            return fail("order", format!("more than {MAX_ORDERS} order rules"));
        }
        let mut out: Vec<Order> = Vec::new();
        for (i, o) in desc.orders.iter().enumerate() {
            let key = format!("order[{i}]");
            out.push(self.order(&key, o)?);
            if out.iter().filter(|x| x.name == o.name).count() > 1 {
                return fail(
                    format!("{key}.name"),
                    format!("order rule name `{}` is used twice", o.name),
                );
            }
        }
        Ok(out)
    }

    fn order(&self, key: &str, o: &OrderDesc) -> Result<Order, DescriptionError> {
        check_name(&format!("{key}.name"), &o.name)?;
        let on_key = format!("{key}.on");
        let words: Vec<&str> = o.on.split_whitespace().collect();
        let [verb, target] = words.as_slice() else {
            return fail(
                on_key,
                format!(
                    "`{}`: an order rule judges `write REG[.FIELD]` or `read REG[.FIELD]`",
                    o.on
                ),
            );
        };
        let write = match *verb {
            "write" => true,
            "read" => false,
            _ => {
                return fail(
                    on_key,
                    format!(
                        "`{}`: an order rule judges `write REG[.FIELD]` or `read REG[.FIELD]`",
                        o.on
                    ),
                );
            }
        };
        if target.contains("[i]") {
            return fail(
                on_key,
                format!("`{target}`: name one element (`REG[0]`); order rules do not expand `[i]`"),
            );
        }
        let r = self.field_ref(&on_key, target)?;
        let reg = self.registers.get(r.reg as usize);
        if write && !reg.is_some_and(|x| x.writable || x.push.is_some()) {
            return fail(on_key, format!("`{target}` cannot be written by software"));
        }
        if !write && !reg.is_some_and(|x| x.readable || x.pop.is_some()) {
            return fail(on_key, format!("`{target}` cannot be read by software"));
        }
        let require = self.expr(&format!("{key}.require"), &o.require)?;
        Ok(Order {
            name: o.name.clone(),
            write,
            reg: r.reg,
            mask: if r.field.is_none() { ANY_BITS } else { r.mask },
            require,
            require_text: o.require.trim().to_owned(),
        })
    }

    fn array_count_in(&self, on: &str) -> Option<u32> {
        let word = on.split_whitespace().nth(1)?;
        let base = word.split('[').next()?;
        self.reg_names.get(base).filter(|(_, _, arr)| *arr).map(|(_, c, _)| *c)
    }

    fn effect(&self, key: &str, e: &EffectDesc, name: String) -> Result<Effect, DescriptionError> {
        let on_key = format!("{key}.on");
        let mut words = e.on.split_whitespace();
        let verb = words.next().unwrap_or_default();
        let target = words.next();
        if words.next().is_some() {
            return fail(
                on_key,
                format!(
                    "`{}`: a trigger is `write REG[.FIELD]`, `read REG[.FIELD]`, `push FIFO`, `pop FIFO` or `reset`",
                    e.on
                ),
            );
        }
        let fifo = |t: Option<&str>| -> Result<u32, DescriptionError> {
            let t = t.unwrap_or_default();
            self.fifo_names.get(t).copied().ok_or_else(|| DescriptionError {
                file: PathBuf::new(),
                key: on_key.clone(),
                reason: format!("no FIFO named `{t}`"),
            })
        };
        let trigger = match (verb, target) {
            ("write" | "read", Some(t)) => {
                let r = self.field_ref(&on_key, t)?;
                let reg = self.registers.get(r.reg as usize);
                if verb == "write" {
                    if !reg.is_some_and(|x| x.writable || x.push.is_some()) {
                        return fail(on_key, format!("`{t}` cannot be written by software"));
                    }
                    EffectTrigger::Write(r.reg, if r.field.is_none() { ANY_BITS } else { r.mask })
                } else {
                    if !reg.is_some_and(|x| x.readable) {
                        return fail(on_key, format!("`{t}` cannot be read by software"));
                    }
                    EffectTrigger::Read(r.reg, if r.field.is_none() { ANY_BITS } else { r.mask })
                }
            }
            ("push", t @ Some(_)) => EffectTrigger::Push(fifo(t)?),
            ("pop", t @ Some(_)) => EffectTrigger::Pop(fifo(t)?),
            ("reset", None) => EffectTrigger::Reset,
            _ => {
                return fail(
                    on_key,
                    format!(
                        "`{}`: a trigger is `write REG[.FIELD]`, `read REG[.FIELD]`, `push FIFO`, `pop FIFO` or `reset`",
                        e.on
                    ),
                );
            }
        };
        let condition = e
            .condition
            .as_ref()
            .map(|c| self.expr(&format!("{key}.if"), c))
            .transpose()?;
        let delay = match (&e.after, e.after_accesses) {
            (Some(_), Some(_)) => return fail(key, "give `after` or `after_accesses`, not both"),
            (Some(t), None) => match parse_delay(t) {
                Some(0) => return fail(format!("{key}.after"), "a delay of 0: leave `after` out to act at once"),
                Some(ns) => Delay::Ns(ns),
                None => {
                    return fail(
                        format!("{key}.after"),
                        format!("`{t}` is not a delay: write a number and ns, us, ms or s, e.g. \"50us\""),
                    );
                }
            },
            (None, Some(0)) => return fail(format!("{key}.after_accesses"), "0: leave it out to act at once"),
            (None, Some(n)) => Delay::Accesses(n),
            (None, None) => Delay::None,
        };
        if e.actions.is_empty() {
            return fail(format!("{key}.do"), "an effect needs at least one action");
        }
        let mut actions = Vec::new();
        for (j, a) in e.actions.iter().enumerate() {
            actions.push(self.action(&format!("{key}.do[{j}]"), a)?);
        }
        Ok(Effect {
            name,
            trigger,
            condition,
            delay,
            actions,
        })
    }

    fn action(&self, key: &str, text: &str) -> Result<Action, DescriptionError> {
        let t = text.trim();
        let syntax = || {
            fail(
                key,
                format!(
                    "`{t}`: an action is `set F`, `clear F`, `toggle F`, `F = EXPR`, `F += EXPR`, `F -= EXPR`, `push FIFO [EXPR]`, `pop FIFO [into F]`, `flush FIFO`, `pulse IRQ` or `reset`"
                ),
            )
        };
        let target = |name: &str| -> Result<FieldRef, DescriptionError> {
            let r = self.field_ref(key, name)?;
            if let Some(reg) = self.registers.get(r.reg as usize) {
                let computed = reg.fields.iter().any(|f| f.mask & r.mask != 0 && f.value.is_some());
                if computed {
                    return fail(
                        key,
                        format!("`{name}` is computed (`value = ...`): an effect cannot store into it"),
                    );
                }
            }
            Ok(r)
        };
        let fifo = |name: &str| -> Result<u32, DescriptionError> {
            self.fifo_names.get(name).copied().ok_or_else(|| DescriptionError {
                file: PathBuf::new(),
                key: key.to_owned(),
                reason: format!("no FIFO named `{name}`"),
            })
        };
        for (op, make) in [("+=", Action::Add as fn(FieldRef, Expr) -> Action), ("-=", Action::Sub)] {
            if let Some((l, r)) = t.split_once(op) {
                return Ok(make(target(l.trim())?, self.expr(key, r)?));
            }
        }
        if let Some((l, r)) = t.split_once('=')
            && !r.starts_with('=')
            && !l.ends_with(['!', '<', '>', '='])
        {
            return Ok(Action::Assign(target(l.trim())?, self.expr(key, r)?));
        }
        let (verb, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let rest = rest.trim();
        match verb {
            "set" if !rest.is_empty() => Ok(Action::Set(target(rest)?)),
            "clear" if !rest.is_empty() => Ok(Action::Clear(target(rest)?)),
            "toggle" if !rest.is_empty() => Ok(Action::Toggle(target(rest)?)),
            "push" if !rest.is_empty() => {
                let (f, e) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let e = e.trim();
                let value = if e.is_empty() { None } else { Some(self.expr(key, e)?) };
                Ok(Action::Push(fifo(f)?, value))
            }
            "pop" if !rest.is_empty() => {
                let mut w = rest.split_whitespace();
                let f = fifo(w.next().unwrap_or_default())?;
                match (w.next(), w.next(), w.next()) {
                    (None, _, _) => Ok(Action::Pop(f, None)),
                    (Some("into"), Some(dst), None) => Ok(Action::Pop(f, Some(target(dst)?))),
                    _ => syntax(),
                }
            }
            "flush" if !rest.is_empty() => Ok(Action::Flush(fifo(rest)?)),
            "pulse" if !rest.is_empty() => match self.irq_names.get(rest) {
                Some(i) => Ok(Action::Pulse(*i)),
                None => fail(key, format!("no interrupt named `{rest}`")),
            },
            "reset" if rest.is_empty() => Ok(Action::Reset),
            _ => syntax(),
        }
    }
}

impl RegisterDesc {
    fn behaviour_keys_set(&self) -> bool {
        self.sw.is_some()
            || self.on_write.is_some()
            || self.on_read.is_some()
            || self.singlepulse
            || self.sticky
            || self.value.is_some()
            || self.values.is_some()
            || self.counter.is_some()
    }
}

fn field_from(
    key: &str,
    f: &FieldDesc,
    reg_name: &str,
    shift: u32,
    mask: u64,
    reset: u64,
    b: Behaviour,
) -> Result<Field, DescriptionError> {
    let access = match b.sw.as_deref().unwrap_or("rw") {
        "rw" | "read-write" => Access {
            read: true,
            write: true,
            once: false,
        },
        "ro" | "r" | "read-only" => Access {
            read: true,
            write: false,
            once: false,
        },
        "wo" | "w" | "write-only" => Access {
            read: false,
            write: true,
            once: false,
        },
        "w1" | "writeOnce" => Access {
            read: false,
            write: true,
            once: true,
        },
        "rw1" | "read-writeOnce" => Access {
            read: true,
            write: true,
            once: true,
        },
        "na" => Access {
            read: false,
            write: false,
            once: false,
        },
        other => {
            return fail(
                format!("{key}.sw"),
                format!(
                    "unknown access `{other}`: use rw, ro, wo, w1, rw1 or na (or SVD's read-write, read-only, write-only, writeOnce, read-writeOnce)"
                ),
            );
        }
    };
    let on_write = match b.on_write.as_deref() {
        None => OnWrite::Write,
        Some(s) => OnWrite::parse(s).ok_or_else(|| DescriptionError {
            file: PathBuf::new(),
            key: format!("{key}.on_write"),
            reason: format!("unknown write behaviour `{s}`: use write, w1c, w1s, w1t, w0c, w0s, w0t, wclr or wset (or SVD's oneToClear, ...)"),
        })?,
    };
    if on_write != OnWrite::Write && !access.write {
        return fail(
            format!("{key}.on_write"),
            "the field cannot be written (sw), so it has no write behaviour",
        );
    }
    let on_read = match b.on_read.as_deref() {
        None | Some("none") => OnRead::None,
        Some("rclr" | "clear") => OnRead::Clear,
        Some("rset" | "set") => OnRead::Set,
        Some(s) => {
            return fail(
                format!("{key}.on_read"),
                format!("unknown read behaviour `{s}`: use rclr or rset (SVD's clear or set)"),
            );
        }
    };
    if on_read != OnRead::None && !access.read {
        return fail(
            format!("{key}.on_read"),
            "the field cannot be read (sw), so it has no read behaviour",
        );
    }
    if b.singlepulse && matches!(on_write, OnWrite::OneToClear | OnWrite::Clear) {
        return fail(
            format!("{key}.singlepulse"),
            "a self-clearing field cannot also be cleared by writes (w1c, wclr)",
        );
    }
    if b.singlepulse && !access.write {
        return fail(format!("{key}.singlepulse"), "a self-clearing field must be writable");
    }
    if b.value.is_some() && (b.on_write.is_some() || b.on_read.is_some() || b.singlepulse || b.sticky) {
        return fail(
            format!("{key}.value"),
            "a computed field has no stored bits: drop on_write, on_read, singlepulse and sticky",
        );
    }
    let width = mask.count_ones();
    let mut values: Vec<(String, u64)> = Vec::new();
    for (n, v) in b.values.iter().flatten() {
        check_name(&format!("{key}.values"), n)?;
        if *v > bits_mask(width) {
            return fail(
                format!("{key}.values.{n}"),
                format!("{v:#x} does not fit in {width} bits"),
            );
        }
        values.push((n.clone(), *v));
    }
    values.sort_by_key(|(_, v)| *v);
    let path = if reg_name.is_empty() {
        f.name.clone()
    } else {
        format!("{reg_name}.{}", f.name)
    };
    Ok(Field {
        name: f.name.clone(),
        path,
        shift,
        mask,
        reset,
        description: f.description.clone(),
        access,
        on_write,
        on_read,
        singlepulse: b.singlepulse,
        sticky: b.sticky,
        value: None,
        values,
        counter: None,
    })
}

fn compile_memories(desc: &Description) -> Result<Vec<Memory>, DescriptionError> {
    let mut out: Vec<Memory> = Vec::new();
    let mut names = HashSet::new();
    let mut trapped = 0u64;
    for (i, m) in desc.memories.iter().enumerate() {
        let key = format!("memory[{i}]");
        check_name(&format!("{key}.name"), &m.name)?;
        if !names.insert(m.name.as_str()) {
            return fail(key, format!("memory name `{}` is used twice", m.name));
        }
        if m.size == 0 {
            return fail(format!("{key}.size"), "a memory window needs at least one byte");
        }
        if m.offset.checked_add(m.size).is_none() {
            return fail(key, "offset + size overflows");
        }
        match m.backing {
            Backing::Memslot => {
                if m.offset % PAGE != 0 || m.size % PAGE != 0 {
                    return fail(
                        key,
                        format!(
                            "a memslot window needs whole pages: offset {:#x} and size {:#x} must be multiples of {PAGE:#x}",
                            m.offset, m.size
                        ),
                    );
                }
            }
            Backing::Trapped => {
                if m.size > MAX_TRAPPED_MEMORY {
                    return fail(
                        format!("{key}.size"),
                        format!(
                            "{:#x}: a trapped window holds at most {MAX_TRAPPED_MEMORY:#x} bytes",
                            m.size
                        ),
                    );
                }
                trapped += m.size;
                if trapped > MAX_TRAPPED_TOTAL {
                    return fail(
                        format!("{key}.size"),
                        format!("the trapped windows of a device hold at most {MAX_TRAPPED_TOTAL:#x} bytes together"),
                    );
                }
            }
        }
        out.push(Memory {
            name: m.name.clone(),
            offset: m.offset,
            size: m.size,
            backing: m.backing,
            readonly: m.readonly,
            fill: m.fill,
            description: m.description.clone(),
        });
    }
    out.sort_by_key(|m| m.offset);
    Ok(out)
}

fn check_memory_overlaps(model: &Model) -> Result<(), DescriptionError> {
    for pair in model.memories.windows(2) {
        if let [a, b] = pair
            && a.offset + a.size > b.offset
        {
            return fail("memory", format!("windows `{}` and `{}` overlap", a.name, b.name));
        }
    }
    // Slots are sorted by offset and do not overlap: the first that ends after a window's
    // start is the only one that can overlap it first (no scan of every register per window).
    for m in &model.memories {
        let first = model
            .slots
            .partition_point(|s| s.offset + u64::from(s.width) <= m.offset);
        if let Some(slot) = model.slots.get(first)
            && slot.offset < m.offset + m.size
        {
            let name = slot
                .candidates
                .first()
                .and_then(|r| model.registers.get(*r as usize))
                .map_or("?", |r| r.name.as_str());
            return fail("memory", format!("window `{}` overlaps register `{name}`", m.name));
        }
    }
    Ok(())
}

/// Groups registers into slots and builds the byte map; refuses overlaps that no rule
/// allows.
fn build_slots(desc: &Description, model: &mut Model) -> Result<(), DescriptionError> {
    let mut by_place: BTreeMap<(u64, u8), Vec<u32>> = BTreeMap::new();
    for (i, r) in model.registers.iter().enumerate() {
        by_place.entry((r.offset, r.width)).or_default().push(i as u32);
    }
    let key_of = |reg: &Register| -> String {
        let base = reg.name.split('[').next().unwrap_or_default();
        desc.registers
            .iter()
            .position(|d| d.name == base)
            .map_or_else(|| "register".to_owned(), |p| format!("register[{p}]"))
    };
    // Registers sharing a place: each direction needs a condition unless only one answers.
    for candidates in by_place.values() {
        for (n, &a) in candidates.iter().enumerate() {
            for &b in candidates.iter().skip(n + 1) {
                let (Some(ra), Some(rb)) = (model.registers.get(a as usize), model.registers.get(b as usize)) else {
                    continue;
                };
                let both_read = ra.readable && rb.readable;
                let both_write = ra.writable && rb.writable;
                if (both_read || both_write) && ra.when.is_none() {
                    return fail(
                        key_of(rb),
                        format!(
                            "`{}` shares offset {:#x} with `{}`, and both can be {}: give `{}` a `when` condition (banked view), or make one read-only and the other write-only",
                            rb.name,
                            rb.offset,
                            ra.name,
                            if both_read { "read" } else { "written" },
                            ra.name
                        ),
                    );
                }
            }
        }
    }
    let span = model
        .registers
        .iter()
        .map(|r| r.offset + u64::from(r.width))
        .max()
        .unwrap_or(0);
    let mut byte_slot = vec![0u16; span as usize];
    let mut slots = Vec::new();
    for ((offset, width), candidates) in by_place {
        let idx = slots.len();
        if idx >= usize::from(u16::MAX) {
            return fail("register", "too many distinct register places");
        }
        for b in offset..offset + u64::from(width) {
            if let Some(cell) = byte_slot.get_mut(b as usize) {
                if *cell != 0 {
                    let other = slots
                        .get(usize::from(*cell) - 1)
                        .and_then(|s: &Slot| s.candidates.first())
                        .and_then(|r| model.registers.get(*r as usize))
                        .map_or("another register", |r| r.name.as_str());
                    let this = candidates.first().and_then(|r| model.registers.get(*r as usize));
                    let (name, key) = this.map_or(("register".to_owned(), "register".to_owned()), |r| {
                        (r.name.clone(), key_of(r))
                    });
                    return fail(
                        key,
                        format!(
                            "`{name}` at {offset:#x} overlaps `{other}` (registers that share bytes must share offset and width)"
                        ),
                    );
                }
                *cell = (idx + 1) as u16;
            }
        }
        slots.push(Slot {
            offset,
            width,
            candidates,
        });
    }
    model.slots = slots;
    model.byte_slot = byte_slot;
    Ok(())
}

/// Effects that run at once and feed each other through FIFO pushes, pops or resets
/// would loop forever inside one access.
///
/// A depth-first search with its own stack (a chain of 100 000 effects must not overflow
/// the thread's), over effects and groups: every FIFO's push and pop triggers and the reset
/// trigger are one node each, so an effect that pushes a FIFO with many push effects costs
/// one edge, not one per effect (linear in the description, not quadratic).
fn check_effect_cycles(effects: &[Effect], model: &Model) -> Result<(), DescriptionError> {
    let n = effects.len();
    let reset_group = n + 2 * model.fifos.len();
    let immediate = |e: u32| effects.get(e as usize).is_some_and(|x| x.delay == Delay::None);
    let successors = |node: usize| -> Vec<usize> {
        if let Some(e) = effects.get(node) {
            if e.delay != Delay::None {
                return Vec::new();
            }
            return e
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::Push(f, _) => Some(n + 2 * *f as usize),
                    Action::Pop(f, _) => Some(n + 2 * *f as usize + 1),
                    Action::Reset => Some(reset_group),
                    _ => None,
                })
                .collect();
        }
        let group = node - n;
        let list: &[u32] = if node == reset_group {
            &model.reset_effects
        } else {
            match model.fifos.get(group / 2) {
                Some(f) if group & 1 == 0 => &f.push_effects,
                Some(f) => &f.pop_effects,
                None => &[],
            }
        };
        list.iter().filter(|e| immediate(**e)).map(|e| *e as usize).collect()
    };
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; reset_group + 1];
    for root in 0..n {
        if state.get(root) != Some(&0) {
            continue;
        }
        if let Some(s) = state.get_mut(root) {
            *s = 1;
        }
        // (node, its successors, how many of them were visited)
        let mut stack = vec![(root, successors(root), 0usize)];
        while let Some((node, next, done)) = stack.last_mut() {
            let node = *node;
            let Some(&succ) = next.get(*done) else {
                if let Some(s) = state.get_mut(node) {
                    *s = 2;
                }
                stack.pop();
                continue;
            };
            *done += 1;
            match state.get(succ) {
                Some(0) => {
                    if let Some(s) = state.get_mut(succ) {
                        *s = 1;
                    }
                    stack.push((succ, successors(succ), 0));
                }
                Some(1) => {
                    // Back to a node on the stack: a cycle. Name its effect (a group is
                    // reached from the effect on top of the stack).
                    let found = if succ < n { succ } else { node };
                    let name = effects.get(found).map_or("?", |e| e.name.as_str());
                    return fail(
                        "effect",
                        format!(
                            "effects without a delay fire each other in a cycle through `{name}`: give one of them `after` or `after_accesses`"
                        ),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(text: &str) -> String {
        match compile_text(text, Path::new("d.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const REG: &str = "[[register]]\nname = \"R\"\noffset = 0\n";

    /// The masks compute what the field-by-field rule computes, for every behaviour, at
    /// every lane set, with write-once fields used up or not.
    #[test]
    fn write_masks_agree_with_the_field_rule() {
        let ops = [
            OnWrite::Write,
            OnWrite::OneToClear,
            OnWrite::OneToSet,
            OnWrite::OneToToggle,
            OnWrite::ZeroToClear,
            OnWrite::ZeroToSet,
            OnWrite::ZeroToToggle,
            OnWrite::Clear,
            OnWrite::Set,
        ];
        // Nine 4-bit fields, one per behaviour, then a read-only, a write-once and a
        // computed one; bits 48.. are reserved.
        let mut fields: Vec<Field> = Vec::new();
        let field = |shift: u32, on_write: OnWrite, write: bool, once: bool| Field {
            name: format!("F{shift}"),
            path: format!("R.F{shift}"),
            shift,
            mask: 0xf << shift,
            reset: 0,
            description: None,
            access: Access {
                read: true,
                write,
                once,
            },
            on_write,
            on_read: OnRead::None,
            singlepulse: false,
            sticky: false,
            value: None,
            values: Vec::new(),
            counter: None,
        };
        for (k, op) in ops.iter().enumerate() {
            fields.push(field(4 * k as u32, *op, true, false));
        }
        fields.push(field(36, OnWrite::Write, false, false));
        fields.push(field(40, OnWrite::OneToSet, true, true));
        let mut computed = field(44, OnWrite::Write, false, false);
        computed.value = Some(Expr::parse("1", &|_| Err(String::new())).unwrap_or_else(|e| panic!("{e}")));
        fields.push(computed);
        let masks = WriteMasks::of(&fields);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let (old, w) = (next(), next());
            let lanes = [u64::MAX, 0xff, 0xff00, 0xffff_0000, 0xff << 40][(next() % 5) as usize];
            let done = if next() % 2 == 0 { 0xf << 40 } else { 0 };
            let mut want = old;
            for f in fields.iter().filter(|f| f.value.is_none()) {
                let m = f.mask & lanes;
                if m == 0 || !f.access.write || (f.access.once && done & f.mask != 0) {
                    continue;
                }
                want = (want & !m) | f.on_write.apply(old & m, w & m, m);
            }
            assert_eq!(
                masks.apply(old, w, lanes, done),
                want,
                "old {old:#x} w {w:#x} lanes {lanes:#x} done {done:#x}"
            );
        }
    }

    #[test]
    fn every_refusal_names_file_key_and_reason() {
        let cases: &[(&str, &str)] = &[
            (
                "[[register]]\nname = \"R\"\noffset = 0\nwidth = 12\n",
                "d.toml: register[0].width: 12 bits: a register is 8, 16, 32 or 64 bits wide",
            ),
            (
                "[[register]]\nname = \"R\"\noffset = 0\nwidth = 8\nreset = 0x100\n",
                "d.toml: register[0].reset: 0x100 does not fit in 8 bits",
            ),
            (
                "[[register]]\nname = \"1R\"\noffset = 0\n",
                "d.toml: register[0].name: name `1R`: use 1-64 letters, digits and `_`, starting with a letter or `_`",
            ),
            (
                "[[register]]\nname = \"value\"\noffset = 0\n",
                "d.toml: register[0].name: `value` is reserved: in expressions it means the access's value",
            ),
            (
                &format!("{REG}{REG}"),
                "d.toml: register[1]: register name `R` is used twice",
            ),
            (
                &format!(
                    "{REG}[[register.field]]\nname = \"A\"\nbits = \"7:4\"\n[[register.field]]\nname = \"B\"\nbits = \"4:0\"\n"
                ),
                "d.toml: register[0].field[1].bits: overlaps field `A`",
            ),
            (
                &format!("{REG}[[register.field]]\nname = \"A\"\nbits = \"40:33\"\n"),
                "d.toml: register[0].field[0].bits: bits 40:33 lie outside the 32-bit register",
            ),
            (
                &format!("{REG}[[register.field]]\nname = \"A\"\nbits = \"3:4\"\n"),
                "d.toml: register[0].field[0].bits: bits 3:4: the first number is the most significant bit",
            ),
            (
                &format!("{REG}[[register.field]]\nname = \"A\"\nbits = \"x\"\n"),
                "d.toml: register[0].field[0].bits: `x` is not a bit range: write \"msb:lsb\", e.g. \"7:4\"",
            ),
            (
                &format!("{REG}[[register.field]]\nname = \"A\"\nbits = \"1:0\"\nreset = 4\n"),
                "d.toml: register[0].field[0].reset: 0x4 does not fit in the field's 2 bits",
            ),
            (
                &format!("{REG}sw = \"rx\"\n"),
                "d.toml: register[0].sw: unknown access `rx`: use rw, ro, wo, w1, rw1 or na (or SVD's read-write, read-only, write-only, writeOnce, read-writeOnce)",
            ),
            (
                &format!("{REG}on_write = \"w2c\"\n"),
                "d.toml: register[0].on_write: unknown write behaviour `w2c`: use write, w1c, w1s, w1t, w0c, w0s, w0t, wclr or wset (or SVD's oneToClear, ...)",
            ),
            (
                &format!("{REG}sw = \"ro\"\non_write = \"w1c\"\n"),
                "d.toml: register[0].on_write: the field cannot be written (sw), so it has no write behaviour",
            ),
            (
                &format!("{REG}sw = \"wo\"\non_read = \"rclr\"\n"),
                "d.toml: register[0].on_read: the field cannot be read (sw), so it has no read behaviour",
            ),
            (
                &format!("{REG}on_read = \"pop\"\n"),
                "d.toml: register[0].on_read: unknown read behaviour `pop`: use rclr or rset (SVD's clear or set)",
            ),
            (
                &format!("{REG}singlepulse = true\non_write = \"w1c\"\n"),
                "d.toml: register[0].singlepulse: a self-clearing field cannot also be cleared by writes (w1c, wclr)",
            ),
            (
                &format!("{REG}value = \"1\"\nsticky = true\n"),
                "d.toml: register[0].value: a computed field has no stored bits: drop on_write, on_read, singlepulse and sticky",
            ),
            (
                &format!("{REG}value = \"NOPE.X\"\n"),
                "d.toml: register[0].value: no register or FIFO named `NOPE`",
            ),
            (
                &format!("{REG}value = \"R.X\"\n"),
                "d.toml: register[0].value: register `R` has no field `X`",
            ),
            (
                &format!("{REG}values = {{ BIG = 0x1_0000_0000 }}\nwidth = 32\n"),
                "d.toml: register[0].values.BIG: 0x100000000 does not fit in 32 bits",
            ),
            (
                &format!("{REG}widths = [16, 64]\n"),
                "d.toml: register[0].widths: 64 bits: allowed widths are 8, 16, 32 or 64 bits, at most the register's 32",
            ),
            (
                &format!("{REG}widths = []\n"),
                "d.toml: register[0].widths: empty: leave `widths` out to accept any width",
            ),
            (
                &format!("{REG}stride = 8\n"),
                "d.toml: register[0].stride: only an array (`count`) has a stride",
            ),
            (
                &format!("{REG}count = 2\nstride = 2\n"),
                "d.toml: register[0].stride: 0x2 is smaller than the register's 4 bytes: elements would overlap",
            ),
            (
                &format!("{REG}count = 0\n"),
                "d.toml: register[0].count: an array needs at least one element",
            ),
            (
                &format!("{REG}reserved_read = 1\n"),
                "d.toml: register[0].reserved_read: 0x1 sets bits that are not reserved (fields cover 0xffffffff)",
            ),
            (
                &format!("{REG}pop = \"q\"\n"),
                "d.toml: register[0].pop: no FIFO named `q`",
            ),
            (
                "[[register]]\nname = \"R\"\noffset = 0x200000\n",
                "d.toml: register[0].offset: registers must lie below 0x100000; put large buffers in a [[memory]] window",
            ),
            (
                &format!("{REG}[[register]]\nname = \"S\"\noffset = 2\n"),
                "d.toml: register[1]: `S` at 0x2 overlaps `R` (registers that share bytes must share offset and width)",
            ),
            (
                &format!("{REG}[[register]]\nname = \"S\"\noffset = 0\n"),
                "d.toml: register[1]: `S` shares offset 0x0 with `R`, and both can be read: give `R` a `when` condition (banked view), or make one read-only and the other write-only",
            ),
            (
                &format!(
                    "{REG}[[register.field]]\nname = \"A\"\nbits = 0\n[[register.field]]\nname = \"A\"\nbits = 1\n"
                ),
                "d.toml: register[0].field[1]: field name `A` is used twice in `R`",
            ),
            (
                &format!("{REG}sw = \"ro\"\n[[register.field]]\nname = \"A\"\nbits = 0\n"),
                "d.toml: register[0]: behaviour keys (sw, on_write, on_read, value, ...) go on the fields when a register has fields",
            ),
            (
                "[[fifo]]\nname = \"q\"\ndepth = 0\n",
                "d.toml: fifo[0].depth: 0: a FIFO holds 1..=65536 elements",
            ),
            (
                "[[fifo]]\nname = \"q\"\ndepth = 4\nwidth = 65\n",
                "d.toml: fifo[0].width: 65 bits: an element is 1..=64 bits",
            ),
            (
                "[[fifo]]\nname = \"q\"\ndepth = 4\n[[fifo]]\nname = \"q\"\ndepth = 4\n",
                "d.toml: fifo[1]: FIFO name `q` is used twice",
            ),
            (
                "[[fifo]]\nname = \"R\"\ndepth = 4\n[[register]]\nname = \"R\"\noffset = 0\n",
                "d.toml: register[0]: `R` names both a register and a FIFO",
            ),
            (
                "[[fifo]]\nname = \"q\"\ndepth = 4\noverflow = \"X.Y\"\n",
                "d.toml: fifo[0].overflow: no register or FIFO named `X`",
            ),
            (
                &format!("{REG}[[interrupt]]\nname = \"i\"\n"),
                "d.toml: interrupt[0]: a level interrupt needs a `when` condition (a pulse-only output is `trigger = \"edge\"`)",
            ),
            (
                &format!("{REG}[[interrupt]]\nname = \"i\"\nwhen = \"R\"\nline = 40\n"),
                "d.toml: interrupt[0].line: 40: a device has lines 0..32",
            ),
            (
                &format!(
                    "{REG}[[interrupt]]\nname = \"i\"\nwhen = \"R\"\n[[interrupt]]\nname = \"j\"\nwhen = \"R\"\ntrigger = \"edge\"\n"
                ),
                "d.toml: interrupt: `i` and `j` share line 0 but one is level and the other edge",
            ),
            (
                &format!("{REG}[[interrupt]]\nname = \"i\"\nwhen = \"R = 1\"\n"),
                "d.toml: interrupt[0].when: `=` in `R = 1`: compare with `==`",
            ),
            (
                &format!("{REG}[[effect]]\non = \"poke R\"\ndo = [\"set R\"]\n"),
                "d.toml: effect[0].on: `poke R`: a trigger is `write REG[.FIELD]`, `read REG[.FIELD]`, `push FIFO`, `pop FIFO` or `reset`",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\ndo = []\n"),
                "d.toml: effect[0].do: an effect needs at least one action",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\ndo = [\"frob R\"]\n"),
                "d.toml: effect[0].do[0]: `frob R`: an action is `set F`, `clear F`, `toggle F`, `F = EXPR`, `F += EXPR`, `F -= EXPR`, `push FIFO [EXPR]`, `pop FIFO [into F]`, `flush FIFO`, `pulse IRQ` or `reset`",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\nafter = \"5 parsecs\"\ndo = [\"set R\"]\n"),
                "d.toml: effect[0].after: `5 parsecs` is not a delay: write a number and ns, us, ms or s, e.g. \"50us\"",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\nafter = \"0us\"\ndo = [\"set R\"]\n"),
                "d.toml: effect[0].after: a delay of 0: leave `after` out to act at once",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\nafter = \"1us\"\nafter_accesses = 2\ndo = [\"set R\"]\n"),
                "d.toml: effect[0]: give `after` or `after_accesses`, not both",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\ndo = [\"pulse nope\"]\n"),
                "d.toml: effect[0].do[0]: no interrupt named `nope`",
            ),
            (
                &format!("{REG}[[effect]]\non = \"write R\"\ndo = [\"push nope\"]\n"),
                "d.toml: effect[0].do[0]: no FIFO named `nope`",
            ),
            (
                &format!("{REG}[[order]]\nname = \"o\"\non = \"poke R\"\nrequire = \"1\"\n"),
                "d.toml: order[0].on: `poke R`: an order rule judges `write REG[.FIELD]` or `read REG[.FIELD]`",
            ),
            (
                &format!("{REG}[[order]]\nname = \"o\"\non = \"write S\"\nrequire = \"1\"\n"),
                "d.toml: order[0].on: no register or FIFO named `S`",
            ),
            (
                &format!("{REG}[[order]]\nname = \"o\"\non = \"write R\"\nrequire = \"NOPE == 1\"\n"),
                "d.toml: order[0].require: no register or FIFO named `NOPE`",
            ),
            (
                &format!(
                    "{REG}[[order]]\nname = \"o\"\non = \"write R\"\nrequire = \"1\"\n[[order]]\nname = \"o\"\non = \"read R\"\nrequire = \"1\"\n"
                ),
                "d.toml: order[1].name: order rule name `o` is used twice",
            ),
            (
                "[[register]]\nname = \"R\"\noffset = 0\nsw = \"ro\"\n[[order]]\nname = \"o\"\non = \"write R\"\nrequire = \"1\"\n",
                "d.toml: order[0].on: `R` cannot be written by software",
            ),
            (
                "[[register]]\nname = \"R\"\noffset = 0\nsw = \"ro\"\n[[effect]]\non = \"write R\"\ndo = [\"set R\"]\n",
                "d.toml: effect[0].on: `R` cannot be written by software",
            ),
            (
                "[[register]]\nname = \"R\"\noffset = 0\nvalue = \"1\"\n[[register]]\nname = \"S\"\noffset = 4\n[[effect]]\non = \"write S\"\ndo = [\"set R\"]\n",
                "d.toml: effect[0].do[0]: `R` is computed (`value = ...`): an effect cannot store into it",
            ),
            (
                "[[register]]\nname = \"CH\"\noffset = 0\ncount = 2\n[[effect]]\non = \"write CH\"\ndo = [\"set CH[0]\"]\n",
                "d.toml: effect[0].on: `CH` is an array of 2: name an element, `CH[0]`..`CH[1]`",
            ),
            (
                "[[register]]\nname = \"CH\"\noffset = 0\ncount = 2\n[[effect]]\non = \"write CH[2]\"\ndo = [\"set CH[0]\"]\n",
                "d.toml: effect[0].on: `CH[2]`: `CH` has 2 elements",
            ),
            (
                "[[fifo]]\nname = \"q\"\ndepth = 2\n[[effect]]\non = \"push q\"\ndo = [\"push q 1\"]\n",
                "d.toml: effect: effects without a delay fire each other in a cycle through `effect[0]`: give one of them `after` or `after_accesses`",
            ),
            (
                "[[memory]]\nname = \"m\"\noffset = 0x10\nsize = 0x1000\nbacking = \"memslot\"\n",
                "d.toml: memory[0]: a memslot window needs whole pages: offset 0x10 and size 0x1000 must be multiples of 0x1000",
            ),
            (
                "[[memory]]\nname = \"m\"\noffset = 0\nsize = 0\nbacking = \"trapped\"\n",
                "d.toml: memory[0].size: a memory window needs at least one byte",
            ),
            (
                "[[memory]]\nname = \"m\"\noffset = 0\nsize = 16\nbacking = \"trapped\"\n[[register]]\nname = \"R\"\noffset = 8\n",
                "d.toml: memory: window `m` overlaps register `R`",
            ),
            (
                "[[memory]]\nname = \"m\"\noffset = 0\nsize = 16\nbacking = \"trapped\"\n[[memory]]\nname = \"n\"\noffset = 8\nsize = 16\nbacking = \"trapped\"\n",
                "d.toml: memory: windows `m` and `n` overlap",
            ),
            (
                "[device]\nsize = 2\n[[register]]\nname = \"R\"\noffset = 0\n",
                "d.toml: device.size: 0x2 is smaller than the map, which reaches 0x4",
            ),
        ];
        for (text, want) in cases {
            let got = refuse(text);
            assert!(got.starts_with(want), "\n got: {got}\nwant: {want}\nfor:\n{text}");
        }
        let got = refuse("[[register]]\nname = \"R\"\noffst = 0\n");
        assert!(got.starts_with("d.toml: TOML parse error at line 3"), "{got}");
        assert!(got.contains("unknown field `offst`"), "{got}");
    }

    #[test]
    fn svd_spellings_and_arrays_compile() {
        let m = compile_text(
            "[[register]]\nname = \"SR\"\noffset = 4\ncount = 3\nstride = 0x10\n[[register.field]]\nname = \"OVR\"\nbits = \"[3:3]\"\nsw = \"read-write\"\non_write = \"oneToClear\"\n[[register.field]]\nname = \"RXNE\"\nbits = 5\nsw = \"read-only\"\non_read = \"clear\"\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert_eq!(m.registers.len(), 3);
        assert_eq!(m.registers[2].name, "SR[2]");
        assert_eq!(m.registers[2].offset, 0x24);
        assert_eq!(m.registers[2].fields[0].path, "SR[2].OVR");
        assert_eq!(m.registers[0].fields[0].on_write, OnWrite::OneToClear);
        assert_eq!(m.registers[0].fields[1].on_read, OnRead::Clear);
        assert_eq!(m.arrays[0].count, 3);
    }

    #[test]
    fn reg_shift_scales_offsets() {
        let desc = Description::from_toml("[[register]]\nname = \"A\"\noffset = 1\nwidth = 8\n[[register]]\nname = \"B\"\noffset = 2\nwidth = 8\ncount = 2\n").unwrap();
        let m = compile_shifted(&desc, 2).unwrap();
        assert_eq!(m.registers.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![4, 8, 12]);
    }

    #[test]
    fn delays_parse() {
        assert_eq!(parse_delay("50us"), Some(50_000));
        assert_eq!(parse_delay("2ms"), Some(2_000_000));
        assert_eq!(parse_delay("1_000 ns"), Some(1000));
        assert_eq!(parse_delay("3s"), Some(3_000_000_000));
        assert_eq!(parse_delay("99999999999999999999s"), None);
        assert_eq!(parse_delay("ms"), None);
    }

    #[test]
    fn hostile_descriptions_are_refused_before_they_cost() {
        // Hostile descriptions run through the fuzz targets (each took seconds to minutes, or GiB,
        // before its limit).
        let big = "x".repeat(1 << 20);
        let cases: Vec<(String, &str)> = vec![
            // 4096 copies of a 1 MiB description.
            (
                format!("[[register]]\nname = \"R\"\noffset = 0\ncount = 4096\ndescription = \"{big}\"\n"),
                "d.toml: register[0]: the description expands to more than 128 MiB",
            ),
            // 4096 instances of an effect with long expressions.
            (
                format!(
                    "[[register]]\nname = \"R\"\noffset = 0\ncount = 4096\n[[effect]]\non = \"write R[i]\"\nif = \"{}\"\ndo = [\"set R[i]\"]\n",
                    vec!["R[i]"; 500].join(" | ")
                ),
                "d.toml: effect[0]: the description expands to more than 128 MiB",
            ),
            (
                format!(
                    "[[register]]\nname = \"R\"\noffset = 0\ncount = 4096\n{}",
                    "[[effect]]\non = \"write R[i]\"\ndo = [\"set R[i]\"]\n".repeat(5)
                ),
                "d.toml: effect[4]: more than 16384 effects",
            ),
            (
                (0..65).map(|i| format!("[[fifo]]\nname = \"q{i}\"\ndepth = 65536\n")).collect(),
                "d.toml: fifo[64].depth: the FIFOs of a device hold at most 4194304 elements together",
            ),
            (
                (0..5)
                    .map(|i| format!("[[memory]]\nname = \"m{i}\"\noffset = {}\nsize = 0x1000000\nbacking = \"trapped\"\nfill = 1\n", i << 24))
                    .collect(),
                "d.toml: memory[4].size: the trapped windows of a device hold at most 0x4000000 bytes together",
            ),
        ];
        for (text, want) in &cases {
            let got = refuse(text);
            assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
        }
        // A stride that overflows once scaled by reg_shift.
        let desc =
            Description::from_toml("[[register]]\nname = \"A\"\noffset = 0\ncount = 2\nstride = 0x0100000000000001\n")
                .unwrap();
        let e = compile_shifted(&desc, 8).unwrap_err().to_string();
        assert_eq!(e, "register[0].stride: too large");
    }

    #[test]
    fn long_effect_chains_compile_and_cycles_through_groups_are_found() {
        // A hostile input run through the fuzz targets: the cycle check recursed once per effect
        // in a chain (a stack overflow at some 40 000), and copied a FIFO's effect list for every
        // effect that pushes it (quadratic).
        let n = 10_000;
        let mut text: String = (0..=n)
            .map(|i| format!("[[fifo]]\nname = \"f{i}\"\ndepth = 1\n"))
            .collect();
        for i in 0..n {
            text += &format!("[[effect]]\non = \"push f{i}\"\ndo = [\"push f{}\"]\n", i + 1);
        }
        let m = compile_text(&text, Path::new("d.toml")).unwrap();
        assert_eq!(m.effects.len(), n);
        // The chain closed into a ring is a cycle.
        let ring = format!("{text}[[effect]]\non = \"push f{n}\"\ndo = [\"push f0\"]\n");
        assert!(refuse(&ring).contains("in a cycle through"));
        // Through a pop, and through a reset.
        let q = "[[fifo]]\nname = \"a\"\ndepth = 1\n[[fifo]]\nname = \"b\"\ndepth = 1\n";
        let got = refuse(&format!(
            "{q}[[effect]]\nname = \"A\"\non = \"pop a\"\ndo = [\"push b\"]\n[[effect]]\nname = \"B\"\non = \"push b\"\ndo = [\"pop a\"]\n"
        ));
        assert!(got.contains("in a cycle through `"), "{got}");
        let got = refuse(&format!(
            "{q}[[effect]]\nname = \"R\"\non = \"reset\"\ndo = [\"push a\", \"reset\"]\n"
        ));
        assert!(got.contains("in a cycle through `R`"), "{got}");
        // A diamond is not a cycle; a delay breaks one.
        compile_text(
            &format!("{q}[[effect]]\non = \"push a\"\ndo = [\"push b\", \"push b\"]\n[[effect]]\non = \"push b\"\ndo = [\"flush b\"]\n[[effect]]\non = \"push b\"\ndo = [\"flush a\"]\n"),
            Path::new("d.toml"),
        )
        .unwrap();
        compile_text(
            &format!("{q}[[effect]]\non = \"push a\"\ndo = [\"push b\"]\n[[effect]]\non = \"push b\"\nafter = \"1ns\"\ndo = [\"push a\"]\n"),
            Path::new("d.toml"),
        )
        .unwrap();
    }

    #[test]
    fn windows_overlapping_registers_are_found_among_many() {
        let regs = "[[register]]\nname = \"R\"\noffset = 0\ncount = 8\nstride = 0x10\n";
        let window = |offset: u64, size: u64| {
            format!("{regs}[[memory]]\nname = \"m\"\noffset = {offset}\nsize = {size}\nbacking = \"trapped\"\n")
        };
        for (offset, size) in [(4, 12), (0x24, 0x8), (0x34, 0xc), (0x78, 1), (0x80, 0x1000)] {
            compile_text(&window(offset, size), Path::new("d.toml")).unwrap();
        }
        for (offset, size, reg) in [
            (0x3, 2, "R[0]"),
            (0x20, 1, "R[2]"),
            (0x14, 0x10, "R[2]"),
            (0, 0x1000, "R[0]"),
            (0x73, 1, "R[7]"),
        ] {
            let got = refuse(&window(offset, size));
            assert_eq!(got, format!("d.toml: memory: window `m` overlaps register `{reg}`"));
        }
    }

    #[test]
    fn a_write_to_a_read_only_register_is_noted_like_one_to_a_read_only_field() {
        let m = compile_text(
            "[[register]]\nname = \"ID\"\noffset = 0\nsw = \"ro\"\nreset = 7\n[[register]]\nname = \"R\"\noffset = 4\n",
            Path::new("d.toml"),
        )
        .unwrap();
        assert!(!m.registers[0].plain, "a read-only register is not plain storage");
        assert!(m.registers[1].plain);
        let mut state = crate::engine::State::new(&m);
        let mut notes = crate::engine::Notes::default();
        let mut data = [0u8; 4];
        crate::engine::access(
            &m,
            &mut state,
            crate::engine::Dir::Write,
            0,
            &mut data,
            &|| 0,
            &mut notes,
        );
        assert_eq!(notes.as_slice(), [mmiolab_devices::Note::Ignored { field: "ID" }]);
        assert_eq!(state.value(0), Some(7));
    }
}
