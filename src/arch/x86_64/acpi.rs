//! Minimal ACPI for Linux guests, so that they can power off: a FADT whose
//! only ACPI hardware is the PM1a event and control register blocks (the
//! `devices::acpi_pm` port device), and a DSDT that names the sleep type of
//! S5. Linux powers off (`poweroff`, `reboot(RB_POWER_OFF)`) by writing
//! SLP_TYP(S5) | SLP_EN to PM1a_CNT, and the VM ends.
//!
//! Not hardware-reduced ACPI: on x86 that makes Linux drop the legacy PIC
//! and with it the ISA IRQs (serial IRQ 4, RTC IRQ 8) that the VMM's
//! devices use, and the PIT timer setup. Here Linux keeps them, as with
//! `acpi=off`. SMI_CMD is 0 (always in ACPI mode), the SCI (IRQ 9) never
//! fires, there is no PM timer and there are no GPE blocks.
//!
//! Tables, in the BIOS area [RSDP_START, HIMEM_START) that e820 reserves:
//! RSDP -> XSDT -> FADT -> FACS, DSDT; XSDT -> MADT. The MADT says what
//! the MP table (mptable.rs) says: with ACPI on and no MADT, Linux ignores
//! the MP table ("No APIC-table, disabling MPS") and runs on one CPU
//! without its APIC.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{ACPI_PM_PORT, HIMEM_START};
use super::mptable::{APIC_DEFAULT_PHYS_BASE, IO_APIC_DEFAULT_PHYS_BASE};

/// Where the RSDP goes: Linux also finds it by scanning [0xe0000, 0x100000)
/// when the zero page does not say (`acpi_rsdp_addr`).
pub const RSDP_START: u64 = 0xe_0000;
/// The SLP_TYP value of S5 in the DSDT's `\_S5_` package.
pub const S5_SLEEP_TYPE: u8 = 5;
/// The PM1a blocks in ACPI_PM_PORT's range: event (status, enable: 2 bytes
/// each), then control (2 bytes).
pub const PM1_EVT_LEN: u8 = 4;
pub const PM1_CNT_LEN: u8 = 2;
pub const PM1_CNT_OFFSET: u16 = PM1_EVT_LEN as u16;
/// PM1 control register bits (ACPI 6.5 section 4.8.3.2.1).
pub const PM1_CNT_SCI_EN: u16 = 1;
pub const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
pub const PM1_CNT_SLP_TYP_MASK: u16 = 0x7 << PM1_CNT_SLP_TYP_SHIFT;
pub const PM1_CNT_SLP_EN: u16 = 1 << 13;
/// The SCI: ISA IRQ 9, as on PCs (level, active low).
const SCI_IRQ: u16 = 9;

const OEM_ID: &[u8; 6] = b"MMUVSR";
const OEM_TABLE_ID: &[u8; 8] = b"MMUVISOR";
const CREATOR_ID: &[u8; 4] = b"MMUV";

/// Table offsets from RSDP_START (16-byte aligned; the FACS 64-byte).
const XSDT_OFFSET: u64 = 0x40;
const FACS_OFFSET: u64 = 0x80;
const FADT_OFFSET: u64 = 0x100;
const DSDT_OFFSET: u64 = 0x240;
const MADT_OFFSET: u64 = 0x280;
const FACS_LEN: usize = 64;
/// The ACPI 6 FADT (revision 6) is 276 bytes.
const FADT_LEN: usize = 276;
/// FADT field offsets (struct acpi_table_fadt).
const FADT_FACS: usize = 36;
const FADT_DSDT: usize = 40;
const FADT_SCI_INT: usize = 46;
const FADT_PM1A_EVT_BLK: usize = 56;
const FADT_PM1A_CNT_BLK: usize = 64;
const FADT_PM1_EVT_LEN: usize = 88;
const FADT_PM1_CNT_LEN: usize = 89;
const FADT_C2_LATENCY: usize = 96;
const FADT_C3_LATENCY: usize = 98;
const FADT_BOOT_FLAGS: usize = 109;
const FADT_FLAGS: usize = 112;
const FADT_MINOR_REVISION: usize = 131;
const FADT_X_FACS: usize = 132;
const FADT_X_DSDT: usize = 140;
const FADT_X_PM1A_EVT_BLK: usize = 148;
const FADT_X_PM1A_CNT_BLK: usize = 172;
const FADT_HYPERVISOR_ID: usize = 268;
/// IA-PC boot flags: legacy (ISA) devices, an 8042 at 0x60/0x64 (reboot goes
/// through it), no VGA. The CMOS RTC is there (no NO_CMOS_RTC).
const BOOT_LEGACY_DEVICES: u16 = 1 << 0;
const BOOT_8042: u16 = 1 << 1;
const BOOT_NO_VGA: u16 = 1 << 2;
/// FADT flags: WBINVD works, C1 on every CPU, no fixed power or sleep
/// button. Not HW_REDUCED_ACPI (bit 20), see above.
const FLAG_WBINVD: u32 = 1 << 0;
const FLAG_PROC_C1: u32 = 1 << 2;
const FLAG_POWER_BUTTON: u32 = 1 << 4;
const FLAG_SLEEP_BUTTON: u32 = 1 << 5;
/// C2/C3 latencies that say "not supported" (> 100 and > 1000 us).
const NO_C2_LATENCY: u16 = 0x0fff;
const NO_C3_LATENCY: u16 = 0xffff;
/// MADT flags: PCAT_COMPAT (the VM has the dual 8259s of KVM's irqchip).
const MADT_PCAT_COMPAT: u32 = 1;
/// MADT entry types.
const MADT_LOCAL_APIC: u8 = 0;
const MADT_IO_APIC: u8 = 1;
const MADT_LOCAL_APIC_NMI: u8 = 4;

/// Errors writing the tables.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AcpiError {
    #[error("ACPI tables: cannot write at {0:#x}: guest memory too small")]
    Write(u64),
}

/// Two's complement byte checksum: what makes the sum of `bytes` plus it zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A system description table: 36-byte header, then `body`; length and
/// checksum filled in.
fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// A Generic Address Structure for an I/O port block of `bytes` bytes
/// (access size 0: as the register's width, like the 32-bit FADT fields).
fn gas_io(port: u16, bytes: u8) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O space
    g[1] = bytes * 8; // register bit width
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

/// The FACS: required with full ACPI hardware; no waking vector, no global
/// lock (no firmware to share it with).
fn facs() -> [u8; FACS_LEN] {
    let mut f = [0u8; FACS_LEN];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&(FACS_LEN as u32).to_le_bytes());
    f[32] = 2; // version
    f
}

/// The DSDT's AML: `Name (_S5_, Package (4) { 5, 5, 0, 0 })`.
fn dsdt_aml() -> Vec<u8> {
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    const BYTE_PREFIX: u8 = 0x0a;
    const ZERO_OP: u8 = 0x00;
    let elements = [
        BYTE_PREFIX,
        S5_SLEEP_TYPE,
        BYTE_PREFIX,
        S5_SLEEP_TYPE,
        ZERO_OP,
        ZERO_OP,
    ];
    // PkgLength (one byte, counting itself) + NumElements + elements.
    let pkg_len = 1 + 1 + elements.len();
    let mut aml = vec![NAME_OP];
    aml.extend_from_slice(b"_S5_");
    aml.push(PACKAGE_OP);
    aml.push(pkg_len as u8);
    aml.push(4);
    aml.extend_from_slice(&elements);
    aml
}

fn dsdt() -> Vec<u8> {
    sdt(b"DSDT", 2, &dsdt_aml())
}

fn fadt(facs_addr: u64, dsdt_addr: u64) -> Vec<u8> {
    let mut body = vec![0u8; FADT_LEN - 36];
    let mut put =
        |off: usize, bytes: &[u8]| body[off - 36..off - 36 + bytes.len()].copy_from_slice(bytes);
    // The tables are below 1 MiB: the 32-bit fields hold the same addresses.
    put(FADT_FACS, &(facs_addr as u32).to_le_bytes());
    put(FADT_X_FACS, &facs_addr.to_le_bytes());
    put(FADT_DSDT, &(dsdt_addr as u32).to_le_bytes());
    put(FADT_X_DSDT, &dsdt_addr.to_le_bytes());
    put(FADT_SCI_INT, &SCI_IRQ.to_le_bytes());
    let (evt, cnt) = (ACPI_PM_PORT, ACPI_PM_PORT + PM1_CNT_OFFSET);
    put(FADT_PM1A_EVT_BLK, &u32::from(evt).to_le_bytes());
    put(FADT_PM1A_CNT_BLK, &u32::from(cnt).to_le_bytes());
    put(FADT_PM1_EVT_LEN, &[PM1_EVT_LEN]);
    put(FADT_PM1_CNT_LEN, &[PM1_CNT_LEN]);
    put(FADT_X_PM1A_EVT_BLK, &gas_io(evt, PM1_EVT_LEN));
    put(FADT_X_PM1A_CNT_BLK, &gas_io(cnt, PM1_CNT_LEN));
    put(FADT_C2_LATENCY, &NO_C2_LATENCY.to_le_bytes());
    put(FADT_C3_LATENCY, &NO_C3_LATENCY.to_le_bytes());
    put(
        FADT_BOOT_FLAGS,
        &(BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_NO_VGA).to_le_bytes(),
    );
    let flags = FLAG_WBINVD | FLAG_PROC_C1 | FLAG_POWER_BUTTON | FLAG_SLEEP_BUTTON;
    put(FADT_FLAGS, &flags.to_le_bytes());
    put(FADT_MINOR_REVISION, &[5]); // FADT 6.5
    put(FADT_HYPERVISOR_ID, b"MMUVISOR");
    sdt(b"FACP", 6, &body)
}

/// The MADT: a local APIC per vCPU (APIC id = ACPI processor uid = index),
/// the I/O APIC (id `vcpus`, GSI base 0, as in the MP table), and LINT1 as
/// NMI on every CPU. ISA IRQs map to the same GSI (no overrides), like the
/// MP table's ISA IRQ i -> pin i.
fn madt(vcpus: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&APIC_DEFAULT_PHYS_BASE.to_le_bytes());
    body.extend_from_slice(&MADT_PCAT_COMPAT.to_le_bytes());
    for cpu in 0..vcpus {
        body.extend_from_slice(&[MADT_LOCAL_APIC, 8, cpu, cpu]);
        body.extend_from_slice(&1u32.to_le_bytes()); // enabled
    }
    body.extend_from_slice(&[MADT_IO_APIC, 12, vcpus, 0]);
    body.extend_from_slice(&IO_APIC_DEFAULT_PHYS_BASE.to_le_bytes());
    // GSI base 0.
    body.extend_from_slice(&0u32.to_le_bytes());
    // Processor uid 0xff: all; flags 0: polarity and trigger as the bus.
    body.extend_from_slice(&[MADT_LOCAL_APIC_NMI, 6, 0xff, 0, 0, 1]);
    sdt(b"APIC", 5, &body)
}

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|a| a.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

/// The ACPI 2.0+ RSDP (36 bytes), pointing at the XSDT only.
fn rsdp(xsdt_addr: u64) -> [u8; 36] {
    let mut r = [0u8; 36];
    r[0..8].copy_from_slice(b"RSD PTR ");
    r[9..15].copy_from_slice(OEM_ID);
    // Revision 2 (ACPI 2.0+); RsdtAddress (16..20) stays 0: no RSDT.
    r[15] = 2;
    r[20..24].copy_from_slice(&36u32.to_le_bytes());
    r[24..32].copy_from_slice(&xsdt_addr.to_le_bytes());
    r[8] = checksum(&r[0..20]);
    r[32] = checksum(&r);
    r
}

/// The tables for `vcpus` vCPUs and where each goes.
fn tables(vcpus: u8) -> Vec<(u64, Vec<u8>)> {
    let (xsdt_at, facs_at, fadt_at, dsdt_at, madt_at) = (
        RSDP_START + XSDT_OFFSET,
        RSDP_START + FACS_OFFSET,
        RSDP_START + FADT_OFFSET,
        RSDP_START + DSDT_OFFSET,
        RSDP_START + MADT_OFFSET,
    );
    vec![
        (RSDP_START, rsdp(xsdt_at).to_vec()),
        (xsdt_at, xsdt(&[fadt_at, madt_at])),
        (facs_at, facs().to_vec()),
        (fadt_at, fadt(facs_at, dsdt_at)),
        (dsdt_at, dsdt()),
        (madt_at, madt(vcpus)),
    ]
}

/// Writes RSDP, XSDT, FACS, FADT, DSDT and MADT for `vcpus` vCPUs; returns the
/// RSDP's address for the zero page.
pub fn write_acpi_tables(mem: &GuestMemoryMmap, vcpus: u8) -> Result<GuestAddress, AcpiError> {
    for (at, bytes) in tables(vcpus) {
        mem.write_slice(&bytes, GuestAddress(at))
            .map_err(|_| AcpiError::Write(at))?;
    }
    Ok(GuestAddress(RSDP_START))
}

// Each table ends before the next one starts, all inside the BIOS area
// (the MADT of 255 vCPUs included).
const _: () = assert!(XSDT_OFFSET >= 36 && FACS_OFFSET >= XSDT_OFFSET + 36 + 2 * 8);
const _: () =
    assert!(FACS_OFFSET.is_multiple_of(64) && FADT_OFFSET >= FACS_OFFSET + FACS_LEN as u64);
const _: () = assert!(DSDT_OFFSET >= FADT_OFFSET + FADT_LEN as u64);
const _: () = assert!(MADT_OFFSET >= DSDT_OFFSET + 36 + 14);
const _: () = assert!(RSDP_START + MADT_OFFSET + 44 + 255 * 8 + 12 + 6 <= HIMEM_START);

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn tables_are_well_formed_and_linked() {
        let t = tables(2);
        let (rsdp_at, rsdp) = (&t[0].0, &t[0].1);
        assert_eq!(*rsdp_at, 0xe0000);
        assert_eq!(&rsdp[0..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[0..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(rsdp), 0, "RSDP extended checksum");
        assert_eq!((rsdp[15], u32_at(rsdp, 20)), (2, 36));
        let xsdt_at = u64_at(rsdp, 24);
        let find = |at: u64| &t.iter().find(|(a, _)| *a == at).expect("linked table").1;
        let xsdt = find(xsdt_at);
        let fadt = find(u64_at(xsdt, 36));
        let madt = find(u64_at(xsdt, 44));
        let dsdt = find(u64_at(fadt, FADT_X_DSDT));
        for (tab, sig) in [
            (xsdt, b"XSDT"),
            (fadt, b"FACP"),
            (dsdt, b"DSDT"),
            (madt, b"APIC"),
        ] {
            assert_eq!(&tab[0..4], sig);
            assert_eq!(u32_at(tab, 4) as usize, tab.len(), "{sig:?} length");
            assert_eq!(sum(tab), 0, "{sig:?} checksum");
            assert_eq!(&tab[10..16], OEM_ID);
        }
        assert_eq!(xsdt.len(), 36 + 16);
        assert_eq!((fadt.len(), fadt[8]), (276, 6));
        assert_eq!(u32_at(fadt, FADT_DSDT) as u64, u64_at(fadt, FADT_X_DSDT));
    }

    #[test]
    fn fadt_has_pm1_blocks_and_is_not_hardware_reduced() {
        let f = fadt(0xe0080, 0xe0240);
        // HW_REDUCED_ACPI would make Linux drop the PIC and ISA IRQs.
        assert_eq!(u32_at(&f, FADT_FLAGS) & (1 << 20), 0);
        assert_eq!(u32_at(&f, FADT_FACS), 0xe0080);
        assert_eq!(u64_at(&f, FADT_X_FACS), 0xe0080);
        assert_eq!(u32_at(&f, FADT_DSDT), 0xe0240);
        assert_eq!(
            u16::from_le_bytes([f[FADT_SCI_INT], f[FADT_SCI_INT + 1]]),
            9
        );
        // SMI_CMD 0: always in ACPI mode.
        assert_eq!(u32_at(&f, 48), 0);
        assert_eq!(u32_at(&f, FADT_PM1A_EVT_BLK), u32::from(ACPI_PM_PORT));
        assert_eq!(u32_at(&f, FADT_PM1A_CNT_BLK), u32::from(ACPI_PM_PORT) + 4);
        assert_eq!((f[FADT_PM1_EVT_LEN], f[FADT_PM1_CNT_LEN]), (4, 2));
        let evt = &f[FADT_X_PM1A_EVT_BLK..FADT_X_PM1A_EVT_BLK + 12];
        let cnt = &f[FADT_X_PM1A_CNT_BLK..FADT_X_PM1A_CNT_BLK + 12];
        assert_eq!((&evt[..4], u64_at(evt, 4)), (&[1u8, 32, 0, 0][..], 0x600));
        assert_eq!((&cnt[..4], u64_at(cnt, 4)), (&[1u8, 16, 0, 0][..], 0x604));
        // No PM1b, PM2, PM timer, GPE blocks.
        assert!(f[60..64].iter().chain(&f[68..88]).all(|&b| b == 0));
        assert!(f[90..96].iter().all(|&b| b == 0));
        let boot = u16::from_le_bytes([f[FADT_BOOT_FLAGS], f[FADT_BOOT_FLAGS + 1]]);
        assert_eq!(boot, BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_NO_VGA);
        let facs = facs();
        assert_eq!(&facs[0..4], b"FACS");
        assert_eq!((u32_at(&facs, 4), facs[32]), (64, 2));
    }

    #[test]
    fn madt_matches_the_mp_table() {
        let m = madt(3);
        assert_eq!(u32_at(&m, 36), 0xfee0_0000);
        assert_eq!(u32_at(&m, 40), MADT_PCAT_COMPAT);
        let mut entries = Vec::new();
        let mut off = 44;
        while off < m.len() {
            let len = m[off + 1] as usize;
            assert!(len >= 2 && off + len <= m.len(), "entry at {off}");
            entries.push(m[off..off + len].to_vec());
            off += len;
        }
        assert_eq!(off, m.len());
        // CPUs 0..3 with APIC ids 0..3, enabled; I/O APIC id 3 at
        // 0xfec00000 from GSI 0; NMI on LINT1 of every CPU.
        for cpu in 0..3u8 {
            assert_eq!(entries[cpu as usize], [0, 8, cpu, cpu, 1, 0, 0, 0]);
        }
        assert_eq!(entries[3], [1, 12, 3, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        assert_eq!(entries[4], [4, 6, 0xff, 0, 0, 1]);
        assert_eq!(entries.len(), 5);
    }

    #[test]
    fn dsdt_names_s5() {
        let d = dsdt();
        // Name(_S5_, Package(4){ 5, 5, 0, 0 }) in AML.
        assert_eq!(
            &d[36..],
            &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 5, 0x0a, 5, 0, 0]
        );
        // What Linux writes to PM1a_CNT to power off: SLP_TYP(5) | SLP_EN,
        // keeping SCI_EN.
        let v =
            (u16::from(S5_SLEEP_TYPE) << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN | PM1_CNT_SCI_EN;
        assert_eq!(v, 0x3401);
        assert_eq!(v & PM1_CNT_SLP_TYP_MASK, 5 << 10);
    }

    #[test]
    fn written_into_guest_memory() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        assert_eq!(write_acpi_tables(&mem, 1), Ok(GuestAddress(RSDP_START)));
        let mut sig = [0u8; 8];
        mem.read_slice(&mut sig, GuestAddress(RSDP_START)).unwrap();
        assert_eq!(&sig, b"RSD PTR ");
        let small = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x8_0000)]).unwrap();
        assert_eq!(
            write_acpi_tables(&small, 1),
            Err(AcpiError::Write(RSDP_START))
        );
    }
}
