//! Reporting the register checker's findings (`--check`, docs/checker.md): one line each
//! on stderr, a JSON file, a result of `mmiolab test`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mmiolab_vmm::check::{Finding, Rule};
use serde_json::{Value, json};

use crate::ktap::TestResult;

/// Prints each finding on stderr (deduplicated by the checker, with counts); returns how
/// many are not allowed by the machine file.
pub fn report(findings: &[Finding]) -> usize {
    for f in findings {
        eprintln!("mmiolab: check: {f}");
    }
    let failing = findings.iter().filter(|f| !f.allowed).count();
    let allowed = findings.len() - failing;
    eprintln!("mmiolab: check: {failing} finding(s), {allowed} more allowed by the machine file");
    failing
}

/// The findings as a JSON document: `{"findings":[...]}`, each with the keys of
/// docs/checker.md.
pub fn to_json(findings: &[Finding]) -> Value {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.name(),
                "device": f.device,
                "region": f.region,
                "register": f.register,
                "field": f.field,
                "space": f.space,
                "addr": format!("{:#x}", f.addr),
                "vcpu": f.vcpu,
                "count": f.count,
                "allowed": f.allowed,
                "module": f.module,
                "test": f.test,
                "rip": f.rip.map(|r| format!("{r:#x}")),
            })
        })
        .collect();
    json!({ "findings": list })
}

/// Reads findings back from [`to_json`]'s document (`mmiolab test --findings`, a nested
/// run's report).
pub fn from_json(text: &str) -> Result<Vec<Finding>> {
    let doc: Value = serde_json::from_str(text).context("not a findings document (JSON)")?;
    let list = doc
        .get("findings")
        .and_then(Value::as_array)
        .context("no `findings` array")?;
    let hex = |v: &Value| {
        v.as_str()
            .and_then(|s| s.strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    list.iter()
        .map(|f| {
            let rule = f
                .get("rule")
                .and_then(Value::as_str)
                .context("a finding without a rule")?;
            Ok(Finding {
                rule: rule.parse()?,
                device: text(f, "device").unwrap_or_default(),
                region: text(f, "region").unwrap_or_default(),
                register: text(f, "register"),
                field: text(f, "field"),
                space: if f.get("space").and_then(Value::as_str) == Some("pio") {
                    "pio"
                } else {
                    "mmio"
                },
                addr: f.get("addr").and_then(hex).context("a finding without an address")?,
                vcpu: f.get("vcpu").and_then(Value::as_u64).map(|v| v as u32),
                count: f.get("count").and_then(Value::as_u64).unwrap_or(1),
                allowed: f.get("allowed").and_then(Value::as_bool).unwrap_or(false),
                module: text(f, "module"),
                test: text(f, "test"),
                rip: f.get("rip").and_then(hex),
            })
        })
        .collect()
}

/// Writes [`to_json`] to `path` as every report is written: atomically, and never over one
/// of the run's `inputs`.
pub fn write_json(path: &Path, findings: &[Finding], inputs: &[(String, PathBuf)]) -> Result<()> {
    let text = serde_json::to_string_pretty(&to_json(findings)).context("formatting the findings")? + "\n";
    Ok(mmiolab_vmm::files::write_atomically(
        path,
        text.as_bytes(),
        "the findings report",
        inputs,
    )?)
}

/// The `register-check` result of `mmiolab test`: it fails when a finding (of any rule,
/// the guest agent's too) is not allowed by the machine file, and lists every finding (its
/// JUnit failure carries them). Which test made which finding is judged by
/// [`agent_results`].
pub fn test_result(findings: &[Finding]) -> TestResult {
    TestResult {
        name: "register-check".to_owned(),
        ok: findings.iter().all(|f| f.allowed),
        directive: None,
        details: findings.iter().map(ToString::to_string).collect(),
    }
}

/// How a finding starts among a failed guest test's details.
pub const FINDING_DETAIL: &str = "# checker: ";

/// A guest test during which the checker found what the machine file does not allow fails
/// itself, not only `register-check`: each such finding becomes a line of its details (and
/// of its JUnit failure). Results of other names (the host's own) are left alone.
pub fn fail_tests_with_findings(results: &mut [TestResult], findings: &[Finding]) {
    for f in findings.iter().filter(|f| !f.allowed) {
        let Some(test) = f.test.as_deref() else { continue };
        if let Some(r) = results.iter_mut().find(|r| r.name == test) {
            r.ok = false;
            r.details.push(format!("{FINDING_DETAIL}{f}"));
        }
    }
}

/// What a guest test prints, among its KTAP diagnostics, to have the host check the
/// checker's findings about it (with the guest agent: those of its module, the test's name,
/// and those of user space while it ran): `# mmiolab-agent-expect: RULE DEVICE[.REGISTER]`,
/// one line per expected finding, or `# mmiolab-agent-expect: none`.
pub const AGENT_EXPECT_TAG: &str = "mmiolab-agent-expect:";

/// What the guest agent prints when it reports to the host.
pub const AGENT_ACTIVE: &str = "mmiolab_agent: reporting to the host";

/// For each guest test that printed `mmiolab-agent-expect:` lines, a host result
/// `host: findings of TEST`: the findings (of every rule) whose module is the test's name,
/// or that user space made while the test ran (its module is none, its test this one:
/// a script test's `/dev/mem` poke), must be exactly the expected ones (rule and device, or
/// device.register), each attributed to that test. `findings` is `None` when the run had
/// no checker: the results are then skipped (`# SKIP`), not passed or failed.
pub fn agent_results(
    report: &crate::ktap::GuestReport,
    console: &str,
    findings: Option<&[Finding]>,
) -> Vec<TestResult> {
    let active = console.contains(AGENT_ACTIVE);
    let mut results = Vec::new();
    for test in &report.results {
        let expect: Vec<&str> = test
            .details
            .iter()
            .filter_map(|l| l.strip_prefix("# ").and_then(|l| l.strip_prefix(AGENT_EXPECT_TAG)))
            .map(str::trim)
            .collect();
        if expect.is_empty() {
            continue;
        }
        let mut want: Vec<String> = expect.iter().filter(|e| **e != "none").map(|e| e.to_string()).collect();
        want.sort();
        want.dedup();
        let mut details = Vec::new();
        let mut directive = None;
        let ok = match findings {
            None => {
                directive =
                    Some("SKIP the run had no checker (--check, or --from-log with --findings FILE)".to_owned());
                true
            }
            Some(_) if !active => {
                details.push(format!(
                    "the guest agent did not report (no `{AGENT_ACTIVE}` on the console)"
                ));
                false
            }
            Some(all) => {
                let name = Some(test.name.as_str());
                let mine: Vec<&Finding> = all
                    .iter()
                    .filter(|f| {
                        f.module.as_deref() == name
                            || (f.module.is_none() && f.rule == Rule::DevmemPoke && f.test.as_deref() == name)
                    })
                    .collect();
                let mut got: Vec<String> = mine
                    .iter()
                    .map(|f| match &f.register {
                        Some(r) => format!("{} {}.{r}", f.rule.name(), f.device),
                        None => format!("{} {}", f.rule.name(), f.device),
                    })
                    .collect();
                got.sort();
                got.dedup();
                let wrong_test: Vec<&&Finding> = mine
                    .iter()
                    .filter(|f| f.test.as_deref() != Some(test.name.as_str()))
                    .collect();
                details.push(format!(
                    "expected: {}",
                    if want.is_empty() {
                        "none".to_owned()
                    } else {
                        want.join(", ")
                    }
                ));
                details.push(format!(
                    "found: {}",
                    if got.is_empty() {
                        "none".to_owned()
                    } else {
                        got.join(", ")
                    }
                ));
                details.extend(mine.iter().map(|f| f.to_string()));
                for f in &wrong_test {
                    details.push(format!("attributed to test {:?}, not {}: {f}", f.test, test.name));
                }
                got == want && wrong_test.is_empty()
            }
        };
        results.push(TestResult {
            name: format!("host: findings of {}", test.name),
            ok,
            directive,
            details,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: Rule, allowed: bool) -> Finding {
        Finding {
            rule,
            device: "chk".to_owned(),
            region: "chk".to_owned(),
            register: Some("FIFO".to_owned()),
            field: Some("q".to_owned()),
            space: "mmio",
            addr: 0xd000_0008,
            vcpu: Some(0),
            count: 3,
            allowed,
            module: None,
            test: None,
            rip: None,
        }
    }

    #[test]
    fn allowed_findings_do_not_fail_the_test() {
        let ok = test_result(&[finding(Rule::ReadEmptyFifo, true)]);
        assert!(ok.ok);
        assert_eq!(ok.details.len(), 1);
        let bad = test_result(&[finding(Rule::ReadEmptyFifo, true), finding(Rule::Hole, false)]);
        assert!(!bad.ok);
        assert_eq!(bad.details.len(), 2);
    }

    #[test]
    fn json_carries_every_key() {
        let v = to_json(&[finding(Rule::WriteFullFifo, false)]);
        assert_eq!(
            v,
            json!({"findings": [{
                "rule": "write-full-fifo", "device": "chk", "region": "chk", "register": "FIFO",
                "field": "q", "space": "mmio", "addr": "0xd0000008", "vcpu": 0, "count": 3,
                "allowed": false, "module": null, "test": null, "rip": null
            }]})
        );
        assert_eq!(
            from_json(&v.to_string()).unwrap(),
            vec![finding(Rule::WriteFullFifo, false)]
        );
    }
}

#[cfg(test)]
mod agent_tests {
    use super::*;

    fn agent_finding(rule: Rule, register: Option<&str>, module: &str, test: &str) -> Finding {
        Finding {
            rule,
            device: "apidev".to_owned(),
            region: "apidev@d0020000".to_owned(),
            register: register.map(str::to_owned),
            field: None,
            space: "mmio",
            addr: 0xd002_0000,
            vcpu: Some(0),
            count: 1,
            allowed: false,
            module: Some(module.to_owned()),
            test: Some(test.to_owned()),
            rip: Some(0xffff_ffff_c000_1234),
        }
    }

    const CONSOLE: &str = "mmiolab_agent: reporting to the host at port 0x5a0 (11 probes)\n\
        KTAP version 1\n1..2\n\
        \x20   # mmiolab-agent-expect: unclaimed-access apidev.ID\n\
        ok 1 agent_unclaimed\n\
        \x20   # mmiolab-agent-expect: none\n\
        ok 2 agent_clean\n";

    #[test]
    fn a_test_with_a_finding_not_allowed_fails_itself() {
        let result = |name: &str| TestResult {
            name: name.to_owned(),
            ok: true,
            directive: None,
            details: Vec::new(),
        };
        let mut results = vec![result("io_accessors"), result("short"), result("register-check")];
        let mut allowed = agent_finding(Rule::WriteReadOnly, Some("ID"), "short", "short");
        allowed.allowed = true;
        let found = [
            agent_finding(Rule::ReadWriteOnly, Some("RAISE"), "io_accessors", "io_accessors"),
            allowed,
            // no test: nothing to blame but register-check
            Finding {
                test: None,
                ..agent_finding(Rule::Hole, None, "io_accessors", "io_accessors")
            },
        ];
        fail_tests_with_findings(&mut results, &found);
        assert!(!results[0].ok);
        assert_eq!(results[0].details.len(), 1);
        assert!(
            results[0].details[0].starts_with("# checker: "),
            "{:?}",
            results[0].details
        );
        assert!(results[0].details[0].contains("RAISE"), "{:?}", results[0].details);
        assert!(results[1].ok, "an allowed finding fails nothing");
        assert!(results[2].ok);
    }

    #[test]
    fn expected_agent_findings_pass_and_others_fail() {
        let report = crate::ktap::parse(CONSOLE);
        let good = [agent_finding(
            Rule::UnclaimedAccess,
            Some("ID"),
            "agent_unclaimed",
            "agent_unclaimed",
        )];
        let r = agent_results(&report, CONSOLE, Some(&good));
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.ok), "{r:?}");
        assert_eq!(r[0].name, "host: findings of agent_unclaimed");
        // a finding of the clean module, a wrong register, a wrong test: failures
        let extra = [
            good[0].clone(),
            agent_finding(Rule::LeakedClaim, None, "agent_clean", "agent_clean"),
        ];
        assert!(!agent_results(&report, CONSOLE, Some(&extra))[1].ok);
        let wrong = [agent_finding(
            Rule::UnclaimedAccess,
            Some("SCRATCH"),
            "agent_unclaimed",
            "agent_unclaimed",
        )];
        assert!(!agent_results(&report, CONSOLE, Some(&wrong))[0].ok);
        let other_test = [agent_finding(Rule::UnclaimedAccess, Some("ID"), "agent_unclaimed", "x")];
        assert!(!agent_results(&report, CONSOLE, Some(&other_test))[0].ok);
        // a register rule's finding of the module counts as well
        let register = [
            good[0].clone(),
            agent_finding(Rule::WriteReadOnly, Some("ID"), "agent_unclaimed", "agent_unclaimed"),
        ];
        assert!(!agent_results(&report, CONSOLE, Some(&register))[0].ok);
        // user space's /dev/mem poke during the test is the test's; another rule's finding
        // of no module (the kernel's own code) is not
        let mut poke = agent_finding(Rule::DevmemPoke, Some("ID"), "x", "agent_clean");
        poke.module = None;
        let r = agent_results(&report, CONSOLE, Some(&[good[0].clone(), poke.clone()]));
        assert!(r[0].ok && !r[1].ok, "{r:?}");
        let mut kernel = poke;
        kernel.rule = Rule::Hole;
        assert!(agent_results(&report, CONSOLE, Some(&[good[0].clone(), kernel]))[1].ok);
        // no checker: skipped; no agent on the console: failed
        assert!(
            agent_results(&report, CONSOLE, None)
                .iter()
                .all(|r| r.ok && r.directive.as_deref().is_some_and(|d| d.starts_with("SKIP")))
        );
        let quiet = CONSOLE.replace("reporting", "idle");
        assert!(agent_results(&report, &quiet, Some(&good)).iter().all(|r| !r.ok));
    }

    #[test]
    fn agent_findings_fail_the_register_check_unless_allowed() {
        let mut f = agent_finding(Rule::UnclaimedAccess, Some("ID"), "m", "t");
        let r = test_result(std::slice::from_ref(&f));
        assert!(!r.ok);
        assert_eq!(r.details.len(), 1);
        f.allowed = true;
        assert!(test_result(&[f]).ok);
    }
}
