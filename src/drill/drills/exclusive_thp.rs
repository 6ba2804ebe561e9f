//! exclusive-thp: guest RAM backed by a THP that KVM may map with a 2 MiB
//! entry; one 4 KiB page of it is made exclusive. The conversion splits the
//! PMD: KVM must drop the mapping covering the page (pages_2m goes down),
//! the other 511 pages stay intact and accessible. Then a second page of
//! the now PTE-mapped folio, freshly mapped by KVM with 4 KiB, is converted:
//! that conversion has no split to hide behind, only its own notifier.

use crate::drill::exclusive::{
    conclude, convert, device_work, guest_touch, thp_guest, INITIAL, THP_PAGES,
};
use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::DrillResult;
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;
use crate::secondary_mmu::KvmStats;

const HUGE: u64 = THP_PAGES;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let (first, second) = (7u64, 300u64);
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
    let ranges = [
        (0, first),
        (first + 1, second - first - 1),
        (second + 1, HUGE - second - 1),
    ];
    let mut bad = 0;
    for (p, n) in ranges {
        bad += s.step(0, Op::CheckRange(n as u32), p)?;
    }
    o2.neighbour_mismatches = bad;
    let ev = s.kvm_events()?;
    crate::drill::verdict::judge_exclusive(&mut s.v, &o2, &ev);
    s.finish()
}
