//! The symbol index: every answer a debug file gives, worked out once per build-id and read
//! back by mapping a file.
//!
//! Symbolizing from DWARF means parsing units, line programs and inline trees each time a
//! process starts. The index is the result of all that, laid out for lookup: the address space
//! cut into ranges over which the answer cannot change, each range pointing at its innermost
//! frame, each frame at the one it was inlined into, every name already demangled in the three
//! styles [`Demangle`] offers. A lookup is a binary search and a walk up a short chain.
//!
//! # How it is made
//!
//! The answer for an address depends only on which symbol, which unit, which function, which
//! inlined subroutines and which line-table row cover it. Every start and end of each of those
//! is a boundary; between two neighbouring boundaries nothing changes. The builder collects them
//! all (symbol table, unit ranges, the ranges of every `DW_TAG_subprogram` and
//! `DW_TAG_inlined_subroutine`, every line row), asks the DWARF symbolizer once per boundary —
//! the same code that answers without the index — and keeps what it said. So the index gives
//! the DWARF symbolizer's answers by construction: it is a cache of them, not a second reader.
//! A file with split DWARF (`.dwo`, `.dwp`) is not indexed: its inline trees live elsewhere.
//!
//! # The file (version 2, little-endian)
//!
//! | at | what |
//! |---|---|
//! | 0 | header, [`HEADER_LEN`] bytes: magic `FLTSYMIX`, version, flags (DWARF, 64-bit starts), total length, the source file's size, counts and offsets of the tables below, the build-id, a CRC-32 of the header |
//! | 256 | a CRC-32 per 4 KiB block of the body, then a CRC-32 of that table |
//! | body | `starts` (range starts, 4 or 8 bytes each, ascending), `leaves` (a frame per range), `frames` (function, file, line, column, the frame it is inlined into), `functions` (the name as stored, demangled, demangled short: string ids), `string offsets` (4 bytes, one more than strings), string bytes |
//!
//! `leaves`, `frames` and `functions` are bit-packed: each field as wide as its largest value
//! needs (the widths are in the header), a value of all ones meaning "none". On a Go binary,
//! whose DWARF is compressed, that halves the index.
//!
//! Nothing read from an index is trusted: the header and block table are checked when it is
//! opened (and the source's build-id, size and DWARF against the file being symbolized), and each
//! 4 KiB block of the body (a page: what a lookup reads anyway) is checked against its CRC the
//! first time a lookup touches it. A damaged block makes the lookup fail with [`Damaged`]; the
//! caller then answers from DWARF. A run over many addresses checks every block at once first
//! ([`SymbolIndex::check_all`]).
//!
//! Version 1 had 64 KiB blocks: one address as a whole process spent a tenth of its time on
//! their checksums.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::elf::ElfIdentity;
use crate::symbolizer::{DebugFile, Demangle, RawFrame};
use crate::{BuildId, Reason};

/// The first bytes of every index.
pub const MAGIC: &[u8; 8] = b"FLTSYMIX";
/// The format version this code writes and reads.
pub const VERSION: u32 = 2;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 256;
/// Bytes of body per checksum: a page.
const BLOCK: usize = 4096;
/// The file an index of a debug file in a `.build-id/` store has beside it, after its name.
pub const STORE_SUFFIX: &str = ".faultline-index";
/// The file an index has in a build-id's cache entry (`{cache}/{hex}/`).
pub const CACHE_NAME: &str = "faultline-index";

const F_DWARF: u32 = 1;
const F_WIDE: u32 = 2;
/// "None" for ids, lines and columns.
const NONE: u32 = u32::MAX;
/// A frame whose `function` is this carries a corrupt-DWARF message in `file`.
const CORRUPT: u32 = u32::MAX - 1;
/// Bytes after each packed table, so a field near its end is read with one 8-byte load.
const PAD: usize = 8;
/// Header field offsets.
mod at {
    pub const VERSION: usize = 8;
    pub const FLAGS: usize = 12;
    pub const TOTAL: usize = 16;
    pub const SOURCE_SIZE: usize = 24;
    pub const RANGES: usize = 32;
    pub const FRAMES: usize = 40;
    pub const FUNCTIONS: usize = 44;
    pub const STRINGS: usize = 48;
    pub const BLOCKS: usize = 52;
    pub const STARTS_OFF: usize = 56;
    pub const LEAVES_OFF: usize = 64;
    pub const FRAMES_OFF: usize = 72;
    pub const FUNCTIONS_OFF: usize = 80;
    pub const STR_OFFSETS_OFF: usize = 88;
    pub const STR_DATA_OFF: usize = 96;
    pub const BODY_OFF: usize = 104;
    pub const BUILD_ID_LEN: usize = 112;
    pub const BUILD_ID: usize = 116;
    pub const BUILD_ID_MAX: usize = 64;
    /// Bit widths: a frame's function, file, line, column and the frame it is inlined into
    /// (also a range's leaf), then a string id (a function's names).
    pub const WIDTHS: usize = 180;
    pub const HEADER_CRC: usize = super::HEADER_LEN - 4;
}

/// Why a file cannot be indexed, or an index not made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The debug file cannot be indexed: the reason says why (split DWARF, DWARF that cannot be
    /// read through). Symbolization from DWARF still works as well as it can.
    #[error("not indexable: {0}")]
    NotIndexable(String),
    /// The index file is not a valid index of this debug file: the reason says what is wrong.
    #[error("{}: {why}", path.display())]
    Invalid {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The index file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// A block of an index failed its checksum (or a record pointed outside its table) while
/// being read: the index is damaged and must not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged;

/// Where the index of a debug file lives: beside it in a `.build-id/` store
/// (`.build-id/ab/cdef….faultline-index`), otherwise in the build-id's entry of the cache
/// directory (`{cache}/{hex}/faultline-index`, the debuginfod cache's layout).
pub fn index_path(debug_file: &Path, build_id: &BuildId, cache_dir: &Path) -> PathBuf {
    let in_store = debug_file
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|n| n == ".build-id");
    if in_store && let Some(name) = debug_file.file_name().and_then(|n| n.to_str()) {
        let stem = name.strip_suffix(".debug").unwrap_or(name);
        return debug_file.with_file_name(format!("{stem}{STORE_SUFFIX}"));
    }
    cache_dir.join(build_id.to_hex()).join(CACHE_NAME)
}

/// What a lookup in the index found, before names are turned into text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Frames, innermost first, as ids into the index's tables.
    Frames(Vec<FrameIds>),
    /// No frames: [`Reason::OutsideFunctions`] or [`Reason::NoDebugInfo`] (by the file).
    Nothing,
    /// The DWARF at this address could not be read; the message is a string id.
    Corrupt(u32),
}

/// One frame as the index stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameIds {
    /// Function record, or [`NONE`].
    pub(crate) function: u32,
    /// String id of the file, or [`NONE`].
    pub(crate) file: u32,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// An index, mapped and checked as far as its header goes.
#[derive(Debug)]
pub struct SymbolIndex {
    path: PathBuf,
    map: memmap2::Mmap,
    flags: u32,
    ranges: u64,
    frames: u32,
    functions: u32,
    strings: u32,
    starts_off: u64,
    leaves_off: u64,
    frames_off: u64,
    functions_off: u64,
    str_offsets_off: u64,
    str_data_off: u64,
    body_off: u64,
    /// Bit widths of a frame's fields, then of a string id.
    widths: Widths,
    /// The CRC of each body block.
    block_crcs: Vec<u32>,
    /// Blocks whose CRC has been checked, a bit each.
    checked: Vec<AtomicU64>,
    /// Every block has been checked ([`SymbolIndex::check_all`]): reads skip the bitmap.
    all_checked: std::sync::atomic::AtomicBool,
}

/// Bit widths of the packed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Widths {
    function: u32,
    file: u32,
    line: u32,
    column: u32,
    frame: u32,
    string: u32,
}

impl Widths {
    fn frame_bits(&self) -> u64 {
        u64::from(self.function + self.file + self.line + self.column + self.frame)
    }

    fn all(&self) -> [u32; 6] {
        [
            self.function,
            self.file,
            self.line,
            self.column,
            self.frame,
            self.string,
        ]
    }
}

/// Bits to hold every value up to `max`, and the two markers above it.
fn width_for(max: u32) -> u32 {
    (64 - (u64::from(max) + 2).leading_zeros()).max(1)
}

/// All ones in `width` bits: "none".
fn ones(width: u32) -> u64 {
    (1u64 << width) - 1
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl SymbolIndex {
    /// Maps `path` and checks it is an index of a file with `identity` and `size` bytes: magic,
    /// version, header and block-table checksums, length, layout. The body's blocks are checked
    /// as lookups reach them.
    pub fn open(path: &Path, identity: &ElfIdentity, size: u64) -> Result<Self, IndexError> {
        let invalid = |why: &str| IndexError::Invalid {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let file = fs::File::open(path).map_err(|e| IndexError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // SAFETY: a read-only private map of a file that is only ever replaced by rename,
        // never written in place; every byte used is checked against a CRC before use.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let h: &[u8] = &map;
        if h.len() < HEADER_LEN || &h[..8] != MAGIC {
            return Err(invalid("not a faultline symbol index"));
        }
        let version = u32_at(h, at::VERSION);
        if version != VERSION {
            return Err(invalid(&format!(
                "index version {version}, this faultline reads {VERSION}"
            )));
        }
        if crc32fast::hash(&h[..at::HEADER_CRC]) != u32_at(h, at::HEADER_CRC) {
            return Err(invalid("the header fails its checksum"));
        }
        if u64_at(h, at::TOTAL) != h.len() as u64 {
            return Err(invalid(&format!(
                "{} bytes, its header says {}: cut short or appended to",
                h.len(),
                u64_at(h, at::TOTAL)
            )));
        }
        let id_len = (u32_at(h, at::BUILD_ID_LEN) as usize).min(at::BUILD_ID_MAX);
        let id = &h[at::BUILD_ID..at::BUILD_ID + id_len];
        if identity.build_id.as_ref().map(BuildId::as_bytes) != Some(id) {
            return Err(invalid("made for another build-id"));
        }
        let flags = u32_at(h, at::FLAGS);
        if (flags & F_DWARF != 0) != identity.has_dwarf || u64_at(h, at::SOURCE_SIZE) != size {
            return Err(invalid(
                "made from another file of this build-id (its size or DWARF differ)",
            ));
        }
        let blocks = u32_at(h, at::BLOCKS) as usize;
        let table_end = HEADER_LEN + 4 * blocks + 4;
        if table_end > h.len() {
            return Err(invalid("its block table runs past its end"));
        }
        let table = &h[HEADER_LEN..HEADER_LEN + 4 * blocks];
        if crc32fast::hash(table) != u32_at(h, HEADER_LEN + 4 * blocks) {
            return Err(invalid("its block table fails its checksum"));
        }
        let index = Self {
            path: path.to_owned(),
            flags,
            ranges: u64_at(h, at::RANGES),
            frames: u32_at(h, at::FRAMES),
            functions: u32_at(h, at::FUNCTIONS),
            strings: u32_at(h, at::STRINGS),
            starts_off: u64_at(h, at::STARTS_OFF),
            leaves_off: u64_at(h, at::LEAVES_OFF),
            frames_off: u64_at(h, at::FRAMES_OFF),
            functions_off: u64_at(h, at::FUNCTIONS_OFF),
            str_offsets_off: u64_at(h, at::STR_OFFSETS_OFF),
            str_data_off: u64_at(h, at::STR_DATA_OFF),
            body_off: u64_at(h, at::BODY_OFF),
            widths: Widths {
                function: u32::from(h[at::WIDTHS]),
                file: u32::from(h[at::WIDTHS + 1]),
                line: u32::from(h[at::WIDTHS + 2]),
                column: u32::from(h[at::WIDTHS + 3]),
                frame: u32::from(h[at::WIDTHS + 4]),
                string: u32::from(h[at::WIDTHS + 5]),
            },
            block_crcs: table.chunks_exact(4).map(|c| u32_at(c, 0)).collect(),
            checked: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            all_checked: std::sync::atomic::AtomicBool::new(false),
            map,
        };
        index.check_layout().map_err(|why| invalid(&why))?;
        Ok(index)
    }

    /// The tables lie in order inside the body, each as long as its count says.
    fn check_layout(&self) -> Result<(), String> {
        let len = self.map.len() as u64;
        let width = if self.flags & F_WIDE != 0 { 8 } else { 4 };
        if self.widths.all().iter().any(|&w| w == 0 || w > 33) {
            return Err("its field widths are out of range".into());
        }
        let packed =
            |count: u64, bits: u64| count.checked_mul(bits).map(|b| b.div_ceil(8) + PAD as u64);
        let w = self.widths;
        let sections = [
            ("starts", self.starts_off, self.ranges.checked_mul(width)),
            (
                "leaves",
                self.leaves_off,
                packed(self.ranges, u64::from(w.frame)),
            ),
            (
                "frames",
                self.frames_off,
                packed(u64::from(self.frames), w.frame_bits()),
            ),
            (
                "functions",
                self.functions_off,
                packed(u64::from(self.functions), 3 * u64::from(w.string)),
            ),
            (
                "string offsets",
                self.str_offsets_off,
                (u64::from(self.strings) + 1).checked_mul(4),
            ),
        ];
        if self.body_off < (HEADER_LEN + 4 * self.block_crcs.len() + 4) as u64 {
            return Err("its body overlaps its block table".into());
        }
        if (len - self.body_off.min(len)).div_ceil(BLOCK as u64) != self.block_crcs.len() as u64 {
            return Err("its block table does not cover its body".into());
        }
        let mut end = self.body_off;
        for (name, off, size) in sections {
            let size = size.ok_or_else(|| format!("its {name} table is impossibly large"))?;
            if off < end || off.checked_add(size).is_none_or(|e| e > len) {
                return Err(format!("its {name} table is out of place"));
            }
            end = off + size;
        }
        if self.str_data_off < end || self.str_data_off > len {
            return Err("its strings are out of place".into());
        }
        if self.ranges == 0 {
            return Err("it has no ranges".into());
        }
        Ok(())
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file it was made from has DWARF.
    pub fn has_dwarf(&self) -> bool {
        self.flags & F_DWARF != 0
    }

    /// Checks every block now, at once (one CRC-32 pass over the file), so the many lookups
    /// to come read without checking: for a long run of addresses, which reaches most blocks
    /// anyway.
    pub fn check_all(&self) -> Result<(), Damaged> {
        for block in 0..self.block_crcs.len() {
            self.check_block(block)?;
        }
        self.all_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// `len` bytes at `off`, each block they touch checked against its CRC first.
    #[inline]
    fn bytes(&self, off: u64, len: u64) -> Result<&[u8], Damaged> {
        let end = off.checked_add(len).ok_or(Damaged)?;
        if off < self.body_off || end > self.map.len() as u64 {
            return Err(Damaged);
        }
        if len > 0 && !self.all_checked.load(Ordering::Relaxed) {
            let first = ((off - self.body_off) / BLOCK as u64) as usize;
            let last = ((end - 1 - self.body_off) / BLOCK as u64) as usize;
            for block in first..=last {
                self.check_block(block)?;
            }
        }
        Ok(&self.map[off as usize..end as usize])
    }

    fn check_block(&self, block: usize) -> Result<(), Damaged> {
        let (word, bit) = (block / 64, 1u64 << (block % 64));
        let seen = self.checked.get(word).ok_or(Damaged)?;
        if seen.load(Ordering::Relaxed) & bit != 0 {
            return Ok(());
        }
        let start = self.body_off as usize + block * BLOCK;
        let end = (start + BLOCK).min(self.map.len());
        let expected = *self.block_crcs.get(block).ok_or(Damaged)?;
        if crc32fast::hash(&self.map[start..end]) != expected {
            return Err(Damaged);
        }
        seen.fetch_or(bit, Ordering::Relaxed);
        Ok(())
    }

    fn start(&self, i: u64) -> Result<u64, Damaged> {
        if self.flags & F_WIDE != 0 {
            Ok(u64_at(self.bytes(self.starts_off + 8 * i, 8)?, 0))
        } else {
            Ok(u64::from(u32_at(
                self.bytes(self.starts_off + 4 * i, 4)?,
                0,
            )))
        }
    }

    /// The `width`-bit field at bit `bit` of the packed table at `table`; `None` for all ones.
    fn field(&self, table: u64, bit: u64, width: u32) -> Result<Option<u32>, Damaged> {
        let b = self.bytes(table + bit / 8, 8)?;
        let v = (u64_at(b, 0) >> (bit % 8)) & ones(width);
        Ok((v != ones(width)).then_some(v as u32))
    }

    /// What the index says of `probe`.
    pub(crate) fn lookup(&self, probe: u64) -> Result<Found, Damaged> {
        // The last range whose start is at or below the probe.
        let (mut lo, mut hi) = (0u64, self.ranges);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.start(mid)? <= probe {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(range) = lo.checked_sub(1) else {
            return Ok(Found::Nothing);
        };
        let w = self.widths;
        let Some(mut frame) = self.field(self.leaves_off, range * u64::from(w.frame), w.frame)?
        else {
            return Ok(Found::Nothing);
        };
        let mut out = Vec::new();
        loop {
            if frame >= self.frames || out.len() > 256 {
                return Err(Damaged);
            }
            let mut bit = u64::from(frame) * w.frame_bits();
            let mut next = |width: u32| {
                let v = self.field(self.frames_off, bit, width);
                bit += u64::from(width);
                v
            };
            let function = next(w.function)?;
            let file = next(w.file)?;
            let line = next(w.line)?;
            let column = next(w.column)?;
            let parent = next(w.frame)?;
            if function == Some(ones(w.function) as u32 - 1) {
                return file.map(Found::Corrupt).ok_or(Damaged);
            }
            out.push(FrameIds {
                function: function.unwrap_or(NONE),
                file: file.unwrap_or(NONE),
                line: line.unwrap_or(NONE),
                column: column.unwrap_or(NONE),
            });
            match parent {
                // Chains point to earlier frames only, so they always end.
                Some(parent) if parent >= frame => return Err(Damaged),
                Some(parent) => frame = parent,
                None => return Ok(Found::Frames(out)),
            }
        }
    }

    /// The name of a function record in `style`.
    pub(crate) fn function_name(&self, function: u32, style: Demangle) -> Result<&str, Damaged> {
        if function >= self.functions {
            return Err(Damaged);
        }
        let width = self.widths.string;
        let which = match style {
            Demangle::Off => 0,
            Demangle::Full => 1,
            Demangle::Short => 2,
        };
        let bit = (3 * u64::from(function) + which) * u64::from(width);
        let id = self.field(self.functions_off, bit, width)?.ok_or(Damaged)?;
        self.string(id)
    }

    /// A string by id.
    pub(crate) fn string(&self, id: u32) -> Result<&str, Damaged> {
        if id >= self.strings {
            return Err(Damaged);
        }
        let b = self.bytes(self.str_offsets_off + 4 * u64::from(id), 8)?;
        let (start, end) = (u32_at(b, 0), u32_at(b, 4));
        if end < start {
            return Err(Damaged);
        }
        let bytes = self.bytes(self.str_data_off + u64::from(start), u64::from(end - start))?;
        std::str::from_utf8(bytes).map_err(|_| Damaged)
    }

    /// Counts, for `debug-store ls` and the benchmarks: ranges, frames, functions, strings.
    pub fn counts(&self) -> (u64, u32, u32, u32) {
        (self.ranges, self.frames, self.functions, self.strings)
    }
}

/// Builds the index of `file` in memory: the bytes of an index file.
pub fn build(file: &DebugFile) -> Result<Vec<u8>, IndexError> {
    let identity = file.identity();
    let build_id = identity
        .build_id
        .clone()
        .ok_or_else(|| IndexError::NotIndexable("the file has no GNU build-id".into()))?;
    let bad = |e: crate::Error| IndexError::NotIndexable(e.to_chain());
    let symbolizer = file.dwarf_symbolizer(Demangle::Off).map_err(bad)?;
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;

    // The boundaries: the inline trees are walked on a thread of their own while this one
    // reads the symbol table and the line programs (which the lookups below reuse).
    let mut bounds: Vec<u64> = vec![0];
    std::thread::scope(|scope| -> Result<(), IndexError> {
        let dies = || -> Result<Vec<u64>, IndexError> {
            let mut out = Vec::new();
            if identity.has_dwarf {
                file.dwarf_boundaries(&mut out)
                    .map_err(IndexError::NotIndexable)?;
            }
            Ok(out)
        };
        let walking = parallel.then(|| scope.spawn(dies));
        for &(start, end, _) in symbolizer.symbol_entries() {
            bounds.extend([start, end]);
        }
        if identity.has_dwarf {
            symbolizer
                .line_boundaries(&mut bounds)
                .map_err(IndexError::NotIndexable)?;
        }
        let walked = match walking {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            None => dies()?,
        };
        bounds.extend(walked);
        Ok(())
    })?;
    bounds.sort_unstable();
    bounds.dedup();

    // One answer per boundary: looked up on one thread, taken into the tables on this one.
    let mut tables = Tables::default();
    let mut starts: Vec<u64> = Vec::with_capacity(bounds.len());
    let mut leaves: Vec<u32> = Vec::with_capacity(bounds.len());
    let mut take = |part: Answers<'_>| {
        for (probe, from, to, failed) in part.spans {
            let leaf = match failed {
                None => tables.chain(&part.frames[from as usize..to as usize]),
                Some(Reason::CorruptDebugInfo(message)) => {
                    let message = tables.string(&message);
                    tables.frame([CORRUPT, message, NONE, NONE, NONE])
                }
                Some(_) => NONE,
            };
            if leaves.last() != Some(&leaf) {
                starts.push(probe);
                leaves.push(leaf);
            }
        }
    };
    if parallel {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(2);
            let bounds = &bounds;
            scope.spawn(move || {
                for chunk in bounds.chunks(4096) {
                    if tx.send(look_up(&symbolizer, chunk)).is_err() {
                        break;
                    }
                }
            });
            for part in rx {
                take(part);
            }
        });
    } else {
        for chunk in bounds.chunks(4096) {
            take(look_up(&symbolizer, chunk));
        }
    }
    Ok(tables.write(&build_id, identity.has_dwarf, file.size(), &starts, &leaves))
}

/// A multiply-rotate hasher (the one rustc uses) for the builder's maps: their keys are small
/// integers and pointers made by this process, so a keyed hash buys nothing here, and SipHash
/// was most of the build's time.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fx>>;

/// The DWARF symbolizer's answer at each boundary of `chunk`.
fn look_up<'a>(symbolizer: &crate::symbolizer::DwarfSymbolizer<'a>, chunk: &[u64]) -> Answers<'a> {
    let mut part = Answers {
        frames: Vec::with_capacity(chunk.len() * 2),
        spans: Vec::with_capacity(chunk.len()),
    };
    for &probe in chunk {
        let from = part.frames.len() as u32;
        let failed = symbolizer.lookup_into(probe, &mut part.frames).err();
        part.spans
            .push((probe, from, part.frames.len() as u32, failed));
    }
    part
}

/// The answers for a chunk of boundaries: all their frames in one vector, and per boundary
/// where its frames are in it, or why it has none.
struct Answers<'a> {
    frames: Vec<RawFrame<'a>>,
    spans: Vec<(u64, u32, u32, Option<Reason>)>,
}

/// The tables being built, deduplicated.
#[derive(Default)]
struct Tables {
    strings: Vec<u8>,
    string_ends: Vec<u32>,
    string_ids: FxMap<Box<str>, u32>,
    /// Files by the address of the symbolizer's shared string (it keeps each alive).
    file_ids: FxMap<usize, u32>,
    functions: Vec<[u32; 3]>,
    /// Names borrowed from the mapped file, by address, length and language.
    function_ids: FxMap<(usize, usize, Option<u16>), u32>,
    /// Names the symbolizer had to copy, by text and language.
    owned_function_ids: FxMap<(Box<str>, Option<u16>), u32>,
    frames: Vec<[u32; 5]>,
    /// Frames by their fields, packed into three words (hashed as three, not as 20 bytes).
    frame_ids: FxMap<(u64, u64, u32), u32>,
}

impl Tables {
    fn string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.string_ends.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.string_ends.push(self.strings.len() as u32);
        self.string_ids.insert(s.into(), id);
        id
    }

    /// The record of a function named `raw` (`borrowed`: from the mapped file, whose
    /// address then identifies it).
    fn function(&mut self, raw: &str, borrowed: bool, language: Option<gimli::DwLang>) -> u32 {
        let language_key = language.map(|l| l.0);
        let by_address = (raw.as_ptr() as usize, raw.len(), language_key);
        let found = if borrowed {
            self.function_ids.get(&by_address)
        } else {
            self.owned_function_ids
                .get(&(Box::<str>::from(raw), language_key))
        };
        if let Some(&id) = found {
            return id;
        }
        let names = [Demangle::Off, Demangle::Full, Demangle::Short]
            .map(|style| crate::demangle::demangle(raw, language, style));
        let ids = [
            self.string(&names[0]),
            self.string(&names[1]),
            self.string(&names[2]),
        ];
        let id = self.functions.len() as u32;
        self.functions.push(ids);
        if borrowed {
            self.function_ids.insert(by_address, id);
        } else {
            self.owned_function_ids
                .insert((raw.into(), language_key), id);
        }
        id
    }

    fn file(&mut self, file: &Arc<str>) -> u32 {
        let key = Arc::as_ptr(file) as *const u8 as usize;
        if let Some(&id) = self.file_ids.get(&key) {
            return id;
        }
        let id = self.string(file);
        self.file_ids.insert(key, id);
        id
    }

    fn frame(&mut self, record: [u32; 5]) -> u32 {
        let [function, file, line, column, parent] = record.map(u64::from);
        let key = (function << 32 | file, line << 32 | column, parent as u32);
        if let Some(&id) = self.frame_ids.get(&key) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(record);
        self.frame_ids.insert(key, id);
        id
    }

    /// The frames of one address, outermost first into the table; returns the innermost.
    fn chain(&mut self, raw: &[RawFrame<'_>]) -> u32 {
        let mut parent = NONE;
        for f in raw.iter().rev() {
            let function = match &f.name {
                Some(name) => self.function(
                    name,
                    matches!(name, std::borrow::Cow::Borrowed(_)),
                    f.language,
                ),
                None => NONE,
            };
            let file = match &f.file {
                Some(file) => self.file(file),
                None => NONE,
            };
            parent = self.frame([function, file, f.line, f.column, parent]);
        }
        parent
    }

    fn write(
        &self,
        build_id: &BuildId,
        has_dwarf: bool,
        source_size: u64,
        starts: &[u64],
        leaves: &[u32],
    ) -> Vec<u8> {
        let wide = starts.last().is_some_and(|&s| s > u64::from(u32::MAX));
        let mut body: Vec<u8> = Vec::new();
        let starts_at = body.len();
        for &s in starts {
            if wide {
                body.extend_from_slice(&s.to_le_bytes());
            } else {
                body.extend_from_slice(&(s as u32).to_le_bytes());
            }
        }
        // Only NONE means none: a line of u32::MAX - 1 (corrupt DWARF can say so) is kept.
        let max = |values: &mut dyn Iterator<Item = u32>| {
            values.filter(|&v| v != NONE).max().unwrap_or(0)
        };
        let widths = Widths {
            function: width_for(self.functions.len() as u32),
            file: width_for(max(&mut self.frames.iter().map(|f| f[1]))),
            line: width_for(max(&mut self.frames.iter().map(|f| f[2]))),
            column: width_for(max(&mut self.frames.iter().map(|f| f[3]))),
            frame: width_for(self.frames.len() as u32),
            string: width_for(self.string_ends.len() as u32),
        };
        let leaves_at = body.len();
        let mut packer = Packer::default();
        for &l in leaves {
            packer.put(l, widths.frame);
        }
        packer.finish_into(&mut body);
        let frames_at = body.len();
        for record in &self.frames {
            let corrupt = record[0] == CORRUPT;
            if corrupt {
                packer.put_raw(ones(widths.function) - 1, widths.function);
            } else {
                packer.put(record[0], widths.function);
            }
            packer.put(record[1], widths.file);
            packer.put(record[2], widths.line);
            packer.put(record[3], widths.column);
            packer.put(record[4], widths.frame);
        }
        packer.finish_into(&mut body);
        let functions_at = body.len();
        for record in &self.functions {
            for &v in record {
                packer.put(v, widths.string);
            }
        }
        packer.finish_into(&mut body);
        let str_offsets_at = body.len();
        body.extend_from_slice(&0u32.to_le_bytes());
        for end in &self.string_ends {
            body.extend_from_slice(&end.to_le_bytes());
        }
        let str_data_at = body.len();
        body.extend_from_slice(&self.strings);

        let block_crcs: Vec<u32> = body.chunks(BLOCK).map(crc32fast::hash).collect();
        let body_off = (HEADER_LEN + 4 * block_crcs.len() + 4) as u64;
        let total = body_off + body.len() as u64;
        let mut h = vec![0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        let put32 = |h: &mut Vec<u8>, at: usize, v: u32| {
            h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        };
        let put64 = |h: &mut Vec<u8>, at: usize, v: u64| {
            h[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        put32(&mut h, at::VERSION, VERSION);
        put32(
            &mut h,
            at::FLAGS,
            if has_dwarf { F_DWARF } else { 0 } | if wide { F_WIDE } else { 0 },
        );
        put64(&mut h, at::TOTAL, total);
        put64(&mut h, at::SOURCE_SIZE, source_size);
        put64(&mut h, at::RANGES, starts.len() as u64);
        put32(&mut h, at::FRAMES, self.frames.len() as u32);
        put32(&mut h, at::FUNCTIONS, self.functions.len() as u32);
        put32(&mut h, at::STRINGS, self.string_ends.len() as u32);
        put32(&mut h, at::BLOCKS, block_crcs.len() as u32);
        for (at, off) in [
            (at::STARTS_OFF, starts_at),
            (at::LEAVES_OFF, leaves_at),
            (at::FRAMES_OFF, frames_at),
            (at::FUNCTIONS_OFF, functions_at),
            (at::STR_OFFSETS_OFF, str_offsets_at),
            (at::STR_DATA_OFF, str_data_at),
        ] {
            put64(&mut h, at, body_off + off as u64);
        }
        put64(&mut h, at::BODY_OFF, body_off);
        for (i, w) in widths.all().into_iter().enumerate() {
            h[at::WIDTHS + i] = w as u8;
        }
        let id = build_id.as_bytes();
        let id = &id[..id.len().min(at::BUILD_ID_MAX)];
        put32(&mut h, at::BUILD_ID_LEN, id.len() as u32);
        h[at::BUILD_ID..at::BUILD_ID + id.len()].copy_from_slice(id);
        let crc = crc32fast::hash(&h[..at::HEADER_CRC]);
        put32(&mut h, at::HEADER_CRC, crc);
        let mut table = Vec::with_capacity(4 * block_crcs.len());
        for crc in &block_crcs {
            table.extend_from_slice(&crc.to_le_bytes());
        }
        h.extend_from_slice(&table);
        h.extend_from_slice(&crc32fast::hash(&table).to_le_bytes());
        h.extend_from_slice(&body);
        h
    }
}

/// Writes fields of any width up to 33 bits one after another, little-endian bit order.
#[derive(Default)]
struct Packer {
    bytes: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl Packer {
    /// `value`, or all ones for [`NONE`].
    fn put(&mut self, value: u32, width: u32) {
        let v = if value == NONE {
            ones(width)
        } else {
            u64::from(value)
        };
        self.put_raw(v, width);
    }

    fn put_raw(&mut self, value: u64, width: u32) {
        self.acc |= (value & ones(width)) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Appends the table (its last byte completed, then [`PAD`] zero bytes) to `out`.
    fn finish_into(&mut self, out: &mut Vec<u8>) {
        if self.bits > 0 {
            self.bytes.push(self.acc as u8);
        }
        out.append(&mut self.bytes);
        out.extend_from_slice(&[0; PAD]);
        (self.acc, self.bits) = (0, 0);
    }
}

/// Writes `bytes` to `path` as a whole or not at all: a temporary file in the same directory,
/// then a rename. Two processes writing the same index at once each rename a complete file;
/// a reader maps one or the other, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| IndexError::Io {
            path,
            message: e.to_string(),
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("index");
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let result = (|| {
        // No fsync: an index cut short by a power cut fails its length check and is made
        // again, so durability would only cost time.
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(())
}

/// Builds the index of `file`, writes it to `path` (atomically, over any index there) and
/// opens it.
pub fn make(file: &DebugFile, path: &Path) -> Result<SymbolIndex, IndexError> {
    let bytes = build(file)?;
    write_atomically(path, &bytes)?;
    SymbolIndex::open(path, file.identity(), file.size())
}

/// Whether an index can be written at `path`: its directory made, a file created in it.
fn writable(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let probe = dir.join(format!(".faultline-index-probe-{}", std::process::id()));
    fs::create_dir_all(dir)
        .and_then(|()| fs::File::create(&probe))
        .map(drop)
        .map_err(|e| format!("{} cannot be written: {e}", dir.display()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Marks an index used now (its modification time), for `debug-store gc`'s least recently used
/// order; at most every ten minutes, and silently not where it cannot be written.
fn touch(path: &Path) {
    let now = std::time::SystemTime::now();
    let stale = fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d.as_secs() > 600));
    if stale && let Ok(f) = fs::File::options().append(true).open(path) {
        let _ = f.set_modified(now);
    }
}

/// What became of a debug file's index when it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// An index was there and is used.
    Used(PathBuf),
    /// None was there (or it was not valid: `replaced` says why); one was made and is used.
    Built {
        /// Where it is now.
        path: PathBuf,
        /// Why the index that was there was not used, if one was.
        replaced: Option<String>,
    },
    /// None is used: the reason says why (not indexable, not writable, switched off).
    Without(String),
}

/// Options for using indexes. The default uses none.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// Use indexes at all (`--no-index` turns this off).
    pub enabled: bool,
    /// Make an index when there is none and its place can be written.
    pub build: bool,
    /// The cache directory, for indexes of files outside a `.build-id/` store.
    pub cache_dir: PathBuf,
    /// Called with the debug file and the index's place before an index is made (it takes
    /// about as long as one cold symbolization of many addresses): a long wait says so.
    pub on_build: Option<fn(&Path, &Path)>,
}

impl IndexOptions {
    /// Indexes used and made, the cache where debuginfod's is.
    pub fn from_env() -> Self {
        Self {
            enabled: true,
            build: true,
            cache_dir: crate::debuginfod::DebuginfodOptions::from_env().cache_dir,
            on_build: None,
        }
    }

    /// No index read or made.
    pub fn off() -> Self {
        Self::default()
    }
}

/// Attaches the index of `file` to it: the one in its place if valid, else a new one if
/// `options.build` (its place writable), else none.
pub fn attach(file: &mut DebugFile, options: &IndexOptions) -> Attached {
    if !options.enabled {
        return Attached::Without("switched off (--no-index)".into());
    }
    let Some(build_id) = file.identity().build_id.clone() else {
        return Attached::Without("the file has no GNU build-id".into());
    };
    let path = index_path(file.path(), &build_id, &options.cache_dir);
    let replaced = match SymbolIndex::open(&path, file.identity(), file.size()) {
        Ok(index) => {
            touch(&path);
            file.set_index(Arc::new(index));
            return Attached::Used(path);
        }
        Err(IndexError::Io { .. }) if !path.exists() => None,
        Err(e) => Some(e.to_string()),
    };
    if !options.build {
        return Attached::Without(replaced.unwrap_or_else(|| "none made yet".into()));
    }
    // What cannot be indexed, or not kept: say so at once rather than build for nothing.
    if file.identity().has_dwarf && file.is_split_dwarf() {
        return Attached::Without("split DWARF (its inline trees are in .dwo files)".into());
    }
    if let Err(why) = writable(&path) {
        return Attached::Without(why);
    }
    if let Some(on_build) = options.on_build {
        on_build(file.path(), &path);
    }
    match make(file, &path) {
        Ok(index) => {
            file.set_index(Arc::new(index));
            Attached::Built { path, replaced }
        }
        Err(e) => Attached::Without(e.to_string()),
    }
}

/// For the fuzzer (`fuzz/fuzz_targets/symbol_index.rs`), not an API: random bytes rarely pass
/// a checksum, so it reseals them to reach the tables behind the checks.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::Path;

    use super::{BLOCK, F_DWARF, HEADER_LEN, SymbolIndex, at, u32_at, u64_at};
    use crate::{BuildId, Demangle, elf::ElfIdentity};

    /// Makes the length, block checksums, the block table's checksum and the header's
    /// checksum of `bytes` right, as far as its header's fields allow.
    pub fn reseal(bytes: &mut [u8]) {
        if bytes.len() < HEADER_LEN {
            return;
        }
        let len = bytes.len() as u64;
        bytes[at::TOTAL..at::TOTAL + 8].copy_from_slice(&len.to_le_bytes());
        let blocks = u32_at(bytes, at::BLOCKS) as usize;
        let body_off = u64_at(bytes, at::BODY_OFF);
        let table_end = HEADER_LEN.saturating_add(blocks.saturating_mul(4));
        if table_end.saturating_add(4) <= bytes.len() {
            for block in 0..blocks {
                let start = body_off.saturating_add((block * BLOCK) as u64);
                if start >= len {
                    break;
                }
                let start = start as usize;
                let end = (start + BLOCK).min(bytes.len());
                let crc = crc32fast::hash(&bytes[start..end]);
                let at = HEADER_LEN + 4 * block;
                bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            }
            let crc = crc32fast::hash(&bytes[HEADER_LEN..table_end]);
            bytes[table_end..table_end + 4].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32fast::hash(&bytes[..at::HEADER_CRC]);
        bytes[at::HEADER_CRC..at::HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }

    /// Opens `path` as the index of the file its header names and reads what it says of
    /// each probe: every frame's names in the three styles and its file. Returns how many
    /// frames it read; a damaged index stops the probe, never the process.
    pub fn open_and_read(path: &Path, probes: &[u64]) -> usize {
        let Ok(header) = std::fs::read(path) else {
            return 0;
        };
        if header.len() < HEADER_LEN {
            return 0;
        }
        let id_len = (u32_at(&header, at::BUILD_ID_LEN) as usize).min(at::BUILD_ID_MAX);
        let identity = ElfIdentity {
            build_id: BuildId::new(header[at::BUILD_ID..at::BUILD_ID + id_len].to_vec()).ok(),
            debuglink: None,
            has_dwarf: u32_at(&header, at::FLAGS) & F_DWARF != 0,
        };
        let size = u64_at(&header, at::SOURCE_SIZE);
        let Ok(index) = SymbolIndex::open(path, &identity, size) else {
            return 0;
        };
        let mut frames = 0;
        for &probe in probes {
            match index.lookup(probe) {
                Ok(super::Found::Frames(found)) => {
                    for frame in found {
                        frames += 1;
                        for style in [Demangle::Off, Demangle::Full, Demangle::Short] {
                            let _ = index.function_name(frame.function, style);
                        }
                        let _ = index.string(frame.file);
                    }
                }
                Ok(super::Found::Corrupt(message)) => {
                    let _ = index.string(message);
                }
                Ok(super::Found::Nothing) | Err(_) => {}
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_sits_beside_a_store_file_and_in_the_cache_otherwise() {
        let id = BuildId::from_hex("abcdef0123").unwrap();
        let cache = Path::new("/cache");
        assert_eq!(
            index_path(Path::new("/store/.build-id/ab/cdef0123.debug"), &id, cache),
            Path::new("/store/.build-id/ab/cdef0123.faultline-index")
        );
        assert_eq!(
            index_path(Path::new("/store/.build-id/ab/cdef0123"), &id, cache),
            Path::new("/store/.build-id/ab/cdef0123.faultline-index")
        );
        assert_eq!(
            index_path(Path::new("/tmp/rg.debug"), &id, cache),
            Path::new("/cache/abcdef0123/faultline-index")
        );
    }
}
