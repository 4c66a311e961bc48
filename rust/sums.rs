//! Exactly rounded sums of floats (the value of Python's `math.fsum`), also in parallel.

use rayon::prelude::*;
use rayon::ThreadPool;

/// [`exact_sum`] of a slice, in parallel: the exactly rounded sum of its
/// [`parallel_partials`], for any number of threads. None when a value is NaN
/// or infinite, or the sum overflows.
pub fn parallel_exact_sum(values: &[f64], pool: &ThreadPool) -> Option<f64> {
    let total = exact_sum(parallel_partials(values, pool)?.into_iter());
    // an intermediate overflow (math.fsum raises OverflowError there) gives no value
    total.is_finite().then_some(total)
}

/// A few floats whose exact (real) sum is that of `values`: each chunk's
/// non-overlapping partials, computed in parallel. The exact sum of several such
/// lists put together is the exact sum of all their values. None when a value or
/// a partial is NaN or infinite.
pub fn parallel_partials(values: &[f64], pool: &ThreadPool) -> Option<Vec<f64>> {
    let chunks: Vec<Vec<f64>> = pool.install(|| {
        values
            .par_chunks(1 << 16)
            .map(|chunk| {
                let finite = chunk.iter().all(|v| v.is_finite());
                finite.then(|| partials(chunk.iter().copied()))
            })
            .collect::<Option<_>>()
    })?;
    let all: Vec<f64> = chunks.into_iter().flatten().collect();
    all.iter().all(|p| p.is_finite()).then_some(all)
}

/// The sum of finite floats, exactly rounded to nearest (ties to even):
/// Shewchuk's non-overlapping partials, then a final correction for the
/// half-way case, as in CPython's `math.fsum`.
pub fn exact_sum(values: impl Iterator<Item = f64>) -> f64 {
    round_partials(&partials(values))
}

/// Shewchuk's non-overlapping partials, smallest magnitude first: their exact
/// (real) sum is the exact sum of the values.
fn partials(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in values {
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        if x != 0.0 {
            partials.push(x); // as math.fsum: a zero adds nothing, so fsum([-0.0]) is 0.0
        }
    }
    partials
}

/// The exactly rounded value of the sum of non-overlapping partials.
fn round_partials(partials: &[f64]) -> f64 {
    let Some(mut n) = partials.len().checked_sub(1) else {
        return 0.0;
    };
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // Round half to even: when the rest below `lo` has lo's sign, the true
    // sum is past the half-way point that `hi + lo` rounded away from.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::pool;

    #[test]
    fn parallel_exact_sum_equals_the_sequential_one() {
        let mut state = 9u64;
        let values: Vec<f64> = (0..300_000)
            .map(|k| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let magnitude = 10f64.powi((state >> 59) as i32 * 4 - 30);
                let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                sign * magnitude * ((state >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        let sequential = exact_sum(values.iter().copied());
        for threads in [1, 2, 5] {
            let got = parallel_exact_sum(&values, &pool(threads).unwrap()).unwrap();
            assert_eq!(got.to_bits(), sequential.to_bits(), "threads={threads}");
        }
        assert_eq!(
            parallel_exact_sum(&[1.0, f64::NAN], &pool(1).unwrap()),
            None
        );
        assert_eq!(parallel_exact_sum(&[], &pool(1).unwrap()), Some(0.0));
        // partials of two halves, put together, sum to the whole
        let (left, right) = values.split_at(123_457);
        let mut both = parallel_partials(left, &pool(2).unwrap()).unwrap();
        both.extend(parallel_partials(right, &pool(1).unwrap()).unwrap());
        assert!(both.len() < values.len() / 100, "{} partials", both.len());
        assert_eq!(exact_sum(both.into_iter()).to_bits(), sequential.to_bits());
        assert_eq!(parallel_exact_sum(&[1e308, 1e308], &pool(1).unwrap()), None);
        assert_eq!(
            parallel_exact_sum(&[-0.0], &pool(1).unwrap()).map(f64::to_bits),
            Some(0)
        );
    }

    #[test]
    fn exact_sum_rounds_like_python_fsum() {
        // Values from Python: math.fsum of each list.
        assert_eq!(exact_sum([0.1; 10].into_iter()), 1.0);
        assert_eq!(exact_sum([1e100, 1.0, -1e100].into_iter()), 1.0);
        assert_eq!(
            exact_sum([1.0, 1e-16, 1e-16].into_iter()),
            1.000_000_000_000_000_2
        );
        assert_eq!(
            exact_sum([1.0, 2f64.powi(-53), 2f64.powi(-106)].into_iter()),
            1.000_000_000_000_000_2
        );
        assert_eq!(exact_sum([].into_iter()), 0.0);
    }
}
