//! The Linux boot benchmark's short mode (issue 14): one repetition of each runner, so the
//! benchmark (guest/bench/, `mmiolab-bench linux`) cannot rot. It asserts that both
//! mmiolab and QEMU microvm booted the same kernel and initramfs to the init's line and
//! that the report has a row for each; the figures themselves belong in
//! docs/performance.md, never in an assertion (the machine is shared and noisy).
//!
//! Takes a minute or two where Linux runs nested (QEMU TCG), like the Linux tier.

use std::path::PathBuf;
use std::process::Command;

use mmiolab_bench::linux::parse_samples;
use mmiolab_bench::{build_mmiolab, workspace_root};

#[test]
fn linux_boot_benchmark_short_mode_boots_both_runners() {
    // The mmiolab of this test's profile: the short mode checks the benchmark, not speed.
    let mmiolab = build_mmiolab(cfg!(not(debug_assertions))).expect("building mmiolab");
    let out: PathBuf = workspace_root().join("target/bench/linux-short");
    let status = Command::new(env!("CARGO_BIN_EXE_mmiolab-bench"))
        .args(["linux", "--reps", "1", "--mmiolab"])
        .arg(&mmiolab)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("running mmiolab-bench linux");
    assert!(
        status.success(),
        "mmiolab-bench linux --reps 1 failed ({status}); see {}",
        out.display()
    );
    let samples = parse_samples(&std::fs::read_to_string(out.join("samples.jsonl")).expect("samples.jsonl"));
    let mut runners: Vec<&str> = samples.iter().map(|s| s.runner.as_str()).collect();
    runners.sort_unstable();
    assert_eq!(runners, ["mmiolab", "qemu"], "one boot of each runner");
    for s in &samples {
        assert!(
            s.first_line.contains("Linux version"),
            "{}: first console line {:?}",
            s.runner,
            s.first_line
        );
        assert!(s.init_ms.is_some(), "{} never printed the init's line", s.runner);
    }
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for row in ["| mmiolab |", "| qemu |", "Ratio mmiolab / qemu"] {
        assert!(report.contains(row), "report.md lacks `{row}`:\n{report}");
    }
}
