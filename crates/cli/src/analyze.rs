//! `faultline analyze`: a crash record in, a readable (or JSON) crash report out.

use std::fmt::Write as _;
use std::io::{Read, Write};

use faultline_record::{Addr, CrashRecord, FrameKind};
use faultline_symbolize::Demangle;
use faultline_symbolize::record::{FrameReport, RecordReport, symbolize_record};
use faultline_symbolize::{Source, Symbolized};

use crate::exit::Failure;
use crate::{AnalyzeArgs, AnalyzeFormat};

pub fn run(args: AnalyzeArgs) -> Result<(), Failure> {
    if let Some(paths) = &args.diff {
        return crate::dumps::diff(&paths[0], &paths[1], &args);
    }
    let mut texts = Vec::new();
    let many = args.inputs.len() > 1;
    if many && matches!(args.format, AnalyzeFormat::Svg) {
        return Err(Failure::usage(
            "--format svg draws one task dump; give one FILE",
        ));
    }
    for path in &args.inputs {
        let bytes = read_input(path)?;
        let mut text = if is_crash_record(path, &bytes) && !is_task_dump_record(&bytes) {
            record(path, &bytes, &args)?
        } else {
            crate::dumps::analyze(path, &bytes, &args)?
        };
        if many && matches!(args.format, AnalyzeFormat::Human) {
            text = format!("== {}\n{text}", path.display());
        }
        texts.push(text);
    }
    let text = if many && matches!(args.format, AnalyzeFormat::Json) {
        // One JSON array of the per-file documents.
        format!(
            "[\n{}]\n",
            texts
                .iter()
                .map(|t| t.trim_end())
                .collect::<Vec<_>>()
                .join(",\n")
        )
    } else {
        texts.join("\n")
    };
    write_stdout(&text)
}

/// Reads an input: a file, an `http://`/`https://` URL fetched once (a Go service's
/// `/debug/pprof/goroutine?debug=2`, say), a pod's endpoint through a port-forward
/// (`pod://NS/NAME:PORT/PATH`), or `pod:NS/NAME[/CONTAINER]`, the log of a container's
/// previous (crashed) run through the Kubernetes API. A missing file is bad input (exit 2), other I/O and
/// network errors failures (exit 1).
pub fn read_input(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    if let Some(endpoint) = path.to_str().and_then(|p| p.strip_prefix("pod://")) {
        let forwarded = crate::kube::pod_endpoint(endpoint)?;
        return fetch(&forwarded.url).map_err(|f| {
            Failure::new(
                f.code(),
                anyhow::anyhow!("pod://{endpoint}: {}", f.message()),
            )
        });
    }
    if let Some(pod) = path.to_str().and_then(|p| p.strip_prefix("pod:")) {
        return crate::kube::previous_log(pod);
    }
    if let Some(url) = path
        .to_str()
        .filter(|p| p.starts_with("http://") || p.starts_with("https://"))
    {
        return fetch(url);
    }
    if path.is_dir() {
        return Err(Failure::usage(format!(
            "{}: is a directory, expected a crash record or a task dump",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            crate::exit::BAD_INPUT
        } else {
            crate::exit::FAILED
        };
        Failure::new(code, anyhow::anyhow!("{}: {e}", path.display()))
    })
}

/// The most a fetched dump may be: pprof's own debug=2 output stops at 64 MiB.
const MAX_FETCH: u64 = 1 << 30;

fn fetch(url: &str) -> Result<Vec<u8>, Failure> {
    fetch_with_timeout(url, std::time::Duration::from_secs(60))
}

/// `GET url`, the whole body, or a failure (exit 1) naming the URL and why.
pub fn fetch_with_timeout(url: &str, timeout: std::time::Duration) -> Result<Vec<u8>, Failure> {
    use anyhow::Context as _;
    let fetched = (|| -> anyhow::Result<Vec<u8>> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let response = client.get(url).send()?;
        let status = response.status();
        if !status.is_success() {
            // A debug endpoint says why it refused (faultline-capture's 503 names the stuck
            // worker): pass its first line on.
            let mut body = String::new();
            let _ = response.take(4096).read_to_string(&mut body);
            let reason = body.lines().next().unwrap_or_default().trim();
            if reason.is_empty() {
                anyhow::bail!("HTTP {status}");
            }
            anyhow::bail!("HTTP {status}: {reason}");
        }
        let mut body = Vec::new();
        response.take(MAX_FETCH + 1).read_to_end(&mut body)?;
        anyhow::ensure!(
            body.len() as u64 <= MAX_FETCH,
            "larger than {MAX_FETCH} bytes"
        );
        Ok(body)
    })();
    // The report prints the whole chain of causes (`{:#}`), naming the URL first.
    fetched
        .with_context(|| url.to_owned())
        .map_err(Failure::failed)
}

/// JSON (a `.json` file, or content that opens an object) is read as a crash record, so a
/// broken record gets the JSON parser's precise error; anything else is read as a dump.
fn is_crash_record(path: &std::path::Path, bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    path.extension().is_some_and(|e| e == "json") || start.is_some_and(|i| bytes[i] == b'{')
}

/// A faultline record of `kind: task_dump` (what faultline-capture's tokio endpoint serves)
/// is analyzed as a dump: grouped, not printed frame by frame. Only the envelope is read here;
/// the dump reader parses (and reports errors in) the whole record.
pub fn is_task_dump_record(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| v.get("kind").is_some_and(|k| k == "task_dump"))
}

pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(e)),
        _ => Ok(()),
    }
}

fn record(path: &std::path::Path, bytes: &[u8], args: &AnalyzeArgs) -> Result<String, Failure> {
    let record = CrashRecord::from_json(bytes)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
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
        AnalyzeFormat::Json => {
            let mut s =
                serde_json::to_string_pretty(&json(&record, &report)).map_err(Failure::failed)?;
            s.push('\n');
            s
        }
    })
}

pub fn source_name(source: &Source) -> &'static str {
    match source {
        Source::Explicit => "given",
        Source::Store(_) => "store",
        Source::Debuglink => "debuglink",
        Source::Binary => "binary",
        Source::Debuginfod { from_cache: true } => "debuginfod cache",
        Source::Debuginfod { from_cache: false } => "debuginfod",
    }
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

    let _ = writeln!(s);
    let _ = writeln!(s, "modules:");
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
                    s,
                    "  {} [{id}]\n    debug file: {} ({})",
                    module.path,
                    path.display(),
                    source_name(source)
                );
            }
            Err(reason) => {
                let _ = writeln!(s, "  {} [{id}]\n    unknown: {reason}", module.path);
            }
        }
    }
    s
}

fn write_frame(s: &mut String, index: usize, report: &FrameReport, record: &CrashRecord) {
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

fn json(record: &CrashRecord, report: &RecordReport) -> serde_json::Value {
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
    let frames: Vec<serde_json::Value> = report
        .frames
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
