//! Devices described in a TOML file: registers and fields with side effects, FIFOs, memory
//! windows, effects (now or later) and interrupt outputs. No Rust and no rebuild per device.
//!
//! - [`schema`]: the file as written (serde).
//! - [`compile`]: checks it and resolves every name into a [`Model`].
//! - [`engine`]: the register state machine: `read`/`write` at an offset and width, with
//!   side effects, pure (no locks, no fds, no clock of its own).
//! - [`header`]: the C header of a model (`#define`s for offsets, fields, values).
//! - [`device`]: a [`DescribedDevice`] puts a model and its state behind one lock on the
//!   bus, drives interrupt lines, schedules delayed effects and traces by register name.
//! - [`fuzzing`]: the bodies of the fuzz targets (fuzz/), shared with the corpus replay test.
//!
//! docs/devices.md is the reference for the format.

#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

pub mod bundled;
pub mod compile;
pub mod device;
pub mod engine;
pub mod expr;
pub mod fuzzing;
pub mod header;
pub mod schema;
pub mod svd;

pub use compile::{DescriptionError, Model, compile, compile_shifted, compile_text, load};
pub use device::DescribedDevice;
