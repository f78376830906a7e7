//! The device tree a Linux guest gets, built from the same [`Platform`] whose bus answers
//! the guest's accesses: one source of truth for what exists and where.
//!
//! Shape (x86 DT, as `arch/x86/kernel/devicetree.c` reads it): `cpus/cpu@N` with `reg` =
//! APIC ID, the local APIC (`intel,ce4100-lapic`) and the IOAPIC (`intel,ce4100-ioapic`,
//! `#interrupt-cells = <2>`: pin, type), then one node per device with a `compatible`:
//! `reg` (two address and two size cells; the windows `reg_names` lists, or the whole
//! region), `reg-names`, `interrupt-parent` and `interrupts`, the device's own properties
//! and child nodes from its `[device.dt]`, plus the system controller (`syscon`) and a
//! `syscon-poweroff` node for power-off, and the machine file's `[[dt_node]]`s. Devices on a
//! bus with `compatible = "isa"` go under an `isa` node whose `ranges` maps I/O space 1:1,
//! so their `reg = <1 port size>` become IORESOURCE_IO. A node that a `&name` reference
//! points at gets a `phandle`, numbered from 3 in the order the nodes are described.
//!
//! The tree is kept as a small model rendered two ways: a blob (vm-fdt) and DTS text.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use vm_fdt::FdtWriter;

use crate::config::{DtCell, DtNode, DtValue, MachineConfig};
use crate::layout::{IOAPIC_START, LAPIC_START};
use crate::platform::{DtDevice, DtIrq, Platform, SYSCTL};
use mmiolab_devices::{POWER_OFF, SYSCTL_SIZE};

/// The nodes (names before any `@`) the generator puts at the root besides the devices and
/// the isa buses; a `[[dt_node]]` cannot be called so.
pub const GENERATED_ROOT_NODES: [&str; 6] = ["cpus", "lapic", "ioapic", "syscon", "poweroff", "pvpanic"];

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Empty,
    Str(String),
    Strs(Vec<String>),
    Cells(Vec<Cell>),
}

/// One cell of a [`Value::Cells`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cell {
    Num(u32),
    /// The phandle of the node with this DTS label: the DTS says `&label`, so that dtc knows
    /// the cell for a reference and checks it (`gpios`, `clocks`, ...).
    Phandle(u32, String),
}

impl Cell {
    fn value(&self) -> u32 {
        match self {
            Cell::Num(n) | Cell::Phandle(n, _) => *n,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    /// DTS label, on the nodes that references point at.
    label: Option<String>,
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
        self.prop(name, Value::Cells(cells.iter().map(|&n| Cell::Num(n)).collect()))
    }

    /// Makes this node a reference target: a `phandle` property and a DTS label.
    fn target(mut self, target: Option<&Target>) -> Node {
        if let Some(t) = target {
            self.label = Some(t.label.clone());
            self = self.cells("phandle", &[t.phandle]);
        }
        self
    }

    fn child(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }
}

const IOAPIC_PHANDLE: u32 = 1;
const SYSCON_PHANDLE: u32 = 2;
/// The first phandle for the nodes that `&name` references point at.
const FIRST_FREE_PHANDLE: u32 = 3;

// The IOAPIC's interrupt type cell is an index into `of_ioapic_type[]` in Linux's
// arch/x86/kernel/devicetree.c, from which `dt_irqdomain_alloc()` programs the pin's
// trigger mode and polarity: 0 edge/active low, 1 level/active high, 2 level/active low,
// 3 edge/active high (6.1's labels: EDGE_FALLING, LEVEL_HIGH, LEVEL_LOW, EDGE_RISING). The
// old text binding (intel,ce4100-ioapic.txt: "0 - Edge Rising, 1 - Level Low, ...") has the
// table's labels from before 5.11, which its polarity values contradicted; the relabelling
// changed no programming. The polarity matters: KVM's IOAPIC XORs the line with it.
/// IOAPIC interrupt type cell: edge triggered, active high (irqfd delivers edges).
const IRQ_EDGE_RISING: u32 = 3;
/// IOAPIC interrupt type cell: level triggered, active high.
const IRQ_LEVEL_HIGH: u32 = 1;
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

/// A node that `&name` references point at.
#[derive(Debug, Clone)]
struct Target {
    phandle: u32,
    /// Its DTS label: the name with what a label cannot hold made `_`, unique.
    label: String,
}

/// The devices and extra nodes that `&name` references point at, by name, with phandles
/// numbered from [`FIRST_FREE_PHANDLE`] in the order the nodes are described.
fn targets(devices: &[&DtDevice], extra: &[DtNode]) -> HashMap<String, Target> {
    fn collect<'a>(props: &'a [(String, DtValue)], children: &'a [DtNode], into: &mut HashSet<&'a str>) {
        for (_, value) in props {
            if let DtValue::Cells(cells) = value {
                into.extend(cells.iter().filter_map(|c| match c {
                    DtCell::Ref(target) => Some(target.as_str()),
                    DtCell::Num(_) => None,
                }));
            }
        }
        for child in children {
            collect(&child.properties, &child.children, into);
        }
    }
    let mut referenced = HashSet::new();
    for dev in devices {
        collect(&dev.properties, &dev.children, &mut referenced);
    }
    for node in extra {
        collect(&node.properties, &node.children, &mut referenced);
    }
    let names = devices
        .iter()
        .map(|d| d.name.as_str())
        .chain(extra.iter().map(|n| n.name.as_str()));
    let mut map: HashMap<String, Target> = HashMap::new();
    let mut next = FIRST_FREE_PHANDLE;
    // A built-in device has no name and nothing references it.
    for name in names.filter(|n| !n.is_empty() && referenced.contains(n)) {
        if map.contains_key(name) {
            continue;
        }
        // Labels are C identifiers; names start with a letter but may hold `-`, `,`, `@`...
        let mut label: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if map.values().any(|t| t.label == label) {
            label = format!("{label}_{next}");
        }
        map.insert(name.to_owned(), Target { phandle: next, label });
        next += 1;
    }
    map
}

/// `value` with its references resolved; `None` when a target is unknown, which
/// `MachineConfig::check` rules out for a machine file.
fn resolve(value: &DtValue, targets: &HashMap<String, Target>) -> Option<Value> {
    Some(match value {
        DtValue::Empty => Value::Empty,
        DtValue::Str(s) => Value::Str(s.clone()),
        DtValue::Strs(s) => Value::Strs(s.clone()),
        DtValue::Cells(cells) => Value::Cells(
            cells
                .iter()
                .map(|c| match c {
                    DtCell::Num(n) => Some(Cell::Num(*n)),
                    DtCell::Ref(name) => targets.get(name).map(|t| Cell::Phandle(t.phandle, t.label.clone())),
                })
                .collect::<Option<Vec<Cell>>>()?,
        ),
    })
}

fn with_properties(mut n: Node, props: &[(String, DtValue)], targets: &HashMap<String, Target>) -> Node {
    for (name, value) in props {
        if let Some(value) = resolve(value, targets) {
            n = n.prop(name, value);
        }
    }
    n
}

/// A node written out in the machine file; only root nodes are reference targets.
fn extra_node(node: &DtNode, target: Option<&Target>, targets: &HashMap<String, Target>) -> Node {
    let mut n = with_properties(Node::new(node.name.clone()), &node.properties, targets).target(target);
    for child in &node.children {
        n = n.child(extra_node(child, None, targets));
    }
    n
}

fn device_node(dev: &DtDevice, isa: bool, targets: &HashMap<String, Target>) -> Node {
    let mut n = Node::new(dev.node.clone()).prop("compatible", Value::Strs(dev.compatible.clone()));
    let reg: Vec<u32> = if isa {
        dev.pio
            .iter()
            .flat_map(|&(base, size)| [ISA_IO_SPACE, base as u32, size as u32])
            .collect()
    } else {
        mmio_reg(&dev.mmio)
    };
    n = n.cells("reg", &reg);
    if !dev.reg_names.is_empty() {
        n = n.prop("reg-names", Value::Strs(dev.reg_names.clone()));
    }
    if !dev.irqs.is_empty() {
        let cells: Vec<u32> = dev
            .irqs
            .iter()
            .flat_map(|&DtIrq { gsi, level }| [gsi, if level { IRQ_LEVEL_HIGH } else { IRQ_EDGE_RISING }])
            .collect();
        n = n
            .cells("interrupt-parent", &[IOAPIC_PHANDLE])
            .cells("interrupts", &cells);
    }
    n = with_properties(n, &dev.properties, targets).target(targets.get(&dev.name));
    for child in &dev.children {
        n = n.child(extra_node(child, None, targets));
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
    let isa_bus = |bus: Option<&str>| {
        config
            .buses
            .iter()
            .any(|b| Some(b.name.as_str()) == bus && b.compatible.as_deref() == Some("isa"))
    };
    // Devices on ISA buses (I/O ports) go under their bus's node, MMIO devices at the top;
    // a device with I/O ports elsewhere has nowhere to go.
    let described: Vec<&DtDevice> = platform
        .dt_devices
        .iter()
        .filter(|d| isa_bus(d.bus.as_deref()) || d.pio.is_empty())
        .collect();
    // check() refused the nodes that do not convert.
    let extra: Vec<DtNode> = config.dt_nodes.iter().filter_map(|n| n.to_node().ok()).collect();
    let targets = targets(&described, &extra);
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
        for dev in described.iter().filter(|d| d.bus.as_deref() == Some(bus.name.as_str())) {
            isa = isa.child(device_node(dev, true, &targets));
        }
        root = root.child(isa);
    }
    for dev in described.iter().filter(|d| !isa_bus(d.bus.as_deref())) {
        root = root.child(device_node(dev, false, &targets));
    }
    for node in &extra {
        root = root.child(extra_node(node, targets.get(&node.name), &targets));
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
            Value::Strs(s) => w.property_string_list(name, s.clone())?,
            Value::Cells(c) => w.property_array_u32(name, &c.iter().map(Cell::value).collect::<Vec<u32>>())?,
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

/// `s` as a DTS string literal.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            // dtc reads `\xNN` as one byte; a raw control character would break the line.
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render(out: &mut String, node: &Node, depth: usize) {
    let pad = "\t".repeat(depth);
    let name = if node.name.is_empty() { "/" } else { &node.name };
    let label = node.label.as_ref().map(|l| format!("{l}: ")).unwrap_or_default();
    let _ = writeln!(out, "{pad}{label}{name} {{");
    for (prop, value) in &node.props {
        let _ = match value {
            Value::Empty => writeln!(out, "{pad}\t{prop};"),
            Value::Str(s) => writeln!(out, "{pad}\t{prop} = {};", quoted(s)),
            Value::Strs(s) => {
                let all: Vec<String> = s.iter().map(|s| quoted(s)).collect();
                writeln!(out, "{pad}\t{prop} = {};", all.join(", "))
            }
            Value::Cells(c) => {
                let cells: Vec<String> = c
                    .iter()
                    .map(|c| match c {
                        Cell::Num(n) => format!("{n:#x}"),
                        Cell::Phandle(_, label) => format!("&{label}"),
                    })
                    .collect();
                writeln!(out, "{pad}\t{prop} = <{}>;", cells.join(" "))
            }
        };
    }
    for (i, child) in node.children.iter().enumerate() {
        // A blank line between a node's parts, none right after its opening line.
        if i > 0 || !node.props.is_empty() {
            out.push('\n');
        }
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

    /// A machine file using every kind of device-tree property: an 8250 for of_serial, a
    /// gpio-mmio bank with `reg_names`, a syscon with children and 64-bit values, an ISA
    /// device, and extra nodes referring to devices and to each other.
    const PROPERTIES: &str = r##"
[[bus]]
name = "isa"
compatible = "isa"
pio = { base = 0x200, size = 0x100 }

# An 8250 through of_serial.
[[device]]
name = "uart1"
model = "regfile"
compatible = ["mmiolab,uart", "ns16550a"]
irq = 6
mmio = [{ base = 0xd0002000, size = 0x100 }]
[device.dt]
properties = { reg-shift = 2, reg-io-width = 4, clocks = "&osc", no-loopback-test = true, fifo-size = false }

# A gpio-mmio bank: four 32-bit registers.
[[device]]
name = "gpio0"
model = "regfile"
compatible = "brcm,bcm6345-gpio"
[[device.mmio]]
base = 0xd0003000
size = 0x10
windows = [
    { name = "dirout", offset = 0xc, size = 4 },
    { name = "dat", offset = 0x0, size = 4 },
    { name = "set", offset = 0x4, size = 4 },
    { name = "clr", offset = 0x8, size = 4 },
]
[device.dt]
reg_names = ["dat", "set", "clr", "dirout"]
properties = { gpio-controller = true, "#gpio-cells" = 2, ngpios = 8, big-endian = true, gpio-line-names = ["led", "button"] }

# A syscon with a child and 64-bit values.
[[device]]
name = "ctl"
model = "regfile"
compatible = ["mmiolab,ctl", "syscon", "simple-mfd"]
mmio = [{ base = 0xd0004000, size = 0x100 }]
[device.dt]
properties = { label = "say \"hi\"\\\t", wide = { u64 = 0x123456789 }, table = [1, { u64 = 0x200000003 }, 4] }
[[device.dt.child]]
name = "reboot-mode"
properties = { compatible = "syscon-reboot-mode", offset = 0x10, mode-normal = 0, mode-bootloader = 1 }
[[device.dt.child]]
name = "domains"
[[device.dt.child.child]]
name = "domain-0"
properties = { "#power-domain-cells" = 0 }

[[device]]
name = "piodev"
model = "regfile"
bus = "isa"
compatible = "mmiolab,pio-testdev"
pio = [{ base = 0x2e0, size = 8, windows = [{ name = "ctrl", offset = 4, size = 4 }] }]
[device.dt]
reg_names = ["ctrl"]
properties = { status = "okay" }

[[dt_node]]
name = "osc"
properties = { compatible = "fixed-clock", "#clock-cells" = 0, clock-frequency = 1843200 }

[[dt_node]]
name = "reboot"
properties = { compatible = "syscon-reboot", regmap = "&ctl", offset = 0x20, value = 1 }

[[dt_node]]
name = "keys"
properties = { compatible = "gpio-keys-polled", poll-interval = 100 }
[[dt_node.child]]
name = "key-enter"
properties = { label = "enter", "linux,code" = 28, gpios = ["&gpio0", 1, 0] }
"##;

    fn properties_setup() -> (MachineConfig, Platform) {
        let c = MachineConfig::parse(PROPERTIES, Path::new("props.toml")).unwrap();
        let p = Platform::build(&c, Box::new(std::io::sink())).unwrap();
        (c, p)
    }

    #[test]
    fn machine_file_properties_are_rendered() {
        let (c, p) = properties_setup();
        let dts = dts(&c, &p);
        let piodev = "\t\tpiodev@2e0 {
\t\t\tcompatible = \"mmiolab,pio-testdev\";
\t\t\treg = <0x1 0x2e4 0x4>;
\t\t\treg-names = \"ctrl\";
\t\t\tstatus = \"okay\";
\t\t};
";
        assert!(dts.contains(piodev), "missing {piodev:?} in\n{dts}");
        // Devices, then the extra nodes, come last.
        let tail = "\tuart1@d0002000 {
\t\tcompatible = \"mmiolab,uart\", \"ns16550a\";
\t\treg = <0x0 0xd0002000 0x0 0x100>;
\t\tinterrupt-parent = <0x1>;
\t\tinterrupts = <0x6 0x3>;
\t\tclocks = <&osc>;
\t\tno-loopback-test;
\t\treg-io-width = <0x4>;
\t\treg-shift = <0x2>;
\t};

\tgpio0: gpio0@d0003000 {
\t\tcompatible = \"brcm,bcm6345-gpio\";
\t\treg = <0x0 0xd0003000 0x0 0x4 0x0 0xd0003004 0x0 0x4 0x0 0xd0003008 0x0 0x4 0x0 0xd000300c 0x0 0x4>;
\t\treg-names = \"dat\", \"set\", \"clr\", \"dirout\";
\t\t#gpio-cells = <0x2>;
\t\tbig-endian;
\t\tgpio-controller;
\t\tgpio-line-names = \"led\", \"button\";
\t\tngpios = <0x8>;
\t\tphandle = <0x3>;
\t};

\tctl: ctl@d0004000 {
\t\tcompatible = \"mmiolab,ctl\", \"syscon\", \"simple-mfd\";
\t\treg = <0x0 0xd0004000 0x0 0x100>;
\t\tlabel = \"say \\\"hi\\\"\\\\\\x09\";
\t\ttable = <0x1 0x2 0x3 0x4>;
\t\twide = <0x1 0x23456789>;
\t\tphandle = <0x4>;

\t\treboot-mode {
\t\t\tcompatible = \"syscon-reboot-mode\";
\t\t\tmode-bootloader = <0x1>;
\t\t\tmode-normal = <0x0>;
\t\t\toffset = <0x10>;
\t\t};

\t\tdomains {
\t\t\tdomain-0 {
\t\t\t\t#power-domain-cells = <0x0>;
\t\t\t};
\t\t};
\t};

\tosc: osc {
\t\t#clock-cells = <0x0>;
\t\tclock-frequency = <0x1c2000>;
\t\tcompatible = \"fixed-clock\";
\t\tphandle = <0x5>;
\t};

\treboot {
\t\tcompatible = \"syscon-reboot\";
\t\toffset = <0x20>;
\t\tregmap = <&ctl>;
\t\tvalue = <0x1>;
\t};

\tkeys {
\t\tcompatible = \"gpio-keys-polled\";
\t\tpoll-interval = <0x64>;

\t\tkey-enter {
\t\t\tgpios = <&gpio0 0x1 0x0>;
\t\t\tlabel = \"enter\";
\t\t\tlinux,code = <0x1c>;
\t\t};
\t};
};
";
        assert!(dts.ends_with(tail), "the DTS does not end with\n{tail}\nit is\n{dts}");
    }

    #[test]
    fn blob_carries_the_same_properties() {
        let (c, p) = properties_setup();
        let blob = dtb(&c, &p).unwrap();
        let find = |bytes: &[u8]| blob.windows(bytes.len()).any(|w| w == bytes);
        // gpio0's four windows as reg, and the reference to it resolved in key-enter's gpios.
        let reg: Vec<u8> = (0..4u32)
            .flat_map(|k| [0, 0xd000_3000 + 4 * k, 0, 4])
            .flat_map(u32::to_be_bytes)
            .collect();
        assert!(find(&reg));
        assert!(find(b"dat\0set\0clr\0dirout\0"));
        assert!(find(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]), "gpios = <3 1 0>");
    }

    #[test]
    fn level_interrupt_is_type_1_and_lines_follow_in_order() {
        let dev = DtDevice {
            node: "x@d0000000".to_owned(),
            compatible: vec!["vendor,x".to_owned()],
            mmio: vec![(0xd000_0000, 0x100)],
            irqs: vec![DtIrq { gsi: 7, level: true }, DtIrq { gsi: 9, level: false }],
            ..DtDevice::default()
        };
        let mut out = String::new();
        render(&mut out, &device_node(&dev, false, &HashMap::new()), 0);
        assert_eq!(
            out,
            "x@d0000000 {\n\tcompatible = \"vendor,x\";\n\treg = <0x0 0xd0000000 0x0 0x100>;\n\tinterrupt-parent = <0x1>;\n\tinterrupts = <0x7 0x1 0x9 0x3>;\n};\n"
        );
    }

    /// dtc compiles the DTS and decompiles the blob without a warning, and both are the same
    /// tree: the DTS's labels and the blob's phandles agree.
    #[test]
    #[cfg_attr(not(dtc_installed), ignore = "dtc is not installed (Debian: device-tree-compiler)")]
    fn dtc_accepts_machine_file_properties() {
        use std::process::Command;
        let (c, p) = properties_setup();
        let dir = std::env::temp_dir().join(format!("mmiolab-fdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (source, blob, compiled) = (dir.join("m.dts"), dir.join("m.dtb"), dir.join("from-source.dtb"));
        std::fs::write(&source, dts(&c, &p)).unwrap();
        std::fs::write(&blob, dtb(&c, &p).unwrap()).unwrap();
        let dtc = |args: &[&str], input: &Path| Command::new("dtc").args(args).arg(input).output().unwrap();
        let runs = [
            dtc(&["-I", "dts", "-O", "dtb", "-o", compiled.to_str().unwrap()], &source),
            dtc(&["-I", "dtb", "-O", "dts"], &blob),
            dtc(&["-I", "dtb", "-O", "dts"], &compiled),
        ];
        std::fs::remove_dir_all(&dir).unwrap();
        for out in &runs {
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && warnings.is_empty(),
                "dtc: {}\n{warnings}",
                out.status
            );
        }
        assert_eq!(runs[1].stdout, runs[2].stdout, "the blob and the compiled DTS differ");
    }
}
