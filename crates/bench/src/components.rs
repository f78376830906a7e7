//! The pieces of mmiolab's hot path, run alone in a loop so callgrind can price each one:
//! `mmiolab-bench components --op OP --n N`, counted at N and at 0 like the VM runs.
//!
//! The bus is built as mmiolab builds the bench machine's MMIO side (the `bench-mmio`
//! register file and a second region where pvpanic sits), through the same `BusBuilder`,
//! so the lookup walks the same `BTreeMap` shape.

use std::hint::black_box;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use mmiolab_bus::{Bus, BusBuilder, LastHit};
use mmiolab_devices::RegFile;
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
    /// The same with an empty cache each time: IoManager lookup + device.
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
}

impl Op {
    /// Every op, in report order.
    pub const ALL: [Op; 7] = [
        Op::Empty,
        Op::BusDevice,
        Op::BusDeviceUncached,
        Op::BusUnmapped,
        Op::Regfile,
        Op::Mutex,
        Op::SortedVecLookup,
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
        }
    }

    /// What it prices, for the report.
    pub fn what(self) -> &'static str {
        match self {
            Op::Empty => "loop overhead (subtracted from the others)",
            Op::BusDevice => "Bus::mmio_write to the register file, last-hit cache hit + RegFile",
            Op::BusDeviceUncached => "Bus::mmio_write to the register file, IoManager lookup + RegFile",
            Op::BusUnmapped => "Bus::mmio_write to an unmapped address: lookup miss + counter",
            Op::Regfile => "RegFile::mmio_write alone (its Mutex included)",
            Op::Mutex => "uncontended std Mutex lock + unlock",
            Op::SortedVecLookup => "alternative lookup: binary search in a sorted Vec (not used)",
        }
    }
}

fn bench_bus(regs: Arc<RegFile>) -> Result<Bus> {
    let mut b = BusBuilder::new();
    b.add_mmio_device(None, "bench-mmio", 0xfeb0_0000, 0x200, regs)?;
    b.add_mmio_device(None, "pvpanic", 0xfebf_f000, 2, Arc::new(RegFile::new(2, None)))?;
    Ok(b.build())
}

/// Does `op` `n` times.
pub fn run(op: Op, n: u64) -> Result<u64> {
    let regs = Arc::new(RegFile::new(0x200, None));
    let bus = bench_bus(regs.clone())?;
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
        }
    }
    Ok(hits)
}
