//! Regression guard on mmiolab's trapped-access path: user-space instructions per exit,
//! counted with callgrind (exact, unlike wall time), must stay under a generous ceiling.
//!
//! The guard boots the benchmark payload on `tests/machines/bench.toml` and counts the
//! instructions of `mmiolab run` at N MMIO writes to the register file and at none; the
//! difference over N is what mmiolab spends per exit (KVM_RUN, decode, bus lookup, device).
//! mmiolab is built first, in this test's profile, so the count is never of a stale binary:
//! in an optimised build (`cargo test --release`) the ceiling is 500, twice the 250 target;
//! an unoptimised build executes about 12x as many instructions on the same path (about
//! 4,600 when this was written), so there the ceiling is 10,000.
//!
//! Without read-write /dev/kvm or without valgrind the guard is reported as ignored, with
//! the reason, never as passed.

use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use mmiolab_bench::kinds::Kind;
use mmiolab_bench::runner::{Runner, Setup};
use mmiolab_bench::{build_mmiolab, callgrind, default_payload, machine_file};

/// Accesses in the counted run: enough that the event-loop thread's few wake-ups (a few
/// hundred instructions) vanish in the quotient, few enough to take about a second.
const N: u64 = 1_000;
const CEILING_OPTIMISED: f64 = 500.0;
const CEILING_UNOPTIMISED: f64 = 10_000.0;

fn main() {
    let args = Arguments::from_args();
    let missing = missing();
    if let Some(reason) = &missing {
        eprintln!("the instruction-count guard is ignored: {reason}");
    }
    let trial = Trial::test("mmiolab_user_instructions_per_mmio_write_exit_under_ceiling", guard)
        .with_ignored_flag(missing.is_some());
    libtest_mimic::run(&args, vec![trial]).exit();
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

fn guard() -> Result<(), Failed> {
    let optimised = !cfg!(debug_assertions);
    let ceiling = if optimised {
        CEILING_OPTIMISED
    } else {
        CEILING_UNOPTIMISED
    };
    let valgrind = callgrind::valgrind().ok_or("valgrind disappeared")?;
    let work = std::env::temp_dir().join(format!("mmiolab-bench-guard-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let setup = Setup {
        bench_exe: PathBuf::new(),
        mmiolab: build_mmiolab(optimised).map_err(|e| format!("{e:#}"))?,
        qemu: None,
        payload: default_payload().map_err(|e| format!("{e:#}"))?,
        machine: machine_file(),
        work: work.clone(),
    };
    let kind = Kind::parse("mmio-write/device").ok_or("no such kind")?;
    let count = |n: u64| -> Result<u64, Failed> {
        let (program, args) = setup.command(Runner::Mmiolab, kind, n)?;
        let out = work.join(format!("callgrind.{n}"));
        let c = callgrind::count(&valgrind, &program, &args, &out, Duration::from_secs(120))
            .map_err(|e| format!("{e:#}"))?;
        setup
            .check(Runner::Mmiolab, kind, n, c.code, &c.output)
            .map_err(|e| format!("{e:#}"))?;
        Ok(c.total)
    };
    let at_n = count(N)?;
    let at_zero = count(0)?;
    std::fs::remove_dir_all(&work)?;
    let per_exit = callgrind::per_exit(N, at_n, at_zero);
    eprintln!(
        "mmiolab, {} build: {per_exit:.1} user-space instructions per exit ({at_n} at N = {N}, {at_zero} at 0); ceiling {ceiling}",
        if optimised { "optimised" } else { "unoptimised" }
    );
    if per_exit > ceiling {
        return Err(format!(
            "mmiolab spends {per_exit:.1} user-space instructions per trapped MMIO write, over the ceiling of {ceiling}: \
             run `cargo run --release -p mmiolab-bench -- run --kinds w` to see where they go"
        )
        .into());
    }
    Ok(())
}
