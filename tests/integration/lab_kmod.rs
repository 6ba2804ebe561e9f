//! The helper module's tests (src/notifier_client/tests.rs) inside the lab:
//! on the debug kernel (lockdep, DEBUG_VM) and on 7.2 and 6.12, with the
//! module loaded. Any WARNING, BUG or lockdep report in dmesg fails the run.

use crate::lab::{lab_enabled, lab_run};
use std::path::PathBuf;

/// The library's unit-test binary beside this integration test binary
/// (target/<profile>/deps/mmuvisor-<hash>; the binary's own unit tests use
/// the same prefix): the newest one that lists the module's tests.
fn lib_test_binary() -> PathBuf {
    let me = std::env::current_exe().expect("no test binary path");
    let deps = me.parent().expect("no deps folder");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("cannot list deps")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("mmuvisor-") && !name.contains('.')
        })
        .filter(|p| {
            std::process::Command::new(p)
                .arg("--list")
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout).contains("notifier_client::tests::lab_")
                })
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .expect("build the library tests first (cargo test builds them)")
}

/// Fails on kernel complaints, whatever the tests said.
/// Lockdep's reports start with "WARNING: possible ... locking" or
/// "WARNING: inconsistent lock state"; its banner at boot does not count.
const DMESG_CHECK: &str = "dmesg | grep -E 'WARNING:|BUG:|BUG |suspicious RCU usage|INFO: task .* blocked|Oops|general protection fault|UBSAN' && exit 99";

fn kmod_suite(lab_args: &[&str]) {
    let bin = lib_test_binary();
    let script = format!(
        "test -c /dev/mmuvisor || {{ echo 'no /dev/mmuvisor in the lab'; exit 98; }}; \
         {} notifier_client --test-threads=1; rc=$?; {DMESG_CHECK}; exit $rc",
        bin.display()
    );
    let out = lab_run(lab_args, &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("# SKIP no /dev/mmuvisor"),
        "module tests skipped in the lab"
    );
    assert!(
        text.contains("test result: ok"),
        "module tests did not pass"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "module tests failed or the kernel complained (99)"
    );
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_the_debug_kernel() {
    if lab_enabled() {
        kmod_suite(&["--flavour", "debug"]);
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_7_2() {
    if lab_enabled() {
        kmod_suite(&[]);
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_6_12() {
    if lab_enabled() {
        kmod_suite(&["--version", "6.12"]);
    }
}
