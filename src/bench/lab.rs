//! Lab benchmarks: figures, never assertions. Kernel build time (as
//! recorded by the build), lab boot to the command, and a nested Linux
//! guest's boot under mmuvisor against QEMU in the same lab run.

use super::median;
use crate::lab::LabError;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The line a nested test guest prints once its userspace runs.
pub const GUEST_MARKER: &str = "mmuvisor-guest: userspace up";

/// Starts `cmd` and returns the time until `marker` shows on its stdout;
/// the process is killed afterwards.
pub fn time_to_marker(
    cmd: &mut Command,
    marker: &str,
    limit: Duration,
) -> Result<Duration, LabError> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LabError::io("cannot start", format!("{cmd:?}"), e))?;
    let Some(out) = child.stdout.take() else {
        return Err(LabError::Invalid("no stdout".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let m = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(&m) {
                let _ = tx.send(Instant::now());
            }
        }
    });
    let seen = rx.recv_timeout(limit);
    let _ = child.kill();
    let _ = child.wait();
    seen.map(|t| t - start).map_err(|_| {
        LabError::Invalid(format!(
            "'{marker}' did not show within {} s",
            limit.as_secs()
        ))
    })
}

/// Inside the lab: boots Debian's stock kernel with the busybox initramfs
/// under mmuvisor and under QEMU (KVM, from the host's root via /host),
/// `runs` times each, and prints the medians and their ratio. Each VMM boots
/// the kernel both ways it can: the bzImage (the kernel decompresses
/// itself) and, where the lab has it, the decompressed vmlinux (mmuvisor:
/// its ELF entry; QEMU: its PVH entry).
pub fn nested_boot_inner(runs: usize) -> Result<(), LabError> {
    let kernel = std::env::var("MMUVISOR_GUEST_KERNEL")
        .map_err(|_| LabError::Invalid("not in the lab (MMUVISOR_GUEST_KERNEL unset)".into()))?;
    let initrd = std::env::var("MMUVISOR_GUEST_INITRD").unwrap_or_default();
    let vmlinux = std::env::var("MMUVISOR_GUEST_VMLINUX").ok();
    let exe =
        std::env::current_exe().map_err(|e| LabError::io("cannot find", "this executable", e))?;
    // QEMU runs from the host's root: give it /dev, /proc, /sys and a /tmp.
    // The kernels are copied into that /tmp (the lab's memory) before any
    // timing, for both VMMs.
    let copy_vmlinux = vmlinux
        .as_deref()
        .map(|v| format!(" && cp {v} /host/tmp/vmlinux"))
        .unwrap_or_default();
    let setup = format!(
        "m() {{ grep -q \" $3 \" /proc/mounts || mount -t $1 $2 $3; }}; \
         m devtmpfs devtmpfs /host/dev; m proc proc /host/proc; m sysfs sysfs /host/sys; \
         m tmpfs tmpfs /host/tmp; cp {kernel} /host/tmp/vmlinuz && cp {initrd} /host/tmp/initrd{copy_vmlinux}"
    );
    let ok = Command::new("sh")
        .args(["-c", &setup])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let limit = Duration::from_secs(120);
    let cmdline = "console=ttyS0 reboot=k panic=-1 acpi=off quiet -- true";
    let mut images = vec![("bzImage", "/tmp/vmlinuz")];
    if ok && vmlinux.is_some() {
        images.push(("vmlinux", "/tmp/vmlinux"));
    }
    let mut ours: Vec<Vec<Duration>> = vec![Vec::new(); images.len()];
    let mut theirs: Vec<Vec<Duration>> = vec![Vec::new(); images.len()];
    for _ in 0..runs {
        for (i, (_, image)) in images.iter().enumerate() {
            let path = if ok {
                format!("/host{image}")
            } else {
                kernel.clone()
            };
            let mut m = Command::new(&exe);
            m.args(["run", "--kernel", &path, "--initrd", &initrd])
                .args([
                    "--mem",
                    "256M",
                    "--vcpus",
                    "1",
                    "--cmdline",
                    "quiet -- true",
                ]);
            ours[i].push(time_to_marker(&mut m, GUEST_MARKER, limit)?);
            if !ok {
                continue;
            }
            let mut q = Command::new("chroot");
            q.args(["/host", "qemu-system-x86_64", "-enable-kvm", "-cpu", "host"])
                .args(["-m", "256", "-smp", "1", "-nodefaults", "-display", "none"])
                .args(["-serial", "stdio", "-no-reboot"])
                .args([
                    "-kernel",
                    image,
                    "-initrd",
                    "/tmp/initrd",
                    "-append",
                    cmdline,
                ]);
            match time_to_marker(&mut q, GUEST_MARKER, limit) {
                Ok(d) => theirs[i].push(d),
                Err(e) => println!("# qemu peer ({image}) failed: {e}"),
            }
        }
    }
    let mut best: [Option<f64>; 2] = [None, None];
    for (i, (what, _)) in images.iter().enumerate() {
        let m = median(std::mem::take(&mut ours[i])).as_secs_f64();
        println!(
            "nested-boot mmuvisor {what}: median {m:.3} s over {runs} boots (to '{GUEST_MARKER}')"
        );
        best[0] = Some(best[0].map_or(m, |b: f64| b.min(m)));
        if theirs[i].is_empty() {
            println!("nested-boot qemu {what}: not measured (QEMU from the host's root did not run in the lab)");
            continue;
        }
        let q = median(std::mem::take(&mut theirs[i])).as_secs_f64();
        println!("nested-boot qemu-system-x86_64 -enable-kvm {what}: median {q:.3} s");
        println!("nested-boot ratio mmuvisor/qemu, both {what}: {:.2}", m / q);
        best[1] = Some(best[1].map_or(q, |b: f64| b.min(q)));
    }
    if let [Some(m), Some(q)] = best {
        println!(
            "nested-boot ratio mmuvisor/qemu, each at its fastest: {:.2} (target <= 0.8)",
            m / q
        );
    }
    Ok(())
}
