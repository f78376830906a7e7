//! mmiolab's trapped-access benchmark: one payload (`firmware/asm/pvh_bench.S`), four
//! runners (a raw KVM loop, mmiolab, mmiolab with a trace, QEMU microvm), wall time and
//! user-space instructions per exit, start-up time and peak RSS. See docs/performance.md.

#![deny(missing_docs)]

pub mod bench;
pub mod callgrind;
pub mod components;
pub mod kinds;
pub mod linux;
pub mod proc;
pub mod rawloop;
pub mod report;
pub mod runner;
pub mod scale;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The workspace root (this crate sits in `crates/bench`).
pub fn workspace_root() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), std::path::Path::to_path_buf)
}

/// The machine file of the mmiolab runners.
pub fn machine_file() -> PathBuf {
    workspace_root().join("tests/machines/bench.toml")
}

/// The payload every runner boots: `$MMIOLAB_BENCH_PAYLOAD` if set, else the `pvh_bench`
/// ELF that the firmware crate assembled.
pub fn default_payload() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MMIOLAB_BENCH_PAYLOAD") {
        return Ok(PathBuf::from(p));
    }
    mmiolab_firmware::elf("pvh_bench").context("the firmware crate built no `pvh_bench` payload")
}

/// Builds the `mmiolab` binary with `$CARGO` (optimised when `release`) and returns its
/// path, so a benchmark or a test never measures a stale binary. Without `$CARGO` (not run
/// by cargo), falls back to `mmiolab` next to this program.
pub fn build_mmiolab(release: bool) -> Result<PathBuf> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().context("no directory")?;
        // target/<profile>/mmiolab-bench, or target/<profile>/deps/<test> for tests.
        for d in [dir, dir.parent().unwrap_or(dir)] {
            let p = d.join("mmiolab");
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!("no mmiolab binary next to {}; pass --mmiolab PATH", exe.display());
    };
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--package",
            "mmiolab",
            "--bin",
            "mmiolab",
            "--message-format=json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().context("running cargo build for mmiolab")?;
    if !out.status.success() {
        bail!("cargo build --package mmiolab failed: {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "mmiolab")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo built no mmiolab executable")
}
