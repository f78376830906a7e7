//! The body of the fuzz target `ktap` (fuzz/fuzz_targets/ktap.rs), here so that `cargo fuzz`
//! and the corpus replay test (tests/fuzz_corpus.rs, on the stable toolchain) run exactly
//! the same code. docs/fuzzing.md says how to run it.

use crate::ktap::{GuestReport, parse};

/// Target `ktap`: the bytes, as (lossy) UTF-8, are a guest's console log. The parser must
/// not panic, must keep what it returns within what it read, and must read a log with
/// `\r\n` line ends as it reads the same log with `\n`.
pub fn ktap(data: &[u8]) {
    let console = String::from_utf8_lossy(data);
    let report = parse(&console);
    check(&console, &report);
    let crlf = console.replace('\n', "\r\n");
    assert_eq!(parse(&crlf), report, "\\r\\n line ends read differently");
}

fn check(console: &str, report: &GuestReport) {
    let lines = console.lines().count();
    let details: usize = report.results.iter().map(|r| r.details.len()).sum();
    assert!(
        report.results.len() + details + report.iomem.len() + report.ioports.len() <= lines,
        "more lines out than in"
    );
    for r in &report.results {
        assert_eq!(r.name, r.name.trim(), "name not trimmed");
        if let Some(d) = &r.directive {
            assert_eq!(d, d.trim(), "directive not trimmed");
        }
        for d in &r.details {
            assert!(!d.contains('\n'), "a detail holds a line end");
        }
    }
    // Every test of the tree took a line, but for one placeholder per parent for the
    // subtests its plan promised and the output never had.
    fn nodes(tests: &[crate::ktap::Test]) -> usize {
        tests.iter().map(|t| 1 + nodes(&t.subtests)).sum()
    }
    assert!(nodes(&report.tests) <= 2 * lines + 1, "more tests than lines");
    for l in report.iomem.iter().chain(&report.ioports) {
        assert!(!l.contains('\n'), "a dump line holds a line end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_takes_empty_and_short_inputs() {
        for data in [
            &b""[..],
            b"\n",
            b"\r",
            b"KTAP version 1\nok 1 a\n",
            b"[ 1.0] ",
            &[0xff; 16],
        ] {
            ktap(data);
        }
    }
}
