//! A scenario's cluster over the API server: faultline-scenario's [`Cluster`], which `faultline
//! run` hands the runner when a scenario names `pods`, `tui --kube` lists pods through, and
//! `inject --pod` finds a pod's agent with. Pods are chosen and killed through [`crate::pods`],
//! agents reached at their pod IPs or through port-forwards kept open as long as the value.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use faultline_agent::{AgentAddr, Client};
use faultline_scenario::cluster::{Cluster, ClusterPod, PodKilled};
use faultline_scenario::model::{AgentRoute, Kubernetes, PodMode, PodTarget};

use crate::pods::{Error, Grace, KillShare, Targets};
use crate::select::{Mode, PodRef, Refused};
use crate::session::{API_TIMEOUT, Forward, ForwardTo, Session};

/// A scenario's cluster, over the API server.
pub struct KubeCluster {
    session: Session,
    context: Option<String>,
    settings: Kubernetes,
    /// Straight to agent pods' IPs (in the cluster), or through port-forwards.
    pod_ip: bool,
    credentials: faultline_agent::Credentials,
    /// Port-forwards kept open for as long as the cluster value.
    forwards: Mutex<Vec<Forward>>,
    /// What pod kills in flight share: pods killed at once each need their own replacement.
    kills: KillShare,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("context", &self.context)
            .field("pod_ip", &self.pod_ip)
            .finish_non_exhaustive()
    }
}

/// Whether agents are reached at their pod IPs (`true`) or through the API server's
/// port-forward: `auto` takes pod IPs only in a pod (a CI job in the cluster, where they are
/// routable) and only when no context was named (a context names some other cluster).
pub fn reach_pod_ips(route: AgentRoute, context: Option<&str>, in_a_pod: bool) -> bool {
    match route {
        AgentRoute::PodIp => true,
        AgentRoute::PortForward => false,
        AgentRoute::Auto => context.is_none() && in_a_pod,
    }
}

/// The pods of `target`, as the selection in [`crate::pods`] takes them.
pub fn targets(target: &PodTarget, seed: u64, allow_protected: bool) -> Targets {
    Targets {
        namespaces: target.namespaces.clone(),
        labels: target.selector.clone(),
        fields: target.fields.clone(),
        mode: match target.mode {
            PodMode::One => Mode::One,
            PodMode::All => Mode::All,
            PodMode::Fixed(n) => Mode::Fixed(n as usize),
            PodMode::Percent(p) => Mode::Percent(p),
        },
        seed,
        include_not_ready: false,
        allow_protected,
    }
}

/// A pod as the runner sees it: Ready only while it is not being deleted.
pub fn cluster_pod(pod: PodRef) -> ClusterPod {
    ClusterPod {
        namespace: pod.namespace,
        name: pod.name,
        uid: pod.uid,
        node: pod.node,
        phase: pod.phase,
        ready: pod.ready && !pod.terminating,
        ip: pod.ip,
        owner: pod.owner,
        containers: pod.containers,
        restarts: pod.restarts,
    }
}

/// The id (`containerd://…`) of `pod`'s container `wanted`, or why there is none.
pub fn container_id(pod: &PodRef, wanted: &str) -> Result<String, Refused> {
    pod.containers
        .iter()
        .find(|(name, _)| name == wanted)
        .map(|(_, id)| id.clone())
        .ok_or_else(|| Refused::NoContainer {
            pod: format!("{}/{}", pod.namespace, pod.name),
            wanted: wanted.to_owned(),
            containers: pod.containers.iter().map(|(n, _)| n.clone()).collect(),
        })
}

impl KubeCluster {
    /// Connects with `context` (else the settings', else the current one); `credentials` are
    /// the agents' bearer token and TLS.
    pub fn connect(
        settings: &Kubernetes,
        context: Option<String>,
        credentials: faultline_agent::Credentials,
    ) -> Result<Self, Error> {
        let context = context.or_else(|| settings.context.clone());
        let session = Session::connect(context.as_deref())?;
        let pod_ip = reach_pod_ips(
            settings.agents,
            context.as_deref(),
            std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        );
        Ok(Self {
            session,
            context,
            settings: settings.clone(),
            pod_ip,
            credentials,
            forwards: Mutex::default(),
            kills: KillShare::default(),
        })
    }

    /// Whether agents are reached at their pod IPs (else through port-forwards).
    pub fn pod_ip(&self) -> bool {
        self.pod_ip
    }

    /// The agents' bearer token.
    pub fn token(&self) -> Option<&str> {
        self.credentials.token.as_deref()
    }

    /// Pod `namespace/name`, whatever its state.
    pub fn get(&self, namespace: &str, name: &str) -> Result<PodRef, Error> {
        self.session.call(
            &format!("get pod {namespace}/{name}"),
            API_TIMEOUT,
            crate::pods::get(self.session.client(), namespace, name),
        )
    }

    /// A client of the agent at `addr` with the cluster's token and TLS.
    pub fn client_at(&self, addr: AgentAddr) -> Client {
        self.credentials.client(addr)
    }

    fn keep(&self, forward: Forward) -> SocketAddr {
        let local = forward.local;
        self.forwards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(forward);
        local
    }
}

impl Cluster for KubeCluster {
    fn describe(&self) -> String {
        format!(
            "Kubernetes ({}), agents in {} reached {}",
            self.context.as_deref().map_or_else(
                || "the current context".to_owned(),
                |c| format!("context {c}")
            ),
            self.settings.agent_namespace,
            if self.pod_ip {
                "at their pod IPs"
            } else {
                "through the API server's port-forward"
            }
        )
    }

    fn select(&self, target: &PodTarget, seed: u64) -> Result<Vec<ClusterPod>, String> {
        let targets = targets(target, seed, self.settings.allow_protected_namespaces);
        let chosen = self
            .session
            .call(
                &format!("list pods {}", targets.labels),
                API_TIMEOUT,
                crate::pods::select(self.session.client(), &targets),
            )
            .map_err(|e| e.to_string())?;
        Ok(chosen.into_iter().map(cluster_pod).collect())
    }

    fn pods(&self, target: &PodTarget) -> Result<Vec<ClusterPod>, String> {
        let pods = self
            .session
            .call(
                &format!("list pods {}", target.selector),
                API_TIMEOUT,
                crate::pods::list(
                    self.session.client(),
                    &target.namespaces,
                    &target.selector,
                    target.fields.as_deref(),
                ),
            )
            .map_err(|e| e.to_string())?;
        Ok(pods.into_iter().map(cluster_pod).collect())
    }

    fn agent(&self, node: &str) -> Result<Client, String> {
        let (agent, address) = self
            .session
            .call(
                &format!("find the faultline agent on node {node}"),
                API_TIMEOUT,
                crate::pods::agent_on(self.session.client(), &self.settings.agent_namespace, node),
            )
            .map_err(|e| e.to_string())?;
        let address = if self.pod_ip {
            address
        } else {
            let forward = self
                .session
                .forward(
                    &self.settings.agent_namespace,
                    ForwardTo::Pod(agent.name.clone()),
                    address.port(),
                )
                .map_err(|e| e.to_string())?;
            self.keep(forward)
        };
        Ok(self.client_at(AgentAddr::Tcp(address)))
    }

    fn pod_kill(
        &self,
        target: &PodTarget,
        pod: &ClusterPod,
        grace: Duration,
        timeout: Duration,
    ) -> Result<PodKilled, String> {
        let grace = if grace.is_zero() {
            Grace::Force
        } else {
            Grace::Seconds(u32::try_from(grace.as_secs().max(1)).unwrap_or(u32::MAX))
        };
        let chosen = PodRef {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            node: pod.node.clone(),
            phase: pod.phase.clone(),
            ready: pod.ready,
            terminating: false,
            owner: pod.owner.clone(),
            containers: pod.containers.clone(),
            ip: pod.ip.clone(),
            restarts: pod.restarts.clone(),
        };
        // The wait for the replacement is bounded by `timeout` (the delete does not wait for
        // the grace period); the calls around it by the API's own limit.
        let report = self
            .session
            .call(
                &format!("pod kill of {}", pod.id()),
                timeout + 3 * API_TIMEOUT,
                crate::pods::kill_claiming(
                    self.session.client(),
                    &chosen,
                    &target.selector,
                    grace,
                    timeout,
                    &self.kills,
                ),
            )
            .map_err(|e| e.to_string())?;
        Ok(PodKilled {
            gone_after: report.gone_after,
            replacement: report.replacement.filter(|_| report.ready_after.is_some()),
            ready_after: report.ready_after,
        })
    }

    fn log(&self, pod: &ClusterPod, container: &str, previous: bool) -> Result<String, String> {
        self.session
            .call(
                &format!("read the log of {} container {container}", pod.id()),
                2 * API_TIMEOUT,
                crate::pods::log(
                    self.session.client(),
                    &pod.namespace,
                    &pod.name,
                    Some(container),
                    previous,
                ),
            )
            .map_err(|e| e.to_string())
    }

    fn reach(&self, target: &PodTarget, port: u16) -> Result<SocketAddr, String> {
        let namespace = target
            .namespaces
            .first()
            .ok_or_else(|| format!("pods {}: no namespace", target.name))?;
        let forward = self
            .session
            .forward(
                namespace,
                ForwardTo::Selector(target.selector.clone()),
                port,
            )
            .map_err(|e| e.to_string())?;
        Ok(self.keep(forward))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_target(mode: PodMode) -> PodTarget {
        PodTarget {
            name: "checkout".into(),
            namespaces: vec!["shop".into()],
            selector: "app=checkout".into(),
            fields: Some("spec.nodeName=node-1".into()),
            mode,
            container: None,
            pos: Default::default(),
        }
    }

    fn pod_ref() -> PodRef {
        PodRef {
            namespace: "shop".into(),
            name: "checkout-1".into(),
            uid: "u1".into(),
            node: Some("node-1".into()),
            phase: "Running".into(),
            ready: true,
            terminating: true,
            owner: Some("ReplicaSet/checkout-5d9f".into()),
            containers: vec![
                ("app".into(), "containerd://a".into()),
                ("sidecar".into(), "containerd://b".into()),
            ],
            ip: Some("10.0.0.7".into()),
            restarts: vec![("app".into(), 2)],
        }
    }

    #[test]
    fn a_pod_target_becomes_the_selection_it_names() {
        let t = targets(&pod_target(PodMode::Fixed(2)), 7, true);
        assert_eq!(t.namespaces, ["shop"]);
        assert_eq!(t.labels, "app=checkout");
        assert_eq!(t.fields.as_deref(), Some("spec.nodeName=node-1"));
        assert_eq!(t.mode, Mode::Fixed(2));
        assert_eq!(t.seed, 7);
        assert!(t.allow_protected && !t.include_not_ready);
        assert_eq!(
            targets(&pod_target(PodMode::Percent(25.0)), 1, false).mode,
            Mode::Percent(25.0)
        );
        assert_eq!(targets(&pod_target(PodMode::One), 1, false).mode, Mode::One);
        assert_eq!(targets(&pod_target(PodMode::All), 1, false).mode, Mode::All);
    }

    #[test]
    fn a_terminating_pod_is_not_ready_to_the_runner() {
        let pod = cluster_pod(pod_ref());
        assert!(!pod.ready);
        assert_eq!(pod.id(), "shop/checkout-1");
        assert_eq!(pod.restarts, [("app".to_owned(), 2)]);
        let mut ready = pod_ref();
        ready.terminating = false;
        assert!(cluster_pod(ready).ready);
    }

    #[test]
    fn a_container_is_found_by_name_or_the_pods_containers_are_listed() {
        assert_eq!(
            container_id(&pod_ref(), "sidecar").unwrap(),
            "containerd://b"
        );
        assert_eq!(
            container_id(&pod_ref(), "db").unwrap_err().to_string(),
            "--container db: pod shop/checkout-1 has no running container of that name \
             (containers: app, sidecar)"
        );
    }

    #[test]
    fn pod_ips_are_used_in_a_pod_without_a_context_or_when_asked() {
        assert!(reach_pod_ips(AgentRoute::Auto, None, true));
        assert!(!reach_pod_ips(AgentRoute::Auto, Some("staging"), true));
        assert!(!reach_pod_ips(AgentRoute::Auto, None, false));
        assert!(reach_pod_ips(AgentRoute::PodIp, Some("staging"), false));
        assert!(!reach_pod_ips(AgentRoute::PortForward, None, true));
    }
}
