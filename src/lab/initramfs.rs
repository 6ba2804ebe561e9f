//! The initramfs images: the lab's own (busybox, this mmuvisor with its
//! libraries, modules, test-guest assets, the init script) and the busybox
//! initramfs of nested Linux test guests.

use super::cpio::CpioWriter;
use super::LabError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The lab's init: mounts, shares, modules, then the command; its exit
/// status and the kernel log go to the output share.
const LAB_INIT: &str = include_str!("../../resources/lab/init.sh");
/// A nested test guest's init: runs the command given after `--` on the
/// kernel command line, reports its status on the debug-exit port.
const GUEST_INIT: &str = include_str!("../../resources/lab/guest-init.sh");

fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::io("cannot read", path, e))
}

/// The shared libraries `exe` needs, as `ldd` names them (the dynamic
/// loader included).
pub fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>, LabError> {
    let out = std::process::Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| LabError::io("cannot run ldd on", exe, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let word = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            }?;
            word.starts_with('/').then(|| PathBuf::from(word))
        })
        .collect())
}

/// Files for the lab's initramfs.
pub struct LabImage<'a> {
    pub busybox: &'a Path,
    pub mmuvisor: &'a Path,
    /// The kernel's own modules, loaded in this order before the shares
    /// are mounted (a stock kernel's 9p, virtio-mmio, kvm).
    pub boot_modules: Vec<PathBuf>,
    /// Modules loaded once the shares are up (the helper module).
    pub modules: Vec<PathBuf>,
    pub guest_kernel: &'a Path,
    pub guest_initrd: &'a [u8],
    /// Shell-quoted command line to run.
    pub command: String,
    /// Environment lines (`export K=V`) for the command.
    pub env: String,
}

fn add_file(w: &mut CpioWriter, seen: &mut BTreeSet<String>, at: &str, mode: u32, data: &[u8]) {
    w.parents(at, seen);
    w.file(at, mode, data);
}

/// Builds the lab's initramfs.
pub fn lab_image(img: &LabImage) -> Result<Vec<u8>, LabError> {
    let mut w = CpioWriter::new();
    let mut seen = BTreeSet::new();
    for dir in [
        "/bin", "/sbin", "/proc", "/sys", "/dev", "/tmp", "/run", "/host", "/root", "/lab",
        "/lab/out",
    ] {
        w.parents(&format!("{dir}/x"), &mut seen);
    }
    add_file(
        &mut w,
        &mut seen,
        "/bin/busybox",
        0o755,
        &read(img.busybox)?,
    );
    w.symlink("/bin/sh", "busybox");
    add_file(&mut w, &mut seen, "/init", 0o755, LAB_INIT.as_bytes());
    add_file(
        &mut w,
        &mut seen,
        "/lab/bin/mmuvisor",
        0o755,
        &read(img.mmuvisor)?,
    );
    for lib in shared_libraries(img.mmuvisor)? {
        let at = lib.display().to_string();
        add_file(&mut w, &mut seen, &at, 0o755, &read(&lib)?);
    }
    let folders = [
        ("boot-modules", &img.boot_modules),
        ("modules", &img.modules),
    ];
    for (folder, modules) in folders {
        for module in modules {
            let name = module
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            add_file(
                &mut w,
                &mut seen,
                &format!("/lab/{folder}/{name}"),
                0o644,
                &read(module)?,
            );
        }
    }
    add_file(
        &mut w,
        &mut seen,
        "/lab/guest/vmlinuz",
        0o644,
        &read(img.guest_kernel)?,
    );
    add_file(
        &mut w,
        &mut seen,
        "/lab/guest/initrd",
        0o644,
        img.guest_initrd,
    );
    add_file(&mut w, &mut seen, "/lab/env.sh", 0o644, img.env.as_bytes());
    add_file(
        &mut w,
        &mut seen,
        "/lab/cmd.sh",
        0o755,
        img.command.as_bytes(),
    );
    Ok(w.finish())
}

/// Builds a nested test guest's busybox initramfs.
pub fn guest_image(busybox: &Path) -> Result<Vec<u8>, LabError> {
    let mut w = CpioWriter::new();
    let mut seen = BTreeSet::new();
    for dir in ["/bin", "/sbin", "/proc", "/sys", "/dev", "/tmp"] {
        w.parents(&format!("{dir}/x"), &mut seen);
    }
    add_file(&mut w, &mut seen, "/bin/busybox", 0o755, &read(busybox)?);
    w.symlink("/bin/sh", "busybox");
    add_file(&mut w, &mut seen, "/init", 0o755, GUEST_INIT.as_bytes());
    Ok(w.finish())
}

/// Quotes `arg` for a POSIX shell.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1.2"), "abc-1.2");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
