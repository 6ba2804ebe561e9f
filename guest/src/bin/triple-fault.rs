#![no_std]
#![no_main]
//! Raises #UD with no IDT: the CPU shuts down (triple fault).
use mmuvisor_guest::{payload_main, Args};

fn crash(_: Args) -> u64 {
    // SAFETY: crashing the guest is the point; the VMM must report it.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    0
}
payload_main!(crash);
