//! Module-relative addresses to source frames, from one debug file.
//!
//! [`DebugFile`] owns the mapped file (and decompressed copies of compressed sections);
//! [`Symbolizer`] borrows it and keeps addr2line's lazily parsed units. A symbolizer is cheap
//! to make and not shared between threads. [`symbolize_many`] runs lookups and demangling on
//! different threads, and with more cores splits the lookups by address range, so each thread
//! parses only the units its range covers.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::elf::{ElfIdentity, identity_of_bytes};
use crate::{Error, Reason, Result, SourceFrame, Symbolized};

type Slice<'a> = EndianSlice<'a, RunTimeEndian>;

/// How function names are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Demangle {
    /// As stored in the file (`_ZN4core9panicking9panic_fmt17h…E`).
    Off,
    /// Demangled, keeping the Rust legacy hash (`core::panicking::panic_fmt::h…`), as
    /// llvm-symbolizer and binutils print them.
    #[default]
    Full,
    /// Demangled without the Rust hash (`core::panicking::panic_fmt`), for people.
    Short,
}

/// Options for symbolization.
#[derive(Debug, Clone, Copy)]
pub struct SymbolizeOptions {
    /// Name style.
    pub demangle: Demangle,
    /// Worker threads for [`symbolize_many`]; 0 means one per available core.
    pub threads: usize,
}

impl Default for SymbolizeOptions {
    fn default() -> Self {
        Self {
            demangle: Demangle::Full,
            threads: 0,
        }
    }
}

/// A debug file (or unstripped binary), mapped and ready to symbolize against.
#[derive(Debug)]
pub struct DebugFile {
    path: PathBuf,
    map: memmap2::Mmap,
    identity: ElfIdentity,
    /// Decompressed copies of compressed DWARF sections, by section name.
    decompressed: HashMap<&'static str, Vec<u8>>,
}

impl DebugFile {
    /// Maps and checks `path`. A corrupt or non-ELF file is an error here, not a panic later.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: a read-only private map. If the file is truncated while mapped, reads fault;
        // every symbolizer shares that risk, and debug stores are not written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let obj_err = |source| Error::Object {
            path: path.to_owned(),
            source,
        };
        let identity = identity_of_bytes(&map).map_err(|e| match e {
            Error::Object { source, .. } => obj_err(source),
            other => other,
        })?;
        let obj = object::File::parse(&*map).map_err(obj_err)?;
        let mut decompressed = HashMap::new();
        for name in dwarf_section_names() {
            let Some(section) = obj.section_by_name(name) else {
                continue;
            };
            if let Cow::Owned(data) = section.uncompressed_data().map_err(obj_err)? {
                decompressed.insert(name, data);
            }
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            identity,
            decompressed,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's build-id, debuglink and whether it has DWARF.
    pub fn identity(&self) -> &ElfIdentity {
        &self.identity
    }

    /// A symbolizer over this file.
    pub fn symbolizer(&self, demangle: Demangle) -> Result<Symbolizer<'_>> {
        let symbols = Arc::new(self.symbol_table()?);
        self.symbolizer_with(Arc::new(self.dwarf()?), symbols, demangle)
    }

    /// A symbolizer sharing `dwarf` (with its abbreviations, parsed once) and `symbols` with
    /// the other symbolizers of this file.
    fn symbolizer_with<'a>(
        &'a self,
        dwarf: Arc<gimli::Dwarf<Slice<'a>>>,
        symbols: Arc<SymbolTable<'a>>,
        demangle: Demangle,
    ) -> Result<Symbolizer<'a>> {
        let context = addr2line::Context::from_arc_dwarf(dwarf).map_err(|source| Error::Dwarf {
            path: self.path.clone(),
            source,
        })?;
        Ok(Symbolizer {
            context: Box::new(context),
            split: OnceCell::new(),
            path: &self.path,
            symbols,
            demangler: RefCell::new(Demangler::new(demangle)),
            files: RefCell::default(),
            has_dwarf: self.identity.has_dwarf,
        })
    }

    fn object(&self) -> Result<object::File<'_>> {
        object::File::parse(&*self.map).map_err(|source| Error::Object {
            path: self.path.clone(),
            source,
        })
    }

    fn dwarf(&self) -> Result<gimli::Dwarf<Slice<'_>>> {
        let obj = self.object()?;
        let endian = if obj.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let mut dwarf = gimli::Dwarf::load(|id| -> Result<Slice<'_>, gimli::Error> {
            let name = id.name();
            let data: &[u8] = match self.decompressed.get(name) {
                Some(owned) => owned,
                None => obj
                    .section_by_name(name)
                    .and_then(|s| s.data().ok())
                    .unwrap_or(&[]),
            };
            Ok(EndianSlice::new(data, endian))
        })
        .map_err(|source| Error::Dwarf {
            path: self.path.clone(),
            source,
        })?;
        // Parse every abbreviation table once, here. Each addr2line context would otherwise
        // parse its own copy of every unit's table when it is made: with one context per
        // worker thread that doubled the memory they take (18 MB on a 90 MB debug file).
        dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::All);
        Ok(dwarf)
    }

    /// Code symbols with their extents, for addresses DWARF does not cover.
    ///
    /// Chosen the way llvm-symbolizer chooses, so the two agree where DWARF is silent:
    /// functions and untyped labels in executable sections (assembly routines often have only
    /// labels); of several symbols at one address the largest, and of equal sizes the last in
    /// the table; a symbol without a size extends to the next one.
    fn symbol_table(&self) -> Result<SymbolTable<'_>> {
        let obj = self.object()?;
        let is_code_section = |index: Option<object::SectionIndex>| {
            index
                .and_then(|i| obj.section_by_index(i).ok())
                .is_some_and(|s| s.kind() == object::SectionKind::Text)
        };
        let mut entries: Vec<(u64, u64, &str)> = obj
            .symbols()
            .chain(obj.dynamic_symbols())
            .filter(|s| s.is_definition())
            .filter(|s| match s.kind() {
                SymbolKind::Text => true,
                SymbolKind::Unknown => is_code_section(s.section_index()),
                _ => false,
            })
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?)))
            // ARM mapping symbols ($x, $d) mark code and data, they are not names.
            .filter(|(_, _, name)| !name.is_empty() && !name.starts_with('$'))
            .collect();
        // Stable: among equals table order is kept, and the last of each address wins.
        entries.sort_by_key(|&(addr, size, _)| (addr, size));
        entries.reverse();
        entries.dedup_by_key(|e| e.0);
        entries.reverse();
        // From here on the middle field is the end address, not the size.
        for e in &mut entries {
            e.1 = if e.1 > 0 {
                e.0.saturating_add(e.1)
            } else {
                u64::MAX
            };
        }
        entries.shrink_to_fit();
        Ok(SymbolTable { entries })
    }
}

fn dwarf_section_names() -> impl Iterator<Item = &'static str> {
    use gimli::SectionId::*;
    [
        DebugAbbrev,
        DebugAddr,
        DebugAranges,
        DebugInfo,
        DebugLine,
        DebugLineStr,
        DebugLoc,
        DebugLocLists,
        DebugRanges,
        DebugRngLists,
        DebugStr,
        DebugStrOffsets,
        DebugTypes,
    ]
    .into_iter()
    .map(|id| id.name())
}

/// Code symbols as `(start, end, name)`, sorted by start; one per start address.
#[derive(Debug)]
struct SymbolTable<'a> {
    entries: Vec<(u64, u64, &'a str)>,
}

impl<'a> SymbolTable<'a> {
    fn find(&self, probe: u64) -> Option<&'a str> {
        let i = self.entries.partition_point(|e| e.0 <= probe);
        let &(start, end, name) = self.entries.get(i.checked_sub(1)?)?;
        (probe >= start && probe < end).then_some(name)
    }
}

/// A frame as found, before its name is demangled. Borrowed names point into the mapped file,
/// so raw frames can cross threads and be demangled elsewhere.
#[derive(Debug, Clone)]
struct RawFrame<'a> {
    name: Option<(Cow<'a, str>, Option<gimli::DwLang>)>,
    file: Option<Arc<str>>,
    line: Option<u32>,
    column: Option<u32>,
    inlined: bool,
}

/// What a lookup found: frames innermost first, or why there are none.
type Raw<'a> = Result<Vec<RawFrame<'a>>, Reason>;

/// Turns raw frames into [`Symbolized`] values, demangling names with a bounded cache.
#[derive(Debug)]
struct Demangler {
    style: Demangle,
    /// Demangled names by the address and length of the raw name, which lives in the map.
    cache: HashMap<(usize, usize), Arc<str>>,
}

impl Demangler {
    fn new(style: Demangle) -> Self {
        Self {
            style,
            cache: HashMap::new(),
        }
    }

    fn name(&mut self, raw: Cow<'_, str>, language: Option<gimli::DwLang>) -> Arc<str> {
        // Only names borrowed from the map have an address that identifies them; a copy made
        // for lossy UTF-8 is freed and its address reused.
        let text = match raw {
            Cow::Borrowed(text) => text,
            Cow::Owned(copy) => {
                return crate::demangle::demangle(&copy, language, self.style).into();
            }
        };
        let key = (text.as_ptr() as usize, text.len());
        if let Some(name) = self.cache.get(&key) {
            return name.clone();
        }
        // Bounded: the names worth caching are the few inlined helpers that recur in every
        // other stack; keeping every name seen costs memory for nothing.
        if self.cache.len() >= NAME_CACHE_SIZE {
            self.cache.clear();
        }
        let name: Arc<str> = crate::demangle::demangle(text, language, self.style).into();
        self.cache.insert(key, name.clone());
        name
    }

    fn finish(&mut self, raw: Raw<'_>) -> Symbolized {
        match raw {
            Ok(frames) => Symbolized::Frames(
                frames
                    .into_iter()
                    .map(|f| SourceFrame {
                        function: f.name.map(|(name, language)| self.name(name, language)),
                        file: f.file,
                        line: f.line,
                        column: f.column,
                        inlined: f.inlined,
                    })
                    .collect(),
            ),
            Err(reason) => Symbolized::Unknown(reason),
        }
    }
}

/// Symbolizes addresses of one debug file. Not `Sync`: make one per thread.
pub struct Symbolizer<'a> {
    context: Box<addr2line::Context<Slice<'a>>>,
    /// addr2line's loader, made the first time a unit turns out to be a split-DWARF skeleton
    /// whose body lives in a `.dwo` or `.dwp` file: it knows where those are. `None` inside:
    /// the loader could not be made.
    split: OnceCell<Option<Box<addr2line::Loader>>>,
    path: &'a Path,
    symbols: Arc<SymbolTable<'a>>,
    demangler: RefCell<Demangler>,
    /// File paths by the address and length of addr2line's string, which lives in the context.
    files: RefCell<HashMap<(usize, usize), Arc<str>>>,
    has_dwarf: bool,
}

impl std::fmt::Debug for Symbolizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<'a> Symbolizer<'a> {
    /// Frames for one module-relative address, innermost (most deeply inlined) first.
    ///
    /// The address is looked up exactly; for a return address pass `address - 1`.
    pub fn symbolize(&self, probe: u64) -> Symbolized {
        let raw = self.lookup(probe);
        self.demangler.borrow_mut().finish(raw)
    }

    fn lookup(&self, probe: u64) -> Raw<'a> {
        let result = match self.context.find_frames(probe) {
            addr2line::LookupResult::Output(frames) => self.collect(frames, borrowed),
            addr2line::LookupResult::Load { .. } => {
                let loader = self
                    .split
                    .get_or_init(|| addr2line::Loader::new(self.path).ok().map(Box::new));
                match loader {
                    Some(loader) => self.collect(loader.find_frames(probe), copied),
                    None => {
                        self.collect(self.context.find_frames(probe).skip_all_loads(), borrowed)
                    }
                }
            }
        };
        let mut frames = result.map_err(Reason::CorruptDebugInfo)?;
        // The outermost frame is a real function, which the symbol table names too. Prefer the
        // symbol table's name, as llvm-symbolizer does: it is the full linkage name even when
        // DWARF has only short names (`-gline-tables-only`), the nearest label inside assembly
        // routines, and the kept name of functions the linker folded together.
        if let Some(name) = self.symbols.find(probe) {
            let name = Some((Cow::Borrowed(name), None));
            match frames.last_mut() {
                Some(outer) => outer.name = name,
                None => frames.push(RawFrame {
                    name,
                    file: None,
                    line: None,
                    column: None,
                    inlined: false,
                }),
            }
        }
        if !frames.is_empty() {
            Ok(frames)
        } else if self.has_dwarf {
            Err(Reason::OutsideFunctions)
        } else {
            Err(Reason::NoDebugInfo)
        }
    }

    fn collect<R, E>(
        &self,
        frames: Result<addr2line::FrameIter<'_, R>, E>,
        name_of: impl Fn(&R) -> Result<Cow<'a, str>, gimli::Error>,
    ) -> Result<Vec<RawFrame<'a>>, String>
    where
        R: gimli::Reader,
        E: ToString,
    {
        let mut iter = frames.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        loop {
            let frame = match iter.next() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            };
            let name = match &frame.function {
                Some(function) => Some((
                    name_of(&function.name).map_err(|e| e.to_string())?,
                    function.language,
                )),
                None => None,
            };
            let (file, line, column) = match &frame.location {
                Some(loc) => (loc.file.map(|f| self.intern_file(f)), loc.line, loc.column),
                None => (None, None, None),
            };
            out.push(RawFrame {
                name,
                file,
                line,
                column,
                inlined: true,
            });
            if out.len() > MAX_INLINE_DEPTH {
                return Err(format!("more than {MAX_INLINE_DEPTH} inlined frames"));
            }
        }
        // Every frame but the outermost was inlined into the next.
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        Ok(out)
    }

    fn intern_file(&self, file: &str) -> Arc<str> {
        let key = (file.as_ptr() as usize, file.len());
        self.files
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| file.into())
            .clone()
    }
}

/// A name from our own context: borrowed from the mapped file for as long as it lives.
fn borrowed<'a>(name: &Slice<'a>) -> Result<Cow<'a, str>, gimli::Error> {
    Ok(name.to_string_lossy())
}

/// A name from addr2line's loader (split DWARF), whose data we do not own: copied.
fn copied<'a, R: gimli::Reader>(name: &R) -> Result<Cow<'a, str>, gimli::Error> {
    Ok(Cow::Owned(name.to_string_lossy()?.into_owned()))
}

/// Demangled names kept per symbolizer.
const NAME_CACHE_SIZE: usize = 65536;

/// More inlining than any real compiler produces; a loop in corrupt DWARF otherwise.
const MAX_INLINE_DEPTH: usize = 256;

/// Symbolizes `probes` (exact module-relative addresses) against `file`, calling `emit` for each
/// in input order.
///
/// With more than one thread, the work is a pipeline: lookup workers (each with its own
/// addr2line context, over its own range of addresses, so each unit is parsed once) feed the
/// calling thread, which demangles names and emits results while the workers look up the next
/// chunk. On two cores that is one lookup worker and the caller: the memory of one context,
/// the speed of two cores.
pub fn symbolize_many(
    file: &DebugFile,
    probes: &[u64],
    options: &SymbolizeOptions,
    mut emit: impl FnMut(usize, &Symbolized) -> std::io::Result<()>,
) -> Result<()> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(probes.len() / MIN_PROBES_PER_THREAD)
    .max(1);
    let io_err = |source| Error::Io {
        path: PathBuf::from("<output>"),
        source,
    };
    let symbols = Arc::new(file.symbol_table()?);
    let dwarf = Arc::new(file.dwarf()?);
    if threads == 1 {
        let symbolizer = file.symbolizer_with(dwarf, symbols, options.demangle)?;
        for (i, &probe) in probes.iter().enumerate() {
            emit(i, &symbolizer.symbolize(probe)).map_err(io_err)?;
        }
        return Ok(());
    }
    let workers = threads - 1;

    // Split by address at quantiles of the probes themselves: each worker sees a contiguous
    // range, so the units (and their line programs) it parses are mostly its own.
    let bounds: Vec<u64> = if workers == 1 {
        Vec::new()
    } else {
        let mut sorted: Vec<u64> = probes.to_vec();
        sorted.sort_unstable();
        (1..workers)
            .map(|k| sorted[sorted.len() * k / workers])
            .collect()
    };
    let worker_of = |probe: u64| bounds.partition_point(|&b| b <= probe);

    // Made here, not in the workers, so a bad file fails before any thread waits on another.
    let symbolizers = (0..workers)
        .map(|_| file.symbolizer_with(dwarf.clone(), symbols.clone(), options.demangle))
        .collect::<Result<Vec<_>>>()?;

    std::thread::scope(|scope| -> Result<()> {
        type Job = (usize, Vec<(usize, u64)>);
        let (results_tx, results_rx) =
            mpsc::sync_channel::<(usize, Vec<(usize, Raw<'_>)>)>(workers * IN_FLIGHT);
        let mut to_workers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for symbolizer in symbolizers {
            let (tx, rx) = mpsc::sync_channel::<Job>(IN_FLIGHT);
            to_workers.push(tx);
            let results_tx = results_tx.clone();
            handles.push(scope.spawn(move || {
                for (chunk_no, mut job) in rx {
                    // Ascending order keeps each unit's data hot while it is used.
                    job.sort_unstable_by_key(|&(_, probe)| probe);
                    let out = job
                        .into_iter()
                        .map(|(i, probe)| (i, symbolizer.lookup(probe)))
                        .collect();
                    if results_tx.send((chunk_no, out)).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(results_tx);

        struct Pending<'a> {
            base: usize,
            slots: Vec<Option<Raw<'a>>>,
            parts: usize,
        }
        let send = |chunk_no: usize, chunk: &[u64]| -> Option<Pending<'_>> {
            let base = chunk_no * CHUNK;
            let mut jobs: Vec<Vec<(usize, u64)>> = vec![Vec::new(); workers];
            for (j, &probe) in chunk.iter().enumerate() {
                jobs[worker_of(probe)].push((base + j, probe));
            }
            let mut parts = 0;
            for (worker, job) in jobs.into_iter().enumerate() {
                if !job.is_empty() {
                    parts += 1;
                    to_workers[worker].send((chunk_no, job)).ok()?;
                }
            }
            Some(Pending {
                base,
                slots: (0..chunk.len()).map(|_| None).collect(),
                parts,
            })
        };

        let mut demangler = Demangler::new(options.demangle);
        let mut chunks = probes.chunks(CHUNK).enumerate();
        let mut pending = std::collections::VecDeque::new();
        let mut first_pending = 0;
        let mut result = Ok(());
        'run: loop {
            // Keep IN_FLIGHT chunks at the workers, so they look up while we demangle.
            while pending.len() < IN_FLIGHT {
                let Some((chunk_no, chunk)) = chunks.next() else {
                    break;
                };
                match send(chunk_no, chunk) {
                    Some(p) => pending.push_back(p),
                    None => break 'run,
                }
            }
            let Some(front) = pending.front() else {
                break;
            };
            if front.parts > 0 {
                let Ok((chunk_no, out)) = results_rx.recv() else {
                    break;
                };
                let Some(p) = pending.get_mut(chunk_no - first_pending) else {
                    break;
                };
                for (i, raw) in out {
                    p.slots[i - p.base] = Some(raw);
                }
                p.parts -= 1;
                continue;
            }
            let Some(done) = pending.pop_front() else {
                break;
            };
            first_pending += 1;
            for (j, raw) in done.slots.into_iter().enumerate() {
                let Some(raw) = raw else { continue };
                if let Err(e) = emit(done.base + j, &demangler.finish(raw)) {
                    result = Err(io_err(e));
                    break 'run;
                }
            }
        }
        drop(to_workers);
        drop(results_rx);
        for handle in handles {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        result
    })
}

/// Addresses handed to the workers at a time: bounds memory, keeps output in input order.
const CHUNK: usize = 2048;
/// Chunks at the workers at once: one being looked up while the caller emits another.
const IN_FLIGHT: usize = 2;
/// Below this many addresses per thread, a second thread costs more than it saves.
const MIN_PROBES_PER_THREAD: usize = 2048;
