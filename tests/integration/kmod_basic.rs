//! The helper module's basic contract: arguments, conversion, access,
//! revocation by munmap, mprotect, fork and another device.

use crate::kmod_util::*;

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_version() {
    let Some(dev) = lab() else { return };
    let v = dev.version();
    println!("# mmuvisor {v:?}");
    assert_eq!(v.abi_version, ABI_VERSION);
    assert_eq!(v.ring_capacity, RING_CAPACITY);
    assert_eq!(u64::from(v.max_npages), MAX_NPAGES);
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_errors_before_attach_and_bad_arguments() {
    let Some(dev) = lab() else { return };
    let r = region(8);
    let a = r.addr();
    assert_eq!(errno_of(dev.make_exclusive(a, 1)), libc::ENOTCONN);
    assert_eq!(errno_of(dev.query(a, 1)), libc::ENOTCONN);
    assert_eq!(errno_of(dev.release(a, 1)), libc::ENOTCONN);
    assert_eq!(
        errno_of(dev.device_access(a, AccessOp::Read)),
        libc::ENOTCONN
    );
    assert_eq!(errno_of(dev.detach()), libc::ENOTCONN);

    assert_eq!(errno_of(dev.attach(a + 1, PAGE)), libc::EINVAL);
    assert_eq!(errno_of(dev.attach(a, 0)), libc::EINVAL);
    assert_eq!(errno_of(dev.attach(a, 100)), libc::EINVAL);
    assert_eq!(errno_of(dev.attach(!(PAGE - 1), 2 * PAGE)), libc::EINVAL);
    assert_eq!(errno_of(dev.attach(1 << 63, PAGE)), libc::EINVAL);
    dev.attach(a, 8 * PAGE).expect("attach");
    assert_eq!(errno_of(dev.attach(a, 8 * PAGE)), libc::EBUSY);

    assert_eq!(errno_of(dev.make_exclusive(a + 8, 1)), libc::EINVAL);
    assert_eq!(errno_of(dev.make_exclusive(a, 0)), libc::EINVAL);
    assert_eq!(errno_of(dev.make_exclusive(a + 8 * PAGE, 1)), libc::ERANGE);
    assert_eq!(errno_of(dev.make_exclusive(a - PAGE, 1)), libc::ERANGE);
    assert_eq!(errno_of(dev.make_exclusive(a, 9)), libc::ERANGE);
    assert_eq!(errno_of(dev.query(a, 9)), libc::ERANGE);
    let big = mmuvisor_range {
        addr: a,
        npages: MAX_NPAGES + 1,
        ..Default::default()
    };
    assert_eq!(
        raw_range(&dev, MMUVISOR_IOC_MAKE_EXCLUSIVE(), big),
        libc::E2BIG
    );
    let wrap = mmuvisor_range {
        addr: a,
        npages: u64::MAX / PAGE,
        ..Default::default()
    };
    assert_eq!(raw_range(&dev, MMUVISOR_IOC_RELEASE(), wrap), libc::E2BIG);
    let reserved = mmuvisor_range {
        addr: a,
        npages: 1,
        count: 0,
        reserved: 1,
    };
    assert_eq!(
        raw_range(&dev, MMUVISOR_IOC_MAKE_EXCLUSIVE(), reserved),
        libc::EINVAL
    );

    assert_eq!(
        errno_of(dev.device_access(a + 4, AccessOp::Read)),
        libc::EINVAL
    );
    assert_eq!(
        errno_of(dev.device_access(a + 8 * PAGE, AccessOp::Read)),
        libc::ERANGE
    );
    let bad_op = mmuvisor_access {
        addr: a,
        op: 3,
        ..Default::default()
    };
    assert_eq!(raw_access(&dev, bad_op), libc::EINVAL);
    let bad_flags = mmuvisor_access {
        addr: a,
        op: 0,
        flags: 1,
        ..Default::default()
    };
    assert_eq!(raw_access(&dev, bad_flags), libc::EINVAL);
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("access"),
        Access::NotHeld
    );

    // Unknown numbers and wrong structure sizes.
    // SAFETY: ioctls the module must refuse without touching memory.
    unsafe {
        assert!(vmm_sys_util::ioctl::ioctl(&dev, 0xbc40) < 0);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTTY)
        );
        let mut junk = [0u64; 3];
        assert!(vmm_sys_util::ioctl::ioctl_with_mut_ref(&dev, 0xc018_bc03, &mut junk) < 0);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
    // A read shorter than one record.
    let mut small = [0u8; 10];
    // SAFETY: reads at most 10 bytes into `small`.
    let n = unsafe { libc::read(dev.as_raw_fd(), small.as_mut_ptr().cast(), small.len()) };
    assert_eq!(
        (n, io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EINVAL))
    );

    // A forked child has another mm: EPERM on the inherited context.
    let code = fork_child(|| match dev.make_exclusive(a, 1) {
        Err(e) if e.errno() == Some(libc::EPERM) => 0,
        _ => 1,
    });
    assert_eq!(code, 0, "child should get EPERM");

    dev.detach().expect("detach");
    assert_eq!(errno_of(dev.detach()), libc::ENOTCONN);
    dev.attach(a, 8 * PAGE).expect("attach again after detach");
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_unsupported_memory() {
    let Some(_dev) = exclusive_lab() else { return };
    let check = |r: &HostMapping, want: i32, what: &str| {
        let d = NotifierClient::open().expect("open");
        d.attach(r.addr(), r.len() as u64).expect("attach");
        assert_eq!(errno_of(d.make_exclusive(r.addr(), 1)), want, "{what}");
    };
    let shared = HostMapping::small_pages_with(
        PAGE as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
    )
    .expect("shared mmap");
    shared.populate();
    check(&shared, libc::EOPNOTSUPP, "MAP_SHARED anonymous");
    let ro = HostMapping::small_pages_with(PAGE as usize, libc::PROT_READ, libc::MAP_PRIVATE)
        .expect("ro");
    check(&ro, libc::EACCES, "read-only private");

    // A private mapping of a file (memfd) is not anonymous memory.
    // SAFETY: creates a memfd we own; mapping it privately.
    unsafe {
        let fd = libc::memfd_create(c"mmv".as_ptr(), 0);
        assert!(fd >= 0);
        assert_eq!(libc::ftruncate(fd, PAGE as i64), 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            PAGE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_volatile(p as *mut u64, 1);
        let d = NotifierClient::open().expect("open");
        d.attach(p as u64, PAGE).expect("attach");
        assert_eq!(
            errno_of(d.make_exclusive(p as u64, 1)),
            libc::EOPNOTSUPP,
            "private file mapping"
        );
        libc::munmap(p, PAGE as usize);
        libc::close(fd);
    }

    // A hole in the attached range.
    let r = region(3);
    // SAFETY: unmaps the middle page of our own mapping.
    unsafe { libc::munmap((r.addr() + PAGE) as *mut libc::c_void, PAGE as usize) };
    let d = NotifierClient::open().expect("open");
    d.attach(r.addr(), 3 * PAGE).expect("attach");
    assert_eq!(errno_of(d.make_exclusive(r.addr() + PAGE, 1)), libc::EFAULT);
    assert_eq!(
        d.make_exclusive(r.addr(), 1).expect("page before the hole"),
        1
    );

    // hugetlb, if the lab has huge pages reserved.
    match HostMapping::small_pages_with(
        2 << 20,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_HUGETLB,
    ) {
        Ok(h) => {
            h.populate();
            check(&h, libc::EOPNOTSUPP, "hugetlb");
        }
        Err(e) => println!("# no hugetlb pages ({e}): hugetlb case not run"),
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_convert_access_revoke() {
    let Some(dev) = lab() else { return };
    if !dev.version().exclusive {
        assert_eq!(errno_of(dev.make_exclusive(0, 1)), libc::ENOTCONN);
        let r = region(1);
        dev.attach(r.addr(), PAGE).expect("attach");
        assert_eq!(errno_of(dev.make_exclusive(r.addr(), 1)), libc::EOPNOTSUPP);
        println!("# SKIP kernel without DEVICE_PRIVATE (EOPNOTSUPP checked)");
        return;
    }
    let n = 8;
    let r = region(16);
    let a = r.addr();
    dev.attach(a, 16 * PAGE).expect("attach");
    for i in 0..n {
        assert!(pagemap(a + i * PAGE).present(), "page {i} present before");
    }
    assert_eq!(dev.make_exclusive(a, n).expect("convert"), n);
    assert_eq!(
        dev.make_exclusive(a, n).expect("again"),
        0,
        "already held pages are skipped"
    );
    for i in 0..n {
        let pm = pagemap(a + i * PAGE);
        assert!(
            !pm.present(),
            "page {i} not present while exclusive: {:#x}",
            pm.raw
        );
        assert!(pm.swapped(), "page {i} is a swap-type entry: {:#x}", pm.raw);
    }
    assert!(pagemap(a + n * PAGE).present(), "page {n} untouched");
    let ev = dev.read_events().expect("events");
    let own: Vec<_> = ev
        .iter()
        .filter(|e| e.kind == NotifierEventKind::Exclusive)
        .collect();
    assert_eq!(own.len() as u64, n, "{ev:?}");
    for (i, e) in own.iter().enumerate() {
        assert!(e.owner_is_self && e.owner_set && e.blockable, "{e:?}");
        assert_eq!(
            (e.start, e.end),
            (a + i as u64 * PAGE, a + (i as u64 + 1) * PAGE)
        );
        assert_eq!(e.revoked, 0);
    }
    assert!(ev
        .windows(2)
        .all(|w| w[1].seq == w[0].seq + 1 && w[1].time_ns >= w[0].time_ns));

    // The device works on its own mapping; the CPU cannot see the page meanwhile.
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("read"),
        Access::Done(1)
    );
    assert_eq!(
        dev.device_access(a, AccessOp::Write(0x1234))
            .expect("write"),
        Access::Done(1)
    );
    assert_eq!(
        dev.device_access(a, AccessOp::Add(0x10)).expect("add"),
        Access::Done(0x1234)
    );
    assert_eq!(
        dev.device_access(a + PAGE, AccessOp::Add(5)).expect("add"),
        Access::Done(2)
    );
    assert!(
        !pagemap(a).present(),
        "device access leaves the CPU PTE alone"
    );
    let q = dev.query(a, 16).expect("query");
    assert!(q[..n as usize]
        .iter()
        .all(|s| s.hold == Hold::Held && s.pfn != 0 && s.revocations == 0));
    assert!(q[n as usize..].iter().all(|s| s.hold == Hold::None));

    // The CPU takes page 0 back: the device loses it, the CPU sees the device's write.
    assert_eq!(cpu_read(a), 0x1244, "value written by the device");
    assert!(pagemap(a).present(), "present again");
    let ev = dev.read_events().expect("events");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, restore_kind(dev.version()));
    assert!(!ev[0].owner_is_self && !ev[0].owner_set);
    assert_eq!((ev[0].start, ev[0].end, ev[0].revoked), (a, a + PAGE, 1));
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("access"),
        Access::Revoked
    );
    let q = dev.query(a, 2).expect("query");
    assert_eq!(
        (q[0].hold, q[0].revocations, q[0].pfn),
        (Hold::Revoked, 1, 0)
    );
    assert_eq!(q[1].hold, Hold::Held);

    // A CPU write to page 1 also revokes and lands after the device's add.
    cpu_write(a + PAGE, cpu_read(a + PAGE) + 100);
    assert_eq!(cpu_read(a + PAGE), 107);
    assert_eq!(
        dev.device_access(a + PAGE, AccessOp::Read).expect("access"),
        Access::Revoked
    );

    // Convert page 0 again: held again, one revocation on record.
    assert_eq!(dev.make_exclusive(a, 1).expect("reconvert"), 1);
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("read"),
        Access::Done(0x1244)
    );
    let st = dev.stats().expect("stats");
    assert_eq!(
        (st.pages_held, st.revocations, st.events_dropped),
        (n - 1, 2, 0)
    );
    assert_eq!((st.attach_start, st.attach_length), (a, 16 * PAGE));

    // RELEASE drops the device mappings without revocations.
    assert_eq!(dev.release(a, 16).expect("release"), n - 1);
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("access"),
        Access::NotHeld
    );
    assert_eq!(dev.query(a, 1).expect("query")[0].hold, Hold::Released);
    let _ = dev.read_events();
    assert_eq!(cpu_read(a + 2 * PAGE), 3, "released page comes back intact");
    let ev = dev.read_events().expect("events");
    assert_eq!((ev.len(), ev[0].revoked), (1, 0), "{ev:?}");
    assert_eq!(dev.stats().expect("stats").pages_held, 0);

    // munmap of held pages: UNMAP revokes them.
    assert_eq!(dev.make_exclusive(a + 8 * PAGE, 4).expect("convert"), 4);
    let _ = dev.read_events();
    assert_eq!(
        // SAFETY: unmaps pages of our own mapping that nothing else uses.
        unsafe { libc::munmap((a + 8 * PAGE) as *mut libc::c_void, 2 * PAGE as usize) },
        0
    );
    let ev = dev.read_events().expect("events");
    assert!(
        ev.iter().any(|e| e.kind == NotifierEventKind::Unmap
            && e.start <= a + 8 * PAGE
            && e.end >= a + 10 * PAGE),
        "no UNMAP event: {ev:?}"
    );
    let q = dev.query(a + 8 * PAGE, 4).expect("query");
    assert_eq!(
        (q[0].hold, q[1].hold),
        (Hold::Revoked, Hold::Revoked),
        "{ev:?}"
    );
    for (i, s) in q.iter().enumerate().skip(2) {
        let addr = a + (8 + i as u64) * PAGE;
        let ok = s.hold == Hold::Held || split_clear_covers(&ev, addr);
        assert!(ok, "page {} revoked without cause: {q:?} {ev:?}", 8 + i);
    }
    dev.detach().expect("detach");
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_mprotect_and_fork_while_exclusive() {
    let Some(dev) = exclusive_lab() else { return };
    let r = region(4);
    let a = r.addr();
    dev.attach(a, 4 * PAGE).expect("attach");
    dev.make_exclusive(a, 4).expect("convert");
    dev.device_access(a, AccessOp::Write(77)).expect("write");
    let _ = dev.read_events();

    assert_eq!(
        // SAFETY: changes protection of our own mapping.
        unsafe { libc::mprotect(a as *mut libc::c_void, 2 * PAGE as usize, libc::PROT_READ) },
        0
    );
    let ev = dev.read_events().expect("events");
    println!("# mprotect(R) events: {ev:?}");
    let revoked: u32 = ev.iter().map(|e| e.revoked).sum();
    let q = dev.query(a, 4).expect("query");
    assert_eq!(
        (q[0].hold, q[1].hold),
        (Hold::Revoked, Hold::Revoked),
        "{ev:?}"
    );
    let split = (2..4).filter(|&i| q[i].hold == Hold::Revoked).count() as u32;
    for (i, s) in q.iter().enumerate().skip(2) {
        let ok = s.hold == Hold::Held || split_clear_covers(&ev, a + i as u64 * PAGE);
        assert!(ok, "page {i} revoked without cause: {q:?} {ev:?}");
    }
    assert_eq!(
        revoked,
        2 + split,
        "mprotect revokes the pages it covers: {ev:?}"
    );
    assert_eq!(
        cpu_read(a),
        77,
        "CPU reads the device's value through the read-only mapping"
    );
    assert_eq!(errno_of(dev.make_exclusive(a, 1)), libc::EACCES);
    assert_eq!(
        // SAFETY: as above.
        unsafe {
            libc::mprotect(
                a as *mut libc::c_void,
                2 * PAGE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        },
        0
    );
    let again = dev.make_exclusive(a, 4).expect("convert again");
    assert_eq!(again, 2 + u64::from(split));
    let _ = dev.read_events();

    // fork() write-protects the parent's private pages: the device loses them all.
    let code = fork_child(|| {
        if cpu_read(a) == 77 && cpu_read(a + 3 * PAGE) == 4 {
            0
        } else {
            1
        }
    });
    assert_eq!(
        code, 0,
        "the child sees the memory, including the device's write"
    );
    let ev = dev.read_events().expect("events");
    println!("# fork events: {ev:?}");
    let revoked: u32 = ev.iter().map(|e| e.revoked).sum();
    assert_eq!(revoked, 4, "{ev:?}");
    let q = dev.query(a, 4).expect("query");
    assert!(q.iter().all(|s| s.hold == Hold::Revoked), "{q:?}");
    // After fork, the parent's COW pages convert again.
    assert_eq!(dev.make_exclusive(a, 4).expect("convert after fork"), 4);
    cpu_write(a, 5);
    assert_eq!(
        dev.device_access(a, AccessOp::Read).expect("read"),
        Access::Revoked
    );
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_two_devices_see_each_other() {
    let Some(d1) = lab() else { return };
    if !d1.version().exclusive {
        return println!("# SKIP kernel without DEVICE_PRIVATE");
    }
    let d2 = NotifierClient::open().expect("open");
    let r = region(2);
    let a = r.addr();
    d1.attach(a, 2 * PAGE).expect("attach 1");
    d2.attach(a, 2 * PAGE).expect("attach 2");
    d1.make_exclusive(a, 1).expect("convert 1");
    let e2 = d2.read_events().expect("events");
    assert_eq!(e2.len(), 1, "{e2:?}");
    assert!(e2[0].kind == NotifierEventKind::Exclusive && e2[0].owner_set && !e2[0].owner_is_self);
    // d2 takes the page: d1 loses it (the CPU restore first, then d2's conversion).
    d2.make_exclusive(a, 1).expect("convert 2");
    assert_eq!(
        d1.device_access(a, AccessOp::Read).expect("d1"),
        Access::Revoked
    );
    assert_eq!(
        d2.device_access(a, AccessOp::Read).expect("d2"),
        Access::Done(1)
    );
    let e1 = d1.read_events().expect("events");
    let kinds: Vec<_> = e1
        .iter()
        .map(|e| (e.kind, e.owner_is_self, e.revoked))
        .collect();
    println!("# d1 events: {kinds:?}");
    assert_eq!(e1.iter().map(|e| e.revoked).sum::<u32>(), 1);
    assert!(e1
        .iter()
        .any(|e| e.kind == NotifierEventKind::Exclusive && e.owner_set && !e.owner_is_self));
}
