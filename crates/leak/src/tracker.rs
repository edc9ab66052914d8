//! The streaming part: dumps in, one bounded count series per group signature.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use faultline_dump::{Dump, Frame, Group, Signature, group};

use crate::{Config, Error, Result};

/// Count series per task-group signature, fed one dump at a time.
///
/// Memory is bounded by the number of groups (at most [`Config::max_groups`] and the "other"
/// bucket), each holding at most [`Config::window`] samples; see the crate docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub(crate) config: Config,
    /// Times of the retained samples, oldest first. Every series below is a suffix of these:
    /// a series starts at its group's first appearance and gets a value at every push.
    pub(crate) times: VecDeque<f64>,
    /// All tasks of each dump.
    pub(crate) total: VecDeque<u64>,
    /// The tokio alive-task count the caller passed, if any.
    pub(crate) alive: VecDeque<Option<u64>>,
    /// Groups with a series of their own, in order of first appearance.
    pub(crate) groups: Vec<GroupSeries>,
    index: HashMap<Signature, usize>,
    /// Tasks of signatures past `max_groups`.
    pub(crate) other: Option<GroupSeries>,
    /// Share of the latest dump's tasks in a blocking state: (blocked, tasks with a state).
    pub(crate) blocked: Option<(u64, u64)>,
    /// Signatures the latest dump put in the "other" bucket.
    pub(crate) overflow_signatures: u64,
    /// Dumps pushed, including those whose samples were since dropped.
    pub(crate) pushed: u64,
    /// Groups forgotten after a whole window at 0.
    pub(crate) forgotten: u64,
}

/// One group's series and what it looked like when last seen.
#[derive(Debug, Clone)]
pub(crate) struct GroupSeries {
    /// `None` for the "other" bucket.
    pub(crate) signature: Option<Signature>,
    pub(crate) counts: VecDeque<u64>,
    /// Go wait durations of the group's tasks in each sample: (shortest, longest), seconds.
    pub(crate) waits: VecDeque<Option<(u64, u64)>>,
    /// Consecutive latest samples at 0.
    zero_run: usize,
    /// From the latest sample in which the group had tasks.
    pub(crate) representative: Representative,
}

/// A group as it looked in the latest sample where it had tasks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Representative {
    pub(crate) frames: Option<Arc<[Frame]>>,
    pub(crate) state: Option<String>,
    pub(crate) mixed_states: bool,
    pub(crate) own_frame: Option<usize>,
    pub(crate) creator: Option<Frame>,
    /// (tasks in a blocking state, tasks with a known state).
    pub(crate) blocked: Option<(u64, u64)>,
}

/// What one dump contributes to one series.
#[derive(Debug, Default)]
struct Contribution {
    count: u64,
    waits: Option<(u64, u64)>,
    blocked: Option<(u64, u64)>,
}

impl Contribution {
    fn add(&mut self, group: &Group, blocked: Option<(u64, u64)>) {
        self.count = self.count.saturating_add(group.count);
        self.waits = merge_waits(self.waits, group.wait_seconds);
        self.blocked = merge_blocked(self.blocked, blocked);
    }
}

impl GroupSeries {
    fn new(signature: Option<Signature>) -> Self {
        Self {
            signature,
            counts: VecDeque::new(),
            waits: VecDeque::new(),
            zero_run: 0,
            representative: Representative::default(),
        }
    }

    fn push(&mut self, window: usize, contribution: Option<Contribution>) {
        let (count, waits) = match contribution {
            Some(c) => {
                self.representative.blocked = c.blocked;
                (c.count, c.waits)
            }
            None => (0, None),
        };
        self.counts.push_back(count);
        self.waits.push_back(waits);
        while self.counts.len() > window {
            self.counts.pop_front();
        }
        while self.waits.len() > window {
            self.waits.pop_front();
        }
        self.zero_run = if count == 0 { self.zero_run + 1 } else { 0 };
    }

    fn forgettable(&self, window: usize) -> bool {
        self.zero_run >= window
    }
}

impl Tracker {
    /// A tracker with no samples yet.
    pub fn new(config: Config) -> Self {
        let config = Config {
            window: config.window.max(1),
            ..config
        };
        Self {
            config,
            times: VecDeque::new(),
            total: VecDeque::new(),
            alive: VecDeque::new(),
            groups: Vec::new(),
            index: HashMap::new(),
            other: None,
            blocked: None,
            overflow_signatures: 0,
            pushed: 0,
            forgotten: 0,
        }
    }

    /// The configuration in force (with `window` at least 1).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Samples retained: at most [`Config::window`].
    pub fn retained(&self) -> usize {
        self.times.len()
    }

    /// Dumps pushed so far, including those whose samples were since dropped.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Groups with a series of their own now (not counting the "other" bucket).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Adds `dump`, taken at `time_seconds` (any clock, seconds; after the previous sample).
    ///
    /// Errors, leaving the tracker as it was, when the time is not finite or not after the
    /// previous sample's.
    pub fn push(&mut self, time_seconds: f64, dump: &Dump) -> Result<()> {
        self.push_with_alive(time_seconds, dump, None)
    }

    /// [`Tracker::push`] with the runtime's count of alive tasks at the time of the dump
    /// (tokio's `RuntimeMetrics::num_alive_tasks`), a check on what the dump shows.
    pub fn push_with_alive(
        &mut self,
        time_seconds: f64,
        dump: &Dump,
        alive: Option<u64>,
    ) -> Result<()> {
        if !time_seconds.is_finite() {
            return Err(Error::NonFiniteTime { time: time_seconds });
        }
        if let Some(&previous) = self.times.back()
            && time_seconds <= previous
        {
            return Err(Error::TimeNotIncreasing {
                time: time_seconds,
                previous,
            });
        }
        let window = self.config.window;
        let groups = group(dump, self.config.level, self.config.main_module.as_deref());
        let states = StatesById::new(dump);

        let mut contributions: Vec<Option<Contribution>> = Vec::new();
        contributions.resize_with(self.groups.len(), || None);
        let mut other: Option<Contribution> = None;
        self.overflow_signatures = 0;
        for g in &groups {
            let blocked = group_blocked(g, &states);
            let slot = match self.index.get(&g.signature) {
                Some(&i) => Some(i),
                None if self.groups.len() < self.config.max_groups => {
                    self.index.insert(g.signature.clone(), self.groups.len());
                    self.groups
                        .push(GroupSeries::new(Some(g.signature.clone())));
                    contributions.push(None);
                    Some(self.groups.len() - 1)
                }
                None => None,
            };
            match slot.and_then(|i| Some((self.groups.get_mut(i)?, contributions.get_mut(i)?))) {
                Some((series, contribution)) => {
                    series.representative = Representative {
                        frames: Some(g.frames.clone()),
                        state: g.state.clone(),
                        mixed_states: g.mixed_states,
                        own_frame: g.own_frame,
                        creator: g.creator.clone(),
                        blocked: None,
                    };
                    contribution
                        .get_or_insert_with(Contribution::default)
                        .add(g, blocked);
                }
                None => {
                    self.overflow_signatures += 1;
                    other
                        .get_or_insert_with(Contribution::default)
                        .add(g, blocked);
                }
            }
        }

        self.times.push_back(time_seconds);
        self.total.push_back(dump.task_count());
        self.alive.push_back(alive);
        while self.times.len() > window {
            self.times.pop_front();
            self.total.pop_front();
            self.alive.pop_front();
        }
        for (series, contribution) in self.groups.iter_mut().zip(contributions) {
            series.push(window, contribution);
        }
        if other.is_some() || self.other.is_some() {
            let series = self.other.get_or_insert_with(|| GroupSeries::new(None));
            series.push(window, other);
        }
        self.blocked = dump_blocked(dump);
        self.pushed += 1;
        self.forget(window);
        Ok(())
    }

    /// Drops the groups that have counted 0 for a whole window, freeing their slots.
    fn forget(&mut self, window: usize) {
        if self.other.as_ref().is_some_and(|o| o.forgettable(window)) {
            self.other = None;
        }
        let before = self.groups.len();
        self.groups.retain(|g| !g.forgettable(window));
        if self.groups.len() == before {
            return;
        }
        self.forgotten += (before - self.groups.len()) as u64;
        self.index = self
            .groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| Some((g.signature.clone()?, i)))
            .collect();
    }
}

/// Whether a task's state (as faultline-dump gives it, e.g. `chan receive`) means it is blocked
/// on a channel, a `select` or a lock: Go's `chan receive`, `chan send` (also on a nil
/// channel), `select`, `select (no cases)`, `sync.Mutex.Lock`, `sync.RWMutex.Lock`,
/// `sync.RWMutex.RLock`, `semacquire`, `sync.Cond.Wait`, `sync.WaitGroup.Wait`.
///
/// Leaked goroutines are typically parked in one of these, waiting for a peer that is gone;
/// `IO wait`, `sleep` and `running` are not counted.
pub fn is_blocking_state(state: &str) -> bool {
    // A state may carry further parts after a comma (faultline-dump keeps unknown ones).
    let head = state.split(", ").next().unwrap_or(state);
    let with_detail = |base: &str| {
        head.strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(" ("))
    };
    with_detail("chan receive")
        || with_detail("chan send")
        || with_detail("select")
        || matches!(
            head,
            "sync.Mutex.Lock"
                | "sync.RWMutex.Lock"
                | "sync.RWMutex.RLock"
                | "semacquire"
                | "sync.Cond.Wait"
                | "sync.WaitGroup.Wait"
        )
}

/// The states of a dump's tasks by id, built only if a group with mixed states needs it.
struct StatesById<'a> {
    dump: &'a Dump,
    map: std::cell::OnceCell<HashMap<u64, Option<&'a str>>>,
}

impl<'a> StatesById<'a> {
    fn new(dump: &'a Dump) -> Self {
        Self {
            dump,
            map: std::cell::OnceCell::new(),
        }
    }

    fn get(&self, id: u64) -> Option<&'a str> {
        let map = self.map.get_or_init(|| {
            self.dump
                .tasks
                .iter()
                .filter_map(|t| Some((t.id?, t.state.as_deref())))
                .collect()
        });
        map.get(&id).copied().flatten()
    }
}

/// (tasks of `g` in a blocking state, tasks of `g` with a known state); `None` if no task of
/// the group has a known state.
fn group_blocked(g: &Group, states: &StatesById<'_>) -> Option<(u64, u64)> {
    if !g.mixed_states {
        let state = g.state.as_deref()?;
        let blocked = if is_blocking_state(state) { g.count } else { 0 };
        return Some((blocked, g.count));
    }
    // States differ within the group (at `Level::OwnTop`): look the tasks up by id.
    let (mut blocked, mut known) = (0u64, 0u64);
    for &id in &g.ids {
        if let Some(state) = states.get(id) {
            known += 1;
            if is_blocking_state(state) {
                blocked += 1;
            }
        }
    }
    (known > 0).then_some((blocked, known))
}

/// (tasks of the dump in a blocking state, tasks with a known state), by task count.
fn dump_blocked(dump: &Dump) -> Option<(u64, u64)> {
    let (mut blocked, mut known) = (0u64, 0u64);
    for task in &dump.tasks {
        if let Some(state) = &task.state {
            known = known.saturating_add(task.count);
            if is_blocking_state(state) {
                blocked = blocked.saturating_add(task.count);
            }
        }
    }
    (known > 0).then_some((blocked, known))
}

fn merge_waits(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some((lo1, hi1)), Some((lo2, hi2))) => Some((lo1.min(lo2), hi1.max(hi2))),
        (x, None) | (None, x) => x,
    }
}

fn merge_blocked(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some((b1, k1)), Some((b2, k2))) => Some((b1.saturating_add(b2), k1.saturating_add(k2))),
        (x, None) | (None, x) => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_states() {
        for state in [
            "chan receive",
            "chan receive (nil chan)",
            "chan send",
            "chan send (nil chan)",
            "select",
            "select (no cases)",
            "sync.Mutex.Lock",
            "sync.RWMutex.Lock",
            "sync.RWMutex.RLock",
            "semacquire",
            "sync.Cond.Wait",
            "sync.WaitGroup.Wait",
            "chan receive, something new",
        ] {
            assert!(is_blocking_state(state), "{state}");
        }
        for state in [
            "IO wait", "running", "sleep", "runnable", "selectgo", "syscall", "",
        ] {
            assert!(!is_blocking_state(state), "{state}");
        }
    }
}
