//! The node agent and its client.
//!
//! `faultline agent` holds faults for clients on this machine (later: one per Kubernetes
//! node): an HTTP API over a unix socket (mode 0600) or TCP (bearer token required), a
//! [`holder`] thread that applies, holds and reverts faults through faultline-fault, durations
//! and leases it enforces, a write-ahead [`journal`] replayed at start to remove what a
//! previous agent left behind, `/healthz` and `/metrics`. Every fault keeps the kernel-anchored
//! lifetime faultline-fault gives it, so even a SIGKILLed agent leaves nothing in force.
//! [`client`] is the blocking client the CLI uses.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod cores;
pub mod holder;
pub mod journal;
pub mod local;
mod server;
pub mod spec;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

pub use client::{AgentAddr, Client, Credentials};
pub use holder::{Helpers, Refusal};
pub use local::LocalAgent;
pub use server::{AgentOptions, run};

/// What the policy allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Most faults in force at once.
    #[serde(default = "default_max_faults")]
    pub max_faults: usize,
    /// Longest fault, in seconds.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: f64,
    /// If not empty, only processes whose cgroup directory (v1 `cpu` or v2) starts with one of
    /// these paths may be targeted (`/sys/fs/cgroup/cpu/kubepods`).
    #[serde(default)]
    pub cgroup_prefixes: Vec<PathBuf>,
    /// Processes that may never be targeted (besides the agent itself).
    #[serde(default = "default_denied_pids")]
    pub denied_pids: Vec<u32>,
    /// Where the kubelet's cgroups are in each hierarchy: its `--cgroup-root` (`/` by
    /// default), under which `kubepods` or `kubepods.slice` is found.
    #[serde(default = "default_kubelet_cgroup_root")]
    pub kubelet_cgroup_root: PathBuf,
}

fn default_kubelet_cgroup_root() -> PathBuf {
    PathBuf::from("/")
}

fn default_max_faults() -> usize {
    64
}
fn default_max_seconds() -> f64 {
    3600.0
}
fn default_denied_pids() -> Vec<u32> {
    vec![1]
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_faults: default_max_faults(),
            max_seconds: default_max_seconds(),
            cgroup_prefixes: Vec::new(),
            denied_pids: default_denied_pids(),
            kubelet_cgroup_root: default_kubelet_cgroup_root(),
        }
    }
}

impl Policy {
    /// Reads a policy file (JSON); errors name the field.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("--policy {}: {e}", path.display()))?;
        let mut de = serde_json::Deserializer::from_slice(&text);
        serde_path_to_error::deserialize(&mut de)
            .map_err(|e| format!("--policy {}: {}: {}", path.display(), e.path(), e.inner()))
    }

    /// The kubelet's cgroup root in this host's hierarchy for CPU (the v1 `cpu` hierarchy, or
    /// the unified one), or for the freezer when `freezer` (v1 `freezer`, or the unified one).
    pub fn kubelet_root(&self, freezer: bool) -> Option<PathBuf> {
        let mount = Path::new("/sys/fs/cgroup");
        let v1 = mount.join(if freezer { "freezer" } else { "cpu" });
        let hierarchy = if v1.join("cgroup.procs").exists() {
            v1
        } else if mount.join("cgroup.controllers").exists() {
            mount.to_path_buf()
        } else {
            return None;
        };
        let relative = self
            .kubelet_cgroup_root
            .strip_prefix("/")
            .unwrap_or(&self.kubelet_cgroup_root);
        Some(hierarchy.join(relative))
    }

    /// Why cgroup directory `dir` (canonical) may not be a target, if it may not.
    pub fn denies_dir(&self, dir: &Path) -> Option<String> {
        if self.cgroup_prefixes.is_empty()
            || self.cgroup_prefixes.iter().any(|p| dir.starts_with(p))
        {
            return None;
        }
        Some(format!(
            "cgroup {} is outside the cgroups the policy allows ({:?})",
            dir.display(),
            self.cgroup_prefixes
        ))
    }

    /// Why `target` (whose processes are `pids`: one, or a cgroup subtree's) may not be
    /// faulted, if it may not.
    pub fn denies(&self, target: &faultline_fault::Target, pids: &[u32]) -> Option<String> {
        for &pid in pids.iter().chain([&target.pid]) {
            if pid == std::process::id() || self.denied_pids.contains(&pid) {
                return Some(if pids.len() > 1 {
                    format!("the cgroup holds process {pid}, which may not be targeted")
                } else {
                    format!("process {pid} may not be targeted")
                });
            }
        }
        if self.cgroup_prefixes.is_empty() {
            return None;
        }
        let dirs = [&target.cgroup.v1_cpu, &target.cgroup.v2];
        let allowed = dirs
            .into_iter()
            .flatten()
            .any(|d| self.cgroup_prefixes.iter().any(|p| d.starts_with(p)));
        (!allowed).then(|| {
            format!(
                "process {} is outside the cgroups the policy allows ({:?})",
                target.pid, self.cgroup_prefixes
            )
        })
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct CounterSet {
    /// Faults in force.
    pub active: AtomicU64,
    /// Reverts that were verified.
    pub reverts: AtomicU64,
    /// Reverts that left residue.
    pub revert_failures: AtomicU64,
    /// Faults reverted because their lease expired.
    pub lease_expiries: AtomicU64,
}

/// Shared counters.
pub type Counters = Arc<CounterSet>;

/// Counting helpers.
pub trait Count {
    /// Adds one.
    fn bump(&self, counter: &AtomicU64);
    /// Sets the active gauge.
    fn set_active(&self, n: usize);
}

impl Count for Counters {
    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn set_active(&self, n: usize) {
        self.active.store(n as u64, Ordering::Relaxed);
    }
}

impl CounterSet {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# HELP faultline_active_faults Faults in force.\n\
             # TYPE faultline_active_faults gauge\n\
             faultline_active_faults {}\n\
             # HELP faultline_reverts_total Faults reverted with the revert verified.\n\
             # TYPE faultline_reverts_total counter\n\
             faultline_reverts_total {}\n\
             # HELP faultline_revert_failures_total Reverts that left residue.\n\
             # TYPE faultline_revert_failures_total counter\n\
             faultline_revert_failures_total {}\n\
             # HELP faultline_lease_expiries_total Faults reverted because their lease expired.\n\
             # TYPE faultline_lease_expiries_total counter\n\
             faultline_lease_expiries_total {}\n",
            get(&self.active),
            get(&self.reverts),
            get(&self.revert_failures),
            get(&self.lease_expiries)
        )
    }
}

/// The processes on this machine, by pid, with their network namespace and cgroups (read from
/// /proc now; processes that vanish meanwhile, and kernel threads, are left out).
pub fn list_targets() -> Vec<spec::TargetView> {
    let mut views = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return views;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Kernel threads have no command line, and nothing a fault could do to them helps.
        if std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty()) {
            continue;
        }
        let Ok(target) = faultline_fault::Target::process(pid) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        views.push(spec::TargetView {
            pid,
            comm,
            netns: target.netns_inode,
            in_agent_netns: target.in_own_netns,
            cgroup_v1_cpu: target.cgroup.v1_cpu.map(|p| p.display().to_string()),
            cgroup_v2: target.cgroup.v2.map(|p| p.display().to_string()),
        });
    }
    views.sort_by_key(|v| v.pid);
    views
}

/// Removes what the faults in `pending` (from a previous agent's journal) left behind. Returns
/// what it did, one line each, and the entries it could not settle (to keep in the journal).
pub fn sweep(pending: &[journal::Entry]) -> (Vec<String>, Vec<journal::Entry>) {
    use faultline_fault::{Process, running, start_time};
    let mut log = Vec::new();
    let mut unresolved = Vec::new();
    // The same process: alive (a zombie has lost its namespaces and cannot be signalled into
    // doing anything), and started when the journal says.
    let same =
        |pid: u32, start: Option<u64>| start.is_some() && start_time(pid) == start && running(pid);
    for entry in pending {
        match entry {
            journal::Entry::Apply {
                id,
                kind,
                pid,
                pid_start,
                table,
                cgroup,
            } => {
                if let (Some(dir), "pause") = (cgroup, kind.as_str()) {
                    // A frozen cgroup: its thaw guard normally thaws it when the agent dies;
                    // this is for when the guard died too.
                    match faultline_fault::Freezer::of(dir).and_then(|f| f.set_and_check(false)) {
                        Ok(()) => log.push(format!("pause {id}: cgroup {} thawed", dir.display())),
                        Err(_) if !dir.exists() => {}
                        Err(e) => {
                            log.push(format!("pause {id}: {e}; kept in the journal"));
                            unresolved.push(entry.clone());
                        }
                    }
                } else if let Some(table) = table {
                    if !same(*pid, *pid_start) {
                        log.push(format!(
                            "{kind} {id}: target {pid} is gone; its namespace cannot be reached"
                        ));
                        continue;
                    }
                    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
                    match faultline_fault::nft::table_exists(&netns, table) {
                        Ok(true) => match faultline_fault::nft::delete_table(&netns, table) {
                            Ok(()) => log.push(format!(
                                "{kind} {id}: removed leftover table inet {table} from the network namespace of pid {pid}"
                            )),
                            Err(e) => {
                                log.push(format!("{kind} {id}: {e}; kept in the journal"));
                                unresolved.push(entry.clone());
                            }
                        },
                        Ok(false) => log.push(format!(
                            "{kind} {id}: table inet {table} already gone (the kernel removed it with its owner)"
                        )),
                        Err(e) => {
                            log.push(format!("{kind} {id}: {e}; kept in the journal"));
                            unresolved.push(entry.clone());
                        }
                    }
                } else if kind == "pause" && same(*pid, *pid_start) {
                    match Process::open(*pid).and_then(|p| p.resume()) {
                        Ok(()) => log.push(format!("pause {id}: pid {pid} continued")),
                        Err(faultline_fault::Error::NoSuchProcess(_)) => {}
                        Err(e) => {
                            log.push(format!("pause {id}: {e}; kept in the journal"));
                            unresolved.push(entry.clone());
                        }
                    }
                }
            }
            journal::Entry::Workers { id, workers } => {
                for &(pid, start) in workers {
                    // Open first, then check: the pidfd pins the process, so the start time
                    // checked is the one of the process that would get the signal.
                    let Ok(process) = Process::open(pid) else {
                        continue;
                    };
                    if start_time(pid) == Some(start)
                        && running(pid)
                        && process
                            .kill(libc::SIGKILL, std::time::Duration::from_secs(1))
                            .is_ok()
                    {
                        log.push(format!("stress {id}: killed stale worker {pid}"));
                    }
                }
            }
            journal::Entry::Revert { .. } => {}
        }
    }
    (log, unresolved)
}
