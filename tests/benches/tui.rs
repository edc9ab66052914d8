//! TUI benchmark: the screen with 10,000 targets and 100,000 tasks in view.
//!
//! 1. Frame time: each view drawn 300 times through ratatui's crossterm backend into a sink
//!    (the escape sequences a terminal would get), at 200×50 and at 80×24; p50, p99, max.
//! 2. Key press reflected: a key handled by the state and the next frame drawn, on the
//!    Targets view (moving the selection, typing into the filter); p50, p99, max.
//! 3. Memory over "10 minutes": 600 rounds of what one second brings — a goroutine dump of
//!    10,000 goroutines parsed and tracked (one group leaking), the 10,000 targets refreshed,
//!    the faults refreshed, a tick, a frame — with the resident memory every 60 rounds.
//!
//! `just bench-tui` runs `cargo bench -p faultline-tests --bench tui`. Under `cargo test` it
//! only says how to run it. The inputs are made here, so every run sees the same.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use faultline_agent::spec::FaultView;
use faultline_symbolize::Locator;
use faultline_tui::app::{App, Event, Tab};
use faultline_tui::model::{AgentStatus, TargetRow};
use faultline_tui::sources::{SourceCache, TaskSource, all_groups};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const TARGETS: u32 = 10_000;
const TASKS: usize = 100_000;
const STACKS: usize = 500;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the tui benchmark runs under `cargo bench -p faultline-tests --bench tui`");
        return;
    }
    let now = Instant::now();
    let mut app = App::new("bench", vec![AgentStatus::new("in-process agent")], now);
    for round in 0..3 {
        app.handle(Event::Targets {
            agent: 0,
            rows: targets(round),
        });
    }
    app.handle(Event::Faults {
        agent: 0,
        result: Ok(faults(64)),
        at: now,
    });
    let locator = Locator::new();
    let mut cache = SourceCache::default();
    let mut source = TaskSource::new("inventory");
    let mut text = String::new();
    let started = Instant::now();
    for n in 0..8 {
        dump_text(n, TASKS, &mut text);
        source.push(n as f64, text.as_bytes(), &locator);
    }
    let groups = all_groups(std::slice::from_ref(&source), &mut cache);
    let tasks: u64 = groups.iter().map(|g| g.count).sum();
    println!(
        "setup: {} targets, {} task groups holding {tasks} tasks ({:.1} s to parse and track 8 dumps of {TASKS})",
        app.targets.len(),
        groups.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(tasks as usize, TASKS);
    app.handle(Event::Tasks(groups));

    // 1. Frame time, per view.
    for (width, height) in [(200u16, 50u16), (80, 24)] {
        let mut terminal = terminal(width, height);
        for tab in Tab::ALL {
            app.tab = tab;
            let mut times = Vec::with_capacity(300);
            for _ in 0..300 {
                let started = Instant::now();
                terminal
                    .draw(|frame| faultline_tui::view::draw(frame, &app))
                    .expect("draw");
                times.push(started.elapsed());
            }
            println!(
                "frame {width}x{height} {:<8} {}",
                tab.title(),
                stats(&mut times)
            );
        }
    }

    // 2. A key press reflected on screen: handled, then drawn.
    let mut terminal = terminal(200, 50);
    app.tab = Tab::Targets;
    let mut press = |app: &mut App, code: KeyCode| {
        let started = Instant::now();
        app.handle(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        terminal
            .draw(|frame| faultline_tui::view::draw(frame, app))
            .expect("draw");
        started.elapsed()
    };
    let mut times: Vec<Duration> = (0..1000).map(|_| press(&mut app, KeyCode::Down)).collect();
    println!("key ↓ on 10,000 targets          {}", stats(&mut times));
    let mut times = vec![press(&mut app, KeyCode::Char('/'))];
    for c in "worker-12".chars() {
        times.push(press(&mut app, KeyCode::Char(c)));
    }
    for _ in 0..9 {
        times.push(press(&mut app, KeyCode::Backspace));
    }
    times.push(press(&mut app, KeyCode::Esc));
    println!("key typed into the filter        {}", stats(&mut times));

    // 3. Memory over 600 one-second rounds.
    let mut source = TaskSource::new("inventory");
    let mut rss = Vec::new();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for n in 0..600 {
        let round = Instant::now();
        dump_text(n, 10_000, &mut text);
        source.push(n as f64, text.as_bytes(), &locator);
        app.handle(Event::Tasks(all_groups(
            std::slice::from_ref(&source),
            &mut cache,
        )));
        app.handle(Event::Targets {
            agent: 0,
            rows: targets(n),
        });
        app.handle(Event::Faults {
            agent: 0,
            result: Ok(faults(64)),
            at: Instant::now(),
        });
        app.handle(Event::Tick(Instant::now()));
        terminal
            .draw(|frame| faultline_tui::view::draw(frame, &app))
            .expect("draw");
        slowest = slowest.max(round.elapsed());
        if (n + 1) % 60 == 0 {
            rss.push(resident_kib());
        }
    }
    let leaking = app.tasks.iter().filter(|g| g.verdict == "leaking").count();
    assert_eq!(leaking, 1, "the leaking group is flagged");
    println!(
        "600 rounds in {:.1} s (slowest {:.1} ms): RSS every 60 (MiB): {}",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0,
        rss.iter()
            .map(|kib| format!("{:.1}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let first = rss.first().copied().unwrap_or(0);
    let last = rss.last().copied().unwrap_or(0);
    println!(
        "RSS growth from round 60 to round 600: {:+.1} MiB",
        (last as f64 - first as f64) / 1024.0
    );
}

fn terminal(width: u16, height: u16) -> Terminal<CrosstermBackend<std::io::Sink>> {
    Terminal::with_options(
        CrosstermBackend::new(std::io::sink()),
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, width, height)),
        },
    )
    .expect("a terminal")
}

fn stats(times: &mut [Duration]) -> String {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    )
}

fn targets(round: usize) -> Vec<TargetRow> {
    (0..TARGETS)
        .map(|i| TargetRow {
            pid: 1000 + i,
            name: format!("worker-{i}"),
            state: Some(if i % 5 == 0 { 'R' } else { 'S' }),
            cpu: Some(f64::from(i % 10) / 10.0),
            threads: Some(1 + (i + round as u32) % 8),
            ..TargetRow::default()
        })
        .collect()
}

fn faults(n: u32) -> Vec<FaultView> {
    (0..n)
        .map(|i| FaultView {
            id: format!("1a2215f0c4{i:04x}"),
            kind: ["partition", "loss", "pause", "stress"][i as usize % 4].into(),
            pid: 1000 + i * 7,
            cgroup: None,
            pod: None,
            state: "active".into(),
            seconds_left: Some(f64::from(30 + i)),
            lease_seconds: Some(15.0),
            kernel_anchored: true,
            detail: String::new(),
            packets: Some(u64::from(i) * 13),
            throttled_periods: None,
            options: "peers 10.0.0.0/8 both drop".into(),
            revert: None,
            reverted_by: None,
        })
        .collect()
}

/// Dump `n`: `tasks` goroutines in [`STACKS`] stacks; stack 0 gains 3 per dump (a leak).
fn dump_text(n: usize, tasks: usize, text: &mut String) {
    text.clear();
    let leaking = 10 + 3 * n;
    let per = (tasks - leaking) / (STACKS - 1);
    let mut id = 1;
    for stack in 0..STACKS {
        let count = match stack {
            0 => leaking,
            1 => tasks - leaking - per * (STACKS - 2),
            _ => per,
        };
        for _ in 0..count {
            let _ = writeln!(text, "goroutine {id} [chan receive]:");
            let _ = writeln!(
                text,
                "runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n\t/usr/lib/go/src/runtime/proc.go:398 +0xce"
            );
            for frame in 0..4 {
                let _ = writeln!(
                    text,
                    "main.handler{stack}_{frame}(0xc000010000)\n\t/src/app/handler{stack}.go:{} +0x{:x}",
                    10 + frame,
                    0x40 + frame
                );
            }
            let _ = writeln!(
                text,
                "created by main.main in goroutine 1\n\t/src/app/main.go:{} +0x25\n",
                20 + stack
            );
            id += 1;
        }
    }
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
