//! Panics and dumps inside logs as log platforms keep them: real Go output (the committed
//! Go 1.19 and Go 1.27 fixtures, and a panic with a 40 KB message printed now) written through
//! Docker's json-file shape (lines split into 16 KiB entries, as Docker splits them) and a
//! JSON-lines export with two containers interleaved. What faultline reads from them must be
//! what it reads from the raw text, goroutine by goroutine.

use std::process::Command;

use faultline_dump::json_lines::LogFields;
use faultline_dump::{Dump, Limits, Task, parse, parse_all, parse_log};
use faultline_tests::go_toolchains;

/// Docker's json-file driver: one entry per line of the text, a line longer than 16 KiB in
/// several entries of which only the last ends with a newline; escapes as Go's encoder
/// writes them (`\n`, `\t`, `\"`, `\\`, `\u003c`…).
fn docker_json_file(text: &str, stream: &str) -> String {
    const MAX: usize = 16 * 1024;
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let with_newline = format!("{line}\n");
        let mut rest = with_newline.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(MAX);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (entry, after) = rest.split_at(cut);
            out.push_str(&format!(
                "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"2026-11-28T10:00:{:02}.{:09}Z\"}}\n",
                json_string(entry),
                i / 1_000_000 % 60,
                i % 1_000_000_000
            ));
            rest = after;
        }
    }
    out
}

fn json_string(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// What must agree: every goroutine, its state, wait, frames and creator.
fn tasks(dump: &Dump) -> Vec<&Task> {
    dump.tasks.iter().collect()
}

fn same(raw: &Dump, logged: &Dump, what: &str) {
    assert_eq!(tasks(raw), tasks(logged), "{what}: the goroutines");
    assert_eq!(raw.crash, logged.crash, "{what}: the crash");
    assert_eq!(raw.system_stacks, logged.system_stacks, "{what}");
    assert!(
        logged.diagnostics.is_empty(),
        "{what}: {:?}",
        logged.diagnostics
    );
}

fn fixture(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/go")
            .join(path),
    )
    .unwrap()
}

#[test]
fn docker_json_file_logs_read_as_the_raw_text() {
    for version in ["go1.19", "go1.27"] {
        for name in [
            "panic-all.txt",
            "sigquit-crash.txt",
            "goroutine-debug2.txt",
            "fault-nilptr.txt",
        ] {
            let what = format!("{version}/{name}");
            let raw_text = fixture(&format!("{version}/default/{name}"));
            let raw = parse(raw_text.as_bytes(), &Limits::default()).unwrap();
            let log = docker_json_file(&raw_text, "stderr");
            let logged = parse(log.as_bytes(), &Limits::default()).unwrap();
            same(&raw, &logged, &what);
            // The dump's time is its first line's entry's.
            assert!(
                logged
                    .captured_at
                    .as_deref()
                    .unwrap()
                    .starts_with("2026-11-28T10:00:"),
                "{what}: {:?}",
                logged.captured_at
            );
        }
    }
}

#[test]
fn a_line_longer_than_an_entry_is_joined_again() {
    for go in go_toolchains() {
        let what = format!("{}: long-panic", go.series);
        let (text, _) = super::forms::output(
            Command::new(super::forms::forms(go, &[]))
                .args(["-mode", "long-panic"])
                .env("GOTRACEBACK", "all"),
        );
        let raw = parse(text.as_bytes(), &Limits::default()).unwrap();
        let message = &raw.crash.as_ref().unwrap().message;
        assert!(message.len() > 40_000, "{what}");
        let log = docker_json_file(&text, "stderr");
        // Docker's shape: the panic line is in three entries, only the last one ends it.
        assert!(
            log.lines()
                .any(|l| l.len() > 16 * 1024 && !l.contains("\\n\"")),
            "{what}: no partial entry"
        );
        let logged = parse(log.as_bytes(), &Limits::default()).unwrap();
        same(&raw, &logged, &what);
    }
}

#[test]
fn two_containers_interleaved_in_an_export_are_kept_apart() {
    let a_text = fixture("go1.19/default/panic-all.txt");
    let b_text = fixture("go1.27/default/panic-all.txt");
    let entry = |pod: &str, line: &str, i: usize| {
        format!(
            "{{\"@timestamp\":\"2026-11-28T10:00:{:02}.{:03}Z\",\"message\":{},\"kubernetes\":{{\"pod_name\":\"{pod}\",\"namespace\":\"shop\"}}}}\n",
            i / 1000 % 60,
            i % 1000,
            json_string(line)
        )
    };
    // One entry per line, the two pods' lines taking turns.
    let (a, b): (Vec<&str>, Vec<&str>) = (a_text.lines().collect(), b_text.lines().collect());
    let mut export = String::new();
    for i in 0..a.len().max(b.len()) {
        if let Some(line) = a.get(i) {
            export.push_str(&entry("inventory-a", line, 2 * i));
        }
        if let Some(line) = b.get(i) {
            export.push_str(&entry("inventory-b", line, 2 * i + 1));
        }
    }
    let fields = LogFields {
        text: None,
        key: Some("kubernetes.pod_name".into()),
    };
    let dumps = parse_log(export.as_bytes(), &Limits::default(), &fields).unwrap();
    assert_eq!(dumps.len(), 2, "{dumps:#?}");
    assert_eq!(dumps[0].stream.as_deref(), Some("inventory-a"));
    assert_eq!(dumps[1].stream.as_deref(), Some("inventory-b"));
    let raw_a = parse(a_text.as_bytes(), &Limits::default()).unwrap();
    let raw_b = parse(b_text.as_bytes(), &Limits::default()).unwrap();
    same(&raw_a, &dumps[0], "inventory-a");
    same(&raw_b, &dumps[1], "inventory-b");
    assert_eq!(
        dumps[0].captured_at.as_deref(),
        Some("2026-11-28T10:00:00.000Z")
    );
    assert_eq!(
        dumps[1].captured_at.as_deref(),
        Some("2026-11-28T10:00:00.001Z")
    );
    // Read without the key, the two would interleave into one text: not one pod's dump.
    let merged = parse_all(export.as_bytes(), &Limits::default()).unwrap();
    assert!(merged.iter().all(|d| tasks(d) != tasks(&raw_a)));
}
