//! Rows of ids packed into one integer each, and a radix sort for such keys.
//!
//! Where every id of a bag of rows lies within 2^b of the smallest and
//! (m + 1)·b <= 128, a row becomes one u64 or u128 key: each id minus the
//! smallest in b bits, the first id highest. Integer order is then row order,
//! equal rows give equal keys and a row's prefix is its key's high bits, so
//! counting windows becomes sorting integers.

use rayon::prelude::*;

use crate::partition::mix;

/// Rows packed into one integer each: every id minus the smallest, in `bits`
/// bits, the first id highest, so that integer order is row order.
#[derive(Clone, Copy)]
pub struct Packing {
    pub low: i64,
    pub bits: usize,
}

/// The integer types rows pack into.
pub trait Key: Copy + Ord + Send + Sync {
    /// Sorts keys below 2^bits.
    fn sort(keys: &mut Vec<Self>, bits: usize);
    fn push(self, bits: usize, value: u64) -> Self;
    /// The key without its last `bits` bits: the packed prefix of the row.
    fn prefix(self, bits: usize) -> Self;
    /// A well-spread 64-bit hash of the key.
    fn hash(self) -> u64;
    fn from_u128(value: u128) -> Self;
    fn to_u128(self) -> u128;
    /// The key of `WORDS` 64-bit words, low word first.
    fn from_words(words: &[u64]) -> Self;
    /// The words as keys, where a key is one word.
    fn as_keys(words: &[u64]) -> Option<&[Self]>;
    const ZERO: Self;
    const WORDS: usize;
}

impl Key for u64 {
    fn sort(keys: &mut Vec<Self>, bits: usize) {
        radix_sort(keys, bits);
    }
    fn push(self, bits: usize, value: u64) -> Self {
        (self << bits) | value
    }
    fn prefix(self, bits: usize) -> Self {
        self >> bits
    }
    fn hash(self) -> u64 {
        mix(self)
    }
    fn from_u128(value: u128) -> Self {
        value as u64
    }
    fn to_u128(self) -> u128 {
        self as u128
    }
    fn from_words(words: &[u64]) -> Self {
        words[0]
    }
    fn as_keys(words: &[u64]) -> Option<&[Self]> {
        Some(words)
    }
    const ZERO: Self = 0;
    const WORDS: usize = 1;
}

impl Key for u128 {
    fn sort(keys: &mut Vec<Self>, _bits: usize) {
        keys.par_sort_unstable();
    }
    fn push(self, bits: usize, value: u64) -> Self {
        (self << bits) | value as u128
    }
    fn prefix(self, bits: usize) -> Self {
        self >> bits
    }
    fn hash(self) -> u64 {
        mix(self as u64 ^ mix((self >> 64) as u64))
    }
    fn from_u128(value: u128) -> Self {
        value
    }
    fn to_u128(self) -> u128 {
        self
    }
    fn from_words(words: &[u64]) -> Self {
        words[0] as u128 | (words[1] as u128) << 64
    }
    fn as_keys(_words: &[u64]) -> Option<&[Self]> {
        None
    }
    const ZERO: Self = 0;
    const WORDS: usize = 2;
}

impl Packing {
    pub fn of(rows: &[i64], width: usize) -> Option<Self> {
        let low = *rows.iter().min()?;
        let high = *rows.iter().max()?;
        Self::spanning(low, high, width)
    }

    /// The packing of ids from `low` to `high` (inclusive) in rows of `width`;
    /// None where a row would take more than 128 bits.
    pub fn spanning(low: i64, high: i64, width: usize) -> Option<Self> {
        let bits = (64 - (high.wrapping_sub(low) as u64).leading_zeros() as usize).max(1);
        (bits * width <= 128).then_some(Self { low, bits })
    }

    /// The key's `width` ids, first id first.
    pub fn unpack(&self, key: u128, width: usize) -> impl Iterator<Item = i64> + '_ {
        let mask = (1u128 << self.bits) - 1;
        (0..width).rev().map(move |k| {
            self.low
                .wrapping_add(((key >> (k * self.bits)) & mask) as i64)
        })
    }

    /// A key of this packing as the key of the same row under `to`, whose ids
    /// range covers this one's (`to.low <= self.low`, and every id fits).
    pub fn repack(&self, key: u128, to: &Packing, width: usize) -> u128 {
        let shift = self.low.wrapping_sub(to.low) as u64 as u128;
        if self.bits == to.bits {
            // every field moves up by the same amount and none overflows its bits
            return key + shift * self.spread(width);
        }
        let mask = (1u128 << self.bits) - 1;
        (0..width).rev().fold(0u128, |out, k| {
            (out << to.bits) | (((key >> (k * self.bits)) & mask) + shift)
        })
    }

    /// Σ_k 2^(k·bits) over the row's fields: adding v·spread adds v to every field.
    fn spread(&self, width: usize) -> u128 {
        (0..width).fold(0u128, |out, _| (out << self.bits) | 1)
    }

    pub fn pack<K: Key>(&self, row: &[i64]) -> K {
        row.iter().fold(K::ZERO, |key, &id| {
            key.push(self.bits, id.wrapping_sub(self.low) as u64)
        })
    }

    /// The distinct rows of `rows` (`width` ids each), in row order, each with
    /// its count: the sum of `counts` over its copies, or the number of copies
    /// without `counts`. Keys alone sort by [`Key::sort`]; keys with counts by a
    /// comparison sort.
    pub fn distinct<K: Key>(
        &self,
        rows: &[i64],
        counts: Option<&[u64]>,
        width: usize,
    ) -> (Vec<i64>, Vec<u64>) {
        let keys = rows.chunks_exact(width).map(|row| self.pack::<K>(row));
        match counts {
            None => self.distinct_keys(keys.collect(), width),
            Some(counts) => {
                let mut keyed: Vec<(K, u64)> = keys.zip(counts.iter().copied()).collect();
                keyed.sort_unstable_by_key(|&(key, _)| key);
                self.unpack_runs(keyed.into_iter(), width)
            }
        }
    }

    /// The distinct rows of packed `keys` (rows of `width` ids), in row order,
    /// each with its number of copies.
    pub fn distinct_keys<K: Key>(&self, mut keys: Vec<K>, width: usize) -> (Vec<i64>, Vec<u64>) {
        K::sort(&mut keys, self.bits * width);
        self.unpack_runs(keys.into_iter().map(|key| (key, 1)), width)
    }

    /// Sorted (key, count) pairs as distinct rows and summed counts.
    fn unpack_runs<K: Key>(
        &self,
        sorted: impl Iterator<Item = (K, u64)>,
        width: usize,
    ) -> (Vec<i64>, Vec<u64>) {
        let mut rows = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut last: Option<K> = None;
        for (key, count) in sorted {
            if last == Some(key) {
                *counts.last_mut().expect("a count") += count;
                continue;
            }
            last = Some(key);
            rows.extend(self.unpack(key.to_u128(), width));
            counts.push(count);
        }
        (rows, counts)
    }
}

/// Sorts keys below 2^bits, most significant digit first: a counting-sort
/// pass on the top 8 bits splits the keys into buckets, which are sorted
/// the same way on the next 8 bits, in parallel on the current rayon pool,
/// down to buckets small enough for the comparison sort (in the caches).
/// Skewed keys (a few frequent ids) only make some buckets deeper.
pub fn radix_sort(keys: &mut Vec<u64>, bits: usize) {
    let mut scratch = vec![0u64; keys.len()];
    msd_sort(keys, &mut scratch, bits);
}

fn msd_sort(keys: &mut [u64], scratch: &mut [u64], bits: usize) {
    const DIGIT: usize = 8;
    const SMALL: usize = 1 << 10;
    if keys.len() <= SMALL || bits == 0 {
        keys.sort_unstable();
        return;
    }
    let shift = bits.saturating_sub(DIGIT);
    let mask = (1u64 << (bits - shift)) - 1;
    let digit = |key: u64| ((key >> shift) & mask) as usize;
    let mut starts = vec![0usize; (1 << DIGIT) + 1];
    for &key in keys.iter() {
        starts[digit(key) + 1] += 1;
    }
    for b in 0..1 << DIGIT {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    for &key in keys.iter() {
        let slot = &mut next[digit(key)];
        scratch[*slot] = key;
        *slot += 1;
    }
    keys.copy_from_slice(scratch);
    split_at_bounds(keys, &starts)
        .into_par_iter()
        .zip(split_at_bounds(scratch, &starts))
        .for_each(|(bucket, scratch)| msd_sort(bucket, scratch, shift));
}

/// `values` cut at `bounds` (ascending, first 0, last the length) into disjoint slices.
pub fn split_at_bounds<'a, T>(mut values: &'a mut [T], bounds: &[usize]) -> Vec<&'a mut [T]> {
    let mut slices = Vec::with_capacity(bounds.len().saturating_sub(1));
    for pair in bounds.windows(2) {
        let (slice, rest) = std::mem::take(&mut values).split_at_mut(pair[1] - pair[0]);
        slices.push(slice);
        values = rest;
    }
    slices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repacked_keys_equal_keys_packed_directly() {
        // from a packing of the same bits (shifted low) and of fewer bits
        for (width, from, to) in [
            (3usize, (10i64, 110i64), (-5i64, 115i64)),
            (3, (10, 110), (10, 1 << 20)),
            (2, (-(1 << 40), 1 << 40), (i64::MIN, i64::MAX)),
            (4, (0, 7), (-3, 100)),
        ] {
            let a = Packing::spanning(from.0, from.1, width).unwrap();
            let b = Packing::spanning(to.0, to.1, width).unwrap();
            let mut state = 3u64;
            for _ in 0..200 {
                let row: Vec<i64> = (0..width)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        from.0 + ((state >> 20) % ((from.1 - from.0) as u64 + 1)) as i64
                    })
                    .collect();
                let key: u128 = a.pack(&row);
                assert_eq!(a.repack(key, &b, width), b.pack::<u128>(&row), "{row:?}");
                assert_eq!(a.unpack(key, width).collect::<Vec<_>>(), row);
            }
        }
    }

    #[test]
    fn radix_sort_sorts() {
        let mut state = 5u64;
        for bits in [1usize, 11, 12, 51, 64] {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut keys: Vec<u64> = (0..50_000)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    state & mask
                })
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            radix_sort(&mut keys, bits);
            assert_eq!(keys, want, "bits={bits}");
        }
    }
}
