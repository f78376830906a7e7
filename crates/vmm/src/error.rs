//! Errors of the VMM library.

use std::path::PathBuf;

/// Why a VM could not be built or run. (What the guest does wrong ends the VM with a
/// [`mmiolab_devices::StopReason`], not with this.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The machine description is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// /dev/kvm cannot be opened.
    #[error("cannot open /dev/kvm: {0} (is KVM available, and may this user open it?)")]
    KvmOpen(kvm_ioctls::Error),
    /// A KVM ioctl failed.
    #[error("{0} failed: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    /// Guest memory could not be set up.
    #[error("guest memory: {0}")]
    Memory(String),
    /// An input file could not be used (missing, not a regular file, too large).
    #[error(transparent)]
    Input(Box<crate::files::FileError>),
    /// An output could not be created, or would overwrite an input.
    #[error(transparent)]
    Output(Box<crate::files::FileError>),
    /// The firmware or kernel could not be loaded.
    #[error("cannot load {path}: {reason}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The machine has nothing to run.
    #[error("nothing to run: give firmware or a kernel (in [machine] or on the command line)")]
    NoPayload,
    /// Boot structures could not be written.
    #[error("boot set-up: {0}")]
    BootSetup(String),
    /// A host resource (thread, eventfd, trace file, signal handler) could not be had.
    #[error("{0}: {1}")]
    Host(&'static str, std::io::Error),
    /// A snapshot cannot be restored into this machine, or a snapshot option is refused
    /// (docs/snapshot.md).
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// KVM would not give the state a snapshot needs.
    #[error("taking the snapshot: {0}")]
    SnapshotSave(String),
    /// A snapshot's files could not be written or read.
    #[error(transparent)]
    SnapshotFile(#[from] mmiolab_snapshot::SnapshotError),
    /// The seccomp filters could not be built or installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Result of the VMM library.
pub type Result<T> = std::result::Result<T, Error>;
