//! The verdict's terms: `assertions` (probe success, recovery, no panics, no leaks, pods
//! replaced), each probe and target they name checked.

use super::Reader;
use crate::model::*;
use crate::node::{self, Map, Node, Value};

/// The kinds of assertion, for the nearest one to a misspelling.
const ASSERTION_KINDS: &[&str] = &[
    "probe_success",
    "recovers",
    "no_panics",
    "no_races",
    "no_leaks",
    "replaced",
];

impl Reader<'_> {
    pub(super) fn assertions(&mut self, node: &Node) -> Vec<Assertion> {
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
                "no_races" => self
                    .name_list(body, "no_races", true)
                    .map(|targets| AssertionCheck::NoRaces { targets }),
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

    pub(super) fn probe_ref(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn probe_success(&mut self, node: &Node) -> Option<AssertionCheck> {
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

    pub(super) fn recovers(&mut self, node: &Node) -> Option<AssertionCheck> {
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

    pub(super) fn replaced(&mut self, node: &Node) -> Option<AssertionCheck> {
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
    pub(super) fn name_list(
        &mut self,
        node: &Node,
        what: &str,
        targets: bool,
    ) -> Option<Vec<String>> {
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
