//! Helpers of the helper module's tests (kmod_*.rs). Those tests need
//! /dev/mmuvisor (the lab kernel with mmuvisor.ko loaded): they are ignored
//! where it is missing at build time, and lab_kmod.rs runs them in the lab
//! with --include-ignored; it fails if any of them skipped there.

pub use mmuvisor::guest_memory::PagemapEntry;
pub use mmuvisor::host_mapping::HostMapping;
pub use mmuvisor::notifier_client::uapi::*;
pub use mmuvisor::notifier_client::*;
pub use std::fs::File;
pub use std::io;
pub use std::os::unix::io::AsRawFd;
pub use std::time::Duration;

pub const PAGE: u64 = 4096;

pub fn lab() -> Option<NotifierClient> {
    if !std::path::Path::new(DEVICE_PATH).exists() {
        println!("# SKIP no /dev/mmuvisor");
        return None;
    }
    Some(NotifierClient::open().expect("open /dev/mmuvisor"))
}

/// The device on a kernel that can make pages device-exclusive; None (with
/// a skip line) without /dev/mmuvisor or without DEVICE_PRIVATE.
pub fn exclusive_lab() -> Option<NotifierClient> {
    let dev = lab()?;
    if !dev.version().exclusive {
        println!("# SKIP kernel without DEVICE_PRIVATE");
        return None;
    }
    Some(dev)
}

pub fn errno_of<T: std::fmt::Debug>(r: Result<T>) -> i32 {
    r.expect_err("expected an error").errno().expect("an errno")
}

pub fn region(pages: u64) -> HostMapping {
    let r = HostMapping::small_pages((pages * PAGE) as usize).expect("mmap");
    r.populate();
    r
}

pub fn cpu_read(addr: u64) -> u64 {
    // SAFETY: the tests only pass aligned addresses of their live mappings.
    unsafe { std::ptr::read_volatile(addr as *const u64) }
}

pub fn cpu_write(addr: u64, v: u64) {
    // SAFETY: as cpu_read, on writable mappings.
    unsafe { std::ptr::write_volatile(addr as *mut u64, v) }
}

/// The /proc/self/pagemap entry of addr.
pub fn pagemap(addr: u64) -> PagemapEntry {
    PagemapEntry::of_hva(addr).expect("pagemap read")
}

/// Raw ioctl on the device with a range struct; returns errno or 0.
pub fn raw_range(dev: &NotifierClient, req: u64, r: mmuvisor_range) -> i32 {
    let mut r = r;
    // SAFETY: req is one of ours taking a 32-byte struct; &mut r is valid.
    let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_mut_ref(dev, req, &mut r) };
    if ret < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

pub fn raw_access(dev: &NotifierClient, a: mmuvisor_access) -> i32 {
    let mut a = a;
    // SAFETY: DEVICE_ACCESS with a valid &mut struct.
    let ret = unsafe {
        vmm_sys_util::ioctl::ioctl_with_mut_ref(dev, MMUVISOR_IOC_DEVICE_ACCESS(), &mut a)
    };
    if ret < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

pub fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs f (no allocation in the tests' closures beyond
    // what the parent prepared) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = f();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    libc::WEXITSTATUS(status)
}

/// The event the kernel sends when the CPU takes a page back: CLEAR since
/// 6.15, EXCLUSIVE without owner before.
pub fn restore_kind(v: Version) -> NotifierEventKind {
    if v.kernel_version >= (6 << 16) | (15 << 8) {
        NotifierEventKind::Clear
    } else {
        NotifierEventKind::Exclusive
    }
}

/// Whether a held page may have been revoked by a VMA split nearby: splitting
/// a VMA (munmap, mprotect of part of it) calls split_huge_pmd_address(),
/// which invalidates the whole 2 MiB block around the split point
/// (MMU_NOTIFY_CLEAR) even when no huge PMD maps it.
pub fn split_clear_covers(ev: &[NotifierEvent], addr: u64) -> bool {
    ev.iter().any(|e| {
        e.kind == NotifierEventKind::Clear
            && e.end - e.start == 2 << 20
            && e.start <= addr
            && addr < e.end
    })
}

/// The device file of child `pid`: reads the child's fd number from the
/// pipe end `from` (4 bytes, or panics with `what`), then takes a duplicate
/// of that fd with pidfd_open/pidfd_getfd. The file lives on in this
/// process whatever the child does next.
pub fn child_device(pid: libc::pid_t, from: libc::c_int, what: &str) -> NotifierClient {
    let mut child_fd = -1i32;
    // SAFETY: reads 4 bytes into child_fd; the syscalls take plain integers
    // and the fd they return is owned by the File from here on.
    let file = unsafe {
        let n = libc::read(from, (&mut child_fd as *mut i32).cast(), 4);
        assert_eq!(n, 4, "{what}");
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        assert!(pidfd >= 0, "pidfd_open");
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd, child_fd, 0) as i32;
        assert!(fd >= 0, "pidfd_getfd: {}", io::Error::last_os_error());
        libc::close(pidfd);
        use std::os::unix::io::FromRawFd;
        File::from_raw_fd(fd)
    };
    NotifierClient::from_file(file).expect("device of the child")
}
