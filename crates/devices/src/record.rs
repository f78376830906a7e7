//! What a device that traces itself tells the trace.
//!
//! Described devices (mmiolab-regmodel) know register and field names and the side effects
//! an access fired, which the generic access line cannot know. They hand an
//! [`AccessRecord`] to a [`TraceSink`] while still holding their own lock, so the sink's
//! sequence numbers follow the order in which the device saw the accesses, also with
//! several vCPUs. Records borrow everything: building one never allocates.

/// Which address space an access came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Memory-mapped I/O.
    Mmio,
    /// x86 I/O ports.
    Pio,
}

/// Read or write, from the guest's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// A load / `in`.
    Read,
    /// A store / `out`.
    Write,
}

/// One field of the register an access reached, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldValue<'a> {
    /// Field name.
    pub name: &'a str,
    /// Its value (shifted down to bit 0) as read, or as written.
    pub value: u64,
    /// The name the description gives that value, if any.
    pub enum_name: Option<&'a str>,
}

/// A side effect that an access, or a scheduled effect, fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note<'a> {
    /// Bits of a field went from 1 to 0 (write-1-to-clear, read-to-clear, an effect...).
    Cleared {
        /// `REG.FIELD`, or `REG` for a register without fields.
        field: &'a str,
        /// The bits cleared, in the field's position within its register.
        bits: u64,
    },
    /// Bits of a field went from 0 to 1.
    Set {
        /// `REG.FIELD`.
        field: &'a str,
        /// The bits set, in register position.
        bits: u64,
    },
    /// A FIFO took or gave an element; its level afterwards.
    Fifo {
        /// FIFO name.
        fifo: &'a str,
        /// Elements held after the operation.
        level: u32,
    },
    /// A push to a full FIFO: the element was dropped.
    Overflow {
        /// FIFO name.
        fifo: &'a str,
    },
    /// A pop from an empty FIFO.
    Underflow {
        /// FIFO name.
        fifo: &'a str,
    },
    /// An interrupt output changed level (or, for an edge output, fired).
    Irq {
        /// Interrupt name.
        name: &'a str,
        /// Level after the change; an edge reports `true`.
        asserted: bool,
    },
    /// An effect was scheduled to run later.
    Scheduled {
        /// Effect name.
        effect: &'a str,
        /// When, in ns of the machine's clock (for a delay in time), or `None` when it waits
        /// for a number of further accesses.
        due_ns: Option<u64>,
    },
    /// An effect ran.
    Fired {
        /// Effect name.
        effect: &'a str,
    },
    /// The access width is not one the register allows, and its policy rejects it: reads
    /// returned all ones, writes were dropped.
    BadWidth,
    /// Some of the bytes accessed belong to no register.
    Hole,
    /// Reserved bits (no field covers them) were written with a value other than their
    /// defined read value.
    Reserved {
        /// The bits, in register position.
        bits: u64,
    },
    /// A write tried to change a read-only field, or a write-once field a second time.
    Ignored {
        /// `REG.FIELD`.
        field: &'a str,
    },
    /// Notes that did not fit in the record (more than the record holds).
    Truncated,
}

/// One guest access to a device that traces itself.
#[derive(Clone, Copy, Debug)]
pub struct AccessRecord<'a> {
    /// Address space.
    pub space: Space,
    /// Direction.
    pub dir: Dir,
    /// Guest address (port number for PIO).
    pub addr: u64,
    /// Offset into the device's region.
    pub offset: u64,
    /// Access width in bytes.
    pub width: u8,
    /// The value read or written, as the guest saw it (little-endian bytes as a number).
    pub value: u64,
    /// The device's region name (as in the bus tree).
    pub device: &'a str,
    /// The register reached (`CTRL`, `CH[3]`), if any.
    pub register: Option<&'a str>,
    /// The register's fields, decoded from `value`.
    pub fields: &'a [FieldValue<'a>],
    /// What the access caused.
    pub notes: &'a [Note<'a>],
}

/// Something a device did on its own, not during a guest access: a delayed effect ran, an
/// interrupt changed level, the host fed a FIFO.
#[derive(Clone, Copy, Debug)]
pub struct EventRecord<'a> {
    /// The device's region name.
    pub device: &'a str,
    /// What happened.
    pub notes: &'a [Note<'a>],
}

/// Receives the records of self-tracing devices.
///
/// Called with the device's lock held: an implementation must not call back into any
/// device, and should only format and write (lock order: device, then sink).
pub trait TraceSink: Send + Sync {
    /// Whether records for `device` (region name) and `register` are wanted at all, so a
    /// device can skip decoding. `register` is `None` for the whole device.
    fn wants(&self, device: &str, register: Option<&str>) -> bool;
    /// Whether [`TraceSink::wants`] says yes to every device and register (no filters),
    /// for the whole life of the sink: a device may then skip asking before each record.
    fn wants_everything(&self) -> bool {
        false
    }
    /// A guest access.
    fn access(&self, record: &AccessRecord<'_>);
    /// A device event outside any guest access.
    fn event(&self, record: &EventRecord<'_>);
}
