//! `faultline run` end to end, in a real lab: network namespaces, nftables, cgroups, the
//! demo's stripped Rust service and a Go service built here, as scenarios/ runs them.
//!
//! The scenario files of scenarios/ are used as they are, with `../target/demo/` pointed at
//! the binaries this test builds.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faultline_tests::{
    ChildGuard, GoBuild, RunOptions, demo_binary, demo_source, exec_tempdir, go_toolchains,
    marker_line, render_in_browser, run_ok, run_with, split_debug, strip_all, test_output_dir,
    workspace_root,
};

use crate::faultline;

/// The demo system of scenarios/: `image/faultline-demo` (stripped), `image/inventory` (Go
/// 1.27, `-s -w`), `store/` with the checkout's debug file. Built once per test process.
fn demo_dir() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BUILT
        .get_or_init(|| {
            let dir = exec_tempdir();
            let root = dir.path().join("demo");
            fs::create_dir_all(root.join("image")).unwrap();
            let debug = root.join("faultline-demo.debug");
            split_debug(demo_binary(), &debug);
            strip_all(demo_binary(), &root.join("image/faultline-demo"));
            run_ok(
                faultline()
                    .args(["debug-store", "add"])
                    .arg(&debug)
                    .arg("--store")
                    .arg(root.join("store")),
            );
            let go = go_toolchains()
                .iter()
                .find(|t| t.series == "go1.27")
                .expect("Go 1.27");
            go.build(
                &workspace_root().join("tests/targets/go/inventory"),
                GoBuild::Stripped,
                &root.join("image/inventory"),
            );
            (dir, root)
        })
        .1
}

/// A scenario of scenarios/ (or given text) written next to the demo binaries.
fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let text = text.replace("../target/demo/", &format!("{}/", demo_dir().display()));
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn example(name: &str) -> String {
    fs::read_to_string(workspace_root().join("scenarios").join(name)).unwrap()
}

/// `faultline run FILE` with its own run directory and agent state; returns the run and the
/// run directory.
fn faultline_run(dir: &Path, file: &Path) -> (faultline_tests::Finished, PathBuf) {
    let out = dir.join("run");
    let finished = run_with(
        faultline()
            .arg("run")
            .arg(file)
            .arg("--out")
            .arg(&out)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--junit")
            .arg(dir.join("junit.xml"))
            .arg("--report")
            .arg(dir.join("report.md"))
            .args(["--seed", "7"]),
        RunOptions {
            deadline: Duration::from_secs(120),
            ..RunOptions::default()
        },
    );
    (finished, out)
}

#[test]
fn the_demo_scenario_fails_with_the_crash_and_the_leak_it_documents() {
    let dir = exec_tempdir();
    let file = scenario(dir.path(), "demo.yaml", &example("demo.yaml"));
    let (run, out) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    let junit = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    // The panic the partition brings out, symbolized from the stripped binary.
    let panic_line = marker_line(&demo_source(), "panic-site");
    let top = "faultline_demo::apply_discount at ";
    let failure = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"no_panics"))
        .unwrap_or_else(|| panic!("no no_panics testcase:\n{junit}"));
    assert!(failure.contains("<failure"), "{failure}");
    assert!(
        failure.contains(top) && failure.contains(&format!("main.rs:{panic_line}")),
        "{failure}"
    );
    assert!(
        failure.contains("discount 150% exceeds the price of order 42"),
        "{failure}"
    );
    // The goroutine leak, named by its own frame.
    let leak = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"no_leaks"))
        .unwrap();
    assert!(
        leak.contains("<failure") && leak.contains("main.audit"),
        "{leak}"
    );
    // The steady state before the faults held, and every revert was verified.
    for passing in ["probe_success checkout before", "every revert verified"] {
        let case = junit
            .split("<testcase")
            .find(|c| c.contains(&format!("name=\"{passing}")))
            .unwrap();
        assert!(!case.contains("<failure"), "{case}");
    }
    let report = fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        report.contains("Top frame of own code: **faultline_demo::apply_discount"),
        "{report}"
    );
    assert!(
        report.contains("| inventory-goroutines | **leaking** | main.audit"),
        "{report}"
    );
    // The raw material of a postmortem is in the run directory.
    let journal: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    assert_eq!(journal["exit_code"], 1);
    assert_eq!(journal["verdict"], "failed");
    let crashes = fs::read_dir(out.join("hosts/checkout/crashes"))
        .unwrap()
        .count();
    assert!(crashes >= 1);
    assert!(
        fs::read_dir(out.join("dumps/inventory-goroutines"))
            .unwrap()
            .count()
            >= 6
    );
    assert!(run.stdout.contains("FAILED"), "{}", run.context());

    // The HTML report, as a person sees it: rendered and read in a real browser.
    let page = render_in_browser(
        &out.join("report.html"),
        &test_output_dir().join("report-demo.png"),
        (1280, 2400),
    );
    assert!(page.console.is_empty(), "script errors: {:?}", page.console);
    assert!(
        page.remote_resources().is_empty(),
        "{:?}",
        page.remote_resources()
    );
    // A span per fault on the time axis, labelled with its kind, target and seconds.
    let faults = journal["faults"].as_array().unwrap();
    assert_eq!(page.count_class("fault-span"), faults.len(), "{}", page.dom);
    for f in faults {
        let kind = f["kind"].as_str().unwrap();
        let target = f["target"].as_str().unwrap();
        assert!(
            page.dom
                .contains(&format!("data-kind=\"{kind}\" data-target=\"{target}\"")),
            "no span of {kind} {target}"
        );
    }
    let partition = faults.iter().find(|f| f["kind"] == "partition").unwrap();
    let seconds = partition["ended"].as_f64().unwrap() - partition["started"].as_f64().unwrap();
    assert!(
        page.dom
            .contains(&format!(">partition checkout {seconds:.1}s</text>")),
        "the partition's label"
    );
    // Every probe sample is a point.
    for probe in journal["probes"].as_array().unwrap() {
        let name = probe["name"].as_str().unwrap();
        let samples = probe["samples"].as_array().unwrap().len();
        assert_eq!(
            page.dom
                .matches(&format!("data-probe=\"{name}\" cx="))
                .count(),
            samples,
            "probe points of {name}"
        );
    }
    // The leaking group's chart, and the crash once, as 2×.
    assert!(
        page.dom
            .contains("class=\"leak-chart\" data-group=\"inventory-goroutines: main.audit")
            && page.dom.contains("data-verdict=\"leaking\""),
        "no leak chart of main.audit"
    );
    assert!(
        page.dom
            .contains("<span class=\"count\">2×</span> crash record in checkout"),
        "the crash is not grouped as 2×"
    );
    assert!(page.dom.contains("first frame of your code"));
    // The panic machinery is folded: the first frame a reader sees unfolded is their own.
    let stack = page
        .dom
        .split("<div class=\"stack\">")
        .nth(1)
        .expect("a crash stack");
    let mut unfolded = String::new();
    for piece in stack.split("<details>") {
        unfolded.push_str(
            piece
                .split_once("</details>")
                .map_or(piece, |(_, after)| after),
        );
    }
    let first_shown = unfolded
        .split("<div class=\"frame")
        .nth(1)
        .expect("an unfolded frame");
    assert!(
        first_shown.starts_with(" own\">")
            && first_shown.contains("faultline_demo::apply_discount"),
        "{first_shown}"
    );
    assert!(page.count_class("crash-mark") >= 2, "crash marks");
    assert_eq!(page.count_class("flame"), 1, "the last dump's flame graph");
    assert!(
        page.dom.contains("class=\"diff\""),
        "the first-to-last diff"
    );
}

#[test]
fn the_ci_gate_passes_with_every_testcase_passing() {
    let dir = exec_tempdir();
    let file = scenario(dir.path(), "ci-gate.yaml", &example("ci-gate.yaml"));
    let (run, out) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(0), "{}", run.context());
    let junit = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        !junit.contains("<failure") && !junit.contains("<error"),
        "{junit}"
    );
    // One testcase per assertion, and the revert check.
    assert_eq!(junit.matches("<testcase").count(), 6, "{junit}");
    let journal: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    let faults = journal["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 4);
    // The partition bit: its table matched packets, and it is gone.
    let partition = faults.iter().find(|f| f["kind"] == "partition").unwrap();
    assert_eq!(partition["revert"], "verified");
    assert!(partition["packets"].as_u64().unwrap() > 0, "{partition}");
}

#[test]
fn a_service_that_does_not_recover_fails_with_the_evidence_in_junit() {
    let dir = exec_tempdir();
    let text = "\
name: no-recovery
lab:
  hosts:
    checkout:
      command: [../target/demo/image/faultline-demo, serve, --listen, '0.0.0.0:8080', --inventory, '10.77.0.99:1', --stale-after, '600']
      ready: { port: 8080 }
probes:
  health:
    http: { url: 'http://checkout:8080/health', within: 500ms }
    every: 200ms
steps:
  - wait: 1s
  - kill: { target: checkout, signal: KILL }
  - wait: 2s
assertions:
  - recovers: { probe: health, within: 1s }
";
    let file = scenario(dir.path(), "s.yaml", text);
    let (run, _) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    let junit = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let case = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"recovers health within 1s"))
        .unwrap_or_else(|| panic!("{junit}"));
    assert!(case.contains("<failure"), "{case}");
    assert!(case.contains("step 2 kill: never recovered"), "{case}");
}

#[test]
fn a_host_slow_to_be_ready_is_waited_for_aloud_then_named_with_exit_4() {
    let dir = exec_tempdir();
    let text = "\
name: slow-start
lab:
  hosts:
    slow:
      command: [sleep, '60']
      ready: { port: 8080, within: 6s }
steps:
  - wait: 1s
";
    let file = scenario(dir.path(), "s.yaml", text);
    let (run, _) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(4), "{}", run.context());
    // The wait says so every 5 s, then the error names the host, the port and its log.
    assert!(
        run.stderr
            .contains("setup lab: waiting for slow on port 8080 (5s of 6s)"),
        "{}",
        run.context()
    );
    assert!(
        run.stdout.contains(
            "host slow did not accept connections on port 8080 within 6s (it runs); \
             see its log in hosts/slow/"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn a_scenario_with_three_mistakes_exits_2_naming_each() {
    let dir = exec_tempdir();
    let text = "\
name: mistakes
lab:
  hosts:
    api: { command: [./api] }
steps:
  - partition: { target: api, peers: [dbb], for: 5s }
  - stress: { target: api, load: 50, for: 5 }
  - wait: 1s
    extra: true
";
    let file = scenario(dir.path(), "bad.yaml", text);
    let (run, _) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(2), "{}", run.context());
    for place in ["bad.yaml:6:39", "bad.yaml:7:43", "bad.yaml:8:5"] {
        assert!(run.stderr.contains(place), "{place}\n{}", run.context());
    }
    assert!(
        run.stderr.contains("3 problems (nothing was run)"),
        "{}",
        run.context()
    );
    assert!(
        !dir.path().join("run").exists(),
        "an invalid scenario must touch nothing"
    );
}

/// Every process whose ancestry leads to `root`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 2..];
            let ppid = after.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rfind(')').is_some_and(|i| !s[i..].starts_with(") Z")))
}

/// A lab of checkout and inventory with a partition and a stress in force for a minute.
const LONG_FAULTS: &str = "\
name: long-faults
lab:
  hosts:
    inventory:
      command: [../target/demo/image/inventory, -listen, ':6060']
      ready: { port: 6060 }
    checkout:
      command: [../target/demo/image/faultline-demo, serve, --listen, '0.0.0.0:8080', --inventory, '${hosts.inventory}:6060', --stale-after, '600']
      cpu: 0.5
      ready: { port: 8080 }
steps:
  - parallel:
      - partition: { target: checkout, peers: [inventory], for: 60s }
      - stress: { target: checkout, load: 50, for: 60s }
";

/// Starts `faultline run` on [`LONG_FAULTS`] and returns once both faults are in force, with
/// the run's guard, its pid and the stderr seen so far.
fn start_long_faults(dir: &Path) -> (ChildGuard, u32, String) {
    let file = scenario(dir, "long.yaml", LONG_FAULTS);
    let mut command = faultline();
    command
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("run"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(&mut command);
    let run_pid = guard.id();
    let stderr = guard.child_mut().stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut applied = 0;
    let mut log = String::new();
    while applied < 2 {
        let line = seen
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the faults were not applied:\n{log}"));
        if line.contains("fault: partition") || line.contains("fault: stress") {
            applied += 1;
        }
        log.push_str(&line);
        log.push('\n');
    }
    // Keep draining stderr so the run never blocks on a full pipe.
    std::thread::spawn(move || while seen.recv().is_ok() {});
    (guard, run_pid, log)
}

/// The lab cgroups of run `run_pid`.
fn lab_cgroups(run_pid: u32) -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup/cpu")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("faultline-lab-{run_pid}-"))
        })
        .collect()
}

/// Waits up to 2 s for every pid of `pids` to be gone; returns those still running.
fn still_running(pids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = pids.to_vec();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left.retain(|&pid| alive(pid));
    }
    left
}

#[test]
fn sigterm_stops_the_run_reverts_its_faults_and_tears_the_lab_down() {
    let dir = exec_tempdir();
    let (mut guard, run_pid, log) = start_long_faults(dir.path());
    let lab_processes = descendants(run_pid);
    assert!(lab_processes.len() >= 6, "{lab_processes:?}\n{log}");
    assert_eq!(lab_cgroups(run_pid).len(), 2);
    let status = Command::new("kill")
        .args(["-TERM", &run_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = guard.child_mut().wait().unwrap();
    assert_eq!(
        exited.code(),
        Some(4),
        "an interrupted run is an infrastructure error"
    );
    // Everything was undone by the run itself, not left for a sweep.
    let left = still_running(&lab_processes);
    assert!(left.is_empty(), "still running: {left:?}");
    assert!(
        lab_cgroups(run_pid).is_empty(),
        "{:?}",
        lab_cgroups(run_pid)
    );
    let journal: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("run/journal.json")).unwrap())
            .unwrap();
    assert_eq!(journal["verdict"], "infrastructure_error");
    assert!(
        journal["infrastructure_error"]
            .as_str()
            .unwrap()
            .contains("interrupted by signal 15"),
        "{journal:#}"
    );
    for fault in journal["faults"].as_array().unwrap() {
        assert_eq!(fault["revert"], "verified", "{fault}");
    }
    assert_eq!(journal["residue"], serde_json::json!([]));
}

#[test]
fn a_sigkilled_run_leaves_nothing_and_the_next_run_reports_the_residue() {
    let dir = exec_tempdir();
    let state = dir.path().join("state");
    let (mut guard, run_pid, log) = start_long_faults(dir.path());
    let lab_processes = descendants(run_pid);
    assert!(lab_processes.len() >= 6, "{lab_processes:?}\n{log}");
    let cgroups = lab_cgroups(run_pid);
    assert_eq!(cgroups.len(), 2, "{cgroups:?}");

    // SIGKILL: no revert, no teardown runs. The kernel takes it from here.
    sigkill(run_pid);
    let _ = guard.child_mut().wait();
    let left = still_running(&lab_processes);
    assert!(
        left.is_empty(),
        "still running 2 s after the SIGKILL: {left:?} (of {lab_processes:?})"
    );
    for cgroup in &cgroups {
        let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        assert!(procs.trim().is_empty(), "{}: {procs}", cgroup.display());
    }

    // The next run removes the cgroups and says so.
    let next = scenario(
        dir.path(),
        "next.yaml",
        "name: next\nsteps:\n  - wait: 100ms\n",
    );
    let out = dir.path().join("next");
    let finished = run_with(
        faultline()
            .arg("run")
            .arg(&next)
            .arg("--out")
            .arg(&out)
            .arg("--state-dir")
            .arg(&state),
        RunOptions::default(),
    );
    assert_eq!(finished.status.code(), Some(0), "{}", finished.context());
    let journal: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    let swept: Vec<String> = journal["swept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    for cgroup in &cgroups {
        assert!(!cgroup.exists(), "{} remains", cgroup.display());
        assert!(
            swept
                .iter()
                .any(|s| s.contains(&cgroup.display().to_string())),
            "{swept:?}"
        );
    }
    // The in-process agent's journal had the partition: its table went with its owner.
    assert!(
        swept
            .iter()
            .any(|s| s.contains("partition") && s.contains("gone")),
        "{swept:?}"
    );
}

/// SIGKILL to `pid` (a child this test started), with kill(1).
fn sigkill(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A billing service that never linked the SDK: it answers nothing, and a moment after it
/// starts it dereferences a null pointer in `charge_card`.
const BILLING: &str = r#"
#include <stdio.h>
#include <unistd.h>
volatile int sink;
__attribute__((noinline)) int charge_card(volatile int *card, int cents) {
    int balance = *card;
    sink = balance - cents;
    return sink;
}
__attribute__((noinline)) int settle(int n) {
    int r = charge_card(n > 100 ? &sink : 0, n);
    sink += r;
    return r;
}
int main(int argc, char **argv) {
    (void)argv;
    usleep(300000);
    printf("%d\n", settle(argc));
    return 0;
}
"#;

#[test]
fn a_lab_host_s_native_crash_without_the_sdk_fails_no_panics_with_a_symbolized_frame() {
    let dir = exec_tempdir();
    let unstripped = faultline_tests::CProgram::new(
        "billing",
        BILLING,
        "c0de0000000000000000000000000000000000b1",
    )
    .compile_flags(&["-O2", "-g"])
    .compile(dir.path());
    let debug = dir.path().join("billing.debug");
    split_debug(&unstripped, &debug);
    fs::create_dir(dir.path().join("image")).unwrap();
    strip_all(&unstripped, &dir.path().join("image/billing"));
    fs::remove_file(&unstripped).unwrap();
    run_ok(
        faultline()
            .args(["debug-store", "add", "--no-index"])
            .arg(&debug)
            .arg("--store")
            .arg(dir.path().join("store")),
    );
    let text = "\
name: native-crash
debug:
  dirs: [store]
lab:
  hosts:
    billing:
      command: [./image/billing]
steps:
  - wait: 2s
assertions:
  - no_panics: true
";
    let file = dir.path().join("s.yaml");
    fs::write(&file, text).unwrap();
    let (run, out) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    let junit = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let case = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"no_panics"))
        .unwrap_or_else(|| panic!("{junit}"));
    assert!(case.contains("<failure"), "{case}");
    let line = BILLING
        .lines()
        .position(|l| l.contains("int balance = *card;"))
        .unwrap()
        + 1;
    for expected in [
        "SIGSEGV (11) at address 0x0".to_owned(),
        "charge_card at ".to_owned(),
        format!("billing.c:{line}"),
    ] {
        assert!(case.contains(&expected), "{expected}\n{case}");
    }
    // The core was taken out of the scenario's directory, kept small beside the host's logs.
    assert!(!dir.path().join("core").exists());
    let kept: Vec<String> = fs::read_dir(out.join("hosts/billing/crashes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(kept.iter().any(|n| n.ends_with(".core")), "{kept:?}");
    assert!(kept.iter().any(|n| n.ends_with(".dmp")), "{kept:?}");
}

/// A Go service dying of a nil dereference a moment after it starts.
const GO_ORDERS: &str = r#"package main

import (
	"fmt"
	"time"
)

type order struct{ id int }

//go:noinline
func total(o *order) int { return o.id * 3 }

func main() {
	time.Sleep(300 * time.Millisecond)
	var o *order
	fmt.Println(total(o))
}
"#;

#[test]
fn a_go_host_with_gotraceback_crash_shows_its_goroutine_dump_and_its_core_s_native_frames() {
    let dir = exec_tempdir();
    let package = dir.path().join("src");
    fs::create_dir(&package).unwrap();
    fs::write(
        package.join("go.mod"),
        "module example.com/orders\n\ngo 1.19\n",
    )
    .unwrap();
    fs::write(package.join("main.go"), GO_ORDERS).unwrap();
    let go = go_toolchains()
        .iter()
        .find(|t| t.series == "go1.27")
        .expect("Go 1.27");
    let unstripped = dir.path().join("orders.full");
    go.build_with(&package, &["-ldflags=-B=gobuildid"], &[], &unstripped);
    fs::create_dir(dir.path().join("image")).unwrap();
    strip_all(&unstripped, &dir.path().join("image/orders"));
    run_ok(
        faultline()
            .args(["debug-store", "add", "--no-index"])
            .arg(&unstripped)
            .arg("--store")
            .arg(dir.path().join("store")),
    );
    let text = "\
name: go-native-crash
debug:
  dirs: [store]
lab:
  hosts:
    orders:
      command: [./image/orders]
      env: { GOTRACEBACK: crash }
steps:
  - wait: 2s
assertions:
  - no_panics: true
";
    let file = dir.path().join("s.yaml");
    fs::write(&file, text).unwrap();
    let (run, _) = faultline_run(dir.path(), &file);
    assert_eq!(run.status.code(), Some(1), "{}", run.context());
    let junit = fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let case = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"no_panics"))
        .unwrap_or_else(|| panic!("{junit}"));
    // Both views of the one crash, side by side: the runtime's goroutine dump from stderr,
    // and the crashing thread's native frames from the core (SIGABRT, as the runtime aborts).
    for expected in [
        "2 crash(es):",
        "[orders] go panic",
        "[orders] native crash",
        "SIGABRT (6)",
        // The native crash's first frame past the runtime's abort machinery.
        "in orders&quot; at main.total at ",
        "nil pointer dereference&quot; at main.total at ",
    ] {
        assert!(case.contains(expected), "{expected}\n{case}");
    }
}
