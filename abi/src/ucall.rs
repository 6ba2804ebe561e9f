//! ucalls: `out UCALL_PORT, eax` with the call number in EAX and up to three
//! arguments in RDI, RSI, RDX; the host's reply to a SYNC comes back in RAX.
//! The names follow KVM selftests' ucall (SYNC, ABORT, DONE).

/// The port a ucall writes (32-bit `out`).
pub const UCALL_PORT: u16 = 0xe0;
/// `out DEBUG_EXIT_PORT, al` ends the VM with AL as mmuvisor's exit status.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Longest ABORT message the host reads from guest memory.
pub const ABORT_MSG_MAX: u64 = 1024;

/// ucall numbers (EAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum UcallNr {
    /// SYNC(stage, v0, v1): stop until the host replies; the reply goes to RAX.
    Sync = 1,
    /// ABORT(msg gva, msg len, line): the guest failed.
    Abort = 2,
    /// DONE(value): this vCPU has finished.
    Done = 3,
}

impl UcallNr {
    /// The call a number names, if any.
    pub fn from_u32(nr: u32) -> Option<Self> {
        match nr {
            1 => Some(Self::Sync),
            2 => Some(Self::Abort),
            3 => Some(Self::Done),
            _ => None,
        }
    }
}
