//! Native crashes of programs that linked nothing of ours.
//!
//! - [`elfcore`] reads an ELF core: the threads and their registers, the signal and its
//!   faulting address, the process's name, the mapped files and the memory the kernel kept.
//! - [`modules`] turns the mapped files into modules: load bias, segments, and the GNU build-id
//!   from the ELF headers the kernel keeps in the core.
//! - [`unwind`] walks every thread's stack offline with framehop: DWARF CFI from the modules'
//!   files where there is some, frame pointers where there is none, stack scanning last; each
//!   frame with how it was found ([`unwind::Trust`]).
//! - [`minidump`] writes a core as a minidump (Breakpad/Crashpad's format) and reads one into
//!   the same [`Core`], so both unwind with the same code.
//! - [`trim`] reads a core once from a stream (what the kernel pipes into `core_pattern`'s
//!   handler) and keeps a valid core of kilobytes: every note, each mapped file's first page,
//!   a window of each thread's stack.
//!
//! No I/O: the caller reads the files (the core, and the modules' files for their unwind
//! data) and symbolizes the frames (faultline-symbolize, by build-id).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cfi;
pub mod elfcore;
pub mod minidump;
pub mod modules;
pub mod record;
pub mod trim;
pub mod unwind;

pub use elfcore::{Core, CoreError};
pub use modules::{LoadedModule, modules};
pub use unwind::{CoreUnwinder, NativeFrame, Trust};

/// What a dump file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An ELF core (the kernel's, or the core handler's compact one).
    Core,
    /// A minidump (Breakpad, Crashpad, the core handler).
    Minidump,
}

impl Format {
    /// `core`, `minidump`: as messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Minidump => "minidump",
        }
    }
}

/// A dump read: the process, its modules, and what the file was.
#[derive(Debug, Clone)]
pub struct Dump<'data> {
    /// The process: threads, registers, signal, memory.
    pub core: Core<'data>,
    /// Its modules, in address order.
    pub modules: Vec<LoadedModule>,
    /// What the file was.
    pub format: Format,
}

/// Reads `data` as an ELF core or a minidump, whichever it starts like.
pub fn open(data: &[u8]) -> Result<Dump<'_>, CoreError> {
    if minidump::looks_like_minidump(data) {
        let (core, modules) = minidump::read(data)?;
        return Ok(Dump {
            core,
            modules,
            format: Format::Minidump,
        });
    }
    let core = Core::parse(data)?;
    let modules = modules::modules(&core);
    Ok(Dump {
        core,
        modules,
        format: Format::Core,
    })
}
