//! Task dumps and panics, from Go and Rust runtimes, into one model.
//!
//! Bytes in, values out: no file system, no network, no clock. [`parse`] detects the format and
//! returns a [`Dump`] — tasks (goroutines, tokio tasks, threads) with their state, wait time,
//! creator and frames — plus [`Diagnostic`]s for every line it could not place. One malformed
//! goroutine block never loses the others. [`group`] folds tasks with the same stack signature
//! (at a chosen [`Level`]) into [`Group`]s; [`diff`] compares two dumps group by group.
//!
//! Formats so far: Go tracebacks (panics, fatal errors, `SIGQUIT` dumps with any
//! `GOTRACEBACK`, `/debug/pprof/goroutine?debug=2`), also when embedded in logs (kubectl/CRI
//! prefixes, timestamps and levels, CRLF, tabs turned to spaces), and pprof goroutine profiles
//! (`debug=1` text, `debug=0` gzipped protobuf); Rust panics; tokio task dumps, as tokio prints
//! them and as faultline records of raw addresses (resolved through a [`Resolve`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

mod diff;
mod go_pprof0;
mod go_pprof1;
mod go_race;
mod go_text;
mod group;
pub mod json_lines;
mod logs;
mod rust_text;
mod task_record;
mod tokio_text;

pub use diff::{Change, GroupChange, diff};
pub use group::{Group, Level, RaceGroup, Signature, group, group_races, is_own_code};
pub use task_record::{Resolve, Unresolved, from_record};

/// Limits on untrusted input. Past them, parsing stops with [`Error::Limit`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most tasks in one dump.
    pub max_tasks: usize,
    /// Most frames in one task.
    pub max_frames: usize,
    /// Longest line, in bytes.
    pub max_line: usize,
    /// Largest decompressed size of compressed input (gzipped profiles), in bytes.
    pub max_decompressed: usize,
}

impl Limits {
    /// An error if `line` (1-based `line_no`) is longer than [`Limits::max_line`].
    pub(crate) fn check_line(&self, line_no: usize, line: &str) -> Result<()> {
        self.check(line_no, "line length", line.len(), self.max_line)
    }

    /// An error if a task already has [`Limits::max_frames`] frames.
    pub(crate) fn check_frames(&self, line_no: usize, frames: usize) -> Result<()> {
        self.check(line_no, "frame count", frames, self.max_frames)
    }

    /// An error if a dump already has [`Limits::max_tasks`] tasks.
    pub(crate) fn check_tasks(&self, line_no: usize, tasks: usize) -> Result<()> {
        self.check(line_no, "task count", tasks, self.max_tasks)
    }

    fn check(&self, line: usize, what: &'static str, have: usize, limit: usize) -> Result<()> {
        let over = if what == "line length" {
            have > limit
        } else {
            have >= limit
        };
        if over {
            return Err(Error::Limit { line, what, limit });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tasks: 2_000_000,
            max_frames: 100_000,
            max_line: 1 << 20,
            max_decompressed: 1 << 30,
        }
    }
}

/// Errors: the input is past a limit. Malformed lines are [`Diagnostic`]s, not errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A log of JSON lines has a line that is not one of its entries.
    #[error("line {line}: {message}")]
    Log {
        /// 1-based line.
        line: usize,
        /// What was expected.
        message: String,
    },
    /// A limit of [`Limits`] was exceeded.
    #[error("line {line}: {what} exceeds the limit of {limit}")]
    Limit {
        /// 1-based line where the limit was crossed.
        line: usize,
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The runtime a dump came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// The Go runtime.
    Go,
    /// Rust std (panics, threads).
    Rust,
    /// The tokio runtime.
    Tokio,
}

/// The format a dump was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Go traceback text: a panic, a fatal error, a `SIGQUIT` dump, or
    /// `/debug/pprof/goroutine?debug=2`.
    GoTraceback,
    /// `/debug/pprof/goroutine?debug=1`: stacks with counts.
    GoPprofDebug1,
    /// `/debug/pprof/goroutine?debug=0`: a gzipped `profile.proto`.
    GoPprofProto,
    /// Rust std's panic output, with or without a backtrace.
    RustPanic,
    /// A tokio task dump: the `Display` of `tokio::runtime::dump::Trace`, one tree per task.
    TokioTaskDump,
    /// A faultline record (`faultline-crash` JSON): a task dump `faultline-capture` took from a
    /// tokio runtime, or a crash record, its raw addresses resolved through a [`Resolve`].
    FaultlineRecord,
}

impl Format {
    /// A stable name, as `--format json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::GoTraceback => "go_traceback",
            Format::GoPprofDebug1 => "go_pprof_debug1",
            Format::GoPprofProto => "go_pprof_proto",
            Format::RustPanic => "rust_panic",
            Format::TokioTaskDump => "tokio_taskdump",
            Format::FaultlineRecord => "faultline_record",
        }
    }
}

/// Where a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provenance {
    /// Go traceback text: function, file and line as the runtime printed them.
    GoTraceback,
    /// A Go pprof goroutine profile.
    GoPprof,
    /// A Rust panic's backtrace as std printed it.
    RustPanic,
    /// A node of a tokio task dump's tree: the function, file, line and column tokio printed.
    TokioTree,
    /// A recorded address, resolved offline from debug info (or left as `module+offset`).
    Symbolized,
}

/// One stack frame, as the dump gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The function, without its arguments (`main.(*Server).serve`).
    pub function: Arc<str>,
    /// The source file, if given.
    pub file: Option<Arc<str>>,
    /// 1-based line, if given.
    pub line: Option<u32>,
    /// 1-based column, if given.
    pub column: Option<u32>,
    /// The PC's offset from the function's entry (Go's `+0x1d`), if given.
    pub offset: Option<u64>,
    /// The absolute address, if given (Rust's `RUST_BACKTRACE=full`).
    pub address: Option<u64>,
    /// Whether the runtime marked this frame as inlined into its caller.
    pub inlined: bool,
    /// Where the frame came from.
    pub provenance: Provenance,
}

/// One task: a goroutine, a tokio task, a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The runtime's id (`goroutine 42`, a thread id), if it has one.
    pub id: Option<u64>,
    /// The thread's name, for runtimes that name them (`thread 'worker-1'`).
    pub name: Option<String>,
    /// What the runtime said about this task in particular: a Rust thread's panic message.
    pub message: Option<String>,
    /// State or wait reason as the runtime named it (`chan receive`, `select`, `running`).
    pub state: Option<String>,
    /// How long it has waited, in seconds, if the runtime says (Go prints whole minutes).
    pub wait_seconds: Option<u64>,
    /// Locked to an OS thread (`runtime.LockOSThread`).
    pub locked_to_thread: bool,
    /// The runtime proved this task leaked: Go 1.26 and later mark a goroutine `(leaked)`
    /// once a leak-detecting collection found it blocked forever on something nothing
    /// reachable can release, and the `goroutineleak` profile lists only such goroutines.
    /// Evidence, not a state: grouping and signatures ignore it.
    pub leaked: bool,
    /// Go's `(durable)` mark: blocked inside a `testing/synctest` bubble in a way only the
    /// bubble can end. Not part of the state either.
    pub durable: bool,
    /// The function that created this task (`created by main.main`).
    pub creator: Option<Frame>,
    /// The id of the task that created it (`in goroutine 1`, Go 1.21 and later).
    pub creator_id: Option<u64>,
    /// Frames, innermost first. Shared: tasks with the same stack (in a dump of 100,000
    /// goroutines, most of them) share one copy.
    pub frames: Arc<[Frame]>,
    /// Frames the runtime left out (`...N frames elided...`; `None` inside: it did not say how
    /// many).
    pub elided: Option<Option<u64>>,
    /// How many tasks this entry stands for (aggregated formats); 1 otherwise.
    pub count: u64,
    /// Further branches the task awaits at once, beyond the one in [`Task::frames`]: a tokio
    /// task in `join!` prints a forked tree, and only its first leaf path is kept. 0 elsewhere.
    pub branches: u64,
    /// The stacks of the goroutines that created this one, nearest first, as Go prints them
    /// with `GODEBUG=tracebackancestors=N` (`[originating from goroutine M]:`). Not part of the
    /// task's own stack or creator, and grouping ignores them.
    pub ancestors: Vec<Ancestor>,
}

/// A goroutine that created a task (or created its creator), as Go recorded it at the time.
#[derive(Debug, Clone, PartialEq)]
pub struct Ancestor {
    /// Its id.
    pub id: u64,
    /// Its stack when it created the next one, innermost first.
    pub frames: Vec<Frame>,
    /// The function that created it, with its location.
    pub creator: Option<Frame>,
}

/// A stack that is not a goroutine's: the crashing thread's system stack (`runtime stack:`)
/// or an OS thread's scheduler stack (`goroutine 0 … m=N`). Kept beside the tasks, never
/// counted as one.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemStack {
    /// How the runtime introduced it: `runtime stack` or `goroutine 0 m=3`.
    pub label: String,
    /// The frames, innermost first.
    pub frames: Arc<[Frame]>,
}

/// One `WARNING: DATA RACE` report of Go's race detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Race {
    /// The 1-based line of its `WARNING: DATA RACE`.
    pub line: usize,
    /// The accesses, as reported: the current one, then the previous conflicting one.
    pub accesses: Vec<RaceAccess>,
    /// The goroutines involved and where each was created (`Goroutine 8 (running) created
    /// at:`).
    pub goroutines: Vec<RaceGoroutine>,
}

/// One access of a data race: `Write at 0x00c0000980f0 by goroutine 8:` and its stack.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceAccess {
    /// As printed: `Write`, `Previous read`, `Atomic write`…
    pub kind: String,
    /// Whether it is a write.
    pub write: bool,
    /// Whether it is the previous access (the other side of the race).
    pub previous: bool,
    /// The address accessed.
    pub address: Option<u64>,
    /// The goroutine that made it (`None` with `main`: the main goroutine).
    pub goroutine: Option<u64>,
    /// Made by the main goroutine (`by main goroutine`).
    pub main: bool,
    /// Its stack, innermost first.
    pub frames: Vec<Frame>,
}

/// A goroutine of a data race, and where it was created.
#[derive(Debug, Clone, PartialEq)]
pub struct RaceGoroutine {
    /// Its id.
    pub id: u64,
    /// `running` or `finished`.
    pub state: String,
    /// The stack that created it, innermost first.
    pub created_at: Vec<Frame>,
}

/// A signal, decoded: from `[signal SIGSEGV: segmentation violation code=0x1 addr=0x0
/// pc=0x45a1b2]`, or `SIGSEGV: segmentation violation` and `PC=0x49bd89 m=0 sigcode=1
/// addr=0x0` (a signal in C code under cgo, or a SIGQUIT dump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    /// `SIGSEGV`.
    pub name: String,
    /// What the runtime calls it: `segmentation violation`.
    pub description: String,
    /// `si_code`.
    pub code: Option<i64>,
    /// What the code means for this signal (`SEGV_MAPERR: address not mapped to object`).
    pub code_meaning: Option<&'static str>,
    /// The faulting address (`addr=`).
    pub address: Option<u64>,
    /// The program counter (`pc=`, `PC=`).
    pub pc: Option<u64>,
    /// The thread (`m=`), when printed.
    pub m: Option<u64>,
    /// `signal arrived during cgo execution`: the signal hit C code called from Go.
    pub during_cgo: bool,
}

impl Task {
    fn new(id: Option<u64>) -> Self {
        Self {
            id,
            name: None,
            message: None,
            state: None,
            wait_seconds: None,
            locked_to_thread: false,
            leaked: false,
            durable: false,
            creator: None,
            creator_id: None,
            frames: Arc::from(Vec::new()),
            elided: None,
            count: 1,
            branches: 0,
            ancestors: Vec::new(),
        }
    }
}

/// What the runtime said about a crash, if the dump is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// `panic`, `fatal error`, `SIGQUIT`…
    pub kind: String,
    /// The message, verbatim (`runtime error: invalid memory address or nil pointer
    /// dereference`), with any `[recovered]` lines after it.
    pub message: String,
    /// The signal line, if any (`[signal SIGSEGV: segmentation violation code=… addr=0x0 …]`).
    pub signal: Option<String>,
    /// The signal, decoded (name, code and its meaning, fault address, pc, cgo).
    pub signal_info: Option<Signal>,
}

/// A line the parser could not place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line number in the input.
    pub line: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A parsed dump.
#[derive(Debug, Clone, PartialEq)]
pub struct Dump {
    /// The runtime.
    pub runtime: Runtime,
    /// The format it was parsed from.
    pub format: Format,
    /// The runtime's version, or what the format reveals of it (`go1.21+`).
    pub version: Option<String>,
    /// When the dump was taken (RFC 3339), if the dump says.
    pub captured_at: Option<String>,
    /// How many tasks the runtime counted alive, if it says (a tokio dump lists only the tasks
    /// it could trace).
    pub alive_tasks: Option<u64>,
    /// The process the dump was taken of, if the dump says (a faultline record's pid): two
    /// dumps of different pids are of different processes, whose task ids are unrelated.
    pub pid: Option<u32>,
    /// The crash, if the dump is a panic or fatal error.
    pub crash: Option<Crash>,
    /// The tasks, in the order the dump lists them.
    pub tasks: Vec<Task>,
    /// Stacks that are not tasks: the crashing thread's system stack, the threads' scheduler
    /// stacks (Go's `runtime stack:` and `goroutine 0`).
    pub system_stacks: Vec<SystemStack>,
    /// Go race detector reports, in the order printed.
    pub races: Vec<Race>,
    /// Spaces the dump's lines were indented by in the text it came from: a child's traceback
    /// quoted in `go test` output is, the test binary's own is not.
    pub indent: usize,
    /// The 1-based line of the input the dump begins on (0: not told).
    pub start_line: usize,
    /// The stream of a log of JSON lines the dump came from (`stderr`, a pod's name), if the
    /// log had several or named them.
    pub stream: Option<String>,
    /// Lines that could not be placed.
    pub diagnostics: Vec<Diagnostic>,
}

impl Dump {
    /// A dump with nothing in it yet, for a parser to fill.
    pub fn empty(runtime: Runtime, format: Format) -> Self {
        Self {
            runtime,
            format,
            version: None,
            captured_at: None,
            alive_tasks: None,
            pid: None,
            crash: None,
            tasks: Vec::new(),
            system_stacks: Vec::new(),
            races: Vec::new(),
            indent: 0,
            start_line: 0,
            stream: None,
            diagnostics: Vec::new(),
        }
    }

    /// Total tasks, counting aggregated entries by their count.
    pub fn task_count(&self) -> u64 {
        self.tasks.iter().fold(0, |n, t| n.saturating_add(t.count))
    }
}

/// Parses a dump of any supported format, detected from its content.
///
/// Returns `Ok` with diagnostics for lines it could not place; `Err` only past a limit.
/// Input that is not a dump at all gives a dump with no tasks and a diagnostic saying so.
pub fn parse(input: &[u8], limits: &Limits) -> Result<Dump> {
    parse_with(input, limits, &mut Unresolved)
}

/// [`parse`], resolving the raw addresses of a faultline record with `resolver`. The other
/// formats carry their names already and never call it.
pub fn parse_with(input: &[u8], limits: &Limits, resolver: &mut dyn Resolve) -> Result<Dump> {
    if task_record::detect(input) {
        return task_record::parse(input, limits, resolver);
    }
    if go_pprof0::detect(input) {
        return go_pprof0::parse(input, limits);
    }
    if json_lines::detect(input, &json_lines::LogFields::default()) {
        let mut dumps = parse_log(input, limits, &json_lines::LogFields::default())?;
        let at = principal(&dumps).unwrap_or(0);
        return Ok(dumps.swap_remove(at));
    }
    // Valid UTF-8 (the usual case) is read in place; only broken text pays for a lossy copy.
    let text = match std::str::from_utf8(input) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(input),
    };
    if go_pprof1::detect(&text) {
        return go_pprof1::parse(&text, limits);
    }
    if rust_text::detect(&text) {
        return rust_text::parse(&text, limits);
    }
    if tokio_text::detect(&text) {
        return tokio_text::parse(&text, limits);
    }
    go_text::parse(&logs::join_cri_partials(&text), limits)
}

/// Every dump in `input`, in order: a Go text can hold several (a child's traceback quoted in
/// `go test` output before the test binary's own, crashes appended to one log), and their
/// goroutines and ids are never merged. Other formats hold one. [`parse`] gives the one the
/// input is about: the program's own (the least indented), the latest of those.
pub fn parse_all(input: &[u8], limits: &Limits) -> Result<Vec<Dump>> {
    parse_all_with(input, limits, &mut Unresolved)
}

/// [`parse_all`], resolving the raw addresses of a faultline record with `resolver`.
pub fn parse_all_with(
    input: &[u8],
    limits: &Limits,
    resolver: &mut dyn Resolve,
) -> Result<Vec<Dump>> {
    if task_record::detect(input) || go_pprof0::detect(input) {
        return parse_with(input, limits, resolver).map(|d| vec![d]);
    }
    if json_lines::detect(input, &json_lines::LogFields::default()) {
        return parse_log(input, limits, &json_lines::LogFields::default());
    }
    let text = match std::str::from_utf8(input) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(input),
    };
    if go_pprof1::detect(&text) || rust_text::detect(&text) || tokio_text::detect(&text) {
        return parse_with(input, limits, resolver).map(|d| vec![d]);
    }
    go_text::parse_all(&logs::join_cri_partials(&text), limits)
}

/// Every dump in a log of JSON lines ([`json_lines`]: Docker's json-file, a log platform's
/// export), read with `fields`: each stream's text parsed as [`parse_all`] parses a text, its
/// dumps in order of their streams' first entries, each with its stream, the time of its first
/// line as `captured_at`, and its lines (diagnostics, races) counted in the log's own lines.
pub fn parse_log(
    input: &[u8],
    limits: &Limits,
    fields: &json_lines::LogFields,
) -> Result<Vec<Dump>> {
    let streams = json_lines::streams(input, fields).map_err(|e| Error::Log {
        line: e.line,
        message: e.message,
    })?;
    let named = streams.len() > 1 || streams.iter().any(|s| s.key.is_some());
    let mut out = Vec::new();
    for stream in streams {
        let dumps = parse_all(stream.text.as_bytes(), limits).map_err(|e| match e {
            Error::Limit { line, what, limit } => Error::Limit {
                line: stream
                    .lines
                    .get(line.wrapping_sub(1))
                    .copied()
                    .unwrap_or(line),
                what,
                limit,
            },
            other => other,
        })?;
        let at = |line: usize| stream.lines.get(line.wrapping_sub(1)).copied();
        for mut dump in dumps {
            if dump.tasks.is_empty() && dump.crash.is_none() && dump.races.is_empty() {
                continue;
            }
            let first = dump.start_line.max(1);
            if dump.captured_at.is_none() {
                dump.captured_at = stream.times.get(first - 1).cloned().flatten();
            }
            dump.start_line = at(first).unwrap_or(first);
            for d in &mut dump.diagnostics {
                d.line = at(d.line).unwrap_or(d.line);
            }
            for r in &mut dump.races {
                r.line = at(r.line).unwrap_or(r.line);
            }
            if named {
                dump.stream.clone_from(&stream.key);
            }
            out.push(dump);
        }
    }
    if out.is_empty() {
        let mut dump = Dump::empty(Runtime::Go, Format::GoTraceback);
        dump.diagnostics.push(Diagnostic {
            line: 1,
            message: "a log of JSON lines with no panic or goroutine dump in its text".into(),
        });
        out.push(dump);
    }
    Ok(out)
}

/// Of several dumps of one text ([`parse_all`]), the one the text is about: the program's own
/// (the least indented), the latest of those. `None` for none.
pub fn principal(dumps: &[Dump]) -> Option<usize> {
    let least = dumps.iter().map(|d| d.indent).min()?;
    dumps.iter().rposition(|d| d.indent == least)
}

/// Parses `input` as `format`, without detecting it: for callers that know what they fetched,
/// and for fuzzing each parser on its own. Input of another format gives a dump with
/// diagnostics, never a panic.
pub fn parse_as(
    format: Format,
    input: &[u8],
    limits: &Limits,
    resolver: &mut dyn Resolve,
) -> Result<Dump> {
    if format == Format::FaultlineRecord {
        return task_record::parse(input, limits, resolver);
    }
    if format == Format::GoPprofProto {
        return go_pprof0::parse(input, limits);
    }
    let text = match std::str::from_utf8(input) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(input),
    };
    match format {
        Format::GoTraceback => go_text::parse(&text, limits),
        Format::GoPprofDebug1 => go_pprof1::parse(&text, limits),
        Format::RustPanic => rust_text::parse(&text, limits),
        Format::TokioTaskDump => tokio_text::parse(&text, limits),
        Format::GoPprofProto | Format::FaultlineRecord => Ok(Dump::empty(Runtime::Go, format)),
    }
}

/// Identical stacks, stored once. Frames are compared by the identity of their interned
/// strings, so the parsers must intern function and file names (they do).
#[derive(Default)]
pub(crate) struct Stacks {
    map: HashMap<Vec<FrameIdentity>, Arc<[Frame]>, FastHash>,
}

/// A frame by the addresses of its interned function and file, its line, offset and inlining.
type FrameIdentity = (usize, usize, u32, u64, bool);

impl Stacks {
    pub(crate) fn intern(&mut self, frames: &[Frame]) -> Arc<[Frame]> {
        let key: Vec<_> = frames
            .iter()
            .map(|f| {
                (
                    Arc::as_ptr(&f.function).cast::<u8>() as usize,
                    f.file
                        .as_ref()
                        .map_or(0, |a| Arc::as_ptr(a).cast::<u8>() as usize),
                    f.line.unwrap_or(0),
                    f.offset.unwrap_or(u64::MAX),
                    f.inlined,
                )
            })
            .collect();
        self.map
            .entry(key)
            .or_insert_with(|| Arc::from(frames))
            .clone()
    }
}

/// A fast, non-cryptographic hash for the parsers' interning tables (the Fx hash of rustc):
/// the keys are short strings and integers from the dump, and SipHash's protection against
/// chosen keys buys nothing against a file the user chose to read.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `HashMap` with [`FxHasher`].
pub(crate) type FastHash = std::hash::BuildHasherDefault<FxHasher>;

/// A line cut to a readable length for a diagnostic.
fn shorten(line: &str) -> String {
    const MAX: usize = 120;
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}
