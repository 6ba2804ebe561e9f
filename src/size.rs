//! Sizes as people write them (2G, 512M), the same wherever one is read: a
//! command-line flag or an environment variable.

/// Parses a memory size with a binary unit: 512K, 64M, 2G, 1T, or bytes with
/// a B (4096B); "MiB"/"GB"-style spellings are accepted. A bare number is
/// refused: 4096 would mean bytes to some tools and MiB to others.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .unwrap_or(t);
    let (t, b_suffix) = match t.strip_suffix(['B', 'b']) {
        Some(rest) => (rest, true),
        None => (t, false),
    };
    let (num, shift) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 40),
        _ if b_suffix => (t, 0),
        _ => {
            return Err(format!(
                "size '{s}' needs a unit: K, M, G or T (e.g. {s}M), or B for bytes"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 64M, 2G)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("size '{s}' is zero or too large"))
}
