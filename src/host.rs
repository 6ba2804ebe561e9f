//! Drills on this machine, no lab: a host with VMX/SVM and a kernel with
//! DEVICE_PRIVATE (Fedora's and Ubuntu's have it). `check` says exactly what
//! is missing; `setup` builds the helper module against the running
//! kernel's build tree and loads it.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::lab::{cache, kmod, LabError};
use crate::notifier_client::{NotifierClient, DEVICE_PATH};
use crate::secondary_mmu;

/// One prerequisite of the drills and whether this host meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prereq {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, or what to do about it.
    pub detail: String,
}

fn prereq(name: &'static str, r: Result<String, String>) -> Prereq {
    match r {
        Ok(detail) => Prereq {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Prereq {
            name,
            ok: false,
            detail,
        },
    }
}

/// Whether the host CPU shows `flag` in /proc/cpuinfo (false where it
/// cannot be read).
pub fn cpu_has(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("flags"))
                .map(|l| l.split_whitespace().any(|f| f == flag))
        })
        .unwrap_or(false)
}

fn kvm() -> Result<String, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e} (load kvm_intel or kvm_amd; run as root)"))?;
    match (cpu_has("vmx"), cpu_has("svm")) {
        (true, _) => Ok("/dev/kvm usable, VMX".into()),
        (_, true) => Ok("/dev/kvm usable, SVM".into()),
        _ => Err(
            "/dev/kvm opens but the CPU shows no vmx/svm: a software KVM \
                  boots Linux guests too slowly for the drills; use the lab"
                .into(),
        ),
    }
}

fn tracefs() -> Result<String, String> {
    let root = secondary_mmu::tracefs_root().map_err(|e| e.to_string())?;
    for event in [secondary_mmu::UNMAP_EVENT, secondary_mmu::SPTE_EVENT] {
        if !secondary_mmu::has_event(event) {
            return Err(format!(
                "{} has no {event} event (KVM without the TDP MMU, or tracing off)",
                root.display()
            ));
        }
    }
    Ok(format!(
        "{} with {} and {}",
        root.display(),
        secondary_mmu::UNMAP_EVENT,
        secondary_mmu::SPTE_EVENT
    ))
}

/// CONFIG_DEVICE_PRIVATE as the running kernel's config says, if readable.
fn device_private_config() -> Option<(String, bool)> {
    let release = uname_release();
    let candidates = [
        format!("/boot/config-{release}"),
        format!("/lib/modules/{release}/build/.config"),
    ];
    for path in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Some((path, text.lines().any(|l| l == "CONFIG_DEVICE_PRIVATE=y")));
        }
    }
    None
}

fn module() -> Result<String, String> {
    if !Path::new(DEVICE_PATH).exists() {
        return Err(format!(
            "no {DEVICE_PATH}: run `mmuvisor host setup` (builds and loads the helper module)"
        ));
    }
    let dev = NotifierClient::open().map_err(|e| e.to_string())?;
    let v = dev.version();
    if !v.exclusive {
        return Err(format!(
            "the helper module (ABI {}) is loaded but this kernel cannot make pages \
             device-exclusive: CONFIG_DEVICE_PRIVATE is off",
            v.abi_version
        ));
    }
    Ok(format!(
        "{DEVICE_PATH}: helper module ABI {}, device-exclusive supported",
        v.abi_version
    ))
}

/// Every prerequisite of `mmuvisor drill all`, in order.
pub fn check() -> Vec<Prereq> {
    let mut out = vec![prereq("kvm", kvm()), prereq("tracefs", tracefs())];
    let config = match device_private_config() {
        Some((path, true)) => Ok(format!("CONFIG_DEVICE_PRIVATE=y in {path}")),
        Some((path, false)) => Err(format!(
            "CONFIG_DEVICE_PRIVATE is not set in {path}: the exclusive drills cannot run"
        )),
        None => Ok("kernel config not readable; the module's answer below decides".into()),
    };
    out.push(prereq("device-private", config));
    out.push(prereq("module", module()));
    out
}

/// The running kernel's release (`uname -r`).
pub fn uname_release() -> String {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct we own; its fields are NUL-terminated.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: release is a NUL-terminated C string inside `u`.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Errors of `mmuvisor host setup`.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{0}: no kernel build tree there (install the headers for {1}, e.g. linux-headers-{1}, or give --kdir)")]
    NoBuildTree(PathBuf, String),
    #[error(transparent)]
    Build(#[from] LabError),
    #[error("loading {0}: {1}")]
    Load(PathBuf, std::io::Error),
}

/// Builds the helper module against `kdir` (default: the running kernel's
/// /lib/modules/$(uname -r)/build) into the cache and loads it unless it is
/// loaded already. Returns the module file.
pub fn setup(
    kdir: Option<&Path>,
    cache_dir: Option<&PathBuf>,
    load: bool,
) -> Result<PathBuf, HostError> {
    let release = uname_release();
    let kdir = kdir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("/lib/modules/{release}/build")));
    if !kdir.join("Makefile").is_file() {
        return Err(HostError::NoBuildTree(kdir, release));
    }
    let cache = cache::cache_dir(cache_dir)?;
    let name = format!("host-{release}");
    let ko = kmod::build_against(&cache, &kdir, &name, kdir.to_string_lossy().as_bytes(), &[])?;
    if load && !Path::new(DEVICE_PATH).exists() {
        load_module(&ko).map_err(|e| HostError::Load(ko.clone(), e))?;
    }
    Ok(ko)
}

/// finit_module(2) on `ko` (what insmod does), no parameters.
fn load_module(ko: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(ko)?;
    let params = CString::default();
    // SAFETY: finit_module reads the open module file and the NUL-terminated
    // parameter string; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            params.as_ptr(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // udev may create the node a moment later.
    for _ in 0..50 {
        if Path::new(DEVICE_PATH).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}
