//! The bodies of the fuzz targets (fuzz/fuzz_targets/*.rs), here so that `cargo fuzz` and
//! the corpus replay test (tests/fuzz_corpus.rs, on the stable toolchain) run exactly the
//! same code. docs/fuzzing.md says how to run them.
//!
//! Each body takes arbitrary bytes and panics only when an invariant breaks:
//!
//! - [`description`]: the bytes, as (lossy) UTF-8 description text, compile to a model or
//!   to an error (also with a `reg_shift`); a model gets a state and a C header.
//! - [`engine`]: the first byte picks one of the [`DESCRIPTIONS`] below; the rest is a
//!   sequence of guest accesses (any offset, width 0..=9, any value), time advances,
//!   host feeds, drains and resets, with the engine's bounds checked after each one.
//! - [`description_then_engine`]: description text up to the first NUL byte; if it
//!   compiles, the bytes after the NUL drive at most [`MAX_OPS_HOSTILE`] operations on it.

use std::io::Write;
use std::path::Path;

use crate::compile::{MAX_REGISTER_SPAN, MAX_REGISTERS, Model};
use crate::engine::{self, Dir, MAX_NOTES, MAX_PENDING, Notes, Outcome, State};
use crate::header::{HeaderOptions, Style, device_header_with};
use crate::schema::Description;
use crate::{compile_shifted, compile_text};

/// Most operations [`engine`] runs from one input.
pub const MAX_OPS: usize = 4096;
/// Most operations [`description_then_engine`] runs on a description from the input.
pub const MAX_OPS_HOSTILE: usize = 128;

/// A UART-like device, little-endian: FIFOs popped and pushed by one data register, a
/// computed level, W1C and read-to-clear status bits, a saturating counter, effects
/// delayed in time and in accesses, reset effects, a level and an edge interrupt.
pub const UART: &str = r#"
[device]
name = "uart"
description = "UART-like: FIFOs, W1C and RC status, counters, delays"
hole_read = 0xee
trace = "changes"

[[fifo]]
name = "rx"
depth = 16
width = 8
overflow = "ISR.RXOVR"
underflow = "ISR.RXUND"
empty_read = 0xff

[[fifo]]
name = "tx"
depth = 8
width = 9
overflow = "ISR.TXOVR"

[[register]]
name = "DATA"
offset = 0
width = 32
pop = "rx"
push = "tx"

[[register]]
name = "ISR"
offset = 4
[[register.field]]
name = "RXNE"
bits = 0
value = "!rx.empty"
[[register.field]]
name = "RXOVR"
bits = 1
on_write = "w1c"
sticky = true
[[register.field]]
name = "RXUND"
bits = 2
on_write = "oneToClear"
[[register.field]]
name = "TXOVR"
bits = 3
on_write = "w1c"
[[register.field]]
name = "DONE"
bits = 4
on_write = "w1c"
[[register.field]]
name = "LEVEL"
bits = "12:8"
value = "rx.level"
[[register.field]]
name = "ERRS"
bits = "23:16"
sw = "ro"
on_read = "rclr"

[[register]]
name = "IER"
offset = 8
width = 8
reset = 0x11

[[register]]
name = "CTRL"
offset = 0xc
width = 16
[[register.field]]
name = "START"
bits = 0
singlepulse = true
[[register.field]]
name = "LOOP"
bits = 1
[[register.field]]
name = "MODE"
bits = "5:4"
values = { IDLE = 0, RUN = 1, TEST = 3 }
[[register.field]]
name = "FLUSH"
bits = 8
on_write = "w1s"
on_read = "rclr"

[[register]]
name = "CNT"
offset = 0x10
width = 8
[[register.field]]
name = "N"
bits = "5:0"
sw = "ro"
counter = { saturate = true, overflow = "CNT.OVF", underflow = "CNT.UDF" }
[[register.field]]
name = "OVF"
bits = 6
on_write = "w1c"
sticky = true
[[register.field]]
name = "UDF"
bits = 7
on_write = "w1c"

[[register]]
name = "WRAP"
offset = 0x14
width = 8
sw = "ro"
counter = { overflow = "ISR.DONE" }

[[register]]
name = "LAST"
offset = 0x18
width = 16
sw = "ro"
reserved_read = 0

[[interrupt]]
name = "irq"
when = "(ISR & IER) != 0"
line = 0

[[interrupt]]
name = "txdone"
trigger = "edge"
when = "tx.empty && CTRL.LOOP"
line = 1

[[interrupt]]
name = "pulse"
trigger = "edge"
line = 1

[[effect]]
name = "start"
on = "write CTRL.START"
if = "CTRL.MODE != 0"
after = "10us"
do = ["set ISR.DONE", "CNT.N += 1", "WRAP += 1", "pulse pulse"]

[[effect]]
name = "drain"
on = "push tx"
after_accesses = 2
do = ["pop tx into LAST", "push rx value & 0xff"]

[[effect]]
name = "loop"
on = "push tx"
if = "CTRL.LOOP"
do = ["push rx value", "ISR.ERRS += 1"]

[[effect]]
name = "low"
on = "pop rx"
if = "rx.level < 2"
do = ["CNT.N -= 3", "toggle IER"]

[[effect]]
name = "flush"
on = "write CTRL.FLUSH"
do = ["flush rx", "flush tx", "clear CTRL.FLUSH"]

[[effect]]
name = "hello"
on = "reset"
do = ["push rx 0x55", "push rx 0xaa"]

[[effect]]
name = "selfreset"
on = "write CTRL.MODE"
if = "CTRL.MODE == 3 && CTRL.LOOP"
after = "1ms"
do = ["reset"]
"#;

/// A big-endian device: banked views, register arrays with per-element effects, width
/// policies (reject, split), write-once, W1S/W1T/W0C/W0S/W0T/WCLR/WSET fields, sticky and
/// self-clearing bits, reserved bits with a read value.
pub const BANKED: &str = r#"
[device]
name = "banked"
endianness = "big"
hole_read = 0x5a
size = 0x200

[[register]]
name = "BANK"
offset = 0
width = 8

[[register]]
name = "VA"
offset = 4
when = "BANK == 0"
reset = 0xa0a0a0a0

[[register]]
name = "VB"
offset = 4
when = "BANK == 1"
[[register.field]]
name = "LO"
bits = "15:0"
on_write = "w1s"
[[register.field]]
name = "HI"
bits = "31:16"
on_write = "w1t"

[[register]]
name = "VW"
offset = 4
sw = "wo"
when = "BANK >= 2"

[[register]]
name = "VR"
offset = 4
sw = "ro"
reset = 0xdeadbeef

[[register]]
name = "CH"
offset = 0x10
count = 4
stride = 0x10
[[register.field]]
name = "EN"
bits = 0
[[register.field]]
name = "GO"
bits = 1
singlepulse = true
[[register.field]]
name = "BUSY"
bits = 2
sw = "ro"
[[register.field]]
name = "DONE"
bits = 3
on_write = "w1c"
sticky = true
[[register.field]]
name = "Z"
bits = "7:4"
on_write = "w0c"
reset = 0xf
[[register.field]]
name = "ZS"
bits = "11:8"
on_write = "w0s"
[[register.field]]
name = "ZT"
bits = "15:12"
on_write = "w0t"
[[register.field]]
name = "CL"
bits = "19:16"
on_write = "wclr"
[[register.field]]
name = "ST"
bits = "23:20"
on_write = "wset"

[[register]]
name = "CHX"
offset = 0x14
count = 4
stride = 0x10
width = 16
[[register.field]]
name = "ENV"
bits = 0
value = "CH[i].EN"
[[register.field]]
name = "OTHER"
bits = "4:1"
value = "CH[i].Z + BANK"

[[register]]
name = "TS"
offset = 0x60
width = 64
widths = [32, 64]
bad_width = "split"
reset = 0x0102030405060708

[[register]]
name = "H"
offset = 0x68
width = 16
widths = [16]

[[register]]
name = "ONCE"
offset = 0x6c
sw = "w1"

[[register]]
name = "ONCER"
offset = 0x70
sw = "rw1"

[[register]]
name = "RSV"
offset = 0x74
reserved_read = 0xff000000
[[register.field]]
name = "A"
bits = "7:0"
[[register.field]]
name = "B"
bits = "15:8"
sw = "na"

[[register]]
name = "SUM"
offset = 0x78
width = 8
value = "CH[0].Z + CH[1].Z + CH[2].Z + CH[3].Z"

[[interrupt]]
name = "ch"
when = "CH[0].DONE || CH[1].DONE || CH[2].DONE || CH[3].DONE"
line = 2

[[effect]]
name = "go"
on = "write CH[i].GO"
if = "CH[i].EN"
after_accesses = 1
do = ["set CH[i].BUSY"]

[[effect]]
name = "fin"
on = "write CH[i].GO"
if = "CH[i].EN"
after = "3us"
do = ["clear CH[i].BUSY", "set CH[i].DONE", "CH[i].CL = value >> 16"]

[[effect]]
name = "bank"
on = "read VR"
do = ["BANK = BANK + 1 & 3"]
"#;

/// Memory windows (trapped, read-only, memslot) next to a few registers, an edge
/// interrupt fired only by `pulse`, effects that copy and count, hole reads.
pub const MEMORY: &str = r#"
[device]
name = "mem"
hole_read = 0xff
trace = "silent"

[[register]]
name = "SRC"
offset = 0
[[register]]
name = "LEN"
offset = 4
width = 16
[[register]]
name = "GO"
offset = 8
width = 8
sw = "wo"
[[register]]
name = "STATUS"
offset = 0xc
width = 64
[[register.field]]
name = "COPIED"
bits = "31:0"
sw = "ro"
[[register.field]]
name = "RUNS"
bits = "47:32"
sw = "ro"
counter = { saturate = false }
[[register.field]]
name = "ERR"
bits = 63
on_write = "w1c"

[[memory]]
name = "buf"
offset = 0x100
size = 0x100
backing = "trapped"
fill = 0xcc

[[memory]]
name = "rom"
offset = 0x200
size = 0x40
backing = "trapped"
readonly = true
fill = 0x11

[[memory]]
name = "ram"
offset = 0x1000
size = 0x1000
backing = "memslot"

[[memory]]
name = "ramro"
offset = 0x2000
size = 0x1000
backing = "memslot"
readonly = true

[[interrupt]]
name = "dma"
trigger = "edge"
line = 5

[[effect]]
name = "copy"
on = "write GO"
if = "value != 0"
after = "1ms"
do = ["STATUS.COPIED = LEN * value", "STATUS.RUNS += 1", "pulse dma"]

[[effect]]
name = "err"
on = "write GO"
if = "LEN == 0"
do = ["set STATUS.ERR", "STATUS.RUNS -= 1"]
"#;

/// Effects that multiply: every access and every tick schedules more, so the pending
/// list fills to its bound; delayed self-feeding FIFO effects; a 64-bit counter; an
/// effect that resets the device.
pub const STORM: &str = r#"
[device]
name = "storm"

[[fifo]]
name = "q"
depth = 4
width = 64
overflow = "FLAGS.OVR"
underflow = "FLAGS.UDR"

[[fifo]]
name = "big"
depth = 65536
width = 1

[[register]]
name = "KICK"
offset = 0
width = 64
push = "q"
pop = "q"

[[register]]
name = "FLAGS"
offset = 8
width = 8
[[register.field]]
name = "OVR"
bits = 0
on_write = "w1c"
[[register.field]]
name = "UDR"
bits = 1
on_write = "w1c"
[[register.field]]
name = "FULL"
bits = 2
value = "q.full"
[[register.field]]
name = "FREE"
bits = "7:3"
value = "q.free + q.depth * 0 + big.level / 0 + (1 << 70)"

[[register]]
name = "C64"
offset = 0x10
width = 64
sw = "ro"
counter = { saturate = false, overflow = "FLAGS.OVR" }

[[register]]
name = "RST"
offset = 0x18
width = 8
sw = "wo"

[[register]]
name = "BIGP"
offset = 0x1c
width = 8
push = "big"
sw = "na"

[[interrupt]]
name = "any"
when = "FLAGS.OVR | FLAGS.UDR"

[[effect]]
name = "tick"
on = "write KICK"
after = "1ns"
do = ["C64 += value", "push q value + 1"]

[[effect]]
name = "echo"
on = "push q"
after = "2ns"
do = ["push q value * 3", "C64 -= 1"]

[[effect]]
name = "twice"
on = "pop q"
after_accesses = 1
do = ["push q value", "push q ~value", "push big 1"]

[[effect]]
name = "count"
on = "read KICK"
after_accesses = 3
do = ["C64 += 0xffffffffffffffff"]

[[effect]]
name = "again"
on = "reset"
after = "5ns"
do = ["push q 7"]

[[effect]]
name = "boom"
on = "write RST"
do = ["reset"]
"#;

/// The descriptions written for [`engine`]; it also picks from the bundled ones
/// ([`crate::bundled`]).
pub const DESCRIPTIONS: [&str; 4] = [UART, BANKED, MEMORY, STORM];

/// The models [`engine`] picks from (by its first byte): [`DESCRIPTIONS`] (they must
/// compile), then every bundled description that compiles.
pub fn models() -> Vec<Model> {
    let mut out: Vec<Model> = DESCRIPTIONS
        .iter()
        .map(|d| compile_text(d, Path::new("fuzzing.toml")).unwrap_or_else(|e| panic!("fuzzing description: {e}")))
        .collect();
    for name in crate::bundled::names() {
        if let Some(Ok(m)) = crate::bundled::bundled(name).map(|t| compile_text(t, Path::new(name))) {
            out.push(m);
        }
    }
    out
}

/// Reads values from the fuzzer's bytes; past the end, everything is 0. The VMM's fuzz
/// bodies (mmiolab_vmm::fuzzing) read their inputs with it too.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader of `data`.
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }

    /// What is left, without reading it.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// Nothing left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, little endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next eight bytes, little endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A string: a length byte, then that many bytes as lossy UTF-8; lengths from 0xf0 up
    /// repeat what follows, so names run past every bound a line has.
    pub fn string(&mut self) -> String {
        let n = self.u8();
        if n >= 0xf0 {
            let unit = String::from_utf8_lossy(self.bytes(usize::from(n & 0xf) + 1)).into_owned();
            unit.repeat(usize::from(self.u8()) * 8 + 1)
        } else {
            String::from_utf8_lossy(self.bytes(usize::from(n))).into_owned()
        }
    }
}

/// Checks that the compiled model keeps the bounds the engine relies on.
fn check_model(model: &Model) {
    assert!(model.registers.len() <= MAX_REGISTERS);
    assert!(model.byte_slot.len() as u64 <= MAX_REGISTER_SPAN);
    for r in &model.registers {
        assert!(matches!(r.width, 1 | 2 | 4 | 8), "{}: width {}", r.name, r.width);
        assert!(
            r.offset + u64::from(r.width) <= model.size,
            "{} lies outside the size",
            r.name
        );
    }
    for m in &model.memories {
        assert!(m.offset + m.size <= model.size, "{} lies outside the size", m.name);
    }
    assert!(model.interrupts.len() <= 32);
    assert!(model.lines <= 32);
}

/// Target `description`: arbitrary bytes as description text.
pub fn description(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(model) = compile_text(&text, Path::new("fuzz.toml")) {
        check_model(&model);
        let state = State::new(&model);
        drop(state);
        for style in [Style::C, Style::Asm] {
            let options = HeaderOptions {
                prefix: model.name.clone(),
                style,
                source: Some("fuzz.toml".to_owned()),
                command: None,
            };
            let _ = device_header_with(&model, &options);
        }
    }
    if let Ok(desc) = Description::from_toml(&text) {
        let shift = u32::from(data.first().copied().unwrap_or(0) % 10);
        if let Ok(model) = compile_shifted(&desc, shift) {
            assert!(shift <= 8, "reg_shift {shift} accepted");
            check_model(&model);
        }
    }
}

/// Target `engine`: the first byte picks a bundled description, the rest drives it.
pub fn engine(data: &[u8]) {
    thread_local! {
        static MODELS: Vec<Model> = models();
    }
    let Some((pick, ops)) = data.split_first() else {
        return;
    };
    MODELS.with(|models| {
        if let Some(model) = models.get(usize::from(*pick) % models.len()) {
            run_ops(model, ops, MAX_OPS);
        }
    });
}

/// Target `description_then_engine`: description text up to the first NUL, then
/// operations on it.
pub fn description_then_engine(data: &[u8]) {
    let (text, ops) = match data.iter().position(|b| *b == 0) {
        Some(n) => (data.get(..n).unwrap_or_default(), data.get(n + 1..).unwrap_or_default()),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let Ok(model) = compile_text(&text, Path::new("fuzz.toml")) else {
        return;
    };
    check_model(&model);
    run_ops(&model, ops, MAX_OPS_HOSTILE);
}

/// A writer that fails, for the drain of a FIFO whose host side went away.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("gone"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An offset for an access: inside the map, at a register or memory window (give or
/// take a few bytes), anywhere, or near the top of the address space.
fn pick_offset(model: &Model, b: &mut Bytes<'_>) -> u64 {
    let delta = i64::from(b.u8() as i8 % 12);
    match b.u8() % 8 {
        0..=2 => {
            let n = b.u16();
            match model.registers.get(usize::from(n) % model.registers.len().max(1)) {
                Some(r) => r.offset.wrapping_add_signed(delta),
                None => u64::from(n),
            }
        }
        3 => {
            let n = b.u16();
            match model.memories.get(usize::from(n) % model.memories.len().max(1)) {
                Some(m) => (m.offset + u64::from(n) % m.size).wrapping_add_signed(delta),
                None => u64::from(n),
            }
        }
        4 => u64::from(b.u16()) % model.size.saturating_add(16),
        5 => b.u64(),
        6 => u64::MAX - u64::from(b.u8()),
        _ => model.size.wrapping_add_signed(delta),
    }
}

/// Checks the engine's bounds after one operation.
fn check(model: &Model, state: &State, notes: &Notes<'_>, out: &Outcome, now: u64) {
    assert!(state.pending() <= MAX_PENDING, "{} effects pending", state.pending());
    assert!(notes.as_slice().len() <= MAX_NOTES);
    for (i, f) in model.fifos.iter().enumerate() {
        let level = state.fifo_level(i).unwrap_or(0);
        assert!(level <= f.depth as usize, "FIFO {} holds {level} > {}", f.name, f.depth);
    }
    assert_eq!(state.fifo_level(model.fifos.len()), None);
    let irqs = if model.interrupts.len() >= 32 {
        u32::MAX
    } else {
        (1u32 << model.interrupts.len()) - 1
    };
    assert_eq!(state.irq_levels() & !irqs, 0);
    assert_eq!(out.irq_changed & !irqs, 0);
    assert_eq!(out.pulses & !irqs, 0);
    if let Some(r) = out.register {
        assert!((r as usize) < model.registers.len());
    }
    if let Some(t) = state.next_deadline() {
        assert!(
            t > now || now == u64::MAX,
            "deadline {t} not after now {now} after running what was due"
        );
    }
}

/// Runs at most `max_ops` operations decoded from `ops` on a fresh state of `model`.
pub fn run_ops(model: &Model, ops: &[u8], max_ops: usize) {
    let mut b = Bytes::new(ops);
    let mut state = State::new(model);
    let mut now = 0u64;
    let mut fields = [mmiolab_devices::FieldValue {
        name: "",
        value: 0,
        enum_name: None,
    }; engine::MAX_FIELDS];
    let mut n = 0;
    while !b.is_empty() && n < max_ops {
        n += 1;
        let mut notes = Notes::default();
        let op = b.u8();
        let out = match op % 16 {
            // Accesses, most of the time.
            0..=9 => {
                let dir = if op & 0x10 == 0 { Dir::Read } else { Dir::Write };
                let offset = pick_offset(model, &mut b);
                let width = usize::from(b.u8() % 10);
                let value = b.u64();
                let mut data = [0u8; 9];
                let Some(bytes) = data.get_mut(..width) else { continue };
                for (d, v) in bytes.iter_mut().zip(value.to_le_bytes().iter().cycle()) {
                    *d = *v;
                }
                let t = now;
                let out = engine::access(model, &mut state, dir, offset, bytes, &|| t, &mut notes);
                // Widths 3, 5, 6 and 7 are real (KVM's page-boundary splits); only 0 and
                // more than 8 are refused.
                if dir == Dir::Read && !(1..=8).contains(&width) {
                    assert!(
                        bytes.iter().all(|x| *x == 0xff),
                        "a {width}-byte read returned {bytes:?}"
                    );
                }
                if let Some(r) = out.register {
                    let v = engine::register_value(model, r, offset, bytes);
                    let k = engine::decode(model, r, v, &mut fields);
                    assert!(k <= engine::MAX_FIELDS);
                }
                // The trace's "no clock of its own": an access at the same time twice
                // schedules nothing due before now.
                out
            }
            // Time passes; what is due runs.
            10 | 11 => {
                let step = match b.u8() % 4 {
                    0 => u64::from(b.u8()),
                    1 => u64::from(b.u16()) * 1000,
                    2 => u64::from(b.u16()) * 1_000_000,
                    _ => b.u64(),
                };
                now = now.saturating_add(step);
                let mut out = engine::run_due(model, &mut state, now, &mut notes);
                // One call does bounded work; what stays due is reported as due, and
                // calling again (as the scheduler does) makes progress.
                let mut calls = 0;
                loop {
                    assert_eq!(out.scheduled, state.next_deadline());
                    match out.scheduled {
                        Some(t) if t <= now && now < u64::MAX => {
                            calls += 1;
                            assert!(calls <= MAX_PENDING, "run_due makes no progress");
                            notes.clear();
                            out = engine::run_due(model, &mut state, now, &mut notes);
                        }
                        _ => break,
                    }
                }
                out
            }
            // The host feeds a FIFO (maybe one that does not exist).
            12 => {
                let fifo = usize::from(b.u8()) % (model.fifos.len() + 1);
                let count = usize::from(b.u8() % 24);
                let mut values = [0u8; 24];
                for v in values.iter_mut().take(count) {
                    *v = b.u8();
                }
                let before = state.fifo_level(fifo);
                let t = now;
                let (taken, out) = engine::feed(
                    model,
                    &mut state,
                    fifo,
                    values.get(..count).unwrap_or_default(),
                    &|| t,
                    &mut notes,
                );
                assert!(taken <= count);
                if before.is_none() {
                    assert_eq!(taken, 0);
                }
                out
            }
            // The host drains a FIFO into a sink, or into a writer that fails.
            13 => {
                let fifo = usize::from(b.u8()) % (model.fifos.len() + 1);
                if b.u8() & 1 == 0 {
                    state.set_drain(fifo, Box::new(std::io::sink()));
                } else {
                    state.set_drain(fifo, Box::new(Broken));
                }
                Outcome::default()
            }
            // Reset.
            14 => {
                let t = now;
                let out = engine::reset(model, &mut state, &|| t, &mut notes);
                assert!(state.pending() <= MAX_PENDING);
                out
            }
            // A fresh state, as a machine restart would make.
            _ => {
                state = State::new(model);
                Outcome::default()
            }
        };
        check(model, &state, &notes, &out, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_descriptions_compile() {
        let models = models();
        assert!(models.len() >= DESCRIPTIONS.len());
        for m in &models {
            check_model(m);
        }
    }

    #[test]
    fn bodies_take_empty_and_short_inputs() {
        for data in [&b""[..], b"\0", b"\x01", b"\x02\x00\x00\x00", &[0xff; 64]] {
            description(data);
            engine(data);
            description_then_engine(data);
        }
    }
}
