//! One command on several kernels: `mmuvisor lab run --version 6.1,6.12,7.2
//! -- CMD`. Each kernel gets its own lab; the command's KTAP (drill
//! results) is read back with the drills' own parser and shown as one table,
//! drills x kernels (the same table as the kill matrix), with the command's
//! exit status per kernel, and written as JSON. A kernel passes when its
//! lab ran, no drill is `not ok` or `error` and the command exited 0
//! (skips are allowed, as in kselftest).

use super::known_issues::{self, KnownIssue};
use super::{kernel, session, LabError};
use crate::drill::report::json::string;
use crate::drill::report::ktap::{self, Parsed, ParsedResult};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One kernel's results: the drills' verdicts and the command's exit
/// status, or why the lab did not run.
#[derive(Debug, Clone)]
pub struct KernelColumn {
    pub label: String,
    pub results: Result<(Vec<Parsed>, i32), String>,
    /// Where the lab did not finish (a kernel crash): the results it
    /// printed before, and the drill it died in as `crash`.
    pub partial: Vec<Parsed>,
    /// Kernel crashes in drills, each as (drill, "the lab kernel crashed in
    /// drill D: LINE"); the drill's result is `crash` (or `xfail`).
    pub crashes: Vec<(String, String)>,
    /// The kernel's `uname -r`, from the drills' KTAP.
    pub release: Option<String>,
    /// Known kernel bugs that turned a cell into `xfail` or `xpass`.
    pub known: Vec<(KnownIssue, ParsedResult)>,
}

impl KernelColumn {
    /// The drills' results: all of them, or those before a crash.
    pub fn drills(&self) -> &[Parsed] {
        self.results
            .as_ref()
            .map_or(&self.partial[..], |r| &r.0[..])
    }

    /// Why this kernel fails the matrix, if it does.
    pub fn failure(&self) -> Option<String> {
        let (rs, status) = match &self.results {
            Err(e) => return Some(e.clone()),
            Ok(r) => r,
        };
        let bad: Vec<String> = rs
            .iter()
            .filter_map(|r| match r.result {
                ParsedResult::Crash => Some(
                    self.crashes
                        .iter()
                        .find(|(d, _)| *d == r.name)
                        .map_or_else(|| r.summary(), |(_, why)| why.clone()),
                ),
                ParsedResult::NotOk | ParsedResult::Error => Some(r.summary()),
                _ => None,
            })
            .collect();
        match (bad.is_empty(), *status) {
            (true, 0) => None,
            (true, s) => Some(format!("exit status {s}")),
            (false, _) => Some(bad.join(", ")),
        }
    }
}

/// The drills x kernels grid: one row per drill (in first-seen order), one
/// column per kernel; `-` where a kernel has no result for a drill; then the
/// `extra` rows (a label and one cell per kernel).
pub fn table(cols: &[(&str, Option<&[Parsed]>)], extra: &[(&str, Vec<String>)]) -> String {
    let mut drills: Vec<&str> = Vec::new();
    for (_, rs) in cols {
        for r in rs.unwrap_or_default() {
            if !drills.contains(&r.name.as_str()) {
                drills.push(&r.name);
            }
        }
    }
    let w = drills
        .iter()
        .chain(extra.iter().map(|e| &e.0))
        .map(|d| d.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let cw = cols.iter().map(|c| c.0.len()).max().unwrap_or(6).max(6);
    let mut s = String::new();
    let end_row = |s: &mut String| {
        s.truncate(s.trim_end_matches(' ').len());
        s.push('\n');
    };
    let _ = write!(s, "{:w$}", "drill");
    for (label, _) in cols {
        let _ = write!(s, "  {label:cw$}");
    }
    end_row(&mut s);
    for d in &drills {
        let _ = write!(s, "{d:w$}");
        for (_, rs) in cols {
            let cell = rs
                .unwrap_or_default()
                .iter()
                .find(|r| r.name == *d)
                .map_or("-", |r| r.result.word());
            let _ = write!(s, "  {cell:cw$}");
        }
        end_row(&mut s);
    }
    for (label, cells) in extra {
        let _ = write!(s, "{label:w$}");
        for cell in cells {
            let _ = write!(s, "  {cell:cw$}");
        }
        end_row(&mut s);
    }
    s
}

/// The table, the exit status row, each failing kernel's reason and the
/// summary line; and whether every kernel passed.
pub fn render(cols: &[KernelColumn]) -> (String, bool) {
    let grid: Vec<(&str, Option<&[Parsed]>)> = cols
        .iter()
        .map(|c| (c.label.as_str(), Some(c.drills())))
        .collect();
    let status: Vec<String> = cols
        .iter()
        .map(|c| c.results.as_ref().map_or("-".into(), |r| r.1.to_string()))
        .collect();
    let mut s = table(&grid, &[("exit status", status)]);
    let cw = cols.iter().map(|c| c.label.len()).max().unwrap_or(6).max(6);
    s.push('\n');
    let failed: Vec<&KernelColumn> = cols.iter().filter(|c| c.failure().is_some()).collect();
    for c in &failed {
        let _ = writeln!(
            s,
            "{:cw$}  FAILED: {}",
            c.label,
            c.failure().unwrap_or_default()
        );
    }
    let mut known = [0, 0];
    for c in cols {
        for (k, result) in &c.known {
            let word = if *result == ParsedResult::XFail {
                known[0] += 1;
                "XFAIL"
            } else {
                known[1] += 1;
                "XPASS"
            };
            let _ = writeln!(
                s,
                "{:cw$}  {word}: {}: {} ({})",
                c.label, k.drill, k.reason, k.link
            );
        }
    }
    let _ = write!(
        s,
        "matrix: {} kernels, {} passed, {} failed",
        cols.len(),
        cols.len() - failed.len(),
        failed.len()
    );
    if known != [0, 0] {
        let _ = write!(
            s,
            " ({} known kernel bugs seen: xfail, {} expected but not seen: xpass)",
            known[0], known[1]
        );
    }
    s.push('\n');
    (s, failed.is_empty())
}

/// The matrix as JSON: per kernel its label, exit status (null when the
/// lab did not run), error, and each drill's result and failed checks.
pub fn json(cols: &[KernelColumn]) -> String {
    let mut s = String::from("{\n  \"kernels\": [");
    for (i, c) in cols.iter().enumerate() {
        let _ = write!(
            s,
            "{}\n    {{\"kernel\": {}, ",
            if i > 0 { "," } else { "" },
            string(&c.label)
        );
        match &c.results {
            Err(e) => {
                let _ = write!(s, "\"exit_status\": null, \"error\": {}, ", string(e));
            }
            Ok((_, status)) => {
                let _ = write!(s, "\"exit_status\": {status}, \"error\": null, ");
            }
        }
        let _ = write!(s, "\"passed\": {}, \"drills\": [", c.failure().is_none());
        let rs = c.drills();
        for (j, r) in rs.iter().enumerate() {
            let checks: Vec<String> = r.failed_checks.iter().map(|c| string(c)).collect();
            let known = c
                .known
                .iter()
                .find(|(k, _)| k.drill == r.name)
                .map_or_else(|| "null".to_string(), |(k, _)| string(&k.link));
            let _ = write!(
                s,
                "{}\n      {{\"name\": {}, \"result\": {}, \"failed_checks\": [{}], \"known_issue\": {}}}",
                if j > 0 { "," } else { "" },
                string(&r.name),
                string(r.result.word()),
                checks.join(", "),
                known
            );
        }
        s.push_str(if rs.is_empty() { "]}" } else { "\n    ]}" });
    }
    let ok = cols.iter().all(|c| c.failure().is_none());
    let _ = write!(s, "\n  ],\n  \"passed\": {ok}\n}}\n");
    s
}

/// Splits `6.1,6.12,7.2` into versions: each MAJOR.MINOR or `latest`, no
/// empty or repeated entry.
pub fn parse_versions(list: &str) -> Result<Vec<String>, LabError> {
    let mut out: Vec<String> = Vec::new();
    for v in list.split(',').map(str::trim) {
        let numeric = v.split_once('.').is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        });
        if !(numeric || v == "latest") {
            return Err(LabError::Invalid(format!(
                "--version '{v}' is not a kernel version (MAJOR.MINOR, e.g. 6.12, or latest; several: 6.1,6.12,7.2)"
            )));
        }
        if out.iter().any(|o| o == v) {
            return Err(LabError::Invalid(format!("--version lists {v} twice")));
        }
        out.push(v.to_string());
    }
    Ok(out)
}

/// What `lab run --version A,B,... -- CMD` was asked for.
pub struct MatrixRun {
    pub base: session::LabRun,
    pub versions: Vec<String>,
    /// Where the JSON goes.
    pub json: PathBuf,
}

/// Runs the command on each kernel in turn; a kernel that does not build
/// or boot is a failed column, not the end of the matrix.
pub fn run(req: &MatrixRun) -> Result<(String, bool), LabError> {
    let mut cols = Vec::new();
    let issues = known_issues::list();
    for v in &req.versions {
        eprintln!("[matrix] kernel {v}");
        let mut col = run_one(req, v)?;
        mark_known(&issues, &mut col);
        cols.push(col);
    }
    let (text, ok) = render(&cols);
    write_json(&req.json, &json(&cols))?;
    Ok((text, ok))
}

/// Applies the known-issues list to a column, by the kernel's release
/// (or, where the drills printed none, the version asked for).
pub fn mark_known(issues: &[KnownIssue], col: &mut KernelColumn) {
    let version = col
        .release
        .as_deref()
        .and_then(known_issues::major_minor)
        .or_else(|| known_issues::major_minor(&col.label));
    let Some(version) = version else {
        return;
    };
    let results = match &mut col.results {
        Ok((rs, _)) => &mut rs[..],
        Err(_) => &mut col.partial[..],
    };
    col.known = known_issues::apply(issues, version, results);
}

/// The kernel release a drill run's KTAP names (`# kernel: RELEASE ...`).
fn release_of(ktap: &str) -> Option<String> {
    ktap.lines()
        .find_map(|l| l.strip_prefix("# kernel: "))
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
}

fn write_json(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(|e| LabError::io("cannot write", path, e))?;
    eprintln!("[matrix] JSON: {}", path.display());
    Ok(())
}

/// Labs per kernel at most: after a kernel crash the command runs again
/// in a fresh lab, without the drills that ran or crashed (so a kernel that
/// dies in one drill still gets a result for the others).
const MAX_LABS: usize = 4;

fn run_one(req: &MatrixRun, version: &str) -> Result<KernelColumn, LabError> {
    let mut partial: Vec<Parsed> = Vec::new();
    // (drill, why); a crash outside any drill has no drill.
    let mut crashes: Vec<(Option<String>, String)> = Vec::new();
    let mut release = None;
    let column = |results, partial, crashes: &[(Option<String>, String)], release| {
        let in_drills = crashes
            .iter()
            .filter_map(|(d, why): &(Option<String>, String)| {
                d.as_ref().map(|d| (d.clone(), why.clone()))
            })
            .collect();
        KernelColumn {
            label: version.to_string(),
            results,
            partial,
            crashes: in_drills,
            release,
            known: Vec::new(),
        }
    };
    let whys = |crashes: &[(Option<String>, String)]| {
        crashes
            .iter()
            .map(|(_, w)| w.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    for _ in 0..MAX_LABS {
        let done: Vec<&str> = partial.iter().map(|p| p.name.as_str()).collect();
        let (once, named) = lab_once(req, version, &done.join(","))?;
        release = named.or(release);
        match once {
            LabOnce::Finished(results) => {
                // After crashes in drills the last lab ran the rest: the
                // column has every result, the crashed drills as `crash`.
                let results = results.map(|(rs, status)| (merge(&partial, rs), status));
                return Ok(column(results, partial, &crashes, release));
            }
            LabOnce::Crashed {
                printed,
                running,
                line,
            } => {
                let before = partial.len();
                partial = merge(&partial, printed);
                let Some(running) = running else {
                    crashes.push((None, format!("the lab kernel crashed: {line}")));
                    break;
                };
                crashes.push((
                    Some(running.clone()),
                    format!("the lab kernel crashed in drill {running}: {line}"),
                ));
                partial.push(Parsed {
                    name: running,
                    result: ParsedResult::Crash,
                    failed_checks: vec![line],
                    reason: String::new(),
                });
                if partial.len() == before {
                    break;
                }
                eprintln!("[matrix] kernel {version}: going on in a fresh lab without the drills that ran");
            }
        }
    }
    let why = whys(&crashes);
    Ok(column(Err(why), partial, &crashes, release))
}

/// `earlier` and then the results of a later lab, less the drills it only
/// skipped because they ran in an earlier one.
fn merge(earlier: &[Parsed], later: Vec<Parsed>) -> Vec<Parsed> {
    let mut all = earlier.to_vec();
    all.extend(
        later
            .into_iter()
            .filter(|p| !earlier.iter().any(|e| e.name == p.name)),
    );
    all
}

enum LabOnce {
    Finished(Result<(Vec<Parsed>, i32), String>),
    Crashed {
        printed: Vec<Parsed>,
        running: Option<String>,
        line: String,
    },
}

/// One lab, and the kernel release its drills named.
fn lab_once(
    req: &MatrixRun,
    version: &str,
    done: &str,
) -> Result<(LabOnce, Option<String>), LabError> {
    // Removed on drop.
    let tmp = super::temp_dir("matrix")?;
    let out = tmp.as_path().to_path_buf();
    let mut command = vec![
        "sh".to_string(),
        "-c".into(),
        format!(
            "export {}=0 {}=/lab/out/running {}={}; \"$@\" > /lab/out/stdout; rc=$?; cat /lab/out/stdout; exit $rc",
            session::STDOUT_TTY_ENV,
            crate::drill::runner::RUNNING_ENV,
            crate::drill::runner::DONE_ENV,
            super::initramfs::shell_quote(done)
        ),
        "sh".into(),
    ];
    command.extend(req.base.command.iter().cloned());
    let run = session::LabRun {
        cache: req.base.cache.clone(),
        kernel: kernel::KernelSpec {
            version: version.to_string(),
            ..req.base.kernel.clone()
        },
        mem_mib: req.base.mem_mib,
        cpus: req.base.cpus,
        timeout: req.base.timeout,
        command,
        no_kmod: req.base.no_kmod,
        keep_out: Some(out.clone()),
        console_to_stderr: true,
    };
    let read = |name: &str| std::fs::read_to_string(out.join(name));
    let ran = session::run(&run);
    let release = read("stdout").ok().as_deref().and_then(release_of);
    let r = match ran {
        Ok(status) => LabOnce::Finished(
            read("stdout")
                .map(|t| (ktap::parse(&t), status))
                .map_err(|e| format!("no output from the lab: {e}")),
        ),
        Err(LabError::Interrupted) => return Err(LabError::Interrupted),
        Err(LabError::KernelCrash(line)) => LabOnce::Crashed {
            printed: ktap::parse(&read("stdout").unwrap_or_default()),
            running: read("running")
                .ok()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
            line,
        },
        Err(e) => LabOnce::Finished(Err(e.to_string())),
    };
    Ok((r, release))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str, result: ParsedResult) -> Parsed {
        let mut p = Parsed::new(name, result);
        if result == ParsedResult::NotOk {
            p.failed_checks.push("kvm-invalidated".into());
        }
        p
    }

    fn col(label: &str, results: Result<(Vec<Parsed>, i32), String>) -> KernelColumn {
        KernelColumn {
            partial: Vec::new(),
            label: label.into(),
            results,
            crashes: Vec::new(),
            release: None,
            known: Vec::new(),
        }
    }

    #[test]
    fn versions_are_checked() {
        assert_eq!(parse_versions("7.2").unwrap(), ["7.2"]);
        assert_eq!(
            parse_versions("6.1, 6.12,latest").unwrap(),
            ["6.1", "6.12", "latest"]
        );
        for bad in ["", "6.1,,7.2", "6", "6.x", "7.2,7.2", "6.1;7.2", ".1"] {
            assert!(parse_versions(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_skip_passes_a_failure_or_a_missing_lab_fails() {
        let ok = col(
            "7.2",
            Ok((
                vec![parsed("a", ParsedResult::Ok), parsed("b", ParsedResult::Ok)],
                0,
            )),
        );
        let skip = col(
            "6.12",
            Ok((
                vec![
                    parsed("a", ParsedResult::Ok),
                    parsed("b", ParsedResult::Skip),
                ],
                0,
            )),
        );
        let (text, pass) = render(&[ok.clone(), skip.clone()]);
        assert!(pass, "{text}");
        assert!(
            text.contains("matrix: 2 kernels, 2 passed, 0 failed"),
            "{text}"
        );
        let b_row = text.lines().find(|l| l.starts_with("b ")).expect("row b");
        assert_eq!(
            b_row.split_whitespace().collect::<Vec<_>>(),
            ["b", "ok", "skip"]
        );

        let notok = col(
            "6.1",
            Ok((
                vec![
                    parsed("a", ParsedResult::NotOk),
                    parsed("b", ParsedResult::Error),
                ],
                1,
            )),
        );
        let nolab = col(
            "7.3",
            Err("build-lab-kernel.sh failed (exit status 1)".into()),
        );
        let status = col("6.6", Ok((vec![], 3)));
        let (text, pass) = render(&[ok, skip, notok, nolab, status]);
        assert!(!pass, "{text}");
        assert!(text.contains("6.1     FAILED: a not ok, b error"), "{text}");
        assert!(
            text.contains("7.3     FAILED: build-lab-kernel.sh failed"),
            "{text}"
        );
        assert!(text.contains("6.6     FAILED: exit status 3"), "{text}");
        assert!(
            text.contains("matrix: 5 kernels, 2 passed, 3 failed"),
            "{text}"
        );
        let a_row = text.lines().find(|l| l.starts_with("a ")).expect("row a");
        assert_eq!(
            a_row.split_whitespace().collect::<Vec<_>>(),
            ["a", "ok", "ok", "not", "ok", "-", "-"]
        );
    }

    #[test]
    fn a_later_lab_adds_only_the_drills_it_ran() {
        let earlier = vec![
            parsed("a", ParsedResult::Ok),
            parsed("b", ParsedResult::Crash),
        ];
        let later = vec![
            parsed("a", ParsedResult::Skip),
            parsed("b", ParsedResult::Skip),
            parsed("c", ParsedResult::NotOk),
        ];
        let all = merge(&earlier, later);
        let got: Vec<_> = all.iter().map(|p| (p.name.as_str(), p.result)).collect();
        assert_eq!(
            got,
            [
                ("a", ParsedResult::Ok),
                ("b", ParsedResult::Crash),
                ("c", ParsedResult::NotOk)
            ]
        );
    }

    #[test]
    fn a_crashed_drill_fails_its_kernel_and_shows_in_the_table() {
        let c = KernelColumn {
            crashes: vec![(
                "b".into(),
                "the lab kernel crashed in drill b: kernel BUG at x".into(),
            )],
            ..col(
                "6.12",
                Ok((
                    vec![
                        parsed("a", ParsedResult::Ok),
                        parsed("b", ParsedResult::Crash),
                    ],
                    0,
                )),
            )
        };
        let (text, ok) = render(&[c]);
        assert!(!ok);
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["b", "crash"])),
            "{text}"
        );
        assert!(
            text.contains("FAILED: the lab kernel crashed in drill b: kernel BUG at x"),
            "{text}"
        );
    }

    #[test]
    fn a_known_bug_is_xfail_and_passes_its_kernel_only_in_its_range() {
        let issues = known_issues::parse("6.1 6.14 b docs/x.md the bug").unwrap();
        let crashed = |label: &str| KernelColumn {
            crashes: vec![("b".into(), "the lab kernel crashed in drill b: BUG".into())],
            release: Some(format!("{label}.9-amd64")),
            ..col(
                label,
                Ok((
                    vec![
                        parsed("a", ParsedResult::Ok),
                        parsed("b", ParsedResult::Crash),
                    ],
                    0,
                )),
            )
        };
        let mut old = crashed("6.12");
        mark_known(&issues, &mut old);
        let mut new = crashed("7.2");
        mark_known(&issues, &mut new);
        let mut fixed = col("6.1", Ok((vec![parsed("b", ParsedResult::Ok)], 0)));
        mark_known(&issues, &mut fixed);
        let (text, ok) = render(&[old.clone(), fixed]);
        assert!(ok, "{text}");
        assert!(
            text.contains("6.12    XFAIL: b: the bug (docs/x.md)"),
            "{text}"
        );
        assert!(
            text.contains("6.1     XPASS: b: the bug (docs/x.md)"),
            "{text}"
        );
        let b_row = text.lines().find(|l| l.starts_with("b ")).expect("row b");
        assert_eq!(
            b_row.split_whitespace().collect::<Vec<_>>(),
            ["b", "xfail", "xpass"]
        );
        assert!(json(&[old]).contains(
            "\"result\": \"xfail\", \"failed_checks\": [], \"known_issue\": \"docs/x.md\""
        ));
        // Outside the range the crash still fails the kernel.
        let (text, ok) = render(&[new]);
        assert!(
            !ok && text.contains("7.2     FAILED: the lab kernel crashed in drill b"),
            "{text}"
        );
    }

    #[test]
    fn json_names_every_cell() {
        let cols = [
            col("6.12", Ok((vec![parsed("a", ParsedResult::NotOk)], 1))),
            col("6.1", Err("no \"lab\"".into())),
        ];
        let j = json(&cols);
        assert!(
            j.contains(
                "\"kernel\": \"6.12\", \"exit_status\": 1, \"error\": null, \"passed\": false"
            ),
            "{j}"
        );
        assert!(j.contains("{\"name\": \"a\", \"result\": \"not ok\", \"failed_checks\": [\"kvm-invalidated\"], \"known_issue\": null}"), "{j}");
        assert!(
            j.contains("\"kernel\": \"6.1\", \"exit_status\": null, \"error\": \"no \\\"lab\\\"\""),
            "{j}"
        );
        assert!(j.trim_end().ends_with("\"passed\": false\n}"), "{j}");
        // Balanced, so a JSON reader can take it.
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
    }
}
