//! The lab on Debian's own prebuilt kernels (`lab run --stock`): nothing
//! compiled but the helper module, against Debian's headers.

use crate::lab::{lab_enabled, lab_run};
use crate::lab_drills::results;
use std::process::Command;

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_debian_prebuilt_7_2_passes_every_drill() {
    if !lab_enabled() {
        return;
    }
    let out = lab_run(
        &["--stock", "--version", "7.2", "--cpus", "2"],
        &["mmuvisor", "drill", "all"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# kernel: 7.2.") && text.contains("(Debian linux-image-7.2."),
        "the KTAP does not name Debian's 7.2 kernel"
    );
    let res = results(&text);
    assert!(res.len() >= 21, "only {} drills ran", res.len());
    for (name, ok, skipped) in &res {
        assert!(*ok && !skipped, "{name} did not pass on Debian's 7.2");
    }
    assert_eq!(out.status.code(), Some(0));
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_debian_prebuilt_6_12_skips_what_needs_device_private_and_says_why() {
    if !lab_enabled() {
        return;
    }
    let out = lab_run(
        &["--stock", "--version", "6.12"],
        &["mmuvisor", "drill", "all"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# kernel: 6.12."),
        "the KTAP does not name 6.12"
    );
    let res = results(&text);
    assert!(
        res.iter().any(|(n, ok, s)| n == "dontneed" && *ok && !s),
        "dontneed did not pass on Debian's 6.12"
    );
    for (name, ok, skipped) in &res {
        assert!(ok, "{name} failed on Debian's 6.12");
        if name.starts_with("exclusive-basic") {
            assert!(*skipped, "{name} ran without make_device_exclusive()");
        }
    }
    assert!(
        text.contains("# SKIP") && text.contains("CONFIG_DEVICE_PRIVATE"),
        "the skips do not name CONFIG_DEVICE_PRIVATE"
    );
}

fn lab_error(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "run"])
        .args(args)
        .args(["--", "true"])
        .output()
        .expect("cannot start mmuvisor");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let own: Vec<&str> = err.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(own.len(), 1, "not one line: {err}");
    (out.status.code(), own[0].to_string())
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_stock_rejects_what_it_cannot_run_with_one_line() {
    if !lab_enabled() {
        return;
    }
    let (code, line) = lab_error(&["--stock", "--version", "5.10"]);
    assert_ne!(code, Some(0));
    assert!(
        line.contains("no prebuilt") && line.contains("7.2 (sid)"),
        "{line}"
    );
    let (code, line) = lab_error(&["--stock", "--flavour", "debug"]);
    assert_ne!(code, Some(0));
    assert!(line.contains("does not combine with --stock"), "{line}");
    // clap's own refusal: its first line says why, then usage.
    let out = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "run", "--stock", "--patch", "x.patch", "--", "true"])
        .output()
        .expect("cannot start mmuvisor");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("'--stock' cannot be used with '--patch"),
        "{err}"
    );
}
