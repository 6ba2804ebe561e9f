//! Drills: end-to-end checks of KVM's secondary MMU against host page-table
//! changes (MADV_DONTNEED, mprotect, fork, THP collapse, KSM) and against
//! device-exclusive pages made by the helper module.
//!
//! This module is the framework: the registry types ([`Drill`], [`Ctx`]),
//! the session runtime ([`session`]), verdicts ([`verdict`]), the shared
//! exclusive-page steps ([`exclusive`]) and reports ([`report`]: KTAP, JSON,
//! SVG timelines). The drills themselves live in [`drills`], one file each,
//! read as a script of guest steps on the `interp` payload and host actions,
//! judged from what the guest reported, what pagemap and the device saw, and
//! KVM's events.

pub(crate) mod device;
pub mod drills;
pub(crate) mod exclusive;
pub(crate) mod fuzz;
pub(crate) mod guest;
pub(crate) mod hostmm;
pub mod oracle;
pub mod report;
pub(crate) mod runner;
pub(crate) mod session;
pub(crate) mod sim;
pub(crate) mod verdict;
pub(crate) mod vm;

pub use drills::DRILLS;

/// Set by the lab for the command inside: how its CPUs execute ("kvm",
/// "mttcg": each on a host thread of its own; "tcg": all on one host thread,
/// in turns). Unset outside the lab, where CPUs are real.
pub const LAB_CPU_MODE_ENV: &str = "MMUVISOR_LAB_CPU_MODE";

use report::timeline::Timeline;
use session::{DrillConfig, DrillResult};
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
pub(crate) const NOTHING: Needs = Needs {
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

pub(crate) const fn d(
    name: &'static str,
    about: &'static str,
    needs: Needs,
    run: DrillFn,
) -> Drill {
    Drill {
        name,
        about,
        needs,
        hidden: false,
        backend: Backend::Kvm,
        run,
    }
}

/// Looks a drill up by name.
pub fn find(name: &str) -> Option<&'static Drill> {
    DRILLS.iter().find(|d| d.name == name)
}
