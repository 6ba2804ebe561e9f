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
    let (release, lab) = super::kernel_words();
    let mut s = format!(
        "{{\"kernel\":{{\"release\":{},\"lab\":{}}},\"drills\":[",
        string(&release),
        lab.as_deref().map_or_else(|| "null".to_string(), string)
    );
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

/// Reads back the reports [`render`] wrote (a drill's own process hands
/// its result to the runner this way).
pub fn parse(text: &str) -> Result<Vec<Report>, String> {
    use crate::drill::report::json_value::{self, Value};
    use crate::drill::verdict::{Check, Verdict};
    let doc = json_value::parse(text)?;
    let drills = doc
        .get("drills")
        .and_then(Value::as_array)
        .ok_or("no \"drills\" array")?;
    let text_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let mut out = Vec::new();
    for d in drills {
        let name = text_of(d, "name").ok_or("a drill without a name")?;
        let seconds = match d.get("seconds") {
            Some(Value::Number(n)) => *n,
            _ => 0.0,
        };
        let reason = text_of(d, "reason").unwrap_or_default();
        let outcome = match d.get("result").and_then(Value::as_str) {
            Some("pass" | "fail") => {
                let mut v = Verdict::default();
                for c in d.get("checks").and_then(Value::as_array).unwrap_or(&[]) {
                    v.checks.push(Check {
                        name: text_of(c, "name")
                            .ok_or_else(|| format!("{name}: a check without a name"))?,
                        passed: c
                            .get("passed")
                            .and_then(Value::as_bool)
                            .ok_or_else(|| format!("{name}: a check without passed"))?,
                        detail: text_of(c, "detail").unwrap_or_default(),
                    });
                }
                if let Some(Value::Object(figs)) = d.get("figures") {
                    for (k, f) in figs {
                        let x = match f {
                            Value::Number(n) => *n,
                            _ => f64::NAN,
                        };
                        v.figures.push((k.clone(), x));
                    }
                }
                for n in d.get("notes").and_then(Value::as_array).unwrap_or(&[]) {
                    v.notes.extend(n.as_str().map(str::to_string));
                }
                Outcome::Judged(v)
            }
            Some("skip") => Outcome::Skip(reason),
            Some("error") => Outcome::Error(reason),
            Some("timeout") => Outcome::Error(reason),
            other => return Err(format!("drill {name}: result {other:?}")),
        };
        out.push(Report {
            name,
            outcome,
            seconds,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::verdict::Verdict;

    #[test]
    fn parse_reads_back_render() {
        let mut v = Verdict::default();
        v.check("kvm-spte-zapped", false, "gfn 0x205: \"kept\"\nstill");
        v.check("nothing-lost", true, "");
        v.figure("rounds", 12.5);
        v.note("a note");
        let reports = vec![
            Report {
                name: "a".into(),
                outcome: Outcome::Judged(v),
                seconds: 1.25,
            },
            Report {
                name: "b".into(),
                outcome: Outcome::Skip("no module".into()),
                seconds: 0.0,
            },
            Report {
                name: "c".into(),
                outcome: Outcome::Error("boom".into()),
                seconds: 0.5,
            },
        ];
        let back = parse(&render(&reports)).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in reports.iter().zip(&back) {
            assert_eq!(
                (&a.name, &a.outcome, a.seconds),
                (&b.name, &b.outcome, b.seconds)
            );
        }
        assert!(parse("{\"drills\":[{\"name\":\"x\",\"result\":\"maybe\"}]}").is_err());
        assert!(parse("not json").is_err());
    }
}
