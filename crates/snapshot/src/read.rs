//! Reading a snapshot: every file bounded, checked against the manifest, parsed strictly.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{FORMAT, FileCheck, MANIFEST, MEMORY, Manifest, PAGE, STATE, SnapshotError, State, VERSION};

/// Largest manifest read (a machine with 100,000 devices needs about 15 MB).
const MAX_MANIFEST: u64 = 64 << 20;
/// Largest state file read.
const MAX_STATE: u64 = 512 << 20;

/// A snapshot read and checked; its memory file is only named (the VMM maps it).
#[derive(Debug)]
pub struct Snapshot {
    /// The manifest.
    pub manifest: Manifest,
    /// The state.
    pub state: State,
    /// The memory file, whose size matches the manifest.
    pub memory: PathBuf,
}

/// Reads the snapshot in `dir`: the manifest, then the memory file's size, then the state
/// (size and CRC-32 first). Any mismatch is an error that names the file and what is wrong.
pub fn read(dir: &Path) -> Result<Snapshot, SnapshotError> {
    let manifest_path = dir.join(MANIFEST);
    if !dir.is_dir() {
        return Err(SnapshotError::NotASnapshot {
            dir: dir.display().to_string(),
            why: "no such directory".to_owned(),
        });
    }
    if !manifest_path.exists() {
        return Err(SnapshotError::NotASnapshot {
            dir: dir.display().to_string(),
            why: format!("it has no {MANIFEST} (a snapshot's manifest is written last: was it cut short?)"),
        });
    }
    let manifest = parse_manifest(&read_bounded(&manifest_path, MAX_MANIFEST)?, dir)?;
    let memory = dir.join(MEMORY);
    let len = std::fs::metadata(&memory)
        .map_err(|e| SnapshotError::io(&memory, e))?
        .len();
    if len != manifest.memory.bytes {
        return Err(SnapshotError::corrupt(
            &memory,
            format!(
                "{len} bytes, the manifest says {}: the file was cut or replaced",
                manifest.memory.bytes
            ),
        ));
    }
    let state_path = dir.join(STATE);
    let bytes = read_bounded(&state_path, MAX_STATE)?;
    let state = parse_state(&bytes, manifest.state, &manifest, &state_path)?;
    Ok(Snapshot {
        manifest,
        state,
        memory,
    })
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, SnapshotError> {
    let file = std::fs::File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SnapshotError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(SnapshotError::corrupt(path, format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// Parses and checks a manifest (`dir` names the snapshot in errors): the format's name and
/// version, and a memory layout whose pieces are page-aligned, inside the file, and
/// overlap neither in the file nor in the guest.
pub fn parse_manifest(bytes: &[u8], dir: &Path) -> Result<Manifest, SnapshotError> {
    let file = dir.join(MANIFEST);
    // The name and version first, so that another version is refused as such rather than
    // for a field it has and this one has not.
    #[derive(serde::Deserialize)]
    struct Head {
        format: Option<String>,
        version: Option<u32>,
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| SnapshotError::corrupt(&file, e.to_string()))?;
    if head.format.as_deref() != Some(FORMAT) {
        return Err(SnapshotError::NotASnapshot {
            dir: dir.display().to_string(),
            why: format!("its {MANIFEST} does not say \"format\": \"{FORMAT}\""),
        });
    }
    match head.version {
        Some(VERSION) => {}
        Some(found) => {
            return Err(SnapshotError::Version {
                dir: dir.display().to_string(),
                found,
            });
        }
        None => return Err(SnapshotError::corrupt(&file, "no \"version\"")),
    }
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| SnapshotError::corrupt(&file, e.to_string()))?;
    let bad = |why: String| SnapshotError::corrupt(&file, why);
    let mut in_file: Vec<(u64, u64, &str)> = Vec::new();
    let mut in_guest: Vec<(u64, u64, &str)> = Vec::new();
    for r in &m.memory.regions {
        if !r.offset.is_multiple_of(PAGE) || !r.size.is_multiple_of(PAGE) || r.size == 0 {
            return Err(bad(format!(
                "memory region `{}`: offset {:#x} and size {:#x} must be whole pages",
                r.name, r.offset, r.size
            )));
        }
        let file_end = r.offset.checked_add(r.size).filter(|&e| e <= m.memory.bytes);
        let guest_end = r.guest_addr.checked_add(r.size);
        let (Some(file_end), Some(guest_end)) = (file_end, guest_end) else {
            return Err(bad(format!(
                "memory region `{}` runs past the end of the memory file or of the address space",
                r.name
            )));
        };
        in_file.push((r.offset, file_end, &r.name));
        in_guest.push((r.guest_addr, guest_end, &r.name));
    }
    for (what, ranges) in [("in the memory file", &mut in_file), ("in guest memory", &mut in_guest)] {
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            if let [(_, end, a), (start, _, b)] = pair
                && start < end
            {
                return Err(bad(format!("memory regions `{a}` and `{b}` overlap {what}")));
            }
        }
    }
    Ok(m)
}

/// Parses a state file after checking its size and CRC-32 against `check`, and its vCPU
/// count and device names against `manifest`.
pub fn parse_state(bytes: &[u8], check: FileCheck, manifest: &Manifest, file: &Path) -> Result<State, SnapshotError> {
    if bytes.len() as u64 != check.bytes {
        return Err(SnapshotError::corrupt(
            file,
            format!(
                "{} bytes, the manifest says {}: the file was cut or replaced",
                bytes.len(),
                check.bytes
            ),
        ));
    }
    let crc = crc32fast::hash(bytes);
    if crc != check.crc32 {
        return Err(SnapshotError::corrupt(
            file,
            format!(
                "CRC-32 {crc:#010x}, the manifest says {:#010x}: the file is damaged",
                check.crc32
            ),
        ));
    }
    let state: State = serde_json::from_slice(bytes).map_err(|e| SnapshotError::corrupt(file, e.to_string()))?;
    if state.vcpus.len() != manifest.machine.vcpus as usize {
        return Err(SnapshotError::corrupt(
            file,
            format!(
                "{} vCPU states for a machine of {} vCPU(s)",
                state.vcpus.len(),
                manifest.machine.vcpus
            ),
        ));
    }
    let mut names: Vec<&str> = state.devices.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|p| p.first() == p.last()) {
        return Err(SnapshotError::corrupt(
            file,
            format!("two states for device `{}`", pair.first().copied().unwrap_or_default()),
        ));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::tests::{sample_machine, sample_state, scratch};
    use crate::{MemoryPiece, prepare_dir, write};

    fn written(name: &str) -> PathBuf {
        let dir = scratch(name);
        prepare_dir(&dir).unwrap();
        let ram = vec![1u8; 2 * PAGE as usize];
        let pieces = [MemoryPiece {
            name: "ram".into(),
            guest_addr: 0,
            bytes: &ram,
        }];
        write(&dir, sample_machine(), &sample_state(), &pieces).unwrap();
        dir
    }

    fn error(dir: &Path) -> String {
        read(dir).unwrap_err().to_string()
    }

    #[test]
    fn damaged_snapshots_are_refused_saying_what_is_wrong() {
        let dir = written("damaged");
        let d = dir.display().to_string();
        let state = std::fs::read(dir.join(STATE)).unwrap();

        std::fs::write(dir.join(STATE), &state[..state.len() - 10]).unwrap();
        let e = error(&dir);
        assert!(
            e.contains("state.json: ") && e.contains("the file was cut or replaced"),
            "{e}"
        );

        let mut flipped = state.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x01;
        std::fs::write(dir.join(STATE), &flipped).unwrap();
        let e = error(&dir);
        assert!(e.contains("the file is damaged"), "{e}");
        std::fs::write(dir.join(STATE), &state).unwrap();
        read(&dir).unwrap();

        let memory = std::fs::read(dir.join(MEMORY)).unwrap();
        std::fs::write(dir.join(MEMORY), &memory[..PAGE as usize]).unwrap();
        let e = error(&dir);
        assert!(
            e.ends_with("memory.bin: 4096 bytes, the manifest says 8192: the file was cut or replaced"),
            "{e}"
        );
        std::fs::write(dir.join(MEMORY), &memory).unwrap();

        let manifest = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
        std::fs::write(dir.join(MANIFEST), manifest.replace("\"version\": 1", "\"version\": 2")).unwrap();
        assert_eq!(
            error(&dir),
            format!("{d}: snapshot format version 2, but this mmiolab reads version 1: take the snapshot again")
        );
        std::fs::write(dir.join(MANIFEST), &manifest[..manifest.len() / 2]).unwrap();
        let e = error(&dir);
        assert!(e.contains("manifest.json: EOF while parsing"), "{e}");
        std::fs::write(dir.join(MANIFEST), manifest.replace(FORMAT, "something-else")).unwrap();
        assert_eq!(
            error(&dir),
            format!("{d} is not a snapshot: its manifest.json does not say \"format\": \"mmiolab-snapshot\"")
        );
        std::fs::write(
            dir.join(MANIFEST),
            manifest.replace("\"offset\": 0", "\"offset\": 4097"),
        )
        .unwrap();
        let e = error(&dir);
        assert!(
            e.contains("memory region `ram`: offset 0x1001 and size 0x2000 must be whole pages"),
            "{e}"
        );
        std::fs::remove_file(dir.join(MANIFEST)).unwrap();
        assert_eq!(
            error(&dir),
            format!(
                "{d} is not a snapshot: it has no manifest.json (a snapshot's manifest is written last: was it cut short?)"
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(error(&dir), format!("{d} is not a snapshot: no such directory"));
    }

    #[test]
    fn overlapping_memory_regions_are_refused() {
        let mut m = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            mmiolab: "0".into(),
            machine: sample_machine(),
            memory: crate::MemoryLayout {
                bytes: 3 * PAGE,
                regions: vec![
                    crate::MemoryRegion {
                        name: "ram".into(),
                        guest_addr: 0,
                        size: 2 * PAGE,
                        offset: 0,
                    },
                    crate::MemoryRegion {
                        name: "w".into(),
                        guest_addr: PAGE,
                        size: PAGE,
                        offset: 2 * PAGE,
                    },
                ],
            },
            state: FileCheck { bytes: 0, crc32: 0 },
        };
        let text = |m: &Manifest| serde_json::to_vec(m).unwrap();
        let e = parse_manifest(&text(&m), Path::new("s")).unwrap_err().to_string();
        assert_eq!(
            e,
            "s/manifest.json: memory regions `ram` and `w` overlap in guest memory"
        );
        m.memory.regions[1].guest_addr = 4 * PAGE;
        m.memory.regions[1].offset = PAGE;
        let e = parse_manifest(&text(&m), Path::new("s")).unwrap_err().to_string();
        assert_eq!(
            e,
            "s/manifest.json: memory regions `ram` and `w` overlap in the memory file"
        );
        m.memory.regions[1].offset = 3 * PAGE;
        let e = parse_manifest(&text(&m), Path::new("s")).unwrap_err().to_string();
        assert!(e.contains("runs past the end of the memory file"), "{e}");
    }

    /// A small deterministic generator (xorshift), so the property tests need no crate and
    /// fail the same way every time.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Mutations of a valid input: cut, bytes flipped, a span repeated, a digit swapped.
    fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
        let mut b = good.to_vec();
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 => {
                    let at = rng.below(b.len());
                    if let Some(x) = b.get_mut(at) {
                        *x ^= 1 << rng.below(8);
                    }
                }
                2 => {
                    let at = rng.below(b.len());
                    let len = rng.below(64).min(b.len() - at.min(b.len()));
                    let span: Vec<u8> = b.get(at..at + len).unwrap_or_default().to_vec();
                    b.splice(at..at, span);
                }
                _ => {
                    let at = rng.below(b.len());
                    if let Some(x) = b.get_mut(at).filter(|x| x.is_ascii_digit()) {
                        *x = b'0' + rng.below(10) as u8;
                    }
                }
            }
        }
        b
    }

    #[test]
    fn mutated_manifests_and_states_never_panic_the_reader() {
        let dir = written("mutated");
        let manifest = std::fs::read(dir.join(MANIFEST)).unwrap();
        let state = std::fs::read(dir.join(STATE)).unwrap();
        let good = parse_manifest(&manifest, &dir).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut refused = 0;
        for _ in 0..3000 {
            let m = mutate(&mut rng, &manifest);
            refused += usize::from(parse_manifest(&m, &dir).is_err());
            // A state with a matching size and CRC reaches the JSON parser and the checks.
            let s = mutate(&mut rng, &state);
            let check = FileCheck {
                bytes: s.len() as u64,
                crc32: crc32fast::hash(&s),
            };
            let _ = parse_state(&s, check, &good, Path::new("state.json"));
        }
        assert!(refused > 1000, "most mutations are refused ({refused})");
        // And through the files: the reader never panics on any of them either.
        for _ in 0..200 {
            std::fs::write(dir.join(MANIFEST), mutate(&mut rng, &manifest)).unwrap();
            std::fs::write(dir.join(STATE), mutate(&mut rng, &state)).unwrap();
            let _ = read(&dir);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
