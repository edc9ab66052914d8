//! The previous logs of pod containers that restart during a run. The kubelet keeps only the
//! log of a container's last instance, so while the run goes on a thread of its own lists the
//! crash targets' pods every 2 s and reads a container's previous log as soon as its restart
//! count is seen to grow, saving it under `pods/` in the run directory: a container that
//! crashes twice leaves two logs. Off the runner's thread, so a long read never holds up the
//! renewal of the faults' leases.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cluster::{Cluster, ClusterPod};
use crate::model::PodTarget;

/// How often the pods of crash targets are listed during a run.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// A saved log or what stopped it: the target, the file (relative to the run directory) or
/// none, and what happened.
pub type Found = (String, Option<PathBuf>, String);

/// (target, pod UID, container): a pod that comes back under the same name (a StatefulSet's)
/// is another pod, with restart counts of its own.
type Key = (String, String, String);

/// The restart counts of the crash targets' containers, and the logs read so far.
#[derive(Debug)]
pub struct PodLogs {
    targets: Vec<PodTarget>,
    out_dir: PathBuf,
    /// Restarts already accounted for: at the run's start, then as read.
    seen: HashMap<Key, u32>,
    /// Restarts whose log could not be read yet: tried again at each look while the count
    /// stays, reported at the last look.
    failing: HashMap<Key, Found>,
    found: Vec<Found>,
}

/// [`PodLogs`] looking on a thread of its own.
#[derive(Debug)]
pub struct Watching {
    stop: Sender<()>,
    lines: Receiver<String>,
    /// None when no thread could be started: then there is only the last look.
    thread: Option<std::thread::JoinHandle<()>>,
    logs: Arc<Mutex<PodLogs>>,
}

impl Watching {
    /// What the looks found since the last call, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Stops looking: the logs, with the lines not taken yet.
    pub fn stop(self) -> (PodLogs, Vec<String>) {
        drop(self.stop);
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
        let lines = self.lines.try_iter().collect();
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let empty = PodLogs::new(Vec::new(), &logs.out_dir);
        (std::mem::replace(&mut *logs, empty), lines)
    }
}

impl PodLogs {
    /// For `targets` (the crash targets that are pods), saving under `out_dir`.
    pub fn new(targets: Vec<PodTarget>, out_dir: &Path) -> Self {
        Self {
            targets,
            out_dir: out_dir.to_owned(),
            seen: HashMap::new(),
            failing: HashMap::new(),
            found: Vec::new(),
        }
    }

    /// Records the restarts the pods of `target` had when the run started: they are not the
    /// run's.
    pub fn baseline(&mut self, target: &str, pods: &[ClusterPod]) {
        for pod in pods {
            for (container, n) in &pod.restarts {
                self.seen
                    .insert((target.to_owned(), pod.uid.clone(), container.clone()), *n);
            }
        }
    }

    /// Looks every [`LOOK_EVERY`] on a thread of its own until [`Watching::stop`].
    pub fn watch(self, cluster: Arc<dyn Cluster>) -> Watching {
        let (stop, stopped) = channel::<()>();
        let (send, lines) = channel();
        let logs = Arc::new(Mutex::new(self));
        let looking = logs.clone();
        let thread = std::thread::Builder::new()
            .name("pod-logs".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(LOOK_EVERY) {
                    let found = looking
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .look(cluster.as_ref(), false);
                    for line in found {
                        let _ = send.send(line);
                    }
                }
            })
            .ok();
        Watching {
            stop,
            lines,
            thread,
            logs,
        }
    }

    /// Looks now; returns what it found. A listing or a read that fails is tried again at the
    /// next look, except at the `last`, where it is reported.
    pub fn look(&mut self, cluster: &dyn Cluster, last: bool) -> Vec<String> {
        let before = self.found.len();
        for i in 0..self.targets.len() {
            let name = self.targets[i].name.clone();
            match cluster.pods(&self.targets[i]) {
                Ok(pods) => self.read_new(cluster, &name, &pods),
                Err(e) if last => self.found.push((
                    name.clone(),
                    None,
                    format!("{name}: crashes since the last listing not collected: {e}"),
                )),
                Err(_) => {}
            }
        }
        if last {
            let mut failing: Vec<Found> = self.failing.drain().map(|(_, f)| f).collect();
            failing.sort_by(|a, b| a.2.cmp(&b.2));
            self.found.extend(failing);
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
                let key = (target.to_owned(), pod.uid.clone(), container.clone());
                let was = self.seen.get(&key).copied().unwrap_or(0);
                if *count <= was {
                    continue;
                }
                let what = if count - was == 1 {
                    format!(
                        "{} container {container} restarted (restart {count})",
                        pod.id()
                    )
                } else {
                    format!(
                        "{} container {container} restarted {} times since it was last seen \
                         (restarts {}-{count}; the kubelet keeps only the last one's log)",
                        pod.id(),
                        count - was,
                        was + 1
                    )
                };
                let name = format!("{}.{}.{container}.restart-{count}", pod.namespace, pod.name);
                let mut relative = PathBuf::from(format!("pods/{target}/{name}.log"));
                if self.out_dir.join(&relative).exists() {
                    // Another pod of that name (a StatefulSet's, deleted and back) was here.
                    let uid: String = pod.uid.chars().take(8).collect();
                    relative = PathBuf::from(format!("pods/{target}/{name}.{uid}.log"));
                }
                let text = match cluster.log(pod, container, true) {
                    Ok(text) => text,
                    Err(e) => {
                        // Readable until the next restart: tried again at the next look.
                        self.failing.insert(
                            key,
                            (
                                target.to_owned(),
                                None,
                                format!("{what}: its previous log could not be read: {e}"),
                            ),
                        );
                        continue;
                    }
                };
                self.failing.remove(&key);
                self.seen.insert(key, *count);
                let path = self.out_dir.join(&relative);
                let saved = std::fs::create_dir_all(path.parent().unwrap_or(&self.out_dir))
                    .and_then(|()| std::fs::write(&path, text));
                self.found.push(match saved {
                    Ok(()) => (
                        target.to_owned(),
                        Some(relative.clone()),
                        format!("{what}: its previous log is {}", relative.display()),
                    ),
                    Err(e) => (
                        target.to_owned(),
                        None,
                        format!(
                            "{what}: its previous log could not be saved to {}: {e}",
                            path.display()
                        ),
                    ),
                });
            }
        }
    }
}
