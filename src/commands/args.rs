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

pub use crate::size::parse_size;

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
