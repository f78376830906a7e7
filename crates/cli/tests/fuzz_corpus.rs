//! Replays every file of fuzz/corpus/ktap/ through the body the fuzz target runs
//! (`mmiolab_cli::fuzzing::ktap`); fuzz/replay.rs says how.

#[path = "../../../fuzz/replay.rs"]
mod replay;

#[test]
fn ktap_corpus() {
    replay::replay("ktap", mmiolab_cli::fuzzing::ktap);
}
