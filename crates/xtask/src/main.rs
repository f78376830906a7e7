//! `cargo xtask <task>`: the project's entry points, so a newcomer needs two commands.
//!
//! - `demo`: install what is missing, build, and run the bundled machines: the bare-metal
//!   demo, then the default Linux machine with its driver tests.
//! - `test`: formatting, clippy, and the whole test suite (unit, bare-metal KVM, Linux).
//! - `guest`: only build the guest kernel and test initramfs into target/guest.
//! - `bench`: the trapped-access benchmark (raw KVM loop, mmiolab, mmiolab --trace, QEMU).
//! - `bench-linux`: Linux boot under mmiolab and QEMU microvm, side by side.
//! - `bench-scale`: machine build time at 10, 1,000 and 100,000 devices (and registers,
//!   regions), and the cost of a device lookup.
//! - `headers`: regenerate the committed C headers that `mmiolab header` makes from machine
//!   files (`test` fails while one is stale).
//! - `fuzz`: run one cargo-fuzz target (docs/fuzzing.md) on the stable toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  demo    build mmiolab and run the bundled machines: a bare-metal guest whose MMIO and port
          accesses are trapped and traced to target/demo-trace.jsonl, then the default Linux
          machine (guest/machines/default.toml): kernel and initramfs are built (cached),
          Linux boots under mmiolab (nested in QEMU TCG where the host's KVM cannot boot
          Linux) and the guest driver tests report pass/fail
  test    check that the generated headers are current, cargo fmt --check, cargo clippy
          -D warnings, and every test in the workspace (unit, bare-metal guests under KVM,
          the Linux tier)
  guest   build the guest kernel and test initramfs into target/guest (cached); takes
          --fragment FILE (kernel options), --test SCRIPT and --file SRC:DST (initramfs
          script tests and files), each repeatable (docs/linux.md, section Your own driver)
  bench   the trapped-access benchmark: a raw KVM loop, mmiolab, mmiolab --trace and QEMU
          microvm on one payload, interleaved; wall time, callgrind instructions per exit,
          start-up and RSS; tables on stdout, target/bench/report.{json,md}. Arguments after
          `bench` go to mmiolab-bench run (see `cargo xtask bench --help`)
  bench-linux
          the Linux boot benchmark: the guest kernel and a minimal initramfs booted under
          mmiolab and QEMU microvm, interleaved, 5 times each (nested in QEMU TCG where the
          host's KVM cannot boot Linux); time to the first console line, to the init's first
          line and to the exit, peak RSS, the mmiolab/QEMU ratio per repetition; a table on
          stdout and in target/bench/linux/report.md. Arguments go to mmiolab-bench linux
          (--reps N, --nested auto|always|never, --timeout SECS, --kernel BZIMAGE)
  bench-scale
          machine build time (parse and check, platform, device tree, tracer) at 10, 1,000
          and 100,000 devices, at 10, 1,000 and 4,096 registers of one device, at 10, 1,000
          and 100,000 windows of one region, and a device lookup past the cache; a Markdown
          table on stdout. Arguments go to mmiolab-bench scale (--devices, --registers,
          --regions, --reps)
  headers regenerate the committed C headers made by `mmiolab header` from machine files:
          guest/drivers/mmiolab-machine.h, firmware/asm/mmiolab-machine.h; with --check, only
          fail (naming them) if they are stale, as `test` does
  fuzz    fuzz TARGET [--time SECONDS] [--runs N] [--no-asan]: run one cargo-fuzz target
          (docs/fuzzing.md; `cargo install cargo-fuzz` once) with ASan, optimized with debug
          assertions, until SECONDS (default 600) or N executions (default 10000000); new
          inputs go to target/fuzz-corpus/TARGET, the committed fuzz/corpus/TARGET seeds it,
          crashes land in fuzz/artifacts/TARGET. Works on stable Rust (RUSTC_BOOTSTRAP=1).
          Targets: description engine description_then_engine machine_file payload ktap
          trace_writer bus_devices
";

/// The cargo-fuzz targets (fuzz/fuzz_targets) and the dictionary (in fuzz/) each takes.
const FUZZ_TARGETS: &[(&str, Option<&str>)] = &[
    ("description", Some("description.dict")),
    ("engine", None),
    ("description_then_engine", Some("description.dict")),
    ("machine_file", Some("machine.dict")),
    ("payload", None),
    ("ktap", Some("ktap.dict")),
    ("trace_writer", None),
    ("bus_devices", None),
];

/// The committed generated headers and their `mmiolab header` arguments.
const GENERATED_HEADERS: &[(&str, &[&str])] = include!("../../../tests/generated_headers.rs");

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("demo") => demo(),
        Some("test") => test(),
        Some("guest") => guest(std::env::args().skip(2).collect()),
        Some("bench") => bench(std::env::args().skip(2).collect()),
        Some("bench-linux") => bench_linux(std::env::args().skip(2).collect()),
        Some("bench-scale") => bench_scale(std::env::args().skip(2).collect()),
        Some("headers") => match std::env::args().nth(2).as_deref() {
            None => headers(),
            Some("--check") => check_headers(),
            Some(other) => bail!("`cargo xtask headers` takes --check or nothing, not `{other}`"),
        },
        Some("fuzz") => fuzz(std::env::args().skip(2).collect()),
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd` in the workspace root, failing with its command line if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    run_in(cmd, &root())
}

/// Runs `cmd` in `dir`, failing with its command line if it fails.
fn run_in(cmd: &mut Command, dir: &Path) -> Result<()> {
    cmd.current_dir(dir);
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn demo() -> Result<()> {
    run(cargo().args(["build", "--release", "--package", "mmiolab"]))?;
    let firmware = mmiolab_firmware::elf("demo").context("the demo firmware was not built")?;
    let trace = root().join("target/demo-trace.jsonl");
    eprintln!("xtask: machine:");
    run(Command::new(root().join("target/release/mmiolab")).args([
        "tree",
        "--config",
        "tests/machines/baremetal.toml",
    ]))?;
    run(Command::new(root().join("target/release/mmiolab"))
        .args([
            "run",
            "--config",
            "tests/machines/baremetal.toml",
            "--timeout",
            "60",
            "--firmware",
        ])
        .arg(&firmware)
        .arg("--trace")
        .arg(&trace))?;
    eprintln!("xtask: every trapped access is in {}", trace.display());
    eprintln!("xtask: now the default Linux machine");
    run(Command::new("bash").args(["guest/run-tests.sh", "--vmm", "target/release/mmiolab"]))
}

/// `cargo xtask fuzz TARGET [--time S] [--runs N] [--no-asan]`.
fn fuzz(args: Vec<String>) -> Result<()> {
    let mut target = None;
    let (mut time, mut runs, mut asan) = ("600".to_owned(), "10000000".to_owned(), true);
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--time" => time = args.next().context("--time takes seconds")?,
            "--runs" => runs = args.next().context("--runs takes a count")?,
            "--no-asan" => asan = false,
            t if target.is_none() && !t.starts_with('-') => target = Some(t.to_owned()),
            other => bail!("`cargo xtask fuzz`: unexpected `{other}`\n\n{HELP}"),
        }
    }
    let names: Vec<&str> = FUZZ_TARGETS.iter().map(|(n, _)| *n).collect();
    let Some(target) = target else {
        bail!("`cargo xtask fuzz` needs a target: {}", names.join(", "));
    };
    let Some(&(_, dict)) = FUZZ_TARGETS.iter().find(|(n, _)| *n == target) else {
        bail!("no fuzz target `{target}`; the targets are {}", names.join(", "));
    };
    for (what, value) in [("--time", &time), ("--runs", &runs)] {
        value
            .parse::<u64>()
            .with_context(|| format!("{what} takes a number, not `{value}`"))?;
    }
    let found = cargo().args(["fuzz", "--version"]).output();
    if !found.is_ok_and(|o| o.status.success()) {
        bail!("cargo-fuzz is not installed: `cargo install cargo-fuzz` (docs/fuzzing.md)");
    }
    let scratch = root().join("target/fuzz-corpus").join(&target);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut cmd = cargo();
    // cargo-fuzz passes -Z flags (sanitizers, coverage): stable rustc takes them with this.
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "-O", "-a"])
        .args(if asan { ["-s", "address"] } else { ["-s", "none"] })
        .arg(&target)
        .arg(&scratch)
        .arg(format!("corpus/{target}"))
        .arg("--")
        .args(["-timeout=5", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .arg(format!("-max_total_time={time}"))
        .arg(format!("-runs={runs}"));
    if let Some(dict) = dict {
        cmd.arg(format!("-dict={dict}"));
    }
    cmd.current_dir(root().join("fuzz"));
    eprintln!("xtask: running {cmd:?} in fuzz/");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("the fuzzer stopped with {status}: see fuzz/artifacts/{target}/ and docs/fuzzing.md");
    }
    Ok(())
}

/// `cargo xtask guest [--fragment FILE]... [--test SCRIPT]... [--file SRC:DST]...`: the
/// kernel (with the extra fragments) and the initramfs (with the extra tests and files).
fn guest(args: Vec<String>) -> Result<()> {
    // The user's paths are relative to where they ran cargo: both scripts run there.
    let here = std::env::current_dir().context("reading the current directory")?;
    let mut kernel = Command::new("bash");
    kernel
        .arg(root().join("guest/kernel/build.sh"))
        .arg("--out")
        .arg(root().join("target/guest"));
    let mut initramfs = Command::new("bash");
    initramfs
        .arg(root().join("guest/initramfs/build.sh"))
        .arg("--out")
        .arg(root().join("target/guest/initramfs.cpio"));
    let mut args = args.into_iter();
    while let Some(option) = args.next() {
        let target = match option.as_str() {
            "--fragment" => &mut kernel,
            "--test" | "--file" => &mut initramfs,
            _ => bail!("`cargo xtask guest` takes --fragment FILE, --test SCRIPT and --file SRC:DST, not `{option}`"),
        };
        let value = args.next().with_context(|| format!("{option} needs a value"))?;
        target.arg(option).arg(value);
    }
    kernel.current_dir(&here).stderr(std::process::Stdio::inherit());
    eprintln!("xtask: running {kernel:?}");
    let out = kernel.output().with_context(|| format!("starting {kernel:?}"))?;
    if !out.status.success() {
        bail!("{kernel:?} failed: {}", out.status);
    }
    let kbuild = String::from_utf8(out.stdout).context("the kernel build printed a non-UTF-8 path")?;
    run_in(initramfs.arg("--kernel-build").arg(kbuild.trim()), &here)
}

/// `cargo run ... mmiolab header ARGS` (mmiolab built as needed), in the workspace root.
fn mmiolab_header() -> Command {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--package", "mmiolab", "--", "header"])
        .current_dir(root());
    cmd
}

fn headers() -> Result<()> {
    for &(file, args) in GENERATED_HEADERS {
        // -o writes atomically and leaves a file that is already current alone.
        run(mmiolab_header().args(args).args(["-o", file]))?;
    }
    Ok(())
}

/// Fails, naming each stale file and the command that fixes it, when a committed generated
/// header differs from what mmiolab generates now.
fn check_headers() -> Result<()> {
    let mut stale = Vec::new();
    for &(file, args) in GENERATED_HEADERS {
        let mut cmd = mmiolab_header();
        cmd.args(args);
        let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
        if !out.status.success() {
            bail!(
                "{cmd:?} failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if std::fs::read(root().join(file)).ok() != Some(out.stdout) {
            stale.push(format!("  {file} (from `mmiolab header {}`)", args.join(" ")));
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated headers are stale: they differ from what mmiolab generates now:\n{}\n\
             run `cargo xtask headers` to regenerate them, and commit the result",
            stale.join("\n")
        );
    }
    eprintln!("xtask: the generated headers are current");
    Ok(())
}

fn test() -> Result<()> {
    check_headers()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))?;
    // The instruction-count guard's strict ceiling holds for an optimised mmiolab only.
    run(cargo().args(["test", "--release", "--package", "mmiolab-bench", "--test", "guard"]))
}

fn bench_linux(args: Vec<String>) -> Result<()> {
    run(cargo()
        .args(["run", "--release", "--package", "mmiolab-bench", "--", "linux"])
        .args(args))
}

fn bench_scale(args: Vec<String>) -> Result<()> {
    run(cargo()
        .args(["run", "--release", "--package", "mmiolab-bench", "--", "scale"])
        .args(args))
}

fn bench(args: Vec<String>) -> Result<()> {
    run(cargo()
        .args(["run", "--release", "--package", "mmiolab-bench", "--", "run"])
        .args(args))
}
