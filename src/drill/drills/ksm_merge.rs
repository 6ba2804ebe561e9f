//! ksm-merge: the guest fills two pages identically; ksmd merges them into
//! one write-protected KSM page. KVM must drop its writable mappings (an
//! invalidation per page, from ksmd); a guest write then unshares, lands in
//! the host page, and the twin stays intact.

use std::time::{Duration, Instant};

use crate::clock::now_ns;
use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::hostmm::KsmGuard;
use crate::drill::report::timeline::{Lane, Timeline};
use crate::drill::session::GuestSpec;
use crate::drill::session::{host_err, DrillError, DrillResult, TraceMode};
use crate::drill::verdict::{invalidated, Verdict, Window};
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::AnyTask)?;
    let (a, b, n) = (1u64, 2u64, 4u64);
    let seed = 0x4b53_0000 | (ctx.cfg.seed as u32 & 0xffff);
    s.step(0, Op::FillRange(n as u32), 0)?;
    s.step(0, Op::Fill(seed), a)?;
    s.step(0, Op::Fill(seed), b)?;
    let (ha, hb) = (s.hva(a)?, s.hva(b)?);
    let pfn = |s: &mut crate::drill::session::Session, p| s.pagemap(p).map(|m| m.pfn());
    if pfn(&mut s, a)?.unwrap_or(0) == 0 {
        return Err(DrillError::Skip(
            "pagemap shows no PFNs (needs root) to see KSM merging".into(),
        ));
    }
    let guard = KsmGuard::start().map_err(DrillError::Skip)?;
    let start = now_ns();
    s.madvise(0, n, libc::MADV_MERGEABLE)
        .map_err(host_err("madvise(MADV_MERGEABLE)"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let merged = loop {
        let (pa, pb) = (pfn(&mut s, a)?, pfn(&mut s, b)?);
        if pa.is_some() && pa == pb {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let end = now_ns();
    s.tl.span(Lane::Host, start, end, "MADV_MERGEABLE + ksmd");
    if !merged {
        let _ = s.madvise(0, n, libc::MADV_UNMERGEABLE);
        return Err(DrillError::Skip(
            "ksmd did not merge the twin pages within 20 s".into(),
        ));
    }
    let win = Window {
        start_ns: start,
        end_ns: end,
    };
    let ev = s.kvm_events()?;
    invalidated(
        &mut s.v,
        "KSM merge (first twin)",
        &ev,
        win,
        ha,
        ha + PAGE_SIZE,
    );
    invalidated(
        &mut s.v,
        "KSM merge (second twin)",
        &ev,
        win,
        hb,
        hb + PAGE_SIZE,
    );
    drop(guard);

    let x = seed ^ 0x5a5a;
    s.step(0, Op::Write(x), a)?;
    let host = s.host_read(a, 0)?;
    s.v.check(
        "guest-write-reaches-host",
        host == x as u64,
        format!("guest wrote {x:#x}, the host page holds {host:#x}: the write did not unshare"),
    );
    let twin = s.step(0, Op::Check(seed), b)?;
    s.v.check(
        "twin-intact",
        twin == 0,
        format!("{twin} words of the twin page changed: the guest wrote into the shared KSM page through a stale mapping"),
    );
    let others = s.step(0, Op::CheckRange(1), 0)? + s.step(0, Op::CheckRange(1), 3)?;
    s.v.check(
        "neighbours-intact",
        others == 0,
        format!("{others} words of neighbouring pages changed"),
    );
    let _ = s.madvise(0, n, libc::MADV_UNMERGEABLE);
    s.finish()
}
