//! Task dumps come from services' logs and debug endpoints: parsing any bytes must return a
//! dump (or, for gzipped input that inflates past a limit, a limit error), never panic, and
//! what it returns must group and diff consistently.
#![no_main]

use faultline_dump::{Change, Dump, Level, Limits, diff, group, parse};

const LEVELS: [Level; 4] = [
    Level::Exact,
    Level::Functions,
    Level::OwnTop(1),
    Level::OwnTop(3),
];

/// Sums as the library counts them: saturating at `u64::MAX`.
fn sum(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0, u64::saturating_add)
}

fn check(dump: &Dump) {
    let total = sum(dump.tasks.iter().map(|t| t.count));
    assert_eq!(dump.task_count(), total);
    for level in LEVELS {
        for module in [None, Some("example.com/shop")] {
            let groups = group(dump, level, module);
            // The groups partition the tasks.
            assert_eq!(sum(groups.iter().map(|g| g.count)), total);
            assert_eq!(
                groups.iter().map(|g| g.ids.len()).sum::<usize>(),
                dump.tasks.iter().filter(|t| t.id.is_some()).count()
            );
            // A dump compared with itself has not changed.
            let same = diff(&groups, &groups);
            assert_eq!(same.len(), groups.len());
            for c in &same {
                assert_eq!(c.change, Change::Unchanged);
                assert_eq!((c.before, c.after), (c.group.count, c.group.count));
            }
        }
    }
}

/// Parses `data` and checks what comes back.
fn parse_and_check(data: &[u8]) {
    let dump = match parse(data, &Limits::default()) {
        Ok(dump) => dump,
        // A few KB of gzip can inflate to a profile past the frame limit; text cannot reach one.
        Err(e) if data.starts_with(&[0x1f, 0x8b]) => {
            assert!(e.to_string().contains("exceeds the limit"), "{e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    check(&dump);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    parse_and_check(data);
    // The same bytes as the protobuf inside a `?debug=0` profile: mutated gzip data fails its
    // CRC, so only this way does the fuzzer reach the protobuf decoder.
    parse_and_check(&gzip(data));

    // The two halves of the input as an older and a newer dump: the diff accounts for both.
    let (a, b) = data.split_at(data.len() / 2);
    if let (Ok(old), Ok(new)) = (parse(a, &limits), parse(b, &limits)) {
        for level in LEVELS {
            let changes = diff(&group(&old, level, None), &group(&new, level, None));
            assert_eq!(sum(changes.iter().map(|c| c.before)), old.task_count());
            assert_eq!(sum(changes.iter().map(|c| c.after)), new.task_count());
        }
    }
});
