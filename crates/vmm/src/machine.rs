//! Building a KVM VM from a machine description and running it to the end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use kvm_bindings::{KVM_MEM_READONLY, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VmFd};
use mmiolab_bus::UnmappedCounts;
use mmiolab_devices::{IrqChip, IrqTrigger, StopReason, VmControl};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MmapRegion, VolatileMemory};
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::boot::{self, Payload};
use crate::config::MachineConfig;
use crate::error::{Error, Result};
use crate::events::{
    DeferredWork, HostFeed, InitFailures, OutputWatch, SignalWatch, StdinToSerial, StopWatch, Timeout,
};
use crate::layout;
use crate::platform::{HostInput, Platform};
use crate::seccomp::{Confinement, ThreadKind};
use crate::signals::StopSignals;
use crate::snapshot::{Marker, SavedVcpus, SnapshotRequest, VcpuCaps};
use crate::trace::{TraceOptions, TraceStore, Tracer};
use crate::vcpu::{Vcpu, VcpuStats};

/// How to run a machine.
pub struct RunOptions {
    /// Where COM1's output goes. Its first failed write stops the run (see
    /// [`crate::output`]); give a writer that returns `EINTR` rather than retry it
    /// ([`crate::output::HostFd`]), or a run with a blocked console cannot stop.
    pub console: Box<dyn Write + Send>,
    /// The console's name in the report ("standard output (the guest console)").
    pub console_name: String,
    /// Where the access trace goes and how, if tracing.
    pub trace: Option<TraceOutput>,
    /// Stop the VM after this long ([`StopReason::Timeout`]).
    pub timeout: Option<Duration>,
    /// Forward the host's stdin to COM1.
    pub stdin: bool,
    /// Stop the VM when one of these signals arrives ([`StopReason::Signal`]); they must
    /// have been blocked before any thread was started.
    pub stop_signals: Option<StopSignals>,
    /// Stop the VM when the reader of mmiolab's standard output or error goes away.
    pub watch_stdio: bool,
    /// Run the register checker (docs/checker.md); its findings are in the report.
    pub check: bool,
    /// Run every thread under its seccomp filter once the run has started
    /// ([`crate::seccomp`]); `false` is `--no-seccomp`.
    pub seccomp: bool,
    /// Take a snapshot at a marker and end the run there ([`StopReason::Snapshot`]).
    pub snapshot: Option<SnapshotRequest>,
    /// Resume from the snapshot in this directory instead of booting the payload.
    pub restore: Option<PathBuf>,
}

/// A trace to write.
pub struct TraceOutput {
    /// Where.
    pub target: TraceTarget,
    /// Format and filters.
    pub options: TraceOptions,
}

/// Where a trace goes.
pub enum TraceTarget {
    /// A file: checked against the machine's inputs before the VM is built, created
    /// (truncated) only when the guest is about to start, cut back to its last whole record
    /// after a failed write.
    File(PathBuf),
    /// Any writer (the tracer buffers it).
    Writer(Box<dyn Write + Send>),
}

/// Loop of the VMM thread, set up before the vCPUs start.
type EventLoop = EventManager<Box<dyn MutEventSubscriber + Send>>;

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// Why the VM stopped.
    pub reason: StopReason,
    /// Accesses that hit no device.
    pub unmapped: UnmappedCounts,
    /// Exits summed over vCPUs.
    pub exits: u64,
    /// INT3s re-injected because this host's KVM could not emulate them.
    pub int3_reinjected: u64,
    /// The trace could not be written whole: the cause, and how many records are missing.
    /// (A failure during the run also stopped it, as [`StopReason::Output`].)
    pub trace_error: Option<crate::trace::TraceFailure>,
    /// The register checker's findings (empty without `check`).
    pub findings: Vec<crate::check::Finding>,
    /// The snapshot written, when the run stopped at its marker.
    pub snapshot: Option<PathBuf>,
}

/// TSS and identity-map pages that KVM on VMX hosts needs somewhere out of the guest's way.
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// Builds the VM described by `config` and runs it until it stops.
///
/// Everything that can refuse the run (the machine, the payload, the trace's path) is
/// checked before any VM exists; output files are created only when the guest is about to
/// start. Every ending (the guest's, a fault, the timeout, a stop signal, a failed output)
/// goes through the same path: vCPUs joined, trace finished, a [`RunReport`].
///
/// Threads: one per vCPU and the VMM thread (the event loop); the calling thread waits for
/// them. With `opts.seccomp` every one of them, the calling thread included, is under its
/// seccomp filter from the moment the guest starts ([`crate::seccomp`]), and the calling
/// thread stays so after `run` returns: it can still write outputs and reports (create,
/// rename and remove files, read files back), but it cannot start a thread or a process,
/// open a socket or make a KVM call.
pub fn run(config: &MachineConfig, mut opts: RunOptions) -> Result<RunReport> {
    let sources = opts.events();
    let confinement = Arc::new(Confinement::new(opts.seccomp)?);
    if opts.check && (opts.snapshot.is_some() || opts.restore.is_some()) {
        return Err(Error::Snapshot(
            "--check does not combine with snapshots yet (the guest agent's state is not saved)".to_owned(),
        ));
    }
    let restored = opts.restore.as_deref().map(mmiolab_snapshot::read).transpose()?;
    if let Some(req) = &opts.snapshot {
        mmiolab_snapshot::prepare_dir(&req.dir)?;
    }
    // The console's writer watches for a console marker; the control it stops is made
    // with the platform, below.
    let marker_control = Arc::new(std::sync::OnceLock::new());
    let mut console = std::mem::replace(&mut opts.console, Box::new(std::io::sink()));
    if let Some(SnapshotRequest {
        marker: Marker::Console(text),
        ..
    }) = &opts.snapshot
    {
        console = Box::new(crate::snapshot::ConsoleWatch::new(
            console,
            text,
            marker_control.clone(),
        ));
    }
    let platform = Platform::build_checked(config, console, &opts.console_name, opts.check)?;
    let _ = marker_control.set(platform.control.clone());
    if matches!(&opts.snapshot, Some(r) if r.marker == Marker::Port) {
        platform.marker_port.arm();
    }
    let summary = crate::snapshot::machine_summary(config, &platform.models());
    if let Some(snap) = &restored {
        let diffs = snap.manifest.machine.differences(&summary);
        if !diffs.is_empty() {
            return Err(Error::Snapshot(format!(
                "{} was taken on another machine: {}",
                opts.restore.as_deref().unwrap_or(std::path::Path::new("")).display(),
                diffs.join("; ")
            )));
        }
    }
    // A restore needs nothing of the payload: memory and registers come from the snapshot.
    let payload = match &restored {
        None => Some(Payload::prepare(config)?),
        Some(_) => None,
    };
    if let Some(TraceOutput {
        target: TraceTarget::File(path),
        ..
    }) = &opts.trace
    {
        let mut others = config.input_files();
        others.extend(config.fifo_output_files());
        crate::files::check_output(path, "the trace", &others).map_err(|e| Error::Output(Box::new(e)))?;
    }
    let dtb = match payload {
        Some(Payload::Kernel(_)) => {
            Some(crate::fdt::dtb(config, &platform).map_err(|e| Error::BootSetup(format!("device tree: {e}")))?)
        }
        Some(Payload::Firmware(_)) | None => None,
    };
    let kvm = Kvm::new().map_err(Error::KvmOpen)?;
    config.check_vcpus(kvm.get_max_vcpus())?;
    platform.check_memslots(
        config,
        layout::ram_regions(config.memory_bytes()).len(),
        kvm.get_nr_memslots(),
    )?;
    let vm = Arc::new(kvm.create_vm().map_err(|e| Error::Kvm("KVM_CREATE_VM", e))?);
    vm.set_tss_address(KVM_TSS_ADDRESS)
        .map_err(|e| Error::Kvm("KVM_SET_TSS_ADDR", e))?;
    vm.create_irq_chip().map_err(|e| Error::Kvm("KVM_CREATE_IRQCHIP", e))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(|e| Error::Kvm("KVM_CREATE_PIT2", e))?;
    let mem_bytes = config.memory_bytes();
    let image = restored
        .as_ref()
        .map(|s| crate::snapshot::MemoryImage::open(&s.memory, &s.manifest.memory))
        .transpose()?;
    let mem = create_memory(&vm, mem_bytes, image.as_ref())?;
    let device_memory = map_device_memslots(&vm, &platform, mem.num_regions(), image.as_ref())?;
    let irqfds = bind_irq_lines(&vm, &platform)?;
    if let Some(agent) = &platform.agent {
        agent.set_machine(config, &platform);
        agent.set_memory(mem.clone());
    }

    let entry = payload.map(|p| p.load(&mem, mem_bytes, dtb.as_deref())).transpose()?;
    let vcpus = config.machine.vcpus;
    let mut fds = Vec::with_capacity(usize::from(vcpus));
    for i in 0..vcpus {
        let fd = vm
            .create_vcpu(u64::from(i))
            .map_err(|e| Error::Kvm("KVM_CREATE_VCPU", e))?;
        boot::cpu::setup_vcpu_common(&kvm, &fd, i)?;
        match (&restored, entry) {
            (Some(snap), _) => {
                let state = snap
                    .state
                    .vcpus
                    .get(usize::from(i))
                    .ok_or_else(|| Error::Snapshot(format!("the snapshot holds no state for vCPU {i}")))?;
                crate::snapshot::restore_vcpu(&fd, usize::from(i), state)?;
            }
            (None, Some((mode, regs))) if i == 0 => boot::cpu::setup_boot_vcpu(&fd, &mem, mode, regs)?,
            _ => {}
        }
        fds.push(fd);
    }
    if let Some(snap) = &restored {
        crate::snapshot::restore_vm(&vm, &snap.state.vm)?;
        // The clock first: a described device hands its waiting deadline to the scheduler.
        platform.clock.resume_at(snap.state.clock_ns);
        crate::snapshot::restore_devices(&platform.stateful, &snap.state.devices)?;
    }
    // What a snapshot's save needs, asked of KVM while set-up ioctls are still allowed.
    let snapshot_caps = match &opts.snapshot {
        Some(_) => Some(Arc::new(VcpuCaps {
            irqfds: Some(Arc::new(crate::snapshot::IrqfdDrain::new(vm.clone(), irqfds))),
            ..VcpuCaps::of(&kvm)?
        })),
        None => None,
    };
    let tsc_khz = match (&opts.snapshot, fds.first()) {
        (Some(_), Some(fd)) => fd.get_tsc_khz().ok(),
        _ => None,
    };
    let saved_vcpus: SavedVcpus = Arc::new(std::sync::Mutex::new(vec![None; usize::from(vcpus)]));

    install_kick_handler()?;
    let mut events = event_loop(&platform, &sources)?;
    if let Some(signals) = opts.stop_signals {
        let failures = InitFailures::default();
        events.add_subscriber(Box::new(SignalWatch::new(
            signals,
            platform.control.clone(),
            failures.clone(),
        )));
        if let Some(why) = failures.take() {
            return Err(Error::Host("setting up the event loop", std::io::Error::other(why)));
        }
    }
    // Nothing can refuse the run from here on: only now are output files truncated.
    platform.open_host_outputs().map_err(|e| Error::Output(Box::new(e)))?;
    let tracer = opts.trace.map(|t| start_trace(&platform, t, !opts.check)).transpose()?;
    if let (Some(tracer), Some(seq)) = (&tracer, restored.as_ref().and_then(|s| s.state.trace_seq)) {
        tracer.start_at_seq(seq);
    }
    if let (Some(agent), Some(tracer)) = (&platform.agent, &tracer) {
        agent.set_tracer(tracer.clone());
    }
    // The checker takes the tracer's place as the described devices' sink and forwards.
    let checker = opts.check.then(|| {
        let checker = Arc::new(crate::check::Checker::new(config, &platform, tracer.clone()));
        crate::check::Checker::attach(&checker, &platform);
        checker
    });
    if let Some(checker) = &checker {
        watch_resamples(&vm, checker, &mut events)?;
    }
    let control = platform.control.clone();
    let mut threads: Vec<JoinHandle<VcpuStats>> = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        let index = i as u32;
        let mut vcpu = Vcpu::new(
            fd,
            index,
            platform.bus.clone(),
            tracer.clone(),
            control.clone(),
            mem.clone(),
        );
        if let Some(agent) = &platform.agent {
            vcpu.attach_agent(agent.clone());
        }
        let confinement = confinement.clone();
        let (caps, saved) = (snapshot_caps.clone(), saved_vcpus.clone());
        let spawned = std::thread::Builder::new().name(format!("vcpu{i}")).spawn(move || {
            confinement.enter(ThreadKind::Vcpu(index));
            vcpu.run(caps.as_deref().map(|c| (c, &saved)))
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                control.request_stop(StopReason::Fault(format!("cannot start vCPU {i}: {e}")));
                break;
            }
        }
    }
    let mut spawned = threads.len();
    let vmm = {
        let (control, tracer, confinement) = (control.clone(), tracer.clone(), confinement.clone());
        let checker = checker.clone();
        let vm_for_save = opts.snapshot.is_some().then(|| vm.clone());
        std::thread::Builder::new().name("vmm".to_owned()).spawn(move || {
            confinement.enter(ThreadKind::Vmm);
            vmm_thread(
                events,
                threads,
                &control,
                tracer.as_deref(),
                checker.as_deref(),
                vm_for_save.as_deref().map(|vm| (vm, tsc_khz)),
            )
        })
    };
    let vmm = match vmm {
        Ok(t) => {
            spawned += 1;
            Some(t)
        }
        Err(e) => {
            // The vCPU threads went with the closure: they are released below and stop at
            // once; the process ending takes them.
            control.request_stop(StopReason::Fault(format!("cannot start the VMM thread: {e}")));
            None
        }
    };
    // From here on this thread runs filtered too; the guest starts when every thread is.
    let refused = confinement.open(spawned);
    if let Some(why) = &refused {
        control.request_stop(StopReason::Fault(format!("seccomp: {why}")));
    }
    let (totals, trace_error, vm_state) = match vmm.map(JoinHandle::join) {
        Some(Ok(done)) => done,
        Some(Err(_)) => {
            control.request_stop(StopReason::Fault("the VMM thread panicked".to_owned()));
            (VcpuStats::default(), None, None)
        }
        None => (VcpuStats::default(), None, None),
    };
    if let Some(why) = refused {
        return Err(Error::Seccomp(crate::seccomp::SeccompError::NotInstalled(why)));
    }
    let mut findings = checker.map(|c| c.findings()).unwrap_or_default();
    if let Some(agent) = &platform.agent {
        let (records, bad) = agent.record_counts();
        log::info!("mmiolab agent: {records} records from the guest agent, {bad} unreadable");
        findings.extend(agent.findings());
    }
    let snapshot = match (&opts.snapshot, control.reason(), vm_state) {
        (Some(req), Some(StopReason::Snapshot(_)), Some(vm_state)) => {
            let state = mmiolab_snapshot::State {
                clock_ns: mmiolab_devices::Clock::now_ns(&*platform.clock),
                trace_seq: tracer.as_ref().map(|t| t.next_seq()),
                vm: vm_state.map_err(Error::SnapshotSave)?,
                vcpus: take_vcpu_states(&saved_vcpus)?,
                devices: crate::snapshot::save_devices(&platform.stateful),
            };
            crate::snapshot::write(&req.dir, summary, &state, &mem, &platform, &device_memory)?;
            Some(req.dir.clone())
        }
        _ => None,
    };
    Ok(RunReport {
        snapshot,
        reason: control
            .reason()
            .unwrap_or_else(|| StopReason::Fault("the VM stopped without a reason".to_owned())),
        unmapped: platform.bus.unmapped_counts(),
        exits: totals.exits,
        int3_reinjected: totals.int3_reinjected,
        trace_error,
        findings,
    })
}

/// The VMM thread: the event loop until the VM stops, then every vCPU kicked out of
/// KVM_RUN and joined, and the trace finished (it then holds every access up to the stop).
fn vmm_thread(
    mut events: EventLoop,
    threads: Vec<JoinHandle<VcpuStats>>,
    control: &VmControl,
    tracer: Option<&Tracer>,
    checker: Option<&crate::check::Checker>,
    vm_for_save: Option<(&VmFd, Option<u32>)>,
) -> VmmEnd {
    while !control.is_stopping() {
        // Only a broken epoll fd fails here (EINTR returns Ok): retrying would spin.
        if let Err(e) = events.run() {
            control.request_stop(StopReason::Fault(format!("the VMM's event loop failed: {e:?}")));
        }
    }
    stop_vcpus(&threads);
    let mut totals = VcpuStats::default();
    for t in threads {
        match t.join() {
            Ok(stats) => {
                totals.exits += stats.exits;
                totals.int3_reinjected += stats.int3_reinjected;
            }
            Err(_) => control.request_stop(StopReason::Fault("a vCPU thread panicked".to_owned())),
        }
    }
    // EOIs the loop had not read yet may complete an irq-stuck finding, whose line goes
    // into the trace: before it is finished.
    if let Some(checker) = checker {
        checker.drain_resamples();
    }
    // Every vCPU is out of KVM_RUN: the interrupt controllers and the clock hold still.
    let vm_state = match (vm_for_save, control.reason()) {
        (Some((vm, tsc_khz)), Some(StopReason::Snapshot(_))) => Some(crate::snapshot::save_vm(vm, tsc_khz)),
        _ => None,
    };
    // Write what is buffered (and close a Perfetto document).
    let trace_error = tracer.and_then(|t| t.finish().err());
    (totals, trace_error, vm_state)
}

/// What the VMM thread hands back: exit counts, a trace failure, and the VM-wide state
/// when the VM stopped for a snapshot.
type VmmEnd = (
    VcpuStats,
    Option<crate::trace::TraceFailure>,
    Option<std::result::Result<mmiolab_snapshot::VmState, String>>,
);

/// Each vCPU's saved state, in order; a vCPU whose save failed fails the snapshot.
fn take_vcpu_states(saved: &SavedVcpus) -> Result<Vec<mmiolab_snapshot::VcpuState>> {
    let mut slots = saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    slots
        .iter_mut()
        .enumerate()
        .map(|(i, s)| match s.take() {
            Some(Ok(state)) => Ok(state),
            Some(Err(why)) => Err(Error::SnapshotSave(format!("vCPU {i}: {why}"))),
            None => Err(Error::SnapshotSave(format!(
                "vCPU {i} stopped without saving its state"
            ))),
        })
        .collect()
}

/// What the event loop watches, from the run's options.
struct LoopSources {
    stdin: bool,
    timeout: Option<Duration>,
    watch_stdio: bool,
}

impl RunOptions {
    fn events(&self) -> LoopSources {
        LoopSources {
            stdin: self.stdin,
            timeout: self.timeout,
            watch_stdio: self.watch_stdio,
        }
    }
}

/// Guest RAM for `mem_bytes` (see `layout::ram_regions`), registered with `vm` as memslots:
/// anonymous memory, or a snapshot's memory file mapped copy-on-write.
pub fn create_memory(
    vm: &VmFd,
    mem_bytes: u64,
    image: Option<&crate::snapshot::MemoryImage>,
) -> Result<GuestMemoryMmap> {
    let ranges: Vec<(GuestAddress, usize)> = layout::ram_regions(mem_bytes)
        .into_iter()
        .map(|(start, size)| usize::try_from(size).map(|s| (start, s)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Memory("RAM size does not fit this host's address space".to_owned()))?;
    let mem = match image {
        None => GuestMemoryMmap::from_ranges(&ranges).map_err(|e| Error::Memory(e.to_string()))?,
        Some(image) => image.ram(&ranges)?,
    };
    for (slot, region) in mem.iter().enumerate() {
        let desc = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
            flags: 0,
        };
        // SAFETY: the region is a live mapping of exactly `memory_size` bytes owned by
        // `mem`, which every vCPU thread holds a clone of until the VM is gone.
        unsafe { vm.set_user_memory_region(desc) }.map_err(|e| Error::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(mem)
}

/// Maps the memslot-backed windows of described devices, as KVM memslots numbered from
/// `first_slot`. The returned mappings must outlive the VM.
fn map_device_memslots(
    vm: &VmFd,
    platform: &Platform,
    first_slot: usize,
    image: Option<&crate::snapshot::MemoryImage>,
) -> Result<Vec<MmapRegion>> {
    let mut maps = Vec::new();
    for (i, w) in platform.memslots.iter().enumerate() {
        let size = usize::try_from(w.size)
            .map_err(|_| Error::Memory(format!("memory window {} is too large for this host", w.name)))?;
        let map = match image {
            Some(image) => image.piece(&w.name, w.addr, size)?,
            None => MmapRegion::new(size).map_err(|e| Error::Memory(format!("memory window {}: {e}", w.name)))?,
        };
        if w.fill != 0 && image.is_none() {
            let fill = vec![w.fill; size];
            map.as_volatile_slice().copy_from(&fill);
        }
        let desc = kvm_userspace_memory_region {
            slot: u32::try_from(first_slot + i).unwrap_or(u32::MAX),
            guest_phys_addr: w.addr,
            memory_size: w.size,
            userspace_addr: map.as_ptr() as u64,
            flags: if w.readonly { KVM_MEM_READONLY } else { 0 },
        };
        // SAFETY: `map` is a live mapping of exactly `memory_size` bytes, returned to the
        // caller, which keeps it until the VM and its vCPUs are gone.
        unsafe { vm.set_user_memory_region(desc) }.map_err(|e| Error::Kvm("KVM_SET_USER_MEMORY_REGION", e))?;
        maps.push(map);
    }
    Ok(maps)
}

/// Command line used when the machine file gives none.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// A signal whose only job is to make a vCPU thread's KVM_RUN return EINTR.
fn install_kick_handler() -> Result<()> {
    register_signal_handler(SIGRTMIN(), on_kick).map_err(|e| {
        Error::Host(
            "installing the vCPU kick signal handler",
            std::io::Error::from_raw_os_error(e.errno()),
        )
    })
}

/// The VMM thread's loop with all its sources: built before any vCPU runs, so that a
/// source it cannot watch stops the run before the guest starts rather than leave the loop
/// deaf (waiting for a stop it would never see).
fn event_loop(platform: &Platform, sources: &LoopSources) -> Result<EventLoop> {
    let LoopSources {
        stdin,
        timeout,
        watch_stdio,
    } = *sources;
    let host = |e| Error::Host("setting up the event loop", e);
    let mut events = EventLoop::new().map_err(|e| host(std::io::Error::other(format!("{e:?}"))))?;
    let failures = InitFailures::default();
    events.add_subscriber(Box::new(StopWatch::new(platform.control.clone(), failures.clone())));
    events.add_subscriber(Box::new(DeferredWork::new(
        platform.scheduler.clone(),
        failures.clone(),
    )));
    if let Some(t) = timeout {
        let timeout = Timeout::new(t, platform.control.clone(), failures.clone()).map_err(host)?;
        events.add_subscriber(Box::new(timeout));
    }
    for input in &platform.host_inputs {
        events.add_subscriber(Box::new(HostFeed::new(input).map_err(host)?));
    }
    if watch_stdio {
        use std::os::fd::AsRawFd;
        let control = platform.control.clone();
        events.add_subscriber(Box::new(OutputWatch::new(
            std::io::stdout().as_raw_fd(),
            "standard output",
            control.clone(),
        )));
        events.add_subscriber(Box::new(OutputWatch::new(
            std::io::stderr().as_raw_fd(),
            "standard error",
            control,
        )));
    }
    // A FIFO that reads stdin takes it from COM1: one reader per input.
    if stdin && !platform.host_inputs.iter().any(HostInput::is_stdin) {
        events.add_subscriber(Box::new(StdinToSerial::new(platform.serial.clone())));
    }
    match failures.take() {
        Some(why) => Err(host(std::io::Error::other(why))),
        None => Ok(events),
    }
}

/// Binds every interrupt line: edge lines as irqfds, level lines to the in-kernel
/// interrupt controller through KVM_IRQ_LINE (see mmiolab_devices::IrqLine for why).
///
/// On a host that EOIs level interrupts at delivery a line left high would be delivered
/// again the moment the handler returns, before it could clear the cause; there a level
/// line's rising edge raises the pin through a resampling irqfd, and KVM lowers it when it
/// acknowledges the interrupt, in the same kernel step. (Two KVM_IRQ_LINE calls from the
/// VMM leave the pin high while the VMM thread can be preempted between them, and a guest
/// that takes the interrupt in that window gets it twice: seen under load, about one run in
/// ten. A plain irqfd's raise-then-lower in a kernel work item has the same window, smaller:
/// seen once under heavy load, `coverage_of_described_is_exact`.)
///
/// Returns the irqfds registered (a duplicate of each eventfd, and its GSI), which a snapshot
/// drains before reading the interrupt controllers (crate::snapshot::IrqfdDrain).
fn bind_irq_lines(vm: &Arc<VmFd>, platform: &Platform) -> Result<Vec<(vmm_sys_util::eventfd::EventFd, u32)>> {
    let eoi_at_delivery = host_eois_level_interrupts_at_delivery();
    if eoi_at_delivery && platform.irq_lines.iter().any(|l| l.trigger() == IrqTrigger::Level) {
        log::info!(
            "this host's KVM (kvm_pvm) ends level-triggered interrupts when it delivers them: \
             level lines fire once per rising edge here, and are not re-delivered while held"
        );
    }
    let chip: Arc<dyn IrqChip> = Arc::new(KvmIrqChip { vm: vm.clone() });
    let mut irqfds = Vec::new();
    for line in &platform.irq_lines {
        match line.trigger() {
            IrqTrigger::Level if !eoi_at_delivery => line.connect(chip.clone()),
            // An unconnected level line signals its eventfd on each rising edge.
            IrqTrigger::Level | IrqTrigger::Edge => {
                if line.trigger() == IrqTrigger::Level {
                    // A resampling irqfd raises the pin, and KVM lowers it itself when the
                    // interrupt is acknowledged (here: at delivery). A plain irqfd raises and
                    // lowers it in two steps of a kernel work item, which can be preempted
                    // between them: a guest that took the interrupt and returned from its
                    // handler meanwhile found the pin still high and got it again (seen under
                    // load). The resample eventfd is never read: nothing is re-raised.
                    let resample = vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK)
                        .map_err(|e| Error::Host("creating an interrupt line's resample eventfd", e))?;
                    vm.register_irqfd_with_resample(line.event(), &resample, line.gsi())
                        .map_err(|e| Error::Kvm("KVM_IRQFD (resample)", e))?;
                } else {
                    vm.register_irqfd(line.event(), line.gsi())
                        .map_err(|e| Error::Kvm("KVM_IRQFD", e))?;
                }
                let evt = line
                    .event()
                    .try_clone()
                    .map_err(|e| Error::Host("duplicating an interrupt line's eventfd", e))?;
                irqfds.push((evt, line.gsi()));
            }
        }
    }
    Ok(irqfds)
}

/// With `--check`: a resample irqfd on each watched level line, whose EOIs the event loop
/// reports to the checker (`irq-stuck`). Its trigger eventfd is never written, so it adds
/// no interrupt: the pin's level stays the OR of KVM_IRQ_LINE's and this (always low) source.
fn watch_resamples(vm: &VmFd, checker: &Arc<crate::check::Checker>, events: &mut EventLoop) -> Result<()> {
    use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
    let host = |e| Error::Host("watching the resamples of level interrupts", e);
    let mut kept = Vec::new();
    for gsi in checker.level_gsis() {
        let trigger = EventFd::new(EFD_NONBLOCK).map_err(host)?;
        let resample = EventFd::new(EFD_NONBLOCK).map_err(host)?;
        vm.register_irqfd_with_resample(&trigger, &resample, gsi)
            .map_err(|e| Error::Kvm("KVM_IRQFD (resample)", e))?;
        kept.push((gsi, resample.try_clone().map_err(host)?));
        events.add_subscriber(Box::new(crate::events::Resamples::new(
            trigger,
            resample,
            gsi,
            checker.clone(),
        )));
    }
    checker.keep_resamples(kept);
    Ok(())
}

/// The software KVM of this project's machines (kvm_pvm) EOIs a level-triggered interrupt
/// at delivery, before the guest's handler runs (measured: the IOAPIC re-delivers a line
/// that is still high as soon as the handler returns, even when the handler never EOIs).
fn host_eois_level_interrupts_at_delivery() -> bool {
    std::path::Path::new("/sys/module/kvm_pvm").exists()
}

/// The in-kernel IOAPIC (and PIC), as level lines see it.
struct KvmIrqChip {
    vm: Arc<VmFd>,
}

impl IrqChip for KvmIrqChip {
    fn set_irq_line(&self, gsi: u32, level: bool) -> std::io::Result<()> {
        self.vm
            .set_irq_line(gsi, level)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
    }
}

/// The tracer for `t`, told which devices trace themselves and (with `attach`; the register
/// checker attaches itself instead and forwards) attached to them. Its clock is the
/// machine's, so `t_ns` and the `due_ns` of scheduled effects compare directly. Its first
/// failed write stops the run.
fn start_trace(platform: &Platform, t: TraceOutput, attach: bool) -> Result<Arc<Tracer>> {
    let clock = platform.scheduler.clock().clone();
    let (out, name): (Box<dyn TraceStore>, String) = match t.target {
        TraceTarget::File(path) => {
            let file = crate::files::create_output(&path).map_err(|e| Error::Output(Box::new(e)))?;
            (Box::new(file), format!("the trace file {}", path.display()))
        }
        TraceTarget::Writer(w) => (Box::new(w), "the trace".to_owned()),
    };
    let mut tracer = Tracer::new(platform.bus.clone(), out, clock, &t.options);
    tracer.set_stop_on_failure(platform.control.clone(), name);
    tracer.set_self_traced_all(platform.self_traced.iter().map(|s| (s.space, s.region)));
    let tracer = Arc::new(tracer);
    for s in platform.self_traced.iter().filter(|_| attach) {
        s.attach.attach_sink(tracer.clone());
    }
    Ok(tracer)
}

/// Interrupts every vCPU until its thread has seen the stop and returned. A kick can land
/// just before a thread enters KVM_RUN, so keep kicking until each one is out.
fn stop_vcpus(threads: &[JoinHandle<VcpuStats>]) {
    while threads.iter().any(|t| !t.is_finished()) {
        for t in threads.iter().filter(|t| !t.is_finished()) {
            if let Err(e) = t.kill(SIGRTMIN()) {
                log::debug!("kicking a vCPU thread: {e}");
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
