//! The host-driven interpreter (docs/design.md, "The interp payload"): each
//! vCPU reports the result of its last command in a SYNC and executes the
//! command word the host replies with.

use crate::{guest_assert, sync, word_ptr, PAGE_SIZE};
use core::ptr::{read_volatile, write_volatile};
use mmuvisor_abi::interp::{decode, fill_word, Op};

const WORDS: u64 = PAGE_SIZE / 8;

fn fill(page: u64, seed: u64) {
    for w in 0..WORDS {
        // SAFETY: page was checked against the RAM size.
        unsafe { write_volatile(word_ptr(page, w), fill_word(seed as u32, w)) }
    }
}

fn check(page: u64, seed: u64) -> u64 {
    (0..WORDS)
        // SAFETY: as fill.
        .filter(|&w| unsafe { read_volatile(word_ptr(page, w)) } != fill_word(seed as u32, w))
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
    let mut last_op = 0;
    loop {
        let cmd = sync(stage, result, last_op);
        stage = 1;
        let (code, page, arg) = decode(cmd);
        last_op = code as u64;
        let op = Op::from_code(code);
        guest_assert!(op.is_some(), "interp: unknown op {}", code);
        let Some(op) = op else { unreachable!() };
        let (page, arg) = (page as u64, arg as u64);
        let span = op.span(arg as u32);
        guest_assert!(
            op == Op::Exit || page.checked_add(span).is_some_and(|end| end <= max_pages),
            "interp: pages {}..{} outside the {} data pages",
            page,
            page + span,
            max_pages
        );
        let counter = word_ptr(page, 0);
        // SAFETY (all arms): the page range was checked above.
        result = match op {
            Op::Exit => return 0,
            Op::Read => unsafe { read_volatile(counter) },
            Op::Write => unsafe {
                let old = read_volatile(counter);
                write_volatile(counter, arg);
                old
            },
            Op::AtomicAdd => atomic_add(page, arg),
            Op::IncLoop => {
                let mut v = 0;
                for _ in 0..arg {
                    unsafe {
                        v = read_volatile(counter) + 1;
                        write_volatile(counter, v);
                    }
                }
                v
            }
            Op::AtomicIncLoop => {
                for _ in 0..arg {
                    // SAFETY: a locked increment on a checked data page.
                    unsafe { core::arch::asm!("lock inc qword ptr [{p}]", p = in(reg) counter, options(nostack)) }
                }
                unsafe { read_volatile(counter) }
            }
            Op::Fill => {
                fill(page, arg);
                0
            }
            Op::Check => check(page, arg),
            Op::FillRange => {
                (page..page + arg).for_each(|p| fill(p, p));
                0
            }
            Op::CheckRange => (page..page + arg).map(|p| check(p, p)).sum(),
        };
    }
}
