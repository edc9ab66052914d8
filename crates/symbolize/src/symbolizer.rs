//! Module-relative addresses to source frames, from one debug file.
//!
//! [`DebugFile`] owns the mapped file (and decompressed copies of compressed sections);
//! [`Symbolizer`] borrows it and keeps addr2line's lazily parsed units. A symbolizer is cheap
//! to make and not shared between threads: [`symbolize_many`] gives each worker thread its own
//! and splits the addresses by range, so each thread parses only the units its range covers.

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
            demangle,
            names: RefCell::default(),
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

    /// Addresses that split the table into `parts` runs of equal symbol count.
    fn split_points(&self, parts: usize) -> Vec<u64> {
        (1..parts)
            .filter_map(|k| {
                self.entries
                    .get(self.entries.len() * k / parts)
                    .map(|e| e.0)
            })
            .collect()
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
    demangle: Demangle,
    /// Demangled names by the address and length of the raw name, which lives in the map.
    names: RefCell<HashMap<(usize, usize), Arc<str>>>,
    /// File paths by the address and length of addr2line's string, which lives in the context.
    files: RefCell<HashMap<(usize, usize), Arc<str>>>,
    has_dwarf: bool,
}

impl std::fmt::Debug for Symbolizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("demangle", &self.demangle)
            .finish_non_exhaustive()
    }
}

impl Symbolizer<'_> {
    /// Frames for one module-relative address, innermost (most deeply inlined) first.
    ///
    /// The address is looked up exactly; for a return address pass `address - 1`.
    pub fn symbolize(&self, probe: u64) -> Symbolized {
        let result = match self.context.find_frames(probe) {
            addr2line::LookupResult::Output(frames) => self.collect(frames),
            addr2line::LookupResult::Load { .. } => {
                let loader = self
                    .split
                    .get_or_init(|| addr2line::Loader::new(self.path).ok().map(Box::new));
                match loader {
                    Some(loader) => self.collect(loader.find_frames(probe)),
                    None => self.collect(self.context.find_frames(probe).skip_all_loads()),
                }
            }
        };
        let mut frames = match result {
            Ok(frames) => frames,
            Err(message) => return Symbolized::Unknown(Reason::CorruptDebugInfo(message)),
        };
        // The outermost frame is a real function, which the symbol table names too. Prefer the
        // symbol table's name, as llvm-symbolizer does: it is the full linkage name even when
        // DWARF has only short names (`-gline-tables-only`), the nearest label inside assembly
        // routines, and the kept name of functions the linker folded together.
        if let Some(name) = self.symbols.find(probe) {
            let function = Some(self.intern_name(name, None, true));
            match frames.last_mut() {
                Some(outer) => outer.function = function,
                None => frames.push(SourceFrame {
                    function,
                    file: None,
                    line: None,
                    column: None,
                    inlined: false,
                }),
            }
        }
        if !frames.is_empty() {
            Symbolized::Frames(frames)
        } else if self.has_dwarf {
            Symbolized::Unknown(Reason::OutsideFunctions)
        } else {
            Symbolized::Unknown(Reason::NoDebugInfo)
        }
    }

    fn collect<'c, R, E>(
        &self,
        frames: Result<addr2line::FrameIter<'c, R>, E>,
    ) -> Result<Vec<SourceFrame>, String>
    where
        R: gimli::Reader + 'c,
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
            let function = match &frame.function {
                Some(name) => {
                    let raw = name.raw_name().map_err(|e| e.to_string())?;
                    let stable = matches!(raw, Cow::Borrowed(_));
                    Some(self.intern_name(&raw, name.language, stable))
                }
                None => None,
            };
            let (file, line, column) = match &frame.location {
                Some(loc) => (loc.file.map(|f| self.intern_file(f)), loc.line, loc.column),
                None => (None, None, None),
            };
            out.push(SourceFrame {
                function,
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

    /// `stable`: `raw` points into the mapped file (not a temporary copy made for lossy UTF-8),
    /// so its address identifies it for as long as the symbolizer lives.
    fn intern_name(&self, raw: &str, language: Option<gimli::DwLang>, stable: bool) -> Arc<str> {
        let key = (raw.as_ptr() as usize, raw.len());
        if stable && let Some(name) = self.names.borrow().get(&key) {
            return name.clone();
        }
        let name: Arc<str> = crate::demangle::demangle(raw, language, self.demangle).into();
        if stable {
            let mut names = self.names.borrow_mut();
            // Bounded: the names worth caching are the few inlined helpers that recur in
            // every other stack; keeping every name seen costs memory for nothing.
            if names.len() >= NAME_CACHE_SIZE {
                names.clear();
            }
            names.insert(key, name.clone());
        }
        name
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

/// Demangled names kept per symbolizer.
const NAME_CACHE_SIZE: usize = 4096;

/// More inlining than any real compiler produces; a loop in corrupt DWARF otherwise.
const MAX_INLINE_DEPTH: usize = 256;

/// Symbolizes `probes` (exact module-relative addresses) against `file`, calling `emit` for each
/// in input order. Uses up to `options.threads` worker threads, each owning the part of the
/// address space it was given, so the work of parsing each unit is done once.
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

    // Split by address at symbol-count quantiles of the probes themselves: each worker sees a
    // contiguous range, so the units (and their line programs) it parses are mostly its own.
    let mut sorted: Vec<u64> = probes.to_vec();
    sorted.sort_unstable();
    let bounds: Vec<u64> = if sorted.is_empty() {
        symbols.split_points(threads)
    } else {
        (1..threads)
            .map(|k| sorted[sorted.len() * k / threads])
            .collect()
    };
    drop(sorted);
    let worker_of = |probe: u64| bounds.partition_point(|&b| b <= probe);

    std::thread::scope(|scope| -> Result<()> {
        let mut to_workers = Vec::with_capacity(threads);
        let (results_tx, results_rx) =
            mpsc::sync_channel::<(usize, Vec<(usize, Symbolized)>)>(threads * 2);
        let mut handles = Vec::with_capacity(threads);
        // Made here, not in the workers, so a bad file fails before any thread waits on another.
        let symbolizers = (0..threads)
            .map(|_| file.symbolizer_with(dwarf.clone(), symbols.clone(), options.demangle))
            .collect::<Result<Vec<_>>>()?;
        for (worker, symbolizer) in symbolizers.into_iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel::<Vec<(usize, u64)>>(2);
            to_workers.push(tx);
            let results_tx = results_tx.clone();
            handles.push(scope.spawn(move || -> Result<()> {
                for mut job in rx {
                    // Ascending order keeps each unit's data hot while it is used.
                    job.sort_unstable_by_key(|&(_, probe)| probe);
                    let out = job
                        .into_iter()
                        .map(|(i, probe)| (i, symbolizer.symbolize(probe)))
                        .collect();
                    if results_tx.send((worker, out)).is_err() {
                        break;
                    }
                }
                Ok(())
            }));
        }
        drop(results_tx);

        let mut result = Ok(());
        'chunks: for (chunk_no, chunk) in probes.chunks(CHUNK).enumerate() {
            let base = chunk_no * CHUNK;
            let mut jobs: Vec<Vec<(usize, u64)>> = vec![Vec::new(); threads];
            for (j, &probe) in chunk.iter().enumerate() {
                jobs[worker_of(probe)].push((base + j, probe));
            }
            let mut expected = 0;
            for (worker, job) in jobs.into_iter().enumerate() {
                if job.is_empty() {
                    continue;
                }
                expected += 1;
                if to_workers[worker].send(job).is_err() {
                    break 'chunks;
                }
            }
            let mut slots: Vec<Option<Symbolized>> = vec![None; chunk.len()];
            for _ in 0..expected {
                let Ok((_, out)) = results_rx.recv() else {
                    break 'chunks;
                };
                for (i, s) in out {
                    slots[i - base] = Some(s);
                }
            }
            for (j, slot) in slots.iter().enumerate() {
                if let Some(s) = slot
                    && let Err(e) = emit(base + j, s)
                {
                    result = Err(io_err(e));
                    break 'chunks;
                }
            }
        }
        drop(to_workers);
        for handle in handles {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        result
    })
}

/// Addresses handed to the workers at a time: bounds memory, keeps output in input order.
const CHUNK: usize = 16 * 1024;
/// Below this many addresses per thread, a second thread costs more than it saves.
const MIN_PROBES_PER_THREAD: usize = 2048;
