//! KTAP v1 output and kselftest exit codes.

use std::fmt::Write;

use crate::drill::verdict::Outcome;

/// kselftest exit codes.
pub const KSFT_PASS: i32 = 0;
pub const KSFT_FAIL: i32 = 1;
pub const KSFT_SKIP: i32 = 4;

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
            Outcome::Error(_) => false,
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The whole KTAP document.
pub fn render(reports: &[Report]) -> String {
    let mut s = String::from("KTAP version 1\n");
    let _ = writeln!(s, "1..{}", reports.len());
    for (i, r) in reports.iter().enumerate() {
        let n = i + 1;
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
        }
    }
    let (p, f, k) = totals(reports);
    let _ = writeln!(
        s,
        "# Totals: pass:{p} fail:{f} xfail:0 xpass:0 skip:{k} error:0"
    );
    s
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
    let (p, f, k) = totals(reports);
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
