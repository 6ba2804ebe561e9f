//! fork-cow: the VMM forks while the guest has a page mapped writable.
//! Fork write-protects the parent's PTEs, so KVM must drop its writable
//! mapping; the guest's next write breaks COW in the parent, the child keeps
//! the old value, and the write lands in the parent's new page.

use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::hostmm::ForkedReader;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{host_err, DrillResult, TraceMode};
use crate::drill::verdict::{invalidated, Verdict};
use crate::drill::Ctx;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let n = ctx.cfg.pages.clamp(3, s.max_pages());
    let target = n / 2;
    let before = 0x0c0f_0000u32 | (ctx.cfg.seed as u32 & 0xffff);
    let after = before ^ 0xaaaa;

    s.step(0, Op::FillRange(n as u32), 0)?;
    s.step(0, Op::Write(before), target)?;
    let hva = s.hva(target)?;
    // The child must inherit guest RAM even if the VMM set MADV_DONTFORK.
    s.madvise(0, n, libc::MADV_DOFORK)
        .map_err(host_err("madvise(MADV_DOFORK)"))?;
    let (child, win) = s.host("fork", |_| ForkedReader::spawn(hva));
    let mut child = child.map_err(host_err("fork"))?;
    let ev = s.kvm_events()?;
    invalidated(
        &mut s.v,
        "fork (COW write-protect)",
        &ev,
        win,
        hva,
        hva + PAGE_SIZE,
    );

    let seen = s.step(0, Op::Write(after), target)?;
    s.v.check(
        "guest-reads-value",
        seen == before as u64,
        format!("guest saw {seen:#x} before its write, expected {before:#x}"),
    );
    let (c, _) = s.host("child reads", |_| child.read());
    let c = c.map_err(host_err("forked child"))?;
    s.v.check(
        "child-isolated",
        c == before as u64,
        format!("the forked child sees {c:#x} (expected {before:#x}): the guest wrote through a stale mapping into the page shared with the child"),
    );
    s.check_write_reaches_host(target, after, ": KVM did not follow the COW break")?;
    s.check_neighbours(target, n)?;
    drop(child);
    s.finish()
}
