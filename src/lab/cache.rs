//! Where heavy artifacts live: kernel builds, downloaded packages, built
//! modules. Outside the repository, keyed by their inputs.

use super::LabError;
use std::path::PathBuf;

/// `$MMUVISOR_CACHE`, else `$XDG_CACHE_HOME/mmuvisor`, else `~/.cache/mmuvisor`.
pub fn cache_dir(overridden: Option<&PathBuf>) -> Result<PathBuf, LabError> {
    if let Some(dir) = overridden {
        return Ok(dir.clone());
    }
    if let Some(dir) = std::env::var_os("MMUVISOR_CACHE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("mmuvisor"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("mmuvisor"))
        .ok_or(LabError::NoCacheDir)
}

/// A cache key that stays the same across Rust releases and machines:
/// FNV-1a, 64 bit (std's `DefaultHasher` promises no stable output).
#[derive(Debug, Clone, Copy)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds raw bytes.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
    /// Feeds one field: its length, then its bytes (so that "ab","c" and
    /// "a","bc" differ).
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.raw(&(bytes.len() as u64).to_le_bytes()).raw(bytes)
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
    /// 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::StableHash;

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(StableHash::new().finish(), 0xcbf29ce484222325);
        assert_eq!(StableHash::new().raw(b"a").finish(), 0xaf63dc4c8601ec8c);
        assert_eq!(
            StableHash::new().raw(b"foobar").finish(),
            0x85944171f73967e8
        );
        let ab_c = StableHash::new().field(b"ab").field(b"c").finish();
        let a_bc = StableHash::new().field(b"a").field(b"bc").finish();
        assert_ne!(ab_c, a_bc);
    }
}
