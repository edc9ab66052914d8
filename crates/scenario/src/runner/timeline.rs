//! The steps: each action at its time, through the agent (or, for pods, the agent on each
//! chosen pod's node), with leases renewed while the steps wait; then the tail in which probes
//! recover; then every fault settled, its revert read back from the agent. The pod-specific
//! parts (choosing pods, following pod peers) are in `pods`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_agent::spec::{CreateFault, FaultSpec, FaultView};
use faultline_fault::Interrupts;

use super::RunState;
use super::agent::Agent;
use super::journal::Journal;
use super::pods::{PEER_REFRESH, PodPeers};
use super::requests::spec;
use super::setup::Setup;
use crate::cluster::{Cluster, PodKilled};
use crate::lab::Lab;
use crate::model::{Fault, PodTarget, Scenario};
use crate::peer_watch::PeerWatch;
use crate::plan::{ActionKind, Plan, describe_fault};
use crate::pod_logs::{PodLogs, Watching};
use crate::probe::{Context, Observed, Resolver, Watchers, seconds_since};
use crate::verdict::FaultRecord;

/// An active fault the runner keeps a lease on.
pub(super) struct Held {
    /// Its record's index.
    pub(super) record: usize,
    pub(super) id: String,
    pub(super) agent: Arc<Agent>,
    pub(super) ends: Instant,
    /// Peers named as pod targets, kept current.
    pub(super) peers: Option<PodPeers>,
}

/// A fault the agent holds for a record; settled (its revert read back) at the end.
pub(super) struct Created {
    pub(super) record: usize,
    pub(super) id: String,
    pub(super) agent: Arc<Agent>,
}

pub(super) struct Timeline<'a> {
    /// The agent of local targets (none on a cluster).
    pub(super) agent: Option<&'a Arc<Agent>>,
    pub(super) cluster: Option<&'a Arc<dyn Cluster>>,
    pub(super) pods: &'a [PodTarget],
    pub(super) seed: u64,
    /// The agent of each node, once reached.
    pub(super) agents: HashMap<String, Arc<Agent>>,
    pub(super) created: Vec<Created>,
    /// Faults replaced when their pod peers changed whose revert was not verified.
    pub(super) superseded: Vec<(usize, String)>,
    pub(super) pod_kills: Vec<(usize, std::thread::JoinHandle<Result<PodKilled, String>>)>,
    /// What went wrong off the timeline's thread (a pod kill the API server refused): the
    /// run's infrastructure error.
    pub(super) errors: Vec<String>,
    /// Pod peers listed on a thread of their own (on a cluster).
    pub(super) peer_watch: Option<PeerWatch>,
    /// The crash targets' pods, looked at for restarted containers while the run goes on.
    pub(super) pod_logs: Option<&'a Watching>,
    pub(super) lab: Option<&'a Lab>,
    pub(super) local_pids: &'a [(String, u32)],
    pub(super) lease: Duration,
    pub(super) held: Vec<Held>,
    pub(super) kills: Vec<(usize, std::thread::JoinHandle<Result<FaultView, String>>)>,
    pub(super) last_renew: Instant,
    pub(super) last_progress: Instant,
    pub(super) zero: Instant,
    pub(super) total: Duration,
    pub(super) current: String,
}

/// What the steps left for the evidence.
#[derive(Default)]
pub(super) struct Steps {
    /// Each fault as applied and reverted.
    pub(super) faults: Vec<FaultRecord>,
    /// What the probes and scrapes saw.
    pub(super) observed: Observed,
    /// When the steps ended, in seconds since they started.
    pub(super) end: f64,
    /// The crash targets' pods, with the restarted containers' logs saved while the steps ran.
    pub(super) watched: Option<PodLogs>,
}

/// The second phase of a run: the probes and scrapes started, the plan's actions carried out
/// at their times, the tail in which probes recover, and every fault settled. A signal ends the
/// steps early; everything is still settled.
pub(super) fn steps(
    scenario: &Scenario,
    plan: &Plan,
    setup: &mut Setup,
    cluster: Option<&Arc<dyn Cluster>>,
    interrupts: &Interrupts,
    state: &mut RunState,
) -> Steps {
    let mut steps = Steps::default();
    let on_cluster = !scenario.pods.is_empty();
    if state.failed() || (setup.agent.is_none() && !on_cluster) {
        return steps;
    }
    let zero = Instant::now();
    state.journal.zero = Some(zero);
    let cx = Context {
        netns: setup.lab.as_ref().map(Lab::hub_path),
        resolver: Resolver {
            hosts: setup.lab.as_ref().map(Lab::addresses).unwrap_or_default(),
            forwards: std::mem::take(&mut setup.forwards),
        },
        zero,
        out_dir: setup.options.out_dir.clone(),
        base_dir: scenario.base_dir.clone(),
    };
    let watchers = match Watchers::start(&scenario.probes, &scenario.dumps, &cx) {
        Ok(watchers) => watchers,
        Err(e) => {
            state.fail(e);
            return steps;
        }
    };
    state.journal.log(
        "run",
        format!(
            "steps start: {} actions over {:.0}s, {} probes, {} dump captures",
            plan.actions.len(),
            plan.steps_duration.as_secs_f64(),
            scenario.probes.len(),
            scenario.dumps.len()
        ),
    );
    // The two threads that follow pods while the steps run (restarted containers' logs,
    // network peers) share their listings: a pod target that is a crash target and a
    // partition's peer is listed once per round, not twice.
    let shared: Option<Arc<dyn Cluster>> = cluster.filter(|_| on_cluster).map(|c| {
        Arc::new(crate::cluster::SharedListing::new(
            c.clone(),
            PEER_REFRESH.saturating_sub(Duration::from_millis(200)),
        )) as Arc<dyn Cluster>
    });
    // Restarted containers' logs are read as the run goes on, off this thread.
    let watching = shared.as_ref().map(|c| {
        std::mem::replace(
            &mut setup.pod_logs,
            PodLogs::new(Vec::new(), &setup.options.out_dir),
        )
        .watch(c.clone())
    });
    let mut timeline = Timeline {
        agent: setup.agent.as_ref(),
        cluster,
        pods: &scenario.pods,
        seed: plan.seed,
        agents: HashMap::new(),
        created: Vec::new(),
        superseded: Vec::new(),
        pod_kills: Vec::new(),
        errors: Vec::new(),
        peer_watch: shared
            .as_ref()
            .map(|c| PeerWatch::start(c.clone(), PEER_REFRESH)),
        pod_logs: watching.as_ref(),
        lab: setup.lab.as_ref(),
        local_pids: &setup.local_pids,
        lease: scenario.lease,
        held: Vec::new(),
        kills: Vec::new(),
        last_renew: Instant::now(),
        last_progress: Instant::now(),
        zero,
        total: plan.steps_duration,
        current: String::new(),
    };
    let journal = &mut state.journal;
    let mut interrupted = None;
    let mut infra = None;
    match timeline.carry_out(plan, &mut steps.faults, journal, &watchers, interrupts) {
        Ok(None) => {}
        Ok(Some(signal)) => interrupted = Some(signal),
        Err(e) => infra = Some(e),
    }
    if infra.is_none() && interrupted.is_none() {
        // Give probes the time to recover that the assertions allow.
        interrupted = timeline.tail(
            plan,
            scenario,
            &steps.faults,
            journal,
            &watchers,
            interrupts,
        );
    }
    timeline.settle(&mut steps.faults, journal);
    if let Some(e) = infra.or_else(|| timeline.errors.first().cloned()) {
        state.fail(e);
    }
    if let Some(watching) = watching {
        let (logs, lines) = watching.stop();
        for line in lines {
            state.journal.log("pods", line);
        }
        steps.watched = Some(logs);
    }
    steps.end = seconds_since(zero);
    steps.observed = watchers.stop();
    if let Some(signal) = interrupted {
        state.fail(format!("interrupted by signal {signal}"));
    }
    steps
}

impl Timeline<'_> {
    /// The pid a fault on `target` acts on: a lab host's namespace holder for network faults
    /// and stress (it stays while the host's process restarts), its process for the others.
    pub(super) fn pid(&self, target: &str, fault: &Fault) -> Result<u32, String> {
        if let Some((_, pid)) = self.local_pids.iter().find(|(n, _)| n == target) {
            return Ok(*pid);
        }
        let lab = self.lab.ok_or_else(|| format!("no target {target}"))?;
        match fault {
            Fault::Partition(_) | Fault::Loss { .. } | Fault::Stress { .. } => lab
                .anchor_pid(target)
                .ok_or_else(|| format!("no lab host {target}")),
            Fault::Pause | Fault::Kill { .. } | Fault::PodKill { .. } => lab
                .pid(target)
                .ok_or_else(|| format!("{target} is not running")),
        }
    }

    /// Sleeps until `until`, renewing leases, keeping pod peers current and showing progress;
    /// returns a signal if one arrived.
    pub(super) fn wait_until(
        &mut self,
        until: Instant,
        journal: &mut Journal,
        watchers: &Watchers,
        interrupts: &Interrupts,
    ) -> Result<Option<i32>, String> {
        loop {
            self.renew(journal)?;
            self.refresh_peers(journal);
            // Something went wrong that the steps cannot go on with (peers that could not be
            // followed): they stop, and everything is reverted.
            if let Some(e) = self.errors.first() {
                return Err(e.clone());
            }
            for line in self.pod_logs.map(Watching::lines).unwrap_or_default() {
                journal.log("pods", line);
            }
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

    pub(super) fn renew(&mut self, journal: &mut Journal) -> Result<(), String> {
        let now = Instant::now();
        self.held.retain(|h| h.ends > now);
        if now.duration_since(self.last_renew) < self.lease / 3 {
            return Ok(());
        }
        self.last_renew = now;
        for held in &self.held {
            if let Err(e) = held.agent.renew(&held.id) {
                // Already over (its duration ran out a moment ago) is not a lost lease; ended
                // by its lease running out is.
                if held.agent.get(&held.id).ok().flatten().is_some_and(|v| {
                    v.state != "active" && v.reverted_by.as_deref() != Some("lease expired")
                }) {
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

    pub(super) fn show_progress(&mut self, watchers: &Watchers) {
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

    pub(super) fn carry_out(
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
                    let record = FaultRecord {
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
                        pod: None,
                        replacement: None,
                        ready_after: None,
                    };
                    if let Some(pods) = self.pods.iter().find(|p| &p.name == target) {
                        self.pod_fault(pods, fault, peers, *duration, record, faults, journal)
                            .map_err(|e| format!("step {}: {e}", action.step))?;
                        continue;
                    }
                    let pid = self.pid(target, fault);
                    let agent = self
                        .agent
                        .cloned()
                        .ok_or_else(|| "no agent for local targets".to_owned());
                    let (pid, agent) = match (pid, agent) {
                        (Ok(pid), Ok(agent)) => (pid, agent),
                        (Err(e), _) | (_, Err(e)) => {
                            let mut record = record;
                            // The target is down (it crashed, say): the fault cannot hit it.
                            record.applied = format!("not applied: {e}");
                            journal
                                .log("fault", format!("step {}: {}", action.step, record.applied));
                            faults.push(record);
                            continue;
                        }
                    };
                    let Some(fault_spec) = spec(fault, Some(pid), peers, *duration) else {
                        continue;
                    };
                    self.apply(
                        &agent, fault_spec, fault, *duration, record, None, faults, journal,
                    )
                    .map_err(|e| {
                        format!(
                            "step {}: the agent could not apply the fault: {e}",
                            action.step
                        )
                    })?;
                }
            }
        }
        let end = self.zero + plan.steps_duration;
        let signal = self.wait_until(end, journal, watchers, interrupts)?;
        self.current = "steps done".into();
        if signal.is_some() {
            return Ok(signal);
        }
        // Pod kills wait for their replacements; a signal ends the wait.
        Ok(self.collect_kills(faults, journal, Some(interrupts)))
    }

    /// Sends `fault_spec` to `agent` for `record`: a kill on a thread (it waits out its grace
    /// period while leases keep being renewed), anything else held with a lease.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(
        &mut self,
        agent: &Arc<Agent>,
        fault_spec: FaultSpec,
        fault: &Fault,
        duration: Duration,
        mut record: FaultRecord,
        peers: Option<PodPeers>,
        faults: &mut Vec<FaultRecord>,
        journal: &mut Journal,
    ) -> Result<(), String> {
        let request = CreateFault {
            fault: fault_spec,
            lease_seconds: (!fault.is_instant()).then_some(self.lease.as_secs_f64()),
            idempotency_key: None,
        };
        if fault.is_instant() {
            let agent = agent.clone();
            let handle = std::thread::spawn(move || agent.create(request));
            record.applied = "sent".into();
            faults.push(record);
            self.kills.push((faults.len() - 1, handle));
            return Ok(());
        }
        match agent.create(request) {
            Ok(view) => {
                record.id = Some(view.id.clone());
                record.kernel_anchored = view.kernel_anchored;
                record.applied = format!("applied: {}", view.detail);
                journal.log(
                    "fault",
                    format!(
                        "{} {} applied ({}kernel-anchored){}: {}",
                        view.kind,
                        view.id,
                        if view.kernel_anchored { "" } else { "not " },
                        record
                            .pod
                            .as_ref()
                            .map(|p| format!(" on pod {p}"))
                            .unwrap_or_default(),
                        view.detail
                    ),
                );
                faults.push(record);
                self.created.push(Created {
                    record: faults.len() - 1,
                    id: view.id.clone(),
                    agent: agent.clone(),
                });
                self.held.push(Held {
                    record: faults.len() - 1,
                    id: view.id,
                    agent: agent.clone(),
                    ends: Instant::now() + duration,
                    peers,
                });
                Ok(())
            }
            Err(e) => {
                record.applied = format!("failed: {e}");
                faults.push(record);
                Err(e)
            }
        }
    }

    /// After the steps: waits (up to the plan's tail) until every `recovers` probe has passed
    /// since the last fault ended.
    pub(super) fn tail(
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
            .map(|f| {
                if crate::model::is_instant_kind(&f.kind) {
                    f.started
                } else {
                    f.ended
                }
            })
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
                // A lease lost while probes recover: the fault may have ended early.
                Err(e) => {
                    journal.log("run", e.clone());
                    self.errors.push(e);
                    return None;
                }
            }
        }
        journal.log("run", "probes did not all recover before the tail ran out");
        None
    }
}
