//! Trend statistics for short series: the Mann-Kendall test and the Theil–Sen slope.
//!
//! Both work on ranks and pairwise comparisons, so they assume no distribution of the noise and
//! shrug off a few outliers (a burst of short-lived tasks in one dump). They are checked against
//! the reference implementations, pymannkendall's `original_test` and
//! `scipy.stats.theilslopes`, by `tests/it/golden.rs` on the values `tests/golden/generate.py`
//! computed with them.
//!
//! Both are O(n²) in the length of the series; the tracker keeps series short (its window).

use std::f64::consts::SQRT_2;

/// The Mann-Kendall test of a series for a monotonic trend, as pymannkendall's `original_test`
/// computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannKendall {
    /// Values tested (NaN values are skipped, as pymannkendall does).
    pub n: usize,
    /// S: over all pairs i < j, the number of increases `x[j] > x[i]` minus the number of
    /// decreases. Positive for an upward trend.
    pub s: i64,
    /// The variance of S under the null hypothesis (no trend), with the correction for tied
    /// values: `(n(n−1)(2n+5) − Σ t(t−1)(2t+5)) / 18` over the groups of `t` equal values.
    pub var_s: f64,
    /// The standardized statistic with continuity correction: `(S−1)/√Var(S)` for S > 0,
    /// `(S+1)/√Var(S)` for S < 0, 0 for S = 0.
    pub z: f64,
    /// Two-sided p-value, `erfc(|Z|/√2)`: the chance of a |Z| at least this large without a
    /// trend. 1 when S = 0.
    pub p_value: f64,
    /// Kendall's tau, `S / (n(n−1)/2)`, in −1..=1; 0 for fewer than two values.
    pub tau: f64,
}

/// The Mann-Kendall test of `x`, in time order. Never panics; fewer than two values give S = 0
/// and p = 1.
pub fn mann_kendall(x: &[f64]) -> MannKendall {
    let x: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    let n = x.len();

    let mut s: i64 = 0;
    for (i, &earlier) in x.iter().enumerate() {
        for &later in &x[i + 1..] {
            if later > earlier {
                s += 1;
            } else if later < earlier {
                s -= 1;
            }
        }
    }

    // Tie correction: sizes of the groups of equal values. Exact integer arithmetic (i128 holds
    // n(n−1)(2n+5) for any n a slice can have in memory), one rounding at the end.
    let mut sorted = x.clone();
    sorted.sort_unstable_by(f64::total_cmp);
    let mut ties: i128 = 0;
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && sorted[end] == sorted[start] {
            end += 1;
        }
        let t = (end - start) as i128;
        ties += t * (t - 1) * (2 * t + 5);
        start = end;
    }
    let n_wide = n as i128;
    let var_s = (n_wide * (n_wide - 1) * (2 * n_wide + 5) - ties) as f64 / 18.0;

    // S ≠ 0 implies two distinct values, so Var(S) > 0; the guard only keeps the arithmetic
    // total.
    let z = if s == 0 || var_s <= 0.0 {
        0.0
    } else if s > 0 {
        (s - 1) as f64 / var_s.sqrt()
    } else {
        (s + 1) as f64 / var_s.sqrt()
    };
    // erfc rather than 2(1 − Φ(|z|)): the latter cancels to 0 for |z| past ~8.3, and tiny
    // p-values still order the groups.
    let p_value = libm::erfc(z.abs() / SQRT_2);
    let pairs = n_wide * (n_wide - 1) / 2;
    let tau = if pairs == 0 {
        0.0
    } else {
        s as f64 / pairs as f64
    };
    MannKendall {
        n,
        s,
        var_s,
        z,
        p_value,
        tau,
    }
}

/// A robust straight line through a series: `x ≈ intercept + slope · t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilSen {
    /// The median of the slopes `(x[j] − x[i]) / (t[j] − t[i])` over all pairs with
    /// `t[i] ≠ t[j]`: units of x per unit of t.
    pub slope: f64,
    /// `median(x) − slope · median(t)` (scipy's default, `method="separate"`).
    pub intercept: f64,
}

/// The Theil–Sen line of `x` against times `t`, which may be unevenly spaced, as
/// `scipy.stats.theilslopes(x, t)` computes it.
///
/// Only the first `min(t.len(), x.len())` points are used. `None` when no two of them have
/// different times. Pairs whose slope is not a number (a NaN input) are skipped.
pub fn theil_sen(t: &[f64], x: &[f64]) -> Option<TheilSen> {
    theil_sen_in(&mut Vec::new(), t, x)
}

/// [`theil_sen`] with a caller's buffer for the pairwise slopes, reused across many series.
pub(crate) fn theil_sen_in(slopes: &mut Vec<f64>, t: &[f64], x: &[f64]) -> Option<TheilSen> {
    let n = t.len().min(x.len());
    let (t, x) = (&t[..n], &x[..n]);
    slopes.clear();
    for i in 0..n {
        for j in i + 1..n {
            let dt = t[j] - t[i];
            if dt != 0.0 {
                let slope = (x[j] - x[i]) / dt;
                if !slope.is_nan() {
                    slopes.push(slope);
                }
            }
        }
    }
    let slope = median(slopes)?;
    let intercept = median(&mut x.to_vec())? - slope * median(&mut t.to_vec())?;
    Some(TheilSen { slope, intercept })
}

/// The median of `values` (the mean of the two middle ones for an even count), as NumPy's
/// `median` computes it; `None` when empty. Reorders `values`. NaN sorts above everything
/// (`f64::total_cmp`).
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(upper);
    }
    let below = lower.iter().copied().max_by(f64::total_cmp)?;
    Some((below + upper) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_series() {
        // No ties: Var(S) = n(n−1)(2n+5)/18.
        let mk = mann_kendall(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(mk.s, 10);
        assert_eq!(mk.var_s, 5.0 * 4.0 * 15.0 / 18.0);
        assert_eq!(mk.tau, 1.0);
        assert!((mk.z - 9.0 / mk.var_s.sqrt()).abs() < 1e-15);

        // Ties [2, 2] and [3, 3, 3] reduce the variance by (2·1·9 + 3·2·11)/18.
        let mk = mann_kendall(&[1.0, 2.0, 2.0, 3.0, 3.0, 3.0]);
        assert_eq!(mk.var_s, (6.0 * 5.0 * 17.0 - 18.0 - 66.0) / 18.0);
        assert_eq!(mk.s, 11);
    }

    #[test]
    fn degenerate_series() {
        for x in [&[][..], &[3.0], &[3.0, 3.0, 3.0], &[f64::NAN, f64::NAN]] {
            let mk = mann_kendall(x);
            assert_eq!(
                (mk.s, mk.z, mk.p_value, mk.tau),
                (0, 0.0, 1.0, 0.0),
                "{x:?}"
            );
        }
        assert_eq!(theil_sen(&[], &[]), None);
        assert_eq!(theil_sen(&[1.0, 1.0], &[2.0, 5.0]), None);
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn theil_sen_ignores_an_outlier() {
        let t = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0];
        let x = [5.0, 6.0, 7.0, 500.0, 9.0, 10.0, 11.0];
        let line = theil_sen(&t, &x);
        assert_eq!(
            line,
            Some(TheilSen {
                slope: 0.1,
                intercept: 9.0 - 0.1 * 30.0
            })
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [-1.0]), Some(-1.0));
    }
}
