//! `faultline`: the one binary. Thin glue over the libraries: parse arguments, call, present,
//! and map failures to the exit codes documented in docs/cli.md.

mod agent;
mod analyze;
mod certs;
mod core_handler;
mod crash;
mod dumps;
mod exit;
mod inject;
mod input;
mod kube;
mod leaks;
mod native;
mod output;
mod run;
mod store;
mod symbolize;
mod tui;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::Failure;

/// Chaos and crash diagnosis for Go and Rust services: inject faults whose lifetimes the kernel
/// enforces; symbolize crashes of stripped binaries offline, against debug files found by GNU
/// build-id; group and diff task dumps; find leaking task groups.
///
/// Exit codes: 0 done, 1 failed, 2 bad usage or input, 3 no debug file found, 4 a task group
/// is leaking (docs/cli.md).
#[derive(Debug, Parser)]
#[command(name = "faultline", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read crash records and task dumps (Go tracebacks and goroutine dumps): symbolize a
    /// crash, group a dump's tasks by stack, diff two dumps.
    Analyze(AnalyzeArgs),
    /// Find leaking task groups: the stacks whose goroutine or task count keeps growing across
    /// dumps (saved files, or a live endpoint sampled with --scrape). Exit 4 when one leaks.
    Leaks(LeaksArgs),
    /// Apply a fault to a local process (or, with --pod, to a pod through the agent on its
    /// node): kill, pause, partition, loss or stress; or delete pods with pod-kill. It lasts
    /// --for, or until Ctrl-C, and goes away with this process (or the agent holding it)
    /// whatever happens to it.
    Inject(InjectArgs),
    /// Run the node agent: hold faults for clients over an HTTP API, with leases, a journal,
    /// and lifetimes the kernel enforces. Stops (reverting everything) on SIGTERM or Ctrl-C.
    Agent(AgentArgs),
    /// List or revert the faults an agent holds.
    #[command(subcommand)]
    Faults(FaultsCommand),
    /// Run a scenario (or a Chaos Mesh manifest): start its lab or reach its pods, inject its
    /// faults on a timeline, probe the steady state, capture crashes and dumps, revert
    /// everything and check each revert, then judge the assertions. Exit 0 passed, 1 an assertion failed, 2 invalid scenario, 3 a revert could
    /// not be verified, 4 infrastructure error.
    Run(RunArgs),
    /// The SRE's screen: targets, faults with countdowns and packet counters, crashes
    /// symbolized, task groups and their leak verdicts; inject and revert from the keyboard.
    /// Talks to agents (the local one by default, or one started in-process), or opens a
    /// scenario's lab with --scenario.
    Tui(TuiArgs),
    /// (internal) hold a lab network namespace until stdin closes: started by `run`.
    #[command(name = "__hold", hide = true)]
    Hold,
    /// (internal) thaw a frozen cgroup when its lease pipe closes: started by `inject pause
    /// --cgroup`.
    #[command(name = "__thaw-guard", hide = true)]
    ThawGuard { cgroup: PathBuf, deadline_ms: u64 },
    /// (internal) a CPU stress worker: started by `inject stress`.
    #[command(name = "__stress-worker", hide = true)]
    StressWorker {
        busy_fraction: f64,
        deadline_ms: u64,
    },
    /// (internal) resume a paused process when its lease pipe closes: started by `inject pause`.
    #[command(name = "__resume-guard", hide = true)]
    ResumeGuard { pid: u32, deadline_ms: u64 },
    /// Symbolize module-relative addresses, like llvm-symbolizer.
    Symbolize(SymbolizeArgs),
    /// Manage a store of debug files indexed by GNU build-id.
    #[command(subcommand)]
    DebugStore(StoreCommand),
    /// What `/proc/sys/kernel/core_pattern` pipes a core into: keeps a small core (every
    /// note, each mapped file's first page, a window of each thread's stack) in DIR for
    /// `faultline analyze`, within a count and size cap.
    CoreHandler(CoreHandlerArgs),
    /// Certificates for the agent's TLS.
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a CA, an agent certificate and a client certificate in DIR (ca.crt, ca.key,
    /// agent.crt, agent.key, client.crt, client.key) for a quick start; never overwrites.
    Init {
        /// Where the files go (made if missing).
        dir: PathBuf,
        /// More names for the agent's certificate (DNS names or IP addresses), besides
        /// localhost, 127.0.0.1, ::1 and faultline-agent; repeatable.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// How long the agent's and the client's certificates are valid, in days (the CA's
        /// ten times as long).
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Make the agent's and client's certificates expired already (tests of the refusal).
        #[arg(long, hide = true)]
        expired: bool,
    },
}

#[derive(Debug, clap::Args)]
struct CoreHandlerArgs {
    /// Where the small cores go (made if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The crashed process (`%P`, its pid in the initial namespace). Informational: the core
    /// on standard input is the truth.
    #[arg(long)]
    pid: Option<u32>,
    /// The thread that took the signal (`%i`). Informational.
    #[arg(long)]
    tid: Option<u32>,
    /// The signal (`%s`). Informational.
    #[arg(long)]
    signal: Option<u32>,
    /// When, in seconds since the epoch (`%t`). Names the file.
    #[arg(long)]
    time: Option<u64>,
    /// The executable's path (`%E`, with `!` for `/`). Informational.
    #[arg(long)]
    exe: Option<String>,
    /// Bytes of the crashing thread's stack kept above its stack pointer.
    #[arg(long, value_name = "SIZE", default_value = "64K", value_parser = store::parse_size)]
    stack_window: u64,
    /// Bytes of every other thread's stack kept above its stack pointer.
    #[arg(long, value_name = "SIZE", default_value = "16K", value_parser = store::parse_size)]
    other_stack_window: u64,
    /// The most cores kept in DIR; the oldest go first.
    #[arg(long, default_value_t = 100)]
    max_files: usize,
    /// The most bytes the cores in DIR may take; the oldest go first.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = store::parse_size)]
    max_bytes: u64,
    /// Keep only the small core, not also a minidump of it (`.dmp`, for Sentry and
    /// minidump-stackwalk).
    #[arg(long)]
    no_minidump: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The scenario file (YAML; see docs/scenarios.md).
    scenario: PathBuf,
    /// Print the plan (every action with its time offset and target) and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also write the JUnit XML report here (one testcase per assertion).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write the JSON journal here (every action, probe result and revert).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the human report here: Markdown, or HTML for a `.html` name.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The run directory: reports, host logs, crash records, raw dumps
    /// (default `faultline-runs/<scenario>-<time>`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The seed that chooses which pods a fault on a pod target hits (recorded in the plan and
    /// the reports, so a run can be replayed). Default: the current Unix time.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Use this running agent (`unix:PATH`, `tcp:IP:PORT`) instead of one in-process.
    #[arg(long, value_name = "ADDR")]
    agent: Option<String>,
    /// The agent's bearer token (for `tcp:`, and for the agents of a scenario's pods).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The CA that signed the agents' certificates (PEM): TLS to tcp: agents and to a
    /// scenario's pods' agents (default: the scenario's `kubernetes.agent_ca`).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), for agents that demand one (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// This client's private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// For a scenario with `pods`: the kubeconfig context (default: the scenario's
    /// `kubernetes.context`, else the current one).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// For a Chaos Mesh manifest: allow pods of kube-system and faultline-system (a scenario
    /// says so with `kubernetes.allow_protected_namespaces`).
    #[arg(long)]
    allow_protected_namespace: bool,
    /// The in-process agent's journal directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/faultline/run")]
    state_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct TuiArgs {
    /// An agent to talk to (`unix:PATH`, `tcp:IP:PORT`); repeatable. Default: the local agent
    /// at /run/faultline/agent.sock, or, when none listens there and this is root, an agent
    /// started in this process.
    #[arg(long, value_name = "ADDR")]
    agent: Vec<String>,
    /// The agents' bearer token (for `tcp:`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The CA that signed the agents' certificates (PEM): TLS to tcp: agents.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), for agents that demand one (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// This client's private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Open this scenario's lab: its hosts are the targets, its crash captures and dump
    /// captures feed the Crashes and Tasks views, its probes show on the Faults view. No step
    /// runs: the faults are yours to inject.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Where the lab's logs, crash records and dumps go (default
    /// `faultline-runs/tui-<scenario>-<time>`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A directory of faultline crash records to watch; repeatable.
    #[arg(long = "crash-dir", value_name = "DIR")]
    crash_dirs: Vec<PathBuf>,
    /// A task-dump endpoint to scrape, as NAME=URL (a Go `/debug/pprof/goroutine?debug=2` or
    /// faultline-capture's `/debug/faultline/tasks`); NAME is the target's name or pid.
    /// Repeatable.
    #[arg(long = "dump", value_name = "NAME=URL")]
    dumps: Vec<String>,
    /// How often --dump endpoints are scraped.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    dump_every: std::time::Duration,
    /// A directory holding a `.build-id/` tree for symbolizing crashes; repeatable.
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
    /// The lease on the faults this screen injects: if the screen dies, the agent reverts them
    /// this long after its last renewal.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    /// The in-process agent's journal directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/faultline/tui")]
    state_dir: PathBuf,
    /// List the pods of a Kubernetes cluster (kubeconfig, as kubectl) instead of local
    /// processes, and fault them through the agent on each pod's node.
    #[arg(long, conflicts_with_all = ["agent", "scenario"])]
    kube: bool,
    /// With --kube: the kubeconfig context (default: the current one).
    #[arg(long, value_name = "NAME", requires = "kube")]
    context: Option<String>,
    /// With --kube: a namespace to list; repeatable (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS", requires = "kube")]
    namespaces: Vec<String>,
    /// With --kube: allow listing, and so faulting, pods of kube-system, faultline-system and
    /// the agent's namespace.
    #[arg(long, requires = "kube")]
    allow_protected_namespace: bool,
    /// With --kube: only pods matching this label selector.
    #[arg(short = 'l', long, value_name = "SELECTOR", requires = "kube")]
    selector: Option<String>,
    /// With --kube: the namespace of the agent's DaemonSet.
    #[arg(long, value_name = "NS", default_value = "faultline-system")]
    agent_namespace: String,
    /// With --kube: how the agents are reached (as for `inject --pod`).
    #[arg(
        long,
        value_name = "HOW",
        default_value = "auto",
        value_parser = ["auto", "port-forward", "pod-ip"]
    )]
    agents: String,
}

/// Where to look for debug files.
#[derive(Debug, clap::Args)]
struct LookupArgs {
    /// A directory holding a `.build-id/` tree (as made by `faultline debug-store add`, or
    /// /usr/lib/debug). Repeatable; searched in order.
    #[arg(long = "debug-dir", value_name = "DIR")]
    debug_dirs: Vec<PathBuf>,
    /// A debug file or unstripped binary to use when its build-id matches. Repeatable.
    #[arg(long = "debug-file", value_name = "FILE")]
    debug_files: Vec<PathBuf>,
    /// A debuginfod server to ask last. Repeatable. Without it, `DEBUGINFOD_URLS` is used.
    #[arg(long = "debuginfod", value_name = "URL")]
    debuginfod: Vec<String>,
    /// Symbolize from DWARF, without reading or making symbol indexes (an index, kept per
    /// build-id beside the debug file or in the cache, makes symbolization much faster).
    #[arg(long)]
    no_index: bool,
}

/// How to read a log of JSON lines (Docker's json-file, a log platform's export).
#[derive(Debug, Clone, clap::Args)]
struct LogArgs {
    /// The field of each JSON line that holds the text (default: the first of log, message,
    /// msg, line, MESSAGE, textPayload, text, @message that the entry has).
    #[arg(long, value_name = "NAME")]
    log_field: Option<String>,
    /// The field that keeps entries apart (a pod's name; a dotted path such as
    /// kubernetes.pod_name reaches into nested objects); default: stream.
    #[arg(long, value_name = "NAME")]
    log_key: Option<String>,
}

impl LogArgs {
    fn fields(&self) -> faultline_dump::json_lines::LogFields {
        faultline_dump::json_lines::LogFields {
            text: self.log_field.clone(),
            key: self.log_key.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
struct AnalyzeArgs {
    /// Crash records (JSON, from faultline-capture) or task dumps (Go panic or fatal-error
    /// output, SIGQUIT dumps, /debug/pprof/goroutine?debug=0|1|2, Rust panic output, tokio task
    /// dumps, also inside logs), as files, http(s) URLs fetched once,
    /// pod://NAMESPACE/POD:PORT/PATH (a pod's endpoint, through a port-forward), or
    /// pod:NAMESPACE/POD[/CONTAINER] (the log of the container's previous, crashed run, through
    /// the Kubernetes API with the current kubeconfig context); the format is detected from the
    /// content.
    #[arg(value_name = "FILE", required_unless_present = "diff")]
    inputs: Vec<PathBuf>,
    /// Compare two task dumps: which stacks appeared, grew, shrank or vanished.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "inputs")]
    diff: Option<Vec<PathBuf>>,
    /// How alike tasks must be to share a group: `exact` (functions, files, lines, state),
    /// `functions` (functions and state), `own` or `own:N` (the innermost N frames of your own
    /// code; N defaults to 3).
    #[arg(long, default_value = "functions", value_parser = parse_level)]
    level: faultline_dump::Level,
    /// The Go main module's path (`example.com/shop`), to tell your code from dependencies.
    #[arg(long, value_name = "PATH")]
    main_module: Option<String>,
    #[command(flatten)]
    lookup: LookupArgs,
    #[command(flatten)]
    log: LogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AnalyzeFormat::Human)]
    format: AnalyzeFormat,
    /// Show every frame, including the panic machinery std hides.
    #[arg(long)]
    full: bool,
}

#[derive(Debug, clap::Args)]
struct LeaksArgs {
    /// Dumps taken over time (any format `analyze` reads, files or URLs). Their time is the
    /// capture time a dump records, else the file's modification time, unless --interval.
    #[arg(
        value_name = "DUMP",
        required_unless_present = "scrape",
        conflicts_with = "scrape"
    )]
    inputs: Vec<PathBuf>,
    /// The dumps were taken this far apart, in the order given (`30s`, `1m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    interval: Option<std::time::Duration>,
    /// Sample a live endpoint instead: Go's /debug/pprof/goroutine?debug=2 (or debug=0), or
    /// faultline-capture's /debug/faultline/tasks; pod://NAMESPACE/POD:PORT/PATH reaches a
    /// pod's through a port-forward.
    #[arg(long, value_name = "URL")]
    scrape: Option<String>,
    /// Time between samples with --scrape.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    every: std::time::Duration,
    /// How long to sample with --scrape.
    #[arg(long = "for", value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Stop sampling as soon as a group is leaking.
    #[arg(long, requires = "scrape")]
    until_verdict: bool,
    /// Keep every scraped dump in DIR (`sample-0001.txt`, …) for a postmortem.
    #[arg(long, value_name = "DIR", requires = "scrape")]
    save: Option<PathBuf>,
    /// Grouping level, as for `analyze`.
    #[arg(long, default_value = "functions", value_parser = parse_level)]
    level: faultline_dump::Level,
    /// The Go main module's path (`example.com/shop`), to tell your code from dependencies.
    #[arg(long, value_name = "PATH")]
    main_module: Option<String>,
    /// Project each group's count this far ahead.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    horizon: std::time::Duration,
    /// Fewest samples before a group can be called leaking.
    #[arg(long, default_value_t = 6, value_name = "N")]
    min_samples: usize,
    /// Significance level of the Mann-Kendall trend test.
    #[arg(long, default_value_t = 0.01, value_name = "P")]
    alpha: f64,
    /// Fewest tasks a group must have gained (last sample minus first) to be leaking.
    #[arg(long, default_value_t = 10, value_name = "TASKS")]
    min_growth: u64,
    /// Slowest growth (Theil–Sen slope, tasks per minute) that counts as a leak.
    #[arg(long, default_value_t = 1.0, value_name = "PER_MIN")]
    min_slope: f64,
    /// For tasks with ids (goroutines, tokio tasks): fewest members of the latest sample that
    /// have been in the group since the middle of its series for it to be leaking; a rising
    /// count whose members turn over (more load) is growing.
    #[arg(long, default_value_t = 5, value_name = "TASKS")]
    min_persisting: u64,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    lookup: LookupArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LeaksFormat::Human)]
    format: LeaksFormat,
}

#[derive(Debug, clap::Args)]
struct InjectArgs {
    #[command(subcommand)]
    kind: InjectKind,
    #[command(flatten)]
    agent: AgentClientArgs,
    /// Through an agent: the lease this process renews while it waits; if renewals stop (this
    /// process killed, stopped or cut off), the agent reverts the fault when it runs out.
    #[arg(long, global = true, default_value = "15s", value_parser = humantime::parse_duration)]
    lease: std::time::Duration,
    #[command(flatten)]
    pod: PodTargetArgs,
}

/// A pod on Kubernetes as the target, through the agent on its node.
#[derive(Debug, clap::Args)]
struct PodTargetArgs {
    /// The target pod, NAMESPACE/NAME: found through the API server (kubeconfig), then faulted
    /// by the faultline agent on its node (see --agents; with --token-file).
    #[arg(long, global = true, value_name = "NS/NAME")]
    pod: Option<String>,
    /// With --pod or pod-kill: allow kube-system and the agent's namespace.
    #[arg(long, global = true)]
    allow_protected_namespace: bool,
    /// With --pod: one of its containers, by name (stress, pause, kill); network faults always
    /// go to the pod's network namespace.
    #[arg(long, global = true, value_name = "NAME", requires = "pod")]
    container: Option<String>,
    /// With --pod: the kubeconfig context (default: the current one).
    #[arg(long, global = true, value_name = "CONTEXT", requires = "pod")]
    context: Option<String>,
    /// With --pod: the namespace of the agent's DaemonSet.
    #[arg(
        long,
        global = true,
        value_name = "NS",
        default_value = "faultline-system"
    )]
    agent_namespace: String,
    /// With --pod: how the agent is reached: through the API server's port-forward, at its pod
    /// IP, or `auto` (the pod IP inside the cluster, a port-forward outside).
    #[arg(
        long,
        global = true,
        value_name = "HOW",
        default_value = "auto",
        value_parser = ["auto", "port-forward", "pod-ip"]
    )]
    agents: String,
}

#[derive(Debug, clap::Args)]
struct PodKillArgs {
    /// A namespace to look in; repeatable.
    #[arg(short = 'n', long = "namespace", required = true, value_name = "NS")]
    namespaces: Vec<String>,
    /// A label selector (`app=checkout`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    selector: String,
    /// A field selector (`spec.nodeName=node-1`).
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,
    /// How many of the matched pods: one, all, fixed:N or percent:P.
    #[arg(long, default_value = "one", value_parser = parse_mode)]
    mode: faultline_kube::Mode,
    /// The seed the pods are drawn with (printed, so a run can be replayed). Default: the
    /// current Unix time.
    #[arg(long)]
    seed: Option<u64>,
    /// The grace period: the containers get SIGTERM, then SIGKILL after it.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, conflicts_with = "force")]
    grace: std::time::Duration,
    /// Delete at once (grace period 0).
    #[arg(long)]
    force: bool,
    /// How long to wait for each replacement to be Ready.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// The kubeconfig context (default: the current one; in a pod, the in-cluster account).
    #[arg(long)]
    context: Option<String>,
    /// Also pods that are not Running and Ready.
    #[arg(long)]
    include_not_ready: bool,
}

fn parse_mode(text: &str) -> Result<faultline_kube::Mode, String> {
    use faultline_kube::Mode;
    let bad = || {
        format!(
            "expected one, all, fixed:N (N at least 1) or percent:P (above 0, at most 100), got {text:?}"
        )
    };
    match text {
        "one" => Ok(Mode::One),
        "all" => Ok(Mode::All),
        _ => match text.split_once(':') {
            Some(("fixed", n)) => match n.trim().parse() {
                Ok(n) if n >= 1 => Ok(Mode::Fixed(n)),
                _ => Err(bad()),
            },
            Some(("percent", p)) => match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Mode::Percent(p)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
    }
}

/// Which agent to talk to.
#[derive(Debug, clap::Args)]
struct AgentClientArgs {
    /// The agent: unix:PATH or tcp:IP:PORT. Without it, a local agent at
    /// /run/faultline/agent.sock if one listens there (else `inject` applies the fault itself).
    #[arg(long, global = true, value_name = "ADDR")]
    agent: Option<String>,
    /// A file holding the agent's bearer token.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The CA that signed the agent's certificate (PEM): speak TLS to a tcp: agent.
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), for an agent that demands one (with --key).
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// This client's private key (PEM), with --cert.
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// The name the agent's certificate must carry.
    #[arg(long, global = true, value_name = "NAME", default_value = faultline_agent::tls::AGENT_NAME)]
    tls_server_name: String,
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// Where to listen: unix:PATH (created 0600) or tcp:IP:PORT (TLS: --tls-cert and
    /// --tls-key, and --token-file or --client-ca).
    #[arg(
        long,
        default_value = "unix:/run/faultline/agent.sock",
        value_name = "ADDR"
    )]
    listen: String,
    /// A file holding the bearer token clients must send.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Where the journal lives.
    #[arg(long, default_value = "/var/lib/faultline", value_name = "DIR")]
    state_dir: PathBuf,
    /// A policy file (JSON): max_faults, max_seconds, cgroup_prefixes, denied_pids.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The agent's certificate (PEM) for TLS on a tcp: listener (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Demand a client certificate signed by this CA (mutual TLS); the token becomes optional.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Plain TCP without TLS, on a loopback address only.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Own this machine's core handler while the agent runs: core_pattern pipes every core
    /// into `faultline core-handler --out DIR`, and the previous pattern is put back when the
    /// agent stops. The crashes are served at /v1/crashes (docs/crashes.md: the risks).
    #[arg(long, value_name = "DIR")]
    catch_cores: Option<PathBuf>,
    /// The faultline binary core_pattern names, as the host sees it. The kernel starts the
    /// handler in the host's namespaces: in a container, give a path on a hostPath volume
    /// mounted at the same path; this binary is copied there when it differs.
    #[arg(long, value_name = "PATH", requires = "catch_cores")]
    core_handler_exe: Option<PathBuf>,
    /// The core_pattern file --catch-cores writes (tests point it at a file of their own).
    #[arg(long, value_name = "FILE", default_value = faultline_agent::cores::CORE_PATTERN, hide = true)]
    core_pattern_file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum FaultsCommand {
    /// Every fault the agent holds or has reverted.
    List {
        #[command(flatten)]
        agent: AgentClientArgs,
    },
    /// Revert a fault now (or every fault with --all), and show the verified result.
    Revert {
        /// The fault's id.
        id: Option<String>,
        /// Every active fault.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        agent: AgentClientArgs,
    },
}

#[derive(Debug, Subcommand)]
enum InjectKind {
    /// Delete pods through the Kubernetes API (with your kubeconfig) and wait until each
    /// controller's replacement is Ready; reports how long both took. Pods are chosen by
    /// selector and --mode with a --seed. Exit 1 when a replacement is not Ready within
    /// --timeout.
    #[command(name = "pod-kill")]
    PodKill(PodKillArgs),
    /// Cut the target off from peers: its packets to and/or from them are dropped (or
    /// refused with --reject), inside the target's network namespace.
    Partition(NetArgs),
    /// Drop a percentage of the packets between the target and peers, at random.
    Loss {
        /// Percentage of matching packets to drop (1-100).
        #[arg(long, value_name = "PERCENT")]
        percent: u32,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Send a signal (TERM unless told), then SIGKILL if the process outlives --grace.
    #[command(group = clap::ArgGroup::new("kill_target").args(["pid", "cgroup"]))]
    Kill {
        /// The process.
        #[arg(long)]
        pid: Option<u32>,
        /// Every process of this cgroup directory instead.
        #[arg(long, value_name = "DIR")]
        cgroup: Option<PathBuf>,
        /// The first signal: TERM, INT, QUIT, HUP, KILL, USR1, USR2, ABRT or a number.
        #[arg(long, default_value = "TERM")]
        signal: String,
        /// How long to wait before SIGKILL.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
    /// Burn CPU inside the process's cgroup, competing for its CPU limit.
    #[command(group = clap::ArgGroup::new("stress_target").args(["pid", "cgroup"]))]
    Stress {
        /// The process whose cgroup to stress.
        #[arg(long)]
        pid: Option<u32>,
        /// The cgroup directory to stress (v1 cpu hierarchy or v2) instead.
        #[arg(long, value_name = "DIR")]
        cgroup: Option<PathBuf>,
        /// Worker processes.
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Load in percent of the cgroup's CPU quota (of one core per worker without a quota).
        #[arg(long, default_value_t = 100)]
        load: u8,
        /// How long.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// Stop the process (SIGSTOP) for a while, then continue it (SIGCONT); or freeze every
    /// process of a cgroup with the kernel's freezer, then thaw it.
    #[command(group = clap::ArgGroup::new("pause_target").args(["pid", "cgroup"]))]
    Pause {
        /// The process.
        #[arg(long)]
        pid: Option<u32>,
        /// A cgroup directory to freeze instead: in the v1 freezer hierarchy
        /// (/sys/fs/cgroup/freezer/...) or the v2 one.
        #[arg(long, value_name = "DIR")]
        cgroup: Option<PathBuf>,
        /// How long it stays stopped.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
}

/// A network fault's target, traffic and duration.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("net_target").args(["pid", "cgroup"]))]
struct NetArgs {
    /// A process in the network namespace to fault.
    #[arg(long)]
    pid: Option<u32>,
    /// A cgroup whose processes share the network namespace to fault, instead.
    #[arg(long, value_name = "DIR")]
    cgroup: Option<PathBuf>,
    /// A peer address or CIDR block (repeatable; at least one).
    #[arg(long = "peer", value_name = "CIDR", required = true)]
    peers: Vec<String>,
    /// Only the peers' port(s) (repeatable): destination ports going to them, source ports
    /// coming from them.
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Only this protocol: tcp, udp or icmp.
    #[arg(long)]
    protocol: Option<String>,
    /// Which traffic: `to` the peers, `from` them, or `both`.
    #[arg(long, default_value = "both")]
    direction: String,
    /// Refuse instead of dropping: TCP gets a reset, the rest ICMP port unreachable.
    #[arg(long)]
    reject: bool,
    /// Allow a target in faultline's own network namespace (normally the host's).
    #[arg(long)]
    allow_host_netns: bool,
    /// How long the fault lasts.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LeaksFormat {
    Human,
    Json,
    /// One self-contained page: each leaking and growing group's count drawn with its trend.
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AnalyzeFormat {
    Human,
    Json,
    /// A flame graph of a task dump's stacks (SVG), one input only.
    Svg,
    /// One self-contained page: each dump's groups with their stacks and its flame graph
    /// (with `--diff`, the table of what changed).
    Html,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("object").required(true).args(["exe", "build_id"]))]
struct SymbolizeArgs {
    /// The binary or debug file the addresses belong to. If it has no DWARF, its debug file
    /// is looked up by its build-id (debug dirs, debuglink, debuginfod).
    #[arg(short = 'e', long = "exe", alias = "obj", value_name = "FILE")]
    exe: Option<PathBuf>,
    /// Look up the debug file by this GNU build-id (hex) instead of naming a file.
    #[arg(long = "build-id", value_name = "HEX")]
    build_id: Option<String>,
    #[command(flatten)]
    lookup: LookupArgs,
    /// Output format: `llvm` prints what `llvm-symbolizer --inlining --demangle
    /// --output-style=LLVM` prints; `json` prints one object per address.
    #[arg(long, value_enum, default_value_t = SymbolizeFormat::Llvm)]
    format: SymbolizeFormat,
    /// Print function names as stored (mangled).
    #[arg(long)]
    no_demangle: bool,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Module-relative addresses in hex (`0x1a2b` or `1a2b`). Without them, one per line is
    /// read from standard input.
    #[arg(value_name = "ADDR")]
    addresses: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SymbolizeFormat {
    Llvm,
    Json,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Index unstripped binaries or `.debug` files by build-id into a store directory, and
    /// make each one's symbol index.
    Add {
        /// Files to add.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The store directory (a `.build-id/` tree is made inside it).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Add the files without making their symbol indexes (they are made on first use).
        #[arg(long)]
        no_index: bool,
    },
    /// Make the symbol index of build-ids in a store (beside each debug file), so the first
    /// symbolization of each is fast too.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["build_ids", "all"]))]
    Index {
        /// The store directory.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Build-ids (hex) to index.
        #[arg(value_name = "BUILD_ID")]
        build_ids: Vec<String>,
        /// Index every debug file of the store that has no valid index.
        #[arg(long)]
        all: bool,
        /// Make the index again even when a valid one is there.
        #[arg(long)]
        force: bool,
    },
    /// List a store's build-ids: the debug file's and the index's sizes, whether it is
    /// indexed, when it was last used.
    Ls {
        /// The store directory.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StoreFormat::Human)]
        format: StoreFormat,
    },
    /// Bring a store to at most SIZE: drop the least recently used indexes and debug files.
    Gc {
        /// The store directory.
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The most the store may hold: bytes, or with a unit (`500M`, `10G`, `1.5GiB`, `2GB`;
        /// K, M, G, T and KiB… are powers of 1024, KB, MB… of 1000).
        #[arg(long, value_name = "SIZE", value_parser = store::parse_size)]
        max_size: u64,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreFormat {
    Human,
    Json,
}

fn parse_level(text: &str) -> Result<faultline_dump::Level, String> {
    use faultline_dump::Level;
    match text {
        "exact" => Ok(Level::Exact),
        "functions" => Ok(Level::Functions),
        "own" => Ok(Level::OwnTop(3)),
        other => other
            .strip_prefix("own:")
            .and_then(|n| n.parse().ok())
            .filter(|&n| n > 0)
            .map(Level::OwnTop)
            .ok_or_else(|| format!("expected exact, functions, own or own:N, got {other:?}")),
    }
}

/// The flags `inject` shares with every fault that `inject pod-kill` does not read (a pod kill
/// goes through the API server, not an agent): hidden from its help.
const NOT_FOR_POD_KILL: &[&str] = &[
    "agent",
    "token_file",
    "ca",
    "cert",
    "key",
    "tls_server_name",
    "lease",
    "pod",
    "container",
    "agent_namespace",
    "agents",
];

/// The command line, parsed; `inject pod-kill --help` lists only what a pod kill reads.
fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut command = Cli::command();
    // Built first, so that the global flags have been copied into each subcommand.
    command.build();
    if let Some(inject) = command.find_subcommand_mut("inject")
        && let Some(pod_kill) = inject.find_subcommand_mut("pod-kill")
    {
        let taken = std::mem::take(pod_kill);
        *pod_kill = taken.mut_args(|arg| {
            if NOT_FOR_POD_KILL.contains(&arg.get_id().as_str()) {
                arg.hide(true)
            } else {
                arg
            }
        });
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Leaks(args) => leaks::run(args),
        Command::Inject(args) => inject::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Faults(command) => agent::faults(command),
        Command::Run(args) => run::run(args),
        Command::Tui(args) => tui::run(args),
        Command::Hold => run::hold(),
        Command::ResumeGuard { pid, deadline_ms } => inject::resume_guard(pid, deadline_ms),
        Command::ThawGuard {
            cgroup,
            deadline_ms,
        } => inject::thaw_guard(&cgroup, deadline_ms),
        Command::StressWorker {
            busy_fraction,
            deadline_ms,
        } => inject::stress_worker(busy_fraction, deadline_ms),
        Command::Symbolize(args) => symbolize::run(args),
        Command::DebugStore(command) => store::run(command),
        Command::CoreHandler(args) => core_handler::run(args),
        Command::Certs(CertsCommand::Init {
            dir,
            sans,
            days,
            expired,
        }) => certs::init(&dir, &sans, days, expired).map(|text| print!("{text}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

impl LookupArgs {
    fn locator(&self) -> Result<faultline_symbolize::Locator, Failure> {
        use faultline_symbolize::debuginfod::{DebuginfodClient, DebuginfodOptions};
        let client = if self.debuginfod.is_empty() {
            DebuginfodClient::from_env()
        } else {
            Some(DebuginfodClient::new(
                self.debuginfod.clone(),
                DebuginfodOptions::from_env(),
            ))
        };
        for file in &self.debug_files {
            if !file.is_file() {
                let what = if file.is_dir() {
                    "a directory"
                } else {
                    "no such file"
                };
                return Err(Failure::usage(format!(
                    "--debug-file {}: {what}; expected a debug file or an unstripped binary",
                    file.display()
                )));
            }
        }
        for dir in &self.debug_dirs {
            if !dir.is_dir() {
                return Err(Failure::usage(format!(
                    "--debug-dir {}: not a directory",
                    dir.display()
                )));
            }
        }
        Ok(faultline_symbolize::Locator::new()
            .with_files(self.debug_files.iter().cloned())
            .with_stores(self.debug_dirs.iter().cloned())
            .with_debuginfod(client)
            .with_index(self.index_options()))
    }

    /// Indexes read and made unless `--no-index`; making one says so on stderr.
    fn index_options(&self) -> faultline_symbolize::index::IndexOptions {
        use faultline_symbolize::index::IndexOptions;
        if self.no_index {
            return IndexOptions::off();
        }
        IndexOptions {
            on_build: Some(|debug_file, index| {
                eprintln!(
                    "faultline: indexing {} (once per build-id), to {}",
                    debug_file.display(),
                    index.display()
                );
            }),
            ..IndexOptions::from_env()
        }
    }
}
