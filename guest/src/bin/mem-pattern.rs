#![no_std]
#![no_main]
//! Fills arg0 data pages (default 256) with a pattern from seed arg1, reads
//! them back, reports SYNC(1, checksum, mismatches).
use core::ptr::{read_volatile, write_volatile};
use mmuvisor_guest::{guest_assert, payload_main, sync, word_ptr, Args, PAGE_SIZE};

fn pattern(seed: u64, page: u64, w: u64) -> u64 {
    (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(page * 512 + w + 1)
}

fn mem_pattern(a: Args) -> u64 {
    let pages = if a.a[0] == 0 { 256 } else { a.a[0] };
    let seed = a.a[1];
    let words = PAGE_SIZE / 8;
    for p in 0..pages {
        for w in 0..words {
            // SAFETY: the host sizes RAM for `pages` data pages.
            unsafe { write_volatile(word_ptr(p, w), pattern(seed, p, w)) }
        }
    }
    let (mut sum, mut bad) = (0u64, 0u64);
    for p in 0..pages {
        for w in 0..words {
            // SAFETY: as above.
            let v = unsafe { read_volatile(word_ptr(p, w)) };
            sum = sum.wrapping_add(v);
            bad += (v != pattern(seed, p, w)) as u64;
        }
    }
    sync(1, sum, bad);
    guest_assert!(bad == 0, "{} words of {} pages read back wrong", bad, pages);
    0
}
payload_main!(mem_pattern);
