//! The mmiolab virtual machine.
//!
//! A trapped access travels: [`vcpu`] (KVM_RUN returns an MMIO or I/O exit) →
//! [`exit::AccessHandler`] (one call per access, one per element for string I/O) →
//! [`mmiolab_bus::Bus`] (O(log n) lookup in its sorted dispatch table) → the device model →
//! back into the `kvm_run` page for reads → KVM_RUN again. See docs/architecture.md.

#![deny(missing_docs)]

pub mod agent;
pub mod boot;
pub mod check;
pub mod config;
pub mod error;
mod events;
pub mod exit;
pub mod fdt;
pub mod files;
pub mod fuzzing;
pub mod layout;
pub mod machine;
pub mod output;
pub mod platform;
pub mod seccomp;
pub mod signals;
pub mod snapshot;
pub mod trace;
pub mod vcpu;

pub use config::MachineConfig;
pub use error::{Error, Result};
pub use machine::{RunOptions, RunReport, run};
pub use mmiolab_bus;
pub use mmiolab_devices::{OutputFailure, StopReason};
pub use platform::Platform;
