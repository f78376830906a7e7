//! A described device on the bus: the compiled [`Model`] and its [`State`] behind one lock,
//! with its interrupt lines, its client slot in the machine's [`Scheduler`] and, when
//! tracing, a [`TraceSink`].
//!
//! Lock order: this device's state, then the scheduler's heap (`schedule`), then the trace
//! sink's output, then an eventfd write. Nothing called under the state lock calls back
//! into a device. Delayed effects run on the VMM thread: the scheduler calls
//! [`Deferred::run_due`], which takes the state lock like an access does.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use mmiolab_devices::{
    AccessRecord, ClientId, Deferred, Dir as TraceDir, EventRecord, FieldValue, IrqLine, Scheduler, Space, TraceSink,
    le_u64,
};
use vm_device::bus::{MmioAddress, MmioAddressOffset, PioAddress, PioAddressOffset};
use vm_device::{DeviceMmio, DevicePio};

use crate::compile::Model;
use crate::engine::{self, Dir, MAX_FIELDS, Notes, Outcome, State};

/// A device built from a description.
pub struct DescribedDevice {
    model: Arc<Model>,
    state: Mutex<State>,
    /// Interrupt lines by the description's line index (`None`: not wired in the machine).
    lines: Vec<Option<IrqLine>>,
    scheduler: Arc<Scheduler>,
    client: ClientId,
    /// Region names in the bus tree, MMIO then PIO, for the trace.
    names: [OnceLock<String>; 2],
    /// The trace, and whether it wants every record (then records are not asked about).
    sink: OnceLock<(Arc<dyn TraceSink>, bool)>,
    /// The register checker's judge of `[[order]]` rules (only with `--check`, only when the
    /// description has order rules): accesses then take [`DescribedDevice::judged`].
    judge: OnceLock<Arc<dyn OrderJudge>>,
}

/// Learns which order rules (`[[order]]`, docs/checker.md) an access broke: called on the
/// vCPU thread with the device's lock held, after the access and right before its record
/// goes to the sink (which then always gets one). Must not call into any device.
pub trait OrderJudge: Send + Sync {
    /// `device` is the region name as in records; bit `i` of `broken` stands for
    /// `model.orders[i]`.
    fn broken(&self, device: &str, broken: u64);
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl mmiolab_devices::Snapshot for DescribedDevice {
    type State = crate::engine::SavedEngine;
    const KIND: &'static str = "described";
    const VERSION: u32 = 1;

    fn save(&self) -> crate::engine::SavedEngine {
        lock(&self.state).save()
    }

    /// The engine's state, then each line's level taken silently (the restored interrupt
    /// controller holds what was delivered), then the earliest waiting deadline handed to
    /// the scheduler, whose clock has been resumed at the snapshot's time.
    fn restore(&self, saved: crate::engine::SavedEngine) -> Result<(), mmiolab_devices::StateError> {
        let mut state = lock(&self.state);
        state
            .restore(&self.model, saved)
            .map_err(|why| mmiolab_devices::StateError::malformed(Self::KIND, why))?;
        for (line_index, line) in self.lines.iter().enumerate() {
            if let Some(line) = line {
                line.restore_level(self.line_level(&state, line_index));
            }
        }
        if let Some(deadline) = state.next_deadline() {
            self.scheduler.schedule(self.client, deadline);
        }
        Ok(())
    }
}

impl DescribedDevice {
    /// A device for `model`, driving `lines` (by line index) and scheduling on `scheduler`.
    pub fn new(model: Arc<Model>, lines: Vec<Option<IrqLine>>, scheduler: Arc<Scheduler>) -> Arc<DescribedDevice> {
        Arc::new_cyclic(|me: &Weak<DescribedDevice>| {
            let weak: Weak<dyn Deferred> = me.clone();
            let client = scheduler.register(weak);
            let state = State::new(&model);
            DescribedDevice {
                model,
                state: Mutex::new(state),
                lines,
                scheduler,
                client,
                names: [OnceLock::new(), OnceLock::new()],
                sink: OnceLock::new(),
                judge: OnceLock::new(),
            }
        })
    }

    /// The compiled model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The compiled model, shared (for the VMM's register checker).
    pub fn shared_model(&self) -> Arc<Model> {
        self.model.clone()
    }

    /// Names the device's region in `space` (its name in the bus tree), for the trace.
    pub fn set_region_name(&self, space: Space, name: &str) {
        if let Some(slot) = self.names.get(space_index(space)) {
            let _ = slot.set(name.to_owned());
        }
    }

    /// Starts tracing into `sink` (once; later calls are ignored).
    pub fn attach_sink(&self, sink: Arc<dyn TraceSink>) {
        let everything = sink.wants_everything();
        let _ = self.sink.set((sink, everything));
    }

    /// Judges the description's order rules before each access, telling `judge` (once;
    /// later calls are ignored, and so is a description without order rules).
    pub fn attach_order_judge(&self, judge: Arc<dyn OrderJudge>) {
        if !self.model.orders.is_empty() {
            let _ = self.judge.set(judge);
        }
    }

    /// Runs the reset (and its `reset` effects) and drives the lines to their reset levels.
    pub fn reset(&self) {
        let mut state = lock(&self.state);
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let out = engine::reset(&self.model, &mut state, &clock, &mut notes);
        self.apply(&state, out);
    }

    /// Sends what is pushed onto FIFO `fifo` (an index) to `out` (the host side of a
    /// transmitter).
    pub fn drain_fifo(&self, fifo: usize, out: Box<dyn Write + Send>) {
        lock(&self.state).set_drain(fifo, out);
    }

    /// The index of FIFO `name`.
    pub fn fifo_index(&self, name: &str) -> Option<usize> {
        self.model.fifos.iter().position(|f| f.name == name)
    }

    /// The host sends bytes to FIFO `fifo` (the host side of a receiver): they enter as the
    /// FIFO has room, the rest waits for the guest to pop. Returns how many were accepted.
    pub fn feed_fifo(&self, fifo: usize, bytes: &[u8]) -> usize {
        let mut state = lock(&self.state);
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let (taken, out) = engine::feed(&self.model, &mut state, fifo, bytes, &clock, &mut notes);
        self.apply(&state, out);
        self.event(&notes);
        taken
    }

    /// The level interrupt line `line_index` has in `state`: any interrupt on it asserted.
    fn line_level(&self, state: &State, line_index: usize) -> bool {
        self.model
            .interrupts
            .iter()
            .enumerate()
            .any(|(i, irq)| irq.line as usize == line_index && state.irq_levels() & (1 << i) != 0)
    }

    /// Drives the interrupt lines and arms the scheduler after an access or an event.
    #[inline]
    fn apply(&self, state: &State, out: Outcome) {
        if out.irq_changed != 0 || out.pulses != 0 || out.scheduled.is_some() {
            self.apply_changes(state, out);
        }
    }

    fn apply_changes(&self, state: &State, out: Outcome) {
        if out.irq_changed != 0 {
            for (line_index, line) in self.lines.iter().enumerate() {
                let Some(line) = line else { continue };
                line.set_level(self.line_level(state, line_index));
            }
        }
        if out.pulses != 0 {
            for (i, irq) in self.model.interrupts.iter().enumerate() {
                if out.pulses & (1 << i) != 0
                    && let Some(Some(line)) = self.lines.get(irq.line as usize)
                {
                    line.raise();
                }
            }
        }
        if let Some(deadline) = out.scheduled {
            self.scheduler.schedule(self.client, deadline);
        }
    }

    /// A guest write: the slot looked up once ([`engine::whole_at`]), then a plain store
    /// ([`engine::plain_write`]) when it is one, else [`engine::whole_write`]; any other
    /// access through [`engine::access`].
    #[inline]
    fn write(&self, space: Space, base: u64, offset: u64, data: &[u8]) {
        if let Some(judge) = self.judge.get() {
            let mut buf = [0u8; 8];
            let n = data.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), data.get(..n)) {
                dst.copy_from_slice(src);
            }
            return self.judged(
                judge.as_ref(),
                space,
                base,
                offset,
                Dir::Write,
                buf.get_mut(..n).unwrap_or_default(),
            );
        }
        let mut state = lock(&self.state);
        let Some(w) = engine::whole_at(&self.model, &state, offset, data.len()) else {
            self.general_write(&mut state, space, base, offset, data);
            return;
        };
        if let Some(out) = engine::plain_write(&mut state, w, data) {
            if out.trace
                && let Some((sink, _)) = self.sink.get()
            {
                self.record(
                    sink.as_ref(),
                    space,
                    base,
                    offset,
                    Dir::Write,
                    data,
                    out,
                    &Notes::default(),
                );
            }
            return;
        }
        self.whole_write(&mut state, w, space, base, offset, data);
    }

    /// A guest read: as [`DescribedDevice::write`], with [`engine::plain_read`] and
    /// [`engine::whole_read`].
    #[inline]
    fn read(&self, space: Space, base: u64, offset: u64, data: &mut [u8]) {
        if let Some(judge) = self.judge.get() {
            return self.judged(judge.as_ref(), space, base, offset, Dir::Read, data);
        }
        let mut state = lock(&self.state);
        let Some(w) = engine::whole_at(&self.model, &state, offset, data.len()) else {
            self.general(&mut state, space, base, offset, Dir::Read, data);
            return;
        };
        if let Some(out) = engine::plain_read(&mut state, w, data) {
            if out.trace
                && let Some((sink, _)) = self.sink.get()
            {
                self.record(
                    sink.as_ref(),
                    space,
                    base,
                    offset,
                    Dir::Read,
                    data,
                    out,
                    &Notes::default(),
                );
            }
            return;
        }
        self.whole_read(&mut state, w, space, base, offset, data);
    }

    /// A whole-register write that is not a plain store, kept out of `write` so that its
    /// plain stores stay lean.
    #[inline(never)]
    fn whole_write(&self, state: &mut State, w: engine::Whole, space: Space, base: u64, offset: u64, data: &[u8]) {
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let out = engine::whole_write(&self.model, state, w, data, &clock, &mut notes);
        self.finish(state, space, base, offset, Dir::Write, data, out, &notes);
    }

    /// A whole-register read that is not a plain load.
    #[inline(never)]
    fn whole_read(&self, state: &mut State, w: engine::Whole, space: Space, base: u64, offset: u64, data: &mut [u8]) {
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let out = engine::whole_read(&self.model, state, w, data, &clock, &mut notes);
        self.finish(state, space, base, offset, Dir::Read, data, out, &notes);
    }

    /// Any other write: the engine takes the bytes as a mutable slice.
    #[inline(never)]
    fn general_write(&self, state: &mut State, space: Space, base: u64, offset: u64, data: &[u8]) {
        let mut buf = [0u8; 8];
        let n = data.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), data.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.general(
            state,
            space,
            base,
            offset,
            Dir::Write,
            buf.get_mut(..n).unwrap_or_default(),
        );
    }

    /// Any other access ([`engine::access`]): partial, banked, in a memory window, a hole.
    #[inline(never)]
    fn general(&self, state: &mut State, space: Space, base: u64, offset: u64, dir: Dir, data: &mut [u8]) {
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let out = engine::access(&self.model, state, dir, offset, data, &clock, &mut notes);
        self.finish(state, space, base, offset, dir, data, out, &notes);
    }

    /// After an access that was not a plain one: the outcome applied, the record traced.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn finish(
        &self,
        state: &State,
        space: Space,
        base: u64,
        offset: u64,
        dir: Dir,
        data: &[u8],
        out: Outcome,
        notes: &Notes<'_>,
    ) {
        self.apply(state, out);
        if out.trace
            && let Some((sink, _)) = self.sink.get()
        {
            self.record(sink.as_ref(), space, base, offset, dir, data, out, notes);
        }
    }

    /// An access with the order rules judged first, on the state just before it (the
    /// register checker is on and the description has order rules). Its record is always
    /// sent when it broke one, whatever the register's trace policy.
    #[cold]
    #[inline(never)]
    fn judged(&self, judge: &dyn OrderJudge, space: Space, base: u64, offset: u64, dir: Dir, data: &mut [u8]) {
        let mut state = lock(&self.state);
        let broken = self.broken_orders(&state, offset, dir, data);
        let mut notes = Notes::default();
        let clock = || self.scheduler.now_ns();
        let out = engine::access(&self.model, &mut state, dir, offset, data, &clock, &mut notes);
        self.apply(&state, out);
        if broken != 0 {
            judge.broken(self.region_name(space), broken);
        }
        if (out.trace || broken != 0)
            && let Some((sink, _)) = self.sink.get()
        {
            self.record(sink.as_ref(), space, base, offset, dir, data, out, &notes);
        }
    }

    /// The order rules an access of `data` at `offset` would break now (bit per rule).
    fn broken_orders(&self, state: &State, offset: u64, dir: Dir, data: &[u8]) -> u64 {
        let mut broken = 0u64;
        let end = offset.saturating_add(data.len() as u64);
        for (i, o) in self.model.orders.iter().enumerate() {
            if o.write != (dir == Dir::Write) {
                continue;
            }
            let Some(r) = self.model.registers.get(o.reg as usize) else {
                continue;
            };
            let (lo, hi) = (offset.max(r.offset), end.min(r.offset + u64::from(r.width)));
            if lo >= hi {
                continue;
            }
            // Another banked view answers at this offset while this one's condition fails.
            if r.when
                .as_ref()
                .is_some_and(|w| engine::evaluate(&self.model, state, w, 0) == 0)
            {
                continue;
            }
            let mut lanes = 0u64;
            for b in (lo - r.offset)..(hi - r.offset) {
                let pos = match self.model.endianness {
                    crate::schema::Endianness::Little => b,
                    crate::schema::Endianness::Big => u64::from(r.width) - 1 - b,
                };
                lanes |= 0xffu64.checked_shl(8 * pos as u32).unwrap_or(0);
            }
            if lanes & o.mask == 0 {
                continue;
            }
            let value = match dir {
                Dir::Write => engine::register_value(&self.model, o.reg, offset, data),
                Dir::Read => 0,
            };
            if engine::evaluate(&self.model, state, &o.require, value) == 0 {
                broken |= 1u64.checked_shl(i as u32).unwrap_or(0);
            }
        }
        broken
    }

    fn region_name(&self, space: Space) -> &str {
        self.names
            .get(space_index(space))
            .and_then(OnceLock::get)
            .map_or(self.model.name.as_str(), String::as_str)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        sink: &dyn TraceSink,
        space: Space,
        base: u64,
        offset: u64,
        dir: Dir,
        data: &[u8],
        out: Outcome,
        notes: &Notes<'_>,
    ) {
        let device = self
            .names
            .get(space_index(space))
            .and_then(OnceLock::get)
            .map_or(self.model.name.as_str(), String::as_str);
        let register = out
            .register
            .and_then(|r| self.model.registers.get(r as usize))
            .map(|r| r.name.as_str());
        let everything = self.sink.get().is_some_and(|(_, everything)| *everything);
        if !everything && !sink.wants(device, register) {
            return;
        }
        let value = le_u64(data);
        let send = |fields: &[FieldValue<'_>]| {
            sink.access(&AccessRecord {
                space,
                dir: match dir {
                    Dir::Read => TraceDir::Read,
                    Dir::Write => TraceDir::Write,
                },
                addr: base.wrapping_add(offset),
                offset,
                width: data.len() as u8,
                value,
                device,
                register,
                fields,
                notes: notes.as_slice(),
            });
        };
        // Only a register with fields (or value names) is decoded: the array of decoded
        // fields costs its initialisation on every record.
        let decoded = out
            .register
            .and_then(|r| self.model.registers.get(r as usize).map(|reg| (r, reg)))
            .filter(|(_, reg)| reg.declared_fields || reg.fields.iter().any(|f| !f.values.is_empty()));
        match decoded {
            Some((r, _)) => {
                let mut fields = [FieldValue {
                    name: "",
                    value: 0,
                    enum_name: None,
                }; MAX_FIELDS];
                let in_register = engine::register_value(&self.model, r, offset, data);
                let n = engine::decode(&self.model, r, in_register, &mut fields);
                send(fields.get(..n).unwrap_or_default());
            }
            None => send(&[]),
        }
    }

    fn event(&self, notes: &Notes<'_>) {
        if notes.as_slice().is_empty() {
            return;
        }
        if let Some((sink, _)) = self.sink.get() {
            let device = self
                .names
                .iter()
                .find_map(OnceLock::get)
                .map_or(self.model.name.as_str(), String::as_str);
            if sink.wants(device, None) {
                sink.event(&EventRecord {
                    device,
                    notes: notes.as_slice(),
                });
            }
        }
    }
}

fn space_index(space: Space) -> usize {
    match space {
        Space::Mmio => 0,
        Space::Pio => 1,
    }
}

impl Deferred for DescribedDevice {
    fn run_due(&self, now_ns: u64) {
        let mut state = lock(&self.state);
        let mut notes = Notes::default();
        let out = engine::run_due(&self.model, &mut state, now_ns, &mut notes);
        // run_due reports the next deadline still waiting; the scheduler already dropped
        // the one that woke us, so ask again for the next.
        self.apply(&state, out);
        self.event(&notes);
    }
}

impl DeviceMmio for DescribedDevice {
    fn mmio_read(&self, base: MmioAddress, offset: MmioAddressOffset, data: &mut [u8]) {
        self.read(Space::Mmio, base.0, offset, data);
    }

    fn mmio_write(&self, base: MmioAddress, offset: MmioAddressOffset, data: &[u8]) {
        self.write(Space::Mmio, base.0, offset, data);
    }
}

impl DevicePio for DescribedDevice {
    fn pio_read(&self, base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        self.read(Space::Pio, u64::from(base.0), u64::from(offset), data);
    }

    fn pio_write(&self, base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        self.write(Space::Pio, u64::from(base.0), u64::from(offset), data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_devices::{ManualClock, Note};
    use std::sync::Mutex as StdMutex;

    #[derive(Default)]
    struct Lines(StdMutex<Vec<String>>);

    impl TraceSink for Lines {
        fn wants(&self, _device: &str, _register: Option<&str>) -> bool {
            true
        }
        fn access(&self, r: &AccessRecord<'_>) {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|f| {
                    format!(
                        "{}={}{}",
                        f.name,
                        f.value,
                        f.enum_name.map(|e| format!("({e})")).unwrap_or_default()
                    )
                })
                .collect();
            let notes: Vec<String> = r.notes.iter().map(|n| format!("{n:?}")).collect();
            self.0.lock().unwrap().push(format!(
                "{} {:?} {:#x} {:?} {:#x} [{}] [{}]",
                r.device,
                r.dir,
                r.offset,
                r.register,
                r.value,
                fields.join(" "),
                notes.join(", ")
            ));
        }
        fn event(&self, r: &EventRecord<'_>) {
            let notes: Vec<String> = r.notes.iter().map(|n| format!("{n:?}")).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} event [{}]", r.device, notes.join(", ")));
        }
    }

    const DESC: &str = r#"
[device]
name = "dma"
[[register]]
name = "CTRL"
offset = 0
[[register.field]]
name = "GO"
bits = 0
singlepulse = true
[[register.field]]
name = "IE"
bits = 1
[[register]]
name = "STATUS"
offset = 4
[[register.field]]
name = "DONE"
bits = 0
on_write = "w1c"
values = { IDLE = 0, FINISHED = 1 }
[[interrupt]]
name = "done"
when = "STATUS.DONE && CTRL.IE"
[[effect]]
name = "complete"
on = "write CTRL.GO"
after = "1ms"
do = ["set STATUS.DONE"]
"#;

    fn device() -> (
        Arc<DescribedDevice>,
        Arc<ManualClock>,
        Arc<Scheduler>,
        IrqLine,
        Arc<Lines>,
    ) {
        let model = Arc::new(crate::compile_text(DESC, std::path::Path::new("d.toml")).unwrap());
        let clock = Arc::new(ManualClock::new(0));
        let scheduler = Arc::new(Scheduler::new(clock.clone()).unwrap());
        let line = IrqLine::new_level(5).unwrap();
        let dev = DescribedDevice::new(model, vec![Some(line.clone())], scheduler.clone());
        dev.set_region_name(Space::Mmio, "dma@d0000000");
        let lines = Arc::new(Lines::default());
        dev.attach_sink(lines.clone());
        (dev, clock, scheduler, line, lines)
    }

    fn signals(line: &IrqLine) -> u64 {
        line.event().read().unwrap_or(0)
    }

    #[test]
    fn delayed_completion_raises_a_level_line_until_w1c() {
        let (dev, clock, scheduler, line, lines) = device();
        dev.mmio_write(MmioAddress(0xd000_0000), 0, &3u32.to_le_bytes());
        assert_eq!(scheduler.next_deadline(), Some(1_000_000));
        assert!(!line.is_asserted());
        clock.set(999_999);
        scheduler.run_due();
        assert!(!line.is_asserted());
        clock.set(1_000_000);
        scheduler.run_due();
        assert!(line.is_asserted());
        assert_eq!(signals(&line), 1, "one rising edge");
        dev.mmio_write(MmioAddress(0xd000_0000), 4, &1u32.to_le_bytes());
        assert!(!line.is_asserted(), "the write-1-to-clear lowers the level");
        assert_eq!(signals(&line), 0);
        let text = lines.0.lock().unwrap().join("\n");
        assert_eq!(
            text,
            "dma@d0000000 Write 0x0 Some(\"CTRL\") 0x3 [GO=1 IE=1] [Scheduled { effect: \"complete\", due_ns: Some(1000000) }, Cleared { field: \"CTRL.GO\", bits: 1 }]\n\
             dma@d0000000 event [Fired { effect: \"complete\" }, Set { field: \"STATUS.DONE\", bits: 1 }, Irq { name: \"done\", asserted: true }]\n\
             dma@d0000000 Write 0x4 Some(\"STATUS\") 0x1 [DONE=1(FINISHED)] [Cleared { field: \"STATUS.DONE\", bits: 1 }, Irq { name: \"done\", asserted: false }]"
        );
        let _ = Note::Hole;
    }

    #[test]
    fn a_restored_device_keeps_its_level_and_its_waiting_effect() {
        use mmiolab_devices::Snapshot;
        let (dev, clock, scheduler, line, _) = device();
        dev.mmio_write(MmioAddress(0xd000_0000), 0, &3u32.to_le_bytes());
        clock.set(1_000_000);
        scheduler.run_due();
        assert!(line.is_asserted());
        // A second completion waits, 1 ms from t = 1.2 ms.
        clock.set(1_200_000);
        dev.mmio_write(MmioAddress(0xd000_0000), 0, &3u32.to_le_bytes());
        let saved = dev.save();
        assert_eq!(saved.pending.len(), 1);
        assert_eq!(saved.pending[0].due_ns, Some(2_200_000));

        let (copy, clock2, scheduler2, line2, _) = device();
        clock2.set(1_200_000);
        copy.restore(saved.clone()).unwrap();
        assert!(line2.is_asserted(), "the level comes back");
        assert_eq!(signals(&line2), 0, "without a new edge");
        assert_eq!(scheduler2.next_deadline(), Some(2_200_000), "the effect waits on");
        assert_eq!(copy.save(), saved);
        // The guest acknowledges; the waiting completion raises the line again.
        copy.mmio_write(MmioAddress(0xd000_0000), 4, &1u32.to_le_bytes());
        assert!(!line2.is_asserted());
        clock2.set(2_200_000);
        scheduler2.run_due();
        assert!(line2.is_asserted());

        // What does not fit the model is refused, naming it, and changes nothing.
        let mut bad = saved.clone();
        bad.values.pop();
        let e = copy.restore(bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "malformed `described` state: values: 1 registers saved, the model has 2"
        );
        let mut bad = saved.clone();
        bad.pending[0].effect = 9;
        assert!(copy.restore(bad).unwrap_err().to_string().contains("names effect 9"));
        let mut bad = saved;
        bad.pending[0].due_accesses = Some(1);
        assert!(copy.restore(bad).unwrap_err().to_string().contains("exactly one of"));
    }

    #[test]
    fn pio_and_mmio_reach_the_same_registers() {
        let (dev, ..) = device();
        dev.pio_write(PioAddress(0x300), 0, &[2]);
        let mut b = [0u8; 4];
        dev.mmio_read(MmioAddress(0xd000_0000), 0, &mut b);
        assert_eq!(b, [2, 0, 0, 0]);
    }

    #[derive(Default)]
    struct Judge(Mutex<Vec<u64>>);

    impl super::OrderJudge for Judge {
        fn broken(&self, _device: &str, broken: u64) {
            self.0.lock().unwrap().push(broken);
        }
    }

    #[test]
    fn order_rules_are_judged_on_the_state_before_the_access() {
        let text = "[[register]]\nname = \"CTRL\"\noffset = 0\n[[register.field]]\nname = \"EN\"\nbits = 0\n[[register.field]]\nname = \"MODE\"\nbits = \"9:8\"\n[[register]]\nname = \"DATA\"\noffset = 4\n[[order]]\nname = \"data\"\non = \"write DATA\"\nrequire = \"CTRL.EN\"\n[[order]]\nname = \"mode\"\non = \"write CTRL.MODE\"\nrequire = \"CTRL.EN == 0 || (value & 1) == 0\"\n[[order]]\nname = \"peek\"\non = \"read DATA\"\nrequire = \"DATA != 0\"\n";
        let model = Arc::new(crate::compile_text(text, std::path::Path::new("t.toml")).unwrap());
        let clock = Arc::new(ManualClock::new(0));
        let scheduler = Arc::new(Scheduler::new(clock).unwrap());
        let dev = DescribedDevice::new(model, vec![], scheduler);
        let judge = Arc::new(Judge::default());
        dev.attach_order_judge(judge.clone());
        let w = |off: u64, data: &[u8]| dev.mmio_write(MmioAddress(0), off, data);
        w(4, &[1, 0, 0, 0]); // DATA while EN is 0: rule 0
        w(0, &[1, 0, 0, 0]); // CTRL.EN, not reaching MODE's byte
        w(4, &[2, 0, 0, 0]); // legal now
        w(0, &[1, 1, 0, 0]); // MODE while enabled, staying enabled: rule 1
        w(0, &[0, 2, 0, 0]); // MODE written together with EN cleared: legal (value)
        w(1, &[3]); // MODE's byte alone while disabled: legal
        let mut buf = [0u8; 4];
        dev.mmio_read(MmioAddress(0), 4, &mut buf); // DATA holds 2: legal
        w(4, &[0, 0, 0, 0]); // EN is 0 again: rule 0
        dev.mmio_read(MmioAddress(0), 4, &mut buf); // DATA is 0: rule 2
        assert_eq!(*judge.0.lock().unwrap(), vec![0b001, 0b010, 0b001, 0b100]);
    }
}
