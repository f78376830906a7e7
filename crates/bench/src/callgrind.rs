//! Counting user-space instructions with `valgrind --tool=callgrind`.
//!
//! Callgrind counts every instruction the process executes in user space (all threads), and
//! nothing the kernel does: KVM_RUN and the guest are invisible to it. A run at N accesses
//! minus a run at 0, divided by N, is what user space spends per exit; the count is exact
//! and repeats to within a few instructions per run (the event-loop thread's wake-ups).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc;

/// valgrind, when it is installed.
pub fn valgrind() -> Option<PathBuf> {
    crate::runner::which("valgrind")
}

/// One counted run.
#[derive(Clone, Debug)]
pub struct Counted {
    /// Instructions executed by the whole process.
    pub total: u64,
    /// The callgrind output file.
    pub file: PathBuf,
    /// The program's exit code.
    pub code: Option<i32>,
    /// Its output (valgrind's and the program's stderr).
    pub output: String,
}

/// Runs `program args` under callgrind, writing its profile to `out`.
pub fn count(valgrind: &Path, program: &Path, args: &[OsString], out: &Path, timeout: Duration) -> Result<Counted> {
    let mut cmd = Command::new(valgrind);
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--compress-strings=no")
        .arg("--compress-pos=no")
        .arg(program)
        .args(args);
    let log = out.with_extension("log");
    let done = proc::run(&mut cmd, timeout, &log, false)?;
    let text = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no totals in {}", out.display()))?;
    Ok(Counted {
        total,
        file: out.to_owned(),
        code: done.code,
        // The program's own lines, without valgrind's "==PID== ..." chatter.
        output: done
            .output
            .lines()
            .filter(|l| {
                !(l.starts_with("==")
                    && l[2..]
                        .split_once("==")
                        .is_some_and(|(pid, _)| pid.parse::<u32>().is_ok()))
            })
            .map(|l| format!("{l}\n"))
            .collect(),
    })
}

/// Instructions per access: (at N − at 0) / N.
pub fn per_exit(n: u64, at_n: u64, at_zero: u64) -> f64 {
    (at_n as f64 - at_zero as f64) / n as f64
}

/// Self cost per function, from `callgrind_annotate` (symbol names: inlined code counts
/// for the function it was inlined into).
pub fn by_function(file: &Path) -> Result<BTreeMap<String, u64>> {
    let out = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no", "--auto=no"])
        .arg(file)
        .output()
        .context("running callgrind_annotate")?;
    if !out.status.success() {
        bail!(
            "callgrind_annotate {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut map = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "260,000 (32.84%)  ???:mmiolab_devices::regfile::RegFile::write [/path/mmiolab]"
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let Some((_, name)) = rest.trim_start().split_once(")  ") else {
            continue;
        };
        if name.starts_with("PROGRAM TOTALS") {
            continue;
        }
        let name = name.rsplit_once(" [").map_or(name, |(n, _)| n);
        let name = match name.split_once(':') {
            Some((file, func)) if !file.contains('<') && !file.contains(' ') => func,
            _ => name,
        };
        *map.entry(name.to_owned()).or_insert(0) += count;
    }
    Ok(map)
}

/// Self cost per source file, read from the profile itself so that code inlined from
/// another file (`fi=`/`fe=` records) counts for that file. Needs debug line tables in the
/// binary; without them everything is `???`.
pub fn by_source_file(file: &Path) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut map = BTreeMap::new();
    let mut fl = String::from("???");
    let mut current = fl.clone();
    let mut skip_next_cost = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("fl=") {
            fl = v.to_owned();
            current = fl.clone();
        } else if let Some(v) = line.strip_prefix("fi=").or_else(|| line.strip_prefix("fe=")) {
            current = v.to_owned();
        } else if line.starts_with("fn=") {
            current = fl.clone();
        } else if line.starts_with("calls=") {
            skip_next_cost = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            if skip_next_cost {
                skip_next_cost = false;
                continue;
            }
            let cost = line.split_whitespace().nth(1).and_then(|c| c.parse::<u64>().ok());
            if let Some(cost) = cost {
                *map.entry(current.clone()).or_insert(0) += cost;
            }
        }
    }
    Ok(map)
}

/// `at_n − at_zero` per entry, divided by `n`, largest first, entries under `min` dropped.
pub fn diff_per_exit(
    n: u64,
    at_n: &BTreeMap<String, u64>,
    at_zero: &BTreeMap<String, u64>,
    min: f64,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = at_n
        .iter()
        .map(|(k, &c)| (k.clone(), per_exit(n, c, at_zero.get(k).copied().unwrap_or(0))))
        .filter(|(_, c)| c.abs() >= min)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_files_take_inlined_costs() {
        let dir = std::env::temp_dir().join(format!("mmiolab-bench-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("callgrind.out");
        std::fs::write(
            &f,
            "events: Ir\nfl=/a.rs\nfn=main\n1 10\nfi=/b.rs\n2 5\nfe=/a.rs\n3 1\ncfn=g\ncalls=1 4\n3 100\nfn=g\n4 7\ntotals: 23\n",
        )
        .unwrap();
        let m = by_source_file(&f).unwrap();
        assert_eq!(m.get("/a.rs"), Some(&18));
        assert_eq!(m.get("/b.rs"), Some(&5));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(per_exit(10, 150, 50), 10.0);
    }
}
