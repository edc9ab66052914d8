//! Any file may be handed to `debug-store add` or found in a store: reading its build-id and
//! debuglink must not panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = faultline_symbolize::elf::identity_of_bytes(data);
});
