//! A stable 64-bit hash of each user's item sequence.
//!
//! The data fingerprint is the sum (mod 2^64) of these per-user hashes, so it
//! does not depend on user order or on how the data was split into batches or
//! shards: partial sums simply add up. The mixing function is written out here
//! (splitmix64's finaliser) so the value never changes with a dependency.

const SEED: u64 = 0x7065_7266_6c61_7731; // "perflaw1"

#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of one sequence: order-sensitive within the sequence, length included.
pub fn sequence_hash(seq: &[i64]) -> u64 {
    let h = seq.iter().fold(SEED, |h, &item| mix(h ^ item as u64));
    mix(h ^ seq.len() as u64)
}

/// The hashes of four sequences, each [`sequence_hash`]: the four chains of
/// multiplications are independent, so the core runs them side by side.
pub fn hash_four(seqs: [&[i64]; 4]) -> [u64; 4] {
    let mut hashes = [SEED; 4];
    let common = seqs.iter().map(|seq| seq.len()).min().unwrap_or(0);
    for i in 0..common {
        for (hash, seq) in hashes.iter_mut().zip(&seqs) {
            *hash = mix(*hash ^ seq[i] as u64);
        }
    }
    for (hash, seq) in hashes.iter_mut().zip(&seqs) {
        let rest = seq[common..]
            .iter()
            .fold(*hash, |h, &item| mix(h ^ item as u64));
        *hash = mix(rest ^ seq.len() as u64);
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_length_matter() {
        assert_ne!(sequence_hash(&[1, 2]), sequence_hash(&[2, 1]));
        assert_ne!(sequence_hash(&[]), sequence_hash(&[0]));
        assert_ne!(sequence_hash(&[0]), sequence_hash(&[0, 0]));
        assert_eq!(sequence_hash(&[5, 6, 7]), sequence_hash(&[5, 6, 7]));
    }

    #[test]
    fn four_at_once_equal_one_at_a_time() {
        let seqs: [&[i64]; 4] = [&[1, 2, 3], &[], &[9, 8, 7, 6, 5], &[-4, 4]];
        assert_eq!(hash_four(seqs), seqs.map(sequence_hash));
    }

    #[test]
    fn value_is_pinned() {
        // A fingerprint is stored with results: it must never drift between versions.
        assert_eq!(sequence_hash(&[1, 2, 3]), 0x3156_a2f4_080a_032a);
    }
}
