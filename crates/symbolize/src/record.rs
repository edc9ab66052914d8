//! Symbolizing a whole crash record: every frame of every module, with the frames of the panic
//! machinery told apart and the first frame of the service's own code marked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use faultline_record::{CrashRecord, Frame};

use crate::{DebugFile, Demangle, Locator, Reason, Source, Symbolized, Symbolizer};

/// What became of one module of the record.
#[derive(Debug, Clone)]
pub struct ModuleReport {
    /// The module's path, as recorded.
    pub path: String,
    /// The debug file used and how it was found, or why there is none; `None` when no frame
    /// points into this module, so it was not looked up.
    pub debug_file: Option<Result<(PathBuf, Source), Reason>>,
}

/// One recorded frame, symbolized.
#[derive(Debug, Clone)]
pub struct FrameReport {
    /// The recorded frame.
    pub frame: Frame,
    /// Its source frames (innermost first) or why it is unknown.
    pub symbolized: Symbolized,
    /// Part of the panic machinery or the runtime's start-up, not of the crash itself.
    pub hidden: bool,
    /// The first frame of the service's own code.
    pub own_code: bool,
}

/// A symbolized crash record.
#[derive(Debug, Clone)]
pub struct RecordReport {
    /// One entry per module of the record, same order.
    pub modules: Vec<ModuleReport>,
    /// One entry per frame of the record, same order.
    pub frames: Vec<FrameReport>,
}

/// Every recorded frame of `record`: the crashing thread's, then each task's (its stack, then
/// its branches).
fn all_frames(record: &CrashRecord) -> impl Iterator<Item = &Frame> {
    record.frames.iter().chain(
        record
            .tasks
            .iter()
            .flat_map(|t| t.frames.iter().chain(t.branches.iter().flatten())),
    )
}

/// Finds and opens the debug file of each module some frame points into. Only those are looked
/// up: a record lists every loaded library, and asking debuginfod for each would be slow and
/// pointless.
fn open_modules(
    record: &CrashRecord,
    locator: &Locator,
) -> (Vec<ModuleReport>, HashMap<usize, DebugFile>) {
    let used: std::collections::HashSet<usize> =
        all_frames(record).filter_map(|f| f.module).collect();
    let mut files: HashMap<usize, DebugFile> = HashMap::new();
    let modules = record
        .modules
        .iter()
        .enumerate()
        .map(|(i, module)| {
            let debug_file = used.contains(&i).then(|| {
                locate_and_open(module, locator).map(|(file, source)| {
                    let path = file.path().to_owned();
                    files.insert(i, file);
                    (path, source)
                })
            });
            ModuleReport {
                path: module.path.clone(),
                debug_file,
            }
        })
        .collect::<Vec<_>>();
    (modules, files)
}

/// The frames of a task-dump record (all tasks, all branches), symbolized up front — each
/// distinct address once — and served to `faultline_dump::from_record` through
/// [`faultline_dump::Resolve`].
#[derive(Debug)]
pub struct ResolvedRecord {
    /// One entry per module of the record, same order.
    pub modules: Vec<ModuleReport>,
    table: HashMap<(usize, u64), Symbolized>,
}

impl ResolvedRecord {
    /// Symbolizes every frame of `record`, finding debug files with `locator`.
    pub fn new(record: &CrashRecord, locator: &Locator, demangle: Demangle) -> Self {
        let (modules, files) = open_modules(record, locator);
        let mut wanted: Vec<(usize, u64)> = all_frames(record)
            .filter_map(|f| Some((f.module?, f.lookup_address()?)))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut table = HashMap::with_capacity(wanted.len());
        // Per module, in ascending address order: the order the symbolizer is fastest in.
        for group in wanted.chunk_by(|a, b| a.0 == b.0) {
            let m = group[0].0;
            let symbolizer = files.get(&m).map(|file| file.symbolizer(demangle));
            for &(_, address) in group {
                let symbolized = match (&symbolizer, &modules[m].debug_file) {
                    (Some(Ok(s)), _) => s.symbolize(address),
                    (Some(Err(e)), _) => {
                        Symbolized::Unknown(Reason::CorruptDebugInfo(e.to_chain()))
                    }
                    (None, Some(Err(reason))) => Symbolized::Unknown(reason.clone()),
                    (None, _) => Symbolized::Unknown(Reason::NoDebugInfo),
                };
                table.insert((m, address), symbolized);
            }
        }
        Self { modules, table }
    }

    /// What became of the frame at `address` (module-relative lookup address) in `module`.
    pub fn get(&self, module: usize, address: u64) -> Option<&Symbolized> {
        self.table.get(&(module, address))
    }
}

impl faultline_dump::Resolve for ResolvedRecord {
    fn resolve(&mut self, _: &CrashRecord, frame: &Frame) -> Vec<faultline_dump::Frame> {
        let (Some(module), Some(address)) = (frame.module, frame.lookup_address()) else {
            return Vec::new();
        };
        let Some(Symbolized::Frames(frames)) = self.get(module, address) else {
            return Vec::new();
        };
        frames
            .iter()
            .map(|f| faultline_dump::Frame {
                function: f.function.clone().unwrap_or_else(|| Arc::from("??")),
                file: f.file.clone(),
                line: f.line,
                column: f.column.filter(|&c| c > 0),
                offset: None,
                address: Some(frame.address.0),
                inlined: f.inlined,
                provenance: faultline_dump::Provenance::Symbolized,
            })
            .collect()
    }
}

/// Symbolizes the frames of `record` (the crashing thread's) against the debug files found by
/// `locator`, each distinct module opened once.
pub fn symbolize_record(
    record: &CrashRecord,
    locator: &Locator,
    demangle: Demangle,
) -> RecordReport {
    let (report, _) = symbolize_threads(record, locator, demangle);
    report
}

/// [`symbolize_record`], and each task's stack too, as the stack of a thread of its own (the
/// other threads of a native crash): the panic machinery and your own code's first frame are
/// marked per stack. Each module is opened once for all of them.
pub fn symbolize_threads(
    record: &CrashRecord,
    locator: &Locator,
    demangle: Demangle,
) -> (RecordReport, Vec<Vec<FrameReport>>) {
    let (modules, files) = open_modules(record, locator);

    let symbolizers: HashMap<usize, Result<Symbolizer<'_>, Reason>> = files
        .iter()
        .map(|(&i, file)| {
            (
                i,
                file.symbolizer(demangle)
                    .map_err(|e| Reason::CorruptDebugInfo(e.to_chain())),
            )
        })
        .collect();

    let stack = |frames: &[Frame]| -> Vec<FrameReport> {
        let mut out: Vec<FrameReport> = frames
            .iter()
            .map(|frame| {
                let symbolized = match (frame.module, frame.lookup_address()) {
                    (Some(m), Some(addr)) => match (symbolizers.get(&m), &modules[m].debug_file) {
                        (Some(Ok(symbolizer)), _) => symbolizer.symbolize(addr),
                        (Some(Err(reason)), _) | (None, Some(Err(reason))) => {
                            Symbolized::Unknown(reason.clone())
                        }
                        (None, _) => Symbolized::Unknown(Reason::NoDebugInfo),
                    },
                    _ => Symbolized::Unknown(Reason::NotInModule),
                };
                FrameReport {
                    frame: frame.clone(),
                    symbolized,
                    hidden: false,
                    own_code: false,
                }
            })
            .collect();
        mark_machinery(&mut out);
        mark_own_code(&mut out);
        out
    };
    let frames = stack(&record.frames);
    let tasks = record.tasks.iter().map(|t| stack(&t.frames)).collect();
    (RecordReport { modules, frames }, tasks)
}

fn locate_and_open(
    module: &faultline_record::Module,
    locator: &Locator,
) -> Result<(DebugFile, Source), Reason> {
    let Some(build_id) = &module.build_id else {
        return Err(Reason::ModuleWithoutBuildId {
            module: module.path.clone(),
        });
    };
    let binary = Path::new(&module.path);
    let binary = (binary.is_absolute() && binary.exists()).then_some(binary);
    let found = locator.find(build_id, binary)?;
    let mut file =
        DebugFile::open(&found.path).map_err(|e| Reason::CorruptDebugInfo(e.to_chain()))?;
    crate::index::attach(&mut file, locator.index_options());
    Ok((file, found.source))
}

fn functions(report: &FrameReport) -> impl Iterator<Item = &str> {
    let frames = match &report.symbolized {
        Symbolized::Frames(frames) => frames.as_slice(),
        Symbolized::Unknown(_) => &[],
    };
    frames.iter().filter_map(|f| f.function.as_deref())
}

/// Hides what std hides in a short backtrace: everything up to the frame that ends the panic
/// machinery (`__rust_end_short_backtrace`), and everything from the frame that starts the
/// user's code (`__rust_begin_short_backtrace`) on. Without those markers (unknown frames, a
/// non-std runtime) nothing is hidden.
fn mark_machinery(frames: &mut [FrameReport]) {
    let has = |r: &FrameReport, marker: &str| functions(r).any(|f| f.contains(marker));
    if let Some(end) = frames
        .iter()
        .position(|r| has(r, "__rust_end_short_backtrace"))
    {
        for r in &mut frames[..=end] {
            r.hidden = true;
        }
    }
    if let Some(begin) = frames
        .iter()
        .position(|r| has(r, "__rust_begin_short_backtrace"))
    {
        for r in &mut frames[begin..] {
            r.hidden = true;
        }
    }
}

/// Whether a demangled function name belongs to the service rather than std or a runtime: the
/// rule `faultline analyze` applies to task dumps too.
pub fn is_own_code(function: &str) -> bool {
    faultline_dump::is_own_code(faultline_dump::Runtime::Rust, function, None)
}

fn mark_own_code(frames: &mut [FrameReport]) {
    if let Some(first) = frames
        .iter_mut()
        .filter(|r| !r.hidden)
        .find(|r| functions(r).any(is_own_code))
    {
        first.own_code = true;
    }
}

#[cfg(test)]
mod tests {
    use super::is_own_code;

    #[test]
    fn own_code() {
        assert!(is_own_code("faultline_demo::apply_discount"));
        assert!(is_own_code("<myapp::Order as core::fmt::Debug>::fmt"));
        assert!(!is_own_code("core::panicking::panic_fmt"));
        assert!(!is_own_code(
            "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"
        ));
        assert!(!is_own_code("std::rt::lang_start_internal"));
        assert!(!is_own_code("main"));
        assert!(!is_own_code("__libc_start_main"));
        assert!(!is_own_code("tokio::runtime::task::raw::poll"));
    }
}
