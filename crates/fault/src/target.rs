//! Local targets: a process, its network namespace and its cgroup.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::Error;

/// A process to fault, with what a fault needs to know about it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The process id.
    pub pid: u32,
    /// Its network namespace, as a path that holds it open while read (`/proc/PID/ns/net`).
    pub netns: PathBuf,
    /// The namespace's inode: equal inodes, same namespace.
    pub netns_inode: u64,
    /// Whether that is the namespace this process (faultline, the agent) runs in, or the
    /// host's (PID 1's).
    pub in_own_netns: bool,
    /// Its cgroups, as far as the host has them.
    pub cgroup: CgroupPaths,
}

impl Target {
    /// Resolves process `pid` under `/proc`.
    pub fn process(pid: u32) -> Result<Self, Error> {
        Self::process_in(Path::new("/proc"), pid)
    }

    /// Every process of cgroup directory `dir` (v1 or v2): the target is its first process,
    /// and the cgroup directory itself is the target's CPU cgroup. All its processes must share
    /// one network namespace, so a network fault on it means one thing.
    pub fn cgroup(dir: &Path) -> Result<(Self, Vec<u32>), Error> {
        let procs = dir.join("cgroup.procs");
        let text = std::fs::read_to_string(&procs)
            .map_err(|e| Error::io(format!("{}", procs.display()), e))?;
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let Some(&first) = pids.first() else {
            return Err(Error::Invalid(format!(
                "{}: the cgroup has no processes",
                dir.display()
            )));
        };
        let mut target = Self::process(first)?;
        for &pid in &pids[1..] {
            let inode = std::fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| m.ino());
            if let Ok(inode) = inode
                && inode != target.netns_inode
            {
                return Err(Error::Invalid(format!(
                    "{}: its processes are in different network namespaces ({} and {}); \
                     target one of them with --pid",
                    dir.display(),
                    first,
                    pid
                )));
            }
        }
        // The cgroup given is the one to stress: the v1 cpu hierarchy or the unified one.
        if dir.join("cpu.cfs_quota_us").exists() {
            target.cgroup.v1_cpu = Some(dir.to_owned());
        } else if dir.join("cgroup.controllers").exists() {
            target.cgroup.v1_cpu = None;
            target.cgroup.v2 = Some(dir.to_owned());
        }
        Ok((target, pids))
    }

    fn process_in(proc: &Path, pid: u32) -> Result<Self, Error> {
        let dir = proc.join(pid.to_string());
        if !dir.exists() {
            return Err(Error::NoSuchProcess(pid));
        }
        let netns = dir.join("ns/net");
        let inode = std::fs::metadata(&netns)
            .map_err(|e| Error::io(format!("{}", netns.display()), e))?
            .ino();
        let own = std::fs::metadata(proc.join("self/ns/net"))
            .map_err(|e| Error::io("/proc/self/ns/net".into(), e))?
            .ino();
        // The host's namespace is PID 1's: an agent in a pod (with the host's pid namespace
        // but its own network) must not take a host-network pod's namespace for a pod's.
        let init = std::fs::metadata(proc.join("1/ns/net"))
            .map(|m| m.ino())
            .ok();
        let cgroup_text = std::fs::read_to_string(dir.join("cgroup"))
            .map_err(|e| Error::io(format!("{}/cgroup", dir.display()), e))?;
        let mountinfo = std::fs::read_to_string(proc.join("self/mountinfo"))
            .map_err(|e| Error::io("/proc/self/mountinfo".into(), e))?;
        Ok(Self {
            pid,
            netns,
            netns_inode: inode,
            in_own_netns: inode == own || Some(inode) == init,
            cgroup: CgroupPaths::resolve(&cgroup_text, &mountinfo),
        })
    }
}

/// Every process of cgroup directory `dir` and of the cgroups below it (a freeze or a kill of
/// a cgroup reaches them all). Unreadable subdirectories are errors, not skipped.
pub fn cgroup_tree_pids(dir: &Path) -> Result<Vec<u32>, Error> {
    let mut pids = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let procs = dir.join("cgroup.procs");
        let text = std::fs::read_to_string(&procs)
            .map_err(|e| Error::io(format!("{}", procs.display()), e))?;
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::io(format!("{}", dir.display()), e))?;
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Where a process's CPU cgroup is on this host: the v1 `cpu` controller's directory, the v2
/// unified directory, or both (hybrid hosts), whichever exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The directory of the cgroup in the v1 hierarchy that has the `cpu` controller.
    pub v1_cpu: Option<PathBuf>,
    /// The directory in the v2 (unified) hierarchy.
    pub v2: Option<PathBuf>,
    /// Whether the v2 hierarchy has the `cpu` controller enabled for it (a v2 CPU quota is
    /// possible only then); see [`CgroupPaths::probe_v2_cpu`].
    pub v2_has_cpu: bool,
}

impl CgroupPaths {
    /// From a process's `/proc/PID/cgroup` and the reader's `/proc/self/mountinfo`: pure, so
    /// v1, v2 and hybrid hosts can be tested with their text.
    pub fn resolve(cgroup: &str, mountinfo: &str) -> Self {
        let mut paths = Self::default();
        let mounts = mounts(mountinfo);
        for line in cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                // `0::/path`: the unified hierarchy.
                if let Some(m) = mounts.iter().find(|m| m.fstype == "cgroup2") {
                    paths.v2 = Some(m.join(path));
                }
            } else if controllers.split(',').any(|c| c == "cpu")
                && let Some(m) = mounts
                    .iter()
                    .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "cpu"))
            {
                paths.v1_cpu = Some(m.join(path));
            }
        }
        paths
    }

    /// Fills [`CgroupPaths::v2_has_cpu`] from the v2 directory's `cgroup.controllers`.
    pub fn probe_v2_cpu(&mut self) {
        self.v2_has_cpu = self.v2.as_ref().is_some_and(|dir| {
            std::fs::read_to_string(dir.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "cpu"))
        });
    }
}

/// A cgroup mount from mountinfo.
struct Mount {
    /// The root of the mount inside its hierarchy (field 4).
    root: String,
    /// Where it is mounted (field 5).
    point: PathBuf,
    fstype: String,
    /// Super options (after the fstype and source): the v1 controllers.
    options: String,
}

impl Mount {
    /// The directory of hierarchy path `path` under this mount.
    fn join(&self, path: &str) -> PathBuf {
        let relative = path
            .strip_prefix(self.root.trim_end_matches('/'))
            .unwrap_or(path)
            .trim_start_matches('/');
        if relative.is_empty() {
            self.point.clone()
        } else {
            self.point.join(relative)
        }
    }
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split_whitespace();
            let root = l.nth(3)?.to_owned();
            let point = PathBuf::from(unescape(l.next()?));
            let mut r = right.split_whitespace();
            let fstype = r.next()?.to_owned();
            let _source = r.next()?;
            let options = r.next().unwrap_or_default().to_owned();
            (fstype == "cgroup" || fstype == "cgroup2").then_some(Mount {
                root,
                point,
                fstype,
                options,
            })
        })
        .collect()
}

/// mountinfo escapes spaces and the like as `\040`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes `command` enter the network namespace open as `netns` between fork and exec, with
/// every signal unblocked (a caller may block some to take them synchronously). With
/// `die_with_parent` it gets a SIGKILL when the spawning thread ends (and refuses to start if
/// the parent is already gone); with `own_group` it leads a process group of its own, so the
/// group can be signalled whole.
pub(crate) fn exec_in_netns(
    command: &mut std::process::Command,
    netns: std::os::fd::RawFd,
    die_with_parent: bool,
    own_group: bool,
) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec: setns, prctl, getppid,
    // setpgid, sigprocmask; errors are returned, not handled with allocation.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if die_with_parent {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl: then nobody holds the lease.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent died"));
                }
            }
            if own_group && libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_hosts_have_both() {
        let cgroup = "12:cpuacct:/svc\n11:cpu:/svc/api\n0::/system.slice/api.service\n";
        let paths = CgroupPaths::resolve(cgroup, HYBRID_MOUNTS);
        assert_eq!(
            paths.v1_cpu.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu/svc/api"))
        );
        assert_eq!(
            paths.v2.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/system.slice/api.service"))
        );
    }

    #[test]
    fn v1_controllers_mounted_together() {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let paths = CgroupPaths::resolve("4:cpu,cpuacct:/kubepods/pod1/c1\n", mounts);
        assert_eq!(
            paths.v1_cpu.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/c1"))
        );
        assert_eq!(paths.v2, None);
    }

    #[test]
    fn pure_v2_with_a_namespaced_root() {
        // Inside a container the mount's root is the container's own cgroup.
        let mounts = "50 40 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let paths = CgroupPaths::resolve("0::/kubepods/pod1/c1\n", mounts);
        assert_eq!(paths.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/c1")));
        assert_eq!(paths.v1_cpu, None);
        let root = CgroupPaths::resolve(
            "0::/\n",
            "50 40 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(root.v2.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn v2_cpu_controller_is_read_from_a_fake_tree() {
        let tree = tempfile::tempdir().unwrap();
        let dir = tree.path().join("kubepods/pod1");
        std::fs::create_dir_all(&dir).unwrap();
        let mounts = format!(
            "50 40 0:30 / {} rw - cgroup2 cgroup2 rw\n",
            tree.path().display()
        );
        let mut paths = CgroupPaths::resolve("0::/kubepods/pod1\n", &mounts);
        assert_eq!(paths.v2.as_deref(), Some(dir.as_path()));
        paths.probe_v2_cpu();
        assert!(!paths.v2_has_cpu, "no cgroup.controllers file");
        std::fs::write(dir.join("cgroup.controllers"), "cpuset memory pids\n").unwrap();
        paths.probe_v2_cpu();
        assert!(!paths.v2_has_cpu);
        std::fs::write(
            dir.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        paths.probe_v2_cpu();
        assert!(paths.v2_has_cpu);
    }

    #[test]
    fn mount_points_with_spaces() {
        let mounts = "32 31 0:29 / /mnt/my\\040cgroups rw - cgroup cgroup rw,cpu\n";
        let paths = CgroupPaths::resolve("3:cpu:/a\n", mounts);
        assert_eq!(
            paths.v1_cpu.as_deref(),
            Some(Path::new("/mnt/my cgroups/a"))
        );
    }

    #[test]
    fn this_process_resolves() {
        let target = Target::process(std::process::id()).unwrap();
        assert!(target.in_own_netns);
        assert!(target.netns.ends_with("ns/net"));
        assert!(matches!(
            Target::process(u32::MAX - 1),
            Err(Error::NoSuchProcess(_))
        ));
    }

    /// An agent in a pod with the host's pid namespace: its own network namespace is not the
    /// host's, and a host-network process must still count as the host's.
    #[test]
    fn the_hosts_namespace_is_pid_ones_too() {
        let proc = tempfile::tempdir().unwrap();
        let dir = |p: &str| {
            let d = proc.path().join(p);
            std::fs::create_dir_all(d.join("ns")).unwrap();
            std::fs::write(d.join("cgroup"), "0::/\n").unwrap();
            d
        };
        dir("self");
        std::fs::write(proc.path().join("self/ns/net"), "agent").unwrap();
        std::fs::write(proc.path().join("self/mountinfo"), "").unwrap();
        std::fs::write(dir("1").join("ns/net"), "host").unwrap();
        dir("42");
        std::fs::hard_link(proc.path().join("1/ns/net"), proc.path().join("42/ns/net")).unwrap();
        dir("43");
        std::fs::write(proc.path().join("43/ns/net"), "a pod").unwrap();
        assert!(Target::process_in(proc.path(), 42).unwrap().in_own_netns);
        assert!(!Target::process_in(proc.path(), 43).unwrap().in_own_netns);
    }
}
