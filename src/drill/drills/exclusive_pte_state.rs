//! exclusive-pte-state: the PTE that comes back when the CPU takes a
//! device-exclusive page back must carry the state the converted PTE had,
//! and the permissions the VMA has now.
//!
//! Page E: taken back by the guest's read, the PTE must be writable again
//! where the VMA allows it (a write by the VMM takes no fault).
//! Page A: clear_refs, the guest writes it (soft-dirty), the device takes
//! it. While held the entry must be soft-dirty, and after the guest's read
//! restores the PTE pagemap must still say soft-dirty.
//! Page C: the VMM writes it (dirty PTE, clean folio), the device takes it:
//! the folio must then be dirty (the PTE's dirty bit moved to the folio).
//! Page D: write-protected with userfaultfd while the device holds it: the
//! entry and then the restored PTE must keep uffd-wp.
//! Page B: the device takes it, the host makes it read-only (mprotect), the
//! guest's read restores it. A store by the VMM must then fault, a guest
//! write fail (KVM_RUN EFAULT), and both leave the page as it was.

use crate::drill::exclusive::{
    check_conversion, convert, dev_err, pages, write_and_convert, INITIAL,
};
use crate::drill::guest::Op;
use crate::drill::hostmm::{
    clear_soft_dirty, guarded_write, kpageflags, thread_minor_faults, UffdWp, KPF_DIRTY,
};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillError, DrillResult, GuestSpec, TraceMode};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages).max(7).min(s.max_pages() - 1);
    let (a, b) = (1, 2);
    let seed = ctx.cfg.seed as u32 & 0xffff;
    s.step(0, Op::FillRange(n as u32), 0)?;

    // Page E: taken back with a read, the PTE must be writable again (the
    // VMA allows it and the page is exclusively ours): the VMM's write
    // then takes no fault. Before clear_refs, which makes soft-dirty
    // tracking want write faults.
    let e = 4;
    let ve = 0xe000_0000 | seed;
    let oe = write_and_convert(&mut s, dev.as_mut(), e, ve, "page E: ")?;
    let seen = s.step(0, Op::Read, e)?;
    s.v.check(
        "value-kept",
        seen == ve as u64,
        format!("the guest reads {seen:#x} from page E after the restore, it wrote {ve:#x}"),
    );
    let pm = s.pagemap(e)?;
    // Without the restore there is no restored PTE to judge: that the
    // guest's read did not take the page back is the failure then.
    if s.v.check(
        "restored-on-read",
        pm.present(),
        format!(
            "the guest's read did not bring page E back: pagemap says {}",
            pm.describe()
        ),
    ) {
        let before = thread_minor_faults().map_err(host_err("getrusage"))?;
        s.host_write(e, 1, 0x5eed)?;
        let faults = thread_minor_faults().map_err(host_err("getrusage"))? - before;
        s.v.check(
            "writable-after-restore",
            faults == 0,
            format!("the VMM's write to page E, restored by a read in a writable VMA, took {faults} page fault(s): the restored PTE is read-only"),
        );
    }
    check_conversion(&mut s, &oe)?;

    // Page A: soft-dirty and dirty.
    let va = 0x5d00_0000 | seed;
    s.step(0, Op::Write(INITIAL as u32), a)?;
    let (r, _) = s.host("clear_refs 4 (soft-dirty)", |_| clear_soft_dirty());
    r.map_err(host_err("clear_refs"))?;
    if s.pagemap(a)?.soft_dirty() {
        return Err(DrillError::Host(
            "clear_refs 4 left the page soft-dirty: this kernel does not track soft-dirty".into(),
        ));
    }
    s.step(0, Op::Write(va), a)?;
    let before = s.pagemap(a)?;
    if !before.soft_dirty() {
        return Err(DrillError::Host(
            "the guest's write after clear_refs did not make the PTE soft-dirty".into(),
        ));
    }
    let mut oa = ExclusiveObs {
        label: "page A: ".into(),
        expected_at_conversion: Some(va as u64),
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), a, &mut oa)?;
    let held = s.pagemap(a)?;
    s.v.check(
        "soft-dirty-kept",
        held.soft_dirty(),
        format!(
            "page A was soft-dirty before make-exclusive; the device-exclusive entry is not ({})",
            held.describe()
        ),
    );
    let seen = s.step(0, Op::Read, a)?;
    let restored = s.pagemap(a)?;
    s.v.check(
        "soft-dirty-kept",
        restored.present() && restored.soft_dirty(),
        format!(
            "after the guest's read restored page A, pagemap says {} soft-dirty={} (expected present and soft-dirty)",
            restored.describe(),
            restored.soft_dirty()
        ),
    );
    s.v.check(
        "value-kept",
        seen == va as u64,
        format!("the guest reads {seen:#x} from page A after the restore, it wrote {va:#x}"),
    );
    check_conversion(&mut s, &oa)?;

    // Page C, past the filled pages: the VMM writes it (a device model
    // filling a buffer), so only the PTE knows it is dirty; the guest has
    // never touched it, so KVM has not marked its folio dirty either.
    let c = n;
    let vc = 0xc000_0000 | seed as u64;
    s.host_write(c, 0, vc)?;
    let pm = s.pagemap(c)?;
    let pfn = pm.pfn().filter(|&p| p != 0).ok_or_else(|| {
        DrillError::Host(format!(
            "no PFN for page C ({}): run as root",
            pm.describe()
        ))
    })?;
    let flags = kpageflags(pfn).map_err(host_err("kpageflags"))?;
    if flags & KPF_DIRTY != 0 {
        return Err(DrillError::Host(format!(
            "page C's folio is dirty before the conversion (kpageflags {flags:#x}): the check below could not fail"
        )));
    }
    let mut oc = ExclusiveObs {
        label: "page C: ".into(),
        expected_at_conversion: Some(vc),
        // The guest never touches page C (see above).
        kvm_unmapped_by_design: true,
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), c, &mut oc)?;
    let flags = kpageflags(pfn).map_err(host_err("kpageflags"))?;
    s.v.check(
        "folio-dirty-kept",
        flags & KPF_DIRTY != 0,
        format!("the VMM wrote page C (dirty PTE, clean folio), then the device took it: its folio (pfn {pfn:#x}) is clean (kpageflags {flags:#x}), the PTE's dirty bit was dropped"),
    );
    check_conversion(&mut s, &oc)?;

    // Page D: write-protected with userfaultfd while held; the restored
    // PTE must keep uffd-wp (else the next write bypasses the tracker).
    let d = 3;
    let vd = 0xd000_0000 | seed;
    let uffd = UffdWp::register(s.hva(d)?, 4096).map_err(host_err("userfaultfd register (WP)"))?;
    let od = write_and_convert(&mut s, dev.as_mut(), d, vd, "page D: ")?;
    let (r, _) = s.host("UFFDIO_WRITEPROTECT", |_| uffd.protect(true));
    r.map_err(host_err("UFFDIO_WRITEPROTECT"))?;
    let held = s.pagemap(d)?;
    s.v.check(
        "uffd-wp-kept",
        held.uffd_wp(),
        format!("UFFDIO_WRITEPROTECT on page D while the device held it: pagemap says {} without uffd-wp", held.describe()),
    );
    let seen = s.step(0, Op::Read, d)?;
    let restored = s.pagemap(d)?;
    s.v.check(
        "uffd-wp-kept",
        restored.present() && restored.uffd_wp(),
        format!(
            "after the guest's read restored page D, write-protected with userfaultfd while the device held it, pagemap says {} uffd-wp={}",
            restored.describe(),
            restored.uffd_wp()
        ),
    );
    s.v.check(
        "value-kept",
        seen == vd as u64,
        format!("the guest reads {seen:#x} from page D after the restore, it wrote {vd:#x}"),
    );
    check_conversion(&mut s, &od)?;
    let (r, _) = s.host("UFFDIO_WRITEPROTECT (resolve)", |_| uffd.protect(false));
    r.map_err(host_err("UFFDIO_WRITEPROTECT"))?;
    drop(uffd);

    // Page B: read-only while held, read-only after the restore.
    let vb = 0x7b00_0000 | seed;
    let ob = write_and_convert(&mut s, dev.as_mut(), b, vb, "page B: ")?;
    let (r, _) = s.host("mprotect(PROT_READ)", |s| s.mprotect(b, 1, libc::PROT_READ));
    r.map_err(host_err("mprotect"))?;
    let _ = dev.query(ob.hva).map_err(dev_err("query"))?;
    let seen = s.step(0, Op::Read, b)?;
    s.v.check(
        "value-kept",
        seen == vb as u64,
        format!(
            "the guest reads {seen:#x} from read-only page B after the restore, it wrote {vb:#x}"
        ),
    );
    let pm = s.pagemap(b)?;
    s.v.check(
        "restored-on-read",
        pm.present(),
        format!(
            "the guest's read did not bring page B back: pagemap says {}",
            pm.describe()
        ),
    );
    check_conversion(&mut s, &ob)?;
    // A store by this process must fault too, and leave the page as it was.
    let stray = vb as u64 ^ 0xaaaa;
    let faulted = guarded_write(ob.hva, stray).map_err(host_err("sigaction"))?;
    let now = s.host_read(b, 0)?;
    s.v.check(
        "read-only-after-restore",
        faulted && now == vb as u64,
        format!("page B was made read-only while the device held it; after the restore the VMM's own store {} (the page holds {now:#x}, the guest wrote {vb:#x}): the restored PTE is writable", if faulted { "faulted" } else { "did not fault" }),
    );
    // Neighbours before the last step, which stops the guest.
    let bad = s.step(0, Op::CheckRange(1), 0)? + s.step(0, Op::CheckRange((n - 5) as u32), 5)?;
    s.v.check(
        "neighbours-intact",
        bad == 0,
        format!("{bad} words of neighbouring pages changed"),
    );
    let v3 = vb ^ 0xffff;
    let res = s.step(0, Op::Write(v3), b);
    let host = s.host_read(b, 0)?;
    let _ = s.mprotect(b, 1, libc::PROT_READ | libc::PROT_WRITE);
    match res {
        Ok(_) => {
            s.v.check(
                "read-only-after-restore",
                false,
                format!("page B was made read-only while the device held it; after the restore the guest's write of {v3:#x} completed (host page holds {host:#x}): the restored PTE is writable"),
            );
        }
        Err(e) if !e.is_refused_write() => return Err(e),
        Err(_) => {
            s.v.check(
                "read-only-after-restore",
                host == vb as u64,
                format!(
                    "host page B holds {host:#x} after a refused guest write (expected {vb:#x})"
                ),
            );
        }
    }
    s.finish()
}
