//! faultline-dump's JSON-lines log reader (Docker's json-file, log exports): any bytes read as
//! a log, with the default fields and with a named text field and key, return streams or an
//! error naming a line, never a panic; the streams' texts parse.
#![no_main]

use faultline_dump::json_lines::{LogFields, detect, describe, streams};
use faultline_dump::{Limits, parse_log};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let named = LogFields {
        text: Some("msg".into()),
        key: Some("k.pod".into()),
    };
    for fields in [LogFields::default(), named] {
        let _ = detect(data, &fields);
        let _ = describe(data);
        match streams(data, &fields) {
            Ok(streams) => {
                for s in &streams {
                    assert_eq!(s.times.len(), s.lines.len());
                }
                let _ = parse_log(data, &Limits::default(), &fields);
            }
            Err(e) => assert!(e.line >= 1, "{e}"),
        }
    }
});
