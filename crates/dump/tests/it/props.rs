//! Properties of parsing, grouping and diffing, on input no fixture has: arbitrary bytes,
//! text assembled from the pieces Go dumps are made of (with extreme numbers), and the real
//! fixtures with bytes flipped, cut short, and lines doubled or dropped.
//!
//! - `parse` never panics and, with the default limits, never fails on a few KB of text: what it
//!   cannot place is a diagnostic. (A gzipped profile may legitimately hit a limit, since a few
//!   KB can inflate to a huge profile; only a `Limit` error is allowed there.)
//! - At every [`Level`], with or without a main module, the groups partition the tasks: their
//!   counts add up to the dump's task count, their ids to the tasks' ids, and no two groups
//!   share a signature.
//! - `diff(g, g)` reports every group unchanged; `diff(a, b)` accounts for every task of both.
//! - A copy of a task added to a dump makes exactly its group grow, by the task's count.
//!
//! Counts saturate at `u64::MAX` (a debug=1 entry may claim any count), and so do the sums the
//! checks compare them with. Inputs that ever broke a property (here or in the fuzzer,
//! `fuzz/fuzz_targets/dump.rs`) are kept in `tests/fixtures/fuzz/` with a note in its README, and
//! `known_failures` checks them all.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use faultline_dump::{Change, Dump, Format, Level, Limits, diff, group, parse};
use proptest::prelude::*;
use proptest::sample::Index;

const LEVELS: [Level; 5] = [
    Level::Exact,
    Level::Functions,
    Level::OwnTop(1),
    Level::OwnTop(2),
    Level::OwnTop(5),
];
const MAIN_MODULES: [Option<&str>; 2] = [None, Some("example.com/shop")];

// ---------------------------------------------------------------------------------------------
// The properties

/// `cases` random cases. A failing case is not written to a `proptest-regressions` file: it
/// becomes a file in `tests/fixtures/fuzz/`, with a note, which `known_failures` checks.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_parse(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Some(dump) = parse_default(&bytes) {
            check_partition(&dump);
        }
    }

    #[test]
    fn dump_like_text_parses_groups_and_diffs(
        text in dump_like_text(),
        other in dump_like_text(),
        copy in any::<Index>(),
    ) {
        let dump = parse_default(text.as_bytes()).expect("text never hits a limit");
        check_partition(&dump);
        check_copy_grows_its_group(&dump, copy.index(dump.tasks.len().max(1)));
        let other = parse_default(other.as_bytes()).expect("text never hits a limit");
        check_diff_accounts_for_both(&dump, &other);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// `?debug=0` profiles: gzip itself rejects mutated bytes (its CRC), so the protobuf
    /// decoder behind it sees only what was gzipped on purpose — here, profiles with ids,
    /// counts and lines anywhere in their ranges, and arbitrary bytes.
    #[test]
    fn gzipped_profiles_parse_group_and_diff(
        profile in profile_bytes(),
        junk in proptest::collection::vec(any::<u8>(), 0..256),
        copy in any::<Index>(),
    ) {
        let dump = parse_default(&gzip(&profile)).expect("a small profile hits no limit");
        check_partition(&dump);
        check_copy_grows_its_group(&dump, copy.index(dump.tasks.len().max(1)));
        let junk = parse_default(&gzip(&junk)).expect("a small profile hits no limit");
        check_diff_accounts_for_both(&dump, &junk);
    }
}

proptest! {
    // Each case parses and groups a dump of up to 80 KB: fewer cases.
    #![proptest_config(config(64))]

    #[test]
    fn mutated_fixtures_parse_group_and_diff(
        which in any::<Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        copy in any::<Index>(),
    ) {
        let (name, original) = which.get(fixtures());
        let mut bytes = original.clone();
        for m in &mutations {
            m.apply(&mut bytes);
        }
        let Some(dump) = parse_default(&bytes) else {
            return Ok(());
        };
        check_partition(&dump);
        check_copy_grows_its_group(&dump, copy.index(dump.tasks.len().max(1)));
        let before = parse_default(original).expect("the fixtures parse");
        check_diff_accounts_for_both(&before, &dump);
        prop_assert!(!name.is_empty());
    }
}

/// The real fixtures, unchanged, satisfy the properties too (the random cases above only
/// sample them).
#[test]
fn every_fixture_satisfies_the_properties() {
    for (name, bytes) in fixtures() {
        let dump = parse_default(bytes).unwrap_or_else(|| panic!("{name} hit a limit"));
        check_partition(&dump);
        check_copy_grows_its_group(&dump, dump.tasks.len() / 2);
    }
    let all: Vec<Dump> = fixtures()
        .iter()
        .filter_map(|(_, bytes)| parse_default(bytes))
        .collect();
    for pair in all.windows(2) {
        check_diff_accounts_for_both(&pair[0], &pair[1]);
    }
}

/// Inputs that once broke a property: parsed and checked like any other.
#[test]
fn known_failures() {
    let dir = fixture_root().join("fuzz");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display().to_string();
        let outcome = std::panic::catch_unwind(|| {
            if let Some(dump) = parse_default(&bytes) {
                check_partition(&dump);
                check_copy_grows_its_group(&dump, 0);
                check_diff_accounts_for_both(&dump, &dump);
            }
        });
        if let Err(payload) = outcome {
            std::panic::resume_unwind(Box::new(format!(
                "{name}: {}",
                payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Parses with the default limits. `None` only for a gzipped input past a limit; any other
/// error fails the test.
fn parse_default(bytes: &[u8]) -> Option<Dump> {
    match parse(bytes, &Limits::default()) {
        Ok(dump) => Some(dump),
        Err(e) if bytes.starts_with(&[0x1f, 0x8b]) => {
            assert!(e.to_string().contains("exceeds the limit"), "{e}");
            None
        }
        Err(e) => panic!("{e} on {:?}", String::from_utf8_lossy(bytes)),
    }
}

/// The sum of `counts` as the library counts: saturating at `u64::MAX` (a debug=1 entry may
/// claim any count). Summed wide first, so the test itself cannot overflow.
fn saturated_sum(counts: impl Iterator<Item = u64>) -> u64 {
    let wide: u128 = counts.map(u128::from).sum();
    u64::try_from(wide).unwrap_or(u64::MAX)
}

fn total(dump: &Dump) -> u64 {
    saturated_sum(dump.tasks.iter().map(|t| t.count))
}

fn check_partition(dump: &Dump) {
    let total = total(dump);
    assert_eq!(
        dump.task_count(),
        total,
        "task_count of {} tasks",
        dump.tasks.len()
    );
    let mut ids: Vec<u64> = dump.tasks.iter().filter_map(|t| t.id).collect();
    ids.sort_unstable();
    for level in LEVELS {
        for module in MAIN_MODULES {
            let what = format!("{level:?}, main module {module:?}");
            let groups = group(dump, level, module);
            let counted = saturated_sum(groups.iter().map(|g| g.count));
            assert_eq!(counted, total, "{what}: the groups' counts");
            let mut grouped: Vec<u64> = groups.iter().flat_map(|g| g.ids.clone()).collect();
            grouped.sort_unstable();
            assert_eq!(grouped, ids, "{what}: the groups' ids");
            for (i, g) in groups.iter().enumerate() {
                assert!(
                    groups[..i].iter().all(|h| h.signature != g.signature),
                    "{what}: two groups with {:?}",
                    g.signature
                );
                if let Some(own) = g.own_frame {
                    assert!(own < g.frames.len(), "{what}: own frame out of range");
                }
            }
            assert!(
                groups.windows(2).all(|w| w[0].count >= w[1].count),
                "{what}: largest group first"
            );
            let same = diff(&groups, &groups);
            assert_eq!(same.len(), groups.len(), "{what}");
            for c in &same {
                assert_eq!(
                    (c.change, c.before, c.after),
                    (Change::Unchanged, c.group.count, c.group.count),
                    "{what}: a dump diffed with itself: {:?}",
                    c.group.signature
                );
            }
        }
    }
}

/// Adds a copy of task `index` (if there is one) and checks that exactly its group grew.
fn check_copy_grows_its_group(dump: &Dump, index: usize) {
    let Some(task) = dump.tasks.get(index).cloned() else {
        return;
    };
    let mut grown = dump.clone();
    grown.tasks.push(task.clone());
    for level in LEVELS {
        for module in MAIN_MODULES {
            let what = format!("{level:?}, main module {module:?}, copy of {task:?}");
            let before = group(dump, level, module);
            let after = group(&grown, level, module);
            assert_eq!(after.len(), before.len(), "{what}: no new group");
            let changes = diff(&before, &after);
            let changed: Vec<_> = changes
                .iter()
                .filter(|c| c.change != Change::Unchanged)
                .collect();
            if changed.is_empty() {
                // Nothing to add, or its group already counts `u64::MAX`.
                assert!(
                    task.count == 0 || before.iter().any(|g| g.count == u64::MAX),
                    "{what}: no group grew"
                );
                continue;
            }
            assert_eq!(changed.len(), 1, "{what}: {changed:#?}");
            let c = changed[0];
            assert_eq!(c.change, Change::Grew, "{what}");
            assert_eq!(c.after, c.before.saturating_add(task.count), "{what}");
            if dump.format == Format::GoTraceback {
                assert_eq!(c.delta(), 1, "{what}: a goroutine counts once");
            }
            if let Some(id) = task.id {
                assert!(c.group.ids.contains(&id), "{what}: ids {:?}", c.group.ids);
            }
        }
    }
}

/// `diff(a, b)` at every level: the befores add up to `a`'s tasks, the afters to `b`'s, and
/// each change agrees with its counts.
fn check_diff_accounts_for_both(a: &Dump, b: &Dump) {
    for level in LEVELS {
        for module in MAIN_MODULES {
            let what = format!("{level:?}, main module {module:?}");
            let old = group(a, level, module);
            let new = group(b, level, module);
            let changes = diff(&old, &new);
            let before = saturated_sum(changes.iter().map(|c| c.before));
            let after = saturated_sum(changes.iter().map(|c| c.after));
            assert_eq!(before, total(a), "{what}: before");
            assert_eq!(after, total(b), "{what}: after");
            for c in &changes {
                let expected = if !old.iter().any(|g| g.signature == c.group.signature) {
                    Change::Appeared
                } else if !new.iter().any(|g| g.signature == c.group.signature) {
                    Change::Vanished
                } else if c.after > c.before {
                    Change::Grew
                } else if c.after < c.before {
                    Change::Shrank
                } else {
                    Change::Unchanged
                };
                assert_eq!(c.change, expected, "{what}: {c:#?}");
            }
            assert!(
                changes.windows(2).all(|w| {
                    let key = |c: &faultline_dump::GroupChange| {
                        (
                            c.change == Change::Unchanged,
                            std::cmp::Reverse(c.delta().abs()),
                        )
                    };
                    key(&w[0]) <= key(&w[1])
                }),
                "{what}: largest change first, unchanged last"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

fn fixture_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every Go fixture (text and gzipped), by path relative to `tests/fixtures/go`.
fn fixtures() -> &'static Vec<(String, Vec<u8>)> {
    static ALL: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let root = fixture_root().join("go");
        let mut out = Vec::new();
        collect(&root, &root, &mut out);
        out.sort();
        assert!(
            out.len() > 40,
            "fixtures in {}: {}",
            root.display(),
            out.len()
        );
        out
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "txt" || e == "gz") {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            out.push((name, bytes));
        }
    }
}

/// One change to a fixture's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte with a non-zero mask.
    Flip(Index, u8),
    /// Cut the input short.
    Truncate(Index),
    /// Repeat a line right after itself.
    DuplicateLine(Index),
    /// Drop a line.
    RemoveLine(Index),
    /// Insert a few arbitrary bytes.
    Insert(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        any::<Index>().prop_map(Mutation::RemoveLine),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        // Line spans, each with its newline.
        let lines = |bytes: &[u8]| -> Vec<std::ops::Range<usize>> {
            let mut spans = Vec::new();
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'\n' {
                    spans.push(start..i + 1);
                    start = i + 1;
                }
            }
            if start < bytes.len() {
                spans.push(start..bytes.len());
            }
            spans
        };
        match self {
            Mutation::Flip(at, mask) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
            }
            Mutation::Truncate(at) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes.truncate(i);
            }
            Mutation::DuplicateLine(at) => {
                let spans = lines(bytes);
                if !spans.is_empty() {
                    let span = at.get(&spans).clone();
                    let line = bytes[span.clone()].to_vec();
                    bytes.splice(span.end..span.end, line);
                }
            }
            Mutation::RemoveLine(at) => {
                let spans = lines(bytes);
                if !spans.is_empty() {
                    bytes.drain(at.get(&spans).clone());
                }
            }
            Mutation::Insert(at, new) => {
                let i = at.index(bytes.len() + 1);
                bytes.splice(i..i, new.iter().copied());
            }
            Mutation::Flip(..) | Mutation::Truncate(_) => {}
        }
    }
}

/// Text made of the lines Go dumps have — goroutine headers, calls, file lines, `created by`,
/// elision markers, crash lines, debug=1 entries — with ids, counts, lines and waits anywhere in
/// their ranges, some lines behind log prefixes or with a CR, and now and then arbitrary text.
fn dump_like_text() -> impl Strategy<Value = String> {
    let profile_header =
        proptest::option::of(number().prop_map(|n| format!("goroutine profile: total {n}")));
    (
        profile_header,
        proptest::collection::vec(prefixed(dump_line()), 0..60),
    )
        .prop_map(|(header, lines)| {
            let mut text = header.map(|h| h + "\n").unwrap_or_default();
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
}

/// Small numbers mostly, the extremes sometimes.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0..8u64,
        1 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => (0..64u32).prop_map(|s| 1u64 << s),
    ]
}

fn function() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "main.main",
            "main.waitOnChannel",
            "main.main.func1",
            "main.(*server).handle",
            "runtime.gopark",
            "runtime.goexit",
            "net/http.(*conn).serve",
            "example.com/shop/cart.(*Cart).Add",
            "example.com/x.Map[...].Get",
            "golang.org/x/net/http2.(*serverConn).serve",
            "sync.(*Mutex).Lock",
            "panic",
            "",
        ][..],
    )
}

fn state() -> impl Strategy<Value = String> {
    let word = proptest::sample::select(
        &[
            "running",
            "runnable",
            "chan receive",
            "chan send",
            "select",
            "select (no cases)",
            "IO wait",
            "sleep",
            "semacquire",
            "sync.Mutex.Lock",
            "idle",
            "",
        ][..],
    );
    (word, proptest::option::of(number()), any::<bool>()).prop_map(|(word, minutes, locked)| {
        let mut parts = vec![word.to_owned()];
        if let Some(m) = minutes {
            parts.push(format!("{m} minutes"));
        }
        if locked {
            parts.push("locked to thread".into());
        }
        parts.join(", ")
    })
}

fn dump_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (number(), state(), any::<bool>()).prop_map(|(id, state, gp)| if gp {
            format!("goroutine {id} gp=0xc000002380 m=0 mp=0x55ab60 [{state}]:")
        } else {
            format!("goroutine {id} [{state}]:")
        }),
        6 => (function(), proptest::sample::select(&["...", "0xc000010000, {0x1, 0x2}", "", "0x1?"][..]))
            .prop_map(|(f, args)| format!("{f}({args})")),
        6 => (proptest::sample::select(&["/src/main.go", "/usr/lib/go/src/runtime/proc.go", "C:/x.go", ""][..]),
              number(), proptest::option::of(number()), any::<bool>())
            .prop_map(|(file, line, offset, fp)| {
                let mut s = format!("\t{file}:{line}");
                if let Some(o) = offset {
                    s += &format!(" +0x{o:x}");
                }
                if fp {
                    s += " fp=0xc000 sp=0xc000 pc=0x4a";
                }
                s
            }),
        2 => (function(), proptest::option::of(number())).prop_map(|(f, id)| match id {
            Some(id) => format!("created by {f} in goroutine {id}"),
            None => format!("created by {f}"),
        }),
        1 => number().prop_map(|n| format!("...{n} frames elided...")),
        1 => Just("...additional frames elided...".to_owned()),
        1 => Just("goroutine running on other thread; stack unavailable".to_owned()),
        1 => Just("runtime stack:".to_owned()),
        1 => proptest::sample::select(&[
            "panic: boom",
            "panic: boom [recovered]",
            "\tpanic: again",
            "fatal error: all goroutines are asleep - deadlock!",
            "SIGQUIT: quit",
            "SIGABRT: abort",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1]",
            "runtime: goroutine stack exceeds 1048576-byte limit",
            "PC=0x4a m=0 sigcode=0",
            "rax    0x0",
            "-----",
            "exit status 2",
        ][..]).prop_map(str::to_owned),
        3 => Just(String::new()),
        2 => (number(), proptest::collection::vec(number(), 0..4)).prop_map(|(count, pcs)| {
            let pcs: Vec<String> = pcs.iter().map(|p| format!("0x{p:x}")).collect();
            format!("{count} @ {}", pcs.join(" "))
        }),
        2 => (number(), function(), number(), number()).prop_map(|(pc, f, off, line)| {
            format!("#\t0x{pc:x}\t{f}+0x{off:x}\t/src/main.go:{line}")
        }),
        1 => Just("# labels: {\"role\":\"selector\"}".to_owned()),
        3 => rust_panic_line(),
        1 => "\\PC{0,40}",
    ]
}

/// The lines of a Rust panic (std's hook), which `parse` also reads.
fn rust_panic_line() -> impl Strategy<Value = String> {
    let function = proptest::sample::select(
        &[
            "core::panicking::panic_fmt",
            "std::rt::lang_start",
            "shop::cart::add",
            "<shop::Cart as core::fmt::Debug>::fmt",
            "tokio::runtime::task::raw::poll",
            "main",
            "",
        ][..],
    );
    prop_oneof![
        (proptest::option::of(number()), number(), number()).prop_map(|(tid, line, col)| {
            match tid {
                Some(tid) => format!("thread 'worker-1' ({tid}) panicked at src/main.rs:{line}:{col}:"),
                None => format!("thread 'main' panicked at src/main.rs:{line}:{col}:"),
            }
        }),
        Just("thread 'main' panicked at 'boom', src/main.rs:2:30".to_owned()),
        Just("stack backtrace:".to_owned()),
        (number(), function.clone()).prop_map(|(n, f)| format!("  {n}: {f}")),
        (number(), number(), function).prop_map(|(n, a, f)| format!("  {n}:     0x{a:x} - {f}")),
        (number(), number()).prop_map(|(l, c)| format!("             at ./src/main.rs:{l}:{c}")),
        Just("note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.".to_owned()),
    ]
}

/// A line as it may appear in collected logs.
fn prefixed(line: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    (line, 0..8u8).prop_map(|(line, how)| match how {
        0 => format!("2026-11-28T10:00:00.000001000Z stderr F {line}"),
        1 => format!("time=2026-11-28T10:00:00.001Z level=ERROR msg={line}"),
        2 => format!("{line}\r"),
        3 => format!("2026-11-28 10:00:00,123 ERROR {line}"),
        _ => line,
    })
}

// ---------------------------------------------------------------------------------------------
// pprof profiles (`?debug=0`): protobuf, gzipped

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A varint field.
fn int_field(number: u64, value: u64, out: &mut Vec<u8>) {
    varint(number << 3, out);
    varint(value, out);
}

/// A length-delimited field.
fn bytes_field(number: u64, value: &[u8], out: &mut Vec<u8>) {
    varint(number << 3 | 2, out);
    varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// A repeated integer field, packed or one field per value.
fn ints_field(number: u64, values: &[u64], packed: bool, out: &mut Vec<u8>) {
    if packed {
        let mut run = Vec::new();
        for &v in values {
            varint(v, &mut run);
        }
        bytes_field(number, &run, out);
    } else {
        for &v in values {
            int_field(number, v, out);
        }
    }
}

/// A `profile.proto` with the messages the parser reads (samples, locations with lines,
/// functions, the string table): mostly consistent (every id resolves), sometimes with ids
/// anywhere, unknown fields, in any order.
fn profile_bytes() -> impl Strategy<Value = Vec<u8>> {
    const STRINGS: [&str; 6] = [
        "",
        "main.main",
        "main.waitOnChannel",
        "runtime.gopark",
        "/src/main.go",
        "??",
    ];
    let consistent =
        (1..4u64, 1..5u64, any::<bool>()).prop_flat_map(|(functions, locations, packed)| {
            // Ids that resolve, and now and then one that does not.
            let id = move |n: u64| prop_oneof![40 => 1..=n, 1 => any::<u64>()];
            let functions = (1..=functions)
                .map(|i| {
                    (Just(i), id(6), id(6))
                        .prop_map(|(i, name, file)| function_message(i, name, file))
                })
                .collect::<Vec<_>>();
            let locations = (1..=locations)
                .map(|i| {
                    proptest::collection::vec((id(functions.len() as u64), line()), 0..4)
                        .prop_map(move |lines| location_message(i, &lines))
                })
                .collect::<Vec<_>>();
            let samples = proptest::collection::vec(
                (
                    proptest::collection::vec(id(locations.len() as u64), 0..8),
                    proptest::collection::vec(number(), 0..3),
                )
                    .prop_map(move |(l, v)| sample_message(&l, &v, packed)),
                1..6,
            );
            let strings: Vec<(u64, Vec<u8>)> =
                STRINGS.iter().map(|s| (6, s.as_bytes().to_vec())).collect();
            (functions, locations, samples, Just(strings))
                .prop_map(|(mut f, mut l, mut s, mut strings)| {
                    let mut all = Vec::new();
                    all.append(&mut f);
                    all.append(&mut l);
                    all.append(&mut s);
                    all.append(&mut strings);
                    all
                })
                .prop_shuffle()
        });
    let id = || prop_oneof![4 => 0..6u64, 1 => any::<u64>()];
    let message = prop_oneof![
        3 => (
            proptest::collection::vec(id(), 0..8),
            proptest::collection::vec(number(), 0..3),
            any::<bool>(),
        )
            .prop_map(|(l, v, packed)| sample_message(&l, &v, packed)),
        3 => (id(), proptest::collection::vec((id(), line()), 0..4))
            .prop_map(|(i, lines)| location_message(i, &lines)),
        2 => (id(), id(), id()).prop_map(|(i, name, file)| function_message(i, name, file)),
        2 => proptest::sample::select(&STRINGS[..]).prop_map(|s| (6, s.as_bytes().to_vec())),
        1 => (7..20u64, proptest::collection::vec(any::<u8>(), 0..8)),
    ];
    let loose = proptest::collection::vec(message, 0..24);
    prop_oneof![4 => consistent, 1 => loose].prop_map(|messages| {
        let mut out = Vec::new();
        for (number, body) in messages {
            bytes_field(number, &body, &mut out);
        }
        out
    })
}

fn line() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 0..500i64, 1 => any::<i64>()]
}

/// `Profile.sample` (field 2): location ids, values.
fn sample_message(locations: &[u64], values: &[u64], packed: bool) -> (u64, Vec<u8>) {
    let mut m = Vec::new();
    ints_field(1, locations, packed, &mut m);
    ints_field(2, values, packed, &mut m);
    (2, m)
}

/// `Profile.location` (field 4): id, lines of (function id, line).
fn location_message(id: u64, lines: &[(u64, i64)]) -> (u64, Vec<u8>) {
    let mut m = Vec::new();
    int_field(1, id, &mut m);
    for &(function, line) in lines {
        let mut l = Vec::new();
        int_field(1, function, &mut l);
        // int64 on the wire: two's complement in a varint.
        int_field(2, line as u64, &mut l);
        bytes_field(4, &l, &mut m);
    }
    (4, m)
}

/// `Profile.function` (field 5): id, name and file as string-table indexes.
fn function_message(id: u64, name: u64, file: u64) -> (u64, Vec<u8>) {
    let mut m = Vec::new();
    int_field(1, id, &mut m);
    int_field(2, name, &mut m);
    int_field(4, file, &mut m);
    (5, m)
}
