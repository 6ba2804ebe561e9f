//! Intel MultiProcessor Specification (v1.4) tables.
//!
//! With `acpi=off` Linux finds its CPUs and the I/O APIC through an MP floating pointer in the
//! last KiB of base memory. We write the floating pointer at `MPTABLE_START` and the
//! configuration table right behind it: one processor entry per vCPU (APIC id = vCPU index,
//! vCPU 0 is the bootstrap processor), one ISA bus, one I/O APIC, I/O interrupt entries for
//! IRQs 0-23 and the two local interrupt entries (LINT0 ExtINT, LINT1 NMI).

use std::mem::size_of;

use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{EBDA_START, HIMEM_START, MPTABLE_START};

/// Local APIC base address every CPU sees.
pub const APIC_DEFAULT_PHYS_BASE: u32 = 0xfee0_0000;
/// I/O APIC base address (KVM's in-kernel IOAPIC).
pub const IO_APIC_DEFAULT_PHYS_BASE: u32 = 0xfec0_0000;
/// Number of I/O APIC pins, and of the I/O interrupt entries we write.
pub const IOAPIC_PINS: u8 = 24;

const MP_SPEC_REV: u8 = 4;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1 << 0;
const CPU_BOOTPROCESSOR: u8 = 1 << 1;
/// Family 6 in the CPU signature; Linux only prints it.
const CPU_SIGNATURE: u32 = 0x600;
/// Feature flags: FPU and on-chip APIC.
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
const IOAPIC_ENABLED: u8 = 1;
const BUS_ID_ISA: u8 = 0;
const BUS_TYPE_ISA: [u8; 6] = *b"ISA   ";

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_INTSRC: u8 = 3;
const ENTRY_LINTSRC: u8 = 4;

const IRQ_TYPE_INT: u8 = 0;
const IRQ_TYPE_NMI: u8 = 1;
const IRQ_TYPE_EXTINT: u8 = 3;
/// Polarity and trigger mode "conforms to the bus".
const IRQ_FLAGS_CONFORMS: u16 = 0;
/// Destination "all local APICs".
const DEST_ALL_LAPICS: u8 = 0xff;

/// The MP table lives in [MPTABLE_START, 640 KiB): the last KiB of base memory, which Linux
/// scans for the floating pointer and which e820 marks reserved.
const MPTABLE_END: u64 = 0xa0000;

/// MP floating pointer structure (16 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpFloatingPointer {
    pub signature: [u8; 4],
    pub config_table: u32,
    pub length_paragraphs: u8,
    pub spec_rev: u8,
    pub checksum: u8,
    pub feature: [u8; 5],
}

/// MP configuration table header (44 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpConfigHeader {
    pub signature: [u8; 4],
    pub base_length: u16,
    pub spec_rev: u8,
    pub checksum: u8,
    pub oem_id: [u8; 8],
    pub product_id: [u8; 12],
    pub oem_table: u32,
    pub oem_table_size: u16,
    pub entry_count: u16,
    pub lapic_addr: u32,
    pub ext_length: u16,
    pub ext_checksum: u8,
    pub reserved: u8,
}

/// Processor entry (20 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpProcessor {
    pub entry_type: u8,
    pub apic_id: u8,
    pub apic_version: u8,
    pub cpu_flags: u8,
    pub signature: u32,
    pub features: u32,
    pub reserved: [u32; 2],
}

/// Bus entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpBus {
    pub entry_type: u8,
    pub bus_id: u8,
    pub bus_type: [u8; 6],
}

/// I/O APIC entry (8 bytes).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpIoApic {
    pub entry_type: u8,
    pub apic_id: u8,
    pub apic_version: u8,
    pub flags: u8,
    pub addr: u32,
}

/// I/O interrupt (type 3) and local interrupt (type 4) entry (8 bytes each).
#[repr(C, packed)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MpInterrupt {
    pub entry_type: u8,
    pub irq_type: u8,
    pub irq_flags: u16,
    pub src_bus: u8,
    pub src_bus_irq: u8,
    pub dst_apic: u8,
    pub dst_pin: u8,
}

// SAFETY: all these are repr(C, packed) structs of plain integers and byte arrays: no padding,
// and every bit pattern is a valid value.
unsafe impl ByteValued for MpFloatingPointer {}
// SAFETY: see above.
unsafe impl ByteValued for MpConfigHeader {}
// SAFETY: see above.
unsafe impl ByteValued for MpProcessor {}
// SAFETY: see above.
unsafe impl ByteValued for MpBus {}
// SAFETY: see above.
unsafe impl ByteValued for MpIoApic {}
// SAFETY: see above.
unsafe impl ByteValued for MpInterrupt {}

/// Errors writing the MP table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MptableError {
    #[error("MP table: a VM needs at least one vCPU")]
    NoVcpus,
    #[error("MP table: {0} vCPUs do not fit in the MP table (at most {MAX_MPTABLE_VCPUS})")]
    TooManyVcpus(u8),
    #[error("MP table: cannot write at {0:#x}: guest memory too small")]
    Write(u64),
}

/// Size of everything but the processor entries.
const FIXED_SIZE: usize = size_of::<MpFloatingPointer>()
    + size_of::<MpConfigHeader>()
    + size_of::<MpBus>()
    + size_of::<MpIoApic>()
    + IOAPIC_PINS as usize * size_of::<MpInterrupt>()
    + 2 * size_of::<MpInterrupt>();

/// Most vCPUs whose processor entries fit in the reserved KiB.
pub const MAX_MPTABLE_VCPUS: usize =
    (MPTABLE_END as usize - MPTABLE_START as usize - FIXED_SIZE) / size_of::<MpProcessor>();

/// Size in bytes of the whole MP table (floating pointer included) for `vcpus` vCPUs.
pub fn mptable_size(vcpus: u8) -> usize {
    FIXED_SIZE + vcpus as usize * size_of::<MpProcessor>()
}

/// Two's complement byte checksum: the value that makes the sum of `bytes` plus it zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b)))
}

fn copy_str<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [b' '; N];
    for (d, s) in out.iter_mut().zip(s) {
        *d = *s;
    }
    out
}

/// Builds the configuration table (header and entries) that will sit at `table_addr`.
fn build_config_table(vcpus: u8) -> Vec<u8> {
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for i in 0..vcpus {
        let cpu = MpProcessor {
            entry_type: ENTRY_PROCESSOR,
            apic_id: i,
            apic_version: APIC_VERSION,
            cpu_flags: CPU_ENABLED | if i == 0 { CPU_BOOTPROCESSOR } else { 0 },
            signature: CPU_SIGNATURE,
            features: CPU_FEATURES,
            reserved: [0; 2],
        };
        entries.extend_from_slice(cpu.as_slice());
        count += 1;
    }
    let bus = MpBus {
        entry_type: ENTRY_BUS,
        bus_id: BUS_ID_ISA,
        bus_type: BUS_TYPE_ISA,
    };
    entries.extend_from_slice(bus.as_slice());
    count += 1;
    let ioapic_id = vcpus;
    let ioapic = MpIoApic {
        entry_type: ENTRY_IOAPIC,
        apic_id: ioapic_id,
        apic_version: IOAPIC_VERSION,
        flags: IOAPIC_ENABLED,
        addr: IO_APIC_DEFAULT_PHYS_BASE,
    };
    entries.extend_from_slice(ioapic.as_slice());
    count += 1;
    for irq in 0..IOAPIC_PINS {
        let int = MpInterrupt {
            entry_type: ENTRY_INTSRC,
            irq_type: IRQ_TYPE_INT,
            irq_flags: IRQ_FLAGS_CONFORMS,
            src_bus: BUS_ID_ISA,
            src_bus_irq: irq,
            dst_apic: ioapic_id,
            dst_pin: irq,
        };
        entries.extend_from_slice(int.as_slice());
        count += 1;
    }
    for (irq_type, lint) in [(IRQ_TYPE_EXTINT, 0u8), (IRQ_TYPE_NMI, 1u8)] {
        let l = MpInterrupt {
            entry_type: ENTRY_LINTSRC,
            irq_type,
            irq_flags: IRQ_FLAGS_CONFORMS,
            src_bus: BUS_ID_ISA,
            src_bus_irq: 0,
            dst_apic: DEST_ALL_LAPICS,
            dst_pin: lint,
        };
        entries.extend_from_slice(l.as_slice());
        count += 1;
    }

    let mut header = MpConfigHeader {
        signature: *b"PCMP",
        // Bounded by MAX_MPTABLE_VCPUS, checked by the caller: well under 64 KiB.
        base_length: (size_of::<MpConfigHeader>() + entries.len()) as u16,
        spec_rev: MP_SPEC_REV,
        checksum: 0,
        oem_id: copy_str(b"MMUVISOR"),
        product_id: copy_str(b"000000000000"),
        oem_table: 0,
        oem_table_size: 0,
        entry_count: count,
        lapic_addr: APIC_DEFAULT_PHYS_BASE,
        ext_length: 0,
        ext_checksum: 0,
        reserved: 0,
    };
    let sum = header
        .as_slice()
        .iter()
        .chain(entries.iter())
        .fold(0u8, |acc, b| acc.wrapping_add(*b));
    header.checksum = 0u8.wrapping_sub(sum);

    let mut table = header.as_slice().to_vec();
    table.extend_from_slice(&entries);
    table
}

/// Writes the MP floating pointer and configuration table for `vcpus` vCPUs at
/// `MPTABLE_START`.
pub fn setup_mptable(mem: &GuestMemoryMmap, vcpus: u8) -> Result<(), MptableError> {
    if vcpus == 0 {
        return Err(MptableError::NoVcpus);
    }
    if vcpus as usize > MAX_MPTABLE_VCPUS {
        return Err(MptableError::TooManyVcpus(vcpus));
    }
    let fp_addr = GuestAddress(MPTABLE_START);
    let table_addr = fp_addr.unchecked_add(size_of::<MpFloatingPointer>() as u64);
    let table = build_config_table(vcpus);

    let mut fp = MpFloatingPointer {
        signature: *b"_MP_",
        // MPTABLE_START is below 1 MiB.
        config_table: table_addr.raw_value() as u32,
        length_paragraphs: 1,
        spec_rev: MP_SPEC_REV,
        checksum: 0,
        // feature[0] == 0: a configuration table is present (no default configuration).
        feature: [0; 5],
    };
    fp.checksum = checksum(fp.as_slice());

    mem.write_slice(fp.as_slice(), fp_addr)
        .map_err(|_| MptableError::Write(fp_addr.raw_value()))?;
    mem.write_slice(&table, table_addr)
        .map_err(|_| MptableError::Write(table_addr.raw_value()))?;
    Ok(())
}

// The reserved area in e820 must cover the table, and the table must take the payload ABI's
// 32 vCPUs.
const _: () = assert!(MPTABLE_START >= EBDA_START && MPTABLE_END <= HIMEM_START);
const _: () = assert!(MAX_MPTABLE_VCPUS >= 32);

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    fn read_table(mem: &GuestMemoryMmap) -> (MpFloatingPointer, MpConfigHeader, Vec<u8>) {
        let fp: MpFloatingPointer = mem.read_obj(GuestAddress(MPTABLE_START)).unwrap();
        let table_addr = GuestAddress(u64::from(fp.config_table));
        let hdr: MpConfigHeader = mem.read_obj(table_addr).unwrap();
        let mut table = vec![0u8; usize::from(hdr.base_length)];
        mem.read_slice(&mut table, table_addr).unwrap();
        (fp, hdr, table)
    }

    fn check(vcpus: u8) {
        let mem = mem();
        setup_mptable(&mem, vcpus).unwrap();
        let (fp, hdr, table) = read_table(&mem);
        assert_eq!(&fp.signature, b"_MP_");
        assert_eq!(fp.length_paragraphs, 1);
        assert_eq!(fp.spec_rev, 4);
        assert_eq!(sum(fp.as_slice()), 0, "floating pointer checksum");
        assert_eq!(fp.feature[0], 0);
        assert_eq!({ fp.config_table } % 4, 0);
        assert_eq!(&hdr.signature, b"PCMP");
        assert_eq!(sum(&table), 0, "config table checksum");
        assert_eq!({ hdr.lapic_addr }, 0xfee0_0000);
        assert_eq!(
            usize::from(hdr.entry_count),
            vcpus as usize + 1 + 1 + 24 + 2
        );
        assert_eq!(
            u64::from(fp.config_table) + u64::from(hdr.base_length),
            MPTABLE_START + mptable_size(vcpus) as u64
        );
        assert!(MPTABLE_START + mptable_size(vcpus) as u64 <= 0xa0000);

        // Walk the entries.
        let mut off = size_of::<MpConfigHeader>();
        let (mut cpus, mut buses, mut ioapics, mut ints, mut lints) = (0, 0, 0, 0, 0);
        let mut bsps = 0;
        for _ in 0..hdr.entry_count {
            match table[off] {
                ENTRY_PROCESSOR => {
                    let p = MpProcessor::from_slice(&table[off..off + 20]).unwrap();
                    assert_eq!(p.apic_id, cpus as u8);
                    assert_ne!(p.cpu_flags & CPU_ENABLED, 0);
                    if p.cpu_flags & CPU_BOOTPROCESSOR != 0 {
                        assert_eq!(p.apic_id, 0);
                        bsps += 1;
                    }
                    cpus += 1;
                    off += 20;
                }
                ENTRY_BUS => {
                    let b = MpBus::from_slice(&table[off..off + 8]).unwrap();
                    assert_eq!(&b.bus_type, b"ISA   ");
                    buses += 1;
                    off += 8;
                }
                ENTRY_IOAPIC => {
                    let a = MpIoApic::from_slice(&table[off..off + 8]).unwrap();
                    assert_eq!(a.apic_id, vcpus);
                    assert_eq!({ a.addr }, 0xfec0_0000);
                    assert_eq!(a.flags, 1);
                    ioapics += 1;
                    off += 8;
                }
                ENTRY_INTSRC => {
                    let i = MpInterrupt::from_slice(&table[off..off + 8]).unwrap();
                    assert_eq!(i.irq_type, IRQ_TYPE_INT);
                    assert_eq!(i.src_bus_irq, ints as u8);
                    assert_eq!(i.dst_pin, ints as u8);
                    assert_eq!(i.dst_apic, vcpus);
                    ints += 1;
                    off += 8;
                }
                ENTRY_LINTSRC => {
                    let l = MpInterrupt::from_slice(&table[off..off + 8]).unwrap();
                    let want = if lints == 0 {
                        (IRQ_TYPE_EXTINT, 0)
                    } else {
                        (IRQ_TYPE_NMI, 1)
                    };
                    assert_eq!((l.irq_type, l.dst_pin), want);
                    lints += 1;
                    off += 8;
                }
                t => panic!("unexpected entry type {t}"),
            }
        }
        assert_eq!(off, table.len());
        assert_eq!(
            (cpus, buses, ioapics, ints, lints),
            (vcpus as usize, 1, 1, 24, 2)
        );
        assert_eq!(bsps, 1);
    }

    #[test]
    fn struct_sizes() {
        assert_eq!(size_of::<MpFloatingPointer>(), 16);
        assert_eq!(size_of::<MpConfigHeader>(), 44);
        assert_eq!(size_of::<MpProcessor>(), 20);
        assert_eq!(size_of::<MpBus>(), 8);
        assert_eq!(size_of::<MpIoApic>(), 8);
        assert_eq!(size_of::<MpInterrupt>(), 8);
    }

    #[test]
    fn one_vcpu() {
        check(1);
    }

    #[test]
    fn four_vcpus() {
        check(4);
    }

    #[test]
    fn max_vcpus() {
        check(MAX_MPTABLE_VCPUS as u8);
    }

    #[test]
    fn errors() {
        let mem = mem();
        assert_eq!(setup_mptable(&mem, 0), Err(MptableError::NoVcpus));
        let too_many = MAX_MPTABLE_VCPUS as u8 + 1;
        assert_eq!(
            setup_mptable(&mem, too_many),
            Err(MptableError::TooManyVcpus(too_many))
        );
        let small = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x9f000)]).unwrap();
        assert_eq!(
            setup_mptable(&small, 1),
            Err(MptableError::Write(MPTABLE_START))
        );
    }
}
