//! `mmiolab-bench`: the trapped-access benchmark (docs/performance.md).
//!
//! `mmiolab-bench run` times and counts every runner on every access kind, prints a table per
//! kind and writes `target/bench/report.json`. `mmiolab-bench rawloop` is the raw-loop runner
//! itself, which `run` starts as a separate process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use mmiolab_bench::bench::{self, Settings};
use mmiolab_bench::kinds::{KINDS, Kind};
use mmiolab_bench::runner::{self, MEMORY_MIB, Runner, Setup};
use mmiolab_bench::{build_mmiolab, callgrind, default_payload, machine_file, workspace_root};
use mmiolab_bench::{components, linux, proc, rawloop, scale};

#[derive(Parser)]
#[command(
    name = "mmiolab-bench",
    about = "Benchmark of mmiolab's trapped-access path against a raw KVM loop and QEMU microvm"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark: every runner on every access kind; tables on stdout, JSON report.
    Run(RunArgs),
    /// The raw-loop runner: boot a PVH ELF on bare KVM and answer every exit with no work.
    Rawloop(RawArgs),
    /// Run one piece of the hot path in a loop (for callgrind; `run` prices each piece).
    Components {
        /// Which piece.
        #[arg(long, value_enum)]
        op: components::Op,
        /// How many times.
        #[arg(long)]
        n: u64,
    },
    /// Run a program and write its wall time, CPU times, peak RSS and status as JSON (how
    /// `run` starts every runner, so the runner's peak RSS is not inflated by `run`'s own).
    Launch(LaunchArgs),
    /// Machine build time (and lookup cost) at growing numbers of devices, registers and
    /// regions: a table on stdout (docs/performance.md, "Scale").
    Scale(ScaleArgs),
    /// The Linux boot benchmark: the guest kernel and a minimal initramfs booted under
    /// mmiolab and QEMU microvm, interleaved (guest/bench/run.sh, nested where the host's KVM
    /// cannot boot Linux); a table on stdout and in OUT/report.md.
    Linux(LinuxArgs),
    /// Boot once, timed from the console (what guest/bench/boot-loop.sh runs per boot): one
    /// JSON sample on stdout.
    BootOnce(BootOnceArgs),
    /// Build one generated machine and exit (what the scale test counts under callgrind).
    ScaleOne {
        /// What grows.
        #[arg(long, value_enum)]
        axis: scale::Axis,
        /// How many.
        #[arg(long)]
        n: usize,
        /// Also look every device up this many times (devices axis only).
        #[arg(long, default_value_t = 0)]
        lookups: usize,
    },
}

#[derive(Args)]
struct LinuxArgs {
    /// Boots per runner.
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// auto: directly on hardware KVM, else nested; always; never.
    #[arg(long, default_value = "auto")]
    nested: String,
    /// The mmiolab binary; default: build it with `cargo build --release -p mmiolab`.
    #[arg(long)]
    mmiolab: Option<PathBuf>,
    /// Where the samples, consoles and report go (default: target/bench/linux).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Longest one boot may take, seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Boot this bzImage instead of building the guest kernel (guest/kernel/build.sh).
    #[arg(long)]
    kernel: Option<PathBuf>,
}

#[derive(Args)]
struct BootOnceArgs {
    /// The runner's name in the sample.
    #[arg(long)]
    runner: String,
    /// The repetition's number in the sample.
    #[arg(long)]
    rep: u32,
    /// Text of the init's first line.
    #[arg(long)]
    marker: String,
    /// Kill the VMM after this many seconds (the boot then fails).
    #[arg(long)]
    timeout: u64,
    /// The console goes here (the VMM's stderr next to it, `.stderr`).
    #[arg(long)]
    console: PathBuf,
    /// The VMM and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
struct ScaleArgs {
    /// Device counts (comma-separated; `--devices` alone: skip).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [10, 1_000, 100_000])]
    devices: Vec<usize>,
    /// Register counts of one described device (comma-separated; a description has at most
    /// 4,096 registers; `--registers` alone: skip).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [10, 1_000, 4_096])]
    registers: Vec<usize>,
    /// Window counts in one device region (comma-separated; `--regions` alone: skip).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_values_t = [10, 1_000, 100_000])]
    regions: Vec<usize>,
    /// Builds per size; the table shows the fastest.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

#[derive(Args)]
struct LaunchArgs {
    /// Kill the program after this many seconds.
    #[arg(long)]
    timeout: u64,
    /// The program's stderr goes here.
    #[arg(long)]
    log: PathBuf,
    /// The measurement goes here.
    #[arg(long)]
    result: PathBuf,
    /// Program and arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
struct RunArgs {
    /// Accesses per timed run.
    #[arg(long, default_value_t = 30_000)]
    n: u64,
    /// Timed pairs of runs (at N and at 0) per runner and kind.
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Access kinds, comma-separated ids (mmio-write/device) or payload letters (w);
    /// default: all six.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Runners, comma-separated: raw, mmiolab, mmiolab_trace, qemu, and mmiolab on the
    /// described-device machines: described_plain, described_plain_trace, described_w1c,
    /// described_w1c_trace, described_fifo, described_fifo_trace; default: all.
    #[arg(long, value_delimiter = ',')]
    runners: Vec<String>,
    /// Leave out the described-device runners (by default they run on the device kinds).
    #[arg(long)]
    no_described: bool,
    /// The machine file of the mmiolab and mmiolab_trace runners (default:
    /// tests/machines/bench.toml); it must answer the payload's accesses as that one does
    /// (a device at port 0x510 and at MMIO 0xfeb00010, nothing at port 0x200 and MMIO
    /// 0xd0000000).
    #[arg(long)]
    machine: Option<PathBuf>,
    /// The mmiolab binary; default: build it with `cargo build --release -p mmiolab` (when
    /// run by cargo), else the one next to this program.
    #[arg(long)]
    mmiolab: Option<PathBuf>,
    /// qemu-system-x86_64 to compare with; default: the one on PATH, if any.
    #[arg(long)]
    qemu: Option<PathBuf>,
    /// Leave QEMU out.
    #[arg(long)]
    no_qemu: bool,
    /// Accesses per callgrind run.
    #[arg(long, default_value_t = 2_000)]
    callgrind_n: u64,
    /// Skip the instruction counts.
    #[arg(long)]
    no_callgrind: bool,
    /// Do not work out where the instructions per exit go (by function with
    /// callgrind_annotate, by source file when the binaries have debug line tables, and the
    /// hot path's pieces alone).
    #[arg(long)]
    no_breakdown: bool,
    /// The payload (default: firmware's pvh_bench, or $MMIOLAB_BENCH_PAYLOAD).
    #[arg(long)]
    payload: Option<PathBuf>,
    /// Where the JSON report goes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Longest a single run may take, seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Args)]
struct RawArgs {
    /// PVH ELF to boot.
    #[arg(long)]
    kernel: PathBuf,
    /// Its command line (hvm_start_info.cmdline_paddr).
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Guest RAM, MiB.
    #[arg(long, default_value_t = MEMORY_MIB)]
    memory: u64,
    /// No in-kernel irqchip and PIT (mmiolab creates both, so by default the raw loop does).
    #[arg(long)]
    no_irqchip: bool,
}

fn main() -> ExitCode {
    // `launch` is parsed by hand: it starts the measured runner, and every page this process
    // touches before that counts in the runner's peak RSS (see `proc`).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "launch") {
        return match launch(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mmiolab-bench launch: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Rawloop(args) => rawloop(args),
        Cmd::Components { op, n } => components::run(op, n).map(|hits| {
            println!("{} x {n}: {hits}", op.name());
            0
        }),
        Cmd::Launch(_) => unreachable!("`launch` is handled before clap"),
        Cmd::Scale(args) => scale_table(&args).map(|()| 0),
        Cmd::Linux(args) => linux(args).map(|()| 0),
        Cmd::BootOnce(a) => linux::boot_once(
            &a.runner,
            a.rep,
            &a.marker,
            Duration::from_secs(a.timeout),
            &a.console,
            &a.command,
        )
        .and_then(|sample| {
            println!("{}", serde_json::to_string(&sample)?);
            Ok(0)
        }),
        Cmd::ScaleOne { axis, n, lookups } => scale_one(axis, n, lookups).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mmiolab-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `launch --timeout S --log FILE --result FILE -- PROGRAM ARGS...`
fn launch(args: &[std::ffi::OsString]) -> Result<()> {
    let mut it = args.iter();
    let (mut timeout, mut log, mut result) = (None, None, None);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().with_context(|| format!("{a:?} needs a value"));
        match a.to_str() {
            Some("--timeout") => timeout = Some(value()?.to_string_lossy().parse::<u64>()?),
            Some("--log") => log = Some(PathBuf::from(value()?)),
            Some("--result") => result = Some(PathBuf::from(value()?)),
            Some("--") => break,
            _ => bail!("launch: unexpected argument {a:?}"),
        }
    }
    let rest: Vec<std::ffi::OsString> = it.cloned().collect();
    let (program, args) = rest.split_first().context("launch: no program after --")?;
    proc::launch(
        std::path::Path::new(program),
        args,
        Duration::from_secs(timeout.context("launch: --timeout missing")?),
        &log.context("launch: --log missing")?,
        &result.context("launch: --result missing")?,
    )
}

/// `linux`: runs guest/bench/run.sh, then renders its samples. Fails unless every run of
/// every runner reached its lines (the short mode under `cargo xtask test` relies on it).
fn linux(a: LinuxArgs) -> Result<()> {
    let root = workspace_root();
    let mmiolab = match a.mmiolab {
        Some(p) => p,
        None => build_mmiolab(true)?,
    };
    let out = a.out.unwrap_or_else(|| root.join("target/bench/linux"));
    let bench = std::env::current_exe().context("locating mmiolab-bench")?;
    let status = std::process::Command::new("bash")
        .arg(root.join("guest/bench/run.sh"))
        .arg("--vmm")
        .arg(&mmiolab)
        .arg("--bench")
        .arg(&bench)
        .arg("--out")
        .arg(&out)
        .args(["--reps", &a.reps.to_string(), "--nested", &a.nested])
        .args(["--timeout", &a.timeout.to_string()])
        .args(
            a.kernel
                .iter()
                .flat_map(|k| [std::ffi::OsStr::new("--kernel"), k.as_os_str()]),
        )
        .status()
        .context("running guest/bench/run.sh")?;
    if !status.success() {
        bail!("guest/bench/run.sh failed ({status})");
    }
    let samples_path = out.join("samples.jsonl");
    let text = std::fs::read_to_string(&samples_path).with_context(|| format!("reading {}", samples_path.display()))?;
    let samples = linux::parse_samples(&text);
    let mode = std::fs::read_to_string(out.join("mode")).unwrap_or_default();
    let report = format!("Linux boot, {}\n\n{}", mode.trim(), linux::render(&samples));
    print!("{report}");
    std::fs::write(out.join("report.md"), &report).with_context(|| format!("writing {}", out.display()))?;
    // What each runner must have reached in every repetition: the cold boots the init's line
    // and the test's, the snapshot run the init's line (it stops on the next), the restore the
    // test's line.
    let init: fn(&linux::BootSample) -> bool = |s| s.init_ms.is_some();
    let test: fn(&linux::BootSample) -> bool = |s| s.test_ms.is_some();
    let both: fn(&linux::BootSample) -> bool = |s| s.init_ms.is_some() && s.test_ms.is_some();
    for (runner, what, reached_it) in [
        ("mmiolab", "the init's and the test's lines", both),
        ("qemu", "the init's and the test's lines", both),
        (linux::SNAPSHOT, "the init's line", init),
        (linux::RESTORE, "the test's line", test),
    ] {
        let boots = samples.iter().filter(|s| s.runner == runner);
        let reached = boots.clone().filter(|s| reached_it(s)).count();
        if reached != a.reps as usize || boots.count() != a.reps as usize {
            bail!(
                "{runner}: {reached} of {} runs reached {what} (consoles in {})",
                a.reps,
                out.join("boot/logs").display()
            );
        }
    }
    Ok(())
}

fn rawloop(a: RawArgs) -> Result<u8> {
    let out = rawloop::run(&rawloop::Options {
        kernel: a.kernel,
        cmdline: a.cmdline,
        memory_mib: a.memory,
        irqchip: !a.no_irqchip,
    })?;
    eprintln!("{}", runner::raw_summary(out.status, &out.counts));
    Ok(out.status)
}

fn run(a: RunArgs) -> Result<u8> {
    let kinds: Vec<Kind> = if a.kinds.is_empty() {
        KINDS.to_vec()
    } else {
        a.kinds
            .iter()
            .map(|k| Kind::parse(k).with_context(|| format!("unknown kind `{k}`")))
            .collect::<Result<_>>()?
    };
    let mut runners: Vec<Runner> = if a.runners.is_empty() {
        Runner::ALL.into_iter().chain(Runner::DESCRIBED).collect()
    } else {
        a.runners
            .iter()
            .map(|r| Runner::parse(r).with_context(|| format!("unknown runner `{r}`")))
            .collect::<Result<_>>()?
    };
    let mut seen = std::collections::HashSet::new();
    runners.retain(|r| seen.insert(*r));
    if a.no_qemu {
        runners.retain(|&r| r != Runner::Qemu);
    }
    if a.no_described {
        runners.retain(|r| r.described().is_none());
    }
    if a.n == 0 || a.callgrind_n == 0 || a.reps == 0 {
        bail!("--n, --callgrind-n and --reps must be positive");
    }
    let mmiolab = match a.mmiolab {
        Some(p) => p,
        None => build_mmiolab(true)?,
    };
    runner::require_executable(&mmiolab, "mmiolab")?;
    let payload = match a.payload {
        Some(p) => p,
        None => default_payload()?,
    };
    let qemu = if a.no_qemu {
        None
    } else {
        a.qemu.or_else(|| runner::which("qemu-system-x86_64"))
    };
    let callgrind = if a.no_callgrind {
        None
    } else {
        let v = callgrind::valgrind().context("valgrind is not installed: install it or pass --no-callgrind")?;
        Some((a.callgrind_n, v))
    };
    let target = workspace_root().join("target/bench");
    let settings = Settings {
        setup: Setup {
            bench_exe: std::env::current_exe()?,
            mmiolab,
            qemu,
            payload,
            machine: a.machine.unwrap_or_else(machine_file),
            work: target.join("work"),
        },
        kinds,
        runners,
        n: a.n,
        reps: a.reps,
        callgrind,
        breakdown: !a.no_breakdown,
        timeout: Duration::from_secs(a.timeout),
    };
    let report = bench::run(&settings)?;
    print!("{}", report.render());
    let out = a.out.unwrap_or_else(|| target.join("report.json"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    let md = out.with_extension("md");
    std::fs::write(&md, report.render_markdown()).with_context(|| format!("writing {}", md.display()))?;
    println!("report: {} (table also as Markdown: {})", out.display(), md.display());
    // Only mmiolab failing to run is an error; missed targets are reported, not failed.
    let broken: Vec<_> = report
        .skipped
        .iter()
        .filter(|s| s.runner == Runner::Raw || s.runner.is_mmiolab())
        .collect();
    if !broken.is_empty() {
        for s in broken {
            eprintln!("mmiolab-bench: {} could not run: {}", s.runner.label(), s.reason);
        }
        return Ok(1);
    }
    Ok(0)
}

fn scale_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mmiolab-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn scale_one(axis: scale::Axis, n: usize, lookups: usize) -> Result<()> {
    if axis == scale::Axis::Bus {
        let hits = scale::bus_only(n, lookups)?;
        println!("bus {n}: built; {hits} lookups reached a device");
        return Ok(());
    }
    let dir = scale_dir()?;
    let text = scale::machine_text(axis, n, &dir)?;
    let built = scale::build(&text, &dir.join("machine.toml"));
    std::fs::remove_dir_all(&dir)?;
    let built = built?;
    if lookups > 0 && axis == scale::Axis::Devices {
        let order = scale::lookup_order(n);
        let hits = scale::lookups(&built.platform, &order, lookups);
        println!("{hits} lookups reached a device");
    }
    println!(
        "{} {n}: built in {:.3} s",
        axis.name(),
        built.times.total().as_secs_f64()
    );
    Ok(())
}

fn scale_table(a: &ScaleArgs) -> Result<()> {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!(
        "| what | n | parse + check (ms) | platform (ms) | device tree (ms) | tracer (ms) | total (ms) | total / n (us) | lookup (ns) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let dir = scale_dir()?;
    let axes = [
        (scale::Axis::Devices, &a.devices),
        (scale::Axis::Registers, &a.registers),
        (scale::Axis::Regions, &a.regions),
    ];
    for (axis, sizes) in axes {
        for &n in sizes {
            let text = scale::machine_text(axis, n, &dir)?;
            let mut best: Option<scale::Built> = None;
            for _ in 0..a.reps.max(1) {
                let built = scale::build(&text, &dir.join("machine.toml"))?;
                if best.as_ref().is_none_or(|b| built.times.total() < b.times.total()) {
                    best = Some(built);
                }
            }
            let best = best.context("no build")?;
            let lookup = if axis == scale::Axis::Devices {
                let order = scale::lookup_order(n);
                let rounds = (1_000_000 / n.max(1)).max(1);
                let t = std::time::Instant::now();
                let hits = scale::lookups(&best.platform, &order, rounds);
                let per = t.elapsed().as_secs_f64() * 1e9 / (n * rounds) as f64;
                if hits != (n * rounds) as u64 {
                    bail!("only {hits} of {} lookups reached a device", n * rounds);
                }
                format!("{per:.0}")
            } else {
                String::new()
            };
            let t = best.times;
            println!(
                "| {} | {n} | {} | {} | {} | {} | {} | {:.1} | {lookup} |",
                axis.name(),
                ms(t.parse),
                ms(t.platform),
                ms(t.dtb),
                ms(t.tracer),
                ms(t.total()),
                t.total().as_secs_f64() * 1e6 / n.max(1) as f64,
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
