//! The i8042 keyboard controller: enough of one that a Linux guest's driver finds it at
//! once, and that its `reboot` (command 0xfe) ends the VM cleanly.
//!
//! Why more than vm-superio's I8042Device (which only decodes the reset command and reads
//! 0): Linux's i8042 driver reads the command byte (CTR) at boot and, with the output
//! buffer never filling, polled the status port 10,000 times ("Can't read CTR", 1.3-1.4 s
//! of the guest's clock nested; docs/performance.md). This model answers the controller
//! commands Linux sends: read and write the command byte, controller and keyboard
//! self-tests, disable and enable the ports, the keyboard loopback, the output port, and
//! the reset pulse. No keyboard is attached: a byte sent to it is answered the way a real
//! controller answers for an absent device, 0xfe with the time-out status bit, so the
//! guest's atkbd gives up at once.
//!
//! There is no auxiliary (mouse) port, as on an AT-type controller: a byte for it (aux
//! loopback 0xd3, aux send 0xd4) times out the same way and is not flagged as auxiliary
//! data, and its interface test (0xa9) reports the clock line stuck low. Linux then skips
//! the port at once. Why not model it: Linux checks that the port's IRQ 12 arrives, and on
//! mmiolab's device-tree machine it did not (measured: the test waited out its 250 ms)
//! while IRQ 1 did; a mouse nobody can move is not worth a quarter of a second per boot.
//!
//! Interrupt: IRQ 1 is, as on a PC, the output buffer being full while the command byte
//! enables the keyboard interrupt; the line is edge-triggered, one pulse per rising level.

use std::sync::{Arc, Mutex};

use vm_device::DevicePio;
use vm_device::bus::{PioAddress, PioAddressOffset};

use crate::irq::IrqLine;
use crate::{StopReason, VmControl};

/// Offset of the data port (0x60) in the decoded range.
const DATA: u8 = 0;
/// Offset of the status (read) and command (write) port (0x64).
const COMMAND: u8 = 4;

/// Status register bits.
mod status {
    /// Output buffer full: a byte waits at the data port.
    pub const OUTPUT_FULL: u8 = 1 << 0;
    /// System flag, mirrored from the command byte (set by a passed self-test).
    pub const SYSTEM: u8 = 1 << 2;
    /// The last write went to the command port.
    pub const COMMAND: u8 = 1 << 3;
    /// Keyboard not inhibited (no key lock); Linux warns when it is clear.
    pub const UNLOCKED: u8 = 1 << 4;
    /// On a PS/2 controller: the byte is from the auxiliary port. Never set here (no such
    /// port); tests check that it stays clear.
    #[cfg(test)]
    pub const AUX_DATA: u8 = 1 << 5;
    /// The device did not answer (the byte is 0xfe).
    pub const TIMEOUT: u8 = 1 << 6;
}

/// Command byte (CTR) bits.
mod ctr {
    /// Keyboard interrupt (IRQ 1) enabled.
    pub const KBD_INT: u8 = 1 << 0;
    /// System flag.
    pub const SYSTEM: u8 = 1 << 2;
    /// Keyboard port disabled.
    pub const KBD_DISABLED: u8 = 1 << 4;
    /// Auxiliary port disabled.
    pub const AUX_DISABLED: u8 = 1 << 5;
    /// Scan-code translation.
    pub const XLATE: u8 = 1 << 6;
}

/// Controller commands (written to 0x64).
mod cmd {
    pub const READ_CTR: u8 = 0x20;
    pub const WRITE_CTR: u8 = 0x60;
    pub const AUX_DISABLE: u8 = 0xa7;
    pub const AUX_ENABLE: u8 = 0xa8;
    pub const AUX_TEST: u8 = 0xa9;
    pub const SELF_TEST: u8 = 0xaa;
    pub const KBD_TEST: u8 = 0xab;
    pub const KBD_DISABLE: u8 = 0xad;
    pub const KBD_ENABLE: u8 = 0xae;
    pub const READ_OUTPUT_PORT: u8 = 0xd0;
    pub const WRITE_OUTPUT_PORT: u8 = 0xd1;
    pub const KBD_LOOP: u8 = 0xd2;
    pub const AUX_LOOP: u8 = 0xd3;
    pub const AUX_SEND: u8 = 0xd4;
    /// 0xf0-0xff pulse output-port lines low for a moment; bit 0 is the CPU reset line.
    pub const PULSE: u8 = 0xf0;
}

/// Self-test passed.
const SELF_TEST_OK: u8 = 0x55;
/// Keyboard port test passed.
const PORT_TEST_OK: u8 = 0x00;
/// Auxiliary port test: clock line stuck low (there is no port).
const AUX_TEST_NO_PORT: u8 = 0x01;
/// What a controller reports for a device that does not answer.
const NO_DEVICE: u8 = 0xfe;
/// Output port bit 0: the CPU reset line, active low.
const RESET_LINE: u8 = 1 << 0;
/// The output port as firmware leaves it: reset high, A20 on, both clocks and data lines.
const OUTPUT_PORT_INIT: u8 = 0xcf;
/// The command byte as firmware leaves it: keyboard interrupt on, self-test passed,
/// translation on, the auxiliary port disabled.
const CTR_INIT: u8 = ctr::KBD_INT | ctr::SYSTEM | ctr::AUX_DISABLED | ctr::XLATE;

/// A command waiting for its data byte (written to 0x60).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pending {
    /// No command: the byte goes to the keyboard.
    None,
    WriteCtr,
    WriteOutputPort,
    KbdLoop,
    /// Aux loopback or send: there is no auxiliary port.
    Aux,
}

/// The controller's registers, which are also its snapshot state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The command byte.
    ctr: u8,
    /// The output port.
    output_port: u8,
    /// The output buffer: a byte, and whether it reports a time-out.
    out: Option<(u8, bool)>,
    /// The last byte read from the data port (what it reads again when empty).
    last: u8,
    /// The command waiting for its data byte.
    pending: Pending,
    /// The last write went to the command port.
    last_write_command: bool,
}

impl State {
    fn status(&self) -> u8 {
        let mut s = status::UNLOCKED;
        if self.ctr & ctr::SYSTEM != 0 {
            s |= status::SYSTEM;
        }
        if self.last_write_command {
            s |= status::COMMAND;
        }
        if let Some((_, timeout)) = self.out {
            s |= status::OUTPUT_FULL;
            if timeout {
                s |= status::TIMEOUT;
            }
        }
        s
    }

    /// The level of IRQ 1.
    fn irq_level(&self) -> bool {
        self.out.is_some() && self.ctr & ctr::KBD_INT != 0
    }

    fn put(&mut self, byte: u8) {
        self.out = Some((byte, false));
    }

    /// A byte sent to a device that is not there: the controller times out.
    fn no_device(&mut self) {
        self.out = Some((NO_DEVICE, true));
    }

    fn read_data(&mut self) -> u8 {
        if let Some((byte, _)) = self.out.take() {
            self.last = byte;
        }
        self.last
    }

    /// A write to 0x64; returns whether it pulls the CPU reset line.
    fn command(&mut self, value: u8) -> bool {
        self.last_write_command = true;
        self.pending = Pending::None;
        match value {
            cmd::READ_CTR => self.put(self.ctr),
            cmd::WRITE_CTR => self.pending = Pending::WriteCtr,
            cmd::AUX_DISABLE => self.ctr |= ctr::AUX_DISABLED,
            cmd::AUX_ENABLE => self.ctr &= !ctr::AUX_DISABLED,
            cmd::AUX_TEST => self.put(AUX_TEST_NO_PORT),
            cmd::KBD_TEST => self.put(PORT_TEST_OK),
            cmd::SELF_TEST => {
                self.ctr |= ctr::SYSTEM;
                self.put(SELF_TEST_OK);
            }
            cmd::KBD_DISABLE => self.ctr |= ctr::KBD_DISABLED,
            cmd::KBD_ENABLE => self.ctr &= !ctr::KBD_DISABLED,
            cmd::READ_OUTPUT_PORT => self.put(self.output_port),
            cmd::WRITE_OUTPUT_PORT => self.pending = Pending::WriteOutputPort,
            cmd::KBD_LOOP => self.pending = Pending::KbdLoop,
            cmd::AUX_LOOP | cmd::AUX_SEND => self.pending = Pending::Aux,
            cmd::PULSE..=0xff => return value & RESET_LINE == 0,
            // Anything else (password, input-port and vendor commands): no effect.
            _ => {}
        }
        false
    }

    /// A write to 0x60; returns whether it pulls the CPU reset line.
    fn data(&mut self, value: u8) -> bool {
        self.last_write_command = false;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::WriteCtr => self.ctr = value,
            Pending::WriteOutputPort => {
                self.output_port = value;
                return value & RESET_LINE == 0;
            }
            Pending::KbdLoop => self.put(value),
            Pending::Aux | Pending::None => self.no_device(),
        }
        false
    }
}

/// The i8042 at ports 0x60-0x64.
#[derive(Debug)]
pub struct I8042 {
    state: Mutex<State>,
    control: Arc<VmControl>,
    irq: IrqLine,
}

impl I8042 {
    /// Base port and number of ports the controller decodes.
    pub const PORTS: (u16, u16) = (0x60, 5);
    /// The keyboard's interrupt pin.
    pub const IRQ: u32 = 1;

    /// A controller whose reset command stops the VM through `control`, interrupting on
    /// `irq` (an edge line for [`I8042::IRQ`]).
    pub fn new(control: Arc<VmControl>, irq: IrqLine) -> I8042 {
        I8042 {
            state: Mutex::new(State {
                ctr: CTR_INIT,
                output_port: OUTPUT_PORT_INIT,
                out: None,
                last: 0,
                pending: Pending::None,
                last_write_command: false,
            }),
            control,
            irq,
        }
    }

    /// Runs `f` on the registers, then drives the interrupt line to its new level and
    /// stops the VM if `f` pulled the reset line.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> (R, bool)) -> R {
        let mut state = crate::lock(&self.state);
        let (result, reset) = f(&mut state);
        self.irq.set_level(state.irq_level());
        drop(state);
        if reset {
            self.control.request_stop(StopReason::GuestReset);
        }
        result
    }
}

impl crate::Snapshot for I8042 {
    type State = State;
    const KIND: &'static str = "i8042";
    const VERSION: u32 = 1;

    fn save(&self) -> State {
        crate::lock(&self.state).clone()
    }

    fn restore(&self, state: State) -> Result<(), crate::StateError> {
        let mut current = crate::lock(&self.state);
        *current = state;
        // The interrupt controller's restored state holds what was delivered: no new edge.
        self.irq.restore_level(current.irq_level());
        Ok(())
    }
}

impl DevicePio for I8042 {
    fn pio_read(&self, _base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        let value = match (u8::try_from(offset), data.len()) {
            (Ok(DATA), 1) => self.update(|s| (s.read_data(), false)),
            (Ok(COMMAND), 1) => crate::lock(&self.state).status(),
            // 0x61-0x63 (the PC's system-control port B and its neighbours) are not
            // modelled: they read 0, as they did under vm-superio's model.
            (Ok(_), 1) => 0,
            _ => {
                data.fill(0xff);
                return;
            }
        };
        data.fill(value);
    }

    fn pio_write(&self, _base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        match (u8::try_from(offset), data) {
            (Ok(DATA), [value]) => self.update(|s| ((), s.data(*value))),
            (Ok(COMMAND), [value]) => self.update(|s| ((), s.command(*value))),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rig {
        control: Arc<VmControl>,
        irq: IrqLine,
        dev: I8042,
    }

    fn rig() -> Rig {
        let control = Arc::new(VmControl::new().unwrap());
        let irq = IrqLine::new(I8042::IRQ).unwrap();
        let dev = I8042::new(control.clone(), irq.clone());
        Rig { control, irq, dev }
    }

    impl Rig {
        fn read(&self, port: u16) -> u8 {
            let mut b = [0u8];
            self.dev.pio_read(PioAddress(0x60), port - 0x60, &mut b);
            b[0]
        }
        fn write(&self, port: u16, value: u8) {
            self.dev.pio_write(PioAddress(0x60), port - 0x60, &[value]);
        }
        fn status(&self) -> u8 {
            self.read(0x64)
        }
        /// What Linux's i8042_command does: the command, its parameters, and for each
        /// expected reply the status (which must show a full buffer) and the byte.
        fn command(&self, command: u8, params: &[u8], replies: usize) -> Vec<(u8, u8)> {
            self.write(0x64, command);
            for &p in params {
                self.write(0x60, p);
            }
            (0..replies)
                .map(|_| {
                    let s = self.status();
                    assert_ne!(s & status::OUTPUT_FULL, 0, "reply to {command:#x} is waiting");
                    (s, self.read(0x60))
                })
                .collect()
        }
        /// The one reply byte of `command`.
        fn reply(&self, command: u8, params: &[u8]) -> u8 {
            self.command(command, params, 1)[0].1
        }
        /// Interrupt pulses on IRQ 1 since the last call.
        fn pulses(&self) -> u64 {
            self.irq.event().read().unwrap_or(0)
        }
    }

    #[test]
    fn reset_command_stops_the_vm() {
        let r = rig();
        r.write(0x64, 0xfe);
        assert_eq!(r.control.reason(), Some(StopReason::GuestReset));
    }

    #[test]
    fn reset_through_the_output_port_stops_the_vm_and_other_pulses_do_not() {
        let r = rig();
        r.write(0x64, 0xff); // pulses no line
        assert_eq!(r.control.reason(), None);
        assert_eq!(r.reply(cmd::READ_OUTPUT_PORT, &[]), OUTPUT_PORT_INIT);
        r.command(cmd::WRITE_OUTPUT_PORT, &[OUTPUT_PORT_INIT], 0);
        assert_eq!(r.control.reason(), None, "reset line held high");
        r.command(cmd::WRITE_OUTPUT_PORT, &[OUTPUT_PORT_INIT & !RESET_LINE], 0);
        assert_eq!(r.control.reason(), Some(StopReason::GuestReset));
    }

    #[test]
    fn command_byte_reads_back_what_was_written_and_ports_toggle_their_bits() {
        let r = rig();
        assert_eq!(
            r.status() & status::OUTPUT_FULL,
            0,
            "empty at start: Linux's flush ends at once"
        );
        assert_eq!(r.reply(cmd::READ_CTR, &[]), CTR_INIT);
        assert_eq!(
            r.status() & status::OUTPUT_FULL,
            0,
            "reading the data port empties the buffer"
        );
        r.command(cmd::WRITE_CTR, &[0x03], 0);
        assert_eq!(r.status() & status::COMMAND, 0, "the last write went to the data port");
        assert_eq!(r.reply(cmd::READ_CTR, &[]), 0x03);
        r.command(cmd::AUX_ENABLE, &[], 0);
        r.command(cmd::KBD_DISABLE, &[], 0);
        assert_ne!(
            r.status() & status::COMMAND,
            0,
            "the last write went to the command port"
        );
        assert_eq!(r.reply(cmd::READ_CTR, &[]), 0x03 | ctr::KBD_DISABLED);
        r.command(cmd::AUX_DISABLE, &[], 0);
        r.command(cmd::KBD_ENABLE, &[], 0);
        assert_eq!(r.reply(cmd::READ_CTR, &[]), 0x03 | ctr::AUX_DISABLED);
    }

    #[test]
    fn self_tests_pass_except_the_missing_aux_port() {
        let r = rig();
        r.command(cmd::WRITE_CTR, &[0], 0);
        assert_eq!(r.status() & status::SYSTEM, 0);
        assert_eq!(r.reply(cmd::SELF_TEST, &[]), SELF_TEST_OK);
        assert_ne!(
            r.status() & status::SYSTEM,
            0,
            "a passed self-test sets the system flag"
        );
        assert_eq!(r.reply(cmd::KBD_TEST, &[]), PORT_TEST_OK);
        // Linux rejects the aux port on anything but 0x00, 0xfa or 0xff.
        assert_eq!(r.reply(cmd::AUX_TEST, &[]), AUX_TEST_NO_PORT);
        assert_ne!(r.status() & status::UNLOCKED, 0, "no key lock");
    }

    #[test]
    fn keyboard_loopback_echoes_and_absent_devices_time_out_at_once() {
        let r = rig();
        let [(s, b)] = r.command(cmd::KBD_LOOP, &[0xa5], 1)[..] else {
            unreachable!()
        };
        assert_eq!((b, s & (status::TIMEOUT | status::AUX_DATA)), (0xa5, 0));
        // The keyboard (a plain data write), the aux loopback and aux send: nobody answers.
        for (command, params) in [(None, 0xf2), (Some(cmd::AUX_LOOP), 0x5a), (Some(cmd::AUX_SEND), 0xf2)] {
            if let Some(c) = command {
                r.write(0x64, c);
            }
            r.write(0x60, params);
            let s = r.status();
            let want = status::OUTPUT_FULL | status::TIMEOUT;
            assert_eq!(
                s & (want | status::AUX_DATA),
                want,
                "{command:?}: a time-out, never aux data"
            );
            assert_eq!(r.read(0x60), NO_DEVICE);
            assert_eq!(
                r.status() & (status::TIMEOUT | status::OUTPUT_FULL),
                0,
                "reading clears both"
            );
        }
    }

    #[test]
    fn interrupt_follows_the_enable_bit_one_pulse_per_byte() {
        let r = rig();
        r.command(cmd::WRITE_CTR, &[0], 0);
        r.command(cmd::READ_CTR, &[], 1);
        assert_eq!(r.pulses(), 0, "interrupt disabled");
        r.command(cmd::WRITE_CTR, &[ctr::KBD_INT], 0);
        r.command(cmd::READ_CTR, &[], 1);
        r.write(0x60, 0xf2);
        r.read(0x60);
        assert_eq!(r.pulses(), 2, "one pulse per byte");
        // A byte waiting while its interrupt gets enabled raises it then.
        r.command(cmd::WRITE_CTR, &[0], 0);
        r.write(0x60, 0xff);
        assert_eq!(r.pulses(), 0);
        r.command(cmd::WRITE_CTR, &[ctr::KBD_INT], 0);
        assert_eq!(r.pulses(), 1, "the line rises with its enable bit");
    }

    #[test]
    fn snapshot_carries_the_command_byte_the_buffer_and_a_pending_command() {
        use crate::DeviceState;
        let r = rig();
        r.command(cmd::WRITE_CTR, &[ctr::KBD_INT | ctr::SYSTEM], 0);
        r.write(0x60, 0xf2); // the keyboard times out: 0xfe waits, IRQ 1 high
        r.write(0x64, cmd::WRITE_OUTPUT_PORT); // its data byte not written yet
        let saved = r.dev.save_state();
        assert_eq!(r.pulses(), 1);
        let fresh = rig();
        fresh.dev.restore_state(&saved).unwrap();
        assert_eq!(fresh.pulses(), 0, "restoring raises no new edge");
        assert!(fresh.irq.is_asserted(), "but the line is high again");
        fresh.write(0x60, OUTPUT_PORT_INIT & !RESET_LINE);
        assert_eq!(
            fresh.control.reason(),
            Some(StopReason::GuestReset),
            "the pending command completes"
        );
        let s = fresh.status();
        assert_eq!(
            s & (status::OUTPUT_FULL | status::TIMEOUT),
            status::OUTPUT_FULL | status::TIMEOUT
        );
        assert_eq!(fresh.read(0x60), NO_DEVICE);
        assert_eq!(fresh.reply(cmd::READ_CTR, &[]), ctr::KBD_INT | ctr::SYSTEM);
        let mut other = saved.clone();
        other.kind = "serial-16550".to_owned();
        assert!(
            fresh.dev.restore_state(&other).is_err(),
            "another model's state is refused"
        );
    }

    #[test]
    fn wide_and_unmodelled_accesses_are_harmless() {
        let r = rig();
        let mut two = [0u8; 2];
        r.dev.pio_read(PioAddress(0x60), 0, &mut two);
        assert_eq!(two, [0xff, 0xff]);
        r.dev.pio_write(PioAddress(0x60), 4, &[0xfe, 0xfe]);
        assert_eq!(r.control.reason(), None);
        assert_eq!(r.read(0x61), 0);
        r.write(0x61, 0xfe);
        assert_eq!(r.control.reason(), None);
    }
}
