//! Carrying a plan out: the lab, the agent and its leases, the timeline, probes and scrapes,
//! the reverts and their checks, then the evidence for the verdict.
//!
//! Everything the run starts is owned by a value whose drop removes it (the lab, the
//! in-process agent), and everything lasting is also anchored in the kernel (parent-death
//! signals, owner tables), so an error, a panic or a SIGKILL leaves nothing in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faultline_agent::spec::{CreateFault, FaultSpec, FaultView};
use faultline_agent::{AgentAddr, Client, Helpers, LocalAgent, Policy};
use faultline_fault::Interrupts;
use serde::Serialize;

use crate::analysis::{self, CrashSource};
use crate::lab::{Lab, LabOptions};
use crate::model::{Fault, Find, Scenario};
use crate::plan::{ActionKind, Plan, describe_fault};
use crate::probe::{Context, Observed, Resolver, Watchers, seconds_since};
use crate::verdict::{self, Evidence, FaultRecord, Judged};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where everything the run produces goes.
    pub out_dir: PathBuf,
    /// The faultline binary's helpers (guards, stress workers, namespace holders).
    pub helpers: Helpers,
    /// The in-process agent's journal directory.
    pub state_dir: PathBuf,
    /// A running agent to use instead of the in-process one: address and token.
    pub agent: Option<(AgentAddr, Option<String>)>,
    /// Print progress to stderr.
    pub progress: bool,
}

/// How the run ended, as an exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every assertion held and every revert was verified (exit 0).
    Passed,
    /// An assertion failed (exit 1).
    Failed,
    /// A revert could not be verified (exit 3).
    RevertUnverified,
    /// The run could not be carried out: agent unreachable, lease lost, lab could not start,
    /// interrupted (exit 4).
    InfrastructureError,
}

impl Verdict {
    /// The documented exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::RevertUnverified => 3,
            Verdict::InfrastructureError => 4,
        }
    }
}

/// One line of the run's journal.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Seconds since the steps started (negative: before).
    pub t: f64,
    /// Wall-clock time, RFC 3339.
    pub at: String,
    /// `lab`, `host`, `step`, `fault`, `revert`, `run`.
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The verdict.
    pub verdict: Verdict,
    /// Why the run could not be carried out, if it could not.
    pub infrastructure_error: Option<String>,
    /// When it started.
    pub started_at: SystemTime,
    /// The journal.
    pub events: Vec<Event>,
    /// The evidence.
    pub evidence: Evidence,
    /// Scrapes of each dump capture.
    pub observed: Observed,
    /// Each assertion's outcome, then the implicit revert check.
    pub judged: Vec<Judged>,
    /// What the lab's teardown could not remove.
    pub residue: Vec<String>,
    /// What the start-up sweep removed (left by an earlier run or agent).
    pub swept: Vec<String>,
    /// Notes on the analysis (unreadable dumps, failed scrapes).
    pub notes: Vec<String>,
}

enum Agent {
    Local(LocalAgent),
    Remote(Client),
}

impl Agent {
    fn create(&self, request: CreateFault) -> Result<FaultView, String> {
        match self {
            Agent::Local(a) => a.create(request).map_err(|r| format!("{r:?}")),
            Agent::Remote(c) => c.create(&request).map_err(|e| e.to_string()),
        }
    }
    fn renew(&self, id: &str) -> Result<FaultView, String> {
        match self {
            Agent::Local(a) => a.renew(id).map_err(|r| format!("{r:?}")),
            Agent::Remote(c) => c.renew(id).map_err(|e| e.to_string()),
        }
    }
    fn get(&self, id: &str) -> Option<FaultView> {
        match self {
            Agent::Local(a) => a.get(id),
            Agent::Remote(c) => c.list().ok()?.into_iter().find(|v| v.id == id),
        }
    }
    fn revert(&self, id: &str) -> Option<FaultView> {
        match self {
            Agent::Local(a) => a.revert(id),
            Agent::Remote(c) => c.revert(id).ok(),
        }
    }
}

/// The run's events as they happen; their times are settled at the end, when time zero (the
/// start of the steps) is known for the events before it too.
struct Journal {
    zero: Option<Instant>,
    start: Instant,
    entries: Vec<(Instant, String, String)>,
    progress: bool,
}

impl Journal {
    fn log(&mut self, kind: &str, message: impl Into<String>) {
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
    fn into_events(self, started_at: SystemTime) -> Vec<Event> {
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

/// An active fault the runner keeps a lease on.
struct Held {
    id: String,
    ends: Instant,
}

/// Runs `plan` of `scenario`. Interrupts (SIGINT/SIGTERM/SIGHUP, blocked by the caller before
/// any thread started) end the steps early; everything is still reverted and reported.
pub fn run(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> RunOutcome {
    let started_at = SystemTime::now();
    let mut journal = Journal {
        zero: None,
        start: Instant::now(),
        entries: Vec::new(),
        progress: options.progress,
    };
    let mut swept = Vec::new();
    let mut infra: Option<String> = None;
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut observed = Observed::default();
    let mut residue = Vec::new();
    let mut end = 0.0;

    // Absolute: hosts run in the scenario's directory and get paths inside it.
    let mut options = options.clone();
    match std::fs::create_dir_all(&options.out_dir)
        .and_then(|()| std::path::absolute(&options.out_dir))
    {
        Ok(dir) => options.out_dir = dir,
        Err(e) => infra = Some(format!("{}: {e}", options.out_dir.display())),
    }
    let options = &options;

    // Leftovers of an earlier run that was killed: its lab cgroups.
    if let Some(root) = faultline_fault::lab::CgroupRoot::host() {
        for line in faultline_fault::lab::sweep_lab_cgroups(&root) {
            journal.log("sweep", line.clone());
            swept.push(line);
        }
    }

    let agent = if infra.is_some() {
        None
    } else {
        match &options.agent {
            Some((addr, token)) => {
                let client = Client::new(addr.clone(), token.clone());
                match client.list() {
                    Ok(_) => {
                        journal.log("run", format!("using the agent at {addr}"));
                        Some(Agent::Remote(client))
                    }
                    Err(e) => {
                        infra = Some(format!("the agent at {addr} is unreachable: {e}"));
                        None
                    }
                }
            }
            None => match LocalAgent::start(
                &options.state_dir,
                Policy::default(),
                options.helpers.clone(),
            ) {
                Ok((agent, log)) => {
                    for line in log {
                        journal.log("sweep", line.clone());
                        swept.push(line);
                    }
                    Some(Agent::Local(agent))
                }
                Err(e) => {
                    infra = Some(format!("start the in-process agent: {e}"));
                    None
                }
            },
        }
    };
    let agent = agent.map(Arc::new);

    // The lab.
    let mut lab = None;
    if infra.is_none() && !plan.hosts.is_empty() {
        let options = LabOptions {
            holder: vec![
                options.helpers.exe.display().to_string(),
                "__hold".to_owned(),
            ],
            out_dir: options.out_dir.clone(),
            base_dir: scenario.base_dir.clone(),
        };
        match Lab::start(&plan.hosts, &options) {
            Ok(l) => {
                journal.log(
                    "lab",
                    format!(
                        "{} hosts up: {}",
                        plan.hosts.len(),
                        plan.hosts
                            .iter()
                            .map(|h| format!("{} {}", h.name, h.address))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                lab = Some(l);
            }
            Err(e) => infra = Some(format!("the lab could not start: {e}")),
        }
    }
    if let Some(lab) = &lab {
        for host in &scenario.hosts {
            if infra.is_some() {
                break;
            }
            if let Some(port) = host.ready_port {
                match lab.wait_ready(&host.name, port, host.ready_within) {
                    Ok(took) => journal.log(
                        "lab",
                        format!(
                            "{} ready on port {port} after {} ms",
                            host.name,
                            took.as_millis()
                        ),
                    ),
                    Err(e) => infra = Some(format!("the lab could not start: {e}")),
                }
            }
        }
    }
    // Local processes.
    let mut local_pids = Vec::new();
    for process in &scenario.processes {
        let pid = match &process.find {
            Find::Pid(pid) => Ok(*pid),
            Find::PidFile(file) => std::fs::read_to_string(file)
                .map_err(|e| format!("{}: {e}", file.display()))
                .and_then(|t| {
                    t.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("{}: not a pid", file.display()))
                }),
        };
        match pid {
            Ok(pid) if std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                local_pids.push((process.name.clone(), pid));
            }
            Ok(pid) => {
                infra.get_or_insert(format!("process {}: no process {pid}", process.name));
            }
            Err(e) => {
                infra.get_or_insert(format!("process {}: {e}", process.name));
            }
        }
    }

    let mut interrupted = None;
    if infra.is_none()
        && let Some(agent) = &agent
    {
        let zero = Instant::now();
        journal.zero = Some(zero);
        let cx = Context {
            netns: lab.as_ref().map(Lab::hub_path),
            resolver: Resolver {
                hosts: lab.as_ref().map(Lab::addresses).unwrap_or_default(),
            },
            zero,
            out_dir: options.out_dir.clone(),
            base_dir: scenario.base_dir.clone(),
        };
        match Watchers::start(&scenario.probes, &scenario.dumps, &cx) {
            Err(e) => infra = Some(e),
            Ok(watchers) => {
                journal.log(
                    "run",
                    format!(
                        "steps start: {} actions over {:.0}s, {} probes, {} dump captures",
                        plan.actions.len(),
                        plan.steps_duration.as_secs_f64(),
                        scenario.probes.len(),
                        scenario.dumps.len()
                    ),
                );
                let mut timeline = Timeline {
                    agent,
                    lab: lab.as_ref(),
                    local_pids: &local_pids,
                    lease: scenario.lease,
                    held: Vec::new(),
                    kills: Vec::new(),
                    last_renew: Instant::now(),
                    last_progress: Instant::now(),
                    zero,
                    total: plan.steps_duration,
                    current: String::new(),
                };
                let result =
                    timeline.carry_out(plan, &mut faults, &mut journal, &watchers, interrupts);
                match result {
                    Ok(None) => {}
                    Ok(Some(signal)) => interrupted = Some(signal),
                    Err(e) => infra = Some(e),
                }
                if infra.is_none() && interrupted.is_none() {
                    // Give probes the time to recover that the assertions allow.
                    if let Some(signal) =
                        timeline.tail(plan, scenario, &faults, &mut journal, &watchers, interrupts)
                    {
                        interrupted = Some(signal);
                    }
                }
                timeline.settle(&mut faults, &mut journal);
                end = seconds_since(zero);
                observed = watchers.stop();
            }
        }
    }
    if let Some(signal) = interrupted {
        infra.get_or_insert(format!("interrupted by signal {signal}"));
    }
    if let Some(Agent::Local(local)) = agent.and_then(|a| Arc::try_unwrap(a).ok()) {
        for view in local.shutdown() {
            journal.log(
                "revert",
                format!(
                    "{} {} reverted at shutdown: {}",
                    view.kind,
                    view.id,
                    view.revert.unwrap_or_default()
                ),
            );
        }
    }
    let hosts_started: Vec<(String, u32)> = plan
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                lab.as_ref().map_or(0, |l| l.starts(&h.name)),
            )
        })
        .collect();
    if let Some(lab) = lab.take() {
        for event in lab.events() {
            journal.entries.push((
                lab.started() + event.at,
                "host".into(),
                format!("{}: {}", event.host, event.what),
            ));
        }
        residue = lab.teardown();
        if residue.is_empty() {
            journal.log("lab", "torn down: no namespace, cgroup or process left");
        } else {
            for r in &residue {
                journal.log("lab", format!("residue: {r}"));
            }
        }
    }
    for (host, starts) in hosts_started {
        if starts > 1 {
            journal.log("lab", format!("{host} was started {starts} times"));
        }
    }

    // Evidence and verdict.
    let locator = analysis::locator(&scenario.debug);
    let targets: Vec<String> = if scenario.crash_targets.is_empty() {
        scenario.hosts.iter().map(|h| h.name.clone()).collect()
    } else {
        scenario.crash_targets.clone()
    };
    let sources: Vec<CrashSource> = targets
        .iter()
        .map(|t| {
            if scenario.hosts.iter().any(|h| &h.name == t) {
                CrashSource {
                    target: t.clone(),
                    stderr: Some(PathBuf::from(format!("hosts/{t}/stderr.log"))),
                    crash_dir: Some(options.out_dir.join("hosts").join(t).join("crashes")),
                }
            } else {
                CrashSource {
                    target: t.clone(),
                    stderr: None,
                    crash_dir: scenario
                        .processes
                        .iter()
                        .find(|p| &p.name == t)
                        .and_then(|p| p.crash_dir.clone()),
                }
            }
        })
        .collect();
    let crashes = analysis::crashes(&sources, &options.out_dir, &locator);
    let (leaks, notes) = analysis::leaks(&observed.scrapes, &options.out_dir, &locator);
    let evidence = Evidence {
        probes: observed.probes.clone(),
        faults,
        end,
        crashes,
        leaks,
    };
    let mut judged = verdict::judge(&scenario.assertions, &evidence);
    if !residue.is_empty()
        && let Some(last) = judged.last_mut()
    {
        last.passed = false;
        last.evidence = format!("{}; lab residue: {}", last.evidence, residue.join("; "));
    }
    let reverts_ok = judged.last().is_some_and(|j| j.passed);
    let verdict = if !reverts_ok {
        Verdict::RevertUnverified
    } else if infra.is_some() {
        Verdict::InfrastructureError
    } else if judged.iter().all(|j| j.passed) {
        Verdict::Passed
    } else {
        Verdict::Failed
    };
    RunOutcome {
        verdict,
        infrastructure_error: infra,
        started_at,
        events: journal.into_events(started_at),
        evidence,
        observed,
        judged,
        residue,
        swept,
        notes,
    }
}

struct Timeline<'a> {
    agent: &'a Arc<Agent>,
    lab: Option<&'a Lab>,
    local_pids: &'a [(String, u32)],
    lease: Duration,
    held: Vec<Held>,
    kills: Vec<(usize, std::thread::JoinHandle<Result<FaultView, String>>)>,
    last_renew: Instant,
    last_progress: Instant,
    zero: Instant,
    total: Duration,
    current: String,
}

impl Timeline<'_> {
    /// The pid a fault on `target` acts on: a lab host's namespace holder for network faults
    /// and stress (it stays while the host's process restarts), its process for the others.
    fn pid(&self, target: &str, fault: &Fault) -> Result<u32, String> {
        if let Some((_, pid)) = self.local_pids.iter().find(|(n, _)| n == target) {
            return Ok(*pid);
        }
        let lab = self.lab.ok_or_else(|| format!("no target {target}"))?;
        match fault {
            Fault::Partition(_) | Fault::Loss { .. } | Fault::Stress { .. } => lab
                .anchor_pid(target)
                .ok_or_else(|| format!("no lab host {target}")),
            Fault::Pause | Fault::Kill { .. } => lab
                .pid(target)
                .ok_or_else(|| format!("{target} is not running")),
        }
    }

    /// Sleeps until `until`, renewing leases and showing progress; returns a signal if one
    /// arrived.
    fn wait_until(
        &mut self,
        until: Instant,
        journal: &mut Journal,
        watchers: &Watchers,
        interrupts: &Interrupts,
    ) -> Result<Option<i32>, String> {
        loop {
            self.renew(journal)?;
            self.show_progress(watchers);
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let step = (until - now).min(Duration::from_millis(100));
            if let Some(signal) = interrupts.wait(step) {
                journal.log(
                    "run",
                    format!("signal {signal}: stopping the steps, reverting everything"),
                );
                return Ok(Some(signal));
            }
        }
    }

    fn renew(&mut self, journal: &mut Journal) -> Result<(), String> {
        let now = Instant::now();
        self.held.retain(|h| h.ends > now);
        if now.duration_since(self.last_renew) < self.lease / 3 {
            return Ok(());
        }
        self.last_renew = now;
        for held in &self.held {
            if let Err(e) = self.agent.renew(&held.id) {
                // Already over (its duration ran out a moment ago) is not a lost lease.
                if self
                    .agent
                    .get(&held.id)
                    .is_some_and(|v| v.state != "active")
                {
                    continue;
                }
                journal.log("run", format!("lease of {} lost: {e}", held.id));
                return Err(format!(
                    "lease lost: renewing fault {} failed: {e}",
                    held.id
                ));
            }
        }
        Ok(())
    }

    fn show_progress(&mut self, watchers: &Watchers) {
        if self.last_progress.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_progress = Instant::now();
        let probes = watchers
            .progress()
            .into_iter()
            .map(|(name, ok, total)| match (ok * 100).checked_div(total) {
                None => format!("{name} -"),
                Some(percent) => format!("{name} {percent}% ({ok}/{total})"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let t = self.zero.elapsed().as_secs_f64();
        let left = (self.total.as_secs_f64() - t).max(0.0);
        eprintln!(
            "faultline run: {t:6.1}s, {left:.0}s left · {} · probes: {probes}",
            if self.current.is_empty() {
                "starting"
            } else {
                &self.current
            }
        );
    }

    fn carry_out(
        &mut self,
        plan: &Plan,
        faults: &mut Vec<FaultRecord>,
        journal: &mut Journal,
        watchers: &Watchers,
        interrupts: &Interrupts,
    ) -> Result<Option<i32>, String> {
        for action in &plan.actions {
            if let Some(signal) =
                self.wait_until(self.zero + action.at, journal, watchers, interrupts)?
            {
                return Ok(Some(signal));
            }
            match &action.kind {
                ActionKind::Wait(d) => {
                    self.current = format!("step {} wait {}s", action.step, d.as_secs_f64());
                    journal.log(
                        "step",
                        format!("{}: wait {:.1}s", action.step, d.as_secs_f64()),
                    );
                }
                ActionKind::Fault {
                    target,
                    fault,
                    peers,
                    duration,
                } => {
                    let description = describe_fault(target, fault, peers, *duration);
                    self.current = format!("step {} {description}", action.step);
                    journal.log("step", format!("{}: {description}", action.step));
                    let started = seconds_since(self.zero);
                    let mut record = FaultRecord {
                        step: action.step.clone(),
                        id: None,
                        kind: fault.kind().to_owned(),
                        target: target.clone(),
                        description,
                        started,
                        ended: started + duration.as_secs_f64(),
                        applied: String::new(),
                        kernel_anchored: false,
                        packets: None,
                        revert: None,
                    };
                    let pid = match self.pid(target, fault) {
                        Ok(pid) => pid,
                        Err(e) => {
                            // The target is down (it crashed, say): the fault cannot hit it.
                            record.applied = format!("not applied: {e}");
                            journal
                                .log("fault", format!("step {}: {}", action.step, record.applied));
                            faults.push(record);
                            continue;
                        }
                    };
                    let request = CreateFault {
                        fault: spec(fault, pid, peers, *duration),
                        lease_seconds: (!matches!(fault, Fault::Kill { .. }))
                            .then_some(self.lease.as_secs_f64()),
                    };
                    if let Fault::Kill { .. } = fault {
                        // A kill waits out its grace period: on a thread, so leases keep
                        // being renewed meanwhile.
                        let agent = self.agent.clone();
                        let handle = std::thread::spawn(move || agent.create(request));
                        record.applied = "sent".into();
                        faults.push(record);
                        self.kills.push((faults.len() - 1, handle));
                        continue;
                    }
                    match self.agent.create(request) {
                        Ok(view) => {
                            record.id = Some(view.id.clone());
                            record.kernel_anchored = view.kernel_anchored;
                            record.applied = format!("applied: {}", view.detail);
                            journal.log(
                                "fault",
                                format!(
                                    "{} {} applied ({}kernel-anchored): {}",
                                    view.kind,
                                    view.id,
                                    if view.kernel_anchored { "" } else { "not " },
                                    view.detail
                                ),
                            );
                            self.held.push(Held {
                                id: view.id,
                                ends: Instant::now() + *duration,
                            });
                            faults.push(record);
                        }
                        Err(e) => {
                            record.applied = format!("failed: {e}");
                            faults.push(record);
                            return Err(format!(
                                "step {}: the agent could not apply the fault: {e}",
                                action.step
                            ));
                        }
                    }
                }
            }
        }
        let end = self.zero + plan.steps_duration;
        let signal = self.wait_until(end, journal, watchers, interrupts)?;
        self.current = "steps done".into();
        self.collect_kills(faults, journal);
        Ok(signal)
    }

    fn collect_kills(&mut self, faults: &mut [FaultRecord], journal: &mut Journal) {
        for (index, handle) in self.kills.drain(..) {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err("the kill thread panicked".into()));
            let record = &mut faults[index];
            match result {
                Ok(view) => {
                    record.id = Some(view.id.clone());
                    record.applied = format!("applied: {}", view.detail);
                    journal.log("fault", format!("kill {}: {}", view.id, view.detail));
                }
                Err(e) => {
                    record.applied = format!("failed: {e}");
                    journal.log("fault", format!("kill of {} failed: {e}", record.target));
                }
            }
        }
    }

    /// After the steps: waits (up to the plan's tail) until every `recovers` probe has passed
    /// since the last fault ended.
    fn tail(
        &mut self,
        plan: &Plan,
        scenario: &Scenario,
        faults: &[FaultRecord],
        journal: &mut Journal,
        watchers: &Watchers,
        interrupts: &Interrupts,
    ) -> Option<i32> {
        if plan.tail.is_zero() {
            return None;
        }
        let last_end = faults
            .iter()
            .map(|f| if f.kind == "kill" { f.started } else { f.ended })
            .fold(0.0, f64::max);
        let probes: Vec<&str> = scenario
            .assertions
            .iter()
            .filter_map(|a| match &a.check {
                crate::model::AssertionCheck::Recovers { probe, .. } => Some(probe.as_str()),
                _ => None,
            })
            .collect();
        let until = Instant::now() + plan.tail;
        while Instant::now() < until {
            if probes.iter().all(|p| watchers.passed_since(p, last_end)) {
                return None;
            }
            match self.wait_until(
                (Instant::now() + Duration::from_millis(200)).min(until),
                journal,
                watchers,
                interrupts,
            ) {
                Ok(Some(signal)) => return Some(signal),
                Ok(None) => {}
                Err(e) => {
                    journal.log("run", e);
                    return None;
                }
            }
        }
        journal.log("run", "probes did not all recover before the tail ran out");
        None
    }

    /// Waits for every fault's end and records its revert as the agent verified it.
    fn settle(&mut self, faults: &mut [FaultRecord], journal: &mut Journal) {
        self.collect_kills(faults, journal);
        self.held.clear();
        for record in faults.iter_mut() {
            let Some(id) = record.id.clone() else {
                continue;
            };
            if record.kind == "kill" {
                continue;
            }
            // Its duration ends on the agent's clock; give it a moment past that.
            let deadline = Instant::now() + Duration::from_secs(3);
            let mut view = self.agent.get(&id);
            while view.as_ref().is_some_and(|v| v.state == "active") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                view = self.agent.get(&id);
            }
            if view.as_ref().is_some_and(|v| v.state == "active") {
                view = self.agent.revert(&id);
            }
            match view {
                Some(v) => {
                    record.packets = v.packets;
                    record.revert = v.revert.clone();
                    let why = v.reverted_by.clone().unwrap_or_default();
                    journal.log(
                        "revert",
                        format!(
                            "{} {} reverted ({why}): {}{}",
                            v.kind,
                            v.id,
                            v.revert.unwrap_or_else(|| "no revert reported".into()),
                            v.packets
                                .map(|p| format!(", {p} packets matched"))
                                .unwrap_or_default()
                        ),
                    );
                }
                None => {
                    record.revert = Some("the agent no longer knows this fault".into());
                    journal.log("revert", format!("{id}: unknown to the agent"));
                }
            }
        }
    }
}

/// The agent's request for `fault` on process `pid`.
fn spec(fault: &Fault, pid: u32, peers: &[String], duration: Duration) -> FaultSpec {
    let seconds = duration.as_secs_f64();
    match fault {
        Fault::Partition(net) => FaultSpec::Partition {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            peers: peers.to_vec(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            reject: net.reject,
            allow_host_netns: false,
            seconds,
        },
        Fault::Loss { net, percent } => FaultSpec::Loss {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            percent: *percent,
            peers: peers.to_vec(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            allow_host_netns: false,
            seconds,
        },
        Fault::Pause => FaultSpec::Pause {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            seconds,
        },
        Fault::Stress { workers, load } => FaultSpec::Stress {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            workers: *workers,
            load: *load,
            seconds,
        },
        Fault::Kill { signal, grace } => FaultSpec::Kill {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            signal: signal.clone(),
            grace_seconds: grace.as_secs_f64(),
        },
    }
}
