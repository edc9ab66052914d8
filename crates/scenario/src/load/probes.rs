//! What a run watches: `probes` (http, tcp, command), each host they name checked, and
//! `captures` (the crash targets, and the dumps scraped during the run).

use std::time::Duration;

use super::{Reader, ordered};
use crate::model::*;
use crate::node::{self, Map, Node, Pos};

impl Reader<'_> {
    pub(super) fn probes(&mut self, node: &Node) -> Vec<Probe> {
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

    pub(super) fn interval(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let d = node::duration(node, what, self.problems)?;
        if d < Duration::from_millis(50) {
            self.problems
                .add(node.pos, format!("{what}: at least 50ms"), None);
            return None;
        }
        Some(d)
    }

    pub(super) fn http_check(&mut self, node: &Node, what: &str) -> Option<Check> {
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
    pub(super) fn url(&mut self, node: &Node, what: &str) -> Option<String> {
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
    pub(super) fn check_host_ref(&mut self, host: &str, pos: Pos, what: &str) {
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

    pub(super) fn tcp_check(&mut self, node: &Node, what: &str) -> Option<Check> {
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

    pub(super) fn command_check(&mut self, node: &Node, what: &str) -> Option<Check> {
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

    pub(super) fn captures(&mut self, node: &Node) -> (Vec<String>, Vec<DumpCapture>) {
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
}
