//! `faultline analyze` on real Go goroutine dumps (the faultline-dump fixtures, made by
//! scripts/go-fixtures.sh with Go 1.19 and 1.27): groups, JSON, `--diff`, and a dump fetched
//! from a URL.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use faultline_tests::run;
use serde_json::Value;

use super::{exit, faultline};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dump/tests/fixtures/go")
        .join(path)
}

#[test]
fn groups_a_goroutine_dump_largest_first() {
    let out = run(faultline()
        .arg("analyze")
        .arg(fixture("go1.27/default/goroutine-debug2.txt")))
    .assert_code(exit::OK);
    let text = &out.stdout;
    assert!(text.contains("35 go tasks in 13 groups"), "{text}");
    let first_group = text.split("\n\n").nth(1).unwrap_or_default();
    assert!(
        first_group.contains("7 × [chan receive]")
            && first_group.contains("main.waitOnChannel")
            && first_group.contains("<- first frame of your code")
            && first_group.contains("created by main.main.func1"),
        "{first_group}"
    );

    let json: Value = serde_json::from_str(
        &run(faultline()
            .args(["analyze", "--format", "json"])
            .arg(fixture("go1.19/stripped/goroutine-debug2.txt")))
        .assert_code(exit::OK)
        .stdout,
    )
    .unwrap();
    assert_eq!(json["task_count"], 35);
    let groups = json["groups"].as_array().unwrap();
    assert_eq!(groups[0]["count"], 7);
    assert_eq!(groups[0]["state"], "chan receive");
    let own = groups[0]["own_frame"].as_u64().unwrap() as usize;
    assert_eq!(groups[0]["frames"][own]["function"], "main.waitOnChannel");
    assert!(groups[0]["frames"][own]["line"].as_u64().is_some());
    let semacquire: u64 = groups
        .iter()
        .filter(|g| g["state"] == "semacquire")
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(semacquire, 5, "4 on the mutex and the spawner, on Go 1.19");

    // Grouped by the innermost own frame only: the two deep goroutines and the seven on the
    // channel stay apart, the seven sleepers together.
    let json: Value = serde_json::from_str(
        &run(faultline()
            .args(["analyze", "--format", "json", "--level", "own:1"])
            .arg(fixture("go1.27/default/sigquit-crash.txt")))
        .assert_code(exit::OK)
        .stdout,
    )
    .unwrap();
    assert_eq!(json["crash"]["kind"], "SIGQUIT");
    assert!(
        json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["count"] == 6
                && g["frames"][g["own_frame"].as_u64().unwrap() as usize]["function"]
                    == "main.sleepForever")
    );
}

#[test]
fn diff_names_the_group_that_grew() {
    let dir = tempfile::tempdir().unwrap();
    let before = fixture("go1.27/default/goroutine-debug2.txt");
    let text = std::fs::read_to_string(&before).unwrap();
    // "Later": three more goroutines blocked in main.readForever.
    let block = text
        .split("\n\n")
        .find(|b| b.contains("main.readForever"))
        .unwrap()
        .to_owned();
    // Each with an id of its own: an id a dump already has starts another dump.
    let copy = |id: u64| {
        let (header, rest) = block.split_once(" [").unwrap();
        assert!(header.starts_with("goroutine "), "{header}");
        format!("goroutine {id} [{rest}")
    };
    let later = format!(
        "{text}\n\n{}\n\n{}\n\n{}\n",
        copy(9001),
        copy(9002),
        copy(9003)
    );
    let after = dir.path().join("later.txt");
    std::fs::write(&after, later).unwrap();

    let out = run(faultline()
        .args(["analyze", "--diff"])
        .arg(&before)
        .arg(&after))
    .assert_code(exit::OK);
    assert!(out.stdout.contains("35 → 38 tasks"), "{}", out.stdout);
    let first = out.stdout.split("\n\n").nth(1).unwrap_or_default();
    assert!(
        first.contains("grew") && first.contains("(+3)") && first.contains("main.readForever"),
        "{}",
        out.stdout
    );

    let json: Value = serde_json::from_str(
        &run(faultline()
            .args(["analyze", "--format", "json", "--diff"])
            .arg(&before)
            .arg(&after))
        .assert_code(exit::OK)
        .stdout,
    )
    .unwrap();
    assert_eq!(json["changes"][0]["change"], "grew");
    assert_eq!(json["changes"][0]["before"], 3);
    assert_eq!(json["changes"][0]["after"], 6);
}

#[test]
fn reads_a_dump_from_a_url_once() {
    let body = std::fs::read(fixture("go1.19/default/goroutine-debug0.pb.gz")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // One connection, one answer: the URL is fetched exactly once.
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap();
        let request = String::from_utf8_lossy(&request[..n]).into_owned();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        request
    });
    let url = format!("http://127.0.0.1:{port}/debug/pprof/goroutine?debug=0");
    let out = run(faultline().args(["analyze", "--format", "json", &url])).assert_code(exit::OK);
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /debug/pprof/goroutine?debug=0 HTTP/1.1"),
        "{request}"
    );
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["format"], "go_pprof_proto");
    assert_eq!(json["task_count"], 35);

    // Nothing listening: a failure (exit 1) that names the URL.
    let gone = format!("http://127.0.0.1:{port}/debug/pprof/goroutine?debug=2");
    let out = run(faultline().args(["analyze", &gone])).assert_code(1);
    assert!(out.stderr.contains(&gone), "{}", out.stderr);
}

#[test]
fn draws_a_flame_graph_of_a_dump() {
    let out = run(faultline()
        .args(["analyze", "--format", "svg"])
        .arg(fixture("go1.19/default/goroutine-debug2.txt")))
    .assert_code(exit::OK);
    let svg = &out.stdout;
    assert!(
        svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"),
        "not an SVG"
    );
    assert!(
        svg.contains("35 go tasks"),
        "the title counts the goroutines"
    );
    for function in ["main.waitOnChannel", "main.sleepForever", "main.lockMutex"] {
        assert!(
            svg.contains(function),
            "{function} missing from the flame graph"
        );
    }
    // The 7 goroutines on the channel are one frame 7 tasks wide.
    assert!(
        svg.contains("main.waitOnChannel (7 tasks"),
        "widths by task count"
    );

    // Several dumps are not one picture.
    let out = run(faultline()
        .args(["analyze", "--format", "svg"])
        .arg(fixture("go1.19/default/goroutine-debug2.txt"))
        .arg(fixture("go1.27/default/goroutine-debug2.txt")))
    .assert_code(exit::BAD_INPUT);
    assert!(out.stderr.contains("give one FILE"), "{}", out.stderr);
}

/// The human and JSON reports of real dumps, as snapshots (crates/cli/tests/it/snapshots/): a
/// change to what users read shows up in review. Run from the fixtures' directory with relative
/// paths, so nothing in them depends on where the checkout is; ids, addresses and paths come
/// from the committed fixture files and so are stable.
#[test]
fn reports_match_their_snapshots() {
    let root = fixture("");
    for (name, file, level) in [
        (
            "go119_debug2",
            "go1.19/default/goroutine-debug2.txt",
            "functions",
        ),
        (
            "go127_sigquit_crash_own",
            "go1.27/default/sigquit-crash.txt",
            "own:1",
        ),
        (
            "go127_debug1",
            "go1.27/stripped/goroutine-debug1.txt",
            "functions",
        ),
        ("rust_backtrace", "../rust/panic-backtrace.txt", "functions"),
    ] {
        for format in ["human", "json"] {
            let out = run(faultline()
                .current_dir(&root)
                .args(["analyze", "--format", format, "--level", level, file]))
            .assert_code(exit::OK);
            insta::assert_snapshot!(format!("{name}_{format}"), out.stdout);
        }
    }
}

#[test]
fn html_pages_of_a_dump_a_diff_and_a_series_read_in_a_real_browser() {
    use faultline_tests::{render_in_browser, test_output_dir};
    let dir = tempfile::tempdir().unwrap();
    let dump = fixture("go1.27/default/goroutine-debug2.txt");
    let json: Value = serde_json::from_str(
        &run(faultline().args(["analyze", "--format", "json"]).arg(&dump))
            .assert_code(exit::OK)
            .stdout,
    )
    .unwrap();
    let groups = json["groups"].as_array().unwrap().len();

    // One dump: its groups with their stacks, and its flame graph.
    let page = dir.path().join("analyze.html");
    let html =
        run(faultline().args(["analyze", "--format", "html"]).arg(&dump)).assert_code(exit::OK);
    std::fs::write(&page, &html.stdout).unwrap();
    let shown = render_in_browser(&page, &test_output_dir().join("analyze.png"), (1280, 1600));
    assert!(shown.console.is_empty(), "{:?}", shown.console);
    assert!(
        shown.remote_resources().is_empty(),
        "{:?}",
        shown.remote_resources()
    );
    assert_eq!(shown.count_class("group"), groups);
    assert_eq!(shown.count_class("flame"), 1);
    assert!(shown.dom.contains("main.waitOnChannel"));

    // A diff: the table of what changed.
    let later = dir.path().join("later.txt");
    let text = std::fs::read_to_string(&dump).unwrap();
    std::fs::write(&later, text.replace("[chan receive]", "[select]")).unwrap();
    let page = dir.path().join("diff.html");
    let html = run(faultline()
        .args(["analyze", "--format", "html", "--diff"])
        .arg(&dump)
        .arg(&later))
    .assert_code(exit::OK);
    std::fs::write(&page, &html.stdout).unwrap();
    let shown = render_in_browser(
        &page,
        &test_output_dir().join("analyze-diff.png"),
        (1280, 900),
    );
    assert!(shown.console.is_empty(), "{:?}", shown.console);
    assert!(
        shown.count_class("vanished") >= 1 && shown.count_class("appeared") >= 1,
        "{}",
        shown.dom
    );

    // A series: the leaking group's trend drawn, the others folded.
    let mut files = Vec::new();
    for i in 0..8u32 {
        let mut text =
            String::from("goroutine 1 [running]:\nmain.main()\n\t/app/main.go:10 +0x1d\n\n");
        for id in 0..(2 + 5 * i) {
            text.push_str(&format!(
                "goroutine {} [chan receive]:\nmain.leak()\n\t/app/main.go:42 +0x2a\n\n",
                100 + id
            ));
        }
        let file = dir.path().join(format!("sample-{i}.txt"));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    let html = run(faultline()
        .args(["leaks", "--format", "html", "--interval", "30s"])
        .args(&files))
    .assert_code(4);
    let page = dir.path().join("leaks.html");
    std::fs::write(&page, &html.stdout).unwrap();
    let shown = render_in_browser(&page, &test_output_dir().join("leaks.png"), (1280, 900));
    assert!(shown.console.is_empty(), "{:?}", shown.console);
    assert!(
        shown.dom.contains("data-verdict=\"leaking\""),
        "{}",
        shown.dom
    );
    assert_eq!(shown.count_class("leak-point"), 8);
    assert_eq!(shown.count_class("other-groups"), 1);
}
