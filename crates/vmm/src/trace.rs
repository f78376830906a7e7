//! The access trace: what the guest did to each device, and what the devices did.
//!
//! # JSON lines (`--trace-format jsonl`, format version 2)
//!
//! One JSON object per line. Every line starts with the same four keys:
//!
//! - `"v":2`: the format version (version 1 lines had none of these four keys);
//! - `"seq"`: 0, 1, 2, ... taken under the trace lock, so the file's order is `seq` order
//!   (and the order in which each device saw its accesses, also with several vCPUs);
//! - `"t_ns"`: the machine's clock (ns since the machine was built; the `due_ns` of a
//!   scheduled effect is on the same clock), read when the line is written;
//! - `"kind"`: `"access"` (a guest access), `"event"` (a device acting on its own),
//!   `"finding"` (a rule of the register checker broken, only with `--check`; below) or
//!   `"test"` (a guest test began or ended, only with `--check` and the guest agent; below).
//!
//! An access to a generic device (or to no device):
//!
//! ```json
//! {"v":2,"seq":0,"t_ns":1200,"kind":"access","vcpu":0,"space":"mmio","op":"write","addr":"0xd0001010","width":4,"value":"0x12345678","device":"testdev@d0001000","offset":"0x10"}
//! ```
//!
//! An access that hit no device has `"device":null,"offset":null`. A string I/O instruction
//! (`rep outsb`) gives one line per element, in order.
//!
//! A device that traces itself (a described device, see `mmiolab_devices::TraceSink`) writes
//! its own access lines instead, with three more keys:
//!
//! - `"reg"`: the register reached, or `null`;
//! - `"fields"`: the register's fields decoded, name → `{"value":"0x2"}`, plus `"enum"` when
//!   the description names that value: `{"MODE":{"value":"0x2","enum":"FAST"},"EN":{"value":"0x1"}}`;
//! - `"effects"`: what the access caused, in order, each a small object whose first key says
//!   what it is: `{"cleared":"STATUS.DONE","bits":"0x1"}`, `{"set":"STATUS.DONE","bits":"0x1"}`,
//!   `{"fifo":"rx","level":3}`, `{"overflow":"rx"}`, `{"underflow":"rx"}`,
//!   `{"irq":"rx","asserted":true}`, `{"scheduled":"done","due_ns":123}` (`null` when it
//!   waits for accesses rather than time), `{"fired":"done"}`, `{"bad_width":true}`,
//!   `{"hole":true}`, `{"reserved":"0xf0"}`, `{"ignored":"CTRL.ID"}`, `{"truncated":true}`
//!   (the device had more to say than its record holds, or the line ran out of room).
//!
//! An event: `{"v":2,"seq":7,"t_ns":5000,"kind":"event","vcpu":null,"device":"dma@d0002000","effects":[{"fired":"done"}]}`.
//!
//! `"vcpu"` is the vCPU whose access this is, `null` for lines written by the VMM thread
//! (deferred effects, interrupt resampling).
//!
//! A finding of the register checker (`mmiolab run --check`, docs/checker.md), written
//! right after the access line that broke the rule, once per offending access:
//! `{"v":2,"seq":9,"t_ns":6000,"kind":"finding","vcpu":0,"rule":"read-write-only","device":"chk","reg":"TXDATA","field":null,"space":"mmio","addr":"0xd0000010","allowed":false}`
//! (`"field"` names the field, `REG.FIELD`, or the FIFO the rule is about; `"allowed"`: the
//! machine file's `[device.check] allow` lists the rule for the device). Trace filters do
//! not drop findings.
//!
//! A test boundary (`mmiolab run --check` with the guest agent, docs/checker.md): the guest
//! agent reported that a KTAP test began (`"phase":"begin"`) or ended (`"phase":"end"`),
//! written during the VM exit that carried the report, so every line between a test's
//! `begin` and its `end` happened while it ran:
//! `{"v":2,"seq":12,"t_ns":7000,"kind":"test","vcpu":0,"test":"agent_clean","phase":"begin"}`.
//! A test that begins while another runs ends that one first (an `end` line, then the
//! `begin`); a trace may end inside a test (the guest stopped before it ended). Trace
//! filters do not drop test lines.
//!
//! Version rules: a line kind or a key may be added without changing `"v"` (readers skip
//! kinds they do not know and keys they do not use; `"finding"` and `"test"` lines were
//! added so, in version 2); `"v"` changes when a key changes meaning or type, or a key or kind is removed.
//!
//! # Chrome trace-event JSON (`--trace-format perfetto`)
//!
//! The JSON array format of the Trace Event Format, which ui.perfetto.dev and
//! chrome://tracing open: metadata naming one track (`tid`) per device region, one for
//! interrupts and one for accesses that hit no device; then one instant event (`"ph":"i"`)
//! per access or device event on its device's track, with everything the JSON-lines format
//! carries in `args` (including `seq`), one instant event on the interrupt track per
//! interrupt change, and one on the `other` track per test boundary (`test begin NAME`,
//! `test end NAME`). Timestamps are in µs with ns precision. The closing `]` is written when
//! the run ends, also when the guest faulted; if mmiolab itself is killed it is missing,
//! which the format allows (readers accept an unterminated array).
//!
//! # Filters and cost
//!
//! `--trace-filter DEVICE[.REGISTER]` keeps only matching lines: `DEVICE` is a region name
//! (`testdev@d0001000`) or the part before its `@` (`testdev`); `REGISTER` names a register
//! of a self-tracing device (`CH` also matches `CH[3]`). Generic devices have no registers,
//! so only a bare `DEVICE` filter keeps their lines. A device's events are kept when any
//! filter names the device. Accesses that hit no device are kept only without filters.
//!
//! Lines are formatted into a stack buffer and written under one lock, so lines from several
//! vCPUs never interleave and nothing allocates per access. Names are JSON-escaped and cut at
//! a character boundary if longer than 128 bytes; a line that would not fit its buffer drops
//! its last fields or effects and says `{"truncated":true}`.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use mmiolab_bus::{AddressSpace, Bus, RegionId, RegionKind, Routed};
use mmiolab_devices::{
    AccessRecord, Clock, Dir, EventRecord, FieldValue, Note, OutputFailure, Space, StopReason, TraceSink, VmControl,
    le_u64,
};

/// The format version written in every JSON line's `"v"`.
pub const FORMAT_VERSION: u32 = 2;

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A guest load / `in`.
    Read,
    /// A guest store / `out`.
    Write,
}

/// What the trace file looks like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceFormat {
    /// One JSON object per line (see the module doc).
    #[default]
    Jsonl,
    /// Chrome trace-event JSON, for ui.perfetto.dev.
    Perfetto,
}

/// One `--trace-filter`: a device, optionally narrowed to one register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFilter {
    text: String,
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace filter `{0}`: expected DEVICE or DEVICE.REGISTER")]
pub struct TraceFilterError(String);

impl std::fmt::Display for TraceFilter {
    /// As given on the command line (`DEVICE[.REGISTER]`), to pass it on to another run.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for TraceFilter {
    type Err = TraceFilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = s.is_empty() || s.starts_with('.') || s.ends_with('.');
        if bad {
            return Err(TraceFilterError(s.to_owned()));
        }
        Ok(TraceFilter { text: s.to_owned() })
    }
}

/// How to trace.
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// The file format.
    pub format: TraceFormat,
    /// Keep only the lines these match (all lines when empty).
    pub filters: Vec<TraceFilter>,
}

thread_local! {
    /// The vCPU this thread runs, for the records self-tracing devices hand over.
    static CURRENT_VCPU: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Tells the trace which vCPU the calling thread runs (vCPU threads call it once, at start);
/// lines from other threads say `"vcpu":null`.
pub fn set_current_vcpu(vcpu: Option<u32>) {
    CURRENT_VCPU.with(|c| c.set(vcpu));
}

pub(crate) fn current_vcpu() -> Option<u32> {
    CURRENT_VCPU.with(Cell::get)
}

/// A filter resolved against the bus: `DEVICE.REG` or `DEVICE`.
#[derive(Debug)]
struct Filter {
    device: String,
    register: Option<String>,
}

impl Filter {
    fn device_matches(&self, name: &str) -> bool {
        name == self.device || name.split_once('@').is_some_and(|(base, _)| base == self.device)
    }

    fn register_matches(&self, register: Option<&str>) -> bool {
        match (&self.register, register) {
            (None, _) => true,
            (Some(want), Some(reg)) => {
                reg == want
                    || reg
                        .strip_prefix(want.as_str())
                        .is_some_and(|rest| rest.starts_with('['))
            }
            (Some(_), None) => false,
        }
    }
}

/// Per device region: what the hot path needs, prepared once.
#[derive(Default)]
struct RegionInfo {
    /// The name as the bus has it.
    name: Box<str>,
    /// JSON-escaped, at most `MAX_NAME` bytes.
    escaped: Box<[u8]>,
    /// Whether this index is a device region at all (the others stay default).
    device: bool,
    /// Perfetto track.
    tid: u32,
    /// Generic lines for it pass the filters.
    wanted: bool,
}

/// The trace file and what goes with it, under the trace lock.
struct Out {
    file: TraceFile,
    seq: u64,
    /// A write failed: nothing more is written.
    broken: bool,
    /// Records not written: those buffered when the write failed, and every one after.
    failed: u64,
    first_error: Option<io::Error>,
    finished: bool,
    /// Told about the first failure, so that it ends the run: (the VM's control, the
    /// trace's name in the report).
    stop: Option<(Arc<VmControl>, String)>,
}

impl Out {
    /// Writes one whole record. After a failure nothing more is written (a trace with a
    /// hole in the middle would look complete); the first failure stops the run, once.
    fn write(&mut self, bytes: &[u8]) {
        if self.broken {
            self.failed += 1;
        } else if let Err(lost) = self.file.append(bytes) {
            self.fail(lost, 1);
        }
    }

    /// As `write`, for a record of at most `max` bytes formatted in place by `fill`, which
    /// returns its length.
    #[inline]
    fn write_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) {
        if self.broken {
            self.failed += 1;
        } else if let Err(lost) = self.file.append_with(max, fill) {
            self.fail(lost, 1);
        }
    }

    /// Writes out what is buffered.
    fn flush(&mut self) {
        if !self.broken
            && let Err(lost) = self.file.flush()
        {
            self.fail(lost, 0);
        }
    }

    /// A write failed, losing `lost.records` buffered records and `refused` new ones.
    #[cold]
    fn fail(&mut self, lost: Lost, refused: u64) {
        self.broken = true;
        self.failed = lost.records + refused;
        if let Some((control, name)) = &self.stop {
            control.request_stop(StopReason::Output(OutputFailure::new(name.clone(), &lost.error)));
        }
        self.first_error = Some(lost.error);
    }
}

/// The trace could not be written whole.
#[derive(Debug, thiserror::Error)]
#[error("{cause} ({unwritten} records not written)")]
pub struct TraceFailure {
    /// The first failed write's error.
    pub cause: io::Error,
    /// Records not written: the failed one and every one after it.
    pub unwritten: u64,
}

/// Writes trace lines for trapped accesses and device records.
pub struct Tracer {
    bus: Arc<Bus>,
    clock: Arc<dyn Clock>,
    format: TraceFormat,
    /// By space (MMIO, PIO) and region index; only device regions are filled in.
    regions: [Vec<RegionInfo>; 2],
    filters: Vec<Filter>,
    /// (first, last) address of each self-tracing device region, by space, sorted.
    self_traced_ranges: [Vec<(u64, u64)>; 2],
    out: Mutex<Out>,
}

/// Longest escaped name a line carries; the machine file keeps names far shorter.
const MAX_NAME: usize = 128;
/// Perfetto tracks that are not devices.
const TID_IRQ: u32 = 1;
const TID_UNMAPPED: u32 = 2;
const TID_OTHER: u32 = 3;
const TID_FIRST_DEVICE: u32 = 10;
/// Buffer of a generic access line: its fixed parts plus one name of at most `MAX_NAME`.
const GENERIC_LINE: usize = 512;
/// Buffer of a self-traced device's line (fields and effects vary).
const RECORD_LINE: usize = 4096;
/// Room kept for closing brackets and a truncation mark once fields or effects run out.
const CLOSING_ROOM: usize = 64;

fn space_index(space: AddressSpace) -> usize {
    match space {
        AddressSpace::Mmio => 0,
        AddressSpace::Pio => 1,
    }
}

fn lock(m: &Mutex<Out>) -> MutexGuard<'_, Out> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tracer {
    /// A tracer naming devices from `bus`, stamping lines with `clock` and writing to `out`
    /// (buffered here). A Perfetto trace's header is written at once.
    pub fn new(bus: Arc<Bus>, out: Box<dyn TraceStore>, clock: Arc<dyn Clock>, options: &TraceOptions) -> Tracer {
        let mut next_tid = TID_FIRST_DEVICE;
        let regions = [AddressSpace::Mmio, AddressSpace::Pio].map(|space| {
            let tree = bus.tree(space);
            let mut regions: Vec<RegionInfo> = Vec::new();
            for (_, id) in tree.walk() {
                if tree.kind(id) != RegionKind::Device {
                    continue;
                }
                if regions.len() <= id.index() {
                    regions.resize_with(id.index() + 1, RegionInfo::default);
                }
                let name = tree.name(id);
                let mut escaped = Vec::new();
                escape(name, MAX_NAME, |b| {
                    escaped.extend_from_slice(b);
                    true
                });
                regions[id.index()] = RegionInfo {
                    device: true,
                    name: name.into(),
                    escaped: escaped.into_boxed_slice(),
                    tid: next_tid,
                    wanted: true,
                };
                next_tid += 1;
            }
            regions
        });
        let mut tracer = Tracer {
            bus,
            clock,
            format: options.format,
            regions,
            filters: Vec::new(),
            self_traced_ranges: [Vec::new(), Vec::new()],
            out: Mutex::new(Out {
                file: TraceFile::new(out),
                seq: 0,
                broken: false,
                failed: 0,
                first_error: None,
                finished: false,
                stop: None,
            }),
        };
        tracer.filters = options.filters.iter().map(|f| tracer.resolve(f)).collect();
        if !tracer.filters.is_empty() {
            for r in tracer.regions.iter_mut().flatten() {
                r.wanted = tracer
                    .filters
                    .iter()
                    .any(|f| f.register.is_none() && f.device_matches(&r.name));
            }
        }
        if tracer.format == TraceFormat::Perfetto {
            let header = tracer.perfetto_header();
            lock(&tracer.out).write(&header);
        }
        tracer
    }

    /// `DEVICE.REG` may also be a device whose name has a dot: prefer the device.
    fn resolve(&self, f: &TraceFilter) -> Filter {
        let names = || self.regions.iter().flatten().filter(|r| r.device);
        let whole = Filter {
            device: f.text.clone(),
            register: None,
        };
        if names().any(|r| whole.device_matches(&r.name)) {
            return whole;
        }
        let filter = match f.text.rsplit_once('.') {
            Some((device, reg)) => Filter {
                device: device.to_owned(),
                register: Some(reg.to_owned()),
            },
            None => whole,
        };
        if !names().any(|r| filter.device_matches(&r.name)) {
            log::warn!(
                "--trace-filter {}: no device is named `{}`; it matches nothing",
                f.text,
                filter.device
            );
        }
        filter
    }

    /// Marks `region` (a device region of `space`) as tracing itself: the generic line for
    /// its accesses is not written, the device's own record is. O(n) each (the ranges are
    /// kept sorted): mark many at once with [`Tracer::set_self_traced_all`].
    pub fn set_self_traced(&mut self, space: AddressSpace, region: RegionId) {
        let range = self.bus.tree(space).range(region);
        let ranges = &mut self.self_traced_ranges[space_index(space)];
        let pos = ranges.partition_point(|&(start, _)| start < range.start());
        ranges.insert(pos, (range.start(), range.end()));
    }

    /// [`Tracer::set_self_traced`] for every `(space, region)` of `regions`, sorting once
    /// (O(n log n)).
    pub fn set_self_traced_all(&mut self, regions: impl IntoIterator<Item = (AddressSpace, RegionId)>) {
        for (space, region) in regions {
            let range = self.bus.tree(space).range(region);
            self.self_traced_ranges[space_index(space)].push((range.start(), range.end()));
        }
        for ranges in &mut self.self_traced_ranges {
            ranges.sort_unstable();
        }
    }

    /// Whether `addr` lies in a self-tracing device region of `space`: a binary search of
    /// the sorted, disjoint ranges.
    #[inline]
    fn self_traced(&self, space: AddressSpace, addr: u64) -> bool {
        let ranges = &self.self_traced_ranges[space_index(space)];
        let pos = ranges.partition_point(|&(start, _)| start <= addr);
        pos.checked_sub(1).is_some_and(|i| addr <= ranges[i].1)
    }

    /// Records one generic access of `data.len()` bytes (at most 8 are shown as the value),
    /// unless its device traces itself or the filters drop it.
    #[inline]
    pub fn record(&self, vcpu: u32, space: AddressSpace, op: Op, addr: u64, data: &[u8], routed: Routed) {
        // Self-tracing devices wrote their own line: a range check, before any tree walk.
        if routed == Routed::Device && self.self_traced(space, addr) {
            return;
        }
        self.record_generic(vcpu, space, op, addr, data, routed);
    }

    #[inline(never)]
    fn record_generic(&self, vcpu: u32, space: AddressSpace, op: Op, addr: u64, data: &[u8], routed: Routed) {
        let tree = self.bus.tree(space);
        let device = match routed {
            Routed::Device => tree.device_at(addr),
            Routed::Unmapped => None,
        };
        let region = device.and_then(|id| {
            self.regions[space_index(space)]
                .get(id.index())
                .filter(|r| r.device)
                .map(|r| (r, addr - tree.range(id).start()))
        });
        match region {
            Some((r, _)) if !r.wanted => return,
            None if !self.filters.is_empty() => return,
            _ => {}
        }
        let a = Access {
            vcpu: Some(vcpu),
            space,
            op,
            addr,
            width: data.len() as u64,
            value: le_u64(data),
        };
        self.emit(GENERIC_LINE, |line, seq, t_ns| match self.format {
            TraceFormat::Jsonl => {
                jsonl_prefix(line, seq, t_ns, b"access");
                access_keys(line, &a);
                match region {
                    Some((r, offset)) => {
                        line.lit(b",\"device\":\"");
                        line.bytes(&r.escaped);
                        line.lit(b"\",\"offset\":\"");
                        line.hex(offset);
                        line.lit(b"\"}\n");
                    }
                    None => line.lit(b",\"device\":null,\"offset\":null}\n"),
                }
            }
            TraceFormat::Perfetto => {
                let tid = region.map_or(TID_UNMAPPED, |(r, _)| r.tid);
                perfetto_prefix(line, tid, t_ns);
                line.lit(b"\"name\":\"");
                op_word(line, op);
                line.lit(b" ");
                line.hex(region.map_or(addr, |(_, offset)| offset));
                line.lit(b"\",\"args\":{\"seq\":");
                line.dec(seq);
                line.lit(b",");
                access_args(line, &a);
                if let Some((_, offset)) = region {
                    line.lit(b",\"offset\":\"");
                    line.hex(offset);
                    line.lit(b"\"");
                }
                line.lit(b"}}");
            }
        });
    }

    /// Takes the next `seq` and the time under the trace lock and formats a line of at most
    /// `max` bytes with `body`, in place in the trace file's buffer. Nothing is written once
    /// the trace is finished.
    fn emit(&self, max: usize, body: impl FnOnce(&mut LineBuf<'_>, u64, u64)) {
        let mut out = lock(&self.out);
        if out.finished {
            return;
        }
        let seq = out.seq;
        out.seq += 1;
        let t_ns = self.clock.now_ns();
        out.write_with(max, |buf| {
            let mut line = LineBuf::over(buf);
            body(&mut line, seq, t_ns);
            line.len
        });
    }

    /// The device region named `name`, for events (which carry a name, not an address).
    fn region_named(&self, name: &str) -> Option<&RegionInfo> {
        self.regions.iter().flatten().find(|r| r.device && *r.name == *name)
    }

    fn perfetto_header(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"[\n{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"mmiolab\"}}");
        // Tracks sorted by tid: interrupts first, then devices in address order.
        let mut track = |tid: u32, name: &[u8]| {
            let tid = tid.to_string();
            h.extend_from_slice(b",\n{\"ph\":\"M\",\"pid\":1,\"tid\":");
            h.extend_from_slice(tid.as_bytes());
            h.extend_from_slice(b",\"name\":\"thread_name\",\"args\":{\"name\":\"");
            h.extend_from_slice(name);
            h.extend_from_slice(b"\"}},\n{\"ph\":\"M\",\"pid\":1,\"tid\":");
            h.extend_from_slice(tid.as_bytes());
            h.extend_from_slice(b",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":");
            h.extend_from_slice(tid.as_bytes());
            h.extend_from_slice(b"}}");
        };
        track(TID_IRQ, b"interrupts");
        track(TID_UNMAPPED, b"no device");
        track(TID_OTHER, b"other");
        for r in self.regions.iter().flatten().filter(|r| r.device) {
            track(r.tid, &r.escaped);
        }
        h
    }

    /// Writes a line for one finding of the register checker (`--check`), right after
    /// the access line that broke the rule. Filters do not apply: a finding is always kept.
    pub fn finding(&self, f: &FindingLine<'_>) {
        // Four names of up to MAX_NAME bytes each: more than a generic line's buffer holds.
        self.emit(RECORD_LINE, |line, seq, t_ns| {
            let space = match f.space {
                Space::Mmio => &b"mmio"[..],
                Space::Pio => &b"pio"[..],
            };
            match self.format {
                TraceFormat::Jsonl => {
                    jsonl_prefix(line, seq, t_ns, b"finding");
                    line.lit(b",\"vcpu\":");
                    opt_dec(line, f.vcpu);
                    line.lit(b",\"rule\":\"");
                    line.str(f.rule, MAX_NAME);
                    line.lit(b"\",\"device\":\"");
                    line.str(f.device, MAX_NAME);
                    line.lit(b"\",\"reg\":");
                    finding_keys(line, f, space);
                    line.lit(b"}\n");
                }
                TraceFormat::Perfetto => {
                    let tid = self.region_named(f.device).map_or(TID_OTHER, |r| r.tid);
                    perfetto_prefix(line, tid, t_ns);
                    line.lit(b"\"name\":\"finding ");
                    line.str(f.rule, MAX_NAME);
                    line.lit(b"\",\"args\":{\"seq\":");
                    line.dec(seq);
                    line.lit(b",\"vcpu\":");
                    opt_dec(line, f.vcpu);
                    line.lit(b",\"reg\":");
                    finding_keys(line, f, space);
                    line.lit(b"}}");
                }
            }
        });
    }

    /// Writes a test boundary: `begin` (true) or end of the guest test `name`, as the guest
    /// agent reported it (checker mode), in order with the accesses around it. Filters do
    /// not apply: boundaries are always kept.
    pub fn test_boundary(&self, name: &str, begin: bool) {
        let phase: &[u8] = if begin { b"begin" } else { b"end" };
        let vcpu = current_vcpu();
        self.emit(GENERIC_LINE, |line, seq, t_ns| match self.format {
            TraceFormat::Jsonl => {
                jsonl_prefix(line, seq, t_ns, b"test");
                line.lit(b",\"vcpu\":");
                opt_dec(line, vcpu);
                line.lit(b",\"test\":\"");
                line.str(name, MAX_NAME);
                line.lit(b"\",\"phase\":\"");
                line.bytes(phase);
                line.lit(b"\"}\n");
            }
            TraceFormat::Perfetto => {
                perfetto_prefix(line, TID_OTHER, t_ns);
                line.lit(b"\"name\":\"test ");
                line.bytes(phase);
                line.lit(b" ");
                line.str(name, MAX_NAME);
                line.lit(b"\",\"args\":{\"seq\":");
                line.dec(seq);
                line.lit(b",\"vcpu\":");
                opt_dec(line, vcpu);
                line.lit(b"}}");
            }
        });
    }

    /// Writes out the buffered lines. A failure counts as the first failed write (see
    /// [`Tracer::finish`]); it is returned too.
    pub fn flush(&self) -> io::Result<()> {
        let mut out = lock(&self.out);
        out.flush();
        match &out.first_error {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    /// Makes the first failed write stop the run through `control`, as
    /// [`StopReason::Output`] naming `name` ("the trace file t.jsonl") and the cause.
    pub fn set_stop_on_failure(&mut self, control: Arc<VmControl>, name: impl Into<String>) {
        lock(&self.out).stop = Some((control, name.into()));
    }

    /// The `seq` the next record takes (a snapshot saves it).
    pub fn next_seq(&self) -> u64 {
        lock(&self.out).seq
    }

    /// Numbers records from `seq` on: a restored run's trace goes on from the snapshot's.
    pub fn start_at_seq(&self, seq: u64) {
        lock(&self.out).seq = seq;
    }

    /// Ends the trace: closes a Perfetto document, flushes, and reports a write failure
    /// (its cause, and how many records were not written). Later records are dropped.
    /// Called again, it only flushes.
    pub fn finish(&self) -> Result<(), TraceFailure> {
        let mut out = lock(&self.out);
        if !out.finished {
            out.finished = true;
            if self.format == TraceFormat::Perfetto {
                out.write(b"\n]\n");
            }
        }
        out.flush();
        match out.first_error.take() {
            Some(e) => Err(TraceFailure {
                cause: e,
                unwritten: out.failed,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // A run that ended on an error path still gets a closed document.
        if let Err(e) = self.finish() {
            log::error!("trace: {e}");
        }
    }
}

impl TraceSink for Tracer {
    fn wants_everything(&self) -> bool {
        // The filters are fixed once the tracer is made.
        self.filters.is_empty()
    }

    fn wants(&self, device: &str, register: Option<&str>) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| f.device_matches(device) && (register.is_none() || f.register_matches(register)))
    }

    fn access(&self, record: &AccessRecord<'_>) {
        let wanted = self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| f.device_matches(record.device) && f.register_matches(record.register));
        if !wanted {
            return;
        }
        let space = match record.space {
            Space::Mmio => AddressSpace::Mmio,
            Space::Pio => AddressSpace::Pio,
        };
        let a = Access {
            vcpu: current_vcpu(),
            space,
            op: match record.dir {
                Dir::Read => Op::Read,
                Dir::Write => Op::Write,
            },
            addr: record.addr,
            width: u64::from(record.width),
            value: record.value,
        };
        self.emit(RECORD_LINE, |line, seq, t_ns| match self.format {
            TraceFormat::Jsonl => {
                if access_head(line, seq, t_ns, &a, record) {
                    return;
                }
                let full = fields_and_effects(line, record.fields, record.notes);
                close(line, full, b"]}\n");
            }
            TraceFormat::Perfetto => {
                let tid = self
                    .bus
                    .tree(space)
                    .device_at(record.addr)
                    .and_then(|id| self.regions[space_index(space)].get(id.index()))
                    .filter(|r| r.device)
                    .map_or(TID_OTHER, |r| r.tid);
                perfetto_prefix(line, tid, t_ns);
                line.lit(b"\"name\":\"");
                op_word(line, a.op);
                line.lit(b" ");
                match record.register {
                    Some(reg) => line.str(reg, MAX_NAME),
                    None => line.hex(record.offset),
                }
                line.lit(b"\",\"args\":{\"seq\":");
                line.dec(seq);
                line.lit(b",");
                access_args(line, &a);
                line.lit(b",\"offset\":\"");
                line.hex(record.offset);
                line.lit(b"\"");
                let full = fields_and_effects(line, record.fields, record.notes);
                close(line, full, b"]}}");
                irq_events(line, seq, t_ns, record.device, record.notes);
            }
        });
    }

    fn event(&self, record: &EventRecord<'_>) {
        if !self.wants(record.device, None) {
            return;
        }
        let vcpu = current_vcpu();
        self.emit(RECORD_LINE, |line, seq, t_ns| match self.format {
            TraceFormat::Jsonl => {
                jsonl_prefix(line, seq, t_ns, b"event");
                line.lit(b",\"vcpu\":");
                opt_dec(line, vcpu);
                line.lit(b",\"device\":\"");
                line.str(record.device, MAX_NAME);
                line.lit(b"\",\"effects\":[");
                line.reserve(CLOSING_ROOM);
                let full = effects(line, record.notes);
                close(line, full, b"]}\n");
            }
            TraceFormat::Perfetto => {
                let tid = self.region_named(record.device).map_or(TID_OTHER, |r| r.tid);
                perfetto_prefix(line, tid, t_ns);
                line.lit(b"\"name\":\"");
                match record.notes.first() {
                    Some(n) => note_label(line, n),
                    None => line.lit(b"event"),
                }
                line.lit(b"\",\"args\":{\"seq\":");
                line.dec(seq);
                line.lit(b",\"vcpu\":");
                opt_dec(line, vcpu);
                line.lit(b",\"effects\":[");
                line.reserve(CLOSING_ROOM);
                let full = effects(line, record.notes);
                close(line, full, b"]}}");
                irq_events(line, seq, t_ns, record.device, record.notes);
            }
        });
    }
}

/// One finding of the register checker, as [`Tracer::finding`] writes it.
#[derive(Clone, Copy, Debug)]
pub struct FindingLine<'a> {
    /// The rule's name (`read-write-only`).
    pub rule: &'a str,
    /// The device region's name.
    pub device: &'a str,
    /// The register, if any.
    pub register: Option<&'a str>,
    /// The field or FIFO concerned, if any.
    pub field: Option<&'a str>,
    /// Address space of the access.
    pub space: Space,
    /// Guest address (port) of the access.
    pub addr: u64,
    /// The vCPU.
    pub vcpu: Option<u32>,
    /// The machine file allows the rule for this device.
    pub allowed: bool,
}

/// The parts of an access both line kinds share.
struct Access {
    vcpu: Option<u32>,
    space: AddressSpace,
    op: Op,
    addr: u64,
    width: u64,
    value: u64,
}

/// The most bytes [`access_head`] writes: its literal text (under 200 bytes), seven
/// numbers of at most 20 characters each and two names of at most `MAX_NAME` bytes.
const ACCESS_HEAD: usize = 640;
const _: () = assert!(ACCESS_HEAD >= 200 + 7 * 20 + 2 * MAX_NAME + HEX_STORE + DEC_STORE && ACCESS_HEAD <= RECORD_LINE);
// The version is written as literal text below.
const _: () = assert!(FORMAT_VERSION == 2);

/// A device's JSON access line up to its fields (`{"v":2,...,"reg":"CTRL"`), written into
/// the empty `line` with one room check for all of it (the pieces' sizes are bounded:
/// [`ACCESS_HEAD`]) and `,"fields":{` opened. A record with neither fields nor notes is
/// finished here too, and then true is returned. Writes what
/// `jsonl_prefix`+`access_keys`+... wrote piece by piece, byte for byte.
fn access_head(line: &mut LineBuf<'_>, seq: u64, t_ns: u64, a: &Access, record: &AccessRecord<'_>) -> bool {
    let start = line.len;
    let Some(buf) = line
        .buf
        .get_mut(start..)
        .and_then(|b| b.first_chunk_mut::<ACCESS_HEAD>())
        .filter(|_| start + ACCESS_HEAD <= line.limit)
    else {
        // Not at the start of an empty line: piece by piece.
        jsonl_prefix(line, seq, t_ns, b"access");
        access_keys(line, a);
        line.lit(b",\"device\":\"");
        line.str(record.device, MAX_NAME);
        line.lit(b"\",\"offset\":\"");
        line.hex(record.offset);
        line.lit(b"\",\"reg\":");
        opt_str(line, record.register);
        return false;
    };
    let mut h = Head { buf, n: 0 };
    h.lit(b"{\"v\":2,\"seq\":");
    h.dec(seq);
    h.lit(b",\"t_ns\":");
    h.dec(t_ns);
    h.lit(b",\"kind\":\"access\",\"vcpu\":");
    match a.vcpu {
        Some(v) => h.dec(u64::from(v)),
        None => h.lit(b"null"),
    }
    match (a.space, a.op) {
        (AddressSpace::Mmio, Op::Read) => h.lit(b",\"space\":\"mmio\",\"op\":\"read\",\"addr\":\""),
        (AddressSpace::Mmio, Op::Write) => h.lit(b",\"space\":\"mmio\",\"op\":\"write\",\"addr\":\""),
        (AddressSpace::Pio, Op::Read) => h.lit(b",\"space\":\"pio\",\"op\":\"read\",\"addr\":\""),
        (AddressSpace::Pio, Op::Write) => h.lit(b",\"space\":\"pio\",\"op\":\"write\",\"addr\":\""),
    }
    h.hex(a.addr);
    h.lit(b"\",\"width\":");
    h.dec(a.width);
    h.lit(b",\"value\":\"");
    h.hex(a.value);
    h.lit(b"\",\"device\":\"");
    h.name(record.device);
    h.lit(b"\",\"offset\":\"");
    h.hex(record.offset);
    match record.register {
        Some(reg) => {
            h.lit(b"\",\"reg\":\"");
            h.name(reg);
            h.lit(b"\"");
        }
        None => h.lit(b"\",\"reg\":null"),
    }
    let done = record.fields.is_empty() && record.notes.is_empty();
    if done {
        h.lit(b",\"fields\":{},\"effects\":[]}\n");
    }
    line.len = start + h.n.min(ACCESS_HEAD);
    done
}

/// Writes the head of a line into a buffer known to hold all of it: each piece is one
/// comparison against the buffer's end rather than a room check (and a piece that would
/// not fit, which the bound on the pieces rules out, is dropped, never a panic).
struct Head<'a> {
    buf: &'a mut [u8; ACCESS_HEAD],
    n: usize,
}

/// The most bytes [`Head::hex`] writes (`0x` and 16 digits).
const HEX_STORE: usize = 18;
/// Bytes [`Head::dec`] stores at once (20 digits, of which it keeps the value's).
const DEC_STORE: usize = 20;

impl Head<'_> {
    #[inline(always)]
    fn lit<const L: usize>(&mut self, s: &[u8; L]) {
        if self.n <= ACCESS_HEAD - L {
            if let Some(dst) = self.buf.get_mut(self.n..self.n + L) {
                dst.copy_from_slice(s);
            }
            self.n += L;
        }
    }

    /// A short byte string, without a `memcpy` call for the usual lengths.
    #[inline(always)]
    fn bytes(&mut self, s: &[u8]) {
        if s.len() <= ACCESS_HEAD && self.n <= ACCESS_HEAD - s.len() {
            if let Some(dst) = self.buf.get_mut(self.n..self.n + s.len()) {
                copy_short(dst, s);
            }
            self.n += s.len();
        }
    }

    /// A name, JSON-escaped and cut as [`LineBuf::str`] does.
    #[inline(always)]
    fn name(&mut self, s: &str) {
        if s.len() <= MAX_NAME && json_plain(s.as_bytes()) {
            self.bytes(s.as_bytes());
        } else {
            escape(s, MAX_NAME, |piece| {
                self.bytes(piece);
                true
            });
        }
    }

    /// `0x` and the value's hex digits.
    #[inline(always)]
    fn hex(&mut self, v: u64) {
        let digits = ((64 - v.leading_zeros()).div_ceil(4)).max(1) as usize;
        if self.n <= ACCESS_HEAD - HEX_STORE
            && let Some(dst) = self.buf.get_mut(self.n..self.n + 2 + digits)
        {
            write_hex(dst, v);
            self.n += 2 + digits;
        }
    }

    /// The value in decimal: its digits, two per division, stored at their places.
    #[inline(always)]
    fn dec(&mut self, v: u64) {
        if self.n > ACCESS_HEAD - DEC_STORE {
            return;
        }
        if v < 10 {
            if let Some(d) = self.buf.get_mut(self.n) {
                *d = b'0' + v as u8;
            }
            self.n += 1;
            return;
        }
        let digits = dec_digits(v);
        if let Some(dst) = self.buf.get_mut(self.n..self.n + digits) {
            write_dec(dst, v);
        }
        self.n += digits;
    }
}

/// Decimal digits of `v` (at least one).
#[inline(always)]
fn dec_digits(v: u64) -> usize {
    const POW10: [u64; 20] = {
        let mut t = [1u64; 20];
        let mut i = 1;
        while i < 20 {
            t[i] = t[i - 1] * 10;
            i += 1;
        }
        t
    };
    // log10(2) ~ 1233 / 4096: a guess from the bit length, one below or right.
    let bits = 64 - (v | 1).leading_zeros();
    let guess = ((bits * 1233) >> 12) as usize;
    (guess + usize::from(POW10.get(guess).is_none_or(|&p| v >= p))).max(1)
}

/// Whether `s` needs no JSON escaping (no control character, quote or backslash), eight
/// bytes at a time.
#[inline(always)]
fn json_plain(s: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    // Exact for every byte: a byte below n (n <= 128), or a byte equal to one.
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let bad =
        |w: u64| below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1);
    let word = |c: &[u8; 8]| u64::from_le_bytes(*c);
    if let Some(last) = s.last_chunk::<8>() {
        // Whole words, the last one overlapping the one before it.
        let mut chunks = s.chunks_exact(8);
        for c in &mut chunks {
            if let Ok(c) = <&[u8; 8]>::try_from(c)
                && bad(word(c)) != 0
            {
                return false;
            }
        }
        return bad(word(last)) == 0;
    }
    // Under 8 bytes: two overlapping halves, or the bytes one by one, padded with a
    // letter.
    let pad = ONES * u64::from(b'a');
    let w = match (s.first_chunk::<4>(), s.last_chunk::<4>()) {
        (Some(a), Some(b)) => u64::from(u32::from_le_bytes(*a)) | (u64::from(u32::from_le_bytes(*b)) << 32),
        _ => s
            .iter()
            .enumerate()
            .fold(pad, |w, (i, &b)| (w & !(0xff << (8 * i))) | (u64::from(b) << (8 * i))),
    };
    bad(w) == 0
}

/// `dst.copy_from_slice(src)` (equal lengths), with overlapping word copies for up to 16
/// bytes instead of a call.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    match n {
        8..=16 => {
            let (Some(a), Some(b)) = (src.first_chunk::<8>().copied(), src.last_chunk::<8>().copied()) else {
                return;
            };
            if let Some(d) = dst.first_chunk_mut::<8>() {
                *d = a;
            }
            if let Some(d) = dst.last_chunk_mut::<8>() {
                *d = b;
            }
        }
        4..=7 => {
            let (Some(a), Some(b)) = (src.first_chunk::<4>().copied(), src.last_chunk::<4>().copied()) else {
                return;
            };
            if let Some(d) = dst.first_chunk_mut::<4>() {
                *d = a;
            }
            if let Some(d) = dst.last_chunk_mut::<4>() {
                *d = b;
            }
        }
        0..=3 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

/// `0x` and `v` in lowercase hex, filling `dst` (2 + its digits), two digits per step.
#[inline(always)]
fn write_hex(dst: &mut [u8], mut v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const PAIRS: [[u8; 2]; 256] = {
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 15]];
            i += 1;
        }
        t
    };
    let Some(prefix) = dst.first_chunk_mut::<2>() else {
        return;
    };
    *prefix = *b"0x";
    // Index loops: the slice iterators cost about twice as much here.
    let mut i = dst.len();
    while i >= 4 {
        i -= 2;
        if let Some(d) = dst.get_mut(i..i + 2) {
            d.copy_from_slice(&PAIRS[(v & 0xff) as usize]);
        }
        v >>= 8;
    }
    if i == 3
        && let Some(d) = dst.get_mut(2)
    {
        *d = HEX[(v & 0xf) as usize];
    }
}

/// `v` in decimal, filling `dst` (its digits), two digits per division.
#[inline(always)]
fn write_dec(dst: &mut [u8], mut v: u64) {
    const PAIRS: [[u8; 2]; 100] = {
        let mut t = [[0u8; 2]; 100];
        let mut i = 0;
        while i < 100 {
            t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
            i += 1;
        }
        t
    };
    let mut i = dst.len();
    while i >= 2 {
        i -= 2;
        if let Some(d) = dst.get_mut(i..i + 2) {
            d.copy_from_slice(&PAIRS[(v % 100) as usize]);
        }
        v /= 100;
    }
    if i == 1
        && let Some(d) = dst.first_mut()
    {
        *d = b'0' + v as u8;
    }
}

fn jsonl_prefix(line: &mut LineBuf<'_>, seq: u64, t_ns: u64, kind: &[u8]) {
    line.lit(b"{\"v\":");
    line.dec(u64::from(FORMAT_VERSION));
    line.lit(b",\"seq\":");
    line.dec(seq);
    line.lit(b",\"t_ns\":");
    line.dec(t_ns);
    line.lit(b",\"kind\":\"");
    line.bytes(kind);
    line.lit(b"\"");
}

/// `,"vcpu":..,"space":..,"op":..,"addr":..,"width":..,"value":..` (JSON lines).
fn access_keys(line: &mut LineBuf<'_>, a: &Access) {
    line.lit(b",\"vcpu\":");
    opt_dec(line, a.vcpu);
    match a.space {
        AddressSpace::Mmio => line.lit(b",\"space\":\"mmio\",\"op\":\""),
        AddressSpace::Pio => line.lit(b",\"space\":\"pio\",\"op\":\""),
    }
    op_word(line, a.op);
    line.lit(b"\",\"addr\":\"");
    line.hex(a.addr);
    line.lit(b"\",\"width\":");
    line.dec(a.width);
    line.lit(b",\"value\":\"");
    line.hex(a.value);
    line.lit(b"\"");
}

/// `"vcpu":..,"space":..,"addr":..,"width":..,"value":..` (Perfetto args; the op is in
/// the event's name).
fn access_args(line: &mut LineBuf<'_>, a: &Access) {
    line.lit(b"\"vcpu\":");
    opt_dec(line, a.vcpu);
    match a.space {
        AddressSpace::Mmio => line.lit(b",\"space\":\"mmio\",\"addr\":\""),
        AddressSpace::Pio => line.lit(b",\"space\":\"pio\",\"addr\":\""),
    }
    line.hex(a.addr);
    line.lit(b"\",\"width\":");
    line.dec(a.width);
    line.lit(b",\"value\":\"");
    line.hex(a.value);
    line.lit(b"\"");
}

/// `,\n{"ph":"i","s":"t","pid":1,"tid":T,"ts":µs.ns,` (the header opened the array, so
/// every event starts with its separator).
fn perfetto_prefix(line: &mut LineBuf<'_>, tid: u32, t_ns: u64) {
    line.lit(b",\n{\"ph\":\"i\",\"s\":\"t\",\"pid\":1,\"tid\":");
    line.dec(u64::from(tid));
    line.lit(b",\"ts\":");
    line.dec(t_ns / 1000);
    line.lit(b".");
    let ns = t_ns % 1000;
    line.digit(ns / 100);
    line.digit(ns / 10 % 10);
    line.digit(ns % 10);
    line.lit(b",");
}

fn op_word(line: &mut LineBuf<'_>, op: Op) {
    match op {
        Op::Read => line.lit(b"read"),
        Op::Write => line.lit(b"write"),
    }
}

/// A finding's register, field, space, address and whether it is allowed, after `"reg":`;
/// the same in both formats.
fn finding_keys(line: &mut LineBuf<'_>, f: &FindingLine<'_>, space: &[u8]) {
    opt_str(line, f.register);
    line.lit(b",\"field\":");
    opt_str(line, f.field);
    line.lit(b",\"space\":\"");
    line.bytes(space);
    line.lit(b"\",\"addr\":\"");
    line.hex(f.addr);
    line.lit(b"\",\"allowed\":");
    if f.allowed {
        line.lit(b"true");
    } else {
        line.lit(b"false");
    }
}

fn opt_str(line: &mut LineBuf<'_>, v: Option<&str>) {
    match v {
        Some(s) => {
            line.lit(b"\"");
            line.str(s, MAX_NAME);
            line.lit(b"\"");
        }
        None => line.lit(b"null"),
    }
}

fn opt_dec(line: &mut LineBuf<'_>, v: Option<u32>) {
    match v {
        Some(v) => line.dec(u64::from(v)),
        None => line.lit(b"null"),
    }
}

/// `,"fields":{..},"effects":[..` (left open); false if something was left out.
fn fields_and_effects(line: &mut LineBuf<'_>, fields: &[FieldValue<'_>], notes: &[Note<'_>]) -> bool {
    line.lit(b",\"fields\":{");
    line.reserve(CLOSING_ROOM);
    let mut full = true;
    for (i, f) in fields.iter().enumerate() {
        let mark = line.len;
        if i > 0 {
            line.lit(b",");
        }
        line.lit(b"\"");
        line.str(f.name, MAX_NAME);
        line.lit(b"\":{\"value\":\"");
        line.hex(f.value);
        if let Some(e) = f.enum_name {
            line.lit(b"\",\"enum\":\"");
            line.str(e, MAX_NAME);
        }
        line.lit(b"\"}");
        if line.rolled_back(mark) {
            full = false;
            break;
        }
    }
    line.unreserve();
    line.lit(b"},\"effects\":[");
    line.reserve(CLOSING_ROOM);
    effects(line, notes) && full
}

/// The effects array's elements; false if some did not fit.
fn effects(line: &mut LineBuf<'_>, notes: &[Note<'_>]) -> bool {
    for (i, n) in notes.iter().enumerate() {
        let mark = line.len;
        if i > 0 {
            line.lit(b",");
        }
        note(line, n);
        if line.rolled_back(mark) {
            return false;
        }
    }
    true
}

/// Closes an effects array opened by [`effects`] with `end`, adding a truncation mark when
/// something was left out.
fn close(line: &mut LineBuf<'_>, full: bool, end: &[u8]) {
    line.unreserve();
    if !full {
        if line.last() != Some(b'[') {
            line.lit(b",");
        }
        line.lit(b"{\"truncated\":true}");
    }
    line.bytes(end);
}

fn note(line: &mut LineBuf<'_>, n: &Note<'_>) {
    let named = |line: &mut LineBuf<'_>, key: &[u8], name: &str| {
        line.lit(b"{\"");
        line.bytes(key);
        line.lit(b"\":\"");
        line.str(name, MAX_NAME);
        line.lit(b"\"");
    };
    match *n {
        Note::Cleared { field, bits } => {
            named(line, b"cleared", field);
            line.lit(b",\"bits\":\"");
            line.hex(bits);
            line.lit(b"\"}");
        }
        Note::Set { field, bits } => {
            named(line, b"set", field);
            line.lit(b",\"bits\":\"");
            line.hex(bits);
            line.lit(b"\"}");
        }
        Note::Fifo { fifo, level } => {
            named(line, b"fifo", fifo);
            line.lit(b",\"level\":");
            line.dec(u64::from(level));
            line.lit(b"}");
        }
        Note::Overflow { fifo } => {
            named(line, b"overflow", fifo);
            line.lit(b"}");
        }
        Note::Underflow { fifo } => {
            named(line, b"underflow", fifo);
            line.lit(b"}");
        }
        Note::Irq { name, asserted } => {
            named(line, b"irq", name);
            if asserted {
                line.lit(b",\"asserted\":true}");
            } else {
                line.lit(b",\"asserted\":false}");
            }
        }
        Note::Scheduled { effect, due_ns } => {
            named(line, b"scheduled", effect);
            line.lit(b",\"due_ns\":");
            match due_ns {
                Some(t) => line.dec(t),
                None => line.lit(b"null"),
            }
            line.lit(b"}");
        }
        Note::Fired { effect } => {
            named(line, b"fired", effect);
            line.lit(b"}");
        }
        Note::BadWidth => line.lit(b"{\"bad_width\":true}"),
        Note::Hole => line.lit(b"{\"hole\":true}"),
        Note::Reserved { bits } => {
            line.lit(b"{\"reserved\":\"");
            line.hex(bits);
            line.lit(b"\"}");
        }
        Note::Ignored { field } => {
            named(line, b"ignored", field);
            line.lit(b"}");
        }
        Note::Truncated => line.lit(b"{\"truncated\":true}"),
    }
}

/// A short event name for Perfetto: `fired done`, `irq rx`, `cleared STATUS.DONE`...
fn note_label(line: &mut LineBuf<'_>, n: &Note<'_>) {
    let (word, name): (&[u8], Option<&str>) = match *n {
        Note::Cleared { field, .. } => (b"cleared ", Some(field)),
        Note::Set { field, .. } => (b"set ", Some(field)),
        Note::Fifo { fifo, .. } => (b"fifo ", Some(fifo)),
        Note::Overflow { fifo } => (b"overflow ", Some(fifo)),
        Note::Underflow { fifo } => (b"underflow ", Some(fifo)),
        Note::Irq { name, .. } => (b"irq ", Some(name)),
        Note::Scheduled { effect, .. } => (b"scheduled ", Some(effect)),
        Note::Fired { effect } => (b"fired ", Some(effect)),
        Note::Ignored { field } => (b"ignored ", Some(field)),
        Note::BadWidth => (b"bad width", None),
        Note::Hole => (b"hole", None),
        Note::Reserved { .. } => (b"reserved bits", None),
        Note::Truncated => (b"truncated", None),
    };
    line.bytes(word);
    if let Some(name) = name {
        line.str(name, MAX_NAME);
    }
}

/// One instant event on the interrupt track per interrupt note, as many as fit (each is
/// complete or absent).
fn irq_events(line: &mut LineBuf<'_>, seq: u64, t_ns: u64, device: &str, notes: &[Note<'_>]) {
    for n in notes {
        let Note::Irq { name, asserted } = *n else {
            continue;
        };
        let mark = line.len;
        perfetto_prefix(line, TID_IRQ, t_ns);
        line.lit(b"\"name\":\"");
        line.str(device, MAX_NAME);
        line.lit(b": ");
        line.str(name, MAX_NAME);
        if asserted {
            line.lit(b" asserted");
        } else {
            line.lit(b" deasserted");
        }
        line.lit(b"\",\"args\":{\"seq\":");
        line.dec(seq);
        line.lit(b",\"device\":\"");
        line.str(device, MAX_NAME);
        line.lit(b"\"}}");
        if line.rolled_back(mark) {
            mmiolab_bus::log_limited!(
                log::Level::Debug,
                "trace: interrupt events of record {seq} dropped, line too long"
            );
            return;
        }
    }
}

/// How much of the trace [`TraceFile`] keeps in memory before writing.
const TRACE_BUFFER: usize = 1 << 16;
// A line is formatted in the buffer's free room, so the longest must fit an empty one.
const _: () = assert!(RECORD_LINE <= TRACE_BUFFER && GENERIC_LINE <= RECORD_LINE);

/// Where a trace is written. A store that can be cut back after a partial write (a regular
/// file) keeps only whole records when a write fails part-way, so it stays a valid trace;
/// one that cannot (a pipe, a terminal, a writer in memory) keeps what was written.
pub trait TraceStore: Write + Send {
    /// Cuts the store back to its first `len` bytes, if it can.
    fn cut(&mut self, len: u64) -> io::Result<()> {
        let _ = len;
        Ok(())
    }
}

impl TraceStore for std::fs::File {
    fn cut(&mut self, len: u64) -> io::Result<()> {
        // A FIFO or a character device given as the trace file cannot be cut.
        if self.metadata()?.is_file() {
            self.set_len(len)?;
        }
        Ok(())
    }
}

impl TraceStore for Box<dyn Write + Send> {}

/// For measurements that discard the trace.
impl TraceStore for io::Sink {}

/// The trace file: buffered like a `BufWriter`, but it only ever holds whole records, and
/// a write that fails (a full disk) is cut back to where the failed buffer began, so the
/// file stays a valid trace: every line complete JSON (a Perfetto document a valid, merely
/// unterminated, array), and the records lost are known exactly.
///
/// Lines are formatted straight into the buffer's free room ([`TraceFile::append_with`]):
/// no copy of each line, no `write` call per record; the buffer is written out only
/// between records.
struct TraceFile {
    store: Box<dyn TraceStore>,
    /// `TRACE_BUFFER` bytes, zeroed once; `buf[..len]` are whole records not written yet.
    buf: Box<[u8]>,
    len: usize,
    /// Records in `buf[..len]`.
    pending: u64,
    /// Bytes of the store known to end on a record boundary.
    committed: u64,
}

/// A write of the trace failed: its error, and how many buffered records it lost.
struct Lost {
    error: io::Error,
    records: u64,
}

impl TraceFile {
    /// Buffers records for `store`, which must be empty (just created or truncated).
    fn new(store: Box<dyn TraceStore>) -> TraceFile {
        TraceFile {
            store,
            buf: vec![0; TRACE_BUFFER].into_boxed_slice(),
            len: 0,
            pending: 0,
            committed: 0,
        }
    }

    /// Appends one whole record (one longer than the buffer is written out at once).
    fn append(&mut self, record: &[u8]) -> Result<(), Lost> {
        if self.len + record.len() > self.buf.len() {
            self.write_buffer()?;
        }
        match self.buf.get_mut(self.len..self.len + record.len()) {
            Some(room) => {
                room.copy_from_slice(record);
                self.len += record.len();
                self.pending += 1;
                Ok(())
            }
            None => {
                write_whole(&mut *self.store, record, &mut self.committed).map_err(|error| Lost { error, records: 0 })
            }
        }
    }

    /// Appends one record of at most `max` bytes (at most `RECORD_LINE`), which `fill`
    /// formats in the buffer's free room and whose length it returns.
    #[inline]
    fn append_with(&mut self, max: usize, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<(), Lost> {
        if self.len + max > self.buf.len() {
            self.write_buffer()?;
        }
        let start = self.len;
        if let Some(room) = self.buf.get_mut(start..start + max) {
            self.len = start + fill(room).min(max);
            self.pending += 1;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<(), Lost> {
        let (len, pending) = (self.len, self.pending);
        self.len = 0;
        self.pending = 0;
        // `buf` and `store` are distinct fields: borrow them apart.
        let TraceFile {
            store, buf, committed, ..
        } = self;
        write_whole(&mut **store, buf.get(..len).unwrap_or_default(), committed).map_err(|error| Lost {
            error,
            records: pending,
        })
    }

    fn flush(&mut self) -> Result<(), Lost> {
        if self.len > 0 {
            self.write_buffer()?;
        }
        self.store.flush().map_err(|error| Lost { error, records: 0 })
    }
}

/// Writes `records` (whole records) to `store`, whose first `committed` bytes end on a
/// record boundary; if that fails, cuts the store back to those bytes and returns the error.
fn write_whole(store: &mut dyn TraceStore, records: &[u8], committed: &mut u64) -> io::Result<()> {
    let mut done = 0;
    while let Some(rest) = records.get(done..).filter(|rest| !rest.is_empty()) {
        let e = match store.write(rest) {
            Ok(0) => io::ErrorKind::WriteZero.into(),
            Ok(n) => {
                done += n;
                continue;
            }
            // An interrupted write to a pipe: the VMM interrupts vCPU threads only to
            // stop them, and this one was waiting for a reader that did not read.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => io::Error::new(
                e.kind(),
                "interrupted while waiting for the trace's reader, which had stopped reading",
            ),
            Err(e) => e,
        };
        // If even the cut fails, the error that matters is still the write's.
        let _ = store.cut(*committed);
        return Err(e);
    }
    *committed += records.len() as u64;
    Ok(())
}

/// Calls `put` with `s` JSON-escaped, piece by piece, stopping before the escaped text would
/// pass `max` bytes (never inside a character) or when `put` refuses a piece.
fn escape(s: &str, max: usize, mut put: impl FnMut(&[u8]) -> bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut written = 0;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: Option<([u8; 6], usize)> = match b {
            b'"' | b'\\' => Some(([b'\\', b, 0, 0, 0, 0], 2)),
            0..0x20 => Some((
                [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ],
                6,
            )),
            _ => None,
        };
        let cost = escaped.map_or(1, |(_, n)| n);
        // Only a character boundary may end the text: the bytes of a multi-byte character
        // are all >= 0x80, so they never need escaping and are copied together.
        if s.is_char_boundary(i) && written + cost > max {
            let _ = put(bytes.get(start..i).unwrap_or_default());
            return;
        }
        if let Some((esc, n)) = escaped {
            if !put(bytes.get(start..i).unwrap_or_default()) || !put(esc.get(..n).unwrap_or_default()) {
                return;
            }
            start = i + 1;
        }
        written += cost;
    }
    let _ = put(bytes.get(start..).unwrap_or_default());
}

/// A line being formatted in place, in the trace file's own buffer: formatting a trace line
/// never allocates, and the finished line is not copied again. Literal pieces are copied
/// with their length known at compile time, so they become a few stores rather than
/// `memcpy` calls.
///
/// Writes stop at `limit`: a piece that does not fit is dropped and `overflow` set. The
/// variable-length parts (fields, effects) are written with room reserved for the closing
/// brackets and roll back to their last complete element, so the line stays valid JSON.
struct LineBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
    overflow: bool,
}

impl<'a> LineBuf<'a> {
    /// An empty line that may fill all of `buf`.
    fn over(buf: &'a mut [u8]) -> Self {
        let limit = buf.len();
        LineBuf {
            buf,
            len: 0,
            limit,
            overflow: false,
        }
    }

    /// Keeps the last `n` bytes free (for closing what is open).
    fn reserve(&mut self, n: usize) {
        self.limit = self.buf.len().saturating_sub(n);
    }

    /// Makes the whole buffer usable again.
    fn unreserve(&mut self) {
        self.limit = self.buf.len();
    }

    /// If a write since `mark` did not fit, cuts back to `mark` and says so.
    fn rolled_back(&mut self, mark: usize) -> bool {
        if self.overflow {
            self.len = mark;
            self.overflow = false;
            true
        } else {
            false
        }
    }

    fn last(&self) -> Option<u8> {
        self.len.checked_sub(1).and_then(|i| self.buf.get(i).copied())
    }

    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.len;
        let end = start + n;
        if end > self.limit {
            self.overflow = true;
            return None;
        }
        self.len = end;
        // limit <= the buffer's length, so the range is inside it.
        self.buf.get_mut(start..end)
    }

    fn lit<const L: usize>(&mut self, s: &[u8; L]) {
        if let Some(dst) = self.room(L) {
            dst.copy_from_slice(s);
        }
    }

    fn bytes(&mut self, s: &[u8]) {
        if let Some(dst) = self.room(s.len()) {
            dst.copy_from_slice(s);
        }
    }

    /// `s`, JSON-escaped, at most about `max` bytes. If it does not fit, nothing of it is
    /// written and `overflow` is set.
    fn str(&mut self, s: &str, max: usize) {
        // Names are nearly always plain identifiers: copy them whole.
        if s.len() <= max && s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.bytes(s.as_bytes());
            return;
        }
        let mark = self.len;
        escape(s, max, |piece| {
            self.bytes(piece);
            !self.overflow
        });
        if self.overflow {
            self.len = mark;
        }
    }

    fn digit(&mut self, d: u64) {
        if let Some(dst) = self.room(1) {
            dst[0] = b'0' + (d % 10) as u8;
        }
    }

    fn hex(&mut self, v: u64) {
        let digits = ((64 - v.leading_zeros()).div_ceil(4)).max(1) as usize;
        if let Some(dst) = self.room(2 + digits) {
            write_hex(dst, v);
        }
    }

    /// Two digits per division (a table of "00".."99"), straight into the line: `seq` and
    /// `t_ns` are on every line.
    fn dec(&mut self, v: u64) {
        let digits = v.checked_ilog10().map_or(1, |l| l as usize + 1);
        if let Some(dst) = self.room(digits) {
            write_dec(dst, v);
        }
    }

    #[cfg(test)]
    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_bus::BusBuilder;
    use mmiolab_devices::{ManualClock, RegFile};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl TraceStore for Sink {}

    impl Sink {
        /// What `t` wrote so far (flushed first: the tracer buffers).
        fn text(&self, t: &Tracer) -> String {
            t.flush().unwrap();
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// A bus with a generic device `dev "q"` at 0xd0000000 and a device `uart@d0001000`
    /// (self-traced in the tests that say so) at 0xd0001000.
    fn tracer(options: TraceOptions) -> (Tracer, Sink, Arc<ManualClock>, RegionId) {
        let mut b = BusBuilder::new();
        b.add_mmio_device(
            None,
            "dev \"q\"",
            0xd000_0000,
            0x100,
            Arc::new(RegFile::new(0x100, None)),
        )
        .unwrap();
        let uart = b
            .add_mmio_device(
                None,
                "uart@d0001000",
                0xd000_1000,
                0x100,
                Arc::new(RegFile::new(0x100, None)),
            )
            .unwrap();
        let sink = Sink::default();
        let clock = Arc::new(ManualClock::new(1500));
        let t = Tracer::new(Arc::new(b.build()), Box::new(sink.clone()), clock.clone(), &options);
        (t, sink, clock, uart)
    }

    fn jsonl() -> TraceOptions {
        TraceOptions::default()
    }

    const FIELDS: &[FieldValue<'static>] = &[
        FieldValue {
            name: "EN",
            value: 1,
            enum_name: None,
        },
        FieldValue {
            name: "MODE",
            value: 2,
            enum_name: Some("FAST"),
        },
    ];

    fn record<'a>(register: Option<&'a str>, notes: &'a [Note<'a>]) -> AccessRecord<'a> {
        AccessRecord {
            space: Space::Mmio,
            dir: Dir::Write,
            addr: 0xd000_1004,
            offset: 4,
            width: 4,
            value: 0x5,
            device: "uart@d0001000",
            register,
            fields: FIELDS,
            notes,
        }
    }

    #[test]
    fn numbers_are_written_in_full() {
        for v in [
            0,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            12_345,
            305_240_392,
            u64::MAX - 1,
            u64::MAX,
            0x10,
            0xfeb0_0010,
            0xffff_ffff,
            1 << 32,
            0x0123_4567_89ab_cdef,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
        ]
        .into_iter()
        .chain((0..64).flat_map(|i| {
            [
                1u64 << i,
                (1u64 << i) - 1,
                10u64.saturating_pow(i / 3).saturating_add(i as u64 % 3),
            ]
        })) {
            let mut store = [0u8; 64];
            let mut line = LineBuf::over(&mut store);
            line.dec(v);
            line.lit(b" ");
            line.hex(v);
            assert_eq!(
                std::str::from_utf8(line.as_slice()).ok(),
                Some(format!("{v} {v:#x}").as_str())
            );
            let mut buf = [0u8; ACCESS_HEAD];
            let mut head = Head { buf: &mut buf, n: 0 };
            head.dec(v);
            head.lit(b" ");
            head.hex(v);
            let n = head.n;
            assert_eq!(
                std::str::from_utf8(&buf[..n]).ok(),
                Some(format!("{v} {v:#x}").as_str())
            );
            assert_eq!(dec_digits(v), v.to_string().len());
        }
    }

    #[test]
    fn access_heads_are_what_the_pieces_write() {
        // The one-check head of a device's access line against the piece-by-piece writers
        // it replaces: plain, escaped and over-long names, no register, every space and
        // direction, no vCPU, numbers at their edges, with and without fields and notes.
        let long = "x".repeat(MAX_NAME + 7);
        let escaped_long = "\"".repeat(MAX_NAME);
        let names = [
            "bench-mmio",
            "a",
            "",
            "SCRATCH[12]",
            "é\"q\\\n\u{1}",
            long.as_str(),
            escaped_long.as_str(),
        ];
        let fields = [FieldValue {
            name: "DONE",
            value: 1,
            enum_name: Some("FINISHED"),
        }];
        let notes = [Note::Underflow { fifo: "rx" }];
        let mut cases = 0;
        for (k, device) in names.iter().enumerate() {
            for register in [None, Some(names[(k + 3) % names.len()])] {
                for (space, op, vcpu, n) in [
                    (AddressSpace::Mmio, Op::Write, Some(0), 0u64),
                    (AddressSpace::Mmio, Op::Read, None, 9),
                    (AddressSpace::Pio, Op::Write, Some(u32::MAX), 10),
                    (AddressSpace::Pio, Op::Read, Some(7), u64::MAX),
                ] {
                    for (f, e) in [
                        (&fields[..0], &notes[..0]),
                        (&fields[..], &notes[..0]),
                        (&fields[..0], &notes[..]),
                    ] {
                        let a = Access {
                            vcpu,
                            space,
                            op,
                            addr: n ^ 0xfeb0_0010,
                            width: n % 9,
                            value: n,
                        };
                        let record = AccessRecord {
                            space: Space::Mmio,
                            dir: Dir::Write,
                            addr: a.addr,
                            offset: n >> 3,
                            width: 4,
                            value: n,
                            device,
                            register,
                            fields: f,
                            notes: e,
                        };
                        let mut want_store = [0u8; RECORD_LINE];
                        let mut want = LineBuf::over(&mut want_store);
                        jsonl_prefix(&mut want, n, n / 7, b"access");
                        access_keys(&mut want, &a);
                        want.lit(b",\"device\":\"");
                        want.str(device, MAX_NAME);
                        want.lit(b"\",\"offset\":\"");
                        want.hex(record.offset);
                        want.lit(b"\",\"reg\":");
                        opt_str(&mut want, register);
                        let full = fields_and_effects(&mut want, f, e);
                        close(&mut want, full, b"]}\n");
                        let mut got_store = [0u8; RECORD_LINE];
                        let mut got = LineBuf::over(&mut got_store);
                        if !access_head(&mut got, n, n / 7, &a, &record) {
                            let full = fields_and_effects(&mut got, f, e);
                            close(&mut got, full, b"]}\n");
                        }
                        assert_eq!(
                            String::from_utf8_lossy(got.as_slice()),
                            String::from_utf8_lossy(want.as_slice())
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, names.len() * 2 * 4 * 3);
    }

    #[test]
    fn plain_names_are_told_from_names_to_escape() {
        for len in 0..=17 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'A'; len];
                    s[pos] = b;
                    let plain = s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
                    assert_eq!(json_plain(&s), plain, "{s:?}");
                    let mut dst = vec![0u8; len];
                    copy_short(&mut dst, &s);
                    assert_eq!(dst, s);
                }
            }
        }
    }

    #[test]
    fn generic_lines_are_json_with_device_and_offset() {
        let (t, sink, clock, _) = tracer(jsonl());
        t.record(
            1,
            AddressSpace::Mmio,
            Op::Write,
            0xd000_0010,
            &[0x78, 0x56, 0x34, 0x12],
            Routed::Device,
        );
        clock.advance(250);
        t.record(0, AddressSpace::Pio, Op::Read, 0x80, &[0xff], Routed::Unmapped);
        t.record(0, AddressSpace::Mmio, Op::Read, 0, &[0; 8], Routed::Unmapped);
        assert_eq!(
            sink.text(&t),
            "{\"v\":2,\"seq\":0,\"t_ns\":1500,\"kind\":\"access\",\"vcpu\":1,\"space\":\"mmio\",\"op\":\"write\",\"addr\":\"0xd0000010\",\"width\":4,\"value\":\"0x12345678\",\"device\":\"dev \\\"q\\\"\",\"offset\":\"0x10\"}\n\
             {\"v\":2,\"seq\":1,\"t_ns\":1750,\"kind\":\"access\",\"vcpu\":0,\"space\":\"pio\",\"op\":\"read\",\"addr\":\"0x80\",\"width\":1,\"value\":\"0xff\",\"device\":null,\"offset\":null}\n\
             {\"v\":2,\"seq\":2,\"t_ns\":1750,\"kind\":\"access\",\"vcpu\":0,\"space\":\"mmio\",\"op\":\"read\",\"addr\":\"0x0\",\"width\":8,\"value\":\"0x0\",\"device\":null,\"offset\":null}\n"
        );
    }

    #[test]
    fn self_traced_devices_write_their_records_instead_of_the_generic_line() {
        let (mut t, sink, _, uart) = tracer(jsonl());
        t.set_self_traced(AddressSpace::Mmio, uart);
        t.record(
            0,
            AddressSpace::Mmio,
            Op::Write,
            0xd000_1004,
            &[5, 0, 0, 0],
            Routed::Device,
        );
        assert_eq!(sink.text(&t), "", "no generic line for a self-traced device");
        let notes = [
            Note::Cleared {
                field: "STATUS.DONE",
                bits: 1,
            },
            Note::Fifo { fifo: "rx", level: 3 },
            Note::Irq {
                name: "rx",
                asserted: true,
            },
            Note::Scheduled {
                effect: "done",
                due_ns: Some(123),
            },
            Note::Scheduled {
                effect: "later",
                due_ns: None,
            },
            Note::BadWidth,
            Note::Reserved { bits: 0xf0 },
        ];
        set_current_vcpu(Some(2));
        t.access(&record(Some("CTRL"), &notes));
        set_current_vcpu(None);
        t.event(&EventRecord {
            device: "uart@d0001000",
            notes: &[Note::Fired { effect: "done" }, Note::Overflow { fifo: "rx" }],
        });
        t.access(&record(None, &[]));
        assert_eq!(
            sink.text(&t),
            "{\"v\":2,\"seq\":0,\"t_ns\":1500,\"kind\":\"access\",\"vcpu\":2,\"space\":\"mmio\",\"op\":\"write\",\"addr\":\"0xd0001004\",\"width\":4,\"value\":\"0x5\",\"device\":\"uart@d0001000\",\"offset\":\"0x4\",\"reg\":\"CTRL\",\
\"fields\":{\"EN\":{\"value\":\"0x1\"},\"MODE\":{\"value\":\"0x2\",\"enum\":\"FAST\"}},\
\"effects\":[{\"cleared\":\"STATUS.DONE\",\"bits\":\"0x1\"},{\"fifo\":\"rx\",\"level\":3},{\"irq\":\"rx\",\"asserted\":true},{\"scheduled\":\"done\",\"due_ns\":123},{\"scheduled\":\"later\",\"due_ns\":null},{\"bad_width\":true},{\"reserved\":\"0xf0\"}]}\n\
{\"v\":2,\"seq\":1,\"t_ns\":1500,\"kind\":\"event\",\"vcpu\":null,\"device\":\"uart@d0001000\",\"effects\":[{\"fired\":\"done\"},{\"overflow\":\"rx\"}]}\n\
{\"v\":2,\"seq\":2,\"t_ns\":1500,\"kind\":\"access\",\"vcpu\":null,\"space\":\"mmio\",\"op\":\"write\",\"addr\":\"0xd0001004\",\"width\":4,\"value\":\"0x5\",\"device\":\"uart@d0001000\",\"offset\":\"0x4\",\"reg\":null,\
\"fields\":{\"EN\":{\"value\":\"0x1\"},\"MODE\":{\"value\":\"0x2\",\"enum\":\"FAST\"}},\"effects\":[]}\n"
        );
    }

    #[test]
    fn every_note_kind_is_valid_json() {
        let (t, sink, _, _) = tracer(jsonl());
        let notes = [
            Note::Cleared { field: "A.B", bits: 2 },
            Note::Set { field: "A.B", bits: 2 },
            Note::Fifo { fifo: "f", level: 0 },
            Note::Overflow { fifo: "f" },
            Note::Underflow { fifo: "f" },
            Note::Irq {
                name: "i",
                asserted: false,
            },
            Note::Scheduled {
                effect: "e",
                due_ns: Some(u64::MAX),
            },
            Note::Fired { effect: "e" },
            Note::BadWidth,
            Note::Hole,
            Note::Reserved { bits: 0 },
            Note::Ignored { field: "A.RO" },
            Note::Truncated,
        ];
        t.event(&EventRecord {
            device: "uart@d0001000",
            notes: &notes,
        });
        let v: serde_json::Value = serde_json::from_str(&sink.text(&t)).unwrap();
        let effects = v["effects"].as_array().unwrap();
        assert_eq!(effects.len(), notes.len());
        assert_eq!(effects[1], serde_json::json!({"set": "A.B", "bits": "0x2"}));
        assert_eq!(effects[5], serde_json::json!({"irq": "i", "asserted": false}));
        assert_eq!(effects[11], serde_json::json!({"ignored": "A.RO"}));
    }

    #[test]
    fn overlong_records_are_cut_to_valid_json_and_say_so() {
        let (t, sink, _, _) = tracer(jsonl());
        // Names cut at a character boundary, never inside an escape.
        let long = "é\"".repeat(100);
        let fields: Vec<FieldValue<'_>> = (0..100)
            .map(|_| FieldValue {
                name: &long,
                value: 1,
                enum_name: Some(&long),
            })
            .collect();
        let notes: Vec<Note<'_>> = (0..100).map(|_| Note::Fired { effect: &long }).collect();
        t.access(&AccessRecord {
            fields: &fields,
            notes: &notes,
            device: &long,
            register: Some(&long),
            ..record(None, &[])
        });
        let text = sink.text(&t);
        assert!(text.ends_with("{\"truncated\":true}]}\n"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let device = v["device"].as_str().unwrap();
        assert!(device.len() <= MAX_NAME && device.starts_with("é\"é"), "{device}");
        assert!(!v["fields"].as_object().unwrap().is_empty());
        assert_eq!(v["effects"].as_array().unwrap().last().unwrap()["truncated"], true);
    }

    #[test]
    fn filters_keep_matching_devices_and_registers() {
        let filters = ["dev \"q\"", "uart.CH"]
            .map(|f| f.parse::<TraceFilter>().unwrap())
            .to_vec();
        let (mut t, sink, _, uart) = tracer(TraceOptions {
            format: TraceFormat::Jsonl,
            filters,
        });
        t.set_self_traced(AddressSpace::Mmio, uart);
        assert!(t.wants("uart@d0001000", None));
        assert!(t.wants("uart@d0001000", Some("CH[3]")));
        assert!(!t.wants("uart@d0001000", Some("CHX")));
        assert!(!t.wants("uart@d0001000", Some("CTRL")));
        assert!(!t.wants("other", None));
        t.access(&record(Some("CTRL"), &[]));
        t.access(&record(Some("CH[1]"), &[]));
        t.record(0, AddressSpace::Mmio, Op::Read, 0xd000_0000, &[0], Routed::Device);
        t.record(0, AddressSpace::Mmio, Op::Read, 0xe000_0000, &[0], Routed::Unmapped);
        let lines: Vec<serde_json::Value> = sink
            .text(&t)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kept: Vec<(&str, &serde_json::Value)> = lines
            .iter()
            .map(|l| (l["device"].as_str().unwrap(), &l["reg"]))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("uart@d0001000", &serde_json::Value::from("CH[1]")),
                ("dev \"q\"", &serde_json::Value::Null)
            ]
        );
        assert_eq!(lines[1]["seq"], 1, "seq counts written lines only");
        assert!("".parse::<TraceFilter>().is_err());
        assert!("uart.".parse::<TraceFilter>().is_err());
    }

    /// A Perfetto header names every device: with many it is longer than the buffer, and is
    /// written out whole, before and in order with the lines after it.
    #[test]
    fn a_record_longer_than_the_buffer_is_written_whole() {
        let mut b = BusBuilder::new();
        let devices = 2 * TRACE_BUFFER / 150;
        for i in 0..devices as u64 {
            b.add_mmio_device(
                None,
                &format!("dev{i}"),
                0xd000_0000 + i * 0x100,
                0x100,
                Arc::new(RegFile::new(0x100, None)),
            )
            .unwrap();
        }
        let sink = Sink::default();
        let options = TraceOptions {
            format: TraceFormat::Perfetto,
            filters: Vec::new(),
        };
        let t = Tracer::new(
            Arc::new(b.build()),
            Box::new(sink.clone()),
            Arc::new(ManualClock::new(0)),
            &options,
        );
        t.record(0, AddressSpace::Mmio, Op::Read, 0xd000_0000, &[0], Routed::Device);
        t.finish().unwrap();
        let text = sink.text(&t);
        assert!(text.len() > TRACE_BUFFER, "{}", text.len());
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let events = doc.as_array().unwrap();
        assert_eq!(
            events.iter().filter(|e| e["name"] == "thread_name").count(),
            devices + 3
        );
        assert_eq!(events.last().unwrap()["name"], "read 0x0");
    }

    #[test]
    fn test_boundaries_are_lines_of_their_own_in_both_formats() {
        // A filter that keeps nothing else: boundaries are always kept.
        let (t, sink, clock, _) = tracer(TraceOptions {
            format: TraceFormat::Jsonl,
            filters: vec!["nothing".parse().unwrap()],
        });
        set_current_vcpu(Some(1));
        t.test_boundary("io \"x\"", true);
        t.record(1, AddressSpace::Mmio, Op::Read, 0xd000_0000, &[0], Routed::Device);
        clock.set(2500);
        t.test_boundary("io \"x\"", false);
        set_current_vcpu(None);
        assert_eq!(
            sink.text(&t),
            concat!(
                r#"{"v":2,"seq":0,"t_ns":1500,"kind":"test","vcpu":1,"test":"io \"x\"","phase":"begin"}"#,
                "\n",
                r#"{"v":2,"seq":1,"t_ns":2500,"kind":"test","vcpu":1,"test":"io \"x\"","phase":"end"}"#,
                "\n"
            )
        );
        let (t, sink, _, _) = tracer(TraceOptions {
            format: TraceFormat::Perfetto,
            filters: Vec::new(),
        });
        t.test_boundary("t1", true);
        t.finish().unwrap();
        let doc: serde_json::Value = serde_json::from_str(&sink.text(&t)).unwrap();
        let event = doc.as_array().unwrap().iter().find(|e| e["ph"] == "i").unwrap();
        assert_eq!(event["name"], "test begin t1");
        assert_eq!(event["tid"], TID_OTHER);
        assert_eq!(event["args"]["seq"], 0);
    }

    #[test]
    fn perfetto_output_is_a_trace_event_document() {
        let (mut t, sink, clock, uart) = tracer(TraceOptions {
            format: TraceFormat::Perfetto,
            filters: Vec::new(),
        });
        t.set_self_traced(AddressSpace::Mmio, uart);
        t.record(
            1,
            AddressSpace::Mmio,
            Op::Write,
            0xd000_0010,
            &[1, 0, 0, 0],
            Routed::Device,
        );
        clock.set(2_000_123);
        t.record(0, AddressSpace::Pio, Op::Read, 0x80, &[0xff], Routed::Unmapped);
        let notes = [Note::Irq {
            name: "rx",
            asserted: true,
        }];
        t.access(&record(Some("CTRL"), &notes));
        t.event(&EventRecord {
            device: "uart@d0001000",
            notes: &[Note::Fired { effect: "done" }],
        });
        // Unfinished (mmiolab killed): the array has no closing bracket, which readers
        // of the format accept; adding it gives valid JSON.
        let unfinished = sink.text(&t);
        serde_json::from_str::<serde_json::Value>(&format!("{unfinished}]")).unwrap();
        t.finish().unwrap();
        t.access(&record(Some("CTRL"), &[]));
        let doc: serde_json::Value = serde_json::from_str(&sink.text(&t)).unwrap();
        let events = doc.as_array().unwrap();
        let track = |name: &str| {
            events
                .iter()
                .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["args"]["name"] == name)
                .map(|e| e["tid"].clone())
                .unwrap()
        };
        let (dev, uart_tid, irq, none) = (
            track("dev \"q\""),
            track("uart@d0001000"),
            track("interrupts"),
            track("no device"),
        );
        let instants: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "i").collect();
        assert_eq!(instants.len(), 5, "nothing written after finish: {instants:?}");
        assert_eq!(instants[0]["tid"], dev);
        assert_eq!(instants[0]["name"], "write 0x10");
        assert_eq!(instants[0]["ts"], 1.5);
        assert_eq!(instants[0]["args"]["value"], "0x1");
        assert_eq!(instants[1]["tid"], none);
        assert_eq!(instants[1]["ts"], 2000.123);
        assert_eq!(instants[2]["tid"], uart_tid);
        assert_eq!(instants[2]["name"], "write CTRL");
        assert_eq!(instants[2]["args"]["fields"]["MODE"]["enum"], "FAST");
        assert_eq!(instants[3]["tid"], irq);
        assert_eq!(instants[3]["name"], "uart@d0001000: rx asserted");
        assert_eq!(instants[3]["args"]["seq"], instants[2]["args"]["seq"]);
        assert_eq!(instants[4]["tid"], uart_tid);
        assert_eq!(instants[4]["name"], "fired done");
        assert_eq!(instants[4]["args"]["seq"], 3);
    }

    /// A disk that fills up: takes `room` bytes (the last write short), then fails.
    #[derive(Default)]
    struct SmallDisk {
        data: Arc<Mutex<Vec<u8>>>,
        room: usize,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut data = self.data.lock().unwrap();
            let n = buf.len().min(self.room.saturating_sub(data.len()));
            if n == 0 {
                return Err(io::Error::other("No space left on device"));
            }
            data.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl TraceStore for SmallDisk {
        fn cut(&mut self, len: u64) -> io::Result<()> {
            self.data.lock().unwrap().truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_leaves_only_whole_records_in_the_file() {
        for format in [TraceFormat::Jsonl, TraceFormat::Perfetto] {
            let (mut b, data) = (BusBuilder::new(), Arc::new(Mutex::new(Vec::new())));
            b.add_mmio_device(None, "dev", 0xd000_0000, 0x100, Arc::new(RegFile::new(0x100, None)))
                .unwrap();
            let disk = SmallDisk {
                data: data.clone(),
                room: 150_001,
            };
            let options = TraceOptions {
                format,
                filters: Vec::new(),
            };
            let t = Tracer::new(
                Arc::new(b.build()),
                Box::new(disk),
                Arc::new(ManualClock::new(0)),
                &options,
            );
            for i in 0..5_000u64 {
                t.record(
                    0,
                    AddressSpace::Mmio,
                    Op::Write,
                    0xd000_0000,
                    &i.to_le_bytes(),
                    Routed::Device,
                );
            }
            let e = t.finish().unwrap_err().to_string();
            assert!(e.starts_with("No space left on device ("), "{e}");
            let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
            let seqs: Vec<u64> = match format {
                TraceFormat::Jsonl => {
                    assert!(text.ends_with('\n'), "cut at a line's end");
                    text.lines()
                        .map(|l| {
                            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                                .as_u64()
                                .unwrap()
                        })
                        .collect()
                }
                TraceFormat::Perfetto => {
                    let doc: serde_json::Value = serde_json::from_str(&format!("{text}]")).unwrap();
                    doc.as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["ph"] == "i")
                        .map(|e| e["args"]["seq"].as_u64().unwrap())
                        .collect()
                }
            };
            assert!(seqs.len() > 100 && seqs.len() < 5_000, "{}", seqs.len());
            assert!(
                seqs.iter().enumerate().all(|(i, &s)| s == i as u64),
                "in order, none missing"
            );
        }
    }

    /// Accepts the first `ok` writes, then fails every one; keeps what it took and counts
    /// the writes tried.
    struct Failing {
        ok: usize,
        tried: Arc<Mutex<usize>>,
        took: Sink,
    }

    impl TraceStore for Failing {}

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            *self.tried.lock().unwrap() += 1;
            if self.ok == 0 {
                return Err(io::Error::other("disk full"));
            }
            self.ok -= 1;
            self.took.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_first_write_failure_stops_the_run_and_nothing_is_written_after_it() {
        let bus = Arc::new(BusBuilder::new().build());
        let (tried, took) = (Arc::new(Mutex::new(0)), Sink::default());
        let store = Failing {
            ok: 1,
            tried: tried.clone(),
            took: took.clone(),
        };
        let mut t = Tracer::new(
            bus,
            Box::new(store),
            Arc::new(ManualClock::new(0)),
            &TraceOptions::default(),
        );
        let control = Arc::new(VmControl::new().unwrap());
        t.set_stop_on_failure(control.clone(), "the trace");
        // Enough records to fill the buffer three times: its first write out succeeds, the
        // second fails.
        let records = 3 * TRACE_BUFFER / 100;
        for _ in 0..records {
            t.record(0, AddressSpace::Pio, Op::Read, 0x80, &[0xff], Routed::Unmapped);
        }
        assert_eq!(
            control.reason(),
            Some(StopReason::Output(OutputFailure {
                output: "the trace".to_owned(),
                cause: "disk full".to_owned(),
                closed: false
            }))
        );
        assert_eq!(*tried.lock().unwrap(), 2, "nothing tried after the failure");
        let e = t.finish().unwrap_err();
        assert_eq!(*tried.lock().unwrap(), 2, "nor at the end");
        let written = took.0.lock().unwrap().iter().filter(|&&b| b == b'\n').count();
        assert!(written > 100, "{written}");
        assert_eq!(
            e.to_string(),
            format!("disk full ({} records not written)", records - written),
            "each record either in the file or counted"
        );
        t.finish().unwrap();
    }
}
