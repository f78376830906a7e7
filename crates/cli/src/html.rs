//! The HTML coverage report (`mmiolab coverage --html FILE`, docs/checker.md): one static,
//! self-contained page (inline CSS and JavaScript, nothing fetched, no server).
//!
//! Per described device: the register map as a table (a row per register, a cell per field
//! sized by its bit width, reserved bits greyed), each field cell coloured by what the trace
//! did to it (read, written, both, never), the behaviours that fired beside the register
//! they belong to (`w1c`/`rclr` fields, effects a register access fires, the FIFOs it pushes
//! or pops) or the device (interrupts), and the findings of the trace (`finding` lines of a
//! `--check` run) beside the register they concern. Below, a timeline of the trace's
//! accesses, events and findings, bounded to [`TIMELINE_MAX`] lines with a note when cut.
//!
//! A trace with test boundaries (`test` lines, written with the guest agent) adds a table
//! of each test's coverage and a test chooser: the page's script then colours the field
//! cells, the read and write counts and the summaries with the chosen test's coverage and
//! shows only its lines in the timeline. The page opens on the test named in its URL's
//! fragment (`report.html#test=NAME`), else on the whole trace.
//!
//! Every name and value from a user file or the trace is escaped ([`escape`]); the timeline
//! travels as JSON inside a `<script type="application/json">` element, with `<`, `>` and
//! `&` escaped as `\u003c`... so it cannot close its element.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mmiolab_regmodel::compile::{EffectTrigger, Model};
use serde_json::{Value, json};

use crate::coverage::{Coverage, DeviceCoverage};

/// Timeline lines the page holds at most (the first ones of the trace).
pub const TIMELINE_MAX: usize = 10_000;

/// `text` safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element: no `<`, `>` or `&` left.
fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A finding of the trace, counted by place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FindingKey {
    rule: String,
    field: Option<String>,
    addr: String,
    allowed: bool,
}

/// A described device as the report needs it: its name in the machine file, its regions
/// in the trace, its model.
pub struct ReportDevice<'m> {
    /// Name in the machine file.
    pub name: String,
    /// Region names in the trace.
    pub regions: Vec<String>,
    /// Compiled description.
    pub model: &'m Model,
}

const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; }
table.map { border-collapse: collapse; margin: 0.5em 0; }
table.map td, table.map th { border: 1px solid #999; padding: 2px 4px; font-size: 0.8em; text-align: center; }
table.map th.reg { text-align: left; white-space: nowrap; }
td.field.cov-both { background: #4caf50; color: #fff; }
td.field.cov-read { background: #64b5f6; }
td.field.cov-written { background: #ffb74d; }
td.field.cov-never { background: #ef9a9a; }
td.reserved { background: repeating-linear-gradient(45deg, #eee, #eee 4px, #ddd 4px, #ddd 8px); color: #888; }
td.pad { border: none; }
td.notes { text-align: left; font-size: 0.75em; max-width: 28em; }
ul.findings li, li.finding { color: #b71c1c; }
li.finding.allowed { color: #777; }
.legend span { display: inline-block; padding: 1px 6px; margin-right: 4px; }
table.timeline { border-collapse: collapse; font-family: monospace; font-size: 0.8em; }
table.timeline td, table.timeline th { border-bottom: 1px solid #ddd; padding: 1px 6px; text-align: left; }
tr.kind-finding { color: #b71c1c; }
tr.kind-event { color: #555; font-style: italic; }
.note { background: #fff8e1; padding: 4px 8px; border-left: 3px solid #ffb300; }
"#;

const SCRIPT: &str = r#"
(function () {
  var data = JSON.parse(document.getElementById('timeline-data').textContent);
  var chooser = document.getElementById('test-choice');
  // The chosen test ('': the whole trace).
  function test() { return chooser ? chooser.value : ''; }
  // Per device: the cells, counts and totals of the chosen test's coverage, then the field
  // cells counted by class, to a summary line.
  function colour() {
    var cov = data.coverage[test()] || {};
    document.querySelectorAll('section.device').forEach(function (sec) {
      var dev = cov[sec.dataset.device];
      if (dev) {
        sec.querySelector('.js-totals').textContent = dev.totals;
        sec.querySelectorAll('tr.register').forEach(function (tr) {
          var reg = dev.registers[tr.dataset.register];
          if (!reg) { return; }
          tr.querySelector('td.reads').textContent = reg.r;
          tr.querySelector('td.writes').textContent = reg.w;
          tr.querySelectorAll('td.field').forEach(function (c) {
            var k = reg.f[c.dataset.field];
            if (k) { c.className = 'field cov-' + k; c.dataset.cov = k; }
          });
        });
      }
      var counts = { both: 0, read: 0, written: 0, never: 0 };
      sec.querySelectorAll('td.field').forEach(function (c) { counts[c.dataset.cov] += 1; });
      var out = sec.querySelector('.js-summary');
      if (out) {
        out.textContent = 'fields: ' + counts.both + ' read and written, ' + counts.read + ' only read, ' +
          counts.written + ' only written, ' + counts.never + ' never touched';
      }
    });
  }
  // The timeline, from the JSON the page carries.
  var body = document.getElementById('timeline');
  var filter = document.getElementById('timeline-device');
  data.devices.forEach(function (d) {
    var o = document.createElement('option');
    o.value = d; o.textContent = d; filter.appendChild(o);
  });
  if (chooser) {
    data.tests.forEach(function (t) {
      var o = document.createElement('option');
      o.value = t; o.textContent = t; chooser.appendChild(o);
    });
    var m = /^#test=(.*)$/.exec(window.location.hash);
    if (m && data.tests.indexOf(decodeURIComponent(m[1])) >= 0) { chooser.value = decodeURIComponent(m[1]); }
  }
  function render() {
    var want = filter.value;
    var inTest = test();
    if (chooser) {
      document.getElementById('timeline-scope').textContent = inTest ?
        'The lines of test ' + inTest + ' (choose another above).' : 'The whole trace (choose a test above).';
    }
    body.textContent = '';
    var shown = 0;
    data.lines.forEach(function (l) {
      if (want && l.device !== want) { return; }
      if (inTest && l.test !== inTest) { return; }
      var tr = document.createElement('tr');
      tr.className = 'kind-' + l.kind;
      [l.seq, l.t_ns, l.vcpu, l.kind, l.what, l.device, l.reg, l.value].forEach(function (v) {
        var td = document.createElement('td');
        td.textContent = v === null || v === undefined ? '' : String(v);
        tr.appendChild(td);
      });
      body.appendChild(tr);
      shown += 1;
    });
    document.getElementById('timeline-count').textContent = shown + ' line(s) shown';
  }
  filter.addEventListener('change', render);
  if (chooser) {
    chooser.addEventListener('change', function () { colour(); render(); });
  }
  colour();
  render();
})();
"#;

/// The counts of a device's header line.
fn totals_text(t: &crate::coverage::Totals) -> String {
    format!(
        "registers {}/{} touched, fields {}/{} touched, behaviours {}/{} fired.",
        t.registers_touched, t.registers, t.fields_touched, t.fields, t.behaviours_fired, t.behaviours
    )
}

/// What the page's script needs to colour the register maps with one coverage (the whole
/// trace's or a test's): per device name, its header counts and, per register, its reads,
/// writes and the coverage class of each field cell.
fn coverage_data(devices: &[DeviceCoverage]) -> Value {
    let mut out = serde_json::Map::new();
    for d in devices {
        let mut registers = serde_json::Map::new();
        for r in &d.registers {
            let mut fields = serde_json::Map::new();
            if r.fields.is_empty() {
                fields.insert(r.name.clone(), json!(class(r.reads > 0, r.writes > 0)));
            }
            for (name, read, written) in &r.fields {
                fields.insert(name.clone(), json!(class(*read, *written)));
            }
            registers.insert(r.name.clone(), json!({"r": r.reads, "w": r.writes, "f": fields}));
        }
        out.insert(
            d.device.clone(),
            json!({"totals": totals_text(&d.totals()), "registers": registers}),
        );
    }
    Value::Object(out)
}

fn pct_text(part: u64, whole: u64) -> String {
    if whole == 0 {
        format!("{part}/{whole}")
    } else {
        format!("{part}/{whole} ({:.1}%)", part as f64 * 100.0 / whole as f64)
    }
}

/// The tests' section: the chooser the page's script fills, and a row of counts per test.
fn tests_section(h: &mut String, coverage: &Coverage) {
    h.push_str(
        "<section id=\"tests\"><h2>Tests</h2>\n<p>Show the coverage and timeline of test: <select id=\"test-choice\"><option value=\"\">all (the whole trace)</option></select></p>\n\
         <table class=\"map tests\"><thead><tr><th>test</th><th>registers touched</th><th>fields touched</th><th>behaviours fired</th></tr></thead><tbody>\n",
    );
    for t in &coverage.tests {
        let c = crate::coverage::totals(&t.devices);
        let _ = writeln!(
            h,
            "<tr class=\"test\" data-test=\"{}\"><th class=\"reg\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.test),
            escape(&t.test),
            pct_text(c.registers_touched, c.registers),
            pct_text(c.fields_touched, c.fields),
            pct_text(c.behaviours_fired, c.behaviours)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// The page for `devices` (with their coverage, same order) and the JSON-lines `trace`.
pub fn render(title: &str, devices: &[ReportDevice<'_>], coverage: &Coverage, trace: &str) -> String {
    // Findings by (region, register or ""), from the trace's finding lines.
    let mut findings: BTreeMap<(String, String), BTreeMap<FindingKey, u64>> = BTreeMap::new();
    let mut timeline = Vec::new();
    let mut total_lines = 0usize;
    // The test running at each line, from the trace's test lines.
    let mut current: Option<String> = None;
    for raw in trace.lines() {
        let Ok(line) = serde_json::from_str::<Value>(raw) else {
            continue;
        };
        let kind = line["kind"].as_str().unwrap_or_default();
        let s = |k: &str| line[k].as_str().map(str::to_owned);
        if kind == "test" {
            current = (s("phase").as_deref() == Some("begin")).then(|| s("test")).flatten();
            continue;
        }
        if kind == "finding" {
            let key = FindingKey {
                rule: s("rule").unwrap_or_default(),
                field: s("field"),
                addr: s("addr").unwrap_or_default(),
                allowed: line["allowed"].as_bool().unwrap_or(false),
            };
            *findings
                .entry((s("device").unwrap_or_default(), s("reg").unwrap_or_default()))
                .or_default()
                .entry(key)
                .or_insert(0) += 1;
        }
        if !matches!(kind, "access" | "event" | "finding") {
            continue;
        }
        total_lines += 1;
        if timeline.len() >= TIMELINE_MAX {
            continue;
        }
        let what = match kind {
            "access" => format!(
                "{} {} {}",
                s("op").unwrap_or_default(),
                s("addr").unwrap_or_default(),
                line["width"].as_u64().map(|w| format!("w{w}")).unwrap_or_default()
            ),
            "finding" => format!(
                "{}{}",
                s("rule").unwrap_or_default(),
                s("field").map(|f| format!(" ({f})")).unwrap_or_default()
            ),
            _ => line["effects"].to_string(),
        };
        timeline.push(json!({
            "seq": line["seq"], "t_ns": line["t_ns"], "vcpu": line["vcpu"], "kind": kind,
            "what": what, "device": line["device"], "reg": line["reg"], "value": line["value"],
            "test": current,
        }));
    }

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    h.push_str(
        "<p class=\"legend\">Fields: <span class=\"cov-both\" style=\"background:#4caf50;color:#fff\">read and written</span>\
         <span style=\"background:#64b5f6\">only read</span><span style=\"background:#ffb74d\">only written</span>\
         <span style=\"background:#ef9a9a\">never touched</span><span style=\"background:#ddd\">reserved</span></p>\n",
    );
    if !coverage.tests.is_empty() {
        tests_section(&mut h, coverage);
    }
    for (d, cov) in devices.iter().zip(&coverage.devices) {
        device_section(&mut h, d, cov, &findings);
    }
    let mut region_names: Vec<&str> = devices
        .iter()
        .flat_map(|d| d.regions.iter().map(String::as_str))
        .collect();
    region_names.sort_unstable();
    region_names.dedup();
    h.push_str("<section id=\"timeline-section\"><h2>Timeline</h2>\n");
    h.push_str(if coverage.tests.is_empty() {
        "<p class=\"note\" id=\"timeline-scope\">The whole trace: it has no test boundaries (they come from the guest agent, with --check).</p>\n"
    } else {
        "<p class=\"note\" id=\"timeline-scope\">The lines of the test chosen above.</p>\n"
    });
    if total_lines > TIMELINE_MAX {
        let _ = writeln!(
            h,
            "<p class=\"note\" id=\"timeline-cut\">The trace has {total_lines} lines; the timeline shows the first {TIMELINE_MAX}.</p>"
        );
    }
    h.push_str(
        "<p>Device: <select id=\"timeline-device\"><option value=\"\">all</option></select> <span id=\"timeline-count\"></span></p>\n\
         <table class=\"timeline\"><thead><tr><th>seq</th><th>t (ns)</th><th>vCPU</th><th>kind</th><th>what</th><th>device</th><th>register</th><th>value</th></tr></thead>\n\
         <tbody id=\"timeline\"></tbody></table></section>\n",
    );
    let mut per_test = serde_json::Map::new();
    per_test.insert(String::new(), coverage_data(&coverage.devices));
    for t in &coverage.tests {
        per_test.insert(t.test.clone(), coverage_data(&t.devices));
    }
    let tests: Vec<&str> = coverage.tests.iter().map(|t| t.test.as_str()).collect();
    let data = json!({ "devices": region_names, "lines": timeline, "tests": tests, "coverage": per_test });
    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"timeline-data\">{}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        script_json(&data)
    );
    h
}

/// Coverage class of a field: `both`, `read`, `written` or `never`.
fn class(read: bool, written: bool) -> &'static str {
    match (read, written) {
        (true, true) => "both",
        (true, false) => "read",
        (false, true) => "written",
        (false, false) => "never",
    }
}

fn device_section(
    h: &mut String,
    d: &ReportDevice<'_>,
    cov: &DeviceCoverage,
    findings: &BTreeMap<(String, String), BTreeMap<FindingKey, u64>>,
) {
    let m = d.model;
    let t = cov.totals();
    let _ = write!(
        h,
        "<section class=\"device\" data-device=\"{}\"><h2>Device {} <small>({})</small></h2>\n<p><span class=\"js-totals\">{}</span> <span class=\"js-summary\"></span></p>\n",
        escape(&d.name),
        escape(&d.name),
        escape(&m.name),
        totals_text(&t)
    );
    let cols = m.registers.iter().map(|r| u32::from(r.width) * 8).max().unwrap_or(32);
    h.push_str("<table class=\"map\"><thead><tr><th>register</th><th>offset</th>");
    for b in (0..cols).rev() {
        let _ = write!(h, "<th>{b}</th>");
    }
    h.push_str("<th>reads</th><th>writes</th><th>behaviours fired, findings (whole trace)</th></tr></thead><tbody>\n");
    let fired = |what: &str| cov.behaviours.iter().find(|b| b.what == what).map_or(0, |b| b.fired);
    for (i, (r, rc)) in m.registers.iter().zip(&cov.registers).enumerate() {
        let bits = u32::from(r.width) * 8;
        let _ = write!(
            h,
            "<tr class=\"register\" data-register=\"{}\"><th class=\"reg\">{}</th><td>{:#x}</td>",
            escape(&r.name),
            escape(&r.name),
            r.offset
        );
        if bits < cols {
            let _ = write!(h, "<td class=\"pad\" colspan=\"{}\"></td>", cols - bits);
        }
        // Cells from the most significant bit down: fields, and reserved runs between them.
        let mut cells: Vec<(u32, u32, Option<usize>)> = Vec::new(); // (lsb, width, field)
        let declared: Vec<(usize, u32, u32)> = if r.declared_fields {
            r.fields
                .iter()
                .enumerate()
                .map(|(k, f)| (k, f.shift, f.mask.count_ones()))
                .collect()
        } else {
            Vec::new()
        };
        let mut bit = bits;
        let mut sorted = declared.clone();
        sorted.sort_by_key(|&(_, shift, _)| std::cmp::Reverse(shift));
        for (k, shift, width) in sorted {
            let top = shift + width;
            if top < bit {
                cells.push((top, bit - top, None));
            }
            cells.push((shift, width, Some(k)));
            bit = shift;
        }
        if bit > 0 {
            cells.push((0, bit, None));
        }
        if r.declared_fields {
            for (lsb, width, field) in cells {
                match field.and_then(|k| r.fields.get(k).zip(rc.fields.get(k))) {
                    Some((f, (_, read, written))) => {
                        let c = class(*read, *written);
                        let _ = write!(
                            h,
                            "<td class=\"field cov-{c}\" data-cov=\"{c}\" data-field=\"{}\" colspan=\"{width}\" title=\"{}.{} bits {}:{}: {c}\">{}</td>",
                            escape(&f.name),
                            escape(&r.name),
                            escape(&f.name),
                            lsb + width - 1,
                            lsb,
                            escape(&f.name)
                        );
                    }
                    None => {
                        let _ = write!(h, "<td class=\"reserved\" colspan=\"{width}\"></td>");
                    }
                }
            }
        } else {
            let c = class(rc.reads > 0, rc.writes > 0);
            let _ = write!(
                h,
                "<td class=\"field cov-{c}\" data-cov=\"{c}\" data-field=\"{}\" colspan=\"{bits}\" title=\"{}: {c}\">{}</td>",
                escape(&r.name),
                escape(&r.name),
                escape(&r.name)
            );
        }
        let _ = write!(
            h,
            "<td class=\"reads\">{}</td><td class=\"writes\">{}</td><td class=\"notes\">",
            rc.reads, rc.writes
        );
        // Behaviours of this register: its w1c/rclr fields, effects its accesses fire, its FIFOs.
        let mut behaviours: Vec<String> = Vec::new();
        for f in &r.fields {
            for kind in ["w1c", "rclr"] {
                let what = format!("{kind} {}", f.path);
                if cov.behaviours.iter().any(|b| b.what == what) {
                    behaviours.push(what);
                }
            }
        }
        for e in &m.effects {
            if matches!(e.trigger, EffectTrigger::Write(reg, _) | EffectTrigger::Read(reg, _) if reg as usize == i) {
                behaviours.push(format!("effect {}", e.name));
            }
        }
        for q in r
            .push
            .iter()
            .chain(r.pop.iter())
            .filter_map(|&f| m.fifos.get(f as usize))
        {
            for ev in ["full", "overflow", "underflow"] {
                let what = format!("fifo {} {ev}", q.name);
                if !behaviours.contains(&what) {
                    behaviours.push(what);
                }
            }
        }
        let fired_here: Vec<String> = behaviours
            .iter()
            .filter_map(|b| {
                let n = fired(b);
                (n > 0).then(|| format!("<li class=\"behaviour\">{} &times;{n}</li>", escape(b)))
            })
            .collect();
        let mut found_here = Vec::new();
        for region in &d.regions {
            if let Some(list) = findings.get(&(region.clone(), r.name.clone())) {
                for (k, n) in list {
                    found_here.push(finding_item(k, *n));
                }
            }
        }
        if !fired_here.is_empty() || !found_here.is_empty() {
            let _ = write!(h, "<ul>{}{}</ul>", fired_here.concat(), found_here.concat());
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</tbody></table>\n");
    // Device-wide: interrupts, and findings that concern no register (holes, irq-stuck).
    let irqs: Vec<String> = cov
        .behaviours
        .iter()
        .filter(|b| b.what.starts_with("irq ") && b.fired > 0)
        .map(|b| format!("<li class=\"behaviour\">{} &times;{}</li>", escape(&b.what), b.fired))
        .collect();
    let mut device_findings = Vec::new();
    for region in &d.regions {
        if let Some(list) = findings.get(&(region.clone(), String::new())) {
            for (k, n) in list {
                device_findings.push(finding_item(k, *n));
            }
        }
    }
    if !irqs.is_empty() || !device_findings.is_empty() {
        let _ = writeln!(
            h,
            "<p>Device-wide:</p><ul class=\"device-wide\">{}{}</ul>",
            irqs.concat(),
            device_findings.concat()
        );
    }
    h.push_str("</section>\n");
}

fn finding_item(k: &FindingKey, n: u64) -> String {
    format!(
        "<li class=\"finding{}\">finding {}{} at {} &times;{n}{}</li>",
        if k.allowed { " allowed" } else { "" },
        escape(&k.rule),
        k.field
            .as_deref()
            .map(|f| format!(" ({})", escape(f)))
            .unwrap_or_default(),
        escape(&k.addr),
        if k.allowed { " (allowed)" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_the_data_cannot_close_its_script() {
        assert_eq!(escape("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        let v = json!({"reg": "</script><script>alert(1)</script>"});
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>'), "{s}");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn the_page_draws_fields_by_width_with_their_coverage_and_findings() {
        let text = "[device]\nname = \"d\"\n[[register]]\nname = \"CTRL\"\noffset = 0\n[[register.field]]\nname = \"EN\"\nbits = 0\n[[register.field]]\nname = \"MODE\"\nbits = \"7:4\"\n[[register]]\nname = \"DATA\"\noffset = 4\n";
        let model = mmiolab_regmodel::compile_text(text, std::path::Path::new("d.toml")).unwrap();
        let trace = concat!(
            r#"{"v":2,"seq":0,"t_ns":1,"kind":"access","vcpu":0,"space":"mmio","op":"write","addr":"0xd0000000","width":4,"value":"0x1","device":"d","offset":"0x0","reg":"CTRL","fields":{},"effects":[]}"#,
            "\n",
            r#"{"v":2,"seq":1,"t_ns":2,"kind":"finding","vcpu":0,"rule":"order","device":"d","reg":"CTRL","field":"x<y","space":"mmio","addr":"0xd0000000","allowed":false}"#,
            "\n"
        );
        let cov = crate::coverage::compute(trace, &[("dev".to_owned(), vec!["d".to_owned()], &model)]).unwrap();
        let page = render(
            "t",
            &[ReportDevice {
                name: "dev".to_owned(),
                regions: vec!["d".to_owned()],
                model: &model,
            }],
            &cov,
            trace,
        );
        assert!(page.contains("data-field=\"EN\" colspan=\"1\""), "{page}");
        assert!(page.contains("class=\"field cov-written\" data-cov=\"written\" data-field=\"MODE\" colspan=\"4\""));
        assert!(page.contains("<td class=\"reserved\" colspan=\"24\"></td>"));
        assert!(page.contains("<td class=\"reserved\" colspan=\"3\"></td>"));
        assert!(page.contains("data-field=\"DATA\" colspan=\"32\""));
        assert!(page.contains("finding order (x&lt;y) at 0xd0000000 &times;1"));
        assert!(!page.contains("x<y"));
    }
}
