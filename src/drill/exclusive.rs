//! Steps shared by the exclusive-* drills. The page under test is read only
//! through the device's mapping, pagemap and the guest's reports: a host
//! access would itself revoke the device and hide what the guest did.

use crate::clock::now_ns;
use crate::drill::device::{DeviceError, ExclusiveDevice, Held};
use crate::drill::guest::{page_gpa, Op, PAGE_SIZE};
use crate::drill::hostmm::{anon_huge_kb, thp_available};
use crate::drill::report::timeline::{Lane, Timeline};
use crate::drill::session::{host_err, DrillError, DrillResult, GuestSpec, Session, TraceMode};
use crate::drill::verdict::{
    exclusive_window, judge_conversion, judge_exclusive, ExclusiveObs, Verdict, Window,
};
use crate::drill::Ctx;
use crate::notifier_client::NotifierClient;

/// Initial counter value of the page under test.
pub const INITIAL: u64 = 100;

pub fn dev_err(what: &str) -> impl FnOnce(DeviceError) -> DrillError + '_ {
    move |e| match e {
        DeviceError::Unsupported => DrillError::Skip(format!(
            "{what}: kernel without DEVICE_PRIVATE (MAKE_EXCLUSIVE gives EOPNOTSUPP)"
        )),
        e => DrillError::Host(format!("{what}: {e}")),
    }
}

/// Fills `n` pages (seed = page index) and sets the counter of the middle
/// one, which the guest then has mapped writable. Returns the page.
pub fn setup(s: &mut Session, n: u64) -> DrillResult<u64> {
    let target = n / 2;
    s.step(0, Op::FillRange(n as u32), 0)?;
    s.step(0, Op::Write(INITIAL as u32), target)?;
    for vcpu in 0..s.nr_vcpus() {
        s.step(vcpu, Op::Read, target)?;
    }
    Ok(target)
}

/// Observations of a page whose value the guest set to [`INITIAL`] in
/// [`setup`]: the device must read that value at conversion.
pub fn anchored() -> ExclusiveObs {
    ExclusiveObs {
        expected_at_conversion: Some(INITIAL),
        ..Default::default()
    }
}

/// make-exclusive on `page`; records the conversion into `o`.
pub fn convert(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    o: &mut ExclusiveObs,
) -> DrillResult<Window> {
    let hva = s.hva(page)?;
    o.hva = hva;
    o.gfn = page_gpa(page) >> 12;
    let (r, win) = s.host("make-exclusive", |_| dev.make_exclusive(hva));
    // EOPNOTSUPP means "this kernel offers no device-exclusive" only before
    // the drill's first conversion; after one it is a broken contract.
    if matches!(r, Err(DeviceError::Unsupported)) && s.conversions > 0 {
        return Err(DrillError::Host(format!(
            "make-exclusive failed with EOPNOTSUPP after {} successful conversions in this drill",
            s.conversions
        )));
    }
    if let Err(DeviceError::Io(e)) = &r {
        // Say what KVM did during the failed call: a kernel that skips the
        // notifier also breaks drivers' retry loops.
        let ev = s.kvm_events()?;
        let seen = ev
            .iter()
            .any(|x| x.within(win.start_ns, win.end_ns) && x.unmap_covers(hva, hva + PAGE_SIZE));
        return Err(DrillError::Host(format!(
            "make-exclusive failed: {e}; KVM {} the page's host range during the call",
            if seen {
                "did invalidate"
            } else {
                "saw no invalidation of"
            }
        )));
    }
    if !r.map_err(dev_err("make-exclusive"))? {
        return Err(DrillError::Host(
            "make-exclusive converted nothing: the device already held the page".into(),
        ));
    }
    s.conversions += 1;
    o.conversion = win;
    o.pagemap_present_after_conversion = s.pagemap(page)?.present();
    let held = dev.query(hva).map_err(dev_err("query"))?;
    if held != Held::Now {
        return Err(DrillError::Host(format!(
            "QUERY says {held:?} right after make-exclusive returned"
        )));
    }
    let v = dev.read(hva).map_err(dev_err("device read"))?;
    s.tl.instant(Lane::Device, now_ns(), format!("device reads {v:#x}"));
    o.value_at_conversion = v;
    o.initial_value = o.expected_at_conversion.unwrap_or(v);
    // The device's own EXCLUSIVE invalidation dates the conversion; it is
    // not a revocation, and neither is anything else during the call.
    let during: Vec<_> = dev
        .take_events()
        .map_err(dev_err("events"))?
        .into_iter()
        .filter(|e| e.time_ns >= win.start_ns && e.time_ns <= win.end_ns)
        .collect();
    o.exclusive = exclusive_window(&during, hva, win);
    Ok(win)
}

/// The device adds 1, `k` times, through its mapping; then checks it reads back.
pub fn device_work(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    k: u64,
    o: &mut ExclusiveObs,
) -> DrillResult<()> {
    let hva = o.hva;
    let base = dev.read(hva).map_err(dev_err("device read"))?;
    for _ in 0..k {
        dev.add(hva, 1).map_err(dev_err("device add"))?;
    }
    o.device_increments += k;
    let v = dev.read(hva).map_err(dev_err("device read"))?;
    s.tl.instant(Lane::Device, now_ns(), format!("device +{k} -> {v:#x}"));
    o.device_reads.push((base + k, v));
    Ok(())
}

/// Check `name`: the device's QUERY says a host operation took the page at
/// `hva` away (Revoked); `detail` words a failure from what QUERY said.
pub fn check_revoked(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    hva: u64,
    name: &str,
    detail: impl FnOnce(Held) -> String,
) -> DrillResult<()> {
    let held = dev.query(hva).map_err(dev_err("query"))?;
    s.v.check(name, held == Held::Revoked, detail(held));
    Ok(())
}

/// Whether the device still holds the page; if it does, what it reads now
/// must be what it last saw (`expect`).
pub fn still_held(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    o: &mut ExclusiveObs,
    expect: u64,
) -> DrillResult<bool> {
    let held = dev.query(o.hva).map_err(dev_err("query"))? == Held::Now;
    if held {
        match dev.read(o.hva) {
            Ok(v) => {
                s.tl.instant(Lane::Device, now_ns(), format!("still held, reads {v:#x}"));
                o.device_reads.push((expect, v));
            }
            Err(DeviceError::Revoked) => return Ok(false),
            Err(e) => return Err(dev_err("device read")(e)),
        }
    }
    Ok(held)
}

/// The guest's first access after the conversion: `k` plain increments on
/// vCPU `vcpu`. Records whether that revoked the device.
pub fn guest_touch(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    vcpu: usize,
    k: u64,
    o: &mut ExclusiveObs,
) -> DrillResult<u64> {
    let expect = o
        .device_reads
        .last()
        .map(|r| r.0)
        .unwrap_or(o.value_at_conversion);
    o.lost_before_touch = dev.query(o.hva).map_err(dev_err("query"))? != Held::Now;
    let last = s.step(vcpu, Op::IncLoop(k as u32), page)?;
    o.guest_increments += k;
    let held = still_held(s, dev, o, expect)?;
    if held {
        o.guest_writes_while_exclusive += k;
    }
    o.revoked_after_guest_touch = !held;
    note_revocations(s, dev, o)?;
    o.pagemap_present_after_touch = s.pagemap(page)?.present();
    Ok(last)
}

/// Collects the device's notifier events: one that is not its own and
/// covers the page counts as the revocation.
pub fn note_revocations(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    o: &mut ExclusiveObs,
) -> DrillResult<()> {
    for e in dev.take_events().map_err(dev_err("events"))? {
        s.tl.instant(
            Lane::Device,
            e.time_ns,
            format!(
                "notifier {:?} {:#x}-{:#x}{}",
                e.kind,
                e.start,
                e.end,
                if e.owner_is_self { " (self)" } else { "" }
            ),
        );
        if !e.owner_is_self && e.touches(o.hva, o.hva + PAGE_SIZE) {
            o.notifier_event_seen = true;
        }
    }
    Ok(())
}

/// The conversion's rules alone ([`judge_conversion`]), for drills that do
/// not end in [`conclude`].
pub fn check_conversion(s: &mut Session, o: &ExclusiveObs) -> DrillResult<()> {
    let ev = s.kvm_events()?;
    judge_conversion(&mut s.v, o, &ev);
    Ok(())
}

/// Final value through the guest, neighbour check, and the exclusive rules.
pub fn conclude(s: &mut Session, page: u64, n: u64, mut o: ExclusiveObs) -> DrillResult<()> {
    o.final_value = s.step(0, Op::Read, page)?;
    o.neighbour_mismatches = s.step(0, Op::CheckRange(page as u32), 0)?
        + s.step(0, Op::CheckRange((n - page - 1) as u32), page + 1)?;
    let ev = s.kvm_events()?;
    judge_exclusive(&mut s.v, &o, &ev);
    s.v.figure("guest_increments", o.guest_increments as f64);
    s.v.figure("device_increments", o.device_increments as f64);
    s.v.figure(
        "conversion_us",
        (o.conversion.end_ns - o.conversion.start_ns) as f64 / 1e3,
    );
    Ok(())
}

/// An exclusive drill after its common start ([`held_page`]).
pub struct HeldPage {
    pub s: Session,
    pub dev: Box<dyn ExclusiveDevice>,
    /// Data pages in use; `page` is the one under test.
    pub n: u64,
    pub page: u64,
    pub o: ExclusiveObs,
}

/// The common start of an exclusive drill: the guest ([`setup`]), a device
/// context that converts the page under test ([`convert`]) and adds to it
/// `iterations` times ([`device_work`]).
pub fn held_page(ctx: &Ctx) -> DrillResult<HeldPage> {
    held_page_after(ctx, |_, _| Ok(()))
}

/// [`held_page`] with `before` run on the page under test between the
/// guest's setup and the conversion.
pub fn held_page_after(
    ctx: &Ctx,
    before: impl FnOnce(&mut Session, u64) -> DrillResult<()>,
) -> DrillResult<HeldPage> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    before(&mut s, page)?;
    let mut o = anchored();
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    Ok(HeldPage { s, dev, n, page, o })
}

/// The common end of an exclusive drill: the guest's first access on
/// vCPU 0 ([`guest_touch`], `iterations` increments), [`conclude`], and
/// the session's verdict.
pub fn touch_and_finish(
    mut s: Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    n: u64,
    mut o: ExclusiveObs,
) -> DrillResult<(Verdict, Timeline)> {
    let k = s.cfg.iterations.max(1);
    guest_touch(&mut s, dev, page, 0, k, &mut o)?;
    conclude(&mut s, page, n, o)?;
    s.finish()
}

/// The guest writes `value` to `page` and every vCPU reads it (so KVM maps
/// it on each), then the device takes it: the device must read `value`.
pub fn write_and_convert(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    value: u32,
    label: &str,
) -> DrillResult<ExclusiveObs> {
    write_prepare_convert(s, dev, page, value, label, |_| Ok(()))
}

/// [`write_and_convert`], with `prepare` run on the host between the
/// guest's accesses and the conversion.
pub fn write_prepare_convert(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    value: u32,
    label: &str,
    prepare: impl FnOnce(&mut Session) -> DrillResult<()>,
) -> DrillResult<ExclusiveObs> {
    s.step(0, Op::Write(value), page)?;
    for vcpu in 0..s.nr_vcpus() {
        s.step(vcpu, Op::Read, page)?;
    }
    prepare(s)?;
    let mut o = ExclusiveObs {
        label: label.to_string(),
        expected_at_conversion: Some(value as u64),
        ..Default::default()
    };
    convert(s, dev, page, &mut o)?;
    Ok(o)
}

/// Data pages of one THP (2 MiB).
pub const THP_PAGES: u64 = 512;

/// The common start of the large-folio drills: a guest whose first 2 MiB of
/// data pages are one THP, filled, with [`INITIAL`] written to `page`, and
/// a device context. Skips where THP is off and where guest RAM did not get
/// a THP. Before 6.15 ([`whole_folio_conversion`]) `page` must be the head
/// page (0).
pub fn thp_guest(ctx: &Ctx, page: u64) -> DrillResult<(Session, Box<dyn ExclusiveDevice>)> {
    thp_available().map_err(DrillError::Skip)?;
    let mut spec = GuestSpec::of(&ctx.cfg);
    spec.thp = true;
    let mut s = ctx.start(spec, TraceMode::ThisProcess)?;
    let dev = ctx.device(&s)?;
    s.madvise(0, THP_PAGES, libc::MADV_HUGEPAGE)
        .map_err(host_err("madvise(MADV_HUGEPAGE)"))?;
    s.step(0, Op::FillRange(THP_PAGES as u32), 0)?;
    s.step(0, Op::Write(INITIAL as u32), page)?;
    match anon_huge_kb(s.hva(0)?) {
        Some(kb) if kb >= 2048 => Ok((s, dev)),
        other => Err(DrillError::Skip(format!(
            "guest RAM is not THP-backed (AnonHugePages {other:?} kB)"
        ))),
    }
}

/// Pages the exclusive drills use.
pub fn pages(s: &Session, want: u64) -> u64 {
    want.clamp(3, s.max_pages())
}

/// Before 6.15 the kernel converts a large folio only through its head page
/// (make_device_exclusive_range() gives no page for a tail page) and then
/// converts every page of it; the module records the whole folio.
pub fn whole_folio_conversion() -> bool {
    NotifierClient::open().is_ok_and(|c| c.version().range_api)
}

/// The device holds exactly the pages `first..first + n` that the host page
/// table shows device-exclusive (not present, a swap-type entry): what the
/// kernel converted is what the device recorded, no more, no less. Returns
/// how many it holds.
pub fn check_holds_what_kernel_converted(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    first: u64,
    n: u64,
    label: &str,
) -> DrillResult<u64> {
    let mut wrong = Vec::new();
    let mut held_pages = 0;
    for p in first..first + n {
        let pm = s.pagemap(p)?;
        let exclusive = !pm.present() && pm.swapped();
        let held = dev.query(s.hva(p)?).map_err(dev_err("query"))? == Held::Now;
        held_pages += held as u64;
        if exclusive != held {
            wrong.push(format!(
                "page {p}: pagemap {}, device {}",
                pm.describe(),
                if held { "holds it" } else { "does not hold it" }
            ));
        }
    }
    s.v.check(
        "device-holds-what-kernel-converted",
        wrong.is_empty(),
        format!(
            "{label}{} of {n} pages differ between the host page table and the device's record ({})",
            wrong.len(),
            wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ),
    );
    Ok(held_pages)
}
