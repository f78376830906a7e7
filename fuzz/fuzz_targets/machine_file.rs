//! Fuzz target `machine_file`: see mmiolab_vmm::fuzzing::machine_file and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_vmm::fuzzing::machine_file(data));
