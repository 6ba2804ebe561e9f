//! exclusive-migrate: the folio of a page the device holds really migrates,
//! and the migration revokes the device. First move_pages(2) to another
//! NUMA node (before 6.15 it may move the page; from 6.15 on it finds no
//! page behind a device-exclusive entry and says ENOENT); where that moved
//! nothing, the page's memory block is taken offline, which migrates every
//! page in it by PFN through the same rmap walk, and put online again.
//! Either way the page frame must change (else the drill is an `error`: the
//! migration it is named after did not happen), the device must have lost
//! the page, and the guest must read the device's value and keep its own
//! increments. Before 6.15 a held page cannot migrate at all (the entry
//! pins it): the drill skips there and says why.

use std::time::Duration;

use crate::drill::exclusive::check_revoked;
use crate::drill::exclusive::{
    held_page_after, touch_and_finish, whole_folio_conversion, HeldPage,
};
use crate::drill::guest::Op;
use crate::drill::hostmm::{
    ballast_on_node, memory_block_offlinable, move_pages, numa_nodes, offline_memory_block_of,
};
use crate::drill::oracle::leak::frame_of;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{DrillError, DrillResult, Session};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

/// Why no held page migrates on kernels with the range API (6.1, 6.12:
/// seen as "migration failure ... refcount:2 mapcount:0" in the lab).
pub const PINNED_BEFORE_6_15: &str = "before 6.15 a device-exclusive entry pins its page (it holds a reference but no mapcount), so the kernel can neither migrate nor reclaim a page the device holds; 6.15's rework of device-exclusive entries made them migratable";

/// How long taking a memory block offline may take: the kernel retries a
/// page it cannot migrate until the writer gets a signal.
const OFFLINE_LIMIT: Duration = Duration::from_secs(20);

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    if whole_folio_conversion() {
        return Err(DrillError::Skip(PINNED_BEFORE_6_15.into()));
    }
    let nodes = numa_nodes();
    if nodes.len() < 2 {
        return Err(DrillError::Skip(format!(
            "move_pages needs two NUMA nodes, this host has {nodes:?} (lab: numa=fake=2)"
        )));
    }
    let HeldPage {
        mut s,
        mut dev,
        n,
        page,
        o,
    } = held_page_after(ctx, |s, page| place_in_offlinable_block(s, page, &nodes))?;
    let frame = |s: &mut Session| -> DrillResult<u64> {
        let pm = s.pagemap(page)?;
        frame_of(pm).ok_or_else(|| {
            DrillError::Host(format!(
                "no page frame for the held page ({}): run as root",
                pm.describe()
            ))
        })
    };
    let before = frame(&mut s)?;
    let hva = o.hva;
    let (status, _) = s.host("move_pages", |_| {
        let here = move_pages(&[hva], None)
            .ok()
            .and_then(|v| v.first().copied());
        let target = nodes
            .iter()
            .copied()
            .find(|&nd| Some(nd) != here)
            .unwrap_or(nodes[1]);
        move_pages(&[hva], Some(target)).map(|v| v.first().copied().unwrap_or(-1))
    });
    let status = status.map_err(|e| DrillError::Host(format!("move_pages: {e}")))?;
    s.v.figure("move_pages_status", status as f64);
    let mut how = format!("move_pages (page status {status})");
    if frame(&mut s)? == before {
        let (r, _) = s.host("offline the page's memory block", |_| {
            offline_memory_block_of(before, OFFLINE_LIMIT)
        });
        match r {
            Ok(block) => how = format!("offlining memory block {block} (move_pages: page status {status})"),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Err(DrillError::Skip(format!(
                    "move_pages moved nothing (page status {status}) and memory blocks cannot go offline here: {e}"
                )))
            }
            Err(e) => {
                return Err(DrillError::Host(format!(
                    "the held page did not migrate: move_pages page status {status}, and its memory block did not go offline: {e}"
                )))
            }
        }
    }
    let after = frame(&mut s)?;
    if after == before {
        return Err(DrillError::Host(format!(
            "the held page did not migrate: still at pfn {before:#x} after {how}"
        )));
    }
    s.v.note(format!(
        "the held page migrated from pfn {before:#x} to {after:#x} by {how}"
    ));
    check_revoked(
        &mut s,
        dev.as_mut(),
        hva,
        "device-revoked-by-migration",
        |held| {
            format!("the page migrated (pfn {before:#x} -> {after:#x}) and the device's QUERY says {held:?}: it kept access to the old frame")
        },
    )?;
    touch_and_finish(s, dev.as_mut(), page, n, o)
}

/// Before the conversion, while move_pages still works on it, moves the
/// page until its memory block is one that can go offline (not the first
/// block, within one zone, no unmovable frame): the allocator hands out
/// the top of a node first, where the node's memmap lies, so each attempt
/// first takes 64 MiB more of the target node as ballast. Every vCPU then
/// reads the page, so KVM maps the page the device will take.
fn place_in_offlinable_block(s: &mut Session, page: u64, nodes: &[i32]) -> DrillResult<()> {
    const BALLAST: usize = 64 << 20;
    let hva = s.hva(page)?;
    let mut ballast = Vec::new();
    let mut tried = Vec::new();
    for attempt in 0..=12 {
        let pfn = s.pagemap(page)?.pfn().unwrap_or(0);
        if memory_block_offlinable(pfn) {
            tried.clear();
            break;
        }
        tried.push(format!("{pfn:#x}"));
        if attempt == 12 {
            break;
        }
        let node = nodes[attempt % nodes.len()];
        ballast.push(
            ballast_on_node(BALLAST, node)
                .map_err(|e| DrillError::Host(format!("ballast on node {node}: {e}")))?,
        );
        let (r, _) = s.host(&format!("move_pages to node {node}"), |_| {
            move_pages(&[hva], Some(node))
        });
        r.map_err(|e| DrillError::Host(format!("move_pages before the conversion: {e}")))?;
    }
    drop(ballast);
    if !tried.is_empty() {
        s.v.note(format!(
            "the page found no memory block that can go offline (pfns tried: {}): offlining is the fallback if move_pages moves nothing",
            tried.join(" ")
        ));
    }
    for vcpu in 0..s.nr_vcpus() {
        s.step(vcpu, Op::Read, page)?;
    }
    Ok(())
}
