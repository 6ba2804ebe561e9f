//! The kernel log since a mark, read from /dev/kmsg (one record per read,
//! Documentation/ABI/testing/dev-kmsg), and which records are the kernel
//! complaining about itself.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

const KMSG: &str = "/dev/kmsg";

/// One record of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Syslog facility (0: the kernel; 1: user space writing to /dev/kmsg).
    pub facility: u8,
    pub seq: u64,
    /// The message's first line (continuation lines dropped).
    pub text: String,
}

/// Parses one /dev/kmsg record: `prio,seq,usec,flags[,...];text\n[ KEY=value\n]...`.
pub fn parse_record(raw: &str) -> Option<Record> {
    let (prefix, rest) = raw.split_once(';')?;
    let mut fields = prefix.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let text = rest.lines().next().unwrap_or("").to_string();
    Some(Record {
        facility: (prio >> 3).min(255) as u8,
        seq,
        text,
    })
}

/// What the kernel prints when it finds itself wrong: WARN/BUG/oops, the
/// page allocator's and mm's own checks, lockdep, the sanitizers, RCU
/// stalls, hung tasks and refcount_t saturation.
const COMPLAINTS: &[&str] = &[
    "WARNING:",
    "cut here ]",
    "BUG:",
    "kernel BUG at",
    "Oops",
    "general protection fault",
    "Unable to handle",
    "Bad page",
    "Bad rss-counter",
    "page dumped because",
    "KASAN",
    "KFENCE",
    "UBSAN",
    "kmemleak",
    "refcount_t:",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "lock held when returning",
    "suspicious RCU usage",
    "INFO: rcu",
    "rcu: INFO:",
    "detected stall",
    "blocked for more than",
    "soft lockup",
    "hard LOCKUP",
    "list_add corruption",
    "list_del corruption",
    "Kernel panic",
    "Call Trace:",
];

/// Whether a kernel record is a complaint (user-space records never are:
/// anyone may write to /dev/kmsg).
pub fn is_complaint(r: &Record) -> bool {
    r.facility == 0 && COMPLAINTS.iter().any(|p| r.text.contains(p))
}

/// A reader positioned at the end of the log when it was opened.
pub struct Kmsg {
    f: File,
}

impl Kmsg {
    /// Opens /dev/kmsg and skips what is already there.
    pub fn from_now() -> io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(KMSG)?;
        f.seek(SeekFrom::End(0))?;
        Ok(Kmsg { f })
    }

    /// Every record logged since the mark (or the last call); records the
    /// ring overwrote before we read them are counted in the second value.
    pub fn read_new(&mut self) -> io::Result<(Vec<Record>, u64)> {
        let mut out = Vec::new();
        let mut lost = 0;
        let mut buf = vec![0u8; 8192];
        loop {
            match self.f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(r) = parse_record(&String::from_utf8_lossy(&buf[..n])) {
                        out.push(r);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EPIPE: the ring overwrote records we had not read; the
                // next read goes on with the oldest one left.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => lost += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((out, lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_and_complaints_are_kernel_only() {
        let r = parse_record("4,812,9912345,-;WARNING: CPU: 0 PID: 7 at mm/memory.c:1760 zap_pte_range+0x1/0x2\n SUBSYSTEM=x\n").unwrap();
        assert_eq!((r.facility, r.seq), (0, 812));
        assert!(r.text.starts_with("WARNING: CPU: 0") && !r.text.contains("SUBSYSTEM"));
        assert!(is_complaint(&r));
        let rss =
            parse_record("1,9,1,-;BUG: Bad rss-counter state mm:00000000 type:MM_ANONPAGES val:1")
                .unwrap();
        assert!(is_complaint(&rss));
        let user = parse_record("12,10,1,-;WARNING: planted by a user").unwrap();
        assert_eq!(user.facility, 1);
        assert!(
            !is_complaint(&user),
            "user space can write anything to /dev/kmsg"
        );
        let fine = parse_record("6,11,1,-;kvm_amd: Nested Virtualization enabled").unwrap();
        assert!(!is_complaint(&fine));
        assert_eq!(parse_record("no prefix"), None);
        assert_eq!(parse_record("x,1,2,-;text"), None);
    }
}
