//! Carrying a plan out: the lab, the agent and its leases, the timeline, probes and scrapes,
//! the reverts and their checks, then the evidence for the verdict.
//!
//! Everything the run starts is owned by a value whose drop removes it (the lab, the
//! in-process agent), and everything lasting is also anchored in the kernel (parent-death
//! signals, owner tables), so an error, a panic or a SIGKILL leaves nothing in force.
//!
//! A run goes through three phases, a module each, in [`run_on`]:
//!
//! 1. `setup`: the run directory, the sweep of what a killed run left, the agent, the lab,
//!    local processes, the pods and their port-forwards;
//! 2. `timeline` (with `pods` for pod targets and their peers, `settle` for the end): the
//!    steps at their times, the tail in which probes recover, every fault settled and its
//!    revert read back;
//! 3. `evidence`: the teardown, then crashes and leaks gathered and judged.
//!
//! What the phases share: `agent` (local or remote, one interface), `journal` (the events),
//! `requests` (a scenario's faults as the agent's requests) and [`RunState`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use faultline_agent::{AgentAddr, Helpers};
use faultline_fault::Interrupts;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::model::Scenario;
use crate::plan::Plan;
use crate::probe::Observed;
use crate::verdict::{Evidence, Judged};

mod agent;
mod evidence;
mod journal;
mod pods;
mod requests;
mod settle;
mod setup;
mod timeline;

use journal::Journal;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where everything the run produces goes.
    pub out_dir: PathBuf,
    /// The faultline binary's helpers (guards, stress workers, namespace holders).
    pub helpers: Helpers,
    /// The in-process agent's journal directory.
    pub state_dir: PathBuf,
    /// A running agent to use instead of the in-process one: its address, and the token and
    /// TLS to reach it with.
    pub agent: Option<(AgentAddr, faultline_agent::Credentials)>,
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

/// What every phase adds to: the journal, what the start-up sweeps removed, and the first
/// reason the run could not be carried out (after which nothing new is started, and
/// everything started is still ended and reported).
struct RunState {
    journal: Journal,
    swept: Vec<String>,
    infra: Option<String>,
}

impl RunState {
    /// The run cannot be carried out (the first reason is kept).
    fn fail(&mut self, why: impl Into<String>) {
        self.infra.get_or_insert_with(|| why.into());
    }

    fn failed(&self) -> bool {
        self.infra.is_some()
    }

    /// Something a start-up sweep removed.
    fn swept(&mut self, line: String) {
        self.journal.log("sweep", line.clone());
        self.swept.push(line);
    }
}

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
    let mut state = RunState {
        journal: Journal {
            zero: None,
            start: Instant::now(),
            entries: Vec::new(),
            progress: options.progress,
        },
        swept: Vec::new(),
        infra: None,
    };
    let cluster = cluster.as_ref();
    let mut setup = setup::set_up(scenario, plan, options, cluster, &mut state);
    let steps = timeline::steps(scenario, plan, &mut setup, cluster, interrupts, &mut state);
    let residue = evidence::tear_down(plan, &mut setup, &mut state);
    evidence::judge(scenario, &setup, cluster, steps, residue, started_at, state)
}
