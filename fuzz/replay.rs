//! The replay of a committed fuzz corpus on the stable toolchain, without cargo-fuzz,
//! shared by the `fuzz_corpus` tests of crates/regmodel, crates/vmm and crates/cli (each
//! includes this file with `#[path]`): every file of fuzz/corpus/<target>/ goes through the
//! body the fuzz target runs, so the seeds and every crash or hang once found (and fixed)
//! stay fixed. docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One input may take this long in a debug build (the fuzzers allow 5 s in release).
const SLOW: Duration = Duration::from_secs(20);

/// The files of fuzz/corpus/`target`/, sorted; there must be some.
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

/// Runs `body` on every file of `target`'s corpus: no panic, none slower than [`SLOW`].
pub fn replay(target: &str, body: fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(|| body(&data));
        let took = start.elapsed();
        assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
        assert!(took < SLOW, "{target}: {} took {took:?}", file.display());
    }
}
