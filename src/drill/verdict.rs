//! Verdicts: named checks judged from what the guest, the host page tables
//! and KVM observed; and the exclusive-page rules as pure functions, so a
//! broken kernel's observations can be fed in and must fail.

use crate::drill::device::NotifierEvent;
use crate::notifier_client::NotifierEventKind;
use crate::secondary_mmu::KvmEvent;

/// One judged rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// For a failure: what was violated, in words.
    pub detail: String,
}

/// The result of one drill.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Judged(Verdict),
    Skip(String),
    /// The drill could not run to the end (VMM or kernel interface error).
    Error(String),
    /// No verdict within the per-drill `--timeout` (seconds): a hang.
    Timeout(u64),
}

/// Checks and measured figures of a drill that ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub checks: Vec<Check>,
    /// Measured figures for `--format json` (name, value).
    pub figures: Vec<(String, f64)>,
    /// Notes shown as diagnostics even on success.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            name: name.to_string(),
            passed,
            detail: if passed { String::new() } else { detail.into() },
        });
        passed
    }
    pub fn figure(&mut self, name: &str, v: f64) {
        self.figures.push((name.to_string(), v));
    }
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }
    /// Adds `other`'s checks, figures and notes after this verdict's own.
    pub fn append(&mut self, other: Verdict) {
        self.checks.extend(other.checks);
        self.figures.extend(other.figures);
        self.notes.extend(other.notes);
    }
}

/// A host action's time window (CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Rule: KVM invalidated `[start, end)` during `win`.
pub fn invalidated(
    v: &mut Verdict,
    what: &str,
    events: &[KvmEvent],
    win: Window,
    start: u64,
    end: u64,
) -> bool {
    let covering = events
        .iter()
        .filter(|e| e.within(win.start_ns, win.end_ns) && e.unmap_covers(start, end))
        .count();
    let partial = events
        .iter()
        .filter(|e| e.within(win.start_ns, win.end_ns) && e.unmap_touches(start, end))
        .count();
    let detail = if partial > 0 {
        format!("{what}: KVM's unmap events only partly covered host range {start:#x}-{end:#x}")
    } else {
        format!("{what}: KVM saw no invalidation of host range {start:#x}-{end:#x} (no kvm_unmap_hva_range)")
    };
    v.check("kvm-invalidated", covering > 0, detail)
}

/// The conversion's own window: around the device's own
/// MMU_NOTIFY_EXCLUSIVE for the page at `hva` (the last one, after any
/// retries), bounded by the neighbouring invalidations of the page that the
/// device saw during the call (`ioctl`), so a CLEAR from a prefault or a
/// restore in the same call does not count. None: the kernel sent no
/// EXCLUSIVE invalidation for the page.
pub fn exclusive_window(events: &[NotifierEvent], hva: u64, ioctl: Window) -> Option<Window> {
    let page: Vec<&NotifierEvent> = events
        .iter()
        .filter(|e| e.touches(hva, hva + 4096))
        .collect();
    let te = page
        .iter()
        .filter(|e| e.owner_is_self && e.kind == NotifierEventKind::Exclusive)
        .map(|e| e.time_ns)
        .max()?;
    let prev = page.iter().map(|e| e.time_ns).filter(|&t| t < te).max();
    let next = page.iter().map(|e| e.time_ns).filter(|&t| t > te).min();
    Some(Window {
        start_ns: prev
            .map_or(ioctl.start_ns, |p| p + (te - p) / 2)
            .max(ioctl.start_ns),
        end_ns: next
            .map_or(ioctl.end_ns, |n| te + (n - te) / 2)
            .min(ioctl.end_ns.max(te)),
    })
}

/// The KVM-vs-host mapping oracle, for any drill: KVM's mapping of `gfn`
/// now (replaying its SPTE events) against the host page table's entry for
/// the same page (`host`, from pagemap). A present SPTE must map the frame
/// the host PTE maps; KVM mapping a page the host does not map, or another
/// frame, is a stale secondary mapping. Err says what differs; no SPTE event
/// for `gfn` (KVM never mapped it) is Ok.
pub fn kvm_maps_what_host_maps(
    events: &[KvmEvent],
    gfn: u64,
    host: crate::pagemap::PagemapEntry,
) -> Result<(), String> {
    let Some(Some(kvm_pfn)) = events.iter().rev().find_map(|e| e.spte_mapping(gfn)) else {
        return Ok(());
    };
    match host.pfn() {
        Some(pfn) if pfn == kvm_pfn => Ok(()),
        // Present but the frame hidden (no CAP_SYS_ADMIN): presence only.
        None if host.present() => Ok(()),
        _ => Err(format!(
            "KVM maps gfn {gfn:#x} to pfn {kvm_pfn:#x} while the host page table has {}",
            host.describe()
        )),
    }
}

/// Whether KVM had a present SPTE mapping `gfn` when `win` began (replaying
/// the SPTE events before it), and whether one went from present to
/// non-present inside `win`.
pub fn spte_zap(events: &[KvmEvent], gfn: u64, win: Window) -> (bool, bool) {
    let mut present = false;
    let mut zapped = false;
    for e in events {
        let Some((before, after)) = e.spte_transition(gfn) else {
            continue;
        };
        if e.time_ns / 1000 < win.start_ns / 1000 {
            present = after;
        } else if e.within(win.start_ns, win.end_ns) && before != Some(false) && !after {
            zapped = true;
        }
    }
    (present, zapped)
}

/// What an exclusive drill observed about one page; fed to [`judge_exclusive`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExclusiveObs {
    /// Prefix for diagnostics when a drill judges several pages ("page 7: ").
    pub label: String,
    /// Host range of the page.
    pub hva: u64,
    /// Guest frame of the page (for SPTE events).
    pub gfn: u64,
    /// make-exclusive call window.
    pub conversion: Window,
    /// The conversion's own EXCLUSIVE invalidation ([`exclusive_window`]);
    /// None when the device saw none.
    pub exclusive: Option<Window>,
    /// What the guest last wrote to the page before the conversion, when
    /// the drill knows it: the device must read exactly that.
    pub expected_at_conversion: Option<u64>,
    /// pagemap right after make-exclusive returned: must not be present.
    pub pagemap_present_after_conversion: bool,
    /// Value the device read right after conversion.
    pub value_at_conversion: u64,
    /// Increments the device made through its mapping while exclusive.
    pub device_increments: u64,
    /// Device reads while QUERY said exclusive: (expected, read).
    pub device_reads: Vec<(u64, u64)>,
    /// Guest stores that completed while QUERY still said exclusive afterwards.
    pub guest_writes_while_exclusive: u64,
    /// After the guest's first access: QUERY said revoked.
    pub revoked_after_guest_touch: bool,
    /// A notifier invalidation (not our own) for the page reached the device.
    pub notifier_event_seen: bool,
    /// pagemap after the guest's first access: present again.
    pub pagemap_present_after_touch: bool,
    /// Guest increments in total, and the final value the guest read.
    pub guest_increments: u64,
    pub initial_value: u64,
    pub final_value: u64,
    /// Mismatching words in the neighbour pages (guest CHECK_RANGE).
    pub neighbour_mismatches: u64,
    /// The drill keeps KVM from mapping this page before its conversion (a
    /// second device's conversion of a held page; a page whose dirty state
    /// a guest access would hide): `kvm-spte-zapped` is not judged for it.
    pub kvm_unmapped_by_design: bool,
    /// QUERY said the device no longer held the page just before the
    /// guest's first access ([`crate::drill::exclusive::guest_touch`]).
    pub lost_before_touch: bool,
}

/// The conversion's rules: the kernel sent MMU_NOTIFY_EXCLUSIVE for the
/// page, KVM invalidated the page's host range and dropped its SPTE for the
/// gfn during that invalidation (not a CLEAR of a prefault in the same
/// call), and the device read what the guest had written.
pub fn judge_conversion(v: &mut Verdict, o: &ExclusiveObs, events: &[KvmEvent]) {
    let (start, end) = (o.hva, o.hva + 4096);
    let win = o.exclusive.unwrap_or(o.conversion);
    let l = &o.label;
    v.check(
        "exclusive-notified",
        o.exclusive.is_some(),
        format!("{l}make-exclusive converted the page but the device's notifier saw no MMU_NOTIFY_EXCLUSIVE for it"),
    );
    if o.exclusive.is_some() {
        invalidated(v, &format!("{l}make-exclusive"), events, win, start, end);
    } else {
        v.check(
            "kvm-invalidated",
            false,
            format!("{l}make-exclusive: no EXCLUSIVE invalidation, so KVM was never told to drop the page"),
        );
    }
    let (present, zapped) = spte_zap(events, o.gfn, win);
    // A conversion that first splits a PMD drops KVM's huge mapping in the
    // split's own invalidation, before the EXCLUSIVE one: a mapping present
    // when the call began and dropped before the EXCLUSIVE window ended
    // counts too.
    let call = Window {
        start_ns: o.conversion.start_ns,
        end_ns: win.end_ns,
    };
    let (present_at_call, zapped_in_call) = spte_zap(events, o.gfn, call);
    v.figure(
        &format!("{l}spte_present_at_conversion").replace([' ', ':'], ""),
        (present || present_at_call) as u8 as f64,
    );
    if o.kvm_unmapped_by_design {
        v.note(format!(
            "{l}kvm-spte-zapped not judged: the drill keeps the guest off this page before its conversion"
        ));
        judge_value_at_conversion(v, o);
        return;
    }
    let dropped = if present {
        zapped
    } else {
        present_at_call && zapped_in_call
    };
    // Only a mapping that existed can be shown dropped: without a present
    // SPTE before the conversion the check could not fail, so it fails.
    let present = present || present_at_call;
    v.check(
        "kvm-spte-zapped",
        present && dropped && o.exclusive.is_some(),
        if !present {
            format!(
                "{l}no SPTE event shows KVM mapping gfn {:#x} before the page was converted (the guest had not touched it, or the trace lost the event): nothing showed KVM dropping a mapping",
                o.gfn
            )
        } else {
            format!(
                "{l}KVM had a present SPTE for gfn {:#x} when the page was converted and {}",
                o.gfn,
                if o.exclusive.is_none() {
                    "no EXCLUSIVE invalidation came"
                } else {
                    "no SPTE event shows it going non-present during the EXCLUSIVE invalidation"
                }
            )
        },
    );
    judge_value_at_conversion(v, o);
}

fn judge_value_at_conversion(v: &mut Verdict, o: &ExclusiveObs) {
    let l = &o.label;
    if let Some(want) = o.expected_at_conversion {
        v.check(
            "value-kept-at-conversion",
            o.value_at_conversion == want,
            format!(
                "{l}the device read {:#x} at conversion where the guest had written {want:#x}",
                o.value_at_conversion
            ),
        );
    }
}

/// The exclusive rules (see docs/design.md and the drill sources).
pub fn judge_exclusive(v: &mut Verdict, o: &ExclusiveObs, events: &[KvmEvent]) {
    let (start, end) = (o.hva, o.hva + 4096);
    let win = o.exclusive.unwrap_or(o.conversion);
    let conv_unmap = o.exclusive.is_some()
        && events
            .iter()
            .any(|e| e.within(win.start_ns, win.end_ns) && e.unmap_covers(start, end));
    let kvm_words = if conv_unmap {
        "KVM did invalidate at conversion"
    } else {
        "KVM saw no invalidation"
    };
    // (1) no guest write lands while the device holds the page.
    let changed: Vec<_> = o
        .device_reads
        .iter()
        .filter(|(want, got)| want != got)
        .collect();
    let mut detail = Vec::new();
    if o.guest_writes_while_exclusive > 0 {
        detail.push(format!(
            "guest wrote {} times while the device held the page; {kvm_words}",
            o.guest_writes_while_exclusive
        ));
    }
    if let Some((want, got)) = changed.first() {
        detail.push(format!(
            "device read {got:#x} where it wrote/saw {want:#x} while QUERY said exclusive ({} such reads)",
            changed.len()
        ));
    }
    if o.pagemap_present_after_conversion {
        detail.push("pagemap shows the page present right after make-exclusive".to_string());
    }
    let l = &o.label;
    v.check(
        "no-guest-write-while-exclusive",
        detail.is_empty(),
        format!("{l}{}", detail.join("; ")),
    );
    judge_conversion(v, o, events);
    // (3) the guest's first access revokes the device. Where the device
    // had already lost the page (a host operation revoked it, which the
    // drill asserts itself), the access revoked nothing: only that it
    // mapped the page again is judged.
    if o.lost_before_touch {
        v.note(format!(
            "{l}the device had lost the page before the guest's access: guest-access-revokes not judged"
        ));
        v.check(
            "guest-access-maps",
            o.pagemap_present_after_touch,
            format!("{l}pagemap not present after the guest's access"),
        );
    }
    let mut r = Vec::new();
    if o.lost_before_touch {
        // judged above
    } else if !o.revoked_after_guest_touch {
        r.push("QUERY still says exclusive after the guest accessed the page");
    }
    if !o.lost_before_touch {
        if !o.notifier_event_seen {
            r.push("the device got no invalidation for the page");
        }
        if !o.pagemap_present_after_touch {
            r.push("pagemap not present after the guest's access");
        }
        v.check(
            "guest-access-revokes",
            r.is_empty(),
            format!("{l}{} ({kvm_words})", r.join("; ")),
        );
    }
    // (4) nothing lost: the end value is what the guest wrote plus every
    // increment.
    let want = o.initial_value + o.device_increments + o.guest_increments;
    v.check(
        "nothing-lost",
        o.final_value == want,
        format!(
            "{l}final value {} != {} initial + {} device + {} guest increments = {want}",
            o.final_value, o.initial_value, o.device_increments, o.guest_increments
        ),
    );
    // (5) neighbours intact.
    v.check(
        "neighbours-intact",
        o.neighbour_mismatches == 0,
        format!(
            "{l}{} words of neighbouring pages changed",
            o.neighbour_mismatches
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secondary_mmu::KvmEventKind;

    fn unmap(t: u64, s: u64, e: u64) -> KvmEvent {
        KvmEvent {
            time_ns: t,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::UnmapHvaRange { start: s, end: e },
        }
    }

    fn spte(t: u64, gfn: u64, old_spte: u64, new_spte: u64) -> KvmEvent {
        KvmEvent {
            time_ns: t,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::TdpSpteChanged {
                gfn,
                level: 1,
                old_spte,
                new_spte,
            },
        }
    }

    const GFN: u64 = 0x205;
    const PRESENT: u64 = 0x8000_0000_0123_4b77;

    fn nev(t: u64, event: u32, own: bool) -> NotifierEvent {
        NotifierEvent {
            seq: t,
            time_ns: t,
            start: 0x7f00_0020_0000,
            end: 0x7f00_0020_1000,
            kind: NotifierEventKind::from(event),
            owner_is_self: own,
            owner_set: own,
            blockable: true,
            revoked: 0,
            count: 1,
        }
    }

    fn good() -> (ExclusiveObs, Vec<KvmEvent>) {
        let o = ExclusiveObs {
            hva: 0x7f00_0020_0000,
            gfn: GFN,
            conversion: Window {
                start_ns: 10_000,
                end_ns: 20_000,
            },
            exclusive: Some(Window {
                start_ns: 14_000,
                end_ns: 20_000,
            }),
            expected_at_conversion: Some(100),
            value_at_conversion: 100,
            device_increments: 5,
            device_reads: vec![(100, 100), (105, 105)],
            revoked_after_guest_touch: true,
            notifier_event_seen: true,
            pagemap_present_after_touch: true,
            guest_increments: 3,
            initial_value: 100,
            final_value: 108,
            ..Default::default()
        };
        (
            o,
            vec![
                spte(5_000, GFN, 0, PRESENT),
                unmap(15_000, 0x7f00_0020_0000, 0x7f00_0020_1000),
                spte(15_000, GFN, PRESENT, 0),
            ],
        )
    }

    #[test]
    fn stock_kernel_passes() {
        let (o, ev) = good();
        let mut v = Verdict::default();
        judge_exclusive(&mut v, &o, &ev);
        assert!(v.passed(), "{:?}", v.checks);
    }

    /// What lab.md saw on the kernel without the notifier in
    /// make_device_exclusive(): no unmap at conversion, the guest's writes
    /// went through KVM's stale mapping, the device still held the page.
    #[test]
    fn broken_kernel_fails_with_diagnostic() {
        let (mut o, _) = good();
        o.guest_writes_while_exclusive = 3;
        o.device_reads = vec![(100, 100), (105, 108)];
        o.revoked_after_guest_touch = false;
        o.notifier_event_seen = false;
        o.pagemap_present_after_touch = false;
        o.exclusive = None;
        let mut v = Verdict::default();
        judge_exclusive(&mut v, &o, &[spte(5_000, GFN, 0, PRESENT)]);
        assert!(!v.passed());
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(
            failed,
            [
                "no-guest-write-while-exclusive",
                "exclusive-notified",
                "kvm-invalidated",
                "kvm-spte-zapped",
                "guest-access-revokes"
            ]
        );
        let d = &v
            .failures()
            .next()
            .map(|c| c.detail.clone())
            .unwrap_or_default();
        assert!(
            d.contains(
                "guest wrote 3 times while the device held the page; KVM saw no invalidation"
            ),
            "{d}"
        );
    }

    /// A KVM that logs the event but keeps its mapping must still fail.
    #[test]
    fn logged_but_ignored_invalidation_fails() {
        let (mut o, ev) = good();
        o.guest_writes_while_exclusive = 1;
        o.revoked_after_guest_touch = false;
        let mut v = Verdict::default();
        judge_exclusive(&mut v, &o, &ev);
        assert!(!v.passed());
        assert!(v
            .checks
            .iter()
            .any(|c| c.name == "kvm-invalidated" && c.passed));
    }

    /// known-bad 0002: KVM traces the unmap but keeps its SPTE. Even when
    /// a later host operation hides the guest's writes, the SPTE evidence
    /// fails the drill.
    #[test]
    fn traced_unmap_with_kept_spte_fails() {
        let (o, mut ev) = good();
        ev.pop();
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &ev);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["kvm-spte-zapped"]);
    }

    /// No SPTE for the gfn when the conversion began: the check could not
    /// fail, so it fails (no vacuous pass).
    #[test]
    fn absent_spte_is_no_evidence() {
        let (o, _) = good();
        let ev = vec![
            spte(5_000, GFN, 0, PRESENT),
            spte(8_000, GFN, PRESENT, 0),
            unmap(15_000, 0x7f00_0020_0000, 0x7f00_0020_1000),
        ];
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &ev);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["kvm-spte-zapped"]);
        assert!(v
            .checks
            .iter()
            .any(|c| c.detail.contains("no SPTE event shows KVM mapping")));
    }

    /// A PMD split at the start of the call drops KVM's 2 MiB mapping in
    /// its own invalidation, before the EXCLUSIVE window: that counts (the
    /// mapping existed and went during the call); one kept through the
    /// call does not.
    #[test]
    fn mapping_dropped_by_the_split_counts() {
        let (o, _) = good();
        let huge = |t, old, new| KvmEvent {
            time_ns: t,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::TdpSpteChanged {
                gfn: 0x200,
                level: 2,
                old_spte: old,
                new_spte: new,
            },
        };
        let ev = vec![
            huge(5_000, 0, PRESENT | 0x80),
            unmap(11_000, 0x7f00_0020_0000, 0x7f00_0040_0000),
            huge(12_000, PRESENT | 0x80, 0),
            unmap(15_000, 0x7f00_0020_0000, 0x7f00_0020_1000),
        ];
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &ev);
        assert!(v.passed(), "{:?}", v.checks);
        let kept = vec![ev[0].clone(), ev[1].clone(), ev[3].clone()];
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &kept);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["kvm-spte-zapped"]);
    }

    /// Where a host operation had already revoked the device, the guest's
    /// access proves nothing about revocation: only that it mapped the
    /// page again is judged (and fails if it did not).
    #[test]
    fn lost_before_touch_judges_only_the_mapping() {
        let (mut o, ev) = good();
        o.lost_before_touch = true;
        o.notifier_event_seen = false;
        let mut v = Verdict::default();
        judge_exclusive(&mut v, &o, &ev);
        assert!(v.passed(), "{:?}", v.checks);
        assert!(!v.checks.iter().any(|c| c.name == "guest-access-revokes"));
        o.pagemap_present_after_touch = false;
        let mut v = Verdict::default();
        judge_exclusive(&mut v, &o, &ev);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["guest-access-maps"]);
    }

    /// A page the drill keeps KVM off on purpose is not judged (noted).
    #[test]
    fn unmapped_by_design_is_noted_not_judged() {
        let (mut o, _) = good();
        o.kvm_unmapped_by_design = true;
        let mut v = Verdict::default();
        judge_conversion(
            &mut v,
            &o,
            &[unmap(15_000, 0x7f00_0020_0000, 0x7f00_0020_1000)],
        );
        assert!(v.passed() && !v.checks.iter().any(|c| c.name == "kvm-spte-zapped"));
        assert_eq!(v.notes.len(), 1);
    }

    /// A 2 MiB SPTE covers the page's gfn.
    #[test]
    fn huge_spte_covers_gfn() {
        let e = KvmEvent {
            time_ns: 1,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::TdpSpteChanged {
                gfn: 0x200,
                level: 2,
                old_spte: PRESENT | 0x80,
                new_spte: 0,
            },
        };
        assert_eq!(e.spte_transition(GFN), Some((Some(true), false)));
        assert_eq!(e.spte_transition(0x400), None);
        // A link to a page table is not a mapping of the gfn.
        let link = KvmEvent {
            kind: KvmEventKind::TdpSpteChanged {
                gfn: 0x200,
                level: 2,
                old_spte: 0,
                new_spte: PRESENT,
            },
            ..e
        };
        assert_eq!(link.spte_transition(GFN), None);
    }

    /// The zap of a prefault's CLEAR in the same call is not the
    /// conversion's: the window starts half-way to the EXCLUSIVE event.
    #[test]
    fn clear_before_exclusive_is_outside_the_window() {
        let ioctl = Window {
            start_ns: 10_000,
            end_ns: 40_000,
        };
        let ev = [nev(12_000, 1, false), nev(30_000, 7, true)];
        let w = exclusive_window(&ev, 0x7f00_0020_0000, ioctl).unwrap();
        assert_eq!((w.start_ns, w.end_ns), (21_000, 40_000));
        let (mut o, _) = good();
        o.conversion = ioctl;
        o.exclusive = Some(w);
        let kvm = vec![
            spte(5_000, GFN, 0, PRESENT),
            unmap(12_000, 0x7f00_0020_0000, 0x7f00_0020_1000),
            spte(12_000, GFN, PRESENT, 0),
            spte(13_000, GFN, 0, PRESENT),
            unmap(30_000, 0x7f00_0020_0000, 0x7f00_0020_1000),
        ];
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &kvm);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["kvm-spte-zapped"]);
        assert!(exclusive_window(&ev[..1], 0x7f00_0020_0000, ioctl).is_none());
    }

    #[test]
    fn value_lost_before_conversion_fails() {
        let (mut o, ev) = good();
        o.value_at_conversion = 0;
        let mut v = Verdict::default();
        judge_conversion(&mut v, &o, &ev);
        let failed: Vec<_> = v.failures().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["value-kept-at-conversion"]);
    }

    #[test]
    fn event_outside_window_does_not_count() {
        let (o, _) = good();
        let mut v = Verdict::default();
        judge_exclusive(
            &mut v,
            &o,
            &[unmap(30_000, 0x7f00_0020_0000, 0x7f00_0020_1000)],
        );
        assert!(v.failures().any(|c| c.name == "kvm-invalidated"));
    }
}

#[cfg(test)]
mod mapping_oracle_tests {
    use super::*;
    use crate::pagemap::PagemapEntry;
    use crate::secondary_mmu::KvmEventKind;

    fn set(gfn: u64, spte: u64) -> KvmEvent {
        KvmEvent {
            time_ns: 1000,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::SetSpte {
                gfn,
                spte,
                level: 1,
            },
        }
    }

    #[test]
    fn kvm_must_map_the_frame_the_host_maps() {
        let present = |pfn: u64| PagemapEntry {
            raw: (1 << 63) | pfn,
        };
        let kvm = [set(
            0x205,
            crate::secondary_mmu::SPTE_MMU_PRESENT | (0x1234 << 12),
        )];
        assert!(kvm_maps_what_host_maps(&kvm, 0x205, present(0x1234)).is_ok());
        let other = kvm_maps_what_host_maps(&kvm, 0x205, present(0x999)).unwrap_err();
        assert!(other.contains("pfn 0x1234"), "{other}");
        let none = kvm_maps_what_host_maps(&kvm, 0x205, PagemapEntry { raw: 0 }).unwrap_err();
        assert!(none.contains("gfn 0x205"), "{none}");
        // KVM never mapped it: nothing to compare.
        assert!(kvm_maps_what_host_maps(&kvm, 0x206, PagemapEntry { raw: 0 }).is_ok());
    }
}
