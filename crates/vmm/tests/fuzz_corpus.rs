//! Replays every file of fuzz/corpus/<target>/ for the VMM's targets through the bodies the
//! fuzz targets run (`mmiolab_vmm::fuzzing`); fuzz/replay.rs says how.

#[path = "../../../fuzz/replay.rs"]
mod replay;

use mmiolab_vmm::fuzzing;
use replay::replay;

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
