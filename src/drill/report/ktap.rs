//! KTAP v1 output and kselftest exit codes.

use crate::lab::known_issues::KnownIssue;
use std::fmt::Write;

use crate::drill::verdict::Outcome;

/// kselftest exit codes.
pub use crate::exit_code::{FAIL as KSFT_FAIL, OK as KSFT_PASS, SKIP as KSFT_SKIP};

/// One drill's result as reported.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub outcome: Outcome,
    pub seconds: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        match &self.outcome {
            Outcome::Judged(v) => v.passed(),
            Outcome::Skip(_) => true,
            Outcome::Error(_) | Outcome::Timeout(_) => false,
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The KTAP header and plan for `n` results: what a streaming writer
/// prints before the first drill ends.
pub fn header(n: usize) -> String {
    format!("KTAP version 1\n1..{n}\n")
}

/// A diagnostic line naming the kernel (after the plan).
pub fn kernel_line() -> String {
    match super::kernel_words() {
        (release, Some(lab)) => format!("# kernel: {release} ({lab})\n"),
        (release, None) => format!("# kernel: {release}\n"),
    }
}

/// Result `n` (1-based): its diagnostic lines, then the result line.
pub fn result(n: usize, r: &Report) -> String {
    result_known(n, r, None)
}

/// What the known-issues list makes of a report on this kernel: Some(true)
/// xfail (it failed as listed), Some(false) xpass (it passed though
/// listed), None where no issue applies or the drill skipped.
fn known_state(r: &Report, known: Option<&KnownIssue>) -> Option<bool> {
    known?;
    match r.outcome {
        Outcome::Skip(_) => None,
        _ => Some(!r.ok()),
    }
}

/// [`result`], with the known kernel bug of this drill on this kernel
/// (resources/known-issues.txt): a failure it lists ends `ok N NAME #
/// XFAIL reason` (kselftest's form), a pass `ok N NAME # XPASS reason`.
pub fn result_known(n: usize, r: &Report, known: Option<&KnownIssue>) -> String {
    let mut s = result_lines(n, r);
    if let (Some(k), Some(xfail)) = (known, known_state(r, known)) {
        // Replace the result line, keep the diagnostics.
        s.truncate(s.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1));
        let word = if xfail { "XFAIL" } else { "XPASS" };
        let _ = writeln!(s, "ok {n} {} # {word} {} ({})", r.name, k.reason, k.link);
    }
    s
}

fn result_lines(n: usize, r: &Report) -> String {
    let mut s = String::new();
    match &r.outcome {
        Outcome::Judged(v) => {
            for c in v.failures() {
                let _ = writeln!(s, "# {}: {}: {}", r.name, c.name, one_line(&c.detail));
            }
            for note in &v.notes {
                let _ = writeln!(s, "# {}: note: {}", r.name, one_line(note));
            }
            let _ = writeln!(
                s,
                "{}ok {n} {}",
                if v.passed() { "" } else { "not " },
                r.name
            );
        }
        Outcome::Skip(why) => {
            let _ = writeln!(s, "ok {n} {} # SKIP {}", r.name, one_line(why));
        }
        Outcome::Error(e) => {
            let _ = writeln!(s, "# {}: error: {}", r.name, one_line(e));
            let _ = writeln!(s, "not ok {n} {}", r.name);
        }
        Outcome::Timeout(secs) => {
            let _ = writeln!(
                s,
                "# {}: error: no verdict within the {secs} s --timeout",
                r.name
            );
            let _ = writeln!(s, "not ok {n} {} # TIMEOUT {secs} seconds", r.name);
        }
    }
    s
}

/// The totals line that ends the document.
pub fn footer(reports: &[Report]) -> String {
    footer_known(reports, &[])
}

/// [`footer`], `known[i]` being the known kernel bug of report i (if any).
pub fn footer_known(reports: &[Report], known: &[Option<&KnownIssue>]) -> String {
    let (p, f, k) = totals(reports);
    let (xfail, xpass) = known_counts(reports, known);
    format!(
        "# Totals: pass:{} fail:{} xfail:{xfail} xpass:{xpass} skip:{k} error:0\n",
        p - xpass,
        f - xfail
    )
}

fn known_counts(reports: &[Report], known: &[Option<&KnownIssue>]) -> (usize, usize) {
    let states: Vec<bool> = reports
        .iter()
        .zip(known.iter().copied().chain(std::iter::repeat(None)))
        .filter_map(|(r, k)| known_state(r, k))
        .collect();
    let xfail = states.iter().filter(|&&x| x).count();
    (xfail, states.len() - xfail)
}

/// The whole KTAP document.
pub fn render(reports: &[Report]) -> String {
    let mut s = header(reports.len());
    for (i, r) in reports.iter().enumerate() {
        s.push_str(&result(i + 1, r));
    }
    s.push_str(&footer(reports));
    s
}

/// One result read back from a KTAP document that [`render`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub name: String,
    pub result: ParsedResult,
    /// Names of the checks that failed (the `# drill: check: detail` lines).
    pub failed_checks: Vec<String>,
    /// Why the drill could not run (its `# drill: error: WHY` line), if so.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedResult {
    Ok,
    NotOk,
    Skip,
    /// `not ok` after a `# drill: error:` line: the drill could not run.
    Error,
    /// Never in KTAP: the kernel crashed while the drill ran (the lab's
    /// matrix reads it from the console).
    Crash,
    /// A failure the known-issues list expects on this kernel (a matrix
    /// cell; resources/known-issues.txt).
    XFail,
    /// A pass where the known-issues list expects a failure.
    XPass,
}

impl Parsed {
    /// A result with no failed checks and no reason.
    pub fn new(name: &str, result: ParsedResult) -> Self {
        Parsed {
            name: name.to_string(),
            result,
            failed_checks: Vec::new(),
            reason: String::new(),
        }
    }

    /// "NAME RESULT", with the reason of an error: a failed run's summary.
    pub fn summary(&self) -> String {
        match self.reason.as_str() {
            "" => format!("{} {}", self.name, self.result.word()),
            why => format!(
                "{} {} ({})",
                self.name,
                self.result.word(),
                why.chars().take(300).collect::<String>()
            ),
        }
    }
}

impl ParsedResult {
    pub fn word(self) -> &'static str {
        match self {
            ParsedResult::Ok => "ok",
            ParsedResult::NotOk => "not ok",
            ParsedResult::Skip => "skip",
            ParsedResult::Error => "error",
            ParsedResult::Crash => "crash",
            ParsedResult::XFail => "xfail",
            ParsedResult::XPass => "xpass",
        }
    }
}

/// Reads the results back from a KTAP document of [`render`]'s form (lines
/// it does not know, e.g. console output around it, are ignored).
pub fn parse(text: &str) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    let mut error = false;
    let mut reason = String::new();
    for line in text.lines().map(str::trim_end) {
        if let Some(diag) = line.strip_prefix("# ") {
            let mut parts = diag.splitn(3, ": ");
            if let (Some(_drill), Some(check), Some(why)) =
                (parts.next(), parts.next(), parts.next())
            {
                match check {
                    "note" => {}
                    "error" => {
                        error = true;
                        reason = why.to_string();
                    }
                    c if !c.contains(' ') => checks.push(c.to_string()),
                    _ => {}
                }
            }
            continue;
        }
        let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = line.strip_prefix("ok ") {
            (true, r)
        } else {
            continue;
        };
        let Some((_, rest)) = rest.split_once(' ') else {
            continue;
        };
        let known = [
            (" # XFAIL", ParsedResult::XFail),
            (" # XPASS", ParsedResult::XPass),
        ]
        .into_iter()
        .find_map(|(d, r)| rest.split_once(d).map(|(n, _)| (n, r)));
        if let (true, Some((name, result))) = (ok, known) {
            out.push(Parsed {
                name: name.to_string(),
                result,
                failed_checks: std::mem::take(&mut checks),
                reason: std::mem::take(&mut reason),
            });
            error = false;
            continue;
        }
        let (name, skip) = match rest.split_once(" # SKIP") {
            Some((n, _)) => (n, true),
            None => (rest.split_once(" # ").map_or(rest, |(n, _)| n), false),
        };
        let result = match (ok, skip, error) {
            (true, true, _) => ParsedResult::Skip,
            (true, false, _) => ParsedResult::Ok,
            (false, _, true) => ParsedResult::Error,
            (false, _, false) => ParsedResult::NotOk,
        };
        out.push(Parsed {
            name: name.trim().to_string(),
            result,
            failed_checks: std::mem::take(&mut checks),
            reason: std::mem::take(&mut reason),
        });
        error = false;
    }
    out
}

/// (passed, failed, skipped)
pub fn totals(reports: &[Report]) -> (usize, usize, usize) {
    let skip = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skip(_)))
        .count();
    let fail = reports.iter().filter(|r| !r.ok()).count();
    (reports.len() - skip - fail, fail, skip)
}

/// 0 all passed (skips allowed), 1 any failed, 4 all skipped.
pub fn exit_code(reports: &[Report]) -> i32 {
    exit_code_known(reports, &[])
}

/// [`exit_code`], where a known kernel bug's failure (xfail) does not fail.
pub fn exit_code_known(reports: &[Report], known: &[Option<&KnownIssue>]) -> i32 {
    let (p, f, k) = totals(reports);
    let f = f - known_counts(reports, known).0;
    if f > 0 {
        KSFT_FAIL
    } else if p == 0 && k > 0 {
        KSFT_SKIP
    } else {
        KSFT_PASS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_bug_is_xfail_and_does_not_fail_the_run() {
        use crate::drill::verdict::Verdict;
        let issue = crate::lab::known_issues::parse("6.1 6.14 a docs/x.md the bug")
            .unwrap()
            .remove(0);
        let mut bad = Verdict::default();
        bad.check("nothing-lost", false, "page 1 changed");
        let reports = vec![
            Report {
                name: "a".into(),
                outcome: Outcome::Judged(bad.clone()),
                seconds: 0.1,
            },
            Report {
                name: "b".into(),
                outcome: Outcome::Judged(Verdict::default()),
                seconds: 0.1,
            },
        ];
        let known = [Some(&issue), None];
        let line = result_known(1, &reports[0], known[0]);
        assert_eq!(
            line,
            "# a: nothing-lost: page 1 changed\nok 1 a # XFAIL the bug (docs/x.md)\n"
        );
        assert_eq!(
            footer_known(&reports, &known),
            "# Totals: pass:1 fail:0 xfail:1 xpass:0 skip:0 error:0\n"
        );
        assert_eq!(exit_code_known(&reports, &known), KSFT_PASS);
        assert_eq!(exit_code(&reports), KSFT_FAIL);
        // Listed but passing: XPASS, still a pass.
        let pass = result_known(2, &reports[1], Some(&issue));
        assert_eq!(pass, "ok 2 b # XPASS the bug (docs/x.md)\n");
        let p = parse(&format!("{line}{pass}"));
        assert_eq!(p[0].result, ParsedResult::XFail);
        assert_eq!(p[0].failed_checks, ["nothing-lost"]);
        assert_eq!(p[1].result, ParsedResult::XPass);
        // Any other failure still fails.
        let other = [None, Some(&issue)];
        assert_eq!(exit_code_known(&reports, &other), KSFT_FAIL);
    }

    #[test]
    fn parse_reads_back_render() {
        use crate::drill::verdict::Verdict;
        let mut v = Verdict::default();
        v.check("kvm-spte-zapped", false, "page A: gfn 0x205: kept");
        v.check("nothing-lost", true, "");
        v.note("a note: with colons");
        let reports = vec![
            Report {
                name: "a".into(),
                outcome: Outcome::Judged(v),
                seconds: 0.1,
            },
            Report {
                name: "b".into(),
                outcome: Outcome::Skip("no module".into()),
                seconds: 0.0,
            },
            Report {
                name: "c".into(),
                outcome: Outcome::Error("boom: x".into()),
                seconds: 0.0,
            },
            Report {
                name: "d".into(),
                outcome: Outcome::Judged(Verdict::default()),
                seconds: 0.0,
            },
        ];
        let text = format!("[lab] console line\n{}", render(&reports));
        let p = parse(&text);
        let got: Vec<_> = p.iter().map(|r| (r.name.as_str(), r.result)).collect();
        assert_eq!(
            got,
            [
                ("a", ParsedResult::NotOk),
                ("b", ParsedResult::Skip),
                ("c", ParsedResult::Error),
                ("d", ParsedResult::Ok)
            ]
        );
        assert_eq!(p[0].failed_checks, ["kvm-spte-zapped"]);
        assert!(p[2].failed_checks.is_empty() && p[3].failed_checks.is_empty());
        assert_eq!(p[2].reason, "boom: x");
        assert_eq!(p[0].reason, "");
    }
    use crate::drill::verdict::Verdict;

    #[test]
    fn ktap_lines_and_codes() {
        let mut bad = Verdict::default();
        bad.check("kvm-invalidated", false, "KVM saw no invalidation\nof page");
        let rs = vec![
            Report {
                name: "a".into(),
                outcome: Outcome::Judged(Verdict::default()),
                seconds: 0.0,
            },
            Report {
                name: "b".into(),
                outcome: Outcome::Judged(bad),
                seconds: 0.0,
            },
            Report {
                name: "c".into(),
                outcome: Outcome::Skip("no /dev/kvm".into()),
                seconds: 0.0,
            },
        ];
        let s = render(&rs);
        assert!(s.starts_with("KTAP version 1\n1..3\nok 1 a\n"));
        assert!(s.contains("# b: kvm-invalidated: KVM saw no invalidation of page\nnot ok 2 b\n"));
        assert!(s.contains("ok 3 c # SKIP no /dev/kvm\n"));
        assert_eq!(exit_code(&rs), KSFT_FAIL);
        assert_eq!(exit_code(&rs[2..]), KSFT_SKIP);
        assert_eq!(exit_code(&[rs[0].clone(), rs[2].clone()]), KSFT_PASS);
    }
}
