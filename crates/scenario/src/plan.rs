//! A scenario as a timeline of typed actions: what `--dry-run` prints, what the runner carries
//! out, and what tests snapshot. Pure: no clock, no kernel.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::model::*;

/// The lab's network: host `i` (in file order) gets `.(i + 2)`; the bridge (where probes run
/// from) has `.1`. The range lives only inside the lab's own network namespaces, so it cannot
/// clash with the machine's own networks.
pub const LAB_NETWORK: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// The lab's prefix length.
pub const LAB_PREFIX: u8 = 24;
/// The bridge's address, where probes and dump scrapes come from.
pub const LAB_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// At most this many lab hosts.
pub const MAX_HOSTS: usize = 200;

/// What the runner will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The scenario's name.
    pub name: String,
    /// Lab hosts with their addresses and final command lines.
    pub hosts: Vec<PlannedHost>,
    /// Pod targets (chosen when each fault starts, with the seed).
    pub pods: Vec<PodTarget>,
    /// Every timed action, in time order (a stable order for equal times: file order).
    pub actions: Vec<Action>,
    /// From the first step's start to the last step's end.
    pub steps_duration: Duration,
    /// After the steps, how long the runner may wait for probes to recover (the longest
    /// `recovers.within`).
    pub tail: Duration,
    /// The seed of the run's random choices.
    pub seed: u64,
}

/// A lab host as it will be started.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedHost {
    /// Name.
    pub name: String,
    /// Address on the lab bridge.
    pub address: Ipv4Addr,
    /// Command, `${hosts.NAME}` replaced.
    pub command: Vec<String>,
    /// Environment, `${hosts.NAME}` replaced.
    pub env: Vec<(String, String)>,
    /// Restart policy.
    pub restart: Restart,
    /// CPU limit in cores.
    pub cpu: Option<f64>,
}

/// One thing done at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Offset from the start of the steps.
    pub at: Duration,
    /// The step's number: `3`, or `4.2` inside a parallel group.
    pub step: String,
    /// Its line in the file.
    pub line: u64,
    /// What.
    pub kind: ActionKind,
}

/// What an action does.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionKind {
    /// A wait step (nothing happens; listed so the timeline reads like the file).
    Wait(Duration),
    /// Apply a fault; it ends `duration` later (the agent enforces that).
    Fault {
        /// Target name.
        target: String,
        /// The fault.
        fault: Fault,
        /// Its peers as addresses (network faults): lab host names resolved.
        peers: Vec<String>,
        /// How long.
        duration: Duration,
    },
}

/// Substitutes `${hosts.NAME}` with NAME's address.
pub fn substitute(text: &str, hosts: &[(String, Ipv4Addr)]) -> String {
    let mut out = text.to_owned();
    for (name, address) in hosts {
        out = out.replace(&format!("${{hosts.{name}}}"), &address.to_string());
    }
    out
}

impl Plan {
    /// Plans `scenario` with `seed`.
    pub fn new(scenario: &Scenario, seed: u64) -> Result<Self, String> {
        if scenario.hosts.len() > MAX_HOSTS {
            return Err(format!(
                "{} lab hosts; at most {MAX_HOSTS}",
                scenario.hosts.len()
            ));
        }
        let addresses: Vec<(String, Ipv4Addr)> = scenario
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let [a, b, c, _] = LAB_NETWORK.octets();
                (h.name.clone(), Ipv4Addr::new(a, b, c, (i + 2) as u8))
            })
            .collect();
        let hosts = scenario
            .hosts
            .iter()
            .zip(&addresses)
            .map(|(h, (_, address))| PlannedHost {
                name: h.name.clone(),
                address: *address,
                command: h
                    .command
                    .iter()
                    .map(|a| substitute(a, &addresses))
                    .collect(),
                env: h
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), substitute(v, &addresses)))
                    .collect(),
                restart: h.restart,
                cpu: h.cpu,
            })
            .collect();
        let mut actions = Vec::new();
        let steps_duration = schedule(
            &scenario.steps,
            Duration::ZERO,
            "",
            &addresses,
            &mut actions,
        );
        actions.sort_by_key(|a| a.at);
        let tail = scenario
            .assertions
            .iter()
            .filter_map(|a| match &a.check {
                AssertionCheck::Recovers { within, .. } => Some(*within),
                _ => None,
            })
            .max()
            .unwrap_or_default();
        Ok(Self {
            name: scenario.name.clone(),
            hosts,
            pods: scenario.pods.clone(),
            actions,
            steps_duration,
            tail,
            seed,
        })
    }

    /// The faults, in time order.
    pub fn faults(&self) -> impl Iterator<Item = &Action> {
        self.actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Fault { .. }))
    }
}

/// Lays `steps` out from `start`; returns where they end.
fn schedule(
    steps: &[Step],
    start: Duration,
    prefix: &str,
    hosts: &[(String, Ipv4Addr)],
    actions: &mut Vec<Action>,
) -> Duration {
    let mut now = start;
    for (i, step) in steps.iter().enumerate() {
        now = schedule_step(step, &format!("{prefix}{}", i + 1), now, hosts, actions);
    }
    now
}

/// Lays one step out at `now`, numbered `number`; returns where it ends.
fn schedule_step(
    step: &Step,
    number: &str,
    now: Duration,
    hosts: &[(String, Ipv4Addr)],
    actions: &mut Vec<Action>,
) -> Duration {
    let action = |kind| Action {
        at: now,
        step: number.to_owned(),
        line: step.pos.line,
        kind,
    };
    match &step.action {
        StepAction::Wait(d) => {
            actions.push(action(ActionKind::Wait(*d)));
            now + *d
        }
        StepAction::Fault(f) => {
            let peers = match &f.fault {
                Fault::Partition(net) | Fault::Loss { net, .. } => net
                    .peers
                    .iter()
                    .map(|p| {
                        hosts
                            .iter()
                            .find(|(name, _)| name == p)
                            .map_or_else(|| p.clone(), |(_, a)| a.to_string())
                    })
                    .collect(),
                _ => Vec::new(),
            };
            actions.push(action(ActionKind::Fault {
                target: f.target.clone(),
                fault: f.fault.clone(),
                peers,
                duration: f.duration,
            }));
            now + f.duration
        }
        StepAction::Parallel(branches) => {
            // Every branch starts now; the group ends with the longest.
            branches
                .iter()
                .enumerate()
                .map(|(j, branch)| {
                    schedule_step(branch, &format!("{number}.{}", j + 1), now, hosts, actions)
                })
                .max()
                .unwrap_or(now)
        }
    }
}

fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// One line describing a fault, as the plan and the reports show it.
pub fn describe_fault(target: &str, fault: &Fault, peers: &[String], duration: Duration) -> String {
    let net = |n: &NetOptions| {
        let arrow = match n.direction.as_str() {
            "to" => "->",
            "from" => "<-",
            _ => "<->",
        };
        let mut s = format!("{target} {arrow} {}", n.peers.join(","));
        if peers != n.peers.as_slice() {
            s.push_str(&format!(" ({})", peers.join(",")));
        }
        if let Some(p) = &n.protocol {
            s.push_str(&format!(" {p}"));
        }
        if !n.ports.is_empty() {
            let ports: Vec<String> = n.ports.iter().map(u16::to_string).collect();
            s.push_str(&format!(" port {}", ports.join(",")));
        }
        s
    };
    match fault {
        Fault::Partition(n) => format!(
            "partition {}, {} for {}",
            net(n),
            if n.reject { "reject" } else { "drop" },
            secs(duration)
        ),
        Fault::Loss { net: n, percent } => {
            format!("loss {percent}% {} for {}", net(n), secs(duration))
        }
        Fault::Pause => format!("pause {target} for {}", secs(duration)),
        Fault::Stress { workers, load } => format!(
            "stress {target}: {workers} worker{} at {load}% of its CPU quota for {}",
            if *workers == 1 { "" } else { "s" },
            secs(duration)
        ),
        Fault::PodKill { grace, timeout } => format!(
            "pod-kill {target}: delete {}, wait up to {} for the replacement to be Ready",
            if grace.is_zero() {
                "at once (force)".to_owned()
            } else {
                format!("with a {} grace period", secs(*grace))
            },
            secs(*timeout)
        ),
        Fault::Kill { signal, grace } => {
            // Written `TERM`, `SIGTERM` or `15`: shown as `SIGTERM` or `signal 15`.
            let name = signal.trim_start_matches("SIG");
            let shown = if name.bytes().all(|b| b.is_ascii_digit()) {
                format!("signal {name}")
            } else {
                format!("SIG{name}")
            };
            if name == "KILL" || name == "9" {
                format!("kill {target} with {shown}")
            } else {
                format!("kill {target} with {shown}, SIGKILL after {}", secs(*grace))
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let faults = self.faults().count();
        writeln!(
            f,
            "plan: {} ({} steps, {faults} fault{}, seed {})",
            self.name,
            secs(self.steps_duration),
            if faults == 1 { "" } else { "s" },
            self.seed
        )?;
        if !self.hosts.is_empty() {
            writeln!(
                f,
                "lab: {} hosts on {LAB_NETWORK}/{LAB_PREFIX}, probes from {LAB_GATEWAY}",
                self.hosts.len()
            )?;
            for h in &self.hosts {
                write!(
                    f,
                    "  {:<12} {:<11} {}",
                    h.name,
                    h.address,
                    h.command.join(" ")
                )?;
                if h.restart != Restart::Never {
                    write!(f, "  [restart {}]", h.restart.name())?;
                }
                if let Some(cpu) = h.cpu {
                    write!(f, "  [cpu {cpu} cores]")?;
                }
                writeln!(f)?;
            }
        }
        if !self.pods.is_empty() {
            writeln!(f, "pods (chosen when each fault starts, with the seed):")?;
            for p in &self.pods {
                write!(
                    f,
                    "  {:<12} {} in {}, mode {}",
                    p.name,
                    p.selector,
                    p.namespaces.join(","),
                    p.mode
                )?;
                if let Some(fields) = &p.fields {
                    write!(f, ", fields {fields}")?;
                }
                if let Some(c) = &p.container {
                    write!(f, ", container {c}")?;
                }
                writeln!(f)?;
            }
        }
        writeln!(f, "timeline:")?;
        for a in &self.actions {
            let what = match &a.kind {
                ActionKind::Wait(d) => format!("wait {}", secs(*d)),
                ActionKind::Fault {
                    target,
                    fault,
                    peers,
                    duration,
                } => describe_fault(target, fault, peers, *duration),
            };
            // Line 0: a step with no line of its own (a translated Chaos Mesh manifest).
            let line = if a.line == 0 {
                "-".to_owned()
            } else {
                a.line.to_string()
            };
            writeln!(
                f,
                "  +{:<7} step {:<5} line {:<4} {what}",
                secs(a.at),
                a.step,
                line
            )?;
        }
        writeln!(f, "  +{:<7} end of steps", secs(self.steps_duration))?;
        if !self.tail.is_zero() {
            writeln!(f, "  then up to {} for probes to recover", secs(self.tail))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_the_same_however_they_were_written() {
        let kill = |signal: &str| Fault::Kill {
            signal: signal.into(),
            grace: Duration::from_secs(2),
        };
        let shown = |signal| describe_fault("api", &kill(signal), &[], Duration::ZERO);
        assert_eq!(shown("TERM"), "kill api with SIGTERM, SIGKILL after 2s");
        assert_eq!(shown("SIGTERM"), "kill api with SIGTERM, SIGKILL after 2s");
        assert_eq!(shown("15"), "kill api with signal 15, SIGKILL after 2s");
        assert_eq!(shown("KILL"), "kill api with SIGKILL");
        assert_eq!(shown("9"), "kill api with signal 9");
    }
}
