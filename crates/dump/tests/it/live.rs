//! faultline-dump against live Go runtimes: `tests/targets/go/blocker` built now with Go 1.19 and
//! Go 1.27, default and stripped (`-ldflags "-s -w"`), run, and its dumps parsed as they come
//! out: `net/http/pprof` profiles fetched over HTTP, a panic with `GOTRACEBACK=all`, and a
//! `SIGQUIT` under `GOTRACEBACK=crash`. The committed fixtures (`go.rs`) pin what one run
//! printed; these check that the parser still reads what the runtimes print today, from any
//! checkout path and with fresh goroutine ids and addresses.
//!
//! The facts asserted are those of `tests/fixtures/go/README.md` (which `scripts/go-fixtures.sh`
//! checks on every generation). Every process is started under a `ChildGuard`, so it is killed
//! and reaped by its PID on every path, failures included; the four binaries are built once
//! per test process and the four variants of each test run in parallel threads.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use faultline_dump::{Dump, Format, Limits, Runtime, Task, is_own_code, parse};
use faultline_tests::{
    ChildGuard, GoBuild, GoToolchain, RunOptions, go_toolchains, http_get, run_with, wait_until,
};

/// How long a blocker may take to park its goroutines and print `listening on`, to answer an
/// HTTP request, or to die of a signal. Far above what it needs (well under a second); a hang
/// becomes a failure with the process's output instead of a stuck test.
const DEADLINE: Duration = Duration::from_secs(60);

// The parked goroutines: the table of tests/fixtures/go/README.md, shared with `go.rs`.
use super::go::PARKED;

/// The entry counts of a `?debug=1` profile of a serving blocker, in order.
const DEBUG1_COUNTS: [u64; 13] = [7, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1];

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn pprof_goroutine_profiles_of_a_serving_blocker() {
    every_variant(|v| {
        let blocker = Blocker::serve(v.binary, "all");
        let debug2 = blocker.fetch("/debug/pprof/goroutine?debug=2");
        let debug1 = blocker.fetch("/debug/pprof/goroutine?debug=1");
        let debug0 = blocker.fetch("/debug/pprof/goroutine?debug=0");
        drop(blocker);

        let what = format!("{v}: ?debug=2");
        let d = parse_ok(&debug2, &what);
        assert_eq!(d.format, Format::GoTraceback, "{what}");
        assert_eq!(d.task_count(), 35, "{what}: {:#?}", tally(&d));
        assert!(d.crash.is_none(), "{what}: {:?}", d.crash);
        check_parked(v.series, &d, &what);
        check_server_goroutines(&d, &what);
        // The handler writing the profile, and net/http's reader of its connection.
        let handler = d
            .tasks
            .iter()
            .find(|t| own_frame(t) == Some("main.settled.func1"))
            .unwrap_or_else(|| panic!("{what}: no handler goroutine"));
        assert_eq!(handler.state.as_deref(), Some("running"), "{what}");
        assert_eq!(
            handler.frames.first().map(|f| &*f.function),
            Some("runtime/pprof.writeGoroutineStacks"),
            "{what}"
        );
        // Runtime frames are hidden in this format.
        assert!(
            d.tasks
                .iter()
                .flat_map(|t| t.frames.iter())
                .all(|f| &*f.function != "runtime.gopark"),
            "{what}"
        );

        let what = format!("{v}: ?debug=1");
        let d = parse_ok(&debug1, &what);
        assert_eq!(d.format, Format::GoPprofDebug1, "{what}");
        let counts: Vec<u64> = d.tasks.iter().map(|t| t.count).collect();
        assert_eq!(counts, DEBUG1_COUNTS, "{what}");
        assert_eq!(
            d.tasks[0].frames.first().map(|f| &*f.function),
            Some("main.waitOnChannel"),
            "{what}"
        );
        let by_frame = tally_by_own_frame(&d);
        check_parked_counts(&by_frame, &what);

        let what = format!("{v}: ?debug=0");
        let d = parse_ok(&debug0, &what);
        assert_eq!(d.format, Format::GoPprofProto, "{what}");
        assert_eq!(d.tasks.len(), DEBUG1_COUNTS.len(), "{what}");
        assert_eq!(d.task_count(), 35, "{what}");
        // The same stacks as the text profile of the same process.
        assert_eq!(tally_by_own_frame(&d), by_frame, "{what}");
    });
}

#[test]
fn panic_with_gotraceback_all() {
    every_variant(|v| {
        let mut command = blocker_command(v.binary, "all");
        command.arg("-panic");
        let done = run_with(
            &mut command,
            RunOptions {
                deadline: DEADLINE,
                ..RunOptions::default()
            },
        );
        let what = format!("{v}: -panic");
        assert_eq!(done.code(), Some(2), "{what}: {}", done.context());
        let d = parse_ok(done.stderr.as_bytes(), &what);
        let crash = d
            .crash
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no crash\n{}", done.stderr));
        assert_eq!(crash.kind, "panic", "{what}");
        assert_eq!(
            crash.message, "faultline-blocker: deliberate panic in main.crash (request 42)",
            "{what}"
        );
        assert_eq!(crash.signal, None, "{what}");
        // The panicking goroutine first, then everything else.
        let first = &d.tasks[0];
        assert_eq!(
            (first.id, first.state.as_deref()),
            (Some(1), Some("running")),
            "{what}"
        );
        let functions: Vec<&str> = first.frames.iter().map(|f| &*f.function).collect();
        for f in ["main.crash", "main.handle", "main.main"] {
            assert!(functions.contains(&f), "{what}: {f} in {functions:?}");
        }
        check_parked(v.series, &d, &what);
    });
}

#[test]
fn sigquit_with_gotraceback_crash() {
    every_variant(|v| {
        let what = format!("{v}: SIGQUIT, GOTRACEBACK=crash");
        let blocker = Blocker::serve(v.binary, "crash");
        // `listening on` is printed before goroutine 1 parks in `select {}`: a SIGQUIT right
        // away may catch it in the `write` of that line, `[syscall]`. The pprof handler answers
        // only once every other goroutine is parked, so one request is the barrier.
        blocker.fetch("/debug/pprof/goroutine?debug=1");
        let (status, stderr) = blocker.sigquit();
        // `crash` ends the process with SIGABRT after the dump (no core file: see
        // `blocker_command`).
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{what}: {status}");
        let d = parse_ok(&stderr, &what);
        let crash = d
            .crash
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no crash"));
        assert_eq!(crash.kind, "SIGQUIT", "{what}");
        // The first line is the signal's; what follows (`PC=… m=N sigcode=0`, and under
        // `crash` the other threads' `SIGQUIT: quit`) is not pinned here.
        assert_eq!(crash.message.lines().next(), Some("quit"), "{what}");
        check_parked(v.series, &d, &what);
        check_server_goroutines(&d, &what);
        // A crash shows runtime frames and the runtime's own goroutines.
        assert!(
            d.tasks.iter().any(|t| t
                .frames
                .first()
                .is_some_and(|f| &*f.function == "runtime.gopark")),
            "{what}"
        );
        assert!(
            d.tasks
                .iter()
                .any(|t| t.state.as_deref() == Some("force gc (idle)")),
            "{what}"
        );
        // The deep goroutines are cut, with a marker: Go 1.27 says how much it left out.
        let deep: Vec<&Task> = d
            .tasks
            .iter()
            .filter(|t| own_frame(t) == Some("main.deepWait"))
            .collect();
        assert_eq!(deep.len(), 2, "{what}");
        let marker = if v.series == "go1.19" {
            Some(None)
        } else {
            Some(Some(107))
        };
        assert!(deep.iter().all(|t| t.elided == marker), "{what}");
    });
}

// ---------------------------------------------------------------------------------------------
// Running the variants

/// One build of the blocker.
#[derive(Clone, Copy)]
struct Variant<'a> {
    series: &'static str,
    build: GoBuild,
    binary: &'a Path,
}

impl std::fmt::Display for Variant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.series, self.build.name())
    }
}

/// Runs `check` for each toolchain and build, each in a thread of its own (building the binary
/// first, once per process). Fails with the message of every variant that failed.
fn every_variant(check: impl Fn(Variant<'_>) + Sync) {
    let toolchains = go_toolchains();
    let failures: Vec<String> = thread::scope(|scope| {
        let check = &check;
        let handles: Vec<(String, thread::ScopedJoinHandle<'_, ()>)> = toolchains
            .iter()
            .flat_map(|tc| GoBuild::ALL.map(|build| (tc, build)))
            .map(|(tc, build): (&GoToolchain, GoBuild)| {
                let name = format!("{}/{}", tc.series, build.name());
                let handle = thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(scope, move || {
                        check(Variant {
                            series: tc.series,
                            build,
                            binary: tc.blocker(build),
                        });
                    })
                    .unwrap_or_else(|e| panic!("spawn a thread for {name}: {e}"));
                (name, handle)
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(name, handle)| {
                let payload = handle.join().err()?;
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(no message)".to_owned());
                Some(format!("--- {name}:\n{message}"))
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} variants failed:\n{}",
        failures.len(),
        toolchains.len() * GoBuild::ALL.len(),
        failures.join("\n")
    );
}

/// The blocker with `GOTRACEBACK=level`, the runtime's other knobs unset, and core dumps off
/// (`GOTRACEBACK=crash` ends in SIGABRT, and the core would land in the working directory).
fn blocker_command(binary: &Path, level: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .env("GOTRACEBACK", level)
        .env_remove("GODEBUG")
        .env_remove("GOMAXPROCS");
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe; it touches no memory of the parent's other threads.
    unsafe {
        command.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &none) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

/// A blocker serving pprof on 127.0.0.1, its goroutines parked. Killed and reaped on drop.
struct Blocker {
    process: ChildGuard,
    port: u16,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
    what: String,
}

impl Blocker {
    /// Starts `binary -port 0` and waits for its `listening on 127.0.0.1:PORT` line, which it
    /// prints once every goroutine it started is parked.
    fn serve(binary: &Path, gotraceback: &str) -> Self {
        let mut command = blocker_command(binary, gotraceback);
        command
            .args(["-port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = ChildGuard::spawn(&mut command);
        let what = format!("{} (GOTRACEBACK={gotraceback})", binary.display());
        let child = process.child_mut();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr = thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = BufReader::new(stderr).read_to_end(&mut bytes);
            bytes
        });
        // Lines of stdout as they come; the channel closes when the process closes stdout.
        let (lines, received) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    let port = line
                        .strip_prefix("listening on 127.0.0.1:")
                        .and_then(|p| p.parse::<u16>().ok());
                    seen.push(line);
                    if let Some(port) = port {
                        break port;
                    }
                }
                Err(e) => {
                    process.stop();
                    let stderr = stderr.join().unwrap_or_default();
                    panic!(
                        "{what}: no `listening on 127.0.0.1:PORT` line ({e}); stdout:\n{}\nstderr:\n{}",
                        seen.join("\n"),
                        String::from_utf8_lossy(&stderr)
                    );
                }
            }
        };
        Self {
            process,
            port,
            stderr: Some(stderr),
            what,
        }
    }

    /// The body of `GET path`, asserting status 200.
    fn fetch(&self, path: &str) -> Vec<u8> {
        let response = http_get(self.port, path, DEADLINE);
        assert_eq!(
            response.status,
            200,
            "{}: GET {path}: {}\n{}",
            self.what,
            response.headers,
            String::from_utf8_lossy(&response.body)
        );
        response.body
    }

    /// Sends SIGQUIT (by the PID it was spawned with) and waits for the process to die; its exit
    /// status and everything it wrote to stderr.
    fn sigquit(mut self) -> (ExitStatus, Vec<u8>) {
        let pid = libc::pid_t::try_from(self.process.id()).expect("a PID fits pid_t");
        // SAFETY: kill has no memory-safety preconditions. The PID is our unreaped child's, so
        // it cannot have been reused by another process.
        let sent = unsafe { libc::kill(pid, libc::SIGQUIT) };
        assert_eq!(
            sent,
            0,
            "{}: kill -QUIT {pid}: {}",
            self.what,
            std::io::Error::last_os_error()
        );
        let process = &mut self.process;
        let exited = wait_until(Instant::now() + DEADLINE, || process.has_exited());
        assert!(
            exited,
            "{}: still running {DEADLINE:?} after SIGQUIT",
            self.what
        );
        let status = self.process.try_status().expect("it has exited");
        let stderr = self
            .stderr
            .take()
            .expect("stderr is read once")
            .join()
            .unwrap_or_default();
        (status, stderr)
    }
}

// ---------------------------------------------------------------------------------------------
// The facts

fn parse_ok(bytes: &[u8], what: &str) -> Dump {
    let dump = parse(bytes, &Limits::default())
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", String::from_utf8_lossy(bytes)));
    assert!(
        dump.diagnostics.is_empty(),
        "{what}: {:#?}\n{}",
        dump.diagnostics,
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(dump.runtime, Runtime::Go, "{what}");
    dump
}

/// The first (innermost) frame of the program's own code.
fn own_frame(task: &Task) -> Option<&str> {
    task.frames
        .iter()
        .find(|f| is_own_code(Runtime::Go, &f.function, None))
        .map(|f| &*f.function)
}

/// Tasks by (own frame, state), as the README's table counts them.
fn tally(dump: &Dump) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for task in &dump.tasks {
        let own = own_frame(task).unwrap_or("-").to_owned();
        *out.entry((own, task.state.clone().unwrap_or_default()))
            .or_insert(0) += task.count;
    }
    out
}

/// Tasks by own frame: what the profile formats, which have no states, can be checked on.
fn tally_by_own_frame(dump: &Dump) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for task in &dump.tasks {
        *out.entry(own_frame(task).unwrap_or("-").to_owned())
            .or_insert(0) += task.count;
    }
    out
}

fn check_parked_counts(by_frame: &BTreeMap<String, u64>, what: &str) {
    for &(own, _, _, count) in PARKED {
        assert_eq!(
            by_frame.get(own).copied(),
            Some(count),
            "{what}: {own}; tally: {by_frame:#?}"
        );
    }
}

/// The parked goroutines, in their states, counts and creators, in a dump of all goroutines.
fn check_parked(series: &str, dump: &Dump, what: &str) {
    let tally = tally(dump);
    for &(own, old, new, count) in PARKED {
        let state = if series == "go1.19" { old } else { new };
        assert_eq!(
            tally.get(&(own.to_owned(), state.to_owned())).copied(),
            Some(count),
            "{what}: {own} [{state}]; tally: {tally:#?}"
        );
    }
    let locked: Vec<Option<&str>> = dump
        .tasks
        .iter()
        .filter(|t| t.locked_to_thread)
        .map(own_frame)
        .collect();
    assert_eq!(locked, [Some("main.lockedWait")], "{what}");

    let spawner_id = dump
        .tasks
        .iter()
        .find(|t| own_frame(t) == Some("main.spawner"))
        .and_then(|t| t.id);
    assert!(spawner_id.is_some(), "{what}: the spawner has no id");
    for task in &dump.tasks {
        let own = own_frame(task);
        if !PARKED.iter().any(|p| Some(p.0) == own) {
            continue;
        }
        let creator = task.creator.as_ref().map(|c| &*c.function);
        let (expected, parent) = if own == Some("main.spawnedWorker") {
            ("main.spawner", spawner_id)
        } else {
            ("main.main.func1", Some(1))
        };
        assert_eq!(creator, Some(expected), "{what}: creator of {own:?}");
        // `created by … in goroutine N` since Go 1.21.
        let expected_parent = if series == "go1.19" { None } else { parent };
        assert_eq!(
            task.creator_id, expected_parent,
            "{what}: creator id of {own:?}"
        );
    }
}

/// What a serving blocker has besides the parked goroutines.
fn check_server_goroutines(dump: &Dump, what: &str) {
    let main = dump
        .tasks
        .iter()
        .find(|t| t.id == Some(1))
        .unwrap_or_else(|| panic!("{what}: no goroutine 1"));
    assert_eq!(main.state.as_deref(), Some("select (no cases)"), "{what}");
    assert_eq!(own_frame(main), Some("main.main"), "{what}");
    assert!(main.creator.is_none(), "{what}");
    let serving: Vec<&Task> = dump
        .tasks
        .iter()
        .filter(|t| own_frame(t) == Some("main.serve"))
        .collect();
    assert_eq!(serving.len(), 1, "{what}");
    assert_eq!(serving[0].state.as_deref(), Some("IO wait"), "{what}");
    assert_eq!(
        serving[0].creator.as_ref().map(|c| &*c.function),
        Some("main.main"),
        "{what}"
    );
}
