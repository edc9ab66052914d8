//! Symbol indexes are files on disk other processes write (and disks and copies damage): opening
//! one and reading what it says of any address must give frames or "damaged", never a panic, an
//! endless loop or a read outside the file. The first byte chooses whether the rest is resealed
//! (its checksums made right, to reach the tables behind them) or read as it is.
#![no_main]

use faultline_symbolize::index::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fuzzing::reseal(&mut bytes);
    }
    // Indexes are mapped; give it a file. /dev/shm keeps this off the disk.
    let path = std::path::PathBuf::from(format!(
        "/dev/shm/faultline-fuzz-index-{}",
        std::process::id()
    ));
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    // Probes from the input's tail, so the fuzzer can steer them; and the edges.
    let mut probes = vec![0, u64::MAX];
    probes.extend(
        rest.rchunks_exact(8)
            .take(16)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
    );
    fuzzing::open_and_read(&path, &probes);
    let _ = std::fs::remove_file(&path);
});
