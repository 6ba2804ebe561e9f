//! exclusive-reconvert: a second device context converts a page the first
//! one holds. The first must be revoked (its notifier sees a foreign
//! invalidation), the second then holds it, and the guest revokes the second.

use crate::drill::device::Held;
use crate::drill::exclusive::{
    anchored, check_conversion, convert, dev_err, device_work, note_revocations, pages, setup,
    touch_and_finish,
};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillResult, TraceMode};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut first = ctx.device(&s)?;
    let mut second = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    let mut o1 = anchored();
    o1.label = "first context: ".into();
    convert(&mut s, first.as_mut(), page, &mut o1)?;
    device_work(&mut s, first.as_mut(), ctx.cfg.iterations, &mut o1)?;
    check_conversion(&mut s, &o1)?;

    // The first context holds the page: KVM cannot map it now.
    let mut o2 = ExclusiveObs {
        expected_at_conversion: Some(o1.initial_value + o1.device_increments),
        kvm_unmapped_by_design: true,
        ..Default::default()
    };
    convert(&mut s, second.as_mut(), page, &mut o2)?;
    let held1 = first.query(o1.hva).map_err(dev_err("query (first)"))?;
    note_revocations(&mut s, first.as_mut(), &mut o1)?;
    s.v.check(
        "first-revoked",
        held1 == Held::Revoked,
        format!("the first context's QUERY says {held1:?} after the second converted the page"),
    );
    s.v.check(
        "first-notified",
        o1.notifier_event_seen,
        "the first context's notifier saw no invalidation for the page",
    );
    s.v.check(
        "value-carried",
        o2.value_at_conversion == o1.initial_value + o1.device_increments,
        format!(
            "second context reads {:#x}, first left {:#x}",
            o2.value_at_conversion,
            o1.initial_value + o1.device_increments
        ),
    );
    device_work(&mut s, second.as_mut(), ctx.cfg.iterations, &mut o2)?;
    touch_and_finish(s, second.as_mut(), page, n, o2)
}
