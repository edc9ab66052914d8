//! Leak detection: which groups of goroutines or tokio tasks keep piling up.
//!
//! Values in, values out: no I/O, no clock, no file system. The caller takes task dumps over
//! time (a `/debug/pprof/goroutine?debug=2` every 30 s, a tokio task dump, …), parses them with
//! faultline-dump, and pushes each one with the time it was taken into a [`Tracker`]. The
//! tracker groups every dump by stack signature ([`faultline_dump::group`] at
//! [`Config::level`]) and keeps, per group, the series of its task counts. [`Tracker::report`]
//! then tests each series for a trend ([`stats`]: Mann-Kendall for significance, Theil–Sen for
//! the slope) and gives each group a [`Verdict`], most alarming first, with the evidence that
//! helps a person believe it (waits that keep growing, tasks blocked on channels and locks).
//!
//! ```
//! use faultline_dump::{Limits, parse};
//! use faultline_leak::{Config, Tracker, Verdict};
//!
//! let mut tracker = Tracker::new(Config::default());
//! for minute in 0..10u32 {
//!     // A handler that leaves one more goroutine behind every 10 seconds.
//!     let mut text = String::new();
//!     for id in 1..=6 * minute {
//!         text += &format!("goroutine {id} [chan receive]:\nmain.handle.func1()\n\t/app/main.go:42 +0x2a\n\n");
//!     }
//!     let dump = parse(text.as_bytes(), &Limits::default())?;
//!     tracker.push(60.0 * f64::from(minute), &dump)?;
//! }
//! let report = tracker.report(600.0);
//! let worst = &report.groups[0];
//! assert_eq!(worst.trend.verdict, Verdict::Leaking);
//! assert_eq!(worst.trend.verdict.name(), "leaking");
//! assert_eq!(worst.trend.slope_per_min, 6.0);
//! assert_eq!(worst.trend.projected, 54 + 60); // in 10 minutes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Verdicts
//!
//! Per series of `n` retained samples, with S and p from the Mann-Kendall test and the
//! Theil–Sen slope in tasks per minute (the defaults of [`Config`] in parentheses):
//!
//! - [`Verdict::Leaking`]: `n ≥ min_samples` (6), `p < alpha` (0.01) with `S > 0`, net growth
//!   `count_last − count_first ≥ min_growth` (10 tasks), the trend line's own rise over the
//!   samples (`slope × span`) also `≥ min_growth`, and `slope ≥ min_slope_per_min` (1.0
//!   tasks/min). With fewer than `min_samples` samples a group is never leaking. The rise of
//!   the line matters for a series that ramps up once and then holds (a service warming up
//!   while it is sampled): its S is significant and its last count above its first, but its
//!   median slope is near 0.
//! - [`Verdict::Growing`]: `S > 0` and `slope > 0`, but not every guard above passes: going up,
//!   but not (yet) significant, big or fast enough to call a leak.
//! - [`Verdict::Draining`]: `S < 0`, `p < alpha` and `slope < 0`.
//! - [`Verdict::Stable`]: anything else. A bursty but flat series (high and low in turns around
//!   a constant level) has a small S and a zero slope, so it is stable (with noise on top, at
//!   worst growing).
//!
//! Both tests are rank-based: one dump with a burst of short-lived tasks moves S by little and
//! the median slope not at all, where a least-squares fit would swing. The p-value assumes
//! independent samples; dumps taken seconds apart are not, so keep the interval well above the
//! lifetime of a normal request's tasks.
//!
//! # Memory
//!
//! Memory is bounded by the number of groups, never by the number of dumps pushed:
//!
//! - Each series keeps the latest [`Config::window`] samples (120); older ones are dropped, so
//!   the verdict is about the last `window` dumps (an hour at one dump per 30 s).
//! - A group absent from a dump counts 0 there, from its first appearance on (never before).
//!   A group that has counted 0 for a whole window is forgotten; if its signature comes back,
//!   it starts a new series.
//! - At most [`Config::max_groups`] (10,000) signatures get a series of their own. Tasks of
//!   further signatures are counted together in one "other" bucket, reported as a
//!   [`GroupTrend`] whose `signature` is `None`; [`Report::overflow_signatures`] says how many
//!   signatures the latest dump put there. A slot freed by a forgotten group goes to the next
//!   new signature.
//!
//! The totals (all tasks of each dump, and the tokio alive-task count when the caller passes
//! one to [`Tracker::push_with_alive`]) are series of their own, tested the same way:
//! [`Report::total`], [`Report::alive`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod report;
pub mod stats;
mod tracker;

pub use faultline_dump::Level;
pub use report::{Evidence, GroupTrend, Report, Trend, WaitSample};
pub use tracker::{Restart, Sample, Tracker, is_blocking_state};

/// Errors of [`Tracker::push`]: a sample the series cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sample's time is NaN or infinite.
    #[error("sample time {time} is not a finite number of seconds")]
    NonFiniteTime {
        /// The time given.
        time: f64,
    },
    /// The sample's time is not after the previous sample's.
    #[error("sample time {time} s is not after the previous sample's {previous} s")]
    TimeNotIncreasing {
        /// The time given.
        time: f64,
        /// The previous sample's time.
        previous: f64,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to group dumps, how much to keep, and when a trend is a leak.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The level at which dumps are grouped (default [`Level::Functions`]: same functions
    /// and state, lines may differ).
    pub level: Level,
    /// The Go main module's path (`example.com/shop`), if known: it decides which frames are
    /// the service's own code (default `None`).
    pub main_module: Option<String>,
    /// Samples kept per series; older ones are dropped (default 120). Values below 1 count as 1.
    pub window: usize,
    /// Signatures with a series of their own; tasks of further ones go to the "other" bucket
    /// (default 10,000).
    pub max_groups: usize,
    /// Fewest samples for a [`Verdict::Leaking`] verdict (default 6).
    pub min_samples: usize,
    /// Significance level of the Mann-Kendall test (default 0.01).
    pub alpha: f64,
    /// Least net growth, last count minus first, for [`Verdict::Leaking`] (default 10 tasks).
    pub min_growth: u64,
    /// Least Theil–Sen slope for [`Verdict::Leaking`] (default 1.0 tasks per minute).
    pub min_slope_per_min: f64,
    /// For a group whose tasks carry ids: fewest members of the latest sample that have been
    /// in the group since the middle of its series for [`Verdict::Leaking`] (default 5). A
    /// rising count whose members turn over (more load, not a leak) is [`Verdict::Growing`].
    pub min_persisting: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            level: Level::Functions,
            main_module: None,
            window: 120,
            max_groups: 10_000,
            min_samples: 6,
            alpha: 0.01,
            min_growth: 10,
            min_slope_per_min: 1.0,
            min_persisting: 5,
        }
    }
}

/// What the trend of one series says. The rules, with their defaults, are in the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A significant, large and fast enough upward trend.
    Leaking,
    /// Going up, but not (yet) a leak by every rule.
    Growing,
    /// No trend worth a word.
    Stable,
    /// A significant downward trend.
    Draining,
}

impl Verdict {
    /// A stable name, as `--format json` writes it: `leaking`, `growing`, `stable`, `draining`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Leaking => "leaking",
            Verdict::Growing => "growing",
            Verdict::Stable => "stable",
            Verdict::Draining => "draining",
        }
    }

    /// Most alarming first: leaking, growing, stable, draining.
    fn rank(self) -> u8 {
        match self {
            Verdict::Leaking => 0,
            Verdict::Growing => 1,
            Verdict::Stable => 2,
            Verdict::Draining => 3,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
