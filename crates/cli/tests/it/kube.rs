//! `faultline inject pod-kill` against a fake API server on loopback, through a kubeconfig with
//! a context of its own: the selection, the delete with its grace period, the wait for the
//! replacement, and the exit codes.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use faultline_tests::run;
use serde_json::{Value, json};

use crate::faultline;

pub(crate) fn pod(name: &str, uid: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": uid, "resourceVersion": "7",
            "labels": {"app": "checkout"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "checkout-rs", "uid": "rs", "controller": true}]
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "checkout"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

/// A fake API server: answers by request line; every request is logged with its headers.
pub(crate) struct FakeApi {
    port: u16,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

/// How a fake API server answers a request line: a status line (`200 OK`) and a JSON body.
pub(crate) type Answer = dyn Fn(&str) -> (&'static str, String) + Send + Sync;

/// Where a port-forward request line (`GET …/pods/NAME/portforward?ports=P`) is forwarded to.
pub(crate) type PortForward = dyn Fn(&str) -> Option<std::net::SocketAddr> + Send + Sync;

impl FakeApi {
    fn start(forbid_list: bool) -> Self {
        Self::serve(Arc::new(move |line: &str| answer(line, forbid_list)))
    }

    pub(crate) fn serve(answer: Arc<Answer>) -> Self {
        Self::serve_with_forwards(answer, Arc::new(|_: &str| None))
    }

    /// A fake API server that also forwards ports as the API server does: a WebSocket upgrade
    /// with the `v4.channel.k8s.io` protocol, each port's data on channel 0 and errors on
    /// channel 1, each channel's first frame the port number.
    pub(crate) fn serve_with_forwards(answer: Arc<Answer>, forward: Arc<PortForward>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                let answer = answer.clone();
                let forward = forward.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = String::new();
                        let mut length = 0usize;
                        let mut websocket_key = None;
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).unwrap();
                            if h.trim().is_empty() {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            if h.to_ascii_lowercase().starts_with("sec-websocket-key:") {
                                websocket_key = Some(h[18..].trim().to_owned());
                            }
                            headers.push_str(&h);
                        }
                        if let (Some(key), Some(to)) = (&websocket_key, forward(line.trim())) {
                            seen.lock()
                                .unwrap()
                                .push(format!("{} {headers}", line.trim()));
                            // The port asked for, which the first frame of each channel names.
                            let port = line
                                .split("ports=")
                                .nth(1)
                                .and_then(|p| {
                                    p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
                                })
                                .unwrap_or(to.port());
                            relay(stream, key, port, to);
                            return;
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        let request = format!(
                            "{} {headers}{}",
                            line.trim(),
                            String::from_utf8_lossy(&body)
                        );
                        seen.lock().unwrap().push(request);
                        let (status, text) = answer(line.trim());
                        let reply = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, log }
    }

    fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        self.kubeconfig_with(dir, "other")
    }

    pub(crate) fn kubeconfig_with(
        &self,
        dir: &std::path::Path,
        current: &str,
    ) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: {current}\n\
                 clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\n\
                 - name: other\n  cluster:\n    server: http://127.0.0.1:1\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: ci\n\
                 - name: other\n  context:\n    cluster: other\n    user: ci\n\
                 users:\n- name: ci\n  user:\n    token: s3cret\n",
                self.port
            ),
        )
        .unwrap();
        path
    }
}

/// Answers a port-forward's upgrade for `port`, then carries the stream between the WebSocket
/// (channel 0) and a TCP connection to `to`, until either side closes.
fn relay(mut stream: std::net::TcpStream, key: &str, port: u16, to: std::net::SocketAddr) {
    use tungstenite::Message;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    write!(
        stream,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(10)))
        .unwrap();
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    let [lo, hi] = port.to_le_bytes();
    ws.send(Message::binary(vec![0, lo, hi])).unwrap();
    ws.send(Message::binary(vec![1, lo, hi])).unwrap();
    let upstream = std::net::TcpStream::connect(to).unwrap();
    let mut to_upstream = upstream.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut upstream = upstream;
        let mut buf = [0u8; 16384];
        loop {
            match upstream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    loop {
        match ws.read() {
            Ok(Message::Binary(data)) if data.len() > 1 && data[0] == 0 => {
                if to_upstream.write_all(&data[1..]).is_err() {
                    break;
                }
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        let mut closed = false;
        while let Ok(chunk) = rx.try_recv() {
            match chunk {
                Some(data) => {
                    let mut frame = vec![0u8];
                    frame.extend(data);
                    if ws.send(Message::binary(frame)).is_err() {
                        return;
                    }
                }
                None => closed = true,
            }
        }
        if closed {
            // Close, then read until the client's close answers it: a socket dropped with
            // unread input is reset, and a reset can lose the data still on its way.
            let _ = ws.close(None);
            let _ = ws.flush();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while std::time::Instant::now() < until {
                match ws.read() {
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            break;
        }
    }
    // The stream is over: the pod's end of the connection is closed, as the kubelet closes it
    // (every clone of the socket, the reading thread's too).
    let _ = to_upstream.shutdown(std::net::Shutdown::Both);
}

fn answer(request_line: &str, forbid_list: bool) -> (&'static str, String) {
    let status = |code: u16, reason: &str, message: &str| {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
               "reason": reason, "message": message})
        .to_string()
    };
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    if target.starts_with("/api/v1/namespaces/shop/pods/checkout-a/log?") {
        if !target.contains("previous=true") {
            return (
                "400 Bad Request",
                status(400, "BadRequest", "not the previous log"),
            );
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let panic = std::fs::read_to_string(
            root.join("crates/dump/tests/fixtures/go/go1.19/default/panic.txt"),
        )
        .unwrap();
        // As a container log has it: the service's own lines, then the panic.
        return (
            "200 OK",
            format!("listening on :8080\nserving /checkout\n{panic}"),
        );
    }
    if request_line.starts_with("DELETE /api/v1/namespaces/shop/pods/checkout-a") {
        return ("200 OK", pod("checkout-a", "u-a", true).to_string());
    }
    if target.starts_with("/api/v1/namespaces/shop/pods/checkout-a") {
        return (
            "404 Not Found",
            status(404, "NotFound", "pods \"checkout-a\" not found"),
        );
    }
    if target.starts_with("/api/v1/namespaces/shop/pods?") && target.contains("watch=true") {
        let events = [
            json!({"type": "ADDED", "object": pod("checkout-z", "u-z", false)}),
            json!({"type": "MODIFIED", "object": pod("checkout-z", "u-z", true)}),
        ];
        return (
            "200 OK",
            events
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
                + "\n",
        );
    }
    if target.starts_with("/api/v1/namespaces/shop/pods?") {
        if forbid_list {
            return (
                "403 Forbidden",
                status(
                    403,
                    "Forbidden",
                    "pods is forbidden: User \"ci\" cannot list resource \"pods\"",
                ),
            );
        }
        return (
            "200 OK",
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"},
                   "items": [pod("checkout-a", "u-a", true)]})
            .to_string(),
        );
    }
    ("404 Not Found", status(404, "NotFound", "unexpected"))
}

#[test]
fn a_pod_kill_through_a_kubeconfig_context_deletes_and_sees_the_replacement_ready() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(false);
    let kubeconfig = api.kubeconfig(dir.path());
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "inject",
            "pod-kill",
            "-n",
            "shop",
            "-l",
            "app=checkout",
            "--seed",
            "7",
        ])
        .args(["--grace", "5s", "--timeout", "10s", "--context", "fake"]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("(mode one, seed 7)"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains(
            "pod-kill shop/checkout-a (node node-1): deleted with a 5s grace period; gone after"
        ) && ran.stdout.contains("replacement checkout-z Ready after"),
        "{}",
        ran.stdout
    );
    let log = api.log.lock().unwrap();
    let delete = log
        .iter()
        .find(|r| r.starts_with("DELETE"))
        .expect("a delete");
    assert!(delete.contains("\"gracePeriodSeconds\":5"), "{delete}");
    assert!(
        log.iter().all(|r| r
            .to_ascii_lowercase()
            .contains("authorization: bearer s3cret")),
        "the context's credentials on every request: {log:?}"
    );
}

#[test]
fn a_pod_kill_says_it_is_still_waiting_for_a_replacement_that_is_never_ready() {
    let dir = tempfile::tempdir().unwrap();
    // The replacement is created but never Ready.
    let api = FakeApi::serve(Arc::new(|line: &str| {
        let target = line.split_whitespace().nth(1).unwrap_or_default();
        if target.starts_with("/api/v1/namespaces/shop/pods?") && target.contains("watch=true") {
            let added = json!({"type": "ADDED", "object": pod("checkout-z", "u-z", false)});
            return ("200 OK", format!("{added}\n"));
        }
        answer(line, false)
    }));
    let kubeconfig = api.kubeconfig(dir.path());
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["inject", "pod-kill", "-n", "shop", "-l", "app=checkout"])
        .args(["--grace", "5s", "--timeout", "6s", "--context", "fake"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    assert!(
        ran.stderr.contains(
            "faultline: pod-kill shop/checkout-a: waiting for its replacement to be Ready (5s of 6s)"
        ),
        "{}",
        ran.context()
    );
}

#[test]
fn refusals_and_api_errors_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(true);
    let kubeconfig = api.kubeconfig(dir.path());
    let ran = run(faultline().env("KUBECONFIG", &kubeconfig).args([
        "inject",
        "pod-kill",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "--context",
        "fake",
    ]));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr.contains("kube-system is protected"),
        "{}",
        ran.stderr
    );
    // A fault on a pod there, and a screen of that namespace, are refused the same way.
    for args in [
        &[
            "inject",
            "pause",
            "--pod",
            "kube-system/coredns-x",
            "--for",
            "5s",
        ][..],
        &[
            "inject",
            "pause",
            "--pod",
            "faultline-system/faultline-agent-x",
            "--for",
            "5s",
        ][..],
    ] {
        let ran = run(faultline().env("KUBECONFIG", &kubeconfig).args(args));
        assert_eq!(ran.code(), Some(2), "{}", ran.context());
        assert!(ran.stderr.contains("is protected"), "{}", ran.stderr);
    }
    // An empty selector, and --pod given to pod-kill, are refused before anything is asked.
    for args in [
        &["inject", "pod-kill", "-n", "shop", "-l", " "][..],
        &[
            "inject", "pod-kill", "-n", "shop", "-l", "app=x", "--pod", "shop/x",
        ][..],
        &[
            "inject",
            "pod-kill",
            "-n",
            "shop",
            "-l",
            "app=x",
            "--mode",
            "percent:0",
        ][..],
        // A selector or a namespace the API server would refuse.
        &["inject", "pod-kill", "-n", "shop", "-l", "app in (a,b"][..],
        &["inject", "pod-kill", "-n", "Shop_NS", "-l", "app=x"][..],
        // A pod, and a process or a cgroup too: which would be hit?
        &[
            "inject", "stress", "--pod", "shop/x", "--pid", "1", "--for", "10s",
        ][..],
        &[
            "inject",
            "pause",
            "--pod",
            "shop/x",
            "--cgroup",
            "/sys/fs/cgroup",
            "--for",
            "10s",
        ][..],
    ] {
        let ran = run(faultline().env("KUBECONFIG", &kubeconfig).args(args));
        assert_eq!(ran.code(), Some(2), "{args:?}: {}", ran.context());
    }
    assert!(api.log.lock().unwrap().is_empty(), "nothing was asked");
    // A scenario of pods is not a local screen's.
    let gate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/kubernetes/gate.yaml");
    let ran = run(faultline().args(["tui", "--scenario"]).arg(&gate));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr.contains("this scenario's targets are pods"),
        "{}",
        ran.stderr
    );
    // The API server's refusal; a context the kubeconfig does not have (the ones it has are
    // named).
    for (context, says) in [
        (
            "fake",
            "list pods app=checkout in shop: the API server refused (403 Forbidden)",
        ),
        (
            "nosuch",
            "there is no context nosuch (contexts: fake, other)",
        ),
    ] {
        let ran = run(faultline().env("KUBECONFIG", &kubeconfig).args([
            "inject",
            "pod-kill",
            "-n",
            "shop",
            "-l",
            "app=checkout",
            "--context",
            context,
        ]));
        // A context the configuration lacks is a configuration problem (exit 4), as in run.
        let code = if context == "nosuch" { 4 } else { 1 };
        assert_eq!(ran.code(), Some(code), "{}", ran.context());
        assert!(ran.stderr.contains(says), "{}", ran.stderr);
    }
    let ran = run(faultline().args([
        "inject", "pod-kill", "-n", "shop", "-l", "a=b", "--mode", "some",
    ]));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("expected one, all, fixed:N (N at least 1) or percent:P"),
        "{}",
        ran.stderr
    );
}

#[test]
fn analyze_reads_a_crashed_containers_previous_log_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(false);
    let kubeconfig = api.kubeconfig_with(dir.path(), "fake");
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["analyze", "pod:shop/checkout-a/checkout"]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(
        ran.stdout
            .contains("panic: faultline-blocker: deliberate panic in main.crash")
            && ran
                .stdout
                .contains("main.crash  <- first frame of your code"),
        "{}",
        ran.stdout
    );
    let log = api.log.lock().unwrap();
    assert!(
        log.iter().any(|r| r.contains("/pods/checkout-a/log?")
            && r.contains("container=checkout")
            && r.contains("previous=true")),
        "{log:?}"
    );
    drop(log);
    let ran = run(faultline().args(["analyze", "pod:shop"]));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr.contains("expected pod:NAMESPACE/POD"),
        "{}",
        ran.stderr
    );
}

const POD_CHAOS: &str = "apiVersion: chaos-mesh.org/v1alpha1
kind: PodChaos
metadata:
  name: checkout-kill
  namespace: chaos-testing
spec:
  action: pod-kill
  mode: one
  gracePeriod: 5
  selector:
    namespaces: [shop]
    labelSelectors:
      app: checkout
";

#[test]
fn run_carries_out_a_chaos_mesh_pod_kill_and_names_what_it_cannot_translate() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start(false);
    let kubeconfig = api.kubeconfig_with(dir.path(), "fake");
    let file = dir.path().join("podchaos.yaml");
    std::fs::write(&file, POD_CHAOS).unwrap();

    let dry = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["run", "--dry-run", "--seed", "3"])
        .arg(&file));
    assert_eq!(dry.code(), Some(0), "{}", dry.context());
    assert!(
        dry.stderr.contains("PodChaos/checkout-kill (Chaos Mesh, translated): pod-kill of one of the pods of app=checkout in shop, with a 5s grace period, seed 3"),
        "{}",
        dry.stderr
    );
    assert!(
        dry.stdout
            .contains("pod-kill selected: delete with a 5s grace period"),
        "{}",
        dry.stdout
    );
    assert!(
        api.log.lock().unwrap().is_empty(),
        "a dry run touches nothing"
    );
    // A container kill is a SIGKILL to that container's processes, through the agent.
    let container_kill = dir.path().join("container-kill.yaml");
    std::fs::write(
        &container_kill,
        POD_CHAOS
            .replace(
                "action: pod-kill",
                "action: container-kill\n  containerNames: [checkout]",
            )
            .replace("  gracePeriod: 5\n", ""),
    )
    .unwrap();
    let dry = run(faultline()
        .args(["run", "--dry-run", "--seed", "3"])
        .arg(&container_kill));
    assert_eq!(dry.code(), Some(0), "{}", dry.context());
    assert!(
        dry.stderr.contains(
            "(Chaos Mesh, translated): container-kill of container checkout of one of the pods \
             of app=checkout in shop, seed 3"
        ),
        "{}",
        dry.stderr
    );
    assert!(dry.stdout.contains("kill selected"), "{}", dry.stdout);
    // A NetworkChaos loss is faultline's loss between the pods and the target's.
    let loss = dir.path().join("loss.yaml");
    std::fs::write(
        &loss,
        "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: { name: lossy, namespace: shop }\n\
         spec:\n  action: loss\n  mode: all\n  selector: { labelSelectors: { app: checkout } }\n\
         \x20 loss: { loss: '25' }\n  direction: both\n\
         \x20 target: { mode: all, selector: { labelSelectors: { app: inventory } } }\n  duration: 30s\n",
    )
    .unwrap();
    let dry = run(faultline()
        .args(["run", "--dry-run", "--seed", "3"])
        .arg(&loss));
    assert_eq!(dry.code(), Some(0), "{}", dry.context());
    assert!(
        dry.stderr.contains(
            "loss of 25% between all of the pods of app=checkout in shop and the pods of \
             app=inventory (both) for 30s"
        ),
        "{}",
        dry.stderr
    );
    assert!(dry.stdout.contains("loss 25% selected"), "{}", dry.stdout);

    let out = dir.path().join("out");
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["run", "--seed", "3", "--out"])
        .arg(&out)
        .arg(&file));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(
        ran.stdout.contains(
            "pass replaced selected within 2m: shop/checkout-a replaced by checkout-z, Ready after"
        ),
        "{}",
        ran.stdout
    );
    assert!(out.join("junit.xml").exists());
    assert!(
        api.log
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("DELETE") && r.contains("\"gracePeriodSeconds\":5")),
        "the manifest's grace period"
    );

    let delay = dir.path().join("networkchaos.yaml");
    std::fs::write(
        &delay,
        POD_CHAOS
            .replace("kind: PodChaos", "kind: NetworkChaos")
            .replace("action: pod-kill", "action: delay"),
    )
    .unwrap();
    let ran = run(faultline().args(["run"]).arg(&delay));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("NetworkChaos action \"delay\" is not translated"),
        "{}",
        ran.stderr
    );
}

/// The same failure, the same exit code: a Kubernetes target without any configuration is
/// exit 4 for `inject pod-kill`, `inject --pod` and `tui --kube`, as for `run` (below).
#[test]
fn a_kubernetes_target_without_a_configuration_is_exit_4_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let without = |command: &mut std::process::Command| {
        command
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", dir.path());
    };
    for args in [
        &["inject", "pod-kill", "-n", "shop", "-l", "app=api"][..],
        &["inject", "pause", "--pod", "shop/api-1", "--for", "1s"],
    ] {
        let mut command = faultline();
        without(&mut command);
        let ran = run(command.args(args));
        assert_eq!(ran.code(), Some(4), "{args:?}: {}", ran.context());
        assert!(
            ran.stderr.contains("read the Kubernetes configuration"),
            "{args:?}: {}",
            ran.context()
        );
    }
    // The screen needs a terminal: a pseudo-terminal of script(1), which exits as the
    // command did.
    let mut command = std::process::Command::new("script");
    without(&mut command);
    let ran = run(command
        .args(["-qec"])
        .arg(format!(
            "{} tui --kube -n shop",
            assert_cmd::cargo::cargo_bin("faultline").display()
        ))
        .arg("/dev/null"));
    assert_eq!(ran.code(), Some(4), "{}", ran.context());
    assert!(
        ran.stdout.contains("read the Kubernetes configuration"),
        "{}",
        ran.context()
    );
}

/// A scenario of pods with no Kubernetes configuration at all: exit 4, and the reports say why.
#[test]
fn a_run_without_a_cluster_reports_why() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::write(
        &scenario,
        "name: nowhere\npods:\n  api: { namespace: shop, selector: app=api }\nsteps:\n  - pod_kill: { target: api }\nassertions:\n  - replaced: { target: api, within: 1m }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let ran = run(faultline()
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .args(["run", scenario.to_str().unwrap(), "--out"])
        .arg(&out));
    assert_eq!(ran.code(), Some(4), "{}", ran.context());
    assert!(
        ran.stdout
            .contains("infrastructure: pods api: read the Kubernetes configuration"),
        "{}",
        ran.stdout
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("read the Kubernetes configuration"),
        "{junit}"
    );
    // The assertion could not be judged: skipped, not failed, on a CI dashboard.
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(
        junit.contains("<skipped message=\"not judged: the run was cut short"),
        "{junit}"
    );
    assert!(ran.stdout.contains("  skip replaced api"), "{}", ran.stdout);

    // Without --out, a run never shares a directory with a run started in the same second:
    // the directories of this second and the next few are taken already.
    let runs = dir.path().join("faultline-runs");
    let now = std::time::SystemTime::now();
    let taken: Vec<std::path::PathBuf> = (0..5)
        .map(|s| {
            let at = humantime::format_rfc3339_seconds(now + std::time::Duration::from_secs(s));
            runs.join(format!("nowhere-{}", at.to_string().replace(':', "")))
        })
        .collect();
    for dir in &taken {
        std::fs::create_dir_all(dir).unwrap();
    }
    let ran = run(faultline()
        .current_dir(dir.path())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", dir.path())
        .args(["run", scenario.to_str().unwrap()]));
    assert_eq!(ran.code(), Some(4), "{}", ran.context());
    for dir in &taken {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{}",
            dir.display()
        );
    }
    let used: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-2"))
        .collect();
    assert_eq!(used.len(), 1, "{}", ran.context());
    assert!(runs.join(&used[0]).join("junit.xml").exists());
}

/// `pod://NS/POD:PORT/PATH`: a pod's dump endpoint reached through the API server's
/// port-forward (a real WebSocket, relayed by the fake to a server on loopback) and analyzed,
/// or sampled by `leaks --scrape`, as a local URL would be.
#[test]
fn a_pods_dump_endpoint_is_read_through_a_port_forward() {
    let dir = tempfile::tempdir().unwrap();
    // The "pod": an HTTP server answering every request with a real goroutine dump.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dump = std::fs::read_to_string(
        root.join("crates/dump/tests/fixtures/go/go1.19/default/goroutine-debug2.txt"),
    )
    .unwrap();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let served = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in server.incoming().flatten() {
            let mut stream = stream;
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{dump}",
                dump.len()
            );
        }
    });
    let forward = move |line: &str| {
        (line.contains("/namespaces/shop/pods/inventory-a/portforward?")
            && line.contains("ports=6060"))
        .then_some(served)
    };
    let api = FakeApi::serve_with_forwards(
        Arc::new(|line: &str| answer(line, false)),
        Arc::new(forward),
    );
    let kubeconfig = api.kubeconfig_with(dir.path(), "fake");
    let url = "pod://shop/inventory-a:6060/debug/pprof/goroutine?debug=2";
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["analyze", url]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(
        ran.stdout.contains("35 go tasks in 13 groups"),
        "{}",
        ran.stdout
    );
    let ran = run(faultline()
        .env("KUBECONFIG", &kubeconfig)
        .args(["leaks", "--scrape", url, "--every", "200ms", "--for", "1s"]));
    assert!(
        ran.stderr.contains("forwarded to http://127.0.0.1:"),
        "{}",
        ran.context()
    );
    assert!(matches!(ran.code(), Some(0 | 4)), "{}", ran.context());
    assert!(
        api.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains("/pods/inventory-a/portforward?"))
            .count()
            >= 2,
        "one forwarded stream per request"
    );
    // A pod the API server will not forward to: said when the forward is set up, not met as
    // a closed connection.
    let ran = run(faultline().env("KUBECONFIG", &kubeconfig).args([
        "analyze",
        "pod://shop/ghost-a:6060/debug/pprof/goroutine?debug=2",
    ]));
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("port-forward shop/ghost-a:6060: open a stream to ghost-a: "),
        "{}",
        ran.stderr
    );
    let ran = run(faultline().args(["analyze", "pod://shop/inventory-a/debug"]));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("expected pod://NAMESPACE/NAME:PORT/PATH"),
        "{}",
        ran.stderr
    );
}

/// `inject pod-kill --help` lists the flags a pod kill reads, not the agent's.
#[test]
fn pod_kill_help_lists_only_what_a_pod_kill_reads() {
    let help = run(faultline().args(["inject", "pod-kill", "--help"])).assert_success();
    let options = help.stdout.split("Options:").nth(1).unwrap_or_default();
    let flags: Vec<&str> = options
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|f| f.trim_end_matches(','))
        .collect();
    assert_eq!(
        flags,
        [
            "--namespace",
            "--selector",
            "--field-selector",
            "--mode",
            "--seed",
            "--grace",
            "--force",
            "--timeout",
            "--context",
            "--include-not-ready",
            "--allow-protected-namespace",
            "--help"
        ],
        "{}",
        help.stdout
    );
    // The other faults still take them, after the fault's name.
    let pause = run(faultline().args(["inject", "pause", "--help"])).assert_success();
    for flag in ["--agent", "--token-file", "--lease", "--pod", "--agents"] {
        assert!(pause.stdout.contains(flag), "{flag}: {}", pause.stdout);
    }
    let refused = run(faultline().args([
        "inject", "pod-kill", "-n", "shop", "-l", "app=a", "--agent", "unix:/x",
    ]))
    .assert_code(2);
    assert!(
        refused.stderr.contains("--agent and --token-file"),
        "{}",
        refused.context()
    );
}
