//! One lab run: kernel, assets and helper module ready (built or cached),
//! an initramfs packed for this command, QEMU booted, temporary files gone
//! afterwards whatever happens.

use super::{assets, cache, initramfs, kernel, kmod, qemu, LabError};
use std::path::PathBuf;
use std::time::Duration;

/// What `mmuvisor lab run` was asked for.
pub struct LabRun {
    pub cache: Option<PathBuf>,
    pub kernel: kernel::KernelSpec,
    pub mem_mib: u64,
    pub cpus: u32,
    pub timeout: Duration,
    pub command: Vec<String>,
    /// Don't load (or build) the helper module.
    pub no_kmod: bool,
    /// Copy what the command left in the lab's /lab/out here afterwards.
    pub keep_out: Option<PathBuf>,
    /// The lab's console goes to stderr, not stdout.
    pub console_to_stderr: bool,
}

/// Extra lab kernel command-line arguments (a developer's, e.g. to try a
/// boot option), after the lab's own.
pub const APPEND_ENV: &str = "MMUVISOR_LAB_APPEND";

/// Tells commands in the lab whether the host's stdout is a terminal.
pub const STDOUT_TTY_ENV: &str = "MMUVISOR_STDOUT_TTY";

/// Tells commands in the lab which kernel the lab booted (reports name
/// it beside `uname -r`): "Debian PACKAGE VERSION" or "built NAME".
pub const KERNEL_ENV: &str = "MMUVISOR_LAB_KERNEL";

/// The lab kernel in words, for [`KERNEL_ENV`].
fn lab_kernel_words(kernel: &kernel::LabKernel) -> String {
    match kernel.stock() {
        Some(s) => {
            let mut w = s.split_whitespace();
            let (pkg, ver) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            format!("Debian {pkg} {ver}")
        }
        None => format!(
            "built {}",
            kernel
                .dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
    }
}

/// Environment lines for the command in the lab.
fn env_script(
    cwd: Option<&PathBuf>,
    assets: &assets::Assets,
    mode: qemu::CpuMode,
    kernel: &kernel::LabKernel,
) -> String {
    let q = |s: &str| initramfs::shell_quote(s);
    let mut env = String::new();
    env.push_str(&format!(
        "export {KERNEL_ENV}={}\n",
        q(&lab_kernel_words(kernel))
    ));
    env.push_str(&format!(
        "export {}={}\n",
        qemu::CPU_MODE_ENV,
        mode.as_str()
    ));
    env.push_str(&format!(
        "LAB_CWD={}\n",
        q(&cwd.map(|c| c.display().to_string()).unwrap_or_default())
    ));
    env.push_str("export MMUVISOR_LAB=1 MMUVISOR_GUEST_KERNEL=/lab/guest/vmlinuz MMUVISOR_GUEST_INITRD=/lab/guest/initrd\n");
    // The host's / is the lab's /host.
    if let Some(vmlinux) = assets
        .guest_vmlinux()
        .and_then(|p| std::fs::canonicalize(p).ok())
    {
        env.push_str(&format!(
            "export MMUVISOR_GUEST_VMLINUX={}\n",
            q(&format!("/host{}", vmlinux.display()))
        ));
    }
    {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal() as u8;
        env.push_str(&format!("export {STDOUT_TTY_ENV}={tty}\n"));
    }
    for key in ["RUST_BACKTRACE", "RUST_LOG", "MMUVISOR_TEST_FILTER"] {
        if let Ok(v) = std::env::var(key) {
            env.push_str(&format!("export {key}={}\n", q(&v)));
        }
    }
    env
}

/// Boots the lab, runs the command, returns its exit status.
pub fn run(req: &LabRun) -> Result<i32, LabError> {
    if req.command.is_empty() {
        return Err(LabError::Invalid(
            "no command given: mmuvisor lab run [OPTIONS] -- CMD ARGS...".into(),
        ));
    }
    if !(1..=64).contains(&req.cpus) {
        return Err(LabError::Invalid(format!(
            "--cpus {} is out of range (1..=64)",
            req.cpus
        )));
    }
    if req.mem_mib < 256 {
        return Err(LabError::Invalid(format!(
            "--mem {} MiB is below the lab's minimum of 256 MiB",
            req.mem_mib
        )));
    }
    super::require_tool("qemu-system-x86_64", "qemu-system-x86")?;
    let cache = cache::cache_dir(req.cache.as_ref())?;
    std::fs::create_dir_all(&cache).map_err(|e| LabError::io("cannot create", &cache, e))?;
    // The assets are downloads: fetched while the kernel builds.
    let (kernel, assets) = std::thread::scope(|scope| {
        let assets = scope.spawn(|| assets::ensure(&cache));
        let kernel = kernel::ensure(&cache, &req.kernel);
        let assets = assets.join().unwrap_or_else(|_| {
            Err(LabError::Invalid(
                "fetching the lab's assets panicked".into(),
            ))
        });
        (kernel, assets)
    });
    let (kernel, assets) = (kernel?, assets?);
    let mut modules: Vec<PathBuf> = kernel.module("test_hmm").into_iter().collect();
    if !req.no_kmod {
        modules.push(kmod::ensure(&cache, &kernel)?);
    }
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("cannot find", "this executable", e))?;
    let cwd = std::env::current_dir().ok();
    let command = req
        .command
        .iter()
        .map(|a| initramfs::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let guest_initrd = initramfs::guest_image(&assets.busybox())?;
    // The command is told the mode QEMU is started with.
    let mode = qemu::CpuMode::for_lab(req.cpus);
    let image = initramfs::lab_image(&initramfs::LabImage {
        busybox: &assets.busybox(),
        mmuvisor: &exe,
        boot_modules: kernel.boot_modules(),
        modules,
        guest_kernel: &assets.guest_kernel(),
        guest_initrd: &guest_initrd,
        command: format!("exec {command}\n"),
        env: env_script(cwd.as_ref(), &assets, mode, &kernel),
    })?;
    // Removed on drop.
    let tmp = super::temp_dir("lab")?;
    let initrd = tmp.as_path().join("initramfs.cpio");
    std::fs::write(&initrd, image).map_err(|e| LabError::io("cannot write", &initrd, e))?;
    let out_dir = tmp.as_path().join("out");
    std::fs::create_dir(&out_dir).map_err(|e| LabError::io("cannot create", &out_dir, e))?;
    let result = qemu::run(&qemu::LabVm {
        kernel: kernel.bzimage(),
        initrd,
        mem_mib: req.mem_mib,
        cpus: req.cpus,
        mode,
        cwd,
        out_dir: out_dir.clone(),
        timeout: req.timeout,
        append: [
            kernel.boot_args().to_string(),
            std::env::var(APPEND_ENV).unwrap_or_default(),
        ]
        .join(" ")
        .trim()
        .to_string(),
        console_to_stderr: req.console_to_stderr,
        acpi: kernel.stock().is_some(),
    });
    if let Ok(dest) = std::env::var("MMUVISOR_LAB_DMESG") {
        let _ = std::fs::copy(out_dir.join("dmesg"), dest);
    }
    if let Some(keep) = &req.keep_out {
        std::fs::create_dir_all(keep).map_err(|e| LabError::io("cannot create", keep, e))?;
        let entries =
            std::fs::read_dir(&out_dir).map_err(|e| LabError::io("cannot read", &out_dir, e))?;
        for e in entries.flatten() {
            let to = keep.join(e.file_name());
            std::fs::copy(e.path(), &to).map_err(|err| LabError::io("cannot copy to", to, err))?;
        }
    }
    result
}
