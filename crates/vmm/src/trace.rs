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
    /// JSON-escaped region names, by space (MMIO, PIO) and region index: escaped once here,
    /// copied per access.
    names: [Vec<Box<[u8]>>; 2],
    out: Mutex<Box<dyn Write + Send>>,
}

/// Longest escaped name a line carries; the machine file keeps names far shorter.
const MAX_NAME: usize = 128;

fn space_index(space: AddressSpace) -> usize {
    match space {
        AddressSpace::Mmio => 0,
        AddressSpace::Pio => 1,
    }
}

impl Tracer {
    /// A tracer naming devices from `bus` and writing to `out` (buffer it).
    pub fn new(bus: Arc<Bus>, out: Box<dyn Write + Send>) -> Tracer {
        let names = [AddressSpace::Mmio, AddressSpace::Pio].map(|space| {
            let tree = bus.tree(space);
            let mut names: Vec<Box<[u8]>> = Vec::new();
            for (_, id) in tree.walk() {
                if names.len() <= id.index() {
                    names.resize(id.index() + 1, Box::default());
                }
                let mut escaped = json_escape(tree.name(id));
                escaped.truncate(MAX_NAME);
                names[id.index()] = escaped.into_boxed_slice();
            }
            names
        });
        Tracer {
            bus,
            names,
            out: Mutex::new(out),
        }
    }

    /// Records one access of `data.len()` bytes (at most 8 are shown as the value).
    pub fn record(&self, vcpu: u32, space: AddressSpace, op: Op, addr: u64, data: &[u8], routed: Routed) {
        let mut line = LineBuf::new();
        line.lit(b"{\"vcpu\":");
        line.dec(u64::from(vcpu));
        match space {
            AddressSpace::Mmio => line.lit(b",\"space\":\"mmio\",\"op\":\""),
            AddressSpace::Pio => line.lit(b",\"space\":\"pio\",\"op\":\""),
        }
        match op {
            Op::Read => line.lit(b"read\",\"addr\":\""),
            Op::Write => line.lit(b"write\",\"addr\":\""),
        }
        line.hex(addr);
        line.lit(b"\",\"width\":");
        line.dec(data.len() as u64);
        line.lit(b",\"value\":\"");
        let mut le = [0u8; 8];
        for (b, v) in le.iter_mut().zip(data) {
            *b = *v;
        }
        line.hex(u64::from_le_bytes(le));
        let tree = self.bus.tree(space);
        let device = match routed {
            Routed::Device => tree.device_at(addr),
            Routed::Unmapped => None,
        };
        let name = device.and_then(|id| self.names[space_index(space)].get(id.index()).map(|n| (id, n)));
        match name {
            Some((id, name)) => {
                line.lit(b"\",\"device\":\"");
                line.bytes(name);
                line.lit(b"\",\"offset\":\"");
                line.hex(addr - tree.range(id).start());
                line.lit(b"\"}\n");
            }
            None => line.lit(b"\",\"device\":null,\"offset\":null}\n"),
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

/// `s` with what JSON needs escaped inside a string escaped.
fn json_escape(s: &str) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..0x20 => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => out.push(b),
        }
    }
    out
}

/// A fixed-size line buffer: formatting a trace line never allocates. Literal pieces are
/// copied with their length known at compile time, so they become a few stores rather than
/// `memcpy` calls. A line is at most ~200 bytes plus a name of at most `MAX_NAME`.
struct LineBuf {
    buf: [u8; 384],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf { buf: [0; 384], len: 0 }
    }

    fn lit<const N: usize>(&mut self, s: &[u8; N]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + N) {
            dst.copy_from_slice(s);
            self.len += N;
        }
    }

    fn bytes(&mut self, s: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + s.len()) {
            dst.copy_from_slice(s);
            self.len += s.len();
        }
    }

    fn hex(&mut self, v: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = ((64 - v.leading_zeros()).div_ceil(4)).max(1) as usize;
        let Some(dst) = self.buf.get_mut(self.len..self.len + 2 + digits) else {
            return;
        };
        dst[0] = b'0';
        dst[1] = b'x';
        for (i, d) in dst[2..].iter_mut().enumerate() {
            *d = HEX[((v >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
        self.len += 2 + digits;
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
        self.bytes(&tmp[i..]);
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
