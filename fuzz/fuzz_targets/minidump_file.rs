//! Minidumps come from other writers (Breakpad, Crashpad) and from damaged disks: reading one,
//! listing its modules and unwinding every thread must give frames, "missing" notes or an
//! error, never a panic or an endless walk. A core that reads is also written as a minidump
//! and read back: the same threads and registers.
#![no_main]

use faultline_native::minidump;
use faultline_native::record::unwind_all;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(core) = faultline_native::Core::parse(data) {
        let modules = faultline_native::modules(&core);
        let written = minidump::write(&core, &modules, 0);
        let (back, _) = minidump::read(&written).expect("a minidump written is read back");
        assert_eq!(back.threads.len(), core.threads.len());
        for (a, b) in back.threads.iter().zip(&core.threads) {
            assert_eq!((a.tid, a.registers.ip(), a.registers.sp()), (b.tid, b.registers.ip(), b.registers.sp()));
        }
        return;
    }
    let Ok(mut dump) = faultline_native::open(data) else {
        return;
    };
    // No module files: frame pointers and scanning over the dump's own memory.
    let files = vec![None; dump.modules.len()];
    dump.core.threads.truncate(8);
    for frames in unwind_all(&mut dump, &files) {
        assert!(frames.len() <= faultline_native::unwind::MAX_FRAMES + 2);
    }
});
