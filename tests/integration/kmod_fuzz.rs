//! Random ioctls from several threads on one device while other threads
//! munmap and map back, mprotect, MADV_DONTNEED, MADV_PAGEOUT, fork, and
//! open, convert and close other devices on the same memory. Any errno the
//! ABI documents is fine; the kernel log must stay clean (lab_kmod.rs
//! checks dmesg). Runs MMUVISOR_FUZZ_SECS seconds (default 5; the
//! debug-kernel lab run sets 60).

use crate::kmod_util::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Pages [0, STABLE) stay mapped; [STABLE, PAGES) are unmapped and mapped
/// back all the time, so only the kernel touches them.
const PAGES: u64 = 64;
const STABLE: u64 = 48;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn secs() -> u64 {
    std::env::var("MMUVISOR_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

const DOCUMENTED: [i32; 16] = [
    libc::EINVAL,
    libc::E2BIG,
    libc::ERANGE,
    libc::ENOTCONN,
    libc::EBUSY,
    libc::EPERM,
    libc::EOPNOTSUPP,
    libc::EACCES,
    libc::EFAULT,
    libc::EINTR,
    libc::ENOENT,
    libc::ENOLINK,
    libc::ENOTTY,
    libc::EBADF,
    libc::ENOMEM,
    libc::EAGAIN,
];

/// One random ioctl on `fd` around [a, a + PAGES pages); its errno or 0.
fn random_ioctl(fd: i32, a: u64, x: &mut u64, states: &mut [mmuvisor_page_state; 64]) -> i32 {
    let cmds = [
        MMUVISOR_IOC_MAKE_EXCLUSIVE(),
        MMUVISOR_IOC_RELEASE(),
        MMUVISOR_IOC_DEVICE_ACCESS(),
        MMUVISOR_IOC_QUERY(),
        MMUVISOR_IOC_ATTACH(),
        MMUVISOR_IOC_DETACH(),
        MMUVISOR_IOC_STATS(),
        MMUVISOR_IOC_VERSION(),
    ];
    let pick = |v: u64| match v % 6 {
        0 => a + (v >> 8) % ((PAGES + 8) * PAGE),
        1 | 5 => a + ((v >> 8) % (PAGES + 8)) * PAGE,
        2 => v,
        3 => a.wrapping_sub(PAGE),
        _ => (v >> 3) << 3,
    };
    let (r0, r1, r2) = (xorshift(x), xorshift(x), xorshift(x));
    let mut buf = [pick(r0), r1 % (PAGES + 8), pick(r2), 0, 0, 0];
    let mut cmd = cmds[(xorshift(x) % cmds.len() as u64) as usize];
    match xorshift(x) % 10 {
        0 => buf[1] = xorshift(x),
        1 => buf[3] = xorshift(x),
        2 => cmd = xorshift(x) & 0xffff_ffff,
        _ => {}
    }
    if cmd == MMUVISOR_IOC_ATTACH() {
        if !xorshift(x).is_multiple_of(4) {
            buf[0] = a;
            buf[1] = PAGES * PAGE;
        }
        // flags: 0, OMIT, COALESCE, both (EINVAL) or junk.
        buf[2] = if xorshift(x).is_multiple_of(8) {
            xorshift(x)
        } else {
            xorshift(x) % 4
        };
    }
    if cmd == MMUVISOR_IOC_DEVICE_ACCESS() {
        // op and flags share the second word.
        buf[1] = (buf[1] % 5) | ((xorshift(x) % 8 / 7) << 32);
    }
    if cmd == MMUVISOR_IOC_QUERY() {
        buf[1] %= 64;
        buf[2] = if !xorshift(x).is_multiple_of(3) {
            states.as_mut_ptr() as u64
        } else {
            xorshift(x) | 1 << 63
        };
        buf[4] = if xorshift(x).is_multiple_of(8) {
            xorshift(x)
        } else {
            0
        };
    }
    if cmd == MMUVISOR_IOC_DETACH() && !xorshift(x).is_multiple_of(8) {
        return 0;
    }
    let size = (cmd >> 16) & 0x3fff;
    let mut st = mmuvisor_stats::default();
    // SAFETY: `buf` is 48 writable bytes, enough for every struct of ours
    // but STATS, which gets its own; QUERY output is bounded above; other
    // sizes get a null pointer.
    let ret = unsafe {
        if size == 96 {
            libc::ioctl(fd, cmd as _, &mut st)
        } else if size > 48 {
            libc::ioctl(fd, cmd as _, std::ptr::null_mut::<u8>())
        } else {
            libc::ioctl(fd, cmd as _, buf.as_mut_ptr())
        }
    };
    if ret < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// Maps anonymous memory at `addr` (MAP_FIXED) and touches it.
fn map_back(addr: u64, len: u64) {
    // SAFETY: replaces pages of our own churn area, which no thread touches
    // through the CPU.
    unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        );
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_fuzz_ioctls_racing_memory_changes() {
    let Some(dev) = lab() else { return };
    let r = region(PAGES);
    let a = r.addr();
    dev.attach(a, PAGES * PAGE).expect("attach");
    let fd = dev.as_raw_fd();
    let seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let undocumented = std::sync::Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(secs());
    let dev = &dev;
    /// Stops every thread even if one panics.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for t in 0..3u64 {
            let (stop, calls, undocumented) = (&stop, &calls, &undocumented);
            s.spawn(move || {
                let mut x = seed ^ ((t + 1) * 0x1234_5678);
                let mut states = [mmuvisor_page_state::default(); 64];
                while !stop.load(Ordering::Relaxed) {
                    let e = random_ioctl(fd, a, &mut x, &mut states);
                    if e != 0 && !DOCUMENTED.contains(&e) {
                        undocumented.lock().expect("lock").push(e);
                    }
                    if xorshift(&mut x).is_multiple_of(7) {
                        let _ = dev.read_events();
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The CPU and mm on the stable pages: only this thread touches them.
        s.spawn(|| {
            let mut x = seed ^ 0x5555;
            while !stop.load(Ordering::Relaxed) {
                let p = a + (xorshift(&mut x) % STABLE) * PAGE;
                let (pa, len) = (p as *mut libc::c_void, PAGE as usize);
                // SAFETY: page-sized operations on our own stable pages; the
                // protection is restored to read-write right away.
                unsafe {
                    match xorshift(&mut x) % 8 {
                        0 => {
                            libc::madvise(pa, len, libc::MADV_DONTNEED);
                        }
                        1 => {
                            libc::madvise(pa, len, libc::MADV_PAGEOUT);
                        }
                        2 => {
                            libc::mprotect(pa, len, libc::PROT_READ);
                            libc::mprotect(pa, len, libc::PROT_READ | libc::PROT_WRITE);
                        }
                        3 => {
                            let _ = cpu_read(p);
                        }
                        _ => cpu_write(p + 8, xorshift(&mut x)),
                    }
                }
            }
        });
        // The churn pages: unmapped and mapped back, re-protected, paged out.
        s.spawn(|| {
            let mut x = seed ^ 0x7777;
            while !stop.load(Ordering::Relaxed) {
                let p = a + (STABLE + xorshift(&mut x) % (PAGES - STABLE)) * PAGE;
                let len = PAGE * (1 + xorshift(&mut x) % 2);
                let len = len.min(a + PAGES * PAGE - p);
                // SAFETY: operations on our own churn pages, which no
                // thread touches through the CPU.
                unsafe {
                    match xorshift(&mut x) % 4 {
                        0 => {
                            libc::munmap(p as *mut libc::c_void, len as usize);
                            std::thread::yield_now();
                            map_back(p, len);
                        }
                        1 => {
                            libc::mprotect(p as *mut libc::c_void, len as usize, libc::PROT_READ);
                            libc::mprotect(
                                p as *mut libc::c_void,
                                len as usize,
                                libc::PROT_READ | libc::PROT_WRITE,
                            );
                        }
                        2 => {
                            libc::madvise(p as *mut libc::c_void, len as usize, libc::MADV_PAGEOUT);
                        }
                        _ => {
                            libc::madvise(
                                p as *mut libc::c_void,
                                len as usize,
                                libc::MADV_DONTNEED,
                            );
                        }
                    }
                }
            }
        });
        // fork: the child reads, tries the inherited device (EPERM), exits.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: the child only reads memory and makes raw syscalls
                // before _exit.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: as above.
                    unsafe {
                        let _ = std::ptr::read_volatile(a as *const u64);
                        let mut rr = mmuvisor_range {
                            addr: a,
                            npages: 1,
                            ..Default::default()
                        };
                        let ret = libc::ioctl(fd, MMUVISOR_IOC_MAKE_EXCLUSIVE() as _, &mut rr);
                        let errno = *libc::__errno_location();
                        let ok = ret < 0 && matches!(errno, libc::EPERM | libc::ENOTCONN);
                        libc::_exit(if ok { 0 } else { 1 });
                    }
                }
                if pid > 0 {
                    let mut status = 0;
                    // SAFETY: waits for our child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "forked child: status {status:#x}"
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // Other devices on the same memory, closed while holding pages.
        s.spawn(|| {
            let mut x = seed ^ 0x9999;
            while !stop.load(Ordering::Relaxed) {
                let d = NotifierClient::open().expect("open");
                let own = match xorshift(&mut x) % 3 {
                    0 => OwnEvents::Each,
                    1 => OwnEvents::Omit,
                    _ => OwnEvents::Coalesce,
                };
                if d.attach_with(a, STABLE * PAGE, own).is_ok() {
                    let p = xorshift(&mut x) % STABLE;
                    let _ = d.make_exclusive(a + p * PAGE, (STABLE - p).min(4));
                    let _ = d.query(a, STABLE);
                }
                drop(d);
            }
        });
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let undocumented = undocumented.into_inner().expect("lock");
    assert!(
        undocumented.is_empty(),
        "undocumented errnos: {undocumented:?}"
    );
    let st = dev.stats().expect("stats");
    if st.attach_length == PAGES * PAGE && st.attach_start == a {
        let held = dev.query(a, PAGES).expect("query");
        let n = held.iter().filter(|s| s.hold == Hold::Held).count() as u64;
        assert_eq!(st.pages_held, n, "{st:?}");
    }
    println!(
        "# fuzz: {} calls in {} s; {st:?}",
        calls.load(Ordering::Relaxed),
        secs()
    );
}
