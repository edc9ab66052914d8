//! The thread that holds every fault.
//!
//! One long-lived OS thread applies, holds and reverts faults, and watches their durations and
//! leases; the HTTP handlers send it [`Command`]s and wait for the answer. It is a thread, not
//! a task, because `PR_SET_PDEATHSIG` — which kills the `nft` holding a table, and the stress
//! workers, when the agent dies — follows the thread that spawned the child: a tokio worker or
//! blocking thread that exits would take them down early.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use faultline_fault::{
    AppliedNetFault, AppliedStress, Cidr, Direction, Effect, Freezer, FrozenCgroup, NetFault,
    PausedProcess, Process, Protocol, Selector, Stress, Target,
};
use tokio::sync::oneshot;

use crate::journal::{Entry, Journal};
use crate::spec::{CreateFault, FaultSpec, FaultView, PodTarget, TargetRef};
use crate::{Count as _, Counters, Policy};

/// What the holder can be asked.
#[derive(Debug)]
pub enum Command {
    /// Apply a fault.
    Create(
        Box<CreateFault>,
        oneshot::Sender<Result<FaultView, Refusal>>,
    ),
    /// Every fault, newest last.
    List(oneshot::Sender<Vec<FaultView>>),
    /// One fault.
    Get(String, oneshot::Sender<Option<FaultView>>),
    /// Revert one fault now.
    Revert(String, oneshot::Sender<Option<FaultView>>),
    /// Renew a fault's lease.
    Renew(String, oneshot::Sender<Result<FaultView, Refusal>>),
    /// Revert every active fault (graceful shutdown, `revert --all`).
    RevertAll(oneshot::Sender<Vec<FaultView>>),
}

/// Why a request was not carried out, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the fault is not valid.
    Invalid(String),
    /// 403: the policy forbids it.
    Forbidden(String),
    /// 404: no such fault.
    NotFound(String),
    /// 409: not possible in the fault's state.
    Conflict(String),
    /// 500: applying failed.
    Failed(String),
}

#[derive(Debug)]
enum Applied {
    Net(AppliedNetFault),
    Pause(PausedProcess),
    Freeze(FrozenCgroup),
    Stress(AppliedStress),
}

#[derive(Debug)]
struct Held {
    view: FaultView,
    applied: Option<Applied>,
    ends: Option<Instant>,
    lease: Option<(Duration, Instant)>,
}

/// Where the helpers of lasting faults (resume and thaw guards, stress workers) come from: the
/// faultline binary, re-executed in a hidden mode. The one place that spells those modes'
/// command lines (the CLI's hidden subcommands parse them), for the agent and for `inject`.
#[derive(Debug, Clone)]
pub struct Helpers {
    /// The faultline executable.
    pub exe: PathBuf,
}

impl Helpers {
    /// `faultline __resume-guard PID DEADLINE_MS`.
    pub fn resume_guard(&self, pid: u32, deadline: Duration) -> std::process::Command {
        let mut command = std::process::Command::new(&self.exe);
        command
            .arg("__resume-guard")
            .arg(pid.to_string())
            .arg(deadline.as_millis().to_string());
        command
    }

    /// `faultline __thaw-guard DIR DEADLINE_MS`.
    pub fn thaw_guard(
        &self,
        cgroup: &std::path::Path,
        deadline: Duration,
    ) -> std::process::Command {
        let mut command = std::process::Command::new(&self.exe);
        command
            .arg("__thaw-guard")
            .arg(cgroup)
            .arg(deadline.as_millis().to_string());
        command
    }

    /// `faultline __stress-worker FRACTION DEADLINE_MS`.
    pub fn stress_worker(&self, busy_fraction: f64, deadline: Duration) -> std::process::Command {
        let mut command = std::process::Command::new(&self.exe);
        command
            .arg("__stress-worker")
            .arg(format!("{busy_fraction:.4}"))
            .arg(deadline.as_millis().to_string());
        command
    }
}

/// A create named by an idempotency key: what was asked, and what it gave (a kill's answer
/// comes from its own thread, so it is shared).
#[derive(Debug)]
struct Keyed {
    request: (FaultSpec, Option<f64>),
    id: Option<String>,
    outcome: Arc<Mutex<Option<FaultView>>>,
    at: Instant,
}

/// A lock that a panicked holder of it does not poison for the rest.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long an idempotency key is remembered, and how many at most.
const KEY_TTL: Duration = Duration::from_secs(3600);
const MAX_KEYS: usize = 10_000;

/// The holder's state.
#[derive(Debug)]
pub struct Holder {
    faults: BTreeMap<String, Held>,
    keys: BTreeMap<String, Keyed>,
    journal: Journal,
    policy: Policy,
    helpers: Helpers,
    counters: Counters,
    /// Whether each revert is logged on stderr (not under a full-screen UI).
    log_reverts: bool,
}

impl Holder {
    /// A holder writing to `journal`.
    pub fn new(journal: Journal, policy: Policy, helpers: Helpers, counters: Counters) -> Self {
        Self {
            faults: BTreeMap::new(),
            keys: BTreeMap::new(),
            journal,
            policy,
            helpers,
            counters,
            log_reverts: true,
        }
    }

    /// Stops logging reverts on stderr (a full-screen UI owns the terminal).
    pub fn quiet(mut self) -> Self {
        self.log_reverts = false;
        self
    }

    /// Serves commands until every sender is gone, then reverts what is left.
    pub fn run(mut self, commands: &Receiver<Command>) {
        loop {
            let timeout = self.next_deadline().map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            match commands.recv_timeout(timeout) {
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.expire();
            self.prune();
            self.counters.set_active(self.active());
        }
        self.revert_all("shutdown");
        self.counters.set_active(self.active());
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Create(request, reply) => {
                // A create sent again under its key: the fault the first one made.
                let outcome = match self.remembered(&request) {
                    Some(answer) => {
                        let _ = reply.send(answer);
                        return;
                    }
                    None => request.idempotency_key.as_ref().map(|key| {
                        let slot = Arc::new(Mutex::new(None));
                        self.keys.insert(
                            key.clone(),
                            Keyed {
                                request: (request.fault.clone(), request.lease_seconds),
                                id: None,
                                outcome: slot.clone(),
                                at: Instant::now(),
                            },
                        );
                        (key.clone(), slot)
                    }),
                };
                if let FaultSpec::Kill { .. } = request.fault {
                    // A kill waits out its grace period: on a thread of its own, so the holder
                    // keeps answering and enforcing durations and leases meanwhile.
                    let checked = self
                        .check(&request)
                        .and_then(|()| self.resolve(&request.fault));
                    std::thread::spawn(move || {
                        let answer = checked.and_then(|(target, pids, effective)| {
                            kill(&request.fault, &target, &pids, &effective)
                        });
                        if let (Some((_, slot)), Ok(view)) = (&outcome, &answer) {
                            *lock(slot) = Some(view.clone());
                        }
                        let _ = reply.send(answer);
                    });
                } else {
                    let answer = self.create(*request);
                    if let Some((key, slot)) = outcome {
                        match &answer {
                            Ok(view) => {
                                *lock(&slot) = Some(view.clone());
                                if let Some(k) = self.keys.get_mut(&key) {
                                    k.id = Some(view.id.clone());
                                }
                            }
                            // A refused create made nothing: the key is free to be tried again.
                            Err(_) => {
                                self.keys.remove(&key);
                            }
                        }
                    }
                    let _ = reply.send(answer);
                }
            }
            Command::List(reply) => {
                let views = self.faults.values().map(|h| self.view(h)).collect();
                let _ = reply.send(views);
            }
            Command::Get(id, reply) => {
                let _ = reply.send(self.faults.get(&id).map(|h| self.view(h)));
            }
            Command::Revert(id, reply) => {
                let _ = reply.send(self.revert(&id, "request"));
            }
            Command::Renew(id, reply) => {
                let _ = reply.send(self.renew(&id));
            }
            Command::RevertAll(reply) => {
                let _ = reply.send(self.revert_all("request"));
            }
        }
    }

    fn view(&self, held: &Held) -> FaultView {
        let mut view = held.view.clone();
        if view.state == "active" {
            view.seconds_left = held
                .ends
                .map(|e| e.saturating_duration_since(Instant::now()).as_secs_f64());
            match &held.applied {
                Some(Applied::Net(net)) => view.packets = net.packets().ok(),
                Some(Applied::Stress(stress)) => {
                    view.throttled_periods = stress.throttled_periods()
                }
                _ => {}
            }
        }
        view
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.faults
            .values()
            .filter(|h| h.applied.is_some())
            .flat_map(|h| [h.ends, h.lease.map(|l| l.1)])
            .flatten()
            .min()
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, &'static str)> = self
            .faults
            .iter()
            .filter(|(_, h)| h.applied.is_some())
            .filter_map(|(id, h)| {
                if h.lease.is_some_and(|l| l.1 <= now) {
                    Some((id.clone(), "lease expired"))
                } else if h.ends.is_some_and(|e| e <= now) {
                    Some((id.clone(), "duration"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in due {
            if why == "lease expired" {
                self.counters.bump(&self.counters.lease_expiries);
            }
            self.revert(&id, why);
        }
    }

    /// The policy's and the request's checks that need no target.
    fn check(&self, request: &CreateFault) -> Result<(), Refusal> {
        if let Ok(TargetRef::Pid(pid)) = request.fault.target()
            && (pid == std::process::id() || self.policy.denied_pids.contains(&pid))
        {
            return Err(Refusal::Forbidden(format!(
                "process {pid} may not be targeted"
            )));
        }
        let seconds = request.fault.seconds();
        if !seconds.is_finite()
            || seconds < 0.0
            || (seconds == 0.0 && request.fault.kind() != "kill")
        {
            return Err(Refusal::Invalid(format!(
                "seconds: {seconds} is not a duration (a positive number of seconds)"
            )));
        }
        if seconds > self.policy.max_seconds {
            return Err(Refusal::Forbidden(format!(
                "{seconds} s is longer than the policy allows ({} s)",
                self.policy.max_seconds
            )));
        }
        if let FaultSpec::Kill { grace_seconds, .. } = &request.fault
            && !(grace_seconds.is_finite()
                && *grace_seconds >= 0.0
                && *grace_seconds <= self.policy.max_seconds)
        {
            return Err(Refusal::Invalid(format!(
                "grace_seconds: {grace_seconds} is not a duration the policy allows (0 to {} s)",
                self.policy.max_seconds
            )));
        }
        Ok(())
    }

    /// Where a fault on a pod lands: its sandbox's process for a network fault (the pod's
    /// network namespace, which outlives its containers' restarts), else the cgroup of the
    /// container named, or of the whole pod, in the hierarchy the fault needs.
    fn pod_target(&self, spec: &FaultSpec, pod: &PodTarget) -> Result<TargetRef, Refusal> {
        let invalid = |e: faultline_fault::Error| Refusal::Invalid(e.to_string());
        let freezer = matches!(spec, FaultSpec::Pause { .. });
        let root = self.policy.kubelet_root(freezer).ok_or_else(|| {
            Refusal::Failed("this host has no cgroup hierarchy to find pods in".into())
        })?;
        let found = faultline_fault::kubepods::find_pod(&root, &pod.uid).map_err(invalid)?;
        if matches!(spec, FaultSpec::Partition { .. } | FaultSpec::Loss { .. }) {
            let (_, pid) = found.sandbox().ok_or_else(|| {
                Refusal::Invalid(format!(
                    "pod {}: no pause process in {}: its network namespace cannot be found",
                    pod.uid,
                    found.dir.display()
                ))
            })?;
            return Ok(TargetRef::Pid(pid));
        }
        match &pod.container {
            Some(id) => Ok(TargetRef::Cgroup(
                found.container(id).map_err(invalid)?.dir.clone(),
            )),
            None => Ok(TargetRef::Cgroup(found.dir)),
        }
    }

    /// The target a fault is aimed at (a pod resolved to a process or a cgroup) and every
    /// process in it, if the policy allows them all.
    fn resolve(&self, spec: &FaultSpec) -> Result<(Target, Vec<u32>, TargetRef), Refusal> {
        let invalid = |e: faultline_fault::Error| Refusal::Invalid(e.to_string());
        let effective = match spec.target().map_err(Refusal::Invalid)? {
            TargetRef::Pod(pod) => self.pod_target(spec, &pod)?,
            other => other,
        };
        let (target, pids, effective) = match effective {
            TargetRef::Pid(pid) => (
                Target::process(pid).map_err(invalid)?,
                vec![pid],
                TargetRef::Pid(pid),
            ),
            TargetRef::Cgroup(dir) => {
                // The directory as the kernel resolves it (no `..` past a policy prefix), and
                // every process of its subtree: a freeze or a kill reaches them all.
                let dir = std::fs::canonicalize(&dir)
                    .map_err(|e| Refusal::Invalid(format!("cgroup {}: {e}", dir.display())))?;
                if let Some(denied) = self.policy.denies_dir(&dir) {
                    return Err(Refusal::Forbidden(denied));
                }
                let (target, _) = Target::cgroup(&dir).map_err(invalid)?;
                let pids = faultline_fault::target::cgroup_tree_pids(&dir).map_err(invalid)?;
                (target, pids, TargetRef::Cgroup(dir))
            }
            TargetRef::Pod(_) => return Err(Refusal::Failed("a pod left unresolved".into())),
        };
        match self.policy.denies(&target, &pids) {
            Some(denied) => Err(Refusal::Forbidden(denied)),
            None => Ok((target, pids, effective)),
        }
    }

    fn create(&mut self, request: CreateFault) -> Result<FaultView, Refusal> {
        self.check(&request)?;
        let spec = request.fault;
        let seconds = spec.seconds();
        let active = self.faults.values().filter(|h| h.applied.is_some()).count();
        if active >= self.policy.max_faults {
            return Err(Refusal::Forbidden(format!(
                "{active} faults are active, the most the policy allows"
            )));
        }
        let lease = match request.lease_seconds {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(Refusal::Invalid(format!(
                    "lease_seconds: {s} is not a positive number"
                )));
            }
            None => None,
        };
        let (target, _, effective) = self.resolve(&spec)?;
        let pid = target.pid;
        let cgroup = match &effective {
            TargetRef::Cgroup(dir) => Some(dir.clone()),
            _ => None,
        };
        let pod = match spec.target() {
            Ok(TargetRef::Pod(p)) => Some(p.uid),
            _ => None,
        };
        let id = faultline_fault::new_fault_id();
        let table = matches!(spec, FaultSpec::Partition { .. } | FaultSpec::Loss { .. })
            .then(|| format!("faultline_{id}"));
        self.journal
            .write(&Entry::Apply {
                id: id.clone(),
                kind: spec.kind().into(),
                pid,
                pid_start: faultline_fault::start_time(pid),
                table,
                cgroup: cgroup.clone(),
            })
            .map_err(|e| Refusal::Failed(format!("journal: {e}")))?;
        let (applied, detail) = match self.apply(&id, &spec, &target, &effective) {
            Ok(applied) => applied,
            Err(refusal) => {
                let _ = self.journal.write(&Entry::Revert { id });
                return Err(refusal);
            }
        };
        let state = if applied.is_some() { "active" } else { "done" };
        let kernel_anchored =
            !matches!(&applied, Some(Applied::Net(net)) if !net.kernel_anchored());
        if state == "done" {
            let _ = self.journal.write(&Entry::Revert { id: id.clone() });
        }
        let now = Instant::now();
        let held = Held {
            view: FaultView {
                id: id.clone(),
                kind: spec.kind().into(),
                pid,
                cgroup,
                pod,
                state: state.into(),
                seconds_left: None,
                lease_seconds: lease.map(|l| l.as_secs_f64()),
                kernel_anchored,
                detail,
                packets: None,
                throttled_periods: None,
                options: spec.options(),
                revert: None,
                reverted_by: None,
            },
            applied,
            ends: (state == "active").then(|| now + Duration::from_secs_f64(seconds)),
            lease: lease.map(|l| (l, now + l)),
        };
        let view = self.view(&held);
        self.faults.insert(id, held);
        Ok(view)
    }

    fn apply(
        &mut self,
        id: &str,
        spec: &FaultSpec,
        target: &Target,
        effective: &TargetRef,
    ) -> Result<(Option<Applied>, String), Refusal> {
        let invalid = |e: faultline_fault::Error| match e {
            faultline_fault::Error::Io { .. } | faultline_fault::Error::Residue(_) => {
                Refusal::Failed(e.to_string())
            }
            faultline_fault::Error::HostNetns(_) => Refusal::Forbidden(e.to_string()),
            other => Refusal::Invalid(other.to_string()),
        };
        match spec {
            FaultSpec::Partition {
                peers,
                ports,
                protocol,
                direction,
                reject,
                allow_host_netns,
                ..
            } => {
                let effect = if *reject {
                    Effect::Reject
                } else {
                    Effect::Drop
                };
                let fault = net_fault(peers, ports, protocol.as_deref(), direction, effect)
                    .map_err(invalid)?;
                apply_net(target, &fault, id, *allow_host_netns).map_err(invalid)
            }
            FaultSpec::Loss {
                percent,
                peers,
                ports,
                protocol,
                direction,
                allow_host_netns,
                ..
            } => {
                let effect = Effect::Loss(*percent);
                let fault = net_fault(peers, ports, protocol.as_deref(), direction, effect)
                    .map_err(invalid)?;
                apply_net(target, &fault, id, *allow_host_netns).map_err(invalid)
            }
            FaultSpec::Pause { seconds, .. } if matches!(effective, TargetRef::Cgroup(_)) => {
                let TargetRef::Cgroup(dir) = effective else {
                    return Err(Refusal::Failed("not a cgroup".into()));
                };
                let freezer = Freezer::of(dir).map_err(invalid)?;
                let guard = self
                    .helpers
                    .thaw_guard(freezer.dir(), Duration::from_secs_f64(*seconds));
                let frozen = FrozenCgroup::apply(freezer, guard).map_err(invalid)?;
                let detail = format!(
                    "cgroup {} frozen, thaw guard pid {}",
                    dir.display(),
                    frozen.guard_pid()
                );
                Ok((Some(Applied::Freeze(frozen)), detail))
            }
            FaultSpec::Pause { seconds, .. } => {
                let guard = self
                    .helpers
                    .resume_guard(target.pid, Duration::from_secs_f64(*seconds));
                let paused = PausedProcess::apply(target.pid, guard).map_err(invalid)?;
                let detail = format!("resume guard pid {}", paused.guard_pid());
                Ok((Some(Applied::Pause(paused)), detail))
            }
            FaultSpec::Stress {
                workers,
                load,
                seconds,
                ..
            } => {
                let stress = Stress {
                    workers: *workers,
                    load: *load,
                };
                let deadline = Duration::from_secs_f64(*seconds);
                let applied = AppliedStress::apply(target, &stress, |fraction| {
                    self.helpers.stress_worker(fraction, deadline)
                })
                .map_err(invalid)?;
                let workers: Vec<(u32, u64)> = applied
                    .worker_pids()
                    .into_iter()
                    .filter_map(|p| Some((p, faultline_fault::start_time(p)?)))
                    .collect();
                let _ = self.journal.write(&Entry::Workers {
                    id: id.into(),
                    workers,
                });
                let detail = format!("workers {:?}", applied.worker_pids());
                Ok((Some(Applied::Stress(applied)), detail))
            }
            FaultSpec::Kill { .. } => Err(Refusal::Failed(
                "a kill is carried out on its own thread, not held".into(),
            )),
        }
    }

    fn renew(&mut self, id: &str) -> Result<FaultView, Refusal> {
        let Some(held) = self.faults.get_mut(id) else {
            return Err(Refusal::NotFound(format!("no fault {id}")));
        };
        if held.applied.is_none() {
            return Err(Refusal::Conflict(format!(
                "fault {id} is {}, not active",
                held.view.state
            )));
        }
        let Some(lease) = held.lease.as_mut() else {
            return Err(Refusal::Conflict(format!("fault {id} has no lease")));
        };
        lease.1 = Instant::now() + lease.0;
        let held = &self.faults[id];
        Ok(self.view(held))
    }

    fn revert(&mut self, id: &str, why: &str) -> Option<FaultView> {
        let held = self.faults.get_mut(id)?;
        if let Some(applied) = held.applied.take() {
            let mut packets = None;
            let mut throttled = None;
            let outcome = match applied {
                Applied::Net(net) => net.revert().map(|p| packets = p),
                Applied::Pause(paused) => paused.revert(),
                Applied::Freeze(frozen) => frozen.revert(),
                Applied::Stress(stress) => stress.revert().map(|r| throttled = r.throttled_periods),
            };
            // The last counts stay in the view once reverted.
            held.view.packets = packets.or(held.view.packets);
            held.view.throttled_periods = throttled.or(held.view.throttled_periods);
            held.view.reverted_by = Some(why.into());
            held.view.seconds_left = None;
            match outcome {
                Ok(()) => {
                    held.view.state = "reverted".into();
                    held.view.revert = Some("verified".into());
                    self.counters.bump(&self.counters.reverts);
                }
                Err(e) => {
                    held.view.state = "failed".into();
                    held.view.revert = Some(e.to_string());
                    self.counters.bump(&self.counters.revert_failures);
                }
            }
            // A revert that left residue stays in the journal: the next agent's sweep retries.
            if held.view.revert.as_deref() == Some("verified") {
                let _ = self.journal.write(&Entry::Revert { id: id.into() });
            }
            if self.log_reverts {
                eprintln!(
                    "faultline agent: {} {} reverted ({why}): {}",
                    held.view.kind,
                    id,
                    held.view.revert.as_deref().unwrap_or_default()
                );
            }
        }
        let held = &self.faults[id];
        Some(self.view(held))
    }

    /// Forgets the oldest finished faults beyond the last thousand.
    /// The answer to a create whose idempotency key is known: the fault it made (as it is now),
    /// or a refusal when the key was used for another request or its first create is still
    /// running (a kill's grace period). `None` for a key not seen (or no key).
    fn remembered(&mut self, request: &CreateFault) -> Option<Result<FaultView, Refusal>> {
        let key = request.idempotency_key.as_ref()?;
        if key.is_empty() || key.len() > 200 {
            return Some(Err(Refusal::Invalid(
                "idempotency_key: 1 to 200 characters".into(),
            )));
        }
        let keyed = self.keys.get(key)?;
        if keyed.request != (request.fault.clone(), request.lease_seconds) {
            return Some(Err(Refusal::Conflict(format!(
                "idempotency key {key:?} was used for another fault request"
            ))));
        }
        if let Some(held) = keyed.id.as_ref().and_then(|id| self.faults.get(id)) {
            return Some(Ok(self.view(held)));
        }
        Some(match lock(&keyed.outcome).clone() {
            Some(view) => Ok(view),
            None => Err(Refusal::Conflict(format!(
                "the create with idempotency key {key:?} is still in progress; ask again"
            ))),
        })
    }

    fn prune(&mut self) {
        let now = Instant::now();
        self.keys
            .retain(|_, k| now.saturating_duration_since(k.at) < KEY_TTL);
        while self.keys.len() > MAX_KEYS {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, k)| k.at)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.keys.remove(&key),
                None => break,
            };
        }
        const KEEP: usize = 1000;
        let finished: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, h)| h.applied.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished.iter().take(finished.len().saturating_sub(KEEP)) {
            self.faults.remove(id);
        }
    }

    fn revert_all(&mut self, why: &str) -> Vec<FaultView> {
        let active: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, h)| h.applied.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        active
            .iter()
            .filter_map(|id| self.revert(id, why))
            .collect()
    }

    /// The number of faults in force.
    pub fn active(&self) -> usize {
        self.faults.values().filter(|h| h.applied.is_some()).count()
    }
}

/// Carries out a kill of `pids` (the target's processes; nothing to hold or journal: it cannot
/// be undone) and says how it went.
fn kill(
    spec: &FaultSpec,
    target: &Target,
    pids: &[u32],
    effective: &TargetRef,
) -> Result<FaultView, Refusal> {
    let FaultSpec::Kill {
        signal,
        grace_seconds,
        pod,
        ..
    } = spec
    else {
        return Err(Refusal::Failed("not a kill".into()));
    };
    let invalid = |e: faultline_fault::Error| match e {
        faultline_fault::Error::Io { .. } | faultline_fault::Error::Residue(_) => {
            Refusal::Failed(e.to_string())
        }
        other => Refusal::Invalid(other.to_string()),
    };
    let signal = faultline_fault::parse_signal(signal).map_err(invalid)?;
    let grace = Duration::try_from_secs_f64(*grace_seconds)
        .map_err(|_| Refusal::Invalid(format!("grace_seconds: {grace_seconds}")))?;
    let cgroup = match effective {
        TargetRef::Cgroup(dir) => Some(dir.clone()),
        _ => None,
    };
    let detail = if let Some(dir) = &cgroup {
        let outcome = faultline_fault::kill_all(pids, signal, grace).map_err(invalid)?;
        format!(
            "{} processes of cgroup {} signalled with {signal}; {} outlived the grace period \
             and got SIGKILL; all gone",
            outcome.signalled,
            dir.display(),
            outcome.killed
        )
    } else {
        let process = Process::open(target.pid).map_err(invalid)?;
        match process.kill(signal, grace).map_err(invalid)? {
            faultline_fault::KillOutcome::Exited { signal, after } => {
                format!("exited {} ms after signal {signal}", after.as_millis())
            }
            faultline_fault::KillOutcome::Killed { signal, .. } => {
                format!("outlived signal {signal}; killed with SIGKILL")
            }
        }
    };
    Ok(FaultView {
        id: faultline_fault::new_fault_id(),
        kind: "kill".into(),
        pid: target.pid,
        cgroup,
        pod: pod.as_ref().map(|p| p.uid.clone()),
        state: "done".into(),
        seconds_left: None,
        lease_seconds: None,
        kernel_anchored: true,
        detail,
        packets: None,
        throttled_periods: None,
        options: spec.options(),
        revert: None,
        reverted_by: None,
    })
}

fn apply_net(
    target: &Target,
    fault: &NetFault,
    id: &str,
    allow_host_netns: bool,
) -> Result<(Option<Applied>, String), faultline_fault::Error> {
    let applied = AppliedNetFault::apply(target, fault, id, allow_host_netns)?;
    let detail = format!(
        "table inet {} held by pid {}",
        applied.table(),
        applied.holder_pid()
    );
    Ok((Some(Applied::Net(applied)), detail))
}

fn net_fault(
    peers: &[String],
    ports: &[u16],
    protocol: Option<&str>,
    direction: &str,
    effect: Effect,
) -> Result<NetFault, faultline_fault::Error> {
    let fault = NetFault {
        selector: Selector {
            peers: peers
                .iter()
                .map(|p| p.parse::<Cidr>())
                .collect::<Result<_, _>>()?,
            ports: ports.to_vec(),
            protocol: protocol.map(str::parse::<Protocol>).transpose()?,
            direction: direction.parse::<Direction>()?,
        },
        effect,
    };
    fault.validate()?;
    Ok(fault)
}
