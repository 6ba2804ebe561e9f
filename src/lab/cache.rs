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
