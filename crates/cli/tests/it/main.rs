//! End-to-end tests of the `faultline` binary against real components: real processes that
//! panic, real gcc/objcopy/strip output, a real elfutils debuginfod, real llvm tools.
//!
//! - `demo`: the demo service, stripped, panics; its crash record is symbolized from a store,
//!   from compressed debug files and through its debuglink.
//! - `agent`: `faultline agent` and its clients: API refusals, faults gone with a SIGKILLed
//!   agent, expired leases, graceful shutdown, the journal's sweep.
//! - `bad_input`: debug files of another build, truncated and garbage files, invalid records,
//!   malformed addresses; each with the exit code docs/cli.md documents.
//! - `debuginfod`: lookup through a real debuginfod server, then from the cache once it is gone.
//! - `split_dwarf`: `-gsplit-dwarf` programs, resolved through their `.dwo` and `.dwp` files and
//!   compared with llvm-symbolizer.
//! - `differential`: faultline against llvm-symbolizer on random addresses of a large binary.
//! - `dumps`: `analyze` on real Go goroutine dumps: groups, JSON, `--diff`, a URL.
//! - `faults`: `faultline inject` against the real kernel, in network namespaces made for each
//!   test: partitions, reject, selectors, loss, pause, kill; reverts verified; SIGKILL-proof.
//! - `forms`: Go race reports (analyze, and a run's `no_races`), and `go test` output holding a
//!   child's traceback before its own, as one document per dump.
//! - `interactive`: `faultline symbolize` typed at in a real terminal (tmux).
//! - `leaks`: `faultline leaks` on the evaluation corpus, ten live Go workloads with known
//!   leaks (or none), sampled at once; saved dumps read again later.
//! - `load`: leak verdicts under a real load ramp (handlers, a leak, keep-alive connections, a
//!   restart) and the Go runtime's proof of leaks (the goroutineleak profile, `(leaked)`).
//! - `logs`: Docker json-file logs and JSON-lines exports of real Go output, read as the raw text.
//! - `tokio_service`: a stripped tokio service's task dump, served by faultline-capture's
//!   endpoint and symbolized from a store; a blocked worker answered with 503.
//!
//! Shared machinery (process guards, the debuginfod harness, fixture builders, markers) is in
//! the `faultline-tests` package.

mod agent;
mod bad_input;
mod cores;
mod debuginfod;
mod demo;
mod differential;
mod dumps;
mod faults;
mod forms;
mod index;
mod interactive;
mod kube;
mod leaks;
mod load;
mod logs;
mod pods;
mod run;
mod split_dwarf;
mod tmux;
mod tokio_service;
mod tui;

use std::process::Command;

use faultline_tests::{Finished, RunOptions};

/// Exit codes, as docs/cli.md documents them.
mod exit {
    pub const OK: i32 = 0;
    pub const BAD_INPUT: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
}

/// Variables that would let a `faultline` run reach outside the test (a developer's debuginfod
/// servers and cache) or change its behaviour.
const AMBIENT_VARIABLES: &[&str] = &[
    "DEBUGINFOD_URLS",
    "DEBUGINFOD_TIMEOUT",
    "FAULTLINE_CACHE_DIR",
    "FAULTLINE_DEBUGINFOD_NEGATIVE_TTL",
    "FAULTLINE_CRASH_DIR",
    "XDG_CACHE_HOME",
];

/// The `faultline` binary under test, with none of [`AMBIENT_VARIABLES`] set but its own cache.
fn faultline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faultline"));
    isolated(&mut command);
    command
}

/// `command` without [`AMBIENT_VARIABLES`], with the tests' own cache: symbol indexes of files
/// outside a store go there, never to `$HOME`'s.
fn isolated(command: &mut Command) -> &mut Command {
    for var in AMBIENT_VARIABLES {
        command.env_remove(var);
    }
    command.env(
        "FAULTLINE_CACHE_DIR",
        faultline_tests::target_dir().join("test-cache"),
    )
}

/// Run options that feed `input` to standard input.
fn with_input(input: &str) -> RunOptions {
    RunOptions {
        input: Some(input.as_bytes().to_vec()),
        ..RunOptions::default()
    }
}

/// Parses standard output as one JSON document.
#[track_caller]
fn stdout_json(run: &Finished) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", run.context()))
}

/// The function names `faultline symbolize` / `llvm-symbolizer` print in their LLVM output
/// style, one list per address (innermost first): each address is a block of
/// `function` / `file:line:column` line pairs, blocks separated by a blank line.
#[track_caller]
fn llvm_style_functions(text: &str) -> Vec<Vec<String>> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
            assert!(lines.len().is_multiple_of(2), "odd block: {block:?}");
            lines.chunks(2).map(|pair| pair[0].to_owned()).collect()
        })
        .collect()
}

/// Hand-made crash records, for what no real crash produces on demand: frames in a C program,
/// modules without a build-id, addresses outside every module.
mod records {
    use std::path::{Path, PathBuf};

    use faultline_record::{
        Addr, BuildId, CrashRecord, FORMAT_NAME, FORMAT_VERSION, Frame, FrameKind, Kind, Module,
    };

    /// Where hand-made modules are "loaded", as a PIE would be.
    pub const LOAD_BIAS: u64 = 0x5555_5555_0000;

    /// A module at [`LOAD_BIAS`] with the given build-id (hex), at a path that does not exist
    /// here, as when a record is analyzed on another machine.
    pub fn module(path: &str, build_id: Option<&str>) -> Module {
        Module {
            path: path.to_owned(),
            build_id: build_id.map(|hex| BuildId::from_hex(hex).unwrap()),
            load_bias: Addr(LOAD_BIAS),
            segments: Vec::new(),
        }
    }

    /// An exact-PC frame at `module_address` in module `module`.
    pub fn frame_in(module: usize, module_address: u64) -> Frame {
        Frame {
            address: Addr(LOAD_BIAS + module_address),
            kind: FrameKind::Pc,
            module: Some(module),
            module_address: Some(Addr(module_address)),
        }
    }

    /// A frame whose address lies in no module.
    pub fn frame_outside(address: u64) -> Frame {
        Frame {
            address: Addr(address),
            kind: FrameKind::Pc,
            module: None,
            module_address: None,
        }
    }

    /// A valid panic record with these modules and frames.
    pub fn record(modules: Vec<Module>, frames: Vec<Frame>) -> CrashRecord {
        let record = CrashRecord {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            time: "2026-11-28T10:00:00.123Z".to_owned(),
            kind: Kind::Panic,
            pid: 4242,
            tid: Some(4242),
            thread_name: Some("main".to_owned()),
            arch: "x86_64".to_owned(),
            runtimes: Vec::new(),
            message: Some("hand-made record".to_owned()),
            location: None,
            raw_text: None,
            modules,
            frames,
            tasks: Vec::new(),
            alive_tasks: None,
        };
        record.validate().expect("a valid hand-made record");
        record
    }

    /// Writes `record` as `dir/NAME.json`, as faultline-capture would.
    pub fn write(dir: &Path, name: &str, record: &CrashRecord) -> PathBuf {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, record.to_json_pretty()).unwrap();
        path
    }
}

/// A small C program used as a fixture: `work_helper` is a real (not inlined) function at
/// `-O0`, on the line marked `helper`.
const C_PROGRAM: &str = "#include <stdio.h>\n\
static int work_helper(int x) { return x * 3 + 1; } // faultline-marker: helper\n\
int main(int argc, char **argv) { (void)argv; printf(\"%d\\n\", work_helper(argc)); return 0; }\n";
