//! The device tree a Linux guest gets, built from the same [`Platform`] whose bus answers
//! the guest's accesses: one source of truth for what exists and where.
//!
//! Shape (x86 DT, as `arch/x86/kernel/devicetree.c` reads it): `cpus/cpu@N` with `reg` =
//! APIC ID, the local APIC (`intel,ce4100-lapic`) and the IOAPIC (`intel,ce4100-ioapic`,
//! `#interrupt-cells = <2>`: pin, type 3 = edge rising), then one node per device with a
//! `compatible`: `reg` (two address and two size cells), `interrupt-parent` and
//! `interrupts`, plus the system controller (`syscon`) and a `syscon-poweroff` node for
//! power-off. Devices on a bus with `compatible = "isa"` go under an `isa` node whose
//! `ranges` maps I/O space 1:1, so their `reg = <1 port size>` become IORESOURCE_IO.
//!
//! The tree is kept as a small model rendered two ways: a blob (vm-fdt) and DTS text.

use std::fmt::Write as _;

use vm_fdt::FdtWriter;

use crate::config::MachineConfig;
use crate::layout::{IOAPIC_START, LAPIC_START};
use crate::platform::{DtDevice, Platform, SYSCTL};
use mmiolab_devices::{POWER_OFF, SYSCTL_SIZE};

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Empty,
    Str(String),
    Cells(Vec<u32>),
}

#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    props: Vec<(String, Value)>,
    children: Vec<Node>,
}

impl Node {
    fn new(name: impl Into<String>) -> Node {
        Node {
            name: name.into(),
            ..Default::default()
        }
    }

    fn prop(mut self, name: &str, value: Value) -> Node {
        self.props.push((name.to_owned(), value));
        self
    }

    fn str(self, name: &str, value: &str) -> Node {
        self.prop(name, Value::Str(value.to_owned()))
    }

    fn cells(self, name: &str, cells: &[u32]) -> Node {
        self.prop(name, Value::Cells(cells.to_vec()))
    }

    fn child(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }
}

const IOAPIC_PHANDLE: u32 = 1;
const SYSCON_PHANDLE: u32 = 2;
/// IOAPIC interrupt type cell: edge triggered, active high (irqfd delivers edges).
const IRQ_EDGE_RISING: u32 = 3;
/// Address cell that marks I/O space under an `isa` node.
const ISA_IO_SPACE: u32 = 1;

fn hi_lo(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

fn mmio_reg(regs: &[(u64, u64)]) -> Vec<u32> {
    regs.iter()
        .flat_map(|&(base, size)| hi_lo(base).into_iter().chain(hi_lo(size)))
        .collect()
}

fn device_node(dev: &DtDevice, isa: bool) -> Node {
    let mut n = Node::new(dev.node.clone()).str("compatible", &dev.compatible);
    let reg: Vec<u32> = if isa {
        dev.pio
            .iter()
            .flat_map(|&(base, size)| [ISA_IO_SPACE, base as u32, size as u32])
            .collect()
    } else {
        mmio_reg(&dev.mmio)
    };
    n = n.cells("reg", &reg);
    if let Some(pin) = dev.irq {
        n = n
            .cells("interrupt-parent", &[IOAPIC_PHANDLE])
            .cells("interrupts", &[pin, IRQ_EDGE_RISING]);
    }
    n
}

/// Builds the device tree for `config` on `platform`.
fn build(config: &MachineConfig, platform: &Platform) -> Node {
    let mut cpus = Node::new("cpus")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[0]);
    for i in 0..u32::from(config.machine.vcpus) {
        cpus = cpus.child(
            Node::new(format!("cpu@{i}"))
                .str("device_type", "cpu")
                .cells("reg", &[i]),
        );
    }
    let mut root = Node::new("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .str("compatible", "mmiolab,machine")
        .str("model", "mmiolab")
        .child(cpus)
        .child(
            Node::new(format!("lapic@{LAPIC_START:x}"))
                .str("compatible", "intel,ce4100-lapic")
                .cells("reg", &mmio_reg(&[(LAPIC_START, 0x1000)])),
        )
        .child(
            Node::new(format!("ioapic@{IOAPIC_START:x}"))
                .str("compatible", "intel,ce4100-ioapic")
                .cells("reg", &mmio_reg(&[(IOAPIC_START, 0x1000)]))
                .prop("interrupt-controller", Value::Empty)
                .cells("#address-cells", &[0])
                .cells("#interrupt-cells", &[2])
                .cells("phandle", &[IOAPIC_PHANDLE]),
        )
        // Power-off: the syscon-poweroff driver writes POWER_OFF to the system controller.
        .child(
            Node::new(format!("syscon@{SYSCTL:x}"))
                .str("compatible", "syscon")
                .cells("reg", &mmio_reg(&[(SYSCTL, SYSCTL_SIZE)]))
                .cells("phandle", &[SYSCON_PHANDLE]),
        )
        .child(
            Node::new("poweroff")
                .str("compatible", "syscon-poweroff")
                .cells("regmap", &[SYSCON_PHANDLE])
                .cells("offset", &[0])
                .cells("value", &[POWER_OFF]),
        );
    // Devices on ISA buses (I/O ports) go under one node per bus; everything else at the top.
    for bus in &config.buses {
        if bus.compatible.as_deref() != Some("isa") {
            continue;
        }
        // The unit address is the first child address `ranges` maps: I/O space, port 0.
        let mut isa = Node::new(format!("{}@{ISA_IO_SPACE:x},0", bus.name))
            .str("compatible", "isa")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[1])
            .cells("ranges", &[ISA_IO_SPACE, 0, 0, 0, 0x1_0000]);
        for dev in platform
            .dt_devices
            .iter()
            .filter(|d| d.bus.as_deref() == Some(bus.name.as_str()))
        {
            isa = isa.child(device_node(dev, true));
        }
        root = root.child(isa);
    }
    let on_isa = |d: &DtDevice| {
        config
            .buses
            .iter()
            .any(|b| Some(b.name.as_str()) == d.bus.as_deref() && b.compatible.as_deref() == Some("isa"))
    };
    for dev in platform.dt_devices.iter().filter(|d| !on_isa(d) && d.pio.is_empty()) {
        root = root.child(device_node(dev, false));
    }
    root
}

/// The flattened device tree blob.
pub fn dtb(config: &MachineConfig, platform: &Platform) -> Result<Vec<u8>, vm_fdt::Error> {
    let root = build(config, platform);
    let mut w = FdtWriter::new()?;
    write_node(&mut w, &root)?;
    w.finish()
}

fn write_node(w: &mut FdtWriter, node: &Node) -> Result<(), vm_fdt::Error> {
    let handle = w.begin_node(&node.name)?;
    for (name, value) in &node.props {
        match value {
            Value::Empty => w.property_null(name)?,
            Value::Str(s) => w.property_string(name, s)?,
            Value::Cells(c) => w.property_array_u32(name, c)?,
        }
    }
    for child in &node.children {
        write_node(w, child)?;
    }
    w.end_node(handle)
}

/// The device tree as DTS source.
pub fn dts(config: &MachineConfig, platform: &Platform) -> String {
    let mut out = String::from("/dts-v1/;\n\n");
    render(&mut out, &build(config, platform), 0);
    out
}

fn render(out: &mut String, node: &Node, depth: usize) {
    let pad = "\t".repeat(depth);
    let name = if node.name.is_empty() { "/" } else { &node.name };
    let _ = writeln!(out, "{pad}{name} {{");
    for (prop, value) in &node.props {
        let _ = match value {
            Value::Empty => writeln!(out, "{pad}\t{prop};"),
            Value::Str(s) => writeln!(
                out,
                "{pad}\t{prop} = \"{}\";",
                s.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            Value::Cells(c) => {
                let cells: Vec<String> = c.iter().map(|v| format!("{v:#x}")).collect();
                writeln!(out, "{pad}\t{prop} = <{}>;", cells.join(" "))
            }
        };
    }
    for child in &node.children {
        out.push('\n');
        render(out, child, depth + 1);
    }
    let _ = writeln!(out, "{pad}}};");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MACHINE: &str = r#"
[machine]
vcpus = 2

[[bus]]
name = "isa"
compatible = "isa"
pio = { base = 0x200, size = 0x100 }

[[device]]
name = "testdev"
model = "regfile"
compatible = "mmiolab,testdev"
irq = 5
mmio = [{ base = 0xd0001000, size = 0x1000 }]

[[device]]
name = "piodev"
model = "regfile"
bus = "isa"
compatible = "mmiolab,pio-testdev"
pio = [{ base = 0x2e0, size = 8 }]
"#;

    fn setup() -> (MachineConfig, Platform) {
        let c = MachineConfig::parse(MACHINE, Path::new("m.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        (c, p)
    }

    #[test]
    fn dts_describes_cpus_apics_and_devices() {
        let (c, p) = setup();
        let dts = dts(&c, &p);
        for needle in [
            "\tcpu@1 {\n\t\t\tdevice_type = \"cpu\";\n\t\t\treg = <0x1>;",
            "compatible = \"intel,ce4100-ioapic\";",
            "\ttestdev@d0001000 {\n\t\tcompatible = \"mmiolab,testdev\";\n\t\treg = <0x0 0xd0001000 0x0 0x1000>;\n\t\tinterrupt-parent = <0x1>;\n\t\tinterrupts = <0x5 0x3>;",
            "\tisa@1,0 {\n\t\tcompatible = \"isa\";",
            "\t\tpiodev@2e0 {\n\t\t\tcompatible = \"mmiolab,pio-testdev\";\n\t\t\treg = <0x1 0x2e0 0x8>;",
            "pvpanic@febff000 {\n\t\tcompatible = \"qemu,pvpanic-mmio\";",
            "\tpoweroff {\n\t\tcompatible = \"syscon-poweroff\";\n\t\tregmap = <0x2>;\n\t\toffset = <0x0>;\n\t\tvalue = <0x1>;",
            "\tsyscon@febfe000 {\n\t\tcompatible = \"syscon\";\n\t\treg = <0x0 0xfebfe000 0x0 0x10>;\n\t\tphandle = <0x2>;",
        ] {
            assert!(dts.contains(needle), "missing {needle:?} in\n{dts}");
        }
    }

    #[test]
    fn blob_is_a_valid_fdt() {
        let (c, p) = setup();
        let blob = dtb(&c, &p).unwrap();
        assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]);
        let total = u32::from_be_bytes(blob[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, blob.len());
    }
}
