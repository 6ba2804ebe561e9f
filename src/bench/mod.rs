//! Benchmarks: figures, never assertions, each next to a peer measured in
//! the same run where one exists (`mmuvisor bench NAME`; the CLI is in
//! src/commands/bench.rs). Speed targets are checked here, not by timed
//! tests.

pub mod convert;
pub mod convert_rate;
pub mod drill;
pub mod lab;
pub mod setup;

/// The p-th percentile (0..=100) of `samples`, which it sorts; 0 when empty.
pub fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let i = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[i.min(samples.len() - 1)]
}

/// The median of `samples` (the upper one of an even count).
pub fn median<T: Ord + Copy + Default>(mut samples: Vec<T>) -> T {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut v = vec![5, 1, 4, 2, 3];
        assert_eq!(percentile(&mut v, 50.0), 3);
        assert_eq!(percentile(&mut v, 0.0), 1);
        assert_eq!(percentile(&mut v, 100.0), 5);
        assert_eq!(percentile(&mut [], 50.0), 0);
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median::<u64>(vec![]), 0);
    }
}
