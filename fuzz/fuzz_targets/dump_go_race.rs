//! faultline-dump's Go race-report reader: any bytes after a `WARNING: DATA RACE` line are
//! read as a race report (through the Go traceback parser, which hands the report's lines to
//! it), never a panic; the races group consistently.
#![no_main]

use faultline_dump::{Limits, group_races, parse_all};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = b"==================\nWARNING: DATA RACE\n".to_vec();
    input.extend_from_slice(data);
    match parse_all(&input, &Limits::default()) {
        Ok(dumps) => {
            for dump in &dumps {
                let groups = group_races(dump, Some("example.com/shop"));
                let counted: u64 = groups.iter().map(|g| g.count).sum();
                assert_eq!(counted, dump.races.len() as u64);
            }
        }
        Err(e) => assert!(e.to_string().contains("exceeds the limit"), "{e}"),
    }
});
