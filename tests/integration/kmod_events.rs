//! The event stream: loss always in band, own conversions left out or
//! coalesced, blocking and non-blocking reads, end of file after DETACH
//! and after the address space went away.

use crate::kmod_util::*;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

/// Reads until the ring is empty.
fn drain(dev: &NotifierClient) -> Vec<NotifierEvent> {
    let mut all = Vec::new();
    loop {
        let ev = dev.read_events().expect("events");
        if ev.is_empty() {
            return all;
        }
        all.extend(ev);
    }
}

/// seq is contiguous (each record stands for seq .. seq + count) and
/// time_ns never goes backwards along it.
fn assert_stream_ordered(ev: &[NotifierEvent]) {
    for w in ev.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + u64::from(w[0].count), "{w:?}");
        assert!(w[1].time_ns >= w[0].time_ns, "time went back: {w:?}");
    }
}

fn madvise(addr: u64, len: u64, advice: i32) {
    // SAFETY: advice on a range of the test's own mapping.
    let ret = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, advice) };
    assert_eq!(ret, 0, "madvise: {}", io::Error::last_os_error());
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_event_ring_overflow_reported_in_band_and_by_poll() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(1);
    let a = r.addr();
    dev.attach(a, PAGE).expect("attach");
    let idle = dev.poll_events(Duration::from_millis(10)).expect("poll");
    assert_eq!(idle, Readiness::default());
    let rounds = u64::from(RING_CAPACITY) / 2 + 100;
    for i in 0..rounds {
        dev.make_exclusive(a, 1).expect("convert");
        cpu_write(a, i);
    }
    let cap = u64::from(RING_CAPACITY);
    let st = dev.stats().expect("stats");
    assert_eq!(st.events_seen, 2 * rounds, "{st:?}");
    assert_eq!(st.events_queued, cap, "{st:?}");
    assert_eq!(st.events_dropped, 2 * rounds - (cap - 1), "{st:?}");
    assert_eq!(st.revocations, rounds);
    let ready = dev.poll_events(Duration::ZERO).expect("poll");
    assert!(
        ready.readable && ready.overflow && !ready.hangup,
        "{ready:?}"
    );

    let all = drain(&dev);
    assert_eq!(all.len() as u64, cap);
    assert_stream_ordered(&all);
    let last = all.last().expect("records");
    assert!(last.is_overflow(), "{last:?}");
    assert_eq!(u64::from(last.count), st.events_dropped);
    assert!(all[..all.len() - 1].iter().all(|e| !e.is_overflow()));
    let ready = dev.poll_events(Duration::ZERO).expect("poll");
    assert!(!ready.overflow && !ready.readable, "{ready:?}");

    // Room again: the next record follows the lost ones.
    dev.make_exclusive(a, 1).expect("convert");
    let ev = dev.wait_events(Duration::from_secs(1)).expect("events");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].seq, 2 * rounds, "seq counts lost records too");
}

/// One conversion of more pages than the ring holds must not hide the
/// foreign invalidation that comes after it, when the stream leaves out or
/// coalesces the device's own conversions.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_own_conversions_left_out_or_coalesced() {
    let Some(dev) = exclusive_lab() else { return };
    drop(dev);
    let n = u64::from(RING_CAPACITY) + 1000;
    for own in [OwnEvents::Omit, OwnEvents::Coalesce] {
        let dev = NotifierClient::open().expect("open");
        let r = region(n);
        let a = r.addr();
        dev.attach_with(a, n * PAGE, own).expect("attach");
        assert_eq!(dev.make_exclusive(a, n).expect("convert"), n);
        madvise(a + 7 * PAGE, PAGE, libc::MADV_DONTNEED);
        let st = dev.stats().expect("stats");
        let ev = drain(&dev);
        assert_eq!(st.events_dropped, 0, "{own:?} {st:?}");
        assert_stream_ordered(&ev);
        let foreign: Vec<_> = ev.iter().filter(|e| !e.owner_is_self).collect();
        assert!(
            foreign
                .iter()
                .any(|e| e.revoked == 1 && e.start <= a + 7 * PAGE && e.end >= a + 8 * PAGE),
            "{own:?}: the DONTNEED is missing: {foreign:?}"
        );
        let own_records: Vec<_> = ev.iter().filter(|e| e.owner_is_self).collect();
        match own {
            OwnEvents::Omit => assert!(own_records.is_empty(), "{own_records:?}"),
            _ => {
                let merged: u64 = own_records.iter().map(|e| u64::from(e.count)).sum();
                assert!(merged >= n, "{merged} of {n} conversions");
                assert!(own_records.len() < 16, "{} records", own_records.len());
                assert_eq!(own_records[0].start, a);
            }
        }
        println!(
            "# {own:?}: {} records for {n} conversions and one DONTNEED",
            ev.len()
        );
    }
}

/// Clears O_NONBLOCK on the device file: its reads then block.
fn set_blocking(dev: &NotifierClient) {
    let fd = dev.as_raw_fd();
    // SAFETY: fcntl on our own open file.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        assert_eq!(libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK), 0);
    }
}

/// One blocking read() on `fd` in a thread; its byte count or errno.
fn read_in_thread(fd: i32) -> mpsc::Receiver<isize> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [mmuvisor_event::default(); 4];
        // SAFETY: reads at most size_of_val(&buf) bytes into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
        let _ = tx.send(if n < 0 {
            -(io::Error::last_os_error().raw_os_error().unwrap_or(0) as isize)
        } else {
            n
        });
    });
    rx
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_blocking_read_wakes_on_events_and_ends_after_detach() {
    let Some(dev) = lab() else { return };
    let r = region(4);
    let a = r.addr();
    dev.attach(a, 4 * PAGE).expect("attach");
    set_blocking(&dev);
    let rx = read_in_thread(dev.as_raw_fd());
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "read returned with nothing queued"
    );
    madvise(a, PAGE, libc::MADV_DONTNEED);
    let n = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("read woke up");
    assert_eq!(n as usize % std::mem::size_of::<mmuvisor_event>(), 0);
    assert!(n > 0, "read: {n}");

    // Records queued before DETACH are still read after it, then end of file.
    madvise(a + PAGE, PAGE, libc::MADV_DONTNEED);
    dev.detach().expect("detach");
    let ready = dev.poll_events(Duration::ZERO).expect("poll");
    assert!(ready.readable && !ready.hangup, "{ready:?}");
    let rx = read_in_thread(dev.as_raw_fd());
    assert!(rx.recv_timeout(Duration::from_secs(5)).expect("read") > 0);
    let rx = read_in_thread(dev.as_raw_fd());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(0),
        "end of file"
    );
    let ready = dev.poll_events(Duration::ZERO).expect("poll");
    assert!(ready.hangup && !ready.readable, "{ready:?}");

    // A reader blocked before DETACH gets end of file too.
    dev.attach(a, 4 * PAGE).expect("attach again");
    let rx = read_in_thread(dev.as_raw_fd());
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    dev.detach().expect("detach");
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0));
}

/// The device file of a child process that attached it to its own memory;
/// `exit` tells the child to exit.
fn device_of_child() -> (NotifierClient, libc::pid_t, impl FnOnce()) {
    let mut fds = [0i32; 2];
    let mut go = [0i32; 2];
    // SAFETY: two pipes into valid arrays.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::pipe(go.as_mut_ptr()) }, 0);
    // SAFETY: the child makes syscalls on its own memory and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain syscalls; the child leaves with _exit.
        unsafe {
            let Ok(d) = NotifierClient::open() else {
                libc::_exit(2)
            };
            let Ok(r) = HostMapping::small_pages(16 * PAGE as usize) else {
                libc::_exit(3)
            };
            r.populate();
            if d.attach(r.addr(), 16 * PAGE).is_err() {
                libc::_exit(4);
            }
            libc::madvise(
                r.addr() as *mut libc::c_void,
                PAGE as usize,
                libc::MADV_DONTNEED,
            );
            let fd = d.as_raw_fd();
            libc::write(fds[1], (&fd as *const i32).cast(), 4);
            let mut b = 0u8;
            libc::read(go[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    let dev = child_device(pid, fds[0], "child did not send its fd");
    let w = go[1];
    let exit = move || {
        // SAFETY: writes one byte to our pipe.
        unsafe { libc::write(w, [1u8].as_ptr().cast(), 1) };
    };
    (dev, pid, exit)
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_end_of_stream_when_the_address_space_goes_away() {
    let Some(_) = lab() else { return };
    let (dev, pid, exit) = device_of_child();
    exit();
    let mut status = 0;
    // SAFETY: waits for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let ev = drain(&dev);
    assert!(
        ev.iter().any(|e| e.kind == NotifierEventKind::Release),
        "{ev:?}"
    );
    let ready = dev.poll_events(Duration::from_millis(100)).expect("poll");
    assert!(ready.hangup && !ready.readable, "{ready:?}");
    set_blocking(&dev);
    let rx = read_in_thread(dev.as_raw_fd());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(0),
        "end of file"
    );
}

/// A reader stuck in copy_to_user (its buffer is a userfaultfd page nobody
/// fills) must not make an O_NONBLOCK reader sleep.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_nonblocking_reader_never_sleeps() {
    let Some(dev) = lab() else { return };
    let r = region(4);
    let a = r.addr();
    dev.attach(a, 4 * PAGE).expect("attach");
    let Some(uffd) = Userfault::new(PAGE) else {
        return println!("# SKIP no userfaultfd");
    };
    madvise(a, PAGE, libc::MADV_DONTNEED);
    let stuck = Arc::new(Mutex::new(None));
    let fd = dev.as_raw_fd();
    let buf = uffd.addr;
    let done = stuck.clone();
    let t = std::thread::spawn(move || {
        // SAFETY: reads one record into the registered page; the fault
        // blocks until the userfaultfd goes away.
        let n = unsafe { libc::read(fd, buf as *mut libc::c_void, 48) };
        *done.lock().expect("lock") = Some(n);
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(stuck.lock().expect("lock").is_none(), "reader not stuck");
    madvise(a + PAGE, PAGE, libc::MADV_DONTNEED);
    // The O_NONBLOCK read in a thread too: if it sleeps, it sleeps until
    // the stuck reader goes, which dropping the userfaultfd makes happen.
    let (tx, rx) = mpsc::channel();
    let nb = std::thread::spawn(move || {
        let mut buf = [mmuvisor_event::default(); 4];
        let t0 = Instant::now();
        // SAFETY: reads at most size_of_val(&buf) bytes into buf.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
        let _ = tx.send((n, t0.elapsed()));
    });
    let got = rx.recv_timeout(Duration::from_secs(1));
    drop(uffd);
    t.join().expect("reader");
    nb.join().expect("nonblocking reader");
    let (n, took) = got.expect("the O_NONBLOCK read slept behind the stuck reader");
    println!("# nonblocking read beside a stuck reader: {n} bytes in {took:?}");
    assert!(
        took < Duration::from_millis(200),
        "O_NONBLOCK read slept {took:?}"
    );
}

/// A page registered with userfaultfd (missing mode) that nobody fills.
struct Userfault {
    fd: i32,
    addr: u64,
    len: u64,
}

impl Userfault {
    fn new(len: u64) -> Option<Self> {
        #[repr(C)]
        struct Api {
            api: u64,
            features: u64,
            ioctls: u64,
        }
        #[repr(C)]
        struct Register {
            start: u64,
            len: u64,
            mode: u64,
            ioctls: u64,
        }
        // SAFETY: userfaultfd setup on a fresh mapping of our own; the
        // structs match linux/userfaultfd.h (UFFDIO_API 0xc018aa3f,
        // UFFDIO_REGISTER 0xc020aa00).
        unsafe {
            let fd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) as i32;
            if fd < 0 {
                return None;
            }
            let mut api = Api {
                api: 0xaa,
                features: 0,
                ioctls: 0,
            };
            if libc::ioctl(fd, 0xc018_aa3f, &mut api) != 0 {
                libc::close(fd);
                return None;
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let mut reg = Register {
                start: p as u64,
                len,
                mode: 1,
                ioctls: 0,
            };
            if libc::ioctl(fd, 0xc020_aa00, &mut reg) != 0 {
                libc::close(fd);
                libc::munmap(p, len as usize);
                return None;
            }
            Some(Userfault {
                fd,
                addr: p as u64,
                len,
            })
        }
    }
}

impl Drop for Userfault {
    fn drop(&mut self) {
        // SAFETY: closing the userfaultfd wakes the faulting reader (the
        // fault is retried without it); then the mapping goes.
        unsafe {
            libc::close(self.fd);
        }
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len as usize) };
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_event_manager_subscriber() {
    use event_manager::{EventManager, SubscriberOps};
    let Some(dev) = lab() else { return };
    let r = region(4);
    dev.attach(r.addr(), 4 * PAGE).expect("attach");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let sub = dev
        .subscriber(move |e: &NotifierEvent| sink.lock().expect("lock").push(*e))
        .expect("subscriber");
    let mut em = EventManager::new().expect("event manager");
    em.add_subscriber(sub);
    madvise(r.addr(), 2 * PAGE, libc::MADV_DONTNEED);
    let n = em.run_with_timeout(1000).expect("run");
    assert!(n >= 1);
    let seen = seen.lock().expect("lock");
    assert!(
        seen.iter()
            .any(|e| e.start <= r.addr() && e.end >= r.addr() + 2 * PAGE),
        "{seen:?}"
    );
}

/// time_ns never goes backwards along seq, also when one thread's
/// conversions (own events, queued at once) race another thread's
/// invalidation that first revokes many held pages under the device lock
/// (two lab CPUs show it best).
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_timestamps_follow_seq_under_concurrent_invalidations() {
    let Some(dev) = exclusive_lab() else { return };
    let (x, y) = (4096u64, 256u64);
    let r = region(x + y);
    let a = r.addr();
    dev.attach(a, (x + y) * PAGE).expect("attach");
    let mut all = Vec::new();
    for _ in 0..40 {
        dev.release(a + x * PAGE, y).expect("release");
        for chunk in (0..x).step_by(1024) {
            dev.make_exclusive(a + chunk * PAGE, 1024).expect("convert");
            let _ = drain(&dev);
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..y {
                    let _ = dev.make_exclusive(a + (x + i) * PAGE, 1);
                }
            });
            s.spawn(|| madvise(a, x * PAGE, libc::MADV_DONTNEED));
        });
        all.extend(drain(&dev));
        // SAFETY: repopulates the pages the DONTNEED dropped.
        (0..x).for_each(|i| cpu_write(a + i * PAGE, i));
    }
    assert_eq!(dev.stats().expect("stats").events_dropped, 0);
    for w in all.windows(2).filter(|w| w[1].seq == w[0].seq + 1) {
        assert!(w[1].time_ns >= w[0].time_ns, "time went back: {w:?}");
    }
}
