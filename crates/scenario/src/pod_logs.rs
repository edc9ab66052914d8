//! The previous logs of pod containers that restart during a run. The kubelet keeps only the
//! log of a container's last instance, so each restart's log is read while the run goes on, as
//! soon as the restart count is seen to grow, and saved under `pods/` in the run directory:
//! a container that crashes twice leaves two logs, and a pod that crashed and was then deleted
//! leaves the log it had.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterPod};
use crate::model::PodTarget;

/// How often the pods of crash targets are listed during a run.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// What a look found: the target, the saved log (relative to the run directory) or none when
/// it could not be read, and what happened.
pub type Found = (String, Option<PathBuf>, String);

/// The restart counts of the crash targets' containers, and the logs read so far.
#[derive(Debug)]
pub struct PodLogs {
    targets: Vec<PodTarget>,
    out_dir: PathBuf,
    /// Restarts of (pod, container) already accounted for: at the run's start, then as read.
    seen: HashMap<(String, String), u32>,
    last_look: Instant,
    found: Vec<Found>,
}

impl PodLogs {
    /// For `targets` (the crash targets that are pods), saving under `out_dir`.
    pub fn new(targets: Vec<PodTarget>, out_dir: &Path) -> Self {
        Self {
            targets,
            out_dir: out_dir.to_owned(),
            seen: HashMap::new(),
            last_look: Instant::now(),
            found: Vec::new(),
        }
    }

    /// Records the restarts `pods` had when the run started: they are not the run's.
    pub fn baseline(&mut self, pods: &[ClusterPod]) {
        for pod in pods {
            for (container, n) in &pod.restarts {
                self.seen.insert((pod.id(), container.clone()), *n);
            }
        }
    }

    /// Looks when [`LOOK_EVERY`] has passed since the last look; returns what it found.
    pub fn look_if_due(&mut self, cluster: &dyn Cluster) -> Vec<String> {
        if self.targets.is_empty() || self.last_look.elapsed() < LOOK_EVERY {
            return Vec::new();
        }
        self.look(cluster, false)
    }

    /// Looks now; returns what it found. A listing that fails is tried again at the next look,
    /// except at the `last`, where it is reported.
    pub fn look(&mut self, cluster: &dyn Cluster, last: bool) -> Vec<String> {
        self.last_look = Instant::now();
        let before = self.found.len();
        for i in 0..self.targets.len() {
            let name = self.targets[i].name.clone();
            match cluster.pods(&self.targets[i]) {
                Ok(pods) => self.read_new(cluster, &name, &pods),
                Err(e) if last => self.found.push((
                    name.clone(),
                    None,
                    format!("{name}: crashes since the last look not collected: {e}"),
                )),
                Err(_) => {}
            }
        }
        self.found[before..].iter().map(|f| f.2.clone()).collect()
    }

    /// Everything found during the run, in order.
    pub fn found(self) -> Vec<Found> {
        self.found
    }

    fn read_new(&mut self, cluster: &dyn Cluster, target: &str, pods: &[ClusterPod]) {
        for pod in pods {
            for (container, count) in &pod.restarts {
                let key = (pod.id(), container.clone());
                let was = self.seen.get(&key).copied().unwrap_or(0);
                if *count <= was {
                    continue;
                }
                self.seen.insert(key, *count);
                let what = if count - was == 1 {
                    format!(
                        "{} container {container} restarted (restart {count})",
                        pod.id()
                    )
                } else {
                    format!(
                        "{} container {container} restarted {} times since the last look \
                         (restarts {}-{count}; the kubelet keeps the last one's log)",
                        pod.id(),
                        count - was,
                        was + 1
                    )
                };
                let relative = PathBuf::from(format!(
                    "pods/{target}/{}.{container}.restart-{count}.log",
                    pod.name
                ));
                let saved = cluster.log(pod, container, true).and_then(|text| {
                    let path = self.out_dir.join(&relative);
                    std::fs::create_dir_all(path.parent().unwrap_or(&self.out_dir))
                        .and_then(|()| std::fs::write(&path, text))
                        .map_err(|e| format!("{}: {e}", path.display()))
                });
                self.found.push(match saved {
                    Ok(()) => (
                        target.to_owned(),
                        Some(relative.clone()),
                        format!("{what}: its previous log is {}", relative.display()),
                    ),
                    Err(e) => (
                        target.to_owned(),
                        None,
                        format!("{what}: its previous log could not be read: {e}"),
                    ),
                });
            }
        }
    }
}
