//! Module-relative addresses to source frames, from one debug file.
//!
//! [`DebugFile`] owns the mapped file (and decompressed copies of compressed sections);
//! [`Symbolizer`] borrows it and keeps addr2line's lazily parsed units. A symbolizer is cheap
//! to make and not shared between threads. [`symbolize_many`] runs lookups and demangling on
//! different threads, and with more cores splits the lookups by address range, so each thread
//! parses only the units its range covers.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;

use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::elf::{ElfIdentity, identity_of_bytes};
use crate::index::{Damaged, Found, FxMap, SymbolIndex};
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
    /// Decompressed copies of compressed DWARF sections, by section name: made the first time
    /// DWARF is read (an indexed file may never need it).
    decompressed: std::sync::OnceLock<Result<HashMap<&'static str, Vec<u8>>, object::Error>>,
    /// Its symbol index, when one is attached ([`crate::index::attach`]).
    index: Option<Arc<SymbolIndex>>,
}

impl DebugFile {
    /// Maps and checks `path`. A non-ELF file is an error here, not a panic later.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = crate::elf::open_file(path)?;
        // SAFETY: a read-only private map. If the file is truncated while mapped, reads fault;
        // every symbolizer shares that risk, and debug stores are not written in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let identity = identity_of_bytes(&map).map_err(|e| match e {
            Error::Object { source, .. } => Error::Object {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        Ok(Self {
            path: path.to_owned(),
            map,
            identity,
            decompressed: std::sync::OnceLock::new(),
            index: None,
        })
    }

    /// The compressed DWARF sections, decompressed once.
    fn decompressed(&self) -> Result<&HashMap<&'static str, Vec<u8>>> {
        let made = self.decompressed.get_or_init(|| {
            let obj = object::File::parse(&*self.map)?;
            let mut out = HashMap::new();
            for name in dwarf_section_names() {
                let Some(section) = obj.section_by_name(name) else {
                    continue;
                };
                if let Cow::Owned(data) = section.uncompressed_data()? {
                    out.insert(name, data);
                }
            }
            Ok(out)
        });
        made.as_ref().map_err(|&source| Error::Object {
            path: self.path.clone(),
            source,
        })
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    /// Its symbol index, if one is attached.
    pub fn index(&self) -> Option<&SymbolIndex> {
        self.index.as_deref()
    }

    /// Symbolizes through `index` from now on (it must be this file's: [`SymbolIndex::open`]
    /// checks that).
    pub fn set_index(&mut self, index: Arc<SymbolIndex>) {
        self.index = Some(index);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's build-id, debuglink and whether it has DWARF.
    pub fn identity(&self) -> &ElfIdentity {
        &self.identity
    }

    /// A symbolizer over this file: through its index when one is attached, from DWARF
    /// otherwise (and for whatever a damaged index cannot answer).
    pub fn symbolizer(&self, demangle: Demangle) -> Result<Symbolizer<'_>> {
        let dwarf = OnceCell::new();
        if self.index.is_none() {
            let _ = dwarf.set(Ok(self.dwarf_symbolizer(demangle)?));
        }
        Ok(Symbolizer {
            file: self,
            demangle,
            index: self.index.as_deref(),
            damaged: Cell::new(false),
            dwarf,
            functions: RefCell::default(),
            strings: RefCell::default(),
        })
    }

    /// A symbolizer that reads DWARF, whatever index there is.
    pub(crate) fn dwarf_symbolizer(&self, demangle: Demangle) -> Result<DwarfSymbolizer<'_>> {
        let symbols = Arc::new(self.symbol_table()?);
        self.symbolizer_with(Arc::new(self.dwarf()?), symbols, demangle)
    }

    /// Whether the file's first unit is a split-DWARF skeleton (its body in a `.dwo`): such a
    /// file is not indexed, and this says so without reading the rest (a skeleton's units are
    /// made by one `-gsplit-dwarf` build, all or none).
    pub(crate) fn is_split_dwarf(&self) -> bool {
        let Ok(dwarf) = self.dwarf() else {
            return false;
        };
        let mut units = dwarf.units();
        match units.next() {
            Ok(Some(header)) => dwarf.unit(header).is_ok_and(|unit| unit.dwo_id.is_some()),
            _ => false,
        }
    }

    /// Every start and end of a unit, a function and an inlined subroutine: where the
    /// answer of [`DwarfSymbolizer::lookup_into`] can change. A split-DWARF unit (whose inline
    /// trees live in a `.dwo`) or DWARF that cannot be read through is refused.
    pub(crate) fn dwarf_boundaries(&self, out: &mut Vec<u64>) -> Result<(), String> {
        let dwarf = self.dwarf().map_err(|e| e.to_chain())?;
        let bad = |e: gimli::Error| format!("{}: bad DWARF: {e}", self.path.display());
        let mut units = dwarf.units();
        while let Some(header) = units.next().map_err(bad)? {
            let unit = dwarf.unit(header).map_err(bad)?;
            if unit.dwo_id.is_some() {
                return Err("split DWARF (its inline trees are in .dwo files)".into());
            }
            let mut ranges = dwarf.unit_ranges(&unit).map_err(bad)?;
            while let Some(r) = ranges.next().map_err(bad)? {
                out.extend([r.begin, r.end]);
            }
            let mut entries = unit.entries();
            while let Some(entry) = entries.next_dfs().map_err(bad)? {
                if matches!(
                    entry.tag(),
                    gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine
                ) {
                    let mut ranges = dwarf.die_ranges(&unit, entry).map_err(bad)?;
                    while let Some(r) = ranges.next().map_err(bad)? {
                        out.extend([r.begin, r.end]);
                    }
                }
            }
        }
        Ok(())
    }

    /// A symbolizer sharing `dwarf` (with its abbreviations, parsed once) and `symbols` with
    /// the other symbolizers of this file.
    fn symbolizer_with<'a>(
        &'a self,
        dwarf: Arc<gimli::Dwarf<Slice<'a>>>,
        symbols: Arc<SymbolTable<'a>>,
        demangle: Demangle,
    ) -> Result<DwarfSymbolizer<'a>> {
        let context = addr2line::Context::from_arc_dwarf(dwarf).map_err(|source| Error::Dwarf {
            path: self.path.clone(),
            source,
        })?;
        Ok(DwarfSymbolizer {
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
        let decompressed = self.decompressed()?;
        let mut dwarf = gimli::Dwarf::load(|id| -> Result<Slice<'_>, gimli::Error> {
            let name = id.name();
            let data: &[u8] = match decompressed.get(name) {
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
        let section_end = |index: Option<object::SectionIndex>| {
            index
                .and_then(|i| obj.section_by_index(i).ok())
                .map(|s| s.address().saturating_add(s.size()))
        };
        // (start, size, end, name)
        let mut sized: Vec<(u64, u64, u64, &str)> = obj
            .symbols()
            .chain(obj.dynamic_symbols())
            .filter(|s| s.is_definition())
            .filter(|s| match s.kind() {
                SymbolKind::Text => true,
                SymbolKind::Unknown => is_code_section(s.section_index()),
                _ => false,
            })
            .filter_map(|s| {
                let start = s.address();
                // A symbol without a size runs to the next symbol (the lookup takes the
                // nearest), but never past the end of its section: an address beyond the
                // code is nobody's.
                let end = match s.size() {
                    0 => section_end(s.section_index()).unwrap_or(start.saturating_add(1)),
                    size => start.saturating_add(size),
                };
                Some((start, s.size(), end, s.name().ok()?))
            })
            // ARM mapping symbols ($x, $d) mark code and data, they are not names.
            .filter(|(_, _, _, name)| !name.is_empty() && !name.starts_with('$'))
            .collect();
        // Stable: among equals table order is kept, and the last of each address (the largest,
        // then the last in the table) wins.
        sized.sort_by_key(|&(start, size, _, _)| (start, size));
        sized.reverse();
        sized.dedup_by_key(|e| e.0);
        sized.reverse();
        let mut entries: Vec<(u64, u64, &str)> = sized
            .into_iter()
            .map(|(start, _, end, name)| (start, end, name))
            .collect();
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
pub(crate) struct RawFrame<'a> {
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) language: Option<gimli::DwLang>,
    pub(crate) file: Option<Arc<str>>,
    /// [`NONE`] when unknown; kept as plain integers so a chunk's frames stay small.
    pub(crate) line: u32,
    pub(crate) column: u32,
    pub(crate) inlined: bool,
}

/// "Unknown" for [`RawFrame::line`] and [`RawFrame::column`].
const NONE: u32 = u32::MAX;

fn known(value: u32) -> Option<u32> {
    (value != NONE).then_some(value)
}

/// The lookups of one chunk of addresses, with the frames of all of them in one vector: one
/// allocation per chunk rather than one per address.
#[derive(Debug, Default)]
struct Part<'a> {
    frames: Vec<RawFrame<'a>>,
    /// Per address, by input index: where its frames are, or why it has none.
    spans: Vec<(usize, Span)>,
}

#[derive(Debug)]
enum Span {
    Frames { start: u32, len: u32 },
    Unknown(Box<Reason>),
}

/// Turns raw frames into [`Symbolized`] values, demangling names with a bounded cache.
#[derive(Debug)]
struct Demangler {
    style: Demangle,
    /// Demangled names by the address and length of the raw name, which lives in the map. Two
    /// generations: when `recent` is full it becomes `older` and the oldest names are dropped,
    /// so names in use survive and memory stays bounded.
    recent: HashMap<(usize, usize), Arc<str>>,
    older: HashMap<(usize, usize), Arc<str>>,
}

impl Demangler {
    fn new(style: Demangle) -> Self {
        Self {
            style,
            recent: HashMap::new(),
            older: HashMap::new(),
        }
    }

    /// `stable`: `raw` is borrowed from the map, so its address identifies it. A copy (made for
    /// lossy UTF-8 or by the split-DWARF loader) is freed and its address reused: not cached.
    fn name(&mut self, raw: &str, stable: bool, language: Option<gimli::DwLang>) -> Arc<str> {
        if !stable {
            return crate::demangle::demangle(raw, language, self.style).into();
        }
        let key = (raw.as_ptr() as usize, raw.len());
        if let Some(name) = self.recent.get(&key) {
            return name.clone();
        }
        let name = match self.older.remove(&key) {
            Some(name) => name,
            None => crate::demangle::demangle(raw, language, self.style).into(),
        };
        if self.recent.len() >= NAME_CACHE_GENERATION {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(key, name.clone());
        name
    }

    fn frames(&mut self, frames: &[RawFrame<'_>]) -> Symbolized {
        Symbolized::Frames(
            frames
                .iter()
                .map(|f| SourceFrame {
                    function: f
                        .name
                        .as_ref()
                        .map(|name| self.name(name, matches!(name, Cow::Borrowed(_)), f.language)),
                    file: f.file.clone(),
                    line: known(f.line),
                    column: known(f.column),
                    inlined: f.inlined,
                })
                .collect(),
        )
    }

    /// Emits the addresses `base..base + len` in input order from the parts that looked them
    /// up.
    fn emit_parts(
        &mut self,
        base: usize,
        len: usize,
        parts: &[Part<'_>],
        emit: &mut impl FnMut(usize, &Symbolized) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut slots = vec![(u32::MAX, u32::MAX); len];
        for (p, part) in parts.iter().enumerate() {
            for (s, (i, _)) in part.spans.iter().enumerate() {
                slots[i - base] = (p as u32, s as u32);
            }
        }
        for (j, &(p, s)) in slots.iter().enumerate() {
            let Some(part) = parts.get(p as usize) else {
                continue;
            };
            let symbolized = match &part.spans[s as usize].1 {
                Span::Frames { start, len } => {
                    self.frames(&part.frames[*start as usize..(*start + *len) as usize])
                }
                Span::Unknown(reason) => Symbolized::Unknown((**reason).clone()),
            };
            emit(base + j, &symbolized)?;
        }
        Ok(())
    }
}

/// Symbolizes addresses of one debug file: through its index when it has one, from DWARF
/// otherwise. Not `Sync`: make one per thread.
pub struct Symbolizer<'a> {
    file: &'a DebugFile,
    demangle: Demangle,
    index: Option<&'a SymbolIndex>,
    /// The index failed a check: everything is answered from DWARF from now on.
    damaged: Cell<bool>,
    /// Made at once without an index; with one, the first time the index cannot answer.
    dwarf: OnceCell<Result<DwarfSymbolizer<'a>, String>>,
    /// Names and files as shared strings, by their ids in the index.
    functions: RefCell<FxMap<u32, Arc<str>>>,
    strings: RefCell<FxMap<u32, Arc<str>>>,
}

impl std::fmt::Debug for Symbolizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("path", &self.file.path)
            .field("indexed", &self.index.is_some())
            .finish_non_exhaustive()
    }
}

impl Symbolizer<'_> {
    /// Frames for one module-relative address, innermost (most deeply inlined) first.
    ///
    /// The address is looked up exactly; for a return address pass `address - 1`.
    pub fn symbolize(&self, probe: u64) -> Symbolized {
        if let Some(index) = self.index
            && !self.damaged.get()
        {
            match self.through_index(index, probe) {
                Ok(symbolized) => return symbolized,
                Err(Damaged) => {
                    // Never trusted again: answered from DWARF, and removed so that the next
                    // use makes a sound one.
                    self.damaged.set(true);
                    let _ = std::fs::remove_file(index.path());
                }
            }
        }
        let dwarf = self.dwarf.get_or_init(|| {
            self.file
                .dwarf_symbolizer(self.demangle)
                .map_err(|e| e.to_chain())
        });
        match dwarf {
            Ok(dwarf) => dwarf.symbolize(probe),
            Err(message) => Symbolized::Unknown(Reason::CorruptDebugInfo(message.clone())),
        }
    }

    /// Whether the index failed a check while this symbolizer read it (it has been removed,
    /// and the answers came from DWARF).
    pub fn index_damaged(&self) -> bool {
        self.damaged.get()
    }

    fn through_index(&self, index: &SymbolIndex, probe: u64) -> Result<Symbolized, Damaged> {
        let frames = match index.lookup(probe)? {
            Found::Nothing => {
                return Ok(Symbolized::Unknown(if index.has_dwarf() {
                    Reason::OutsideFunctions
                } else {
                    Reason::NoDebugInfo
                }));
            }
            Found::Corrupt(message) => {
                return Ok(Symbolized::Unknown(Reason::CorruptDebugInfo(
                    index.string(message)?.to_owned(),
                )));
            }
            Found::Frames(frames) => frames,
        };
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let function = match f.function {
                NONE => None,
                id => Some(cached(&self.functions, id, || {
                    index.function_name(id, self.demangle)
                })?),
            };
            let file = match f.file {
                NONE => None,
                id => Some(cached(&self.strings, id, || index.string(id))?),
            };
            out.push(SourceFrame {
                function,
                file,
                line: known(f.line),
                column: known(f.column),
                inlined: i + 1 < frames.len(),
            });
        }
        Ok(Symbolized::Frames(out))
    }
}

/// The shared string for `id`, made from `text` the first time.
fn cached<'i>(
    cache: &RefCell<FxMap<u32, Arc<str>>>,
    id: u32,
    text: impl FnOnce() -> Result<&'i str, Damaged>,
) -> Result<Arc<str>, Damaged> {
    if let Some(s) = cache.borrow().get(&id) {
        return Ok(s.clone());
    }
    let s: Arc<str> = text()?.into();
    cache.borrow_mut().insert(id, s.clone());
    Ok(s)
}

/// Symbolizes addresses of one debug file from its DWARF and symbol table.
pub(crate) struct DwarfSymbolizer<'a> {
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

impl std::fmt::Debug for DwarfSymbolizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfSymbolizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<'a> DwarfSymbolizer<'a> {
    /// Frames for one module-relative address, innermost (most deeply inlined) first.
    pub(crate) fn symbolize(&self, probe: u64) -> Symbolized {
        let mut frames = Vec::new();
        match self.lookup_into(probe, &mut frames) {
            Ok(()) => self.demangler.borrow_mut().frames(&frames),
            Err(reason) => Symbolized::Unknown(reason),
        }
    }

    /// Looks up a chunk of `(input index, address)` in ascending address order: neighbouring
    /// addresses share units, line tables and pages, which makes this about twice as fast as
    /// input order on random addresses.
    fn lookup_chunk(&self, mut job: Vec<(usize, u64)>) -> Part<'a> {
        job.sort_unstable_by_key(|&(_, probe)| probe);
        let mut part = Part {
            frames: Vec::with_capacity(job.len() * 2),
            spans: Vec::with_capacity(job.len()),
        };
        for (i, probe) in job {
            let start = part.frames.len();
            let span = match self.lookup_into(probe, &mut part.frames) {
                Ok(()) => Span::Frames {
                    start: start as u32,
                    len: (part.frames.len() - start) as u32,
                },
                Err(reason) => Span::Unknown(Box::new(reason)),
            };
            part.spans.push((i, span));
        }
        part
    }

    /// Appends the frames of `probe` to `out`, or leaves `out` as it was and says why not.
    pub(crate) fn lookup_into(
        &self,
        probe: u64,
        out: &mut Vec<RawFrame<'a>>,
    ) -> Result<(), Reason> {
        let start = out.len();
        let result = match self.context.find_frames(probe) {
            addr2line::LookupResult::Output(frames) => self.collect(frames, borrowed, out),
            addr2line::LookupResult::Load { .. } => {
                let loader = self
                    .split
                    .get_or_init(|| addr2line::Loader::new(self.path).ok().map(Box::new));
                match loader {
                    Some(loader) => self.collect(loader.find_frames(probe), copied, out),
                    None => self.collect(
                        self.context.find_frames(probe).skip_all_loads(),
                        borrowed,
                        out,
                    ),
                }
            }
        };
        if let Err(message) = result {
            out.truncate(start);
            return Err(Reason::CorruptDebugInfo(message));
        }
        // The outermost frame is a real function, which the symbol table names too. Prefer the
        // symbol table's name, as llvm-symbolizer does: it is the full linkage name even when
        // DWARF has only short names (`-gline-tables-only`), the nearest label inside assembly
        // routines, and the kept name of functions the linker folded together.
        if let Some(name) = self.symbols.find(probe) {
            if out.len() > start
                && let Some(outer) = out.last_mut()
            {
                outer.name = Some(Cow::Borrowed(name));
                outer.language = None;
            } else {
                out.push(RawFrame {
                    name: Some(Cow::Borrowed(name)),
                    language: None,
                    file: None,
                    line: NONE,
                    column: NONE,
                    inlined: false,
                });
            }
        }
        if out.len() > start {
            Ok(())
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
        out: &mut Vec<RawFrame<'a>>,
    ) -> Result<(), String>
    where
        R: gimli::Reader,
        E: ToString,
    {
        let mut iter = frames.map_err(|e| e.to_string())?;
        let start = out.len();
        loop {
            let frame = match iter.next() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            };
            let (name, language) = match &frame.function {
                Some(function) => (
                    Some(name_of(&function.name).map_err(|e| e.to_string())?),
                    function.language,
                ),
                None => (None, None),
            };
            let (file, line, column) = match &frame.location {
                Some(loc) => (
                    loc.file.map(|f| self.intern_file(f)),
                    loc.line.unwrap_or(NONE),
                    loc.column.unwrap_or(NONE),
                ),
                None => (None, NONE, NONE),
            };
            out.push(RawFrame {
                name,
                language,
                file,
                line,
                column,
                inlined: true,
            });
            if out.len() - start > MAX_INLINE_DEPTH {
                return Err(format!("more than {MAX_INLINE_DEPTH} inlined frames"));
            }
        }
        // Every frame but the outermost was inlined into the next.
        if out.len() > start
            && let Some(last) = out.last_mut()
        {
            last.inlined = false;
        }
        Ok(())
    }

    /// The symbol table: `(start, end, name)` by start.
    pub(crate) fn symbol_entries(&self) -> &[(u64, u64, &'a str)] {
        &self.symbols.entries
    }

    /// The start and end of every line-table row: where the line of an address can change.
    pub(crate) fn line_boundaries(&self, out: &mut Vec<u64>) -> Result<(), String> {
        let rows = self
            .context
            .find_location_range(0, u64::MAX)
            .map_err(|e| format!("{}: bad line table: {e}", self.path.display()))?;
        for (address, size, _) in rows {
            out.extend([address, address.saturating_add(size)]);
        }
        Ok(())
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

/// Demangled names per cache generation; at most twice this many are kept. Recurring names
/// (inlined helpers, hot functions) are most of the demangling work.
const NAME_CACHE_GENERATION: usize = 2048;

/// More inlining than any real compiler produces; a loop in corrupt DWARF otherwise.
const MAX_INLINE_DEPTH: usize = 256;

/// Whether `count` addresses of `file` are answered through its index. Many addresses reach
/// most of the index: it is checked all at once (one CRC-32 pass), so lookups read without
/// checking; a damaged one is removed, and DWARF answers.
fn through_index(file: &DebugFile, count: usize) -> bool {
    let Some(index) = file.index() else {
        return false;
    };
    if count < CHECK_ALL_AT || index.check_all().is_ok() {
        return true;
    }
    let _ = std::fs::remove_file(index.path());
    false
}

/// [`symbolize_many`] through the index: a binary search and a walk up a chain per address, on
/// the calling thread (the answers' shared strings stay on the thread that made them).
fn symbolize_indexed(
    file: &DebugFile,
    probes: &[u64],
    demangle: Demangle,
    mut emit: impl FnMut(usize, &Symbolized) -> std::io::Result<()>,
) -> Result<()> {
    let symbolizer = file.symbolizer(demangle)?;
    for (i, &probe) in probes.iter().enumerate() {
        emit(i, &symbolizer.symbolize(probe)).map_err(|source| Error::Io {
            path: PathBuf::from("<output>"),
            source,
        })?;
    }
    Ok(())
}

/// Symbolizes `probes` and writes them out: `format` turns each answer into bytes, on any
/// thread; `write` gets the bytes of consecutive addresses, in input order, on the calling
/// thread. Through an index, chunks of addresses go to whichever thread is free (the caller
/// too, while the chunk it must write next is not ready), each formatting its own answers, so
/// that on two cores the whole run takes about half as long; from DWARF it is
/// [`symbolize_many`] with the bytes written chunk by chunk.
pub fn symbolize_to(
    file: &DebugFile,
    probes: &[u64],
    options: &SymbolizeOptions,
    format: impl Fn(&mut Vec<u8>, u64, &Symbolized) -> std::io::Result<()> + Sync,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let io_err = |source| Error::Io {
        path: PathBuf::from("<output>"),
        source,
    };
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let indexed = through_index(file, probes.len());
    if !indexed || threads == 1 || probes.len() < 2 * CHUNK {
        let mut buf = Vec::with_capacity(256 * 1024);
        let options = SymbolizeOptions {
            threads,
            ..*options
        };
        let emit = |i: usize, symbolized: &Symbolized| {
            format(&mut buf, probes[i], symbolized)?;
            if buf.len() >= 128 * 1024 {
                write(&buf)?;
                buf.clear();
            }
            Ok(())
        };
        if indexed {
            symbolize_indexed(file, probes, options.demangle, emit)?;
        } else {
            symbolize_many(file, probes, &options, emit)?;
        }
        return write(&buf).map_err(io_err);
    }
    let chunks: Vec<&[u64]> = probes.chunks(CHUNK).collect();
    let produce = |symbolizer: &Symbolizer<'_>, k: usize| -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(CHUNK * 512);
        for &probe in chunks[k] {
            format(&mut buf, probe, &symbolizer.symbolize(probe))?;
        }
        Ok(buf)
    };
    let states = (0..threads)
        .map(|_| file.symbolizer(options.demangle))
        .collect::<Result<Vec<_>>>()?;
    in_order(states, chunks.len(), produce, |bytes| write(&bytes?)).map_err(io_err)
}

/// Runs `produce(state, k)` for every `k` in `0..n`, each thread with a state of its own (the
/// first is the calling thread's), and `consume`s the results in order on the calling thread,
/// which produces chunks itself while the one it must consume next is not ready. Stops at the
/// first error of `consume`.
fn in_order<S: Send, T: Send, E>(
    mut states: Vec<S>,
    n: usize,
    produce: impl Fn(&S, usize) -> T + Sync,
    mut consume: impl FnMut(T) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(mine) = (!states.is_empty()).then(|| states.remove(0)) else {
        return Ok(());
    };
    let next = AtomicUsize::new(0);
    let claim = || next.fetch_add(1, Ordering::Relaxed);
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<(usize, T)>((states.len() + 1) * IN_FLIGHT);
        for state in states {
            let tx = tx.clone();
            let (claim, produce) = (&claim, &produce);
            scope.spawn(move || {
                loop {
                    let k = claim();
                    if k >= n || tx.send((k, produce(&state, k))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut ready: HashMap<usize, T> = HashMap::new();
        for want in 0..n {
            let part = loop {
                if let Some(part) = ready.remove(&want) {
                    break part;
                }
                while let Ok((k, part)) = rx.try_recv() {
                    ready.insert(k, part);
                }
                if ready.contains_key(&want) {
                    continue;
                }
                let k = claim();
                if k < n {
                    ready.insert(k, produce(&mine, k));
                    continue;
                }
                match rx.recv() {
                    Ok((k, part)) => {
                        ready.insert(k, part);
                    }
                    // Every worker is gone (one panicked): make what is missing here.
                    Err(_) => break produce(&mine, want),
                }
            };
            if let Err(e) = consume(part) {
                // No more chunks for the workers; they stop at their next claim.
                next.store(n, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    })
}

/// Symbolizes `probes` (exact module-relative addresses) against `file`, calling `emit` for each
/// in input order.
///
/// Addresses are looked up a chunk at a time in ascending order (much faster than input order)
/// and emitted in input order. With more than one thread the work is a pipeline: lookup workers
/// (each with its own addr2line context over its own range of addresses, so each unit is parsed
/// once) feed the calling thread, which demangles and emits one chunk while the workers look up
/// the next. On two cores that is one lookup worker and the caller: the memory of one context,
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
    if through_index(file, probes.len()) {
        return symbolize_indexed(file, probes, options.demangle, emit);
    }
    let symbols = Arc::new(file.symbol_table()?);
    let dwarf = Arc::new(file.dwarf()?);
    let job = |chunk_no: usize, chunk: &[u64]| -> Vec<(usize, u64)> {
        let base = chunk_no * CHUNK;
        chunk
            .iter()
            .enumerate()
            .map(|(j, &probe)| (base + j, probe))
            .collect()
    };
    let mut demangler = Demangler::new(options.demangle);
    if threads == 1 {
        let symbolizer = file.symbolizer_with(dwarf, symbols, options.demangle)?;
        for (chunk_no, chunk) in probes.chunks(CHUNK).enumerate() {
            let part = symbolizer.lookup_chunk(job(chunk_no, chunk));
            demangler
                .emit_parts(chunk_no * CHUNK, chunk.len(), &[part], &mut emit)
                .map_err(io_err)?;
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
        let (results_tx, results_rx) = mpsc::sync_channel::<(usize, Part<'_>)>(workers * IN_FLIGHT);
        let mut to_workers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for symbolizer in symbolizers {
            let (tx, rx) = mpsc::sync_channel::<(usize, Vec<(usize, u64)>)>(IN_FLIGHT);
            to_workers.push(tx);
            let results_tx = results_tx.clone();
            handles.push(scope.spawn(move || {
                for (chunk_no, job) in rx {
                    if results_tx
                        .send((chunk_no, symbolizer.lookup_chunk(job)))
                        .is_err()
                    {
                        break;
                    }
                }
            }));
        }
        drop(results_tx);

        struct Pending<'a> {
            parts: Vec<Part<'a>>,
            waiting_for: usize,
            len: usize,
        }
        let send = |chunk_no: usize, chunk: &[u64]| -> Option<Pending<'_>> {
            let mut jobs: Vec<Vec<(usize, u64)>> = vec![Vec::new(); workers];
            for (i, probe) in job(chunk_no, chunk) {
                jobs[worker_of(probe)].push((i, probe));
            }
            let mut waiting_for = 0;
            for (worker, job) in jobs.into_iter().enumerate() {
                if !job.is_empty() {
                    waiting_for += 1;
                    to_workers[worker].send((chunk_no, job)).ok()?;
                }
            }
            Some(Pending {
                parts: Vec::with_capacity(waiting_for),
                waiting_for,
                len: chunk.len(),
            })
        };

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
            if front.waiting_for > 0 {
                let Ok((chunk_no, part)) = results_rx.recv() else {
                    break;
                };
                let Some(p) = pending.get_mut(chunk_no - first_pending) else {
                    break;
                };
                p.parts.push(part);
                p.waiting_for -= 1;
                continue;
            }
            let Some(done) = pending.pop_front() else {
                break;
            };
            let base = first_pending * CHUNK;
            first_pending += 1;
            if let Err(e) = demangler.emit_parts(base, done.len, &done.parts, &mut emit) {
                result = Err(io_err(e));
                break;
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

/// Addresses looked up at a time: large enough that ascending order pays, small enough that the
/// frames held back to restore input order stay a few megabytes.
const CHUNK: usize = 4096;
/// From this many addresses on, an index is checked whole before the lookups.
const CHECK_ALL_AT: usize = 4096;
/// Chunks at the workers at once: one being looked up while the caller emits another.
const IN_FLIGHT: usize = 2;
/// Below this many addresses per thread, a second thread costs more than it saves.
const MIN_PROBES_PER_THREAD: usize = 2048;
