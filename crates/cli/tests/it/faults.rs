//! `faultline inject` in the foreground against the real kernel: two network namespaces joined
//! by veth (a [`NetLab`]), a TCP echo server and UDP counter in `a`, the target process in `b`.
//! Every fault must bite (probes fail, counters count), go away on time or on Ctrl-C with its
//! revert verified, and go away within a second when the faultline process is SIGKILLed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::{ChildGuard, NetLab, run, wait_until, workspace_root};

use crate::faultline;

pub(crate) const ECHO: u16 = 7007;
const OTHER: u16 = 7008;
const UDP: u16 = 7009;
const COUNT: u16 = 7010;

/// A lab with the echo server in `a` and a target process (`sleep`) in `b`.
pub(crate) struct Setup {
    pub(crate) lab: NetLab,
    pub(crate) target: u32,
}

pub(crate) fn setup() -> Setup {
    let mut lab = NetLab::new();
    let script = workspace_root().join("tests/targets/net/echo.py");
    let out = tempfile::NamedTempFile::new().unwrap();
    lab.spawn(
        lab.command(0, "python3")
            .arg(&script)
            .args([ECHO.to_string(), OTHER.to_string()])
            .args([
                "--udp",
                &UDP.to_string(),
                "--count-port",
                &COUNT.to_string(),
            ])
            .stdout(out.reopen().unwrap())
            .stderr(Stdio::null()),
    );
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || {
            std::fs::read_to_string(out.path()).is_ok_and(|t| t.contains("ready"))
        }),
        "the echo server did not start"
    );
    let target = lab.spawn(lab.command(1, "sleep").arg("600"));
    let setup = Setup { lab, target };
    assert_eq!(
        setup.probe(ECHO, 2.0).0,
        "ok",
        "the lab works before any fault"
    );
    setup
}

impl Setup {
    /// A TCP connect + echo from `b` to `a`: `ok`, `timeout`, `refused`, and the seconds taken.
    pub(crate) fn probe(&self, port: u16, timeout: f64) -> (String, f64) {
        let script = workspace_root().join("tests/targets/net/probe.py");
        let ran = run(self.lab.command(1, "python3").arg(script).args([
            "tcp",
            NetLab::A_IP,
            &port.to_string(),
            &timeout.to_string(),
        ]));
        let mut words = ran.stdout.split_whitespace();
        let result = words.next().unwrap_or("none").to_owned();
        let seconds = words
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        (result, seconds)
    }

    /// Sends `n` UDP datagrams from `b` and returns how many `a` counted.
    fn udp_delivered(&self, n: u32) -> u32 {
        let script = workspace_root().join("tests/targets/net/probe.py");
        let before = self.udp_count();
        run(self.lab.command(1, "python3").arg(&script).args([
            "udp",
            NetLab::A_IP,
            &UDP.to_string(),
            &n.to_string(),
        ]))
        .assert_success();
        std::thread::sleep(Duration::from_millis(300));
        self.udp_count() - before
    }

    fn udp_count(&self) -> u32 {
        let script = workspace_root().join("tests/targets/net/probe.py");
        let ran = run(self.lab.command(1, "python3").arg(&script).args([
            "count",
            NetLab::A_IP,
            &COUNT.to_string(),
        ]))
        .assert_success();
        ran.stdout.trim().parse().unwrap()
    }

    /// `faultline inject ARGS --pid TARGET`, in the background.
    fn inject(&self, args: &[&str]) -> (ChildGuard, tempfile::NamedTempFile) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let guard = ChildGuard::spawn(
            faultline()
                .arg("inject")
                .args(args)
                .args(["--pid", &self.target.to_string()])
                .stdout(out.reopen().unwrap())
                .stderr(out.reopen().unwrap()),
        );
        (guard, out)
    }

    /// Waits until a faultline table is in `b` (the fault is in force).
    fn wait_for_table(&self, injecting: &mut ChildGuard, out: &tempfile::NamedTempFile) {
        let ok = wait_until(Instant::now() + Duration::from_secs(10), || {
            !self.lab.faultline_tables(1).is_empty() || injecting.has_exited()
        });
        assert!(
            ok && !injecting.has_exited(),
            "no fault in force: {}",
            std::fs::read_to_string(out.path()).unwrap_or_default()
        );
    }
}

pub(crate) fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// Waits for `guard` to exit, returns its output.
fn finish(guard: &mut ChildGuard, out: &tempfile::NamedTempFile) -> (Option<i32>, String) {
    assert!(
        wait_until(Instant::now() + Duration::from_secs(20), || guard
            .has_exited()),
        "faultline inject did not exit"
    );
    let status = guard.try_status();
    let text = std::fs::read_to_string(out.path()).unwrap_or_default();
    (status.and_then(|s| s.code()), text)
}

#[test]
fn a_partition_bites_counts_and_is_reverted_on_ctrl_c() {
    let setup = setup();
    let (mut injecting, out) = setup.inject(&["partition", "--peer", NetLab::A_IP, "--for", "60s"]);
    setup.wait_for_table(&mut injecting, &out);
    let (result, _) = setup.probe(ECHO, 1.0);
    assert_eq!(result, "timeout", "dropped, not refused");
    let pid = injecting.id();
    // Ctrl-C: the fault is reverted now, not in 60 s, and the revert checked.
    signal(pid, libc::SIGINT);
    let (code, text) = finish(&mut injecting, &out);
    // Made over netlink by faultline itself: the table's holder is its own process, no nft.
    assert!(
        text.contains(&format!("(table held by pid {pid})")),
        "{text}"
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("revert verified"), "{text}");
    let packets: u64 = text
        .split("; ")
        .find_map(|part| part.strip_suffix(" packets matched"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(packets > 0, "the counters prove it bit: {text}");
    assert!(setup.lab.faultline_tables(1).is_empty());
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
}

#[test]
fn a_partition_ends_by_itself_after_its_duration() {
    let setup = setup();
    let (mut injecting, out) = setup.inject(&["partition", "--peer", NetLab::A_IP, "--for", "2s"]);
    setup.wait_for_table(&mut injecting, &out);
    let (code, text) = finish(&mut injecting, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("revert verified"), "{text}");
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
}

#[test]
fn sigkill_of_the_injecting_process_takes_the_partition_with_it() {
    let setup = setup();
    let (mut injecting, out) = setup.inject(&["partition", "--peer", NetLab::A_IP, "--for", "10m"]);
    setup.wait_for_table(&mut injecting, &out);
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    signal(injecting.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || setup
            .lab
            .faultline_tables(1)
            .is_empty()),
        "the table outlived its holder by a second: {:?}",
        setup.lab.faultline_tables(1)
    );
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    drop(injecting);
    let _ = out;
}

#[test]
fn reject_refuses_at_once() {
    let setup = setup();
    let (mut injecting, out) = setup.inject(&[
        "partition",
        "--peer",
        NetLab::A_IP,
        "--reject",
        "--for",
        "60s",
    ]);
    setup.wait_for_table(&mut injecting, &out);
    let (result, seconds) = setup.probe(ECHO, 5.0);
    assert_eq!(result, "refused");
    assert!(seconds < 1.0, "refused after {seconds} s");
    signal(injecting.id(), libc::SIGTERM);
    let (code, text) = finish(&mut injecting, &out);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
}

#[test]
fn direction_and_port_select_the_traffic() {
    let setup = setup();
    let port = ECHO.to_string();
    let (mut injecting, out) = setup.inject(&[
        "partition",
        "--peer",
        "10.231.0.0/24",
        "--direction",
        "to",
        "--port",
        &port,
        "--protocol",
        "tcp",
        "--for",
        "60s",
    ]);
    setup.wait_for_table(&mut injecting, &out);
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout", "the selected port");
    assert_eq!(
        setup.probe(OTHER, 2.0).0,
        "ok",
        "another port of the same peer"
    );
    signal(injecting.id(), libc::SIGINT);
    finish(&mut injecting, &out);

    // `from` the peer: the target's SYN leaves, the answer never arrives.
    let (mut injecting, out) = setup.inject(&[
        "partition",
        "--peer",
        NetLab::A_IP,
        "--direction",
        "from",
        "--port",
        &OTHER.to_string(),
        "--for",
        "60s",
    ]);
    setup.wait_for_table(&mut injecting, &out);
    assert_eq!(setup.probe(OTHER, 1.0).0, "timeout");
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");
    signal(injecting.id(), libc::SIGINT);
    finish(&mut injecting, &out);
}

#[test]
fn loss_drops_about_the_percentage_asked() {
    let setup = setup();
    assert!(
        setup.udp_delivered(200) >= 190,
        "the lab loses nothing by itself"
    );
    let (mut injecting, out) = setup.inject(&[
        "loss",
        "--percent",
        "50",
        "--peer",
        NetLab::A_IP,
        "--protocol",
        "udp",
        "--port",
        &UDP.to_string(),
        "--for",
        "60s",
    ]);
    setup.wait_for_table(&mut injecting, &out);
    let delivered = setup.udp_delivered(1000);
    // Binomial(1000, 0.5): 350..650 is more than nine standard deviations wide.
    assert!(
        (350..=650).contains(&delivered),
        "{delivered} of 1000 delivered"
    );
    signal(injecting.id(), libc::SIGINT);
    let (code, text) = finish(&mut injecting, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(setup.udp_delivered(200) >= 190);
}

pub(crate) fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.trim_start().chars().next().unwrap()
}

#[test]
fn pause_stops_then_continues_and_survives_a_sigkilled_faultline() {
    let setup = setup();
    let (mut injecting, out) = setup.inject(&["pause", "--for", "60s"]);
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || state(
            setup.target
        ) == 'T'),
        "not stopped: {}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    signal(injecting.id(), libc::SIGINT);
    let (code, text) = finish(&mut injecting, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("revert verified"), "{text}");
    assert_ne!(state(setup.target), 'T');

    // SIGKILL the faultline that paused it: its guard resumes the target.
    let (injecting, out) = setup.inject(&["pause", "--for", "10m"]);
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || state(setup.target) == 'T'
    ));
    signal(injecting.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || state(setup.target)
            != 'T'),
        "still stopped a second after faultline died: {}",
        std::fs::read_to_string(out.path()).unwrap_or_default()
    );
    drop(injecting);
}

#[test]
fn kill_terms_then_kills() {
    let mut lab = NetLab::new();
    let stubborn = lab.spawn(
        lab.command(1, "sh")
            .args(["-c", "trap '' TERM; exec sleep 600"]),
    );
    std::thread::sleep(Duration::from_millis(200));
    let ran = run(faultline().args([
        "inject",
        "kill",
        "--pid",
        &stubborn.to_string(),
        "--grace",
        "300ms",
    ]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("SIGKILL followed"), "{}", ran.stdout);
    let polite = lab.spawn(lab.command(1, "sleep").arg("600"));
    let ran = run(faultline().args(["inject", "kill", "--pid", &polite.to_string()]));
    assert!(ran.stdout.contains("exited"), "{}", ran.context());
}

#[test]
fn bad_faults_are_refused_before_anything_is_applied() {
    let setup = setup();
    let pid = setup.target.to_string();
    let cases: [(&[&str], &str); 5] = [
        (
            &["partition", "--peer", "10.231.0.1/8", "--for", "1m"],
            "host bits set",
        ),
        (
            &["partition", "--peer", "0.0.0.0/0", "--for", "1m"],
            "matches all traffic",
        ),
        (
            &[
                "loss",
                "--percent",
                "0",
                "--peer",
                NetLab::A_IP,
                "--for",
                "1m",
            ],
            "--percent 0",
        ),
        (
            &[
                "partition",
                "--peer",
                NetLab::A_IP,
                "--protocol",
                "icmp",
                "--port",
                "80",
                "--for",
                "1m",
            ],
            "ICMP has no ports",
        ),
        (
            &[
                "partition",
                "--peer",
                NetLab::A_IP,
                "--direction",
                "up",
                "--for",
                "1m",
            ],
            "direction",
        ),
    ];
    for (args, expected) in cases {
        let ran = run(faultline().arg("inject").args(args).args(["--pid", &pid]));
        assert_eq!(ran.code(), Some(2), "{args:?}: {}", ran.context());
        assert!(ran.stderr.contains(expected), "{args:?}: {}", ran.stderr);
    }
    // No peers at all is a usage error too.
    let ran = run(faultline().args(["inject", "partition", "--for", "1m", "--pid", &pid]));
    assert_eq!(ran.code(), Some(2));
    // The host's own namespace: refused unless asked for by name.
    let host = ChildGuard::spawn(Command::new("sleep").arg("60"));
    let ran = run(faultline().args([
        "inject",
        "partition",
        "--peer",
        "192.0.2.1",
        "--for",
        "1m",
        "--pid",
        &host.id().to_string(),
    ]));
    assert_eq!(ran.code(), Some(2), "{}", ran.context());
    assert!(ran.stderr.contains("--allow-host-netns"), "{}", ran.stderr);
    assert!(setup.lab.faultline_tables(1).is_empty());
    let gone = run(faultline().args(["inject", "kill", "--pid", "4194304"]));
    assert_eq!(gone.code(), Some(2), "{}", gone.context());
}

/// The share of a core `pid` gets over `window`.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = faultline_tests::cpu_seconds(pid);
    std::thread::sleep(window);
    (faultline_tests::cpu_seconds(pid) - before) / window.as_secs_f64()
}

#[test]
fn stress_squeezes_a_target_within_its_cpu_quota_and_leaves_nothing() {
    let cgroup = faultline_tests::TestCgroup::with_quota(0.5);
    let mut busy = ChildGuard::spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    cgroup.add(busy.id());
    let alone = cpu_share(busy.id(), Duration::from_millis(1500));
    assert!(
        alone > 0.35,
        "the target alone gets its quota: {alone:.2} cores"
    );

    let out = tempfile::NamedTempFile::new().unwrap();
    let mut stressing = ChildGuard::spawn(
        faultline()
            .args([
                "inject",
                "stress",
                "--workers",
                "1",
                "--load",
                "100",
                "--for",
                "4s",
            ])
            .args(["--pid", &busy.id().to_string()])
            .stdout(out.reopen().unwrap())
            .stderr(out.reopen().unwrap()),
    );
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || cgroup.pids().len() >= 2
    ));
    let squeezed = cpu_share(busy.id(), Duration::from_millis(1500));
    assert!(
        squeezed < alone * 0.8,
        "the target's share fell: {alone:.2} → {squeezed:.2} cores"
    );
    let (code, text) = finish(&mut stressing, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("revert verified"), "{text}");
    assert!(text.contains("throttled"), "{text}");
    assert_eq!(cgroup.pids(), [busy.id()], "only the target is left");

    // SIGKILL the faultline holding the stress: its workers die with it.
    let out = tempfile::NamedTempFile::new().unwrap();
    let stressing = ChildGuard::spawn(
        faultline()
            .args([
                "inject",
                "stress",
                "--workers",
                "2",
                "--load",
                "50",
                "--for",
                "10m",
            ])
            .args(["--pid", &busy.id().to_string()])
            .stdout(out.reopen().unwrap())
            .stderr(out.reopen().unwrap()),
    );
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || cgroup.pids().len() >= 3
    ));
    signal(stressing.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || cgroup.pids()
            == [busy.id()]),
        "workers outlived faultline: {:?}",
        cgroup.pids()
    );
    drop(stressing);
    busy.stop();
}

#[test]
fn pause_freezes_a_whole_cgroup_and_a_sigkilled_faultline_thaws_it() {
    let cgroup = faultline_tests::TestCgroup::freezer();
    let mut busy = ChildGuard::spawn(Command::new("sh").args(["-c", "while :; do :; done"]));
    cgroup.add(busy.id());
    let freezer_state = || std::fs::read_to_string(cgroup.dir().join("freezer.state")).unwrap();
    let dir = cgroup.dir().to_str().unwrap().to_owned();

    let mut pausing = ChildGuard::spawn(
        faultline()
            .args(["inject", "pause", "--cgroup", &dir, "--for", "60s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || freezer_state().trim() == "FROZEN"
    ));
    assert_eq!(
        cpu_share(busy.id(), Duration::from_millis(500)),
        0.0,
        "frozen: no CPU"
    );
    signal(pausing.id(), libc::SIGINT);
    assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
        pausing.has_exited()
    }));
    assert_eq!(freezer_state().trim(), "THAWED");
    assert!(cpu_share(busy.id(), Duration::from_millis(500)) > 0.0);

    // SIGKILL the faultline holding the freeze: its guard thaws the cgroup.
    let pausing = ChildGuard::spawn(
        faultline()
            .args(["inject", "pause", "--cgroup", &dir, "--for", "10m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(wait_until(
        Instant::now() + Duration::from_secs(10),
        || freezer_state().trim() == "FROZEN"
    ));
    signal(pausing.id(), libc::SIGKILL);
    let killed = Instant::now();
    assert!(
        wait_until(killed + Duration::from_secs(1), || freezer_state().trim()
            == "THAWED"),
        "still {} a second after faultline died",
        freezer_state().trim()
    );
    drop(pausing);
    busy.stop();
}

#[test]
fn a_cgroup_can_be_the_target() {
    let setup = setup();
    let cgroup = faultline_tests::TestCgroup::with_quota(1.0);
    cgroup.add(setup.target);
    let dir = cgroup.dir().to_str().unwrap().to_owned();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut injecting = ChildGuard::spawn(
        faultline()
            .args([
                "inject",
                "partition",
                "--cgroup",
                &dir,
                "--peer",
                NetLab::A_IP,
            ])
            .args(["--for", "60s"])
            .stdout(out.reopen().unwrap())
            .stderr(out.reopen().unwrap()),
    );
    setup.wait_for_table(&mut injecting, &out);
    assert_eq!(setup.probe(ECHO, 1.0).0, "timeout");
    signal(injecting.id(), libc::SIGINT);
    let (code, text) = finish(&mut injecting, &out);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the processes of cgroup"), "{text}");
    assert_eq!(setup.probe(ECHO, 2.0).0, "ok");

    // Kill every process of a cgroup, one of them deaf to TERM.
    let victims = faultline_tests::TestCgroup::with_quota(1.0);
    let mut polite = ChildGuard::spawn(Command::new("sleep").arg("600"));
    let mut stubborn =
        ChildGuard::spawn(Command::new("sh").args(["-c", "trap '' TERM; exec sleep 600"]));
    std::thread::sleep(Duration::from_millis(100));
    victims.add(polite.id());
    victims.add(stubborn.id());
    let victims_dir = victims.dir().to_str().unwrap().to_owned();
    let reap = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && !(polite.has_exited() && stubborn.has_exited()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        polite.has_exited() && stubborn.has_exited()
    });
    let ran = run(faultline().args([
        "inject",
        "kill",
        "--cgroup",
        &victims_dir,
        "--grace",
        "300ms",
    ]));
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("2 processes"), "{}", ran.stdout);
    assert!(ran.stdout.contains("1 outlived"), "{}", ran.stdout);
    assert!(reap.join().unwrap(), "both are gone");
}
