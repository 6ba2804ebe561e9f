//! `mmuvisor run --kernel` inside the lab: QEMU TCG (`-cpu max`, nested SVM)
//! boots the lab kernel, whose init runs this mmuvisor binary on /dev/kvm to
//! boot the same kernel with a busybox initramfs on 2 vCPUs; the nested init
//! prints a line and reboots (i8042 reset, exit 0). Slow (about a minute):
//! `cargo test --test integration -- --ignored linux_boots_nested`.
//! Uses MMUVISOR_LAB_KERNEL or a built lab kernel under ~/.cache/mmuvisor/kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lab_kernel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MMUVISOR_LAB_KERNEL") {
        return Some(p.into());
    }
    let dir = PathBuf::from(std::env::var_os("HOME")?).join(".cache/mmuvisor/kernels");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(".done").exists() && p.join("bzImage").is_file())
        .collect();
    found.sort();
    found.pop().map(|p| p.join("bzImage"))
}

fn sh(cmd: &str) -> Result<String, String> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!("{cmd}: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Copies `bin` and the shared libraries it needs into `root`.
fn copy_with_libs(bin: &Path, root: &Path, dest: &str) -> Result<(), String> {
    sh(&format!("cp {} {}/{dest}", bin.display(), root.display()))?;
    let ldd = sh(&format!("ldd {}", bin.display())).unwrap_or_default();
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        sh(&format!(
            "mkdir -p {r}$(dirname {lib}) && cp -L {lib} {r}{lib}",
            r = root.display()
        ))?;
    }
    Ok(())
}

#[test]
#[ignore = "slow: boots Linux under mmuvisor inside QEMU TCG (needs a lab kernel, qemu, busybox, cpio)"]
fn linux_boots_nested() {
    let Some(kernel) = lab_kernel() else {
        eprintln!("SKIP: no lab kernel (set MMUVISOR_LAB_KERNEL or build one)");
        return;
    };
    for tool in ["qemu-system-x86_64", "busybox", "cpio"] {
        if sh(&format!("command -v {tool}")).is_err() {
            eprintln!("SKIP: {tool} not installed");
            return;
        }
    }
    let tmp = vmm_sys_util::tempdir::TempDir::new_with_prefix("/tmp/mmuvisor-lab-").unwrap();
    let t = tmp.as_path();
    let inner_init = "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
        echo \"NESTED GUEST UP: $(/bin/busybox grep -c ^processor /proc/cpuinfo) cpus\"\n\
        /bin/busybox reboot -f\n";
    let outer_init = "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n\
        /bin/busybox mount -t sysfs sys /sys\n/bin/busybox mount -t devtmpfs dev /dev\n\
        /bin/mmuvisor run --kernel /bzImage --initrd /inner.cpio --cmdline 'rdinit=/init noxsave' \
        --vcpus 2 --mem 256M --timeout 300\necho \"LINUX rc=$?\"\n/bin/busybox poweroff -f\n";
    sh(&format!(
        "set -e; cd {t}; mkdir -p inner/bin inner/proc outer/bin outer/proc outer/sys outer/dev; \
         cp $(command -v busybox) inner/bin/; cp $(command -v busybox) outer/bin/; \
         cp {k} outer/bzImage",
        t = t.display(),
        k = kernel.display()
    ))
    .unwrap();
    std::fs::write(t.join("inner/init"), inner_init).unwrap();
    std::fs::write(t.join("outer/init"), outer_init).unwrap();
    copy_with_libs(
        Path::new(env!("CARGO_BIN_EXE_mmuvisor")),
        &t.join("outer"),
        "bin/mmuvisor",
    )
    .unwrap();
    sh(&format!(
        "set -e; cd {t}; chmod +x inner/init outer/init; \
         (cd inner && find . | cpio -o -H newc 2>/dev/null) > outer/inner.cpio; \
         (cd outer && find . | cpio -o -H newc 2>/dev/null) > outer.cpio",
        t = t.display()
    ))
    .unwrap();
    let o = Command::new("timeout")
        .args([
            "600",
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
        ])
        .args(["-m", "2048", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(t.join("outer.cpio"))
        .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("NESTED GUEST UP: 2 cpus"),
        "nested Linux did not reach init:\n{out}"
    );
    assert!(
        out.contains("LINUX rc=0"),
        "mmuvisor did not exit 0 on reboot:\n{out}"
    );
}
