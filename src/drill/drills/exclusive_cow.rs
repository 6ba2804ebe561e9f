//! exclusive-cow: the VMM forks while the device holds a page. Fork must
//! give the page back to the CPU (revoking the device); the child keeps the
//! value of the fork, and the guest's later writes stay in the parent.

use crate::drill::exclusive::check_revoked;
use crate::drill::exclusive::{
    anchored, conclude, convert, device_work, guest_touch, note_revocations, pages, setup,
};
use crate::drill::hostmm::ForkedReader;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{host_err, DrillResult, TraceMode};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    s.madvise(0, n, libc::MADV_DOFORK)
        .map_err(host_err("madvise(MADV_DOFORK)"))?;
    let mut o = anchored();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    let at_fork = o.initial_value + o.device_increments;
    let (child, _) = s.host("fork", |_| ForkedReader::spawn(o.hva));
    let mut child = child.map_err(host_err("fork"))?;
    check_revoked(
        &mut s,
        dev.as_mut(),
        o.hva,
        "device-revoked-by-fork",
        |held| {
            format!("after fork the device's QUERY says {held:?}: fork made the page copy-on-write and left the device its exclusive access")
        },
    )?;
    note_revocations(&mut s, dev.as_mut(), &mut o)?;
    guest_touch(
        &mut s,
        dev.as_mut(),
        page,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    let c = child.read().map_err(host_err("forked child"))?;
    s.v.check(
        "child-isolated",
        c == at_fork,
        format!("the forked child sees {c:#x}, expected {at_fork:#x} (the value at fork): a guest write reached the child's page"),
    );
    drop(child);
    conclude(&mut s, page, n, o)?;
    s.finish()
}
