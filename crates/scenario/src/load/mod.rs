//! Reading a scenario file: YAML → [`Node`] tree → [`Scenario`], reporting every mistake at
//! once with its line and column.
//!
//! This module reads the top level, and checks what only the whole file can tell (targets
//! named by steps and assertions, a replaced assertion without a pod kill); each section is
//! read by a module of its own, as methods of the one [`Reader`]: `targets` (`lab`,
//! `processes`, `pods`, `kubernetes`, `debug`), `probes` (`probes`, `captures`), `steps` and
//! `assertions`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::*;
use crate::node::{self, Map, Node, Pos, Problem, Problems, Value};

mod assertions;
mod probes;
mod steps;
mod targets;

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

/// The top-level keys.
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

/// Names declared so far, to check references against.
#[derive(Default)]
pub(super) struct Names {
    pub(super) hosts: Vec<String>,
    pub(super) processes: Vec<String>,
    pub(super) pods: Vec<String>,
    pub(super) probes: Vec<String>,
    pub(super) dumps: Vec<String>,
}

impl Names {
    pub(super) fn targets(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .chain(&self.processes)
            .chain(&self.pods)
            .map(String::as_str)
            .collect()
    }
}

/// Reads a scenario's tree, each section in its module, into the problems it finds.
pub(super) struct Reader<'p> {
    pub(super) problems: &'p mut Problems,
    pub(super) names: Names,
}

impl<'p> Reader<'p> {
    fn new(problems: &'p mut Problems) -> Self {
        Self {
            problems,
            names: Names::default(),
        }
    }

    pub(super) fn scenario(&mut self, root: &Node, base_dir: PathBuf) -> Option<Scenario> {
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
pub(super) fn ordered<'a>(
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
