//! Device state for snapshots: each model saves what it holds and restores it into a freshly
//! built instance of the same machine (docs/snapshot.md).
//!
//! The state is a JSON value tagged with a kind and a version that the model owns, so a
//! model can change its state's shape by raising its version, and a snapshot of another
//! model or version is refused with both named instead of being misread.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A device's saved state: which model wrote it, in which version of that model's state,
/// and the state itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// The model's state kind (`regfile`, `counter`, `serial-16550`, `described`).
    pub kind: String,
    /// The version of that kind's state.
    pub version: u32,
    /// The state, as the model writes it.
    pub state: serde_json::Value,
}

/// Why a saved state could not be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The state was written by another model.
    #[error("the snapshot holds a `{found}` state, but the device is a `{expected}`")]
    Kind {
        /// The device's kind.
        expected: String,
        /// The snapshot's.
        found: String,
    },
    /// The state is of a version this build does not read.
    #[error("`{kind}` state version {found} is not readable by this mmiolab (it reads version {expected})")]
    Version {
        /// The kind.
        kind: String,
        /// The version this build reads.
        expected: u32,
        /// The snapshot's.
        found: u32,
    },
    /// The state does not have the shape of its kind and version.
    #[error("malformed `{kind}` state: {why}")]
    Malformed {
        /// The kind.
        kind: String,
        /// What is wrong.
        why: String,
    },
}

impl StateError {
    /// A [`StateError::Malformed`] of `kind`.
    pub fn malformed(kind: &str, why: impl Into<String>) -> StateError {
        StateError::Malformed {
            kind: kind.to_owned(),
            why: why.into(),
        }
    }
}

/// A device model whose state a snapshot carries. Called with every vCPU stopped and the
/// VMM thread's event loop not running, so nothing else touches the device meanwhile.
pub trait Snapshot {
    /// The state's Rust shape.
    type State: Serialize + DeserializeOwned;
    /// The state's kind: the model's name.
    const KIND: &'static str;
    /// The state's version; raise it when `State` changes shape.
    const VERSION: u32;
    /// The device's state now.
    fn save(&self) -> Self::State;
    /// Puts the device into `state`. Interrupt lines take the saved levels without a new
    /// edge: the interrupt controller's own state (restored separately) holds what was
    /// already delivered.
    fn restore(&self, state: Self::State) -> Result<(), StateError>;
}

/// The object-safe face of [`Snapshot`], for a list of devices of different models.
pub trait DeviceState: Send + Sync {
    /// The device's state, tagged.
    fn save_state(&self) -> SavedState;
    /// Restores a tagged state, refusing another kind or version.
    fn restore_state(&self, saved: &SavedState) -> Result<(), StateError>;
}

impl<T: Snapshot + Send + Sync> DeviceState for T {
    fn save_state(&self) -> SavedState {
        SavedState {
            kind: T::KIND.to_owned(),
            version: T::VERSION,
            // A derived Serialize of plain data into a Value cannot fail (no non-string
            // map keys, no I/O); Null would be refused on restore, never misread.
            state: serde_json::to_value(self.save()).unwrap_or(serde_json::Value::Null),
        }
    }

    fn restore_state(&self, saved: &SavedState) -> Result<(), StateError> {
        if saved.kind != T::KIND {
            return Err(StateError::Kind {
                expected: T::KIND.to_owned(),
                found: saved.kind.clone(),
            });
        }
        if saved.version != T::VERSION {
            return Err(StateError::Version {
                kind: T::KIND.to_owned(),
                expected: T::VERSION,
                found: saved.version,
            });
        }
        let state = T::State::deserialize(&saved.state).map_err(|e| StateError::malformed(T::KIND, e.to_string()))?;
        self.restore(state)
    }
}

use serde::Deserialize as _;

/// Bytes as lower-case hex, the way states carry byte arrays (readable, diffable).
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of a hex string written by [`to_hex`] (either case); `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let raw = s.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return None;
    }
    raw.chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => Some(digit(hi)? << 4 | digit(lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cell(std::sync::Mutex<u32>);

    impl Snapshot for Cell {
        type State = u32;
        const KIND: &'static str = "cell";
        const VERSION: u32 = 2;
        fn save(&self) -> u32 {
            *self.0.lock().unwrap()
        }
        fn restore(&self, state: u32) -> Result<(), StateError> {
            *self.0.lock().unwrap() = state;
            Ok(())
        }
    }

    #[test]
    fn a_state_round_trips_and_other_kinds_and_versions_are_refused() {
        let a = Cell(std::sync::Mutex::new(7));
        let saved = a.save_state();
        assert_eq!(saved.kind, "cell");
        let b = Cell(std::sync::Mutex::new(0));
        b.restore_state(&saved).unwrap();
        assert_eq!(b.save(), 7);
        let mut other = saved.clone();
        other.kind = "regfile".into();
        assert_eq!(
            b.restore_state(&other).unwrap_err().to_string(),
            "the snapshot holds a `regfile` state, but the device is a `cell`"
        );
        let mut newer = saved.clone();
        newer.version = 3;
        assert_eq!(
            b.restore_state(&newer).unwrap_err().to_string(),
            "`cell` state version 3 is not readable by this mmiolab (it reads version 2)"
        );
        let mut bad = saved;
        bad.state = serde_json::json!("seven");
        assert!(
            b.restore_state(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("malformed `cell` state: invalid type")
        );
    }

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert_eq!(from_hex("0A"), Some(vec![10]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("é"), None);
    }
}
