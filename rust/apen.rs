//! Exact-match (r = 0) approximate entropy of one sequence, after Pincus (1991).
//!
//! With W = N - L + 1 windows of length L and c(w) the number of windows equal
//! to w (self-matches included),
//!   Phi^L = mean_i ln(c(w_i) / W) = (1/W) * sum_w c(w) ln c(w) - ln W,
//! and ApEn(m) = Phi^m - Phi^(m+1). Windows are counted in O(N) per level by
//! giving every distinct window of length L a dense id, built from the id of
//! its length-(L-1) prefix and the rank of its last item, so that ids of any
//! size compare exactly and only one logarithm is taken per distinct window.

use crate::dense::DenseIds;

/// Per-worker scratch space, reused across sequences.
#[derive(Default)]
pub struct Scratch {
    dense: DenseIds,
    ranks: Vec<u32>,
    ids: Vec<u32>,
    counts: Vec<u32>,
}

/// Signed ApEn(m) of `seq`; NaN when the sequence has at most `m` items.
pub fn apen(seq: &[i64], m: usize, scratch: &mut Scratch) -> f64 {
    let n = seq.len();
    if m == 0 || n <= m {
        return f64::NAN;
    }
    let distinct_items = rank_items(seq, scratch);
    if distinct_items == n {
        // No repeated item, so no repeated window of any length.
        return apen_without_repeats(n, m);
    }
    let mut sum_m = 0.0;
    let mut sum_m1 = 0.0;
    for level in 1..=m + 1 {
        let distinct = if level == 1 {
            distinct_items
        } else {
            extend_windows(level, distinct_items, scratch)
        };
        if distinct == n - level + 1 {
            break; // every longer window is distinct too: both remaining sums are 0
        }
        if level == m {
            sum_m = sum_c_ln_c(&scratch.ids, distinct, &mut scratch.counts);
        } else if level == m + 1 {
            sum_m1 = sum_c_ln_c(&scratch.ids, distinct, &mut scratch.counts);
        }
    }
    phi(sum_m, n - m + 1) - phi(sum_m1, n - m)
}

/// ApEn of a sequence of `n` distinct items: ln((N - m) / (N - m + 1)).
pub fn apen_without_repeats(n: usize, m: usize) -> f64 {
    phi(0.0, n - m + 1) - phi(0.0, n - m)
}

/// Phi for `windows` windows whose counts give `sum_c_ln_c`.
fn phi(sum_c_ln_c: f64, windows: usize) -> f64 {
    let w = windows as f64;
    sum_c_ln_c / w - w.ln()
}

/// Dense rank of each item in first-seen order; returns the number of distinct items.
fn rank_items(seq: &[i64], scratch: &mut Scratch) -> usize {
    scratch.dense.reset(seq.len());
    scratch.ranks.clear();
    // the bit pattern of the id is the key: exact for every i64
    scratch
        .ranks
        .extend(seq.iter().map(|&item| scratch.dense.id(item as u64)));
    scratch.ids.clear();
    scratch.ids.extend_from_slice(&scratch.ranks);
    scratch.dense.len()
}

/// Turns the ids of windows of length `level - 1` into ids of windows of
/// length `level`, in place; returns the number of distinct windows.
fn extend_windows(level: usize, distinct_items: usize, scratch: &mut Scratch) -> usize {
    let windows = scratch.ranks.len() - level + 1;
    scratch.dense.reset(windows);
    let tail = &scratch.ranks[level - 1..];
    for (id, &last) in scratch.ids[..windows].iter_mut().zip(tail) {
        // prefix id < N and rank < N, so the code fits in 64 bits for N < 2^32
        *id = scratch
            .dense
            .id(*id as u64 * distinct_items as u64 + last as u64);
    }
    scratch.ids.truncate(windows);
    scratch.dense.len()
}

/// sum over distinct windows of c ln c, with one logarithm per repeated window.
fn sum_c_ln_c(ids: &[u32], distinct: usize, counts: &mut Vec<u32>) -> f64 {
    counts.clear();
    counts.resize(distinct, 0);
    for &id in ids {
        counts[id as usize] += 1;
    }
    counts
        .iter()
        .filter(|&&c| c > 1)
        .map(|&c| c as f64 * (c as f64).ln())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pincus' definition read literally: O(N^2) comparisons of windows.
    fn apen_naive(seq: &[i64], m: usize) -> f64 {
        let phi = |len: usize| {
            let windows = seq.len() - len + 1;
            let mut total = 0.0;
            for i in 0..windows {
                let matches = (0..windows)
                    .filter(|&j| seq[i..i + len] == seq[j..j + len])
                    .count();
                total += (matches as f64 / windows as f64).ln();
            }
            total / windows as f64
        };
        phi(m) - phi(m + 1)
    }

    fn pseudo_random(n: usize, alphabet: i64, seed: u64) -> Vec<i64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % alphabet as u64) as i64
            })
            .collect()
    }

    #[test]
    fn matches_the_naive_definition() {
        let mut scratch = Scratch::default();
        for seed in 0..50 {
            for &(n, alphabet) in &[(5, 2), (30, 3), (64, 10), (100, 100), (7, 1)] {
                let seq = pseudo_random(n, alphabet, seed);
                for m in 1..4 {
                    if n <= m {
                        continue;
                    }
                    let fast = apen(&seq, m, &mut scratch);
                    let slow = apen_naive(&seq, m);
                    assert!(
                        (fast - slow).abs() < 1e-12,
                        "seq={seq:?} m={m}: {fast} vs {slow}"
                    );
                }
            }
        }
    }

    #[test]
    fn closed_form_without_repeats() {
        let mut scratch = Scratch::default();
        let seq: Vec<i64> = (0..20).collect();
        let expected = (18.0f64 / 19.0).ln();
        assert!((apen(&seq, 2, &mut scratch) - expected).abs() < 1e-15);
    }

    #[test]
    fn constant_sequence_has_zero_apen_and_short_ones_are_nan() {
        let mut scratch = Scratch::default();
        assert!(apen(&[4; 30], 2, &mut scratch).abs() < 1e-12);
        assert!(apen(&[1, 2], 2, &mut scratch).is_nan());
        assert!(apen(&[1, 2, 3], 0, &mut scratch).is_nan());
    }

    #[test]
    fn huge_ids_compare_exactly() {
        // These two ids are equal once converted to f64, but differ as integers.
        let a = i64::MAX;
        let b = i64::MAX - 1;
        assert_eq!(a as f64, b as f64);
        let mut scratch = Scratch::default();
        let mixed = apen(&[a, b, a, b, a, b], 1, &mut scratch);
        let same = apen(&[a, a, a, a, a, a], 1, &mut scratch);
        assert!((mixed - apen_naive(&[a, b, a, b, a, b], 1)).abs() < 1e-12);
        assert!(same.abs() < 1e-12 && (mixed - same).abs() > 1e-3);
    }
}
