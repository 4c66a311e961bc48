//! Hash partitioning: which of P partitions a key belongs to, for spilling
//! to disk or shuffling between machines.
//!
//! One partitioner serves the whole project: user ids in the streaming spill
//! of `perflaw.ingest` and in the Ray path, and window prefixes in
//! `blocks::partition_windows`. A key is an int64 id, a sequence of them (a
//! window prefix: one key is the prefix of length 1) or the UTF-8 bytes of a
//! string id. The mixing is written out here (murmur3's 64-bit finaliser,
//! FNV-1a over bytes) so that a partition never changes with a dependency;
//! the tests mirror it in pure Python.

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::batch::Batch;
use crate::error::{KernelError, Result};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// murmur3's 64-bit finaliser: spreads nearby keys over all 64 bits.
#[inline]
pub fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a sequence of int64 keys; `hash_keys(&[k]) == mix(k as u64)`.
#[inline]
pub fn hash_keys(keys: &[i64]) -> u64 {
    keys.iter().fold(0u64, |h, &key| mix(h ^ key as u64))
}

/// Hash of the bytes of a string id (FNV-1a, then mixed).
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    mix(bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME)))
}

/// The partition in `0..parts` of a hash: its high bits, scaled (no modulo bias).
#[inline]
pub fn bucket(hash: u64, parts: usize) -> usize {
    ((hash as u128 * parts as u128) >> 64) as usize
}

/// The partition of a sequence of keys (a window prefix, or one user id).
#[inline]
pub fn partition_of(keys: &[i64], parts: usize) -> usize {
    bucket(hash_keys(keys), parts)
}

/// The partition (of `parts`) of the m-item prefix of every window of m + 1
/// items of `batch`, in user order, into `groups` (resized; reusing it across
/// batches saves fresh memory). The hashes are computed in parallel over
/// ranges of users; the result is the same for any number of threads.
pub fn window_partitions(
    batch: &Batch,
    m: usize,
    max_len: Option<usize>,
    parts: usize,
    pool: &ThreadPool,
    groups: &mut Vec<u32>,
) {
    let windows_of = |u: usize| batch.sequence(u, max_len).len().saturating_sub(m);
    let users = batch.len();
    groups.resize((0..users).map(windows_of).sum(), 0);
    let ranges = (pool.current_num_threads() * 8).clamp(1, users.max(1));
    let mut pieces = Vec::with_capacity(ranges);
    let mut rest = &mut groups[..];
    for r in 0..ranges {
        let span = (r * users / ranges)..((r + 1) * users / ranges);
        let (piece, tail) = rest.split_at_mut(span.clone().map(windows_of).sum());
        pieces.push((span, piece));
        rest = tail;
    }
    pool.install(|| {
        pieces.into_par_iter().for_each(|(span, piece)| {
            let windows = span.flat_map(|u| batch.sequence(u, max_len).windows(m + 1));
            for (group, window) in piece.iter_mut().zip(windows) {
                *group = partition_of(&window[..m], parts) as u32;
            }
        })
    });
}

/// Most partitions a key set may be split into.
pub const MAX_PARTITIONS: usize = 1 << 20;

pub fn check_parts(parts: usize) -> Result<()> {
    if parts == 0 || parts > MAX_PARTITIONS {
        return Err(KernelError::BadShape(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}, got {parts}"
        )));
    }
    Ok(())
}

/// The partition of every int64 key.
pub fn partition_keys(keys: &[i64], parts: usize) -> Result<Vec<i64>> {
    check_parts(parts)?;
    Ok(keys
        .iter()
        .map(|&key| bucket(mix(key as u64), parts) as i64)
        .collect())
}

/// The partition of every string of an Arrow-style string array: string `i`
/// is `data[offsets[i]..offsets[i + 1]]`.
pub fn partition_strings(offsets: &[i64], data: &[u8], parts: usize) -> Result<Vec<i64>> {
    check_parts(parts)?;
    let bad = |msg: String| Err(KernelError::BadShape(msg));
    match (offsets.first(), offsets.last()) {
        (None, _) | (_, None) => return bad("string offsets must hold at least one entry".into()),
        (Some(&first), Some(&last)) if first < 0 || last as u128 > data.len() as u128 => {
            return bad(format!(
                "string offsets run from {first} to {last}, outside the {} bytes of data",
                data.len()
            ))
        }
        _ => {}
    }
    if let Some(i) = offsets.windows(2).position(|pair| pair[1] < pair[0]) {
        return bad(format!(
            "string offsets must be non-decreasing (at {})",
            i + 1
        ));
    }
    Ok(offsets
        .windows(2)
        .map(|pair| bucket(hash_bytes(&data[pair[0] as usize..pair[1] as usize]), parts) as i64)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_is_a_prefix_of_length_one() {
        for key in [0i64, 1, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(hash_keys(&[key]), mix(key as u64));
            assert_eq!(
                partition_keys(&[key], 7).unwrap()[0],
                partition_of(&[key], 7) as i64
            );
        }
    }

    #[test]
    fn every_key_lands_in_range_and_spreads() {
        let keys: Vec<i64> = (0..10_000).collect();
        let parts = partition_keys(&keys, 13).unwrap();
        let mut seen = [0usize; 13];
        for &p in &parts {
            assert!((0..13).contains(&p));
            seen[p as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 600 && n < 940), "{seen:?}");
        assert!(partition_keys(&keys, 0).is_err());
    }

    #[test]
    fn values_are_pinned() {
        // Partitions are internal, but a change should be deliberate.
        assert_eq!(mix(1), 0xb456_bcfc_34c2_cb2c);
        assert_eq!(hash_bytes(b""), mix(FNV_OFFSET));
    }

    #[test]
    fn strings_are_checked_and_hashed_by_content() {
        let data = b"alicebobalice";
        let parts = partition_strings(&[0, 5, 8, 13], data, 64).unwrap();
        assert_eq!(parts[0], parts[2]);
        assert!(partition_strings(&[0, 5, 4], data, 3).is_err());
        assert!(partition_strings(&[0, 14], data, 3).is_err());
        assert!(partition_strings(&[], data, 3).is_err());
        assert!(partition_strings(&[0, 1], data, 0).is_err());
    }
}
