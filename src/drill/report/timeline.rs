//! One time axis for a drill: guest ucalls, host actions (conversions,
//! madvise, ...), KVM's MMU events, notifier events and pagemap states;
//! rendered as hand-written SVG that fits its canvas. Records too close to
//! draw apart become one band with a count (`cluster`); every mark has a
//! tooltip (`<title>`) with the full record(s).

use std::fmt::Write;
use std::ops::Range;

use crate::drill::report::cluster::{self, Mark};
use crate::drill::report::kvm_text;
use crate::drill::report::time_axis::TimeAxis;
use crate::secondary_mmu::KvmEvent;

/// Which row an entry is drawn in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    Guest(usize),
    Host,
    Kvm,
    Device,
    Pagemap,
}

impl Lane {
    fn label(&self) -> String {
        match self {
            Lane::Guest(i) => format!("vCPU {i}"),
            Lane::Host => "host".into(),
            Lane::Kvm => "KVM".into(),
            Lane::Device => "device".into(),
            Lane::Pagemap => "pagemap".into(),
        }
    }
    fn colour(&self) -> &'static str {
        match self {
            Lane::Guest(_) => "#2b6cb0",
            Lane::Host => "#2f855a",
            Lane::Kvm => "#c53030",
            Lane::Device => "#805ad5",
            Lane::Pagemap => "#718096",
        }
    }
}

/// One thing that happened: an instant (`end_ns == start_ns`) or a span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub lane: Lane,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Few words, drawn next to the mark.
    pub label: String,
    /// The full record for the tooltip (empty: the label says it all).
    pub detail: String,
}

impl Entry {
    /// What kind of record this is, for cluster counts: the label's first
    /// word ("SPTE", "fault", "WRITE", ...).
    fn kind(&self) -> &str {
        self.label
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(':')
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub entries: Vec<Entry>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Canvas width and the plot area in it, pixels.
const CANVAS_W: f64 = 1400.0;
const PLOT_LEFT: f64 = 80.0;
/// Marks end here; labels may run on to the canvas edge.
const PLOT_RIGHT: f64 = CANVAS_W - 110.0;
/// One lane: a label row, the marks, a label row.
const LANE_H: f64 = 48.0;
/// Width of a character at font-size 10 (DejaVu Sans Mono: 0.602 em).
const CHAR_W: f64 = 6.1;
/// Width of a character of the 14 px title.
const TITLE_CHAR_W: f64 = 8.5;
/// Records narrower than this chain into clusters ...
const MIN_MARK_W: f64 = 6.0;
/// ... when they start this close to the previous one.
const CLUSTER_GAP: f64 = 8.0;
/// Records listed in a cluster's tooltip.
const TOOLTIP_RECORDS: usize = 40;
/// Clusters up to this size list their records' full details.
const TOOLTIP_DETAILED: usize = 8;

/// `t` in ms from `t0`, to the microsecond.
fn ms(t: u64, t0: u64) -> String {
    format!("{:.3} ms", t.saturating_sub(t0) as f64 / 1e6)
}

/// Duration in the unit that reads best, to about three digits.
fn duration(ns: u64) -> String {
    let short = |v: f64, unit: &str| {
        if v < 10.0 {
            format!("{v:.1} {unit}")
        } else {
            format!("{v:.0} {unit}")
        }
    };
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => short(ns as f64 / 1e3, "µs"),
        1_000_000..=999_999_999 => short(ns as f64 / 1e6, "ms"),
        _ => short(ns as f64 / 1e9, "s"),
    }
}

/// Greedy word wrap to lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for w in text.split_whitespace() {
        let cur = lines.last_mut().expect("never empty");
        if cur.is_empty() {
            cur.push_str(w);
        } else if cur.chars().count() + 1 + w.chars().count() <= width {
            cur.push(' ');
            cur.push_str(w);
        } else {
            lines.push(w.to_string());
        }
    }
    lines
}

impl Timeline {
    pub fn instant(&mut self, lane: Lane, t: u64, label: impl Into<String>) {
        self.span(lane, t, t, label);
    }
    pub fn span(&mut self, lane: Lane, start: u64, end: u64, label: impl Into<String>) {
        self.entries.push(Entry {
            lane,
            start_ns: start,
            end_ns: end.max(start),
            label: label.into(),
            detail: String::new(),
        });
    }
    /// An instant with a short label and the full record for its tooltip.
    pub fn instant_detail(&mut self, lane: Lane, t: u64, label: String, detail: String) {
        self.entries.push(Entry {
            lane,
            start_ns: t,
            end_ns: t,
            label,
            detail,
        });
    }
    /// A KVM trace record on the KVM lane, in kernel words (`kvm_text`);
    /// `to_gfns` maps host ranges to the guest frames behind them.
    pub fn kvm_event(&mut self, e: &KvmEvent, to_gfns: &dyn Fn(u64, u64) -> Option<Range<u64>>) {
        let (label, detail) = kvm_text::describe(e, to_gfns);
        self.instant_detail(Lane::Kvm, e.time_ns, label, detail);
    }

    /// The tooltip of a single record.
    fn tooltip_one(e: &Entry, t0: u64) -> String {
        let when = if e.end_ns > e.start_ns {
            format!(
                "{} - {} ({})",
                ms(e.start_ns, t0),
                ms(e.end_ns, t0),
                duration(e.end_ns - e.start_ns)
            )
        } else {
            format!("at {}", ms(e.start_ns, t0))
        };
        if e.detail.is_empty() {
            format!("{}, {when}\n{}", e.lane.label(), e.label)
        } else {
            format!("{}, {when}\n{}\n{}", e.lane.label(), e.label, e.detail)
        }
    }

    /// The tooltip of a cluster: counts, span, and the records.
    fn tooltip_cluster(es: &[&Entry], t0: u64) -> String {
        let (a, b) = (
            es.iter().map(|e| e.start_ns).min().unwrap_or(0),
            es.iter().map(|e| e.end_ns).max().unwrap_or(0),
        );
        let mut s = format!(
            "{}: {} records in {} ({} - {})\n{}\n",
            es[0].lane.label(),
            es.len(),
            duration(b - a),
            ms(a, t0),
            ms(b, t0),
            cluster::kinds_summary(es.iter().map(|e| e.kind()), usize::MAX)
        );
        for e in es.iter().take(TOOLTIP_RECORDS) {
            let _ = write!(s, "\n{}  {}", ms(e.start_ns, t0), e.label);
            if es.len() <= TOOLTIP_DETAILED && !e.detail.is_empty() {
                let _ = write!(s, "\n    {}", e.detail.replace('\n', "\n    "));
            }
        }
        if es.len() > TOOLTIP_RECORDS {
            let _ = write!(s, "\n… and {} more", es.len() - TOOLTIP_RECORDS);
        }
        s
    }

    /// SVG: one row per lane, time left to right (ms from the first entry).
    pub fn to_svg(&self, title: &str) -> String {
        let mut lanes: Vec<Lane> = self.entries.iter().map(|e| e.lane.clone()).collect();
        lanes.sort();
        lanes.dedup();
        let extents: Vec<(u64, u64)> = self
            .entries
            .iter()
            .map(|e| (e.start_ns, e.end_ns))
            .collect();
        let axis = TimeAxis::new(&extents, PLOT_LEFT, PLOT_RIGHT - PLOT_LEFT);
        let x = |t: u64| axis.x(t);
        let title_lines = wrap(title, ((CANVAS_W - 16.0) / TITLE_CHAR_W) as usize);
        let top = 18.0 + 18.0 * title_lines.len() as f64 + 10.0;
        let axis_y = top + LANE_H * lanes.len() as f64 + 6.0;
        let height = axis_y + 44.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{CANVAS_W}" height="{height}" viewBox="0 0 {CANVAS_W} {height}" font-family="monospace" font-size="10">"#
        );
        let _ = writeln!(s, r#"<title>{}</title>"#, esc(title));
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        for (i, line) in title_lines.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="8" y="{}" font-size="14">{}</text>"#,
                18.0 + 18.0 * i as f64,
                esc(line)
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="8" y="{}" fill="#4a5568">time from the first record; a band with a count stands for records too close to draw apart; hover a mark for the full record</text>"##,
            top - 10.0
        );
        // Host actions shade every lane: what happened during them.
        for e in self.entries.iter().filter(|e| e.lane == Lane::Host) {
            let (xa, xb) = (x(e.start_ns), x(e.end_ns));
            let _ = writeln!(
                s,
                r##"<rect x="{xa:.1}" y="{top}" width="{:.1}" height="{}" fill="#2f855a" opacity="0.07"/>"##,
                (xb - xa).max(1.0),
                axis_y - top
            );
        }
        Self::breaks_svg(&mut s, &axis, top, axis_y);
        for (i, lane) in lanes.iter().enumerate() {
            let y = top + LANE_H * i as f64;
            self.lane_svg(&mut s, lane, y, &axis);
        }
        Self::axis_svg(&mut s, &axis, axis_y);
        s.push_str("</svg>\n");
        s
    }

    /// One lane at `y`: its name, its marks and their labels.
    fn lane_svg(&self, s: &mut String, lane: &Lane, y: f64, axis: &TimeAxis) {
        let (t0, x) = (axis.t0, |t: u64| axis.x(t));
        let colour = lane.colour();
        let mid = y + LANE_H / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="8" y="{:.1}">{}</text>"#,
            mid + 3.0,
            esc(&lane.label())
        );
        let _ = writeln!(
            s,
            r##"<line x1="{PLOT_LEFT}" y1="{mid:.1}" x2="{PLOT_RIGHT}" y2="{mid:.1}" stroke="#e2e8f0"/>"##
        );
        let mut es: Vec<&Entry> = self.entries.iter().filter(|e| &e.lane == lane).collect();
        es.sort_by_key(|e| (e.start_ns, e.end_ns));
        let extents: Vec<(f64, f64)> = es.iter().map(|e| (x(e.start_ns), x(e.end_ns))).collect();
        let marks = cluster::cluster(&extents, MIN_MARK_W, CLUSTER_GAP);
        let (band_y, band_h) = (mid - 7.0, 14.0);
        for m in &marks {
            let members: Vec<&Entry> = m.members.iter().map(|&k| es[k]).collect();
            Self::mark_svg(s, m, &members, colour, band_y, band_h, t0);
        }
        let labels: Vec<(f64, String)> = marks
            .iter()
            .map(|m| {
                let text = if m.is_cluster() {
                    let a = es[m.members[0]].start_ns;
                    let b = m.members.iter().map(|&k| es[k].end_ns).max().unwrap_or(a);
                    format!(
                        "{}× {}: {}",
                        m.members.len(),
                        duration(b - a),
                        cluster::kinds_summary(m.members.iter().map(|&k| es[k].kind()), 3)
                    )
                } else {
                    es[m.members[0]].label.clone()
                };
                (m.xa, text)
            })
            .collect();
        let placed = cluster::place_labels(&labels, 2, CANVAS_W - 4.0, CHAR_W);
        for ((lx, _), p) in labels.iter().zip(placed) {
            let Some(p) = p else { continue };
            let ty = if p.row == 0 {
                band_y - 4.0
            } else {
                band_y + band_h + 11.0
            };
            let _ = writeln!(
                s,
                r#"<text x="{lx:.1}" y="{ty:.1}" fill="{colour}">{}</text>"#,
                esc(&p.text)
            );
        }
    }

    /// One mark: a line (instant), a box (span), or a cluster band with a
    /// tick per pixel column that has records.
    fn mark_svg(
        s: &mut String,
        m: &Mark,
        es: &[&Entry],
        colour: &str,
        band_y: f64,
        band_h: f64,
        t0: u64,
    ) {
        if m.is_cluster() {
            let _ = writeln!(
                s,
                r#"<g><title>{}</title><rect x="{:.1}" y="{band_y:.1}" width="{:.1}" height="{band_h}" fill="{colour}" opacity="0.18"/>"#,
                esc(&Self::tooltip_cluster(es, t0)),
                m.xa - 1.0,
                (m.xb - m.xa + 2.0).max(3.0)
            );
            // Ticks at the pixel columns the records fall in (so a dense run
            // shows its rhythm; the count is bounded by the width).
            let scale = (m.xb - m.xa).max(f64::MIN_POSITIVE);
            let (a, b) = (
                es.iter().map(|e| e.start_ns).min().unwrap_or(0),
                es.iter().map(|e| e.start_ns).max().unwrap_or(0),
            );
            let mut cols: Vec<i64> = es
                .iter()
                .map(|e| {
                    let f = if b > a {
                        (e.start_ns - a) as f64 / (b - a) as f64
                    } else {
                        0.0
                    };
                    (m.xa + f * scale).round() as i64
                })
                .collect();
            cols.dedup();
            for c in cols {
                let _ = write!(
                    s,
                    r#"<line x1="{c}" y1="{band_y:.1}" x2="{c}" y2="{:.1}" stroke="{colour}" stroke-width="1"/>"#,
                    band_y + band_h
                );
            }
            s.push_str("</g>\n");
            return;
        }
        let e = es[0];
        let tip = esc(&Self::tooltip_one(e, t0));
        if e.end_ns > e.start_ns {
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" opacity="0.6"><title>{tip}</title></rect>"#,
                m.xa,
                band_y + 2.0,
                (m.xb - m.xa).max(1.5),
                band_h - 4.0
            );
        } else {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" y1="{band_y:.1}" x2="{0:.1}" y2="{1:.1}" stroke="{colour}" stroke-width="2"><title>{tip}</title></line>"#,
                m.xa,
                band_y + band_h
            );
        }
    }

    /// The breaks of the time axis: a gap across every lane (under the
    /// marks and labels) and "idle N ms" under the axis.
    fn breaks_svg(s: &mut String, axis: &TimeAxis, top: f64, y: f64) {
        for (&(a, b), i) in axis.breaks.iter().zip(0..) {
            let (xa, xb) = (axis.x(a), axis.x(b));
            let (ga, gb, mid) = (xa + 1.0, xb - 1.0, (xa + xb) / 2.0);
            let (gw, gh, ty) = (xb - xa - 2.0, y - top, y + 30.0 + 10.0 * (i % 2) as f64);
            let idle = duration(b - a);
            let _ = writeln!(
                s,
                r##"<rect x="{ga:.1}" y="{top}" width="{gw:.1}" height="{gh:.1}" fill="#f7fafc"/><line x1="{ga:.1}" y1="{top}" x2="{ga:.1}" y2="{y}" stroke="#a0aec0" stroke-dasharray="3,3"/><line x1="{gb:.1}" y1="{top}" x2="{gb:.1}" y2="{y}" stroke="#a0aec0" stroke-dasharray="3,3"/><text x="{mid:.1}" y="{ty}" text-anchor="middle" fill="#4a5568">idle {idle}</text>"##
            );
        }
    }

    /// The time axis with round tick values, and where the run resumes
    /// after each break.
    fn axis_svg(s: &mut String, axis: &TimeAxis, y: f64) {
        let _ = writeln!(
            s,
            r#"<line x1="{PLOT_LEFT}" y1="{y}" x2="{PLOT_RIGHT}" y2="{y}" stroke="black"/>"#
        );
        let (step, ticks) = axis.ticks(10);
        // Decimals of a ms the step needs (1 ms: 0, 0.2 ms: 1, ...).
        let decimals = (0..6)
            .find(|d| step % (1_000_000 / 10u64.pow(*d)) == 0)
            .unwrap_or(6) as usize;
        let label = |t: u64, d: usize| format!("{:.d$}", (t - axis.t0) as f64 / 1e6);
        let tick = |s: &mut String, t: u64, text: String| {
            let tx = axis.x(t);
            let _ = writeln!(
                s,
                r#"<line x1="{tx:.1}" y1="{y}" x2="{tx:.1}" y2="{}" stroke="black"/><text x="{tx:.1}" y="{}" text-anchor="middle">{}</text>"#,
                y + 4.0,
                y + 16.0,
                esc(&text)
            );
        };
        // Where the run resumes after a break, unless a round tick is there.
        for &(_, b) in &axis.breaks {
            if !ticks.contains(&b) {
                tick(s, b, label(b, decimals.max(2)));
            }
        }
        for t in ticks {
            // Keep clear of a resume label just drawn.
            if axis
                .breaks
                .iter()
                .any(|&(_, b)| t != b && (axis.x(t) - axis.x(b)).abs() < 36.0)
            {
                continue;
            }
            let mut text = label(t, decimals);
            if t == axis.t0 {
                text.push_str(" ms");
            }
            tick(s, t, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secondary_mmu::KvmEventKind;

    #[test]
    fn svg_has_lanes_and_escapes() {
        let mut t = Timeline::default();
        t.instant(Lane::Guest(0), 1_000, "WRITE p0 <1>");
        t.span(Lane::Host, 2_000, 5_000, "MADV_DONTNEED");
        t.instant(Lane::Kvm, 3_000, "unmap");
        let s = t.to_svg("dontneed");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("vCPU 0") && s.contains("KVM") && s.contains("&lt;1&gt;"));
    }

    /// A dense burst of KVM records (as exclusive-thp's fault-in of 512
    /// pages) is one band with a count, not 1000 overprinted labels.
    #[test]
    fn dense_kvm_burst_is_one_cluster_with_a_count() {
        let mut t = Timeline::default();
        t.span(Lane::Host, 0, 1_000_000, "make-exclusive");
        for i in 0..1000u64 {
            let e = KvmEvent {
                time_ns: 2_000_000 + i * 1_000,
                tid: 1,
                cpu: 0,
                kind: KvmEventKind::TdpSpteChanged {
                    gfn: 0x200 + i,
                    level: 1,
                    old_spte: 1 << 63,
                    new_spte: 0x3376_7e67,
                },
            };
            t.kvm_event(&e, &|_, _| None);
        }
        t.instant(Lane::Kvm, 20_000_000, "unmap gfn 0x204");
        let s = t.to_svg("exclusive-thp");
        assert!(s.contains("1000× 999 µs: 1000 SPTE"), "{s}");
        assert!(s.contains("KVM: 1000 records in 999 µs"));
        assert!(s.contains("… and 960 more"));
        assert!(s.contains(">unmap gfn 0x204<"));
        // No Debug strings; no text starts beyond the canvas.
        assert!(!s.contains("TdpSpteChanged {"));
        for part in s.split("<text x=\"").skip(1) {
            let v: f64 = part.split('"').next().unwrap().parse().unwrap();
            assert!((0.0..CANVAS_W).contains(&v), "text at x={v}");
        }
        // Bounded size: not one element per record.
        assert!(s.len() < 40_000, "{} bytes", s.len());
    }

    #[test]
    fn single_records_have_full_tooltips() {
        let mut t = Timeline::default();
        t.span(Lane::Guest(1), 0, 4_000_000, "INC_LOOP p4 -> 0x6c");
        t.instant_detail(
            Lane::Kvm,
            1_000_000,
            "SPTE gfn 0x204: pfn 0x1 W -> none".into(),
            "old 0x1e67\nnew none".into(),
        );
        let s = t.to_svg("t");
        assert!(s.contains(
            "<title>vCPU 1, 0.000 ms - 4.000 ms (4.0 ms)\nINC_LOOP p4 -&gt; 0x6c</title>"
        ));
        assert!(s.contains("<title>KVM, at 1.000 ms\nSPTE gfn 0x204: pfn 0x1 W -&gt; none\nold 0x1e67\nnew none</title>"));
        // Round ticks: 0 ms, 0.5, 1, ... 4.
        assert!(
            s.contains(">0.0 ms</text>") && s.contains(">0.5</text>") && s.contains(">4.0</text>"),
            "{s}"
        );
    }

    #[test]
    fn idle_stretches_become_breaks() {
        let ms = 1_000_000;
        let mut t = Timeline::default();
        t.instant(
            Lane::Kvm,
            0,
            "a long label that would run far to the right of its mark",
        );
        t.instant(Lane::Kvm, ms, "b");
        t.instant(Lane::Kvm, 50 * ms, "c");
        let s = t.to_svg("t");
        assert!(s.contains(">idle 49 ms</text>"), "{s}");
        // Resumes at 50 ms: its own tick.
        assert!(s.contains(">50.0</text>"), "{s}");
        // The break is drawn under the lane: labels stay whole on top.
        assert!(s.find("idle 49 ms").unwrap() < s.find(">a long label").unwrap());
        assert!(s.contains(">b<") && s.contains(">c<"));
    }

    #[test]
    fn long_titles_wrap_inside_the_canvas() {
        let w = wrap(
            "exclusive-pte-state (the PTE restored from an exclusive entry: dirty, soft-dirty)",
            30,
        );
        assert!(w.len() > 1 && w.iter().all(|l| l.chars().count() <= 30));
        assert_eq!(
            w.join(" "),
            "exclusive-pte-state (the PTE restored from an exclusive entry: dirty, soft-dirty)"
        );
        assert_eq!(duration(999), "999 ns");
        assert_eq!(duration(588_000), "588 µs");
        assert_eq!(duration(1_500), "1.5 µs");
        assert_eq!(duration(24_100_000), "24 ms");
        assert_eq!(duration(15_020_000_000), "15 s");
    }
}
