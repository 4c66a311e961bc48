//! The per-user statistics of a batch, each sequence visited once.
//!
//! ApEn and the Lempel-Ziv match-length sum come from one walk over the
//! repeated windows of a sequence (`apen::apen_and_lz_sum`), with the suffix
//! array of `coding` where that walk gives up; the fingerprint hashes are
//! computed four sequences at a time. Each value is the one its own kernel gives.

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::batch::Batch;
use crate::{apen, coding, fingerprint};

/// Per-worker scratch space of the ApEn and Lempel-Ziv kernels.
#[derive(Default)]
pub struct Scratch {
    apen: apen::Scratch,
    coding: coding::Scratch,
}

/// ApEn and the Lempel-Ziv sum of one sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UserStats {
    /// Signed ApEn(m) (NaN with at most m items).
    pub apen: f64,
    /// Sum of the Lempel-Ziv match lengths (`coding::lz_lambda_sum`).
    pub lz_sum: u64,
}

/// ApEn(m) and the Lempel-Ziv sum of `seq`.
pub fn user_stats(seq: &[i64], m: usize, scratch: &mut Scratch) -> UserStats {
    let (apen, lz_sum) = apen::apen_and_lz_sum(seq, m, &mut scratch.apen);
    UserStats {
        apen,
        lz_sum: lz_sum.unwrap_or_else(|| coding::lz_lambda_sum(seq, &mut scratch.coding)),
    }
}

/// The fingerprint hash of every sequence of `batch` (untruncated), in user
/// order; four at a time, so that their chains of multiplications overlap.
pub fn sequence_hashes(batch: &Batch, pool: &ThreadPool) -> Vec<u64> {
    let users = batch.len();
    pool.install(|| {
        (0..users.div_ceil(4))
            .into_par_iter()
            .with_min_len(16)
            .flat_map_iter(|group| {
                let first = 4 * group;
                if first + 4 <= users {
                    fingerprint::hash_four(std::array::from_fn(|k| batch.sequence(first + k, None)))
                        .to_vec()
                } else {
                    (first..users)
                        .map(|u| fingerprint::sequence_hash(batch.sequence(u, None)))
                        .collect()
                }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::pool;

    /// Pseudo-random sequences over a few alphabets, some with a long repeated run.
    fn sequences(count: usize) -> Vec<Vec<i64>> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        (0..count)
            .map(|k| {
                let n = [0, 1, 2, 3, 7, 50, 300, 20_000][k % 8];
                let alphabet = [1, 2, 5, 40, 1 << 40][k % 5];
                let mut seq: Vec<i64> = (0..n).map(|_| next(alphabet) as i64 - 3).collect();
                if k % 3 == 0 && n > 20 {
                    let copy = seq[..n / 2].to_vec(); // a long repeat: past the walk's budget
                    seq[n / 2..n / 2 + copy.len()].copy_from_slice(&copy);
                }
                seq
            })
            .collect()
    }

    #[test]
    fn equals_each_kernel_alone() {
        let mut scratch = Scratch::default();
        for seq in sequences(120) {
            for m in [1, 2, 3] {
                let got = user_stats(&seq, m, &mut scratch);
                let want_apen = apen::apen(&seq, m, &mut apen::Scratch::default());
                assert_eq!(
                    got.apen.to_bits(),
                    want_apen.to_bits(),
                    "n={} m={m}",
                    seq.len()
                );
                assert_eq!(
                    got.lz_sum,
                    coding::lz_lambda_sum(&seq, &mut coding::Scratch::default())
                );
            }
        }
    }

    #[test]
    fn hashes_four_at_a_time_equal_one_at_a_time() {
        let seqs = sequences(41);
        let items: Vec<i64> = seqs.concat();
        let mut offsets = vec![0i64];
        offsets.extend(seqs.iter().scan(0i64, |end, seq| {
            *end += seq.len() as i64;
            Some(*end)
        }));
        let batch = Batch::new(&offsets, &items).unwrap();
        let want: Vec<u64> = seqs
            .iter()
            .map(|seq| fingerprint::sequence_hash(seq))
            .collect();
        for threads in [1, 3] {
            assert_eq!(sequence_hashes(&batch, &pool(threads).unwrap()), want);
        }
    }
}
