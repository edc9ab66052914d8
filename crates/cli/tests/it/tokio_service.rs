//! A real tokio service (`tests/targets/tokio-service`), stripped, with tasks stuck in known
//! places: faultline-capture's endpoint serves a task dump of raw addresses, and
//! `faultline analyze` names the stuck functions from a debug store, by build-id.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::{
    ChildGuard, HttpResponse, exec_tempdir, http_get, marker_line, run, run_ok, split_debug,
    strip_all, tokio_service_binary, wait_until, workspace_root,
};
use serde_json::Value;

use crate::{faultline, stdout_json};

/// A running copy of the service, stripped, and the store holding its debug file.
struct Service {
    guard: ChildGuard,
    port: u16,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Splits the debug info into a store, strips the binary, starts it on a free port.
    fn start(extra: &[&str]) -> Self {
        let dir = exec_tempdir();
        let binary = dir.path().join("tokio-service");
        let debug = dir.path().join("tokio-service.debug");
        let store = dir.path().join("store");
        split_debug(tokio_service_binary(), &debug);
        strip_all(tokio_service_binary(), &binary);
        run_ok(
            faultline()
                .args(["debug-store", "add"])
                .arg(&debug)
                .arg("--store")
                .arg(&store),
        );
        let stdout = dir.path().join("stdout.txt");
        let mut guard = ChildGuard::spawn(
            Command::new(&binary)
                .arg("127.0.0.1:0")
                .args(extra)
                .env("FAULTLINE_CRASH_DIR", dir.path().join("crashes"))
                .stdin(Stdio::null())
                .stdout(fs::File::create(&stdout).unwrap())
                .stderr(Stdio::null()),
        );
        let mut port = None;
        let started = wait_until(Instant::now() + Duration::from_secs(30), || {
            port = fs::read_to_string(&stdout).ok().and_then(|text| {
                let addr = text.lines().find_map(|l| l.strip_prefix("listening on "))?;
                addr.rsplit(':').next()?.parse().ok()
            });
            port.is_some() || guard.has_exited()
        });
        let port = port.filter(|_| started).unwrap_or_else(|| {
            panic!(
                "the tokio service did not start: {:?}",
                fs::read_to_string(&stdout)
            )
        });
        Self {
            guard,
            port,
            store,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the service printed after `prefix` on a line of its own, once it has.
    fn printed(&self, prefix: &str) -> String {
        let stdout = self._dir.path().join("stdout.txt");
        let mut found = None;
        let ok = wait_until(Instant::now() + Duration::from_secs(30), || {
            found = fs::read_to_string(&stdout).ok().and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix(prefix))
                    .map(str::to_owned)
            });
            found.is_some()
        });
        found
            .filter(|_| ok)
            .unwrap_or_else(|| panic!("the tokio service never printed {prefix:?}"))
    }

    fn get(&self, path: &str) -> HttpResponse {
        http_get(self.port, path, Duration::from_secs(30))
    }
}

fn source() -> PathBuf {
    workspace_root().join("tests/targets/tokio-service/src/main.rs")
}

/// The groups of an `analyze --format json` document whose own-code frame is `function`.
fn own_groups<'v>(doc: &'v Value, function: &str) -> Vec<&'v Value> {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| {
            g["own_frame"]
                .as_u64()
                .is_some_and(|i| g["frames"][i as usize]["function"] == function)
        })
        .collect()
}

/// The own-code frame of the one group stuck in `function`: its task count and source line.
#[track_caller]
fn stuck(doc: &Value, function: &str) -> (u64, u64, String) {
    let groups = own_groups(doc, function);
    assert_eq!(groups.len(), 1, "one group in {function}: {doc:#}");
    let g = groups[0];
    let frame = &g["frames"][g["own_frame"].as_u64().unwrap() as usize];
    (
        g["count"].as_u64().unwrap(),
        frame["line"].as_u64().unwrap(),
        frame["file"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_stripped_tokio_service_dump_names_the_stuck_functions_from_the_store() {
    // One worker: tokio's multi-worker dumps lose a worker now and then (see
    // `repeated_dumps_of_two_workers_answer_or_refuse_but_never_hang`); this test is about names.
    let service = Service::start(&["--workers", "1"]);
    let source_file = source();

    let count = service.get("/debug/faultline/tasks/count");
    assert_eq!(count.status, 200);
    let count: Value = serde_json::from_slice(&count.body).unwrap();
    // 3 + 2 + 1 stuck, and the endpoint's accept loop; the request's own task may add one.
    assert!(count["alive_tasks"].as_u64().unwrap() >= 7, "{count}");
    assert_eq!(count["workers"], 1);

    // Straight from the URL, the way Go's pprof endpoint is read.
    let ran = run_ok(
        faultline()
            .args(["analyze", "--format", "json", "--debug-dir"])
            .arg(&service.store)
            .arg(service.url("/debug/faultline/tasks")),
    );
    let doc = stdout_json(&ran);
    assert_eq!(doc["format"], "faultline_record", "{doc:#}");
    assert_eq!(doc["runtime"], "tokio");
    assert!(doc["alive_tasks"].as_u64().unwrap() >= 7);
    assert_eq!(doc["modules"][0]["source"], "store", "{:#}", doc["modules"]);

    for (function, tasks, marker) in [
        (
            "tokio_service::orders::wait_for_payment::{{closure}}",
            3,
            "payment",
        ),
        (
            "tokio_service::cache::refresh_every::{{closure}}",
            2,
            "refresh",
        ),
        ("tokio_service::ledger::append::{{closure}}", 1, "ledger"),
    ] {
        let (count, line, file) = stuck(&doc, function);
        assert_eq!(count, tasks, "{function}");
        assert_eq!(
            line,
            u64::from(marker_line(&source_file, marker)),
            "{function}"
        );
        assert!(file.ends_with("tokio-service/src/main.rs"), "{file}");
    }
    // What each is parked in, innermost: tokio's leaf futures.
    let payment = own_groups(&doc, "tokio_service::orders::wait_for_payment::{{closure}}")[0];
    let leaf = payment["frames"][0]["function"].as_str().unwrap();
    assert!(leaf.starts_with("tokio::sync::oneshot::"), "{leaf}");

    // The human report marks the same frames as the reader's code.
    let ran = run_ok(
        faultline()
            .args(["analyze", "--debug-dir"])
            .arg(&service.store)
            .arg(service.url("/debug/faultline/tasks")),
    );
    let marked: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.ends_with("<- first frame of your code"))
        .collect();
    for function in ["wait_for_payment", "refresh_every", "ledger::append"] {
        assert!(
            marked.iter().any(|l| l.contains(function)),
            "{function} not marked:\n{}",
            ran.stdout
        );
    }
    assert!(ran.stdout.contains("(store)"), "{}", ran.stdout);
    drop(service);
}

#[test]
fn without_debug_files_the_tasks_still_group_by_address_and_say_why() {
    let service = Service::start(&["--workers", "1"]);
    let dump = service.get("/debug/faultline/tasks");
    assert_eq!(dump.status, 200);
    assert!(
        dump.headers.contains("application/json"),
        "{}",
        dump.headers
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.json");
    fs::write(&file, &dump.body).unwrap();

    // No store, no debuginfod: the binary is stripped, so nothing can be named.
    let ran = run_ok(faultline().args(["analyze", "--format", "json"]).arg(&file));
    let doc = stdout_json(&ran);
    let module = &doc["modules"][0];
    assert!(module["debug_file"].is_null(), "{module}");
    assert!(
        module["unknown"]
            .as_str()
            .unwrap()
            .contains("no debug file"),
        "{module}"
    );
    let counts: Vec<u64> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .collect();
    assert_eq!(&counts[..2], [3, 2], "{doc:#}");
    let frame = doc["groups"][0]["frames"][0]["function"].as_str().unwrap();
    assert!(frame.starts_with("tokio-service+0x"), "{frame}");

    // The saved file reads the same as the URL once the store is given.
    let ran = run_ok(
        faultline()
            .args(["analyze", "--format", "json", "--debug-dir"])
            .arg(&service.store)
            .arg(&file),
    );
    let (count, _, _) = stuck(
        &stdout_json(&ran),
        "tokio_service::orders::wait_for_payment::{{closure}}",
    );
    assert_eq!(count, 3);
}

#[test]
fn a_blocked_worker_gets_a_503_not_a_hang() {
    let mut service = Service::start(&["--block-worker"]);
    // tokio's dump would wait for the blocked worker forever, and take the other worker with
    // it; the endpoint sees the worker stand still and does not ask.
    let answer = service.get("/debug/faultline/tasks");
    assert_eq!(
        answer.status,
        503,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body = String::from_utf8_lossy(&answer.body);
    assert!(body.contains("blocked"), "{body}");
    assert!(body.contains("no dump was requested"), "{body}");
    // The count needs no dump and still answers; so does a second dump request.
    assert_eq!(service.get("/debug/faultline/tasks/count").status, 200);
    assert_eq!(service.get("/debug/faultline/tasks").status, 503);

    let ran = run(faultline()
        .arg("analyze")
        .arg(service.url("/debug/faultline/tasks")))
    .assert_code(1);
    assert!(ran.stderr.contains("503"), "{}", ran.context());
    assert!(!service.guard.has_exited(), "the service survived");
}

#[test]
fn the_endpoint_answers_only_what_it_serves() {
    let service = Service::start(&["--workers", "1"]);
    let missing = service.get("/debug/pprof/goroutine");
    assert_eq!(missing.status, 404);
    assert!(String::from_utf8_lossy(&missing.body).contains("/debug/faultline/tasks"));

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    use std::io::{Read as _, Write as _};
    stream
        .write_all(b"DELETE /debug/faultline/tasks HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("Allow: GET, HEAD"), "{answer}");

    let mut stream = std::net::TcpStream::connect(("127.0.0.1", service.port)).unwrap();
    stream.write_all(b"\x16\x03\x01 not http\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

#[test]
fn repeated_dumps_of_two_workers_answer_or_refuse_but_never_hang() {
    // tokio 1.54's multi-thread dumps can lose a worker to their own barrier
    // (tokio-rs/tokio#8370); once that happens every further dump would hang the service. The
    // endpoint must notice and refuse instead, and the service must keep serving.
    let mut service = Service::start(&["--workers", "2"]);
    let mut answers = Vec::new();
    for _ in 0..12 {
        let answer = service.get("/debug/faultline/tasks");
        answers.push(answer.status);
        match answer.status {
            200 => {
                let doc: Value = serde_json::from_slice(&answer.body).unwrap();
                assert_eq!(doc["kind"], "task_dump");
            }
            503 => {
                let body = String::from_utf8_lossy(&answer.body);
                assert!(body.contains("tokio-rs/tokio#8370"), "{body}");
            }
            other => panic!("status {other}: {}", String::from_utf8_lossy(&answer.body)),
        }
        assert_eq!(service.get("/debug/faultline/tasks/count").status, 200);
    }
    assert_eq!(
        answers[0], 200,
        "the first dump of a healthy service: {answers:?}"
    );
    assert!(!service.guard.has_exited(), "{answers:?}");
}

/// The tokio part of the leak-detection corpus (docs/leaks.md): three workloads, each sampled
/// once a second through the endpoint and symbolized from the store. On current-thread
/// runtimes: tokio 1.54's multi-thread dumps lose workers (see above) and can spin forever
/// when many tasks are queued (docs/cli.md), which a dump a second under load runs into.
#[test]
fn tokio_workloads_leak_where_they_should_and_nowhere_else() {
    let cases: [(&str, Option<&str>); 3] = [
        (
            "steady-leak",
            Some("tokio_service::workloads::forgotten_reply::{{closure}}"),
        ),
        ("burst-drain", None),
        ("constant", None),
    ];
    let services: Vec<Service> = cases
        .iter()
        .map(|(workload, _)| Service::start(&["--workers", "0", "--workload", workload]))
        .collect();
    let runs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = services
            .iter()
            .zip(&cases)
            .map(|(service, (_, leak))| {
                scope.spawn(move || {
                    let mut command = faultline();
                    command
                        .args(["leaks", "--format", "json", "--every", "1s", "--for", "30s"])
                        .arg("--debug-dir")
                        .arg(&service.store)
                        .arg("--scrape")
                        .arg(service.url("/debug/faultline/tasks"));
                    if leak.is_some() {
                        command.arg("--until-verdict");
                    }
                    run(&mut command)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((workload, leak), ran) in cases.iter().zip(&runs) {
        let doc: Value = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("{workload}: {e}\n{}", ran.context()));
        assert_eq!(doc["runtime"], "tokio");
        assert!(
            doc["alive"]["count_last"].is_number(),
            "{workload}: {doc:#}"
        );
        let leaking: Vec<&Value> = doc["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["verdict"] == "leaking")
            .collect();
        match leak {
            Some(function) => {
                assert_eq!(ran.code(), Some(4), "{workload}: {}", ran.context());
                assert_eq!(leaking.len(), 1, "{workload}: {doc:#}");
                let frames = leaking[0]["frames"].as_array().unwrap();
                assert!(
                    frames.iter().any(|f| f["function"] == *function),
                    "{workload}: {frames:#?}"
                );
                let samples = doc["samples"].as_u64().unwrap();
                println!("{workload}: flagged after {samples} samples");
                assert!(samples <= 30, "{workload}: {samples} samples");
            }
            None => {
                assert_eq!(ran.code(), Some(0), "{workload}: {}", ran.context());
                assert!(leaking.is_empty(), "{workload}: {leaking:#?}");
            }
        }
    }
}

#[test]
fn tokio_handlers_under_a_load_ramp_are_more_load_not_a_leak() {
    // Each request a task of its own, living 300 ms; 5 to 100 in flight over 10 s, the task
    // dump scraped twice a second (by task id, the tasks that stay are told from the ones
    // that turn over).
    let service = Service::start(&["--workers", "0", "--workload", "http"]);
    let handlers: std::net::SocketAddr = service.printed("handlers listening on ").parse().unwrap();
    let ramp = faultline_tests::LoadRamp::start(faultline_tests::RampOptions {
        addr: handlers,
        path: "/work".into(),
        from: 5,
        to: 100,
        ramp: Duration::from_secs(10),
        keep_alive: false,
    });
    let ran = run(faultline()
        .args([
            "leaks", "--format", "json", "--every", "500ms", "--for", "10s",
        ])
        .arg("--debug-dir")
        .arg(&service.store)
        .arg("--scrape")
        .arg(service.url("/debug/faultline/tasks")));
    // The answers depend on the CPU the machine has to spare (two cores, shared with other
    // tests); what shows the load arrived is the handler group's size, asserted below.
    let answered = ramp.stop();
    assert!(
        answered > 100,
        "the ramp got {answered} answers\n{}",
        ran.context()
    );
    let doc: Value =
        serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}\n{}", ran.context()));
    assert_eq!(doc["runtime"], "tokio");
    let groups = doc["groups"].as_array().unwrap();
    let leaking: Vec<&Value> = groups
        .iter()
        .filter(|g| g["verdict"] == "leaking")
        .collect();
    assert!(leaking.is_empty(), "{leaking:#?}");
    assert_eq!(ran.code(), Some(0), "{}", ran.context());
    let handler = groups
        .iter()
        .filter(|g| {
            g["frames"].as_array().unwrap().iter().any(|f| {
                f["function"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("tokio_service::workloads::serve_request"))
            })
        })
        .max_by_key(|g| g["count_max"].as_u64())
        .unwrap_or_else(|| panic!("no handler group: {groups:#?}"));
    assert!(handler["count_max"].as_u64().unwrap() >= 30, "{handler:#}");
    assert!(handler["turnover"].as_f64().unwrap() > 0.5, "{handler:#}");
}
