//! The addresses of network-fault peers named as pod targets, listed again and again on a
//! thread of their own, so that the thread renewing the faults' leases never waits on the API
//! server (a slow listing would otherwise cost a lease).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cluster::Cluster;
use crate::model::PodTarget;

/// A listing: its round (1 for the first), and the sorted addresses or why there are none.
pub type Listing = (u64, Result<Vec<String>, String>);

type Groups = Arc<Mutex<Vec<Vec<PodTarget>>>>;
type Latest = Arc<Mutex<HashMap<Vec<String>, Listing>>>;

/// Lists the groups of peers it is asked to follow, every `every`, until dropped.
pub struct PeerWatch {
    groups: Groups,
    latest: Latest,
    stop: Option<Sender<()>>,
    /// None when no thread could be started: then every look is a failed listing.
    thread: Option<std::thread::JoinHandle<()>>,
    /// The round begun last.
    rounds: Arc<AtomicU64>,
}

impl std::fmt::Debug for PeerWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerWatch")
            .field("groups", &lock(&self.groups).len())
            .finish_non_exhaustive()
    }
}

/// A group's key: its targets' names.
fn key(targets: &[PodTarget]) -> Vec<String> {
    targets.iter().map(|t| t.name.clone()).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PeerWatch {
    /// Starts the listing thread (if none can be started, every [`PeerWatch::latest`] is a new
    /// round that failed, so the faults that follow peers end the run).
    pub fn start(cluster: Arc<dyn Cluster>, every: Duration) -> Self {
        let groups: Groups = Arc::default();
        let latest: Latest = Arc::default();
        let rounds = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = channel::<()>();
        let (wanted, into, begun) = (groups.clone(), latest.clone(), rounds.clone());
        let thread = std::thread::Builder::new()
            .name("pod-peers".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let round = begun.fetch_add(1, Ordering::SeqCst) + 1;
                    let groups = lock(&wanted).clone();
                    for group in groups {
                        let listed = peer_ips(cluster.as_ref(), &group);
                        // Kept only if still followed (`retain` may have run meanwhile); the
                        // locks are taken in `retain`'s order.
                        let followed = lock(&wanted);
                        if followed.iter().any(|g| key(g) == key(&group)) {
                            lock(&into).insert(key(&group), (round, listed));
                        }
                    }
                }
            })
            .ok();
        Self {
            groups,
            latest,
            stop: Some(stop),
            thread,
            rounds,
        }
    }

    /// The round begun last: a listing of that round or an earlier one may have begun before
    /// anything that happens now.
    pub fn round(&self) -> u64 {
        self.rounds.load(Ordering::SeqCst)
    }

    /// Lists `targets` from the next round on.
    pub fn follow(&self, targets: &[PodTarget]) {
        let mut groups = lock(&self.groups);
        if !groups.iter().any(|g| key(g) == key(targets)) {
            groups.push(targets.to_vec());
        }
    }

    /// Stops listing the groups no fault follows any more.
    pub fn retain(&self, followed: &[Vec<String>]) {
        lock(&self.groups).retain(|g| followed.contains(&key(g)));
        lock(&self.latest).retain(|k, _| followed.contains(k));
    }

    /// The latest listing of `targets`, if one was made.
    pub fn latest(&self, targets: &[PodTarget]) -> Option<Listing> {
        if self.thread.is_none() {
            let round = self.rounds.fetch_add(1, Ordering::SeqCst) + 1;
            return Some((
                round,
                Err("the peers' listing thread could not start".into()),
            ));
        }
        lock(&self.latest).get(&key(targets)).cloned()
    }
}

impl Drop for PeerWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The addresses of the pods of `targets`, sorted; none is an error (a partition from nothing
/// would pass for one that bites).
pub fn peer_ips(cluster: &dyn Cluster, targets: &[PodTarget]) -> Result<Vec<String>, String> {
    let mut ips = Vec::new();
    for target in targets {
        let pods = cluster.pods(target)?;
        let before = ips.len();
        ips.extend(pods.into_iter().filter_map(|p| p.ip));
        if ips.len() == before {
            return Err(format!(
                "peers {}: no pod of {} has an IP",
                target.name, target.selector
            ));
        }
    }
    ips.sort();
    ips.dedup();
    Ok(ips)
}
