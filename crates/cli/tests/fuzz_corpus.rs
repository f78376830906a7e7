//! Replays every file of fuzz/corpus/ktap/ through the body the fuzz target runs
//! (`mmiolab_cli::fuzzing::ktap`), on the stable toolchain and without cargo-fuzz.
//! docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One input may take this long in a debug build (the fuzzers allow 5 s in release).
const SLOW: Duration = Duration::from_secs(20);

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files
}

#[test]
fn ktap_corpus() {
    for file in corpus("ktap") {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(|| mmiolab_cli::fuzzing::ktap(&data));
        let took = start.elapsed();
        assert!(outcome.is_ok(), "ktap: {} panicked", file.display());
        assert!(took < SLOW, "ktap: {} took {took:?}", file.display());
    }
}
