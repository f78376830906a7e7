//! Regression guard on mmiolab's trapped-access path: user-space instructions per exit,
//! counted with callgrind (exact, unlike wall time), must stay under a generous ceiling.
//!
//! Each trial boots the benchmark payload and counts the instructions of `mmiolab run` at N
//! accesses and at none; the difference over N is what mmiolab spends per exit (KVM_RUN,
//! decode, bus lookup, device, trace). The trials:
//!
//! | trial | machine | access | target | ceiling |
//! |---|---|---|---|---|
//! | register file | tests/machines/bench.toml | MMIO write | 250 | 500 |
//! | described plain register | bench-described-plain.toml | MMIO write, MMIO read | 250 | 250 |
//! | described W1C status register | bench-described-w1c.toml | MMIO write | 375 | 375 |
//! | described FIFO pop | bench-described-fifo.toml | MMIO read (empty FIFO) | 375 | 375 |
//! | described plain register, `--trace` | bench-described-plain.toml | MMIO write | 1,000 | 1,000 |
//!
//! The described devices' ceilings are their targets (docs/performance.md), met when set
//! (plain 230, W1C 344, FIFO pop 371, traced plain write 989). The register file's is twice
//! its target. All in an optimised build (`cargo test --release`). mmiolab is built first, in this test's profile, so the count is
//! never of a stale binary; an unoptimised build executes several times as many instructions
//! on the same path (4,600 for the register file when the guard was written, 1,335 when the
//! described trials were added: 7x; the described plain register 4,322, traced 26,170), so
//! there every ceiling is 20 times the optimised one (10,000 for the register file).
//!
//! Without read-write /dev/kvm or without valgrind every trial is reported as ignored, with
//! the reason, never as passed.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use mmiolab_bench::kinds::Kind;
use mmiolab_bench::runner::{Described, Runner, Setup};
use mmiolab_bench::{build_mmiolab, callgrind, default_payload, machine_file};

/// Accesses in the counted run: enough that the event-loop thread's few wake-ups (a few
/// hundred instructions) vanish in the quotient, few enough to take about a second.
const N: u64 = 1_000;
/// Unoptimised ceilings are this many times the optimised ones.
const UNOPTIMISED_FACTOR: f64 = 20.0;

/// One guarded path.
struct Guarded {
    name: &'static str,
    runner: Runner,
    /// The payload's letter for the access (`w` MMIO write, `r` MMIO read).
    kind: &'static str,
    /// Ceiling in an optimised build, instructions per exit.
    ceiling: f64,
    /// The access, in the failure message.
    what: &'static str,
}

static GUARDED: [Guarded; 6] = [
    Guarded {
        name: "mmiolab_user_instructions_per_mmio_write_exit_under_ceiling",
        runner: Runner::Mmiolab,
        kind: "w",
        ceiling: 500.0,
        what: "trapped MMIO write to the register file",
    },
    Guarded {
        name: "described_plain_register_mmio_write_under_ceiling",
        runner: Runner::Described(Described::Plain),
        kind: "w",
        ceiling: 250.0,
        what: "MMIO write to a described plain register",
    },
    Guarded {
        name: "described_plain_register_mmio_read_under_ceiling",
        runner: Runner::Described(Described::Plain),
        kind: "r",
        ceiling: 250.0,
        what: "MMIO read of a described plain register",
    },
    Guarded {
        name: "described_w1c_status_mmio_write_under_ceiling",
        runner: Runner::Described(Described::W1c),
        kind: "w",
        ceiling: 375.0,
        what: "MMIO write to a described W1C status register",
    },
    Guarded {
        name: "described_fifo_pop_mmio_read_under_ceiling",
        runner: Runner::Described(Described::Fifo),
        kind: "r",
        ceiling: 375.0,
        what: "MMIO read popping a described FIFO",
    },
    Guarded {
        name: "described_plain_register_traced_mmio_write_under_ceiling",
        runner: Runner::DescribedTrace(Described::Plain),
        kind: "w",
        ceiling: 1000.0,
        what: "traced MMIO write to a described plain register",
    },
];

fn main() {
    let args = Arguments::from_args();
    let missing = missing();
    if let Some(reason) = &missing {
        eprintln!("the instruction-count guard is ignored: {reason}");
    }
    let trials = GUARDED
        .iter()
        .map(|g| Trial::test(g.name, move || guard(g)).with_ignored_flag(missing.is_some()))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn missing() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        return Some(format!("/dev/kvm cannot be opened read-write: {e}"));
    }
    if callgrind::valgrind().is_none() {
        return Some("valgrind is not installed (not on PATH)".to_owned());
    }
    None
}

/// mmiolab, built once for every trial (trials run in parallel).
fn mmiolab(optimised: bool) -> Result<PathBuf, Failed> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_mmiolab(optimised).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(Failed::from)
}

fn guard(g: &Guarded) -> Result<(), Failed> {
    let optimised = !cfg!(debug_assertions);
    let ceiling = if optimised {
        g.ceiling
    } else {
        g.ceiling * UNOPTIMISED_FACTOR
    };
    let valgrind = callgrind::valgrind().ok_or("valgrind disappeared")?;
    let work = std::env::temp_dir().join(format!("mmiolab-bench-guard-{}-{}", std::process::id(), g.name));
    std::fs::create_dir_all(&work)?;
    let setup = Setup {
        bench_exe: PathBuf::new(),
        mmiolab: mmiolab(optimised)?,
        qemu: None,
        payload: default_payload().map_err(|e| format!("{e:#}"))?,
        machine: machine_file(),
        work: work.clone(),
    };
    let kind = Kind::parse(g.kind).ok_or("no such kind")?;
    let count = |n: u64| -> Result<u64, Failed> {
        let (program, args) = setup.callgrind_command(g.runner, kind, n)?;
        setup.clear_trace();
        let out = work.join(format!("callgrind.{n}"));
        let c = callgrind::count(&valgrind, &program, &args, &out, Duration::from_secs(120))
            .map_err(|e| format!("{e:#}"))?;
        setup
            .check(g.runner, kind, n, c.code, &c.output)
            .map_err(|e| format!("{e:#}"))?;
        Ok(c.total)
    };
    let at_n = count(N)?;
    let at_zero = count(0)?;
    std::fs::remove_dir_all(&work)?;
    let per_exit = callgrind::per_exit(N, at_n, at_zero);
    eprintln!(
        "{} ({}), {} build: {per_exit:.1} user-space instructions per exit ({at_n} at N = {N}, {at_zero} at 0); ceiling {ceiling}",
        g.name,
        g.runner.label(),
        if optimised { "optimised" } else { "unoptimised" }
    );
    if per_exit > ceiling {
        let mut rerun = format!("--kinds {} --runners {}", g.kind, g.runner.key());
        if g.runner.described().is_some() {
            rerun.push_str(",mmiolab");
        }
        return Err(format!(
            "mmiolab spends {per_exit:.1} user-space instructions per {}, over the ceiling of {ceiling}: \
             run `cargo run --release -p mmiolab-bench -- run {rerun}` to see where they go",
            g.what
        )
        .into());
    }
    Ok(())
}
