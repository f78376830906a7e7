//! Replays every file of fuzz/corpus/<target>/ for the VMM's targets through the bodies the
//! fuzz targets run (`mmiolab_vmm::fuzzing`), on the stable toolchain and without
//! cargo-fuzz: the seeds and every crash or hang once found (and fixed) stay fixed.
//! docs/fuzzing.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mmiolab_vmm::fuzzing;

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
fn machine_file_corpus() {
    replay("machine_file", fuzzing::machine_file);
}

#[test]
fn payload_corpus() {
    replay("payload", fuzzing::payload);
}

#[test]
fn trace_writer_corpus() {
    replay("trace_writer", fuzzing::trace_writer);
}

#[test]
fn bus_devices_corpus() {
    replay("bus_devices", fuzzing::bus_devices);
}
