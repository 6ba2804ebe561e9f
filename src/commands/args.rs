//! Value parsers every subcommand shares, so a size or a number means the
//! same thing wherever it is given.

/// Parses a number in decimal or 0x hex.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_need_a_unit() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1536MB"), Ok(1536 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert!(parse_size("4096").unwrap_err().contains("needs a unit"));
        assert!(parse_size("0M").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn numbers_in_decimal_or_hex() {
        assert_eq!(parse_u64("42"), Ok(42));
        assert_eq!(parse_u64("0x2a"), Ok(42));
        assert!(parse_u64("x").is_err());
    }
}
