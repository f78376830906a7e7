//! Reading a guest's console: the KTAP results the test init prints, and the
//! `/proc/iomem` and `/proc/ioports` dumps between `mmiolab: begin/end` markers.
//!
//! Two views of the KTAP document: [`GuestReport::results`], the top-level tests with the
//! lines printed under them (what the host's checks read), and [`GuestReport::tests`], the
//! whole tree of tests, subtests (KUnit suites, their cases, the parameters of a case),
//! skips and diagnostics, read as the kernel's `tools/testing/kunit/kunit_parser.py` reads
//! it (its `parse_test`), so a KUnit suite is reported case by case as kunit.py would.

/// One top-level KTAP result with the subtest lines printed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Test name.
    pub name: String,
    /// `ok` (a `# SKIP` directive is kept in `directive`).
    pub ok: bool,
    /// Text after `#`, if any.
    pub directive: Option<String>,
    /// The indented subtest lines (cases and diagnostics), without the indent.
    pub details: Vec<String>,
}

/// What the console held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuestReport {
    /// The plan (`1..N`), if printed.
    pub planned: Option<usize>,
    /// Results in order.
    pub results: Vec<TestResult>,
    /// Lines of the guest's /proc/iomem.
    pub iomem: Vec<String>,
    /// Lines of the guest's /proc/ioports.
    pub ioports: Vec<String>,
    /// The top-level tests as a tree, in the order of `results` (kunit.py's view).
    pub tests: Vec<Test>,
}

/// How a test ended, as kunit.py judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `ok`.
    Passed,
    /// `not ok`.
    Failed,
    /// `ok` or `not ok` with a `# SKIP` directive.
    Skipped,
    /// Its result line never came (the plan promised more subtests than there were, or
    /// the output stopped).
    Crashed,
    /// A test with a subtest header or plan and no subtests.
    NoTests,
}

impl Status {
    /// Passed or skipped: nothing wrong.
    pub fn ok(self) -> bool {
        matches!(self, Status::Passed | Status::Skipped)
    }

    /// The word `mmiolab test` prints for it.
    pub fn word(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
            Status::Crashed => "CRASH",
            Status::NoTests => "NO TESTS",
        }
    }
}

/// One KTAP test: a case, or a suite (or a parameterised case) with its subtests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    /// The name on its result line (or its `# Subtest:` header).
    pub name: String,
    /// Its verdict.
    pub status: Status,
    /// The text after ` # ` on its result line (`SKIP reason`).
    pub directive: Option<String>,
    /// Its plan (`1..N`), if it printed one.
    pub planned: Option<usize>,
    /// Its subtests, in order.
    pub subtests: Vec<Test>,
    /// Its diagnostics: the lines printed before its result that are no test's, without
    /// their indentation (KUnit's `# name: EXPECTATION FAILED at ...` and what follows).
    pub log: Vec<String>,
    /// Where the output broke the format (a wrong test number, a missing result line).
    pub errors: Vec<String>,
    /// The printk time (µs since the guest booted) of the first line this test read, if
    /// the console had timestamps.
    pub started_us: Option<u64>,
    /// The printk time of its result line.
    pub ended_us: Option<u64>,
}

impl Test {
    fn new() -> Test {
        Test {
            name: String::new(),
            status: Status::Crashed,
            directive: None,
            planned: None,
            subtests: Vec::new(),
            log: Vec::new(),
            errors: Vec::new(),
            started_us: None,
            ended_us: None,
        }
    }

    /// The leaves under this test (itself if it has no subtests), as kunit.py counts them.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        if self.subtests.is_empty() {
            match self.status {
                Status::Passed => c.passed += 1,
                Status::Failed => c.failed += 1,
                Status::Skipped => c.skipped += 1,
                Status::Crashed => c.crashed += 1,
                Status::NoTests => {}
            }
        }
        for t in &self.subtests {
            let s = t.counts();
            c.passed += s.passed;
            c.failed += s.failed;
            c.skipped += s.skipped;
            c.crashed += s.crashed;
        }
        c
    }
}

/// Test cases by verdict.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Crashed (their result never came).
    pub crashed: usize,
}

/// Deeper headers than this are read as diagnostics: the parser recurses once per level,
/// and a console is not allowed to make it recurse without bound.
const MAX_DEPTH: usize = 16;

/// `KTAP version N` or `TAP version N`.
fn is_version(line: &str) -> bool {
    let l = line.trim_start();
    let rest = l
        .strip_prefix("KTAP version ")
        .or_else(|| l.strip_prefix("TAP version "));
    rest.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The name on a `# Subtest: NAME` line.
fn subtest_header(line: &str) -> Option<&str> {
    line.trim_start().strip_prefix("# Subtest: ")
}

/// N of a plan line `1..N`.
fn plan(line: &str) -> Option<usize> {
    let rest = line.trim_start().strip_prefix("1..")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// A result line as kunit.py's TEST_RESULT matches it: `ok|not ok N [- ]NAME[ # DIRECTIVE]`,
/// with no `#` in the name. Returns (ok, number, name, directive).
fn result_parts(line: &str) -> Option<(bool, usize, &str, Option<&str>)> {
    let l = line.trim_start();
    let (ok, rest) = match l.strip_prefix("not ok ") {
        Some(r) => (false, r),
        None => (true, l.strip_prefix("ok ")?),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let number = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(' ')?;
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.split_once(" # ") {
        Some((n, d)) => (n, Some(d.trim())),
        None => (rest, None),
    };
    if name.contains('#') {
        return None;
    }
    Some((ok, number, name.trim(), directive))
}

/// The KTAP lines of a console, read the way kunit.py's `parse_test` reads them.
struct Lines<'a> {
    /// Each line without its timestamp, and the timestamp (µs).
    lines: Vec<(&'a str, Option<u64>)>,
    at: usize,
}

impl<'a> Lines<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.lines.get(self.at).map(|l| l.0)
    }

    /// The timestamp of the next line.
    fn stamp(&self) -> Option<u64> {
        self.lines.get(self.at).and_then(|l| l.1)
    }

    /// Lines that are no result, header or version line (below `MAX_DEPTH`, headers are
    /// diagnostics too).
    fn diagnostics(&mut self, depth: usize) -> Vec<String> {
        let mut log = Vec::new();
        while let Some(l) = self.peek() {
            let structural =
                result_parts(l).is_some() || (depth < MAX_DEPTH && (is_version(l) || subtest_header(l).is_some()));
            if structural {
                break;
            }
            log.push(l.trim().to_owned());
            self.at += 1;
        }
        log
    }

    /// Whether the next line is the result line of a test named `name`.
    fn result_of(&self, name: &str) -> bool {
        self.peek().and_then(result_parts).is_some_and(|(_, _, n, _)| n == name)
    }

    /// kunit.py's `parse_test`: one test, its subtests, its result line.
    fn test(&mut self, number: usize, log: Vec<String>, subtest: bool, depth: usize) -> Test {
        let mut test = Test::new();
        test.log = log;
        test.started_us = self.stamp();
        let more = self.diagnostics(depth);
        test.log.extend(more);
        let parent = if !subtest {
            if self.peek().is_some_and(is_version) {
                self.at += 1;
            }
            true
        } else if depth < MAX_DEPTH {
            let version = self.peek().is_some_and(is_version);
            if version {
                self.at += 1;
            }
            let header = self.peek().and_then(subtest_header);
            if let Some(name) = header {
                test.name = name.trim().to_owned();
                self.at += 1;
            }
            version || header.is_some()
        } else {
            false
        };
        if parent && let Some(n) = self.peek().and_then(plan) {
            test.planned = Some(n);
            self.at += 1;
        }
        let mut next = 1;
        while parent && test.planned.is_none_or(|n| next <= n) {
            let sub_log = self.diagnostics(depth + 1);
            if self.peek().is_none() || (subtest && self.result_of(&test.name)) {
                match test.planned {
                    Some(n) if next <= n => {
                        test.errors.push(format!("missing subtests {next}..{n} of {n}"));
                        let mut missing = Test::new();
                        missing.name = format!("(subtests {next}..{n} never reported)");
                        missing.log = sub_log;
                        test.subtests.push(missing);
                    }
                    _ => test.log.extend(sub_log),
                }
                break;
            }
            let sub = self.test(next, sub_log, true, depth + 1);
            test.subtests.push(sub);
            next += 1;
        }
        if subtest {
            let more = self.diagnostics(depth);
            test.log.extend(more);
            if !test.name.is_empty() && !self.result_of(&test.name) {
                test.errors.push("missing result line".to_owned());
            } else if let Some((ok, n, name, directive)) = self.peek().and_then(result_parts) {
                test.ended_us = self.stamp();
                self.at += 1;
                test.name = name.to_owned();
                if n != number {
                    test.errors.push(format!("expected test number {number}, found {n}"));
                }
                test.directive = directive.map(str::to_owned);
                test.status = if directive.is_some_and(|d| d.starts_with("SKIP")) {
                    Status::Skipped
                } else if ok {
                    Status::Passed
                } else {
                    Status::Failed
                };
            }
        }
        if parent && test.subtests.is_empty() {
            if matches!(test.status, Status::Crashed | Status::Passed) {
                test.status = Status::NoTests;
            }
        } else if test.counts().crashed > 0 {
            test.status = Status::Crashed;
        }
        test
    }
}

/// The tree of top-level tests in `ktap` (the lines from the top-level `KTAP version` on).
fn tree(ktap: Vec<(&str, Option<u64>)>) -> Vec<Test> {
    if ktap.is_empty() {
        return Vec::new();
    }
    let mut lines = Lines { lines: ktap, at: 0 };
    lines.test(0, Vec::new(), false, 0).subtests
}

/// The line without the printk timestamp (`[    3.500000] `), the one of `mmiolab run
/// --console-timestamps` (`[+   3.500000] `) and carriage returns; and the timestamp in µs.
fn stamped(line: &str) -> (&str, Option<u64>) {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix('[')
        && let Some(end) = rest.find("] ")
    {
        let number = rest[..end].trim().trim_start_matches('+').trim_start();
        if number.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return (&rest[end + 2..], micros(number));
        }
    }
    (line, None)
}

/// `3.500000` in µs (at most six decimals count).
fn micros(seconds: &str) -> Option<u64> {
    let (whole, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: u64 = whole.parse().ok()?;
    let digits = frac.len().min(6);
    let frac_us: u64 = if digits == 0 { 0 } else { frac[..digits].parse().ok()? };
    whole
        .checked_mul(1_000_000)?
        .checked_add(frac_us * 10u64.pow((6 - digits) as u32))
}

/// Parses `ok 3 name # directive` / `not ok 3 name`.
fn result_line(line: &str) -> Option<(bool, String, Option<String>)> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else {
        (true, line.strip_prefix("ok ")?)
    };
    let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    number.parse::<usize>().ok()?;
    let (name, directive) = match rest.split_once(" # ") {
        Some((n, d)) => (n, Some(d.trim().to_owned())),
        None => (rest, None),
    };
    Some((ok, name.trim().to_owned(), directive))
}

/// Writes the subtests of `test`, one `PASS`/`FAIL`/`SKIP`/`CRASH` line each, indented by
/// depth, as kunit.py lists them; under each failed or crashed case, its diagnostics.
pub fn render_subtests(test: &Test, indent: usize, out: &mut String) {
    for t in &test.subtests {
        let directive = t.directive.as_deref().map(|d| format!(" # {d}")).unwrap_or_default();
        out.push_str(&format!("{:indent$}{} {}{directive}\n", "", t.status.word(), t.name));
        if !t.status.ok() {
            for line in &t.log {
                out.push_str(&format!("{:w$}{line}\n", "", w = indent + 4));
            }
        }
        for e in &t.errors {
            out.push_str(&format!("{:w$}(KTAP: {e})\n", "", w = indent + 4));
        }
        render_subtests(t, indent + 4, out);
    }
}

/// Parses a console log. Only the top-level KTAP document counts: everything before its
/// `KTAP version` line (the kernel's boot messages) is ignored.
pub fn parse(console: &str) -> GuestReport {
    let mut report = GuestReport::default();
    let mut in_ktap = false;
    let mut pending: Vec<String> = Vec::new();
    let mut dump: Option<&'static str> = None;
    let mut ktap: Vec<(&str, Option<u64>)> = Vec::new();
    let mut ktap_results = false;
    for raw in console.lines() {
        let (line, stamp) = stamped(raw);
        match (dump, line) {
            (_, "mmiolab: begin /proc/iomem") => dump = Some("iomem"),
            (_, "mmiolab: begin /proc/ioports") => dump = Some("ioports"),
            (_, "mmiolab: end /proc/iomem" | "mmiolab: end /proc/ioports") => dump = None,
            (Some("iomem"), l) => report.iomem.push(l.to_owned()),
            (Some(_), l) => report.ioports.push(l.to_owned()),
            // A document without results so far gives way to a later one: a kernel with
            // KUnit built in prints an empty one (`1..0`) at boot, before /init's.
            (None, "KTAP version 1") if !ktap_results => {
                in_ktap = true;
                report.planned = None;
                pending.clear();
                ktap.clear();
                ktap.push((line, stamp));
            }
            (None, l) if in_ktap => {
                ktap.push((l, stamp));
                ktap_results |= result_parts(l).is_some();
                if let Some(n) = l.strip_prefix("1..").and_then(|n| n.trim().parse().ok()) {
                    report.planned = Some(n);
                } else if let Some(sub) = l.strip_prefix("    ") {
                    pending.push(sub.to_owned());
                } else if let Some((ok, name, directive)) = result_line(l) {
                    report.results.push(TestResult {
                        name,
                        ok,
                        directive,
                        details: std::mem::take(&mut pending),
                    });
                }
            }
            _ => {}
        }
    }
    report.tests = tree(ktap);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "[    0.000000] Linux version 6.1\r\n\
ok 1 not a test yet\n\
[    3.140000] KTAP version 1\n\
[    3.150000] 1..2\n\
[    3.160000]     # Subtest: mmio_fixed\n\
[    3.170000]     KTAP version 1\n\
[    3.180000]     ok 1 request_mem_region\n\
[    3.190000] ok 1 mmio_fixed\n\
[    3.200000]     not ok 1 platform_get_resource_io\n\
not ok 2 platform_pio # SKIP no PCI\n\
mmiolab: begin /proc/iomem\n\
d0001000-d0001fff : d0001000.testdev testdev@d0001000\n\
mmiolab: end /proc/iomem\n\
mmiolab: begin /proc/ioports\n\
02e0-02e7 : piodev@2e0\n\
mmiolab: end /proc/ioports\n";

    #[test]
    fn parses_results_details_and_dumps() {
        let r = parse(LOG);
        assert_eq!(r.planned, Some(2));
        assert_eq!(r.results.len(), 2);
        assert_eq!(r.results[0].name, "mmio_fixed");
        assert!(r.results[0].ok);
        assert_eq!(
            r.results[0].details,
            ["# Subtest: mmio_fixed", "KTAP version 1", "ok 1 request_mem_region"]
        );
        assert!(!r.results[1].ok);
        assert_eq!(r.results[1].directive.as_deref(), Some("SKIP no PCI"));
        assert_eq!(r.iomem, ["d0001000-d0001fff : d0001000.testdev testdev@d0001000"]);
        assert_eq!(r.ioports, ["02e0-02e7 : piodev@2e0"]);
    }

    /// Real KUnit output from the guest (tests/data/kunit/README.md).
    const KUNIT_LOG: &str = include_str!("../../../tests/data/kunit/console.log");

    fn errors(t: &Test) -> Vec<String> {
        let mut e = t.errors.clone();
        for s in &t.subtests {
            e.extend(errors(s));
        }
        e
    }

    fn names(t: &Test) -> Vec<&str> {
        names_of(&t.subtests)
    }

    fn names_of(tests: &[Test]) -> Vec<&str> {
        tests.iter().map(|s| s.name.as_str()).collect()
    }

    fn statuses(t: &Test) -> Vec<Status> {
        t.subtests.iter().map(|s| s.status).collect()
    }

    #[test]
    fn kunit_suites_are_read_case_by_case_as_kunit_py_reads_them() {
        let r = parse(KUNIT_LOG);
        // The kernel's empty boot-time document (`1..0`) gives way to /init's.
        assert_eq!(r.planned, Some(24));
        assert_eq!(r.tests.len(), 24);
        let flat: Vec<&str> = r.results.iter().map(|t| t.name.as_str()).collect();
        let tree: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(flat, tree);
        for t in &r.tests {
            assert_eq!(errors(t), Vec::<String>::new(), "{}", t.name);
        }

        let example = &r.tests[0];
        assert_eq!(example.name, "example");
        assert_eq!(example.planned, Some(4));
        assert_eq!(
            statuses(example),
            [Status::Passed, Status::Skipped, Status::Skipped, Status::Passed]
        );
        let skip = &example.subtests[1];
        assert_eq!(skip.directive.as_deref(), Some("SKIP this test should be skipped"));
        assert_eq!(
            skip.log,
            [
                "# example_skip_test: initializing",
                "# example_skip_test: You should not see a line below."
            ]
        );
        assert_eq!(example.status, Status::Passed);

        let demo = &r.tests[1];
        assert_eq!(demo.name, "mmiolab_demo");
        assert_eq!(demo.subtests.len(), 6);
        let params = &demo.subtests[5];
        assert_eq!(params.name, "demo_queue_level_and_order");
        assert_eq!(params.planned, None, "KUnit prints no plan for parameters");
        assert_eq!(
            names(params),
            [
                "0 words (empty)",
                "1 words (one word)",
                "4 words (threshold)",
                "8 words (full)",
                "9 words (one word too many)"
            ]
        );
        assert_eq!(
            demo.counts(),
            Counts {
                passed: 10,
                ..Counts::default()
            }
        );
        assert_eq!(
            demo.subtests[0].log,
            ["# demo_id_reads_part_and_revision: ID 0xd3e00001: part 0xd3e0, revision 1"]
        );

        let failing = &r.tests[2];
        assert_eq!(failing.status, Status::Failed);
        assert_eq!(
            failing.counts(),
            Counts {
                passed: 1,
                failed: 2,
                skipped: 1,
                crashed: 0
            }
        );
        let expectation = &failing.subtests[0];
        assert_eq!(expectation.status, Status::Failed);
        assert_eq!(
            expectation.log[0],
            "# failing_expectation: a diagnostic before the failure"
        );
        assert!(expectation.log[1].starts_with("# failing_expectation: EXPECTATION FAILED at "));
        assert_eq!(expectation.log[2], "Expected answer == 42, but");
        assert_eq!(expectation.log[3], "answer == 41");
        assert!(expectation.log.contains(&"a message of the test's own".to_owned()));
        assert_eq!(
            failing.subtests[1].log,
            [
                "# failing_assertion_stops_the_case: ASSERTION FAILED at /tmp/scale/fail/mmiolab_kunit_failing.c:21",
                "Expected false to be true, but is false"
            ]
        );

        let all_skipped = &r.tests[3];
        assert_eq!(all_skipped.status, Status::Skipped);
        assert_eq!(all_skipped.directive.as_deref(), Some("SKIP"));

        // /init's own tests have the same shape: a subtest header, a plan, cases.
        let fixed = &r.tests[4];
        assert_eq!(fixed.name, "mmio_fixed");
        assert_eq!(fixed.subtests.len(), 19);
        assert!(fixed.subtests.iter().all(|c| c.status == Status::Passed));
    }

    #[test]
    fn cases_are_rendered_with_the_diagnostics_of_failures() {
        let r = parse(KUNIT_LOG);
        let mut out = String::new();
        render_subtests(&r.tests[2], 4, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "    FAIL failing_expectation");
        assert_eq!(
            lines[1],
            "        # failing_expectation: a diagnostic before the failure"
        );
        assert!(lines.contains(&"    PASS passing_case"));
        assert!(lines.contains(&"    SKIP skipped_case # SKIP skipped on purpose"));
        let mut out = String::new();
        render_subtests(&r.tests[1], 4, &mut out);
        assert!(out.contains("\n        PASS 9 words (one word too many)\n"), "{out}");
        assert!(
            !out.contains("ID 0xd3e00001"),
            "passing cases' diagnostics are not shown"
        );
    }

    #[test]
    fn output_that_stops_early_leaves_crashed_cases() {
        let cut = KUNIT_LOG.find("ok 3 demo_flags_bit_operations").unwrap();
        let r = parse(&KUNIT_LOG[..cut]);
        assert_eq!(
            names_of(&r.tests),
            ["example", "mmiolab_demo", "(subtests 3..24 never reported)"]
        );
        let demo = &r.tests[1];
        assert_eq!(demo.status, Status::Crashed);
        assert_eq!(names(demo).last(), Some(&"(subtests 3..6 never reported)"));
        assert_eq!(demo.errors, ["missing subtests 3..6 of 6", "missing result line"]);
        // The main document's plan: 24 promised, 2 there; no result line for the suite.
        assert_eq!(r.results.len(), 1);
    }

    #[test]
    fn nesting_and_plans_cannot_make_the_parser_run_away() {
        let deep = "KTAP version 1\n".to_owned() + &"  KTAP version 1\n".repeat(100_000) + "ok 1 x\n";
        let r = parse(&deep);
        assert_eq!(r.results.len(), 1);
        let mut depth = 0;
        let mut t = &r.tests[0];
        while let Some(s) = t.subtests.first() {
            depth += 1;
            t = s;
        }
        assert_eq!(depth, MAX_DEPTH - 1);
        let huge_plan = "KTAP version 1\n1..4000000000\n    KTAP version 1\n    1..4000000000\nok 1 a\n";
        let r = parse(huge_plan);
        assert_eq!(r.tests.len(), 2, "{:?}", r.tests);
        assert_eq!(r.tests[0].status, Status::Crashed);
    }

    #[test]
    fn timestamps_only_are_stripped_and_read_in_microseconds() {
        assert_eq!(stamped("[+   3.500000] ok 1 x"), ("ok 1 x", Some(3_500_000)));
        assert_eq!(stamped("[    3.19] ok 1 x\r"), ("ok 1 x", Some(3_190_000)));
        assert_eq!(stamped("[  12.1234567] ok"), ("ok", Some(12_123_456)));
        assert_eq!(stamped("[abc] ok"), ("[abc] ok", None));
        assert_eq!(stamped("[99999999999999999999.0] ok"), ("ok", None));
        assert_eq!(result_line("ok x"), None);
    }

    #[test]
    fn each_case_carries_the_times_of_its_lines() {
        let r = parse(KUNIT_LOG);
        let demo = r
            .tests
            .iter()
            .find(|t| t.name == "mmiolab_demo")
            .expect("the demo suite");
        assert_eq!(demo.ended_us, Some(3_350_301));
        let first = &demo.subtests[0];
        assert_eq!(first.name, "demo_id_reads_part_and_revision");
        assert_eq!(first.ended_us, Some(3_246_348));
        assert!(demo.started_us.is_some_and(|s| s < 3_246_348), "{:?}", demo.started_us);
    }
}
