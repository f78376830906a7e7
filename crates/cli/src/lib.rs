//! The parts of the `mmiolab` command that are reached from outside the binary: the KTAP
//! parser (for the fuzzers, docs/fuzzing.md) and the bodies of its fuzz targets. The
//! command itself is `src/main.rs`.

#![deny(missing_docs)]

pub mod fuzzing;
pub mod ktap;
