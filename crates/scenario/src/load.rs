//! Reading a scenario file: YAML → [`Node`] tree → [`Scenario`], reporting every mistake at
//! once with its line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::*;
use crate::node::{self, Map, Node, Pos, Problem, Problems, Value};

/// A scenario that could not be read: the file, its text (for snippets) and every problem.
#[derive(Debug, Clone)]
pub struct Invalid {
    /// The file, as given.
    pub file: String,
    /// Its text.
    pub source: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n{}:{}: {}", self.file, p.pos, p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, " ({hint})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// One problem as a miette diagnostic (the CLI renders them with snippets).
#[derive(Debug, Clone)]
pub struct ProblemReport {
    message: String,
    hint: Option<String>,
    span: miette::SourceSpan,
    source: std::sync::Arc<miette::NamedSource<String>>,
}

impl std::fmt::Display for ProblemReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProblemReport {}

impl miette::Diagnostic for ProblemReport {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("faultline::scenario"))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&*self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_with_span(Some("here".into()), self.span),
        )))
    }
}

impl Invalid {
    /// Each problem as a diagnostic with a snippet of the file.
    pub fn reports(&self) -> Vec<ProblemReport> {
        let source = std::sync::Arc::new(
            miette::NamedSource::new(&self.file, self.source.clone()).with_language("yaml"),
        );
        self.problems
            .iter()
            .map(|p| {
                let len = p.pos.len.max(1);
                let offset = p.pos.offset.min(self.source.len().saturating_sub(1));
                ProblemReport {
                    message: format!("{}:{}: {}", self.file, p.pos, p.message),
                    hint: p.hint.clone(),
                    span: (
                        offset,
                        len.min(self.source.len() - offset.min(self.source.len())),
                    )
                        .into(),
                    source: source.clone(),
                }
            })
            .collect()
    }
}

/// Reads `text` (from `file`, whose directory relative paths are resolved against).
pub fn load(text: &str, file: &Path) -> Result<Scenario, Invalid> {
    let invalid = |problems: Vec<Problem>| Invalid {
        file: file.display().to_string(),
        source: text.to_owned(),
        problems,
    };
    let root = node::parse(text).map_err(|e| {
        invalid(vec![Problem {
            pos: e.pos.unwrap_or(Pos {
                line: 1,
                column: 1,
                ..Pos::default()
            }),
            message: e.message,
            hint: None,
        }])
    })?;
    let base_dir = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut problems = Problems::default();
    let scenario = Reader::new(&mut problems).scenario(&root, base_dir);
    let mut list = problems.list;
    list.sort_by_key(|p| (p.pos.line, p.pos.column));
    match scenario {
        Some(s) if list.is_empty() => Ok(s),
        _ => Err(invalid(list)),
    }
}

/// Reads a scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read(path.to_owned(), e))?;
    load(&text, path).map_err(LoadError::Invalid)
}

/// Why a scenario file could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// It could not be read.
    Read(PathBuf, std::io::Error),
    /// It has mistakes.
    Invalid(Invalid),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(path, e) => write!(f, "{}: {e}", path.display()),
            LoadError::Invalid(invalid) => invalid.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}

const TOP: &[&str] = &[
    "name",
    "description",
    "lab",
    "processes",
    "pods",
    "kubernetes",
    "debug",
    "probes",
    "captures",
    "steps",
    "assertions",
    "lease",
];
const STEP_KINDS: &[&str] = &[
    "wait",
    "parallel",
    "partition",
    "loss",
    "pause",
    "stress",
    "kill",
    "pod_kill",
];
const ASSERTION_KINDS: &[&str] = &[
    "probe_success",
    "recovers",
    "no_panics",
    "no_leaks",
    "replaced",
];

/// Names declared so far, to check references against.
#[derive(Default)]
struct Names {
    hosts: Vec<String>,
    processes: Vec<String>,
    pods: Vec<String>,
    probes: Vec<String>,
    dumps: Vec<String>,
}

impl Names {
    fn targets(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .chain(&self.processes)
            .chain(&self.pods)
            .map(String::as_str)
            .collect()
    }
}

struct Reader<'p> {
    problems: &'p mut Problems,
    names: Names,
}

impl<'p> Reader<'p> {
    fn new(problems: &'p mut Problems) -> Self {
        Self {
            problems,
            names: Names::default(),
        }
    }

    fn scenario(&mut self, root: &Node, base_dir: PathBuf) -> Option<Scenario> {
        let mut top = Map::of(root, "the scenario", TOP, self.problems)?;
        let name = top
            .require("name", self.problems)
            .and_then(|n| node::text(n, "name", self.problems))
            .map(str::to_owned);
        let description = top
            .get("description")
            .and_then(|n| node::text(n, "description", self.problems))
            .map(str::to_owned);
        let hosts = top.get("lab").map(|n| self.lab(n)).unwrap_or_default();
        let processes = top
            .get("processes")
            .map(|n| self.processes(n, &base_dir))
            .unwrap_or_default();
        let pods = top.get("pods").map(|n| self.pods(n)).unwrap_or_default();
        let kubernetes = top
            .get("kubernetes")
            .map(|n| self.kubernetes(n, &base_dir))
            .unwrap_or_default();
        if let Some(n) = root_key(root, "pods")
            && !pods.is_empty()
            && (!hosts.is_empty() || !processes.is_empty())
        {
            self.problems.add(
                n,
                "pods: a scenario runs either on this machine (`lab`, `processes`) or on a \
                 cluster (`pods`), not both",
                Some("split it into two scenarios".into()),
            );
        }
        if let Some(n) = root_key(root, "kubernetes")
            && pods.is_empty()
        {
            self.problems.add(
                n,
                "kubernetes: the scenario has no `pods` to use it for",
                Some("declare the pods to fault under `pods`".into()),
            );
        }
        if !kubernetes.allow_protected_namespaces {
            for target in &pods {
                for ns in &target.namespaces {
                    if ns == "kube-system"
                        || ns == "faultline-system"
                        || *ns == kubernetes.agent_namespace
                    {
                        self.problems.add(
                            target.pos,
                            format!("pod target {}: namespace {ns} is protected", target.name),
                            Some(
                                "set `kubernetes: { allow_protected_namespaces: true }` to \
                                 target it on purpose"
                                    .into(),
                            ),
                        );
                    }
                }
            }
        }
        let debug = top
            .get("debug")
            .map(|n| self.debug(n, &base_dir))
            .unwrap_or_default();
        let probes = top
            .get("probes")
            .map(|n| self.probes(n))
            .unwrap_or_default();
        let (crash_targets, dumps) = top
            .get("captures")
            .map(|n| self.captures(n))
            .unwrap_or_default();
        let lease = top
            .get("lease")
            .and_then(|n| node::duration(n, "lease", self.problems))
            .unwrap_or(Duration::from_secs(5));
        let steps = match top.require("steps", self.problems) {
            Some(n) => self.steps(n, "steps", 0),
            None => Vec::new(),
        };
        let assertions = top
            .get("assertions")
            .map(|n| self.assertions(n))
            .unwrap_or_default();
        top.finish(self.problems);
        // A `replaced` assertion judges a pod kill: without one on its target, it could only
        // fail, at the end of the run.
        let killed = pod_kill_targets(&steps);
        for assertion in &assertions {
            if let AssertionCheck::Replaced { target, .. } = &assertion.check {
                let judged = match target {
                    Some(t) => killed.contains(t),
                    None => !killed.is_empty(),
                };
                if !judged {
                    self.problems.add(
                        assertion.pos,
                        format!(
                            "replaced: no pod_kill step{} to judge",
                            target
                                .as_ref()
                                .map(|t| format!(" on `{t}`"))
                                .unwrap_or_default()
                        ),
                        Some("add `- pod_kill: { target: … }` to the steps".into()),
                    );
                }
            }
        }
        if steps.is_empty() && root.value != Value::Null {
            // An empty timeline is almost certainly a mistake in a chaos gate.
            if let Value::Map(entries) = &root.value
                && let Some((_, pos, n)) = entries.iter().find(|(k, _, _)| k == "steps")
                && matches!(&n.value, Value::Seq(items) if items.is_empty())
            {
                self.problems.add(
                    *pos,
                    "steps: the timeline is empty",
                    Some("add at least one step".into()),
                );
            }
        }
        Some(Scenario {
            name: name?,
            description,
            base_dir,
            hosts,
            processes,
            pods,
            kubernetes,
            debug,
            probes,
            crash_targets,
            dumps,
            steps,
            assertions,
            lease,
        })
    }

    fn lab(&mut self, node: &Node) -> Vec<Host> {
        let Some(mut lab) = Map::of(node, "lab", &["hosts"], self.problems) else {
            return Vec::new();
        };
        let mut hosts = Vec::new();
        if let Some(n) = lab.require("hosts", self.problems) {
            let entries = ordered(n, "lab.hosts", self.problems);
            // Every name first: a host may refer to one declared after it (`${hosts.db}`).
            for (name, (pos, _)) in &entries {
                self.check_name(name, *pos, "host");
                self.names.hosts.push(name.clone());
            }
            for (name, (pos, value)) in entries {
                if let Some(host) = self.host(name, pos, value) {
                    hosts.push(host);
                }
            }
        }
        lab.finish(self.problems);
        hosts
    }

    /// Each `${hosts.NAME}` in `text` must name a lab host (a typo would reach the command
    /// as written).
    fn check_substitutions(&mut self, text: &str, pos: Pos, what: &str) {
        let mut rest = text;
        while let Some(i) = rest.find("${hosts.") {
            let after = &rest[i + "${hosts.".len()..];
            let Some(end) = after.find('}') else {
                self.problems.add(
                    pos,
                    format!("{what}: `{text}`: `${{hosts.` is not closed"),
                    Some("write ${hosts.NAME}".into()),
                );
                return;
            };
            let name = &after[..end];
            if !self.names.hosts.iter().any(|h| h == name) {
                let known: Vec<&str> = self.names.hosts.iter().map(String::as_str).collect();
                self.problems.add(
                    pos,
                    format!("{what}: `${{hosts.{name}}}` names no lab host"),
                    node::closest(name, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some(format!("lab hosts: {}", known.join(", ")))),
                );
            }
            rest = &after[end + 1..];
        }
    }

    fn check_name(&mut self, name: &str, pos: Pos, what: &str) {
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !ok {
            self.problems.add(
                pos,
                format!("{what} name `{name}`: use letters, digits, `-` and `_`, starting with a letter (at most 32)"),
                None,
            );
        }
        if self.names.targets().contains(&name) && what != "probe" && what != "dump" {
            self.problems
                .add(pos, format!("`{name}` is declared twice"), None);
        }
    }

    fn host(&mut self, name: String, pos: Pos, node: &Node) -> Option<Host> {
        const KEYS: &[&str] = &["command", "env", "restart", "cpu", "ready"];
        let what = format!("host {name}");
        let mut map = Map::of(node, &what, KEYS, self.problems)?;
        let command = map
            .require("command", self.problems)
            .and_then(|n| node::strings(n, &format!("{what}: command"), self.problems));
        if let Some(command) = &command {
            if command.is_empty() {
                self.problems
                    .add(map.pos, format!("{what}: command is empty"), None);
            }
            for (arg, pos) in command {
                self.check_substitutions(arg, *pos, &what);
            }
        }
        let mut env = Vec::new();
        if let Some(n) = map.get("env") {
            for (key, (kpos, value)) in ordered(n, &format!("{what}: env"), self.problems) {
                if key.is_empty() || key.contains('=') {
                    self.problems.add(
                        kpos,
                        format!("{what}: env: `{key}` is not a variable name"),
                        None,
                    );
                }
                if let Some(v) = node::text(value, &format!("{what}: env: {key}"), self.problems) {
                    self.check_substitutions(v, value.pos, &what);
                    env.push((key, v.to_owned()));
                }
            }
        }
        let restart = match map.get("restart") {
            None => Restart::Never,
            Some(n) => match node::text(n, "restart", self.problems) {
                Some("never") => Restart::Never,
                Some("on-failure") => Restart::OnFailure,
                Some("always") => Restart::Always,
                Some(other) => {
                    self.problems.add(
                        n.pos,
                        format!("{what}: restart: `{other}` is not a restart policy"),
                        Some("never, on-failure or always".into()),
                    );
                    Restart::Never
                }
                None => Restart::Never,
            },
        };
        let cpu = map.get("cpu").and_then(|n| {
            node::number(
                n,
                &format!("{what}: cpu (cores)"),
                0.01..=1024.0,
                self.problems,
            )
        });
        let (mut ready_port, mut ready_within) = (None, Duration::from_secs(10));
        if let Some(n) = map.get("ready") {
            let ready_what = format!("{what}: ready");
            if let Some(mut ready) = Map::of(n, &ready_what, &["port", "within"], self.problems) {
                ready_port = ready
                    .require("port", self.problems)
                    .and_then(|n| {
                        node::number(
                            n,
                            &format!("{ready_what}: port"),
                            1.0..=65535.0,
                            self.problems,
                        )
                    })
                    .map(|p| p as u16);
                if let Some(n) = ready.get("within") {
                    ready_within =
                        node::duration(n, &format!("{ready_what}: within"), self.problems)
                            .unwrap_or(ready_within);
                }
                ready.finish(self.problems);
            }
        }
        map.finish(self.problems);
        Some(Host {
            name,
            command: command?.into_iter().map(|(s, _)| s).collect(),
            env,
            restart,
            cpu,
            ready_port,
            ready_within,
            pos,
        })
    }

    fn processes(&mut self, node: &Node, base: &Path) -> Vec<LocalProcess> {
        let mut out = Vec::new();
        for (name, (pos, value)) in ordered(node, "processes", self.problems) {
            self.check_name(&name, pos, "process");
            self.names.processes.push(name.clone());
            let what = format!("process {name}");
            let Some(mut map) = Map::of(
                value,
                &what,
                &["pid", "pidfile", "crash_dir"],
                self.problems,
            ) else {
                continue;
            };
            let pid = map.get("pid").and_then(|n| {
                node::number(n, &format!("{what}: pid"), 1.0..=4_194_304.0, self.problems)
            });
            let pidfile = map
                .get("pidfile")
                .and_then(|n| node::text(n, &format!("{what}: pidfile"), self.problems));
            let crash_dir = map
                .get("crash_dir")
                .and_then(|n| node::text(n, &format!("{what}: crash_dir"), self.problems))
                .map(|p| base.join(p));
            let find = match (pid, pidfile) {
                (Some(pid), None) => Some(Find::Pid(pid as u32)),
                (None, Some(file)) => Some(Find::PidFile(base.join(file))),
                (Some(_), Some(_)) => {
                    self.problems.add(
                        map.pos,
                        format!("{what}: give `pid` or `pidfile`, not both"),
                        None,
                    );
                    None
                }
                (None, None) => {
                    self.problems
                        .add(map.pos, format!("{what}: give `pid` or `pidfile`"), None);
                    None
                }
            };
            map.finish(self.problems);
            if let Some(find) = find {
                out.push(LocalProcess {
                    name,
                    find,
                    crash_dir,
                });
            }
        }
        out
    }

    fn pods(&mut self, node: &Node) -> Vec<PodTarget> {
        let mut out = Vec::new();
        for (name, (pos, value)) in ordered(node, "pods", self.problems) {
            self.check_name(&name, pos, "pod target");
            self.names.pods.push(name.clone());
            let what = format!("pod target {name}");
            let Some(mut map) = Map::of(
                value,
                &what,
                &[
                    "namespace",
                    "namespaces",
                    "selector",
                    "fields",
                    "mode",
                    "container",
                ],
                self.problems,
            ) else {
                continue;
            };
            let namespaces = match (map.get("namespace"), map.get("namespaces")) {
                (Some(n), None) => node::text(n, &format!("{what}: namespace"), self.problems)
                    .map(|ns| vec![ns.to_owned()]),
                (None, Some(n)) => node::strings(n, &format!("{what}: namespaces"), self.problems)
                    .map(|list| list.into_iter().map(|(ns, _)| ns).collect()),
                (Some(_), Some(_)) => {
                    self.problems.add(
                        map.pos,
                        format!("{what}: give `namespace` or `namespaces`, not both"),
                        None,
                    );
                    None
                }
                (None, None) => {
                    self.problems.add(
                        map.pos,
                        format!("{what}: give its `namespace`"),
                        Some("pods are chosen in named namespaces only".into()),
                    );
                    None
                }
            };
            let namespaces = namespaces.filter(|list| {
                if list.is_empty() {
                    self.problems
                        .add(map.pos, format!("{what}: no namespace is named"), None);
                    return false;
                }
                let bad: Vec<String> = list
                    .iter()
                    .filter_map(|ns| crate::selector::check_namespace(ns).err())
                    .collect();
                for why in &bad {
                    self.problems.add(map.pos, format!("{what}: {why}"), None);
                }
                bad.is_empty()
            });
            let selector = map.require("selector", self.problems).and_then(|n| {
                let text = node::text(n, &format!("{what}: selector"), self.problems)?;
                if text.trim().is_empty() {
                    self.problems.add(
                        n.pos,
                        format!("{what}: the selector is empty"),
                        Some(
                            "a label selector such as `app=checkout`: faultline never selects \
                             every pod of a namespace by accident"
                                .into(),
                        ),
                    );
                    return None;
                }
                if let Err(why) = crate::selector::check_labels(text.trim()) {
                    self.problems.add(
                        n.pos,
                        format!("{what}: selector `{}`: {why}", text.trim()),
                        Some("a label selector as kubectl -l takes it".into()),
                    );
                    return None;
                }
                Some(text.trim().to_owned())
            });
            let fields = map.get("fields").and_then(|n| {
                let text = node::text(n, &format!("{what}: fields"), self.problems)?;
                if let Err(why) = crate::selector::check_fields(text.trim()) {
                    self.problems.add(
                        n.pos,
                        format!("{what}: fields: {why}"),
                        Some("a field selector as kubectl --field-selector takes it".into()),
                    );
                    return None;
                }
                Some(text.trim().to_owned())
            });
            let mode = match map.get("mode") {
                None => Some(PodMode::One),
                Some(n) => self.pod_mode(n, &what),
            };
            let container = map.get("container").and_then(|n| {
                let text = node::text(n, &format!("{what}: container"), self.problems)?;
                if text.trim().is_empty() {
                    self.problems.add(
                        n.pos,
                        format!("{what}: container is empty"),
                        Some(
                            "a container's name, or leave `container` out for the whole pod".into(),
                        ),
                    );
                    return None;
                }
                Some(text.to_owned())
            });
            map.finish(self.problems);
            if let (Some(namespaces), Some(selector), Some(mode)) = (namespaces, selector, mode) {
                out.push(PodTarget {
                    name,
                    namespaces,
                    selector,
                    fields,
                    mode,
                    container,
                    pos,
                });
            }
        }
        out
    }

    /// `one`, `all`, `{fixed: N}` or `{percent: P}`.
    fn pod_mode(&mut self, node: &Node, what: &str) -> Option<PodMode> {
        let hint = || Some("one, all, `{ fixed: N }` or `{ percent: P }`".to_owned());
        match &node.value {
            Value::Str(s) if s == "one" => Some(PodMode::One),
            Value::Str(s) if s == "all" => Some(PodMode::All),
            Value::Map(entries) if entries.len() == 1 => {
                let (key, kpos, value) = &entries[0];
                match key.as_str() {
                    "fixed" => node::number(
                        value,
                        &format!("{what}: mode: fixed"),
                        1.0..=10_000.0,
                        self.problems,
                    )
                    .and_then(|n| {
                        if n.fract() != 0.0 {
                            self.problems.add(
                                value.pos,
                                format!("{what}: mode: fixed: {n} is not a whole number of pods"),
                                None,
                            );
                            return None;
                        }
                        Some(PodMode::Fixed(n as u32))
                    }),
                    "percent" => node::number(
                        value,
                        &format!("{what}: mode: percent"),
                        0.001..=100.0,
                        self.problems,
                    )
                    .map(PodMode::Percent),
                    other => {
                        self.problems.add(
                            *kpos,
                            format!("{what}: mode `{other}` is not fixed or percent"),
                            hint(),
                        );
                        None
                    }
                }
            }
            _ => {
                self.problems.add(
                    node.pos,
                    format!("{what}: mode must be one of one, all, fixed, percent"),
                    hint(),
                );
                None
            }
        }
    }

    fn kubernetes(&mut self, node: &Node, base: &Path) -> Kubernetes {
        let mut out = Kubernetes::default();
        let Some(mut map) = Map::of(
            node,
            "kubernetes",
            &[
                "context",
                "agent_namespace",
                "agent_token_file",
                "agents",
                "allow_protected_namespaces",
            ],
            self.problems,
        ) else {
            return out;
        };
        if let Some(n) = map.get("context") {
            out.context = node::text(n, "kubernetes: context", self.problems).map(str::to_owned);
        }
        if let Some(n) = map.get("agent_namespace")
            && let Some(ns) = node::text(n, "kubernetes: agent_namespace", self.problems)
        {
            out.agent_namespace = ns.to_owned();
        }
        if let Some(n) = map.get("agent_token_file") {
            out.agent_token_file =
                node::text(n, "kubernetes: agent_token_file", self.problems).map(|f| base.join(f));
        }
        if let Some(n) = map.get("agents") {
            match node::text(n, "kubernetes: agents", self.problems) {
                Some("auto") => out.agents = AgentRoute::Auto,
                Some("port-forward") => out.agents = AgentRoute::PortForward,
                Some("pod-ip") => out.agents = AgentRoute::PodIp,
                Some(other) => self.problems.add(
                    n.pos,
                    format!("kubernetes: agents `{other}` is not auto, port-forward or pod-ip"),
                    None,
                ),
                None => {}
            }
        }
        if let Some(n) = map.get("allow_protected_namespaces")
            && let Some(b) =
                node::boolean(n, "kubernetes: allow_protected_namespaces", self.problems)
        {
            out.allow_protected_namespaces = b;
        }
        map.finish(self.problems);
        out
    }

    fn debug(&mut self, node: &Node, base: &Path) -> Debug {
        let Some(mut map) = Map::of(node, "debug", &["dirs", "debuginfod"], self.problems) else {
            return Debug::default();
        };
        let dirs = map
            .get("dirs")
            .and_then(|n| node::strings(n, "debug: dirs", self.problems))
            .unwrap_or_default()
            .into_iter()
            .map(|(d, _)| base.join(d))
            .collect();
        let debuginfod = map
            .get("debuginfod")
            .and_then(|n| node::strings(n, "debug: debuginfod", self.problems))
            .unwrap_or_default();
        for (url, pos) in &debuginfod {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.problems.add(
                    *pos,
                    format!("debug: debuginfod: `{url}` is not an http(s) URL"),
                    None,
                );
            }
        }
        map.finish(self.problems);
        Debug {
            dirs,
            debuginfod: debuginfod.into_iter().map(|(u, _)| u).collect(),
        }
    }

    fn probes(&mut self, node: &Node) -> Vec<Probe> {
        let mut out = Vec::new();
        for (name, (pos, value)) in ordered(node, "probes", self.problems) {
            self.check_name(&name, pos, "probe");
            self.names.probes.push(name.clone());
            let what = format!("probe {name}");
            let Some(mut map) = Map::of(
                value,
                &what,
                &["http", "tcp", "command", "every"],
                self.problems,
            ) else {
                continue;
            };
            let every = map
                .get("every")
                .and_then(|n| self.interval(n, &format!("{what}: every")))
                .unwrap_or(Duration::from_millis(500));
            let mut checks = Vec::new();
            if let Some(n) = map.get("http") {
                checks.push(self.http_check(n, &what));
            }
            if let Some(n) = map.get("tcp") {
                checks.push(self.tcp_check(n, &what));
            }
            if let Some(n) = map.get("command") {
                checks.push(self.command_check(n, &what));
            }
            if checks.len() != 1 {
                self.problems.add(
                    map.pos,
                    format!("{what}: give exactly one of `http`, `tcp` or `command`"),
                    None,
                );
            }
            map.finish(self.problems);
            if let [Some(check)] = <[Option<Check>; 1]>::try_from(checks).unwrap_or([None]) {
                out.push(Probe {
                    name,
                    check,
                    every,
                    pos,
                });
            }
        }
        out
    }

    fn interval(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let d = node::duration(node, what, self.problems)?;
        if d < Duration::from_millis(50) {
            self.problems
                .add(node.pos, format!("{what}: at least 50ms"), None);
            return None;
        }
        Some(d)
    }

    fn http_check(&mut self, node: &Node, what: &str) -> Option<Check> {
        let what = format!("{what}: http");
        let mut map = Map::of(node, &what, &["url", "status", "within"], self.problems)?;
        let url = map
            .require("url", self.problems)
            .and_then(|n| self.url(n, &what));
        let status = map
            .get("status")
            .and_then(|n| node::number(n, &format!("{what}: status"), 100.0..=599.0, self.problems))
            .map_or(200, |s| s as u16);
        let within = map
            .get("within")
            .and_then(|n| node::duration(n, &format!("{what}: within"), self.problems))
            .unwrap_or(Duration::from_secs(1));
        map.finish(self.problems);
        Some(Check::Http {
            url: url?,
            status,
            within,
        })
    }

    /// An `http://host[:port]/path` URL whose host is a lab host or an address.
    fn url(&mut self, node: &Node, what: &str) -> Option<String> {
        let url = node::text(node, &format!("{what}: url"), self.problems)?;
        match crate::http::Url::parse(url) {
            Ok(parsed) => {
                self.check_host_ref(&parsed.host, node.pos, what);
                Some(url.to_owned())
            }
            Err(e) => {
                self.problems.add(
                    node.pos,
                    format!("{what}: `{url}`: {e}"),
                    Some(
                        "http://HOST:PORT/PATH (plain HTTP; HOST a lab host or an address)".into(),
                    ),
                );
                None
            }
        }
    }

    /// A probe or dump host must be a lab host, a pod target, a local name or an IP address (or
    /// on a cluster, a DNS name).
    fn check_host_ref(&mut self, host: &str, pos: Pos, what: &str) {
        if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
            return;
        }
        // On a cluster, a Service's DNS name (`checkout.shop.svc`), resolved where faultline
        // runs. Lab hosts and pod targets have no dots.
        if !self.names.pods.is_empty() && host.contains('.') {
            return;
        }
        if !self
            .names
            .hosts
            .iter()
            .chain(&self.names.pods)
            .any(|h| h == host)
        {
            let known: Vec<&str> = self
                .names
                .hosts
                .iter()
                .chain(&self.names.pods)
                .map(String::as_str)
                .collect();
            let hint = node::closest(host, &known)
                .map(|k| format!("did you mean `{k}`?"))
                .or_else(|| {
                    (!known.is_empty()).then(|| format!("lab hosts: {}", known.join(", ")))
                });
            self.problems.add(
                pos,
                if self.names.pods.is_empty() {
                    format!("{what}: `{host}` is not a lab host (nor an IP address)")
                } else {
                    format!(
                        "{what}: `{host}` is not a lab host or a pod target (nor an IP address)"
                    )
                },
                hint,
            );
        }
    }

    fn tcp_check(&mut self, node: &Node, what: &str) -> Option<Check> {
        let what = format!("{what}: tcp");
        let mut map = Map::of(node, &what, &["address", "within"], self.problems)?;
        let address = map.require("address", self.problems).and_then(|n| {
            let a = node::text(n, &format!("{what}: address"), self.problems)?;
            match a.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok_and(|p| p > 0) => {
                    let host = host.trim_matches(['[', ']']);
                    if self.names.pods.iter().any(|p| p == host) {
                        // faultline's end of the port-forward accepts every connection, whatever
                        // becomes of the pod's end: such a probe could never fail.
                        self.problems.add(
                            n.pos,
                            format!(
                                "{what}: `{host}` is a pod target, reached through a port-forward \
                                 whose loopback end accepts every connection: a TCP probe of it \
                                 always succeeds"
                            ),
                            Some(format!(
                                "use an http probe, `http: {{ url: \"http://{host}:{port}/…\" }}`, \
                                 or probe the Service's address from a job inside the cluster"
                            )),
                        );
                        return None;
                    }
                    self.check_host_ref(host, n.pos, &what);
                    Some(a.to_owned())
                }
                _ => {
                    self.problems.add(
                        n.pos,
                        format!("{what}: address `{a}` has no port"),
                        Some("HOST:PORT".into()),
                    );
                    None
                }
            }
        });
        let within = map
            .get("within")
            .and_then(|n| node::duration(n, &format!("{what}: within"), self.problems))
            .unwrap_or(Duration::from_secs(1));
        map.finish(self.problems);
        Some(Check::Tcp {
            address: address?,
            within,
        })
    }

    fn command_check(&mut self, node: &Node, what: &str) -> Option<Check> {
        let what = format!("{what}: command");
        let mut map = Map::of(node, &what, &["run", "within"], self.problems)?;
        let run = map
            .require("run", self.problems)
            .and_then(|n| node::strings(n, &format!("{what}: run"), self.problems));
        let within = map
            .get("within")
            .and_then(|n| node::duration(n, &format!("{what}: within"), self.problems))
            .unwrap_or(Duration::from_secs(5));
        map.finish(self.problems);
        let run: Vec<String> = run?.into_iter().map(|(s, _)| s).collect();
        if run.is_empty() {
            self.problems
                .add(node.pos, format!("{what}: run is empty"), None);
            return None;
        }
        Some(Check::Command { run, within })
    }

    fn captures(&mut self, node: &Node) -> (Vec<String>, Vec<DumpCapture>) {
        let Some(mut map) = Map::of(node, "captures", &["crashes", "dumps"], self.problems) else {
            return Default::default();
        };
        let mut crash_targets = Vec::new();
        if let Some(n) = map.get("crashes") {
            for (name, pos) in
                node::strings(n, "captures: crashes", self.problems).unwrap_or_default()
            {
                self.check_target(&name, pos, "captures: crashes");
                crash_targets.push(name);
            }
        }
        let mut dumps = Vec::new();
        if let Some(n) = map.get("dumps") {
            for (name, (pos, value)) in ordered(n, "captures: dumps", self.problems) {
                self.check_name(&name, pos, "dump");
                self.names.dumps.push(name.clone());
                let what = format!("dump {name}");
                let Some(mut d) = Map::of(value, &what, &["url", "every"], self.problems) else {
                    continue;
                };
                let url = d
                    .require("url", self.problems)
                    .and_then(|n| self.url(n, &what));
                let every = d
                    .get("every")
                    .and_then(|n| self.interval(n, &format!("{what}: every")))
                    .unwrap_or(Duration::from_secs(1));
                d.finish(self.problems);
                if let Some(url) = url {
                    dumps.push(DumpCapture {
                        name,
                        url,
                        every,
                        pos,
                    });
                }
            }
        }
        map.finish(self.problems);
        (crash_targets, dumps)
    }

    fn check_target(&mut self, name: &str, pos: Pos, what: &str) -> bool {
        let targets = self.names.targets();
        if targets.contains(&name) {
            return true;
        }
        let hint = node::closest(name, &targets)
            .map(|k| format!("did you mean `{k}`?"))
            .or_else(|| {
                if targets.is_empty() {
                    Some("declare it under `lab.hosts`, `processes` or `pods`".into())
                } else {
                    Some(format!("targets: {}", targets.join(", ")))
                }
            });
        self.problems.add(
            pos,
            if self.names.pods.is_empty() {
                format!("{what}: `{name}` is not a lab host or a process of this scenario")
            } else {
                format!(
                    "{what}: `{name}` is not a lab host, a process or a pod target of this scenario"
                )
            },
            hint,
        );
        false
    }

    fn steps(&mut self, node: &Node, what: &str, depth: usize) -> Vec<Step> {
        let Value::Seq(items) = &node.value else {
            self.problems.wrong_type(node, what, "a list of steps");
            return Vec::new();
        };
        let mut steps = Vec::new();
        for item in items {
            if let Some(step) = self.step(item, depth) {
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, node: &Node, depth: usize) -> Option<Step> {
        let entries = match &node.value {
            Value::Map(entries) if entries.len() == 1 => entries,
            Value::Str(s) => {
                self.problems.add(
                    node.pos,
                    format!("step `{s}` has no options"),
                    Some(format!(
                        "write `- {s}: {{...}}`; steps: {}",
                        STEP_KINDS.join(", ")
                    )),
                );
                return None;
            }
            _ => {
                self.problems.add(
                    node.pos,
                    "a step is a mapping with one key, its kind".to_string(),
                    Some(format!(
                        "`- partition: {{...}}`; steps: {}",
                        STEP_KINDS.join(", ")
                    )),
                );
                return None;
            }
        };
        let (kind, kpos, body) = &entries[0];
        let action = match kind.as_str() {
            "wait" => StepAction::Wait(node::duration(body, "wait", self.problems)?),
            "parallel" => {
                if depth >= 4 {
                    self.problems
                        .add(*kpos, "parallel groups nest at most 4 deep", None);
                    return None;
                }
                let inner = self.steps(body, "parallel", depth + 1);
                if inner.is_empty() {
                    self.problems
                        .add(*kpos, "parallel: the group has no steps", None);
                    return None;
                }
                StepAction::Parallel(inner)
            }
            "partition" | "loss" | "pause" | "stress" | "kill" | "pod_kill" => {
                StepAction::Fault(self.fault(kind, body)?)
            }
            other => {
                self.problems.add(
                    *kpos,
                    format!("unknown step `{other}`"),
                    Some(match node::closest(other, STEP_KINDS) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("steps: {}", STEP_KINDS.join(", ")),
                    }),
                );
                return None;
            }
        };
        Some(Step { pos: *kpos, action })
    }

    fn fault(&mut self, kind: &str, node: &Node) -> Option<FaultStep> {
        const NET: &[&str] = &[
            "target",
            "peers",
            "ports",
            "protocol",
            "direction",
            "reject",
            "for",
        ];
        const LOSS: &[&str] = &[
            "target",
            "peers",
            "ports",
            "protocol",
            "direction",
            "percent",
            "for",
        ];
        let known: &'static [&'static str] = match kind {
            "partition" => NET,
            "loss" => LOSS,
            "pause" => &["target", "for"],
            "stress" => &["target", "workers", "load", "for"],
            "pod_kill" => &["target", "grace", "force", "timeout"],
            _ => &["target", "signal", "grace"],
        };
        let mut map = Map::of(node, kind, known, self.problems)?;
        let target = map.require("target", self.problems).and_then(|n| {
            let name = node::text(n, &format!("{kind}: target"), self.problems)?;
            self.check_target(name, n.pos, &format!("{kind}: target"))
                .then(|| name.to_owned())
        });
        if kind == "pod_kill"
            && let Some(name) = &target
            && !self.names.pods.contains(name)
        {
            self.problems.add(
                map.pos,
                format!("pod_kill: `{name}` is not a pod target"),
                Some("a pod kill deletes pods through the API server: declare them under `pods`; `kill` signals a process".into()),
            );
        }
        let duration = if kind == "kill" || kind == "pod_kill" {
            Some(Duration::ZERO)
        } else {
            map.require("for", self.problems).and_then(|n| {
                let d = node::duration(n, &format!("{kind}: for"), self.problems)?;
                if d.is_zero() {
                    self.problems
                        .add(n.pos, format!("{kind}: for must be more than 0"), None);
                    return None;
                }
                Some(d)
            })
        };
        let fault = match kind {
            "partition" => self.net(&mut map, kind).map(Fault::Partition),
            "loss" => {
                let net = self.net(&mut map, kind);
                let percent = map
                    .require("percent", self.problems)
                    .and_then(|n| node::number(n, "loss: percent", 1.0..=100.0, self.problems));
                match (net, percent) {
                    (Some(net), Some(p)) => Some(Fault::Loss {
                        net,
                        percent: p as u8,
                    }),
                    _ => None,
                }
            }
            "pause" => Some(Fault::Pause),
            "pod_kill" => {
                let force = match map.get("force") {
                    Some(n) => node::boolean(n, "pod_kill: force", self.problems),
                    None => Some(false),
                };
                let grace = map
                    .get("grace")
                    .map(|n| (n.pos, node::duration(n, "pod_kill: grace", self.problems)));
                let grace = match (force, grace) {
                    (Some(true), Some((pos, _))) => {
                        self.problems.add(
                            pos,
                            "pod_kill: give `grace` or `force: true`, not both",
                            None,
                        );
                        None
                    }
                    (Some(true), None) => Some(Duration::ZERO),
                    (Some(false), Some((pos, Some(d)))) if d.is_zero() => {
                        self.problems.add(
                            pos,
                            "pod_kill: a grace of 0 is `force: true`",
                            Some("write `force: true` to delete at once".into()),
                        );
                        None
                    }
                    (Some(false), Some((_, d))) => d,
                    (Some(false), None) => Some(Duration::from_secs(30)),
                    (None, _) => None,
                };
                let timeout = match map.get("timeout") {
                    None => Some(Duration::from_secs(120)),
                    Some(n) => node::duration(n, "pod_kill: timeout", self.problems).filter(|d| {
                        if d.is_zero() {
                            self.problems.add(
                                n.pos,
                                "pod_kill: timeout must be more than 0",
                                Some("how long the replacement may take to be Ready".into()),
                            );
                        }
                        !d.is_zero()
                    }),
                };
                match (grace, timeout) {
                    (Some(grace), Some(timeout)) => Some(Fault::PodKill { grace, timeout }),
                    _ => None,
                }
            }
            "stress" => {
                let workers = map
                    .get("workers")
                    .and_then(|n| node::number(n, "stress: workers", 1.0..=256.0, self.problems))
                    .map_or(Some(1), |w| Some(w as u32));
                let load = map
                    .get("load")
                    .and_then(|n| {
                        node::number(n, "stress: load (percent)", 1.0..=100.0, self.problems)
                    })
                    .map_or(Some(100), |l| Some(l as u8));
                Some(Fault::Stress {
                    workers: workers?,
                    load: load?,
                })
            }
            _ => {
                let signal = match map.get("signal") {
                    Some(n) => node::text(n, "kill: signal", self.problems).and_then(|s| {
                        match faultline_fault::parse_signal(s) {
                            Ok(_) => Some(s.to_owned()),
                            Err(e) => {
                                self.problems.add(n.pos, format!("kill: signal: {e}"), None);
                                None
                            }
                        }
                    }),
                    None => Some("TERM".into()),
                };
                let grace = map
                    .get("grace")
                    .and_then(|n| node::duration(n, "kill: grace", self.problems))
                    .unwrap_or(Duration::from_secs(10));
                signal.map(|signal| Fault::Kill { signal, grace })
            }
        };
        if let (Some(Fault::Partition(net) | Fault::Loss { net, .. }), Some(name)) =
            (&fault, &target)
            && net.peers.contains(name)
        {
            self.problems.add(
                map.pos,
                format!("{kind}: `{name}` is among its own peers"),
                Some("the peers are who the target is cut off from".into()),
            );
        }
        // A pause of a process that has no way to be resumed, a stress without a cgroup…:
        // checked when the lab is up (they depend on the machine), not here.
        map.finish(self.problems);
        Some(FaultStep {
            target: target?,
            fault: fault?,
            duration: duration?,
        })
    }

    fn net(&mut self, map: &mut Map<'_>, kind: &str) -> Option<NetOptions> {
        let peers = map.require("peers", self.problems).and_then(|n| {
            let peers = node::strings(n, &format!("{kind}: peers"), self.problems)?;
            if peers.is_empty() {
                self.problems.add(
                    n.pos,
                    format!("{kind}: peers is empty"),
                    Some(
                        "name the lab hosts or addresses to cut off; never all traffic by accident"
                            .into(),
                    ),
                );
                return None;
            }
            let mut ok = true;
            for (peer, pos) in &peers {
                if self.names.hosts.contains(peer) || self.names.pods.contains(peer) {
                    continue;
                }
                if peer.parse::<faultline_fault::Cidr>().is_err() {
                    let known: Vec<&str> = self
                        .names
                        .hosts
                        .iter()
                        .chain(&self.names.pods)
                        .map(String::as_str)
                        .collect();
                    self.problems.add(
                        *pos,
                        format!(
                            "{kind}: peer `{peer}` is neither a lab host, a pod target nor an address or CIDR"
                        ),
                        node::closest(peer, &known).map(|k| format!("did you mean `{k}`?")),
                    );
                    ok = false;
                }
            }
            ok.then(|| peers.into_iter().map(|(p, _)| p).collect::<Vec<_>>())
        });
        let ports = match map.get("ports") {
            Some(n) => match &n.value {
                Value::Seq(items) => items
                    .iter()
                    .map(|i| {
                        node::number(i, &format!("{kind}: ports"), 1.0..=65535.0, self.problems)
                            .map(|p| p as u16)
                    })
                    .collect::<Option<Vec<_>>>(),
                _ => node::number(n, &format!("{kind}: ports"), 1.0..=65535.0, self.problems)
                    .map(|p| vec![p as u16]),
            },
            None => Some(Vec::new()),
        };
        let protocol = match map.get("protocol") {
            Some(n) => match node::text(n, &format!("{kind}: protocol"), self.problems) {
                Some(p @ ("tcp" | "udp" | "icmp")) => Some(Some(p.to_owned())),
                Some(other) => {
                    self.problems.add(
                        n.pos,
                        format!("{kind}: protocol `{other}` is not tcp, udp or icmp"),
                        None,
                    );
                    None
                }
                None => None,
            },
            None => Some(None),
        };
        if let (Some(ports), Some(Some(p))) = (&ports, &protocol)
            && !ports.is_empty()
            && p == "icmp"
        {
            self.problems.add(
                map.pos,
                format!("{kind}: icmp has no ports"),
                Some("drop `ports`, or use tcp or udp".into()),
            );
        }
        let direction = match map.get("direction") {
            Some(n) => match node::text(n, &format!("{kind}: direction"), self.problems) {
                Some(d @ ("to" | "from" | "both")) => Some(d.to_owned()),
                Some(other) => {
                    self.problems.add(
                        n.pos,
                        format!("{kind}: direction `{other}` is not to, from or both"),
                        None,
                    );
                    None
                }
                None => None,
            },
            None => Some("both".to_owned()),
        };
        let reject = match map.get("reject") {
            Some(n) => node::boolean(n, &format!("{kind}: reject"), self.problems),
            None => Some(false),
        };
        Some(NetOptions {
            peers: peers?,
            ports: ports?,
            protocol: protocol?,
            direction: direction?,
            reject: reject?,
        })
    }

    fn assertions(&mut self, node: &Node) -> Vec<Assertion> {
        let Value::Seq(items) = &node.value else {
            self.problems
                .wrong_type(node, "assertions", "a list of assertions");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let entries = match &item.value {
                Value::Map(entries) if entries.len() == 1 => entries,
                _ => {
                    self.problems.add(
                        item.pos,
                        "an assertion is a mapping with one key, its kind",
                        Some(format!("assertions: {}", ASSERTION_KINDS.join(", "))),
                    );
                    continue;
                }
            };
            let (kind, kpos, body) = &entries[0];
            let check = match kind.as_str() {
                "probe_success" => self.probe_success(body),
                "recovers" => self.recovers(body),
                "no_panics" => self
                    .name_list(body, "no_panics", true)
                    .map(|targets| AssertionCheck::NoPanics { targets }),
                "no_leaks" => self
                    .name_list(body, "no_leaks", false)
                    .map(|dumps| AssertionCheck::NoLeaks { dumps }),
                "replaced" => self.replaced(body),
                other => {
                    self.problems.add(
                        *kpos,
                        format!("unknown assertion `{other}`"),
                        Some(match node::closest(other, ASSERTION_KINDS) {
                            Some(k) => format!("did you mean `{k}`?"),
                            None => format!("assertions: {}", ASSERTION_KINDS.join(", ")),
                        }),
                    );
                    None
                }
            };
            if let Some(check) = check {
                out.push(Assertion { pos: *kpos, check });
            }
        }
        out
    }

    fn probe_ref(&mut self, node: &Node, what: &str) -> Option<String> {
        let name = node::text(node, what, self.problems)?;
        if self.names.probes.iter().any(|p| p == name) {
            return Some(name.to_owned());
        }
        let known: Vec<&str> = self.names.probes.iter().map(String::as_str).collect();
        self.problems.add(
            node.pos,
            format!("{what}: no probe `{name}`"),
            node::closest(name, &known)
                .map(|k| format!("did you mean `{k}`?"))
                .or_else(|| Some(format!("probes: {}", known.join(", ")))),
        );
        None
    }

    fn probe_success(&mut self, node: &Node) -> Option<AssertionCheck> {
        let what = "probe_success";
        let mut map = Map::of(node, what, &["probe", "phase", "min"], self.problems)?;
        let probe = map
            .require("probe", self.problems)
            .and_then(|n| self.probe_ref(n, "probe_success: probe"));
        let phase = match map.get("phase") {
            None => Some(Phase::All),
            Some(n) => match node::text(n, "probe_success: phase", self.problems) {
                Some("before") => Some(Phase::Before),
                Some("during") => Some(Phase::During),
                Some("after") => Some(Phase::After),
                Some("all") => Some(Phase::All),
                Some(other) => {
                    self.problems.add(
                        n.pos,
                        format!(
                            "probe_success: phase `{other}` is not before, during, after or all"
                        ),
                        None,
                    );
                    None
                }
                None => None,
            },
        };
        let min = map.require("min", self.problems).and_then(|n| {
            let written_as_percent =
                matches!(&n.value, Value::Str(s) if s.trim_end().ends_with('%'));
            let x = node::number(n, "probe_success: min", 0.0..=100.0, self.problems)?;
            if written_as_percent || x > 1.0 {
                Some(x / 100.0)
            } else {
                Some(x)
            }
        });
        map.finish(self.problems);
        Some(AssertionCheck::ProbeSuccess {
            probe: probe?,
            phase: phase?,
            min: min?,
        })
    }

    fn recovers(&mut self, node: &Node) -> Option<AssertionCheck> {
        let mut map = Map::of(node, "recovers", &["probe", "within"], self.problems)?;
        let probe = map
            .require("probe", self.problems)
            .and_then(|n| self.probe_ref(n, "recovers: probe"));
        let within = map
            .require("within", self.problems)
            .and_then(|n| node::duration(n, "recovers: within", self.problems));
        map.finish(self.problems);
        Some(AssertionCheck::Recovers {
            probe: probe?,
            within: within?,
        })
    }

    fn replaced(&mut self, node: &Node) -> Option<AssertionCheck> {
        let mut map = Map::of(node, "replaced", &["target", "within"], self.problems)?;
        let target = match map.get("target") {
            None => Some(None),
            Some(n) => node::text(n, "replaced: target", self.problems).and_then(|name| {
                if self.names.pods.iter().any(|p| p == name) {
                    return Some(Some(name.to_owned()));
                }
                let known: Vec<&str> = self.names.pods.iter().map(String::as_str).collect();
                self.problems.add(
                    n.pos,
                    format!("replaced: `{name}` is not a pod target"),
                    node::closest(name, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("declare it under `pods`".into())),
                );
                None
            }),
        };
        let within = map
            .require("within", self.problems)
            .and_then(|n| node::duration(n, "replaced: within", self.problems));
        map.finish(self.problems);
        Some(AssertionCheck::Replaced {
            target: target?,
            within: within?,
        })
    }

    /// `true` (everything), or a list of target / dump names.
    fn name_list(&mut self, node: &Node, what: &str, targets: bool) -> Option<Vec<String>> {
        if let Value::Bool(true) = node.value {
            return Some(Vec::new());
        }
        let names = node::strings(node, what, self.problems)?;
        let mut out = Vec::new();
        for (name, pos) in names {
            if targets {
                if !self.check_target(&name, pos, what) {
                    continue;
                }
            } else if !self.names.dumps.contains(&name) {
                let known: Vec<&str> = self.names.dumps.iter().map(String::as_str).collect();
                self.problems.add(
                    pos,
                    format!("{what}: no dump capture `{name}`"),
                    node::closest(&name, &known)
                        .map(|k| format!("did you mean `{k}`?"))
                        .or_else(|| Some("declare it under `captures.dumps`".into())),
                );
                continue;
            }
            out.push(name);
        }
        Some(out)
    }
}

/// Where a top-level key is written, if it is.
fn root_key(root: &Node, key: &str) -> Option<Pos> {
    match &root.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, p, _)| *p),
        _ => None,
    }
}

/// A mapping's entries in file order.
fn ordered<'a>(
    node: &'a Node,
    what: &str,
    problems: &mut Problems,
) -> Vec<(String, (Pos, &'a Node))> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, pos, v)| (k.clone(), (*pos, v)))
            .collect(),
        _ => {
            problems.wrong_type(node, what, "a mapping of names");
            Vec::new()
        }
    }
}

/// The targets of the pod kills among `steps`, parallel groups included.
fn pod_kill_targets(steps: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for step in steps {
        match &step.action {
            StepAction::Fault(f) if matches!(f.fault, Fault::PodKill { .. }) => {
                out.push(f.target.clone());
            }
            StepAction::Parallel(inner) => out.extend(pod_kill_targets(inner)),
            _ => {}
        }
    }
    out
}
