//! `mmuvisor drill --baseline FILE`: a real run's JSON report as the
//! baseline, and variants of it (the same report with results edited) to
//! make regressions, check-level regressions, fixes and skips happen. The
//! drills are the hidden selftest-* ones (simulated secondary MMU, no KVM
//! needed; their results never change), and exclusive-basic where this
//! host has no helper module (a skip).

use std::path::PathBuf;

use crate::run_util::mmuvisor_text as mmuvisor;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("mmuvisor-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write baseline");
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const STALE: &str = "selftest-stale-dontneed";
const SIM: &str = "selftest-sim-dontneed";

/// The JSON object of drill `name` inside a report.
fn drill_span(report: &str, name: &str) -> (usize, usize) {
    let start = report
        .find(&format!("{{\"name\":\"{name}\""))
        .unwrap_or_else(|| panic!("{name} not in {report}"));
    let len = report[start..]
        .find("\"notes\":[]}")
        .map(|e| e + "\"notes\":[]}".len())
        .unwrap_or_else(|| panic!("end of {name}"));
    (start, start + len)
}

/// `report` with drill `name` edited by `f`.
fn edit(report: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let (a, b) = drill_span(report, name);
    format!("{}{}{}", &report[..a], f(&report[a..b]), &report[b..])
}

fn base_report() -> String {
    let (rc, out, err) = mmuvisor(&["drill", "--format", "json", STALE, SIM]);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(out.contains("\"result\":\"fail\""), "{out}");
    out
}

#[test]
fn unchanged_failures_exit_0_regressions_exit_1() {
    let dir = Dir::new("baseline");
    let base = base_report();
    // The same run again: both drills still fail, nothing regressed.
    let same = dir.write("same.json", &base);
    let (rc, out, err) = mmuvisor(&["drill", "--format", "ktap", STALE, SIM, "--baseline", &same]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(
        out.contains("\nnot ok 1 selftest-stale-dontneed\n"),
        "{out}"
    );
    assert!(
        out.contains("# baseline ")
            && out.contains(": 0 regressions, 0 fixes, 0 other changes, 2 unchanged,"),
        "{out}"
    );
    // A baseline where the stale drill passed: a regression, with the
    // checks that fail now.
    let passed = edit(&base, STALE, |d| {
        d.replace("\"result\":\"fail\"", "\"result\":\"pass\"")
            .replace("\"passed\":false", "\"passed\":true")
    });
    let was_ok = dir.write("was-ok.json", &passed);
    let (rc, out, err) = mmuvisor(&[
        "drill",
        "--format",
        "human",
        STALE,
        SIM,
        "--baseline",
        &was_ok,
    ]);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        out.contains("regressions (ok -> not ok):\n  selftest-stale-dontneed: ok -> not ok\n"),
        "{out}"
    );
    assert!(
        out.contains("      kvm-invalidated: MADV_DONTNEED: KVM saw no invalidation"),
        "{out}"
    );
    assert!(
        out.contains("1 regressions, 0 fixes, 0 other changes, 1 unchanged"),
        "{out}"
    );
    // JSON on stdout stays pure JSON; the comparison goes to stderr.
    let (rc, out, err) = mmuvisor(&["drill", "--format", "json", STALE, "--baseline", &was_ok]);
    assert_eq!(rc, 1);
    assert!(
        out.starts_with("{\"kernel\":{\"release\":")
            && out.contains("},\"drills\":[")
            && out.trim_end().ends_with('}'),
        "{out}"
    );
    assert!(
        err.contains("selftest-stale-dontneed: ok -> not ok"),
        "{err}"
    );
    assert!(
        err.contains("not run now (in the baseline): selftest-sim-dontneed"),
        "{err}"
    );
}

#[test]
fn checks_regress_and_get_fixed_inside_failing_drills() {
    let dir = Dir::new("baseline-checks");
    let base = base_report();
    // Baseline: the stale drill failed kvm-invalidated only; the sim drill
    // failed guest-write-reaches-host too (it passes now).
    let b = edit(&base, STALE, |d| {
        d.replace("\"passed\":false", "\"passed\":true").replacen(
            "{\"name\":\"kvm-invalidated\",\"passed\":true",
            "{\"name\":\"kvm-invalidated\",\"passed\":false",
            1,
        )
    });
    let b = edit(&b, SIM, |d| {
        d.replace(
            "{\"name\":\"guest-write-reaches-host\",\"passed\":true",
            "{\"name\":\"guest-write-reaches-host\",\"passed\":false",
        )
    });
    let p = dir.write("checks.json", &b);
    let (rc, out, err) = mmuvisor(&["drill", "--format", "ktap", STALE, SIM, "--baseline", &p]);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(
        out.contains("#   selftest-stale-dontneed: check guest-sees-zero-page: ok -> not ok\n"),
        "{out}"
    );
    assert!(
        out.contains("selftest-stale-dontneed: check guest-write-reaches-host: ok -> not ok"),
        "{out}"
    );
    assert!(
        out.contains("# fixes (not ok -> ok):\n#   selftest-sim-dontneed: check guest-write-reaches-host: not ok -> ok\n"),
        "{out}"
    );
    assert!(!out.contains("check kvm-invalidated"), "{out}");
    // Only the fix left (the stale drill as it is now): exit 0.
    let b = edit(&b, STALE, |_| drill_span_text(&base, STALE));
    let p = dir.write("fix-only.json", &b);
    let (rc, out, err) = mmuvisor(&["drill", "--format", "ktap", STALE, SIM, "--baseline", &p]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains(": 0 regressions, 1 fixes,"), "{out}");
}

fn drill_span_text(report: &str, name: &str) -> String {
    let (a, b) = drill_span(report, name);
    report[a..b].to_string()
}

/// A drill that ran and passed in the baseline but skips now must be
/// listed and count as a regression.
#[test]
fn a_skip_where_the_baseline_ran_is_a_regression() {
    let (_, skipped, _) = mmuvisor(&["drill", "--format", "json", "exclusive-basic"]);
    if !skipped.contains("\"result\":\"skip\"") {
        eprintln!("SKIP: exclusive-basic runs on this host");
        return;
    }
    let dir = Dir::new("baseline-skip");
    let ran = skipped.replace(
        "\"result\":\"skip\",\"reason\":",
        "\"result\":\"pass\",\"checks\":[],\"figures\":{},\"notes\":[],\"was\":",
    );
    let p = dir.write("ran.json", &ran);
    let (rc, out, err) = mmuvisor(&[
        "drill",
        "--format",
        "ktap",
        "exclusive-basic",
        "--baseline",
        &p,
    ]);
    assert_eq!(rc, 1, "{out}{err}");
    assert!(out.contains("ok 1 exclusive-basic # SKIP"), "{out}");
    assert!(out.contains("#   exclusive-basic: ok -> skip\n"), "{out}");
    assert!(out.contains("a skip where the baseline ran"), "{out}");
    // Skip in both: unchanged, exit 0 (not 4: the status follows regressions).
    let p = dir.write("skipped.json", &skipped);
    let (rc, out, _) = mmuvisor(&[
        "drill",
        "--format",
        "ktap",
        "exclusive-basic",
        "--baseline",
        &p,
    ]);
    assert_eq!(rc, 0, "{out}");
}

#[test]
fn bad_baselines_are_one_line_exit_2() {
    let dir = Dir::new("baseline-bad");
    for (text, want) in [
        (
            "{\"drills\":[",
            "not a drill report (unexpected end at byte 11)",
        ),
        (
            "hello",
            "not a drill report (unexpected character at byte 0)",
        ),
        (
            "{\"drills\":[{\"name\":\"a\"}]}",
            "not a drill report (drill a: result None)",
        ),
    ] {
        let p = dir.write("bad.json", text);
        let (rc, out, err) = mmuvisor(&["drill", SIM, "--baseline", &p]);
        assert_eq!(rc, 2, "{text}: {out}{err}");
        assert!(
            out.is_empty(),
            "drills ran before the baseline was read: {out}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("mmuvisor: error: --baseline ") && err.contains(want),
            "{err}"
        );
    }
    let (rc, _, err) = mmuvisor(&["drill", SIM, "--baseline", "/nonexistent/b.json"]);
    assert_eq!(rc, 2);
    assert!(err.contains("/nonexistent/b.json: No such file"), "{err}");
}
