//! Layout of one timeline lane in pixels: records too close to tell apart
//! become one cluster mark, and labels go into rows above and below the
//! lane where they fit, shortened (or left out: the tooltip still has them)
//! where they would overprint the next one or run off the canvas.

/// One mark on a lane: a single record or a cluster of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Left and right edge, pixels.
    pub xa: f64,
    pub xb: f64,
    /// Indices (into the caller's slice) of the records it stands for.
    pub members: Vec<usize>,
}

impl Mark {
    pub fn is_cluster(&self) -> bool {
        self.members.len() > 1
    }
}

/// Groups records given as pixel extents `(xa, xb)`, sorted by `xa`.
/// A record at least `min_width` wide (a span one can see) is a mark of its
/// own; narrower ones (instants, short spans) chain into one cluster while
/// each starts within `gap` pixels of the cluster's right edge.
pub fn cluster(extents: &[(f64, f64)], min_width: f64, gap: f64) -> Vec<Mark> {
    let mut marks: Vec<Mark> = Vec::new();
    // Index in `marks` of the cluster small records may still join.
    let mut open: Option<usize> = None;
    for (i, &(xa, xb)) in extents.iter().enumerate() {
        let xb = xb.max(xa);
        if xb - xa >= min_width {
            marks.push(Mark {
                xa,
                xb,
                members: vec![i],
            });
            open = None;
            continue;
        }
        match open.map(|k| &mut marks[k]) {
            Some(m) if xa <= m.xb + gap => {
                m.xb = m.xb.max(xb);
                m.members.push(i);
            }
            _ => {
                marks.push(Mark {
                    xa,
                    xb,
                    members: vec![i],
                });
                open = Some(marks.len() - 1);
            }
        }
    }
    marks
}

/// A label placed in a row (0: above the lane, 1: below, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub row: usize,
    pub text: String,
}

/// Fewest characters worth drawing (with the ellipsis).
const MIN_CHARS: usize = 6;
/// Pixels kept free between two labels of a row.
const PAD: f64 = 6.0;

/// Places labels `(x, text)`, sorted by x, into `rows` rows. A label goes
/// into the first row free at its x; it may run until `right` and until the
/// label `rows` places later starts (so that one still finds room), and is
/// cut with "…" where it would run further. Labels that can't show
/// `MIN_CHARS` characters are left out (None).
pub fn place_labels(
    labels: &[(f64, String)],
    rows: usize,
    right: f64,
    char_w: f64,
) -> Vec<Option<Placed>> {
    let mut free = vec![f64::NEG_INFINITY; rows];
    let mut out = Vec::with_capacity(labels.len());
    for (i, (x, text)) in labels.iter().enumerate() {
        let Some(row) = (0..rows).find(|&r| free[r] <= *x) else {
            out.push(None);
            continue;
        };
        let limit = labels
            .get(i + rows)
            .map(|(nx, _)| (nx - PAD).min(right))
            .unwrap_or(right);
        let room = ((limit - x) / char_w).floor().max(0.0) as usize;
        let len = text.chars().count();
        let text = if len <= room {
            text.clone()
        } else if room >= MIN_CHARS {
            let mut t: String = text.chars().take(room - 1).collect();
            t.push('…');
            t
        } else {
            out.push(None);
            continue;
        };
        free[row] = x + text.chars().count() as f64 * char_w + PAD;
        out.push(Some(Placed { row, text }));
    }
    out
}

/// "3 SPTE, 2 fault, 1 unmap": how many records of each kind, most first
/// (ties in first-seen order), at most `max` kinds and "…" for the rest.
pub fn kinds_summary<'a>(kinds: impl Iterator<Item = &'a str>, max: usize) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for k in kinds {
        match counts.iter_mut().find(|(n, _)| *n == k) {
            Some((_, c)) => *c += 1,
            None => counts.push((k, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut parts: Vec<String> = counts
        .iter()
        .take(max)
        .map(|(k, c)| format!("{c} {k}"))
        .collect();
    if counts.len() > max {
        parts.push("…".into());
    }
    parts.join(", ")
}

/// A tick step for an axis of `range` units with at most `max_ticks`
/// intervals: 1, 2 or 5 times a power of ten.
pub fn nice_step(range: u64, max_ticks: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if range <= step * m * max_ticks.max(1) {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
        if step > u64::MAX / 50 {
            return step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_instants_become_one_cluster() {
        // 100 events 0.5 px apart, then one 50 px further on.
        let mut ext: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 0.5, i as f64 * 0.5)).collect();
        ext.push((100.0, 100.0));
        let m = cluster(&ext, 6.0, 4.0);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].members.len(), 100);
        assert!(m[0].is_cluster() && !m[1].is_cluster());
        assert_eq!((m[0].xa, m[0].xb), (0.0, 49.5));
        assert_eq!(m[1].members, vec![100]);
    }

    #[test]
    fn wide_spans_stand_alone_and_break_clusters() {
        // instant, wide span right after it, two instants after the span.
        let ext = [(10.0, 10.0), (11.0, 60.0), (61.0, 61.0), (62.0, 62.0)];
        let m = cluster(&ext, 6.0, 4.0);
        let members: Vec<Vec<usize>> = m.iter().map(|m| m.members.clone()).collect();
        assert_eq!(members, vec![vec![0], vec![1], vec![2, 3]]);
        // Spread-out instants stay single.
        let ext = [(0.0, 0.0), (10.0, 10.0), (20.0, 20.0)];
        assert_eq!(cluster(&ext, 6.0, 4.0).len(), 3);
        assert!(cluster(&[], 6.0, 4.0).is_empty());
    }

    #[test]
    fn labels_never_overlap_and_stay_on_the_canvas() {
        let labels: Vec<(f64, String)> = [0.0, 20.0, 40.0, 300.0, 590.0]
            .iter()
            .map(|&x| (x, "TdpSpteChanged { gfn: 516, level: 1 }".to_string()))
            .collect();
        let p = place_labels(&labels, 2, 600.0, 6.0);
        // Label 0 would have to end before label 2 (x=40, the next in its
        // row): 5 characters, too few: left out. Labels 1 and 2 then have
        // room for the whole text, one in each row.
        assert_eq!(p[0], None);
        assert_eq!(p[1].as_ref().map(|p| p.row), Some(0));
        assert_eq!(p[2].as_ref().map(|p| p.row), Some(1));
        assert_eq!(p[2].as_ref().unwrap().text, labels[2].1);
        // Check overlap per row, and the right edge.
        let mut ends = [f64::NEG_INFINITY; 2];
        for (i, pl) in p.iter().enumerate() {
            if let Some(pl) = pl {
                let x = labels[i].0;
                assert!(x >= ends[pl.row], "label {i} overprints");
                let end = x + pl.text.chars().count() as f64 * 6.0;
                assert!(end <= 600.0, "label {i} runs off: {end}");
                ends[pl.row] = end;
            }
        }
        // Far from the others: the whole text.
        assert_eq!(p[3].as_ref().unwrap().text, labels[3].1);
        // 10 px before the edge: no room for 6 characters.
        assert_eq!(p[4], None);
        // One row: the first label is cut with "…" before the second.
        let two = [(0.0, labels[0].1.clone()), (100.0, labels[1].1.clone())];
        let p = place_labels(&two, 1, 1000.0, 6.0);
        assert_eq!(p[0].as_ref().unwrap().text, "TdpSpteChanged…");
        assert_eq!(p[1].as_ref().unwrap().text, labels[1].1);
    }

    #[test]
    fn labels_left_out_when_both_rows_are_taken() {
        // Five marks 10 px apart: a label may only run to the mark two
        // places on (14 px, 2 characters), too short; the last two have the
        // room to the canvas edge, one row each.
        let labels: Vec<(f64, String)> = (0..5)
            .map(|i| (i as f64 * 10.0, format!("label number {i}")))
            .collect();
        let p = place_labels(&labels, 2, 1000.0, 6.0);
        assert!(p[..3].iter().all(|p| p.is_none()), "{p:?}");
        assert_eq!(p[3].as_ref().map(|p| p.row), Some(0));
        assert_eq!(p[4].as_ref().map(|p| p.row), Some(1));
    }

    #[test]
    fn summary_and_ticks() {
        let k = ["SPTE", "fault", "SPTE", "map", "SPTE", "fault", "unmap"];
        assert_eq!(
            kinds_summary(k.iter().copied(), 3),
            "3 SPTE, 2 fault, 1 map, …"
        );
        assert_eq!(
            kinds_summary(k.iter().copied(), 9),
            "3 SPTE, 2 fault, 1 map, 1 unmap"
        );
        assert_eq!(nice_step(8_812_000, 10), 1_000_000);
        assert_eq!(nice_step(62_740_000, 10), 10_000_000);
        assert_eq!(nice_step(3_000, 10), 500);
        assert_eq!(nice_step(1, 10), 1);
        assert_eq!(nice_step(0, 10), 1);
    }
}
