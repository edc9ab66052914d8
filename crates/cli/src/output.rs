//! Where results go: standard output, where a reader that closed the pipe early (`| head`)
//! is not an error.

use std::io::Write as _;

use crate::exit::Failure;

/// Writes `text` to standard output.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::failed(e)),
        _ => Ok(()),
    }
}
