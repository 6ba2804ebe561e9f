//! Guest physical memory layout shared by the boot code, loaders and payloads
//! (see docs/design.md).

/// Boot GDT.
pub const BOOT_GDT_START: u64 = 0x500;
/// Boot IDT (empty: any exception triple-faults).
pub const BOOT_IDT_START: u64 = 0x520;
/// Linux zero page (struct boot_params).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Identity page tables: PML4, PDPT, then four page directories (4 GiB, 2 MiB pages).
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line we accept (the boot protocol may allow less).
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// The MP table sits in the EBDA-like area below 640 KiB.
pub const MPTABLE_START: u64 = 0x9fc00;
/// End of conventional low memory; [EBDA_START, HIMEM_START) is reserved in e820.
pub const EBDA_START: u64 = 0x9fc00;
/// Where the kernel (and payload images) are loaded.
pub const HIMEM_START: u64 = 0x100000;
/// The payload guests' part of the layout (images, stacks, data pages).
pub use mmuvisor_abi::layout::{
    DATA_START as PAYLOAD_DATA_START, PAYLOAD_IMAGE_END, PAYLOAD_IMAGE_START, PAYLOAD_MAX_VCPUS,
    PAYLOAD_STACK_SIZE, PAYLOAD_STACK_TOP,
};
/// The 32-bit MMIO hole: RAM above this moves to 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// ucall port and debug-exit port of the payload ABI.
pub use mmuvisor_abi::ucall::{DEBUG_EXIT_PORT, UCALL_PORT};
/// ACPI PM1a event block (4 ports) then PM1a control block (2 ports), in
/// the FADT (acpi.rs) and on the port bus (devices::acpi_pm).
pub const ACPI_PM_PORT: u16 = 0x600;
