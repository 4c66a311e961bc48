//! Exact-match (r = 0) approximate entropy of one sequence, after Pincus (1991).
//!
//! With W = N - L + 1 windows of length L and c(w) the number of windows equal
//! to w (self-matches included),
//!   Phi^L = mean_i ln(c(w_i) / W) = (1/W) * sum_w c(w) ln c(w) - ln W,
//! and ApEn(m) = Phi^m - Phi^(m+1). Only windows seen more than once add to the
//! sums, and a window can only repeat if its prefix and its last item do, so
//! each level looks only at the starts of repeated windows of the level before:
//! items are counted in one pass over a small hash table (an item's id is its
//! slot), and each longer window gets a dense id from the id of its prefix and
//! its last item, so that ids of any size compare exactly. The terms c ln c
//! (from a table for small c) are summed in the first-seen order of the distinct
//! windows, which fixes the rounding: results are the same bits as when every
//! window of every level was counted.

use std::sync::OnceLock;

use crate::dense::{empty_slots, DenseIds, LARGE};

/// Marks a window (or item) that occurs once in its sequence.
const ONCE: u32 = u32::MAX;

/// Counts below this take c ln c from a table (the same f64 as computed each time).
const TABLE: usize = 256;

/// Longest sequence for the fast path, whose item table (an item is its slot) must stay
/// in cache: beyond it, looking up the counts of items by slot costs more than ranks.
const FAST_MAX: usize = 1 << 14;

#[derive(Clone, Copy, Default)]
struct ItemSlot {
    key: u64,
    stamp: u32, // the slot is occupied iff stamp == generation
    count: u32,
}

/// An open-addressing table that counts the items of one sequence; an item's id
/// is its slot. Reset in O(1) by bumping a generation stamp.
#[derive(Default)]
struct ItemCounts {
    slots: Vec<ItemSlot>,
    generation: u32,
    shift: u32,
    mask: usize,
}

impl ItemCounts {
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Counts the items of `seq` (n <= FAST_MAX), writes the slot of each to
    /// `slots_of`, and returns the number of distinct items.
    fn count(&mut self, seq: &[i64], slots_of: &mut Vec<u32>) -> usize {
        let spread = if seq.len() <= 128 {
            16
        } else if seq.len() <= 512 {
            8
        } else if seq.len() <= 4096 {
            4
        } else {
            2
        };
        let capacity = (seq.len().max(8) * spread).next_power_of_two();
        (self.mask, self.shift) =
            empty_slots(&mut self.slots, &mut self.generation, capacity, |s| {
                s.stamp = 0
            });
        let generation = self.generation;
        slots_of.resize(seq.len(), 0);
        let mut distinct = 0;
        if capacity >= LARGE {
            // a table beyond the caches: branches, so that a seen item writes only its count
            for (out, &item) in slots_of.iter_mut().zip(seq) {
                let key = item as u64;
                let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
                loop {
                    let slot = &mut self.slots[i];
                    if slot.stamp != generation {
                        *slot = ItemSlot {
                            key,
                            stamp: generation,
                            count: 1,
                        };
                        distinct += 1;
                        break;
                    }
                    if slot.key == key {
                        slot.count += 1;
                        break;
                    }
                    i = (i + 1) & self.mask;
                }
                *out = i as u32;
            }
            return distinct;
        }
        for (out, &item) in slots_of.iter_mut().zip(seq) {
            // the bit pattern of the id is the key: exact for every i64
            let key = item as u64;
            let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
            // probe on while the slot holds another key. Whether a slot is live is as
            // unpredictable as whether the item was seen, so the test is one value that
            // black_box keeps whole (else the compiler splits `live & other` into two
            // branches), and the update below is arithmetic, not a branch.
            let live = loop {
                let slot = &self.slots[i];
                let live = slot.stamp == generation;
                if !std::hint::black_box(live & (slot.key != key)) {
                    break live;
                }
                i = (i + 1) & self.mask;
            };
            let seen = std::hint::black_box(live);
            let slot = &mut self.slots[i];
            let count = (slot.count & (seen as u32).wrapping_neg()) + 1;
            *slot = ItemSlot {
                key,
                stamp: generation,
                count,
            };
            distinct += !seen as usize;
            *out = i as u32;
        }
        distinct
    }
}

/// Per-worker scratch space, reused across sequences.
#[derive(Default)]
pub struct Scratch {
    items: ItemCounts,
    dense: DenseIds,
    /// dense rank of the item at each position, in first-seen order
    ranks: Vec<u32>,
    counts: Vec<u32>,
    /// id among the repeated items of each rank, or ONCE
    item_ids: Vec<u32>,
    /// start positions (ascending) of the repeated windows of the current level...
    starts: Vec<u32>,
    /// ...and their ids among the repeated windows of that level, in first-seen order
    ids: Vec<u32>,
    next_starts: Vec<u32>,
    next_ids: Vec<u32>,
    codes: Vec<u64>,
    repeated: Vec<u32>,
}

/// ln k for k below TABLE, computed once.
fn ln_table() -> &'static [f64; TABLE] {
    static VALUES: OnceLock<[f64; TABLE]> = OnceLock::new();
    VALUES.get_or_init(|| std::array::from_fn(|k| (k as f64).ln()))
}

/// c ln c for the counts below TABLE, computed once.
fn c_ln_c_table() -> &'static [f64; TABLE] {
    static VALUES: OnceLock<[f64; TABLE]> = OnceLock::new();
    VALUES.get_or_init(|| std::array::from_fn(|c| c_ln_c(c as u32)))
}

/// Signed ApEn(m) of `seq`; NaN when the sequence has at most `m` items.
///
/// Only windows that occur more than once contribute to sum c ln c, and a window
/// can only repeat if its prefix and its last item do; so each level after the
/// first looks only at the starts of repeated windows of the level before (for
/// sequences of up to FAST_MAX items; longer ones count every window). The terms
/// are summed in the first-seen order of the distinct windows on every path, so
/// all paths give the same bits.
pub fn apen(seq: &[i64], m: usize, scratch: &mut Scratch) -> f64 {
    let n = seq.len();
    if m == 0 || n <= m {
        return f64::NAN;
    }
    if n > FAST_MAX {
        return apen_long(seq, m, scratch);
    }
    if m == 1 {
        return apen_ranked(seq, m, scratch);
    }
    apen_fast(seq, m, scratch)
}

/// Signed ApEn(m) of `seq` and, where the walk over repeated windows gives it
/// within its budget, the Lempel-Ziv sum of match lengths (`coding::lz_lambda_sum`).
///
/// Lambda_i - 1 is the number of lengths L whose window at i occurred at an
/// earlier start, so sum_i Lambda_i = N + sum_L (W_L - D_L), with D_L the number of
/// distinct windows of length L: the walk that counts windows for ApEn yields it
/// if it goes on, past level m + 1, while some window repeats. It gives up (None)
/// once those extra levels have looked at more than LZ_BUDGET_PER_ITEM * N
/// windows (long repeats), and on the paths other than the fast one.
pub fn apen_and_lz_sum(seq: &[i64], m: usize, scratch: &mut Scratch) -> (f64, Option<u64>) {
    let n = seq.len();
    if m >= 2 && n > m && n <= FAST_MAX {
        return walk_levels(seq, m, scratch, true);
    }
    (apen(seq, m, scratch), None)
}

/// Windows the levels past m + 1 may look at, per item, before the LZ sum is left to
/// `coding::lz_lambda_sum`.
const LZ_BUDGET_PER_ITEM: usize = 8;

/// Long sequences (beyond the caches, where most items repeat and skipping the
/// windows seen once saves little): every window of every level gets a dense id,
/// from the id of its prefix and the rank of its last item.
fn apen_long(seq: &[i64], m: usize, s: &mut Scratch) -> f64 {
    let n = seq.len();
    let table = c_ln_c_table();
    let distinct_items = rank_items(seq, s);
    if distinct_items == n {
        return apen_without_repeats(n, m);
    }
    s.ids.clear();
    s.ids.extend_from_slice(&s.ranks);
    let mut sum_m = 0.0;
    let mut sum_m1 = 0.0;
    for level in 1..=m + 1 {
        let windows = n - level + 1;
        let distinct = if level == 1 {
            distinct_items
        } else {
            s.dense.reset(windows);
            let tail = &s.ranks[level - 1..];
            for (id, &last) in s.ids[..windows].iter_mut().zip(tail) {
                // prefix id < N and rank < N, so the code fits in 64 bits for N < 2^32
                *id = s.dense.id(*id as u64 * distinct_items as u64 + last as u64);
            }
            s.ids.truncate(windows);
            s.dense.len()
        };
        if distinct == windows {
            break; // every longer window is distinct too: both remaining sums are 0
        }
        if level == m || level == m + 1 {
            s.counts.clear();
            s.counts.resize(distinct, 0);
            for &id in &s.ids {
                s.counts[id as usize] += 1;
            }
            let sum = sum_c_ln_c(&s.counts, table);
            if level == m {
                sum_m = sum;
            } else {
                sum_m1 = sum;
            }
        }
    }
    phi(sum_m, n - m + 1) - phi(sum_m1, n - m)
}

/// The fast path (m >= 2): items are told apart by their slot in a hash table
/// that also counts them, with no first-seen ranks, since only windows of length
/// m and m + 1 are summed, in the first-seen order of those windows.
fn apen_fast(seq: &[i64], m: usize, s: &mut Scratch) -> f64 {
    walk_levels(seq, m, s, false).0
}

/// The fast path's walk over the levels, with the LZ sum when `lz` (see
/// [`apen_and_lz_sum`]); without it the walk stops after level m + 1.
fn walk_levels(seq: &[i64], m: usize, s: &mut Scratch, lz: bool) -> (f64, Option<u64>) {
    let n = seq.len();
    let table = c_ln_c_table();
    let distinct_items = s.items.count(seq, &mut s.ranks);
    if distinct_items == n {
        return (apen_without_repeats(n, m), Some(n as u64));
    }
    // sum over levels of (windows - distinct windows), starting with the items
    let mut repeats = (n - distinct_items) as u64;
    let mut budget = LZ_BUDGET_PER_ITEM * n;
    let width = s.items.capacity() as u64;
    // Buffers only grow (no fill per sequence); `kept` says how much of each is live.
    for buffer in [&mut s.starts, &mut s.ids, &mut s.next_starts] {
        if buffer.len() < n {
            buffer.resize(n, 0);
        }
    }
    if s.codes.len() < n {
        s.codes.resize(n, 0);
    }
    let mut kept = 0;
    let mut sum_m = 0.0;
    let mut sum_m1 = 0.0;
    let mut level = 2;
    loop {
        let windows = n - level + 1;
        // the windows whose prefix and last item both repeat, written without a branch
        // (local slices, so that the stores cannot make the compiler reload the Vecs)
        let mut candidates = 0;
        let (next_starts, codes) = (&mut s.next_starts[..], &mut s.codes[..]);
        let (ranks, items) = (&s.ranks[..], &s.items.slots[..]);
        if level == 2 {
            // pairs of repeated items, straight from the item slots (an item's slot is its id)
            let mut first_repeats = items[ranks[0] as usize].count > 1;
            for (start, pair) in ranks.windows(2).enumerate() {
                let second_repeats = items[pair[1] as usize].count > 1;
                next_starts[candidates] = start as u32;
                // both slots < width <= 2^16: the code fits in 64 bits
                codes[candidates] = pair[0] as u64 * width + pair[1] as u64;
                candidates += (first_repeats & second_repeats) as usize;
                first_repeats = second_repeats;
            }
        } else {
            for (&start, &prefix) in s.starts[..kept].iter().zip(&s.ids[..kept]) {
                if start as usize >= windows {
                    break; // starts ascend
                }
                let last = ranks[start as usize + level - 1];
                next_starts[candidates] = start;
                // prefix < n <= width and last < width <= 2^16: the code fits in 64 bits
                codes[candidates] = prefix as u64 * width + last as u64;
                candidates += (items[last as usize].count > 1) as usize;
            }
        }
        if level > m + 1 {
            budget = match budget.checked_sub(candidates) {
                Some(left) => left,
                None => return (phi(sum_m, n - m + 1) - phi(sum_m1, n - m), None),
            };
        }
        s.dense.reset(candidates);
        s.next_ids.clear();
        s.next_ids
            .extend(s.codes[..candidates].iter().map(|&code| s.dense.id(code)));
        // windows seen once are among the candidates with their own id: they add 0
        repeats += (candidates - s.dense.len()) as u64;
        let any_repeat = count_level(s, level, m, table, &mut sum_m, &mut sum_m1);
        if !any_repeat || (!lz && level == m + 1) {
            break; // every longer window is distinct too, or ApEn alone is done
        }
        kept = 0;
        let (starts, ids, repeated) = (&mut s.starts[..], &mut s.ids[..], &s.repeated[..]);
        for (&start, &id) in s.next_starts[..candidates].iter().zip(&s.next_ids) {
            let id = repeated[id as usize];
            starts[kept] = start;
            ids[kept] = id;
            kept += (id != ONCE) as usize;
        }
        level += 1;
    }
    (
        phi(sum_m, n - m + 1) - phi(sum_m1, n - m),
        Some(n as u64 + repeats),
    )
}

/// m = 1 (whose sum runs over the items in first-seen order): dense first-seen
/// ranks of the items, then the fast path's skipping of windows seen once.
fn apen_ranked(seq: &[i64], m: usize, scratch: &mut Scratch) -> f64 {
    let n = seq.len();
    let s = scratch;
    let distinct_items = rank_items(seq, s);
    if distinct_items == n {
        // No repeated item, so no repeated window of any length.
        return apen_without_repeats(n, m);
    }
    s.counts.clear();
    s.counts.resize(distinct_items, 0);
    for &rank in &s.ranks {
        s.counts[rank as usize] += 1;
    }
    let repeated_items = compact_ids(&s.counts, &mut s.item_ids);
    let table = c_ln_c_table();
    let mut sum_m = 0.0;
    let mut sum_m1 = 0.0;
    if m == 1 {
        sum_m = sum_c_ln_c(&s.counts, table);
    }
    // the starts of repeated items, written without a branch
    s.starts.resize(n, 0);
    s.ids.resize(n, 0);
    let mut kept = 0;
    for (start, &rank) in s.ranks.iter().enumerate() {
        let id = s.item_ids[rank as usize];
        s.starts[kept] = start as u32;
        s.ids[kept] = id;
        kept += (id != ONCE) as usize;
    }
    s.starts.truncate(kept);
    s.ids.truncate(kept);
    for level in 2..=m + 1 {
        let windows = n - level + 1;
        s.dense.reset(s.starts.len());
        s.next_starts.clear();
        s.next_ids.clear();
        for (&start, &prefix) in s.starts.iter().zip(&s.ids) {
            let start = start as usize;
            if start >= windows {
                break; // starts ascend
            }
            let last = s.item_ids[s.ranks[start + level - 1] as usize];
            if last == ONCE {
                continue;
            }
            // both ids < N, so the code fits in 64 bits for N < 2^32
            let id = s
                .dense
                .id(prefix as u64 * repeated_items as u64 + last as u64);
            s.next_starts.push(start as u32);
            s.next_ids.push(id);
        }
        if !count_level(s, level, m, table, &mut sum_m, &mut sum_m1) || level == m + 1 {
            break;
        }
        s.starts.resize(s.next_starts.len(), 0);
        s.ids.resize(s.next_starts.len(), 0);
        let mut kept = 0;
        for (&start, &id) in s.next_starts.iter().zip(&s.next_ids) {
            let id = s.repeated[id as usize];
            s.starts[kept] = start;
            s.ids[kept] = id;
            kept += (id != ONCE) as usize;
        }
        s.starts.truncate(kept);
        s.ids.truncate(kept);
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
    // ln W from a table for short sequences: the same f64 as w.ln()
    let ln_w = match ln_table().get(windows) {
        Some(&value) => value,
        None => w.ln(),
    };
    sum_c_ln_c / w - ln_w
}

#[inline]
fn c_ln_c(c: u32) -> f64 {
    c as f64 * (c as f64).ln()
}

/// Dense rank of each item in first-seen order; returns the number of distinct items.
fn rank_items(seq: &[i64], scratch: &mut Scratch) -> usize {
    scratch.dense.reset(seq.len());
    scratch.ranks.clear();
    // the bit pattern of the id is the key: exact for every i64
    scratch
        .ranks
        .extend(seq.iter().map(|&item| scratch.dense.id(item as u64)));
    scratch.dense.len()
}

/// Counts the windows of one level by id (`s.next_ids`) and adds the level's
/// Σ c·ln c to `sum_m` or `sum_m1` when it is level m or m + 1 (`s.repeated`
/// then lists the ids that repeat); false when every window of this length is
/// distinct, and so is every longer one.
fn count_level(
    s: &mut Scratch,
    level: usize,
    m: usize,
    table: &[f64; TABLE],
    sum_m: &mut f64,
    sum_m1: &mut f64,
) -> bool {
    s.counts.clear();
    s.counts.resize(s.dense.len(), 0);
    for &id in &s.next_ids {
        s.counts[id as usize] += 1;
    }
    if compact_ids(&s.counts, &mut s.repeated) == 0 {
        return false;
    }
    if level == m {
        *sum_m = sum_c_ln_c(&s.counts, table);
    } else if level == m + 1 {
        *sum_m1 = sum_c_ln_c(&s.counts, table);
    }
    true
}

/// Ids 0, 1, ... for the entries of `counts` above 1, in order, ONCE for the others;
/// returns how many there are.
fn compact_ids(counts: &[u32], ids: &mut Vec<u32>) -> usize {
    ids.clear();
    let mut next = 0u32;
    ids.extend(counts.iter().map(|&c| {
        if c > 1 {
            next += 1;
            next - 1
        } else {
            ONCE
        }
    }));
    next as usize
}

/// sum of c ln c over the counts above 1, in order (the order fixes the rounding).
fn sum_c_ln_c(counts: &[u32], table: &[f64; TABLE]) -> f64 {
    counts
        .iter()
        .filter(|&&c| c > 1)
        .map(|&c| match table.get(c as usize) {
            Some(&value) => value,
            None => c_ln_c(c),
        })
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

    #[test]
    fn the_walk_gives_the_lz_sum_of_the_direct_scan() {
        let (mut scratch, mut coding) = (Scratch::default(), crate::coding::Scratch::default());
        let mut from_walk = 0;
        for seed in 0..40 {
            for &(n, alphabet) in &[(3, 2), (50, 40), (50, 3), (200, 1000), (2000, 20)] {
                let seq = pseudo_random(n, alphabet, seed);
                for m in 2..4 {
                    let (value, lz) = apen_and_lz_sum(&seq, m, &mut scratch);
                    assert_eq!(
                        value.to_bits(),
                        apen(&seq, m, &mut Scratch::default()).to_bits()
                    );
                    if let Some(lz) = lz {
                        assert_eq!(
                            lz,
                            crate::coding::lz_lambda_sum(&seq, &mut coding),
                            "n={n} alphabet={alphabet}"
                        );
                        from_walk += 1;
                    }
                }
            }
        }
        assert!(
            from_walk >= 300,
            "the walk gave the LZ sum only {from_walk} times"
        );
        // a long repeat exceeds the walk's budget: the caller takes the suffix array
        assert_eq!(apen_and_lz_sum(&[7; 1000], 2, &mut scratch).1, None);
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
    fn fast_and_ranked_paths_agree_bit_for_bit() {
        let mut scratch = Scratch::default();
        let mut other = Scratch::default();
        for seed in 0..40 {
            for &(n, alphabet) in &[
                (3, 1),
                (9, 2),
                (50, 3),
                (64, 10),
                (300, 40),
                (2000, 7),
                (5000, 5000),
            ] {
                let mut seq = pseudo_random(n, alphabet, seed);
                if seed % 3 == 0 {
                    // ids far apart and of both signs: only their equality matters
                    seq.iter_mut()
                        .for_each(|x| *x = x.wrapping_mul(-0x3FFF_FFFF_FFFF));
                }
                for m in 2..6 {
                    if n <= m {
                        continue;
                    }
                    let fast = apen_fast(&seq, m, &mut scratch);
                    let ranked = apen_ranked(&seq, m, &mut other);
                    assert_eq!(
                        fast.to_bits(),
                        ranked.to_bits(),
                        "n={n} alphabet={alphabet} m={m}"
                    );
                    assert_eq!(apen(&seq, m, &mut scratch).to_bits(), fast.to_bits());
                }
            }
        }
    }

    #[test]
    fn the_ranked_and_long_paths_match_the_naive_definition() {
        let mut scratch = Scratch::default();
        for seed in 0..20 {
            for &(n, alphabet) in &[(30, 3), (64, 10), (7, 1)] {
                let seq = pseudo_random(n, alphabet, seed);
                for m in 1..4 {
                    let slow = apen_naive(&seq, m);
                    assert!((apen_ranked(&seq, m, &mut scratch) - slow).abs() < 1e-12);
                    let long = apen_long(&seq, m, &mut scratch);
                    assert_eq!(long.to_bits(), apen_ranked(&seq, m, &mut scratch).to_bits());
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
