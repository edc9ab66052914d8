//! A debug store: files indexed by build-id in the `.build-id/ab/cdef….debug` layout that gdb,
//! llvm-symbolizer and elfutils read.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use faultline_record::BuildId;

use crate::{Error, Result, elf, index};

/// A directory holding a `.build-id/` tree.
#[derive(Debug, Clone)]
pub struct DebugStore {
    root: PathBuf,
}

/// What [`DebugStore::add`] did.
#[derive(Debug, Clone)]
pub struct Added {
    /// The file's build-id.
    pub build_id: BuildId,
    /// Where it is in the store.
    pub path: PathBuf,
    /// False when a file with this build-id was already there (it is kept).
    pub new: bool,
    /// True when the file replaced one of the same build-id without DWARF (a stripped copy
    /// filed by mistake), or one whose build-id was not the one its path says.
    pub replaced: bool,
    /// Whether the file has DWARF; a store entry without it can only give symbol names.
    pub has_dwarf: bool,
    /// The file is a runtime binary (no DWARF, but unwind tables) of a build whose debug file
    /// is in the store: kept beside it as `cdef…` (gdb's layout), so that cores of it can be
    /// unwound by CFI on a machine that does not have it at its path.
    pub beside_debug_file: bool,
}

impl DebugStore {
    /// A store rooted at `root`. `root` may be the directory holding `.build-id/` or the
    /// `.build-id` directory itself.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn build_id_dir(&self) -> PathBuf {
        if self.root.file_name().is_some_and(|n| n == ".build-id") {
            self.root.clone()
        } else {
            self.root.join(".build-id")
        }
    }

    /// The paths a file with this build-id may have in the store, most specific first.
    pub fn candidates(&self, build_id: &BuildId) -> [PathBuf; 2] {
        let hex = build_id.to_hex();
        let dir = self.build_id_dir().join(&hex[..2]);
        [
            dir.join(format!("{}.debug", &hex[2..])),
            dir.join(&hex[2..]),
        ]
    }

    /// Indexes an unstripped binary or a `.debug` file by its build-id. Refuses a file without
    /// a build-id. Hard-links when it can, copies otherwise; never leaves a partial file.
    pub fn add(&self, file: &Path) -> Result<Added> {
        let identity = elf::identity(file)?;
        let build_id = identity.build_id.ok_or_else(|| Error::NoBuildId {
            path: file.to_owned(),
        })?;
        let [path, beside] = self.candidates(&build_id);
        let mut replaced = false;
        if path.exists() {
            let existing = elf::identity(&path).ok();
            let same = existing
                .as_ref()
                .is_some_and(|e| e.build_id.as_ref() == Some(&build_id));
            let existing_dwarf = existing.as_ref().is_some_and(|e| e.has_dwarf);
            if same && (existing_dwarf || !identity.has_dwarf) {
                // The runtime binary of a build whose debug file is here: beside it.
                if existing_dwarf
                    && !identity.has_dwarf
                    && !beside.exists()
                    && has_unwind_tables(file)
                {
                    self.place(file, &beside, &build_id)?;
                    return Ok(Added {
                        build_id,
                        path: beside,
                        new: true,
                        replaced: false,
                        has_dwarf: false,
                        beside_debug_file: true,
                    });
                }
                return Ok(Added {
                    build_id,
                    path,
                    new: false,
                    replaced: false,
                    has_dwarf: existing_dwarf,
                    beside_debug_file: false,
                });
            }
            // A copy without DWARF, replaced by the debug file: kept beside it when it is the
            // runtime binary (its unwind tables), not lost.
            if same && !existing_dwarf && !beside.exists() && has_unwind_tables(&path) {
                fs::rename(&path, &beside).map_err(|source| Error::Io {
                    path: beside.clone(),
                    source,
                })?;
            }
            replaced = true;
        }
        self.place(file, &path, &build_id)?;
        Ok(Added {
            build_id,
            path,
            new: true,
            replaced,
            has_dwarf: identity.has_dwarf,
            beside_debug_file: false,
        })
    }

    /// Hard-links (or copies) `file` to `path` through a temporary name: never a partial file.
    fn place(&self, file: &Path, path: &Path, build_id: &BuildId) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{}.tmp-{}", build_id, std::process::id()));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(file, &tmp).is_err() {
            fs::copy(file, &tmp).map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(path)(e)
        })
    }
}

/// Whether `file` has call frame information with contents (`.eh_frame`): a runtime binary,
/// stripped or not, where `objcopy --only-keep-debug` leaves the section empty (`NOBITS`).
pub fn has_unwind_tables(file: &Path) -> bool {
    let Ok(file) = elf::open_file(file) else {
        return false;
    };
    // SAFETY: a read-only map, read once here; the same risk as every map of a debug file.
    unsafe { memmap2::Mmap::map(&file) }.is_ok_and(|map| unwind_tables_in(&map))
}

/// [`has_unwind_tables`] of a file's bytes.
pub fn unwind_tables_in(data: &[u8]) -> bool {
    use object::{Object, ObjectSection};
    object::File::parse(data).is_ok_and(|obj| {
        obj.section_by_name(".eh_frame")
            .is_some_and(|s| s.data().is_ok_and(|d| !d.is_empty()))
    })
}

impl crate::Locator {
    /// The bytes of the file that gives the unwind tables of a module with `build_id`, mapped
    /// at `path` when it crashed: that file itself when it is still there with that build-id
    /// (a stripped binary keeps `.eh_frame`), else the debug file found by build-id, or the
    /// runtime binary a store keeps beside it (`objcopy --only-keep-debug` leaves `.debug`
    /// without `.eh_frame`; `debug-store add` of the shipped binary puts it at `…/cdef`).
    pub fn unwind_file(&self, build_id: &BuildId, path: &str) -> Option<Vec<u8>> {
        let path = Path::new(path);
        let same =
            |p: &Path| elf::identity(p).ok().and_then(|i| i.build_id).as_ref() == Some(build_id);
        if path.is_absolute() && same(path) {
            return std::fs::read(path).ok();
        }
        let found = self.find(build_id, None).ok()?;
        let bytes = std::fs::read(&found.path).ok()?;
        if !unwind_tables_in(&bytes)
            && let Some(binary) = found
                .path
                .to_str()
                .and_then(|p| p.strip_suffix(".debug"))
                .map(PathBuf::from)
            && same(&binary)
        {
            return std::fs::read(binary).ok();
        }
        Some(bytes)
    }
}

/// A file of a store entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes (a symbolic link's own, not its target's).
    pub size: u64,
    /// When it was last used: the later of its access and modification times (an index is
    /// touched when it is used; a debug file's access time is kept by the kernel, under
    /// `relatime` at most a day behind).
    pub used: SystemTime,
}

/// One build-id in a store: its debug file and its symbol index, either possibly missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The build-id its path names.
    pub build_id: BuildId,
    /// The debug file: `cdef….debug` when there is one, else `cdef…` (gdb's layout).
    pub debug: Option<StoredFile>,
    /// Other files of this build-id (`cdef…` beside `cdef….debug`): removed with the debug file.
    pub others: Vec<StoredFile>,
    /// Its symbol index (`cdef….faultline-index`).
    pub index: Option<StoredFile>,
}

impl Entry {
    /// When any of its files was last used.
    pub fn used(&self) -> SystemTime {
        self.files()
            .map(|f| f.used)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The bytes of all its files.
    pub fn size(&self) -> u64 {
        self.files().map(|f| f.size).sum()
    }

    /// Whether `path` is one of its files.
    pub fn contains(&self, path: &Path) -> bool {
        self.files().any(|f| f.path == path)
    }

    fn files(&self) -> impl Iterator<Item = &StoredFile> {
        self.debug
            .iter()
            .chain(&self.others)
            .chain(self.index.iter())
    }
}

impl DebugStore {
    /// The store's root as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every build-id in the store, by build-id. Files whose names are not a build-id's (and
    /// the temporary files of a write in progress, named `.…`) are not entries. A store that
    /// does not exist yet is empty.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let top = self.build_id_dir();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        let mut by_id: std::collections::BTreeMap<String, Entry> = Default::default();
        let dirs = match fs::read_dir(&top) {
            Ok(dirs) => dirs,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&top)(e)),
        };
        for dir in dirs {
            let dir = dir.map_err(io(&top))?;
            let prefix = dir.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let dir_path = dir.path();
            if !dir_path.is_dir() {
                continue;
            }
            for file in fs::read_dir(&dir_path).map_err(io(&dir_path))? {
                let file = file.map_err(io(&dir_path))?;
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let (rest, kind) = if let Some(rest) = name.strip_suffix(index::STORE_SUFFIX) {
                    (rest, Kind::Index)
                } else if let Some(rest) = name.strip_suffix(".debug") {
                    (rest, Kind::Debug)
                } else {
                    (name.as_str(), Kind::Other)
                };
                let hex = format!("{prefix}{rest}");
                let Ok(build_id) = BuildId::from_hex(&hex) else {
                    continue;
                };
                let path = file.path();
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    // Removed since the directory was read.
                    continue;
                };
                if meta.is_dir() {
                    continue;
                }
                let used = [meta.accessed().ok(), meta.modified().ok()]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let stored = StoredFile {
                    path,
                    size: meta.len(),
                    used,
                };
                let entry = by_id.entry(build_id.to_hex()).or_insert_with(|| Entry {
                    build_id,
                    debug: None,
                    others: Vec::new(),
                    index: None,
                });
                match kind {
                    Kind::Index => entry.index = Some(stored),
                    Kind::Debug => {
                        if let Some(plain) = entry.debug.replace(stored) {
                            entry.others.push(plain);
                        }
                    }
                    Kind::Other if entry.debug.is_none() => entry.debug = Some(stored),
                    Kind::Other => entry.others.push(stored),
                }
            }
        }
        // `cdef…` read before `cdef….debug` became the debug file first: put it back.
        let is_debug = |f: &StoredFile| f.path.extension().is_some_and(|e| e == "debug");
        for entry in by_id.values_mut() {
            let plain_first = entry.debug.as_ref().is_some_and(|d| !is_debug(d));
            if plain_first && let Some(at) = entry.others.iter().position(is_debug) {
                let preferred = entry.others.swap_remove(at);
                if let Some(plain) = entry.debug.replace(preferred) {
                    entry.others.push(plain);
                }
            }
        }
        Ok(by_id.into_values().collect())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Index,
    Debug,
    Other,
}

/// The files to remove to bring a store of `entries` to at most `max` bytes: least recently
/// used entry first, and of an entry its index (which can be made again) before its debug file.
/// Nothing when the store is within `max` already.
pub fn plan_gc(entries: &[Entry], max: u64) -> Vec<&StoredFile> {
    let mut total: u64 = entries.iter().map(Entry::size).sum();
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| (e.used(), e.build_id.to_hex()));
    let mut remove = Vec::new();
    for entry in order {
        let files = entry
            .index
            .iter()
            .chain(entry.debug.iter())
            .chain(&entry.others);
        for file in files {
            if total <= max {
                return remove;
            }
            total -= file.size;
            remove.push(file);
        }
    }
    remove
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn file(name: &str, size: u64, used_secs: u64) -> StoredFile {
        StoredFile {
            path: PathBuf::from(name),
            size,
            used: SystemTime::UNIX_EPOCH + Duration::from_secs(used_secs),
        }
    }

    fn entry(hex: &str, debug: u64, index: Option<u64>, used: u64) -> Entry {
        Entry {
            build_id: BuildId::from_hex(hex).unwrap(),
            debug: Some(file(&format!("{hex}.debug"), debug, used)),
            others: Vec::new(),
            index: index.map(|size| file(&format!("{hex}.faultline-index"), size, used)),
        }
    }

    fn names(files: &[&StoredFile]) -> Vec<String> {
        files.iter().map(|f| f.path.display().to_string()).collect()
    }

    #[test]
    fn a_store_within_its_size_loses_nothing() {
        let entries = [entry("aa01", 100, Some(30), 1), entry("bb02", 100, None, 2)];
        assert!(plan_gc(&entries, 230).is_empty());
        assert!(plan_gc(&entries, 1_000).is_empty());
    }

    #[test]
    fn the_least_recently_used_goes_first_its_index_before_its_debug_file() {
        let entries = [
            entry("cc03", 100, Some(30), 30), // newest
            entry("aa01", 100, Some(30), 10), // oldest
            entry("bb02", 100, Some(30), 20),
        ];
        // 390 bytes: dropping the oldest index is enough for 360.
        assert_eq!(names(&plan_gc(&entries, 360)), ["aa01.faultline-index"]);
        // 259: the oldest entry whole, then the next one's index.
        assert_eq!(
            names(&plan_gc(&entries, 259)),
            ["aa01.faultline-index", "aa01.debug", "bb02.faultline-index"]
        );
        // Nothing may stay.
        assert_eq!(plan_gc(&entries, 0).len(), 6);
    }

    #[test]
    fn an_entry_is_as_recent_as_its_most_recent_file() {
        let mut old_debug_fresh_index = entry("aa01", 100, Some(30), 10);
        old_debug_fresh_index.index.as_mut().unwrap().used =
            SystemTime::UNIX_EPOCH + Duration::from_secs(50);
        let entries = [old_debug_fresh_index, entry("bb02", 100, None, 20)];
        assert_eq!(names(&plan_gc(&entries, 200)), ["bb02.debug"]);
    }
}
