//! One time axis for a drill: guest ucalls, host actions (conversions,
//! madvise, ...), KVM's MMU events, notifier events and pagemap states;
//! rendered as hand-written SVG.

use std::fmt::Write;

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
    pub label: String,
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

impl Timeline {
    pub fn instant(&mut self, lane: Lane, t: u64, label: impl Into<String>) {
        self.entries.push(Entry {
            lane,
            start_ns: t,
            end_ns: t,
            label: label.into(),
        });
    }
    pub fn span(&mut self, lane: Lane, start: u64, end: u64, label: impl Into<String>) {
        self.entries.push(Entry {
            lane,
            start_ns: start,
            end_ns: end.max(start),
            label: label.into(),
        });
    }

    /// SVG: one row per lane, time left to right (ms from the first entry).
    pub fn to_svg(&self, title: &str) -> String {
        let mut lanes: Vec<Lane> = self.entries.iter().map(|e| e.lane.clone()).collect();
        lanes.sort();
        lanes.dedup();
        let t0 = self.entries.iter().map(|e| e.start_ns).min().unwrap_or(0);
        let t1 = self
            .entries
            .iter()
            .map(|e| e.end_ns)
            .max()
            .unwrap_or(0)
            .max(t0 + 1);
        let (left, width, row) = (90.0, 1100.0, 46.0);
        let height = 60.0 + row * lanes.len() as f64 + 30.0;
        let x = |t: u64| left + (t - t0) as f64 / (t1 - t0) as f64 * width;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="monospace" font-size="10">"#,
            left + width + 20.0
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="8" y="18" font-size="14">{}</text>"#,
            esc(title)
        );
        for (i, lane) in lanes.iter().enumerate() {
            let y = 50.0 + row * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="8" y="{}">{}</text>"#,
                y + 14.0,
                esc(&lane.label())
            );
            let _ = writeln!(
                s,
                r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#e2e8f0"/>"##,
                y + 10.0,
                left + width
            );
            for (k, e) in self.entries.iter().filter(|e| &e.lane == lane).enumerate() {
                let (xa, xb) = (x(e.start_ns), x(e.end_ns));
                let ty = y + if k % 2 == 0 { 2.0 } else { 32.0 };
                if e.end_ns > e.start_ns {
                    let _ = writeln!(
                        s,
                        r#"<rect x="{xa:.1}" y="{}" width="{:.1}" height="12" fill="{}" opacity="0.6"><title>{}</title></rect>"#,
                        y + 4.0,
                        (xb - xa).max(1.0),
                        lane.colour(),
                        esc(&e.label)
                    );
                } else {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{xa:.1}" y1="{}" x2="{xa:.1}" y2="{}" stroke="{}" stroke-width="2"><title>{}</title></line>"#,
                        y + 2.0,
                        y + 18.0,
                        lane.colour(),
                        esc(&e.label)
                    );
                }
                let short: String = e.label.chars().take(28).collect();
                let _ = writeln!(
                    s,
                    r#"<text x="{xa:.1}" y="{ty}" fill="{}">{}</text>"#,
                    lane.colour(),
                    esc(&short)
                );
            }
        }
        let ya = 50.0 + row * lanes.len() as f64 + 10.0;
        let _ = writeln!(
            s,
            r#"<line x1="{left}" y1="{ya}" x2="{}" y2="{ya}" stroke="black"/>"#,
            left + width
        );
        for k in 0..=10 {
            let t = t0 + (t1 - t0) * k / 10;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}">{:.3} ms</text>"#,
                x(t) - 10.0,
                ya + 14.0,
                (t - t0) as f64 / 1e6
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
