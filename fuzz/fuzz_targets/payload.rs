//! Fuzz target `payload`: see mmiolab_vmm::fuzzing::payload and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_vmm::fuzzing::payload(data));
