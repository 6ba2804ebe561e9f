//! The leak oracle: the page frames a drill's guest RAM used must be free
//! (or someone else's) once the drill's process is gone. A frame that is
//! still an anonymous folio that nobody maps, outside the swap cache and
//! KSM, is held by a reference that was never dropped.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::drill::hostmm::{
    drain_lru_batches, kpageflags, KPF_ANON, KPF_BUDDY, KPF_KSM, KPF_MMAP, KPF_NOPAGE,
    KPF_SWAPCACHE,
};
use crate::pagemap::PagemapEntry;

/// Swap types from here up are the kernel's own (migration, device-private,
/// device-exclusive, hwpoison, markers), whose offset is a PFN; real swap
/// files take the lowest types.
const FIRST_PFN_SWAP_TYPE: u8 = 24;

/// Frames seen under this process's guest RAM, since the last [`take`].
static SEEN: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// The frame an entry points at: a present page, or a device-exclusive
/// (migration, device-private) entry's PFN.
pub fn frame_of(e: PagemapEntry) -> Option<u64> {
    if let Some(pfn) = e.pfn() {
        return Some(pfn);
    }
    match (e.swap_type(), e.swap_offset()) {
        (Some(t), Some(off)) if t >= FIRST_PFN_SWAP_TYPE && off != 0 => Some(off),
        _ => None,
    }
}

/// Records the frames of `entries` (pagemap reads of guest RAM).
pub fn note(entries: impl IntoIterator<Item = PagemapEntry>) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.extend(entries.into_iter().filter_map(frame_of));
}

/// The frames recorded so far; clears the record.
pub fn take() -> Vec<u64> {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *seen).into_iter().collect()
}

/// Whether a frame's flags say it is held without being mapped: an
/// anonymous folio (its anon mapping is cleared when it is freed) that no
/// page table maps, not in the buddy allocator, the swap cache or KSM's
/// stable tree.
pub fn looks_leaked(flags: u64) -> bool {
    flags & KPF_ANON != 0
        && flags & (KPF_MMAP | KPF_SWAPCACHE | KPF_KSM | KPF_BUDDY | KPF_NOPAGE) == 0
}

/// The frames of `pfns` still held after the drill ended, with their
/// kpageflags; looked at again (after draining the LRU batches) for up to
/// about a second, so that a folio on its way out is not blamed.
pub fn leaked(pfns: &[u64]) -> std::io::Result<Vec<(u64, u64)>> {
    let mut suspects: Vec<u64> = pfns.to_vec();
    for round in 0..10 {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20 * round));
        }
        drain_lru_batches();
        let mut still = Vec::new();
        for &pfn in &suspects {
            if looks_leaked(kpageflags(pfn)?) {
                still.push(pfn);
            }
        }
        suspects = still;
        if suspects.is_empty() {
            break;
        }
    }
    suspects
        .into_iter()
        .map(|p| Ok((p, kpageflags(p)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_entries() {
        let present = PagemapEntry::decode((1 << 63) | 0x1234);
        assert_eq!(frame_of(present), Some(0x1234));
        let exclusive = PagemapEntry::decode((1 << 62) | (0x5678 << 5) | 30);
        assert_eq!(frame_of(exclusive), Some(0x5678));
        let swapped = PagemapEntry::decode((1 << 62) | (0x99 << 5));
        assert_eq!(frame_of(swapped), None, "a swap slot is no frame");
        assert_eq!(frame_of(PagemapEntry::default()), None);
    }

    #[test]
    fn leaked_means_anon_unmapped_and_unowned() {
        assert!(looks_leaked(KPF_ANON));
        assert!(
            looks_leaked(KPF_ANON | (1 << 5)),
            "on the LRU, but mapped by no one"
        );
        assert!(!looks_leaked(KPF_ANON | KPF_MMAP), "someone maps it");
        assert!(!looks_leaked(KPF_ANON | KPF_SWAPCACHE));
        assert!(!looks_leaked(KPF_ANON | KPF_KSM));
        assert!(!looks_leaked(KPF_BUDDY));
        assert!(
            !looks_leaked(0),
            "freed (per-CPU list) or reused as something else"
        );
    }

    #[test]
    fn note_and_take() {
        note([PagemapEntry::decode((1 << 63) | 7)]);
        let got = take();
        assert!(got.contains(&7));
        assert!(!take().contains(&7));
    }
}
