//! Held pages when the address space goes: process exit, close without
//! DETACH, munmap, the OOM killer; and callers racing each other.

use crate::kmod_util::*;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_exit_and_close_while_exclusive() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(64);
    let (a, len) = (r.addr(), r.len() as u64);
    // A child process converts pages and exits with them exclusive, the
    // file still open and attached.
    let code = fork_child(|| {
        let Ok(d) = NotifierClient::open() else {
            return 2;
        };
        if d.attach(a, len).is_err() || d.make_exclusive(a, 64).is_err() {
            return 3;
        }
        std::mem::forget(d);
        0
    });
    assert_eq!(code, 0);
    // Close without detach, pages exclusive, in this process.
    let d = NotifierClient::open().expect("open");
    d.attach(a, len).expect("attach");
    d.make_exclusive(a, 64).expect("convert");
    drop(d);
    assert_eq!(cpu_read(a + 5 * PAGE), 6, "memory intact after close");
    // munmap while exclusive and attached, then detach.
    let r2 = region(8);
    dev.attach(r2.addr(), 8 * PAGE).expect("attach");
    dev.make_exclusive(r2.addr(), 8).expect("convert");
    drop(r2);
    assert_eq!(dev.stats().expect("stats").pages_held, 0);
    dev.detach().expect("detach");
}

/// The OOM killer picks a child holding exclusive pages: its address space
/// is torn down (by the OOM reaper, non-blockable, or by exit) while the
/// device file lives on in this process (taken with pidfd_getfd).
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_oom_kill_while_exclusive() {
    let Some(_dev) = exclusive_lab() else { return };
    let mut fds = [0i32; 2];
    // SAFETY: creates a pipe into the valid two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes syscalls and touches memory, then dies.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain syscalls on our own fds and memory.
        unsafe {
            let adj = b"1000";
            let f = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            libc::write(f, adj.as_ptr().cast(), adj.len());
            let Ok(d) = NotifierClient::open() else {
                libc::_exit(2)
            };
            let Ok(r) = HostMapping::small_pages(64 * PAGE as usize) else {
                libc::_exit(3)
            };
            r.populate();
            if d.attach(r.addr(), 64 * PAGE).is_err() || d.make_exclusive(r.addr(), 64).is_err() {
                libc::_exit(4);
            }
            let fd = d.as_raw_fd();
            libc::write(fds[1], (&fd as *const i32).cast(), 4);
            std::mem::forget(d);
            std::mem::forget(r);
            // The memory hog: locked, populated in the kernel. Locked
            // pages cannot go to swap and the hog takes no page faults of
            // its own, so reclaim soon runs out of progress and the OOM
            // killer comes. A hog that touched its pages one by one kept
            // only 4-12 kB of its text resident (reclaim evicted it and the
            // next fault fetched it again over 9p): 56-125 s to the kill in
            // the debug lab, past the lab's 900 s twice in ~10 suite runs;
            // this one takes 36-38 s.
            let chunk = 64 << 20;
            loop {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    chunk,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_LOCKED | libc::MAP_POPULATE,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED && *libc::__errno_location() != libc::ENOMEM {
                    libc::_exit(5);
                }
            }
        }
    }
    let d = child_device(pid, fds[0], "child did not convert");
    let mut status = 0;
    // SAFETY: waits for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
    let st = d.stats().expect("stats");
    let ev = d.read_events().expect("events");
    let teardown: Vec<_> = ev
        .iter()
        .filter(|e| e.revoked > 0 || e.kind == NotifierEventKind::Release)
        .collect();
    println!("# oom: {st:?}\n# oom teardown events: {teardown:?}");
    assert_eq!(st.pages_held, 0, "all pages revoked when the mm went away");
    assert_eq!(st.revocations, 64);
    // This process is not the attached mm; the context is still attached.
    assert_eq!(errno_of(d.make_exclusive(0, 1)), libc::EPERM);
}

/// Converter, CPU toucher and device accessor race on one device; then two
/// processes do the same at once.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_concurrent_callers() {
    let Some(dev) = exclusive_lab() else { return };
    fn race(dev: &NotifierClient, pages: u64, iters: u64) {
        let r = region(pages);
        let a = r.addr();
        dev.attach(a, pages * PAGE).expect("attach");
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..iters {
                    let p = (i * 7) % pages;
                    let _ = dev.make_exclusive(a + p * PAGE, (pages - p).min(3));
                }
                stop.store(true, Ordering::Relaxed);
            });
            s.spawn(|| {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = (i * 5) % pages;
                    cpu_write(a + p * PAGE + 8, cpu_read(a + p * PAGE + 8) + 1);
                    i += 1;
                }
            });
            s.spawn(|| {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = (i * 3) % pages;
                    let _ = dev
                        .device_access(a + p * PAGE + 16, AccessOp::Add(1))
                        .expect("access");
                    if i.is_multiple_of(64) {
                        let _ = dev.query(a, pages).expect("query");
                        let _ = dev.read_events().expect("events");
                    }
                    i += 1;
                }
            });
        });
        let held = dev
            .query(a, pages)
            .expect("query")
            .iter()
            .filter(|s| s.hold == Hold::Held)
            .count();
        let st = dev.stats().expect("stats");
        assert_eq!(st.pages_held, held as u64, "{st:?}");
        println!("# race: {st:?}");
        dev.detach().expect("detach");
    }
    race(&dev, 16, 400);
    let pids: Vec<_> = (0..2)
        .map(|_| {
            // SAFETY: the child runs the race with its own device and exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let ok = std::panic::catch_unwind(|| {
                    let d = NotifierClient::open().expect("open");
                    race(&d, 8, 200);
                })
                .is_ok();
                // SAFETY: leaves the child.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            pid
        })
        .collect();
    for pid in pids {
        let mut status = 0;
        // SAFETY: waits for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {status:#x}"
        );
    }
}
