//! The steps' pod targets: pods chosen with the run's seed, one fault per pod through the
//! agent on its node, and network faults whose peers are pods kept on the pods' current
//! addresses as pods come and go (listed by `peer_watch` off this thread).

use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_agent::spec::{CreateFault, FaultSpec};

use super::agent::Agent;
use super::journal::Journal;
use super::requests::{spec, with_peers};
use super::timeline::Timeline;
use crate::cluster::ClusterPod;
use crate::model::{Fault, PodTarget};
use crate::peer_watch::PeerWatch;
use crate::verdict::FaultRecord;

/// A network fault whose peers are pods: their addresses change as pods come and go.
pub(super) struct PodPeers {
    /// The fault as last applied.
    pub(super) spec: FaultSpec,
    /// Peers given as addresses.
    pub(super) fixed: Vec<String>,
    /// Peers given as pod targets.
    pub(super) targets: Vec<PodTarget>,
    /// Their pods' addresses in force.
    pub(super) current: Vec<String>,
    /// Rounds in a row the peers could not be followed (listed, or the fault replaced).
    pub(super) failures: u32,
    /// The last listing round looked at.
    pub(super) round: u64,
}

/// Rounds of [`PEER_REFRESH`] in a row a fault's pod peers may fail to be followed before the
/// run ends as an infrastructure error: a partition left on old addresses would let the new
/// pods through while the run passed.
const PEER_FAILURES: u32 = 3;

/// How often the pod peers of a network fault are listed again.
pub(super) const PEER_REFRESH: Duration = Duration::from_secs(2);

impl Timeline<'_> {
    /// The addresses of the pods of `targets`, sorted, listed now (when a fault starts).
    pub(super) fn peer_ips(&self, targets: &[PodTarget]) -> Result<Vec<String>, String> {
        let cluster = self.cluster.ok_or("no cluster")?;
        crate::peer_watch::peer_ips(cluster.as_ref(), targets)
    }

    /// Network faults whose peers are pods: when the pods' addresses changed (a pod was
    /// replaced), the fault is applied again with the new ones, then the old one reverted, so
    /// the partition never lapses.
    pub(super) fn refresh_peers(&mut self, journal: &mut Journal) {
        let Some(watch) = &self.peer_watch else {
            return;
        };
        if !self.held.iter().any(|h| h.peers.is_some()) {
            watch.retain(&[]);
            return;
        }
        // The groups of peers still followed; the listing thread lists each once a round (a
        // step on `mode: all` holds a fault per pod, all with the same peers).
        let followed: Vec<Vec<String>> = self
            .held
            .iter()
            .filter_map(|h| h.peers.as_ref())
            .map(|p| p.targets.iter().map(|t| t.name.clone()).collect())
            .collect();
        watch.retain(&followed);
        for i in 0..self.held.len() {
            let Some(peers) = &self.held[i].peers else {
                continue;
            };
            let Some(watch) = &self.peer_watch else {
                return;
            };
            watch.follow(&peers.targets);
            // Only a listing not looked at yet.
            let Some((round, listed)) = watch.latest(&peers.targets) else {
                continue;
            };
            if round <= peers.round {
                continue;
            }
            if let Some(p) = &mut self.held[i].peers {
                p.round = round;
            }
            let Some(peers) = &self.held[i].peers else {
                continue;
            };
            let ips = match listed {
                Ok(ips) => ips,
                Err(e) => {
                    journal.log(
                        "fault",
                        format!("{}: {e}; its peers stay as they were", self.held[i].id),
                    );
                    self.peers_not_followed(i, &e);
                    continue;
                }
            };
            if ips == peers.current {
                if let Some(p) = &mut self.held[i].peers {
                    p.failures = 0;
                }
                continue;
            }
            let left = self.held[i].ends.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(500) {
                continue;
            }
            let all: Vec<String> = peers.fixed.iter().cloned().chain(ips.clone()).collect();
            let spec = with_peers(&peers.spec, all, left);
            let held = &mut self.held[i];
            let created = held.agent.create(CreateFault {
                fault: spec.clone(),
                lease_seconds: Some(self.lease.as_secs_f64()),
                idempotency_key: None,
            });
            let view = match created {
                Ok(view) => view,
                Err(e) => {
                    journal.log(
                        "fault",
                        format!(
                            "the peers of {} changed to {}, but the new fault failed: {e}; \
                             the old one stays",
                            held.id,
                            ips.join(",")
                        ),
                    );
                    self.peers_not_followed(i, &format!("the new fault failed: {e}"));
                    continue;
                }
            };
            let old = std::mem::replace(&mut held.id, view.id.clone());
            if let Some(c) = self.created.iter_mut().find(|c| c.id == old) {
                c.id = view.id.clone();
            }
            let outcome = held.agent.revert_patiently(&old).and_then(|v| {
                v.and_then(|v| v.revert)
                    .ok_or_else(|| "no revert reported".to_owned())
            });
            if outcome.as_deref() != Ok("verified") {
                self.superseded.push((
                    held.record,
                    format!(
                        "{old} (replaced when its peers changed): {}",
                        outcome.unwrap_or_else(|e| format!("its revert failed: {e}"))
                    ),
                ));
            }
            journal.log(
                "fault",
                format!(
                    "peers changed: {} replaced {old}, now {}",
                    view.id,
                    ips.join(",")
                ),
            );
            if let Some(p) = &mut held.peers {
                p.spec = spec;
                p.current = ips;
                p.failures = 0;
            }
        }
    }

    /// Counts a round in which held fault `i`'s pod peers could not be followed; the
    /// [`PEER_FAILURES`]th in a row is the run's infrastructure error.
    pub(super) fn peers_not_followed(&mut self, i: usize, why: &str) {
        let Some(peers) = &mut self.held[i].peers else {
            return;
        };
        peers.failures += 1;
        if peers.failures == PEER_FAILURES {
            self.errors.push(format!(
                "the pod peers of fault {} could not be followed {PEER_FAILURES} times in a row \
                 (the partition stayed on their old addresses): {why}",
                self.held[i].id
            ));
        }
    }

    /// The agent on `node`, reached once and kept; unreachable is the run's end (exit 4):
    /// a fault is never skipped quietly.
    pub(super) fn agent_on(
        &mut self,
        node: &str,
        journal: &mut Journal,
    ) -> Result<Arc<Agent>, String> {
        if let Some(agent) = self.agents.get(node) {
            return Ok(agent.clone());
        }
        let cluster = self.cluster.ok_or("no cluster")?;
        let client = cluster.agent(node)?;
        client.list().map_err(|e| {
            format!(
                "the faultline agent on node {node} at {} is unreachable: {e}",
                client.addr()
            )
        })?;
        journal.log(
            "run",
            format!("the agent on node {node} answers at {}", client.addr()),
        );
        let agent = Arc::new(Agent::Remote(client));
        self.agents.insert(node.to_owned(), agent.clone());
        Ok(agent)
    }

    /// A fault on a pod target: its pods chosen with the run's seed, then one fault per pod,
    /// sent to the agent on the pod's node (or, for a pod kill, a delete through the API).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pod_fault(
        &mut self,
        target: &PodTarget,
        fault: &Fault,
        peers: &[String],
        duration: Duration,
        template: FaultRecord,
        faults: &mut Vec<FaultRecord>,
        journal: &mut Journal,
    ) -> Result<(), String> {
        let cluster = self.cluster.ok_or("no cluster")?.clone();
        let chosen = cluster.select(target, self.seed)?;
        journal.log(
            "pods",
            format!(
                "{}: {} chosen (mode {}, seed {}): {}",
                target.name,
                chosen.len(),
                target.mode,
                self.seed,
                chosen
                    .iter()
                    .map(ClusterPod::id)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if let Fault::PodKill { grace, timeout } = fault {
            for pod in chosen {
                let mut record = template.clone();
                record.pod = Some(pod.id());
                record.applied = "sent".into();
                let (cluster, target, grace, timeout) =
                    (cluster.clone(), target.clone(), *grace, *timeout);
                let handle =
                    std::thread::spawn(move || cluster.pod_kill(&target, &pod, grace, timeout));
                faults.push(record);
                self.pod_kills.push((faults.len() - 1, handle));
            }
            return Ok(());
        }
        let (pod_peers, fixed): (Vec<&String>, Vec<&String>) = peers
            .iter()
            .partition(|p| self.pods.iter().any(|t| &t.name == *p));
        let fixed: Vec<String> = fixed.into_iter().cloned().collect();
        let peer_targets: Vec<PodTarget> = self
            .pods
            .iter()
            .filter(|t| pod_peers.contains(&&t.name))
            .cloned()
            .collect();
        let ips = if peer_targets.is_empty() {
            Vec::new()
        } else {
            self.peer_ips(&peer_targets)?
        };
        let all_peers: Vec<String> = fixed.iter().cloned().chain(ips.clone()).collect();
        let network = matches!(fault, Fault::Partition(_) | Fault::Loss { .. });
        for pod in chosen {
            let mut record = template.clone();
            record.pod = Some(pod.id());
            let container = match (&target.container, network) {
                (Some(name), false) => match pod.containers.iter().find(|(n, _)| n == name) {
                    Some((_, id)) => Some(id.clone()),
                    None => {
                        // A fault that cannot land is never skipped quietly: the scenario
                        // names a container the pod does not run.
                        let why = format!(
                            "pod {} has no running container {name} (containers: {})",
                            pod.id(),
                            pod.containers
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        record.applied = format!("not applied: {why}");
                        faults.push(record);
                        return Err(why);
                    }
                },
                // Network faults go to the pod's sandbox, whatever the container.
                _ => None,
            };
            let Some(node) = pod.node.clone() else {
                let why = format!("pod {} is not on a node", pod.id());
                record.applied = format!("not applied: {why}");
                faults.push(record);
                return Err(why);
            };
            let agent = match self.agent_on(&node, journal) {
                Ok(agent) => agent,
                Err(e) => {
                    record.applied = format!("not applied: {e}");
                    faults.push(record);
                    return Err(e);
                }
            };
            let Some(mut fault_spec) = spec(fault, None, &all_peers, duration) else {
                continue;
            };
            fault_spec.aim_at_pod(faultline_agent::spec::PodTarget {
                uid: pod.uid.clone(),
                container,
            })?;
            let peers = (!peer_targets.is_empty()).then(|| PodPeers {
                spec: fault_spec.clone(),
                fixed: fixed.clone(),
                targets: peer_targets.clone(),
                current: ips.clone(),
                failures: 0,
                // Listings begun before this fault's own are older than its peers.
                round: self.peer_watch.as_ref().map_or(0, PeerWatch::round),
            });
            if let (Some(watch), Some(_)) = (&self.peer_watch, &peers) {
                watch.follow(&peer_targets);
            }
            self.apply(
                &agent, fault_spec, fault, duration, record, peers, faults, journal,
            )
            .map_err(|e| format!("the agent on node {node} could not apply the fault: {e}"))?;
            // Pods on many nodes take a while: the leases already held are kept up meanwhile.
            self.renew(journal)?;
        }
        Ok(())
    }
}
