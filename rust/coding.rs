//! Lempel-Ziv match lengths for the entropy-rate estimate of one sequence.
//!
//! Lambda_i is the length of the shortest substring starting at i that does
//! not occur starting at any earlier position j < i (LZ77 semantics: the
//! earlier occurrence may run into position i). Then
//!   Lambda_i = LPF[i] + 1,
//! where LPF[i], the longest previous factor, is the longest common prefix of
//! suffix i with any suffix j < i. The estimate of the entropy rate is
//! E = ln N / mean_i Lambda_i (Kontoyiannis et al., 1998).
//!
//! LPF is computed from the suffix array: among the suffixes that start
//! before i, the longest match is with the nearest one on either side of i
//! in suffix-array order. Suffix array by prefix doubling (O(N log^2 N)),
//! LCP by Kasai, LPF with two monotone stacks: near-linear overall.
//!
//! Most real sequences repeat few items, and then a direct scan is much
//! cheaper: each position is compared only with the earlier positions holding
//! the same item. That scan runs under a budget of comparisons linear in N;
//! a sequence that exhausts it (long repeats) goes to the suffix array, so the
//! worst case stays near-linear.

/// Per-worker scratch space, reused across sequences.
#[derive(Default)]
pub struct Scratch {
    dense: crate::dense::DenseIds,
    text: Vec<u32>,
    sa: Vec<u32>,
    rank: Vec<u32>,
    tmp: Vec<u32>,
    lcp: Vec<u32>,
    lpf: Vec<u32>,
    stack: Vec<(u32, u32)>,
    previous: Vec<u32>,
    last_seen: Vec<u32>,
}

/// Comparisons per item the direct scan may spend before it gives up.
const SCAN_BUDGET_PER_ITEM: usize = 8;
const NONE: u32 = u32::MAX;

/// sum_i Lambda_i over the sequence (0 for an empty one).
pub fn lz_lambda_sum(seq: &[i64], scratch: &mut Scratch) -> u64 {
    if seq.is_empty() {
        return 0;
    }
    let distinct = dense_text(seq, scratch);
    if distinct == seq.len() {
        return seq.len() as u64; // nothing recurs: every Lambda_i is 1
    }
    if !scan_previous_occurrences(scratch, distinct, SCAN_BUDGET_PER_ITEM * seq.len()) {
        suffix_array(scratch);
        kasai_lcp(scratch);
        longest_previous_factor(scratch);
    }
    scratch.lpf.iter().map(|&l| l as u64 + 1).sum()
}

/// LPF by comparing each position with every earlier position holding the
/// same item. Returns false, leaving `lpf` incomplete, once the comparisons
/// exceed the budget.
fn scan_previous_occurrences(s: &mut Scratch, distinct: usize, mut budget: usize) -> bool {
    let n = s.text.len();
    s.last_seen.clear();
    s.last_seen.resize(distinct, NONE);
    s.previous.clear();
    for (i, &symbol) in s.text.iter().enumerate() {
        s.previous.push(s.last_seen[symbol as usize]);
        s.last_seen[symbol as usize] = i as u32;
    }
    s.lpf.clear();
    s.lpf.resize(n, 0);
    for i in 0..n {
        let mut best = 0;
        let mut j = s.previous[i];
        while j != NONE {
            let j_usize = j as usize;
            let mut length = 0;
            while i + length < n && s.text[j_usize + length] == s.text[i + length] {
                length += 1;
            }
            best = best.max(length);
            budget = match budget.checked_sub(length + 1) {
                Some(left) => left,
                None => return false,
            };
            j = s.previous[j_usize];
        }
        s.lpf[i] = best as u32;
    }
    true
}

/// Item ids as dense u32 symbols in first-seen order; returns how many are distinct.
fn dense_text(seq: &[i64], s: &mut Scratch) -> usize {
    s.dense.reset(seq.len());
    s.text.clear();
    s.text
        .extend(seq.iter().map(|&item| s.dense.id(item as u64)));
    s.dense.len()
}

/// Prefix doubling: sort suffixes by their first 2k symbols until all ranks differ.
fn suffix_array(s: &mut Scratch) {
    let n = s.text.len();
    s.sa.clear();
    s.sa.extend(0..n as u32);
    s.rank.clear();
    s.rank.extend_from_slice(&s.text);
    s.tmp.clear();
    s.tmp.resize(n, 0);
    let mut k = 1usize;
    loop {
        let rank = &s.rank;
        // (rank of the first k symbols, rank of the next k + 1, or 0 past the end)
        let key = |i: u32| {
            let i = i as usize;
            let second = if i + k < n { rank[i + k] as u64 + 1 } else { 0 };
            ((rank[i] as u64) << 32) | second
        };
        s.sa.sort_unstable_by_key(|&i| key(i));
        s.tmp[s.sa[0] as usize] = 0;
        for j in 1..n {
            let step = (key(s.sa[j]) != key(s.sa[j - 1])) as u32;
            s.tmp[s.sa[j] as usize] = s.tmp[s.sa[j - 1] as usize] + step;
        }
        std::mem::swap(&mut s.rank, &mut s.tmp);
        if s.rank[s.sa[n - 1] as usize] as usize == n - 1 || k >= n {
            break;
        }
        k *= 2;
    }
}

/// lcp[r] = longest common prefix of the suffixes at ranks r - 1 and r (lcp[0] = 0).
fn kasai_lcp(s: &mut Scratch) {
    let n = s.text.len();
    s.lcp.clear();
    s.lcp.resize(n, 0);
    let mut h = 0usize;
    for i in 0..n {
        let r = s.rank[i] as usize;
        if r == 0 {
            h = 0;
            continue;
        }
        let j = s.sa[r - 1] as usize;
        while i + h < n && j + h < n && s.text[i + h] == s.text[j + h] {
            h += 1;
        }
        s.lcp[r] = h as u32;
        h = h.saturating_sub(1);
    }
}

/// LPF[i] = max LCP of suffix i with the nearest earlier-starting suffix on
/// each side in suffix-array order. Each stack entry holds (position, min lcp
/// from that entry's rank up to the entry above it), so popping folds minima.
fn longest_previous_factor(s: &mut Scratch) {
    let n = s.text.len();
    s.lpf.clear();
    s.lpf.resize(n, 0);
    for pass in 0..2 {
        s.stack.clear();
        for step in 0..n {
            let r = if pass == 0 { step } else { n - 1 - step };
            // lcp between rank r and its neighbour processed just before it
            let link = match (pass, step) {
                (_, 0) => 0,
                (0, _) => s.lcp[r],
                _ => s.lcp[r + 1],
            };
            if let Some(top) = s.stack.last_mut() {
                top.1 = top.1.min(link);
            }
            let position = s.sa[r];
            while let Some(&(top_position, top_min)) = s.stack.last() {
                if top_position < position {
                    break;
                }
                s.stack.pop();
                if let Some(below) = s.stack.last_mut() {
                    below.1 = below.1.min(top_min);
                }
            }
            if let Some(&(_, match_len)) = s.stack.last() {
                let slot = &mut s.lpf[position as usize];
                *slot = (*slot).max(match_len);
            }
            s.stack.push((position, u32::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lambda_i by direct search: grow the substring at i until no earlier start matches it.
    fn lambda_sum_naive(seq: &[i64]) -> u64 {
        let n = seq.len();
        (0..n)
            .map(|i| {
                let mut length = 1;
                while i + length <= n
                    && (0..i).any(|j| j + length <= n && seq[j..j + length] == seq[i..i + length])
                {
                    length += 1;
                }
                length as u64
            })
            .sum()
    }

    #[test]
    fn matches_direct_search() {
        let mut scratch = Scratch::default();
        let mut state = 7u64;
        for n in [1usize, 2, 3, 10, 50, 200] {
            for alphabet in [1u64, 2, 3, 50] {
                let seq: Vec<i64> = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((state >> 33) % alphabet) as i64
                    })
                    .collect();
                assert_eq!(
                    lz_lambda_sum(&seq, &mut scratch),
                    lambda_sum_naive(&seq),
                    "{seq:?}"
                );
            }
        }
    }

    #[test]
    fn scan_and_suffix_array_agree() {
        let mut state = 11u64;
        for n in [2usize, 5, 40, 300] {
            for alphabet in [2u64, 5, 40] {
                let seq: Vec<i64> = (0..n)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((state >> 33) % alphabet) as i64
                    })
                    .collect();
                let mut s = Scratch::default();
                let distinct = dense_text(&seq, &mut s);
                suffix_array(&mut s);
                kasai_lcp(&mut s);
                longest_previous_factor(&mut s);
                let by_suffix_array = s.lpf.clone();
                assert!(scan_previous_occurrences(&mut s, distinct, usize::MAX));
                assert_eq!(s.lpf, by_suffix_array, "{seq:?}");
            }
        }
    }

    #[test]
    fn distinct_items_give_lambda_one() {
        let seq: Vec<i64> = (0..100).rev().collect();
        assert_eq!(lz_lambda_sum(&seq, &mut Scratch::default()), 100);
    }

    #[test]
    fn long_repeats_exhaust_the_scan_budget_and_fall_back() {
        let seq = [9i64; 400];
        let mut s = Scratch::default();
        let distinct = dense_text(&seq, &mut s);
        assert!(!scan_previous_occurrences(
            &mut s,
            distinct,
            SCAN_BUDGET_PER_ITEM * seq.len()
        ));
        assert_eq!(lz_lambda_sum(&seq, &mut s), lambda_sum_naive(&seq));
    }

    #[test]
    fn constant_sequence() {
        // Lambda_0 = 1, and for i > 0 the rest matches from i - 1 to the end: n - i + 1.
        let n = 6u64;
        let expected = 1 + (1..n).map(|i| n - i + 1).sum::<u64>();
        assert_eq!(lz_lambda_sum(&[3; 6], &mut Scratch::default()), expected);
    }
}
