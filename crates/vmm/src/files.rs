//! The files mmiolab reads and writes, under two rules (docs/reliability.md):
//!
//! - **Inputs are bounded and checked before use.** [`open_input`] opens without waiting (a
//!   named pipe would block `open` until a writer came), then looks at what it opened: only
//!   a regular file of at most the documented size for its kind passes, so a directory, a
//!   FIFO, `/dev/zero` or a runaway file is refused at once, in words.
//! - **Outputs never clobber inputs.** [`check_output`] refuses an output that is the same
//!   file as an input (same device and inode, or the same canonical path), and
//!   [`write_atomically`] writes a whole file through a temporary file in the same
//!   directory, renamed only when complete, so a failed write leaves the old file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Largest machine file read.
pub const MAX_MACHINE_FILE: u64 = 1 << 20;
/// Largest console log `mmiolab test --from-log` reads.
pub const MAX_CONSOLE_LOG: u64 = 64 << 20;

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be opened or inspected.
    #[error("cannot open {}: {error}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`: anyhow would print it twice).
        error: io::Error,
    },
    /// It is not a regular file.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead, in words ("a directory").
        kind: &'static str,
    },
    /// It is larger than its kind may be.
    #[error("{} is {size} bytes, more than the {} {limit_is}", path.display(), bytes(*limit))]
    TooBig {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// What the limit is, after it ("a machine file may have", "of RAM the machine has").
        limit_is: String,
    },
    /// Reading it failed.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`: anyhow would print it twice).
        error: io::Error,
    },
    /// An output names one of the run's inputs.
    #[error("{} is {input_what} ({}): refusing to write {output_what} over it", output.display(), input.display())]
    IsInput {
        /// The output path as given.
        output: PathBuf,
        /// What the output is ("the trace").
        output_what: String,
        /// The input it is.
        input: PathBuf,
        /// What that input is ("the firmware").
        input_what: String,
    },
    /// An output cannot be a file there.
    #[error("{} cannot be written: {reason}", path.display())]
    BadOutput {
        /// The output path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing an output failed.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// Why (in the message, so not also a `source()`: anyhow would print it twice).
        error: io::Error,
    },
}

impl FileError {
    /// The reason alone, without the path (for messages that name the file already).
    pub fn reason(&self) -> String {
        match self {
            FileError::Open { error, .. } => format!("cannot open it: {error}"),
            FileError::NotRegular { kind, .. } => format!("it is {kind}, not a regular file"),
            FileError::TooBig {
                size, limit, limit_is, ..
            } => format!("it is {size} bytes, more than the {} {limit_is}", bytes(*limit)),
            FileError::Read { error, .. } => format!("cannot read it: {error}"),
            FileError::IsInput {
                output_what,
                input_what,
                input,
                ..
            } => format!(
                "it is {input_what} ({}): refusing to write {output_what} over it",
                input.display()
            ),
            FileError::BadOutput { reason, .. } => format!("it cannot be written: {reason}"),
            FileError::Write { error, .. } => format!("cannot write it: {error}"),
        }
    }
}

/// `n` bytes in the largest unit that divides it (for limits, which are round).
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// What a file that is not regular is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// An input opened and checked: a regular file of `len` bytes.
#[derive(Debug)]
pub struct InputFile {
    /// The open file (reads are from this inode, whatever happens to the path later).
    pub file: File,
    /// Its size when it was checked.
    pub len: u64,
    /// The path, for messages.
    pub path: PathBuf,
}

/// Opens `path` and checks that it is a regular file of at most `limit` bytes (`limit_is`
/// says what the limit is, for the message: "a machine file may have").
pub fn open_input(path: &Path, limit: u64, limit_is: &str) -> Result<InputFile, FileError> {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer; a regular file's reads
    // do not care. O_NOCTTY: a terminal named by mistake must not become ours.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|error| FileError::Open {
            path: path.to_owned(),
            error,
        })?;
    let meta = file.metadata().map_err(|error| FileError::Open {
        path: path.to_owned(),
        error,
    })?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(FileError::TooBig {
            path: path.to_owned(),
            size: meta.len(),
            limit,
            limit_is: limit_is.to_owned(),
        });
    }
    Ok(InputFile {
        file,
        len: meta.len(),
        path: path.to_owned(),
    })
}

/// Reads all of `path`, checked as [`open_input`] does; a file that grows past `limit`
/// while being read is refused too.
pub fn read_input(path: &Path, limit: u64, limit_is: &str) -> Result<Vec<u8>, FileError> {
    let input = open_input(path, limit, limit_is)?;
    let mut data = Vec::with_capacity(usize::try_from(input.len).unwrap_or(0));
    input
        .file
        .take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|error| FileError::Read {
            path: path.to_owned(),
            error,
        })?;
    if data.len() as u64 > limit {
        return Err(FileError::TooBig {
            path: path.to_owned(),
            size: data.len() as u64,
            limit,
            limit_is: limit_is.to_owned(),
        });
    }
    Ok(data)
}

/// Whether `a` and `b` name the same file: the same device and inode when both exist,
/// else the same canonical path (of the parent directory, plus the name).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    let canonical = |p: &Path| -> Option<PathBuf> {
        let name = p.file_name()?;
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(parent).ok()?.join(name))
    };
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

/// Checks that output `path` (a `what`, "the trace") is none of `inputs` (each with what
/// it is, "the firmware") and can be a file: not a directory, in a directory that exists.
pub fn check_output(path: &Path, what: &str, inputs: &[(String, PathBuf)]) -> Result<(), FileError> {
    if let Some((input_what, input)) = inputs.iter().find(|(_, i)| same_file(path, i)) {
        return Err(FileError::IsInput {
            output: path.to_owned(),
            output_what: what.to_owned(),
            input: input.clone(),
            input_what: input_what.clone(),
        });
    }
    let bad = |reason: &str| FileError::BadOutput {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(bad("it is a directory")),
        Ok(_) => Ok(()),
        Err(_) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if path.file_name().is_none() {
                return Err(bad("it names no file"));
            }
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(bad(&format!("{} is not a directory", dir.display()))),
                Err(e) => Err(bad(&format!("its directory {}: {e}", dir.display()))),
            }
        }
    }
}

/// Opens output `path` for writing, truncating it, without waiting for a reader if it is
/// a named pipe (that is refused: nobody would be reading).
pub fn create_output(path: &Path) -> Result<File, FileError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|error| FileError::Write {
            path: path.to_owned(),
            error: if error.raw_os_error() == Some(libc::ENXIO) {
                io::Error::new(error.kind(), "it is a named pipe that nobody reads")
            } else {
                error
            },
        })?;
    // Writes should wait for a slow reader rather than fail: clear O_NONBLOCK again.
    // SAFETY: fcntl on a descriptor this function owns, with flags it read back.
    let cleared = unsafe {
        use std::os::fd::AsRawFd;
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(FileError::Write {
            path: path.to_owned(),
            error: io::Error::last_os_error(),
        });
    }
    Ok(file)
}

/// Writes `data` to `out` (a `what`, "the JUnit report") whole or not at all: through a
/// temporary file in the same directory, renamed over `out` only once complete, so a
/// failed write (a full disk) leaves the old file as it was. Refuses to write over any of
/// `inputs`. A symbolic link is written through. `out` that exists and is not a regular
/// file (`/dev/stdout`, a named pipe, `/dev/full`) is written directly: it cannot be
/// renamed over and holds nothing to keep. When `out` already holds exactly `data` it is
/// left alone (its mtime too).
pub fn write_atomically(out: &Path, data: &[u8], what: &str, inputs: &[(String, PathBuf)]) -> Result<(), FileError> {
    check_output(out, what, inputs)?;
    let werr = |path: &Path, error: io::Error| FileError::Write {
        path: path.to_owned(),
        error,
    };
    let target = match std::fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(out).map_err(|e| werr(out, e))?,
        _ => out.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() => {
            let mut f = create_output(&target)?;
            return f.write_all(data).and_then(|()| f.flush()).map_err(|e| werr(out, e));
        }
        Ok(m) if m.len() == data.len() as u64 && std::fs::read(&target).is_ok_and(|old| old == data) => {
            return Ok(());
        }
        _ => {}
    }
    let name = target.file_name().ok_or_else(|| FileError::BadOutput {
        path: out.to_owned(),
        reason: "it names no file".to_owned(),
    })?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.mmiolab-{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| werr(&tmp, e))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| werr(out, e))?;
        std::fs::rename(&tmp, &target).map_err(|e| werr(out, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mmiolab-files-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn inputs_that_are_not_regular_files_or_too_big_are_refused_in_words() {
        let d = dir("inputs");
        let e = read_input(&d, 100, "a machine file may have").unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = read_input(&fifo, 100, "a machine file may have")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("is a named pipe (FIFO), not a regular file"), "{e}");
        let e = read_input(Path::new("/dev/zero"), 100, "a machine file may have")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/dev/zero is a character device, not a regular file");
        let big = d.join("big");
        File::create(&big).unwrap().set_len(2 << 20).unwrap();
        let e = read_input(&big, MAX_MACHINE_FILE, "a machine file may have")
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("big is 2097152 bytes, more than the 1 MiB a machine file may have"),
            "{e}"
        );
        std::fs::write(d.join("ok"), "x").unwrap();
        assert_eq!(read_input(&d.join("ok"), 1, "a machine file may have").unwrap(), b"x");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_also_through_a_link() {
        let d = dir("clobber");
        let input = d.join("fw.elf");
        std::fs::write(&input, "firmware").unwrap();
        std::os::unix::fs::symlink(&input, d.join("link")).unwrap();
        let inputs = vec![("the firmware".to_owned(), input.clone())];
        for out in [input.clone(), d.join("link"), d.join(".").join("fw.elf")] {
            let e = check_output(&out, "the trace", &inputs).unwrap_err().to_string();
            assert!(
                e.contains("is the firmware") && e.contains("refusing to write the trace over it"),
                "{e}"
            );
            assert!(write_atomically(&out, b"x", "the trace", &inputs).is_err());
        }
        assert_eq!(std::fs::read_to_string(&input).unwrap(), "firmware");
        let e = check_output(&d, "the trace", &inputs).unwrap_err().to_string();
        assert!(e.ends_with("cannot be written: it is a directory"), "{e}");
        check_output(&d.join("new"), "the trace", &inputs).unwrap();
        let e = check_output(&d.join("no/such/dir/x"), "the trace", &inputs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("its directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_write_devices_directly() {
        let d = dir("atomic");
        let out = d.join("out");
        write_atomically(&out, b"one", "x", &[]).unwrap();
        write_atomically(&out, b"two", "x", &[]).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["out"], "no temporary file left");
        let e = write_atomically(Path::new("/dev/full"), b"x", "x", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot write /dev/full: No space left on device"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
