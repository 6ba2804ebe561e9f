//! The kernel's own verdict on a drill, added to every drill's checks:
//! - `kernel-log-clean`: nothing the kernel logged while the drill ran (its
//!   process's exit included) is a complaint: WARN, BUG, oops, "Bad page",
//!   "Bad rss-counter", lockdep, KASAN/KFENCE/UBSAN, RCU stalls, hung tasks,
//!   refcount_t ([`kmsg`]);
//! - `kernel-taint-unchanged`: no taint bit was set while it ran (the taint
//!   of loading our own module happened before, so it is not counted);
//! - `no-leaked-pages`: every page frame its guest RAM used is free again,
//!   or someone else's, once its process is gone ([`leak`]).
//!
//! The runner marks the log and the taint before a drill's process starts
//! ([`KernelWatch::start`]) and judges after it ended ([`KernelWatch::judge`]).

pub mod kmsg;
pub mod leak;

use crate::drill::report::ktap::Report;
use crate::drill::verdict::{Outcome, Verdict};

const TAINTED: &str = "/proc/sys/kernel/tainted";

/// The letters of taint bits 0.. (Documentation/admin-guide/tainted-kernels.rst).
const TAINT_LETTERS: &[u8] = b"PFSRMBUDAWCIOELKXTN";

/// Taint bits in words: "W (bit 9), B (bit 5)".
pub fn taint_words(bits: u64) -> String {
    (0..64)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| match TAINT_LETTERS.get(b) {
            Some(&c) => format!("{} (bit {b})", c as char),
            None => format!("bit {b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_taint() -> Result<u64, String> {
    let s = std::fs::read_to_string(TAINTED).map_err(|e| format!("{TAINTED}: {e}"))?;
    s.trim().parse().map_err(|e| format!("{TAINTED}: {e}"))
}

/// Records before a drill needed to judge it after.
pub struct KernelWatch {
    kmsg: Result<kmsg::Kmsg, String>,
    taint: Result<u64, String>,
}

/// At most this many log records are quoted after the first complaint.
const QUOTED: usize = 6;

impl KernelWatch {
    /// Marks the log's end and reads the taint.
    pub fn start() -> Self {
        KernelWatch {
            kmsg: kmsg::Kmsg::from_now().map_err(|e| format!("/dev/kmsg: {e}")),
            taint: read_taint(),
        }
    }

    /// Adds the kernel's verdict to `v`; `frames` are the page frames the
    /// drill's guest RAM used.
    pub fn judge_verdict(&mut self, v: &mut Verdict, frames: &[u64]) {
        // The leak check first: it waits for the drill's folios to be
        // freed. Then the log, once the dead process's mm is surely gone.
        let mut leak_verdict = Verdict::default();
        judge_leaks(&mut leak_verdict, frames);
        settle_mm_teardown();
        match self
            .kmsg
            .as_mut()
            .map_err(|e| e.clone())
            .and_then(|k| k.read_new().map_err(|e| format!("/dev/kmsg: {e}")))
        {
            Ok((records, lost)) => {
                let first = records.iter().position(kmsg::is_complaint);
                let quoted = first.map(|i| {
                    records[i..]
                        .iter()
                        .filter(|r| r.facility == 0)
                        .take(QUOTED)
                        .map(|r| r.text.trim())
                        .collect::<Vec<_>>()
                        .join(" | ")
                });
                let n = records.iter().filter(|r| kmsg::is_complaint(r)).count();
                v.check(
                    "kernel-log-clean",
                    first.is_none(),
                    format!(
                        "the kernel complained in its log ({n} lines): {}",
                        quoted.unwrap_or_default()
                    ),
                );
                if lost > 0 {
                    v.note(format!(
                        "the kernel log ring overwrote {lost} records before they were read"
                    ));
                }
            }
            Err(e) => v.note(format!("kernel log not read: {e}")),
        }
        match (self.taint.clone(), read_taint()) {
            (Ok(before), Ok(after)) => {
                let new = after & !before;
                v.check(
                    "kernel-taint-unchanged",
                    new == 0,
                    format!(
                        "the kernel tainted itself while the drill ran: {} (tainted {before} -> {after})",
                        taint_words(new)
                    ),
                );
            }
            (Err(e), _) | (_, Err(e)) => v.note(format!("taint not read: {e}")),
        }
        v.append(leak_verdict);
    }

    /// Adds the kernel's verdict to a report: a judged drill gets the
    /// checks; a complaint during a skipped drill turns it into a failed
    /// one (a skip never hides the kernel's complaint); an error or a
    /// timeout keeps its outcome, with the complaints in its reason.
    pub fn judge(mut self, r: &mut Report, frames: &[u64]) {
        let mut kv = Verdict::default();
        self.judge_verdict(&mut kv, frames);
        match &mut r.outcome {
            Outcome::Judged(v) => {
                v.append(kv);
            }
            Outcome::Skip(why) if !kv.passed() => {
                kv.note(format!("the drill skipped: {why}"));
                r.outcome = Outcome::Judged(kv);
            }
            Outcome::Skip(_) => {}
            Outcome::Error(e) => {
                for c in kv.failures() {
                    e.push_str(&format!("; {}: {}", c.name, c.detail));
                }
            }
            Outcome::Timeout(_) => {}
        }
    }
}

/// `no-leaked-pages` for the drill's `frames` (none: nothing to judge).
fn judge_leaks(v: &mut Verdict, frames: &[u64]) {
    if frames.is_empty() {
        return;
    }
    match leak::leaked(frames) {
        Ok(held) => {
            let list: Vec<String> = held
                .iter()
                .take(8)
                .map(|(pfn, flags)| format!("pfn {pfn:#x} (kpageflags {flags:#x})"))
                .collect();
            v.check(
                "no-leaked-pages",
                held.is_empty(),
                format!(
                    "{} of the {} page frames the drill's guest RAM used are still anonymous folios that nobody maps after its process ended (a reference was never dropped): {}",
                    held.len(),
                    frames.len(),
                    list.join(", ")
                ),
            );
            v.figure("frames_checked_for_leaks", frames.len() as f64);
        }
        Err(e) => v.note(format!("leaks not checked: /proc/kpageflags: {e}")),
    }
}

/// An exited process's mm is freed (and its RSS counters checked, "Bad
/// rss-counter") only when its last reference goes, and a CPU that ran it
/// may keep one (a lazy TLB reference) until it next switches tasks: with
/// two CPUs the complaint came after the log was read. Running on every
/// CPU once makes each switch.
fn settle_mm_teardown() {
    use crate::drill::hostmm::{allowed_cpus, pin_this_thread, set_this_thread_cpus};
    let Ok(cpus) = allowed_cpus() else {
        return;
    };
    for &cpu in &cpus {
        if pin_this_thread(cpu).is_ok() {
            std::thread::yield_now();
        }
    }
    let _ = set_this_thread_cpus(&cpus);
    std::thread::sleep(std::time::Duration::from_millis(20));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_in_words() {
        assert_eq!(taint_words(1 << 9 | 1 << 5), "B (bit 5), W (bit 9)");
        assert_eq!(taint_words(1 << 40), "bit 40");
        assert_eq!(taint_words(0), "");
    }

    #[test]
    fn a_skip_with_a_clean_kernel_stays_a_skip() {
        let mut r = Report {
            name: "x".into(),
            outcome: Outcome::Skip("no module".into()),
            seconds: 0.0,
        };
        KernelWatch {
            kmsg: Err("not here".into()),
            taint: Err("not here".into()),
        }
        .judge(&mut r, &[]);
        assert_eq!(r.outcome, Outcome::Skip("no module".into()));
    }
}
