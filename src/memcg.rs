//! A memory cgroup (cgroup v2) of this process's own: its pages are charged
//! there, so `memory.reclaim` reclaims exactly them and `memory.stat`
//! counts exactly them.

use std::io;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Why there is no memory cgroup here (a skip for whoever needs one).
#[derive(Debug, thiserror::Error)]
pub enum MemcgError {
    #[error("cannot mount cgroup2 on {ROOT}: {0}")]
    Mount(io::Error),
    #[error("no memory cgroup controller (kernel without CONFIG_MEMCG)")]
    NoController,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MemcgError + 'a {
    move |source| MemcgError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A child cgroup of the cgroup2 root with the memory controller, this
/// process moved into it; moved back to the root and removed on drop.
pub struct Memcg {
    dir: PathBuf,
}

impl Memcg {
    /// Mounts cgroup2 where nothing is mounted yet (the lab), enables the
    /// memory controller for the root's children, and moves this process
    /// into a new child `NAME-PID`.
    pub fn enter(name: &str) -> Result<Memcg, MemcgError> {
        let root = Path::new(ROOT);
        if !root.join("cgroup.controllers").exists() {
            let (src, fs) = (c"cgroup2", c"cgroup2");
            // SAFETY: mounts cgroup2 on the (empty) sysfs mount point; all
            // pointers are NUL-terminated literals.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    c"/sys/fs/cgroup".as_ptr(),
                    fs.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(MemcgError::Mount(io::Error::last_os_error()));
            }
        }
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(MemcgError::NoController);
        }
        let control = root.join("cgroup.subtree_control");
        std::fs::write(&control, "+memory").map_err(io_err("cannot write", &control))?;
        let dir = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(io_err("cannot create", &dir))?;
        let cg = Memcg { dir };
        let procs = cg.dir.join("cgroup.procs");
        std::fs::write(&procs, std::process::id().to_string())
            .map_err(io_err("cannot write", &procs))?;
        Ok(cg)
    }

    /// A `memory.stat` counter (bytes or events).
    pub fn stat(&self, key: &str) -> Option<u64> {
        let stat = std::fs::read_to_string(self.dir.join("memory.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Asks the kernel to reclaim `bytes` of this cgroup's anonymous
    /// memory (`memory.reclaim`; EAGAIN when it reclaimed less). Reclaim
    /// prefers page cache while there is some, and leaves the active anon
    /// list alone meanwhile: `swappiness=max` (7.0+) or `=200` (6.12+)
    /// make it take anon pages, and kernels without either take the bare
    /// request.
    pub fn reclaim_anon(&self, bytes: u64) -> io::Result<()> {
        let file = self.dir.join("memory.reclaim");
        let mut last = Ok(());
        for arg in [" swappiness=max", " swappiness=200", ""] {
            last = std::fs::write(&file, format!("{bytes}{arg}"));
            match &last {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => continue,
                _ => break,
            }
        }
        last
    }
}

impl Drop for Memcg {
    fn drop(&mut self) {
        let _ = std::fs::write(
            Path::new(ROOT).join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}
