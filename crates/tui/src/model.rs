//! What the screen shows, as plain values: the sources fill them in, the views draw them.

use std::time::Instant;

use faultline_agent::spec::FaultView;

/// How many samples a sparkline keeps (one per refresh).
pub const HISTORY: usize = 60;

/// A process (or lab host) that faults can be aimed at.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetRow {
    /// The agent that can fault it (index into the app's agents).
    pub agent: usize,
    /// Its pid.
    pub pid: u32,
    /// The command name, or the lab host's name.
    pub name: String,
    /// The lab host's address, when it is one.
    pub address: Option<String>,
    /// Process state (`R`, `S`, `T`…) when it can be read here.
    pub state: Option<char>,
    /// CPU use in cores over the last refresh, when it can be read here.
    pub cpu: Option<f64>,
    /// OS threads.
    pub threads: Option<u32>,
    /// Tasks or goroutines in its latest dump, when it is scraped.
    pub tasks: Option<u64>,
    /// Recent task counts (or thread counts when it is not scraped), oldest first.
    pub history: Vec<u64>,
    /// Whether it shares the agent's network namespace (network faults there are refused).
    pub in_agent_netns: bool,
    /// The pod it is, with `--kube` (its `pid` is then only a row key, not a process).
    pub pod: Option<PodInfo>,
}

/// A pod as the Targets view shows it with `--kube`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// Its UID: what its node's agent finds it by.
    pub uid: String,
    /// Its node.
    pub node: String,
    /// `Running`, `Pending`…
    pub phase: String,
    /// Whether it is Ready.
    pub ready: bool,
    /// Restarts of its containers, summed.
    pub restarts: u32,
}

/// A fault an agent reports, and when it was seen.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRow {
    /// Which agent holds it.
    pub agent: usize,
    /// What the agent said.
    pub view: FaultView,
    /// When the agent said it (for the countdown between refreshes).
    pub seen: Instant,
    /// When it was first seen ended (it fades out after a while).
    pub ended: Option<Instant>,
    /// Whether this screen created it (and renews its lease).
    pub ours: bool,
}

impl FaultRow {
    /// Whether it is still in force.
    pub fn active(&self) -> bool {
        self.view.state == "active"
    }

    /// Seconds left at `now`, counting down from what the agent last said.
    pub fn seconds_left(&self, now: Instant) -> Option<f64> {
        let left = self.view.seconds_left?;
        Some((left - now.saturating_duration_since(self.seen).as_secs_f64()).max(0.0))
    }
}

/// One frame of a stack on screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameLine {
    /// `function at file:line`.
    pub text: String,
    /// The service's own code (highlighted).
    pub own: bool,
    /// Inlined into the frame below it.
    pub inlined: bool,
    /// The source line, when the file is readable here.
    pub source: Option<String>,
}

/// A crash: a crash record or a panic in a log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrashRow {
    /// The target it came from.
    pub target: String,
    /// `rust panic`, `go panic`, `crash record`…
    pub kind: String,
    /// The panic message.
    pub message: String,
    /// The innermost frame of the service's own code.
    pub top_frame: String,
    /// Where it was found.
    pub file: String,
    /// The stack, innermost first.
    pub frames: Vec<FrameLine>,
}

/// A group of tasks or goroutines with the same stack, from one dump source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskGroupRow {
    /// The dump source (a target's name).
    pub source: String,
    /// Tasks in the latest dump.
    pub count: u64,
    /// Counts over the retained dumps, oldest first.
    pub history: Vec<u64>,
    /// `leaking`, `growing`, `stable` or `draining`.
    pub verdict: String,
    /// Theil–Sen slope, tasks per minute.
    pub slope_per_min: f64,
    /// Mann-Kendall p-value.
    pub p_value: f64,
    /// The representative task's state (`chan receive`, `idle`…).
    pub state: String,
    /// The representative stack, innermost first.
    pub frames: Vec<FrameLine>,
    /// The first frame of the service's own code, or the top one.
    pub top_frame: String,
    /// Tasks of the latest dump the runtime proved leaked (Go 1.26 and later).
    pub proven_leaked: u64,
    /// Share of a dump's members still there in the next, averaged (`None`: no task ids).
    pub stays: Option<f64>,
    /// How long the oldest member has been in the group, seconds (`None`: no task ids).
    pub oldest_seen_seconds: Option<f64>,
    /// Why the verdict is not the count trend's alone.
    pub why: Option<String>,
}

/// The latest result of a scenario's probe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeRow {
    /// Its name.
    pub name: String,
    /// Whether the latest check passed (`None` before the first).
    pub ok: Option<bool>,
    /// Why the latest failed.
    pub error: Option<String>,
}

/// An agent this screen talks to.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStatus {
    /// How it is reached (`unix:/run/faultline/agent.sock`, `in-process`).
    pub name: String,
    /// Whether its last answer came back.
    pub connected: bool,
    /// The last error, while it does not answer.
    pub error: Option<String>,
    /// Lease renewals: the last failure, if the last renewal failed.
    pub lease_error: Option<String>,
}

impl AgentStatus {
    /// An agent not heard from yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            connected: false,
            error: None,
            lease_error: None,
        }
    }
}

/// A sparkline of `values` in `width` cells, scaled to their maximum.
pub fn sparkline(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let shown = &values[values.len().saturating_sub(width)..];
    let max = shown.iter().copied().max().unwrap_or(0);
    let min = shown.iter().copied().min().unwrap_or(0);
    shown
        .iter()
        .map(|&v| {
            if max == min {
                if max == 0 { BARS[0] } else { BARS[3] }
            } else {
                let scaled = (v - min) * 7 / (max - min);
                BARS[usize::try_from(scaled).unwrap_or(7).min(7)]
            }
        })
        .collect()
}

/// Appends `value` to `history`, keeping the last [`HISTORY`].
pub fn push_history(history: &mut Vec<u64>, value: u64) {
    history.push(value);
    if history.len() > HISTORY {
        let extra = history.len() - HISTORY;
        history.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_range_shown() {
        assert_eq!(sparkline(&[0, 1, 2, 3, 4, 5, 6, 7], 8), "▁▂▃▄▅▆▇█");
        assert_eq!(sparkline(&[5, 5, 5], 8), "▄▄▄");
        assert_eq!(sparkline(&[0, 0], 8), "▁▁");
        assert_eq!(sparkline(&[1, 2, 3, 100], 2), "▁█");
        assert_eq!(sparkline(&[], 8), "");
    }

    #[test]
    fn history_keeps_the_latest() {
        let mut h = Vec::new();
        for i in 0..100 {
            push_history(&mut h, i);
        }
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0], 40);
    }
}
