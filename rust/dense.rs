//! `DenseIds`: gives u64 keys dense ids 0, 1, 2, ... in first-seen order.
//!
//! A small open-addressing table made for the kernels' per-sequence work:
//! it is reset in O(1) by bumping a generation stamp instead of clearing, and
//! is sized to the sequence at hand, so short sequences stay in cache.

/// Tables with at least this many slots (256 KiB) are probed with branches: beyond the
/// caches, a write for every key costs more than the mispredicted branches it saves.
pub const LARGE: usize = 1 << 14;

/// Empties a generation-stamped table of `capacity` slots (a power of two) in O(1):
/// grows `slots` when needed, bumps `generation` (clearing every stamp with
/// `unstamp` only when it would wrap) and returns the table's (mask, shift) for
/// Fibonacci hashing. A slot is occupied iff its stamp equals the generation.
pub fn empty_slots<S: Copy + Default>(
    slots: &mut Vec<S>,
    generation: &mut u32,
    capacity: usize,
    unstamp: impl Fn(&mut S),
) -> (usize, u32) {
    if capacity > slots.len() {
        *slots = vec![S::default(); capacity];
        *generation = 0;
    }
    if *generation == u32::MAX {
        slots.iter_mut().for_each(unstamp);
        *generation = 0;
    }
    *generation += 1;
    (capacity - 1, 64 - capacity.trailing_zeros())
}

#[derive(Clone, Copy, Default)]
struct Slot {
    key: u64,
    stamp: u32, // the slot is occupied iff stamp == generation
    id: u32,
}

#[derive(Default)]
pub struct DenseIds {
    slots: Vec<Slot>,
    generation: u32,
    shift: u32,
    mask: usize,
    len: u32,
}

impl DenseIds {
    /// Empties the table and makes room for `expected` distinct keys.
    pub fn reset(&mut self, expected: usize) {
        // at most 1/4 full while the table stays in cache (fewer collisions), 1/2 beyond
        let spread = if expected <= 4096 { 4 } else { 2 };
        let capacity = (expected.max(8) * spread).next_power_of_two();
        (self.mask, self.shift) =
            empty_slots(&mut self.slots, &mut self.generation, capacity, |s| {
                s.stamp = 0
            });
        self.len = 0;
    }

    /// Number of distinct keys since the last reset.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The id of `key`, assigning the next one if it is new. At most
    /// `expected` distinct keys may be added after a reset.
    #[inline]
    pub fn id(&mut self, key: u64) -> u32 {
        // Fibonacci hashing: the top bits of the product are well mixed.
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize;
        if self.mask >= LARGE {
            // a table beyond the caches: branches, so that a seen key writes nothing
            loop {
                let slot = &mut self.slots[i];
                if slot.stamp != self.generation {
                    *slot = Slot {
                        key,
                        stamp: self.generation,
                        id: self.len,
                    };
                    self.len += 1;
                    return slot.id;
                }
                if slot.key == key {
                    return slot.id;
                }
                i = (i + 1) & self.mask;
            }
        }
        // probe past occupied slots holding other keys... (one branch on one value:
        // black_box keeps the compiler from splitting it into two, the first of them
        // on whether the slot is live, which is as unpredictable as a coin toss)
        let live = loop {
            let slot = &self.slots[i];
            let live = slot.stamp == self.generation;
            if !std::hint::black_box(live & (slot.key != key)) {
                break live;
            }
            i = (i + 1) & self.mask;
        };
        // ...then take the slot's id if it holds `key`, or fill it, without a branch
        let seen = std::hint::black_box(live);
        let slot = &mut self.slots[i];
        let mask = (seen as u32).wrapping_neg();
        let id = (slot.id & mask) | (self.len & !mask);
        *slot = Slot {
            key,
            stamp: self.generation,
            id,
        };
        self.len += !seen as u32;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_order_and_reset() {
        let mut ids = DenseIds::default();
        ids.reset(4);
        let got: Vec<u32> = [5u64, u64::MAX, 5, 0, u64::MAX]
            .iter()
            .map(|&k| ids.id(k))
            .collect();
        assert_eq!(got, vec![0, 1, 0, 2, 1]);
        assert_eq!(ids.len(), 3);
        ids.reset(2);
        assert_eq!(ids.id(0), 0);
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn grows_for_larger_inputs() {
        let mut ids = DenseIds::default();
        ids.reset(3);
        ids.reset(10_000);
        for k in 0..10_000u64 {
            assert_eq!(ids.id(k * 7919), k as u32);
        }
        for k in 0..10_000u64 {
            assert_eq!(ids.id(k * 7919), k as u32);
        }
    }
}
