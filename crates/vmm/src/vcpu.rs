//! The vCPU loop: `KVM_RUN`, decode the exit, hand accesses to the [`AccessHandler`],
//! stop the VM on anything else. No device logic lives here.

use std::fmt::Write as _;
use std::sync::Arc;

use kvm_bindings::{KVM_EXIT_IO_IN, KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES};
use kvm_ioctls::{VcpuExit, VcpuFd};
use mmiolab_bus::Bus;
use mmiolab_devices::{Space, StopReason, VmControl};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::agent::{Agent, AgentHook};
use crate::exit::AccessHandler;
use crate::trace::{Op, Tracer};

/// What to do after one exit.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Stop(StopReason),
}

/// One vCPU and what its loop needs.
pub struct Vcpu {
    fd: VcpuFd,
    index: u32,
    bus: Arc<Bus>,
    tracer: Option<Arc<Tracer>>,
    control: Arc<VmControl>,
    mem: GuestMemoryMmap,
    /// The guest agent's hook, in checker mode only (crate::agent).
    agent: Option<AgentHook>,
}

/// Exit counters of one vCPU, reported when the VM stops.
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuStats {
    /// Exits taken (MMIO, port I/O and the rest).
    pub exits: u64,
    /// INT3s that this host's KVM could not emulate and mmiolab re-injected.
    pub int3_reinjected: u64,
}

impl Vcpu {
    /// Wraps a configured vCPU.
    pub fn new(
        fd: VcpuFd,
        index: u32,
        bus: Arc<Bus>,
        tracer: Option<Arc<Tracer>>,
        control: Arc<VmControl>,
        mem: GuestMemoryMmap,
    ) -> Vcpu {
        Vcpu {
            fd,
            index,
            bus,
            tracer,
            control,
            mem,
            agent: None,
        }
    }

    /// Checker mode: attribute each access to a device of the machine file to a guest
    /// module and test, and judge it by the guest agent's rules (crate::agent).
    pub fn attach_agent(&mut self, agent: Arc<Agent>) {
        use std::os::fd::AsRawFd;
        self.agent = Some(AgentHook::new(agent, self.fd.as_raw_fd(), self.mem.clone()));
    }

    /// Runs until the VM is asked to stop; a fault stops the VM with a report. When it
    /// stopped for a snapshot and `snapshot` is given, the vCPU's state goes into the
    /// vCPU's slot of it (crate::snapshot).
    pub fn run(mut self, snapshot: Option<(&crate::snapshot::VcpuCaps, &crate::snapshot::SavedVcpus)>) -> VcpuStats {
        // Self-tracing devices learn the vCPU of an access from the thread they run on.
        crate::trace::set_current_vcpu(Some(self.index));
        let mut stats = VcpuStats::default();
        let bus = Arc::clone(&self.bus);
        let tracer = self.tracer.clone();
        let handler = AccessHandler::new(&bus, tracer.as_deref(), self.index);
        while !self.control.is_stopping() {
            stats.exits += 1;
            match self.step(&handler, &mut stats) {
                Next::Continue => {}
                Next::Stop(reason) => self.control.request_stop(reason),
            }
        }
        if let (Some((caps, saved)), Some(StopReason::Snapshot(_))) = (snapshot, self.control.reason()) {
            let state = crate::snapshot::save_vcpu(&mut self.fd, caps);
            let mut slots = saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(slot) = slots.get_mut(self.index as usize) {
                *slot = Some(state);
            }
        }
        stats
    }

    fn step(&mut self, handler: &AccessHandler<'_>, stats: &mut VcpuStats) -> Next {
        let what = match self.fd.run() {
            Ok(VcpuExit::MmioRead(addr, data)) => {
                match &self.agent {
                    None => handler.mmio_read(addr, data),
                    Some(a) => a.around(Space::Mmio, addr, data.len(), || handler.mmio_read(addr, data)),
                }
                return Next::Continue;
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                match &self.agent {
                    None => handler.mmio_write(addr, data),
                    Some(a) => a.around(Space::Mmio, addr, data.len(), || handler.mmio_write(addr, data)),
                }
                return Next::Continue;
            }
            Ok(VcpuExit::IoIn(..) | VcpuExit::IoOut(..)) => {
                port_io(&mut self.fd, handler, self.agent.as_ref());
                return Next::Continue;
            }
            Ok(VcpuExit::IrqWindowOpen | VcpuExit::Intr) => return Next::Continue,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => return Next::Continue,
            Ok(VcpuExit::Shutdown) => "triple fault (KVM_EXIT_SHUTDOWN)".to_owned(),
            Ok(VcpuExit::Hlt) => "HLT exit, which an in-kernel irqchip should have absorbed".to_owned(),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                format!("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on host CPU {cpu}")
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                return match kind {
                    kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => Next::Stop(StopReason::GuestPowerOff),
                    kvm_bindings::KVM_SYSTEM_EVENT_RESET => Next::Stop(StopReason::GuestReset),
                    kvm_bindings::KVM_SYSTEM_EVENT_CRASH => Next::Stop(StopReason::GuestPanic),
                    other => Next::Stop(StopReason::Fault(self.report(&format!("system event {other}")))),
                };
            }
            Ok(VcpuExit::InternalError) => return self.internal_error(stats),
            Ok(other) => format!("unhandled exit {other:?}"),
            Err(e) => format!("KVM_RUN failed: {e}"),
        };
        Next::Stop(StopReason::Fault(self.report(&what)))
    }

    /// KVM could not emulate an instruction. Some software KVMs cannot emulate INT3 in
    /// long mode; the architectural result is a #BP trap after the instruction, so do
    /// exactly that. Anything else stops the VM with the instruction bytes in the report.
    fn internal_error(&mut self, stats: &mut VcpuStats) -> Next {
        let run = self.fd.get_kvm_run();
        // SAFETY: KVM_EXIT_INTERNAL_ERROR fills `internal` (and, for emulation failures,
        // the layout-compatible `emulation_failure`).
        let (suberror, failure) = unsafe {
            (
                run.__bindgen_anon_1.internal.suberror,
                run.__bindgen_anon_1.emulation_failure,
            )
        };
        let mut bytes = Vec::new();
        if suberror == KVM_INTERNAL_ERROR_EMULATION {
            if failure.flags & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0 {
                // SAFETY: the flag says the kernel filled in the instruction bytes.
                let insn = unsafe { failure.__bindgen_anon_1.__bindgen_anon_1 };
                let n = usize::from(insn.insn_size).min(insn.insn_bytes.len());
                bytes.extend_from_slice(insn.insn_bytes.get(..n).unwrap_or_default());
            } else {
                bytes = self.bytes_at_rip();
            }
            if bytes.first() == Some(&0xcc) && self.inject_breakpoint().is_ok() {
                stats.int3_reinjected += 1;
                return Next::Continue;
            }
        }
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let what = format!(
            "KVM_EXIT_INTERNAL_ERROR suberror {suberror}{} (instruction bytes: {})",
            if suberror == KVM_INTERNAL_ERROR_EMULATION {
                " (emulation failure)"
            } else {
                ""
            },
            if hex.is_empty() {
                "unknown".to_owned()
            } else {
                hex.join(" ")
            }
        );
        Next::Stop(StopReason::Fault(self.report(&what)))
    }

    /// Up to 15 bytes at RIP, read through the guest's own page tables.
    fn bytes_at_rip(&self) -> Vec<u8> {
        let Ok(regs) = self.fd.get_regs() else {
            return Vec::new();
        };
        let Ok(t) = self.fd.translate_gva(regs.rip) else {
            return Vec::new();
        };
        let mut buf = [0u8; 15];
        match t.valid {
            0 => Vec::new(),
            _ => self
                .mem
                .read_slice(&mut buf, GuestAddress(t.physical_address))
                .map(|()| buf.to_vec())
                .unwrap_or_default(),
        }
    }

    fn inject_breakpoint(&mut self) -> Result<(), kvm_ioctls::Error> {
        const BP_VECTOR: u8 = 3;
        let mut regs = self.fd.get_regs()?;
        regs.rip += 1;
        self.fd.set_regs(&regs)?;
        let mut events = self.fd.get_vcpu_events()?;
        events.exception.injected = 1;
        events.exception.nr = BP_VECTOR;
        events.exception.has_error_code = 0;
        events.exception.error_code = 0;
        self.fd.set_vcpu_events(&events)
    }

    /// `what` plus the vCPU's registers, for a fault report.
    fn report(&self, what: &str) -> String {
        let mut s = format!("vCPU {}: {what}", self.index);
        match (self.fd.get_regs(), self.fd.get_sregs()) {
            (Ok(r), Ok(sr)) => {
                let _ = write!(
                    s,
                    "\n  rip={:#018x} rsp={:#018x} rflags={:#x}\n  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  rsi={:#018x} rdi={:#018x} rbp={:#018x}\n  cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} cs={:#x}",
                    r.rip,
                    r.rsp,
                    r.rflags,
                    r.rax,
                    r.rbx,
                    r.rcx,
                    r.rdx,
                    r.rsi,
                    r.rdi,
                    r.rbp,
                    sr.cr0,
                    sr.cr2,
                    sr.cr3,
                    sr.cr4,
                    sr.efer,
                    sr.cs.selector
                );
            }
            _ => s.push_str("\n  (registers unavailable)"),
        }
        s
    }
}

/// Port I/O, decoded from `kvm_run` itself: kvm-ioctls hands out `count * size` bytes
/// without the element size, and string I/O needs one bus access per element.
fn port_io(fd: &mut VcpuFd, handler: &AccessHandler<'_>, agent: Option<&AgentHook>) {
    let run = fd.get_kvm_run();
    // SAFETY: called right after KVM_RUN returned KVM_EXIT_IO, so `io` is the union
    // member the kernel filled in.
    let io = unsafe { run.__bindgen_anon_1.io };
    let size = usize::from(io.size);
    let len = size * io.count as usize;
    let op = if u32::from(io.direction) == KVM_EXIT_IO_IN {
        Op::Read
    } else {
        Op::Write
    };
    // SAFETY: the kernel places `count * size` data bytes at `data_offset` inside the
    // kvm_run mapping (at most a page, within the mapping's size), and nothing else
    // touches that memory until the next KVM_RUN.
    let data = unsafe {
        std::slice::from_raw_parts_mut(
            (run as *mut kvm_bindings::kvm_run as *mut u8).add(io.data_offset as usize),
            len,
        )
    };
    match agent {
        None => handler.port_io(io.port, size, op, data),
        Some(a) => a.around(Space::Pio, io.port.into(), size, || {
            handler.port_io(io.port, size, op, data)
        }),
    }
}
