//! A started VM: the guest events of its vCPU threads, SYNC replies, stdin
//! for the serial port, and how the VM ended.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Result, VmmError};
use crate::devices::serial::{SerialDevice, SerialInput};
use crate::exit_code;
use crate::vcpu::{GuestEvent, GuestEventKind, VcpuMsg, VcpuShared};

/// How long vCPU threads get to leave KVM_RUN once the VM is stopping.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Whether stdin is something to feed the guest: a terminal, pipe or socket
/// (not /dev/null, a regular file, or closed).
pub(super) fn stdin_is_input() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } == 1 {
        return true;
    }
    // SAFETY: libc::stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the stat buffer we own; the result is checked.
    if unsafe { libc::fstat(0, &mut st) } != 0 {
        return false;
    }
    matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
}

/// Runs an event manager that feeds stdin to the serial port until the VM stops.
pub(super) fn spawn_stdin(
    serial: Arc<Mutex<SerialDevice>>,
    shared: Arc<VcpuShared>,
) -> Option<JoinHandle<()>> {
    use event_manager::{EventManager, SubscriberOps};
    let mut em: EventManager<Box<dyn event_manager::MutEventSubscriber + Send>> =
        EventManager::new().ok()?;
    em.add_subscriber(Box::new(SerialInput::new(serial, std::io::stdin())));
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            while !shared.stopping() {
                if em.run_with_timeout(100).is_err() {
                    break;
                }
            }
        })
        .ok()
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeReason {
    AllDone,
    Reset,
    /// ACPI S5 (poweroff).
    PowerOff,
    DebugExit(u8),
    Assert {
        vcpu: usize,
        message: String,
        line: u64,
    },
    Crash(String),
    /// Stopped by the host (`RunningVm::stop`, e.g. a timeout).
    Stopped,
}

/// The end of a VM: the process exit code per docs/design.md and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub reason: OutcomeReason,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            OutcomeReason::AllDone => write!(f, "all vCPUs done"),
            OutcomeReason::Reset => write!(f, "guest reset"),
            OutcomeReason::PowerOff => write!(f, "guest powered off"),
            OutcomeReason::DebugExit(c) => write!(f, "debug exit {c}"),
            OutcomeReason::Assert {
                vcpu,
                message,
                line,
            } => write!(f, "guest assert on vCPU {vcpu} at line {line}: {message}"),
            OutcomeReason::Crash(r) => write!(f, "guest crashed: {r}"),
            OutcomeReason::Stopped => write!(f, "stopped by the host"),
        }
    }
}

/// A running VM.
pub struct RunningVm {
    pub(super) rx: Receiver<VcpuMsg>,
    pub(super) replies: Vec<Sender<u64>>,
    pub(super) handles: Vec<JoinHandle<()>>,
    pub(super) shared: Arc<VcpuShared>,
    pub(super) exited: Vec<bool>,
    pub(super) done: Vec<bool>,
    pub(super) outcome: Option<Outcome>,
    pub(super) exits: Vec<Arc<AtomicU64>>,
    pub(super) serial: Arc<Mutex<SerialDevice>>,
    pub(super) stdin_thread: Option<JoinHandle<()>>,
}

impl RunningVm {
    fn set_outcome(&mut self, code: i32, reason: OutcomeReason) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome { code, reason });
        }
    }

    fn observe(&mut self, ev: &GuestEvent) {
        match &ev.kind {
            GuestEventKind::Done { .. } => {
                if let Some(d) = self.done.get_mut(ev.vcpu) {
                    *d = true;
                }
                if self.done.iter().all(|&d| d) {
                    self.set_outcome(exit_code::OK, OutcomeReason::AllDone);
                }
            }
            GuestEventKind::Assert { message, line } => self.set_outcome(
                exit_code::FAIL,
                OutcomeReason::Assert {
                    vcpu: ev.vcpu,
                    message: message.clone(),
                    line: *line,
                },
            ),
            GuestEventKind::DebugExit(c) => {
                self.set_outcome(i32::from(*c), OutcomeReason::DebugExit(*c))
            }
            GuestEventKind::Reset => self.set_outcome(exit_code::OK, OutcomeReason::Reset),
            GuestEventKind::PowerOff => self.set_outcome(exit_code::OK, OutcomeReason::PowerOff),
            GuestEventKind::Crash(r) => {
                self.set_outcome(exit_code::GUEST_CRASH, OutcomeReason::Crash(r.clone()))
            }
            GuestEventKind::Sync { .. } | GuestEventKind::Serial(_) => {}
        }
    }

    fn all_exited(&self) -> bool {
        self.exited.iter().all(|&e| e)
    }

    /// The next guest event; `VmmError::Timeout` if none comes in time,
    /// `VmmError::Ended` once every vCPU thread has ended and no event is left.
    pub fn next_event(&mut self, timeout: Duration) -> Result<GuestEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = if self.all_exited() {
                self.rx.try_recv().map_err(|_| VmmError::Ended)?
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(left) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => return Err(VmmError::Timeout),
                    Err(RecvTimeoutError::Disconnected) => return Err(VmmError::Ended),
                }
            };
            match msg {
                VcpuMsg::Event(ev) => {
                    self.observe(&ev);
                    return Ok(ev);
                }
                VcpuMsg::Exited(i) => {
                    if let Some(e) = self.exited.get_mut(i) {
                        *e = true;
                    }
                }
            }
        }
    }

    /// Resumes a vCPU blocked in SYNC; `value` lands in its RAX.
    pub fn reply(&self, vcpu: usize, value: u64) -> Result<()> {
        self.replies
            .get(vcpu)
            .ok_or(VmmError::NoSuchVcpu(vcpu))?
            .send(value)
            .map_err(|_| VmmError::NoSuchVcpu(vcpu))
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.replies.len()
    }

    /// KVM_RUN exits seen so far, per vCPU.
    pub fn exit_counts(&self) -> Vec<u64> {
        self.exits
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// The outcome decided so far (by the events seen).
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Stops every vCPU (kicks them out of KVM_RUN). If the guest had not
    /// ended yet the outcome is `Stopped` with exit code 124.
    pub fn stop(&mut self) {
        self.set_outcome(exit_code::TIMEOUT, OutcomeReason::Stopped);
        self.shared.request_stop();
    }

    /// Waits for every vCPU thread to end (answering SYNCs with 0 meanwhile)
    /// and returns the outcome. Call `stop` first to end a guest that would
    /// run on.
    pub fn wait(mut self) -> Result<Outcome> {
        let mut stopping_since: Option<Instant> = None;
        while !self.all_exited() {
            if self.shared.stopping() {
                let since = *stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STOP_GRACE {
                    let vcpus = (0..self.exited.len())
                        .filter(|&i| !self.exited[i])
                        .collect();
                    return Err(VmmError::Stuck {
                        vcpus,
                        secs: STOP_GRACE.as_secs(),
                    });
                }
                // A kick that came between a vCPU's check of the stop flag
                // and its KVM_RUN is not lost (immediate_exit), but kick
                // again anyway: it costs nothing and covers any other gap.
                self.shared.request_stop();
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(VcpuMsg::Event(ev)) => {
                    self.observe(&ev);
                    if let GuestEventKind::Sync { stage, .. } = ev.kind {
                        log::debug!("vCPU {}: SYNC stage {stage}, replying 0", ev.vcpu);
                        let _ = self.reply(ev.vcpu, 0);
                    }
                    if self.outcome.is_some() {
                        self.shared.request_stop();
                    }
                }
                Ok(VcpuMsg::Exited(i)) => {
                    if let Some(e) = self.exited.get_mut(i) {
                        *e = true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        while let Ok(VcpuMsg::Event(ev)) = self.rx.try_recv() {
            self.observe(&ev);
        }
        self.finish();
        Ok(self.outcome.clone().unwrap_or(Outcome {
            code: exit_code::GUEST_CRASH,
            reason: OutcomeReason::Crash("vCPU threads ended without an outcome".into()),
        }))
    }

    /// Stops the vCPU threads and joins them; a thread still in KVM_RUN
    /// after [`STOP_GRACE`] is left behind (the process exit ends it)
    /// rather than hanging the VMM.
    fn finish(&mut self) {
        self.shared.request_stop();
        let deadline = Instant::now() + STOP_GRACE;
        while self.handles.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            self.shared.request_stop();
        }
        for h in self.handles.drain(..) {
            if h.is_finished() {
                let _ = h.join();
            } else {
                log::warn!(
                    "a vCPU thread did not stop within {} s: left behind",
                    STOP_GRACE.as_secs()
                );
            }
        }
        if let Some(h) = self.stdin_thread.take() {
            let _ = h.join();
        }
        self.serial
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush();
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        self.finish();
    }
}
