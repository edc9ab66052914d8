//! Go race detector reports, inside Go traceback text: a `-race` build (and `go test -race`)
//! prints each race between `==================` lines.
//!
//! ```text
//! ==================
//! WARNING: DATA RACE
//! Write at 0x00c0000980f0 by goroutine 8:
//!   main.store()
//!       /app/main.go:11 +0x4f
//!
//! Previous write at 0x00c0000980f0 by main goroutine:
//!   main.main()
//!       /app/main.go:20 +0x6d
//!
//! Goroutine 8 (running) created at:
//!   main.main()
//!       /app/main.go:19 +0x6d
//! ==================
//! Found 1 data race(s)
//! ```
//!
//! The go_text parser hands a report's lines here from its `WARNING: DATA RACE` to the
//! `==================` that closes it.

use std::sync::Arc;

use crate::{Diagnostic, Frame, Provenance, Race, RaceAccess, RaceGoroutine};

/// What the lines being read belong to.
enum Section {
    None,
    Access,
    Goroutine,
}

/// One race report being read.
pub(crate) struct Builder {
    race: Race,
    section: Section,
    /// A function line waiting for its file line.
    pending: Option<String>,
}

impl Builder {
    pub(crate) fn new(line: usize) -> Self {
        Self {
            race: Race {
                line,
                accesses: Vec::new(),
                goroutines: Vec::new(),
            },
            section: Section::None,
            pending: None,
        }
    }

    /// Takes one line (trimmed); `false` when it closed the report.
    pub(crate) fn line(
        &mut self,
        line_no: usize,
        line: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> bool {
        if line.starts_with("==================") {
            self.flush();
            return false;
        }
        if line.is_empty() || line == "[failed to restore the stack]" {
            return true;
        }
        if let Some(access) = parse_access(line) {
            self.flush();
            self.race.accesses.push(access);
            self.section = Section::Access;
            return true;
        }
        if let Some(goroutine) = parse_goroutine(line) {
            self.flush();
            self.race.goroutines.push(goroutine);
            self.section = Section::Goroutine;
            return true;
        }
        if let Some((file, number)) = location(line) {
            match self.pending.take() {
                Some(function) => self.push(Frame {
                    file: Some(Arc::from(file)),
                    line: Some(number),
                    ..frame(&function)
                }),
                None => diagnostics.push(Diagnostic {
                    line: line_no,
                    message: "a file:line with no function line before it".into(),
                }),
            }
            return true;
        }
        if let Some(function) = line.strip_suffix("()").filter(|f| !f.contains(' ')) {
            self.flush();
            self.pending = Some(function.to_owned());
            return true;
        }
        diagnostics.push(Diagnostic {
            line: line_no,
            message: format!("unexpected line in a race report: {}", crate::shorten(line)),
        });
        true
    }

    /// The report, as far as it went.
    pub(crate) fn finish(mut self) -> Race {
        self.flush();
        self.race
    }

    /// A function line never followed by its file line: kept without one.
    fn flush(&mut self) {
        if let Some(function) = self.pending.take() {
            self.push(frame(&function));
        }
    }

    fn push(&mut self, frame: Frame) {
        match self.section {
            Section::Access => {
                if let Some(a) = self.race.accesses.last_mut() {
                    a.frames.push(frame);
                }
            }
            Section::Goroutine => {
                if let Some(g) = self.race.goroutines.last_mut() {
                    g.created_at.push(frame);
                }
            }
            Section::None => {}
        }
    }
}

fn frame(function: &str) -> Frame {
    Frame {
        function: Arc::from(function),
        file: None,
        line: None,
        column: None,
        offset: None,
        address: None,
        inlined: false,
        provenance: Provenance::GoTraceback,
    }
}

/// `/app/main.go:11 +0x4f` → (file, line).
fn location(line: &str) -> Option<(&str, u32)> {
    let head = line.split(" +0x").next().unwrap_or(line);
    let (file, number) = head.rsplit_once(':')?;
    (!file.is_empty() && file.contains('/') || file.ends_with(".go"))
        .then_some(())
        .and(number.parse().ok().map(|n| (file, n)))
}

/// `Write at 0x00c0000980f0 by goroutine 8:`, `Previous read at 0x… by main goroutine:`.
fn parse_access(line: &str) -> Option<RaceAccess> {
    let body = line.strip_suffix(':')?;
    let (kind, rest) = body.split_once(" at ")?;
    let (address, by) = rest.split_once(" by ")?;
    let (goroutine, main) = if by == "main goroutine" {
        (None, true)
    } else {
        (Some(by.strip_prefix("goroutine ")?.parse().ok()?), false)
    };
    let lower = kind.to_ascii_lowercase();
    if !(lower.ends_with("read") || lower.ends_with("write")) {
        return None;
    }
    Some(RaceAccess {
        kind: kind.to_owned(),
        write: lower.ends_with("write"),
        previous: lower.starts_with("previous"),
        address: address
            .strip_prefix("0x")
            .and_then(|a| u64::from_str_radix(a, 16).ok()),
        goroutine,
        main,
        frames: Vec::new(),
    })
}

/// `Goroutine 8 (running) created at:`.
fn parse_goroutine(line: &str) -> Option<RaceGoroutine> {
    let body = line
        .strip_prefix("Goroutine ")?
        .strip_suffix(" created at:")?;
    let (id, state) = body.split_once(" (")?;
    Some(RaceGoroutine {
        id: id.parse().ok()?,
        state: state.strip_suffix(')')?.to_owned(),
        created_at: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_and_goroutine_lines() {
        let a = parse_access("Write at 0x00c0000980f0 by goroutine 8:").unwrap();
        assert_eq!(
            (
                a.kind.as_str(),
                a.write,
                a.previous,
                a.address,
                a.goroutine,
                a.main
            ),
            ("Write", true, false, Some(0xc0000980f0), Some(8), false)
        );
        let a = parse_access("Previous read at 0x00c000012345 by main goroutine:").unwrap();
        assert!(!a.write && a.previous && a.main && a.goroutine.is_none());
        let a = parse_access("Atomic write at 0x1 by goroutine 3:").unwrap();
        assert!(a.write && !a.previous);
        assert!(parse_access("Location is heap block of size 8 at 0x1:").is_none());
        let g = parse_goroutine("Goroutine 7 (finished) created at:").unwrap();
        assert_eq!((g.id, g.state.as_str()), (7, "finished"));
        assert!(parse_goroutine("Goroutine x (running) created at:").is_none());
    }
}
