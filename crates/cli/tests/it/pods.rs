//! A pod on this node, found by the kubelet's cgroup layout and faulted through the agent: real
//! cgroups made with kubelet-style paths (cgroupfs driver, burstable QoS, v1 `cpu` and
//! `freezer` hierarchies, under a cgroup root of the test's own), a real `pause` process and an
//! app process in a network namespace. The partition lands in the sandbox's namespace, stress
//! and pause in the app container's cgroups; a SIGKILL of the agent takes them all away.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use faultline_agent::spec::{CreateFault, FaultSpec, PodTarget};
use faultline_agent::{AgentAddr, Client};
use faultline_tests::{NetLab, run_ok, wait_until};

use crate::agent::Agent;
use crate::faults::{ECHO, setup, signal};

const UID: &str = "5d1c8a2e-7b3f-4e6d-9a0b-1c2d3e4f5a6b";
const SANDBOX: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const APP: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

/// The kubelet's cgroups for one pod, in the v1 `cpu` and `freezer` hierarchies, under
/// `faultline-kt-<pid>` (the kubelet's `--cgroup-root` for the agent). Removed on drop.
struct KubeletCgroups {
    roots: Vec<PathBuf>,
}

impl KubeletCgroups {
    fn new(containers: &[(&str, u32)]) -> Self {
        let name = format!("faultline-kt-{}", std::process::id());
        let roots: Vec<PathBuf> = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/freezer"]
            .iter()
            .map(|h| Path::new(h).join(&name))
            .collect();
        for root in &roots {
            for (id, pid) in containers {
                let dir = Self::container(root, id);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
            }
        }
        Self { roots }
    }

    fn container(root: &Path, id: &str) -> PathBuf {
        root.join(format!("kubepods/burstable/pod{UID}/{id}"))
    }

    fn cpu(&self, id: &str) -> PathBuf {
        Self::container(&self.roots[0], id)
    }

    fn freezer(&self, id: &str) -> PathBuf {
        Self::container(&self.roots[1], id)
    }

    fn pids(dir: &Path) -> Vec<u32> {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    }
}

impl Drop for KubeletCgroups {
    fn drop(&mut self) {
        for root in &self.roots {
            let hierarchy = root.parent().unwrap().to_owned();
            // Deepest first: thaw, move the processes out to the hierarchy's root, remove.
            let mut dirs = vec![root.clone()];
            let mut i = 0;
            while i < dirs.len() {
                if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                    dirs.extend(
                        entries
                            .flatten()
                            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                            .map(|e| e.path()),
                    );
                }
                i += 1;
            }
            for dir in dirs.iter().rev() {
                let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
                for pid in Self::pids(dir) {
                    let _ = std::fs::write(hierarchy.join("cgroup.procs"), pid.to_string());
                }
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

fn pod(container: Option<&str>) -> Option<PodTarget> {
    Some(PodTarget {
        uid: UID.into(),
        container: container.map(str::to_owned),
    })
}

#[test]
fn a_pod_is_found_by_its_cgroups_and_each_fault_lands_where_it_should() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    // The sandbox: `sleep` under the name `pause`, in the app's network namespace.
    let sleep = run_ok(Command::new("sh").args(["-c", "command -v sleep"]))
        .stdout
        .trim()
        .to_owned();
    let pause_binary = dir.path().join("pause");
    std::fs::copy(&sleep, &pause_binary).unwrap();
    let pause = setup.lab.spawn(
        setup
            .lab
            .command(1, pause_binary.to_str().unwrap())
            .arg("600"),
    );
    assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pause}/comm")).is_ok_and(|c| c.trim() == "pause")
    }));
    let cgroups = KubeletCgroups::new(&[(SANDBOX, pause), (APP, setup.target)]);
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"kubelet_cgroup_root": "/faultline-kt-{}"}}"#,
            std::process::id()
        ),
    )
    .unwrap();
    let socket = dir.path().join("agent.sock");
    let mut agent = Agent::start(
        dir.path(),
        &format!("unix:{}", socket.display()),
        &["--policy", policy.to_str().unwrap()],
    );
    let client = Client::new(AgentAddr::Unix(socket), None);
    let create = |fault: FaultSpec| {
        client.create(&CreateFault {
            fault,
            lease_seconds: None,
        })
    };

    // A partition of the pod: in its sandbox's network namespace.
    let view = create(FaultSpec::Partition {
        pid: None,
        cgroup: None,
        pod: pod(None),
        peers: vec![NetLab::A_IP.into()],
        ports: Vec::new(),
        protocol: None,
        direction: "both".into(),
        reject: false,
        allow_host_netns: false,
        seconds: 60.0,
    })
    .unwrap();
    assert_eq!(view.pid, pause, "aimed at the sandbox");
    assert_eq!(view.pod.as_deref(), Some(UID));
    assert_eq!(setup.lab.faultline_tables(1).len(), 1);
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");

    // Stress in the app container's CPU cgroup, a pause of its freezer cgroup.
    let view = create(FaultSpec::Stress {
        pid: None,
        cgroup: None,
        pod: pod(Some(&format!("containerd://{APP}"))),
        workers: 2,
        load: 50,
        seconds: 60.0,
    })
    .unwrap();
    assert_eq!(view.cgroup.as_deref(), Some(cgroups.cpu(APP).as_path()));
    assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
        KubeletCgroups::pids(&cgroups.cpu(APP)).len() >= 3
    }));
    assert_eq!(KubeletCgroups::pids(&cgroups.cpu(SANDBOX)), [pause]);
    let freezer_state =
        |id: &str| std::fs::read_to_string(cgroups.freezer(id).join("freezer.state")).unwrap();
    create(FaultSpec::Pause {
        pid: None,
        cgroup: None,
        pod: pod(Some(&APP[..12])),
        seconds: 60.0,
    })
    .unwrap();
    assert_eq!(freezer_state(APP).trim(), "FROZEN");
    assert_eq!(freezer_state(SANDBOX).trim(), "THAWED");

    // What cannot be found is refused, naming it.
    let unknown = create(FaultSpec::Pause {
        pid: None,
        cgroup: None,
        pod: Some(PodTarget {
            uid: "00000000-0000-0000-0000-000000000000".into(),
            container: None,
        }),
        seconds: 10.0,
    })
    .unwrap_err()
    .to_string();
    assert!(
        unknown.contains("400") && unknown.contains("not on this node"),
        "{unknown}"
    );
    let wrong = create(FaultSpec::Stress {
        pid: None,
        cgroup: None,
        pod: pod(Some("containerd://0123456789abcdef")),
        workers: 1,
        load: 10,
        seconds: 10.0,
    })
    .unwrap_err()
    .to_string();
    assert!(wrong.contains("not in pod cgroup"), "{wrong}");

    // The agent dies: the partition, the workers and the freeze go with it.
    signal(agent.guard.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || {
            setup.lab.faultline_tables(1).is_empty()
                && KubeletCgroups::pids(&cgroups.cpu(APP)) == [setup.target]
                && freezer_state(APP).trim() == "THAWED"
        }),
        "left behind: tables {:?}, app cgroup {:?}, freezer {}",
        setup.lab.faultline_tables(1),
        KubeletCgroups::pids(&cgroups.cpu(APP)),
        freezer_state(APP).trim()
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    agent.guard.stop();
    drop(cgroups);
}
