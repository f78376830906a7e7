//! `mmiolab`: the command line. Errors are reported here, at the edge, with anyhow.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mmiolab_vmm::machine::TraceOutput;
use mmiolab_vmm::trace::{TraceFilter, TraceFormat, TraceOptions};
use mmiolab_vmm::{MachineConfig, Platform, RunOptions, StopReason};

mod checking;
mod coverage;
mod golden;
mod guest_test;
mod header;
mod ktap;

/// Exit status when the VMM itself failed or the guest faulted (triple fault, unhandled
/// exit, timeout).
const STATUS_FAULT: u8 = 1;
/// Exit status when a Linux guest panicked (reported through pvpanic).
const STATUS_GUEST_PANIC: u8 = 2;
/// Exit status of `run --check` when the register checker found a rule broken that the
/// machine file does not allow (and the guest's own status was 0).
const STATUS_FINDINGS: u8 = 3;
/// Exit status of `run --expect-trace` when the trace differs from the expected one (and
/// the status was 0 otherwise).
const STATUS_TRACE_DIFFERS: u8 = 4;

#[derive(Parser)]
#[command(
    name = "mmiolab",
    version,
    about = "KVM-based MMIO device emulator: boot a guest, trap every access to emulated devices",
    long_about = "mmiolab runs a KVM virtual machine whose emulated devices are described in a TOML \
machine file. Every guest access to a device's MMIO or I/O-port registers exits to mmiolab, \
goes through one bus tree to the device model, and can be traced.\n\n\
Exit status of `run`: the value the guest wrote to the test-exit port 0xf4 (low byte); 0 when \
the guest powered off or reset the machine; 2 when a Linux guest panicked; 1 when the guest faulted (triple \
fault, unhandled exit, timeout) or mmiolab could not start it. When that status is 0: 3 when --check found \
a broken register rule the machine file does not allow, 4 when --expect-trace found a difference."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a machine and run it until the guest stops it.
    Run(RunArgs),
    /// Print the MMIO tree (as /proc/iomem) and the I/O-port tree (as /proc/ioports).
    Tree {
        /// Machine description (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the device tree a Linux guest gets, as DTS (optionally write the blob).
    Dt {
        /// Machine description (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Also write the flattened blob (DTB) to FILE.
        #[arg(long, value_name = "FILE")]
        dtb: Option<PathBuf>,
    },
    /// Boot a Linux test guest, collect its KTAP results, compare its /proc/iomem and
    /// /proc/ioports with the bus tree; exit 0 only if every test passed.
    Test(TestArgs),
    /// Write a C header: a device description's register map, or a machine file's device
    /// addresses (and the register maps of its described devices).
    #[command(long_about = HEADER_ABOUT)]
    Header(HeaderArgs),
    /// List the device descriptions bundled with mmiolab (a machine file's `model = NAME`),
    /// or print one of them as TOML, to read or to copy and change.
    Models {
        /// The model to print.
        name: Option<String>,
    },
    /// Register coverage of a run from its JSON-lines trace: for each described device,
    /// each register and field read / written / never touched and each declared behaviour
    /// that fired (docs/checker.md).
    Coverage {
        /// The trace (`mmiolab run --trace FILE`, JSON lines).
        #[arg(long, value_name = "FILE")]
        trace: PathBuf,
        /// The machine file the run used.
        #[arg(long, short)]
        config: PathBuf,
        /// Also write the coverage as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

const HEADER_ABOUT: &str = "Write a C header from a device description (--description) or a machine file (--config).

From a description: for each register PREFIX_REG_OFFSET, _WIDTH (bits) and _RESET; for a register \
array PREFIX_REG_OFFSET(i), _COUNT and _STRIDE; for each field PREFIX_REG_FIELD_SHIFT, _MASK (in \
register position) and _WIDTH; for each named value PREFIX_REG_FIELD_NAME (the field value, not \
shifted); PREFIX_FIFO_DEPTH, PREFIX_MEMORY_OFFSET and _SIZE, PREFIX_INTERRUPT_LINE. The prefix \
defaults to the device's name.

From a machine file: for each device PREFIX_DEV_BASE and _SIZE (MMIO), _PIO_BASE and _PIO_SIZE \
(I/O ports), _IRQ (IOAPIC pin) and _COMPAT, then the register map of each described device with \
prefix PREFIX_DEV. The prefix defaults to MMIOLAB.

Names are upper-cased and made C identifiers; two things that would get one macro name are \
refused. The output has an include guard and says which file and command made it, and nothing \
else (no date), so a committed header can be compared byte for byte with a fresh one.";

/// `mmiolab header`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["description", "config"])))]
struct HeaderArgs {
    /// Device description (TOML): the header has its registers, fields, value names, FIFOs,
    /// memory windows and interrupt lines.
    #[arg(long, short, value_name = "FILE")]
    description: Option<PathBuf>,
    /// Machine description (TOML): the header has each device's addresses, I/O ports and
    /// IOAPIC pin, and each described device's register map.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Start every macro with PREFIX (upper-cased; "" for none). Default: the device's name
    /// (--description), MMIOLAB (--config).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Assembler-safe: plain integer constants only (no U/UL suffixes, no strings), for .S
    /// files as well as C.
    #[arg(long)]
    asm: bool,
    /// Write the header to FILE instead of standard output: atomically (a temporary file,
    /// then a rename), left untouched when it already holds the same text, never over one
    /// of the inputs.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct TestArgs {
    /// Machine description (TOML) with the kernel and test initramfs.
    #[arg(long, short)]
    config: PathBuf,
    /// Do not boot: read the console log of a run made elsewhere (e.g. nested, in an
    /// outer VM) and judge that.
    #[arg(long, value_name = "FILE")]
    from_log: Option<PathBuf>,
    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Give up on the guest after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    timeout: f64,
    /// Echo the guest console while it runs (it is printed anyway when a test fails).
    #[arg(long, short)]
    verbose: bool,
    /// The trace (JSON lines) to check guest tests' write order against: written here
    /// while the guest runs, or, with --from-log, read from here (guest/run-tests.sh brings
    /// it back from a nested run).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Trace only DEVICE or DEVICE.REGISTER while booting (as `run --trace-filter`).
    #[arg(
        long,
        value_name = "DEVICE[.REGISTER]",
        requires = "trace",
        conflicts_with = "from_log"
    )]
    trace_filter: Vec<TraceFilter>,
    /// Run the register checker (docs/checker.md): findings not allowed by the machine file
    /// fail the run (a `register-check` result).
    #[arg(long, conflicts_with = "from_log")]
    check: bool,
    /// Compare the --trace file with FILE as `run --expect-trace` does (docs/checker.md):
    /// a `golden-trace` result that fails on the first difference.
    #[arg(long, value_name = "FILE", requires = "trace")]
    expect_trace: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Machine description (TOML). Without it: 256 MiB, one vCPU, built-in devices only.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Bare-metal program to run (ELF64, or flat with --load-addr); overrides the file's.
    #[arg(long, conflicts_with = "kernel")]
    firmware: Option<PathBuf>,
    /// Load address (and entry) of a flat firmware binary, e.g. 0x100000.
    #[arg(long, value_parser = parse_u64, requires = "firmware")]
    load_addr: Option<u64>,
    /// Kernel to boot; overrides the file's.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Initramfs for the kernel.
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, requires = "kernel")]
    cmdline: Option<String>,
    /// Guest RAM in MiB; overrides the file's.
    #[arg(long)]
    memory: Option<u64>,
    /// Number of vCPUs; overrides the file's.
    #[arg(long)]
    vcpus: Option<u8>,
    /// Write every trapped access (and what self-tracing devices did) to FILE.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Format of the --trace file. `jsonl`: one JSON object per line, format version 2
    /// (`"v":2`; keys in docs/architecture.md). `perfetto`: Chrome trace-event JSON that
    /// ui.perfetto.dev opens, one track per device, interrupts on their own track; closed
    /// when the run ends, also on a guest fault.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = TraceFormatArg::Jsonl, requires = "trace")]
    trace_format: TraceFormatArg,
    /// Trace only DEVICE (its name in the bus tree, e.g. `uart@d0000000`, or the part
    /// before `@`), or only its register REGISTER (devices described by registers; `CH`
    /// also matches `CH[3]`). Repeat to keep several; without it everything is traced.
    #[arg(long, value_name = "DEVICE[.REGISTER]", requires = "trace")]
    trace_filter: Vec<TraceFilter>,
    /// Stop the guest (as a failure) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Prefix every console line with the host time since `run` started, `[+SECONDS] `
    /// (to see how long a boot takes to reach a given line).
    #[arg(long, env = "MMIOLAB_CONSOLE_TIMESTAMPS", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::FalseyValueParser::new())]
    console_timestamps: bool,
    /// Do not print the end-of-run summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Check every access to described devices against their descriptions (docs/checker.md):
    /// findings go to stderr at the end, to the trace, and make the exit status 3 (unless
    /// the machine file allows the rule for the device, or the status is already non-zero).
    #[arg(long)]
    check: bool,
    /// Also write the findings as JSON to FILE (implies --check).
    #[arg(long, value_name = "FILE")]
    check_json: Option<PathBuf>,
    /// Compare the register-level trace of the run with FILE (a JSON-lines trace recorded
    /// before), ignoring `seq`, `t_ns`, `due_ns`, findings and registers the description
    /// marks `volatile`; the first difference is reported by register name and makes the
    /// exit status 4 (unless it is already non-zero).
    #[arg(long, value_name = "FILE")]
    expect_trace: Option<PathBuf>,
}

/// `--trace-format`.
#[derive(Clone, Copy, ValueEnum)]
enum TraceFormatArg {
    /// One JSON object per line.
    Jsonl,
    /// Chrome trace-event JSON (ui.perfetto.dev).
    Perfetto,
}

/// A console writer that starts every line with the time since it was made.
struct Timestamped<W> {
    inner: W,
    start: std::time::Instant,
    at_line_start: bool,
}

impl<W: Write> Write for Timestamped<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        for line in data.split_inclusive(|&b| b == b'\n') {
            if self.at_line_start {
                write!(self.inner, "[+{:>11.6}] ", self.start.elapsed().as_secs_f64())?;
            }
            self.inner.write_all(line)?;
            self.at_line_start = line.ends_with(b"\n");
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("`{s}` is not a number: {e}"))
}

/// `mmiolab models [NAME]`.
fn models(name: Option<&str>) -> Result<()> {
    use mmiolab_regmodel::bundled;
    let mut out = std::io::stdout().lock();
    match name {
        Some(name) => {
            let text = bundled::bundled(name)
                .with_context(|| format!("no bundled model `{name}`; there are: {}", bundled::names().join(", ")))?;
            out.write_all(text.as_bytes())?;
        }
        None => {
            for name in bundled::names() {
                let what = bundled::bundled(name)
                    .and_then(|t| mmiolab_regmodel::schema::Description::from_toml(t).ok())
                    .and_then(|d| d.device.description)
                    .unwrap_or_default();
                writeln!(out, "{name:<12} {what}")?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Tree { config } => tree(&config).map(|()| 0),
        Command::Dt { config, dtb } => dt(&config, dtb.as_deref()).map(|()| 0),
        Command::Test(args) => test(args),
        Command::Header(args) => header_command(&args).map(|()| 0),
        Command::Models { name } => models(name.as_deref()).map(|()| 0),
        Command::Coverage { trace, config, json } => coverage::command(&trace, &config, json.as_deref()).map(|()| 0),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("mmiolab: error: {e:#}");
            ExitCode::from(STATUS_FAULT)
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<MachineConfig> {
    Ok(match path {
        Some(p) => MachineConfig::load(p)?,
        None => MachineConfig::parse("", Path::new("<defaults>"))?,
    })
}

fn tree(config: &Path) -> Result<()> {
    let config = load_config(Some(config))?;
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    print!("{}", platform.render_trees());
    Ok(())
}

fn dt(config: &Path, dtb: Option<&Path>) -> Result<()> {
    let config = load_config(Some(config))?;
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    print!("{}", mmiolab_vmm::fdt::dts(&config, &platform));
    if let Some(out) = dtb {
        let blob = mmiolab_vmm::fdt::dtb(&config, &platform).context("building the device tree blob")?;
        std::fs::write(out, blob).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn header_command(args: &HeaderArgs) -> Result<()> {
    let input = match (&args.description, &args.config) {
        (Some(d), _) => header::Input::Description(d),
        (None, Some(c)) => header::Input::Machine(c),
        (None, None) => bail!("give --description FILE or --config FILE"),
    };
    let style = if args.asm {
        mmiolab_regmodel::header::Style::Asm
    } else {
        mmiolab_regmodel::header::Style::C
    };
    let (text, inputs) = header::generate(&input, args.prefix.as_deref(), style)?;
    match &args.output {
        Some(out) => header::write_atomically(out, &text, &inputs),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("writing the header to standard output")
        }
    }
}

/// A console writer the test command reads back, optionally echoing to stdout.
#[derive(Clone)]
struct Capture {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        if self.echo {
            std::io::stdout().write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn test(args: TestArgs) -> Result<u8> {
    let config = load_config(Some(&args.config))?;
    let mut findings = Vec::new();
    let console = match &args.from_log {
        Some(log) => {
            String::from_utf8_lossy(&std::fs::read(log).with_context(|| format!("reading {}", log.display()))?)
                .into_owned()
        }
        None => {
            let capture = Capture {
                buf: Default::default(),
                echo: args.verbose,
            };
            let timeout = Duration::try_from_secs_f64(args.timeout).context("--timeout must be positive")?;
            let trace = match &args.trace {
                Some(path) => {
                    let f = File::create(path).with_context(|| format!("creating trace file {}", path.display()))?;
                    Some(TraceOutput {
                        out: Box::new(BufWriter::with_capacity(1 << 16, f)),
                        options: TraceOptions {
                            format: TraceFormat::Jsonl,
                            filters: args.trace_filter.clone(),
                        },
                    })
                }
                None => None,
            };
            eprintln!("mmiolab test: booting {} (timeout {timeout:?})", args.config.display());
            let report = mmiolab_vmm::run(
                &config,
                RunOptions {
                    console: Box::new(capture.clone()),
                    trace,
                    timeout: Some(timeout),
                    stdin: false,
                    check: args.check,
                },
            )?;
            if let StopReason::Fault(why) = &report.reason {
                eprintln!("mmiolab test: the guest faulted:\n{why}");
            }
            findings = report.findings;
            let bytes = capture
                .buf
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    let report = ktap::parse(&console);
    let mut results = report.results.clone();
    results.push(guest_test::resource_check(&platform, &report));
    let trace_text = args.trace.as_ref().map(|path| {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("cannot read the trace {}: {e}", path.display()))
    });
    results.extend(guest_test::trace_order_checks(
        &report,
        trace_text.as_ref().map(|t| t.as_deref().map_err(Clone::clone)),
    ));
    if args.check {
        results.push(checking::test_result(&findings));
    }
    if let (Some(expected), Some(path)) = (&args.expect_trace, &args.trace) {
        results.push(golden::test_result(
            path,
            expected,
            &golden::volatile_registers(&config)?,
        ));
    }
    let mut failed = results.iter().filter(|r| !r.ok).count();
    for r in &results {
        let directive = r.directive.as_deref().map(|d| format!(" # {d}")).unwrap_or_default();
        println!("{} {}{directive}", if r.ok { "PASS" } else { "FAIL" }, r.name);
        if !r.ok {
            for d in &r.details {
                println!("    {d}");
            }
        }
    }
    let guest_tests = report.results.len();
    if report.planned != Some(guest_tests) {
        failed += 1;
        println!(
            "FAIL plan: the guest planned {} tests and reported {guest_tests}",
            report.planned.map_or("no".to_owned(), |n| n.to_string())
        );
    }
    let passed = results.iter().filter(|r| r.ok).count();
    if failed > 0 && !args.verbose && args.from_log.is_none() {
        println!("--- guest console ---\n{console}--- end of guest console ---");
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, guest_test::junit("mmiolab-linux", &results))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("mmiolab test: {passed} passed, {failed} failed");
    if guest_tests == 0 {
        bail!("the guest reported no KTAP results");
    }
    Ok(u8::from(failed > 0))
}

fn run(args: RunArgs) -> Result<u8> {
    let start = std::time::Instant::now();
    let mut config = load_config(args.config.as_deref())?;
    let m = &mut config.machine;
    // Command-line paths are relative to the working directory, not to the machine file.
    let cwd = std::env::current_dir().context("reading the working directory")?;
    if let Some(fw) = args.firmware {
        m.firmware = Some(cwd.join(fw));
        m.kernel = None;
        m.load_addr = args.load_addr;
    }
    if let Some(k) = args.kernel {
        m.kernel = Some(cwd.join(k));
        m.firmware = None;
    }
    if let Some(i) = args.initrd {
        m.initrd = Some(cwd.join(i));
    }
    if args.cmdline.is_some() {
        m.cmdline = args.cmdline;
    }
    if let Some(mib) = args.memory {
        m.memory_mib = mib;
    }
    if let Some(n) = args.vcpus {
        m.vcpus = n;
    }
    let config = revalidate(config)?;
    let check = args.check || args.check_json.is_some();
    // --expect-trace needs a JSON-lines trace: the --trace file, or a temporary one.
    let temp_trace = match (&args.expect_trace, &args.trace) {
        (Some(_), None) => Some(golden::TempTrace::new()?),
        _ => None,
    };
    if args.expect_trace.is_some() && matches!(args.trace_format, TraceFormatArg::Perfetto) {
        bail!("--expect-trace compares JSON-lines traces: drop --trace-format perfetto");
    }
    let trace_path = args
        .trace
        .clone()
        .or_else(|| temp_trace.as_ref().map(|t| t.path().to_owned()));
    let trace = match &trace_path {
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating trace file {}", path.display()))?;
            Some(TraceOutput {
                out: Box::new(BufWriter::with_capacity(1 << 16, f)),
                options: TraceOptions {
                    format: match args.trace_format {
                        TraceFormatArg::Jsonl => TraceFormat::Jsonl,
                        TraceFormatArg::Perfetto => TraceFormat::Perfetto,
                    },
                    filters: args.trace_filter,
                },
            })
        }
        None => None,
    };
    let timeout = args
        .timeout
        .map(Duration::try_from_secs_f64)
        .transpose()
        .context("--timeout must be a positive number of seconds")?;
    let report = mmiolab_vmm::run(
        &config,
        RunOptions {
            console: if args.console_timestamps {
                Box::new(Timestamped {
                    inner: std::io::stdout(),
                    start,
                    at_line_start: true,
                })
            } else {
                Box::new(std::io::stdout())
            },
            trace,
            timeout,
            stdin: true,
            check,
        },
    )?;
    let _ = std::io::stdout().flush();
    let (status, what) = match &report.reason {
        StopReason::ExitDevice(v) => (*v, format!("guest wrote {v:#x} to the test-exit port")),
        StopReason::GuestReset => (0, "guest reset the machine".to_owned()),
        StopReason::GuestPowerOff => (0, "guest powered the machine off".to_owned()),
        StopReason::GuestPanic => (STATUS_GUEST_PANIC, "guest kernel panicked (pvpanic)".to_owned()),
        StopReason::Fault(report) => {
            eprintln!("mmiolab: guest stopped with a fault:\n{report}");
            (STATUS_FAULT, "guest fault".to_owned())
        }
    };
    let mut status = status;
    if check {
        let failing = checking::report(&report.findings);
        if let Some(path) = &args.check_json {
            checking::write_json(path, &report.findings)?;
        }
        if failing > 0 && status == 0 {
            status = STATUS_FINDINGS;
        }
    }
    if let (Some(expected), Some(path)) = (&args.expect_trace, &trace_path) {
        let volatile = golden::volatile_registers(&config)?;
        if let Err(diff) = golden::compare_files(path, expected, &volatile)? {
            eprintln!("mmiolab: the trace differs from {}: {diff}", expected.display());
            if status == 0 {
                status = STATUS_TRACE_DIFFERS;
            }
        } else if !args.quiet {
            eprintln!("mmiolab: the trace matches {}", expected.display());
        }
    }
    drop(temp_trace);
    if !args.quiet {
        let u = report.unmapped;
        eprintln!(
            "mmiolab: {what}; exit status {status}; {} exits; unmapped accesses: {} MMIO reads, {} MMIO writes, {} port reads, {} port writes{}",
            report.exits,
            u.mmio_reads,
            u.mmio_writes,
            u.pio_reads,
            u.pio_writes,
            if report.int3_reinjected > 0 {
                format!(
                    "; {} INT3 re-injected (host KVM cannot emulate them)",
                    report.int3_reinjected
                )
            } else {
                String::new()
            }
        );
    }
    Ok(status)
}

/// Command-line overrides go through the same checks as the file.
fn revalidate(config: MachineConfig) -> Result<MachineConfig> {
    config.check().map_err(Into::into).map(|()| config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_start_every_line_and_only_lines() {
        let mut t = Timestamped {
            inner: Vec::new(),
            start: std::time::Instant::now(),
            at_line_start: true,
        };
        t.write_all(b"ab").unwrap();
        t.write_all(b"c\nde\n\nf").unwrap();
        let text = String::from_utf8(t.inner).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 4);
        for (line, rest) in lines.iter().zip(["abc", "de", "", "f"]) {
            assert!(
                line.starts_with("[+") && line.ends_with(&format!("] {rest}")),
                "{line:?}"
            );
        }
    }
}
