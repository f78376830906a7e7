//! How machine build and the access path scale with the number of devices, registers and
//! regions (docs/performance.md, "Scale").
//!
//! Machines are generated in memory (a machine file may hold at most 1 MiB, which is about
//! 10,000 devices, so 100,000 devices can only be built this way) and go through what
//! `mmiolab run` does before the guest starts and that depends on the machine's size:
//! parsing and checking the machine text, building the platform (devices, resource trees,
//! dispatch table), the device tree a Linux guest gets, and the tracer (each region's name
//! prepared once). The access path is priced by looking up every device region in a
//! shuffled order, past the per-vCPU last-hit cache.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use mmiolab_bus::LastHit;
use mmiolab_vmm::trace::{TraceOptions, Tracer};
use mmiolab_vmm::{MachineConfig, Platform};

/// First address of the generated devices: the MMIO hole below the IOAPIC (0xc0000000 to
/// 0xfec00000, the built-in devices at its top) holds some 257,000 devices one page apart.
pub const BASE: u64 = 0xc000_0000;
/// Address step between two generated devices.
pub const STEP: u64 = 0x1000;
/// The most devices a generated machine can hold.
pub const MAX_DEVICES: usize = 250_000;

/// What grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Axis {
    /// Devices on one bus (register files with a device-tree node; every 4th with a
    /// named window, every 100th a described gpio-mmio), declared in a shuffled order.
    Devices,
    /// Registers of one described device.
    Registers,
    /// Named windows inside one device region, declared in a shuffled order.
    Regions,
    /// The bus alone (no machine file): register files added to a `BusBuilder` in a
    /// shuffled order on one container, each with a window, then frozen.
    Bus,
}

impl Axis {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Devices => "devices",
            Axis::Registers => "registers",
            Axis::Regions => "regions",
            Axis::Bus => "bus",
        }
    }
}

/// A deterministic permutation of `0..n` (a linear congruential shuffle), so that devices
/// and windows are declared out of address order: inserting in order would hide a sorted
/// `Vec::insert`'s cost.
pub fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..n).rev() {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = ((x >> 33) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// The machine text for `n` of `axis`; `dir` receives the description file the registers
/// axis needs.
pub fn machine_text(axis: Axis, n: usize, dir: &Path) -> Result<String> {
    let mut t = String::from("[machine]\nmemory_mib = 64\n\n");
    match axis {
        Axis::Devices => {
            if n > MAX_DEVICES {
                return Err(anyhow!("at most {MAX_DEVICES} devices fit the MMIO hole"));
            }
            let _ = writeln!(
                t,
                "[[bus]]\nname = \"soc\"\ncompatible = \"simple-bus\"\nmmio = {{ base = {BASE:#x}, size = {:#x} }}\n",
                (n.max(1) as u64) * STEP
            );
            for i in shuffled(n) {
                let base = BASE + i as u64 * STEP;
                let (model, size) = if i % 100 == 99 {
                    ("gpio-mmio", 0x18)
                } else {
                    ("regfile", 0x100)
                };
                let windows = if i % 4 == 0 {
                    ", windows = [{ name = \"regs\", offset = 0, size = 0x10 }]"
                } else {
                    ""
                };
                let _ = writeln!(
                    t,
                    "[[device]]\nname = \"d{i}\"\nmodel = \"{model}\"\nbus = \"soc\"\ncompatible = \"mmiolab,{model}\"\n\
                     mmio = [{{ base = {base:#x}, size = {size:#x}{windows} }}]\n"
                );
            }
        }
        Axis::Registers => {
            let desc = dir.join(format!("registers-{n}.toml"));
            std::fs::write(&desc, description_text(n)).with_context(|| format!("writing {}", desc.display()))?;
            let _ = writeln!(
                t,
                "[[device]]\nname = \"big\"\ndescription = \"{}\"\nmmio = [{{ base = {BASE:#x}, size = {:#x} }}]",
                desc.display(),
                description_size(n)
            );
        }
        Axis::Bus => return Err(anyhow!("the bus axis builds no machine file")),
        Axis::Regions => {
            let _ = write!(
                t,
                "[[device]]\nname = \"windows\"\nmodel = \"regfile\"\nmmio = [{{ base = {BASE:#x}, size = {:#x}, windows = [",
                (n.max(1) as u64) * 16
            );
            for (k, i) in shuffled(n).into_iter().enumerate() {
                let sep = if k == 0 { "" } else { ", " };
                let _ = write!(
                    t,
                    "{sep}{{ name = \"w{i}\", offset = {:#x}, size = 0x10 }}",
                    i as u64 * 16
                );
            }
            t.push_str("] }]\n");
        }
    }
    Ok(t)
}

/// Bytes of the generated description with `n` registers.
fn description_size(n: usize) -> u64 {
    ((n.max(1) as u64) * 4).next_multiple_of(STEP)
}

/// A description with `n` 32-bit registers: plain storage, and every 8th with a W1C field
/// and a read-write field.
pub fn description_text(n: usize) -> String {
    let mut t = format!(
        "[device]\nname = \"big\"\ndescription = \"{n} registers\"\nsize = {:#x}\n\n",
        description_size(n)
    );
    for i in 0..n {
        let _ = writeln!(t, "[[register]]\nname = \"R{i}\"\noffset = {:#x}", i * 4);
        if i % 8 == 7 {
            t.push_str(
                "[[register.field]]\nname = \"DONE\"\nbits = 0\non_write = \"w1c\"\n\
                 [[register.field]]\nname = \"MODE\"\nbits = \"7:4\"\n",
            );
        }
        t.push('\n');
    }
    t
}

/// Wall time of each build step for one machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildTimes {
    /// Parsing and checking the machine text.
    pub parse: Duration,
    /// The platform: devices, resource trees, dispatch table.
    pub platform: Duration,
    /// The flattened device tree.
    pub dtb: Duration,
    /// The tracer.
    pub tracer: Duration,
}

impl BuildTimes {
    /// All steps.
    pub fn total(&self) -> Duration {
        self.parse + self.platform + self.dtb + self.tracer
    }
}

/// A built machine, for pricing lookups.
pub struct Built {
    /// Its platform.
    pub platform: Platform,
    /// What building it took.
    pub times: BuildTimes,
}

/// Parses `text` and builds everything `mmiolab run` builds from it before KVM is involved.
pub fn build(text: &str, source: &Path) -> Result<Built> {
    let t0 = Instant::now();
    let config = MachineConfig::parse(text, source).map_err(|e| anyhow!("{e}"))?;
    let t1 = Instant::now();
    let platform = Platform::build(&config, Box::new(std::io::sink())).map_err(|e| anyhow!("{e}"))?;
    let t2 = Instant::now();
    let dtb = mmiolab_vmm::fdt::dtb(&config, &platform).map_err(|e| anyhow!("device tree: {e}"))?;
    let t3 = Instant::now();
    let tracer = Tracer::new(
        platform.bus.clone(),
        Box::new(std::io::sink()),
        platform.scheduler.clock().clone(),
        &TraceOptions::default(),
    );
    let t4 = Instant::now();
    drop((dtb, tracer));
    Ok(Built {
        platform,
        times: BuildTimes {
            parse: t1 - t0,
            platform: t2 - t1,
            dtb: t3 - t2,
            tracer: t4 - t3,
        },
    })
}

/// Every generated device's base address, shuffled: a lookup order that defeats the
/// last-hit cache (one vCPU's cache is used, as a vCPU would).
pub fn lookup_order(n: usize) -> Vec<u64> {
    shuffled(n).into_iter().map(|i| BASE + i as u64 * STEP + 0x10).collect()
}

/// Reads offset 0x10 of each device in `order`, `rounds` times; returns how many reached a
/// device.
pub fn lookups(platform: &Platform, order: &[u64], rounds: usize) -> u64 {
    let bus: &Arc<mmiolab_bus::Bus> = &platform.bus;
    let last = LastHit::default();
    let mut hit = 0;
    let mut buf = [0u8; 4];
    for _ in 0..rounds {
        for &addr in order {
            if bus.mmio_read(&last, addr, &mut buf) == mmiolab_bus::Routed::Device {
                hit += 1;
            }
        }
    }
    hit
}

/// `n` register files on a bus built directly (what [`Axis::Bus`] measures), each looked up
/// `lookups` times past the cache; returns how many lookups reached a device.
pub fn bus_only(n: usize, lookups: usize) -> Result<u64> {
    use mmiolab_bus::{AddressSpace, BusBuilder, RegionKind};
    let mut b = BusBuilder::new();
    let size = (n.max(1) as u64) * STEP;
    let soc = b.add_region(AddressSpace::Mmio, None, "soc", BASE, size, RegionKind::Container)?;
    for i in shuffled(n) {
        let base = BASE + i as u64 * STEP;
        let dev = Arc::new(mmiolab_devices::RegFile::new(0x100, None));
        let id = b.add_mmio_device(Some(soc), &format!("d{i}"), base, 0x100, dev)?;
        b.add_region(AddressSpace::Mmio, Some(id), "regs", base, 0x10, RegionKind::Window)?;
    }
    let bus = b.build();
    let order = lookup_order(n);
    let mut hit = 0;
    let mut buf = [0u8; 4];
    for _ in 0..lookups {
        for &addr in &order {
            let last = LastHit::default();
            if bus.mmio_read(&last, addr, &mut buf) == mmiolab_bus::Routed::Device
                && bus.tree(AddressSpace::Mmio).device_at(addr).is_some()
            {
                hit += 1;
            }
        }
    }
    Ok(hit)
}
