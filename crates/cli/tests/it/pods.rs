//! A pod on this node, found by the kubelet's cgroup layout and faulted through the agent: real
//! cgroups made with kubelet-style paths (cgroupfs driver, burstable QoS, v1 `cpu` and
//! `freezer` hierarchies, under a cgroup root of the test's own), a real `pause` process and an
//! app process in a network namespace. The partition lands in the sandbox's namespace, stress
//! and pause in the app container's cgroups; a SIGKILL of the agent takes them all away.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A node as the pod tests see it: checkout-a's kubelet-style cgroups (its sandbox a `pause`
/// in the lab's host b, its app the lab's target) and a real agent over TCP on `port`, with
/// the bearer token in `token` and a policy for those cgroups.
struct Node {
    /// The sandbox's `pause`.
    pause: u32,
    cgroups: KubeletCgroups,
    token: PathBuf,
    port: u16,
    agent: Agent,
}

impl Node {
    /// `tag` keeps the cgroups of tests that run at once apart.
    fn start(setup: &mut crate::faults::Setup, dir: &Path, tag: &str) -> Self {
        let pause = spawn_pause(setup, dir);
        let cgroups = KubeletCgroups::new(tag, &[(SANDBOX, pause), (APP, setup.target)]);
        let policy = cgroups.policy(dir);
        let token = dir.join("token");
        std::fs::write(&token, "node-token\n").unwrap();
        // Mutual TLS, as the DaemonSet runs it: every client below presents `certs/client.*`.
        faultline_tests::run_ok(
            crate::faultline()
                .args(["certs", "init"])
                .arg(dir.join("certs")),
        );
        let certs = |f: &str| dir.join("certs").join(f).to_str().unwrap().to_owned();
        let port = faultline_tests::free_port();
        let agent = Agent::start(
            dir,
            &format!("tcp:127.0.0.1:{port}"),
            &[
                "--tls-cert",
                &certs("agent.crt"),
                "--tls-key",
                &certs("agent.key"),
                "--client-ca",
                &certs("ca.crt"),
                "--policy",
                policy.to_str().unwrap(),
                "--token-file",
                token.to_str().unwrap(),
            ],
        );
        Self {
            pause,
            cgroups,
            token,
            port,
            agent,
        }
    }
}

/// The client's side of the nodes' mutual TLS (`certs init` in `dir`).
fn tls_args(dir: &Path) -> Vec<String> {
    let f = |name: &str| dir.join("certs").join(name).to_str().unwrap().to_owned();
    vec![
        "--ca".into(),
        f("ca.crt"),
        "--cert".into(),
        f("client.crt"),
        "--key".into(),
        f("client.key"),
    ]
}

/// Each pid with its `/proc/PID/stat` (name and state), for a failure message.
fn described(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            format!(
                "{pid} {}",
                stat.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits for a partition to land in the pod's sandbox namespace (the lab's host b), then
/// checks it bites: `context` says what was going on if it never lands.
fn partition_bites(setup: &crate::faults::Setup, context: impl Fn() -> String) {
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || !setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "no partition in the pod's namespace: {}",
        context()
    );
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
}

/// `path` opened for appending: several processes' output, none over another's.
fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().append(true).open(path).unwrap()
}

/// checkout-a as the API server has it: pod UID on node-1, its app container's id.
fn checkout_pod() -> serde_json::Value {
    let mut pod = crate::kube::pod("checkout-a", UID, true);
    pod["status"]["containerStatuses"] = serde_json::json!([{
        "name": "checkout", "ready": true, "restartCount": 0, "image": "checkout:1",
        "imageID": "", "containerID": format!("containerd://{APP}")
    }]);
    pod["status"]["podIP"] = serde_json::json!("10.244.1.5");
    pod
}

/// The agent DaemonSet's pod on node-1, at `ip` with its API on `port`, if `target` is the
/// request that looks for it.
fn agent_list(target: &str, ip: &str, port: u16) -> Option<String> {
    if !(target.starts_with("/api/v1/namespaces/faultline-system/pods?")
        && target.contains("fieldSelector=spec.nodeName%3Dnode-1")
        && target.contains("app.kubernetes.io%2Fcomponent%3Dagent"))
    {
        return None;
    }
    let mut agent = crate::kube::pod("faultline-agent-x", "agent-uid", true);
    agent["spec"]["containers"] = serde_json::json!([{
        "name": "agent", "ports": [{"name": "api", "containerPort": port}]
    }]);
    agent["status"]["podIP"] = serde_json::json!(ip);
    let list = serde_json::json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "1"}, "items": [agent]});
    Some(list.to_string())
}

/// The API server of `inject --pod shop/checkout-a`: it knows the pod (on node-1, with its
/// container's id) and the agent pod on node-1 (at 127.0.0.1, its API port `port` named `api`).
fn checkout_api(port: u16) -> impl Fn(&str) -> (&'static str, String) + Send + Sync {
    move |line: &str| {
        let target = line.split_whitespace().nth(1).unwrap_or_default();
        if target.starts_with("/api/v1/namespaces/shop/pods/checkout-a") {
            return ("200 OK", checkout_pod().to_string());
        }
        if let Some(list) = agent_list(target, "127.0.0.1", port) {
            return ("200 OK", list);
        }
        not_found(target)
    }
}

/// Whether a request line is a port-forward to node-1's agent pod.
fn agent_forward(line: &str) -> bool {
    line.contains("/namespaces/faultline-system/pods/faultline-agent-x/portforward?")
}

fn pod_list(items: &[serde_json::Value]) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": "7"}, "items": items})
    .to_string()
}

fn not_found(target: &str) -> (&'static str, String) {
    (
        "404 Not Found",
        serde_json::json!({"kind": "Status", "apiVersion": "v1",
        "status": "Failure", "code": 404, "message": format!("unexpected {target}")})
        .to_string(),
    )
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
            idempotency_key: None,
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
    let Node {
        pause,
        cgroups,
        token,
        port,
        agent: _agent,
    } = Node::start(&mut setup, dir.path(), "api");

    let forward = move |line: &str| -> Option<std::net::SocketAddr> {
        agent_forward(line).then(|| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let api =
        crate::kube::FakeApi::serve_with_forwards(Arc::new(checkout_api(port)), Arc::new(forward));
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
                .args(tls_args(token.parent().unwrap()))
                .args(["--for", "30s"])
                .stdout(append(out.path()))
                .stderr(append(out.path())),
        )
    };
    // The partition reaches the agent through a port-forward, the stress at its pod IP.
    let mut partition = inject(&[
        "partition",
        "--peer",
        NetLab::A_IP,
        "--agents",
        "port-forward",
    ]);
    partition_bites(&setup, || {
        std::fs::read_to_string(out.path()).unwrap_or_default()
    });
    let mut stress = inject(&[
        "stress",
        "--container",
        "checkout",
        "--workers",
        "1",
        "--agents",
        "pod-ip",
    ]);
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
    // A killed worker leaves cgroup.procs a moment after the revert is verified.
    assert!(
        wait_until(Instant::now() + Duration::from_secs(5), || {
            KubeletCgroups::pids(&cgroups.cpu(APP)) == [setup.target]
        }),
        "left in the container's cgroup: {}",
        described(&KubeletCgroups::pids(&cgroups.cpu(APP)))
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    let log = api.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|r| r.contains("/pods/checkout-a")),
        "{log:?}"
    );
    let printed = std::fs::read_to_string(out.path()).unwrap();
    assert!(
        printed.contains("(a port-forward through the API server)"),
        "{printed}"
    );
    assert!(
        log.iter()
            .any(|r| r.contains("/faultline-agent-x/portforward?")),
        "{log:?}"
    );
    drop(cgroups);
}

/// Ctrl-C while the agent is still applying the fault (the request in flight through a
/// port-forward): the fault lands, and `inject` reverts it before it exits. The signal must not
/// be taken by one of the Kubernetes client's threads, where it would end the process at once
/// and leave the partition to its lease.
#[test]
fn ctrl_c_while_the_agent_applies_through_a_port_forward_still_reverts() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let Node {
        cgroups,
        token,
        port,
        agent: _agent,
        ..
    } = Node::start(&mut setup, dir.path(), "ctrlc");
    // The second forward (the create; the first is the check that the agent can be reached
    // at all) waits until the test has sent its Ctrl-C.
    let (asked, forward_asked) = std::sync::mpsc::channel::<()>();
    let (go, forward_may_go) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(Some((asked, forward_may_go)));
    let forwards = AtomicUsize::new(0);
    let forward = move |line: &str| -> Option<std::net::SocketAddr> {
        if !agent_forward(line) {
            return None;
        }
        if forwards.fetch_add(1, Ordering::SeqCst) == 1
            && let Some((asked, may_go)) = held.lock().unwrap().take()
        {
            let _ = asked.send(());
            let _ = may_go.recv_timeout(Duration::from_secs(10));
        }
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let api =
        crate::kube::FakeApi::serve_with_forwards(Arc::new(checkout_api(port)), Arc::new(forward));
    let kubeconfig = api.kubeconfig_with(dir.path(), "fake");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut inject = faultline_tests::ChildGuard::spawn(
        crate::faultline()
            .env("KUBECONFIG", &kubeconfig)
            .args(["inject", "partition", "--peer", NetLab::A_IP])
            .args(["--pod", "shop/checkout-a", "--agents", "port-forward"])
            .args(["--token-file", token.to_str().unwrap(), "--for", "30s"])
            .args(tls_args(token.parent().unwrap()))
            .stdout(append(out.path()))
            .stderr(append(out.path())),
    );
    forward_asked
        .recv_timeout(Duration::from_secs(20))
        .expect("inject never asked for a port-forward to the agent");
    signal(inject.id(), libc::SIGINT);
    go.send(()).unwrap();
    assert!(wait_until(Instant::now() + Duration::from_secs(20), || {
        inject.has_exited()
    }));
    let status = inject.try_status();
    let printed = std::fs::read_to_string(out.path()).unwrap();
    assert!(
        printed.contains("partition applied by the agent") && printed.contains("(signal 2)"),
        "{status:?}: {printed}"
    );
    assert!(
        setup.lab.faultline_tables(1).is_empty(),
        "the partition outlived inject: {status:?}: {printed}"
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    drop(cgroups);
}

/// A cluster of one node as `faultline` sees it: a fake API server (through a kubeconfig whose
/// context `fake` points at it) that knows checkout-a (this test's kubelet-style pod: its
/// sandbox `pause` and the app process) and inventory-a (at the lab's host `a`; a second
/// inventory pod appears from the third listing of `app=inventory` on), forwards ports over a
/// real WebSocket to a real agent (token `token`) whose pod IP is unroutable, and watches
/// checkout-a replaced by checkout-z. Once checkout-a is deleted, checkout-z is listed in its
/// place and forwards to checkout-a fail.
struct FakeCluster {
    api: crate::kube::FakeApi,
    kubeconfig: PathBuf,
    token: PathBuf,
    cgroups: KubeletCgroups,
    /// Whether checkout-a was deleted; cleared, it is back.
    checkout_deleted: Arc<std::sync::atomic::AtomicBool>,
    /// Set, every listing of the inventory pods fails (500).
    inventory_broken: Arc<std::sync::atomic::AtomicBool>,
    /// The node's agent, and the plain HTTP server the probes reach.
    _agent: (Agent, Agent),
}

fn fake_cluster(setup: &mut crate::faults::Setup, dir: &Path, tag: &str) -> FakeCluster {
    let Node {
        cgroups,
        token,
        port,
        agent,
        ..
    } = Node::start(setup, dir, tag);
    let inventory_lists = AtomicUsize::new(0);
    // Once checkout-a is deleted, checkout-z is the checkout pod, and a forward to checkout-a
    // fails as the API server's would.
    let checkout_deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (deleted, gone) = (checkout_deleted.clone(), checkout_deleted.clone());
    let inventory_broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let broken = inventory_broken.clone();
    let inventory = |name: &str, ip: &str| {
        let mut pod = crate::kube::pod(name, &format!("u-{name}"), true);
        pod["metadata"]["labels"]["app"] = serde_json::json!("inventory");
        pod["status"]["podIP"] = serde_json::json!(ip);
        pod
    };
    let answer = move |line: &str| -> (&'static str, String) {
        let target = line.split_whitespace().nth(1).unwrap_or_default();
        let shop_pods = target.starts_with("/api/v1/namespaces/shop/pods?");
        if shop_pods && target.contains("watch=true") {
            let mut new = crate::kube::pod("checkout-z", "u-z", false);
            let events = [
                serde_json::json!({"type": "DELETED", "object": checkout_pod()}),
                serde_json::json!({"type": "ADDED", "object": new.clone()}),
                {
                    new["status"]["conditions"][0]["status"] = serde_json::json!("True");
                    serde_json::json!({"type": "MODIFIED", "object": new})
                },
            ];
            let lines: Vec<String> = events.iter().map(|e| e.to_string()).collect();
            return ("200 OK", lines.join("\n") + "\n");
        }
        if shop_pods && target.contains("labelSelector=app%3Dcheckout") {
            if deleted.load(Ordering::SeqCst) {
                return (
                    "200 OK",
                    pod_list(&[crate::kube::pod("checkout-z", "u-z", true)]),
                );
            }
            return ("200 OK", pod_list(&[checkout_pod()]));
        }
        if shop_pods && target.contains("labelSelector=app%3Dinventory") {
            if broken.load(Ordering::SeqCst) {
                return (
                    "500 Internal Server Error",
                    serde_json::json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "code": 500, "message": "etcd is down"})
                    .to_string(),
                );
            }
            // A second inventory pod comes up while a partition is in force.
            let seen = inventory_lists.fetch_add(1, Ordering::SeqCst);
            let mut pods = vec![inventory("inventory-a", NetLab::A_IP)];
            if seen >= 2 {
                pods.push(inventory("inventory-b", "10.99.0.7"));
            }
            return ("200 OK", pod_list(&pods));
        }
        if shop_pods {
            // Every pod of the namespace.
            return (
                "200 OK",
                pod_list(&[checkout_pod(), inventory("inventory-a", NetLab::A_IP)]),
            );
        }
        if target.starts_with("/api/v1/namespaces/shop/pods/checkout-a") {
            if line.starts_with("DELETE ") {
                deleted.store(true, Ordering::SeqCst);
            }
            return ("200 OK", checkout_pod().to_string());
        }
        if let Some(list) = agent_list(target, "192.0.2.1", port) {
            return ("200 OK", list);
        }
        not_found(target)
    };
    // Forwards to the agent end at its TLS port; the probes' "checkout:8080" at a plain HTTP
    // server with a /healthz: another agent, on loopback, in plain text.
    let web_dir = dir.join("web");
    std::fs::create_dir_all(&web_dir).unwrap();
    let web_port = faultline_tests::free_port();
    let web = Agent::start(
        &web_dir,
        &format!("tcp:127.0.0.1:{web_port}"),
        &[
            "--insecure-plaintext",
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    let forward = move |line: &str| -> Option<std::net::SocketAddr> {
        if line.contains("/pods/faultline-agent-x/portforward?") {
            return Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        }
        ((line.contains("/pods/checkout-a/portforward?") && !gone.load(Ordering::SeqCst))
            || line.contains("/pods/checkout-z/portforward?"))
        .then(|| std::net::SocketAddr::from(([127, 0, 0, 1], web_port)))
    };
    let api = crate::kube::FakeApi::serve_with_forwards(Arc::new(answer), Arc::new(forward));
    let kubeconfig = api.kubeconfig_with(dir, "other");
    FakeCluster {
        api,
        kubeconfig,
        token,
        cgroups,
        checkout_deleted,
        inventory_broken,
        _agent: (agent, web),
    }
}

/// `faultline run` on a scenario of pods, as a CI job outside the cluster runs it: the pods and
/// the agent on their node from a fake API server (through a kubeconfig context), the agent
/// reached through the API server's port-forward (a WebSocket the fake relays to a real agent;
/// the agent pod's IP is unroutable on purpose), the pod's cgroups and sandbox real. The
/// partition's peers are pods, and when a second inventory pod appears its address joins the
/// partition; stress lands in the container's cgroup; the pod kill waits for the replacement;
/// an HTTP probe reaches a checkout pod through a port-forward chosen by selector, and follows
/// the replacement. The gate passes and nothing is left behind.
#[test]
fn a_scenario_of_pods_runs_through_the_api_server_and_its_port_forwards() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let FakeCluster {
        api,
        kubeconfig,
        token,
        cgroups,
        checkout_deleted,
        _agent,
        ..
    } = fake_cluster(&mut setup, dir.path(), "run");
    let scenario = dir.path().join("gate.yaml");
    std::fs::write(
        &scenario,
        "\
name: kube-gate
kubernetes: { context: fake, agent_token_file: token, agents: port-forward, agent_ca: certs/ca.crt, agent_cert: certs/client.crt, agent_key: certs/client.key }
pods:
  checkout: { namespace: shop, selector: app=checkout, container: checkout }
  inventory: { namespace: shop, selector: app=inventory, mode: all }
probes:
  checkout:
    http: { url: \"http://checkout:8080/healthz\", status: 200, within: 1s }
    every: 250ms
# Only checkout's restarts are looked for: inventory's listings are the partition's alone.
captures: { crashes: [checkout] }
steps:
  - partition: { target: checkout, peers: [inventory], for: 6s }
  - stress: { target: checkout, workers: 1, load: 50, for: 3s }
  - pod_kill: { target: checkout, grace: 5s, timeout: 30s }
  - wait: 2s
assertions:
  - replaced: { target: checkout, within: 30s }
  - probe_success: { probe: checkout, min: 100% }
  - no_panics: [checkout]
",
    )
    .unwrap();
    let out = dir.path().join("out");
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut run = faultline_tests::ChildGuard::spawn(
        crate::faultline()
            .env("KUBECONFIG", &kubeconfig)
            .args(["run", scenario.to_str().unwrap(), "--seed", "7", "--out"])
            .arg(&out)
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap()),
    );
    let output = || std::fs::read_to_string(log.path()).unwrap_or_default();
    // The partition, in the pod's sandbox namespace, bites.
    partition_bites(&setup, output);
    // The stress workers join the container's cgroup.
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || {
            KubeletCgroups::pids(&cgroups.cpu(APP)).len() >= 2
        }),
        "no stress in the container's cgroup: {}",
        output()
    );
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || run
            .has_exited()),
        "the run did not end: {}",
        output()
    );
    let status = run.try_status().unwrap();
    assert_eq!(status.code(), Some(0), "{}", output());
    assert!(
        output().contains("faultline run kube-gate: PASSED"),
        "{}",
        output()
    );
    // What docs/kubernetes.md shows (`--nocapture`).
    println!("{}", output());

    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    let text = journal.to_string();
    assert!(
        text.contains("through the API server's port-forward"),
        "{text}"
    );
    assert!(text.contains("peers changed"), "{text}");
    assert!(text.contains("10.99.0.7"), "{text}");
    assert!(
        text.contains("shop/checkout-a replaced by checkout-z, Ready after"),
        "{text}"
    );
    // What the API server was asked: request lines, and the delete's body.
    let requests: Vec<String> = api
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|r| match r.split_once(" HTTP/1.1") {
            Some((line, rest)) if line.starts_with("DELETE") => {
                format!("{line} {}", rest.rsplit('\n').next().unwrap_or_default())
            }
            Some((line, _)) => line.to_owned(),
            None => r.clone(),
        })
        .collect();
    assert!(
        requests.iter().any(|r| r.starts_with(
            "GET /api/v1/namespaces/faultline-system/pods/faultline-agent-x/portforward?"
        )),
        "{requests:#?}"
    );
    assert!(
        requests.contains(
            &"DELETE /api/v1/namespaces/shop/pods/checkout-a? {\"gracePeriodSeconds\":5}"
                .to_owned()
        ),
        "{requests:#?}"
    );
    // The probe followed the checkout pods: its forward chose checkout-z once checkout-a's
    // failed, within the same connection (the probe never failed).
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/namespaces/shop/pods/checkout-z/portforward?")),
        "{requests:#?}"
    );
    assert!(setup.lab.faultline_tables(1).is_empty());

    // A team's Chaos Mesh partition, brought as it is, runs the same way (on a cluster where
    // checkout-a runs again).
    checkout_deleted.store(false, Ordering::SeqCst);
    let manifest = dir.path().join("networkchaos.yaml");
    std::fs::write(
        &manifest,
        "\
apiVersion: chaos-mesh.org/v1alpha1
kind: NetworkChaos
metadata: { name: cut-inventory, namespace: shop }
spec:
  action: partition
  mode: all
  selector: { labelSelectors: { app: checkout } }
  direction: both
  target:
    mode: all
    selector: { labelSelectors: { app: inventory } }
  duration: 4s
",
    )
    .unwrap();
    let token_arg = token.to_str().unwrap();
    let mut chaos = faultline_tests::ChildGuard::spawn(
        crate::faultline()
            .env("KUBECONFIG", &kubeconfig)
            .args(["run", manifest.to_str().unwrap(), "--context", "fake"])
            .args(tls_args(token.parent().unwrap()))
            .args(["--token-file", token_arg, "--out"])
            .arg(dir.path().join("chaos"))
            .stdout(append(log.path()))
            .stderr(append(log.path())),
    );
    partition_bites(&setup, output);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(30), || chaos
            .has_exited()),
        "{}",
        output()
    );
    assert_eq!(chaos.try_status().unwrap().code(), Some(0), "{}", output());
    assert!(
        output().contains("faultline run NetworkChaos/cut-inventory: PASSED"),
        "{}",
        output()
    );

    // Nothing left: no table, no worker, the probe answers.
    assert!(setup.lab.faultline_tables(1).is_empty());
    // A killed worker leaves cgroup.procs a moment after the revert is verified.
    assert!(
        wait_until(Instant::now() + Duration::from_secs(5), || {
            KubeletCgroups::pids(&cgroups.cpu(APP)) == [setup.target]
        }),
        "left in the container's cgroup: {}",
        described(&KubeletCgroups::pids(&cgroups.cpu(APP)))
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    drop(cgroups);
}

/// Peers the API server can no longer list, round after round, end the run as an
/// infrastructure error, the partition reverted: a partition left on old addresses never
/// passes quietly.
#[test]
fn peers_that_cannot_be_followed_end_the_run_as_an_infrastructure_error() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = fake_cluster(&mut setup, dir.path(), "peers");
    let scenario = dir.path().join("cut.yaml");
    std::fs::write(
        &scenario,
        "\
name: cut
kubernetes: { context: fake, agent_token_file: token, agents: port-forward, agent_ca: certs/ca.crt, agent_cert: certs/client.crt, agent_key: certs/client.key }
pods:
  checkout: { namespace: shop, selector: app=checkout, container: checkout }
  inventory: { namespace: shop, selector: app=inventory, mode: all }
captures: { crashes: [checkout] }
steps:
  - partition: { target: checkout, peers: [inventory], for: 12s }
",
    )
    .unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut run = faultline_tests::ChildGuard::spawn(
        crate::faultline()
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args(["run", scenario.to_str().unwrap(), "--out"])
            .arg(dir.path().join("out"))
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap()),
    );
    let output = || std::fs::read_to_string(log.path()).unwrap_or_default();
    partition_bites(&setup, output);
    cluster.inventory_broken.store(true, Ordering::SeqCst);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(60), || run
            .has_exited()),
        "the run did not end: {}",
        output()
    );
    assert_eq!(run.try_status().unwrap().code(), Some(4), "{}", output());
    assert!(
        output().contains("could not be followed 3 times in a row"),
        "{}",
        output()
    );
    assert!(setup.lab.faultline_tables(1).is_empty(), "{}", output());
    drop(cluster);
}

/// `faultline tui --kube` in a real terminal: the pods of a namespace listed as k9s does, a
/// partition of checkout-a from inventory-a (named by its pod name) injected from the form
/// through the agent on its node (reached through a port-forward), in force in the pod's
/// sandbox namespace, and reverted on the way out.
#[test]
fn tui_kube_lists_pods_and_partitions_one_through_its_nodes_agent() {
    let mut setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let cluster = fake_cluster(&mut setup, dir.path(), "tui");
    let tmux = crate::tmux::Tmux::new("tui-kube");
    let script = format!(
        "KUBECONFIG={} {} tui --kube --context fake -n shop --agents port-forward \
         --token-file {} {} --out {}; echo \"tui exited $?\"; sleep 600",
        cluster.kubeconfig.display(),
        env!("CARGO_BIN_EXE_faultline"),
        cluster.token.display(),
        tls_args(cluster.token.parent().unwrap()).join(" "),
        dir.path().join("out").display(),
    );
    faultline_tests::run_ok(tmux.command().args([
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "140",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]));
    let deadline = || Instant::now() + Duration::from_secs(20);
    assert!(
        wait_until(deadline(), || {
            let screen = tmux.screen();
            screen.contains("shop/checkout-a") && screen.contains("shop/inventory-a")
        }),
        "the pods are not listed:\n{}",
        tmux.screen()
    );
    tmux.type_text("/");
    tmux.type_line("checkout-a");
    tmux.type_text("n");
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .contains("partition shop/checkout-a (pod)")),
        "no partition form:\n{}",
        tmux.screen()
    );
    tmux.type_line("shop/inventory-a");
    partition_bites(&setup, || tmux.screen());
    // The Faults view names the pod; the pods view marks it.
    assert!(
        wait_until(deadline(), || {
            let screen = tmux.screen();
            screen.contains("partition pod shop/checkout-a") && screen.contains("active")
        }),
        "the fault is not shown:\n{}",
        tmux.screen()
    );
    tmux.type_text("1");
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .contains("shop/checkout-a [partition]")),
        "the pod is not marked:\n{}",
        tmux.screen()
    );
    // `q` asks; Enter reverts, then the screen closes.
    tmux.type_text("q");
    tmux.keys(&["Enter"]);
    assert!(
        wait_until(deadline(), || tmux
            .screen()
            .lines()
            .any(|l| l == "tui exited 0")),
        "did not exit:\n{}",
        tmux.screen()
    );
    assert!(
        tmux.screen().contains("reverted: verified"),
        "{}",
        tmux.screen()
    );
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    let requests = cluster.api.log.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/faultline-agent-x/portforward?")),
        "the agent through a port-forward"
    );
    drop(cluster);
}
