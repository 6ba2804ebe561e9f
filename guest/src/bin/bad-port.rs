#![no_std]
#![no_main]
//! Writes to a port no device claims: the VMM must end the VM and say so.
use mmuvisor_guest::{payload_main, Args};

fn bad_port(_: Args) -> u64 {
    // SAFETY: port I/O exits to the VMM.
    unsafe { core::arch::asm!("out dx, al", in("dx") 0x1234u16, in("al") 0x55u8, options(nomem, nostack)) };
    0
}
payload_main!(bad_port);
