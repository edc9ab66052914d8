//! Exit codes, in one place (documented in docs/cli.md).

use std::process::ExitCode;

/// The command ran; unknown frames, if any, are part of its output, not a failure.
pub const OK: u8 = 0;
/// Something failed while running: an I/O error, a failed write.
pub const FAILED: u8 = 1;
/// Bad usage or bad input: an unreadable record, a non-ELF file, a malformed address.
pub const BAD_INPUT: u8 = 2;
/// No debug file could be found for the build-id asked for.
pub const NOT_FOUND: u8 = 3;
/// `faultline leaks`: at least one task group is leaking (the report was printed).
pub const LEAKING: u8 = 4;
/// The infrastructure the command needs cannot be reached: a Kubernetes cluster without a
/// configuration, or one that refuses the connection (`run`, `inject --pod`, `inject
/// pod-kill`, `tui --kube` alike).
pub const INFRASTRUCTURE: u8 = 4;

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    /// `None` for an outcome that is not an error but needs its own exit code (a leak found):
    /// nothing is printed for it.
    error: Option<anyhow::Error>,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: Some(error.into()),
        }
    }

    /// Exit with `code` and print nothing more: the output already said it.
    pub fn quiet(code: u8) -> Self {
        Self { code, error: None }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The error and its causes on one line.
    pub fn message(&self) -> String {
        self.error
            .as_ref()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self::new(BAD_INPUT, anyhow::anyhow!("{message}"))
    }

    pub fn failed(error: impl Into<anyhow::Error>) -> Self {
        Self::new(FAILED, error)
    }

    pub fn report(self) -> ExitCode {
        debug_assert_ne!(self.code, OK);
        // `{:#}` prints the whole chain on one line: "file: what: why".
        if let Some(error) = &self.error {
            eprintln!("faultline: error: {error:#}");
        }
        ExitCode::from(self.code)
    }
}

/// Maps a library error to an exit code: format problems are bad input, the rest failures.
pub fn from_symbolize(error: faultline_symbolize::Error) -> Failure {
    use faultline_symbolize::Error as E;
    let code = match &error {
        E::Object { .. } | E::Dwarf { .. } | E::NoBuildId { .. } => BAD_INPUT,
        E::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::InvalidInput
            ) =>
        {
            BAD_INPUT
        }
        _ => FAILED,
    };
    Failure::new(code, error)
}
