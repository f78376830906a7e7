//! Confinement: every thread of a run under a seccomp filter once the run has started
//! (docs/reliability.md, "Seccomp filters").
//!
//! Three kinds of thread, each with its own allow-list ([`rules`]): the vCPU threads, the
//! VMM thread (the event loop) and the main thread (which waits for the run, then writes
//! the end-of-run reports). The filters are built with seccompiler before the VM exists
//! and each thread applies its own right after start-up, once every file is open, guest
//! memory is mapped, the vCPUs exist and every thread has been spawned; the guest starts
//! only when all threads of the run are filtered ([`Confinement::enter`]). Filters are
//! inherited by threads created later, so none is applied before the last thread exists.
//!
//! A system call outside a thread's list is not made: the kernel raises SIGSYS
//! (`SECCOMP_RET_TRAP`), and [`on_sigsys`] writes `seccomp: blocked syscall NAME (NR) on
//! thread KIND` to stderr and ends the process with [`BLOCKED_STATUS`] at once (no summary,
//! the trace's buffer is lost). Such an ending is a bug in mmiolab or in a library it
//! uses: `--no-seccomp` runs without filters, to debug or under valgrind (which cannot run
//! a filtered program).
//!
//! [`SELFTEST_ENV`] makes one thread make a forbidden call once the run has started, so a
//! test can see the report and the status.

mod names;
mod rules;

use std::cell::Cell;
use std::fmt;
use std::sync::{Condvar, Mutex};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Exit status of a run ended by a blocked system call: the shell's status for a program
/// killed by SIGSYS (128 + 31), without the kill.
pub const BLOCKED_STATUS: u8 = 128 + 31;

/// Environment variable naming a thread (`vcpu0`, `vcpu1`..., `vmm`, `main`) that makes a
/// forbidden system call (`getppid`) right after every thread of the run is filtered: a
/// test hook for the SIGSYS report. Without filters the call is harmless.
pub const SELFTEST_ENV: &str = "MMIOLAB_SECCOMP_SELFTEST";

/// Why the filters could not be built or applied.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A rule list is malformed (a bug).
    #[error("building the seccomp rules: {0}")]
    Rules(#[source] seccompiler::BackendError),
    /// A filter could not be compiled to BPF (a bug).
    #[error("compiling the {0} seccomp filter: {1}")]
    Compile(ThreadKind, #[source] seccompiler::BackendError),
    /// The kernel refused a thread's filter (no CONFIG_SECCOMP_FILTER, or valgrind).
    #[error("thread {0}: {1}")]
    Apply(ThreadKind, String),
    /// Some thread's filter could not be applied (the [`SeccompError::Apply`] of each);
    /// the guest was not started.
    #[error(
        "the seccomp filters could not be installed ({0}); --no-seccomp runs without them \
         (for a kernel without CONFIG_SECCOMP_FILTER, or valgrind)"
    )]
    NotInstalled(String),
    /// The SIGSYS handler could not be installed.
    #[error("installing the SIGSYS handler: {0}")]
    Handler(#[source] std::io::Error),
    /// [`SELFTEST_ENV`] names no thread.
    #[error("{SELFTEST_ENV}={0}: expected vcpuN, vmm or main")]
    SelfTest(String),
}

/// A kind of thread, as the SIGSYS report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// vCPU thread N.
    Vcpu(u32),
    /// The VMM thread (event loop).
    Vmm,
    /// The thread that called [`crate::run`].
    Main,
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadKind::Vcpu(n) => write!(f, "vcpu {n}"),
            ThreadKind::Vmm => f.write_str("vmm"),
            ThreadKind::Main => f.write_str("main"),
        }
    }
}

impl ThreadKind {
    /// `vcpu0`, `vmm`, `main` (as [`SELFTEST_ENV`] takes them).
    fn parse(s: &str) -> Option<ThreadKind> {
        match s {
            "vmm" => Some(ThreadKind::Vmm),
            "main" => Some(ThreadKind::Main),
            _ => s.strip_prefix("vcpu")?.parse().ok().map(ThreadKind::Vcpu),
        }
    }

    /// Packed for the thread-local the SIGSYS handler reads: 0 none, 1 main, 2 vmm, 3 + N.
    fn code(self) -> u64 {
        match self {
            ThreadKind::Main => 1,
            ThreadKind::Vmm => 2,
            ThreadKind::Vcpu(n) => 3 + u64::from(n),
        }
    }
}

thread_local! {
    /// This thread's [`ThreadKind::code`]. A `const`-initialised `Cell` of a plain integer:
    /// reading it needs no allocation, lock or system call, so the SIGSYS handler may.
    static KIND: Cell<u64> = const { Cell::new(0) };
}

/// The compiled filters, one per kind of thread.
pub struct Filters {
    vcpu: BpfProgram,
    vmm: BpfProgram,
    main: BpfProgram,
}

impl Filters {
    /// Compiles the three filters: a call outside a list raises SIGSYS.
    pub fn build() -> Result<Filters, SeccompError> {
        Filters::build_with(SeccompAction::Trap)
    }

    /// As [`Filters::build`], with `otherwise` for a call outside a list (tests use an
    /// errno so that a blocked call does not end the test process).
    fn build_with(otherwise: SeccompAction) -> Result<Filters, SeccompError> {
        let compile = |kind: ThreadKind, rules: rules::Rules| -> Result<BpfProgram, SeccompError> {
            let filter = SeccompFilter::new(rules, otherwise.clone(), SeccompAction::Allow, TargetArch::x86_64)
                .map_err(|e| SeccompError::Compile(kind, e))?;
            filter.try_into().map_err(|e| SeccompError::Compile(kind, e))
        };
        Ok(Filters {
            vcpu: compile(ThreadKind::Vcpu(0), rules::vcpu()?)?,
            vmm: compile(ThreadKind::Vmm, rules::vmm()?)?,
            main: compile(ThreadKind::Main, rules::main()?)?,
        })
    }

    fn program(&self, kind: ThreadKind) -> &BpfProgram {
        match kind {
            ThreadKind::Vcpu(_) => &self.vcpu,
            ThreadKind::Vmm => &self.vmm,
            ThreadKind::Main => &self.main,
        }
    }
}

/// Applies `kind`'s filter of `filters` to the calling thread.
fn apply(filters: &Filters, kind: ThreadKind) -> Result<(), SeccompError> {
    KIND.with(|k| k.set(kind.code()));
    seccompiler::apply_filter(filters.program(kind)).map_err(|e| SeccompError::Apply(kind, e.to_string()))
}

/// The confinement of one run: the filters (none with `--no-seccomp`) and the gate that
/// holds every thread until all of them are filtered.
pub struct Confinement {
    filters: Option<Filters>,
    selftest: Option<ThreadKind>,
    gate: Mutex<Gate>,
    arrivals: Condvar,
}

#[derive(Default)]
struct Gate {
    arrived: usize,
    open: bool,
    failures: Vec<String>,
}

impl Confinement {
    /// Filters built (with `enabled`) and the SIGSYS handler installed; [`SELFTEST_ENV`]
    /// read. Call before the VM exists: nothing of the run has started if this fails.
    pub fn new(enabled: bool) -> Result<Confinement, SeccompError> {
        let selftest = match std::env::var(SELFTEST_ENV) {
            Ok(s) => Some(ThreadKind::parse(&s).ok_or(SeccompError::SelfTest(s))?),
            Err(_) => None,
        };
        let filters = if enabled {
            let filters = Filters::build()?;
            install_sigsys_handler()?;
            Some(filters)
        } else {
            None
        };
        Ok(Confinement {
            filters,
            selftest,
            gate: Mutex::new(Gate::default()),
            arrivals: Condvar::new(),
        })
    }

    /// Whether filters are applied.
    pub fn enabled(&self) -> bool {
        self.filters.is_some()
    }

    /// Called by each spawned thread of the run first thing: applies its filter, then
    /// waits until the main thread has seen every thread filtered ([`Confinement::open`]).
    /// A filter that cannot be applied is recorded; the run then stops before the guest
    /// starts.
    pub fn enter(&self, kind: ThreadKind) {
        let failed = self.apply(kind).err();
        let mut gate = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gate.arrived += 1;
        gate.failures.extend(failed.map(|e| e.to_string()));
        self.arrivals.notify_all();
        while !gate.open {
            gate = self
                .arrivals
                .wait(gate)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(gate);
        self.self_test(kind);
    }

    /// Called by the main thread once it has spawned `threads` threads that call
    /// [`Confinement::enter`]: applies the main thread's filter, waits for every thread to
    /// have applied its own, and lets them all go. Returns why a filter could not be
    /// applied, if one could not.
    pub fn open(&self, threads: usize) -> Option<String> {
        let failed = self.apply(ThreadKind::Main).err();
        let mut gate = self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gate.failures.extend(failed.map(|e| e.to_string()));
        while gate.arrived < threads {
            gate = self
                .arrivals
                .wait(gate)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        gate.open = true;
        self.arrivals.notify_all();
        let failures = (!gate.failures.is_empty()).then(|| gate.failures.join("; "));
        drop(gate);
        self.self_test(ThreadKind::Main);
        failures
    }

    fn apply(&self, kind: ThreadKind) -> Result<(), SeccompError> {
        match &self.filters {
            Some(filters) => apply(filters, kind),
            None => Ok(()),
        }
    }

    /// The [`SELFTEST_ENV`] hook: a forbidden call on the thread it names.
    fn self_test(&self, kind: ThreadKind) {
        if self.selftest == Some(kind) {
            // SAFETY: getppid takes no arguments and cannot fail; under a filter the kernel
            // raises SIGSYS instead.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    }
}

/// siginfo_t as the kernel fills it for SIGSYS (`_sigsys` of the union, x86_64 layout).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// `si_code` of a SIGSYS raised by a seccomp filter.
const SYS_SECCOMP: libc::c_int = 1;

/// A fixed buffer for the report: the handler may not allocate.
struct Report {
    buf: [u8; 128],
    len: usize,
}

impl Report {
    fn push(&mut self, s: &[u8]) {
        for &b in s {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        self.push(digits.get(i..).unwrap_or_default());
    }
}

/// The report line for a blocked `nr` on the thread whose [`ThreadKind::code`] is `kind`.
fn report(nr: i64, kind: u64) -> Report {
    let mut r = Report { buf: [0; 128], len: 0 };
    r.push(b"seccomp: blocked syscall ");
    let name = usize::try_from(nr).ok().and_then(|i| names::NAMES.get(i)).copied();
    match name {
        Some(name) if !name.is_empty() => r.push(name.as_bytes()),
        _ => r.push(b"unknown"),
    }
    r.push(b" (");
    r.number(nr.unsigned_abs());
    r.push(b") on thread ");
    match kind {
        0 => r.push(b"unknown"),
        1 => r.push(b"main"),
        2 => r.push(b"vmm"),
        n => {
            r.push(b"vcpu ");
            r.number(n - 3);
        }
    }
    r.push(b"\n");
    r
}

/// SIGSYS: report the blocked call and end the process. Async-signal-safe: a thread-local
/// read, a stack buffer, write(2) and _exit(2), both allowed by every filter.
extern "C" fn on_sigsys(_signo: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; SigsysInfo is
    // its x86_64 layout for SIGSYS, no larger than siginfo_t (128 bytes).
    let (code, nr) = unsafe {
        let i = &*info.cast::<SigsysInfo>();
        (i.code, i64::from(i.syscall))
    };
    let nr = if code == SYS_SECCOMP { nr } else { -1 };
    let kind = KIND.with(Cell::get);
    let r = report(nr, kind);
    // SAFETY: writes bytes of a live stack buffer to stderr, then ends the process; both
    // are async-signal-safe.
    unsafe {
        libc::write(libc::STDERR_FILENO, r.buf.as_ptr().cast(), r.len);
        libc::_exit(i32::from(BLOCKED_STATUS));
    }
}

fn install_sigsys_handler() -> Result<(), SeccompError> {
    // SAFETY: an all-zero sigaction is a valid value; the handler has the SA_SIGINFO
    // signature and the mask is initialised before use.
    let rc = unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigsys as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(SeccompError::Handler(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The seccomp mode of the calling thread (`Seccomp:` of /proc/thread-self/status): 0 none,
/// 2 filtered.
pub fn thread_mode() -> std::io::Result<u32> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no Seccomp line in /proc/thread-self/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Report) -> &str {
        std::str::from_utf8(r.buf.get(..r.len).unwrap()).unwrap()
    }

    #[test]
    fn the_report_names_the_call_and_the_thread() {
        assert_eq!(
            text(&report(libc::SYS_getppid, ThreadKind::Vcpu(1).code())),
            "seccomp: blocked syscall getppid (110) on thread vcpu 1\n"
        );
        assert_eq!(
            text(&report(libc::SYS_execve, ThreadKind::Vmm.code())),
            "seccomp: blocked syscall execve (59) on thread vmm\n"
        );
        assert_eq!(
            text(&report(0, ThreadKind::Main.code())),
            "seccomp: blocked syscall read (0) on thread main\n"
        );
        assert_eq!(
            text(&report(9999, 0)),
            "seccomp: blocked syscall unknown (9999) on thread unknown\n"
        );
        assert_eq!(
            text(&report(-1, 2)),
            "seccomp: blocked syscall unknown (1) on thread vmm\n"
        );
    }

    #[test]
    fn the_name_table_matches_libc() {
        for (nr, name) in [
            (libc::SYS_read, "read"),
            (libc::SYS_ioctl, "ioctl"),
            (libc::SYS_openat, "openat"),
            (libc::SYS_clone3, "clone3"),
            (libc::SYS_futex_waitv, "futex_waitv"),
        ] {
            assert_eq!(names::NAMES.get(nr as usize).copied(), Some(name));
        }
    }

    #[test]
    fn thread_kinds_parse_as_the_selftest_names_them() {
        assert_eq!(ThreadKind::parse("vcpu0"), Some(ThreadKind::Vcpu(0)));
        assert_eq!(ThreadKind::parse("vcpu12"), Some(ThreadKind::Vcpu(12)));
        assert_eq!(ThreadKind::parse("vmm"), Some(ThreadKind::Vmm));
        assert_eq!(ThreadKind::parse("main"), Some(ThreadKind::Main));
        assert_eq!(ThreadKind::parse("vcpu"), None);
        assert_eq!(ThreadKind::parse("io"), None);
    }

    /// Each filter, applied on a thread of its own with EPERM instead of SIGSYS: the
    /// thread is in mode 2, what the kind needs still works, what no kind needs fails.
    #[test]
    fn each_filter_allows_its_kind_and_refuses_the_rest() {
        let filters = Filters::build_with(SeccompAction::Errno(libc::EPERM as u32)).unwrap();
        std::thread::scope(|s| {
            for kind in [ThreadKind::Vcpu(0), ThreadKind::Vmm, ThreadKind::Main] {
                let filters = &filters;
                s.spawn(move || {
                    // Read before the filter: the vCPU and VMM threads may not open files.
                    assert_eq!(thread_mode().unwrap(), 0);
                    apply(filters, kind).unwrap();
                    // SAFETY: getppid takes no arguments.
                    let rc = unsafe { libc::syscall(libc::SYS_getppid) };
                    assert_eq!(rc, -1, "{kind}: getppid was allowed");
                    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
                    // Allocation, locks and a write to stderr keep working.
                    let v: Vec<u8> = vec![7; 1 << 20];
                    let m = Mutex::new(v.len());
                    assert_eq!(*m.lock().unwrap(), 1 << 20);
                    // SAFETY: a zero-length write of a valid buffer.
                    assert_eq!(unsafe { libc::write(2, v.as_ptr().cast(), 0) }, 0);
                    let opened = std::fs::File::open("/proc/self/status");
                    match kind {
                        ThreadKind::Main => assert_eq!(thread_mode().unwrap(), 2),
                        _ => assert_eq!(opened.unwrap_err().raw_os_error(), Some(libc::EPERM)),
                    }
                });
            }
        });
        // The filters stayed on the threads that applied them.
        assert_eq!(thread_mode().unwrap(), 0);
    }
}
