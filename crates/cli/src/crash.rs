//! `faultline analyze` of a crash record: symbolized frame by frame against the debug files
//! found by build-id, as text (the panic machinery and start-up hidden, your own code's first
//! frame marked, each module's debug file or why none) or JSON.

use std::fmt::Write as _;
use std::path::Path;

use faultline_record::{Addr, CrashRecord, FrameKind};
use faultline_symbolize::Demangle;
use faultline_symbolize::Symbolized;
use faultline_symbolize::record::{FrameReport, RecordReport, symbolize_record};

use crate::exit::Failure;
use crate::symbolize::source_name;
use crate::{AnalyzeArgs, AnalyzeFormat};

/// The report of the crash record `bytes`, read from `path`.
pub fn report(path: &Path, bytes: &[u8], args: &AnalyzeArgs) -> Result<String, Failure> {
    let record = CrashRecord::from_json(bytes).map_err(|e| {
        // One JSON object per line that does not even try to be a record: say what it looks
        // like instead. A record (even a broken one) keeps the parser's precise error.
        let what = faultline_dump::json_lines::describe(bytes);
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let claims = first.windows(8).any(|w| w == b"\"format\"");
        if !what.starts_with("one JSON object per line") || claims {
            return Failure::usage(format!("{}: {e}", path.display()));
        }
        Failure::usage(format!(
            "{}: JSON, but neither a faultline crash record (no \"format\": \"faultline-crash\") \
             nor a log of JSON lines ({}); analyze reads faultline crash records and task \
             dumps, Go and Rust panic output and goroutine dumps (also inside logs), pprof \
             profiles, and logs of one JSON object per line whose text is in a field (log, \
             message, msg, line, MESSAGE, textPayload, text, @message; name another with \
             --log-field)",
            path.display(),
            what
        ))
    })?;
    let locator = args.lookup.locator()?;
    let report = symbolize_record(&record, &locator, Demangle::Short);
    Ok(match args.format {
        AnalyzeFormat::Svg => {
            return Err(Failure::usage(format!(
                "{}: --format svg draws task dumps; this is a crash record (use human or json)",
                path.display()
            )));
        }
        AnalyzeFormat::Human => human(&record, &report, args.full),
        AnalyzeFormat::Html => format!(
            "<section class=crash-record><h2>{}</h2><pre>{}</pre></section>",
            faultline_scenario::html::escape(&path.display().to_string()),
            faultline_scenario::html::escape(&human(&record, &report, args.full))
        ),
        AnalyzeFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&json(&record, &report)).map_err(Failure::failed)?;
            s.push('\n');
            s
        }
    })
}

fn human(record: &CrashRecord, report: &RecordReport, full: bool) -> String {
    let mut s = String::new();
    let thread = record.thread_name.as_deref().unwrap_or("<unnamed>");
    let tid = record.tid.map(|t| format!(", tid {t}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "{:?} in thread '{thread}' (pid {}{tid}) at {}",
        record.kind, record.pid, record.time
    );
    if let Some(message) = &record.message {
        for line in message.lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if let Some(loc) = &record.location {
        let _ = writeln!(s, "  at {}:{}:{}", loc.file, loc.line, loc.column);
    }
    let runtimes: Vec<String> = record
        .runtimes
        .iter()
        .map(|r| format!("{} {}", r.name, r.version))
        .collect();
    if !runtimes.is_empty() {
        let _ = writeln!(s, "  runtime: {}", runtimes.join(", "));
    }

    let hidden = report.frames.iter().filter(|f| f.hidden).count();
    let _ = writeln!(s);
    if hidden > 0 && !full {
        let _ = writeln!(
            s,
            "stack, innermost first ({hidden} frames of the panic machinery and start-up hidden; --full shows them):"
        );
    } else {
        let _ = writeln!(s, "stack, innermost first:");
    }
    for (i, frame) in report.frames.iter().enumerate() {
        if frame.hidden && !full {
            continue;
        }
        write_frame(&mut s, i, frame, record);
    }

    write_modules(&mut s, record, report);
    s
}

/// The modules frames point into, each with the debug file used for it or why there is none.
pub(crate) fn write_modules(s: &mut String, record: &CrashRecord, report: &RecordReport) {
    let _ = writeln!(*s);
    let _ = writeln!(*s, "modules:");
    for (module, m) in record.modules.iter().zip(&report.modules) {
        let Some(debug_file) = &m.debug_file else {
            continue;
        };
        let id = module
            .build_id
            .as_ref()
            .map_or_else(|| "no build-id".to_owned(), ToString::to_string);
        match debug_file {
            Ok((path, source)) => {
                let _ = writeln!(
                    *s,
                    "  {} [{id}]\n    debug file: {} ({})",
                    module.path,
                    path.display(),
                    source_name(source)
                );
            }
            Err(reason) => {
                let _ = writeln!(*s, "  {} [{id}]\n    unknown: {reason}", module.path);
            }
        }
    }
}

pub(crate) fn write_frame(
    s: &mut String,
    index: usize,
    report: &FrameReport,
    record: &CrashRecord,
) {
    let marker = if report.own_code {
        "  <- first frame of your code"
    } else {
        ""
    };
    let prefix = format!("{index:>4}: ");
    let pad = " ".repeat(prefix.len());
    match &report.symbolized {
        Symbolized::Frames(frames) => {
            for (j, f) in frames.iter().enumerate() {
                let lead = if j == 0 { &prefix } else { &pad };
                let name = f.function.as_deref().unwrap_or("??");
                let inl = if f.inlined { " (inlined)" } else { "" };
                let mark = if j == 0 { marker } else { "" };
                let _ = writeln!(s, "{lead}{name}{inl}{mark}");
                match &f.file {
                    Some(file) => {
                        let _ = writeln!(
                            s,
                            "{pad}    at {file}:{}:{}",
                            f.line.unwrap_or(0),
                            f.column.unwrap_or(0)
                        );
                    }
                    None => {
                        let _ = writeln!(s, "{pad}    at ?? (no line info)");
                    }
                }
            }
        }
        Symbolized::Unknown(reason) => {
            let module = report
                .frame
                .module
                .and_then(|m| record.modules.get(m))
                .map(|m| format!(" in {}", m.path))
                .unwrap_or_default();
            let rel = report
                .frame
                .module_address
                .map(|a| format!(" (+{a})"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{prefix}?? {}{module}{rel}{marker}\n{pad}    unknown: {reason}",
                report.frame.address
            );
        }
    }
}

pub(crate) fn json(record: &CrashRecord, report: &RecordReport) -> serde_json::Value {
    let modules: Vec<serde_json::Value> = record
        .modules
        .iter()
        .zip(&report.modules)
        .map(|(module, m)| {
            let (debug_file, source, unknown) = match &m.debug_file {
                None => (None, None, None),
                Some(Ok((path, source))) => (
                    Some(path.display().to_string()),
                    Some(source_name(source)),
                    None,
                ),
                Some(Err(reason)) => (None, None, Some(reason.to_string())),
            };
            serde_json::json!({
                "path": module.path,
                "build_id": module.build_id,
                "debug_file": debug_file,
                "source": source,
                "unknown": unknown,
            })
        })
        .collect();
    let frames = frames_json(&report.frames);
    serde_json::json!({
        "kind": record.kind,
        "time": record.time,
        "pid": record.pid,
        "tid": record.tid,
        "thread_name": record.thread_name,
        "message": record.message,
        "location": record.location,
        "runtimes": record.runtimes,
        "modules": modules,
        "frames": frames,
    })
}

/// The frames of a stack, symbolized, as JSON.
pub(crate) fn frames_json(frames: &[FrameReport]) -> serde_json::Value {
    let frames: Vec<serde_json::Value> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (symbols, unknown) = match &f.symbolized {
                Symbolized::Frames(frames) => (
                    frames.iter().map(crate::symbolize::frame_json).collect(),
                    None,
                ),
                Symbolized::Unknown(reason) => (Vec::new(), Some(reason.to_string())),
            };
            serde_json::json!({
                "index": i,
                "address": f.frame.address,
                "kind": match f.frame.kind { FrameKind::Pc => "pc", FrameKind::ReturnAddress => "return_address" },
                "module": f.frame.module,
                "module_address": f.frame.module_address.map(|a: Addr| a),
                "hidden": f.hidden,
                "own_code": f.own_code,
                "symbols": symbols,
                "unknown": unknown,
            })
        })
        .collect();
    serde_json::Value::Array(frames)
}
