//! What KVM's secondary MMU did for this VM.
//!
//! Two sources, both read-only views of the kernel:
//! - a private tracefs instance (`instances/mmuvisor-<pid>-<n>`, never the
//!   global buffer) with KVM's MMU-notifier and MMU events, clocked with
//!   `mono` so its timestamps compare with `CLOCK_MONOTONIC`;
//! - KVM's binary statistics of the VM (`KVM_GET_STATS_FD`): `pages_4k`,
//!   `pages_2m`, `remote_tlb_flush`, ...
//!
//! Host ranges are mapped back to guest pages through [`GuestRegion`]s
//! (the VMM's memslots).

mod kvm_stats;
mod trace_event;
mod tracefs;

pub use kvm_stats::{KvmStats, StatDesc, StatsSnapshot};
pub use trace_event::{
    parse_line, KvmEvent, KvmEventKind, TraceLine, EVENTS, SPTE_EVENT, SPTE_MMU_PRESENT,
    UNMAP_EVENT,
};
pub use tracefs::{has_event, tracefs_root, KvmTrace, TraceConfig, TRACEFS};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tracefs is not available (mount -t tracefs nodev {TRACEFS}): {0}")]
    NoTracefs(String),
    #[error("tracefs event {0} does not exist on this kernel")]
    NoEvent(String),
    #[error("tracefs {path}: {err}")]
    Tracefs { path: String, err: std::io::Error },
    #[error("KVM_GET_STATS_FD: {0}")]
    StatsFd(std::io::Error),
    #[error("KVM stats: {0}")]
    Stats(String),
}

pub type Result<T> = std::result::Result<T, Error>;
