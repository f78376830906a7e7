//! The benchmark run: probe each runner, time interleaved runs, count instructions with
//! callgrind, and put it all into a [`Report`].
//!
//! Timing: for each repetition and kind, every runner runs the payload at N accesses, then
//! every runner at 0, the runners' order rotating from one repetition to the next, so that
//! drift in the machine's load hits all runners alike. One pair of runs gives one sample of
//! (t(N) − t(0)) / N: the process's start-up, the boot and the shut-down cancel out.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::callgrind;
use crate::components::Op;
use crate::kinds::Kind;
use crate::proc;
use crate::report::{
    Breakdown, Component, Host, KindReport, Report, RunnerResult, SettingsOut, Skipped, Summary, TargetCheck,
};
use crate::runner::{Described, MEMORY_MIB, Runner, Setup};

/// Accesses per run while probing a runner.
const PROBE_N: u64 = 24;

/// What to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Programs and files.
    pub setup: Setup,
    /// Access kinds.
    pub kinds: Vec<Kind>,
    /// Runners asked for.
    pub runners: Vec<Runner>,
    /// Accesses per timed run.
    pub n: u64,
    /// Timed pairs per runner and kind.
    pub reps: usize,
    /// Accesses per callgrind run, and valgrind; None skips callgrind.
    pub callgrind: Option<(u64, PathBuf)>,
    /// Per-function / per-file attribution of mmiolab's instructions.
    pub breakdown: bool,
    /// Longest any one run may take.
    pub timeout: Duration,
}

/// Raw measurements of one runner on one kind, in repetition order.
#[derive(Default)]
struct Samples {
    /// Wall time at N and at 0, s.
    wall_n: Vec<f64>,
    wall_0: Vec<f64>,
    /// User + system CPU time at N and at 0, s.
    cpu_n: Vec<f64>,
    cpu_0: Vec<f64>,
    maxrss_kib: u64,
}

/// Per-exit samples: each run at N minus the median run at 0, over N, ns. Using the median
/// start-up rather than the paired run's keeps start-up noise (several ms) out of the
/// samples.
fn per_exit(at_n: &[f64], at_0: &[f64], n: u64) -> Vec<f64> {
    let Some(zero) = Summary::of(at_0).map(|z| z.median) else {
        return Vec::new();
    };
    at_n.iter().map(|t| (t - zero) * 1e9 / n as f64).collect()
}

/// `a[i] / b[i]` over repetitions: runs of one repetition are close in time, so the ratio
/// cancels slow drift of the machine (its median is the reported ratio).
fn paired_ratio(a: &[f64], b: &[f64]) -> Option<Summary> {
    let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Summary::of(&r)
}

fn progress(msg: &str) {
    eprintln!("mmiolab-bench: {msg}");
}

/// Runs `runner` on `kind` at `n` and checks the result; returns the finished process.
fn run_once(s: &Settings, runner: Runner, kind: Kind, n: u64) -> Result<proc::Finished> {
    let (program, args) = s.setup.command(runner, kind, n)?;
    s.setup.clear_trace();
    let log = s.setup.work.join(format!("{}.log", runner.key()));
    let done = proc::run_launched(&s.setup.bench_exe, &program, &args, s.timeout, &log)?;
    s.setup
        .check(runner, kind, n, done.code, &done.output)
        .with_context(|| format!("{} on {} at N = {n}", runner.label(), kind.id()))?;
    Ok(done)
}

fn host(s: &Settings) -> Host {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let first_line = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
    };
    let modules = ["kvm_pvm", "kvm_intel", "kvm_amd"];
    let kvm_module = modules
        .iter()
        .filter(|m| std::path::Path::new("/sys/module").join(m).exists())
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    Host {
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        kvm_module: if kvm_module.is_empty() {
            "unknown".to_owned()
        } else {
            kvm_module
        },
        cpu: read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after: String::new(),
        qemu_version: s
            .setup
            .qemu
            .as_ref()
            .and_then(|q| first_line(Command::new(q).arg("--version"))),
        valgrind_version: s
            .callgrind
            .as_ref()
            .and_then(|(_, v)| first_line(Command::new(v).arg("--version"))),
        rss_floor_kib: 0,
        started_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    }
}

/// Runs the whole benchmark.
pub fn run(s: &Settings) -> Result<Report> {
    let began = Instant::now();
    std::fs::create_dir_all(&s.setup.work).with_context(|| format!("creating {}", s.setup.work.display()))?;
    let mut host = host(s);
    let floor = proc::run_launched(
        &s.setup.bench_exe,
        std::path::Path::new("/bin/true"),
        &[],
        s.timeout,
        &s.setup.work.join("true.log"),
    )?;
    host.rss_floor_kib = floor.maxrss_kib;

    // Probe: every runner must run every kind correctly, or it is left out with the reason.
    let mut runners = Vec::new();
    let mut skipped = Vec::new();
    for &runner in &s.runners {
        if runner == Runner::Qemu && s.setup.qemu.is_none() {
            skipped.push(Skipped {
                runner,
                reason: "qemu-system-x86_64 is not installed (not on PATH)".to_owned(),
            });
            continue;
        }
        let probe = s
            .kinds
            .iter()
            .filter(|&&k| runner.runs(k))
            .try_for_each(|&k| run_once(s, runner, k, PROBE_N).map(drop));
        match probe {
            Ok(()) => runners.push(runner),
            Err(e) => {
                let mut reason = format!("{e:#}");
                let elf32 = std::fs::read(&s.setup.payload).is_ok_and(|f| f.get(4) == Some(&1));
                if elf32 && runner.is_mmiolab() {
                    reason.push_str(
                        " (the payload is an ELF32 file, and mmiolab loads PVH kernels with linux-loader, \
                         which takes only ELF64: see docs/performance.md)",
                    );
                }
                progress(&format!("{} cannot run the payload: {reason}", runner.label()));
                skipped.push(Skipped { runner, reason });
            }
        }
    }

    // Timed runs.
    let mut samples: BTreeMap<(usize, Runner), Samples> = BTreeMap::new();
    for rep in 0..s.reps {
        progress(&format!("timed runs, repetition {} of {}", rep + 1, s.reps));
        for (ki, &kind) in s.kinds.iter().enumerate() {
            let mut order: Vec<Runner> = runners.iter().copied().filter(|r| r.runs(kind)).collect();
            let len = order.len();
            if len > 0 {
                order.rotate_left(rep % len);
            }
            let mut at_n = Vec::new();
            for &r in &order {
                at_n.push(run_once(s, r, kind, s.n)?);
            }
            for (&r, big) in order.iter().zip(at_n) {
                let zero = run_once(s, r, kind, 0)?;
                let cpu = |f: &proc::Finished| (f.user + f.sys).as_secs_f64();
                let e = samples.entry((ki, r)).or_default();
                e.wall_n.push(big.wall.as_secs_f64());
                e.wall_0.push(zero.wall.as_secs_f64());
                e.cpu_n.push(cpu(&big));
                e.cpu_0.push(cpu(&zero));
                e.maxrss_kib = e.maxrss_kib.max(big.maxrss_kib).max(zero.maxrss_kib);
            }
        }
    }

    // Instruction counts.
    let mut counted: BTreeMap<(usize, Runner), (f64, u64, Option<Breakdown>)> = BTreeMap::new();
    if let Some((cn, valgrind)) = &s.callgrind {
        for (ki, &kind) in s.kinds.iter().enumerate() {
            progress(&format!("callgrind: {}", kind.id()));
            for &r in runners.iter().filter(|r| r.runs(kind)) {
                let count_at = |n: u64| -> Result<callgrind::Counted> {
                    let (program, args) = s.setup.callgrind_command(r, kind, n)?;
                    s.setup.clear_trace();
                    let out = s
                        .setup
                        .work
                        .join(format!("callgrind.{}.{}.{n}", r.key(), kind.id().replace('/', "-")));
                    let c = callgrind::count(valgrind, &program, &args, &out, s.timeout)?;
                    s.setup
                        .check(r, kind, n, c.code, &c.output)
                        .with_context(|| format!("{} under callgrind on {} at N = {n}", r.label(), kind.id()))?;
                    Ok(c)
                };
                let big = count_at(*cn)?;
                let zero = count_at(0)?;
                let per = callgrind::per_exit(*cn, big.total, zero.total);
                let breakdown = if s.breakdown && (r.is_mmiolab() || r == Runner::Raw) {
                    Some(Breakdown {
                        by_function: callgrind::diff_per_exit(
                            *cn,
                            &callgrind::by_function(&big.file)?,
                            &callgrind::by_function(&zero.file)?,
                            0.5,
                        ),
                        by_source_file: callgrind::diff_per_exit(
                            *cn,
                            &callgrind::by_source_file(&big.file)?,
                            &callgrind::by_source_file(&zero.file)?,
                            0.5,
                        ),
                    })
                } else {
                    None
                };
                counted.insert((ki, r), (per, zero.total, breakdown));
            }
        }
    }

    // The hot path's pieces alone.
    let mut pieces = Vec::new();
    if let (true, Some((_, valgrind))) = (s.breakdown, &s.callgrind) {
        progress("callgrind: the hot path's pieces");
        const PIECE_N: u64 = 100_000;
        let mut per_op = Vec::new();
        for op in Op::ALL {
            let count_at = |n: u64| -> Result<u64> {
                let args = ["components", "--op", op.name(), "--n", &n.to_string()].map(OsString::from);
                let out = s.setup.work.join(format!("callgrind.components.{}.{n}", op.name()));
                let c = callgrind::count(valgrind, &s.setup.bench_exe, &args, &out, s.timeout)?;
                anyhow::ensure!(
                    c.code == Some(0),
                    "components {} failed: {}",
                    op.name(),
                    c.output.trim()
                );
                Ok(c.total)
            };
            per_op.push((op, callgrind::per_exit(PIECE_N, count_at(PIECE_N)?, count_at(0)?)));
        }
        let empty = per_op.iter().find(|(op, _)| *op == Op::Empty).map_or(0.0, |x| x.1);
        for (op, v) in per_op {
            pieces.push(Component {
                op: op.name().to_owned(),
                what: op.what().to_owned(),
                instructions: if op == Op::Empty { v } else { v - empty },
            });
        }
    }

    // Assemble.
    let mut kinds = Vec::new();
    for (ki, &kind) in s.kinds.iter().enumerate() {
        let wall = |r: Runner| {
            samples
                .get(&(ki, r))
                .map(|x| per_exit(&x.wall_n, &x.wall_0, s.n))
                .unwrap_or_default()
        };
        let raw = wall(Runner::Raw);
        let qemu = wall(Runner::Qemu);
        let results = runners
            .iter()
            .filter(|r| r.runs(kind))
            .map(|&r| {
                let smp = samples.get(&(ki, r));
                let mine = wall(r);
                let c = counted.get(&(ki, r));
                RunnerResult {
                    runner: r,
                    machine: r.is_mmiolab().then(|| s.setup.machine_of(r).display().to_string()),
                    ratio_to_raw: paired_ratio(&mine, &raw).map(|r| r.median),
                    ratio_to_raw_quartiles: paired_ratio(&mine, &raw).map(|r| r.quartiles()),
                    ratio_to_qemu: paired_ratio(&mine, &qemu).map(|r| r.median),
                    wall_ns_per_exit: Summary::of(&mine),
                    cpu_ns_per_exit: smp.and_then(|x| Summary::of(&per_exit(&x.cpu_n, &x.cpu_0, s.n))),
                    startup_ms: smp.and_then(|x| Summary::of(&x.wall_0.iter().map(|t| t * 1e3).collect::<Vec<_>>())),
                    peak_rss_kib: smp.map(|x| x.maxrss_kib),
                    instructions_per_exit: c.map(|c| c.0),
                    instructions_at_zero: c.map(|c| c.1),
                    breakdown: c.and_then(|c| c.2.clone()),
                }
            })
            .collect();
        kinds.push(KindReport {
            kind: kind.id(),
            access: kind.to_string(),
            answered_by: kind.what_answers().to_owned(),
            cmdline: kind.cmdline(s.n),
            results,
        });
    }
    let targets = targets(&kinds, &samples, s);
    host.load_after = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Report {
        host,
        settings: SettingsOut {
            n: s.n,
            reps: s.reps,
            callgrind_n: s.callgrind.as_ref().map(|c| c.0),
            payload: s.setup.payload.display().to_string(),
            machine: s.setup.machine.display().to_string(),
            mmiolab: s.setup.mmiolab.display().to_string(),
            qemu: s.setup.qemu.as_ref().map(|q| q.display().to_string()),
            memory_mib: MEMORY_MIB,
        },
        skipped,
        kinds,
        components: pieces,
        targets,
        duration_s: began.elapsed().as_secs_f64(),
    })
}

/// The issues' targets: trace off <= 250 instructions per exit and wall <= 1.03x the raw
/// loop; trace on <= 1,000 instructions; start-up <= 10 ms; peak RSS <= 10 MiB. Described
/// devices: a plain register 250 / 1,000 (trace off / on), the W1C register and the FIFO
/// 1.5x that.
fn targets(kinds: &[KindReport], samples: &BTreeMap<(usize, Runner), Samples>, s: &Settings) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    let mut check = |what: String, value: f64, limit: f64, note: Option<String>| {
        t.push(TargetCheck {
            what,
            value,
            limit,
            met: value <= limit,
            note,
        })
    };
    for k in kinds {
        for r in &k.results {
            match r.runner {
                Runner::Mmiolab => {
                    if let Some(v) = r.instructions_per_exit {
                        check(format!("{}: mmiolab instructions/exit", k.kind), v, 250.0, None);
                    }
                    if let (Some(v), Some((q1, q3))) = (r.ratio_to_raw, r.ratio_to_raw_quartiles) {
                        let note = format!(
                            "per-repetition ratios' interquartile range {q1:.3}-{q3:.3}{}",
                            if q1 <= 1.03 && q3 > 1.03 {
                                ": not resolved at this machine's run-to-run noise"
                            } else {
                                ""
                            }
                        );
                        check(
                            format!("{}: mmiolab wall/exit vs raw loop", k.kind),
                            v,
                            1.03,
                            Some(note),
                        );
                    }
                }
                Runner::MmiolabTrace => {
                    if let Some(v) = r.instructions_per_exit {
                        check(
                            format!("{}: mmiolab --trace instructions/exit", k.kind),
                            v,
                            1000.0,
                            None,
                        );
                    }
                }
                Runner::Described(d) | Runner::DescribedTrace(d) => {
                    let Some(v) = r.instructions_per_exit else { continue };
                    let traced = r.runner.traced();
                    let (off, on) = d.targets();
                    // The register file's row of the same kind and tracing, for comparison.
                    let baseline = if traced { Runner::MmiolabTrace } else { Runner::Mmiolab };
                    let regfile = k
                        .results
                        .iter()
                        .find(|x| x.runner == baseline)
                        .and_then(|x| x.instructions_per_exit);
                    let mut note = regfile.map(|x| format!("register file: {x:.0}"));
                    if d == Described::Fifo && k.kind.contains("write") {
                        let push = "a push: the issue sets no target, the FIFO pop's is applied";
                        note = Some(note.map_or_else(|| push.to_owned(), |n| format!("{n}; {push}")));
                    }
                    check(
                        format!("{}: {} instructions/exit", k.kind, r.runner.label()),
                        v,
                        if traced { on } else { off },
                        note,
                    );
                }
                Runner::Raw | Runner::Qemu => {}
            }
        }
    }
    let all = |r: Runner| -> (Vec<f64>, u64) {
        let mut v = Vec::new();
        let mut rss = 0;
        for ki in 0..s.kinds.len() {
            if let Some(x) = samples.get(&(ki, r)) {
                v.extend(x.wall_0.iter().map(|t| t * 1e3));
                rss = rss.max(x.maxrss_kib);
            }
        }
        (v, rss)
    };
    let (startup, rss) = all(Runner::Mmiolab);
    if let Some(m) = Summary::of(&startup) {
        let raw = Summary::of(&all(Runner::Raw).0)
            .map(|r| format!("the raw loop's, on the same KVM set-up: {:.1} ms", r.median));
        check(
            "mmiolab start-up at N = 0 (median over all kinds), ms".to_owned(),
            m.median,
            10.0,
            raw,
        );
        check(
            format!("mmiolab peak RSS, MiB ({MEMORY_MIB} MiB guest; it touches < 0.1 MiB of it)"),
            rss as f64 / 1024.0,
            10.0,
            None,
        );
    }
    t
}
