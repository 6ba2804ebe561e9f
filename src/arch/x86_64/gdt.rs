//! The boot GDT: null, 64-bit code, data, TSS; and the matching segment registers.

use kvm_bindings::kvm_segment;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{BOOT_GDT_START, BOOT_IDT_START};

/// Errors writing the descriptor tables.
#[derive(Debug, thiserror::Error)]
pub enum GdtError {
    #[error("cannot write the boot GDT/IDT to guest memory: {0}")]
    Write(vm_memory::GuestMemoryError),
}

/// Selector index of the code segment (selector 0x8).
pub const CODE_INDEX: u16 = 1;
/// Selector index of the data segment (selector 0x10).
pub const DATA_INDEX: u16 = 2;
/// Selector index of the TSS (selector 0x18).
pub const TSS_INDEX: u16 = 3;

/// Encodes a GDT descriptor from access/flag bits (`flags` = flags nibble << 12 | access byte),
/// base and limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
}

/// The boot GDT: null, code (L=1), data, TSS.
pub fn boot_gdt() -> [u64; 4] {
    [
        gdt_entry(0, 0, 0),
        gdt_entry(0xa09b, 0, 0xfffff),
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x808b, 0, 0xfffff),
    ]
}

/// Decodes a GDT descriptor into the segment register KVM expects.
pub fn segment_from_entry(entry: u64, index: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit_raw = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    kvm_segment {
        base,
        // With 4 KiB granularity the limit counts pages.
        limit: if g == 1 {
            (limit_raw << 12) | 0xfff
        } else {
            limit_raw
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        padding: 0,
        unusable: if (entry >> 47) & 1 == 1 { 0 } else { 1 },
    }
}

/// Writes the GDT and an empty (zero) IDT entry to guest memory.
pub fn write_tables(mem: &GuestMemoryMmap) -> Result<(), GdtError> {
    for (i, e) in boot_gdt().iter().enumerate() {
        mem.write_obj(*e, GuestAddress(BOOT_GDT_START + i as u64 * 8))
            .map_err(GdtError::Write)?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(GdtError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_code_segment() {
        // The canonical flat 64-bit code descriptor.
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(0, 0x1234_5678, 0), 0x1200_0034_5678_0000);
    }

    #[test]
    fn decodes_segments() {
        let gdt = boot_gdt();
        let cs = segment_from_entry(gdt[1], CODE_INDEX);
        assert_eq!(
            (cs.selector, cs.l, cs.db, cs.type_, cs.present, cs.s, cs.g),
            (8, 1, 0, 0xb, 1, 1, 1)
        );
        assert_eq!(cs.limit, 0xffff_ffff);
        let ds = segment_from_entry(gdt[2], DATA_INDEX);
        assert_eq!((ds.selector, ds.db, ds.type_, ds.l), (0x10, 1, 3, 0));
        let tr = segment_from_entry(gdt[3], TSS_INDEX);
        assert_eq!((tr.selector, tr.type_, tr.s), (0x18, 0xb, 0));
        assert_eq!(segment_from_entry(gdt[0], 0).unusable, 1);
    }
}
