//! The panic hook, end to end: each test re-runs this test binary as a child process that
//! installs the hook and panics (see [`child`]), then checks what the child left behind.
//!
//! The oracles are independent of the code under test: `faultline-record` parses and validates
//! the record, binutils' `readelf` says what the build-id is, `objcopy` strips a copy of the
//! binary the way a service build does, and `addr2line` symbolizes the recorded addresses
//! against the unstripped original. Binutils is a requirement of this test suite on Linux.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use std::{env, fs};

use faultline_record::{CrashRecord, FrameKind, Module};

/// Selects what [`child`] does; unset in the test run itself.
const CHILD_MODE_ENV: &str = "FAULTLINE_CAPTURE_IT_CHILD";
/// The crash directory the `options` child passes to `install_with`.
const OPTIONS_DIR_ENV: &str = "FAULTLINE_CAPTURE_IT_OPTIONS_DIR";
/// The name libtest gives [`child`]; the child process runs only that test.
const CHILD_TEST: &str = "panic_hook::child";

/// Not a test of its own: the body of the child processes the tests below start. In the normal
/// test run the environment variable is unset and it does nothing.
#[test]
fn child() {
    let Ok(mode) = env::var(CHILD_MODE_ENV) else {
        return;
    };
    match mode.as_str() {
        "panic" => {
            faultline_capture::install();
            panic_in_child();
        }
        "options" => {
            let dir = env::var_os(OPTIONS_DIR_ENV).unwrap_or_default();
            faultline_capture::install_with(faultline_capture::Options::new().crash_dir(dir));
            panic_in_child();
        }
        "unnamed-thread" => {
            faultline_capture::install();
            let joined = std::thread::spawn(|| panic!("panic on an unnamed thread")).join();
            // Fail this test too (exit status 101) without a second panic and a second record.
            let Err(payload) = joined;
            std::panic::resume_unwind(payload);
        }
        other => panic!("unknown {CHILD_MODE_ENV} {other:?}"),
    }
}

/// The panic the tests look for; the message carries the line so the test can check the
/// recorded location and symbolize the frame back to it.
#[inline(never)]
fn panic_in_child() -> ! {
    panic!("faultline-it panic at line {}", line!());
}

/// What a child run left behind.
struct Run {
    pid: u32,
    output: Output,
    stderr: String,
    /// Unix milliseconds before the child started and after it exited.
    window_ms: (u128, u128),
}

fn run_child(exe: &Path, mode: &str, envs: &[(&str, &Path)]) -> Run {
    let start_ms = unix_ms();
    let mut command = Command::new(exe);
    command
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE_ENV, mode)
        .env_remove(faultline_capture::CRASH_DIR_ENV)
        // Keep std's own message short and free of in-process backtraces.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
    let pid = child.id();
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {}: {e}", exe.display()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Run {
        pid,
        output,
        stderr,
        window_ms: (start_ms, unix_ms()),
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

impl Run {
    fn context(&self) -> String {
        format!(
            "status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status,
            String::from_utf8_lossy(&self.output.stdout),
            self.stderr
        )
    }

    /// The lines our hook printed.
    fn faultline_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("faultline:"))
            .collect()
    }

    /// Checks the child failed like a panicking test and announced one record in `dir`, and
    /// returns it with its path.
    fn record_in(&self, dir: &Path) -> (PathBuf, CrashRecord) {
        let context = self.context();
        assert_eq!(self.output.status.code(), Some(101), "{context}");
        let lines = self.faultline_lines();
        assert_eq!(lines.len(), 1, "{context}");
        let path = lines[0]
            .strip_prefix("faultline: crash record written to ")
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("unexpected line {:?}\n{context}", lines[0]));
        assert_eq!(path.parent(), Some(dir), "{context}");

        // Only the record is left: the temporary file was renamed, not copied.
        let names = file_names(dir);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        assert_eq!(names, [name.unwrap_or_default()], "{context}");

        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let record = CrashRecord::from_json(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}\n{context}", path.display()));
        (path, record)
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{e}"))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Checks everything that does not depend on the thread or binary: identity, time, file name,
/// runtimes, message, raw text, and that every frame lies in the module it names.
fn check_common(run: &Run, path: &Path, record: &CrashRecord) {
    let context = run.context();
    assert_eq!(record.pid, run.pid);
    assert_eq!(record.arch, std::env::consts::ARCH);
    let tid = record.tid.unwrap_or_else(|| panic!("no tid\n{context}"));

    // faultline-crash-<unix_ms>-<pid>-<tid>.json, taken while the child ran.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let fields: Vec<&str> = name
        .strip_prefix("faultline-crash-")
        .and_then(|rest| rest.strip_suffix(".json"))
        .map(|rest| rest.split('-').collect())
        .unwrap_or_default();
    assert_eq!(fields.len(), 3, "{name}");
    let ms: u128 = fields[0].parse().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        (run.window_ms.0..=run.window_ms.1).contains(&ms),
        "{name} outside {:?}",
        run.window_ms
    );
    assert_eq!(fields[1], record.pid.to_string());
    assert_eq!(fields[2], tid.to_string());
    // RFC 3339 in UTC with milliseconds, the same milliseconds as the file name.
    assert_eq!(
        record.time.len(),
        "2026-11-28T10:00:00.123Z".len(),
        "{}",
        record.time
    );
    assert!(
        record.time.ends_with(&format!(".{:03}Z", ms % 1000)),
        "{}",
        record.time
    );

    let runtimes: Vec<(&str, &str)> = record
        .runtimes
        .iter()
        .map(|r| (r.name.as_str(), r.version.as_str()))
        .collect();
    assert_eq!(runtimes.len(), 2, "{runtimes:?}");
    assert_eq!(runtimes[0].0, "rust");
    assert!(runtimes[0].1.starts_with("rustc 1."), "{runtimes:?}");
    assert_eq!(
        runtimes[1],
        ("faultline-capture", env!("CARGO_PKG_VERSION"))
    );

    // The hook's line comes first, then the previous (default) hook prints the runtime's own
    // words, which the record carries verbatim.
    let raw_text = record.raw_text.as_deref().unwrap_or_default();
    let ours = run.stderr.find("faultline: crash record written");
    let std_text = run.stderr.find(raw_text);
    assert!(
        !raw_text.is_empty() && ours.is_some() && std_text.is_some() && ours < std_text,
        "raw_text {raw_text:?}\n{context}"
    );

    assert!(!record.frames.is_empty(), "{context}");
    assert!(record.frames.len() <= 256);
    for (i, frame) in record.frames.iter().enumerate() {
        // `from_json` already checked module_address == address - load_bias.
        let module = frame
            .module
            .and_then(|index| record.modules.get(index))
            .unwrap_or_else(|| panic!("frames[{i}] {frame:?} has no module"));
        let probe = match frame.kind {
            FrameKind::Pc => frame.address.0,
            FrameKind::ReturnAddress => frame.address.0 - 1,
        };
        assert!(
            module.contains(probe),
            "frames[{i}] {frame:?} not in {module:?}"
        );
    }
    assert!(
        record.modules.iter().any(|m| m.path == "[vdso]"),
        "{:#?}",
        record.modules
    );
    for module in &record.modules {
        assert!(!module.segments.is_empty(), "{module:?}");
    }
}

/// The module the loader reports first, which must be the executable at `exe`, with the
/// build-id readelf reads from `exe`, loaded at a non-zero bias (a PIE).
fn check_executable<'r>(record: &'r CrashRecord, exe: &Path) -> &'r Module {
    let main = record
        .modules
        .first()
        .unwrap_or_else(|| panic!("no modules"));
    let exe = fs::canonicalize(exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    assert_eq!(Path::new(&main.path), exe);
    let build_id = main.build_id.as_ref().map(|id| id.to_hex());
    assert_eq!(build_id, Some(readelf_build_id(&exe)));
    assert_ne!(main.load_bias.0, 0, "the test binary should be a PIE");
    assert!(
        main.segments.iter().any(|s| s.flags == "r-x"),
        "{:?}",
        main.segments
    );
    main
}

/// Symbolizes the record's frames in `module_index` against `debug_file` with addr2line and
/// checks one of them is the panic in `panic_in_child` at the recorded line.
fn check_symbolizes_to_the_panic(record: &CrashRecord, module_index: usize, debug_file: &Path) {
    let addresses: Vec<String> = record
        .frames
        .iter()
        .filter(|f| f.module == Some(module_index))
        .filter_map(|f| f.lookup_address())
        .map(|a| format!("{a:#x}"))
        .collect();
    assert!(!addresses.is_empty());
    let output = Command::new("addr2line")
        .args(["--functions", "--demangle", "--inlines", "--exe"])
        .arg(debug_file)
        .args(&addresses)
        .output()
        .unwrap_or_else(|e| panic!("running addr2line (binutils): {e}"));
    let symbolized = String::from_utf8_lossy(&output.stdout);
    let line = record.location.as_ref().map_or(0, |l| l.line);
    let expected_function = "panic_hook::panic_in_child";
    let expected_line = format!("panic_hook.rs:{line}");
    let found = symbolized
        .lines()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|pair| pair[0].ends_with(expected_function) && pair[1].contains(&expected_line));
    assert!(
        found,
        "no frame symbolized to {expected_function} at {expected_line}:\n{symbolized}"
    );
}

fn readelf_build_id(file: &Path) -> String {
    let output = Command::new("readelf")
        .arg("--notes")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("running readelf (binutils): {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("readelf found no build-id in {}:\n{text}", file.display()))
}

fn this_exe() -> PathBuf {
    env::current_exe().unwrap_or_else(|e| panic!("{e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn records_a_panic() {
    let root = temp_dir();
    let dir = root.path().join("crashes");
    let exe = this_exe();
    let run = run_child(&exe, "panic", &[(faultline_capture::CRASH_DIR_ENV, &dir)]);
    let (path, record) = run.record_in(&dir);
    check_common(&run, &path, &record);

    assert_eq!(record.kind, faultline_record::Kind::Panic);
    let message = record.message.as_deref().unwrap_or_default();
    let location = record
        .location
        .as_ref()
        .unwrap_or_else(|| panic!("no location"));
    assert_eq!(
        message,
        format!("faultline-it panic at line {}", location.line)
    );
    assert!(location.file.ends_with("panic_hook.rs"), "{location:?}");
    assert!(location.column > 0);
    // libtest runs each test on a thread named after it.
    assert_eq!(record.thread_name.as_deref(), Some(CHILD_TEST));
    assert!(
        record
            .raw_text
            .as_deref()
            .unwrap_or_default()
            .starts_with(&format!("thread '{CHILD_TEST}'")),
        "{record:?}"
    );

    check_executable(&record, &exe);
    check_symbolizes_to_the_panic(&record, 0, &exe);
}

/// The case faultline exists for: a stripped PIE whose frames are symbolized elsewhere from the
/// unstripped original, matched by build-id.
#[test]
fn records_a_panic_in_a_stripped_binary() {
    let root = temp_dir();
    let original = this_exe();
    let stripped = root.path().join("stripped-it");
    fs::copy(&original, &stripped).unwrap_or_else(|e| panic!("copying the test binary: {e}"));
    let status = Command::new("objcopy")
        .arg("--strip-all")
        .arg(&stripped)
        .status()
        .unwrap_or_else(|e| panic!("running objcopy (binutils): {e}"));
    assert!(status.success(), "objcopy --strip-all failed: {status}");
    let sections = Command::new("readelf")
        .arg("--section-headers")
        .arg(&stripped)
        .output()
        .unwrap_or_else(|e| panic!("running readelf (binutils): {e}"));
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(
        !sections.contains(".symtab") && !sections.contains(".debug_info"),
        "{sections}"
    );

    let dir = root.path().join("crashes");
    let run = run_child(
        &stripped,
        "panic",
        &[(faultline_capture::CRASH_DIR_ENV, &dir)],
    );
    let (path, record) = run.record_in(&dir);
    check_common(&run, &path, &record);
    let main = check_executable(&record, &stripped);
    assert_eq!(
        main.build_id.as_ref().map(|id| id.to_hex()),
        Some(readelf_build_id(&original))
    );
    check_symbolizes_to_the_panic(&record, 0, &original);
}

#[test]
fn records_a_panic_on_an_unnamed_thread() {
    let root = temp_dir();
    let dir = root.path().join("crashes");
    let run = run_child(
        &this_exe(),
        "unnamed-thread",
        &[(faultline_capture::CRASH_DIR_ENV, &dir)],
    );
    let (path, record) = run.record_in(&dir);
    check_common(&run, &path, &record);
    assert_eq!(record.thread_name, None);
    assert_ne!(
        record.tid,
        Some(record.pid),
        "the panic was not on the main thread"
    );
    assert_eq!(
        record.message.as_deref(),
        Some("panic on an unnamed thread")
    );
    let raw_text = record.raw_text.as_deref().unwrap_or_default();
    assert!(raw_text.starts_with("thread '<unnamed>'"), "{raw_text}");
}

#[test]
fn options_take_precedence_over_the_environment() {
    let root = temp_dir();
    let from_env = root.path().join("from-env");
    let from_options = root.path().join("from-options");
    let run = run_child(
        &this_exe(),
        "options",
        &[
            (faultline_capture::CRASH_DIR_ENV, &from_env),
            (OPTIONS_DIR_ENV, &from_options),
        ],
    );
    let (path, record) = run.record_in(&from_options);
    check_common(&run, &path, &record);
    assert!(!from_env.exists());
}

#[test]
fn reports_a_record_it_cannot_write_and_carries_on() {
    let root = temp_dir();
    let not_a_dir = root.path().join("file");
    fs::write(&not_a_dir, "").unwrap_or_else(|e| panic!("{e}"));
    let dir = not_a_dir.join("crashes");
    let run = run_child(
        &this_exe(),
        "panic",
        &[(faultline_capture::CRASH_DIR_ENV, &dir)],
    );
    let context = run.context();
    assert_eq!(run.output.status.code(), Some(101), "{context}");
    let lines = run.faultline_lines();
    let expected = format!(
        "faultline: could not write crash record: failed to create crash directory {}: ",
        dir.display()
    );
    assert_eq!(lines.len(), 1, "{context}");
    assert!(lines[0].starts_with(&expected), "{context}");
    // The previous hook still ran.
    assert!(
        run.stderr.contains("faultline-it panic at line"),
        "{context}"
    );
    assert_eq!(file_names(root.path()), ["file"]);
}
