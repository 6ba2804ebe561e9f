//! exclusive-memslot-delete: while the device holds a page, the VMM deletes
//! guest RAM's memslots and adds them back. KVM zaps the slot; the guest's
//! next access must still go through the host page tables and revoke the
//! device.
//!
//! The zap must really happen: at the end the memslots are deleted once
//! more and the guest is asked to read a page it has mapped. With no slot
//! the access cannot complete (the guest stops on the exit); a KVM that
//! kept its mappings of the deleted slot lets the read return
//! (`memslot-zapped`). Re-adding the same slot could not show that: a kept
//! mapping would point at the same page frames.

use crate::drill::exclusive::{conclude, guest_touch, held_page, HeldPage};
use crate::drill::guest::Op;
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
        mut o,
    } = held_page(ctx)?;
    let (r, _) = s.host("memslot delete + add", |s| {
        s.guest_mut().recreate_memslots()
    });
    r?;
    let k = s.cfg.iterations.max(1);
    guest_touch(&mut s, dev.as_mut(), page, 0, k, &mut o)?;
    conclude(&mut s, page, n, o)?;
    let (r, _) = s.host("memslot delete", |s| s.guest_mut().delete_memslots());
    r?;
    let mapped = page - 1;
    let read = s.step(0, Op::Read, mapped);
    s.v.check(
        "memslot-zapped",
        read.is_err(),
        format!(
            "with guest RAM's memslots deleted, the guest still read page {mapped} ({:#x}): KVM kept its mapping of the deleted slot",
            read.as_ref().map_or(0, |v| *v)
        ),
    );
    if let Err(e) = read {
        s.v.note(format!(
            "the guest's read with no memslot stopped it, as it must: {e}"
        ));
    }
    s.finish()
}
