//! exclusive-large-folio: one 4 KiB page of a THP is held by the device
//! (its PMD split, the folio still large), then the whole folio is
//! migrated to another NUMA node. The migration's rmap walk meets the
//! device-exclusive PTE inside the large folio (upstream fixed real bugs
//! there in 6.15): the page must keep its PTE state (soft-dirty: it was
//! written after clear_refs), its value, and its 511 neighbours theirs.
//!
//! Before 6.15 (make_device_exclusive_range()) only the head page converts,
//! and with it the whole folio: the drill converts page 0, the guest takes
//! page 1 back (the folio is mapped again through it) and the folio is
//! migrated through page 1, its rmap walk meeting 511 device-exclusive PTEs.

use crate::drill::exclusive::{
    check_holds_what_kernel_converted, conclude, convert, device_work, guest_touch, thp_guest,
    whole_folio_conversion, THP_PAGES,
};
use crate::drill::guest::Op;
use crate::drill::hostmm::{anon_huge_kb, clear_soft_dirty, move_pages, numa_nodes};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillError, DrillResult};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

const HUGE: u64 = THP_PAGES;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let nodes = numa_nodes();
    if nodes.len() < 2 {
        return Err(DrillError::Skip(format!(
            "migrating the folio needs two NUMA nodes, this host has {nodes:?} (lab: numa=fake=2)"
        )));
    }
    let whole = whole_folio_conversion();
    let page = if whole { 0 } else { 7u64 };
    let (mut s, mut dev) = thp_guest(ctx, page)?;
    let (r, _) = s.host("clear_refs 4 (soft-dirty)", |_| clear_soft_dirty());
    r.map_err(host_err("clear_refs"))?;
    let v = 0x1f00_0000 | (ctx.cfg.seed as u32 & 0xffff);
    s.step(0, Op::Write(v), page)?;
    if !s.pagemap(page)?.soft_dirty() {
        return Err(DrillError::Host(
            "the guest's write after clear_refs did not make the page soft-dirty".into(),
        ));
    }
    let mut o = ExclusiveObs {
        label: format!("page {page}: "),
        expected_at_conversion: Some(v as u64),
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    device_work(&mut s, dev.as_mut(), ctx.cfg.iterations, &mut o)?;
    check_holds_what_kernel_converted(&mut s, dev.as_mut(), 0, HUGE, &o.label)?;
    if !whole && anon_huge_kb(s.hva(0)?).unwrap_or(0) < 2048 {
        return Err(DrillError::Host(
            "the folio was split by the conversion: there is no large folio left to migrate".into(),
        ));
    }

    // Every other page of the folio to the other node: the kernel migrates
    // (or splits, then migrates) the whole folio. Before 6.15 the whole folio
    // is device-exclusive: the guest takes page 1 back, and that page moves.
    let mut hvas = Vec::new();
    if whole {
        s.step(0, Op::Read, 1)?;
        hvas.push(s.hva(1)?);
    } else {
        for p in (0..HUGE).filter(|&p| p != page) {
            hvas.push(s.hva(p)?);
        }
    }
    let here = move_pages(&hvas[..1], None).map_err(host_err("move_pages (query)"))?[0];
    let target = nodes
        .iter()
        .copied()
        .find(|&n| n != here)
        .unwrap_or(nodes[1]);
    let (r, _) = s.host("move_pages (the folio)", |_| {
        move_pages(&hvas, Some(target))
    });
    let status = r.map_err(host_err("move_pages"))?;
    let moved = status.iter().filter(|&&st| st == target).count();
    s.v.figure("pages_moved", moved as f64);
    if moved == 0 {
        return Err(DrillError::Host(format!(
            "move_pages moved none of the folio's pages to node {target} (first status {})",
            status[0]
        )));
    }
    let pm = s.pagemap(page)?;
    s.v.check(
        "migration-keeps-soft-dirty",
        pm.soft_dirty(),
        format!(
            "page {page} was soft-dirty and held by the device; after its folio moved to node {target} ({moved} pages) pagemap says {} without soft-dirty",
            pm.describe()
        ),
    );
    guest_touch(
        &mut s,
        dev.as_mut(),
        page,
        0,
        ctx.cfg.iterations.max(1),
        &mut o,
    )?;
    let pm = s.pagemap(page)?;
    s.v.check(
        "migration-keeps-soft-dirty",
        pm.soft_dirty(),
        format!(
            "page {page}, taken back by the guest after its folio moved: pagemap says {} without soft-dirty",
            pm.describe()
        ),
    );
    conclude(&mut s, page, HUGE, o)?;
    s.finish()
}
