//! The platform: built-in PC devices plus the configured ones, on one [`Bus`].
//!
//! Built in, always present: the i8042 (0x60-0x64, so a guest reboot ends the VM), the
//! test-exit device (0xf4-0xf7), COM1 (0x3f8-0x3ff, IRQ 4), pvpanic-mmio (a guest panic ends
//! the VM) and the system controller (a guest power-off ends the VM).
//!
//! Naming: a device that has a `compatible` is described to a Linux guest by a device-tree
//! node `name@unit-address`, and the kernel names its resources after that node; its regions
//! carry the same name here, so the host's tree and the guest's `/proc/iomem` line up.

use std::io::Write;
use std::sync::Arc;

use mmiolab_bus::{AddressSpace, Bus, BusBuilder, BusError, RegionId, RegionKind};
use mmiolab_devices::{
    Counter, EXIT_PORT, ExitDevice, I8042, IrqLine, PvPanic, RegFile, SYSCTL_SIZE, Serial, SysCtl, VmControl,
};
use vmm_sys_util::eventfd::EventFd;

use crate::config::{ConfigError, DeviceConfig, DeviceModel, MachineConfig, RegionConfig};

/// COM1's port and IRQ.
pub const COM1: (u16, u32) = (0x3f8, 4);
/// pvpanic-mmio's address (just below the IOAPIC) and size.
pub const PVPANIC: (u64, u64) = (0xfebf_f000, 2);
/// The system controller's address (a page below pvpanic); the device tree describes it
/// as a `syscon` for `syscon-poweroff`.
pub const SYSCTL: u64 = 0xfebf_e000;
/// Ports the test-exit device decodes, as QEMU's `iosize=4`.
const EXIT_PORTS: u16 = 4;

/// A device-tree description of one device, for the FDT generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtDevice {
    /// Node name, `name@unit-address`.
    pub node: String,
    /// `compatible`.
    pub compatible: String,
    /// The bus it sits on, if any.
    pub bus: Option<String>,
    /// MMIO `reg` entries (base, size).
    pub mmio: Vec<(u64, u64)>,
    /// I/O-port `reg` entries (base, size).
    pub pio: Vec<(u64, u64)>,
    /// IOAPIC pin.
    pub irq: Option<u32>,
}

/// Everything a VM's devices need, built from a machine description.
pub struct Platform {
    /// The bus, shared by the vCPU threads.
    pub bus: Arc<Bus>,
    /// Stop requests from devices and vCPUs.
    pub control: Arc<VmControl>,
    /// COM1, fed by the VMM's stdin handler.
    pub serial: Arc<Serial>,
    /// Interrupt lines to bind as irqfds: (GSI, eventfd).
    pub irqfds: Vec<(u32, EventFd)>,
    /// Devices that a Linux guest learns about through the device tree.
    pub dt_devices: Vec<DtDevice>,
}

impl Platform {
    /// Builds the bus for `config`; `console` receives what the guest writes to COM1.
    pub fn build(config: &MachineConfig, console: Box<dyn Write + Send>) -> Result<Platform, ConfigError> {
        let io_err = |what: &str, e: std::io::Error| config.error("", format!("cannot create {what}: {e}"));
        let control = Arc::new(VmControl::new().map_err(|e| io_err("the stop event", e))?);
        let mut b = BusBuilder::new();
        let mut irqfds = Vec::new();
        let builtin = |e: BusError| config.error("", format!("built-in device: {e}"));

        b.add_pio_device(
            None,
            "i8042",
            I8042::PORTS.0,
            I8042::PORTS.1,
            Arc::new(I8042::new(control.clone())),
        )
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
        irqfds.push((
            COM1.1,
            com1_irq
                .event()
                .try_clone()
                .map_err(|e| io_err("an interrupt line", e))?,
        ));
        let serial = Arc::new(Serial::new(com1_irq, console));
        b.add_pio_device(None, "serial", COM1.0, 8, serial.clone())
            .map_err(builtin)?;
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
        let mut dt_devices = vec![DtDevice {
            node: pvpanic_node,
            compatible: "qemu,pvpanic-mmio".to_owned(),
            bus: None,
            mmio: vec![PVPANIC],
            pio: vec![],
            irq: None,
        }];

        let mut bus_regions: Vec<(String, Option<RegionId>, Option<RegionId>)> = Vec::new();
        for (i, bus) in config.buses.iter().enumerate() {
            let mut add = |space, w: Option<crate::config::WindowConfig>, sub: &str| {
                w.map(|w| b.add_region(space, None, &bus.name, w.base, w.size, RegionKind::Container))
                    .transpose()
                    .map_err(|e| config.error(format!("bus[{i}].{sub}"), e.to_string()))
            };
            let mmio = add(AddressSpace::Mmio, bus.mmio, "mmio")?;
            let pio = add(AddressSpace::Pio, bus.pio, "pio")?;
            bus_regions.push((bus.name.clone(), mmio, pio));
        }

        for (i, dev) in config.devices.iter().enumerate() {
            let key = format!("device[{i}]");
            let irq = match dev.irq {
                Some(gsi) => {
                    let line = IrqLine::new(gsi).map_err(|e| io_err("an interrupt line", e))?;
                    irqfds.push((
                        gsi,
                        line.event().try_clone().map_err(|e| io_err("an interrupt line", e))?,
                    ));
                    Some(line)
                }
                None => None,
            };
            let node = node_name(dev);
            let parent = |space| -> Result<Option<RegionId>, ConfigError> {
                let Some(bus) = &dev.bus else { return Ok(None) };
                let found = bus_regions.iter().find(|(n, _, _)| n == bus);
                let window = found.and_then(|(_, m, p)| if space == AddressSpace::Mmio { *m } else { *p });
                window
                    .map(Some)
                    .ok_or_else(|| config.error(format!("{key}.bus"), format!("bus `{bus}` has no {space} window")))
            };
            // validate() guarantees exactly one region.
            let (space, region) = match (dev.mmio.first(), dev.pio.first()) {
                (Some(r), _) => (AddressSpace::Mmio, r),
                (None, Some(r)) => (AddressSpace::Pio, r),
                (None, None) => return Err(config.error(key, "no region")),
            };
            let sub = format!("{key}.{}[0]", if space == AddressSpace::Mmio { "mmio" } else { "pio" });
            let region_err = |e: BusError| config.error(sub.clone(), e.to_string());
            let size = usize::try_from(region.size).map_err(|_| config.error(sub.clone(), "region too large"))?;
            let id = match (space, dev.model) {
                (AddressSpace::Mmio, model) => {
                    let device = make_device(model, size, irq);
                    b.add_mmio_device(parent(space)?, &node, region.base, region.size, device.mmio())
                        .map_err(region_err)?
                }
                (AddressSpace::Pio, model) => {
                    let (base, len) = pio_range(region).ok_or_else(|| {
                        config.error(
                            sub.clone(),
                            format!("ports {:#x}+{:#x} run past 0xffff", region.base, region.size),
                        )
                    })?;
                    let device = make_device(model, size, irq);
                    b.add_pio_device(parent(space)?, &node, base, len, device.pio())
                        .map_err(region_err)?
                }
            };
            for (k, w) in region.windows.iter().enumerate() {
                let start = region
                    .base
                    .checked_add(w.offset)
                    .ok_or_else(|| config.error(format!("{sub}.windows[{k}]"), "offset overflows the address space"))?;
                b.add_region(space, Some(id), &w.name, start, w.size, RegionKind::Window)
                    .map_err(|e| config.error(format!("{sub}.windows[{k}]"), e.to_string()))?;
            }
            if let Some(compatible) = &dev.compatible {
                let reg = vec![(region.base, region.size)];
                let (mmio, pio) = if space == AddressSpace::Mmio {
                    (reg, vec![])
                } else {
                    (vec![], reg)
                };
                dt_devices.push(DtDevice {
                    node,
                    compatible: compatible.clone(),
                    bus: dev.bus.clone(),
                    mmio,
                    pio,
                    irq: dev.irq,
                });
            }
        }

        Ok(Platform {
            bus: Arc::new(b.build()),
            control,
            serial,
            irqfds,
            dt_devices,
        })
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

/// The region name for `dev`: its DT node name when it has a `compatible`.
fn node_name(dev: &DeviceConfig) -> String {
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

/// A model instance, shareable on either bus.
enum Model {
    RegFile(Arc<RegFile>),
    Counter(Arc<Counter>),
}

impl Model {
    fn mmio(self) -> mmiolab_bus::MmioDevice {
        match self {
            Model::RegFile(d) => d,
            Model::Counter(d) => d,
        }
    }

    fn pio(self) -> mmiolab_bus::PioDevice {
        match self {
            Model::RegFile(d) => d,
            Model::Counter(d) => d,
        }
    }
}

fn make_device(model: DeviceModel, size: usize, irq: Option<IrqLine>) -> Model {
    match model {
        DeviceModel::Regfile => Model::RegFile(Arc::new(RegFile::new(size, irq))),
        DeviceModel::Counter => Model::Counter(Arc::new(Counter::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn platform(text: &str) -> Result<Platform, ConfigError> {
        let config = MachineConfig::parse(text, Path::new("m.toml"))?;
        Platform::build(&config, Box::new(std::io::sink()))
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
             0378-037f : short\n\
             03f8-03ff : serial\n"
        );
        assert_eq!(p.irqfds.iter().map(|(g, _)| *g).collect::<Vec<_>>(), vec![4, 5]);
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
}
