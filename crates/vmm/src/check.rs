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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use vmm_sys_util::eventfd::EventFd;

use mmiolab_devices::{AccessRecord, Dir, EventRecord, IrqLine, Note, Space, TraceSink};
use mmiolab_regmodel::compile::Model;
use mmiolab_regmodel::device::OrderJudge;
use mmiolab_regmodel::schema::Trigger;

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
    /// An access to a register whose address is not a multiple of its width.
    Unaligned,
    /// An access an `[[order]]` rule of the description judges, made while its `require`
    /// did not hold.
    Order,
    /// A level interrupt line still asserted after N consecutive resamples (EOIs) of the
    /// interrupt controller: the guest's handler returned without clearing the condition.
    IrqStuck,
    /// A module accessed a device range it holds no claim of (the guest agent's rule,
    /// crate::agent).
    UnclaimedAccess,
    /// A module was unloaded still holding a claim of a device range (guest agent).
    LeakedClaim,
    /// A module was unloaded with a device range still mapped (guest agent).
    LeakedMapping,
    /// User space (a `/dev/mem` mapping, `ioperm` port I/O) accessed a device range that a
    /// module holds a claim or a mapping of: a second driver behind the kernel driver's back
    /// (guest agent).
    DevmemPoke,
}

/// A rule name the checker does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown check rule `{0}`")]
pub struct UnknownRule(pub String);

impl Rule {
    /// Every rule, in the order reports list them.
    pub const ALL: [Rule; 15] = [
        Rule::BadWidth,
        Rule::Hole,
        Rule::ReservedBits,
        Rule::WriteReadOnly,
        Rule::WriteOnceAgain,
        Rule::ReadWriteOnly,
        Rule::ReadEmptyFifo,
        Rule::WriteFullFifo,
        Rule::Unaligned,
        Rule::Order,
        Rule::IrqStuck,
        Rule::UnclaimedAccess,
        Rule::LeakedClaim,
        Rule::LeakedMapping,
        Rule::DevmemPoke,
    ];

    /// The rules of the guest agent (crate::agent), about modules, claims and mappings
    /// rather than a device's description.
    pub fn is_agent(self) -> bool {
        matches!(
            self,
            Rule::UnclaimedAccess | Rule::LeakedClaim | Rule::LeakedMapping | Rule::DevmemPoke
        )
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
            Rule::Unaligned => "unaligned",
            Rule::Order => "order",
            Rule::IrqStuck => "irq-stuck",
            Rule::UnclaimedAccess => "unclaimed-access",
            Rule::LeakedClaim => "leaked-claim",
            Rule::LeakedMapping => "leaked-mapping",
            Rule::DevmemPoke => "devmem-poke",
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
            Rule::Unaligned => "access at an address that is not a multiple of its width",
            Rule::Order => "access made while the order rule's condition did not hold",
            Rule::IrqStuck => "level interrupt still asserted after consecutive EOIs (handler did not clear it)",
            Rule::UnclaimedAccess => "access by a module that holds no claim of the range",
            Rule::LeakedClaim => "claim still held when its module was unloaded",
            Rule::LeakedMapping => "mapping never unmapped by its module before unload",
            Rule::DevmemPoke => "user-space access (/dev/mem, ioperm) to a range a module claimed or mapped",
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

/// The rules a device's findings may break without failing the run: `[device.check] allow`
/// (everywhere) and `allow_in` (in one guest test each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    always: Vec<Rule>,
    in_test: Vec<(String, Vec<Rule>)>,
}

impl Allow {
    /// What `check` allows (the machine file's names are checked when it is loaded; an
    /// unknown one here allows nothing).
    pub fn from_config(check: Option<&crate::config::DeviceCheckConfig>) -> Allow {
        let rules = |names: &[String]| names.iter().filter_map(|r| r.parse().ok()).collect();
        check.map_or_else(Allow::default, |c| Allow {
            always: rules(&c.allow),
            in_test: c.allow_in.iter().map(|(t, r)| (t.clone(), rules(r))).collect(),
        })
    }

    /// `rule` allowed everywhere.
    pub fn always(rules: Vec<Rule>) -> Allow {
        Allow {
            always: rules,
            in_test: Vec::new(),
        }
    }

    /// Whether a finding of `rule` made in guest test `test` is allowed.
    pub fn allows(&self, rule: Rule, test: Option<&str>) -> bool {
        self.always.contains(&rule)
            || test.is_some_and(|t| self.in_test.iter().any(|(name, r)| name == t && r.contains(&rule)))
    }
}

/// Resamples (EOIs) in a row with the line still asserted before `irq-stuck` is reported,
/// unless the machine file says otherwise (`[device.check] irq_stuck_after`).
pub const DEFAULT_IRQ_STUCK_AFTER: u32 = 3;

/// What the checker knows of one described device.
struct Device {
    name: String,
    model: Arc<Model>,
    registers: HashMap<String, usize>,
    allow: Allow,
}

/// A level interrupt line of a described device, watched for `irq-stuck`.
struct LevelLine {
    gsi: u32,
    /// The device's name in the machine file.
    device: String,
    line: Arc<IrqLine>,
    /// The device's region (as records name it), space and guest base address.
    region: String,
    space: Space,
    base: u64,
    /// The level interrupt outputs of the description on this line, joined with `|`.
    outputs: String,
    /// Consecutive resamples with the line asserted.
    streak: AtomicU64,
    after: u64,
}

thread_local! {
    /// The order rules the access being made on this thread broke: (region, bit per rule),
    /// set by [`OrderJudge::broken`] right before the access's record reaches the checker.
    static BROKEN_ORDERS: RefCell<Option<(String, u64)>> = const { RefCell::new(None) };
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
    /// Level interrupt lines of described devices.
    levels: Vec<LevelLine>,
    tracer: Option<Arc<Tracer>>,
    /// Count and the guest RIP of the first (with the guest agent).
    found: Mutex<BTreeMap<Place, (u64, Option<u64>)>>,
    /// The resample eventfds of the watched level lines, by GSI: read once more when the
    /// run ends, for EOIs the event loop had not yet reported.
    resamples: OnceLock<Vec<(u32, EventFd)>>,
    /// The guest agent's tables (with a Linux guest): who drives a device whose line is
    /// stuck, and in which test.
    agent: Option<Arc<crate::agent::Agent>>,
}

impl Checker {
    /// A checker for the described devices of `platform`, forwarding their records to
    /// `tracer` (if tracing); attach it with [`Checker::attach`].
    pub fn new(config: &MachineConfig, platform: &Platform, tracer: Option<Arc<Tracer>>) -> Checker {
        let mut devices = HashMap::new();
        let by_name: HashMap<&str, &crate::config::DeviceConfig> =
            config.devices.iter().map(|d| (d.name.as_str(), d)).collect();
        let mut levels: Vec<LevelLine> = Vec::new();
        for s in &platform.self_traced {
            let region = platform.bus.tree(s.space).name(s.region).to_owned();
            let dev = by_name.get(s.device.as_str()).copied();
            let allow = Allow::from_config(dev.and_then(|d| d.check.as_ref()));
            let after = dev
                .and_then(|d| d.check.as_ref())
                .and_then(|c| c.irq_stuck_after)
                .unwrap_or(DEFAULT_IRQ_STUCK_AFTER);
            let space = to_space(s.space);
            let base = dev.and_then(|d| match space {
                Space::Mmio => d.mmio.first().map(|r| r.base),
                Space::Pio => d.pio.first().map(|r| r.base),
            });
            // A device mapped in two spaces has its lines watched once, with its first region.
            for (line_index, &gsi) in dev.map(|d| d.irqs()).unwrap_or_default().iter().enumerate() {
                let outputs: Vec<&str> = s
                    .model
                    .interrupts
                    .iter()
                    .filter(|i| i.line as usize == line_index && i.trigger == Trigger::Level)
                    .map(|i| i.name.as_str())
                    .collect();
                let line = platform.irq_lines.iter().find(|l| l.gsi() == gsi);
                if let (false, Some(line), Some(base)) = (outputs.is_empty(), line, base)
                    && !levels.iter().any(|l| l.gsi == gsi)
                {
                    levels.push(LevelLine {
                        gsi,
                        device: s.device.clone(),
                        line: line.clone(),
                        region: region.clone(),
                        space,
                        base,
                        outputs: outputs.join("|"),
                        streak: AtomicU64::new(0),
                        after: u64::from(after.max(1)),
                    });
                }
            }
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
            levels,
            tracer,
            found: Mutex::new(BTreeMap::new()),
            resamples: OnceLock::new(),
            agent: platform.agent.clone(),
        }
    }

    /// Makes `checker` the sink of every described device of `platform` (instead of the
    /// tracer, which it forwards to), and the judge of their order rules.
    pub fn attach(checker: &Arc<Checker>, platform: &Platform) {
        for s in &platform.self_traced {
            s.attach.attach_sink(checker.clone());
            s.attach.attach_order_judge(checker.clone());
        }
    }

    /// The GSIs of the level lines watched for `irq-stuck`: the VMM reports each resample
    /// (EOI) of one with [`Checker::resampled`].
    pub fn level_gsis(&self) -> Vec<u32> {
        self.levels.iter().map(|l| l.gsi).collect()
    }

    /// Counts the EOIs of the watched lines that the event loop has not reported (the VMM
    /// calls it when the vCPUs are out, before the trace is finished).
    pub fn drain_resamples(&self) {
        for (gsi, fd) in self.resamples.get().into_iter().flatten() {
            if let Ok(n) = fd.read() {
                self.resampled(*gsi, n);
            }
        }
    }

    /// Keeps the resample eventfds of the watched lines (`(gsi, fd)`: clones of those the
    /// event loop reads), so that [`Checker::findings`] counts the EOIs it has not reported.
    pub fn keep_resamples(&self, fds: Vec<(u32, EventFd)>) {
        let _ = self.resamples.set(fds);
    }

    /// The interrupt controller resampled level line `gsi` `n` times (EOIs): while the
    /// device still holds the line, that is `n` more in a row; `irq-stuck` is found when
    /// the run of them reaches the device's limit (once per run of resamples).
    pub fn resampled(&self, gsi: u32, n: u64) {
        for l in self.levels.iter().filter(|l| l.gsi == gsi) {
            if !l.line.is_asserted() {
                l.streak.store(0, Ordering::Relaxed);
                continue;
            }
            let before = l.streak.fetch_add(n, Ordering::Relaxed);
            if before < l.after && before.saturating_add(n) >= l.after {
                // The driver is the module holding a claim of the device (the handler's
                // module); the test, the one running when the EOIs are counted.
                let (module, test) = self
                    .agent
                    .as_ref()
                    .map(|a| (a.claimant_of(&l.device), a.current_test()))
                    .unwrap_or_default();
                let allowed = self
                    .devices
                    .get(&l.region)
                    .is_some_and(|d| d.allow.allows(Rule::IrqStuck, test.as_deref()));
                self.note(
                    Place {
                        region: l.region.clone(),
                        register: None,
                        field: Some(l.outputs.clone()),
                        rule: Rule::IrqStuck,
                        space: space_name(l.space),
                        addr: l.base,
                        vcpu: None,
                        module,
                        test,
                    },
                    l.space,
                    allowed,
                    None,
                );
            }
        }
    }

    /// A lowered interrupt output of `region` ends the run of resamples of its line.
    fn lowered(&self, region: &str, notes: &[Note<'_>]) {
        if self.levels.is_empty() {
            return;
        }
        for note in notes {
            if let Note::Irq { asserted: false, .. } = note {
                for l in self
                    .levels
                    .iter()
                    .filter(|l| l.region == region && !l.line.is_asserted())
                {
                    l.streak.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Counts a finding at `place` and writes its trace line.
    fn note(&self, place: Place, space: Space, allowed: bool, rip: Option<u64>) {
        if let Some(t) = &self.tracer {
            t.finding(&crate::trace::FindingLine {
                rule: place.rule.name(),
                device: &place.region,
                register: place.register.as_deref(),
                field: place.field.as_deref(),
                space,
                addr: place.addr,
                vcpu: place.vcpu,
                allowed,
            });
        }
        self.found
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(place)
            .or_insert((0, rip))
            .0 += 1;
    }

    /// The findings so far, deduplicated with counts, sorted by device, register, field,
    /// rule, address and vCPU.
    pub fn findings(&self) -> Vec<Finding> {
        self.drain_resamples();
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
                    allowed: device.is_some_and(|d| d.allow.allows(p.rule, p.test.as_deref())),
                    module: p.module.clone(),
                    test: p.test.clone(),
                    rip,
                }
            })
            .collect()
    }

    /// The rules `record` broke, each with the field or FIFO concerned.
    fn judge<'r>(&self, device: &'r Device, record: &AccessRecord<'r>, mut found: impl FnMut(Rule, Option<&'r str>)) {
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
        // Memory windows (RAM) take unaligned accesses as memory does (memcpy_toio).
        if record.width > 1 && record.register.is_some() && !record.addr.is_multiple_of(u64::from(record.width)) {
            found(Rule::Unaligned, None);
        }
        let broken = BROKEN_ORDERS.with(|b| match b.borrow_mut().take() {
            Some((region, bits)) if region == record.device => bits,
            _ => 0,
        });
        if broken != 0 {
            for (i, o) in device.model.orders.iter().enumerate() {
                if broken & 1u64.checked_shl(i as u32).unwrap_or(0) != 0 {
                    found(Rule::Order, Some(o.name.as_str()));
                }
            }
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
        self.judge(device, record, |rule, field| {
            let place = Place {
                region: record.device.to_owned(),
                register: record.register.map(str::to_owned),
                field: field.map(str::to_owned),
                rule,
                space: space_name(record.space),
                addr: record.addr,
                vcpu,
                module: context.as_ref().and_then(|c| c.module.clone()),
                test: context.as_ref().and_then(|c| c.test.clone()),
            };
            let allowed = device.allow.allows(rule, place.test.as_deref());
            self.note(place, record.space, allowed, context.as_ref().map(|c| c.rip));
        });
        self.lowered(record.device, record.notes);
    }

    fn event(&self, record: &EventRecord<'_>) {
        // Events (delayed effects, host FIFO feeds) are no guest access: nothing to judge,
        // but a lowered interrupt ends a run of resamples.
        if let Some(t) = &self.tracer {
            t.event(record);
        }
        self.lowered(record.device, record.notes);
    }
}

impl OrderJudge for Checker {
    fn broken(&self, device: &str, broken: u64) {
        // The access's record follows on this thread, under the same device lock.
        BROKEN_ORDERS.with(|b| *b.borrow_mut() = Some((device.to_owned(), broken)));
    }
}

fn space_name(space: Space) -> &'static str {
    match space {
        Space::Mmio => "mmio",
        Space::Pio => "pio",
    }
}

fn to_space(space: mmiolab_bus::AddressSpace) -> Space {
    match space {
        mmiolab_bus::AddressSpace::Mmio => Space::Mmio,
        mmiolab_bus::AddressSpace::Pio => Space::Pio,
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

    /// A checker over one described device `d` (model from `text`) with level line `line`.
    fn checker(text: &str, line: &Arc<IrqLine>, after: u64, allow: Vec<Rule>) -> Checker {
        let model = Arc::new(mmiolab_regmodel::compile_text(text, std::path::Path::new("d.toml")).unwrap());
        let registers = model
            .registers
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let mut devices = HashMap::new();
        devices.insert(
            "d".to_owned(),
            Device {
                name: "d".to_owned(),
                model,
                registers,
                allow: Allow::always(allow),
            },
        );
        Checker {
            devices,
            levels: vec![LevelLine {
                gsi: line.gsi(),
                device: "d".to_owned(),
                line: line.clone(),
                region: "d".to_owned(),
                space: Space::Mmio,
                base: 0xd000_0000,
                outputs: "done".to_owned(),
                streak: AtomicU64::new(0),
                after,
            }],
            tracer: None,
            found: Mutex::new(BTreeMap::new()),
            resamples: OnceLock::new(),
            agent: None,
        }
    }

    const DEV: &str = "[[register]]\nname = \"CTRL\"\noffset = 0\n[[register]]\nname = \"DATA\"\noffset = 4\n[[register]]\nname = \"WIN\"\noffset = 8\nwidth = 64\n[[order]]\nname = \"en_first\"\non = \"write DATA\"\nrequire = \"CTRL == 1\"\n";

    fn record<'a>(dir: Dir, addr: u64, width: u8, register: Option<&'a str>) -> AccessRecord<'a> {
        AccessRecord {
            space: Space::Mmio,
            dir,
            addr,
            offset: addr - 0xd000_0000,
            width,
            value: 0,
            device: "d",
            register,
            fields: &[],
            notes: &[],
        }
    }

    #[test]
    fn irq_stuck_counts_resamples_in_a_row_while_asserted() {
        let line = Arc::new(IrqLine::new_level(5).unwrap());
        let c = checker(DEV, &line, 3, vec![]);
        // Not asserted: resamples find nothing and keep no count.
        c.resampled(5, 10);
        assert!(c.findings().is_empty());
        line.set_level(true);
        c.resampled(5, 2);
        assert!(c.findings().is_empty(), "2 of 3");
        // The handler lowers the line: the run starts over.
        line.set_level(false);
        c.lowered(
            "d",
            &[Note::Irq {
                name: "done",
                asserted: false,
            }],
        );
        line.set_level(true);
        c.resampled(5, 1);
        c.resampled(5, 1);
        assert!(c.findings().is_empty(), "2 of 3 after the reset");
        c.resampled(5, 1);
        c.resampled(5, 4);
        c.resampled(6, 9);
        let f = c.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule, f[0].count),
            (Rule::IrqStuck, 1),
            "once per run of resamples"
        );
        assert_eq!(f[0].field.as_deref(), Some("done"));
        assert_eq!(
            f[0].to_string(),
            "irq-stuck: d (done) at mmio 0xd0000000, no vCPU, 1 time: level interrupt still asserted after consecutive EOIs (handler did not clear it)"
        );
        // A resample that finds the line low ends the run too; a new run is a new count.
        line.set_level(false);
        c.resampled(5, 1);
        line.set_level(true);
        c.resampled(5, 3);
        assert_eq!(c.findings()[0].count, 2);
    }

    #[test]
    fn unaligned_accesses_and_broken_orders_are_found() {
        let line = Arc::new(IrqLine::new_level(5).unwrap());
        let c = checker(DEV, &line, 3, vec![Rule::Unaligned]);
        c.access(&record(Dir::Read, 0xd000_0008, 8, Some("WIN")));
        c.access(&record(Dir::Read, 0xd000_000c, 4, Some("WIN")));
        c.access(&record(Dir::Read, 0xd000_0009, 1, Some("WIN")));
        assert!(c.findings().is_empty(), "aligned, and bytes are always aligned");
        c.access(&record(Dir::Read, 0xd000_000a, 4, Some("WIN")));
        // A memory window (no register) is memory: unaligned is fine there.
        c.access(&record(Dir::Read, 0xd000_0103, 4, None));
        c.access(&record(Dir::Write, 0xd000_0001, 2, Some("CTRL")));
        // The device reports broken order rules right before the access's record.
        c.broken("d", 1);
        c.access(&record(Dir::Write, 0xd000_0004, 4, Some("DATA")));
        // A report for another device is not this record's.
        c.broken("other", 1);
        c.access(&record(Dir::Write, 0xd000_0004, 4, Some("DATA")));
        let f: Vec<(Rule, Option<String>, Option<String>, bool)> = c
            .findings()
            .into_iter()
            .map(|f| (f.rule, f.register, f.field, f.allowed))
            .collect();
        assert_eq!(
            f,
            vec![
                (Rule::Unaligned, Some("CTRL".to_owned()), None, true),
                (Rule::Order, Some("DATA".to_owned()), Some("en_first".to_owned()), false),
                (Rule::Unaligned, Some("WIN".to_owned()), None, true),
            ]
        );
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
