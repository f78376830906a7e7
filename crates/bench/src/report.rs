//! The benchmark's results: the JSON report and the tables printed from it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::runner::{Described, Runner};

/// Median, extremes and the samples themselves.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Median of the samples.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Every sample, in run order.
    pub samples: Vec<f64>,
}

impl Summary {
    /// First and third quartiles (medians of the lower and upper halves).
    pub fn quartiles(&self) -> (f64, f64) {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        let half = s.len() / 2;
        let lower = Summary::of(&s[..half.max(1)]).map_or(self.min, |x| x.median);
        let upper = Summary::of(&s[s.len() - half.max(1)..]).map_or(self.max, |x| x.median);
        (lower, upper)
    }

    /// Summarises `samples` (None when empty).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let mid = s.len() / 2;
        let median = if s.len() % 2 == 1 {
            s[mid]
        } else {
            (s[mid - 1] + s[mid]) / 2.0
        };
        Some(Summary {
            median,
            min: s[0],
            max: s[s.len() - 1],
            samples: samples.to_vec(),
        })
    }
}

/// Where one runner's per-exit instructions go: (name, instructions per exit).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Breakdown {
    /// By function symbol (what callgrind_annotate shows; inlined code counts for its caller).
    pub by_function: Vec<(String, f64)>,
    /// By source file, inlined code included (only with debug line tables in the binary).
    pub by_source_file: Vec<(String, f64)>,
}

/// One runner on one kind.
#[derive(Clone, Debug, Serialize)]
pub struct RunnerResult {
    /// Which.
    pub runner: Runner,
    /// The machine file it booted (mmiolab runners).
    pub machine: Option<String>,
    /// Wall time per exit, ns: (t(N) − median t(0)) / N, one sample per repetition.
    pub wall_ns_per_exit: Option<Summary>,
    /// CPU time (user + system) per exit, ns, the same way: less disturbed than wall time
    /// by other load on the machine, and with the same kernel work in it.
    pub cpu_ns_per_exit: Option<Summary>,
    /// Process start to exit at N = 0, ms.
    pub startup_ms: Option<Summary>,
    /// Largest peak RSS over this kind's runs, KiB.
    pub peak_rss_kib: Option<u64>,
    /// User-space instructions per exit (callgrind, all threads).
    pub instructions_per_exit: Option<f64>,
    /// User-space instructions of the N = 0 run (start-up and shut-down).
    pub instructions_at_zero: Option<u64>,
    /// Wall per exit over the raw loop's: median over repetitions of the ratio.
    pub ratio_to_raw: Option<f64>,
    /// First and third quartiles of the per-repetition ratios to the raw loop.
    pub ratio_to_raw_quartiles: Option<(f64, f64)>,
    /// Wall per exit over QEMU's: median over repetitions of the ratio.
    pub ratio_to_qemu: Option<f64>,
    /// Where the instructions go (with `--breakdown`).
    pub breakdown: Option<Breakdown>,
}

/// One access kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindReport {
    /// `mmio-write/device`, ...
    pub kind: String,
    /// The access, in words.
    pub access: String,
    /// What answers it in each VMM.
    pub answered_by: String,
    /// The payload's command line at N.
    pub cmdline: String,
    /// Every runner that ran.
    pub results: Vec<RunnerResult>,
}

/// A runner that could not run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Which.
    pub runner: Runner,
    /// Why.
    pub reason: String,
}

/// A target from the issue, checked (reported only; wall time is never asserted on).
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    /// What is compared.
    pub what: String,
    /// Measured value.
    pub value: f64,
    /// The target.
    pub limit: f64,
    /// Whether the value is within it.
    pub met: bool,
    /// What else to know about it.
    pub note: Option<String>,
}

/// The machine the numbers come from.
#[derive(Clone, Debug, Serialize)]
pub struct Host {
    /// `uname -r`.
    pub kernel: String,
    /// The KVM module in use (kvm_intel, kvm_amd, kvm_pvm, ...).
    pub kvm_module: String,
    /// CPU model.
    pub cpu: String,
    /// Online CPUs.
    pub cpus: usize,
    /// /proc/loadavg when the run started.
    pub load_before: String,
    /// /proc/loadavg when it ended.
    pub load_after: String,
    /// `qemu-system-x86_64 --version`, first line.
    pub qemu_version: Option<String>,
    /// `valgrind --version`.
    pub valgrind_version: Option<String>,
    /// Peak RSS the launcher reports for `/bin/true`: a runner's peak RSS at or below this is
    /// the launcher's own, and the runner's is no larger.
    pub rss_floor_kib: u64,
    /// Seconds since the epoch at the start.
    pub started_unix: u64,
}

/// What was run.
#[derive(Clone, Debug, Serialize)]
pub struct SettingsOut {
    /// Accesses per timed run.
    pub n: u64,
    /// Pairs of timed runs (N and 0) per runner and kind.
    pub reps: usize,
    /// Accesses per callgrind run (None: callgrind skipped).
    pub callgrind_n: Option<u64>,
    /// The payload file.
    pub payload: String,
    /// The mmiolab machine file.
    pub machine: String,
    /// The mmiolab binary.
    pub mmiolab: String,
    /// The QEMU binary.
    pub qemu: Option<String>,
    /// Guest RAM, MiB.
    pub memory_mib: u64,
}

/// One piece of the hot path, priced alone (`--breakdown`).
#[derive(Clone, Debug, Serialize)]
pub struct Component {
    /// `bus-device`, ...
    pub op: String,
    /// What it is.
    pub what: String,
    /// User-space instructions per operation, loop overhead subtracted.
    pub instructions: f64,
}

/// Everything.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where.
    pub host: Host,
    /// How.
    pub settings: SettingsOut,
    /// Runners that did not run.
    pub skipped: Vec<Skipped>,
    /// Per access kind.
    pub kinds: Vec<KindReport>,
    /// The hot path's pieces alone (with `--breakdown`).
    pub components: Vec<Component>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
    /// Wall time of the whole benchmark, s.
    pub duration_s: f64,
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_owned(), f)
}

impl Report {
    /// The human-readable tables.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let h = &self.host;
        let _ = writeln!(
            s,
            "host: {} ({} CPUs), kernel {}, KVM module {}; load {} -> {}",
            h.cpu, h.cpus, h.kernel, h.kvm_module, h.load_before, h.load_after
        );
        let st = &self.settings;
        let _ = writeln!(
            s,
            "N = {} accesses, {} timed pairs (N and 0) per runner; callgrind at N = {}; guest RAM {} MiB; RSS floor {:.1} MiB\npayload {}\n",
            st.n,
            st.reps,
            st.callgrind_n.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            st.memory_mib,
            h.rss_floor_kib as f64 / 1024.0,
            st.payload
        );
        for skip in &self.skipped {
            let _ = writeln!(s, "not run: {}: {}", skip.runner.label(), skip.reason);
        }
        if !self.skipped.is_empty() {
            s.push('\n');
        }
        let described: Vec<Described> = Described::ALL
            .into_iter()
            .filter(|d| {
                self.kinds
                    .iter()
                    .any(|k| k.results.iter().any(|r| r.runner.described() == Some(*d)))
            })
            .collect();
        if !described.is_empty() {
            let _ = writeln!(
                s,
                "described devices (register at offset 0x10 of both regions; the payload's device accesses only):"
            );
            for d in described {
                let _ = writeln!(s, "  described {}: {}", d.key(), d.machine_file().display());
                let _ = writeln!(s, "    {}", d.what());
            }
            s.push('\n');
        }
        for k in &self.kinds {
            let _ = writeln!(s, "{}: {} ({})", k.kind, k.access, k.answered_by);
            let _ = writeln!(
                s,
                "  {:<24} {:>10} {:>17} {:>7} {:>7} {:>9} {:>11} {:>9} {:>9}",
                "runner", "wall/exit", "(min-max)", "x raw", "x qemu", "cpu/exit", "instr/exit", "start-up", "peak RSS"
            );
            for r in &k.results {
                let wall = r.wall_ns_per_exit.as_ref();
                let _ = writeln!(
                    s,
                    "  {:<24} {:>10} {:>17} {:>7} {:>7} {:>9} {:>11} {:>9} {:>9}",
                    r.runner.label(),
                    opt(wall.map(|w| w.median), |v| format!("{:.2} us", v / 1e3)),
                    opt(wall.map(|w| w.min), |v| format!(
                        "({:.2}-{:.2})",
                        v / 1e3,
                        wall.map_or(0.0, |w| w.max) / 1e3
                    )),
                    opt(r.ratio_to_raw, |v| format!("{v:.3}")),
                    opt(r.ratio_to_qemu, |v| format!("{v:.3}")),
                    opt(r.cpu_ns_per_exit.as_ref().map(|x| x.median), |v| format!(
                        "{:.2} us",
                        v / 1e3
                    )),
                    opt(r.instructions_per_exit, |v| format!("{v:.1}")),
                    opt(r.startup_ms.as_ref().map(|x| x.median), |v| format!("{v:.1} ms")),
                    opt(r.peak_rss_kib.map(|v| v as f64), |v| format!("{:.1} MiB", v / 1024.0)),
                );
            }
            for r in &k.results {
                let Some(b) = &r.breakdown else { continue };
                let _ = writeln!(
                    s,
                    "  where {}'s instructions per exit go, by function (callgrind_annotate):",
                    r.runner.label()
                );
                for (name, v) in b.by_function.iter().take(10) {
                    let _ = writeln!(s, "    {v:>8.1}  {name}");
                }
                // Source files only mean something with debug line tables in the binary.
                if b.by_source_file.iter().any(|(f, _)| f.ends_with(".rs")) {
                    let _ = writeln!(s, "  ... by source file, inlined code included:");
                    for (name, v) in b.by_source_file.iter().take(12) {
                        let _ = writeln!(s, "    {v:>8.1}  {name}");
                    }
                }
            }
            s.push('\n');
        }
        if !self.components.is_empty() {
            let _ = writeln!(
                s,
                "the hot path's pieces alone (user-space instructions per operation):"
            );
            for c in &self.components {
                let _ = writeln!(s, "  {:>8.1}  {:<18} {}", c.instructions, c.op, c.what);
            }
            s.push('\n');
        }
        let _ = writeln!(s, "targets (reported, never asserted on wall time):");
        for t in &self.targets {
            let how = if t.met {
                "ok  ".to_owned()
            } else {
                format!("MISS by {:+.0}%", (t.value / t.limit - 1.0) * 100.0)
            };
            let _ = writeln!(s, "  [{how}] {}: {:.3} (target {})", t.what, t.value, t.limit);
            if let Some(note) = &t.note {
                let _ = writeln!(s, "           {note}");
            }
        }
        s
    }
}

impl Report {
    /// The per-kind table as Markdown (for docs/performance.md).
    pub fn render_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| access | runner | wall/exit (median; min-max) | x raw | x QEMU | user instr/exit | start-up | peak RSS |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for k in &self.kinds {
            for (i, r) in k.results.iter().enumerate() {
                let wall = r.wall_ns_per_exit.as_ref();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    if i == 0 { k.kind.as_str() } else { "" },
                    r.runner.label(),
                    wall.map_or_else(
                        || "-".to_owned(),
                        |w| format!("{:.2} us ({:.1}-{:.1})", w.median / 1e3, w.min / 1e3, w.max / 1e3)
                    ),
                    opt(r.ratio_to_raw, |v| format!("{v:.2}")),
                    opt(r.ratio_to_qemu, |v| format!("{v:.2}")),
                    opt(r.instructions_per_exit, |v| format!("{v:.0}")),
                    opt(r.startup_ms.as_ref().map(|x| x.median), |v| format!("{v:.1} ms")),
                    opt(r.peak_rss_kib.map(|v| v as f64), |v| format!("{:.1} MiB", v / 1024.0)),
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Summary::of(&[]).is_none());
        let q = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap().quartiles();
        assert_eq!(q, (1.5, 4.5));
    }
}
