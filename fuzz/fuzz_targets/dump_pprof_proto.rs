//! faultline-dump's `GoPprofProto` parser on its own (see dump_format.rs).
#![no_main]

include!("dump_format.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_format(Format::GoPprofProto, data));
