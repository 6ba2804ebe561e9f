//! Drills: end-to-end checks of KVM's secondary MMU against host page-table
//! changes (MADV_DONTNEED, mprotect, fork, THP collapse, KSM) and against
//! device-exclusive pages made by the helper module.
//!
//! Each drill is a short script (one file) of guest steps on the `interp`
//! payload and host actions, run in a [`session::Session`], and judged from
//! what the guest reported, what pagemap and the device saw, and KVM's
//! events ([`verdict`]). Output: KTAP ([`ktap`]), JSON ([`json`]), SVG
//! timelines ([`timeline`]).

pub mod bench;
pub mod device;
pub mod guest;
pub mod json;
pub mod ktap;
pub mod runner;
pub mod session;
pub mod sim;
pub mod timeline;
pub mod verdict;
pub mod vm;

mod dontneed;
mod exclusive;
mod exclusive_basic;
mod exclusive_cow;
mod exclusive_dirty_log;
mod exclusive_dontneed;
mod exclusive_memslot_delete;
mod exclusive_migrate;
mod exclusive_mprotect;
mod exclusive_reconvert;
mod exclusive_thp;
mod exclusive_under_write;
mod fork_cow;
mod hostmm;
mod ksm_merge;
mod mprotect;
mod thp_collapse;

use session::{DrillConfig, DrillResult};
use timeline::Timeline;
use verdict::Verdict;

/// What a drill needs from the host; missing → `# SKIP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    pub kvm: bool,
    pub tracefs: bool,
    /// /dev/mmuvisor (the helper module).
    pub module: bool,
}

pub(crate) const PLAIN: Needs = Needs {
    kvm: true,
    tracefs: true,
    module: false,
};
pub(crate) const MODULE: Needs = Needs {
    kvm: true,
    tracefs: true,
    module: true,
};
const NOTHING: Needs = Needs {
    kvm: false,
    tracefs: false,
    module: false,
};

/// Where the guest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The real VMM on /dev/kvm.
    Kvm,
    /// A simulated guest (selftests): `stale_mmu` models a secondary MMU
    /// that ignores invalidations.
    Sim { stale_mmu: bool },
}

/// What a drill run gets.
pub struct Ctx {
    pub cfg: DrillConfig,
    pub backend: Backend,
}

pub type DrillFn = fn(&Ctx) -> DrillResult<(Verdict, Timeline)>;

pub struct Drill {
    pub name: &'static str,
    pub about: &'static str,
    pub needs: Needs,
    /// Not part of `all` (selftests that must fail).
    pub hidden: bool,
    pub backend: Backend,
    pub run: DrillFn,
}

const fn d(name: &'static str, about: &'static str, needs: Needs, run: DrillFn) -> Drill {
    Drill {
        name,
        about,
        needs,
        hidden: false,
        backend: Backend::Kvm,
        run,
    }
}

/// Every drill, in `all` order.
pub static DRILLS: &[Drill] = &[
    d("dontneed", "MADV_DONTNEED on a guest page: KVM unmaps it, the guest sees a zero page", PLAIN, dontneed::run),
    d("mprotect", "mprotect(PROT_READ) on a guest page: KVM drops the writable mapping", PLAIN, mprotect::run),
    d("fork-cow", "the VMM forks: guest writes break COW and never reach the child", PLAIN, fork_cow::run),
    d("thp-collapse", "MADV_COLLAPSE of guest RAM: KVM drops the 4 KiB mappings", PLAIN, thp_collapse::run),
    d("ksm-merge", "KSM merges two guest pages: a guest write unshares, the twin stays intact", PLAIN, ksm_merge::run),
    d("exclusive-basic", "one page made device-exclusive, then touched by the guest", MODULE, exclusive_basic::run),
    d("exclusive-under-write", "all vCPUs write while the page is converted again and again", MODULE, exclusive_under_write::run),
    d("exclusive-reconvert", "a second device context converts an exclusive page: the first is revoked", MODULE, exclusive_reconvert::run),
    d("exclusive-thp", "one 4 KiB page of a THP KVM maps with 2 MiB: KVM drops it, 511 stay", MODULE, exclusive_thp::run),
    d("exclusive-cow", "the VMM forks while a page is exclusive", MODULE, exclusive_cow::run),
    d("exclusive-mprotect", "mprotect on an exclusive page", MODULE, exclusive_mprotect::run),
    d("exclusive-dontneed", "MADV_DONTNEED on an exclusive page", MODULE, exclusive_dontneed::run),
    d("exclusive-migrate", "move_pages on an exclusive page", MODULE, exclusive_migrate::run),
    d("exclusive-memslot-delete", "the memslot is deleted and re-added while a page is exclusive", MODULE, exclusive_memslot_delete::run),
    d("exclusive-dirty-log", "KVM's dirty log records the guest's writes after revocation", MODULE, exclusive_dirty_log::run),
    Drill {
        name: "selftest-stale-dontneed",
        about: "dontneed against a simulated secondary MMU that ignores invalidations (must fail)",
        needs: NOTHING,
        hidden: true,
        backend: Backend::Sim { stale_mmu: true },
        run: dontneed::run,
    },
    Drill {
        name: "selftest-sim-dontneed",
        about: "dontneed against a simulated correct MMU without a KVM trace (fails: no invalidation seen)",
        needs: NOTHING,
        hidden: true,
        backend: Backend::Sim { stale_mmu: false },
        run: dontneed::run,
    },
];

/// Looks a drill up by name.
pub fn find(name: &str) -> Option<&'static Drill> {
    DRILLS.iter().find(|d| d.name == name)
}
