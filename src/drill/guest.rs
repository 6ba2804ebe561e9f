//! The `interp` payload as a drill sees it: commands, the driver trait that
//! the VMM adapter implements, and host views of guest pages (pagemap).

use crate::guest_memory::GuestRegion;
pub use crate::pagemap::PagemapEntry;
use mmuvisor_abi::interp;
pub use mmuvisor_abi::interp::fill_word;
pub use mmuvisor_abi::layout::{page_gpa, PAGE_SIZE};

/// One interp operation (op code in bits 63..56 of the command word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Exit,
    Read,
    Write(u32),
    AtomicAdd(u32),
    IncLoop(u32),
    AtomicIncLoop(u32),
    Fill(u32),
    Check(u32),
    FillRange(u32),
    CheckRange(u32),
}

impl Op {
    /// The payload's op and the argument word.
    pub fn code_arg(self) -> (interp::Op, u32) {
        match self {
            Op::Exit => (interp::Op::Exit, 0),
            Op::Read => (interp::Op::Read, 0),
            Op::Write(a) => (interp::Op::Write, a),
            Op::AtomicAdd(a) => (interp::Op::AtomicAdd, a),
            Op::IncLoop(a) => (interp::Op::IncLoop, a),
            Op::AtomicIncLoop(a) => (interp::Op::AtomicIncLoop, a),
            Op::Fill(a) => (interp::Op::Fill, a),
            Op::Check(a) => (interp::Op::Check, a),
            Op::FillRange(a) => (interp::Op::FillRange, a),
            Op::CheckRange(a) => (interp::Op::CheckRange, a),
        }
    }
    /// The operation a decoded command word names.
    pub fn from_code_arg(op: interp::Op, a: u32) -> Self {
        match op {
            interp::Op::Exit => Op::Exit,
            interp::Op::Read => Op::Read,
            interp::Op::Write => Op::Write(a),
            interp::Op::AtomicAdd => Op::AtomicAdd(a),
            interp::Op::IncLoop => Op::IncLoop(a),
            interp::Op::AtomicIncLoop => Op::AtomicIncLoop(a),
            interp::Op::Fill => Op::Fill(a),
            interp::Op::Check => Op::Check(a),
            interp::Op::FillRange => Op::FillRange(a),
            interp::Op::CheckRange => Op::CheckRange(a),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Op::Exit => "EXIT",
            Op::Read => "READ",
            Op::Write(_) => "WRITE",
            Op::AtomicAdd(_) => "ATOMIC_ADD",
            Op::IncLoop(_) => "INC_LOOP",
            Op::AtomicIncLoop(_) => "ATOMIC_INC_LOOP",
            Op::Fill(_) => "FILL",
            Op::Check(_) => "CHECK",
            Op::FillRange(_) => "FILL_RANGE",
            Op::CheckRange(_) => "CHECK_RANGE",
        }
    }
    /// Whether the op stores to guest memory.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Op::Write(_)
                | Op::AtomicAdd(_)
                | Op::IncLoop(_)
                | Op::AtomicIncLoop(_)
                | Op::Fill(_)
                | Op::FillRange(_)
        )
    }
}

/// A command for one vCPU: `op` on data page `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmd {
    pub op: Op,
    pub page: u64,
}

impl Cmd {
    pub fn new(op: Op, page: u64) -> Self {
        Cmd { op, page }
    }
    /// The command word (`mmuvisor_abi::interp::encode`).
    pub fn encode(self) -> u64 {
        let (op, arg) = self.op.code_arg();
        interp::encode(op, self.page.min(interp::MAX_PAGE as u64) as u32, arg)
    }
}

/// Why the guest could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("vCPU {0} did not report within {1} ms")]
    Timeout(usize, u64),
    #[error("the guest stopped: {0}")]
    Stopped(String),
    #[error("VMM: {0}")]
    Vmm(String),
}

impl GuestError {
    /// The guest stopped because KVM refused to map a page for a write:
    /// KVM_RUN failed with EFAULT (e.g. a write to a read-only VMA), or a
    /// KVM without that error path reported the write as MMIO.
    pub fn is_refused_write(&self) -> bool {
        matches!(self, GuestError::Stopped(s) if (s.contains("KVM_RUN failed") && s.contains("(os error 14)"))
            || s.contains("unhandled MMIO write"))
    }
}

/// A SYNC from a vCPU: it waits for its next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub vcpu: usize,
    pub stage: u64,
    pub result: u64,
    /// CLOCK_MONOTONIC ns when the VMM saw the ucall.
    pub time_ns: u64,
}

/// A running `interp` guest. The VMM adapter implements it; tests use a
/// simulated one.
pub trait InterpGuest {
    fn nr_vcpus(&self) -> usize;
    /// Guest RAM size in bytes (one region at GPA 0).
    fn mem_size(&self) -> u64;
    /// Host mapping of guest memory (memslots).
    fn regions(&self) -> Vec<GuestRegion>;
    /// The KVM VM, for stats, dirty logs and memslots (None when simulated).
    fn vm_fd(&self) -> Option<&kvm_ioctls::VmFd>;
    /// Answers `vcpu`'s pending SYNC with the command word `cmd`.
    fn reply(&mut self, vcpu: usize, cmd: u64) -> Result<(), GuestError>;
    /// The next SYNC of any vCPU.
    fn next_sync(&mut self, timeout_ms: u64) -> Result<SyncReport, GuestError>;
    /// Tells every vCPU to exit and reaps the VM.
    fn finish(&mut self) -> Result<(), GuestError>;

    /// Turns KVM dirty logging of guest RAM on or off.
    fn set_dirty_logging(&mut self, _on: bool) -> Result<(), GuestError> {
        Err(GuestError::Vmm("this guest has no KVM dirty log".into()))
    }
    /// GPAs of pages KVM logged dirty since the last call.
    fn dirty_gpas(&mut self) -> Result<Vec<u64>, GuestError> {
        Err(GuestError::Vmm("this guest has no KVM dirty log".into()))
    }
    /// Deletes every RAM memslot and registers them again.
    fn recreate_memslots(&mut self) -> Result<(), GuestError> {
        Err(GuestError::Vmm("this guest has no KVM memslots".into()))
    }
    /// Deletes every RAM memslot (the guest can then run no further).
    fn delete_memslots(&mut self) -> Result<(), GuestError> {
        Err(GuestError::Vmm("this guest has no KVM memslots".into()))
    }
    /// Adds the deleted RAM memslots back, same addresses.
    fn add_memslots(&mut self) -> Result<(), GuestError> {
        Err(GuestError::Vmm("this guest has no KVM memslots".into()))
    }

    /// Host virtual address of `gpa`.
    fn gpa_to_hva(&self, gpa: u64) -> Option<u64> {
        self.regions()
            .iter()
            .find(|r| gpa >= r.gpa && gpa < r.gpa + r.size)
            .map(|r| r.hva + (gpa - r.gpa))
    }
    /// State of the host PTE behind `gpa` (never touches the page).
    fn pagemap(&self, gpa: u64) -> std::io::Result<PagemapEntry> {
        let hva = self.gpa_to_hva(gpa).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "gpa outside RAM")
        })?;
        PagemapEntry::of_hva(hva)
    }
}
