//! `faultline analyze` and `faultline run` on the Go crash forms of
//! `tests/targets/go/forms`, printed for real: race reports (`races[]`, and the `no_races`
//! assertion of a run whose service was built with `-race`), and a `go test` output that holds
//! a child's traceback before the test binary's own (one document per dump).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_tests::{
    RunOptions, exec_tempdir, go_toolchains, run, run_with, target_dir, workspace_root,
};
use serde_json::Value;

use crate::faultline;

fn forms_dir() -> PathBuf {
    workspace_root().join("tests/targets/go/forms")
}

/// `forms` built by Go 1.27 with the race detector.
fn racer() -> PathBuf {
    let go = go_toolchains().last().unwrap();
    let output = target_dir().join("go-targets").join("forms-cli-race");
    go.build_with(&forms_dir(), &["-race"], &[("CGO_ENABLED", "1")], &output);
    output
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_race_report_is_read_grouped_and_shown() {
    let dir = exec_tempdir();
    let ran = run_with(
        Command::new(racer()).args(["-mode", "race"]),
        RunOptions::default(),
    );
    assert_eq!(ran.code(), Some(66), "{}", ran.context());
    let file = write(dir.path(), "race.log", &ran.stderr);
    let json = run(faultline().args(["analyze", "--format", "json"]).arg(&file)).assert_success();
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let races = doc["races"].as_array().unwrap();
    assert_eq!(races.len(), 1, "{doc:#}");
    let race = &races[0];
    // The map's header and its slot: two reports of the same two writes, one group.
    let count = race["count"].as_u64().unwrap();
    assert!(count >= 1);
    assert_eq!(race["lines"].as_array().unwrap().len() as u64, count);
    let accesses = race["accesses"].as_array().unwrap();
    assert_eq!(accesses[0]["kind"], "Write");
    assert_eq!(accesses[1]["kind"], "Previous write");
    assert!(accesses[0]["goroutine"].is_number());
    assert!(
        accesses[0]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["function"] == "main.store"),
        "{race:#}"
    );
    assert_eq!(race["goroutines"].as_array().unwrap().len(), 2);
    assert_eq!(doc["task_count"], 0);
    let text = run(faultline().arg("analyze").arg(&file)).assert_success();
    assert!(
        text.stdout
            .contains(&format!("{count} data race reports, 1 distinct")),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("DATA RACE"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("main.store  <- first frame of your code"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_go_test_output_with_a_childs_traceback_is_two_documents() {
    let go = go_toolchains().last().unwrap();
    let dir = exec_tempdir();
    let mut command = go.command();
    command.current_dir(forms_dir()).args([
        "test",
        "-v",
        "-run",
        "TestChildQuit",
        "-timeout",
        "3s",
        "-count",
        "1",
        ".",
    ]);
    let ran = run_with(&mut command, RunOptions::default());
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    let file = write(
        dir.path(),
        "go-test.log",
        &format!("{}{}", ran.stdout, ran.stderr),
    );
    let json = run(faultline().args(["analyze", "--format", "json"]).arg(&file)).assert_success();
    let docs: Value = serde_json::from_str(&json.stdout).unwrap();
    let docs = docs
        .as_array()
        .unwrap_or_else(|| panic!("not one document per dump: {docs:#}"));
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["quoted"], true);
    assert_eq!(docs[0]["crash"]["kind"], "SIGQUIT");
    assert_eq!(docs[1]["quoted"], false);
    assert_eq!(docs[1]["crash"]["kind"], "panic");
    assert!(
        docs.iter()
            .all(|d| d["diagnostics"].as_array().unwrap().is_empty())
    );
    let text = run(faultline().arg("analyze").arg(&file)).assert_success();
    assert!(
        text.stdout
            .contains("(dump 1 of 2, quoted in the output around it)"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("(dump 2 of 2)"), "{}", text.stdout);
}

#[test]
fn a_run_fails_no_races_on_a_race_in_a_hosts_log_and_not_no_panics() {
    let dir = exec_tempdir();
    let file = write(
        dir.path(),
        "races.yaml",
        &format!(
            "name: races\n\
             lab:\n  hosts:\n    racer:\n      command: [{}, -mode, race-then-wait]\n\
             steps:\n  - wait: 2s\n\
             assertions:\n  - no_races: [racer]\n  - no_panics: [racer]\n",
            racer().display()
        ),
    );
    let out = dir.path().join("run");
    let ran = run_with(
        faultline()
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .arg("--state-dir")
            .arg(dir.path().join("state")),
        RunOptions {
            deadline: std::time::Duration::from_secs(120),
            ..RunOptions::default()
        },
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.context());
    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    let case = |name: &str| {
        junit
            .split("<testcase")
            .find(|c| c.contains(&format!("name=\"{name}")))
            .unwrap_or_else(|| panic!("no {name} testcase:\n{junit}"))
            .to_owned()
    };
    let races = case("no_races");
    assert!(
        races.contains("<failure") && races.contains("data race"),
        "{races}"
    );
    assert!(races.contains("main.store"), "{races}");
    assert!(!case("no_panics").contains("<failure"), "{junit}");
    let journal: Value =
        serde_json::from_str(&fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    assert_eq!(
        journal["races"].as_array().unwrap().len(),
        1,
        "{:#}",
        journal["races"]
    );
    assert_eq!(journal["races"][0]["kind"], "go data race");
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Data races"), "{report}");
}
