//! Carrying a plan out: the lab, the agent and its leases, the timeline, probes and scrapes,
//! the reverts and their checks, then the evidence for the verdict.
//!
//! Everything the run starts is owned by a value whose drop removes it (the lab, the
//! in-process agent), and everything lasting is also anchored in the kernel (parent-death
//! signals, owner tables), so an error, a panic or a SIGKILL leaves nothing in force.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use faultline_agent::spec::{CreateFault, FaultSpec, FaultView};
use faultline_agent::{AgentAddr, Client, Helpers, LocalAgent, Policy};
use faultline_fault::Interrupts;
use serde::Serialize;

use crate::analysis::{self, CrashSource};
use crate::cluster::{Cluster, ClusterPod, PodKilled};
use crate::lab::{Lab, LabOptions};
use crate::model::{Fault, Find, PodTarget, Scenario};
use crate::peer_watch::PeerWatch;
use crate::plan::{ActionKind, Plan, describe_fault};
use crate::pod_logs::{PodLogs, Watching};
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

impl RunOutcome {
    /// Whether `judged` failed only because the run was cut short by an infrastructure error:
    /// reported as not judged (JUnit `skipped`), not as a failure of the system under test. The
    /// revert check is always judged.
    pub fn not_judged(&self, judged: &Judged) -> bool {
        self.verdict == Verdict::InfrastructureError && !judged.passed && judged.line != 0
    }
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
    /// The fault as the agent has it (`None`: it does not know it), or why the agent could
    /// not be asked.
    fn get(&self, id: &str) -> Result<Option<FaultView>, String> {
        match self {
            Agent::Local(a) => Ok(a.get(id)),
            Agent::Remote(c) => c
                .list()
                .map(|views| views.into_iter().find(|v| v.id == id))
                .map_err(|e| e.to_string()),
        }
    }
    /// The fault as reverted (`None`: the agent does not know it), or why the agent could not
    /// be asked.
    fn revert(&self, id: &str) -> Result<Option<FaultView>, String> {
        match self {
            Agent::Local(a) => Ok(a.revert(id)),
            Agent::Remote(c) => c.revert(id).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// [`Agent::revert`], asked again for up to 3 s while the agent cannot be asked.
    fn revert_patiently(&self, id: &str) -> Result<Option<FaultView>, String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.revert(id) {
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                done => return done,
            }
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
    /// Its record's index.
    record: usize,
    id: String,
    agent: Arc<Agent>,
    ends: Instant,
    /// Peers named as pod targets, kept current.
    peers: Option<PodPeers>,
}

/// A network fault whose peers are pods: their addresses change as pods come and go.
struct PodPeers {
    /// The fault as last applied.
    spec: FaultSpec,
    /// Peers given as addresses.
    fixed: Vec<String>,
    /// Peers given as pod targets.
    targets: Vec<PodTarget>,
    /// Their pods' addresses in force.
    current: Vec<String>,
    /// Rounds in a row the peers could not be followed (listed, or the fault replaced).
    failures: u32,
    /// The last listing round looked at.
    round: u64,
}

/// Rounds of [`PEER_REFRESH`] in a row a fault's pod peers may fail to be followed before the
/// run ends as an infrastructure error: a partition left on old addresses would let the new
/// pods through while the run passed.
const PEER_FAILURES: u32 = 3;

/// A fault the agent holds for a record; settled (its revert read back) at the end.
struct Created {
    record: usize,
    id: String,
    agent: Arc<Agent>,
}

/// How often the pod peers of a network fault are listed again.
const PEER_REFRESH: Duration = Duration::from_secs(2);

/// Runs `plan` of `scenario`. Interrupts (SIGINT/SIGTERM/SIGHUP, blocked by the caller before
/// any thread started) end the steps early; everything is still reverted and reported.
pub fn run(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    interrupts: &Interrupts,
) -> RunOutcome {
    run_on(scenario, plan, options, interrupts, None)
}

/// [`run`], with the cluster a scenario's `pods` live in.
pub fn run_on(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    interrupts: &Interrupts,
    cluster: Option<Arc<dyn Cluster>>,
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

    let on_cluster = !scenario.pods.is_empty();
    if on_cluster && cluster.is_none() && infra.is_none() {
        infra = Some("this scenario's targets are pods: it needs a cluster".into());
    }
    let agent = if infra.is_some() || on_cluster {
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

    // Pods: each target must match some, and the crash targets' restart counts are noted
    // now, so a restart during the run can be told apart from an older one.
    let crash_targets: Vec<String> = if scenario.crash_targets.is_empty() {
        scenario
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .chain(scenario.pods.iter().map(|p| p.name.clone()))
            .collect()
    } else {
        scenario.crash_targets.clone()
    };
    // The crash targets' restarted containers, watched while the steps run.
    let mut watched: Option<PodLogs> = None;
    let mut pod_logs = PodLogs::new(
        scenario
            .pods
            .iter()
            .filter(|p| crash_targets.contains(&p.name))
            .cloned()
            .collect(),
        &options.out_dir,
    );
    let mut forwards = Vec::new();
    if let Some(cluster) = cluster.as_ref().filter(|_| on_cluster && infra.is_none()) {
        journal.log("run", format!("on {}", cluster.describe()));
        for target in &scenario.pods {
            match cluster.pods(target) {
                Ok(pods) if pods.is_empty() => {
                    infra.get_or_insert(format!(
                        "pods {}: {} in {} matches no pod",
                        target.name,
                        target.selector,
                        target.namespaces.join(", ")
                    ));
                }
                Ok(pods) => {
                    journal.log(
                        "pods",
                        format!(
                            "{}: {} pods: {}",
                            target.name,
                            pods.len(),
                            pods.iter()
                                .map(ClusterPod::id)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    if crash_targets.contains(&target.name) {
                        pod_logs.baseline(&target.name, &pods);
                    }
                }
                Err(e) => {
                    infra.get_or_insert(format!("pods {}: {e}", target.name));
                }
            }
        }
        // Probes and dump scrapes that name a pod target reach it through a port-forward.
        for (host, port) in pod_endpoints(scenario) {
            if infra.is_some() {
                break;
            }
            let Some(target) = scenario.pods.iter().find(|p| p.name == host) else {
                continue;
            };
            match cluster.reach(target, port) {
                Ok(local) => {
                    journal.log(
                        "pods",
                        format!("{host}:{port} forwarded to {local} through the API server"),
                    );
                    forwards.push((host, port, local));
                }
                Err(e) => {
                    infra.get_or_insert(format!("reach {host}:{port}: {e}"));
                }
            }
        }
    }

    let mut interrupted = None;
    if infra.is_none() && (agent.is_some() || on_cluster) {
        let zero = Instant::now();
        journal.zero = Some(zero);
        let cx = Context {
            netns: lab.as_ref().map(Lab::hub_path),
            resolver: Resolver {
                hosts: lab.as_ref().map(Lab::addresses).unwrap_or_default(),
                forwards,
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
                // Restarted containers' logs are read as the run goes on, off this thread.
                let watching = cluster.as_ref().filter(|_| on_cluster).map(|c| {
                    std::mem::replace(&mut pod_logs, PodLogs::new(Vec::new(), &options.out_dir))
                        .watch(c.clone())
                });
                let mut timeline = Timeline {
                    agent: agent.as_ref(),
                    cluster: cluster.as_ref(),
                    pods: &scenario.pods,
                    seed: plan.seed,
                    agents: HashMap::new(),
                    created: Vec::new(),
                    superseded: Vec::new(),
                    pod_kills: Vec::new(),
                    errors: Vec::new(),
                    peer_watch: cluster
                        .as_ref()
                        .filter(|_| on_cluster)
                        .map(|c| PeerWatch::start(c.clone(), PEER_REFRESH)),
                    pod_logs: watching.as_ref(),
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
                if let Some(e) = timeline.errors.first() {
                    infra.get_or_insert(e.clone());
                }
                if let Some(watching) = watching {
                    let (logs, lines) = watching.stop();
                    for line in lines {
                        journal.log("pods", line);
                    }
                    watched = Some(logs);
                }
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
    let mut notes = Vec::new();
    let mut sources: Vec<CrashSource> = Vec::new();
    // Only when the steps ran: before, there was no run for a restart to be part of (and the
    // restarts at the start may not all have been counted).
    if let (Some(cluster), Some(mut pod_logs)) = (cluster.as_ref().filter(|_| on_cluster), watched)
    {
        for line in pod_logs.look(cluster.as_ref(), true) {
            journal.log("pods", line);
        }
        for (target, file, line) in pod_logs.found() {
            match file {
                Some(file) => sources.push(CrashSource {
                    target,
                    stderr: Some(file),
                    crash_dir: None,
                }),
                None => notes.push(line),
            }
        }
    }
    let targets: Vec<String> = crash_targets
        .into_iter()
        .filter(|t| !scenario.pods.iter().any(|p| &p.name == t))
        .collect();
    sources.extend(targets.iter().map(|t| {
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
    }));
    let crashes = analysis::crashes(&sources, &options.out_dir, &locator);
    let (leaks, leak_notes) = analysis::leaks(&observed.scrapes, &options.out_dir, &locator);
    notes.extend(leak_notes);
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
    /// The agent of local targets (none on a cluster).
    agent: Option<&'a Arc<Agent>>,
    cluster: Option<&'a Arc<dyn Cluster>>,
    pods: &'a [PodTarget],
    seed: u64,
    /// The agent of each node, once reached.
    agents: HashMap<String, Arc<Agent>>,
    created: Vec<Created>,
    /// Faults replaced when their pod peers changed whose revert was not verified.
    superseded: Vec<(usize, String)>,
    pod_kills: Vec<(usize, std::thread::JoinHandle<Result<PodKilled, String>>)>,
    /// What went wrong off the timeline's thread (a pod kill the API server refused): the
    /// run's infrastructure error.
    errors: Vec<String>,
    /// Pod peers listed on a thread of their own (on a cluster).
    peer_watch: Option<PeerWatch>,
    /// The crash targets' pods, looked at for restarted containers while the run goes on.
    pod_logs: Option<&'a Watching>,
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
            Fault::Pause | Fault::Kill { .. } | Fault::PodKill { .. } => lab
                .pid(target)
                .ok_or_else(|| format!("{target} is not running")),
        }
    }

    /// Sleeps until `until`, renewing leases, keeping pod peers current and showing progress;
    /// returns a signal if one arrived.
    fn wait_until(
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

    fn renew(&mut self, journal: &mut Journal) -> Result<(), String> {
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

    /// The addresses of the pods of `targets`, sorted, listed now (when a fault starts).
    fn peer_ips(&self, targets: &[PodTarget]) -> Result<Vec<String>, String> {
        let cluster = self.cluster.ok_or("no cluster")?;
        crate::peer_watch::peer_ips(cluster.as_ref(), targets)
    }

    /// Network faults whose peers are pods: when the pods' addresses changed (a pod was
    /// replaced), the fault is applied again with the new ones, then the old one reverted, so
    /// the partition never lapses.
    fn refresh_peers(&mut self, journal: &mut Journal) {
        let Some(watch) = &self.peer_watch else {
            return;
        };
        if !self.held.iter().any(|h| h.peers.is_some()) {
            watch.retain(&[]);
            return;
        }
        // The groups of peers still followed; the listing thread lists each once a round (a
        // step on `mode: all` holds a fault per pod, all with the same peers).
        let followed: Vec<Vec<String>> = self
            .held
            .iter()
            .filter_map(|h| h.peers.as_ref())
            .map(|p| p.targets.iter().map(|t| t.name.clone()).collect())
            .collect();
        watch.retain(&followed);
        for i in 0..self.held.len() {
            let Some(peers) = &self.held[i].peers else {
                continue;
            };
            let Some(watch) = &self.peer_watch else {
                return;
            };
            watch.follow(&peers.targets);
            // Only a listing not looked at yet.
            let Some((round, listed)) = watch.latest(&peers.targets) else {
                continue;
            };
            if round <= peers.round {
                continue;
            }
            if let Some(p) = &mut self.held[i].peers {
                p.round = round;
            }
            let Some(peers) = &self.held[i].peers else {
                continue;
            };
            let ips = match listed {
                Ok(ips) => ips,
                Err(e) => {
                    journal.log(
                        "fault",
                        format!("{}: {e}; its peers stay as they were", self.held[i].id),
                    );
                    self.peers_not_followed(i, &e);
                    continue;
                }
            };
            if ips == peers.current {
                if let Some(p) = &mut self.held[i].peers {
                    p.failures = 0;
                }
                continue;
            }
            let left = self.held[i].ends.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(500) {
                continue;
            }
            let all: Vec<String> = peers.fixed.iter().cloned().chain(ips.clone()).collect();
            let spec = with_peers(&peers.spec, all, left);
            let held = &mut self.held[i];
            let created = held.agent.create(CreateFault {
                fault: spec.clone(),
                lease_seconds: Some(self.lease.as_secs_f64()),
            });
            let view = match created {
                Ok(view) => view,
                Err(e) => {
                    journal.log(
                        "fault",
                        format!(
                            "the peers of {} changed to {}, but the new fault failed: {e}; \
                             the old one stays",
                            held.id,
                            ips.join(",")
                        ),
                    );
                    self.peers_not_followed(i, &format!("the new fault failed: {e}"));
                    continue;
                }
            };
            let old = std::mem::replace(&mut held.id, view.id.clone());
            if let Some(c) = self.created.iter_mut().find(|c| c.id == old) {
                c.id = view.id.clone();
            }
            let outcome = held.agent.revert_patiently(&old).and_then(|v| {
                v.and_then(|v| v.revert)
                    .ok_or_else(|| "no revert reported".to_owned())
            });
            if outcome.as_deref() != Ok("verified") {
                self.superseded.push((
                    held.record,
                    format!(
                        "{old} (replaced when its peers changed): {}",
                        outcome.unwrap_or_else(|e| format!("its revert failed: {e}"))
                    ),
                ));
            }
            journal.log(
                "fault",
                format!(
                    "peers changed: {} replaced {old}, now {}",
                    view.id,
                    ips.join(",")
                ),
            );
            if let Some(p) = &mut held.peers {
                p.spec = spec;
                p.current = ips;
                p.failures = 0;
            }
        }
    }

    /// Counts a round in which held fault `i`'s pod peers could not be followed; the
    /// [`PEER_FAILURES`]th in a row is the run's infrastructure error.
    fn peers_not_followed(&mut self, i: usize, why: &str) {
        let Some(peers) = &mut self.held[i].peers else {
            return;
        };
        peers.failures += 1;
        if peers.failures == PEER_FAILURES {
            self.errors.push(format!(
                "the pod peers of fault {} could not be followed {PEER_FAILURES} times in a row \
                 (the partition stayed on their old addresses): {why}",
                self.held[i].id
            ));
        }
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
    fn apply(
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

    /// The agent on `node`, reached once and kept; unreachable is the run's end (exit 4):
    /// a fault is never skipped quietly.
    fn agent_on(&mut self, node: &str, journal: &mut Journal) -> Result<Arc<Agent>, String> {
        if let Some(agent) = self.agents.get(node) {
            return Ok(agent.clone());
        }
        let cluster = self.cluster.ok_or("no cluster")?;
        let client = cluster.agent(node)?;
        client.list().map_err(|e| {
            format!(
                "the faultline agent on node {node} at {} is unreachable: {e}",
                client.addr()
            )
        })?;
        journal.log(
            "run",
            format!("the agent on node {node} answers at {}", client.addr()),
        );
        let agent = Arc::new(Agent::Remote(client));
        self.agents.insert(node.to_owned(), agent.clone());
        Ok(agent)
    }

    /// A fault on a pod target: its pods chosen with the run's seed, then one fault per pod,
    /// sent to the agent on the pod's node (or, for a pod kill, a delete through the API).
    #[allow(clippy::too_many_arguments)]
    fn pod_fault(
        &mut self,
        target: &PodTarget,
        fault: &Fault,
        peers: &[String],
        duration: Duration,
        template: FaultRecord,
        faults: &mut Vec<FaultRecord>,
        journal: &mut Journal,
    ) -> Result<(), String> {
        let cluster = self.cluster.ok_or("no cluster")?.clone();
        let chosen = cluster.select(target, self.seed)?;
        journal.log(
            "pods",
            format!(
                "{}: {} chosen (mode {}, seed {}): {}",
                target.name,
                chosen.len(),
                target.mode,
                self.seed,
                chosen
                    .iter()
                    .map(ClusterPod::id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if let Fault::PodKill { grace, timeout } = fault {
            for pod in chosen {
                let mut record = template.clone();
                record.pod = Some(pod.id());
                record.applied = "sent".into();
                let (cluster, target, grace, timeout) =
                    (cluster.clone(), target.clone(), *grace, *timeout);
                let handle =
                    std::thread::spawn(move || cluster.pod_kill(&target, &pod, grace, timeout));
                faults.push(record);
                self.pod_kills.push((faults.len() - 1, handle));
            }
            return Ok(());
        }
        let (pod_peers, fixed): (Vec<&String>, Vec<&String>) = peers
            .iter()
            .partition(|p| self.pods.iter().any(|t| &t.name == *p));
        let fixed: Vec<String> = fixed.into_iter().cloned().collect();
        let peer_targets: Vec<PodTarget> = self
            .pods
            .iter()
            .filter(|t| pod_peers.contains(&&t.name))
            .cloned()
            .collect();
        let ips = if peer_targets.is_empty() {
            Vec::new()
        } else {
            self.peer_ips(&peer_targets)?
        };
        let all_peers: Vec<String> = fixed.iter().cloned().chain(ips.clone()).collect();
        let network = matches!(fault, Fault::Partition(_) | Fault::Loss { .. });
        for pod in chosen {
            let mut record = template.clone();
            record.pod = Some(pod.id());
            let container = match (&target.container, network) {
                (Some(name), false) => match pod.containers.iter().find(|(n, _)| n == name) {
                    Some((_, id)) => Some(id.clone()),
                    None => {
                        // A fault that cannot land is never skipped quietly: the scenario
                        // names a container the pod does not run.
                        let why = format!(
                            "pod {} has no running container {name} (containers: {})",
                            pod.id(),
                            pod.containers
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        record.applied = format!("not applied: {why}");
                        faults.push(record);
                        return Err(why);
                    }
                },
                // Network faults go to the pod's sandbox, whatever the container.
                _ => None,
            };
            let Some(node) = pod.node.clone() else {
                let why = format!("pod {} is not on a node", pod.id());
                record.applied = format!("not applied: {why}");
                faults.push(record);
                return Err(why);
            };
            let agent = match self.agent_on(&node, journal) {
                Ok(agent) => agent,
                Err(e) => {
                    record.applied = format!("not applied: {e}");
                    faults.push(record);
                    return Err(e);
                }
            };
            let Some(mut fault_spec) = spec(fault, None, &all_peers, duration) else {
                continue;
            };
            fault_spec.aim_at_pod(faultline_agent::spec::PodTarget {
                uid: pod.uid.clone(),
                container,
            })?;
            let peers = (!peer_targets.is_empty()).then(|| PodPeers {
                spec: fault_spec.clone(),
                fixed: fixed.clone(),
                targets: peer_targets.clone(),
                current: ips.clone(),
                failures: 0,
                // Listings begun before this fault's own are older than its peers.
                round: self.peer_watch.as_ref().map_or(0, PeerWatch::round),
            });
            if let (Some(watch), Some(_)) = (&self.peer_watch, &peers) {
                watch.follow(&peer_targets);
            }
            self.apply(
                &agent, fault_spec, fault, duration, record, peers, faults, journal,
            )
            .map_err(|e| format!("the agent on node {node} could not apply the fault: {e}"))?;
            // Pods on many nodes take a while: the leases already held are kept up meanwhile.
            self.renew(journal)?;
        }
        Ok(())
    }

    /// Records the kills' outcomes. Pod kills wait for their replacements (up to their
    /// timeout): with `interrupts`, a signal ends that wait and is returned; without, a pod
    /// kill still waiting is recorded as cut short and left to finish on its own.
    fn collect_kills(
        &mut self,
        faults: &mut [FaultRecord],
        journal: &mut Journal,
        interrupts: Option<&Interrupts>,
    ) -> Option<i32> {
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
        let mut signal = None;
        for (index, handle) in std::mem::take(&mut self.pod_kills) {
            while !handle.is_finished() && signal.is_none() {
                // The faults still held keep their leases while a replacement is waited for.
                if let Err(e) = self.renew(journal) {
                    self.errors.push(e);
                }
                match interrupts {
                    Some(i) => signal = i.wait(Duration::from_millis(100)),
                    None => break,
                }
            }
            if !handle.is_finished() {
                let record = &mut faults[index];
                record.applied = format!(
                    "applied: {} deleted; the wait for its replacement was cut short",
                    record.pod.as_deref().unwrap_or_default()
                );
                journal.log("fault", format!("pod-kill {}", record.applied));
                continue;
            }
            let result = handle
                .join()
                .unwrap_or_else(|_| Err("the pod kill thread panicked".into()));
            let record = &mut faults[index];
            let pod = record.pod.clone().unwrap_or_default();
            match result {
                Ok(killed) => {
                    record.replacement = killed.replacement.clone();
                    record.ready_after = killed.ready_after.map(|d| d.as_secs_f64());
                    record.applied = format!(
                        "applied: {pod} deleted; gone after {}; {}",
                        seconds(killed.gone_after),
                        match (&killed.replacement, killed.ready_after) {
                            (Some(by), Some(after)) =>
                                format!("{by} Ready after {:.1}s", after.as_secs_f64()),
                            _ => "no replacement Ready in time".into(),
                        }
                    );
                    journal.log("fault", format!("pod-kill {}", record.applied));
                }
                Err(e) => {
                    record.applied = format!("failed: {e}");
                    journal.log("fault", format!("pod-kill of {pod} failed: {e}"));
                    self.errors.push(format!(
                        "step {}: pod-kill of {pod} failed: {e}",
                        record.step
                    ));
                }
            }
        }
        if let Some(signal) = signal {
            journal.log(
                "run",
                format!("signal {signal}: stopped waiting for replacements"),
            );
        }
        signal
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

    /// Waits for every fault's end and records its revert as the agent verified it.
    fn settle(&mut self, faults: &mut [FaultRecord], journal: &mut Journal) {
        self.collect_kills(faults, journal, None);
        // When each fault still held was to end: one cut short (a signal, an error) is
        // reverted at once, not waited for while the others' leases run out.
        let ends: HashMap<String, Instant> = self
            .held
            .drain(..)
            .map(|h| (h.id.clone(), h.ends))
            .collect();
        for created in std::mem::take(&mut self.created) {
            let Created { record, id, agent } = created;
            let record = &mut faults[record];
            record.id = Some(id.clone());
            let now = Instant::now();
            let view = match ends
                .get(&id)
                .filter(|end| **end > now + Duration::from_secs(1))
            {
                Some(_) => agent.revert_patiently(&id),
                None => {
                    // Its duration ends on the agent's clock; give it a moment past that. An
                    // agent that does not answer is asked again until then.
                    let deadline = now + Duration::from_secs(3);
                    let mut view = agent.get(&id);
                    while (view.is_err()
                        || view
                            .as_ref()
                            .is_ok_and(|v| v.as_ref().is_some_and(|v| v.state == "active")))
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(200));
                        view = agent.get(&id);
                    }
                    match view {
                        Ok(Some(v)) if v.state == "active" => agent.revert_patiently(&id),
                        other => other,
                    }
                }
            };
            match view {
                Err(e) => {
                    record.revert = Some(format!("the agent could not be asked: {e}"));
                    journal.log("revert", format!("{id}: the agent could not be asked: {e}"));
                }
                Ok(Some(v)) => {
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
                Ok(None) => {
                    record.revert = Some("the agent no longer knows this fault".into());
                    journal.log("revert", format!("{id}: unknown to the agent"));
                }
            }
        }
        // A fault replaced when its pod peers changed, whose revert was not verified, leaves
        // its record unverified too.
        for (index, failure) in std::mem::take(&mut self.superseded) {
            journal.log("revert", failure.clone());
            faults[index].revert = Some(failure);
        }
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "not seen".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

/// `host:port` of every probe and dump scrape, for those that name a pod target.
fn pod_endpoints(scenario: &Scenario) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    let mut add = |host: &str, port: u16| {
        if scenario.pods.iter().any(|p| p.name == host)
            && !out.iter().any(|(h, p)| h == host && *p == port)
        {
            out.push((host.to_owned(), port));
        }
    };
    for probe in &scenario.probes {
        match &probe.check {
            crate::model::Check::Http { url, .. } => {
                if let Ok(u) = crate::http::Url::parse(url) {
                    add(&u.host, u.port);
                }
            }
            // The loader refuses a tcp probe of a pod target: through a port-forward it could
            // never fail.
            crate::model::Check::Tcp { .. } | crate::model::Check::Command { .. } => {}
        }
    }
    for dump in &scenario.dumps {
        if let Ok(u) = crate::http::Url::parse(&dump.url) {
            add(&u.host, u.port);
        }
    }
    out
}

/// `spec` with other peers and `left` to run.
fn with_peers(spec: &FaultSpec, new_peers: Vec<String>, left: Duration) -> FaultSpec {
    let mut spec = spec.clone();
    match &mut spec {
        FaultSpec::Partition { peers, seconds, .. } | FaultSpec::Loss { peers, seconds, .. } => {
            *peers = new_peers;
            *seconds = left.as_secs_f64();
        }
        _ => {}
    }
    spec
}

/// The agent's request for `fault` on process `pid` (none: aimed later, at a pod); none for a
/// pod kill, which no agent carries out.
fn spec(
    fault: &Fault,
    pid: Option<u32>,
    peers: &[String],
    duration: Duration,
) -> Option<FaultSpec> {
    let seconds = duration.as_secs_f64();
    Some(match fault {
        Fault::Partition(net) => FaultSpec::Partition {
            pid,
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
            pid,
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
            pid,
            cgroup: None,
            pod: None,
            seconds,
        },
        Fault::Stress { workers, load } => FaultSpec::Stress {
            pid,
            cgroup: None,
            pod: None,
            workers: *workers,
            load: *load,
            seconds,
        },
        Fault::Kill { signal, grace } => FaultSpec::Kill {
            pid,
            cgroup: None,
            pod: None,
            signal: signal.clone(),
            grace_seconds: grace.as_secs_f64(),
        },
        Fault::PodKill { .. } => return None,
    })
}
