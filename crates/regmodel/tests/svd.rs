//! CMSIS-SVD import and overlays: on a real vendor file (Nordic's nRF52840 SVD, see
//! tests/data/README.md) and on a small hand-written one (tests/data/toy.svd) for what the
//! vendor file does not use (readAction clear/set, buffer blocks, alternate registers, odd
//! names).

#![allow(clippy::indexing_slicing)] // a test that indexes out of range fails, as it should

use std::io::Read;
use std::sync::OnceLock;

use mmiolab_regmodel::engine::{self, Dir, Notes, Outcome, State};
use mmiolab_regmodel::schema::{Backing, Bits, Description};
use mmiolab_regmodel::svd::{self, Import, SvdError, WarningKind, apply_overlay, apply_overlay_toml};
use mmiolab_regmodel::{Model, compile};

/// The nRF52840 SVD, decompressed once.
fn nrf52840() -> &'static str {
    static XML: OnceLock<String> = OnceLock::new();
    XML.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nrf52840.svd.gz");
        let gz = std::fs::read(path).unwrap();
        let mut xml = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut xml)
            .unwrap();
        xml
    })
}

fn toy() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/toy.svd")).unwrap()
}

fn import(xml: &str, peripheral: &str) -> Import {
    svd::import(xml, peripheral).unwrap_or_else(|e| panic!("{e}"))
}

struct Dev {
    model: Model,
    state: State,
}

impl Dev {
    fn new(desc: &Description) -> Dev {
        let model = compile(desc).unwrap_or_else(|e| panic!("{e}"));
        let state = State::new(&model);
        Dev { model, state }
    }

    fn reg(&self, name: &str) -> &mmiolab_regmodel::compile::Register {
        self.model
            .registers
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no register {name}"))
    }

    fn offset(&self, name: &str) -> u64 {
        self.reg(name).offset
    }

    fn access(&mut self, dir: Dir, offset: u64, data: &mut [u8]) -> Outcome {
        let mut notes = Notes::default();
        engine::access(&self.model, &mut self.state, dir, offset, data, &|| 0, &mut notes)
    }

    fn read(&mut self, name: &str) -> u64 {
        let (offset, width) = (self.offset(name), usize::from(self.reg(name).width));
        let mut data = vec![0u8; width];
        self.access(Dir::Read, offset, &mut data);
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(&data);
        u64::from_le_bytes(le)
    }

    fn write(&mut self, name: &str, value: u64) -> Outcome {
        let (offset, width) = (self.offset(name), usize::from(self.reg(name).width));
        let mut data = value.to_le_bytes()[..width].to_vec();
        self.access(Dir::Write, offset, &mut data)
    }
}

// ---------------------------------------------------------------------------------------
// The real vendor file.

#[test]
fn nrf52840_uart0_maps_offsets_resets_fields_and_interrupts() {
    let im = import(nrf52840(), "UART0");
    let d = &im.description;
    assert_eq!(d.device.name.as_deref(), Some("UART0"));
    assert_eq!(d.device.size, Some(0x1000), "the addressBlock's size");
    assert_eq!(im.interrupts.len(), 1);
    assert_eq!(im.interrupts[0].name, "UARTE0_UART0");
    assert_eq!(im.interrupts[0].value, 2);
    assert!(d.interrupts.is_empty() && d.effects.is_empty() && d.fifos.is_empty());

    let dev = Dev::new(d);
    assert_eq!(dev.model.size, 0x1000);
    for (name, offset, reset) in [
        ("TASKS_STARTRX", 0x000, 0),
        ("TASKS_STARTTX", 0x008, 0),
        ("EVENTS_RXDRDY", 0x108, 0),
        ("EVENTS_ERROR", 0x124, 0),
        ("INTENSET", 0x304, 0),
        ("INTENCLR", 0x308, 0),
        ("ERRORSRC", 0x480, 0),
        ("ENABLE", 0x500, 0),
        // The PSEL cluster, flattened: CLUSTER_REGISTER. The SVD's resetValue is 0xFFFFFFFF;
        // only the bits its fields cover (PIN, PORT, CONNECT) are stored.
        ("PSEL_RTS", 0x508, 0x8000_003F),
        ("PSEL_RXD", 0x514, 0x8000_003F),
        ("RXD", 0x518, 0),
        ("TXD", 0x51C, 0),
        ("BAUDRATE", 0x524, 0x0400_0000),
        ("CONFIG", 0x56C, 0),
    ] {
        let r = dev.reg(name);
        assert_eq!((r.offset, r.reset, r.width), (offset, reset, 4), "{name}");
    }
    assert_eq!(dev.model.registers.len(), 24);
    let psel = d.registers.iter().find(|r| r.name == "PSEL_RXD").unwrap();
    assert_eq!(psel.reset, Some(0xFFFF_FFFF), "resetValue as written");

    // Fields: bit ranges, access and value names.
    let psel = dev.reg("PSEL_RXD");
    let names: Vec<_> = psel.fields.iter().map(|f| (f.name.as_str(), f.mask)).collect();
    assert_eq!(names, [("PIN", 0x1F), ("PORT", 0x20), ("CONNECT", 0x8000_0000)]);
    let connect = &psel.fields[2];
    assert_eq!(connect.value_name(1), Some("Disconnected"));
    let baud = &dev.reg("BAUDRATE").fields[0];
    assert_eq!(baud.value_name(0x01D7_E000), Some("Baud115200"));
    let task = &dev.reg("TASKS_STARTRX").fields[0];
    assert!(task.access.write && !task.access.read, "write-only task");
    let errorsrc = dev.reg("ERRORSRC");
    assert!(
        errorsrc
            .fields
            .iter()
            .all(|f| f.on_write == mmiolab_regmodel::compile::OnWrite::OneToClear)
    );

    // RXD's readAction modifyExternal is the one thing the format cannot declare.
    let side: Vec<_> = im
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::ReadSideEffect)
        .collect();
    assert_eq!(side.len(), 1, "{:?}", im.warnings);
    assert_eq!(side[0].register, "RXD");
    assert!(side[0].message.contains("modifyExternal"), "{}", side[0]);
    assert_eq!(im.warnings.len(), 1, "{:?}", im.warnings);

    // Reset values through the engine.
    let mut dev = dev;
    assert_eq!(dev.read("BAUDRATE"), 0x0400_0000);
    assert_eq!(dev.read("PSEL_TXD"), 0x8000_003F, "disconnected, pin 31, port 1");
    assert_eq!(dev.read("TASKS_STARTRX"), 0, "write-only reads 0");
}

#[test]
fn nrf52840_derived_peripheral_and_cluster_registers() {
    let im = import(nrf52840(), "UARTE1");
    let dev = Dev::new(&im.description);
    // UARTE1 is derivedFrom UARTE0: same map, its own interrupt.
    assert_eq!(im.interrupts[0].name, "UARTE1");
    assert_eq!(im.interrupts[0].value, 40);
    for (name, offset) in [
        ("INTEN", 0x300),
        ("RXD_PTR", 0x534),
        ("RXD_MAXCNT", 0x538),
        ("TXD_AMOUNT", 0x54C),
    ] {
        assert_eq!(dev.offset(name), offset, "{name}");
    }
    let uarte0 = import(nrf52840(), "uarte0"); // a unique case-insensitive match is accepted
    assert_eq!(uarte0.description.device.name.as_deref(), Some("UARTE0"));
    assert_eq!(uarte0.description.registers.len(), im.description.registers.len());
}

#[test]
fn nrf52840_errorsrc_is_write_one_to_clear_in_the_engine() {
    let mut base = import(nrf52840(), "UART0").description;
    // Something must set the error bits: an overlay effect stands in for the receiver.
    apply_overlay_toml(
        &mut base,
        r#"
[[effect]]
name = "overrun"
on = "write TASKS_STARTRX"
do = ["set ERRORSRC.OVERRUN", "set ERRORSRC.FRAMING"]
"#,
    )
    .unwrap();
    let mut dev = Dev::new(&base);
    // Writing 1 to a clear W1C bit does not set it (a plain read-write field would).
    dev.write("ERRORSRC", 0b1111);
    assert_eq!(dev.read("ERRORSRC"), 0);
    dev.write("TASKS_STARTRX", 1);
    assert_eq!(dev.read("ERRORSRC"), 0b101, "OVERRUN and FRAMING set");
    dev.write("ERRORSRC", 0);
    assert_eq!(dev.read("ERRORSRC"), 0b101, "writing 0 changes nothing");
    dev.write("ERRORSRC", 0b001);
    assert_eq!(dev.read("ERRORSRC"), 0b100, "writing 1 clears OVERRUN only");
    dev.write("ERRORSRC", 0b100);
    assert_eq!(dev.read("ERRORSRC"), 0);
}

#[test]
fn nrf52840_overlay_adds_fifo_effect_and_interrupt() {
    let im = import(nrf52840(), "UART0");
    let mut desc = im.description;
    let irq = &im.interrupts[0].name;
    let overlay = format!(
        r#"
[[fifo]]
name = "rx"
depth = 4

# RXD had readAction modifyExternal: a read pops the receive FIFO.
[[register]]
name = "RXD"
pop = "rx"

# The event holds until software writes 0 (a field modified, bits kept from the SVD).
[[register]]
name = "EVENTS_RXDRDY"
[[register.field]]
name = "EVENTS_RXDRDY"
sticky = true

[[interrupt]]
name = "{irq}"
when = "EVENTS_RXDRDY.EVENTS_RXDRDY && INTENSET.RXDRDY"

[[effect]]
name = "rxdrdy"
on = "push rx"
do = ["set EVENTS_RXDRDY.EVENTS_RXDRDY"]
"#
    );
    apply_overlay_toml(&mut desc, &overlay).unwrap();
    assert!(desc.registers.iter().find(|r| r.name == "RXD").unwrap().pop.is_some());
    let mut dev = Dev::new(&desc);
    assert_eq!(dev.model.interrupts[0].name, "UARTE0_UART0");

    dev.write("INTENSET", 1 << 2);
    let mut notes = Notes::default();
    let (taken, out) = engine::feed(&dev.model, &mut dev.state, 0, &[0x41, 0x42], &|| 0, &mut notes);
    // The notes borrow the model; the reads below need the device back.
    drop(notes);
    assert_eq!(taken, 2);
    assert_eq!(
        out.irq_changed, 1,
        "the push set EVENTS_RXDRDY, which raised the interrupt"
    );
    assert_eq!(dev.state.irq_levels(), 1);
    assert_eq!(dev.read("EVENTS_RXDRDY"), 1);
    assert_eq!(dev.read("RXD"), 0x41);
    assert_eq!(dev.read("RXD"), 0x42);
    let out = dev.write("EVENTS_RXDRDY", 0);
    eprintln!(
        "DBG lvl={} ev={} out={out:?} stored={:#x?}",
        dev.state.irq_levels(),
        dev.read("EVENTS_RXDRDY"),
        dev.state.value(7)
    );
    assert_eq!(out.irq_changed, 1);
    assert_eq!(dev.state.irq_levels(), 0);
}

#[test]
fn nrf52840_unknown_peripheral_lists_the_available_ones() {
    let err = svd::import(nrf52840(), "UART7").unwrap_err();
    let SvdError::NoSuchPeripheral {
        device,
        name,
        available,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((device.as_str(), name.as_str()), ("nrf52840", "UART7"));
    for p in ["UART0", "UARTE0", "UARTE1", "SPI0", "USBD"] {
        assert!(available.iter().any(|a| a == p), "{p} in {available:?}");
    }
    let text = err.to_string();
    assert!(
        text.contains("no peripheral named `UART7`") && text.contains("UARTE1"),
        "{text}"
    );
    assert_eq!(svd::peripherals(nrf52840()).unwrap(), *available);
}

// ---------------------------------------------------------------------------------------
// Malformed input.

#[test]
fn malformed_svd_gives_a_clear_error() {
    // Cut short.
    let xml = nrf52840();
    let cut = &xml[..xml.find("<name>UART0</name>").unwrap() + 8];
    let err = svd::import(cut, "UART0").unwrap_err();
    assert!(matches!(err, SvdError::Parse(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "not a usable CMSIS-SVD file: the root node was opened but never closed"
    );

    // XML, but no device.
    let err = svd::import("<html><body/></html>", "X").unwrap_err().to_string();
    assert!(err.contains("Expected a <device> tag"), "{err}");

    // A value SVD does not allow: the message says where (element path, line:column) and what.
    let bad = toy().replace("<access>write-only</access>", "<access>sometimes</access>");
    let err = svd::import(&bad, "DMA").unwrap_err().to_string();
    assert!(err.contains("In peripheral `DMA`: In register `CH[%s]`"), "{err}");
    assert!(err.contains("unknown access variant 'sometimes'"), "{err}");
    let position = err.rsplit(" at ").next().unwrap().split(':').next().unwrap();
    assert!(position.parse::<u32>().is_ok(), "line number: {err}");

    // Not XML at all.
    let err = svd::import("this is not xml", "X").unwrap_err().to_string();
    assert!(err.contains("unknown token at 1:1"), "{err}");
    assert!(matches!(svd::import("", "X"), Err(SvdError::Parse(_))));

    // Parsed, but not byte-addressed.
    let words = toy().replace(
        "<addressUnitBits>8</addressUnitBits>",
        "<addressUnitBits>16</addressUnitBits>",
    );
    let err = svd::import(&words, "DMA").unwrap_err();
    assert!(matches!(err, SvdError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("addressUnitBits is 16"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The hand-written file: what the vendor file does not exercise.

#[test]
fn toy_mapping() {
    let im = import(&toy(), "DMA");
    let d = &im.description;
    let names: Vec<_> = d.registers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CTRL",
            "STATUS",
            "DATA",
            "CH0",
            "CH1",
            "CH2",
            "CH3",
            "SLOTA_SRC",
            "SLOTA_LEN",
            "SLOTB_SRC",
            "SLOTB_LEN",
            "EVENTS"
        ],
        "arrays and clusters expanded; WIDE24 and the alternate DATA_ALT left out"
    );
    let reg = |n: &str| d.registers.iter().find(|r| r.name == n).unwrap();
    // Inherited size and reset from the peripheral, overridden per register.
    assert_eq!((reg("CTRL").width, reg("CTRL").reset), (Some(16), Some(0x1234)));
    assert_eq!(
        (reg("STATUS").offset, reg("STATUS").width, reg("STATUS").reset),
        (2, Some(16), Some(3))
    );
    assert_eq!(
        (reg("CH2").offset, reg("CH2").reset, reg("CH2").sw.as_deref()),
        (0x18, Some(0x0F), Some("write-only"))
    );
    assert_eq!(
        (reg("SLOTB_SRC").offset, reg("SLOTB_LEN").offset, reg("SLOTB_LEN").width),
        (0x50, 0x54, Some(8))
    );
    assert_eq!(reg("CTRL").fields[1].bits, Bits::Range("3:1".into()));
    // Value names: sanitized, one per value, read sets first, too large and default-only left out.
    let values = reg("CTRL").fields[1].values.clone().unwrap();
    let values: Vec<_> = values.into_iter().collect();
    assert_eq!(
        values,
        [
            ("Mode_A".to_owned(), 1),
            ("Set3".to_owned(), 3),
            ("_1MBPS".to_owned(), 0),
            ("value_".to_owned(), 2)
        ]
    );
    // Buffer block -> trapped memory window; the blocks give the size.
    assert_eq!(d.memories.len(), 1);
    let m = &d.memories[0];
    assert_eq!(
        (m.name.as_str(), m.offset, m.size, m.backing),
        ("BUFFER_800", 0x800, 0x400, Backing::Trapped)
    );
    assert_eq!(d.device.size, Some(0xC00));
    // Interrupts, names sanitized.
    let irqs: Vec<_> = im.interrupts.iter().map(|i| (i.name.as_str(), i.value)).collect();
    assert_eq!(irqs, [("DMA_DONE", 17), ("DMA_ERR", 18)]);
    assert_eq!(im.interrupts[0].description.as_deref(), Some("Transfer done"));

    let kinds = |k: WarningKind| {
        im.warnings
            .iter()
            .filter(|w| w.kind == k)
            .map(|w| w.register.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(WarningKind::ReadSideEffect), ["DATA"]);
    assert_eq!(kinds(WarningKind::Dropped), ["WIDE24", "DATA_ALT"]);
    assert_eq!(
        kinds(WarningKind::Adjusted),
        ["STATUS"],
        "read-only LOCK with oneToClear"
    );
    assert!(kinds(WarningKind::Renamed).is_empty());
    let alt = im.warnings.iter().find(|w| w.register == "DATA_ALT").unwrap();
    assert!(alt.message.contains("`DATA`") && alt.message.contains("when"), "{alt}");

    // The derived peripheral: same registers, its own interrupt.
    let im2 = import(&toy(), "DMA2");
    assert_eq!(im2.description.registers.len(), d.registers.len());
    assert_eq!(im2.interrupts.len(), 1);
    assert_eq!(im2.interrupts[0].name, "DMA2");
}

#[test]
fn toy_read_actions_w1c_and_buffer_in_the_engine() {
    let mut dev = Dev::new(&import(&toy(), "DMA").description);
    // STATUS resets to DONE=1, ERR=1. DONE clears on read, BUSY sets on read.
    assert_eq!(dev.read("STATUS"), 0b0011);
    assert_eq!(dev.read("STATUS"), 0b1010, "DONE cleared by the read, BUSY set by it");
    dev.write("STATUS", 0b0010);
    assert_eq!(dev.read("STATUS") & 0b0010, 0, "ERR is W1C");
    // A whole-register readAction clear.
    let events = dev.offset("EVENTS");
    assert!(
        dev.model
            .registers
            .iter()
            .any(|r| r.offset == events && r.fields[0].on_read == mmiolab_regmodel::compile::OnRead::Clear)
    );
    // The buffer: byte-addressable trapped memory.
    let mut data = [0xAB];
    dev.access(Dir::Write, 0x801, &mut data);
    let mut back = [0u8; 4];
    dev.access(Dir::Read, 0x800, &mut back);
    assert_eq!(back, [0, 0xAB, 0, 0]);
    // Write-only array elements read 0.
    dev.write("CH1", 7);
    assert_eq!(dev.read("CH1"), 0);
}

#[test]
fn sanitize_names() {
    assert_eq!(svd::sanitize_name("CH[2]"), "CH_2");
    assert_eq!(svd::sanitize_name("1MBPS"), "_1MBPS");
    assert_eq!(svd::sanitize_name("a.b-c d"), "a_b_c_d");
    assert_eq!(svd::sanitize_name(""), "_");
    assert_eq!(svd::sanitize_name("value"), "value_");
    assert_eq!(svd::sanitize_name("µA"), "_A");
    assert_eq!(svd::sanitize_name(&"X".repeat(80)).len(), 64);
}

#[test]
fn renamed_registers_and_fields_are_reported() {
    let xml = toy()
        .replace("<name>CTRL</name>", "<name>CTRL-0</name>")
        .replace("<name>EN</name>", "<name>2EN</name>")
        .replace("<name>STATUS</name>", "<name>CTRL_0</name>");
    let im = import(&xml, "DMA");
    let d = &im.description;
    assert_eq!(d.registers[0].name, "CTRL_0");
    assert_eq!(d.registers[0].fields[0].name, "_2EN");
    assert_eq!(
        d.registers[1].name, "CTRL_0_2",
        "a name taken by a sanitized one gets a suffix"
    );
    let renamed: Vec<_> = im
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Renamed)
        .map(|w| w.message.clone())
        .collect();
    assert_eq!(renamed.len(), 3, "{renamed:?}");
    assert!(
        renamed[0].contains("`CTRL-0`") && renamed[0].contains("`CTRL_0`"),
        "{renamed:?}"
    );
    compile(d).unwrap();
}

// ---------------------------------------------------------------------------------------
// Overlay merge rules.

const BASE: &str = r#"
[device]
name = "base"

[[register]]
name = "CTRL"
offset = 0
[[register.field]]
name = "EN"
bits = 0
[[register.field]]
name = "IRQ"
bits = 1
on_write = "oneToClear"

[[register]]
name = "RAW"
offset = 4
sw = "read-only"
"#;

fn base() -> Description {
    Description::from_toml(BASE).unwrap()
}

#[test]
fn overlay_merges_registers_and_fields_by_name() {
    let mut d = base();
    apply_overlay_toml(
        &mut d,
        r#"
[device]
description = "with an overlay"

[[register]]
name = "CTRL"
reset = 1
[[register.field]]
name = "IRQ"
sw = "read-only"        # drops the base's on_write (a read-only field has none)
[[register.field]]
name = "MODE"
bits = "5:4"
values = { A = 0, B = 1 }

[[register]]
name = "NEW"
offset = 8
width = 16

[[effect]]
on = "write NEW"
do = ["set CTRL.EN"]
"#,
    )
    .unwrap();
    assert_eq!(d.device.name.as_deref(), Some("base"));
    assert_eq!(d.device.description.as_deref(), Some("with an overlay"));
    let ctrl = &d.registers[0];
    assert_eq!((ctrl.offset, ctrl.reset), (0, Some(1)), "offset kept, reset replaced");
    let names: Vec<_> = ctrl.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["EN", "IRQ", "MODE"]);
    assert_eq!(
        (ctrl.fields[1].sw.as_deref(), ctrl.fields[1].on_write.as_deref()),
        (Some("read-only"), None)
    );
    assert_eq!(ctrl.fields[1].bits, Bits::Bit(1), "bits kept");
    assert_eq!(d.registers[2].name, "NEW");
    assert_eq!(d.effects.len(), 1);
    let mut dev = Dev::new(&d);
    dev.write("NEW", 1);
    assert_eq!(dev.read("CTRL") & 1, 1);
}

#[test]
fn overlay_gives_fields_to_a_register_without_and_keeps_its_access() {
    let mut d = base();
    apply_overlay_toml(
        &mut d,
        r#"
[[register]]
name = "RAW"
[[register.field]]
name = "LO"
bits = "7:0"
[[register.field]]
name = "HI"
bits = "15:8"
sw = "rw"
"#,
    )
    .unwrap();
    let raw = &d.registers[1];
    assert_eq!(raw.sw, None, "moved to the fields");
    assert_eq!(raw.fields[0].sw.as_deref(), Some("read-only"));
    assert_eq!(raw.fields[1].sw.as_deref(), Some("rw"));
    compile(&d).unwrap();
}

#[test]
fn overlay_value_drops_stored_behaviour() {
    let mut d = base();
    apply_overlay_toml(
        &mut d,
        r#"
[[register]]
name = "CTRL"
[[register.field]]
name = "IRQ"
value = "RAW != 0"
"#,
    )
    .unwrap();
    assert_eq!(d.registers[0].fields[1].on_write, None);
    compile(&d).unwrap();
}

#[test]
fn overlay_refusals_name_the_overlay_key() {
    let cases = [
        (
            "[[register]]\nname = \"NOPE\"\nwidth = 8\n",
            "register[0].offset",
            "needs an `offset`",
        ),
        (
            "[[register]]\nname = \"CTRL\"\n[[register.field]]\nname = \"EN\"\n[[register.field]]\nname = \"X\"\n",
            "register[0].field[1].bits",
            "a new field needs `bits`",
        ),
        (
            "[[register]]\nname = \"CTRL\"\nsw = \"ro\"\n",
            "register[0]",
            "has fields",
        ),
    ];
    for (text, key, reason) in cases {
        let mut d = base();
        let err = apply_overlay_toml(&mut d, text).unwrap_err();
        assert_eq!(err.key, key, "{text}");
        assert!(err.reason.contains(reason), "{err}");
        assert_eq!(d.registers.len(), 2, "the base is untouched on error");
        assert_eq!(d.registers[0].fields.len(), 2);
    }
    // A key the format does not know is refused by the parser.
    let err = apply_overlay_toml(&mut base(), "[[register]]\nname = \"CTRL\"\nofset = 4\n").unwrap_err();
    assert!(err.reason.contains("ofset"), "{err}");
}

#[test]
fn a_whole_description_is_an_overlay() {
    let mut d = base();
    let overlay = Description::from_toml(
        r#"
[[register]]
name = "RAW"
offset = 12

[[interrupt]]
name = "irq"
when = "CTRL.IRQ"
"#,
    )
    .unwrap();
    apply_overlay(&mut d, overlay).unwrap();
    assert_eq!(d.registers[1].offset, 12, "offset is required there, so it replaces");
    assert_eq!(
        d.registers[1].sw.as_deref(),
        Some("read-only"),
        "keys left out are kept"
    );
    assert_eq!(d.interrupts.len(), 1);
    compile(&d).unwrap();
}
