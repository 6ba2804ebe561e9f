//! The host-driven interpreter (docs/design.md, "The interp payload"): each
//! vCPU reports the result of its last command in a SYNC and executes the
//! command word the host replies with.

use crate::{guest_assert, sync, word_ptr, PAGE_SIZE};
use core::ptr::{read_volatile, write_volatile};

pub const EXIT: u64 = 0;
pub const READ: u64 = 1;
pub const WRITE: u64 = 2;
pub const ATOMIC_ADD: u64 = 3;
pub const INC_LOOP: u64 = 4;
pub const ATOMIC_INC_LOOP: u64 = 5;
pub const FILL: u64 = 6;
pub const CHECK: u64 = 7;
pub const FILL_RANGE: u64 = 8;
pub const CHECK_RANGE: u64 = 9;

const WORDS: u64 = PAGE_SIZE / 8;

fn fill(page: u64, seed: u64) {
    for w in 0..WORDS {
        // SAFETY: page was checked against the RAM size.
        unsafe { write_volatile(word_ptr(page, w), (seed << 32) ^ w) }
    }
}

fn check(page: u64, seed: u64) -> u64 {
    (0..WORDS)
        // SAFETY: as fill.
        .filter(|&w| unsafe { read_volatile(word_ptr(page, w)) } != (seed << 32) ^ w)
        .count() as u64
}

fn atomic_add(page: u64, n: u64) -> u64 {
    let ptr = word_ptr(page, 0);
    let mut old = n;
    // SAFETY: a locked add on a checked data page.
    unsafe { core::arch::asm!("lock xadd [{p}], {v}", p = in(reg) ptr, v = inout(reg) old, options(nostack)) }
    old
}

/// Runs commands until EXIT. `max_pages` bounds every page index.
pub fn run(max_pages: u64) -> u64 {
    let mut stage = 0;
    let mut result = 0;
    let mut op = 0;
    loop {
        let cmd = sync(stage, result, op);
        stage = 1;
        op = cmd >> 56;
        let page = (cmd >> 32) & 0xff_ffff;
        let arg = cmd & 0xffff_ffff;
        guest_assert!(op <= CHECK_RANGE, "interp: unknown op {}", op);
        let span = if matches!(op, FILL_RANGE | CHECK_RANGE) { arg } else { 1 };
        guest_assert!(
            op == EXIT || page.checked_add(span).is_some_and(|end| end <= max_pages),
            "interp: pages {}..{} outside the {} data pages",
            page,
            page + span,
            max_pages
        );
        let counter = word_ptr(page, 0);
        // SAFETY (all arms): the page range was checked above.
        result = match op {
            EXIT => return 0,
            READ => unsafe { read_volatile(counter) },
            WRITE => unsafe {
                let old = read_volatile(counter);
                write_volatile(counter, arg);
                old
            },
            ATOMIC_ADD => atomic_add(page, arg),
            INC_LOOP => {
                let mut v = 0;
                for _ in 0..arg {
                    unsafe {
                        v = read_volatile(counter) + 1;
                        write_volatile(counter, v);
                    }
                }
                v
            }
            ATOMIC_INC_LOOP => {
                for _ in 0..arg {
                    // SAFETY: a locked increment on a checked data page.
                    unsafe { core::arch::asm!("lock inc qword ptr [{p}]", p = in(reg) counter, options(nostack)) }
                }
                unsafe { read_volatile(counter) }
            }
            FILL => {
                fill(page, arg);
                0
            }
            CHECK => check(page, arg),
            FILL_RANGE => {
                (page..page + arg).for_each(|p| fill(p, p));
                0
            }
            CHECK_RANGE => (page..page + arg).map(|p| check(p, p)).sum(),
            _ => unreachable!("op {} was checked above", op),
        };
    }
}
