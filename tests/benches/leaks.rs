//! Leak-detection benchmark: 1,000 goroutine dumps of 10,000 goroutines each, parsed by
//! faultline-dump and pushed through faultline-leak's tracker. Reports the time spent parsing
//! and the time spent tracking (grouping each dump and keeping its series, then one report),
//! and the resident memory after each hundred dumps, which must stay flat: the tracker keeps a
//! bounded window per group, never the dumps.
//!
//! `just bench-leaks` runs `cargo bench -p faultline-tests --bench leaks`. Under `cargo test`
//! (no `--bench` argument) it only says how to run it.
//!
//! The dumps are synthetic Go `debug=2` text made here, so the benchmark needs no Go toolchain
//! and every run sees the same input: 10,000 goroutines in 40 stacks of 6 to 12 frames, with
//! states and wait times, one stack gaining 2 goroutines per dump (a leak) and the rest
//! wobbling around a constant count. Dumps are 30 s apart.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use faultline_dump::{Limits, parse};
use faultline_leak::{Config, Tracker, Verdict};

const DUMPS: usize = 1_000;
const TASKS: usize = 10_000;
const STACKS: usize = 40;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the leaks benchmark runs under `cargo bench -p faultline-tests --bench leaks`");
        return;
    }
    let mut tracker = Tracker::new(Config::default());
    let mut parsing = Duration::ZERO;
    let mut tracking = Duration::ZERO;
    let mut bytes = 0usize;
    let mut rss = Vec::new();
    let mut text = String::new();
    for n in 0..DUMPS {
        dump_text(n, &mut text);
        bytes += text.len();
        let started = Instant::now();
        let dump = parse(text.as_bytes(), &Limits::default()).expect("a valid dump");
        parsing += started.elapsed();
        assert_eq!(dump.tasks.len(), TASKS);
        let started = Instant::now();
        tracker
            .push(n as f64 * 30.0, &dump)
            .expect("increasing times");
        tracking += started.elapsed();
        if (n + 1) % 100 == 0 {
            rss.push((n + 1, resident_kib()));
        }
    }
    let started = Instant::now();
    let report = tracker.report(3600.0);
    let reporting = started.elapsed();
    tracking += reporting;

    let leaking: Vec<_> = report
        .groups
        .iter()
        .filter(|g| g.trend.verdict == Verdict::Leaking)
        .collect();
    assert_eq!(leaking.len(), 1, "exactly the leaking stack is flagged");
    assert!(
        leaking[0]
            .frames
            .iter()
            .any(|f| &*f.function == "main.leakyHandler"),
        "the right stack"
    );

    println!(
        "{DUMPS} dumps x {TASKS} goroutines ({:.0} MB of debug=2 text), {} groups",
        bytes as f64 / 1e6,
        report.groups.len()
    );
    println!(
        "parse:   {:>7.2} s ({:.0} MB/s)",
        parsing.as_secs_f64(),
        bytes as f64 / 1e6 / parsing.as_secs_f64()
    );
    println!(
        "track:   {:>7.2} s (group + series for every dump, and the report: {:.3} s); {:.1}% of parsing",
        tracking.as_secs_f64(),
        reporting.as_secs_f64(),
        100.0 * tracking.as_secs_f64() / parsing.as_secs_f64()
    );
    let first = rss.first().map_or(0, |r| r.1);
    let last = rss.last().map_or(0, |r| r.1);
    println!(
        "RSS after each 100 dumps (MiB): {}",
        rss.iter()
            .map(|(_, kib)| format!("{:.1}", *kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "RSS growth from dump 100 to dump {DUMPS}: {:+.1} MiB",
        (last as f64 - first as f64) / 1024.0
    );
}

/// Dump `n` of the series, as Go prints `/debug/pprof/goroutine?debug=2`.
fn dump_text(n: usize, text: &mut String) {
    text.clear();
    // Stack 0 leaks 2 goroutines per dump; the others share the rest, wobbling by ±3.
    let leaking = 100 + 2 * n;
    let mut counts = vec![0usize; STACKS];
    counts[0] = leaking;
    let rest = TASKS - leaking;
    for (i, count) in counts.iter_mut().enumerate().skip(1) {
        *count = rest / (STACKS - 1);
        if i % 2 == 0 {
            *count += (n * 7 + i) % 4;
        } else {
            *count -= (n * 7 + i) % 4;
        }
    }
    let assigned: usize = counts.iter().sum();
    counts[1] += TASKS - assigned;
    let mut id = 1;
    for (stack, &count) in counts.iter().enumerate() {
        for k in 0..count {
            let (state, wait) = match stack % 4 {
                0 => ("chan receive", Some(n / 2)),
                1 => ("select", None),
                2 => ("sync.Mutex.Lock", Some(k % 3)),
                _ => ("IO wait", None),
            };
            let _ = match wait {
                Some(minutes) if minutes > 0 => {
                    writeln!(text, "goroutine {id} [{state}, {minutes} minutes]:")
                }
                _ => writeln!(text, "goroutine {id} [{state}]:"),
            };
            let _ = writeln!(
                text,
                "runtime.gopark(0x0?, 0x0?, 0x0?, 0x0?, 0x0?)\n\t/usr/lib/go/src/runtime/proc.go:398 +0xce"
            );
            let depth = 6 + stack % 7;
            for frame in 0..depth {
                let function = if stack == 0 && frame == 0 {
                    "main.leakyHandler".to_owned()
                } else {
                    format!("example.com/shop/internal/s{stack}.(*Handler).step{frame}")
                };
                let _ = writeln!(
                    text,
                    "{function}(0xc000{id:06x}, {{0x1, 0x2}})\n\t/src/shop/internal/s{stack}/handler.go:{} +0x{:x}",
                    20 + frame * 7,
                    0x40 + frame * 4
                );
            }
            let _ = writeln!(
                text,
                "created by example.com/shop/internal/s{stack}.Start in goroutine 1\n\t/src/shop/internal/s{stack}/start.go:12 +0x5d\n"
            );
            id += 1;
        }
    }
}

/// This process's resident set, in KiB (`VmRSS` of /proc/self/status).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
