//! Fuzz target `bus_devices`: see mmiolab_vmm::fuzzing::bus_devices and docs/fuzzing.md.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mmiolab_vmm::fuzzing::bus_devices(data));
