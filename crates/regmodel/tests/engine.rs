//! The engine's semantics, behaviour by behaviour, on small descriptions.
#![allow(clippy::indexing_slicing)]

use mmiolab_devices::Note;
use mmiolab_regmodel::engine::{self, Dir, Notes, Outcome, State};
use mmiolab_regmodel::{Model, compile_text};
use std::path::Path;

struct Dev {
    model: Model,
    state: State,
    now: u64,
}

impl Dev {
    fn new(text: &str) -> Dev {
        let model = compile_text(text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let state = State::new(&model);
        Dev { model, state, now: 0 }
    }

    fn access(&mut self, dir: Dir, offset: u64, data: &mut [u8]) -> (Outcome, Vec<String>) {
        let now = self.now;
        let mut notes = Notes::default();
        let out = engine::access(&self.model, &mut self.state, dir, offset, data, &|| now, &mut notes);
        (out, notes.as_slice().iter().map(|n| format!("{n:?}")).collect())
    }

    fn read(&mut self, offset: u64, width: usize) -> u64 {
        let mut data = vec![0u8; width];
        self.access(Dir::Read, offset, &mut data);
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(&data);
        u64::from_le_bytes(le)
    }

    fn write(&mut self, offset: u64, width: usize, value: u64) -> Vec<String> {
        let mut data = value.to_le_bytes()[..width].to_vec();
        self.access(Dir::Write, offset, &mut data).1
    }

    fn advance(&mut self, ns: u64) -> Outcome {
        self.now += ns;
        let mut notes = Notes::default();
        engine::run_due(&self.model, &mut self.state, self.now, &mut notes)
    }
}

const STATUS: &str = r#"
[[register]]
name = "STATUS"
offset = 0
[[register.field]]
name = "DONE"
bits = 0
sw = "rw"
on_write = "w1c"
[[register.field]]
name = "ERR"
bits = 1
on_write = "oneToClear"
[[register.field]]
name = "COUNT"
bits = "15:8"
sw = "ro"
on_read = "rclr"
[[register.field]]
name = "MODE"
bits = "17:16"
values = { SLOW = 0, FAST = 2 }

[[register]]
name = "CTRL"
offset = 4
[[register.field]]
name = "GO"
bits = 0
singlepulse = true
[[register.field]]
name = "IE"
bits = 1

[[register]]
name = "COUNTER"
offset = 8
width = 8
[[register.field]]
name = "N"
bits = "3:0"
sw = "ro"
counter = { saturate = false, overflow = "COUNTER.OVF" }
[[register.field]]
name = "OVF"
bits = 7
on_write = "w1c"
sticky = true

[[interrupt]]
name = "done"
when = "STATUS.DONE && CTRL.IE"

[[effect]]
name = "start"
on = "write CTRL.GO"
after = "10us"
do = ["set STATUS.DONE", "STATUS.COUNT += 1", "COUNTER.N += 1"]
"#;

#[test]
fn w1c_rclr_singlepulse_delay_and_level_interrupt() {
    let mut d = Dev::new(STATUS);
    d.write(4, 4, 0b10); // IE
    let notes = d.write(4, 4, 0b11); // GO
    assert!(
        notes.iter().any(|n| n.contains("Scheduled") && n.contains("10000")),
        "{notes:?}"
    );
    assert_eq!(d.read(4, 4), 0b10, "GO cleared itself");
    assert_eq!(d.read(0, 4) & 1, 0, "not done before the delay");
    let out = d.advance(9_999);
    assert_eq!(out.irq_changed, 0);
    let out = d.advance(1);
    assert_eq!(out.irq_changed, 1);
    assert_eq!(d.state.irq_levels(), 1);
    let v = d.read(0, 4);
    assert_eq!(v & 1, 1);
    assert_eq!((v >> 8) & 0xff, 1, "COUNT incremented");
    assert_eq!((d.read(0, 4) >> 8) & 0xff, 0, "COUNT is read-to-clear");
    // Writing 0 to a W1C bit does nothing; writing 1 clears it and lowers the level.
    d.write(0, 4, 0);
    assert_eq!(d.read(0, 4) & 1, 1);
    let mut data = 1u32.to_le_bytes();
    let (out, notes) = d.access(Dir::Write, 0, &mut data);
    assert_eq!(out.irq_changed, 1);
    assert_eq!(d.state.irq_levels(), 0);
    assert!(
        notes.contains(&"Cleared { field: \"STATUS.DONE\", bits: 1 }".to_owned()),
        "{notes:?}"
    );
}

#[test]
fn counter_wraps_and_sets_a_sticky_overflow_flag() {
    let mut d = Dev::new(STATUS);
    for _ in 0..16 {
        d.write(4, 4, 1);
        d.advance(10_000);
    }
    let v = d.read(8, 1);
    assert_eq!(v & 0xf, 0, "wrapped after 16");
    assert_eq!(v & 0x80, 0x80, "overflow flag");
    d.write(8, 1, 0x80);
    assert_eq!(d.read(8, 1) & 0x80, 0);
}

#[test]
fn byte_access_to_a_field_and_enum_decoding() {
    let mut d = Dev::new(STATUS);
    d.write(2, 1, 2); // MODE = FAST through the third byte
    assert_eq!(d.read(0, 4) >> 16, 2);
    let mut fields = [mmiolab_devices::FieldValue {
        name: "",
        value: 0,
        enum_name: None,
    }; engine::MAX_FIELDS];
    let v = d.read(0, 4);
    let n = engine::decode(&d.model, 0, v, &mut fields);
    let mode = fields[..n].iter().find(|f| f.name == "MODE").unwrap();
    assert_eq!(mode.enum_name, Some("FAST"));
}

const FIFO: &str = r#"
[device]
name = "f"
[[fifo]]
name = "rx"
depth = 2
overflow = "FLAGS.OVR"
underflow = "FLAGS.UDR"
empty_read = 0xee

[[register]]
name = "DATA"
offset = 0
width = 8
pop = "rx"
push = "rx"

[[register]]
name = "FLAGS"
offset = 1
width = 8
[[register.field]]
name = "LEVEL"
bits = "3:0"
value = "rx.level"
[[register.field]]
name = "OVR"
bits = 4
on_write = "w1c"
[[register.field]]
name = "UDR"
bits = 5
on_write = "w1c"
[[register.field]]
name = "EMPTY"
bits = 6
value = "rx.empty"
"#;

#[test]
fn fifo_order_level_overflow_underflow() {
    let mut d = Dev::new(FIFO);
    assert_eq!(d.read(1, 1), 0x40, "empty at reset");
    d.write(0, 1, 0x11);
    d.write(0, 1, 0x22);
    let notes = d.write(0, 1, 0x33);
    assert!(notes.iter().any(|n| n.starts_with("Overflow")), "{notes:?}");
    assert_eq!(d.read(1, 1), 0x12, "level 2, overflow");
    assert_eq!(d.read(0, 1), 0x11);
    assert_eq!(d.read(0, 1), 0x22);
    assert_eq!(d.read(0, 1), 0xee, "underflow reads empty_read");
    assert_eq!(d.read(1, 1), 0x70);
    d.write(1, 1, 0x30);
    assert_eq!(d.read(1, 1), 0x40);
}

const BANKED: &str = r#"
[device]
endianness = "big"
[[register]]
name = "RBR"
offset = 0
width = 8
sw = "ro"
reset = 0x41
when = "!LCR.DLAB"
[[register]]
name = "THR"
offset = 0
width = 8
sw = "wo"
when = "!LCR.DLAB"
[[register]]
name = "DLL"
offset = 0
width = 8
when = "LCR.DLAB"
[[register]]
name = "LCR"
offset = 3
width = 8
[[register.field]]
name = "DLAB"
bits = 7
[[register]]
name = "WIDE"
offset = 4
width = 32
widths = [32]
[[register]]
name = "ID"
offset = 8
width = 16
sw = "ro"
reset = 0x1234
reserved_read = 0
[[register]]
name = "ONCE"
offset = 12
width = 8
sw = "rw1"
"#;

#[test]
fn banked_views_and_read_write_split() {
    let mut d = Dev::new(BANKED);
    assert_eq!(d.read(0, 1), 0x41, "RBR");
    d.write(0, 1, 0x99); // THR: does not change RBR
    assert_eq!(d.read(0, 1), 0x41);
    d.write(3, 1, 0x80);
    d.write(0, 1, 0x07); // DLL
    assert_eq!(d.read(0, 1), 0x07);
    d.write(3, 1, 0);
    assert_eq!(d.read(0, 1), 0x41);
}

#[test]
fn big_endian_width_policy_and_holes() {
    let mut d = Dev::new(BANKED);
    // Big endian: the first byte in memory is the most significant.
    assert_eq!(d.read(8, 1), 0x12);
    assert_eq!(d.read(8, 2), 0x3412);
    // WIDE takes only 32-bit accesses: a byte read is all ones, a byte write is dropped.
    d.write(4, 4, 0x0102_0304);
    assert_eq!(d.read(4, 4), 0x0102_0304);
    assert_eq!(d.read(4, 1), 0xff);
    let mut b = [0x55u8];
    let (_, notes) = d.access(Dir::Write, 5, &mut b);
    assert_eq!(notes, vec!["BadWidth".to_owned()]);
    assert_eq!(d.read(4, 4), 0x0102_0304);
    // Bytes no register covers read as the hole value and say so.
    let mut w = [0u8; 2];
    let (_, notes) = d.access(Dir::Read, 10, &mut w);
    assert_eq!(w, [0, 0]);
    assert_eq!(notes, vec!["Hole".to_owned()]);
}

#[test]
fn write_once_keeps_the_first_value() {
    let mut d = Dev::new(BANKED);
    d.write(12, 1, 5);
    let notes = d.write(12, 1, 6);
    assert_eq!(d.read(12, 1), 5);
    assert_eq!(notes, vec!["Ignored { field: \"ONCE\" }".to_owned()]);
}

#[test]
fn write_sets_toggles_and_zero_clears() {
    let mut d = Dev::new(
        r#"
[[register]]
name = "R"
offset = 0
reset = 0xf0
[[register.field]]
name = "S"
bits = "3:0"
on_write = "w1s"
[[register.field]]
name = "T"
bits = "7:4"
on_write = "w1t"
reset = 0xf
[[register.field]]
name = "Z"
bits = "11:8"
on_write = "w0c"
reset = 0xf
[[register.field]]
name = "ZS"
bits = "15:12"
on_write = "w0s"
"#,
    );
    assert_eq!(d.read(0, 4), 0x0ff0);
    // S |= 5, T ^= 3, Z &= 0xa, ZS |= !0.
    d.write(0, 4, 0x0a35);
    assert_eq!(d.read(0, 4), 0xfac5);
}

#[test]
fn effects_after_accesses_push_and_edge_interrupts() {
    let mut d = Dev::new(
        r#"
[[fifo]]
name = "q"
depth = 4
[[register]]
name = "KICK"
offset = 0
sw = "wo"
[[register]]
name = "STAT"
offset = 4
sw = "ro"
[[interrupt]]
name = "edge"
trigger = "edge"
when = "q.level >= 2"
[[effect]]
name = "later"
on = "write KICK"
after_accesses = 2
do = ["push q value", "STAT = q.level", "pulse edge"]
"#,
    );
    d.write(0, 4, 7);
    assert_eq!(d.read(4, 4), 0, "first further access: not yet");
    assert_eq!(d.read(4, 4), 0, "second: fires after this read is served");
    assert_eq!(d.read(4, 4), 1);
    d.write(0, 4, 8);
    d.read(4, 4);
    let mut data = [0u8; 4];
    let (out, notes) = d.access(Dir::Read, 4, &mut data);
    assert_eq!(out.pulses, 1);
    assert_eq!(out.irq_changed, 1, "level 2 reached: the edge condition rose");
    assert!(notes.iter().any(|n| n.contains("Fired")), "{notes:?}");
}

#[test]
fn arrays_and_per_element_effects() {
    let mut d = Dev::new(
        r#"
[[register]]
name = "CH"
offset = 0x10
count = 4
stride = 8
[[register.field]]
name = "GO"
bits = 0
singlepulse = true
[[register.field]]
name = "DONE"
bits = 1
on_write = "w1c"
[[effect]]
name = "done"
on = "write CH[i].GO"
do = ["set CH[i].DONE"]
"#,
    );
    assert_eq!(d.model.registers[2].name, "CH[2]");
    assert_eq!(d.model.registers[2].offset, 0x20);
    d.write(0x20, 4, 1);
    assert_eq!(d.read(0x20, 4), 2);
    assert_eq!(d.read(0x18, 4), 0);
}

#[test]
fn trapped_memory_window() {
    let mut d = Dev::new(
        r#"
[[memory]]
name = "sram"
offset = 0x100
size = 0x100
backing = "trapped"
fill = 0xaa
[[memory]]
name = "rom"
offset = 0x200
size = 0x10
backing = "trapped"
readonly = true
"#,
    );
    assert_eq!(d.read(0x100, 8), 0xaaaa_aaaa_aaaa_aaaa);
    d.write(0x1fc, 4, 0x1234_5678);
    assert_eq!(d.read(0x1fc, 4), 0x1234_5678);
    assert_eq!(d.read(0x1fe, 1), 0x34);
    let notes = d.write(0x200, 1, 1);
    assert_eq!(notes, vec!["Ignored { field: \"rom\" }".to_owned()]);
    assert_eq!(d.read(0x200, 1), 0);
}

/// KVM delivers an access that straddles a page boundary as two, of the bytes on each page:
/// 3-, 5-, 6- and 7-byte accesses reach a device (found by the guest-side fuzzer, where a
/// trapped memory window read them as all ones and dropped such writes).
#[test]
fn page_split_widths_reach_memory_windows_and_registers() {
    let mut d = Dev::new(
        r#"
[[register]]
name = "A"
offset = 0
widths = [8, 16, 32]
[[register]]
name = "B"
offset = 4
[[memory]]
name = "sram"
offset = 0x1000
size = 0x1000
backing = "trapped"
"#,
    );
    for width in 1..=8usize {
        let value = 0x8877_6655_4433_2211u64 & (u64::MAX >> (64 - 8 * width as u32));
        let at = 0x2000 - width as u64;
        let notes = d.write(at, width, value);
        assert!(notes.is_empty(), "width {width}: {notes:?}");
        assert_eq!(d.read(at, width), value, "width {width}");
        assert_eq!(d.read(0x1ff8, 8) >> (8 * (8 - width)), value, "width {width}");
    }
    // A 3-byte write to the end of A and the start of B; a 5-byte read back across both.
    assert!(d.write(3, 3, 0xccbbaa).is_empty());
    assert_eq!(d.read(0, 4), 0xaa00_0000);
    assert_eq!(d.read(4, 4), 0xccbb);
    assert_eq!(d.read(2, 5), 0xccbb_aa00);
    assert_eq!(d.read(0, 7), 0xccbb_aa00_0000);
    // Only widths no bus makes are refused.
    let mut nine = [0u8; 9];
    let (_, notes) = d.access(Dir::Read, 0, &mut nine);
    assert_eq!((nine, notes), ([0xff; 9], vec!["BadWidth".to_owned()]));
}

#[test]
fn hostile_accesses_never_panic() {
    let mut d = Dev::new(FIFO);
    for offset in [0u64, 1, 2, 7, 0xffff, u64::MAX - 3, u64::MAX] {
        for width in [0usize, 1, 2, 3, 4, 8, 16] {
            let mut data = vec![0x5a; width];
            d.access(Dir::Read, offset, &mut data);
            d.access(Dir::Write, offset, &mut data);
        }
    }
}

#[test]
fn notes_are_bounded() {
    let mut n = Notes::default();
    let _ = &mut n;
    let mut d = Dev::new(FIFO);
    for _ in 0..100 {
        d.write(0, 1, 1);
    }
    let (_, notes) = d.access(Dir::Read, 1, &mut [0u8]);
    assert!(notes.len() <= engine::MAX_NOTES);
    let _ = Note::Hole;
}

#[test]
fn an_effect_on_a_whole_register_touches_only_its_fields() {
    let mut d = Dev::new(
        r#"
[[register]]
name = "EV"
offset = 0
[[register.field]]
name = "E"
bits = 0
[[register]]
name = "KICK"
offset = 4
[[interrupt]]
name = "ev"
when = "EV"
[[effect]]
on = "write KICK"
do = ["set EV"]
"#,
    );
    d.write(4, 4, 0);
    assert_eq!(d.read(0, 4), 1, "only the field's bit, not the reserved ones");
    assert_eq!(d.state.irq_levels(), 1);
    d.write(0, 4, 0);
    assert_eq!(d.state.irq_levels(), 0, "clearing the field clears the condition on EV");
}
