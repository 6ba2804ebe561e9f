//! exclusive-dontneed: MADV_DONTNEED on a page the device holds. The device
//! must be revoked, the page gone from pagemap, and the guest must read a
//! zero page (never the old one through a stale KVM mapping).

use crate::drill::exclusive::check_revoked;
use crate::drill::exclusive::{check_conversion, held_page, note_revocations, HeldPage};
use crate::drill::guest::Op;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillResult};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let HeldPage {
        mut s,
        mut dev,
        n,
        page,
        mut o,
    } = held_page(ctx)?;
    check_conversion(&mut s, &o)?;
    let (r, _) = s.host("MADV_DONTNEED", |s| s.madvise(page, 1, libc::MADV_DONTNEED));
    r.map_err(host_err("madvise(MADV_DONTNEED)"))?;
    check_revoked(&mut s, dev.as_mut(), o.hva, "device-revoked", |held| {
        format!("QUERY says {held:?} after MADV_DONTNEED dropped the page")
    })?;
    note_revocations(&mut s, dev.as_mut(), &mut o)?;
    s.v.check(
        "device-notified",
        o.notifier_event_seen,
        "the device got no invalidation for the dropped page",
    );
    let pm = s.pagemap(page)?;
    s.v.check(
        "pagemap-dropped",
        !pm.present() && !pm.swapped(),
        format!("pagemap after MADV_DONTNEED: {}", pm.describe()),
    );
    let seen = s.step(0, Op::Read, page)?;
    s.v.check(
        "guest-sees-zero-page",
        seen == 0,
        format!("guest read {seen:#x} after MADV_DONTNEED (expected 0): KVM kept a mapping of the old page"),
    );
    let x = 0xd0d0_0000 | (ctx.cfg.seed as u32 & 0xffff);
    s.step(0, Op::Write(x), page)?;
    // The device no longer holds the page: a host read is harmless now.
    s.check_write_reaches_host(page, x, "")?;
    s.check_neighbours(page, n)?;
    s.finish()
}
