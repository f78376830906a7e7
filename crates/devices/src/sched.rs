//! Deferred work: device effects that happen some time after the access that caused them.
//!
//! A device registers itself as a [`Deferred`] client once, then [`Scheduler::schedule`]s a
//! deadline (in ns of the machine's [`Clock`]) whenever an access starts something that ends
//! later. The VMM's event loop polls [`Scheduler::timer_fd`] and calls
//! [`Scheduler::run_due`], which calls each client whose deadline has passed with the
//! current time; the client then applies whatever of its own pending effects are due. The
//! scheduler only knows *when* to call, never *what*: a client may be called early (a
//! duplicate or stale deadline) and must ignore what is not due yet.
//!
//! Locking: `schedule` is called by devices with their own lock held and takes the heap
//! lock inside it (order: device, then heap). `run_due` therefore never calls a client while
//! holding the heap lock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use vmm_sys_util::timerfd::TimerFd;

/// A source of "now", in ns from an arbitrary start.
pub trait Clock: Send + Sync {
    /// Now. Never goes backwards.
    fn now_ns(&self) -> u64;
}

/// The host's monotonic clock, in ns since this clock was created.
#[derive(Debug)]
pub struct MonotonicClock {
    /// `CLOCK_MONOTONIC` (the clock of `std::time::Instant`) when the clock read 0, in ns,
    /// modulo 2^64 (a resumed clock may have started before the host did).
    start: AtomicU64,
}

/// `CLOCK_MONOTONIC` in ns: read directly, as `Instant::now` reads it, but without the
/// `Instant` and `Duration` arithmetic (about 60 instructions of the trace's per-line
/// cost).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `ts`, which lives across the call.
    // CLOCK_MONOTONIC is always available on Linux; on failure `ts` stays 0.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    // 584 years of uptime before this saturates.
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

impl MonotonicClock {
    /// A clock that reads 0 now.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            start: AtomicU64::new(monotonic_ns()),
        }
    }

    /// Moves the clock forward to read `now_ns` (a restored snapshot's time, so that the
    /// machine's time and its devices' deadlines go on from where they were saved). Never
    /// moves it back; call before the guest runs.
    pub fn resume_at(&self, now_ns: u64) {
        let host = monotonic_ns();
        if now_ns > self.now_ns() {
            // Wrapping: after a host reboot the saved time may exceed the host's uptime.
            self.start.store(host.wrapping_sub(now_ns), Ordering::Release);
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        monotonic_ns().wrapping_sub(self.start.load(Ordering::Acquire))
    }
}

/// A clock that moves only when told to: tests use it so that nothing depends on how fast
/// the host runs.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now_ns`.
    pub fn new(now_ns: u64) -> ManualClock {
        ManualClock {
            now: AtomicU64::new(now_ns),
        }
    }

    /// Sets the time.
    pub fn set(&self, now_ns: u64) {
        self.now.store(now_ns, Ordering::Release);
    }

    /// Moves the time forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }
}

/// Something that has work to do at deadlines it schedules.
pub trait Deferred: Send + Sync {
    /// A deadline this client scheduled has passed; `now_ns` is the current time. Run what
    /// is due (and ignore the call if nothing is: deadlines may be duplicated or stale).
    fn run_due(&self, now_ns: u64);
}

/// A client's handle, returned by [`Scheduler::register`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(u32);

/// The deadlines of all clients, and a timerfd armed for the earliest one.
pub struct Scheduler {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

struct State {
    /// (deadline, client), earliest first.
    heap: BinaryHeap<Reverse<(u64, ClientId)>>,
    /// By `ClientId`. Weak, so that the scheduler does not keep a dropped device alive.
    clients: Vec<Weak<dyn Deferred>>,
    timer: TimerFd,
    /// The deadline the timer is armed for, if any.
    armed: Option<u64>,
    /// `run_due`'s list of clients to call, kept to reuse its allocation.
    spare: Vec<Arc<dyn Deferred>>,
}

/// Deadlines a device can have pending before `schedule` allocates on the access path.
const INITIAL_CAPACITY: usize = 256;

impl Scheduler {
    /// A scheduler reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> std::io::Result<Scheduler> {
        Ok(Scheduler {
            clock,
            state: Mutex::new(State {
                heap: BinaryHeap::with_capacity(INITIAL_CAPACITY),
                clients: Vec::new(),
                timer: TimerFd::new()?,
                armed: None,
                spare: Vec::new(),
            }),
        })
    }

    /// The machine's clock (deadlines are in its ns).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The machine's time now, in ns.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Adds a client. It is called as long as it is alive; once dropped, its deadlines are
    /// discarded.
    pub fn register(&self, client: Weak<dyn Deferred>) -> ClientId {
        let mut st = crate::lock(&self.state);
        let id = ClientId(u32::try_from(st.clients.len()).unwrap_or(u32::MAX));
        st.clients.push(client);
        id
    }

    /// Asks for `client` to be called once the clock reaches `deadline_ns`. May be called
    /// with the client's own lock held (see the module doc for the lock order).
    pub fn schedule(&self, client: ClientId, deadline_ns: u64) {
        let mut st = crate::lock(&self.state);
        if st.clients.get(client.0 as usize).is_none() {
            log::debug!("scheduler: unknown client {client:?}");
            return;
        }
        st.heap.push(Reverse((deadline_ns, client)));
        if st.armed.is_none_or(|armed| deadline_ns < armed) {
            st.arm(Some(deadline_ns), self.clock.now_ns());
        }
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        crate::lock(&self.state).heap.peek().map(|Reverse((d, _))| *d)
    }

    /// Calls every client with a deadline at or before now (once each, however many of its
    /// deadlines passed), then leaves the timer armed for the next deadline. For the VMM
    /// thread, when [`Scheduler::timer_fd`] is readable; calling it early is harmless.
    pub fn run_due(&self) {
        let now = self.clock.now_ns();
        let mut due = {
            let mut st = crate::lock(&self.state);
            let mut due = std::mem::take(&mut st.spare);
            while let Some(&Reverse((deadline, id))) = st.heap.peek() {
                if deadline > now {
                    break;
                }
                st.heap.pop();
                let client = st.clients.get(id.0 as usize).and_then(Weak::upgrade);
                if let Some(c) = client
                    && !due.iter().any(|d| Arc::ptr_eq(d, &c))
                {
                    due.push(c);
                }
            }
            let next = st.heap.peek().map(|Reverse((d, _))| *d);
            // Re-arming (or disarming) also drains the timerfd: timerfd_settime zeroes its
            // expiration count. Reading it instead would block when nothing expired.
            st.arm(next, now);
            due
        };
        for client in &due {
            client.run_due(now);
        }
        due.clear();
        crate::lock(&self.state).spare = due;
    }

    /// Readable when the earliest deadline has passed (poll it with epoll).
    pub fn timer_fd(&self) -> std::os::fd::RawFd {
        crate::lock(&self.state).timer.as_raw_fd()
    }
}

impl State {
    /// Arms the timer for `deadline` (disarms it for `None`); `now` is the clock's time.
    fn arm(&mut self, deadline: Option<u64>, now: u64) {
        let result = match deadline {
            // A zero duration would disarm the timer: fire an already-passed deadline after
            // 1 ns instead.
            Some(d) => self
                .timer
                .reset(Duration::from_nanos(d.saturating_sub(now).max(1)), None),
            None => self.timer.clear(),
        };
        match result {
            Ok(()) => self.armed = deadline,
            Err(e) => {
                // Only bad arguments make timerfd_settime fail; leave `armed` unset so the
                // next schedule() tries again.
                self.armed = None;
                log::error!("scheduler: cannot arm the timer: {e}");
            }
        }
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("next_deadline", &self.next_deadline())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the times it was called at; schedules a follow-up when told to.
    struct Probe {
        calls: Mutex<Vec<u64>>,
        follow_up: Mutex<Option<(Arc<Scheduler>, ClientId, u64)>>,
    }

    impl Probe {
        fn new() -> Arc<Probe> {
            Arc::new(Probe {
                calls: Mutex::new(Vec::new()),
                follow_up: Mutex::new(None),
            })
        }

        fn calls(&self) -> Vec<u64> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Deferred for Probe {
        fn run_due(&self, now_ns: u64) {
            self.calls.lock().unwrap().push(now_ns);
            // Scheduling from inside run_due must not deadlock (the heap lock is free).
            if let Some((s, id, at)) = self.follow_up.lock().unwrap().take() {
                s.schedule(id, at);
            }
        }
    }

    fn setup() -> (Arc<ManualClock>, Arc<Scheduler>) {
        let clock = Arc::new(ManualClock::new(1000));
        let s = Arc::new(Scheduler::new(clock.clone()).unwrap());
        (clock, s)
    }

    fn register(s: &Scheduler, p: &Arc<Probe>) -> ClientId {
        let weak: Weak<Probe> = Arc::downgrade(p);
        s.register(weak)
    }

    #[test]
    fn clients_run_when_their_deadline_passes_in_order() {
        let (clock, s) = setup();
        let (a, b) = (Probe::new(), Probe::new());
        let (ia, ib) = (register(&s, &a), register(&s, &b));
        s.schedule(ia, 1500);
        s.schedule(ib, 1200);
        assert_eq!(s.next_deadline(), Some(1200));
        s.run_due();
        assert!(a.calls().is_empty() && b.calls().is_empty(), "nothing due at 1000");
        clock.set(1200);
        s.run_due();
        assert_eq!((a.calls(), b.calls()), (vec![], vec![1200]));
        assert_eq!(s.next_deadline(), Some(1500));
        clock.advance(1000);
        s.run_due();
        assert_eq!(a.calls(), vec![2200]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn duplicate_deadlines_call_a_client_once_per_run() {
        let (clock, s) = setup();
        let a = Probe::new();
        let id = register(&s, &a);
        for at in [1100, 1100, 1050, 5000] {
            s.schedule(id, at);
        }
        clock.set(2000);
        s.run_due();
        assert_eq!(a.calls(), vec![2000]);
        assert_eq!(s.next_deadline(), Some(5000));
    }

    #[test]
    fn a_client_may_schedule_from_run_due() {
        let (clock, s) = setup();
        let a = Probe::new();
        let id = register(&s, &a);
        *a.follow_up.lock().unwrap() = Some((s.clone(), id, 3000));
        s.schedule(id, 1000);
        s.run_due();
        assert_eq!(a.calls(), vec![1000]);
        assert_eq!(s.next_deadline(), Some(3000));
        clock.set(3000);
        s.run_due();
        assert_eq!(a.calls(), vec![1000, 3000]);
    }

    #[test]
    fn dropped_clients_and_unknown_ids_are_ignored() {
        let (clock, s) = setup();
        let a = Probe::new();
        let id = register(&s, &a);
        s.schedule(id, 1100);
        s.schedule(ClientId(7), 1100);
        assert_eq!(s.next_deadline(), Some(1100));
        drop(a);
        clock.set(1200);
        s.run_due();
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn the_timer_is_armed_for_the_earliest_deadline() {
        let (_clock, s) = setup();
        let a = Probe::new();
        let id = register(&s, &a);
        let armed = |s: &Scheduler| crate::lock(&s.state).armed;
        assert_eq!(armed(&s), None);
        s.schedule(id, 1_000_000_000_000);
        s.schedule(id, 2_000_000_000_000);
        assert_eq!(armed(&s), Some(1_000_000_000_000));
        s.schedule(id, 500_000_000_000);
        assert_eq!(armed(&s), Some(500_000_000_000));
        assert!(crate::lock(&s.state).timer.is_armed().unwrap());
    }
}
