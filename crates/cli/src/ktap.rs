//! Reading a guest's console: the KTAP results the test init prints, and the
//! `/proc/iomem` and `/proc/ioports` dumps between `mmiolab: begin/end` markers.

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
}

/// Drops the printk timestamp (`[    3.500000] `) and carriage returns.
fn strip(line: &str) -> &str {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix('[')
        && let Some(end) = rest.find("] ")
        && rest[..end].trim().chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return &rest[end + 2..];
    }
    line
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

/// Parses a console log. Only the top-level KTAP document counts: everything before its
/// `KTAP version` line (the kernel's boot messages) is ignored.
pub fn parse(console: &str) -> GuestReport {
    let mut report = GuestReport::default();
    let mut in_ktap = false;
    let mut pending: Vec<String> = Vec::new();
    let mut dump: Option<&'static str> = None;
    for raw in console.lines() {
        let line = strip(raw);
        match (dump, line) {
            (_, "mmiolab: begin /proc/iomem") => dump = Some("iomem"),
            (_, "mmiolab: begin /proc/ioports") => dump = Some("ioports"),
            (_, "mmiolab: end /proc/iomem" | "mmiolab: end /proc/ioports") => dump = None,
            (Some("iomem"), l) => report.iomem.push(l.to_owned()),
            (Some(_), l) => report.ioports.push(l.to_owned()),
            (None, "KTAP version 1") => in_ktap = true,
            (None, l) if in_ktap => {
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

    #[test]
    fn timestamps_only_are_stripped() {
        assert_eq!(strip("[    3.19] ok 1 x\r"), "ok 1 x");
        assert_eq!(strip("[abc] ok"), "[abc] ok");
        assert_eq!(result_line("ok x"), None);
    }
}
