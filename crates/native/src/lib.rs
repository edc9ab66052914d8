//! Native crashes of programs that linked nothing of ours.
//!
//! - [`elfcore`] reads an ELF core: the threads and their registers, the signal and its
//!   faulting address, the process's name, the mapped files and the memory the kernel kept.
//! - [`modules`] turns the mapped files into modules: load bias, segments, and the GNU build-id
//!   from the ELF headers the kernel keeps in the core.
//! - [`unwind`] walks every thread's stack offline with framehop: DWARF CFI from the modules'
//!   files where there is some, frame pointers where there is none, stack scanning last; each
//!   frame with how it was found ([`unwind::Trust`]).
//! - [`trim`] reads a core once from a stream (what the kernel pipes into `core_pattern`'s
//!   handler) and keeps a valid core of kilobytes: every note, each mapped file's first page,
//!   a window of each thread's stack.
//!
//! No I/O: the caller reads the files (the core, and the modules' files for their unwind
//! data) and symbolizes the frames (faultline-symbolize, by build-id).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cfi;
pub mod elfcore;
pub mod modules;
pub mod trim;
pub mod unwind;

pub use elfcore::{Core, CoreError};
pub use modules::{LoadedModule, modules};
pub use unwind::{CoreUnwinder, NativeFrame, Trust};
