//! The helper module's tests (kmod_*.rs, in this binary) inside the lab,
//! with the module loaded: on the debug kernel (lockdep, DEBUG_VM, the
//! fuzz for 60 s) and on 7.2 with two lab CPUs (races), on 6.12 with one, and with the module built for its
//! other API paths (MMUVISOR_API=range and none, see kmod/README.md). Any
//! WARNING, BUG or lockdep report in dmesg fails the run; the dmesg check
//! is first shown to catch a planted WARNING. rmmod must be refused while
//! a file is open and succeed after.

use crate::lab::{lab_enabled, lab_run, lab_run_kmod};
use std::path::{Path, PathBuf};

/// Kernel complaints: lockdep's reports start with "WARNING: possible ...
/// locking" or "WARNING: inconsistent lock state"; its banner at boot does
/// not count.
const DMESG_BAD: &str =
    "WARNING:|BUG:|BUG |suspicious RCU usage|INFO: task .* blocked|Oops|general protection fault|UBSAN";

fn suite_script(filter: &str, fuzz_secs: u32) -> String {
    let me = std::env::current_exe().expect("no test binary path");
    format!(
        "check() {{ dmesg | grep -E -A30 '{DMESG_BAD}' > /tmp/dmesg-bad; head -100 /tmp/dmesg-bad; test -s /tmp/dmesg-bad; }}\n\
         test -c /dev/mmuvisor || {{ echo 'no /dev/mmuvisor in the lab'; exit 98; }}\n\
         check && {{ echo 'kernel complained before the tests'; exit 99; }}\n\
         echo 'WARNING: planted by lab_kmod.rs' > /dev/kmsg\n\
         check >/dev/null || {{ echo 'the dmesg check missed a planted WARNING'; exit 95; }}\n\
         dmesg -c >/dev/null\n\
         exec 3</dev/mmuvisor\n\
         rmmod mmuvisor 2>/dev/null && {{ echo 'rmmod succeeded while a file was open'; exit 97; }}\n\
         exec 3<&-\n\
         MMUVISOR_FUZZ_SECS={fuzz_secs} {} {filter} --include-ignored --test-threads=1 --show-output; rc=$?\n\
         echo \"suite done rc=$rc\"\n\
         check && {{ echo 'kernel complained (dmesg above)'; exit 99; }}\n\
         timeout 120 rmmod mmuvisor || {{ echo 'rmmod failed or hung (120 s) after the tests; blocked tasks:'; echo w > /proc/sysrq-trigger; dmesg | tail -80; exit 96; }}\n\
         exit $rc\n",
        me.display()
    )
}

/// The suite passed, and ran: outside the lab the module tests are
/// ignored, so --include-ignored must have run them here.
fn assert_module_tests_ran(text: &str) {
    assert!(
        text.contains("test result: ok"),
        "module tests did not pass"
    );
    let passed: u32 = text
        .split("test result: ok. ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 20 && text.contains("; 0 ignored;"),
        "module tests did not run ({passed} passed)"
    );
}

fn kmod_suite(lab_args: &[&str], filter: &str, fuzz_secs: u32) -> String {
    let out = lab_run(lab_args, &["sh", "-c", &suite_script(filter, fuzz_secs)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("# SKIP no /dev/mmuvisor"),
        "module tests skipped in the lab"
    );
    // Every lab kernel has DEVICE_PRIVATE: a test that skipped for its
    // lack would pass without testing anything.
    assert!(
        !text.contains("# SKIP kernel without DEVICE_PRIVATE"),
        "module tests skipped for DEVICE_PRIVATE on a lab kernel"
    );
    assert_module_tests_ran(&text);
    assert_eq!(
        out.status.code(),
        Some(0),
        "module tests failed, the kernel complained (99) or rmmod misbehaved (96, 97)"
    );
    text
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_the_debug_kernel() {
    if lab_enabled() {
        // One lab CPU: with two, the lab hung after the suite once in two
        // CI runs (see the issue note); 7.2 keeps two CPUs.
        let text = kmod_suite(&["--flavour", "debug"], "kmod_", 60);
        // The debug kernel has memory cgroups: the accounting test ran.
        assert!(
            text.contains("# memcg: ATTACH charged"),
            "the memcg test did not run"
        );
    }
}

/// The dmesg check of the module suites fails on a deliberately broken
/// module build: this copy of kmod/ sleeps (might_sleep()) under the device
/// lock, a spinlock, in DEVICE_ACCESS. The debug kernel (DEBUG_ATOMIC_SLEEP)
/// reports it, and the suite must end with "kernel complained" (99).
#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_dmesg_check_fails_on_a_broken_module_build() {
    if !lab_enabled() {
        return;
    }
    let dir = kmod_variant("");
    let file = dir.join("mmv_device.c");
    let src = std::fs::read_to_string(&file).expect("mmv_device.c");
    let anchor = "\tidx = mmv_index(ctx, a->addr);\n\tmmv_dev_lock(ctx);\n";
    assert!(
        src.contains(anchor),
        "DEVICE_ACCESS no longer takes the device lock this way"
    );
    let broken = src.replace(
        anchor,
        &format!("{anchor}\tmight_sleep(); /* broken on purpose */\n"),
    );
    std::fs::write(&file, broken).expect("write mmv_device.c");
    let script = suite_script("kmod_basic", 0);
    let out = lab_run_kmod(Some(&dir), &["--flavour", "debug"], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("suite done rc="),
        "the suite did not run: {text}"
    );
    assert!(
        text.contains("BUG: sleeping function called from invalid context"),
        "the debug kernel did not report the sleep under the spinlock"
    );
    assert!(
        text.contains("kernel complained (dmesg above)"),
        "the dmesg check missed it"
    );
    assert_eq!(out.status.code(), Some(99));
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_7_2() {
    if lab_enabled() {
        kmod_suite(&["--cpus", "2"], "kmod_", 5);
    }
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_kmod_tests_on_6_12() {
    if lab_enabled() {
        kmod_suite(&["--version", "6.12"], "kmod_", 5);
    }
}

/// A copy of kmod/ whose Kbuild builds the MMUVISOR_API=`api` path, for
/// `lab run` through MMUVISOR_KMOD_DIR.
pub fn kmod_variant(api: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("kmod");
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kmod-{api}"));
    let _ = std::fs::remove_dir_all(&dst);
    copy_tree(&src, &dst);
    let kbuild = dst.join("Kbuild");
    let text = std::fs::read_to_string(&kbuild).expect("Kbuild");
    std::fs::write(&kbuild, format!("MMUVISOR_API := {api}\n{text}")).expect("write Kbuild");
    dst
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

fn variant_suite(api: &str) {
    let dir = kmod_variant(api);
    let script = format!(
        "dmesg | grep -q 'mmuvisor: /dev/mmuvisor ready.*{}' || {{ echo 'not the {api} build'; exit 94; }}\n{}",
        if api == "range" {
            "make_device_exclusive_range"
        } else {
            "no device-exclusive support"
        },
        suite_script("kmod_", 5)
    );
    let out = lab_run_kmod(Some(&dir), &[], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_module_tests_ran(&text);
    assert_eq!(out.status.code(), Some(0), "{api} build failed in the lab");
}

/// The pre-6.15 path over its test shim, on 7.2.
#[test]
fn lab_kmod_tests_range_api_build() {
    if lab_enabled() {
        variant_suite("range");
    }
}

/// The path of a kernel without DEVICE_PRIVATE, on 7.2.
#[test]
fn lab_kmod_tests_none_api_build() {
    if lab_enabled() {
        variant_suite("none");
    }
}
