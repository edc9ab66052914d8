//! A dump, unwound, as a crash record: the crashing thread's frames, every other thread a
//! task, the modules with their build-ids, the signal as its message. What `faultline
//! analyze`, the runner and the TUI symbolize.

use std::fmt::Write as _;

use faultline_record::{
    Addr, CrashRecord, FORMAT_NAME, FORMAT_VERSION, Frame, FrameKind, Kind, Module, Task, signal,
};

use crate::elfcore::Core;
use crate::unwind::{CoreUnwinder, NativeFrame};
use crate::{Dump, LoadedModule};

/// Every thread of `dump` unwound, innermost frame first; `files[i]` is the ELF file that
/// gives module `i`'s unwind tables (and its load bias, when the dump did not hold its
/// header), or `None`.
pub fn unwind_all(dump: &mut Dump<'_>, files: &[Option<Vec<u8>>]) -> Vec<Vec<NativeFrame>> {
    for (m, file) in dump.modules.iter_mut().zip(files) {
        if let Some(file) = file {
            m.rebase_on(file);
        }
    }
    let refs: Vec<Option<&[u8]>> = files.iter().map(Option::as_deref).collect();
    let unwinder = CoreUnwinder::new(&dump.modules, &refs);
    dump.core
        .threads
        .iter()
        .map(|t| unwinder.unwind(&dump.core, t))
        .collect()
}

/// The dump as a crash record (`stacks` from [`unwind_all`]), stamped `time`.
pub fn crash_record(dump: &Dump<'_>, stacks: &[Vec<NativeFrame>], time: String) -> CrashRecord {
    let core = &dump.core;
    let modules = &dump.modules;
    let record_modules: Vec<Module> = modules
        .iter()
        .map(|m| Module {
            path: m.path.clone(),
            build_id: m.build_id.clone(),
            load_bias: Addr(m.load_bias),
            segments: m.segments.clone(),
        })
        .collect();
    let frames = |stack: &[NativeFrame]| -> Vec<Frame> {
        stack
            .iter()
            .map(|f| {
                let module = module_of(modules, f.address);
                Frame {
                    address: Addr(f.address),
                    kind: if f.is_return_address() {
                        FrameKind::ReturnAddress
                    } else {
                        FrameKind::Pc
                    },
                    module,
                    module_address: module
                        .map(|i| Addr(f.address.wrapping_sub(modules[i].load_bias))),
                }
            })
            .collect()
    };
    let crashed = core.threads.first();
    CrashRecord {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        time,
        kind: Kind::Signal,
        pid: core.pid,
        tid: crashed.map(|t| t.tid),
        thread_name: core.name.clone(),
        arch: "x86_64".to_owned(),
        runtimes: Vec::new(),
        message: Some(signal_line(core)),
        location: None,
        raw_text: None,
        modules: record_modules,
        frames: stacks.first().map(|s| frames(s)).unwrap_or_default(),
        tasks: core
            .threads
            .iter()
            .zip(stacks)
            .skip(1)
            .map(|(t, s)| Task {
                id: t.tid.to_string(),
                parent: None,
                state: None,
                wait_seconds: None,
                frames: frames(s),
                branches: Vec::new(),
            })
            .collect(),
        alive_tasks: None,
    }
}

fn module_of(modules: &[LoadedModule], address: u64) -> Option<usize> {
    modules
        .iter()
        .position(|m| address >= m.start && address < m.end)
}

/// A signal's name (`SIGSEGV`), or `signal` for a number that has none.
pub fn signal_name(signo: u32) -> &'static str {
    signal::name(signo).unwrap_or("signal")
}

/// `SIGSEGV (11) at address 0x10 (SEGV_MAPERR: address not mapped to object)`, `SIGABRT (6)
/// sent by pid 42 (SI_TKILL: sent by tkill or tgkill)`; `no signal (…)` for a dump a writer
/// took of a live process (a minidump without an exception stream).
pub fn signal_line(core: &Core<'_>) -> String {
    let Some(info) = core.signal else {
        let signo = core.threads.first().map_or(0, |t| t.signal);
        if signo == 0 {
            return "no signal (a dump of a live process)".into();
        }
        return format!("{} ({signo})", signal_name(signo));
    };
    let name = signal_name(info.signo);
    let mut s = format!("{name} ({})", info.signo);
    if let Some(address) = info.address {
        let _ = write!(s, " at address {}", Addr(address));
    }
    if let Some(sender) = info.sender.filter(|&p| p != 0) {
        let _ = write!(s, " sent by pid {sender}");
    }
    if let Some(meaning) = signal::code_meaning(name, i64::from(info.code)) {
        let _ = write!(s, " ({meaning})");
    }
    s
}
