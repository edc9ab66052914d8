//! The run's journal: each event with its time, printed as it happens when the run shows its
//! progress, and settled at the end into `journal.json`'s events.

use std::time::{Instant, SystemTime};

use super::Event;
use crate::probe::seconds_since;

/// The run's events as they happen; their times are settled at the end, when time zero (the
/// start of the steps) is known for the events before it too.
pub(super) struct Journal {
    /// The start of the steps, once they start.
    pub(super) zero: Option<Instant>,
    /// The start of the run.
    pub(super) start: Instant,
    /// When, what kind, what.
    pub(super) entries: Vec<(Instant, String, String)>,
    /// Whether each event is also printed to stderr as it happens.
    pub(super) progress: bool,
}

impl Journal {
    pub(super) fn log(&mut self, kind: &str, message: impl Into<String>) {
        let message = message.into();
        if self.progress {
            match self.zero {
                Some(zero) => eprintln!(
                    "faultline run: {:+7.1}s {kind}: {message}",
                    seconds_since(zero)
                ),
                None => eprintln!("faultline run:    setup {kind}: {message}"),
            }
        }
        self.entries
            .push((Instant::now(), kind.to_owned(), message));
    }

    /// The events in time order, `t` counted from the start of the steps (or of the run, if
    /// the steps never started) and `at` in wall-clock time.
    pub(super) fn into_events(self, started_at: SystemTime) -> Vec<Event> {
        let origin = self.zero.unwrap_or(self.start);
        let mut events: Vec<Event> = self
            .entries
            .into_iter()
            .map(|(when, kind, message)| Event {
                t: match when.checked_duration_since(origin) {
                    Some(d) => d.as_secs_f64(),
                    None => -(origin - when).as_secs_f64(),
                },
                at: humantime::format_rfc3339_millis(
                    started_at + when.saturating_duration_since(self.start),
                )
                .to_string(),
                kind,
                message,
            })
            .collect();
        events.sort_by(|a, b| a.t.total_cmp(&b.t));
        events
    }
}
