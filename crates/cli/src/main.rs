//! `mmiolab`: the command line. Errors are reported here, at the edge, with anyhow.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use mmiolab_vmm::{MachineConfig, Platform, RunOptions, StopReason};

/// Exit status when the VMM itself failed or the guest faulted (triple fault, unhandled
/// exit, timeout).
const STATUS_FAULT: u8 = 1;
/// Exit status when a Linux guest panicked (reported through pvpanic).
const STATUS_GUEST_PANIC: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mmiolab",
    version,
    about = "KVM-based MMIO device emulator: boot a guest, trap every access to emulated devices",
    long_about = "mmiolab runs a KVM virtual machine whose emulated devices are described in a TOML \
machine file. Every guest access to a device's MMIO or I/O-port registers exits to mmiolab, \
goes through one bus tree to the device model, and can be traced.\n\n\
Exit status of `run`: the value the guest wrote to the test-exit port 0xf4 (low byte); 0 when \
the guest reset the machine; 2 when a Linux guest panicked; 1 when the guest faulted (triple \
fault, unhandled exit, timeout) or mmiolab could not start it."
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
    /// Write every trapped access as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Stop the guest (as a failure) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Do not print the end-of-run summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("`{s}` is not a number: {e}"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Tree { config } => tree(&config).map(|()| 0),
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

fn run(args: RunArgs) -> Result<u8> {
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
    let trace: Option<Box<dyn Write + Send>> = match &args.trace {
        Some(path) => {
            let f = File::create(path).with_context(|| format!("creating trace file {}", path.display()))?;
            Some(Box::new(BufWriter::with_capacity(1 << 16, f)))
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
            console: Box::new(std::io::stdout()),
            trace,
            timeout,
            stdin: true,
        },
    )?;
    let _ = std::io::stdout().flush();
    let (status, what) = match &report.reason {
        StopReason::ExitDevice(v) => (*v, format!("guest wrote {v:#x} to the test-exit port")),
        StopReason::GuestReset => (0, "guest reset the machine".to_owned()),
        StopReason::GuestPanic => (STATUS_GUEST_PANIC, "guest kernel panicked (pvpanic)".to_owned()),
        StopReason::Fault(report) => {
            eprintln!("mmiolab: guest stopped with a fault:\n{report}");
            (STATUS_FAULT, "guest fault".to_owned())
        }
    };
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
