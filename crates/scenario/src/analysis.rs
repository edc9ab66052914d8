//! After a run: the crashes in the targets' output and crash directories, symbolized, and the
//! leak trends of the scraped dumps. The same libraries `faultline analyze` and `faultline
//! leaks` use.

use std::path::{Path, PathBuf};

use faultline_dump::{Dump, Limits, Runtime};
use faultline_record::CrashRecord;
use faultline_symbolize::record::{ResolvedRecord, symbolize_record};
use faultline_symbolize::{Demangle, Locator, Symbolized};

use crate::probe::Scrape;
use crate::verdict::{Crash, LeakGroup, StackFrame};

/// Where one target's crashes may be found.
#[derive(Debug, Clone)]
pub struct CrashSource {
    /// The target's name.
    pub target: String,
    /// Its standard error (lab hosts), relative to the run directory.
    pub stderr: Option<PathBuf>,
    /// The directory its faultline-capture writes records to, and where its cores go
    /// (`core-<time>-<pid>.core` and `.dmp`, as `faultline core-handler` and the lab keep
    /// them).
    pub crash_dir: Option<PathBuf>,
}

/// Lines that start a panic or fatal error in a log.
fn is_crash_start(line: &str) -> bool {
    line.starts_with("panic: ")
        || line.starts_with("fatal error: ")
        || (line.starts_with("thread '") && line.contains(" panicked at "))
}

/// Finds every crash of `sources`. Paths in the result are relative to `run_dir`.
pub fn crashes(sources: &[CrashSource], run_dir: &Path, locator: &Locator) -> Vec<Crash> {
    let mut out = Vec::new();
    for source in sources {
        let mut records = Vec::new();
        if let Some(dir) = &source.crash_dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for file in &files {
                let crash = match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => crash_record(&source.target, file, run_dir, locator),
                    Some("core") => native_crash(&source.target, file, run_dir, locator),
                    // A minidump alone (a Crashpad handler's); beside its core, the same crash.
                    Some("dmp") if !files.contains(&file.with_extension("core")) => {
                        native_crash(&source.target, file, run_dir, locator)
                    }
                    _ => None,
                };
                records.extend(crash);
            }
        }
        let had_records = !records.is_empty();
        out.extend(records);
        if let Some(stderr) = &source.stderr
            && let Ok(text) = std::fs::read_to_string(run_dir.join(stderr))
        {
            for crash in log_crashes(&source.target, &text, &stderr.display().to_string()) {
                // A Rust service with faultline-capture also prints its panic; the record,
                // symbolized, says more, so the text is not counted twice.
                if had_records && crash.kind == "rust panic" {
                    continue;
                }
                out.push(crash);
            }
        }
    }
    out
}

/// The data races Go's race detector reported in the targets' standard error, identical ones
/// (the same two accesses' own frames) once, with their count. Paths are relative to
/// `run_dir`.
pub fn races(sources: &[CrashSource], run_dir: &Path) -> Vec<Crash> {
    let mut out = Vec::new();
    for source in sources {
        let Some(stderr) = &source.stderr else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(run_dir.join(stderr)) else {
            continue;
        };
        out.extend(log_races(
            &source.target,
            &text,
            &stderr.display().to_string(),
        ));
    }
    out
}

/// The data races in a log.
pub fn log_races(target: &str, text: &str, file: &str) -> Vec<Crash> {
    if !text.contains("WARNING: DATA RACE") {
        return Vec::new();
    }
    let Ok(dumps) = faultline_dump::parse_all(text.as_bytes(), &Limits::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dump in &dumps {
        for group in faultline_dump::group_races(dump, None) {
            let race = &group.race;
            let describe = |a: &faultline_dump::RaceAccess| {
                let at = a
                    .frames
                    .iter()
                    .find(|f| faultline_dump::is_own_code(Runtime::Go, &f.function, None))
                    .or(a.frames.first())
                    .map_or_else(|| "an unknown place".into(), frame_text);
                let by = match (a.main, a.goroutine) {
                    (true, _) => "the main goroutine".to_owned(),
                    (false, Some(id)) => format!("goroutine {id}"),
                    (false, None) => "a goroutine".to_owned(),
                };
                format!("{} by {by} in {at}", a.kind.to_lowercase())
            };
            let message = format!(
                "{} ({}×)",
                race.accesses
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join(", against "),
                group.count
            );
            let frames = race
                .accesses
                .first()
                .map(|a| a.frames.clone())
                .unwrap_or_default();
            let own = frames
                .iter()
                .find(|f| faultline_dump::is_own_code(Runtime::Go, &f.function, None));
            out.push(Crash {
                target: target.to_owned(),
                file: file.to_owned(),
                kind: "go data race".into(),
                message,
                top_frame: own
                    .or(frames.first())
                    .map_or_else(|| "unknown: no frames in the report".into(), frame_text),
                stack: frames.iter().map(frame_text).collect(),
                time: None,
                frames: frames
                    .iter()
                    .map(|f| StackFrame {
                        text: frame_text(f),
                        own: faultline_dump::is_own_code(Runtime::Go, &f.function, None),
                        inlined: f.inlined,
                        hidden: false,
                        file: f.file.as_deref().map(str::to_owned),
                        line: f.line,
                    })
                    .collect(),
            });
        }
    }
    out
}

/// The panics and fatal errors in a log, each parsed from its first line to the next one. A
/// log of JSON lines (Docker's json-file, an export) is read stream by stream.
pub fn log_crashes(target: &str, text: &str, file: &str) -> Vec<Crash> {
    let fields = faultline_dump::json_lines::LogFields::default();
    if faultline_dump::json_lines::detect(text.as_bytes(), &fields) {
        let Ok(streams) = faultline_dump::json_lines::streams(text.as_bytes(), &fields) else {
            return Vec::new();
        };
        return streams
            .iter()
            .flat_map(|s| {
                let file = match &s.key {
                    Some(key) => format!("{file} [{key}]"),
                    None => file.to_owned(),
                };
                text_crashes(target, &s.text, &file)
            })
            .collect();
    }
    text_crashes(target, text, file)
}

fn text_crashes(target: &str, text: &str, file: &str) -> Vec<Crash> {
    let lines: Vec<(usize, &str)> = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .chain(std::iter::once(0))
        .filter(|&start| start < text.len())
        .map(|start| (start, text[start..].lines().next().unwrap_or_default()))
        .collect();
    let mut starts: Vec<usize> = lines
        .iter()
        .filter(|(_, l)| is_crash_start(l))
        .map(|(s, _)| *s)
        .collect();
    starts.sort_unstable();
    let mut out = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let chunk = &text[start..end];
        let first = chunk.lines().next().unwrap_or_default();
        let Ok(dump) = faultline_dump::parse(chunk.as_bytes(), &Limits::default()) else {
            out.push(Crash {
                target: target.to_owned(),
                file: file.to_owned(),
                kind: "crash".into(),
                message: first.to_owned(),
                top_frame: "unknown: the stack could not be parsed".into(),
                stack: Vec::new(),
                time: None,
                frames: Vec::new(),
            });
            continue;
        };
        out.push(from_dump(target, file, &dump, first));
    }
    out
}

fn from_dump(target: &str, file: &str, dump: &Dump, first_line: &str) -> Crash {
    let kind = match dump.runtime {
        Runtime::Go => "go panic",
        Runtime::Rust => "rust panic",
        _ => "crash",
    };
    let message = dump.crash.as_ref().map_or_else(
        || first_line.to_owned(),
        |c| c.message.lines().next().unwrap_or_default().to_owned(),
    );
    // The crashing task: the first one (Go lists the panicking goroutine first).
    let frames = dump
        .tasks
        .first()
        .map(|t| t.frames.to_vec())
        .unwrap_or_default();
    let own = frames
        .iter()
        .find(|f| faultline_dump::is_own_code(dump.runtime, &f.function, None));
    let top_frame = own
        .or(frames.first())
        .map_or_else(|| "unknown: no frames in the output".into(), frame_text);
    Crash {
        target: target.to_owned(),
        file: file.to_owned(),
        kind: kind.into(),
        message,
        top_frame,
        stack: frames.iter().map(frame_text).collect(),
        time: None,
        frames: frames
            .iter()
            .map(|f| StackFrame {
                text: frame_text(f),
                own: faultline_dump::is_own_code(dump.runtime, &f.function, None),
                inlined: f.inlined,
                hidden: false,
                file: f.file.as_deref().map(str::to_owned),
                line: f.line,
            })
            .collect(),
    }
}

fn frame_text(frame: &faultline_dump::Frame) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{} at {file}:{line}", frame.function),
        (Some(file), None) => format!("{} at {file}", frame.function),
        _ => frame.function.to_string(),
    }
}

fn crash_record(target: &str, file: &Path, run_dir: &Path, locator: &Locator) -> Option<Crash> {
    let bytes = std::fs::read(file).ok()?;
    let shown = file
        .strip_prefix(run_dir)
        .unwrap_or(file)
        .display()
        .to_string();
    let record = match CrashRecord::from_json(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return Some(Crash {
                target: target.to_owned(),
                file: shown,
                kind: "crash record".into(),
                message: format!("unreadable crash record: {e}"),
                top_frame: "unknown".into(),
                stack: Vec::new(),
                time: None,
                frames: Vec::new(),
            });
        }
    };
    if !record.tasks.is_empty() {
        return None; // a task dump, not a crash
    }
    Some(symbolized_crash(
        target,
        shown,
        "crash record",
        &record,
        locator,
    ))
}

/// A core or minidump in a crash directory (a crash of a program without the SDK), unwound
/// and symbolized as `faultline analyze` does it: the crashing thread's frames.
fn native_crash(target: &str, file: &Path, run_dir: &Path, locator: &Locator) -> Option<Crash> {
    let bytes = std::fs::read(file).ok()?;
    let shown = file
        .strip_prefix(run_dir)
        .unwrap_or(file)
        .display()
        .to_string();
    let time = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default();
    let (dump, stacks) = match unwind_dump(&bytes, locator) {
        Ok(d) => d,
        Err(e) => {
            return Some(Crash {
                target: target.to_owned(),
                file: shown,
                kind: "native crash".into(),
                message: format!("unreadable core: {e}"),
                top_frame: "unknown".into(),
                stack: Vec::new(),
                time: None,
                frames: Vec::new(),
            });
        }
    };
    let record = faultline_native::record::crash_record(&dump, &stacks, time);
    let mut crash = symbolized_crash(target, shown, "native crash", &record, locator);
    // A Go program's own module holds its runtime too: the crash is where the runtime's
    // abort (`runtime.raise`, `runtime.sigpanic`, …) was entered from.
    if crash.top_frame.starts_with("runtime.")
        && let Some(frame) = crash
            .frames
            .iter()
            .find(|f| f.file.is_some() && !f.hidden && !f.text.starts_with("runtime."))
    {
        crash.top_frame = frame.text.clone();
    }
    if let Some(name) = &dump.core.name {
        crash.message = format!("{} in {name}", crash.message);
    }
    Some(crash)
}

/// A core or minidump read and every thread unwound, each module's unwind tables found by
/// `locator` (`faultline analyze` and the runner both).
pub fn unwind_dump<'a>(
    bytes: &'a [u8],
    locator: &Locator,
) -> Result<
    (
        faultline_native::Dump<'a>,
        Vec<Vec<faultline_native::NativeFrame>>,
    ),
    faultline_native::CoreError,
> {
    let mut dump = faultline_native::open(bytes)?;
    let files: Vec<Option<Vec<u8>>> = dump
        .modules
        .iter()
        .map(|m| {
            m.build_id
                .as_ref()
                .and_then(|id| locator.unwind_file(id, &m.path))
        })
        .collect();
    let stacks = faultline_native::record::unwind_all(&mut dump, &files);
    Ok((dump, stacks))
}

/// A crash record's crashing frames symbolized, as the report and the TUI show them.
fn symbolized_crash(
    target: &str,
    shown: String,
    kind: &str,
    record: &CrashRecord,
    locator: &Locator,
) -> Crash {
    let report = symbolize_record(record, locator, Demangle::Short);
    let mut all_frames = Vec::new();
    let mut top = None;
    for frame in &report.frames {
        let shown: Vec<StackFrame> = match &frame.symbolized {
            Symbolized::Frames(frames) => frames
                .iter()
                .enumerate()
                .map(|(i, sf)| {
                    let function = sf.function.as_deref().unwrap_or("??");
                    StackFrame {
                        text: match (&sf.file, sf.line) {
                            (Some(file), Some(line)) => format!("{function} at {file}:{line}"),
                            _ => function.to_owned(),
                        },
                        own: frame.own_code,
                        // Every frame of an address but the last is inlined into the next.
                        inlined: i + 1 < frames.len(),
                        hidden: frame.hidden,
                        file: sf.file.as_ref().map(ToString::to_string),
                        line: sf.line,
                    }
                })
                .collect(),
            Symbolized::Unknown(reason) => vec![StackFrame {
                text: format!("unknown ({reason})"),
                hidden: frame.hidden,
                ..StackFrame::default()
            }],
        };
        if frame.own_code && top.is_none() {
            top = shown.first().map(|f| f.text.clone());
        }
        all_frames.extend(shown);
    }
    let stack: Vec<String> = all_frames
        .iter()
        .filter(|f| !f.hidden)
        .map(|f| f.text.clone())
        .collect();
    Crash {
        target: target.to_owned(),
        file: shown,
        kind: kind.into(),
        message: record.message.clone().unwrap_or_default(),
        top_frame: top
            .or_else(|| stack.first().cloned())
            .unwrap_or_else(|| "unknown: no frames".into()),
        stack,
        time: Some(record.time.clone()),
        frames: all_frames,
    }
}

/// What the dump captures showed: every group's trend (leaking first), notes on what could
/// not be read, and each capture's first and last dumps.
#[derive(Debug, Default)]
pub struct Captured {
    /// Every group's trend.
    pub groups: Vec<LeakGroup>,
    /// Unreadable dumps, failed scrapes, restarts.
    pub notes: Vec<String>,
    /// Each capture's first and last dumps.
    pub captures: Vec<crate::verdict::CaptureView>,
}

/// Tracks each dump capture's scrapes.
pub fn leaks(captures: &[(String, Vec<Scrape>)], run_dir: &Path, locator: &Locator) -> Captured {
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    let mut views = Vec::new();
    for (name, scrapes) in captures {
        let mut tracker = faultline_leak::Tracker::new(faultline_leak::Config::default());
        let mut pushed = 0;
        let mut view = crate::verdict::CaptureView {
            name: name.clone(),
            ..Default::default()
        };
        for scrape in scrapes {
            let Some(file) = &scrape.file else { continue };
            let Ok(bytes) = std::fs::read(run_dir.join(file)) else {
                continue;
            };
            let dump = if bytes.starts_with(b"{") {
                match CrashRecord::from_json(&bytes) {
                    Ok(record) => {
                        let mut resolved = ResolvedRecord::new(&record, locator, Demangle::Short);
                        faultline_dump::from_record(&record, &Limits::default(), &mut resolved)
                    }
                    Err(e) => {
                        notes.push(format!("{file}: {e}"));
                        continue;
                    }
                }
            } else {
                faultline_dump::parse(&bytes, &Limits::default())
            };
            match dump {
                Ok(dump) => {
                    if tracker
                        .push_with_alive(scrape.t, &dump, dump.alive_tasks)
                        .is_ok()
                    {
                        pushed += 1;
                    }
                    if view.first.is_none() {
                        view.first = Some((file.clone(), dump));
                    } else {
                        view.last = Some((file.clone(), dump));
                    }
                }
                Err(e) => notes.push(format!("{file}: {e}")),
            }
        }
        let failed = scrapes.iter().filter(|s| s.file.is_none()).count();
        if failed > 0 {
            let first = scrapes
                .iter()
                .find_map(|s| s.error.clone())
                .unwrap_or_default();
            notes.push(format!(
                "{name}: {failed} of {} scrapes failed (first: {first})",
                scrapes.len()
            ));
        }
        if pushed == 0 {
            continue;
        }
        views.push(view);
        let report = tracker.report(3600.0);
        for g in report.groups {
            let frame = g
                .own_frame
                .and_then(|i| g.frames.get(i))
                .or(g.frames.first())
                .map_or_else(|| "(other groups)".into(), frame_text);
            groups.push(LeakGroup {
                dump: name.clone(),
                verdict: g.trend.verdict.name().into(),
                frame,
                first: g.trend.count_first,
                last: g.trend.count_last,
                slope_per_min: g.trend.slope_per_min,
                p_value: g.trend.p_value,
                samples: g.trend.samples,
                series: g.trend.series.clone(),
                proven_leaked: g.evidence.proven_leaked,
                survivors: g.evidence.survivors,
                turnover: g.evidence.turnover,
                oldest_seen_seconds: g.evidence.oldest_seen_seconds,
                persisting: g.evidence.persisting,
                why: g.evidence.why.clone(),
                before_restart: g.before_restart,
                projected_1h: g.trend.projected,
            });
        }
        for restart in &report.restarts {
            notes.push(format!(
                "{name}: the process restarted at {:.1}s ({}): its groups' series were split there",
                restart.time_seconds, restart.why
            ));
        }
    }
    Captured {
        groups,
        notes,
        captures: views,
    }
}

/// A locator over the scenario's debug directories and debuginfod servers (or
/// `DEBUGINFOD_URLS` when it names none).
pub fn locator(debug: &crate::model::Debug) -> Locator {
    use faultline_symbolize::debuginfod::{DebuginfodClient, DebuginfodOptions};
    let client = if debug.debuginfod.is_empty() {
        DebuginfodClient::from_env()
    } else {
        Some(DebuginfodClient::new(
            debug.debuginfod.clone(),
            DebuginfodOptions::from_env(),
        ))
    };
    // Symbol indexes are read and made as `faultline symbolize` does, silently: a run and
    // the TUI have screens of their own.
    Locator::new()
        .with_stores(debug.dirs.iter().cloned())
        .with_debuginfod(client)
        .with_index(faultline_symbolize::index::IndexOptions::from_env())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_panic_in_a_log_is_one_crash() {
        let log = "\
starting
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.lookup(...)
\t/src/inventory/main.go:42
main.main()
\t/src/inventory/main.go:17 +0x1d
exit status 2
restarted
panic: second

goroutine 1 [running]:
main.main()
\t/src/inventory/main.go:20 +0x1d
";
        let crashes = log_crashes("inventory", log, "hosts/inventory/stderr.log");
        assert_eq!(crashes.len(), 2, "{crashes:#?}");
        assert_eq!(crashes[0].kind, "go panic");
        assert_eq!(
            crashes[0].message,
            "runtime error: index out of range [5] with length 3"
        );
        assert_eq!(
            crashes[0].top_frame,
            "main.lookup at /src/inventory/main.go:42"
        );
        assert_eq!(crashes[1].message, "second");
        assert!(log_crashes("x", "all is well\n", "f").is_empty());
    }

    #[test]
    fn a_docker_json_file_log_is_read_stream_by_stream() {
        let entry = |line: &str, stream: &str| {
            format!(
                "{{\"log\":\"{}\\n\",\"stream\":\"{stream}\",\"time\":\"2026-11-28T10:00:00Z\"}}\n",
                line.replace('\t', "\\t")
            )
        };
        let log = [
            entry("starting", "stdout"),
            entry("panic: boom", "stderr"),
            entry("serving", "stdout"),
            entry("", "stderr"),
            entry("goroutine 1 [running]:", "stderr"),
            entry("main.main()", "stderr"),
            entry("\t/src/app/main.go:9 +0x1d", "stderr"),
        ]
        .concat();
        let crashes = log_crashes("app", &log, "pods/app.log");
        assert_eq!(crashes.len(), 1, "{crashes:#?}");
        assert_eq!(crashes[0].message, "boom");
        assert_eq!(crashes[0].file, "pods/app.log [stderr]");
        assert_eq!(crashes[0].top_frame, "main.main at /src/app/main.go:9");
    }
}
