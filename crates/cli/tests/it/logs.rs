//! `faultline analyze` and `faultline leaks` on logs as log platforms keep them: Docker's
//! json-file shape and JSON-lines exports, holding real Go output (the committed Go 1.19 and
//! 1.27 fixtures of faultline-dump).

use std::fs;
use std::path::{Path, PathBuf};

use faultline_tests::{run, workspace_root};
use serde_json::Value;

use crate::faultline;

fn fixture(path: &str) -> String {
    fs::read_to_string(
        workspace_root()
            .join("crates/dump/tests/fixtures/go")
            .join(path),
    )
    .unwrap()
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Docker's json-file: one entry per line, each ending with a newline.
fn docker(text: &str, second: u32) -> String {
    text.lines()
        .map(|line| {
            format!(
                "{{\"log\":{},\"stream\":\"stderr\",\"time\":\"2026-11-28T10:{:02}:{:02}.000000000Z\"}}\n",
                json_string(&format!("{line}\n")),
                second / 60,
                second % 60
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn analyze_json(file: &Path, extra: &[&str]) -> Value {
    let ran = run(faultline()
        .args(["analyze", "--format", "json"])
        .args(extra)
        .arg(file))
    .assert_success();
    serde_json::from_str(&ran.stdout).unwrap()
}

#[test]
fn a_docker_json_file_log_reads_as_its_raw_text() {
    let dir = tempfile::tempdir().unwrap();
    for version in ["go1.19", "go1.27"] {
        let raw_text = fixture(&format!("{version}/default/panic-all.txt"));
        let raw = write(dir.path(), &format!("{version}.txt"), &raw_text);
        let log = write(
            dir.path(),
            &format!("{version}-json.log"),
            &docker(&raw_text, 7),
        );
        let (raw, logged) = (analyze_json(&raw, &[]), analyze_json(&log, &[]));
        assert_eq!(raw["groups"], logged["groups"], "{version}");
        assert_eq!(raw["crash"], logged["crash"], "{version}");
        assert_eq!(logged["diagnostics"], serde_json::json!([]));
        assert_eq!(logged["captured_at"], "2026-11-28T10:00:07.000000000Z");
    }
}

#[test]
fn exported_dumps_go_to_leaks_timed_by_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    // Six exports of a goroutine dump, 30 s apart by their entries (the files all written
    // now), a group growing by 4 each time.
    let mut files = Vec::new();
    for i in 0..6u32 {
        let mut text =
            String::from("goroutine 1 [running]:\nmain.main()\n\t/app/main.go:10 +0x1d\n\n");
        for id in 0..(3 + 4 * i) {
            text.push_str(&format!(
                "goroutine {} [chan receive]:\nmain.leak()\n\t/app/main.go:42 +0x2a\n\
                 created by main.main in goroutine 1\n\t/app/main.go:12 +0x3b\n\n",
                100 + id
            ));
        }
        let export: String = text
            .lines()
            .map(|l| {
                format!(
                    "{{\"@timestamp\":\"2026-11-28T10:{:02}:{:02}Z\",\"message\":{}}}\n",
                    i * 30 / 60,
                    i * 30 % 60,
                    json_string(l)
                )
            })
            .collect();
        files.push(write(dir.path(), &format!("export-{i}.json"), &export));
    }
    let ran = run(faultline()
        .args(["leaks", "--format", "json", "--min-growth", "5"])
        .args(&files))
    .assert_code(4);
    let doc: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["seconds"], 150.0, "{doc:#}");
    let leak = &doc["groups"][0];
    assert_eq!(leak["verdict"], "leaking", "{leak:#}");
    assert_eq!(leak["frames"][0]["function"], "main.leak");
}

#[test]
fn fields_and_keys_can_be_named_and_other_json_is_named_for_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let raw_text = fixture("go1.27/default/panic.txt");
    let body: String = raw_text
        .lines()
        .map(|l| {
            format!(
                "{{\"body\":{},\"pod\":{{\"name\":\"checkout-1\"}}}}\n",
                json_string(l)
            )
        })
        .collect();
    let file = write(dir.path(), "body.jsonl", &body);
    // Without --log-field the text field is not one of the usual ones: not a log.
    let refused = run(faultline().arg("analyze").arg(&file)).assert_code(2);
    assert!(
        refused.stderr.contains("its keys: body, pod"),
        "{}",
        refused.context()
    );
    assert!(
        refused.stderr.contains("--log-field"),
        "{}",
        refused.context()
    );
    let doc = analyze_json(&file, &["--log-field", "body", "--log-key", "pod.name"]);
    assert_eq!(doc["stream"], "checkout-1");
    assert_eq!(doc["crash"]["kind"], "panic");
    // A crash record with a wrong format keeps its own message.
    let record = write(
        dir.path(),
        "record.json",
        "{\"format\": \"nope\", \"version\": 1}",
    );
    let wrong = run(faultline().arg("analyze").arg(&record)).assert_code(2);
    assert!(
        wrong
            .stderr
            .contains("not a faultline crash record: `format`"),
        "{}",
        wrong.context()
    );
}
