//! Writing a snapshot: memory, then state, then the manifest, each through a temporary
//! file renamed into place, the old manifest removed first. A snapshot cut short by a
//! crash therefore has no manifest, and is refused as such, rather than pair a new memory
//! file with an old manifest.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::{
    FORMAT, FileCheck, MANIFEST, MEMORY, MachineSummary, Manifest, MemoryLayout, MemoryRegion, PAGE, STATE,
    SnapshotError, State, VERSION,
};

/// One piece of guest memory to save.
pub struct MemoryPiece<'a> {
    /// `ram` or `device.window`.
    pub name: String,
    /// Guest-physical address.
    pub guest_addr: u64,
    /// Its bytes (whole pages).
    pub bytes: &'a [u8],
}

/// Makes `dir` ready to receive a snapshot, before the guest starts: created if missing;
/// an existing directory must be empty or hold a snapshot (which will be replaced).
pub fn prepare_dir(dir: &Path) -> Result<(), SnapshotError> {
    let refused = |why: &str| SnapshotError::Refused {
        dir: dir.display().to_string(),
        why: why.to_owned(),
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if dir.join(MANIFEST).exists() || entries.next().is_none() {
                Ok(())
            } else {
                Err(refused(
                    "not empty and not a snapshot: give a new or empty directory, or an old snapshot to replace",
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| SnapshotError::write_io(dir, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(refused("not a directory")),
        Err(e) => Err(SnapshotError::write_io(dir, e)),
    }
}

/// Writes the snapshot of `machine` into `dir` (made ready by [`prepare_dir`]): `memory`
/// into the memory file, `state`, then the manifest, which it returns.
pub fn write(
    dir: &Path,
    machine: MachineSummary,
    state: &State,
    memory: &[MemoryPiece<'_>],
) -> Result<Manifest, SnapshotError> {
    let manifest_path = dir.join(MANIFEST);
    match std::fs::remove_file(&manifest_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SnapshotError::write_io(&manifest_path, e)),
    }
    let layout = write_memory(&dir.join(MEMORY), memory)?;
    let state_bytes = serde_json::to_vec_pretty(state).map_err(|e| SnapshotError::Corrupt {
        file: STATE.to_owned(),
        why: format!("cannot be encoded: {e}"),
    })?;
    write_file(&dir.join(STATE), |f| f.write_all(&state_bytes))?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        mmiolab: env!("CARGO_PKG_VERSION").to_owned(),
        machine,
        memory: layout,
        state: FileCheck {
            bytes: state_bytes.len() as u64,
            crc32: crc32fast::hash(&state_bytes),
        },
    };
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(|e| SnapshotError::Corrupt {
        file: MANIFEST.to_owned(),
        why: format!("cannot be encoded: {e}"),
    })?;
    text.push(b'\n');
    write_file(&manifest_path, |f| f.write_all(&text))?;
    Ok(manifest)
}

/// Writes `path` through `path.tmp`: written, synced, renamed over `path`.
fn write_file(path: &Path, body: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<(), SnapshotError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let result = (|| {
        let mut f = File::create(tmp)?;
        body(&mut f)?;
        f.sync_all()?;
        std::fs::rename(tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        SnapshotError::write_io(path, e)
    })
}

/// The memory file: each piece at the next page-aligned offset; pages of zeros are left as
/// holes, so a mostly empty guest makes a small file.
fn write_memory(path: &Path, pieces: &[MemoryPiece<'_>]) -> Result<MemoryLayout, SnapshotError> {
    let mut regions = Vec::with_capacity(pieces.len());
    let mut end = 0u64;
    for p in pieces {
        let size = p.bytes.len() as u64;
        if !size.is_multiple_of(PAGE) {
            return Err(SnapshotError::Refused {
                dir: path.display().to_string(),
                why: format!("memory region `{}` is {size:#x} bytes, not whole pages", p.name),
            });
        }
        regions.push(MemoryRegion {
            name: p.name.clone(),
            guest_addr: p.guest_addr,
            size,
            offset: end,
        });
        end += size;
    }
    write_file(path, |f| {
        f.set_len(end)?;
        for (p, r) in pieces.iter().zip(&regions) {
            write_nonzero_runs(f, p.bytes, r.offset)?;
        }
        Ok(())
    })?;
    Ok(MemoryLayout { bytes: end, regions })
}

/// Writes the runs of pages of `bytes` that are not all zeros at `offset` on.
fn write_nonzero_runs(f: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    let mut run_start: Option<usize> = None;
    let page = PAGE as usize;
    let pages = bytes.len() / page;
    for i in 0..=pages {
        let zero = bytes
            .get(i * page..(i + 1) * page)
            .is_none_or(|p| p.iter().all(|&b| b == 0));
        match (zero, run_start) {
            (false, None) => run_start = Some(i * page),
            (true, Some(start)) => {
                let run = bytes.get(start..i * page).unwrap_or_default();
                f.write_all_at(run, offset + start as u64)?;
                run_start = None;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{DeviceEntry, DeviceSummary, VcpuState, VmState, read};

    pub(crate) fn sample_state() -> State {
        State {
            clock_ns: 123_456,
            trace_seq: Some(42),
            vm: VmState {
                pic_master: "00".repeat(8),
                pic_slave: "11".repeat(8),
                ioapic: "22".repeat(8),
                pit: "33".repeat(8),
                clock: "44".repeat(8),
                tsc_khz: Some(2_000_000),
            },
            vcpus: vec![VcpuState {
                mp_state: "00000000".into(),
                regs: "ab".repeat(16),
                sregs: "cd".repeat(16),
                xsave: Some("ef".repeat(16)),
                fpu: None,
                xcrs: None,
                debugregs: Some("01".repeat(8)),
                lapic: "02".repeat(16),
                msrs: vec![(0x10, 99), (0x6e0, 5)],
                events: "03".repeat(8),
            }],
            devices: vec![DeviceEntry {
                name: "seq".into(),
                saved: mmiolab_devices::SavedState {
                    kind: "counter".into(),
                    version: 1,
                    state: serde_json::json!(7),
                },
            }],
        }
    }

    pub(crate) fn sample_machine() -> MachineSummary {
        MachineSummary {
            vcpus: 1,
            memory_bytes: 1 << 20,
            devices: vec![DeviceSummary {
                name: "seq".into(),
                model: "counter".into(),
                layout: None,
                regions: vec!["pio 0x310+0x2".into()],
                irqs: vec![],
            }],
        }
    }

    pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mmiolab-snapshot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_written_snapshot_reads_back_with_its_memory_sparse() {
        let dir = scratch("roundtrip");
        prepare_dir(&dir).unwrap();
        let mut ram = vec![0u8; 16 * PAGE as usize];
        ram[5 * PAGE as usize] = 0xaa;
        ram[16 * PAGE as usize - 1] = 0xbb;
        let window = vec![0x77u8; PAGE as usize];
        let pieces = [
            MemoryPiece {
                name: "ram".into(),
                guest_addr: 0,
                bytes: &ram,
            },
            MemoryPiece {
                name: "beh.fast".into(),
                guest_addr: 0xd000_1000,
                bytes: &window,
            },
        ];
        let written = write(&dir, sample_machine(), &sample_state(), &pieces).unwrap();
        let snap = read(&dir).unwrap();
        assert_eq!(snap.manifest, written);
        assert_eq!(snap.state, sample_state());
        assert_eq!(snap.manifest.memory.regions[1].offset, 16 * PAGE);
        let mem = std::fs::read(&snap.memory).unwrap();
        assert_eq!(&mem[..16 * PAGE as usize], &ram[..]);
        assert_eq!(&mem[16 * PAGE as usize..], &window[..]);
        // Writing again over it replaces it; a directory holding something else is refused.
        prepare_dir(&dir).unwrap();
        write(&dir, sample_machine(), &sample_state(), &pieces).unwrap();
        let other = scratch("busy");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "mine").unwrap();
        let e = prepare_dir(&other).unwrap_err().to_string();
        assert!(
            e.ends_with("not empty and not a snapshot: give a new or empty directory, or an old snapshot to replace"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }
}
