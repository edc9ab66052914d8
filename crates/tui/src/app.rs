//! The screen's state and how it changes: every input is an [`Event`], and handling one
//! returns the [`Action`]s for the loop to carry out. Nothing here does I/O, so every
//! transition is tested with values.

use std::time::{Duration, Instant};

use faultline_agent::spec::{FaultSpec, FaultView};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::form::{Form, Kind};
use crate::model::{
    AgentStatus, CrashRow, FaultRow, ProbeRow, TargetRow, TaskGroupRow, push_history,
};

/// How long an ended fault stays on the Faults view, fading.
pub const FADE: Duration = Duration::from_secs(30);

/// The views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// What can be hit.
    Targets,
    /// What is being hit.
    Faults,
    /// What crashed.
    Crashes,
    /// Task groups and leaks.
    Tasks,
}

impl Tab {
    /// Every view, in order (keys 1–4).
    pub const ALL: [Tab; 4] = [Tab::Targets, Tab::Faults, Tab::Crashes, Tab::Tasks];

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Targets => "Targets",
            Tab::Faults => "Faults",
            Tab::Crashes => "Crashes",
            Tab::Tasks => "Tasks",
        }
    }
}

/// Everything that can happen to the screen.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal was resized (the next frame redraws at the new size).
    Resize,
    /// Time passed (countdowns move, messages expire).
    Tick(Instant),
    /// An agent's targets (replacing those of that agent).
    Targets {
        /// Which agent.
        agent: usize,
        /// The targets.
        rows: Vec<TargetRow>,
    },
    /// An agent's faults, or why it did not answer.
    Faults {
        /// Which agent.
        agent: usize,
        /// Its answer.
        result: Result<Vec<FaultView>, String>,
        /// When it answered.
        at: Instant,
    },
    /// Crashes found so far (all of them, newest first).
    Crashes(Vec<CrashRow>),
    /// Task groups from the latest dumps, largest first.
    Tasks(Vec<TaskGroupRow>),
    /// The scenario's probes.
    Probes(Vec<ProbeRow>),
    /// The answer to an [`Action::Inject`].
    Injected {
        /// Which agent.
        agent: usize,
        /// The fault, or the agent's refusal.
        result: Result<FaultView, String>,
    },
    /// The answer to an [`Action::Revert`].
    Reverted {
        /// Which agent.
        agent: usize,
        /// The fault's id.
        id: String,
        /// The fault as reverted, or why it could not be.
        result: Result<FaultView, String>,
    },
    /// SIGTERM, SIGHUP or SIGINT reached the screen: it reverts its faults and leaves.
    Signal(i32),
    /// The answer to an [`Action::PodKill`]: what happened, or why it failed.
    PodKilled {
        /// `namespace/name`.
        pod: String,
        /// The kill and the replacement, or the error.
        result: Result<String, String>,
    },
    /// The result of renewing this screen's leases on an agent.
    Renewed {
        /// Which agent.
        agent: usize,
        /// `Err` with the first failure.
        result: Result<(), String>,
    },
}

/// What the loop is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create a fault (with this screen's lease).
    Inject {
        /// Which agent.
        agent: usize,
        /// The fault.
        spec: FaultSpec,
    },
    /// Revert one fault.
    Revert {
        /// Which agent.
        agent: usize,
        /// The fault's id.
        id: String,
    },
    /// Delete a pod through the API server (`--kube`) and wait for its replacement.
    PodKill {
        /// `namespace/name`.
        pod: String,
    },
    /// Leave: revert this screen's active faults first when `revert`.
    Quit {
        /// Whether to revert.
        revert: bool,
    },
}

/// A question the user must answer before anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// `R`: revert every active fault?
    RevertAll,
    /// `q` with active faults: revert them before leaving?
    Quit,
    /// `x` on a pod (`--kube`): delete it (the target with this row key)?
    PodKill(usize, u32),
}

/// A detail pane over a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The stack of crash N (index in `crashes`).
    Crash(usize),
    /// The stack of task group N (index in `tasks`).
    Tasks(usize),
}

/// The whole state of the screen.
#[derive(Debug, Clone)]
pub struct App {
    /// The view shown.
    pub tab: Tab,
    /// Every target, by agent then pid.
    pub targets: Vec<TargetRow>,
    /// Selection in the filtered targets.
    pub target_selected: usize,
    /// The targets filter (`/`).
    pub filter: String,
    /// Whether keys go to the filter.
    pub filtering: bool,
    /// Faults: active ones first, then ended ones fading out.
    pub faults: Vec<FaultRow>,
    /// Selection in the faults.
    pub fault_selected: usize,
    /// Crashes, newest first.
    pub crashes: Vec<CrashRow>,
    /// Selection in the crashes.
    pub crash_selected: usize,
    /// Task groups, largest first.
    pub tasks: Vec<TaskGroupRow>,
    /// Selection in the task groups.
    pub task_selected: usize,
    /// A stack shown over the list.
    pub detail: Option<Detail>,
    /// The detail pane's scroll.
    pub detail_scroll: u16,
    /// The inject form, when open.
    pub form: Option<Form>,
    /// A question, when asked.
    pub confirm: Option<Confirm>,
    /// Whether the key help is shown.
    pub help: bool,
    /// The agents.
    pub agents: Vec<AgentStatus>,
    /// The scenario's probes.
    pub probes: Vec<ProbeRow>,
    /// Every target's name by (agent, pid), kept after it is gone (a fault outlives a
    /// restarted target's pid).
    pub names: std::collections::HashMap<(usize, u32), String>,
    /// The faults this screen injected, by (agent, id): it renews their leases and offers to
    /// revert them on the way out.
    pub ours: std::collections::HashSet<(usize, String)>,
    /// Lab hosts and their addresses (names a partition can use).
    pub peers: Vec<(String, String)>,
    /// A line for the user (what happened), and until when it shows.
    pub message: Option<(String, Instant)>,
    /// What the screen is about (`scenario demo`, `local agent`).
    pub title: String,
    /// Whether the targets are pods of a cluster (`--kube`).
    pub kube: bool,
    /// The time of the last tick.
    pub now: Instant,
    /// Set when the screen is to close.
    pub quitting: bool,
}

impl App {
    /// An empty screen talking to `agents`.
    pub fn new(title: impl Into<String>, agents: Vec<AgentStatus>, now: Instant) -> Self {
        Self {
            tab: Tab::Targets,
            targets: Vec::new(),
            target_selected: 0,
            filter: String::new(),
            filtering: false,
            faults: Vec::new(),
            fault_selected: 0,
            crashes: Vec::new(),
            crash_selected: 0,
            tasks: Vec::new(),
            task_selected: 0,
            detail: None,
            detail_scroll: 0,
            form: None,
            confirm: None,
            help: false,
            agents,
            probes: Vec::new(),
            names: std::collections::HashMap::new(),
            ours: std::collections::HashSet::new(),
            peers: Vec::new(),
            message: None,
            title: title.into(),
            kube: false,
            now,
            quitting: false,
        }
    }

    /// The targets the filter lets through (indices into `targets`).
    pub fn visible_targets(&self) -> Vec<usize> {
        let needle = self.filter.to_lowercase();
        self.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                needle.is_empty()
                    || t.name.to_lowercase().contains(&needle)
                    || t.pid.to_string().contains(&needle)
                    || t.address.as_deref().is_some_and(|a| a.contains(&needle))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The selected target, if any.
    pub fn selected_target(&self) -> Option<&TargetRow> {
        let visible = self.visible_targets();
        visible
            .get(self.target_selected.min(visible.len().saturating_sub(1)))
            .map(|&i| &self.targets[i])
    }

    /// Active faults.
    pub fn active_faults(&self) -> impl Iterator<Item = &FaultRow> {
        self.faults.iter().filter(|f| f.active())
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some((text.into(), self.now + Duration::from_secs(6)));
    }

    /// Handles one event; returns what the loop must do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => return self.key(key),
            Event::Key(_) | Event::Resize => {}
            Event::Tick(now) => {
                self.now = now;
                if self
                    .message
                    .as_ref()
                    .is_some_and(|(_, until)| *until <= now)
                {
                    self.message = None;
                }
                self.fade();
            }
            Event::Targets { agent, rows } => self.set_targets(agent, rows),
            Event::Faults { agent, result, at } => self.set_faults(agent, result, at),
            Event::Crashes(rows) => {
                let new = rows.len().saturating_sub(self.crashes.len());
                if new > 0 && !self.crashes.is_empty() {
                    self.say(format!("{new} new crash(es): see Crashes (3)"));
                }
                // The selection and an open stack stay on the same crash (by its file) as new
                // ones arrive above it.
                let open = match self.detail {
                    Some(Detail::Crash(i)) => Some(i),
                    _ => None,
                };
                let (selected, open) =
                    replace_keeping(&mut self.crashes, rows, self.crash_selected, open, |c| {
                        (c.file.clone(), c.message.clone())
                    });
                self.crash_selected = selected;
                if let Some(open) = open {
                    self.detail = open.map(Detail::Crash);
                }
            }
            Event::Tasks(rows) => {
                // Groups are re-sorted by size on every dump: the selection and an open stack
                // follow the group (its source and stack), not its place.
                let open = match self.detail {
                    Some(Detail::Tasks(i)) => Some(i),
                    _ => None,
                };
                let (selected, open) =
                    replace_keeping(&mut self.tasks, rows, self.task_selected, open, |g| {
                        (
                            g.source.clone(),
                            g.state.clone(),
                            g.top_frame.clone(),
                            g.frames.len(),
                        )
                    });
                self.task_selected = selected;
                if let Some(open) = open {
                    self.detail = open.map(Detail::Tasks);
                }
                let counts = self.task_counts();
                for target in &mut self.targets {
                    if let Some(&n) = counts.get(&target.name) {
                        target.tasks = Some(n);
                    }
                }
            }
            Event::Probes(rows) => self.probes = rows,
            Event::Injected { agent, result } => match result {
                Ok(view) => {
                    if self.form.as_ref().is_some_and(|f| f.sending) {
                        self.form = None;
                    }
                    if view.state == "active" {
                        self.ours.insert((agent, view.id.clone()));
                    }
                    self.say(format!(
                        "{} {} applied: {}",
                        view.kind, view.id, view.detail
                    ));
                    let seen = self.now;
                    self.faults
                        .retain(|f| !(f.agent == agent && f.view.id == view.id));
                    self.faults.insert(
                        0,
                        FaultRow {
                            agent,
                            ended: (view.state != "active").then_some(seen),
                            view,
                            seen,
                            ours: true,
                        },
                    );
                    self.tab = Tab::Faults;
                    self.fault_selected = 0;
                }
                Err(e) => match &mut self.form {
                    // The answer to this form (one opened since has not sent anything).
                    Some(form) if form.sending => {
                        form.sending = false;
                        form.refused = Some(e);
                    }
                    _ => self.say(format!("refused: {e}")),
                },
            },
            Event::Reverted { agent, id, result } => match result {
                Ok(view) => {
                    self.say(format!(
                        "{} {id} reverted: {}",
                        view.kind,
                        view.revert.as_deref().unwrap_or("done")
                    ));
                    let now = self.now;
                    if let Some(row) = self
                        .faults
                        .iter_mut()
                        .find(|f| f.agent == agent && f.view.id == id)
                    {
                        row.view = view;
                        row.seen = now;
                        row.ended.get_or_insert(now);
                    }
                    self.sort_faults();
                }
                Err(e) => self.say(format!("revert {id} failed: {e}")),
            },
            Event::Renewed { agent, result } => {
                if let Some(status) = self.agents.get_mut(agent) {
                    status.lease_error = result.err();
                }
            }
            Event::Signal(_) => {
                self.quitting = true;
                return vec![Action::Quit { revert: true }];
            }
            Event::PodKilled { pod, result } => match result {
                Ok(what) => self.say(what),
                Err(e) => self.say(format!("pod-kill of {pod} failed: {e}")),
            },
        }
        Vec::new()
    }

    /// Tasks in the latest dumps, by source.
    fn task_counts(&self) -> std::collections::HashMap<String, u64> {
        let mut counts = std::collections::HashMap::new();
        for group in &self.tasks {
            *counts.entry(group.source.clone()).or_insert(0) += group.count;
        }
        counts
    }

    fn set_targets(&mut self, agent: usize, rows: Vec<TargetRow>) {
        // Keep the selection on the same process when the list changes under it.
        let selected = self.selected_target().map(|t| (t.agent, t.pid));
        let mut old: std::collections::HashMap<(usize, u32), Vec<u64>> = self
            .targets
            .iter_mut()
            .filter(|t| t.agent == agent)
            .map(|t| ((t.agent, t.pid), std::mem::take(&mut t.history)))
            .collect();
        self.targets.retain(|t| t.agent != agent);
        let counts = self.task_counts();
        for mut row in rows {
            row.agent = agent;
            if row.tasks.is_none() {
                row.tasks = counts
                    .get(&row.name)
                    .or_else(|| counts.get(&row.pid.to_string()))
                    .copied();
            }
            let mut history = old.remove(&(agent, row.pid)).unwrap_or_default();
            if let Some(value) = row.tasks.or(row.threads.map(u64::from)) {
                push_history(&mut history, value);
            }
            row.history = history;
            self.targets.push(row);
        }
        self.targets.sort_by_key(|t| (t.agent, t.pid));
        // Pods: their names and addresses are the peers a partition can name.
        if self.kube {
            self.peers = self
                .targets
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.address.clone()?)))
                .collect();
            self.peers.sort();
        }
        // A lab host restarted while its form was open: the form follows it to its new pid.
        if let Some(form) = &mut self.form
            && form.agent == agent
            && !self
                .targets
                .iter()
                .any(|t| t.agent == agent && t.pid == form.pid)
            && let Some(host) = self
                .targets
                .iter()
                .find(|t| t.agent == agent && t.address.is_some() && t.name == form.target)
        {
            form.pid = host.pid;
        }
        // Names outlive their targets only while a fault names the pid.
        let faults: std::collections::HashSet<(usize, u32)> =
            self.faults.iter().map(|f| (f.agent, f.view.pid)).collect();
        self.names.retain(|key, _| faults.contains(key));
        for t in &self.targets {
            self.names.insert((t.agent, t.pid), t.name.clone());
        }
        if let Some(key) = selected {
            let visible = self.visible_targets();
            if let Some(at) = visible
                .iter()
                .position(|&i| (self.targets[i].agent, self.targets[i].pid) == key)
            {
                self.target_selected = at;
            }
        }
    }

    fn set_faults(&mut self, agent: usize, result: Result<Vec<FaultView>, String>, at: Instant) {
        let Some(status) = self.agents.get_mut(agent) else {
            return;
        };
        let views = match result {
            Ok(views) => {
                status.connected = true;
                status.error = None;
                views
            }
            Err(e) => {
                status.connected = false;
                status.error = Some(e);
                return;
            }
        };
        let now = self.now;
        let mut rows = Vec::new();
        for view in views {
            let previous = self
                .faults
                .iter()
                .find(|f| f.agent == agent && f.view.id == view.id);
            let ours = self.ours.contains(&(agent, view.id.clone()));
            let ended = if view.state == "active" {
                None
            } else {
                // First seen ended now, unless it was before (or is long gone: not shown).
                previous.map(|p| p.ended.unwrap_or(now))
            };
            if view.state != "active" && ended.is_none() {
                continue;
            }
            rows.push(FaultRow {
                agent,
                view,
                seen: at,
                ended,
                ours,
            });
        }
        // Ended faults the agent no longer lists (a kill is never held) keep fading here.
        self.faults.retain(|f| {
            f.agent != agent || (f.ended.is_some() && !rows.iter().any(|r| r.view.id == f.view.id))
        });
        self.faults.extend(rows);
        self.sort_faults();
        self.fade();
    }

    /// Active faults first (least time left first), then ended ones, newest first.
    fn sort_faults(&mut self) {
        let now = self.now;
        let selected = self
            .faults
            .get(self.fault_selected)
            .map(|f| (f.agent, f.view.id.clone()));
        self.faults.sort_by(|a, b| {
            b.active().cmp(&a.active()).then_with(|| {
                let left = |f: &FaultRow| f.seconds_left(now).unwrap_or(f64::MAX);
                match (a.ended, b.ended) {
                    (Some(x), Some(y)) => y.cmp(&x),
                    _ => left(a).total_cmp(&left(b)),
                }
            })
        });
        // The selection stays on the same fault, so `r` reverts the one highlighted.
        if let Some(at) = selected.and_then(|(agent, id)| {
            self.faults
                .iter()
                .position(|f| f.agent == agent && f.view.id == id)
        }) {
            self.fault_selected = at;
        }
    }

    /// Drops ended faults after [`FADE`].
    fn fade(&mut self) {
        let now = self.now;
        self.faults.retain(|f| {
            f.ended
                .is_none_or(|e| now.saturating_duration_since(e) < FADE)
        });
        self.fault_selected = self.fault_selected.min(self.faults.len().saturating_sub(1));
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Action> {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(confirm) = self.confirm {
            return self.answer(confirm, key.code);
        }
        if ctrl_c {
            return self.quit();
        }
        if self.form.is_some() {
            return self.form_key(key);
        }
        if self.help {
            self.help = false;
            return Vec::new();
        }
        if self.filtering {
            match key.code {
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.target_selected = 0;
            return Vec::new();
        }
        if let Some(detail) = self.detail {
            match key.code {
                KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => self.detail = None,
                KeyCode::Down => self.detail_scroll = self.detail_scroll.saturating_add(1),
                KeyCode::Up => self.detail_scroll = self.detail_scroll.saturating_sub(1),
                KeyCode::PageDown => self.detail_scroll = self.detail_scroll.saturating_add(10),
                KeyCode::PageUp => self.detail_scroll = self.detail_scroll.saturating_sub(10),
                KeyCode::Char('q') => return self.quit(),
                _ => {}
            }
            let _ = detail;
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('q') => return self.quit(),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(c @ '1'..='4') => {
                self.tab = Tab::ALL[usize::from(c as u8 - b'1')];
            }
            KeyCode::Tab => self.tab = next_tab(self.tab, true),
            KeyCode::BackTab => self.tab = next_tab(self.tab, false),
            KeyCode::Down => self.move_selection(1),
            KeyCode::Up => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(20),
            KeyCode::PageUp => self.move_selection(-20),
            KeyCode::Home => self.move_selection(i64::MIN / 2),
            KeyCode::End => self.move_selection(i64::MAX / 2),
            _ => return self.view_key(key.code),
        }
        Vec::new()
    }

    fn view_key(&mut self, code: KeyCode) -> Vec<Action> {
        match (self.tab, code) {
            (Tab::Targets, KeyCode::Char('/')) => {
                self.filtering = true;
            }
            (Tab::Targets, KeyCode::Esc) => self.filter.clear(),
            (Tab::Targets, KeyCode::Char(c @ ('k' | 'p' | 'n' | 'l' | 's'))) => {
                let kind = match c {
                    'k' => Kind::Kill,
                    'p' => Kind::Pause,
                    'n' => Kind::Partition,
                    'l' => Kind::Loss,
                    _ => Kind::Stress,
                };
                match self.selected_target() {
                    None => self.say("no target selected"),
                    Some(t) if t.agent >= self.agents.len() => {
                        let (name, node) = (
                            t.name.clone(),
                            t.pod.as_ref().map(|p| p.node.clone()).unwrap_or_default(),
                        );
                        self.say(format!(
                            "{name} is on node {node}, where no listed pod was when the screen \
                             opened: restart it to reach that node's agent (x still deletes the pod)"
                        ));
                    }
                    Some(t) if t.in_agent_netns && matches!(kind, Kind::Partition | Kind::Loss) => {
                        let name = t.name.clone();
                        self.say(format!(
                            "{name} runs in the agent's own network namespace: a network fault there would cut the host off"
                        ));
                    }
                    Some(t) => {
                        let mut form = Form::new(kind, t.agent, t.pid, &t.name, &self.peers);
                        form.pod = t.pod.as_ref().map(|p| p.uid.clone());
                        self.form = Some(form);
                    }
                }
            }
            (Tab::Targets, KeyCode::Char('x')) if self.kube => match self.selected_target() {
                Some(t) => self.confirm = Some(Confirm::PodKill(t.agent, t.pid)),
                None => self.say("no pod selected"),
            },
            (Tab::Faults, KeyCode::Char('r')) => {
                if let Some(f) = self.faults.get(self.fault_selected) {
                    if f.active() {
                        return vec![Action::Revert {
                            agent: f.agent,
                            id: f.view.id.clone(),
                        }];
                    }
                    let id = f.view.id.clone();
                    self.say(format!("{id} is not active"));
                }
            }
            (_, KeyCode::Char('R')) => {
                if self.active_faults().next().is_some() {
                    self.confirm = Some(Confirm::RevertAll);
                } else {
                    self.say("no active faults");
                }
            }
            (Tab::Crashes, KeyCode::Enter) if !self.crashes.is_empty() => {
                self.detail = Some(Detail::Crash(self.crash_selected));
                self.detail_scroll = 0;
            }
            (Tab::Tasks, KeyCode::Enter) if !self.tasks.is_empty() => {
                self.detail = Some(Detail::Tasks(self.task_selected));
                self.detail_scroll = 0;
            }
            _ => {}
        }
        Vec::new()
    }

    fn form_key(&mut self, key: KeyEvent) -> Vec<Action> {
        let Some(form) = &mut self.form else {
            return Vec::new();
        };
        if form.sending {
            if key.code == KeyCode::Esc {
                self.form = None;
            }
            return Vec::new();
        }
        let n = form.fields.len();
        let field = &mut form.fields[form.focus];
        match key.code {
            KeyCode::Esc => self.form = None,
            KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Up => form.focus = (form.focus + n - 1) % n,
            KeyCode::Left if !field.choices.is_empty() => field.cycle(false),
            KeyCode::Right | KeyCode::Char(' ') if !field.choices.is_empty() => field.cycle(true),
            KeyCode::Backspace if field.choices.is_empty() => {
                field.value.pop();
                field.error = None;
            }
            KeyCode::Char(c) if field.choices.is_empty() => {
                field.value.push(c);
                field.error = None;
            }
            KeyCode::Enter => {
                let peers = self.peers.clone();
                if let Some(spec) = form.validate(&peers) {
                    form.sending = true;
                    form.refused = None;
                    return vec![Action::Inject {
                        agent: form.agent,
                        spec,
                    }];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn answer(&mut self, confirm: Confirm, code: KeyCode) -> Vec<Action> {
        let yes = matches!(code, KeyCode::Char('y' | 'Y'));
        let no = matches!(code, KeyCode::Char('n' | 'N'));
        match confirm {
            Confirm::RevertAll => {
                self.confirm = None;
                if yes {
                    return self
                        .active_faults()
                        .map(|f| Action::Revert {
                            agent: f.agent,
                            id: f.view.id.clone(),
                        })
                        .collect();
                }
            }
            // Revert is the default: Enter or `y` reverts; only `n` leaves them to their lease.
            Confirm::PodKill(agent, pid) => {
                self.confirm = None;
                let pod = self
                    .targets
                    .iter()
                    .find(|t| t.agent == agent && t.pid == pid)
                    .map(|t| t.name.clone());
                if yes && let Some(pod) = pod {
                    self.say(format!("deleting {pod}…"));
                    return vec![Action::PodKill { pod }];
                }
            }
            Confirm::Quit => match code {
                KeyCode::Esc => self.confirm = None,
                KeyCode::Enter | KeyCode::Char('y' | 'Y' | 'q') => {
                    self.quitting = true;
                    return vec![Action::Quit { revert: true }];
                }
                _ if no => {
                    self.quitting = true;
                    return vec![Action::Quit { revert: false }];
                }
                _ => {}
            },
        }
        Vec::new()
    }

    fn quit(&mut self) -> Vec<Action> {
        if self.faults.iter().any(|f| f.active() && f.ours) {
            self.confirm = Some(Confirm::Quit);
            return Vec::new();
        }
        self.quitting = true;
        vec![Action::Quit { revert: false }]
    }

    fn move_selection(&mut self, by: i64) {
        let targets = self.visible_targets().len();
        let (selected, len) = match self.tab {
            Tab::Targets => (&mut self.target_selected, targets),
            Tab::Faults => (&mut self.fault_selected, self.faults.len()),
            Tab::Crashes => (&mut self.crash_selected, self.crashes.len()),
            Tab::Tasks => (&mut self.task_selected, self.tasks.len()),
        };
        let last = i64::try_from(len)
            .unwrap_or(i64::MAX)
            .saturating_sub(1)
            .max(0);
        let at = i64::try_from(*selected)
            .unwrap_or(0)
            .saturating_add(by)
            .clamp(0, last);
        *selected = usize::try_from(at).unwrap_or(0);
    }
}

/// Replaces `list` with `rows`, keeping the selection (index `selected`) and an open item
/// (index `open`) on the same rows, as told by `key`, wherever they moved. Returns the new
/// selection, and, when an item was open, its new index (`None`: it is gone).
fn replace_keeping<T, K: PartialEq>(
    list: &mut Vec<T>,
    rows: Vec<T>,
    selected: usize,
    open: Option<usize>,
    key: impl Fn(&T) -> K,
) -> (usize, Option<Option<usize>>) {
    let selected_key = list.get(selected).map(&key);
    let open_key = open.map(|i| list.get(i).map(&key));
    *list = rows;
    let find = |k: &Option<K>| {
        k.as_ref()
            .and_then(|k| list.iter().position(|row| &key(row) == k))
    };
    let selected = find(&selected_key)
        .unwrap_or(selected)
        .min(list.len().saturating_sub(1));
    (selected, open_key.map(|k| find(&k)))
}

fn next_tab(tab: Tab, forward: bool) -> Tab {
    let at = Tab::ALL.iter().position(|t| *t == tab).unwrap_or(0);
    let n = Tab::ALL.len();
    Tab::ALL[if forward {
        (at + 1) % n
    } else {
        (at + n - 1) % n
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn typed(app: &mut App, text: &str) -> Vec<Action> {
        text.chars()
            .flat_map(|c| app.handle(key(KeyCode::Char(c))))
            .collect()
    }

    fn view(id: &str, state: &str, left: Option<f64>) -> FaultView {
        FaultView {
            id: id.into(),
            kind: "partition".into(),
            pid: 42,
            cgroup: None,
            pod: None,
            state: state.into(),
            seconds_left: left,
            lease_seconds: Some(15.0),
            kernel_anchored: true,
            detail: format!("table inet faultline_{id} held by pid 7"),
            packets: Some(3),
            throttled_periods: None,
            options: "peers 10.77.0.3 both drop".into(),
            revert: (state != "active").then(|| "verified".into()),
            reverted_by: (state != "active").then(|| "request".into()),
        }
    }

    fn app() -> App {
        let now = Instant::now();
        let mut app = App::new("test", vec![AgentStatus::new("in-process")], now);
        app.peers = vec![("inventory".into(), "10.77.0.3".into())];
        app.handle(Event::Targets {
            agent: 0,
            rows: vec![
                TargetRow {
                    pid: 42,
                    name: "checkout".into(),
                    ..TargetRow::default()
                },
                TargetRow {
                    pid: 43,
                    name: "inventory".into(),
                    ..TargetRow::default()
                },
            ],
        });
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(Vec::new()),
            at: now,
        });
        app
    }

    #[test]
    fn an_inject_form_with_bad_input_shows_the_error_and_sends_nothing() {
        let mut app = app();
        app.handle(key(KeyCode::Char('n')));
        let form = app.form.as_ref().expect("the partition form");
        assert_eq!(form.target, "checkout");
        // Peers left empty, a bad port: Enter sends nothing and marks both.
        app.handle(key(KeyCode::Tab));
        typed(&mut app, "http");
        let actions = app.handle(key(KeyCode::Enter));
        assert!(actions.is_empty(), "{actions:?}");
        let form = app.form.as_ref().unwrap();
        assert!(
            form.fields[0]
                .error
                .as_deref()
                .unwrap()
                .contains("at least one peer")
        );
        assert!(
            form.fields[1]
                .error
                .as_deref()
                .unwrap()
                .contains("a port is")
        );
        // Fixed, it is sent once, to the target's agent.
        for _ in 0..4 {
            app.handle(key(KeyCode::Backspace));
        }
        app.handle(key(KeyCode::BackTab));
        typed(&mut app, "inventory");
        let actions = app.handle(key(KeyCode::Enter));
        let [Action::Inject { agent: 0, spec }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert!(matches!(spec, FaultSpec::Partition { peers, .. } if peers == &["10.77.0.3"]));
        // The agent's refusal stays in the form.
        app.handle(Event::Injected {
            agent: 0,
            result: Err("the agent answered 403: policy".into()),
        });
        assert_eq!(
            app.form.as_ref().unwrap().refused.as_deref(),
            Some("the agent answered 403: policy")
        );
    }

    #[test]
    fn with_kube_a_fault_is_aimed_at_the_pod_its_peers_are_pods_and_x_deletes_it() {
        let now = Instant::now();
        let mut app = App::new("pods", vec![AgentStatus::new("node-1")], now);
        app.kube = true;
        let pod_row = |name: &str, ip: &str, key: u32| TargetRow {
            pid: key,
            name: format!("shop/{name}"),
            address: Some(ip.into()),
            pod: Some(crate::model::PodInfo {
                uid: format!("uid-{name}"),
                node: "node-1".into(),
                phase: "Running".into(),
                ready: true,
                restarts: 0,
            }),
            ..TargetRow::default()
        };
        app.handle(Event::Targets {
            agent: 0,
            rows: vec![
                pod_row("checkout-a", "10.244.1.5", 0x4000_0000),
                pod_row("inventory-a", "10.244.1.9", 0x4000_0001),
            ],
        });
        assert_eq!(
            app.peers,
            [
                ("shop/checkout-a".to_owned(), "10.244.1.5".to_owned()),
                ("shop/inventory-a".to_owned(), "10.244.1.9".to_owned()),
            ]
        );
        app.handle(key(KeyCode::Char('n')));
        assert_eq!(
            app.form.as_ref().unwrap().pod.as_deref(),
            Some("uid-checkout-a")
        );
        typed(&mut app, "shop/inventory-a");
        let actions = app.handle(key(KeyCode::Enter));
        let [Action::Inject { agent: 0, spec }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let FaultSpec::Partition {
            pid, pod, peers, ..
        } = spec
        else {
            panic!("{spec:?}")
        };
        assert_eq!(*pid, None, "a pod, not a process");
        assert_eq!(pod.as_ref().unwrap().uid, "uid-checkout-a");
        assert_eq!(peers, &["10.244.1.9"]);

        app.form = None;
        assert!(app.handle(key(KeyCode::Char('x'))).is_empty(), "asks first");
        assert_eq!(app.confirm, Some(Confirm::PodKill(0, 0x4000_0000)));
        assert_eq!(
            app.handle(key(KeyCode::Char('y'))),
            [Action::PodKill {
                pod: "shop/checkout-a".into()
            }]
        );
        app.handle(Event::PodKilled {
            pod: "shop/checkout-a".into(),
            result: Ok("shop/checkout-a deleted; checkout-z Ready after 4.2s".into()),
        });
        assert_eq!(
            app.message.as_ref().map(|(m, _)| m.as_str()),
            Some("shop/checkout-a deleted; checkout-z Ready after 4.2s")
        );

        // A pod on a node the screen has no agent for: listed, deleted, never faulted.
        let mut late = pod_row("checkout-b", "10.244.3.2", 0x4000_0002);
        late.pod.as_mut().unwrap().node = "node-3".into();
        app.handle(Event::Targets {
            agent: 1,
            rows: vec![late],
        });
        app.handle(key(KeyCode::End));
        assert_eq!(app.selected_target().unwrap().name, "shop/checkout-b");
        assert!(app.handle(key(KeyCode::Char('s'))).is_empty());
        assert!(app.form.is_none());
        assert_eq!(
            app.message.as_ref().map(|(m, _)| m.as_str()),
            Some(
                "shop/checkout-b is on node node-3, where no listed pod was when the screen \
                 opened: restart it to reach that node's agent (x still deletes the pod)"
            )
        );
        app.handle(key(KeyCode::Char('x')));
        assert_eq!(
            app.handle(key(KeyCode::Char('y'))),
            [Action::PodKill {
                pod: "shop/checkout-b".into()
            }]
        );
    }

    #[test]
    fn revert_all_sends_one_revert_per_active_fault_after_a_yes() {
        let mut app = app();
        let now = app.now;
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![
                view("a", "active", Some(20.0)),
                view("b", "active", Some(10.0)),
                view("c", "reverted", None),
            ]),
            at: now,
        });
        assert_eq!(
            app.faults.len(),
            2,
            "an ended fault never seen active is not shown"
        );
        assert!(app.handle(key(KeyCode::Char('R'))).is_empty());
        assert_eq!(app.confirm, Some(Confirm::RevertAll));
        let actions = app.handle(key(KeyCode::Char('y')));
        assert_eq!(
            actions,
            [
                Action::Revert {
                    agent: 0,
                    id: "b".into()
                },
                Action::Revert {
                    agent: 0,
                    id: "a".into()
                },
            ]
        );
        // No is no.
        app.handle(key(KeyCode::Char('R')));
        assert!(app.handle(key(KeyCode::Char('n'))).is_empty());
        assert_eq!(app.confirm, None);
    }

    #[test]
    fn a_lost_connection_shows_and_a_reconnection_clears_it() {
        let mut app = app();
        assert!(app.agents[0].connected);
        let at = app.now;
        app.handle(Event::Faults {
            agent: 0,
            result: Err("unix:/run/faultline/agent.sock: connection refused".into()),
            at,
        });
        assert!(!app.agents[0].connected);
        assert_eq!(
            app.agents[0].error.as_deref(),
            Some("unix:/run/faultline/agent.sock: connection refused")
        );
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(Vec::new()),
            at,
        });
        assert!(app.agents[0].connected && app.agents[0].error.is_none());
    }

    #[test]
    fn quitting_with_our_faults_active_asks_and_reverts_by_default() {
        let mut app = app();
        app.handle(Event::Injected {
            agent: 0,
            result: Ok(view("a", "active", Some(30.0))),
        });
        assert!(app.handle(key(KeyCode::Char('q'))).is_empty());
        assert_eq!(app.confirm, Some(Confirm::Quit));
        assert_eq!(
            app.handle(key(KeyCode::Enter)),
            [Action::Quit { revert: true }]
        );
        let mut app = self::app();
        app.handle(Event::Injected {
            agent: 0,
            result: Ok(view("a", "active", Some(30.0))),
        });
        app.handle(key(KeyCode::Char('q')));
        assert_eq!(
            app.handle(key(KeyCode::Char('n'))),
            [Action::Quit { revert: false }]
        );
        // Nothing active: q just quits.
        let mut app = self::app();
        assert_eq!(
            app.handle(key(KeyCode::Char('q'))),
            [Action::Quit { revert: false }]
        );
    }

    #[test]
    fn ended_faults_fade_out_and_countdowns_run_between_refreshes() {
        let mut app = app();
        let t0 = app.now;
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view("a", "active", Some(30.0))]),
            at: t0,
        });
        assert_eq!(
            app.faults[0].seconds_left(t0 + Duration::from_secs(10)),
            Some(20.0)
        );
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view("a", "reverted", None)]),
            at: t0,
        });
        assert_eq!(app.faults[0].ended, Some(t0));
        app.handle(Event::Tick(t0 + FADE - Duration::from_secs(1)));
        assert_eq!(app.faults.len(), 1, "still fading");
        app.handle(Event::Tick(t0 + FADE));
        assert!(app.faults.is_empty());
    }

    #[test]
    fn the_filter_narrows_targets_and_keeps_keys_to_itself() {
        let mut app = app();
        app.handle(key(KeyCode::Char('/')));
        typed(&mut app, "inv");
        assert!(app.form.is_none(), "n typed into the filter opens no form");
        assert_eq!(app.visible_targets(), [1]);
        app.handle(key(KeyCode::Enter));
        assert_eq!(app.selected_target().unwrap().pid, 43);
        app.handle(key(KeyCode::Char('k')));
        assert_eq!(app.form.as_ref().unwrap().kind, Kind::Kill);
    }
}

#[cfg(test)]
mod identity {
    use super::*;

    #[test]
    fn a_fault_keeps_its_targets_name_after_the_target_is_gone() {
        let now = Instant::now();
        let mut app = App::new("t", vec![AgentStatus::new("a")], now);
        let row = TargetRow {
            pid: 42,
            name: "checkout".into(),
            ..TargetRow::default()
        };
        app.handle(Event::Targets {
            agent: 0,
            rows: vec![row],
        });
        let view = FaultView {
            id: "f".into(),
            kind: "partition".into(),
            pid: 42,
            cgroup: None,
            pod: None,
            state: "active".into(),
            seconds_left: Some(30.0),
            lease_seconds: None,
            kernel_anchored: true,
            detail: String::new(),
            packets: None,
            throttled_periods: None,
            options: String::new(),
            revert: None,
            reverted_by: None,
        };
        app.handle(Event::Injected {
            agent: 0,
            result: Ok(view.clone()),
        });
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view]),
            at: now,
        });
        app.handle(Event::Targets {
            agent: 0,
            rows: Vec::new(),
        });
        assert_eq!(
            app.names.get(&(0, 42)).map(String::as_str),
            Some("checkout")
        );
    }

    #[test]
    fn an_open_form_follows_a_restarted_lab_host() {
        let now = Instant::now();
        let mut app = App::new("t", vec![AgentStatus::new("a")], now);
        let host = |pid| TargetRow {
            pid,
            name: "checkout".into(),
            address: Some("10.77.0.3".into()),
            ..TargetRow::default()
        };
        app.handle(Event::Targets {
            agent: 0,
            rows: vec![host(42)],
        });
        app.handle(Event::Key(KeyEvent::new(
            KeyCode::Char('s'),
            KeyModifiers::NONE,
        )));
        app.handle(Event::Targets {
            agent: 0,
            rows: vec![host(57)],
        });
        assert_eq!(app.form.as_ref().unwrap().pid, 57);
    }

    fn view(id: &str, left: f64) -> FaultView {
        FaultView {
            id: id.into(),
            kind: "partition".into(),
            pid: 42,
            cgroup: None,
            pod: None,
            state: "active".into(),
            seconds_left: Some(left),
            lease_seconds: None,
            kernel_anchored: true,
            detail: String::new(),
            packets: None,
            throttled_periods: None,
            options: String::new(),
            revert: None,
            reverted_by: None,
        }
    }

    #[test]
    fn the_selection_stays_on_its_fault_as_the_list_is_resorted() {
        let now = Instant::now();
        let mut app = App::new("t", vec![AgentStatus::new("a")], now);
        app.tab = Tab::Faults;
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view("a", 10.0), view("b", 20.0)]),
            at: now,
        });
        app.handle(Event::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
        assert_eq!(app.faults[app.fault_selected].view.id, "b");
        // b now ends first: it moves to the top, and the selection with it.
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view("a", 10.0), view("b", 5.0)]),
            at: now,
        });
        assert_eq!(app.faults[app.fault_selected].view.id, "b");
        let actions = app.handle(Event::Key(KeyEvent::new(
            KeyCode::Char('r'),
            KeyModifiers::NONE,
        )));
        assert_eq!(
            actions,
            [Action::Revert {
                agent: 0,
                id: "b".into()
            }]
        );
    }

    #[test]
    fn a_fault_stays_ours_when_a_stale_list_arrives_after_its_creation() {
        let now = Instant::now();
        let mut app = App::new("t", vec![AgentStatus::new("a")], now);
        app.handle(Event::Injected {
            agent: 0,
            result: Ok(view("a", 30.0)),
        });
        // A list taken before the creation, answered after it.
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(Vec::new()),
            at: now,
        });
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(vec![view("a", 29.0)]),
            at: now,
        });
        assert!(app.faults[0].ours);
        assert!(
            app.handle(Event::Key(KeyEvent::new(
                KeyCode::Char('q'),
                KeyModifiers::NONE
            )))
            .is_empty()
        );
        assert_eq!(app.confirm, Some(Confirm::Quit), "asks before leaving it");
    }

    #[test]
    fn an_open_stack_stays_on_its_crash_as_new_ones_arrive() {
        let now = Instant::now();
        let mut app = App::new("t", vec![AgentStatus::new("a")], now);
        let crash = |file: &str| CrashRow {
            file: file.into(),
            message: "boom".into(),
            ..CrashRow::default()
        };
        app.handle(Event::Crashes(vec![crash("1.json")]));
        app.tab = Tab::Crashes;
        app.handle(Event::Key(KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        )));
        app.handle(Event::Crashes(vec![crash("2.json"), crash("1.json")]));
        assert_eq!(app.detail, Some(Detail::Crash(1)));
        assert_eq!(app.crash_selected, 1);
    }
}
