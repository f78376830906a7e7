//! `mmiolab test --nested auto|always|never`: whether the Linux guest boots directly under
//! this process or inside an outer VM (QEMU TCG running mmiolab on its nested KVM), for
//! hosts whose KVM cannot boot Linux (a software KVM). The nested run is the kit's
//! run-machine.sh (crate::kit), so an installed binary needs no checkout for it. A run with
//! `--snapshot-at` goes through it too, also directly: each of its boot and restores is a
//! `mmiolab run` process of its own (docs/snapshot.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::kit;

/// `--nested`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Nested {
    /// Directly when /dev/kvm is hardware KVM (and always for a bare-metal program), else
    /// nested.
    Auto,
    /// Always inside the outer VM.
    Always,
    /// Always directly.
    Never,
}

/// Where the guest boots, and why (the line `mmiolab test` prints).
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// Directly under this process.
    Direct(String),
    /// Inside the outer VM.
    Nested(String),
}

/// What decides `auto`: the host's KVM.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// /dev/kvm can be opened for reading and writing.
    pub kvm_usable: bool,
    /// The KVM module is the software kvm_pvm.
    pub software_kvm: bool,
    /// The CPU flags have vmx or svm.
    pub hardware_virt: bool,
}

impl Host {
    /// This host.
    pub fn probe() -> Host {
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let software_kvm = Path::new("/sys/module/kvm_pvm").exists();
        let hardware_virt = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
            c.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
        });
        Host {
            kvm_usable,
            software_kvm,
            hardware_virt,
        }
    }
}

/// Decides where a machine boots: `linux` says whether it boots a kernel (a bare-metal
/// program runs on any KVM, software ones included).
pub fn decide(mode: Nested, linux: bool, host: Host) -> Placement {
    match mode {
        Nested::Never => Placement::Direct("--nested never".to_owned()),
        Nested::Always => Placement::Nested("--nested always".to_owned()),
        Nested::Auto if !linux => Placement::Direct("a bare-metal program runs on any KVM".to_owned()),
        Nested::Auto if !host.kvm_usable => Placement::Nested("/dev/kvm is not usable here".to_owned()),
        Nested::Auto if host.software_kvm => {
            Placement::Nested("this host's KVM is the software kvm_pvm, which cannot usefully boot Linux".to_owned())
        }
        Nested::Auto if !host.hardware_virt => {
            Placement::Nested("the CPU has no vmx/svm: KVM here is not hardware-assisted".to_owned())
        }
        Nested::Auto => Placement::Direct("/dev/kvm is hardware KVM (vmx/svm)".to_owned()),
    }
}

/// What a nested run needs and gives.
pub struct NestedRun<'a> {
    /// The machine file.
    pub config: &'a Path,
    /// The kernel and initramfs to boot.
    pub kernel: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// Seconds before the outer VM is given up.
    pub timeout: f64,
    /// Where the trace goes, and its filters.
    pub trace: Option<&'a Path>,
    /// `DEVICE[.REGISTER]` filters.
    pub trace_filters: Vec<String>,
    /// Run the checker and bring its findings back.
    pub check: bool,
    /// Show the console while it runs.
    pub verbose: bool,
    /// No stage lines (shown only if the run leaves no console log).
    pub quiet: bool,
    /// Boot under this process's host directly (`--nested never`) rather than nested: the
    /// harness still runs each `mmiolab run` as a process of its own, which a run with
    /// restores needs (docs/snapshot.md).
    pub direct: bool,
    /// `--snapshot-at TEXT` and `--retries N`: boot once to the console text, save, and run
    /// from restores of that snapshot, again while an attempt fails.
    pub snapshot: Option<(&'a str, u32)>,
}

/// Runs the machine with the kit's run-machine.sh (nested, or directly with `direct`);
/// returns the console log and, with the checker, the findings report (when the outer VM
/// printed one).
pub fn run(r: &NestedRun<'_>) -> Result<(PathBuf, Option<PathBuf>)> {
    let kit = kit::extract().context("writing the guest kit into the cache")?;
    let out = kit::cache_dir().join("nested").join(std::process::id().to_string());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let log = out.join("console.log");
    let findings = out.join("findings.json");
    let vmm = std::env::current_exe().context("finding this mmiolab binary")?;
    let mut cmd = Command::new("bash");
    cmd.arg(kit.join("run-machine.sh"))
        .arg("--vmm")
        .arg(&vmm)
        .arg("--config")
        .arg(r.config)
        .arg("--kernel")
        .arg(r.kernel)
        .arg("--initrd")
        .arg(r.initrd)
        .args(["--nested", if r.direct { "never" } else { "always" }, "--timeout"])
        .arg(format!("{}", r.timeout.ceil()))
        .arg("--out")
        .arg(&out)
        .arg("--log")
        .arg(&log);
    if let Some(t) = r.trace {
        cmd.arg("--trace").arg(t);
        for f in &r.trace_filters {
            cmd.arg("--trace-filter").arg(f);
        }
    }
    if r.check {
        cmd.arg("--check-json").arg(&findings);
    }
    if let Some((text, retries)) = r.snapshot {
        cmd.arg("--snapshot-at")
            .arg(text)
            .arg("--retries")
            .arg(retries.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(if r.verbose { Stdio::inherit() } else { Stdio::null() })
        .stderr(if r.quiet { Stdio::piped() } else { Stdio::inherit() });
    // The guest's status is judged from its console, as for a direct run's log.
    let output = cmd
        .spawn()
        .and_then(|c| c.wait_with_output())
        .context("running bash (the nested harness)")?;
    let status = output.status;
    if !r.quiet {
        crate::ending::say(&format!(
            "mmiolab test: the {} ended ({status}); console log: {}",
            if r.direct { "harness" } else { "outer VM" },
            log.display()
        ));
    }
    // The outer VM's initramfs (the VMM, the guest's files: ~100 MB) is not kept; the
    // console log and findings are.
    if let Ok(entries) = std::fs::read_dir(&out) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("l1-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if !log.is_file() {
        anyhow::bail!(
            "the nested run left no console log ({status}){}",
            if r.quiet {
                format!(":\n{}", String::from_utf8_lossy(&output.stderr))
            } else {
                String::new()
            }
        );
    }
    Ok((log, (r.check && findings.is_file()).then_some(findings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDWARE: Host = Host {
        kvm_usable: true,
        software_kvm: false,
        hardware_virt: true,
    };

    #[test]
    fn auto_boots_directly_only_where_kvm_can_boot_linux() {
        assert!(matches!(decide(Nested::Auto, true, HARDWARE), Placement::Direct(_)));
        let software = Host {
            software_kvm: true,
            ..HARDWARE
        };
        assert_eq!(
            decide(Nested::Auto, true, software),
            Placement::Nested("this host's KVM is the software kvm_pvm, which cannot usefully boot Linux".to_owned())
        );
        let no_vmx = Host {
            hardware_virt: false,
            ..HARDWARE
        };
        assert!(matches!(decide(Nested::Auto, true, no_vmx), Placement::Nested(w) if w.contains("vmx/svm")));
        let no_kvm = Host {
            kvm_usable: false,
            ..HARDWARE
        };
        assert!(matches!(decide(Nested::Auto, true, no_kvm), Placement::Nested(w) if w.contains("/dev/kvm")));
        // a bare-metal program, and the explicit modes, whatever the host
        assert!(matches!(decide(Nested::Auto, false, software), Placement::Direct(_)));
        assert!(matches!(decide(Nested::Never, true, software), Placement::Direct(_)));
        assert!(matches!(decide(Nested::Always, true, HARDWARE), Placement::Nested(_)));
    }
}
