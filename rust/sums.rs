//! Exactly rounded sums of floats (the value of Python's `math.fsum`), also in parallel.

use rayon::prelude::*;
use rayon::ThreadPool;

/// [`exact_sum`] of a slice, in parallel: the exactly rounded sum of its
/// [`parallel_partials`], for any number of threads. None when a value is NaN
/// or infinite, or the sum overflows.
pub fn parallel_exact_sum(values: &[f64], pool: &ThreadPool) -> Option<f64> {
    let total = exact_sum(parallel_partials(values, pool)?.into_iter());
    // a sum past the floats' range (math.fsum raises OverflowError) gives no value
    total.is_finite().then_some(total)
}

/// Values summed by one task of [`parallel_partials`].
const CHUNK: usize = 1 << 16;
const _: () = assert!(
    CHUNK <= WideSum::MAX_TERMS,
    "a chunk's digits could overflow"
);

/// A few floats whose exact (real) sum is that of `values`: each chunk's sum,
/// held exactly in a [`WideSum`] (computed in parallel), as the floats of its
/// digits. The exact sum of several such lists put together is the exact sum
/// of all their values. None when a value or a partial is NaN or infinite.
pub fn parallel_partials(values: &[f64], pool: &ThreadPool) -> Option<Vec<f64>> {
    let chunk_partials = |chunk: &[f64]| {
        let mut sum = WideSum::default();
        chunk
            .iter()
            .all(|&v| sum.add(v))
            .then(|| sum.digit_floats())
    };
    let chunks: Vec<Vec<f64>> = if values.len() <= CHUNK {
        // one chunk: handing it to the pool would cost more than summing it
        vec![chunk_partials(values)?]
    } else {
        pool.install(|| {
            values
                .par_chunks(CHUNK)
                .map(chunk_partials)
                .collect::<Option<_>>()
        })?
    };
    let all: Vec<f64> = chunks.into_iter().flatten().collect();
    all.iter().all(|p| p.is_finite()).then_some(all)
}

/// The exact sum of finite floats, as a fixed-point number of 32-bit digits
/// spanning every float's bits (a "superaccumulator"): adding a float adds its
/// significand, cut at digit boundaries, to three digits, with no rounding
/// and no branch on the data; carries wait until the end. Far quicker than
/// Shewchuk's partials when many values are summed.
pub struct WideSum {
    /// digit i weighs 2^(32 i - 1075); signed, so that carries can wait
    digits: [i64; Self::DIGITS],
}

impl Default for WideSum {
    fn default() -> Self {
        Self {
            digits: [0; Self::DIGITS],
        }
    }
}

impl WideSum {
    /// Bit 0 weighs 2^-1075; a float's lowest bit is at least bit 1 (the
    /// subnormals' 2^-1074) and its highest below bit 2047 + 53.
    const DIGITS: usize = (2047 + 53) / 32 + 2;
    /// Each term adds less than 2^32 to a digit: this many leave no i64 overflow.
    const MAX_TERMS: usize = 1 << 30;

    /// Adds a finite float exactly; false (adding nothing) for NaN or an infinity.
    #[inline]
    pub fn add(&mut self, value: f64) -> bool {
        let bits = value.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as usize;
        if exponent == 0x7ff {
            return false;
        }
        let fraction = bits & ((1 << 52) - 1);
        // subnormals (exponent 0) weigh like exponent 1, without the hidden bit
        let (significand, lowest) = match exponent {
            0 => (fraction, 1),
            _ => (fraction | 1 << 52, exponent),
        };
        // the significand (53 bits) moved to its place spans three digits
        let shifted = significand << (lowest % 32); // below 2^84: low 64 bits here...
        let top = (significand >> (32 - lowest % 32)) >> 32; // ...and the rest
        let negative = -((bits >> 63) as i64); // all ones for a negative value
        let signed = |piece: u64| ((piece as i64) ^ negative) - negative;
        let digits = &mut self.digits[lowest / 32..lowest / 32 + 3];
        digits[0] += signed(shifted & 0xffff_ffff);
        digits[1] += signed(shifted >> 32);
        digits[2] += signed(top);
        true
    }

    /// The magnitude's digits with their carries done, each in 0..2^32, and
    /// whether the sum is negative.
    fn magnitude(&self) -> ([i64; Self::DIGITS], bool) {
        let carried = |mut digits: [i64; Self::DIGITS]| {
            for i in 0..Self::DIGITS - 1 {
                let carry = digits[i] >> 32; // floor division: the digit ends in 0..2^32
                digits[i] -= carry << 32;
                digits[i + 1] += carry;
            }
            digits
        };
        let digits = carried(self.digits);
        if digits[Self::DIGITS - 1] >= 0 {
            return (digits, false);
        }
        (carried(self.digits.map(|digit| -digit)), true)
    }

    /// One float per nonzero digit, each exact (a 32-bit integer times a power
    /// of two no smaller than the subnormals' step); their sum is the exact sum.
    /// A digit beyond the floats' range gives an infinity.
    pub fn digit_floats(&self) -> Vec<f64> {
        let (digits, negative) = self.magnitude();
        let sign = if negative { -1.0 } else { 1.0 };
        digits
            .iter()
            .enumerate()
            .filter(|(_, &digit)| digit != 0)
            .map(|(i, &digit)| sign * times_power_of_two(digit as f64, 32 * i as i32 - 1075))
            .collect()
    }
}

/// x * 2^k, exact wherever the result is a float (two steps where 2^k is not one).
fn times_power_of_two(x: f64, k: i32) -> f64 {
    let power = |k: i32| f64::from_bits(((k + 1023) as u64) << 52); // for -1022 <= k <= 1023
    match k {
        k if k < -1022 => x * power(k + 600) * power(-600),
        k if k > 1023 => x * power(k - 600) * power(600),
        k => x * power(k),
    }
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

    #[test]
    fn wide_sums_are_exact_on_hard_cases() {
        let tiny = f64::from_bits(1); // the smallest subnormal
        let cases: Vec<Vec<f64>> = vec![
            vec![1e308, 1e308, -1e308, -1e308, 1.0],
            vec![f64::MAX, -f64::MAX, tiny, tiny, -tiny],
            vec![tiny; 1000],
            vec![f64::MIN_POSITIVE, -tiny, 3.0 * tiny, 1e-300],
            vec![0.1; 10],
            vec![1e100, 1.0, -1e100, 1e-100, -0.0],
            vec![1.0, 2f64.powi(-53), 2f64.powi(-106), -2f64.powi(-120)],
            vec![-0.0],
            vec![-3.0, 1.0, -1e-300],
            vec![],
        ];
        for values in cases {
            let mut sum = WideSum::default();
            assert!(values.iter().all(|&v| sum.add(v)));
            let digits = sum.digit_floats();
            assert!(digits.iter().all(|d| d.is_finite()), "{values:?}");
            // (Shewchuk's partials overflow on the way in the first case)
            let expected = if values.first() == Some(&1e308) {
                1.0
            } else {
                exact_sum(values.iter().copied())
            };
            assert_eq!(
                exact_sum(digits.into_iter()).to_bits(),
                expected.to_bits(),
                "{values:?}"
            );
        }
        let mut sum = WideSum::default();
        assert!(!sum.add(f64::INFINITY) && !sum.add(f64::NAN));
        // a sum past the floats' range has a digit that is not a float
        let mut sum = WideSum::default();
        (0..4).for_each(|_| assert!(sum.add(f64::MAX)));
        assert!(sum.digit_floats().iter().any(|d| d.is_infinite()));
    }
}
