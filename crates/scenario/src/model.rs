//! A scenario, validated: every name resolves, every duration is a duration. Made by
//! [`crate::load`]; docs/scenarios.md is the reference for the file format.

use std::path::PathBuf;
use std::time::Duration;

use crate::node::Pos;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// The directory relative paths are resolved against (the file's own).
    pub base_dir: PathBuf,
    /// `lab.hosts`, in file order.
    pub hosts: Vec<Host>,
    /// `processes`: processes already running on this machine, by name.
    pub processes: Vec<LocalProcess>,
    /// `pods`: pods of a Kubernetes cluster, by selector.
    pub pods: Vec<PodTarget>,
    /// `kubernetes`: how the cluster and its agents are reached (when there are `pods`).
    pub kubernetes: Kubernetes,
    /// `debug`: where debug files are looked up.
    pub debug: Debug,
    /// `probes`, in file order.
    pub probes: Vec<Probe>,
    /// `captures.crashes`: targets whose crashes are collected.
    pub crash_targets: Vec<String>,
    /// `captures.dumps`.
    pub dumps: Vec<DumpCapture>,
    /// `steps`.
    pub steps: Vec<Step>,
    /// `assertions`.
    pub assertions: Vec<Assertion>,
    /// `lease`: how often the runner renews its faults' lease with the agent.
    pub lease: Duration,
}

/// A lab host: a network namespace on the lab's bridge, and a command started inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Its name, resolvable by the other hosts and the probes.
    pub name: String,
    /// Program and arguments; `${hosts.NAME}` is replaced by that host's address.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// What to do when it exits.
    pub restart: Restart,
    /// A CPU limit in cores (a cgroup quota), if any.
    pub cpu: Option<f64>,
    /// Ready when this TCP port accepts connections (checked before the steps start).
    pub ready_port: Option<u16>,
    /// How long to wait for it to get ready.
    pub ready_within: Duration,
    /// Where it is declared.
    pub pos: Pos,
}

/// When a lab host's command is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never (default).
    Never,
    /// When it exits with a non-zero status or a signal.
    OnFailure,
    /// Whenever it exits.
    Always,
}

impl Restart {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Restart::Never => "never",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }
}

/// A process already running on this machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalProcess {
    /// Its name in the scenario.
    pub name: String,
    /// How to find it.
    pub find: Find,
    /// A directory its faultline-capture writes crash records to (`FAULTLINE_CRASH_DIR`).
    pub crash_dir: Option<PathBuf>,
}

/// How a local process is found.
#[derive(Debug, Clone, PartialEq)]
pub enum Find {
    /// By pid.
    Pid(u32),
    /// By a file holding its pid, read when the run starts.
    PidFile(PathBuf),
}

/// Pods of a cluster, chosen by selector: a target as a lab host or a process is.
#[derive(Debug, Clone, PartialEq)]
pub struct PodTarget {
    /// Its name in the scenario.
    pub name: String,
    /// `namespace` (or `namespaces`).
    pub namespaces: Vec<String>,
    /// A label selector; never empty.
    pub selector: String,
    /// A field selector.
    pub fields: Option<String>,
    /// How many of the matching pods a fault hits.
    pub mode: PodMode,
    /// The container that stress, pause and kill hit (by name); the whole pod if unset.
    pub container: Option<String>,
    /// Where it is declared.
    pub pos: Pos,
}

/// How many of a pod target's pods a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodMode {
    /// One, drawn with the run's seed.
    One,
    /// All of them.
    All,
    /// N of them.
    Fixed(u32),
    /// P percent of them, rounded up.
    Percent(f64),
}

impl std::fmt::Display for PodMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PodMode::One => f.write_str("one"),
            PodMode::All => f.write_str("all"),
            PodMode::Fixed(n) => write!(f, "fixed: {n}"),
            PodMode::Percent(p) => write!(f, "percent: {p}"),
        }
    }
}

/// How a scenario with `pods` reaches its cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Kubernetes {
    /// The kubeconfig context (the current one if unset; in a pod, its service account).
    pub context: Option<String>,
    /// Where the agent DaemonSet runs.
    pub agent_namespace: String,
    /// The agents' bearer token, from a file.
    pub agent_token_file: Option<PathBuf>,
    /// The CA that signed the agents' certificates (TLS), from a file.
    pub agent_ca: Option<PathBuf>,
    /// The runner's client certificate and key, for agents that demand one.
    pub agent_cert: Option<PathBuf>,
    /// The key of `agent_cert`.
    pub agent_key: Option<PathBuf>,
    /// How the agents are reached.
    pub agents: AgentRoute,
    /// Whether protected namespaces (`kube-system`, the agent's) may be targeted.
    pub allow_protected_namespaces: bool,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Self {
            context: None,
            agent_namespace: "faultline-system".into(),
            agent_token_file: None,
            agent_ca: None,
            agent_cert: None,
            agent_key: None,
            agents: AgentRoute::Auto,
            allow_protected_namespaces: false,
        }
    }
}

/// How the runner talks to the agent on a pod's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRoute {
    /// The pod IP when running inside the cluster, a port-forward otherwise.
    Auto,
    /// Through the API server's port-forward.
    PortForward,
    /// Straight to the agent pod's IP.
    PodIp,
}

impl AgentRoute {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            AgentRoute::Auto => "auto",
            AgentRoute::PortForward => "port-forward",
            AgentRoute::PodIp => "pod-ip",
        }
    }
}

/// Where debug files come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Debug {
    /// Directories with a `.build-id/` tree.
    pub dirs: Vec<PathBuf>,
    /// debuginfod servers.
    pub debuginfod: Vec<String>,
}

/// A steady-state probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Its name.
    pub name: String,
    /// What it checks.
    pub check: Check,
    /// How often.
    pub every: Duration,
    /// Where it is declared.
    pub pos: Pos,
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// An HTTP GET answered with `status` within `within`.
    Http {
        /// `http://host:port/path`; the host may be a lab host's name.
        url: String,
        /// Expected status.
        status: u16,
        /// Latency bound (also the timeout).
        within: Duration,
    },
    /// A TCP connection accepted within `within`.
    Tcp {
        /// `host:port`; the host may be a lab host's name.
        address: String,
        /// Timeout.
        within: Duration,
    },
    /// A command that exits 0 within `within`.
    Command {
        /// Program and arguments.
        run: Vec<String>,
        /// Timeout.
        within: Duration,
    },
}

/// A dump scraped at an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpCapture {
    /// Its name (files are `dumps/<name>/<n>.txt`).
    pub name: String,
    /// The endpoint: Go `/debug/pprof/goroutine?debug=2`, or faultline-capture's
    /// `/debug/faultline/tasks`.
    pub url: String,
    /// How often.
    pub every: Duration,
    /// Where it is declared.
    pub pos: Pos,
}

/// One step of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Where it is declared.
    pub pos: Pos,
    /// What it does.
    pub action: StepAction,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    /// Nothing, for a while.
    Wait(Duration),
    /// A fault on a target, lasting `duration` (a kill is instant).
    Fault(FaultStep),
    /// Steps run side by side; the group ends when the longest does.
    Parallel(Vec<Step>),
}

/// A fault step.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultStep {
    /// The lab host or local process.
    pub target: String,
    /// The fault.
    pub fault: Fault,
    /// How long it lasts (zero for a kill).
    pub duration: Duration,
}

/// The faults a scenario can inject.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Drop or reject traffic between the target and peers.
    Partition(NetOptions),
    /// Drop a share of that traffic.
    Loss {
        /// What traffic.
        net: NetOptions,
        /// Percent dropped, 1–100.
        percent: u8,
    },
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// CPU workers in the target's cgroup.
    Stress {
        /// Worker processes.
        workers: u32,
        /// Percent of the quota.
        load: u8,
    },
    /// A signal, then SIGKILL after `grace`.
    Kill {
        /// Signal name (`TERM`, `KILL`, …).
        signal: String,
        /// Grace period.
        grace: Duration,
    },
    /// A pod deleted through the API server (pod targets only), then its replacement waited
    /// for.
    PodKill {
        /// The delete's grace period; zero is `force`.
        grace: Duration,
        /// How long the replacement may take to be Ready.
        timeout: Duration,
    },
}

impl Fault {
    /// `partition`, `loss`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition(_) => "partition",
            Fault::Loss { .. } => "loss",
            Fault::Pause => "pause",
            Fault::Stress { .. } => "stress",
            Fault::Kill { .. } => "kill",
            Fault::PodKill { .. } => "pod-kill",
        }
    }

    /// A kill or a pod kill: it happens at once, and leaves nothing to revert.
    pub fn is_instant(&self) -> bool {
        is_instant_kind(self.kind())
    }
}

/// Whether a fault of this kind (as [`Fault::kind`] names it) happens at once.
pub fn is_instant_kind(kind: &str) -> bool {
    kind == "kill" || kind == "pod-kill"
}

/// Which traffic a network fault hits.
#[derive(Debug, Clone, PartialEq)]
pub struct NetOptions {
    /// Lab host names or addresses/CIDRs.
    pub peers: Vec<String>,
    /// Ports; empty for all.
    pub ports: Vec<u16>,
    /// `tcp`, `udp`, `icmp`.
    pub protocol: Option<String>,
    /// `to`, `from`, `both`.
    pub direction: String,
    /// Reject (TCP reset, ICMP unreachable) instead of drop.
    pub reject: bool,
}

/// A condition the run must meet.
#[derive(Debug, Clone, PartialEq)]
pub struct Assertion {
    /// Where it is declared.
    pub pos: Pos,
    /// What it says.
    pub check: AssertionCheck,
}

/// The kinds of assertion.
#[derive(Debug, Clone, PartialEq)]
pub enum AssertionCheck {
    /// The probe's success ratio in a phase is at least `min` (0–1).
    ProbeSuccess {
        /// Probe name.
        probe: String,
        /// When.
        phase: Phase,
        /// Least ratio.
        min: f64,
    },
    /// After every fault ends, the probe succeeds again within `within`.
    Recovers {
        /// Probe name.
        probe: String,
        /// Bound.
        within: Duration,
    },
    /// No panic (or crash record) from these targets (empty: any).
    NoPanics {
        /// Target names.
        targets: Vec<String>,
    },
    /// No data race reported by Go's race detector in these targets' output (empty: any).
    NoRaces {
        /// Target names.
        targets: Vec<String>,
    },
    /// No `leaking` group in these dump captures (empty: any).
    NoLeaks {
        /// Dump capture names.
        dumps: Vec<String>,
    },
    /// Every pod a `pod_kill` deleted (of `target`, or of any) was replaced by a Ready pod of
    /// its controller within `within`.
    Replaced {
        /// The pod target, or every pod kill.
        target: Option<String>,
        /// Bound.
        within: Duration,
    },
}

impl AssertionCheck {
    /// A short name for reports (`probe_success checkout before >= 99%`).
    pub fn title(&self) -> String {
        match self {
            AssertionCheck::ProbeSuccess { probe, phase, min } => format!(
                "probe_success {probe} {} >= {}%",
                phase.name(),
                percent(*min)
            ),
            AssertionCheck::Recovers { probe, within } => format!(
                "recovers {probe} within {}",
                humantime::format_duration(*within)
            ),
            AssertionCheck::NoPanics { targets } if targets.is_empty() => "no_panics".into(),
            AssertionCheck::NoPanics { targets } => format!("no_panics {}", targets.join(",")),
            AssertionCheck::NoRaces { targets } if targets.is_empty() => "no_races".into(),
            AssertionCheck::NoRaces { targets } => format!("no_races {}", targets.join(",")),
            AssertionCheck::NoLeaks { dumps } if dumps.is_empty() => "no_leaks".into(),
            AssertionCheck::NoLeaks { dumps } => format!("no_leaks {}", dumps.join(",")),
            AssertionCheck::Replaced { target, within } => format!(
                "replaced {}within {}",
                target.as_ref().map(|t| format!("{t} ")).unwrap_or_default(),
                humantime::format_duration(*within)
            ),
        }
    }
}

/// `0.995` → `99.5`.
pub fn percent(ratio: f64) -> String {
    let p = (ratio * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// A part of the run, for success ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the first fault starts.
    Before,
    /// While any fault is in force.
    During,
    /// After the last fault ends.
    After,
    /// The whole run.
    All,
}

impl Phase {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
            Phase::All => "all",
        }
    }
}
