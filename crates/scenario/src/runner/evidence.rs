//! The last phase of a run: what it started ended (the in-process agent shut down, reverting
//! what it still held; the lab torn down and its residue named), then the evidence gathered —
//! crashes from the targets' output, crash directories and restarted pods' logs, leak trends
//! from the scraped dumps — and judged into the verdict.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::agent::Agent;
use super::setup::Setup;
use super::timeline::Steps;
use super::{RunOutcome, RunState, Verdict};
use crate::analysis::{self, CrashSource};
use crate::cluster::Cluster;
use crate::model::Scenario;
use crate::plan::Plan;
use crate::verdict::{self, Evidence};

/// Ends what the run started; returns what the lab's teardown could not remove.
pub(super) fn tear_down(plan: &Plan, setup: &mut Setup, state: &mut RunState) -> Vec<String> {
    let journal = &mut state.journal;
    if let Some(Agent::Local(local)) = setup.agent.take().and_then(|a| Arc::try_unwrap(a).ok()) {
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
                setup.lab.as_ref().map_or(0, |l| l.starts(&h.name)),
            )
        })
        .collect();
    let mut residue = Vec::new();
    if let Some(lab) = setup.lab.take() {
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
    residue
}

/// Where each crash target's crashes may be found: the restarted pods' saved logs (only when
/// the steps ran: before, there was no run for a restart to be part of), lab hosts' stderr and
/// crash directories, local processes' crash directories.
fn crash_sources(
    scenario: &Scenario,
    setup: &Setup,
    cluster: Option<&Arc<dyn Cluster>>,
    steps: &mut Steps,
    state: &mut RunState,
    notes: &mut Vec<String>,
) -> Vec<CrashSource> {
    let mut sources = Vec::new();
    let on_cluster = !scenario.pods.is_empty();
    if let (Some(cluster), Some(mut pod_logs)) =
        (cluster.filter(|_| on_cluster), steps.watched.take())
    {
        for line in pod_logs.look(cluster.as_ref(), true) {
            state.journal.log("pods", line);
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
    let out_dir = &setup.options.out_dir;
    let targets = setup
        .crash_targets
        .iter()
        .filter(|t| !scenario.pods.iter().any(|p| &p.name == *t));
    sources.extend(targets.map(|t| {
        if scenario.hosts.iter().any(|h| &h.name == t) {
            CrashSource {
                target: t.clone(),
                stderr: Some(PathBuf::from(format!("hosts/{t}/stderr.log"))),
                crash_dir: Some(out_dir.join("hosts").join(t).join("crashes")),
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
    sources
}

/// The evidence of the run, judged.
pub(super) fn judge(
    scenario: &Scenario,
    setup: &Setup,
    cluster: Option<&Arc<dyn Cluster>>,
    mut steps: Steps,
    residue: Vec<String>,
    started_at: SystemTime,
    mut state: RunState,
) -> RunOutcome {
    let out_dir = &setup.options.out_dir;
    let locator = analysis::locator(&scenario.debug);
    let mut notes = Vec::new();
    let sources = crash_sources(scenario, setup, cluster, &mut steps, &mut state, &mut notes);
    let crashes = analysis::crashes(&sources, out_dir, &locator);
    let races = analysis::races(&sources, out_dir);
    let captured = analysis::leaks(&steps.observed.scrapes, out_dir, &locator);
    notes.extend(captured.notes);
    let evidence = Evidence {
        probes: steps.observed.probes.clone(),
        faults: steps.faults,
        end: steps.end,
        crashes,
        races,
        leaks: captured.groups,
        captures: captured.captures,
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
    } else if state.failed() {
        Verdict::InfrastructureError
    } else if judged.iter().all(|j| j.passed) {
        Verdict::Passed
    } else {
        Verdict::Failed
    };
    RunOutcome {
        verdict,
        infrastructure_error: state.infra,
        started_at,
        events: state.journal.into_events(started_at),
        evidence,
        observed: steps.observed,
        judged,
        residue,
        swept: state.swept,
        notes,
    }
}
