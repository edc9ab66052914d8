//! `faultline analyze` of task dumps: groups largest first, and `--diff`.

use std::fmt::Write as _;
use std::path::Path;

use faultline_dump::{
    Change, Dump, Frame, Group, GroupChange, Limits, RaceAccess, RaceGroup, Runtime, Signal,
};
use faultline_record::CrashRecord;
use faultline_symbolize::Demangle;
use faultline_symbolize::record::ResolvedRecord;

use crate::exit::Failure;
use crate::input::{self, Kind};
use crate::{AnalyzeArgs, AnalyzeFormat, LookupArgs};
use faultline_dump::json_lines::LogFields;

/// Frames of a group's stack shown in the human format before `…`.
const SHOWN_FRAMES: usize = 12;
/// Task ids listed per group before `…`.
const SHOWN_IDS: usize = 8;

/// The dumps of an input (a Go text can hold several), and for a task-dump record what became
/// of its modules' debug files.
pub struct Loaded {
    pub dumps: Vec<Dump>,
    pub modules: Vec<ModuleNote>,
}

impl Loaded {
    /// The dump the input is about (`faultline_dump::principal`): what `leaks` and `--diff`
    /// read.
    pub fn principal(mut self) -> Dump {
        match faultline_dump::principal(&self.dumps) {
            Some(at) => self.dumps.swap_remove(at),
            None => Dump::empty(Runtime::Go, faultline_dump::Format::GoTraceback),
        }
    }
}

/// A module of a task-dump record whose frames were looked up.
pub struct ModuleNote {
    path: String,
    build_id: Option<String>,
    /// The debug file and how it was found, or why there is none.
    debug_file: Result<(String, &'static str), String>,
}

/// Parses a dump of any format (`kind`, as [`input::detect`] told it); a task-dump record's
/// addresses are resolved with `lookup`.
pub fn load(
    path: &Path,
    bytes: &[u8],
    kind: Kind,
    lookup: &LookupArgs,
    log: &LogFields,
) -> Result<Loaded, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::usage(format!("{}: {e}", path.display()));
    if matches!(kind, Kind::Core | Kind::Binary) {
        return Err(Failure::usage(format!(
            "{}: {}: not a task dump (`faultline analyze` reads cores and minidumps)",
            path.display(),
            crate::input::describe_binary(bytes)
        )));
    }
    if kind == Kind::Log {
        let dumps =
            faultline_dump::parse_log(bytes, &Limits::default(), log).map_err(|e| bad(&e))?;
        return Ok(Loaded {
            dumps,
            modules: Vec::new(),
        });
    }
    if kind != Kind::TaskDumpRecord {
        let dumps = faultline_dump::parse_all(bytes, &Limits::default()).map_err(|e| bad(&e))?;
        return Ok(Loaded {
            dumps,
            modules: Vec::new(),
        });
    }
    // A task dump of raw addresses (faultline-capture's tokio endpoint): resolve them against
    // the debug files found by build-id, then read it like any other dump.
    let record = CrashRecord::from_json(bytes).map_err(|e| bad(&e))?;
    let locator = lookup.locator()?;
    let mut resolved = ResolvedRecord::new(&record, &locator, Demangle::Short);
    let dump = faultline_dump::from_record(&record, &Limits::default(), &mut resolved)
        .map_err(|e| bad(&e))?;
    let modules = record
        .modules
        .iter()
        .zip(&resolved.modules)
        .filter_map(|(module, report)| {
            let debug_file = report.debug_file.as_ref()?;
            Some(ModuleNote {
                path: module.path.clone(),
                build_id: module.build_id.as_ref().map(ToString::to_string),
                debug_file: match debug_file {
                    Ok((file, source)) => Ok((
                        file.display().to_string(),
                        crate::symbolize::source_name(source),
                    )),
                    Err(reason) => Err(reason.to_string()),
                },
            })
        })
        .collect();
    Ok(Loaded {
        dumps: vec![dump],
        modules,
    })
}

/// The reports of the dumps in `bytes` (of `kind`), read from `path`, one document per dump in
/// order: groups largest first, or a flame graph (of the dump the input is about).
pub fn report(
    path: &Path,
    bytes: &[u8],
    kind: Kind,
    args: &AnalyzeArgs,
) -> Result<Vec<String>, Failure> {
    let Loaded { mut dumps, modules } = load(path, bytes, kind, &args.lookup, &args.log.fields())?;
    dumps.retain(|d| !d.tasks.is_empty() || d.crash.is_some() || !d.races.is_empty());
    if dumps.is_empty() {
        return Err(Failure::usage(format!(
            "{}: not a crash record or a task dump this faultline reads (a faultline crash \
             record, Go panic output, goroutine dump or race report)",
            path.display()
        )));
    }
    if matches!(args.format, AnalyzeFormat::Svg) {
        let at = faultline_dump::principal(&dumps).unwrap_or(0);
        return Ok(vec![flame_graph(path, &dumps[at])?]);
    }
    let n = dumps.len();
    dumps
        .iter()
        .enumerate()
        .map(|(i, dump)| {
            let groups = faultline_dump::group(dump, args.level, args.main_module.as_deref());
            let races = faultline_dump::group_races(dump, args.main_module.as_deref());
            Ok(match args.format {
                AnalyzeFormat::Human => {
                    let stream = dump
                        .stream
                        .as_ref()
                        .map(|k| format!(" [{k}]"))
                        .unwrap_or_default();
                    let label = if n > 1 {
                        format!(
                            "{} (dump {} of {n}{})",
                            path.display(),
                            i + 1,
                            if dump.indent > 0 {
                                ", quoted in the output around it"
                            } else {
                                ""
                            }
                        )
                    } else {
                        path.display().to_string()
                    };
                    human(&format!("{label}{stream}"), dump, &groups, &races, &modules)
                }
                AnalyzeFormat::Html => {
                    let label = match (n > 1, &dump.stream) {
                        (true, _) => format!("{} (dump {} of {n})", path.display(), i + 1),
                        (false, Some(stream)) => format!("{} [{stream}]", path.display()),
                        (false, None) => path.display().to_string(),
                    };
                    html_section(&label, dump, &groups, &races, &modules)
                }
                _ => {
                    let mut s =
                        serde_json::to_string_pretty(&json(dump, &groups, &races, &modules))
                            .map_err(Failure::failed)?;
                    s.push('\n');
                    s
                }
            })
        })
        .collect()
}

/// A flame graph (inferno) of every task's stack, root at the bottom, widths by task count:
/// for 30,000 goroutines, a picture reads faster than a list.
fn flame_graph(path: &Path, dump: &Dump) -> Result<String, Failure> {
    let title = format!(
        "{}: {} {} tasks",
        path.display(),
        dump.task_count(),
        runtime_name(dump.runtime)
    );
    faultline_scenario::html::flame_graph(&title, dump)
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?
        .ok_or_else(|| {
            Failure::usage(format!(
                "{}: no stacks to draw (the dump has no frames)",
                path.display()
            ))
        })
}

/// `--diff OLD NEW`: which groups appeared, grew, shrank or vanished.
pub fn diff(old: &Path, new: &Path, args: &AnalyzeArgs) -> Result<String, Failure> {
    let read = |path: &Path| -> Result<Dump, Failure> {
        let bytes = input::read(path)?;
        let fields = args.log.fields();
        let kind = input::detect(path, &bytes, &fields);
        Ok(load(path, &bytes, kind, &args.lookup, &fields)?.principal())
    };
    let before = read(old)?;
    let after = read(new)?;
    let module = args.main_module.as_deref();
    let changes = faultline_dump::diff(
        &faultline_dump::group(&before, args.level, module),
        &faultline_dump::group(&after, args.level, module),
    );
    let text = match args.format {
        AnalyzeFormat::Svg => {
            return Err(Failure::usage(
                "--format svg draws one dump; --diff prints human or json",
            ));
        }
        AnalyzeFormat::Human => {
            let mut s = format!(
                "{} → {}: {} → {} tasks\n",
                old.display(),
                new.display(),
                before.task_count(),
                after.task_count()
            );
            for c in changes.iter().filter(|c| c.change != Change::Unchanged) {
                let _ = writeln!(
                    s,
                    "\n{:>9} {:>6} → {:<6} ({:+}) {}",
                    change_name(c.change),
                    c.before,
                    c.after,
                    c.delta(),
                    state_text(&c.group)
                );
                write_stack(&mut s, &c.group, "    ");
            }
            let unchanged = changes
                .iter()
                .filter(|c| c.change == Change::Unchanged)
                .count();
            let _ = writeln!(s, "\n{unchanged} groups unchanged");
            s
        }
        AnalyzeFormat::Html => {
            let title = format!("{} → {}", old.display(), new.display());
            let body = format!(
                "<h1>{}</h1><p>{} → {} tasks</p>{}",
                faultline_scenario::html::escape(&title),
                before.task_count(),
                after.task_count(),
                faultline_scenario::html::scroll(&faultline_scenario::html::diff_table(&changes))
            );
            faultline_scenario::html::page(&format!("faultline analyze --diff {title}"), &body)
        }
        AnalyzeFormat::Json => {
            let value = serde_json::json!({
                "old": { "file": old.display().to_string(), "task_count": before.task_count() },
                "new": { "file": new.display().to_string(), "task_count": after.task_count() },
                "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
            });
            let mut s = serde_json::to_string_pretty(&value).map_err(Failure::failed)?;
            s.push('\n');
            s
        }
    };
    Ok(text)
}

fn change_name(change: Change) -> &'static str {
    match change {
        Change::Appeared => "appeared",
        Change::Grew => "grew",
        Change::Shrank => "shrank",
        Change::Vanished => "vanished",
        Change::Unchanged => "unchanged",
    }
}

pub fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Go => "go",
        Runtime::Rust => "rust",
        Runtime::Tokio => "tokio",
    }
}

pub fn state_text(group: &Group) -> String {
    if group.state.is_none()
        && group.wait_seconds.is_none()
        && group.locked_to_thread == 0
        && group.proven_leaked == 0
    {
        // Formats without states (pprof debug=1) say nothing rather than "unknown".
        return String::new();
    }
    let mut s = format!("[{}", group.state.as_deref().unwrap_or("unknown state"));
    if group.mixed_states {
        s.push_str(" and others");
    }
    match group.wait_seconds {
        Some((lo, hi)) if lo == hi => {
            let _ = write!(s, ", {} min", lo / 60);
        }
        Some((lo, hi)) => {
            let _ = write!(s, ", {}–{} min", lo / 60, hi / 60);
        }
        None => {}
    }
    if group.locked_to_thread > 0 {
        let _ = write!(s, ", {} locked to thread", group.locked_to_thread);
    }
    if group.proven_leaked > 0 {
        let _ = write!(s, ", {} proven leaked", group.proven_leaked);
    }
    s.push(']');
    s
}

pub fn location(frame: &Frame) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => match frame.column {
            Some(column) => format!("{file}:{line}:{column}"),
            None => format!("{file}:{line}"),
        },
        (Some(file), None) => file.to_string(),
        _ => "??".into(),
    }
}

pub fn write_stack(s: &mut String, group: &Group, indent: &str) {
    write_frames(
        s,
        &group.frames,
        group.own_frame,
        group.creator.as_ref(),
        indent,
    );
}

/// A stack, innermost first, the first frame of your own code marked, then its creator.
pub fn write_frames(
    s: &mut String,
    frames: &[Frame],
    own_frame: Option<usize>,
    creator: Option<&Frame>,
    indent: &str,
) {
    if frames.is_empty() {
        // A tokio task parked on a future tokio does not trace (socket I/O, say), or a
        // goroutine whose stack the runtime did not print.
        let _ = writeln!(s, "{indent}(no frames recorded)");
    }
    for (i, frame) in frames.iter().enumerate().take(SHOWN_FRAMES) {
        let mark = if own_frame == Some(i) {
            "  <- first frame of your code"
        } else {
            ""
        };
        let inlined = if frame.inlined { " (inlined)" } else { "" };
        let _ = writeln!(s, "{indent}{}{inlined}{mark}", frame.function);
        let _ = writeln!(s, "{indent}    {}", location(frame));
    }
    if frames.len() > SHOWN_FRAMES {
        let _ = writeln!(s, "{indent}… {} more frames", frames.len() - SHOWN_FRAMES);
    }
    if let Some(creator) = creator {
        let _ = writeln!(
            s,
            "{indent}created by {} at {}",
            creator.function,
            location(creator)
        );
    }
}

fn human(
    label: &str,
    dump: &Dump,
    groups: &[Group],
    races: &[RaceGroup],
    modules: &[ModuleNote],
) -> String {
    let mut s = String::new();
    let version = dump
        .version
        .as_deref()
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    let alive = dump
        .alive_tasks
        .map(|n| format!(", {n} alive"))
        .unwrap_or_default();
    let at = dump
        .captured_at
        .as_deref()
        .map(|t| format!(" at {t}"))
        .unwrap_or_default();
    if dump.tasks.is_empty() && !dump.races.is_empty() {
        let reports: u64 = races.iter().map(|r| r.count).sum();
        let _ = writeln!(
            s,
            "{label}: {reports} data race reports, {} distinct (go race detector){at}",
            races.len()
        );
    } else {
        let _ = writeln!(
            s,
            "{label}: {} {} tasks in {} groups ({}{version}{alive}){at}",
            dump.task_count(),
            runtime_name(dump.runtime),
            groups.len(),
            dump.format.name()
        );
    }
    for module in modules {
        let id = module.build_id.as_deref().unwrap_or("no build-id");
        match &module.debug_file {
            Ok((file, source)) => {
                let _ = writeln!(s, "{} [{id}]: debug file {file} ({source})", module.path);
            }
            Err(reason) => {
                let _ = writeln!(s, "{} [{id}]: frames unknown: {reason}", module.path);
            }
        }
    }
    if let Some(crash) = &dump.crash {
        let _ = writeln!(s, "{}: {}", crash.kind, crash.message);
        if let Some(signal) = &crash.signal {
            let _ = writeln!(s, "[{signal}]");
        }
        if let Some(info) = &crash.signal_info {
            let _ = writeln!(s, "{}", signal_text(info));
        }
    }
    for stack in &dump.system_stacks {
        let _ = writeln!(s, "\n{} (not a goroutine):", stack.label);
        write_frames(&mut s, &stack.frames, None, None, "         ");
    }
    for race in races {
        write_race(&mut s, race);
    }
    for group in groups {
        let ids: Vec<String> = group
            .ids
            .iter()
            .take(SHOWN_IDS)
            .map(ToString::to_string)
            .collect();
        let more = if group.ids.len() > SHOWN_IDS {
            ", …"
        } else {
            ""
        };
        let ids = if ids.is_empty() {
            String::new()
        } else {
            format!("  ids {}{more}", ids.join(", "))
        };
        let state = state_text(group);
        let state = if state.is_empty() {
            state
        } else {
            format!(" {state}")
        };
        let _ = writeln!(s, "\n{:>6} ×{state}{ids}", group.count);
        if let Some(name) = &group.name {
            let _ = writeln!(s, "         thread '{name}'");
        }
        if let Some(message) = &group.message {
            for line in message.lines() {
                let _ = writeln!(s, "         | {line}");
            }
        }
        write_stack(&mut s, group, "         ");
        for ancestor in &group.ancestors {
            let _ = writeln!(s, "         originating from goroutine {}:", ancestor.id);
            write_frames(
                &mut s,
                &ancestor.frames,
                None,
                ancestor.creator.as_ref(),
                "             ",
            );
        }
    }
    if !dump.diagnostics.is_empty() {
        let _ = writeln!(
            s,
            "\n{} lines not understood (first: {})",
            dump.diagnostics.len(),
            dump.diagnostics[0]
        );
    }
    s
}

pub fn frame_json(frame: &Frame) -> serde_json::Value {
    serde_json::json!({
        "function": &*frame.function,
        "file": frame.file.as_deref(),
        "line": frame.line,
        "column": frame.column,
        "offset": frame.offset,
        "address": frame.address,
        "inlined": frame.inlined,
    })
}

fn group_json(group: &Group) -> serde_json::Value {
    serde_json::json!({
        "count": group.count,
        "state": group.state,
        "mixed_states": group.mixed_states,
        "wait_seconds": group.wait_seconds.map(|(min, max)| serde_json::json!({"min": min, "max": max})),
        "ids": group.ids,
        "locked_to_thread": group.locked_to_thread,
        "proven_leaked": group.proven_leaked,
        "own_frame": group.own_frame,
        "frames": group.frames.iter().map(frame_json).collect::<Vec<_>>(),
        "creator": group.creator.as_ref().map(frame_json),
        "name": group.name,
        "message": group.message,
        "ancestors": group.ancestors.iter().map(|a| serde_json::json!({
            "id": a.id,
            "frames": a.frames.iter().map(frame_json).collect::<Vec<_>>(),
            "creator": a.creator.as_ref().map(frame_json),
        })).collect::<Vec<_>>(),
    })
}

fn change_json(change: &GroupChange) -> serde_json::Value {
    serde_json::json!({
        "change": change_name(change.change),
        "before": change.before,
        "after": change.after,
        "group": group_json(&change.group),
    })
}

/// One dump as a section of an HTML page: what it is, its crash, its races, its flame graph,
/// its groups with their stacks.
fn html_section(
    label: &str,
    dump: &Dump,
    groups: &[Group],
    races: &[RaceGroup],
    modules: &[ModuleNote],
) -> String {
    use faultline_scenario::html::{self as h, escape};
    let mut s = format!(
        "<section class=dump><h1>{}</h1><p>{} {} tasks in {} groups ({}){}</p>",
        escape(label),
        dump.task_count(),
        runtime_name(dump.runtime),
        groups.len(),
        dump.format.name(),
        dump.captured_at
            .as_deref()
            .map(|t| format!(", taken at {}", escape(t)))
            .unwrap_or_default()
    );
    for module in modules {
        let _ = write!(
            s,
            "<p class=muted>{}: {}</p>",
            escape(&module.path),
            escape(&match &module.debug_file {
                Ok((file, source)) => format!("debug file {file} ({source})"),
                Err(reason) => format!("frames unknown: {reason}"),
            })
        );
    }
    if let Some(crash) = &dump.crash {
        let _ = write!(
            s,
            "<h2 class=fail>{}: {}</h2>",
            escape(&crash.kind),
            escape(&crash.message)
        );
        if let Some(info) = &crash.signal_info {
            let _ = write!(s, "<p>{}</p>", escape(&signal_text(info)));
        }
    }
    for stack in &dump.system_stacks {
        let _ = write!(s, "<h3>{} (not a goroutine)</h3>", escape(&stack.label));
        s.push_str(&h::stack(&stack.frames, None, None));
    }
    if !races.is_empty() {
        s.push_str("<h2>Data races</h2>");
        for race in races {
            let mut text = String::new();
            write_race(&mut text, race);
            let _ = write!(s, "<pre class=race>{}</pre>", escape(text.trim_start()));
        }
    }
    if let Ok(Some(svg)) = h::flame_graph(label, dump) {
        s.push_str(&h::flame_image(&svg, label));
    }
    s.push_str("<h2>Groups</h2>");
    s.push_str(&h::scroll(&h::groups(groups)));
    s.push_str("</section>");
    s
}

/// `SIGSEGV (segmentation violation), code 1 SEGV_MAPERR: address not mapped to object, at
/// address 0x0, pc 0x49bd89, during cgo execution`.
fn signal_text(info: &Signal) -> String {
    let mut parts = vec![format!("{} ({})", info.name, info.description)];
    match (info.code, info.code_meaning) {
        (Some(code), Some(meaning)) => parts.push(format!("code {code} {meaning}")),
        (Some(code), None) => parts.push(format!("code {code}")),
        _ => {}
    }
    if let Some(address) = info.address {
        parts.push(format!("fault address {address:#x}"));
    }
    if let Some(pc) = info.pc {
        parts.push(format!("pc {pc:#x}"));
    }
    if let Some(m) = info.m {
        parts.push(format!("thread m={m}"));
    }
    if info.during_cgo {
        parts.push("during cgo execution (in C code)".into());
    }
    format!("signal: {}", parts.join(", "))
}

fn access_text(access: &RaceAccess) -> String {
    let by = match (access.main, access.goroutine) {
        (true, _) => "the main goroutine".to_owned(),
        (false, Some(id)) => format!("goroutine {id}"),
        (false, None) => "an unknown goroutine".to_owned(),
    };
    let address = access
        .address
        .map(|a| format!(" at {a:#x}"))
        .unwrap_or_default();
    format!("{}{address} by {by}", access.kind)
}

fn write_race(s: &mut String, group: &RaceGroup) {
    let lines: Vec<String> = group.lines.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        s,
        "\n{:>6} × DATA RACE  (line {})",
        group.count,
        lines.join(", ")
    );
    for access in &group.race.accesses {
        let _ = writeln!(s, "         {}:", access_text(access));
        let own = access
            .frames
            .iter()
            .position(|f| faultline_dump::is_own_code(Runtime::Go, &f.function, None));
        write_frames(s, &access.frames, own, None, "             ");
    }
    for goroutine in &group.race.goroutines {
        let _ = writeln!(
            s,
            "         goroutine {} ({}) created at:",
            goroutine.id, goroutine.state
        );
        write_frames(s, &goroutine.created_at, None, None, "             ");
    }
}

fn race_json(group: &RaceGroup) -> serde_json::Value {
    serde_json::json!({
        "count": group.count,
        "lines": group.lines,
        "accesses": group.race.accesses.iter().map(|a| serde_json::json!({
            "kind": a.kind,
            "write": a.write,
            "previous": a.previous,
            "address": a.address,
            "goroutine": a.goroutine,
            "main_goroutine": a.main,
            "frames": a.frames.iter().map(frame_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "goroutines": group.race.goroutines.iter().map(|g| serde_json::json!({
            "id": g.id,
            "state": g.state,
            "created_at": g.created_at.iter().map(frame_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn signal_json(info: &Signal) -> serde_json::Value {
    serde_json::json!({
        "name": info.name,
        "description": info.description,
        "code": info.code,
        "code_meaning": info.code_meaning,
        "address": info.address,
        "pc": info.pc,
        "m": info.m,
        "during_cgo": info.during_cgo,
    })
}

fn json(
    dump: &Dump,
    groups: &[Group],
    races: &[RaceGroup],
    modules: &[ModuleNote],
) -> serde_json::Value {
    serde_json::json!({
        "runtime": runtime_name(dump.runtime),
        "format": dump.format.name(),
        "version": dump.version,
        "captured_at": dump.captured_at,
        "alive_tasks": dump.alive_tasks,
        "task_count": dump.task_count(),
        "modules": modules.iter().map(|m| match &m.debug_file {
            Ok((file, source)) => serde_json::json!({
                "path": m.path, "build_id": m.build_id, "debug_file": file, "source": source,
            }),
            Err(reason) => serde_json::json!({
                "path": m.path, "build_id": m.build_id, "debug_file": null, "unknown": reason,
            }),
        }).collect::<Vec<_>>(),
        "crash": dump.crash.as_ref().map(|c| serde_json::json!({
            "kind": c.kind,
            "message": c.message,
            "signal": c.signal,
            "signal_info": c.signal_info.as_ref().map(signal_json),
        })),
        "system_stacks": dump.system_stacks.iter().map(|st| serde_json::json!({
            "label": st.label,
            "frames": st.frames.iter().map(frame_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "races": races.iter().map(race_json).collect::<Vec<_>>(),
        "quoted": dump.indent > 0,
        "stream": dump.stream,
        "groups": groups.iter().map(group_json).collect::<Vec<_>>(),
        "diagnostics": dump.diagnostics.iter().map(|d| serde_json::json!({
            "line": d.line,
            "message": d.message,
        })).collect::<Vec<_>>(),
    })
}
