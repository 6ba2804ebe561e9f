//! exclusive-memslot-delete: while the device holds a page, the VMM deletes
//! guest RAM's memslots and adds them back. KVM zaps the slot; the guest's
//! next access must still go through the host page tables and revoke the
//! device.

use crate::drill::exclusive::{anchored, convert, device_work, pages, setup, touch_and_finish};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillResult, TraceMode};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    let mut o = anchored();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    let (r, _) = s.host("memslot delete + add", |s| {
        s.guest_mut().recreate_memslots()
    });
    r?;
    touch_and_finish(s, dev.as_mut(), page, n, o)
}
