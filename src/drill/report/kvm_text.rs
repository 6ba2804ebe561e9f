//! KVM trace records in the words a kernel developer reads them in: gfn,
//! SPTE old -> new, level. A short label for the timeline and the full
//! record (every field, decoded and raw) for its tooltip.

use std::ops::Range;

use crate::secondary_mmu::{KvmEvent, KvmEventKind, SPTE_MMU_PRESENT};

/// SHADOW_NONPRESENT_VALUE on x86-64 (arch/x86/kvm/mmu/spte.h): bit 63.
const SHADOW_NONPRESENT: u64 = 1 << 63;
/// FROZEN_SPTE: the TDP MMU's placeholder while it rewrites an SPTE.
const FROZEN_SPTE: u64 = SHADOW_NONPRESENT | 0x1a0;
/// SPTE_BASE_ADDR_MASK without the host's physical-address limit.
const SPTE_ADDR: u64 = ((1 << 52) - 1) & !0xfff;
/// Writable (bit 1 in both NPT and EPT entries).
const SPTE_W: u64 = 1 << 1;
/// Huge page (bit 7: PS in NPT, "large" in EPT).
const SPTE_HUGE: u64 = 1 << 7;

/// What a mapping of `level` covers: 4K, 2M, 1G.
pub fn level_size(level: u8) -> &'static str {
    match level {
        1 => "4K",
        2 => "2M",
        3 => "1G",
        4 => "512G",
        _ => "?",
    }
}

/// One SPTE value in a few words: `none`, `frozen`, `pfn 0x1234 W`,
/// `table 0x5678` (a link to a lower page table), `nonpresent 0x...`.
pub fn spte_brief(spte: u64, level: u8) -> String {
    if spte & SPTE_MMU_PRESENT == 0 {
        return match spte {
            0 | SHADOW_NONPRESENT => "none".into(),
            FROZEN_SPTE => "frozen".into(),
            v => format!("nonpresent {v:#x}"),
        };
    }
    let pfn = (spte & SPTE_ADDR) >> 12;
    if level > 1 && spte & SPTE_HUGE == 0 {
        return format!("table {pfn:#x}");
    }
    let w = if spte & SPTE_W != 0 { " W" } else { " RO" };
    format!("pfn {pfn:#x}{w}")
}

/// The long form of an SPTE: raw value and what it is.
fn spte_long(spte: u64, level: u8) -> String {
    let what = if spte & SPTE_MMU_PRESENT == 0 {
        match spte {
            0 | SHADOW_NONPRESENT => "not present".to_string(),
            FROZEN_SPTE => "frozen (being changed)".to_string(),
            _ => "not present (MMIO or special)".to_string(),
        }
    } else if level > 1 && spte & SPTE_HUGE == 0 {
        format!(
            "present, links the lower table at pfn {:#x}",
            (spte & SPTE_ADDR) >> 12
        )
    } else {
        format!(
            "present leaf ({}), pfn {:#x}, {}",
            level_size(level),
            (spte & SPTE_ADDR) >> 12,
            if spte & SPTE_W != 0 {
                "writable"
            } else {
                "read-only"
            }
        )
    };
    format!("{spte:#x}: {what}")
}

/// x86 page-fault error code bits as KVM passes them (PFERR_*).
fn fault_access(code: u64) -> String {
    let access = if code & (1 << 4) != 0 {
        "fetch"
    } else if code & (1 << 1) != 0 {
        "write"
    } else {
        "read"
    };
    let mut s = format!(
        "{access}, {}",
        if code & 1 != 0 {
            "protection"
        } else {
            "not present"
        }
    );
    for (bit, name) in [
        (2, "user"),
        (3, "reserved bit"),
        (32, "final gpa"),
        (33, "guest page-table walk"),
    ] {
        if code & (1 << bit) != 0 {
            s.push_str(", ");
            s.push_str(name);
        }
    }
    s
}

fn gfns(r: &Range<u64>) -> String {
    if r.end == r.start + 1 {
        format!("gfn {:#x}", r.start)
    } else {
        format!("gfn {:#x}..{:#x}", r.start, r.end)
    }
}

/// Short label and full record of one KVM event. `to_gfns` maps a host
/// range to the guest frames behind it (None outside guest RAM).
pub fn describe(
    e: &KvmEvent,
    to_gfns: &dyn Fn(u64, u64) -> Option<Range<u64>>,
) -> (String, String) {
    let lvl = |level: u8| {
        if level > 1 {
            format!(" L{level}")
        } else {
            String::new()
        }
    };
    let (short, long) = match &e.kind {
        KvmEventKind::UnmapHvaRange { start, end } => {
            let g = to_gfns(*start, *end);
            (
                match &g {
                    Some(g) => format!("unmap {}", gfns(g)),
                    None => format!("unmap hva {start:#x}"),
                },
                format!(
                    "hva {start:#x}-{end:#x} ({} KiB){}",
                    end.saturating_sub(*start) / 1024,
                    g.map(|g| format!(", {}", gfns(&g))).unwrap_or_default()
                ),
            )
        }
        KvmEventKind::AgeHva { start, end } => {
            let g = to_gfns(*start, *end);
            (
                match &g {
                    Some(g) => format!("age {}", gfns(g)),
                    None => format!("age hva {start:#x}"),
                },
                format!("hva {start:#x}-{end:#x}"),
            )
        }
        KvmEventKind::TestAgeHva { hva } => {
            (format!("test-age hva {hva:#x}"), format!("hva {hva:#x}"))
        }
        KvmEventKind::PageFault {
            vcpu,
            address,
            error_code,
        } => (
            format!("fault gfn {:#x} {}", address >> 12, {
                let a = fault_access(*error_code);
                a.split(',').next().unwrap_or_default().to_string()
            }),
            format!(
                "vCPU {vcpu}, gpa {address:#x} (gfn {:#x}), error code {error_code:#x}: {}",
                address >> 12,
                fault_access(*error_code)
            ),
        ),
        KvmEventKind::SpteRequested { gfn, pfn, level } => (
            format!("map gfn {gfn:#x} -> pfn {pfn:#x}{}", lvl(*level)),
            format!(
                "gfn {gfn:#x} -> pfn {pfn:#x}, level {level} ({})",
                level_size(*level)
            ),
        ),
        KvmEventKind::TdpSpteChanged {
            gfn,
            level,
            old_spte,
            new_spte,
        } => (
            format!(
                "SPTE gfn {gfn:#x}{}: {} -> {}",
                lvl(*level),
                spte_brief(*old_spte, *level),
                spte_brief(*new_spte, *level)
            ),
            format!(
                "gfn {gfn:#x}, level {level} ({})\nold {}\nnew {}",
                level_size(*level),
                spte_long(*old_spte, *level),
                spte_long(*new_spte, *level)
            ),
        ),
        KvmEventKind::SetSpte { gfn, spte, level } => (
            format!(
                "set_spte gfn {gfn:#x}{}: {}",
                lvl(*level),
                spte_brief(*spte, *level)
            ),
            format!(
                "gfn {gfn:#x}, level {level} ({})\nspte {}",
                level_size(*level),
                spte_long(*spte, *level)
            ),
        ),
        KvmEventKind::FastPageFault { vcpu, gpa } => (
            format!("fast fault gfn {:#x}", gpa >> 12),
            format!("vCPU {vcpu}, gpa {gpa:#x}"),
        ),
        KvmEventKind::SplitHugePage { gfn, level } => (
            format!("split gfn {gfn:#x} L{level}"),
            format!("gfn {gfn:#x}, level {level} ({})", level_size(*level)),
        ),
        KvmEventKind::Other { name, body } => (name.clone(), body.trim().to_string()),
    };
    let long = format!(
        "{}: {long}\n(tid {}, host CPU {})",
        e.kind.name(),
        e.tid,
        e.cpu
    );
    (short, long)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: KvmEventKind) -> KvmEvent {
        KvmEvent {
            time_ns: 1,
            tid: 7,
            cpu: 0,
            kind,
        }
    }

    fn no_gfns(_: u64, _: u64) -> Option<Range<u64>> {
        None
    }

    #[test]
    fn spte_change_reads_as_gfn_old_new_level() {
        // Records from a lab run of exclusive-basic (7.2, AMD NPT).
        let (s, l) = describe(
            &ev(KvmEventKind::TdpSpteChanged {
                gfn: 516,
                level: 1,
                old_spte: 0x8000_0000_0000_0000,
                new_spte: 0x3376_7e67,
            }),
            &no_gfns,
        );
        assert_eq!(s, "SPTE gfn 0x204: none -> pfn 0x33767 W");
        assert!(l.starts_with("kvm_tdp_mmu_spte_changed: gfn 0x204, level 1 (4K)"));
        assert!(l.contains("old 0x8000000000000000: not present"));
        assert!(l.contains("new 0x33767e67: present leaf (4K), pfn 0x33767, writable"));
        let (s, _) = describe(
            &ev(KvmEventKind::TdpSpteChanged {
                gfn: 512,
                level: 2,
                old_spte: 0x8000_0000_0000_0000,
                new_spte: 0x34f_7827,
            }),
            &no_gfns,
        );
        assert_eq!(s, "SPTE gfn 0x200 L2: none -> table 0x34f7");
        assert_eq!(spte_brief(FROZEN_SPTE, 1), "frozen");
        assert_eq!(spte_brief(0x3376_7e65, 1), "pfn 0x33767 RO");
        assert_eq!(spte_brief(0x3340_0ee7, 2), "pfn 0x33400 W");
    }

    #[test]
    fn faults_unmaps_and_requests() {
        let (s, l) = describe(
            &ev(KvmEventKind::PageFault {
                vcpu: 0,
                address: 0x204000,
                error_code: 0x1_0000_0006,
            }),
            &no_gfns,
        );
        assert_eq!(s, "fault gfn 0x204 write");
        assert!(l.contains("write, not present, user, final gpa"), "{l}");
        let to = |s: u64, e: u64| {
            (s >= 0x7f00_0000_0000)
                .then(|| (s - 0x7f00_0000_0000) >> 12..(e - 0x7f00_0000_0000) >> 12)
        };
        let (s, l) = describe(
            &ev(KvmEventKind::UnmapHvaRange {
                start: 0x7f00_0020_4000,
                end: 0x7f00_0020_5000,
            }),
            &to,
        );
        assert_eq!(s, "unmap gfn 0x204");
        assert!(l.contains("hva 0x7f0000204000-0x7f0000205000 (4 KiB), gfn 0x204"));
        let (s, _) = describe(
            &ev(KvmEventKind::UnmapHvaRange {
                start: 0x7f00_0020_0000,
                end: 0x7f00_0040_0000,
            }),
            &to,
        );
        assert_eq!(s, "unmap gfn 0x200..0x400");
        let (s, _) = describe(
            &ev(KvmEventKind::SpteRequested {
                gfn: 0x200,
                pfn: 0x8200,
                level: 2,
            }),
            &no_gfns,
        );
        assert_eq!(s, "map gfn 0x200 -> pfn 0x8200 L2");
        let (s, l) = describe(
            &ev(KvmEventKind::Other {
                name: "kvm_foo".into(),
                body: " a b ".into(),
            }),
            &no_gfns,
        );
        assert_eq!(s, "kvm_foo");
        assert!(l.starts_with("kvm_foo: a b\n(tid 7"));
    }
}
