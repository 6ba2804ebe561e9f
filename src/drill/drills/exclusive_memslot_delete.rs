//! exclusive-memslot-delete: while the device holds a page, the VMM deletes
//! guest RAM's memslots and adds them back. KVM zaps the slot; the guest's
//! next access must still go through the host page tables and revoke the
//! device.

use crate::drill::exclusive::{held_page, touch_and_finish, HeldPage};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::DrillResult;
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let HeldPage {
        mut s,
        mut dev,
        n,
        page,
        o,
    } = held_page(ctx)?;
    let (r, _) = s.host("memslot delete + add", |s| {
        s.guest_mut().recreate_memslots()
    });
    r?;
    touch_and_finish(s, dev.as_mut(), page, n, o)
}
