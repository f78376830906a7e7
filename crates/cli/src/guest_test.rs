//! `mmiolab test`: boot a Linux guest (or read the console log of a nested run), collect
//! its KTAP results, check that the guest's /proc/iomem and /proc/ioports agree with the
//! host's bus tree and that the writes guest tests say they made are in the trace in their
//! order, and report one line per test plus JUnit XML.

use mmiolab_vmm::mmiolab_bus::{AddressSpace, RegionKind};
use mmiolab_vmm::{Platform, StopReason};

use crate::ktap::{GuestReport, TestResult};

/// What `mmiolab test` concluded.
#[derive(Debug)]
pub struct Verdict {
    /// One result per guest test, then the host's checks (resources, how the run ended).
    pub results: Vec<TestResult>,
    /// Failures, including a wrong plan.
    pub failed: usize,
    /// Lines to print after the results (the plan's mismatch).
    pub notes: Vec<String>,
}

impl Verdict {
    /// Results that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.ok).count()
    }
}

/// Judges a whole test run: the guest's KTAP results and plan, its resource dumps against
/// the host's tree, and, when the guest ran here, how the run ended (`run`): passing KTAP
/// lines do not make a run that then panicked, faulted, hung to the timeout or exited
/// with a failure status a success.
pub fn judge(console: &str, platform: &Platform, run: Option<&StopReason>) -> Verdict {
    let report = crate::ktap::parse(console);
    let mut results = report.results.clone();
    results.push(resource_check(platform, &report));
    if let Some(reason) = run {
        results.push(run_check(reason));
    }
    let mut failed = results.iter().filter(|r| !r.ok).count();
    let mut notes = Vec::new();
    let guest_tests = report.results.len();
    if guest_tests == 0 {
        failed += 1;
        notes.push("FAIL plan: the guest reported no KTAP results".to_owned());
    } else if report.planned != Some(guest_tests) {
        failed += 1;
        notes.push(format!(
            "FAIL plan: the guest planned {} tests and reported {guest_tests}",
            report.planned.map_or("no".to_owned(), |n| n.to_string())
        ));
    }
    Verdict { results, failed, notes }
}

/// The line each restore of a run with `--snapshot-at` starts with, on the console log
/// (guest/run-machine.sh directly, the outer VM's /init nested). The snapshot was taken on
/// the marker text's last byte, so it follows that text on the same line, and the restored
/// guest's first bytes are the rest of that line.
pub const RESTORE_LINE: &str = "mmiolab: restoring the snapshot taken at ";

/// How `mmiolab run` says it stopped for a snapshot (crate::ending::describe); nested, that
/// is on the console log too, right after the marker text.
pub const SNAPSHOT_STOP: &str = "mmiolab: stopped for a snapshot at ";

/// A console log of a run booted once and restored for each attempt: what the guest printed
/// up to the snapshot, and what it printed in each attempt, in order (none: no restore).
#[derive(Debug, PartialEq, Eq)]
pub struct Attempts<'a> {
    /// Up to the marker text (without the harness's lines after it).
    pub boot: &'a str,
    /// From after each restore line to the next restore line.
    pub attempts: Vec<&'a str>,
}

impl<'a> Attempts<'a> {
    /// Splits `console` at the [`RESTORE_LINE`]s (each to its end of line).
    pub fn split(console: &'a str) -> Attempts<'a> {
        let starts: Vec<usize> = console.match_indices(RESTORE_LINE).map(|(i, _)| i).collect();
        let before = console
            .get(..starts.first().copied().unwrap_or(console.len()))
            .unwrap_or(console);
        let boot = if starts.is_empty() {
            before
        } else {
            before
                .find(SNAPSHOT_STOP)
                .and_then(|i| before.get(..i))
                .unwrap_or(before)
        };
        let attempts = starts
            .iter()
            .enumerate()
            .map(|(n, &from)| {
                let to = starts.get(n + 1).copied().unwrap_or(console.len());
                let part = console.get(from..to).unwrap_or_default();
                part.split_once('\n').map_or("", |(_, rest)| rest)
            })
            .collect();
        Attempts { boot, attempts }
    }

    /// What the guest printed in a whole run of attempt `n`: the boot, then that attempt
    /// (which goes on with the marker's line).
    pub fn run(&self, n: usize) -> String {
        format!("{}{}", self.boot, self.attempts.get(n).copied().unwrap_or_default())
    }
}

/// Name of the host's check on how the guest's run ended.
pub const RUN_CHECK: &str = "host: the guest's run ended cleanly";

/// A clean end is the guest powering off, resetting, or writing 0 to the exit port;
/// anything else fails, with the reason.
pub fn run_check(reason: &StopReason) -> TestResult {
    let problem = match reason {
        StopReason::ExitDevice(0) | StopReason::GuestPowerOff | StopReason::GuestReset => None,
        StopReason::ExitDevice(v) => Some(format!("the guest exited with status {v} (test-exit port)")),
        StopReason::GuestPanic => Some("the guest kernel panicked (pvpanic)".to_owned()),
        StopReason::Fault(report) => Some(format!("the guest faulted: {report}")),
        StopReason::Timeout(after) => Some(format!("the guest hung: still running after the timeout ({after:?})")),
        StopReason::Signal(signo) => Some(format!(
            "the run was stopped by {}",
            mmiolab_vmm::signals::signal_name(*signo)
        )),
        StopReason::Output(f) => Some(format!("{} could not be written: {}", f.output, f.cause)),
        StopReason::Snapshot(at) => Some(format!("the run stopped for a snapshot at {at}")),
    };
    TestResult {
        name: RUN_CHECK.to_owned(),
        ok: problem.is_none(),
        directive: None,
        details: problem.into_iter().collect(),
    }
}

/// A host-side check on the guest's resource dumps (the init prints them while each test
/// module holds its claims, and once at the end):
///
/// - a line that starts in the region of a device with a device-tree node must claim
///   exactly that region under the node's name (`testdev@d0001000`) or the platform
///   device's (`d0001000.testdev`), as the kernel does for a bound platform driver;
/// - a device without a node (fixed ports or addresses, LDD3's `short` and `silly`) is
///   claimed by drivers that know its address, for as much of it as they use: a line that
///   carries its name, or claims exactly its region, must do both: carry the name and lie
///   inside the region;
///
/// - a window of a device's region counts as a region of its own, named after the window:
///   the machine file names windows after what drivers claim (`reg_names` in the device
///   tree; "serial", the name the 8250 driver claims its ports and registers under);
///
/// and at least one line must match a host device.
pub fn resource_check(platform: &Platform, report: &GuestReport) -> TestResult {
    let mut details = Vec::new();
    let mut matched = 0;
    let mut ok = true;
    for (space, lines) in [
        (AddressSpace::Mmio, &report.iomem),
        (AddressSpace::Pio, &report.ioports),
    ] {
        let tree = platform.bus.tree(space);
        for line in lines.iter() {
            let Some((range, name)) = line.trim_start().split_once(" : ") else {
                continue;
            };
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else {
                continue;
            };
            let Some(id) = tree.device_at(start) else { continue };
            if tree.kind(id) != RegionKind::Device {
                continue;
            }
            let host = tree.range(id);
            let host_name = tree.name(id);
            let described = platform.dt_devices.iter().any(|d| d.node == host_name);
            let mut names = linux_names(host_name);
            // A window of the region (`reg_names`, or a legacy driver's name for its ports)
            // is a region of its own to the guest, claimed under the window's name.
            let window = tree.deepest_at(start).filter(|&w| {
                let r = tree.range(w);
                tree.kind(w) == RegionKind::Window && r.start() == start && r.end() == end
            });
            if let Some(w) = window {
                names.push(tree.name(w).to_owned());
            }
            let named = name.split(' ').any(|n| names.iter().any(|h| h == n));
            let exact = window.is_some() || (host.start() == start && host.end() == end);
            let good = if described {
                exact && named
            } else if exact || named {
                named && start >= host.start() && end <= host.end()
            } else {
                continue;
            };
            if good {
                matched += 1;
                details.push(format!("ok {space} {start:x}-{end:x} : {name} (host: {host_name})"));
            } else {
                ok = false;
                details.push(format!(
                    "MISMATCH {space} guest `{}` vs host {:x}-{:x} : {host_name}",
                    line.trim(),
                    host.start(),
                    host.end()
                ));
            }
        }
    }
    if report.iomem.is_empty() {
        ok = false;
        details.push("the guest printed no /proc/iomem dump".to_owned());
    } else if matched == 0 {
        ok = false;
        details.push("no device of the host's tree appears in the guest's /proc/iomem or /proc/ioports".to_owned());
    }
    TestResult {
        name: "host: guest resources match mmiolab tree".to_owned(),
        ok,
        directive: None,
        details,
    }
}

/// What a guest test prints, among its KTAP diagnostics, to have the host check the
/// order of its writes in the trace: `# mmiolab-trace-order: DEVICE REG=VALUE REG=VALUE ...`,
/// the writes in the order the driver made them.
pub const TRACE_ORDER_TAG: &str = "mmiolab-trace-order:";

/// One guest test's expected write order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderExpectation {
    /// The guest test that printed it.
    test: String,
    /// The device, as in the machine file (`apidev`) or its region name (`apidev@d0020000`).
    device: String,
    /// Register name and value of each write, in program order.
    writes: Vec<(String, u64)>,
}

/// Parses `0x1f` or `31`.
fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The expectation on one `mmiolab-trace-order:` line (the text after the tag).
fn parse_expectation(test: &str, text: &str) -> Result<OrderExpectation, String> {
    let mut words = text.split_whitespace();
    let device = words.next().ok_or("no device named")?.to_owned();
    let mut writes = Vec::new();
    for w in words {
        let (reg, value) = w.split_once('=').ok_or_else(|| format!("`{w}` is not REG=VALUE"))?;
        let value = number(value).ok_or_else(|| format!("`{w}`: the value is not a number"))?;
        writes.push((reg.to_owned(), value));
    }
    if writes.is_empty() {
        return Err("no writes listed".to_owned());
    }
    Ok(OrderExpectation {
        test: test.to_owned(),
        device,
        writes,
    })
}

/// One write of the trace: its `seq`, register and value.
struct TracedWrite {
    seq: u64,
    reg: String,
    value: u64,
}

/// The writes of `trace` (JSON lines, format version 2) to `device`'s registers, in trace
/// order; and the number of lines that were not JSON objects.
fn traced_writes(trace: &str, device: &str) -> (Vec<TracedWrite>, usize) {
    let mut writes = Vec::new();
    let mut bad = 0;
    for line in trace.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            bad += 1;
            continue;
        };
        let field = |k: &str| v.get(k).and_then(serde_json::Value::as_str);
        let on_device =
            field("device").is_some_and(|d| d == device || d.split_once('@').is_some_and(|(name, _)| name == device));
        if field("kind") != Some("access") || field("op") != Some("write") || !on_device {
            continue;
        }
        let (Some(reg), Some(value), Some(seq)) = (
            field("reg"),
            field("value").and_then(number),
            v.get("seq").and_then(serde_json::Value::as_u64),
        ) else {
            continue;
        };
        writes.push(TracedWrite {
            seq,
            reg: reg.to_owned(),
            value,
        });
    }
    (writes, bad)
}

/// For each guest test that printed a `mmiolab-trace-order:` line, a host result: the
/// trace (`None`: none was taken) must hold exactly those writes, among all its writes
/// to those registers with those values, in that order.
pub fn trace_order_checks(report: &GuestReport, trace: Option<Result<&str, String>>) -> Vec<TestResult> {
    let mut results = Vec::new();
    for test in &report.results {
        for line in &test.details {
            let Some(text) = line.strip_prefix("# ").and_then(|l| l.strip_prefix(TRACE_ORDER_TAG)) else {
                continue;
            };
            let name = format!("host: trace order of {}", test.name);
            let (ok, details) = match (parse_expectation(&test.name, text), &trace) {
                (Err(why), _) => (false, vec![format!("cannot read `{}`: {why}", line.trim())]),
                (Ok(_), None) => (
                    false,
                    vec![format!(
                        "{} expects its writes in the trace, and no trace was given (--trace FILE)",
                        test.name
                    )],
                ),
                (Ok(_), Some(Err(why))) => (false, vec![why.clone()]),
                (Ok(want), Some(Ok(trace))) => check_order(&want, trace),
            };
            results.push(TestResult {
                name,
                ok,
                directive: None,
                details,
            });
        }
    }
    results
}

fn check_order(want: &OrderExpectation, trace: &str) -> (bool, Vec<String>) {
    let (all, bad) = traced_writes(trace, &want.device);
    let mut details = Vec::new();
    if bad > 0 {
        details.push(format!("{bad} trace lines were not JSON (ignored)"));
    }
    let seen: Vec<&TracedWrite> = all
        .iter()
        .filter(|w| want.writes.iter().any(|(r, v)| *r == w.reg && *v == w.value))
        .collect();
    let got: Vec<(String, u64)> = seen.iter().map(|w| (w.reg.clone(), w.value)).collect();
    let ok = got == want.writes;
    let show = |ws: &[(String, u64)]| {
        ws.iter()
            .map(|(r, v)| format!("{r}={v:#x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if ok {
        let seqs: Vec<String> = seen.iter().map(|w| w.seq.to_string()).collect();
        details.push(format!(
            "{} writes of {} in order at seq {}",
            seen.len(),
            want.device,
            seqs.join(", ")
        ));
    } else {
        details.push(format!("{} wrote, in this order: {}", want.test, show(&want.writes)));
        details.push(format!(
            "the trace has, in its order ({} writes to {} in all): {}",
            all.len(),
            want.device,
            if got.is_empty() {
                "none of them".to_owned()
            } else {
                show(&got)
            }
        ));
    }
    (ok, details)
}

/// The names Linux gives the resources of DT node `node` (`testdev@d0001000`): the node
/// name itself, and the platform device name `d0001000.testdev` that drivers claim with.
fn linux_names(node: &str) -> Vec<String> {
    let mut names = vec![node.to_owned()];
    if let Some((base, unit)) = node.split_once('@') {
        names.push(format!("{unit}.{base}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::parse;
    use mmiolab_vmm::config::MachineConfig;
    use std::path::Path;

    const MACHINE: &str = "[[device]]\nname = \"testdev\"\nmodel = \"regfile\"\ncompatible = \"mmiolab,testdev\"\n\
                           mmio = [{ base = 0xd0001000, size = 0x1000 }]\n";

    fn check(console: &str) -> TestResult {
        let c = MachineConfig::parse(MACHINE, Path::new("m.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        resource_check(&p, &parse(console))
    }

    #[test]
    fn matching_claim_passes() {
        let r = check(
            "mmiolab: begin /proc/iomem\n00100000-0fffffff : System RAM\n\
             d0001000-d0001fff : d0001000.testdev testdev@d0001000\nmmiolab: end /proc/iomem\n",
        );
        assert!(r.ok, "{:?}", r.details);
    }

    #[test]
    fn platform_device_name_is_accepted() {
        let r = check("mmiolab: begin /proc/iomem\nd0001000-d0001fff : d0001000.testdev\nmmiolab: end /proc/iomem\n");
        assert!(r.ok, "{:?}", r.details);
        let r = check("mmiolab: begin /proc/iomem\nd0001000-d0001fff : d0001000.other\nmmiolab: end /proc/iomem\n");
        assert!(!r.ok);
    }

    #[test]
    fn wrong_range_or_missing_dump_fails() {
        let r = check(
            "mmiolab: begin /proc/iomem\nd0001000-d00017ff : d0001000.testdev testdev@d0001000\nmmiolab: end /proc/iomem\n",
        );
        assert!(!r.ok);
        assert!(r.details[0].starts_with("MISMATCH MMIO"), "{:?}", r.details);
        assert!(!check("no dump").ok);
        assert!(!check("mmiolab: begin /proc/iomem\n00100000-0fffffff : System RAM\nmmiolab: end /proc/iomem\n").ok);
    }

    const WINDOWED: &str = "[[device]]\nname = \"gpio\"\nmodel = \"regfile\"\ncompatible = \"brcm,bcm6345-gpio\"\n\
                            mmio = [{ base = 0xd0040000, size = 0x10, windows = [{ name = \"dat\", offset = 0, size = 4 }, \
                            { name = \"set\", offset = 4, size = 4 }] }]\n[device.dt]\nreg_names = [\"dat\", \"set\"]\n\
                            [[device]]\nname = \"uart1\"\nmodel = \"regfile\"\ncompatible = \"ns16550a\"\n\
                            mmio = [{ base = 0xd0041000, size = 0x20, windows = [{ name = \"serial\", offset = 0, size = 0x20 }] }]\n\
                            [[device]]\nname = \"com2\"\nmodel = \"regfile\"\n\
                            pio = [{ base = 0x2f8, size = 8, windows = [{ name = \"serial\", offset = 0, size = 8 }] }]\n";

    fn check_windowed(iomem: &str, ioports: &str) -> TestResult {
        let c = MachineConfig::parse(WINDOWED, Path::new("m.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        resource_check(
            &p,
            &parse(&format!(
                "mmiolab: begin /proc/iomem\n{iomem}mmiolab: end /proc/iomem\n\
                 mmiolab: begin /proc/ioports\n{ioports}mmiolab: end /proc/ioports\n"
            )),
        )
    }

    #[test]
    fn windows_are_regions_of_their_own() {
        // gpio-mmio's claims by reg-names (devm_ioremap_resource names them "DEV NAME"), the
        // 8250 driver's "serial" on its node's region and on a legacy port
        let r = check_windowed(
            "d0040000-d0040003 : d0040000.gpio dat\nd0040004-d0040007 : d0040000.gpio set\n\
             d0041000-d004101f : serial\n",
            "02f8-02ff : serial\n",
        );
        assert!(r.ok, "{:?}", r.details);
        assert_eq!(
            r.details.iter().filter(|d| d.starts_with("ok ")).count(),
            4,
            "{:?}",
            r.details
        );
    }

    #[test]
    fn window_lines_must_match_the_window_exactly() {
        // part of a window
        assert!(!check_windowed("d0040001-d0040003 : dat\n", "").ok);
        // a window's range under another window's name
        assert!(!check_windowed("d0040000-d0040003 : set\n", "").ok);
        // a name the host does not know for the region
        assert!(!check_windowed("d0041000-d004101f : ttyS2\n", "").ok);
        // a legacy port claimed under a name that is neither the device's nor the window's
        assert!(!check_windowed("d0040000-d0040003 : dat\n", "02f8-02ff : ttyS1\n").ok);
    }

    const FIXED: &str = "[[device]]\nname = \"short\"\nmodel = \"regfile\"\npio = [{ base = 0x378, size = 8 }]\n\
                         [[device]]\nname = \"hole\"\nmodel = \"regfile\"\nmmio = [{ base = 0xa0000, size = 0x60000 }]\n";

    fn check_fixed(dump: &str) -> TestResult {
        let c = MachineConfig::parse(FIXED, Path::new("m.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        resource_check(&p, &parse(dump))
    }

    #[test]
    fn devices_without_a_node_are_claimed_by_name_inside_their_region() {
        let dump = |iomem: &str, ioports: &str| {
            format!(
                "mmiolab: begin /proc/iomem\n{iomem}mmiolab: end /proc/iomem\n\
                 mmiolab: begin /proc/ioports\n{ioports}mmiolab: end /proc/ioports\n"
            )
        };
        // A part of the region under the device's name; someone else's claim of another
        // part (the kernel's System ROM, parport_pc's three ports) is not judged.
        let r = check_fixed(&dump(
            "000a0000-000effff : hole\n000f0000-000fffff : System ROM\n",
            "0378-037f : short\n0378-037a : parport0\n",
        ));
        assert!(r.ok, "{:?}", r.details);
        assert_eq!(r.details.len(), 2, "{:?}", r.details);
        // The whole region under another name, or the name outside the region: mismatch.
        let r = check_fixed(&dump("000a0000-000fffff : silly\n", ""));
        assert!(!r.ok);
        assert!(r.details[0].starts_with("MISMATCH MMIO"), "{:?}", r.details);
        let r = check_fixed(&dump("000a0000-000effff : hole\n", "0378-0380 : short\n"));
        assert!(!r.ok);
        assert!(r.details[1].starts_with("MISMATCH PIO"), "{:?}", r.details);
    }

    fn order_report(line: &str) -> GuestReport {
        parse(&format!(
            "KTAP version 1\n1..1\n    # {line}\n    ok 1 a\nok 1 io_write_order\n"
        ))
    }

    const TRACE: &str = r#"{"v":2,"seq":3,"t_ns":1,"kind":"access","vcpu":0,"space":"mmio","op":"write","addr":"0xd0020038","width":4,"value":"0xa0","device":"apidev@d0020000","offset":"0x38","reg":"ORDER_A","fields":{},"effects":[]}
{"v":2,"seq":4,"t_ns":2,"kind":"access","vcpu":0,"space":"mmio","op":"read","addr":"0xd002003c","width":4,"value":"0xb0","device":"apidev@d0020000","offset":"0x3c","reg":"ORDER_B","fields":{},"effects":[]}
{"v":2,"seq":5,"t_ns":3,"kind":"access","vcpu":0,"space":"mmio","op":"write","addr":"0xd002003c","width":4,"value":"0xb0","device":"apidev@d0020000","offset":"0x3c","reg":"ORDER_B","fields":{},"effects":[]}
{"v":2,"seq":6,"t_ns":4,"kind":"access","vcpu":0,"space":"mmio","op":"write","addr":"0xd002003c","width":4,"value":"0x1","device":"other@d0030000","offset":"0x3c","reg":"ORDER_A","fields":{},"effects":[]}
"#;

    #[test]
    fn trace_order_is_checked_by_register_name() {
        let line = "mmiolab-trace-order: apidev ORDER_A=0xa0 ORDER_B=0xb0";
        let r = trace_order_checks(&order_report(line), Some(Ok(TRACE)));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].name, "host: trace order of io_write_order");
        assert!(r[0].ok, "{:?}", r[0].details);
        assert!(r[0].details[0].contains("seq 3, 5"), "{:?}", r[0].details);
        // Reversed: the trace has A before B.
        let line = "mmiolab-trace-order: apidev ORDER_B=0xb0 ORDER_A=0xa0";
        let r = trace_order_checks(&order_report(line), Some(Ok(TRACE)));
        assert!(!r[0].ok);
        assert!(
            r[0].details[1].ends_with("ORDER_A=0xa0 ORDER_B=0xb0"),
            "{:?}",
            r[0].details
        );
        // A write the trace lacks, no trace, an unreadable line.
        let line = "mmiolab-trace-order: apidev ORDER_A=0xa0 ORDER_B=0xb0 ORDER_A=0xa1";
        assert!(!trace_order_checks(&order_report(line), Some(Ok(TRACE)))[0].ok);
        assert!(!trace_order_checks(&order_report(line), None)[0].ok);
        let r = trace_order_checks(&order_report("mmiolab-trace-order: apidev ORDER_A"), Some(Ok(TRACE)));
        assert!(!r[0].ok);
        // Tests that expect nothing get no host result.
        assert!(trace_order_checks(&order_report("something else"), None).is_empty());
    }

    /// A console where every guest test passed and the resources match.
    const PASSING: &str = "KTAP version 1\n1..2\nok 1 mmio_fixed\nok 2 platform_dt\n\
                           mmiolab: begin /proc/iomem\nd0001000-d0001fff : d0001000.testdev testdev@d0001000\n\
                           mmiolab: end /proc/iomem\n";

    fn verdict(console: &str, run: Option<&StopReason>) -> Verdict {
        let c = MachineConfig::parse(MACHINE, Path::new("m.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        judge(console, &p, run)
    }

    #[test]
    fn a_log_with_restores_splits_into_the_boot_and_each_attempt() {
        // Nested: the VMM's stop line follows the marker, then the outer /init's lines.
        let nested = "boot\nKTAPmmiolab: stopped for a snapshot at console:KTAP, written to /tmp/s\n\
                      mmiolab-l1: uptime 9\n\
                      mmiolab: restoring the snapshot taken at console:KTAP (attempt 1 of 2)\r\n\
                      \x20version 1\n1..1\nnot ok 1 a\n\
                      mmiolab: restoring the snapshot taken at console:KTAP (attempt 2 of 2)\n\
                      \x20version 1\n1..1\nok 1 a\n";
        let a = Attempts::split(nested);
        assert_eq!(a.boot, "boot\nKTAP");
        assert_eq!(
            a.attempts,
            [" version 1\n1..1\nnot ok 1 a\n", " version 1\n1..1\nok 1 a\n"]
        );
        assert_eq!(a.run(1), "boot\nKTAP version 1\n1..1\nok 1 a\n");
        assert_eq!(parse(&a.run(0)).results.len(), 1);
        // Directly: the harness's line follows the marker on its line.
        let direct = "boot\nKTAPmmiolab: restoring the snapshot taken at console:KTAP (attempt 1 of 1)\n version 1\n";
        assert_eq!(Attempts::split(direct).run(0), "boot\nKTAP version 1\n");
        // Without restores, all is the boot.
        let plain = "x\nKTAP version 1\n";
        assert_eq!(
            Attempts::split(plain),
            Attempts {
                boot: plain,
                attempts: vec![]
            }
        );
    }

    #[test]
    fn passing_ktap_and_a_clean_end_pass() {
        for end in [
            StopReason::ExitDevice(0),
            StopReason::GuestPowerOff,
            StopReason::GuestReset,
        ] {
            let v = verdict(PASSING, Some(&end));
            assert_eq!(v.failed, 0, "{end:?}: {:?}", v.results);
            assert_eq!(v.passed(), 4);
        }
        assert_eq!(verdict(PASSING, None).failed, 0, "a console log alone");
    }

    #[test]
    fn passing_ktap_does_not_hide_a_run_that_ended_badly() {
        use mmiolab_vmm::OutputFailure;
        for (end, reason) in [
            (StopReason::GuestPanic, "the guest kernel panicked (pvpanic)".to_owned()),
            (
                StopReason::Fault("vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)".into()),
                "the guest faulted: vCPU 0: triple fault (KVM_EXIT_SHUTDOWN)".to_owned(),
            ),
            (
                StopReason::Timeout(std::time::Duration::from_secs(600)),
                "the guest hung: still running after the timeout (600s)".to_owned(),
            ),
            (
                StopReason::ExitDevice(3),
                "the guest exited with status 3 (test-exit port)".to_owned(),
            ),
            (
                StopReason::Signal(libc::SIGINT),
                "the run was stopped by SIGINT".to_owned(),
            ),
            (
                StopReason::Output(OutputFailure {
                    output: "the guest console".into(),
                    cause: "No space left on device".into(),
                    closed: false,
                }),
                "the guest console could not be written: No space left on device".to_owned(),
            ),
        ] {
            let v = verdict(PASSING, Some(&end));
            assert_eq!(v.failed, 1, "{end:?}");
            let failed: Vec<&TestResult> = v.results.iter().filter(|r| !r.ok).collect();
            assert_eq!(failed[0].name, RUN_CHECK);
            assert_eq!(failed[0].details, [reason]);
        }
    }

    #[test]
    fn a_console_without_results_or_with_a_short_plan_fails() {
        let v = verdict("Kernel panic - not syncing\n", Some(&StopReason::GuestPanic));
        assert_eq!(v.notes, ["FAIL plan: the guest reported no KTAP results"]);
        assert!(v.failed >= 2);
        let short = PASSING.replace("1..2", "1..3");
        let v = verdict(&short, Some(&StopReason::ExitDevice(0)));
        assert_eq!(v.failed, 1);
        assert_eq!(v.notes, ["FAIL plan: the guest planned 3 tests and reported 2"]);
    }
}
