//! The verdicts: each retained series tested for a trend, most alarming first.

use std::sync::Arc;

use faultline_dump::{Frame, Signature};

use crate::stats::{mann_kendall, theil_sen_in};
use crate::tracker::{GroupSeries, Restart, Tracker};
use crate::{Config, Verdict};

/// Every group's trend, most alarming first, and the trends of the totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Leaking groups (steepest first), then growing, stable and draining ones (each steepest
    /// first; ties in order of first appearance). The "other" bucket is among them, with
    /// `signature: None`. After a restart, the leaking and growing groups of the processes
    /// before it come first, with `before_restart` set.
    pub groups: Vec<GroupTrend>,
    /// Restarts of the sampled process seen in the series (the latest eight), oldest first:
    /// the series are split there.
    pub restarts: Vec<Restart>,
    /// The trend of the dumps' total task counts.
    pub total: Trend,
    /// The trend of the alive-task counts passed to [`Tracker::push_with_alive`], over the
    /// samples that had one; `None` if none had.
    pub alive: Option<Trend>,
    /// Share of the latest dump's tasks (of those whose state the dump gives) blocked on a
    /// channel, `select` or lock ([`crate::is_blocking_state`]); `None` without states.
    pub blocked_share: Option<f64>,
    /// Signatures the latest dump put into the "other" bucket ([`Config::max_groups`]).
    pub overflow_signatures: u64,
    /// Groups forgotten so far after a whole window at 0.
    pub forgotten_groups: u64,
    /// Dumps pushed so far, including those whose samples were since dropped.
    pub pushed: u64,
}

/// One group's trend, and what the group looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTrend {
    /// The group's signature; `None` for the "other" bucket (signatures past
    /// [`Config::max_groups`]).
    pub signature: Option<Signature>,
    /// The representative stack, innermost first, from the latest sample where the group had
    /// tasks. Empty for the "other" bucket.
    pub frames: Arc<[Frame]>,
    /// The state of the representative task.
    pub state: Option<String>,
    /// Whether the group's tasks were in different states (possible at `Level::OwnTop`).
    pub mixed_states: bool,
    /// Index in `frames` of the first frame of the service's own code.
    pub own_frame: Option<usize>,
    /// The function that created the representative task.
    pub creator: Option<Frame>,
    /// The trend of the group's task count. Its verdict is the group's: the count trend's,
    /// with what the members' identity and the runtime's proof say (see [`Evidence::why`]).
    pub trend: Trend,
    /// What else points to (or away from) a leak.
    pub evidence: Evidence,
    /// For a group of a process that restarted: the time of the restart that ended its
    /// series (it was judged then). `None` for the process sampled now.
    pub before_restart: Option<f64>,
}

/// The trend of one count series.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// The verdict, by the rules in the crate docs.
    pub verdict: Verdict,
    /// Mann-Kendall two-sided p-value (1 for fewer than two samples).
    pub p_value: f64,
    /// Mann-Kendall Z, with continuity correction.
    pub z: f64,
    /// Mann-Kendall S: increases minus decreases over all pairs of samples.
    pub s: i64,
    /// Kendall's tau, in −1..=1.
    pub tau: f64,
    /// Theil–Sen slope, in tasks per minute (0 for fewer than two samples).
    pub slope_per_min: f64,
    /// Count in the oldest retained sample.
    pub count_first: u64,
    /// Count in the latest sample.
    pub count_last: u64,
    /// Smallest retained count.
    pub count_min: u64,
    /// Largest retained count.
    pub count_max: u64,
    /// Retained samples.
    pub samples: usize,
    /// The Theil–Sen line's count at the latest sample's time plus the report's horizon,
    /// rounded, never negative; the latest count when there is no line.
    pub projected: u64,
    /// The retained samples, oldest first: (time in seconds, count).
    pub series: Vec<(f64, u64)>,
}

/// Evidence beside the count: how a leak looks from the inside.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Go wait durations of the group's tasks, for the retained samples that report one (Go
    /// prints waits of a minute or more, in whole minutes).
    pub waits: Vec<WaitSample>,
    /// Whether the group's oldest members keep aging, as a leak's do: with at least two
    /// samples reporting waits, `Some(true)` if the longest wait never shrinks from one of them
    /// to the next and ends longer than it started. `None` with fewer than two.
    pub oldest_aging: Option<bool>,
    /// Share of the group's tasks (of those with a known state) blocked on a channel, `select`
    /// or lock, in the latest sample where the group had tasks; `None` without states.
    pub blocked_share: Option<f64>,
    /// The group's share of all tasks in the latest dump.
    pub share_of_dump: f64,
    /// Tasks of the latest sample the runtime proved leaked (Go 1.26 and later: `(leaked)`,
    /// or the `goroutineleak` profile).
    pub proven_leaked: u64,
    /// Members of the latest sample that were already in the previous one; `None` when the
    /// format carries no task ids (pprof profiles) or there is no previous sample.
    pub survivors: Option<u64>,
    /// Of each sample's members, the share gone by the next, averaged over the retained
    /// samples: near 0 for tasks that stay, near 1 for tasks that live less than the interval.
    /// `None` without task ids.
    pub turnover: Option<f64>,
    /// How long the oldest member of the latest sample has been in the group: since the
    /// sample it was first seen in (a lower bound of its age). `None` without task ids.
    pub oldest_seen_seconds: Option<f64>,
    /// Members of the latest sample that have been in the group since the middle of its
    /// series: what a leak piles up and a turnover does not. `None` without task ids.
    pub persisting: Option<u64>,
    /// Why the verdict is not the count trend's alone, when it is not: the runtime's proof
    /// made it `leaking`, or members that turn over made a rising count `growing`.
    pub why: Option<String>,
}

/// The wait durations of one group in one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitSample {
    /// The sample's time, seconds.
    pub time_seconds: f64,
    /// The shortest wait reported, seconds.
    pub min_seconds: u64,
    /// The longest wait reported, seconds.
    pub max_seconds: u64,
}

impl Tracker {
    /// Every group's trend, most alarming first, with counts projected `horizon_seconds`
    /// past the latest sample (a negative or non-finite horizon counts as 0).
    pub fn report(&self, horizon_seconds: f64) -> Report {
        let horizon = if horizon_seconds.is_finite() {
            horizon_seconds.max(0.0)
        } else {
            0.0
        };
        let times: Vec<f64> = self.times.iter().copied().collect();
        let total_last = self.total.back().copied().unwrap_or(0);
        let mut scratch = Scratch::default();

        let mut groups: Vec<GroupTrend> = self
            .groups
            .iter()
            .chain(&self.other)
            .map(|g| group_trend(g, &times, total_last, &self.config, horizon, &mut scratch))
            .collect();
        // Stable sort: equal keys keep the order of first appearance.
        groups.sort_by(|a, b| {
            let (a, b) = (&a.trend, &b.trend);
            a.verdict
                .rank()
                .cmp(&b.verdict.rank())
                .then(b.slope_per_min.total_cmp(&a.slope_per_min))
                .then(b.count_last.cmp(&a.count_last))
        });

        let total: Vec<u64> = self.total.iter().copied().collect();
        let total = trend(&times, &total, &self.config, horizon, &mut scratch);
        let (alive_times, alive): (Vec<f64>, Vec<u64>) = self
            .times
            .iter()
            .zip(&self.alive)
            .filter_map(|(&t, a)| Some((t, (*a)?)))
            .unzip();
        let alive = (!alive.is_empty())
            .then(|| trend(&alive_times, &alive, &self.config, horizon, &mut scratch));
        let mut all: Vec<GroupTrend> = self.earlier.iter().cloned().collect();
        all.extend(groups);
        Report {
            groups: all,
            restarts: self.restarts.iter().cloned().collect(),
            total,
            alive,
            blocked_share: self.blocked.and_then(share),
            overflow_signatures: self.overflow_signatures,
            forgotten_groups: self.forgotten,
            pushed: self.pushed,
        }
    }
}

/// Buffers reused across the series of one report.
#[derive(Default)]
struct Scratch {
    slopes: Vec<f64>,
    relative_times: Vec<f64>,
    values: Vec<f64>,
}

fn group_trend(
    g: &GroupSeries,
    all_times: &[f64],
    total_last: u64,
    config: &Config,
    horizon: f64,
    scratch: &mut Scratch,
) -> GroupTrend {
    // A series is the latest part of the tracker's times (see `Tracker::times`).
    let times = &all_times[all_times.len().saturating_sub(g.counts.len())..];
    let counts: Vec<u64> = g.counts.iter().copied().collect();
    let mut trend = trend(times, &counts, config, horizon, scratch);

    let waits: Vec<WaitSample> = times
        .iter()
        .zip(&g.waits)
        .filter_map(|(&time_seconds, w)| {
            let (min_seconds, max_seconds) = (*w)?;
            Some(WaitSample {
                time_seconds,
                min_seconds,
                max_seconds,
            })
        })
        .collect();
    let oldest_aging = match (waits.first(), waits.last()) {
        (Some(first), Some(last)) if waits.len() >= 2 => Some(
            waits
                .windows(2)
                .all(|w| w[1].max_seconds >= w[0].max_seconds)
                && last.max_seconds > first.max_seconds,
        ),
        _ => None,
    };
    let share_of_dump = if total_last == 0 {
        0.0
    } else {
        trend.count_last as f64 / total_last as f64
    };
    let identity = Identity::of(g, times);
    let proven_leaked = g.proven.back().copied().unwrap_or(0);
    let why = judge(&mut trend, proven_leaked, identity.as_ref(), config);
    let rep = &g.representative;
    GroupTrend {
        signature: g.signature.clone(),
        frames: rep.frames.clone().unwrap_or_else(|| Arc::from(Vec::new())),
        state: rep.state.clone(),
        mixed_states: rep.mixed_states,
        own_frame: rep.own_frame,
        creator: rep.creator.clone(),
        trend,
        evidence: Evidence {
            waits,
            oldest_aging,
            blocked_share: rep.blocked.and_then(share),
            share_of_dump,
            proven_leaked,
            survivors: g.survivors,
            turnover: identity.as_ref().and_then(|i| i.turnover),
            oldest_seen_seconds: identity.as_ref().and_then(|i| i.oldest_seen_seconds),
            persisting: identity.as_ref().map(|i| i.persisting),
            why,
        },
        before_restart: None,
    }
}

/// Who the members of a group with task ids are, across its series.
struct Identity {
    turnover: Option<f64>,
    oldest_seen_seconds: Option<f64>,
    /// Members of the latest sample there since the middle of the series.
    persisting: u64,
    /// The sampling interval, for the evidence (median of the series' steps).
    interval: Option<f64>,
}

impl Identity {
    fn of(g: &GroupSeries, times: &[f64]) -> Option<Self> {
        if !g.identified {
            return None;
        }
        let last = *times.last()?;
        let mid = times[(times.len() - 1) / 2];
        let turnovers: Vec<f64> = g.turnover.iter().flatten().copied().collect();
        let mut steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_by(f64::total_cmp);
        Some(Self {
            turnover: (!turnovers.is_empty())
                .then(|| turnovers.iter().sum::<f64>() / turnovers.len() as f64),
            oldest_seen_seconds: g
                .members
                .values()
                .copied()
                .min_by(f64::total_cmp)
                .map(|first| last - first),
            persisting: g.members.values().filter(|&&first| first <= mid).count() as u64,
            interval: steps.get(steps.len() / 2).copied(),
        })
    }
}

/// The group's verdict from its count trend, the runtime's proof and its members' identity;
/// the reason, when it is not the count trend's alone.
fn judge(
    trend: &mut Trend,
    proven_leaked: u64,
    identity: Option<&Identity>,
    config: &Config,
) -> Option<String> {
    if proven_leaked > 0 {
        let why = (trend.verdict != Verdict::Leaking).then(|| {
            format!(
                "the runtime proved {proven_leaked} of its goroutines leaked (blocked forever \
                 on something nothing reachable can release); the count alone is {}",
                trend.verdict
            )
        });
        trend.verdict = Verdict::Leaking;
        return why;
    }
    let identity = identity?;
    if trend.verdict != Verdict::Leaking || identity.persisting >= config.min_persisting {
        return None;
    }
    trend.verdict = Verdict::Growing;
    let turnover = identity.turnover.map_or_else(String::new, |t| {
        format!(
            "; {:.0}% survive from one sample to the next",
            (1.0 - t) * 100.0
        )
    });
    let lifetime = match (identity.turnover, identity.interval) {
        (Some(t), Some(interval)) if t >= 0.999 => {
            format!("members live under {}", seconds(interval))
        }
        _ => format!(
            "the oldest member has been there {}",
            identity
                .oldest_seen_seconds
                .map_or_else(|| "?".to_owned(), seconds)
        ),
    };
    Some(format!(
        "the count rises, but its members turn over: {lifetime}{turnover}, and {} of them have \
         stayed since the middle of the series (a leak keeps at least {})",
        identity.persisting, config.min_persisting
    ))
}

/// `0.5 s`, `12 s`, `3.5 min`.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

fn share((part, whole): (u64, u64)) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Trend {
    /// The trend of any count series: `counts[i]` taken at `times[i]` seconds, oldest first,
    /// times increasing (only the first `min(times.len(), counts.len())` samples are used),
    /// judged by `config`'s thresholds, projected `horizon_seconds` past the last sample (a
    /// negative or non-finite horizon counts as 0). [`Tracker::report`] calls it on each
    /// retained series.
    pub fn from_series(
        times: &[f64],
        counts: &[u64],
        config: &Config,
        horizon_seconds: f64,
    ) -> Self {
        let horizon = if horizon_seconds.is_finite() {
            horizon_seconds.max(0.0)
        } else {
            0.0
        };
        trend(times, counts, config, horizon, &mut Scratch::default())
    }
}

/// [`Trend::from_series`] with a valid horizon and reused buffers.
fn trend(
    times: &[f64],
    counts: &[u64],
    config: &Config,
    horizon: f64,
    scratch: &mut Scratch,
) -> Trend {
    let n = times.len().min(counts.len());
    let (times, counts) = (&times[..n], &counts[..n]);
    scratch.values.clear();
    scratch.values.extend(counts.iter().map(|&c| c as f64));
    let mk = mann_kendall(&scratch.values);

    // Times relative to the first sample, so that the intercept stays near the counts even
    // when the clock is the Unix epoch.
    let t0 = times.first().copied().unwrap_or(0.0);
    scratch.relative_times.clear();
    scratch.relative_times.extend(times.iter().map(|t| t - t0));
    let line = theil_sen_in(
        &mut scratch.slopes,
        &scratch.relative_times,
        &scratch.values,
    );

    let count_first = counts.first().copied().unwrap_or(0);
    let count_last = counts.last().copied().unwrap_or(0);
    let slope_per_min = line.map_or(0.0, |l| l.slope * 60.0);
    let projected = match (line, scratch.relative_times.last()) {
        (Some(l), Some(&now)) => {
            let y = l.intercept + l.slope * (now + horizon);
            // `as` saturates: never negative, never past u64::MAX, NaN to 0.
            y.max(0.0).round() as u64
        }
        _ => count_last,
    };
    let span_minutes = scratch.relative_times.last().copied().unwrap_or(0.0) / 60.0;
    let verdict = verdict(
        config,
        n,
        mk.s,
        mk.p_value,
        slope_per_min,
        span_minutes,
        count_first,
        count_last,
    );
    Trend {
        verdict,
        p_value: mk.p_value,
        z: mk.z,
        s: mk.s,
        tau: mk.tau,
        slope_per_min,
        count_first,
        count_last,
        count_min: counts.iter().copied().min().unwrap_or(0),
        count_max: counts.iter().copied().max().unwrap_or(0),
        samples: n,
        projected,
        series: times.iter().copied().zip(counts.iter().copied()).collect(),
    }
}

/// The rules of the crate docs.
#[allow(clippy::too_many_arguments)]
fn verdict(
    config: &Config,
    samples: usize,
    s: i64,
    p_value: f64,
    slope_per_min: f64,
    span_minutes: f64,
    count_first: u64,
    count_last: u64,
) -> Verdict {
    let significant = p_value < config.alpha;
    let growth = i128::from(count_last) - i128::from(count_first);
    // The trend line itself must rise by `min_growth` over the samples, not only the last
    // count above the first: a series that ramps up once (a service warming up) and then holds
    // has a significant S and a real net growth, but a median slope near 0.
    let trend_growth = slope_per_min * span_minutes;
    if s > 0
        && samples >= config.min_samples
        && significant
        && growth >= i128::from(config.min_growth)
        && trend_growth >= config.min_growth as f64
        && slope_per_min >= config.min_slope_per_min
    {
        Verdict::Leaking
    } else if s > 0 && slope_per_min > 0.0 {
        Verdict::Growing
    } else if s < 0 && significant && slope_per_min < 0.0 {
        Verdict::Draining
    } else {
        Verdict::Stable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(counts: &[u64], expected: Verdict) {
        let times: Vec<f64> = (0..counts.len()).map(|i| i as f64 * 30.0).collect();
        let trend = Trend::from_series(&times, counts, &Config::default(), 0.0);
        assert_eq!(trend.verdict, expected, "{counts:?}: {trend:?}");
    }

    #[test]
    fn a_ramp_that_then_holds_is_not_a_leak() {
        // Background traffic sampled from the moment the program started: from 0 to its level
        // within the first second, then noise around it. S is significant and the last count
        // is 10 above the first, but the trend line barely rises.
        let counts = [0, 2, 15, 16, 15, 17, 16, 17, 16, 18, 17, 18, 17];
        let times: Vec<f64> = (0..counts.len()).map(|i| i as f64).collect();
        let config = Config::default();
        let trend = Trend::from_series(&times, &counts, &config, 0.0);
        // Every other guard passes (significant, 17 tasks gained, 25 tasks/min)...
        assert!(trend.s > 0 && trend.p_value < config.alpha, "{trend:?}");
        assert!(
            trend.count_last - trend.count_first >= config.min_growth,
            "{trend:?}"
        );
        assert!(trend.slope_per_min >= config.min_slope_per_min, "{trend:?}");
        // ...but the line rises by 5 tasks over the 12 s, not 10.
        assert!(trend.slope_per_min * 12.0 / 60.0 < 10.0, "{trend:?}");
        assert_eq!(trend.verdict, Verdict::Growing, "{trend:?}");
    }

    #[test]
    fn verdicts() {
        // +5 per 30 s is 10/min: significant, fast, big.
        check(&[10, 15, 20, 25, 30, 35, 40], Verdict::Leaking);
        // Significant and steady, but +1 per 30 s grows by only 6 in 7 samples.
        check(&[10, 11, 12, 13, 14, 15, 16], Verdict::Growing);
        // Steep, but 5 samples are fewer than min_samples.
        check(&[10, 30, 50, 70, 90], Verdict::Growing);
        check(&[40, 35, 30, 25, 20, 15, 10], Verdict::Draining);
        check(&[7; 10], Verdict::Stable);
        check(
            &[10, 100, 10, 100, 10, 100, 10, 100, 10, 100],
            Verdict::Stable,
        );
        check(&[], Verdict::Stable);
        check(&[3], Verdict::Stable);
    }

    #[test]
    fn slope_and_projection() {
        let times = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0];
        let counts = [100, 102, 104, 106, 108, 110];
        let trend = Trend::from_series(&times, &counts, &Config::default(), 600.0);
        assert!((trend.slope_per_min - 2.0).abs() < 1e-12);
        // 110 at 300 s, then 10 minutes at 2/min.
        assert_eq!(trend.projected, 130);
        assert_eq!((trend.count_min, trend.count_max), (100, 110));
        assert_eq!(trend.series.len(), 6);

        // Falling to below zero within the horizon: projected at 0, not negative.
        let counts = [50, 40, 30, 20, 10, 5];
        let trend = Trend::from_series(&times, &counts, &Config::default(), 3600.0);
        assert_eq!(trend.projected, 0);

        // The Unix epoch as clock: the same line.
        let epoch: Vec<f64> = times.iter().map(|t| t + 1.8e9).collect();
        let counts = [100, 102, 104, 106, 108, 110];
        let trend = Trend::from_series(&epoch, &counts, &Config::default(), 600.0);
        assert_eq!(trend.projected, 130);
        for horizon in [f64::NAN, f64::INFINITY, -1e9] {
            let trend = Trend::from_series(&epoch, &counts, &Config::default(), horizon);
            assert_eq!(trend.projected, 110, "{horizon}");
        }
    }

    #[test]
    fn names() {
        let all = [
            Verdict::Leaking,
            Verdict::Growing,
            Verdict::Stable,
            Verdict::Draining,
        ];
        let names: Vec<_> = all.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["leaking", "growing", "stable", "draining"]);
        assert_eq!(Verdict::Leaking.to_string(), "leaking");
    }
}
