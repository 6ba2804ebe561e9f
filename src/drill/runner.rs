//! Runs drills: prerequisites, guest start, verdicts, timelines.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::drill::device;
use crate::drill::guest::InterpGuest;
use crate::drill::report::ktap::Report;
use crate::drill::session::{DrillConfig, DrillError, DrillResult, GuestSpec, Session, TraceMode};
use crate::drill::sim::SimGuest;
use crate::drill::verdict::Outcome;
use crate::drill::{oracle, vm, Backend, Ctx, Drill, Needs, DRILLS};
use crate::secondary_mmu;

impl Ctx {
    /// Starts the drill's guest and its trace.
    pub fn start(&self, spec: GuestSpec, mode: TraceMode) -> DrillResult<Session> {
        let (guest, mode): (Box<dyn InterpGuest>, TraceMode) = match self.backend {
            Backend::Kvm => (vm::start_interp(&spec)?, mode),
            Backend::Sim { stale_mmu } => (
                Box::new(SimGuest::new(spec.vcpus, spec.mem_bytes, stale_mmu)?),
                TraceMode::Off,
            ),
        };
        Session::new(guest, mode, &self.cfg)
    }

    /// Opens a device context attached to the guest's RAM.
    pub fn device(&self, s: &Session) -> DrillResult<Box<dyn device::ExclusiveDevice>> {
        if let Some(why) = device::unavailable() {
            return Err(DrillError::Skip(why));
        }
        vm::open_device(s)
    }
}

/// Why `needs` cannot be met here.
pub fn missing(needs: Needs) -> Option<String> {
    if needs.kvm {
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        {
            return Some(format!("no usable /dev/kvm: {e}"));
        }
    }
    if needs.tracefs {
        if let Err(e) = secondary_mmu::tracefs_root() {
            return Some(e.to_string());
        }
        if !secondary_mmu::has_event(secondary_mmu::UNMAP_EVENT) {
            return Some("tracefs has no kvm:kvm_unmap_hva_range event".into());
        }
    }
    if needs.module {
        if let Some(why) = device::unavailable() {
            return Some(why);
        }
        // Exclusive drills judge KVM's mapping by its SPTE events.
        if !secondary_mmu::has_event(secondary_mmu::SPTE_EVENT) {
            return Some(format!(
                "tracefs has no {} event (KVM without the TDP MMU?)",
                secondary_mmu::SPTE_EVENT
            ));
        }
    }
    None
}

/// Resolves names (`all` or none = every visible drill).
pub fn select(names: &[String]) -> Result<Vec<&'static Drill>, String> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(DRILLS.iter().filter(|d| !d.hidden).collect());
    }
    names
        .iter()
        .map(|n| crate::drill::find(n).ok_or_else(|| format!("unknown drill '{n}' (see --list)")))
        .collect()
}

/// Names a file that `mmuvisor drill` keeps the running drill's name in
/// (empty once all ended): after a kernel crash it says which drill the
/// kernel died in (the lab's matrix sets it).
pub const RUNNING_ENV: &str = "MMUVISOR_DRILL_RUNNING";

/// Records `name` as the running drill where [`RUNNING_ENV`] asks for it.
pub fn note_running(name: &str) {
    if let Some(path) = std::env::var_os(RUNNING_ENV) {
        let _ = std::fs::write(path, name);
    }
}

/// A comma-separated list of drills that `mmuvisor drill` reports as
/// skipped without running them: they ran in an earlier lab, or crashed
/// its kernel (the lab's matrix sets it to go on after a crash).
pub const DONE_ENV: &str = "MMUVISOR_DRILL_DONE";

/// Why drill `name` is not run here, if [`DONE_ENV`] lists it.
pub fn done_elsewhere(name: &str) -> Option<String> {
    let list = std::env::var(DONE_ENV).ok()?;
    list.split(',')
        .any(|n| n == name)
        .then(|| format!("ran in an earlier lab ({DONE_ENV})"))
}

/// Runs one drill on its own thread and gives up waiting after `timeout`:
/// a hung drill becomes a `Timeout` report and the caller goes on (the
/// thread is left behind; the process exit ends it).
pub fn run_with_timeout(
    d: &'static Drill,
    cfg: &DrillConfig,
    timeline_dir: Option<&Path>,
    timeout: Option<Duration>,
) -> Report {
    let Some(timeout) = timeout else {
        return run_one(d, cfg, timeline_dir);
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (cfg, dir) = (cfg.clone(), timeline_dir.map(Path::to_path_buf));
    let t0 = Instant::now();
    let spawned = std::thread::Builder::new()
        .name(format!("drill {}", d.name))
        .spawn(move || {
            let _ = tx.send(run_one(d, &cfg, dir.as_deref()));
        });
    if let Err(e) = spawned {
        return Report {
            name: d.name.to_string(),
            outcome: Outcome::Error(format!("cannot start the drill's thread: {e}")),
            seconds: 0.0,
        };
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Report {
            name: d.name.to_string(),
            outcome: Outcome::Timeout(timeout.as_secs()),
            seconds: t0.elapsed().as_secs_f64(),
        },
    }
}

/// Runs one drill to a report; writes its timeline into `timeline_dir`.
pub fn run_one(d: &Drill, cfg: &DrillConfig, timeline_dir: Option<&Path>) -> Report {
    let t0 = Instant::now();
    let outcome = match done_elsewhere(d.name).or_else(|| missing(d.needs)) {
        Some(why) => Outcome::Skip(why),
        None => {
            let ctx = Ctx {
                cfg: cfg.clone(),
                backend: d.backend,
            };
            match (d.run)(&ctx) {
                Ok((v, tl)) => {
                    if let Some(dir) = timeline_dir {
                        let path = dir.join(format!("{}.svg", d.name));
                        if let Err(e) =
                            std::fs::write(&path, tl.to_svg(&format!("{} ({})", d.name, d.about)))
                        {
                            log::warn!("timeline {}: {e}", path.display());
                        }
                    }
                    Outcome::Judged(v)
                }
                Err(DrillError::Skip(why)) => Outcome::Skip(why),
                Err(e) => Outcome::Error(e.to_string()),
            }
        }
    };
    Report {
        name: d.name.to_string(),
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Set in a drill's own process ([`run_checked`]): the file it writes the
/// page frames its guest RAM used into, one hex number a line.
pub const CHILD_ENV: &str = "MMUVISOR_DRILL_CHILD";

/// In a drill's own process: hands the recorded frames to the runner.
pub fn write_frames_for_parent() -> std::io::Result<()> {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return Ok(());
    };
    let text: String = oracle::leak::take()
        .iter()
        .map(|p| format!("{p:x}\n"))
        .collect();
    std::fs::write(path, text)
}

/// Runs a drill on real KVM in a process of its own and adds the kernel's
/// verdict ([`oracle`]): the log and taint from before the process started
/// to after it ended (its exit tears down its mm, where the kernel checks
/// its RSS counters), and the leak check of the frames it used. Simulated
/// drills and drills that cannot run here run in this process.
pub fn run_checked(
    d: &'static Drill,
    cfg: &DrillConfig,
    timeline_dir: Option<&Path>,
    timeout: Option<Duration>,
) -> Report {
    if d.backend != Backend::Kvm
        || done_elsewhere(d.name)
            .or_else(|| missing(d.needs))
            .is_some()
    {
        return run_with_timeout(d, cfg, timeline_dir, timeout);
    }
    let watch = oracle::KernelWatch::start();
    let t0 = Instant::now();
    let (outcome, frames) = match run_child(d, cfg, timeline_dir, timeout) {
        Ok((outcome, frames)) => (outcome, frames),
        Err(e) => (Outcome::Error(e), Vec::new()),
    };
    let mut r = Report {
        name: d.name.to_string(),
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
    };
    watch.judge(&mut r, &frames);
    r
}

/// `mmuvisor drill NAME --format json` in a child process; its outcome and
/// the frames it recorded.
fn run_child(
    d: &'static Drill,
    cfg: &DrillConfig,
    timeline_dir: Option<&Path>,
    timeout: Option<Duration>,
) -> Result<(Outcome, Vec<u64>), String> {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().map_err(|e| format!("cannot find mmuvisor itself: {e}"))?;
    let frames_file = vmm_sys_util::tempfile::TempFile::new_with_prefix("/tmp/mmuvisor-frames-")
        .map_err(|e| format!("cannot create the frames file: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("drill")
        .arg(d.name)
        .args(["--format", "json"])
        .args(["--vcpus", &cfg.vcpus.to_string()])
        .args(["--pages", &cfg.pages.to_string()])
        .args(["--iterations", &cfg.iterations.to_string()])
        .args(["--seed", &cfg.seed.to_string()])
        .args(["--time", &cfg.fuzz_secs.to_string()])
        .env(CHILD_ENV, frames_file.as_path())
        .env_remove(RUNNING_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if let Some(dir) = timeline_dir {
        cmd.arg("--timeline").arg(dir);
    }
    if let Some(file) = &cfg.replay {
        cmd.arg("--replay").arg(file);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the drill's process: {e}"))?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the drill's process: {e}")),
        }
        if let Some(t) = timeout.filter(|t| t0.elapsed() >= *t) {
            // A process stuck in the kernel (D state) does not die of
            // SIGKILL: reap it if it goes within a second, else go on
            // without it.
            let _ = child.kill();
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            return Ok((Outcome::Timeout(t.as_secs()), Vec::new()));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().unwrap_or_default();
    let frames: Vec<u64> = std::fs::read_to_string(frames_file.as_path())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l, 16).ok())
        .collect();
    let parsed = crate::drill::report::json::parse(&out);
    match parsed.map(|mut v| v.pop()) {
        Ok(Some(r)) if r.name == d.name => Ok((r.outcome, frames)),
        _ => Err(format!(
            "the drill's process ended ({status}) without a report{}",
            if out.is_empty() {
                String::new()
            } else {
                format!(": {}", out.chars().take(200).collect::<String>())
            }
        )),
    }
}
