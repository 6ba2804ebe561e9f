//! An anonymous host mapping that this process owns and unmaps on drop: the
//! one mmap wrapper behind guest RAM, the simulated guest, benchmarks and
//! drill helpers.

use std::io;

/// Owned anonymous memory `[addr, addr + len)`.
#[derive(Debug)]
pub struct HostMapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; the pointer is
// only dereferenced by callers that synchronise their own accesses.
unsafe impl Send for HostMapping {}
// SAFETY: as above; nothing is mutated through a shared reference.
unsafe impl Sync for HostMapping {}

impl HostMapping {
    /// `mmap(NULL, len, prot, flags | MAP_ANONYMOUS)`.
    pub fn anonymous(len: usize, prot: i32, flags: i32) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address; the
        // result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(HostMapping {
            addr: p.cast(),
            len,
        })
    }

    /// Private read-write anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE).
    pub fn small_pages(len: usize) -> io::Result<Self> {
        Self::small_pages_with(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)
    }

    /// `anonymous`, then MADV_NOHUGEPAGE where the mapping takes it (a
    /// hugetlb or shared mapping may refuse; that is not an error).
    pub fn small_pages_with(len: usize, prot: i32, flags: i32) -> io::Result<Self> {
        let m = Self::anonymous(len, prot, flags)?;
        let _ = m.madvise(0, len, libc::MADV_NOHUGEPAGE);
        Ok(m)
    }

    /// Private read-write anonymous memory, `MAP_NORESERVE`.
    pub fn private(len: usize) -> io::Result<Self> {
        Self::anonymous(
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
    }

    /// Private read-write anonymous memory of `len` bytes at an `align`-aligned
    /// address (a power of two): reserves `len + align` and unmaps the rest.
    pub fn private_aligned(len: usize, align: usize) -> io::Result<Self> {
        let reserve = Self::private(len + align)?;
        let base = reserve.addr as usize;
        let aligned = base.next_multiple_of(align);
        let (head, tail) = (aligned - base, base + reserve.len - aligned - len);
        std::mem::forget(reserve);
        // SAFETY: both trimmed pieces lie inside the reservation just made,
        // which no one else uses; the kept middle is owned by the result.
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        Ok(HostMapping {
            addr: aligned as *mut u8,
            len,
        })
    }

    /// The first address.
    pub fn addr(&self) -> u64 {
        self.addr as u64
    }

    /// The first byte, for callers that hand the memory to KVM or vm-memory.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a successful mmap).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// madvise(2) on `[offset, offset + len)` of the mapping.
    pub fn madvise(&self, offset: usize, len: usize, advice: i32) -> io::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: the range lies inside the mapping we own.
        if unsafe { libc::madvise(self.addr.add(offset).cast(), len, advice) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes `i + 1` to the first word of every 4 KiB page, so each is
    /// present, dirty and distinct.
    pub fn populate(&self) {
        for i in 0..self.len / 4096 {
            // SAFETY: i * 4096 < len: an aligned u64 inside our mapping;
            // callers populate only writable mappings.
            unsafe {
                std::ptr::write_volatile(self.addr.add(i * 4096).cast::<u64>(), i as u64 + 1)
            };
        }
    }
}

impl Drop for HostMapping {
    fn drop(&mut self) {
        // SAFETY: addr/len describe exactly the mapping this value owns.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_mapping_is_aligned_and_usable() {
        let m = HostMapping::private_aligned(3 << 20, 2 << 20).unwrap();
        assert_eq!(m.addr() % (2 << 20), 0);
        assert_eq!(m.len(), 3 << 20);
        m.populate();
        // SAFETY: page 5 of our populated mapping.
        let v = unsafe { std::ptr::read_volatile((m.addr() + 5 * 4096) as *const u64) };
        assert_eq!(v, 6);
        assert!(m.madvise(0, 4096, libc::MADV_DONTNEED).is_ok());
        assert!(m.madvise(4096, 3 << 20, libc::MADV_DONTNEED).is_err());
    }
}
