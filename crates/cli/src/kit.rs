//! The guest kit: the files of this repository's guest/ that `mmiolab guest` and `mmiolab
//! test --nested` use (the kernel build script, config fragment and patches, the test
//! initramfs's init and KTAP helpers, the static helpers' sources, the nested harness),
//! carried in the binary so that an installed `mmiolab` needs nothing from a checkout.
//! They are written once per kit version into `$MMIOLAB_CACHE/kit/<hash>/` (the same
//! layout as guest/), where the scripts run as they do from a checkout.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One file of the kit: its path under guest/, its text, whether it is executable.
pub struct KitFile {
    /// Path under guest/ (and under the extracted kit).
    pub path: &'static str,
    /// Contents.
    pub text: &'static str,
    /// A script to run (mode 0755) rather than a file to read (0644).
    pub executable: bool,
}

macro_rules! kit {
    ($($path:literal $exec:literal),* $(,)?) => {
        &[$(KitFile {
            path: $path,
            text: include_str!(concat!("../../../guest/", $path)),
            executable: $exec,
        }),*]
    };
}

/// Every file of the kit.
pub const FILES: &[KitFile] = kit![
    "lib/common.sh" false,
    "lib/qemu.sh" false,
    "kernel/build.sh" true,
    "kernel/config.fragment" false,
    "kernel/patches/0001-of-early-flattree-prompt.patch" false,
    "kernel/patches/0002-x86-dt-ioapic-skip-check-timer.patch" false,
    "initramfs/user-init" true,
    "initramfs/ktap.sh" false,
    "agent/mmiolab_agent.c" false,
    "agent/Kbuild" false,
    "userspace/mmiolab-exit.c" false,
    "userspace/mmiolab-insmod.c" false,
    "nested/build-l1.sh" true,
    "nested/run-l1.sh" true,
    "nested/l1-init" true,
    "nested/host-tsc-khz.c" false,
    "run-machine.sh" true,
];

/// The kit file at `path` (under guest/).
pub fn file(path: &str) -> Option<&'static KitFile> {
    FILES.iter().find(|f| f.path == path)
}

/// The text of the kit file at `path`; an error names a path the kit does not carry (a
/// mistake of this binary's, which the tests below rule out for the paths it uses).
pub fn text(path: &str) -> anyhow::Result<&'static str> {
    file(path)
        .map(|f| f.text)
        .ok_or_else(|| anyhow::anyhow!("the guest kit of this mmiolab has no {path}"))
}

/// `$MMIOLAB_CACHE`, else `$HOME/.cache/mmiolab` (as guest/lib/common.sh).
pub fn cache_dir() -> PathBuf {
    if let Some(c) = std::env::var_os("MMIOLAB_CACHE").filter(|c| !c.is_empty()) {
        return PathBuf::from(c);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/mmiolab")
}

/// A hash of `parts` for cache directory names (stable for one build of mmiolab, which is
/// all a cache key of files it carries needs).
pub fn short_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// Writes the kit into the cache (once per kit version) and returns its directory.
pub fn extract() -> std::io::Result<PathBuf> {
    let key = short_hash(FILES.iter().flat_map(|f| [f.path.as_bytes(), f.text.as_bytes()]));
    let parent = cache_dir().join("kit");
    let dir = parent.join(&key);
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    // Written beside it and renamed into place: a concurrent run sees all of it or none.
    let tmp = parent.join(format!("{key}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for f in FILES {
        write_file(&tmp, f)?;
    }
    std::fs::File::create(tmp.join(".complete"))?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // another run put it there first
        Err(_) if dir.join(".complete").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

fn write_file(root: &Path, f: &KitFile) -> std::io::Result<()> {
    let path = root.join(f.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::fs::File::create(&path)?;
    out.write_all(f.text.as_bytes())?;
    let mode = if f.executable { 0o755 } else { 0o644 };
    out.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kit files the commands read directly (the others are what these scripts run).
    const USED: &[&str] = &[
        "kernel/build.sh",
        "run-machine.sh",
        "initramfs/user-init",
        "initramfs/ktap.sh",
        "userspace/mmiolab-exit.c",
        "userspace/mmiolab-insmod.c",
        "agent/mmiolab_agent.c",
        "agent/Kbuild",
    ];

    #[test]
    fn the_kit_holds_every_kernel_patch_and_every_file_the_kit_scripts_source() {
        let patches = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest/kernel/patches"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "patch"))
            .count();
        let carried = FILES.iter().filter(|f| f.path.starts_with("kernel/patches/")).count();
        assert_eq!(carried, patches, "a patch of guest/kernel/patches is not in the kit");
        for f in FILES {
            for line in f.text.lines() {
                // `. "$GUEST/lib/common.sh"`: what a kit script sources is in the kit too
                if let Some(rest) = line.trim_start().strip_prefix(". \"$GUEST/") {
                    let sourced = rest.trim_end_matches('"');
                    assert!(file(sourced).is_some(), "{} sources {sourced}", f.path);
                }
            }
        }
    }

    #[test]
    fn the_files_the_commands_use_are_carried() {
        for p in USED {
            assert!(text(p).is_ok_and(|t| !t.is_empty()), "{p}");
        }
        assert!(text("no/such").is_err());
    }

    #[test]
    fn extraction_writes_every_file_once_with_its_mode() {
        let dir = std::env::temp_dir().join(format!("mmiolab-kit-test-{}", std::process::id()));
        let f = &FILES[2];
        write_file(&dir, f).unwrap();
        let meta = std::fs::metadata(dir.join(f.path)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read_to_string(dir.join(f.path)).unwrap(), f.text);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
