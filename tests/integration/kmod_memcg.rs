//! The module's memory is charged to the caller's memory cgroup: the event
//! ring at ATTACH and the device page table's xarray nodes as pages are
//! converted (GFP_KERNEL_ACCOUNT, XA_FLAGS_ACCOUNT). Runs where the kernel
//! has a memory controller (the lab's debug kernel); a skip elsewhere.

use crate::kmod_util::*;
use mmuvisor::memcg::Memcg;

/// This process's own memory cgroup, or a `# SKIP` line saying why not.
fn enter() -> Option<Memcg> {
    Memcg::enter("mmuvisor-test")
        .map_err(|e| println!("# SKIP {e}"))
        .ok()
}

/// memory.stat's `kernel`: kernel memory charged to the cgroup. The
/// kernel folds its per-CPU statistics into memory.stat only after
/// MEMCG_CHARGE_BATCH (64) updates per CPU, so a few dozen pages of
/// xarray nodes alone would not show: faulting in and freeing 4096
/// anonymous pages first makes the read exact.
fn kernel(cg: &Memcg) -> u64 {
    drop(region(4096));
    cg.stat("kernel").expect("no kernel line in memory.stat")
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_module_memory_is_charged_to_the_callers_memcg() {
    let Some(dev) = exclusive_lab() else { return };
    drop(dev);
    let Some(cg) = enter() else { return };
    const N: u64 = 1 << 14;
    let map = region(N);
    let dev = NotifierClient::open().expect("open");
    let k0 = kernel(&cg);
    dev.attach(map.addr(), N * PAGE).expect("attach");
    let k1 = kernel(&cg);
    assert_eq!(dev.make_exclusive(map.addr(), N).expect("convert"), N);
    let k2 = kernel(&cg);
    println!(
        "# memcg: ATTACH charged {} KiB (ring), {N} conversions {} KiB (page table)",
        (k1 as i64 - k0 as i64) / 1024,
        (k2 as i64 - k1 as i64) / 1024
    );
    let ring = RING_CAPACITY as u64 * std::mem::size_of::<mmuvisor_event>() as u64;
    assert!(
        k1 >= k0 + ring * 3 / 4,
        "ATTACH charged {k0} -> {k1}, the ring is {ring} bytes"
    );
    // About 9 bytes a page (an xarray node per 64 entries).
    assert!(k2 >= k1 + N * 6, "{N} conversions charged {k1} -> {k2}");
    drop(dev);
}
