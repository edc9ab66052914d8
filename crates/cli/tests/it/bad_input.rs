//! Bad input, end to end: debug files of another build, truncated and garbage files, invalid
//! crash records, malformed addresses, files without a build-id. Each gets the exit code
//! docs/cli.md documents, an error on one line naming the file (and, for records, where in
//! it), and never a panic; and symbolization never uses a file of another build.

use std::fs;
use std::path::{Path, PathBuf};

use faultline_tests::{CProgram, Finished, gnu_build_id, nm_symbol, run, split_debug};
use serde_json::Value;

use crate::records::{self, frame_in, frame_outside, module};
use crate::{C_PROGRAM, exit, faultline, stdout_json, with_input};

/// Build-ids forced with `-Wl,--build-id=0x…`: the program the crash is "from", another build
/// of the same source, and one no file has.
const ID_CRASHED: &str = "b1d0000000000000000000000000000000000a01";
const ID_OTHER: &str = "b1d0000000000000000000000000000000000b02";
const ID_UNKNOWN: &str = "b1d0000000000000000000000000000000000c03";

/// Two builds of the same program that differ only in their build-id, so a file of the wrong
/// one would give plausible, wrong answers: exactly what must never happen.
struct TwoBuilds {
    dir: tempfile::TempDir,
    crashed: PathBuf,
    crashed_debug: PathBuf,
    other_debug: PathBuf,
    /// Where `work_helper` is, in the crashed build.
    helper: u64,
}

impl TwoBuilds {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let crashed_dir = dir.path().join("crashed");
        let other_dir = dir.path().join("other");
        fs::create_dir(&crashed_dir).unwrap();
        fs::create_dir(&other_dir).unwrap();
        let crashed = CProgram::new("prog", C_PROGRAM, ID_CRASHED).compile(&crashed_dir);
        let other = CProgram::new("prog", C_PROGRAM, ID_OTHER).compile(&other_dir);
        let crashed_debug = dir.path().join("crashed.debug");
        let other_debug = dir.path().join("other.debug");
        split_debug(&crashed, &crashed_debug);
        split_debug(&other, &other_debug);
        assert_eq!(gnu_build_id(&crashed_debug).as_deref(), Some(ID_CRASHED));
        assert_eq!(gnu_build_id(&other_debug).as_deref(), Some(ID_OTHER));
        let helper = nm_symbol(&crashed, "work_helper").address;
        Self {
            dir,
            crashed,
            crashed_debug,
            other_debug,
            helper,
        }
    }

    /// A record of the crashed build with one frame in `work_helper`.
    fn record(&self) -> PathBuf {
        let record = records::record(
            vec![module("/srv/app/prog", Some(ID_CRASHED))],
            vec![frame_in(0, self.helper)],
        );
        records::write(self.dir.path(), "crash", &record)
    }
}

/// Checks the documented shape of a failure: the exit code, no panic, and one line on stderr,
/// `faultline: error: …`, that contains each of `fragments`.
#[track_caller]
fn assert_error(run: Finished, code: i32, fragments: &[&str]) -> Finished {
    let run = run.assert_code(code);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error:\n{}", run.context());
    assert!(
        lines[0].starts_with("faultline: error: "),
        "{}",
        run.context()
    );
    for fragment in fragments {
        assert!(
            lines[0].contains(fragment),
            "stderr should contain {fragment:?}:\n{}",
            run.context()
        );
    }
    run
}

/// Runs `faultline analyze RECORD --format json ARGS...`, which must succeed.
fn analyze_json(record: &Path, args: &[&str], files: &[&Path]) -> Value {
    let mut command = faultline();
    command
        .arg("analyze")
        .arg(record)
        .args(["--format", "json"])
        .args(args);
    for file in files {
        command.arg("--debug-file").arg(file);
    }
    stdout_json(&run(&mut command).assert_code(exit::OK))
}

/// Files under `dir`, recursively (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn debug_file_of_another_build_is_never_used() {
    let builds = TwoBuilds::new();
    let record = builds.record();
    let other = builds.other_debug.display().to_string();

    // The right file works: the fixture and the record are sound.
    let report = analyze_json(&record, &[], &[&builds.crashed_debug]);
    assert_eq!(
        report["frames"][0]["symbols"][0]["function"], "work_helper",
        "{report:#}"
    );
    assert_eq!(report["modules"][0]["source"], "given");

    // The other build's file, given explicitly: refused, naming it and its build-id among the
    // places tried (a file given for one module is not "the" debug file of every other).
    let report = analyze_json(&record, &[], &[&builds.other_debug]);
    let mismatch = format!("{other} (given: build-id {ID_OTHER})");
    let unknown = report["frames"][0]["unknown"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        unknown.starts_with(&format!("no debug file for build-id {ID_CRASHED}"))
            && unknown.contains(&mismatch),
        "{report:#}"
    );
    assert_eq!(report["frames"][0]["symbols"], Value::Array(Vec::new()));
    assert_eq!(report["modules"][0]["unknown"], unknown.as_str());
    assert!(report["modules"][0]["debug_file"].is_null());

    // The other build's file filed in a store under the crashed build's build-id.
    let store = builds.dir.path().join("store");
    let misfiled = store
        .join(".build-id")
        .join(&ID_CRASHED[..2])
        .join(format!("{}.debug", &ID_CRASHED[2..]));
    fs::create_dir_all(misfiled.parent().unwrap()).unwrap();
    fs::copy(&builds.other_debug, &misfiled).unwrap();
    let store_arg = store.display().to_string();
    let report = analyze_json(&record, &["--debug-dir", &store_arg], &[]);
    assert_eq!(
        report["frames"][0]["unknown"],
        format!(
            "build-id mismatch: {} has build-id {ID_OTHER}, the module has {ID_CRASHED}",
            misfiled.display()
        )
        .as_str(),
        "{report:#}"
    );

    // The human report says the same.
    let human = run(faultline()
        .arg("analyze")
        .arg(&record)
        .arg("--debug-file")
        .arg(&builds.other_debug))
    .assert_code(exit::OK);
    assert!(
        human.stdout.contains(&format!("unknown: {unknown}")),
        "{}",
        human.context()
    );

    // `symbolize --build-id` with only the wrong file: nothing found (exit 3), and why.
    assert_error(
        run(faultline()
            .args(["symbolize", "--build-id", ID_CRASHED, "--debug-file"])
            .arg(&builds.other_debug)
            .arg(format!("{:#x}", builds.helper))),
        exit::NOT_FOUND,
        &[&mismatch],
    );
}

/// The ELF64 section header table of `elf`: (offset, entry size, count).
fn section_table(elf: &[u8]) -> (usize, usize, usize) {
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let shoff = u64::from_le_bytes(elf[0x28..0x30].try_into().unwrap());
    (usize::try_from(shoff).unwrap(), u16_at(0x3a), u16_at(0x3c))
}

/// Deterministic pseudo-random bytes (xorshift64, fixed seed).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn truncated_empty_and_garbage_files_are_bad_input() {
    let builds = TwoBuilds::new();
    let debug = fs::read(&builds.crashed_debug).unwrap();
    let (shoff, shentsize, shnum) = section_table(&debug);
    assert!(
        shoff > 0 && shoff + shentsize * shnum <= debug.len(),
        "{shoff} {shentsize} {shnum}"
    );
    let bad = builds.dir.path().join("bad");
    fs::create_dir(&bad).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = [
        1,
        4,
        16,
        63,
        64,
        200,
        shoff / 2,
        shoff,
        // In the middle of the section header table.
        shoff + shentsize * (shnum / 2) + shentsize / 2,
        debug.len() - 1,
    ]
    .into_iter()
    .map(|len| (format!("truncated-{len}.debug"), debug[..len].to_vec()))
    .collect();
    files.push(("empty.debug".to_owned(), Vec::new()));
    files.push(("random.debug".to_owned(), noise(4096, 0x5eed)));
    let mut elf_noise = b"\x7fELF\x02\x01\x01".to_vec();
    elf_noise.extend(noise(4096, 0xe1f));
    files.push(("elf-magic-then-random.debug".to_owned(), elf_noise));

    let record = builds.record();
    for (name, bytes) in files {
        let path = bad.join(&name);
        fs::write(&path, bytes).unwrap();
        let shown = path.display().to_string();

        assert_error(
            run(faultline()
                .arg("symbolize")
                .arg("-e")
                .arg(&path)
                .arg("0x1000")),
            exit::BAD_INPUT,
            &[&shown],
        );

        let store = builds.dir.path().join(format!("store-{name}"));
        assert_error(
            run(faultline()
                .args(["debug-store", "add"])
                .arg(&path)
                .arg("--store")
                .arg(&store)),
            exit::BAD_INPUT,
            &[&shown],
        );
        assert_eq!(files_under(&store), Vec::<PathBuf>::new(), "{name}");

        // Offered as a debug file for a crash, it is skipped: the frame is unknown, and the
        // command still succeeds.
        let report = analyze_json(&record, &[], &[&path]);
        let unknown = report["frames"][0]["unknown"].as_str().unwrap_or_default();
        assert!(
            unknown.starts_with(&format!("no debug file for build-id {ID_CRASHED}")),
            "{name}: {report:#}"
        );
    }
}

#[test]
fn invalid_records_name_the_file_and_the_place() {
    let builds = TwoBuilds::new();
    let good = fs::read_to_string(builds.record()).unwrap();
    let value: Value = serde_json::from_str(&good).unwrap();
    let dir = builds.dir.path();

    /// A record made from the good one: by editing its JSON, or as raw text.
    enum Bad {
        Edit(fn(&mut Value)),
        Text(String),
    }
    let half = good[..good.len() / 2].to_owned();
    let half_lines = half.lines().count();
    let cases: Vec<(&str, Bad, Vec<String>)> = vec![
        (
            "build-id-not-hex",
            Bad::Edit(|v| v["modules"][0]["build_id"] = "xyz1".into()),
            vec!["`modules[0].build_id`".into(), "xyz1".into()],
        ),
        (
            "address-not-hex",
            Bad::Edit(|v| v["frames"][0]["address"] = "0xnothex".into()),
            vec!["`frames[0].address`".into(), "0xnothex".into()],
        ),
        (
            "unknown-frame-kind",
            Bad::Edit(|v| v["frames"][0]["kind"] = "sideways".into()),
            vec!["`frames[0].kind`".into(), "sideways".into()],
        ),
        (
            "module-index-out-of-range",
            Bad::Edit(|v| v["frames"][0]["module"] = 7.into()),
            vec!["`frames[0].module`".into(), "out of range".into()],
        ),
        (
            "module-address-disagrees",
            Bad::Edit(|v| v["frames"][0]["module_address"] = "0x1".into()),
            vec!["`frames[0].module_address`".into()],
        ),
        (
            "version-2",
            Bad::Edit(|v| v["version"] = 2.into()),
            vec!["unsupported record version 2".into()],
        ),
        (
            "other-format",
            Bad::Edit(|v| v["format"] = "minidump".into()),
            vec!["not a faultline crash record".into()],
        ),
        (
            "not-json",
            Bad::Text("this is not JSON\n".into()),
            vec!["(line 1, column".into()],
        ),
        (
            "truncated-json",
            Bad::Text(half),
            vec![format!("(line {half_lines}, column")],
        ),
        ("empty", Bad::Text(String::new()), vec!["(line 1".into()]),
    ];
    for (name, bad, expected) in cases {
        let text = match bad {
            Bad::Edit(edit) => {
                let mut edited = value.clone();
                edit(&mut edited);
                serde_json::to_string_pretty(&edited).unwrap()
            }
            Bad::Text(text) => text,
        };
        let path = dir.join(format!("{name}.json"));
        fs::write(&path, &text).unwrap();
        let mut fragments = vec![format!("faultline: error: {}: ", path.display())];
        fragments.extend(expected);
        // For a value of the wrong form, the line is the line it is on.
        for bad_value in ["xyz1", "0xnothex", "sideways"] {
            if let Some(line) = text.lines().position(|l| l.contains(bad_value)) {
                fragments.push(format!("(line {}, column", line + 1));
            }
        }
        let fragments: Vec<&str> = fragments.iter().map(String::as_str).collect();
        assert_error(
            run(faultline().arg("analyze").arg(&path)),
            exit::BAD_INPUT,
            &fragments,
        );
    }

    // A record that is not there is bad input too, named.
    let missing = dir.join("missing.json");
    assert_error(
        run(faultline().arg("analyze").arg(&missing)),
        exit::BAD_INPUT,
        &[&missing.display().to_string()],
    );
}

#[test]
fn frames_outside_modules_and_modules_without_build_id_are_unknown_not_errors() {
    let builds = TwoBuilds::new();
    let record = records::record(
        vec![module("/srv/app/no-build-id", None)],
        vec![frame_outside(0x7f00_dead_beef), frame_in(0, builds.helper)],
    );
    let path = records::write(builds.dir.path(), "odd-frames", &record);

    // Even a file whose functions match is not used for a module without a build-id.
    let report = analyze_json(&path, &[], &[&builds.crashed_debug]);
    assert_eq!(
        report["frames"][0]["unknown"], "address outside every loaded module",
        "{report:#}"
    );
    let no_id = report["frames"][1]["unknown"].as_str().unwrap_or_default();
    assert!(
        no_id.contains("/srv/app/no-build-id") && no_id.contains("has no GNU build-id"),
        "{report:#}"
    );
    assert_eq!(report["modules"][0]["unknown"], no_id);

    let human = run(faultline()
        .arg("analyze")
        .arg(&path)
        .arg("--debug-file")
        .arg(&builds.crashed_debug))
    .assert_code(exit::OK);
    for reason in ["address outside every loaded module", "has no GNU build-id"] {
        assert!(human.stdout.contains(reason), "{}", human.context());
    }
}

#[test]
fn debug_store_refuses_a_binary_without_build_id() {
    let dir = tempfile::tempdir().unwrap();
    let binary = CProgram::new("anonymous", C_PROGRAM, ID_UNKNOWN)
        .without_build_id()
        .compile(dir.path());
    assert_eq!(gnu_build_id(&binary), None, "the fixture has no build-id");
    let store = dir.path().join("store");
    assert_error(
        run(faultline()
            .args(["debug-store", "add"])
            .arg(&binary)
            .arg("--store")
            .arg(&store)),
        exit::BAD_INPUT,
        &[&binary.display().to_string(), "-Wl,--build-id", "gobuildid"],
    );
    assert_eq!(files_under(&store), Vec::<PathBuf>::new());
}

#[test]
fn malformed_addresses_are_bad_input_named_by_position() {
    let builds = TwoBuilds::new();
    let input = format!("{:#x}\n# a comment\nnot-an-address\n0x10\n", builds.helper);
    assert_error(
        faultline_tests::run_with(
            faultline().arg("symbolize").arg("-e").arg(&builds.crashed),
            with_input(&input),
        ),
        exit::BAD_INPUT,
        &["<stdin>:3", "not-an-address"],
    );
    assert_error(
        run(faultline()
            .arg("symbolize")
            .arg("-e")
            .arg(&builds.crashed)
            .args(["0x10", "0xg"])),
        exit::BAD_INPUT,
        &["address argument 2", "0xg"],
    );
}

#[test]
fn unknown_build_id_is_not_found_saying_where_faultline_looked() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-store");
    fs::create_dir(&empty).unwrap();
    assert_error(
        run(faultline()
            .args(["symbolize", "--build-id", ID_UNKNOWN, "--debug-dir"])
            .arg(&empty)
            .arg("0x1000")),
        exit::NOT_FOUND,
        &[ID_UNKNOWN, &empty.display().to_string()],
    );
}

#[test]
fn bad_usage_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    for args in [
        vec!["--no-such-flag".to_owned()],
        vec!["symbolize".to_owned(), "0x10".to_owned()],
        vec![
            "symbolize".to_owned(),
            "--build-id".to_owned(),
            "not-hex".to_owned(),
        ],
        vec![
            "symbolize".to_owned(),
            "--build-id".to_owned(),
            ID_UNKNOWN.to_owned(),
            "--debug-dir".to_owned(),
            not_a_dir.display().to_string(),
        ],
    ] {
        let ran = run(faultline().args(&args)).assert_code(exit::BAD_INPUT);
        assert!(!ran.stderr.is_empty(), "{}", ran.context());
    }
}

/// docs/cli.md: an error is one line, `faultline: error: <what>: <why>`. The cause is said
/// once, not repeated after itself.
#[test]
fn error_messages_state_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("notes.txt");
    fs::write(&not_elf, "not an ELF file\n").unwrap();
    let missing = dir.path().join("missing");
    let runs = [
        run(faultline()
            .arg("symbolize")
            .arg("-e")
            .arg(&not_elf)
            .arg("0x10")),
        run(faultline()
            .args(["debug-store", "add"])
            .arg(&not_elf)
            .arg("--store")
            .arg(dir.path().join("store"))),
        run(faultline()
            .arg("symbolize")
            .arg("-e")
            .arg(&missing)
            .arg("0x10")),
    ];
    for ran in runs {
        let ran = assert_error(ran, exit::BAD_INPUT, &[]);
        let parts: Vec<&str> = ran.stderr.trim_end().split(": ").collect();
        for pair in parts.windows(2) {
            assert_ne!(pair[0], pair[1], "cause repeated:\n{}", ran.context());
        }
    }
}
