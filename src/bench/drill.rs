//! `mmuvisor bench revoke` and `mmuvisor bench repeat`: figures, no asserts.

use super::percentile;
use crate::clock::now_ns;
use crate::drill::guest::Op;
use crate::drill::report::ktap::Report;
use crate::drill::runner;
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillConfig, DrillError, TraceMode};
use crate::drill::verdict::Outcome;
use crate::drill::{Backend, Ctx};
use crate::host_mapping::HostMapping;
use crate::notifier_client::NotifierClient;

fn line(name: &str, mut v: Vec<u64>) -> (u64, u64) {
    let (p50, p99) = (percentile(&mut v, 50.0), percentile(&mut v, 99.0));
    println!(
        "{name:<34} {:>6} {:>10.1} {:>10.1}",
        v.len(),
        p50 as f64 / 1e3,
        p99 as f64 / 1e3
    );
    (p50, p99)
}

/// Revocation round trip: conversion, then the guest touches the page; time
/// from the guest command to its report (PTE present again), against the
/// same guest step without a conversion and a plain process page.
pub fn revoke(rounds: usize, cfg: &DrillConfig) -> Result<(), String> {
    if let Some(why) = runner::missing(crate::drill::MODULE) {
        return Err(format!("bench revoke: {why} (run it in the lab)"));
    }
    let ctx = Ctx {
        cfg: cfg.clone(),
        backend: Backend::Kvm,
    };
    let mut s = ctx
        .start(GuestSpec::of(cfg), TraceMode::Off)
        .map_err(|e| e.to_string())?;
    let mut dev = ctx.device(&s).map_err(|e| e.to_string())?;
    let page = 1;
    let hva = s.hva(page).map_err(|e| e.to_string())?;
    s.step(0, Op::Write(1), page).map_err(|e| e.to_string())?;
    let (mut guest, mut plain_guest, mut plain_proc) = (Vec::new(), Vec::new(), Vec::new());
    let mut not_present_again = 0;
    for _ in 0..rounds {
        let t = now_ns();
        s.step(0, Op::AtomicAdd(1), page)
            .map_err(|e| e.to_string())?;
        plain_guest.push(now_ns() - t);
        dev.make_exclusive(hva).map_err(|e| e.to_string())?;
        // (a round where the guest did not revoke would convert nothing)
        let t = now_ns();
        s.step(0, Op::AtomicAdd(1), page)
            .map_err(|e| e.to_string())?;
        guest.push(now_ns() - t);
        if !s.pagemap(page).map_err(|e| e.to_string())?.present() {
            not_present_again += 1;
        }
    }
    drop(dev);
    // A plain process page, same module, same run.
    let c = NotifierClient::open().map_err(|e| e.to_string())?;
    let page = HostMapping::private(4096).map_err(|e| format!("mmap: {e}"))?;
    let p = page.as_ptr();
    let res = (|| -> Result<(), String> {
        c.attach(p as u64, 4096).map_err(|e| e.to_string())?;
        for _ in 0..rounds {
            // SAFETY: our page; fault it in writable before converting.
            unsafe { std::ptr::write_volatile(p as *mut u64, 1) };
            c.make_exclusive(p as u64, 1).map_err(|e| e.to_string())?;
            let t = now_ns();
            // SAFETY: as above; this touch revokes the device.
            unsafe { std::ptr::write_volatile(p as *mut u64, 2) };
            plain_proc.push(now_ns() - t);
        }
        Ok(())
    })();
    drop(page);
    res?;
    println!("# bench revoke: {rounds} rounds; times in µs");
    println!("{:<34} {:>6} {:>10} {:>10}", "case", "n", "p50", "p99");
    let (g50, g99) = line("guest touch after make-exclusive", guest);
    let (b50, _) = line("guest touch, no conversion", plain_guest);
    let (p50, p99) = line("process touch after make-exclusive", plain_proc);
    println!("# guest revocation cost p50 {:.1} µs (minus plain guest step); vs process: p50 x{:.2}, p99 x{:.2}",
        g50.saturating_sub(b50) as f64 / 1e3,
        g50 as f64 / p50.max(1) as f64,
        g99 as f64 / p99.max(1) as f64);
    if not_present_again > 0 {
        println!("# WARNING: {not_present_again} rounds left the page not present after the guest's touch");
    }
    s.finish().map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs every selected drill `times` times, each judged as `drill` judges
/// it, and prints verdict stability.
pub fn repeat(names: &[String], times: usize, cfg: &DrillConfig) -> Result<i32, String> {
    let drills = runner::select(names)?;
    println!("# bench repeat: {times} runs per drill");
    println!(
        "{:<26} {:>5} {:>5} {:>5} {:>5} {:>9} {:>7}",
        "drill", "pass", "fail", "skip", "error", "mean s", "stable"
    );
    let mut unstable = 0;
    for d in drills {
        let mut c = [0usize; 4];
        let mut secs = 0.0;
        let mut first_fail: Option<String> = None;
        for i in 0..times {
            let mut cfg = cfg.clone();
            cfg.seed = cfg.seed.wrapping_add(i as u64);
            // As `drill` runs it: a process of its own, then the kernel's
            // verdict (log, taint, leaked pages).
            let r: Report = runner::run_checked(d, &cfg, None, None);
            secs += r.seconds;
            let k = match &r.outcome {
                Outcome::Judged(v) if v.passed() => 0,
                Outcome::Judged(v) => {
                    first_fail.get_or_insert_with(|| {
                        v.failures()
                            .map(|c| c.detail.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                    1
                }
                Outcome::Skip(_) => 2,
                Outcome::Error(e) => {
                    first_fail.get_or_insert_with(|| e.clone());
                    3
                }
                Outcome::Timeout(secs) => {
                    first_fail.get_or_insert_with(|| format!("timeout after {secs} s"));
                    3
                }
            };
            c[k] += 1;
            if k == 2 {
                break; // a skip does not change between runs
            }
        }
        let runs: usize = c.iter().sum();
        let stable = c.iter().filter(|&&n| n > 0).count() <= 1;
        if !stable {
            unstable += 1;
        }
        println!(
            "{:<26} {:>5} {:>5} {:>5} {:>5} {:>9.3} {:>7}",
            d.name,
            c[0],
            c[1],
            c[2],
            c[3],
            secs / runs.max(1) as f64,
            if stable { "yes" } else { "NO" }
        );
        if let Some(f) = first_fail {
            println!("#   first failure: {f}");
        }
    }
    println!("# {unstable} drills with unstable verdicts");
    Ok(0)
}

impl From<DrillError> for String {
    fn from(e: DrillError) -> String {
        e.to_string()
    }
}
