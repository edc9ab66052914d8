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
        let mut mismatch: Option<(PathBuf, Option<BuildId>)> = None;
        let mut check = |path: &Path, source: Source, tried: &mut Vec<String>| {
            let identity = self.identity(path)?;
            if identity.build_id.as_ref() == Some(build_id) {
                return Some(Found {
                    path: path.to_owned(),
                    source,
                });
            }
            tried.push(format!("{} (other build-id)", path.display()));
            mismatch.get_or_insert((path.to_owned(), identity.build_id));
            None
        };

        for file in &self.explicit {
            if let Some(found) = check(file, Source::Explicit, &mut tried) {
                return Ok(found);
            }
        }
        for store in &self.stores {
            let mut hit = false;
            for candidate in store.candidates(build_id) {
                if candidate.exists() {
                    hit = true;
                    if let Some(found) =
                        check(&candidate, Source::Store(candidate.clone()), &mut tried)
                    {
                        return Ok(found);
                    }
                }
            }
            if !hit {
                tried.push(format!("store {}", store.candidates(build_id)[0].display()));
            }
        }
        if let Some(binary) = binary
            && let Some(identity) = self.identity(binary)
        {
            if let Some((name, _crc)) = &identity.debuglink {
                for candidate in debuglink_candidates(binary, name) {
                    if candidate.exists()
                        && let Some(found) = check(&candidate, Source::Debuglink, &mut tried)
                    {
                        return Ok(found);
                    }
                }
                tried.push(format!("debuglink {name}"));
            }
            if identity.has_dwarf
                && let Some(found) = check(binary, Source::Binary, &mut tried)
            {
                return Ok(found);
            }
        }
        if let Some(client) = &self.debuginfod {
            match client.fetch_debuginfo(build_id) {
                Ok(Fetched::Found { path, from_cache }) => {
                    return Ok(Found {
                        path,
                        source: Source::Debuginfod { from_cache },
                    });
                }
                Ok(Fetched::NotFound { reason }) => tried.push(reason),
                Err(e) => tried.push(e.to_chain()),
            }
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
