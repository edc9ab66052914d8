//! Rust panic output, as std's default hook prints it, from Rust 1.70 on:
//!
//! ```text
//! thread 'worker-1' (14391) panicked at src/main.rs:2:30:      (1.91+: thread id)
//! index out of bounds: the len is 3 but the index is 7        (1.73+: message below)
//! stack backtrace:
//!    0: core::panicking::panic_fmt                             (RUST_BACKTRACE=1)
//!              at /rustc/…/library/core/src/panicking.rs:80:14
//!    3:     0x564d1fa8847a - main::inner                       (RUST_BACKTRACE=full)
//!                                at ./main.rs:2:30
//! note: Some details are omitted, …
//! ```
//!
//! Before 1.73 the message sat on the header line: `thread 'main' panicked at 'MSG', FILE:L:C`.
//! Each panicking thread becomes a task named after the thread, in state `panicked`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::logs;
use crate::{
    Crash, Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result, Runtime, Task,
};

/// Whether `text` holds a Rust panic (a header line, possibly behind log prefixes).
pub fn detect(text: &str) -> bool {
    text.lines()
        .take(10_000)
        .any(|line| parse_header(logs::strip_prefix(line)).is_some())
}

struct Header<'t> {
    thread: &'t str,
    tid: Option<u64>,
    /// The message, when it is on the header line (before 1.73).
    message: Option<&'t str>,
}

fn parse_header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix("thread '")?;
    let (thread, rest) = rest.split_once('\'')?;
    let rest = rest.strip_prefix(' ')?;
    let (tid, rest) = match rest.strip_prefix('(') {
        Some(r) => {
            let (id, after) = r.split_once(") ")?;
            (Some(id.parse().ok()?), after)
        }
        None => (None, rest),
    };
    let at = rest.strip_prefix("panicked at ")?;
    if let Some(quoted) = at.strip_prefix('\'') {
        // 1.70–1.72: `'MSG', FILE:LINE:COL`.
        let (message, _location) = quoted.rsplit_once("', ")?;
        return Some(Header {
            thread,
            tid,
            message: Some(message),
        });
    }
    at.strip_suffix(':')?;
    Some(Header {
        thread,
        tid,
        message: None,
    })
}

/// `   3: main::inner` or `   3:     0x564d1fa8847a - main::inner`.
fn parse_frame(line: &str) -> Option<(Option<u64>, &str)> {
    let rest = line.trim_start();
    let (index, rest) = rest.split_once(':')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(hex) = rest.strip_prefix("0x")
        && let Some((address, function)) = hex.split_once(" - ")
    {
        return Some((u64::from_str_radix(address, 16).ok(), function));
    }
    (!rest.is_empty()).then_some((None, rest))
}

/// `             at ./main.rs:2:30`.
fn parse_at(line: &str) -> Option<(&str, u32, Option<u32>)> {
    let rest = line.trim_start().strip_prefix("at ")?;
    let (before, last) = rest.rsplit_once(':')?;
    let last: u32 = last.parse().ok()?;
    match before.rsplit_once(':') {
        Some((file, line)) if line.parse::<u32>().is_ok() => {
            Some((file, line.parse().ok()?, Some(last)))
        }
        _ => Some((before, last, None)),
    }
}

pub fn parse(text: &str, limits: &Limits) -> Result<Dump> {
    let mut dump = Dump::empty(Runtime::Rust, Format::RustPanic);
    let mut names: HashMap<String, Arc<str>, FastHash> = HashMap::default();
    let mut name = |s: &str| -> Arc<str> {
        if let Some(a) = names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        names.insert(s.to_owned(), a.clone());
        a
    };

    #[derive(PartialEq)]
    enum In {
        Nothing,
        Message,
        Backtrace,
    }
    let mut state = In::Nothing;
    let mut task: Option<Task> = None;
    let mut frames: Vec<Frame> = Vec::new();
    let mut message = String::new();
    let finish = |task: &mut Option<Task>,
                  frames: &mut Vec<Frame>,
                  message: &mut String,
                  dump: &mut Dump| {
        if let Some(mut t) = task.take() {
            t.frames = Arc::from(frames.as_slice());
            t.message = Some(message.clone());
            dump.tasks.push(t);
            if dump.crash.is_none() {
                dump.crash = Some(Crash {
                    kind: "panic".into(),
                    message: std::mem::take(message),
                    signal: None,
                    signal_info: None,
                });
            }
        }
        frames.clear();
        message.clear();
    };

    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        limits.check_line(line_no, raw)?;
        let line = logs::strip_prefix(raw);
        if let Some(header) = parse_header(line) {
            finish(&mut task, &mut frames, &mut message, &mut dump);
            limits.check_tasks(line_no, dump.tasks.len())?;
            let mut t = Task::new(header.tid);
            t.name = Some(header.thread.to_owned());
            t.state = Some("panicked".into());
            task = Some(t);
            match header.message {
                Some(m) => {
                    message = m.to_owned();
                    state = In::Nothing;
                }
                None => state = In::Message,
            }
            if header.tid.is_some() {
                dump.version = Some("rust1.91 or later".into());
            } else if header.message.is_none() && dump.version.is_none() {
                dump.version = Some("rust1.73 to 1.90".into());
            } else if dump.version.is_none() {
                dump.version = Some("rust1.72 or earlier".into());
            }
            continue;
        }
        if task.is_none() {
            if !line.trim().is_empty() {
                dump.diagnostics.push(Diagnostic {
                    line: line_no,
                    message: format!("unexpected line: {}", crate::shorten(line.trim())),
                });
            }
            continue;
        }
        if line.trim() == "stack backtrace:" {
            state = In::Backtrace;
            continue;
        }
        if line.starts_with("note: ") {
            state = In::Nothing;
            continue;
        }
        match state {
            In::Message if line.trim().is_empty() => state = In::Nothing,
            In::Message => {
                if !message.is_empty() {
                    message.push('\n');
                }
                message.push_str(line);
            }
            In::Backtrace => {
                if let Some((file, number, column)) = parse_at(line) {
                    match frames.last_mut() {
                        Some(f) if f.file.is_none() => {
                            f.file = Some(name(file));
                            f.line = Some(number);
                            f.column = column;
                        }
                        _ => dump.diagnostics.push(Diagnostic {
                            line: line_no,
                            message: "a source location with no frame before it".into(),
                        }),
                    }
                } else if let Some((address, function)) = parse_frame(line) {
                    limits.check_frames(line_no, frames.len())?;
                    frames.push(Frame {
                        function: name(function),
                        file: None,
                        line: None,
                        column: None,
                        offset: None,
                        address,
                        inlined: false,
                        provenance: Provenance::RustPanic,
                    });
                } else if !line.trim().is_empty() {
                    dump.diagnostics.push(Diagnostic {
                        line: line_no,
                        message: format!(
                            "unexpected line in a backtrace: {}",
                            crate::shorten(line.trim())
                        ),
                    });
                }
            }
            In::Nothing => {
                if !line.trim().is_empty() {
                    dump.diagnostics.push(Diagnostic {
                        line: line_no,
                        message: format!("unexpected line: {}", crate::shorten(line.trim())),
                    });
                }
            }
        }
    }
    finish(&mut task, &mut frames, &mut message, &mut dump);
    Ok(dump)
}
