//! /proc/self/smaps: per-VMA memory figures (e.g. how much of guest RAM THP
//! backs right now).

use std::io;

/// The `field:` value (kB) of the VMA holding `hva` in this process; None
/// when no VMA holds it or the VMA has no such field.
pub fn vma_field_kb(hva: u64, field: &str) -> io::Result<Option<u64>> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    Ok(field_kb_in(&smaps, hva, field))
}

/// AnonHugePages of the VMA holding `hva`, in bytes.
pub fn anon_huge_bytes(hva: u64) -> io::Result<Option<u64>> {
    Ok(vma_field_kb(hva, "AnonHugePages")?.map(|kb| kb * 1024))
}

fn field_kb_in(smaps: &str, hva: u64, field: &str) -> Option<u64> {
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                inside = hva >= start && hva < end;
                continue;
            }
        }
        if inside {
            if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                return rest.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      2048 kB
7f0000400000-7f0000401000 r--p 00000000 00:00 0
AnonHugePages:         0 kB
";

    #[test]
    fn finds_the_field_of_the_vma_holding_the_address() {
        assert_eq!(
            field_kb_in(SMAPS, 0x7f0000001000, "AnonHugePages"),
            Some(2048)
        );
        assert_eq!(field_kb_in(SMAPS, 0x7f0000001000, "Size"), Some(4096));
        assert_eq!(field_kb_in(SMAPS, 0x7f0000400000, "AnonHugePages"), Some(0));
        assert_eq!(field_kb_in(SMAPS, 0x1000, "AnonHugePages"), None);
        assert_eq!(field_kb_in(SMAPS, 0x7f0000001000, "Anon"), None);
    }

    #[test]
    fn reads_this_process() {
        let x = Box::new(1u64);
        assert!(vma_field_kb(&*x as *const u64 as u64, "Size")
            .unwrap()
            .is_some());
    }
}
