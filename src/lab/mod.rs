//! The lab: a QEMU VM booting the project's own kernel, with KVM inside
//! (nested), the helper module loaded, and mmuvisor running there as on a
//! real host. See docs/design.md and resources/kernels/.

pub mod assets;
pub mod cache;
pub mod clock;
pub mod cpio;
pub mod embedded;
pub mod initramfs;
pub mod kernel;
pub mod kernel_cache;
pub mod kmod;
pub mod known_bad;
pub mod known_issues;
pub mod matrix;
pub mod qemu;
pub mod scripts;
pub mod session;

use std::path::PathBuf;

/// Everything that can go wrong in the lab, one line each.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("cannot find a cache folder: set MMUVISOR_CACHE or HOME")]
    NoCacheDir,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{tool}' not found: install it with `apt-get install {package}`")]
    MissingTool { tool: String, package: String },
    #[error("{script} failed (exit status {status}){hint}")]
    Script {
        script: String,
        status: i32,
        hint: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the lab timed out after {0} s; QEMU was stopped")]
    Timeout(u64),
    #[error("interrupted; QEMU was stopped and the lab's temporary files removed")]
    Interrupted,
    #[error("the lab ended without the command's exit status (kernel panic, crash or poweroff from inside?); see the console above")]
    NoStatus,
    #[error("the lab kernel crashed: {0} (console above)")]
    KernelCrash(String),
}

impl LabError {
    /// An I/O error with what was being done and on which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// A fresh private folder `$TMPDIR/mmuvisor-NAME-XXXXXX` (mode 0700, a
/// random name: nothing another user can prepare), removed on drop.
pub fn temp_dir(name: &str) -> Result<vmm_sys_util::tempdir::TempDir, LabError> {
    let prefix = std::env::temp_dir().join(format!("mmuvisor-{name}-"));
    vmm_sys_util::tempdir::TempDir::new_with_prefix(&prefix).map_err(|e| {
        LabError::io(
            "cannot create a temporary folder in",
            std::env::temp_dir(),
            std::io::Error::from(e),
        )
    })
}

/// Finds `tool` on PATH or says which Debian package provides it.
pub fn require_tool(tool: &str, package: &str) -> Result<PathBuf, LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::MissingTool {
            tool: tool.to_string(),
            package: package.to_string(),
        })
}
