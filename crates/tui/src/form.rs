//! The inject form: a few fields with defaults, checked as the user types, turned into the
//! agent's fault request only when every field is valid.

use std::net::IpAddr;
use std::time::Duration;

use faultline_agent::spec::FaultSpec;

/// The fault kinds, by their keys on the Targets view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `k`.
    Kill,
    /// `p`.
    Pause,
    /// `n`.
    Partition,
    /// `l`.
    Loss,
    /// `s`.
    Stress,
}

impl Kind {
    /// Its name, as the agent spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Loss => "loss",
            Kind::Stress => "stress",
        }
    }
}

/// The longest a fault from the screen may last.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// One field of the form.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its label.
    pub label: &'static str,
    /// What is typed (or chosen).
    pub value: String,
    /// The choices, when it is a choice (Space or ←/→ cycle them).
    pub choices: &'static [&'static str],
    /// A hint shown beside it.
    pub hint: String,
    /// Why the value is not valid, once checked.
    pub error: Option<String>,
}

impl Field {
    fn text(label: &'static str, value: &str, hint: impl Into<String>) -> Self {
        Self {
            label,
            value: value.to_owned(),
            choices: &[],
            hint: hint.into(),
            error: None,
        }
    }

    fn choice(label: &'static str, choices: &'static [&'static str]) -> Self {
        Self {
            label,
            value: choices[0].to_owned(),
            choices,
            hint: choices.join(" / "),
            error: None,
        }
    }

    /// Moves a choice field to its next (`forward`) or previous choice.
    pub fn cycle(&mut self, forward: bool) {
        if self.choices.is_empty() {
            return;
        }
        let n = self.choices.len();
        let at = self
            .choices
            .iter()
            .position(|c| *c == self.value)
            .unwrap_or(0);
        let next = if forward {
            (at + 1) % n
        } else {
            (at + n - 1) % n
        };
        self.value = self.choices[next].to_owned();
    }
}

/// An open inject form.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// The fault.
    pub kind: Kind,
    /// The agent that holds the target.
    pub agent: usize,
    /// The target's pid.
    pub pid: u32,
    /// The target's pod UID (`--kube`): the fault is aimed at the pod, not at `pid`.
    pub pod: Option<String>,
    /// The target's name, for the title.
    pub target: String,
    /// The fields, in order.
    pub fields: Vec<Field>,
    /// The field with the cursor.
    pub focus: usize,
    /// The agent's refusal of the last submission, shown under the fields.
    pub refused: Option<String>,
    /// Whether a submission is on its way to the agent.
    pub sending: bool,
}

/// Peers a partition can name: lab host names and their addresses.
pub type Peers = [(String, String)];

impl Form {
    /// A form for `kind` on a target, with defaults. `peers` are the names offered for
    /// network faults (lab hosts other than the target).
    pub fn new(kind: Kind, agent: usize, pid: u32, target: &str, peers: &Peers) -> Self {
        let peer_hint = if peers.is_empty() {
            "addresses or CIDRs, comma-separated".to_owned()
        } else {
            format!(
                "hosts ({}) or CIDRs, comma-separated",
                peers
                    .iter()
                    .filter(|(name, _)| name != target)
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let duration = || Field::text("duration", "30s", "30s, 2m; at most 24h");
        let fields = match kind {
            Kind::Kill => vec![
                Field::text("signal", "TERM", "TERM, INT, KILL, HUP…"),
                Field::text("grace", "10s", "then SIGKILL"),
            ],
            Kind::Pause => vec![duration()],
            Kind::Partition => vec![
                Field::text("peers", "", peer_hint),
                Field::text("ports", "", "empty: all ports"),
                Field::choice("direction", &["both", "to", "from"]),
                Field::choice("reject", &["no", "yes"]),
                duration(),
            ],
            Kind::Loss => vec![
                Field::text("percent", "50", "1 to 100"),
                Field::text("peers", "", peer_hint),
                Field::text("ports", "", "empty: all ports"),
                Field::choice("direction", &["both", "to", "from"]),
                duration(),
            ],
            Kind::Stress => vec![
                Field::text("workers", "1", "1 to 64"),
                Field::text("load", "100", "% of the target's CPU quota, 1 to 100"),
                duration(),
            ],
        };
        Self {
            kind,
            agent,
            pid,
            pod: None,
            target: target.to_owned(),
            fields,
            focus: 0,
            refused: None,
            sending: false,
        }
    }

    fn value(&self, label: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map_or("", |f| f.value.trim())
    }

    /// Checks every field, marks the invalid ones, and returns the request when all are
    /// valid. Host names in `peers` are replaced by their addresses.
    pub fn validate(&mut self, peers: &Peers) -> Option<FaultSpec> {
        for field in &mut self.fields {
            field.error = None;
        }
        let mut errors: Vec<(&'static str, String)> = Vec::new();
        let mut check = |label: &'static str, result: Result<(), String>| {
            if let Err(e) = result {
                errors.push((label, e));
            }
        };
        let seconds = parse_duration(self.value("duration"));
        if self.kind != Kind::Kill {
            check(
                "duration",
                seconds.as_ref().map(|_| ()).map_err(Clone::clone),
            );
        }
        // A grace period may be 0 (SIGKILL right after the signal); a duration may not.
        let grace = match self.value("grace") {
            "0" | "0s" => Ok(Duration::ZERO),
            text => parse_duration(text),
        };
        if self.kind == Kind::Kill {
            check("grace", grace.as_ref().map(|_| ()).map_err(Clone::clone));
            let signal = self.value("signal");
            check(
                "signal",
                if signal.is_empty() || !signal.chars().all(|c| c.is_ascii_alphanumeric()) {
                    Err("a signal name (TERM) or number".into())
                } else {
                    Ok(())
                },
            );
        }
        let resolved = parse_peers(self.value("peers"), peers);
        let ports = parse_ports(self.value("ports"));
        if matches!(self.kind, Kind::Partition | Kind::Loss) {
            check("peers", resolved.as_ref().map(|_| ()).map_err(Clone::clone));
            check("ports", ports.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        let number = |label: &str, range: std::ops::RangeInclusive<u32>| {
            let text = self.value(label);
            text.parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| format!("a whole number from {} to {}", range.start(), range.end()))
        };
        let percent = number("percent", 1..=100);
        let workers = number("workers", 1..=64);
        let load = number("load", 1..=100);
        match self.kind {
            Kind::Loss => check(
                "percent",
                percent.as_ref().map(|_| ()).map_err(Clone::clone),
            ),
            Kind::Stress => {
                check(
                    "workers",
                    workers.as_ref().map(|_| ()).map_err(Clone::clone),
                );
                check("load", load.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            _ => {}
        }
        if !errors.is_empty() {
            for (label, error) in errors {
                if let Some(field) = self.fields.iter_mut().find(|f| f.label == label) {
                    field.error = Some(error);
                }
            }
            return None;
        }
        // A pod is found by its node's agent; a process by its pid.
        let pid = self.pod.is_none().then_some(self.pid);
        // Checked above for every kind that has a duration; a kill has none.
        let seconds = seconds.map_or(0.0, |d| d.as_secs_f64());
        let direction = self.value("direction").to_owned();
        let mut spec = match self.kind {
            Kind::Kill => FaultSpec::Kill {
                pid,
                cgroup: None,
                pod: None,
                signal: self.value("signal").to_owned(),
                grace_seconds: grace.ok()?.as_secs_f64(),
            },
            Kind::Pause => FaultSpec::Pause {
                pid,
                cgroup: None,
                pod: None,
                seconds,
            },
            Kind::Partition => FaultSpec::Partition {
                pid,
                cgroup: None,
                pod: None,
                peers: resolved.ok()?,
                ports: ports.ok()?,
                protocol: None,
                direction,
                reject: self.value("reject") == "yes",
                allow_host_netns: false,
                seconds,
            },
            Kind::Loss => FaultSpec::Loss {
                pid,
                cgroup: None,
                pod: None,
                percent: u8::try_from(percent.ok()?).ok()?,
                peers: resolved.ok()?,
                ports: ports.ok()?,
                protocol: None,
                direction,
                allow_host_netns: false,
                seconds,
            },
            Kind::Stress => FaultSpec::Stress {
                pid,
                cgroup: None,
                pod: None,
                workers: workers.ok()?,
                load: u8::try_from(load.ok()?).ok()?,
                seconds,
            },
        };
        if let Some(uid) = &self.pod {
            spec.aim_at_pod(faultline_agent::spec::PodTarget {
                uid: uid.clone(),
                container: None,
            })
            .ok()?;
        }
        Some(spec)
    }
}

/// A positive duration of at most [`MAX_DURATION`] (`30s`, `2m`, `1h30m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "a duration like 30s or 2m";
    if text.is_empty() {
        return Err(format!("required: {expected}"));
    }
    let duration = humantime::parse_duration(text).map_err(|_| expected.to_owned())?;
    if duration.is_zero() {
        return Err("must be longer than 0s".into());
    }
    if duration > MAX_DURATION {
        return Err("at most 24h: a fault from the screen is never unbounded".into());
    }
    Ok(duration)
}

/// Addresses, CIDRs or lab host names, separated by commas or spaces; host names become their
/// addresses.
fn parse_peers(text: &str, peers: &Peers) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
        if let Some((_, address)) = peers.iter().find(|(name, _)| name == item) {
            out.push(address.clone());
            continue;
        }
        let (addr, prefix) = item.split_once('/').unwrap_or((item, ""));
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{item:?}: not a host here, an address or a CIDR"))?;
        if !prefix.is_empty() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            match prefix.parse::<u8>() {
                Ok(p) if (1..=max).contains(&p) => {}
                _ => return Err(format!("{item:?}: the prefix must be 1 to {max}")),
            }
        }
        out.push(item.to_owned());
    }
    if out.is_empty() {
        return Err("name at least one peer: never all traffic by accident".into());
    }
    Ok(out)
}

fn parse_ports(text: &str) -> Result<Vec<u16>, String> {
    text.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{p:?}: a port is 1 to 65535"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Vec<(String, String)> {
        vec![
            ("checkout".into(), "10.77.0.2".into()),
            ("inventory".into(), "10.77.0.3".into()),
        ]
    }

    fn set(form: &mut Form, label: &str, value: &str) {
        form.fields
            .iter_mut()
            .find(|f| f.label == label)
            .unwrap()
            .value = value.into();
    }

    #[test]
    fn a_partition_names_hosts_and_gets_their_addresses() {
        let mut form = Form::new(Kind::Partition, 0, 42, "checkout", &peers());
        assert!(form.fields[0].hint.contains("inventory"));
        assert!(!form.fields[0].hint.contains("checkout"), "not itself");
        set(&mut form, "peers", "inventory, 192.0.2.0/24");
        set(&mut form, "ports", "8080");
        form.fields[2].cycle(true);
        let spec = form.validate(&peers()).unwrap();
        let FaultSpec::Partition {
            pid,
            peers,
            ports,
            direction,
            seconds,
            ..
        } = spec
        else {
            panic!("{spec:?}")
        };
        assert_eq!(pid, Some(42));
        assert_eq!(peers, ["10.77.0.3", "192.0.2.0/24"]);
        assert_eq!(ports, [8080]);
        assert_eq!(direction, "to");
        assert!((seconds - 30.0).abs() < f64::EPSILON, "the default");
    }

    #[test]
    fn every_bad_field_is_marked_and_nothing_is_made() {
        let mut form = Form::new(Kind::Loss, 0, 42, "checkout", &peers());
        set(&mut form, "percent", "150");
        set(&mut form, "peers", "");
        set(&mut form, "ports", "http");
        set(&mut form, "duration", "forever");
        assert_eq!(form.validate(&peers()), None);
        let errors: Vec<(&str, &str)> = form
            .fields
            .iter()
            .filter_map(|f| Some((f.label, f.error.as_deref()?)))
            .collect();
        assert_eq!(
            errors,
            [
                ("percent", "a whole number from 1 to 100"),
                (
                    "peers",
                    "name at least one peer: never all traffic by accident"
                ),
                ("ports", "\"http\": a port is 1 to 65535"),
                ("duration", "a duration like 30s or 2m"),
            ]
        );
    }

    #[test]
    fn every_kind_is_sent_with_its_defaults() {
        for kind in [
            Kind::Kill,
            Kind::Pause,
            Kind::Partition,
            Kind::Loss,
            Kind::Stress,
        ] {
            let mut form = Form::new(kind, 0, 42, "checkout", &peers());
            if matches!(kind, Kind::Partition | Kind::Loss) {
                set(&mut form, "peers", "inventory");
            }
            let spec = form.validate(&peers());
            assert!(spec.is_some(), "{kind:?}: {:?}", form.fields);
            let spec = spec.unwrap();
            assert_eq!(spec.kind(), kind.name());
            let expected = if kind == Kind::Kill { 0.0 } else { 30.0 };
            assert!((spec.seconds() - expected).abs() < f64::EPSILON, "{kind:?}");
        }
    }

    #[test]
    fn durations_are_bounded() {
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("25h")
                .unwrap_err()
                .contains("never unbounded")
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_peers("10.0.0.0/0", &[]).is_err());
        assert!(
            parse_peers("db", &[])
                .unwrap_err()
                .contains("not a host here")
        );
    }
}
