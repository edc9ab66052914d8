//! Finding the debug file for a build-id.
//!
//! Order: explicit files; store directories (`.build-id/` layout); the binary's
//! `.gnu_debuglink` next to it, in its `.debug/` and under `/usr/lib/debug`; the binary itself
//! when it still has DWARF; debuginfod. Every candidate's build-id is read and compared: a file
//! of another build is never used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use faultline_record::BuildId;

use crate::debuginfod::{DebuginfodClient, Fetched};
use crate::elf::{self, ElfIdentity};
use crate::{DebugStore, Reason};

/// Where a debug file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given explicitly.
    Explicit,
    /// Found in a store directory.
    Store(PathBuf),
    /// Named by the binary's `.gnu_debuglink`.
    Debuglink,
    /// The binary itself carries DWARF.
    Binary,
    /// Downloaded from (or cached for) a debuginfod server.
    Debuginfod {
        /// Served from the on-disk cache, without asking a server.
        from_cache: bool,
    },
}

/// A debug file whose build-id matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// How it was found.
    pub source: Source,
}

/// Why nothing was found: becomes a [`Reason`].
pub type NotFound = Reason;

type LookupKey = (BuildId, Option<PathBuf>);

/// Looks up debug files by build-id. Remembers what it read, so asking for the same build-id
/// twice reads nothing twice and asks no server twice.
#[derive(Debug, Default)]
pub struct Locator {
    explicit: Vec<PathBuf>,
    stores: Vec<DebugStore>,
    debuginfod: Option<DebuginfodClient>,
    index: crate::index::IndexOptions,
    identities: Mutex<HashMap<PathBuf, Option<ElfIdentity>>>,
    results: Mutex<HashMap<LookupKey, Result<Found, NotFound>>>,
}

impl Locator {
    /// A locator that looks nowhere; add sources with the builder methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Files to try first (such as `-e FILE`), matched by build-id.
    pub fn with_files(mut self, files: impl IntoIterator<Item = PathBuf>) -> Self {
        self.explicit.extend(files);
        self
    }

    /// Store directories, searched in order.
    pub fn with_stores(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.stores.extend(dirs.into_iter().map(DebugStore::new));
        self
    }

    /// How symbol indexes are used for the debug files found (none by default).
    pub fn with_index(mut self, options: crate::index::IndexOptions) -> Self {
        self.index = options;
        self
    }

    /// How symbol indexes are used for the debug files found.
    pub fn index_options(&self) -> &crate::index::IndexOptions {
        &self.index
    }

    /// A debuginfod client, asked last.
    pub fn with_debuginfod(mut self, client: Option<DebuginfodClient>) -> Self {
        self.debuginfod = client;
        self
    }

    fn identity(&self, path: &Path) -> Option<ElfIdentity> {
        let mut cache = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(path.to_owned())
            .or_insert_with(|| elf::identity(path).ok())
            .clone()
    }

    /// Finds the debug file for `build_id`. `binary` is where the module was loaded from, if
    /// known; it is used for its debuglink and in case it still has its DWARF.
    pub fn find(&self, build_id: &BuildId, binary: Option<&Path>) -> Result<Found, NotFound> {
        let key = (build_id.clone(), binary.map(Path::to_owned));
        if let Some(done) = self
            .results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return done.clone();
        }
        let result = self.search(build_id, binary);
        self.results
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, result.clone());
        result
    }

    fn search(&self, build_id: &BuildId, binary: Option<&Path>) -> Result<Found, NotFound> {
        let mut tried = Vec::new();
        // A file of another build found where this build's file should be (a store path, a
        // debuglink of this binary): the reason, if nothing better turns up.
        let mut mismatch: Option<(PathBuf, Option<BuildId>)> = None;
        // A file of this build without DWARF (a stripped binary filed in a store): used only
        // if nothing with DWARF turns up, for its symbol table.
        let mut without_dwarf: Option<Found> = None;
        let mut check = |path: &Path,
                         source: Source,
                         targeted: bool,
                         tried: &mut Vec<String>,
                         without_dwarf: &mut Option<Found>|
         -> Option<Found> {
            let Some(identity) = self.identity(path) else {
                tried.push(format!("{} (not a readable ELF file)", path.display()));
                return None;
            };
            if identity.build_id.as_ref() == Some(build_id) {
                let found = Found {
                    path: path.to_owned(),
                    source,
                };
                if identity.has_dwarf {
                    return Some(found);
                }
                tried.push(format!("{} (no DWARF)", path.display()));
                without_dwarf.get_or_insert(found);
                return None;
            }
            let id = identity
                .build_id
                .as_ref()
                .map_or_else(|| "no build-id".to_owned(), |id| format!("build-id {id}"));
            if targeted {
                tried.push(format!("{} ({id})", path.display()));
                mismatch.get_or_insert((path.to_owned(), identity.build_id));
            } else {
                tried.push(format!("{} (given: {id})", path.display()));
            }
            None
        };

        for file in &self.explicit {
            if let Some(found) = check(
                file,
                Source::Explicit,
                false,
                &mut tried,
                &mut without_dwarf,
            ) {
                return Ok(found);
            }
        }
        for store in &self.stores {
            let mut hit = false;
            for candidate in store.candidates(build_id) {
                if candidate.exists() {
                    hit = true;
                    let source = Source::Store(candidate.clone());
                    if let Some(found) =
                        check(&candidate, source, true, &mut tried, &mut without_dwarf)
                    {
                        return Ok(found);
                    }
                }
            }
            if !hit {
                tried.push(format!("store {}", store.candidates(build_id)[0].display()));
            }
        }
        match binary.map(|b| (b, self.identity(b))) {
            Some((binary, Some(identity))) => {
                if let Some((name, _crc)) = &identity.debuglink {
                    let candidates = debuglink_candidates(binary, name);
                    for candidate in &candidates {
                        if candidate.exists()
                            && let Some(found) = check(
                                candidate,
                                Source::Debuglink,
                                true,
                                &mut tried,
                                &mut without_dwarf,
                            )
                        {
                            return Ok(found);
                        }
                    }
                    let places: Vec<String> =
                        candidates.iter().map(|c| c.display().to_string()).collect();
                    tried.push(format!("debuglink {}", places.join(", ")));
                }
                if identity.has_dwarf
                    && let Some(found) =
                        check(binary, Source::Binary, true, &mut tried, &mut without_dwarf)
                {
                    return Ok(found);
                }
            }
            Some((binary, None)) => {
                tried.push(format!("{} (not on this machine)", binary.display()))
            }
            None => {}
        }
        match &self.debuginfod {
            Some(client) => match client.fetch_debuginfo(build_id) {
                Ok(Fetched::Found { path, from_cache }) => {
                    return Ok(Found {
                        path,
                        source: Source::Debuginfod { from_cache },
                    });
                }
                Ok(Fetched::NotFound { reason }) => tried.push(reason),
                Err(e) => tried.push(e.to_chain()),
            },
            None => tried.push("no debuginfod server (set DEBUGINFOD_URLS)".into()),
        }
        if let Some(found) = without_dwarf {
            return Ok(found);
        }
        if self.explicit.is_empty() && self.stores.is_empty() {
            tried.push("no --debug-dir or --debug-file given".into());
        }
        match mismatch {
            Some((path, found)) => Err(Reason::BuildIdMismatch {
                path,
                expected: build_id.clone(),
                found,
            }),
            None => Err(Reason::NoDebugFile {
                build_id: build_id.clone(),
                tried,
            }),
        }
    }
}

/// Where gdb looks for a debuglink target: next to the binary, in `.debug/` beside it, and
/// under `/usr/lib/debug` followed by the binary's directory.
fn debuglink_candidates(binary: &Path, name: &str) -> Vec<PathBuf> {
    let dir = binary.parent().unwrap_or(Path::new("."));
    let mut out = vec![dir.join(name), dir.join(".debug").join(name)];
    if let Ok(abs) = dir.canonicalize() {
        let rel = abs.strip_prefix("/").unwrap_or(&abs);
        out.push(Path::new("/usr/lib/debug").join(rel).join(name));
    }
    // A debuglink naming the binary itself would loop back to a file without debug info.
    out.retain(|p| p != binary);
    out
}
