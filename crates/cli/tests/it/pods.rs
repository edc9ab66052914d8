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
    /// The kubelet's cgroup root, for the agent's policy (`/faultline-kt-<pid>-<tag>`).
    kubelet_root: String,
}

impl KubeletCgroups {
    /// `tag` keeps the tests that run at once apart.
    fn new(tag: &str, containers: &[(&str, u32)]) -> Self {
        let name = format!("faultline-kt-{}-{tag}", std::process::id());
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
        Self {
            roots,
            kubelet_root: format!("/{name}"),
        }
    }

    /// The agent's policy file for these cgroups.
    fn policy(&self, dir: &Path) -> PathBuf {
        let path = dir.join("policy.json");
        std::fs::write(
            &path,
            format!(r#"{{"kubelet_cgroup_root": "{}"}}"#, self.kubelet_root),
        )
        .unwrap();
        path
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

/// The pod's sandbox: `sleep` under the name `pause`, in the app's network namespace (the lab's
/// second host), as the kubelet's pause container would be.
fn spawn_pause(setup: &mut crate::faults::Setup, dir: &Path) -> u32 {
    let sleep = run_ok(Command::new("sh").args(["-c", "command -v sleep"]))
        .stdout
        .trim()
        .to_owned();
    let pause_binary = dir.join("pause");
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
    pause
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
    let pause = spawn_pause(&mut setup, dir.path());
    let cgroups = KubeletCgroups::new("agent", &[(SANDBOX, pause), (APP, setup.target)]);
    let policy = cgroups.policy(dir.path());
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

/// `inject --pod NS/NAME`: the pod and the agent on its node come from the API server (a fake
/// one on loopback, through a kubeconfig context); the agent is a real one, over TCP with a
/// token; the pod's cgroups and sandbox are real. The partition lands in the sandbox's
/// namespace, the stress in the named container's cgroup.
#[test]
fn inject_with_pod_finds_the_pod_and_its_nodes_agent_through_the_api() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let pause = spawn_pause(&mut setup, dir.path());
    let cgroups = KubeletCgroups::new("api", &[(SANDBOX, pause), (APP, setup.target)]);
    let policy = cgroups.policy(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, "node-token\n").unwrap();
    let port = faultline_tests::free_port();
    let _agent = Agent::start(
        dir.path(),
        &format!("tcp:127.0.0.1:{port}"),
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );

    // The API server knows the pod (on node-1, with its container's id) and the agent pod on
    // node-1 (at 127.0.0.1, its API port named `api`).
    let answer = move |line: &str| -> (&'static str, String) {
        let target = line.split_whitespace().nth(1).unwrap_or_default();
        if target.starts_with("/api/v1/namespaces/shop/pods/checkout-a") {
            let mut pod = crate::kube::pod("checkout-a", UID, true);
            pod["status"]["containerStatuses"] = serde_json::json!([{
                "name": "checkout", "ready": true, "restartCount": 0, "image": "checkout:1",
                "imageID": "", "containerID": format!("containerd://{APP}")
            }]);
            return ("200 OK", pod.to_string());
        }
        if target.starts_with("/api/v1/namespaces/faultline-system/pods?")
            && target.contains("fieldSelector=spec.nodeName%3Dnode-1")
            && target.contains("app.kubernetes.io%2Fcomponent%3Dagent")
        {
            let mut agent = crate::kube::pod("faultline-agent-x", "agent-uid", true);
            agent["spec"]["containers"] = serde_json::json!([{
                "name": "agent", "ports": [{"name": "api", "containerPort": port}]
            }]);
            agent["status"]["podIP"] = serde_json::json!("127.0.0.1");
            let list = serde_json::json!({"apiVersion": "v1", "kind": "PodList",
                "metadata": {"resourceVersion": "1"}, "items": [agent]});
            return ("200 OK", list.to_string());
        }
        (
            "404 Not Found",
            serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "code": 404, "message": format!("unexpected {target}")})
            .to_string(),
        )
    };
    let api = crate::kube::FakeApi::serve(std::sync::Arc::new(answer));
    let kubeconfig = api.kubeconfig_with(dir.path(), "fake");

    let out = tempfile::NamedTempFile::new().unwrap();
    let inject = |args: &[&str]| {
        faultline_tests::ChildGuard::spawn(
            crate::faultline()
                .env("KUBECONFIG", &kubeconfig)
                .args(["inject"])
                .args(args)
                .args([
                    "--pod",
                    "shop/checkout-a",
                    "--token-file",
                    token.to_str().unwrap(),
                ])
                .args(["--for", "30s"])
                .stdout(out.reopen().unwrap())
                .stderr(out.reopen().unwrap()),
        )
    };
    let mut partition = inject(&["partition", "--peer", NetLab::A_IP]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "no partition in the pod's namespace: {}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    let mut stress = inject(&["stress", "--container", "checkout", "--workers", "1"]);
    assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
        KubeletCgroups::pids(&cgroups.cpu(APP)).len() >= 2
    }));
    assert_eq!(KubeletCgroups::pids(&cgroups.cpu(SANDBOX)), [pause]);
    // Ctrl-C: each inject asks its agent to revert, and the pod is whole again.
    signal(partition.id(), libc::SIGINT);
    signal(stress.id(), libc::SIGINT);
    assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
        partition.has_exited() && stress.has_exited()
    }));
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert_eq!(KubeletCgroups::pids(&cgroups.cpu(APP)), [setup.target]);
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    let log = api.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|r| r.contains("/pods/checkout-a")),
        "{log:?}"
    );
    drop(cgroups);
}
