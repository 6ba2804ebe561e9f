//! Shrinks a failing sequence: delta debugging (ddmin) over its steps, then
//! single steps one at a time, keeping every candidate that still fails the
//! same way. Each candidate costs one run, so the budget is bounded.

/// The shortest sub-sequence of `seq` found (in at most `budget` runs)
/// for which `fails` still holds. `fails(seq)` must hold on entry.
pub fn shrink<T: Clone>(seq: &[T], budget: usize, mut fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut cur = seq.to_vec();
    let mut runs = 0;
    let mut try_it = |cand: &[T], runs: &mut usize| {
        *runs += 1;
        fails(cand)
    };
    let mut chunks = 2usize;
    while cur.len() >= 2 && runs < budget {
        let size = cur.len().div_ceil(chunks);
        let mut reduced = false;
        let mut start = 0;
        while start < cur.len() && runs < budget {
            // The sequence without chunk [start, start + size).
            let cand: Vec<T> = cur[..start]
                .iter()
                .chain(cur[(start + size).min(cur.len())..].iter())
                .cloned()
                .collect();
            if !cand.is_empty() && try_it(&cand, &mut runs) {
                cur = cand;
                reduced = true;
            } else {
                start += size;
            }
        }
        if reduced {
            chunks = chunks.saturating_sub(1).max(2);
        } else if size == 1 {
            break;
        } else {
            chunks = (chunks * 2).min(cur.len());
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_failing_sequence_shrinks_to_the_steps_that_matter() {
        // Fails when a 3 is followed, later, by a 7 and then a 9: 200 steps
        // of noise around them.
        let mut seq: Vec<u32> = (0..200).map(|i| 10 + i % 50).collect();
        seq[31] = 3;
        seq[120] = 7;
        seq[177] = 9;
        let fails = |s: &[u32]| {
            let a = s.iter().position(|&x| x == 3);
            let b = s.iter().rposition(|&x| x == 7);
            let c = s.iter().rposition(|&x| x == 9);
            matches!((a, b, c), (Some(a), Some(b), Some(c)) if a < b && b < c)
        };
        assert!(fails(&seq));
        let mut runs = 0;
        let small = shrink(&seq, 1000, |s| {
            runs += 1;
            fails(s)
        });
        assert_eq!(small, vec![3, 7, 9]);
        assert!(runs < 200, "{runs} runs");
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let seq: Vec<u32> = (0..100).collect();
        let mut runs = 0;
        let small = shrink(&seq, 5, |s| {
            runs += 1;
            s.contains(&42)
        });
        assert!(runs <= 5);
        assert!(small.contains(&42));
    }
}
