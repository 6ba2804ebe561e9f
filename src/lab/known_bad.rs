//! The kill matrix: every known-bad fixture kernel
//! (resources/kernels/patches/known-bad/*.patch) against every drill, next
//! to the unpatched kernel. A fixture is caught when each check its header
//! names (`Drill-Check: NAME`) fails in at least one drill; the unpatched
//! kernel must pass every drill. Anything else fails the matrix.

use super::{kernel, session, LabError};
use crate::drill::report::ktap::{self, Parsed, ParsedResult};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One known-bad kernel patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    pub path: PathBuf,
    /// File name without `.patch`.
    pub name: String,
    /// Checks a drill must fail on this kernel (`Drill-Check:` lines).
    pub checks: Vec<String>,
}

impl Fixture {
    /// Reads a fixture's header; a fixture that names no check is an error.
    pub fn read(path: &Path) -> Result<Self, LabError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| LabError::io("cannot read", path, e))?;
        let checks: Vec<String> = text
            .lines()
            .take_while(|l| *l != "---")
            .filter_map(|l| l.strip_prefix("Drill-Check:"))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if checks.is_empty() {
            return Err(LabError::Invalid(format!(
                "{}: no 'Drill-Check: NAME' line in its header",
                path.display()
            )));
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Fixture {
            path: path.to_path_buf(),
            name,
            checks,
        })
    }

    /// Short column label: the patch number.
    pub fn label(&self) -> &str {
        self.name.split('-').next().unwrap_or(&self.name)
    }
}

/// The project's fixtures (embedded in the binary, written out into the
/// cache), in name order.
pub fn fixtures(cache: &Path) -> Result<Vec<Fixture>, LabError> {
    let dir = super::embedded::write_out(cache, "known-bad", super::embedded::KNOWN_BAD, 0o644)?;
    let rd = std::fs::read_dir(&dir).map_err(|e| LabError::io("cannot read", &dir, e))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Fixture::read(p)).collect()
}

/// One kernel's results: the drills' verdicts, or why there are none.
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    pub fixture: Option<Fixture>,
    pub results: Result<Vec<Parsed>, String>,
}

impl Column {
    /// For a fixture: the drills that failed each of its checks. For the
    /// unpatched kernel: empty. Err: why this column fails the matrix.
    fn verdict(&self) -> Result<String, String> {
        let rs = self.results.as_ref().map_err(|e| e.clone())?;
        if rs.is_empty() {
            return Err("no drill results".into());
        }
        let Some(f) = &self.fixture else {
            let bad: Vec<String> = rs
                .iter()
                .filter(|r| r.result != ParsedResult::Ok)
                .map(Parsed::summary)
                .collect();
            return if bad.is_empty() {
                Ok(format!("all {} drills ok", rs.len()))
            } else {
                Err(format!("unpatched kernel: {}", bad.join(", ")))
            };
        };
        let mut seen = Vec::new();
        for c in &f.checks {
            let by: Vec<&str> = rs
                .iter()
                .filter(|r| r.result == ParsedResult::NotOk && r.failed_checks.contains(c))
                .map(|r| r.name.as_str())
                .collect();
            if by.is_empty() {
                return Err(format!("no drill failed check {c}"));
            }
            seen.push(format!("{c} in {}", by.join(", ")));
        }
        Ok(format!("caught: {}", seen.join("; ")))
    }
}

/// Renders the matrix (drills x kernels), the per-kernel verdicts and the
/// summary line; returns the text and whether the matrix passed.
pub fn render(cols: &[Column]) -> (String, bool) {
    let grid: Vec<(&str, Option<&[Parsed]>)> = cols
        .iter()
        .map(|c| (c.label.as_str(), c.results.as_deref().ok()))
        .collect();
    let mut s = super::matrix::table(&grid, &[]);
    let cw = cols.iter().map(|c| c.label.len()).max().unwrap_or(6).max(6);
    s.push('\n');
    let mut failed = 0;
    let mut caught = 0;
    for c in cols {
        let name = c
            .fixture
            .as_ref()
            .map_or("unpatched kernel", |f| f.name.as_str());
        match c.verdict() {
            Ok(v) => {
                caught += c.fixture.is_some() as usize;
                let _ = writeln!(s, "{:cw$}  {name}: {v}", c.label);
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(s, "{:cw$}  {name}: FAILED: {e}", c.label);
            }
        }
    }
    let fixtures = cols.iter().filter(|c| c.fixture.is_some()).count();
    let unpatched_ok = cols
        .iter()
        .filter(|c| c.fixture.is_none())
        .all(|c| c.verdict().is_ok());
    let _ = writeln!(
        s,
        "known-bad: {caught}/{fixtures} fixtures caught, unpatched kernel {}",
        if unpatched_ok { "all ok" } else { "NOT all ok" }
    );
    (s, failed == 0)
}

/// What `mmuvisor lab known-bad` was asked for.
pub struct MatrixRun {
    pub cache: Option<PathBuf>,
    pub version: String,
    /// Only fixtures whose name contains one of these (all when empty).
    pub only: Vec<String>,
    /// Kernel flavour of every column ("default", "debug").
    pub flavour: String,
    pub mem_mib: u64,
    pub cpus: u32,
    /// Extra arguments for `mmuvisor drill` (default: all).
    pub drills: Vec<String>,
}

/// Runs the drills on the unpatched kernel and on every fixture kernel.
pub fn run(req: &MatrixRun) -> Result<(String, bool), LabError> {
    let cache = super::cache::cache_dir(req.cache.as_ref())?;
    let mut fx = fixtures(&cache)?;
    if !req.only.is_empty() {
        fx.retain(|f| req.only.iter().any(|o| f.name.contains(o.as_str())));
        if fx.is_empty() {
            return Err(LabError::Invalid(format!(
                "no known-bad fixture matches {:?}",
                req.only
            )));
        }
    }
    let mut cols = vec![run_column(req, None)?];
    for f in fx {
        eprintln!("[known-bad] {}", f.name);
        cols.push(run_column(req, Some(f))?);
    }
    Ok(render(&cols))
}

/// Per drill, in the kill matrix: exclusive-race, the longest, takes 15 s.
const DRILL_TIMEOUT_S: u64 = 45;

fn run_column(req: &MatrixRun, fixture: Option<Fixture>) -> Result<Column, LabError> {
    // Removed on drop.
    let tmp = super::temp_dir("known-bad")?;
    let out = tmp.as_path().to_path_buf();
    let drills = if req.drills.is_empty() {
        "all".to_string()
    } else {
        req.drills.join(" ")
    };
    let run = session::LabRun {
        cache: req.cache.clone(),
        kernel: kernel::KernelSpec {
            version: req.version.clone(),
            flavour: req.flavour.clone(),
            patches: fixture.iter().map(|f| f.path.clone()).collect(),
            tree: None,
            stock: None,
        },
        mem_mib: req.mem_mib,
        cpus: req.cpus,
        // A broken kernel may hang a drill (fixture 0006 can leave the
        // guest of any drill waiting for ever): each drill gets
        // DRILL_TIMEOUT_S, a hang is its `not ok # TIMEOUT`, the rest run.
        timeout: Duration::from_secs(20 * DRILL_TIMEOUT_S + 300),
        command: vec![
            "sh".into(),
            "-c".into(),
            format!("mmuvisor drill {drills} --timeout {DRILL_TIMEOUT_S} --format ktap > /lab/out/drills.ktap"),
        ],
        no_kmod: false,
        keep_out: Some(out.clone()),
        console_to_stderr: true,
    };
    let results = match session::run(&run) {
        Ok(_) => std::fs::read_to_string(out.join("drills.ktap"))
            .map(|t| ktap::parse(&t))
            .map_err(|e| format!("no KTAP from the lab: {e}")),
        Err(LabError::Interrupted) => return Err(LabError::Interrupted),
        Err(e) => Err(format!("lab: {e}")),
    };
    Ok(Column {
        label: fixture
            .as_ref()
            .map_or("unpatched", |f| f.label())
            .to_string(),
        fixture,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str, result: ParsedResult, checks: &[&str]) -> Parsed {
        Parsed {
            name: name.into(),
            result,
            failed_checks: checks.iter().map(|c| c.to_string()).collect(),
            reason: String::new(),
        }
    }

    fn fixture(checks: &[&str]) -> Fixture {
        Fixture {
            path: "0002-x.patch".into(),
            name: "0002-x".into(),
            checks: checks.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn every_fixture_header_names_a_check() {
        let cache = std::env::temp_dir().join(format!("mmuvisor-kb-{}", std::process::id()));
        let fx = fixtures(&cache).expect("fixtures");
        let _ = std::fs::remove_dir_all(&cache);
        assert!(fx.len() >= 5, "{fx:?}");
        assert!(fx.iter().all(|f| !f.checks.is_empty()));
    }

    #[test]
    fn matrix_passes_only_when_each_fixture_is_caught_by_its_check() {
        let unpatched = Column {
            label: "unpatched".into(),
            fixture: None,
            results: Ok(vec![
                parsed("a", ParsedResult::Ok, &[]),
                parsed("b", ParsedResult::Ok, &[]),
            ]),
        };
        let caught = Column {
            label: "0002".into(),
            fixture: Some(fixture(&["kvm-spte-zapped"])),
            results: Ok(vec![
                parsed("a", ParsedResult::NotOk, &["kvm-spte-zapped"]),
                parsed("b", ParsedResult::Ok, &[]),
            ]),
        };
        let (text, ok) = render(&[unpatched.clone(), caught.clone()]);
        assert!(ok, "{text}");
        assert!(
            text.contains("known-bad: 1/1 fixtures caught, unpatched kernel all ok"),
            "{text}"
        );
        // Failing for another reason is not catching the fixture's class.
        let wrong = Column {
            results: Ok(vec![parsed("a", ParsedResult::NotOk, &["nothing-lost"])]),
            ..caught.clone()
        };
        let (text, ok) = render(&[unpatched.clone(), wrong]);
        assert!(
            !ok && text.contains("no drill failed check kvm-spte-zapped"),
            "{text}"
        );
        // An error is not a catch either, nor a lab that gave nothing.
        let error = Column {
            results: Ok(vec![parsed("a", ParsedResult::Error, &["kvm-spte-zapped"])]),
            ..caught.clone()
        };
        assert!(!render(&[unpatched.clone(), error]).1);
        let none = Column {
            results: Err("lab: timed out".into()),
            ..caught.clone()
        };
        assert!(!render(&[unpatched.clone(), none]).1);
        // An unpatched kernel with a skip or a failure fails the matrix.
        let unpatched_skip = Column {
            results: Ok(vec![parsed("a", ParsedResult::Skip, &[])]),
            ..unpatched
        };
        let (text, ok) = render(&[unpatched_skip, caught]);
        assert!(!ok && text.contains("unpatched kernel: a skip"), "{text}");
    }
}
