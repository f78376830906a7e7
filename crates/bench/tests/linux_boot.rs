//! The Linux boot benchmark's short mode (issue 14): one repetition of each runner, so the
//! benchmark (guest/bench/, `mmiolab-bench linux`) cannot rot. It asserts that both
//! mmiolab and QEMU microvm booted the same kernel and initramfs to the init's line and the
//! first test's line, that mmiolab saved a snapshot at the init's line before the tests and a restore of it reached
//! the first test's line (and not the init's, printed before the snapshot), and that the
//! report has a row for each and the restore's ratios; the figures themselves belong in
//! docs/performance.md, never in an assertion (the machine is shared and noisy).
//!
//! Takes a minute or two where Linux runs nested (QEMU TCG), like the Linux tier.

use std::path::PathBuf;
use std::process::Command;

use mmiolab_bench::linux::{RESTORE, SNAPSHOT, parse_samples};
use mmiolab_bench::{build_mmiolab, workspace_root};

#[test]
fn linux_boot_benchmark_short_mode_boots_both_runners_and_restores() {
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
    assert_eq!(
        runners,
        ["mmiolab", RESTORE, SNAPSHOT, "qemu"],
        "one run of each runner"
    );
    for s in &samples {
        // The restore starts in the middle of the init's marker line: no kernel line of its own.
        if s.runner != RESTORE {
            assert!(
                s.first_line.contains("Linux version"),
                "{}: first console line {:?}",
                s.runner,
                s.first_line
            );
        }
        let (init, test) = match s.runner.as_str() {
            SNAPSHOT => (true, false),
            RESTORE => (false, true),
            _ => (true, true),
        };
        assert_eq!(s.init_ms.is_some(), init, "{}: the init's line: {s:?}", s.runner);
        assert_eq!(s.test_ms.is_some(), test, "{}: the first test line: {s:?}", s.runner);
    }
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    for row in [
        "| mmiolab |",
        "| qemu |",
        "| mmiolab-snapshot |",
        "| mmiolab-restore |",
        "Ratio mmiolab / qemu",
        "| mmiolab-restore / mmiolab |",
        "| mmiolab-restore / qemu |",
        "The snapshot, taken once per repetition",
    ] {
        assert!(report.contains(row), "report.md lacks `{row}`:\n{report}");
    }
}
