//! Reporting the register checker's findings (`--check`, docs/checker.md): one line each
//! on stderr, a JSON file, a result of `mmiolab test`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mmiolab_vmm::check::Finding;
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
            })
        })
        .collect();
    json!({ "findings": list })
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

/// The `register-check` result of `mmiolab test`: it fails when a finding is not allowed,
/// and lists every finding (its JUnit failure carries them).
pub fn test_result(findings: &[Finding]) -> TestResult {
    TestResult {
        name: "register-check".to_owned(),
        ok: findings.iter().all(|f| f.allowed),
        directive: None,
        details: findings.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_vmm::check::Rule;

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
                "allowed": false
            }]})
        );
    }
}
