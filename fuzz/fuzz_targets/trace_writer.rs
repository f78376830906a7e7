//! Fuzz target `trace_writer`: see mmiolab_vmm::fuzzing::trace_writer and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_vmm::fuzzing::trace_writer(data));
