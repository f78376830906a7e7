//! The pieces of mmiolab's hot path, run alone in a loop so callgrind can price each one:
//! `mmiolab-bench components --op OP --n N`, counted at N and at 0 like the VM runs.
//!
//! The bus is built as mmiolab builds the bench machine's MMIO side (the `bench-mmio`
//! register file and a second region where pvpanic sits), through the same `BusBuilder`,
//! so the lookup walks the same `BTreeMap` shape.
//!
//! The described-device pieces use the benchmark's own descriptions
//! (`tests/machines/devices/bench-{plain,w1c,fifo}.toml`), compiled as mmiolab compiles
//! them, at the offset the payload hits (0x10): the engine alone (`engine::access`, no lock,
//! its notes reused), the device (`DescribedDevice`: lock, notes, engine, outcome), the
//! device with a trace sink (the `Tracer` mmiolab writes `--trace` with, into a buffered
//! sink), and the trace record's formatting alone.

use std::hint::black_box;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use mmiolab_bus::{Bus, BusBuilder, LastHit};
use mmiolab_devices::{AccessRecord, Dir as TraceDir, MonotonicClock, RegFile, Scheduler, Space, TraceSink};
use mmiolab_regmodel::DescribedDevice;
use mmiolab_regmodel::engine::{self, Dir, Notes, State};
use mmiolab_vmm::trace::{TraceOptions, Tracer};
use serde::Serialize;
use vm_device::DeviceMmio;
use vm_device::bus::MmioAddress;

use crate::kinds::{MMIO_DEVICE, MMIO_UNMAPPED};

/// One piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// The loop alone.
    Empty,
    /// `Bus::mmio_write` of 4 bytes to the register file, the vCPU's last-hit cache hitting:
    /// two compares + device (what a driver's burst of accesses to one device costs).
    BusDevice,
    /// The same with an empty cache each time: dispatch-table lookup + device.
    BusDeviceUncached,
    /// `Bus::mmio_write` of 4 bytes to an unmapped address: lookup miss + counter.
    BusUnmapped,
    /// `RegFile::mmio_write` of 4 bytes, called directly: the device model, its Mutex included.
    Regfile,
    /// Locking and unlocking an uncontended `std::sync::Mutex`, as the register file does.
    Mutex,
    /// For comparison, not mmiolab's design: finding the region in a sorted `Vec` by binary
    /// search and checking the access fits.
    SortedVecLookup,
    /// `Bus::mmio_write` of 4 bytes to the described plain register, cache hit.
    BusDescribed,
    /// `DescribedDevice::mmio_write` of 4 bytes to the plain register, called directly.
    DescribedPlainWrite,
    /// `DescribedDevice::mmio_read` of 4 bytes of the plain register.
    DescribedPlainRead,
    /// `DescribedDevice::mmio_write` of 0 to the W1C status register.
    DescribedW1cWrite,
    /// `DescribedDevice::mmio_read` of the FIFO data register, FIFO empty.
    DescribedFifoPop,
    /// `DescribedDevice::mmio_write` to the plain register with a trace sink attached.
    DescribedPlainWriteTraced,
    /// `engine::access`, a 4-byte write to the plain register (no lock, notes reused).
    EnginePlainWrite,
    /// `engine::access`, a 4-byte read of the plain register.
    EnginePlainRead,
    /// `engine::access`, a write of 0 to the W1C status register.
    EngineW1cWrite,
    /// `engine::access`, a read of the FIFO data register, FIFO empty.
    EngineFifoPop,
    /// `Notes::default()`: the fixed array of notes an access starts with.
    NotesInit,
    /// `Tracer::access` of the plain register's write record: formatting + buffered write.
    TraceRecord,
}

impl Op {
    /// Every op, in report order.
    pub const ALL: [Op; 19] = [
        Op::Empty,
        Op::BusDevice,
        Op::BusDeviceUncached,
        Op::BusUnmapped,
        Op::Regfile,
        Op::Mutex,
        Op::SortedVecLookup,
        Op::BusDescribed,
        Op::DescribedPlainWrite,
        Op::DescribedPlainRead,
        Op::DescribedW1cWrite,
        Op::DescribedFifoPop,
        Op::DescribedPlainWriteTraced,
        Op::EnginePlainWrite,
        Op::EnginePlainRead,
        Op::EngineW1cWrite,
        Op::EngineFifoPop,
        Op::NotesInit,
        Op::TraceRecord,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::Empty => "empty",
            Op::BusDevice => "bus-device",
            Op::BusDeviceUncached => "bus-device-uncached",
            Op::BusUnmapped => "bus-unmapped",
            Op::Regfile => "regfile",
            Op::Mutex => "mutex",
            Op::SortedVecLookup => "sorted-vec-lookup",
            Op::BusDescribed => "bus-described",
            Op::DescribedPlainWrite => "described-plain-write",
            Op::DescribedPlainRead => "described-plain-read",
            Op::DescribedW1cWrite => "described-w1c-write",
            Op::DescribedFifoPop => "described-fifo-pop",
            Op::DescribedPlainWriteTraced => "described-plain-write-traced",
            Op::EnginePlainWrite => "engine-plain-write",
            Op::EnginePlainRead => "engine-plain-read",
            Op::EngineW1cWrite => "engine-w1c-write",
            Op::EngineFifoPop => "engine-fifo-pop",
            Op::NotesInit => "notes-init",
            Op::TraceRecord => "trace-record",
        }
    }

    /// What it prices, for the report.
    pub fn what(self) -> &'static str {
        match self {
            Op::Empty => "loop overhead (subtracted from the others)",
            Op::BusDevice => "Bus::mmio_write to the register file, last-hit cache hit + RegFile",
            Op::BusDeviceUncached => "Bus::mmio_write to the register file, dispatch-table lookup + RegFile",
            Op::BusUnmapped => "Bus::mmio_write to an unmapped address: lookup miss + counter",
            Op::Regfile => "RegFile::mmio_write alone (its Mutex included)",
            Op::Mutex => "uncontended std Mutex lock + unlock",
            Op::SortedVecLookup => "alternative lookup: binary search in a sorted Vec (not used)",
            Op::BusDescribed => "Bus::mmio_write to the described plain register, cache hit + device",
            Op::DescribedPlainWrite => "DescribedDevice::mmio_write, plain register (lock, notes, engine)",
            Op::DescribedPlainRead => "DescribedDevice::mmio_read, plain register",
            Op::DescribedW1cWrite => "DescribedDevice::mmio_write of 0, W1C status register + condition",
            Op::DescribedFifoPop => "DescribedDevice::mmio_read, FIFO data register, empty FIFO",
            Op::DescribedPlainWriteTraced => "DescribedDevice::mmio_write, plain register, tracing",
            Op::EnginePlainWrite => "engine::access alone: plain register write",
            Op::EnginePlainRead => "engine::access alone: plain register read",
            Op::EngineW1cWrite => "engine::access alone: W1C write of 0 + interrupt condition",
            Op::EngineFifoPop => "engine::access alone: pop of an empty FIFO",
            Op::NotesInit => "engine::Notes::default() (the notes array of one access)",
            Op::TraceRecord => "Tracer::access alone: the plain write's record, formatted and buffered",
        }
    }
}

fn bench_bus(regs: Arc<RegFile>) -> Result<Bus> {
    let mut b = BusBuilder::new();
    b.add_mmio_device(None, "bench-mmio", 0xfeb0_0000, 0x200, regs)?;
    b.add_mmio_device(None, "pvpanic", 0xfebf_f000, 2, Arc::new(RegFile::new(2, None)))?;
    Ok(b.build())
}

/// The benchmark's description `tests/machines/devices/bench-KEY.toml`, compiled.
fn model(key: &str) -> Result<Arc<mmiolab_regmodel::Model>> {
    let path = crate::workspace_root().join(format!("tests/machines/devices/bench-{key}.toml"));
    let m = mmiolab_regmodel::load(&path).with_context(|| format!("loading {}", path.display()))?;
    Ok(Arc::new(m))
}

/// A described device of `model` as mmiolab builds one (no interrupt line wired), reset.
fn described(model: &Arc<mmiolab_regmodel::Model>, scheduler: &Arc<Scheduler>) -> Arc<DescribedDevice> {
    let dev = DescribedDevice::new(model.clone(), Vec::new(), scheduler.clone());
    dev.set_region_name(Space::Mmio, "bench-mmio");
    dev.reset();
    dev
}

/// One access at offset 0x10 through the engine alone, with notes reused (cleared).
fn engine_op<'m>(
    model: &'m mmiolab_regmodel::Model,
    state: &mut State,
    dir: Dir,
    buf: &mut [u8],
    notes: &mut Notes<'m>,
) -> engine::Outcome {
    notes.clear();
    engine::access(model, state, dir, black_box(0x10), buf, &|| 0, notes)
}

/// Does `op` `n` times.
pub fn run(op: Op, n: u64) -> Result<u64> {
    let regs = Arc::new(RegFile::new(0x200, None));
    let bus = bench_bus(regs.clone())?;
    let clock = Arc::new(MonotonicClock::new());
    let scheduler = Arc::new(Scheduler::new(clock.clone())?);
    let (plain, w1c, fifo) = (model("plain")?, model("w1c")?, model("fifo")?);
    let (plain_dev, w1c_dev, fifo_dev) = (
        described(&plain, &scheduler),
        described(&w1c, &scheduler),
        described(&fifo, &scheduler),
    );
    let traced_dev = described(&plain, &scheduler);
    let described_bus = {
        let mut b = BusBuilder::new();
        b.add_mmio_device(None, "bench-mmio", 0xfeb0_0000, 0x200, plain_dev.clone())?;
        b.add_mmio_device(None, "pvpanic", 0xfebf_f000, 2, Arc::new(RegFile::new(2, None)))?;
        Arc::new(b.build())
    };
    // The trace as `mmiolab run --trace FILE` writes it: a Tracer over the machine's bus,
    // into its buffer (here written out to a sink that discards it).
    let tracer = Arc::new(Tracer::new(
        described_bus.clone(),
        Box::new(std::io::sink()),
        clock.clone(),
        &TraceOptions::default(),
    ));
    traced_dev.attach_sink(tracer.clone());
    let (mut plain_state, mut w1c_state, mut fifo_state) = (State::new(&plain), State::new(&w1c), State::new(&fifo));
    let mut notes = Notes::default();
    let record = AccessRecord {
        space: Space::Mmio,
        dir: TraceDir::Write,
        addr: MMIO_DEVICE,
        offset: 0x10,
        width: 4,
        value: 0,
        device: "bench-mmio",
        register: Some("SCRATCH"),
        fields: &[],
        notes: &[],
    };
    let base = MmioAddress(0xfeb0_0000);
    let mut buf = [0u8; 4];
    let mutex = Mutex::new(vec![0u8; 0x200]);
    let regions: Vec<(u64, u64)> = vec![(0xfeb0_0000, 0xfeb0_01ff), (0xfebf_f000, 0xfebf_f001)];
    let data = [1u8, 2, 3, 4];
    let last = LastHit::default();
    let mut hits = 0u64;
    for i in 0..black_box(n) {
        match op {
            Op::Empty => hits += black_box(i) & 1,
            Op::BusDevice => {
                let _ = black_box(bus.mmio_write(&last, black_box(MMIO_DEVICE), black_box(&data)));
            }
            Op::BusDeviceUncached => {
                let _ = black_box(bus.mmio_write(&LastHit::default(), black_box(MMIO_DEVICE), black_box(&data)));
            }
            Op::BusUnmapped => {
                let _ = black_box(bus.mmio_write(&last, black_box(MMIO_UNMAPPED), black_box(&data)));
            }
            Op::Regfile => regs.mmio_write(MmioAddress(0xfeb0_0000), black_box(0x10), black_box(&data)),
            Op::Mutex => drop(black_box(mutex.lock().unwrap_or_else(PoisonError::into_inner))),
            Op::SortedVecLookup => {
                let addr = black_box(MMIO_DEVICE);
                let last = addr + black_box(data.len() as u64) - 1;
                let at = regions.partition_point(|r| r.0 <= addr);
                let hit = at
                    .checked_sub(1)
                    .and_then(|i| regions.get(i))
                    .is_some_and(|r| r.1 >= last);
                hits += u64::from(black_box(hit));
            }
            Op::BusDescribed => {
                let _ = black_box(described_bus.mmio_write(&last, black_box(MMIO_DEVICE), black_box(&data)));
            }
            Op::DescribedPlainWrite => plain_dev.mmio_write(base, black_box(0x10), black_box(&data)),
            Op::DescribedPlainRead => plain_dev.mmio_read(base, black_box(0x10), black_box(&mut buf)),
            Op::DescribedW1cWrite => w1c_dev.mmio_write(base, black_box(0x10), black_box(&[0; 4])),
            Op::DescribedFifoPop => fifo_dev.mmio_read(base, black_box(0x10), black_box(&mut buf)),
            Op::DescribedPlainWriteTraced => traced_dev.mmio_write(base, black_box(0x10), black_box(&data)),
            Op::EnginePlainWrite => {
                buf = data;
                black_box(engine_op(&plain, &mut plain_state, Dir::Write, &mut buf, &mut notes));
            }
            Op::EnginePlainRead => drop(black_box(engine_op(
                &plain,
                &mut plain_state,
                Dir::Read,
                &mut buf,
                &mut notes,
            ))),
            Op::EngineW1cWrite => {
                buf = [0; 4];
                black_box(engine_op(&w1c, &mut w1c_state, Dir::Write, &mut buf, &mut notes));
            }
            Op::EngineFifoPop => drop(black_box(engine_op(
                &fifo,
                &mut fifo_state,
                Dir::Read,
                &mut buf,
                &mut notes,
            ))),
            Op::NotesInit => drop(black_box(Notes::default())),
            Op::TraceRecord => tracer.access(black_box(&record)),
        }
    }
    black_box(&buf);
    Ok(hits)
}
