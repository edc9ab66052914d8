//! The targets a scenario names: `lab` (hosts, their commands and restarts), local
//! `processes`, `pods` (selectors, modes, containers), and how the run reaches them and their
//! debug files (`kubernetes`, `debug`).

use std::path::Path;
use std::time::Duration;

use super::{Reader, ordered};
use crate::model::*;
use crate::node::{self, Map, Node, Pos, Value};

impl Reader<'_> {
    pub(super) fn lab(&mut self, node: &Node) -> Vec<Host> {
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
    pub(super) fn check_substitutions(&mut self, text: &str, pos: Pos, what: &str) {
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

    pub(super) fn check_name(&mut self, name: &str, pos: Pos, what: &str) {
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

    pub(super) fn host(&mut self, name: String, pos: Pos, node: &Node) -> Option<Host> {
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

    pub(super) fn processes(&mut self, node: &Node, base: &Path) -> Vec<LocalProcess> {
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

    pub(super) fn pods(&mut self, node: &Node) -> Vec<PodTarget> {
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
    pub(super) fn pod_mode(&mut self, node: &Node, what: &str) -> Option<PodMode> {
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

    pub(super) fn kubernetes(&mut self, node: &Node, base: &Path) -> Kubernetes {
        let mut out = Kubernetes::default();
        let Some(mut map) = Map::of(
            node,
            "kubernetes",
            &[
                "context",
                "agent_namespace",
                "agent_token_file",
                "agent_ca",
                "agent_cert",
                "agent_key",
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
        for (key, slot) in [
            ("agent_ca", &mut out.agent_ca),
            ("agent_cert", &mut out.agent_cert),
            ("agent_key", &mut out.agent_key),
        ] {
            if let Some(n) = map.get(key) {
                *slot = node::text(n, &format!("kubernetes: {key}"), self.problems)
                    .map(|f| base.join(f));
            }
        }
        if out.agent_cert.is_some() != out.agent_key.is_some() {
            self.problems.add(
                node.pos,
                "kubernetes: agent_cert and agent_key go together".to_owned(),
                Some("give both (the runner's client certificate and its key), or neither".into()),
            );
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

    pub(super) fn debug(&mut self, node: &Node, base: &Path) -> Debug {
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
}
