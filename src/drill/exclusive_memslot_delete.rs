//! exclusive-memslot-delete: while the device holds a page, the VMM deletes
//! guest RAM's memslot and adds it back. KVM zaps the slot; the guest's
//! next access must still go through the host page tables and revoke the
//! device. Assumes the interp guest's one RAM region is memslot 0.

use kvm_bindings::kvm_userspace_memory_region;

use crate::drill::exclusive::{conclude, convert, device_work, guest_touch, pages, setup};
use crate::drill::runner::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, TraceMode};
use crate::drill::timeline::Timeline;
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

pub fn set_slot(
    vm: &kvm_ioctls::VmFd,
    gpa: u64,
    hva: u64,
    len: u64,
    flags: u32,
) -> Result<(), kvm_ioctls::Error> {
    let r = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: gpa,
        memory_size: len,
        userspace_addr: hva,
        flags,
    };
    // SAFETY: the region is guest RAM the VMM keeps mapped for the VM's
    // lifetime (len 0 deletes the slot); the vCPUs wait in SYNC meanwhile.
    unsafe { vm.set_user_memory_region(r) }
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    let region = *s
        .guest()
        .regions()
        .first()
        .ok_or_else(|| DrillError::Host("guest has no memory region".into()))?;
    let mut o = ExclusiveObs::default();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    let (r, _) = s.host("memslot delete + add", |s| {
        let vm = s.guest().vm_fd().ok_or_else(|| "no VM fd".to_string())?;
        set_slot(vm, region.gpa, region.hva, 0, 0).map_err(|e| format!("delete memslot: {e}"))?;
        set_slot(vm, region.gpa, region.hva, region.len, 0)
            .map_err(|e| format!("re-add memslot: {e}"))
    });
    r.map_err(DrillError::Host)?;
    guest_touch(
        &mut s,
        dev.as_mut(),
        page,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    conclude(&mut s, page, n, o)?;
    s.finish()
}
