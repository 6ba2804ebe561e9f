//! Where a payload guest's image, stacks and data pages are (guest physical
//! addresses; the VMM identity-maps the first 4 GiB).

/// The page size payloads address data in.
pub const PAGE_SIZE: u64 = 4096;
/// Payload images are loaded in [PAYLOAD_IMAGE_START, PAYLOAD_IMAGE_END).
pub const PAYLOAD_IMAGE_START: u64 = 0x100000;
pub const PAYLOAD_IMAGE_END: u64 = 0x180000;
/// vCPU i's stack top is PAYLOAD_STACK_TOP - i * PAYLOAD_STACK_SIZE.
pub const PAYLOAD_STACK_TOP: u64 = 0x200000;
pub const PAYLOAD_STACK_SIZE: u64 = 0x4000;
/// As many vCPUs as there are stacks between the image and the data.
pub const PAYLOAD_MAX_VCPUS: u64 = (PAYLOAD_STACK_TOP - PAYLOAD_IMAGE_END) / PAYLOAD_STACK_SIZE;
/// First data page that payloads read and write (2 MiB aligned, so data
/// page 0 starts a huge page).
pub const DATA_START: u64 = 0x200000;
/// COM1's base port, polled by payloads (THR at +0, LSR at +5).
pub const COM1_PORT: u16 = 0x3f8;

/// GPA of data page `page`.
pub const fn page_gpa(page: u64) -> u64 {
    DATA_START + page * PAGE_SIZE
}
