//! Windows grouped by prefix partition, held in memory up to a budget and
//! spilled to disk beyond it, then counted one partition at a time.
//!
//! The writer sends every window to its prefix's partition (the project's
//! partitioner, `partition.rs`), so that windows with the same prefix always
//! share a partition and the partitions' histograms add up to the corpus's.
//! Where a batch's ids allow (see `packing.rs`), a window is one packed key of
//! one or two 64-bit words, computed in parallel; the keys are grouped by
//! partition in parallel too, and each partition's keys of a batch become one
//! block. Blocks wait in memory; once they exceed the budget, every
//! partition's blocks are appended to its file and the buffers reused. (Fresh
//! memory, the page cache included, costs page faults: a corpus that fits the
//! budget never touches the disk.) The files are temporary, read back only
//! by [`WindowWriter::histograms`] in the same process, as native-endian words.
//!
//! A block is a header of four words: its kind (rows of ids, or keys of one
//! or two words), the number of windows, and the smallest and largest id of
//! its batch (the keys' packing); then the windows. Counting a partition
//! repacks every block's keys to one packing that covers them all (mostly
//! nothing to do: batches of one corpus share their ids' range), then counts
//! the keys (`keycount.rs`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::path::PathBuf;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::batch::Batch;
use crate::blocks::{partition_windows, row_histograms};
use crate::keycount::{add_histograms, key_histograms_in, Histograms};
use crate::packing::{Key, Packing};
use crate::partition::partition_of;

/// Block kinds: windows as m + 1 raw ids, or as packed keys of one or two words.
const ROWS: u64 = 0;
const KEYS64: u64 = 1;
const KEYS128: u64 = 2;
const HEADER_WORDS: usize = 4;

/// Groups windows of m + 1 items by prefix partition, in memory up to a
/// budget, in one file per partition beyond it.
pub struct WindowWriter {
    m: usize,
    paths: Vec<PathBuf>,
    files: Vec<File>,
    /// blocks not yet written, per partition
    pending: Vec<Vec<u64>>,
    budget_words: usize,
    /// buffers kept from batch to batch
    keys64: Scratch<u64>,
    keys128: Scratch<u128>,
}

/// The buffers of one batch's keys, kept from batch to batch.
struct Scratch<K> {
    /// per range of users, the windows it sends to each partition
    counts: Vec<Vec<usize>>,
    /// every window's key and partition, in user order
    keys: Vec<K>,
    groups: Vec<u32>,
}

impl<K> Default for Scratch<K> {
    fn default() -> Self {
        Self {
            counts: Vec::new(),
            keys: Vec::new(),
            groups: Vec::new(),
        }
    }
}

/// How one batch's windows become keys: the block kind, the ids' range, m and max_len.
struct BatchKeys {
    kind: u64,
    low: i64,
    high: i64,
    m: usize,
    max_len: Option<usize>,
}

impl WindowWriter {
    /// Creates (truncates) one file per path, the partition of a window being
    /// the index of its path; blocks stay in memory up to `budget_bytes`.
    pub fn create(paths: &[PathBuf], m: usize, budget_bytes: usize) -> io::Result<Self> {
        let files = paths
            .iter()
            .map(File::create)
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            m,
            paths: paths.to_vec(),
            pending: vec![Vec::new(); files.len()],
            files,
            budget_words: budget_bytes / 8,
            keys64: Scratch::default(),
            keys128: Scratch::default(),
        })
    }

    /// Adds every window of every sequence of `batch` (after truncation to `max_len`).
    pub fn add(
        &mut self,
        batch: &Batch,
        max_len: Option<usize>,
        pool: &ThreadPool,
    ) -> io::Result<()> {
        let width = self.m + 1;
        let Some((low, high)) = id_range(batch.items(), pool) else {
            return Ok(());
        };
        let how = |kind| BatchKeys {
            kind,
            low,
            high,
            m: self.m,
            max_len,
        };
        let pending = &mut self.pending;
        match Packing::spanning(low, high, width) {
            Some(packing) if packing.bits * width <= 64 => {
                group_keys(pending, &mut self.keys64, batch, &how(KEYS64), pool)
            }
            Some(_) => group_keys(pending, &mut self.keys128, batch, &how(KEYS128), pool),
            None => self.group_rows(batch, max_len, pool),
        }
        if self.pending.iter().map(Vec::len).sum::<usize>() > self.budget_words {
            self.write_out()?;
        }
        Ok(())
    }

    /// Groups the batch's windows as rows of ids (ids too far apart to pack).
    fn group_rows(&mut self, batch: &Batch, max_len: Option<usize>, pool: &ThreadPool) {
        let width = self.m + 1;
        let (rows, bounds) = partition_windows(batch, self.m, max_len, self.files.len(), pool);
        for (group, pending) in self.pending.iter_mut().enumerate() {
            let (start, end) = (bounds[group] as usize, bounds[group + 1] as usize);
            if end > start {
                pending.extend([ROWS, (end - start) as u64, 0, 0]);
                pending.extend(rows[start * width..end * width].iter().map(|&id| id as u64));
            }
        }
    }

    /// Appends every partition's pending blocks to its file, keeping the buffers.
    fn write_out(&mut self) -> io::Result<()> {
        for (file, pending) in self.files.iter_mut().zip(&mut self.pending) {
            file.write_all(words_as_bytes(pending))?;
            pending.clear();
        }
        Ok(())
    }

    /// Counts every partition on its own (as many at once as `pool` has
    /// threads) and adds up their histograms.
    pub fn histograms(&mut self, pool: &ThreadPool) -> io::Result<Histograms> {
        // (files are unbuffered: every block written out is already in them)
        let (m, paths, pending) = (self.m, &self.paths, &self.pending);
        let parts: Vec<Histograms> = pool.install(|| {
            (0..paths.len())
                .into_par_iter()
                .map_init(CountScratch::default, |scratch, p| {
                    partition_histograms(&paths[p], &pending[p], m, scratch)
                })
                .collect::<io::Result<_>>()
        })?;
        Ok(parts
            .into_iter()
            .fold(Histograms::default(), add_histograms))
    }
}

/// The smallest and the largest id, in one parallel pass; None when there are none.
fn id_range(items: &[i64], pool: &ThreadPool) -> Option<(i64, i64)> {
    let widen = |(low, high): (i64, i64), (a, b): (i64, i64)| (low.min(a), high.max(b));
    let none = (i64::MAX, i64::MIN);
    let range = pool.install(|| {
        items
            .par_chunks(1 << 16)
            .map(|chunk| chunk.iter().fold(none, |range, &id| widen(range, (id, id))))
            .reduce(|| none, widen)
    });
    Some(range).filter(|_| !items.is_empty())
}

/// `ranges` (at most one per user) ranges of users covering the batch.
fn user_ranges(users: usize, ranges: usize) -> Vec<std::ops::Range<usize>> {
    let ranges = ranges.clamp(1, users.max(1));
    (0..ranges)
        .map(|r| (r * users / ranges)..((r + 1) * users / ranges))
        .collect()
}

/// Splits `rest` into consecutive pieces of the given lengths.
fn split_lengths<'a, T>(
    mut rest: &'a mut [T],
    lengths: impl Iterator<Item = usize>,
) -> Vec<&'a mut [T]> {
    lengths
        .map(|length| {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(length);
            rest = tail;
            piece
        })
        .collect()
}

/// Appends the batch's windows, as packed keys, to the pending blocks: one block per partition.
///
/// Two parallel passes over ranges of users: the first packs every window
/// and finds its partition, counting the windows each range sends to each
/// partition; that gives every (partition, range) pair its own slice of the
/// partition's pending words, and the second pass copies each key into its
/// slice. Ranges keep user order within a partition, for any thread count.
fn group_keys<K: Key>(
    pending: &mut [Vec<u64>],
    scratch: &mut Scratch<K>,
    batch: &Batch,
    how: &BatchKeys,
    pool: &ThreadPool,
) {
    let (m, parts) = (how.m, pending.len());
    let packing = Packing::spanning(how.low, how.high, m + 1).expect("the ids pack");
    let ranges = user_ranges(batch.len(), pool.current_num_threads() * 4);
    let sequences = |users: std::ops::Range<usize>| users.map(|u| batch.sequence(u, how.max_len));
    let sizes: Vec<usize> = ranges
        .iter()
        .map(|users| {
            sequences(users.clone())
                .map(|seq| seq.len().saturating_sub(m))
                .sum()
        })
        .collect();
    let total = sizes.iter().sum();
    let Scratch {
        counts,
        keys,
        groups,
    } = scratch;
    keys.resize(total, K::ZERO);
    groups.resize(total, 0);
    counts.resize_with(ranges.len(), Vec::new);
    let mut keys_of = split_lengths(keys, sizes.iter().copied());
    let mut groups_of = split_lengths(groups, sizes.iter().copied());
    pool.install(|| {
        (
            counts.par_iter_mut(),
            keys_of.par_iter_mut(),
            groups_of.par_iter_mut(),
            ranges.par_iter(),
        )
            .into_par_iter()
            .for_each(|(counts, keys, groups, users)| {
                counts.clear();
                counts.resize(parts, 0);
                let mut placed = Placed {
                    keys,
                    groups,
                    counts,
                    next: 0,
                };
                let seqs = sequences(users.clone());
                match m + 1 {
                    2 => placed.windows_of::<2>(seqs, &packing),
                    3 => placed.windows_of::<3>(seqs, &packing),
                    4 => placed.windows_of::<4>(seqs, &packing),
                    width => {
                        for window in seqs.flat_map(|seq| seq.windows(width)) {
                            placed.place(window, &packing);
                        }
                    }
                }
            })
    });
    // slots[r][p]: where range r's keys of partition p go, in the spare
    // capacity of partition p's pending words (not zeroed first: every word
    // is written below)
    let mut slots: Vec<Vec<&mut [MaybeUninit<u64>]>> =
        ranges.iter().map(|_| Vec::with_capacity(parts)).collect();
    let mut added = Vec::with_capacity(parts);
    for (p, words) in pending.iter_mut().enumerate() {
        let windows: usize = counts.iter().map(|counts| counts[p]).sum();
        if windows > 0 {
            words.extend([how.kind, windows as u64, how.low as u64, how.high as u64]);
        }
        words.reserve(windows * K::WORDS);
        let tail = &mut words.spare_capacity_mut()[..windows * K::WORDS];
        let pieces = split_lengths(tail, counts.iter().map(|counts| counts[p] * K::WORDS));
        for (range_slots, piece) in slots.iter_mut().zip(pieces) {
            range_slots.push(piece);
        }
        added.push(windows * K::WORDS);
    }
    pool.install(|| {
        (
            slots.par_iter_mut(),
            keys_of.par_iter(),
            groups_of.par_iter(),
        )
            .into_par_iter()
            .for_each(|(slots, keys, groups)| {
                let mut next = vec![0usize; parts];
                for (&key, &group) in keys.iter().zip(groups.iter()) {
                    let group = group as usize;
                    write_key(key, &mut slots[group][next[group]..]);
                    next[group] += K::WORDS;
                }
                assert!(slots
                    .iter()
                    .zip(&next)
                    .all(|(slot, &next)| slot.len() == next));
            })
    });
    for (words, added) in pending.iter_mut().zip(added) {
        // SAFETY: the pass above wrote all `added` words past the length (the
        // assert: every range filled each of its slices), within the capacity.
        unsafe { words.set_len(words.len() + added) };
    }
}

/// Writes a key as its `K::WORDS` words, low word first.
#[inline(always)]
fn write_key<K: Key>(key: K, out: &mut [MaybeUninit<u64>]) {
    let value = key.to_u128();
    out[0].write(value as u64);
    if K::WORDS == 2 {
        out[1].write((value >> 64) as u64);
    }
}

/// One range's windows: each one's key and partition, and the count per partition.
struct Placed<'a, K> {
    keys: &'a mut [K],
    groups: &'a mut [u32],
    counts: &'a mut [usize],
    next: usize,
}

impl<K: Key> Placed<'_, K> {
    #[inline(always)]
    fn place(&mut self, window: &[i64], packing: &Packing) {
        let m = window.len() - 1;
        let partition = partition_of(&window[..m], self.counts.len());
        self.keys[self.next] = packing.pack(window);
        self.groups[self.next] = partition as u32; // parts <= MAX_PARTITIONS < 2^32
        self.counts[partition] += 1;
        self.next += 1;
    }

    /// Every window of every sequence, for one width known at compile time
    /// (so that the hash and the packing unroll).
    fn windows_of<'s, const W: usize>(
        &mut self,
        seqs: impl Iterator<Item = &'s [i64]>,
        packing: &Packing,
    ) {
        for seq in seqs {
            for window in seq.windows(W) {
                let window: &[i64; W] = window.try_into().expect("W items");
                self.place(window, packing);
            }
        }
    }
}

/// The bytes of 64-bit words, native-endian.
fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: any u64 is 8 initialised bytes, u8 has no alignment, and the length is exact.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// The bytes of 64-bit words, native-endian, to read into.
fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `words_as_bytes`; and every bit pattern is a valid u64.
    unsafe {
        std::slice::from_raw_parts_mut(
            words.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(words),
        )
    }
}

/// One block of windows.
struct Block<'a> {
    kind: u64,
    windows: usize,
    low: i64,
    high: i64,
    data: &'a [u64],
}

impl Block<'_> {
    fn packing(&self, width: usize) -> Option<Packing> {
        Packing::spanning(self.low, self.high, width)
    }

    /// Words a window takes in the block.
    fn window_words(&self, width: usize) -> usize {
        window_words(self.kind, width).expect("checked by read_blocks")
    }

    /// The block's windows as rows of ids, appended to `rows`.
    fn extend_rows(&self, rows: &mut Vec<i64>, width: usize) {
        if self.kind == ROWS {
            rows.extend(self.data.iter().map(|&id| id as i64));
            return;
        }
        let packing = self.packing(width).expect("a key block's ids pack");
        for key in self.data.chunks_exact(self.window_words(width)) {
            rows.extend(packing.unpack(key_of(key), width));
        }
    }
}

/// Words a window takes in a block of this kind; None for an unknown kind.
fn window_words(kind: u64, width: usize) -> Option<usize> {
    match kind {
        ROWS => Some(width),
        KEYS64 => Some(1),
        KEYS128 => Some(2),
        _ => None,
    }
}

/// A key of one or two words as a u128.
fn key_of(words: &[u64]) -> u128 {
    match words.len() {
        1 => words[0] as u128,
        _ => u128::from_words(words),
    }
}

/// The blocks of a run of words; None where one is cut short or malformed.
fn read_blocks(words: &[u64], width: usize) -> Option<Vec<Block<'_>>> {
    let mut blocks = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        let &[kind, windows, low, high] = rest.get(..HEADER_WORDS)? else {
            return None;
        };
        let (windows, low, high) = (usize::try_from(windows).ok()?, low as i64, high as i64);
        rest = &rest[HEADER_WORDS..];
        let data = rest.get(..windows.checked_mul(window_words(kind, width)?)?)?;
        rest = &rest[data.len()..];
        let block = Block {
            kind,
            windows,
            low,
            high,
            data,
        };
        if kind != ROWS && block.packing(width).is_none() {
            return None;
        }
        blocks.push(block);
    }
    Some(blocks)
}

/// Buffers a worker keeps from partition to partition while counting.
#[derive(Default)]
struct CountScratch {
    written: Vec<u64>,
    bucketed64: Vec<u64>,
    bucketed128: Vec<u128>,
}

/// The histograms of one partition: the blocks in its file, then those still pending.
fn partition_histograms(
    path: &PathBuf,
    pending: &[u64],
    m: usize,
    scratch: &mut CountScratch,
) -> io::Result<Histograms> {
    let width = m + 1;
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    let CountScratch {
        written,
        bucketed64,
        bucketed128,
    } = scratch;
    read_words(path, written).map_err(|err| invalid(&err.to_string()))?;
    let mut blocks = Vec::new();
    for words in [&written[..], pending] {
        blocks.extend(
            read_blocks(words, width)
                .ok_or_else(|| invalid("a block of windows is cut short or malformed"))?,
        );
    }
    if let Some(common) = common_packing(&blocks, width) {
        return Ok(if common.bits * width <= 64 {
            repacked_histograms(&blocks, &common, width, bucketed64)
        } else {
            repacked_histograms(&blocks, &common, width, bucketed128)
        });
    }
    let mut rows = Vec::with_capacity(blocks.iter().map(|b| b.windows * width).sum());
    for block in &blocks {
        block.extend_rows(&mut rows, width);
    }
    row_histograms(&rows, width).map_err(|err| invalid(&err.to_string()))
}

/// The whole file as native-endian words, into `words`.
fn read_words(path: &PathBuf, words: &mut Vec<u64>) -> io::Result<()> {
    let mut file = File::open(path)?;
    let bytes = file.metadata()?.len() as usize;
    if bytes % 8 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a whole number of words",
        ));
    }
    // not cleared first (only new capacity gets zeroed): the read overwrites every word
    words.resize(bytes / 8, 0);
    file.read_exact(words_as_bytes_mut(words))
}

/// One packing for every block, where all hold keys and their ids, taken
/// together, still pack into 128 bits a window.
fn common_packing(blocks: &[Block], width: usize) -> Option<Packing> {
    if blocks.iter().any(|block| block.kind == ROWS) {
        return None;
    }
    let low = blocks.iter().map(|block| block.low).min()?;
    let high = blocks.iter().map(|block| block.high).max()?;
    Packing::spanning(low, high, width)
}

/// The histograms of key blocks under the `common` packing: blocks already
/// in it are counted where they lie, the others repacked first.
fn repacked_histograms<K: Key>(
    blocks: &[Block],
    common: &Packing,
    width: usize,
    bucketed: &mut Vec<K>,
) -> Histograms {
    let mut repacked: Vec<K> = Vec::new();
    let mut slices: Vec<&[K]> = Vec::new();
    for block in blocks {
        let packing = block.packing(width).expect("checked by read_blocks");
        let same = packing.low == common.low && packing.bits == common.bits;
        match K::as_keys(block.data) {
            Some(keys) if same && block.kind == KEYS64 => slices.push(keys),
            _ => repacked.extend(
                block
                    .data
                    .chunks_exact(block.window_words(width))
                    .map(|key| K::from_u128(packing.repack(key_of(key), common, width))),
            ),
        }
    }
    slices.push(&repacked);
    key_histograms_in(&slices, common.bits, bucketed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::pool;
    use crate::blocks::WindowCounts;

    fn csr(seqs: &[Vec<i64>]) -> (Vec<i64>, Vec<i64>) {
        let mut offsets = vec![0i64];
        for seq in seqs {
            offsets.push(offsets.last().unwrap() + seq.len() as i64);
        }
        (offsets, seqs.concat())
    }

    #[test]
    fn blocks_of_every_kind_count_back_together() {
        // Batches whose ids pack into 8-byte keys, into 16-byte keys, or not at
        // all, some sharing windows, all in the same files: the files must
        // count like one table of every window.
        let dir = std::env::temp_dir().join(format!("perflaw-kinds-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spans = [3i64, 1 << 20, 1 << 21, 1 << 40, i64::MAX / 2];
        // budgets: every batch written out, some of them, none
        for (m, budget) in [
            (1usize, 0usize),
            (2, 0),
            (3, 0),
            (1, 600),
            (2, 2000),
            (3, 1 << 30),
            (4, 0), // widths past the unrolled ones
            (5, 600),
        ] {
            let paths: Vec<PathBuf> = (0..4)
                .map(|p| dir.join(format!("m{m}-{budget}-{p}.bin")))
                .collect();
            let mut writer = WindowWriter::create(&paths, m, budget).unwrap();
            let mut table = WindowCounts::new(m).unwrap();
            for (k, &span) in spans.iter().enumerate() {
                let seqs: Vec<Vec<i64>> = (0..60)
                    .map(|u| {
                        (0..(u % 13))
                            .map(|j| {
                                let id = ((u * 5 + j * j + k) % 7) as i64;
                                // a few far ids stretch the batch's span, the rest repeat
                                if j == 3 {
                                    span - id
                                } else {
                                    id - 2
                                }
                            })
                            .collect()
                    })
                    .collect();
                let (offsets, items) = csr(&seqs);
                let batch = Batch::new(&offsets, &items).unwrap();
                writer.add(&batch, None, &pool(2).unwrap()).unwrap();
                table.update(&batch, None, &pool(1).unwrap());
            }
            let written = std::fs::metadata(&paths[0]).unwrap().len();
            assert_eq!(
                written == 0,
                budget == 1 << 30,
                "m={m} budget={budget}: {written} bytes written"
            );
            assert_eq!(
                writer.histograms(&pool(2).unwrap()).unwrap(),
                table.histograms(),
                "m={m} budget={budget}"
            );
            if budget == 0 {
                // a file cut short is refused, never miscounted
                let bytes = std::fs::read(&paths[0]).unwrap();
                std::fs::write(&paths[0], &bytes[..bytes.len() - 8]).unwrap();
                assert!(writer.histograms(&pool(1).unwrap()).is_err());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn spilled_histograms_equal_the_table_histograms() {
        let seqs: Vec<Vec<i64>> = (0..300)
            .map(|u| {
                (0..(u % 37))
                    .map(|k| ((u * 7 + k * k) % 11) as i64 - 2)
                    .collect()
            })
            .collect();
        let items: Vec<i64> = seqs.concat();
        let mut offsets = vec![0i64];
        for seq in &seqs {
            offsets.push(offsets.last().unwrap() + seq.len() as i64);
        }
        let dir = std::env::temp_dir().join(format!("perflaw-spill-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for m in 1..4 {
            let paths: Vec<PathBuf> = (0..5).map(|p| dir.join(format!("m{m}-{p}.bin"))).collect();
            let mut writer = WindowWriter::create(&paths, m, 0).unwrap();
            // two halves, as two batches
            let half = seqs.len() / 2;
            let (first, second) = (&offsets[..=half], &offsets[half..]);
            let second: Vec<i64> = second.iter().map(|o| o - first[half]).collect();
            let cut = first[half] as usize;
            for (offs, its, threads) in [
                (first.to_vec(), &items[..cut], 1),
                (second, &items[cut..], 3),
            ] {
                writer
                    .add(
                        &Batch::new(&offs, its).unwrap(),
                        Some(20),
                        &pool(threads).unwrap(),
                    )
                    .unwrap();
            }
            let mut table = WindowCounts::new(m).unwrap();
            table.update(
                &Batch::new(&offsets, &items).unwrap(),
                Some(20),
                &pool(1).unwrap(),
            );
            assert_eq!(
                writer.histograms(&pool(2).unwrap()).unwrap(),
                table.histograms()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
