//! Identity page tables for the first 4 GiB with 2 MiB pages.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{PDE_START, PDPTE_START, PML4_START};

/// Errors writing the page tables.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    #[error("cannot write the boot page tables to guest memory: {0}")]
    Write(vm_memory::GuestMemoryError),
}

const PRESENT_RW: u64 = 0x3;
const PAGE_SIZE_BIT: u64 = 0x80;
/// Number of page directories (one per GiB).
pub const PD_COUNT: u64 = 4;

/// Every (GPA, entry) the identity map consists of.
pub fn identity_entries() -> Vec<(u64, u64)> {
    let mut v = vec![(PML4_START, PDPTE_START | PRESENT_RW)];
    for d in 0..PD_COUNT {
        let pd = PDE_START + d * 0x1000;
        v.push((PDPTE_START + d * 8, pd | PRESENT_RW));
        for i in 0..512u64 {
            v.push((
                pd + i * 8,
                ((d * 512 + i) << 21) | PRESENT_RW | PAGE_SIZE_BIT,
            ));
        }
    }
    v
}

/// Writes the identity map; CR3 = PML4_START.
pub fn write_identity_map(mem: &GuestMemoryMmap) -> Result<(), PagingError> {
    for (gpa, entry) in identity_entries() {
        mem.write_obj(entry, GuestAddress(gpa))
            .map_err(PagingError::Write)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_entries() {
        let e = identity_entries();
        assert_eq!(e[0], (0x9000, 0xa003));
        assert_eq!(e.len(), 1 + 4 * 513);
        assert!(e.contains(&(0xa000, 0xb003)));
        assert!(e.contains(&(0xa018, 0xe003)));
        assert!(e.contains(&(0xb000, 0x83)));
        assert!(e.contains(&(0xb008, 0x200083)));
        // Last 2 MiB page below 4 GiB.
        assert!(e.contains(&(0xeff8, 0xffe0_0083)));
        assert!(e.iter().all(|(gpa, _)| *gpa >= 0x9000 && *gpa < 0xf000));
    }
}
