//! Golden traces (`mmiolab run --expect-trace FILE`, docs/checker.md): the register-level
//! trace of a run compared with one recorded before.
//!
//! Both traces are JSON lines. Compared are the `access` and `event` lines, in order, each
//! without what varies from run to run: `seq`, `t_ns` and the `due_ns` of scheduled
//! effects. `finding` and `test` lines (the checker's and the guest agent's) are skipped,
//! so a trace recorded with or without `--check` compares the same, and so are accesses to
//! registers the description marks `volatile = true`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mmiolab_vmm::{MachineConfig, Platform};
use serde_json::Value;

/// (device region name, register name) pairs whose accesses are not compared.
pub type Volatile = HashSet<(String, String)>;

/// The volatile registers of `config`'s described devices, by the region names the trace
/// uses. Called before the run: afterwards the thread is under its seccomp filter, which
/// does not let it build devices (eventfds, timers).
pub fn volatile_registers(config: &MachineConfig) -> Result<Volatile> {
    let platform = Platform::build_unconnected(config)?;
    let mut out = Volatile::new();
    for s in &platform.self_traced {
        let region = platform.bus.tree(s.space).name(s.region);
        for r in s.model.registers.iter().filter(|r| r.volatile) {
            out.insert((region.to_owned(), r.name.clone()));
        }
    }
    Ok(out)
}

/// One compared line: its number in its file and its normalised value.
struct Line {
    number: usize,
    value: Value,
}

/// The lines of `text` that are compared, normalised.
fn compared_lines(text: &str, what: &str, volatile: &Volatile) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let mut v: Value = serde_json::from_str(raw).map_err(|e| format!("{what} line {}: not JSON: {e}", i + 1))?;
        let Some(o) = v.as_object_mut() else {
            return Err(format!("{what} line {}: not a JSON object", i + 1));
        };
        match o.get("kind").and_then(Value::as_str) {
            Some("access" | "event") => {}
            _ => continue,
        }
        let reg = o.get("reg").and_then(Value::as_str);
        let device = o.get("device").and_then(Value::as_str);
        if let (Some(d), Some(r)) = (device, reg)
            && volatile.contains(&(d.to_owned(), r.to_owned()))
        {
            continue;
        }
        o.remove("seq");
        o.remove("t_ns");
        if let Some(Value::Array(effects)) = o.get_mut("effects") {
            for e in effects.iter_mut().filter_map(Value::as_object_mut) {
                e.remove("due_ns");
            }
        }
        out.push(Line {
            number: i + 1,
            value: v,
        });
    }
    Ok(out)
}

/// Where a line happened: `device.REG` (or the device, or the address).
fn place(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    match (s("device"), s("reg"), s("kind")) {
        (Some(d), Some(r), _) => format!("{d}.{r}"),
        (Some(d), None, Some("event")) => format!("{d} (event)"),
        (Some(d), None, _) => format!("{d} offset {}", s("offset").unwrap_or("?")),
        (None, _, _) => format!("address {}", s("addr").unwrap_or("?")),
    }
}

/// Compares a run's trace with the expected one: `Ok(Err(difference))` names the first
/// difference by register.
pub fn compare(got: &str, expected: &str, volatile: &Volatile) -> Result<Result<(), String>, String> {
    let got = compared_lines(got, "trace", volatile)?;
    let want = compared_lines(expected, "expected trace", volatile)?;
    for (g, w) in got.iter().zip(&want) {
        if g.value != w.value {
            let what = if place(&g.value) == place(&w.value) {
                format!("at {}", place(&g.value))
            } else {
                format!(
                    "expected an access to {}, got one to {}",
                    place(&w.value),
                    place(&g.value)
                )
            };
            return Ok(Err(format!(
                "first difference {what} (trace line {}, expected line {}):\n  expected {}\n  got      {}",
                g.number, w.number, w.value, g.value
            )));
        }
    }
    if got.len() != want.len() {
        let (which, extra) = if got.len() > want.len() {
            ("the run made", got.get(want.len()))
        } else {
            ("the run lacks", want.get(got.len()))
        };
        let extra = extra.map_or_else(String::new, |l| {
            format!(", from {} on (line {})", place(&l.value), l.number)
        });
        return Ok(Err(format!(
            "{} compared lines, expected {}: {which} more{extra}",
            got.len(),
            want.len()
        )));
    }
    Ok(Ok(()))
}

/// [`compare`] on two files.
pub fn compare_files(got: &Path, expected: &Path, volatile: &Volatile) -> Result<Result<(), String>> {
    let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    compare(&read(got)?, &read(expected)?, volatile).map_err(anyhow::Error::msg)
}

/// The `golden-trace` result of `mmiolab test --expect-trace`: the trace at `got` compared
/// with `expected`; a failure carries the difference (or why they could not be compared).
pub fn test_result(got: &Path, expected: &Path, volatile: &Volatile) -> crate::ktap::TestResult {
    let (ok, details) = match compare_files(got, expected, volatile) {
        Ok(Ok(())) => (true, Vec::new()),
        Ok(Err(diff)) => (false, diff.lines().map(str::to_owned).collect()),
        Err(e) => (false, vec![format!("{e:#}")]),
    };
    crate::ktap::TestResult {
        name: "golden-trace".to_owned(),
        ok,
        directive: None,
        details,
    }
}

/// A trace file in the temporary directory, removed when dropped.
pub struct TempTrace(PathBuf);

impl TempTrace {
    /// A fresh path (the run creates the file).
    pub fn new() -> Result<TempTrace> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!("mmiolab-expect-{}-{nanos}.jsonl", std::process::id()));
        Ok(TempTrace(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempTrace {
    fn drop(&mut self) {
        // It may not exist (the run failed before creating it).
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"v":2,"seq":0,"t_ns":5,"kind":"access","vcpu":0,"op":"write","value":"0x1","device":"d","reg":"CTRL","effects":[{"scheduled":"go","due_ns":99}]}
{"v":2,"seq":1,"t_ns":6,"kind":"finding","rule":"hole","device":"d"}
{"v":2,"seq":2,"t_ns":7,"kind":"access","vcpu":0,"op":"read","value":"0x1234","device":"d","reg":"TIMER","effects":[]}
{"v":2,"seq":3,"t_ns":8,"kind":"access","vcpu":0,"op":"read","value":"0x0","device":"d","reg":"STATUS","effects":[]}
"#;

    #[test]
    fn times_sequence_numbers_findings_test_lines_and_volatile_registers_are_ignored() {
        // A trace recorded with the guest agent has test boundaries; one without has none.
        let b = r#"{"v":2,"kind":"test","vcpu":0,"test":"t1","phase":"begin"}
{"v":2,"kind":"access","vcpu":0,"op":"write","value":"0x1","device":"d","reg":"CTRL","effects":[{"scheduled":"go","due_ns":1}]}
{"v":2,"kind":"access","vcpu":0,"op":"read","value":"0x9999","device":"d","reg":"TIMER","effects":[]}
{"v":2,"kind":"access","vcpu":0,"op":"read","value":"0x0","device":"d","reg":"STATUS","effects":[]}
"#;
        let volatile: Volatile = [("d".to_owned(), "TIMER".to_owned())].into();
        assert_eq!(compare(A, b, &volatile), Ok(Ok(())));
        let diff = compare(A, b, &Volatile::new()).unwrap().unwrap_err();
        assert!(
            diff.starts_with("first difference at d.TIMER (trace line 3, expected line 3)"),
            "{diff}"
        );
    }

    #[test]
    fn the_first_difference_is_named_by_register() {
        let b = A.replace(
            r#""value":"0x0","device":"d","reg":"STATUS""#,
            r#""value":"0x4","device":"d","reg":"STATUS""#,
        );
        let diff = compare(A, &b, &Volatile::new()).unwrap().unwrap_err();
        assert!(
            diff.starts_with("first difference at d.STATUS (trace line 4, expected line 4)"),
            "{diff}"
        );
        let short: String = A.lines().take(3).map(|l| format!("{l}\n")).collect();
        let diff = compare(A, &short, &Volatile::new()).unwrap().unwrap_err();
        assert_eq!(
            diff,
            "3 compared lines, expected 2: the run made more, from d.STATUS on (line 4)"
        );
    }
}
