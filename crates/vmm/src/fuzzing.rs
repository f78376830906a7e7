//! The bodies of the fuzz targets of the VMM (fuzz/fuzz_targets/*.rs), here so that
//! `cargo fuzz` and the corpus replay test (tests/fuzz_corpus.rs, on the stable toolchain)
//! run exactly the same code. docs/fuzzing.md says how to run them.
//!
//! Each body takes arbitrary bytes and panics only when an invariant breaks:
//!
//! - [`machine_file`]: a machine file (up to the first NUL) and a description file it may
//!   name as `fuzz.toml` (after the NUL): parsed and checked; a machine that passes is
//!   built into a [`Platform`] (bus tree, devices, descriptions) and a device tree.
//! - [`payload`]: the bytes as a firmware or kernel (ELF, flat binary, bzImage), with an
//!   initrd, checked against a machine of some size; a payload that passes loads into
//!   guest memory of that size.
//! - [`trace_writer`]: the trace writer fed arbitrary device, register, field, effect and
//!   rule names and values, in both formats: every line is UTF-8 and parses as JSON.
//! - [`bus_devices`]: a bus tree built from the input (containers, windows, every device
//!   model, every bundled description) driven by a sequence of accesses of any address and
//!   width, time advances that run delayed effects, host FIFO traffic and resets; unmapped
//!   accesses read all ones, routing agrees with the tree, the trace stays valid JSON.
//!
//! The bodies that need files (a machine file names its descriptions and payloads by path)
//! write them into a scratch directory of their own under the system's temporary directory,
//! one per thread, and never read or write anything else.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mmiolab_bus::{AddressSpace, Bus, BusBuilder, LastHit, RegionId, RegionKind, ResourceTree, Routed};
use mmiolab_devices::{
    AccessRecord, Counter, Dir, EXIT_PORT, EventRecord, ExitDevice, FieldValue, I8042, IrqLine, ManualClock, Note,
    PvPanic, RegFile, Scheduler, Serial, Space, SysCtl, TraceSink, VmControl,
};
use mmiolab_regmodel::DescribedDevice;
use mmiolab_regmodel::compile::Model;
use mmiolab_regmodel::fuzzing::Bytes;
use vm_device::bus::{MmioAddress, MmioAddressOffset, PioAddress, PioAddressOffset};
use vm_device::{DeviceMmio, DevicePio};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::boot::Payload;
use crate::config::{FifoHost, MachineConfig, region_name_error};
use crate::layout;
use crate::platform::Platform;
use crate::trace::{FindingLine, Op, TraceFilter, TraceFormat, TraceOptions, TraceStore, Tracer};

/// Most operations [`trace_writer`] runs from one input.
pub const MAX_TRACE_OPS: usize = 512;
/// Most operations [`bus_devices`] runs from one input.
pub const MAX_BUS_OPS: usize = 2048;
/// Most regions [`bus_devices`] adds to the bus from one input.
pub const MAX_REGIONS: usize = 16;

/// This thread's scratch directory (created on first use, with the fixed files in it).
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: PathBuf = {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("mmiolab-fuzz-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for (name, text) in FIXED_FILES {
                write(&dir.join(name), text.as_bytes());
            }
            dir
        };
    }
    DIR.with(Clone::clone)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Files a fuzzed machine file may name: the fuzzing descriptions of mmiolab-regmodel, an
/// overlay and an SVD file. `fuzz.toml` is the input's own description.
const FIXED_FILES: [(&str, &str); 6] = [
    ("uart.toml", mmiolab_regmodel::fuzzing::UART),
    ("banked.toml", mmiolab_regmodel::fuzzing::BANKED),
    ("memory.toml", mmiolab_regmodel::fuzzing::MEMORY),
    ("storm.toml", mmiolab_regmodel::fuzzing::STORM),
    (
        "overlay.toml",
        "[device]\nname = \"ov\"\n[[register]]\nname = \"EXTRA\"\noffset = 0x200\n",
    ),
    ("toy.svd", include_str!("../../regmodel/tests/data/toy.svd")),
];

/// The description [`machine_file`] writes from its input.
const FUZZ_DESCRIPTION: &str = "fuzz.toml";

/// Whether `path` is one of the files of the scratch directory, named as a bare file name.
fn is_scratch_file(path: &Path) -> bool {
    let mut parts = path.components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(name)), None) => {
            name == FUZZ_DESCRIPTION || FIXED_FILES.iter().any(|(n, _)| name == *n)
        }
        _ => false,
    }
}

/// Whether building `config` reads and writes only the scratch directory: descriptions and
/// SVD files among its files, FIFO hosts none of files and sockets.
fn builds_in_scratch(config: &MachineConfig) -> bool {
    config.devices.iter().all(|dev| {
        dev.description.as_deref().is_none_or(is_scratch_file)
            && dev.svd.as_ref().is_none_or(|s| is_scratch_file(&s.file))
            && dev.fifo_hosts().is_ok_and(|sides| {
                sides
                    .iter()
                    .all(|(_, _, host)| !matches!(host, FifoHost::File(_) | FifoHost::Unix(_)))
            })
    })
}

/// Target `machine_file`: a machine file up to the first NUL, the description `fuzz.toml`
/// after it. A file that parses passes its own check again and keeps the bounds the check
/// promises; one that only names files of the scratch directory is built into a platform
/// whose device tree must build too.
pub fn machine_file(data: &[u8]) {
    let (text, description) = match data.iter().position(|b| *b == 0) {
        Some(n) => (data.get(..n).unwrap_or_default(), data.get(n + 1..)),
        None => (data, None),
    };
    let dir = scratch();
    let desc_path = dir.join(FUZZ_DESCRIPTION);
    match description {
        Some(d) => write(&desc_path, d),
        None => {
            let _ = std::fs::remove_file(&desc_path);
        }
    }
    let text = String::from_utf8_lossy(text);
    let Ok(config) = MachineConfig::parse(&text, &dir.join("m.toml")) else {
        return;
    };
    if let Err(e) = config.check() {
        panic!("a machine that passed its check fails it again: {e}");
    }
    let m = &config.machine;
    assert!((16..=layout::MAX_MEMORY_MIB).contains(&m.memory_mib));
    assert!(m.vcpus > 0);
    let mut pins = std::collections::HashSet::new();
    for dev in &config.devices {
        assert_eq!(region_name_error(&dev.name), None);
        for &irq in dev.irqs() {
            assert!(irq <= crate::config::MAX_IRQ && !crate::config::RESERVED_IRQS.contains(&irq));
            assert!(pins.insert(irq), "pin {irq} given twice");
        }
    }
    for bus in &config.buses {
        assert_eq!(region_name_error(&bus.name), None);
    }
    let _ = config.input_files();
    let _ = config.fifo_output_files();
    if !builds_in_scratch(&config) {
        return;
    }
    let Ok(platform) = Platform::build(&config, Box::new(std::io::sink())) else {
        return;
    };
    let trees = platform.render_trees();
    for dev in &config.devices {
        assert!(
            trees.contains(dev.name.as_str()),
            "device {} is not in the tree",
            dev.name
        );
    }
    if let Err(e) = crate::fdt::dtb(&config, &platform) {
        panic!("a machine that was built has no device tree: {e}");
    }
    let _ = crate::fdt::dts(&config, &platform);
}

/// Target `payload`: the first byte says what the machine runs (firmware as ELF or flat at
/// a load address, a kernel with or without an initrd and a command line), the next ones how
/// much memory it has; the rest is the file. What [`Payload::prepare`] accepts must lie in
/// RAM above 1 MiB with its entry inside it, and must load into guest memory of that size.
pub fn payload(data: &[u8]) {
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let mem_mib = match b.u8() % 4 {
        0 => 16,
        1 => 64,
        2 => 3 * 1024 + 512,
        _ => u64::from(b.u16()),
    }
    .clamp(16, layout::MAX_MEMORY_MIB);
    let load_addr = match b.u8() % 4 {
        0 => layout::HIMEM_START,
        1 => layout::HIMEM_START + u64::from(b.u16()) * 4096,
        2 => u64::from(b.u32()),
        _ => b.u64(),
    };
    let initrd_len = usize::from(b.u16());
    let dir = scratch();
    write(&dir.join("payload.bin"), b.rest());
    write(&dir.join("initrd.img"), &vec![0xa5; initrd_len]);
    let run = match mode % 5 {
        0 => "firmware = \"payload.bin\"".to_owned(),
        1 => format!("firmware = \"payload.bin\"\nload_addr = {load_addr}"),
        2 => "kernel = \"payload.bin\"".to_owned(),
        3 => "kernel = \"payload.bin\"\ninitrd = \"initrd.img\"".to_owned(),
        _ => "kernel = \"payload.bin\"\ninitrd = \"initrd.img\"\ncmdline = \"console=ttyS0 quiet\"".to_owned(),
    };
    let text = format!("[machine]\nmemory_mib = {mem_mib}\n{run}\n");
    let config = MachineConfig::parse(&text, &dir.join("m.toml"))
        .unwrap_or_else(|e| panic!("the payload machine is refused: {e}\n{text}"));
    let Ok(payload) = Payload::prepare(&config) else {
        return;
    };
    let mem_bytes = config.memory_bytes();
    if let Payload::Firmware(_) = &payload
        && matches!(mode % 5, 0)
    {
        check_elf_placement(&dir.join("payload.bin"), mem_bytes);
    }
    // Loading zeroes what the file does not fill: only for machines that are cheap to fill.
    if mem_mib > 64 || elf_memory(&dir.join("payload.bin")) > 16 << 20 {
        return;
    }
    let ranges: Vec<(GuestAddress, usize)> = layout::ram_regions(mem_bytes)
        .into_iter()
        .filter_map(|(start, size)| usize::try_from(size).ok().map(|s| (start, s)))
        .collect();
    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&ranges) else {
        return;
    };
    if let Err(e) = payload.load(&mem, mem_bytes, None) {
        panic!("a payload that passed its checks does not load: {e}");
    }
}

/// Bytes an ELF image's loadable segments occupy in memory (0 for a file that is none).
fn elf_memory(path: &Path) -> u64 {
    let Ok(mut input) = crate::files::open_input(path, u64::MAX, "") else {
        return 0;
    };
    crate::boot::elf::ElfImage::read(&mut input)
        .map(|image| image.segments.iter().map(|s| s.memsz).fold(0u64, u64::saturating_add))
        .unwrap_or(0)
}

/// Checks, independently of `ElfImage::check`, that an accepted ELF firmware lies in RAM.
fn check_elf_placement(path: &Path, mem_bytes: u64) {
    let Ok(mut input) = crate::files::open_input(path, u64::MAX, "") else {
        panic!("an accepted firmware cannot be opened again");
    };
    let image = crate::boot::elf::ElfImage::read(&mut input).expect("an accepted ELF reads again");
    assert!(!image.segments.is_empty());
    let ram = layout::ram_regions(mem_bytes);
    for s in &image.segments {
        let end = s.paddr.checked_add(s.memsz).expect("segment end overflows");
        assert!(s.paddr >= layout::HIMEM_START, "segment at {:#x} below 1 MiB", s.paddr);
        assert!(
            ram.iter().any(|(base, size)| s.paddr >= base.0 && end <= base.0 + size),
            "segment {:#x}-{end:#x} outside RAM",
            s.paddr
        );
        assert!(s.filesz <= s.memsz);
        assert!(s.offset.checked_add(s.filesz).is_some_and(|e| e <= input.len));
    }
    assert!(
        image
            .segments
            .iter()
            .any(|s| (s.paddr..s.paddr + s.memsz).contains(&image.entry)),
        "entry {:#x} outside the segments",
        image.entry
    );
}

/// A trace output: a shared buffer that, when asked, fails once it holds `limit` bytes
/// (each write is taken whole or refused, as a full disk would).
#[derive(Clone)]
struct TraceBuf {
    bytes: Arc<Mutex<Vec<u8>>>,
    limit: Option<usize>,
}

impl Write for TraceBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.limit.is_some_and(|l| bytes.len() + data.len() > l) {
            return Err(std::io::Error::other("disk full"));
        }
        bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TraceStore for TraceBuf {}

/// Checks what a tracer wrote: UTF-8; in JSON lines, one object per line with `v`, `kind`
/// and a `seq` that grows by one; in Perfetto, when complete, one JSON array of objects.
fn check_trace(bytes: &[u8], format: TraceFormat, complete: bool) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("the trace is not UTF-8: {e}"));
    match format {
        TraceFormat::Jsonl => {
            let mut seq = None;
            for line in text.split_terminator('\n') {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"));
                assert_eq!(v["v"], crate::trace::FORMAT_VERSION, "{line}");
                assert!(v["kind"].is_string(), "{line}");
                let s = v["seq"].as_u64().unwrap_or_else(|| panic!("no seq: {line}"));
                if let Some(prev) = seq {
                    assert_eq!(s, prev + 1, "seq jumps: {line}");
                }
                seq = Some(s);
            }
            assert!(text.is_empty() || text.ends_with('\n'), "the last line is cut");
        }
        TraceFormat::Perfetto if complete => {
            let v: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|e| {
                let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or_default();
                panic!("the Perfetto trace is not JSON: {e}: {line}")
            });
            let events = v.as_array().expect("a Perfetto trace is an array");
            assert!(events.iter().all(serde_json::Value::is_object));
        }
        TraceFormat::Perfetto => {}
    }
}

/// A device that answers every read with zeros and ignores writes.
struct Null;

impl DeviceMmio for Null {
    fn mmio_read(&self, _: MmioAddress, _: MmioAddressOffset, data: &mut [u8]) {
        data.fill(0);
    }

    fn mmio_write(&self, _: MmioAddress, _: MmioAddressOffset, _: &[u8]) {}
}

impl DevicePio for Null {
    fn pio_read(&self, _: PioAddress, _: PioAddressOffset, data: &mut [u8]) {
        data.fill(0);
    }

    fn pio_write(&self, _: PioAddress, _: PioAddressOffset, _: &[u8]) {}
}

fn pick<'s>(pool: &'s [String], b: &mut Bytes<'_>) -> &'s str {
    pool.get(usize::from(b.u8()) % pool.len().max(1))
        .map_or("", String::as_str)
}

fn pick_opt<'s>(pool: &'s [String], b: &mut Bytes<'_>) -> Option<&'s str> {
    let n = b.u8();
    (n & 1 == 1).then(|| {
        pool.get(usize::from(n >> 1) % pool.len().max(1))
            .map_or("", String::as_str)
    })
}

fn note<'s>(pool: &'s [String], b: &mut Bytes<'_>) -> Note<'s> {
    match b.u8() % 13 {
        0 => Note::Cleared {
            field: pick(pool, b),
            bits: b.u64(),
        },
        1 => Note::Set {
            field: pick(pool, b),
            bits: b.u64(),
        },
        2 => Note::Fifo {
            fifo: pick(pool, b),
            level: b.u32(),
        },
        3 => Note::Overflow { fifo: pick(pool, b) },
        4 => Note::Underflow { fifo: pick(pool, b) },
        5 => Note::Irq {
            name: pick(pool, b),
            asserted: b.u8() & 1 == 1,
        },
        6 => Note::Scheduled {
            effect: pick(pool, b),
            due_ns: (b.u8() & 1 == 1).then(|| b.u64()),
        },
        7 => Note::Fired { effect: pick(pool, b) },
        8 => Note::BadWidth,
        9 => Note::Hole,
        10 => Note::Reserved { bits: b.u64() },
        11 => Note::Ignored { field: pick(pool, b) },
        _ => Note::Truncated,
    }
}

fn space_of(b: &mut Bytes<'_>) -> Space {
    if b.u8() & 1 == 0 { Space::Mmio } else { Space::Pio }
}

/// Target `trace_writer`: a format, names (any Unicode, any length), regions named by them,
/// filters made of them, then at most [`MAX_TRACE_OPS`] generic access lines, self-traced
/// access records, events and findings with names from the pool and any values; sometimes
/// into an output that fills up. Every line written must be UTF-8 and JSON.
pub fn trace_writer(data: &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let format = if flags & 1 == 0 {
        TraceFormat::Jsonl
    } else {
        TraceFormat::Perfetto
    };
    let limit = (flags & 2 != 0).then(|| usize::from(b.u16()) * 16);
    let pool: Vec<String> = (0..usize::from(b.u8() % 8) + 1).map(|_| b.string()).collect();
    let mut filters = Vec::new();
    for _ in 0..b.u8() % 3 {
        if let Ok(f) = pick(&pool, &mut b).parse::<TraceFilter>() {
            filters.push(f);
        }
    }
    let mut builder = BusBuilder::new();
    let mut regions = Vec::new();
    for (i, name) in pool.iter().enumerate() {
        let base = 0x1000 * (i as u64 + 1);
        if let Ok(id) = builder.add_mmio_device(None, name, base, 0x100, Arc::new(Null)) {
            regions.push((AddressSpace::Mmio, id));
        }
        if let Ok(id) = builder.add_pio_device(None, name, 0x100 * (i as u16 + 1), 0x10, Arc::new(Null)) {
            regions.push((AddressSpace::Pio, id));
        }
    }
    let _ = builder.add_region(
        AddressSpace::Mmio,
        None,
        pick(&pool, &mut b),
        0x10_0000,
        0x1000,
        RegionKind::Container,
    );
    let bus = Arc::new(builder.build());
    let clock = Arc::new(ManualClock::new(b.u64() >> 8));
    let buf = TraceBuf {
        bytes: Arc::default(),
        limit,
    };
    let options = TraceOptions { format, filters };
    let mut tracer = Tracer::new(bus.clone(), Box::new(buf.clone()), clock.clone(), &options);
    for (space, id) in &regions {
        if b.u8() & 1 == 1 {
            tracer.set_self_traced(*space, *id);
        }
    }
    let mut n = 0;
    while !b.is_empty() && n < MAX_TRACE_OPS {
        n += 1;
        match b.u8() % 8 {
            0 | 1 => {
                let space = if b.u8() & 1 == 0 {
                    AddressSpace::Mmio
                } else {
                    AddressSpace::Pio
                };
                let op = if b.u8() & 1 == 0 { Op::Read } else { Op::Write };
                let addr = match b.u8() % 3 {
                    0 => 0x1000 * u64::from(b.u8() % 9) + u64::from(b.u8()),
                    1 => 0x100 * u64::from(b.u8() % 9) + u64::from(b.u8() % 0x20),
                    _ => b.u64(),
                };
                let width = usize::from(b.u8() % 17);
                let value = b.u64().to_le_bytes();
                let data: Vec<u8> = value.iter().copied().cycle().take(width).collect();
                let routed = if b.u8() & 1 == 0 {
                    Routed::Device
                } else {
                    Routed::Unmapped
                };
                tracer.record(u32::from(b.u8()), space, op, addr, &data, routed);
            }
            2 | 3 => {
                let space = space_of(&mut b);
                let dir = if b.u8() & 1 == 0 { Dir::Read } else { Dir::Write };
                let (addr, offset, width, value) = (b.u64(), b.u64(), b.u8(), b.u64());
                let device = pick(&pool, &mut b);
                let register = pick_opt(&pool, &mut b);
                let fields: Vec<FieldValue<'_>> = (0..b.u8() % 40)
                    .map(|_| FieldValue {
                        name: pick(&pool, &mut b),
                        value: b.u64(),
                        enum_name: pick_opt(&pool, &mut b),
                    })
                    .collect();
                let notes: Vec<Note<'_>> = (0..b.u8() % 48).map(|_| note(&pool, &mut b)).collect();
                tracer.access(&AccessRecord {
                    space,
                    dir,
                    addr,
                    offset,
                    width,
                    value,
                    device,
                    register,
                    fields: &fields,
                    notes: &notes,
                });
            }
            4 => {
                let device = pick(&pool, &mut b);
                let notes: Vec<Note<'_>> = (0..b.u8() % 48).map(|_| note(&pool, &mut b)).collect();
                tracer.event(&EventRecord { device, notes: &notes });
            }
            5 => {
                let f = FindingLine {
                    rule: pick(&pool, &mut b),
                    device: pick(&pool, &mut b),
                    register: pick_opt(&pool, &mut b),
                    field: pick_opt(&pool, &mut b),
                    space: space_of(&mut b),
                    addr: b.u64(),
                    vcpu: (b.u8() & 1 == 1).then(|| b.u32()),
                    allowed: b.u8() & 1 == 1,
                };
                tracer.finding(&f);
            }
            6 => {
                let vcpu = b.u8();
                crate::trace::set_current_vcpu((vcpu & 1 == 1).then_some(u32::from(vcpu >> 1)));
            }
            _ => match b.u8() % 3 {
                0 => clock.advance(u64::from(b.u16())),
                1 => clock.set(b.u64()),
                _ => {
                    let _ = tracer.flush();
                }
            },
        }
    }
    crate::trace::set_current_vcpu(None);
    let finished = tracer.finish();
    assert!(limit.is_some() || finished.is_ok(), "a trace into memory failed");
    drop(tracer);
    let bytes = buf.bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    check_trace(&bytes, format, finished.is_ok());
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

/// The regions of one device on the bus.
type Regions = Vec<(AddressSpace, RegionId)>;

/// What [`bus_devices`] can put on the bus.
#[derive(Clone, Copy)]
enum Kind {
    Container,
    Window,
    RegFile,
    Counter,
    Described(usize),
}

/// Checks the tree's shape: every region inside its parent, siblings apart, no device
/// inside a device.
fn check_tree(tree: &ResourceTree) {
    let mut path: Vec<RegionId> = Vec::new();
    let mut last_sibling: Vec<Option<RegionId>> = vec![None];
    for (depth, id) in tree.walk() {
        path.truncate(depth);
        last_sibling.truncate(depth + 1);
        let range = tree.range(id);
        if let Some(parent) = path.last() {
            assert!(
                tree.range(*parent).encloses(&range),
                "{} escapes its parent",
                tree.name(id)
            );
        }
        if tree.kind(id) == RegionKind::Device {
            assert!(
                path.iter().all(|p| tree.kind(*p) != RegionKind::Device),
                "device {} nested in a device",
                tree.name(id)
            );
        }
        if let Some(Some(prev)) = last_sibling.get(depth) {
            assert!(
                tree.range(*prev).end() < range.start(),
                "{} overlaps or precedes its sibling {}",
                tree.name(id),
                tree.name(*prev)
            );
        }
        if let Some(slot) = last_sibling.get_mut(depth) {
            *slot = Some(id);
        }
        last_sibling.push(None);
        path.push(id);
    }
}

/// A bus with the same regions as `bus` (names, ranges, kinds), its devices nulls; and, by
/// space (MMIO, PIO) and region index of `bus`, the region's id in the copy.
fn names_only(bus: &Bus) -> (Bus, [Vec<Option<RegionId>>; 2]) {
    let mut builder = BusBuilder::new();
    let mut ids: [Vec<Option<RegionId>>; 2] = [Vec::new(), Vec::new()];
    for (space, map) in [AddressSpace::Mmio, AddressSpace::Pio].into_iter().zip(ids.iter_mut()) {
        let tree = bus.tree(space);
        let mut path: Vec<RegionId> = Vec::new();
        for (depth, id) in tree.walk() {
            path.truncate(depth);
            let parent = path.last().copied();
            let (name, range, kind) = (tree.name(id), tree.range(id), tree.kind(id));
            let size = range.end() - range.start() + 1;
            let copied = match (kind, space) {
                (RegionKind::Device, AddressSpace::Mmio) => {
                    builder.add_mmio_device(parent, name, range.start(), size, Arc::new(Null))
                }
                (RegionKind::Device, AddressSpace::Pio) => {
                    builder.add_pio_device(parent, name, range.start() as u16, size as u16, Arc::new(Null))
                }
                _ => builder.add_region(space, parent, name, range.start(), size, kind),
            }
            .unwrap_or_else(|e| panic!("the tree does not copy: {e}"));
            if map.len() <= id.index() {
                map.resize(id.index() + 1, None);
            }
            if let Some(slot) = map.get_mut(id.index()) {
                *slot = Some(copied);
            }
            path.push(copied);
        }
    }
    (builder.build(), ids)
}

/// Whether an access of `len` bytes at `addr` lies wholly inside one device region.
fn covered(tree: &ResourceTree, addr: u64, len: usize) -> bool {
    let Some(end) = (len as u64).checked_sub(1).and_then(|l| addr.checked_add(l)) else {
        return false;
    };
    tree.device_at(addr).is_some_and(|id| tree.range(id).contains(end))
}

/// Target `bus_devices`: a bus like a machine's (the built-in devices, then at most
/// [`MAX_REGIONS`] containers, windows, register files, counters and described devices of
/// every fuzzing and bundled description, wherever the input puts them: the tree refuses
/// what does not fit), then at most [`MAX_BUS_OPS`] operations: MMIO and port accesses of
/// any width (0 to 9 bytes) near a region or anywhere, from two vCPUs' hit caches; time
/// advances that run what is due; host feeds, drains and resets of described devices;
/// serial input. Routing agrees with the tree, unmapped reads return all ones and are
/// counted, the scheduler makes progress, and the trace (when one is attached) stays JSON.
pub fn bus_devices(data: &[u8]) {
    thread_local! {
        static MODELS: RefCell<Vec<Arc<Model>>> = RefCell::new(
            mmiolab_regmodel::fuzzing::models().into_iter().map(Arc::new).collect()
        );
    }
    let models: Vec<Arc<Model>> = MODELS.with(|m| m.borrow().clone());
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let clock = Arc::new(ManualClock::new(0));
    let scheduler = Arc::new(Scheduler::new(clock.clone()).expect("a scheduler"));
    let control = Arc::new(VmControl::new().expect("a stop event"));
    let mut builder = BusBuilder::new();
    let com1 = IrqLine::new(4).expect("an interrupt line");
    let kbd_irq = IrqLine::new(I8042::IRQ).expect("an interrupt line");
    let serial = Arc::new(Serial::new(com1, Box::new(std::io::sink())));
    let builtin = [
        builder.add_pio_device(
            None,
            "i8042",
            I8042::PORTS.0,
            I8042::PORTS.1,
            Arc::new(I8042::new(control.clone(), kbd_irq)),
        ),
        builder.add_pio_device(
            None,
            "test-exit",
            EXIT_PORT,
            4,
            Arc::new(ExitDevice::new(control.clone())),
        ),
        builder.add_pio_device(None, "serial", 0x3f8, 8, serial.clone()),
        builder.add_mmio_device(None, "pvpanic", 0xfebf_f000, 2, Arc::new(PvPanic::new(control.clone()))),
        builder.add_mmio_device(
            None,
            "syscon",
            0xfebf_e000,
            0x10,
            Arc::new(SysCtl::new(control.clone())),
        ),
    ];
    assert!(builtin.iter().all(Result::is_ok), "the built-in devices do not fit");
    // Regions added: (space, id); described devices with their regions.
    let mut added: Vec<(AddressSpace, RegionId)> = Vec::new();
    let mut described: Vec<(Arc<DescribedDevice>, Regions)> = Vec::new();
    for i in 0..usize::from(b.u8()) % (MAX_REGIONS + 1) {
        let space = if b.u8() & 1 == 0 {
            AddressSpace::Mmio
        } else {
            AddressSpace::Pio
        };
        let k = b.u8();
        let kind = match k % 8 {
            0 | 1 => Kind::Container,
            2 => Kind::Window,
            3 => Kind::RegFile,
            4 => Kind::Counter,
            _ => Kind::Described(usize::from(b.u8()) % models.len().max(1)),
        };
        let same_space: Vec<RegionId> = added.iter().filter(|(s, _)| *s == space).map(|(_, id)| *id).collect();
        let parent = match b.u8() % 3 {
            0 => None,
            _ => same_space.get(usize::from(b.u8()) % same_space.len().max(1)).copied(),
        };
        let base = {
            let tree = builder.tree(space);
            match (parent, b.u8() % 4) {
                (Some(p), 0..=2) => tree
                    .range(p)
                    .start()
                    .wrapping_add(u64::from(b.u16()) * u64::from(b.u8() % 4 + 1)),
                (_, 0 | 1) if space == AddressSpace::Pio => u64::from(b.u16()),
                (_, 0 | 1) => 0xd000_0000 + u64::from(b.u16()) * 0x100,
                (_, 2) => u64::from(b.u32()),
                _ => b.u64(),
            }
        };
        let size = match (&kind, b.u8() % 4) {
            (Kind::Described(m), 0..=2) => models.get(*m).map_or(0x100, |m| m.size),
            (_, 0) => 0x100,
            (_, 1) => u64::from(b.u16()),
            (_, 2) => u64::from(b.u8()),
            _ => b.u64(),
        };
        let name = format!("r{i}");
        let result = match kind {
            Kind::Container => builder.add_region(space, parent, &name, base, size, RegionKind::Container),
            Kind::Window => builder.add_region(space, parent, &name, base, size, RegionKind::Window),
            Kind::RegFile | Kind::Counter | Kind::Described(_) => {
                let (mmio, pio): (mmiolab_bus::MmioDevice, mmiolab_bus::PioDevice) = match kind {
                    Kind::Container | Kind::Window => continue,
                    Kind::RegFile => {
                        let size = usize::try_from(size.min(1 << 16)).unwrap_or(0);
                        let irq = (k & 0x80 != 0).then(|| IrqLine::new(5).expect("an interrupt line"));
                        let d = Arc::new(RegFile::new(size, irq));
                        (d.clone(), d)
                    }
                    Kind::Counter => {
                        let d = Arc::new(Counter::new());
                        (d.clone(), d)
                    }
                    Kind::Described(m) => {
                        let Some(model) = models.get(m) else { continue };
                        let lines = (0..model.lines).map(|l| IrqLine::new(10 + l).ok()).collect();
                        let d = DescribedDevice::new(model.clone(), lines, scheduler.clone());
                        d.reset();
                        described.push((d.clone(), Vec::new()));
                        (d.clone(), d)
                    }
                };
                match space {
                    AddressSpace::Mmio => builder.add_mmio_device(parent, &name, base, size, mmio),
                    AddressSpace::Pio => match (u16::try_from(base), u16::try_from(size)) {
                        (Ok(base), Ok(size)) => builder.add_pio_device(parent, &name, base, size, pio),
                        _ => continue,
                    },
                }
            }
        };
        if let Ok(id) = result {
            added.push((space, id));
            if let (Kind::Described(_), Some((d, regions))) = (kind, described.last_mut()) {
                d.set_region_name(
                    match space {
                        AddressSpace::Mmio => Space::Mmio,
                        AddressSpace::Pio => Space::Pio,
                    },
                    &name,
                );
                regions.push((space, id));
            }
        }
    }
    let bus: Arc<Bus> = Arc::new(builder.build());
    for space in [AddressSpace::Mmio, AddressSpace::Pio] {
        check_tree(bus.tree(space));
        let _ = bus.tree(space).render();
    }
    // A trace, sometimes: the described devices trace themselves into it.
    let format = if flags & 2 == 0 {
        TraceFormat::Jsonl
    } else {
        TraceFormat::Perfetto
    };
    let buf = TraceBuf {
        bytes: Arc::default(),
        limit: None,
    };
    let tracer = (flags & 1 == 1).then(|| {
        let options = TraceOptions {
            format,
            filters: Vec::new(),
        };
        // The tracer names regions from a copy of the bus whose devices are nulls: with the
        // bus itself, tracer → bus → device → tracer would be a cycle, never freed.
        let (copy, ids) = names_only(&bus);
        let mut t = Tracer::new(Arc::new(copy), Box::new(buf.clone()), clock.clone(), &options);
        for (_, regions) in &described {
            for (space, id) in regions {
                if let Some(Some(copied)) = ids[usize::from(*space == AddressSpace::Pio)].get(id.index()) {
                    t.set_self_traced(*space, *copied);
                }
            }
        }
        let t = Arc::new(t);
        for (d, _) in &described {
            d.attach_sink(t.clone() as Arc<dyn TraceSink>);
        }
        t
    });
    let vcpus = [LastHit::default(), LastHit::default()];
    let mut n = 0;
    while !b.is_empty() && n < MAX_BUS_OPS {
        n += 1;
        let op = b.u8();
        match op % 16 {
            0..=9 => {
                let space = if op & 0x10 == 0 {
                    AddressSpace::Mmio
                } else {
                    AddressSpace::Pio
                };
                let write = op & 0x20 != 0;
                let vcpu = usize::from(op >> 7);
                let tree = bus.tree(space);
                let delta = i64::from(b.u8() as i8);
                let addr = match b.u8() % 4 {
                    0 | 1 => {
                        let regions = tree.walk();
                        match regions.get(usize::from(b.u8()) % regions.len().max(1)) {
                            Some((_, id)) => {
                                let r = tree.range(*id);
                                let at = if b.u8() & 1 == 0 { r.start() } else { r.end() };
                                at.wrapping_add_signed(delta)
                            }
                            None => u64::from(b.u16()),
                        }
                    }
                    2 => u64::from(b.u16()),
                    _ => b.u64(),
                };
                let width = match b.u8() % 8 {
                    0 => 1,
                    1 => 2,
                    2 | 3 => 4,
                    4 => 8,
                    5 => 0,
                    6 => 3,
                    _ => 9,
                };
                let value = b.u64().to_le_bytes();
                let mut bytes = [0u8; 9];
                for (d, v) in bytes.iter_mut().zip(value.iter().cycle()) {
                    *d = *v;
                }
                let Some(data) = bytes.get_mut(..width) else { continue };
                let before = bus.unmapped_counts();
                let last = &vcpus[vcpu & 1];
                let (routed, expected, addr) = match space {
                    AddressSpace::Mmio => {
                        let r = if write {
                            bus.mmio_write(last, addr, data)
                        } else {
                            bus.mmio_read(last, addr, data)
                        };
                        (r, covered(tree, addr, width), addr)
                    }
                    AddressSpace::Pio => {
                        let port = addr as u16;
                        let r = if write {
                            bus.pio_write(last, port, data)
                        } else {
                            bus.pio_read(last, port, data)
                        };
                        let fits = u64::from(port) + (width as u64) <= 0x1_0000;
                        (r, fits && covered(tree, port.into(), width), u64::from(port))
                    }
                };
                assert_eq!(
                    routed == Routed::Device,
                    expected,
                    "{space} {} of {width} at {addr:#x}: routed {routed:?}",
                    if write { "write" } else { "read" }
                );
                let after = bus.unmapped_counts();
                let missed = [
                    after.mmio_reads - before.mmio_reads,
                    after.mmio_writes - before.mmio_writes,
                    after.pio_reads - before.pio_reads,
                    after.pio_writes - before.pio_writes,
                ];
                let which = match (space, write) {
                    (AddressSpace::Mmio, false) => 0,
                    (AddressSpace::Mmio, true) => 1,
                    (AddressSpace::Pio, false) => 2,
                    (AddressSpace::Pio, true) => 3,
                };
                for (i, m) in missed.iter().enumerate() {
                    let want = u64::from(i == which && routed == Routed::Unmapped);
                    assert_eq!(*m, want, "unmapped counter {i}");
                }
                if routed == Routed::Unmapped && !write {
                    assert!(data.iter().all(|x| *x == 0xff), "an unmapped read returned {data:?}");
                }
                if let Some(t) = &tracer {
                    let op = if write { Op::Write } else { Op::Read };
                    t.record(vcpu as u32, space, op, addr, data, routed);
                }
            }
            10 | 11 => {
                let step = match b.u8() % 4 {
                    0 => u64::from(b.u8()),
                    1 => u64::from(b.u16()) * 1000,
                    2 => u64::from(b.u16()) * 1_000_000,
                    _ => b.u64() >> 1,
                };
                clock.set(clock_now(&clock).saturating_add(step));
                let now = clock_now(&clock);
                let mut calls = 0;
                loop {
                    scheduler.run_due();
                    match scheduler.next_deadline() {
                        Some(t) if t <= now && now < u64::MAX => {
                            calls += 1;
                            assert!(
                                calls <= mmiolab_regmodel::engine::MAX_PENDING,
                                "run_due makes no progress"
                            );
                        }
                        _ => break,
                    }
                }
            }
            12 => {
                let Some((d, _)) = described.get(usize::from(b.u8()) % described.len().max(1)) else {
                    continue;
                };
                let fifo = usize::from(b.u8()) % (d.model().fifos.len() + 1);
                let count = usize::from(b.u8() % 32);
                let bytes = b.bytes(count);
                let taken = d.feed_fifo(fifo, bytes);
                assert!(taken <= bytes.len());
            }
            13 => {
                let Some((d, _)) = described.get(usize::from(b.u8()) % described.len().max(1)) else {
                    continue;
                };
                let fifo = usize::from(b.u8()) % (d.model().fifos.len() + 1);
                if b.u8() & 1 == 0 {
                    d.drain_fifo(fifo, Box::new(std::io::sink()));
                } else {
                    d.drain_fifo(fifo, Box::new(Broken));
                }
            }
            14 => {
                if let Some((d, _)) = described.get(usize::from(b.u8()) % described.len().max(1)) {
                    d.reset();
                }
            }
            _ => {
                let count = usize::from(b.u8() % 32);
                let taken = serial.enqueue_input(b.bytes(count));
                assert!(taken <= count);
            }
        }
    }
    if let Some(t) = tracer {
        let finished = t.finish();
        assert!(finished.is_ok(), "a trace into memory failed");
        let bytes = buf
            .bytes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        check_trace(&bytes, format, true);
    }
}

fn clock_now(clock: &ManualClock) -> u64 {
    mmiolab_devices::Clock::now_ns(clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_take_empty_and_short_inputs() {
        for data in [&b""[..], b"\0", b"\x01", b"\x02\x00\x00\x00", &[0xff; 64], &[0x01; 300]] {
            machine_file(data);
            payload(data);
            trace_writer(data);
            bus_devices(data);
        }
    }

    #[test]
    fn a_machine_naming_a_fuzzed_description_is_built() {
        machine_file(
            b"[[device]]\nname = \"d\"\ndescription = \"fuzz.toml\"\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n\0\
              [device]\nname = \"x\"\n[[register]]\nname = \"R\"\noffset = 0\n",
        );
    }

    /// Found by `trace_writer` (corpus `regress-finding-long-names`): a finding line carries
    /// four names (rule, device, register, field), each cut at 128 bytes but together
    /// longer than the 512-byte buffer of a generic line: pieces were dropped and the line
    /// was no longer JSON.
    #[test]
    fn a_finding_with_four_long_names_is_json() {
        let long = "\u{0}\"\\é".repeat(100);
        for format in [TraceFormat::Jsonl, TraceFormat::Perfetto] {
            let buf = TraceBuf {
                bytes: Arc::default(),
                limit: None,
            };
            let bus = Arc::new(BusBuilder::new().build());
            let options = TraceOptions {
                format,
                filters: Vec::new(),
            };
            let tracer = Tracer::new(bus, Box::new(buf.clone()), Arc::new(ManualClock::new(0)), &options);
            tracer.finding(&FindingLine {
                rule: &long,
                device: &long,
                register: Some(&long),
                field: Some(&long),
                space: Space::Mmio,
                addr: u64::MAX,
                vcpu: Some(u32::MAX),
                allowed: true,
            });
            tracer.finish().expect("a trace into memory");
            let bytes = buf.bytes.lock().expect("the trace").clone();
            check_trace(&bytes, format, true);
        }
    }

    #[test]
    fn only_scratch_files_are_built() {
        assert!(is_scratch_file(Path::new("fuzz.toml")));
        assert!(is_scratch_file(Path::new("toy.svd")));
        assert!(!is_scratch_file(Path::new("../fuzz.toml")));
        assert!(!is_scratch_file(Path::new("/etc/passwd")));
        assert!(!is_scratch_file(Path::new("./x/uart.toml")));
    }
}
