//! The timeline's time axis: linear, except that long stretches where
//! nothing was recorded shrink to a fixed-width break ("idle 24.1 ms"), so
//! the busy parts keep the canvas.

/// Gaps longer than this share of the whole run become breaks.
const BREAK_SHARE: f64 = 0.12;
/// Width of a break, pixels.
pub const BREAK_W: f64 = 40.0;

#[derive(Debug, Clone, PartialEq)]
pub struct TimeAxis {
    pub t0: u64,
    pub t1: u64,
    /// Idle stretches `[start, end)` drawn as breaks, in order.
    pub breaks: Vec<(u64, u64)>,
    left: f64,
    /// Pixels per ns outside the breaks.
    scale: f64,
}

impl TimeAxis {
    /// An axis over the records' `[start, end]` extents (any order) drawn
    /// from `left` over `width` pixels.
    pub fn new(extents: &[(u64, u64)], left: f64, width: f64) -> TimeAxis {
        let mut ext: Vec<(u64, u64)> = extents.iter().map(|&(a, b)| (a, b.max(a))).collect();
        ext.sort();
        let t0 = ext.first().map(|e| e.0).unwrap_or(0);
        let t1 = ext.iter().map(|e| e.1).max().unwrap_or(0).max(t0 + 1);
        let min_gap = ((t1 - t0) as f64 * BREAK_SHARE) as u64;
        let mut breaks = Vec::new();
        let mut busy_end = t0;
        for &(a, b) in &ext {
            if a > busy_end && a - busy_end > min_gap {
                breaks.push((busy_end, a));
            }
            busy_end = busy_end.max(b);
        }
        // Never let breaks eat the canvas.
        breaks.truncate(((width / 4.0) / BREAK_W) as usize);
        let idle: u64 = breaks.iter().map(|(a, b)| b - a).sum();
        let shown = (t1 - t0 - idle).max(1) as f64;
        let scale = (width - BREAK_W * breaks.len() as f64) / shown;
        TimeAxis {
            t0,
            t1,
            breaks,
            left,
            scale,
        }
    }

    /// Pixel of time `t` (a time inside a break maps into the break).
    pub fn x(&self, t: u64) -> f64 {
        let t = t.clamp(self.t0, self.t1);
        let mut x = self.left;
        let mut from = self.t0;
        for &(a, b) in &self.breaks {
            if t < a {
                break;
            }
            x += (a - from) as f64 * self.scale;
            if t < b {
                return x + (t - a) as f64 / (b - a) as f64 * BREAK_W;
            }
            x += BREAK_W;
            from = b;
        }
        x + (t - from) as f64 * self.scale
    }

    /// Round tick times (multiples of `step` from t0) outside the breaks,
    /// with at most about `max` intervals over the time shown.
    pub fn ticks(&self, max: u64) -> (u64, Vec<u64>) {
        let idle: u64 = self.breaks.iter().map(|(a, b)| b - a).sum();
        let step = crate::drill::report::cluster::nice_step(self.t1 - self.t0 - idle, max);
        let mut out = Vec::new();
        let mut t = self.t0;
        while t <= self.t1 {
            if !self.breaks.iter().any(|&(a, b)| t > a && t < b) {
                out.push(t);
            }
            // Jump over a break rather than walking through it.
            let next = t + step;
            t = match self.breaks.iter().find(|&&(a, b)| next > a && next < b) {
                Some(&(_, b)) => self.t0 + (b - self.t0).div_ceil(step) * step,
                None => next,
            };
        }
        (step, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_without_long_gaps() {
        let a = TimeAxis::new(&[(1000, 1400), (1450, 2000)], 100.0, 1000.0);
        assert!(a.breaks.is_empty());
        assert_eq!(a.x(1000), 100.0);
        assert_eq!(a.x(2000), 1100.0);
        assert_eq!(a.x(1500), 600.0);
        // Outside the range: clamped.
        assert_eq!(a.x(0), 100.0);
        assert_eq!(a.x(5000), 1100.0);
        let (step, ticks) = a.ticks(10);
        assert_eq!(step, 100);
        assert_eq!(ticks.len(), 11);
    }

    #[test]
    fn a_long_idle_stretch_becomes_a_break() {
        // Busy 0..10 ms and 60..62 ms (exclusive-thp's shape).
        let ms = 1_000_000u64;
        let a = TimeAxis::new(
            &[(0, 10 * ms), (5 * ms, 6 * ms), (60 * ms, 62 * ms)],
            0.0,
            1240.0,
        );
        assert_eq!(a.breaks, vec![(10 * ms, 60 * ms)]);
        // 12 ms shown over 1200 px: 100 px per ms; the break is 40 px.
        assert!((a.x(10 * ms) - 1000.0).abs() < 1e-6);
        assert!((a.x(60 * ms) - 1040.0).abs() < 1e-6);
        assert!((a.x(62 * ms) - 1240.0).abs() < 1e-6);
        assert!((a.x(35 * ms) - 1020.0).abs() < 1e-6);
        // x is monotonic.
        let xs: Vec<f64> = (0..=62).map(|t| a.x(t * ms)).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]));
        // Ticks skip the break: 0, 2, ... 10, then 60, 62.
        let (step, ticks) = a.ticks(10);
        assert_eq!(step, 2 * ms);
        assert!(ticks.iter().all(|&t| !(t > 10 * ms && t < 60 * ms)));
        assert_eq!(ticks.first(), Some(&0));
        assert!(ticks.contains(&(60 * ms)) && ticks.contains(&(62 * ms)));
    }

    #[test]
    fn empty_and_single_instant() {
        let a = TimeAxis::new(&[], 10.0, 100.0);
        assert_eq!((a.t0, a.t1), (0, 1));
        let a = TimeAxis::new(&[(7, 7)], 10.0, 100.0);
        assert_eq!(a.x(7), 10.0);
        assert!(a.ticks(10).1.contains(&7));
    }
}
