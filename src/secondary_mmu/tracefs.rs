//! A private tracefs instance (`instances/mmuvisor-<pid>-<n>`, never the
//! global buffer) recording KVM's MMU-notifier and MMU events, clocked with
//! `mono` so its timestamps compare with `CLOCK_MONOTONIC`.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::trace_event::{parse_line, KvmEvent, TraceLine, EVENTS, UNMAP_EVENT};
use super::{Error, Result};
use crate::guest_memory::GuestRegion;

/// Where tracefs lives (mounted there if it is not yet).
pub const TRACEFS: &str = "/sys/kernel/tracing";
const TRACEFS_OLD: &str = "/sys/kernel/debug/tracing";

fn tfs_err(path: &Path, err: std::io::Error) -> Error {
    Error::Tracefs {
        path: path.display().to_string(),
        err,
    }
}

/// Finds tracefs, mounting it at [`TRACEFS`] if needed.
pub fn tracefs_root() -> Result<PathBuf> {
    for root in [TRACEFS, TRACEFS_OLD] {
        if Path::new(root).join("instances").is_dir() {
            return Ok(PathBuf::from(root));
        }
    }
    let _ = fs::create_dir_all(TRACEFS);
    let src = CString::new("nodev").map_err(|e| Error::NoTracefs(e.to_string()))?;
    let dst = CString::new(TRACEFS).map_err(|e| Error::NoTracefs(e.to_string()))?;
    let ty = CString::new("tracefs").map_err(|e| Error::NoTracefs(e.to_string()))?;
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(Error::NoTracefs(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    if Path::new(TRACEFS).join("instances").is_dir() {
        Ok(PathBuf::from(TRACEFS))
    } else {
        Err(Error::NoTracefs(
            "mounted, but no instances/ directory".into(),
        ))
    }
}

/// Whether the kernel has the event `system/name` (e.g. `kvm/kvm_unmap_hva_range`).
pub fn has_event(system_name: &str) -> bool {
    tracefs_root()
        .map(|r| r.join("events").join(system_name).is_dir())
        .unwrap_or(false)
}

/// What to record.
#[derive(Debug, Clone, Default)]
pub struct TraceConfig {
    /// Only events caused by this process's threads (set_event_pid with
    /// event-fork). Off for drills whose invalidations come from kernel
    /// threads (ksmd, khugepaged): then `regions` alone filters.
    pub this_process_only: bool,
    /// Host ranges of interest (event filters on the hva events).
    pub regions: Vec<GuestRegion>,
    /// Per-CPU buffer size of the instance.
    pub buffer_kb: u32,
}

static INSTANCE_SEQ: AtomicU32 = AtomicU32::new(0);

/// A private tracefs instance recording KVM's MMU events; removed on drop.
pub struct KvmTrace {
    dir: PathBuf,
    pipe: Option<File>,
    partial: String,
    events: Vec<KvmEvent>,
    lost: u64,
    enabled: Vec<String>,
}

impl KvmTrace {
    /// Creates `instances/mmuvisor-<pid>-<n>` and enables [`EVENTS`].
    pub fn start(cfg: &TraceConfig) -> Result<Self> {
        let root = tracefs_root()?;
        if !root.join("events").join(UNMAP_EVENT).is_dir() {
            return Err(Error::NoEvent(UNMAP_EVENT.replace('/', ":")));
        }
        let name = format!(
            "mmuvisor-{}-{}",
            std::process::id(),
            INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = root.join("instances").join(name);
        fs::create_dir(&dir).map_err(|e| tfs_err(&dir, e))?;
        // From here on Drop removes the instance, also on error.
        let mut me = KvmTrace {
            dir,
            pipe: None,
            partial: String::new(),
            events: Vec::new(),
            lost: 0,
            enabled: Vec::new(),
        };
        me.configure(cfg)?;
        Ok(me)
    }

    fn write(&self, rel: &str, val: &str) -> Result<()> {
        let p = self.dir.join(rel);
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .map_err(|e| tfs_err(&p, e))?;
        f.write_all(val.as_bytes()).map_err(|e| tfs_err(&p, e))
    }

    fn configure(&mut self, cfg: &TraceConfig) -> Result<()> {
        self.write("tracing_on", "0")?;
        self.write("trace_clock", "mono")?;
        self.write("buffer_size_kb", &cfg.buffer_kb.max(1024).to_string())?;
        if cfg.this_process_only {
            // Threads created later (vCPUs, a forked VMM) inherit the filter.
            self.write("options/event-fork", "1")?;
            let mut tids = vec![std::process::id().to_string()];
            if let Ok(rd) = fs::read_dir("/proc/self/task") {
                tids.extend(
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
            self.write("set_event_pid", &tids.join(" "))?;
        }
        let hva_filter = |lo: &str, hi: &str| -> String {
            cfg.regions
                .iter()
                .map(|r| format!("({hi} > {:#x} && {lo} < {:#x})", r.hva, r.hva + r.size))
                .collect::<Vec<_>>()
                .join(" || ")
        };
        let gfn_filter = cfg
            .regions
            .iter()
            .map(|r| {
                format!(
                    "(gfn >= {:#x} && gfn < {:#x})",
                    r.gpa >> 12,
                    (r.gpa + r.size) >> 12
                )
            })
            .collect::<Vec<_>>()
            .join(" || ");
        for ev in EVENTS {
            let edir = self.dir.join("events").join(ev);
            if !edir.is_dir() {
                continue;
            }
            let filter = if cfg.regions.is_empty() {
                String::new()
            } else {
                match *ev {
                    "kvm/kvm_unmap_hva_range" | "kvm/kvm_age_hva" => hva_filter("start", "end"),
                    "kvm/kvm_test_age_hva" => hva_filter("hva", "hva"),
                    e if e.starts_with("kvmmmu/") && e != "kvmmmu/fast_page_fault" => {
                        gfn_filter.clone()
                    }
                    _ => String::new(),
                }
            };
            if !filter.is_empty() {
                // A kernel that rejects a filter still records, unfiltered.
                if let Err(e) = self.write(&format!("events/{ev}/filter"), &filter) {
                    log::debug!("trace filter for {ev} rejected: {e}");
                }
            }
            self.write(&format!("events/{ev}/enable"), "1")?;
            self.enabled.push(ev.to_string());
        }
        let p = self.dir.join("trace_pipe");
        let pipe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| tfs_err(&p, e))?;
        self.pipe = Some(pipe);
        self.write("tracing_on", "1")
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Events enabled (`system/name`).
    pub fn enabled(&self) -> &[String] {
        &self.enabled
    }

    /// Reads everything the kernel has recorded so far (non-blocking) and
    /// returns all events recorded since start.
    pub fn poll(&mut self) -> Result<&[KvmEvent]> {
        let p = self.dir.join("trace_pipe");
        let Some(pipe) = self.pipe.as_mut() else {
            return Ok(&self.events);
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.partial.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(tfs_err(&p, e)),
            }
        }
        let complete = match self.partial.rfind('\n') {
            Some(i) => {
                let rest = self.partial.split_off(i + 1);
                std::mem::replace(&mut self.partial, rest)
            }
            None => String::new(),
        };
        for line in complete.lines() {
            match parse_line(line) {
                TraceLine::Event(e) => self.events.push(e),
                TraceLine::Lost(n) => self.lost += n,
                TraceLine::Ignored => {}
            }
        }
        Ok(&self.events)
    }

    /// Events recorded so far (as of the last [`poll`](Self::poll)).
    pub fn events(&self) -> &[KvmEvent] {
        &self.events
    }

    /// Events the ring buffer dropped (a verdict on them is unsafe).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Unmap events in `[from_ns, to_ns]` that intersect `[start, end)`.
    pub fn unmaps_in(&self, from_ns: u64, to_ns: u64, start: u64, end: u64) -> Vec<&KvmEvent> {
        self.events
            .iter()
            .filter(|e| e.within(from_ns, to_ns) && e.unmap_touches(start, end))
            .collect()
    }
}

impl Drop for KvmTrace {
    fn drop(&mut self) {
        let _ = self.write("tracing_on", "0");
        // An open trace_pipe keeps the instance busy: close it first.
        self.pipe = None;
        for ev in &self.enabled {
            let p = self.dir.join("events").join(ev).join("enable");
            let _ = fs::write(p, "0");
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            log::warn!(
                "could not remove tracefs instance {}: {e}",
                self.dir.display()
            );
        }
    }
}
