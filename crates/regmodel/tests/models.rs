//! The bundled descriptions (models/*.toml), driven through the register engine: values
//! read back, side effects, FIFO levels, interrupt levels, delayed effects (with explicit
//! times, never the wall clock) and the notes each access produces. The 16550, gpio-mmio
//! and parport tests replay the register sequences of the Linux drivers that probe them;
//! the regfile and counter tests run the same accesses against the built-in Rust models.

#![allow(clippy::indexing_slicing)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mmiolab_devices::Note;
use mmiolab_regmodel::Model;
use mmiolab_regmodel::bundled::{bundled, names};
use mmiolab_regmodel::engine::{self, Dir, Notes, Outcome, State};

fn load(name: &str) -> Model {
    let text = bundled(name).unwrap_or_else(|| panic!("no bundled model `{name}`"));
    match mmiolab_regmodel::compile_text(text, Path::new(&format!("models/{name}.toml"))) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

/// One device: its model, its state, the machine's time, and what the last call noted.
struct Bench<'m> {
    model: &'m Model,
    state: State,
    /// The machine's time in ns; only [`Bench::at`] moves it.
    now: u64,
    notes: Vec<Note<'m>>,
    out: Outcome,
}

impl<'m> Bench<'m> {
    fn new(model: &'m Model) -> Bench<'m> {
        let mut b = Bench {
            model,
            state: State::new(model),
            now: 0,
            notes: Vec::new(),
            out: Outcome::default(),
        };
        // As the machine does when it builds the device: reset, with the reset effects.
        b.reset();
        b
    }

    fn finish(&mut self, notes: &Notes<'m>, out: Outcome) {
        self.notes = notes.as_slice().to_vec();
        self.out = out;
    }

    fn access(&mut self, dir: Dir, offset: u64, data: &mut [u8]) {
        let mut notes = Notes::default();
        let now = self.now;
        let out = engine::access(self.model, &mut self.state, dir, offset, data, &move || now, &mut notes);
        self.finish(&notes, out);
    }

    fn read(&mut self, offset: u64, width: usize) -> u64 {
        let mut buf = [0u8; 8];
        self.access(Dir::Read, offset, &mut buf[..width]);
        u64::from_le_bytes(buf)
    }

    fn write(&mut self, offset: u64, width: usize, value: u64) {
        let mut buf = value.to_le_bytes();
        self.access(Dir::Write, offset, &mut buf[..width]);
    }

    fn inb(&mut self, offset: u64) -> u8 {
        self.read(offset, 1) as u8
    }

    fn outb(&mut self, offset: u64, value: u8) {
        self.write(offset, 1, u64::from(value));
    }

    /// Moves the machine's time to `t` ns and runs the effects due by then.
    fn at(&mut self, t: u64) {
        assert!(t >= self.now, "time goes forward");
        self.now = t;
        let mut notes = Notes::default();
        let out = engine::run_due(self.model, &mut self.state, t, &mut notes);
        self.finish(&notes, out);
    }

    fn reset(&mut self) {
        let mut notes = Notes::default();
        let now = self.now;
        let out = engine::reset(self.model, &mut self.state, &move || now, &mut notes);
        self.finish(&notes, out);
    }

    /// The host sends byte `values` to FIFO `fifo`; returns how many are in the FIFO
    /// after (the rest wait on the host side).
    fn feed(&mut self, fifo: &str, values: &[u64]) -> usize {
        let i = self.fifo_index(fifo);
        let mut notes = Notes::default();
        let now = self.now;
        let bytes: Vec<u8> = values.iter().map(|v| *v as u8).collect();
        let before = self.level(fifo);
        let (taken, out) = engine::feed(self.model, &mut self.state, i, &bytes, &move || now, &mut notes);
        assert_eq!(taken, bytes.len(), "the host side keeps whatever does not fit yet");
        self.finish(&notes, out);
        self.level(fifo) - before
    }

    fn fifo_index(&self, fifo: &str) -> usize {
        self.model
            .fifos
            .iter()
            .position(|f| f.name == fifo)
            .unwrap_or_else(|| panic!("no FIFO `{fifo}`"))
    }

    fn level(&self, fifo: &str) -> usize {
        self.state.fifo_level(self.fifo_index(fifo)).unwrap()
    }

    fn irq_bit(&self, name: &str) -> u32 {
        let i = self
            .model
            .interrupts
            .iter()
            .position(|i| i.name == name)
            .unwrap_or_else(|| panic!("no interrupt `{name}`"));
        1 << i
    }

    /// Whether interrupt output `name` is asserted now.
    fn irq(&self, name: &str) -> bool {
        self.state.irq_levels() & self.irq_bit(name) != 0
    }

    /// Whether the last call changed the level of `name`.
    fn irq_changed(&self, name: &str) -> bool {
        self.out.irq_changed & self.irq_bit(name) != 0
    }

    /// Whether the last call pulsed `name`.
    fn pulsed(&self, name: &str) -> bool {
        self.out.pulses & self.irq_bit(name) != 0
    }

    /// The stored value of register instance `name` (what the device holds, whatever a read
    /// would show).
    fn stored(&self, name: &str) -> u64 {
        let i = self
            .model
            .registers
            .iter()
            .position(|r| r.name == name)
            .unwrap_or_else(|| panic!("no register `{name}`"));
        self.state.value(i).unwrap()
    }

    /// The register the last access reached first.
    fn reached(&self) -> Option<&'m str> {
        let model: &'m Model = self.model;
        self.out
            .register
            .and_then(|r| model.registers.get(r as usize))
            .map(|r| r.name.as_str())
    }
}

/// A shared byte buffer the host side of a FIFO writes into.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn every_bundled_model_compiles_and_starts_quiet() {
    for name in names() {
        let model = load(name);
        let b = Bench::new(&model);
        assert_eq!(b.state.pending(), 0, "{name}");
        assert!(model.size > 0, "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// demo

mod demo {
    use super::*;

    const ID: u64 = 0x00;
    const CTRL: u64 = 0x04;
    const STATUS: u64 = 0x08;
    const CSUM: u64 = 0x0c;
    const WIN: u64 = 0x10;
    const SETUP: u64 = 0x14;
    const FLAGS: u64 = 0x18;
    const EVENTS: u64 = 0x1c;
    const QDATA: u64 = 0x20;
    const QSTAT: u64 = 0x24;
    const SOFTIRQ: u64 = 0x28;
    const CH: u64 = 0x40;
    const SRAM: u64 = 0x100;

    const GO: u64 = 1;
    const IE: u64 = 2;
    const ERRIE: u64 = 4;
    const BANK: u64 = 8;
    const RESET: u64 = 1 << 31;

    const DONE: u64 = 1;
    const ERR: u64 = 2;
    const BUSY: u64 = 4;
    const POR: u64 = 8;
    const RESERVED_ONES: u64 = 0xff00_0000;

    #[test]
    fn id_is_constant_and_read_only_at_32_bits() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(ID, 4), 0xd3e0_0001);
        assert!(b.notes.is_empty());
        assert!(!b.out.trace, "ID's trace policy is silent");
        assert_eq!(b.reached(), Some("ID"));
        b.write(ID, 4, 0);
        assert_eq!(
            b.notes,
            [Note::Ignored { field: "ID.PART" }, Note::Ignored { field: "ID.REV" }]
        );
        assert!(
            b.out.trace,
            "a silent register is traced when the access noted something"
        );
        assert_eq!(b.read(ID, 4), 0xd3e0_0001);
        // Only 32-bit accesses: a byte read gets all ones and says why.
        assert_eq!(b.read(ID, 1), 0xff);
        assert_eq!(b.notes, [Note::BadWidth]);
        assert_eq!(b.read(ID + 2, 2), 0xffff);
        assert_eq!(b.notes, [Note::BadWidth]);
    }

    #[test]
    fn go_runs_a_job_that_completes_50us_later_and_interrupts_until_w1c() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.at(1_000);
        b.write(CTRL, 4, IE | GO);
        assert_eq!(
            b.notes,
            [
                Note::Scheduled {
                    effect: "complete",
                    due_ns: Some(51_000)
                },
                Note::Fired { effect: "start" },
                Note::Set {
                    field: "STATUS.BUSY",
                    bits: BUSY
                },
                Note::Cleared {
                    field: "CTRL.GO",
                    bits: GO
                },
            ]
        );
        assert_eq!(b.out.scheduled, Some(51_000));
        assert_eq!(b.read(CTRL, 4), IE, "GO clears itself");
        // POR reads 1 once after reset (read-to-clear); bits 31:24 read as ones.
        assert_eq!(b.read(STATUS, 4), RESERVED_ONES | POR | BUSY);
        assert_eq!(
            b.notes,
            [Note::Cleared {
                field: "STATUS.POR",
                bits: POR
            }]
        );
        assert_eq!(b.read(STATUS, 4), RESERVED_ONES | BUSY);
        assert!(!b.irq("done"));

        b.at(50_999);
        assert!(b.notes.is_empty());
        assert_eq!(b.read(STATUS, 4), RESERVED_ONES | BUSY);
        b.at(51_000);
        assert_eq!(
            b.notes,
            [
                Note::Fired { effect: "complete" },
                Note::Cleared {
                    field: "STATUS.BUSY",
                    bits: BUSY
                },
                Note::Set {
                    field: "STATUS.DONE",
                    bits: DONE
                },
                Note::Set {
                    field: "EVENTS.COUNT",
                    bits: 1
                },
                Note::Irq {
                    name: "done",
                    asserted: true
                },
            ]
        );
        assert!(b.irq("done") && b.irq_changed("done"));
        assert_eq!(b.out.scheduled, None, "nothing else waits");
        assert_eq!(b.read(STATUS, 4), RESERVED_ONES | DONE);
        assert_eq!(b.read(EVENTS, 4), 1);

        // Writing 0 to a W1C bit leaves it; writing 1 clears it and drops the interrupt.
        // Bits 31:24 read as ones, so writing them as 0 is noted as a reserved-bit write.
        b.write(STATUS, 4, 0);
        assert_eq!(b.notes, [Note::Reserved { bits: RESERVED_ONES }]);
        assert!(b.irq("done"));
        b.write(STATUS, 4, RESERVED_ONES | DONE);
        assert_eq!(
            b.notes,
            [
                Note::Cleared {
                    field: "STATUS.DONE",
                    bits: DONE
                },
                Note::Irq {
                    name: "done",
                    asserted: false
                },
            ]
        );
        assert!(!b.irq("done"));
        // DONE without IE: no interrupt.
        b.write(CTRL, 4, GO);
        b.at(200_000);
        assert_eq!(b.read(STATUS, 4) & DONE, DONE);
        assert!(!b.irq("done"));
        b.write(CTRL, 4, IE);
        assert!(b.irq("done"), "enabling with DONE pending raises the level at once");
    }

    #[test]
    fn go_while_busy_is_an_error_and_the_running_job_goes_on() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(CTRL, 4, ERRIE | GO);
        b.at(10_000);
        b.write(CTRL, 4, ERRIE | GO);
        assert_eq!(
            b.notes,
            [
                Note::Fired { effect: "overrun" },
                Note::Set {
                    field: "STATUS.ERR",
                    bits: ERR
                },
                Note::Cleared {
                    field: "CTRL.GO",
                    bits: GO
                },
                Note::Irq {
                    name: "error",
                    asserted: true
                },
            ]
        );
        assert_eq!(b.state.pending(), 1, "no second completion was scheduled");
        b.at(50_000);
        assert_eq!(b.read(STATUS, 4) & !(RESERVED_ONES | POR), DONE | ERR);
        b.write(STATUS, 4, ERR);
        assert!(!b.irq("error"));
    }

    #[test]
    fn the_job_counter_saturates_and_flags_the_overflow() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        for job in 1..=15u64 {
            b.write(CTRL, 4, GO);
            b.at(job * 100_000);
            assert_eq!(b.read(EVENTS, 4), job);
        }
        b.write(CTRL, 4, GO);
        b.at(1_600_000);
        assert!(b.notes.contains(&Note::Set {
            field: "EVENTS.OVF",
            bits: 1 << 8
        }));
        assert_eq!(b.read(EVENTS, 4), 15 | 1 << 8, "stops at 15, OVF set");
        b.write(CTRL, 4, GO);
        b.at(1_700_000);
        assert_eq!(b.read(EVENTS, 4), 15 | 1 << 8);
        // COUNT is read-only; OVF is W1C.
        b.write(EVENTS, 4, 0x0000_0100);
        assert_eq!(b.read(EVENTS, 4), 15);
    }

    #[test]
    fn reset_bit_resets_the_device_and_drops_the_running_job() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.read(STATUS, 4);
        b.write(CSUM, 4, 5);
        b.write(CTRL, 4, IE | GO);
        assert_eq!(b.state.pending(), 1);
        b.write(CTRL, 4, RESET);
        assert_eq!(b.notes.first(), Some(&Note::Fired { effect: "soft_reset" }));
        assert_eq!(b.state.pending(), 0);
        assert_eq!(b.read(CTRL, 4), 0);
        assert_eq!(b.read(CSUM, 4), 0);
        assert_eq!(b.read(STATUS, 4), RESERVED_ONES | POR, "POR is back after a reset");
        b.at(1_000_000);
        assert!(b.notes.is_empty());
        assert!(!b.irq("done"));
    }

    #[test]
    fn csum_is_a_read_only_and_a_write_only_register_at_one_offset() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(CSUM, 4, 5);
        assert_eq!(b.reached(), Some("CSUM_IN"));
        assert_eq!(
            b.notes,
            [Note::Fired { effect: "checksum" }, Note::Set { field: "CSUM", bits: 5 }]
        );
        b.write(CSUM, 4, 0xffff_fffe);
        assert_eq!(b.read(CSUM, 4), 3, "the sum wraps at 32 bits");
        assert_eq!(b.reached(), Some("CSUM"));
        assert_eq!(b.stored("CSUM_IN"), 0xffff_fffe);
    }

    #[test]
    fn bank_selects_which_register_answers() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(WIN, 4, 0xaaaa);
        assert_eq!(b.reached(), Some("WIN_A"));
        b.write(CTRL, 4, BANK);
        b.write(WIN, 4, 0xbbbb);
        assert_eq!(b.reached(), Some("WIN_B"));
        assert_eq!(b.read(WIN, 4), 0xbbbb);
        b.write(CTRL, 4, 0);
        assert_eq!(b.read(WIN, 4), 0xaaaa);
        assert_eq!((b.stored("WIN_A"), b.stored("WIN_B")), (0xaaaa, 0xbbbb));
    }

    #[test]
    fn write_once_fields_keep_their_first_value() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(SETUP, 4, 0x1234);
        assert!(b.notes.is_empty());
        assert_eq!(b.read(SETUP, 4), 0x34, "KEY is write-only: reads 0");
        b.write(SETUP, 4, 0x5678);
        assert_eq!(
            b.notes,
            [
                Note::Ignored { field: "SETUP.ADDR" },
                Note::Ignored { field: "SETUP.KEY" }
            ]
        );
        assert_eq!(b.read(SETUP, 4), 0x34);
        assert_eq!(b.stored("SETUP"), 0x1234);
        // A write of one byte writes ADDR only: KEY can still take its first write.
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(SETUP, 1, 0x11);
        b.write(SETUP + 1, 1, 0x22);
        b.write(SETUP, 2, 0x3333);
        assert_eq!(b.stored("SETUP"), 0x2211);
        // A reset forgets what was written.
        b.reset();
        b.write(SETUP, 4, 0x99);
        assert_eq!(b.read(SETUP, 4), 0x99);
    }

    #[test]
    fn w1s_w1t_and_w0c_fields() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(FLAGS, 4), 0x00ff_0000);
        // LEDS |= 0x81, TOG ^= 0x0f, ARM &= 0xf0 (w0c: 0s clear, 1s leave).
        b.write(FLAGS, 4, 0x00f0_0f81);
        assert_eq!(b.read(FLAGS, 4), 0x00f0_0f81);
        assert_eq!(
            b.notes,
            [],
            "a read notes nothing; the write before it noted the changes"
        );
        b.write(FLAGS, 4, 0x00ff_0302);
        assert_eq!(b.read(FLAGS, 4), 0x00f0_0c83);
        b.write(FLAGS, 4, 0x0000_0000);
        assert_eq!(b.read(FLAGS, 4), 0x0000_0c83, "ARM cleared by zeros, the rest kept");
        // The notes name what changed.
        b.write(FLAGS, 4, 0x00ff_0100);
        assert_eq!(
            b.notes,
            [Note::Set {
                field: "FLAGS.TOG",
                bits: 0x100
            }]
        );
        assert_eq!(b.read(FLAGS, 4), 0x0000_0d83);
    }

    #[test]
    fn the_queue_pushes_pops_and_flags_overflow_and_underflow() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(QSTAT, 4), 1 << 4, "empty");
        for k in 1..=8u64 {
            b.write(QDATA, 4, 0x100 + k);
            assert_eq!(b.level("queue"), k as usize);
            if k == 4 {
                assert!(b.irq("threshold") && b.irq_changed("threshold"), "edge at 4 words");
                assert!(b.notes.contains(&Note::Irq {
                    name: "threshold",
                    asserted: true
                }));
            }
        }
        assert_eq!(b.read(QSTAT, 4), 8 | 1 << 5, "level 8, full");
        b.write(QDATA, 4, 0x999);
        assert_eq!(
            b.notes,
            [
                Note::Overflow { fifo: "queue" },
                Note::Set {
                    field: "QSTAT.OVF",
                    bits: 1 << 6
                }
            ]
        );
        assert_eq!(b.level("queue"), 8);
        for k in 1..=8u64 {
            assert_eq!(b.read(QDATA, 4), 0x100 + k);
            // An edge output notes its rising edges only.
            assert_eq!(
                b.notes,
                [Note::Fifo {
                    fifo: "queue",
                    level: (8 - k) as u32
                }]
            );
        }
        assert!(!b.irq("threshold"));
        assert_eq!(b.read(QDATA, 4), 0xdead_beef, "empty_read");
        assert_eq!(
            b.notes,
            [
                Note::Underflow { fifo: "queue" },
                Note::Set {
                    field: "QSTAT.UDF",
                    bits: 1 << 7
                }
            ]
        );
        assert_eq!(b.read(QSTAT, 4), 1 << 4 | 1 << 6 | 1 << 7);
        // LEVEL/EMPTY/FULL are computed: writing them does nothing. OVF/UDF are W1C.
        b.write(QSTAT, 4, 0xff);
        assert_eq!(b.read(QSTAT, 4), 1 << 4);
        // FLUSH empties the queue.
        for k in 0..5 {
            b.write(QDATA, 4, k);
        }
        b.write(QSTAT, 4, 1 << 8);
        assert_eq!(b.level("queue"), 0);
        assert!(b.notes.contains(&Note::Fifo {
            fifo: "queue",
            level: 0
        }));
        assert_eq!(b.read(QSTAT, 4), 1 << 4, "FLUSH reads 0");
    }

    #[test]
    fn softirq_pulses_an_edge_output() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(SOFTIRQ, 4, 0);
        assert!(b.pulsed("soft"));
        assert_eq!(
            b.notes,
            [
                Note::Fired { effect: "ring" },
                Note::Irq {
                    name: "soft",
                    asserted: true
                }
            ]
        );
        assert!(!b.irq("soft"), "a pulse is not a level");
        assert_eq!(b.read(SOFTIRQ, 4), 0);
        assert!(!b.pulsed("soft"));
    }

    #[test]
    fn a_channel_completes_two_accesses_after_start() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        let ch2 = CH + 2 * 8;
        b.write(ch2, 4, 0x0040_0003); // LEN = 0x40, START, EN
        assert_eq!(
            b.notes,
            [
                Note::Scheduled {
                    effect: "chan_done[2]",
                    due_ns: None
                },
                Note::Cleared {
                    field: "CH[2].START",
                    bits: 2
                }
            ]
        );
        assert_eq!(b.read(ch2, 4), 0x0040_0001, "START reads 0");
        assert!(!b.irq("chan"));
        b.read(ID, 4);
        assert_eq!(
            b.notes,
            [
                Note::Fired { effect: "chan_done[2]" },
                Note::Set {
                    field: "CH[2].DONE",
                    bits: 1 << 8
                },
                Note::Irq {
                    name: "chan",
                    asserted: true
                }
            ]
        );
        assert_eq!(b.read(ch2, 4), 0x0040_0101);
        b.write(ch2, 4, 0x0040_0101); // W1C DONE
        assert!(!b.irq("chan"));
        // Not enabled: START does nothing.
        b.write(CH + 8, 4, 2);
        assert!(
            b.notes.is_empty()
                || b.notes
                    == [Note::Cleared {
                        field: "CH[1].START",
                        bits: 2
                    }]
        );
        assert_eq!(b.state.pending(), 0);
        // Elements are independent.
        assert_eq!((b.read(CH, 4), b.read(CH + 24, 4)), (0, 0));
    }

    #[test]
    fn sram_is_trapped_byte_addressable_memory() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(SRAM, 8, 0x0807_0605_0403_0201);
        assert!(b.out.trace);
        assert_eq!(b.read(SRAM + 1, 2), 0x0302);
        assert_eq!(b.read(SRAM + 4, 4), 0x0807_0605);
        b.write(SRAM + 0xff, 1, 0xaa);
        assert_eq!(b.read(SRAM + 0xf8, 8), 0xaa00_0000_0000_0000);
        // An access that runs off the window's edge reaches no byte of it.
        assert_eq!(b.read(SRAM - 2, 4), 0);
        assert_eq!(b.notes, [Note::Hole]);
    }

    #[test]
    fn fill_mode_pushes_the_checksum_when_the_job_ends() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.write(CSUM, 4, 0x1234);
        b.write(CTRL, 4, 2 << 4 | GO); // MODE = FILL
        assert_eq!(b.level("queue"), 0);
        b.at(50_000);
        assert!(b.notes.contains(&Note::Fired { effect: "fill" }));
        assert_eq!(b.read(QDATA, 4), 0x1234);
    }

    #[test]
    fn status_is_traced_only_when_it_changes() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        b.read(STATUS, 4); // POR clears: traced
        assert!(b.out.trace);
        b.read(STATUS, 4); // differs from the last read
        assert!(b.out.trace);
        b.read(STATUS, 4); // same again
        assert!(!b.out.trace);
        b.read(CTRL, 4); // CTRL traces every access
        assert!(b.out.trace);
    }

    #[test]
    fn the_trace_decodes_fields_with_their_value_names() {
        use mmiolab_devices::FieldValue;
        let model = load("demo");
        let ctrl = model.registers.iter().position(|r| r.name == "CTRL").unwrap() as u32;
        let mut fields = [FieldValue {
            name: "",
            value: 0,
            enum_name: None,
        }; engine::MAX_FIELDS];
        let n = engine::decode(&model, ctrl, 2 << 4 | IE, &mut fields);
        let decoded: Vec<(&str, u64, Option<&str>)> =
            fields[..n].iter().map(|f| (f.name, f.value, f.enum_name)).collect();
        assert_eq!(
            decoded,
            [
                ("GO", 0, None),
                ("IE", 1, None),
                ("ERRIE", 0, None),
                ("BANK", 0, None),
                ("MODE", 2, Some("FILL")),
                ("RESET", 0, None)
            ]
        );
        // The value of a write, as the trace decodes it: the bytes written, in place.
        assert_eq!(engine::register_value(&model, ctrl, CTRL + 3, &[0x80]), RESET);
    }

    #[test]
    fn holes_read_zero_and_are_noted() {
        let model = load("demo");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(0x30, 4), 0);
        assert_eq!(b.notes, [Note::Hole]);
        b.write(0x30, 4, 1);
        assert_eq!(b.notes, [Note::Hole]);
        // Part register, part hole.
        b.write(SOFTIRQ, 8, 0);
        assert!(b.notes.contains(&Note::Hole));
    }
}

// ---------------------------------------------------------------------------------------
// uart16550

mod uart {
    use super::*;

    const RBR: u64 = 0;
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const FCR: u64 = 2;
    const LCR: u64 = 3;
    const MCR: u64 = 4;
    const LSR: u64 = 5;
    const MSR: u64 = 6;
    const SCR: u64 = 7;

    /// Linux's autoconfig_8250(): the 16450 has a scratch register.
    fn autoconfig_8250(u: &mut Bench) -> &'static str {
        let scratch = u.inb(SCR);
        u.outb(SCR, 0xa5);
        let status1 = u.inb(SCR);
        u.outb(SCR, 0x5a);
        let status2 = u.inb(SCR);
        u.outb(SCR, scratch);
        if status1 == 0xa5 && status2 == 0x5a {
            "16450"
        } else {
            "8250"
        }
    }

    /// Linux's size_fifo(): loop bytes back and count how many the receiver kept.
    fn size_fifo(u: &mut Bench) -> usize {
        let old_lcr = u.inb(LCR);
        u.outb(LCR, 0);
        let old_fcr = u.inb(FCR);
        let old_mcr = u.inb(MCR);
        u.outb(FCR, 0x01 | 0x02 | 0x04);
        u.outb(MCR, 0x10);
        u.outb(LCR, 0x80);
        let old_dl = u16::from(u.inb(0)) | u16::from(u.inb(1)) << 8;
        u.outb(0, 1);
        u.outb(1, 0);
        u.outb(LCR, 0x03);
        for count in 0..=255u8 {
            u.outb(0, count);
        }
        // mdelay(20): nothing in the model depends on time.
        let mut count = 0;
        while u.inb(LSR) & 0x01 != 0 && count < 256 {
            u.inb(RBR);
            count += 1;
        }
        u.outb(FCR, old_fcr);
        u.outb(MCR, old_mcr);
        u.outb(LCR, 0x80);
        u.outb(0, old_dl as u8);
        u.outb(1, (old_dl >> 8) as u8);
        u.outb(LCR, old_lcr);
        count
    }

    /// Linux's autoconfig_16550a(), for a port without UPF_EXAR_EFR.
    fn autoconfig_16550a(u: &mut Bench) -> &'static str {
        // An EFR behind LCR = 0x80 (ST16C650V1)?
        u.outb(LCR, 0x80);
        if u.inb(2) == 0 {
            return "16650 (EFRv1) or FSL64";
        }
        // An EFR behind LCR = 0xbf (ST16C650V2, TI16C752...)? (broken_efr() not replayed.)
        u.outb(LCR, 0xbf);
        if u.inb(2) == 0 {
            return "16650V2 family (EFRv2)";
        }
        // National Semiconductor SuperIO: LOOP readable through EXCR1 in bank 2?
        u.outb(LCR, 0);
        let status1 = u.inb(MCR);
        u.outb(LCR, 0xe0);
        let status2 = u.inb(0x02);
        if (status2 ^ status1) & 0x10 == 0 {
            u.outb(LCR, 0);
            u.outb(MCR, status1 ^ 0x10);
            u.outb(LCR, 0xe0);
            let status2 = u.inb(0x02);
            u.outb(LCR, 0);
            u.outb(MCR, status1);
            if (status2 ^ status1) & 0x10 != 0 {
                return "NS16550A";
            }
        }
        // TI16750: IIR bit 5 follows FCR bit 5 only with DLAB set.
        u.outb(LCR, 0);
        u.outb(FCR, 0x01 | 0x20);
        let status1 = u.inb(IIR) >> 5;
        u.outb(FCR, 0x01);
        u.outb(LCR, 0x80);
        u.outb(FCR, 0x01 | 0x20);
        let status2 = u.inb(IIR) >> 5;
        u.outb(FCR, 0x01);
        u.outb(LCR, 0);
        if status1 == 6 && status2 == 7 {
            return "16750";
        }
        // XScale: IER bit 6 (UUE) writable?
        let iersave = u.inb(IER);
        u.outb(IER, iersave & !0x40);
        if u.inb(IER) & 0x40 == 0 {
            u.outb(IER, iersave | 0x40);
            if u.inb(IER) & 0x40 != 0 {
                return "XScale";
            }
        }
        u.outb(IER, iersave);
        if size_fifo(u) == 64 {
            return "U6_16550A";
        }
        "16550A"
    }

    /// Linux's autoconfig() (drivers/tty/serial/8250/8250_port.c), without UPF_SKIP_TEST:
    /// the port type it would detect, or why it found no port.
    fn autoconfig(u: &mut Bench) -> &'static str {
        // IER test: IER[3:0] must be writable and read back.
        let scratch = u.inb(IER);
        u.outb(IER, 0);
        let scratch2 = u.inb(IER) & 0x0f;
        u.outb(IER, 0x0f);
        let scratch3 = u.inb(IER) & 0x0f;
        u.outb(IER, scratch);
        if scratch2 != 0 || scratch3 != 0x0f {
            return "no port: IER test failed";
        }
        let save_mcr = u.inb(MCR);
        let save_lcr = u.inb(LCR);
        // Loopback test.
        u.outb(MCR, 0x10 | 0x0a);
        let status1 = u.inb(MSR) & 0xf0;
        u.outb(MCR, save_mcr);
        if status1 != 0x90 {
            return "no port: LOOP test failed";
        }
        // EFR to 0 (on a 16550A, offset 2 is FCR whatever LCR says), then the FIFO test.
        u.outb(LCR, 0xbf);
        u.outb(2, 0);
        u.outb(LCR, 0);
        u.outb(FCR, 0x01);
        let kind = match u.inb(IIR) >> 6 {
            0 => autoconfig_8250(u),
            1 => "unknown",
            2 => "16550",
            _ => autoconfig_16550a(u),
        };
        u.outb(LCR, save_lcr);
        // Reset the UART (UART_CAP_FIFO: clear the FIFOs), read RX, IER to 0.
        u.outb(MCR, save_mcr);
        u.outb(FCR, 0x01);
        u.outb(FCR, 0x01 | 0x02 | 0x04);
        u.outb(FCR, 0);
        u.inb(RBR);
        u.outb(IER, 0);
        kind
    }

    #[test]
    fn linux_autoconfig_detects_a_16550a() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        assert_eq!(autoconfig(&mut u), "16550A");
        // It leaves the port as Linux expects: nothing pending, FIFOs empty, IER 0.
        assert_eq!(u.level("rx"), 0);
        assert_eq!(u.level("tx"), 0);
        assert_eq!(u.inb(IER), 0);
        assert_eq!(u.inb(IIR), 0x01, "FIFOs off (FCR = 0), no interrupt pending");
        assert_eq!(u.inb(LSR), 0x60, "THRE and TEMT");
        assert_eq!(u.inb(MCR), 0);
        assert_eq!(u.state.irq_levels(), 0);
        // size_fifo() looped 256 bytes through a 16-byte receiver: none reached the host.
        assert_eq!(u.stored("THR"), 0);
    }

    #[test]
    fn ier_upper_nibble_reads_zero() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        u.outb(IER, 0xff);
        assert_eq!(u.inb(IER), 0x0f);
        assert_eq!(u.notes, []);
        u.outb(IER, 0xf0);
        assert_eq!(u.inb(IER), 0x00);
    }

    #[test]
    fn loopback_msr_follows_mcr_as_on_the_chip() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        assert_eq!(u.inb(MSR), 0xb0, "outside loopback: DCD, DSR, CTS");
        u.outb(MCR, 0x10 | 0x0a); // LOOP | OUT2 | RTS
        assert_eq!(u.inb(MSR) & 0xf0, 0x90, "DCD | CTS: Linux's loopback test");
        for (mcr, msr) in [
            (0x01, 0x20),
            (0x02, 0x10),
            (0x04, 0x40),
            (0x08, 0x80),
            (0x0f, 0xf0),
            (0x00, 0x00),
        ] {
            u.outb(MCR, 0x10 | mcr);
            assert_eq!(u.inb(MSR), msr, "MCR {mcr:#x}");
        }
        u.outb(MCR, 0x0f);
        assert_eq!(u.inb(MSR), 0xb0);
        u.outb(MCR, 0xff);
        assert_eq!(u.inb(MCR), 0x1f, "MCR bits 7:5 read 0");
    }

    #[test]
    fn fifo_detection_through_iir_7_6() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        assert_eq!(u.inb(IIR), 0x01, "FIFOs off at reset");
        u.outb(LCR, 0xbf);
        u.outb(2, 0);
        u.outb(LCR, 0);
        u.outb(FCR, 0x01);
        assert_eq!(u.inb(IIR) >> 6, 0b11);
        assert_eq!(u.reached(), Some("IIR"));
        // IIR answers with DLAB set too (offset 2 is not banked on a 16550A).
        u.outb(LCR, 0x80);
        assert_eq!(u.inb(IIR), 0xc1);
        // Bit 5 never follows FCR bit 5 (that is a 16750).
        u.outb(FCR, 0x21);
        assert_eq!(u.inb(IIR) & 0x20, 0);
        assert_eq!(u.notes, []);
        u.outb(LCR, 0);
        u.outb(FCR, 0);
        assert_eq!(u.inb(IIR), 0x01);
    }

    #[test]
    fn scratch_register_round_trips() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        assert_eq!(autoconfig_8250(&mut u), "16450");
        for v in [0x00, 0xa5, 0x5a, 0xff] {
            u.outb(SCR, v);
            assert_eq!(u.inb(SCR), v);
        }
    }

    #[test]
    fn dlab_banks_the_divisor_latch_over_rbr_thr_and_ier() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        u.outb(IER, 0x05);
        u.outb(LCR, 0x83); // DLAB, 8 bits
        u.outb(0, 0x0c); // 9600 baud
        u.outb(1, 0x00);
        assert_eq!(u.reached(), Some("DLM"));
        assert_eq!((u.inb(0), u.inb(1)), (0x0c, 0x00));
        assert_eq!(u.level("tx"), 0, "the divisor write did not transmit");
        u.outb(LCR, 0x03);
        assert_eq!(u.inb(IER), 0x05);
        assert_eq!(u.inb(LCR), 0x03);
        u.outb(0, b'A');
        assert_eq!(u.reached(), Some("THR"));
        assert_eq!(u.level("tx"), 1);
        assert_eq!(u.stored("DLL"), 0x0c);
    }

    #[test]
    fn transmit_without_a_host_sink_fills_tx_and_clears_thre() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        u.outb(IER, 0x02); // ETBEI
        assert!(u.irq("thre"));
        assert_eq!(u.inb(IIR), 0x02);
        u.outb(0, b'h');
        assert_eq!(
            u.notes,
            [
                Note::Fifo { fifo: "tx", level: 1 },
                Note::Irq {
                    name: "thre",
                    asserted: false
                }
            ]
        );
        assert_eq!(u.inb(LSR), 0x00, "THRE and TEMT clear while tx holds a byte");
        assert_eq!(u.inb(IIR), 0x01);
        for _ in 1..16 {
            u.outb(0, b'x');
        }
        assert_eq!(u.level("tx"), 16);
        u.outb(0, b'!');
        assert_eq!(u.notes, [Note::Overflow { fifo: "tx" }], "a full tx drops the byte");
        // FCR bit 2 empties tx.
        u.outb(FCR, 0x04);
        assert_eq!(u.level("tx"), 0);
        assert!(u.irq("thre"));
        assert_eq!(u.inb(LSR), 0x60);
    }

    #[test]
    fn transmit_with_a_host_sink_reaches_the_host_at_once() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        let sink = Sink::default();
        let tx = u.fifo_index("tx");
        u.state.set_drain(tx, Box::new(sink.clone()));
        u.outb(IER, 0x02);
        for b in b"hello\n" {
            u.outb(0, *b);
            assert_eq!(u.inb(LSR) & 0x60, 0x60, "THRE/TEMT stay set");
        }
        assert_eq!(sink.take(), b"hello\n");
        assert_eq!(u.level("tx"), 0);
        assert!(u.irq("thre"));
        // Loopback bytes never reach the host.
        u.outb(MCR, 0x10);
        u.outb(0, b'L');
        assert_eq!(u.reached(), Some("THR_LOOP"));
        assert_eq!(sink.take(), b"");
        assert_eq!(u.inb(LSR) & 0x01, 0x01);
        assert_eq!(u.inb(RBR), b'L');
    }

    #[test]
    fn receive_raises_rx_until_the_fifo_is_read_empty() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        u.outb(FCR, 0xc7);
        u.outb(IER, 0x01); // ERBFI
        assert_eq!(u.feed("rx", &[b'o' as u64, b'k' as u64, b'\n' as u64]), 3);
        assert!(u.irq("rx") && u.irq_changed("rx"));
        assert_eq!(u.inb(IIR), 0xc4, "FIFOs on, received data available");
        assert_eq!(u.inb(LSR), 0x61, "DR, THRE, TEMT");
        assert_eq!(u.inb(RBR), b'o');
        assert_eq!(u.inb(RBR), b'k');
        assert!(u.irq("rx"));
        assert_eq!(u.inb(RBR), b'\n');
        assert_eq!(
            u.notes,
            [
                Note::Fifo { fifo: "rx", level: 0 },
                Note::Irq {
                    name: "rx",
                    asserted: false
                }
            ]
        );
        assert_eq!(u.inb(IIR), 0xc1);
        assert_eq!(u.inb(RBR), 0, "an empty receiver reads 0");
        assert_eq!(u.notes, [Note::Underflow { fifo: "rx" }]);
        // The host cannot overfill rx: 16 go in, the host side keeps the rest.
        let bytes: Vec<u64> = (0..20).collect();
        assert_eq!(u.feed("rx", &bytes), 16);
        assert_eq!(u.inb(LSR) & 0x02, 0, "no overrun: the host kept the rest");
        assert_eq!(u.inb(RBR), 0, "the first byte");
        assert_eq!(u.level("rx"), 16, "the pop let the 17th byte in");
        // FCR bit 1 empties rx.
        u.outb(FCR, 0xc3);
        assert_eq!(u.level("rx"), 0);
        assert!(!u.irq("rx"));
    }

    #[test]
    fn loopback_overrun_sets_oe_which_a_lsr_read_clears() {
        let model = load("uart16550");
        let mut u = Bench::new(&model);
        u.outb(FCR, 0x01);
        u.outb(IER, 0x0f);
        u.outb(MCR, 0x10);
        for b in 0..16u8 {
            u.outb(0, b);
        }
        assert_eq!(u.level("rx"), 16);
        assert!(!u.irq("lsi"));
        u.outb(0, 16);
        assert_eq!(
            u.notes,
            [
                Note::Overflow { fifo: "rx" },
                Note::Set {
                    field: "LSR.OE",
                    bits: 0x02
                },
                Note::Irq {
                    name: "lsi",
                    asserted: true
                }
            ]
        );
        // Priorities: line status > received data > THR empty.
        assert_eq!(u.inb(IIR), 0xc6);
        assert_eq!(u.inb(LSR), 0x63, "DR, OE, THRE, TEMT");
        assert_eq!(
            u.notes,
            [
                Note::Cleared {
                    field: "LSR.OE",
                    bits: 0x02
                },
                Note::Irq {
                    name: "lsi",
                    asserted: false
                }
            ]
        );
        assert_eq!(u.inb(LSR), 0x61, "OE read-to-clear");
        assert_eq!(u.inb(IIR), 0xc4);
        for b in 0..16u8 {
            assert_eq!(u.inb(RBR), b, "the 17th byte was lost");
        }
        assert_eq!(u.inb(IIR), 0xc2);
        u.outb(IER, 0x00);
        assert_eq!(u.inb(IIR), 0xc1);
        assert_eq!(u.state.irq_levels(), 0);
        // LSR is read-only.
        u.outb(LSR, 0xff);
        assert_eq!(u.inb(LSR), 0x60);
    }
}

// ---------------------------------------------------------------------------------------
// gpio-mmio

mod gpio {
    use super::*;

    const DAT: u64 = 0x00;
    const SET: u64 = 0x04;
    const CLR: u64 = 0x08;
    const DIROUT: u64 = 0x0c;
    const INPUT: u64 = 0x14;

    /// bgpio_init(): reads the data register and the direction register.
    fn bgpio_init(g: &mut Bench) -> (u64, u64) {
        (g.read(DAT, 4), g.read(DIROUT, 4))
    }

    #[test]
    fn linux_gpio_mmio_drives_and_reads_lines() {
        let model = load("gpio-mmio");
        let mut g = Bench::new(&model);
        let (data, dir) = bgpio_init(&mut g);
        assert_eq!((data, dir), (0, 0), "all inputs, nothing driven");
        let mut bgpio_dir = dir;

        // gpiod direction_output(3, 1): bgpio_dir_out_val_first: value (set), then direction.
        g.write(SET, 4, 1 << 3);
        bgpio_dir |= 1 << 3;
        g.write(DIROUT, 4, bgpio_dir);
        assert_eq!(g.read(DAT, 4) & 1 << 3, 1 << 3);
        // set(3, 0): bgpio_set_with_clear writes the bit to clr.
        g.write(CLR, 4, 1 << 3);
        assert_eq!(g.read(DAT, 4) & 1 << 3, 0);
        // set_multiple: lines 0 and 3 high, 1 low.
        g.write(SET, 4, 0b1001);
        g.write(CLR, 4, 0b0010);
        g.write(DIROUT, 4, 0b1011);
        assert_eq!(g.read(DAT, 4), 0b1001);
        // get_direction reads dirout.
        assert_eq!(g.read(DIROUT, 4), 0b1011);

        // Inputs read what the outside world drives; outputs ignore it.
        g.write(INPUT, 4, 0xffff_0004 | 1 << 3);
        assert_eq!(g.read(DAT, 4), 0xffff_0004 | 0b1001);
        // direction_input(3): the line now reads the input.
        g.write(DIROUT, 4, 0b0011);
        assert_eq!(g.read(DAT, 4) & 0b1111, 0b1101);
        // SET reads the output latch; CLR reads 0.
        assert_eq!(g.read(SET, 4), 0b1001);
        assert_eq!(g.read(CLR, 4), 0);
        // DAT is read-only for the lines' levels...
        assert_eq!(g.reached(), Some("CLR"));
        g.read(DAT, 4);
        assert_eq!(g.reached(), Some("DAT"));
    }

    #[test]
    fn a_dat_only_layout_drives_the_latch_through_dat() {
        // brcm,bcm6345-gpio.yaml names only dirout and dat: the driver (bgpio_set) then
        // writes the whole shadow word to dat.
        let model = load("gpio-mmio");
        let mut g = Bench::new(&model);
        g.write(DIROUT, 4, 0xff);
        g.write(DAT, 4, 0xa5);
        assert_eq!(g.reached(), Some("DAT_W"));
        assert_eq!(
            g.notes,
            [
                Note::Fired { effect: "write_dat" },
                Note::Set {
                    field: "SET",
                    bits: 0xa5
                }
            ]
        );
        assert_eq!(g.read(DAT, 4), 0xa5);
        g.write(DAT, 4, 0x5a);
        assert_eq!(g.read(DAT, 4), 0x5a);
        assert_eq!(g.read(SET, 4), 0x5a);
    }

    #[test]
    fn set_is_write_one_to_set_and_clr_write_one_to_clear() {
        let model = load("gpio-mmio");
        let mut g = Bench::new(&model);
        g.write(SET, 4, 0xf0);
        g.write(SET, 4, 0x0f);
        assert_eq!(g.read(SET, 4), 0xff, "0s in a SET write leave bits alone");
        g.write(CLR, 4, 0x3c);
        assert_eq!(g.read(SET, 4), 0xc3);
        g.write(CLR, 4, 0);
        assert_eq!(g.read(SET, 4), 0xc3, "0s in a CLR write leave bits alone");
        assert_eq!(g.read(0x10, 4), 0, "the hole between DIROUT and INPUT");
        assert_eq!(g.notes, [Note::Hole]);
    }
}

// ---------------------------------------------------------------------------------------
// parport

mod parport {
    use super::*;

    const DATA: u64 = 0;
    const STATUS: u64 = 1;
    const CONTROL: u64 = 2;

    /// parport_pc's clear_epp_timeout(): true if the timeout bit is (or could be) cleared.
    fn clear_epp_timeout(p: &mut Bench) -> bool {
        if p.inb(STATUS) & 0x01 == 0 {
            return true;
        }
        p.inb(STATUS);
        let r = p.inb(STATUS);
        p.outb(STATUS, r | 0x01);
        p.outb(STATUS, r & 0xfe);
        let r = p.inb(STATUS);
        r & 0x01 == 0
    }

    /// parport_pc's parport_SPP_supported() (not user-specified).
    fn spp_supported(p: &mut Bench) -> bool {
        clear_epp_timeout(p);
        p.outb(CONTROL, 0x0c);
        let r = p.inb(CONTROL);
        if r & 0x0f == 0x0c {
            p.outb(CONTROL, 0x0e);
            let r = p.inb(CONTROL);
            p.outb(CONTROL, 0x0c);
            if r & 0x0f == 0x0e {
                return true;
            }
        }
        p.outb(DATA, 0xaa);
        if p.inb(DATA) == 0xaa {
            p.outb(DATA, 0x55);
            if p.inb(DATA) == 0x55 {
                return true;
            }
        }
        false
    }

    /// parport_pc's parport_PS2_supported(): the data lines can be turned around.
    fn ps2_supported(p: &mut Bench, ctr: &mut u8) -> bool {
        clear_epp_timeout(p);
        // parport_pc_data_reverse: frob_control(0x20, 0x20) with ctr_writable = ~0x10.
        *ctr = (*ctr | 0x20) & !0x10;
        p.outb(CONTROL, *ctr);
        let mut ok = 0;
        p.outb(DATA, 0x55);
        if p.inb(DATA) != 0x55 {
            ok += 1;
        }
        p.outb(DATA, 0xaa);
        if p.inb(DATA) != 0xaa {
            ok += 1;
        }
        *ctr &= !0x20;
        p.outb(CONTROL, *ctr);
        ok != 0
    }

    #[test]
    fn parport_pc_probe_finds_an_spp_port_with_ps2_and_no_epp() {
        let model = load("parport");
        let mut p = Bench::new(&model);
        // EPP: the timeout bit stays high, so parport_EPP_supported() gives up.
        assert!(!clear_epp_timeout(&mut p), "no EPP");
        assert!(p.notes.is_empty());
        assert!(spp_supported(&mut p));
        // The data register test (used when the control register cannot be read back).
        p.outb(DATA, 0xaa);
        assert_eq!(p.inb(DATA), 0xaa);
        p.outb(DATA, 0x55);
        assert_eq!(p.inb(DATA), 0x55);
        let mut ctr = 0x0c;
        assert!(ps2_supported(&mut p, &mut ctr), "TRISTATE");
        assert_eq!(p.inb(CONTROL), 0xcc);
        assert_eq!(p.inb(DATA), 0xaa, "forward again: the latch reads back");
        // Ports 3-7 (EPP) are not implemented: they float high.
        for off in 3..8 {
            assert_eq!(p.inb(off), 0xff);
        }
    }

    #[test]
    fn status_and_control_fixed_bits() {
        let model = load("parport");
        let mut p = Bench::new(&model);
        assert_eq!(p.inb(CONTROL), 0xcc, "0x0c at reset, bits 7:6 read 1");
        p.outb(CONTROL, 0x00);
        assert_eq!(p.inb(CONTROL), 0xc0);
        p.outb(CONTROL, 0x3f);
        assert_eq!(p.inb(CONTROL), 0xff);
        p.outb(CONTROL, 0x0c);
        // Not busy, no error, selected, paper present; nACK follows data bit 7.
        p.outb(DATA, 0x00);
        assert_eq!(p.inb(STATUS), 0x9f);
        p.outb(DATA, 0x80);
        assert_eq!(p.inb(STATUS), 0xdf);
        // The status register ignores writes.
        p.outb(STATUS, 0x00);
        assert_eq!(p.inb(STATUS), 0xdf);
    }

    #[test]
    fn ldd3_short_gets_an_interrupt_per_rising_data_bit_7() {
        let model = load("parport");
        let mut p = Bench::new(&model);
        p.outb(DATA, 0xff);
        assert!(!p.irq("ack"), "interrupts are off");
        p.outb(DATA, 0x00);
        p.outb(CONTROL, 0x10); // short: enable interrupts
        let mut edges = 0;
        for k in 0..10u8 {
            let v = if k % 2 == 0 { 0xff } else { 0x00 };
            p.outb(DATA, v);
            if p.irq_changed("ack") && p.irq("ack") {
                edges += 1;
                assert_eq!(
                    p.notes,
                    [Note::Irq {
                        name: "ack",
                        asserted: true
                    }]
                );
            }
        }
        assert_eq!(edges, 5, "one interrupt per 0 -> 1 transition of bit 7");
        // Writing 0x80 twice makes one edge.
        p.outb(DATA, 0);
        p.outb(DATA, 0x80);
        assert!(p.irq_changed("ack"));
        p.outb(DATA, 0x80);
        assert!(!p.irq_changed("ack"));
    }
}

// ---------------------------------------------------------------------------------------
// isa-hole

#[test]
fn isa_hole_is_trapped_ram_of_0x60000_bytes() {
    let model = load("isa-hole");
    assert_eq!(model.size, 0x60000);
    let mut b = Bench::new(&model);
    assert_eq!(b.read(0, 8), 0);
    assert_eq!(b.read(0x5fff8, 8), 0);
    // LDD3's silly: iowrite8/16/32 and ioread back, anywhere in the hole.
    b.write(0x18000, 1, 0x41); // 0xb8000, the text frame buffer's place on a PC
    b.write(0x18001, 1, 0x07);
    assert_eq!(b.read(0x18000, 2), 0x0741);
    b.write(0x5fffc, 4, 0xcafe_f00d);
    assert_eq!(b.read(0x5fffe, 2), 0xcafe);
    assert!(b.out.trace);
    assert!(b.notes.is_empty());
    // memcpy_toio / memcpy_fromio of a page.
    for i in 0..512u64 {
        b.write(0x1000 + 8 * i, 8, i.wrapping_mul(0x0101_0101_0101_0101));
    }
    for i in 0..512u64 {
        assert_eq!(b.read(0x1000 + 8 * i, 8), i.wrapping_mul(0x0101_0101_0101_0101));
    }
}

// ---------------------------------------------------------------------------------------
// regfile and counter: the descriptions against the built-in Rust models

mod builtin {
    use super::*;
    use mmiolab_devices::{Counter, IrqLine, RegFile};
    use vm_device::DeviceMmio;
    use vm_device::bus::MmioAddress;

    /// A small deterministic generator (no wall clock, no OS randomness).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 11
        }
    }

    fn rust_read(dev: &dyn DeviceMmio, offset: u64, width: usize) -> u64 {
        let mut buf = [0u8; 8];
        dev.mmio_read(MmioAddress(0), offset, &mut buf[..width]);
        u64::from_le_bytes(buf)
    }

    fn rust_write(dev: &dyn DeviceMmio, offset: u64, width: usize, value: u64) {
        dev.mmio_write(MmioAddress(0), offset, &value.to_le_bytes()[..width]);
    }

    #[test]
    fn regfile_header_and_doorbell() {
        let model = load("regfile");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(0, 4), 0x4d4d_494f);
        assert_eq!(b.read(4, 4), 0x1000);
        assert_eq!(b.read(0, 8), 0x1000 << 32 | 0x4d4d_494f);
        assert_eq!(b.read(1, 1), 0x49);
        b.write(0, 8, u64::MAX);
        assert_eq!(b.read(0, 8), 0x1000 << 32 | 0x4d4d_494f);
        b.write(8, 4, 1);
        assert!(b.pulsed("doorbell"));
        b.write(9, 1, 1);
        assert!(b.pulsed("doorbell"), "any byte of DOORBELL rings");
        b.write(0x10, 4, 1);
        assert!(!b.pulsed("doorbell"));
        assert_eq!(b.read(8, 4), 0);
        // A write across DOORBELL and storage rings once and stores.
        b.write(8, 8, 0x1122_3344_5566_7788);
        assert!(b.pulsed("doorbell"));
        assert_eq!(b.read(8, 8), 0x1122_3344_0000_0000);
        assert_eq!(b.read(0xffc, 4), 0);
    }

    #[test]
    fn regfile_description_matches_the_builtin_model() {
        let model = load("regfile");
        let mut b = Bench::new(&model);
        let line = IrqLine::new(5).unwrap();
        let rust = RegFile::new(0x1000, Some(line.clone()));
        let mut rng = Lcg(0x5eed);
        let mut rings = 0u64;
        for step in 0..20_000 {
            let width = 1usize << (rng.next() % 4);
            // Mostly the header, often storage, any alignment, never past the end.
            let offset = match rng.next() % 4 {
                0 => rng.next() % 0x20,
                _ => rng.next() % (0x1000 - width as u64 + 1),
            };
            if rng.next().is_multiple_of(2) {
                let value = rng.next() ^ rng.next() << 32;
                rust_write(&rust, offset, width, value);
                b.write(offset, width, value);
                rings += u64::from(b.pulsed("doorbell"));
            } else {
                assert_eq!(
                    b.read(offset, width),
                    rust_read(&rust, offset, width),
                    "step {step}: read {width} bytes at {offset:#x}"
                );
            }
        }
        assert_eq!(
            line.event().read().unwrap_or(0),
            rings,
            "one edge per DOORBELL write, as the built-in model"
        );
        assert!(rings > 0);
    }

    #[test]
    fn counter_description_matches_the_builtin_model_at_offset_0() {
        let model = load("counter");
        let mut b = Bench::new(&model);
        let rust = Counter::new();
        // string_io.S: `rep insw` of 8 words reads 1..8.
        for k in 1..=8 {
            assert_eq!(b.read(0, 2), k);
            assert_eq!(rust_read(&rust, 0, 2), k);
        }
        let mut rng = Lcg(42);
        for step in 0..5_000 {
            let width = 1usize << (rng.next() % 4);
            if rng.next().is_multiple_of(4) {
                let value = match rng.next() % 3 {
                    0 => u64::MAX - rng.next() % 4, // around the wrap
                    _ => rng.next(),
                };
                rust_write(&rust, 0, width, value);
                b.write(0, width, value);
            } else {
                assert_eq!(
                    b.read(0, width),
                    rust_read(&rust, 0, width),
                    "step {step}: width {width}"
                );
            }
        }
    }

    #[test]
    fn counter_wraps_at_64_bits() {
        let model = load("counter");
        let mut b = Bench::new(&model);
        b.write(0, 8, u64::MAX - 1);
        assert_eq!(b.read(0, 8), u64::MAX);
        assert_eq!(b.read(0, 8), 0);
        assert_eq!(b.read(0, 8), 1);
    }
}

// ---------------------------------------------------------------------------------------
// docs/devices.md: its complete descriptions compile, and the worked examples behave as the
// page says.

mod docs {
    use super::*;

    /// The blocks of docs/devices.md fenced as ```toml description.
    fn described_blocks() -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/devices.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            match &mut current {
                None if line.trim_end() == "```toml description" => current = Some(String::new()),
                None => {}
                Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
                Some(block) => {
                    block.push_str(line);
                    block.push('\n');
                }
            }
        }
        blocks
    }

    fn example(name: &str) -> Model {
        let block = described_blocks()
            .into_iter()
            .find(|b| b.contains(&format!("name = \"{name}\"\n")) && b.starts_with("[device]"))
            .unwrap_or_else(|| panic!("docs/devices.md has no example `{name}`"));
        match mmiolab_regmodel::compile_text(&block, Path::new("docs/devices.md")) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_complete_description_on_the_page_compiles() {
        let blocks = described_blocks();
        assert!(blocks.len() >= 6, "found {} blocks", blocks.len());
        for block in blocks {
            if let Err(e) = mmiolab_regmodel::compile_text(&block, Path::new("docs/devices.md")) {
                panic!("{e}\n{block}");
            }
        }
    }

    #[test]
    fn the_first_look_timer() {
        let model = example("timer");
        let mut b = Bench::new(&model);
        b.write(0, 4, 3);
        assert_eq!(b.out.scheduled, Some(1_000_000));
        b.at(999_999);
        assert_eq!(b.read(4, 4), 0);
        b.at(1_000_000);
        assert_eq!(b.read(4, 4), 1);
        assert!(b.irq("expired"));
        b.write(4, 4, 1);
        assert!(!b.irq("expired"));
        assert_eq!(b.read(0, 4), 2, "START reads back 0");
    }

    #[test]
    fn the_status_register_example() {
        let model = example("frame");
        let mut b = Bench::new(&model);
        b.write(8, 4, 1); // TEST: a frame arrives
        assert!(!b.irq("irq"), "not enabled");
        b.write(4, 4, 3);
        assert!(b.irq("irq"));
        let status = b.read(0, 4);
        assert_eq!(status, 1);
        b.write(0, 4, status);
        assert_eq!(
            b.notes,
            [
                Note::Cleared {
                    field: "IRQ_STATUS.RXDONE",
                    bits: 1
                },
                Note::Irq {
                    name: "irq",
                    asserted: false
                }
            ]
        );
        b.write(8, 4, 2); // a bad frame
        b.write(8, 4, 2);
        assert!(b.irq("irq"));
        assert_eq!(b.read(0, 4), 0x202, "ERROR, two frames lost");
        assert_eq!(b.read(0, 4), 0x002, "LOST clears when read");
        for _ in 0..300 {
            b.write(8, 4, 2);
        }
        assert_eq!(b.read(0, 4), 0xff02, "LOST stops at 255");
    }

    #[test]
    fn the_fifo_example() {
        let model = example("rxq");
        let mut b = Bench::new(&model);
        assert_eq!(b.read(4, 4), 0x100, "empty");
        assert_eq!(b.feed("rx", &[0x10, 0x20, 0x30]), 3);
        assert!(b.irq("rx"));
        assert_eq!(b.read(4, 4), 3);
        b.write(8, 4, 3); // THRESH = 3
        assert_eq!(b.read(0, 4), 0x10);
        assert_eq!(
            b.notes,
            [
                Note::Fifo { fifo: "rx", level: 2 },
                Note::Irq {
                    name: "rx",
                    asserted: false
                }
            ]
        );
        assert_eq!(b.read(0, 4), 0x20);
        assert_eq!(b.read(0, 4), 0x30);
        assert_eq!(b.read(0, 4), 0, "empty");
        assert_eq!(b.read(4, 4), 0x100 | 1 << 17, "EMPTY, UDR");
        let bytes: Vec<u64> = (0..40).collect();
        assert_eq!(b.feed("rx", &bytes), 32, "the host keeps what does not fit");
        assert_eq!(b.read(4, 4) & 0x3f, 32);
    }

    #[test]
    fn the_dma_example() {
        let model = example("dma");
        let mut b = Bench::new(&model);
        b.write(8, 4, 0x100); // LEN
        b.at(5_000);
        b.write(0x0c, 4, 3);
        assert_eq!(
            b.notes,
            [
                Note::Scheduled {
                    effect: "finish",
                    due_ns: Some(25_000)
                },
                Note::Fired { effect: "start" },
                Note::Set {
                    field: "STATUS.BUSY",
                    bits: 1
                },
                Note::Cleared {
                    field: "CTRL.GO",
                    bits: 1
                },
            ]
        );
        assert_eq!(b.read(0x10, 4), 1);
        b.write(0x0c, 4, 3); // GO while busy
        assert_eq!(b.read(0x10, 4), 1 | 4);
        b.at(25_000);
        assert_eq!(
            b.notes,
            [
                Note::Fired { effect: "finish" },
                Note::Cleared {
                    field: "STATUS.BUSY",
                    bits: 1
                },
                Note::Set {
                    field: "STATUS.DONE",
                    bits: 2
                },
                Note::Set {
                    field: "COPIED",
                    bits: 0x100
                },
                Note::Irq {
                    name: "done",
                    asserted: true
                },
            ]
        );
        assert_eq!(b.read(0x14, 4), 0x100);
        b.write(0x10, 4, 2);
        assert_eq!(
            b.notes,
            [
                Note::Cleared {
                    field: "STATUS.DONE",
                    bits: 2
                },
                Note::Irq {
                    name: "done",
                    asserted: false
                }
            ]
        );
        // LEN = 0: GO does nothing.
        b.write(8, 4, 0);
        b.write(0x0c, 4, 1);
        assert_eq!(b.state.pending(), 0);
    }

    #[test]
    fn the_banked_and_array_snippets() {
        let blocks = described_blocks();
        let banked = blocks.iter().find(|b| b.contains("name = \"DLL\"")).unwrap();
        let model = mmiolab_regmodel::compile_text(banked, Path::new("docs/devices.md")).unwrap();
        let mut b = Bench::new(&model);
        b.outb(0, b'x');
        assert_eq!(b.reached(), Some("THR"));
        b.outb(3, 0x80);
        b.outb(0, 12);
        assert_eq!(b.reached(), Some("DLL"));
        b.outb(3, 0);
        assert_eq!(b.level("tx"), 1);
        b.feed("rx", &[0x41]);
        assert_eq!(b.inb(0), 0x41);

        let arrays = blocks.iter().find(|b| b.contains("name = \"chan_done\"")).unwrap();
        let model = mmiolab_regmodel::compile_text(arrays, Path::new("docs/devices.md")).unwrap();
        let mut b = Bench::new(&model);
        b.write(0x60, 4, 1); // CH[2].START
        assert_eq!(
            b.notes.first(),
            Some(&Note::Scheduled {
                effect: "chan_done[2]",
                due_ns: Some(10_000)
            })
        );
        b.at(10_000);
        assert_eq!(b.read(0x60, 4), 2);
        assert!(b.irq("chan"));
    }
}
