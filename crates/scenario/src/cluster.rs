//! What a run on a Kubernetes cluster needs from the cluster, as the runner sees it. The CLI
//! implements it over the API server with faultline-kube; this crate never speaks to
//! Kubernetes itself, so the runner's cluster logic is tested with a fake of this trait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::PodTarget;

/// A pod as the runner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID: what the node agent finds it by.
    pub uid: String,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
    /// `status.phase` (`Running`, `Pending`…).
    pub phase: String,
    /// Whether it is Ready.
    pub ready: bool,
    /// Its IP, once it has one.
    pub ip: Option<String>,
    /// Its controlling owner (`ReplicaSet/checkout-5d9f`): a pod kill waits for another pod
    /// of it.
    pub owner: Option<String>,
    /// Container ids (`containerd://…`) by container name.
    pub containers: Vec<(String, String)>,
    /// Restart counts by container name.
    pub restarts: Vec<(String, u32)>,
}

impl ClusterPod {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What a pod kill did.
#[derive(Debug, Clone, PartialEq)]
pub struct PodKilled {
    /// When the pod was gone from the API, after the delete.
    pub gone_after: Option<Duration>,
    /// The pod of the same controller that took its place, once Ready.
    pub replacement: Option<String>,
    /// When the replacement was Ready, after the delete.
    pub ready_after: Option<Duration>,
}

/// A cluster that could not be reached (no configuration, a refused connection): every call
/// fails with why, so the run ends as an infrastructure error (exit 4) and still writes its
/// reports.
#[derive(Debug, Clone)]
pub struct Unreachable(pub String);

impl Cluster for Unreachable {
    fn describe(&self) -> String {
        format!("a cluster that could not be reached ({})", self.0)
    }
    fn select(&self, _: &PodTarget, _: u64) -> Result<Vec<ClusterPod>, String> {
        Err(self.0.clone())
    }
    fn pods(&self, _: &PodTarget) -> Result<Vec<ClusterPod>, String> {
        Err(self.0.clone())
    }
    fn agent(&self, _: &str) -> Result<faultline_agent::Client, String> {
        Err(self.0.clone())
    }
    fn pod_kill(
        &self,
        _: &PodTarget,
        _: &ClusterPod,
        _: Duration,
        _: Duration,
    ) -> Result<PodKilled, String> {
        Err(self.0.clone())
    }
    fn log(&self, _: &ClusterPod, _: &str, _: bool) -> Result<String, String> {
        Err(self.0.clone())
    }
    fn reach(&self, _: &PodTarget, _: u16) -> Result<SocketAddr, String> {
        Err(self.0.clone())
    }
}

/// A cluster a scenario's `pods` live in. Errors are one line naming what was being done.
pub trait Cluster: Send + Sync {
    /// Where the run goes, for the journal (`context staging, agents through port-forward`).
    fn describe(&self) -> String;
    /// Chooses the pods a fault on `target` hits: Running and Ready, by its mode, with `seed`.
    /// Matching nothing is an error.
    fn select(&self, target: &PodTarget, seed: u64) -> Result<Vec<ClusterPod>, String>;
    /// Every pod of `target`, whatever its state (peers' addresses, restart counts).
    fn pods(&self, target: &PodTarget) -> Result<Vec<ClusterPod>, String>;
    /// A client of the faultline agent on `node`.
    fn agent(&self, node: &str) -> Result<faultline_agent::Client, String>;
    /// Deletes `pod` with `grace` (zero: at once), then waits up to `timeout` for a pod of the
    /// same controller to be Ready.
    fn pod_kill(
        &self,
        target: &PodTarget,
        pod: &ClusterPod,
        grace: Duration,
        timeout: Duration,
    ) -> Result<PodKilled, String>;
    /// The log of a container: its previous run's (the one that crashed), or its current one.
    fn log(&self, pod: &ClusterPod, container: &str, previous: bool) -> Result<String, String>;
    /// An address on this machine that reaches `port` of a Ready pod of `target` (a
    /// port-forward, for probes and dump scrapes); it lasts as long as the cluster value.
    fn reach(&self, target: &PodTarget, port: u16) -> Result<SocketAddr, String>;
}

/// A listing and when it was made.
type Listing = (Instant, Result<Vec<ClusterPod>, String>);

/// A cluster whose pod listings are shared: a target listed again within `fresh` of its last
/// listing gets that listing. The run's threads that follow pods (restarted containers' logs,
/// network peers) each list every 2 s; through this, a pod target that is both is listed once
/// per interval, not twice. Everything else goes straight through.
pub struct SharedListing {
    inner: Arc<dyn Cluster>,
    fresh: Duration,
    listed: Mutex<HashMap<String, Listing>>,
}

impl SharedListing {
    /// `inner`, its listings shared for `fresh`.
    pub fn new(inner: Arc<dyn Cluster>, fresh: Duration) -> Self {
        Self {
            inner,
            fresh,
            listed: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for SharedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedListing")
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

impl Cluster for SharedListing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn select(&self, target: &PodTarget, seed: u64) -> Result<Vec<ClusterPod>, String> {
        self.inner.select(target, seed)
    }
    fn pods(&self, target: &PodTarget) -> Result<Vec<ClusterPod>, String> {
        let key = format!(
            "{}\0{}\0{}",
            target.namespaces.join(","),
            target.selector,
            target.fields.as_deref().unwrap_or("")
        );
        let mut listed = self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, pods)) = listed.get(&key)
            && at.elapsed() < self.fresh
        {
            return pods.clone();
        }
        // Listed under the lock: a second asker waits for this listing instead of making one.
        let pods = self.inner.pods(target);
        listed.insert(key, (Instant::now(), pods.clone()));
        pods
    }
    fn agent(&self, node: &str) -> Result<faultline_agent::Client, String> {
        self.inner.agent(node)
    }
    fn pod_kill(
        &self,
        target: &PodTarget,
        pod: &ClusterPod,
        grace: Duration,
        timeout: Duration,
    ) -> Result<PodKilled, String> {
        self.inner.pod_kill(target, pod, grace, timeout)
    }
    fn log(&self, pod: &ClusterPod, container: &str, previous: bool) -> Result<String, String> {
        self.inner.log(pod, container, previous)
    }
    fn reach(&self, target: &PodTarget, port: u16) -> Result<SocketAddr, String> {
        self.inner.reach(target, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    impl Cluster for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn select(&self, _: &PodTarget, _: u64) -> Result<Vec<ClusterPod>, String> {
            Ok(Vec::new())
        }
        fn pods(&self, _: &PodTarget) -> Result<Vec<ClusterPod>, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
        fn agent(&self, _: &str) -> Result<faultline_agent::Client, String> {
            Err("none".into())
        }
        fn pod_kill(
            &self,
            _: &PodTarget,
            _: &ClusterPod,
            _: Duration,
            _: Duration,
        ) -> Result<PodKilled, String> {
            Err("none".into())
        }
        fn log(&self, _: &ClusterPod, _: &str, _: bool) -> Result<String, String> {
            Err("none".into())
        }
        fn reach(&self, _: &PodTarget, _: u16) -> Result<SocketAddr, String> {
            Err("none".into())
        }
    }

    fn target(name: &str, selector: &str) -> PodTarget {
        PodTarget {
            name: name.into(),
            namespaces: vec!["shop".into()],
            selector: selector.into(),
            fields: None,
            mode: crate::model::PodMode::All,
            container: None,
            pos: Default::default(),
        }
    }

    #[test]
    fn a_target_listed_twice_in_one_interval_is_asked_once() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let shared = SharedListing::new(inner.clone(), Duration::from_secs(60));
        // The crash-log watcher and the peer watcher, both looking at the same pods.
        shared.pods(&target("checkout", "app=checkout")).unwrap();
        shared.pods(&target("checkout", "app=checkout")).unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        // Other pods are another listing.
        shared.pods(&target("db", "app=db")).unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
        // Past the interval, asked again.
        let stale = SharedListing::new(inner.clone(), Duration::ZERO);
        stale.pods(&target("checkout", "app=checkout")).unwrap();
        stale.pods(&target("checkout", "app=checkout")).unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
    }
}
