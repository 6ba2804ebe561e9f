//! A drill's script runtime: drives the interp guest step by step, times
//! host actions, collects KVM's events, and keeps the timeline.

use crate::drill::guest::{
    page_gpa, Cmd, GuestError, InterpGuest, Op, PagemapEntry, SyncReport, PAGE_SIZE,
};
use crate::drill::report::timeline::{Lane, Timeline};
use crate::drill::verdict::{Verdict, Window};
use crate::secondary_mmu::{
    self, KvmEvent, KvmEventKind, KvmStats, KvmTrace, StatsSnapshot, TraceConfig,
};

/// KVM statistics reported as figures (value at the end, and change).
const STATS: &[&str] = &[
    "pages_4k",
    "pages_2m",
    "pages_1g",
    "remote_tlb_flush",
    "mmu_shadow_zapped",
];

/// Options every drill gets (`mmuvisor drill --vcpus --pages ...`).
#[derive(Debug, Clone)]
pub struct DrillConfig {
    pub vcpus: usize,
    /// Data pages a drill may use (neighbour checks, THP regions use more).
    pub pages: u64,
    pub iterations: u64,
    pub seed: u64,
    /// How long one guest step may take.
    pub step_timeout_ms: u64,
    /// drill fuzz: seconds of random sequences.
    pub fuzz_secs: u64,
    /// drill fuzz: run this replay file's sequence instead.
    pub replay: Option<std::path::PathBuf>,
}

impl Default for DrillConfig {
    fn default() -> Self {
        DrillConfig {
            vcpus: 2,
            pages: 8,
            iterations: 4,
            seed: 1,
            step_timeout_ms: 60_000,
            fuzz_secs: 10,
            replay: None,
        }
    }
}

/// What a drill's guest looks like.
#[derive(Debug, Clone, Copy)]
pub struct GuestSpec {
    pub vcpus: usize,
    pub mem_bytes: u64,
    /// Let THP back guest RAM (MADV_HUGEPAGE) instead of forbidding it.
    pub thp: bool,
}

impl GuestSpec {
    pub fn of(cfg: &DrillConfig) -> Self {
        GuestSpec {
            vcpus: cfg.vcpus.max(1),
            mem_bytes: 16 << 20,
            thp: false,
        }
    }
}

/// Why a drill did not reach a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A prerequisite is missing: `# SKIP <reason>`.
    #[error("{0}")]
    Skip(String),
    #[error("{0}")]
    Guest(#[from] GuestError),
    #[error("{0}")]
    Trace(#[from] secondary_mmu::Error),
    #[error("{0}")]
    Host(String),
}

pub type DrillResult<T> = Result<T, DrillError>;

impl DrillError {
    /// See [`GuestError::is_refused_write`].
    pub fn is_refused_write(&self) -> bool {
        matches!(self, DrillError::Guest(g) if g.is_refused_write())
    }
}

/// Host-side errors with context.
pub fn host_err(what: &str) -> impl FnOnce(std::io::Error) -> DrillError + '_ {
    move |e| DrillError::Host(format!("{what}: {e}"))
}

/// Which KVM events to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceMode {
    /// Events of this process's threads only.
    ThisProcess,
    /// Events from any task on the guest's host ranges (ksmd, khugepaged).
    AnyTask,
    /// No trace (simulated guests).
    Off,
}

pub struct Session {
    guest: Box<dyn InterpGuest>,
    trace: Option<KvmTrace>,
    pub tl: Timeline,
    pub v: Verdict,
    pub cfg: DrillConfig,
    /// Successful make-exclusive calls in this drill so far.
    pub conversions: u32,
    pending: Vec<Option<Cmd>>,
    ready: Vec<Option<SyncReport>>,
    stats: Option<(KvmStats, StatsSnapshot)>,
}

impl Session {
    /// Waits for every vCPU's first SYNC, then starts the trace.
    pub fn new(
        mut guest: Box<dyn InterpGuest>,
        mode: TraceMode,
        cfg: &DrillConfig,
    ) -> DrillResult<Self> {
        let n = guest.nr_vcpus();
        let mut ready = vec![None; n];
        let mut seen = 0;
        while seen < n {
            let r = guest.next_sync(cfg.step_timeout_ms)?;
            if r.vcpu < n && ready[r.vcpu].is_none() {
                seen += 1;
                ready[r.vcpu] = Some(r);
            }
        }
        let trace = match mode {
            TraceMode::Off => None,
            m => Some(KvmTrace::start(&TraceConfig {
                this_process_only: m == TraceMode::ThisProcess,
                regions: guest.regions(),
                buffer_kb: 4096,
            })?),
        };
        let stats = guest
            .vm_fd()
            .and_then(|vm| KvmStats::open(vm).ok())
            .and_then(|k| {
                let first = k.read().ok()?;
                Some((k, first))
            });
        Ok(Session {
            guest,
            trace,
            tl: Timeline::default(),
            v: Verdict::default(),
            cfg: cfg.clone(),
            conversions: 0,
            pending: vec![None; n],
            ready: vec![None; n],
            stats,
        })
    }

    pub fn nr_vcpus(&self) -> usize {
        self.guest.nr_vcpus()
    }

    pub fn guest(&self) -> &dyn InterpGuest {
        self.guest.as_ref()
    }

    pub fn guest_mut(&mut self) -> &mut dyn InterpGuest {
        self.guest.as_mut()
    }

    /// Data pages that exist in guest RAM.
    pub fn max_pages(&self) -> u64 {
        self.guest.mem_size().saturating_sub(page_gpa(0)) / PAGE_SIZE
    }

    /// Sends `op` on `page` to `vcpu` without waiting.
    pub fn issue(&mut self, vcpu: usize, op: Op, page: u64) -> DrillResult<()> {
        if vcpu >= self.pending.len() || self.pending[vcpu].is_some() {
            return Err(DrillError::Host(format!(
                "vCPU {vcpu} is busy or does not exist"
            )));
        }
        if page >= self.max_pages() {
            return Err(DrillError::Host(format!(
                "page {page} is outside guest RAM"
            )));
        }
        let cmd = Cmd::new(op, page);
        self.guest.reply(vcpu, cmd.encode())?;
        self.pending[vcpu] = Some(cmd);
        Ok(())
    }

    /// Waits for `vcpu`'s result of its pending command.
    pub fn collect(&mut self, vcpu: usize) -> DrillResult<u64> {
        let Some(cmd) = self.pending.get(vcpu).copied().flatten() else {
            return Err(DrillError::Host(format!(
                "vCPU {vcpu} has no pending command"
            )));
        };
        let issued = crate::clock::now_ns();
        let r = loop {
            if let Some(r) = self.ready[vcpu].take() {
                break r;
            }
            let r = self.guest.next_sync(self.cfg.step_timeout_ms)?;
            if r.vcpu < self.ready.len() {
                self.ready[r.vcpu] = Some(r);
            }
        };
        self.pending[vcpu] = None;
        let label = format!("{} p{} -> {:#x}", cmd.op.name(), cmd.page, r.result);
        self.tl
            .span(Lane::Guest(vcpu), issued.min(r.time_ns), r.time_ns, label);
        Ok(r.result)
    }

    /// `vcpu`'s result if it has reported already (never blocks long).
    pub fn try_collect(&mut self, vcpu: usize) -> DrillResult<Option<u64>> {
        if self.pending.get(vcpu).copied().flatten().is_none() {
            return Ok(None);
        }
        while self.ready[vcpu].is_none() {
            match self.guest.next_sync(0) {
                Ok(r) if r.vcpu < self.ready.len() => self.ready[r.vcpu] = Some(r),
                Ok(_) => {}
                Err(GuestError::Timeout(..)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        self.collect(vcpu).map(Some)
    }

    /// Whether `vcpu` still runs a command.
    pub fn busy(&self, vcpu: usize) -> bool {
        self.pending.get(vcpu).copied().flatten().is_some()
    }

    /// Runs one command on one vCPU and returns its result.
    pub fn step(&mut self, vcpu: usize, op: Op, page: u64) -> DrillResult<u64> {
        self.issue(vcpu, op, page)?;
        self.collect(vcpu)
    }

    /// Runs a host action, timing it and drawing it on the timeline.
    pub fn host<T>(&mut self, label: &str, f: impl FnOnce(&mut Self) -> T) -> (T, Window) {
        let start_ns = crate::clock::now_ns();
        let out = f(self);
        let end_ns = crate::clock::now_ns();
        self.tl.span(Lane::Host, start_ns, end_ns, label);
        (out, Window { start_ns, end_ns })
    }

    /// Host address of data page `page`.
    pub fn hva(&self, page: u64) -> DrillResult<u64> {
        self.guest
            .gpa_to_hva(page_gpa(page))
            .ok_or_else(|| DrillError::Host(format!("page {page} has no host mapping")))
    }

    /// pagemap of data page `page` (never touches the page).
    pub fn pagemap(&mut self, page: u64) -> DrillResult<PagemapEntry> {
        let hva = self.hva(page)?;
        let s = PagemapEntry::of_hva(hva).map_err(host_err("pagemap"))?;
        crate::drill::oracle::leak::note([s]);
        self.tl.instant(
            Lane::Pagemap,
            crate::clock::now_ns(),
            format!("p{page}: {}", s.describe()),
        );
        Ok(s)
    }

    /// All KVM events so far (polls the trace).
    pub fn kvm_events(&mut self) -> DrillResult<Vec<KvmEvent>> {
        match self.trace.as_mut() {
            Some(t) => Ok(t.poll()?.to_vec()),
            None => Ok(Vec::new()),
        }
    }

    /// Lost trace events so far.
    pub fn lost_events(&self) -> u64 {
        self.trace.as_ref().map(|t| t.lost()).unwrap_or(0)
    }

    /// Reads a u64 through the host mapping. Only for drills without a
    /// device: on an exclusive page this access itself revokes the device.
    pub fn host_read(&self, page: u64, word: u64) -> DrillResult<u64> {
        let hva = self.hva(page)? + word * 8;
        // SAFETY: hva lies inside guest RAM, mapped for the VM's lifetime and
        // 8-byte aligned; a volatile read of plain memory.
        Ok(unsafe { std::ptr::read_volatile(hva as *const u64) })
    }

    /// Writes a u64 through the host mapping (same caveat as host_read).
    pub fn host_write(&self, page: u64, word: u64, val: u64) -> DrillResult<()> {
        let hva = self.hva(page)? + word * 8;
        // SAFETY: as host_read; the guest is stopped in SYNC or only touches
        // the counter word with its own atomic ops.
        unsafe { std::ptr::write_volatile(hva as *mut u64, val) };
        Ok(())
    }

    /// Verdict "guest-write-reaches-host": the guest's last write of
    /// `written` to `page` is what the host page holds (drills without a
    /// device only, as host_read). `why` says what a mismatch means.
    pub fn check_write_reaches_host(
        &mut self,
        page: u64,
        written: u32,
        why: &str,
    ) -> DrillResult<()> {
        let host = self.host_read(page, 0)?;
        self.v.check(
            "guest-write-reaches-host",
            host == written as u64,
            format!("guest wrote {written:#x}, the host page holds {host:#x}{why}"),
        );
        Ok(())
    }

    /// Verdict "neighbours-intact": vCPU 0 checks every data page of the
    /// first `n` except `page` against its fill pattern.
    pub fn check_neighbours(&mut self, page: u64, n: u64) -> DrillResult<()> {
        let bad = self.step(0, Op::CheckRange(page as u32), 0)?
            + self.step(0, Op::CheckRange((n - page - 1) as u32), page + 1)?;
        self.v.check(
            "neighbours-intact",
            bad == 0,
            format!("{bad} words of neighbouring pages changed"),
        );
        Ok(())
    }

    /// madvise on `count` data pages from `page`.
    pub fn madvise(&self, page: u64, count: u64, advice: i32) -> std::io::Result<()> {
        let hva = self
            .hva(page)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // SAFETY: page-aligned range inside guest RAM; madvise does not
        // invalidate our mapping's addresses.
        let rc = unsafe {
            libc::madvise(
                hva as *mut libc::c_void,
                (count * PAGE_SIZE) as usize,
                advice,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// mprotect on `count` data pages from `page`.
    pub fn mprotect(&self, page: u64, count: u64, prot: i32) -> std::io::Result<()> {
        let hva = self
            .hva(page)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // SAFETY: page-aligned range inside guest RAM; the drill restores
        // PROT_READ|PROT_WRITE before anything else touches it.
        let rc =
            unsafe { libc::mprotect(hva as *mut libc::c_void, (count * PAGE_SIZE) as usize, prot) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Records the page frames under guest RAM for the leak oracle
    /// (pagemap only: never touches a page).
    fn note_frames(&self) {
        for r in self.guest.regions() {
            if let Ok(entries) = PagemapEntry::range(r.hva, r.size / PAGE_SIZE) {
                crate::drill::oracle::leak::note(entries);
            }
        }
    }

    /// Ends the guest, puts KVM's events on the timeline, and returns the verdict.
    pub fn finish(mut self) -> DrillResult<(Verdict, Timeline)> {
        self.note_frames();
        for vcpu in 0..self.nr_vcpus() {
            if let Some(_cmd) = self.pending[vcpu] {
                let _ = self.collect(vcpu);
            }
        }
        if let Err(e) = self.guest.finish() {
            // A drill may have stopped the guest on purpose (mprotect).
            self.v.note(format!("guest end: {e}"));
        }
        let events = self.kvm_events()?;
        let regions = self.guest.regions();
        let to_gfns = |s: u64, e: u64| regions.iter().find_map(|r| r.gfns_of(s, e));
        for e in &events {
            self.tl.kvm_event(e, &to_gfns);
        }
        let lost = self.lost_events();
        if lost > 0 {
            self.v.note(format!("trace lost {lost} events"));
        }
        self.v.figure("kvm_events", events.len() as f64);
        self.v.figure(
            "kvm_unmap_events",
            events
                .iter()
                .filter(|e| matches!(e.kind, KvmEventKind::UnmapHvaRange { .. }))
                .count() as f64,
        );
        if let Some((k, first)) = &self.stats {
            if let Ok(now) = k.read() {
                for name in STATS {
                    if let (Some(a), Some(b)) = (first.get(name), now.get(name)) {
                        self.v.figure(&format!("kvm_{name}"), b as f64);
                        self.v
                            .figure(&format!("kvm_{name}_delta"), b as f64 - a as f64);
                    }
                }
            }
        }
        Ok((std::mem::take(&mut self.v), std::mem::take(&mut self.tl)))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // finish() may not have run (error path): never leave vCPUs waiting.
        self.note_frames();
        let _ = self.guest.finish();
    }
}
