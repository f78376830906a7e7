//! `cargo xtask <task>`: the project's entry points, so a newcomer needs two commands.
//!
//! - `demo`: install what is missing, build, and run the bundled default machine.
//! - `test`: formatting, clippy, and the whole test suite (unit, bare-metal KVM, Linux).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  demo    build mmiolab and run the bundled demo machine (a bare-metal guest whose MMIO and
          port accesses are trapped and traced to target/demo-trace.jsonl)
  test    cargo fmt --check, cargo clippy -D warnings, and every test in the workspace
";

fn main() -> Result<()> {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("demo") => demo(),
        Some("test") => test(),
        Some("-h" | "--help" | "help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd` in the workspace root, failing with its command line if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(root());
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn demo() -> Result<()> {
    run(cargo().args(["build", "--release", "--package", "mmiolab"]))?;
    let firmware = mmiolab_firmware::elf("demo").context("the demo firmware was not built")?;
    let trace = root().join("target/demo-trace.jsonl");
    eprintln!("xtask: machine:");
    run(Command::new(root().join("target/release/mmiolab")).args([
        "tree",
        "--config",
        "tests/machines/baremetal.toml",
    ]))?;
    run(Command::new(root().join("target/release/mmiolab"))
        .args([
            "run",
            "--config",
            "tests/machines/baremetal.toml",
            "--timeout",
            "60",
            "--firmware",
        ])
        .arg(&firmware)
        .arg("--trace")
        .arg(&trace))?;
    eprintln!("xtask: every trapped access is in {}", trace.display());
    Ok(())
}

fn test() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))
}
