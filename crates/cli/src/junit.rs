//! The JUnit report of `mmiolab test --junit FILE`, written with quick-junit (the Jenkins
//! JUnit format that CI systems read).
//!
//! Each guest test with cases (a KUnit suite, a module test of /init) is a `<testsuite>` of
//! its own, one `<testcase>` per leaf case (a parameter of a parameterised KUnit case is a
//! case `CASE / PARAM`); the guest tests without cases and the host's checks are the cases
//! of the suite `mmiolab-linux`. So each failure is counted once. Every case carries its
//! output (its KTAP diagnostics), its duration (from the guest's printk timestamps, when the
//! console has them) and, when it failed and a trace was taken with `--check` (whose guest
//! agent marks where each test begins and ends in the trace), the last accesses of the
//! trace during its guest test in `<system-err>`.
//!
//! The document is valid against the Jenkins xUnit plugin's `junit-10.xsd` (the schema of the
//! format quick-junit targets; tests/junit_schema.rs validates a report with it), with one
//! change to quick-junit's output: the schema allows no `skipped` count on `<testsuites>`,
//! which quick-junit always writes, so [`report`] takes it off (each `<testsuite>` keeps its
//! own).

use std::collections::VecDeque;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::ktap::{Status, Test, TestResult};

/// The suite of the guest tests without cases and of the host's checks.
pub const MAIN_SUITE: &str = "mmiolab-linux";

/// How many trace lines a failed case carries.
pub const TRACE_TAIL: usize = 20;

/// What /init prints before loading a KUnit module (`# mmiolab-module: NAME`), so that the
/// suites it holds, whose names are not the module's, find the module's part of the trace.
pub const MODULE_TAG: &str = "mmiolab-module:";

/// The JUnit XML for `results` (`mmiolab test`'s, guest tests first, in the order of
/// `tree`, the KTAP tree of the same console), with the trace's tail for failures when
/// `trace` (JSON lines) is given.
pub fn report(results: &[TestResult], tree: &[Test], trace: Option<&str>) -> anyhow::Result<String> {
    let mut report = Report::new("mmiolab test");
    let mut main = TestSuite::new(MAIN_SUITE);
    let mut previous_end = None;
    // read once, and only when a failure needs it
    let tails = trace.filter(|_| results.iter().any(|r| !r.ok)).map(TraceTails::new);
    // the KUnit module whose suites are being read (each suite after the module's first
    // has no tag of its own)
    let mut module: Option<String> = None;
    for (i, r) in results.iter().enumerate() {
        let Some(t) = tree.get(i).filter(|t| t.name == r.name) else {
            let mut case = TestCase::new(r.name.as_str(), result_status(r));
            case.set_classname(MAIN_SUITE);
            set_output(&mut case, &r.details);
            main.add_test_case(case);
            continue;
        };
        let start = previous_end.or(t.started_us);
        previous_end = t.ended_us.or(previous_end);
        if let Some(m) = module_tag(t) {
            module = Some(m);
        }
        let part = match (&tails, module_tag(t)) {
            (_, Some(m)) => m,
            // a test the trace knows by its own name (one of /init's)
            (Some(tails), None) if tails.has(&t.name) => t.name.clone(),
            (_, None) => module.clone().unwrap_or_else(|| t.name.clone()),
        };
        let tail = |failed: bool| match (failed, &tails) {
            (true, Some(tails)) => Some(tails.of(&part)),
            _ => None,
        };
        if t.subtests.is_empty() {
            let mut case = TestCase::new(r.name.as_str(), result_status(r));
            case.set_classname(MAIN_SUITE);
            set_output(&mut case, &t.log);
            set_time(&mut case, start, t.ended_us);
            if let Some(tail) = tail(!r.ok) {
                case.set_system_err(tail);
            }
            main.add_test_case(case);
            continue;
        }
        let mut suite = TestSuite::new(t.name.as_str());
        let mut cases = Vec::new();
        leaves(t, "", t.started_us, &mut cases);
        let any_failed = cases.iter().any(|(_, leaf, _)| !leaf.status.ok());
        for (name, leaf, start) in cases {
            let mut case = TestCase::new(name, case_status(leaf));
            case.set_classname(t.name.as_str());
            set_output(&mut case, &leaf.log);
            set_time(&mut case, start, leaf.ended_us);
            if let Some(tail) = tail(!leaf.status.ok()) {
                case.set_system_err(tail);
            }
            suite.add_test_case(case);
        }
        // The suite failed without a failed case (its module did not load, a KTAP error):
        // the suite's own result is a case, so the failure is not lost.
        if !r.ok && !any_failed {
            let mut case = TestCase::new(t.name.as_str(), result_status(r));
            case.set_classname(t.name.as_str());
            let mut out = t.log.clone();
            out.extend(t.errors.iter().map(|e| format!("(KTAP: {e})")));
            set_output(&mut case, &out);
            if let Some(tail) = tail(true) {
                case.set_system_err(tail);
            }
            suite.add_test_case(case);
        }
        if let (Some(s), Some(e)) = (start, t.ended_us) {
            suite.set_time(Duration::from_micros(e.saturating_sub(s)));
        }
        report.add_test_suite(suite);
    }
    report.add_test_suite(main);
    without_suites_skipped(&report.to_string()?)
}

/// `xml` without the `skipped` attribute of its root `<testsuites>` (which the Jenkins
/// schema does not allow, and quick-junit always writes); every other byte as it was.
fn without_suites_skipped(xml: &str) -> anyhow::Result<String> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        let start = usize::try_from(reader.buffer_position())?;
        let (e, empty) = match reader.read_event()? {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::Eof => anyhow::bail!("the JUnit report has no <testsuites> element"),
            _ => continue,
        };
        anyhow::ensure!(
            e.name().as_ref() == b"testsuites",
            "the JUnit report's root element is not <testsuites>"
        );
        let end = usize::try_from(reader.buffer_position())?;
        let mut root = BytesStart::new("testsuites");
        for a in e.attributes() {
            let a = a?;
            if a.key.as_ref() != b"skipped" {
                root.push_attribute(a);
            }
        }
        let mut tag = quick_xml::Writer::new(Vec::new());
        tag.write_event(if empty { Event::Empty(root) } else { Event::Start(root) })?;
        let tag = String::from_utf8(tag.into_inner())?;
        return Ok(format!("{}{tag}{}", &xml[..start], &xml[end..]));
    }
}

/// The leaf cases under `t`, named by their path below it, with the time each started: the
/// end of the case before it, or its parent's start for the first.
fn leaves<'a>(t: &'a Test, prefix: &str, parent_start: Option<u64>, out: &mut Vec<(String, &'a Test, Option<u64>)>) {
    let mut start = parent_start;
    for s in &t.subtests {
        let name = if prefix.is_empty() {
            s.name.clone()
        } else {
            format!("{prefix} / {}", s.name)
        };
        if s.subtests.is_empty() {
            out.push((name, s, start));
        } else {
            leaves(s, &name, start.or(s.started_us), out);
        }
        start = s.ended_us.or(start);
    }
}

/// The case's output, when it has any (no empty `<system-out>`).
fn set_output(case: &mut TestCase, lines: &[String]) {
    if !lines.is_empty() {
        case.set_system_out(lines.join("\n"));
    }
}

fn set_time(case: &mut TestCase, start: Option<u64>, end: Option<u64>) {
    if let (Some(s), Some(e)) = (start, end) {
        case.set_time(Duration::from_micros(e.saturating_sub(s)));
    }
}

/// A top-level result's status: passed, skipped (`# SKIP`) or failed with its details.
fn result_status(r: &TestResult) -> TestCaseStatus {
    let skip = r
        .directive
        .as_deref()
        .filter(|d| d.to_ascii_uppercase().starts_with("SKIP"));
    match (r.ok, skip) {
        (true, None) => TestCaseStatus::success(),
        (true, Some(d)) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(d);
            s
        }
        (false, _) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("{} failed", r.name));
            s.set_description(r.details.join("\n"));
            s
        }
    }
}

/// A KTAP case's status, as kunit.py judges it.
fn case_status(t: &Test) -> TestCaseStatus {
    match t.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Skipped | Status::NoTests => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(t.directive.as_deref().unwrap_or("no tests"));
            s
        }
        Status::Failed | Status::Crashed => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(if t.status == Status::Failed {
                "failed"
            } else {
                "crashed: its result line never came"
            });
            let mut lines = t.log.clone();
            lines.extend(t.errors.iter().map(|e| format!("(KTAP: {e})")));
            s.set_description(lines.join("\n"));
            s
        }
    }
}

/// The KUnit module /init named before `t` (`# mmiolab-module: NAME`, the first suite of
/// each module): the trace's test boundaries carry the module's name, not the suites'.
fn module_tag(t: &Test) -> Option<String> {
    t.log
        .iter()
        .find_map(|l| l.strip_prefix("# ").and_then(|l| l.strip_prefix(MODULE_TAG)))
        .map(|m| m.trim().to_owned())
}

/// The trace's parts per guest test, read in one pass: for each test name, the last
/// [`TRACE_TAIL`] lines (accesses, events, findings) between the last boundary that starts
/// it and the next boundary, and how many lines that part had.
pub struct TraceTails<'a> {
    boundaries: usize,
    parts: std::collections::HashMap<String, (VecDeque<&'a str>, usize)>,
}

impl<'a> TraceTails<'a> {
    /// Indexes `trace` (JSON lines).
    pub fn new(trace: &'a str) -> TraceTails<'a> {
        let mut tails = TraceTails {
            boundaries: 0,
            parts: std::collections::HashMap::new(),
        };
        let mut current: Option<String> = None;
        for line in trace.lines() {
            // Only boundary lines are parsed: the others are told apart by their kind key
            // (names in a line are escaped, so no name holds it).
            if line.contains("\"kind\":\"test\"") {
                tails.boundaries += 1;
                current = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| crate::coverage::test_boundary(&v).flatten().map(str::to_owned));
                if let Some(name) = &current {
                    // a test's last run counts
                    tails
                        .parts
                        .insert(name.clone(), (VecDeque::with_capacity(TRACE_TAIL), 0));
                }
                continue;
            }
            let part = current.as_ref().and_then(|name| tails.parts.get_mut(name));
            if let Some((tail, total)) = part
                && !line.trim().is_empty()
            {
                *total += 1;
                if tail.len() == TRACE_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        tails
    }

    /// Whether the trace has a part named `test`.
    pub fn has(&self, test: &str) -> bool {
        self.parts.contains_key(test)
    }

    /// The part of guest test `test`, with a line saying what it is.
    pub fn of(&self, test: &str) -> String {
        let Some((tail, total)) = self.parts.get(test) else {
            return if self.boundaries == 0 {
                "the trace has no test boundaries: they come from the guest agent (mmiolab test --check)".to_owned()
            } else {
                format!("the trace has no part for the guest test {test}")
            };
        };
        let mut out = format!(
            "the last {} of the {total} trace lines during the guest test {test}:",
            tail.len()
        );
        for l in tail {
            out.push('\n');
            out.push_str(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktap::parse;
    use quick_junit::{Report as Parsed, TestCaseStatus as S};

    /// Real KUnit output from the guest (tests/data/kunit/README.md): a passing suite, a
    /// failing one, skips and a parameterised case.
    const KUNIT_LOG: &str = include_str!("../../../tests/data/kunit/console.log");

    fn host_check(ok: bool) -> TestResult {
        TestResult {
            name: "host: guest resources match mmiolab tree".to_owned(),
            ok,
            directive: None,
            details: vec!["MISMATCH mmio guest `x` vs host".to_owned()],
        }
    }

    /// Writes the report of a console, parses it back with quick-junit's reader, and
    /// checks that the document is one the format allows.
    fn round_trip(console: &str, extra: Vec<TestResult>, trace: Option<&str>) -> Parsed {
        let k = parse(console);
        let mut results = k.results.clone();
        results.extend(extra);
        let xml = report(&results, &k.tests, trace).unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
        let root = xml.lines().nth(1).unwrap_or_default();
        assert!(!root.contains("skipped="), "{root}");
        let back = Parsed::deserialize_from_str(&xml).unwrap();
        // the counts the library keeps are those of the cases written
        let cases: usize = back.test_suites.iter().map(|s| s.test_cases.len()).sum();
        assert_eq!(back.tests, cases);
        for s in &back.test_suites {
            assert_eq!(s.tests, s.test_cases.len(), "{}", s.name.as_str());
            let failures = s
                .test_cases
                .iter()
                .filter(|c| {
                    matches!(
                        &c.status,
                        S::NonSuccess {
                            kind: NonSuccessKind::Failure,
                            ..
                        }
                    )
                })
                .count();
            assert_eq!(s.failures, failures, "{}", s.name.as_str());
        }
        back
    }

    fn suite<'a>(r: &'a Parsed, name: &str) -> &'a quick_junit::TestSuite {
        r.test_suites.iter().find(|s| s.name.as_str() == name).expect(name)
    }

    fn case<'a>(s: &'a quick_junit::TestSuite, name: &str) -> &'a TestCase {
        s.test_cases.iter().find(|c| c.name.as_str() == name).expect(name)
    }

    #[test]
    fn only_the_root_loses_its_skipped_count_and_nothing_else_changes() {
        let xml = "<?xml version=\"1.0\"?>\n<testsuites name=\"a &amp; b\" tests=\"1\" skipped=\"1\" errors=\"0\">\n    <testsuite name=\"s\" tests=\"1\" skipped=\"1\"><testcase name=\"c &lt;1&gt;\"><skipped/></testcase></testsuite>\n</testsuites>\n";
        assert_eq!(
            without_suites_skipped(xml).unwrap(),
            xml.replacen(" skipped=\"1\"", "", 1)
        );
        let empty = "<testsuites tests=\"0\" skipped=\"0\"/>";
        assert_eq!(without_suites_skipped(empty).unwrap(), "<testsuites tests=\"0\"/>");
        assert!(without_suites_skipped("<testsuite name=\"s\"/>").is_err());
        assert!(without_suites_skipped("").is_err());
    }

    #[test]
    fn kunit_suites_are_suites_of_their_cases_with_output_and_times() {
        let r = round_trip(KUNIT_LOG, vec![host_check(true)], None);
        let demo = suite(&r, "mmiolab_demo");
        assert_eq!(demo.test_cases.len(), 10, "5 cases and the 5 parameters of the sixth");
        assert_eq!(demo.failures, 0);
        let first = case(demo, "demo_id_reads_part_and_revision");
        assert_eq!(first.classname.as_ref().map(|c| c.as_str()), Some("mmiolab_demo"));
        assert!(
            first
                .system_out
                .as_ref()
                .is_some_and(|o| o.as_str().contains("ID 0xd3e00001: part 0xd3e0, revision 1")),
            "{:?}",
            first.system_out
        );
        // ok 1 at 3.246348 after the suite's `KTAP version 1` at 3.222738: 23.61 ms, written
        // in seconds with three decimals (the format's)
        assert_eq!(first.time, Some(Duration::from_millis(24)));
        // the case after it started when it ended: 0.818 ms
        let second = case(demo, "demo_por_reads_one_once_after_reset");
        assert_eq!(second.time, Some(Duration::from_millis(1)));
        let param = case(demo, "demo_queue_level_and_order / 9 words (one word too many)");
        assert_eq!(param.status, S::success());
        let failing = suite(&r, "mmiolab_failing");
        assert_eq!(failing.failures, 2);
        let f = case(failing, "failing_expectation");
        let S::NonSuccess { description, .. } = &f.status else {
            panic!("{:?}", f.status)
        };
        assert!(
            description
                .as_ref()
                .is_some_and(|d| d.as_str().contains("EXPECTATION FAILED")),
            "{description:?}"
        );
        let example = suite(&r, "example");
        assert!(matches!(case(example, "example_skip_test").status, S::Skipped { .. }));
        // the guest tests without cases (script tests) and the host's check
        let main = suite(&r, MAIN_SUITE);
        let names: Vec<&str> = main.test_cases.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"host: guest resources match mmiolab tree"), "{names:?}");
        assert!(!names.contains(&"mmiolab_demo"), "{names:?}");
        assert_eq!(main.failures, 0);
    }

    const CONSOLE: &str = "[    1.000000] KTAP version 1\n[    1.000000] 1..2\n\
[    1.100000]     # Subtest: mmio_fixed\n[    1.200000]     not ok 1 request_mem_region\n\
[    1.300000] not ok 1 mmio_fixed\n[    1.500000] not ok 2 plain # a reason\n";

    const TRACE: &str = concat!(
        r#"{"v":2,"seq":0,"t_ns":1,"kind":"access","device":"a","op":"read"}"#,
        "\n",
        r#"{"v":2,"seq":1,"t_ns":2,"kind":"test","test":"mmio_fixed","phase":"begin"}"#,
        "\n",
        r#"{"v":2,"seq":2,"t_ns":3,"kind":"access","device":"a","op":"write","value":"0x1"}"#,
        "\n",
        r#"{"v":2,"seq":3,"t_ns":4,"kind":"finding","rule":"hole","device":"a"}"#,
        "\n",
        r#"{"v":2,"seq":4,"t_ns":5,"kind":"test","test":"mmio_fixed","phase":"end"}"#,
        "\n",
        r#"{"v":2,"seq":5,"t_ns":6,"kind":"access","device":"a","op":"read","value":"0x2"}"#,
        "\n"
    );

    #[test]
    fn failures_carry_the_trace_lines_of_their_test() {
        let r = round_trip(CONSOLE, vec![host_check(false)], Some(TRACE));
        let fixed = suite(&r, "mmio_fixed");
        let c = case(fixed, "request_mem_region");
        let err = c.system_err.as_ref().unwrap().as_str();
        assert_eq!(
            err,
            format!(
                "the last 2 of the 2 trace lines during the guest test mmio_fixed:\n{}\n{}",
                TRACE.lines().nth(2).unwrap(),
                TRACE.lines().nth(3).unwrap()
            )
        );
        let main = suite(&r, MAIN_SUITE);
        let plain = case(main, "plain");
        assert!(matches!(plain.status, S::NonSuccess { .. }));
        assert_eq!(plain.time, Some(Duration::from_micros(200_000)));
        assert_eq!(
            plain.system_err.as_ref().unwrap().as_str(),
            "the trace has no part for the guest test plain"
        );
        let host = case(main, "host: guest resources match mmiolab tree");
        let S::NonSuccess { description, .. } = &host.status else {
            panic!()
        };
        assert_eq!(
            description.as_ref().unwrap().as_str(),
            "MISMATCH mmio guest `x` vs host"
        );
        // without the agent's boundaries
        let r = round_trip(CONSOLE, Vec::new(), Some(TRACE.lines().next().unwrap()));
        let c = case(suite(&r, "mmio_fixed"), "request_mem_region");
        assert!(
            c.system_err
                .as_ref()
                .unwrap()
                .as_str()
                .starts_with("the trace has no test boundaries")
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_of_the_last_run() {
        let mut trace = String::from(
            "{\"kind\":\"test\",\"test\":\"t\",\"phase\":\"begin\"}\nold\n{\"kind\":\"test\",\"test\":\"t\",\"phase\":\"begin\"}\n",
        );
        for i in 0..TRACE_TAIL + 5 {
            trace.push_str(&format!("line {i}\n"));
        }
        trace.push_str("{\"kind\":\"test\",\"test\":\"u\",\"phase\":\"begin\"}\nu line\n{\"kind\":\"test\",\"test\":\"u\",\"phase\":\"end\"}\nafter\n");
        let tails = TraceTails::new(&trace);
        // each test its own part, in one pass; nothing after a test's end counts
        assert_eq!(
            tails.of("u"),
            "the last 1 of the 1 trace lines during the guest test u:\nu line"
        );
        let tail = tails.of("t");
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "the last {TRACE_TAIL} of the {} trace lines during the guest test t:",
                TRACE_TAIL + 5
            )
        );
        assert_eq!(lines[1], "line 5");
        assert_eq!(lines.len(), TRACE_TAIL + 1);
        assert!(!tail.contains("old"));
    }

    #[test]
    fn a_suite_that_failed_without_a_failed_case_is_a_failed_case_itself() {
        let console = "KTAP version 1\n1..1\n# mmiolab-module: mod_a\n    KTAP version 1\n    # Subtest: s\n    1..1\n    ok 1 c\nnot ok 1 s\n";
        let trace = "{\"kind\":\"test\",\"test\":\"mod_a\",\"phase\":\"begin\"}\nx\n";
        let r = round_trip(console, Vec::new(), Some(trace));
        let s = suite(&r, "s");
        assert_eq!(s.failures, 1);
        let c = case(s, "s");
        assert!(
            c.system_err
                .as_ref()
                .unwrap()
                .as_str()
                .ends_with("during the guest test mod_a:\nx")
        );
    }

    #[test]
    fn every_suite_of_a_kunit_module_gets_the_module_part() {
        let console = "KTAP version 1\n1..3\n# mmiolab-module: mod_a\n    KTAP version 1\n    # Subtest: s1\n    1..1\n    ok 1 c\nok 1 s1\n\
                       \x20   KTAP version 1\n    # Subtest: s2\n    1..1\n    not ok 1 d\nnot ok 2 s2\n\
                       \x20   # Subtest: plain\n    not ok 1 e\nnot ok 3 plain\n";
        let trace = "{\"kind\":\"test\",\"test\":\"mod_a\",\"phase\":\"begin\"}\nin mod_a\n{\"kind\":\"test\",\"test\":\"plain\",\"phase\":\"begin\"}\nin plain\n";
        let r = round_trip(console, Vec::new(), Some(trace));
        let d = case(suite(&r, "s2"), "d");
        assert!(
            d.system_err
                .as_ref()
                .unwrap()
                .as_str()
                .ends_with("during the guest test mod_a:\nin mod_a")
        );
        // a test with a part of its own keeps it
        let e = case(suite(&r, "plain"), "e");
        assert!(
            e.system_err
                .as_ref()
                .unwrap()
                .as_str()
                .ends_with("during the guest test plain:\nin plain")
        );
    }

    #[test]
    fn names_and_output_are_escaped() {
        let results = vec![TestResult {
            name: "a<b&\"c\"".to_owned(),
            ok: false,
            directive: None,
            details: vec!["]]> <x/> \u{1b}[31m".to_owned()],
        }];
        let xml = report(&results, &[], None).unwrap();
        let back = Parsed::deserialize_from_str(&xml).unwrap();
        let c = &back.test_suites[0].test_cases[0];
        assert_eq!(c.name.as_str(), "a<b&\"c\"");
        assert!(c.system_out.as_ref().unwrap().as_str().contains("]]> <x/>"));
    }
}
