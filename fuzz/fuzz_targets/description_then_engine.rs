//! Fuzz target `description_then_engine`: see mmiolab_regmodel::fuzzing::description_then_engine and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_regmodel::fuzzing::description_then_engine(data));
