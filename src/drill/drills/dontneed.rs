//! dontneed: the guest fills pages and writes a counter; the host drops the
//! counter's page with MADV_DONTNEED. KVM must unmap exactly that host
//! range, every vCPU must then read 0, a later guest write must land in the
//! page the host sees, and the neighbours keep their contents.

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
    let marker = 0x5eed_0000 | (ctx.cfg.seed as u32 & 0xffff);

    s.step(0, Op::FillRange(n as u32), 0)?;
    s.step(0, Op::Write(marker), target)?;
    for vcpu in 0..s.nr_vcpus() {
        s.step(vcpu, Op::Read, target)?; // every vCPU's view is mapped now
    }
    let hva = s.hva(target)?;
    let (r, win) = s.host("MADV_DONTNEED", |s| {
        s.madvise(target, 1, libc::MADV_DONTNEED)
    });
    r.map_err(host_err("madvise(MADV_DONTNEED)"))?;
    let pm = s.pagemap(target)?;
    s.v.check(
        "pagemap-dropped",
        !pm.present(),
        format!(
            "pagemap still shows the page after MADV_DONTNEED: {}",
            pm.describe()
        ),
    );
    let ev = s.kvm_events()?;
    invalidated(&mut s.v, "MADV_DONTNEED", &ev, win, hva, hva + PAGE_SIZE);

    for vcpu in 0..s.nr_vcpus() {
        let seen = s.step(vcpu, Op::Read, target)?;
        s.v.check(
            "guest-sees-zero-page",
            seen == 0,
            format!("vCPU {vcpu} read {seen:#x} after MADV_DONTNEED (expected 0): KVM kept a stale mapping of the dropped page"),
        );
    }
    let after = marker ^ 0xffff;
    s.step(0, Op::Write(after), target)?;
    s.check_write_reaches_host(target, after, ": the write went through a stale mapping")?;
    s.check_neighbours(target, n)?;
    s.finish()
}
