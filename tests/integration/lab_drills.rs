//! The drills in the lab, end to end: on the stock lab kernel every drill
//! passes; on the known-bad kernel (make_device_exclusive() without its MMU
//! notifier call) every drill that depends on that notifier fails, saying
//! what was violated.

use crate::lab::{lab_enabled, lab_run};
use std::path::PathBuf;

fn known_bad_patch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("resources/kernels/patches/known-bad");
    let mut patches: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("no known-bad patches folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    assert_eq!(
        patches.len(),
        1,
        "expected one known-bad patch in {}",
        dir.display()
    );
    patches.remove(0)
}

/// (name, passed, skipped) for each top-level KTAP result line.
fn results(ktap: &str) -> Vec<(String, bool, bool)> {
    ktap.lines()
        .filter_map(|l| {
            let (ok, rest) = if let Some(r) = l.strip_prefix("not ok ") {
                (false, r)
            } else {
                (true, l.strip_prefix("ok ")?)
            };
            let mut words = rest.splitn(2, ' ');
            let _number = words.next()?;
            let tail = words.next()?.to_string();
            let (name, directive) = tail.split_once(" # ").unwrap_or((&tail, ""));
            Some((name.trim().to_string(), ok, directive.starts_with("SKIP")))
        })
        .collect()
}

#[test]
fn lab_drills_all_pass_on_the_stock_kernel() {
    if !lab_enabled() {
        return;
    }
    let out = lab_run(&[], &["mmuvisor", "drill", "all", "--format", "ktap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let res = results(&text);
    assert!(text.contains("KTAP version 1"), "no KTAP output");
    assert!(
        res.iter().any(|(n, _, _)| n == "exclusive-basic"),
        "exclusive-basic did not run"
    );
    for (name, ok, skipped) in &res {
        assert!(ok, "{name} failed on the stock lab kernel");
        assert!(
            !skipped || !name.starts_with("exclusive-basic"),
            "{name} was skipped in the lab"
        );
    }
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn lab_drills_fail_on_the_known_bad_kernel() {
    if !lab_enabled() {
        return;
    }
    let patch = known_bad_patch();
    let patch = patch.to_string_lossy();
    let out = lab_run(
        &["--patch", &patch],
        &["mmuvisor", "drill", "all", "--format", "ktap"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let res = results(&text);
    let exclusive: Vec<_> = res
        .iter()
        .filter(|(n, _, _)| n.starts_with("exclusive-"))
        .collect();
    assert!(!exclusive.is_empty(), "no exclusive drills ran");
    for (name, ok, skipped) in &exclusive {
        assert!(!skipped, "{name} was skipped on the known-bad kernel");
        assert!(!ok, "{name} passed on the known-bad kernel");
    }
    assert!(
        text.contains("while the device held the page"),
        "no diagnostic saying what was violated"
    );
    assert_eq!(out.status.code(), Some(1));
}
