//! mprotect: the guest writes a page; the host makes it read-only. KVM must
//! drop its writable mapping (an invalidation), the guest still reads the
//! value, and a guest write while read-only must not land. Last step: the
//! write ends the VM (KVM_RUN fails with EFAULT) or is refused.

use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{host_err, DrillResult, TraceMode};
use crate::drill::verdict::{invalidated, Verdict};
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let n = ctx.cfg.pages.clamp(3, s.max_pages());
    let target = n / 2;
    let v1 = 0x1111_0000 | (ctx.cfg.seed as u32 & 0xffff);

    s.step(0, Op::FillRange(n as u32), 0)?;
    s.step(0, Op::Write(v1), target)?;
    let hva = s.hva(target)?;
    let (r, win) = s.host("mprotect(PROT_READ)", |s| {
        s.mprotect(target, 1, libc::PROT_READ)
    });
    r.map_err(host_err("mprotect"))?;
    let ev = s.kvm_events()?;
    invalidated(
        &mut s.v,
        "mprotect(PROT_READ)",
        &ev,
        win,
        hva,
        hva + PAGE_SIZE,
    );
    let seen = s.step(0, Op::Read, target)?;
    s.v.check(
        "guest-reads-value",
        seen == v1 as u64,
        format!("guest read {seen:#x} from the read-only page, expected {v1:#x}"),
    );

    // Writable again: a guest write must reach the host page.
    let (r, _) = s.host("mprotect(PROT_READ|PROT_WRITE)", |s| {
        s.mprotect(target, 1, libc::PROT_READ | libc::PROT_WRITE)
    });
    r.map_err(host_err("mprotect"))?;
    let v2 = v1 ^ 0xff;
    s.step(0, Op::Write(v2), target)?;
    s.check_write_reaches_host(target, v2, "")?;
    s.check_neighbours(target, n)?;

    // Read-only again; the guest's write must not land.
    let (r, _) = s.host("mprotect(PROT_READ)", |s| {
        s.mprotect(target, 1, libc::PROT_READ)
    });
    r.map_err(host_err("mprotect"))?;
    let v3 = v2 ^ 0xff00;
    let res = s.step(0, Op::Write(v3), target);
    let host = s.host_read(target, 0)?;
    let _ = s.mprotect(target, 1, libc::PROT_READ | libc::PROT_WRITE);
    match res {
        Ok(_) => {
            s.v.check(
                "read-only-respected",
                host != v3 as u64,
                format!("guest wrote {v3:#x} into a page the host made read-only: KVM kept a writable mapping"),
            );
            s.v.check(
                "read-only-respected",
                false,
                "the guest's write to a read-only page completed (KVM must fail it with EFAULT)",
            );
        }
        Err(e) if !e.is_refused_write() => return Err(e),
        Err(e) => {
            s.v.note(format!(
                "guest write to the read-only page stopped the guest as expected: {e}"
            ));
            s.v.check(
                "read-only-respected",
                host == v2 as u64,
                format!("host page holds {host:#x} after a refused guest write (expected {v2:#x})"),
            );
        }
    }
    s.finish()
}
