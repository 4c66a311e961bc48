//! Order statistics of floats: the median, with NumPy's value.

/// The median of `values`, as `numpy.median` gives it: the middle value, or
/// the mean of the two middle ones (`(a + b) / 2`, the same float as NumPy's
/// mean of two); NaN when there are no values or one of them is NaN. Selects
/// in place (`values` ends up reordered), in linear time.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 || values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let half = n / 2;
    let (lower, &mut middle, _) = values.select_nth_unstable_by(half, f64::total_cmp);
    if n % 2 == 1 {
        return middle;
    }
    let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (below + middle) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_of_the_sorted_values() {
        let mut state = 7u64;
        for n in 0..60usize {
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((state >> 40) % 9) as f64 - 4.0 // ties, negatives, zeros
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let expected = match n {
                0 => f64::NAN,
                n if n % 2 == 1 => sorted[n / 2],
                n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
            };
            let got = median(&mut values);
            assert!(
                got == expected || (got.is_nan() && expected.is_nan()),
                "n={n}"
            );
        }
        assert!(median(&mut [1.0, f64::NAN, 2.0]).is_nan());
        assert_eq!(median(&mut [-0.0, 0.0, 5.0]), 0.0);
    }
}
