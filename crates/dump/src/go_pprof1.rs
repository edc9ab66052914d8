//! `/debug/pprof/goroutine?debug=1`: goroutines aggregated by stack.
//!
//! ```text
//! goroutine profile: total 35
//! 7 @ 0x48c22a 0x419bae 0x683e29 0x493181
//! #    0x683e28    main.waitOnChannel+0x28    /src/main.go:44
//! #    0x6863f6    main.main.func2+0x16    /src/main.go:339
//!
//! 5 @ 0x48c22a 0x4655f7 0x683f38 0x493181
//! # labels: {"role":"selector"}
//! #    0x683f37    main.waitInSelect+0xd7    /src/main.go:53
//! ```
//!
//! (The columns are separated by tabs.) Each entry is one stack and how many goroutines have it; there are no ids, states or wait
//! times. Runtime frames have a PC after `@` but no `#` line.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{
    Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result, Runtime, Stacks, Task,
};

/// Whether `text` is a debug=1 goroutine profile, or a goroutine leak profile (Go 1.26 and
/// later, `/debug/pprof/goroutineleak?debug=1`: the same form, of leaked goroutines only).
pub fn detect(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("goroutine profile: total ") || text.starts_with(LEAK_HEADER)
}

/// The header of the goroutine leak profile: every goroutine in it was proven leaked.
const LEAK_HEADER: &str = "goroutineleak profile: total ";

pub fn parse(text: &str, limits: &Limits) -> Result<Dump> {
    let mut dump = Dump::empty(Runtime::Go, Format::GoPprofDebug1);
    let mut names: HashMap<&str, Arc<str>, FastHash> = HashMap::default();
    let mut stacks = Stacks::default();
    let mut frames: Vec<Frame> = Vec::new();
    let mut finish = |task: &mut Option<Task>, frames: &mut Vec<Frame>, out: &mut Vec<Task>| {
        if let Some(mut t) = task.take() {
            t.frames = stacks.intern(frames);
            out.push(t);
        }
        frames.clear();
    };
    let mut intern = |s| {
        names
            .entry(s)
            .or_insert_with(|| Arc::<str>::from(s))
            .clone()
    };
    let mut task: Option<Task> = None;
    let mut total: Option<u64> = None;
    let mut leak_profile = false;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        limits.check_line(line_no, raw)?;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            finish(&mut task, &mut frames, &mut dump.tasks);
            continue;
        }
        if let Some(rest) = line.strip_prefix("goroutine profile: total ") {
            total = rest.trim().parse().ok();
            continue;
        }
        if let Some(rest) = line.strip_prefix(LEAK_HEADER) {
            total = rest.trim().parse().ok();
            leak_profile = true;
            continue;
        }
        if let Some((count, _pcs)) = line.split_once(" @ ")
            && let Ok(count) = count.trim().parse::<u64>()
        {
            finish(&mut task, &mut frames, &mut dump.tasks);
            limits.check_tasks(line_no, dump.tasks.len())?;
            let mut t = Task::new(None);
            t.count = count;
            t.leaked = leak_profile;
            task = Some(t);
            continue;
        }
        if line.starts_with("# labels:") {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#')
            && task.is_some()
        {
            // `#\tPC\tFUNC+0xOFF\tFILE:LINE`; the columns are tab-separated, padded with tabs.
            let mut fields = rest.split('\t').filter(|f| !f.is_empty());
            let (_pc, function, location) = (fields.next(), fields.next(), fields.next());
            if let Some(function) = function {
                let (name, offset) = match function.rsplit_once("+0x") {
                    Some((name, hex)) => (name, u64::from_str_radix(hex, 16).ok()),
                    None => (function, None),
                };
                let (file, line) = match location.and_then(|l| l.rsplit_once(':')) {
                    Some((file, line)) => (Some(intern(file)), line.trim().parse().ok()),
                    None => (None, None),
                };
                limits.check_frames(line_no, frames.len())?;
                frames.push(Frame {
                    function: intern(name),
                    file,
                    line,
                    column: None,
                    offset,
                    address: None,
                    inlined: false,
                    provenance: Provenance::GoPprof,
                });
                continue;
            }
        }
        dump.diagnostics.push(Diagnostic {
            line: line_no,
            message: format!(
                "unexpected line in a debug=1 goroutine profile: {}",
                crate::shorten(line)
            ),
        });
    }
    finish(&mut task, &mut frames, &mut dump.tasks);
    if let Some(total) = total
        && total != dump.task_count()
    {
        dump.diagnostics.push(Diagnostic {
            line: 1,
            message: format!(
                "the profile says {total} goroutines, its entries add up to {}",
                dump.task_count()
            ),
        });
    }
    Ok(dump)
}
