//! exclusive-hugetlb: the kernel must refuse to make a hugetlb page
//! device-exclusive (CVE-2025-22034: the rmap and fault paths do not handle
//! device-exclusive entries for hugetlb folios). The helper module refuses
//! hugetlb VMAs itself; its test mode (`test_hugetlb` parameter) lets one
//! through, so the kernel's own refusal is what is judged: make-exclusive
//! on a page of a private hugetlb mapping must fail with EOPNOTSUPP, and
//! the mapping must stay present with its values.

use crate::drill::guest::PageState;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{DrillError, DrillResult};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;
use crate::notifier_client::bench::AnonRegion;
use crate::notifier_client::NotifierClient;

const PARAM: &str = "/sys/module/mmuvisor/parameters/test_hugetlb";
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const HUGE: usize = 2 << 20;

/// Restores a sysfs/procfs value when dropped.
struct Restore(&'static str, String);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0, &self.1);
    }
}

fn set(path: &'static str, value: &str) -> DrillResult<Restore> {
    let old = std::fs::read_to_string(path)
        .map_err(|e| DrillError::Host(format!("cannot read {path}: {e}")))?;
    std::fs::write(path, value)
        .map_err(|e| DrillError::Host(format!("cannot write {value} to {path}: {e}")))?;
    Ok(Restore(path, old.trim().to_string()))
}

pub fn run(_ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut v = Verdict::default();
    if !std::path::Path::new(PARAM).exists() {
        return Err(DrillError::Host(format!(
            "{PARAM} is missing: the loaded helper module has no hugetlb test mode"
        )));
    }
    let mut reserved = None;
    let have: u64 = std::fs::read_to_string(NR_HUGEPAGES)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if have == 0 {
        reserved = Some(set(NR_HUGEPAGES, "1")?);
    }
    let region = AnonRegion::with_flags(
        HUGE,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_HUGETLB,
    )
    .map_err(|e| DrillError::Skip(format!("no hugetlb page could be mapped: {e}")))?;
    region.populate();
    let page = region.addr() + 3 * 4096;
    let before = PageState::of_hva(page).map_err(|e| DrillError::Host(format!("pagemap: {e}")))?;
    let dev = NotifierClient::open().map_err(|e| DrillError::Host(e.to_string()))?;
    dev.attach(region.addr(), HUGE as u64)
        .map_err(|e| DrillError::Host(format!("attach: {e}")))?;
    let mode = set(PARAM, "Y")?;
    let r = dev.make_exclusive(page, 1);
    drop(mode);
    match r {
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
            v.check("hugetlb-refused", true, "");
        }
        Ok(n) => {
            v.check(
                "hugetlb-refused",
                false,
                format!("make-exclusive on a hugetlb page succeeded ({n} converted): the kernel must refuse hugetlb folios with EOPNOTSUPP"),
            );
            let _ = dev.release(page, 1);
        }
        Err(e) => {
            v.check(
                "hugetlb-refused",
                false,
                format!("make-exclusive on a hugetlb page failed with {e}, not EOPNOTSUPP"),
            );
        }
    }
    let after = PageState::of_hva(page).map_err(|e| DrillError::Host(format!("pagemap: {e}")))?;
    v.check(
        "hugetlb-mapping-intact",
        after.present() && after.pfn() == before.pfn(),
        format!(
            "pagemap before: {}, after: {}",
            before.describe(),
            after.describe()
        ),
    );
    let bad = (0..HUGE / 4096)
        .filter(|&i| {
            // SAFETY: i * 4096 < HUGE: an aligned u64 inside our mapping.
            let w = unsafe {
                std::ptr::read_volatile((region.addr() as usize + i * 4096) as *const u64)
            };
            w != i as u64 + 1
        })
        .count();
    v.check(
        "hugetlb-values-intact",
        bad == 0,
        format!("{bad} pages of the hugetlb mapping lost their value"),
    );
    drop(dev);
    drop(region);
    drop(reserved);
    Ok((v, Timeline::default()))
}
