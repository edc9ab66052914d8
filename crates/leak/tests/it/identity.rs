//! Who is still there: members followed by task id across dumps, the runtime's `(leaked)`
//! proof, and restarts, on Go dumps with the ids and marks a real runtime prints.

use faultline_dump::{Dump, Limits, parse};
use faultline_leak::{Config, Sample, Tracker, Verdict};

/// A Go dump of handler goroutines with exactly these ids (and goroutine 1), `leaked` of
/// them (the lowest ids) marked by the runtime.
fn handlers(ids: impl IntoIterator<Item = u64>, leaked: usize) -> Dump {
    let mut text = String::from("goroutine 1 [select]:\nmain.main()\n\t/app/main.go:10 +0x1d\n\n");
    for (i, id) in ids.into_iter().enumerate() {
        let mark = if i < leaked { " (leaked)" } else { "" };
        text.push_str(&format!(
            "goroutine {id} [chan receive{mark}]:\nmain.handle(0xc000010000)\n\
             \t/app/main.go:42 +0x2a\ncreated by main.serve in goroutine 1\n\
             \t/app/main.go:12 +0x3b\n\n"
        ));
    }
    let dump = parse(text.as_bytes(), &Limits::default()).unwrap();
    assert!(dump.diagnostics.is_empty(), "{:?}", dump.diagnostics);
    dump
}

fn handler_group(report: &faultline_leak::Report) -> &faultline_leak::GroupTrend {
    report
        .groups
        .iter()
        .find(|g| {
            g.frames
                .first()
                .is_some_and(|f| &*f.function == "main.handle")
        })
        .expect("no main.handle group")
}

#[test]
fn a_count_that_rises_with_members_that_turn_over_is_growing_not_leaking() {
    // A load ramp: 5 to 200 handlers in flight, each living less than the interval, so every
    // sample's handlers are new ones (fresh ids).
    let mut tracker = Tracker::new(Config::default());
    let mut next = 100u64;
    for i in 0..20u64 {
        let n = 5 + 10 * i;
        tracker
            .push(0.5 * i as f64, &handlers(next..next + n, 0))
            .unwrap();
        next += n;
    }
    let report = tracker.report(0.0);
    let g = handler_group(&report);
    // The count alone: a significant, fast rise (what faultline said before it followed ids).
    assert!(
        g.trend.p_value < 1e-6 && g.trend.slope_per_min > 1000.0,
        "{:?}",
        g.trend
    );
    assert_eq!(g.trend.verdict, Verdict::Growing);
    assert_eq!(g.evidence.survivors, Some(0));
    assert_eq!(g.evidence.turnover, Some(1.0));
    assert_eq!(g.evidence.persisting, Some(0));
    assert_eq!(g.evidence.oldest_seen_seconds, Some(0.0));
    let why = g.evidence.why.as_deref().unwrap();
    assert!(
        why.contains("members live under 0.5 s") && why.contains("0% survive"),
        "{why}"
    );
    assert!(restarts(&tracker).is_empty(), "{:?}", restarts(&tracker));
}

#[test]
fn members_that_stay_while_the_count_rises_are_a_leak() {
    // The same ramp of short-lived handlers, plus one that stays every sample.
    let mut tracker = Tracker::new(Config::default());
    let mut next = 100_000u64;
    let mut stayed = Vec::new();
    for i in 0..20u64 {
        stayed.push(1000 + i);
        let n = 5 + 10 * i;
        let ids: Vec<u64> = stayed.iter().copied().chain(next..next + n).collect();
        tracker.push(0.5 * i as f64, &handlers(ids, 0)).unwrap();
        next += n;
    }
    let report = tracker.report(0.0);
    let g = handler_group(&report);
    assert_eq!(g.trend.verdict, Verdict::Leaking, "{:?}", g.evidence);
    assert_eq!(g.evidence.why, None);
    assert_eq!(g.evidence.survivors, Some(19));
    // Since the middle sample (index 9, t = 4.5 s): the ten that stayed by then.
    assert_eq!(g.evidence.persisting, Some(10));
    assert_eq!(g.evidence.oldest_seen_seconds, Some(9.5));
    let turnover = g.evidence.turnover.unwrap();
    assert!(turnover > 0.5 && turnover < 1.0, "{turnover}");
}

#[test]
fn the_runtimes_proof_makes_a_group_leaking_in_one_dump() {
    let mut tracker = Tracker::new(Config::default());
    tracker.push(0.0, &handlers(10..13, 3)).unwrap();
    let report = tracker.report(0.0);
    let g = handler_group(&report);
    assert_eq!(g.trend.samples, 1);
    assert_eq!(g.trend.verdict, Verdict::Leaking);
    assert_eq!(g.evidence.proven_leaked, 3);
    let why = g.evidence.why.as_deref().unwrap();
    assert!(
        why.contains("the runtime proved 3 of its goroutines leaked"),
        "{why}"
    );
    assert!(why.ends_with("the count alone is stable"), "{why}");
}

#[test]
fn a_mark_that_appears_halfway_keeps_one_group_with_one_rising_count() {
    // Goroutines piling up one every 30 s; from the 6th dump on, a leak-detecting collection
    // has run and the runtime marks them all.
    let mut tracker = Tracker::new(Config::default());
    for i in 0..10u64 {
        let ids = 10..10 + 2 * (i + 1);
        let leaked = if i >= 5 { usize::MAX } else { 0 };
        tracker
            .push(30.0 * i as f64, &handlers(ids, leaked))
            .unwrap();
    }
    let report = tracker.report(0.0);
    let handle: Vec<_> = report
        .groups
        .iter()
        .filter(|g| {
            g.frames
                .first()
                .is_some_and(|f| &*f.function == "main.handle")
        })
        .collect();
    assert_eq!(handle.len(), 1, "{handle:?}");
    let g = handle[0];
    assert_eq!(g.state.as_deref(), Some("chan receive"));
    let counts: Vec<u64> = g.trend.series.iter().map(|&(_, n)| n).collect();
    assert_eq!(counts, [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    assert_eq!(g.trend.verdict, Verdict::Leaking);
    assert_eq!(g.evidence.proven_leaked, 20);
    // The trend alone says leaking too: no reason needed.
    assert_eq!(g.evidence.why, None);
}

#[test]
fn a_worker_pool_that_blocks_and_drains_is_flagged_by_neither_path() {
    // Workers block (reachable: nothing for the runtime to prove), pile up, then drain.
    let mut tracker = Tracker::new(Config::default());
    for i in 0..16u64 {
        let n = if i < 8 { 10 * i } else { 10 * (15 - i) };
        tracker.push(i as f64, &handlers(10..10 + n, 0)).unwrap();
    }
    let report = tracker.report(0.0);
    let g = handler_group(&report);
    assert_ne!(g.trend.verdict, Verdict::Leaking, "{g:?}");
    assert_eq!(g.evidence.proven_leaked, 0);
}

fn restarts(tracker: &Tracker) -> Vec<String> {
    tracker.restarts().map(|r| r.why.clone()).collect()
}

#[test]
fn a_restart_splits_the_series_instead_of_a_mass_death_and_rebirth() {
    let mut tracker = Tracker::new(Config::default());
    // The first process: a leak of one handler a second, and traffic that took ids past 5000.
    let mut t = 0.0;
    for i in 0..12u64 {
        let ids: Vec<u64> = (5000..5000 + 3 * i)
            .chain(std::iter::once(9000 + i))
            .collect();
        tracker.push(t, &handlers(ids, 0)).unwrap();
        t += 1.0;
    }
    // It restarts: ids begin again near 1, and the leak starts over.
    for i in 0..4u64 {
        let ids: Vec<u64> = (20..20 + 3 * (i + 1)).collect();
        tracker.push(t, &handlers(ids, 0)).unwrap();
        t += 1.0;
    }
    let why = restarts(&tracker);
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].starts_with("goroutine ids went back"), "{why:?}");
    let report = tracker.report(0.0);
    assert_eq!(report.restarts[0].time_seconds, 12.0);
    // The leak of the first process, judged when it went away.
    let before: Vec<_> = report
        .groups
        .iter()
        .filter(|g| g.before_restart.is_some())
        .collect();
    assert_eq!(before.len(), 1, "{:?}", report.groups);
    assert_eq!(before[0].before_restart, Some(12.0));
    assert_eq!(before[0].trend.verdict, Verdict::Leaking);
    // After: a new series of 4 samples, not a drain to 0 and a rise from 0.
    let now = report
        .groups
        .iter()
        .find(|g| {
            g.before_restart.is_none()
                && g.frames
                    .first()
                    .is_some_and(|f| &*f.function == "main.handle")
        })
        .unwrap();
    assert_eq!(now.trend.series.first(), Some(&(12.0, 3)));
    assert_eq!(now.trend.samples, 4);
    assert_eq!(report.total.samples, 4);
}

#[test]
fn a_pid_or_process_change_is_a_restart_and_churn_within_one_process_is_not() {
    let mut tracker = Tracker::new(Config::default());
    let dump = handlers(10..20, 0);
    for (i, process) in [7, 7, 8].into_iter().enumerate() {
        tracker
            .push_sample(Sample {
                time_seconds: i as f64,
                dump: &dump,
                alive: None,
                process: Some(process),
            })
            .unwrap();
    }
    assert_eq!(restarts(&tracker), ["the sampled process changed (7 to 8)"]);

    // Within one process, a P that held an old batch of ids hands out a few low ones among
    // many fresh ones: not a restart.
    let mut tracker = Tracker::new(Config::default());
    tracker
        .push(0.0, &handlers((5000..5100).chain([1]), 0))
        .unwrap();
    tracker
        .push(1.0, &handlers((5050..5200).chain([120, 121, 122]), 0))
        .unwrap();
    assert!(restarts(&tracker).is_empty(), "{:?}", restarts(&tracker));
}
