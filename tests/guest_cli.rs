//! `mmiolab guest`, run as an installed binary: copied outside the checkout, run from a
//! directory where no guest/ is reachable, with a cache of its own, so everything it uses
//! comes from the kit the binary carries. The refusals, and `guest initramfs` read back.
//! Without the distribution's static busybox, the tests that pack it are reported as
//! ignored, with the reason, never as passed (.ci/run installs busybox-static).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let no_busybox = !Path::new("/bin/busybox").exists();
    if no_busybox {
        eprintln!("the initramfs tests are ignored: /bin/busybox is missing (install busybox-static)");
    }
    let trials = vec![
        Trial::test(
            "guest_initramfs_refuses_bad_arguments_before_writing_anything",
            guest_initramfs_refuses_bad_arguments_before_writing_anything,
        )
        .with_ignored_flag(no_busybox),
        Trial::test(
            "guest_initramfs_of_an_installed_binary_holds_the_kit_and_the_users_files",
            guest_initramfs_of_an_installed_binary_holds_the_kit_and_the_users_files,
        )
        .with_ignored_flag(no_busybox),
    ];
    libtest_mimic::run(&args, trials).exit();
}

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A scratch directory outside the checkout holding a copy of the binary.
struct Installed {
    dir: PathBuf,
    bin: PathBuf,
}

impl Installed {
    fn new(name: &str) -> Installed {
        let dir = std::env::temp_dir().join(format!("mmiolab-guest-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let bin = dir.join("bin/mmiolab");
        std::fs::copy(env!("CARGO_BIN_EXE_mmiolab"), &bin).unwrap();
        Installed { dir, bin }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .env("MMIOLAB_CACHE", self.dir.join("cache"))
            .env_remove("KERNEL_SRC")
            .output()
            .unwrap()
    }

    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn refused(out: &Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains(why), "wanted `{why}` in:\n{stderr}");
}

/// An ELF relocatable object with the sections a kernel module has (`.modinfo`) and, for a
/// KUnit module, `.kunit_test_suites`: what `guest initramfs` reads of a module.
fn fake_module(at: &Installed, name: &str, kunit: bool) -> String {
    let src = at.dir.join(format!("{name}.c"));
    let mut c =
        String::from("__attribute__((section(\".modinfo\"), used)) static const char info[] = \"license=GPL\";\n");
    if kunit {
        c.push_str("__attribute__((section(\".kunit_test_suites\"), used)) static void *suites[2];\n");
    }
    std::fs::write(&src, c).unwrap();
    let ko = at.dir.join(format!("{name}.ko"));
    let st = Command::new("gcc")
        .arg("-c")
        .arg("-o")
        .arg(&ko)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    ko.to_str().unwrap().to_owned()
}

fn read_cpio(mut data: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut r = cpio::NewcReader::new(data).unwrap();
        if r.entry().is_trailer() {
            return out;
        }
        let name = r.entry().name().to_owned();
        let mode = r.entry().mode();
        let mut body = Vec::new();
        r.read_to_end(&mut body).unwrap();
        out.push((name, mode, body));
        data = r.finish().unwrap();
    }
}

fn guest_initramfs_refuses_bad_arguments_before_writing_anything() -> Result<(), Failed> {
    let at = Installed::new("refusals");
    let text = at.file("notes.txt", b"hello");
    let out_path = at.dir.join("out.cpio");
    let out = out_path.to_str().unwrap();
    refused(
        &at.run(&["guest", "initramfs", "--module", &text, "-o", out]),
        "not a NAME.ko file",
    );
    let not_elf = at.file("x.ko", b"not an ELF file");
    refused(
        &at.run(&["guest", "initramfs", "--module", &not_elf, "-o", out]),
        "not a 64-bit ELF kernel module",
    );
    let missing = at.dir.join("missing.ko");
    let out_missing = at.run(&["guest", "initramfs", "--module", missing.to_str().unwrap(), "-o", out]);
    assert_eq!(out_missing.status.code(), Some(65));
    refused(
        &at.run(&["guest", "initramfs", "--script", &text, "-o", out]),
        "NAME.sh",
    );
    refused(
        &at.run(&["guest", "initramfs", "--file", &format!("{text}:/init"), "-o", out]),
        "belongs to the initramfs",
    );
    refused(
        &at.run(&["guest", "initramfs", "--file", &format!("{text}:etc/x"), "-o", out]),
        "plain absolute path",
    );
    refused(
        &at.run(&["guest", "initramfs", "--file", &format!("{text}:/etc/x"), "-o", &text]),
        "notes.txt",
    );
    let twice = format!("{text}:/etc/x");
    refused(
        &at.run(&["guest", "initramfs", "--file", &twice, "--file", &twice, "-o", out]),
        "given twice",
    );
    let dir = at.dir.to_str().unwrap().to_owned();
    refused(
        &at.run(&["guest", "initramfs", "--kbuild", &dir, "-o", out]),
        "not a prepared kernel build directory",
    );
    assert!(!out_path.exists(), "a refused run wrote its output");
    // and the kernel's refusals come before any build
    refused(
        &at.run(&["guest", "kernel", "--fragment", "nope.config"]),
        "not a regular file",
    );
    refused(&at.run(&["guest", "kernel", "--src", "."]), "not a kernel source tree");
    assert_eq!(at.run(&["guest", "initramfs"]).status.code(), Some(64));
    Ok(())
}

fn guest_initramfs_of_an_installed_binary_holds_the_kit_and_the_users_files() -> Result<(), Failed> {
    let at = Installed::new("initramfs");
    let kunit = fake_module(&at, "drv_kunit", true);
    let plain = fake_module(&at, "drv", false);
    let script = at.file("check_drv.sh", b"#!/bin/sh\necho checking\n");
    let conf = at.file("drv.conf", b"speed=9600\n");
    let file = format!("{conf}:/etc/drv/drv.conf");
    let build = |out: &Path, extra: &[&str]| {
        let mut args = vec!["guest", "initramfs"];
        args.extend_from_slice(extra);
        args.extend([
            "--module", &kunit, "--module", &plain, "--script", &script, "--file", &file,
        ]);
        args.extend(["-o", out.to_str().unwrap()]);
        at.run(&args)
    };
    let out_path = at.dir.join("initramfs.cpio");
    let out = build(&out_path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), out_path.to_str().unwrap());
    assert!(stderr.contains("[mmiolab guest"), "no stage lines: {stderr}");
    let entries = read_cpio(&std::fs::read(&out_path).unwrap());
    let get = |name: &str| {
        entries
            .iter()
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("{name} is not in the archive"))
    };
    let user_init = std::fs::read(format!("{ROOT}/guest/initramfs/user-init")).unwrap();
    assert_eq!(get("init").2, user_init);
    assert_eq!(get("init").1, 0o100755);
    assert_eq!(
        get("lib/mmiolab/ktap.sh").2,
        std::fs::read(format!("{ROOT}/guest/initramfs/ktap.sh")).unwrap()
    );
    assert_eq!(get("bin/busybox").2, std::fs::read("/bin/busybox").unwrap());
    assert_eq!(get("bin/sh").1, 0o120777);
    assert_eq!(get("bin/sh").2, b"busybox");
    for helper in ["bin/mmiolab-exit", "bin/mmiolab-insmod"] {
        assert!(get(helper).2.starts_with(b"\x7fELF"), "{helper}");
        assert_eq!(get(helper).1, 0o100755);
    }
    assert_eq!(get("lib/modules/kunit/drv_kunit.ko").2, std::fs::read(&kunit).unwrap());
    assert_eq!(get("lib/modules/mmiolab/drv.ko").2, std::fs::read(&plain).unwrap());
    assert_eq!(get("tests/check_drv.sh").1, 0o100755);
    assert_eq!(get("etc/drv/drv.conf").2, b"speed=9600\n");
    assert_eq!(get("etc/drv").1, 0o040755);
    for dir in ["dev", "proc", "sys", "tmp"] {
        assert_eq!(get(dir).1, 0o040755, "{dir}");
    }
    // parents before children, each once
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted);
    // the static helpers are cached: a second run builds nothing and writes the same bytes
    let again = at.dir.join("again.cpio");
    let out2 = build(&again, &["--quiet"]);
    assert!(out2.status.success());
    assert!(
        out2.stderr.is_empty(),
        "--quiet printed {}",
        String::from_utf8_lossy(&out2.stderr)
    );
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&out_path).unwrap());
    Ok(())
}
