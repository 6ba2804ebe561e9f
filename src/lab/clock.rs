//! The lab kernel's clock under TCG: what it is told instead of calibrating.
//!
//! On QEMU's microvm machine there is no HPET and no ACPI PM timer, so the
//! lab kernel calibrates its TSC and its local APIC timer against PIT
//! interrupts. Under TCG those arrive late or coalesce whenever QEMU's vCPU
//! thread is descheduled, and about one lab boot in ten (measured: 1 of 10
//! on an idle 2-core host, every boot with the host's CPUs busy) ended with
//! "TSC unstable" and "APIC timer disabled due to verification failure":
//! jiffies-only timekeeping, a PIT tick, and nested guests that made no
//! progress for minutes (CI failures of the nested boot and the drills).
//!
//! TCG's guest TSC is the host's TSC (QEMU reads it with rdtsc), so the host
//! can measure its rate and pass it as `tsc_early_khz=`: the lab kernel then
//! skips TSC calibration, calibrates the APIC timer by polling the TSC, and
//! 10 of 10 boots came up with the TSC clocksource and high-resolution
//! timers.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the host TSC is measured: enough for an error near 50 ppm.
const MEASURE: Duration = Duration::from_millis(25);

/// The host TSC's rate in kHz, measured against the monotonic clock; `None`
/// where the host's TSC does not tick at a constant rate.
pub fn host_tsc_khz() -> Option<u64> {
    if !crate::host::cpu_has("constant_tsc") {
        return None;
    }
    let (t0, c0) = stamp()?;
    std::thread::sleep(MEASURE);
    let (t1, c1) = stamp()?;
    let ns = u64::try_from((t1 - t0).as_nanos()).ok()?;
    let khz = c1.checked_sub(c0)?.checked_mul(1_000_000)? / ns.max(1);
    // Anything outside 100 MHz..100 GHz is a measuring error, not a TSC.
    (100_000..100_000_000).contains(&khz).then_some(khz)
}

/// The kernel command-line word that hands the lab kernel its TSC rate, or
/// nothing where it cannot be measured (the kernel then calibrates).
/// Measured once per process: a matrix or the kill matrix boots many labs.
pub fn tsc_cmdline() -> String {
    static RATE: OnceLock<Option<u64>> = OnceLock::new();
    RATE.get_or_init(host_tsc_khz)
        .map(|khz| format!("tsc_early_khz={khz}"))
        .unwrap_or_default()
}

/// The monotonic clock and the TSC read together: a pair whose two TSC
/// reads bracket the clock read within 100k cycles (tens of µs), so a
/// preemption between the reads cannot skew the rate by milliseconds.
fn stamp() -> Option<(Instant, u64)> {
    (0..8).find_map(|_| {
        let before = rdtsc();
        let now = Instant::now();
        let after = rdtsc();
        let gap = after.checked_sub(before)?;
        (gap < 100_000).then_some((now, before + gap / 2))
    })
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads the time-stamp counter; it has no memory effects
    // and every x86_64 CPU has it.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tsc_rate_is_stable_between_two_measurements() {
        let (Some(a), Some(b)) = (host_tsc_khz(), host_tsc_khz()) else {
            return; // no constant TSC here: the lab kernel calibrates
        };
        let diff = a.abs_diff(b);
        assert!(
            diff * 1000 < a,
            "{a} kHz then {b} kHz: more than 0.1% apart"
        );
    }

    #[test]
    fn cmdline_word_names_the_rate() {
        let word = tsc_cmdline();
        assert!(
            word.is_empty() || word.starts_with("tsc_early_khz="),
            "{word}"
        );
    }
}
