//! Every Go crash form faultline reads, printed for real by Go 1.19 and Go 1.27 built now
//! (`tests/targets/go/forms`, `tests/targets/go/cgocrash`): race detector reports (from a
//! `-race` binary and from `go test -race`), goroutine ancestry under
//! `GODEBUG=tracebackancestors=5`, `GOTRACEBACK=crash` aborts, a nil dereference in C code called
//! through cgo, a `go test -timeout` run whose test killed a child Go process with SIGQUIT, and
//! a real dump cut at many byte offsets.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use faultline_dump::{Dump, Level, Limits, group, group_races, parse, parse_all, principal};
use faultline_tests::{
    GoToolchain, RunOptions, go_toolchains, run_with, target_dir, workspace_root,
};

fn forms_dir() -> PathBuf {
    workspace_root().join("tests/targets/go/forms")
}

/// `forms` built with `go`, with `flags` (`-race`), once per test process.
pub(crate) fn forms(go: &GoToolchain, flags: &[&str]) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let key = format!("{}{}", go.series, flags.join(""));
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(k, _)| *k == key) {
        return path.clone();
    }
    let output = target_dir().join("go-targets").join(format!("forms-{key}"));
    // The race detector needs cgo (and gcc).
    go.build_with(&forms_dir(), flags, &[("CGO_ENABLED", "1")], &output);
    built.push((key, output.clone()));
    output
}

/// What a program printed (stdout and stderr together, as a log has them) and its exit code.
pub(crate) fn output(command: &mut Command) -> (String, Option<i32>) {
    let ran = run_with(command, RunOptions::default());
    (format!("{}{}", ran.stdout, ran.stderr), ran.code())
}

fn parsed(text: &str, what: &str) -> Dump {
    let dump = parse(text.as_bytes(), &Limits::default()).unwrap();
    assert!(
        dump.diagnostics.is_empty(),
        "{what}: {:?}\n{text}",
        dump.diagnostics
    );
    dump
}

fn functions(frames: &[faultline_dump::Frame]) -> Vec<&str> {
    frames.iter().map(|f| &*f.function).collect()
}

#[test]
fn race_reports_from_a_race_build_and_from_go_test_race() {
    for go in go_toolchains() {
        let what = format!("{}: -race", go.series);
        let (text, code) = output(Command::new(forms(go, &["-race"])).args(["-mode", "race"]));
        assert_eq!(
            code,
            Some(66),
            "{what}: the race detector's exit status\n{text}"
        );
        let dump = parsed(&text, &what);
        assert!(dump.tasks.is_empty() && dump.crash.is_none(), "{what}");
        assert!(!dump.races.is_empty(), "{what}");
        for race in &dump.races {
            assert_eq!(race.accesses.len(), 2, "{what}: {race:?}");
            let (now, before) = (&race.accesses[0], &race.accesses[1]);
            assert!(
                now.write && !now.previous && before.previous,
                "{what}: {race:?}"
            );
            assert!(now.address.is_some() && now.goroutine.is_some(), "{what}");
            assert!(
                functions(&now.frames).contains(&"main.store"),
                "{what}: {race:?}"
            );
            let store = now
                .frames
                .iter()
                .find(|f| &*f.function == "main.store")
                .unwrap();
            assert!(store.file.as_deref().unwrap().ends_with("forms/main.go"));
            assert!(store.line.is_some());
            // Both goroutines, with where they were created.
            assert_eq!(race.goroutines.len(), 2, "{what}: {race:?}");
            assert!(
                race.goroutines
                    .iter()
                    .all(|g| functions(&g.created_at).contains(&"main.race")),
                "{what}: {race:?}"
            );
            // One goroutine finished before the other wrote.
            let states: Vec<&str> = race.goroutines.iter().map(|g| g.state.as_str()).collect();
            assert!(
                states.contains(&"running") && states.contains(&"finished"),
                "{states:?}"
            );
        }
        // Identical races (the same two accesses in your code) are one group.
        let groups = group_races(&dump, None);
        assert!(
            groups.len() < dump.races.len() || dump.races.len() == 1,
            "{what}"
        );
        assert_eq!(
            groups.iter().map(|g| g.count).sum::<u64>(),
            dump.races.len() as u64
        );

        // `go test -race`: the same report amid the test's own lines.
        let what = format!("{}: go test -race", go.series);
        let mut command = go.command();
        command
            .current_dir(forms_dir())
            .args(["test", "-race", "-run", "TestRace", "-count", "1", "."])
            .env("CGO_ENABLED", "1");
        let (text, code) = output(&mut command);
        assert_eq!(code, Some(1), "{what}\n{text}");
        assert!(text.contains("--- FAIL: TestRace"), "{what}\n{text}");
        let dump = parsed(&text, &what);
        assert!(!dump.races.is_empty(), "{what}");
        assert!(
            dump.races
                .iter()
                .all(|r| functions(&r.accesses[0].frames).contains(&"example.com/forms.store")),
            "{what}: {:?}",
            dump.races
        );
    }
}

#[test]
fn ancestors_are_kept_apart_from_the_goroutines_own_stack_and_creator() {
    for go in go_toolchains() {
        let what = format!("{}: tracebackancestors", go.series);
        let (text, code) = output(
            Command::new(forms(go, &[]))
                .args(["-mode", "ancestry"])
                .env("GODEBUG", "tracebackancestors=5")
                .env("GOTRACEBACK", "all"),
        );
        assert_eq!(code, Some(2), "{what}\n{text}");
        let dump = parsed(&text, &what);
        let by_own = |function: &str| {
            dump.tasks
                .iter()
                .find(|t| t.frames.iter().any(|f| &*f.function == function))
                .unwrap_or_else(|| panic!("{what}: no goroutine in {function}\n{text}"))
        };
        let leaf = by_own("main.leaf");
        // Its own stack ends where its own life began: no ancestor's frame in it.
        assert_eq!(
            functions(&leaf.frames).last().copied(),
            Some("main.leaf"),
            "{what}: {:?}",
            functions(&leaf.frames)
        );
        assert_eq!(
            leaf.creator.as_ref().map(|c| &*c.function),
            Some("main.middle")
        );
        // Three generations: middle (created by root), root (created by main), main.
        let ancestry: Vec<(Vec<&str>, Option<&str>)> = leaf
            .ancestors
            .iter()
            .map(|a| {
                (
                    functions(&a.frames),
                    a.creator.as_ref().map(|c| &*c.function),
                )
            })
            .collect();
        assert_eq!(
            ancestry,
            [
                (vec!["main.middle"], Some("main.root")),
                (vec!["main.root"], Some("main.main")),
                (vec!["main.main"], None),
            ],
            "{what}"
        );
        let middle = by_own("main.middle");
        assert_eq!(leaf.ancestors[0].id, middle.id.unwrap());
        assert!(
            leaf.ancestors
                .iter()
                .all(|a| a.frames.iter().all(|f| !f.inlined))
        );
        // Grouped by their own stacks: three sleepers in three groups, not one.
        let groups = group(&dump, Level::Functions, None);
        let sleepers = groups
            .iter()
            .filter(|g| g.state.as_deref() == Some("sleep"))
            .count();
        assert_eq!(sleepers, 3, "{what}");
        assert_eq!(dump.task_count(), 4, "{what}");
    }
}

#[test]
fn gotraceback_crash_keeps_system_stacks_out_of_the_goroutines() {
    for go in go_toolchains() {
        let what = format!("{}: GOTRACEBACK=crash", go.series);
        let (text, code) = output(
            Command::new(forms(go, &[]))
                .args(["-mode", "crash"])
                .env("GOTRACEBACK", "crash"),
        );
        // The runtime aborts (SIGABRT) after printing, unless it is stopped from dumping core
        // (then it exits 2).
        assert!(
            code.is_none() || code == Some(2),
            "{what}: {code:?}\n{text}"
        );
        let dump = parsed(&text, &what);
        let crash = dump.crash.as_ref().unwrap();
        assert_eq!(
            (crash.kind.as_str(), crash.message.as_str()),
            ("panic", "assignment to entry in nil map"),
            "{what}"
        );
        let headers = text
            .lines()
            .filter(|l| l.starts_with("goroutine ") && !l.starts_with("goroutine 0 "))
            .count() as u64;
        assert_eq!(dump.task_count(), headers, "{what}");
        assert!(dump.tasks.iter().all(|t| t.id.is_some_and(|id| id > 0)));
        let hang = dump
            .tasks
            .iter()
            .find(|t| t.frames.iter().any(|f| &*f.function == "main.hang"))
            .unwrap();
        assert_eq!(hang.state.as_deref(), Some("sleep"));
    }
}

#[test]
fn a_nil_dereference_in_c_under_cgo_decodes_its_signal() {
    for go in go_toolchains() {
        let what = format!("{}: cgo", go.series);
        let binary = target_dir()
            .join("go-targets")
            .join(format!("cgocrash-{}", go.series));
        go.build_with(
            &workspace_root().join("tests/targets/go/cgocrash"),
            &[],
            &[("CGO_ENABLED", "1")],
            &binary,
        );
        let (text, code) = output(&mut Command::new(&binary));
        assert_eq!(code, Some(2), "{what}\n{text}");
        let dump = parsed(&text, &what);
        let crash = dump.crash.as_ref().unwrap();
        let signal = crash
            .signal_info
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: {crash:?}"));
        assert_eq!(signal.name, "SIGSEGV", "{what}");
        assert_eq!(signal.description, "segmentation violation");
        assert_eq!(signal.code, Some(1), "{what}: {signal:?}");
        assert_eq!(
            signal.code_meaning,
            Some("SEGV_MAPERR: address not mapped to object")
        );
        assert_eq!(signal.address, Some(0), "{what}");
        assert!(signal.pc.is_some_and(|pc| pc > 0), "{what}");
        let main = dump.tasks.iter().find(|t| t.id == Some(1)).unwrap();
        assert_eq!(main.state.as_deref(), Some("syscall"), "{what}");
        let names = functions(&main.frames);
        assert!(
            names.contains(&"runtime.cgocall") && names.contains(&"main._Cfunc_crash"),
            "{what}: {names:?}"
        );
        if go.series == "go1.19" {
            // An unexpected signal in the runtime's own execution: the system stack.
            assert_eq!(crash.kind, "fatal error");
            assert!(
                dump.system_stacks.iter().any(|s| s.label == "runtime stack"
                    && functions(&s.frames).contains(&"runtime.sigpanic")),
                "{what}: {:?}",
                dump.system_stacks
            );
        } else {
            assert_eq!(crash.kind, "SIGSEGV");
            assert_eq!(crash.message, "segmentation violation");
            assert!(
                signal.during_cgo,
                "{what}: signal arrived during cgo execution"
            );
            assert_eq!(signal.m, Some(0));
        }
    }
}

#[test]
fn a_childs_traceback_in_go_test_output_is_a_dump_of_its_own() {
    for go in go_toolchains() {
        let what = format!("{}: go test -timeout", go.series);
        let mut command = go.command();
        command.current_dir(forms_dir()).args([
            "test",
            "-v",
            "-run",
            "TestChildQuit",
            "-timeout",
            "3s",
            "-count",
            "1",
            ".",
        ]);
        let (text, code) = output(&mut command);
        assert_eq!(code, Some(1), "{what}\n{text}");
        let dumps = parse_all(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(dumps.len(), 2, "{what}: {dumps:#?}");
        let (child, own) = (&dumps[0], &dumps[1]);
        for d in &dumps {
            assert!(d.diagnostics.is_empty(), "{what}: {:?}", d.diagnostics);
        }
        // The child's, quoted (indented) under the test's log line.
        assert!(child.indent > 0, "{what}");
        assert_eq!(child.crash.as_ref().unwrap().kind, "SIGQUIT");
        assert!(
            child.tasks.iter().any(|t| t
                .frames
                .iter()
                .any(|f| &*f.function == "example.com/forms.hang")),
            "{what}"
        );
        // The test binary's own timeout dump.
        assert_eq!(own.indent, 0);
        assert_eq!(
            own.crash.as_ref().unwrap().message.lines().next(),
            Some("test timed out after 3s"),
            "{what}"
        );
        assert!(
            own.tasks.iter().any(|t| t
                .frames
                .iter()
                .any(|f| &*f.function == "example.com/forms.TestChildQuit")),
            "{what}"
        );
        // Goroutine 1 is in both, never merged: each dump counts its own.
        for d in &dumps {
            assert_eq!(
                d.tasks.iter().filter(|t| t.id == Some(1)).count(),
                1,
                "{what}"
            );
        }
        assert_eq!(principal(&dumps), Some(1));
        assert_eq!(&parse(text.as_bytes(), &Limits::default()).unwrap(), own);
    }
}

/// xorshift64*: the offsets are the same on every run.
fn offsets(len: usize, count: usize) -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % len as u64) as usize
        })
        .collect()
}

#[test]
fn a_dump_cut_anywhere_is_kept_as_far_as_it_goes_and_the_cut_is_named() {
    let go = &go_toolchains()[go_toolchains().len() - 1];
    let (text, _) = output(
        Command::new(forms(go, &[]))
            .args(["-mode", "ancestry"])
            .env("GODEBUG", "tracebackancestors=5")
            .env("GOTRACEBACK", "all"),
    );
    let whole = parsed(&text, "whole");
    for at in offsets(text.len(), 300) {
        let Some(cut) = text.get(..at) else { continue };
        let dumps = parse_all(cut.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("cut at {at}: {e}"));
        let dump = &dumps[principal(&dumps).unwrap()];
        // Every goroutine whose header is before the cut is there.
        let headers = cut
            .split('\n')
            .filter(|l| l.starts_with("goroutine ") && l.ends_with("]:"))
            .count();
        assert_eq!(dump.tasks.len(), headers, "cut at {at}:\n{cut}");
        assert!(dump.tasks.len() <= whole.tasks.len());
        let ends_mid_line =
            !cut.ends_with('\n') && !cut.rsplit('\n').next().unwrap().trim().is_empty();
        if ends_mid_line {
            let last_line = cut.split('\n').count();
            assert!(
                dump.diagnostics
                    .iter()
                    .any(|d| d.line == last_line && d.message.contains("ends mid-line")),
                "cut at {at}: {:?}",
                dump.diagnostics
            );
        }
        for d in &dump.diagnostics {
            assert!(
                d.line >= 1 && d.line <= cut.split('\n').count(),
                "cut at {at}: {d}"
            );
        }
    }
    // The forms a cut leaves, each named with its line.
    let cases = [
        (
            "goroutine 1 [running]:\nmain.main()\n",
            "main.main has no file:line after it",
        ),
        (
            "goroutine 5 [sleep]:\nmain.root()\n\t/app/main.go:12 +0x29\ncreated by main.main in goroutine 1\n",
            "created by main.main has no file:line after it",
        ),
        ("goroutine 7 [chan receive]:\n", "goroutine 7 has no frames"),
        (
            "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:5 +0x1d\n\ngoroutine 9 [sel",
            "ends mid-line",
        ),
    ];
    for (text, expected) in cases {
        let dump = parse(text.as_bytes(), &Limits::default()).unwrap();
        assert!(
            dump.diagnostics
                .iter()
                .any(|d| d.message.contains(expected)),
            "{text:?}: {:?}",
            dump.diagnostics
        );
        assert!(!dump.tasks.is_empty(), "{text:?}");
    }
    let kept = parse(b"goroutine 1 [running]:\nmain.main()\n", &Limits::default()).unwrap();
    assert_eq!(functions(&kept.tasks[0].frames), ["main.main"]);
}
