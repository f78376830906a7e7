//! The register engine: one device's state and what an access does to it.
//!
//! Pure: [`State`] holds values, FIFOs, memory and pending effects; the functions here take
//! the compiled [`Model`], the state and the access, and return an [`Outcome`] that says what
//! the caller must do outside (drive interrupt lines, arm a timer, write a trace record).
//! No locks, no file descriptors, no clock of its own (the caller passes `now`), no
//! allocation on an access (FIFOs and the pending list are allocated to their bounds when
//! the state is made), and no panic on any offset, width or value.
//!
//! Order within one access: the register is chosen (banked views by their condition), the
//! write applies field by field (or the read computes its value), a FIFO is pushed or
//! popped, read side effects apply, effects fire (at once, or are scheduled), self-clearing
//! fields clear, effects waiting for a number of accesses count this one, and finally
//! every interrupt condition is evaluated.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;

use arrayvec::ArrayVec;

use mmiolab_devices::{FieldValue, Note};

use crate::compile::{ANY_BITS, Action, Delay, FieldRef, Model, OnRead, OnWrite, Register};
use crate::expr::{Env, Expr, FifoProp, Operand};
use crate::schema::{Endianness, TracePolicy, Trigger, WidthPolicy};

/// Bytes from the host a FIFO's host side holds until the guest makes room; more are
/// dropped (as a receiver without flow control drops them) and logged once.
pub const MAX_HOST_PENDING: usize = 1 << 20;
/// Most effects that can wait at once; more are dropped (and logged, rate-limited).
pub const MAX_PENDING: usize = 1024;
/// Deepest chain of effects firing effects inside one access (cycles are refused when the
/// description is compiled; this bounds what remains, e.g. long FIFO chains).
const MAX_CHAIN: u32 = 16;
/// Work one access or event may do: each effect fired and each action run counts 1, a
/// reset more (by the size of the state it resets). The chain bound above limits depth,
/// not breadth: effects that each push a FIFO twice double at every step, and an acyclic
/// description can make one access fire billions of effects. Past it, effects are dropped
/// (counted in [`State::dropped_effects`], logged); waiting effects that are due stay
/// waiting for the next access or event.
pub const MAX_WORK: u32 = 1024;
/// Computed-field evaluations one access or event may do. Computed fields that read
/// computed fields cost a product (`A = B + B + B`, `B = C + C + C`, ... to the depth bound
/// is 3^8 evaluations of `C` per read of `A`); past it, computed fields read 0, as past the
/// depth bound.
pub const MAX_COMPUTE: u32 = 1024;
/// Notes one access can carry in its trace record.
pub const MAX_NOTES: usize = 24;
/// Fields one trace record decodes.
pub const MAX_FIELDS: usize = 32;

/// Notes of one access, in a fixed array: recording never allocates, and an empty list
/// costs nothing to make (an initialised array of notes cost about 60 instructions per
/// access, most of them copying it into place).
#[derive(Default)]
pub struct Notes<'m> {
    items: ArrayVec<Note<'m>, MAX_NOTES>,
}

impl<'m> Notes<'m> {
    #[inline]
    fn push(&mut self, note: Note<'m>) {
        // The last place says that notes were left out.
        match self.items.remaining_capacity() {
            0 => {}
            1 => self.items.push(Note::Truncated),
            _ => self.items.push(note),
        }
    }

    /// The notes recorded.
    pub fn as_slice(&self) -> &[Note<'m>] {
        &self.items
    }

    /// Forgets them.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Guest load.
    Read,
    /// Guest store.
    Write,
}

/// What the caller must do after an access or an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Interrupt outputs whose level changed (bit per interrupt); levels are in
    /// [`State::irq_levels`].
    pub irq_changed: u32,
    /// Interrupt outputs pulsed by a `pulse` action (bit per interrupt).
    pub pulses: u32,
    /// Earliest deadline (ns) of an effect scheduled by this call.
    pub scheduled: Option<u64>,
    /// Register instance the access reached first.
    pub register: Option<u32>,
    /// Whether the register's trace policy wants this access recorded.
    pub trace: bool,
}

#[derive(Clone, Copy, Debug)]
enum Due {
    At(u64),
    Accesses(u32),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    due: Due,
    /// Scheduled by the access being served: the count starts with the next one.
    fresh: bool,
    effect: u32,
    value: u64,
}

/// A device's state as a snapshot carries it (docs/snapshot.md, the `described` state):
/// everything [`State`] holds except the host sides of FIFOs (reconnected from the machine
/// file) and what is derived from the model. Byte arrays are hex.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedEngine {
    /// Stored value of each register instance, in the model's order.
    pub values: Vec<u64>,
    /// Write-once bits already written, per register instance.
    pub written_once: Vec<u64>,
    /// The value each register instance last read, per instance.
    pub last_read: Vec<u64>,
    /// Each FIFO's elements, oldest first.
    pub fifos: Vec<Vec<u64>>,
    /// Bytes the host sent each FIFO that wait for room, as hex.
    pub host_pending: Vec<String>,
    /// Host bytes dropped so far.
    pub host_dropped: u64,
    /// Each trapped memory window's bytes, as hex (empty for a memslot window, whose bytes
    /// are in the snapshot's memory file).
    pub memories: Vec<String>,
    /// Interrupt output levels, bit per interrupt.
    pub irq: u32,
    /// Effects waiting: after a time or a number of accesses.
    pub pending: Vec<SavedPending>,
    /// Effects dropped so far.
    pub dropped_effects: u64,
    /// A FIFO's host output failed (reported once).
    pub drain_failed: bool,
}

/// A waiting effect in a snapshot: exactly one of `due_ns` and `due_accesses`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPending {
    /// Due at this time of the machine's clock (ns); the time left is `due_ns` minus the
    /// snapshot's `clock_ns`.
    pub due_ns: Option<u64>,
    /// Due after this many more accesses.
    pub due_accesses: Option<u32>,
    /// Scheduled by the access being served (its count starts with the next one).
    pub fresh: bool,
    /// The effect's index in the model.
    pub effect: u32,
    /// The value the effect was fired with.
    pub value: u64,
}

/// A device's mutable state.
pub struct State {
    values: Vec<u64>,
    written_once: Vec<u64>,
    last_read: Vec<u64>,
    fifos: Vec<VecDeque<u64>>,
    drains: Vec<Option<Box<dyn Write + Send>>>,
    drain_failed: bool,
    /// Bytes the host sent that the FIFO had no room for yet, by FIFO; they move in as the
    /// guest pops (a receiver's buffer on the host side of the line).
    host_pending: Vec<VecDeque<u8>>,
    host_dropped: u64,
    memories: Vec<Vec<u8>>,
    irq: u32,
    pending: Vec<Pending>,
    dropped_effects: u64,
    /// By slot: its register when an access of the slot's width is a whole-register access
    /// ([`Direct`]).
    direct: Vec<Option<Direct>>,
    /// Computed-field evaluations left in this access or event ([`MAX_COMPUTE`]).
    compute_left: Cell<u32>,
}

impl State {
    /// The state at reset. Reset effects do not run here: call [`reset`] for that.
    pub fn new(model: &Model) -> State {
        let mut s = State {
            values: model.registers.iter().map(|r| r.reset).collect(),
            written_once: vec![0; model.registers.len()],
            last_read: model.registers.iter().map(|r| r.reset).collect(),
            fifos: model
                .fifos
                .iter()
                .map(|f| VecDeque::with_capacity(f.depth as usize))
                .collect(),
            drains: model.fifos.iter().map(|_| None).collect(),
            drain_failed: false,
            host_pending: model.fifos.iter().map(|_| VecDeque::new()).collect(),
            host_dropped: 0,
            memories: model
                .memories
                .iter()
                .map(|m| match m.backing {
                    crate::schema::Backing::Trapped => vec![m.fill; m.size as usize],
                    crate::schema::Backing::Memslot => Vec::new(),
                })
                .collect(),
            irq: 0,
            pending: Vec::with_capacity(MAX_PENDING),
            dropped_effects: 0,
            direct: direct_slots(model),
            compute_left: Cell::new(MAX_COMPUTE),
        };
        let mut notes = Notes::default();
        let mut out = Outcome::default();
        evaluate_interrupts(model, &mut s, &mut notes, &mut out);
        s
    }

    /// Everything an access can change, for the tests that compare two ways of serving it
    /// (the computed-field budget aside: every path renews it before it reads a computed
    /// field).
    #[cfg(test)]
    fn snapshot(&self) -> String {
        format!(
            "values {:?} once {:?} last_read {:?} fifos {:?} host {:?} {} memories {:?} irq {:#x} pending {:?} dropped {}",
            self.values,
            self.written_once,
            self.last_read,
            self.fifos,
            self.host_pending,
            self.host_dropped,
            self.memories,
            self.irq,
            self.pending,
            self.dropped_effects,
        )
    }

    /// The state for a snapshot.
    pub fn save(&self) -> SavedEngine {
        SavedEngine {
            values: self.values.clone(),
            written_once: self.written_once.clone(),
            last_read: self.last_read.clone(),
            fifos: self.fifos.iter().map(|q| q.iter().copied().collect()).collect(),
            host_pending: self
                .host_pending
                .iter()
                .map(|q| mmiolab_devices::to_hex(&q.iter().copied().collect::<Vec<u8>>()))
                .collect(),
            host_dropped: self.host_dropped,
            memories: self.memories.iter().map(|m| mmiolab_devices::to_hex(m)).collect(),
            irq: self.irq,
            pending: self
                .pending
                .iter()
                .map(|p| SavedPending {
                    due_ns: match p.due {
                        Due::At(t) => Some(t),
                        Due::Accesses(_) => None,
                    },
                    due_accesses: match p.due {
                        Due::Accesses(n) => Some(n),
                        Due::At(_) => None,
                    },
                    fresh: p.fresh,
                    effect: p.effect,
                    value: p.value,
                })
                .collect(),
            dropped_effects: self.dropped_effects,
            drain_failed: self.drain_failed,
        }
    }

    /// Takes a snapshot's state, checked against `model` first: on an error (which says
    /// what does not fit) nothing has changed.
    pub fn restore(&mut self, model: &Model, saved: SavedEngine) -> Result<(), String> {
        let regs = model.registers.len();
        for (what, len) in [
            ("values", saved.values.len()),
            ("written_once", saved.written_once.len()),
            ("last_read", saved.last_read.len()),
        ] {
            if len != regs {
                return Err(format!("{what}: {len} registers saved, the model has {regs}"));
            }
        }
        if saved.fifos.len() != model.fifos.len() || saved.host_pending.len() != model.fifos.len() {
            return Err(format!(
                "{} FIFOs saved, the model has {}",
                saved.fifos.len(),
                model.fifos.len()
            ));
        }
        for (q, f) in saved.fifos.iter().zip(&model.fifos) {
            if q.len() > f.depth as usize {
                return Err(format!(
                    "FIFO `{}` holds {} elements, deeper than its {}",
                    f.name,
                    q.len(),
                    f.depth
                ));
            }
        }
        let mut host_pending = Vec::with_capacity(saved.host_pending.len());
        for (hex, f) in saved.host_pending.iter().zip(&model.fifos) {
            let bytes =
                mmiolab_devices::from_hex(hex).ok_or_else(|| format!("FIFO `{}`: host bytes: not hex", f.name))?;
            if bytes.len() > MAX_HOST_PENDING {
                return Err(format!("FIFO `{}`: more than {MAX_HOST_PENDING} host bytes", f.name));
            }
            host_pending.push(VecDeque::from(bytes));
        }
        if saved.memories.len() != model.memories.len() {
            return Err(format!(
                "{} memory windows saved, the model has {}",
                saved.memories.len(),
                model.memories.len()
            ));
        }
        let mut memories = Vec::with_capacity(saved.memories.len());
        for ((hex, m), now) in saved.memories.iter().zip(&model.memories).zip(&self.memories) {
            let bytes = mmiolab_devices::from_hex(hex).ok_or_else(|| format!("memory `{}`: not hex", m.name))?;
            if bytes.len() != now.len() {
                return Err(format!(
                    "memory `{}`: {} bytes saved, the window holds {}",
                    m.name,
                    bytes.len(),
                    now.len()
                ));
            }
            memories.push(bytes);
        }
        if model.interrupts.len() < 32 && saved.irq >> model.interrupts.len() != 0 {
            return Err(format!(
                "interrupt levels {:#x} name more than the model's {} interrupts",
                saved.irq,
                model.interrupts.len()
            ));
        }
        if saved.pending.len() > MAX_PENDING {
            return Err(format!("more than {MAX_PENDING} waiting effects"));
        }
        let mut pending = Vec::with_capacity(MAX_PENDING);
        for p in &saved.pending {
            if p.effect as usize >= model.effects.len() {
                return Err(format!(
                    "a waiting effect names effect {}, the model has {}",
                    p.effect,
                    model.effects.len()
                ));
            }
            let due = match (p.due_ns, p.due_accesses) {
                (Some(t), None) => Due::At(t),
                (None, Some(n)) => Due::Accesses(n),
                _ => return Err("a waiting effect needs exactly one of due_ns and due_accesses".to_owned()),
            };
            pending.push(Pending {
                due,
                fresh: p.fresh,
                effect: p.effect,
                value: p.value,
            });
        }
        self.values = saved.values;
        self.written_once = saved.written_once;
        self.last_read = saved.last_read;
        // Each FIFO keeps room for its whole depth: a push on the access path never allocates.
        self.fifos = saved
            .fifos
            .into_iter()
            .zip(&model.fifos)
            .map(|(q, f)| {
                let mut d = VecDeque::with_capacity(f.depth as usize);
                d.extend(q);
                d
            })
            .collect();
        self.host_pending = host_pending;
        self.host_dropped = saved.host_dropped;
        self.memories = memories;
        self.irq = saved.irq;
        self.pending = pending;
        self.dropped_effects = saved.dropped_effects;
        self.drain_failed = saved.drain_failed;
        Ok(())
    }

    /// Levels of the interrupt outputs (bit per interrupt).
    pub fn irq_levels(&self) -> u32 {
        self.irq
    }

    /// The stored value of register instance `reg` (for tests and snapshots).
    pub fn value(&self, reg: usize) -> Option<u64> {
        self.values.get(reg).copied()
    }

    /// Elements held by FIFO `fifo`.
    pub fn fifo_level(&self, fifo: usize) -> Option<usize> {
        self.fifos.get(fifo).map(VecDeque::len)
    }

    /// Sends what is pushed onto FIFO `fifo` to `out` instead of keeping it: the host
    /// drains it at once (a UART's transmitter wired to a file or a socket).
    pub fn set_drain(&mut self, fifo: usize, out: Box<dyn Write + Send>) {
        if let Some(d) = self.drains.get_mut(fifo) {
            *d = Some(out);
        }
    }

    /// Bytes from the host dropped because the host side's buffer was full.
    pub fn host_dropped(&self) -> u64 {
        self.host_dropped
    }

    /// Effects dropped because too many were waiting, or dropped or cut short because one
    /// access or event did more than [`MAX_WORK`].
    pub fn dropped_effects(&self) -> u64 {
        self.dropped_effects
    }

    /// Effects waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The earliest deadline of a waiting timed effect.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter_map(|p| match p.due {
                Due::At(t) => Some(t),
                Due::Accesses(_) => None,
            })
            .min()
    }
}

/// The device's view of itself, for expressions.
struct View<'a> {
    model: &'a Model,
    state: &'a State,
    value: u64,
}

impl Env for View<'_> {
    fn operand(&self, op: Operand) -> u64 {
        match op {
            Operand::Value => self.value,
            Operand::Field { reg, shift, mask } => {
                (internal(self.model, self.state, reg as usize, 0, mask) & mask) >> shift
            }
            Operand::Fifo { fifo, prop } => {
                let (Some(q), Some(f)) = (self.state.fifos.get(fifo as usize), self.model.fifos.get(fifo as usize))
                else {
                    return 0;
                };
                let level = q.len() as u64;
                match prop {
                    FifoProp::Level => level,
                    FifoProp::Empty => u64::from(level == 0),
                    FifoProp::Full => u64::from(level >= u64::from(f.depth)),
                    FifoProp::Free => u64::from(f.depth).saturating_sub(level),
                    FifoProp::Depth => u64::from(f.depth),
                }
            }
        }
    }
}

/// Computed fields may read computed fields; past this depth they read 0 (a description
/// whose computed fields refer to each other in a circle gets 0, not a stack overflow).
const MAX_COMPUTE_DEPTH: u32 = 8;

/// The register as the device sees it: stored bits, with the computed fields that overlap
/// `want` evaluated (the others read 0).
fn internal(model: &Model, state: &State, reg: usize, depth: u32, want: u64) -> u64 {
    let Some(r) = model.registers.get(reg) else {
        return 0;
    };
    let stored = state.values.get(reg).copied().unwrap_or(0);
    if r.computed_mask == 0 {
        return stored;
    }
    let mut v = stored & !r.computed_mask;
    if depth >= MAX_COMPUTE_DEPTH {
        return v;
    }
    for f in r.fields.iter().filter(|f| f.mask & want != 0) {
        if let Some(e) = &f.value {
            let left = state.compute_left.get();
            if left == 0 {
                return v;
            }
            state.compute_left.set(left - 1);
            let env = DepthView {
                model,
                state,
                depth: depth + 1,
            };
            v |= (e.eval(&env) << f.shift) & f.mask;
        }
    }
    v
}

struct DepthView<'a> {
    model: &'a Model,
    state: &'a State,
    depth: u32,
}

impl Env for DepthView<'_> {
    fn operand(&self, op: Operand) -> u64 {
        match op {
            Operand::Field { reg, shift, mask } => {
                (internal(self.model, self.state, reg as usize, self.depth, mask) & mask) >> shift
            }
            other => View {
                model: self.model,
                state: self.state,
                value: 0,
            }
            .operand(other),
        }
    }
}

fn eval(model: &Model, state: &State, e: &Expr, value: u64) -> u64 {
    e.eval(&View { model, state, value })
}

/// Evaluates `e` on the state as it is, changing nothing (the register checker's order
/// rules, judged before an access).
pub fn evaluate(model: &Model, state: &State, e: &Expr, value: u64) -> u64 {
    eval(model, state, e, value)
}

/// The working context of one access or event.
struct Ctx<'m, 'n> {
    model: &'m Model,
    notes: &'n mut Notes<'m>,
    out: Outcome,
    now: &'n dyn Fn() -> u64,
    /// Work left ([`MAX_WORK`]).
    work: u32,
    /// A write changed the stored bits of a register it reached. Every other change of
    /// state an access can make (FIFOs, effects, read side effects) is noted.
    changed: bool,
}

impl<'m, 'n> Ctx<'m, 'n> {
    /// A context for one access or event; it also renews the state's computed-field budget.
    fn new(model: &'m Model, state: &State, notes: &'n mut Notes<'m>, now: &'n dyn Fn() -> u64) -> Self {
        state.compute_left.set(MAX_COMPUTE);
        Ctx {
            model,
            notes,
            out: Outcome::default(),
            now,
            work: MAX_WORK,
            changed: false,
        }
    }

    /// Takes `n` units of work, or says there is not that much left.
    fn spend(&mut self, n: u32) -> bool {
        match self.work.checked_sub(n) {
            Some(left) => {
                self.work = left;
                true
            }
            None => {
                self.work = 0;
                false
            }
        }
    }
}

/// What a reset costs in [`MAX_WORK`]: it rewrites every register and trapped memory byte
/// (under a third of the work, for the largest state a description may have).
fn reset_work(model: &Model) -> u32 {
    let bytes: u64 = model
        .memories
        .iter()
        .filter(|m| m.backing == crate::schema::Backing::Trapped)
        .map(|m| m.size)
        .sum();
    let cost = 1 + model.registers.len() as u64 / 128 + bytes / (1 << 18);
    u32::try_from(cost).unwrap_or(u32::MAX)
}

/// One guest access of `data.len()` bytes at `offset`: reads fill `data`, writes take it.
/// `now` gives the machine's time in ns; it is called only when an effect is scheduled.
pub fn access<'m>(
    model: &'m Model,
    state: &mut State,
    dir: Dir,
    offset: u64,
    data: &mut [u8],
    now: &dyn Fn() -> u64,
    notes: &mut Notes<'m>,
) -> Outcome {
    if let Some(w) = whole_at(model, state, offset, data.len()) {
        return match dir {
            Dir::Read => whole_read(model, state, w, data, now, notes),
            Dir::Write => whole_write(model, state, w, data, now, notes),
        };
    }
    general_access(model, state, dir, offset, data, now, notes)
}

/// [`access`] for any access but a whole-register one ([`Whole`]), and for every access
/// in the tests that compare both ways.
fn general_access<'m>(
    model: &'m Model,
    state: &mut State,
    dir: Dir,
    offset: u64,
    data: &mut [u8],
    now: &dyn Fn() -> u64,
    notes: &mut Notes<'m>,
) -> Outcome {
    let mut cx = Ctx::new(model, state, notes, now);
    if !walk(&mut cx, state, dir, offset, data) {
        return cx.out;
    }
    finish(cx, state)
}

/// The end of every access: effects waiting for accesses count it, and the interrupt
/// conditions are evaluated when it changed something.
#[inline]
fn finish(mut cx: Ctx<'_, '_>, state: &mut State) -> Outcome {
    if !state.pending.is_empty() {
        count_access(&mut cx, state);
    }
    // An access that changed nothing cannot have changed an interrupt condition.
    if cx.changed || !cx.notes.as_slice().is_empty() {
        evaluate_interrupts(cx.model, state, cx.notes, &mut cx.out);
    }
    cx.out
}

/// Any access but a whole-register one ([`Direct`]): a memory window, or the access's bytes
/// one register (slot) at a time with holes in between. False for an access width no bus
/// makes (0, or more than 8 bytes): then nothing else happens. Widths 3, 5, 6 and 7 are
/// real: KVM splits an access that straddles a page boundary into the bytes on each page
/// (a 4-byte store 3 bytes before a page end arrives as 3 bytes, then 1), so they go to
/// memory windows whole and to registers as the partial accesses they are.
fn walk(cx: &mut Ctx<'_, '_>, state: &mut State, dir: Dir, offset: u64, data: &mut [u8]) -> bool {
    let model = cx.model;
    let width = data.len();
    if !(1..=8).contains(&width) {
        if dir == Dir::Read {
            data.fill(0xff);
        }
        cx.notes.push(Note::BadWidth);
        cx.out.trace = true;
        return false;
    }
    if !model.memories.is_empty() && memory_access(cx, state, dir, offset, data) {
        return true;
    }
    let end = offset.saturating_add(width as u64);
    let mut pos = offset;
    let mut any_hole = false;
    while pos < end {
        match slot_at(model, pos) {
            Some(slot) => {
                let chosen = choose(model, state, &slot.candidates, dir);
                match chosen.and_then(|i| model.registers.get(i as usize).map(|r| (i, r))) {
                    Some((i, r)) => register_access(cx, state, i, r, dir, offset, data, end),
                    None => {
                        any_hole |= fill_hole(
                            model,
                            dir,
                            offset,
                            data,
                            slot.offset,
                            slot.offset + u64::from(slot.width),
                        )
                    }
                }
                pos = slot.offset + u64::from(slot.width);
            }
            None => {
                let next = next_slot_start(model, pos, end);
                let hole = fill_hole(model, dir, offset, data, pos, next);
                any_hole |= hole && !lane_padding(model, pos, next);
                pos = next;
            }
        }
    }
    if any_hole {
        cx.notes.push(Note::Hole);
        cx.out.trace = true;
    }
    true
}

/// What a whole-register access to a slot's register needs, kept per slot in [`State`] so
/// that the common access reads one small record instead of walking the slot's bytes: the
/// slot has one register, without banked views, whose own width is accepted, in a
/// little-endian device without memory windows.
#[derive(Clone, Copy, Debug)]
struct Direct {
    offset: u64,
    reg: u32,
    width: u8,
    /// Plain storage: [`plain_write`] and [`plain_read`] serve it with the fields below.
    plain: bool,
    /// A write is its write masks and notes only ([`masked_write`]): not plain storage, no
    /// FIFO push, no write effects, no self-clearing or write-once fields.
    masked_write: bool,
    /// A read is the stored value or a FIFO's pop, and its notes ([`quick_read`]): not
    /// plain storage, no computed or read-side-effect fields, no read effects, no pop
    /// effects.
    quick_read: bool,
    trace: TracePolicy,
    write_mask: u64,
    read_mask: u64,
    reserved_read: u64,
    reserved: u64,
}

fn direct_slots(model: &Model) -> Vec<Option<Direct>> {
    model
        .slots
        .iter()
        .map(|slot| {
            let [only] = slot.candidates.as_slice() else {
                return None;
            };
            let r = model.registers.get(*only as usize)?;
            let width_bit = 1u8 << (usize::from(slot.width).trailing_zeros() & 7);
            let ok = r.when.is_none()
                && r.widths & width_bit != 0
                && r.offset == slot.offset
                && r.width == slot.width
                && model.endianness == Endianness::Little
                && model.memories.is_empty();
            let masks = &r.write_masks;
            ok.then_some(Direct {
                offset: slot.offset,
                reg: *only,
                width: slot.width,
                plain: r.plain,
                masked_write: !r.plain
                    && r.push.is_none()
                    && r.write_effects.is_empty()
                    && masks.singlepulse == 0
                    && masks.once == 0,
                quick_read: !r.plain
                    && r.computed_mask == 0
                    && r.read_effects.is_empty()
                    && r.fields.iter().all(|f| f.on_read == OnRead::None)
                    && r.pop.is_none_or(|f| {
                        model
                            .fifos
                            .get(f as usize)
                            .is_some_and(|desc| desc.pop_effects.is_empty())
                    }),
                trace: r.trace,
                write_mask: masks.writable & r.width_mask,
                read_mask: r.read_mask,
                reserved_read: r.reserved_read,
                reserved: r.width_mask & !r.field_mask,
            })
        })
        .collect()
}

/// A whole-register access, found by [`whole_at`]: an access of a register's own width at
/// its offset, in a slot it has alone, of a little-endian device without memory windows.
/// [`plain_write`], [`plain_read`], [`whole_write`] and [`whole_read`] serve it without
/// looking the slot up again. Valid for the state it was found in.
#[derive(Clone, Copy, Debug)]
pub struct Whole(usize);

/// The whole-register access a `width`-byte access at `offset` is, if it is one.
#[inline]
pub fn whole_at(model: &Model, state: &State, offset: u64, width: usize) -> Option<Whole> {
    let s = usize::from(*model.byte_slot.get(usize::try_from(offset).ok()?)?).checked_sub(1)?;
    let d = state.direct.get(s)?.as_ref()?;
    (d.offset == offset && usize::from(d.width) == width).then_some(Whole(s))
}

/// The plain load or store `w` is, when nothing waits for accesses (the general path
/// counts them).
#[inline]
fn plain_at(state: &State, w: Whole) -> Option<Direct> {
    if !state.pending.is_empty() {
        return None;
    }
    state.direct.get(w.0).copied().flatten().filter(|d| d.plain)
}

/// A guest write that is a plain store: the whole of a plain register, with nothing to
/// note, so no notes, no effects and no interrupt condition to evaluate (none reads a plain
/// register). Returns None, having changed nothing, when the write needs [`whole_write`].
#[inline]
pub fn plain_write(state: &mut State, w: Whole, data: &[u8]) -> Option<Outcome> {
    // whole_at matched the register's own width: 1, 2, 4 or 8 bytes.
    let p = plain_at(state, w)?;
    let written = le_value(data);
    // Reserved bits written other than they read are noted: the general path does that.
    if (written ^ p.reserved_read) & p.reserved != 0 {
        return None;
    }
    let v = state.values.get_mut(p.reg as usize)?;
    let old = *v;
    *v = (old & !p.write_mask) | (written & p.write_mask);
    Some(Outcome {
        register: Some(p.reg),
        trace: match p.trace {
            TracePolicy::Full => true,
            TracePolicy::Changes => *v != old,
            TracePolicy::Silent => false,
        },
        ..Outcome::default()
    })
}

/// A guest read that is a plain load: the whole of a plain register. Returns None, having
/// changed nothing, when the read needs [`whole_read`].
#[inline]
pub fn plain_read(state: &mut State, w: Whole, data: &mut [u8]) -> Option<Outcome> {
    let p = plain_at(state, w)?;
    let i = p.reg as usize;
    let value = (state.values.get(i)? & p.read_mask) | p.reserved_read;
    match data {
        [a] => *a = value as u8,
        [a, b] => [*a, *b] = (value as u16).to_le_bytes(),
        [a, b, c, d] => [*a, *b, *c, *d] = (value as u32).to_le_bytes(),
        [a, b, c, d, e, f, g, h] => [*a, *b, *c, *d, *e, *f, *g, *h] = value.to_le_bytes(),
        _ => return None,
    }
    let last = state.last_read.get_mut(i)?;
    let trace = match p.trace {
        TracePolicy::Full => true,
        TracePolicy::Changes => *last != value,
        TracePolicy::Silent => false,
    };
    *last = value;
    Some(Outcome {
        register: Some(p.reg),
        trace,
        ..Outcome::default()
    })
}

/// A whole-register guest write ([`Whole`]): what [`access`] does, without the walk over
/// the access's bytes, and for a register whose write is its masks alone, without the
/// general context either.
#[inline]
pub fn whole_write<'m>(
    model: &'m Model,
    state: &mut State,
    w: Whole,
    data: &[u8],
    now: &dyn Fn() -> u64,
    notes: &mut Notes<'m>,
) -> Outcome {
    let Some(d) = state.direct.get(w.0).copied().flatten() else {
        return Outcome::default();
    };
    let Some(r) = model.registers.get(d.reg as usize) else {
        return Outcome::default();
    };
    let written = le_value(data);
    if d.masked_write && state.pending.is_empty() {
        return masked_write(model, state, d, r, written, notes);
    }
    let mut cx = Ctx::new(model, state, notes, now);
    cx.out.register = Some(d.reg);
    write_and_judge(&mut cx, state, d.reg as usize, r, r.width_mask, written);
    finish(cx, state)
}

/// A whole-register write to a register whose write is its write masks and the notes they
/// call for (`Direct::masked_write`), with no effect waiting for accesses: exactly what
/// the general path does then (`write_and_judge`, `finish`), without its context.
#[inline(always)]
fn masked_write<'m>(
    model: &'m Model,
    state: &mut State,
    d: Direct,
    r: &'m Register,
    written: u64,
    notes: &mut Notes<'m>,
) -> Outcome {
    let mut out = Outcome {
        register: Some(d.reg),
        ..Outcome::default()
    };
    let Some(v) = state.values.get_mut(d.reg as usize) else {
        out.trace = r.trace == TracePolicy::Full;
        return out;
    };
    let old = *v;
    let lanes = r.width_mask;
    let masks = &r.write_masks;
    // No write-once fields: none is closed by an earlier write.
    let new = masks.apply(old, written, lanes, 0);
    if masks.closed(lanes, 0) & (written ^ old) != 0 || masks.noted & (old ^ new) != 0 {
        note_fields(notes, r, lanes, 0, old, new, written);
    }
    let reserved = (written ^ d.reserved_read) & d.reserved;
    if reserved != 0 {
        notes.push(Note::Reserved { bits: reserved });
    }
    *v = new;
    let changed = new != old;
    let noted = !notes.as_slice().is_empty();
    out.trace = match d.trace {
        TracePolicy::Full => true,
        TracePolicy::Changes => changed || noted,
        TracePolicy::Silent => noted,
    };
    if changed || noted {
        state.compute_left.set(MAX_COMPUTE);
        evaluate_interrupts(model, state, notes, &mut out);
    }
    out
}

/// A whole-register guest read ([`Whole`]): what [`access`] does, without the walk over the
/// access's bytes.
#[inline]
pub fn whole_read<'m>(
    model: &'m Model,
    state: &mut State,
    w: Whole,
    data: &mut [u8],
    now: &dyn Fn() -> u64,
    notes: &mut Notes<'m>,
) -> Outcome {
    let Some(d) = state.direct.get(w.0).copied().flatten() else {
        return Outcome::default();
    };
    let Some(r) = model.registers.get(d.reg as usize) else {
        return Outcome::default();
    };
    let i = d.reg as usize;
    if d.quick_read
        && state.pending.is_empty()
        // Host data waiting to enter the FIFO: the general path moves it in.
        && r.pop.is_none_or(|f| state.host_pending.get(f as usize).is_none_or(VecDeque::is_empty))
    {
        return quick_read(model, state, d, r, data, notes);
    }
    let mut cx = Ctx::new(model, state, notes, now);
    cx.out.register = Some(d.reg);
    let value = read_register(&mut cx, state, i, r, r.width_mask);
    le_store(data, value);
    judge_read(&mut cx, state, i, r, value);
    finish(cx, state)
}

/// A whole-register read of a register whose read is its stored value or a FIFO's pop
/// (`Direct::quick_read`), with no effect waiting for accesses: exactly what the general
/// path does then (`read_register`, `fifo_pop`, `judge_read`, `finish`), without its
/// context; the caller has checked that no host data waits to enter the FIFO.
#[inline(always)]
fn quick_read<'m>(
    model: &'m Model,
    state: &mut State,
    d: Direct,
    r: &'m Register,
    data: &mut [u8],
    notes: &mut Notes<'m>,
) -> Outcome {
    let i = d.reg as usize;
    let value = match r.pop {
        None => (state.values.get(i).copied().unwrap_or(0) & d.read_mask) | d.reserved_read,
        Some(f) => match (model.fifos.get(f as usize), state.fifos.get_mut(f as usize)) {
            (Some(desc), Some(q)) => {
                let popped = match q.pop_front() {
                    Some(v) => {
                        let level = q.len() as u32;
                        notes.push(Note::Fifo {
                            fifo: &desc.name,
                            level,
                        });
                        v
                    }
                    None => {
                        notes.push(Note::Underflow { fifo: &desc.name });
                        if let Some(flag) = desc.underflow {
                            store_noted(model, notes, state, &flag, u64::MAX, false);
                        }
                        desc.empty_read
                    }
                };
                popped & r.width_mask
            }
            _ => 0,
        },
    };
    le_store(data, value);
    let noted = !notes.as_slice().is_empty();
    let last = state.last_read.get_mut(i);
    let trace = match d.trace {
        TracePolicy::Full => true,
        TracePolicy::Changes => noted || last.as_ref().is_none_or(|l| **l != value),
        TracePolicy::Silent => noted,
    };
    if let Some(l) = last {
        *l = value;
    }
    let mut out = Outcome {
        register: Some(d.reg),
        trace,
        ..Outcome::default()
    };
    if noted {
        state.compute_left.set(MAX_COMPUTE);
        evaluate_interrupts(model, state, notes, &mut out);
    }
    out
}

fn slot_at(model: &Model, offset: u64) -> Option<&crate::compile::Slot> {
    let idx = usize::try_from(offset).ok()?;
    let s = *model.byte_slot.get(idx)?;
    model.slots.get(usize::from(s).checked_sub(1)?)
}

fn next_slot_start(model: &Model, from: u64, end: u64) -> u64 {
    let mut p = from;
    while p < end && slot_at(model, p).is_none() {
        p += 1;
    }
    p
}

/// Whether the hole bytes `[from, to)` all pad the bus lane of a register that starts at
/// their lane's first byte (a device with `reg_shift`, [`Model::lane`]): they read as holes
/// do, but an access that covers them is no access to a hole.
fn lane_padding(model: &Model, from: u64, to: u64) -> bool {
    model.lane > 1 && (from..to).all(|a| slot_at(model, a & !(model.lane - 1)).is_some())
}

/// Hole bytes of `[from, to)` within the access: reads get the hole value.
fn fill_hole(model: &Model, dir: Dir, offset: u64, data: &mut [u8], from: u64, to: u64) -> bool {
    if dir == Dir::Read {
        for a in from..to {
            if let Some(b) = a.checked_sub(offset).and_then(|i| data.get_mut(i as usize)) {
                *b = model.hole_read;
            }
        }
    }
    true
}

/// The register that answers among `candidates`: the first whose condition holds and
/// that can be accessed that way, else the first whose condition holds.
fn choose(model: &Model, state: &State, candidates: &[u32], dir: Dir) -> Option<u32> {
    let mut fallback = None;
    for &c in candidates {
        let Some(r) = model.registers.get(c as usize) else {
            continue;
        };
        let active = r.when.as_ref().is_none_or(|w| eval(model, state, w, 0) != 0);
        if !active {
            continue;
        }
        let usable = match dir {
            Dir::Read => r.readable,
            Dir::Write => r.writable,
        };
        if usable {
            return Some(c);
        }
        fallback.get_or_insert(c);
    }
    fallback
}

/// Bit position of the register byte at `addr`, given the device's byte order.
fn lane_shift(model: &Model, r: &Register, addr: u64) -> u32 {
    let i = (addr - r.offset) as u32;
    match model.endianness {
        Endianness::Little => 8 * i,
        Endianness::Big => 8 * (u32::from(r.width) - 1 - i),
    }
}

#[allow(clippy::too_many_arguments)]
fn register_access<'m>(
    cx: &mut Ctx<'m, '_>,
    state: &mut State,
    idx: u32,
    r: &'m Register,
    dir: Dir,
    offset: u64,
    data: &mut [u8],
    end: u64,
) {
    cx.out.register.get_or_insert(idx);
    let width_bit = 1u8 << (data.len().trailing_zeros());
    let lo = offset.max(r.offset);
    let hi = end.min(r.offset + u64::from(r.width));
    if r.widths & width_bit == 0 && r.bad_width == WidthPolicy::Reject {
        // Only this register's bytes: others the access spans answer for themselves.
        if dir == Dir::Read {
            for a in lo..hi {
                if let Some(b) = data.get_mut((a - offset) as usize) {
                    *b = 0xff;
                }
            }
        }
        cx.notes.push(Note::BadWidth);
        cx.out.trace = true;
        return;
    }
    // The whole register, little-endian: its lanes are all of it, the bytes are the value
    // (`le_value`/`le_store` take 1, 2, 4 or 8 bytes: a page-split 3- to 7-byte access that
    // starts with a whole register goes byte by byte).
    let whole = offset == r.offset
        && hi - lo == u64::from(r.width)
        && cx.model.endianness == Endianness::Little
        && matches!(data.len(), 1 | 2 | 4 | 8);
    let mut lanes = 0u64;
    let mut written = 0u64;
    if whole {
        lanes = r.width_mask;
        if dir == Dir::Write {
            written = le_value(data);
        }
    } else {
        for a in lo..hi {
            let shift = lane_shift(cx.model, r, a);
            lanes |= 0xff << shift;
            if dir == Dir::Write
                && let Some(b) = data.get((a - offset) as usize)
            {
                written |= u64::from(*b) << shift;
            }
        }
    }
    let i = idx as usize;
    match dir {
        Dir::Read => {
            let value = read_register(cx, state, i, r, lanes);
            if whole {
                le_store(data, value);
            } else {
                for a in lo..hi {
                    let shift = lane_shift(cx.model, r, a);
                    if let Some(b) = data.get_mut((a - offset) as usize) {
                        *b = (value >> shift) as u8;
                    }
                }
            }
            judge_read(cx, state, i, r, value);
        }
        Dir::Write => write_and_judge(cx, state, i, r, lanes, written),
    }
}

/// Whether the register's trace policy records a read that returned `value`.
#[inline]
fn judge_read(cx: &mut Ctx<'_, '_>, state: &mut State, i: usize, r: &Register, value: u64) {
    let noted = !cx.notes.as_slice().is_empty();
    let last = state.last_read.get_mut(i);
    cx.out.trace |= match r.trace {
        TracePolicy::Full => true,
        TracePolicy::Changes => noted || last.as_ref().is_none_or(|l| **l != value),
        TracePolicy::Silent => noted,
    };
    if let Some(l) = last {
        *l = value;
    }
}

/// Writes register `i` and says whether its trace policy records the write.
#[inline]
fn write_and_judge<'m>(cx: &mut Ctx<'m, '_>, state: &mut State, i: usize, r: &'m Register, lanes: u64, written: u64) {
    let before = state.values.get(i).copied();
    write_register(cx, state, i, r, lanes, written);
    let changed = state.values.get(i).copied() != before;
    cx.changed |= changed;
    let noted = !cx.notes.as_slice().is_empty();
    cx.out.trace |= match r.trace {
        TracePolicy::Full => true,
        TracePolicy::Changes => changed || noted,
        TracePolicy::Silent => noted,
    };
}

/// The little-endian value of an access's 1, 2, 4 or 8 bytes (0 for another width).
#[inline]
fn le_value(data: &[u8]) -> u64 {
    match *data {
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_le_bytes([a, b])),
        [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    }
}

/// Stores `value` little-endian into an access's 1, 2, 4 or 8 bytes.
#[inline]
fn le_store(data: &mut [u8], value: u64) {
    match data {
        [a] => *a = value as u8,
        [a, b] => [*a, *b] = (value as u16).to_le_bytes(),
        [a, b, c, d] => [*a, *b, *c, *d] = (value as u32).to_le_bytes(),
        [a, b, c, d, e, f, g, h] => [*a, *b, *c, *d, *e, *f, *g, *h] = value.to_le_bytes(),
        _ => {}
    }
}

#[inline]
fn read_register<'m>(cx: &mut Ctx<'m, '_>, state: &mut State, i: usize, r: &'m Register, lanes: u64) -> u64 {
    let model = cx.model;
    let mut value = if r.plain {
        state.values.get(i).copied().unwrap_or(0) & r.read_mask
    } else {
        internal(model, state, i, 0, r.read_mask) & r.read_mask
    } | r.reserved_read;
    if r.plain {
        return value;
    }
    if let Some(f) = r.pop {
        value = fifo_pop(cx, state, f, 0) & r.width_mask;
    }
    for f in &r.fields {
        if f.mask & lanes == 0 || f.on_read == OnRead::None {
            continue;
        }
        let Some(v) = state.values.get_mut(i) else { continue };
        let old = *v & f.mask;
        let new = match f.on_read {
            OnRead::Clear => 0,
            OnRead::Set => f.mask,
            OnRead::None => old,
        };
        *v = (*v & !f.mask) | new;
        note_change(cx.notes, &f.path, old, new);
    }
    for &(mask, e) in &r.read_effects {
        if mask & lanes != 0 {
            fire(cx, state, e, value, 0);
        }
    }
    value
}

fn write_register<'m>(cx: &mut Ctx<'m, '_>, state: &mut State, i: usize, r: &'m Register, lanes: u64, written: u64) {
    let (Some(old), Some(once)) = (state.values.get(i).copied(), state.written_once.get(i).copied()) else {
        return;
    };
    if r.plain {
        let m = r.write_masks.writable & lanes;
        if let Some(v) = state.values.get_mut(i) {
            *v = (old & !m) | (written & m);
        }
        note_reserved(cx, r, lanes, written);
        return;
    }
    let masks = &r.write_masks;
    let new = masks.apply(old, written, lanes, once);
    if masks.closed(lanes, once) & (written ^ old) != 0 || masks.noted & (old ^ new) != 0 {
        note_fields(cx.notes, r, lanes, once, old, new, written);
    }
    let mut once_now = once;
    if masks.once & lanes != 0 {
        // A write-once field is used up by a write to any of its bytes.
        for f in r.fields.iter().filter(|f| f.access.once && f.mask & lanes != 0) {
            once_now |= f.mask;
        }
    }
    note_reserved(cx, r, lanes, written);
    if let Some(v) = state.values.get_mut(i) {
        *v = new;
    }
    if let Some(o) = state.written_once.get_mut(i) {
        *o = once_now;
    }
    if let Some(f) = r.push {
        fifo_push(cx, state, f, written & lanes, 0);
    }
    for &(mask, e) in &r.write_effects {
        let fires = mask == ANY_BITS || written & mask & lanes != 0;
        if fires {
            fire(cx, state, e, written, 0);
        }
    }
    if r.write_masks.singlepulse & lanes == 0 {
        return;
    }
    for f in r.fields.iter().filter(|f| f.singlepulse && f.mask & lanes != 0) {
        if let Some(v) = state.values.get_mut(i) {
            let old = *v & f.mask;
            *v &= !f.mask;
            note_change(cx.notes, &f.path, old, 0);
        }
    }
}

/// The notes of a write that changed `old` into `new`: fields it could not change but wrote
/// differently (`Ignored`), and the changes of fields whose behaviour is not a plain write.
fn note_fields<'m>(notes: &mut Notes<'m>, r: &'m Register, lanes: u64, once: u64, old: u64, new: u64, written: u64) {
    let closed = r.write_masks.closed(lanes, once);
    for f in r.fields.iter().filter(|f| f.value.is_none()) {
        let m = f.mask & lanes;
        if m == 0 {
            continue;
        }
        if closed & m != 0 {
            if (written ^ old) & m != 0 {
                notes.push(Note::Ignored { field: &f.path });
            }
        } else if f.on_write != OnWrite::Write {
            note_change(notes, &f.path, old & m, new & m);
        }
    }
}

fn note_reserved(cx: &mut Ctx<'_, '_>, r: &Register, lanes: u64, written: u64) {
    let reserved = r.width_mask & !r.field_mask & lanes;
    let bits = (written ^ r.reserved_read) & reserved;
    if bits != 0 {
        cx.notes.push(Note::Reserved { bits });
    }
}

fn note_change<'m>(notes: &mut Notes<'m>, path: &'m str, old: u64, new: u64) {
    let cleared = old & !new;
    let set = new & !old;
    if cleared != 0 {
        notes.push(Note::Cleared {
            field: path,
            bits: cleared,
        });
    }
    if set != 0 {
        notes.push(Note::Set { field: path, bits: set });
    }
}

fn memory_access(cx: &mut Ctx<'_, '_>, state: &mut State, dir: Dir, offset: u64, data: &mut [u8]) -> bool {
    let end = offset.saturating_add(data.len() as u64);
    let Some((k, m)) = cx
        .model
        .memories
        .iter()
        .enumerate()
        .find(|(_, m)| offset >= m.offset && end <= m.offset + m.size)
    else {
        return false;
    };
    cx.out.trace = true;
    let start = (offset - m.offset) as usize;
    let Some(bytes) = state.memories.get_mut(k) else {
        return false;
    };
    let Some(window) = bytes.get_mut(start..start + data.len()) else {
        // A memslot window: only a write to a read-only one reaches here.
        if dir == Dir::Read {
            data.fill(0xff);
        }
        cx.notes.push(Note::Ignored { field: &m.name });
        return true;
    };
    match dir {
        Dir::Read => data.copy_from_slice(window),
        Dir::Write if m.readonly => cx.notes.push(Note::Ignored { field: &m.name }),
        Dir::Write => window.copy_from_slice(data),
    }
    true
}

/// Counts one access for effects waiting on accesses, and runs those that are due.
fn count_access(cx: &mut Ctx<'_, '_>, state: &mut State) {
    let mut due = false;
    for p in &mut state.pending {
        if std::mem::take(&mut p.fresh) {
            continue;
        }
        if let Due::Accesses(n) = &mut p.due {
            *n = n.saturating_sub(1);
            due |= *n == 0;
        }
    }
    if !due {
        return;
    }
    // A waiting effect starts only with half the work left, so that it is not cut short
    // unless it needs that much alone; the rest wait for the next access.
    while cx.work >= MAX_WORK / 2
        && let Some(pos) = state.pending.iter().position(|p| matches!(p.due, Due::Accesses(0)))
    {
        let p = state.pending.swap_remove(pos);
        run_actions(cx, state, p.effect, p.value, 0);
    }
}

/// Fires effect `e` (its condition is checked now): runs it, or schedules it.
fn fire(cx: &mut Ctx<'_, '_>, state: &mut State, e: u32, value: u64, depth: u32) {
    let model = cx.model;
    let Some(effect) = model.effects.get(e as usize) else {
        return;
    };
    if !cx.spend(1) {
        out_of_work(model, state);
        return;
    }
    if let Some(c) = &effect.condition
        && eval(model, state, c, value) == 0
    {
        return;
    }
    let due = match effect.delay {
        Delay::None => {
            run_actions(cx, state, e, value, depth);
            return;
        }
        Delay::Ns(ns) => Due::At((cx.now)().saturating_add(ns)),
        Delay::Accesses(n) => Due::Accesses(n),
    };
    if state.pending.len() >= MAX_PENDING {
        state.dropped_effects += 1;
        if state.dropped_effects.is_power_of_two() {
            log::warn!(
                "device `{}`: {} effects dropped, more than {MAX_PENDING} were waiting",
                model.name,
                state.dropped_effects
            );
        }
        return;
    }
    state.pending.push(Pending {
        due,
        fresh: true,
        effect: e,
        value,
    });
    let due_ns = match due {
        Due::At(t) => {
            cx.out.scheduled = Some(cx.out.scheduled.map_or(t, |s| s.min(t)));
            Some(t)
        }
        Due::Accesses(_) => None,
    };
    cx.notes.push(Note::Scheduled {
        effect: &effect.name,
        due_ns,
    });
}

/// Counts (and logs, rate-limited) an effect dropped or cut short for want of work.
fn out_of_work(model: &Model, state: &mut State) {
    state.dropped_effects += 1;
    if state.dropped_effects.is_power_of_two() {
        log::warn!(
            "device `{}`: {} effects dropped or cut short: one access or event did more than {MAX_WORK} actions",
            model.name,
            state.dropped_effects
        );
    }
}

fn run_actions<'m>(cx: &mut Ctx<'m, '_>, state: &mut State, e: u32, value: u64, depth: u32) {
    let model = cx.model;
    let Some(effect) = model.effects.get(e as usize) else {
        return;
    };
    if depth > MAX_CHAIN {
        return;
    }
    cx.notes.push(Note::Fired { effect: &effect.name });
    for action in &effect.actions {
        if !cx.spend(1) {
            out_of_work(model, state);
            return;
        }
        match action {
            Action::Set(t) => store(cx, state, t, u64::MAX, false),
            Action::Clear(t) => store(cx, state, t, 0, true),
            Action::Toggle(t) => {
                let cur = field_value(model, state, t);
                store(cx, state, t, !cur, true);
            }
            Action::Assign(t, x) => {
                let v = eval(model, state, x, value);
                store(cx, state, t, v, false);
            }
            Action::Add(t, x) => {
                let n = eval(model, state, x, value);
                count(cx, state, t, n, true);
            }
            Action::Sub(t, x) => {
                let n = eval(model, state, x, value);
                count(cx, state, t, n, false);
            }
            Action::Push(f, x) => {
                let v = x.as_ref().map_or(value, |x| eval(model, state, x, value));
                fifo_push(cx, state, *f, v, depth + 1);
            }
            Action::Pop(f, into) => {
                let v = fifo_pop(cx, state, *f, depth + 1);
                if let Some(t) = into {
                    store(cx, state, t, v, true);
                }
            }
            Action::Flush(f) => {
                if let (Some(q), Some(desc)) = (state.fifos.get_mut(*f as usize), model.fifos.get(*f as usize)) {
                    q.clear();
                    cx.notes.push(Note::Fifo {
                        fifo: &desc.name,
                        level: 0,
                    });
                }
            }
            Action::Pulse(i) => {
                cx.out.pulses |= 1 << i;
                if let Some(irq) = model.interrupts.get(*i as usize) {
                    cx.notes.push(Note::Irq {
                        name: &irq.name,
                        asserted: true,
                    });
                }
            }
            Action::Reset => {
                if cx.spend(reset_work(model)) {
                    reset_inner(cx, state, depth + 1);
                }
            }
        }
    }
}

fn field_value(model: &Model, state: &State, t: &FieldRef) -> u64 {
    (internal(model, state, t.reg as usize, 0, t.mask) & t.mask) >> t.shift
}

/// Hardware-side store of `v` into a field. Sticky fields only gain bits, unless `force`
/// (an explicit clear).
fn store<'m>(cx: &mut Ctx<'m, '_>, state: &mut State, t: &FieldRef, v: u64, force: bool) {
    store_noted(cx.model, cx.notes, state, t, v, force);
}

/// [`store`], for callers without a context.
fn store_noted<'m>(model: &'m Model, notes: &mut Notes<'m>, state: &mut State, t: &FieldRef, v: u64, force: bool) {
    let Some(r) = model.registers.get(t.reg as usize) else {
        return;
    };
    let Some(cur) = state.values.get_mut(t.reg as usize) else {
        return;
    };
    let old = *cur & t.mask;
    let mut bits = v.checked_shl(t.shift).unwrap_or(0) & t.mask;
    let sticky = t.field.and_then(|f| r.fields.get(f as usize)).is_some_and(|f| f.sticky);
    if sticky && !force {
        bits |= old;
    }
    *cur = (*cur & !t.mask) | bits;
    let path = match t.field.and_then(|f| r.fields.get(f as usize)) {
        Some(f) => f.path.as_str(),
        None => r.name.as_str(),
    };
    note_change(notes, path, old, bits);
}

/// `+=` / `-=` with the field's counter behaviour.
fn count(cx: &mut Ctx<'_, '_>, state: &mut State, t: &FieldRef, n: u64, up: bool) {
    let model = cx.model;
    let max = t.mask >> t.shift;
    let cur = field_value(model, state, t);
    let counter = model
        .registers
        .get(t.reg as usize)
        .and_then(|r| t.field.and_then(|f| r.fields.get(f as usize)))
        .and_then(|f| f.counter.clone());
    let saturate = counter.as_ref().is_some_and(|c| c.saturate);
    let (raw, wrapped) = if up {
        let s = cur.wrapping_add(n);
        (s & max, s > max || s < cur)
    } else {
        (cur.wrapping_sub(n) & max, n > cur)
    };
    let result = match (wrapped, saturate, up) {
        (true, true, true) => max,
        (true, true, false) => 0,
        _ => raw,
    };
    store(cx, state, t, result, true);
    if wrapped && let Some(c) = counter {
        let flag = if up { c.overflow } else { c.underflow };
        if let Some(flag) = flag {
            store(cx, state, &flag, u64::MAX, false);
        }
    }
}

fn fifo_push(cx: &mut Ctx<'_, '_>, state: &mut State, f: u32, v: u64, depth: u32) {
    let model = cx.model;
    let Some(desc) = model.fifos.get(f as usize) else {
        return;
    };
    let element = v & desc.element_mask();
    if let Some(Some(drain)) = state.drains.get_mut(f as usize) {
        let bytes = element.to_le_bytes();
        let n = desc.width.div_ceil(8) as usize;
        if let Err(e) = drain
            .write_all(bytes.get(..n).unwrap_or_default())
            .and_then(|()| drain.flush())
            && !state.drain_failed
        {
            state.drain_failed = true;
            log::warn!(
                "device `{}`: FIFO `{}`: the host side cannot take data: {e}",
                model.name,
                desc.name
            );
        }
        cx.notes.push(Note::Fifo {
            fifo: &desc.name,
            level: 0,
        });
    } else {
        let Some(q) = state.fifos.get_mut(f as usize) else {
            return;
        };
        if q.len() >= desc.depth as usize {
            cx.notes.push(Note::Overflow { fifo: &desc.name });
            if let Some(flag) = desc.overflow {
                store(cx, state, &flag, u64::MAX, false);
            }
            return;
        }
        q.push_back(element);
        let level = q.len() as u32;
        cx.notes.push(Note::Fifo {
            fifo: &desc.name,
            level,
        });
    }
    if depth <= MAX_CHAIN {
        for &e in &desc.push_effects {
            fire(cx, state, e, element, depth + 1);
        }
    }
}

fn fifo_pop(cx: &mut Ctx<'_, '_>, state: &mut State, f: u32, depth: u32) -> u64 {
    let model = cx.model;
    let Some(desc) = model.fifos.get(f as usize) else {
        return 0;
    };
    let Some(q) = state.fifos.get_mut(f as usize) else {
        return 0;
    };
    let Some(v) = q.pop_front() else {
        cx.notes.push(Note::Underflow { fifo: &desc.name });
        if let Some(flag) = desc.underflow {
            store(cx, state, &flag, u64::MAX, false);
        }
        return desc.empty_read;
    };
    let level = q.len() as u32;
    cx.notes.push(Note::Fifo {
        fifo: &desc.name,
        level,
    });
    if depth <= MAX_CHAIN {
        for &e in &desc.pop_effects {
            fire(cx, state, e, v, depth + 1);
        }
    }
    top_up(cx, state, f as usize, depth);
    v
}

/// Moves what the host sent into FIFO `f` while it has room, one element per
/// `ceil(width / 8)` little-endian bytes.
fn top_up(cx: &mut Ctx<'_, '_>, state: &mut State, f: usize, depth: u32) {
    let Some(desc) = cx.model.fifos.get(f) else {
        return;
    };
    let bytes = desc.width.div_ceil(8) as usize;
    loop {
        let (Some(q), Some(pending)) = (state.fifos.get(f), state.host_pending.get_mut(f)) else {
            return;
        };
        if q.len() >= desc.depth as usize || pending.len() < bytes {
            return;
        }
        let mut element = 0u64;
        for i in 0..bytes {
            element |= u64::from(pending.pop_front().unwrap_or(0)) << (8 * i);
        }
        // At the pop's depth: a push effect that pops again must not restart the chain.
        fifo_push(cx, state, f as u32, element, depth);
    }
}

#[inline]
fn evaluate_interrupts<'m>(model: &'m Model, state: &mut State, notes: &mut Notes<'m>, out: &mut Outcome) {
    if !model.interrupts.is_empty() {
        evaluate_each_interrupt(model, state, notes, out);
    }
}

fn evaluate_each_interrupt<'m>(model: &'m Model, state: &mut State, notes: &mut Notes<'m>, out: &mut Outcome) {
    for (i, irq) in model.interrupts.iter().enumerate() {
        let Some(when) = &irq.when else { continue };
        let bit = 1u32 << i;
        let level = eval(model, state, when, 0) != 0;
        if level != (state.irq & bit != 0) {
            state.irq ^= bit;
            out.irq_changed |= bit;
            if level || irq.trigger == Trigger::Level {
                notes.push(Note::Irq {
                    name: &irq.name,
                    asserted: level,
                });
            }
        }
    }
}

/// Runs the timed effects due at `now`, in deadline order. Returns what the caller must do;
/// `Outcome::scheduled` is then the next deadline still waiting, if any.
pub fn run_due<'m>(model: &'m Model, state: &mut State, now: u64, notes: &mut Notes<'m>) -> Outcome {
    let clock = move || now;
    let mut cx = Ctx::new(model, state, notes, &clock);
    loop {
        if cx.work < MAX_WORK / 2 {
            // The rest stays due (see count_access): `scheduled` below says so, and the
            // caller comes back.
            break;
        }
        let next = state
            .pending
            .iter()
            .enumerate()
            .filter_map(|(k, p)| match p.due {
                Due::At(t) if t <= now => Some((t, k)),
                _ => None,
            })
            .min();
        let Some((_, k)) = next else { break };
        let p = state.pending.swap_remove(k);
        run_actions(&mut cx, state, p.effect, p.value, 0);
    }
    evaluate_interrupts(model, state, cx.notes, &mut cx.out);
    cx.out.scheduled = state.next_deadline();
    settle(state);
    cx.out
}

/// Outside a guest access, waiting-for-accesses effects count from the next access.
fn settle(state: &mut State) {
    for p in &mut state.pending {
        p.fresh = false;
    }
}

/// The host sends `bytes` to FIFO `fifo` (a UART's receiver): they go in as elements while
/// it has room, the rest waits on the host side for the guest to pop. Returns how many
/// bytes were accepted (queued or in the FIFO) and what the caller must do.
pub fn feed<'m>(
    model: &'m Model,
    state: &mut State,
    fifo: usize,
    bytes: &[u8],
    now: &dyn Fn() -> u64,
    notes: &mut Notes<'m>,
) -> (usize, Outcome) {
    let mut cx = Ctx::new(model, state, notes, now);
    let Some(pending) = state.host_pending.get_mut(fifo) else {
        return (0, cx.out);
    };
    let room = MAX_HOST_PENDING.saturating_sub(pending.len());
    let taken = bytes.len().min(room);
    pending.extend(bytes.iter().take(taken));
    if taken < bytes.len() {
        let first = state.host_dropped == 0;
        state.host_dropped += (bytes.len() - taken) as u64;
        if first && let Some(desc) = model.fifos.get(fifo) {
            log::warn!(
                "device `{}`: FIFO `{}`: the guest is not reading; host data beyond {MAX_HOST_PENDING} bytes is dropped",
                model.name,
                desc.name
            );
        }
    }
    top_up(&mut cx, state, fifo, 0);
    evaluate_interrupts(model, state, cx.notes, &mut cx.out);
    settle(state);
    (taken, cx.out)
}

/// Resets the device: every register to its reset value, FIFOs emptied, memory refilled,
/// waiting effects dropped; then `reset` effects run.
pub fn reset<'m>(model: &'m Model, state: &mut State, now: &dyn Fn() -> u64, notes: &mut Notes<'m>) -> Outcome {
    let mut cx = Ctx::new(model, state, notes, now);
    reset_inner(&mut cx, state, 0);
    evaluate_interrupts(model, state, cx.notes, &mut cx.out);
    settle(state);
    cx.out
}

fn reset_inner(cx: &mut Ctx<'_, '_>, state: &mut State, depth: u32) {
    let model = cx.model;
    for (v, r) in state.values.iter_mut().zip(&model.registers) {
        *v = r.reset;
    }
    state.written_once.fill(0);
    for q in &mut state.fifos {
        q.clear();
    }
    for (bytes, m) in state.memories.iter_mut().zip(&model.memories) {
        bytes.fill(m.fill);
    }
    state.pending.clear();
    if depth <= MAX_CHAIN {
        for &e in &model.reset_effects {
            fire(cx, state, e, 0, depth + 1);
        }
    }
}

/// Decodes `value` (register position) into `out` for register `reg`; returns how many
/// fields were written.
pub fn decode<'m>(model: &'m Model, reg: u32, value: u64, out: &mut [FieldValue<'m>; MAX_FIELDS]) -> usize {
    let Some(r) = model.registers.get(reg as usize) else {
        return 0;
    };
    // A register without fields is decoded only when it names its values.
    if !r.declared_fields && r.fields.iter().all(|f| f.values.is_empty()) {
        return 0;
    }
    let mut n = 0;
    for (slot, f) in out.iter_mut().zip(&r.fields) {
        let v = (value & f.mask) >> f.shift;
        *slot = FieldValue {
            name: &f.name,
            value: v,
            enum_name: f.value_name(v),
        };
        n += 1;
    }
    n
}

/// The register-position value of an access's bytes, for decoding: the bytes of `data`
/// that fall in register `reg`, at their lanes.
pub fn register_value(model: &Model, reg: u32, offset: u64, data: &[u8]) -> u64 {
    let Some(r) = model.registers.get(reg as usize) else {
        return 0;
    };
    let end = offset.saturating_add(data.len() as u64);
    let mut v = 0u64;
    for a in offset.max(r.offset)..end.min(r.offset + u64::from(r.width)) {
        if let Some(b) = data.get((a - offset) as usize) {
            v |= u64::from(*b) << lane_shift(model, r, a);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;

    fn model(text: &str) -> Model {
        crate::compile_text(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_padding_of_a_shifted_registers_lane_is_no_hole() {
        // Byte registers A and B on 4-byte lanes (reg_shift 2): at 0 and 4; 8 is past them.
        let desc = crate::schema::Description::from_toml(
            "[[register]]\nname = \"A\"\noffset = 0\nwidth = 8\n[[register]]\nname = \"B\"\noffset = 1\nwidth = 8\n",
        )
        .unwrap();
        let shifted = crate::compile_shifted(&desc, 2).unwrap();
        let mut s = State::new(&shifted);
        let holes = |m: &Model, s: &mut State, offset: u64, width: usize| {
            let mut data = vec![0u8; width];
            let mut notes = Notes::default();
            access(m, s, Dir::Read, offset, &mut data, &|| 0, &mut notes);
            notes.as_slice().contains(&Note::Hole)
        };
        assert!(!holes(&shifted, &mut s, 0, 4), "A's lane, 32 bits wide");
        assert!(!holes(&shifted, &mut s, 4, 2), "part of B's lane");
        assert!(holes(&shifted, &mut s, 4, 8), "B's lane and 4 bytes past the registers");
        // Unshifted, the bytes after a byte register are a hole.
        let plain = crate::compile_shifted(&desc, 0).unwrap();
        let mut s = State::new(&plain);
        assert!(holes(&plain, &mut s, 1, 4));
    }

    fn access_at(m: &Model, s: &mut State, dir: Dir, offset: u64, value: u32) -> u32 {
        let mut data = value.to_le_bytes();
        let mut notes = Notes::default();
        access(m, s, dir, offset, &mut data, &|| 0, &mut notes);
        u32::from_le_bytes(data)
    }

    /// Registers the masked write and the quick read serve, with every note they can make:
    /// FIFO pops with underflow and overflow flags, read-only, reserved and every write
    /// behaviour's bits, each trace policy, level and edge interrupts on what they change.
    const QUICK: &str = r#"
[device]
name = "quick"
trace = "changes"

[[fifo]]
name = "rx"
depth = 4
width = 8
underflow = "STAT.UND"
overflow = "STAT.OVR"
empty_read = 0xee

[[fifo]]
name = "q"
depth = 2
width = 16

[[register]]
name = "DATA"
offset = 0
pop = "rx"

[[register]]
name = "Q"
offset = 4
width = 16
pop = "q"
push = "q"
trace = "silent"

[[register]]
name = "STAT"
offset = 8
reserved_read = 0xa500
[[register.field]]
name = "UND"
bits = 0
on_write = "w1c"
[[register.field]]
name = "OVR"
bits = 1
on_write = "w1c"
[[register.field]]
name = "RO"
bits = "7:4"
sw = "ro"
reset = 5
[[register.field]]
name = "S"
bits = 16
on_write = "w1s"
[[register.field]]
name = "T"
bits = 17
on_write = "w1t"
[[register.field]]
name = "Z"
bits = 18
on_write = "w0c"
[[register.field]]
name = "W"
bits = "31:24"

[[register]]
name = "IE"
offset = 0xc
width = 8
trace = "full"

[[register]]
name = "SIL"
offset = 0x10
trace = "silent"
[[register.field]]
name = "A"
bits = "3:0"
on_write = "w0s"
[[register.field]]
name = "B"
bits = "7:4"
sw = "ro"

[[interrupt]]
name = "err"
when = "(STAT & 3) != 0 && IE"

[[interrupt]]
name = "full"
trigger = "edge"
when = "q.full"
line = 1
"#;

    /// A device's way of serving an access (crate::device): the slot looked up once, a
    /// plain load or store when it is one, else the whole-register path, else the general
    /// one.
    fn device_access<'m>(
        m: &'m Model,
        s: &mut State,
        dir: Dir,
        offset: u64,
        data: &mut [u8],
        now: u64,
        notes: &mut Notes<'m>,
    ) -> Outcome {
        let Some(w) = whole_at(m, s, offset, data.len()) else {
            return access(m, s, dir, offset, data, &|| now, notes);
        };
        let plain = match dir {
            Dir::Read => plain_read(s, w, data),
            Dir::Write => plain_write(s, w, data),
        };
        if let Some(out) = plain {
            return out;
        }
        match dir {
            Dir::Read => whole_read(m, s, w, data, &|| now, notes),
            Dir::Write => whole_write(m, s, w, &*data, &|| now, notes),
        }
    }

    #[test]
    fn the_fast_paths_do_what_the_general_path_does() {
        // Every access of a random sequence is served twice, on two states of the same
        // model: as a device serves it (plain, whole-register, masked and quick paths) and
        // through the byte-by-byte walk alone. Data, outcome, notes and the whole state
        // must agree after every step; time passes, the host feeds FIFOs and the device
        // resets now and then, so effects wait, data waits and interrupts change.
        let mut models = vec![model(QUICK)];
        models.extend(crate::fuzzing::models());
        for text in [
            include_str!("../../../tests/machines/devices/bench-plain.toml"),
            include_str!("../../../tests/machines/devices/bench-w1c.toml"),
            include_str!("../../../tests/machines/devices/bench-fifo.toml"),
            include_str!("../../../tests/machines/devices/behaviours.toml"),
            include_str!("../../../tests/machines/devices/checks.toml"),
        ] {
            models.push(model(text));
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast_paths = 0;
        for m in models.iter().filter(|m| !m.registers.is_empty()) {
            let mut fast = State::new(m);
            let mut general = State::new(m);
            let mut now = 0u64;
            for step in 0..5_000 {
                let mut notes_fast = Notes::default();
                let mut notes_general = Notes::default();
                let r = next();
                let (out_fast, out_general, what) = match r % 64 {
                    0 => {
                        now += next() % 200_000;
                        (
                            run_due(m, &mut fast, now, &mut notes_fast),
                            run_due(m, &mut general, now, &mut notes_general),
                            "time".to_owned(),
                        )
                    }
                    1 if !m.fifos.is_empty() => {
                        let f = (next() % m.fifos.len() as u64) as usize;
                        let bytes = next().to_le_bytes();
                        let n = (next() % 9) as usize;
                        let (a, oa) = feed(m, &mut fast, f, &bytes[..n], &|| now, &mut notes_fast);
                        let (b, ob) = feed(m, &mut general, f, &bytes[..n], &|| now, &mut notes_general);
                        assert_eq!(a, b);
                        (oa, ob, format!("feed {f} {n}"))
                    }
                    2 if next() % 8 == 0 => (
                        reset(m, &mut fast, &|| now, &mut notes_fast),
                        reset(m, &mut general, &|| now, &mut notes_general),
                        "reset".to_owned(),
                    ),
                    _ => {
                        let k = (next() % m.registers.len() as u64) as usize;
                        let reg = &m.registers[k];
                        let (offset, width) = match next() % 8 {
                            0 => (reg.offset + next() % u64::from(reg.width), 1usize << (next() % 4)),
                            _ => (reg.offset, usize::from(reg.width)),
                        };
                        let dir = if next() % 2 == 0 { Dir::Read } else { Dir::Write };
                        // Mostly values that change little: zeros, ones, what is stored.
                        let value = match next() % 4 {
                            0 => 0,
                            1 => u64::MAX,
                            2 => fast.value(k).unwrap_or(0) ^ (1 << (next() % 8)),
                            _ => next(),
                        };
                        let mut a = value.to_le_bytes();
                        let mut b = a;
                        if whole_at(m, &fast, offset, width).is_some() {
                            fast_paths += 1;
                        }
                        let oa = device_access(m, &mut fast, dir, offset, &mut a[..width], now, &mut notes_fast);
                        let ob = general_access(
                            m,
                            &mut general,
                            dir,
                            offset,
                            &mut b[..width],
                            &|| now,
                            &mut notes_general,
                        );
                        assert_eq!(a, b, "{}: step {step}: data of {dir:?} {offset:#x}/{width}", m.name);
                        (oa, ob, format!("{dir:?} {offset:#x}/{width} {value:#x}"))
                    }
                };
                assert_eq!(out_fast, out_general, "{}: step {step}: {what}", m.name);
                assert_eq!(
                    format!("{:?}", notes_fast.as_slice()),
                    format!("{:?}", notes_general.as_slice()),
                    "{}: step {step}: {what}",
                    m.name
                );
                assert_eq!(fast.snapshot(), general.snapshot(), "{}: step {step}: {what}", m.name);
            }
        }
        assert!(fast_paths > 25_000, "{fast_paths} accesses took a fast path");
    }

    #[test]
    fn computed_fields_that_multiply_each_other_stay_bounded() {
        // A hostile input run through the fuzz targets: each read of R evaluated R ten times, to
        // the depth bound of 8: 10^8 evaluations per read (minutes). The budget cuts it to
        // MAX_COMPUTE.
        let m = model(&format!(
            "[[register]]\nname = \"R\"\noffset = 0\nvalue = \"{}\"\n[[register]]\nname = \"S\"\noffset = 4\nvalue = \"7\"\n[[interrupt]]\nname = \"i\"\nwhen = \"R\"\n",
            ["R + 1"; 10].join(" + ")
        ));
        let mut s = State::new(&m);
        let start = Instant::now();
        for _ in 0..100 {
            access_at(&m, &mut s, Dir::Read, 0, 0);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        // A plain computed field in the same device still reads right.
        assert_eq!(access_at(&m, &mut s, Dir::Read, 4, 0), 7);
    }

    #[test]
    fn effects_that_fan_out_are_bounded_per_access() {
        // A hostile input run through the fuzz targets: acyclic effects that each push the next
        // FIFO twelve times fire 12^8 effects within the chain bound, from one write.
        let k = 10;
        let mut text = String::from("[[register]]\nname = \"R\"\noffset = 0\npush = \"f0\"\n");
        for i in 0..=k {
            text += &format!("[[fifo]]\nname = \"f{i}\"\ndepth = 1\n");
        }
        for i in 0..k {
            let j = i + 1;
            let actions = vec![format!("\"flush f{j}\", \"push f{j}\""); 12].join(", ");
            text += &format!("[[effect]]\non = \"push f{i}\"\ndo = [{actions}]\n");
        }
        let m = model(&text);
        let mut s = State::new(&m);
        let start = Instant::now();
        access_at(&m, &mut s, Dir::Write, 0, 1);
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        assert!(s.dropped_effects() > 0);
    }

    #[test]
    fn host_data_topped_up_by_a_pop_keeps_the_chain_depth() {
        // A hostile input run through the fuzz targets: a push effect that pops its FIFO, with
        // host data waiting, moved the next element in at depth 0 each time: one level of
        // recursion per waiting byte (a stack overflow with a few thousand bytes).
        let m = model(
            "[[fifo]]\nname = \"q\"\ndepth = 1\n[[register]]\nname = \"R\"\noffset = 0\nvalue = \"q.level\"\n[[effect]]\non = \"push q\"\ndo = [\"pop q\"]\n",
        );
        let mut s = State::new(&m);
        let mut notes = Notes::default();
        let bytes = vec![0x55u8; 200_000];
        let (taken, _) = feed(&m, &mut s, 0, &bytes, &|| 0, &mut notes);
        assert_eq!(taken, bytes.len());
        assert!(s.fifo_level(0).is_some_and(|l| l <= 1));
        // The chain bound stopped it, not the work budget.
        assert_eq!(s.dropped_effects(), 0);
    }

    #[test]
    fn run_due_leaves_what_it_cannot_do_due() {
        // Timed effects that each fan out: one run_due does bounded work and reports the
        // rest as due now; calling again finishes them.
        let m = model(
            "[[register]]\nname = \"R\"\noffset = 0\nwidth = 64\n[[fifo]]\nname = \"q\"\ndepth = 1\n[[effect]]\non = \"write R\"\nafter = \"1ns\"\ndo = [\"push q\", \"push q\", \"push q\", \"push q\"]\n[[effect]]\non = \"push q\"\ndo = [\"flush q\", \"R += 1\", \"R += 1\", \"R += 1\", \"R += 1\", \"R += 1\", \"R += 1\", \"R += 1\", \"R += 1\"]\n",
        );
        let mut s = State::new(&m);
        for _ in 0..1000 {
            access_at(&m, &mut s, Dir::Write, 0, 0);
        }
        assert_eq!(s.pending(), 1000);
        let mut notes = Notes::default();
        let out = run_due(&m, &mut s, 10, &mut notes);
        assert!(s.pending() > 0, "more than one call's work");
        assert_eq!(out.scheduled, s.next_deadline());
        assert!(out.scheduled.is_some_and(|t| t <= 10), "reported as due now");
        let mut calls = 1;
        while s.next_deadline().is_some_and(|t| t <= 10) {
            notes.clear();
            run_due(&m, &mut s, 10, &mut notes);
            calls += 1;
            assert!(calls < 1000);
        }
        assert_eq!(s.pending(), 0);
        assert_eq!(s.value(0), Some(1000 * 4 * 8), "every effect ran, over {calls} calls");
    }
}
