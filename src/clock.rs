//! The one clock every record is stamped with: `CLOCK_MONOTONIC` in ns,
//! which the lab's tracefs instances also use (`trace_clock` mono), so guest
//! reports, notifier events and KVM trace events compare directly.

/// Reads `CLOCK_MONOTONIC` in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
