//! The access trace: one JSON object per trapped device access, one per line.
//!
//! ```json
//! {"vcpu":0,"space":"mmio","op":"write","addr":"0xd0001010","width":4,"value":"0x12345678","device":"testdev@d0001000","offset":"0x10"}
//! ```
//! An access that hit no device has `"device":null,"offset":null`. A string I/O instruction
//! (`rep outsb`) gives one line per element, in order. Lines are formatted into a stack
//! buffer and written under one lock, so lines from several vCPUs never interleave.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use mmiolab_bus::{AddressSpace, Bus, Routed};

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A guest load / `in`.
    Read,
    /// A guest store / `out`.
    Write,
}

/// Writes trace lines for every trapped access.
pub struct Tracer {
    bus: Arc<Bus>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Tracer {
    /// A tracer naming devices from `bus` and writing to `out` (buffer it).
    pub fn new(bus: Arc<Bus>, out: Box<dyn Write + Send>) -> Tracer {
        Tracer {
            bus,
            out: Mutex::new(out),
        }
    }

    /// Records one access of `data.len()` bytes (at most 8 are shown as the value).
    pub fn record(&self, vcpu: u32, space: AddressSpace, op: Op, addr: u64, data: &[u8], routed: Routed) {
        let mut line = LineBuf::default();
        line.push(b"{\"vcpu\":");
        line.dec(u64::from(vcpu));
        line.push(match space {
            AddressSpace::Mmio => b",\"space\":\"mmio\",\"op\":\"".as_slice(),
            AddressSpace::Pio => b",\"space\":\"pio\",\"op\":\"",
        });
        line.push(match op {
            Op::Read => b"read\",\"addr\":\"".as_slice(),
            Op::Write => b"write\",\"addr\":\"",
        });
        line.hex(addr);
        line.push(b"\",\"width\":");
        line.dec(data.len() as u64);
        line.push(b",\"value\":\"");
        let mut le = [0u8; 8];
        for (b, v) in le.iter_mut().zip(data) {
            *b = *v;
        }
        line.hex(u64::from_le_bytes(le));
        let device = match routed {
            Routed::Device => self.bus.tree(space).device_at(addr),
            Routed::Unmapped => None,
        };
        match device {
            Some(id) => {
                let tree = self.bus.tree(space);
                line.push(b"\",\"device\":\"");
                line.json_str(tree.name(id));
                line.push(b"\",\"offset\":\"");
                line.hex(addr - tree.range(id).start());
                line.push(b"\"}\n");
            }
            None => line.push(b"\",\"device\":null,\"offset\":null}\n"),
        }
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = out.write_all(line.as_slice()) {
            log::error!("trace: write failed: {e}");
        }
    }

    /// Flushes buffered lines.
    pub fn flush(&self) -> io::Result<()> {
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
    }
}

/// A fixed-size line buffer: formatting a trace line never allocates.
struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf { buf: [0; 512], len: 0 }
    }
}

impl LineBuf {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = bytes.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
    }

    fn hex(&mut self, v: u64) {
        let digits = ((64 - v.leading_zeros()).div_ceil(4)).max(1) as usize;
        let mut tmp = [0u8; 18];
        tmp[0] = b'0';
        tmp[1] = b'x';
        for i in 0..digits {
            let nibble = (v >> (4 * (digits - 1 - i))) & 0xf;
            tmp[2 + i] = b"0123456789abcdef"[nibble as usize];
        }
        self.push(&tmp[..2 + digits]);
    }

    fn dec(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&tmp[i..]);
    }

    /// Region names come from the machine description: escape what JSON needs escaped.
    fn json_str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            match b {
                b'"' | b'\\' => self.push(&[b'\\', b]),
                0..0x20 => {
                    self.push(b"\\u00");
                    self.push(&[
                        b"0123456789abcdef"[usize::from(b >> 4)],
                        b"0123456789abcdef"[usize::from(b & 0xf)],
                    ]);
                }
                _ => self.push(&[b]),
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmiolab_bus::BusBuilder;
    use mmiolab_devices::RegFile;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_json_with_device_and_offset() {
        let mut b = BusBuilder::new();
        b.add_mmio_device(
            None,
            "dev \"q\"",
            0xd000_0000,
            0x100,
            Arc::new(RegFile::new(0x100, None)),
        )
        .unwrap();
        let sink = Sink::default();
        let t = Tracer::new(Arc::new(b.build()), Box::new(sink.clone()));
        t.record(
            1,
            AddressSpace::Mmio,
            Op::Write,
            0xd000_0010,
            &[0x78, 0x56, 0x34, 0x12],
            Routed::Device,
        );
        t.record(0, AddressSpace::Pio, Op::Read, 0x80, &[0xff], Routed::Unmapped);
        t.record(0, AddressSpace::Mmio, Op::Read, 0, &[0; 8], Routed::Unmapped);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "{\"vcpu\":1,\"space\":\"mmio\",\"op\":\"write\",\"addr\":\"0xd0000010\",\"width\":4,\"value\":\"0x12345678\",\"device\":\"dev \\\"q\\\"\",\"offset\":\"0x10\"}\n\
             {\"vcpu\":0,\"space\":\"pio\",\"op\":\"read\",\"addr\":\"0x80\",\"width\":1,\"value\":\"0xff\",\"device\":null,\"offset\":null}\n\
             {\"vcpu\":0,\"space\":\"mmio\",\"op\":\"read\",\"addr\":\"0x0\",\"width\":8,\"value\":\"0x0\",\"device\":null,\"offset\":null}\n"
        );
    }
}
