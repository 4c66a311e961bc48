//! Rows of ids packed into one integer each, and a radix sort for such keys.
//!
//! Where every id of a bag of rows lies within 2^b of the smallest and
//! (m + 1)·b <= 128, a row becomes one u64 or u128 key: each id minus the
//! smallest in b bits, the first id highest. Integer order is then row order,
//! equal rows give equal keys and a row's prefix is its key's high bits, so
//! counting windows becomes sorting integers.

use rayon::prelude::*;

/// Rows packed into one integer each: every id minus the smallest, in `bits`
/// bits, the first id highest, so that integer order is row order.
pub struct Packing {
    pub low: i64,
    pub bits: usize,
}

/// The integer types rows pack into.
pub trait Key: Copy + Ord + Send + Sync {
    /// Sorts keys below 2^bits.
    fn sort(keys: &mut Vec<Self>, bits: usize);
    fn push(self, bits: usize, value: u64) -> Self;
    fn field(self, shift: usize, mask: u64) -> u64;
    /// The key without its last `bits` bits: the packed prefix of the row.
    fn prefix(self, bits: usize) -> Self;
    const ZERO: Self;
}

impl Key for u64 {
    fn sort(keys: &mut Vec<Self>, bits: usize) {
        radix_sort(keys, bits);
    }
    fn push(self, bits: usize, value: u64) -> Self {
        (self << bits) | value
    }
    fn field(self, shift: usize, mask: u64) -> u64 {
        (self >> shift) & mask
    }
    fn prefix(self, bits: usize) -> Self {
        self >> bits
    }
    const ZERO: Self = 0;
}

impl Key for u128 {
    fn sort(keys: &mut Vec<Self>, _bits: usize) {
        keys.par_sort_unstable();
    }
    fn push(self, bits: usize, value: u64) -> Self {
        (self << bits) | value as u128
    }
    fn field(self, shift: usize, mask: u64) -> u64 {
        ((self >> shift) as u64) & mask
    }
    fn prefix(self, bits: usize) -> Self {
        self >> bits
    }
    const ZERO: Self = 0;
}

impl Packing {
    pub fn of(rows: &[i64], width: usize) -> Option<Self> {
        let low = *rows.iter().min()?;
        let high = *rows.iter().max()?;
        let bits = (64 - (high.wrapping_sub(low) as u64).leading_zeros() as usize).max(1);
        (bits * width <= 128).then_some(Self { low, bits })
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
            None => {
                let mut keys: Vec<K> = keys.collect();
                K::sort(&mut keys, self.bits * width);
                self.unpack_runs(keys.into_iter().map(|key| (key, 1)), width)
            }
            Some(counts) => {
                let mut keyed: Vec<(K, u64)> = keys.zip(counts.iter().copied()).collect();
                keyed.sort_unstable_by_key(|&(key, _)| key);
                self.unpack_runs(keyed.into_iter(), width)
            }
        }
    }

    /// Sorted (key, count) pairs as distinct rows and summed counts.
    fn unpack_runs<K: Key>(
        &self,
        sorted: impl Iterator<Item = (K, u64)>,
        width: usize,
    ) -> (Vec<i64>, Vec<u64>) {
        let mask = if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        let mut rows = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut last: Option<K> = None;
        for (key, count) in sorted {
            if last == Some(key) {
                *counts.last_mut().expect("a count") += count;
                continue;
            }
            last = Some(key);
            rows.extend(
                (0..width)
                    .rev()
                    .map(|k| self.low.wrapping_add(key.field(k * self.bits, mask) as i64)),
            );
            counts.push(count);
        }
        (rows, counts)
    }
}

/// Sorts keys below 2^bits: least significant digit first, 11 bits a pass (the
/// digit counts stay in the L1 cache), a few linear passes instead of a
/// comparison sort's log n; short inputs take the comparison sort.
pub fn radix_sort(keys: &mut Vec<u64>, bits: usize) {
    const DIGIT: usize = 11;
    const MASK: u64 = (1 << DIGIT) - 1;
    if keys.len() < 1 << 12 {
        keys.sort_unstable();
        return;
    }
    let mut sorted = vec![0u64; keys.len()];
    for shift in (0..bits).step_by(DIGIT) {
        let mut starts = [0usize; 1 << DIGIT];
        for &key in keys.iter() {
            starts[((key >> shift) & MASK) as usize] += 1;
        }
        let mut next = 0;
        for start in starts.iter_mut() {
            (*start, next) = (next, next + *start);
        }
        for &key in keys.iter() {
            let digit = ((key >> shift) & MASK) as usize;
            sorted[starts[digit]] = key;
            starts[digit] += 1;
        }
        std::mem::swap(keys, &mut sorted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
