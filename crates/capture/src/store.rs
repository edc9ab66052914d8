//! Putting a record on disk so that a reader (an agent watching the directory, or a human)
//! sees either nothing or the whole file, even if the process dies mid-write.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Writes `bytes` to `dir/name` through a temporary file in the same directory: write, fsync,
/// rename. The rename is atomic because both names are in one directory (one file system).
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(name);
    // A dot-name, so a watcher that lists `faultline-crash-*.json` never picks it up.
    let temp = dir.join(format!(".{name}.tmp"));
    let result = write_synced(&temp, bytes)
        .map_err(|source| Error::Write {
            path: temp.clone(),
            source,
        })
        .and_then(|()| {
            fs::rename(&temp, &path).map_err(|source| Error::Rename {
                from: temp.clone(),
                to: path.clone(),
                source,
            })
        });
    if result.is_err() {
        // Best effort: the error being reported matters more than a leftover temp file.
        let _ = fs::remove_file(&temp);
    }
    result?;
    // Persist the rename too. Best effort: the record is already complete and visible, and some
    // file systems refuse to fsync a directory.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|entry| {
                entry
                    .unwrap_or_else(|e| panic!("{e}"))
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_the_directory_and_leaves_only_the_file() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().join("a/b");
        let path = write_atomically(&dir, "x.json", b"{}\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path, dir.join("x.json"));
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"{}\n"[..]));
        assert_eq!(names_in(&dir), ["x.json"]);
    }

    #[test]
    fn reports_a_directory_that_cannot_be_created() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = root.path().join("file");
        fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        let error = write_atomically(&file.join("sub"), "x.json", b"{}")
            .err()
            .unwrap_or_else(|| panic!("writing under a file succeeded"));
        assert!(matches!(error, Error::CreateDir { .. }), "{error:?}");
        assert!(error.to_string().contains("sub"), "{error}");
    }

    #[test]
    fn removes_the_temp_file_when_the_rename_fails() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // A non-empty directory where the record should go makes the rename fail.
        fs::create_dir_all(root.path().join("x.json/inside")).unwrap_or_else(|e| panic!("{e}"));
        let error = write_atomically(root.path(), "x.json", b"{}")
            .err()
            .unwrap_or_else(|| panic!("renaming onto a directory succeeded"));
        assert!(matches!(error, Error::Rename { .. }), "{error:?}");
        assert_eq!(names_in(root.path()), ["x.json"]);
    }
}
