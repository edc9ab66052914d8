//! Support shared by faultline's integration and end-to-end tests: child processes that are
//! always reaped, polling with a deadline, a real elfutils `debuginfod`, C fixtures built by gcc
//! with a fixed GNU build-id, binutils wrappers, the demo service, and the source markers tests
//! use instead of hard-coded line numbers.
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
use std::sync::OnceLock;
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
