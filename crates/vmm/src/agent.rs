//! The checker's view from inside the guest (`--check`, docs/checker.md, "The guest
//! agent"): which module's code made each trapped access, which module claimed, mapped,
//! unmapped and released which range, and which test was running.
//!
//! The guest side is guest/agent/mmiolab_agent.c, a kernel module with kprobes and a module
//! notifier. It reports through a paravirtual I/O-port device, [`AgentDevice`], which the
//! platform places at [`AGENT_PORT`] only with `--check`:
//!
//! | port | access | meaning |
//! |---|---|---|
//! | +0x0 | write 32 | low half of the record buffer's guest-physical address |
//! | +0x4 | write 32 | high half: registers the buffer |
//! | +0x8 | write 32 | a record of this many bytes is in the buffer |
//! | +0xc | read 32 | [`AGENT_MAGIC`] ("MLAG"): the host listens |
//!
//! Each record is one VM exit; the host reads it from guest memory during that exit (the
//! guest holds a lock around the buffer). The record, little-endian: `u16 kind, u16 len,
//! u32 space, u64 a, b, c, d`, then NUL-terminated strings ([`Record`]).
//!
//! On the vCPU side, in checker mode only ([`AgentHook`]): for each trapped access to a
//! device of the machine file, the vCPU's RIP (`KVM_GET_REGS`) names the module whose text
//! holds it; when the RIP is in the kernel's own text (an out-of-line accessor such as
//! `ioread32` or `memcpy_fromio`), the first 64 words of the guest stack are scanned for a
//! return address in a module (`KVM_TRANSLATE` and guest memory). The rules:
//!
//! - `unclaimed-access`: a module accessed a device range that no live claim of its own
//!   covers (never claimed, or released);
//! - `leaked-claim`: a module was unloaded holding a claim of a device range;
//! - `leaked-mapping`: a module was unloaded with a mapping of a device range.
//! - `devmem-poke`: user space (CPL 3: a `/dev/mem` mapping, `ioperm` port I/O) accessed a
//!   device range that a module holds a claim or a mapping of.
//!
//! Each change of the running test becomes `test` lines of the trace (the old test's end,
//! the new one's begin; crate::trace), written during the exit that reported it.
//!
//! Without `--check` none of this exists: no device at the port (the agent reads all ones
//! and stays idle), no hook on the vCPU loop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kvm_bindings::{kvm_regs, kvm_sregs, kvm_translation};
use mmiolab_devices::Space;
use mmiolab_regmodel::compile::Model;
use vm_device::DevicePio;
use vm_device::bus::{PioAddress, PioAddressOffset};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::check::{Allow, Finding, Rule};
use crate::config::MachineConfig;
use crate::platform::Platform;

/// The agent's first port (16 ports from here).
pub const AGENT_PORT: u16 = 0x5a0;
/// How many ports the agent device decodes.
pub const AGENT_PORTS: u16 = 16;
/// What the magic port reads when the host listens: "MLAG".
pub const AGENT_MAGIC: u32 = 0x4741_4c4d;
/// Largest record read from the guest.
const MAX_RECORD: usize = 256;
/// Header and numbers of a record, before the strings.
const RECORD_HEAD: usize = 40;
/// Guest stack words scanned for a module's return address.
const STACK_WORDS: u64 = 64;

/// The kind of a record (`enum agent_kind` in mmiolab_agent.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ModuleLoad = 1,
    ModuleLive = 2,
    ModuleGoing = 3,
    Claim = 4,
    Release = 5,
    Map = 6,
    Unmap = 7,
    Test = 8,
}

impl Kind {
    fn from_u16(v: u16) -> Option<Kind> {
        Some(match v {
            1 => Kind::ModuleLoad,
            2 => Kind::ModuleLive,
            3 => Kind::ModuleGoing,
            4 => Kind::Claim,
            5 => Kind::Release,
            6 => Kind::Map,
            7 => Kind::Unmap,
            8 => Kind::Test,
            _ => return None,
        })
    }
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    kind: Kind,
    space: Space,
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    /// The first string: the module (load, live, going), the owner (claims, mappings;
    /// empty: the kernel itself) or the test name.
    s1: String,
    /// The second: the claim's resource name.
    s2: String,
}

impl Record {
    /// Decodes `bytes` (the whole record, `len` bytes).
    fn parse(bytes: &[u8]) -> Option<Record> {
        let u16_at = |o: usize| bytes.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |o: usize| {
            bytes
                .get(o..o + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let u64_at = |o: usize| {
            bytes
                .get(o..o + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let kind = Kind::from_u16(u16_at(0)?)?;
        let space = if u32_at(4)? == 1 { Space::Pio } else { Space::Mmio };
        let mut strings = bytes.get(RECORD_HEAD..)?.split(|&b| b == 0);
        let mut text = || String::from_utf8_lossy(strings.next().unwrap_or_default()).into_owned();
        Some(Record {
            kind,
            space,
            a: u64_at(8)?,
            b: u64_at(16)?,
            c: u64_at(24)?,
            d: u64_at(32)?,
            s1: text(),
            s2: text(),
        })
    }
}

/// A device region of the machine file, as the agent's rules see it.
#[derive(Clone)]
struct DeviceRegion {
    space: Space,
    start: u64,
    /// Exclusive.
    end: u64,
    device: String,
    region: String,
    model: Option<Arc<Model>>,
    allow: Allow,
}

impl DeviceRegion {
    /// The register at `addr`, if the device is described and one is there.
    fn register_at(&self, addr: u64) -> Option<String> {
        let off = addr.checked_sub(self.start)?;
        let model = self.model.as_ref()?;
        model
            .registers
            .iter()
            .find(|r| r.offset <= off && off < r.offset + u64::from(r.width.max(1)))
            .map(|r| r.name.clone())
    }
}

/// A loaded module's text, as the agent reported it.
#[derive(Clone, Debug)]
struct ModuleText {
    name: String,
    core: (u64, u64),
    init: (u64, u64),
}

impl ModuleText {
    fn holds(&self, addr: u64) -> bool {
        let within = |(base, len): (u64, u64)| len > 0 && addr >= base && addr - base < len;
        within(self.core) || within(self.init)
    }
}

/// A live claim or mapping.
#[derive(Clone, Debug)]
struct Held {
    owner: String,
    space: Space,
    start: u64,
    size: u64,
    /// The mapping's virtual address (cookie for ports); 0 for a claim.
    virt: u64,
    /// Where the owner called from.
    caller: u64,
}

/// Where a finding of the agent's rules happened; counted together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    region: String,
    register: Option<String>,
    rule: Rule,
    space: &'static str,
    addr: u64,
    vcpu: Option<u32>,
    module: Option<String>,
    test: Option<String>,
}

#[derive(Default)]
struct State {
    modules: Vec<ModuleText>,
    claims: Vec<Held>,
    maps: Vec<Held>,
    test: Option<String>,
    /// Count and the RIP of the first.
    found: BTreeMap<Place, (u64, u64)>,
    records: u64,
    bad_records: u64,
}

/// Who made an access, as the agent's tables tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The module whose text holds the RIP or a return address on the stack; `None`: the
    /// kernel's own code or user space.
    pub module: Option<String>,
    /// The test running then.
    pub test: Option<String>,
    /// The guest RIP of the access.
    pub rip: u64,
    /// The access came from user space (CPL 3: a `/dev/mem` mapping, `ioperm` port I/O).
    pub user: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// The context of the access this vCPU thread is dispatching (checker mode, device
/// regions of the machine file only): the register checker adds it to its findings.
pub fn current_context() -> Option<Context> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The host's tables of what the guest agent reported, and the agent's findings.
#[derive(Default)]
pub struct Agent {
    regions: OnceLock<Vec<DeviceRegion>>,
    mem: OnceLock<GuestMemoryMmap>,
    state: Mutex<State>,
    /// The registered buffer's address, and the low half being written.
    buffer: Mutex<(u32, Option<u64>)>,
    /// Where each finding also goes as a trace line, when the run is traced.
    tracer: OnceLock<Arc<crate::trace::Tracer>>,
}

fn space_name(space: Space) -> &'static str {
    match space {
        Space::Mmio => "mmio",
        Space::Pio => "pio",
    }
}

impl Agent {
    /// An agent that knows nothing yet; [`Agent::set_machine`] and [`Agent::set_memory`]
    /// before the guest runs.
    pub fn new() -> Arc<Agent> {
        Arc::new(Agent::default())
    }

    /// The device regions of the machine file (described ones with their register map).
    pub fn set_machine(&self, config: &MachineConfig, platform: &Platform) {
        let mut regions = Vec::new();
        for dev in &config.devices {
            let region = crate::platform::node_name(dev);
            let allow = Allow::from_config(dev.check.as_ref());
            let model = platform
                .self_traced
                .iter()
                .find(|s| s.device == dev.name)
                .map(|s| s.model.clone());
            for (space, list) in [(Space::Mmio, &dev.mmio), (Space::Pio, &dev.pio)] {
                for r in list {
                    regions.push(DeviceRegion {
                        space,
                        start: r.base,
                        end: r.base.saturating_add(r.size),
                        device: dev.name.clone(),
                        region: region.clone(),
                        model: model.clone(),
                        allow: allow.clone(),
                    });
                }
            }
        }
        let _ = self.regions.set(regions);
    }

    /// The module holding a live claim of a range of `device` (the first, if several).
    pub fn claimant_of(&self, device: &str) -> Option<String> {
        let s = self.state();
        let regions = self.regions.get()?;
        s.claims
            .iter()
            .find(|c| {
                regions.iter().any(|r| {
                    r.device == device
                        && r.space == c.space
                        && c.start < r.end
                        && r.start < c.start.saturating_add(c.size)
                })
            })
            .map(|c| c.owner.clone())
            .filter(|owner| !owner.is_empty())
    }

    /// The guest test running now, as the agent last reported it.
    pub fn current_test(&self) -> Option<String> {
        self.state().test.clone()
    }

    /// Writes a trace line for each finding and test boundary from now on (the run is
    /// traced).
    pub fn set_tracer(&self, tracer: Arc<crate::trace::Tracer>) {
        let _ = self.tracer.set(tracer);
    }

    /// Counts a finding at `place` (first seen at guest address `rip`) and writes its trace
    /// line. Called with the state locked: the tracer never calls back into the agent.
    fn note(&self, found: &mut BTreeMap<Place, (u64, u64)>, place: Place, space: Space, allowed: bool, rip: u64) {
        if let Some(t) = self.tracer.get() {
            t.finding(&crate::trace::FindingLine {
                rule: place.rule.name(),
                device: &place.region,
                register: place.register.as_deref(),
                field: None,
                space,
                addr: place.addr,
                vcpu: place.vcpu,
                allowed,
            });
        }
        found.entry(place).or_insert((0, rip)).0 += 1;
    }

    /// Guest memory, where records are read from.
    pub fn set_memory(&self, mem: GuestMemoryMmap) {
        let _ = self.mem.set(mem);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn region_at(&self, space: Space, addr: u64) -> Option<&DeviceRegion> {
        self.regions
            .get()?
            .iter()
            .find(|r| r.space == space && addr >= r.start && addr < r.end)
    }

    fn regions_overlapping(&self, space: Space, start: u64, size: u64) -> Vec<&DeviceRegion> {
        let end = start.saturating_add(size.max(1));
        self.regions
            .get()
            .map(|all| {
                all.iter()
                    .filter(|r| r.space == space && start < r.end && r.start < end)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many records arrived, and how many could not be read.
    pub fn record_counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.records, s.bad_records)
    }

    /// A record of `len` bytes is in the guest's buffer.
    fn receive(&self, len: u32) {
        let buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner).1;
        let len = len as usize;
        let mut bytes = vec![0u8; len.min(MAX_RECORD)];
        let read = match (buffer, self.mem.get()) {
            (Some(gpa), Some(mem)) if (RECORD_HEAD..=MAX_RECORD).contains(&len) => {
                mem.read_slice(&mut bytes, GuestAddress(gpa)).is_ok()
            }
            _ => false,
        };
        match read.then(|| Record::parse(&bytes)).flatten() {
            Some(r) => self.apply(r),
            None => {
                self.state().bad_records += 1;
                log::warn!("mmiolab agent: unreadable record of {len} bytes (buffer {buffer:x?})");
            }
        }
    }

    fn apply(&self, r: Record) {
        log::debug!("mmiolab agent: {r:x?}");
        let mut s = self.state();
        s.records += 1;
        let owner = r.s1.clone();
        match r.kind {
            Kind::ModuleLoad => {
                s.modules.retain(|m| m.name != r.s1);
                s.modules.push(ModuleText {
                    name: r.s1,
                    core: (r.a, r.b),
                    init: (r.c, r.d),
                });
            }
            Kind::ModuleLive => {
                if let Some(m) = s.modules.iter_mut().find(|m| m.name == r.s1) {
                    m.init = (0, 0);
                }
            }
            Kind::ModuleGoing => {
                s.modules.retain(|m| m.name != r.s1);
                let (leaked_claims, claims): (Vec<Held>, Vec<Held>) =
                    std::mem::take(&mut s.claims).into_iter().partition(|c| c.owner == r.s1);
                s.claims = claims;
                let (leaked_maps, maps): (Vec<Held>, Vec<Held>) =
                    std::mem::take(&mut s.maps).into_iter().partition(|m| m.owner == r.s1);
                s.maps = maps;
                let test = s.test.clone();
                for (rule, list) in [(Rule::LeakedClaim, leaked_claims), (Rule::LeakedMapping, leaked_maps)] {
                    for h in list {
                        for region in self.regions_overlapping(h.space, h.start, h.size) {
                            let place = Place {
                                region: region.region.clone(),
                                register: None,
                                rule,
                                space: space_name(h.space),
                                addr: h.start.max(region.start),
                                vcpu: crate::trace::current_vcpu(),
                                module: Some(r.s1.clone()),
                                test: test.clone(),
                            };
                            let allowed = region.allow.allows(rule, test.as_deref());
                            self.note(&mut s.found, place, h.space, allowed, h.caller);
                        }
                    }
                }
            }
            Kind::Claim => s.claims.push(Held {
                owner,
                space: r.space,
                start: r.a,
                size: r.b,
                virt: 0,
                caller: r.d,
            }),
            Kind::Release => {
                let same = |c: &Held| c.space == r.space && c.start == r.a && c.size == r.b;
                let at = s
                    .claims
                    .iter()
                    .position(|c| same(c) && c.owner == owner)
                    .or_else(|| s.claims.iter().position(same));
                if let Some(i) = at {
                    s.claims.remove(i);
                }
            }
            Kind::Map => s.maps.push(Held {
                owner,
                space: r.space,
                start: r.a,
                size: r.b,
                virt: r.c,
                caller: r.d,
            }),
            Kind::Unmap => {
                let at = s
                    .maps
                    .iter()
                    .position(|m| m.space == r.space && m.virt == r.c)
                    .or_else(|| {
                        s.maps
                            .iter()
                            .position(|m| m.space == r.space && r.c >= m.virt && r.c - m.virt < m.size)
                    });
                if let Some(i) = at {
                    s.maps.remove(i);
                }
            }
            Kind::Test => {
                let next = (!r.s1.is_empty()).then_some(r.s1);
                if next != s.test
                    && let Some(t) = self.tracer.get()
                {
                    if let Some(old) = &s.test {
                        t.test_boundary(old, false);
                    }
                    if let Some(new) = &next {
                        t.test_boundary(new, true);
                    }
                }
                s.test = next;
            }
        }
    }

    /// The module whose text holds `addr`.
    fn module_at(&self, addr: u64) -> Option<String> {
        self.state()
            .modules
            .iter()
            .find(|m| m.holds(addr))
            .map(|m| m.name.clone())
    }

    /// Judges one access by `ctx` to `addr` (`len` bytes) in `region`: a module's access
    /// needs a claim of its own (`unclaimed-access`); a user-space one must not reach a
    /// range that a module claimed or mapped (`devmem-poke`). The kernel's own code is not
    /// judged.
    fn judge(&self, region: &DeviceRegion, ctx: &Context, space: Space, addr: u64, len: u64) {
        let mut s = self.state();
        let end = addr.saturating_add(len.max(1));
        let covers = |h: &Held| h.space == space && h.start <= addr && end <= h.start.saturating_add(h.size);
        let overlaps = |h: &Held| h.space == space && h.start < end && addr < h.start.saturating_add(h.size);
        let rule = match &ctx.module {
            Some(module) if s.claims.iter().any(|c| &c.owner == module && covers(c)) => return,
            Some(_) => Rule::UnclaimedAccess,
            None if ctx.user
                && s.claims
                    .iter()
                    .chain(&s.maps)
                    .any(|h| !h.owner.is_empty() && overlaps(h)) =>
            {
                Rule::DevmemPoke
            }
            None => return,
        };
        let place = Place {
            region: region.region.clone(),
            register: region.register_at(addr),
            rule,
            space: space_name(space),
            addr,
            vcpu: crate::trace::current_vcpu(),
            module: ctx.module.clone(),
            test: ctx.test.clone(),
        };
        let allowed = region.allow.allows(rule, ctx.test.as_deref());
        self.note(&mut s.found, place, space, allowed, ctx.rip);
    }

    /// The findings of the agent's rules, sorted.
    pub fn findings(&self) -> Vec<Finding> {
        let s = self.state();
        s.found
            .iter()
            .map(|(p, &(count, rip))| {
                let region = self
                    .regions
                    .get()
                    .and_then(|all| all.iter().find(|r| r.region == p.region));
                Finding {
                    rule: p.rule,
                    device: region.map_or_else(|| p.region.clone(), |r| r.device.clone()),
                    region: p.region.clone(),
                    register: p.register.clone(),
                    field: None,
                    space: p.space,
                    addr: p.addr,
                    vcpu: p.vcpu,
                    count,
                    allowed: region.is_some_and(|r| r.allow.allows(p.rule, p.test.as_deref())),
                    module: p.module.clone(),
                    test: p.test.clone(),
                    rip: Some(rip),
                }
            })
            .collect()
    }
}

/// The paravirtual port device the guest agent writes its records to.
pub struct AgentDevice {
    agent: Arc<Agent>,
}

impl AgentDevice {
    /// The device of `agent`.
    pub fn new(agent: Arc<Agent>) -> AgentDevice {
        AgentDevice { agent }
    }
}

impl DevicePio for AgentDevice {
    fn pio_read(&self, _base: PioAddress, offset: PioAddressOffset, data: &mut [u8]) {
        let magic = AGENT_MAGIC.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            let at = (offset as usize + i).checked_sub(0xc);
            *b = at.and_then(|k| magic.get(k)).copied().unwrap_or(0xff);
        }
    }

    fn pio_write(&self, _base: PioAddress, offset: PioAddressOffset, data: &[u8]) {
        let mut word = [0u8; 4];
        for (w, d) in word.iter_mut().zip(data) {
            *w = *d;
        }
        let value = u32::from_le_bytes(word);
        match offset {
            0x0 => self.agent.buffer.lock().unwrap_or_else(PoisonError::into_inner).0 = value,
            0x4 => {
                let mut b = self.agent.buffer.lock().unwrap_or_else(PoisonError::into_inner);
                b.1 = Some(u64::from(value) << 32 | u64::from(b.0));
                log::info!("mmiolab agent: the guest agent's buffer is at {:#x}", b.1.unwrap_or(0));
            }
            0x8 => self.agent.receive(value),
            _ => {}
        }
    }
}

/// The vCPU side in checker mode: reads the vCPU's registers and stack to attribute each
/// access to a device of the machine file, and judges it.
pub struct AgentHook {
    agent: Arc<Agent>,
    fd: RawFd,
    mem: GuestMemoryMmap,
}

struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The vCPU ioctls the hook makes (numbers as in linux/kvm.h).
#[allow(missing_docs)]
mod ioctls {
    use kvm_bindings::{kvm_regs, kvm_sregs, kvm_translation};
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_REGS, 0xae, 0x81, kvm_regs);
    vmm_sys_util::ioctl_ior_nr!(KVM_GET_SREGS, 0xae, 0x83, kvm_sregs);
    vmm_sys_util::ioctl_iowr_nr!(KVM_TRANSLATE, 0xae, 0x85, kvm_translation);
}
use ioctls::{KVM_GET_REGS, KVM_GET_SREGS, KVM_TRANSLATE};

/// Where the kernel's half of the address space starts (x86_64, 4- and 5-level paging).
const KERNEL_HALF: u64 = 0xff00_0000_0000_0000;

impl AgentHook {
    /// The hook of the vCPU whose fd is `fd` (it must outlive the hook).
    pub fn new(agent: Arc<Agent>, fd: RawFd, mem: GuestMemoryMmap) -> AgentHook {
        AgentHook { agent, fd, mem }
    }

    fn regs(&self) -> Option<kvm_regs> {
        let mut regs = kvm_regs::default();
        // SAFETY: KVM_GET_REGS fills a kvm_regs; the fd is the vCPU's, alive while the hook is.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ref(&Fd(self.fd), KVM_GET_REGS(), &mut regs) };
        (ret == 0).then_some(regs)
    }

    /// Whether the vCPU runs at privilege level 3 (user space).
    fn in_user_mode(&self) -> bool {
        let mut sregs = kvm_sregs::default();
        // SAFETY: KVM_GET_SREGS fills a kvm_sregs; the fd is the vCPU's, alive while the hook is.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ref(&Fd(self.fd), KVM_GET_SREGS(), &mut sregs) };
        ret == 0 && sregs.cs.dpl == 3
    }

    fn translate(&self, gva: u64) -> Option<u64> {
        let mut t = kvm_translation {
            linear_address: gva,
            ..Default::default()
        };
        // SAFETY: KVM_TRANSLATE reads and fills a kvm_translation; the fd is the vCPU's.
        let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ref(&Fd(self.fd), KVM_TRANSLATE(), &mut t) };
        (ret == 0 && t.valid != 0).then_some(t.physical_address)
    }

    /// The first module return address among the words at `rsp` and up.
    fn module_on_stack(&self, rsp: u64) -> Option<String> {
        let mut at = rsp & !7;
        let end = at.saturating_add(STACK_WORDS * 8);
        while at < end {
            let page_end = (at | 0xfff).saturating_add(1).min(end);
            let gpa = self.translate(at)?;
            let mut bytes = vec![0u8; (page_end - at) as usize];
            self.mem.read_slice(&mut bytes, GuestAddress(gpa)).ok()?;
            for w in bytes.chunks_exact(8) {
                let word = u64::from_le_bytes(w.try_into().unwrap_or_default());
                if word >= KERNEL_HALF
                    && let Some(m) = self.agent.module_at(word)
                {
                    return Some(m);
                }
            }
            at = page_end;
        }
        None
    }

    /// Runs `dispatch` (the bus access) with the access's context set for the register
    /// checker, then judges the access by the agent's rules. Accesses outside the machine
    /// file's devices are dispatched with nothing else done. Out of line and cold: the
    /// vCPU loop without the checker keeps its code as it was.
    #[inline(never)]
    #[cold]
    pub fn around(&self, space: Space, addr: u64, len: usize, dispatch: impl FnOnce()) {
        let Some(region) = self.agent.region_at(space, addr) else {
            return dispatch();
        };
        let Some(regs) = self.regs() else {
            return dispatch();
        };
        // A module's text holds the RIP; or, in the kernel's half (an out-of-line accessor
        // of the kernel), a return address on the stack; user space: no module.
        let module = self.agent.module_at(regs.rip).or_else(|| {
            (regs.rip >= KERNEL_HALF)
                .then(|| self.module_on_stack(regs.rsp))
                .flatten()
        });
        // Only an access that no module made can be user space's: the second ioctl is made
        // for those alone.
        let user = module.is_none() && regs.rip < KERNEL_HALF && self.in_user_mode();
        let ctx = Context {
            module,
            test: self.agent.state().test.clone(),
            rip: regs.rip,
            user,
        };
        CURRENT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
        dispatch();
        CURRENT.with(|c| *c.borrow_mut() = None);
        self.agent.judge(region, &ctx, space, addr, len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: Kind, space: u32, nums: [u64; 4], s1: &str, s2: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(kind as u16).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&space.to_le_bytes());
        for n in nums {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(s1.as_bytes());
        v.push(0);
        v.extend_from_slice(s2.as_bytes());
        v.push(0);
        let len = v.len() as u16;
        v[2..4].copy_from_slice(&len.to_le_bytes());
        v
    }

    fn agent() -> Arc<Agent> {
        let a = Agent::new();
        let _ = a.regions.set(vec![DeviceRegion {
            space: Space::Mmio,
            start: 0xd000_0000,
            end: 0xd000_1000,
            device: "dev".to_owned(),
            region: "dev@d0000000".to_owned(),
            model: None,
            allow: Allow::from_config(Some(&crate::config::DeviceCheckConfig {
                allow_in: [("t2".to_owned(), vec!["unclaimed-access".to_owned()])].into(),
                ..Default::default()
            })),
        }]);
        a
    }

    fn send(a: &Agent, kind: Kind, space: u32, nums: [u64; 4], s1: &str, s2: &str) {
        a.apply(Record::parse(&record(kind, space, nums, s1, s2)).unwrap());
    }

    const CORE: u64 = 0xffff_ffff_c000_0000;

    #[test]
    fn records_parse() {
        let r = Record::parse(&record(Kind::Claim, 1, [0x378, 8, 0, 5], "short", "short")).unwrap();
        assert_eq!(r.kind, Kind::Claim);
        assert_eq!(r.space, Space::Pio);
        assert_eq!((r.a, r.b, r.d), (0x378, 8, 5));
        assert_eq!((r.s1.as_str(), r.s2.as_str()), ("short", "short"));
        assert!(Record::parse(&[9, 0, 0, 0]).is_none());
    }

    #[test]
    fn an_access_without_a_claim_of_its_module_is_a_finding() {
        let a = agent();
        send(&a, Kind::ModuleLoad, 0, [CORE, 0x1000, 0, 0], "m", "");
        send(&a, Kind::Test, 0, [0; 4], "t1", "");
        let region = a.region_at(Space::Mmio, 0xd000_0004).unwrap().clone();
        let ctx = Context {
            module: a.module_at(CORE + 0x10),
            test: Some("t1".to_owned()),
            rip: CORE + 0x10,
            user: false,
        };
        assert_eq!(ctx.module.as_deref(), Some("m"));
        a.judge(&region, &ctx, Space::Mmio, 0xd000_0004, 4);
        // another module's claim does not count; its own does
        send(&a, Kind::Claim, 0, [0xd000_0000, 0x1000, 0, 0], "other", "x");
        a.judge(&region, &ctx, Space::Mmio, 0xd000_0004, 4);
        send(&a, Kind::Claim, 0, [0xd000_0000, 0x1000, 0, 0], "m", "x");
        a.judge(&region, &ctx, Space::Mmio, 0xd000_0004, 4);
        let f = a.findings();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, Rule::UnclaimedAccess);
        assert_eq!(f[0].count, 2);
        assert_eq!(f[0].module.as_deref(), Some("m"));
        assert_eq!(f[0].test.as_deref(), Some("t1"));
        assert_eq!(f[0].rip, Some(CORE + 0x10));
        // released: a finding again
        send(&a, Kind::Release, 0, [0xd000_0000, 0x1000, 0, 0], "m", "");
        a.judge(&region, &ctx, Space::Mmio, 0xd000_0004, 4);
        assert_eq!(a.findings()[0].count, 3);
        assert!(!a.findings()[0].allowed, "allowed in test t2 only");
        let in_t2 = Context {
            test: Some("t2".to_owned()),
            ..ctx
        };
        a.judge(&region, &in_t2, Space::Mmio, 0xd000_0004, 4);
        let f = a.findings();
        assert_eq!(
            f.iter().map(|f| (f.test.as_deref(), f.allowed)).collect::<Vec<_>>(),
            [(Some("t1"), false), (Some("t2"), true)]
        );
    }

    #[test]
    fn a_user_space_access_to_a_range_a_module_holds_is_a_devmem_poke() {
        let a = agent();
        let region = a.region_at(Space::Mmio, 0xd000_0000).unwrap().clone();
        let user = Context {
            module: None,
            test: Some("poke".to_owned()),
            rip: 0x40_1000,
            user: true,
        };
        // Nobody holds the range: a user-space driver of its own (the devmem test).
        a.judge(&region, &user, Space::Mmio, 0xd000_0008, 4);
        assert!(a.findings().is_empty());
        // A module's mapping (even without a claim) or claim of it: a finding; the kernel's
        // own code (no module, not user space) is never judged.
        send(&a, Kind::Map, 0, [0xd000_0000, 0x10, 0xffff_c900_0000_0000, 0], "m", "");
        a.judge(&region, &user, Space::Mmio, 0xd000_0008, 4);
        a.judge(&region, &user, Space::Mmio, 0xd000_0010, 4);
        let kernel = Context {
            user: false,
            ..user.clone()
        };
        a.judge(&region, &kernel, Space::Mmio, 0xd000_0008, 4);
        send(&a, Kind::Claim, 0, [0xd000_0800, 0x100, 0, 0], "n", "x");
        assert_eq!(a.claimant_of("dev").as_deref(), Some("n"));
        assert_eq!(a.claimant_of("other"), None);
        a.judge(&region, &user, Space::Mmio, 0xd000_0804, 1);
        let f: Vec<_> = a
            .findings()
            .iter()
            .map(|f| (f.rule, f.addr, f.module.clone(), f.test.clone(), f.count))
            .collect();
        assert_eq!(
            f,
            [
                (Rule::DevmemPoke, 0xd000_0008, None, Some("poke".to_owned()), 1),
                (Rule::DevmemPoke, 0xd000_0804, None, Some("poke".to_owned()), 1),
            ]
        );
    }

    #[test]
    fn unload_reports_what_the_module_still_holds() {
        let a = agent();
        send(&a, Kind::ModuleLoad, 0, [CORE, 0x1000, 0, 0], "m", "");
        send(&a, Kind::Claim, 0, [0xd000_0000, 0x100, 0, CORE + 1], "m", "x");
        send(
            &a,
            Kind::Claim,
            0,
            [0x1000_0000, 0x100, 0, CORE + 1],
            "m",
            "not a device",
        );
        send(
            &a,
            Kind::Map,
            0,
            [0xd000_0000, 0x100, 0xffff_c900_0000_0000, CORE + 2],
            "m",
            "",
        );
        send(
            &a,
            Kind::Map,
            0,
            [0xd000_0000, 0x100, 0xffff_c900_0001_0000, CORE + 2],
            "m",
            "",
        );
        send(&a, Kind::Unmap, 0, [0, 0, 0xffff_c900_0001_0000, 0], "m", "");
        send(&a, Kind::ModuleGoing, 0, [0; 4], "m", "");
        let rules: Vec<_> = a.findings().iter().map(|f| (f.rule, f.addr, f.rip)).collect();
        assert_eq!(
            rules,
            vec![
                (Rule::LeakedClaim, 0xd000_0000, Some(CORE + 1)),
                (Rule::LeakedMapping, 0xd000_0000, Some(CORE + 2))
            ]
        );
        assert!(a.module_at(CORE).is_none());
    }

    #[test]
    fn the_port_reads_the_magic() {
        let d = AgentDevice::new(Agent::new());
        let mut b = [0u8; 4];
        d.pio_read(PioAddress(AGENT_PORT), 0xc, &mut b);
        assert_eq!(u32::from_le_bytes(b), AGENT_MAGIC);
        d.pio_read(PioAddress(AGENT_PORT), 0x0, &mut b);
        assert_eq!(b, [0xff; 4]);
    }
}
