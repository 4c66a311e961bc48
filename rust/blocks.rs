//! Corpus-level conditional block entropy H(X_{m+1} | X_1..X_m).
//!
//! Every window of m + 1 consecutive items of every sequence is counted
//! exactly (windows never span two sequences). With c(wx) the count of window
//! w followed by x, c(w.) = sum_x c(wx) and T the number of windows,
//!   H = (1/T) * [ sum_w c(w.) ln c(w.) - sum_wx c(wx) ln c(wx) ].
//! Counts are integers, so tables built from shards merge exactly, and the
//! sums run over a sorted histogram of counts, so the result does not depend
//! on insertion order, sharding or the thread count.
//!
//! A table holds its distinct windows sorted (row-major, m + 1 ids each) with
//! their counts: a batch's windows are sorted (as packed integer keys where the
//! ids allow it) and run-length counted, then merged with the table in one
//! linear pass. Sorting keeps memory to (m + 1) * 8 + 8 bytes per distinct
//! window and beats a hash table of slices, whose probes miss the caches.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::ThreadPool;

use crate::batch::Batch;
use crate::error::{KernelError, Result};
use crate::keycount::{key_histograms, Histogram};
use crate::packing::{Key, Packing};
use crate::partition;
use crate::sums::exact_sum;

/// Exact counts of all windows of length m + 1 seen so far.
///
/// The first batch of an empty table is kept as packed keys, unsorted: its
/// histograms come straight from them (`keycount.rs`, far quicker than a
/// sorted table), and the table is built only when a second batch, a merge or
/// the arrays need it.
#[derive(Clone)]
pub struct WindowCounts {
    m: usize,
    /// the distinct windows, sorted lexicographically, m + 1 ids each
    rows: Vec<i64>,
    counts: Vec<u64>,
    /// the first batch's windows, not yet in the table
    fresh: Option<FreshKeys>,
}

/// Windows packed into 64-bit keys, and the pool to sort or count them on.
#[derive(Clone)]
struct FreshKeys {
    packing: Packing,
    keys: Vec<u64>,
    pool: Arc<ThreadPool>,
}

impl FreshKeys {
    /// The distinct rows of the keys, sorted, with their counts.
    fn into_table(self, width: usize) -> (Vec<i64>, Vec<u64>) {
        let Self {
            packing,
            keys,
            pool,
        } = self;
        pool.install(|| packing.distinct_keys(keys, width))
    }

    /// [`FreshKeys::into_table`] of a copy, the keys kept.
    fn table(&self, width: usize) -> (Vec<i64>, Vec<u64>) {
        self.clone().into_table(width)
    }
}

impl WindowCounts {
    pub fn new(m: usize) -> Result<Self> {
        if crate::error::check_m(m).is_err() {
            return Err(KernelError::BadM(m));
        }
        Ok(Self {
            m,
            rows: Vec::new(),
            counts: Vec::new(),
            fresh: None,
        })
    }

    pub fn m(&self) -> usize {
        self.m
    }

    fn width(&self) -> usize {
        self.m + 1
    }

    /// Number of distinct windows.
    pub fn distinct(&self) -> usize {
        match &self.fresh {
            Some(fresh) => fresh.table(self.width()).1.len(),
            None => self.counts.len(),
        }
    }

    /// Number of windows counted (T).
    pub fn total(&self) -> u64 {
        let fresh = self
            .fresh
            .as_ref()
            .map_or(0, |fresh| fresh.keys.len() as u64);
        self.counts.iter().sum::<u64>() + fresh
    }

    /// Moves the fresh keys, if any, into the sorted table.
    fn settle(&mut self) {
        if let Some(fresh) = self.fresh.take() {
            let (rows, counts) = fresh.into_table(self.width());
            self.absorb(&rows, &counts);
        }
    }

    /// Counts every window of every sequence of the batch (after truncation).
    /// Where the batch's ids pack, windows go straight from the batch to keys.
    pub fn update(&mut self, batch: &Batch, max_len: Option<usize>, pool: &Arc<ThreadPool>) {
        self.settle();
        let width = self.width();
        let windows = || (0..batch.len()).flat_map(|u| batch.sequence(u, max_len).windows(width));
        let (rows, counts) = match Packing::of(batch.items(), width) {
            Some(packing) if packing.bits * width <= 64 => {
                let keys: Vec<u64> = windows().map(|window| packing.pack(window)).collect();
                if self.counts.is_empty() {
                    let pool = Arc::clone(pool);
                    self.fresh = Some(FreshKeys {
                        packing,
                        keys,
                        pool,
                    });
                    return;
                }
                pool.install(|| packing.distinct_keys(keys, width))
            }
            Some(packing) => {
                let keys: Vec<u128> = windows().map(|window| packing.pack(window)).collect();
                pool.install(|| packing.distinct_keys(keys, width))
            }
            None => {
                let rows: Vec<i64> = windows().flatten().copied().collect();
                sorted_distinct_rows(&rows, None, width)
            }
        };
        self.absorb(&rows, &counts);
    }

    /// Adds another table's counts to this one.
    pub fn merge(&mut self, other: &WindowCounts) -> Result<()> {
        if other.m != self.m {
            return Err(KernelError::MismatchedM {
                left: self.m,
                right: other.m,
            });
        }
        self.settle();
        let (rows, counts) = other.to_arrays();
        self.absorb(&rows, &counts);
        Ok(())
    }

    /// Merges sorted distinct rows and their counts into the table.
    fn absorb(&mut self, rows: &[i64], counts: &[u64]) {
        let width = self.width();
        if self.counts.is_empty() {
            self.rows = rows.to_vec();
            self.counts = counts.to_vec();
            return;
        }
        let mut merged_rows = Vec::with_capacity(self.rows.len() + rows.len());
        let mut merged_counts = Vec::with_capacity(self.counts.len() + counts.len());
        let (mut i, mut j) = (0, 0);
        while i < self.counts.len() || j < counts.len() {
            let mine = self.rows.get(i * width..(i + 1) * width);
            let theirs = rows.get(j * width..(j + 1) * width);
            let order = match (mine, theirs) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    merged_rows.extend_from_slice(mine.expect("a row of the table"));
                    merged_counts.push(self.counts[i]);
                    i += 1;
                }
                Ordering::Greater => {
                    merged_rows.extend_from_slice(theirs.expect("a row of the other"));
                    merged_counts.push(counts[j]);
                    j += 1;
                }
                Ordering::Equal => {
                    merged_rows.extend_from_slice(mine.expect("a row of the table"));
                    merged_counts.push(self.counts[i] + counts[j]);
                    i += 1;
                    j += 1;
                }
            }
        }
        self.rows = merged_rows;
        self.counts = merged_counts;
    }

    /// All windows (row-major, m + 1 ids each) and their counts, sorted by window.
    pub fn to_arrays(&self) -> (Vec<i64>, Vec<u64>) {
        match &self.fresh {
            Some(fresh) => fresh.table(self.width()),
            None => (self.rows.clone(), self.counts.clone()),
        }
    }

    /// Rebuilds a table from `to_arrays` output (counts add up for repeated rows).
    pub fn from_arrays(m: usize, windows: &[i64], counts: &[u64]) -> Result<Self> {
        let mut table = Self::new(m)?;
        let width = table.width();
        if windows.len() != counts.len() * width {
            return Err(KernelError::BadShape(format!(
                "windows hold {} ids, expected {} rows of m + 1 = {width}",
                windows.len(),
                counts.len()
            )));
        }
        (table.rows, table.counts) = sorted_distinct(windows, Some(counts), width);
        Ok(table)
    }

    /// H(X_{m+1} | X_1..X_m) in nats; NaN when no window was counted.
    pub fn conditional_entropy(&self) -> f64 {
        if self.total() == 0 {
            return f64::NAN;
        }
        let (joint, marginal) = self.histograms();
        let pairs = |h: BTreeMap<u64, u64>| -> Vec<(u64, u64)> { h.into_iter().collect() };
        entropy_from_histograms(&pairs(joint), &pairs(marginal))
    }

    /// Histograms {count: number of distinct windows with that count} of the
    /// (m+1)-windows and of their m-item prefixes. They hold everything the
    /// entropy needs, and those of tables whose prefixes are disjoint add up.
    /// Rows are sorted, so windows with the same prefix are neighbours.
    pub fn histograms(&self) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
        if let Some(fresh) = &self.fresh {
            return fresh
                .pool
                .install(|| key_histograms(&[&fresh.keys], fresh.packing.bits));
        }
        let (width, m) = (self.width(), self.m);
        let (mut joint, mut prefix) = (Histogram::default(), Histogram::default());
        let mut prefix_run = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            joint.add(count);
            prefix_run += count;
            let this = &self.rows[i * width..i * width + m];
            let next = self.rows.get((i + 1) * width..(i + 1) * width + m);
            if next != Some(this) {
                prefix.add(prefix_run);
                prefix_run = 0;
            }
        }
        (joint.into_map(), prefix.into_map())
    }
}

/// The distinct rows of `rows` (m + 1 = `width` ids each), sorted, each with its
/// count: the sum of `counts` over its copies, or (without `counts`) the number of
/// copies. Rows are packed into integer keys where the ids' range allows, else
/// sorted as rows. The result is the same for any number of threads.
fn sorted_distinct(rows: &[i64], counts: Option<&[u64]>, width: usize) -> (Vec<i64>, Vec<u64>) {
    match Packing::of(rows, width) {
        Some(packing) if packing.bits * width <= 64 => packing.distinct::<u64>(rows, counts, width),
        Some(packing) => packing.distinct::<u128>(rows, counts, width),
        None => sorted_distinct_rows(rows, counts, width),
    }
}

/// [`sorted_distinct`] of rows whose ids do not pack, by a sort of the rows.
fn sorted_distinct_rows(
    rows: &[i64],
    counts: Option<&[u64]>,
    width: usize,
) -> (Vec<i64>, Vec<u64>) {
    let count_of = |i: usize| counts.map_or(1, |counts| counts[i]);
    let mut order: Vec<(&[i64], u64)> = rows
        .chunks_exact(width)
        .enumerate()
        .map(|(i, row)| (row, count_of(i)))
        .collect();
    order.sort_unstable();
    let mut out_rows = Vec::with_capacity(rows.len());
    let mut out_counts: Vec<u64> = Vec::with_capacity(order.len());
    for (row, count) in order {
        if !out_counts.is_empty() && &out_rows[out_rows.len() - width..] == row {
            *out_counts.last_mut().expect("a count") += count;
        } else {
            out_rows.extend_from_slice(row);
            out_counts.push(count);
        }
    }
    (out_rows, out_counts)
}

/// Every window of m + 1 items of the batch, grouped by a hash of its m-item
/// prefix into `partitions` groups: returns the windows flattened row-major,
/// group after group, and the `partitions + 1` group bounds (in windows).
/// Windows with the same prefix always land in the same group, so each group
/// can be counted on its own (a spill to disk, or a shuffle between machines).
pub fn partition_windows(
    batch: &Batch,
    m: usize,
    max_len: Option<usize>,
    partitions: usize,
    pool: &ThreadPool,
) -> (Vec<i64>, Vec<u64>) {
    let width = m + 1;
    let users = batch.len();
    let mut groups = Vec::new();
    partition::window_partitions(batch, m, max_len, partitions, pool, &mut groups);
    // ...then the windows copied to their groups, in user order within each group.
    let mut bounds = vec![0u64; partitions + 1];
    for &group in &groups {
        bounds[group as usize + 1] += 1;
    }
    for p in 0..partitions {
        bounds[p + 1] += bounds[p];
    }
    let mut next: Vec<usize> = bounds[..partitions]
        .iter()
        .map(|&b| b as usize * width)
        .collect();
    let mut rows = vec![0i64; bounds[partitions] as usize * width];
    let windows = (0..users).flat_map(|u| batch.sequence(u, max_len).windows(width));
    for (window, &group) in windows.zip(&groups) {
        let slot = &mut next[group as usize];
        rows[*slot..*slot + width].copy_from_slice(window);
        *slot += width;
    }
    (rows, bounds)
}

/// Count histograms of a bag of windows given as rows (`width` = m + 1 ids
/// each): {count: how many distinct windows have it} for the windows and for
/// their m-item prefixes. Sorting the rows puts equal windows, and windows
/// with equal prefixes, next to each other, so one pass over the sorted rows
/// gives both histograms; no hash table is needed.
pub fn row_histograms(
    flat: &[i64],
    width: usize,
) -> Result<(BTreeMap<u64, u64>, BTreeMap<u64, u64>)> {
    if width < 2 || flat.len() % width != 0 {
        return Err(KernelError::BadShape(format!(
            "windows hold {} ids, not a whole number of rows of m + 1 = {width} (m >= 1)",
            flat.len()
        )));
    }
    if let Some(histograms) = packed_histograms(flat, width) {
        return Ok(histograms);
    }
    Ok(match width {
        2 => sorted_histograms(fixed_rows::<2>(flat)),
        3 => sorted_histograms(fixed_rows::<3>(flat)),
        4 => sorted_histograms(fixed_rows::<4>(flat)),
        _ => sorted_histograms(flat.chunks_exact(width).collect()),
    })
}

/// Where the ids of the bag allow (see [`Packing`]), each row packed into one
/// integer key: equal rows give equal keys and the prefix is the key's high
/// bits, so counting integers gives both histograms. None otherwise.
fn packed_histograms(
    flat: &[i64],
    width: usize,
) -> Option<(BTreeMap<u64, u64>, BTreeMap<u64, u64>)> {
    let packing = Packing::of(flat, width)?;
    Some(if packing.bits * width <= 64 {
        packed_key_histograms::<u64>(&packing, flat, width)
    } else {
        packed_key_histograms::<u128>(&packing, flat, width)
    })
}

fn packed_key_histograms<K: Key>(
    packing: &Packing,
    flat: &[i64],
    width: usize,
) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
    let keys: Vec<K> = flat
        .chunks_exact(width)
        .map(|row| packing.pack(row))
        .collect();
    key_histograms(&[&keys], packing.bits)
}

/// Rows copied into fixed-size arrays, which sort much faster than slices.
fn fixed_rows<const W: usize>(flat: &[i64]) -> Vec<[i64; W]> {
    flat.chunks_exact(W)
        .map(|row| row.try_into().expect("chunks have W items"))
        .collect()
}

fn sorted_histograms<R: AsRef<[i64]> + Ord>(
    mut rows: Vec<R>,
) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
    rows.sort_unstable();
    let mut joint: BTreeMap<u64, u64> = BTreeMap::new();
    let mut prefix: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut run, mut prefix_run) = (0u64, 0u64);
    for i in 0..rows.len() {
        run += 1;
        prefix_run += 1;
        let row = rows[i].as_ref();
        let next = rows.get(i + 1).map(|r| r.as_ref());
        let m = row.len() - 1;
        if next != Some(row) {
            *joint.entry(run).or_default() += 1;
            run = 0;
        }
        if next.map(|r| &r[..m]) != Some(&row[..m]) {
            *prefix.entry(prefix_run).or_default() += 1;
            prefix_run = 0;
        }
    }
    (joint, prefix)
}

/// H(X_{m+1} | X_1..X_m) in nats from the two count histograms, given as
/// (count, how many distinct windows / prefixes have it) pairs in any order;
/// NaN without windows. Both sums are exactly rounded (the algorithm of
/// Python's `math.fsum`), so histograms that add up to the same ones (in
/// memory, spilled by partition, or merged from machines) give the same bits.
pub fn entropy_from_histograms(joint: &[(u64, u64)], prefix: &[(u64, u64)]) -> f64 {
    let total: u128 = joint.iter().map(|&(c, n)| c as u128 * n as u128).sum();
    if total == 0 {
        return f64::NAN;
    }
    (sum_c_ln_c(prefix) - sum_c_ln_c(joint)) / total as f64
}

/// The exactly rounded sum over a histogram of (windows * count) * ln count.
fn sum_c_ln_c(histogram: &[(u64, u64)]) -> f64 {
    exact_sum(
        histogram
            .iter()
            .filter(|&&(c, _)| c > 1)
            .map(|&(c, n)| (c as u128 * n as u128) as f64 * (c as f64).ln()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::pool;
    use std::collections::HashMap;

    fn naive_entropy(seqs: &[Vec<i64>], m: usize) -> f64 {
        let mut joint: HashMap<Vec<i64>, f64> = HashMap::new();
        let mut prefix: HashMap<Vec<i64>, f64> = HashMap::new();
        let mut total = 0.0;
        for s in seqs {
            for w in s.windows(m + 1) {
                *joint.entry(w.to_vec()).or_default() += 1.0;
                *prefix.entry(w[..m].to_vec()).or_default() += 1.0;
                total += 1.0;
            }
        }
        -joint
            .iter()
            .map(|(w, &c)| c / total * (c / prefix[&w[..m]]).ln())
            .sum::<f64>()
    }

    fn csr(seqs: &[Vec<i64>]) -> (Vec<i64>, Vec<i64>) {
        let mut offsets = vec![0i64];
        let mut items = vec![];
        for s in seqs {
            items.extend_from_slice(s);
            offsets.push(items.len() as i64);
        }
        (offsets, items)
    }

    fn sample() -> Vec<Vec<i64>> {
        let mut state = 3u64;
        (0..40)
            .map(|u| {
                (0..(u % 13 + 1))
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((state >> 33) % 4) as i64
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn matches_naive_and_is_thread_independent() {
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        let batch = Batch::new(&offsets, &items).unwrap();
        for m in 1..4 {
            let mut one = WindowCounts::new(m).unwrap();
            one.update(&batch, None, &pool(1).unwrap());
            let mut two = WindowCounts::new(m).unwrap();
            two.update(&batch, None, &pool(2).unwrap());
            let h = one.conditional_entropy();
            assert!((h - naive_entropy(&seqs, m)).abs() < 1e-12);
            assert_eq!(h.to_bits(), two.conditional_entropy().to_bits());
        }
    }

    #[test]
    fn partitions_hold_every_window_once_and_keep_prefixes_together() {
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        let batch = Batch::new(&offsets, &items).unwrap();
        let (rows, bounds) = partition_windows(&batch, 2, Some(9), 5, &pool(1).unwrap());
        // the same rows, in the same order, on any number of threads
        assert_eq!(
            partition_windows(&batch, 2, Some(9), 5, &pool(3).unwrap()),
            (rows.clone(), bounds.clone())
        );
        let mut whole = WindowCounts::new(2).unwrap();
        whole.update(&batch, Some(9), &pool(1).unwrap());
        assert_eq!(bounds.len(), 6);
        assert_eq!(*bounds.last().unwrap(), whole.total());
        let mut parts = WindowCounts::new(2).unwrap();
        let mut prefixes_seen: HashMap<Vec<i64>, usize> = HashMap::new();
        for p in 0..5 {
            let group = &rows[bounds[p] as usize * 3..bounds[p + 1] as usize * 3];
            for w in group.chunks_exact(3) {
                assert_eq!(*prefixes_seen.entry(w[..2].to_vec()).or_insert(p), p);
            }
            let counts = vec![1u64; group.len() / 3];
            parts
                .merge(&WindowCounts::from_arrays(2, group, &counts).unwrap())
                .unwrap();
        }
        assert_eq!(parts.to_arrays(), whole.to_arrays());
    }

    #[test]
    fn packed_and_row_sorts_give_the_same_histograms() {
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        // ids spread so that rows pack into u64, into u128, or not at all
        let mut packed = Vec::new();
        for spread in [1i64, 1 << 30, i64::MAX / 3] {
            let spread_items: Vec<i64> = items
                .iter()
                .map(|&x| (x - 2).wrapping_mul(spread))
                .collect();
            let batch = Batch::new(&offsets, &spread_items).unwrap();
            for m in 1..4 {
                let mut table = WindowCounts::new(m).unwrap();
                table.update(&batch, None, &pool(1).unwrap());
                let (rows, _) = partition_windows(&batch, m, None, 1, &pool(1).unwrap());
                packed.push(packed_histograms(&rows, m + 1).is_some());
                assert_eq!(
                    row_histograms(&rows, m + 1).unwrap(),
                    table.histograms(),
                    "m={m} spread={spread}"
                );
            }
        }
        assert!(packed.contains(&true) && packed.contains(&false));
    }

    #[test]
    fn sorted_row_histograms_equal_the_table_histograms() {
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        let batch = Batch::new(&offsets, &items).unwrap();
        for m in 1..6 {
            let mut table = WindowCounts::new(m).unwrap();
            table.update(&batch, None, &pool(1).unwrap());
            let (rows, _) = partition_windows(&batch, m, None, 1, &pool(2).unwrap());
            assert_eq!(
                row_histograms(&rows, m + 1).unwrap(),
                table.histograms(),
                "m={m}"
            );
        }
        assert!(row_histograms(&[1, 2, 3], 2).is_err());
        assert!(row_histograms(&[1, 2], 1).is_err());
    }

    #[test]
    fn entropy_of_small_histograms() {
        assert!(entropy_from_histograms(&[], &[]).is_nan());
        // one prefix followed by two items, twice each: H = ln 2
        let h = entropy_from_histograms(&[(2, 2)], &[(4, 1)]);
        assert!((h - std::f64::consts::LN_2).abs() < 1e-15);
    }

    #[test]
    fn shards_merge_exactly() {
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        let mut whole = WindowCounts::new(2).unwrap();
        whole.update(
            &Batch::new(&offsets, &items).unwrap(),
            None,
            &pool(1).unwrap(),
        );
        let mut merged = WindowCounts::new(2).unwrap();
        for half in seqs.chunks(17) {
            let (o, i) = csr(half);
            let mut part = WindowCounts::new(2).unwrap();
            part.update(&Batch::new(&o, &i).unwrap(), None, &pool(2).unwrap());
            let (w, c) = part.to_arrays();
            merged
                .merge(&WindowCounts::from_arrays(2, &w, &c).unwrap())
                .unwrap();
        }
        assert_eq!(whole.to_arrays(), merged.to_arrays());
        assert_eq!(
            whole.conditional_entropy().to_bits(),
            merged.conditional_entropy().to_bits()
        );
        assert!(merged.merge(&WindowCounts::new(3).unwrap()).is_err());
    }

    #[test]
    fn a_fresh_batch_counts_like_the_sorted_table() {
        // one batch is kept as keys; a second update, a merge or the arrays
        // build the table: every view must agree with the naive definition
        let seqs = sample();
        let (offsets, items) = csr(&seqs);
        let batch = Batch::new(&offsets, &items).unwrap();
        let mut fresh = WindowCounts::new(2).unwrap();
        fresh.update(&batch, Some(7), &pool(2).unwrap());
        assert!(fresh.fresh.is_some());
        let mut settled = WindowCounts::new(2).unwrap();
        settled.merge(&fresh).unwrap();
        assert!(settled.fresh.is_none());
        assert_eq!(fresh.histograms(), settled.histograms());
        assert_eq!(fresh.to_arrays(), settled.to_arrays());
        assert_eq!(
            (fresh.total(), fresh.distinct()),
            (settled.total(), settled.distinct())
        );
        let truncated: Vec<Vec<i64>> = seqs
            .iter()
            .map(|s| s[s.len().saturating_sub(7)..].to_vec())
            .collect();
        let want = naive_entropy(&truncated, 2);
        assert!((fresh.conditional_entropy() - want).abs() < 1e-12);
        // a second batch: the fresh keys go into the table first
        let once = settled.total();
        fresh.update(&batch, Some(7), &pool(1).unwrap());
        settled.update(&batch, Some(7), &pool(1).unwrap());
        assert!(fresh.fresh.is_none());
        assert_eq!(fresh.to_arrays(), settled.to_arrays());
        assert_eq!(fresh.total(), 2 * once);
    }
}
