//! Rate limits for log lines a guest can trigger.
//!
//! A guest decides how often it touches an unmapped address or misuses a device, so a log
//! line per such access would let it fill the host's disk (Firecracker PR #5799, Cloud
//! Hypervisor PR #4787 fixed exactly that). Every log line reachable from a guest access goes
//! through [`log_limited!`](crate::log_limited): per call site, the first [`BURST`] events
//! are logged, then only the events whose number is a power of two, each saying how many
//! there have been. However long the guest keeps at it, a call site logs at most
//! `BURST + 64` lines.
//!
//! When the level is off nothing is counted, formatted or allocated: one level comparison,
//! as for a plain `log::debug!`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Events of one call site logged before the limit sets in.
pub const BURST: u64 = 10;

/// The event counter of one call site.
#[derive(Debug, Default)]
pub struct RateLimit {
    count: AtomicU64,
}

impl RateLimit {
    /// A counter at zero (usable in a `static`).
    pub const fn new() -> RateLimit {
        RateLimit {
            count: AtomicU64::new(0),
        }
    }

    /// Counts one event; returns its number (from 1) when it may be logged.
    pub fn hit(&self) -> Option<u64> {
        let n = self.count.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        (n <= BURST || n.is_power_of_two()).then_some(n)
    }

    /// Events counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// What a rate-limited line adds after its message: nothing within the burst; then how
/// many events there have been, so a reader knows lines were left out.
#[derive(Debug, Clone, Copy)]
pub struct Occurrence(pub u64);

impl std::fmt::Display for Occurrence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            n if n < BURST => Ok(()),
            BURST => write!(
                f,
                " ({BURST} so far; from here on only the 16th, 32nd, 64th... are logged)"
            ),
            n => write!(f, " ({n} so far; the ones since the previous line were not logged)"),
        }
    }
}

/// `log::log!` for a line a guest can trigger: rate-limited per call site (see the
/// module documentation).
#[macro_export]
macro_rules! log_limited {
    ($level:expr, $($arg:tt)+) => {{
        if log::log_enabled!($level) {
            static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
            if let Some(n) = LIMIT.hit() {
                log::log!($level, "{}{}", format_args!($($arg)+), $crate::ratelimit::Occurrence(n));
            }
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_powers_of_two() {
        let limit = RateLimit::new();
        let logged: Vec<u64> = (0..100_000).filter_map(|_| limit.hit()).collect();
        let mut want: Vec<u64> = (1..=BURST).collect();
        want.extend((4..17).map(|k| 1u64 << k));
        assert_eq!(logged, want);
        assert_eq!(limit.count(), 100_000);
    }

    #[test]
    fn the_suffix_says_when_lines_are_left_out() {
        assert_eq!(Occurrence(3).to_string(), "");
        assert!(Occurrence(BURST).to_string().contains("only the 16th, 32nd"));
        assert_eq!(
            Occurrence(64).to_string(),
            " (64 so far; the ones since the previous line were not logged)"
        );
    }
}
