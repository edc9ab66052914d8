//! Fault-engine benchmark and soak, against the real kernel in a lab of two network namespaces
//! this program creates (and removes, also on failure):
//!
//! 1. inject and revert latency through the agent's API: 1,000 partitions, each created
//!    (`POST /v1/faults` returns once the table is in the kernel: the rule is active) and
//!    reverted (`DELETE` returns once the table is verified gone); p50 and p99 of each. Once
//!    as the agent runs (its netlink socket in the namespace is reused while faults follow each
//!    other within 2 s), once cold: 300 more, 50 ms apart, with `FAULTLINE_NFT_LINGER_MS=0`, so
//!    that every fault opens its own socket, as the first fault in a namespace does;
//!    Then the same two runs over TCP with mutual TLS (certificates from `faultline certs
//!    init`), each request its own connection and handshake, as the CLI makes them;
//! 2. the agent's idle footprint: resident memory and CPU over 10 s with nothing to do;
//! 3. stress accuracy: 2 workers at 25, 50 and 100% of a 0.5-core quota, in a cgroup made here,
//!    requested against achieved;
//! 4. soak: 200 cycles of start agent → apply a partition and a pause → SIGKILL the agent after
//!    a random delay → census of `faultline_*` tables and stopped targets: must be 0 every time.
//!
//! `just bench-faults` runs it (`cargo bench -p faultline-tests --bench faults -- --faultline
//! target/release/faultline`); it needs root. Under `cargo test` it only says how to run it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faultline_agent::spec::{CreateFault, FaultSpec};
use faultline_agent::{AgentAddr, Client};
use faultline_tests::{NetLab, wait_until};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(faultline) = args
        .iter()
        .position(|a| a == "--faultline")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
    else {
        println!("the faults benchmark runs under `just bench-faults`");
        return;
    };
    let faults: usize = flag(&args, "--faults").unwrap_or(1000);
    let cycles: usize = flag(&args, "--cycles").unwrap_or(200);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut lab = NetLab::new();
    let target = lab.spawn(lab.command(1, "sleep").arg("3600"));

    // 1. Latency, as the agent runs, then cold.
    let client = Client::new(AgentAddr::Unix(dir.path().join("agent.sock")), None);
    let mut cold_agent = start_agent(&faultline, dir.path(), Some("0"));
    // A pause between faults lets the previous holder finish exiting (in the background,
    // after its revert was confirmed), as it would between faults a person or a scenario
    // injects.
    latency(
        &client,
        &lab,
        target,
        300,
        Duration::from_millis(50),
        "cold: a new netlink socket each",
    );
    let _ = cold_agent.kill();
    let _ = cold_agent.wait();
    let mut agent = start_agent(&faultline, dir.path(), None);
    latency(
        &client,
        &lab,
        target,
        faults,
        Duration::ZERO,
        "one after another",
    );
    let _ = agent.kill();
    let _ = agent.wait();

    // Over TLS (mutual), cold then warm.
    let certs = dir.path().join("certs");
    let made = Command::new(&faultline)
        .args(["certs", "init"])
        .arg(&certs)
        .output()
        .expect("run faultline certs init");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls_client = faultline_agent::Credentials::new(
        None,
        Some(&faultline_agent::tls::ClientTls {
            ca: certs.join("ca.crt"),
            identity: Some((certs.join("client.crt"), certs.join("client.key"))),
            server_name: faultline_agent::tls::AGENT_NAME.into(),
        }),
    )
    .expect("the client's certificates")
    .client(AgentAddr::Tcp(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        TLS_PORT,
    ))));
    let mut cold_tls = start_tls_agent(&faultline, dir.path(), &certs, Some("0"));
    latency(
        &tls_client,
        &lab,
        target,
        300,
        Duration::from_millis(50),
        "over mutual TLS, cold: a new netlink socket each",
    );
    let _ = cold_tls.kill();
    let _ = cold_tls.wait();
    let mut tls_agent = start_tls_agent(&faultline, dir.path(), &certs, None);
    latency(
        &tls_client,
        &lab,
        target,
        faults,
        Duration::ZERO,
        "over mutual TLS, one after another",
    );
    let _ = tls_agent.kill();
    let _ = tls_agent.wait();
    let mut agent = start_agent(&faultline, dir.path(), None);

    // 2. Idle footprint.
    std::thread::sleep(Duration::from_secs(1));
    let pid = agent.id();
    let cpu_before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(10));
    let cpu = cpu_seconds(pid) - cpu_before;
    println!(
        "agent idle: RSS {:.1} MiB, CPU {:.2}% of a core over 10 s",
        rss_kib(pid) as f64 / 1024.0,
        cpu / 10.0 * 100.0
    );
    let _ = agent.kill();
    let _ = agent.wait();

    // 3. Stress accuracy: workers in an idle cgroup with a 0.5-core quota, at several loads.
    let cgroup = faultline_tests::TestCgroup::with_quota(0.5);
    let mut idle = Command::new("sleep")
        .arg("3600")
        .spawn()
        .expect("start an idle target");
    cgroup.add(idle.id());
    for load in [25u32, 50, 100] {
        let out = Command::new(&faultline)
            .args(["inject", "stress", "--workers", "2", "--for", "4s"])
            .args(["--load", &load.to_string(), "--pid", &idle.id().to_string()])
            .output()
            .expect("run faultline inject stress");
        let text = String::from_utf8_lossy(&out.stdout);
        let used: Option<(f64, f64)> = text.split("workers used ").nth(1).and_then(|rest| {
            let mut words = rest.split_whitespace();
            let used = words.next()?.parse().ok()?;
            let asked = words.nth(2)?.parse().ok()?;
            Some((used, asked))
        });
        let (used, asked) = used.unwrap_or_else(|| panic!("no usage in: {text}"));
        println!(
            "stress at {load}% of a 0.5-core quota: asked {asked:.3} cores, used {used:.3}: error {:+.1}% of the quota",
            (used - asked) / 0.5 * 100.0
        );
    }
    let _ = idle.kill();
    let _ = idle.wait();
    drop(cgroup);

    // 4. Soak.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut left_behind = 0;
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut agent = start_agent(&faultline, dir.path(), None);
        let client = Client::new(AgentAddr::Unix(dir.path().join("agent.sock")), None);
        client.create(&partition(target, 600.0)).expect("partition");
        client
            .create(&CreateFault {
                fault: FaultSpec::Pause {
                    pid: Some(target),
                    cgroup: None,
                    pod: None,
                    seconds: 600.0,
                },
                lease_seconds: None,
                idempotency_key: None,
            })
            .expect("pause");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 200));
        let _ = agent.kill(); // SIGKILL
        let _ = agent.wait();
        let clean = wait_until(Instant::now() + Duration::from_secs(2), || {
            lab.faultline_tables(1).is_empty() && state(target) != 'T'
        });
        if !clean {
            left_behind += 1;
            eprintln!(
                "cycle {cycle}: left behind: tables {:?}, target state {}",
                lab.faultline_tables(1),
                state(target)
            );
        }
    }
    println!(
        "soak: {cycles} cycles of apply → random SIGKILL of the agent → census in {:.0} s: {left_behind} left behind",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(left_behind, 0);
}

/// Creates and reverts `faults` partitions one after another, `gap` apart; prints p50 and p99
/// of each.
fn latency(client: &Client, lab: &NetLab, target: u32, faults: usize, gap: Duration, what: &str) {
    let mut inject = Vec::with_capacity(faults);
    let mut revert = Vec::with_capacity(faults);
    for _ in 0..faults {
        std::thread::sleep(gap);
        let started = Instant::now();
        let view = client
            .create(&partition(target, 60.0))
            .expect("the agent applies the partition");
        inject.push(started.elapsed());
        let started = Instant::now();
        let done = client.revert(&view.id).expect("the agent reverts it");
        revert.push(started.elapsed());
        assert_eq!(done.revert.as_deref(), Some("verified"));
    }
    assert!(lab.faultline_tables(1).is_empty());
    println!(
        "{faults} partitions through the agent ({what}): inject p50 {:.1} ms, p99 {:.1} ms; revert p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&mut inject, 0.50)),
        ms(percentile(&mut inject, 0.99)),
        ms(percentile(&mut revert, 0.50)),
        ms(percentile(&mut revert, 0.99)),
    );
}

fn flag(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn partition(pid: u32, seconds: f64) -> CreateFault {
    CreateFault {
        fault: FaultSpec::Partition {
            pid: Some(pid),
            cgroup: None,
            pod: None,
            peers: vec![NetLab::A_IP.into()],
            ports: Vec::new(),
            protocol: None,
            direction: "both".into(),
            reject: false,
            allow_host_netns: false,
            seconds,
        },
        lease_seconds: None,
        idempotency_key: None,
    }
}

/// Starts an agent on `dir/agent.sock`; `linger_ms` sets `FAULTLINE_NFT_LINGER_MS`.
fn start_agent(faultline: &PathBuf, dir: &std::path::Path, linger_ms: Option<&str>) -> Child {
    let socket = dir.join("agent.sock");
    let _ = std::fs::remove_file(&socket);
    let mut command = Command::new(faultline);
    if let Some(ms) = linger_ms {
        command.env("FAULTLINE_NFT_LINGER_MS", ms);
    }
    let child = command
        .args(["agent", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        }),
        "the agent did not start"
    );
    child
}

/// The port of the TLS agent (on 127.0.0.1).
const TLS_PORT: u16 = 47070;

/// Starts an agent on tcp:127.0.0.1:[`TLS_PORT`] with mutual TLS from `certs`.
fn start_tls_agent(
    faultline: &PathBuf,
    dir: &std::path::Path,
    certs: &std::path::Path,
    linger_ms: Option<&str>,
) -> Child {
    let mut command = Command::new(faultline);
    if let Some(ms) = linger_ms {
        command.env("FAULTLINE_NFT_LINGER_MS", ms);
    }
    let child = command
        .args(["agent", "--listen", &format!("tcp:127.0.0.1:{TLS_PORT}")])
        .arg("--tls-cert")
        .arg(certs.join("agent.crt"))
        .arg("--tls-key")
        .arg(certs.join("agent.key"))
        .arg("--client-ca")
        .arg(certs.join("ca.crt"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the agent");
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", TLS_PORT)).is_ok()
        }),
        "the TLS agent did not start"
    );
    child
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cpu_seconds(pid: u32) -> f64 {
    faultline_tests::cpu_seconds(pid)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s[s.rfind(')')? + 1..].trim_start().chars().next()?;
            Some(after)
        })
        .unwrap_or('?')
}
