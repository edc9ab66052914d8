//! Kernel pieces of a local lab: network namespaces held by a child process, processes started
//! inside them, and cgroups made for them.
//!
//! A lab namespace is not a named one (`ip netns add` bind-mounts it under `/run/netns`, where
//! it outlives its creator): it belongs to a holder child that `unshare`s a new network
//! namespace before it execs and dies with its parent (`PR_SET_PDEATHSIG`, so create labs from
//! a thread that lives as long as the lab). When the holder and every process started inside
//! are gone, the kernel frees the namespace, its veth ends and any nftables table in it. So a
//! SIGKILLed runner leaves no namespace behind. Cgroups cannot work that way: a directory stays
//! until someone removes it, so lab cgroups carry a recognizable name ([`LAB_CGROUP_PREFIX`])
//! and [`sweep_lab_cgroups`] removes those whose owner is gone.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::{Process, start_time};

/// Lab cgroup directories are named `faultline-lab-<owner pid>-<owner start time>-<host>`.
pub const LAB_CGROUP_PREFIX: &str = "faultline-lab-";

/// A network namespace that exists as long as its holder process does.
#[derive(Debug)]
pub struct HeldNamespace {
    holder: Child,
    /// The namespace, held open by this handle too (setns needs a descriptor).
    ns: File,
    path: PathBuf,
}

impl HeldNamespace {
    /// Starts `holder` in a new network namespace, with its loopback up. `holder` should wait
    /// for end of file on its standard input and exit (`faultline __hold`); it also gets a
    /// SIGKILL when the calling thread ends. Loopback is brought up with `ip`.
    pub fn create(mut holder: Command) -> Result<Self, Error> {
        // SAFETY: between fork and exec only async-signal-safe calls: prctl, getppid, unshare.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            holder.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
                    || libc::getppid() != parent
                {
                    return Err(std::io::Error::other("the lab's creator is gone"));
                }
                if libc::unshare(libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        holder
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = holder
            .spawn()
            .map_err(|e| Error::io("start a network namespace holder".into(), e))?;
        let path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
        let ns = match File::open(&path) {
            Ok(ns) => ns,
            Err(e) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::io(format!("open {}", path.display()), e));
            }
        };
        let held = Self {
            holder: child,
            ns,
            path,
        };
        held.ip(&["link", "set", "lo", "up"])?;
        Ok(held)
    }

    /// The holder's pid: a process in the namespace that stays while the lab does (faults on
    /// the namespace target it, so they survive restarts of the host's own process).
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `/proc/<holder>/ns/net`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `ip ARGS` inside the namespace and waits for it; a failure carries its stderr.
    pub fn ip(&self, args: &[&str]) -> Result<(), Error> {
        let mut command = Command::new("ip");
        command.args(args);
        crate::target::exec_in_netns(&mut command, self.ns.as_raw_fd(), false, false);
        let output = command
            .output()
            .map_err(|e| Error::io("run ip (is iproute2 installed?)".into(), e))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Starts `command` inside the namespace, in a process group of its own, killed when the
    /// calling thread ends; with `cgroup`, inside that cgroup from its first instruction.
    pub fn spawn(&self, command: Command, cgroup: Option<&LabCgroup>) -> Result<Child, Error> {
        let procs = cgroup.map(|c| c.dir.join("cgroup.procs"));
        spawn_in(&self.path, command, procs.as_deref())
    }
}

/// Moves the calling thread into the network namespace at `netns`: sockets it opens afterwards
/// live there. Use a thread made for it (never a pooled or async worker thread).
pub fn enter_netns(netns: &Path) -> Result<(), Error> {
    let ns = File::open(netns).map_err(|e| Error::io(format!("open {}", netns.display()), e))?;
    // SAFETY: setns with a descriptor owned here.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Error::io(
            format!("enter {}", netns.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Starts `command` in the network namespace at `netns`, in a process group of its own,
/// killed when the calling thread ends; with `cgroup_procs` (a `cgroup.procs` file), inside
/// that cgroup from its first instruction.
pub fn spawn_in(
    netns: &Path,
    mut command: Command,
    cgroup_procs: Option<&Path>,
) -> Result<Child, Error> {
    let ns = File::open(netns).map_err(|e| Error::io(format!("open {}", netns.display()), e))?;
    crate::target::exec_in_netns(&mut command, ns.as_raw_fd(), true, true);
    let procs = match cgroup_procs {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?,
        ),
        None => None,
    };
    if let Some(procs) = &procs {
        let fd = procs.as_raw_fd();
        // SAFETY: write(2) of a constant buffer to a descriptor kept open until spawn returns.
        unsafe {
            command.pre_exec(move || {
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let what = format!("start {:?}", command.get_program());
    command.spawn().map_err(|e| Error::io(what, e))
}

/// Lets the processes `command` starts dump core: `RLIMIT_CORE` raised to unlimited in the
/// child alone (the shell's `ulimit -c unlimited`), never the caller's; where the hard limit
/// forbids that, as far as it allows. The command starts either way.
pub fn allow_cores(command: &mut Command) {
    // SAFETY: getrlimit(2) and setrlimit(2), async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &unlimited) != 0 {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_CORE, &mut limit) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                    libc::setrlimit(libc::RLIMIT_CORE, &limit);
                }
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process of group `group` (a lab host's command and its children).
pub fn signal_group(group: u32, signal: i32) {
    if group > 1 {
        // SAFETY: kill(2) on a process group this crate created (spawn_in's setpgid).
        unsafe {
            libc::kill(-(group as libc::pid_t), signal);
        }
    }
}

impl Drop for HeldNamespace {
    fn drop(&mut self) {
        // End of file on its stdin ends a well-behaved holder; SIGKILL ends any other.
        drop(self.holder.stdin.take());
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.holder.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Which cgroup interface a lab cgroup speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// A v1 `cpu` hierarchy: `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
    V1,
    /// The unified hierarchy with the `cpu` controller: `cpu.max`.
    V2,
}

/// Where lab cgroups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    /// The parent directory.
    pub dir: PathBuf,
    /// Its interface.
    pub version: CgroupVersion,
}

impl CgroupRoot {
    /// The host's: the v1 `cpu` hierarchy if mounted, else the unified hierarchy if its root
    /// offers the `cpu` controller; `None` if neither (CPU limits are then impossible).
    pub fn host() -> Option<Self> {
        Self::find(Path::new("/sys/fs/cgroup"))
    }

    /// As [`CgroupRoot::host`], under `mount` instead of `/sys/fs/cgroup` (tests).
    pub fn find(mount: &Path) -> Option<Self> {
        let v1 = mount.join("cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            return Some(Self {
                dir: v1,
                version: CgroupVersion::V1,
            });
        }
        let controllers = std::fs::read_to_string(mount.join("cgroup.controllers")).ok()?;
        controllers
            .split_whitespace()
            .any(|c| c == "cpu")
            .then(|| Self {
                dir: mount.to_path_buf(),
                version: CgroupVersion::V2,
            })
    }
}

/// A cgroup made for one lab host; removed (its processes killed) when dropped.
#[derive(Debug)]
pub struct LabCgroup {
    dir: PathBuf,
    version: CgroupVersion,
}

impl LabCgroup {
    /// Creates `<root>/faultline-lab-<this process>-<its start time>-<host>`, limited to
    /// `cores` CPUs if given (over a 100 ms period). On v2 the `cpu` controller is enabled for
    /// the root's children first.
    pub fn create(root: &CgroupRoot, host: &str, cores: Option<f64>) -> Result<Self, Error> {
        let me = std::process::id();
        let started = start_time(me).unwrap_or(0);
        let dir = root
            .dir
            .join(format!("{LAB_CGROUP_PREFIX}{me}-{started}-{host}"));
        if root.version == CgroupVersion::V2 && cores.is_some() {
            let control = root.dir.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                write_file(&control, "+cpu")?;
            }
        }
        std::fs::create_dir(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let cgroup = Self {
            dir,
            version: root.version,
        };
        if let Some(cores) = cores {
            cgroup.limit(cores)?;
        }
        Ok(cgroup)
    }

    fn limit(&self, cores: f64) -> Result<(), Error> {
        if !(cores.is_finite() && cores > 0.0) {
            return Err(Error::Invalid(format!(
                "a CPU limit must be more than 0 cores, not {cores}"
            )));
        }
        const PERIOD_US: u64 = 100_000;
        let quota = ((cores * PERIOD_US as f64).round() as u64).max(1_000);
        match self.version {
            CgroupVersion::V1 => {
                write_file(&self.dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write_file(&self.dir.join("cpu.cfs_quota_us"), &quota.to_string())
            }
            CgroupVersion::V2 => {
                write_file(&self.dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))
            }
        }
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<u32> {
        pids_of(&self.dir)
    }
}

impl Drop for LabCgroup {
    fn drop(&mut self) {
        let _ = remove_cgroup(&self.dir);
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), Error> {
    // `create` for fake trees in tests; cgroupfs has the file already (and refuses new ones).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| Error::io(format!("write {value:?} to {}", path.display()), e))
}

fn pids_of(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in `dir` (by pidfd: only processes in it when looked at) and removes
/// the directory. Returns how many processes it killed.
fn remove_cgroup(dir: &Path) -> Result<usize, Error> {
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = pids_of(dir);
        for &pid in &pids {
            if let Ok(process) = Process::open(pid)
                && pids_of(dir).contains(&pid)
                && process.signal(libc::SIGKILL).is_ok()
            {
                killed += 1;
            }
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(killed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(killed),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::io(format!("remove {}", dir.display()), e));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Removes lab cgroups under `root` whose owner (the runner that made them, by pid and start
/// time) is gone, killing what still runs in them. Returns one line per cgroup removed, or
/// failed to remove.
pub fn sweep_lab_cgroups(root: &CgroupRoot) -> Vec<String> {
    let mut log = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root.dir) else {
        return log;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(LAB_CGROUP_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let owner = parts.next().and_then(|p| p.parse::<u32>().ok());
        let started = parts.next().and_then(|s| s.parse::<u64>().ok());
        let (Some(owner), Some(started)) = (owner, started) else {
            continue;
        };
        if start_time(owner) == Some(started) {
            continue; // its runner is alive: its lab, not residue
        }
        let dir = entry.path();
        match remove_cgroup(&dir) {
            Ok(killed) => log.push(format!(
                "removed lab cgroup {} left by run {owner} ({killed} processes killed)",
                dir.display()
            )),
            Err(e) => log.push(format!("could not remove lab cgroup: {e}")),
        }
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_v2() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    #[test]
    fn the_unified_hierarchy_is_used_when_it_has_the_cpu_controller() {
        let tree = fake_v2();
        let root = CgroupRoot::find(tree.path()).unwrap();
        assert_eq!(root.version, CgroupVersion::V2);
        std::fs::write(tree.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        assert_eq!(CgroupRoot::find(tree.path()), None);
    }

    #[test]
    fn a_v2_limit_is_written_to_cpu_max_after_enabling_the_controller() {
        let tree = fake_v2();
        let root = CgroupRoot::find(tree.path()).unwrap();
        let cgroup = LabCgroup::create(&root, "api", Some(0.5)).unwrap();
        let name = cgroup
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(LAB_CGROUP_PREFIX) && name.ends_with("-api"));
        // A real kernel creates cpu.max with the directory; the fake tree gets it written.
        assert_eq!(
            std::fs::read_to_string(cgroup.dir().join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(tree.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu"
        );
        // The fake directory holds files, so the kernel-style rmdir fails: clean up by hand.
        let dir = cgroup.dir().to_path_buf();
        std::mem::forget(cgroup);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_limit_of_no_cores_is_refused() {
        let tree = fake_v2();
        let root = CgroupRoot::find(tree.path()).unwrap();
        let err = LabCgroup::create(&root, "api", Some(0.0)).unwrap_err();
        assert!(err.to_string().contains("more than 0 cores"), "{err}");
    }

    #[test]
    fn the_sweep_keeps_cgroups_of_a_live_owner_and_skips_foreign_names() {
        let tree = fake_v2();
        let me = std::process::id();
        let started = start_time(me).unwrap();
        let live = tree
            .path()
            .join(format!("{LAB_CGROUP_PREFIX}{me}-{started}-api"));
        let foreign = tree.path().join("kubepods");
        std::fs::create_dir(&live).unwrap();
        std::fs::create_dir(&foreign).unwrap();
        let root = CgroupRoot::find(tree.path()).unwrap();
        assert!(sweep_lab_cgroups(&root).is_empty());
        assert!(live.exists() && foreign.exists());
        // A dead owner (pid 0 never has a start time): its empty cgroup goes.
        let dead = tree.path().join(format!("{LAB_CGROUP_PREFIX}0-1-db"));
        std::fs::create_dir(&dead).unwrap();
        let log = sweep_lab_cgroups(&root);
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(!dead.exists());
    }
}
