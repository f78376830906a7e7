//! The system calls each kind of thread may make once the run has started, with the code
//! path that needs each one. Everything else raises SIGSYS (see [`super`]).
//!
//! The lists hold only what a thread does *after* start-up: the machine file and payload
//! are read, guest memory and vCPUs exist, output files are created, the event loop's
//! sources are registered and every thread is spawned before any filter is applied. So no
//! filter allows `clone`, `execve`, `socket`, `connect`, `open` or KVM's set-up ioctls; only
//! the main thread may open files (the end-of-run reports).
//!
//! x86_64 only (the syscall numbers are libc's for the target).

use std::collections::BTreeMap;

use libc::c_ulong;
use seccompiler::{SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompRule};

use super::SeccompError;

/// The rules of one filter: syscall number, and the argument conditions of which at least
/// one must hold (no conditions: allowed with any arguments).
pub(super) type Rules = BTreeMap<i64, Vec<SeccompRule>>;

// The KVM ioctls the vCPU and VMM threads make after start-up, numbered as kvm-ioctls
// numbers them (a unit test pins the values).
vmm_sys_util::ioctl_io_nr!(KVM_RUN, kvm_bindings::KVMIO, 0x80);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_REGS, kvm_bindings::KVMIO, 0x81, kvm_bindings::kvm_regs);
vmm_sys_util::ioctl_iow_nr!(KVM_SET_REGS, kvm_bindings::KVMIO, 0x82, kvm_bindings::kvm_regs);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_SREGS, kvm_bindings::KVMIO, 0x83, kvm_bindings::kvm_sregs);
vmm_sys_util::ioctl_iowr_nr!(KVM_TRANSLATE, kvm_bindings::KVMIO, 0x85, kvm_bindings::kvm_translation);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_VCPU_EVENTS,
    kvm_bindings::KVMIO,
    0x9f,
    kvm_bindings::kvm_vcpu_events
);
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_VCPU_EVENTS,
    kvm_bindings::KVMIO,
    0xa0,
    kvm_bindings::kvm_vcpu_events
);
vmm_sys_util::ioctl_iow_nr!(KVM_IRQ_LINE, kvm_bindings::KVMIO, 0x61, kvm_bindings::kvm_irq_level);
// A snapshot's reads of the vCPUs' and the VM's state (crate::snapshot).
vmm_sys_util::ioctl_ior_nr!(KVM_GET_MP_STATE, kvm_bindings::KVMIO, 0x98, kvm_bindings::kvm_mp_state);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_XSAVE, kvm_bindings::KVMIO, 0xa4, kvm_bindings::kvm_xsave);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_FPU, kvm_bindings::KVMIO, 0x8c, kvm_bindings::kvm_fpu);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_XCRS, kvm_bindings::KVMIO, 0xa6, kvm_bindings::kvm_xcrs);
vmm_sys_util::ioctl_ior_nr!(
    KVM_GET_DEBUGREGS,
    kvm_bindings::KVMIO,
    0xa1,
    kvm_bindings::kvm_debugregs
);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_LAPIC, kvm_bindings::KVMIO, 0x8e, kvm_bindings::kvm_lapic_state);
vmm_sys_util::ioctl_iowr_nr!(KVM_GET_MSRS, kvm_bindings::KVMIO, 0x88, kvm_bindings::kvm_msrs);
vmm_sys_util::ioctl_iowr_nr!(KVM_GET_IRQCHIP, kvm_bindings::KVMIO, 0x62, kvm_bindings::kvm_irqchip);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_PIT2, kvm_bindings::KVMIO, 0x9f, kvm_bindings::kvm_pit_state2);
vmm_sys_util::ioctl_ior_nr!(KVM_GET_CLOCK, kvm_bindings::KVMIO, 0x7c, kvm_bindings::kvm_clock_data);

/// A rule list under construction.
struct List(Rules);

impl List {
    fn new() -> List {
        List(BTreeMap::new())
    }

    /// `nr` with any arguments.
    fn allow(&mut self, nr: i64) -> &mut Self {
        self.0.insert(nr, Vec::new());
        self
    }

    /// `nr` when one of `rules` holds.
    fn allow_if(&mut self, nr: i64, rules: Vec<SeccompRule>) -> &mut Self {
        self.0.entry(nr).or_default().extend(rules);
        self
    }
}

/// One rule: argument `arg` (32 bits) equals `value`.
fn arg_eq(arg: u8, value: u64) -> Result<SeccompRule, SeccompError> {
    let cond = Cond::new(arg, Len::Dword, Op::Eq, value).map_err(SeccompError::Rules)?;
    SeccompRule::new(vec![cond]).map_err(SeccompError::Rules)
}

/// One rule: the bits of argument `arg` under `mask` are clear.
fn arg_clear(arg: u8, mask: u64) -> Result<SeccompRule, SeccompError> {
    let cond = Cond::new(arg, Len::Qword, Op::MaskedEq(mask), 0).map_err(SeccompError::Rules)?;
    SeccompRule::new(vec![cond]).map_err(SeccompError::Rules)
}

/// One rule: pointer argument `arg` is NULL (sendto/recvfrom without an address, so only
/// on an already connected socket).
fn no_address(arg: u8) -> Result<SeccompRule, SeccompError> {
    let cond = Cond::new(arg, Len::Qword, Op::Eq, 0).map_err(SeccompError::Rules)?;
    SeccompRule::new(vec![cond]).map_err(SeccompError::Rules)
}

/// `ioctl` with one of `requests` (argument 1; the kernel reads it as 32 bits).
fn ioctls(requests: &[c_ulong]) -> Result<Vec<SeccompRule>, SeccompError> {
    requests.iter().map(|&r| arg_eq(1, u64::from(r as u32))).collect()
}

/// What every thread of a run needs: the allocator, locks, signals, time, its own end,
/// writing log lines (and the SIGSYS report), closing what it drops.
fn common() -> Result<List, SeccompError> {
    let no_exec = u64::from(libc::PROT_EXEC as u32);
    let mut l = List::new();
    l
        // Locks, condition variables, parking, thread join (all futex-based in std/glibc).
        .allow(libc::SYS_futex)
        // A library's spin-wait may yield; harmless, and never worth ending a run over.
        .allow(libc::SYS_sched_yield)
        // The allocator: glibc's malloc maps chunks and per-thread arenas, grows arena
        // heaps with mprotect, frees with munmap/madvise, reallocates big blocks with
        // mremap, grows the main heap with brk. Never executable memory.
        .allow_if(libc::SYS_mmap, vec![arg_clear(2, no_exec)?])
        .allow_if(libc::SYS_mprotect, vec![arg_clear(2, no_exec)?])
        .allow(libc::SYS_munmap)
        .allow(libc::SYS_madvise)
        .allow(libc::SYS_mremap)
        .allow(libc::SYS_brk)
        // Returning from a signal handler: the vCPU kick (SIGRTMIN) interrupts any thread's
        // blocking call, and its handler returns through rt_sigreturn.
        .allow(libc::SYS_rt_sigreturn)
        // A call interrupted by that signal (futex, nanosleep) is restarted through this.
        .allow(libc::SYS_restart_syscall)
        // glibc blocks signals around pthread_kill and while a thread exits.
        .allow(libc::SYS_rt_sigprocmask)
        // A thread's end: Rust's std removes the thread's alternate signal stack, glibc
        // exits the thread; exit_group ends the process (and the SIGSYS report's _exit).
        .allow(libc::SYS_sigaltstack)
        .allow(libc::SYS_exit)
        .allow(libc::SYS_exit_group)
        // Instant::now (the machine's clock, trace timestamps) when the vDSO falls back to
        // the system call (a clock source without vDSO support, as in some nested guests).
        .allow(libc::SYS_clock_gettime)
        // std's HashMap keys, drawn once per thread on first use.
        .allow(libc::SYS_getrandom)
        // Log lines and the SIGSYS report to stderr; each kind adds its own outputs.
        .allow(libc::SYS_write)
        // Dropping a descriptor: a vCPU's fd at its thread's end, the event loop's sources.
        // Before closing one, std checks that it is open (fcntl F_GETFD, debug builds).
        .allow(libc::SYS_close)
        .allow_if(libc::SYS_fcntl, vec![arg_eq(1, libc::F_GETFD as u64)?]);
    Ok(l)
}

/// Writing a run's outputs: the console, FIFO host sides, the trace (its `TraceStore` cuts a
/// partly written file back to its last whole record: fstat, ftruncate).
fn outputs(l: &mut List) -> &mut List {
    l.allow(libc::SYS_writev)
        .allow(libc::SYS_fstat)
        .allow(libc::SYS_newfstatat)
        .allow(libc::SYS_statx)
        .allow(libc::SYS_ftruncate)
}

/// A vCPU thread (`Vcpu::run`): KVM_RUN, the trapped-access path into the devices, and the
/// register reads of a fault report.
pub(super) fn vcpu() -> Result<Rules, SeccompError> {
    let mut l = common()?;
    outputs(&mut l)
        .allow_if(
            libc::SYS_ioctl,
            ioctls(&[
                // The run loop.
                KVM_RUN(),
                // A fault report's registers; the INT3 re-injection (rip + 1); the bytes at
                // RIP of an emulation failure (translated through the guest's page tables).
                KVM_GET_REGS(),
                KVM_SET_REGS(),
                KVM_GET_SREGS(),
                KVM_TRANSLATE(),
                KVM_GET_VCPU_EVENTS(),
                KVM_SET_VCPU_EVENTS(),
                // A level-triggered interrupt line driven by a device on a guest access
                // (machine::KvmIrqChip; edge lines are irqfds: an eventfd write).
                KVM_IRQ_LINE(),
                // `--snapshot-after`: the vCPU's state, read on its own thread when it stops
                // (snapshot::save_vcpu; KVM_RUN with immediate_exit first, KVM_GET_REGS,
                // KVM_GET_SREGS and KVM_GET_VCPU_EVENTS above). Reads only.
                KVM_GET_MP_STATE(),
                KVM_GET_XSAVE(),
                KVM_GET_FPU(),
                KVM_GET_XCRS(),
                KVM_GET_DEBUGREGS(),
                KVM_GET_LAPIC(),
                KVM_GET_MSRS(),
            ])?,
        )
        // A device schedules deferred work: the scheduler re-arms its timerfd.
        .allow(libc::SYS_timerfd_settime)
        // A FIFO drained into a Unix socket on a guest push (std's UnixStream writes with
        // send(MSG_NOSIGNAL) = sendto); connected sockets only.
        .allow_if(libc::SYS_sendto, vec![no_address(4)?]);
    Ok(l.0)
}

/// The VMM thread: the event loop (events.rs: stop event, scheduler timer, timeout,
/// signalfd, stdin and FIFO inputs, stdout/stderr hang-ups), then the end of the run
/// (kicking and joining the vCPU threads, finishing the trace).
pub(super) fn vmm() -> Result<Rules, SeccompError> {
    let kick = u64::from(vmm_sys_util::signal::SIGRTMIN() as u32);
    let mut l = common()?;
    outputs(&mut l)
        // event-manager's loop; a source removed at its end (input EOF, the one-shot
        // timeout, a hung-up stdout).
        .allow(libc::SYS_epoll_wait)
        .allow(libc::SYS_epoll_pwait)
        .allow(libc::SYS_epoll_ctl)
        // Draining the stop eventfd, the signalfd (SIGINT/SIGTERM/SIGHUP), stdin into COM1
        // or a FIFO.
        .allow(libc::SYS_read)
        // A FIFO fed from a Unix socket (std's UnixStream reads with recv = recvfrom), or
        // drained into one by deferred work (send = sendto); connected sockets only.
        .allow_if(libc::SYS_recvfrom, vec![no_address(4)?])
        .allow_if(libc::SYS_sendto, vec![no_address(4)?])
        // Deferred device work re-arms the scheduler's timer.
        .allow(libc::SYS_timerfd_settime)
        // Deferred device work driving a level-triggered interrupt line; with
        // `--snapshot-after`, the in-kernel PICs, IOAPIC, PIT and kvmclock read once every
        // vCPU is joined (snapshot::save_vm). Reads only.
        .allow_if(
            libc::SYS_ioctl,
            ioctls(&[KVM_IRQ_LINE(), KVM_GET_IRQCHIP(), KVM_GET_PIT2(), KVM_GET_CLOCK()])?,
        )
        // stop_vcpus: pthread_kill(SIGRTMIN) = getpid + tgkill, only that signal.
        .allow(libc::SYS_getpid)
        .allow_if(libc::SYS_tgkill, vec![arg_eq(2, kick)?])
        // stop_vcpus sleeps 2 ms between kicks (glibc's nanosleep is clock_nanosleep).
        .allow(libc::SYS_nanosleep)
        .allow(libc::SYS_clock_nanosleep);
    Ok(l.0)
}

/// The main thread: waits for the run (joins the VMM thread), then writes a snapshot's
/// files (`--snapshot-after`) and the end-of-run reports: the summary, `--check-json` and `test --junit` atomically (a temporary file,
/// fsync, rename; removed on failure), reads the trace back for `--expect-trace` and `test
/// --trace`, removes a temporary trace.
pub(super) fn main() -> Result<Rules, SeccompError> {
    let mut l = common()?;
    outputs(&mut l)
        // Standard output and the reports; `say` polls stderr before writing to it.
        .allow(libc::SYS_poll)
        .allow(libc::SYS_ppoll)
        // Reading the trace back, creating a report's temporary file (files.rs: openat
        // with O_CREAT | O_EXCL, or create_output for a report that is a device or FIFO).
        .allow(libc::SYS_openat)
        .allow(libc::SYS_read)
        .allow(libc::SYS_lseek)
        .allow_if(
            libc::SYS_fcntl,
            vec![arg_eq(1, libc::F_GETFL as u64)?, arg_eq(1, libc::F_SETFL as u64)?],
        )
        // check_output and write_atomically: canonicalize (glibc's realpath reads each
        // component's link and checks a path with `..` through faccessat2), same_file.
        .allow(libc::SYS_readlink)
        .allow(libc::SYS_readlinkat)
        .allow(libc::SYS_getcwd)
        .allow(libc::SYS_faccessat2)
        .allow(libc::SYS_faccessat)
        .allow(libc::SYS_access)
        // write_atomically: fsync the temporary file, rename it over the report, remove it
        // when the write failed; the temporary trace of `--expect-trace` removed.
        .allow(libc::SYS_fsync)
        .allow(libc::SYS_rename)
        .allow(libc::SYS_renameat)
        .allow(libc::SYS_renameat2)
        .allow(libc::SYS_unlink)
        .allow(libc::SYS_unlinkat)
        // The temporary file's name holds the process id.
        .allow(libc::SYS_getpid)
        // A snapshot's memory file: only the pages that are not all zeros are written, each
        // run at its offset (crates/snapshot write.rs; set_len is ftruncate, above).
        .allow(libc::SYS_pwrite64);
    Ok(l.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_kvms() {
        // The values of linux/kvm.h on x86_64.
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_GET_REGS(), 0x8090_ae81);
        assert_eq!(KVM_SET_REGS(), 0x4090_ae82);
        assert_eq!(KVM_GET_SREGS(), 0x8138_ae83);
        assert_eq!(KVM_TRANSLATE(), 0xc018_ae85);
        assert_eq!(KVM_GET_VCPU_EVENTS(), 0x8040_ae9f);
        assert_eq!(KVM_SET_VCPU_EVENTS(), 0x4040_aea0);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_GET_MP_STATE(), 0x8004_ae98);
        assert_eq!(KVM_GET_XSAVE(), 0x9000_aea4);
        assert_eq!(KVM_GET_FPU(), 0x81a0_ae8c);
        assert_eq!(KVM_GET_XCRS(), 0x8188_aea6);
        assert_eq!(KVM_GET_DEBUGREGS(), 0x8080_aea1);
        assert_eq!(KVM_GET_LAPIC(), 0x8400_ae8e);
        assert_eq!(KVM_GET_MSRS(), 0xc008_ae88);
        assert_eq!(KVM_GET_IRQCHIP(), 0xc208_ae62);
        assert_eq!(KVM_GET_PIT2(), 0x8070_ae9f);
        assert_eq!(KVM_GET_CLOCK(), 0x8030_ae7c);
    }

    #[test]
    fn docs_give_each_filters_count() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reliability.md")).unwrap();
        for (row, rules) in [("| vCPU", vcpu()), ("| VMM", vmm()), ("| main", main())] {
            let line = doc.lines().find(|l| l.starts_with(row)).unwrap();
            let count: usize = line.split('|').nth(2).unwrap().trim().parse().unwrap();
            assert_eq!(count, rules.unwrap().len(), "docs/reliability.md: {row}");
        }
    }

    #[test]
    fn no_filter_allows_making_threads_processes_or_sockets() {
        for rules in [vcpu().unwrap(), vmm().unwrap(), main().unwrap()] {
            for nr in [
                libc::SYS_clone,
                libc::SYS_clone3,
                libc::SYS_fork,
                libc::SYS_execve,
                libc::SYS_socket,
                libc::SYS_connect,
                libc::SYS_open,
                libc::SYS_ptrace,
                libc::SYS_getppid,
            ] {
                assert!(!rules.contains_key(&nr), "syscall {nr} is allowed");
            }
        }
        assert!(!vcpu().unwrap().contains_key(&libc::SYS_openat));
        assert!(!vmm().unwrap().contains_key(&libc::SYS_openat));
    }
}
