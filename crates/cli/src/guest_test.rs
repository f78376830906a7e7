//! `mmiolab test`: boot a Linux guest (or read the console log of a nested run), collect
//! its KTAP results, check that the guest's /proc/iomem and /proc/ioports agree with the
//! host's bus tree, and report one line per test plus JUnit XML.

use std::fmt::Write as _;

use mmiolab_vmm::Platform;
use mmiolab_vmm::mmiolab_bus::{AddressSpace, RegionKind};

use crate::ktap::{GuestReport, TestResult};

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
