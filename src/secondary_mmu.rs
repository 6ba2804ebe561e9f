//! What KVM's secondary MMU did for this VM.
//!
//! Two sources, both read-only views of the kernel:
//! - a private tracefs instance (`instances/mmuvisor-<pid>-<n>`, never the
//!   global buffer) with KVM's MMU-notifier and MMU events, clocked with
//!   `mono` so its timestamps compare with `CLOCK_MONOTONIC`;
//! - KVM's binary statistics of the VM (`KVM_GET_STATS_FD`): `pages_4k`,
//!   `pages_2m`, `remote_tlb_flush`, ...
//!
//! Host ranges are mapped back to guest pages through [`GuestRegion`]s
//! (the VMM's memslots).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use kvm_bindings::{kvm_stats_desc, kvm_stats_header};
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

/// Where tracefs lives (mounted there if it is not yet).
pub const TRACEFS: &str = "/sys/kernel/tracing";
const TRACEFS_OLD: &str = "/sys/kernel/debug/tracing";

ioctl_io_nr!(KVM_GET_STATS_FD, kvm_bindings::KVMIO, 0xce);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tracefs is not available (mount -t tracefs nodev {TRACEFS}): {0}")]
    NoTracefs(String),
    #[error("tracefs event {0} does not exist on this kernel")]
    NoEvent(String),
    #[error("tracefs {path}: {err}")]
    Tracefs { path: String, err: std::io::Error },
    #[error("KVM_GET_STATS_FD: {0}")]
    StatsFd(std::io::Error),
    #[error("KVM stats: {0}")]
    Stats(String),
}

pub type Result<T> = std::result::Result<T, Error>;

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

/// The event every verdict about invalidation relies on.
pub const UNMAP_EVENT: &str = "kvm/kvm_unmap_hva_range";

/// Events enabled when the kernel has them. The first is required.
pub const EVENTS: &[&str] = &[
    UNMAP_EVENT,
    "kvm/kvm_age_hva",
    "kvm/kvm_test_age_hva",
    "kvm/kvm_page_fault",
    "kvmmmu/kvm_mmu_spte_requested",
    "kvmmmu/kvm_tdp_mmu_spte_changed",
    "kvmmmu/kvm_mmu_set_spte",
    "kvmmmu/fast_page_fault",
    "kvmmmu/kvm_mmu_split_huge_page",
];

/// KVM's "shadow present" bit of an SPTE (arch/x86/kvm/mmu/spte.h
/// SPTE_MMU_PRESENT_MASK): a non-present SPTE, frozen or zapped, lacks it.
pub const SPTE_MMU_PRESENT: u64 = 1 << 11;

/// The TDP MMU's SPTE-change event: the SPTE-level evidence the exclusive
/// drills judge KVM's mapping by.
pub const SPTE_EVENT: &str = "kvmmmu/kvm_tdp_mmu_spte_changed";

/// One host-virtual ↔ guest-physical region (a memslot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRegion {
    pub gpa: u64,
    pub hva: u64,
    pub len: u64,
}

impl GuestRegion {
    /// The guest page frames whose host range intersects `[start, end)`.
    pub fn gfns_of(&self, start: u64, end: u64) -> Option<std::ops::Range<u64>> {
        let lo = start.max(self.hva);
        let hi = end.min(self.hva + self.len);
        if lo >= hi {
            return None;
        }
        let g0 = (self.gpa + (lo - self.hva)) >> 12;
        let g1 = (self.gpa + (hi - self.hva) + 4095) >> 12;
        Some(g0..g1)
    }
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

/// A decoded KVM MMU event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmEventKind {
    /// MMU notifier invalidation: KVM must drop `[start, end)`.
    UnmapHvaRange {
        start: u64,
        end: u64,
    },
    AgeHva {
        start: u64,
        end: u64,
    },
    TestAgeHva {
        hva: u64,
    },
    PageFault {
        vcpu: u32,
        address: u64,
        error_code: u64,
    },
    SpteRequested {
        gfn: u64,
        pfn: u64,
        level: u8,
    },
    TdpSpteChanged {
        gfn: u64,
        level: u8,
        old_spte: u64,
        new_spte: u64,
    },
    SetSpte {
        gfn: u64,
        spte: u64,
        level: u8,
    },
    FastPageFault {
        vcpu: u32,
        gpa: u64,
    },
    SplitHugePage {
        gfn: u64,
        level: u8,
    },
    /// Any other enabled event, undecoded.
    Other {
        name: String,
        body: String,
    },
}

impl KvmEventKind {
    /// Short name for timelines and diagnostics.
    pub fn name(&self) -> &str {
        match self {
            KvmEventKind::UnmapHvaRange { .. } => "kvm_unmap_hva_range",
            KvmEventKind::AgeHva { .. } => "kvm_age_hva",
            KvmEventKind::TestAgeHva { .. } => "kvm_test_age_hva",
            KvmEventKind::PageFault { .. } => "kvm_page_fault",
            KvmEventKind::SpteRequested { .. } => "kvm_mmu_spte_requested",
            KvmEventKind::TdpSpteChanged { .. } => "kvm_tdp_mmu_spte_changed",
            KvmEventKind::SetSpte { .. } => "kvm_mmu_set_spte",
            KvmEventKind::FastPageFault { .. } => "fast_page_fault",
            KvmEventKind::SplitHugePage { .. } => "kvm_mmu_split_huge_page",
            KvmEventKind::Other { name, .. } => name,
        }
    }
}

/// One trace record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmEvent {
    /// CLOCK_MONOTONIC, ns (the trace prints microseconds).
    pub time_ns: u64,
    pub tid: u32,
    pub cpu: u32,
    pub kind: KvmEventKind,
}

impl KvmEvent {
    /// Whether this is an unmap whose range covers all of `[start, end)`.
    pub fn unmap_covers(&self, start: u64, end: u64) -> bool {
        matches!(self.kind, KvmEventKind::UnmapHvaRange { start: s, end: e } if s <= start && e >= end)
    }
    /// Whether this is an unmap that intersects `[start, end)`.
    pub fn unmap_touches(&self, start: u64, end: u64) -> bool {
        matches!(self.kind, KvmEventKind::UnmapHvaRange { start: s, end: e } if s < end && e > start)
    }
    /// For an SPTE change whose mapping covers `gfn` (a huge SPTE covers
    /// 512^(level-1) frames): whether it was present before (None when the
    /// record does not say) and whether it is present after.
    pub fn spte_transition(&self, gfn: u64) -> Option<(Option<bool>, bool)> {
        let covers = |g: u64, level: u8| {
            let span = 1u64 << (9 * (level.clamp(1, 5) as u32 - 1));
            gfn >= g & !(span - 1) && gfn < (g & !(span - 1)) + span
        };
        // A present leaf maps memory: level 1, or a huge page (PS bit 7).
        // Links to lower page tables are skipped: when one goes, the TDP
        // MMU traces the zap of each child SPTE on its own.
        let leaf = |spte: u64, level: u8| {
            spte & SPTE_MMU_PRESENT != 0 && (level <= 1 || spte & (1 << 7) != 0)
        };
        let link = |spte: u64, level: u8| spte & SPTE_MMU_PRESENT != 0 && !leaf(spte, level);
        match self.kind {
            KvmEventKind::TdpSpteChanged {
                gfn: g,
                level,
                old_spte,
                new_spte,
            } if covers(g, level) && !link(old_spte, level) && !link(new_spte, level) => {
                Some((Some(leaf(old_spte, level)), leaf(new_spte, level)))
            }
            KvmEventKind::SetSpte {
                gfn: g,
                spte,
                level,
            } if covers(g, level) && !link(spte, level) => Some((None, leaf(spte, level))),
            _ => None,
        }
    }
    /// Whether the event lies in `[from_ns, to_ns]` at the trace's µs resolution.
    pub fn within(&self, from_ns: u64, to_ns: u64) -> bool {
        let t = self.time_ns / 1000;
        t >= from_ns / 1000 && t <= to_ns / 1000
    }
}

fn hex(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches(',');
    let s = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Value of the token after `key ` in `body`.
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let mut it = body.split_whitespace();
    while let Some(tok) = it.next() {
        if tok == key {
            return it.next();
        }
    }
    None
}

fn range_after_colon(body: &str) -> Option<(u64, u64)> {
    let (_, r) = body.rsplit_once(':')?;
    let (a, b) = r.split_once("--")?;
    Some((hex(a)?, hex(b)?))
}

fn decode(name: &str, body: &str) -> KvmEventKind {
    let other = || KvmEventKind::Other {
        name: name.to_string(),
        body: body.to_string(),
    };
    let dec = |s: Option<&str>| s.and_then(|v| v.parse::<u64>().ok());
    let kind = match name {
        "kvm_unmap_hva_range" => {
            range_after_colon(body).map(|(start, end)| KvmEventKind::UnmapHvaRange { start, end })
        }
        "kvm_age_hva" => {
            range_after_colon(body).map(|(start, end)| KvmEventKind::AgeHva { start, end })
        }
        "kvm_test_age_hva" => body
            .rsplit_once(':')
            .and_then(|(_, v)| hex(v))
            .map(|hva| KvmEventKind::TestAgeHva { hva }),
        "kvm_page_fault" => (|| {
            Some(KvmEventKind::PageFault {
                vcpu: dec(field(body, "vcpu"))? as u32,
                address: hex(field(body, "address")?)?,
                error_code: hex(field(body, "error_code")?)?,
            })
        })(),
        "kvm_mmu_spte_requested" => (|| {
            Some(KvmEventKind::SpteRequested {
                gfn: hex(field(body, "gfn")?)?,
                pfn: hex(field(body, "pfn")?)?,
                level: dec(field(body, "level"))? as u8,
            })
        })(),
        "kvm_tdp_mmu_spte_changed" => (|| {
            Some(KvmEventKind::TdpSpteChanged {
                gfn: hex(field(body, "gfn")?)?,
                level: dec(field(body, "level"))? as u8,
                old_spte: hex(field(body, "old_spte")?)?,
                new_spte: hex(field(body, "new_spte")?)?,
            })
        })(),
        "kvm_mmu_set_spte" => (|| {
            Some(KvmEventKind::SetSpte {
                gfn: hex(field(body, "gfn")?)?,
                spte: hex(field(body, "spte")?)?,
                level: dec(field(body, "level"))? as u8,
            })
        })(),
        "fast_page_fault" => (|| {
            Some(KvmEventKind::FastPageFault {
                vcpu: dec(field(body, "vcpu"))? as u32,
                gpa: hex(field(body, "gva")?)?,
            })
        })(),
        "kvm_mmu_split_huge_page" => (|| {
            Some(KvmEventKind::SplitHugePage {
                gfn: hex(field(body, "gfn")?)?,
                level: dec(field(body, "level")).unwrap_or(0) as u8,
            })
        })(),
        _ => None,
    };
    kind.unwrap_or_else(other)
}

/// Parsed trace line.
#[derive(Debug, PartialEq, Eq)]
pub enum TraceLine {
    Event(KvmEvent),
    /// `CPU:N [LOST M EVENTS]`.
    Lost(u64),
    Ignored,
}

/// Parses one line of `trace`/`trace_pipe` output:
/// `<task>-<tid> [<cpu>] <flags> <secs>.<usecs>: <event>: <body>`.
pub fn parse_line(line: &str) -> TraceLine {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix("CPU:") {
        if let Some(i) = rest.find("[LOST ") {
            let n = rest[i + 6..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            return TraceLine::Lost(n);
        }
    }
    if line.trim_start().starts_with('#') {
        return TraceLine::Ignored;
    }
    // The CPU field is the first " [digits]" after the task-tid.
    let mut search = 0;
    let (head, cpu, tail) = loop {
        let Some(i) = line[search..].find(" [").map(|i| i + search) else {
            return TraceLine::Ignored;
        };
        let after = &line[i + 2..];
        if let Some(j) = after.find(']') {
            if let Ok(cpu) = after[..j].parse::<u32>() {
                break (&line[..i], cpu, &after[j + 1..]);
            }
        }
        search = i + 2;
    };
    let tid = head
        .trim()
        .rsplit_once('-')
        .and_then(|(_, t)| t.parse::<u32>().ok())
        .unwrap_or(0);
    // tail: " <flags> 12.345678: name: body" (flags may be absent).
    let Some(ts_end) = tail.find(": ") else {
        return TraceLine::Ignored;
    };
    let Some(ts) = tail[..ts_end].split_whitespace().last() else {
        return TraceLine::Ignored;
    };
    let Some((secs, frac)) = ts.split_once('.') else {
        return TraceLine::Ignored;
    };
    let (Ok(secs), Ok(frac_v)) = (secs.parse::<u64>(), frac.parse::<u64>()) else {
        return TraceLine::Ignored;
    };
    let frac_ns = match frac.len() {
        9 => frac_v,
        6 => frac_v * 1000,
        n if n < 9 => frac_v * 10u64.pow(9 - n as u32),
        _ => return TraceLine::Ignored,
    };
    let rest = &tail[ts_end + 2..];
    let (name, body) = rest
        .split_once(": ")
        .unwrap_or((rest.trim_end_matches(':'), ""));
    TraceLine::Event(KvmEvent {
        time_ns: secs * 1_000_000_000 + frac_ns,
        tid,
        cpu,
        kind: decode(name.trim(), body),
    })
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
                .map(|r| format!("({hi} > {:#x} && {lo} < {:#x})", r.hva, r.hva + r.len))
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
                    (r.gpa + r.len) >> 12
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

/// Reads `CLOCK_MONOTONIC` in ns (the trace's `mono` clock).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One statistic's descriptor.
#[derive(Debug, Clone)]
pub struct StatDesc {
    pub name: String,
    pub flags: u32,
    pub exponent: i16,
    pub size: u16,
    pub offset: u32,
}

/// KVM's binary statistics of one VM (`KVM_GET_STATS_FD`).
pub struct KvmStats {
    file: File,
    descs: Vec<StatDesc>,
    data_offset: u64,
}

/// Values read at one moment: name → data items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub values: BTreeMap<String, Vec<u64>>,
}

impl StatsSnapshot {
    /// First data item of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).and_then(|v| v.first().copied())
    }
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> Result<()> {
    f.read_exact_at(buf, off)
        .map_err(|e| Error::Stats(format!("read at {off}: {e}")))
}

impl KvmStats {
    /// Opens the stats fd of a VM.
    pub fn open(vm: &kvm_ioctls::VmFd) -> Result<Self> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new fd.
        let fd = unsafe { ioctl(vm, KVM_GET_STATS_FD()) };
        if fd < 0 {
            return Err(Error::StatsFd(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh file descriptor that nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        Self::from_file(file)
    }

    /// Parses header and descriptors from a stats file.
    pub fn from_file(file: File) -> Result<Self> {
        let mut hb = [0u8; std::mem::size_of::<kvm_stats_header>()];
        read_exact_at(&file, &mut hb, 0)?;
        let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let name_size = u32_at(&hb, 4) as usize;
        let num_desc = u32_at(&hb, 8) as usize;
        let desc_offset = u32_at(&hb, 16) as u64;
        let data_offset = u32_at(&hb, 20) as u64;
        if num_desc > 4096 || name_size > 4096 {
            return Err(Error::Stats(format!(
                "implausible header: {num_desc} descriptors, names of {name_size} bytes"
            )));
        }
        let stride = std::mem::size_of::<kvm_stats_desc>() + name_size;
        let mut db = vec![0u8; stride * num_desc];
        read_exact_at(&file, &mut db, desc_offset)?;
        let descs = db
            .chunks_exact(stride)
            .map(|d| {
                let name_bytes = &d[16..];
                let end = name_bytes
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(name_bytes.len());
                StatDesc {
                    name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                    flags: u32_at(d, 0),
                    exponent: i16::from_ne_bytes([d[4], d[5]]),
                    size: u16::from_ne_bytes([d[6], d[7]]),
                    offset: u32_at(d, 8),
                }
            })
            .collect();
        Ok(KvmStats {
            file,
            descs,
            data_offset,
        })
    }

    pub fn descriptors(&self) -> &[StatDesc] {
        &self.descs
    }

    /// Reads all values now.
    pub fn read(&self) -> Result<StatsSnapshot> {
        let mut snap = StatsSnapshot::default();
        for d in &self.descs {
            let mut b = vec![0u8; d.size as usize * 8];
            read_exact_at(&self.file, &mut b, self.data_offset + d.offset as u64)?;
            let v = b
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            snap.values.insert(d.name.clone(), v);
        }
        Ok(snap)
    }
}

impl AsRawFd for KvmStats {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unmap_line() {
        let l = "     vcpu-0-1234    [001] ..... 12345.678901: kvm_unmap_hva_range: mmu notifier unmap range: 0x007f1234567000 -- 0x007f1234568000";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!("not parsed")
        };
        assert_eq!(e.tid, 1234);
        assert_eq!(e.cpu, 1);
        assert_eq!(e.time_ns, 12_345_678_901_000);
        assert_eq!(
            e.kind,
            KvmEventKind::UnmapHvaRange {
                start: 0x7f1234567000,
                end: 0x7f1234568000
            }
        );
        assert!(e.unmap_covers(0x7f1234567000, 0x7f1234568000));
        assert!(!e.unmap_covers(0x7f1234567000, 0x7f1234569000));
        assert!(e.within(12_345_678_901_500, 12_345_678_999_000));
        assert!(!e.within(12_345_678_902_000, 12_345_678_999_000));
    }

    #[test]
    fn parses_mmu_lines() {
        let l = "<...>-77 [000] d..1. 5.000001: kvm_mmu_spte_requested: gfn 200 pfn 1a2b level 1";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!()
        };
        assert_eq!(
            e.kind,
            KvmEventKind::SpteRequested {
                gfn: 0x200,
                pfn: 0x1a2b,
                level: 1
            }
        );
        let l = "a b-c-9 [003] 1.5: kvm_tdp_mmu_spte_changed: as id 0 gfn 201 level 2 old_spte 0 new_spte 86";
        let TraceLine::Event(e) = parse_line(l) else {
            panic!()
        };
        assert_eq!(e.tid, 9);
        assert_eq!(
            e.kind,
            KvmEventKind::TdpSpteChanged {
                gfn: 0x201,
                level: 2,
                old_spte: 0,
                new_spte: 0x86
            }
        );
        assert_eq!(parse_line("CPU:1 [LOST 17 EVENTS]"), TraceLine::Lost(17));
        assert_eq!(parse_line("# tracer: nop"), TraceLine::Ignored);
    }

    #[test]
    fn maps_host_range_to_gfns() {
        let r = GuestRegion {
            gpa: 0,
            hva: 0x7f00_0000_0000,
            len: 64 << 20,
        };
        assert_eq!(
            r.gfns_of(0x7f00_0020_0000, 0x7f00_0020_1000),
            Some(0x200..0x201)
        );
        assert_eq!(r.gfns_of(0x1000, 0x2000), None);
    }
}
