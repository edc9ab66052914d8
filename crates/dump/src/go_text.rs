//! Go traceback text: panics and fatal errors, `SIGQUIT` dumps with any `GOTRACEBACK`, and
//! `/debug/pprof/goroutine?debug=2`, from Go 1.17 on.
//!
//! The text is a sequence of goroutine blocks, each a header line
//! (`goroutine 18 [chan receive, 5 minutes, locked to thread]:`, since Go 1.23 possibly with
//! `gp=… m=… mp=…` before the bracket), then frames as pairs of lines — the function with its
//! arguments, then `\tFILE:LINE +0xOFF` (with `fp= sp= pc=` under `GOTRACEBACK=crash`) — then
//! possibly `...N frames elided...` and `created by F in goroutine N` with its own file line.
//! Before the first block a crash says what happened (`panic: …`, `fatal error: …`,
//! `[signal SIGSEGV: …]`); `runtime stack:` starts the crashing thread's system stack.

use std::collections::HashMap;
use std::sync::Arc;

use crate::logs;
use crate::{
    Crash, Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result, Runtime, Stacks,
    Task,
};

struct Parser<'t> {
    limits: Limits,
    dump: Dump,
    task: Option<Task>,
    /// A function line waiting for its file line: (function, inlined, is the creator).
    pending: Option<(&'t str, bool, bool)>,
    /// The stack of the previous task: the next one is usually the same, and comparing text
    /// with it is cheaper than looking names up.
    previous: Arc<[Frame]>,
    /// The previous task's creator, for the same reason.
    previous_creator: Option<Frame>,
    names: HashMap<&'t str, Arc<str>, FastHash>,
    /// The frames of the task being read; interned into `stacks` when it ends.
    frames: Vec<Frame>,
    stacks: Stacks,
    /// Whether the crash message may still continue on the next line.
    crash_open: bool,
    /// `runtime: …` lines printed before the crash line they explain.
    preface: Vec<&'t str>,
    created_in_goroutine: bool,
}

/// Inputs smaller than this are parsed on one thread.
const PARALLEL_MIN: usize = 8 << 20;
/// The smallest piece a thread gets.
const CHUNK_MIN: usize = 4 << 20;

pub fn parse(text: &str, limits: &Limits) -> Result<Dump> {
    let chunks = split_at_goroutines(text);
    let parsed: Vec<Result<Chunk>> = if chunks.len() < 2 {
        vec![parse_chunk(text, limits)]
    } else {
        // Goroutine blocks are independent once a blank line has closed the one before: each
        // thread parses whole blocks, and the pieces are joined in order.
        std::thread::scope(|scope| {
            let others: Vec<_> = chunks[1..]
                .iter()
                .map(|chunk| scope.spawn(|| parse_chunk(chunk, limits)))
                .collect();
            let mut parsed = vec![parse_chunk(chunks[0], limits)];
            for handle in others {
                parsed.push(
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            parsed
        })
    };
    let mut lines = 0;
    let mut dump = Dump::empty(Runtime::Go, Format::GoTraceback);
    let mut created_in_goroutine = false;
    for chunk in parsed {
        let chunk = chunk.map_err(|e| match e {
            crate::Error::Limit { line, what, limit } => crate::Error::Limit {
                line: line + lines,
                what,
                limit,
            },
        })?;
        if dump.tasks.is_empty() {
            dump.tasks = chunk.dump.tasks;
        } else {
            dump.tasks.extend(chunk.dump.tasks);
        }
        dump.diagnostics
            .extend(chunk.dump.diagnostics.into_iter().map(|mut d| {
                d.line += lines;
                d
            }));
        if dump.crash.is_none() {
            dump.crash = chunk.dump.crash;
        }
        created_in_goroutine |= chunk.created_in_goroutine;
        lines += chunk.lines;
    }
    if chunks.len() > 1 && dump.tasks.len() > limits.max_tasks {
        // Each piece kept to the limit alone; together they went past it. Parse on one thread
        // for the exact line where that happens.
        return parse_chunk(text, limits).map(|c| c.dump);
    }
    if created_in_goroutine {
        dump.version = Some("go1.21 or later".into());
    }
    if dump.tasks.is_empty() && dump.crash.is_none() {
        dump.diagnostics.push(Diagnostic {
            line: 1,
            message: "no goroutine found: not a Go traceback or goroutine dump".into(),
        });
    }
    Ok(dump)
}

/// A piece of the input, parsed.
struct Chunk {
    dump: Dump,
    /// Lines in the piece, to number the next piece's lines.
    lines: usize,
    created_in_goroutine: bool,
}

/// The input cut into one piece per available thread, each cut just before a goroutine
/// header that follows a blank line. Small inputs, and inputs with no such place (a dump in
/// a log with prefixes), stay whole.
fn split_at_goroutines(text: &str) -> Vec<&str> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || text.len() < PARALLEL_MIN {
        return vec![text];
    }
    let pieces = threads.min(text.len() / CHUNK_MIN).max(1);
    let mut chunks = Vec::with_capacity(pieces);
    let mut start = 0;
    for k in 1..pieces {
        let target = (text.len() / pieces * k).max(start);
        let Some(found) = text
            .get(target..)
            .and_then(|rest| rest.find("\n\ngoroutine "))
        else {
            break;
        };
        let cut = target + found + 2;
        chunks.push(&text[start..cut]);
        start = cut;
    }
    chunks.push(&text[start..]);
    chunks
}

fn parse_chunk(text: &str, limits: &Limits) -> Result<Chunk> {
    let mut parser = Parser {
        limits: *limits,
        dump: Dump::empty(Runtime::Go, Format::GoTraceback),
        task: None,
        pending: None,
        previous: Arc::from(Vec::new()),
        previous_creator: None,
        names: HashMap::default(),
        frames: Vec::new(),
        stacks: Stacks::default(),
        crash_open: false,
        preface: Vec::new(),
        created_in_goroutine: false,
    };
    // A goroutine block of a pprof dump takes about a kilobyte: room for most without regrowing
    // (and copying) a vector of a hundred thousand tasks.
    parser.dump.tasks.reserve(text.len() / 1024);
    let mut lines = 0;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        lines = n;
        limits.check_line(line_no, raw)?;
        parser.line(line_no, logs::strip_prefix(raw))?;
    }
    parser.finish_task();
    Ok(Chunk {
        dump: parser.dump,
        lines,
        created_in_goroutine: parser.created_in_goroutine,
    })
}

impl<'t> Parser<'t> {
    fn line(&mut self, line_no: usize, line: &'t str) -> Result<()> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            // A blank line ends a goroutine block, and the crash message.
            self.finish_task();
            self.crash_open = false;
            return Ok(());
        }
        if let Some(task) = parse_header(trimmed) {
            self.finish_task();
            self.limits.check_tasks(line_no, self.dump.tasks.len())?;
            self.task = Some(task);
            self.crash_open = false;
            return Ok(());
        }
        if trimmed == "runtime stack:" {
            self.finish_task();
            let mut task = Task::new(None);
            task.state = Some("runtime stack".into());
            self.task = Some(task);
            return Ok(());
        }
        if let Some(task) = self.task.as_mut() {
            let indented = line.starts_with(['\t', ' ']);
            if indented && let Some(frame_location) = parse_location(trimmed) {
                return self.location(line_no, frame_location);
            }
            if trimmed == "...additional frames elided..." {
                task.elided = Some(None);
                return Ok(());
            }
            if let Some(n) = trimmed
                .strip_prefix("...")
                .and_then(|r| r.strip_suffix(" frames elided..."))
                .and_then(|n| n.parse().ok())
            {
                task.elided = Some(Some(n));
                return Ok(());
            }
            if trimmed == "goroutine running on other thread; stack unavailable" {
                if task.state.is_none() {
                    task.state = Some("running".into());
                }
                return Ok(());
            }
            if trimmed.starts_with("[originating from goroutine ") {
                return Ok(());
            }
            if let Some(rest) = trimmed.strip_prefix("created by ") {
                self.flush_pending();
                let (function, creator_id) = split_creator(rest);
                if creator_id.is_some() {
                    self.created_in_goroutine = true;
                }
                let name = match &self.previous_creator {
                    Some(c) if &*c.function == function => c.function.clone(),
                    _ => self.intern(function),
                };
                if let Some(task) = self.task.as_mut() {
                    task.creator_id = creator_id;
                    task.creator = Some(frame(name, false));
                }
                self.pending = Some((function, false, true));
                return Ok(());
            }
            if !indented && let Some((function, inlined)) = parse_call(trimmed) {
                self.flush_pending();
                self.pending = Some((function, inlined, false));
                return Ok(());
            }
        } else if self.crash_line(trimmed) {
            return Ok(());
        }
        if is_noise(trimmed) {
            return Ok(());
        }
        self.dump.diagnostics.push(Diagnostic {
            line: line_no,
            message: format!("unexpected line: {}", crate::shorten(trimmed)),
        });
        Ok(())
    }

    /// Lines before the first goroutine: what happened.
    fn crash_line(&mut self, line: &'t str) -> bool {
        if let Some(signal) = line.strip_prefix('[').filter(|l| l.starts_with("signal ")) {
            let crash = self.dump.crash.get_or_insert_with(|| Crash {
                kind: "signal".into(),
                message: String::new(),
                signal: None,
            });
            crash.signal = Some(signal.trim_end_matches(']').to_owned());
            self.crash_open = false;
            return true;
        }
        for kind in [
            "panic",
            "fatal error",
            "SIGQUIT",
            "SIGABRT",
            "SIGSEGV",
            "SIGBUS",
            "SIGTRAP",
        ] {
            if let Some(message) = line
                .strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix(": ").or_else(|| rest.strip_prefix(":")))
            {
                match self.dump.crash.as_mut() {
                    // The same first line again (`GOTRACEBACK=crash` repeats `SIGQUIT: quit`
                    // for every thread): nothing new.
                    Some(crash)
                        if crash.kind == kind && crash.message.lines().next() == Some(message) => {}
                    // `panic: A [recovered]` then `\tpanic: B`: one crash, both messages.
                    Some(crash) => {
                        crash.message.push('\n');
                        crash.message.push_str(line);
                    }
                    None => {
                        let mut message = message.to_owned();
                        for line in self.preface.drain(..) {
                            message.push('\n');
                            message.push_str(line);
                        }
                        self.dump.crash = Some(Crash {
                            kind: kind.to_owned(),
                            message,
                            signal: None,
                        });
                    }
                }
                self.crash_open = true;
                return true;
            }
        }
        if line.starts_with("runtime: ") || line.starts_with("goroutine ") {
            // `runtime: out of memory …`, `goroutine 5 gp=… stack=[…]` explanations: part of
            // the crash, before or after its first line.
            match self.dump.crash.as_mut() {
                Some(crash) => {
                    crash.message.push('\n');
                    crash.message.push_str(line);
                }
                None => self.preface.push(line),
            }
            return true;
        }
        if self.crash_open
            && !is_noise(line)
            && let Some(crash) = self.dump.crash.as_mut()
        {
            // A panic value printed over several lines.
            crash.message.push('\n');
            crash.message.push_str(line);
            return true;
        }
        false
    }

    fn location(
        &mut self,
        line_no: usize,
        (file, line, offset): (&'t str, u32, Option<u64>),
    ) -> Result<()> {
        let Some((function, inlined, is_creator)) = self.pending.take() else {
            self.dump.diagnostics.push(Diagnostic {
                line: line_no,
                message: "a file:line with no function line before it".into(),
            });
            return Ok(());
        };
        let (function, file) = if is_creator {
            let previous = self.previous_creator.as_ref();
            let same_function = previous
                .filter(|c| &*c.function == function)
                .map(|c| c.function.clone());
            let same_file = previous
                .and_then(|c| c.file.clone())
                .filter(|f| &**f == file);
            (
                same_function.unwrap_or_else(|| self.intern(function)),
                same_file.unwrap_or_else(|| self.intern(file)),
            )
        } else {
            let at = self.frames.len();
            (self.function_at(at, function), self.file_at(at, file))
        };
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let mut f = frame(function, inlined);
        f.file = Some(file);
        f.line = Some(line);
        f.offset = offset;
        if is_creator {
            task.creator = Some(f);
        } else {
            self.limits.check_frames(line_no, self.frames.len())?;
            self.frames.push(f);
        }
        Ok(())
    }

    /// A function line with no file line after it (the dump was cut): keep the function.
    fn flush_pending(&mut self) {
        if let Some((function, inlined, is_creator)) = self.pending.take()
            && !is_creator
            && self.task.is_some()
            && self.frames.len() < self.limits.max_frames
        {
            let function = self.function_at(self.frames.len(), function);
            self.frames.push(frame(function, inlined));
        }
    }

    fn finish_task(&mut self) {
        self.flush_pending();
        if let Some(mut task) = self.task.take() {
            // Most goroutines have the stack of the one before: then the names are the very
            // same shared strings, and comparing them is cheaper than hashing the stack.
            task.frames = if same_stack(&self.frames, &self.previous) {
                self.previous.clone()
            } else {
                self.stacks.intern(&self.frames)
            };
            self.previous = task.frames.clone();
            if task.creator.is_some() {
                self.previous_creator.clone_from(&task.creator);
            }
            self.dump.tasks.push(task);
        }
        self.frames.clear();
    }

    /// The function of frame `at`, shared with the previous task's when they are the same.
    fn function_at(&mut self, at: usize, text: &'t str) -> Arc<str> {
        match self.previous.get(at) {
            Some(f) if &*f.function == text => f.function.clone(),
            _ => self.intern(text),
        }
    }

    /// The file of frame `at`, shared with the previous task's when they are the same.
    fn file_at(&mut self, at: usize, text: &'t str) -> Arc<str> {
        match self.previous.get(at).and_then(|f| f.file.as_ref()) {
            Some(file) if &**file == text => file.clone(),
            _ => self.intern(text),
        }
    }

    fn intern(&mut self, text: &'t str) -> Arc<str> {
        self.names
            .entry(text)
            .or_insert_with(|| text.into())
            .clone()
    }
}

/// Whether `frames` is `previous` frame for frame, names compared by identity.
fn same_stack(frames: &[Frame], previous: &[Frame]) -> bool {
    frames.len() == previous.len()
        && frames.iter().zip(previous).all(|(a, b)| {
            Arc::ptr_eq(&a.function, &b.function)
                && match (&a.file, &b.file) {
                    (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                    (None, None) => true,
                    _ => false,
                }
                && a.line == b.line
                && a.offset == b.offset
                && a.inlined == b.inlined
        })
}

/// `F in goroutine 7` → (`F`, Some(7)); `F` (before Go 1.21) → (`F`, None).
fn split_creator(rest: &str) -> (&str, Option<u64>) {
    if let Some((head, id)) = rest.rsplit_once(' ')
        && let Some(function) = head.strip_suffix(" in goroutine")
        && let Ok(id) = id.parse()
    {
        return (function, Some(id));
    }
    (rest, None)
}

fn frame(function: Arc<str>, inlined: bool) -> Frame {
    Frame {
        function,
        file: None,
        line: None,
        column: None,
        offset: None,
        address: None,
        inlined,
        provenance: Provenance::GoTraceback,
    }
}

/// `goroutine 18 [chan receive, 5 minutes, locked to thread]:`, with optional
/// `gp=… m=… mp=…` fields before the bracket and, with `GODEBUG=tracebacklabels=1` (Go 1.26
/// and later), the goroutine's pprof labels after it (`] {"k":"v"}:`).
///
/// The runtime's marks on the status are parsed off it: `(leaked)` (Go 1.26 and later, proven
/// by a leak-detecting collection) and `(durable)` (a synctest bubble) become flags, `(scan)`
/// (the collector was scanning the stack at that moment) and `synctest bubble N` are dropped,
/// so that grouping sees the same state before and after.
fn parse_header(line: &str) -> Option<Task> {
    let rest = line.strip_prefix("goroutine ")?;
    let open = rest.bytes().position(|b| b == b'[')?;
    let close = open + rest[open..].bytes().position(|b| b == b']')?;
    let after = &rest[close + 1..];
    if after != ":" && !(after.starts_with(" {") && after.ends_with("}:")) {
        return None;
    }
    let head = rest[..open].strip_suffix(' ')?;
    let status = &rest[open + 1..close];
    let mut words = head.split_ascii_whitespace();
    let id: u64 = words.next()?.parse().ok()?;
    // Anything else before the bracket must be `key=value` fields (gp=, m=, mp=).
    if !words.all(|w| w.contains('=')) {
        return None;
    }
    let mut task = Task::new(Some(id));
    let mut state: Vec<&str> = Vec::new();
    for part in status.split(',').map(|p| p.strip_prefix(' ').unwrap_or(p)) {
        if part == "locked to thread" {
            task.locked_to_thread = true;
        } else if let Some(minutes) = part
            .strip_suffix(" minutes")
            .or_else(|| part.strip_suffix(" minute"))
            .and_then(|m| m.parse::<u64>().ok())
        {
            task.wait_seconds = Some(minutes.saturating_mul(60));
        } else if part
            .strip_prefix("synctest bubble ")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
        } else {
            let mut part = part;
            loop {
                if let Some(p) = part.strip_suffix(" (leaked)") {
                    task.leaked = true;
                    part = p;
                } else if let Some(p) = part.strip_suffix(" (durable)") {
                    task.durable = true;
                    part = p;
                } else if let Some(p) = part.strip_suffix(" (scan)") {
                    part = p;
                } else {
                    break;
                }
            }
            // A goroutine the runtime proved leaked with no wait reason is in status `leaked`.
            if part == "leaked" {
                task.leaked = true;
            }
            state.push(part);
        }
    }
    if !state.is_empty() {
        task.state = Some(state.join(", "));
    }
    Some(task)
}

/// `main.(*T).Method(0xc000010000, {0x1, 0x2})` → (`main.(*T).Method`, inlined). Go prints
/// `(...)` for the arguments of an inlined frame.
fn parse_call(line: &str) -> Option<(&str, bool)> {
    let body = line.strip_suffix(')')?;
    // Walk back to the parenthesis that opens the argument list. Byte by byte: parentheses are
    // ASCII, and a UTF-8 continuation byte is never mistaken for one.
    let mut depth = 1usize;
    let mut open = None;
    for (i, &b) in body.as_bytes().iter().enumerate().rev() {
        match b {
            b')' => depth += 1,
            b'(' => {
                depth -= 1;
                if depth == 0 {
                    open = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let open = open?;
    let function = &line[..open];
    let args = &body[open + 1..];
    if function.is_empty() || function.contains(' ') && !function.contains('[') {
        return None;
    }
    Some((function, args == "..."))
}

/// `/src/main.go:42 +0x1d fp=0x… sp=0x… pc=0x…` → (file, line, offset).
///
/// Byte by byte rather than with substring searches: this runs once per frame, and a dump of
/// 100,000 goroutines has a million frames.
fn parse_location(line: &str) -> Option<(&str, u32, Option<u64>)> {
    // The offset and the fp/sp/pc fields have no colon, so the last colon ends the file.
    let colon = line.as_bytes().iter().rposition(|&b| b == b':')?;
    let file = &line[..colon];
    if file.is_empty() {
        return None;
    }
    let rest = &line.as_bytes()[colon + 1..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return None;
    }
    let number = rest[..digits]
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    let after = &rest[digits..];
    if !after.is_empty() && after[0] != b' ' {
        return None;
    }
    let offset = after.strip_prefix(b" +0x").and_then(|hex| {
        let len = hex.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        std::str::from_utf8(&hex[..len])
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
    });
    Some((file, number, offset))
}

/// Lines dumps carry that say nothing about goroutines: register dumps under
/// `GOTRACEBACK=crash`, `PC=… m=… sigcode=…`, `exit status 2`.
fn is_noise(line: &str) -> bool {
    if line.starts_with("PC=") || line.starts_with("exit status ") || line.starts_with("-----") {
        return true;
    }
    let mut words = line.split_ascii_whitespace();
    matches!(
        (words.next(), words.next(), words.next()),
        (Some(reg), Some(value), None)
            if reg.len() <= 6
                && reg.bytes().all(|b| b.is_ascii_alphanumeric())
                && value.starts_with("0x")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let t = parse_header("goroutine 18 [chan receive, 5 minutes, locked to thread]:").unwrap();
        assert_eq!(t.id, Some(18));
        assert_eq!(t.state.as_deref(), Some("chan receive"));
        assert_eq!(t.wait_seconds, Some(300));
        assert!(t.locked_to_thread);
        let t = parse_header("goroutine 1 gp=0xc000002380 m=0 mp=0x55ab60 [running]:").unwrap();
        assert_eq!((t.id, t.state.as_deref()), (Some(1), Some("running")));
        let t = parse_header("goroutine 5 [chan receive (nil chan), 1 minute]:").unwrap();
        assert_eq!(t.state.as_deref(), Some("chan receive (nil chan)"));
        assert_eq!(t.wait_seconds, Some(60));
        assert!(parse_header("goroutine x [running]:").is_none());
        assert!(parse_header("goroutine 1 [running]").is_none());
    }

    #[test]
    fn the_runtimes_marks_are_flags_not_states() {
        // Go 1.26+: proven leaked by a leak-detecting collection (no wait time is printed for
        // a leaked goroutine).
        let t = parse_header("goroutine 123 [chan receive (leaked)]:").unwrap();
        assert_eq!(t.state.as_deref(), Some("chan receive"));
        assert!(t.leaked && !t.durable);
        let t = parse_header("goroutine 9 [sync.Mutex.Lock (leaked) (scan), locked to thread]:")
            .unwrap();
        assert_eq!(t.state.as_deref(), Some("sync.Mutex.Lock"));
        assert!(t.leaked && t.locked_to_thread);
        let t = parse_header("goroutine 4 [leaked]:").unwrap();
        assert!(t.leaked);
        // The same goroutine before the collection: the same state.
        let t = parse_header("goroutine 123 [chan receive, 2 minutes]:").unwrap();
        assert_eq!(t.state.as_deref(), Some("chan receive"));
        assert!(!t.leaked);
        // synctest: `(durable)` in the wait reason or after it, and the bubble's id.
        let t = parse_header("goroutine 7 [chan receive (durable), synctest bubble 1]:").unwrap();
        assert_eq!(t.state.as_deref(), Some("chan receive"));
        assert!(t.durable && !t.leaked);
        let t =
            parse_header("goroutine 8 [sleep (durable), 3 minutes, synctest bubble 12]:").unwrap();
        assert_eq!(
            (t.state.as_deref(), t.wait_seconds),
            (Some("sleep"), Some(180))
        );
        // Reasons that carry a parenthesis of their own keep it.
        let t = parse_header("goroutine 5 [select (no cases)]:").unwrap();
        assert_eq!(t.state.as_deref(), Some("select (no cases)"));
        // `GODEBUG=tracebacklabels=1`: labels after the bracket.
        let t =
            parse_header(r#"goroutine 21 [IO wait] {"handler":"/api", "user":"x y"}:"#).unwrap();
        assert_eq!((t.id, t.state.as_deref()), (Some(21), Some("IO wait")));
        assert!(parse_header("goroutine 21 [IO wait] junk:").is_none());
    }

    #[test]
    fn calls() {
        assert_eq!(parse_call("main.main()"), Some(("main.main", false)));
        assert_eq!(
            parse_call("main.(*Server).serve(0xc000010000, {0x1, 0x2})"),
            Some(("main.(*Server).serve", false))
        );
        assert_eq!(
            parse_call("main.inlined(...)"),
            Some(("main.inlined", true))
        );
        assert_eq!(
            parse_call("panic({0x4a1b20?, 0x5c3e50?})"),
            Some(("panic", false))
        );
        assert_eq!(
            parse_call("example.com/x.Map[...].Get(0x1)"),
            Some(("example.com/x.Map[...].Get", false))
        );
        assert_eq!(parse_call("not a call"), None);
    }

    /// A dump large enough to be parsed by several threads: a real go1.27 debug=2 dump
    /// repeated, with a crash before it and unknown lines scattered through it.
    fn big_dump() -> String {
        let block = include_str!("../tests/fixtures/go/go1.27/default/goroutine-debug2.txt");
        let mut text = String::from("panic: boom\n\n");
        let mut copy = 0;
        while text.len() < PARALLEL_MIN + 3 * CHUNK_MIN {
            text.push_str(block.trim_end());
            text.push_str(&format!("\n\nnot a goroutine line {copy}\n\n"));
            copy += 1;
        }
        text
    }

    #[test]
    fn threads_parse_what_one_thread_parses() {
        let text = big_dump();
        assert!(split_at_goroutines(&text).len() >= 2 || num_threads() < 2);
        let limits = Limits::default();
        let threaded = parse(&text, &limits).unwrap();
        let single = parse_chunk(&text, &limits).unwrap().dump;
        assert_eq!(threaded.tasks, single.tasks);
        assert_eq!(threaded.diagnostics, single.diagnostics);
        assert_eq!(threaded.crash, single.crash);
        assert!(threaded.diagnostics.len() > 100);
        // Every diagnostic points at the line it quotes.
        let lines: Vec<&str> = text.split('\n').collect();
        for d in &threaded.diagnostics {
            assert!(d.message.ends_with(lines[d.line - 1]), "{d}");
        }

        // A limit crossed in a later piece names the same line as on one thread.
        let tasks = single.tasks.len();
        for max_tasks in [tasks - 1, tasks / 2 + 7] {
            let limits = Limits {
                max_tasks,
                ..Limits::default()
            };
            assert_eq!(
                parse(&text, &limits).unwrap_err(),
                parse_chunk(&text, &limits).map(|_| ()).unwrap_err()
            );
        }
        let limits = Limits {
            max_line: 60,
            ..Limits::default()
        };
        assert_eq!(
            parse(&text, &limits).unwrap_err(),
            parse_chunk(&text, &limits).map(|_| ()).unwrap_err()
        );
    }

    fn num_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("/usr/lib/go/src/runtime/proc.go:398 +0x1d"),
            Some(("/usr/lib/go/src/runtime/proc.go", 398, Some(0x1d)))
        );
        assert_eq!(
            parse_location("/src/main.go:12 +0x25 fp=0xc000 sp=0xc000 pc=0x4a"),
            Some(("/src/main.go", 12, Some(0x25)))
        );
        assert_eq!(
            parse_location("/src/main.go:7"),
            Some(("/src/main.go", 7, None))
        );
        assert_eq!(parse_location("main.go"), None);
    }
}
