//! What the vCPU loop does with a trapped access: hand it to the bus, trace it.
//!
//! This is the whole trapped-access path after `KVM_RUN` returns: [`AccessHandler`] gets
//! the decoded access, calls the bus (the device this vCPU reached last, else an O(log n)
//! lookup, then the device), and writes a trace line only when tracing is on. Nothing here
//! allocates. One handler lives as long as its vCPU thread's loop.

use mmiolab_bus::{AddressSpace, Bus, LastHit};

use crate::trace::{Op, Tracer};

/// Dispatches one vCPU's trapped accesses.
pub struct AccessHandler<'a> {
    bus: &'a Bus,
    last: LastHit<'a>,
    tracer: Option<&'a Tracer>,
    vcpu: u32,
}

impl<'a> AccessHandler<'a> {
    /// A handler for vCPU `vcpu`.
    pub fn new(bus: &'a Bus, tracer: Option<&'a Tracer>, vcpu: u32) -> Self {
        AccessHandler {
            bus,
            last: LastHit::default(),
            tracer,
            vcpu,
        }
    }

    /// A guest MMIO load: fills `data`.
    #[inline]
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        let routed = self.bus.mmio_read(&self.last, addr, data);
        if let Some(t) = self.tracer {
            t.record(self.vcpu, AddressSpace::Mmio, Op::Read, addr, data, routed);
        }
    }

    /// A guest MMIO store.
    #[inline]
    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        let routed = self.bus.mmio_write(&self.last, addr, data);
        if let Some(t) = self.tracer {
            t.record(self.vcpu, AddressSpace::Mmio, Op::Write, addr, data, routed);
        }
    }

    /// A guest `in`/`out`, possibly a string instruction: `data` holds `data.len() / size`
    /// elements of `size` bytes, each a separate access to `port`, in order.
    #[inline]
    pub fn port_io(&self, port: u16, size: usize, op: Op, data: &mut [u8]) {
        if size == 0 {
            return;
        }
        for element in data.chunks_exact_mut(size) {
            let routed = match op {
                Op::Read => self.bus.pio_read(&self.last, port, element),
                Op::Write => self.bus.pio_write(&self.last, port, element),
            };
            if let Some(t) = self.tracer {
                t.record(self.vcpu, AddressSpace::Pio, op, port.into(), element, routed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_bus::BusBuilder;
    use mmiolab_devices::{Counter, RegFile};
    use std::sync::Arc;

    fn bus() -> (Bus, Arc<RegFile>) {
        let reg = Arc::new(RegFile::new(16, None));
        let mut b = BusBuilder::new();
        b.add_pio_device(None, "reg", 0x378, 16, reg.clone()).unwrap();
        b.add_pio_device(None, "seq", 0x80, 2, Arc::new(Counter::new()))
            .unwrap();
        (b.build(), reg)
    }

    #[test]
    fn string_output_is_split_into_elements_in_order() {
        let (bus, _reg) = bus();
        let h = AccessHandler::new(&bus, None, 0);
        // rep outsw of three words to the storage at offset 0xc: the last one stays.
        let mut words = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66];
        h.port_io(0x384, 2, Op::Write, &mut words);
        let mut back = [0u8; 2];
        h.port_io(0x384, 2, Op::Read, &mut back);
        assert_eq!(back, [0x55, 0x66]);
    }

    #[test]
    fn string_input_reads_each_element_separately() {
        let (bus, _) = bus();
        let h = AccessHandler::new(&bus, None, 0);
        let mut words = [0u8; 8];
        h.port_io(0x80, 2, Op::Read, &mut words);
        assert_eq!(words, [1, 0, 2, 0, 3, 0, 4, 0]);
        // An unmapped port floats high for every element.
        let mut bytes = [0u8; 3];
        h.port_io(0x90, 1, Op::Read, &mut bytes);
        assert_eq!(bytes, [0xff; 3]);
        assert_eq!(bus.unmapped_counts().pio_reads, 3);
    }

    #[test]
    fn zero_size_does_nothing() {
        let (bus, _) = bus();
        let h = AccessHandler::new(&bus, None, 0);
        h.port_io(0x80, 0, Op::Read, &mut [0u8; 4]);
        assert_eq!(bus.unmapped_counts().pio_reads, 0);
    }
}
