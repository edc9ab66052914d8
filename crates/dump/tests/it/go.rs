use std::collections::BTreeMap;
use std::path::PathBuf;

use faultline_dump::{Dump, Format, Level, Limits, Runtime, group, is_own_code, parse};

const VERSIONS: [&str; 2] = ["go1.19", "go1.27"];
const BUILDS: [&str; 2] = ["default", "stripped"];

fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/go")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn dump(path: &str) -> Dump {
    parse(&fixture(path), &Limits::default()).unwrap()
}

fn every_build(mut check: impl FnMut(&str, &str)) {
    for version in VERSIONS {
        for build in BUILDS {
            check(version, build);
        }
    }
}

/// Tasks by (first own-code function, state), as the README's table counts them.
fn tally(dump: &Dump) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for task in &dump.tasks {
        let own = task
            .frames
            .iter()
            .find(|f| is_own_code(Runtime::Go, &f.function, None))
            .map_or_else(|| "-".to_owned(), |f| f.function.to_string());
        let state = task.state.clone().unwrap_or_default();
        *out.entry((own, state)).or_insert(0) += task.count;
    }
    out
}

/// The parked goroutines of the blocker: (own frame, state on 1.19, state on 1.27, count).
pub(super) const PARKED: &[(&str, &str, &str, u64)] = &[
    ("main.waitOnChannel", "chan receive", "chan receive", 7),
    ("main.waitInSelect", "select", "select", 5),
    ("main.lockMutex", "semacquire", "sync.Mutex.Lock", 4),
    ("main.readForever", "IO wait", "IO wait", 3),
    ("main.sleepForever", "sleep", "sleep", 6),
    ("main.deepWait", "chan receive", "chan receive", 2),
    ("main.lockedWait", "chan receive", "chan receive", 1),
    ("main.spawner", "semacquire", "sync.WaitGroup.Wait", 1),
    ("main.spawnedWorker", "chan send", "chan send", 2),
];

fn check_parked(version: &str, dump: &Dump, what: &str) {
    let tally = tally(dump);
    for &(own, old, new, count) in PARKED {
        let state = if version == "go1.19" { old } else { new };
        assert_eq!(
            tally.get(&(own.to_owned(), state.to_owned())).copied(),
            Some(count),
            "{what}: {own} [{state}]; tally: {tally:#?}"
        );
    }
    let locked: Vec<_> = dump.tasks.iter().filter(|t| t.locked_to_thread).collect();
    assert_eq!(locked.len(), 1, "{what}");
    for task in &dump.tasks {
        let own = task
            .frames
            .iter()
            .find(|f| f.function.starts_with("main."))
            .map(|f| &*f.function);
        if PARKED.iter().any(|p| Some(p.0) == own) {
            let creator = task.creator.as_ref().map(|c| &*c.function);
            let expected = if own == Some("main.spawnedWorker") {
                "main.spawner"
            } else {
                "main.main.func1"
            };
            assert_eq!(creator, Some(expected), "{what}: creator of {own:?}");
            assert_eq!(
                task.creator_id.is_some(),
                version == "go1.27",
                "{what}: `in goroutine N` of {own:?}"
            );
        }
    }
}

#[test]
fn debug2_dumps() {
    every_build(|version, build| {
        let what = format!("{version}/{build}/goroutine-debug2.txt");
        let dump = dump(&what);
        assert_eq!(dump.format, Format::GoTraceback);
        assert_eq!(dump.task_count(), 35, "{what}");
        assert!(
            dump.diagnostics.is_empty(),
            "{what}: {:?}",
            dump.diagnostics
        );
        assert!(dump.crash.is_none(), "{what}");
        check_parked(version, &dump, &what);
        let main = dump.tasks.iter().find(|t| t.id == Some(1)).unwrap();
        assert_eq!(main.state.as_deref(), Some("select (no cases)"), "{what}");

        // Grouped by the innermost own frame, the parked goroutines fall into their groups.
        let groups = group(&dump, Level::OwnTop(1), None);
        let first = &groups[0];
        assert_eq!(first.count, 7, "{what}");
        assert_eq!(
            first.frames[first.own_frame.unwrap()].function.as_ref(),
            "main.waitOnChannel"
        );
        assert_eq!(groups.iter().map(|g| g.count).sum::<u64>(), 35);

        // The deep goroutines: Go 1.27 marks its cut, Go 1.19 cuts silently here.
        let deep: Vec<_> = dump
            .tasks
            .iter()
            .filter(|t| t.frames.iter().any(|f| &*f.function == "main.deepWait"))
            .collect();
        assert_eq!(deep.len(), 2);
        for task in deep {
            match version {
                "go1.27" => {
                    assert_eq!(task.elided, Some(Some(103)), "{what}");
                    assert_eq!(task.frames.len(), 100, "{what}");
                }
                _ => {
                    assert_eq!(task.elided, None, "{what}");
                    assert_eq!(task.frames.len(), 97, "{what}");
                }
            }
        }
    });
}

#[test]
fn sigquit_dumps() {
    every_build(|version, build| {
        for level in ["all", "system", "crash"] {
            let what = format!("{version}/{build}/sigquit-{level}.txt");
            let dump = dump(&what);
            assert!(
                dump.diagnostics.is_empty(),
                "{what}: {:?}",
                dump.diagnostics
            );
            assert_eq!(
                dump.crash.as_ref().map(|c| c.kind.as_str()),
                Some("SIGQUIT"),
                "{what}"
            );
            // `PC=…` lines and the repeats for other threads are not part of the message.
            assert_eq!(
                dump.crash.as_ref().map(|c| c.message.as_str()),
                Some("quit"),
                "{what}"
            );
            check_parked(version, &dump, &what);
            // Runtime frames are shown, and the deep stacks are cut with a marker.
            assert!(
                dump.tasks.iter().any(|t| t
                    .frames
                    .first()
                    .is_some_and(|f| &*f.function == "runtime.gopark")),
                "{what}"
            );
            let marker = if version == "go1.27" {
                Some(Some(107))
            } else {
                Some(None)
            };
            assert!(
                dump.tasks.iter().filter(|t| t.elided == marker).count() == 2,
                "{what}"
            );
            // Runtime goroutines are there too.
            assert!(
                dump.tasks
                    .iter()
                    .any(|t| t.state.as_deref() == Some("force gc (idle)")),
                "{what}"
            );
        }
    });
}

#[test]
fn panics_and_faults() {
    every_build(|version, build| {
        let path = |name: &str| format!("{version}/{build}/{name}");

        let d = dump(&path("panic.txt"));
        let crash = d.crash.as_ref().unwrap();
        assert_eq!(crash.kind, "panic");
        assert_eq!(
            crash.message,
            "faultline-blocker: deliberate panic in main.crash (request 42)"
        );
        assert_eq!(d.task_count(), 1);
        let functions: Vec<&str> = d.tasks[0].frames.iter().map(|f| &*f.function).collect();
        assert!(
            functions.contains(&"main.crash")
                && functions.contains(&"main.handle")
                && functions.contains(&"main.main"),
            "{functions:?}"
        );
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

        let d = dump(&path("panic-all.txt"));
        check_parked(version, &d, &path("panic-all.txt"));
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

        let d = dump(&path("fault-nilptr.txt"));
        let crash = d.crash.as_ref().unwrap();
        assert_eq!(
            crash.message,
            "runtime error: invalid memory address or nil pointer dereference"
        );
        assert!(
            crash
                .signal
                .as_deref()
                .unwrap_or("")
                .starts_with("signal SIGSEGV")
        );
        assert_eq!(
            d.tasks[0]
                .frames
                .iter()
                .find(|f| f.function.starts_with("main."))
                .map(|f| &*f.function),
            Some("main.derefNil")
        );

        let d = dump(&path("fault-nilmap.txt"));
        assert_eq!(
            d.crash.as_ref().unwrap().message,
            "assignment to entry in nil map"
        );

        let d = dump(&path("fault-overflow.txt"));
        let crash = d.crash.as_ref().unwrap();
        assert_eq!(crash.kind, "fatal error");
        assert!(
            crash
                .message
                .starts_with("stack overflow\nruntime: goroutine stack exceeds"),
            "{crash:?}"
        );
        // The crashing thread's system stack is kept with the crash, not counted as a task.
        assert!(
            d.system_stacks
                .iter()
                .any(|s| s.label == "runtime stack" && !s.frames.is_empty()),
            "{:?}",
            d.system_stacks
        );
        assert!(d.tasks.iter().all(|t| t.id.is_some()), "{:?}", d.tasks);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

        let d = dump(&path("fault-unlock.txt"));
        let crash = d.crash.as_ref().unwrap();
        assert_eq!(
            (crash.kind.as_str(), crash.message.as_str()),
            ("fatal error", "sync: unlock of unlocked mutex")
        );
    });
}

#[test]
fn debug1_profiles() {
    every_build(|version, build| {
        let what = format!("{version}/{build}/goroutine-debug1.txt");
        let d = dump(&what);
        assert_eq!(d.format, Format::GoPprofDebug1);
        assert!(d.diagnostics.is_empty(), "{what}: {:?}", d.diagnostics);
        let counts: Vec<u64> = d.tasks.iter().map(|t| t.count).collect();
        assert_eq!(counts, [7, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1], "{what}");
        assert_eq!(
            d.tasks[0].frames.first().map(|f| &*f.function),
            Some("main.waitOnChannel")
        );
        assert!(d.tasks[0].frames[0].line.is_some() && d.tasks[0].frames[0].offset.is_some());
    });
}

#[test]
fn debug0_profiles() {
    every_build(|version, build| {
        let what = format!("{version}/{build}/goroutine-debug0.pb.gz");
        let d = dump(&what);
        assert_eq!(d.format, Format::GoPprofProto);
        assert!(d.diagnostics.is_empty(), "{what}: {:?}", d.diagnostics);
        assert_eq!(d.tasks.len(), 13, "{what}");
        assert_eq!(d.task_count(), 35, "{what}");
        // The same stacks as the debug=1 text of the same process, with the runtime frames the
        // text leaves out.
        let text = dump(&format!("{version}/{build}/goroutine-debug1.txt"));
        let tally_proto = tally(&d);
        let tally_text = tally(&text);
        assert_eq!(tally_proto, tally_text, "{what}");
        let first = &d.tasks[0];
        assert_eq!(first.count, 7);
        assert!(
            first
                .frames
                .iter()
                .any(|f| &*f.function == "main.waitOnChannel")
        );
        assert!(
            first
                .frames
                .iter()
                .all(|f| f.file.is_some() && f.line.is_some())
        );
    });
}

#[test]
fn dumps_inside_logs_parse_like_the_originals() {
    let original = dump("go1.27/default/goroutine-debug2.txt");
    for name in ["cri", "crlf", "logfmt"] {
        let embedded = dump(&format!("embedded/goroutine-debug2-{name}.txt"));
        assert!(
            embedded.diagnostics.is_empty(),
            "{name}: {:?}",
            embedded.diagnostics
        );
        assert_eq!(embedded.tasks, original.tasks, "{name}");
    }
    let panic = dump("embedded/panic-cri.txt");
    assert_eq!(panic.crash.as_ref().map(|c| c.kind.as_str()), Some("panic"));
    // The service's own log lines before the panic are not Go text: reported, not fatal.
    assert_eq!(panic.diagnostics.len(), 2, "{:?}", panic.diagnostics);
}

#[test]
fn limits_are_typed_errors() {
    let text = fixture("go1.27/default/goroutine-debug2.txt");
    let tight = Limits {
        max_tasks: 10,
        ..Limits::default()
    };
    let err = parse(&text, &tight).unwrap_err();
    assert!(
        err.to_string()
            .contains("task count exceeds the limit of 10"),
        "{err}"
    );
    let tight = Limits {
        max_frames: 20,
        ..Limits::default()
    };
    assert!(
        parse(&text, &tight)
            .unwrap_err()
            .to_string()
            .contains("frame count")
    );
    let tight = Limits {
        max_line: 10,
        ..Limits::default()
    };
    assert!(
        parse(&text, &tight)
            .unwrap_err()
            .to_string()
            .contains("line length")
    );
}
