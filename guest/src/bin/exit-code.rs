#![no_std]
#![no_main]
use mmuvisor_guest::{debug_exit, payload_main, Args};

/// Ends the VM with arg0 as mmuvisor's exit status.
fn exit_code(a: Args) -> u64 {
    debug_exit((a.a[0] & 0xff) as u8)
}
payload_main!(exit_code);
