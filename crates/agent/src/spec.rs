//! What crosses the API: a fault request, and what the agent says about a fault.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `POST /v1/faults`: a fault and, optionally, a lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateFault {
    /// The fault.
    pub fault: FaultSpec,
    /// With a lease, the fault is reverted unless renewed within this many seconds
    /// (`POST /v1/faults/{id}/renew`). Without, it lasts its duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<f64>,
    /// Names this create for retries: the same key with the same request, sent again (its
    /// answer lost), gets the fault the first one made instead of a second fault; the same
    /// key with another request is refused (409). Kept by the agent for an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A fault, as a client asks for it. Externally tagged (`{"partition": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultSpec {
    /// Drop (or reject) traffic between the target's network namespace and peers.
    Partition {
        /// The target process (or give `cgroup`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The target cgroup directory (v1 or v2), for all of its processes (or give `pid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        /// The target pod on this node, by UID, and optionally one of its containers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodTarget>,
        /// Peer addresses or CIDR blocks (at least one).
        peers: Vec<String>,
        /// The peers' ports; empty for all.
        #[serde(default)]
        ports: Vec<u16>,
        /// `tcp`, `udp` or `icmp`.
        #[serde(default)]
        protocol: Option<String>,
        /// `to`, `from` or `both` (the default).
        #[serde(default = "both")]
        direction: String,
        /// Refuse instead of drop.
        #[serde(default)]
        reject: bool,
        /// Allow the agent's own (host) namespace.
        #[serde(default)]
        allow_host_netns: bool,
        /// Duration in seconds.
        seconds: f64,
    },
    /// Drop a percentage of the traffic between the target and peers.
    Loss {
        /// The target process (or give `cgroup`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The target cgroup directory (v1 or v2), for all of its processes (or give `pid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        /// The target pod on this node, by UID, and optionally one of its containers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodTarget>,
        /// Percentage (1–100).
        percent: u8,
        /// Peer addresses or CIDR blocks (at least one).
        peers: Vec<String>,
        /// The peers' ports; empty for all.
        #[serde(default)]
        ports: Vec<u16>,
        /// `tcp`, `udp` or `icmp`.
        #[serde(default)]
        protocol: Option<String>,
        /// `to`, `from` or `both` (the default).
        #[serde(default = "both")]
        direction: String,
        /// Allow the agent's own (host) namespace.
        #[serde(default)]
        allow_host_netns: bool,
        /// Duration in seconds.
        seconds: f64,
    },
    /// Stop the process, then continue it.
    Pause {
        /// The target process (or give `cgroup`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The target cgroup directory (v1 or v2), for all of its processes (or give `pid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        /// The target pod on this node, by UID, and optionally one of its containers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodTarget>,
        /// Duration in seconds.
        seconds: f64,
    },
    /// Burn CPU in the process's cgroup.
    Stress {
        /// The target process (or give `cgroup`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The target cgroup directory (v1 or v2), for all of its processes (or give `pid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        /// The target pod on this node, by UID, and optionally one of its containers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodTarget>,
        /// Worker processes.
        #[serde(default = "one")]
        workers: u32,
        /// Percent of the cgroup's quota.
        #[serde(default = "hundred")]
        load: u8,
        /// Duration in seconds.
        seconds: f64,
    },
    /// Signal the process, SIGKILL after a grace period.
    Kill {
        /// The target process (or give `cgroup`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// The target cgroup directory (v1 or v2), for all of its processes (or give `pid`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        /// The target pod on this node, by UID, and optionally one of its containers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodTarget>,
        /// The first signal (`TERM` by default).
        #[serde(default = "term")]
        signal: String,
        /// Seconds before SIGKILL.
        #[serde(default = "ten")]
        grace_seconds: f64,
    },
}

fn both() -> String {
    "both".into()
}
fn one() -> u32 {
    1
}
fn hundred() -> u8 {
    100
}
fn term() -> String {
    "TERM".into()
}
fn ten() -> f64 {
    10.0
}

impl FaultSpec {
    /// `partition`, `loss`, …
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::Loss { .. } => "loss",
            FaultSpec::Pause { .. } => "pause",
            FaultSpec::Stress { .. } => "stress",
            FaultSpec::Kill { .. } => "kill",
        }
    }

    /// Aims the fault at `pod` (a fault given with neither a pid nor a cgroup).
    pub fn aim_at_pod(&mut self, target: PodTarget) -> Result<(), String> {
        let (pid, cgroup, pod) = match self {
            FaultSpec::Partition {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Loss {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Pause {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Stress {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Kill {
                pid, cgroup, pod, ..
            } => (pid, cgroup, pod),
        };
        if pid.is_some() || cgroup.is_some() {
            return Err("give a pod, or a pid or a cgroup, not both".into());
        }
        *pod = Some(target);
        Ok(())
    }

    /// What the fault is aimed at: a process, a cgroup or a pod, exactly one of them.
    pub fn target(&self) -> Result<TargetRef, String> {
        let (pid, cgroup, pod) = match self {
            FaultSpec::Partition {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Loss {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Pause {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Stress {
                pid, cgroup, pod, ..
            }
            | FaultSpec::Kill {
                pid, cgroup, pod, ..
            } => (pid, cgroup, pod),
        };
        match (pid, cgroup, pod) {
            (Some(pid), None, None) => Ok(TargetRef::Pid(*pid)),
            (None, Some(dir), None) if dir.is_absolute() => Ok(TargetRef::Cgroup(dir.clone())),
            (None, Some(dir), None) => Err(format!(
                "cgroup: {} is not an absolute path (like /sys/fs/cgroup/cpu/app)",
                dir.display()
            )),
            (None, None, Some(pod)) => Ok(TargetRef::Pod(pod.clone())),
            (None, None, None) => Err("give the target: pid, cgroup or pod".into()),
            _ => Err("give one target: pid, cgroup or pod, not several".into()),
        }
    }

    /// Its options in a line, for lists (`peers 10.0.0.0/8 ports 5432 to reject`).
    pub fn options(&self) -> String {
        let net = |peers: &[String], ports: &[u16], protocol: &Option<String>, direction: &str| {
            let mut text = format!("peers {}", peers.join(","));
            if !ports.is_empty() {
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                text.push_str(&format!(" ports {}", ports.join(",")));
            }
            if let Some(protocol) = protocol {
                text.push_str(&format!(" {protocol}"));
            }
            text.push_str(&format!(" {direction}"));
            text
        };
        match self {
            FaultSpec::Partition {
                peers,
                ports,
                protocol,
                direction,
                reject,
                ..
            } => format!(
                "{} {}",
                net(peers, ports, protocol, direction),
                if *reject { "reject" } else { "drop" }
            ),
            FaultSpec::Loss {
                percent,
                peers,
                ports,
                protocol,
                direction,
                ..
            } => format!("{percent}% of {}", net(peers, ports, protocol, direction)),
            // A cgroup, or a pod (its or a container's cgroup), is frozen; a process stopped.
            FaultSpec::Pause { pid, .. } => if pid.is_some() { "SIGSTOP" } else { "freeze" }.into(),
            FaultSpec::Stress { workers, load, .. } => {
                let s = if *workers == 1 { "" } else { "s" };
                format!("{workers} worker{s} at {load}%")
            }
            FaultSpec::Kill {
                signal,
                grace_seconds,
                ..
            } => format!(
                "SIG{} then KILL after {grace_seconds}s",
                signal.trim_start_matches("SIG")
            ),
        }
    }

    /// The duration, in seconds (0 for a kill, which is instant).
    pub fn seconds(&self) -> f64 {
        match self {
            FaultSpec::Partition { seconds, .. }
            | FaultSpec::Loss { seconds, .. }
            | FaultSpec::Pause { seconds, .. }
            | FaultSpec::Stress { seconds, .. } => *seconds,
            FaultSpec::Kill { .. } => 0.0,
        }
    }
}

/// What a fault is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    /// One process.
    Pid(u32),
    /// Every process of a cgroup directory.
    Cgroup(PathBuf),
    /// A pod on this node (found by the kubelet's cgroup layout).
    Pod(PodTarget),
}

/// A pod on the agent's node: network faults go to its sandbox's network namespace; the others
/// to one container's cgroup (`container`), or to the whole pod's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodTarget {
    /// The pod's UID (`metadata.uid`).
    pub uid: String,
    /// A container's id (`status.containerStatuses[].containerID`, `containerd://…` or bare).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// What the agent says about a fault.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaultView {
    /// Its id (its nftables table is `faultline_<id>`).
    pub id: String,
    /// `partition`, `loss`, `pause`, `stress`, `kill`.
    pub kind: String,
    /// The target process (for a cgroup, its first process when the fault was applied).
    pub pid: u32,
    /// The target cgroup, when the fault was aimed at one (for a pod: the cgroup it resolved
    /// to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The target pod's UID, when the fault was aimed at a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// `active`, `reverted`, `done` (a kill), or `failed`.
    pub state: String,
    /// Seconds until its duration ends (active faults).
    pub seconds_left: Option<f64>,
    /// Its lease, in seconds, if it has one.
    pub lease_seconds: Option<f64>,
    /// Whether the kernel removes it if the agent dies: false only for a network fault on a
    /// kernel without nftables owner tables (the next agent's sweep removes it).
    pub kernel_anchored: bool,
    /// What holds it or what it did: the table and its holder, the workers, the kill outcome.
    pub detail: String,
    /// Packets its rules matched (network faults), as of the last look.
    pub packets: Option<u64>,
    /// Periods the target's cgroup was throttled since the fault started (stress), as of the
    /// last look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods: Option<u64>,
    /// Its options in a line (`peers 10.0.0.0/8 ports 5432 both drop`, `2 workers at 100%`).
    #[serde(default)]
    pub options: String,
    /// `verified`, or the residue a revert left, once reverted.
    pub revert: Option<String>,
    /// Why it was reverted: `duration`, `request`, `lease expired`, `shutdown`.
    pub reverted_by: Option<String>,
}

/// One process an agent could fault (`GET /v1/targets`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetView {
    /// Its pid.
    pub pid: u32,
    /// The command name (`/proc/PID/comm`).
    pub comm: String,
    /// The network namespace's inode.
    pub netns: u64,
    /// Whether it shares the agent's (normally the host's) network namespace.
    pub in_agent_netns: bool,
    /// Its cgroup directory in the v1 `cpu` hierarchy, if the host has one.
    pub cgroup_v1_cpu: Option<String>,
    /// Its cgroup directory in the v2 hierarchy, if the host has one.
    pub cgroup_v2: Option<String>,
}

/// An error body: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}
