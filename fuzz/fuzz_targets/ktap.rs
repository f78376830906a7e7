//! Fuzz target `ktap`: see mmiolab_cli::fuzzing::ktap and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_cli::fuzzing::ktap(data));
