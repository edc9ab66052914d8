//! Properties of the statistics, the verdicts and the tracker's bounds.
//!
//! - A strictly increasing series is never draining; a strictly decreasing one never leaking
//!   or growing; a constant one is stable with slope 0 and p = 1.
//! - A series alternating between two levels, however far apart, is never leaking.
//! - Mann-Kendall's Var(S) depends only on the values, not their order, and reversing the
//!   series negates S; the Theil–Sen line does not depend on the order of the (t, x) pairs.
//! - Nothing panics for any counts and increasing times; the projection is never negative.
//! - The tracker keeps at most `window` samples per series and at most `max_groups` groups,
//!   and its groups' latest counts add up to the dump's.

use faultline_leak::stats::{mann_kendall, theil_sen};
use faultline_leak::{Config, Tracker, Trend, Verdict};
use proptest::prelude::*;

use crate::{Goroutines, go_dump};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Increasing times: a start anywhere from before the epoch to far past it, and steps from a
/// millisecond to hours.
fn times(n: usize) -> impl Strategy<Value = Vec<f64>> {
    (-1e10..1e10f64, proptest::collection::vec(0.001..1e4f64, n)).prop_map(|(start, steps)| {
        let mut t = start;
        let mut times = Vec::with_capacity(steps.len());
        for step in steps {
            times.push(t);
            // A step too small to move a large start still has to increase the time.
            t = (t + step).max(t.next_up());
        }
        times
    })
}

/// A series of `n` counts and times.
fn series<S: Strategy<Value = Vec<u64>>>(
    counts: impl Fn(usize) -> S,
) -> impl Strategy<Value = (Vec<f64>, Vec<u64>)> {
    (0usize..80).prop_flat_map(move |n| (times(n), counts(n)))
}

fn trend(times: &[f64], counts: &[u64]) -> Trend {
    Trend::from_series(times, counts, &Config::default(), 3600.0)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn strictly_increasing_is_never_draining(
        (times, counts) in series(|n| proptest::collection::vec(1u64..1000, n))
    ) {
        let counts: Vec<u64> = counts
            .iter()
            .scan(0u64, |sum, step| { *sum += step; Some(*sum) })
            .collect();
        let t = trend(&times, &counts);
        prop_assert_ne!(t.verdict, Verdict::Draining);
        if counts.len() >= 2 {
            prop_assert!(t.s > 0 && t.slope_per_min > 0.0 && t.tau == 1.0);
        }
    }

    #[test]
    fn strictly_decreasing_is_never_leaking_or_growing(
        (times, counts) in series(|n| proptest::collection::vec(1u64..1000, n))
    ) {
        let mut counts: Vec<u64> = counts
            .iter()
            .scan(0u64, |sum, step| { *sum += step; Some(*sum) })
            .collect();
        counts.reverse();
        let t = trend(&times, &counts);
        prop_assert!(!matches!(t.verdict, Verdict::Leaking | Verdict::Growing), "{:?}", t);
    }

    #[test]
    fn constant_is_stable((times, counts) in series(|n| {
        any::<u64>().prop_map(move |c| vec![c; n])
    })) {
        let t = trend(&times, &counts);
        prop_assert_eq!(t.verdict, Verdict::Stable);
        prop_assert_eq!(t.slope_per_min, 0.0);
        prop_assert_eq!(t.p_value, 1.0);
        prop_assert_eq!((t.s, t.z), (0, 0.0));
    }

    #[test]
    fn alternating_levels_are_never_leaking(
        (times, counts) in series(|n| {
            (0u64..1000, 0u64..1_000_000, any::<bool>()).prop_map(move |(low, gap, high_first)| {
                (0..n)
                    .map(|i| if (i % 2 == 0) == high_first { low + gap } else { low })
                    .collect()
            })
        })
    ) {
        let t = trend(&times, &counts);
        prop_assert!(matches!(t.verdict, Verdict::Stable | Verdict::Growing), "{:?}", t);
    }

    #[test]
    fn any_series_is_judged_without_panic(
        (times, counts) in series(|n| proptest::collection::vec(any::<u64>(), n)),
        horizon in proptest::num::f64::ANY,
    ) {
        let t = Trend::from_series(&times, &counts, &Config::default(), horizon);
        prop_assert_eq!(t.samples, counts.len());
        prop_assert!((0.0..=1.0).contains(&t.p_value), "p {}", t.p_value);
        prop_assert!((-1.0..=1.0).contains(&t.tau));
        prop_assert!(!t.slope_per_min.is_nan());
        prop_assert_eq!(t.series.len(), counts.len());
    }

    #[test]
    fn order_invariance(
        values in proptest::collection::vec(0u64..20, 2..60),
        seed in any::<u64>(),
    ) {
        let x: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let t: Vec<f64> = (0..x.len()).map(|i| (i as f64).powf(1.3) * 7.0).collect();
        // A permutation of the indices from the seed (Fisher-Yates with an LCG).
        let mut order: Vec<usize> = (0..x.len()).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
        let px: Vec<f64> = order.iter().map(|&i| x[i]).collect();
        let pt: Vec<f64> = order.iter().map(|&i| t[i]).collect();

        let (mk, pmk) = (mann_kendall(&x), mann_kendall(&px));
        prop_assert_eq!(mk.var_s, pmk.var_s);
        let reversed: Vec<f64> = x.iter().rev().copied().collect();
        prop_assert_eq!(mann_kendall(&reversed).s, -mk.s);
        prop_assert_eq!(theil_sen(&t, &x), theil_sen(&pt, &px));
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn the_tracker_stays_within_its_bounds(
        window in 1usize..40,
        max_groups in 0usize..4,
        presence in proptest::collection::vec((0u64..4, 0u64..4, 0u64..4, 0u64..4), 1000),
    ) {
        let mut tracker = Tracker::new(Config { window, max_groups, ..Config::default() });
        const FUNCTIONS: [&str; 4] = ["main.a", "main.b", "main.c", "main.d"];
        for (i, (a, b, c, d)) in presence.iter().enumerate() {
            let groups: Vec<Goroutines> = FUNCTIONS
                .iter()
                .zip([a, b, c, d])
                .map(|(&function, &count)| Goroutines {
                    function,
                    state: "select",
                    count,
                    oldest_minutes: Some(i as u64 % 7),
                })
                .collect();
            let dump = go_dump(&groups);
            tracker.push(i as f64 * 15.0, &dump).unwrap();
            prop_assert!(tracker.retained() <= window);
            prop_assert!(tracker.group_count() <= max_groups);
        }
        let report = tracker.report(600.0);
        prop_assert_eq!(report.pushed, 1000);
        prop_assert!(report.total.series.len() <= window);
        for g in &report.groups {
            prop_assert!(g.trend.series.len() <= window);
            prop_assert!(g.evidence.waits.len() <= window);
        }
        let sum: u64 = report.groups.iter().map(|g| g.trend.count_last).sum();
        prop_assert_eq!(sum, report.total.count_last);
    }
}
