//! exclusive-migrate: move_pages() on a page the device holds, to another
//! NUMA node. Whatever the kernel does (migrate, or refuse), the device must
//! not keep access to a page the CPU uses, and the guest must see the
//! device's value and keep its own increments.

use crate::drill::exclusive::{held_page, touch_and_finish, HeldPage};
use crate::drill::hostmm::numa_nodes;
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{DrillError, DrillResult};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;

const MPOL_MF_MOVE: libc::c_int = 1 << 1;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
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
    } = held_page(ctx)?;
    let hva = o.hva;
    let ((rc, status), _) = s.host("move_pages", |_| {
        let mut status: libc::c_int = -1;
        let mut pages_ptr = [hva as *mut libc::c_void];
        let mut results = [0 as libc::c_int; 2];
        // Ask for the node the page is not on; with status -1 first query where it is.
        let node_of = {
            // SAFETY: valid arrays of one element each; nodes null = query.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_move_pages,
                    0,
                    1usize,
                    pages_ptr.as_mut_ptr(),
                    std::ptr::null::<libc::c_int>(),
                    results.as_mut_ptr(),
                    0,
                )
            };
            if rc == 0 {
                results[0]
            } else {
                -1
            }
        };
        let target = nodes
            .iter()
            .copied()
            .find(|&nd| nd != node_of)
            .unwrap_or(nodes[1]);
        let tnodes = [target];
        // SAFETY: as above, with a nodes array of one element.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_pages,
                0,
                1usize,
                pages_ptr.as_mut_ptr(),
                tnodes.as_ptr(),
                &mut status as *mut libc::c_int,
                MPOL_MF_MOVE,
            )
        };
        (rc, status)
    });
    let what = match status {
        st if st >= 0 => format!("migrated to node {st}"),
        -2 => {
            "ENOENT: the kernel found no page to migrate behind the device-exclusive entry".into()
        }
        -16 => "EBUSY: the page was not migrated".into(),
        st => format!("errno {}", -st),
    };
    s.v.note(format!(
        "move_pages returned {rc}, page status {status} ({what})"
    ));
    s.v.figure("move_pages_status", status as f64);
    touch_and_finish(s, dev.as_mut(), page, n, o)
}
