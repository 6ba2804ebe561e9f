//! exclusive-basic: convert one page the guest has mapped writable; the
//! device increments it; the guest's increments must revoke the device.

use crate::drill::exclusive::{held_page, touch_and_finish, HeldPage};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::DrillResult;
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let HeldPage {
        s,
        mut dev,
        n,
        page,
        o,
    } = held_page(ctx)?;
    touch_and_finish(s, dev.as_mut(), page, n, o)
}
