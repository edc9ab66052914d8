//! The tracker fed Go dumps that faultline-dump parsed.

use faultline_dump::{Level, Limits, parse};
use faultline_leak::{Config, Error, Tracker, Verdict};

use crate::{Goroutines, go_dump, go_text};

fn worker(count: u64, oldest_minutes: Option<u64>) -> Goroutines {
    Goroutines {
        function: "main.worker",
        state: "chan receive",
        count,
        oldest_minutes,
    }
}

fn server(count: u64) -> Goroutines {
    Goroutines {
        function: "main.serve",
        state: "IO wait",
        count,
        oldest_minutes: None,
    }
}

fn drainer(count: u64) -> Goroutines {
    Goroutines {
        function: "main.drain",
        state: "sync.Mutex.Lock",
        count,
        oldest_minutes: None,
    }
}

fn top_function(trend: &faultline_leak::GroupTrend) -> &str {
    trend.own_frame.map_or("", |i| &*trend.frames[i].function)
}

#[test]
fn a_leak_among_stable_and_draining_groups() {
    let mut tracker = Tracker::new(Config::default());
    for i in 0..12u64 {
        let dump = go_dump(&[
            // +4 per 30 s = 8/min; the oldest has waited since the start.
            worker(3 + 4 * i, (i >= 2).then_some(i / 2)),
            server(20 + i % 2 * 3),
            drainer(60 - 5 * i),
        ]);
        tracker.push(1000.0 + 30.0 * i as f64, &dump).unwrap();
    }
    let report = tracker.report(600.0);
    let names: Vec<_> = report.groups.iter().map(top_function).collect();
    assert_eq!(
        names,
        ["main.worker", "main.serve", "main.main", "main.drain"]
    );
    let verdicts: Vec<_> = report.groups.iter().map(|g| g.trend.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Leaking,
            Verdict::Stable,
            Verdict::Stable,
            Verdict::Draining
        ]
    );

    let leak = &report.groups[0];
    assert_eq!(leak.state.as_deref(), Some("chan receive"));
    assert_eq!(leak.own_frame, Some(1));
    assert_eq!(
        leak.creator.as_ref().map(|f| &*f.function),
        Some("main.main")
    );
    let t = &leak.trend;
    assert_eq!((t.count_first, t.count_last, t.samples), (3, 47, 12));
    assert!((t.slope_per_min - 8.0).abs() < 1e-9, "{}", t.slope_per_min);
    assert_eq!(t.projected, 47 + 80);
    assert!(t.p_value < 1e-4 && t.z > 0.0 && t.tau == 1.0);
    assert_eq!(t.series.first(), Some(&(1000.0, 3)));
    assert_eq!(leak.evidence.oldest_aging, Some(true));
    assert_eq!(leak.evidence.waits.len(), 10);
    assert_eq!(leak.evidence.waits[9].max_seconds, 5 * 60);
    assert_eq!(leak.evidence.blocked_share, Some(1.0));
    let total = 47.0 + 23.0 + 5.0 + 1.0;
    assert!((leak.evidence.share_of_dump - 47.0 / total).abs() < 1e-12);

    let server = &report.groups[1];
    assert_eq!(server.evidence.blocked_share, Some(0.0));
    assert_eq!(server.evidence.oldest_aging, None);
    assert_eq!(report.groups[3].evidence.blocked_share, Some(1.0));

    // All tasks: 84 − i, and 3 more in odd samples.
    assert_eq!(report.total.count_first, 84);
    assert_eq!(report.total.count_last, 76);
    assert_eq!(report.alive, None);
    assert_eq!(report.pushed, 12);
    assert_eq!(report.overflow_signatures, 0);
    // The blocked ones: workers and drainers, of all tasks with a state.
    let share = report.blocked_share.unwrap();
    assert!((share - (47.0 + 5.0) / total).abs() < 1e-12);
}

#[test]
fn a_leak_in_a_real_dump() {
    // The blocker's real goroutine dump, with goroutines of a leaking handler added to it.
    const REAL: &str =
        include_str!("../../../dump/tests/fixtures/go/go1.27/default/goroutine-debug2.txt");
    let mut tracker = Tracker::new(Config::default());
    let base = parse(REAL.as_bytes(), &Limits::default()).unwrap();
    for i in 0..10u64 {
        let leaked = go_text(&[Goroutines {
            function: "example.com/shop/cart.(*Cart).watch",
            state: "select",
            count: 10 * i,
            oldest_minutes: None,
        }]);
        // Leave out the made-up dump's main goroutine; the real one has its own.
        let leaked = leaked.split_once("\n\n").map_or("", |(_, rest)| rest);
        // Ids above the real dump's: a repeated goroutine id is another dump (as when two
        // dumps are appended to one log), not more goroutines of this one.
        let leaked: String = leaked
            .lines()
            .map(|line| {
                match line
                    .strip_prefix("goroutine ")
                    .and_then(|r| r.split_once(' '))
                {
                    Some((id, rest)) if id.parse::<u64>().is_ok() => {
                        format!(
                            "goroutine {} {rest}\n",
                            1000 + id.parse::<u64>().unwrap_or(0)
                        )
                    }
                    _ => format!("{line}\n"),
                }
            })
            .collect();
        let text = format!("{REAL}\n{leaked}");
        let dump = parse(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(dump.task_count(), base.task_count() + 10 * i);
        tracker.push(60.0 * i as f64, &dump).unwrap();
    }
    let report = tracker.report(0.0);
    let first = &report.groups[0];
    assert_eq!(top_function(first), "example.com/shop/cart.(*Cart).watch");
    assert_eq!(first.trend.verdict, Verdict::Leaking);
    assert!((first.trend.slope_per_min - 10.0).abs() < 1e-9);
    assert_eq!(first.trend.series.len(), 9, "absent from the first dump");
    for other in &report.groups[1..] {
        assert_eq!(other.trend.verdict, Verdict::Stable, "{other:?}");
    }
    assert_eq!(report.total.verdict, Verdict::Leaking);
}

#[test]
fn bad_times_are_errors_and_change_nothing() {
    let mut tracker = Tracker::new(Config::default());
    let dump = go_dump(&[worker(2, None)]);
    tracker.push(10.0, &dump).unwrap();
    for (time, expected) in [
        (
            10.0,
            Error::TimeNotIncreasing {
                time: 10.0,
                previous: 10.0,
            },
        ),
        (
            5.0,
            Error::TimeNotIncreasing {
                time: 5.0,
                previous: 10.0,
            },
        ),
        (
            f64::INFINITY,
            Error::NonFiniteTime {
                time: f64::INFINITY,
            },
        ),
    ] {
        assert_eq!(tracker.push(time, &dump), Err(expected));
    }
    assert!(matches!(
        tracker.push(f64::NAN, &dump),
        Err(Error::NonFiniteTime { .. })
    ));
    assert_eq!((tracker.retained(), tracker.pushed()), (1, 1));
    assert!(
        Error::TimeNotIncreasing {
            time: 5.0,
            previous: 10.0
        }
        .to_string()
        .contains("not after")
    );
    tracker.push(11.0, &dump).unwrap();
    assert_eq!(tracker.retained(), 2);
}

#[test]
fn absent_groups_count_zero_and_are_forgotten_after_a_window() {
    let config = Config {
        window: 4,
        ..Config::default()
    };
    let mut tracker = Tracker::new(config);
    let with = go_dump(&[worker(5, None), server(1)]);
    let without = go_dump(&[server(1)]);
    tracker.push(0.0, &without).unwrap();
    tracker.push(1.0, &with).unwrap();
    tracker.push(2.0, &without).unwrap();
    let report = tracker.report(0.0);
    let worker_trend = report
        .groups
        .iter()
        .find(|g| top_function(g) == "main.worker")
        .unwrap();
    // From its first appearance on: 5, then 0; never before.
    assert_eq!(worker_trend.trend.series, [(1.0, 5), (2.0, 0)]);
    // Its representative is from the sample where it had tasks.
    assert_eq!(worker_trend.state.as_deref(), Some("chan receive"));
    assert_eq!(worker_trend.evidence.share_of_dump, 0.0);
    assert_eq!(tracker.group_count(), 3);

    for t in 3..6 {
        tracker.push(f64::from(t), &without).unwrap();
    }
    // Four zeros in a row: a whole window.
    assert_eq!(tracker.group_count(), 2);
    let report = tracker.report(0.0);
    assert_eq!(report.forgotten_groups, 1);
    assert!(
        report
            .groups
            .iter()
            .all(|g| top_function(g) != "main.worker")
    );
    for g in &report.groups {
        assert_eq!(g.trend.series.len(), 4);
    }

    // Back again: a new series.
    tracker.push(6.0, &with).unwrap();
    let report = tracker.report(0.0);
    let worker_trend = report
        .groups
        .iter()
        .find(|g| top_function(g) == "main.worker")
        .unwrap();
    assert_eq!(worker_trend.trend.series, [(6.0, 5)]);
}

#[test]
fn signatures_past_max_groups_go_to_the_other_bucket() {
    let config = Config {
        max_groups: 2,
        ..Config::default()
    };
    let mut tracker = Tracker::new(config);
    for i in 0..8u64 {
        // `group` lists the largest groups first: workers (30+), drainers (20), servers
        // (2 + i), main.main (1). The first two take the two slots, from the first dump on.
        let dump = go_dump(&[worker(30 + 10 * i, None), server(2 + i), drainer(20)]);
        tracker.push(f64::from(i as u32) * 60.0, &dump).unwrap();
    }
    let report = tracker.report(0.0);
    assert_eq!(tracker.group_count(), 2);
    assert_eq!(report.groups.len(), 3);
    assert_eq!(report.overflow_signatures, 2);
    let other = report
        .groups
        .iter()
        .find(|g| g.signature.is_none())
        .unwrap();
    assert!(other.frames.is_empty());
    // The servers and main.main: 2 + i + 1 each time.
    assert_eq!(other.trend.count_first, 3);
    assert_eq!(other.trend.count_last, 10);
    // Partition: the groups' latest counts add up to the dump's.
    let sum: u64 = report.groups.iter().map(|g| g.trend.count_last).sum();
    assert_eq!(sum, report.total.count_last);
}

#[test]
fn alive_counts_are_a_series_of_their_own() {
    let mut tracker = Tracker::new(Config::default());
    let dump = go_dump(&[worker(3, None)]);
    for i in 0..8u64 {
        let alive = (i != 3).then_some(100 + 20 * i);
        tracker
            .push_with_alive(30.0 * i as f64, &dump, alive)
            .unwrap();
    }
    let report = tracker.report(0.0);
    let alive = report.alive.unwrap();
    assert_eq!(alive.samples, 7);
    assert_eq!(alive.verdict, Verdict::Leaking);
    assert!((alive.slope_per_min - 40.0).abs() < 1e-9);
    assert_eq!(report.total.verdict, Verdict::Stable);
}

#[test]
fn mixed_states_at_own_top_share_blocked_by_task() {
    let config = Config {
        level: Level::OwnTop(1),
        ..Config::default()
    };
    let mut tracker = Tracker::new(config);
    let waiting = worker(3, None);
    let reading = Goroutines {
        state: "IO wait",
        ..worker(1, None)
    };
    tracker.push(0.0, &go_dump(&[waiting, reading])).unwrap();
    let report = tracker.report(0.0);
    let g = report
        .groups
        .iter()
        .find(|g| top_function(g) == "main.worker")
        .unwrap();
    assert!(g.mixed_states);
    assert_eq!(g.trend.count_last, 4);
    assert_eq!(g.evidence.blocked_share, Some(0.75));
}

#[test]
fn an_empty_tracker_reports_nothing_alarming() {
    let report = Tracker::new(Config::default()).report(60.0);
    assert!(report.groups.is_empty());
    assert_eq!(report.total.verdict, Verdict::Stable);
    assert_eq!(report.total.samples, 0);
    assert_eq!(report.total.p_value, 1.0);
    assert_eq!(report.blocked_share, None);
}

#[test]
fn a_zero_window_keeps_one_sample() {
    let mut tracker = Tracker::new(Config {
        window: 0,
        ..Config::default()
    });
    assert_eq!(tracker.config().window, 1);
    let dump = go_dump(&[worker(1, None)]);
    tracker.push(0.0, &dump).unwrap();
    tracker.push(1.0, &dump).unwrap();
    assert_eq!(tracker.retained(), 1);
}
