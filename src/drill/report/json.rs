//! `--format json`: results with the measured figures (hand-written JSON).

use std::fmt::Write;

use crate::drill::report::ktap::{totals, Report};
use crate::drill::verdict::Outcome;

/// JSON string literal.
pub fn string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

pub fn render(reports: &[Report]) -> String {
    let mut s = String::from("{\"drills\":[");
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"name\":{},\"seconds\":{}",
            string(&r.name),
            number(r.seconds)
        );
        match &r.outcome {
            Outcome::Judged(v) => {
                let _ = write!(
                    s,
                    ",\"result\":{}",
                    string(if v.passed() { "pass" } else { "fail" })
                );
                s.push_str(",\"checks\":[");
                for (k, c) in v.checks.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    let _ = write!(
                        s,
                        "{{\"name\":{},\"passed\":{},\"detail\":{}}}",
                        string(&c.name),
                        c.passed,
                        string(&c.detail)
                    );
                }
                s.push_str("],\"figures\":{");
                for (k, (n, v)) in v.figures.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    let _ = write!(s, "{}:{}", string(n), number(*v));
                }
                s.push_str("},\"notes\":[");
                let notes: Vec<String> = v.notes.iter().map(|n| string(n)).collect();
                s.push_str(&notes.join(","));
                s.push(']');
            }
            Outcome::Skip(why) => {
                let _ = write!(s, ",\"result\":\"skip\",\"reason\":{}", string(why));
            }
            Outcome::Error(e) => {
                let _ = write!(s, ",\"result\":\"error\",\"reason\":{}", string(e));
            }
            Outcome::Timeout(secs) => {
                let _ = write!(
                    s,
                    ",\"result\":\"timeout\",\"reason\":{}",
                    string(&format!("no verdict within the {secs} s --timeout"))
                );
            }
        }
        s.push('}');
    }
    let (p, f, k) = totals(reports);
    let _ = writeln!(s, "],\"pass\":{p},\"fail\":{f},\"skip\":{k}}}");
    s
}
