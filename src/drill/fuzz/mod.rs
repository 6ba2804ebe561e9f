//! drill fuzz: random sequences of host and guest operations on a few guest
//! pages, each step checked against a reference model ([`model`]) of every
//! page: its value (read back by the guest, the VMM and the device), whether
//! the device holds it (QUERY, and the conversion's own checks: notifier,
//! KVM invalidation, SPTE zapped), and KVM's mapping against the host page
//! table's (a present SPTE must map the frame the host PTE maps,
//! [`kvm_maps_what_host_maps`]). Steps the model does not allow in the
//! current state are skipped, so any sub-sequence is a valid test.
//!
//! Each sequence runs in a VM of its own. On a failure the sequence is
//! shrunk ([`shrink`]) to the fewest steps that still fail the same check,
//! written to `fuzz-seed<N>.replay` in the current folder, and named in the
//! diagnostics; `drill fuzz --replay FILE` runs exactly that sequence again.
//! The seed (`--seed`) makes a run reproducible; `--time` bounds it.

mod model;
pub mod shrink;
mod step;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::{Expect, Migration, Model};
use step::{generate, Rng, Step, RACE_LOOPS};

use crate::drill::device::{DeviceError, ExclusiveDevice, Held};
use crate::drill::drills::exclusive_hugetlb;
use crate::drill::exclusive::{convert, pages, whole_folio_conversion};
use crate::drill::guest::{page_gpa, Op};
use crate::drill::hostmm::{
    clear_soft_dirty, drain_lru_batches, guarded_write, move_pages, numa_nodes,
    thread_minor_faults, ForkedReader, UffdWp,
};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::{host_err, DrillError, DrillResult, GuestSpec, Session, TraceMode};
use crate::drill::verdict::{
    judge_conversion, kvm_maps_what_host_maps, spte_zap, ExclusiveObs, Verdict, Window,
};
use crate::drill::Ctx;
use crate::notifier_client::{NotifierEvent, NotifierEventKind};

/// Data pages a sequence works on.
const PAGES: u8 = 4;
/// Steps per random sequence.
const LEN: usize = 40;
/// Runs the shrinker may spend on one failure.
const SHRINK_RUNS: usize = 150;
/// A failed sequence's races are lengthened this many times for the
/// shrinker, and the replay file's as many again, so that a race that
/// failed once fails again more often.
const RACE_LENGTHEN: u16 = 4;
/// Runs of a shrinker candidate, and of a replay, that races before it is
/// taken to pass.
const SHRINK_TRIES: usize = 2;
const REPLAY_TRIES: usize = 5;

/// Where a sequence first disagreed with the model.
#[derive(Debug, Clone)]
struct Failure {
    /// The failed check: the shrinker keeps candidates failing the same one.
    check: String,
    detail: String,
}

/// One sequence's run.
struct Run {
    failure: Option<Failure>,
    /// Steps executed (not skipped by the model).
    executed: usize,
    /// Held pages lost to a wider invalidation (allowed, counted).
    wider: u64,
}

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut v = Verdict::default();
    if let Some(file) = &ctx.cfg.replay {
        let steps = read_replay(file)?;
        let r = run_until_failure(ctx, &steps, REPLAY_TRIES)?;
        v.figure("steps", r.executed as f64);
        let detail = r
            .failure
            .as_ref()
            .map(|f| f.detail.clone())
            .unwrap_or_default();
        let check = r
            .failure
            .map(|f| f.check)
            .unwrap_or_else(|| "model-agrees".into());
        v.check(
            &check,
            detail.is_empty(),
            format!("replay of {}: {detail}", file.display()),
        );
        return Ok((v, Timeline::default()));
    }
    let budget = Duration::from_secs(ctx.cfg.fuzz_secs);
    let t0 = Instant::now();
    let (mut sequences, mut executed, mut wider) = (0u64, 0usize, 0u64);
    while sequences == 0 || t0.elapsed() < budget {
        let seed = ctx.cfg.seed.wrapping_mul(1_000_003).wrapping_add(sequences);
        // Fewer pages make sequences that hit one page many times (most
        // bugs need several steps on one page); more, the interactions
        // between neighbours.
        let mut rng = Rng::new(seed);
        let on = 1 + rng.below(PAGES as u64) as u8;
        let steps = generate(&mut rng, on, ctx.cfg.vcpus.min(8) as u8, LEN);
        let r = run_sequence(ctx, &steps)?;
        sequences += 1;
        executed += r.executed;
        wider += r.wider;
        if let Some(f) = r.failure {
            let found = t0.elapsed().as_secs_f64();
            let long: Vec<Step> = steps.iter().map(|s| s.lengthened(RACE_LENGTHEN)).collect();
            let (small, f) = shrink_failure(ctx, &long, f)?;
            let small: Vec<Step> = small.iter().map(|s| s.lengthened(RACE_LENGTHEN)).collect();
            let file = write_replay(ctx.cfg.seed, seed, &small, &f)?;
            v.figure("steps_to_failure", executed as f64);
            v.figure("seconds_to_failure", found);
            v.check(
                &f.check,
                false,
                format!(
                    "{} (sequence {sequences} after {found:.1} s, seed {seed}; shrunk from {} to {} steps, replay: mmuvisor drill fuzz --replay {})",
                    f.detail,
                    steps.len(),
                    small.len(),
                    file.display()
                ),
            );
            return Ok((v, Timeline::default()));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    v.figure("sequences", sequences as f64);
    v.figure("steps", executed as f64);
    v.figure("steps_per_second", executed as f64 / secs.max(1e-9));
    v.figure("held_pages_lost_to_wider_invalidations", wider as f64);
    v.check(
        "model-agrees",
        true,
        format!("{sequences} sequences, {executed} steps"),
    );
    v.note(format!(
        "{sequences} random sequences ({executed} steps, seed {}) in {secs:.1} s agreed with the model",
        ctx.cfg.seed
    ));
    Ok((v, Timeline::default()))
}

/// The shortest sub-sequence of `steps` found that still fails `f.check`,
/// and its failure.
fn shrink_failure(ctx: &Ctx, steps: &[Step], f: Failure) -> DrillResult<(Vec<Step>, Failure)> {
    let mut err = None;
    let mut last = f.clone();
    let small = shrink::shrink(steps, SHRINK_RUNS, |cand| {
        if err.is_some() {
            return false;
        }
        match run_until_failure(ctx, cand, SHRINK_TRIES) {
            Ok(Run {
                failure: Some(g), ..
            }) if g.check == f.check => {
                last = g;
                true
            }
            Ok(_) => false,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    // `last` is the failure of the last candidate that failed, which the
    // shrinker kept: the final sequence.
    Ok((small, last))
}

/// Runs `steps` until one run fails, at most `tries` times where the
/// sequence races (a race step's outcome depends on timing), once where it
/// does not. Returns the failed run, or the last one.
fn run_until_failure(ctx: &Ctx, steps: &[Step], tries: usize) -> DrillResult<Run> {
    let races = steps.iter().any(|s| matches!(s, Step::Race { .. }));
    let mut r = run_sequence(ctx, steps)?;
    for _ in 1..if races { tries } else { 1 } {
        if r.failure.is_some() {
            break;
        }
        r = run_sequence(ctx, steps)?;
    }
    Ok(r)
}

/// Runs `steps` in a new VM against a new model.
fn run_sequence(ctx: &Ctx, steps: &[Step]) -> DrillResult<Run> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = PAGES.min(pages(&s, PAGES as u64) as u8);
    let memslots = s.guest().vm_fd().is_some();
    let nodes = numa_nodes();
    let migration = match (nodes.len() >= 2, whole_folio_conversion()) {
        (false, _) => Migration::None,
        (true, true) => Migration::NotHeld,
        (true, false) => Migration::All,
    };
    let mut m = Model::new(n, s.nr_vcpus().min(255) as u8, memslots, migration);
    // Userfaultfd registrations, one per page, made at its first uffd-wp
    // step (so other sequences' VMAs stay whole); closed with the run.
    let mut uffd: BTreeMap<u8, UffdWp> = BTreeMap::new();
    let mut run = Run {
        failure: None,
        executed: 0,
        wider: 0,
    };
    let fail = |i: usize, step: Option<Step>, check: &str, d: String| Failure {
        check: check.to_string(),
        detail: match step {
            Some(step) => format!("step {} ({step}): {d}", i + 1),
            None => format!("after step {}: {d}", i),
        },
    };
    for (i, &step) in steps.iter().enumerate() {
        if !m.allows(step) {
            continue;
        }
        let slots_deleted = m.slots_deleted;
        let before = m.pages[step.page() as usize];
        let expect = m.apply(step);
        run.executed += 1;
        let mut moved = true;
        let host = Host {
            uffd: &mut uffd,
            pages: n,
            nodes: &nodes,
            slots_deleted,
            moved: &mut moved,
        };
        let got = exec(&mut s, dev.as_mut(), host, step, expect);
        if !moved {
            // move_pages may leave a page where it is (busy, or no page
            // there): then nothing changed.
            m.pages[step.page() as usize] = before;
        }
        let got = match got {
            Ok(got) => got,
            Err(e @ DrillError::Skip(_)) => return Err(e),
            Err(e) => Some(("step-completes".to_string(), e.to_string())),
        };
        let got = match got {
            Some(bad) => Some(bad),
            None => observe(&mut s, dev.as_mut(), &mut m)?,
        };
        if let Some((check, d)) = got {
            run.failure = Some(fail(i, Some(step), &check, d));
            break;
        }
    }
    if run.failure.is_none() && m.slots_deleted {
        let (r, _) = s.host("memslot add", |s| s.guest_mut().add_memslots());
        if let Err(e) = r {
            run.failure = Some(fail(
                steps.len(),
                None,
                "step-completes",
                format!("memslot add: {e}"),
            ));
        }
    }
    if run.failure.is_none() {
        // Every page's value, read by the guest at the end.
        for p in 0..n {
            let want = m.pages[p as usize].value;
            match s.step(0, Op::Read, p as u64) {
                Ok(got) if got == want => {}
                Ok(got) => {
                    run.failure = Some(fail(
                        steps.len(),
                        None,
                        "value-as-modelled",
                        format!("page {p}: the guest reads {got:#x} at the end, the model says {want:#x}"),
                    ));
                    break;
                }
                Err(e) => {
                    run.failure = Some(fail(steps.len(), None, "step-completes", e.to_string()));
                    break;
                }
            }
        }
    }
    run.wider = m.wider_revocations;
    let _ = s.finish();
    Ok(run)
}

/// A failed check: its name and what was seen.
type Bad = Option<(String, String)>;

fn bad(check: &str, detail: String) -> Bad {
    Some((check.to_string(), detail))
}

fn value(check: &str, got: u64, want: u64, who: &str) -> Bad {
    (got != want).then(|| {
        (
            check.to_string(),
            format!("{who} read {got:#x}, the model says {want:#x}"),
        )
    })
}

/// What a step needs of the sequence's host state besides the session.
struct Host<'a> {
    uffd: &'a mut BTreeMap<u8, UffdWp>,
    /// Data pages in the sequence.
    pages: u8,
    /// The memslots were deleted when the step began.
    slots_deleted: bool,
    /// NUMA nodes, for migrate.
    nodes: &'a [i32],
    /// Set false by a migrate that left the page where it was.
    moved: &'a mut bool,
}

/// Executes one step; compares its answer with the model's.
fn exec(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    host: Host,
    step: Step,
    expect: Expect,
) -> DrillResult<Bad> {
    let page = step.page() as u64;
    let hva = s.hva(page)?;
    let io = |what: &str, r: std::io::Result<()>| {
        r.map_err(|e| DrillError::Host(format!("{what}: {e}")))
    };
    let want = match expect {
        Expect::Value(v) => Some(v),
        _ => None,
    };
    Ok(match step {
        Step::GuestWrite { vcpu, val, .. } => {
            s.step(vcpu as usize, Op::Write(val), page)?;
            None
        }
        Step::GuestRead { vcpu, .. } => {
            let got = s.step(vcpu as usize, Op::Read, page)?;
            value("value-as-modelled", got, want.unwrap_or(0), "the guest")
        }
        // A store that may fault: the VMA is read-only where the model
        // says so, and the PTE must say the same.
        // The model knows the PTE is writable: the store must not fault.
        Step::VmmWrite { val, .. } if expect == Expect::NoFault => {
            let before = thread_minor_faults().map_err(host_err("getrusage"))?;
            s.host_write(page, 0, val as u64)?;
            let faults = thread_minor_faults().map_err(host_err("getrusage"))? - before;
            (faults != 0).then(|| {
                (
                    "writable-as-modelled".to_string(),
                    format!("the VMM's store of {val:#x} took {faults} page fault(s): the model says the PTE is writable (just written, or restored from a writable device-exclusive entry in a writable VMA)"),
                )
            })
        }
        Step::VmmWrite { val, .. } => {
            let faulted = guarded_write(hva, val as u64)
                .map_err(|e| DrillError::Host(format!("guarded write: {e}")))?;
            match (expect, faulted) {
                (Expect::Refused, false) => bad(
                    "read-only-respected",
                    format!("the VMM's store of {val:#x} to the read-only page landed"),
                ),
                (Expect::Refused, true) | (_, false) => None,
                (_, true) => bad(
                    "write-lands",
                    "the VMM's store to a writable page faulted".to_string(),
                ),
            }
        }
        Step::VmmRead { .. } => {
            let got = s.host_read(page, 0)?;
            value("value-as-modelled", got, want.unwrap_or(0), "the VMM")
        }
        Step::Convert { .. } => {
            let mut o = ExclusiveObs {
                label: format!("page {page}: "),
                expected_at_conversion: want,
                ..Default::default()
            };
            let failed_before = s.v.failures().count();
            convert(s, dev, page, &mut o)?;
            let events = s.kvm_events()?;
            // kvm-spte-zapped needs a mapping to drop: judged where KVM had
            // one when the call began.
            let call = Window {
                start_ns: o.conversion.start_ns,
                end_ns: o.conversion.start_ns,
            };
            // With the memslots deleted KVM has nothing to drop (a mapping
            // it kept of them is judged once they are back).
            o.kvm_unmapped_by_design =
                host.slots_deleted || !spte_zap(&events, page_gpa(page) >> 12, call).0;
            judge_conversion(&mut s.v, &o, &events);
            s.v.failures()
                .nth(failed_before)
                .map(|c| (c.name.clone(), c.detail.clone()))
        }
        Step::Release { .. } => {
            dev.release(hva)
                .map_err(|e| DrillError::Host(format!("release: {e}")))?;
            None
        }
        Step::DevRead { .. } => device_answer(dev.read(hva), want, "read"),
        Step::DevAdd { delta, .. } => device_answer(dev.add(hva, delta as u64), want, "add"),
        Step::Protect { ro, .. } => {
            let prot = if ro {
                libc::PROT_READ
            } else {
                libc::PROT_READ | libc::PROT_WRITE
            };
            io("mprotect", s.mprotect(page, 1, prot))?;
            None
        }
        Step::Dontneed { .. } => {
            io("MADV_DONTNEED", s.madvise(page, 1, libc::MADV_DONTNEED))?;
            None
        }
        Step::ClearSoftDirty => {
            clear_soft_dirty().map_err(host_err("clear_refs"))?;
            None
        }
        Step::UffdWp { page: p, on } => {
            let u = match host.uffd.entry(p) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(
                    UffdWp::register(hva, 4096).map_err(host_err("userfaultfd register (WP)"))?,
                ),
            };
            let (r, _) = s.host("UFFDIO_WRITEPROTECT", |_| u.protect(on));
            io("UFFDIO_WRITEPROTECT", r)?;
            None
        }
        Step::MemslotDelete => {
            let (r, _) = s.host("memslot delete", |s| s.guest_mut().delete_memslots());
            r?;
            None
        }
        Step::MemslotAdd => {
            let (r, _) = s.host("memslot add", |s| s.guest_mut().add_memslots());
            r?;
            None
        }
        Step::ForkRead { .. } => {
            // The child must inherit guest RAM even if the VMM set
            // MADV_DONTFORK.
            io(
                "madvise(MADV_DOFORK)",
                s.madvise(0, host.pages as u64, libc::MADV_DOFORK),
            )?;
            let (child, _) = s.host("fork", |_| ForkedReader::spawn(hva));
            let got = child.and_then(|mut c| c.read()).map_err(host_err("fork"))?;
            value(
                "value-as-modelled",
                got,
                want.unwrap_or(0),
                "the forked child",
            )
        }
        Step::Migrate { .. } => {
            let (r, _) = s.host("move_pages", |_| {
                let here = move_pages(&[hva], None)?.first().copied().unwrap_or(-1);
                match host.nodes.iter().find(|&&n| n != here) {
                    Some(&to) if here >= 0 => {
                        Ok(move_pages(&[hva], Some(to))?.first().copied().unwrap_or(-1) == to)
                    }
                    _ => Ok(false),
                }
            });
            *host.moved = r.map_err(host_err("move_pages"))?;
            None
        }
        Step::Race { vcpu, commands, .. } => {
            race(s, dev, vcpu as usize, page, commands, want.unwrap_or(0))?
        }
        Step::HugetlbConvert => {
            let mut v = Verdict::default();
            match exclusive_hugetlb::attempt(&mut v) {
                // No hugetlb page here: nothing to judge.
                Err(DrillError::Skip(_)) => None,
                Err(e) => return Err(e),
                Ok(()) => v
                    .failures()
                    .next()
                    .map(|c| (c.name.clone(), c.detail.clone())),
            }
        }
        Step::Pageout { .. } => {
            // Reclaim skips a folio still in a CPU's LRU batch.
            drain_lru_batches();
            io("MADV_PAGEOUT", s.madvise(page, 1, libc::MADV_PAGEOUT))?;
            None
        }
    })
}

/// The race step: while the vCPU's increments run, convert the page again
/// and again and read it twice per hold (50 us apart); two different
/// values mean a guest store landed while the device held the page. Then
/// the vCPU reads the page, which must hold every increment.
fn race(
    s: &mut Session,
    dev: &mut dyn ExclusiveDevice,
    vcpu: usize,
    page: u64,
    commands: u16,
    want: u64,
) -> DrillResult<Bad> {
    let hva = s.hva(page)?;
    let mut holds = 0u64;
    for _ in 0..commands {
        s.issue(vcpu, Op::AtomicIncLoop(RACE_LOOPS), page)?;
        while s.try_collect(vcpu)?.is_none() {
            match dev.make_exclusive(hva) {
                Ok(_) | Err(DeviceError::Revoked | DeviceError::Busy) => {}
                Err(e) => {
                    // Finish the guest's command before giving up.
                    let _ = s.collect(vcpu);
                    return Err(DrillError::Host(format!("make-exclusive in a race: {e}")));
                }
            }
            let r1 = dev.read(hva);
            std::thread::sleep(Duration::from_micros(50));
            let r2 = dev.read(hva);
            if let (Ok(a), Ok(b)) = (r1, r2) {
                holds += 1;
                if a != b {
                    let _ = s.collect(vcpu);
                    return Ok(bad(
                        "no-guest-write-while-exclusive",
                        format!("the device read {a:#x} then {b:#x} while it held the page exclusively (hold {holds}): a guest store landed through a mapping KVM kept"),
                    ));
                }
            }
        }
    }
    let got = s.step(vcpu, Op::Read, page)?;
    Ok(value(
        "value-as-modelled",
        got,
        want,
        "the guest after the race",
    ))
}

/// A device access: a held page answers the model's value; one the device
/// does not hold must be refused.
fn device_answer(r: Result<u64, DeviceError>, want: Option<u64>, what: &str) -> Bad {
    match (r, want) {
        (Ok(got), Some(want)) => value("value-as-modelled", got, want, "the device"),
        (Ok(got), None) => bad(
            "device-refused",
            format!("the device's {what} succeeded ({got:#x}) on a page it does not hold"),
        ),
        (Err(_), None) => None,
        (Err(e), Some(want)) => bad(
            "device-holds",
            format!("the device's {what} failed ({e}) on a page it holds (value {want:#x})"),
        ),
    }
}

/// After every step, for every page: QUERY says the device holds exactly
/// the pages the model says, and KVM maps only what the host maps. An
/// invalidation may cover more than the operation's own pages (a PMD split
/// invalidates 2 MiB): a held page it covered may be lost, which the model
/// then accepts; a held page lost without one is a failure.
fn observe(s: &mut Session, dev: &mut dyn ExclusiveDevice, m: &mut Model) -> DrillResult<Bad> {
    let events = s.kvm_events()?;
    let lost = s.lost_events() > 0;
    let invalidations: Vec<NotifierEvent> = dev
        .take_events()
        .map_err(|e| DrillError::Host(format!("events: {e}")))?
        .into_iter()
        .filter(|e| !(e.owner_is_self && e.kind == NotifierEventKind::Exclusive))
        .collect();
    for p in 0..m.pages.len() {
        let hva = s.hva(p as u64)?;
        let held = dev
            .query(hva)
            .map_err(|e| DrillError::Host(format!("query: {e}")))?;
        let covering: Vec<String> = invalidations
            .iter()
            .filter(|e| e.start <= hva && e.end > hva)
            .map(|e| format!("{:?} [{:#x}, {:#x})", e.kind, e.start, e.end))
            .collect();
        let st = &mut m.pages[p];
        if st.held && held == Held::Revoked && !covering.is_empty() {
            st.held = false;
            m.wider_revocations += 1;
        }
        if (held == Held::Now) != st.held {
            return Ok(bad(
                "held-as-modelled",
                format!(
                    "page {p}: QUERY says {held:?}, the model says the device {} it (invalidations covering it: {})",
                    if st.held { "holds" } else { "does not hold" },
                    if covering.is_empty() { "none".to_string() } else { covering.join(", ") }
                ),
            ));
        }
        let host = s.pagemap(p as u64)?;
        if st.held && host.present() {
            return Ok(bad(
                "held-as-modelled",
                format!(
                    "page {p}: the device holds it and the host page table maps it ({})",
                    host.describe()
                ),
            ));
        }
        if st.mapped && (host.present() || host.swapped()) && host.uffd_wp() != st.wp {
            return Ok(bad(
                "uffd-wp-as-modelled",
                format!(
                    "page {p}: pagemap says uffd-wp {} ({}), the model says {}",
                    host.uffd_wp(),
                    host.describe(),
                    st.wp
                ),
            ));
        }
        if let Some(sd) = st.soft_dirty {
            if host.soft_dirty() != sd {
                return Ok(bad(
                    "soft-dirty-as-modelled",
                    format!(
                        "page {p}: pagemap says soft-dirty {} ({}), the model says {sd}",
                        host.soft_dirty(),
                        host.describe()
                    ),
                ));
            }
        }
        if !lost && !m.slots_deleted {
            if let Err(d) = kvm_maps_what_host_maps(&events, page_gpa(p as u64) >> 12, host) {
                return Ok(bad("kvm-maps-what-host-maps", format!("page {p}: {d}")));
            }
        }
    }
    Ok(None)
}

fn read_replay(file: &Path) -> DrillResult<Vec<Step>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| DrillError::Host(format!("cannot read {}: {e}", file.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| {
            l.parse::<Step>()
                .map_err(|e| DrillError::Host(format!("{}:{}: {e}", file.display(), n + 1)))
        })
        .collect()
}

fn write_replay(seed: u64, seq_seed: u64, steps: &[Step], f: &Failure) -> DrillResult<PathBuf> {
    let file = PathBuf::from(format!("fuzz-seed{seed}.replay"));
    let mut text = format!(
        "# mmuvisor drill fuzz --replay {}: {} steps (--seed {seed}, sequence seed {seq_seed})\n# failed: {}: {}\n",
        file.display(),
        steps.len(),
        f.check,
        f.detail
    );
    if steps.iter().any(|s| matches!(s, Step::Race { .. })) {
        text.push_str(&format!(
            "# its races run {}x as many guest commands as generated: a race's outcome depends on timing, and a replay runs up to {REPLAY_TRIES} times until one fails\n",
            RACE_LENGTHEN * RACE_LENGTHEN
        ));
    }
    for s in steps {
        text.push_str(&format!("{s}\n"));
    }
    std::fs::write(&file, text)
        .map_err(|e| DrillError::Host(format!("cannot write {}: {e}", file.display())))?;
    Ok(std::fs::canonicalize(&file).unwrap_or(file))
}
