//! CPU stress inside the target's cgroup: worker processes that compete for the target's own
//! CPU limit, so the target feels the squeeze a noisy neighbour in its pod would cause.
//!
//! Workers are the caller's program re-executed in a hidden worker mode
//! ([`run_stress_worker`]). Each is busy for its share of every 100 ms slice, and ends at the
//! first of: its own deadline, end-of-file on its lease pipe (the revert closes it; the
//! kernel closes it when the holder dies), or the holder's death (`PR_SET_PDEATHSIG`, which
//! follows the thread that spawned the worker: the holder spawns them from the thread that
//! lives as long as the fault).

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{CgroupPaths, Error, Process, Target};

/// How long one busy/idle cycle of a worker lasts.
const SLICE: Duration = Duration::from_millis(100);

/// A CPU stress fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stress {
    /// Worker processes (1–64).
    pub workers: u32,
    /// Load, in percent of the target's CPU quota when it has one, else of one core per worker
    /// (1–100).
    pub load: u8,
}

/// A cgroup's CPU limit, in cores, if it has one.
pub fn cpu_quota(cgroup: &CgroupPaths) -> Option<f64> {
    if let Some(dir) = &cgroup.v1_cpu {
        let quota = read_number(&dir.join("cpu.cfs_quota_us"))?;
        let period = read_number(&dir.join("cpu.cfs_period_us"))?;
        return (quota > 0.0 && period > 0.0).then(|| quota / period);
    }
    if let Some(dir) = &cgroup.v2 {
        return parse_cpu_max(&std::fs::read_to_string(dir.join("cpu.max")).ok()?);
    }
    None
}

/// cgroup v2 `cpu.max`: `max 100000` (no limit) or `50000 100000` (half a core).
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut words = text.split_whitespace();
    let quota: f64 = words.next()?.parse().ok()?;
    let period: f64 = words.next()?.parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

fn read_number(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Throttling so far: (periods throttled, seconds throttled), from the cgroup's `cpu.stat`.
pub fn throttling(cgroup: &CgroupPaths) -> Option<(u64, f64)> {
    let (dir, time_key, scale) = match (&cgroup.v1_cpu, &cgroup.v2) {
        (Some(dir), _) => (dir, "throttled_time", 1e-9),
        (None, Some(dir)) => (dir, "throttled_usec", 1e-6),
        (None, None) => return None,
    };
    let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let field = |key: &str| {
        stat.lines().find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(' ')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((field("nr_throttled")?, field(time_key)? as f64 * scale))
}

/// The fraction of each slice a worker spends busy.
pub fn busy_fraction(stress: &Stress, quota: Option<f64>) -> f64 {
    let cores = quota.unwrap_or(f64::from(stress.workers));
    (cores * f64::from(stress.load) / 100.0 / f64::from(stress.workers)).clamp(0.0, 1.0)
}

/// Stress in force: the workers, held by their lease pipes.
#[derive(Debug)]
pub struct AppliedStress {
    workers: Vec<(Child, Option<ChildStdin>, Process)>,
    cgroup: CgroupPaths,
    started: Instant,
    throttled_before: Option<(u64, f64)>,
    busy_fraction: f64,
}

/// What stress achieved, measured at its revert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StressReport {
    /// CPU the workers used, in cores (CPU seconds over wall seconds).
    pub cores_used: f64,
    /// What they were asked to use, in cores.
    pub cores_asked: f64,
    /// Periods the target's cgroup was throttled while the stress ran.
    pub throttled_periods: Option<u64>,
    /// Seconds it was throttled.
    pub throttled_seconds: Option<f64>,
}

impl AppliedStress {
    /// Starts the workers with `worker` (a command that runs [`run_stress_worker`] with the
    /// given busy fraction and deadline) and moves each into `target`'s CPU cgroup.
    pub fn apply(
        target: &Target,
        stress: &Stress,
        worker: impl Fn(f64) -> Command,
    ) -> Result<Self, Error> {
        if !(1..=64).contains(&stress.workers) {
            return Err(Error::Invalid(format!(
                "{} workers: expected 1 to 64",
                stress.workers
            )));
        }
        if !(1..=100).contains(&stress.load) {
            return Err(Error::Invalid(format!(
                "load {}%: expected 1 to 100",
                stress.load
            )));
        }
        // The hierarchy that holds the CPU limit: v1's `cpu` controller where there is one
        // (hybrid hosts keep CPU there), else the unified hierarchy.
        let procs: Vec<PathBuf> = target
            .cgroup
            .v1_cpu
            .as_ref()
            .or(target.cgroup.v2.as_ref())
            .map(|dir| dir.join("cgroup.procs"))
            .filter(|p| p.exists())
            .into_iter()
            .collect();
        if procs.is_empty() {
            return Err(Error::Invalid(format!(
                "process {} has no CPU cgroup this host can write to",
                target.pid
            )));
        }
        let quota = cpu_quota(&target.cgroup);
        let fraction = busy_fraction(stress, quota);
        let mut applied = Self {
            workers: Vec::new(),
            cgroup: target.cgroup.clone(),
            started: Instant::now(),
            throttled_before: throttling(&target.cgroup),
            busy_fraction: fraction,
        };
        for _ in 0..stress.workers {
            let mut command = worker(fraction);
            let parent = std::process::id();
            // SAFETY: prctl and getppid only, between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if libc::getppid() as u32 != parent {
                        return Err(std::io::Error::other("parent died"));
                    }
                    Ok(())
                });
            }
            let mut child = command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| Error::io("start a stress worker".into(), e))?;
            let lease = child.stdin.take();
            let process = Process::open(child.id())?;
            // Into the target's cgroup before it starts burning: it waits for `go`.
            for file in &procs {
                std::fs::write(file, child.id().to_string())
                    .map_err(|e| Error::io(format!("move a worker into {}", file.display()), e))?;
            }
            applied.workers.push((child, lease, process));
        }
        // Every worker placed: let them run.
        for (child, _, _) in &mut applied.workers {
            let mut ready = [0u8; 6];
            if let Some(out) = child.stdout.as_mut() {
                out.read_exact(&mut ready)
                    .map_err(|e| Error::io("wait for a stress worker".into(), e))?;
            }
        }
        for (_, lease, _) in &mut applied.workers {
            if let Some(pipe) = lease.as_mut() {
                use std::io::Write as _;
                pipe.write_all(b"g")
                    .map_err(|e| Error::io("start a stress worker".into(), e))?;
            }
        }
        Ok(applied)
    }

    /// The workers' process ids.
    pub fn worker_pids(&self) -> Vec<u32> {
        self.workers.iter().map(|(c, _, _)| c.id()).collect()
    }

    /// The fraction of each slice each worker is busy.
    pub fn busy_fraction(&self) -> f64 {
        self.busy_fraction
    }

    /// Periods the target's cgroup was throttled since the stress started (`None` where the
    /// cgroup has no `cpu.stat`).
    pub fn throttled_periods(&self) -> Option<u64> {
        let (before, _) = self.throttled_before?;
        let (now, _) = throttling(&self.cgroup)?;
        Some(now.saturating_sub(before))
    }

    /// Ends the workers (closing their leases), checks they are gone, and reports what they
    /// achieved.
    pub fn revert(mut self) -> Result<StressReport, Error> {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let cpu: f64 = self
            .workers
            .iter()
            .filter_map(|(c, _, _)| cpu_seconds(c.id()))
            .sum();
        let throttled_after = throttling(&self.cgroup);
        let asked = self.busy_fraction * self.workers.len() as f64;
        self.end_workers();
        let residue: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, _, p)| !p.wait_exit(Duration::ZERO))
            .map(|(c, _, _)| c.id())
            .collect();
        if !residue.is_empty() {
            return Err(Error::Residue(format!(
                "stress workers {residue:?} still run"
            )));
        }
        let delta = match (self.throttled_before, throttled_after) {
            (Some((p0, s0)), Some((p1, s1))) => Some((p1.saturating_sub(p0), (s1 - s0).max(0.0))),
            _ => None,
        };
        Ok(StressReport {
            cores_used: cpu / elapsed,
            cores_asked: asked,
            throttled_periods: delta.map(|d| d.0),
            throttled_seconds: delta.map(|d| d.1),
        })
    }

    fn end_workers(&mut self) {
        for (_, lease, _) in &mut self.workers {
            drop(lease.take());
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        for (child, _, process) in &mut self.workers {
            if !process.wait_exit(deadline.saturating_duration_since(Instant::now())) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for AppliedStress {
    fn drop(&mut self) {
        self.end_workers();
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state is field 3 of the line, utime 14 and stime 15 → indices 11, 12.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / if hz > 0 { hz as f64 } else { 100.0 })
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// A stress worker's whole life: says `ready`, waits for the go byte on its lease pipe (it has
/// been moved into the cgroup by then), then is busy for `busy_fraction` of every 100 ms slice
/// until `deadline` passes or the lease pipe ends.
pub fn run_stress_worker(busy_fraction: f64, deadline: Duration) -> Result<(), Error> {
    use std::io::Write as _;
    for signal in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: setting a signal's disposition to SIG_IGN.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut out = std::io::stdout();
    out.write_all(b"ready\n")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("tell the holder".into(), e))?;
    let mut go = [0u8; 1];
    if std::io::stdin().read(&mut go).unwrap_or(0) == 0 {
        return Ok(());
    }
    let end = Instant::now() + deadline;
    let busy = SLICE.mul_f64(busy_fraction.clamp(0.0, 1.0));
    let mut spin = 0u64;
    while Instant::now() < end {
        // Busy by CPU time, not wall time: a worker competing with the target for the cgroup's
        // quota keeps trying until it has had its share of this slice, or the slice is over.
        let slice = Instant::now();
        let cpu_start = thread_cpu_time();
        while thread_cpu_time().saturating_sub(cpu_start) < busy && slice.elapsed() < SLICE {
            for _ in 0..1000 {
                spin = std::hint::black_box(spin.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        let idle = SLICE.saturating_sub(slice.elapsed());
        let mut poll = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(idle.as_millis()).unwrap_or(0);
        // SAFETY: one valid pollfd on standard input.
        let n = unsafe { libc::poll(&mut poll, 1, ms) };
        if n > 0 {
            let mut byte = [0u8; 1];
            if std::io::stdin().read(&mut byte).unwrap_or(0) == 0 {
                break; // the lease ended
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_and_busy_fractions() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max(""), None);
        let s = Stress {
            workers: 2,
            load: 100,
        };
        assert_eq!(busy_fraction(&s, Some(0.5)), 0.25);
        assert_eq!(busy_fraction(&s, None), 1.0);
        let s = Stress {
            workers: 1,
            load: 50,
        };
        assert_eq!(
            busy_fraction(&s, Some(4.0)),
            1.0,
            "capped at one core per worker"
        );
        assert_eq!(busy_fraction(&s, Some(0.5)), 0.25);
    }

    #[test]
    fn v2_quota_and_throttling_from_a_fake_tree() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("cpu.max"), "25000 100000\n").unwrap();
        std::fs::write(
            tree.path().join("cpu.stat"),
            "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 10\nnr_throttled 3\nthrottled_usec 1500000\n",
        )
        .unwrap();
        let paths = CgroupPaths {
            v1_cpu: None,
            v2: Some(tree.path().to_owned()),
            v2_has_cpu: true,
        };
        assert_eq!(cpu_quota(&paths), Some(0.25));
        assert_eq!(throttling(&paths), Some((3, 1.5)));
    }

    #[test]
    fn v1_quota_and_throttling_from_a_fake_tree() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("cpu.cfs_quota_us"), "50000\n").unwrap();
        std::fs::write(tree.path().join("cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(
            tree.path().join("cpu.stat"),
            "nr_periods 20\nnr_throttled 7\nthrottled_time 2000000000\n",
        )
        .unwrap();
        let paths = CgroupPaths {
            v1_cpu: Some(tree.path().to_owned()),
            v2: None,
            v2_has_cpu: false,
        };
        assert_eq!(cpu_quota(&paths), Some(0.5));
        assert_eq!(throttling(&paths), Some((7, 2.0)));
        std::fs::write(tree.path().join("cpu.cfs_quota_us"), "-1\n").unwrap();
        assert_eq!(cpu_quota(&paths), None);
    }
}
