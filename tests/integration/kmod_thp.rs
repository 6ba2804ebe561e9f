//! Guest memory backed by transparent huge pages: one 4 KiB page of the
//! folio converts (6.15+), or the head page converts the whole folio and a
//! tail page is refused at once (range API); either way the device holds
//! what the page table shows.

use crate::kmod_util::*;

/// Guest memory backed by a transparent huge page: make_device_exclusive()
/// splits the PMD mapping and converts single 4 KiB pages of the folio.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_thp_backed_pages() {
    let Some(dev) = exclusive_lab() else { return };
    const HUGE: u64 = 2 << 20;
    let map = HostMapping::small_pages((2 * HUGE) as usize).expect("mmap");
    let a = (map.addr() + HUGE - 1) & !(HUGE - 1);
    // SAFETY: advice and writes on the 2 MiB-aligned block inside our mapping.
    unsafe { libc::madvise(a as *mut libc::c_void, HUGE as usize, libc::MADV_HUGEPAGE) };
    for i in 0..HUGE / PAGE {
        cpu_write(a + i * PAGE, i);
    }
    let thp = std::fs::read_to_string("/proc/self/smaps")
        .map(|s| s.contains("AnonHugePages:      2048 kB"))
        .unwrap_or(false);
    println!("# THP-backed: {thp}");
    let before = mm_counters();
    dev.attach(a, HUGE).expect("attach");
    if thp && dev.version().range_api {
        return range_api_whole_folio(&dev, a, HUGE / PAGE, &before);
    }
    assert_eq!(dev.make_exclusive(a + 100 * PAGE, 8).expect("convert"), 8);
    let ev = dev.read_events().expect("events");
    // The PMD split (a 2 MiB CLEAR inside the first attempt's read section)
    // makes the first page retry: its own EXCLUSIVE shows up twice.
    let mut own: Vec<_> = ev
        .iter()
        .filter(|e| e.owner_is_self)
        .map(|e| e.start)
        .collect();
    own.dedup();
    let want: Vec<_> = (100..108).map(|i| a + i * PAGE).collect();
    assert_eq!(own, want, "{ev:?}");
    if thp {
        assert!(split_clear_covers(&ev, a), "PMD split: {ev:?}");
    }
    assert!(pagemap(a + 99 * PAGE).present(), "neighbour stays mapped");
    device_then_cpu(&dev, a);
    assert_eq!(dev.stats().expect("stats").pages_held, 7);
    assert_device_matches_page_table(&dev, a, HUGE / PAGE, &before);
}

/// Before 6.15 make_device_exclusive_range() never converts a tail page of
/// a large folio, and converts every page of the folio for its head page
/// while returning that one page. The module refuses a tail page at once and
/// records the whole folio for the head page.
fn range_api_whole_folio(dev: &NotifierClient, a: u64, n: u64, before: &[(String, i64)]) {
    let t = std::time::Instant::now();
    assert_eq!(
        errno_of(dev.make_exclusive(a + 100 * PAGE, 1)),
        libc::EOPNOTSUPP
    );
    let took = t.elapsed();
    assert!(took < Duration::from_millis(300), "refused after {took:?}");
    assert_eq!(dev.stats().expect("stats").pages_held, 0);
    assert_device_matches_page_table(dev, a, n, before);

    assert_eq!(
        dev.make_exclusive(a, 1).expect("head page"),
        1,
        "count: pages of the request"
    );
    assert_eq!(
        dev.stats().expect("stats").pages_held,
        n,
        "the whole folio is held"
    );
    assert_device_matches_page_table(dev, a, n, before);
    // The device reaches any page of it: the PFNs are the folio's, in order.
    device_then_cpu(dev, a);
    assert_eq!(dev.stats().expect("stats").pages_held, n - 2);
    assert_device_matches_page_table(dev, a, n, before);
    println!("# pre-6.15 kernel: a tail page refused at once, the head page converted the folio");
}

/// Page 103 (held): the device adds 1000 to it, then the CPU reads pages
/// 99 and 103 (taking 103 back) and the device's access is revoked.
fn device_then_cpu(dev: &NotifierClient, a: u64) {
    assert_eq!(
        dev.device_access(a + 103 * PAGE, AccessOp::Add(1000))
            .expect("add"),
        Access::Done(103)
    );
    assert!(!pagemap(a + 103 * PAGE).present());
    assert_eq!(cpu_read(a + 99 * PAGE), 99);
    assert_eq!(cpu_read(a + 103 * PAGE), 1103);
    assert_eq!(
        dev.device_access(a + 103 * PAGE, AccessOp::Read)
            .expect("read"),
        Access::Revoked
    );
}

/// The device holds exactly the pages the CPU page table has made
/// device-exclusive (not present, a swap-type entry): what the kernel
/// converted is what the device recorded. On a mismatch it also prints what
/// the kernel's THP, compaction and migration counters did since `before`
/// and the module's events, to tell which kernel path changed the page
/// table.
fn assert_device_matches_page_table(
    dev: &NotifierClient,
    a: u64,
    npages: u64,
    before: &[(String, i64)],
) {
    let q = dev.query(a, npages).expect("query");
    let mut wrong = Vec::new();
    for (i, s) in q.iter().enumerate() {
        let pm = pagemap(a + i as u64 * PAGE);
        let exclusive = !pm.present() && pm.swapped();
        if exclusive != (s.hold == Hold::Held) {
            wrong.push(format!("page {i}: pagemap {:#x}, device {s:?}", pm.raw));
        }
    }
    if wrong.is_empty() {
        return;
    }
    let now = mm_counters();
    let moved: Vec<_> = now
        .iter()
        .filter_map(|(k, v)| {
            let was = before.iter().find(|(b, _)| b == k).map_or(0, |(_, b)| *b);
            (*v != was).then(|| format!("{k} +{}", v - was))
        })
        .collect();
    panic!(
        "{} pages where the device and the page table disagree, first: {:?}\n\
         kernel counters since the test began: {moved:?}\nstats: {:?}\nevents: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(4)],
        dev.stats(),
        dev.read_events()
    );
}

/// The /proc/vmstat counters of the kernel paths that can move or remap a
/// THP's pages behind a test's back.
fn mm_counters() -> Vec<(String, i64)> {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(k, _)| {
            [
                "thp_",
                "compact_",
                "pgmigrate",
                "numa_",
                "collapse",
                "ksm",
                "pswp",
                "pgsteal",
            ]
            .iter()
            .any(|p| k.starts_with(p))
        })
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect()
}
