//! The platform: built-in PC devices plus the configured ones, on one [`Bus`].
//!
//! Built in, always present: the i8042 (0x60-0x64, IRQ 1, so a guest reboot ends the
//! VM and Linux's keyboard-controller probe ends at once), the
//! test-exit device (0xf4-0xf7), the snapshot marker port (0xf8: a write is the snapshot point of
//! `--snapshot-after port`, and does nothing without it), COM1 (0x3f8-0x3ff, IRQ 4), pvpanic-mmio (a guest panic ends
//! the VM) and the system controller (a guest power-off ends the VM).
//!
//! Naming: a device that has a `compatible` is described to a Linux guest by a device-tree
//! node `name@unit-address`, and the kernel names its resources after that node; its regions
//! carry the same name here, so the host's tree and the guest's `/proc/iomem` line up.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmiolab_bus::{AddressSpace, Bus, BusBuilder, BusError, RegionId, RegionKind};
use mmiolab_devices::{
    Counter, DeviceState, EXIT_PORT, ExitDevice, I8042, IrqLine, MonotonicClock, PvPanic, RegFile, SYSCTL_SIZE,
    Scheduler, Serial, Space, SysCtl, TraceSink, VmControl,
};
use mmiolab_regmodel::DescribedDevice;
use mmiolab_regmodel::schema::{Backing, Description};

use crate::config::{ConfigError, DeviceConfig, DeviceModel, FifoDirection, FifoHost, MachineConfig, RegionConfig};
use crate::config::{DeviceDtConfig, DtNode, DtValue, dt_children, dt_properties};
use crate::output::{HostFd, Output};
use crate::snapshot::{MarkerPort, SNAPSHOT_PORT, StatefulDevices};

/// COM1's port and IRQ.
pub const COM1: (u16, u32) = (0x3f8, 4);
/// pvpanic-mmio's address (just below the IOAPIC) and size.
pub const PVPANIC: (u64, u64) = (0xfebf_f000, 2);
/// The system controller's address (a page below pvpanic); the device tree describes it
/// as a `syscon` for `syscon-poweroff`.
pub const SYSCTL: u64 = 0xfebf_e000;
/// Ports the test-exit device decodes, as QEMU's `iosize=4`.
const EXIT_PORTS: u16 = 4;
/// The PC's system-BIOS area, 0xf0000-0xfffff: for a Linux guest, read-only zeroed memory
/// when no device claims any of it (see [`bios_area`]).
pub const BIOS_AREA: (u64, u64) = (0xf_0000, 0x1_0000);

/// A device-tree description of one device, for the FDT generator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DtDevice {
    /// The device's name in the machine file, what `&name` references point at; empty for
    /// a built-in device, which nothing references.
    pub name: String,
    /// Node name, `name@unit-address`.
    pub node: String,
    /// `compatible`, most specific first.
    pub compatible: Vec<String>,
    /// The bus it sits on, if any.
    pub bus: Option<String>,
    /// MMIO `reg` entries (base, size).
    pub mmio: Vec<(u64, u64)>,
    /// I/O-port `reg` entries (base, size).
    pub pio: Vec<(u64, u64)>,
    /// `reg-names`, one per `reg` entry; empty for none.
    pub reg_names: Vec<String>,
    /// Its interrupts, line 0 first.
    pub irqs: Vec<DtIrq>,
    /// More properties (`[device.dt] properties`), by name.
    pub properties: Vec<(String, DtValue)>,
    /// Child nodes (`[[device.dt.child]]`).
    pub children: Vec<DtNode>,
}

/// The interrupt of a device-tree device: an IOAPIC pin and how it triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtIrq {
    /// IOAPIC pin (GSI).
    pub gsi: u32,
    /// Level-triggered, active high; otherwise edge-triggered on the rising edge.
    pub level: bool,
}

impl DtDevice {
    /// The description of configured device `dev` (`key` in errors), whose DT node is
    /// `node` and whose one region is `region` in `space`; `None` without a `compatible`.
    fn from_config(
        config: &MachineConfig,
        key: &str,
        dev: &DeviceConfig,
        node: String,
        space: AddressSpace,
        region: &RegionConfig,
    ) -> Result<Option<DtDevice>, ConfigError> {
        let Some(compatible) = &dev.compatible else {
            return Ok(None);
        };
        let no_dt = DeviceDtConfig::default();
        let dt = dev.dt.as_ref().unwrap_or(&no_dt);
        let dt_key = format!("{key}.dt");
        // `reg` is the whole region, or the windows `reg_names` names, in its order.
        let mut reg = Vec::new();
        for (k, name) in dt.reg_names.iter().enumerate() {
            let window = region.windows.iter().find(|w| &w.name == name);
            let start = window.and_then(|w| region.base.checked_add(w.offset).map(|start| (start, w.size)));
            reg.push(start.ok_or_else(|| {
                config.error(
                    format!("{dt_key}.reg_names[{k}]"),
                    format!("no window `{name}` in the region"),
                )
            })?);
        }
        if reg.is_empty() {
            reg.push((region.base, region.size));
        }
        let (mmio, pio) = if space == AddressSpace::Mmio {
            (reg, vec![])
        } else {
            (vec![], reg)
        };
        Ok(Some(DtDevice {
            name: dev.name.clone(),
            node,
            compatible: compatible.0.clone(),
            bus: dev.bus.clone(),
            mmio,
            pio,
            reg_names: dt.reg_names.clone(),
            // Edge, as an irqfd delivers; the caller sets `level` for a level-triggered model.
            irqs: dev.irqs().iter().map(|&gsi| DtIrq { gsi, level: false }).collect(),
            properties: with_reg_shift(
                config,
                key,
                dev,
                dt_properties(&dt.properties).map_err(|e| config.dt_error(&dt_key, e))?,
            )?,
            children: dt_children(&dt.children).map_err(|e| config.dt_error(&dt_key, e))?,
        }))
    }
}

/// `properties` with `reg-shift` added from the device's `reg_shift`, so the driver's view of
/// the register spacing cannot disagree with the model's; a `reg-shift` property that says
/// otherwise is refused.
fn with_reg_shift(
    config: &MachineConfig,
    key: &str,
    dev: &DeviceConfig,
    mut properties: Vec<(String, DtValue)>,
) -> Result<Vec<(String, DtValue)>, ConfigError> {
    let Some(shift) = dev.reg_shift else {
        return Ok(properties);
    };
    let want = DtValue::Cells(vec![crate::config::DtCell::Num(shift)]);
    match properties.iter().find(|(n, _)| n == "reg-shift") {
        Some((_, v)) if *v == want => Ok(properties),
        Some(_) => Err(config.error(
            format!("{key}.dt.properties.reg-shift"),
            format!("disagrees with the device's reg_shift = {shift}: leave it out, mmiolab writes it"),
        )),
        None => {
            let at = properties.partition_point(|(n, _)| n.as_str() < "reg-shift");
            properties.insert(at, ("reg-shift".to_owned(), want));
            Ok(properties)
        }
    }
}

/// A host source feeding a FIFO of a described device, read by the VMM's event loop.
pub struct HostInput {
    /// The device.
    pub device: Arc<DescribedDevice>,
    /// The FIFO's index in the device's description.
    pub fifo: usize,
    /// `device.fifo`, for messages.
    pub name: String,
    /// Where the bytes come from.
    pub source: HostSource,
}

/// A readable host endpoint.
pub enum HostSource {
    /// mmiolab's standard input.
    Stdin,
    /// A connected Unix socket (non-blocking).
    Unix(UnixStream),
}

impl HostInput {
    /// Whether this input reads mmiolab's standard input.
    pub fn is_stdin(&self) -> bool {
        matches!(self.source, HostSource::Stdin)
    }
}

/// What the devices built so far connected to on the host: event-loop inputs, Unix
/// sockets by path (so `from` and `to` naming one path share one connection), and the
/// output files to create when the guest starts.
struct HostSides {
    inputs: Vec<HostInput>,
    sockets: Vec<(PathBuf, UnixStream)>,
    files: Vec<PendingFile>,
    control: Arc<VmControl>,
    /// Connect the host sides at all ([`Platform::build_unconnected`] does not).
    connect: bool,
}

/// A FIFO's output file, created (truncated) only when the guest starts, so that a
/// command that does not run the guest (`mmiolab tree`) or a run refused before the guest
/// starts leaves an existing file alone.
struct PendingFile {
    device: Arc<DescribedDevice>,
    fifo: usize,
    /// `device.fifo`, for messages.
    name: String,
    path: PathBuf,
}

impl HostSides {
    fn socket(&mut self, path: &Path) -> std::io::Result<UnixStream> {
        if let Some((_, s)) = self.sockets.iter().find(|(p, _)| p == path) {
            return s.try_clone();
        }
        let s = UnixStream::connect(path)?;
        self.sockets.push((path.to_owned(), s.try_clone()?));
        Ok(s)
    }
}

/// Largest file a FIFO's `from = "file:..."` may name: it is read whole when the machine
/// is built (and held until the guest pops it).
const MAX_FIFO_INPUT_FILE: u64 = mmiolab_regmodel::engine::MAX_HOST_PENDING as u64;
/// How long a FIFO's write to a Unix socket may block a vCPU before the data is dropped.
const SOCKET_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Connects the host sides of `dev`'s FIFOs (`[device.fifo]`).
fn connect_fifo_hosts(
    config: &MachineConfig,
    key: &str,
    dev: &DeviceConfig,
    device: &Arc<DescribedDevice>,
    hosts: &mut HostSides,
) -> Result<(), ConfigError> {
    let sides = dev
        .fifo_hosts()
        .map_err(|(fifo, why)| config.error(format!("{key}.fifo.{fifo}"), why))?;
    if !hosts.connect {
        return Ok(());
    }
    for (fifo, dir, host) in sides {
        let fkey = format!("{key}.fifo.{fifo}");
        let Some(index) = device.fifo_index(&fifo) else {
            return Err(config.error(fkey, format!("the description has no FIFO `{fifo}`")));
        };
        let name = format!("{}.{fifo}", dev.name);
        let io = |what: &str, path: &Path, e: std::io::Error| {
            config.error(fkey.clone(), format!("cannot {what} {}: {e}", path.display()))
        };
        match (dir, host) {
            (FifoDirection::To, FifoHost::Stdout) => {
                let out = Output::new(
                    format!("standard output (FIFO {name})"),
                    Box::new(HostFd::stdout()),
                    hosts.control.clone(),
                );
                device.drain_fifo(index, Box::new(out));
            }
            (FifoDirection::To, FifoHost::Stderr) => {
                let out = Output::new(
                    format!("standard error (FIFO {name})"),
                    Box::new(HostFd::stderr()),
                    hosts.control.clone(),
                );
                device.drain_fifo(index, Box::new(out));
            }
            (FifoDirection::To, FifoHost::File(path)) => {
                let path = config.resolve(&path);
                // Neither an input nor another FIFO's output (two writers would interleave).
                let mut taken = config.input_files();
                taken.extend(
                    hosts
                        .files
                        .iter()
                        .map(|f| (format!("the output of FIFO {}", f.name), f.path.clone())),
                );
                crate::files::check_output(&path, &format!("the output of FIFO {name}"), &taken)
                    .map_err(|e| config.error(fkey.clone(), format!("{}: {}", path.display(), e.reason())))?;
                hosts.files.push(PendingFile {
                    device: device.clone(),
                    fifo: index,
                    name,
                    path,
                });
            }
            (FifoDirection::To, FifoHost::Unix(path)) => {
                let path = config.resolve(&path);
                let s = hosts.socket(&path).map_err(|e| io("connect to", &path, e))?;
                s.set_write_timeout(Some(SOCKET_WRITE_TIMEOUT))
                    .map_err(|e| io("configure", &path, e))?;
                device.drain_fifo(index, Box::new(s));
            }
            (FifoDirection::From, FifoHost::Stdin) => hosts.inputs.push(HostInput {
                device: device.clone(),
                fifo: index,
                name,
                source: HostSource::Stdin,
            }),
            (FifoDirection::From, FifoHost::File(path)) => {
                let path = config.resolve(&path);
                let bytes = crate::files::read_input(&path, MAX_FIFO_INPUT_FILE, "a FIFO's input file may have")
                    .map_err(|e| config.error(fkey.clone(), format!("{}: {}", path.display(), e.reason())))?;
                device.feed_fifo(index, &bytes);
            }
            (FifoDirection::From, FifoHost::Unix(path)) => {
                let path = config.resolve(&path);
                let s = hosts.socket(&path).map_err(|e| io("connect to", &path, e))?;
                s.set_nonblocking(true).map_err(|e| io("configure", &path, e))?;
                hosts.inputs.push(HostInput {
                    device: device.clone(),
                    fifo: index,
                    name,
                    source: HostSource::Unix(s),
                });
            }
            (_, other) => {
                return Err(config.error(fkey, format!("{other:?} cannot be used in this direction")));
            }
        }
    }
    Ok(())
}

/// A described device's memory window that KVM maps as memory: guest accesses do not exit
/// (fast, not traced); a read-only one exits on writes, which the device drops and traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMemslot {
    /// `device.window`, for messages.
    pub name: String,
    /// Guest-physical address.
    pub addr: u64,
    /// Size in bytes (whole pages).
    pub size: u64,
    /// Guest writes exit instead of landing.
    pub readonly: bool,
    /// Byte every location holds at start.
    pub fill: u8,
}

/// Lets the VMM hand its trace to a device that writes its own records.
pub trait AttachSink: Send + Sync {
    /// From now on, send records to `sink` (called once, before the guest runs).
    fn attach_sink(&self, sink: Arc<dyn TraceSink>);
    /// From now on, judge the description's order rules into `judge` (the register
    /// checker); devices without order rules ignore it.
    fn attach_order_judge(&self, _judge: Arc<dyn mmiolab_regmodel::device::OrderJudge>) {}
}

/// A device region whose device traces itself.
pub struct SelfTraced {
    /// The region's address space.
    pub space: AddressSpace,
    /// The device region (as the bus tree numbers it).
    pub region: RegionId,
    /// Where to attach the trace.
    pub attach: Arc<dyn AttachSink>,
    /// The device's name in the machine file.
    pub device: String,
    /// Its compiled description (for the register checker and golden traces).
    pub model: Arc<mmiolab_regmodel::compile::Model>,
}

/// Everything a VM's devices need, built from a machine description.
pub struct Platform {
    /// The bus, shared by the vCPU threads.
    pub bus: Arc<Bus>,
    /// Stop requests from devices and vCPUs.
    pub control: Arc<VmControl>,
    /// COM1, fed by the VMM's stdin handler.
    pub serial: Arc<Serial>,
    /// Interrupt lines to bind as irqfds; each knows its GSI and whether it is edge or level.
    pub irq_lines: Vec<Arc<IrqLine>>,
    /// Deferred device work and the machine's clock; the VMM's event loop runs it.
    pub scheduler: Arc<Scheduler>,
    /// Devices that write their own trace records (the generic access line is skipped).
    pub self_traced: Vec<SelfTraced>,
    /// Memory windows of described devices backed by guest memory (KVM memslots), and the
    /// BIOS area of a Linux guest ([`bios_area`]).
    pub memslots: Vec<DeviceMemslot>,
    /// Host sources that feed FIFOs of described devices, for the event loop.
    pub host_inputs: Vec<HostInput>,
    /// Devices that a Linux guest learns about through the device tree.
    pub dt_devices: Vec<DtDevice>,
    /// FIFO output files, created by [`Platform::open_host_outputs`].
    pending_files: Vec<PendingFile>,
    /// The guest agent's tables, when its port is placed (checker mode, crate::agent).
    pub agent: Option<Arc<crate::agent::Agent>>,
    /// The machine's clock (the scheduler's): a restore resumes it at the snapshot's time.
    pub clock: Arc<MonotonicClock>,
    /// The devices whose state a snapshot carries, by name (crate::snapshot).
    pub stateful: StatefulDevices,
    /// The snapshot marker port, armed by `--snapshot-after port`.
    pub marker_port: Arc<MarkerPort>,
}

impl AttachSink for DescribedDevice {
    fn attach_sink(&self, sink: Arc<dyn TraceSink>) {
        DescribedDevice::attach_sink(self, sink);
    }

    fn attach_order_judge(&self, judge: Arc<dyn mmiolab_regmodel::device::OrderJudge>) {
        DescribedDevice::attach_order_judge(self, judge);
    }
}

impl Platform {
    /// Builds the bus for `config`; `console` receives what the guest writes to COM1.
    pub fn build(config: &MachineConfig, console: Box<dyn Write + Send>) -> Result<Platform, ConfigError> {
        Platform::build_with(config, console, "the guest console")
    }

    /// As [`Platform::build`], `console` called `console_name` when it fails (its first
    /// failure stops the run: see [`crate::output`]).
    pub fn build_with(
        config: &MachineConfig,
        console: Box<dyn Write + Send>,
        console_name: &str,
    ) -> Result<Platform, ConfigError> {
        Platform::build_inner(config, console, console_name, true, false)
    }

    /// As [`Platform::build_with`]; with `agent`, the guest agent's port device is placed
    /// at [`crate::agent::AGENT_PORT`] (checker mode: `--check`).
    pub fn build_checked(
        config: &MachineConfig,
        console: Box<dyn Write + Send>,
        console_name: &str,
        agent: bool,
    ) -> Result<Platform, ConfigError> {
        Platform::build_inner(config, console, console_name, true, agent)
    }

    /// The machine's devices and trees without their FIFOs' host sides: no Unix socket is
    /// connected, no FIFO input file read, no output file planned. For looking at the
    /// machine next to a run (judging a test run's resources, a golden trace's volatile
    /// registers) without a second connection to a socket the run uses.
    pub fn build_unconnected(config: &MachineConfig) -> Result<Platform, ConfigError> {
        Platform::build_inner(config, Box::new(std::io::sink()), "the guest console", false, false)
    }

    fn build_inner(
        config: &MachineConfig,
        console: Box<dyn Write + Send>,
        console_name: &str,
        connect: bool,
        agent: bool,
    ) -> Result<Platform, ConfigError> {
        let io_err = |what: &str, e: std::io::Error| config.error("", format!("cannot create {what}: {e}"));
        let clock = Arc::new(MonotonicClock::new());
        let scheduler = Arc::new(Scheduler::new(clock.clone()).map_err(|e| io_err("the scheduler's timer", e))?);
        let mut self_traced: Vec<SelfTraced> = Vec::new();
        let mut memslots = Vec::new();
        let control = Arc::new(VmControl::new().map_err(|e| io_err("the stop event", e))?);
        let mut hosts = HostSides {
            inputs: Vec::new(),
            sockets: Vec::new(),
            files: Vec::new(),
            control: control.clone(),
            connect,
        };
        let mut b = BusBuilder::new();
        let mut irq_lines: Vec<Arc<IrqLine>> = Vec::new();
        let builtin = |e: BusError| config.error("", format!("built-in device: {e}"));

        let kbd_irq = IrqLine::new(I8042::IRQ).map_err(|e| io_err("an interrupt line", e))?;
        irq_lines.push(Arc::new(kbd_irq.clone()));
        let i8042 = Arc::new(I8042::new(control.clone(), kbd_irq));
        b.add_pio_device(None, "i8042", I8042::PORTS.0, I8042::PORTS.1, i8042.clone())
            .map_err(builtin)?;
        b.add_pio_device(
            None,
            "test-exit",
            EXIT_PORT,
            EXIT_PORTS,
            Arc::new(ExitDevice::new(control.clone())),
        )
        .map_err(builtin)?;
        let com1_irq = IrqLine::new(COM1.1).map_err(|e| io_err("an interrupt line", e))?;
        irq_lines.push(Arc::new(com1_irq.clone()));
        let console = Output::new(console_name, console, control.clone());
        let serial = Arc::new(Serial::new(com1_irq, Box::new(console)));
        b.add_pio_device(None, "serial", COM1.0, 8, serial.clone())
            .map_err(builtin)?;
        let marker_port = Arc::new(MarkerPort::new(control.clone()));
        b.add_pio_device(None, "snapshot-marker", SNAPSHOT_PORT, 1, marker_port.clone())
            .map_err(builtin)?;
        let mut stateful: StatefulDevices = vec![("serial".to_owned(), serial.clone()), ("i8042".to_owned(), i8042)];
        let pvpanic_node = format!("pvpanic@{:x}", PVPANIC.0);
        b.add_mmio_device(
            None,
            &pvpanic_node,
            PVPANIC.0,
            PVPANIC.1,
            Arc::new(PvPanic::new(control.clone())),
        )
        .map_err(builtin)?;
        b.add_mmio_device(
            None,
            &format!("syscon@{SYSCTL:x}"),
            SYSCTL,
            SYSCTL_SIZE,
            Arc::new(SysCtl::new(control.clone())),
        )
        .map_err(builtin)?;
        let agent = agent.then(crate::agent::Agent::new);
        if let Some(a) = &agent {
            b.add_pio_device(
                None,
                "mmiolab-agent",
                crate::agent::AGENT_PORT,
                crate::agent::AGENT_PORTS,
                Arc::new(crate::agent::AgentDevice::new(a.clone())),
            )
            .map_err(|e| config.error("", format!("the guest agent's port (--check): {e}")))?;
        }
        let mut dt_devices = vec![DtDevice {
            node: pvpanic_node,
            compatible: vec!["qemu,pvpanic-mmio".to_owned()],
            mmio: vec![PVPANIC],
            ..DtDevice::default()
        }];

        // Bus name -> its MMIO and I/O-port windows.
        let mut bus_regions: HashMap<&str, (Option<RegionId>, Option<RegionId>)> = HashMap::new();
        for (i, bus) in config.buses.iter().enumerate() {
            let mut add = |space, w: Option<crate::config::WindowConfig>, sub: &str| {
                w.map(|w| b.add_region(space, None, &bus.name, w.base, w.size, RegionKind::Container))
                    .transpose()
                    .map_err(|e| config.error(format!("bus[{i}].{sub}"), e.to_string()))
            };
            let mmio = add(AddressSpace::Mmio, bus.mmio, "mmio")?;
            let pio = add(AddressSpace::Pio, bus.pio, "pio")?;
            bus_regions.insert(bus.name.as_str(), (mmio, pio));
        }

        for (i, dev) in config.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            let node = node_name(dev);
            let parent = |space| -> Result<Option<RegionId>, ConfigError> {
                let Some(bus) = &dev.bus else { return Ok(None) };
                let found = bus_regions.get(bus.as_str());
                let window = found.and_then(|(m, p)| if space == AddressSpace::Mmio { *m } else { *p });
                match window {
                    Some(w) => Ok(Some(w)),
                    // A device mapped in both spaces sits on its bus in the space the bus
                    // has, and at the top of the other (a platform device's legacy ports).
                    None if !dev.mmio.is_empty() && !dev.pio.is_empty() => Ok(None),
                    None => Err(config.error(format!("{key}.bus"), format!("bus `{bus}` has no {space} window"))),
                }
            };
            let regions: Vec<(AddressSpace, &RegionConfig, String)> = dev
                .mmio
                .iter()
                .map(|r| (AddressSpace::Mmio, r, format!("{key}.mmio[0]")))
                .chain(dev.pio.iter().map(|r| (AddressSpace::Pio, r, format!("{key}.pio[0]"))))
                .collect();
            let Some((first_space, first_region, _)) = regions.first().cloned() else {
                return Err(config.error(key, "no region"));
            };
            let (device, levels) = make_device(config, &key, dev, &regions, &scheduler, &mut irq_lines, &mut hosts)?;
            stateful.push((dev.name.clone(), device.state()));
            if let Instance::Described(d) = &device {
                memslots.extend(memslot_windows(config, &key, dev, d.model())?);
            }
            for (space, region, sub) in &regions {
                let region_err = |e: BusError| config.error(sub.clone(), e.to_string());
                let id = match space {
                    AddressSpace::Mmio => b
                        .add_mmio_device(parent(*space)?, &node, region.base, region.size, device.mmio())
                        .map_err(region_err)?,
                    AddressSpace::Pio => {
                        let (base, len) = pio_range(region).ok_or_else(|| {
                            config.error(
                                sub.clone(),
                                format!("ports {:#x}+{:#x} run past 0xffff", region.base, region.size),
                            )
                        })?;
                        b.add_pio_device(parent(*space)?, &node, base, len, device.pio())
                            .map_err(region_err)?
                    }
                };
                if let Instance::Described(d) = &device {
                    d.set_region_name(to_space(*space), &node);
                    self_traced.push(SelfTraced {
                        space: *space,
                        region: id,
                        attach: d.clone(),
                        device: dev.name.clone(),
                        model: d.shared_model(),
                    });
                }
                for (k, w) in region.windows.iter().enumerate() {
                    let start = region.base.checked_add(w.offset).ok_or_else(|| {
                        config.error(format!("{sub}.windows[{k}]"), "offset overflows the address space")
                    })?;
                    b.add_region(*space, Some(id), &w.name, start, w.size, RegionKind::Window)
                        .map_err(|e| config.error(format!("{sub}.windows[{k}]"), e.to_string()))?;
                }
            }
            if let Some(mut dt) = DtDevice::from_config(config, &key, dev, node, first_space, first_region)? {
                for (irq, level) in dt.irqs.iter_mut().zip(&levels) {
                    irq.level = *level;
                }
                dt_devices.push(dt);
            }
        }

        memslots.extend(bios_area(config));

        Ok(Platform {
            bus: Arc::new(b.build()),
            control,
            serial,
            irq_lines,
            scheduler,
            self_traced,
            memslots,
            host_inputs: hosts.inputs,
            dt_devices,
            pending_files: hosts.files,
            agent,
            clock,
            stateful,
            marker_port,
        })
    }

    /// Each described device's compiled model, by device name (a snapshot's machine summary).
    pub fn models(&self) -> Vec<(String, Arc<mmiolab_regmodel::Model>)> {
        let mut out: Vec<(String, Arc<mmiolab_regmodel::Model>)> = Vec::new();
        for s in &self.self_traced {
            if !out.iter().any(|(n, _)| n == &s.device) {
                out.push((s.device.clone(), s.model.clone()));
            }
        }
        out
    }

    /// Creates (truncating) the files FIFOs write to; called when the guest is about to
    /// start, when nothing can refuse the run any more. A file's first failed write stops
    /// the run (see [`crate::output`]).
    pub fn open_host_outputs(&self) -> Result<(), crate::files::FileError> {
        for p in &self.pending_files {
            let file = crate::files::create_output(&p.path)?;
            let out = Output::new(
                format!("the output file of FIFO {} ({})", p.name, p.path.display()),
                Box::new(file),
                self.control.clone(),
            );
            p.device.drain_fifo(p.fifo, Box::new(out));
        }
        Ok(())
    }

    /// Checks that guest RAM (`ram_slots` memslots) and the memslot-backed memory windows
    /// of described devices fit the `kvm_max` memslots this host's KVM gives a VM
    /// (KVM_CAP_NR_MEMSLOTS), so a machine with too many is refused when it is built,
    /// naming the count, instead of by a failing KVM_SET_USER_MEMORY_REGION.
    pub fn check_memslots(&self, config: &MachineConfig, ram_slots: usize, kvm_max: usize) -> Result<(), ConfigError> {
        match memslot_error(ram_slots, &self.memslots, kvm_max) {
            Some(why) => Err(config.error("", why)),
            None => Ok(()),
        }
    }

    /// The FIFO output files (created by [`Platform::open_host_outputs`]).
    pub fn output_files(&self) -> Vec<PathBuf> {
        self.pending_files.iter().map(|p| p.path.clone()).collect()
    }

    /// The MMIO tree then the I/O-port tree, as `/proc/iomem` and `/proc/ioports` print them.
    pub fn render_trees(&self) -> String {
        format!(
            "{}\n{}",
            self.bus.tree(AddressSpace::Mmio).render(),
            self.bus.tree(AddressSpace::Pio).render()
        )
    }
}

/// Why `ram_slots` memslots of RAM and `windows` do not fit `kvm_max` memslots, if not.
fn memslot_error(ram_slots: usize, windows: &[DeviceMemslot], kvm_max: usize) -> Option<String> {
    let needed = ram_slots + windows.len();
    if needed <= kvm_max {
        return None;
    }
    let first_out = windows
        .get(kvm_max.saturating_sub(ram_slots))
        .map_or(String::new(), |w| {
            format!(" (memory window {} is the first that does not fit)", w.name)
        });
    Some(format!(
        "the machine needs {needed} KVM memslots ({ram_slots} for guest RAM, {} for memory windows backed by memslots), \
         but this host's KVM gives a VM at most {kvm_max} (KVM_CAP_NR_MEMSLOTS){first_out}: back some windows with \
         `backing = \"trapped\"` or use fewer devices with memslot windows",
        windows.len()
    ))
}

/// The region name for `dev`: its DT node name when it has a `compatible`.
pub(crate) fn node_name(dev: &DeviceConfig) -> String {
    let first = dev.mmio.first().or(dev.pio.first()).map(|r| r.base);
    match (&dev.compatible, first) {
        (Some(_), Some(base)) => format!("{}@{base:x}", dev.name),
        _ => dev.name.clone(),
    }
}

fn pio_range(r: &RegionConfig) -> Option<(u16, u16)> {
    let base = u16::try_from(r.base).ok()?;
    let size = u16::try_from(r.size).ok()?;
    (u64::from(base) + u64::from(size) <= 0x1_0000).then_some((base, size))
}

/// The BIOS area as read-only zeroed memory, for a Linux guest on a machine where no device
/// or bus window claims any of [`BIOS_AREA`].
///
/// Why: Linux looks for an MP floating pointer by reading every 16th byte of 0xf0000-0xfffff
/// (after the first KiB of RAM and the last KiB below 640 KiB), as a PC's BIOS would keep
/// it there. Unmapped, each of those 4,096 reads was a trapped exit (about 0.3 s of a nested
/// boot); as memory they cost nothing, and zeros hold no table, so the guest takes its
/// configuration from the device tree as before. A bare-metal program still finds the
/// area unmapped (reads all ones), and a machine that puts a device there keeps trapping it.
fn bios_area(config: &MachineConfig) -> Option<DeviceMemslot> {
    let m = &config.machine;
    let linux = m.firmware.is_none() && m.kernel.is_some();
    let (base, size) = BIOS_AREA;
    let claims = |start: u64, len: u64| start < base + size && base < start.saturating_add(len);
    let claimed = config
        .devices
        .iter()
        .flat_map(|d| &d.mmio)
        .any(|r| claims(r.base, r.size))
        || config
            .buses
            .iter()
            .filter_map(|b| b.mmio)
            .any(|w| claims(w.base, w.size));
    (linux && !claimed).then(|| DeviceMemslot {
        name: "bios".to_owned(),
        addr: base,
        size,
        readonly: true,
        fill: 0,
    })
}

/// The memslot-backed windows of described device `dev` (`key` in messages), at their
/// guest addresses inside its MMIO region.
fn memslot_windows(
    config: &MachineConfig,
    key: &str,
    dev: &DeviceConfig,
    model: &mmiolab_regmodel::Model,
) -> Result<Vec<DeviceMemslot>, ConfigError> {
    let mut out = Vec::new();
    for m in model.memories.iter().filter(|m| m.backing == Backing::Memslot) {
        let Some(region) = dev.mmio.first() else {
            return Err(config.error(
                key,
                format!(
                    "memory window `{}` is backed by a memslot, which needs an MMIO region",
                    m.name
                ),
            ));
        };
        let addr = region.base + m.offset;
        if addr % mmiolab_regmodel::compile::PAGE != 0 {
            return Err(config.error(
                format!("{key}.mmio[0]"),
                format!(
                    "memory window `{}` at {addr:#x} is not page-aligned: a memslot needs a region base on a page boundary",
                    m.name
                ),
            ));
        }
        out.push(DeviceMemslot {
            name: format!("{}.{}", dev.name, m.name),
            addr,
            size: m.size,
            readonly: m.readonly,
            fill: m.fill,
        });
    }
    Ok(out)
}

/// A device instance, shareable on either bus.
enum Instance {
    RegFile(Arc<RegFile>),
    Counter(Arc<Counter>),
    Described(Arc<DescribedDevice>),
}

impl Instance {
    fn mmio(&self) -> mmiolab_bus::MmioDevice {
        match self {
            Instance::RegFile(d) => d.clone(),
            Instance::Counter(d) => d.clone(),
            Instance::Described(d) => d.clone(),
        }
    }

    fn pio(&self) -> mmiolab_bus::PioDevice {
        match self {
            Instance::RegFile(d) => d.clone(),
            Instance::Counter(d) => d.clone(),
            Instance::Described(d) => d.clone(),
        }
    }

    fn state(&self) -> Arc<dyn DeviceState> {
        match self {
            Instance::RegFile(d) => d.clone(),
            Instance::Counter(d) => d.clone(),
            Instance::Described(d) => d.clone(),
        }
    }
}

fn to_space(space: AddressSpace) -> Space {
    match space {
        AddressSpace::Mmio => Space::Mmio,
        AddressSpace::Pio => Space::Pio,
    }
}

/// Largest SVD file read: vendor files run to tens of MB for big parts.
const MAX_SVD_BYTES: u64 = 64 << 20;

/// The description of device `dev` (`key` in messages), if it is described: a bundled
/// model, a description file, or an SVD peripheral with an optional overlay. Also returns
/// the files it was read from.
pub fn device_description(
    config: &MachineConfig,
    key: &str,
    dev: &DeviceConfig,
) -> Result<Option<(Description, Vec<PathBuf>)>, ConfigError> {
    let read_overlay = |desc: &mut Description, path: &Path| -> Result<(), ConfigError> {
        let path = config.resolve(path);
        let text = mmiolab_regmodel::compile::read_description(&path)
            .map_err(|e| config.error(format!("{key}.description"), e.to_string()))?;
        mmiolab_regmodel::svd::apply_overlay_toml(desc, &text)
            .map_err(|e| config.error(format!("{key}.description"), format!("{}: {e}", path.display())))
    };
    match dev.kind() {
        DeviceModel::Regfile | DeviceModel::Counter => Ok(None),
        DeviceModel::Bundled(name) => {
            let text = mmiolab_regmodel::bundled::bundled(&name).ok_or_else(|| {
                config.error(
                    format!("{key}.model"),
                    format!(
                        "no model `{name}`: built in are regfile and counter; bundled descriptions are {}",
                        mmiolab_regmodel::bundled::names().join(", ")
                    ),
                )
            })?;
            let desc = Description::from_toml(text)
                .map_err(|e| config.error(format!("{key}.model"), format!("bundled model `{name}`: {e}")))?;
            Ok(Some((desc, Vec::new())))
        }
        DeviceModel::File(path) => {
            let path = config.resolve(&path);
            let text = mmiolab_regmodel::compile::read_description(&path)
                .map_err(|e| config.error(format!("{key}.description"), e.to_string()))?;
            let desc = Description::from_toml(&text).map_err(|e| {
                config.error(
                    format!("{key}.description"),
                    format!("{}: {}", path.display(), e.to_string().trim_end()),
                )
            })?;
            Ok(Some((desc, vec![path])))
        }
        DeviceModel::Svd {
            file,
            peripheral,
            overlay,
        } => {
            let path = config.resolve(&file);
            let err = |reason: String| config.error(format!("{key}.svd.file"), format!("{}: {reason}", path.display()));
            let bytes =
                crate::files::read_input(&path, MAX_SVD_BYTES, "an SVD file may have").map_err(|e| err(e.reason()))?;
            let xml =
                String::from_utf8(bytes).map_err(|_| err("not UTF-8 text: is it an SVD (XML) file?".to_owned()))?;
            let import = mmiolab_regmodel::svd::import(&xml, &peripheral)
                .map_err(|e| config.error(format!("{key}.svd"), format!("{}: {e}", path.display())))?;
            for w in &import.warnings {
                log::warn!("{key} ({peripheral} from {}): {}", path.display(), w.message);
            }
            let mut desc = import.description;
            let mut inputs = vec![path];
            if let Some(o) = overlay {
                read_overlay(&mut desc, &o)?;
                inputs.push(config.resolve(&o));
            }
            Ok(Some((desc, inputs)))
        }
    }
}

/// Builds device `dev` (`key` in messages); its interrupt line, if any, joins `irq_lines`.
/// Returns the instance and, per interrupt line, whether it is level-triggered.
fn make_device(
    config: &MachineConfig,
    key: &str,
    dev: &DeviceConfig,
    regions: &[(AddressSpace, &RegionConfig, String)],
    scheduler: &Arc<Scheduler>,
    irq_lines: &mut Vec<Arc<IrqLine>>,
    hosts: &mut HostSides,
) -> Result<(Instance, Vec<bool>), ConfigError> {
    let io_err =
        |e: std::io::Error| config.error(format!("{key}.irq"), format!("cannot create an interrupt line: {e}"));
    let description = device_description(config, key, dev)?.map(|(d, _)| d);
    let Some(description) = description else {
        let (_, region, sub) = regions.first().ok_or_else(|| config.error(key, "no region"))?;
        let size = usize::try_from(region.size).map_err(|_| config.error(sub.clone(), "region too large"))?;
        let irq = match dev.irqs().first() {
            Some(&gsi) => {
                let line = IrqLine::new(gsi).map_err(io_err)?;
                irq_lines.push(Arc::new(line.clone()));
                Some(line)
            }
            None => None,
        };
        let instance = match dev.kind() {
            DeviceModel::Counter => Instance::Counter(Arc::new(Counter::new())),
            _ => Instance::RegFile(Arc::new(RegFile::new(size, irq))),
        };
        return Ok((instance, vec![false]));
    };
    let model = mmiolab_regmodel::compile_shifted(&description, dev.reg_shift.unwrap_or(0)).map_err(|e| {
        let (what, k) = match dev.kind() {
            DeviceModel::File(p) => (config.resolve(&p).display().to_string(), "description"),
            DeviceModel::Svd { file, peripheral, .. } => (
                format!("{} peripheral {peripheral}", config.resolve(&file).display()),
                "svd",
            ),
            _ => (format!("model `{}`", dev.model.as_deref().unwrap_or_default()), "model"),
        };
        config.error(format!("{key}.{k}"), format!("{what}: {e}"))
    })?;
    // The first region (MMIO when there is one) must hold the whole map; a second, I/O-port
    // mapping of the same registers shows what fits in its ports.
    if let Some((_, region, sub)) = regions.first()
        && region.size < model.size
    {
        return Err(config.error(
            sub.clone(),
            format!(
                "size {:#x} is smaller than the device's register map ({:#x} bytes)",
                region.size, model.size
            ),
        ));
    }
    // Line k of the description is the k-th pin of `irq`; a line is level-triggered when
    // its interrupts are (the description keeps one trigger type per line).
    let levels: Vec<bool> = (0..model.lines)
        .map(|line| {
            model
                .interrupts
                .iter()
                .any(|i| i.line == line && i.trigger == mmiolab_regmodel::schema::Trigger::Level)
        })
        .collect();
    let pins = dev.irqs();
    if !pins.is_empty() && pins.len() != levels.len() {
        return Err(config.error(
            format!("{key}.irq"),
            format!(
                "{} pin(s) for a description that drives {} interrupt line(s): give one pin per line, line 0 first",
                pins.len(),
                levels.len()
            ),
        ));
    }
    if pins.is_empty() && model.lines > 0 {
        log::debug!("{key}: the description has interrupt outputs but the machine gives no `irq`");
    }
    let mut lines = Vec::new();
    for (&gsi, &level) in pins.iter().zip(&levels) {
        let line = if level {
            IrqLine::new_level(gsi)
        } else {
            IrqLine::new(gsi)
        }
        .map_err(io_err)?;
        irq_lines.push(Arc::new(line.clone()));
        lines.push(Some(line));
    }
    let model = Arc::new(model);
    let device = DescribedDevice::new(model.clone(), lines, scheduler.clone());
    device.reset();
    connect_fifo_hosts(config, key, dev, &device, hosts)?;
    Ok((Instance::Described(device), levels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn platform(text: &str) -> Result<Platform, ConfigError> {
        let config = MachineConfig::parse(text, Path::new("m.toml"))?;
        Platform::build(&config, Box::new(std::io::sink()))
    }

    #[test]
    fn too_many_memslots_are_refused_naming_the_count() {
        let window = |i: usize| DeviceMemslot {
            name: format!("dev{i}.ram"),
            addr: 0xd000_0000 + 0x1000 * i as u64,
            size: 0x1000,
            readonly: false,
            fill: 0,
        };
        let windows: Vec<DeviceMemslot> = (0..5).map(window).collect();
        assert_eq!(memslot_error(2, &windows, 7), None);
        let why = memslot_error(2, &windows, 6).unwrap();
        assert!(
            why.starts_with("the machine needs 7 KVM memslots (2 for guest RAM, 5 for memory windows"),
            "{why}"
        );
        assert!(why.contains("at most 6 (KVM_CAP_NR_MEMSLOTS)"), "{why}");
        assert!(why.contains("memory window dev4.ram is the first"), "{why}");
        // A platform without memslot windows needs only RAM's.
        let config = MachineConfig::parse(SAMPLE, Path::new("m.toml")).unwrap();
        let p = Platform::build(&config, Box::new(std::io::sink())).unwrap();
        assert!(p.check_memslots(&config, 2, 2).is_ok());
        let e = p.check_memslots(&config, 3, 2).unwrap_err().to_string();
        assert!(e.contains("needs 3 KVM memslots"), "{e}");
    }

    #[test]
    fn bios_area_is_memory_for_a_linux_guest_unless_a_device_claims_it() {
        let bios = |text: &str| {
            let p = platform(text).unwrap();
            p.memslots.iter().find(|w| w.name == "bios").cloned()
        };
        let linux = "[machine]\nkernel = \"bzImage\"\n";
        let area = bios(linux).expect("a Linux guest gets the BIOS area as memory");
        assert_eq!(
            (area.addr, area.size, area.readonly, area.fill),
            (0xf_0000, 0x1_0000, true, 0)
        );
        assert_eq!(
            bios("[machine]\nfirmware = \"prog.elf\"\n"),
            None,
            "bare metal: unmapped, as before"
        );
        let hole = "[[device]]\nname = \"hole\"\nmodel = \"regfile\"\nmmio = [{ base = 0xfff00, size = 0x100 }]\n";
        assert_eq!(
            bios(&format!("{linux}{hole}")),
            None,
            "a device in the area keeps it trapped"
        );
        let bus = "[[bus]]\nname = \"isa\"\nmmio = { base = 0xa0000, size = 0x60000 }\n";
        assert_eq!(bios(&format!("{linux}{bus}")), None, "so does a bus window");
    }

    const SAMPLE: &str = r#"
[[bus]]
name = "platform"
mmio = { base = 0xd0000000, size = 0x100000 }

[[device]]
name = "testdev"
model = "regfile"
bus = "platform"
compatible = "mmiolab,testdev"
irq = 5
mmio = [{ base = 0xd0001000, size = 0x1000, windows = [{ name = "header", offset = 0, size = 0x10 }] }]

[[device]]
name = "short"
model = "regfile"
pio = [{ base = 0x378, size = 8 }]
"#;

    #[test]
    fn renders_both_trees() {
        let p = platform(SAMPLE).unwrap();
        assert_eq!(
            p.render_trees(),
            "d0000000-d00fffff : platform\n\
             \x20 d0001000-d0001fff : testdev@d0001000\n\
             \x20   d0001000-d000100f : header\n\
             febfe000-febfe00f : syscon@febfe000\n\
             febff000-febff001 : pvpanic@febff000\n\
             \n\
             0060-0064 : i8042\n\
             00f4-00f7 : test-exit\n\
             00f8-00f8 : snapshot-marker\n\
             0378-037f : short\n\
             03f8-03ff : serial\n"
        );
        assert_eq!(p.irq_lines.iter().map(|l| l.gsi()).collect::<Vec<_>>(), vec![1, 4, 5]);
        assert_eq!(p.dt_devices.len(), 2);
        assert_eq!(p.dt_devices[1].node, "testdev@d0001000");
    }

    #[test]
    fn overlap_with_a_builtin_names_both() {
        let e = platform("[[device]]\nname = \"x\"\nmodel = \"regfile\"\npio = [{ base = 0x3fc, size = 8 }]\n")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "m.toml: device[0].pio[0]: PIO region `x` [0x3fc-0x403] overlaps `serial` [0x3f8-0x3ff]"
        );
    }

    #[test]
    fn device_escaping_its_bus_is_refused() {
        let text = SAMPLE.replace("base = 0xd0001000", "base = 0xd00ff800");
        let e = platform(&text).err().unwrap().to_string();
        assert!(e.contains("device[0].mmio[0]: MMIO region `testdev@d00ff800`"), "{e}");
        assert!(
            e.contains("escapes its parent `platform` [0xd0000000-0xd00fffff]"),
            "{e}"
        );
    }

    #[test]
    fn pio_device_on_a_bus_without_pio_window_is_refused() {
        let text = SAMPLE.replace("name = \"short\"\n", "name = \"short\"\nbus = \"platform\"\n");
        let e = platform(&text).err().unwrap().to_string();
        assert!(e.contains("device[1].bus: bus `platform` has no PIO window"), "{e}");
    }

    #[test]
    fn ports_past_the_end_are_refused() {
        let e = platform("[[device]]\nname = \"x\"\nmodel = \"counter\"\npio = [{ base = 0xfffe, size = 4 }]\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("run past 0xffff"), "{e}");
    }

    fn err(text: &str) -> String {
        match platform(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bundled_demo_wires_one_pin_per_line_with_its_trigger() {
        let p = platform(
            "[[device]]\nname = \"demo\"\nmodel = \"demo\"\ncompatible = \"mmiolab,demo\"\nirq = [5, 6]\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n",
        )
        .unwrap();
        let lines: Vec<_> = p.irq_lines.iter().map(|l| (l.gsi(), l.trigger())).collect();
        assert_eq!(
            lines,
            vec![
                (1, mmiolab_devices::IrqTrigger::Edge),
                (4, mmiolab_devices::IrqTrigger::Edge),
                (5, mmiolab_devices::IrqTrigger::Level),
                (6, mmiolab_devices::IrqTrigger::Edge)
            ]
        );
        let dt = p.dt_devices.iter().find(|d| d.name == "demo").unwrap();
        assert_eq!(
            dt.irqs,
            vec![DtIrq { gsi: 5, level: true }, DtIrq { gsi: 6, level: false }]
        );
        assert_eq!(p.self_traced.len(), 1);
    }

    #[test]
    fn described_devices_are_refused_with_the_machine_key_and_the_reason() {
        let dev = |extra: &str| {
            format!("[[device]]\nname = \"d\"\n{extra}\nmmio = [{{ base = 0xd0000000, size = 0x1000 }}]\n")
        };
        assert_eq!(
            err(&dev("model = \"demo\"\nirq = 5")),
            "m.toml: device[0].irq: 1 pin(s) for a description that drives 2 interrupt line(s): give one pin per line, line 0 first"
        );
        let e = err(&dev("model = \"uart\""));
        assert!(
            e.starts_with(
                "m.toml: device[0].model: no model `uart`: built in are regfile and counter; bundled descriptions are "
            ),
            "{e}"
        );
        assert!(e.contains("uart16550"), "{e}");
        let e = err(&dev("description = \"/nonexistent/dev.toml\""));
        assert!(
            e.starts_with("m.toml: device[0].description: /nonexistent/dev.toml: cannot read: "),
            "{e}"
        );
        assert_eq!(
            err("[[device]]\nname = \"d\"\nmodel = \"isa-hole\"\nmmio = [{ base = 0xd0000000, size = 0x1000 }]\n"),
            "m.toml: device[0].mmio[0]: size 0x1000 is smaller than the device's register map (0x60000 bytes)"
        );
        assert_eq!(
            err(&dev("model = \"regfile\"\nirq = [5, 6]")),
            "m.toml: device[0].irq: a built-in model has one interrupt line"
        );
        let e = err(&dev(
            "model = \"uart16550\"\nreg_shift = 2\nfifo = { nope = { to = \"stdout\" } }",
        ));
        assert_eq!(e, "m.toml: device[0].fifo.nope: the description has no FIFO `nope`");
    }

    #[test]
    fn reg_shift_reaches_the_device_tree() {
        let p = platform(
            "[[device]]\nname = \"u\"\nmodel = \"uart16550\"\ncompatible = \"ns16550a\"\nreg_shift = 2\nmmio = [{ base = 0xd0000000, size = 0x100 }]\n",
        )
        .unwrap();
        let dt = p.dt_devices.iter().find(|d| d.name == "u").unwrap();
        assert!(
            dt.properties
                .iter()
                .any(|(n, v)| n == "reg-shift" && *v == DtValue::Cells(vec![crate::config::DtCell::Num(2)]))
        );
        let e = err(
            "[[device]]\nname = \"u\"\nmodel = \"uart16550\"\ncompatible = \"ns16550a\"\nreg_shift = 2\nmmio = [{ base = 0xd0000000, size = 0x100 }]\n[device.dt]\nproperties = { reg-shift = 0 }\n",
        );
        assert_eq!(
            e,
            "m.toml: device[0].dt.properties.reg-shift: disagrees with the device's reg_shift = 2: leave it out, mmiolab writes it"
        );
    }

    #[test]
    fn an_svd_peripheral_with_an_overlay_is_a_device() {
        let dir = std::env::temp_dir().join(format!("mmiolab-svd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let svd = concat!(env!("CARGO_MANIFEST_DIR"), "/../regmodel/tests/data/toy.svd");
        std::fs::write(
            dir.join("overlay.toml"),
            "[[register]]\nname = \"KICK\"\noffset = 0x80\nsw = \"wo\"\n[[effect]]\non = \"write KICK\"\ndo = [\"set CTRL.EN\"]\n",
        )
        .unwrap();
        let machine = format!(
            "[[device]]\nname = \"dma\"\nsvd = {{ file = \"{svd}\", peripheral = \"DMA\" }}\ndescription = \"overlay.toml\"\nmmio = [{{ base = 0xd0000000, size = 0x1000 }}]\n"
        );
        let path = dir.join("m.toml");
        let config = MachineConfig::parse(&machine, &path).unwrap();
        let p = Platform::build(&config, Box::new(std::io::sink())).unwrap();
        let dev = config.devices.first().unwrap();
        let (desc, inputs) = device_description(&config, "device[0]", dev).unwrap().unwrap();
        assert!(desc.registers.iter().any(|r| r.name == "CTRL"));
        assert!(
            desc.registers.iter().any(|r| r.name == "KICK"),
            "the overlay added a register"
        );
        assert_eq!(inputs.len(), 2);
        assert_eq!(p.self_traced.len(), 1);
        let bad = machine.replace("peripheral = \"DMA\"", "peripheral = \"NOPE\"");
        let config = MachineConfig::parse(&bad, &path).unwrap();
        let e = Platform::build(&config, Box::new(std::io::sink()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("device[0].svd: ") && e.contains("NOPE"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fifo_output_files_are_created_only_when_asked_and_never_shared() {
        let dir = std::env::temp_dir().join(format!("mmiolab-platform-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let uart = |name: &str, port: u32| {
            format!(
                "[[device]]\nname = \"{name}\"\nmodel = \"uart16550\"\npio = [{{ base = {port:#x}, size = 8 }}]\n\
                 fifo = {{ tx = {{ to = \"file:tx.out\" }} }}\n"
            )
        };
        let path = dir.join("m.toml");
        let one = uart("a", 0x2f8);
        let config = MachineConfig::parse(&one, &path).unwrap();
        std::fs::write(dir.join("tx.out"), "keep").unwrap();
        let p = Platform::build(&config, Box::new(std::io::sink())).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("tx.out")).unwrap(),
            "keep",
            "building truncates nothing"
        );
        p.open_host_outputs().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("tx.out")).unwrap(),
            "",
            "created when the guest starts"
        );
        let two = one + &uart("b", 0x2e8);
        let config = MachineConfig::parse(&two, &path).unwrap();
        let e = Platform::build(&config, Box::new(std::io::sink()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("device[1].fifo.tx: ") && e.contains("it is the output of FIFO a.tx"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dual_mapped_device_on_an_mmio_bus_has_its_ports_at_the_top() {
        let p = platform(
            "[[bus]]\nname = \"platform\"\nmmio = { base = 0xd0000000, size = 0x100000 }\n\
             [[device]]\nname = \"demo\"\nmodel = \"demo\"\nbus = \"platform\"\n\
             mmio = [{ base = 0xd0010000, size = 0x1000 }]\npio = [{ base = 0x1c0, size = 0x40 }]\n",
        )
        .unwrap();
        let text = p.render_trees();
        assert!(
            text.contains("d0000000-d00fffff : platform\n  d0010000-d0010fff : demo\n"),
            "{text}"
        );
        assert!(text.contains("\n01c0-01ff : demo\n"), "{text}");
        assert_eq!(p.self_traced.len(), 2, "one device, traced in both spaces");
    }
}
