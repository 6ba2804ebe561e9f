//! The kernel cache's bound: every built kernel (CACHE/kernels/NAME, about
//! 2 GB with its source tree) records when it was last used, and the least
//! recently used ones are removed once the folder holds more than its
//! bound (`MMUVISOR_CACHE_MAX`, default 64G; `lab cache` lists and prunes).
//! A kernel that is being built or used (its `.lock` held by a build
//! script) is never removed.

use super::LabError;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The default bound of CACHE/kernels.
pub const DEFAULT_MAX: u64 = 64 << 30;
/// The environment variable that overrides it (a size: 40G, 512M; 0 or
/// off keeps everything).
pub const MAX_ENV: &str = "MMUVISOR_CACHE_MAX";

/// Touched whenever the lab uses the kernel.
const USED: &str = ".used";
/// The folder's size in bytes, measured once the build was done.
const SIZE: &str = ".size";

/// One built (or half-built) kernel in the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub bytes: u64,
    pub last_used: SystemTime,
    /// The build finished (`.done`).
    pub complete: bool,
    /// Version, package version, flavour and patch names, from `inputs`.
    pub inputs: String,
}

/// A size in GiB, one decimal ("1.7 GiB").
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Records that the kernel in `dir` was just used.
pub fn touch(dir: &Path) {
    let _ = std::fs::write(dir.join(USED), b"");
}

/// Bytes under `dir`, not following links.
fn du(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The folder's size, from `.size` when it is newer than the build.
fn size_of(dir: &Path) -> u64 {
    let stamp = mtime(&dir.join(SIZE));
    let done = mtime(&dir.join(".done"));
    if let (Some(s), Some(d)) = (stamp, done) {
        if s >= d {
            if let Some(b) = std::fs::read_to_string(dir.join(SIZE))
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return b;
            }
        }
    }
    let bytes = du(dir);
    if done.is_some() {
        let _ = std::fs::write(dir.join(SIZE), bytes.to_string());
    }
    bytes
}

/// Every kernel in CACHE/kernels.
pub fn entries(cache: &Path) -> Result<Vec<Entry>, LabError> {
    let root = cache.join("kernels");
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("cannot list", &root, e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let dir = e.path();
        if !dir.is_dir() {
            continue;
        }
        let last_used = [USED, ".done", ".lock"]
            .iter()
            .filter_map(|f| mtime(&dir.join(f)))
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let inputs = std::fs::read_to_string(dir.join("inputs"))
            .map(|t| {
                t.lines()
                    .map(|l| {
                        Path::new(l)
                            .file_name()
                            .map_or(l.to_string(), |n| n.to_string_lossy().into_owned())
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        out.push(Entry {
            bytes: size_of(&dir),
            complete: dir.join(".done").exists(),
            dir,
            last_used,
            inputs,
        });
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.last_used));
    Ok(out)
}

/// Which entries to remove so that the rest fit in `max` bytes: the least
/// recently used first, never one in `keep`.
pub fn victims<'a>(entries: &'a [Entry], max: u64, keep: &[PathBuf]) -> Vec<&'a Entry> {
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut by_age: Vec<&Entry> = entries.iter().filter(|e| !keep.contains(&e.dir)).collect();
    by_age.sort_by_key(|e| e.last_used);
    let mut out = Vec::new();
    for e in by_age {
        if total <= max {
            break;
        }
        total -= e.bytes;
        out.push(e);
    }
    out
}

/// Whether a build script holds the kernel's lock (building it, or a lab
/// is about to use it).
fn locked(dir: &Path) -> bool {
    let Ok(f) = std::fs::File::open(dir.join(".lock")) else {
        return false;
    };
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

/// The bound from MMUVISOR_CACHE_MAX (None: no bound).
pub fn max_from_env() -> Result<Option<u64>, LabError> {
    match std::env::var(MAX_ENV) {
        Err(_) => Ok(Some(DEFAULT_MAX)),
        Ok(v) if matches!(v.trim(), "0" | "off" | "none") => Ok(None),
        Ok(v) => crate::size::parse_size(&v)
            .map(Some)
            .map_err(|e| LabError::Invalid(format!("{MAX_ENV}={v}: {e}"))),
    }
}

/// Removes the least recently used kernels until CACHE/kernels fits in
/// `max`, keeping `keep` and any kernel whose lock is held. Returns what
/// was removed.
pub fn prune(cache: &Path, max: u64, keep: &[PathBuf]) -> Result<Vec<Entry>, LabError> {
    let all = entries(cache)?;
    let mut busy: Vec<PathBuf> = keep.to_vec();
    busy.extend(all.iter().filter(|e| locked(&e.dir)).map(|e| e.dir.clone()));
    let mut removed = Vec::new();
    for e in victims(&all, max, &busy) {
        std::fs::remove_dir_all(&e.dir).map_err(|x| LabError::io("cannot remove", &e.dir, x))?;
        removed.push(e.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(name: &str, gb: u64, age_s: u64) -> Entry {
        Entry {
            dir: PathBuf::from(name),
            bytes: gb << 30,
            last_used: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 - age_s),
            complete: true,
            inputs: String::new(),
        }
    }

    #[test]
    fn the_least_recently_used_go_first_until_the_rest_fits() {
        let all = [
            entry("new", 2, 10),
            entry("old", 2, 1000),
            entry("mid", 2, 100),
            entry("oldest-but-kept", 2, 5000),
        ];
        let keep = [PathBuf::from("oldest-but-kept")];
        let names = |v: Vec<&Entry>| {
            v.iter()
                .map(|e| e.dir.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(victims(&all, 8 << 30, &keep)), Vec::<String>::new());
        assert_eq!(names(victims(&all, 5 << 30, &keep)), ["old", "mid"]);
        assert_eq!(names(victims(&all, 0, &keep)), ["old", "mid", "new"]);
    }

    #[test]
    fn prune_removes_old_kernels_and_keeps_the_one_in_use() {
        let cache = std::env::temp_dir().join(format!("mmuvisor-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        for (name, len) in [("a", 3000), ("b", 3000), ("c", 3000)] {
            let d = cache.join("kernels").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("bzImage"), vec![0u8; len]).unwrap();
            std::fs::write(d.join(".done"), b"").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        touch(&cache.join("kernels").join("a"));
        let keep = [cache.join("kernels").join("b")];
        let removed = prune(&cache, 7000, &keep).unwrap();
        let gone: Vec<_> = removed
            .iter()
            .map(|e| e.dir.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(gone, ["c"], "c is the least recently used that may go");
        assert!(cache.join("kernels/a").exists() && cache.join("kernels/b").exists());
        std::fs::remove_dir_all(&cache).unwrap();
    }
}
