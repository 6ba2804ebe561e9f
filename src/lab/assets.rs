//! Test-guest assets, fetched from Debian bookworm with apt and cached:
//! busybox (static) and Debian's stock kernel for nested test guests.

use super::{scripts, LabError};
use std::path::{Path, PathBuf};

/// The fetched assets.
#[derive(Debug, Clone)]
pub struct Assets {
    pub dir: PathBuf,
}

impl Assets {
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
    /// Debian's stock kernel (bzImage), the nested test guest's kernel.
    pub fn guest_kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }
    /// The same kernel decompressed (an ELF with a PVH entry), where the
    /// fetch could decompress it: booted without the kernel's own
    /// decompressor. Too big for the lab's initramfs; the lab reads it
    /// through the host share.
    pub fn guest_vmlinux(&self) -> Option<PathBuf> {
        let path = self.dir.join("vmlinux");
        path.is_file().then_some(path)
    }
}

/// Fetches the assets, or finds them in the cache.
pub fn ensure(cache: &Path) -> Result<Assets, LabError> {
    super::require_tool("apt-get", "apt")?;
    super::require_tool("dpkg-deb", "dpkg")?;
    let scripts = scripts::materialize(cache)?;
    let args = [
        "--cache".to_string(),
        cache.display().to_string(),
        "--scripts".to_string(),
        scripts.display().to_string(),
    ];
    let dir = scripts::run_for_value(&scripts.join("fetch-assets.sh"), &args, "ASSETS_DIR")?;
    Ok(Assets { dir })
}
