//! Rust panic output: real std output (rustc 1.95, made by scripts/rust-fixtures.sh) and one
//! hand-written file in the pre-1.73 layout (see tests/fixtures/rust/README.md).

use std::path::PathBuf;

use faultline_dump::{Format, Level, Limits, Runtime, group, parse};

fn dump(name: &str) -> faultline_dump::Dump {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rust")
        .join(name);
    parse(&std::fs::read(&path).unwrap(), &Limits::default()).unwrap()
}

const THREADS: [(&str, &str); 3] = [
    (
        "worker-1",
        "index out of bounds: the len is 3 but the index is 7",
    ),
    ("<unnamed>", "unnamed thread says 42"),
    ("main", "config value missing\nsecond line"),
];

#[test]
fn every_panic_is_a_task_with_its_thread_and_message() {
    for file in [
        "panic-nobacktrace.txt",
        "panic-backtrace.txt",
        "panic-backtrace-full.txt",
        "panic-stripped.txt",
    ] {
        let d = dump(file);
        assert_eq!(
            (d.runtime, d.format),
            (Runtime::Rust, Format::RustPanic),
            "{file}"
        );
        assert!(d.diagnostics.is_empty(), "{file}: {:?}", d.diagnostics);
        assert_eq!(d.version.as_deref(), Some("rust1.91 or later"), "{file}");
        let seen: Vec<(&str, &str)> = d
            .tasks
            .iter()
            .map(|t| (t.name.as_deref().unwrap(), t.message.as_deref().unwrap()))
            .collect();
        assert_eq!(seen, THREADS, "{file}");
        assert!(
            d.tasks
                .iter()
                .all(|t| t.id.is_some() && t.state.as_deref() == Some("panicked"))
        );
        assert_eq!(d.crash.as_ref().unwrap().message, THREADS[0].1);
    }
}

#[test]
fn backtraces_name_functions_and_locations() {
    let d = dump("panic-backtrace.txt");
    let worker = &d.tasks[0];
    let inner = worker
        .frames
        .iter()
        .find(|f| &*f.function == "main::inner")
        .expect("main::inner in the worker's backtrace");
    assert_eq!(inner.file.as_deref(), Some("./main.rs"));
    assert_eq!((inner.line, inner.column), (Some(2), Some(30)));
    // The first frame of the program's own code, past std's panic machinery.
    let groups = group(&d, Level::Exact, None);
    let g = groups
        .iter()
        .find(|g| g.name.as_deref() == Some("worker-1"))
        .unwrap();
    assert_eq!(&*g.frames[g.own_frame.unwrap()].function, "main::inner");

    let full = dump("panic-backtrace-full.txt");
    let frames = &full.tasks[0].frames;
    assert!(
        frames.len() > worker.frames.len(),
        "full backtraces show more frames"
    );
    assert!(frames.iter().all(|f| f.address.is_some()));
    assert!(frames.iter().any(|f| f.function.contains("main::inner")));

    // A stripped binary prints no frames at all: the panics are still there.
    let stripped = dump("panic-stripped.txt");
    assert!(stripped.tasks.iter().all(|t| t.frames.is_empty()));
}

#[test]
fn the_pre_1_73_layout() {
    let d = dump("panic-rust-1.70-handwritten.txt");
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    assert_eq!(d.task_count(), 1);
    let t = &d.tasks[0];
    assert_eq!(t.name.as_deref(), Some("main"));
    assert_eq!(t.id, None);
    assert_eq!(
        t.message.as_deref(),
        Some("called `Option::unwrap()` on a `None` value")
    );
    let groups = group(&d, Level::Functions, None);
    assert_eq!(
        &*groups[0].frames[groups[0].own_frame.unwrap()].function,
        "shop::cart::total"
    );
}
