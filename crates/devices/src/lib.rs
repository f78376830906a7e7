//! Device models for mmiolab.
//!
//! Every model implements vm-device's `DeviceMmio` and/or `DevicePio` (`&self`, so the bus
//! can be shared by all vCPU threads without a lock) and keeps its own state behind its own
//! lock. A model sees an offset relative to its region and the access width as
//! `data.len()`; the bus has already checked that the access lies inside the region, but
//! models still index with `get` so that no guest access can panic the VMM.

#![deny(missing_docs)]
// Tests may index: a panic there is a test failure, not a guest-triggered crash.
#![cfg_attr(test, allow(clippy::indexing_slicing))]

mod control;
mod counter;
mod exit;
mod i8042;
mod irq;
mod pvpanic;
mod record;
mod regfile;
mod sched;
mod serial;
mod state;
mod sysctl;

pub use control::{OutputFailure, StopReason, VmControl};
pub use counter::Counter;
pub use exit::{EXIT_PORT, ExitDevice};
pub use i8042::I8042;
pub use irq::{IrqChip, IrqLine, IrqTrigger};
pub use pvpanic::PvPanic;
pub use record::{AccessRecord, Dir, EventRecord, FieldValue, Note, Space, TraceSink};
pub use regfile::{REGFILE_ID, RegFile};
pub use sched::{ClientId, Clock, Deferred, ManualClock, MonotonicClock, Scheduler};
pub use serial::Serial;
pub use state::{DeviceState, SavedState, Snapshot, StateError, from_hex, to_hex};
pub use sysctl::{POWER_OFF, SYSCTL_SIZE, SysCtl};

use std::sync::{Mutex, MutexGuard};

/// The bytes of an access as a little-endian number (the first 8 of them).
#[inline]
pub fn le_u64(data: &[u8]) -> u64 {
    // The widths of a bus access without the loop; any other length byte by byte.
    match *data {
        [a] => return u64::from(a),
        [a, b] => return u64::from(u16::from_le_bytes([a, b])),
        [a, b, c, d] => return u64::from(u32::from_le_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => return u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => {}
    }
    let mut le = [0u8; 8];
    for (b, v) in le.iter_mut().zip(data) {
        *b = *v;
    }
    u64::from_le_bytes(le)
}

/// Locks a device's state. A poisoned lock means an earlier access panicked; the state is
/// plain data, so keep serving rather than turn one bug into a VMM crash per access.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
