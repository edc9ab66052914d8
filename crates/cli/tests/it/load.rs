//! Leak verdicts under load, and the Go runtime's own proof of leaks, with real Go programs
//! (`tests/targets/go/loadleak`) sampled live by `faultline leaks --scrape`:
//!
//! - a load generator in the test ramps an HTTP service from 5 to 200 requests in flight while
//!   faultline scrapes its goroutines twice a second: handlers that each live 300 ms pile up
//!   with the load and are not a leak; a real leak onto a package-level channel under the same
//!   ramp is the only `leaking` group; keep-alive connections that grow with the ramp and
//!   close when it ends are no leak; a restart of the service mid-series splits the series;
//! - Go 1.27's goroutineleak profile proves a leak on unreachable channels within one dump
//!   (text, `debug=1` and protobuf), a leak onto a package-level channel is found by the trend
//!   alone, a worker pool that blocks and drains is flagged by neither, and a series in which
//!   the runtime's `(leaked)` mark appears halfway is one group with one rising count.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faultline_tests::{
    ChildGuard, Finished, GoBuild, LoadRamp, RampOptions, exec_tempdir, go_toolchains, http_get,
    run, target_dir, wait_until, workspace_root,
};
use serde_json::Value;

use crate::faultline;

/// The program built once per Go series: `[Go 1.19, Go 1.27]` as `go_toolchains` lists them.
fn loadleak(toolchain: usize) -> &'static Path {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[toolchain].get_or_init(|| {
        let go = &go_toolchains()[toolchain];
        let output = target_dir()
            .join("go-targets")
            .join(format!("loadleak-{}", go.series));
        go.build(
            &workspace_root().join("tests/targets/go/loadleak"),
            GoBuild::Default,
            &output,
        );
        output
    })
}

/// Go 1.27, whose runtime proves leaks (the goroutineleak profile, Go 1.26 and later).
fn go127() -> usize {
    go_toolchains()
        .iter()
        .position(|g| g.series == "go1.27")
        .expect("Go 1.27 (scripts/install-deps.sh installs it)")
}

/// A running `loadleak` and the address it serves on.
struct Service {
    guard: ChildGuard,
    addr: SocketAddr,
}

impl Service {
    fn start(toolchain: usize, args: &[&str], dir: &Path) -> Self {
        let out = dir.join(format!(
            "loadleak-{}.out",
            args.join("_").replace(['/', ':'], "_")
        ));
        let mut guard = ChildGuard::spawn(
            Command::new(loadleak(toolchain))
                .args(args)
                .stdin(Stdio::null())
                .stdout(fs::File::create(&out).unwrap())
                .stderr(Stdio::null()),
        );
        let mut addr = None;
        let ok = wait_until(Instant::now() + Duration::from_secs(30), || {
            addr = fs::read_to_string(&out).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("listening on "))
                    .and_then(|a| a.parse().ok())
            });
            addr.is_some() || guard.has_exited()
        });
        let addr = addr
            .filter(|_| ok)
            .unwrap_or_else(|| panic!("loadleak {args:?} did not start"));
        Self { guard, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn ramp(&self, to: usize, keep_alive: bool) -> LoadRamp {
        LoadRamp::start(RampOptions {
            addr: self.addr,
            path: "/work".into(),
            from: 5,
            to,
            ramp: Duration::from_secs(10),
            keep_alive,
        })
    }
}

/// `faultline leaks --format json ARGS…`, parsed.
fn leaks(args: &[&str]) -> (Finished, Value) {
    let ran = run(faultline().args(["leaks", "--format", "json"]).args(args));
    let doc = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", ran.context()));
    (ran, doc)
}

fn groups(doc: &Value) -> &Vec<Value> {
    doc["groups"].as_array().unwrap()
}

/// The groups with `function` in their stack.
fn with_function<'v>(doc: &'v Value, function: &str) -> Vec<&'v Value> {
    groups(doc)
        .iter()
        .filter(|g| {
            g["frames"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["function"] == function)
        })
        .collect()
}

/// Each leaking group, by its frames' functions.
fn leaking(doc: &Value) -> Vec<Vec<String>> {
    groups(doc)
        .iter()
        .filter(|g| g["verdict"] == "leaking")
        .map(|g| {
            g["frames"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["function"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

/// One line per group: what a failing assertion shows.
fn summary(doc: &Value) -> String {
    groups(doc)
        .iter()
        .map(|g| {
            format!(
                "{} p={} slope={}/min {} samples {}→{} persisting {} turnover {} proven {} why {}: {}",
                g["verdict"],
                g["p_value"],
                g["slope_per_min"],
                g["samples"],
                g["count_first"],
                g["count_last"],
                g["persisting"],
                g["turnover"],
                g["proven_leaked"],
                g["evidence"]["why"],
                g["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|f| f["function"].as_str())
                    .collect::<Vec<_>>()
                    .join(" < ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Twice a second for 10 s, as a chaos gate scrapes while load runs.
const RAMP_SCRAPE: &[&str] = &["--every", "500ms", "--for", "10s"];

#[test]
fn a_load_ramp_of_short_handlers_is_more_load_not_a_leak() {
    let dir = exec_tempdir();
    let service = Service::start(0, &["-workload", "handlers"], dir.path());
    let ramp = service.ramp(200, false);
    let url = service.url("/debug/pprof/goroutine?debug=2");
    let (ran, doc) = leaks(&[RAMP_SCRAPE, &["--scrape", &url]].concat());
    let answered = ramp.stop();
    println!(
        "handlers under the ramp ({answered} answers):\n{}",
        summary(&doc)
    );
    // The answers depend on the CPU two shared cores have to spare (CI runs other tests
    // beside this one); that the load arrived is the handler group's size, asserted below.
    assert!(answered > 300, "the ramp got {answered} answers");
    assert_eq!(ran.code(), Some(0), "{}\n{}", summary(&doc), ran.context());
    assert!(leaking(&doc).is_empty(), "{}", summary(&doc));
    // The handlers' group rose with the load; its members turned over.
    let handlers = with_function(&doc, "main.serveWork");
    assert!(!handlers.is_empty(), "{}", summary(&doc));
    let top = handlers
        .iter()
        .max_by_key(|g| g["count_max"].as_u64())
        .unwrap();
    assert!(
        top["count_max"].as_u64().unwrap() >= 50,
        "{}",
        summary(&doc)
    );
    assert!(top["turnover"].as_f64().unwrap() > 0.5, "{}", summary(&doc));
    assert!(top["oldest_seen_seconds"].as_f64().unwrap() < 5.0, "{top}");
    if top["verdict"] == "growing" && top["slope_per_min"].as_f64().unwrap() > 60.0 {
        // What the count alone would have called leaking says why it is not.
        let why = top["evidence"]["why"].as_str().unwrap_or_default();
        assert!(why.contains("turn over"), "{}", summary(&doc));
    }
}

#[test]
fn a_leak_under_the_ramp_is_the_only_leaking_group() {
    let dir = exec_tempdir();
    let service = Service::start(go127(), &["-workload", "global-leak"], dir.path());
    let ramp = service.ramp(200, false);
    let url = service.url("/debug/pprof/goroutine?debug=2");
    let (ran, doc) = leaks(&[RAMP_SCRAPE, &["--scrape", &url]].concat());
    ramp.stop();
    println!("a leak under the ramp:\n{}", summary(&doc));
    assert_eq!(ran.code(), Some(4), "{}\n{}", summary(&doc), ran.context());
    let found = leaking(&doc);
    assert_eq!(found.len(), 1, "{}", summary(&doc));
    assert!(
        found[0].iter().any(|f| f == "main.leakOnGlobal"),
        "{}",
        summary(&doc)
    );
    let leak = with_function(&doc, "main.leakOnGlobal")[0];
    assert_eq!(leak["turnover"].as_f64(), Some(0.0), "{leak}");
    assert!(leak["persisting"].as_u64().unwrap() >= 5, "{leak}");
    // The reachable channel: nothing for the runtime to prove.
    assert_eq!(leak["proven_leaked"], 0);
}

#[test]
fn keep_alive_connections_that_grow_with_the_ramp_and_close_are_no_leak() {
    let dir = exec_tempdir();
    let service = Service::start(0, &["-workload", "handlers"], dir.path());
    let url = service.url("/debug/pprof/goroutine?debug=2");
    std::thread::scope(|scope| {
        let scraped =
            scope.spawn(|| leaks(&["--every", "500ms", "--for", "16s", "--scrape", &url]));
        // 5 to 100 connections kept open over 10 s, then all closed, while the scrape goes on.
        let ramp = service.ramp(100, true);
        std::thread::sleep(Duration::from_secs(11));
        assert!(ramp.stop() > 100);
        let (ran, doc) = scraped.join().unwrap();
        assert_eq!(ran.code(), Some(0), "{}\n{}", summary(&doc), ran.context());
        assert!(leaking(&doc).is_empty(), "{}", summary(&doc));
        let connections = with_function(&doc, "net/http.(*conn).serve");
        let most = connections
            .iter()
            .filter_map(|g| g["count_max"].as_u64())
            .max()
            .unwrap_or(0);
        assert!(most >= 50, "{}", summary(&doc));
    });
}

#[test]
fn a_restart_mid_series_splits_the_series_instead_of_a_mass_death() {
    let dir = exec_tempdir();
    let args = |listen: &str| {
        vec![
            "-workload".to_owned(),
            "reachable".into(),
            "-traffic".into(),
            "50".into(),
            "-listen".into(),
            listen.to_owned(),
        ]
    };
    let first_args = args("127.0.0.1:0");
    let mut first = Service::start(
        go127(),
        &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    let addr = first.addr.to_string();
    let url = first.url("/debug/pprof/goroutine?debug=2");
    std::thread::scope(|scope| {
        let scraped =
            scope.spawn(|| leaks(&["--every", "500ms", "--for", "14s", "--scrape", &url]));
        std::thread::sleep(Duration::from_secs(7));
        // Killed and started again on the same address: a crash and the supervisor's restart.
        first.guard.stop();
        let again = args(&addr);
        let second = Service::start(
            go127(),
            &again.iter().map(String::as_str).collect::<Vec<_>>(),
            dir.path(),
        );
        let (ran, doc) = scraped.join().unwrap();
        drop(second);
        let restarts = doc["restarts"].as_array().unwrap();
        assert_eq!(restarts.len(), 1, "{doc:#}\n{}", ran.context());
        let why = restarts[0]["why"].as_str().unwrap();
        assert!(why.starts_with("goroutine ids went back"), "{why}");
        let at = restarts[0]["time_seconds"].as_f64().unwrap();
        assert!(ran.stdout.contains("before_restart"), "{}", ran.stdout);
        let leaks = with_function(&doc, "main.waitGlobal");
        // The first process's leak, judged when it went away…
        let before: Vec<_> = leaks.iter().filter(|g| g["before_restart"] == at).collect();
        assert_eq!(before.len(), 1, "{}", summary(&doc));
        assert_eq!(before[0]["verdict"], "leaking", "{}", summary(&doc));
        // …and the second's, a series of its own from the restart on: not a drain to nothing
        // and a rise from nothing in one series.
        let now: Vec<_> = leaks
            .iter()
            .filter(|g| g["before_restart"].is_null())
            .collect();
        assert_eq!(now.len(), 1, "{}", summary(&doc));
        let series = now[0]["series"].as_array().unwrap();
        assert!(series[0][0].as_f64().unwrap() >= at, "{}", now[0]);
        assert_ne!(now[0]["verdict"], "draining", "{}", summary(&doc));
        assert_eq!(ran.code(), Some(4), "{}", ran.context());
    });
}

#[test]
fn the_runtime_proves_a_leak_on_unreachable_channels_within_one_dump() {
    let dir = exec_tempdir();
    let service = Service::start(go127(), &["-workload", "unreachable"], dir.path());
    // Let a few pile up.
    let piled = wait_until(Instant::now() + Duration::from_secs(30), || {
        http_get(
            service.addr.port(),
            "/debug/pprof/goroutine?debug=1",
            Duration::from_secs(10),
        )
        .body
        .windows(19)
        .any(|w| w == b"main.waitUnreachabl")
    });
    assert!(piled);
    // One dump of the profile: the leak-detecting collection runs, and the text marks them.
    let ran = run(faultline()
        .args(["analyze", "--format", "json"])
        .arg(service.url("/debug/pprof/goroutineleak?debug=2")))
    .assert_success();
    let doc: Value = serde_json::from_str(&ran.stdout).unwrap();
    let proven = with_function(&doc, "main.waitUnreachable");
    assert_eq!(proven.len(), 1, "{doc:#}");
    assert!(proven[0]["proven_leaked"].as_u64().unwrap() >= 1, "{doc:#}");
    assert_eq!(proven[0]["state"], "chan receive");
    // Every form of the profile, sampled three times: too few for a trend, enough for proof.
    for form in ["2", "1", "0"] {
        let url = service.url(&format!("/debug/pprof/goroutineleak?debug={form}"));
        let (ran, doc) = leaks(&["--every", "500ms", "--for", "1s", "--scrape", &url]);
        assert_eq!(ran.code(), Some(4), "debug={form}: {}", ran.context());
        let group = with_function(&doc, "main.waitUnreachable");
        assert_eq!(group.len(), 1, "debug={form}: {}", summary(&doc));
        let group = group[0];
        assert_eq!(group["verdict"], "leaking", "debug={form}: {group}");
        assert!(group["samples"].as_u64().unwrap() < 6, "{group}");
        assert!(group["proven_leaked"].as_u64().unwrap() >= 1, "{group}");
        let why = group["evidence"]["why"].as_str().unwrap_or_default();
        assert!(why.contains("the runtime proved"), "debug={form}: {group}");
        assert_eq!(leaking(&doc).len(), 1, "debug={form}: {}", summary(&doc));
    }
}

#[test]
fn a_reachable_leak_is_found_by_the_trend_alone() {
    let dir = exec_tempdir();
    let service = Service::start(go127(), &["-workload", "reachable"], dir.path());
    // Through the leak profile: a leak-detecting collection before every sample.
    let url = service.url("/debug/pprof/goroutineleak?debug=2");
    let (ran, doc) = leaks(&["--every", "500ms", "--for", "6s", "--scrape", &url]);
    assert_eq!(ran.code(), Some(4), "{}\n{}", summary(&doc), ran.context());
    let found = leaking(&doc);
    assert_eq!(found.len(), 1, "{}", summary(&doc));
    let leak = with_function(&doc, "main.waitGlobal")[0];
    assert_eq!(leak["verdict"], "leaking");
    assert_eq!(leak["proven_leaked"], 0, "{leak}");
    assert!(leak["evidence"]["why"].is_null(), "{leak}");
}

#[test]
fn a_worker_pool_that_blocks_and_drains_is_flagged_by_neither_path() {
    let dir = exec_tempdir();
    let service = Service::start(go127(), &["-workload", "pool"], dir.path());
    let url = service.url("/debug/pprof/goroutineleak?debug=2");
    let (ran, doc) = leaks(&["--every", "1s", "--for", "16s", "--scrape", &url]);
    assert_eq!(ran.code(), Some(0), "{}\n{}", summary(&doc), ran.context());
    assert!(leaking(&doc).is_empty(), "{}", summary(&doc));
    let producers = with_function(&doc, "main.produce");
    assert!(
        producers
            .iter()
            .any(|g| g["count_max"].as_u64().unwrap() >= 50),
        "the producers did pile up: {}",
        summary(&doc)
    );
    for g in groups(&doc) {
        assert_eq!(g["proven_leaked"], 0, "{g}");
    }
}

#[test]
fn a_mark_that_appears_halfway_leaves_one_group_with_one_rising_count() {
    let dir = exec_tempdir();
    let service = Service::start(go127(), &["-workload", "unreachable"], dir.path());
    let port = service.addr.port();
    let saved = dir.path().join("dumps");
    fs::create_dir_all(&saved).unwrap();
    let take = |n: usize, path: &str| {
        let dump = http_get(port, path, Duration::from_secs(10));
        assert_eq!(dump.status, 200);
        let file = saved.join(format!("dump-{n:02}.txt"));
        fs::write(&file, dump.body).unwrap();
        file
    };
    let mut files = Vec::new();
    for n in 0..12 {
        // Halfway, a leak-detecting collection (the profile asked for once); from then on
        // the ordinary goroutine dumps mark the leaked goroutines.
        if n == 6 {
            take(99, "/debug/pprof/goroutineleak?debug=1");
        }
        files.push(take(n, "/debug/pprof/goroutine?debug=2"));
        std::thread::sleep(Duration::from_millis(400));
    }
    let marked = |file: &PathBuf| fs::read_to_string(file).unwrap().contains("(leaked)");
    assert!(
        !marked(&files[5]) && marked(&files[6]),
        "the mark appears halfway"
    );
    let (ran, doc) = leaks(
        &[
            &["--interval", "400ms"][..],
            &files
                .iter()
                .map(|f| f.to_str().unwrap())
                .collect::<Vec<_>>(),
        ]
        .concat(),
    );
    let groups = with_function(&doc, "main.waitUnreachable");
    assert_eq!(groups.len(), 1, "{}", summary(&doc));
    let group = groups[0];
    assert_eq!(group["state"], "chan receive");
    let counts: Vec<u64> = group["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 12, "{counts:?}");
    assert!(counts.windows(2).all(|w| w[1] >= w[0]), "{counts:?}");
    assert!(counts[11] > counts[0], "{counts:?}");
    assert_eq!(group["verdict"], "leaking", "{group}");
    assert!(group["proven_leaked"].as_u64().unwrap() >= 1);
    assert_eq!(ran.code(), Some(4));
}

#[test]
fn a_chaos_gate_fails_on_the_runtimes_proof_from_a_leak_profile_capture() {
    // The scenario's dump capture takes the goroutineleak profile's protobuf form: one proven
    // leak fails no_leaks, long before a trend could.
    let dir = exec_tempdir();
    let file = dir.path().join("proof.yaml");
    fs::write(
        &file,
        format!(
            "name: proof\n\
             lab:\n  hosts:\n    leaker:\n      command: [{}, -workload, unreachable, -listen, \":6060\"]\n      ready: {{ port: 6060 }}\n\
             captures:\n  dumps:\n    leaks:\n      url: \"http://leaker:6060/debug/pprof/goroutineleak?debug=0\"\n      every: 500ms\n\
             steps:\n  - wait: 2s\n\
             assertions:\n  - no_leaks: [leaks]\n",
            loadleak(go127()).display()
        ),
    )
    .unwrap();
    let out = dir.path().join("run");
    let ran = faultline_tests::run_with(
        faultline()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .arg("--state-dir")
            .arg(dir.path().join("state")),
        faultline_tests::RunOptions {
            deadline: Duration::from_secs(120),
            ..faultline_tests::RunOptions::default()
        },
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    let journal: Value =
        serde_json::from_str(&fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    let proven: Vec<&Value> = journal["leaks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["proven_leaked"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(proven.len(), 1, "{:#}", journal["leaks"]);
    assert_eq!(proven[0]["verdict"], "leaking");
    assert!(
        proven[0]["frame"]
            .as_str()
            .unwrap()
            .starts_with("main.waitUnreachable"),
        "{}",
        proven[0]
    );
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("proven leaked by the runtime"), "{report}");
    assert!(
        ran.stderr.contains("proven leaked by the runtime")
            || ran.stdout.contains("proven leaked by the runtime"),
        "{}",
        ran.context()
    );
}
