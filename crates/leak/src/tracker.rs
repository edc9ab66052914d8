//! The streaming part: dumps in, one bounded count series per group signature.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use faultline_dump::{Dump, Frame, Group, Runtime, Signature, group};

use crate::report::GroupTrend;
use crate::{Config, Error, Result};

/// Restarts remembered, with the flagged groups of the process before each.
const MAX_RESTARTS: usize = 8;

/// Go hands out goroutine ids from a counter that never goes back, in batches of 16 per
/// scheduler P; an id this far below the highest one seen is not a new goroutine of the same
/// process (unless a P held on to an old batch: hence the other conditions of the rule).
const ID_SLACK: u64 = 256;

/// One dump and what the caller knows about it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// When it was taken: any clock, seconds; after the previous sample.
    pub time_seconds: f64,
    /// The dump.
    pub dump: &'a Dump,
    /// The runtime's count of alive tasks at the time of the dump (tokio's
    /// `RuntimeMetrics::num_alive_tasks`), a check on what the dump shows.
    pub alive: Option<u64>,
    /// Which process the dump is of, if the caller knows (a pid, a start count): a change
    /// is a restart. Without it, the dump's own pid, and for Go the goroutine ids, tell.
    pub process: Option<u64>,
}

/// A restart of the sampled process between two samples: the series before it are judged on
/// their own, and the series after it start afresh.
#[derive(Debug, Clone, PartialEq)]
pub struct Restart {
    /// The time of the first sample of the new process.
    pub time_seconds: f64,
    /// How it was told (`the pid changed from 41 to 97`, `goroutine ids went back: …`).
    pub why: String,
}

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
    /// The restarts seen (the latest [`MAX_RESTARTS`]).
    pub(crate) restarts: VecDeque<Restart>,
    /// The leaking and growing groups of the processes before those restarts, as they were
    /// judged when their process went away.
    pub(crate) earlier: VecDeque<GroupTrend>,
    /// The latest dump's process: the caller's identity, its pid, and its sorted task ids.
    last_process: Option<u64>,
    last_pid: Option<u32>,
    last_ids: Vec<u64>,
}

/// One group's series and what it looked like when last seen.
#[derive(Debug, Clone)]
pub(crate) struct GroupSeries {
    /// `None` for the "other" bucket.
    pub(crate) signature: Option<Signature>,
    pub(crate) counts: VecDeque<u64>,
    /// Go wait durations of the group's tasks in each sample: (shortest, longest), seconds.
    pub(crate) waits: VecDeque<Option<(u64, u64)>>,
    /// Tasks the runtime proved leaked, in each sample.
    pub(crate) proven: VecDeque<u64>,
    /// Of each sample's members, the share gone by the next sample (`None` where the earlier
    /// sample had none, or the format carries no ids).
    pub(crate) turnover: VecDeque<Option<f64>>,
    /// The latest sample's members: task id → time first seen in the group, since when it
    /// has been there in every sample. Empty when the group's tasks carry no ids.
    pub(crate) members: HashMap<u64, f64>,
    /// Whether the latest sample's tasks all carried ids.
    pub(crate) identified: bool,
    /// Members of the latest sample that were also in the previous one.
    pub(crate) survivors: Option<u64>,
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
    proven: u64,
    /// The tasks' ids, when every task has one (a group of its own; the "other" bucket mixes
    /// signatures, so its members are not followed).
    ids: Option<Vec<u64>>,
}

impl Contribution {
    fn add(&mut self, group: &Group, blocked: Option<(u64, u64)>) {
        self.count = self.count.saturating_add(group.count);
        self.waits = merge_waits(self.waits, group.wait_seconds);
        self.blocked = merge_blocked(self.blocked, blocked);
        self.proven = self.proven.saturating_add(group.proven_leaked);
    }
}

impl GroupSeries {
    fn new(signature: Option<Signature>) -> Self {
        Self {
            signature,
            counts: VecDeque::new(),
            waits: VecDeque::new(),
            proven: VecDeque::new(),
            turnover: VecDeque::new(),
            members: HashMap::new(),
            identified: false,
            survivors: None,
            zero_run: 0,
            representative: Representative::default(),
        }
    }

    fn push(&mut self, window: usize, time: f64, contribution: Option<Contribution>) {
        let (count, waits, proven) = match &contribution {
            Some(c) => {
                self.representative.blocked = c.blocked;
                (c.count, c.waits, c.proven)
            }
            None => (0, None, 0),
        };
        self.follow_members(time, contribution);
        self.counts.push_back(count);
        self.waits.push_back(waits);
        self.proven.push_back(proven);
        while self.counts.len() > window {
            self.counts.pop_front();
        }
        while self.waits.len() > window {
            self.waits.pop_front();
        }
        while self.proven.len() > window {
            self.proven.pop_front();
        }
        while self.turnover.len() > window {
            self.turnover.pop_front();
        }
        self.zero_run = if count == 0 { self.zero_run + 1 } else { 0 };
    }

    /// Who is still there: the previous sample's members against this one's.
    fn follow_members(&mut self, time: f64, contribution: Option<Contribution>) {
        let previous = std::mem::take(&mut self.members);
        let followed = self.identified && !previous.is_empty();
        match contribution {
            // Gone from the dump: every member left.
            None => {
                self.turnover.push_back(followed.then_some(1.0));
                self.survivors = self.identified.then_some(0);
            }
            Some(Contribution { ids: Some(ids), .. }) => {
                let mut members = HashMap::with_capacity(ids.len());
                let mut survivors = 0u64;
                for id in ids {
                    let first = match previous.get(&id) {
                        Some(&first) => {
                            survivors += 1;
                            first
                        }
                        None => time,
                    };
                    members.insert(id, first);
                }
                let gone = previous.len() as u64 - survivors.min(previous.len() as u64);
                self.turnover
                    .push_back(followed.then(|| gone as f64 / previous.len() as f64));
                self.survivors = self.identified.then_some(survivors);
                self.members = members;
                self.identified = true;
            }
            // Tasks without ids (pprof profiles): counts only.
            Some(_) => {
                self.turnover.push_back(None);
                self.survivors = None;
                self.identified = false;
            }
        }
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
            restarts: VecDeque::new(),
            earlier: VecDeque::new(),
            last_process: None,
            last_pid: None,
            last_ids: Vec::new(),
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
        self.push_sample(Sample {
            time_seconds,
            dump,
            alive,
            process: None,
        })
    }

    /// Adds a sample. A restart of the sampled process (see [`Tracker::restarts`]) splits the
    /// series there: the groups before it keep the verdict they had, and the series start
    /// again with this sample.
    ///
    /// Errors, leaving the tracker as it was, when the time is not finite or not after the
    /// previous sample's.
    pub fn push_sample(&mut self, sample: Sample<'_>) -> Result<()> {
        let Sample {
            time_seconds,
            dump,
            alive,
            process,
        } = sample;
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
        let mut ids: Vec<u64> = dump.tasks.iter().filter_map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if let Some(why) = self.restarted(process, dump, &ids) {
            self.split(time_seconds, why);
        }
        self.last_process = process.or(self.last_process);
        self.last_pid = dump.pid.or(self.last_pid);
        self.last_ids = ids;
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
                    let contribution = contribution.get_or_insert_with(Contribution::default);
                    contribution.add(g, blocked);
                    contribution.ids = (g.ids.len() as u64 == g.count).then(|| g.ids.clone());
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
            series.push(window, time_seconds, contribution);
        }
        if other.is_some() || self.other.is_some() {
            let series = self.other.get_or_insert_with(|| GroupSeries::new(None));
            series.push(window, time_seconds, other);
        }
        self.blocked = dump_blocked(dump);
        self.pushed += 1;
        self.forget(window);
        Ok(())
    }

    /// The restarts seen so far (the latest eight), oldest first.
    pub fn restarts(&self) -> impl Iterator<Item = &Restart> {
        self.restarts.iter()
    }

    /// Whether the process sampled now is not the one sampled before, and how that shows:
    /// the caller's identity changed, or the dump's pid, or (Go) the goroutine ids went back.
    ///
    /// Go never reuses a goroutine id within a process and hands them out in increasing
    /// order (in batches of 16 per P). A restarted process starts again from 1, so its new
    /// goroutines carry ids far below the highest of the process before it. Restart, then,
    /// when more than half of the goroutines new in this dump have an id more than 256 below
    /// the previous dump's highest, fewer than half of the previous dump's goroutines are
    /// still there, and either at least 3 new ones are that low or every goroutine now is
    /// (the highest id fell by more than 256). A process that had created fewer than about
    /// 256 goroutines cannot be told apart this way.
    fn restarted(&self, process: Option<u64>, dump: &Dump, ids: &[u64]) -> Option<String> {
        if self.times.is_empty() {
            return None;
        }
        if let (Some(before), Some(now)) = (self.last_process, process)
            && before != now
        {
            return Some(format!("the sampled process changed ({before} to {now})"));
        }
        if let (Some(before), Some(now)) = (self.last_pid, dump.pid)
            && before != now
        {
            return Some(format!("the pid changed from {before} to {now}"));
        }
        if dump.runtime != Runtime::Go || self.last_ids.is_empty() || ids.is_empty() {
            return None;
        }
        let highest = self.last_ids.last().copied().unwrap_or(0);
        let (mut new, mut below, mut kept) = (0usize, 0usize, 0usize);
        for id in ids {
            if self.last_ids.binary_search(id).is_ok() {
                kept += 1;
            } else {
                new += 1;
                if id.saturating_add(ID_SLACK) < highest {
                    below += 1;
                }
            }
        }
        let highest_now = ids.last().copied().unwrap_or(0);
        let went_back = below >= 1 && 2 * below > new && 2 * kept < self.last_ids.len();
        (went_back && (below >= 3 || highest_now.saturating_add(ID_SLACK) < highest)).then(|| {
            format!(
                "goroutine ids went back: {below} of the {new} new goroutines have ids below \
                 {}, and {kept} of the {} goroutines before are still there",
                highest.saturating_sub(ID_SLACK),
                self.last_ids.len()
            )
        })
    }

    /// A restart at `time`: the flagged groups of the process before it are kept as they
    /// were judged, and every series starts again.
    fn split(&mut self, time: f64, why: String) {
        let before = self.report(0.0);
        for mut group in before.groups {
            if matches!(
                group.trend.verdict,
                crate::Verdict::Leaking | crate::Verdict::Growing
            ) {
                group.before_restart = Some(time);
                self.earlier.push_back(group);
            }
        }
        self.restarts.push_back(Restart {
            time_seconds: time,
            why,
        });
        while self.restarts.len() > MAX_RESTARTS {
            self.restarts.pop_front();
            if let Some(oldest) = self.restarts.front().map(|r| r.time_seconds) {
                self.earlier
                    .retain(|g| g.before_restart.is_some_and(|t| t >= oldest));
            }
        }
        self.times.clear();
        self.total.clear();
        self.alive.clear();
        self.groups.clear();
        self.index.clear();
        self.other = None;
        self.blocked = None;
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
