// Shared by the per-format dump targets (each `include!`s this file and names its format):
// parsing any bytes as that one format must return a dump or a limit error, never panic, and
// what it returns must group and diff consistently. Unlike `dump`, no format detection stands
// between the fuzzer and the parser, so each parser gets the whole run to itself.

use faultline_dump::{Change, Dump, Format, Level, Limits, Unresolved, diff, group, parse_as};

const LEVELS: [Level; 3] = [Level::Exact, Level::Functions, Level::OwnTop(2)];

fn sum(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0, u64::saturating_add)
}

fn check(dump: &Dump) {
    let total = sum(dump.tasks.iter().map(|t| t.count));
    assert_eq!(dump.task_count(), total);
    for level in LEVELS {
        let groups = group(dump, level, Some("example.com/shop"));
        assert_eq!(sum(groups.iter().map(|g| g.count)), total);
        for c in diff(&groups, &groups) {
            assert_eq!(c.change, Change::Unchanged);
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn fuzz_format(format: Format, data: &[u8]) {
    // The protobuf decoder sits behind gzip, whose CRC mutated data would fail: wrap it.
    let input = if format == Format::GoPprofProto && !data.starts_with(&[0x1f, 0x8b]) {
        gzip(data)
    } else {
        data.to_vec()
    };
    match parse_as(format, &input, &Limits::default(), &mut Unresolved) {
        Ok(dump) => {
            assert_eq!(dump.format, format);
            check(&dump);
        }
        Err(e) => assert!(e.to_string().contains("exceeds the limit"), "{e}"),
    }
}
