//! exclusive-reclaim: what was written to a page before and while the device
//! held it must survive the page being reclaimed to swap and faulted back.
//!
//! Page A goes to swap and back first (MADV_PAGEOUT, MADV_WILLNEED, a
//! read), so its folio sits in the swap cache
//! with a valid copy in swap: from then on reclaim writes it back only if
//! it is dirty. The VMM writes it, the device takes it and lets it go, a
//! read restores it, and it is paged out and read by the guest: the write
//! must still be there.
//! Page B: the guest writes, the device takes it and adds to it, then the
//! same release, restore, page-out and read.
//! Page D: reclaimed while the device holds it. The drill's process has a
//! memory cgroup of its own, so `memory.reclaim` reclaims exactly its
//! pages: the held page's PTE must become a real swap entry (the reclaim
//! happened, else the drill is an `error`), the device must lose the page,
//! and the guest must read back what the device left. Before 6.15 a held
//! page cannot be reclaimed (the entry pins it): page D is not run there,
//! and a note says so.

use crate::drill::device::ExclusiveDevice;
use crate::drill::drills::exclusive_migrate::PINNED_BEFORE_6_15;
use crate::drill::exclusive::check_revoked;
use crate::drill::exclusive::{
    check_conversion, convert, dev_err, device_work, pages, whole_folio_conversion,
    write_and_convert, write_prepare_convert,
};
use crate::drill::guest::{Op, PagemapEntry};
use crate::drill::hostmm::{
    describe_kpageflags, drain_lru_batches, kpageflags, swap_devices, KPF_DIRTY, KPF_SWAPCACHE,
};
use crate::drill::oracle::leak::frame_of;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillError, DrillResult, GuestSpec, Session, TraceMode};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;
use crate::memcg::Memcg;

/// Asks `reclaim` up to `tries` times, 20 ms apart, until `page`'s entry
/// is a real swap entry (not a device-exclusive or migration entry, which
/// pagemap shows as swap-type too); returns the last entry and whether it
/// got there. Reclaim is best effort (a folio still in a per-CPU LRU batch,
/// or briefly isolated, is skipped), so every CPU's batches are drained
/// first (reclaim drains only its own CPU's).
fn reclaim_to_swap(
    s: &mut Session,
    page: u64,
    label: &str,
    tries: u32,
    mut reclaim: impl FnMut(&Session) -> std::io::Result<()>,
) -> DrillResult<(PagemapEntry, bool)> {
    let in_swap = |pm: PagemapEntry| pm.swapped() && frame_of(pm).is_none();
    let mut pm = s.pagemap(page)?;
    for attempt in 0..tries {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drain_lru_batches();
        let (r, _) = s.host(label, |s| reclaim(s));
        r.map_err(|e| DrillError::Host(format!("{label}: {e}")))?;
        pm = s.pagemap(page)?;
        if in_swap(pm) {
            return Ok((pm, true));
        }
    }
    Ok((pm, false))
}

/// MADV_PAGEOUT on `page`; the page must then be in swap.
fn page_out(s: &mut Session, page: u64, what: &str) -> DrillResult<()> {
    let (pm, swapped) = reclaim_to_swap(s, page, &format!("MADV_PAGEOUT {what}"), 10, |s| {
        s.madvise(page, 1, libc::MADV_PAGEOUT)
    })?;
    if swapped {
        return Ok(());
    }
    Err(DrillError::Host(format!(
        "MADV_PAGEOUT did not reclaim {what} in 10 tries: pagemap says {}",
        pm.describe()
    )))
}

/// The device lets the page go; the guest's read restores the PTE; the page
/// is reclaimed and read back by the guest. Returns what the guest reads.
fn release_reclaim_read(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    page: u64,
    o: &ExclusiveObs,
    what: &str,
) -> DrillResult<u64> {
    dev.release(o.hva).map_err(dev_err("release"))?;
    let seen = s.step(0, Op::Read, page)?;
    let want = o.initial_value + o.device_increments;
    s.v.check(
        "value-kept",
        seen == want,
        format!("{what}: the guest reads {seen:#x} after the restore, expected {want:#x}"),
    );
    // The guest's read must have faulted the page back (a present PTE):
    // reclaim skips a device-exclusive entry, so without the restore there
    // is nothing to reclaim, and a kernel whose KVM kept its mapping (the
    // guest read without a fault) is judged here, not reported as an error.
    let pm = s.pagemap(page)?;
    s.v.check(
        "guest-read-restores",
        pm.present(),
        format!(
            "{what}: after the device let it go, the guest read it and its PTE is still {} (the read went through a mapping KVM kept)",
            pm.describe()
        ),
    );
    if !pm.present() {
        return Ok(seen);
    }
    page_out(s, page, what)?;
    s.step(0, Op::Read, page)
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    if swap_devices().is_empty() {
        return Err(DrillError::Skip(
            "no active swap device (/proc/swaps): reclaim drills need swap (the lab swaps to a loop device)"
                .into(),
        ));
    }
    // Before guest RAM exists: its pages are charged where they fault.
    let memcg = Memcg::enter("mmuvisor-reclaim").map_err(|e| {
        DrillError::Skip(format!(
            "reclaim of a held page needs a memory cgroup of the drill's own: {e}"
        ))
    })?;
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages).max(5);
    let (a, b) = (1, 2);
    let seed = ctx.cfg.seed as u32 & 0xffff;
    s.step(0, Op::FillRange(n as u32), 0)?;

    // Page A: the VMM writes it while its folio is in the swap cache.
    // MADV_WILLNEED reads it back into the swap cache with the swap PTE
    // still exclusive, so the read fault maps it writable and leaves it
    // there with a valid copy in swap, and the write below only sets the
    // PTE's dirty bit. The guest must not touch A until the end: KVM marks
    // folios it maps writable dirty, which would hide a lost dirty bit.
    let v1 = 0xa100_0000 | seed;
    s.step(0, Op::Write(v1), a)?;
    page_out(&mut s, a, "page A")?;
    let (r, _) = s.host("MADV_WILLNEED page A", |s| {
        s.madvise(a, 1, libc::MADV_WILLNEED)
    });
    r.map_err(host_err("madvise(MADV_WILLNEED)"))?;
    let seen = s.host_read(a, 0)?;
    s.v.check(
        "value-survives-reclaim",
        seen == v1 as u64,
        format!("page A: the guest wrote {v1:#x}, paged out and read back {seen:#x}"),
    );
    let v2 = 0xa200_0000 | seed;
    s.host_write(a, 0, v2 as u64)?;
    let pm = s.pagemap(a)?;
    let pfn = pm.pfn().filter(|&p| p != 0).ok_or_else(|| {
        DrillError::Host(format!(
            "no PFN for page A ({}): run as root",
            pm.describe()
        ))
    })?;
    let flags = kpageflags(pfn).map_err(host_err("kpageflags"))?;
    if flags & KPF_SWAPCACHE == 0 || flags & KPF_DIRTY != 0 {
        return Err(DrillError::Host(format!(
            "page A: expected a clean folio in the swap cache after swap-in and a VMM write, kpageflags say {flags:#x} (a synchronous swap device such as zram drops the swap cache at swap-in: swap on a disk or loop device)"
        )));
    }
    let mut oa = ExclusiveObs {
        label: "page A: ".into(),
        expected_at_conversion: Some(v2 as u64),
        // The guest stays off page A (see above).
        kvm_unmapped_by_design: true,
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), a, &mut oa)?;
    let flags = kpageflags(pfn).map_err(host_err("kpageflags"))?;
    s.v.check(
        "folio-dirty-kept",
        flags & KPF_DIRTY != 0,
        format!("page A: the VMM wrote it (dirty PTE), the device took it, and its folio is clean (kpageflags {flags:#x})"),
    );
    check_conversion(&mut s, &oa)?;
    dev.release(oa.hva).map_err(dev_err("release"))?;
    // The VMM's read restores the PTE without KVM mapping the page.
    let seen = s.host_read(a, 0)?;
    s.v.check(
        "value-kept",
        seen == v2 as u64,
        format!("page A: the VMM reads {seen:#x} after the restore, it wrote {v2:#x}"),
    );
    page_out(&mut s, a, "page A")?;
    let seen = s.step(0, Op::Read, a)?;
    s.v.check(
        "value-survives-reclaim",
        seen == v2 as u64,
        format!("page A: the VMM wrote {v2:#x} into the swap-cached page before the conversion; after release, restore and reclaim the guest reads {seen:#x}"),
    );

    // Page B: the device writes too.
    let v3 = 0xb300_0000 | seed;
    let mut ob = write_and_convert(&mut s, dev.as_mut(), b, v3, "page B: ")?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations.max(1), &mut ob)?;
    check_conversion(&mut s, &ob)?;
    let seen = release_reclaim_read(&mut s, dev.as_mut(), b, &ob, "page B")?;
    let want = ob.initial_value + ob.device_increments;
    s.v.check(
        "value-survives-reclaim",
        seen == want,
        format!("page B: the guest wrote {v3:#x}, the device added {}; after release, restore and reclaim it reads {seen:#x}, expected {want:#x}", ob.device_increments),
    );
    if whole_folio_conversion() {
        s.v.note(format!(
            "page D (reclaim while held) not run: {PINNED_BEFORE_6_15}"
        ));
    } else {
        held_reclaim(
            &mut s,
            dev.as_mut(),
            &memcg,
            n,
            0xd400_0000 | seed,
            ctx.cfg.iterations,
        )?;
    }
    let bad = s.step(0, Op::CheckRange(1), 0)? + s.step(0, Op::CheckRange((n - 3) as u32), 3)?;
    s.v.check(
        "neighbours-intact",
        bad == 0,
        format!("{bad} words of neighbouring pages changed"),
    );
    s.finish()
}

/// memory.reclaim calls before the drill gives up on page D.
const TRIES: u32 = 20;

/// Page D (past the filled pages): the guest writes it, the device takes
/// it and adds to it, and the drill's memory cgroup is reclaimed while the
/// device holds it.
fn held_reclaim(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    memcg: &Memcg,
    d: u64,
    value: u32,
    iterations: u64,
) -> DrillResult<()> {
    // Reclaim must find the held folio on the inactive list. The guest's
    // accesses leave it active, and a proactive reclaim of a cgroup this
    // small does not always deactivate it: that decision reads the memcg's
    // lazily flushed LRU counters, and the forced retry comes only after a
    // pass that reclaimed nothing. Measured on 7.2 with two lab CPUs: the
    // folio still "lru active referenced" after 20 calls in 1 run of 20-75.
    // MADV_COLD deactivates it while it is still mapped (the walk skips
    // non-present entries); the drain in front puts it on the LRU first
    // (MADV_COLD skips a folio in a per-CPU batch: 4 errors in 150 without).
    let folio_flags = |pm: PagemapEntry| {
        frame_of(pm).map_or("?".into(), |pfn| {
            kpageflags(pfn).map_or_else(|e| e.to_string(), describe_kpageflags)
        })
    };
    let mut cold = String::new();
    let mut od = write_prepare_convert(s, dev, d, value, "page D: ", |s| {
        drain_lru_batches();
        s.madvise(d, 1, libc::MADV_COLD)
            .map_err(host_err("madvise(MADV_COLD) page D"))?;
        drain_lru_batches();
        cold = folio_flags(s.pagemap(d)?);
        Ok(())
    })?;
    device_work(s, dev, iterations.max(1), &mut od)?;
    check_conversion(s, &od)?;
    // EAGAIN: it reclaimed less than asked, which is expected here.
    let (pm, swapped) =
        reclaim_to_swap(s, d, "memory.reclaim (page D held)", TRIES, |_| match memcg
            .reclaim_anon(64 << 20)
        {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(()),
            r => r,
        })?;
    if !swapped {
        let why = format!(
            "page D: memory.reclaim did not reclaim the held page in {TRIES} tries: pagemap says {}; its folio's flags: {} (after MADV_COLD: {}); the cgroup's memory.stat: {}; swap: {}",
            pm.describe(),
            folio_flags(pm),
            cold,
            ["anon", "active_anon", "inactive_anon", "pgscan", "pgsteal", "swapcache"]
                .iter()
                .map(|k| format!("{k} {}", memcg.stat(k).map_or("?".into(), |v| v.to_string())))
                .collect::<Vec<_>>()
                .join(", "),
            std::fs::read_to_string("/proc/swaps").unwrap_or_default().lines().nth(1).unwrap_or("none").split_whitespace().collect::<Vec<_>>().join(" ")
        );
        // A kernel already caught above (e.g. KVM kept its SPTE, so
        // reclaim's young test keeps finding the page accessed) is judged
        // by those checks; only a clean kernel makes this an error.
        if !s.v.passed() {
            s.v.note(format!("{why} (after the failed checks above)"));
            return Ok(());
        }
        return Err(DrillError::Host(why));
    }
    check_revoked(s, dev, od.hva, "device-revoked-by-reclaim", |held| {
        format!(
            "page D: reclaim swapped the held page out ({}) and the device's QUERY says {held:?}",
            pm.describe()
        )
    })?;
    let seen = s.step(0, Op::Read, d)?;
    let want = od.initial_value + od.device_increments;
    s.v.check(
        "value-survives-reclaim",
        seen == want,
        format!("page D: the guest wrote {value:#x}, the device added {} and held the page when it was reclaimed; the guest reads {seen:#x}, expected {want:#x}", od.device_increments),
    );
    Ok(())
}
