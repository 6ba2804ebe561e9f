//! Guest RAM: anonymous private host memory, one KVM memslot per region,
//! GPA <-> HVA translation and /proc/self/pagemap lookups.
//!
//! Each region is its own `mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE)`,
//! aligned to 2 MiB so that transparent huge pages can back it. RAM that
//! would overlap the 32-bit MMIO gap moves above 4 GiB.

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_LOG_DIRTY_PAGES};
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::arch::x86_64::layout::{MMIO_GAP_END, MMIO_GAP_START};
use crate::host_mapping::HostMapping;
pub use crate::pagemap::PagemapEntry;

/// Host page size assumed by pagemap lookups.
pub const PAGE_SIZE: u64 = 4096;
/// Alignment of every host mapping of guest RAM.
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

/// Errors of guest memory setup and lookups.
#[derive(Debug, thiserror::Error)]
pub enum GuestMemoryError {
    #[error("guest memory size {0:#x} is not a multiple of 4 KiB")]
    Unaligned(u64),
    #[error("guest memory size is zero")]
    Empty,
    #[error("cannot map {size} bytes of guest memory: {err}")]
    Mmap { size: u64, err: std::io::Error },
    #[error("madvise on guest memory failed: {0}")]
    Madvise(std::io::Error),
    #[error("cannot wrap guest memory: {0}")]
    Region(String),
    #[error("cannot register memslot {slot}: {err}")]
    Memslot { slot: u32, err: kvm_ioctls::Error },
    #[error("no memslot {0}")]
    NoSlot(u32),
    #[error("cannot read the dirty log of slot {slot}: {err}")]
    DirtyLog { slot: u32, err: kvm_ioctls::Error },
    #[error("guest address {0:#x} is not in guest RAM")]
    NotRam(u64),
    #[error("cannot read /proc/self/pagemap: {0}")]
    Pagemap(std::io::Error),
    #[error("cannot read /proc/self/smaps: {0}")]
    Smaps(std::io::Error),
}

type Result<T> = std::result::Result<T, GuestMemoryError>;

/// Transparent huge page policy for guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Thp {
    /// Leave the system default.
    #[default]
    Default,
    /// MADV_HUGEPAGE.
    On,
    /// MADV_NOHUGEPAGE.
    Off,
}

/// One region of guest RAM: a KVM memslot and the host range behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRegion {
    /// KVM memslot number.
    pub slot: u32,
    /// First guest physical address.
    pub gpa: u64,
    /// Size in bytes.
    pub size: u64,
    /// Host virtual address of `gpa`.
    pub hva: u64,
}

impl GuestRegion {
    /// The guest page frames whose host range intersects `[start, end)`.
    pub fn gfns_of(&self, start: u64, end: u64) -> Option<std::ops::Range<u64>> {
        let lo = start.max(self.hva);
        let hi = end.min(self.hva + self.size);
        if lo >= hi {
            return None;
        }
        let g0 = (self.gpa + (lo - self.hva)) >> 12;
        let g1 = (self.gpa + (hi - self.hva) + 4095) >> 12;
        Some(g0..g1)
    }
}

/// Maps `size` bytes (rounded up to 2 MiB) of anonymous private memory at a
/// 2 MiB aligned host address, with the THP advice asked for.
fn map_anonymous(size: u64, thp: Thp) -> Result<HostMapping> {
    let len = size.div_ceil(HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
    let mapping = HostMapping::private_aligned(len as usize, HUGE_PAGE_SIZE as usize)
        .map_err(|err| GuestMemoryError::Mmap { size, err })?;
    let advice = match thp {
        Thp::Default => None,
        Thp::On => Some(libc::MADV_HUGEPAGE),
        Thp::Off => Some(libc::MADV_NOHUGEPAGE),
    };
    if let Some(advice) = advice {
        mapping
            .madvise(0, mapping.len(), advice)
            .map_err(GuestMemoryError::Madvise)?;
    }
    Ok(mapping)
}

/// Splits `size` bytes of RAM starting at GPA 0 around the MMIO gap.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    if size <= MMIO_GAP_START {
        vec![(0, size)]
    } else {
        vec![(0, MMIO_GAP_START), (MMIO_GAP_END, size - MMIO_GAP_START)]
    }
}

/// Guest RAM of one VM.
#[derive(Debug)]
pub struct GuestMemory {
    // Field order matters: the vm-memory regions (which do not own their
    // mappings) go before the mappings that are unmapped on drop.
    mmap: GuestMemoryMmap,
    regions: Vec<GuestRegion>,
    dirty_logging: std::sync::atomic::AtomicBool,
    _mappings: Vec<HostMapping>,
}

impl GuestMemory {
    /// Maps `size` bytes of guest RAM starting at GPA 0 (split around the MMIO gap).
    pub fn new(size: u64, thp: Thp) -> Result<Self> {
        if size == 0 {
            return Err(GuestMemoryError::Empty);
        }
        if !size.is_multiple_of(PAGE_SIZE) {
            return Err(GuestMemoryError::Unaligned(size));
        }
        let mut mappings = Vec::new();
        let mut vm_regions = Vec::new();
        let mut regions = Vec::new();
        for (slot, (gpa, len)) in ram_ranges(size).into_iter().enumerate() {
            let mapping = map_anonymous(len, thp)?;
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
            // SAFETY: the pointer is a live mapping of at least `len` bytes that
            // outlives the region (see the field order of GuestMemory).
            let raw = unsafe {
                MmapRegion::build_raw(
                    mapping.as_ptr(),
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                )
            }
            .map_err(|e| GuestMemoryError::Region(e.to_string()))?;
            let region = GuestRegionMmap::new(raw, GuestAddress(gpa))
                .ok_or_else(|| GuestMemoryError::Region("region wraps around".into()))?;
            regions.push(GuestRegion {
                slot: slot as u32,
                gpa,
                size: len,
                hva: mapping.addr(),
            });
            vm_regions.push(region);
            mappings.push(mapping);
        }
        let mmap = GuestMemoryMmap::from_regions(vm_regions)
            .map_err(|e| GuestMemoryError::Region(e.to_string()))?;
        Ok(GuestMemory {
            mmap,
            regions,
            dirty_logging: std::sync::atomic::AtomicBool::new(false),
            _mappings: mappings,
        })
    }

    /// The vm-memory view, for loaders and device emulation.
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mmap
    }

    /// The RAM regions, one per memslot.
    pub fn regions(&self) -> &[GuestRegion] {
        &self.regions
    }

    /// Total RAM in bytes.
    pub fn size(&self) -> u64 {
        self.regions.iter().map(|r| r.size).sum()
    }

    /// Host virtual address of a guest physical address in RAM.
    pub fn gpa_to_hva(&self, gpa: u64) -> Option<u64> {
        self.regions
            .iter()
            .find(|r| gpa >= r.gpa && gpa - r.gpa < r.size)
            .map(|r| r.hva + (gpa - r.gpa))
    }

    /// Guest physical address of a host virtual address inside guest RAM.
    pub fn hva_to_gpa(&self, hva: u64) -> Option<u64> {
        self.regions
            .iter()
            .find(|r| hva >= r.hva && hva - r.hva < r.size)
            .map(|r| r.gpa + (hva - r.hva))
    }

    /// The memslot holding `gpa`.
    pub fn slot_of(&self, gpa: u64) -> Option<u32> {
        self.regions
            .iter()
            .find(|r| gpa >= r.gpa && gpa - r.gpa < r.size)
            .map(|r| r.slot)
    }

    /// The pagemap entry of the host page backing `gpa` (reads the page table,
    /// never the page itself).
    pub fn pagemap(&self, gpa: u64) -> Result<PagemapEntry> {
        let hva = self.gpa_to_hva(gpa).ok_or(GuestMemoryError::NotRam(gpa))?;
        PagemapEntry::of_hva(hva).map_err(GuestMemoryError::Pagemap)
    }

    /// AnonHugePages (bytes) of the host mapping holding `gpa` (see `anon_huge_bytes_of_hva`).
    pub fn anon_huge_bytes(&self, gpa: u64) -> Result<u64> {
        let hva = self.gpa_to_hva(gpa).ok_or(GuestMemoryError::NotRam(gpa))?;
        anon_huge_bytes_of_hva(hva)
    }

    fn memslot(&self, r: &GuestRegion, log_dirty: bool) -> kvm_userspace_memory_region {
        kvm_userspace_memory_region {
            slot: r.slot,
            flags: if log_dirty {
                KVM_MEM_LOG_DIRTY_PAGES
            } else {
                0
            },
            guest_phys_addr: r.gpa,
            memory_size: r.size,
            userspace_addr: r.hva,
        }
    }

    /// Registers one memslot per region.
    pub fn register(&self, vm_fd: &VmFd) -> Result<()> {
        let log = self.dirty_logging.load(std::sync::atomic::Ordering::SeqCst);
        for r in &self.regions {
            // SAFETY: the slot describes host memory we own for as long as the
            // VM (it is unmapped only when GuestMemory is dropped).
            unsafe { vm_fd.set_user_memory_region(self.memslot(r, log)) }
                .map_err(|err| GuestMemoryError::Memslot { slot: r.slot, err })?;
        }
        Ok(())
    }

    /// Turns KVM dirty logging on or off for every memslot.
    pub fn set_dirty_logging(&self, vm_fd: &VmFd, on: bool) -> Result<()> {
        self.dirty_logging
            .store(on, std::sync::atomic::Ordering::SeqCst);
        self.register(vm_fd)
    }

    /// GPAs of the pages KVM logged dirty since the last call (dirty logging must be on).
    pub fn dirty_pages(&self, vm_fd: &VmFd) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for r in &self.regions {
            let bitmap = vm_fd
                .get_dirty_log(r.slot, r.size as usize)
                .map_err(|err| GuestMemoryError::DirtyLog { slot: r.slot, err })?;
            for (i, word) in bitmap.iter().enumerate() {
                let mut w = *word;
                while w != 0 {
                    let bit = w.trailing_zeros() as u64;
                    out.push(r.gpa + (i as u64 * 64 + bit) * PAGE_SIZE);
                    w &= w - 1;
                }
            }
        }
        Ok(out)
    }

    /// Deletes a memslot (KVM drops every mapping of it).
    pub fn delete_memslot(&self, vm_fd: &VmFd, slot: u32) -> Result<()> {
        let r = self
            .regions
            .iter()
            .find(|r| r.slot == slot)
            .ok_or(GuestMemoryError::NoSlot(slot))?;
        let mut m = self.memslot(r, false);
        m.memory_size = 0;
        // SAFETY: deleting a slot never lets KVM touch host memory.
        unsafe { vm_fd.set_user_memory_region(m) }
            .map_err(|err| GuestMemoryError::Memslot { slot, err })
    }

    /// Reads `len` bytes at `gpa` (bounded by RAM).
    pub fn read_bytes(&self, gpa: u64, len: usize) -> Option<Vec<u8>> {
        use vm_memory::Bytes;
        let mut buf = vec![0u8; len];
        self.mmap.read_slice(&mut buf, GuestAddress(gpa)).ok()?;
        Some(buf)
    }

    /// Whether the whole of [gpa, gpa+len) is RAM of one region.
    pub fn contains_range(&self, gpa: u64, len: u64) -> bool {
        self.regions
            .iter()
            .any(|r| gpa >= r.gpa && gpa.checked_add(len).is_some_and(|e| e <= r.gpa + r.size))
    }
}

/// AnonHugePages (bytes) of the host mapping (VMA) that holds `hva`, from
/// /proc/self/smaps: how much of it THP backs right now.
pub fn anon_huge_bytes_of_hva(hva: u64) -> Result<u64> {
    crate::smaps::anon_huge_bytes(hva)
        .map_err(GuestMemoryError::Smaps)?
        .ok_or(GuestMemoryError::NotRam(hva))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_host_range_to_gfns() {
        let r = GuestRegion {
            slot: 0,
            gpa: 0,
            hva: 0x7f00_0000_0000,
            size: 64 << 20,
        };
        assert_eq!(
            r.gfns_of(0x7f00_0020_0000, 0x7f00_0020_1000),
            Some(0x200..0x201)
        );
        assert_eq!(r.gfns_of(0x1000, 0x2000), None);
    }

    #[test]
    fn splits_around_mmio_gap() {
        assert_eq!(ram_ranges(64 << 20), vec![(0, 64 << 20)]);
        assert_eq!(ram_ranges(4 << 30), vec![(0, 3 << 30), (4 << 30, 1 << 30)]);
    }

    #[test]
    fn mapping_is_aligned_and_translates() {
        let m = GuestMemory::new(16 << 20, Thp::Off).unwrap();
        let r = m.regions()[0];
        assert_eq!(r.hva % HUGE_PAGE_SIZE, 0);
        assert_eq!(m.gpa_to_hva(0x1234), Some(r.hva + 0x1234));
        assert_eq!(m.hva_to_gpa(r.hva + 0x5000), Some(0x5000));
        assert_eq!(m.gpa_to_hva(16 << 20), None);
        assert!(m.pagemap(16 << 20).is_err());
    }

    #[test]
    fn thp_advice_is_applied() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let touch = |m: &GuestMemory| {
            let hva = m.gpa_to_hva(0x200000).unwrap();
            // SAFETY: 2 MiB inside the mapping owned by `m`.
            unsafe { std::ptr::write_bytes(hva as *mut u8, 1, HUGE_PAGE_SIZE as usize) };
        };
        let off = GuestMemory::new(8 << 20, Thp::Off).unwrap();
        touch(&off);
        assert_eq!(off.anon_huge_bytes(0x200000).unwrap(), 0);
        if thp.contains("[never]") || thp.is_empty() {
            eprintln!("THP disabled on this host: only the 'off' half checked");
            return;
        }
        let on = GuestMemory::new(8 << 20, Thp::On).unwrap();
        touch(&on);
        assert!(on.anon_huge_bytes(0x200000).unwrap() >= HUGE_PAGE_SIZE);
    }

    #[test]
    fn pagemap_sees_written_page() {
        let m = GuestMemory::new(16 << 20, Thp::Off).unwrap();
        let gpa = 0x300000;
        let before = m.pagemap(gpa).unwrap();
        assert!(!before.present(), "untouched page must not be present");
        let hva = m.gpa_to_hva(gpa).unwrap();
        // SAFETY: hva is inside the mapping owned by `m`.
        unsafe { std::ptr::write_volatile(hva as *mut u64, 0xdead_beef) };
        let after = m.pagemap(gpa).unwrap();
        assert!(after.present() && !after.swapped());
        assert!(
            after.exclusive(),
            "a private anonymous page we wrote is exclusive"
        );
        // MADV_DONTNEED drops it again.
        // SAFETY: page-aligned range inside our mapping.
        unsafe {
            libc::madvise(
                hva as *mut libc::c_void,
                PAGE_SIZE as usize,
                libc::MADV_DONTNEED,
            )
        };
        assert!(!m.pagemap(gpa).unwrap().present());
    }
}
