//! `faultline agent --catch-cores DIR`: the agent owns the node's core handler while it runs.
//!
//! [`CatchCores::install`] writes `core_pattern` so the kernel pipes every core into
//! `faultline core-handler --out DIR …`, and keeps the pattern it replaced in the state
//! directory; dropping it (the agent stopping, however it returns) puts that pattern back,
//! unless somebody else changed it meanwhile. An agent killed outright leaves its pattern in
//! place (the handler still works: it is a separate process); the next agent to start with
//! `--catch-cores` finds the saved pattern and restores that one when it stops.
//! [`list`] is what `GET /v1/crashes` serves: the small cores and minidumps in DIR.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The kernel's `core_pattern` file.
pub const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
/// The kernel keeps at most this many bytes of a pattern (`CORENAME_MAX_SIZE`, less its NUL).
pub const MAX_PATTERN: usize = 127;
/// Where the replaced pattern is kept, in the state directory.
const SAVED: &str = "core_pattern.previous";

/// The pattern that pipes cores into `exe core-handler`, with `dir` as its `--out`: the
/// flags are the handler's contract (`%P` the pid in the initial namespace, `%i` the thread,
/// `%s` the signal, `%t` the time, `%E` the executable's path with `!` for `/`).
pub fn handler_pattern(exe: &Path, dir: &Path) -> String {
    format!(
        "|{} core-handler --out {} --pid %P --tid %i --signal %s --time %t --exe %E",
        exe.display(),
        dir.display()
    )
}

/// The agent's hold on `core_pattern`; restores the replaced pattern when dropped.
#[derive(Debug)]
pub struct CatchCores {
    file: PathBuf,
    ours: String,
    previous: String,
    saved: PathBuf,
}

impl CatchCores {
    /// Points `file` (the kernel's [`CORE_PATTERN`], or a stand-in in tests) at the core
    /// handler writing into `dir`. Refused, touching nothing, when `dir` or `exe` is not
    /// absolute (the kernel runs the handler from `/`), contains a space (the kernel splits
    /// the pattern on spaces), or the pattern would be longer than the kernel keeps.
    pub fn install(file: &Path, exe: &Path, dir: &Path, state_dir: &Path) -> Result<Self, String> {
        for (what, path) in [("--catch-cores", dir), ("the faultline binary", exe)] {
            if !path.is_absolute() {
                return Err(format!(
                    "{what} {}: must be an absolute path (the kernel starts the handler from /)",
                    path.display()
                ));
            }
            if path.to_string_lossy().contains(char::is_whitespace) {
                return Err(format!(
                    "{what} {}: the kernel splits core_pattern on spaces; use a path without one",
                    path.display()
                ));
            }
        }
        let ours = handler_pattern(exe, dir);
        if ours.len() > MAX_PATTERN {
            return Err(format!(
                "--catch-cores: the core_pattern line would be {} bytes and the kernel keeps {}: \
                 use shorter paths ({ours})",
                ours.len(),
                MAX_PATTERN
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--catch-cores {}: {e}", dir.display()))?;
        let current = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .trim_end_matches('\n')
            .to_owned();
        let saved = state_dir.join(SAVED);
        // Ours already (an agent before this one was killed): the pattern it replaced is the
        // one it saved.
        let previous = if current == ours {
            std::fs::read_to_string(&saved)
                .map(|s| s.trim_end_matches('\n').to_owned())
                .unwrap_or_else(|_| "core".to_owned())
        } else {
            current
        };
        std::fs::write(&saved, format!("{previous}\n"))
            .map_err(|e| format!("{}: {e}", saved.display()))?;
        std::fs::write(file, format!("{ours}\n")).map_err(|e| {
            let _ = std::fs::remove_file(&saved);
            format!(
                "{}: {e} (owning the core handler needs root)",
                file.display()
            )
        })?;
        Ok(Self {
            file: file.to_owned(),
            ours,
            previous,
            saved,
        })
    }

    /// The pattern written.
    pub fn pattern(&self) -> &str {
        &self.ours
    }

    /// The pattern it replaced, put back when the agent stops.
    pub fn previous(&self) -> &str {
        &self.previous
    }
}

impl Drop for CatchCores {
    fn drop(&mut self) {
        let now = std::fs::read_to_string(&self.file).unwrap_or_default();
        if now.trim_end_matches('\n') != self.ours {
            eprintln!(
                "faultline agent: core_pattern was changed while the agent owned it; left as \
                 it is ({})",
                now.trim_end()
            );
            let _ = std::fs::remove_file(&self.saved);
            return;
        }
        match std::fs::write(&self.file, format!("{}\n", self.previous)) {
            Ok(()) => {
                let _ = std::fs::remove_file(&self.saved);
                eprintln!(
                    "faultline agent: core_pattern restored to {:?}",
                    self.previous
                );
            }
            Err(e) => eprintln!(
                "faultline agent: could not restore core_pattern to {:?}: {}: {e}",
                self.previous,
                self.file.display()
            ),
        }
    }
}

/// A crash the core handler kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashFile {
    /// Its file name in the directory (`core-<time>-<pid>.core` or `.dmp`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was written, in seconds since the epoch.
    pub modified: u64,
}

/// Whether `name` is a file the handler writes (and the API serves): `core-….core`,
/// `core-….dmp`, or the handler's log.
pub fn is_crash_file(name: &str) -> bool {
    !name.contains('/')
        && ((name.starts_with("core-") && (name.ends_with(".core") || name.ends_with(".dmp")))
            || name == "core-handler.log")
}

/// The crashes in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<CrashFile> {
    let mut files: Vec<CrashFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            if !is_crash_file(&name) || name == "core-handler.log" {
                return None;
            }
            let meta = e.metadata().ok()?;
            Some(CrashFile {
                name,
                size: meta.len(),
                modified: meta
                    .modified()
                    .ok()?
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?
                    .as_secs(),
            })
        })
        .collect();
    files.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_installed_and_the_old_one_restored_unless_changed_since() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core_pattern");
        std::fs::write(&file, "core\n").unwrap();
        let exe = Path::new("/usr/local/bin/faultline");
        let out = dir.path().join("cores");
        let held = CatchCores::install(&file, exe, &out, dir.path()).unwrap();
        let line = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            line,
            format!(
                "|/usr/local/bin/faultline core-handler --out {} --pid %P --tid %i --signal %s \
                 --time %t --exe %E\n",
                out.display()
            )
        );
        assert_eq!(held.previous(), "core");
        drop(held);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "core\n");
        assert!(!dir.path().join(SAVED).exists());

        // Changed by somebody else meanwhile: left alone.
        let held = CatchCores::install(&file, exe, &out, dir.path()).unwrap();
        std::fs::write(&file, "|/usr/lib/systemd/systemd-coredump %P\n").unwrap();
        drop(held);
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .contains("systemd-coredump")
        );

        // An agent killed outright: the next one restores what the first replaced.
        std::fs::write(&file, "core.%p\n").unwrap();
        let first = CatchCores::install(&file, exe, &out, dir.path()).unwrap();
        std::mem::forget(first);
        let second = CatchCores::install(&file, exe, &out, dir.path()).unwrap();
        assert_eq!(second.previous(), "core.%p");
        drop(second);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "core.%p\n");
    }

    #[test]
    fn a_pattern_the_kernel_would_cut_or_split_is_refused_touching_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core_pattern");
        std::fs::write(&file, "core\n").unwrap();
        let exe = Path::new("/usr/local/bin/faultline");
        let long = PathBuf::from(format!("/var/{}", "x".repeat(100)));
        let e = CatchCores::install(&file, exe, &long, dir.path()).unwrap_err();
        assert!(e.contains("the kernel keeps 127"), "{e}");
        let e =
            CatchCores::install(&file, exe, Path::new("/var/my cores"), dir.path()).unwrap_err();
        assert!(e.contains("splits core_pattern on spaces"), "{e}");
        let e = CatchCores::install(&file, exe, Path::new("cores"), dir.path()).unwrap_err();
        assert!(e.contains("absolute path"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "core\n");
    }

    #[test]
    fn only_the_handler_s_files_are_listed() {
        assert!(is_crash_file("core-1765000000-42.core"));
        assert!(is_crash_file("core-1765000000-42.dmp"));
        assert!(!is_crash_file("../core-1.core"));
        assert!(!is_crash_file(".core-1.core.tmp"));
        assert!(!is_crash_file("journal"));
    }
}
