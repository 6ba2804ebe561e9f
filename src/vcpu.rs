//! One vCPU thread: the KVM_RUN loop, exit decoding, ucalls, and the kick
//! (a real-time signal plus `immediate_exit`) that takes a vCPU out of KVM_RUN.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use kvm_bindings::{kvm_run, KVM_EXIT_INTERNAL_ERROR};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use crate::arch::x86_64::layout::UCALL_PORT;
use crate::clock::now_ns;
use crate::devices::bus::{IoAction, PortBus};
use crate::devices::ucall::{self, Ucall};
use crate::guest_memory::GuestMemory;

/// What a vCPU reported, with the host time it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEvent {
    /// vCPU index.
    pub vcpu: usize,
    /// CLOCK_MONOTONIC, nanoseconds, when the VMM decoded the exit.
    pub time_ns: u64,
    pub kind: GuestEventKind,
}

/// The kinds of guest events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEventKind {
    /// ucall SYNC: the vCPU waits for `RunningVm::reply`.
    Sync { stage: u64, v0: u64, v1: u64 },
    /// ucall DONE: this vCPU has finished.
    Done { value: u64 },
    /// ucall ASSERT: the VM ends, failed.
    Assert { message: String, line: u64 },
    /// Debug-exit port written; the VM ends with this exit code.
    DebugExit(u8),
    /// i8042 reset; the VM ends.
    Reset,
    /// ACPI power-off (S5); the VM ends.
    PowerOff,
    /// Triple fault, internal error, failed entry or unhandled I/O.
    Crash(String),
    /// Serial output (when the VM sends serial output as events).
    Serial(Vec<u8>),
}

/// Messages from vCPU threads to the `RunningVm`.
#[derive(Debug)]
pub enum VcpuMsg {
    Event(GuestEvent),
    Exited(usize),
}

/// How a vCPU treats I/O that no device claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMode {
    /// Unknown I/O ends the VM (bare payloads).
    Payload,
    /// Unknown reads return all-ones, writes are ignored (Linux).
    Linux,
}

thread_local! {
    /// The kvm_run area of the vCPU this thread runs (for the kick handler).
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
    /// Index of the vCPU this thread runs (for serial events).
    static CURRENT_VCPU: Cell<usize> = const { Cell::new(0) };
}

/// Index of the vCPU running on this thread (0 outside vCPU threads).
pub fn current_vcpu() -> usize {
    CURRENT_VCPU.with(|c| c.get())
}

extern "C" fn kick_handler(
    _num: libc::c_int,
    _info: *mut libc::siginfo_t,
    _ctx: *mut libc::c_void,
) {
    KVM_RUN_PTR.with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY: the pointer is this thread's live kvm_run mapping, set
            // while the thread owns its VcpuFd and cleared before it is dropped.
            unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*run).immediate_exit), 1) };
        }
    });
}

/// The kick signal.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// Installs the kick signal handler (once per process).
pub fn register_kick_handler() -> Result<(), std::io::Error> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        if let Err(e) = register_signal_handler(kick_signal(), kick_handler) {
            result = Err(std::io::Error::from_raw_os_error(e.errno()));
        }
    });
    result
}

/// State shared by all vCPU threads of a VM.
#[derive(Debug, Default)]
pub struct VcpuShared {
    stop: AtomicBool,
    threads: Mutex<Vec<(usize, libc::pthread_t)>>,
}

impl VcpuShared {
    /// Whether the VM is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Stops every vCPU: sets the flag, then kicks each thread out of KVM_RUN.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        for (_, t) in threads.iter() {
            // SAFETY: the thread is registered only while it runs (it removes
            // itself under this lock before exiting), so the handle is valid.
            unsafe { libc::pthread_kill(*t, kick_signal()) };
        }
    }

    fn register(&self, index: usize) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: pthread_self has no preconditions.
        threads.push((index, unsafe { libc::pthread_self() }));
    }

    fn unregister(&self, index: usize) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|(i, _)| *i != index);
    }
}

/// Everything one vCPU thread needs.
pub struct Vcpu {
    pub index: usize,
    pub fd: VcpuFd,
    pub mode: GuestMode,
    pub bus: Arc<PortBus>,
    pub mem: Arc<GuestMemory>,
    pub shared: Arc<VcpuShared>,
    pub tx: Sender<VcpuMsg>,
    pub replies: Receiver<u64>,
    pub exits: Arc<AtomicU64>,
}

/// What the run loop does after an exit.
enum Next {
    Ucall(usize),
    Action(IoAction),
    Unhandled(String),
    Crash(String),
    InternalError,
}

impl Vcpu {
    fn send(&self, kind: GuestEventKind) {
        let ev = GuestEvent {
            vcpu: self.index,
            time_ns: now_ns(),
            kind,
        };
        // The receiver only goes away when the VM is being torn down.
        let _ = self.tx.send(VcpuMsg::Event(ev));
    }

    fn rip(&self) -> String {
        match self.fd.get_regs() {
            // On AMD, KVM resets the vCPU on shutdown: RIP is the reset vector.
            Ok(r) if r.rip == 0xfff0 => "RIP 0xfff0 (vCPU already reset by KVM)".to_string(),
            Ok(r) => format!("RIP {:#x}", r.rip),
            Err(e) => format!("RIP unknown ({e})"),
        }
    }

    /// Ends the VM with a crash report.
    fn crash(&self, what: String) {
        let msg = format!("vCPU {}: {what} at {}", self.index, self.rip());
        self.send(GuestEventKind::Crash(msg));
        self.shared.request_stop();
    }

    /// Waits for the host's reply to a SYNC; None if the VM is stopping.
    fn wait_reply(&self) -> Option<u64> {
        loop {
            match self.replies.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => return Some(v),
                Err(RecvTimeoutError::Timeout) if !self.shared.stopping() => continue,
                Err(_) => return None,
            }
        }
    }

    /// Handles a ucall; false when this vCPU's loop ends.
    fn ucall(&mut self, size: usize) -> bool {
        let regs = match self.fd.get_regs() {
            Ok(r) => r,
            Err(e) => {
                self.crash(format!("KVM_GET_REGS failed: {e}"));
                return false;
            }
        };
        match ucall::decode(&regs, size) {
            Ok(Ucall::Sync { stage, v0, v1 }) => {
                self.send(GuestEventKind::Sync { stage, v0, v1 });
                let Some(value) = self.wait_reply() else {
                    return false;
                };
                let mut regs = regs;
                regs.rax = value;
                if let Err(e) = self.fd.set_regs(&regs) {
                    self.crash(format!("KVM_SET_REGS failed: {e}"));
                    return false;
                }
                true
            }
            Ok(Ucall::Abort {
                msg_gpa,
                msg_len,
                line,
            }) => {
                let message = ucall::assert_message(&self.mem, msg_gpa, msg_len);
                self.send(GuestEventKind::Assert { message, line });
                self.shared.request_stop();
                false
            }
            Ok(Ucall::Done { value }) => {
                self.send(GuestEventKind::Done { value });
                false
            }
            Err(e) => {
                self.crash(format!("bad ucall: {e}"));
                false
            }
        }
    }

    /// The KVM_RUN loop; returns when this vCPU is done or the VM stops.
    pub fn run(mut self) {
        CURRENT_VCPU.with(|c| c.set(self.index));
        self.shared.register(self.index);
        KVM_RUN_PTR.with(|p| p.set(self.fd.get_kvm_run() as *mut kvm_run));
        let linux = self.mode == GuestMode::Linux;
        loop {
            if self.shared.stopping() {
                break;
            }
            let result = self.fd.run();
            self.exits.fetch_add(1, Ordering::Relaxed);
            let next = match result {
                Ok(VcpuExit::IoIn(port, data)) => {
                    if self.bus.read(port, data) {
                        continue;
                    }
                    if linux {
                        data.fill(0xff);
                        continue;
                    }
                    Next::Unhandled(format!("port read {port:#x} size {}", data.len()))
                }
                Ok(VcpuExit::IoOut(port, data)) => {
                    if port == UCALL_PORT && !linux {
                        Next::Ucall(data.len())
                    } else {
                        match self.bus.write(port, data) {
                            Some(None) => continue,
                            Some(Some(action)) => Next::Action(action),
                            None if linux => continue,
                            None => Next::Unhandled(format!(
                                "port write {port:#x} size {} value {:#x}",
                                data.len(),
                                data.iter()
                                    .rev()
                                    .fold(0u64, |a, &b| (a << 8) | u64::from(b))
                            )),
                        }
                    }
                }
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    if linux {
                        data.fill(0xff);
                        continue;
                    }
                    Next::Unhandled(format!("MMIO read {addr:#x} size {}", data.len()))
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    if linux {
                        continue;
                    }
                    Next::Unhandled(format!("MMIO write {addr:#x} size {}", data.len()))
                }
                Ok(VcpuExit::Hlt) => {
                    if linux {
                        continue;
                    }
                    Next::Crash("HLT exit".into())
                }
                Ok(VcpuExit::Shutdown) => Next::Crash("triple fault (KVM_EXIT_SHUTDOWN)".into()),
                Ok(VcpuExit::FailEntry(reason, cpu)) => Next::Crash(format!(
                    "KVM_EXIT_FAIL_ENTRY (hardware reason {reason:#x}, host cpu {cpu})"
                )),
                Ok(VcpuExit::InternalError) => Next::InternalError,
                Ok(VcpuExit::Intr) => continue,
                Ok(other) => Next::Crash(format!("unexpected KVM exit {other:?}")),
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.fd.set_kvm_immediate_exit(0);
                    continue;
                }
                Err(e) => Next::Crash(format!("KVM_RUN failed: {e}")),
            };
            let go_on = match next {
                Next::Ucall(size) => self.ucall(size),
                Next::Action(IoAction::DebugExit(code)) => {
                    self.send(GuestEventKind::DebugExit(code));
                    self.shared.request_stop();
                    false
                }
                Next::Action(IoAction::Reset) => {
                    self.send(GuestEventKind::Reset);
                    self.shared.request_stop();
                    false
                }
                Next::Action(IoAction::PowerOff) => {
                    self.send(GuestEventKind::PowerOff);
                    self.shared.request_stop();
                    false
                }
                Next::Unhandled(what) => {
                    self.crash(format!("unhandled {what}"));
                    false
                }
                Next::Crash(what) => {
                    self.crash(what);
                    false
                }
                Next::InternalError => {
                    let run = self.fd.get_kvm_run();
                    let sub = if run.exit_reason == KVM_EXIT_INTERNAL_ERROR {
                        // SAFETY: exit_reason says the `internal` union member is valid.
                        unsafe { run.__bindgen_anon_1.internal.suberror }
                    } else {
                        0
                    };
                    self.crash(format!("KVM_EXIT_INTERNAL_ERROR (suberror {sub})"));
                    false
                }
            };
            if !go_on {
                break;
            }
        }
        KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
        self.shared.unregister(self.index);
        let _ = self.tx.send(VcpuMsg::Exited(self.index));
    }
}
