//! Pods on a Kubernetes node, found the way the kubelet lays out their cgroups: a pod's
//! directory under `kubepods` (cgroupfs driver: `kubepods/[burstable|besteffort/]pod<uid>`;
//! systemd driver: `kubepods.slice/[kubepods-<qos>.slice/]kubepods[-<qos>]-pod<uid_>.slice`),
//! one directory per container below it (`<id>`, or `cri-containerd-<id>.scope`,
//! `crio-<id>.scope`, `docker-<id>.scope`). The same layout is found in each v1 hierarchy and
//! in the v2 one. The pod's sandbox — the `pause` process — holds the pod's network namespace,
//! which outlives the restarts of the app containers, so network faults are aimed at it.

use std::path::{Path, PathBuf};

use crate::Error;

/// A pod's cgroup, and its containers'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's directory.
    pub dir: PathBuf,
    /// Its containers, by directory name order.
    pub containers: Vec<ContainerCgroup>,
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// The container's id (as the runtime reports it, without `containerd://`).
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its processes.
    pub pids: Vec<u32>,
}

/// Checks a pod UID: the kubelet's cgroup names are built from it, so nothing else may pass.
pub fn check_uid(uid: &str) -> Result<(), Error> {
    let ok = uid.len() == 36
        && uid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "pod uid {uid:?}: expected a Kubernetes UID (36 characters: hex digits and dashes)"
        )))
    }
}

/// The relative directories where the kubelet may have put pod `uid`, for each cgroup driver
/// and QoS class, under its cgroup root.
pub fn pod_dirs(uid: &str) -> Vec<PathBuf> {
    let systemd_uid = uid.replace('-', "_");
    let mut dirs = Vec::new();
    for qos in ["", "burstable", "besteffort"] {
        let cgroupfs = if qos.is_empty() {
            PathBuf::from("kubepods")
        } else {
            PathBuf::from("kubepods").join(qos)
        };
        dirs.push(cgroupfs.join(format!("pod{uid}")));
        let (slice, name) = if qos.is_empty() {
            (
                PathBuf::from("kubepods.slice"),
                format!("kubepods-pod{systemd_uid}.slice"),
            )
        } else {
            (
                PathBuf::from("kubepods.slice").join(format!("kubepods-{qos}.slice")),
                format!("kubepods-{qos}-pod{systemd_uid}.slice"),
            )
        };
        dirs.push(slice.join(name));
    }
    dirs
}

/// The container id a container cgroup directory is named after, if it is one.
pub fn container_id(name: &str) -> Option<&str> {
    let id = ["cri-containerd-", "crio-", "docker-"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix)?.strip_suffix(".scope"))
        .unwrap_or(name);
    (id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Finds pod `uid` in the hierarchy whose kubelet cgroup root is `root` (a hierarchy's mount
/// point joined with the kubelet's `--cgroup-root`, `/` by default).
pub fn find_pod(root: &Path, uid: &str) -> Result<PodCgroup, Error> {
    check_uid(uid)?;
    let Some(dir) = pod_dirs(uid)
        .into_iter()
        .map(|rel| root.join(rel))
        .find(|d| d.is_dir())
    else {
        return Err(Error::Invalid(format!(
            "pod {uid}: no cgroup under {} (not on this node, or not running)",
            root.display()
        )));
    };
    let entries =
        std::fs::read_dir(&dir).map_err(|e| Error::io(format!("{}", dir.display()), e))?;
    let mut containers = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(container_id) else {
            continue;
        };
        let procs = entry.path().join("cgroup.procs");
        let text = std::fs::read_to_string(&procs)
            .map_err(|e| Error::io(format!("{}", procs.display()), e))?;
        containers.push(ContainerCgroup {
            id: id.to_owned(),
            dir: entry.path(),
            pids: text.lines().filter_map(|l| l.trim().parse().ok()).collect(),
        });
    }
    containers.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(PodCgroup { dir, containers })
}

impl PodCgroup {
    /// The pod's sandbox: the container whose process is `pause`, and that process.
    pub fn sandbox(&self) -> Option<(&ContainerCgroup, u32)> {
        self.sandbox_in(Path::new("/proc"))
    }

    fn sandbox_in(&self, proc: &Path) -> Option<(&ContainerCgroup, u32)> {
        self.containers.iter().find_map(|c| {
            c.pids.iter().find_map(|&pid| {
                let comm = std::fs::read_to_string(proc.join(pid.to_string()).join("comm")).ok()?;
                (comm.trim() == "pause").then_some((c, pid))
            })
        })
    }

    /// The container with id `id` (`containerd://…`, `docker://…` or a bare id; a prefix of
    /// at least 12 characters will do, as `docker ps` shows them).
    pub fn container(&self, id: &str) -> Result<&ContainerCgroup, Error> {
        let bare = id.split_once("://").map_or(id, |(_, rest)| rest);
        let matches: Vec<&ContainerCgroup> = if bare.len() >= 12 {
            self.containers
                .iter()
                .filter(|c| c.id.starts_with(bare))
                .collect()
        } else {
            Vec::new()
        };
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Invalid(format!(
                "container {id}: not in pod cgroup {} (containers: {})",
                self.dir.display(),
                self.containers
                    .iter()
                    .map(|c| &c.id[..12])
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Err(Error::Invalid(format!(
                "container {id}: more than one container id starts with it"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f8c6b9e-3d4a-4c1b-9e2f-5a6b7c8d9e0f";
    const SANDBOX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const APP: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn every_layout_of_the_kubelet_is_tried() {
        let dirs: Vec<String> = pod_dirs(UID)
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        assert_eq!(
            dirs,
            [
                format!("kubepods/pod{UID}"),
                "kubepods.slice/kubepods-pod0f8c6b9e_3d4a_4c1b_9e2f_5a6b7c8d9e0f.slice".into(),
                format!("kubepods/burstable/pod{UID}"),
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f8c6b9e_3d4a_4c1b_9e2f_5a6b7c8d9e0f.slice".into(),
                format!("kubepods/besteffort/pod{UID}"),
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f8c6b9e_3d4a_4c1b_9e2f_5a6b7c8d9e0f.slice".into(),
            ]
        );
    }

    #[test]
    fn container_directories_by_runtime() {
        assert_eq!(container_id(SANDBOX), Some(SANDBOX));
        assert_eq!(
            container_id(&format!("cri-containerd-{APP}.scope")),
            Some(APP)
        );
        assert_eq!(container_id(&format!("crio-{APP}.scope")), Some(APP));
        assert_eq!(container_id(&format!("docker-{APP}.scope")), Some(APP));
        assert_eq!(container_id("cpu.stat"), None);
        assert_eq!(container_id("cgroup.procs"), None);
        assert!(check_uid("../../etc").is_err());
        assert!(check_uid(UID).is_ok());
    }

    /// A fake v2 tree with the systemd driver's names, a burstable pod with a sandbox and an
    /// app container; a fake /proc says which process is `pause`.
    #[test]
    fn a_pod_is_found_in_a_v2_systemd_tree_with_its_sandbox() {
        let root = tempfile::tempdir().unwrap();
        let pod = root.path().join(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f8c6b9e_3d4a_4c1b_9e2f_5a6b7c8d9e0f.slice",
        );
        for (id, pid) in [(SANDBOX, 101), (APP, 202)] {
            let dir = pod.join(format!("cri-containerd-{id}.scope"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup.procs"), format!("{pid}\n")).unwrap();
        }
        std::fs::write(pod.join("cgroup.procs"), "").unwrap();
        let proc = tempfile::tempdir().unwrap();
        for (pid, comm) in [(101, "pause"), (202, "inventory")] {
            std::fs::create_dir_all(proc.path().join(pid.to_string())).unwrap();
            std::fs::write(proc.path().join(format!("{pid}/comm")), format!("{comm}\n")).unwrap();
        }
        let found = find_pod(root.path(), UID).unwrap();
        assert_eq!(found.dir, pod);
        assert_eq!(found.containers.len(), 2);
        let (sandbox, pid) = found.sandbox_in(proc.path()).unwrap();
        assert_eq!((sandbox.id.as_str(), pid), (SANDBOX, 101));
        assert_eq!(
            found
                .container(&format!("containerd://{APP}"))
                .unwrap()
                .pids,
            [202]
        );
        assert_eq!(found.container(&APP[..12]).unwrap().id, APP);
        assert!(found.container("ffee").is_err(), "too short to be sure");
        let missing = find_pod(root.path(), "00000000-0000-0000-0000-000000000000").unwrap_err();
        assert!(
            missing.to_string().contains("not on this node"),
            "{missing}"
        );
    }
}
