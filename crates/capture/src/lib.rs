//! Crash capture for Rust services: a panic hook that writes a raw, unresolved crash record.
//!
//! Call [`install`] early in `main`. When a thread panics, the hook records the thread's stack
//! as raw frame addresses, the loaded modules (path, GNU build-id, load bias, `PT_LOAD`
//! segments), the panic message and location, and writes them as a `faultline-crash` JSON
//! record (the format `faultline-record` defines) into the crash directory. Then the previously
//! installed hook runs as before, so the usual panic message still reaches stderr.
//!
//! ```no_run
//! faultline_capture::install();
//! // … start the service …
//! ```
//!
//! Nothing is symbolized in-process. A crashing process is the worst place to parse debug info,
//! and production binaries are stripped anyway; `faultline analyze` resolves the addresses later
//! from the record and a debug store keyed by build-id. That is also why this crate does not use
//! the `backtrace` crate (it carries a symbolizer) or serde (the JSON is written by hand): it is
//! linked into every service, so its only dependency is `libc`.
//!
//! With the `tokio` feature (and `RUSTFLAGS="--cfg tokio_unstable"`, which tokio's task dumps
//! need), [`tasks`] takes tokio task dumps as records of raw addresses too, and serves them on
//! an opt-in HTTP endpoint, `/debug/faultline/tasks`.
//!
//! Frames and modules are captured on Linux (glibc or musl). On other systems the hook still
//! writes a record, with no frames or modules.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::io::{self, Write as _};
use std::panic::{self, PanicHookInfo};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

mod json;
mod modules;
mod notes;
mod record;
mod stack;
mod store;
#[cfg(all(feature = "tokio", tokio_unstable))]
pub mod tasks;
mod time;

#[cfg(all(feature = "tokio", not(tokio_unstable)))]
compile_error!(
    "faultline-capture's `tokio` feature takes task dumps, which tokio only offers when built \
     with `RUSTFLAGS=\"--cfg tokio_unstable\"`"
);

pub use record::Record;

/// The environment variable naming the crash directory when [`Options`] does not.
pub const CRASH_DIR_ENV: &str = "FAULTLINE_CRASH_DIR";
/// The crash directory when neither [`Options`] nor [`CRASH_DIR_ENV`] names one, relative to
/// the working directory at [`install`] time.
pub const DEFAULT_CRASH_DIR: &str = "faultline-crashes";

/// How the panic hook behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    crash_dir: Option<PathBuf>,
}

impl Options {
    /// The defaults: the crash directory from [`CRASH_DIR_ENV`], else [`DEFAULT_CRASH_DIR`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes records into `dir`, whatever [`CRASH_DIR_ENV`] says.
    pub fn crash_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crash_dir = Some(dir.into());
        self
    }

    /// The directory records go to, made absolute against the current working directory so a
    /// service that changes directory later still writes where it was told at startup.
    fn resolve_crash_dir(&self) -> PathBuf {
        let dir = self
            .crash_dir
            .clone()
            .or_else(|| {
                std::env::var_os(CRASH_DIR_ENV)
                    .filter(|dir| !dir.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CRASH_DIR));
        std::path::absolute(&dir).unwrap_or(dir)
    }
}

/// Installs the crash-recording panic hook with the default [`Options`].
///
/// See [`install_with`].
pub fn install() {
    install_with(Options::default());
}

/// Installs the crash-recording panic hook.
///
/// The hook runs first on every panic, then calls the hook that was installed before it (std's
/// default hook, unless the program set another). It prints one line to stderr:
/// `faultline: crash record written to <path>`, or `faultline: could not write crash record:
/// <reason>` and the panic carries on as it would have. It works with `panic = "abort"` too:
/// the hook runs before the abort.
///
/// Only the first call in a process installs the hook; later calls do nothing, so a library and
/// its application can both call this without writing two records per panic.
///
/// # Panics
///
/// If called while the current thread is panicking, as [`std::panic::set_hook`] does.
pub fn install_with(options: Options) {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let crash_dir = options.resolve_crash_dir();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        record_panic(info, &crash_dir);
        previous(info);
    }));
}

/// Errors from writing a record.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The crash directory does not exist and could not be created.
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The temporary file could not be created, written or synced.
    Write {
        /// The temporary file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The finished temporary file could not be renamed to the record's name.
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The record's path.
        to: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CreateDir { path, .. } => {
                write!(f, "failed to create crash directory {}", path.display())
            }
            Error::Write { path, .. } => write!(f, "failed to write {}", path.display()),
            Error::Rename { from, to, .. } => {
                write!(f, "failed to rename {} to {}", from.display(), to.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::CreateDir { source, .. }
            | Error::Write { source, .. }
            | Error::Rename { source, .. } => Some(source),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

thread_local! {
    /// Set while this thread runs the hook.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as inside the hook until dropped.
struct ReentryGuard;

impl ReentryGuard {
    /// `None` if this thread is already inside the hook.
    ///
    /// std aborts on a panic inside a panic hook rather than recursing, but a previous hook or
    /// an allocator could still call back into ours; one record per crash is enough.
    fn enter() -> Option<Self> {
        match IN_HOOK.try_with(|flag| flag.replace(true)) {
            Ok(true) => None,
            Ok(false) => Some(ReentryGuard),
            // The thread's locals are being destroyed (a panic in a TLS destructor). Recording
            // the crash is worth more than the guard; a nested panic would abort, not recurse.
            Err(_) => Some(ReentryGuard),
        }
    }
}

impl Drop for ReentryGuard {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|flag| flag.set(false));
    }
}

/// The hook's body. Nothing in here may panic: a panic inside a panic hook aborts the process
/// before the previous hook prints the message.
fn record_panic(info: &PanicHookInfo<'_>, crash_dir: &Path) {
    let Some(_guard) = ReentryGuard::enter() else {
        return;
    };
    let record = Record::capture(payload_message(info.payload()), info.location());
    let outcome = record.write_to(crash_dir);
    // Not `eprintln!`, which panics if stderr is closed.
    let mut stderr = io::stderr().lock();
    let _ = match outcome {
        Ok(path) => writeln!(
            stderr,
            "faultline: crash record written to {}",
            path.display()
        ),
        Err(error) => {
            let source = std::error::Error::source(&error)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            writeln!(
                stderr,
                "faultline: could not write crash record: {error}{source}"
            )
        }
    };
}

/// The panic message, as std's default hook finds it.
fn payload_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "Box<dyn Any>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_in_the_payload() {
        let payloads: [(Box<dyn Any + Send>, &str); 3] = [
            (Box::new("static"), "static"),
            (Box::new(String::from("formatted 1")), "formatted 1"),
            (Box::new(42_u32), "Box<dyn Any>"),
        ];
        for (payload, expected) in &payloads {
            assert_eq!(payload_message(payload.as_ref()), *expected);
        }
    }

    #[test]
    fn options_override_the_environment() {
        let dir = Options::new().crash_dir("/var/crash").resolve_crash_dir();
        assert_eq!(dir, Path::new("/var/crash"));
        // Relative directories are anchored at install time.
        let dir = Options::new().crash_dir("rel").resolve_crash_dir();
        assert!(
            dir.is_absolute() && dir.ends_with("rel"),
            "{}",
            dir.display()
        );
    }

    #[test]
    fn the_guard_refuses_to_nest() {
        let outer = ReentryGuard::enter();
        assert!(outer.is_some());
        assert!(ReentryGuard::enter().is_none());
        drop(outer);
        assert!(ReentryGuard::enter().is_some());
    }
}
