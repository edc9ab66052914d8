//! `faultline analyze CORE` (or a minidump): the dump read (faultline-native), every thread
//! unwound offline with the unwind data of each module's file, then symbolized by build-id as
//! crash records are, each frame saying how it was found.

use std::fmt::Write as _;
use std::path::Path;

use faultline_native::record::{crash_record, signal_line, signal_name};
use faultline_native::{Core, NativeFrame};
use faultline_record::{Addr, CrashRecord, signal};
use faultline_symbolize::Demangle;
use faultline_symbolize::record::{FrameReport, symbolize_threads};

use crate::exit::Failure;
use crate::{AnalyzeArgs, AnalyzeFormat};

/// The report of the core or minidump `bytes`, read from `path`.
pub fn report(path: &Path, bytes: &[u8], args: &AnalyzeArgs) -> Result<String, Failure> {
    let locator = args.lookup.locator()?;
    let (dump, stacks) = faultline_scenario::analysis::unwind_dump(bytes, &locator)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let core = &dump.core;
    let record = crash_record(&dump, &stacks, String::new());
    let (report, others) = symbolize_threads(&record, &locator, Demangle::Short);
    // Every thread's frames, the crashing one's first.
    let reports: Vec<&[FrameReport]> = std::iter::once(report.frames.as_slice())
        .chain(others.iter().map(Vec::as_slice))
        .collect();
    Ok(match args.format {
        AnalyzeFormat::Svg => {
            return Err(Failure::usage(format!(
                "{}: --format svg draws task dumps; this is a {} (use human or json)",
                path.display(),
                dump.format.as_str()
            )));
        }
        AnalyzeFormat::Human => human(
            dump.format.as_str(),
            core,
            &record,
            &report,
            &reports,
            &stacks,
            args.full,
        ),
        AnalyzeFormat::Html => format!(
            "<section class=crash-record><h2>{}</h2><pre>{}</pre></section>",
            faultline_scenario::html::escape(&path.display().to_string()),
            faultline_scenario::html::escape(&human(
                dump.format.as_str(),
                core,
                &record,
                &report,
                &reports,
                &stacks,
                args.full
            ))
        ),
        AnalyzeFormat::Json => {
            let mut doc = crate::crash::json(&record, &report);
            add_trust(&mut doc["frames"], &stacks[0]);
            doc["source"] = serde_json::json!(dump.format.as_str());
            doc["signal"] = signal_json(core);
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
    what: &str,
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
        let _ = writeln!(s, "  missing from the {what}: {missing}");
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
