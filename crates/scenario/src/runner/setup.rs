//! The first phase of a run: the run directory, the sweep of what a killed run left, the
//! agent (in-process, or a running one), the lab and its hosts ready, the local processes
//! found, and on a cluster the pods listed (each target must match some) and the probes'
//! and scrapes' port-forwards opened. The first thing that fails is the run's infrastructure
//! error, and nothing after it is started.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use faultline_agent::{LocalAgent, Policy};

use super::agent::Agent;
use super::{RunOptions, RunState};
use crate::cluster::{Cluster, ClusterPod};
use crate::lab::{Lab, LabOptions};
use crate::model::{Find, Scenario};
use crate::plan::Plan;
use crate::pod_logs::PodLogs;

/// What the run has started, for the steps to use and the teardown to end.
pub(super) struct Setup {
    /// The run's options, its directory made absolute (hosts run in the scenario's
    /// directory and get paths inside it).
    pub(super) options: RunOptions,
    /// The agent of local targets (none on a cluster).
    pub(super) agent: Option<Arc<Agent>>,
    /// The lab, if the scenario has hosts.
    pub(super) lab: Option<Lab>,
    /// The scenario's local processes, by name.
    pub(super) local_pids: Vec<(String, u32)>,
    /// Pod targets' ports forwarded to this machine, for probes and scrapes.
    pub(super) forwards: Vec<(String, u16, SocketAddr)>,
    /// The targets whose crashes are looked for.
    pub(super) crash_targets: Vec<String>,
    /// The crash targets' pods, their restart counts noted now, so a restart during the run
    /// can be told apart from an older one.
    pub(super) pod_logs: PodLogs,
}

/// Starts what `scenario` needs; what could not be started is in `state`.
pub(super) fn set_up(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    cluster: Option<&Arc<dyn Cluster>>,
    state: &mut RunState,
) -> Setup {
    let mut options = options.clone();
    match std::fs::create_dir_all(&options.out_dir)
        .and_then(|()| std::path::absolute(&options.out_dir))
    {
        Ok(dir) => options.out_dir = dir,
        Err(e) => state.fail(format!("{}: {e}", options.out_dir.display())),
    }

    // Leftovers of an earlier run that was killed: its lab cgroups.
    if let Some(root) = faultline_fault::lab::CgroupRoot::host() {
        for line in faultline_fault::lab::sweep_lab_cgroups(&root) {
            state.swept(line);
        }
    }

    let on_cluster = !scenario.pods.is_empty();
    if on_cluster && cluster.is_none() {
        state.fail("this scenario's targets are pods: it needs a cluster");
    }
    let agent = if state.failed() || on_cluster {
        None
    } else {
        start_agent(&options, state).map(Arc::new)
    };
    let lab = start_lab(scenario, plan, &options, state);
    let local_pids = find_processes(scenario, state);

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
    if let Some(cluster) = cluster.filter(|_| on_cluster && !state.failed()) {
        list_pods(
            scenario,
            cluster.as_ref(),
            &crash_targets,
            &mut pod_logs,
            state,
        );
        forwards = forward(scenario, cluster.as_ref(), state);
    }
    Setup {
        options,
        agent,
        lab,
        local_pids,
        forwards,
        crash_targets,
        pod_logs,
    }
}

/// The agent of local targets: the one `options` names, if it answers, else one in-process
/// (its start-up sweep is the run's too).
fn start_agent(options: &RunOptions, state: &mut RunState) -> Option<Agent> {
    match &options.agent {
        Some((addr, credentials)) => {
            let client = credentials.client(addr.clone());
            match client.list() {
                Ok(_) => {
                    state
                        .journal
                        .log("run", format!("using the agent at {addr}"));
                    Some(Agent::Remote(client))
                }
                Err(e) => {
                    state.fail(format!("the agent at {addr} is unreachable: {e}"));
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
                    state.swept(line);
                }
                Some(Agent::Local(agent))
            }
            Err(e) => {
                state.fail(format!("start the in-process agent: {e}"));
                None
            }
        },
    }
}

/// The lab of the plan's hosts, each waited for on its ready port.
fn start_lab(
    scenario: &Scenario,
    plan: &Plan,
    options: &RunOptions,
    state: &mut RunState,
) -> Option<Lab> {
    if state.failed() || plan.hosts.is_empty() {
        return None;
    }
    let lab_options = LabOptions {
        holder: vec![
            options.helpers.exe.display().to_string(),
            "__hold".to_owned(),
        ],
        out_dir: options.out_dir.clone(),
        base_dir: scenario.base_dir.clone(),
    };
    let lab = match Lab::start(&plan.hosts, &lab_options) {
        Ok(lab) => lab,
        Err(e) => {
            state.fail(format!("the lab could not start: {e}"));
            return None;
        }
    };
    state.journal.log(
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
    for host in &scenario.hosts {
        if state.failed() {
            break;
        }
        if let Some(port) = host.ready_port {
            let progress = state.journal.progress;
            let waiting = |waited: Duration| {
                if progress {
                    eprintln!(
                        "faultline run:    setup lab: waiting for {} on port {port} ({}s of {})",
                        host.name,
                        waited.as_secs(),
                        humantime::format_duration(host.ready_within)
                    );
                }
            };
            match lab.wait_ready(&host.name, port, host.ready_within, waiting) {
                Ok(took) => state.journal.log(
                    "lab",
                    format!(
                        "{} ready on port {port} after {} ms",
                        host.name,
                        took.as_millis()
                    ),
                ),
                Err(e) => state.fail(format!("the lab could not start: {e}")),
            }
        }
    }
    Some(lab)
}

/// The scenario's local processes, by pid or pid file; each must be running.
fn find_processes(scenario: &Scenario, state: &mut RunState) -> Vec<(String, u32)> {
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
            Ok(pid) if Path::new(&format!("/proc/{pid}")).exists() => {
                local_pids.push((process.name.clone(), pid));
            }
            Ok(pid) => state.fail(format!("process {}: no process {pid}", process.name)),
            Err(e) => state.fail(format!("process {}: {e}", process.name)),
        }
    }
    local_pids
}

/// Each pod target listed: it must match some pods; a crash target's restart counts are
/// noted.
fn list_pods(
    scenario: &Scenario,
    cluster: &dyn Cluster,
    crash_targets: &[String],
    pod_logs: &mut PodLogs,
    state: &mut RunState,
) {
    state
        .journal
        .log("run", format!("on {}", cluster.describe()));
    for target in &scenario.pods {
        match cluster.pods(target) {
            Ok(pods) if pods.is_empty() => state.fail(format!(
                "pods {}: {} in {} matches no pod",
                target.name,
                target.selector,
                target.namespaces.join(", ")
            )),
            Ok(pods) => {
                state.journal.log(
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
            Err(e) => state.fail(format!("pods {}: {e}", target.name)),
        }
    }
}

/// Probes and dump scrapes that name a pod target reach it through a port-forward.
fn forward(
    scenario: &Scenario,
    cluster: &dyn Cluster,
    state: &mut RunState,
) -> Vec<(String, u16, SocketAddr)> {
    let mut forwards = Vec::new();
    for (host, port) in pod_endpoints(scenario) {
        if state.failed() {
            break;
        }
        let Some(target) = scenario.pods.iter().find(|p| p.name == host) else {
            continue;
        };
        match cluster.reach(target, port) {
            Ok(local) => {
                state.journal.log(
                    "pods",
                    format!("{host}:{port} forwarded to {local} through the API server"),
                );
                forwards.push((host, port, local));
            }
            Err(e) => state.fail(format!("reach {host}:{port}: {e}")),
        }
    }
    forwards
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
