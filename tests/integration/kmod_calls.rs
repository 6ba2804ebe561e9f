//! Long calls that stop on signals and give way to DETACH, callers racing
//! each other, what a read-only or unprivileged opener may do, and the
//! extensible ABI (flags and reserved fields that must be zero).

use crate::kmod_util::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Pages of the long conversions below: far more than a lab converts in
/// the 100 ms before they are interrupted.
const LONG: u64 = 1 << 15;

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// SIGUSR1 interrupts syscalls (no SA_RESTART) and does nothing else.
fn catch_sigusr1() {
    // SAFETY: installs a handler that does nothing; sa is fully initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_signal_stops_a_long_conversion_with_its_progress() {
    let Some(dev) = exclusive_lab() else { return };
    catch_sigusr1();
    let r = region(LONG);
    let a = r.addr();
    dev.attach(a, LONG * PAGE).expect("attach");
    let tid = AtomicU64::new(0);
    let (conv, took) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            // SAFETY: gettid has no preconditions.
            tid.store(unsafe { libc::gettid() } as u64, Ordering::SeqCst);
            let t0 = Instant::now();
            let c = dev.convert(a, LONG);
            (c, t0.elapsed())
        });
        while tid.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signals our own thread, which handles SIGUSR1.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                tid.load(Ordering::SeqCst) as libc::pid_t,
                libc::SIGUSR1,
            )
        };
        t.join().expect("converter")
    });
    println!(
        "# signal after 100 ms: {} of {LONG} pages in {took:?}",
        conv.count
    );
    assert!(conv.error.is_none(), "{:?}", conv.error);
    assert!(
        conv.count > 0 && conv.count < LONG,
        "the signal did not stop the call: {} of {LONG}",
        conv.count
    );
    let st = dev.stats().expect("stats");
    assert_eq!(st.pages_held, conv.count, "{st:?}");
    // The rest converts in a later call.
    let rest = dev.make_exclusive(a, LONG).expect("rest");
    assert_eq!(conv.count + rest, LONG);
}

/// A conversion that fails part way says how far it got.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_failed_conversion_reports_its_progress() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(4);
    let a = r.addr();
    dev.attach(a, 4 * PAGE).expect("attach");
    // SAFETY: unmaps the third page of our own mapping: a hole.
    unsafe { libc::munmap((a + 2 * PAGE) as *mut libc::c_void, PAGE as usize) };
    let conv = dev.convert(a, 4);
    let errno = conv.error.as_ref().and_then(Error::errno);
    assert_eq!((conv.count, errno), (2, Some(libc::EFAULT)), "{conv:?}");
    assert_eq!(dev.stats().expect("stats").pages_held, 2);
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_detach_gives_way_to_a_long_conversion() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(LONG);
    let a = r.addr();
    dev.attach(a, LONG * PAGE).expect("attach");
    let started = AtomicBool::new(false);
    let (conv, detach_took) = std::thread::scope(|s| {
        let t = s.spawn(|| {
            started.store(true, Ordering::SeqCst);
            dev.convert(a, LONG)
        });
        while !started.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        dev.detach().expect("detach");
        let took = t0.elapsed();
        (t.join().expect("converter"), took)
    });
    println!(
        "# DETACH after 100 ms: took {detach_took:?}; conversion {} of {LONG}, {:?}",
        conv.count, conv.error
    );
    assert!(conv.count < LONG, "DETACH waited for the whole conversion");
    assert!(detach_took < Duration::from_secs(2), "{detach_took:?}");
    assert_eq!(dev.stats().expect("stats").pages_held, 0);
    assert_eq!(errno_of(dev.make_exclusive(a, 1)), libc::ENOTCONN);
}

/// Converters, a detacher and the CPU race on one device for a while; the
/// counters must stay consistent and the kernel quiet (dmesg is checked by
/// lab_kmod.rs).
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_detach_and_two_converters_race_on_the_same_pages() {
    let Some(dev) = exclusive_lab() else { return };
    let pages = 4;
    let r = region(pages);
    let a = r.addr();
    dev.attach(a, pages * PAGE).expect("attach");
    let stop = AtomicBool::new(false);
    let unexpected = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match dev.make_exclusive(a, pages) {
                        Ok(_) => {}
                        Err(e) if matches!(e.errno(), Some(libc::ENOTCONN | libc::EINTR)) => {}
                        Err(e) => unexpected.lock().expect("lock").push(e.to_string()),
                    }
                    let _ = dev.device_access(a + 8, AccessOp::Add(1));
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                cpu_write(a + PAGE, cpu_read(a + PAGE) + 1);
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        s.spawn(|| {
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(25));
                let _ = dev.detach();
                let st = dev.stats().expect("stats");
                assert_eq!(st.pages_held, 0, "held after detach: {st:?}");
                dev.attach(a, pages * PAGE).expect("attach again");
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let unexpected = unexpected.into_inner().expect("lock");
    assert!(unexpected.is_empty(), "{unexpected:?}");
    let held = dev.query(a, pages).expect("query");
    let st = dev.stats().expect("stats");
    let n = held.iter().filter(|s| s.hold == Hold::Held).count() as u64;
    assert_eq!(st.pages_held, n, "{st:?} {held:?}");
    println!("# race: {st:?}");
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_read_only_file_cannot_change_the_device() {
    let Some(rw) = lab() else { return };
    let ro = NotifierClient::from_file(File::open(DEVICE_PATH).expect("open read-only"))
        .expect("read-only client");
    let r = region(2);
    let a = r.addr();
    assert_eq!(errno_of(ro.attach(a, PAGE)), libc::EBADF);
    assert_eq!(errno_of(ro.detach()), libc::EBADF);
    assert_eq!(errno_of(ro.make_exclusive(a, 1)), libc::EBADF);
    assert_eq!(errno_of(ro.release(a, 1)), libc::EBADF);
    assert_eq!(
        errno_of(ro.device_access(a, AccessOp::Write(1))),
        libc::EBADF
    );
    assert_eq!(
        errno_of(ro.device_access(a, AccessOp::Read)),
        libc::ENOTCONN
    );
    ro.stats().expect("STATS needs no write access");
    rw.attach(a, 2 * PAGE).expect("read-write attach");
}

fn raw_attach(dev: &NotifierClient, a: mmuvisor_attach) -> i32 {
    // SAFETY: ATTACH reads one mmuvisor_attach from the valid &a.
    let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(dev, MMUVISOR_IOC_ATTACH(), &a) };
    if ret < 0 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_flags_and_reserved_fields_must_be_zero() {
    let Some(dev) = lab() else { return };
    let r = region(4);
    let a = r.addr();
    let base = mmuvisor_attach {
        start: a,
        length: 4 * PAGE,
        ..Default::default()
    };
    for bad in [
        mmuvisor_attach {
            flags: 1 << 2,
            ..base
        },
        mmuvisor_attach {
            flags: ATTACH_OMIT_OWN | ATTACH_COALESCE_OWN,
            ..base
        },
        mmuvisor_attach {
            reserved0: 1,
            ..base
        },
        mmuvisor_attach {
            reserved1: 1,
            ..base
        },
    ] {
        assert_eq!(raw_attach(&dev, bad), libc::EINVAL, "{bad:?}");
    }
    assert_eq!(raw_attach(&dev, base), 0);
    let mut states = [mmuvisor_page_state::default(); 4];
    let q = mmuvisor_query {
        addr: a,
        npages: 4,
        states: states.as_mut_ptr() as u64,
        ..Default::default()
    };
    for (bad, want) in [
        (mmuvisor_query { flags: 1, ..q }, libc::EINVAL),
        (mmuvisor_query { reserved0: 1, ..q }, libc::EINVAL),
        (mmuvisor_query { reserved1: 1, ..q }, libc::EINVAL),
        (q, 0),
    ] {
        let mut bad = bad;
        // SAFETY: QUERY with a valid struct whose states point at 4 records.
        let ret = unsafe {
            vmm_sys_util::ioctl::ioctl_with_mut_ref(&dev, MMUVISOR_IOC_QUERY(), &mut bad)
        };
        let errno = if ret < 0 {
            io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        };
        assert_eq!(errno, want, "{bad:?}");
    }
}

/// CAP_SYS_ADMIN dropped from the effective set of this process (a
/// forked child): linux/capability.h v3.
fn drop_cap_sys_admin() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data records.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()) != 0 {
            return false;
        }
        d[0].effective &= !(1 << 21); // CAP_SYS_ADMIN
        libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) == 0
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_pfns_only_for_cap_sys_admin() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(2);
    let a = r.addr();
    dev.attach(a, 2 * PAGE).expect("attach");
    dev.make_exclusive(a, 1).expect("convert");
    let q = dev.query(a, 1).expect("query");
    assert!(q[0].hold == Hold::Held && q[0].pfn != 0, "{q:?}");
    drop(dev);
    let code = fork_child(|| {
        if !drop_cap_sys_admin() {
            return 10;
        }
        let Ok(d) = NotifierClient::open() else {
            return 11;
        };
        if d.attach(a, 2 * PAGE).is_err() || d.make_exclusive(a, 1).is_err() {
            return 12;
        }
        match d.query(a, 1) {
            Ok(q) if q[0].hold == Hold::Held && q[0].pfn == 0 => 0,
            Ok(_) => 1,
            Err(_) => 13,
        }
    });
    assert_eq!(code, 0, "a PFN reached a caller without CAP_SYS_ADMIN");
}
