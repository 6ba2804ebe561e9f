//! Boots the lab in QEMU: TCG with `-cpu max` (which exposes SVM+NPT, so KVM
//! runs inside), or `-enable-kvm -cpu host` where the host has nested KVM.
//! Streams the console, enforces the timeout, and leaves no QEMU process
//! behind, also on Ctrl-C.

use super::LabError;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The lab VM to boot.
pub struct LabVm {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub mem_mib: u64,
    pub cpus: u32,
    /// How the CPUs run ([`CpuMode::for_lab`], decided once per lab).
    pub mode: CpuMode,
    /// Writable share mounted at the same path in the lab.
    pub cwd: Option<PathBuf>,
    /// Writable share for the lab's status and kernel log.
    pub out_dir: PathBuf,
    pub timeout: Duration,
    /// Extra kernel command line.
    pub append: String,
    /// Copy the console to stderr instead of stdout (the caller's stdout
    /// carries its own report).
    pub console_to_stderr: bool,
    /// ACPI tables for the kernel: how a stock kernel finds the virtio-mmio
    /// devices (Debian's kernels lack VIRTIO_MMIO_CMDLINE_DEVICES); the
    /// built lab kernel has no ACPI and reads them from its command line.
    pub acpi: bool,
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: on_signal only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// The lab's default CPU count: 2 with nested KVM; 1 under TCG, whose
/// single-threaded mode round-robins between lab CPUs, which stalls nested
/// Linux guests (QEMU 7.2: the guest stops at its first timer wait; seen
/// again 2026-12-07: a 2-vCPU Linux guest in a 2-CPU lab, no userspace in
/// 120 s). The drills' payload guests do not mind: see `DRILL_CPUS`.
pub fn default_cpus() -> u32 {
    if host_has_nested_kvm() {
        2
    } else {
        1
    }
}

/// The CPU count for labs that run drills (`drills.sh`, `lab known-bad`):
/// always 2, so that a vCPU in the middle of a fault and a converter can
/// both be inside the kernel. Under single-threaded TCG the two CPUs take
/// turns on one host thread, but they switch at any instruction (QEMU's
/// round robin), not only where the lab kernel would preempt.
pub const DRILL_CPUS: u32 = 2;

/// How the lab's CPUs execute, as the lab tells the command in
/// `CPU_MODE_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Hardware-assisted nested KVM: lab CPUs are host threads.
    Kvm,
    /// Multi-threaded TCG: one host thread per lab CPU.
    MultiTcg,
    /// Single-threaded TCG: every lab CPU on one host thread, in turns.
    SingleTcg,
}

/// Names the lab's `CpuMode` for the command inside (kvm, mttcg, tcg).
pub const CPU_MODE_ENV: &str = crate::drill::LAB_CPU_MODE_ENV;

impl CpuMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CpuMode::Kvm => "kvm",
            CpuMode::MultiTcg => "mttcg",
            CpuMode::SingleTcg => "tcg",
        }
    }

    /// The mode a lab with `cpus` CPUs runs in. Under TCG that is
    /// single-threaded unless MMUVISOR_LAB_TCG=multi: QEMU's multi-threaded
    /// TCG does not hold up with KVM's nested SVM inside. Measured
    /// 2026-12-07 with 2 lab CPUs, vCPUs on one and converters on the other:
    /// with bookworm-backports' QEMU 10.0.2, every exclusive-race run in 8
    /// labs ended with its nested guest's triple fault, and in 5 of them the
    /// lab kernel itself died (a double fault in __switch_to_asm on both CPUs
    /// at once); Debian's QEMU 7.2 did the same (a triple fault and a NULL
    /// pointer call in 3 labs). On one host thread the same drills never
    /// failed.
    pub fn for_lab(cpus: u32) -> CpuMode {
        if host_has_nested_kvm() {
            CpuMode::Kvm
        } else if cpus > 1 && std::env::var("MMUVISOR_LAB_TCG").as_deref() == Ok("multi") {
            CpuMode::MultiTcg
        } else {
            CpuMode::SingleTcg
        }
    }
}

/// Whether the host can run the lab with hardware-assisted nested KVM.
pub fn host_has_nested_kvm() -> bool {
    let kvm_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let hw = crate::host::cpu_has("vmx") || crate::host::cpu_has("svm");
    let nested = [
        "/sys/module/kvm_amd/parameters/nested",
        "/sys/module/kvm_intel/parameters/nested",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .any(|v| matches!(v.trim(), "1" | "Y" | "y"));
    kvm_ok && hw && nested
}

/// The lab kernel's last word, printed at every run's end: noise. The lab
/// kernel has no ACPI, so its init ends with a reset, which `-no-reboot`
/// turns into QEMU's exit.
/// The console line that says the lab kernel died, without its timestamp:
/// a BUG, an oops or a panic (the lab panics on oops).
fn crash_line(line: &str) -> Option<&str> {
    let text = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(rest, |(_, t)| t),
        None => line,
    };
    let crash = [
        "kernel BUG at ",
        "BUG: ",
        "Oops: ",
        "general protection fault",
        "Kernel panic - not syncing",
    ];
    crash
        .iter()
        .any(|c| text.starts_with(c))
        .then_some(text.trim_end())
}

fn is_power_down(line: &[u8]) -> bool {
    line.starts_with(b"[")
        && (line.ends_with(b"] reboot: Restarting system")
            || line.ends_with(b"] reboot: Power down"))
}

/// A 9p share on the microvm machine: a `-fsdev` and its virtio-mmio
/// device (`-virtfs` would make a PCI one).
fn share(cmd: &mut Command, tag: &str, path: &Path, readonly: bool) {
    let fsdev = format!(
        "local,id=fs-{tag},path={},security_model=none,multidevs=remap{}",
        path.display().to_string().replace(',', ",,"),
        if readonly { ",readonly=on" } else { "" }
    );
    cmd.args(["-fsdev", &fsdev]).args([
        "-device",
        &format!("virtio-9p-device,fsdev=fs-{tag},mount_tag={tag}"),
    ]);
}

/// QEMU's monitor: none, or a unix socket where MMUVISOR_LAB_MONITOR names
/// one (to look at a lab that hangs: `info registers`, `info lapic`).
fn monitor() -> [String; 2] {
    let socket = std::env::var_os("MMUVISOR_LAB_MONITOR").map(|p| {
        format!(
            "unix:{},server=on,wait=off",
            p.to_string_lossy().replace(',', ",,")
        )
    });
    ["-monitor".into(), socket.unwrap_or_else(|| "none".into())]
}

fn stop(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid; at worst it fails with ESRCH.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots the lab and waits for it to power off. Returns the command's exit
/// status as reported by the lab's init.
pub fn run(vm: &LabVm) -> Result<i32, LabError> {
    let qemu = super::require_tool("qemu-system-x86_64", "qemu-system-x86")?;
    let mut cmd = Command::new(qemu);
    let clock = match vm.mode {
        CpuMode::Kvm => {
            cmd.args(["-enable-kvm", "-cpu", "host"]);
            String::new()
        }
        mode => {
            let threads = if mode == CpuMode::MultiTcg {
                "multi"
            } else {
                "single"
            };
            cmd.args(["-accel", &format!("tcg,thread={threads}"), "-cpu", "max"]);
            super::clock::tsc_cmdline()
        }
    };
    // QEMU's microvm machine: no PCI, no ACPI, no firmware tables to parse,
    // virtio-mmio devices that QEMU names on the kernel's command line, an
    // MP table for the CPUs. Two NUMA nodes, so move_pages has somewhere to
    // move guest pages to: without ACPI (no SRAT) the kernel splits its
    // memory itself (numa=fake=2, CONFIG_NUMA_EMU). A reset ends the run
    // (-no-reboot); reboot=t makes it a triple fault, without first waiting
    // for a keyboard controller the machine does not have.
    // tsc=reliable: with no HPET and no ACPI PM timer, the only clocksource
    // that allows high-resolution timers is the TSC, and under TCG the
    // clocksource watchdog either marks it unstable or it is never used for
    // them: hrtimers then stay at the 1 ms tick, a 50 us sleep takes 1-2 ms,
    // and exclusive-race caught known-bad 0006 in 3 of 5 runs (5 of 5, in
    // 0.7 s on average, with high-resolution timers). The TSC's rate comes
    // from the host (lab/clock.rs), so the kernel does not calibrate it.
    // movablecore=50%: half of each node is ZONE_MOVABLE, where user pages
    // go first and the kernel allocates nothing it cannot move, so a memory
    // block there can go offline (exclusive-migrate migrates a held page
    // that way); in the other zones a kernel page in the block refuses it.
    let acpi = if vm.acpi { "on" } else { "off" };
    cmd.args(["-M", &format!("microvm,acpi={acpi},x-option-roms=off")])
        .args(["-m", &vm.mem_mib.to_string(), "-smp", &vm.cpus.to_string()])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .args(monitor())
        .arg("-kernel")
        .arg(&vm.kernel)
        .arg("-initrd")
        .arg(&vm.initrd)
        .args([
            "-append",
            &format!(
                "console=ttyS0 panic=-1 quiet loglevel=3 numa=fake=2 movablecore=50% reboot=t tsc=reliable {clock} rdinit=/init {}",
                vm.append
            ),
        ]);
    share(&mut cmd, "hostroot", Path::new("/"), true);
    share(&mut cmd, "labout", &vm.out_dir, false);
    if let Some(cwd) = &vm.cwd {
        share(&mut cmd, "cwd", cwd, false);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches only
    // the child: QEMU dies with us even if we are killed with SIGKILL.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    catch_signals();
    let mut child = cmd
        .spawn()
        .map_err(|e| LabError::io("cannot start", "qemu-system-x86_64", e))?;
    let to_stderr = vm.console_to_stderr;
    let console = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut sink: Box<dyn Write> = if to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            };
            let mut crash = None;
            for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if is_power_down(line) {
                    continue;
                }
                if crash.is_none() {
                    crash = crash_line(&String::from_utf8_lossy(line)).map(str::to_string);
                }
                let _ = sink.write_all(line);
                let _ = sink.write_all(b"\n");
                let _ = sink.flush();
            }
            crash
        })
    });
    let errors = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[qemu] {line}");
                text.push_str(&line);
            }
            text
        })
    });
    let start = Instant::now();
    let status = loop {
        if SIGNALLED.load(Ordering::SeqCst) != 0 {
            stop(&mut child);
            return Err(LabError::Interrupted);
        }
        if start.elapsed() > vm.timeout {
            stop(&mut child);
            return Err(LabError::Timeout(vm.timeout.as_secs()));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                stop(&mut child);
                return Err(LabError::io("cannot wait for", "qemu-system-x86_64", e));
            }
        }
    };
    let crash = console.and_then(|t| t.join().ok()).flatten();
    let qemu_errors = errors.and_then(|t| t.join().ok()).unwrap_or_default();
    let status_file = vm.out_dir.join("status");
    match std::fs::read_to_string(&status_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        Some(code) => Ok(code),
        None if !status.success() => Err(LabError::Invalid(format!(
            "QEMU failed ({status}){}",
            if qemu_errors.is_empty() {
                String::new()
            } else {
                format!(": {qemu_errors}")
            }
        ))),
        None => Err(crash.map_or(LabError::NoStatus, LabError::KernelCrash)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bug_an_oops_or_a_panic_is_a_crash_line() {
        assert_eq!(
            crash_line("[    1.694299] kernel BUG at include/linux/swapops.h:505!\r"),
            Some("kernel BUG at include/linux/swapops.h:505!")
        );
        assert_eq!(
            crash_line("[    2.1] BUG: unable to handle page fault for address: 0"),
            Some("BUG: unable to handle page fault for address: 0")
        );
        assert!(crash_line("Oops: invalid opcode: 0000 [#1] PREEMPT SMP").is_some());
        assert!(crash_line("[ 3.0] Kernel panic - not syncing: Fatal exception").is_some());
        assert_eq!(crash_line("ok 18 exclusive-large-folio"), None);
        assert_eq!(crash_line("# exclusive-thp: note: BUG: in a note"), None);
        assert_eq!(
            crash_line("[    1.0] WARNING: CPU: 0 PID: 1 at mm/rmap.c:1"),
            None
        );
    }
}
