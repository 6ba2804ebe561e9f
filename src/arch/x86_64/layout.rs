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
/// Payload images must fit in [HIMEM_START, PAYLOAD_IMAGE_END).
pub const PAYLOAD_IMAGE_END: u64 = 0x180000;
/// vCPU i's stack top is PAYLOAD_STACK_TOP - i * PAYLOAD_STACK_SIZE.
pub const PAYLOAD_STACK_TOP: u64 = 0x200000;
pub const PAYLOAD_STACK_SIZE: u64 = 0x4000;
pub const PAYLOAD_MAX_VCPUS: u64 = (PAYLOAD_STACK_TOP - PAYLOAD_IMAGE_END) / PAYLOAD_STACK_SIZE;
/// First data page that payload tests read and write (2 MiB aligned).
pub const PAYLOAD_DATA_START: u64 = 0x200000;
/// The 32-bit MMIO hole: RAM above this moves to 4 GiB.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// ucall port (`out 0xe0, eax`) and debug-exit port (`out 0xf4, al`).
pub const UCALL_PORT: u16 = 0xe0;
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// ACPI PM1a event block (4 ports) then PM1a control block (2 ports), in
/// the FADT (acpi.rs) and on the port bus (devices::acpi_pm).
pub const ACPI_PM_PORT: u16 = 0x600;
