//! The demo service end to end, as a release pipeline and an on-call engineer would use it:
//! build `tests/targets/demo` with full debug info, split the debug info off with `objcopy`,
//! run the stripped copy until it panics, and symbolize its crash record with `faultline
//! analyze` — from a debug store, from compressed debug files, and through a debuglink.
//!
//! Expected lines come from the `faultline-marker` comments in the demo's source, never from
//! hard-coded numbers; expected build-ids come from binutils' `readelf`, not from faultline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use faultline_record::{CrashRecord, Kind};
use faultline_tests::{
    Finished, demo_binary, demo_source, exec_tempdir, gnu_build_id, marker_line, objcopy, run,
    run_ok, split_debug, strip_all,
};
use serde_json::Value;

use crate::{exit, faultline, stdout_json};

/// The last order's discount the demo is run with; the panic message quotes it.
const DISCOUNT: &str = "175";
/// The exit status of a Rust program whose main thread panicked.
const PANIC_EXIT: i32 = 101;
/// How the demo's source file ends, whatever directory it was built in.
const DEMO_FILE_SUFFIX: &str = "tests/targets/demo/src/main.rs";

fn expected_message() -> String {
    format!("discount {DISCOUNT}% exceeds the price of order 42")
}

/// The chain the panic must be symbolized into, innermost first: each function with the line
/// (found by its marker) that is executing in it.
fn expected_chain() -> Vec<(&'static str, u32)> {
    let source = demo_source();
    vec![
        (
            "faultline_demo::apply_discount",
            marker_line(&source, "panic-site"),
        ),
        (
            "faultline_demo::price_order",
            marker_line(&source, "call-apply-discount"),
        ),
        (
            "faultline_demo::process_order",
            marker_line(&source, "call-price-order"),
        ),
        (
            "faultline_demo::main",
            marker_line(&source, "call-process-order"),
        ),
    ]
}

/// How the shipped copy is stripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shipped {
    /// `objcopy --strip-all`; the debug file goes elsewhere (a store).
    Stripped,
    /// `objcopy --strip-all --add-gnu-debuglink=…`, with the debug file next to the binary.
    StrippedWithDebuglink,
}

/// A crash of the stripped demo, and what is needed to symbolize it.
struct Crash {
    /// Holds everything below; removed on drop.
    dir: tempfile::TempDir,
    /// The stripped binary that ran and panicked.
    image: PathBuf,
    /// The debug file split off the build.
    debug: PathBuf,
    /// The GNU build-id of the build, according to readelf.
    build_id: String,
    record_path: PathBuf,
    record: CrashRecord,
    /// Index of the demo binary in the record's module table.
    module: usize,
}

impl Crash {
    /// Splits the demo build, runs the stripped copy until it panics, and checks what it left:
    /// exit status 101, the announcement on stderr, and a record that parses and describes this
    /// panic of this binary.
    fn new(shipped: Shipped) -> Self {
        let built = demo_binary();
        let dir = exec_tempdir();
        let image_dir = dir.path().join("image");
        fs::create_dir(&image_dir).unwrap();
        let image = image_dir.join("faultline-demo");
        let debug = match shipped {
            Shipped::Stripped => dir.path().join("faultline-demo.debug"),
            Shipped::StrippedWithDebuglink => image_dir.join("faultline-demo.debug"),
        };
        split_debug(built, &debug);
        match shipped {
            Shipped::Stripped => strip_all(built, &image),
            Shipped::StrippedWithDebuglink => objcopy(
                &[
                    "--strip-all",
                    &format!("--add-gnu-debuglink={}", debug.display()),
                ],
                built,
                &image,
            ),
        }
        let build_id = gnu_build_id(built).expect("rustc links with a GNU build-id");
        assert_eq!(gnu_build_id(&image).as_deref(), Some(&*build_id));
        assert_eq!(gnu_build_id(&debug).as_deref(), Some(&*build_id));
        let sections = run_ok(Command::new("readelf").args(["-S", "-W"]).arg(&image)).stdout;
        assert!(
            [".debug_info", ".debug_line", ".symtab"]
                .iter()
                .all(|name| !sections.contains(name)),
            "the shipped copy still has debug info or symbols:\n{sections}"
        );

        let crashes = dir.path().join("crashes");
        let ran = run(Command::new(&image)
            .current_dir(dir.path())
            .env("FAULTLINE_CRASH_DIR", &crashes)
            .env("FAULTLINE_DEMO_DISCOUNT", DISCOUNT)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE"));
        assert_eq!(ran.code(), Some(PANIC_EXIT), "{}", ran.context());
        let record_path = announced_record(&ran);
        assert_eq!(record_path.parent(), Some(&*crashes), "{}", ran.context());
        let bytes = fs::read(&record_path).unwrap();
        let record = CrashRecord::from_json(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", record_path.display(), ran.context()));

        assert_eq!(record.kind, Kind::Panic);
        assert_eq!(record.message.as_deref(), Some(&*expected_message()));
        let location = record.location.as_ref().expect("a panic has a location");
        assert!(location.file.ends_with(DEMO_FILE_SUFFIX), "{location:?}");
        assert_eq!(
            location.line,
            marker_line(&demo_source(), "panic-site"),
            "{location:?}"
        );
        let canonical = fs::canonicalize(&image).unwrap();
        let module = record
            .modules
            .iter()
            .position(|m| Path::new(&m.path) == canonical)
            .unwrap_or_else(|| panic!("no module {} in {:#?}", image.display(), record.modules));
        assert_eq!(
            record.modules[module]
                .build_id
                .as_ref()
                .map(ToString::to_string),
            Some(build_id.clone())
        );
        assert!(
            record.frames.iter().any(|f| f.module == Some(module)),
            "no frame in the demo binary: {:#?}",
            record.frames
        );
        Self {
            dir,
            image,
            debug,
            build_id,
            record_path,
            record,
            module,
        }
    }

    /// `faultline debug-store add DEBUG --store DIR`; checks what it printed and returns the
    /// path of the stored file.
    fn add_to_store(&self, debug: &Path, store: &Path) -> PathBuf {
        let added = run(faultline()
            .args(["debug-store", "add"])
            .arg(debug)
            .arg("--store")
            .arg(store))
        .assert_code(exit::OK);
        let stored = store
            .join(".build-id")
            .join(&self.build_id[..2])
            .join(format!("{}.debug", &self.build_id[2..]));
        assert_eq!(
            added.stdout,
            format!(
                "{} {} -> {} (added)\n",
                self.build_id,
                debug.display(),
                stored.display()
            ),
            "{}",
            added.context()
        );
        assert!(stored.is_file(), "{}", added.context());
        stored
    }

    /// `faultline analyze RECORD [--debug-dir STORE] --format json`, which must succeed.
    fn analyze_json(&self, store: Option<&Path>) -> Value {
        let mut command = faultline();
        command.arg("analyze").arg(&self.record_path);
        if let Some(store) = store {
            command.arg("--debug-dir").arg(store);
        }
        stdout_json(&run(command.args(["--format", "json"])).assert_code(exit::OK))
    }
}

/// The path in `faultline: crash record written to PATH`, which must be on stderr once.
fn announced_record(ran: &Finished) -> PathBuf {
    let announced: Vec<&str> = ran
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("faultline: crash record written to "))
        .collect();
    assert_eq!(announced.len(), 1, "{}", ran.context());
    PathBuf::from(announced[0])
}

/// One source frame of `faultline analyze --format json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Symbol {
    /// Index of the recorded frame it belongs to.
    frame: usize,
    function: Option<String>,
    file: Option<String>,
    line: Option<u64>,
}

/// Every source frame of every recorded frame, innermost first.
fn symbols(report: &Value) -> Vec<Symbol> {
    let mut out = Vec::new();
    for frame in report["frames"].as_array().expect("frames") {
        let index = frame["index"].as_u64().expect("index") as usize;
        for symbol in frame["symbols"].as_array().expect("symbols") {
            out.push(Symbol {
                frame: index,
                function: symbol["function"].as_str().map(str::to_owned),
                file: symbol["file"].as_str().map(str::to_owned),
                line: symbol["line"].as_u64(),
            });
        }
    }
    out
}

/// Checks the report of a demo crash: the expected chain, in order, with the marked lines; the
/// first frame of own code is the panic site; every frame in the demo binary is known; and the
/// demo binary's debug file was found from `source`.
fn check_report(crash: &Crash, report: &Value, source: &str) {
    let symbols = symbols(report);
    let pretty = || serde_json::to_string_pretty(report).unwrap();
    let mut from = 0;
    let mut panic_frame = None;
    for (function, line) in expected_chain() {
        let at = symbols[from..]
            .iter()
            .position(|s| s.function.as_deref() == Some(function))
            .map(|i| from + i)
            .unwrap_or_else(|| panic!("no {function} after symbol {from}:\n{}", pretty()));
        let symbol = &symbols[at];
        assert!(
            symbol
                .file
                .as_deref()
                .is_some_and(|f| f.ends_with(DEMO_FILE_SUFFIX)),
            "{symbol:?}"
        );
        assert_eq!(symbol.line, Some(u64::from(line)), "{symbol:?}");
        panic_frame.get_or_insert(symbol.frame);
        from = at + 1;
    }

    let frames = report["frames"].as_array().unwrap();
    let own: Vec<&Value> = frames.iter().filter(|f| f["own_code"] == true).collect();
    assert_eq!(own.len(), 1, "own_code frames:\n{}", pretty());
    assert_eq!(own[0]["index"].as_u64().map(|i| i as usize), panic_frame);
    assert_eq!(own[0]["hidden"], false);

    for frame in frames
        .iter()
        .filter(|f| f["module"].as_u64() == Some(crash.module as u64))
    {
        assert!(
            frame["unknown"].is_null() && !frame["symbols"].as_array().unwrap().is_empty(),
            "a frame of the demo binary is unknown: {frame:#}"
        );
    }

    let module = &report["modules"][crash.module];
    assert_eq!(module["build_id"], crash.build_id.as_str(), "{module:#}");
    assert_eq!(module["source"], source, "{module:#}");
    assert!(module["unknown"].is_null(), "{module:#}");
}

#[test]
fn stripped_demo_crash_is_symbolized_from_the_store() {
    let crash = Crash::new(Shipped::Stripped);
    let store = crash.dir.path().join("store");
    let stored = crash.add_to_store(&crash.debug, &store);

    // Adding the same build-id again keeps the stored file.
    let again = run(faultline()
        .args(["debug-store", "add"])
        .arg(&crash.debug)
        .arg("--store")
        .arg(&store))
    .assert_code(exit::OK);
    assert!(
        again.stdout.ends_with(" (already present)\n"),
        "{}",
        again.context()
    );

    let report = crash.analyze_json(Some(&store));
    check_report(&crash, &report, "store");
    assert_eq!(
        report["modules"][crash.module]["debug_file"],
        stored.display().to_string()
    );
    assert_eq!(report["message"], expected_message());

    // The human report: the message, and the panic site marked as the first frame of own code.
    let human = run(faultline()
        .arg("analyze")
        .arg(&crash.record_path)
        .arg("--debug-dir")
        .arg(&store))
    .assert_code(exit::OK);
    assert!(
        human.stdout.contains(&expected_message()),
        "{}",
        human.context()
    );
    let marked: Vec<&str> = human
        .stdout
        .lines()
        .filter(|l| l.contains("<- first frame of your code"))
        .collect();
    assert_eq!(marked.len(), 1, "{}", human.context());
    assert!(
        marked[0].contains("faultline_demo::apply_discount"),
        "{}",
        human.context()
    );

    // `symbolize -e` on the stripped binary finds the same debug file by build-id and gives the
    // same frames for the panic site (names keep their Rust hash there, as llvm-symbolizer's do).
    let frame = crash
        .record
        .frames
        .iter()
        .zip(report["frames"].as_array().unwrap())
        .find(|(_, f)| f["own_code"] == true)
        .map(|(recorded, _)| recorded)
        .unwrap();
    let probe = frame.lookup_address().unwrap();
    let symbolized = run(faultline()
        .arg("symbolize")
        .arg("-e")
        .arg(&crash.image)
        .arg("--debug-dir")
        .arg(&store)
        .arg(format!("{probe:#x}")))
    .assert_code(exit::OK);
    let names: Vec<String> = crate::llvm_style_functions(&symbolized.stdout)
        .concat()
        .iter()
        .map(|n| without_rust_hash(n).to_owned())
        .collect();
    let own_frame = report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["own_code"] == true)
        .unwrap();
    let expected: Vec<String> = own_frame["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["function"].as_str().unwrap_or("??").to_owned())
        .collect();
    assert_eq!(names, expected, "{}", symbolized.context());
}

/// `core::panicking::panic_fmt::h0123456789abcdef` → `core::panicking::panic_fmt`.
fn without_rust_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((path, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            path
        }
        _ => name,
    }
}

/// The `--compress-debug-sections` styles this objcopy offers, from its `--help`.
fn compression_styles() -> Vec<String> {
    let help = run_ok(Command::new("objcopy").arg("--help")).stdout;
    let line = help
        .lines()
        .find(|l| l.contains("--compress-debug-sections[="))
        .unwrap_or_else(|| panic!("objcopy --help has no --compress-debug-sections:\n{help}"));
    let styles = line
        .split_once("[={")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(styles, _)| styles)
        .unwrap_or_else(|| panic!("unexpected objcopy --help line {line:?}"));
    styles
        .split('|')
        .filter(|s| matches!(*s, "zlib" | "zlib-gnu" | "zstd"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn compressed_debug_files_give_the_same_frames() {
    let crash = Crash::new(Shipped::Stripped);
    let plain_store = crash.dir.path().join("store-plain");
    crash.add_to_store(&crash.debug, &plain_store);
    let reference = symbols(&crash.analyze_json(Some(&plain_store)));

    let styles = compression_styles();
    assert!(styles.iter().any(|s| s == "zlib"), "{styles:?}");
    for style in &styles {
        let compressed = crash
            .dir
            .path()
            .join(format!("faultline-demo.{style}.debug"));
        objcopy(
            &[&format!("--compress-debug-sections={style}")],
            &crash.debug,
            &compressed,
        );
        // The file really is compressed: `C` (SHF_COMPRESSED) on .debug_info, or the GNU
        // `.zdebug_info` name.
        let sections = run_ok(Command::new("readelf").args(["-S", "-W"]).arg(&compressed)).stdout;
        let compressed_info = sections.lines().any(|l| {
            l.contains(".zdebug_info")
                || (l.contains(".debug_info")
                    && l.split_whitespace()
                        .rev()
                        .nth(3)
                        .is_some_and(|flags| flags.contains('C')))
        });
        assert!(compressed_info, "{style}: not compressed?\n{sections}");

        let store = crash.dir.path().join(format!("store-{style}"));
        crash.add_to_store(&compressed, &store);
        let report = crash.analyze_json(Some(&store));
        check_report(&crash, &report, "store");
        assert_eq!(symbols(&report), reference, "{style}");
    }
}

#[test]
fn debuglink_next_to_the_binary_is_found_without_a_store() {
    let crash = Crash::new(Shipped::StrippedWithDebuglink);
    let report = crash.analyze_json(None);
    check_report(&crash, &report, "debuglink");
    assert_eq!(
        report["modules"][crash.module]["debug_file"],
        crash.debug.display().to_string()
    );

    // Without the file beside it, the frames are unknown and the reason says where faultline
    // looked, debuglink included.
    fs::rename(&crash.debug, crash.dir.path().join("elsewhere.debug")).unwrap();
    let report = crash.analyze_json(None);
    let module = &report["modules"][crash.module];
    assert!(module["source"].is_null(), "{module:#}");
    let reason = module["unknown"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("no debug file for build-id {}", crash.build_id))
            && reason.contains("debuglink ")
            && reason.contains("/faultline-demo.debug"),
        "{module:#}"
    );
    for frame in report["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["module"].as_u64() == Some(crash.module as u64))
    {
        assert_eq!(frame["unknown"].as_str(), Some(reason), "{frame:#}");
    }
    assert!(
        crash.image.is_file(),
        "the binary stays where the record says"
    );
}
