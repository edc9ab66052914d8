//! Cores come from crashed processes, cut short by full disks and killed writers: reading one,
//! listing its modules and unwinding every thread must give frames, "missing" notes or an
//! error, never a panic or an endless walk.
#![no_main]

use faultline_native::{Core, CoreUnwinder, modules};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(core) = Core::parse(data) else {
        return;
    };
    let modules = modules(&core);
    // No module files: frame pointers and scanning over the core's own memory.
    let files = vec![None; modules.len()];
    let unwinder = CoreUnwinder::new(&modules, &files);
    for thread in core.threads.iter().take(8) {
        let frames = unwinder.unwind(&core, thread);
        assert!(frames.len() <= faultline_native::unwind::MAX_FRAMES + 2);
    }
});
