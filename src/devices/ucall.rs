//! ucall decoding: `out 0xe0, eax` with the call number in EAX and arguments
//! in RDI, RSI, RDX (read with KVM_GET_REGS).

use kvm_bindings::kvm_regs;

use crate::guest_memory::GuestMemory;

use mmuvisor_abi::ucall::{UcallNr, ABORT_MSG_MAX};

/// A decoded ucall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ucall {
    /// Stop until the host replies; the reply goes to RAX.
    Sync { stage: u64, v0: u64, v1: u64 },
    /// The guest failed (GUEST_ASSERT in KVM selftests).
    Abort {
        msg_gpa: u64,
        msg_len: u64,
        line: u64,
    },
    /// This vCPU has finished.
    Done { value: u64 },
}

/// Errors decoding a ucall.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UcallError {
    #[error("unknown ucall number {0}")]
    Unknown(u32),
    #[error("ucall port written with {0} bytes (expected a 32-bit out)")]
    Size(usize),
}

/// Decodes the ucall a vCPU made; `size` is the width of the port write.
pub fn decode(regs: &kvm_regs, size: usize) -> Result<Ucall, UcallError> {
    if size != 4 {
        return Err(UcallError::Size(size));
    }
    match UcallNr::from_u32(regs.rax as u32) {
        Some(UcallNr::Sync) => Ok(Ucall::Sync {
            stage: regs.rdi,
            v0: regs.rsi,
            v1: regs.rdx,
        }),
        Some(UcallNr::Abort) => Ok(Ucall::Abort {
            msg_gpa: regs.rdi,
            msg_len: regs.rsi,
            line: regs.rdx,
        }),
        Some(UcallNr::Done) => Ok(Ucall::Done { value: regs.rdi }),
        None => Err(UcallError::Unknown(regs.rax as u32)),
    }
}

/// Reads an ABORT message: at most ABORT_MSG_MAX bytes, stopping at the end
/// of RAM or a NUL; never fails (an unreadable message is reported as such).
pub fn assert_message(mem: &GuestMemory, gpa: u64, len: u64) -> String {
    let len = len.min(ABORT_MSG_MAX);
    // Stop at the end of the RAM region holding the message.
    let room = mem
        .regions()
        .iter()
        .find(|r| gpa >= r.gpa && gpa - r.gpa < r.size)
        .map(|r| r.gpa + r.size - gpa);
    let n = match room {
        Some(room) => len.min(room),
        None => return format!("<unreadable message at {gpa:#x}>"),
    };
    match mem.read_bytes(gpa, n as usize) {
        Some(bytes) => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end]).into_owned()
        }
        None => format!("<unreadable message at {gpa:#x}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_memory::Thp;

    fn regs(rax: u64, rdi: u64, rsi: u64, rdx: u64) -> kvm_regs {
        kvm_regs {
            rax,
            rdi,
            rsi,
            rdx,
            ..Default::default()
        }
    }

    #[test]
    fn decodes_calls() {
        assert_eq!(
            decode(&regs(1, 2, 3, 4), 4),
            Ok(Ucall::Sync {
                stage: 2,
                v0: 3,
                v1: 4
            })
        );
        assert_eq!(
            decode(&regs(2, 0x1000, 5, 77), 4),
            Ok(Ucall::Abort {
                msg_gpa: 0x1000,
                msg_len: 5,
                line: 77
            })
        );
        // Upper half of RAX is ignored: `out dx, eax` only uses EAX.
        assert_eq!(
            decode(&regs(0xffff_0000_0000_0003, 9, 0, 0), 4),
            Ok(Ucall::Done { value: 9 })
        );
        assert_eq!(decode(&regs(9, 0, 0, 0), 4), Err(UcallError::Unknown(9)));
        assert_eq!(decode(&regs(1, 0, 0, 0), 1), Err(UcallError::Size(1)));
    }

    #[test]
    fn reads_bounded_message() {
        let mem = GuestMemory::new(16 << 20, Thp::Default).unwrap();
        use vm_memory::Bytes;
        mem.mmap()
            .write_slice(b"boom\0tail", vm_memory::GuestAddress(0x1000))
            .unwrap();
        assert_eq!(assert_message(&mem, 0x1000, 9), "boom");
        assert_eq!(assert_message(&mem, 0x1000, 2), "bo");
        // Huge length: bounded, no panic.
        assert_eq!(assert_message(&mem, 0x1000, u64::MAX), "boom");
        // Message running past the end of RAM gets shortened.
        let end = (16 << 20) - 4;
        mem.mmap()
            .write_slice(b"abcd", vm_memory::GuestAddress(end))
            .unwrap();
        assert_eq!(assert_message(&mem, end, 100).len(), 4);
        assert!(assert_message(&mem, 1 << 40, 10).starts_with("<unreadable"));
    }
}
