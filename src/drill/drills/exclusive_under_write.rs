//! exclusive-under-write: every vCPU increments the page atomically while
//! the host converts it again and again. Whenever QUERY says the device
//! holds the page, two device reads a little apart must agree; every
//! conversion must invalidate KVM's mapping; no increment may be lost.

use std::time::Duration;

use crate::drill::device::{DeviceError, Held};
use crate::drill::exclusive::{conclude, convert, dev_err, guest_touch, pages, setup, INITIAL};
use crate::drill::guest::{Op, PAGE_SIZE};
use crate::drill::report::timeline::Timeline;
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, TraceMode};
use crate::drill::verdict::{ExclusiveObs, Verdict};
use crate::drill::Ctx;

const MAX_ROUNDS: u64 = 5000;

pub fn run(ctx: &Ctx) -> DrillResult<(Verdict, Timeline)> {
    let mut s = ctx.start(GuestSpec::of(&ctx.cfg), TraceMode::ThisProcess)?;
    let mut dev = ctx.device(&s)?;
    let n = pages(&s, ctx.cfg.pages);
    let page = setup(&mut s, n)?;
    let hva = s.hva(page)?;
    let vcpus = s.nr_vcpus();
    let loops = (ctx.cfg.iterations.max(1) * 2_000_000).min(u32::MAX as u64) as u32;
    for v in 0..vcpus {
        s.issue(v, Op::AtomicIncLoop(loops), page)?;
    }
    let (mut converted, mut while_writing, mut busy, mut dev_incs) = (0u64, 0u64, 0u64, 0u64);
    let (mut missed, mut unstable) = (Vec::new(), Vec::new());
    let mut round = 0;
    while round < MAX_ROUNDS && (0..vcpus).any(|v| s.busy(v)) {
        round += 1;
        let (r, win) = s.host("make-exclusive", |_| dev.make_exclusive(hva));
        let writing = (0..vcpus).any(|v| s.busy(v));
        match r {
            Ok(true) => {
                converted += 1;
                while_writing += writing as u64;
                let ev = s.kvm_events()?;
                if !ev.iter().any(|e| {
                    e.within(win.start_ns, win.end_ns) && e.unmap_covers(hva, hva + PAGE_SIZE)
                }) {
                    missed.push(round);
                }
            }
            // Still held since the last round: no vCPU touched the page.
            Ok(false) => {}
            Err(DeviceError::Unsupported) => {
                return Err(dev_err("make-exclusive")(DeviceError::Unsupported))
            }
            Err(e) => {
                busy += 1;
                log::debug!("round {round}: make-exclusive: {e}");
            }
        }
        if dev.query(hva).map_err(dev_err("query"))? == Held::Now {
            if let Ok(v1) = dev.read(hva) {
                std::thread::sleep(Duration::from_millis(1));
                if dev.query(hva).map_err(dev_err("query"))? == Held::Now {
                    match dev.read(hva) {
                        Ok(v2) if v2 != v1 => unstable.push((round, v1, v2)),
                        _ => {}
                    }
                }
            }
            match dev.add(hva, 1) {
                Ok(_) => dev_incs += 1,
                Err(DeviceError::Revoked) => {}
                Err(e) => return Err(DrillError::Host(format!("device add: {e}"))),
            }
        }
        let _ = dev.take_events();
        for v in 0..vcpus {
            s.try_collect(v)?;
        }
    }
    for v in 0..vcpus {
        if s.busy(v) {
            s.collect(v)?;
        }
    }
    // The guest's read below revokes a device that still holds the page.
    let now = s.step(0, Op::Read, page)?;
    let want = INITIAL + vcpus as u64 * loops as u64 + dev_incs;
    s.v.figure("rounds", round as f64);
    s.v.figure("conversions", converted as f64);
    s.v.figure("conversions_while_writing", while_writing as f64);
    s.v.figure("conversions_busy", busy as f64);
    s.v.figure("device_increments_concurrent", dev_incs as f64);
    if converted == 0 {
        return Err(DrillError::Host(format!(
            "no conversion succeeded in {round} rounds ({busy} EBUSY)"
        )));
    }
    if while_writing == 0 {
        return Err(DrillError::Host(format!(
            "no conversion overlapped the guest's writes in {round} rounds: the drill tested nothing (raise --iterations)"
        )));
    }
    let detail = unstable
        .first()
        .map(|(r, a, b)| {
            format!(
                "guest wrote while the device held the page: round {r} device read {a:#x} then {b:#x} with QUERY saying exclusive ({} rounds)",
                unstable.len()
            )
        })
        .unwrap_or_default();
    s.v.check(
        "no-guest-write-while-exclusive",
        unstable.is_empty(),
        detail,
    );
    s.v.check(
        "kvm-invalidated",
        missed.is_empty(),
        format!(
            "KVM saw no invalidation in {} of {converted} conversions (first: round {})",
            missed.len(),
            missed.first().copied().unwrap_or(0)
        ),
    );
    s.v.check(
        "nothing-lost-concurrent",
        now == want,
        format!("counter {now} != {INITIAL} + {vcpus}x{loops} guest + {dev_incs} device increments = {want}"),
    );
    // Finally the plain rules once more, with the guest touching last.
    dev.release(hva).map_err(dev_err("release"))?;
    let _ = dev.take_events();
    let mut o = ExclusiveObs {
        expected_at_conversion: Some(now),
        ..Default::default()
    };
    convert(&mut s, dev.as_mut(), page, &mut o)?;
    guest_touch(&mut s, dev.as_mut(), page, vcpus - 1, 1, &mut o)?;
    conclude(&mut s, page, n, o)?;
    s.finish()
}
