//! The module's memory is charged to the caller's memory cgroup: the event
//! ring at ATTACH and the device page table's xarray nodes as pages are
//! converted (GFP_KERNEL_ACCOUNT, XA_FLAGS_ACCOUNT). Runs where the kernel
//! has a memory controller (the lab's debug kernel); a skip elsewhere.

use crate::kmod_util::*;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// A child cgroup of the cgroup2 root with the memory controller, this
/// process moved into it; moved back to the root and removed on drop.
struct Memcg {
    dir: PathBuf,
}

impl Memcg {
    fn enter() -> Option<Memcg> {
        let root = Path::new(ROOT);
        if !root.join("cgroup.controllers").exists() {
            let (src, fs) = (c"cgroup2", c"cgroup2");
            // SAFETY: mounts cgroup2 on the (empty) sysfs mount point; all
            // pointers are NUL-terminated literals.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    c"/sys/fs/cgroup".as_ptr(),
                    fs.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                println!(
                    "# SKIP cannot mount cgroup2: {}",
                    io::Error::last_os_error()
                );
                return None;
            }
        }
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            println!("# SKIP no memory cgroup controller (kernel without CONFIG_MEMCG)");
            return None;
        }
        std::fs::write(root.join("cgroup.subtree_control"), "+memory").expect("enable memory");
        let dir = root.join(format!("mmuvisor-test-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
            .expect("enter cgroup");
        Some(Memcg { dir })
    }

    /// memory.stat's `kernel`: kernel memory charged to this cgroup. The
    /// kernel folds its per-CPU statistics into memory.stat only after
    /// MEMCG_CHARGE_BATCH (64) updates per CPU, so a few dozen pages of
    /// xarray nodes alone would not show: faulting in and freeing 4096
    /// anonymous pages first makes the read exact.
    fn kernel(&self) -> u64 {
        drop(region(4096));
        let stat = std::fs::read_to_string(self.dir.join("memory.stat")).expect("memory.stat");
        stat.lines()
            .find_map(|l| l.strip_prefix("kernel "))
            .and_then(|v| v.trim().parse().ok())
            .expect("no kernel line in memory.stat")
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(ROOT).join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_module),
    ignore = "needs the helper module (/dev/mmuvisor): lab_kmod runs these in the lab"
)]
fn lab_module_memory_is_charged_to_the_callers_memcg() {
    let Some(dev) = exclusive_lab() else { return };
    drop(dev);
    let Some(cg) = Memcg::enter() else { return };
    const N: u64 = 1 << 14;
    let map = region(N);
    let dev = NotifierClient::open().expect("open");
    let k0 = cg.kernel();
    dev.attach(map.addr(), N * PAGE).expect("attach");
    let k1 = cg.kernel();
    assert_eq!(dev.make_exclusive(map.addr(), N).expect("convert"), N);
    let k2 = cg.kernel();
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
