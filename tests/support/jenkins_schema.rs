//! The schema of the JUnit format quick-junit targets (the Jenkins xUnit plugin's
//! `junit-10.xsd`, as PyPI's pytest 9.2.0 source distribution ships it for its own tests),
//! which `.ci/run` puts under $MMIOLAB_TOOLS (default ~/.cache/mmiolab/tools), and xmllint
//! (Debian's libxml2-utils), which `.ci/run` installs: for the tests that validate a JUnit
//! report (tests/junit_schema.rs, tests/linux.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where .ci/run puts the schema.
pub fn schema() -> PathBuf {
    std::env::var_os("MMIOLAB_TOOLS")
        .map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mmiolab/tools"),
            PathBuf::from,
        )
        .join("junit-10.xsd")
}

/// Why a report cannot be validated here, if it cannot.
pub fn missing() -> Option<String> {
    if Command::new("xmllint").arg("--version").output().is_err() {
        return Some("xmllint is not installed (.ci/run installs libxml2-utils)".to_owned());
    }
    (!schema().is_file()).then(|| {
        format!(
            "{} is missing (.ci/run takes it from PyPI's pytest 9.2.0 source distribution)",
            schema().display()
        )
    })
}

/// Whether xmllint finds `report` valid against the schema, and what it said.
pub fn validate(report: &Path) -> std::io::Result<(bool, String)> {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(report)
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}
