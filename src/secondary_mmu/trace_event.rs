//! KVM's MMU events as the trace pipe prints them, decoded.

/// The event every verdict about invalidation relies on.
pub const UNMAP_EVENT: &str = "kvm/kvm_unmap_hva_range";

/// Events enabled when the kernel has them. The first is required.
pub const EVENTS: &[&str] = &[
    UNMAP_EVENT,
    "kvm/kvm_age_hva",
    "kvm/kvm_test_age_hva",
    "kvm/kvm_page_fault",
    "kvmmmu/kvm_mmu_spte_requested",
    "kvmmmu/kvm_tdp_mmu_spte_changed",
    "kvmmmu/kvm_mmu_set_spte",
    "kvmmmu/fast_page_fault",
    "kvmmmu/kvm_mmu_split_huge_page",
];

/// KVM's "shadow present" bit of an SPTE (arch/x86/kvm/mmu/spte.h
/// SPTE_MMU_PRESENT_MASK): a non-present SPTE, frozen or zapped, lacks it.
pub const SPTE_MMU_PRESENT: u64 = 1 << 11;

/// The TDP MMU's SPTE-change event: the SPTE-level evidence the exclusive
/// drills judge KVM's mapping by.
pub const SPTE_EVENT: &str = "kvmmmu/kvm_tdp_mmu_spte_changed";

/// A decoded KVM MMU event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmEventKind {
    /// MMU notifier invalidation: KVM must drop `[start, end)`.
    UnmapHvaRange {
        start: u64,
        end: u64,
    },
    AgeHva {
        start: u64,
        end: u64,
    },
    TestAgeHva {
        hva: u64,
    },
    PageFault {
        vcpu: u32,
        address: u64,
        error_code: u64,
    },
    SpteRequested {
        gfn: u64,
        pfn: u64,
        level: u8,
    },
    TdpSpteChanged {
        gfn: u64,
        level: u8,
        old_spte: u64,
        new_spte: u64,
    },
    SetSpte {
        gfn: u64,
        spte: u64,
        level: u8,
    },
    FastPageFault {
        vcpu: u32,
        gpa: u64,
    },
    SplitHugePage {
        gfn: u64,
        level: u8,
    },
    /// Any other enabled event, undecoded.
    Other {
        name: String,
        body: String,
    },
}

impl KvmEventKind {
    /// Short name for timelines and diagnostics.
    pub fn name(&self) -> &str {
        match self {
            KvmEventKind::UnmapHvaRange { .. } => "kvm_unmap_hva_range",
            KvmEventKind::AgeHva { .. } => "kvm_age_hva",
            KvmEventKind::TestAgeHva { .. } => "kvm_test_age_hva",
            KvmEventKind::PageFault { .. } => "kvm_page_fault",
            KvmEventKind::SpteRequested { .. } => "kvm_mmu_spte_requested",
            KvmEventKind::TdpSpteChanged { .. } => "kvm_tdp_mmu_spte_changed",
            KvmEventKind::SetSpte { .. } => "kvm_mmu_set_spte",
            KvmEventKind::FastPageFault { .. } => "fast_page_fault",
            KvmEventKind::SplitHugePage { .. } => "kvm_mmu_split_huge_page",
            KvmEventKind::Other { name, .. } => name,
        }
    }
}

/// One trace record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmEvent {
    /// CLOCK_MONOTONIC, ns (the trace prints microseconds).
    pub time_ns: u64,
    pub tid: u32,
    pub cpu: u32,
    pub kind: KvmEventKind,
}

impl KvmEvent {
    /// Whether this is an unmap whose range covers all of `[start, end)`.
    pub fn unmap_covers(&self, start: u64, end: u64) -> bool {
        matches!(self.kind, KvmEventKind::UnmapHvaRange { start: s, end: e } if s <= start && e >= end)
    }
    /// Whether this is an unmap that intersects `[start, end)`.
    pub fn unmap_touches(&self, start: u64, end: u64) -> bool {
        matches!(self.kind, KvmEventKind::UnmapHvaRange { start: s, end: e } if s < end && e > start)
    }
    /// For an SPTE change whose mapping covers `gfn` (a huge SPTE covers
    /// 512^(level-1) frames): whether it was present before (None when the
    /// record does not say) and whether it is present after.
    pub fn spte_transition(&self, gfn: u64) -> Option<(Option<bool>, bool)> {
        let covers = |g: u64, level: u8| {
            let span = 1u64 << (9 * (level.clamp(1, 5) as u32 - 1));
            gfn >= g & !(span - 1) && gfn < (g & !(span - 1)) + span
        };
        // A present leaf maps memory: level 1, or a huge page (PS bit 7).
        // Links to lower page tables are skipped: when one goes, the TDP
        // MMU traces the zap of each child SPTE on its own.
        let leaf = |spte: u64, level: u8| {
            spte & SPTE_MMU_PRESENT != 0 && (level <= 1 || spte & (1 << 7) != 0)
        };
        let link = |spte: u64, level: u8| spte & SPTE_MMU_PRESENT != 0 && !leaf(spte, level);
        match self.kind {
            KvmEventKind::TdpSpteChanged {
                gfn: g,
                level,
                old_spte,
                new_spte,
            } if covers(g, level) && !link(old_spte, level) && !link(new_spte, level) => {
                Some((Some(leaf(old_spte, level)), leaf(new_spte, level)))
            }
            KvmEventKind::SetSpte {
                gfn: g,
                spte,
                level,
            } if covers(g, level) && !link(spte, level) => Some((None, leaf(spte, level))),
            _ => None,
        }
    }
    /// For an SPTE change whose mapping covers `gfn`: the host frame KVM
    /// maps `gfn` to after it (None: not mapped). A huge SPTE maps `gfn` to
    /// its base frame plus `gfn`'s offset inside it.
    pub fn spte_mapping(&self, gfn: u64) -> Option<Option<u64>> {
        let (_, present) = self.spte_transition(gfn)?;
        let (g, level, spte) = match self.kind {
            KvmEventKind::TdpSpteChanged {
                gfn,
                level,
                new_spte,
                ..
            } => (gfn, level, new_spte),
            KvmEventKind::SetSpte { gfn, spte, level } => (gfn, level, spte),
            _ => return None,
        };
        if !present {
            return Some(None);
        }
        let shift = 9 * (level.clamp(1, 5) as u32 - 1);
        // Physical address bits 12..51, less the low bits a huge SPTE uses
        // for its flags (PAT at bit 12).
        let base = (spte & 0x000f_ffff_ffff_f000) >> (12 + shift) << shift;
        Some(Some(base + (gfn - (g >> shift << shift))))
    }
    /// Whether the event lies in `[from_ns, to_ns]` at the trace's µs resolution.
    pub fn within(&self, from_ns: u64, to_ns: u64) -> bool {
        let t = self.time_ns / 1000;
        t >= from_ns / 1000 && t <= to_ns / 1000
    }
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(',');
    let s = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Value of the token after `key ` in `body`.
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let mut it = body.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == key {
            return it.next();
        }
    }
    None
}

fn range_after_colon(body: &str) -> Option<(u64, u64)> {
    let (_, r) = body.rsplit_once(':')?;
    let (a, b) = r.split_once("--")?;
    Some((hex(a)?, hex(b)?))
}

fn decode(name: &str, body: &str) -> KvmEventKind {
    let other = || KvmEventKind::Other {
        name: name.to_string(),
        body: body.to_string(),
    };
    let dec = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    let kind = match name {
        "kvm_unmap_hva_range" => {
            range_after_colon(body).map(|(start, end)| KvmEventKind::UnmapHvaRange { start, end })
        }
        "kvm_age_hva" => {
            range_after_colon(body).map(|(start, end)| KvmEventKind::AgeHva { start, end })
        }
        "kvm_test_age_hva" => body
            .rsplit_once(':')
            .and_then(|(_, v)| hex(v))
            .map(|hva| KvmEventKind::TestAgeHva { hva }),
        "kvm_page_fault" => (|| {
            Some(KvmEventKind::PageFault {
                vcpu: dec(field(body, "vcpu"))? as u32,
                address: hex(field(body, "address")?)?,
                error_code: hex(field(body, "error_code")?)?,
            })
        })(),
        "kvm_mmu_spte_requested" => (|| {
            Some(KvmEventKind::SpteRequested {
                gfn: hex(field(body, "gfn")?)?,
                pfn: hex(field(body, "pfn")?)?,
                level: dec(field(body, "level"))? as u8,
            })
        })(),
        "kvm_tdp_mmu_spte_changed" => (|| {
            Some(KvmEventKind::TdpSpteChanged {
                gfn: hex(field(body, "gfn")?)?,
                level: dec(field(body, "level"))? as u8,
                old_spte: hex(field(body, "old_spte")?)?,
                new_spte: hex(field(body, "new_spte")?)?,
            })
        })(),
        "kvm_mmu_set_spte" => (|| {
            Some(KvmEventKind::SetSpte {
                gfn: hex(field(body, "gfn")?)?,
                spte: hex(field(body, "spte")?)?,
                level: dec(field(body, "level"))? as u8,
            })
        })(),
        "fast_page_fault" => (|| {
            Some(KvmEventKind::FastPageFault {
                vcpu: dec(field(body, "vcpu"))? as u32,
                gpa: hex(field(body, "gva")?)?,
            })
        })(),
        "kvm_mmu_split_huge_page" => (|| {
            Some(KvmEventKind::SplitHugePage {
                gfn: hex(field(body, "gfn")?)?,
                level: dec(field(body, "level")).unwrap_or(0) as u8,
            })
        })(),
        _ => None,
    };
    kind.unwrap_or_else(other)
}

/// Parsed trace line.
#[derive(Debug, PartialEq, Eq)]
pub enum TraceLine {
    Event(KvmEvent),
    /// `CPU:N [LOST M EVENTS]`.
    Lost(u64),
    Ignored,
}

/// Parses one line of `trace`/`trace_pipe` output:
/// `<task>-<tid> [<cpu>] <flags> <secs>.<usecs>: <event>: <body>`.
pub fn parse_line(line: &str) -> TraceLine {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("CPU:") {
        if let Some(i) = rest.find("[LOST ") {
            let n = rest[i + 6..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            return TraceLine::Lost(n);
        }
    }
    if line.trim_start().starts_with('#') {
        return TraceLine::Ignored;
    }
    // The CPU field is the first " [digits]" after the task-tid.
    let mut search = 0;
    let (head, cpu, tail) = loop {
        let Some(i) = line[search..].find(" [").map(|i| i + search) else {
            return TraceLine::Ignored;
        };
        let after = &line[i + 2..];
        if let Some(j) = after.find(']') {
            if let Ok(cpu) = after[..j].parse::<u32>() {
                break (&line[..i], cpu, &after[j + 1..]);
            }
        }
        search = i + 2;
    };
    let tid = head
        .trim()
        .rsplit_once('-')
        .and_then(|(_, t)| t.parse::<u32>().ok())
        .unwrap_or(0);
    // tail: " <flags> 12.345678: name: body" (flags may be absent).
    let Some(ts_end) = tail.find(": ") else {
        return TraceLine::Ignored;
    };
    let Some(ts) = tail[..ts_end].split_whitespace().last() else {
        return TraceLine::Ignored;
    };
    let Some((secs, frac)) = ts.split_once('.') else {
        return TraceLine::Ignored;
    };
    let (Ok(secs), Ok(frac_v)) = (secs.parse::<u64>(), frac.parse::<u64>()) else {
        return TraceLine::Ignored;
    };
    let frac_ns = match frac.len() {
        9 => frac_v,
        6 => frac_v * 1000,
        n if n < 9 => frac_v * 10u64.pow(9 - n as u32),
        _ => return TraceLine::Ignored,
    };
    let rest = &tail[ts_end + 2..];
    let (name, body) = rest
        .split_once(": ")
        .unwrap_or((rest.trim_end_matches(':'), ""));
    TraceLine::Event(KvmEvent {
        time_ns: secs * 1_000_000_000 + frac_ns,
        tid,
        cpu,
        kind: decode(name.trim(), body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unmap_line() {
        let l = "     vcpu-0-1234    [001] ..... 12345.678901: kvm_unmap_hva_range: mmu notifier unmap range: 0x007f1234567000 -- 0x007f1234568000";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!("not parsed")
        };
        assert_eq!(e.tid, 1234);
        assert_eq!(e.cpu, 1);
        assert_eq!(e.time_ns, 12_345_678_901_000);
        assert_eq!(
            e.kind,
            KvmEventKind::UnmapHvaRange {
                start: 0x7f1234567000,
                end: 0x7f1234568000
            }
        );
        assert!(e.unmap_covers(0x7f1234567000, 0x7f1234568000));
        assert!(!e.unmap_covers(0x7f1234567000, 0x7f1234569000));
        assert!(e.within(12_345_678_901_500, 12_345_678_999_000));
        assert!(!e.within(12_345_678_902_000, 12_345_678_999_000));
    }

    #[test]
    fn parses_mmu_lines() {
        let l = "<...>-77 [000] d..1. 5.000001: kvm_mmu_spte_requested: gfn 200 pfn 1a2b level 1";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!()
        };
        assert_eq!(
            e.kind,
            KvmEventKind::SpteRequested {
                gfn: 0x200,
                pfn: 0x1a2b,
                level: 1
            }
        );
        let l = "a b-c-9 [003] 1.5: kvm_tdp_mmu_spte_changed: as id 0 gfn 201 level 2 old_spte 0 new_spte 86";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!()
        };
        assert_eq!(e.tid, 9);
        assert_eq!(
            e.kind,
            KvmEventKind::TdpSpteChanged {
                gfn: 0x201,
                level: 2,
                old_spte: 0,
                new_spte: 0x86
            }
        );
        assert_eq!(parse_line("CPU:1 [LOST 17 EVENTS]"), TraceLine::Lost(17));
        assert_eq!(parse_line("# tracer: nop"), TraceLine::Ignored);
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;

    fn changed(gfn: u64, level: u8, old_spte: u64, new_spte: u64) -> KvmEvent {
        KvmEvent {
            time_ns: 1000,
            tid: 1,
            cpu: 0,
            kind: KvmEventKind::TdpSpteChanged {
                gfn,
                level,
                old_spte,
                new_spte,
            },
        }
    }

    #[test]
    fn an_spte_maps_its_frame_and_a_huge_one_the_offset_inside() {
        let p = SPTE_MMU_PRESENT;
        // 4 KiB: gfn 0x205 to pfn 0x1234.
        let e = changed(0x205, 1, 0, p | (0x1234 << 12) | 0x7);
        assert_eq!(e.spte_mapping(0x205), Some(Some(0x1234)));
        assert_eq!(e.spte_mapping(0x206), None);
        // Zapped.
        let e = changed(0x205, 1, p | (0x1234 << 12), 0);
        assert_eq!(e.spte_mapping(0x205), Some(None));
        // 2 MiB at gfn 0x200 to pfn 0x40000 (PS bit, PAT bit 12 set): gfn
        // 0x205 is frame 0x40005.
        let e = changed(0x200, 2, 0, p | (1 << 7) | (1 << 12) | 0x4000_0000);
        assert_eq!(e.spte_mapping(0x205), Some(Some(0x40005)));
        // A link to a page table maps nothing.
        let e = changed(0x200, 2, 0, p | 0x5000);
        assert_eq!(e.spte_mapping(0x205), None);
    }
}
