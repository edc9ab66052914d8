//! A scenario's faults as the agent's requests (pure).

use std::time::Duration;

use faultline_agent::spec::FaultSpec;

use crate::model::Fault;

/// `spec` with other peers and `left` to run.
pub(super) fn with_peers(spec: &FaultSpec, new_peers: Vec<String>, left: Duration) -> FaultSpec {
    let mut spec = spec.clone();
    match &mut spec {
        FaultSpec::Partition { peers, seconds, .. } | FaultSpec::Loss { peers, seconds, .. } => {
            *peers = new_peers;
            *seconds = left.as_secs_f64();
        }
        _ => {}
    }
    spec
}

/// The agent's request for `fault` on process `pid` (none: aimed later, at a pod); none for a
/// pod kill, which no agent carries out.
pub(super) fn spec(
    fault: &Fault,
    pid: Option<u32>,
    peers: &[String],
    duration: Duration,
) -> Option<FaultSpec> {
    let seconds = duration.as_secs_f64();
    Some(match fault {
        Fault::Partition(net) => FaultSpec::Partition {
            pid,
            cgroup: None,
            pod: None,
            peers: peers.to_vec(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            reject: net.reject,
            allow_host_netns: false,
            seconds,
        },
        Fault::Loss { net, percent } => FaultSpec::Loss {
            pid,
            cgroup: None,
            pod: None,
            percent: *percent,
            peers: peers.to_vec(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            allow_host_netns: false,
            seconds,
        },
        Fault::Pause => FaultSpec::Pause {
            pid,
            cgroup: None,
            pod: None,
            seconds,
        },
        Fault::Stress { workers, load } => FaultSpec::Stress {
            pid,
            cgroup: None,
            pod: None,
            workers: *workers,
            load: *load,
            seconds,
        },
        Fault::Kill { signal, grace } => FaultSpec::Kill {
            pid,
            cgroup: None,
            pod: None,
            signal: signal.clone(),
            grace_seconds: grace.as_secs_f64(),
        },
        Fault::PodKill { .. } => return None,
    })
}
