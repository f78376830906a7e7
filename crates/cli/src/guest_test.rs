//! `mmiolab test`: boot a Linux guest (or read the console log of a nested run), collect
//! its KTAP results, check that the guest's /proc/iomem and /proc/ioports agree with the
//! host's bus tree, and report one line per test plus JUnit XML.

use std::fmt::Write as _;

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
    };
    TestResult {
        name: RUN_CHECK.to_owned(),
        ok: problem.is_none(),
        directive: None,
        details: problem.into_iter().collect(),
    }
}

/// A host-side check on the guest's resource dumps: every guest line whose range is a
/// device region of the host's tree must name that region (the DT node name), and the
/// guest must show at least one of the host's device-tree devices.
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
            let host = tree.range(id);
            let host_name = tree.name(id);
            let described = platform.dt_devices.iter().any(|d| d.node == host_name);
            if tree.kind(id) != RegionKind::Device || !described {
                continue;
            }
            let names = linux_names(host_name);
            if host.start() == start && host.end() == end && name.split(' ').any(|n| names.iter().any(|h| h == n)) {
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

/// The names Linux gives the resources of DT node `node` (`testdev@d0001000`): the node
/// name itself, and the platform device name `d0001000.testdev` that drivers claim with.
fn linux_names(node: &str) -> Vec<String> {
    let mut names = vec![node.to_owned()];
    if let Some((base, unit)) = node.split_once('@') {
        names.push(format!("{unit}.{base}"));
    }
    names
}

/// JUnit XML for `results`.
pub fn junit(suite: &str, results: &[TestResult]) -> String {
    let failures = results.iter().filter(|r| !r.ok).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        esc(suite),
        results.len()
    );
    for r in results {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\"",
            esc(suite),
            esc(&r.name)
        );
        let skipped = r
            .directive
            .as_deref()
            .is_some_and(|d| d.to_ascii_uppercase().starts_with("SKIP"));
        if r.ok && !skipped {
            x.push_str("/>\n");
            continue;
        }
        x.push_str(">\n");
        if r.ok {
            let _ = writeln!(
                x,
                "      <skipped message=\"{}\"/>",
                esc(r.directive.as_deref().unwrap_or(""))
            );
        } else {
            let _ = writeln!(
                x,
                "      <failure message=\"{} failed\">{}</failure>",
                esc(&r.name),
                esc(&r.details.join("\n"))
            );
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

    #[test]
    fn junit_marks_failures_and_skips() {
        let results = vec![
            TestResult {
                name: "a<b".into(),
                ok: true,
                directive: None,
                details: vec![],
            },
            TestResult {
                name: "c".into(),
                ok: false,
                directive: None,
                details: vec!["not ok 1 x".into()],
            },
            TestResult {
                name: "d".into(),
                ok: true,
                directive: Some("SKIP no pci".into()),
                details: vec![],
            },
        ];
        let x = junit("linux", &results);
        assert!(x.contains("tests=\"3\" failures=\"1\""));
        assert!(x.contains("name=\"a&lt;b\"/>"));
        assert!(x.contains("<failure message=\"c failed\">not ok 1 x</failure>"));
        assert!(x.contains("<skipped message=\"SKIP no pci\"/>"));
    }
}
