//! Guest-side fuzzer (docs/fuzzing.md, "Guest-side fuzzer"): `firmware/asm/fuzz.S` makes
//! seeded random accesses (MMIO of every width, page-boundary straddles that KVM splits into
//! 1- to 7-byte accesses, `rep movs`/`rep stos` on MMIO, `rep ins`/`rep outs` and single
//! port accesses) against the bundled models placed by `tests/machines/fuzz.toml`. Each
//! seed is patched into a copy of the ELF and run under KVM with `--trace`; the test checks
//! that mmiolab ends cleanly with the guest's status 0 (no panic, no fault) and that the
//! trace's access lines are exactly the accesses the program made, which this file works
//! out by running the same generator (keep it in step with fuzz.S).
//!
//! `MMIOLAB_FUZZ_SEEDS` (first-last, or a count from 1; default 1-8) and
//! `MMIOLAB_FUZZ_STEPS` (default 1,500) change the campaign. Without read-write /dev/kvm
//! the trials are reported as ignored, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const MACHINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/machines/fuzz.toml");
const MARKER: &[u8] = b"MMIOLAB-FUZZ-SEED";

/// fuzz.S `zones`: (base, span).
const ZONES: [(u64, u64); 7] = [
    (0xd000_0000, 0xff8),
    (0xd000_1000, 0x240),
    (0xd000_2000, 0x40),
    (0xd000_3000, 0x20),
    (0xd000_4000, 0x10),
    (0xa_0000, 0x2000),
    (0xd000_5000, 0x10),
];
/// fuzz.S `bounds`.
const BOUNDS: [u64; 7] = [
    0xd000_1000,
    0xd000_2000,
    0xd000_3000,
    0xd000_4000,
    0xd000_5000,
    0xd000_6000,
    0xa_1000,
];
/// fuzz.S `ports`: (base, span).
const PORTS: [(u64, u64); 3] = [(0x300, 0x10), (0x378, 8), (0x2f8, 8)];
/// The port the program ends the run through.
const EXIT_PORT: u64 = 0xf4;

fn main() {
    let args = Arguments::from_args();
    let missing = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("/dev/kvm cannot be opened read-write: {e}"));
    if let Some(reason) = &missing {
        eprintln!("the guest-side fuzzer is ignored: {reason}");
    }
    let steps = env_u64("MMIOLAB_FUZZ_STEPS").unwrap_or(1_500);
    let (first, last) = seeds();
    let trials = (first..=last)
        .map(|seed| {
            Trial::test(format!("guest_fuzz_seed_{seed}"), move || fuzz_one(seed, steps))
                .with_ignored_flag(missing.is_some())
        })
        .chain([Trial::test("generator_matches_the_program_tables", tables_match)])
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
}

/// `MMIOLAB_FUZZ_SEEDS`: `A-B` or a count `N` (seeds 1 to N).
fn seeds() -> (u64, u64) {
    let Ok(v) = std::env::var("MMIOLAB_FUZZ_SEEDS") else {
        return (1, 8);
    };
    match v.split_once('-') {
        Some((a, b)) => (a.trim().parse().unwrap_or(1), b.trim().parse().unwrap_or(8)),
        None => (1, v.trim().parse().unwrap_or(8)),
    }
}

/// One access as the trace shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Access {
    space: &'static str,
    write: bool,
    addr: u64,
    width: u64,
    /// Written value (reads: `None`).
    value: Option<u64>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.write { "write" } else { "read" };
        write!(f, "{} {op} {:#x} width {}", self.space, self.addr, self.width)?;
        match self.value {
            Some(v) => write!(f, " value {v:#x}"),
            None => Ok(()),
        }
    }
}

fn mask(width: u64) -> u64 {
    if width >= 8 { u64::MAX } else { (1 << (8 * width)) - 1 }
}

/// fuzz.S's generator, and the accesses it makes, as KVM delivers them.
struct Generator {
    state: u64,
    out: Vec<Access>,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator {
            state: if seed == 0 { 1 } else { seed },
            out: Vec::new(),
        }
    }

    /// xorshift64*.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An MMIO access; one crossing a page boundary reaches the VMM as two, split there.
    fn mmio(&mut self, write: bool, addr: u64, width: u64, value: u64) {
        let to_page_end = 0x1000 - (addr & 0xfff);
        let parts = if width > to_page_end {
            vec![
                (addr, to_page_end, value),
                (addr + to_page_end, width - to_page_end, value >> (8 * to_page_end)),
            ]
        } else {
            vec![(addr, width, value)]
        };
        for (addr, width, value) in parts {
            self.out.push(Access {
                space: "mmio",
                write,
                addr,
                width,
                value: write.then_some(value & mask(width)),
            });
        }
    }

    fn pio(&mut self, write: bool, port: u64, width: u64, value: u64) {
        self.out.push(Access {
            space: "pio",
            write,
            addr: port,
            width,
            value: write.then_some(value & mask(width)),
        });
    }

    /// Element `i` of width `w` of fuzz.S's `pattern` (byte j is 7j + 1), little-endian.
    fn pattern(i: u64, w: u64) -> u64 {
        (0..w).fold(0, |v, j| v | ((((i * w + j) * 7 + 1) & 0xff) << (8 * j)))
    }

    fn step(&mut self) {
        let r = self.next();
        let write = r >> 35 & 1 == 1;
        let count = 1 + (r >> 40 & 7);
        let zone_addr = || {
            let (base, span) = ZONES[((r >> 3) % ZONES.len() as u64) as usize];
            base + (r >> 8 & 0xff_ffff) % span
        };
        let port = || {
            let (base, span) = PORTS[((r >> 3) % PORTS.len() as u64) as usize];
            base + (r >> 8 & 0xff) % span
        };
        match r & 7 {
            0..=3 => {
                let mut addr = zone_addr();
                let wl = r >> 32 & 3;
                if r >> 34 & 1 == 1 {
                    addr &= u64::MAX << wl;
                }
                let value = if write { self.next() } else { 0 };
                self.mmio(write, addr, 1 << wl, value);
            }
            4 => {
                let b = BOUNDS[((r >> 3) % BOUNDS.len() as u64) as usize];
                let w = 2u64 << ((r >> 16) % 3);
                let k = 1 + (r >> 24 & 0xff) % (w - 1);
                let value = if write { self.next() } else { 0 };
                self.mmio(write, b - k, w, value);
            }
            5 => {
                let wl = r >> 32 & 3;
                let w = 1 << wl;
                let addr = zone_addr() & (u64::MAX << wl);
                let stos = write && r >> 36 & 1 == 1;
                let fill = if stos { self.next() } else { 0 };
                for i in 0..count {
                    let value = if stos { fill } else { Self::pattern(i, w) };
                    self.mmio(write, addr + i * w, w, value);
                }
            }
            6 => {
                let p = port();
                let w = 1 << ((r >> 32) % 3);
                for i in 0..count {
                    self.pio(write, p, w, Self::pattern(i, w));
                }
            }
            _ => {
                let p = port();
                let w = 1 << ((r >> 32) % 3);
                let value = if write { self.next() } else { 0 };
                self.pio(write, p, w, value);
            }
        }
    }
}

/// The accesses fuzz.S makes with `seed` in `steps` steps.
fn expected(seed: u64, steps: u64) -> Vec<Access> {
    let mut g = Generator::new(seed);
    for _ in 0..steps {
        g.step();
    }
    g.out
}

fn hex(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// The trace's access lines, as accesses, with each read's value and whether it reached a
/// device; the exit-port write is left out.
fn traced(lines: &[Value]) -> Result<Vec<(Access, u64, bool)>, Failed> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| l["kind"] == "access") {
        let bad = || format!("trace line {}: unexpected shape: {l}", i + 1);
        let space = match l["space"].as_str() {
            Some("mmio") => "mmio",
            Some("pio") => "pio",
            _ => return Err(bad().into()),
        };
        let write = match l["op"].as_str() {
            Some("write") => true,
            Some("read") => false,
            _ => return Err(bad().into()),
        };
        let addr = hex(&l["addr"]).ok_or_else(bad)?;
        let width = l["width"].as_u64().ok_or_else(bad)?;
        let value = hex(&l["value"]).ok_or_else(bad)?;
        if space == "pio" && addr == EXIT_PORT {
            continue;
        }
        let access = Access {
            space,
            write,
            addr,
            width,
            value: write.then_some(value),
        };
        out.push((access, value, !l["device"].is_null()));
    }
    Ok(out)
}

/// The demo model's registers whose trace policy is not `full` (models/demo.toml): `ID`
/// is `silent` (a 32-bit access; other widths are noted, so traced); `STATUS` and `QSTAT`
/// trace a read (of any width inside them) only when it differs from the last, and a write
/// only when it changes something. Such an access may be missing from the trace.
fn may_be_silent(a: &Access) -> bool {
    let demo = 0xd000_1000;
    let within = |reg: u64| a.addr >= demo + reg && a.addr + a.width <= demo + reg + 4;
    a.space == "mmio" && ((a.addr == demo && a.width == 4) || within(0x8) || within(0x24))
}

/// What the storage devices must read back: the built-in register files `rf` (MMIO) and
/// `pregs` (ports; ID, SIZE and DOORBELL, then storage from 0xc) and the `isa` hole's
/// trapped RAM (every byte storage, 0 at reset).
struct Shadows {
    regions: Vec<(&'static str, u64, Vec<u8>, u64)>,
}

impl Shadows {
    fn new() -> Shadows {
        let regfile = |size: u64| {
            let mut bytes = vec![0u8; size as usize];
            bytes[..4].copy_from_slice(&0x4d4d_494fu32.to_le_bytes());
            bytes[4..8].copy_from_slice(&(size as u32).to_le_bytes());
            bytes
        };
        Shadows {
            regions: vec![
                ("mmio", 0xd000_0000, regfile(0x1000), 0xc),
                ("pio", 0x300, regfile(0x10), 0xc),
                ("mmio", 0xa_0000, vec![0; 0x6_0000], 0),
            ],
        }
    }

    /// Applies a write, or checks a read against what was written; `None` if it agrees.
    fn check(&mut self, a: &Access, value: u64) -> Option<String> {
        let (_, base, bytes, stored_from) = self.regions.iter_mut().find(|(space, base, bytes, _)| {
            *space == a.space && a.addr >= *base && a.addr + a.width <= *base + bytes.len() as u64
        })?;
        let off = (a.addr - *base) as usize;
        if a.write {
            for k in 0..a.width as usize {
                if (off + k) as u64 >= *stored_from {
                    bytes[off + k] = (value >> (8 * k)) as u8;
                }
            }
            return None;
        }
        let want = (0..a.width as usize).fold(0u64, |v, k| v | u64::from(bytes[off + k]) << (8 * k));
        (want != value).then(|| format!("read {value:#x}, but the device holds {want:#x} there (base {base:#x})"))
    }
}

/// A copy of fuzz.S's ELF with `seed` and `steps` patched in after the marker.
fn patched_elf(seed: u64, steps: u64, dir: &Path) -> Result<PathBuf, Failed> {
    let elf = mmiolab_firmware::elf("fuzz").ok_or("no bundled firmware `fuzz`")?;
    let mut bytes = std::fs::read(&elf)?;
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .ok_or("fuzz.elf has no seed marker")?;
    // `.balign 8` after the marker: file offsets and addresses agree modulo the page size.
    let seed_at = (at + MARKER.len()).next_multiple_of(8);
    bytes[seed_at..seed_at + 8].copy_from_slice(&seed.to_le_bytes());
    bytes[seed_at + 8..seed_at + 16].copy_from_slice(&steps.to_le_bytes());
    let out = dir.join(format!("fuzz-{seed}.elf"));
    std::fs::write(&out, bytes)?;
    Ok(out)
}

fn fuzz_one(seed: u64, steps: u64) -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("mmiolab-fuzz-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let elf = patched_elf(seed, steps, &dir)?;
    let trace = dir.join("trace.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_mmiolab"))
        .args(["run", "--config", MACHINE, "--timeout", "300", "--firmware"])
        .arg(&elf)
        .arg("--trace")
        .arg(&trace)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let keep = || {
        format!(
            "seed {seed}, {steps} steps; kept in {} (rerun: mmiolab run --config tests/machines/fuzz.toml --firmware {} --trace FILE)",
            dir.display(),
            elf.display()
        )
    };
    if out.status.code() != Some(0) || stderr.contains("panicked") {
        return Err(format!(
            "{}: mmiolab ended with {:?}, not the guest's status 0\nstderr:\n{stderr}",
            keep(),
            out.status.code()
        )
        .into());
    }
    let lines = std::fs::read_to_string(&trace)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?;
    let got = traced(&lines)?;
    let want = expected(seed, steps);
    let mut shadows = Shadows::new();
    let mut j = 0;
    for (i, w) in want.iter().enumerate() {
        let Some((g, value, device)) = got.get(j) else {
            return Err(format!(
                "{}: the program made {} accesses, the trace ends after {j} of them; first untraced: {w}",
                keep(),
                want.len()
            )
            .into());
        };
        if w != g {
            if may_be_silent(w) {
                continue;
            }
            let around: Vec<String> = want
                .iter()
                .skip(i.saturating_sub(3))
                .take(7)
                .map(|a| format!("  {a}"))
                .collect();
            return Err(format!(
                "{}: access {i} differs: the program made {w}, the trace has {g}\nexpected around it:\n{}",
                keep(),
                around.join("\n")
            )
            .into());
        }
        j += 1;
        if !g.write && !device && *value != mask(g.width) {
            return Err(format!(
                "{}: access {i}, {g}, reached no device but read {value:#x}, not all ones",
                keep()
            )
            .into());
        }
        if let Some(why) = shadows.check(g, *value) {
            return Err(format!("{}: access {i}, {g}: {why}", keep()).into());
        }
    }
    if let Some((extra, _, _)) = got.get(j) {
        return Err(format!(
            "{}: the trace has {} accesses, the program made {}; first extra: {extra}",
            keep(),
            got.len(),
            want.len()
        )
        .into());
    }
    std::fs::remove_dir_all(&dir)?;
    eprintln!(
        "seed {seed}: {} accesses in {steps} steps, all traced as made",
        want.len()
    );
    Ok(())
}

/// The Rust generator's tables are fuzz.S's: read them out of the ELF's `.data` (they
/// follow the seed and the step count) and compare.
fn tables_match() -> Result<(), Failed> {
    let elf = mmiolab_firmware::elf("fuzz").ok_or("no bundled firmware `fuzz`")?;
    let bytes = std::fs::read(elf)?;
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .ok_or("fuzz.elf has no seed marker")?;
    let mut q = (at + MARKER.len()).next_multiple_of(8) + 16;
    let mut quad = || {
        let v = u64::from_le_bytes(bytes[q..q + 8].try_into().expect("8 bytes"));
        q += 8;
        v
    };
    let zones: Vec<(u64, u64)> = (0..ZONES.len()).map(|_| (quad(), quad())).collect();
    let bounds: Vec<u64> = (0..BOUNDS.len()).map(|_| quad()).collect();
    let ports: Vec<(u64, u64)> = (0..PORTS.len()).map(|_| (quad(), quad())).collect();
    let pattern: Vec<u64> = (0..8).map(|_| quad()).collect();
    if zones != ZONES || bounds != BOUNDS || ports != PORTS {
        return Err(format!("fuzz.S's tables differ from tests/fuzz.rs's: {zones:x?} {bounds:x?} {ports:x?}").into());
    }
    if (0..8).any(|i| pattern[i as usize] != Generator::pattern(i, 8)) {
        return Err("fuzz.S's pattern differs from tests/fuzz.rs's".into());
    }
    Ok(())
}
