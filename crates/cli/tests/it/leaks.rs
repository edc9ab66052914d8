//! `faultline leaks` against the evaluation corpus (`tests/targets/go/leaky`): ten real Go
//! workloads with known ground truth, each sampled live once a second through net/http/pprof,
//! all at once. Every leak must be named (by a frame of its stack), and nothing else may be
//! called leaking. The table this prints (`--nocapture`) is the one in docs/leaks.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use faultline_tests::{
    ChildGuard, GoBuild, RunOptions, exec_tempdir, go_toolchains, run, run_with, target_dir,
    wait_until, workspace_root,
};
use serde_json::Value;

use crate::faultline;

/// One workload and what must come out.
struct Case {
    workload: &'static str,
    extra: &'static [&'static str],
    /// Functions that must each appear in the stack of a `leaking` group; empty: no leak.
    leaks: &'static [&'static str],
    /// Stop at the first leaking verdict, and require it within this many samples.
    detect_within: Option<u64>,
}

const CASES: &[Case] = &[
    Case {
        workload: "steady-leak",
        extra: &[],
        leaks: &["main.leakOrder"],
        detect_within: Some(30),
    },
    Case {
        workload: "slow-leak",
        extra: &[],
        leaks: &["main.leakSlowly"],
        detect_within: Some(60),
    },
    Case {
        workload: "late-leak",
        extra: &["-quiet", "20s"],
        leaks: &["main.leakLate"],
        detect_within: Some(60),
    },
    Case {
        workload: "two-leaks",
        extra: &[],
        leaks: &["main.leakCache", "main.leakSession"],
        detect_within: None,
    },
    Case {
        workload: "hidden-leak",
        extra: &[],
        leaks: &["main.leakyRetry"],
        detect_within: Some(30),
    },
    Case {
        workload: "burst-drain",
        extra: &[],
        leaks: &[],
        detect_within: None,
    },
    Case {
        workload: "batch",
        extra: &[],
        leaks: &[],
        detect_within: None,
    },
    Case {
        workload: "pool-cap",
        extra: &[],
        leaks: &[],
        detect_within: None,
    },
    Case {
        workload: "constant",
        extra: &[],
        leaks: &[],
        detect_within: None,
    },
    Case {
        workload: "noisy",
        extra: &[],
        leaks: &[],
        detect_within: None,
    },
];

/// Samples per workload at most (one a second).
const SAMPLES: u64 = 61;

/// The corpus built once per Go series: `[Go 1.19, Go 1.27]` as `go_toolchains` lists them.
fn leaky(toolchain: usize) -> &'static Path {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[toolchain].get_or_init(|| {
        let go = &go_toolchains()[toolchain];
        let output = target_dir()
            .join("go-targets")
            .join(format!("leaky-{}", go.series));
        go.build(
            &workspace_root().join("tests/targets/go/leaky"),
            GoBuild::Default,
            &output,
        );
        output
    })
}

/// A running workload on a free port.
fn start(binary: &Path, case: &Case, dir: &Path) -> (ChildGuard, String) {
    let out = dir.join(format!("{}.out", case.workload));
    let mut guard = ChildGuard::spawn(
        Command::new(binary)
            .args(["-workload", case.workload])
            .args(case.extra)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(Stdio::null()),
    );
    let mut addr = None;
    let ok = wait_until(Instant::now() + Duration::from_secs(30), || {
        addr = fs::read_to_string(&out).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        });
        addr.is_some() || guard.has_exited()
    });
    let addr = addr
        .filter(|_| ok)
        .unwrap_or_else(|| panic!("{} did not start", case.workload));
    (guard, addr)
}

/// The functions of every `leaking` group's stack, one list per group.
fn leaking_stacks(doc: &Value) -> Vec<Vec<String>> {
    doc["groups"]
        .as_array()
        .unwrap()
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

#[test]
fn the_corpus_leaks_where_it_should_and_nowhere_else() {
    let dir = exec_tempdir();
    // Half the workloads on each Go series, so both runtimes' dumps are read live.
    let runs: Vec<_> = CASES
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let toolchain = i % go_toolchains().len().min(2);
            let (guard, addr) = start(leaky(toolchain), case, dir.path());
            (case, toolchain, guard, addr)
        })
        .collect();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(case, _, _, addr)| {
                scope.spawn(move || {
                    let mut command = faultline();
                    command
                        .args(["leaks", "--format", "json", "--every", "1s", "--for"])
                        .arg(format!("{}s", SAMPLES - 1))
                        .arg("--scrape")
                        .arg(format!("http://{addr}/debug/pprof/goroutine?debug=2"));
                    if case.detect_within.is_some() {
                        command.arg("--until-verdict");
                    }
                    run_with(
                        &mut command,
                        RunOptions {
                            deadline: Duration::from_secs(300),
                            ..RunOptions::default()
                        },
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut table = String::from(
        "| workload | Go | leaks (truth) | leaking groups found | true positives | false positives | samples |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for ((case, toolchain, _, _), ran) in runs.iter().zip(&results) {
        let doc: Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", case.workload, ran.context()));
        let stacks = leaking_stacks(&doc);
        let found = |function: &str| stacks.iter().any(|s| s.iter().any(|f| f == function));
        let true_positives = case.leaks.iter().filter(|f| found(f)).count();
        let false_positives = stacks
            .iter()
            .filter(|s| !case.leaks.iter().any(|l| s.iter().any(|f| f == l)))
            .count();
        let samples = doc["samples"].as_u64().unwrap();
        table += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            case.workload,
            go_toolchains()[*toolchain].series,
            if case.leaks.is_empty() {
                "none".to_owned()
            } else {
                case.leaks.join(", ")
            },
            stacks.len(),
            true_positives,
            false_positives,
            samples
        );
        let expected_code = if case.leaks.is_empty() { 0 } else { 4 };
        if ran.code() != Some(expected_code) {
            failures.push(format!("{}: exit {:?}", case.workload, ran.code()));
        }
        if true_positives != case.leaks.len() || false_positives > 0 {
            failures.push(format!(
                "{}: expected leaks {:?}, leaking stacks {stacks:?}",
                case.workload, case.leaks
            ));
        }
        if let Some(within) = case.detect_within
            && samples > within
        {
            failures.push(format!(
                "{}: detected after {samples} samples, wanted {within} at most",
                case.workload
            ));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}\n{table}");
}

#[test]
fn saved_dumps_give_the_same_verdict_later() {
    let dir = exec_tempdir();
    let case = &CASES[0];
    let (_guard, addr) = start(leaky(0), case, dir.path());
    let saved = dir.path().join("saved");
    // Not --until-verdict: stopping at the very sample that tips the verdict would leave a
    // series on the threshold, where the files' modification times (a few ms off the sample
    // times) could tip it back.
    let ran = run(faultline()
        .args(["leaks", "--every", "1s", "--for", "15s", "--save"])
        .arg(&saved)
        .arg("--scrape")
        .arg(format!("http://{addr}/debug/pprof/goroutine?debug=2")))
    .assert_code(4);
    assert!(ran.stdout.contains("LEAKING"), "{}", ran.context());
    assert!(
        ran.stdout
            .contains("main.leakOrder  <- first frame of your code"),
        "{}",
        ran.stdout
    );
    let mut files: Vec<PathBuf> = fs::read_dir(&saved)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    assert!(files[0].ends_with("sample-0001.txt"), "{files:?}");

    // The postmortem: the same files, timed by their modification times.
    let later = run(faultline().args(["leaks", "--format", "json"]).args(&files)).assert_code(4);
    let doc: Value = serde_json::from_str(&later.stdout).unwrap();
    assert_eq!(doc["samples"].as_u64().unwrap(), files.len() as u64);
    let stacks = leaking_stacks(&doc);
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert!(stacks[0].iter().any(|f| f == "main.leakOrder"));
    let group = &doc["groups"][0];
    for field in ["slope_per_min", "p_value", "count_first", "count_last"] {
        assert!(group[field].is_number(), "{field}: {group}");
    }
    // Go's debug=2 dump starts at the parked function (the runtime's frames are hidden).
    assert_eq!(group["frames"][0]["function"], "main.leakOrder");
    assert!(group["frames"][0]["line"].is_number());

    // With --interval the order given is the order taken; one dump is not a series.
    run(faultline().args(["leaks", "--interval", "1s"]).args(&files)).assert_code(4);
    let one = run(faultline().args(["leaks"]).arg(&files[0])).assert_code(2);
    assert!(
        one.stderr.contains("at least two dumps"),
        "{}",
        one.context()
    );
}

#[test]
fn dumps_with_the_same_time_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let text = "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d\n";
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    fs::write(&a, text).unwrap();
    fs::write(&b, text).unwrap();
    let when = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for file in [&a, &b] {
        fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let ran = run(faultline().arg("leaks").arg(&a).arg(&b)).assert_code(2);
    assert!(ran.stderr.contains("same time"), "{}", ran.context());
    assert!(ran.stderr.contains("--interval"), "{}", ran.context());
    // Spaced explicitly, two identical dumps are simply stable.
    let ran = run(faultline()
        .args(["leaks", "--interval", "30s"])
        .arg(&a)
        .arg(&b))
    .assert_code(0);
    assert!(ran.stdout.contains("0 leaking"), "{}", ran.stdout);
}
