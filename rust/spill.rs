//! Windows spilled to disk by prefix partition, and counted back one partition at a time.
//!
//! The writer hashes each window's m-item prefix (in parallel) and appends the
//! window to its partition's file through a buffer, so memory stays at one
//! buffer per partition whatever the corpus size. The files are temporary, read
//! back only by [`spilled_histograms`] in the same process, so blocks are
//! written as native-endian int64 words, ids packed where they lie close
//! together (see `write_out`). Windows with the same prefix are always in the
//! same file, so the files' histograms add up to the corpus's.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use rayon::prelude::*;
use rayon::ThreadPool;

use crate::batch::Batch;
use crate::blocks::row_histograms;
use crate::partition;

/// Bytes buffered per partition file before a write.
const BUFFER: usize = 1 << 14;

/// Count histograms {count: how many distinct windows have it}, of the windows and of their prefixes.
pub type Histograms = (BTreeMap<u64, u64>, BTreeMap<u64, u64>);

/// Appends windows of m + 1 items to one file per prefix partition.
pub struct WindowWriter {
    m: usize,
    paths: Vec<PathBuf>,
    files: Vec<File>,
    /// windows waiting to be written, one buffer per partition
    buffers: Vec<Vec<i64>>,
    /// the partition of every window of the current batch, reused across batches
    groups: Vec<u32>,
}

impl WindowWriter {
    /// Creates (truncates) one file per path; the partition of a window is the index of its path.
    pub fn create(paths: &[PathBuf], m: usize) -> io::Result<Self> {
        let files = paths
            .iter()
            .map(File::create)
            .collect::<io::Result<Vec<_>>>()?;
        let buffers = (0..files.len())
            .map(|_| Vec::with_capacity(BUFFER / 8))
            .collect();
        Ok(Self {
            m,
            paths: paths.to_vec(),
            files,
            buffers,
            groups: Vec::new(),
        })
    }

    /// Spills every window of every sequence of `batch` (after truncation to `max_len`).
    pub fn add(
        &mut self,
        batch: &Batch,
        max_len: Option<usize>,
        pool: &ThreadPool,
    ) -> io::Result<()> {
        partition::window_partitions(
            batch,
            self.m,
            max_len,
            self.files.len(),
            pool,
            &mut self.groups,
        );
        let mut groups = self.groups.iter();
        for u in 0..batch.len() {
            for window in batch.sequence(u, max_len).windows(self.m + 1) {
                let group = *groups.next().expect("one group per window") as usize;
                let buffer = &mut self.buffers[group];
                buffer.extend_from_slice(window);
                if buffer.len() >= BUFFER / 8 {
                    write_out(&mut self.files[group], buffer)?;
                }
            }
        }
        Ok(())
    }

    /// Writes out every buffer, so that the files hold every window added.
    pub fn flush(&mut self) -> io::Result<()> {
        for (file, buffer) in self.files.iter_mut().zip(&mut self.buffers) {
            write_out(file, buffer)?;
        }
        Ok(())
    }

    /// Writes out the buffers, then counts every partition file on its own
    /// (as many at once as `pool` has threads) and adds up their histograms.
    pub fn histograms(&mut self, pool: &ThreadPool) -> io::Result<Histograms> {
        self.flush()?;
        spilled_histograms(&self.paths, self.m, pool)
    }
}

/// Appends the buffered windows to the file as one block and empties the buffer.
///
/// A block is a header of three int64 (ids in the block, the smallest id, bits
/// per id: 0 for unpacked), then the ids: where all lie within 2^b of the
/// smallest, as b-bit offsets packed into u64 words (ids never straddle two
/// words), else as they are. Typical ids take a third of the room.
fn write_out(file: &mut File, buffer: &mut Vec<i64>) -> io::Result<()> {
    let (Some(&low), Some(&high)) = (buffer.iter().min(), buffer.iter().max()) else {
        return Ok(());
    };
    let bits = (64 - (high.wrapping_sub(low) as u64).leading_zeros() as usize).max(1);
    let mut block = vec![buffer.len() as i64, low, 0];
    if bits <= 32 {
        block[2] = bits as i64;
        let per_word = 64 / bits;
        block.extend(buffer.chunks(per_word).map(|ids| {
            ids.iter().rev().fold(0u64, |word, &id| {
                (word << bits) | id.wrapping_sub(low) as u64
            }) as i64
        }));
    } else {
        block.extend_from_slice(buffer);
    }
    file.write_all(as_bytes(&block))?;
    buffer.clear();
    Ok(())
}

/// The ids of a file of blocks written by `write_out`, in order.
fn read_blocks(words: &[i64]) -> Option<Vec<i64>> {
    let mut ids = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        let [count, low, bits] = *rest.get(..3)? else {
            return None;
        };
        let (count, bits) = (usize::try_from(count).ok()?, usize::try_from(bits).ok()?);
        rest = &rest[3..];
        if bits == 0 {
            ids.extend_from_slice(rest.get(..count)?);
            rest = &rest[count..];
            continue;
        }
        let per_word = 64 / bits;
        let words_used = count.div_ceil(per_word);
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        for (k, &word) in rest.get(..words_used)?.iter().enumerate() {
            let here = per_word.min(count - k * per_word);
            ids.extend(
                (0..here).map(|j| low.wrapping_add(((word as u64 >> (j * bits)) & mask) as i64)),
            );
        }
        rest = &rest[words_used..];
    }
    Some(ids)
}

/// The bytes of int64 values, native-endian.
fn as_bytes(values: &[i64]) -> &[u8] {
    // SAFETY: any i64 is 8 initialised bytes, u8 has no alignment, and the length is exact.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// The histograms of all the partition files written by a [`WindowWriter`] with
/// this `m`, each file counted on its own (as many at once as `pool` has threads).
pub fn spilled_histograms(
    paths: &[PathBuf],
    m: usize,
    pool: &ThreadPool,
) -> io::Result<Histograms> {
    let parts: Vec<Histograms> = pool.install(|| {
        paths
            .par_iter()
            .map(|path| file_histograms(path, m))
            .collect::<io::Result<_>>()
    })?;
    let mut total: Histograms = Default::default();
    for (joint, prefix) in parts {
        for (sum, part) in [(&mut total.0, joint), (&mut total.1, prefix)] {
            for (count, windows) in part {
                *sum.entry(count).or_default() += windows;
            }
        }
    }
    Ok(total)
}

fn file_histograms(path: &PathBuf, m: usize) -> io::Result<Histograms> {
    let mut file = File::open(path)?;
    let bytes = file.metadata()?.len() as usize;
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", path.display()),
        )
    };
    if bytes % 8 != 0 {
        return Err(invalid("not a whole number of int64 words"));
    }
    let mut words = vec![0i64; bytes / 8];
    file.read_exact(as_bytes_mut(&mut words))?;
    let flat = read_blocks(&words).ok_or_else(|| invalid("a block of windows is cut short"))?;
    drop(words);
    row_histograms(&flat, m + 1).map_err(|err| invalid(&err.to_string()))
}

/// The bytes of int64 values, native-endian, to read into.
fn as_bytes_mut(values: &mut [i64]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; and every bit pattern is a valid i64.
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::pool;
    use crate::blocks::WindowCounts;

    #[test]
    fn blocks_give_back_the_ids_packed_or_not() {
        let path = std::env::temp_dir().join(format!("perflaw-blocks-test-{}", std::process::id()));
        let spans = [0i64, 1, 5, (1 << 21) - 1, (1 << 32) - 1, 1 << 32, i64::MAX];
        let mut want = Vec::new();
        let mut file = File::create(&path).unwrap();
        for (k, &span) in spans.iter().enumerate() {
            // ids from -7 up to -7 + span, some blocks of a length no word count divides
            let mut ids: Vec<i64> = (0..(31 + k))
                .map(|j| (-7i64).wrapping_add(span / 40 * j as i64))
                .collect();
            ids.push((-7i64).wrapping_add(span));
            want.extend_from_slice(&ids);
            write_out(&mut file, &mut ids).unwrap();
            assert!(ids.is_empty());
        }
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        let words: Vec<i64> = bytes
            .chunks_exact(8)
            .map(|b| i64::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(read_blocks(&words).unwrap(), want);
        assert_eq!(
            read_blocks(&words[..words.len() - 1]),
            None,
            "a cut block is refused"
        );
        std::fs::remove_file(&path).unwrap();
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
            let mut writer = WindowWriter::create(&paths, m).unwrap();
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
            writer.flush().unwrap();
            let mut table = WindowCounts::new(m).unwrap();
            table.update(
                &Batch::new(&offsets, &items).unwrap(),
                Some(20),
                &pool(1).unwrap(),
            );
            assert_eq!(
                spilled_histograms(&paths, m, &pool(2).unwrap()).unwrap(),
                table.histograms()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
