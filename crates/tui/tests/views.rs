//! The views, drawn from fixed states into ratatui's test backend: an empty screen, a busy one
//! (50 targets, 5 faults, 3 crashes, a leaking task group) on each view and with each overlay,
//! and the busy screen at 80×24.

use std::time::{Duration, Instant};

use faultline_agent::spec::FaultView;
use faultline_tui::app::{App, Event};
use faultline_tui::model::{AgentStatus, CrashRow, FrameLine, ProbeRow, TargetRow, TaskGroupRow};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| faultline_tui::view::draw(frame, app))
        .unwrap();
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn fault(
    id: &str,
    kind: &str,
    pid: u32,
    state: &str,
    left: Option<f64>,
    packets: Option<u64>,
) -> FaultView {
    FaultView {
        id: id.into(),
        kind: kind.into(),
        pid,
        cgroup: None,
        pod: None,
        state: state.into(),
        seconds_left: left,
        lease_seconds: Some(15.0),
        kernel_anchored: true,
        detail: String::new(),
        packets,
        throttled_periods: (kind == "stress").then_some(412),
        options: match kind {
            "partition" => "peers 10.77.0.2 both drop",
            "loss" => "30% of peers 10.77.0.3 ports 8080 to",
            "stress" => "2 workers at 100%",
            _ => "SIGSTOP",
        }
        .into(),
        revert: (state != "active").then(|| "verified".into()),
        reverted_by: (state != "active").then(|| "request".into()),
    }
}

fn empty() -> App {
    App::new(
        "unix:/run/faultline/agent.sock",
        vec![AgentStatus::new("unix:/run/faultline/agent.sock")],
        Instant::now(),
    )
}

fn busy() -> App {
    let now = Instant::now();
    let mut app = App::new(
        "scenario demo · lab in faultline-runs/tui-demo",
        vec![AgentStatus::new("in-process agent")],
        now,
    );
    app.peers = vec![
        ("inventory".into(), "10.77.0.2".into()),
        ("checkout".into(), "10.77.0.3".into()),
    ];
    let mut rows = vec![
        TargetRow {
            pid: 4100,
            name: "inventory".into(),
            address: Some("10.77.0.2".into()),
            state: Some('S'),
            cpu: Some(0.04),
            threads: Some(6),
            ..TargetRow::default()
        },
        TargetRow {
            pid: 4101,
            name: "checkout".into(),
            address: Some("10.77.0.3".into()),
            state: Some('S'),
            cpu: Some(0.31),
            threads: Some(2),
            ..TargetRow::default()
        },
    ];
    for i in 0..48u32 {
        rows.push(TargetRow {
            pid: 5000 + i,
            name: format!("worker-{i:02}"),
            state: Some(if i % 7 == 0 { 'R' } else { 'S' }),
            cpu: Some(f64::from(i % 5) * 0.1),
            threads: Some(1 + i % 4),
            ..TargetRow::default()
        });
    }
    // A few refreshes, so the sparklines have a history.
    for step in 0..12u32 {
        let mut refreshed = rows.clone();
        for row in &mut refreshed {
            row.threads = row.threads.map(|t| t + step % 3);
        }
        app.handle(Event::Targets {
            agent: 0,
            rows: refreshed,
        });
    }
    app.handle(Event::Faults {
        agent: 0,
        result: Ok(vec![
            fault(
                "1a2215f0c4a1",
                "partition",
                4101,
                "active",
                Some(27.4),
                Some(118),
            ),
            fault("1a2215f0c4a2", "loss", 4100, "active", Some(95.0), Some(57)),
            fault("1a2215f0c4a3", "stress", 5003, "active", Some(12.2), None),
            fault("1a2215f0c4a4", "pause", 5010, "active", Some(44.9), None),
            fault(
                "1a2215f0c4a5",
                "partition",
                5020,
                "active",
                Some(3.0),
                Some(9),
            ),
        ]),
        at: now,
    });
    // One of them reverted since: it fades out with its verified revert.
    app.handle(Event::Faults {
        agent: 0,
        result: Ok(vec![
            fault(
                "1a2215f0c4a1",
                "partition",
                4101,
                "active",
                Some(27.4),
                Some(118),
            ),
            fault("1a2215f0c4a2", "loss", 4100, "active", Some(95.0), Some(57)),
            fault("1a2215f0c4a3", "stress", 5003, "active", Some(12.2), None),
            fault("1a2215f0c4a4", "pause", 5010, "active", Some(44.9), None),
            fault("1a2215f0c4a5", "partition", 5020, "reverted", None, Some(9)),
        ]),
        at: now,
    });
    app.handle(Event::Probes(vec![
        ProbeRow {
            name: "checkout".into(),
            ok: Some(false),
            error: Some("connect 10.77.0.3:8080: connection refused".into()),
        },
        ProbeRow {
            name: "inventory".into(),
            ok: Some(true),
            error: None,
        },
    ]));
    let stack = |own: &str| {
        vec![
            FrameLine {
                text: "core::panicking::panic_fmt at /rustc/library/core/src/panicking.rs:80"
                    .into(),
                ..FrameLine::default()
            },
            FrameLine {
                text: format!("faultline_demo::{own} at /src/demo/src/main.rs:211"),
                own: true,
                inlined: true,
                source: Some(
                    "        panic!(\"discount {pct}% exceeds the price of order {id}\");".into(),
                ),
            },
            FrameLine {
                text: "faultline_demo::process_order at /src/demo/src/main.rs:196".into(),
                own: true,
                inlined: false,
                source: Some("    let net_cents = price_order(order);".into()),
            },
            FrameLine {
                text: "std::rt::lang_start_internal at /rustc/library/std/src/rt.rs:175".into(),
                ..FrameLine::default()
            },
        ]
    };
    app.handle(Event::Crashes(vec![
        CrashRow {
            target: "checkout".into(),
            kind: "crash record".into(),
            message: "discount 150% exceeds the price of order 42".into(),
            top_frame: "faultline_demo::apply_discount at /src/demo/src/main.rs:211".into(),
            file: "hosts/checkout/crashes/faultline-crash-3.json".into(),
            frames: stack("apply_discount"),
        },
        CrashRow {
            target: "checkout".into(),
            kind: "crash record".into(),
            message: "discount 150% exceeds the price of order 41".into(),
            top_frame: "faultline_demo::apply_discount at /src/demo/src/main.rs:211".into(),
            file: "hosts/checkout/crashes/faultline-crash-2.json".into(),
            frames: stack("apply_discount"),
        },
        CrashRow {
            target: "inventory".into(),
            kind: "go panic".into(),
            message: "runtime error: index out of range [3] with length 3".into(),
            top_frame: "main.priceOf at /src/inventory/main.go:57".into(),
            file: "hosts/inventory/stderr.log".into(),
            frames: Vec::new(),
        },
    ]));
    let leak: Vec<u64> = (0..21).map(|i| 1 + i * 4).collect();
    app.handle(Event::Tasks(vec![
        TaskGroupRow {
            source: "inventory".into(),
            count: 81,
            history: leak,
            verdict: "leaking".into(),
            slope_per_min: 220.4,
            p_value: 1.4e-9,
            state: "chan receive".into(),
            frames: vec![FrameLine {
                text: "main.audit at /src/inventory/main.go:25".into(),
                own: true,
                inlined: false,
                source: Some("\t<-done // waits for a reply that never comes".into()),
            }],
            top_frame: "main.audit at /src/inventory/main.go:25".into(),
            proven_leaked: 81,
            stays: Some(1.0),
            oldest_seen_seconds: Some(20.0),
            why: None,
        },
        TaskGroupRow {
            source: "inventory".into(),
            count: 4,
            history: vec![4; 21],
            verdict: "stable".into(),
            slope_per_min: 0.0,
            p_value: 1.0,
            state: "IO wait".into(),
            frames: Vec::new(),
            top_frame: "internal/poll.runtime_pollWait at /go/src/runtime/netpoll.go:351".into(),
            ..Default::default()
        },
        TaskGroupRow {
            source: "inventory".into(),
            count: 1,
            history: vec![1; 21],
            verdict: "stable".into(),
            slope_per_min: 0.0,
            p_value: 1.0,
            state: "running".into(),
            frames: Vec::new(),
            top_frame: "runtime/pprof.writeGoroutineStacks at /go/src/runtime/pprof/pprof.go:761"
                .into(),
            stays: Some(1.0),
            oldest_seen_seconds: Some(20.0),
            ..Default::default()
        },
    ]));
    app.message = None;
    app.handle(Event::Tick(now));
    app
}

#[test]
fn an_empty_screen_says_it_is_connecting() {
    insta::assert_snapshot!("empty", draw(&empty(), 100, 14));
}

#[test]
fn a_busy_screen_on_each_view() {
    let mut app = busy();
    insta::assert_snapshot!("busy_targets", draw(&app, 120, 30));
    key(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!("busy_faults", draw(&app, 120, 16));
    key(&mut app, KeyCode::Char('3'));
    insta::assert_snapshot!("busy_crashes", draw(&app, 120, 10));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("busy_crash_stack", draw(&app, 120, 16));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!("busy_tasks", draw(&app, 120, 10));
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("busy_task_stack", draw(&app, 120, 12));
}

#[test]
fn the_overlays_of_a_busy_screen() {
    let mut app = busy();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('n'));
    key(&mut app, KeyCode::Tab);
    for c in "http".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!("form_with_errors", draw(&app, 120, 24));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('R'));
    insta::assert_snapshot!("confirm_revert_all", draw(&app, 100, 14));
    key(&mut app, KeyCode::Char('n'));
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help", draw(&app, 100, 20));
}

#[test]
fn a_busy_screen_at_80_by_24() {
    let mut app = busy();
    insta::assert_snapshot!("narrow_targets", draw(&app, 80, 24));
    key(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!("narrow_faults", draw(&app, 80, 24));
    key(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!("narrow_tasks", draw(&app, 80, 24));
}

#[test]
fn a_lost_agent_is_shown_on_the_status_line() {
    let mut app = busy();
    let at = app.now + Duration::from_secs(1);
    app.handle(Event::Faults {
        agent: 0,
        result: Err("unix:/run/faultline/agent.sock: Connection refused (os error 111)".into()),
        at,
    });
    let screen = draw(&app, 120, 6);
    assert!(
        screen.contains("○ in-process agent lost: unix:/run/faultline/agent.sock: Connection refused (os error 111) (retrying)"),
        "{screen}"
    );
}

/// `--kube`: pods on two nodes, one of them partitioned, one not Ready.
fn pods() -> App {
    let now = Instant::now();
    let mut app = App::new(
        "pods in shop · Kubernetes (context staging), agents in faultline-system reached through the API server's port-forward",
        vec![AgentStatus::new("node-1"), AgentStatus::new("node-2")],
        now,
    );
    app.kube = true;
    let pod = |name: &str, node: &str, ip: &str, ready: bool, restarts: u32, key: u32| TargetRow {
        pid: key,
        name: format!("shop/{name}"),
        address: Some(ip.into()),
        pod: Some(faultline_tui::model::PodInfo {
            uid: format!("uid-{name}"),
            node: node.into(),
            phase: if ready { "Running" } else { "Pending" }.into(),
            ready,
            restarts,
        }),
        ..TargetRow::default()
    };
    app.handle(Event::Targets {
        agent: 0,
        rows: vec![
            pod(
                "checkout-7d9f5c-x2b4q",
                "node-1",
                "10.244.1.5",
                true,
                0,
                0x4000_0000,
            ),
            pod(
                "inventory-5c8d7-k2m9",
                "node-1",
                "10.244.1.9",
                true,
                3,
                0x4000_0001,
            ),
        ],
    });
    app.handle(Event::Targets {
        agent: 1,
        rows: vec![pod(
            "checkout-7d9f5c-p8r1s",
            "node-2",
            "10.244.2.4",
            false,
            0,
            0x4000_0002,
        )],
    });
    let mut partition = fault("1a2b3c", "partition", 4242, "active", Some(24.0), Some(17));
    partition.pod = Some("uid-checkout-7d9f5c-x2b4q".into());
    for agent in 0..2 {
        app.handle(Event::Faults {
            agent,
            result: Ok(if agent == 0 {
                vec![partition.clone()]
            } else {
                Vec::new()
            }),
            at: now,
        });
    }
    app
}

#[test]
fn pods_of_a_cluster_as_k9s_lists_them() {
    let mut app = pods();
    insta::assert_snapshot!("pods", draw(&app, 140, 14));
    key(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!("pods-faults", draw(&app, 140, 14));
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('n'));
    insta::assert_snapshot!("pods-partition-form", draw(&app, 140, 20));
}
