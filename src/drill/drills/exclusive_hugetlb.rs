//! exclusive-hugetlb: the kernel must refuse to make a hugetlb page
//! device-exclusive (CVE-2025-22034: the rmap and fault paths do not handle
//! device-exclusive entries for hugetlb folios). The helper module refuses
//! hugetlb VMAs itself; its test mode (`test_hugetlb` parameter) lets one
//! through, so the kernel's own refusal is what is judged: make-exclusive
//! on a page of a private hugetlb mapping must fail with EOPNOTSUPP in
//! time, and the mapping must stay present with its values.
//!
//! The attempt runs in a child process (`mmuvisor __hugetlb-probe`): a
//! kernel that takes the folio may retry for ever while holding the mmap
//! lock, and only a fatal signal ends that; killing the child does, and
//! this process's own address space is never involved.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::drill::guest::PagemapEntry;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{DrillError, DrillResult};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;
use crate::host_mapping::HostMapping;
use crate::notifier_client::NotifierClient;

const PARAM: &str = "/sys/module/mmuvisor/parameters/test_hugetlb";
const TAINTED: &str = "/proc/sys/kernel/tainted";
const PANIC_ON_OOPS: &str = "/proc/sys/kernel/panic_on_oops";
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const HUGE: usize = 2 << 20;
/// How long make-exclusive may take to refuse.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

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

/// The child's side: map a hugetlb page, try to make one 4 KiB page of it
/// exclusive, and print what happened as `key=value` lines.
pub fn probe() -> i32 {
    let region = match HostMapping::small_pages_with(
        HUGE,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_HUGETLB,
    ) {
        Ok(r) => r,
        Err(e) => {
            println!("skip=no hugetlb page could be mapped: {e}");
            return 0;
        }
    };
    region.populate();
    let page = region.addr() + 3 * 4096;
    let before = PagemapEntry::of_hva(page).ok();
    let dev = match NotifierClient::open() {
        Ok(d) => d,
        Err(e) => {
            println!("error={e}");
            return 0;
        }
    };
    if let Err(e) = dev.attach(region.addr(), HUGE as u64) {
        println!("error=attach: {e}");
        return 0;
    }
    match dev.make_exclusive(page, 1) {
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => println!("refused=yes"),
        Err(e) => println!("refused=failed with {e}, not EOPNOTSUPP"),
        Ok(n) => {
            println!("refused=succeeded ({n} converted)");
            let _ = dev.release(page, 1);
        }
    }
    let after = PagemapEntry::of_hva(page).ok();
    let intact = matches!((before, after), (Some(b), Some(a)) if a.present() && a.pfn() == b.pfn());
    println!(
        "mapping={}",
        if intact {
            "intact".to_string()
        } else {
            format!(
                "before {}, after {}",
                before.map_or("?".into(), |b| b.describe()),
                after.map_or("?".into(), |a| a.describe())
            )
        }
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
    println!("values_bad={bad}");
    0
}

pub fn run(_ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut v = Verdict::default();
    attempt(&mut v)?;
    Ok((v, Timeline::default()))
}

/// One make-exclusive attempt on a hugetlb page, in the probe child, judged
/// into `v` (also a step of `drill fuzz`).
pub fn attempt(v: &mut Verdict) -> DrillResult<()> {
    if !std::path::Path::new(PARAM).exists() {
        return Err(DrillError::Host(format!(
            "{PARAM} is missing: the loaded helper module has no hugetlb test mode"
        )));
    }
    let have: u64 = std::fs::read_to_string(NR_HUGEPAGES)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let _reserved = if have == 0 {
        Some(set(NR_HUGEPAGES, "1")?)
    } else {
        None
    };
    let _mode = set(PARAM, "Y")?;
    // A kernel that takes the folio may oops in the probe: that must end
    // the probe, not the machine, so that the drill can say so.
    let _oops = set(PANIC_ON_OOPS, "0")?;
    let taint = || {
        std::fs::read_to_string(TAINTED)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let taint_before = taint();
    let exe = std::env::current_exe()
        .map_err(|e| DrillError::Host(format!("cannot find this executable: {e}")))?;
    let mut child = Command::new(exe)
        .arg("__hugetlb-probe")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| DrillError::Host(format!("cannot start the probe: {e}")))?;
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t0.elapsed() < ANSWER_WITHIN => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => break None,
            Err(e) => return Err(DrillError::Host(format!("probe: {e}"))),
        }
    };
    let taint_check = |v: &mut Verdict| {
        let after = taint();
        v.check(
            "kernel-not-tainted",
            after == taint_before,
            format!(
                "the kernel tainted itself during the probe: /proc/sys/kernel/tainted {taint_before:?} -> {after:?} (128 = an oops; see dmesg)"
            ),
        );
    };
    let status = match status {
        Some(st) => st,
        None => {
            let _ = child.kill();
            // A task killed inside the kernel may never be reaped: wait a
            // little, never for ever.
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            v.check(
                "hugetlb-refused",
                false,
                format!("make-exclusive on a hugetlb page gave no answer in {} s: the kernel took the hugetlb folio (it must refuse it with EOPNOTSUPP)", ANSWER_WITHIN.as_secs()),
            );
            taint_check(v);
            return Ok(());
        }
    };
    if !status.success() {
        v.check(
            "hugetlb-refused",
            false,
            format!("the probe died ({status}) while making a hugetlb page exclusive: the kernel took the hugetlb folio"),
        );
        taint_check(v);
        return Ok(());
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    if let Some(why) = field("skip") {
        return Err(DrillError::Skip(why));
    }
    if let Some(e) = field("error") {
        return Err(DrillError::Host(format!("probe: {e}")));
    }
    let (Some(refused), Some(mapping), Some(bad)) =
        (field("refused"), field("mapping"), field("values_bad"))
    else {
        return Err(DrillError::Host(format!(
            "the probe ended ({status}) without its report: {out:?}"
        )));
    };
    v.check(
        "hugetlb-refused",
        refused == "yes",
        format!("make-exclusive on a hugetlb page {refused}: the kernel must refuse hugetlb folios with EOPNOTSUPP"),
    );
    v.check(
        "hugetlb-mapping-intact",
        mapping == "intact",
        format!("pagemap of the hugetlb page: {mapping}"),
    );
    v.check(
        "hugetlb-values-intact",
        bad == "0",
        format!("{bad} pages of the hugetlb mapping lost their value"),
    );
    taint_check(v);
    Ok(())
}
