#![no_std]
#![no_main]
//! Host-driven interpreter; arg0 = number of data pages (default: 64 MiB RAM).
use mmuvisor_guest::{interp, payload_main, Args, DATA_START, PAGE_SIZE};

fn run(a: Args) -> u64 {
    let pages = if a.a[0] == 0 { (64 << 20) - DATA_START } else { a.a[0] * PAGE_SIZE } / PAGE_SIZE;
    interp::run(pages)
}
payload_main!(run);
