//! exclusive-dirty-log: with dirty logging on, the device's writes are not
//! guest writes, but the guest's writes after revocation must appear in
//! KVM's dirty log for the page.

use crate::drill::exclusive::{conclude, convert, device_work, guest_touch, pages, setup};
use crate::drill::exclusive_memslot_delete::set_slot;
use crate::drill::guest::{page_gpa, PAGE_SIZE};
use crate::drill::runner::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, Session, TraceMode};
use crate::drill::timeline::Timeline;
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

fn dirty(s: &Session, len: u64, page: u64) -> DrillResult<bool> {
    let vm = s
        .guest()
        .vm_fd()
        .ok_or_else(|| DrillError::Host("no VM fd".into()))?;
    let bm = vm
        .get_dirty_log(0, len as usize)
        .map_err(|e| DrillError::Host(format!("KVM_GET_DIRTY_LOG: {e}")))?;
    let gfn = page_gpa(page) / PAGE_SIZE;
    Ok(bm
        .get((gfn / 64) as usize)
        .is_some_and(|w| w & (1 << (gfn % 64)) != 0))
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let region = *s
        .guest()
        .regions()
        .first()
        .ok_or_else(|| DrillError::Host("guest has no memory region".into()))?;
    {
        let vm = s
            .guest()
            .vm_fd()
            .ok_or_else(|| DrillError::Host("no VM fd".into()))?;
        set_slot(
            vm,
            region.gpa,
            region.hva,
            region.len,
            kvm_bindings::KVM_MEM_LOG_DIRTY_PAGES,
        )
        .map_err(|e| DrillError::Host(format!("enable dirty logging: {e}")))?;
    }
    let page = setup(&mut s, n)?;
    dirty(&s, region.len, page)?; // clears the log
    let mut o = ExclusiveObs::default();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    let by_device = dirty(&s, region.len, page)?;
    s.v.note(format!("dirty bit after device writes only: {by_device}"));
    guest_touch(
        &mut s,
        dev.as_mut(),
        page,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    let by_guest = dirty(&s, region.len, page)?;
    s.v.check(
        "dirty-log-records-guest-write",
        by_guest,
        "KVM's dirty log has no bit for the page after the guest wrote it (post-revocation)",
    );
    conclude(&mut s, page, n, o)?;
    if let Some(vm) = s.guest().vm_fd() {
        let _ = set_slot(vm, region.gpa, region.hva, region.len, 0);
    }
    s.finish()
}
