//! Snapshot and restore of a whole VM (docs/snapshot.md): taking KVM's state out of the
//! vCPUs and the VM, the devices' states out of the platform, and putting them back into a
//! freshly built machine of the same description. The file format is crates/snapshot's.
//!
//! Where each part is taken, and why there:
//! - each vCPU's registers, on its own thread when its run loop ends ([`save_vcpu`]): first
//!   a KVM_RUN with `immediate_exit` set completes the exit being served (an `in`'s value
//!   written to RAX, RIP past an `out`), which KVM does only on the next entry; before the
//!   first vCPU's, the interrupts still on their way through irqfds are let in
//!   ([`IrqfdDrain`]);
//! - the in-kernel irqchip, PIT and kvmclock, on the VMM thread once every vCPU is joined
//!   ([`save_vm`]);
//! - devices and memory, on the calling thread, which writes the files.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, Msrs, kvm_clock_data, kvm_debugregs, kvm_fpu,
    kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events,
    kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{VcpuFd, VmFd};
use mmiolab_devices::{DeviceState, StopReason, VmControl};
use mmiolab_snapshot::{DeviceEntry, DeviceSummary, MachineSummary, VcpuState, VmState};

use crate::config::MachineConfig;
use crate::error::{Error, Result};

/// When to take the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The guest writes any value to [`SNAPSHOT_PORT`].
    Port,
    /// The guest console prints a line containing this text (the snapshot is taken when the
    /// text's last byte is written, so the rest of that line goes to the restored run).
    Console(String),
}

/// The I/O port whose write marks the snapshot point with `--snapshot-after port`. Without
/// that option a write there does nothing, so a program may mark its point and run either way.
pub const SNAPSHOT_PORT: u16 = 0xf8;

impl Marker {
    /// Parses `--snapshot-after`'s value: `port`, or `console:TEXT`.
    pub fn parse(text: &str) -> std::result::Result<Marker, String> {
        match text.split_once(':') {
            _ if text == "port" => Ok(Marker::Port),
            Some(("console", t)) if !t.is_empty() && !t.contains('\n') => Ok(Marker::Console(t.to_owned())),
            _ => Err(format!(
                "`{text}`: give `port` (a write to I/O port {SNAPSHOT_PORT:#x}) or `console:TEXT` (a console line containing TEXT)"
            )),
        }
    }

    /// The stop reason this marker gives.
    pub fn reason(&self) -> StopReason {
        StopReason::Snapshot(match self {
            Marker::Port => format!("a write to port {SNAPSHOT_PORT:#x}"),
            Marker::Console(t) => format!("the console printed `{t}`"),
        })
    }
}

/// Take a snapshot at `marker` into `dir`, and end the run there.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    /// When.
    pub marker: Marker,
    /// Where (created if missing; an existing one must be empty or hold a snapshot).
    pub dir: PathBuf,
}

/// The port device of [`Marker::Port`]: a write stops the VM for the snapshot when armed.
pub struct MarkerPort {
    control: Arc<VmControl>,
    armed: std::sync::atomic::AtomicBool,
}

impl MarkerPort {
    /// A port that stops the VM through `control` once armed.
    pub fn new(control: Arc<VmControl>) -> MarkerPort {
        MarkerPort {
            control,
            armed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Makes a write stop the VM for the snapshot (`--snapshot-after port`).
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl vm_device::DevicePio for MarkerPort {
    fn pio_read(&self, _: vm_device::bus::PioAddress, _: vm_device::bus::PioAddressOffset, data: &mut [u8]) {
        data.fill(0);
    }

    fn pio_write(&self, _: vm_device::bus::PioAddress, _: vm_device::bus::PioAddressOffset, _: &[u8]) {
        if self.armed.load(std::sync::atomic::Ordering::Relaxed) {
            self.control.request_stop(Marker::Port.reason());
        }
    }
}

/// The console's writer with [`Marker::Console`] watched: the stop is requested once, when
/// the text has been written, on the thread that writes it (a vCPU's), so the vCPU stops
/// right after that `out`.
pub struct ConsoleWatch {
    inner: Box<dyn std::io::Write + Send>,
    text: Vec<u8>,
    /// The last `text.len()` bytes of the current line.
    tail: Vec<u8>,
    control: Arc<std::sync::OnceLock<Arc<VmControl>>>,
    seen: bool,
}

impl ConsoleWatch {
    /// Watches `inner` for `text`; the stop goes to the control set in `control` (the
    /// platform makes the control after the console).
    pub fn new(
        inner: Box<dyn std::io::Write + Send>,
        text: &str,
        control: Arc<std::sync::OnceLock<Arc<VmControl>>>,
    ) -> ConsoleWatch {
        ConsoleWatch {
            inner,
            text: text.as_bytes().to_vec(),
            tail: Vec::with_capacity(text.len()),
            control,
            seen: false,
        }
    }

    fn look(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.seen {
                return;
            }
            if b == b'\n' {
                self.tail.clear();
                continue;
            }
            if self.tail.len() == self.text.len() {
                self.tail.remove(0);
            }
            self.tail.push(b);
            if self.tail == self.text {
                self.seen = true;
                if let Some(c) = self.control.get() {
                    c.request_stop(Marker::Console(String::from_utf8_lossy(&self.text).into_owned()).reason());
                }
            }
        }
    }
}

impl std::io::Write for ConsoleWatch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.look(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// KVM structures a snapshot carries as their raw bytes: plain C structures of integers
/// and integer arrays, for which every byte pattern is a value.
trait Raw: Default {}
impl Raw for kvm_regs {}
impl Raw for kvm_sregs {}
impl Raw for kvm_fpu {}
impl Raw for kvm_xsave {}
impl Raw for kvm_xcrs {}
impl Raw for kvm_debugregs {}
impl Raw for kvm_lapic_state {}
impl Raw for kvm_vcpu_events {}
impl Raw for kvm_mp_state {}
impl Raw for kvm_irqchip {}
impl Raw for kvm_pit_state2 {}
impl Raw for kvm_clock_data {}

fn to_blob<T: Raw>(v: &T) -> String {
    // SAFETY: `v` is a live `T`, read as `size_of::<T>()` bytes. Every value saved came from
    // a KVM GET ioctl, which writes the whole structure (its padding fields included).
    let bytes = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) };
    mmiolab_devices::to_hex(bytes)
}

fn from_blob<T: Raw>(what: &str, hex: &str) -> std::result::Result<T, String> {
    let bytes = mmiolab_devices::from_hex(hex).ok_or_else(|| format!("{what}: not hex"))?;
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(format!(
            "{what}: {} bytes, the structure has {}",
            bytes.len(),
            std::mem::size_of::<T>()
        ));
    }
    // SAFETY: `bytes` holds exactly `size_of::<T>()` bytes and `T` is `Raw`: any bytes are
    // a value; read_unaligned because a Vec<u8> has no alignment for `T`.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The VM's irqfds, unregistered once, before the first vCPU's state is read.
///
/// KVM injects an irqfd's interrupt into the IOAPIC from a kernel work item, some time after
/// the device's write to the eventfd returned: a device can raise an interrupt (a delayed
/// effect on the event loop, under its lock, before the guest can see the status bit) that
/// reaches the LAPIC only after the snapshot read it, and the restored guest never gets it
/// (seen under load, the pending level interrupt of tests/snapshot.rs). Unregistering an
/// irqfd (KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN) waits for its pending injection. The run
/// ends at the snapshot, so nothing needs the irqfds again.
pub struct IrqfdDrain {
    vm: Arc<VmFd>,
    irqfds: Vec<(vmm_sys_util::eventfd::EventFd, u32)>,
    drained: std::sync::OnceLock<()>,
}

impl IrqfdDrain {
    /// The irqfds `irqfds` (eventfd, GSI) registered on `vm`.
    pub fn new(vm: Arc<VmFd>, irqfds: Vec<(vmm_sys_util::eventfd::EventFd, u32)>) -> IrqfdDrain {
        IrqfdDrain {
            vm,
            irqfds,
            drained: std::sync::OnceLock::new(),
        }
    }

    /// Unregisters every irqfd, waiting for the injections in flight; the first caller does
    /// it, the others (the other vCPUs) wait until it is done.
    pub fn drain(&self) {
        self.drained.get_or_init(|| {
            for (evt, gsi) in &self.irqfds {
                if let Err(e) = self.vm.unregister_irqfd(evt, *gsi) {
                    log::warn!("snapshot: unregistering the irqfd of GSI {gsi} failed ({e}): an interrupt raised just before the snapshot may be lost");
                }
            }
        });
    }
}

impl std::fmt::Debug for IrqfdDrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gsis: Vec<u32> = self.irqfds.iter().map(|(_, gsi)| *gsi).collect();
        f.debug_struct("IrqfdDrain").field("gsis", &gsis).finish()
    }
}

/// What a vCPU's save needs from the set-up: which state KVM offers, and the irqfds to
/// drain first.
#[derive(Clone, Debug, Default)]
pub struct VcpuCaps {
    /// The VM's irqfds (none: nothing to drain).
    pub irqfds: Option<Arc<IrqfdDrain>>,
    /// KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores.
    pub msrs: Vec<u32>,
    /// KVM_CAP_XSAVE.
    pub xsave: bool,
    /// KVM_CAP_XCRS.
    pub xcrs: bool,
    /// KVM_CAP_DEBUGREGS.
    pub debugregs: bool,
}

impl VcpuCaps {
    /// What `kvm` offers.
    pub fn of(kvm: &kvm_ioctls::Kvm) -> Result<VcpuCaps> {
        use kvm_ioctls::Cap;
        let msrs = kvm
            .get_msr_index_list()
            .map_err(|e| Error::Kvm("KVM_GET_MSR_INDEX_LIST", e))?
            .as_slice()
            .to_vec();
        Ok(VcpuCaps {
            irqfds: None,
            msrs,
            xsave: kvm.check_extension(Cap::Xsave),
            xcrs: kvm.check_extension(Cap::Xcrs),
            debugregs: kvm.check_extension(Cap::Debugregs),
        })
    }
}

/// Completes the exit being served and takes the vCPU's state. `Err` names the ioctl that
/// failed.
pub fn save_vcpu(fd: &mut VcpuFd, caps: &VcpuCaps) -> std::result::Result<VcpuState, String> {
    let kvm = |what: &str, e: kvm_ioctls::Error| format!("{what} failed: {e}");
    fd.set_kvm_immediate_exit(1);
    let completed = fd.run().map(|_| ()).map_err(|e| e.errno());
    fd.set_kvm_immediate_exit(0);
    match completed {
        // An exit that came before the immediate one (Ok): nothing to complete any more.
        Ok(()) | Err(libc::EINTR) => {}
        Err(errno) => {
            return Err(format!(
                "KVM_RUN (completing the last exit) failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
    }
    let mp_state = fd.get_mp_state().map_err(|e| kvm("KVM_GET_MP_STATE", e))?;
    let regs = fd.get_regs().map_err(|e| kvm("KVM_GET_REGS", e))?;
    let sregs = fd.get_sregs().map_err(|e| kvm("KVM_GET_SREGS", e))?;
    let (xsave, fpu) = if caps.xsave {
        (
            Some(to_blob(&fd.get_xsave().map_err(|e| kvm("KVM_GET_XSAVE", e))?)),
            None,
        )
    } else {
        (None, Some(to_blob(&fd.get_fpu().map_err(|e| kvm("KVM_GET_FPU", e))?)))
    };
    let xcrs = caps
        .xcrs
        .then(|| fd.get_xcrs().map(|x| to_blob(&x)).map_err(|e| kvm("KVM_GET_XCRS", e)))
        .transpose()?;
    let debugregs = caps
        .debugregs
        .then(|| {
            fd.get_debug_regs()
                .map(|x| to_blob(&x))
                .map_err(|e| kvm("KVM_GET_DEBUGREGS", e))
        })
        .transpose()?;
    let lapic = fd.get_lapic().map_err(|e| kvm("KVM_GET_LAPIC", e))?;
    let msrs = read_msrs(fd, &caps.msrs)?;
    let events = fd.get_vcpu_events().map_err(|e| kvm("KVM_GET_VCPU_EVENTS", e))?;
    Ok(VcpuState {
        mp_state: to_blob(&mp_state),
        regs: to_blob(&regs),
        sregs: to_blob(&sregs),
        xsave,
        fpu,
        xcrs,
        debugregs,
        lapic: to_blob(&lapic),
        msrs,
        events: to_blob(&events),
    })
}

/// Every MSR of `list` that KVM reads: KVM_GET_MSRS stops at the first it cannot read
/// (returning how many it read), so that one is skipped and the read goes on after it.
fn read_msrs(fd: &VcpuFd, list: &[u32]) -> std::result::Result<Vec<(u32, u64)>, String> {
    let mut out = Vec::with_capacity(list.len());
    let mut rest = list;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))?;
        let n = fd
            .get_msrs(&mut msrs)
            .map_err(|e| format!("KVM_GET_MSRS failed: {e}"))?;
        out.extend(msrs.as_slice().iter().take(n).map(|e| (e.index, e.data)));
        if let Some(skipped) = rest.get(n) {
            log::debug!("snapshot: MSR {skipped:#x} is in KVM's list but KVM_GET_MSRS cannot read it");
        }
        rest = rest.get(n + 1..).unwrap_or_default();
    }
    Ok(out)
}

/// Puts a saved state into a vCPU that has its CPUID set. The order is KVM's: registers
/// and modes first, the LAPIC before the MSRs (the TSC deadline needs the LAPIC's timer
/// mode), events last (a pending exception refers to the restored state).
pub fn restore_vcpu(fd: &VcpuFd, index: usize, s: &VcpuState) -> Result<()> {
    let bad = |why: String| Error::Snapshot(format!("vCPU {index}: {why}"));
    let kvm = |what: &'static str| move |e| Error::Kvm(what, e);
    fd.set_mp_state(from_blob::<kvm_mp_state>("mp_state", &s.mp_state).map_err(bad)?)
        .map_err(kvm("KVM_SET_MP_STATE"))?;
    fd.set_regs(&from_blob("regs", &s.regs).map_err(bad)?)
        .map_err(kvm("KVM_SET_REGS"))?;
    let mut sregs: kvm_sregs = from_blob("sregs", &s.sregs).map_err(bad)?;
    fit_tr_to_host(&mut sregs, host_is_tcg());
    fd.set_sregs(&sregs).map_err(kvm("KVM_SET_SREGS"))?;
    match (&s.xsave, &s.fpu) {
        (Some(x), _) => {
            let xsave: kvm_xsave = from_blob("xsave", x).map_err(bad)?;
            // SAFETY: a legacy 4 KiB kvm_xsave, which KVM_SET_XSAVE reads whole; this VM
            // never enabled KVM_CAP_XSAVE2's larger area.
            unsafe { fd.set_xsave(&xsave) }.map_err(kvm("KVM_SET_XSAVE"))?;
        }
        (None, Some(f)) => fd
            .set_fpu(&from_blob("fpu", f).map_err(bad)?)
            .map_err(kvm("KVM_SET_FPU"))?,
        (None, None) => return Err(bad("neither xsave nor fpu state".to_owned())),
    }
    if let Some(x) = &s.xcrs {
        fd.set_xcrs(&from_blob("xcrs", x).map_err(bad)?)
            .map_err(kvm("KVM_SET_XCRS"))?;
    }
    if let Some(d) = &s.debugregs {
        fd.set_debug_regs(&from_blob("debugregs", d).map_err(bad)?)
            .map_err(kvm("KVM_SET_DEBUGREGS"))?;
    }
    fd.set_lapic(&from_blob("lapic", &s.lapic).map_err(bad)?)
        .map_err(kvm("KVM_SET_LAPIC"))?;
    let entries: Vec<kvm_msr_entry> = s
        .msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(|e| bad(format!("{} MSRs: {e:?}", entries.len())))?;
    let set = fd.set_msrs(&msrs).map_err(kvm("KVM_SET_MSRS"))?;
    if let Some(refused) = entries.get(set) {
        return Err(bad(format!(
            "KVM_SET_MSRS refused MSR {:#x} (value {:#x}), the {}th of {}",
            refused.index,
            refused.data,
            set + 1,
            entries.len()
        )));
    }
    fd.set_vcpu_events(&from_blob("events", &s.events).map_err(bad)?)
        .map_err(kvm("KVM_SET_VCPU_EVENTS"))?;
    Ok(())
}

/// Whether this process runs inside QEMU's TCG (CPUID leaf 0x40000000 names the hypervisor
/// `TCGTCGTCGTCG`), as mmiolab does in the Linux tier's outer VM here.
fn host_is_tcg() -> bool {
    let r = std::arch::x86_64::__cpuid(0x4000_0000);
    let mut vendor = [0u8; 12];
    for (chunk, reg) in vendor.chunks_exact_mut(4).zip([r.ebx, r.ecx, r.edx]) {
        chunk.copy_from_slice(&reg.to_le_bytes());
    }
    &vendor == b"TCGTCGTCGTCG"
}

/// KVM reports TR as a busy TSS (type 11), and hardware takes it so (VMX even requires it).
/// QEMU's TCG caches TR as `ltr` found it, an available TSS (type 9), and its check of a
/// user-space `in`/`out` against the TSS's I/O bitmap refuses any other type: a restored
/// busy TR made every `out` after `ioperm()` fault in a restored Linux guest, nested under
/// TCG (measured: 2 of the 20 driver tests; none with this). So under TCG, TR goes back as
/// TCG's own `ltr` leaves it.
fn fit_tr_to_host(sregs: &mut kvm_sregs, tcg: bool) {
    const TSS_BUSY: u8 = 0b10;
    if tcg && sregs.tr.type_ == 11 {
        sregs.tr.type_ &= !TSS_BUSY;
    }
}

/// The in-kernel PICs, IOAPIC, PIT and kvmclock, with every vCPU stopped.
pub fn save_vm(vm: &VmFd, tsc_khz: Option<u32>) -> std::result::Result<VmState, String> {
    let chip = |id: u32| {
        let mut c = kvm_irqchip {
            chip_id: id,
            ..Default::default()
        };
        vm.get_irqchip(&mut c)
            .map(|()| to_blob(&c))
            .map_err(|e| format!("KVM_GET_IRQCHIP {id} failed: {e}"))
    };
    Ok(VmState {
        pic_master: chip(KVM_IRQCHIP_PIC_MASTER)?,
        pic_slave: chip(KVM_IRQCHIP_PIC_SLAVE)?,
        ioapic: chip(KVM_IRQCHIP_IOAPIC)?,
        pit: to_blob(&vm.get_pit2().map_err(|e| format!("KVM_GET_PIT2 failed: {e}"))?),
        clock: to_blob(&vm.get_clock().map_err(|e| format!("KVM_GET_CLOCK failed: {e}"))?),
        tsc_khz,
    })
}

/// Puts the saved VM-wide state back. The kvmclock goes on from its saved value (its
/// `flags` cleared: KVM_SET_CLOCK takes only KVM_CLOCK_REALTIME and friends as inputs).
pub fn restore_vm(vm: &VmFd, s: &VmState) -> Result<()> {
    let bad = |why: String| Error::Snapshot(format!("VM state: {why}"));
    for (what, hex) in [
        ("pic_master", &s.pic_master),
        ("pic_slave", &s.pic_slave),
        ("ioapic", &s.ioapic),
    ] {
        let chip: kvm_irqchip = from_blob(what, hex).map_err(bad)?;
        vm.set_irqchip(&chip).map_err(|e| Error::Kvm("KVM_SET_IRQCHIP", e))?;
    }
    vm.set_pit2(&from_blob("pit", &s.pit).map_err(bad)?)
        .map_err(|e| Error::Kvm("KVM_SET_PIT2", e))?;
    let mut clock: kvm_clock_data = from_blob("clock", &s.clock).map_err(bad)?;
    clock.flags = 0;
    vm.set_clock(&clock).map_err(|e| Error::Kvm("KVM_SET_CLOCK", e))?;
    Ok(())
}

/// The devices whose state a snapshot carries, by name: the built-in COM1 (`serial`) and
/// i8042 (`i8042`), and every device of the machine file.
pub type StatefulDevices = Vec<(String, Arc<dyn DeviceState>)>;

/// Each device's state.
pub fn save_devices(devices: &StatefulDevices) -> Vec<DeviceEntry> {
    devices
        .iter()
        .map(|(name, d)| DeviceEntry {
            name: name.clone(),
            saved: d.save_state(),
        })
        .collect()
}

/// Restores each device from its entry; every device must have one.
pub fn restore_devices(devices: &StatefulDevices, saved: &[DeviceEntry]) -> Result<()> {
    for (name, d) in devices {
        let entry = saved
            .iter()
            .find(|e| &e.name == name)
            .ok_or_else(|| Error::Snapshot(format!("the snapshot holds no state for device `{name}`")))?;
        d.restore_state(&entry.saved)
            .map_err(|e| Error::Snapshot(format!("device `{name}`: {e}")))?;
    }
    if let Some(extra) = saved.iter().find(|e| !devices.iter().any(|(n, _)| n == &e.name)) {
        return Err(Error::Snapshot(format!(
            "the snapshot holds a state for device `{}`, which this machine has not",
            extra.name
        )));
    }
    Ok(())
}

/// What of `config`'s machine a snapshot depends on. `models` gives each described
/// device's compiled model, by device name.
pub fn machine_summary(config: &MachineConfig, models: &[(String, Arc<mmiolab_regmodel::Model>)]) -> MachineSummary {
    let devices = config
        .devices
        .iter()
        .map(|d| {
            let model = models.iter().find(|(n, _)| n == &d.name).map(|(_, m)| m);
            let regions = d
                .mmio
                .iter()
                .map(|r| format!("mmio {:#x}+{:#x}", r.base, r.size))
                .chain(d.pio.iter().map(|r| format!("pio {:#x}+{:#x}", r.base, r.size)))
                .collect();
            DeviceSummary {
                name: d.name.clone(),
                model: match d.kind() {
                    crate::config::DeviceModel::Regfile => "regfile".to_owned(),
                    crate::config::DeviceModel::Counter => "counter".to_owned(),
                    _ => "described".to_owned(),
                },
                // The compiled map's every field, through its Debug form: any change to a
                // register, field, FIFO, memory, interrupt or effect changes it.
                layout: model.map(|m| crc32fast::hash(format!("{m:?}").as_bytes())),
                regions,
                irqs: d.irqs().to_vec(),
            }
        })
        .collect();
    MachineSummary {
        vcpus: u32::from(config.machine.vcpus),
        memory_bytes: config.memory_bytes(),
        devices,
    }
}

/// A snapshot's memory file, opened for mapping its pieces copy-on-write.
pub struct MemoryImage {
    file: std::fs::File,
    path: PathBuf,
    layout: mmiolab_snapshot::MemoryLayout,
}

impl MemoryImage {
    /// Opens `path`, whose pieces `layout` gives (checked by the snapshot reader).
    pub fn open(path: &std::path::Path, layout: &mmiolab_snapshot::MemoryLayout) -> Result<MemoryImage> {
        let file = std::fs::File::open(path).map_err(|e| Error::Snapshot(format!("{}: {e}", path.display())))?;
        Ok(MemoryImage {
            file,
            path: path.to_owned(),
            layout: layout.clone(),
        })
    }

    /// Maps piece `name` at guest address `addr`, `size` bytes, private: the guest's writes
    /// go to its own copy of a page, never to the file, and pages never touched are never
    /// read. A piece missing or of another size is refused, naming it.
    pub fn piece(&self, name: &str, addr: u64, size: usize) -> Result<vm_memory::MmapRegion> {
        let r = self
            .layout
            .regions
            .iter()
            .find(|r| r.name == name && r.guest_addr == addr)
            .ok_or_else(|| {
                Error::Snapshot(format!(
                    "the snapshot's memory holds no `{name}` at {addr:#x}: the machine's memory layout differs"
                ))
            })?;
        if r.size != size as u64 {
            return Err(Error::Snapshot(format!(
                "memory `{name}` at {addr:#x} is {:#x} bytes in the snapshot, {size:#x} in this machine",
                r.size
            )));
        }
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::Snapshot(format!("{}: {e}", self.path.display())))?;
        vm_memory::MmapRegion::build(
            Some(vm_memory::FileOffset::new(file, r.offset)),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|e| Error::Memory(format!("mapping `{name}` of {}: {e}", self.path.display())))
    }

    /// Guest RAM, `ranges` as the machine lays it out, each mapped from the file.
    pub fn ram(&self, ranges: &[(vm_memory::GuestAddress, usize)]) -> Result<vm_memory::GuestMemoryMmap> {
        let regions = ranges
            .iter()
            .map(|&(start, size)| {
                let map = self.piece(RAM, start.0, size)?;
                vm_memory::GuestRegionMmap::new(map, start)
                    .ok_or_else(|| Error::Memory(format!("RAM at {:#x} overflows the address space", start.0)))
            })
            .collect::<Result<Vec<_>>>()?;
        vm_memory::GuestMemoryMmap::from_regions(regions).map_err(|e| Error::Memory(e.to_string()))
    }
}

/// The memory file's name for guest RAM's pieces.
const RAM: &str = "ram";

/// Writes the snapshot: guest RAM and the memslot windows (`windows`, in the platform's
/// order) into the memory file, `state`, then the manifest. Called with every vCPU joined.
pub fn write(
    dir: &std::path::Path,
    machine: MachineSummary,
    state: &mmiolab_snapshot::State,
    mem: &vm_memory::GuestMemoryMmap,
    platform: &crate::Platform,
    windows: &[vm_memory::MmapRegion],
) -> Result<()> {
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    // SAFETY (both): each mapping is live for the duration of the write (`mem` and
    // `windows` are borrowed), and no vCPU runs, so nothing writes to it meanwhile.
    let mut pieces: Vec<mmiolab_snapshot::MemoryPiece<'_>> = mem
        .iter()
        .map(|r| mmiolab_snapshot::MemoryPiece {
            name: RAM.to_owned(),
            guest_addr: r.start_addr().0,
            bytes: unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len() as usize) },
        })
        .collect();
    for (w, map) in platform.memslots.iter().zip(windows) {
        pieces.push(mmiolab_snapshot::MemoryPiece {
            name: w.name.clone(),
            guest_addr: w.addr,
            bytes: unsafe { std::slice::from_raw_parts(map.as_ptr(), map.size()) },
        });
    }
    mmiolab_snapshot::write(dir, machine, state, &pieces)?;
    Ok(())
}

/// The vCPU states the vCPU threads hand back when the VM stops for a snapshot, by index.
pub type SavedVcpus = Arc<Mutex<Vec<Option<std::result::Result<VcpuState, String>>>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(Marker::parse("port"), Ok(Marker::Port));
        assert_eq!(
            Marker::parse("console:ready: go"),
            Ok(Marker::Console("ready: go".to_owned()))
        );
        for bad in ["console:", "tty:x", "", "ports"] {
            assert!(Marker::parse(bad).unwrap_err().contains("give `port`"), "{bad}");
        }
    }

    #[test]
    fn blobs_round_trip_and_a_wrong_size_is_refused() {
        let regs = kvm_regs {
            rip: 0x1234,
            rax: 7,
            ..Default::default()
        };
        let back: kvm_regs = from_blob("regs", &to_blob(&regs)).unwrap();
        assert_eq!((back.rip, back.rax), (0x1234, 7));
        assert_eq!(
            from_blob::<kvm_regs>("regs", "00").unwrap_err(),
            format!("regs: 1 bytes, the structure has {}", std::mem::size_of::<kvm_regs>())
        );
        assert_eq!(from_blob::<kvm_regs>("regs", "zz").unwrap_err(), "regs: not hex");
    }

    #[test]
    fn tr_is_made_available_only_under_tcg() {
        let mut sregs = kvm_sregs::default();
        sregs.tr.type_ = 11;
        fit_tr_to_host(&mut sregs, false);
        assert_eq!(sregs.tr.type_, 11, "hardware KVM takes the busy TSS as reported");
        fit_tr_to_host(&mut sregs, true);
        assert_eq!(sregs.tr.type_, 9);
        sregs.tr.type_ = 3;
        fit_tr_to_host(&mut sregs, true);
        assert_eq!(sregs.tr.type_, 3, "a 16-bit TSS is left alone");
    }

    #[test]
    fn the_console_watch_stops_once_on_the_text_within_a_line() {
        let control = Arc::new(VmControl::new().unwrap());
        let cell = Arc::new(std::sync::OnceLock::new());
        let _ = cell.set(control.clone());
        let mut w = ConsoleWatch::new(Box::new(std::io::sink()), "ready", cell);
        use std::io::Write;
        w.write_all(b"rea\ndy\nalmost rea").unwrap();
        assert!(!control.is_stopping(), "the text split by a newline is not a match");
        w.write_all(b"dy now\n").unwrap();
        assert_eq!(
            control.reason(),
            Some(StopReason::Snapshot("the console printed `ready`".to_owned()))
        );
    }
}
