//! exclusive-dirty-log: with dirty logging on, the device's writes are not
//! guest writes, but the guest's writes after revocation must appear in
//! KVM's dirty log for the page.

use crate::drill::exclusive::{
    anchored, conclude, convert, device_work, guest_touch, pages, setup,
};
use crate::drill::guest::page_gpa;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillResult, Session, TraceMode};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

fn dirty(s: &mut Session, page: u64) -> DrillResult<bool> {
    Ok(s.guest_mut().dirty_gpas()?.contains(&page_gpa(page)))
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    s.guest_mut().set_dirty_logging(true)?;
    let page = setup(&mut s, n)?;
    let by_setup = dirty(&mut s, page)?; // also clears the log
    s.v.check(
        "dirty-log-works",
        by_setup,
        "KVM's dirty log has no bit for a page the guest just wrote",
    );
    let mut o = anchored();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    let by_device = dirty(&mut s, page)?;
    s.v.note(format!("dirty bit after device writes only: {by_device}"));
    guest_touch(
        &mut s,
        dev.as_mut(),
        page,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    let by_guest = dirty(&mut s, page)?;
    s.v.check(
        "dirty-log-records-guest-write",
        by_guest,
        "KVM's dirty log has no bit for the page after the guest wrote it (post-revocation)",
    );
    conclude(&mut s, page, n, o)?;
    let _ = s.guest_mut().set_dirty_logging(false);
    s.finish()
}
