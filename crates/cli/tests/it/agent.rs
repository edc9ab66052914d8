//! `faultline agent` and its clients (`inject --agent`, `faults`): the API's refusals, faults
//! held for a client and gone when the agent is SIGKILLed, leases that expire, graceful
//! shutdown, and the journal's sweep of what a dead agent left.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::{ChildGuard, NetLab, free_port, run, wait_until};

use crate::faultline;
use crate::faults::{ECHO, setup, signal, state};

/// A running agent and its log.
pub(crate) struct Agent {
    pub(crate) guard: ChildGuard,
    log: PathBuf,
    pub(crate) addr: String,
}

impl Agent {
    pub(crate) fn start(dir: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::start_with_env(dir, listen, extra, &[])
    }

    fn start_with_env(dir: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!("agent-{}.log", free_port()));
        let guard = ChildGuard::spawn(
            faultline()
                .args(["agent", "--listen", listen, "--state-dir"])
                .arg(dir.join("state"))
                .args(extra)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        let mut agent = Self {
            guard,
            log,
            addr: listen.to_owned(),
        };
        let ok = wait_until(Instant::now() + Duration::from_secs(20), || {
            agent.log_text().contains("listening on") || agent.guard.has_exited()
        });
        assert!(ok && !agent.guard.has_exited(), "{}", agent.log_text());
        agent
    }

    pub(crate) fn unix(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        Self::start(dir, &format!("unix:{}", socket.display()), &[])
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `faultline ARGS --agent ADDR` in the background.
    fn client(&self, args: &[&str]) -> (ChildGuard, tempfile::NamedTempFile) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let guard = ChildGuard::spawn(
            faultline()
                .args(args)
                .args(["--agent", &self.addr])
                .stdout(out.reopen().unwrap())
                .stderr(out.reopen().unwrap()),
        );
        (guard, out)
    }
}

/// A raw HTTP/1.1 request to 127.0.0.1:`port`: the status and body.
fn http(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[test]
fn the_api_refuses_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    // Plain TCP is refused at start, and on loopback only with --insecure-plaintext; then
    // a token is required.
    let port = free_port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let ran = run(faultline()
        .args(["agent", "--listen", &listen, "--state-dir"])
        .arg(dir.path().join("state")));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("would be plain TCP, readable by anyone on the network"),
        "{}",
        ran.stderr
    );
    let ran = run(faultline()
        .args([
            "agent",
            "--insecure-plaintext",
            "--listen",
            "tcp:0.0.0.0:1",
            "--state-dir",
        ])
        .arg(dir.path().join("state")));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("--insecure-plaintext is for a loopback address only; 0.0.0.0 is not one"),
        "{}",
        ran.stderr
    );
    let ran = run(faultline()
        .args([
            "agent",
            "--insecure-plaintext",
            "--listen",
            &listen,
            "--state-dir",
        ])
        .arg(dir.path().join("state")));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(ran.stderr.contains("bearer token"), "{}", ran.stderr);

    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let denied = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(
            r#"{{"max_seconds": 60, "max_faults": 1, "denied_pids": [1, {}]}}"#,
            denied.id()
        ),
    )
    .unwrap();
    let _agent = Agent::start(
        dir.path(),
        &listen,
        &[
            "--insecure-plaintext",
            "--token-file",
            token.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    let t = Some("s3cret-token");
    assert_eq!(http(port, "GET", "/v1/faults", None, b"").0, 401);
    assert_eq!(http(port, "GET", "/v1/faults", Some("wrong"), b"").0, 401);
    assert_eq!(http(port, "GET", "/healthz", None, b"").0, 200);
    let (status, metrics) = http(port, "GET", "/metrics", t, b"");
    assert_eq!(status, 200);
    assert!(metrics.contains("faultline_active_faults 0"), "{metrics}");

    let (status, body) = http(port, "POST", "/v1/faults", t, b"{not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("request body"), "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        br#"{"fault": {"pause": {"pid": 5}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("seconds"), "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        br#"{"fault": {"pause": {"pid": 5, "seconds": 1, "colour": "red"}}}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("colour"), "{body}");
    // Every error, the HTTP layer's own included, is the API's JSON error body.
    let json_error = |(status, body): (u16, String), expected: u16| {
        assert_eq!(status, expected, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{expected}: not JSON ({e}): {body:?}"));
        assert!(
            value["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    };
    let big = vec![b' '; 100 * 1024];
    json_error(http(port, "POST", "/v1/faults", t, &big), 413);
    json_error(http(port, "PUT", "/v1/faults", t, b""), 405);
    json_error(http(port, "GET", "/v1/nothing-here", t, b""), 404);
    json_error(http(port, "GET", "/v1/faults", None, b""), 401);
    json_error(http(port, "GET", "/v1/faults/nope", t, b""), 404);
    // A target is a pid or a cgroup: exactly one of them, and a cgroup by its absolute path.
    for (body, says) in [
        (r#"{"fault": {"pause": {"seconds": 1}}}"#, "give the target"),
        (
            r#"{"fault": {"pause": {"pid": 5, "cgroup": "/sys/fs/cgroup/x", "seconds": 1}}}"#,
            "not several",
        ),
        (
            r#"{"fault": {"pause": {"cgroup": "app", "seconds": 1}}}"#,
            "not an absolute path",
        ),
        (
            r#"{"fault": {"pause": {"cgroup": "/sys/fs/cgroup/no-such-group", "seconds": 1}}}"#,
            "no-such-group",
        ),
    ] {
        let (status, answer) = http(port, "POST", "/v1/faults", t, body.as_bytes());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }

    let pause = |pid: u32, seconds: u32| {
        format!(r#"{{"fault": {{"pause": {{"pid": {pid}, "seconds": {seconds}}}}}}}"#)
    };
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(sleeper.id(), 3600).as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("longer than the policy"), "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(denied.id(), 5).as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(4_194_304, 5).as_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no process"), "{body}");

    assert_eq!(http(port, "GET", "/v1/faults/nope", t, b"").0, 404);
    assert_eq!(http(port, "DELETE", "/v1/faults/nope", t, b"").0, 404);
    assert_eq!(http(port, "POST", "/v1/faults/nope/renew", t, b"").0, 404);

    // And one that is allowed: created, listed, reverted, verified.
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(sleeper.id(), 30).as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["state"], "active");
    assert_eq!(state(sleeper.id()), 'T');
    let id = view["id"].as_str().unwrap();
    // One at a time, says the policy.
    let other = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(other.id(), 5).as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("faults are active"), "{body}");
    let (status, body) = http(port, "DELETE", &format!("/v1/faults/{id}"), t, b"");
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["revert"], "verified");
    assert_ne!(state(sleeper.id()), 'T');
    let (_, metrics) = http(port, "GET", "/metrics", t, b"");
    assert!(metrics.contains("faultline_reverts_total 1"), "{metrics}");
    // Renewing a fault that is over is a conflict.
    let (status, _) = http(port, "POST", &format!("/v1/faults/{id}/renew"), t, b"");
    assert_eq!(status, 409);

    // The agent ends a fault at the end of its duration by itself.
    let (status, body) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(sleeper.id(), 1).as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = view["id"].as_str().unwrap().to_owned();
    assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
        let (_, body) = http(port, "GET", &format!("/v1/faults/{id}"), t, b"");
        body.contains(r#""reverted_by":"duration""#)
    }));
    assert_ne!(state(sleeper.id()), 'T');

    // DELETE /v1/faults reverts every active fault.
    let (status, _) = http(
        port,
        "POST",
        "/v1/faults",
        t,
        pause(other.id(), 30).as_bytes(),
    );
    assert_eq!(status, 201);
    let (status, body) = http(port, "DELETE", "/v1/faults", t, b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""revert":"verified""#), "{body}");
    assert_ne!(state(other.id()), 'T');
    sleeper.stop();
}

#[test]
fn a_second_agent_is_refused_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = Agent::unix(dir.path());
    let sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let (_pausing, _out) = first.client(&[
        "inject",
        "pause",
        "--pid",
        &sleeper.id().to_string(),
        "--for",
        "10m",
    ]);
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || state(sleeper.id()) == 'T'
    ));
    let socket = dir.path().join("agent.sock");
    // The same socket: refused before it touches anything.
    let ran = run(faultline()
        .args(["agent", "--listen", &first.addr, "--state-dir"])
        .arg(dir.path().join("other-state")));
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    assert!(
        ran.stderr.contains("another agent is listening"),
        "{}",
        ran.stderr
    );
    assert!(socket.exists(), "the first agent's socket was removed");
    // The same state directory on another socket: refused, and the journal left alone.
    let ran = run(faultline()
        .args(["agent", "--listen"])
        .arg(format!("unix:{}", dir.path().join("second.sock").display()))
        .arg("--state-dir")
        .arg(dir.path().join("state")));
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    assert!(
        ran.stderr.contains("another agent uses it"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        state(sleeper.id()),
        'T',
        "the first agent's pause was swept away"
    );
    let listed = run(faultline().args(["faults", "list", "--agent", &first.addr]));
    assert!(listed.stdout.contains("active"), "{}", listed.context());
}

#[test]
fn the_unix_socket_is_for_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let _agent = Agent::unix(dir.path());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("agent.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_partition_held_by_the_agent_goes_when_the_agent_is_sigkilled() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::unix(dir.path());
    let target = setup.target.to_string();
    let (_client, out) = agent.client(&[
        "inject",
        "partition",
        "--pid",
        &target,
        "--peer",
        NetLab::A_IP,
        "--for",
        "10m",
    ]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    // And a loss on other traffic, held by the same agent: a second table.
    let (_loss, out) = agent.client(&[
        "inject",
        "loss",
        "--percent",
        "50",
        "--pid",
        &target,
        "--peer",
        "192.0.2.0/24",
        "--for",
        "10m",
    ]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || setup
            .lab
            .faultline_tables(1)
            .len()
            == 2),
        "{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    let listed = run(faultline().args(["faults", "list", "--agent", &agent.addr]));
    assert!(listed.stdout.contains("partition"), "{}", listed.context());
    assert!(listed.stdout.contains("loss"), "{}", listed.stdout);
    assert!(listed.stdout.contains("active"), "{}", listed.stdout);
    // The agent lists the target, outside its own network namespace.
    let client = faultline_agent::Client::new(
        agent.addr.parse::<faultline_agent::AgentAddr>().unwrap(),
        None,
    );
    let (status, body) = client.request("GET", "/v1/targets", None).unwrap();
    assert_eq!(status, 200);
    let targets: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let listed = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["pid"] == setup.target)
        .unwrap_or_else(|| panic!("target {} not listed", setup.target));
    assert_eq!(listed["in_agent_netns"], false);
    assert_eq!(listed["comm"], "sleep");

    signal(agent.guard.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "the tables outlived the agent"
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
}

#[test]
fn a_lease_that_is_not_renewed_reverts_the_fault() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::unix(dir.path());
    let target = setup.target.to_string();
    let (client, out) = agent.client(&[
        "inject",
        "partition",
        "--pid",
        &target,
        "--peer",
        NetLab::A_IP,
        "--for",
        "10m",
        "--lease",
        "1s",
    ]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    // The client stops (a stopped CI job, a frozen laptop): no more renewals.
    signal(client.id(), libc::SIGSTOP);
    let stopped = Instant::now();
    assert!(
        wait_until(stopped + Duration::from_secs(5), || setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "the fault outlived its lease: {}",
        agent.log_text()
    );
    // The agent logs the revert once it has verified it.
    assert!(
        wait_until(Instant::now() + Duration::from_secs(5), || agent
            .log_text()
            .contains("lease expired")),
        "{}",
        agent.log_text()
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    signal(client.id(), libc::SIGCONT);
    drop(client);
}

#[test]
fn sigterm_reverts_everything_before_the_agent_exits() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::unix(dir.path());
    let target = setup.target.to_string();
    let (_client, _out) = agent.client(&[
        "inject",
        "partition",
        "--pid",
        &target,
        "--peer",
        NetLab::A_IP,
        "--for",
        "10m",
    ]);
    assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
        !setup.lab.faultline_tables(1).is_empty()
    }));
    signal(agent.guard.id(), libc::SIGTERM);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || agent
            .guard
            .has_exited()),
        "the agent did not stop"
    );
    let status = agent.guard.try_status();
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert!(
        agent.log_text().contains("reverted (shutdown): verified"),
        "{}",
        agent.log_text()
    );
    assert!(
        status.is_none() || status.is_some_and(|s| s.success()),
        "{status:?}"
    );
    assert!(!dir.path().join("agent.sock").exists());
}

#[test]
fn pause_and_stress_held_by_a_sigkilled_agent_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::unix(dir.path());
    let sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let (_pausing, _out) = agent.client(&[
        "inject",
        "pause",
        "--pid",
        &sleeper.id().to_string(),
        "--for",
        "10m",
    ]);
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || state(sleeper.id()) == 'T'
    ));
    let cgroup = faultline_tests::TestCgroup::with_quota(0.5);
    let mut busy = ChildGuard::spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    cgroup.add(busy.id());
    let (_stressing, out) = agent.client(&[
        "inject",
        "stress",
        "--pid",
        &busy.id().to_string(),
        "--workers",
        "2",
        "--for",
        "10m",
    ]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || cgroup
            .pids()
            .len()
            >= 3),
        "{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    signal(agent.guard.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || state(sleeper.id())
            != 'T'
            && cgroup.pids() == [busy.id()]),
        "left behind: state {}, cgroup {:?}",
        state(sleeper.id()),
        cgroup.pids()
    );
    agent.guard.stop();
    busy.stop();
}

#[test]
fn the_journal_of_a_dead_agent_is_swept_at_the_next_start() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    // What an agent on a kernel without owner tables leaves behind when it is SIGKILLed: a
    // plain table, and its journal line.
    run(setup
        .lab
        .command(1, "nft")
        .args(["add", "table", "inet", "faultline_leftover1"]))
    .assert_success();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", setup.target)).unwrap();
    let start: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/journal.jsonl"),
        format!(
            "{{\"op\":\"apply\",\"id\":\"leftover1\",\"kind\":\"partition\",\"pid\":{},\"pid_start\":{start},\"table\":\"faultline_leftover1\"}}\n",
            setup.target
        ),
    )
    .unwrap();
    assert_eq!(setup.lab.faultline_tables(1), ["faultline_leftover1"]);
    let agent = Agent::unix(dir.path());
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert!(
        agent
            .log_text()
            .contains("removed leftover table inet faultline_leftover1"),
        "{}",
        agent.log_text()
    );
}

#[test]
fn without_owner_tables_a_killed_agents_leftover_is_swept_at_the_next_start() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let socket = format!("unix:{}", dir.path().join("agent.sock").display());
    // As on a kernel before 5.12: plain tables, which outlive their holder.
    let mut agent = Agent::start_with_env(
        dir.path(),
        &socket,
        &[],
        &[("FAULTLINE_NO_OWNER_TABLES", "1")],
    );
    let target = setup.target.to_string();
    let (_client, out) = agent.client(&[
        "inject",
        "partition",
        "--pid",
        &target,
        "--peer",
        NetLab::A_IP,
        "--for",
        "10m",
    ]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || !setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "{}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    let listed = run(faultline().args(["faults", "list", "--agent", &agent.addr]));
    assert!(
        listed.stdout.contains("not kernel-anchored"),
        "{}",
        listed.context()
    );
    signal(agent.guard.id(), libc::SIGKILL);
    agent.guard.stop();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        setup.lab.faultline_tables(1).len(),
        1,
        "a plain table stays when its agent dies"
    );
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    // The next agent's journal sweep removes it before it listens.
    let next = Agent::unix(dir.path());
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert!(
        next.log_text()
            .contains("removed leftover table inet faultline_"),
        "{}",
        next.log_text()
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
}

#[test]
fn cgroups_are_targets_through_the_agent_too_and_their_faults_go_with_it() {
    let setup = setup();
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::unix(dir.path());

    // A partition of every process of a cgroup (all in one network namespace).
    let net_cgroup = faultline_tests::TestCgroup::with_quota(1.0);
    net_cgroup.add(setup.target);
    let net_dir = net_cgroup.dir().to_str().unwrap().to_owned();
    let (_partitioning, out) = agent.client(&[
        "inject",
        "partition",
        "--cgroup",
        &net_dir,
        "--peer",
        NetLab::A_IP,
        "--for",
        "10m",
    ]);
    let applied = wait_until(Instant::now() + Duration::from_secs(10), || {
        std::fs::read_to_string(out.path()).is_ok_and(|t| t.contains("applied by the agent"))
    });
    assert!(applied, "{}", std::fs::read_to_string(out.path()).unwrap());
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");

    // A freeze of a whole cgroup, and CPU stress in another.
    let frozen = faultline_tests::TestCgroup::freezer();
    let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    frozen.add(sleeper.id());
    let freezer_state = || std::fs::read_to_string(frozen.dir().join("freezer.state")).unwrap();
    let (_pausing, _) = agent.client(&[
        "inject",
        "pause",
        "--cgroup",
        frozen.dir().to_str().unwrap(),
        "--for",
        "10m",
    ]);
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || freezer_state().trim() == "FROZEN"
    ));
    let stressed = faultline_tests::TestCgroup::with_quota(0.5);
    let mut busy = ChildGuard::spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    stressed.add(busy.id());
    let (_stressing, _) = agent.client(&[
        "inject",
        "stress",
        "--cgroup",
        stressed.dir().to_str().unwrap(),
        "--workers",
        "2",
        "--for",
        "10m",
    ]);
    assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
        stressed.pids().len() >= 3
    }));
    let listed = run(faultline().args(["faults", "list", "--agent", &agent.addr]));
    assert!(listed.stdout.contains(&net_dir), "{}", listed.context());

    // The agent dies: every one of them goes within a second.
    signal(agent.guard.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || {
            setup.lab.faultline_tables(1).is_empty()
                && freezer_state().trim() == "THAWED"
                && stressed.pids() == [busy.id()]
        }),
        "left behind: tables {:?}, freezer {}, cgroup {:?}",
        setup.lab.faultline_tables(1),
        freezer_state().trim(),
        stressed.pids()
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    agent.guard.stop();

    // A kill of every process of a cgroup, one of them deaf to TERM.
    let agent = Agent::unix(dir.path());
    let victims = faultline_tests::TestCgroup::with_quota(1.0);
    let mut stubborn =
        ChildGuard::spawn(Command::new("sh").args(["-c", "trap '' TERM; exec sleep 600"]));
    std::thread::sleep(Duration::from_millis(100));
    victims.add(stubborn.id());
    victims.add(busy.id());
    let victims_dir = victims.dir().to_str().unwrap().to_owned();
    let ran = run(faultline().args([
        "inject",
        "kill",
        "--cgroup",
        &victims_dir,
        "--grace",
        "300ms",
        "--agent",
        &agent.addr,
    ]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("2 processes"), "{}", ran.stdout);
    assert!(ran.stdout.contains("1 outlived"), "{}", ran.stdout);
    assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
        stubborn.has_exited() && busy.has_exited()
    }));

    // The journal path: the agent and the freeze's thaw guard both SIGKILLed leave the cgroup
    // frozen; the next agent thaws it and says so.
    let (_pausing, _) = agent.client(&[
        "inject",
        "pause",
        "--cgroup",
        frozen.dir().to_str().unwrap(),
        "--for",
        "10m",
    ]);
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || freezer_state().trim() == "FROZEN"
    ));
    let listed = run(faultline().args(["faults", "list", "--agent", &agent.addr]));
    let guard: u32 = listed
        .stdout
        .split("thaw guard pid ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no thaw guard in {}", listed.stdout));
    signal(guard, libc::SIGKILL);
    let mut agent = agent;
    signal(agent.guard.id(), libc::SIGKILL);
    agent.guard.stop();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(freezer_state().trim(), "FROZEN", "nothing thawed it yet");
    let next = Agent::unix(dir.path());
    assert!(
        wait_until(Instant::now() + Duration::from_secs(5), || freezer_state()
            .trim()
            == "THAWED"),
        "{}",
        next.log_text()
    );
    assert!(next.log_text().contains("thawed"), "{}", next.log_text());
    sleeper.stop();
}

#[test]
fn a_create_sent_again_after_its_answer_was_lost_gets_the_same_fault() {
    use faultline_agent::spec::{CreateFault, FaultSpec};
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::unix(dir.path());
    let socket = dir.path().join("agent.sock");
    let sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let body = format!(
        r#"{{"fault": {{"pause": {{"pid": {}, "seconds": 30}}}}, "idempotency_key": "order-7"}}"#,
        sleeper.id()
    );
    // The first create: sent and applied, and its answer never read (the connection is
    // dropped, as by a client that timed out or lost its network).
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    write!(
        stream,
        "POST /v1/faults HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let client = faultline_agent::Client::new(agent.addr.parse().unwrap(), None);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || {
            client.list().is_ok_and(|l| !l.is_empty())
        }),
        "the first create was not applied"
    );
    drop(stream);
    assert_eq!(state(sleeper.id()), 'T', "the pause bites");
    // Sent again with its key: the same fault, not a second one.
    let request: CreateFault = serde_json::from_str(&body).unwrap();
    let again = client.create(&request).unwrap();
    let faults = client.list().unwrap();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(again.id, faults[0].id);
    assert_eq!(again.state, "active");
    // The same key for another request: refused, and nothing applied.
    let other = CreateFault {
        fault: FaultSpec::Pause {
            pid: Some(sleeper.id()),
            cgroup: None,
            pod: None,
            seconds: 5.0,
        },
        ..request.clone()
    };
    let refused = client.create(&other).unwrap_err().to_string();
    assert!(
        refused.contains("409") && refused.contains("was used for another fault request"),
        "{refused}"
    );
    assert_eq!(client.list().unwrap().len(), 1);
    let reverted = client.revert(&again.id).unwrap();
    assert_eq!(reverted.state, "reverted", "{reverted:?}");
    assert_eq!(state(sleeper.id()), 'S', "resumed");
    // Asked again after the revert: still that fault (reverted), never a new pause.
    let late = client.create(&request).unwrap();
    assert_eq!(
        (late.id.as_str(), late.state.as_str()),
        (again.id.as_str(), "reverted")
    );
    assert_eq!(state(sleeper.id()), 'S');
}

#[test]
fn tls_refuses_a_wrong_ca_an_expired_certificate_a_missing_client_certificate_and_plaintext() {
    use faultline_agent::spec::{CreateFault, FaultSpec};
    use faultline_agent::tls::{AGENT_NAME, ClientTls};
    use faultline_agent::{AgentAddr, Credentials};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (set, extra) in [("good", None), ("other", None), ("old", Some("--expired"))] {
        let mut command = faultline();
        command.args(["certs", "init"]).arg(d.join(set));
        command.args(extra);
        run(&mut command).assert_success();
    }
    let f = |set: &str, file: &str| d.join(set).join(file);
    let port = free_port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let agent = Agent::start(
        d,
        &listen,
        &[
            "--tls-cert",
            f("good", "agent.crt").to_str().unwrap(),
            "--tls-key",
            f("good", "agent.key").to_str().unwrap(),
            "--client-ca",
            f("good", "ca.crt").to_str().unwrap(),
        ],
    );
    assert!(
        agent
            .log_text()
            .contains("(TLS, client certificates required)")
    );
    let addr: AgentAddr = listen.parse().unwrap();
    let client = |ca: &Path, identity: Option<(PathBuf, PathBuf)>| {
        Credentials::new(
            None,
            Some(&ClientTls {
                ca: ca.to_owned(),
                identity,
                server_name: AGENT_NAME.into(),
            }),
        )
        .unwrap()
        .client(addr.clone())
    };
    let good = client(
        &f("good", "ca.crt"),
        Some((f("good", "client.crt"), f("good", "client.key"))),
    );
    let sleeper = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let pause = CreateFault {
        fault: FaultSpec::Pause {
            pid: Some(sleeper.id()),
            cgroup: None,
            pod: None,
            seconds: 30.0,
        },
        lease_seconds: None,
        idempotency_key: None,
    };
    // Mutual TLS: the fault is made, and reverted.
    let made = good.create(&pause).unwrap();
    assert_eq!(state(sleeper.id()), 'T');
    good.revert(&made.id).unwrap();
    assert_eq!(state(sleeper.id()), 'S');
    let before = good.list().unwrap().len();

    // Each refused on both sides, and nothing applied.
    let refused = |what: &str, client: faultline_agent::Client, says: &str, logged: &str| {
        let error = client.create(&pause).unwrap_err().to_string();
        assert!(error.contains(says), "{what}: {error}");
        assert!(
            wait_until(Instant::now() + Duration::from_secs(5), || agent
                .log_text()
                .contains(logged)),
            "{what}: the agent did not say {logged:?}:\n{}",
            agent.log_text()
        );
        assert_eq!(
            good.list().unwrap().len(),
            before,
            "{what}: a fault was made"
        );
        assert_eq!(state(sleeper.id()), 'S', "{what}");
    };
    refused(
        "a wrong CA",
        client(
            &f("other", "ca.crt"),
            Some((f("good", "client.crt"), f("good", "client.key"))),
        ),
        "the agent's certificate is not signed by --ca",
        "refused a TLS connection from 127.0.0.1",
    );
    refused(
        "a client certificate of another CA",
        client(
            &f("good", "ca.crt"),
            Some((f("other", "client.crt"), f("other", "client.key"))),
        ),
        "the agent does not accept this client certificate",
        "invalid peer certificate",
    );
    refused(
        "no client certificate",
        client(&f("good", "ca.crt"), None),
        "the agent demands a client certificate: give --cert and --key",
        "peer sent no certificates",
    );
    refused(
        "plaintext",
        faultline_agent::Client::new(addr.clone(), None),
        "this agent speaks TLS: give the client --ca",
        "refused a plaintext HTTP request from 127.0.0.1",
    );

    // An expired agent certificate: the client refuses the agent.
    let old_port = free_port();
    let old_listen = format!("tcp:127.0.0.1:{old_port}");
    let old = Agent::start(
        &d.join("old"),
        &old_listen,
        &[
            "--tls-cert",
            f("old", "agent.crt").to_str().unwrap(),
            "--tls-key",
            f("old", "agent.key").to_str().unwrap(),
            "--token-file",
            write_token(d).to_str().unwrap(),
        ],
    );
    let error = Credentials::new(
        Some("t0ken".into()),
        Some(&ClientTls {
            ca: f("old", "ca.crt"),
            identity: None,
            server_name: AGENT_NAME.into(),
        }),
    )
    .unwrap()
    .client(old_listen.parse().unwrap())
    .create(&pause)
    .unwrap_err()
    .to_string();
    assert!(error.contains("a certificate has expired"), "{error}");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(5), || old
            .log_text()
            .contains("refused a TLS connection")),
        "{}",
        old.log_text()
    );
    assert_eq!(state(sleeper.id()), 'S');

    // A TLS client of a plaintext agent; a token never sent in the clear off loopback.
    let plain_port = free_port();
    let plain_listen = format!("tcp:127.0.0.1:{plain_port}");
    let _plain = Agent::start(
        &d.join("other"),
        &plain_listen,
        &[
            "--insecure-plaintext",
            "--token-file",
            write_token(d).to_str().unwrap(),
        ],
    );
    let error = Credentials::new(
        Some("t0ken".into()),
        Some(&ClientTls {
            ca: f("good", "ca.crt"),
            identity: None,
            server_name: AGENT_NAME.into(),
        }),
    )
    .unwrap()
    .client(plain_listen.parse().unwrap())
    .list()
    .unwrap_err()
    .to_string();
    assert!(error.contains("is the agent speaking TLS?"), "{error}");
    let error =
        faultline_agent::Client::new("tcp:192.0.2.1:7070".parse().unwrap(), Some("t0ken".into()))
            .list()
            .unwrap_err()
            .to_string();
    assert!(
        error.contains("refusing to send the token in plain text to a non-loopback address"),
        "{error}"
    );
}

fn write_token(dir: &Path) -> PathBuf {
    let token = dir.join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    token
}

#[test]
fn a_rotated_certificate_is_used_without_a_restart() {
    use faultline_agent::tls::{AGENT_NAME, ClientTls};
    use faultline_agent::{AgentAddr, Credentials};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for set in ["first", "second"] {
        run(faultline().args(["certs", "init"]).arg(d.join(set))).assert_success();
    }
    let live = d.join("live");
    std::fs::create_dir(&live).unwrap();
    let install = |set: &str| {
        for file in ["agent.crt", "agent.key"] {
            // Written beside and renamed over, as a Secret's update is.
            let tmp = live.join(format!(".{file}"));
            std::fs::copy(d.join(set).join(file), &tmp).unwrap();
            std::fs::rename(&tmp, live.join(file)).unwrap();
        }
    };
    install("first");
    let port = free_port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let agent = Agent::start(
        d,
        &listen,
        &[
            "--tls-cert",
            live.join("agent.crt").to_str().unwrap(),
            "--tls-key",
            live.join("agent.key").to_str().unwrap(),
            "--token-file",
            write_token(d).to_str().unwrap(),
        ],
    );
    let addr: AgentAddr = listen.parse().unwrap();
    let trusting = |set: &str| {
        Credentials::new(
            Some("t0ken".into()),
            Some(&ClientTls {
                ca: d.join(set).join("ca.crt"),
                identity: None,
                server_name: AGENT_NAME.into(),
            }),
        )
        .unwrap()
        .client(addr.clone())
    };
    trusting("first").list().unwrap();
    assert!(trusting("second").list().is_err());
    install("second");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || trusting(
            "second"
        )
        .list()
        .is_ok()),
        "the new certificate was not taken up:\n{}",
        agent.log_text()
    );
    assert!(trusting("first").list().is_err());
    assert!(agent.log_text().contains("TLS certificates reloaded"));
}
