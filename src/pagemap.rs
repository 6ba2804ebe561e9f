//! The host page table as /proc/self/pagemap shows it, one 64-bit entry per
//! page (Documentation/admin-guide/mm/pagemap.rst). Reading an entry never
//! touches the page, so it does not fault a device-exclusive page back.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Host page size the entries are indexed by.
const PAGE_SIZE: u64 = 4096;
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAP: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;
const PM_UFFD_WP: u64 = 1 << 57;
const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
const PM_SOFT_DIRTY: u64 = 1 << 55;
const PM_PFN_MASK: u64 = (1 << 55) - 1;
const PM_SWAP_TYPE_MASK: u64 = 0x1f;

/// One pagemap entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PagemapEntry {
    /// The raw 64-bit entry.
    pub raw: u64,
}

impl PagemapEntry {
    /// Wraps a raw pagemap word.
    pub fn decode(raw: u64) -> Self {
        PagemapEntry { raw }
    }

    /// The entry of the page holding `hva` in this process.
    pub fn of_hva(hva: u64) -> std::io::Result<Self> {
        let f = File::open("/proc/self/pagemap")?;
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, (hva / PAGE_SIZE) * 8)?;
        Ok(Self::decode(u64::from_le_bytes(b)))
    }

    /// The entries of `count` pages from `hva` in this process, in one read.
    pub fn range(hva: u64, count: u64) -> std::io::Result<Vec<Self>> {
        let f = File::open("/proc/self/pagemap")?;
        let mut b = vec![0u8; (count * 8) as usize];
        f.read_exact_at(&mut b, (hva / PAGE_SIZE) * 8)?;
        Ok(b.chunks_exact(8)
            .map(|c| {
                Self::decode(u64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]))
            })
            .collect())
    }

    /// Bit 63: the page is present in RAM.
    pub fn present(self) -> bool {
        self.raw & PM_PRESENT != 0
    }
    /// Bit 62: a swap-type entry (swap, migration, device-exclusive, ...).
    pub fn swapped(self) -> bool {
        self.raw & PM_SWAP != 0
    }
    /// Bit 61: a file page or shared anonymous page.
    pub fn file_or_shared(self) -> bool {
        self.raw & PM_FILE != 0
    }
    /// Bit 57: write-protected by userfaultfd (present or swap).
    pub fn uffd_wp(self) -> bool {
        self.raw & PM_UFFD_WP != 0
    }
    /// Bit 56: the page is mapped exclusively (by this process only).
    pub fn exclusive(self) -> bool {
        self.raw & PM_MMAP_EXCLUSIVE != 0
    }
    /// Bit 55: written since the last clear_refs (present or swap).
    pub fn soft_dirty(self) -> bool {
        self.raw & PM_SOFT_DIRTY != 0
    }
    /// PFN of a present page; None without CAP_SYS_ADMIN (the kernel shows 0).
    pub fn pfn(self) -> Option<u64> {
        let pfn = self.raw & PM_PFN_MASK;
        (self.present() && pfn != 0).then_some(pfn)
    }
    /// Swap type (bits 0-4) of a swap-type entry; device-exclusive entries
    /// are swap entries of a high type.
    pub fn swap_type(self) -> Option<u8> {
        self.swapped()
            .then_some((self.raw & PM_SWAP_TYPE_MASK) as u8)
    }
    /// Swap offset (bits 5-54) of a swap-type entry.
    pub fn swap_offset(self) -> Option<u64> {
        self.swapped().then_some((self.raw & PM_PFN_MASK) >> 5)
    }
    /// In words: "present pfn 0x…", "swap entry type N" or "not present".
    pub fn describe(self) -> String {
        if self.present() {
            format!("present pfn {:#x}", self.raw & PM_PFN_MASK)
        } else if let Some(t) = self.swap_type() {
            format!("swap entry type {t}")
        } else {
            "not present".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_swap_and_present() {
        let e = PagemapEntry::decode(PM_SWAP | (7 << 5) | 30 | PM_SOFT_DIRTY | PM_UFFD_WP);
        assert!(e.swapped() && !e.present() && e.soft_dirty() && e.uffd_wp());
        assert_eq!(e.swap_type(), Some(30));
        assert_eq!(e.swap_offset(), Some(7));
        assert_eq!(e.pfn(), None);
        assert_eq!(e.describe(), "swap entry type 30");
        let p = PagemapEntry::decode(PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234);
        assert!(p.present() && p.exclusive() && !p.swapped() && !p.soft_dirty());
        assert_eq!(p.pfn(), Some(0x1234));
        assert_eq!(p.describe(), "present pfn 0x1234");
        assert_eq!(PagemapEntry::decode(PM_PRESENT).pfn(), None, "unprivileged");
        assert_eq!(PagemapEntry::default().describe(), "not present");
    }

    #[test]
    fn reads_this_process() {
        let x = Box::new(0x5a5a_u64);
        let e = PagemapEntry::of_hva(&*x as *const u64 as u64).unwrap();
        assert!(e.present());
        let r = PagemapEntry::range(&*x as *const u64 as u64, 1).unwrap();
        assert_eq!(r, [e]);
    }
}
