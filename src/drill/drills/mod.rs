//! The drills, one file each; [`DRILLS`] lists them in `all` order.

mod dontneed;
mod exclusive_basic;
mod exclusive_cow;
mod exclusive_dirty_log;
mod exclusive_dontneed;
pub(crate) mod exclusive_hugetlb;
mod exclusive_large_folio;
mod exclusive_memslot_delete;
pub(crate) mod exclusive_migrate;
mod exclusive_mprotect;
mod exclusive_pte_state;
mod exclusive_race;
mod exclusive_reclaim;
mod exclusive_reconvert;
mod exclusive_thp;
mod exclusive_under_write;
mod fork_cow;
mod ksm_merge;
mod mprotect;
mod selftest_hang;
mod thp_collapse;

use crate::drill::{d, Backend, Drill, MODULE, NOTHING, PLAIN};

/// The child process of exclusive-hugetlb (`mmuvisor __hugetlb-probe`).
pub use exclusive_hugetlb::probe as hugetlb_probe;

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
    d("exclusive-thp", "one 4 KiB page of a THP KVM maps with 2 MiB: KVM drops it, 511 stay (before 6.15: the whole folio via its head page)", MODULE, exclusive_thp::run),
    d("exclusive-cow", "the VMM forks while a page is exclusive", MODULE, exclusive_cow::run),
    d("exclusive-mprotect", "mprotect on an exclusive page", MODULE, exclusive_mprotect::run),
    d("exclusive-dontneed", "MADV_DONTNEED on an exclusive page", MODULE, exclusive_dontneed::run),
    d("exclusive-migrate", "move_pages on an exclusive page", MODULE, exclusive_migrate::run),
    d("exclusive-memslot-delete", "the memslot is deleted and re-added while a page is exclusive", MODULE, exclusive_memslot_delete::run),
    d("exclusive-pte-state", "the PTE restored from an exclusive entry: dirty, soft-dirty, uffd-wp, read-only after mprotect, writable where allowed", MODULE, exclusive_pte_state::run),
    d("exclusive-reclaim", "pages written before and while exclusive survive reclaim to swap and back (also from the swap cache)", MODULE, exclusive_reclaim::run),
    d("exclusive-race", "host threads convert while vCPUs fault and write on many pages; checked every round", MODULE, exclusive_race::run),
    d("exclusive-large-folio", "one page of a THP held by the device, the whole folio migrated to another node (before 6.15: all of it held)", MODULE, exclusive_large_folio::run),
    d("exclusive-hugetlb", "the kernel refuses make-exclusive on a hugetlb page (EOPNOTSUPP), the mapping stays", MODULE, exclusive_hugetlb::run),
    d("exclusive-dirty-log", "KVM's dirty log records the guest's writes after revocation", MODULE, exclusive_dirty_log::run),
    // In `all` for `--time` seconds (10 by default).
    Drill {
        name: "fuzz",
        about: "random sequences of host and guest steps on a few pages, checked against a model after every step; shrunk, replayable",
        needs: MODULE,
        hidden: false,
        backend: Backend::Kvm,
        run: crate::drill::fuzz::run,
    },
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
    Drill {
        name: "selftest-hang",
        about: "never ends (tests the per-drill --timeout)",
        needs: NOTHING,
        hidden: true,
        backend: Backend::Sim { stale_mmu: false },
        run: selftest_hang::run,
    },
];
