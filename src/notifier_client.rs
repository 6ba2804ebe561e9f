//! Client of `/dev/mmuvisor` (the helper module in kmod/): one open file is
//! one simulated device that registers an MMU interval notifier on this
//! process's address space, makes guest pages device-exclusive with itself as
//! owner, touches them through its own kernel mapping, and streams every
//! invalidation it sees. See kmod/include/uapi/linux/mmuvisor.h for the ABI.

mod subscriber;
pub mod uapi;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Duration;

use vmm_sys_util::ioctl::{ioctl, ioctl_with_mut_ref, ioctl_with_ref};

pub use subscriber::NotifierSubscriber;
use uapi::*;

/// Where the module's misc device appears.
pub const DEVICE_PATH: &str = "/dev/mmuvisor";

/// Errors of the notifier client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {source} (is the mmuvisor module loaded?)")]
    Open { path: String, source: io::Error },
    #[error("/dev/mmuvisor speaks ABI {found}, this build expects {expected}")]
    AbiVersion { found: u32, expected: u32 },
    #[error("/dev/mmuvisor reports {what} = {found}, this build expects {expected}")]
    AbiLayout {
        what: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("mmuvisor {op}: {source}")]
    Ioctl { op: &'static str, source: io::Error },
    #[error("reading mmuvisor events: {0}")]
    Read(io::Error),
    #[error("waiting for mmuvisor events: {0}")]
    Poll(io::Error),
    #[error("mmuvisor {op}: {npages} pages is more than the ABI allows ({max})")]
    TooManyPages {
        op: &'static str,
        npages: u64,
        max: u64,
    },
}

impl Error {
    /// The errno the kernel returned, if this is an ioctl/read failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ioctl { source, .. } | Error::Read(source) | Error::Poll(source) => {
                source.raw_os_error()
            }
            Error::Open { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What the module was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub abi_version: u32,
    /// MAKE_EXCLUSIVE works (kernel has CONFIG_DEVICE_PRIVATE).
    pub exclusive: bool,
    /// Built on make_device_exclusive_range() (kernels before 6.15).
    pub range_api: bool,
    pub ring_capacity: u32,
    pub max_npages: u32,
    /// LINUX_VERSION_CODE the module was built for.
    pub kernel_version: u32,
}

/// Why the notifier was called (`enum mmu_notifier_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifierEventKind {
    Unmap,
    Clear,
    ProtectionVma,
    ProtectionPage,
    SoftDirty,
    Release,
    Migrate,
    Exclusive,
    /// A kind the ABI does not name, or (`Other(EV_OVERFLOW)`) no
    /// invalidation but the record of lost ones: see
    /// [`NotifierEvent::is_overflow`].
    Other(u32),
}

impl From<u32> for NotifierEventKind {
    fn from(v: u32) -> Self {
        match v {
            EV_UNMAP => Self::Unmap,
            EV_CLEAR => Self::Clear,
            EV_PROTECTION_VMA => Self::ProtectionVma,
            EV_PROTECTION_PAGE => Self::ProtectionPage,
            EV_SOFT_DIRTY => Self::SoftDirty,
            EV_RELEASE => Self::Release,
            EV_MIGRATE => Self::Migrate,
            EV_EXCLUSIVE => Self::Exclusive,
            other => Self::Other(other),
        }
    }
}

impl std::fmt::Display for NotifierEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unmap => f.write_str("UNMAP"),
            Self::Clear => f.write_str("CLEAR"),
            Self::ProtectionVma => f.write_str("PROTECTION_VMA"),
            Self::ProtectionPage => f.write_str("PROTECTION_PAGE"),
            Self::SoftDirty => f.write_str("SOFT_DIRTY"),
            Self::Release => f.write_str("RELEASE"),
            Self::Migrate => f.write_str("MIGRATE"),
            Self::Exclusive => f.write_str("EXCLUSIVE"),
            Self::Other(EV_OVERFLOW) => f.write_str("OVERFLOW"),
            Self::Other(v) => write!(f, "OTHER({v})"),
        }
    }
}

/// One invalidation the device's notifier saw in the attached range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierEvent {
    /// Per-device sequence number; a gap means records were dropped.
    pub seq: u64,
    /// CLOCK_MONOTONIC nanoseconds when the notifier was called.
    pub time_ns: u64,
    /// The invalidated host-virtual range `[start, end)`.
    pub start: u64,
    pub end: u64,
    pub kind: NotifierEventKind,
    /// The range's owner is this device (its own conversion).
    pub owner_is_self: bool,
    /// The range had an owner (some device's conversion or migration).
    pub owner_set: bool,
    pub blockable: bool,
    /// Device mappings this invalidation revoked.
    pub revoked: u32,
    /// Invalidations this record stands for (seq .. seq + count): 1, more
    /// for coalesced own conversions; for `Overflow`, the records lost.
    pub count: u32,
}

impl NotifierEvent {
    /// Not an invalidation: the ring was full and `count` records (seq ..
    /// seq + count) were lost.
    pub fn is_overflow(&self) -> bool {
        self.kind == NotifierEventKind::Other(EV_OVERFLOW)
    }

    /// Whether the invalidated range meets `[start, end)`.
    pub fn touches(&self, start: u64, end: u64) -> bool {
        self.start < end && self.end > start
    }
}

impl From<&mmuvisor_event> for NotifierEvent {
    fn from(e: &mmuvisor_event) -> Self {
        NotifierEvent {
            seq: e.seq,
            time_ns: e.time_ns,
            start: e.start,
            end: e.end,
            kind: e.event.into(),
            owner_is_self: e.flags & EVENT_F_OWNER_SELF != 0,
            owner_set: e.flags & EVENT_F_OWNER_SET != 0,
            blockable: e.flags & EVENT_F_BLOCKABLE != 0,
            revoked: e.revoked,
            count: e.count,
        }
    }
}

/// Whether the device holds a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Never made exclusive by this device.
    None,
    /// The device holds exclusive access now.
    Held,
    /// Held, then revoked by an invalidation.
    Revoked,
    /// Held, then dropped by `release`.
    Released,
    Unknown(u32),
}

/// One page as the device's page table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageState {
    pub hold: Hold,
    /// Revocations of this page since attach.
    pub revocations: u32,
    /// The PFN the device maps while `Held`, else 0; always 0 unless the
    /// file was opened with CAP_SYS_ADMIN.
    pub pfn: u64,
}

impl From<&mmuvisor_page_state> for PageState {
    fn from(s: &mmuvisor_page_state) -> Self {
        let hold = match s.state {
            PAGE_NONE => Hold::None,
            PAGE_HELD => Hold::Held,
            PAGE_REVOKED => Hold::Revoked,
            PAGE_RELEASED => Hold::Released,
            other => Hold::Unknown(other),
        };
        PageState {
            hold,
            revocations: s.revocations,
            pfn: s.pfn,
        }
    }
}

/// What the device does to the u64 at an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOp {
    Read,
    Write(u64),
    Add(u64),
}

/// Outcome of a device access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Done; the value before the access.
    Done(u64),
    /// The device held the page and lost it to an invalidation (ENOLINK).
    Revoked,
    /// The device does not hold the page (never converted or released: ENOENT).
    NotHeld,
}

/// Counters of one device context.
pub type Stats = mmuvisor_stats;

/// What the event stream carries of the device's own conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnEvents {
    /// One record per conversion.
    #[default]
    Each,
    /// Left out.
    Omit,
    /// Adjacent ones merged into one record (its `count` says how many).
    Coalesce,
}

/// What poll() says about the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    pub readable: bool,
    /// An OVERFLOW record (lost events) waits to be read.
    pub overflow: bool,
    /// End of the stream: detached or the address space is gone, ring empty.
    pub hangup: bool,
}

/// The outcome of a `make_exclusive` call that may stop part way.
#[derive(Debug)]
pub struct Conversion {
    /// Pages converted by this call, also when it failed part way.
    pub count: u64,
    /// Why it stopped before the end, if it failed.
    pub error: Option<Error>,
}

/// One simulated device: an open file of `/dev/mmuvisor`.
#[derive(Debug)]
pub struct NotifierClient {
    file: File,
    version: Version,
}

fn ioctl_result(op: &'static str, ret: i32) -> Result<()> {
    if ret < 0 {
        Err(Error::Ioctl {
            op,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

/// Reads whatever whole event records are ready on `fd` without blocking.
fn read_ready_events(fd: RawFd, max: usize) -> Result<Vec<NotifierEvent>> {
    let mut buf = vec![mmuvisor_event::default(); max.clamp(1, 1024)];
    // SAFETY: buf is a valid, writable buffer of buf.len() plain-data records;
    // the kernel writes at most the byte count passed.
    let n = unsafe {
        libc::read(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len() * size_of::<mmuvisor_event>(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Vec::new()),
            _ => Err(Error::Read(err)),
        };
    }
    let records = n as usize / size_of::<mmuvisor_event>();
    Ok(buf[..records].iter().map(NotifierEvent::from).collect())
}

impl NotifierClient {
    /// Opens a new device context on [`DEVICE_PATH`].
    pub fn open() -> Result<Self> {
        Self::open_path(DEVICE_PATH)
    }

    /// Opens a new device context on `path` and checks the module's ABI.
    pub fn open_path(path: &str) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_string(),
                source,
            })?;
        Self::from_file(file)
    }

    /// Wraps an already open device file (e.g. one received from another
    /// process) after checking the module's ABI. Reads through this client
    /// never block only if the file has O_NONBLOCK.
    pub fn from_file(file: File) -> Result<Self> {
        let mut v = mmuvisor_version::default();
        // SAFETY: VERSION writes one mmuvisor_version into the valid &mut v.
        let ret = unsafe { ioctl_with_mut_ref(&file, MMUVISOR_IOC_VERSION(), &mut v) };
        ioctl_result("VERSION", ret)?;
        if v.abi_version != ABI_VERSION {
            return Err(Error::AbiVersion {
                found: v.abi_version,
                expected: ABI_VERSION,
            });
        }
        let layout = [
            (
                "event_size",
                v.event_size,
                size_of::<mmuvisor_event>() as u32,
            ),
            (
                "page_state_size",
                v.page_state_size,
                size_of::<mmuvisor_page_state>() as u32,
            ),
        ];
        for (what, found, expected) in layout {
            if found != expected {
                return Err(Error::AbiLayout {
                    what,
                    found,
                    expected,
                });
            }
        }
        let version = Version {
            abi_version: v.abi_version,
            exclusive: v.features & FEAT_EXCLUSIVE != 0,
            range_api: v.features & FEAT_RANGE_API != 0,
            ring_capacity: v.ring_capacity,
            max_npages: v.max_npages,
            kernel_version: v.kernel_version,
        };
        Ok(NotifierClient { file, version })
    }

    /// What the module was built with.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Registers the device's interval notifier on `[start, start + len)` of
    /// this process (page aligned): the guest memory it may convert.
    pub fn attach(&self, start: u64, len: u64) -> Result<()> {
        self.attach_with(start, len, OwnEvents::Each)
    }

    /// As [`Self::attach`], choosing what the stream carries of the
    /// device's own conversions.
    pub fn attach_with(&self, start: u64, len: u64, own: OwnEvents) -> Result<()> {
        let flags = match own {
            OwnEvents::Each => 0,
            OwnEvents::Omit => ATTACH_OMIT_OWN,
            OwnEvents::Coalesce => ATTACH_COALESCE_OWN,
        };
        let a = mmuvisor_attach {
            start,
            length: len,
            flags,
            ..Default::default()
        };
        // SAFETY: ATTACH reads one mmuvisor_attach from the valid &a.
        let ret = unsafe { ioctl_with_ref(&self.file, MMUVISOR_IOC_ATTACH(), &a) };
        ioctl_result("ATTACH", ret)
    }

    /// Removes the notifier and forgets every device mapping.
    pub fn detach(&self) -> Result<()> {
        // SAFETY: DETACH takes no argument.
        let ret = unsafe { ioctl(&self.file, MMUVISOR_IOC_DETACH()) };
        ioctl_result("DETACH", ret)
    }

    fn range_op(&self, op: &'static str, req: u64, addr: u64, npages: u64) -> Result<u64> {
        if npages > MAX_NPAGES {
            return Err(Error::TooManyPages {
                op,
                npages,
                max: MAX_NPAGES,
            });
        }
        let mut r = mmuvisor_range {
            addr,
            npages,
            ..Default::default()
        };
        // SAFETY: MAKE_EXCLUSIVE/RELEASE read and write one mmuvisor_range
        // through the valid &mut r.
        let ret = unsafe { ioctl_with_mut_ref(&self.file, req, &mut r) };
        ioctl_result(op, ret)?;
        Ok(r.count)
    }

    /// Makes `npages` pages from `addr` device-exclusive, owned by this
    /// device, and maps them in the device. Returns how many it converted
    /// (pages it already held are skipped): fewer than asked, without
    /// error, when a signal or a DETACH stopped it. On error, the pages
    /// converted before the failing one stay held (see [`Self::query`],
    /// and [`Self::convert`] for the count).
    pub fn make_exclusive(&self, addr: u64, npages: u64) -> Result<u64> {
        self.range_op(
            "MAKE_EXCLUSIVE",
            MMUVISOR_IOC_MAKE_EXCLUSIVE(),
            addr,
            npages,
        )
    }

    /// As [`Self::make_exclusive`], with the progress also on error.
    pub fn convert(&self, addr: u64, npages: u64) -> Conversion {
        if npages > MAX_NPAGES {
            let error = Error::TooManyPages {
                op: "MAKE_EXCLUSIVE",
                npages,
                max: MAX_NPAGES,
            };
            return Conversion {
                count: 0,
                error: Some(error),
            };
        }
        let mut r = mmuvisor_range {
            addr,
            npages,
            ..Default::default()
        };
        // SAFETY: MAKE_EXCLUSIVE reads and writes one mmuvisor_range through
        // the valid &mut r.
        let ret = unsafe { ioctl_with_mut_ref(&self.file, MMUVISOR_IOC_MAKE_EXCLUSIVE(), &mut r) };
        Conversion {
            count: r.count,
            error: ioctl_result("MAKE_EXCLUSIVE", ret).err(),
        }
    }

    /// Drops the device's mappings of the range; returns how many it held.
    /// The CPU page table keeps its device-exclusive entries until the CPU
    /// touches them.
    pub fn release(&self, addr: u64, npages: u64) -> Result<u64> {
        self.range_op("RELEASE", MMUVISOR_IOC_RELEASE(), addr, npages)
    }

    /// The device reads, writes or adds to the u64 at `addr` (8-byte aligned)
    /// through its own mapping, only while it holds the page exclusively.
    pub fn device_access(&self, addr: u64, op: AccessOp) -> Result<Access> {
        let (op, value) = match op {
            AccessOp::Read => (ACCESS_READ, 0),
            AccessOp::Write(v) => (ACCESS_WRITE, v),
            AccessOp::Add(v) => (ACCESS_ADD, v),
        };
        let mut a = mmuvisor_access {
            addr,
            op,
            value,
            ..Default::default()
        };
        // SAFETY: DEVICE_ACCESS reads and writes one mmuvisor_access through
        // the valid &mut a.
        let ret = unsafe { ioctl_with_mut_ref(&self.file, MMUVISOR_IOC_DEVICE_ACCESS(), &mut a) };
        match ioctl_result("DEVICE_ACCESS", ret) {
            Ok(()) => Ok(Access::Done(a.old)),
            Err(e) if e.errno() == Some(libc::ENOLINK) => Ok(Access::Revoked),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Access::NotHeld),
            Err(e) => Err(e),
        }
    }

    /// Per page of the range: does the device hold it, how often was it revoked.
    pub fn query(&self, addr: u64, npages: u64) -> Result<Vec<PageState>> {
        if npages > MAX_NPAGES {
            return Err(Error::TooManyPages {
                op: "QUERY",
                npages,
                max: MAX_NPAGES,
            });
        }
        let mut states = vec![mmuvisor_page_state::default(); npages as usize];
        let mut q = mmuvisor_query {
            addr,
            npages,
            states: states.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: QUERY reads/writes the valid &mut q and writes q.npages
        // records into `states`, which holds exactly that many.
        let ret = unsafe { ioctl_with_mut_ref(&self.file, MMUVISOR_IOC_QUERY(), &mut q) };
        ioctl_result("QUERY", ret)?;
        Ok(states.iter().map(PageState::from).collect())
    }

    /// The device's counters (events seen and dropped, conversions, ...).
    pub fn stats(&self) -> Result<Stats> {
        let mut st = mmuvisor_stats::default();
        // SAFETY: STATS writes one mmuvisor_stats into the valid &mut st.
        let ret = unsafe { ioctl_with_mut_ref(&self.file, MMUVISOR_IOC_STATS(), &mut st) };
        ioctl_result("STATS", ret)?;
        Ok(st)
    }

    /// The events queued so far (up to 1024 per call); never blocks.
    pub fn read_events(&self) -> Result<Vec<NotifierEvent>> {
        read_ready_events(self.file.as_raw_fd(), 1024)
    }

    /// Waits up to `timeout` for at least one event, then reads what is ready.
    pub fn wait_events(&self, timeout: Duration) -> Result<Vec<NotifierEvent>> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::Poll(err));
            }
        }
        self.read_events()
    }

    /// Waits up to `timeout` for the stream to become ready; says what
    /// poll() reported: records queued, an unread OVERFLOW record, end of
    /// the stream (detached or the address space gone, nothing left).
    pub fn poll_events(&self, timeout: Duration) -> Result<Readiness> {
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN | libc::POLLPRI,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ret < 0 {
            return Err(Error::Poll(io::Error::last_os_error()));
        }
        Ok(Readiness {
            readable: pfd.revents & libc::POLLIN != 0,
            overflow: pfd.revents & libc::POLLPRI != 0,
            hangup: pfd.revents & libc::POLLHUP != 0,
        })
    }

    /// An event-manager subscriber that hands every event of this device to
    /// `handler` from the VMM's event loop. It shares this device context.
    pub fn subscriber<H>(&self, handler: H) -> Result<NotifierSubscriber<H>>
    where
        H: FnMut(&NotifierEvent),
    {
        let file = self.file.try_clone().map_err(|source| Error::Open {
            path: DEVICE_PATH.to_string(),
            source,
        })?;
        Ok(NotifierSubscriber::new(file, handler))
    }
}

impl AsRawFd for NotifierClient {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
