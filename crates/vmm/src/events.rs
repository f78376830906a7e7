//! The VMM thread's event loop (event-manager): host stdin into COM1, the stop event, the
//! scheduler's timer (deferred device work), the `--timeout` timer, the stop signals, and
//! the hang-up of the pipes mmiolab writes to.
//!
//! Every source is an fd, so the loop sleeps in epoll until one is ready; there is no
//! polling interval.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use mmiolab_devices::{OutputFailure, Scheduler, Serial, StopReason, VmControl};
use mmiolab_regmodel::DescribedDevice;

use crate::platform::{HostInput, HostSource};
use crate::signals::StopSignals;
use vmm_sys_util::timerfd::TimerFd;

/// Where subscribers report that they could not add their fd (`init` cannot return an
/// error); the loop refuses to start if any did, since a source it would never see could
/// leave it waiting forever.
#[derive(Clone, Default)]
pub struct InitFailures(Arc<Mutex<Vec<String>>>);

impl InitFailures {
    fn report(&self, what: &str, e: event_manager::Error) {
        self.push(format!("cannot watch {what}: {e:?}"));
    }

    fn push(&self, failure: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(failure);
    }

    /// The failures so far, joined; `None` if there were none.
    pub fn take(&self) -> Option<String> {
        let failures = std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        (!failures.is_empty()).then(|| failures.join("; "))
    }
}

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

/// Feeds a host source (stdin or a Unix socket) into a FIFO of a described device.
pub struct HostFeed {
    device: Arc<DescribedDevice>,
    fifo: usize,
    name: String,
    socket: Option<UnixStream>,
}

impl HostFeed {
    /// Reads `input`'s source into its FIFO (a socket is duplicated for the loop).
    pub fn new(input: &HostInput) -> std::io::Result<Self> {
        let socket = match &input.source {
            HostSource::Stdin => None,
            HostSource::Unix(s) => Some(s.try_clone()?),
        };
        Ok(HostFeed {
            device: input.device.clone(),
            fifo: input.fifo,
            name: input.name.clone(),
            socket,
        })
    }

    fn fd(&self) -> RawFd {
        self.socket
            .as_ref()
            .map_or_else(|| std::io::stdin().as_raw_fd(), AsRawFd::as_raw_fd)
    }
}

impl MutEventSubscriber for HostFeed {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new_raw(self.fd(), EventSet::IN)) {
            // epoll refuses regular files and /dev/null: then there is no input.
            log::warn!(
                "FIFO {}: its input cannot be watched ({e:?}); it gets no data",
                self.name
            );
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 4096];
        let read = match &mut self.socket {
            Some(s) => s.read(&mut buf),
            None => std::io::stdin().lock().read(&mut buf),
        };
        let n = match read {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                return;
            }
            Err(e) => {
                log::warn!("FIFO {}: reading its input failed: {e}", self.name);
                0
            }
        };
        if n == 0 || events.event_set().contains(EventSet::HANG_UP) {
            // End of input: stop polling, or epoll would report it forever.
            let _ = ops.remove(Events::new_raw(self.fd(), EventSet::IN));
        }
        self.device.feed_fifo(self.fifo, buf.get(..n).unwrap_or_default());
    }
}

/// Reports the resamples (EOIs) of one level interrupt line to the register checker
/// (`irq-stuck`): the resample eventfd of a KVM irqfd registered with
/// `KVM_IRQFD_FLAG_RESAMPLE` only for that (its trigger eventfd is never written: the line's
/// level still goes through KVM_IRQ_LINE). Exists only with `--check`.
pub struct Resamples {
    /// Kept open for as long as the irqfd exists.
    _trigger: vmm_sys_util::eventfd::EventFd,
    resample: vmm_sys_util::eventfd::EventFd,
    gsi: u32,
    checker: Arc<crate::check::Checker>,
}

impl Resamples {
    /// Watches `resample` for line `gsi`.
    pub fn new(
        trigger: vmm_sys_util::eventfd::EventFd,
        resample: vmm_sys_util::eventfd::EventFd,
        gsi: u32,
        checker: Arc<crate::check::Checker>,
    ) -> Self {
        Resamples {
            _trigger: trigger,
            resample,
            gsi,
            checker,
        }
    }
}

impl MutEventSubscriber for Resamples {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.resample, EventSet::IN)) {
            log::warn!(
                "GSI {}: its resamples cannot be watched ({e:?}); no irq-stuck check",
                self.gsi
            );
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // The counter holds every resample since the last read.
        if let Ok(n) = self.resample.read() {
            self.checker.resampled(self.gsi, n);
        }
    }
}

/// Wakes the loop when a stop is requested.
pub struct StopWatch {
    control: Arc<VmControl>,
    failures: InitFailures,
}

impl StopWatch {
    /// Watches `control`'s stop event.
    pub fn new(control: Arc<VmControl>, failures: InitFailures) -> Self {
        StopWatch { control, failures }
    }
}

impl MutEventSubscriber for StopWatch {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.control.event(), EventSet::IN)) {
            self.failures.report("the stop event", e);
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // The loop checks `is_stopping`; only drain the counter here.
        let _ = self.control.event().read();
    }
}

/// Runs deferred device work when the scheduler's timer fires.
pub struct DeferredWork {
    scheduler: Arc<Scheduler>,
    failures: InitFailures,
}

impl DeferredWork {
    /// Watches `scheduler`'s timer.
    pub fn new(scheduler: Arc<Scheduler>, failures: InitFailures) -> Self {
        DeferredWork { scheduler, failures }
    }
}

impl MutEventSubscriber for DeferredWork {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new_raw(self.scheduler.timer_fd(), EventSet::IN)) {
            self.failures.report("the scheduler's timer", e);
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // run_due re-arms the timer, which also clears its readiness.
        self.scheduler.run_due();
    }
}

/// Stops the VM, as a fault, when the `--timeout` passes.
pub struct Timeout {
    timer: TimerFd,
    after: Duration,
    control: Arc<VmControl>,
    failures: InitFailures,
}

impl Timeout {
    /// A timeout of `after`, counted from when the loop starts watching it.
    pub fn new(after: Duration, control: Arc<VmControl>, failures: InitFailures) -> std::io::Result<Self> {
        Ok(Timeout {
            timer: TimerFd::new()?,
            after,
            control,
            failures,
        })
    }
}

impl MutEventSubscriber for Timeout {
    fn init(&mut self, ops: &mut EventOps) {
        // A zero duration would disarm the timer.
        let armed = self.timer.reset(self.after.max(Duration::from_nanos(1)), None);
        if let Err(e) = armed {
            self.failures.push(format!("cannot arm the timeout: {e}"));
            return;
        }
        if let Err(e) = ops.add(Events::new(&self.timer, EventSet::IN)) {
            self.failures.report("the timeout", e);
        }
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        // One shot: the stop is requested once and the fd would stay readable.
        let _ = ops.remove(Events::new(&self.timer, EventSet::IN));
        self.control.request_stop(StopReason::Timeout(self.after));
    }
}

/// Stops the VM when SIGINT, SIGTERM or SIGHUP arrives (see [`crate::signals`]).
pub struct SignalWatch {
    signals: StopSignals,
    control: Arc<VmControl>,
    failures: InitFailures,
}

impl SignalWatch {
    /// Watches `signals`.
    pub fn new(signals: StopSignals, control: Arc<VmControl>, failures: InitFailures) -> Self {
        SignalWatch {
            signals,
            control,
            failures,
        }
    }
}

impl MutEventSubscriber for SignalWatch {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.signals, EventSet::IN)) {
            self.failures.report("the stop signals", e);
        }
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        match self.signals.take() {
            Ok(Some(signo)) => self.control.request_stop(StopReason::Signal(signo)),
            Ok(None) => {}
            Err(e) => {
                // A signalfd that cannot be read would stay readable: stop watching it.
                let _ = ops.remove(Events::new(&self.signals, EventSet::IN));
                self.control
                    .request_stop(StopReason::Fault(format!("reading the stop signals failed: {e}")));
            }
        }
    }
}

/// Stops the VM when the reader of mmiolab's standard output or error goes away (a pipe's
/// read end closed, a terminal hung up), even while nothing is being written: epoll
/// reports `EPOLLERR`/`EPOLLHUP` on such a descriptor without being asked.
pub struct OutputWatch {
    fd: RawFd,
    name: &'static str,
    control: Arc<VmControl>,
}

impl OutputWatch {
    /// Watches descriptor `fd`, called `name` in the report.
    pub fn new(fd: RawFd, name: &'static str, control: Arc<VmControl>) -> Self {
        OutputWatch { fd, name, control }
    }
}

impl MutEventSubscriber for OutputWatch {
    fn init(&mut self, ops: &mut EventOps) {
        // epoll refuses regular files and most devices (EPERM): they never hang up, and a
        // write to them reports its own failure.
        if let Err(e) = ops.add(Events::new_raw(self.fd, EventSet::empty())) {
            log::debug!("{} cannot be watched for a hang-up: {e:?}", self.name);
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.event_set().intersects(EventSet::ERROR | EventSet::HANG_UP) {
            // Reported once: the condition stays until the descriptor is closed.
            let _ = ops.remove(Events::new_raw(self.fd, EventSet::empty()));
            let e = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
            self.control
                .request_stop(StopReason::Output(OutputFailure::new(self.name, &e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_manager::{EventManager, SubscriberOps};
    use mmiolab_devices::{Deferred, ManualClock};

    type Loop = EventManager<Box<dyn MutEventSubscriber + Send>>;

    /// Waits for the next event (the bound only keeps a broken test from hanging).
    fn turn(events: &mut Loop) -> usize {
        events.run_with_timeout(10_000).unwrap()
    }

    #[derive(Default)]
    struct Calls(Mutex<Vec<u64>>);

    impl Deferred for Calls {
        fn run_due(&self, now_ns: u64) {
            self.0.lock().unwrap().push(now_ns);
        }
    }

    #[test]
    fn the_scheduler_timer_runs_due_work_and_then_goes_quiet() {
        let clock = Arc::new(ManualClock::new(500));
        let scheduler = Arc::new(Scheduler::new(clock.clone()).unwrap());
        let calls = Arc::new(Calls::default());
        let weak: std::sync::Weak<Calls> = Arc::downgrade(&calls);
        let id = scheduler.register(weak);
        let mut events = Loop::new().unwrap();
        let failures = InitFailures::default();
        events.add_subscriber(Box::new(DeferredWork::new(scheduler.clone(), failures.clone())));
        assert_eq!(failures.take(), None);
        // Already due on the machine's clock: the timer is armed to fire at once.
        scheduler.schedule(id, 400);
        assert_eq!(turn(&mut events), 1);
        assert_eq!(*calls.0.lock().unwrap(), vec![500]);
        assert_eq!(events.run_with_timeout(0).unwrap(), 0, "re-arming cleared the timer");
    }

    #[test]
    fn the_timeout_stops_the_vm_as_a_fault() {
        let control = Arc::new(VmControl::new().unwrap());
        let mut events = Loop::new().unwrap();
        let failures = InitFailures::default();
        let timeout = Timeout::new(Duration::from_nanos(1), control.clone(), failures.clone()).unwrap();
        events.add_subscriber(Box::new(timeout));
        assert_eq!(failures.take(), None);
        assert_eq!(turn(&mut events), 1);
        assert_eq!(control.reason(), Some(StopReason::Timeout(Duration::from_nanos(1))));
    }

    #[test]
    fn a_closed_pipe_reader_stops_the_vm_as_a_closed_output() {
        let control = Arc::new(VmControl::new().unwrap());
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let mut events = Loop::new().unwrap();
        events.add_subscriber(Box::new(OutputWatch::new(fds[1], "the pipe", control.clone())));
        assert_eq!(events.run_with_timeout(0).unwrap(), 0, "a pipe with a reader is quiet");
        // SAFETY: owned here, closed once.
        unsafe { libc::close(fds[0]) };
        assert_eq!(turn(&mut events), 1);
        let Some(StopReason::Output(f)) = control.reason() else {
            panic!("{:?}", control.reason())
        };
        assert!(f.closed && f.output == "the pipe", "{f:?}");
        assert_eq!(events.run_with_timeout(0).unwrap(), 0, "reported once");
        // SAFETY: owned here, closed once.
        unsafe { libc::close(fds[1]) };
    }

    #[test]
    fn a_source_that_cannot_be_watched_is_reported() {
        let scheduler = Arc::new(Scheduler::new(Arc::new(ManualClock::new(0))).unwrap());
        let mut events = Loop::new().unwrap();
        let failures = InitFailures::default();
        // The same fd twice: epoll refuses the second (EEXIST).
        events.add_subscriber(Box::new(DeferredWork::new(scheduler.clone(), failures.clone())));
        events.add_subscriber(Box::new(DeferredWork::new(scheduler, failures.clone())));
        let why = failures.take().unwrap();
        assert!(why.starts_with("cannot watch the scheduler's timer"), "{why}");
    }
}
