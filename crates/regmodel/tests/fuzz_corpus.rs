//! Replays every file of fuzz/corpus/<target>/ through the same bodies the fuzz targets run
//! (`mmiolab_regmodel::fuzzing`), on the stable toolchain and without cargo-fuzz: the seeds
//! and every crash or hang once found (and fixed) stay fixed. docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mmiolab_regmodel::fuzzing;

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

fn replay(target: &str, body: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(|| body(&data));
        let took = start.elapsed();
        assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
        assert!(took < SLOW, "{target}: {} took {took:?}", file.display());
    }
}

#[test]
fn description_corpus() {
    replay("description", fuzzing::description);
}

#[test]
fn engine_corpus() {
    replay("engine", fuzzing::engine);
}

#[test]
fn description_then_engine_corpus() {
    replay("description_then_engine", fuzzing::description_then_engine);
}
