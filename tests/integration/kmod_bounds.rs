//! Bounded memory and short critical sections: what a device context costs
//! in kernel memory, and how long the notifier callback holds the device
//! lock when few of many converted pages are still held. Figures are
//! printed as "# figure: ..." lines. MMUVISOR_KMOD_BOUNDS_PAGES sets the
//! guest size in pages (default 2^16; 2^20 for a 4 GiB guest, which needs
//! `lab run --mem 6G`).

use crate::kmod_util::*;

fn pages() -> u64 {
    std::env::var("MMUVISOR_KMOD_BOUNDS_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 16)
}

/// Kernel memory in use, in bytes: slab (reclaimable and not: xarray
/// nodes are accounted as reclaimable), vmalloc. Caches dropped first.
fn kernel_bytes() -> u64 {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "2");
    let info = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/meminfo"))
            * 1024
    };
    field("Slab:") + field("VmallocUsed:")
}

/// Objects in use of the slab cache of xarray nodes (/proc/slabinfo):
/// what the device page table allocates, without the noise of the rest.
fn xarray_nodes() -> i64 {
    let info = std::fs::read_to_string("/proc/slabinfo").expect("/proc/slabinfo");
    info.lines()
        .find_map(|l| l.strip_prefix("radix_tree_node "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("no radix_tree_node in /proc/slabinfo")
}

fn kib(b: i64) -> String {
    format!("{:.1} KiB", b as f64 / 1024.0)
}

/// An open file that never attaches costs no event ring.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_open_without_attach_costs_no_ring() {
    let Some(first) = lab() else { return };
    drop(first);
    let files = 32;
    let before = kernel_bytes();
    let devs: Vec<_> = (0..files)
        .map(|_| NotifierClient::open().expect("open"))
        .collect();
    let after = kernel_bytes();
    let per_file = (after as i64 - before as i64) / files;
    println!(
        "# figure: kernel memory per open file (no ATTACH): {}",
        kib(per_file)
    );
    drop(devs);
    assert!(
        per_file < 16 * 1024,
        "an unattached file costs {}",
        kib(per_file)
    );
}

/// Kernel memory of a context converting and releasing many pages: no
/// per-page allocation, nothing left per page but the compact record.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_device_page_table_memory_is_compact() {
    let Some(dev) = exclusive_lab() else { return };
    let n = pages();
    let r = region(n);
    let a = r.addr();
    let base = kernel_bytes();
    dev.attach_with(a, n * PAGE, OwnEvents::Omit)
        .expect("attach");
    let attached = kernel_bytes();
    assert_eq!(dev.make_exclusive(a, n).expect("convert"), n);
    let held = kernel_bytes();
    assert_eq!(dev.release(a, n).expect("release"), n);
    let released = kernel_bytes();
    dev.detach().expect("detach");
    // xarray nodes are freed after an RCU grace period.
    std::thread::sleep(Duration::from_millis(200));
    let detached = kernel_bytes();
    drop(dev);
    std::thread::sleep(Duration::from_millis(200));
    let closed = kernel_bytes();
    let per_page = |b: u64| (b as i64 - attached as i64) as f64 / n as f64;
    println!(
        "# figure: {n} pages: attach {}, held {:.1} B/page, released {:.1} B/page, \
         after DETACH {}, after close {}",
        kib(attached as i64 - base as i64),
        per_page(held),
        per_page(released),
        kib(detached as i64 - base as i64),
        kib(closed as i64 - base as i64)
    );
    assert!(
        per_page(held) < 14.0,
        "{:.1} B per held page",
        per_page(held)
    );
    assert!(
        per_page(released) < 14.0,
        "{:.1} B per released page",
        per_page(released)
    );
}

/// The longest time the notifier callback holds the device lock (revoking)
/// when 1% of the converted pages are still held, against a device that
/// only ever converted that 1%: it walks the held pages, not every record.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_notifier_callback_walks_only_held_pages() {
    let Some(_dev) = exclusive_lab() else { return };
    let n = pages();
    let keep = |i: u64| i.is_multiple_of(100);
    let measure = |convert_all: bool| -> (u64, u64) {
        let d = NotifierClient::open().expect("open");
        let r = region(n);
        let a = r.addr();
        d.attach_with(a, n * PAGE, OwnEvents::Omit).expect("attach");
        if convert_all {
            assert_eq!(d.make_exclusive(a, n).expect("convert"), n);
            let mut i = 0;
            while i < n {
                let run = (i + 1..n).find(|&j| keep(j)).unwrap_or(n) - i - 1;
                if run > 0 {
                    d.release(a + (i + 1) * PAGE, run).expect("release");
                }
                i += run + 1;
            }
        } else {
            for i in (0..n).filter(|&i| keep(i)) {
                d.make_exclusive(a + i * PAGE, 1).expect("convert");
            }
        }
        let held = d.stats().expect("stats").pages_held;
        assert_eq!(held, n.div_ceil(100));
        // SAFETY: drops our own populated pages: one invalidation over all.
        unsafe {
            libc::madvise(
                a as *mut libc::c_void,
                (n * PAGE) as usize,
                libc::MADV_DONTNEED,
            )
        };
        let st = d.stats().expect("stats");
        assert_eq!(st.pages_held, 0, "{st:?}");
        (st.revoke_max_ns, held)
    };
    // The least of two tries: an interrupt inside the lock hold counts too.
    let (few, held) = measure(false).min(measure(false));
    let (many, _) = measure(true).min(measure(true));
    println!(
        "# figure: {n} pages, {held} held: longest device-lock hold by the callback {:.3} ms after converting all and \
         releasing 99%, {:.3} ms when only the held ones were ever converted",
        many as f64 / 1e6,
        few as f64 / 1e6
    );
    assert!(
        many < few * 3 / 2 + 100_000,
        "the callback walked released records: {many} ns vs {few} ns"
    );
}

/// Conversions that fail (here: a read-only mapping, EACCES) leave no
/// record behind: a page's slot lives only while its conversion may still
/// succeed.
#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_failed_conversions_leave_no_records() {
    let Some(dev) = exclusive_lab() else { return };
    let n = pages();
    let ro = HostMapping::small_pages_with((n * PAGE) as usize, libc::PROT_READ, libc::MAP_PRIVATE)
        .expect("read-only mmap");
    let a = ro.addr();
    dev.attach_with(a, n * PAGE, OwnEvents::Omit)
        .expect("attach");
    let before = xarray_nodes();
    for i in 0..n {
        assert_eq!(errno_of(dev.make_exclusive(a + i * PAGE, 1)), libc::EACCES);
    }
    let left = xarray_nodes() - before;
    println!("# figure: {n} failed conversions: {left} xarray nodes left");
    // One node maps 64 pages: n / 64 if every page kept a slot.
    assert!(
        left < 64,
        "{left} xarray nodes left (per-CPU slab noise is a few)"
    );
    assert!(dev
        .query(a, n)
        .expect("query")
        .iter()
        .all(|s| s.hold == Hold::None));
}
