//! CSR batches of sequences, and parallel maps over them on a rayon pool.
//!
//! Each sequence's result is computed independently and collected in user
//! order, so results are bit-identical for any thread count.

use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::error::{KernelError, Result, MAX_THREADS};

/// A validated view of CSR sequences: user `u` owns `items[offsets[u]..offsets[u+1]]`.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    offsets: &'a [i64],
    items: &'a [i64],
}

impl<'a> Batch<'a> {
    /// Checks the offsets once, so that slicing later can never go out of bounds.
    pub fn new(offsets: &'a [i64], items: &'a [i64]) -> Result<Self> {
        let (first, last) = match (offsets.first(), offsets.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => {
                return Err(KernelError::OffsetsBounds {
                    first: -1,
                    last: -1,
                    n_items: items.len(),
                })
            }
        };
        if first != 0 || last != items.len() as i64 {
            return Err(KernelError::OffsetsBounds {
                first,
                last,
                n_items: items.len(),
            });
        }
        for (index, pair) in offsets.windows(2).enumerate() {
            if pair[1] < pair[0] {
                return Err(KernelError::OffsetsNotMonotone {
                    index: index + 1,
                    value: pair[1],
                    previous: pair[0],
                });
            }
        }
        Ok(Self { offsets, items })
    }

    /// Every item of every sequence, untruncated.
    pub fn items(&self) -> &'a [i64] {
        self.items
    }

    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence of user `u`, keeping only its last `max_len` items when given.
    pub fn sequence(&self, u: usize, max_len: Option<usize>) -> &'a [i64] {
        last_items(
            &self.items[self.offsets[u] as usize..self.offsets[u + 1] as usize],
            max_len,
        )
    }

    /// Longest sequence (after truncation), to reject lengths the kernels cannot index.
    pub fn check_lengths(&self, max_len: Option<usize>) -> Result<()> {
        for u in 0..self.len() {
            let length = self.sequence(u, max_len).len();
            if length > u32::MAX as usize {
                return Err(KernelError::SequenceTooLong { user: u, length });
            }
        }
        Ok(())
    }

    /// `f(scratch, sequence)` for every user, in parallel, results in user order.
    /// `S` is per-worker scratch space reused across sequences.
    pub fn map<S, T, F>(&self, pool: &ThreadPool, max_len: Option<usize>, f: F) -> Vec<T>
    where
        S: Default,
        T: Send,
        F: Fn(&mut S, &[i64]) -> T + Sync,
    {
        pool.install(|| {
            (0..self.len())
                .into_par_iter()
                .with_min_len(64)
                .map_init(S::default, |scratch, u| {
                    f(scratch, self.sequence(u, max_len))
                })
                .collect()
        })
    }
}

/// The last `max_len` items of `seq` (all of them without a limit).
pub fn last_items(seq: &[i64], max_len: Option<usize>) -> &[i64] {
    match max_len {
        Some(keep) if seq.len() > keep => &seq[seq.len() - keep..],
        _ => seq,
    }
}

/// How many pools of different sizes are kept for reuse; the least recently
/// used one beyond that is dropped, and its threads exit.
pub const KEPT_POOLS: usize = 4;

/// A rayon pool with exactly `threads` workers (0 = all cores), reused across calls.
///
/// At most `KEPT_POOLS` sizes are cached, so calls with many different thread
/// counts never leave threads behind.
pub fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    if threads > MAX_THREADS {
        return Err(KernelError::TooManyThreads(threads));
    }
    static POOLS: OnceLock<Mutex<Vec<(usize, Arc<ThreadPool>)>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(index) = pools.iter().position(|(size, _)| *size == threads) {
        let entry = pools.remove(index);
        let found = entry.1.clone();
        pools.insert(0, entry); // most recently used first
        return Ok(found);
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("perflaw-{i}"))
        .build()
        .map_err(|e| KernelError::ThreadPool(e.to_string()))?;
    let built = Arc::new(built);
    pools.insert(0, (threads, built.clone()));
    pools.truncate(KEPT_POOLS);
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_offsets() {
        let items = [1, 2, 3];
        assert!(matches!(
            Batch::new(&[], &items),
            Err(KernelError::OffsetsBounds { .. })
        ));
        assert!(matches!(
            Batch::new(&[1, 3], &items),
            Err(KernelError::OffsetsBounds { .. })
        ));
        assert!(matches!(
            Batch::new(&[0, 4], &items),
            Err(KernelError::OffsetsBounds { .. })
        ));
        assert!(matches!(
            Batch::new(&[0, 2, 1, 3], &items),
            Err(KernelError::OffsetsNotMonotone { index: 2, .. })
        ));
    }

    #[test]
    fn truncates_to_the_last_items() {
        let items = [1, 2, 3, 4, 5];
        let batch = Batch::new(&[0, 3, 5], &items).unwrap();
        assert_eq!(batch.sequence(0, Some(2)), &[2, 3]);
        assert_eq!(batch.sequence(1, Some(9)), &[4, 5]);
    }

    #[test]
    fn map_keeps_user_order_for_any_thread_count() {
        let items: Vec<i64> = (0..1000).collect();
        let offsets: Vec<i64> = (0..=100).map(|u| u * 10).collect();
        let batch = Batch::new(&offsets, &items).unwrap();
        let sums = |t| batch.map::<(), _, _>(&pool(t).unwrap(), None, |_, s| s.iter().sum::<i64>());
        assert_eq!(sums(1), sums(2));
        assert_eq!(sums(1)[3], (30..40).sum::<i64>());
    }

    #[test]
    fn pools_are_bounded_and_reused() {
        let first = pool(3).unwrap();
        for threads in 1..=2 * KEPT_POOLS {
            pool(threads).unwrap();
        }
        assert!(Arc::ptr_eq(
            &pool(2 * KEPT_POOLS).unwrap(),
            &pool(2 * KEPT_POOLS).unwrap()
        ));
        assert!(!Arc::ptr_eq(&first, &pool(3).unwrap())); // evicted, rebuilt
        assert!(matches!(
            pool(MAX_THREADS + 1),
            Err(KernelError::TooManyThreads(_))
        ));
    }
}
