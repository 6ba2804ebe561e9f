//! The drills in the lab, end to end: on the built (unpatched) lab kernel every drill
//! passes; on every known-bad fixture kernel the drills fail the check that
//! names the fixture's bug class (`mmuvisor lab known-bad`).

use crate::lab::{lab_enabled, lab_run, lab_run_kmod};
use std::path::PathBuf;

/// (name, passed, skipped) for each top-level KTAP result line.
pub fn results(ktap: &str) -> Vec<(String, bool, bool)> {
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
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_drills_all_pass_on_the_unpatched_kernel() {
    if !lab_enabled() {
        return;
    }
    // No --format: the host's stdout is a pipe here, so the drills in the
    // lab must print KTAP although their own stdout is the lab's console.
    let out = lab_run(&["--cpus", "2"], &["mmuvisor", "drill", "all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let res = results(&text);
    assert!(
        text.contains("KTAP version 1"),
        "no KTAP output (the lab printed the human format?)"
    );
    assert!(
        res.iter().any(|(n, _, _)| n == "exclusive-basic"),
        "exclusive-basic did not run"
    );
    for (name, ok, skipped) in &res {
        assert!(ok, "{name} failed on the unpatched lab kernel");
        assert!(
            !skipped || !name.starts_with("exclusive-basic"),
            "{name} was skipped in the lab"
        );
    }
    assert_eq!(out.status.code(), Some(0));
}

/// The kill matrix: every known-bad fixture kernel is caught by the
/// checks its header names, and the unpatched kernel passes every drill.
#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_known_bad_matrix_catches_every_fixture() {
    if !lab_enabled() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "known-bad"])
        .output()
        .expect("cannot start mmuvisor");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let fixtures = std::fs::read_dir(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("resources/kernels/patches/known-bad"),
    )
    .expect("no known-bad folder")
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "patch"))
    })
    .count();
    assert!(fixtures >= 5, "only {fixtures} known-bad fixtures");
    assert!(
        text.contains(&format!(
            "known-bad: {fixtures}/{fixtures} fixtures caught, unpatched kernel all ok"
        )),
        "the kill matrix did not catch every fixture"
    );
    assert!(!text.contains("FAILED"), "a matrix column failed");
    assert_eq!(out.status.code(), Some(0));
}

/// The kill matrix on the debug kernel (DEBUG_VM, lockdep, KASAN) for the
/// fixtures that only the kernel's own verdict catches: the unpatched debug
/// kernel passes every drill with its assertions on, and 0011 (a log-only
/// RSS-counter bug) and 0012 (a leaked folio reference) are still caught.
#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_known_bad_matrix_on_the_debug_kernel() {
    if !lab_enabled() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "known-bad", "--flavour", "debug"])
        .args(["--fixture", "0011", "--fixture", "0012"])
        .output()
        .expect("cannot start mmuvisor");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("known-bad: 2/2 fixtures caught, unpatched kernel all ok"),
        "the debug kill matrix did not catch 0011 and 0012, or the unpatched debug kernel failed a drill"
    );
    assert_eq!(out.status.code(), Some(0));
}

/// The known-bad module for the pre-6.15 path (kmod/tests/without-fixes.patch:
/// a tail page of a large folio retried until the timeout, and only the head
/// page recorded where the kernel converted the whole folio) on Debian's
/// 6.12: exclusive-thp fails the checks written for those bugs.
#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_exclusive_thp_catches_the_unfixed_range_module_on_6_12() {
    if !lab_enabled() {
        return;
    }
    let kmod = crate::lab_kmod::kmod_variant("");
    let patched = std::process::Command::new("patch")
        .args(["-s", "-p2", "-i"])
        .arg(kmod.join("tests/without-fixes.patch"))
        .current_dir(&kmod)
        .status()
        .expect("cannot run patch");
    assert!(
        patched.success(),
        "without-fixes.patch does not apply to kmod/"
    );
    let out = lab_run_kmod(
        Some(&kmod),
        &["--version", "6.12"],
        &["mmuvisor", "drill", "exclusive-thp", "--format", "ktap"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        results(&text),
        [("exclusive-thp".to_string(), false, false)],
        "{text}"
    );
    for check in [
        "device-holds-what-kernel-converted",
        "conversion-extent",
        "tail-page-refused-at-once",
    ] {
        assert!(
            text.contains(&format!("# exclusive-thp: {check}: ")),
            "{check} did not fail on the unfixed module"
        );
    }
    assert_eq!(out.status.code(), Some(1));
}

/// `drill fuzz` without being told the fixture: on 0013 (KVM keeps the
/// SPTEs of a deleted memslot) seed 1 fails, shrinks the sequence to a few
/// steps around a memslot deletion and writes a replay file into the
/// current folder; the replay fails the same check again on 0013 and passes
/// on the unpatched kernel, where a short random run is green too.
#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_fuzz_catches_a_fixture_blind_and_its_replay_fails_again() {
    if !lab_enabled() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("mmuvisor-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let patch = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("resources/kernels/patches/known-bad/0013-kvm-mmu-memslot-delete-keeps-sptes.patch");
    let lab = |patch: Option<&PathBuf>, cmd: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mmuvisor"));
        c.current_dir(&dir)
            .args(["lab", "run", "--cpus", "2", "--timeout", "600"]);
        if let Some(p) = patch {
            c.arg("--patch").arg(p);
        }
        let out = c
            .args(["--", "sh", "-c", cmd])
            .output()
            .expect("cannot start mmuvisor");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        println!("{text}");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = lab(Some(&patch), "mmuvisor drill fuzz --seed 1 --time 120");
    assert_eq!(code, Some(1), "fuzz did not fail on 0013");
    let check = text
        .lines()
        .find_map(|l| l.strip_prefix("# fuzz: "))
        .and_then(|l| l.split(':').next())
        .expect("no failed check named")
        .to_string();
    let replay = dir.join("fuzz-seed1.replay");
    let steps = std::fs::read_to_string(&replay).expect("no replay file in the current folder");
    assert!(steps.contains("memslot-delete"), "{steps}");
    assert!(
        steps.lines().filter(|l| !l.starts_with('#')).count() <= 8,
        "not shrunk: {steps}"
    );
    let (code, text) = lab(
        Some(&patch),
        "mmuvisor drill fuzz --replay fuzz-seed1.replay",
    );
    assert_eq!(code, Some(1), "the replay passed on 0013");
    assert!(
        text.contains(&format!("# fuzz: {check}: ")),
        "the replay did not fail {check} again"
    );
    let (code, _) = lab(
        None,
        "mmuvisor drill fuzz --replay fuzz-seed1.replay && mmuvisor drill fuzz --seed 3 --time 20",
    );
    assert_eq!(
        code,
        Some(0),
        "the replay or a short run failed on the unpatched kernel"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
