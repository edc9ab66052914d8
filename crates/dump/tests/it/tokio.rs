//! tokio task dumps: real output of tests/targets/tokio-dump (tokio 1.54.1, made by
//! scripts/tokio-fixtures.sh; see tests/fixtures/tokio/README.md) and a hand-written tree that
//! branches.

use std::collections::BTreeMap;
use std::path::PathBuf;

use faultline_dump::{Format, Limits, Provenance, Runtime, is_own_code, parse};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tokio")
        .join(name);
    std::fs::read(&path).unwrap()
}

#[test]
fn every_task_of_the_dump_with_its_own_code() {
    let d = parse(&fixture("taskdump.txt"), &Limits::default()).unwrap();
    assert_eq!(
        (d.runtime, d.format),
        (Runtime::Tokio, Format::TokioTaskDump)
    );
    assert_eq!(d.format.name(), "tokio_taskdump");
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    assert_eq!(d.task_count(), 6);
    let mut ids: Vec<u64> = d.tasks.iter().map(|t| t.id.unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [3, 4, 5, 6, 7, 8]);

    let mut own: BTreeMap<&str, u64> = BTreeMap::new();
    for t in &d.tasks {
        assert_eq!(t.branches, 0);
        assert!(
            t.frames
                .iter()
                .all(|f| f.provenance == Provenance::TokioTree
                    && f.file.is_some()
                    && f.line.is_some()
                    && f.column.is_some())
        );
        // Innermost first: the leaf is tokio's, the task's own async fn is last.
        assert!(!is_own_code(Runtime::Tokio, &t.frames[0].function, None));
        let first = t
            .frames
            .iter()
            .find(|f| is_own_code(Runtime::Tokio, &f.function, None))
            .expect("an own-code frame");
        assert!(std::ptr::eq(first, t.frames.last().unwrap()));
        assert!(first.file.as_deref().unwrap().ends_with("src/main.rs"));
        *own.entry(&*first.function).or_default() += 1;
    }
    assert_eq!(
        own.into_iter().collect::<Vec<_>>(),
        [
            ("tokio_dump::locker::hold", 1),
            ("tokio_dump::sleeper::nap", 2),
            ("tokio_dump::waiter::wait_for_order", 3),
        ]
    );

    let hold = d
        .tasks
        .iter()
        .find(|t| &*t.frames.last().unwrap().function == "tokio_dump::locker::hold")
        .unwrap();
    assert_eq!(hold.frames.len(), 5);
    let f = hold.frames.last().unwrap();
    assert_eq!((f.line, f.column), (Some(38), Some(33)));
    assert_eq!(
        &*hold.frames[0].function,
        "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>"
    );

    // Tasks with the same stack share one copy of it.
    let waiters: Vec<_> = d
        .tasks
        .iter()
        .filter(|t| t.frames.last().unwrap().function.contains("wait_for_order"))
        .collect();
    assert_eq!(waiters.len(), 3);
    assert!(std::sync::Arc::ptr_eq(
        &waiters[0].frames,
        &waiters[1].frames
    ));
}

/// A task in `join!` on two sleeps and a oneshot: the first leaf path is kept and the other
/// two leaves are counted. Plain spaces, no `task <n>:` framing, and a second task after it.
const BRANCHING: &str = "\
╼ shop::serve::{{closure}} at /src/main.rs:18:20
  └╼ shop::load at /src/main.rs:23:20
     ├╼ <tokio::time::sleep::Sleep as core::future::future::Future> at /t/src/time/sleep.rs:457:27
     │  └╼ tokio::time::sleep::Sleep at /t/src/time/sleep.rs:384:16
     ├╼ tokio::time::sleep::Sleep at /t/src/time/sleep.rs:384:16
     └╼ tokio::sync::oneshot::Inner<T> at /t/src/sync/oneshot.rs:1318:16
╼ shop::idle at /src/idle.rs:5
  └╼ tokio::task::yield_now::yield_now
";

#[test]
fn a_branching_tree_keeps_its_first_leaf_path() {
    let d = parse(BRANCHING.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(d.format, Format::TokioTaskDump);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    assert_eq!(d.tasks.len(), 2);

    let t = &d.tasks[0];
    assert_eq!(t.id, None);
    assert_eq!(t.branches, 2);
    let functions: Vec<&str> = t.frames.iter().map(|f| &*f.function).collect();
    assert_eq!(
        functions,
        [
            "tokio::time::sleep::Sleep",
            "<tokio::time::sleep::Sleep as core::future::future::Future>",
            "shop::load",
            "shop::serve::{{closure}}",
        ]
    );
    assert_eq!(t.frames[0].line, Some(384));
    assert_eq!(t.frames[3].file.as_deref(), Some("/src/main.rs"));

    let idle = &d.tasks[1];
    assert_eq!(idle.branches, 0);
    assert_eq!(idle.frames.len(), 2);
    assert_eq!(idle.frames[0].file, None);
    let root = &idle.frames[1];
    assert_eq!((root.line, root.column), (Some(5), None));
}

#[test]
fn unknown_lines_are_diagnostics_and_limits_hold() {
    let text = "task 1:\n╼ a::b at /x.rs:1:2\nsomething else\n";
    let d = parse(text.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(d.tasks.len(), 1);
    assert_eq!(d.tasks[0].id, Some(1));
    assert_eq!(d.diagnostics.len(), 1);
    assert_eq!(d.diagnostics[0].line, 3);

    let limits = Limits {
        max_frames: 1,
        ..Limits::default()
    };
    assert!(parse(BRANCHING.as_bytes(), &limits).is_err());
    let limits = Limits {
        max_tasks: 1,
        ..Limits::default()
    };
    assert!(parse(BRANCHING.as_bytes(), &limits).is_err());
}
