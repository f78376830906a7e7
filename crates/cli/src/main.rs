//! `mmiolab`: the command line. Errors are reported here, at the edge, with anyhow.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mmiolab_vmm::machine::{TraceOutput, TraceTarget};
use mmiolab_vmm::output::HostFd;
use mmiolab_vmm::signals::StopSignals;
use mmiolab_vmm::trace::{TraceFilter, TraceFormat, TraceOptions};
use mmiolab_vmm::{MachineConfig, Platform, RunOptions};

use crate::ending::{say, to_stdout};

mod checking;
mod coverage;
mod ending;
mod golden;
mod guest;
mod guest_test;
mod header;
mod html;
mod junit;
mod kit;
mod nesting;
// The KTAP parser lives in the library (mmiolab_cli), where the fuzzers reach it.
use mmiolab_cli::ktap;

#[derive(Parser)]
#[command(
    name = "mmiolab",
    version,
    about = "KVM-based MMIO device emulator: boot a guest, trap every access to emulated devices",
    long_about = "mmiolab runs a KVM virtual machine whose emulated devices are described in a TOML \
machine file. Every guest access to a device's MMIO or I/O-port registers exits to mmiolab, \
goes through one bus tree to the device model, and can be traced.",
    after_long_help = ending::STATUS_TABLE
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
        /// Also write the flattened blob (DTB) to FILE (whole or not at all, never over an
        /// input).
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
    /// Build the Linux guest's pieces for your own project from the kit this binary
    /// carries: a kernel with mmiolab's options, a test initramfs of your modules and
    /// scripts (docs/linux.md).
    Guest {
        #[command(subcommand)]
        command: guest::GuestCommand,
    },
    /// List the device descriptions bundled with mmiolab (a machine file's `model = NAME`),
    /// or print one of them as TOML, to read or to copy and change.
    Models {
        /// The model to print.
        name: Option<String>,
    },
    /// Register coverage of a run from its JSON-lines trace: for each described device,
    /// each register and field read / written / never touched and each declared behaviour
    /// that fired, in total and per guest test when the trace has test boundaries (a
    /// `--check` run with the guest agent) (docs/checker.md).
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
        /// Also write a self-contained HTML report to FILE: register maps coloured by
        /// coverage, behaviours and findings per register, a timeline of the trace; with
        /// test boundaries, each test's coverage and a test chooser.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
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
    /// Write a JUnit XML report to FILE (whole or not at all, never over an input).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Give up on the guest after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600.0)]
    timeout: f64,
    /// Echo the guest console while it runs (it is printed anyway when a test fails).
    #[arg(long, short)]
    verbose: bool,
    /// No progress lines on stderr (where the guest boots and why, the nested harness's
    /// stages): the results on stdout, and errors.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
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
    ///
    /// With --from-log: the findings of the run come from --findings FILE.
    #[arg(long)]
    check: bool,
    /// With --from-log: the findings report (`run --check-json`) of the run that made the
    /// log; guest/run-tests.sh brings it back from a nested run. It feeds the guest agent's
    /// results (`host: findings of TEST`) and, with --check, `register-check`.
    #[arg(long, value_name = "FILE", requires = "from_log")]
    findings: Option<PathBuf>,
    /// Compare the --trace file with FILE as `run --expect-trace` does (docs/checker.md):
    /// a `golden-trace` result that fails on the first difference.
    #[arg(long, value_name = "FILE", requires = "trace")]
    expect_trace: Option<PathBuf>,
    /// Run without the seccomp filters (docs/reliability.md): for debugging a run that
    /// ended with "seccomp: blocked syscall ..." (exit status 159), and under valgrind,
    /// which cannot run a filtered program.
    #[arg(long)]
    no_seccomp: bool,
    /// Where a Linux guest boots: directly under this process, or inside an outer VM (QEMU
    /// TCG running mmiolab on its nested KVM; docs/linux.md). auto: directly when /dev/kvm
    /// is hardware KVM (vmx/svm, not the software kvm_pvm), else nested; a bare-metal
    /// program always directly. The choice and its reason are printed.
    #[arg(long, value_enum, default_value_t = nesting::Nested::Auto, value_name = "WHEN")]
    nested: nesting::Nested,
    /// The kernel to boot instead of the machine file's.
    #[arg(long, value_name = "FILE", conflicts_with = "from_log")]
    kernel: Option<PathBuf>,
    /// The initramfs to boot instead of the machine file's.
    #[arg(long, value_name = "FILE", conflicts_with = "from_log")]
    initrd: Option<PathBuf>,
    /// Boot once to the first console line holding TEXT (no spaces; e.g. `KTAP`, which
    /// the test initramfs prints before its first test), save the VM there, and run the
    /// tests from a restore of it in a new mmiolab process (docs/snapshot.md). Directly or
    /// nested, the runs go through the kit's run-machine.sh; not with --check.
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["from_log", "check"])]
    snapshot_at: Option<String>,
    /// With --snapshot-at: when a restored run fails (a non-zero status), restore the same
    /// snapshot again, up to N more times, without booting again; the last attempt is
    /// judged, and each earlier one is named in the results.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "snapshot_at")]
    retries: u32,
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
    /// Write every trapped access (and what self-tracing devices did) to FILE. FILE is
    /// created (truncated) only when the guest starts, never over an input of the run, and
    /// holds only whole records whichever way the run ends.
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
    /// Stop the guest after this many seconds (exit status 124), also when its console
    /// output cannot be written.
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
    /// Run without the seccomp filters (docs/reliability.md): for debugging a run that
    /// ended with "seccomp: blocked syscall ..." (exit status 159), and under valgrind,
    /// which cannot run a filtered program.
    #[arg(long)]
    no_seccomp: bool,
    /// Save the whole VM into --snapshot-dir when the guest reaches MARKER, and end the run
    /// there (exit status 0): `port` (a write to I/O port 0xf8) or `console:TEXT` (a
    /// console line containing TEXT). Resume it with --restore (docs/snapshot.md).
    #[arg(long, value_name = "MARKER", value_parser = parse_marker, requires = "snapshot_dir")]
    snapshot_after: Option<mmiolab_vmm::snapshot::Marker>,
    /// Where --snapshot-after writes the snapshot: a new or empty directory, or an older
    /// snapshot to replace.
    #[arg(long, value_name = "DIR", requires = "snapshot_after")]
    snapshot_dir: Option<PathBuf>,
    /// Resume the snapshot in DIR instead of booting: the machine file must have the
    /// devices the snapshot was taken with (a difference is refused, named); its firmware
    /// or kernel is not used.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["firmware", "kernel", "check", "check_json"])]
    restore: Option<PathBuf>,
}

fn parse_marker(text: &str) -> std::result::Result<mmiolab_vmm::snapshot::Marker, String> {
    mmiolab_vmm::snapshot::Marker::parse(text)
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
    match name {
        Some(name) => {
            let text = bundled::bundled(name).ok_or_else(|| {
                anyhow::Error::new(UnknownModel(format!(
                    "no bundled model `{name}`; there are: {}",
                    bundled::names().join(", ")
                )))
            })?;
            to_stdout(text.as_bytes())?;
        }
        None => {
            let mut list = String::new();
            for name in bundled::names() {
                let what = bundled::bundled(name)
                    .and_then(|t| mmiolab_regmodel::schema::Description::from_toml(t).ok())
                    .and_then(|d| d.device.description)
                    .unwrap_or_default();
                list.push_str(&format!("{name:<12} {what}\n"));
            }
            to_stdout(list.as_bytes())?;
        }
    }
    Ok(())
}

/// `mmiolab models NAME` with a NAME that is not bundled (a usage error).
#[derive(Debug)]
struct UnknownModel(String);

impl std::fmt::Display for UnknownModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownModel {}

fn main() -> ExitCode {
    // Log lines go to stderr without ever blocking a stopping VM (see mmiolab_vmm::output).
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .target(env_logger::Target::Pipe(Box::new(HostFd::stderr())))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage(&e)),
    };
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Tree { config } => tree(&config).map(|()| 0),
        Command::Dt { config, dtb } => dt(&config, dtb.as_deref()).map(|()| 0),
        Command::Test(args) => test(args),
        Command::Header(args) => header_command(&args).map(|()| 0),
        Command::Guest { command } => guest::command(command),
        Command::Models { name } => models(name.as_deref()).map(|()| 0),
        Command::Coverage {
            trace,
            config,
            json,
            html,
        } => coverage::command(&trace, &config, json.as_deref(), html.as_deref()).map(|()| 0),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            let (status, quiet) = if e.is::<UnknownModel>() {
                (ending::USAGE, false)
            } else if e.is::<guest::Refused>() {
                (ending::INPUT, false)
            } else {
                ending::error_status(&e)
            };
            if !quiet {
                say(&format!("mmiolab: error: {e:#}"));
            }
            ExitCode::from(status)
        }
    }
}

/// What clap says about the command line: help and version on stdout (status 0, or the
/// output's failure), mistakes on stderr (status 64).
fn usage(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => match to_stdout(text.as_bytes()) {
            Ok(()) => 0,
            Err(o) if o.is_closed() => ending::CLOSED,
            Err(o) => {
                say(&format!("mmiolab: error: {o}"));
                ending::OUTPUT
            }
        },
        _ => {
            say(text.trim_end());
            ending::USAGE
        }
    }
}

fn load_config(path: Option<&Path>) -> Result<MachineConfig> {
    // Errors here are the file's (status 65).
    Ok(match path {
        Some(p) => MachineConfig::load(p)?,
        None => MachineConfig::parse("", Path::new("<defaults>"))?,
    })
}

fn tree(config: &Path) -> Result<()> {
    let config = load_config(Some(config))?;
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    to_stdout(platform.render_trees().as_bytes())?;
    Ok(())
}

fn dt(config: &Path, dtb: Option<&Path>) -> Result<()> {
    let config = load_config(Some(config))?;
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    if let Some(out) = dtb {
        let blob = mmiolab_vmm::fdt::dtb(&config, &platform).context("building the device tree blob")?;
        mmiolab_vmm::files::write_atomically(out, &blob, "the device tree blob", &config.input_files())?;
    }
    to_stdout(mmiolab_vmm::fdt::dts(&config, &platform).as_bytes())?;
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
        None => Ok(to_stdout(text.as_bytes())?),
    }
}

/// A console writer the test command reads back (its first [`MAX_CONSOLE_LOG`] bytes, as
/// much as `--from-log` reads: a guest printing forever cannot grow it without bound),
/// optionally echoing to stdout.
///
/// [`MAX_CONSOLE_LOG`]: mmiolab_vmm::files::MAX_CONSOLE_LOG
#[derive(Clone)]
struct Capture {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        {
            let mut buf = self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let room = (mmiolab_vmm::files::MAX_CONSOLE_LOG as usize).saturating_sub(buf.len());
            buf.extend_from_slice(data.get(..data.len().min(room)).unwrap_or_default());
        }
        if self.echo {
            HostFd::stdout().write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The machine file of `mmiolab test` with its --kernel and --initrd (relative to the
/// working directory) in place of its own.
fn test_config(args: &TestArgs) -> Result<MachineConfig> {
    let mut config = load_config(Some(&args.config))?;
    if args.kernel.is_none() && args.initrd.is_none() {
        return Ok(config);
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    if let Some(k) = &args.kernel {
        config.machine.kernel = Some(cwd.join(k));
        config.machine.firmware = None;
        config.machine.load_addr = None;
        config.set_override("machine.kernel", format!("--kernel {}", k.display()));
    }
    if let Some(i) = &args.initrd {
        config.machine.initrd = Some(cwd.join(i));
        config.set_override("machine.initrd", format!("--initrd {}", i.display()));
    }
    revalidate(config)
}

/// A progress line of `mmiolab test` on stderr, unless --quiet.
fn progress(args: &TestArgs, line: &str) {
    if !args.quiet {
        say(line);
    }
}

fn test(mut args: TestArgs) -> Result<u8> {
    if args.from_log.is_none() {
        let config = test_config(&args)?;
        let linux = config.machine.kernel.is_some();
        let placement = nesting::decide(args.nested, linux, nesting::Host::probe());
        if let nesting::Placement::Direct(why) = &placement {
            progress(&args, &format!("mmiolab test: booting directly: {why}"));
        }
        // A run with restores needs a process per run, which this one cannot start once it
        // has run a VM (its seccomp filter): it goes through the harness, as a nested run.
        if let (nesting::Placement::Direct(_), Some(_)) | (nesting::Placement::Nested(_), _) =
            (&placement, &args.snapshot_at)
        {
            let direct = matches!(placement, nesting::Placement::Direct(_));
            if let nesting::Placement::Nested(why) = &placement {
                progress(
                    &args,
                    &format!(
                        "mmiolab test: booting nested: {why}; the outer VM is QEMU TCG running mmiolab on its nested KVM"
                    ),
                );
            }
            let (Some(kernel), Some(initrd)) = (&config.machine.kernel, &config.machine.initrd) else {
                return Err(usage_error(
                    "a nested run, or one with --snapshot-at, boots a Linux kernel and initramfs: the machine file (or --kernel and --initrd) must name both",
                ));
            };
            if let Some(text) = &args.snapshot_at {
                if text.is_empty() || text.contains(char::is_whitespace) {
                    return Err(usage_error("--snapshot-at takes a console text without spaces"));
                }
                progress(
                    &args,
                    &format!(
                        "mmiolab test: booting once to console:{text}, saving the VM there, then running the tests from a restore of it (up to {} retries)",
                        args.retries
                    ),
                );
            }
            let (log, findings) = nesting::run(&nesting::NestedRun {
                config: &args.config,
                kernel: &config.resolve(kernel),
                initrd: &config.resolve(initrd),
                timeout: args.timeout,
                trace: args.trace.as_deref(),
                trace_filters: args.trace_filter.iter().map(ToString::to_string).collect(),
                check: args.check,
                verbose: args.verbose,
                quiet: args.quiet,
                direct,
                snapshot: args.snapshot_at.as_deref().map(|t| (t, args.retries)),
            })?;
            // judged as a log brought back from elsewhere
            args.from_log = Some(log);
            args.findings = findings;
            args.kernel = None;
            args.initrd = None;
        }
    }
    // Before any thread: a Ctrl-C ends the run cleanly and is judged as how it ended.
    let signals = StopSignals::block().map_err(|e| mmiolab_vmm::Error::Host("blocking the stop signals", e))?;
    let config = test_config(&args)?;
    let mut inputs = config.input_files();
    if let Some(log) = &args.from_log {
        inputs.push(("the console log".to_owned(), log.clone()));
    }
    if let Some(path) = &args.findings {
        inputs.push(("the findings report".to_owned(), path.clone()));
    }
    if let Some(junit) = &args.junit {
        mmiolab_vmm::files::check_output(junit, "the JUnit report", &inputs)?;
    }
    // What judging needs from the machine, made before the run: from the guest's start on,
    // this thread is under its seccomp filter (it may write reports, not build devices).
    let platform = Platform::build_unconnected(&config)?;
    let volatile = match (&args.expect_trace, &args.trace) {
        (Some(_), Some(_)) => Some(golden::volatile_registers(&config)?),
        _ => None,
    };
    let mut findings = None;
    let (console, run) = match &args.from_log {
        Some(log) => {
            let bytes =
                mmiolab_vmm::files::read_input(log, mmiolab_vmm::files::MAX_CONSOLE_LOG, "a console log may have")?;
            if let Some(path) = &args.findings {
                let text = mmiolab_vmm::files::read_input(
                    path,
                    mmiolab_vmm::files::MAX_CONSOLE_LOG,
                    "a findings report may have",
                )?;
                findings = Some(
                    checking::from_json(&String::from_utf8_lossy(&text))
                        .with_context(|| format!("reading the findings report {}", path.display()))?,
                );
            }
            (String::from_utf8_lossy(&bytes).into_owned(), None)
        }
        None => {
            let capture = Capture {
                buf: Default::default(),
                echo: args.verbose,
            };
            let timeout = Duration::try_from_secs_f64(args.timeout)
                .map_err(|_| usage_error("--timeout must be a positive number of seconds"))?;
            let trace = args.trace.as_ref().map(|path| TraceOutput {
                target: TraceTarget::File(path.clone()),
                options: TraceOptions {
                    format: TraceFormat::Jsonl,
                    filters: args.trace_filter.clone(),
                },
            });
            progress(
                &args,
                &format!("mmiolab test: booting {} (timeout {timeout:?})", args.config.display()),
            );
            let report = mmiolab_vmm::run(
                &config,
                RunOptions {
                    console: Box::new(capture.clone()),
                    console_name: if args.verbose {
                        "standard output (the guest console)".to_owned()
                    } else {
                        "the guest console".to_owned()
                    },
                    trace,
                    timeout: Some(timeout),
                    stdin: false,
                    stop_signals: Some(signals),
                    watch_stdio: false,
                    check: args.check,
                    seccomp: !args.no_seccomp,
                    snapshot: None,
                    restore: None,
                },
            )?;
            if let mmiolab_vmm::StopReason::Fault(why) = &report.reason {
                say(&format!("mmiolab test: the guest faulted:\n{why}"));
            }
            findings = args.check.then_some(report.findings);
            let bytes = capture
                .buf
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            (String::from_utf8_lossy(&bytes).into_owned(), Some(report.reason))
        }
    };
    // Booted once and restored per attempt (--snapshot-at here, or a log of run-machine.sh
    // --snapshot-at): the last attempt is judged (with the boot that led to it), the
    // earlier ones, which failed, are named.
    let mut attempt_notes = Vec::new();
    let split = guest_test::Attempts::split(&console);
    let console = if split.attempts.is_empty() {
        console.clone()
    } else {
        let total = split.attempts.len();
        for n in 0..total.saturating_sub(1) {
            let report = ktap::parse(&split.run(n));
            let failed: Vec<&str> = report
                .results
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.name.as_str())
                .collect();
            attempt_notes.push(format!(
                "mmiolab test: attempt {} of {total} failed ({}); retried from the snapshot",
                n + 1,
                if failed.is_empty() {
                    "its run ended badly".to_owned()
                } else {
                    format!("failed: {}", failed.join(", "))
                }
            ));
        }
        split.run(total.saturating_sub(1))
    };
    let mut verdict = guest_test::judge(&console, &platform, run.as_ref());
    let trace_text = args.trace.as_ref().map(|path| {
        std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| format!("cannot read the trace {}: {e}", path.display()))
    });
    let order = guest_test::trace_order_checks(
        &ktap::parse(&console),
        trace_text.as_ref().map(|t| t.as_deref().map_err(Clone::clone)),
    );
    verdict.failed += order.iter().filter(|r| !r.ok).count();
    verdict.results.extend(order);
    if args.check {
        let found = findings.as_deref().unwrap_or_default();
        checking::fail_tests_with_findings(&mut verdict.results, found);
        verdict.results.push(checking::test_result(found));
    }
    verdict.results.extend(checking::agent_results(
        &ktap::parse(&console),
        &console,
        findings.as_deref(),
    ));
    if let (Some(expected), Some(path), Some(volatile)) = (&args.expect_trace, &args.trace, &volatile) {
        verdict.results.push(golden::test_result(path, expected, volatile));
    }
    verdict.failed = verdict.results.iter().filter(|r| !r.ok).count()
        + verdict.notes.iter().filter(|n| n.starts_with("FAIL")).count();
    let mut out = String::new();
    for note in &attempt_notes {
        out.push_str(note);
        out.push('\n');
    }
    // The guest's tests come first in the results, in the order of the KTAP tree.
    let tree = ktap::parse(&console).tests;
    for (i, r) in verdict.results.iter().enumerate() {
        let directive = r.directive.as_deref().map(|d| format!(" # {d}")).unwrap_or_default();
        out.push_str(&format!(
            "{} {}{directive}\n",
            if r.ok { "PASS" } else { "FAIL" },
            r.name
        ));
        match tree.get(i).filter(|t| t.name == r.name) {
            // A guest test: each case (KUnit suites' cases and parameters, /init's module
            // cases), with the diagnostics of the failed ones.
            Some(t) => {
                if !r.ok {
                    for line in &t.log {
                        out.push_str(&format!("    {line}\n"));
                    }
                    // the checker's findings against it (the rest of its details are
                    // the tree's, rendered below)
                    for d in r.details.iter().filter(|d| d.starts_with(checking::FINDING_DETAIL)) {
                        out.push_str(&format!("    {d}\n"));
                    }
                }
                ktap::render_subtests(t, 4, &mut out);
            }
            None if !r.ok => {
                for d in &r.details {
                    out.push_str(&format!("    {d}\n"));
                }
            }
            None => {}
        }
    }
    for note in &verdict.notes {
        out.push_str(note);
        out.push('\n');
    }
    if verdict.failed > 0 && !args.verbose && args.from_log.is_none() {
        out.push_str(&format!(
            "--- guest console ---\n{console}--- end of guest console ---\n"
        ));
    }
    out.push_str(&format!(
        "mmiolab test: {} passed, {} failed\n",
        verdict.passed(),
        verdict.failed
    ));
    to_stdout(out.as_bytes())?;
    if let Some(path) = &args.junit {
        let trace = trace_text.as_ref().and_then(|t| t.as_deref().ok());
        let xml = junit::report(&verdict.results, &tree, trace).context("writing the JUnit report")?;
        mmiolab_vmm::files::write_atomically(path, xml.as_bytes(), "the JUnit report", &inputs)?;
    }
    // A run stopped by a signal says so in its status, as `run` does.
    if let Some(mmiolab_vmm::StopReason::Signal(signo)) = run {
        return Ok(ending::signal_status(signo));
    }
    Ok(u8::from(verdict.failed > 0))
}

/// A mistake on the command line found after parsing.
fn usage_error(message: &str) -> anyhow::Error {
    anyhow::Error::new(UnknownModel(message.to_owned()))
}

fn run(args: RunArgs) -> Result<u8> {
    let start = std::time::Instant::now();
    // Before any thread exists (threads inherit the mask): SIGINT, SIGTERM and SIGHUP then
    // end the run through the VMM's event loop, which flushes the trace and reports.
    let signals = StopSignals::block().map_err(|e| mmiolab_vmm::Error::Host("blocking the stop signals", e))?;
    let mut config = load_config(args.config.as_deref())?;
    let m = &mut config.machine;
    // Command-line paths are relative to the working directory, not to the machine file.
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let mut overrides: Vec<(&str, String)> = Vec::new();
    if let Some(fw) = &args.firmware {
        // The firmware replaces whatever the file runs, with what goes with it.
        m.firmware = Some(cwd.join(fw));
        m.kernel = None;
        m.initrd = None;
        m.cmdline = None;
        m.load_addr = args.load_addr;
        overrides.push(("machine.firmware", format!("--firmware {}", fw.display())));
        if let Some(a) = args.load_addr {
            overrides.push(("machine.load_addr", format!("--load-addr {a:#x}")));
        }
    }
    if let Some(k) = &args.kernel {
        m.kernel = Some(cwd.join(k));
        m.firmware = None;
        m.load_addr = None;
        overrides.push(("machine.kernel", format!("--kernel {}", k.display())));
    }
    if let Some(i) = &args.initrd {
        m.initrd = Some(cwd.join(i));
        overrides.push(("machine.initrd", format!("--initrd {}", i.display())));
    }
    if let Some(c) = &args.cmdline {
        m.cmdline = Some(c.clone());
        overrides.push(("machine.cmdline", "--cmdline".to_owned()));
    }
    if let Some(mib) = args.memory {
        m.memory_mib = mib;
        overrides.push(("machine.memory_mib", format!("--memory {mib}")));
    }
    if let Some(n) = args.vcpus {
        m.vcpus = n;
        overrides.push(("machine.vcpus", format!("--vcpus {n}")));
    }
    for (key, option) in overrides {
        config.set_override(key, option);
    }
    let config = revalidate(config)?;
    let check = args.check || args.check_json.is_some();
    // Refused now rather than after the run: the report would name an input.
    if let Some(path) = &args.check_json {
        mmiolab_vmm::files::check_output(path, "the findings report", &config.input_files())?;
    }
    // --expect-trace needs a JSON-lines trace: the --trace file, or a temporary one.
    let temp_trace = match (&args.expect_trace, &args.trace) {
        (Some(_), None) => Some(golden::TempTrace::new()?),
        _ => None,
    };
    if args.expect_trace.is_some() && matches!(args.trace_format, TraceFormatArg::Perfetto) {
        return Err(usage_error(
            "--expect-trace compares JSON-lines traces: drop --trace-format perfetto",
        ));
    }
    let trace_path = args
        .trace
        .clone()
        .or_else(|| temp_trace.as_ref().map(|t| t.path().to_owned()));
    let trace = trace_path.clone().map(|path| TraceOutput {
        target: TraceTarget::File(path),
        options: TraceOptions {
            format: match args.trace_format {
                TraceFormatArg::Jsonl => TraceFormat::Jsonl,
                TraceFormatArg::Perfetto => TraceFormat::Perfetto,
            },
            filters: args.trace_filter,
        },
    });
    let timeout = args
        .timeout
        .map(Duration::try_from_secs_f64)
        .transpose()
        .map_err(|_| usage_error("--timeout must be a positive number of seconds"))?;
    // Before the run: from the guest's start on, this thread is under its seccomp filter.
    let volatile = args
        .expect_trace
        .as_ref()
        .map(|_| golden::volatile_registers(&config))
        .transpose()?;
    let wants_snapshot = args.snapshot_after.is_some();
    let report = mmiolab_vmm::run(
        &config,
        RunOptions {
            // Straight to fd 1, unbuffered: nothing is left in a buffer at any ending, and
            // a blocked write gives way when the run stops (mmiolab_vmm::output).
            console: if args.console_timestamps {
                Box::new(Timestamped {
                    inner: HostFd::stdout(),
                    start,
                    at_line_start: true,
                })
            } else {
                Box::new(HostFd::stdout())
            },
            console_name: "standard output (the guest console)".to_owned(),
            trace,
            timeout,
            stdin: true,
            stop_signals: Some(signals),
            watch_stdio: true,
            check,
            seccomp: !args.no_seccomp,
            snapshot: args
                .snapshot_after
                .zip(args.snapshot_dir)
                .map(|(marker, dir)| mmiolab_vmm::snapshot::SnapshotRequest { marker, dir }),
            restore: args.restore,
        },
    )?;
    // The checker's and the golden trace's verdicts, said before the summary line.
    let mut verdict: Option<(u8, &str)> = None;
    if check {
        let failing = checking::report(&report.findings);
        if let Some(path) = &args.check_json {
            checking::write_json(path, &report.findings, &config.input_files())?;
        }
        if failing > 0 {
            verdict = Some((ending::FINDINGS, "the register checker found broken rules"));
        }
    }
    if let (Some(expected), Some(path), Some(volatile)) = (&args.expect_trace, &trace_path, &volatile) {
        if let Err(diff) = golden::compare_files(path, expected, volatile)? {
            say(&format!(
                "mmiolab: the trace differs from {}: {diff}",
                expected.display()
            ));
            verdict = verdict.or(Some((ending::TRACE_DIFFERS, "the trace differs from the expected one")));
        } else if !args.quiet {
            say(&format!("mmiolab: the trace matches {}", expected.display()));
        }
    }
    if wants_snapshot && report.snapshot.is_none() {
        verdict = verdict.or(Some((
            ending::FAULT,
            "the guest never reached the snapshot marker: no snapshot was written",
        )));
    }
    drop(temp_trace);
    Ok(ending::finish_run(&report, args.quiet, verdict))
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
