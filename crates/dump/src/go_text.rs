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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::{
    Ancestor, Crash, Diagnostic, Dump, FastHash, Format, Frame, Limits, Provenance, Result,
    Runtime, Signal, Stacks, SystemStack, Task,
};
use crate::{go_race, logs};

struct Parser<'t> {
    limits: Limits,
    /// The dump being read.
    dump: Dump,
    /// The dumps before it in the same text (a child's traceback quoted in `go test` output,
    /// crashes appended to one log).
    done: Vec<(Dump, usize, HashSet<u64, FastHash>, bool)>,
    task: Option<Task>,
    /// The block being read is not a goroutine but a system stack, so labelled.
    system: Option<String>,
    /// An ancestor section being read (`[originating from goroutine M]:`): frames go to it.
    ancestor: Option<Ancestor>,
    /// The task's finished ancestor sections.
    ancestors: Vec<Ancestor>,
    /// A function line waiting for its file line.
    pending: Option<Pending<'t>>,
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
    /// Leading spaces of the dump's own lines: a traceback quoted in a test's log is indented.
    indent: Option<usize>,
    /// Goroutine ids of the dump: one seen again is another dump's.
    ids: HashSet<u64, FastHash>,
    /// The last line that was not blank was `-----`: another thread's part of the same crash
    /// follows (`GOTRACEBACK=crash`), not another crash.
    after_separator: bool,
    /// Lines read since the block's header, and the header's line.
    block_lines: usize,
    header_line: usize,
    /// A race report being read.
    race: Option<go_race::Builder>,
    /// The line being read.
    line_no: usize,
}

/// A function line waiting for its file line.
#[derive(Clone, Copy)]
struct Pending<'t> {
    function: &'t str,
    inlined: bool,
    creator: bool,
    line: usize,
}

/// Inputs smaller than this are parsed on one thread.
const PARALLEL_MIN: usize = 8 << 20;
/// The smallest piece a thread gets.
const CHUNK_MIN: usize = 4 << 20;

/// The dump the text is about ([`crate::principal`]).
pub fn parse(text: &str, limits: &Limits) -> Result<Dump> {
    let mut dumps = parse_all(text, limits)?;
    Ok(match crate::principal(&dumps) {
        Some(at) => dumps.swap_remove(at),
        None => Dump::empty(Runtime::Go, Format::GoTraceback),
    })
}

/// Every dump of the text, in order.
pub fn parse_all(text: &str, limits: &Limits) -> Result<Vec<Dump>> {
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
    let mut out: Vec<Segment> = Vec::new();
    for chunk in parsed {
        let chunk = chunk.map_err(|e| match e {
            crate::Error::Limit { line, what, limit } => crate::Error::Limit {
                line: line + lines,
                what,
                limit,
            },
            other => other,
        })?;
        for (i, mut segment) in chunk.segments.into_iter().enumerate() {
            for d in &mut segment.dump.diagnostics {
                d.line += lines;
            }
            for r in &mut segment.dump.races {
                r.line += lines;
            }
            if segment.dump.start_line > 0 {
                segment.dump.start_line += lines;
            }
            // A piece begins at a goroutine header of the dump the piece before it ended in,
            // unless that header starts another dump (it repeats an id of that one).
            match out.last_mut() {
                Some(last) if i == 0 && !last.ids.iter().any(|id| segment.ids.contains(id)) => {
                    last.join(segment)
                }
                _ => out.push(segment),
            }
        }
        lines += chunk.lines;
    }
    let total: usize = out.iter().map(|s| s.dump.tasks.len()).sum();
    if chunks.len() > 1 && total > limits.max_tasks {
        // Each piece kept to the limit alone; together they went past it. Parse on one thread
        // for the exact line where that happens.
        return parse_chunk(text, limits)
            .map(|c| c.segments.into_iter().map(Segment::finish).collect());
    }
    Ok(out.into_iter().map(Segment::finish).collect())
}

/// One dump of a piece of the input, with what joining it to its neighbour needs.
struct Segment {
    dump: Dump,
    indent: usize,
    ids: HashSet<u64, FastHash>,
    created_in_goroutine: bool,
}

impl Segment {
    fn join(&mut self, other: Segment) {
        if self.dump.tasks.is_empty() {
            self.dump.tasks = other.dump.tasks;
        } else {
            self.dump.tasks.extend(other.dump.tasks);
        }
        self.dump.diagnostics.extend(other.dump.diagnostics);
        self.dump.system_stacks.extend(other.dump.system_stacks);
        self.dump.races.extend(other.dump.races);
        if self.dump.crash.is_none() {
            self.dump.crash = other.dump.crash;
        }
        self.ids.extend(other.ids);
        self.created_in_goroutine |= other.created_in_goroutine;
    }

    fn finish(self) -> Dump {
        let mut dump = self.dump;
        dump.indent = self.indent;
        if self.created_in_goroutine {
            dump.version = Some("go1.21 or later".into());
        }
        if dump.tasks.is_empty() && dump.crash.is_none() && dump.races.is_empty() {
            dump.diagnostics.push(Diagnostic {
                line: 1,
                message: "no goroutine found: not a Go traceback or goroutine dump".into(),
            });
        }
        dump
    }
}

/// A piece of the input, parsed.
struct Chunk {
    segments: Vec<Segment>,
    /// Lines in the piece, to number the next piece's lines.
    lines: usize,
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
        done: Vec::new(),
        task: None,
        system: None,
        ancestor: None,
        ancestors: Vec::new(),
        pending: None,
        previous: Arc::from(Vec::new()),
        previous_creator: None,
        names: HashMap::default(),
        frames: Vec::new(),
        stacks: Stacks::default(),
        crash_open: false,
        preface: Vec::new(),
        created_in_goroutine: false,
        indent: None,
        ids: HashSet::default(),
        after_separator: false,
        block_lines: 0,
        header_line: 0,
        race: None,
        line_no: 0,
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
    parser.finish_race();
    // A text cut off mid-line (a size limit, a log pipeline): its last line says so.
    let last = lines + 1;
    if !text.ends_with('\n') && !text.rsplit('\n').next().unwrap_or("").trim().is_empty() {
        match parser.dump.diagnostics.last_mut() {
            Some(d) if d.line == last => {
                d.message = format!("the dump ends mid-line: {}", d.message);
            }
            _ => parser.dump.diagnostics.push(Diagnostic {
                line: last,
                message: "the dump ends mid-line: this line may be incomplete".into(),
            }),
        }
    }
    let mut segments: Vec<Segment> = std::mem::take(&mut parser.done)
        .into_iter()
        .map(|(dump, indent, ids, created)| Segment {
            dump,
            indent,
            ids,
            created_in_goroutine: created,
        })
        .collect();
    segments.push(Segment {
        dump: parser.dump,
        indent: parser.indent.unwrap_or(0),
        ids: parser.ids,
        created_in_goroutine: parser.created_in_goroutine,
    });
    Ok(Chunk { segments, lines })
}

/// The number of spaces `line` starts with.
fn leading_spaces(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

impl<'t> Parser<'t> {
    fn line(&mut self, line_no: usize, raw: &'t str) -> Result<()> {
        self.line_no = line_no;
        // A dump's own lines, its indentation taken off.
        let spaces = leading_spaces(raw);
        let line = &raw[spaces.min(self.indent.unwrap_or(0))..];
        let trimmed = line.trim_ascii();
        if let Some(race) = self.race.as_mut() {
            if !race.line(line_no, trimmed, &mut self.dump.diagnostics) {
                self.finish_race();
            }
            return Ok(());
        }
        if trimmed.is_empty() {
            // A blank line ends a goroutine block, and the crash message.
            self.finish_task();
            self.crash_open = false;
            return Ok(());
        }
        if trimmed == "WARNING: DATA RACE" {
            self.finish_task();
            self.begin(line_no);
            self.race = Some(go_race::Builder::new(line_no));
            return Ok(());
        }
        if let Some(task) = parse_header(trimmed) {
            let id = task.id.unwrap_or(0);
            // Another dump begins: its lines are indented differently, or it repeats an id.
            if self.has_goroutines()
                && (self.indent != Some(spaces) || (id != 0 && self.ids.contains(&id)))
            {
                self.split();
            }
            self.indent.get_or_insert(spaces);
            self.finish_task();
            self.begin(line_no);
            self.limits.check_tasks(line_no, self.dump.tasks.len())?;
            if id == 0 {
                // An OS thread's scheduler stack, not a goroutine.
                let m = trimmed
                    .split_ascii_whitespace()
                    .find(|w| w.starts_with("m="))
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default();
                self.system = Some(format!("goroutine 0{m}"));
            } else {
                self.ids.insert(id);
            }
            self.task = Some(task);
            self.crash_open = false;
            self.after_separator = false;
            self.block_lines = 0;
            self.header_line = line_no;
            return Ok(());
        }
        if trimmed == "runtime stack:" {
            self.finish_task();
            self.system = Some("runtime stack".into());
            self.task = Some(Task::new(None));
            self.block_lines = 0;
            self.header_line = line_no;
            return Ok(());
        }
        if trimmed == "-----" {
            self.after_separator = true;
            return Ok(());
        }
        if self.task.is_some() {
            self.block_lines += 1;
            let indented = line.starts_with(['\t', ' ']);
            if indented && let Some(frame_location) = parse_location(trimmed) {
                return self.location(line_no, frame_location, None);
            }
            // A C frame without a file (`non-Go function`, or a symbolizer that knew no
            // file): only its pc.
            if indented && let Some(pc) = trimmed.strip_prefix("pc=0x") {
                let pc = u64::from_str_radix(pc.trim(), 16).ok();
                return self.location(line_no, ("", 0, None), pc);
            }
            if trimmed == "...additional frames elided..." {
                if let Some(task) = self.task.as_mut() {
                    task.elided = Some(None);
                }
                return Ok(());
            }
            if let Some(n) = trimmed
                .strip_prefix("...")
                .and_then(|r| r.strip_suffix(" frames elided..."))
                .and_then(|n| n.parse().ok())
            {
                if let Some(task) = self.task.as_mut() {
                    task.elided = Some(Some(n));
                }
                return Ok(());
            }
            if trimmed == "goroutine running on other thread; stack unavailable" {
                if let Some(task) = self.task.as_mut()
                    && task.state.is_none()
                {
                    task.state = Some("running".into());
                }
                return Ok(());
            }
            if let Some(id) = trimmed
                .strip_prefix("[originating from goroutine ")
                .and_then(|r| r.strip_suffix("]:"))
                .and_then(|id| id.parse().ok())
            {
                self.flush_pending();
                if let Some(done) = self.ancestor.take() {
                    self.ancestors.push(done);
                }
                self.ancestor = Some(Ancestor {
                    id,
                    frames: Vec::new(),
                    creator: None,
                });
                return Ok(());
            }
            if let Some(rest) = trimmed.strip_prefix("created by ") {
                self.flush_pending();
                let (function, creator_id) = split_creator(rest);
                if creator_id.is_some() {
                    self.created_in_goroutine = true;
                }
                if self.ancestor.is_none() {
                    let name = match &self.previous_creator {
                        Some(c) if &*c.function == function => c.function.clone(),
                        _ => self.intern(function),
                    };
                    if let Some(task) = self.task.as_mut() {
                        task.creator_id = creator_id;
                        task.creator = Some(frame(name, false));
                    }
                } else {
                    let name = self.intern(function);
                    if let Some(a) = self.ancestor.as_mut() {
                        a.creator = Some(frame(name, false));
                    }
                }
                self.pending = Some(Pending {
                    function,
                    inlined: false,
                    creator: true,
                    line: line_no,
                });
                return Ok(());
            }
            if !indented
                && let Some((function, inlined)) = parse_call(trimmed)
                    .or_else(|| (trimmed == "non-Go function").then_some((trimmed, false)))
            {
                self.flush_pending();
                self.pending = Some(Pending {
                    function,
                    // An ancestor's frames all print `(...)`: the runtime kept no arguments.
                    inlined: inlined && self.ancestor.is_none(),
                    creator: false,
                    line: line_no,
                });
                return Ok(());
            }
        } else if self.crash_line(trimmed, spaces) {
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

    /// Notes where the dump being read begins, at its first line of its own.
    fn begin(&mut self, line_no: usize) {
        if self.dump.start_line == 0 {
            self.dump.start_line = line_no;
        }
    }

    /// Whether the dump being read has goroutines (or other stacks) yet.
    fn has_goroutines(&self) -> bool {
        self.task.is_some() || !self.dump.tasks.is_empty() || !self.dump.system_stacks.is_empty()
    }

    /// Ends the dump being read; the next line starts another.
    fn split(&mut self) {
        self.finish_task();
        self.finish_race();
        let dump = std::mem::replace(
            &mut self.dump,
            Dump::empty(Runtime::Go, Format::GoTraceback),
        );
        self.done.push((
            dump,
            self.indent.take().unwrap_or(0),
            std::mem::take(&mut self.ids),
            std::mem::take(&mut self.created_in_goroutine),
        ));
        self.preface.clear();
        self.crash_open = false;
        self.after_separator = false;
    }

    fn finish_race(&mut self) {
        if let Some(race) = self.race.take() {
            self.dump.races.push(race.finish());
        }
    }

    /// Lines before the first goroutine: what happened.
    fn crash_line(&mut self, line: &'t str, spaces: usize) -> bool {
        if let Some(signal) = line.strip_prefix('[').filter(|l| l.starts_with("signal ")) {
            let text = signal.trim_end_matches(']');
            let crash = self.dump.crash.get_or_insert_with(|| Crash {
                kind: "signal".into(),
                message: String::new(),
                signal: None,
                signal_info: None,
            });
            crash.signal = Some(text.to_owned());
            crash.signal_info = parse_signal(text.strip_prefix("signal ").unwrap_or(text));
            self.crash_open = false;
            return true;
        }
        if let Some(fields) = line.strip_prefix("PC=")
            && let Some(info) = self
                .dump
                .crash
                .as_mut()
                .and_then(|c| c.signal_info.as_mut())
        {
            // `PC=0x49bd89 m=0 sigcode=1 addr=0x0` after `SIGSEGV: segmentation violation`.
            info.pc = info
                .pc
                .or_else(|| hex(fields.split(' ').next().unwrap_or("")));
            for field in fields.split_ascii_whitespace().skip(1) {
                if let Some(m) = field.strip_prefix("m=") {
                    info.m = m.parse().ok();
                } else if let Some(code) = field.strip_prefix("sigcode=") {
                    info.code = code.parse().ok();
                    info.code_meaning = info
                        .code
                        .and_then(|c| faultline_record::signal::code_meaning(&info.name, c));
                } else if let Some(addr) = field.strip_prefix("addr=") {
                    info.address = hex(addr);
                }
            }
            return true;
        }
        if line == "signal arrived during cgo execution" {
            if let Some(info) = self
                .dump
                .crash
                .as_mut()
                .and_then(|c| c.signal_info.as_mut())
            {
                info.during_cgo = true;
            }
            return true;
        }
        for kind in CRASH_KINDS {
            if let Some(message) = line
                .strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix(": ").or_else(|| rest.strip_prefix(":")))
            {
                // After goroutines, a crash line starts another dump (another crash appended
                // to the log), unless it is another thread's part of this one (`-----`).
                if self.has_goroutines() && !self.after_separator {
                    self.split();
                }
                if !self.has_goroutines() && self.dump.crash.is_none() {
                    self.indent = Some(spaces);
                }
                self.begin(self.line_no);
                match self.dump.crash.as_mut() {
                    // The same first line again (`GOTRACEBACK=crash` repeats `SIGQUIT: quit`
                    // for every thread): nothing new.
                    Some(crash)
                        if crash.kind == *kind && crash.message.lines().next() == Some(message) => {
                    }
                    // `panic: A [recovered]` then `\tpanic: B`: one crash, both messages.
                    Some(crash) => {
                        crash.message.push('\n');
                        crash.message.push_str(line);
                    }
                    None => {
                        let mut text = message.to_owned();
                        for line in self.preface.drain(..) {
                            text.push('\n');
                            text.push_str(line);
                        }
                        let signal_info = kind.starts_with("SIG").then(|| Signal {
                            name: (*kind).to_owned(),
                            description: message.to_owned(),
                            code: None,
                            code_meaning: None,
                            address: None,
                            pc: None,
                            m: None,
                            during_cgo: false,
                        });
                        self.dump.crash = Some(Crash {
                            kind: (*kind).to_owned(),
                            message: text,
                            signal: None,
                            signal_info,
                        });
                    }
                }
                self.after_separator = false;
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
        pc: Option<u64>,
    ) -> Result<()> {
        let Some(pending) = self.pending.take() else {
            self.dump.diagnostics.push(Diagnostic {
                line: line_no,
                message: "a file:line with no function line before it".into(),
            });
            return Ok(());
        };
        let known_file = !file.is_empty();
        if self.ancestor.is_some() {
            let function = self.intern(pending.function);
            let mut f = frame(function, pending.inlined);
            if known_file {
                f.file = Some(self.intern(file));
                f.line = Some(line);
            }
            f.offset = offset;
            f.address = pc;
            if let Some(a) = self.ancestor.as_mut() {
                if pending.creator {
                    a.creator = Some(f);
                } else {
                    a.frames.push(f);
                }
            }
            return Ok(());
        }
        let (function, file) = if pending.creator {
            let previous = self.previous_creator.as_ref();
            let same_function = previous
                .filter(|c| &*c.function == pending.function)
                .map(|c| c.function.clone());
            let same_file = previous
                .and_then(|c| c.file.clone())
                .filter(|f| &**f == file);
            (
                same_function.unwrap_or_else(|| self.intern(pending.function)),
                known_file.then(|| same_file.unwrap_or_else(|| self.intern(file))),
            )
        } else {
            let at = self.frames.len();
            (
                self.function_at(at, pending.function),
                known_file.then(|| self.file_at(at, file)),
            )
        };
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let mut f = frame(function, pending.inlined);
        f.line = file.is_some().then_some(line);
        f.file = file;
        f.offset = offset;
        f.address = pc;
        if pending.creator {
            task.creator = Some(f);
        } else {
            self.limits.check_frames(line_no, self.frames.len())?;
            self.frames.push(f);
        }
        Ok(())
    }

    /// A function line with no file line after it (the dump was cut): keep the function,
    /// and say so.
    fn flush_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        self.dump.diagnostics.push(Diagnostic {
            line: pending.line,
            message: if pending.creator {
                format!(
                    "created by {} has no file:line after it (the dump was cut?)",
                    pending.function
                )
            } else {
                format!(
                    "{} has no file:line after it (the dump was cut?)",
                    pending.function
                )
            },
        });
        if pending.creator || self.task.is_none() {
            return;
        }
        if let Some(a) = self.ancestor.as_mut() {
            let function = Arc::from(pending.function);
            a.frames.push(frame(function, pending.inlined));
        } else if self.frames.len() < self.limits.max_frames {
            let function = self.function_at(self.frames.len(), pending.function);
            self.frames.push(frame(function, pending.inlined));
        }
    }

    fn finish_task(&mut self) {
        self.flush_pending();
        if let Some(done) = self.ancestor.take() {
            self.ancestors.push(done);
        }
        if let Some(mut task) = self.task.take() {
            if self.block_lines == 0 {
                let what = match (&self.system, task.id) {
                    (Some(label), _) => label.clone(),
                    (None, Some(id)) => format!("goroutine {id}"),
                    (None, None) => "a goroutine".into(),
                };
                self.dump.diagnostics.push(Diagnostic {
                    line: self.header_line,
                    message: format!("{what} has no frames (the dump was cut?)"),
                });
            }
            // Most goroutines have the stack of the one before: then the names are the very
            // same shared strings, and comparing them is cheaper than hashing the stack.
            task.frames = if same_stack(&self.frames, &self.previous) {
                self.previous.clone()
            } else {
                self.stacks.intern(&self.frames)
            };
            task.ancestors = std::mem::take(&mut self.ancestors);
            self.previous = task.frames.clone();
            match self.system.take() {
                Some(label) => self.dump.system_stacks.push(SystemStack {
                    label,
                    frames: task.frames,
                }),
                None => {
                    if task.creator.is_some() {
                        self.previous_creator.clone_from(&task.creator);
                    }
                    self.dump.tasks.push(task);
                }
            }
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

/// The first lines of a crash: `panic: …`, `fatal error: …`, a fatal signal's name.
const CRASH_KINDS: &[&str] = &[
    "panic",
    "fatal error",
    "SIGQUIT",
    "SIGABRT",
    "SIGSEGV",
    "SIGBUS",
    "SIGFPE",
    "SIGILL",
    "SIGTRAP",
    "SIGSYS",
];

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

/// `SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x45a1b2`, decoded.
fn parse_signal(text: &str) -> Option<Signal> {
    let (name, rest) = text.split_once(": ")?;
    if !name.starts_with("SIG") {
        return None;
    }
    let fields_at = rest.find(" code=").unwrap_or(rest.len());
    let mut info = Signal {
        name: name.to_owned(),
        description: rest[..fields_at].to_owned(),
        code: None,
        code_meaning: None,
        address: None,
        pc: None,
        m: None,
        during_cgo: false,
    };
    for field in rest[fields_at..].split_ascii_whitespace() {
        if let Some(code) = field.strip_prefix("code=") {
            info.code = hex(code).map(|c| c as i64).or_else(|| code.parse().ok());
        } else if let Some(addr) = field.strip_prefix("addr=") {
            info.address = hex(addr);
        } else if let Some(pc) = field.strip_prefix("pc=") {
            info.pc = hex(pc);
        }
    }
    info.code_meaning = info
        .code
        .and_then(|c| faultline_record::signal::code_meaning(&info.name, c));
    Some(info)
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
/// `GOTRACEBACK=crash`, `PC=… m=… sigcode=…`, `exit status 2`; the race detector's frame
/// and count lines; `go test`'s own lines around a dump (`=== RUN`, `--- FAIL:`, `FAIL`, a
/// test's `t.Log` line `child_test.go:33: …`).
fn is_noise(line: &str) -> bool {
    if line.starts_with("PC=")
        || line.starts_with("exit status ")
        || line.starts_with("-----")
        || line.starts_with("==================")
        || (line.starts_with("Found ") && line.ends_with(" data race(s)"))
        || line.starts_with("=== ")
        || line.starts_with("--- FAIL")
        || line.starts_with("--- PASS")
        || line.starts_with("FAIL")
        || line.starts_with("ok  ")
        || line == "PASS"
        || is_test_log_line(line)
    {
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

/// `child_test.go:33: child: exit status 2`, `testing.go:1465: race detected…`: a line a test
/// logged (its file, line and text).
fn is_test_log_line(line: &str) -> bool {
    let Some((file, rest)) = line.split_once(".go:") else {
        return false;
    };
    !file.contains(' ')
        && (file.ends_with("_test") || file == "testing")
        && rest
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
    fn c_frames_from_a_cgo_symbolizer_with_and_without_files() {
        // runtime.SetCgoTraceback with a symbolizer: C frames print `name(...)` and
        // `file:line pc=…`, or `non-Go function` and `pc=…` when nothing is known.
        let text = "SIGSEGV: segmentation violation\nPC=0x4a1234 m=0 sigcode=1 addr=0x8\n\
                    signal arrived during cgo execution\n\n\
                    goroutine 1 [syscall]:\n\
                    deref(...)\n\t/src/lib.c:3 pc=0x4a1234\n\
                    non-Go function\n\tpc=0x4a1300\n\
                    runtime.cgocall(0x4a1200, 0xc000050f20)\n\
                    \t/go/src/runtime/cgocall.go:167 +0x4b fp=0xc000050ef8 sp=0xc000050ec0 pc=0x404efc\n\
                    main.main()\n\t/src/main.go:15 +0x13\n";
        let dump = parse(text, &Limits::default()).unwrap();
        assert!(dump.diagnostics.is_empty(), "{:?}", dump.diagnostics);
        let frames = &dump.tasks[0].frames;
        assert_eq!(
            frames.iter().map(|f| &*f.function).collect::<Vec<_>>(),
            ["deref", "non-Go function", "runtime.cgocall", "main.main"]
        );
        assert_eq!(
            (frames[0].file.as_deref(), frames[0].line),
            (Some("/src/lib.c"), Some(3))
        );
        assert_eq!(
            (frames[1].file.as_deref(), frames[1].address),
            (None, Some(0x4a1300))
        );
        let signal = dump.crash.unwrap().signal_info.unwrap();
        assert_eq!(
            (signal.address, signal.pc, signal.during_cgo),
            (Some(8), Some(0x4a1234), true)
        );
    }

    #[test]
    fn system_stacks_are_not_goroutines() {
        let text = "fatal error: unexpected signal during runtime execution\n\
                    [signal SIGSEGV: segmentation violation code=0x2 addr=0x7f00 pc=0x45a1b2]\n\n\
                    runtime stack:\nruntime.throw({0x4a1012?, 0x0?})\n\t/go/src/runtime/panic.go:1047 +0x5d\n\n\
                    goroutine 0 gp=0x5b2bc0 m=3 mp=0xc000080008 [idle]:\n\
                    runtime.futex(0x0?)\n\t/go/src/runtime/sys_linux_amd64.s:557 +0x21\n\n\
                    goroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\n";
        let dump = parse(text, &Limits::default()).unwrap();
        assert!(dump.diagnostics.is_empty(), "{:?}", dump.diagnostics);
        assert_eq!(dump.task_count(), 1);
        let labels: Vec<&str> = dump
            .system_stacks
            .iter()
            .map(|s| s.label.as_str())
            .collect();
        assert_eq!(labels, ["runtime stack", "goroutine 0 m=3"]);
        let signal = dump.crash.unwrap().signal_info.unwrap();
        assert_eq!(
            (signal.code, signal.code_meaning, signal.address),
            (
                Some(2),
                Some("SEGV_ACCERR: invalid permissions for mapped object"),
                Some(0x7f00)
            )
        );
    }

    #[test]
    fn appended_crashes_are_dumps_of_their_own() {
        let one = "panic: first\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\n\n";
        let two = "panic: second\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:9 +0x1d\n";
        let dumps = parse_all(&format!("{one}exit status 2\n{two}"), &Limits::default()).unwrap();
        assert_eq!(dumps.len(), 2);
        assert_eq!(dumps[0].crash.as_ref().unwrap().message, "first");
        assert_eq!(dumps[1].crash.as_ref().unwrap().message, "second");
        // Two plain dumps one after the other: goroutine 1 again starts the second.
        let plain = "goroutine 1 [select]:\nmain.main()\n\t/src/main.go:5 +0x1d\n\n";
        let dumps = parse_all(&format!("{plain}{plain}"), &Limits::default()).unwrap();
        assert_eq!(dumps.len(), 2);
        assert!(dumps.iter().all(|d| d.tasks.len() == 1));
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
            // Each copy's goroutines get ids of their own: an id seen again would start
            // another dump.
            let copied: String = block
                .trim_end()
                .split('\n')
                .map(|line| {
                    match line
                        .strip_prefix("goroutine ")
                        .and_then(|r| r.split_once(' '))
                    {
                        Some((id, rest)) if id.bytes().all(|b| b.is_ascii_digit()) => format!(
                            "goroutine {} {rest}\n",
                            id.parse::<u64>().unwrap() + 1000 * (copy + 1)
                        ),
                        _ => format!("{line}\n"),
                    }
                })
                .collect();
            text.push_str(copied.trim_end());
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
        let single = parse_chunk(&text, &limits).unwrap().segments.remove(0).dump;
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
