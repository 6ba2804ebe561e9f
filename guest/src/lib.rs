//! The guest side of mmuvisor's payload ABI (docs/design.md): entry, COM1
//! output, ucalls, debug exit, and the small runtime a no_std payload needs.
#![no_std]

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};

pub mod interp;

pub use mmuvisor_abi::layout::{DATA_START, PAGE_SIZE};
use mmuvisor_abi::layout::{page_gpa, COM1_PORT};
use mmuvisor_abi::ucall::{UcallNr, DEBUG_EXIT_PORT};

// The VMM enters with RSP 16-byte aligned; the C ABI wants RSP+8 aligned at
// a function's first instruction, as after a call. Registers carry the
// arguments untouched.
global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    call payload_main",
    "2:  hlt",
    "    jmp 2b",
);

/// The payload's arguments, from the entry registers.
#[derive(Clone, Copy)]
pub struct Args {
    pub vcpu: u64,
    pub nr_vcpus: u64,
    pub a: [u64; 4],
}

extern "Rust" {
    fn payload(args: Args) -> u64;
}

#[no_mangle]
extern "C" fn payload_main(vcpu: u64, nr_vcpus: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> ! {
    // SAFETY: every payload binary defines `payload` with this signature.
    let value = unsafe { payload(Args { vcpu, nr_vcpus, a: [a0, a1, a2, a3] }) };
    done(value)
}

/// Defines the payload's main function.
#[macro_export]
macro_rules! payload_main {
    ($f:ident) => {
        #[no_mangle]
        fn payload(args: $crate::Args) -> u64 {
            $f(args)
        }
    };
}

fn outb(port: u16, value: u8) {
    // SAFETY: port I/O exits to the VMM; it touches no guest memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) }
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as outb.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) }
    value
}

/// COM1, polled.
pub struct Serial;

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            while inb(COM1_PORT + 5) & 0x20 == 0 {}
            outb(COM1_PORT, b);
        }
        Ok(())
    }
}

/// Serialises whole lines from several vCPUs.
static SERIAL_LOCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Writes one line on COM1 without interleaving with other vCPUs' lines.
pub fn print_line(args: fmt::Arguments) {
    use core::sync::atomic::Ordering;
    while SERIAL_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let _ = Serial.write_fmt(args);
    let _ = Serial.write_str("\n");
    SERIAL_LOCK.store(false, Ordering::Release);
}

/// println! on COM1, one whole line at a time.
#[macro_export]
macro_rules! println {
    ($($t:tt)*) => {
        $crate::print_line(format_args!($($t)*))
    };
}

/// A ucall (mmuvisor_abi::ucall): EAX = number, RDI/RSI/RDX = arguments,
/// RAX = the host's reply. The port is the ABI's UCALL_PORT.
pub fn ucall(nr: UcallNr, a: u64, b: u64, c: u64) -> u64 {
    let reply: u64;
    // SAFETY: the port write exits to the VMM, which reads the registers and
    // may set RAX; no guest memory is touched.
    unsafe {
        asm!("out {port}, eax", port = const mmuvisor_abi::ucall::UCALL_PORT, inout("rax") nr as u64 => reply, in("rdi") a, in("rsi") b, in("rdx") c, options(nostack));
    }
    reply
}

/// SYNC(stage, v0, v1): waits for the host; returns its reply.
pub fn sync(stage: u64, v0: u64, v1: u64) -> u64 {
    ucall(UcallNr::Sync, stage, v0, v1)
}

/// DONE(value): this vCPU has finished.
pub fn done(value: u64) -> ! {
    ucall(UcallNr::Done, value, 0, 0);
    loop {
        // SAFETY: hlt only stops this vCPU.
        unsafe { asm!("hlt", options(nomem, nostack)) }
    }
}

/// Ends the VM with `code` as mmuvisor's exit status.
pub fn debug_exit(code: u8) -> ! {
    outb(DEBUG_EXIT_PORT, code);
    done(code as u64)
}

struct Buf {
    bytes: [u8; 256],
    len: usize,
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// ABORT(message): the VM ends, failed.
pub fn fail(line: u32, args: fmt::Arguments) -> ! {
    let mut buf = Buf { bytes: [0; 256], len: 0 };
    let _ = buf.write_fmt(args);
    ucall(UcallNr::Abort, buf.bytes.as_ptr() as u64, buf.len as u64, line as u64);
    done(u64::MAX)
}

/// Fails the guest with a formatted message when `cond` is false.
#[macro_export]
macro_rules! guest_assert {
    ($cond:expr, $($t:tt)*) => {
        if !$cond {
            $crate::fail(line!(), format_args!($($t)*));
        }
    };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let line = info.location().map(|l| l.line()).unwrap_or(0);
    fail(line, format_args!("panic: {}", info.message()))
}

/// The u64 at offset `word` of data page `page`.
pub fn word_ptr(page: u64, word: u64) -> *mut u64 {
    (page_gpa(page) + word * 8) as *mut u64
}

/// A spin barrier for `n` vCPUs over a counter in guest memory.
pub fn barrier(count: &core::sync::atomic::AtomicU64, n: u64) {
    use core::sync::atomic::Ordering;
    count.fetch_add(1, Ordering::SeqCst);
    while count.load(Ordering::SeqCst) < n {
        core::hint::spin_loop();
    }
}

// The compiler may call these; there is no libc. Written with string
// instructions so they cannot turn into calls to themselves.
#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees valid, non-overlapping ranges.
    asm!("rep movsb", inout("rdi") dst => _, inout("rsi") src => _, inout("rcx") n => _, options(nostack));
    dst
}

#[no_mangle]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        return memcpy(dst, src, n);
    }
    // SAFETY: overlapping with dst above src: copy backwards.
    asm!("std", "rep movsb", "cld",
        inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, inout("rcx") n => _, options(nostack));
    dst
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees a valid range.
    asm!("rep stosb", inout("rdi") dst => _, inout("rcx") n => _, in("al") value as u8, options(nostack));
    dst
}

#[no_mangle]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees valid ranges.
        let (x, y) = (core::ptr::read_volatile(a.add(i)), core::ptr::read_volatile(b.add(i)));
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

#[no_mangle]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

/// libcore is built with unwinding tables that name this symbol; payloads
/// abort on panic, so it is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}
