//! thp-collapse: the guest fills 512 pages backed by 4 KiB host pages; the
//! host collapses them into one THP (MADV_COLLAPSE). KVM must drop its
//! mappings of the old pages (an invalidation covering the 2 MiB range); the
//! guest then sees its data and its writes land in the huge page.

use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::hostmm::{anon_huge_kb, thp_available, MADV_COLLAPSE};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{host_err, DrillError, DrillResult, TraceMode};
use crate::drill::verdict::{invalidated, Verdict};
use crate::drill::Ctx;
use crate::secondary_mmu::KvmStats;

const HUGE: u64 = 512;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    thp_available().map_err(DrillError::Skip)?;
    let mut spec = GuestSpec::of(&ctx.cfg);
    spec.thp = true;
    let mut s = ctx.start(spec, TraceMode::ThisProcess)?;
    if s.max_pages() < HUGE {
        return Err(DrillError::Host(
            "guest RAM too small for a 2 MiB region".into(),
        ));
    }
    // 4 KiB pages first, whatever the VMM chose.
    s.madvise(0, HUGE, libc::MADV_NOHUGEPAGE)
        .map_err(host_err("madvise(MADV_NOHUGEPAGE)"))?;
    s.step(0, Op::FillRange(HUGE as u32), 0)?;
    let hva = s.hva(0)?;
    let stats = s.guest().vm_fd().and_then(|vm| KvmStats::open(vm).ok());
    let pages_2m = |st: &Option<KvmStats>| {
        st.as_ref()
            .and_then(|k| k.read().ok())
            .and_then(|v| v.get("pages_2m"))
    };
    let before_2m = pages_2m(&stats);

    s.madvise(0, HUGE, libc::MADV_HUGEPAGE)
        .map_err(host_err("madvise(MADV_HUGEPAGE)"))?;
    let (r, win) = s.host("MADV_COLLAPSE", |s| s.madvise(0, HUGE, MADV_COLLAPSE));
    if let Err(e) = r {
        return Err(DrillError::Skip(format!("MADV_COLLAPSE failed here: {e}")));
    }
    match anon_huge_kb(hva) {
        Some(kb) if kb >= 2048 => s.v.figure("anon_huge_kb", kb as f64),
        other => {
            return Err(DrillError::Skip(format!(
                "the region is not a THP after MADV_COLLAPSE (AnonHugePages {other:?} kB)"
            )))
        }
    }
    let ev = s.kvm_events()?;
    invalidated(
        &mut s.v,
        "MADV_COLLAPSE",
        &ev,
        win,
        hva,
        hva + HUGE * PAGE_SIZE,
    );

    let bad = s.step(0, Op::CheckRange(HUGE as u32), 0)?;
    s.v.check(
        "guest-sees-data",
        bad == 0,
        format!("{bad} words differ in the collapsed region"),
    );
    let probe = 7u64.min(HUGE - 1);
    let x = 0x7a7a_0000 | (ctx.cfg.seed as u32 & 0xffff);
    s.step(0, Op::Write(x), probe)?;
    let host = s.host_read(probe, 0)?;
    s.v.check(
        "guest-write-reaches-host",
        host == x as u64,
        format!(
            "guest wrote {x:#x}, the huge page holds {host:#x}: KVM wrote into a freed 4 KiB page"
        ),
    );
    if let (Some(b), Some(a)) = (before_2m, pages_2m(&stats)) {
        s.v.figure("kvm_pages_2m_before", b as f64);
        s.v.figure("kvm_pages_2m_after", a as f64);
    }
    s.finish()
}
