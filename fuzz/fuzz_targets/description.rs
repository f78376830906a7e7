//! Fuzz target `description`: see mmiolab_regmodel::fuzzing::description and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_regmodel::fuzzing::description(data));
