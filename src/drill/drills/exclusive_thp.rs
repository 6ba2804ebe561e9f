//! exclusive-thp: guest RAM backed by a THP that KVM may map with a 2 MiB
//! entry; one 4 KiB page of it is made exclusive. The conversion splits the
//! PMD: KVM must drop the mapping covering the page (pages_2m goes down),
//! the other 511 pages stay intact and accessible. Then a second page of
//! the now PTE-mapped folio, freshly mapped by KVM with 4 KiB, is converted:
//! that conversion has no split to hide behind, only its own notifier.
//!
//! Before 6.15 (make_device_exclusive_range()) only the head page of a large
//! folio converts, and it converts the whole folio: the drill converts page
//! 0, the device must hold all 512 pages, and the second page, a tail page
//! of the still-large folio, must be refused (EOPNOTSUPP) at once.

use crate::drill::device::DeviceError;
use crate::drill::device::ExclusiveDevice;
use crate::drill::exclusive::{
    check_holds_what_kernel_converted, conclude, convert, device_work, guest_touch, thp_guest,
    whole_folio_conversion, INITIAL, THP_PAGES,
};
use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{DrillResult, Session};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;
use crate::secondary_mmu::KvmStats;
use std::time::{Duration, Instant};

const HUGE: u64 = THP_PAGES;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let whole = whole_folio_conversion();
    let (first, second) = (if whole { 0 } else { 7 }, 300u64);
    let (mut s, mut dev) = thp_guest(ctx, first)?;
    let hva0 = s.hva(0)?;
    let stats = s.guest().vm_fd().and_then(|vm| KvmStats::open(vm).ok());
    let read_2m = |st: &Option<KvmStats>| {
        st.as_ref()
            .and_then(|k| k.read().ok())
            .and_then(|v| v.get("pages_2m"))
    };
    let before = read_2m(&stats);
    let mut o = ExclusiveObs {
        label: format!("page {first} (PMD split): "),
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), first, &mut o)?;
    let after = read_2m(&stats);
    let held = check_holds_what_kernel_converted(&mut s, dev.as_mut(), 0, HUGE, &o.label)?;
    let want = if whole { HUGE } else { 1 };
    s.v.check(
        "conversion-extent",
        held == want,
        format!(
            "{}the device holds {held} pages of the folio after converting one; {}",
            o.label,
            if whole {
                "before 6.15 the head page converts the whole folio (512)"
            } else {
                "make_device_exclusive() converts one page"
            }
        ),
    );
    match (before, after) {
        (Some(b), Some(a)) if b > 0 => {
            s.v.check("kvm-dropped-2m", a < b, format!("KVM's pages_2m stayed {b} -> {a} across the conversion of a page inside a 2 MiB mapping"));
        }
        (b, a) => s.v.note(format!(
            "KVM did not map the THP with a 2 MiB entry (pages_2m {b:?} -> {a:?})"
        )),
    }
    let ev = s.kvm_events()?;
    let in_conv = ev.iter().filter(|e| {
        e.within(o.conversion.start_ns, o.conversion.end_ns)
            && e.unmap_touches(hva0, hva0 + HUGE * PAGE_SIZE)
    });
    s.v.figure("unmap_events_at_split", in_conv.count() as f64);
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    guest_touch(
        &mut s,
        dev.as_mut(),
        first,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    conclude(&mut s, first, HUGE, o)?;

    if whole {
        return refuse_tail(s, dev.as_mut(), second);
    }
    // The second page: KVM maps it again (4 KiB now), then it is converted.
    s.step(0, Op::Write(INITIAL as u32), second)?;
    let mut o2 = ExclusiveObs {
        label: format!("page {second} (PTE-mapped THP): "),
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), second, &mut o2)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o2)?;
    guest_touch(
        &mut s,
        dev.as_mut(),
        second,
        0,
        ctx.cfg.iterations.max(1),
        &mut o2,
    )?;
    // Neighbour check over the whole 2 MiB except `second` (page `first`'s
    // counter changed too, so check around both).
    o2.final_value = s.step(0, Op::Read, second)?;
    o2.neighbour_mismatches = neighbour_mismatches(&mut s, first, second)?;
    let ev = s.kvm_events()?;
    crate::drill::verdict::judge_exclusive(&mut s.v, &o2, &ev);
    s.finish()
}

/// Mismatches over the whole 2 MiB except pages `first` and `second`, whose
/// counters changed.
fn neighbour_mismatches(s: &mut Session, first: u64, second: u64) -> DrillResult<u64> {
    let ranges = [
        (0, first),
        (first + 1, second - first - 1),
        (second + 1, HUGE - second - 1),
    ];
    let mut bad = 0;
    for (p, n) in ranges {
        bad += s.step(0, Op::CheckRange(n as u32), p)?;
    }
    Ok(bad)
}

/// Before 6.15: the folio is still large (PTE-mapped), so its tail page
/// `second` cannot be converted; the call must say so (EOPNOTSUPP) at
/// once, not spin, and leave nothing held.
fn refuse_tail(
    mut s: Session,
    dev: &mut dyn ExclusiveDevice,
    second: u64,
) -> DrillResult<(Verdict, Timeline)> {
    s.step(0, Op::Write(INITIAL as u32), second)?;
    let hva = s.hva(second)?;
    let t = Instant::now();
    let (r, _) = s.host("make-exclusive (tail page)", |_| dev.make_exclusive(hva));
    let took = t.elapsed();
    s.v.check(
        "tail-page-refused-at-once",
        matches!(r, Err(DeviceError::Unsupported)) && took < Duration::from_millis(300),
        format!(
            "page {second}, a tail page of the large folio: make-exclusive gave {r:?} after {took:?}; before 6.15 it cannot be converted and must fail with EOPNOTSUPP within 300 ms"
        ),
    );
    check_holds_what_kernel_converted(&mut s, dev, 0, HUGE, &format!("page {second} (tail): "))?;
    s.finish()
}
