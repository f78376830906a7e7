//! The device description file, as written: serde types with `deny_unknown_fields`.
//!
//! Nothing here is checked beyond what serde checks; [`crate::compile`] turns a
//! [`Description`] into a [`crate::Model`] or refuses it with the key path and the reason.
//! docs/devices.md is the reference for every key.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole description file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// Name, documentation and device-wide defaults.
    #[serde(default)]
    pub device: DeviceSection,
    /// Registers, in file order (the order also decides which of several registers at one
    /// offset answers, see [`RegisterDesc::when`]).
    #[serde(default, rename = "register")]
    pub registers: Vec<RegisterDesc>,
    /// FIFOs.
    #[serde(default, rename = "fifo")]
    pub fifos: Vec<FifoDesc>,
    /// Byte-addressable memory windows.
    #[serde(default, rename = "memory")]
    pub memories: Vec<MemoryDesc>,
    /// Interrupt outputs.
    #[serde(default, rename = "interrupt")]
    pub interrupts: Vec<InterruptDesc>,
    /// Effects: what happens when a register is accessed, possibly later.
    #[serde(default, rename = "effect")]
    pub effects: Vec<EffectDesc>,
    /// Order rules of the register checker: an access that needs a condition to hold.
    #[serde(default, rename = "order")]
    pub orders: Vec<OrderDesc>,
}

/// The `[device]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSection {
    /// Short name, used as the prefix of generated C macros.
    pub name: Option<String>,
    /// What the device is.
    pub description: Option<String>,
    /// Byte order of every register (default little).
    #[serde(default)]
    pub endianness: Endianness,
    /// Bytes the register map spans; a machine region must be at least this large.
    /// Default: up to the end of the last register or memory window.
    pub size: Option<u64>,
    /// Value read from bytes that no register covers (default 0).
    #[serde(default)]
    pub hole_read: u8,
    /// Default trace policy of every register.
    #[serde(default)]
    pub trace: TracePolicy,
}

/// Byte order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endianness {
    /// Least significant byte at the lowest address.
    #[default]
    Little,
    /// Most significant byte at the lowest address.
    Big,
}

/// How much of a register's traffic the trace shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TracePolicy {
    /// Every access.
    #[default]
    Full,
    /// Only accesses that read a different value than the last read, or change state.
    Changes,
    /// None (the access still counts, and its side effects are still traced).
    Silent,
}

/// A register, or an array of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterDesc {
    /// Name (`CTRL`); array elements are named `NAME[i]`.
    pub name: String,
    /// Byte offset in the device's region (of element 0 for an array).
    pub offset: u64,
    /// Width in bits: 8, 16, 32 or 64 (default 32).
    pub width: Option<u32>,
    /// Value at reset (default 0; fields' resets are merged into it).
    pub reset: Option<u64>,
    /// What it is.
    pub description: Option<String>,
    /// Access widths in bits the hardware accepts (default: any access inside the register).
    pub widths: Option<Vec<u32>>,
    /// What an access of another width does.
    #[serde(default)]
    pub bad_width: WidthPolicy,
    /// Number of elements for an array.
    pub count: Option<u32>,
    /// Bytes between array elements (default: the register's width).
    pub stride: Option<u64>,
    /// Banked view: this register answers only while the condition holds. Several registers
    /// may share an offset; the first in file order whose condition holds (and that can be
    /// read, for a read, or written, for a write) answers.
    pub when: Option<String>,
    /// A read pops this FIFO and returns the element.
    pub pop: Option<String>,
    /// A write pushes the value written onto this FIFO.
    pub push: Option<String>,
    /// Trace policy (default: the device's).
    pub trace: Option<TracePolicy>,
    /// Its value changes on its own from run to run (a free-running timer, a timestamp):
    /// golden-trace comparisons (`mmiolab run --expect-trace`) skip its accesses.
    #[serde(default)]
    pub volatile: bool,
    /// Value read from bits that no field covers (default 0).
    pub reserved_read: Option<u64>,
    /// Fields; a register without fields behaves as one field spanning it, with the
    /// behaviour keys below.
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldDesc>,
    // Behaviour of the whole register when it has no fields (the same keys as a field's;
    // serde cannot flatten a struct under deny_unknown_fields).
    /// Software access: `rw` (default), `ro`, `wo`, `w1` (write once), `rw1` (read, write
    /// once), `na`; also SVD's `read-write`, `read-only`, `write-only`, `writeOnce`,
    /// `read-writeOnce`.
    pub sw: Option<String>,
    /// What a write does to the stored bits: `write` (default), `w1c`, `w1s`, `w1t`, `w0c`,
    /// `w0s`, `w0t`, `wclr`, `wset`; also SVD's `oneToClear`, `oneToSet`, `oneToToggle`,
    /// `zeroToClear`, `zeroToSet`, `zeroToToggle`, `clear`, `set`, `modify`.
    pub on_write: Option<String>,
    /// What a read does to the stored bits: `rclr`, `rset` (SVD's `clear`, `set`).
    pub on_read: Option<String>,
    /// The field clears itself after a write has set it and the write's effects have run.
    #[serde(default)]
    pub singlepulse: bool,
    /// Effects set bits of this field but do not clear them: it holds an event until
    /// software clears it.
    #[serde(default)]
    pub sticky: bool,
    /// The field is computed on every read from this expression (e.g. `rx.level`); it
    /// stores nothing and ignores writes.
    pub value: Option<String>,
    /// Names of values, for the trace and the C header.
    pub values: Option<BTreeMap<String, u64>>,
    /// Counter behaviour for `+=` / `-=` effects.
    pub counter: Option<CounterDesc>,
}

/// What an access of a width the register does not accept does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidthPolicy {
    /// Reads return all ones, writes are dropped, the trace says why.
    #[default]
    Reject,
    /// The access reaches the bytes it covers, as a partial access.
    Split,
}

/// A named bit field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDesc {
    /// Name.
    pub name: String,
    /// Bit position: `3`, or `"7:4"` (msb:lsb, also written `"[7:4]"`).
    pub bits: Bits,
    /// Value at reset, in the field's own position (default 0, or the register's reset bits).
    pub reset: Option<u64>,
    /// What it is.
    pub description: Option<String>,
    // The field's behaviour.
    /// Software access: `rw` (default), `ro`, `wo`, `w1` (write once), `rw1` (read, write
    /// once), `na`; also SVD's `read-write`, `read-only`, `write-only`, `writeOnce`,
    /// `read-writeOnce`.
    pub sw: Option<String>,
    /// What a write does to the stored bits: `write` (default), `w1c`, `w1s`, `w1t`, `w0c`,
    /// `w0s`, `w0t`, `wclr`, `wset`; also SVD's `oneToClear`, `oneToSet`, `oneToToggle`,
    /// `zeroToClear`, `zeroToSet`, `zeroToToggle`, `clear`, `set`, `modify`.
    pub on_write: Option<String>,
    /// What a read does to the stored bits: `rclr`, `rset` (SVD's `clear`, `set`).
    pub on_read: Option<String>,
    /// The field clears itself after a write has set it and the write's effects have run.
    #[serde(default)]
    pub singlepulse: bool,
    /// Effects set bits of this field but do not clear them: it holds an event until
    /// software clears it.
    #[serde(default)]
    pub sticky: bool,
    /// The field is computed on every read from this expression (e.g. `rx.level`); it
    /// stores nothing and ignores writes.
    pub value: Option<String>,
    /// Names of values, for the trace and the C header.
    pub values: Option<BTreeMap<String, u64>>,
    /// Counter behaviour for `+=` / `-=` effects.
    pub counter: Option<CounterDesc>,
}

/// What a field (or a register without fields) does: the behaviour keys of
/// [`FieldDesc`] and [`RegisterDesc`], gathered.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Software access: `rw` (default), `ro`, `wo`, `w1` (write once), `rw1` (read, write
    /// once), `na`; also SVD's `read-write`, `read-only`, `write-only`, `writeOnce`,
    /// `read-writeOnce`.
    pub sw: Option<String>,
    /// What a write does to the stored bits: `write` (default), `w1c`, `w1s`, `w1t`, `w0c`,
    /// `w0s`, `w0t`, `wclr`, `wset`; also SVD's `oneToClear`, `oneToSet`, `oneToToggle`,
    /// `zeroToClear`, `zeroToSet`, `zeroToToggle`, `clear`, `set`, `modify`.
    pub on_write: Option<String>,
    /// What a read does to the stored bits: `rclr`, `rset` (SVD's `clear`, `set`).
    pub on_read: Option<String>,
    /// The field clears itself after a write has set it and the write's effects have run.
    pub singlepulse: bool,
    /// Effects set bits of this field but do not clear them: it holds an event until
    /// software clears it.
    pub sticky: bool,
    /// The field is computed on every read from this expression (e.g. `rx.level`); it
    /// stores nothing and ignores writes.
    pub value: Option<String>,
    /// Names of values, for the trace and the C header.
    pub values: Option<BTreeMap<String, u64>>,
    /// Counter behaviour for `+=` / `-=` effects.
    pub counter: Option<CounterDesc>,
}

/// How a counter field counts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterDesc {
    /// Stop at the maximum (and at 0) instead of wrapping.
    #[serde(default)]
    pub saturate: bool,
    /// A field set to 1 when an increment wraps or saturates.
    pub overflow: Option<String>,
    /// A field set to 1 when a decrement wraps or saturates.
    pub underflow: Option<String>,
}

/// A bit position: one bit, or a `msb:lsb` range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Bits {
    /// One bit.
    Bit(u32),
    /// `"msb:lsb"`, `"[msb:lsb]"` or `"n"`.
    Range(String),
}

impl Default for Bits {
    fn default() -> Self {
        Bits::Bit(0)
    }
}

/// A FIFO: a bounded queue of elements.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FifoDesc {
    /// Name, used by registers (`pop`/`push`), effects and expressions (`rx.level`).
    pub name: String,
    /// Capacity in elements.
    pub depth: u32,
    /// Element width in bits (default 8).
    pub width: Option<u32>,
    /// A field set to 1 when a push finds the FIFO full (the element is dropped).
    pub overflow: Option<String>,
    /// A field set to 1 when a pop finds the FIFO empty.
    pub underflow: Option<String>,
    /// Value a pop of an empty FIFO returns (default 0).
    pub empty_read: Option<u64>,
    /// The hardware forbids popping the FIFO while it is empty: `mmiolab run --check`
    /// reports each such read (rule `read-empty-fifo`). Default false (allowed).
    #[serde(default)]
    pub forbid_read_empty: bool,
    /// The hardware forbids pushing onto the FIFO while it is full: `--check` reports each
    /// such write (rule `write-full-fifo`). Default false (allowed).
    #[serde(default)]
    pub forbid_write_full: bool,
    /// What it is.
    pub description: Option<String>,
}

/// A byte-addressable memory window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDesc {
    /// Name.
    pub name: String,
    /// Byte offset in the device's region.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
    /// `trapped` (every access exits and is traced) or `memslot` (guest RAM behind it:
    /// fast, not traced; offset and size whole pages). Required: the choice matters.
    pub backing: Backing,
    /// Read-only for the guest (writes are dropped and noted).
    #[serde(default)]
    pub readonly: bool,
    /// Byte every location holds at reset (default 0).
    #[serde(default)]
    pub fill: u8,
    /// What it is.
    pub description: Option<String>,
}

/// Where a memory window's bytes live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backing {
    /// In the device model; every access traps.
    #[default]
    Trapped,
    /// In a KVM memslot; accesses do not trap.
    Memslot,
}

/// An interrupt output: asserted while its condition holds.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterruptDesc {
    /// Name.
    pub name: String,
    /// Condition (an expression, non-zero = asserted), e.g. `ISR & IER` or
    /// `STATUS.DONE && CTRL.IE`. Absent for an output that only `pulse` effects fire.
    pub when: Option<String>,
    /// `level` (default) or `edge` (one edge each time the condition becomes true).
    #[serde(default)]
    pub trigger: Trigger,
    /// Which of the machine device's interrupt lines it drives (default 0).
    #[serde(default)]
    pub line: u32,
    /// What it signals.
    pub description: Option<String>,
}

/// Interrupt trigger type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Asserted while the condition holds; the guest sees one interrupt per assertion
    /// (re-delivered after EOI while still asserted).
    #[default]
    Level,
    /// One edge each time the condition becomes true.
    Edge,
}

/// An effect: "when this happens, and this holds, do that (later)".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectDesc {
    /// Name, for the trace (default `effect[i]`).
    pub name: Option<String>,
    /// Trigger: `write REG`, `write REG.FIELD` (a write whose value has a bit of FIELD
    /// set), `read REG`, `push FIFO`, `pop FIFO`, `reset`.
    pub on: String,
    /// Condition checked when the trigger fires (after the access took effect).
    #[serde(rename = "if")]
    pub condition: Option<String>,
    /// Delay in the machine's time: `"50us"`, `"2ms"`, `"100ns"`, `"1s"`.
    pub after: Option<String>,
    /// Delay in further accesses to this device.
    pub after_accesses: Option<u32>,
    /// Actions, in order: `set F`, `clear F`, `toggle F`, `F = EXPR`, `F += EXPR`,
    /// `F -= EXPR`, `push FIFO [EXPR]`, `pop FIFO [into F]`, `flush FIFO`, `pulse IRQ`,
    /// `reset`.
    #[serde(rename = "do")]
    pub actions: Vec<String>,
    /// What it models.
    pub description: Option<String>,
}

/// An order rule (`[[order]]`, docs/checker.md): the register checker reports an access
/// matching `on` made while `require` does not hold. The device's behaviour does not change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderDesc {
    /// Name, in findings (the rule's "field").
    pub name: String,
    /// The access judged: `write REG`, `write REG.FIELD` (a write reaching FIELD's bytes),
    /// `read REG`, `read REG.FIELD`.
    pub on: String,
    /// What must hold just before that access (an expression; `value` is the value a write
    /// writes, 0 for a read).
    pub require: String,
    /// Why, for people.
    pub description: Option<String>,
}

impl Description {
    /// Parses a description from TOML text.
    pub fn from_toml(text: &str) -> Result<Description, toml::de::Error> {
        toml::from_str(text)
    }
}

macro_rules! behaviour_of {
    ($t:ty) => {
        impl $t {
            /// Its behaviour keys.
            pub fn behaviour(&self) -> Behaviour {
                Behaviour {
                    sw: self.sw.clone(),
                    on_write: self.on_write.clone(),
                    on_read: self.on_read.clone(),
                    singlepulse: self.singlepulse,
                    sticky: self.sticky,
                    value: self.value.clone(),
                    values: self.values.clone(),
                    counter: self.counter.clone(),
                }
            }
        }
    };
}
behaviour_of!(RegisterDesc);
behaviour_of!(FieldDesc);
