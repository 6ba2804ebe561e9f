//! Lab tests: each boots the lab (QEMU with the project's kernel, KVM
//! inside) and runs mmuvisor there. They need the lab kernel build (minutes
//! on a fresh machine, cached after), so they run when MMUVISOR_LAB_TESTS=1
//! (scripts/test.sh sets it) and say why they skip otherwise.

use std::path::Path;
use std::process::{Command, Output};

/// Skips (with the reason printed) unless lab tests are enabled here.
pub fn lab_enabled() -> bool {
    if std::env::var("MMUVISOR_LAB").is_ok() {
        println!("SKIP: already inside the lab");
        return false;
    }
    if std::env::var("MMUVISOR_LAB_TESTS").as_deref() != Ok("1") {
        println!("SKIP: lab tests are off (set MMUVISOR_LAB_TESTS=1; scripts/test.sh does)");
        return false;
    }
    true
}

/// `mmuvisor lab run [lab_args] -- cmd...`, output captured.
pub fn lab_run(lab_args: &[&str], cmd: &[&str]) -> Output {
    lab_run_kmod(None, lab_args, cmd)
}

/// [`lab_run`], with the helper module built from `kmod` (a changed copy of
/// kmod/, through MMUVISOR_KMOD_DIR) where given.
pub fn lab_run_kmod(kmod: Option<&Path>, lab_args: &[&str], cmd: &[&str]) -> Output {
    let mut lab = Command::new(env!("CARGO_BIN_EXE_mmuvisor"));
    if let Some(dir) = kmod {
        lab.env("MMUVISOR_KMOD_DIR", dir);
    }
    let out = lab
        .args(["lab", "run", "--timeout", "900"])
        .args(lab_args)
        .arg("--")
        .args(cmd)
        .output()
        .expect("cannot start mmuvisor");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_runs_a_command_and_returns_its_status() {
    if !lab_enabled() {
        return;
    }
    let out = lab_run(&[], &["sh", "-c", "test -c /dev/kvm && grep -qw svm /proc/cpuinfo && echo lab-ok; touch lab-wrote-this; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(
        stdout(&out).contains("lab-ok"),
        "no /dev/kvm or no svm in the lab"
    );
    let marker = std::path::Path::new("lab-wrote-this");
    assert!(
        marker.exists(),
        "the lab could not write to the current folder"
    );
    let _ = std::fs::remove_file(marker);
}

fn boot_linux_guest(thp: &str) {
    let cmd = "mmuvisor run --kernel $MMUVISOR_GUEST_KERNEL --initrd $MMUVISOR_GUEST_INITRD \
               --vcpus 2 --mem 256M --thp THP --timeout 120 --cmdline '-- echo guest-says-hi; exit 5'"
        .replace("THP", thp);
    let out = lab_run(&[], &["sh", "-c", &cmd]);
    let text = stdout(&out);
    assert!(
        text.contains("mmuvisor-guest: userspace up, 2 CPUs"),
        "guest did not reach userspace with 2 CPUs"
    );
    assert!(
        text.contains("guest-says-hi"),
        "guest command output did not come back"
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "guest exit status did not reach the host"
    );
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_boots_debian_kernel_as_nested_guest_thp_on() {
    if lab_enabled() {
        boot_linux_guest("on");
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_boots_debian_kernel_as_nested_guest_thp_off() {
    if lab_enabled() {
        boot_linux_guest("off");
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_runs_the_payload_tests() {
    if !lab_enabled() {
        return;
    }
    let me = std::env::current_exe().expect("no test binary path");
    let me = me.to_string_lossy();
    let out = lab_run(&[], &[&me, "--test-threads=1", "payloads::"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "payload tests failed in the lab"
    );
    assert!(stdout(&out).contains("test result: ok"));
}

#[test]
fn lab_rejects_bad_input_with_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "run", "--cpus", "0", "--", "true"])
        .output()
        .expect("cannot start mmuvisor");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--cpus 0"), "{err}");
}
