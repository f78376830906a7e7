//! Loading what the VM runs and deciding how its boot vCPU starts.

pub mod cpu;
mod firmware;
mod kernel;

pub use cpu::{EntryMode, EntryRegs};
pub use firmware::load_firmware;
pub use kernel::{KernelImage, load_kernel};
