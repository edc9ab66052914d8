//! `faultline` through a real elfutils debuginfod, configured only by the environment a user
//! would set (`DEBUGINFOD_URLS`, `XDG_CACHE_HOME`, `HOME`): the first lookup downloads the debug
//! file into the cache, and once the server is gone the same answers come from the cache.

use std::fs;
use std::path::Path;
use std::process::Command;

use faultline_tests::{
    CProgram, DebuginfodServer, Finished, http_status, marker_line, nm_symbol, run, split_debug,
};
use serde_json::Value;

use crate::records::{self, frame_in, module};
use crate::{C_PROGRAM, exit, stdout_json};

/// The build-id the served program is linked with.
const ID_SERVED: &str = "d1b0000000000000000000000000000000000a01";

/// The `faultline` binary with an environment of exactly these variables: nothing else of the
/// test's environment (no `FAULTLINE_CACHE_DIR`, no developer's `DEBUGINFOD_URLS`) leaks in.
fn faultline_with_env(urls: &str, xdg_cache: &Path, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    command
        .env_clear()
        .env("DEBUGINFOD_URLS", urls)
        .env("XDG_CACHE_HOME", xdg_cache)
        .env("HOME", home);
    command
}

/// The first two lines of `symbolize`'s LLVM-style output: the function and its location.
fn function_and_location(ran: &Finished) -> (String, String) {
    let mut lines = ran.stdout.lines();
    let function = lines.next().unwrap_or_default().to_owned();
    let location = lines.next().unwrap_or_default().to_owned();
    (function, location)
}

#[test]
fn debug_file_from_debuginfod_then_from_its_cache_when_the_server_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    let served = tmp.path().join("served");
    let xdg_cache = tmp.path().join("xdg-cache");
    let home = tmp.path().join("home");
    for dir in [&build, &served, &xdg_cache, &home] {
        fs::create_dir(dir).unwrap();
    }
    let program = CProgram::new("served", C_PROGRAM, ID_SERVED).compile(&build);
    split_debug(&program, &served.join("served.debug"));
    let helper = nm_symbol(&program, "work_helper").address;
    let helper_line = marker_line(&build.join("served.c"), "helper");
    let location_suffix = format!("/served.c:{helper_line}:");

    let mut server = DebuginfodServer::start(&served);
    server.wait_until_served(ID_SERVED);
    let urls = server.url();

    let record = records::record(
        vec![module("/srv/app/served", Some(ID_SERVED))],
        vec![frame_in(0, helper)],
    );
    let record = records::write(tmp.path(), "crash", &record);
    let analyze = |cache: &Path| -> Value {
        let ran = run(faultline_with_env(&urls, cache, &home)
            .arg("analyze")
            .arg(&record)
            .args(["--format", "json"]))
        .assert_code(exit::OK);
        stdout_json(&ran)
    };
    let symbolize = |cache: &Path| -> Finished {
        run(faultline_with_env(&urls, cache, &home)
            .args(["symbolize", "--build-id", ID_SERVED])
            .arg(format!("{helper:#x}")))
    };
    let cached = xdg_cache
        .join("faultline/debuginfod")
        .join(ID_SERVED)
        .join("debuginfo");

    // Online: downloaded from the server into $XDG_CACHE_HOME.
    let online = analyze(&xdg_cache);
    let context = || format!("{online:#}\n--- server log\n{}", server.log());
    assert_eq!(
        online["modules"][0]["source"],
        "debuginfod",
        "{}",
        context()
    );
    assert_eq!(
        online["modules"][0]["debug_file"],
        cached.display().to_string(),
        "{}",
        context()
    );
    let symbol = &online["frames"][0]["symbols"][0];
    assert_eq!(symbol["function"], "work_helper", "{}", context());
    assert_eq!(symbol["line"], helper_line, "{}", context());
    assert!(cached.is_file());

    let first = symbolize(&xdg_cache).assert_code(exit::OK);
    let (function, location) = function_and_location(&first);
    assert_eq!(function, "work_helper", "{}", first.context());
    assert!(location.contains(&location_suffix), "{}", first.context());

    // Offline: the server is gone (its port refuses connections), the cache answers.
    let port = server.port();
    server.stop();
    assert_eq!(
        http_status(port, "/metrics"),
        None,
        "the server still answers"
    );
    let second = symbolize(&xdg_cache).assert_code(exit::OK);
    assert_eq!(second.stdout, first.stdout, "{}", second.context());
    let offline = analyze(&xdg_cache);
    assert_eq!(offline["modules"][0]["source"], "debuginfod cache");
    assert_eq!(offline["frames"], online["frames"]);

    // Control: with an empty cache and the server gone there is no answer, so the answers
    // above really came from the cache. Exit 3 names the build-id and the server asked.
    let empty_cache = tmp.path().join("empty-cache");
    fs::create_dir(&empty_cache).unwrap();
    let none = symbolize(&empty_cache).assert_code(exit::NOT_FOUND);
    assert!(
        none.stderr.contains(ID_SERVED)
            && none.stderr.contains(&urls)
            && none.stderr.contains("connection refused"),
        "{}",
        none.context()
    );

    // Everything was cached under $XDG_CACHE_HOME, nothing under $HOME.
    assert_eq!(fs::read_dir(&home).unwrap().count(), 0, "HOME was written");
}
