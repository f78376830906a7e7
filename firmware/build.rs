//! Assembles every `asm/*.S` into a static ELF64 with `cc` (GNU as and ld behind it), so no
//! binary lives in git. 64-bit programs link at 1 MiB with `asm/long64.ld`; files named
//! `pvh_*.S` are PVH payloads, 32-bit code (`.code32`) in an ELF64 container linked with
//! `asm/pvh32.ld`, as Linux's own vmlinux is: linux-loader loads only ELF64.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = Path::new("asm");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=asm");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut names = Vec::new();
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("firmware/asm exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "S"))
        .collect();
    sources.sort();
    for src in sources {
        let name = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name")
            .to_owned();
        let pvh = name.starts_with("pvh_");
        let script = dir.join(if pvh { "pvh32.ld" } else { "long64.ld" });
        let elf = out.join(format!("{name}.elf"));
        let mut cmd = Command::new(&cc);
        cmd.args([
            "-nostdlib",
            "-static",
            "-no-pie",
            "-Wl,--build-id=none",
            "-Wl,-z,noexecstack",
        ])
        .arg(if pvh { "-m32" } else { "-m64" })
        .arg(format!("-Wl,-T,{}", script.display()))
        .arg("-I")
        .arg(dir)
        .arg("-o")
        .arg(&elf)
        .arg(&src);
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run {cc} to assemble firmware: {e}"));
        assert!(status.success(), "assembling {} failed: {status}", src.display());
        names.push(name);
    }
    let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    std::fs::write(out.join("names.rs"), format!("&[{}]", list.join(", "))).expect("OUT_DIR is writable");
}
