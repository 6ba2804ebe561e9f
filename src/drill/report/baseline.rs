//! `mmuvisor drill --baseline FILE`: this run against a saved one (its
//! `--format json` report, or its KTAP), the way LKFT reports kernels:
//! what went from ok to not ok (regressions), back (fixes), and other
//! changes. The exit status follows regressions only.
//!
//! Rules. "ok" is KTAP's: pass, and skip. Per drill, baseline -> now:
//! - pass -> fail, pass -> error: regression (an error is a failure: the
//!   drill could not judge the kernel);
//! - pass -> skip: regression too: the setup the baseline ran on could test
//!   this, this run tests nothing there, and a skip must not hide a failure;
//! - skip -> fail, skip -> error: regression (ok -> not ok);
//! - fail/error -> pass: fix;
//! - skip -> pass, fail/error -> skip, fail <-> error: listed, neither;
//! - a drill that failed in both runs: each check that fails now and did
//!   not in the baseline is a regression, each one mended a fix;
//! - drills only in this run (new) or only in the baseline (not run now)
//!   are listed, neither.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::drill::report::json_value::{self, Value};
use crate::drill::report::ktap::{self, ParsedResult, Report};
use crate::drill::verdict::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("--baseline {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--baseline {path}: not a drill report ({why})")]
    Format { path: PathBuf, why: String },
}

/// A drill's result, from either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Error,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Fail => "not ok",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
    /// KTAP's ok: pass or skip.
    fn ok(self) -> bool {
        matches!(self, Status::Pass | Status::Skip)
    }
}

/// One drill of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillRun {
    pub name: String,
    pub status: Status,
    /// Checks that failed, with what was violated (one per name).
    pub failed_checks: BTreeMap<String, String>,
    /// Skip or error reason.
    pub reason: String,
}

/// The drills of this run, as the comparison sees them.
pub fn from_reports(reports: &[Report]) -> Vec<DrillRun> {
    reports
        .iter()
        .map(|r| {
            let (status, reason, failed) = match &r.outcome {
                Outcome::Judged(v) => {
                    let mut failed = BTreeMap::new();
                    for c in v.failures() {
                        failed.entry(c.name.clone()).or_insert(c.detail.clone());
                    }
                    let s = if v.passed() {
                        Status::Pass
                    } else {
                        Status::Fail
                    };
                    (s, String::new(), failed)
                }
                Outcome::Skip(why) => (Status::Skip, why.clone(), BTreeMap::new()),
                Outcome::Error(e) => (Status::Error, e.clone(), BTreeMap::new()),
                Outcome::Timeout(secs) => (
                    Status::Error,
                    format!("no verdict within the {secs} s --timeout"),
                    BTreeMap::new(),
                ),
            };
            DrillRun {
                name: r.name.clone(),
                status,
                failed_checks: failed,
                reason,
            }
        })
        .collect()
}

/// Reads a saved run: `mmuvisor drill --format json` output (the usual
/// baseline) or its KTAP (detected by the "KTAP version" line).
pub fn load(path: &Path) -> Result<Vec<DrillRun>, BaselineError> {
    let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |why: String| BaselineError::Format {
        path: path.to_path_buf(),
        why,
    };
    if text.contains("KTAP version 1") {
        let runs = from_ktap(&text);
        if runs.is_empty() {
            return Err(format("KTAP without results".into()));
        }
        return Ok(runs);
    }
    from_json(&text).map_err(format)
}

fn from_ktap(text: &str) -> Vec<DrillRun> {
    ktap::parse(text)
        .into_iter()
        .map(|p| DrillRun {
            name: p.name,
            status: match p.result {
                ParsedResult::Ok | ParsedResult::XPass => Status::Pass,
                ParsedResult::NotOk | ParsedResult::XFail => Status::Fail,
                ParsedResult::Skip => Status::Skip,
                ParsedResult::Error | ParsedResult::Crash => Status::Error,
            },
            failed_checks: p
                .failed_checks
                .into_iter()
                .map(|c| (c, String::new()))
                .collect(),
            reason: String::new(),
        })
        .collect()
}

/// Parses the JSON report `json::render` writes.
pub fn from_json(text: &str) -> Result<Vec<DrillRun>, String> {
    let doc = json_value::parse(text)?;
    let drills = doc
        .get("drills")
        .and_then(Value::as_array)
        .ok_or("no \"drills\" array")?;
    let mut out = Vec::new();
    for (i, d) in drills.iter().enumerate() {
        let name = d
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("drill {i} has no name"))?;
        let result = d.get("result").and_then(Value::as_str);
        let status = match result {
            Some("pass") => Status::Pass,
            Some("fail") => Status::Fail,
            Some("skip") => Status::Skip,
            Some("error" | "timeout") => Status::Error,
            other => return Err(format!("drill {name}: result {other:?}")),
        };
        let mut failed_checks = BTreeMap::new();
        for c in d.get("checks").and_then(Value::as_array).unwrap_or(&[]) {
            let (Some(cn), Some(passed)) = (
                c.get("name").and_then(Value::as_str),
                c.get("passed").and_then(Value::as_bool),
            ) else {
                return Err(format!("drill {name}: a check without name or passed"));
            };
            if !passed {
                let detail = c.get("detail").and_then(Value::as_str).unwrap_or("");
                failed_checks
                    .entry(cn.to_string())
                    .or_insert(detail.to_string());
            }
        }
        let reason = d.get("reason").and_then(Value::as_str).unwrap_or("");
        out.push(DrillRun {
            name: name.to_string(),
            status,
            failed_checks,
            reason: reason.to_string(),
        });
    }
    Ok(out)
}

/// What a difference counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regression,
    Fix,
    /// Listed, counts as neither.
    Other,
}

/// One listed difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: Kind,
    pub drill: String,
    /// A check's change inside a drill that failed in both runs.
    pub check: Option<String>,
    /// "ok -> not ok", "ok -> skip", ...
    pub what: String,
    /// Why: failed checks, the skip or error reason.
    pub detail: Vec<String>,
}

/// The comparison of this run with a baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub changes: Vec<Change>,
    /// Drills in both runs with the same result (and the same failing checks).
    pub unchanged: usize,
    /// Drills of this run that are not in the baseline, with their result.
    pub new: Vec<(String, Status)>,
    /// Drills of the baseline this run did not run.
    pub not_run: Vec<String>,
}

fn why(d: &DrillRun) -> Vec<String> {
    match d.status {
        Status::Skip | Status::Error => vec![d.reason.clone()],
        _ => d
            .failed_checks
            .iter()
            .map(|(c, detail)| {
                if detail.is_empty() {
                    c.clone()
                } else {
                    format!("{c}: {detail}")
                }
            })
            .collect(),
    }
}

/// Compares `now` with `base` by drill name.
pub fn compare(base: &[DrillRun], now: &[DrillRun]) -> Comparison {
    let mut c = Comparison::default();
    for n in now {
        let Some(b) = base.iter().find(|b| b.name == n.name) else {
            c.new.push((n.name.clone(), n.status));
            continue;
        };
        let what = format!("{} -> {}", b.status.word(), n.status.word());
        let kind = match (b.status, n.status) {
            (x, y) if x == y => None,
            (Status::Pass, _) => Some(Kind::Regression),
            (Status::Skip, y) if !y.ok() => Some(Kind::Regression),
            (x, Status::Pass) if !x.ok() => Some(Kind::Fix),
            _ => Some(Kind::Other),
        };
        if let Some(kind) = kind {
            let mut detail = why(n);
            if kind == Kind::Fix {
                detail = why(b).into_iter().map(|w| format!("was {w}")).collect();
            }
            if (b.status, n.status) == (Status::Pass, Status::Skip) {
                detail.push("a skip where the baseline ran: this run tests nothing here".into());
            }
            c.changes.push(Change {
                kind,
                drill: n.name.clone(),
                check: None,
                what,
                detail,
            });
            continue;
        }
        // Same result; for a drill that fails in both, compare its checks.
        let mut changed = false;
        if n.status == Status::Fail {
            for (check, detail) in &n.failed_checks {
                if !b.failed_checks.contains_key(check) {
                    changed = true;
                    c.changes.push(Change {
                        kind: Kind::Regression,
                        drill: n.name.clone(),
                        check: Some(check.clone()),
                        what: "ok -> not ok".into(),
                        detail: vec![detail.clone()],
                    });
                }
            }
            for check in b.failed_checks.keys() {
                if !n.failed_checks.contains_key(check) {
                    changed = true;
                    c.changes.push(Change {
                        kind: Kind::Fix,
                        drill: n.name.clone(),
                        check: Some(check.clone()),
                        what: "not ok -> ok".into(),
                        detail: Vec::new(),
                    });
                }
            }
        }
        if !changed {
            c.unchanged += 1;
        }
    }
    c.not_run = base
        .iter()
        .filter(|b| !now.iter().any(|n| n.name == b.name))
        .map(|b| b.name.clone())
        .collect();
    c
}

impl Comparison {
    pub fn count(&self, kind: Kind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }
    /// 1 on any regression, else 0 (kselftest's pass/fail codes).
    pub fn exit_code(&self) -> i32 {
        if self.count(Kind::Regression) > 0 {
            ktap::KSFT_FAIL
        } else {
            ktap::KSFT_PASS
        }
    }

    /// The report, each line starting with `prefix` ("# " inside KTAP).
    pub fn render(&self, baseline: &str, prefix: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{prefix}baseline {baseline}: {} regressions, {} fixes, {} other changes, {} unchanged, {} new, {} not run now",
            self.count(Kind::Regression),
            self.count(Kind::Fix),
            self.count(Kind::Other),
            self.unchanged,
            self.new.len(),
            self.not_run.len()
        );
        for (kind, head) in [
            (Kind::Regression, "regressions (ok -> not ok):"),
            (Kind::Fix, "fixes (not ok -> ok):"),
            (Kind::Other, "other changes:"),
        ] {
            if self.count(kind) == 0 {
                continue;
            }
            let _ = writeln!(s, "{prefix}{head}");
            for c in self.changes.iter().filter(|c| c.kind == kind) {
                match &c.check {
                    Some(check) => {
                        let _ = writeln!(s, "{prefix}  {}: check {check}: {}", c.drill, c.what);
                    }
                    None => {
                        let _ = writeln!(s, "{prefix}  {}: {}", c.drill, c.what);
                    }
                }
                for d in c.detail.iter().filter(|d| !d.is_empty()) {
                    let _ = writeln!(s, "{prefix}      {}", d.replace(['\n', '\r'], " "));
                }
            }
        }
        if !self.new.is_empty() {
            let new: Vec<String> = self
                .new
                .iter()
                .map(|(n, st)| format!("{n} ({})", st.word()))
                .collect();
            let _ = writeln!(s, "{prefix}new (not in the baseline): {}", new.join(", "));
        }
        if !self.not_run.is_empty() {
            let _ = writeln!(
                s,
                "{prefix}not run now (in the baseline): {}",
                self.not_run.join(", ")
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::json;
    use crate::drill::verdict::Verdict;

    fn run(name: &str, status: Status, failed: &[&str]) -> DrillRun {
        DrillRun {
            name: name.into(),
            status,
            failed_checks: failed
                .iter()
                .map(|c| (c.to_string(), format!("{c} broke")))
                .collect(),
            reason: if matches!(status, Status::Skip | Status::Error) {
                "no /dev/mmuvisor".into()
            } else {
                String::new()
            },
        }
    }

    fn kind_of(c: &Comparison, drill: &str) -> Option<Kind> {
        c.changes.iter().find(|x| x.drill == drill).map(|x| x.kind)
    }

    #[test]
    fn every_transition_counts_as_documented() {
        use Status::*;
        let table = [
            (Pass, Pass, None),
            (Pass, Fail, Some(Kind::Regression)),
            (Pass, Error, Some(Kind::Regression)),
            (Pass, Skip, Some(Kind::Regression)),
            (Skip, Fail, Some(Kind::Regression)),
            (Skip, Error, Some(Kind::Regression)),
            (Skip, Pass, Some(Kind::Other)),
            (Skip, Skip, None),
            (Fail, Pass, Some(Kind::Fix)),
            (Error, Pass, Some(Kind::Fix)),
            (Fail, Skip, Some(Kind::Other)),
            (Error, Skip, Some(Kind::Other)),
            (Fail, Error, Some(Kind::Other)),
            (Error, Fail, Some(Kind::Other)),
            (Error, Error, None),
        ];
        for (b, n, want) in table {
            let c = compare(&[run("d", b, &[])], &[run("d", n, &[])]);
            assert_eq!(kind_of(&c, "d"), want, "{b:?} -> {n:?}");
            assert_eq!(c.unchanged, want.is_none() as usize);
            let code = if want == Some(Kind::Regression) { 1 } else { 0 };
            assert_eq!(c.exit_code(), code, "{b:?} -> {n:?}");
        }
    }

    #[test]
    fn checks_of_a_drill_failing_in_both_runs() {
        let b = [run("race", Status::Fail, &["kvm-invalidated"])];
        let n = [run("race", Status::Fail, &["kvm-spte-zapped"])];
        let c = compare(&b, &n);
        assert_eq!(c.exit_code(), 1);
        assert_eq!(c.count(Kind::Regression), 1);
        assert_eq!(c.count(Kind::Fix), 1);
        assert_eq!(c.changes[0].check.as_deref(), Some("kvm-spte-zapped"));
        assert_eq!(c.changes[0].detail, ["kvm-spte-zapped broke"]);
        assert_eq!(c.changes[1].check.as_deref(), Some("kvm-invalidated"));
        // Same failing checks: unchanged, exit 0 though the drill fails.
        let c = compare(&b, &b);
        assert_eq!((c.unchanged, c.exit_code()), (1, 0));
    }

    #[test]
    fn new_and_not_run_drills_are_listed_not_counted() {
        let b = [run("a", Status::Pass, &[]), run("gone", Status::Pass, &[])];
        let n = [
            run("a", Status::Pass, &[]),
            run("fresh", Status::Fail, &["x"]),
        ];
        let c = compare(&b, &n);
        assert_eq!(c.new, [("fresh".to_string(), Status::Fail)]);
        assert_eq!(c.not_run, ["gone"]);
        assert_eq!(c.exit_code(), 0);
        let r = c.render("base.json", "# ");
        assert!(r.starts_with("# baseline base.json: 0 regressions, 0 fixes, 0 other changes, 1 unchanged, 1 new, 1 not run now\n"), "{r}");
        assert!(r.contains("# new (not in the baseline): fresh (not ok)\n"));
        assert!(r.contains("# not run now (in the baseline): gone\n"));
    }

    #[test]
    fn render_lists_regressions_with_why() {
        let b = [
            run("exclusive-basic", Status::Pass, &[]),
            run("exclusive-thp", Status::Pass, &[]),
            run("dontneed", Status::Fail, &["kvm-invalidated"]),
        ];
        let n = [
            run("exclusive-basic", Status::Fail, &["kvm-spte-zapped"]),
            run("exclusive-thp", Status::Skip, &[]),
            run("dontneed", Status::Pass, &[]),
        ];
        let r = compare(&b, &n).render("b.json", "");
        assert!(r.contains(
            "regressions (ok -> not ok):\n  exclusive-basic: ok -> not ok\n      kvm-spte-zapped: kvm-spte-zapped broke\n  exclusive-thp: ok -> skip\n      no /dev/mmuvisor\n      a skip where the baseline ran"
        ), "{r}");
        assert!(r.contains("fixes (not ok -> ok):\n  dontneed: not ok -> ok\n      was kvm-invalidated: kvm-invalidated broke\n"), "{r}");
    }

    fn reports() -> Vec<Report> {
        let mut bad = Verdict::default();
        bad.check(
            "kvm-invalidated",
            false,
            "KVM saw \"no\" invalidation\nof page",
        );
        bad.check("guest-sees-zero-page", false, "vCPU 0 read 1");
        bad.check("guest-sees-zero-page", false, "vCPU 1 read 1");
        bad.check("neighbours-intact", true, "");
        bad.figure("kvm_events", 3.0);
        let mut good = Verdict::default();
        good.check("neighbours-intact", true, "");
        let r = |name: &str, outcome| Report {
            name: name.into(),
            outcome,
            seconds: 0.5,
        };
        vec![
            r("a", Outcome::Judged(bad)),
            r("b", Outcome::Judged(good)),
            r("c", Outcome::Skip("no NUMA".into())),
            r("d", Outcome::Error("MAKE_EXCLUSIVE: EBUSY".into())),
        ]
    }

    #[test]
    fn reads_back_the_json_and_ktap_reports() {
        let rs = reports();
        let now = from_reports(&rs);
        assert_eq!(from_json(&json::render(&rs)).unwrap(), now);
        assert_eq!(now[0].failed_checks.len(), 2);
        assert_eq!(
            now[0].failed_checks["guest-sees-zero-page"],
            "vCPU 0 read 1"
        );
        assert_eq!(now[3].reason, "MAKE_EXCLUSIVE: EBUSY");
        // KTAP keeps results and failed check names (no details, reasons).
        let k = from_ktap(&ktap::render(&rs));
        let got: Vec<_> = k.iter().map(|d| (d.name.as_str(), d.status)).collect();
        assert_eq!(
            got,
            [
                ("a", Status::Fail),
                ("b", Status::Pass),
                ("c", Status::Skip),
                ("d", Status::Error)
            ]
        );
        let names: Vec<_> = k[0].failed_checks.keys().cloned().collect();
        assert_eq!(names, ["guest-sees-zero-page", "kvm-invalidated"]);
        // Compared with itself: nothing changed.
        let c = compare(&from_json(&json::render(&rs)).unwrap(), &now);
        assert_eq!((c.unchanged, c.changes.len(), c.exit_code()), (4, 0, 0));
    }

    #[test]
    fn bad_baselines_say_why() {
        for (text, why) in [
            ("{\"drills\":{}}", "no \"drills\" array"),
            ("[]", "no \"drills\" array"),
            (
                "{\"drills\":[{\"result\":\"pass\"}]}",
                "drill 0 has no name",
            ),
            (
                "{\"drills\":[{\"name\":\"a\",\"result\":\"meh\"}]}",
                "drill a: result Some(\"meh\")",
            ),
            (
                "{\"drills\":[{\"name\":\"a\",\"result\":\"fail\",\"checks\":[{\"name\":1}]}]}",
                "drill a: a check without name or passed",
            ),
            ("{\"drills\":[", "unexpected end at byte 11"),
        ] {
            assert_eq!(from_json(text).unwrap_err(), why, "{text}");
        }
        let dir = std::env::temp_dir().join(format!("mmuvisor-baseline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("b.json");
        std::fs::write(&p, "KTAP version 1\n1..0\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("b.json: not a drill report (KTAP without results)"),
            "{e}"
        );
        let e = load(&dir.join("missing.json")).unwrap_err().to_string();
        assert!(e.contains("missing.json: No such file"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
