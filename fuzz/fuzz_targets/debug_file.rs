//! Debug files come from stores and servers we do not control: opening one and symbolizing
//! addresses in it must give frames, unknowns or errors, never a panic.
#![no_main]

use faultline_symbolize::{DebugFile, Demangle};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The symbolizer maps files; give it one. /dev/shm keeps this off the disk.
    let path = std::path::PathBuf::from(format!("/dev/shm/faultline-fuzz-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(debug) = DebugFile::open(&path)
        && let Ok(symbolizer) = debug.symbolizer(Demangle::Full)
    {
        // Addresses taken from the input itself, so the fuzzer can steer them.
        for chunk in data.chunks_exact(8).take(16) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let _ = symbolizer.symbolize(u64::from_le_bytes(bytes) & 0xffff_ffff);
        }
    }
    let _ = std::fs::remove_file(&path);
});
