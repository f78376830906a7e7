//! The Linux boot benchmark (docs/performance.md, "Linux boot, side by side"): one boot of
//! one runner timed from its console ([`boot_once`], what `mmiolab-bench boot-once` runs,
//! inside the outer VM when nested), and the table over all boots ([`render`]).
//!
//! A boot's figures are read off the runner's standard output, the guest's serial console:
//! the time from spawning the VMM to the end of the console's first line (the kernel's
//! first), to the end of the first line holding the init's marker, and to the VMM's exit
//! (the guest's write to the exit port); and the VMM's peak RSS from `wait4`. Two figures
//! that the host's load moves less: the kernel's own clock when it starts the init (its
//! timestamp on "Run /init as init process"), and for mmiolab the number of VM exits (from
//! its report on stderr).
//!
//! The guest's `/init` then prints a KTAP report of one test; the time to the end of its
//! result line ([`is_first_test_result`]) is what a restore is compared on: the runner
//! [`SNAPSHOT`] boots mmiolab to the console text "mmiolab-boot-bench: tests", the line the
//! init prints before its tests, and saves the VM there (its exit is
//! the boot to the marker plus the save), and [`RESTORE`] is a new `mmiolab run --restore`
//! of that snapshot, timed from its spawn like a cold boot.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::proc;
use crate::report::Summary;

/// One boot of one runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootSample {
    /// The runner's name (`mmiolab`, `qemu`).
    pub runner: String,
    /// The repetition, from 1.
    pub rep: u32,
    /// Spawn to the end of the console's first line, ms; `None` if it printed nothing.
    pub first_line_ms: Option<f64>,
    /// Spawn to the end of the init's first line (the first holding the marker), ms.
    pub init_ms: Option<f64>,
    /// Spawn to the VMM's exit, ms.
    pub exit_ms: f64,
    /// Peak RSS of the VMM process, KiB.
    pub maxrss_kib: u64,
    /// "exit status N" or "killed by signal N".
    pub status: String,
    /// The console's first line, for the report (the runners' kernels may differ in it).
    pub first_line: String,
    /// The kernel's clock (printk timestamp) on "Run /init as init process", ms.
    #[serde(default)]
    pub kernel_init_ms: Option<f64>,
    /// VM exits, from mmiolab's report on stderr (`None` for QEMU, which has none).
    #[serde(default)]
    pub exits: Option<u64>,
    /// Spawn to the end of the first test's result line ([`is_first_test_result`]), ms.
    #[serde(default)]
    pub test_ms: Option<f64>,
}

/// The runner that boots mmiolab to the init's line before its tests and saves a snapshot there.
pub const SNAPSHOT: &str = "mmiolab-snapshot";
/// The runner that restores [`SNAPSHOT`]'s snapshot in a new mmiolab process.
pub const RESTORE: &str = "mmiolab-restore";

/// Whether `line` is the KTAP result line of the first test: `ok 1` or `not ok 1`, then the
/// line's end or a space (so `ok 10` is not it).
pub fn is_first_test_result(line: &str) -> bool {
    let line = line.trim();
    let rest = line.strip_prefix("ok 1").or_else(|| line.strip_prefix("not ok 1"));
    rest.is_some_and(|r| r.is_empty() || r.starts_with(' '))
}

/// The kernel's line when it starts the init.
const RUN_INIT: &str = "Run /init as init process";

/// The printk timestamp of `line` (`[    5.507857] ...`), in ms.
fn printk_ms(line: &str) -> Option<f64> {
    let stamp = line.trim_start().strip_prefix('[')?.split(']').next()?;
    stamp.trim().parse::<f64>().ok().map(|s| s * 1e3)
}

/// The exit count in mmiolab's report (`...; 24723 exits; ...`).
fn report_exits(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .filter(|l| l.starts_with("mmiolab: "))
        .flat_map(|l| l.split("; "))
        .find_map(|part| part.strip_suffix(" exits")?.parse().ok())
}

/// When the console's lines ended, read from the runner's stdout.
#[derive(Debug, Default, PartialEq)]
struct ConsoleTimes {
    first_line: Option<Duration>,
    first_line_text: String,
    marker: Option<Duration>,
    kernel_init_ms: Option<f64>,
    first_test: Option<Duration>,
}

/// Reads `console` to its end, copying it to `log`, and notes when the first line and the
/// first line holding `marker` ended (measured from `start`).
fn watch_console(mut console: impl Read, log: &mut impl Write, marker: &[u8], start: Instant) -> ConsoleTimes {
    let mut times = ConsoleTimes::default();
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = start.elapsed();
        let chunk = buf.get(..n).unwrap_or_default();
        // A console that cannot be logged still gets timed.
        let _ = log.write_all(chunk);
        for &b in chunk {
            if b != b'\n' {
                // Only the line being looked at is kept, bounded: a marker sits near the start.
                if line.len() < 4096 {
                    line.push(b);
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            if times.first_line.is_none() && !text.trim().is_empty() {
                times.first_line = Some(now);
                times.first_line_text = text.to_owned();
            }
            if times.marker.is_none() && line.windows(marker.len().max(1)).any(|w| w == marker) {
                times.marker = Some(now);
            }
            if times.kernel_init_ms.is_none() && text.contains(RUN_INIT) {
                times.kernel_init_ms = printk_ms(text);
            }
            if times.first_test.is_none() && is_first_test_result(text) {
                times.first_test = Some(now);
            }
            line.clear();
        }
    }
    times
}

/// Boots once: runs `command` (the VMM, console on its stdout), timing its console
/// against `marker`; the console goes to `console_log`, the VMM's stderr next to it
/// (`.stderr`). Killed after `timeout`.
pub fn boot_once(
    runner: &str,
    rep: u32,
    marker: &str,
    timeout: Duration,
    console_log: &Path,
    command: &[std::ffi::OsString],
) -> Result<BootSample> {
    let (program, args) = command.split_first().context("no command to run")?;
    let mut log = File::create(console_log).with_context(|| format!("creating {}", console_log.display()))?;
    let stderr_path = console_log.with_extension("stderr");
    let stderr = File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let console = child.stdout.take().context("the runner's stdout is not piped")?;
    let marker_bytes = marker.as_bytes().to_vec();
    let watcher = std::thread::spawn(move || watch_console(console, &mut log, &marker_bytes, start));
    let reaped = proc::reap(child, start, timeout)?;
    let times = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the console reader panicked"))?;
    if reaped.timed_out {
        bail!(
            "{runner} did not finish within {timeout:?} (console: {})",
            console_log.display()
        );
    }
    let finished = reaped.finished(String::new());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(BootSample {
        runner: runner.to_owned(),
        rep,
        first_line_ms: times.first_line.map(ms),
        init_ms: times.marker.map(ms),
        exit_ms: ms(finished.wall),
        maxrss_kib: finished.maxrss_kib,
        status: finished.status_text(),
        first_line: times.first_line_text,
        kernel_init_ms: times.kernel_init_ms,
        exits: report_exits(&std::fs::read_to_string(&stderr_path).unwrap_or_default()),
        test_ms: times.first_test.map(ms),
    })
}

/// Reads the samples of a results file: one JSON [`BootSample`] per line (other lines, such
/// as a console's, are skipped).
pub fn parse_samples(text: &str) -> Vec<BootSample> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<BootSample>(l.trim().trim_end_matches('\r')).ok())
        .collect()
}

/// The runners of `samples`, in their first appearance's order.
fn runners(samples: &[BootSample]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for s in samples {
        if !names.contains(&s.runner.as_str()) {
            names.push(&s.runner);
        }
    }
    names
}

/// One figure of one boot.
type Figure = fn(&BootSample) -> Option<f64>;

/// The figures of the table: column title, and how to read it off a boot.
const FIGURES: [(&str, Figure); 5] = [
    ("first console line", |s| s.first_line_ms),
    ("init's first line", |s| s.init_ms),
    ("first test line", |s| s.test_ms),
    ("exit (power-off)", |s| Some(s.exit_ms)),
    ("kernel's clock at Run /init", |s| s.kernel_init_ms),
];

/// The Markdown table over all boots: per runner the median and range of each figure and of
/// the peak RSS; then per figure the ratio `first runner / second runner` of each
/// repetition (the first two runners, mmiolab and QEMU as the benchmark orders them).
pub fn render(samples: &[BootSample]) -> String {
    let mut out = String::new();
    let names = runners(samples);
    let reps = samples.iter().map(|s| s.rep).max().unwrap_or(0);
    out.push_str(&format!(
        "{reps} repetition(s), times from spawning the VMM, median (min-max):\n\n"
    ));
    out.push_str("| runner |");
    for (title, _) in FIGURES {
        out.push_str(&format!(" {title} |"));
    }
    out.push_str(" peak RSS | VM exits | status |\n|---|");
    for _ in FIGURES {
        out.push_str("---|");
    }
    out.push_str("---|---|---|\n");
    for name in &names {
        let mine: Vec<&BootSample> = samples.iter().filter(|s| s.runner == *name).collect();
        out.push_str(&format!("| {name} |"));
        for (_, figure) in FIGURES {
            let values: Vec<f64> = mine.iter().filter_map(|s| figure(s)).collect();
            out.push_str(&match Summary::of(&values) {
                Some(v) if values.len() == mine.len() => {
                    format!(" {:.0} ms ({:.0}-{:.0}) |", v.median, v.min, v.max)
                }
                Some(v) => format!(
                    " {:.0} ms ({:.0}-{:.0}), missing in {} |",
                    v.median,
                    v.min,
                    v.max,
                    mine.len() - values.len()
                ),
                None => " - |".to_owned(),
            });
        }
        let rss: Vec<f64> = mine.iter().map(|s| s.maxrss_kib as f64 / 1024.0).collect();
        out.push_str(&Summary::of(&rss).map_or(" - |".to_owned(), |v| format!(" {:.1} MiB |", v.median)));
        let exits: Vec<f64> = mine.iter().filter_map(|s| s.exits).map(|e| e as f64).collect();
        out.push_str(&Summary::of(&exits).map_or(" - |".to_owned(), |v| {
            format!(" {:.0} ({:.0}-{:.0}) |", v.median, v.min, v.max)
        }));
        let mut statuses: Vec<&str> = mine.iter().map(|s| s.status.as_str()).collect();
        statuses.dedup();
        out.push_str(&format!(" {} |\n", statuses.join(", ")));
    }
    if let [a, b, ..] = names[..] {
        out.push_str(&format!(
            "\nRatio {a} / {b} per repetition:\n\n| figure | {} | median |\n|---|",
            (1..=reps).map(|r| format!("rep {r}")).collect::<Vec<_>>().join(" | ")
        ));
        for _ in 0..=reps {
            out.push_str("---|");
        }
        out.push('\n');
        for (title, figure) in FIGURES {
            out.push_str(&format!("| {title} |{}\n", ratio_cells(samples, a, b, figure, reps)));
        }
    }
    if names.contains(&RESTORE) {
        out.push_str(&restore_section(samples, reps));
    }
    let mut firsts: Vec<String> = Vec::new();
    for name in &names {
        if let Some(s) = samples.iter().find(|s| s.runner == *name) {
            firsts.push(format!("{name}: `{}`", s.first_line.replace('`', "'")));
        }
    }
    out.push_str(&format!("\nFirst console lines: {}\n", firsts.join("; ")));
    out
}

/// The cells ` x | y | ... | median |` of the ratio `a / b` of `figure` in each repetition
/// (`-` where either lacks it).
fn ratio_cells(samples: &[BootSample], a: &str, b: &str, figure: Figure, reps: u32) -> String {
    let mut cells = String::new();
    let mut ratios = Vec::new();
    for rep in 1..=reps {
        let of = |n: &str| samples.iter().find(|s| s.runner == n && s.rep == rep).and_then(figure);
        match (of(a), of(b)) {
            (Some(x), Some(y)) if y > 0.0 => {
                ratios.push(x / y);
                cells.push_str(&format!(" {:.2} |", x / y));
            }
            _ => cells.push_str(" - |"),
        }
    }
    cells.push_str(&Summary::of(&ratios).map_or(" - |".to_owned(), |v| format!(" {:.2} |", v.median)));
    cells
}

/// The restore against the cold boots, on the time to the first test line, per repetition;
/// and what the snapshot cost (paid once, not in the restore's figure).
fn restore_section(samples: &[BootSample], reps: u32) -> String {
    let mut out = format!(
        "\nRestore against cold boot, time to the first test line, per repetition:\n\n| ratio | {} | median |\n|---|",
        (1..=reps).map(|r| format!("rep {r}")).collect::<Vec<_>>().join(" | ")
    );
    for _ in 0..=reps {
        out.push_str("---|");
    }
    out.push('\n');
    let to_test: Figure = |s| s.test_ms;
    for cold in ["mmiolab", "qemu"] {
        out.push_str(&format!(
            "| {RESTORE} / {cold} |{}\n",
            ratio_cells(samples, RESTORE, cold, to_test, reps)
        ));
    }
    let snaps: Vec<&BootSample> = samples.iter().filter(|s| s.runner == SNAPSHOT).collect();
    let whole: Vec<f64> = snaps.iter().map(|s| s.exit_ms).collect();
    let save: Vec<f64> = snaps.iter().filter_map(|s| Some(s.exit_ms - s.init_ms?)).collect();
    if let (Some(w), Some(v)) = (Summary::of(&whole), Summary::of(&save)) {
        out.push_str(&format!(
            "\nThe snapshot, taken once per repetition (not in {RESTORE}'s figures): the {SNAPSHOT} run \
             (boot to the marker, save, exit) took {:.0} ms ({:.0}-{:.0}), of which {:.0} ms ({:.0}-{:.0}) \
             after the init's line (the save and the exit).\n",
            w.median, w.min, w.max, v.median, v.min, v.max
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_times_find_the_first_line_and_the_marker() {
        let console: &[u8] = b"\r\n[    0.000000] Linux version 6.1\r\nmore\r\n[    5.507857] Run /init as init process\r\nboot-bench: init here\r\nboot-bench: init again\nKTAP version 1\r\nok 1 first\r\n";
        let mut log = Vec::new();
        let t = watch_console(console, &mut log, b"boot-bench: init", Instant::now());
        assert_eq!(log, console, "the console is copied whole");
        assert_eq!(
            t.first_line_text, "[    0.000000] Linux version 6.1",
            "blank lines are not the first"
        );
        assert!(t.first_line.is_some() && t.marker.is_some() && t.first_test.is_some());
        assert!(t.marker <= t.first_test, "{t:?}");
        assert_eq!(
            t.kernel_init_ms,
            Some(5507.857),
            "the kernel's clock on its Run /init line"
        );
        let none = watch_console(&b"no newline at all"[..], &mut Vec::new(), b"init", Instant::now());
        assert_eq!(none, ConsoleTimes::default(), "an unfinished line is not a line");
    }

    fn sample(runner: &str, rep: u32, init: Option<f64>, exit: f64) -> BootSample {
        BootSample {
            runner: runner.to_owned(),
            rep,
            first_line_ms: Some(exit / 4.0),
            init_ms: init,
            exit_ms: exit,
            maxrss_kib: 2048,
            status: "exit status 0".to_owned(),
            first_line: "Linux `x`".to_owned(),
            kernel_init_ms: init.map(|i| i / 2.0),
            exits: (runner == "mmiolab").then_some(1000 + u64::from(rep)),
            test_ms: init.map(|i| i + 10.0),
        }
    }

    #[test]
    fn the_first_test_line_is_test_1s_result() {
        for yes in ["ok 1", "ok 1 boot", "not ok 1 boot # SKIP", "  ok 1 x\r"] {
            assert!(is_first_test_result(yes), "{yes:?}");
        }
        for no in ["ok 10 x", "ok 2 x", "# ok 1", "1..1", "KTAP version 1", "not ok 12"] {
            assert!(!is_first_test_result(no), "{no:?}");
        }
    }

    #[test]
    fn restore_is_compared_with_both_cold_boots_and_the_save_is_apart() {
        let mut samples = vec![
            sample("mmiolab", 1, Some(100.0), 200.0),
            sample("qemu", 1, Some(200.0), 400.0),
            sample(SNAPSHOT, 1, Some(100.0), 250.0),
            sample(RESTORE, 1, None, 50.0),
        ];
        samples[2].test_ms = None;
        samples[3].test_ms = Some(11.0);
        let table = render(&samples);
        assert!(table.contains("| mmiolab-restore / mmiolab | 0.10 | 0.10 |"), "{table}");
        assert!(table.contains("| mmiolab-restore / qemu | 0.05 | 0.05 |"), "{table}");
        assert!(
            table.contains("took 250 ms (250-250), of which 150 ms (150-150) after the init's line"),
            "{table}"
        );
        assert!(
            !render(&samples[..2]).contains("Restore against"),
            "no restore section without the restore runner"
        );
    }

    #[test]
    fn exits_are_read_from_mmiolabs_report() {
        let stderr = "warning: x\nmmiolab: guest wrote 0x0 to the test-exit port; exit status 0; 24723 exits; unmapped accesses: 97 MMIO reads\n";
        assert_eq!(report_exits(stderr), Some(24723));
        assert_eq!(
            report_exits("qemu-system-x86_64: 3 exits; no report\n"),
            None,
            "only mmiolab's report"
        );
        assert_eq!(printk_ms("no stamp"), None);
    }

    #[test]
    fn table_has_medians_ranges_and_per_repetition_ratios() {
        let samples = vec![
            sample("mmiolab", 1, Some(100.0), 200.0),
            sample("qemu", 1, Some(200.0), 400.0),
            sample("qemu", 2, Some(100.0), 100.0),
            sample("mmiolab", 2, None, 300.0),
        ];
        let lines = serde_json::to_string(&samples[0]).unwrap() + "\nconsole noise\n";
        assert_eq!(parse_samples(&lines), samples[..1], "non-JSON lines are skipped");
        let table = render(&samples);
        assert!(table.starts_with("2 repetition(s)"), "{table}");
        assert!(
            table.contains("| mmiolab | 62 ms (50-75) | 100 ms (100-100), missing in 1 | 110 ms (110-110), missing in 1 | 250 ms (200-300) | 50 ms (50-50), missing in 1 | 2.0 MiB | 1002 (1001-1002) | exit status 0 |"),
            "{table}"
        );
        assert!(
            table.contains(
                "| qemu | 62 ms (25-100) | 150 ms (100-200) | 160 ms (110-210) | 250 ms (100-400) | 75 ms (50-100) | 2.0 MiB | - |"
            ),
            "{table}"
        );
        assert!(table.contains("| init's first line | 0.50 | - | 0.50 |"), "{table}");
        assert!(table.contains("| first test line | 0.52 | - | 0.52 |"), "{table}");
        assert!(table.contains("| exit (power-off) | 0.50 | 3.00 | 1.75 |"), "{table}");
        assert!(table.contains("mmiolab: `Linux 'x'`"), "{table}");
    }
}
