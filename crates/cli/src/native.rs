//! `faultline analyze CORE`: an ELF core of any native program read (faultline-native), every
//! thread unwound offline with the unwind data of each module's file, then symbolized by
//! build-id as crash records are, each frame saying how it was found.

use std::fmt::Write as _;
use std::path::Path;

use faultline_native::{Core, CoreUnwinder, LoadedModule, NativeFrame};
use faultline_record::signal;
use faultline_record::{
    Addr, CrashRecord, FORMAT_NAME, FORMAT_VERSION, Frame, FrameKind, Kind, Module, Task,
};
use faultline_symbolize::record::{FrameReport, symbolize_threads};
use faultline_symbolize::{Demangle, Locator, elf};

use crate::exit::Failure;
use crate::{AnalyzeArgs, AnalyzeFormat};

/// The report of the core `bytes`, read from `path`.
pub fn report(path: &Path, bytes: &[u8], args: &AnalyzeArgs) -> Result<String, Failure> {
    let core =
        Core::parse(bytes).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let modules = faultline_native::modules(&core);
    let locator = args.lookup.locator()?;
    let files: Vec<Option<Vec<u8>>> = modules.iter().map(|m| unwind_file(m, &locator)).collect();
    let refs: Vec<Option<&[u8]>> = files.iter().map(Option::as_deref).collect();
    let unwinder = CoreUnwinder::new(&modules, &refs);
    let stacks: Vec<Vec<NativeFrame>> = core
        .threads
        .iter()
        .map(|t| unwinder.unwind(&core, t))
        .collect();
    let record = record(&core, &modules, &stacks);
    let (report, others) = symbolize_threads(&record, &locator, Demangle::Short);
    // Every thread's frames, the crashing one's first.
    let reports: Vec<&[FrameReport]> = std::iter::once(report.frames.as_slice())
        .chain(others.iter().map(Vec::as_slice))
        .collect();
    Ok(match args.format {
        AnalyzeFormat::Svg => {
            return Err(Failure::usage(format!(
                "{}: --format svg draws task dumps; this is a core (use human or json)",
                path.display()
            )));
        }
        AnalyzeFormat::Human => human(&core, &record, &report, &reports, &stacks, args.full),
        AnalyzeFormat::Html => format!(
            "<section class=crash-record><h2>{}</h2><pre>{}</pre></section>",
            faultline_scenario::html::escape(&path.display().to_string()),
            faultline_scenario::html::escape(&human(
                &core, &record, &report, &reports, &stacks, args.full
            ))
        ),
        AnalyzeFormat::Json => {
            let mut doc = crate::crash::json(&record, &report);
            add_trust(&mut doc["frames"], &stacks[0]);
            doc["signal"] = signal_json(&core);
            doc["process"] = serde_json::json!({"name": core.name, "args": core.args});
            doc["missing"] = serde_json::json!(core.missing);
            let threads: Vec<serde_json::Value> = core
                .threads
                .iter()
                .zip(&reports)
                .zip(&stacks)
                .enumerate()
                .map(|(i, ((thread, frames), stack))| {
                    let mut frames_json = crate::crash::frames_json(frames);
                    add_trust(&mut frames_json, stack);
                    serde_json::json!({
                        "tid": thread.tid,
                        "crashed": i == 0,
                        "signal": thread.signal,
                        "registers": {
                            "rip": Addr(thread.registers.ip()),
                            "rsp": Addr(thread.registers.sp()),
                            "rbp": Addr(thread.registers.bp()),
                        },
                        "frames": frames_json,
                    })
                })
                .collect();
            doc["threads"] = serde_json::json!(threads);
            let mut s = serde_json::to_string_pretty(&doc).map_err(Failure::failed)?;
            s.push('\n');
            s
        }
    })
}

/// The file that gives a module's unwind data: the mapped file itself when it is still at its
/// path with the module's build-id (a stripped binary keeps `.eh_frame`), else the debug file
/// found by build-id (an unstripped copy, or one with `.debug_frame`).
fn unwind_file(module: &LoadedModule, locator: &Locator) -> Option<Vec<u8>> {
    let id = module.build_id.as_ref()?;
    let path = Path::new(&module.path);
    if path.is_absolute() && elf::identity(path).ok().and_then(|i| i.build_id).as_ref() == Some(id)
    {
        return std::fs::read(path).ok();
    }
    let found = locator.find(id, None).ok()?;
    let bytes = std::fs::read(&found.path).ok()?;
    // A `.debug` made by `objcopy --only-keep-debug` has no unwind tables; the runtime binary
    // kept beside it in a store (`cdef…`, `debug-store add` of the shipped binary) has.
    if !faultline_symbolize::unwind_tables_in(&bytes)
        && let Some(binary) = found
            .path
            .to_str()
            .and_then(|p| p.strip_suffix(".debug"))
            .map(std::path::PathBuf::from)
        && elf::identity(&binary)
            .ok()
            .and_then(|i| i.build_id)
            .as_ref()
            == Some(id)
    {
        return std::fs::read(binary).ok();
    }
    Some(bytes)
}

/// The core as a crash record: the crashing thread's frames, each other thread a task.
fn record(core: &Core<'_>, modules: &[LoadedModule], stacks: &[Vec<NativeFrame>]) -> CrashRecord {
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
                let module = modules
                    .iter()
                    .position(|m| f.address >= m.start && f.address < m.end);
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
        time: String::new(),
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

fn signal_name(signo: u32) -> &'static str {
    signal::name(signo).unwrap_or("signal")
}

/// `SIGSEGV (11) at address 0x10 (SEGV_MAPERR: address not mapped to object)`, `SIGABRT (6)
/// sent by pid 42 (SI_TKILL: sent by tkill or tgkill)`.
fn signal_line(core: &Core<'_>) -> String {
    let Some(info) = core.signal else {
        let signo = core.threads.first().map_or(0, |t| t.signal);
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

fn signal_json(core: &Core<'_>) -> serde_json::Value {
    match core.signal {
        Some(info) => serde_json::json!({
            "number": info.signo,
            "name": signal_name(info.signo),
            "code": info.code,
            "code_meaning": signal::code_meaning(signal_name(info.signo), i64::from(info.code)),
            "address": info.address.map(Addr),
            "sender_pid": info.sender,
        }),
        None => serde_json::Value::Null,
    }
}

fn add_trust(frames: &mut serde_json::Value, stack: &[NativeFrame]) {
    if let Some(list) = frames.as_array_mut() {
        for (f, n) in list.iter_mut().zip(stack) {
            f["trust"] = serde_json::json!(n.trust.as_str());
            if n.signal_trampoline {
                f["signal_trampoline"] = serde_json::json!(true);
            }
        }
    }
}

fn human(
    core: &Core<'_>,
    record: &CrashRecord,
    report: &faultline_symbolize::record::RecordReport,
    reports: &[&[FrameReport]],
    stacks: &[Vec<NativeFrame>],
    full: bool,
) -> String {
    let mut s = String::new();
    let name = core.name.as_deref().unwrap_or("<unknown>");
    let _ = writeln!(s, "{} in {name} (pid {})", signal_line(core), core.pid);
    if let Some(args) = &core.args {
        let _ = writeln!(s, "  command line: {args}");
    }
    for missing in &core.missing {
        let _ = writeln!(s, "  missing from the core: {missing}");
    }
    for (i, ((thread, frames), stack)) in core.threads.iter().zip(reports).zip(stacks).enumerate() {
        let _ = writeln!(s);
        let what = if i == 0 { ", crashed" } else { "" };
        let _ = writeln!(
            s,
            "thread {}{what} (rip {}, rsp {}), innermost first:",
            thread.tid,
            Addr(thread.registers.ip()),
            Addr(thread.registers.sp())
        );
        for (j, (frame, native)) in frames.iter().zip(stack).enumerate() {
            if frame.hidden && !full {
                continue;
            }
            let mut one = String::new();
            crate::crash::write_frame(&mut one, j, frame, record);
            // The first line of each frame says how it was found.
            let mut lines = one.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(s, "{first}  [{}]", native.trust.as_str());
            }
            if native.signal_trampoline {
                let _ = writeln!(s, "      <signal handler called>");
            }
            for line in lines {
                let _ = writeln!(s, "{line}");
            }
        }
    }
    crate::crash::write_modules(&mut s, record, report);
    s
}
