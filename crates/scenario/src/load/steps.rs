//! The timeline: `steps` (waits, parallel groups, and each fault with its options), each
//! target they name checked.

use std::time::Duration;

use super::Reader;
use crate::model::*;
use crate::node::{self, Map, Node, Pos, Value};

/// The kinds of step, for the nearest one to a misspelling.
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
impl Reader<'_> {
    pub(super) fn check_target(&mut self, name: &str, pos: Pos, what: &str) -> bool {
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

    pub(super) fn steps(&mut self, node: &Node, what: &str, depth: usize) -> Vec<Step> {
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

    pub(super) fn step(&mut self, node: &Node, depth: usize) -> Option<Step> {
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

    pub(super) fn fault(&mut self, kind: &str, node: &Node) -> Option<FaultStep> {
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

    pub(super) fn net(&mut self, map: &mut Map<'_>, kind: &str) -> Option<NetOptions> {
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
}
