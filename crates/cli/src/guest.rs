//! `mmiolab guest`: the Linux guest's pieces for a user's own project, from the kit the
//! binary carries (crate::kit): `guest kernel` builds (or finds in the cache) a kernel with
//! mmiolab's options, `guest initramfs` writes a test initramfs of the user's modules,
//! scripts and files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use cpio::newc::{Builder, ModeFileType};

use crate::ending::{say, to_stdout};
use crate::kit;

/// `mmiolab guest`.
#[derive(Subcommand)]
pub enum GuestCommand {
    /// Build (or find in the cache) a guest kernel: `make tinyconfig` plus mmiolab's options
    /// and yours, each requested option checked; prints the bzImage and the kbuild
    /// directory for out-of-tree modules (`make -C KBUILD M=$PWD modules`).
    Kernel(KernelArgs),
    /// Write a test initramfs (uncompressed newc cpio): busybox-static, an /init that runs
    /// the KUnit suites of the KUnit modules, loads the other modules (one test each) and
    /// runs the scripts (one test each) as a KTAP report, and your files.
    Initramfs(InitramfsArgs),
}

/// `mmiolab guest kernel`.
#[derive(Args)]
pub struct KernelArgs {
    /// Kernel source tree (a clean one: the build is out of tree; mmiolab's patches are
    /// applied to it). Default: the distribution's linux-source package.
    #[arg(long, value_name = "DIR")]
    src: Option<PathBuf>,
    /// Kernel options beyond mmiolab's (lines CONFIG_X=y|m|VALUE or `# CONFIG_X is not
    /// set`), merged after them; repeatable.
    #[arg(long, value_name = "FILE")]
    fragment: Vec<PathBuf>,
    /// Also copy the bzImage to DIR/bzImage.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No progress lines (errors and the result only).
    #[arg(long, short)]
    quiet: bool,
}

/// `mmiolab guest initramfs`.
#[derive(Args)]
pub struct InitramfsArgs {
    /// A kernel module (.ko) built against the guest kernel: with KUnit suites (a
    /// .kunit_test_suites section) it goes to /lib/modules/kunit/ and its suites run first,
    /// else to /lib/modules/mmiolab/ and it is loaded as a test of its own; repeatable.
    #[arg(long, value_name = "FILE.ko")]
    module: Vec<PathBuf>,
    /// A script test (/tests/NAME.sh, run by busybox sh after the modules: its exit status
    /// is its result, its output its diagnostics); repeatable.
    #[arg(long, value_name = "FILE")]
    script: Vec<PathBuf>,
    /// Any other file, put at the absolute path DST; repeatable.
    #[arg(long, value_name = "SRC:DST")]
    file: Vec<String>,
    /// The kbuild directory of the guest kernel (`mmiolab guest kernel` prints it): build
    /// the checker's guest agent against it and load it first, so that `mmiolab test
    /// --check` judges the modules' claims and the trace marks where each test begins and
    /// ends (docs/checker.md).
    #[arg(long, value_name = "DIR")]
    kbuild: Option<PathBuf>,
    /// The initramfs to write (whole or not at all).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// No progress lines.
    #[arg(long, short)]
    quiet: bool,
}

/// An argument or input `mmiolab guest` refuses before doing anything (status 65).
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse<T>(message: String) -> Result<T> {
    Err(anyhow::Error::new(Refused(message)))
}

/// Stage lines on stderr, as cargo's and the guest scripts' (`[mmiolab guest   3s] ...`).
struct Stages {
    start: Instant,
    quiet: bool,
}

impl Stages {
    fn new(quiet: bool) -> Stages {
        Stages {
            start: Instant::now(),
            quiet,
        }
    }

    fn say(&self, what: &str) {
        if !self.quiet {
            say(&format!("[mmiolab guest {:4}s] {what}", self.start.elapsed().as_secs()));
        }
    }
}

/// Runs `mmiolab guest ...`.
pub fn command(cmd: GuestCommand) -> Result<u8> {
    match cmd {
        GuestCommand::Kernel(args) => kernel(&args),
        GuestCommand::Initramfs(args) => initramfs(&args),
    }
}

/// The build directory of the guest kernel, built by the kit's kernel/build.sh (progress on
/// stderr unless `quiet`; its output shown on failure).
fn build_kernel(src: Option<&Path>, fragments: &[PathBuf], out: Option<&Path>, quiet: bool) -> Result<PathBuf> {
    for f in fragments {
        if !f.is_file() {
            return refuse(format!("--fragment {}: not a regular file", f.display()));
        }
    }
    if let Some(s) = src
        && !s.join("Makefile").is_file()
    {
        return refuse(format!("--src {}: not a kernel source tree (no Makefile)", s.display()));
    }
    let dir = kit::extract().context("writing the guest kit into the cache")?;
    let mut cmd = Command::new("bash");
    cmd.arg(dir.join("kernel/build.sh"));
    for f in fragments {
        cmd.arg("--fragment").arg(f);
    }
    if let Some(o) = out {
        cmd.arg("--out").arg(o);
    }
    match src {
        Some(s) => cmd.env("KERNEL_SRC", s),
        None => cmd.env_remove("KERNEL_SRC"),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd.stderr(if quiet { Stdio::piped() } else { Stdio::inherit() });
    let child = cmd.spawn().context("running bash (the kernel build script)")?;
    let output = child.wait_with_output().context("waiting for the kernel build")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::bail!(
            "the kernel build failed ({}){}",
            output.status,
            if quiet { format!(":\n{stderr}") } else { String::new() }
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let build = stdout.lines().last().unwrap_or_default().trim();
    if build.is_empty() {
        anyhow::bail!("the kernel build printed no build directory");
    }
    Ok(PathBuf::from(build))
}

fn kernel(args: &KernelArgs) -> Result<u8> {
    let build = build_kernel(args.src.as_deref(), &args.fragment, args.out.as_deref(), args.quiet)?;
    to_stdout(
        format!(
            "bzImage: {}\nkbuild: {}\n",
            build.join("arch/x86/boot/bzImage").display(),
            build.display()
        )
        .as_bytes(),
    )?;
    Ok(0)
}

/// Busybox applets the inits use (guest/initramfs/init, user-init, ktap.sh).
const APPLETS: &[&str] = &[
    "sh", "mount", "rmmod", "cat", "dmesg", "reboot", "poweroff", "grep", "readlink", "basename",
];

/// Where the user /init finds the guest agent (guest/initramfs/user-init).
const AGENT: &str = "lib/mmiolab/mmiolab_agent.ko";

/// Where the distribution's busybox-static puts busybox.
const BUSYBOX: &str = "/bin/busybox";

/// Paths the initramfs's own files hold; `--file` may not name them.
const RESERVED: &[&str] = &["/init", "/bin/", "/tests/", "/lib/mmiolab/", "/lib/modules/"];

/// The most a module, script or file may have.
const MAX_INPUT: u64 = 256 << 20;

/// One entry of the archive: a path without the leading `/`, and what it is.
enum Entry {
    Dir,
    File { data: Vec<u8>, mode: u32 },
    Link(&'static str),
}

/// `SRC:DST` of `--file`: DST an absolute plain path outside the reserved ones.
fn parse_file_arg(arg: &str) -> Result<(PathBuf, String)> {
    let Some((src, dst)) = arg.rsplit_once(':') else {
        return refuse(format!("--file {arg}: expected SRC:DST"));
    };
    let plain = dst.starts_with('/')
        && dst.len() > 1
        && !dst.ends_with('/')
        && dst[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !plain {
        return refuse(format!(
            "--file {arg}: DST must be a plain absolute path (no ., .., //)"
        ));
    }
    if RESERVED
        .iter()
        .any(|r| dst == r.trim_end_matches('/') || (r.ends_with('/') && dst.starts_with(r)))
    {
        return refuse(format!(
            "--file {arg}: {dst} belongs to the initramfs's own files (/init, /bin, /tests, /lib/mmiolab, /lib/modules: use --module and --script)"
        ));
    }
    Ok((PathBuf::from(src), dst[1..].to_owned()))
}

/// The last path component, as UTF-8.
fn file_name(p: &Path) -> Result<&str> {
    match p.file_name().and_then(|n| n.to_str()) {
        Some(n) => Ok(n),
        None => refuse(format!("{}: the file name is not UTF-8", p.display())),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    Ok(mmiolab_vmm::files::read_input(
        path,
        MAX_INPUT,
        "an initramfs file may have",
    )?)
}

/// A little-endian ELF64 file's header fields, read with bounds checks.
struct Elf64<'a>(&'a [u8]);

impl<'a> Elf64<'a> {
    /// `None`: not an ELF64 little-endian file.
    fn new(elf: &'a [u8]) -> Option<Elf64<'a>> {
        (elf.get(..6) == Some(&[0x7f, b'E', b'L', b'F', 2, 1][..])).then_some(Elf64(elf))
    }

    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.0.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<usize> {
        self.bytes(at).map(u16::from_le_bytes).map(usize::from)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        self.bytes(at).map(u32::from_le_bytes)
    }

    fn offset(&self, at: usize) -> Option<usize> {
        usize::try_from(self.bytes(at).map(u64::from_le_bytes)?).ok()
    }

    /// Where the `i`th entry of a table at `table` with entries of `size` bytes starts.
    fn entry(table: usize, size: usize, i: usize) -> Option<usize> {
        table.checked_add(i.checked_mul(size)?)
    }
}

/// Whether the ELF64 file `elf` has a section named `name`. `None`: not an ELF64
/// little-endian file, or one whose section headers lie outside it.
pub fn has_section(elf: &[u8], name: &str) -> Option<bool> {
    let elf = Elf64::new(elf)?;
    let shoff = elf.offset(0x28)?;
    let shentsize = elf.u16(0x3a)?;
    let shnum = elf.u16(0x3c)?;
    let shstrndx = elf.u16(0x3e)?;
    if shentsize < 0x40 {
        return None;
    }
    let names_hdr = Elf64::entry(shoff, shentsize, shstrndx)?;
    let names_off = elf.offset(names_hdr.checked_add(0x18)?)?;
    let names_size = elf.offset(names_hdr.checked_add(0x20)?)?;
    let names = elf.0.get(names_off..names_off.checked_add(names_size)?)?;
    for i in 0..shnum {
        let at = usize::try_from(elf.u32(Elf64::entry(shoff, shentsize, i)?)?).ok()?;
        let Some(rest) = names.get(at..) else { continue };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return Some(true);
        }
    }
    Some(false)
}

/// Whether the ELF file `elf` asks for a program interpreter (is dynamically linked).
fn is_dynamic(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let elf = Elf64::new(elf)?;
    let phoff = elf.offset(0x20)?;
    let phentsize = elf.u16(0x36)?;
    let phnum = elf.u16(0x38)?;
    for i in 0..phnum {
        if elf.u32(Elf64::entry(phoff, phentsize, i)?)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// The checker's guest agent built against the kernel build directory `kbuild` from the
/// kit's sources (once per source and kernel, cached in `$MMIOLAB_CACHE/agent/`).
fn agent(kbuild: &Path, stages: &Stages) -> Result<Vec<u8>> {
    if !kbuild.join("Module.symvers").is_file() || !kbuild.join("scripts/module.lds").is_file() {
        return refuse(format!(
            "--kbuild {}: not a prepared kernel build directory (the kbuild: line of mmiolab guest kernel)",
            kbuild.display()
        ));
    }
    let kbuild = std::fs::canonicalize(kbuild).with_context(|| format!("reading {}", kbuild.display()))?;
    let source = kit::text("agent/mmiolab_agent.c")?;
    let kbuild_file = kit::text("agent/Kbuild")?;
    let release = std::fs::read(kbuild.join("include/config/kernel.release")).unwrap_or_default();
    let dir = kit::cache_dir().join("agent").join(kit::short_hash([
        source.as_bytes(),
        kbuild_file.as_bytes(),
        kbuild.as_os_str().as_encoded_bytes(),
        &release,
    ]));
    let ko = dir.join("mmiolab_agent.ko");
    if !ko.is_file() {
        stages.say(&format!("building the guest agent against {}", kbuild.display()));
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        std::fs::write(tmp.join("mmiolab_agent.c"), source)?;
        std::fs::write(tmp.join("Kbuild"), kbuild_file)?;
        let out = Command::new("make")
            .arg("-C")
            .arg(&kbuild)
            .arg(format!("M={}", tmp.display()))
            .args(["KCFLAGS=-Werror", "modules"])
            .stdin(Stdio::null())
            .output()
            .context("running make (install make and gcc)")?;
        if !out.status.success() {
            let log = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            anyhow::bail!(
                "building the guest agent failed ({}; a kernel without CONFIG_KPROBES?):\n{}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::rename(tmp.join("mmiolab_agent.ko"), &ko).with_context(|| format!("writing {}", ko.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    std::fs::read(&ko).with_context(|| format!("reading {}", ko.display()))
}

/// The static helpers /init uses (mmiolab-exit, mmiolab-insmod), built from the kit's
/// sources with `gcc -static` once per source and kept in the cache.
fn helpers(stages: &Stages) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in ["mmiolab-exit", "mmiolab-insmod"] {
        let path = format!("userspace/{name}.c");
        let source = kit::text(&path)?;
        let dir = kit::cache_dir()
            .join("helpers")
            .join(kit::short_hash([name.as_bytes(), source.as_bytes()]));
        let bin = dir.join(name);
        if !bin.is_file() {
            stages.say(&format!("building {name} (gcc -static)"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let src = dir.join(format!("{name}.c"));
            std::fs::write(&src, source).with_context(|| format!("writing {}", src.display()))?;
            let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
            let status = Command::new("gcc")
                .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(&tmp)
                .arg(&src)
                .stdin(Stdio::null())
                .status()
                .context("running gcc (install gcc and libc6-dev)")?;
            if !status.success() {
                anyhow::bail!(
                    "gcc -static {} failed ({status}): is libc6-dev installed?",
                    src.display()
                );
            }
            std::fs::rename(&tmp, &bin).with_context(|| format!("writing {}", bin.display()))?;
        }
        out.push((
            name,
            std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?,
        ));
    }
    Ok(out)
}

fn initramfs(args: &InitramfsArgs) -> Result<u8> {
    let stages = Stages::new(args.quiet);
    let mut entries: std::collections::BTreeMap<String, Entry> = std::collections::BTreeMap::new();
    let mut inputs: Vec<(String, PathBuf)> = Vec::new();
    // Refusals first, before anything is built.
    let mut planned = Vec::new();
    for m in &args.module {
        let name = file_name(m)?;
        if !name.ends_with(".ko") || name.len() == 3 {
            return refuse(format!("--module {}: not a NAME.ko file", m.display()));
        }
        let data = read(m)?;
        let kunit = match has_section(&data, ".kunit_test_suites") {
            Some(k) => k,
            None => return refuse(format!("--module {}: not a 64-bit ELF kernel module", m.display())),
        };
        if has_section(&data, ".modinfo") != Some(true) {
            return refuse(format!(
                "--module {}: not a kernel module (no .modinfo section)",
                m.display()
            ));
        }
        let dir = if kunit {
            "lib/modules/kunit"
        } else {
            "lib/modules/mmiolab"
        };
        planned.push((
            format!("{dir}/{name}"),
            data,
            0o644,
            format!("--module {}", m.display()),
        ));
        inputs.push(("a module".to_owned(), m.clone()));
    }
    for s in &args.script {
        let name = file_name(s)?;
        let Some(stem) = name.strip_suffix(".sh").filter(|s| !s.is_empty()) else {
            return refuse(format!(
                "--script {}: the name must be NAME.sh (NAME is the test's)",
                s.display()
            ));
        };
        if stem.contains(char::is_whitespace) || stem.contains('#') {
            return refuse(format!("--script {}: a test name has no spaces or #", s.display()));
        }
        planned.push((
            format!("tests/{name}"),
            read(s)?,
            0o755,
            format!("--script {}", s.display()),
        ));
        inputs.push(("a script".to_owned(), s.clone()));
    }
    for f in &args.file {
        let (src, dst) = parse_file_arg(f)?;
        planned.push((dst, read(&src)?, 0o644, format!("--file {f}")));
        inputs.push(("a file".to_owned(), src));
    }
    mmiolab_vmm::files::check_output(&args.output, "the initramfs", &inputs)?;
    for (path, data, mode, from) in planned {
        if entries.contains_key(&path) {
            return refuse(format!("{from}: /{path} is given twice"));
        }
        add_parents(&mut entries, &path);
        entries.insert(path, Entry::File { data, mode });
    }
    let busybox = match std::fs::read(BUSYBOX) {
        Ok(b) => b,
        Err(e) => {
            return refuse(format!(
                "{BUSYBOX}: {e} (install the distribution's busybox-static: apt-get install busybox-static)"
            ));
        }
    };
    if is_dynamic(&busybox) != Some(false) {
        return refuse(format!(
            "{BUSYBOX} is not a statically linked ELF program (install busybox-static, not busybox)"
        ));
    }
    for dir in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "tests",
        "lib/modules/mmiolab",
        "lib/modules/kunit",
    ] {
        add_parents(&mut entries, &format!("{dir}/x"));
    }
    entries.insert(
        "bin/busybox".to_owned(),
        Entry::File {
            data: busybox,
            mode: 0o755,
        },
    );
    for a in APPLETS {
        entries.insert(format!("bin/{a}"), Entry::Link("busybox"));
    }
    if let Some(kbuild) = &args.kbuild {
        let data = agent(kbuild, &stages)?;
        entries.insert(AGENT.to_owned(), Entry::File { data, mode: 0o644 });
    }
    for (name, data) in helpers(&stages)? {
        entries.insert(format!("bin/{name}"), Entry::File { data, mode: 0o755 });
    }
    for (path, kit_path, mode) in [
        ("init", "initramfs/user-init", 0o755),
        ("lib/mmiolab/ktap.sh", "initramfs/ktap.sh", 0o644),
    ] {
        let text = kit::text(kit_path)?;
        add_parents(&mut entries, path);
        entries.insert(
            path.to_owned(),
            Entry::File {
                data: text.as_bytes().to_vec(),
                mode,
            },
        );
    }
    stages.say(&format!("writing {} entries", entries.len()));
    let cpio = write_cpio(&entries)?;
    mmiolab_vmm::files::write_atomically(&args.output, &cpio, "the initramfs", &inputs)?;
    stages.say(&format!("wrote {} bytes to {}", cpio.len(), args.output.display()));
    to_stdout(format!("{}\n", args.output.display()).as_bytes())?;
    Ok(0)
}

/// Adds a directory entry for each parent of `path`.
fn add_parents(entries: &mut std::collections::BTreeMap<String, Entry>, path: &str) {
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        entries.entry(path[..at + i].to_owned()).or_insert(Entry::Dir);
        at += i + 1;
    }
}

/// The newc archive of `entries` in path order (a parent before its children), owned by
/// root, with time 0: the same inputs give the same bytes.
fn write_cpio(entries: &std::collections::BTreeMap<String, Entry>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (ino, (path, entry)) in entries.iter().enumerate() {
        let b = Builder::new(path).ino(u32::try_from(ino + 1)?).uid(0).gid(0).mtime(0);
        let (b, data): (Builder, &[u8]) = match entry {
            Entry::Dir => (b.mode(0o755).set_mode_file_type(ModeFileType::Directory).nlink(2), &[]),
            Entry::File { data, mode } => (b.mode(*mode).set_mode_file_type(ModeFileType::Regular), data),
            Entry::Link(target) => (
                b.mode(0o777).set_mode_file_type(ModeFileType::Symlink),
                target.as_bytes(),
            ),
        };
        let size = u32::try_from(data.len()).context("a file of 4 GiB or more")?;
        let mut w = b.write(out, size);
        std::io::Write::write_all(&mut w, data)?;
        out = w.finish()?;
    }
    Ok(cpio::newc::trailer(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Read;

    /// The entries of a newc archive: (path, mode, contents).
    fn read_cpio(mut data: &[u8]) -> std::io::Result<Vec<(String, u32, Vec<u8>)>> {
        let mut out = Vec::new();
        loop {
            let mut r = cpio::NewcReader::new(data)?;
            if r.entry().is_trailer() {
                return Ok(out);
            }
            let name = r.entry().name().to_owned();
            let mode = r.entry().mode();
            let mut body = Vec::new();
            r.read_to_end(&mut body)?;
            out.push((name, mode, body));
            data = r.finish()?;
        }
    }

    #[test]
    fn file_arguments_are_plain_paths_outside_the_initramfs_own() {
        assert_eq!(
            parse_file_arg("a.txt:/etc/x.conf").unwrap(),
            (PathBuf::from("a.txt"), "etc/x.conf".to_owned())
        );
        assert_eq!(parse_file_arg("c:/d:/opt/y").unwrap().1, "opt/y");
        for bad in ["a.txt", "a:/", "a:rel/x", "a:/x/../y", "a://x", "a:/x/", "a:/./x"] {
            let e = parse_file_arg(bad).unwrap_err();
            assert!(
                e.to_string().contains("plain absolute path") || e.to_string().contains("SRC:DST"),
                "{bad}: {e}"
            );
        }
        for own in [
            "a:/init",
            "a:/bin/sh",
            "a:/tests/t.sh",
            "a:/lib/mmiolab/ktap.sh",
            "a:/lib/modules/kunit/m.ko",
        ] {
            let e = parse_file_arg(own).unwrap_err();
            assert!(e.to_string().contains("belongs to the initramfs"), "{own}: {e}");
        }
        // a name that only starts like a reserved one is the user's
        assert!(parse_file_arg("a:/initrd.conf").is_ok());
    }

    #[test]
    fn an_archive_reads_back_as_written() {
        let mut entries = std::collections::BTreeMap::new();
        add_parents(&mut entries, "lib/modules/kunit/m.ko");
        entries.insert(
            "lib/modules/kunit/m.ko".to_owned(),
            Entry::File {
                data: b"module".to_vec(),
                mode: 0o644,
            },
        );
        entries.insert("bin/sh".to_owned(), Entry::Link("busybox"));
        add_parents(&mut entries, "bin/sh");
        let cpio = write_cpio(&entries).unwrap();
        assert_eq!(cpio.len() % 4, 0);
        let back = read_cpio(&cpio).unwrap();
        let names: Vec<&str> = back.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "lib",
                "lib/modules",
                "lib/modules/kunit",
                "lib/modules/kunit/m.ko"
            ]
        );
        assert_eq!(back[1].1, 0o120777);
        assert_eq!(back[1].2, b"busybox");
        assert_eq!(back[5].1, 0o100644);
        assert_eq!(back[5].2, b"module");
        assert_eq!(back[0].1, 0o040755);
        // the same entries, the same bytes
        assert_eq!(write_cpio(&entries).unwrap(), cpio);
    }

    #[test]
    fn elf_sections_and_interpreters_are_read_without_trusting_the_file() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(has_section(&me, ".text"), Some(true));
        assert_eq!(has_section(&me, ".kunit_test_suites"), Some(false));
        assert!(is_dynamic(&me).is_some());
        assert_eq!(has_section(b"not elf", ".text"), None);
        // cuts of a real file are read without a panic, and a file without its section
        // headers (at its end) is refused
        for len in (0..me.len()).step_by(me.len() / 500 + 1) {
            let _ = has_section(&me[..len], ".text");
            let _ = is_dynamic(&me[..len]);
        }
        assert_eq!(has_section(&me[..me.len() / 2], ".text"), None);
    }
}
