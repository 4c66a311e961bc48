//! Count histograms of packed window keys, sorted in cache-sized buckets.
//!
//! The block entropy needs, of a bag of windows, two histograms {count: how
//! many distinct windows have it}: of the windows and of their m-item
//! prefixes. Here the windows are packed keys (see `packing.rs`), whose
//! prefix is the key without its last `bits` bits. The keys are first split
//! into buckets by a hash of their prefix (one counting-sort pass), so that
//! windows sharing a prefix share a bucket and each bucket fits in the CPU's
//! caches; each bucket is then sorted and counted on its own. Counts
//! are integers and histograms add up, so the result is the same for any
//! bucket order or thread count.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::packing::{split_at_bounds, Key};

/// Count histograms of the windows and of their prefixes.
pub type Histograms = (BTreeMap<u64, u64>, BTreeMap<u64, u64>);

/// Keys per bucket on average: a bucket then sorts within the L1 cache.
const BUCKET_KEYS: usize = 512;

/// Both count histograms of the keys of all `parts`, a window's prefix being
/// `key.prefix(last_bits)`. Buckets are counted in parallel on the current rayon pool.
pub fn key_histograms<K: Key>(parts: &[&[K]], last_bits: usize) -> Histograms {
    key_histograms_in(parts, last_bits, &mut Vec::new())
}

/// [`key_histograms`], the keys bucketed in `bucketed` (a buffer reused from
/// call to call: fresh memory costs page faults).
pub fn key_histograms_in<K: Key>(
    parts: &[&[K]],
    last_bits: usize,
    bucketed: &mut Vec<K>,
) -> Histograms {
    let keys = || parts.iter().flat_map(|part| part.iter().copied());
    let total: usize = parts.iter().map(|part| part.len()).sum();
    let buckets = (total / BUCKET_KEYS)
        .max(1)
        .next_power_of_two()
        .min(1 << 16);
    let bucket_bits = buckets.trailing_zeros();
    let bucket_of = |key: K| match bucket_bits {
        0 => 0,
        b => (key.prefix(last_bits).hash() >> (64 - b)) as usize,
    };
    let mut starts = vec![0usize; buckets + 1];
    for key in keys() {
        starts[bucket_of(key) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    // not cleared first: zeroing the whole buffer would cost a pass, and the
    // scatter below writes every slot
    bucketed.resize(total, K::ZERO);
    for key in keys() {
        let slot = &mut next[bucket_of(key)];
        bucketed[*slot] = key;
        *slot += 1;
    }
    split_at_bounds(bucketed, &starts)
        .into_par_iter()
        .fold(
            || Counter::new(last_bits),
            |mut counter, bucket| {
                counter.count(bucket);
                counter
            },
        )
        .map(Counter::into_histograms)
        .reduce(Histograms::default, add_histograms)
}

/// The sum of two pairs of count histograms.
pub fn add_histograms(mut total: Histograms, part: Histograms) -> Histograms {
    for (sum, part) in [(&mut total.0, part.0), (&mut total.1, part.1)] {
        for (count, windows) in part {
            *sum.entry(count).or_default() += windows;
        }
    }
    total
}

/// Counts buckets of keys into two histograms.
struct Counter {
    last_bits: usize,
    joint: Histogram,
    prefix: Histogram,
}

impl Counter {
    fn new(last_bits: usize) -> Self {
        Self {
            last_bits,
            joint: Histogram::default(),
            prefix: Histogram::default(),
        }
    }

    /// Adds the histograms of one bucket, which holds every window of its
    /// prefixes. Sorted, equal keys and keys with equal prefixes are
    /// neighbours, so one pass gives both (on this scale a sort is cheaper
    /// than two hash tables, whose probes mispredict).
    fn count<K: Key>(&mut self, keys: &mut [K]) {
        keys.sort_unstable();
        let (mut run, mut prefix_run) = (0u64, 0u64);
        for (i, &key) in keys.iter().enumerate() {
            run += 1;
            prefix_run += 1;
            let next = keys.get(i + 1).copied();
            if next != Some(key) {
                self.joint.add(run);
                run = 0;
            }
            if next.map(|next| next.prefix(self.last_bits)) != Some(key.prefix(self.last_bits)) {
                self.prefix.add(prefix_run);
                prefix_run = 0;
            }
        }
    }

    fn into_histograms(self) -> Histograms {
        (self.joint.into_map(), self.prefix.into_map())
    }
}

/// A histogram of counts: small counts (most of them) in an array, the rest in a map.
pub struct Histogram {
    small: [u64; Self::SMALL],
    large: BTreeMap<u64, u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            small: [0; Self::SMALL],
            large: BTreeMap::new(),
        }
    }
}

impl Histogram {
    const SMALL: usize = 256;

    pub fn add(&mut self, count: u64) {
        match self.small.get_mut(count as usize) {
            Some(slot) => *slot += 1,
            None => *self.large.entry(count).or_default() += 1,
        }
    }

    pub fn into_map(self) -> BTreeMap<u64, u64> {
        let mut map = self.large;
        for (count, &windows) in self.small.iter().enumerate() {
            if windows > 0 {
                map.insert(count as u64, windows);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Histograms by a HashMap of keys and one of prefixes: the definition.
    fn naive<K: Key + std::hash::Hash>(keys: &[K], last_bits: usize) -> Histograms {
        let mut windows: HashMap<K, u64> = HashMap::new();
        let mut prefixes: HashMap<K, u64> = HashMap::new();
        for &key in keys {
            *windows.entry(key).or_default() += 1;
            *prefixes.entry(key.prefix(last_bits)).or_default() += 1;
        }
        let histogram = |counts: HashMap<K, u64>| {
            let mut h = BTreeMap::new();
            for count in counts.into_values() {
                *h.entry(count).or_default() += 1;
            }
            h
        };
        (histogram(windows), histogram(prefixes))
    }

    fn keys(n: usize, modulus: u64, seed: u64) -> Vec<u64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // skewed: squaring a uniform draw piles keys near zero
                let u = (state >> 33) % modulus;
                u * u / modulus.max(1)
            })
            .collect()
    }

    #[test]
    fn histograms_equal_the_definition() {
        for (n, modulus, last_bits) in [
            (0, 1, 4),
            (1, 1, 4),
            (5, 3, 1),
            (10_000, 50, 3),
            (100_000, 1 << 20, 10),
            (300_000, 1 << 40, 17),
            // one prefix holds most keys: one bucket far larger than the rest
            (200_000, 64, 30),
        ] {
            let keys = keys(n, modulus, n as u64 + 1);
            let want = naive(&keys, last_bits);
            assert_eq!(
                key_histograms(&[&keys[..n / 3], &keys[n / 3..]], last_bits),
                want,
                "n={n} modulus={modulus}"
            );
            let wide: Vec<u128> = keys.iter().map(|&k| (k as u128) << 60 | 7).collect();
            assert_eq!(key_histograms(&[&wide], last_bits + 60), want, "u128 n={n}");
        }
    }

    #[test]
    fn histograms_do_not_depend_on_the_thread_count() {
        let keys = keys(150_000, 1 << 24, 9);
        let one = crate::batch::pool(1)
            .unwrap()
            .install(|| key_histograms(&[&keys], 8));
        let three = crate::batch::pool(3)
            .unwrap()
            .install(|| key_histograms(&[&keys], 8));
        assert_eq!(one, three);
    }
}
