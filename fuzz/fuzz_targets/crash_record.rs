//! Crash records come from other machines: parsing any bytes must return a value or an error.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(record) = faultline_record::CrashRecord::from_json(data) {
        // What parsed must write back and parse to the same record.
        let again = faultline_record::CrashRecord::from_json(record.to_json_pretty().as_bytes());
        assert_eq!(again.ok().as_ref(), Some(&record));
        for frame in &record.frames {
            let _ = frame.lookup_address();
        }
    }
});
