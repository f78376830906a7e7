//! Replays every file of fuzz/corpus/<target>/ for the register model's targets through
//! the bodies the fuzz targets run (`mmiolab_regmodel::fuzzing`); fuzz/replay.rs says how.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use mmiolab_regmodel::fuzzing;
use replay::replay;

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
