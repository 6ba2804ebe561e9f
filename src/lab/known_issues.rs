//! Known kernel bugs (resources/known-issues.txt, embedded): a kernel
//! matrix turns a listed drill's failure on a kernel in the listed version
//! range into `xfail`, and its `ok` there into `xpass`; nothing else.

use crate::drill::report::ktap::{Parsed, ParsedResult};

const LIST: &str = include_str!("../../resources/known-issues.txt");

/// One known bug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownIssue {
    pub first: (u32, u32),
    pub last: (u32, u32),
    pub drill: String,
    /// Where it is written up (a path in the repository).
    pub link: String,
    pub reason: String,
}

/// MAJOR.MINOR at the start of a version or release ("6.12.117+deb13-amd64").
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Parses the list; a malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<KnownIssue>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(5, ' ');
        let mut next = || words.next().unwrap_or_default();
        let (first, last, drill, link, reason) = (next(), next(), next(), next(), next());
        let bad = || {
            format!(
                "known issues, line {}: want FIRST LAST DRILL WRITE-UP REASON",
                n + 1
            )
        };
        out.push(KnownIssue {
            first: major_minor(first).ok_or_else(bad)?,
            last: major_minor(last).ok_or_else(bad)?,
            drill: drill.to_string(),
            link: link.to_string(),
            reason: if reason.is_empty() {
                return Err(bad());
            } else {
                reason.to_string()
            },
        });
    }
    Ok(out)
}

/// The project's list.
pub fn list() -> Vec<KnownIssue> {
    // The list is embedded and checked by a unit test: it always parses.
    parse(LIST).unwrap_or_default()
}

/// The known bug of `drill` on kernel `version` (MAJOR.MINOR), if any.
pub fn find<'a>(
    issues: &'a [KnownIssue],
    version: (u32, u32),
    drill: &str,
) -> Option<&'a KnownIssue> {
    issues
        .iter()
        .find(|k| k.drill == drill && k.first <= version && version <= k.last)
}

/// Marks the results of a kernel of `version`: a listed drill that failed
/// becomes `xfail`, one that passed `xpass`. Returns the issues that
/// applied, with the drill's new result.
pub fn apply(
    issues: &[KnownIssue],
    version: (u32, u32),
    results: &mut [Parsed],
) -> Vec<(KnownIssue, ParsedResult)> {
    let mut applied = Vec::new();
    for r in results.iter_mut() {
        let Some(k) = find(issues, version, &r.name) else {
            continue;
        };
        r.result = match r.result {
            ParsedResult::NotOk | ParsedResult::Error | ParsedResult::Crash => ParsedResult::XFail,
            ParsedResult::Ok => ParsedResult::XPass,
            other => other,
        };
        if matches!(r.result, ParsedResult::XFail | ParsedResult::XPass) {
            applied.push((k.clone(), r.result));
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_list_parses() {
        let l = parse(LIST).expect("resources/known-issues.txt");
        assert!(l.iter().any(|k| k.drill == "exclusive-large-folio"));
        for k in &l {
            assert!(k.first <= k.last, "{k:?}");
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(&k.link)
                    .is_file(),
                "{}: no write-up at {}",
                k.drill,
                k.link
            );
        }
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("6.1 x d l why").unwrap_err().contains("line 1"));
        assert!(parse("# c\n6.1 6.2 d l").unwrap_err().contains("line 2"));
    }

    #[test]
    fn only_the_listed_drill_in_the_range_changes() {
        let l = parse("6.1 6.14 a doc why").unwrap();
        let mut rs = vec![
            Parsed::new("a", ParsedResult::Crash),
            Parsed::new("b", ParsedResult::NotOk),
        ];
        let applied = apply(&l, (6, 12), &mut rs);
        assert_eq!(rs[0].result, ParsedResult::XFail);
        assert_eq!(rs[1].result, ParsedResult::NotOk);
        assert_eq!(applied.len(), 1);
        let mut rs = vec![
            Parsed::new("a", ParsedResult::Ok),
            Parsed::new("c", ParsedResult::Skip),
        ];
        apply(&l, (6, 14), &mut rs);
        assert_eq!(rs[0].result, ParsedResult::XPass);
        assert_eq!(rs[1].result, ParsedResult::Skip);
        let mut rs = vec![Parsed::new("a", ParsedResult::NotOk)];
        assert!(apply(&l, (6, 15), &mut rs).is_empty());
        assert_eq!(rs[0].result, ParsedResult::NotOk);
        assert_eq!(major_minor("6.12.117+deb13-amd64"), Some((6, 12)));
        assert_eq!(major_minor("7.3~rc7"), Some((7, 3)));
        assert_eq!(major_minor("latest"), None);
    }
}
