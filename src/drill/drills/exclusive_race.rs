//! exclusive-race: host threads convert while vCPUs fault and write, on
//! many pages at once, checked every round. It targets KVM installing a
//! mapping from a page fault that raced an invalidation (the
//! mmu_invalidate_seq / retry check): a vCPU's fault resolves the pfn (its
//! GUP takes the page back from the device), a host thread converts the
//! page again before the fault installs its SPTE, and the guest then writes
//! through a mapping of a page the device holds exclusively.
//!
//! Each round of a host thread: make-exclusive on one page, two device
//! reads some time apart; both succeeding with different values means a
//! guest store landed while the device held the page.
//!
//! The race must have happened: a round in which a device read found the
//! page revoked is a guest access that overlapped the device's hold (only
//! the guest touches these pages). The drill counts them, draws the first
//! rounds on the timeline, and is an error when none overlapped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::drill::exclusive::pages;
use crate::drill::guest::Op;
use crate::drill::hostmm::{allowed_cpus, pin_this_thread, set_this_thread_cpus};
use crate::drill::report::timeline::{Lane, Timeline};
use crate::drill::session::{host_err, DrillError, DrillResult, GuestSpec, TraceMode};
use crate::drill::verdict::Verdict;
use crate::drill::Ctx;
use crate::notifier_client::{Access, AccessOp, NotifierClient};

/// Pages raced (one host thread each; vCPU v writes pages v, v + vcpus, ...).
const PAGES: u64 = 4;
/// How long the race runs when nothing goes wrong.
const DURATION: Duration = Duration::from_secs(15);
/// Between a converter's two reads of the page it holds.
const PAUSE: Duration = Duration::from_micros(50);
/// Increments per guest command (short, so vCPUs move between pages).
const LOOPS: u32 = 20_000;

/// Rounds drawn on the timeline (per converter).
const DRAWN: usize = 100;

#[derive(Default)]
struct Tally {
    conversions: u64,
    rounds: u64,
    /// Rounds where the guest took the page back while the device held it.
    overlaps: u64,
    /// (page, start, end, overlapped) of the first rounds, for the timeline.
    drawn: Vec<(u64, u64, u64, bool)>,
    /// (page, first read, second read) of the first violations.
    violations: Vec<(u64, u64, u64)>,
    errors: Vec<String>,
}

fn converter(
    dev: NotifierClient,
    hvas: Vec<(u64, u64)>,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut local = Tally::default();
    'outer: while !stop.load(Ordering::Relaxed) {
        for &(page, hva) in &hvas {
            if stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            local.rounds += 1;
            let start = crate::clock::now_ns();
            match dev.make_exclusive(hva, 1) {
                Ok(n) => local.conversions += n,
                Err(e) if e.errno() == Some(libc::EBUSY) => continue,
                Err(e) => {
                    local.errors.push(format!("make-exclusive: {e}"));
                    break 'outer;
                }
            }
            // Short sleeps: each wake-up may preempt a vCPU thread in the
            // middle of its fault, which is the window this drill is for.
            let r1 = dev.device_access(hva, AccessOp::Read);
            std::thread::sleep(PAUSE);
            let r2 = dev.device_access(hva, AccessOp::Read);
            let overlapped = matches!(r1, Ok(Access::Revoked)) || matches!(r2, Ok(Access::Revoked));
            local.overlaps += overlapped as u64;
            if local.drawn.len() < DRAWN {
                local
                    .drawn
                    .push((page, start, crate::clock::now_ns(), overlapped));
            }
            if let (Ok(Access::Done(a)), Ok(Access::Done(b))) = (&r1, &r2) {
                if a != b {
                    local.violations.push((page, *a, *b));
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    if let Ok(mut t) = tally.lock() {
        t.conversions += local.conversions;
        t.rounds += local.rounds;
        t.overlaps += local.overlaps;
        t.drawn.extend(local.drawn);
        t.violations.extend(local.violations);
        t.errors.extend(local.errors);
    }
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    // With two CPUs or more, the vCPUs (started from this thread, so they
    // inherit its CPU) run on the first and the converters on the second:
    // every overlap is then two CPUs running at the same instant.
    let cpus = allowed_cpus().map_err(host_err("sched_getaffinity"))?;
    let split = match cpus.as_slice() {
        [vcpu_cpu, conv_cpu, ..] => {
            pin_this_thread(*vcpu_cpu).map_err(host_err("sched_setaffinity"))?;
            Some((*vcpu_cpu, *conv_cpu))
        }
        _ => None,
    };
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::Off)?;
    // Opened for the skip and attach checks; the threads use their own.
    drop(ctx.device(&s)?);
    let n = PAGES.min(pages(&s, PAGES));
    let vcpus = s.nr_vcpus();
    for p in 0..n {
        s.step(0, Op::Write(0), p)?;
    }
    let regions = s.guest().regions();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut threads = Vec::new();
    for t in 0..n {
        let dev = NotifierClient::open().map_err(|e| DrillError::Host(e.to_string()))?;
        for r in &regions {
            dev.attach(r.hva, r.size)
                .map_err(|e| DrillError::Host(format!("attach: {e}")))?;
        }
        let hvas = vec![(t, s.hva(t)?)];
        let (stop, tally) = (stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            if let Some((_, cpu)) = split {
                if let Err(e) = pin_this_thread(cpu) {
                    if let Ok(mut t) = tally.lock() {
                        t.errors.push(format!("sched_setaffinity: {e}"));
                    }
                    return;
                }
            }
            converter(dev, hvas, stop, tally)
        }));
    }
    // vCPU v walks the pages v, v + vcpus, ...; every command is a burst of
    // atomic increments on one page.
    let mut incs = vec![0u64; n as usize];
    let mut next: Vec<u64> = (0..vcpus as u64).collect();
    let mut on: Vec<u64> = vec![0; vcpus];
    let t0 = Instant::now();
    let mut result = Ok(());
    'drive: while t0.elapsed() < DURATION && !stop.load(Ordering::Relaxed) {
        for v in 0..vcpus {
            if !s.busy(v) {
                let p = next[v] % n;
                if let Err(e) = s.issue(v, Op::AtomicIncLoop(LOOPS), p) {
                    result = Err(e);
                    break 'drive;
                }
                on[v] = p;
                next[v] += vcpus as u64;
            }
            match s.try_collect(v) {
                Ok(Some(_)) => incs[on[v] as usize] += LOOPS as u64,
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    break 'drive;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    if split.is_some() {
        set_this_thread_cpus(&cpus).map_err(host_err("sched_setaffinity"))?;
    }
    result?;
    for v in 0..vcpus {
        if s.busy(v) {
            s.collect(v)?;
            incs[on[v] as usize] += LOOPS as u64;
        }
    }
    let tally = std::mem::take(
        &mut *tally
            .lock()
            .map_err(|_| DrillError::Host("a converter thread panicked".into()))?,
    );
    if let Some(e) = tally.errors.first() {
        return Err(DrillError::Host(format!("converter thread: {e}")));
    }
    let secs = t0.elapsed().as_secs_f64();
    s.v.figure("seconds", secs);
    s.v.figure("rounds", tally.rounds as f64);
    s.v.figure("conversions", tally.conversions as f64);
    s.v.figure("guest_accesses_during_hold", tally.overlaps as f64);
    for &(page, start, end, overlapped) in &tally.drawn {
        let label = if overlapped {
            format!("convert p{page}: a guest access took it back during the hold")
        } else {
            format!("convert p{page}, held")
        };
        s.tl.span(Lane::Host, start, end, label);
    }
    s.v.figure("guest_increments", incs.iter().sum::<u64>() as f64);
    let res_ns = timer_resolution_ns();
    s.v.figure("timer_resolution_ns", res_ns as f64);
    if res_ns >= 1_000_000 {
        s.v.note(format!(
            "timers here resolve to {} us, so the converters' {} us pauses last a tick: the race window is opened far less often (in the lab, tsc=reliable gives high-resolution timers)",
            res_ns / 1000,
            PAUSE.as_micros()
        ));
    }
    // No overlap only says nothing raced when nothing went wrong either: a
    // kernel that never revokes (no notifier) shows no overlap but writes
    // through stale mappings, judged below.
    let no_overlap = tally.overlaps == 0 && tally.violations.is_empty();
    if tally.conversions == 0 || incs.iter().all(|&i| i == 0) || no_overlap {
        return Err(DrillError::Host(format!(
            "nothing raced: {} conversions, {} guest increments, {} guest accesses during a hold in {secs:.1} s",
            tally.conversions,
            incs.iter().sum::<u64>(),
            tally.overlaps
        )));
    }
    s.v.figure("cpus", cpus.len() as f64);
    let how = match (split, std::env::var(crate::drill::LAB_CPU_MODE_ENV).as_deref()) {
        (None, _) => "one CPU: vCPUs and converters took turns on it, so no overlap was simultaneous".to_string(),
        (Some((v, c)), Ok("tcg")) => format!(
            "vCPUs on CPU {v}, converters on CPU {c}, two lab CPUs that QEMU runs in turns on one host thread (single-threaded TCG): each overlap interleaved two CPUs at arbitrary instructions, not at the same instant"
        ),
        (Some((v, c)), _) => format!(
            "vCPUs on CPU {v}, converters on CPU {c}: each overlap was two CPUs running at once"
        ),
    };
    s.v.note(format!(
        "{} of {} rounds overlapped a guest access (the device lost the page while holding it); {how}",
        tally.overlaps, tally.rounds
    ));
    let detail = tally
        .violations
        .first()
        .map(|(p, a, b)| {
            format!(
                "page {p}: the device read {a:#x} then {b:#x} while it held the page exclusively: a guest store landed through a stale KVM mapping ({} violations, {} conversions in {secs:.1} s)",
                tally.violations.len(),
                tally.conversions
            )
        })
        .unwrap_or_default();
    s.v.check(
        "no-guest-write-while-exclusive",
        tally.violations.is_empty(),
        detail,
    );
    let mut lost = Vec::new();
    for p in 0..n {
        let got = s.step(0, Op::Read, p)?;
        if got != incs[p as usize] {
            lost.push(format!("page {p}: {got} != {}", incs[p as usize]));
        }
    }
    s.v.check(
        "nothing-lost-concurrent",
        lost.is_empty(),
        format!("counters after the race: {}", lost.join(", ")),
    );
    s.finish()
}

/// CLOCK_MONOTONIC's resolution: 1 ns with high-resolution timers, a tick
/// (e.g. 1 ms) without them.
fn timer_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
