//! Reading the identity of an ELF file: its GNU build-id and its `.gnu_debuglink`.

use std::fs::File;
use std::path::Path;

use faultline_record::BuildId;
use object::{Object, ObjectSection};

use crate::{Error, Result};

/// What identifies an ELF file for debug-file lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfIdentity {
    /// The GNU build-id, if the file has an `NT_GNU_BUILD_ID` note.
    pub build_id: Option<BuildId>,
    /// The `.gnu_debuglink` file name and CRC, if present.
    pub debuglink: Option<(String, u32)>,
    /// Whether the file carries DWARF line or function information.
    pub has_dwarf: bool,
}

/// Reads the build-id, debuglink and whether the file has DWARF.
pub fn identity(path: &Path) -> Result<ElfIdentity> {
    let file = open_file(path)?;
    // SAFETY: the map is read-only; a file truncated under us can fault, which is the same risk
    // every symbolizer (gdb, llvm-symbolizer, addr2line) accepts for debug files.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    identity_of_bytes(&map).map_err(|e| match e {
        Error::Object { source, .. } => Error::Object {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

/// Opens a file to map it, refusing a directory with a message that says what was expected.
pub(crate) fn open_file(path: &Path) -> Result<File> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(io)?.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory, expected an ELF file",
        )));
    }
    File::open(path).map_err(io)
}

/// Like [`identity`], from bytes already in memory.
pub fn identity_of_bytes(data: &[u8]) -> Result<ElfIdentity> {
    let obj = object::File::parse(data).map_err(|source| Error::Object {
        path: Default::default(),
        source,
    })?;
    let build_id = match obj.build_id() {
        Ok(Some(bytes)) => BuildId::new(bytes.to_vec()).ok(),
        _ => None,
    };
    let debuglink = match obj.gnu_debuglink() {
        Ok(Some((name, crc))) => Some((String::from_utf8_lossy(name).into_owned(), crc)),
        _ => None,
    };
    let has_dwarf = [".debug_info", ".debug_line", ".zdebug_info"]
        .iter()
        .any(|name| obj.section_by_name(name).is_some_and(|s| s.size() > 0));
    Ok(ElfIdentity {
        build_id,
        debuglink,
        has_dwarf,
    })
}
