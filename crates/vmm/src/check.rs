//! The register checker (`mmiolab run --check`, docs/checker.md): rules of each described
//! device's registers that a guest access broke, seen from the host.
//!
//! The checker is a [`TraceSink`] that the machine attaches to the described devices in
//! place of the tracer (which it forwards every record to), so it sees each record a device
//! writes: the register, the access, and the engine's notes (bad width, hole, reserved
//! bits, ignored write, FIFO overflow and underflow). It adds what a note does not say from
//! the device's compiled description: which ignored writes hit a write-once field a second
//! time, which reads hit a write-only register, which FIFOs forbid what.
//!
//! Without `--check` no checker exists and nothing on the access path changes: devices
//! without a tracer have no sink and never build a record.
//!
//! Limits: a read of a write-only register is seen only when the register's trace policy
//! records the read (`full`, the default; `changes` records it when the value differs from
//! the last read); every other rule comes with a note, and the engine records every access
//! with notes. The guest's RIP, module and test come from the vCPU thread's access context
//! (crate::agent), set in checker mode for every access to a device of the machine file.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use mmiolab_devices::{AccessRecord, Dir, EventRecord, Note, Space, TraceSink};
use mmiolab_regmodel::compile::Model;

use crate::config::MachineConfig;
use crate::platform::Platform;
use crate::trace::{Tracer, current_vcpu};

/// A rule of a device's description that an access can break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// An access width the register does not accept (its `widths` and `bad_width`).
    BadWidth,
    /// Bytes of the access belong to no register.
    Hole,
    /// Reserved bits (no field covers them) written with a value other than they read.
    ReservedBits,
    /// A write that tried to change a read-only field or register.
    WriteReadOnly,
    /// A second write to a write-once field.
    WriteOnceAgain,
    /// A read of a register whose fields are all write-only.
    ReadWriteOnly,
    /// A pop of an empty FIFO whose description forbids it (`forbid_read_empty`).
    ReadEmptyFifo,
    /// A push onto a full FIFO whose description forbids it (`forbid_write_full`).
    WriteFullFifo,
    /// A module accessed a device range it holds no claim of (the guest agent's rule,
    /// crate::agent).
    UnclaimedAccess,
    /// A module was unloaded still holding a claim of a device range (guest agent).
    LeakedClaim,
    /// A module was unloaded with a device range still mapped (guest agent).
    LeakedMapping,
}

/// A rule name the checker does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check rule `{0}`")]
pub struct UnknownRule(pub String);

impl Rule {
    /// Every rule, in the order reports list them.
    pub const ALL: [Rule; 11] = [
        Rule::BadWidth,
        Rule::Hole,
        Rule::ReservedBits,
        Rule::WriteReadOnly,
        Rule::WriteOnceAgain,
        Rule::ReadWriteOnly,
        Rule::ReadEmptyFifo,
        Rule::WriteFullFifo,
        Rule::UnclaimedAccess,
        Rule::LeakedClaim,
        Rule::LeakedMapping,
    ];

    /// The rules of the guest agent (crate::agent), about modules, claims and mappings
    /// rather than a device's description.
    pub fn is_agent(self) -> bool {
        matches!(self, Rule::UnclaimedAccess | Rule::LeakedClaim | Rule::LeakedMapping)
    }

    /// The name used in reports, the trace and `[device.check] allow`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::BadWidth => "bad-width",
            Rule::Hole => "hole",
            Rule::ReservedBits => "reserved-bits",
            Rule::WriteReadOnly => "write-read-only",
            Rule::WriteOnceAgain => "write-once-again",
            Rule::ReadWriteOnly => "read-write-only",
            Rule::ReadEmptyFifo => "read-empty-fifo",
            Rule::WriteFullFifo => "write-full-fifo",
            Rule::UnclaimedAccess => "unclaimed-access",
            Rule::LeakedClaim => "leaked-claim",
            Rule::LeakedMapping => "leaked-mapping",
        }
    }

    /// What breaking it means, for the console.
    pub fn what(self) -> &'static str {
        match self {
            Rule::BadWidth => "access width the register does not accept",
            Rule::Hole => "access to bytes that belong to no register",
            Rule::ReservedBits => "reserved bits written with a value other than they read",
            Rule::WriteReadOnly => "write to a read-only register or field",
            Rule::WriteOnceAgain => "second write to a write-once field",
            Rule::ReadWriteOnly => "read of a write-only register",
            Rule::ReadEmptyFifo => "read of an empty FIFO (the description forbids it)",
            Rule::WriteFullFifo => "write to a full FIFO (the description forbids it)",
            Rule::UnclaimedAccess => "access by a module that holds no claim of the range",
            Rule::LeakedClaim => "claim still held when its module was unloaded",
            Rule::LeakedMapping => "mapping never unmapped by its module before unload",
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRule(s.to_owned()))
    }
}

/// One finding: a rule broken at one place, with how many times it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The device's name in the machine file.
    pub device: String,
    /// The device region's name in the bus tree (as the trace names it).
    pub region: String,
    /// The register reached, if any.
    pub register: Option<String>,
    /// The field (`REG.FIELD`) or FIFO concerned, if the rule is about one.
    pub field: Option<String>,
    /// `mmio` or `pio`.
    pub space: &'static str,
    /// Guest address (port for PIO) of the access.
    pub addr: u64,
    /// The vCPU that made it (`None`: not a vCPU thread).
    pub vcpu: Option<u32>,
    /// How many accesses broke the rule at this place.
    pub count: u64,
    /// The machine file allows this rule for this device (`[device.check] allow`).
    pub allowed: bool,
    /// The guest module whose code made the access (or held the claim or mapping), when
    /// the guest agent runs (crate::agent); `None`: the kernel's own code or user space.
    pub module: Option<String>,
    /// The guest test running then, as the guest agent reported it.
    pub test: Option<String>,
    /// The guest RIP of the (first) access; for a leak, where the module claimed or
    /// mapped. `None` without the guest agent.
    pub rip: Option<u64>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule.name(), self.device)?;
        if let Some(r) = &self.register {
            write!(f, ".{r}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " ({field})")?;
        }
        write!(f, " at {} {:#x}", self.space, self.addr)?;
        match self.vcpu {
            Some(v) => write!(f, ", vCPU {v}")?,
            None => write!(f, ", no vCPU")?,
        }
        write!(f, ", {} time{}", self.count, if self.count == 1 { "" } else { "s" })?;
        write!(f, ": {}", self.rule.what())?;
        if let Some(m) = &self.module {
            write!(f, "; module {m}")?;
        }
        if let Some(t) = &self.test {
            write!(f, "; test {t}")?;
        }
        if let Some(rip) = self.rip {
            write!(f, "; RIP {rip:#x}")?;
        }
        if self.allowed {
            write!(f, " [allowed by the machine file]")?;
        }
        Ok(())
    }
}

/// What the checker knows of one described device.
struct Device {
    name: String,
    model: Arc<Model>,
    registers: HashMap<String, usize>,
    allow: Vec<Rule>,
}

/// Where a finding happened; findings at the same place are counted together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    region: String,
    register: Option<String>,
    field: Option<String>,
    rule: Rule,
    space: &'static str,
    addr: u64,
    vcpu: Option<u32>,
    /// The guest module and test (with the guest agent, crate::agent).
    module: Option<String>,
    test: Option<String>,
}

/// The checker of one run.
pub struct Checker {
    /// By region name.
    devices: HashMap<String, Device>,
    tracer: Option<Arc<Tracer>>,
    /// Count and the guest RIP of the first (with the guest agent).
    found: Mutex<BTreeMap<Place, (u64, Option<u64>)>>,
}

impl Checker {
    /// A checker for the described devices of `platform`, forwarding their records to
    /// `tracer` (if tracing); attach it with [`Checker::attach`].
    pub fn new(config: &MachineConfig, platform: &Platform, tracer: Option<Arc<Tracer>>) -> Checker {
        let mut devices = HashMap::new();
        for s in &platform.self_traced {
            let region = platform.bus.tree(s.space).name(s.region).to_owned();
            let allow = config
                .devices
                .iter()
                .find(|d| d.name == s.device)
                .and_then(|d| d.check.as_ref())
                .map(|c| c.allow.iter().filter_map(|r| r.parse().ok()).collect())
                .unwrap_or_default();
            let registers = s
                .model
                .registers
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), i))
                .collect();
            devices.insert(
                region,
                Device {
                    name: s.device.clone(),
                    model: s.model.clone(),
                    registers,
                    allow,
                },
            );
        }
        Checker {
            devices,
            tracer,
            found: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes `checker` the sink of every described device of `platform` (instead of the
    /// tracer, which it forwards to).
    pub fn attach(checker: &Arc<Checker>, platform: &Platform) {
        for s in &platform.self_traced {
            s.attach.attach_sink(checker.clone());
        }
    }

    /// The findings so far, deduplicated with counts, sorted by device, register, field,
    /// rule, address and vCPU.
    pub fn findings(&self) -> Vec<Finding> {
        let found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        found
            .iter()
            .map(|(p, &(count, rip))| {
                let device = self.devices.get(&p.region);
                Finding {
                    rule: p.rule,
                    device: device.map_or_else(|| p.region.clone(), |d| d.name.clone()),
                    region: p.region.clone(),
                    register: p.register.clone(),
                    field: p.field.clone(),
                    space: p.space,
                    addr: p.addr,
                    vcpu: p.vcpu,
                    count,
                    allowed: device.is_some_and(|d| d.allow.contains(&p.rule)),
                    module: p.module.clone(),
                    test: p.test.clone(),
                    rip,
                }
            })
            .collect()
    }

    /// The rules `record` broke, each with the field or FIFO concerned.
    fn judge<'r>(&self, device: &Device, record: &AccessRecord<'r>, mut found: impl FnMut(Rule, Option<&'r str>)) {
        let register = record
            .register
            .and_then(|name| device.registers.get(name))
            .and_then(|&i| device.model.registers.get(i));
        for note in record.notes {
            match *note {
                Note::BadWidth => found(Rule::BadWidth, None),
                Note::Hole => found(Rule::Hole, None),
                Note::Reserved { .. } => found(Rule::ReservedBits, None),
                Note::Ignored { field } => {
                    let once = register
                        .and_then(|r| r.fields.iter().find(|f| f.path == field))
                        .is_some_and(|f| f.access.once && f.access.write);
                    found(
                        if once {
                            Rule::WriteOnceAgain
                        } else {
                            Rule::WriteReadOnly
                        },
                        Some(field),
                    );
                }
                Note::Overflow { fifo }
                    if record.dir == Dir::Write
                        && device.model.fifos.iter().any(|f| f.name == fifo && f.forbid_write_full) =>
                {
                    found(Rule::WriteFullFifo, Some(fifo));
                }
                Note::Underflow { fifo }
                    if record.dir == Dir::Read
                        && device.model.fifos.iter().any(|f| f.name == fifo && f.forbid_read_empty) =>
                {
                    found(Rule::ReadEmptyFifo, Some(fifo));
                }
                _ => {}
            }
        }
        if record.dir == Dir::Read && register.is_some_and(|r| r.write_only()) {
            found(Rule::ReadWriteOnly, None);
        }
    }
}

impl TraceSink for Checker {
    fn wants(&self, _device: &str, _register: Option<&str>) -> bool {
        // Every record is judged; the tracer applies its own filters when it gets them.
        true
    }

    fn access(&self, record: &AccessRecord<'_>) {
        if let Some(t) = &self.tracer {
            t.access(record);
        }
        let Some(device) = self.devices.get(record.device) else {
            return;
        };
        let vcpu = current_vcpu();
        let context = crate::agent::current_context();
        let space = match record.space {
            Space::Mmio => "mmio",
            Space::Pio => "pio",
        };
        self.judge(device, record, |rule, field| {
            let place = Place {
                region: record.device.to_owned(),
                register: record.register.map(str::to_owned),
                field: field.map(str::to_owned),
                rule,
                space,
                addr: record.addr,
                vcpu,
                module: context.as_ref().and_then(|c| c.module.clone()),
                test: context.as_ref().and_then(|c| c.test.clone()),
            };
            self.found
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(place)
                .or_insert((0, context.as_ref().map(|c| c.rip)))
                .0 += 1;
            if let Some(t) = &self.tracer {
                t.finding(&crate::trace::FindingLine {
                    rule: rule.name(),
                    device: record.device,
                    register: record.register,
                    field,
                    space: record.space,
                    addr: record.addr,
                    vcpu,
                    allowed: device.allow.contains(&rule),
                });
            }
        });
    }

    fn event(&self, record: &EventRecord<'_>) {
        // Events (delayed effects, host FIFO feeds) are no guest access: nothing to judge.
        if let Some(t) = &self.tracer {
            t.event(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_parse_back() {
        for r in Rule::ALL {
            assert_eq!(r.name().parse::<Rule>(), Ok(r));
        }
        assert_eq!("nope".parse::<Rule>(), Err(UnknownRule("nope".to_owned())));
    }

    #[test]
    fn a_finding_reads_as_one_line() {
        let f = Finding {
            rule: Rule::ReadWriteOnly,
            device: "chk".to_owned(),
            region: "chk".to_owned(),
            register: Some("TXDATA".to_owned()),
            field: None,
            space: "mmio",
            addr: 0xd000_0010,
            vcpu: Some(0),
            count: 2,
            allowed: false,
            module: None,
            test: None,
            rip: None,
        };
        assert_eq!(
            f.to_string(),
            "read-write-only: chk.TXDATA at mmio 0xd0000010, vCPU 0, 2 times: read of a write-only register"
        );
    }
}
