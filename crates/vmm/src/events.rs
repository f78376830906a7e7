//! The VMM thread's event loop (event-manager): host stdin into COM1, and the stop event.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use mmiolab_devices::{Serial, VmControl};

/// Feeds what the user types to the guest's COM1.
pub struct StdinToSerial {
    serial: Arc<Serial>,
}

impl StdinToSerial {
    /// Forwards stdin to `serial`.
    pub fn new(serial: Arc<Serial>) -> Self {
        StdinToSerial { serial }
    }
}

impl MutEventSubscriber for StdinToSerial {
    fn init(&mut self, ops: &mut EventOps) {
        // epoll refuses regular files and /dev/null (EPERM): then there is simply no input.
        if let Err(e) = ops.add(Events::new(&std::io::stdin(), EventSet::IN)) {
            log::debug!("stdin is not pollable ({e:?}); guest console input is off");
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 64];
        let n = match std::io::stdin().lock().read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => 0,
        };
        if n == 0 || events.event_set().contains(EventSet::HANG_UP) {
            // End of input: stop polling, or epoll would report it forever.
            let _ = ops.remove(Events::new_raw(std::io::stdin().as_raw_fd(), EventSet::IN));
        }
        // The guest reads slowly; what does not fit in the UART's FIFO is dropped, as on
        // a real serial line without flow control.
        let taken = self.serial.enqueue_input(buf.get(..n).unwrap_or_default());
        if taken < n {
            log::debug!("serial input: dropped {} bytes, FIFO full", n - taken);
        }
    }
}

/// Wakes the loop when a stop is requested.
pub struct StopWatch {
    control: Arc<VmControl>,
}

impl StopWatch {
    /// Watches `control`'s stop event.
    pub fn new(control: Arc<VmControl>) -> Self {
        StopWatch { control }
    }
}

impl MutEventSubscriber for StopWatch {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.control.event(), EventSet::IN)) {
            log::error!("cannot watch the stop event: {e:?}");
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // The loop checks `is_stopping`; only drain the counter here.
        let _ = self.control.event().read();
    }
}
