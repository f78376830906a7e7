//! The four ways the payload is run, each as a separate process with the same payload file
//! and the same command line, and how to check that a run did what was asked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::kinds::{Access, Kind, Target};

/// Status the payload writes to port 0xf4 when it has done its accesses.
pub const STATUS_OK: u8 = 0x20;
/// Guest RAM of every runner, MiB (tests/machines/bench.toml says the same for mmiolab).
pub const MEMORY_MIB: u64 = 64;

/// A described device of the benchmark: the machine `tests/machines/bench-described-KEY.toml`
/// puts one (`tests/machines/devices/bench-KEY.toml`) in each of the bench machine's two
/// regions, so the payload's device accesses reach its register at offset 0x10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Described {
    /// `SCRATCH`: a plain 32-bit read-write register, no fields (plain storage).
    Plain,
    /// `STATUS`: two W1C fields that feed an interrupt condition (`STATUS.DONE && CTRL.IE`).
    W1c,
    /// `DATA`: reads pop FIFO `rx` (depth 16, never filled: every read underflows), writes
    /// push onto it (full after 16: later writes overflow).
    Fifo,
}

impl Described {
    /// Every described device, in report order.
    pub const ALL: [Described; 3] = [Described::Plain, Described::W1c, Described::Fifo];

    /// `plain`, `w1c`, `fifo`: in file names, runner keys and `--runners`.
    pub fn key(self) -> &'static str {
        match self {
            Described::Plain => "plain",
            Described::W1c => "w1c",
            Described::Fifo => "fifo",
        }
    }

    /// Its machine file.
    pub fn machine_file(self) -> PathBuf {
        crate::workspace_root().join(format!("tests/machines/bench-described-{}.toml", self.key()))
    }

    /// What the payload's accesses do to it, for the report.
    pub fn what(self) -> &'static str {
        match self {
            Described::Plain => {
                "SCRATCH, a plain 32-bit rw register (no fields): MMIO write/read = the plain path; \
                 the port write is a 1-byte access to it (partial access, general path)"
            }
            Described::W1c => {
                "STATUS, fields DONE and ERR w1c, in the interrupt condition STATUS.DONE && CTRL.IE \
                 (both set at reset): writes of 0 run the field loop and clear nothing; reads are \
                 non-plain reads; every access re-evaluates the condition"
            }
            Described::Fifo => {
                "DATA, pop/push of FIFO rx (depth 16, nothing fills it): reads pop an empty FIFO \
                 (underflow); writes push (the first 16 of a run), then overflow"
            }
        }
    }

    /// Instructions-per-exit targets (trace off, trace on): the 250 / 1,000 for a
    /// plain register, 1.5x that for the W1C status register and the FIFO.
    pub fn targets(self) -> (f64, f64) {
        match self {
            Described::Plain => (250.0, 1000.0),
            Described::W1c | Described::Fifo => (375.0, 1500.0),
        }
    }
}

/// A runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runner {
    /// `mmiolab-bench rawloop`: KVM_RUN and nothing else.
    Raw,
    /// `mmiolab run`, no trace.
    Mmiolab,
    /// `mmiolab run --trace FILE`.
    MmiolabTrace,
    /// `qemu-system-x86_64 -M microvm -accel kvm`.
    Qemu,
    /// `mmiolab run` on a described-device machine, no trace.
    Described(Described),
    /// `mmiolab run --trace FILE` on a described-device machine (the device writes its own
    /// register-level trace lines).
    DescribedTrace(Described),
}

impl serde::Serialize for Runner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.key())
    }
}

impl Runner {
    /// The runners on the machine of `--machine` (default `tests/machines/bench.toml`), in
    /// report order.
    pub const ALL: [Runner; 4] = [Runner::Raw, Runner::Mmiolab, Runner::MmiolabTrace, Runner::Qemu];

    /// mmiolab on the described-device machines, trace off and on, in report order.
    pub const DESCRIBED: [Runner; 6] = [
        Runner::Described(Described::Plain),
        Runner::DescribedTrace(Described::Plain),
        Runner::Described(Described::W1c),
        Runner::DescribedTrace(Described::W1c),
        Runner::Described(Described::Fifo),
        Runner::DescribedTrace(Described::Fifo),
    ];

    /// The runner whose [`key`](Self::key) is `key`.
    pub fn parse(key: &str) -> Option<Runner> {
        Runner::ALL
            .into_iter()
            .chain(Runner::DESCRIBED)
            .find(|r| r.key() == key)
    }

    /// Name in tables.
    pub fn label(self) -> String {
        match self {
            Runner::Raw => "raw loop".to_owned(),
            Runner::Mmiolab => "mmiolab".to_owned(),
            Runner::MmiolabTrace => "mmiolab --trace".to_owned(),
            Runner::Qemu => "qemu microvm".to_owned(),
            Runner::Described(d) => format!("described {}", d.key()),
            Runner::DescribedTrace(d) => format!("described {} --trace", d.key()),
        }
    }

    /// Key in the JSON report and in `--runners`.
    pub fn key(self) -> String {
        match self {
            Runner::Raw => "raw".to_owned(),
            Runner::Mmiolab => "mmiolab".to_owned(),
            Runner::MmiolabTrace => "mmiolab_trace".to_owned(),
            Runner::Qemu => "qemu".to_owned(),
            Runner::Described(d) => format!("described_{}", d.key()),
            Runner::DescribedTrace(d) => format!("described_{}_trace", d.key()),
        }
    }

    /// Whether it runs `mmiolab` (on any machine).
    pub fn is_mmiolab(self) -> bool {
        matches!(
            self,
            Runner::Mmiolab | Runner::MmiolabTrace | Runner::Described(_) | Runner::DescribedTrace(_)
        )
    }

    /// Whether it runs `mmiolab --trace`.
    pub fn traced(self) -> bool {
        matches!(self, Runner::MmiolabTrace | Runner::DescribedTrace(_))
    }

    /// The described device it runs on, if any.
    pub fn described(self) -> Option<Described> {
        match self {
            Runner::Described(d) | Runner::DescribedTrace(d) => Some(d),
            _ => None,
        }
    }

    /// Whether it is run on `kind`: the described-device machines differ from the bench
    /// machine only at the device targets, so their runners skip the unmapped kinds.
    pub fn runs(self, kind: Kind) -> bool {
        self.described().is_none() || kind.target == Target::Device
    }

    /// The exit status of a successful run (QEMU's isa-debug-exit exits with 2v+1).
    pub fn expected_status(self) -> i32 {
        match self {
            Runner::Qemu => i32::from(STATUS_OK) * 2 + 1,
            _ => i32::from(STATUS_OK),
        }
    }
}

/// Where the programs and files are.
#[derive(Clone, Debug)]
pub struct Setup {
    /// This program (for `rawloop`).
    pub bench_exe: PathBuf,
    /// The mmiolab binary.
    pub mmiolab: PathBuf,
    /// qemu-system-x86_64, when there is one.
    pub qemu: Option<PathBuf>,
    /// The payload ELF.
    pub payload: PathBuf,
    /// The machine file of [`Runner::Mmiolab`] and [`Runner::MmiolabTrace`]
    /// (tests/machines/bench.toml unless `--machine`); the described runners use
    /// [`Described::machine_file`].
    pub machine: PathBuf,
    /// Scratch directory for logs and traces.
    pub work: PathBuf,
}

impl Setup {
    /// Trace file of the traced runner.
    pub fn trace_file(&self) -> PathBuf {
        self.work.join("trace.jsonl")
    }

    /// Removes the trace file, so that no run pays for truncating the previous one's.
    pub fn clear_trace(&self) {
        let _ = std::fs::remove_file(self.trace_file());
    }

    /// The machine file `runner` boots (mmiolab runners only).
    pub fn machine_of(&self, runner: Runner) -> PathBuf {
        match runner.described() {
            Some(d) => d.machine_file(),
            None => self.machine.clone(),
        }
    }

    /// As [`Setup::command`], for running under callgrind: mmiolab gets `--no-seccomp`,
    /// since valgrind runs the program's system calls itself and cannot install (nor live
    /// under) its seccomp filters.
    pub fn callgrind_command(&self, runner: Runner, kind: Kind, n: u64) -> Result<(PathBuf, Vec<OsString>)> {
        let (program, mut args) = self.command(runner, kind, n)?;
        if runner.is_mmiolab() {
            args.push(OsString::from("--no-seccomp"));
        }
        Ok((program, args))
    }

    /// Program and arguments that run `kind` `n` times under `runner`.
    pub fn command(&self, runner: Runner, kind: Kind, n: u64) -> Result<(PathBuf, Vec<OsString>)> {
        let cmdline = kind.cmdline(n);
        let payload = self.payload.clone().into_os_string();
        let os = |s: &str| OsString::from(s);
        Ok(match runner {
            Runner::Raw => (
                self.bench_exe.clone(),
                vec![
                    os("rawloop"),
                    os("--kernel"),
                    payload,
                    os("--cmdline"),
                    os(&cmdline),
                    os("--memory"),
                    os(&MEMORY_MIB.to_string()),
                ],
            ),
            Runner::Mmiolab | Runner::MmiolabTrace | Runner::Described(_) | Runner::DescribedTrace(_) => {
                let mut args = vec![
                    os("run"),
                    os("--config"),
                    self.machine_of(runner).into_os_string(),
                    os("--kernel"),
                    payload,
                    os("--cmdline"),
                    os(&cmdline),
                    os("--timeout"),
                    os("600"),
                ];
                if runner.traced() {
                    args.push(os("--trace"));
                    args.push(self.trace_file().into_os_string());
                }
                (self.mmiolab.clone(), args)
            }
            Runner::Qemu => {
                let qemu = self.qemu.clone().context("no QEMU")?;
                let mut args: Vec<OsString> = [
                    "-M",
                    "microvm",
                    "-accel",
                    "kvm",
                    "-m",
                    "64",
                    "-nodefaults",
                    "-no-user-config",
                    "-display",
                    "none",
                    "-device",
                    "isa-debug-exit,iobase=0xf4,iosize=4",
                    "-kernel",
                ]
                .iter()
                .map(|s| os(s))
                .collect();
                args.push(payload);
                args.push(os("-append"));
                args.push(os(&cmdline));
                (qemu, args)
            }
        })
    }

    /// Checks that a run of `kind` `n` times under `runner` ended as it should and, where
    /// the runner reports it, did exactly `n` accesses of the right kind.
    pub fn check(&self, runner: Runner, kind: Kind, n: u64, code: Option<i32>, output: &str) -> Result<()> {
        ensure!(
            code == Some(runner.expected_status()),
            "{} ended with {code:?}, not status {}: {}",
            runner.label(),
            runner.expected_status(),
            output.trim()
        );
        match runner {
            Runner::Raw => {
                let counts = parse_counts(output, "rawloop:")?;
                let want = expected(kind, n, false);
                ensure!(
                    counts == want,
                    "raw loop: counts {counts:?}, expected {want:?}: {}",
                    output.trim()
                );
            }
            Runner::Mmiolab | Runner::MmiolabTrace | Runner::Described(_) | Runner::DescribedTrace(_) => {
                let exits = number_before(output, " exits")?;
                ensure!(exits == n + 1, "mmiolab counted {exits} exits, expected {}", n + 1);
                let unmapped = unmapped_counts(output)?;
                let want = match kind.target {
                    Target::Device => [0; 4],
                    Target::Unmapped => expected(kind, n, true),
                };
                ensure!(
                    unmapped == want,
                    "mmiolab: unmapped counts {unmapped:?}, expected {want:?}: {}",
                    output.trim()
                );
                if runner.traced() {
                    let trace = std::fs::read(self.trace_file()).context("reading the trace")?;
                    let lines = trace.iter().filter(|&&b| b == b'\n').count() as u64;
                    ensure!(lines == n + 1, "the trace has {lines} lines, expected {}", n + 1);
                }
            }
            Runner::Qemu => {}
        }
        Ok(())
    }
}

/// [port writes, port reads, MMIO writes, MMIO reads] for `n` accesses of `kind` (the
/// unmapped-count order of mmiolab's summary when `mmiolab_order`).
fn expected(kind: Kind, n: u64, mmiolab_order: bool) -> [u64; 4] {
    let slot = match (kind.access, mmiolab_order) {
        (Access::PioWrite, false) => 0,
        (Access::MmioWrite, false) => 2,
        (Access::MmioRead, false) => 3,
        // "N MMIO reads, N MMIO writes, N port reads, N port writes"
        (Access::MmioRead, true) => 0,
        (Access::MmioWrite, true) => 1,
        (Access::PioWrite, true) => 3,
    };
    let mut c = [0; 4];
    c[slot] = n;
    c
}

/// The number just before `suffix` in `text`.
fn number_before(text: &str, suffix: &str) -> Result<u64> {
    let at = text
        .find(suffix)
        .with_context(|| format!("no `{suffix}` in: {}", text.trim()))?;
    let digits: String = text[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .with_context(|| format!("no number before `{suffix}` in: {}", text.trim()))
}

/// mmiolab's "unmapped accesses: A MMIO reads, B MMIO writes, C port reads, D port writes".
fn unmapped_counts(text: &str) -> Result<[u64; 4]> {
    let at = text
        .find("unmapped accesses:")
        .with_context(|| format!("no unmapped-access summary in: {}", text.trim()))?;
    let rest = &text[at..];
    Ok([
        number_before(rest, " MMIO reads")?,
        number_before(rest, " MMIO writes")?,
        number_before(rest, " port reads")?,
        number_before(rest, " port writes")?,
    ])
}

/// The raw loop's summary line, after `prefix`.
fn parse_counts(text: &str, prefix: &str) -> Result<[u64; 4]> {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .with_context(|| format!("no `{prefix}` line in: {}", text.trim()))?;
    Ok([
        number_before(line, " port writes")?,
        number_before(line, " port reads")?,
        number_before(line, " MMIO writes")?,
        number_before(line, " MMIO reads")?,
    ])
}

/// The raw loop's summary line.
pub fn raw_summary(status: u8, c: &crate::rawloop::Counts) -> String {
    format!(
        "rawloop: guest wrote {status:#x} to port 0xf4; {} exits: {} port writes, {} port reads, {} MMIO writes, {} MMIO reads",
        c.exits, c.pio_out, c.pio_in, c.mmio_write, c.mmio_read
    )
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails unless `p` is an executable file.
pub fn require_executable(p: &Path, what: &str) -> Result<()> {
    if !is_executable(p) {
        bail!("{what} not found at {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::KINDS;

    #[test]
    fn runners_parse_from_their_keys_and_described_machines_exist() {
        for r in Runner::ALL.into_iter().chain(Runner::DESCRIBED) {
            assert_eq!(Runner::parse(&r.key()), Some(r));
        }
        assert_eq!(
            Runner::parse("described_plain_trace"),
            Some(Runner::DescribedTrace(Described::Plain))
        );
        for d in Described::ALL {
            assert!(d.machine_file().is_file(), "{}", d.machine_file().display());
            assert!(
                !Runner::Described(d).runs(KINDS[1]),
                "unmapped kinds are left to the bench machine"
            );
            assert!(Runner::Described(d).runs(KINDS[2]));
        }
    }

    #[test]
    fn summaries_are_parsed() {
        let m = "mmiolab: guest wrote 0x20 to the test-exit port; exit status 32; 101 exits; unmapped accesses: 100 MMIO reads, 0 MMIO writes, 0 port reads, 0 port writes\n";
        assert_eq!(number_before(m, " exits").unwrap(), 101);
        assert_eq!(unmapped_counts(m).unwrap(), expected(KINDS[5], 100, true));
        let c = crate::rawloop::Counts {
            exits: 11,
            pio_out: 10,
            ..Default::default()
        };
        let r = raw_summary(0x20, &c);
        assert_eq!(parse_counts(&r, "rawloop:").unwrap(), expected(KINDS[0], 10, false));
    }
}
