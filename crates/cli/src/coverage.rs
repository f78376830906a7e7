//! Register coverage (`mmiolab coverage --trace FILE --config MACHINE`, docs/checker.md),
//! computed after the run from its JSON-lines trace, so it costs the run nothing.
//!
//! For each described device of the machine: each register (array elements and banked
//! views count one each) read / written / never touched; each declared field read /
//! written (an access reached it: its bytes overlap the field's bits); each declared
//! behaviour that fired: a write-1-to-clear field cleared a set bit, a read-to-clear field
//! cleared one, a FIFO reached full, overflowed, underflowed, an effect ran, an interrupt
//! was raised and (level ones) lowered. Accesses the device rejected for their width reach
//! no register and count for nothing. A trace written with `--trace-filter` gives the
//! coverage of what it kept.
//!
//! Per test too: a trace of a run with the guest agent (`--check`) has `test` lines, the
//! boundaries of each KTAP test (crates/vmm/src/trace.rs); the lines between a test's
//! `begin` and its `end` count for that test as well as for the total. A test that runs
//! twice is counted once, over both runs; lines outside every test count for the total only.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use mmiolab_regmodel::compile::{Model, OnRead, OnWrite};
use mmiolab_regmodel::schema::{Endianness, Trigger};
use mmiolab_vmm::{MachineConfig, Platform};
use serde_json::{Value, json};

/// What a trace did to one register.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterCoverage {
    /// Name (`CH[2]`).
    pub name: String,
    /// Reads that reached it.
    pub reads: u64,
    /// Writes that reached it.
    pub writes: u64,
    /// Its declared fields: (name, read, written).
    pub fields: Vec<(String, bool, bool)>,
}

/// One declared behaviour and how often it fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// `w1c STATUS.DONE`, `rclr STATUS.CNT`, `fifo rx full`, `fifo rx overflow`, `fifo rx
    /// underflow`, `effect complete`, `irq done raised`, `irq done lowered`.
    pub what: String,
    /// How many times.
    pub fired: u64,
}

/// One device's coverage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCoverage {
    /// The device's name in the machine file.
    pub device: String,
    /// Its registers, in description order.
    pub registers: Vec<RegisterCoverage>,
    /// Its declared behaviours, in description order.
    pub behaviours: Vec<Behaviour>,
}

/// Counts of one device, or of all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Registers.
    pub registers: u64,
    /// ... read at least once.
    pub registers_read: u64,
    /// ... written at least once.
    pub registers_written: u64,
    /// ... read or written.
    pub registers_touched: u64,
    /// Declared fields.
    pub fields: u64,
    /// ... read.
    pub fields_read: u64,
    /// ... written.
    pub fields_written: u64,
    /// ... read or written.
    pub fields_touched: u64,
    /// Declared behaviours.
    pub behaviours: u64,
    /// ... that fired at least once.
    pub behaviours_fired: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.registers += o.registers;
        self.registers_read += o.registers_read;
        self.registers_written += o.registers_written;
        self.registers_touched += o.registers_touched;
        self.fields += o.fields;
        self.fields_read += o.fields_read;
        self.fields_written += o.fields_written;
        self.fields_touched += o.fields_touched;
        self.behaviours += o.behaviours;
        self.behaviours_fired += o.behaviours_fired;
    }
}

impl DeviceCoverage {
    /// The device's counts.
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            registers: self.registers.len() as u64,
            behaviours: self.behaviours.len() as u64,
            behaviours_fired: self.behaviours.iter().filter(|b| b.fired > 0).count() as u64,
            ..Totals::default()
        };
        for r in &self.registers {
            t.registers_read += u64::from(r.reads > 0);
            t.registers_written += u64::from(r.writes > 0);
            t.registers_touched += u64::from(r.reads > 0 || r.writes > 0);
            for (_, read, written) in &r.fields {
                t.fields += 1;
                t.fields_read += u64::from(*read);
                t.fields_written += u64::from(*written);
                t.fields_touched += u64::from(*read || *written);
            }
        }
        t
    }
}

/// What one device's lines are checked against, with the counters being filled.
struct Tally<'m> {
    model: &'m Model,
    registers: HashMap<&'m str, usize>,
    coverage: DeviceCoverage,
    /// Behaviour index by (kind, name): kinds `w1c`, `rclr`, `full`, `overflow`,
    /// `underflow`, `effect`, `raised`, `lowered`.
    behaviour: HashMap<(&'static str, String), usize>,
}

impl<'m> Tally<'m> {
    fn new(device: &str, model: &'m Model) -> Tally<'m> {
        let mut behaviours = Vec::new();
        let mut behaviour = HashMap::new();
        let mut declare = |kind: &'static str, name: &str, what: String| {
            behaviour.insert((kind, name.to_owned()), behaviours.len());
            behaviours.push(Behaviour { what, fired: 0 });
        };
        for r in &model.registers {
            for f in &r.fields {
                if f.on_write == OnWrite::OneToClear {
                    declare("w1c", &f.path, format!("w1c {}", f.path));
                }
                if f.on_read == OnRead::Clear {
                    declare("rclr", &f.path, format!("rclr {}", f.path));
                }
            }
        }
        for q in &model.fifos {
            declare("full", &q.name, format!("fifo {} full", q.name));
            declare("overflow", &q.name, format!("fifo {} overflow", q.name));
            declare("underflow", &q.name, format!("fifo {} underflow", q.name));
        }
        for e in &model.effects {
            declare("effect", &e.name, format!("effect {}", e.name));
        }
        for i in &model.interrupts {
            declare("raised", &i.name, format!("irq {} raised", i.name));
            if i.trigger == Trigger::Level {
                declare("lowered", &i.name, format!("irq {} lowered", i.name));
            }
        }
        let registers = model
            .registers
            .iter()
            .map(|r| RegisterCoverage {
                name: r.name.clone(),
                fields: if r.declared_fields {
                    r.fields.iter().map(|f| (f.name.clone(), false, false)).collect()
                } else {
                    Vec::new()
                },
                ..RegisterCoverage::default()
            })
            .collect();
        Tally {
            model,
            registers: model
                .registers
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.as_str(), i))
                .collect(),
            coverage: DeviceCoverage {
                device: device.to_owned(),
                registers,
                behaviours,
            },
            behaviour,
        }
    }

    fn fire(&mut self, kind: &'static str, name: &str) {
        if let Some(&i) = self.behaviour.get(&(kind, name.to_owned()))
            && let Some(b) = self.coverage.behaviours.get_mut(i)
        {
            b.fired += 1;
        }
    }

    fn line(&mut self, line: &Value) {
        let effects = line
            .get("effects")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let read = line.get("op").and_then(Value::as_str) == Some("read");
        let is_access = line.get("kind").and_then(Value::as_str) == Some("access");
        for e in effects {
            let s = |k: &str| e.get(k).and_then(Value::as_str);
            if let Some(path) = s("cleared") {
                // A write-1-to-clear field clears on a guest write, a read-to-clear one on
                // a guest read; effects clear bits too, in events or the other direction.
                if is_access && !read {
                    self.fire("w1c", path);
                }
                if is_access && read {
                    self.fire("rclr", path);
                }
            } else if let Some(fifo) = s("fifo") {
                let level = e.get("level").and_then(Value::as_u64);
                let full = self
                    .model
                    .fifos
                    .iter()
                    .any(|q| q.name == fifo && Some(u64::from(q.depth)) == level);
                if full {
                    self.fire("full", fifo);
                }
            } else if let Some(fifo) = s("overflow") {
                self.fire("overflow", fifo);
            } else if let Some(fifo) = s("underflow") {
                self.fire("underflow", fifo);
            } else if let Some(effect) = s("fired") {
                self.fire("effect", effect);
            } else if let Some(irq) = s("irq") {
                let asserted = e.get("asserted").and_then(Value::as_bool) == Some(true);
                self.fire(if asserted { "raised" } else { "lowered" }, irq);
            }
        }
        if !is_access || effects.iter().any(|e| e.get("bad_width").is_some()) {
            return;
        }
        let Some(i) = line
            .get("reg")
            .and_then(Value::as_str)
            .and_then(|r| self.registers.get(r).copied())
        else {
            return;
        };
        let (Some(r), Some(cov)) = (self.model.registers.get(i), self.coverage.registers.get_mut(i)) else {
            return;
        };
        if read {
            cov.reads += 1;
        } else {
            cov.writes += 1;
        }
        let offset = line.get("offset").and_then(Value::as_str).and_then(parse_hex);
        let width = line.get("width").and_then(Value::as_u64);
        let (Some(offset), Some(width)) = (offset, width) else {
            return;
        };
        // The register bits the access's bytes reach.
        let mut bits = 0u64;
        for a in offset..offset.saturating_add(width) {
            let Some(b) = a.checked_sub(r.offset).filter(|&b| b < u64::from(r.width)) else {
                continue;
            };
            let byte = match self.model.endianness {
                Endianness::Little => b,
                Endianness::Big => u64::from(r.width) - 1 - b,
            };
            bits |= 0xff << (8 * byte);
        }
        if r.declared_fields {
            for (f, (_, fr, fw)) in r.fields.iter().zip(cov.fields.iter_mut()) {
                if f.mask & bits != 0 {
                    if read {
                        *fr = true;
                    } else {
                        *fw = true;
                    }
                }
            }
        }
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// The coverage of one guest test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCoverage {
    /// The test's name, as the guest agent reported it.
    pub test: String,
    /// Every described device, as in [`Coverage::devices`], counting the test's lines only.
    pub devices: Vec<DeviceCoverage>,
}

/// The coverage of a trace: in total and per test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Per described device, over the whole trace.
    pub devices: Vec<DeviceCoverage>,
    /// Per test, in the order the tests first began (none: the trace has no `test` lines).
    pub tests: Vec<TestCoverage>,
}

/// The test a `test` line of the trace begins (`Some`) or ends (`None`).
pub(crate) fn test_boundary(line: &Value) -> Option<Option<&str>> {
    if line.get("kind").and_then(Value::as_str) != Some("test") {
        return None;
    }
    let name = line.get("test").and_then(Value::as_str);
    Some(match line.get("phase").and_then(Value::as_str) {
        Some("begin") => name,
        _ => None,
    })
}

/// The coverage of `trace` (JSON lines) for the described devices of `devices`: (machine
/// file name, region names in the trace, model).
pub fn compute(trace: &str, devices: &[(String, Vec<String>, &Model)]) -> Result<Coverage> {
    let new_tallies = || -> Vec<Tally<'_>> { devices.iter().map(|(name, _, m)| Tally::new(name, m)).collect() };
    let mut tallies = new_tallies();
    let mut tests: Vec<(String, Vec<Tally<'_>>)> = Vec::new();
    let mut current: Option<usize> = None;
    let mut by_region: HashMap<&str, usize> = HashMap::new();
    for (i, (_, regions, _)) in devices.iter().enumerate() {
        for r in regions {
            by_region.insert(r.as_str(), i);
        }
    }
    for (n, raw) in trace.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line: Value = serde_json::from_str(raw).with_context(|| format!("trace line {}: not JSON", n + 1))?;
        if line.get("v").and_then(Value::as_u64) != Some(2) {
            bail!("trace line {}: not a version 2 JSON-lines trace line", n + 1);
        }
        if let Some(boundary) = test_boundary(&line) {
            current = boundary.map(|name| match tests.iter().position(|(t, _)| t == name) {
                Some(k) => k,
                None => {
                    tests.push((name.to_owned(), new_tallies()));
                    tests.len() - 1
                }
            });
            continue;
        }
        let Some(&i) = line
            .get("device")
            .and_then(Value::as_str)
            .and_then(|d| by_region.get(d))
        else {
            continue;
        };
        if let Some(t) = tallies.get_mut(i) {
            t.line(&line);
        }
        if let Some(t) = current.and_then(|k| tests.get_mut(k)).and_then(|(_, t)| t.get_mut(i)) {
            t.line(&line);
        }
    }
    let done = |tallies: Vec<Tally<'_>>| tallies.into_iter().map(|t| t.coverage).collect();
    Ok(Coverage {
        devices: done(tallies),
        tests: tests
            .into_iter()
            .map(|(test, tallies)| TestCoverage {
                test,
                devices: done(tallies),
            })
            .collect(),
    })
}

/// The described devices of `platform`: (machine-file name, region names, model), in
/// machine-file order.
pub fn described(platform: &Platform) -> Vec<(String, Vec<String>, &Model)> {
    let mut devices: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut order = Vec::new();
    for (k, s) in platform.self_traced.iter().enumerate() {
        let region = platform.bus.tree(s.space).name(s.region).to_owned();
        let entry = devices.entry(s.device.clone()).or_insert_with(|| {
            order.push(s.device.clone());
            (Vec::new(), k)
        });
        entry.0.push(region);
    }
    order
        .iter()
        .filter_map(|name| {
            let (regions, k) = devices.get(name)?;
            let model = platform.self_traced.get(*k)?.model.as_ref();
            Some((name.clone(), regions.clone(), model))
        })
        .collect()
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn summary(t: &Totals) -> String {
    format!(
        "registers {}/{} touched ({}), {} read ({}), {} written ({}); fields {}/{} touched ({}), {} read ({}), {} written ({}); behaviours {}/{} fired ({})",
        t.registers_touched,
        t.registers,
        pct(t.registers_touched, t.registers),
        t.registers_read,
        pct(t.registers_read, t.registers),
        t.registers_written,
        pct(t.registers_written, t.registers),
        t.fields_touched,
        t.fields,
        pct(t.fields_touched, t.fields),
        t.fields_read,
        pct(t.fields_read, t.fields),
        t.fields_written,
        pct(t.fields_written, t.fields),
        t.behaviours_fired,
        t.behaviours,
        pct(t.behaviours_fired, t.behaviours),
    )
}

/// Totals over `devices`.
pub fn totals(devices: &[DeviceCoverage]) -> Totals {
    let mut all = Totals::default();
    for d in devices {
        all.add(&d.totals());
    }
    all
}

/// The table `mmiolab coverage` prints: each device's registers, fields and behaviours, the
/// total, then one summary per test (for the devices the test touched, and its total).
pub fn table(coverage: &Coverage) -> String {
    let mut out = String::new();
    for d in &coverage.devices {
        let _ = writeln!(out, "device {}: {}", d.device, summary(&d.totals()));
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>8}  fields (r = read, w = written, - = never)",
            "register", "reads", "writes"
        );
        for r in &d.registers {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|(name, read, written)| {
                    let mark = match (read, written) {
                        (true, true) => "rw",
                        (true, false) => "r",
                        (false, true) => "w",
                        (false, false) => "-",
                    };
                    format!("{name}:{mark}")
                })
                .collect();
            let never = if r.reads == 0 && r.writes == 0 {
                "  never touched"
            } else {
                ""
            };
            let row = format!(
                "  {:<16} {:>8} {:>8}  {}{never}",
                r.name,
                r.reads,
                r.writes,
                fields.join(" ")
            );
            let _ = writeln!(out, "{}", row.trim_end());
        }
        for b in &d.behaviours {
            let mark = if b.fired > 0 { "x" } else { " " };
            let _ = writeln!(out, "  [{mark}] {:<32} {}", b.what, b.fired);
        }
    }
    let _ = writeln!(out, "total: {}", summary(&totals(&coverage.devices)));
    for t in &coverage.tests {
        let _ = writeln!(out, "test {}: {}", t.test, summary(&totals(&t.devices)));
        for d in &t.devices {
            let dt = d.totals();
            if dt.registers_touched > 0 || dt.behaviours_fired > 0 {
                let _ = writeln!(out, "  device {}: {}", d.device, summary(&dt));
            }
        }
    }
    out
}

fn totals_json(t: &Totals) -> Value {
    json!({
        "registers": t.registers,
        "registers_read": t.registers_read,
        "registers_written": t.registers_written,
        "registers_touched": t.registers_touched,
        "fields": t.fields,
        "fields_read": t.fields_read,
        "fields_written": t.fields_written,
        "fields_touched": t.fields_touched,
        "behaviours": t.behaviours,
        "behaviours_fired": t.behaviours_fired,
    })
}

fn devices_json(devices: &[DeviceCoverage]) -> Vec<Value> {
    devices
        .iter()
        .map(|d| {
            json!({
                "device": d.device,
                "registers": d.registers.iter().map(|r| json!({
                    "name": r.name,
                    "reads": r.reads,
                    "writes": r.writes,
                    "fields": r.fields.iter().map(|(n, read, written)| json!({
                        "name": n, "read": read, "written": written
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "behaviours": d.behaviours.iter().map(|b| json!({"what": b.what, "fired": b.fired})).collect::<Vec<_>>(),
                "totals": totals_json(&d.totals()),
            })
        })
        .collect()
}

/// The JSON document `--json` writes (keys in docs/checker.md): the devices and totals of
/// the whole trace, and `tests`, the same per test.
pub fn to_json(coverage: &Coverage) -> Value {
    let tests: Vec<Value> = coverage
        .tests
        .iter()
        .map(|t| {
            json!({
                "test": t.test,
                "devices": devices_json(&t.devices),
                "totals": totals_json(&totals(&t.devices)),
            })
        })
        .collect();
    json!({
        "devices": devices_json(&coverage.devices),
        "totals": totals_json(&totals(&coverage.devices)),
        "tests": tests,
    })
}

/// `mmiolab coverage`.
pub fn command(trace: &Path, config_path: &Path, json_out: Option<&Path>, html_out: Option<&Path>) -> Result<()> {
    let config = MachineConfig::load(config_path)?;
    let mut inputs = config.input_files();
    inputs.push(("the trace".to_owned(), trace.to_owned()));
    // Refused before anything is computed or written: an output over an input.
    for (path, what) in [
        (json_out, "the coverage report"),
        (html_out, "the HTML coverage report"),
    ] {
        if let Some(p) = path {
            mmiolab_vmm::files::check_output(p, what, &inputs)?;
        }
    }
    let text = std::fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
    let platform = Platform::build(&config, Box::new(std::io::sink()))?;
    let list = described(&platform);
    let coverage = compute(&text, &list)?;
    crate::ending::to_stdout(table(&coverage).as_bytes())?;
    if let Some(path) = json_out {
        let text = serde_json::to_string_pretty(&to_json(&coverage)).context("formatting the coverage")? + "\n";
        mmiolab_vmm::files::write_atomically(path, text.as_bytes(), "the coverage report", &inputs)?;
    }
    if let Some(path) = html_out {
        let report: Vec<crate::html::ReportDevice<'_>> = list
            .iter()
            .map(|(name, regions, model)| crate::html::ReportDevice {
                name: name.clone(),
                regions: regions.clone(),
                model,
            })
            .collect();
        let title = format!("mmiolab coverage: {} on {}", trace.display(), config_path.display());
        let page = crate::html::render(&title, &report, &coverage, &text);
        mmiolab_vmm::files::write_atomically(path, page.as_bytes(), "the HTML coverage report", &inputs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESC: &str = r#"
[device]
name = "d"
endianness = "big"
[[register]]
name = "R"
offset = 0
widths = [32]
[[register.field]]
name = "HI"
bits = "31:24"
[[register.field]]
name = "LO"
bits = "7:0"
on_write = "w1c"
"#;

    fn line(op: &str, offset: &str, width: u64, effects: &str) -> String {
        format!(
            r#"{{"v":2,"seq":0,"t_ns":0,"kind":"access","vcpu":0,"space":"mmio","op":"{op}","addr":"0x0","width":{width},"value":"0x0","device":"d@0","offset":"{offset}","reg":"R","fields":{{}},"effects":{effects}}}"#
        )
    }

    #[test]
    fn byte_lanes_follow_the_byte_order_and_rejected_widths_count_nothing() {
        let model = mmiolab_regmodel::compile_text(DESC, Path::new("d.toml")).unwrap();
        // Big endian: the byte at offset 0 holds bits 31:24 (HI). A rejected byte write
        // reaches nothing; a 32-bit write that clears LO fires its w1c behaviour.
        let trace = [
            line("read", "0x0", 1, "[]"),
            line("write", "0x3", 1, r#"[{"bad_width":true}]"#),
            line("write", "0x0", 4, r#"[{"cleared":"R.LO","bits":"0x1"}]"#),
        ]
        .join("\n");
        let cov = compute(&trace, &[("d".to_owned(), vec!["d@0".to_owned()], &model)]).unwrap();
        assert!(cov.tests.is_empty());
        let d = &cov.devices[0];
        assert_eq!(d.registers[0].reads, 1);
        assert_eq!(d.registers[0].writes, 1);
        assert_eq!(
            d.registers[0].fields,
            vec![("HI".to_owned(), true, true), ("LO".to_owned(), false, true)]
        );
        assert_eq!(
            d.behaviours,
            vec![Behaviour {
                what: "w1c R.LO".to_owned(),
                fired: 1
            }]
        );
        let t = d.totals();
        assert_eq!(
            (t.fields, t.fields_read, t.fields_written, t.fields_touched),
            (2, 1, 2, 2)
        );
        assert_eq!((t.behaviours, t.behaviours_fired), (1, 1));
    }

    fn boundary(test: &str, phase: &str) -> String {
        format!(r#"{{"v":2,"seq":0,"t_ns":0,"kind":"test","vcpu":0,"test":"{test}","phase":"{phase}"}}"#)
    }

    #[test]
    fn lines_between_test_boundaries_count_for_their_test_and_the_total() {
        let model = mmiolab_regmodel::compile_text(DESC, Path::new("d.toml")).unwrap();
        // a reads HI; b writes LO (clearing it), then a again writes HI; one read in no test
        let trace = [
            boundary("a", "begin"),
            line("read", "0x0", 1, "[]"),
            boundary("a", "end"),
            boundary("b", "begin"),
            line("write", "0x3", 1, r#"[{"cleared":"R.LO","bits":"0x1"}]"#),
            // a test that begins while b runs ends b
            boundary("a", "begin"),
            line("write", "0x0", 1, "[]"),
            boundary("a", "end"),
            line("read", "0x3", 1, "[]"),
        ]
        .join("\n");
        let cov = compute(&trace, &[("d".to_owned(), vec!["d@0".to_owned()], &model)]).unwrap();
        let reg = |d: &DeviceCoverage| {
            let r = &d.registers[0];
            (r.reads, r.writes, r.fields.clone(), d.behaviours[0].fired)
        };
        let f = |hi: (bool, bool), lo: (bool, bool)| vec![("HI".to_owned(), hi.0, hi.1), ("LO".to_owned(), lo.0, lo.1)];
        assert_eq!(reg(&cov.devices[0]), (2, 2, f((true, true), (true, true)), 1));
        let names: Vec<&str> = cov.tests.iter().map(|t| t.test.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            reg(&cov.tests[0].devices[0]),
            (1, 1, f((true, true), (false, false)), 0)
        );
        assert_eq!(
            reg(&cov.tests[1].devices[0]),
            (0, 1, f((false, false), (false, true)), 1)
        );
        let doc = to_json(&cov);
        assert_eq!(doc["tests"][1]["test"], "b");
        assert_eq!(doc["tests"][1]["totals"]["fields_written"], 1);
        assert_eq!(doc["tests"][0]["devices"][0]["registers"][0]["reads"], 1);
        let text = table(&cov);
        assert!(
            text.contains("test b: registers 1/1 touched (100.0%), 0 read (0.0%), 1 written (100.0%); fields 1/2 touched (50.0%), 0 read (0.0%), 1 written (50.0%); behaviours 1/1 fired (100.0%)\n  device d: "),
            "{text}"
        );
    }

    #[test]
    fn a_trace_of_another_format_is_refused() {
        let model = mmiolab_regmodel::compile_text(DESC, Path::new("d.toml")).unwrap();
        let e = compute("{\"seq\":0}\n", &[("d".to_owned(), Vec::new(), &model)]).unwrap_err();
        assert_eq!(e.to_string(), "trace line 1: not a version 2 JSON-lines trace line");
    }
}
