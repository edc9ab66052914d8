//! A debug store: files indexed by build-id in the `.build-id/ab/cdef….debug` layout that gdb,
//! llvm-symbolizer and elfutils read.

use std::fs;
use std::path::{Path, PathBuf};

use faultline_record::BuildId;

use crate::{Error, Result, elf};

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
        let [path, _] = self.candidates(&build_id);
        let mut replaced = false;
        if path.exists() {
            let existing = elf::identity(&path).ok();
            let keep = existing.as_ref().is_some_and(|e| {
                e.build_id.as_ref() == Some(&build_id) && (e.has_dwarf || !identity.has_dwarf)
            });
            if keep {
                return Ok(Added {
                    build_id,
                    path,
                    new: false,
                    replaced: false,
                    has_dwarf: existing.is_some_and(|e| e.has_dwarf),
                });
            }
            replaced = true;
        }
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
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(&path)(e)
        })?;
        Ok(Added {
            build_id,
            path,
            new: true,
            replaced,
            has_dwarf: identity.has_dwarf,
        })
    }
}
