//! Debug-file lookup by GNU build-id and offline symbolization.
//!
//! Two halves:
//! - **lookup** ([`Locator`]): given a build-id (and maybe the path the binary had), find a debug
//!   file whose build-id matches — explicit files, `.build-id/` store directories, the binary's
//!   `.gnu_debuglink`, debuginfod servers. A file whose build-id does not match is never used.
//! - **symbolization** ([`DebugFile`], [`Symbolizer`]): module-relative addresses to frames with
//!   every inlined function, demangled names, file, line and column, using gimli/addr2line.
//!
//! Not found is a value ([`Symbolized::Unknown`] with a [`Reason`]), never a guess; an
//! [`Error`] is an I/O or format failure. Everything here is synchronous.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;

pub mod debuginfod;
pub mod elf;
pub mod index;

pub use faultline_record::BuildId;

/// Errors: I/O and format failures. Absence of information is not an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid ELF object.
    #[error("{}: not a valid ELF file", path.display())]
    Object {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: object::Error,
    },
    /// A file's DWARF could not be read.
    #[error("{}: bad DWARF", path.display())]
    Dwarf {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: gimli::Error,
    },
    /// A debuginfod server misbehaved in a way worth reporting (not a plain 404).
    #[error("debuginfod {url}: {message}")]
    Debuginfod {
        /// The URL asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A file has no GNU build-id where one is required.
    #[error("{}: has no GNU build-id note", path.display())]
    NoBuildId {
        /// The file.
        path: PathBuf,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The message with every cause, `what: why: why`, for places that keep errors as text
    /// (a [`Reason`], a list of places tried).
    pub fn to_chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

mod demangle;
mod locate;
pub mod record;
mod store;
mod symbolizer;

pub use locate::{Found, Locator, NotFound, Source};
pub use store::{
    Added, DebugStore, Entry, StoredFile, has_unwind_tables, plan_gc, unwind_tables_in,
};
pub use symbolizer::{
    DebugFile, Demangle, SymbolizeOptions, Symbolizer, symbolize_many, symbolize_to,
};

use std::fmt;
use std::sync::Arc;

/// One source-level frame: a function, maybe inlined into the next frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    /// The function's name, demangled as asked; `None` when the debug info has no name.
    pub function: Option<Arc<str>>,
    /// The source file, as the compiler recorded it (joined with the compilation directory).
    pub file: Option<Arc<str>>,
    /// 1-based line, if known.
    pub line: Option<u32>,
    /// 1-based column; `Some(0)` means the start of the line.
    pub column: Option<u32>,
    /// Whether this function was inlined into the next frame (all frames of an address but the
    /// last).
    pub inlined: bool,
}

/// The outcome for one address: frames (innermost first), or unknown with the reason why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbolized {
    /// At least one frame. The last is the real (not inlined) function.
    Frames(Vec<SourceFrame>),
    /// Nothing is known about this address, and this is why.
    Unknown(Reason),
}

/// Why an address could not be symbolized. Never a guess.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// No debug file with this build-id was found anywhere we looked.
    NoDebugFile {
        /// The build-id looked for.
        build_id: BuildId,
        /// Where we looked, in order.
        tried: Vec<String>,
    },
    /// A debug file was found, but it belongs to another build.
    BuildIdMismatch {
        /// The file.
        path: std::path::PathBuf,
        /// The build-id the module has.
        expected: BuildId,
        /// The build-id the file has (`None`: it has none).
        found: Option<BuildId>,
    },
    /// The module has no GNU build-id, so its debug file cannot be identified.
    ModuleWithoutBuildId {
        /// The module's path.
        module: String,
    },
    /// The address lies in no loaded module.
    NotInModule,
    /// The debug file describes no function and no symbol at this address.
    OutsideFunctions,
    /// The file has neither DWARF nor a symbol covering this address.
    NoDebugInfo,
    /// The debug information at this address could not be read.
    CorruptDebugInfo(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoDebugFile { build_id, tried } => {
                write!(f, "no debug file for build-id {build_id}")?;
                if !tried.is_empty() {
                    write!(f, " (tried: {})", tried.join("; "))?;
                }
                Ok(())
            }
            Reason::BuildIdMismatch {
                path,
                expected,
                found,
            } => match found {
                Some(found) => write!(
                    f,
                    "build-id mismatch: {} has build-id {found}, the module has {expected}",
                    path.display()
                ),
                None => write!(
                    f,
                    "build-id mismatch: {} has no build-id, the module has {expected}",
                    path.display()
                ),
            },
            Reason::ModuleWithoutBuildId { module } => write!(
                f,
                "module {module} has no GNU build-id, so no debug file can be matched to it"
            ),
            Reason::NotInModule => f.write_str("address outside every loaded module"),
            Reason::OutsideFunctions => f.write_str("address outside every function"),
            Reason::NoDebugInfo => f.write_str("no debug info or symbol at this address"),
            Reason::CorruptDebugInfo(message) => write!(f, "unreadable debug info: {message}"),
        }
    }
}
