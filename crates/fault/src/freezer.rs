//! Pausing a whole cgroup with the kernel's freezer: every process in it, including those
//! started while it is frozen, stops at once, and none can be missed the way a SIGSTOP sent
//! process by process could miss a child forked meanwhile.
//!
//! cgroup v1: the `freezer` controller's `freezer.state` (`FROZEN`, `THAWED`; `FREEZING` while
//! it works). cgroup v2: `cgroup.freeze` (`1`, `0`), confirmed by `frozen 1` in
//! `cgroup.events`. As with a paused process, a thaw guard holds a lease pipe and thaws the
//! cgroup when the pipe ends or the deadline passes.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command};
use std::time::{Duration, Instant};

use crate::Error;

/// A cgroup the freezer can stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// A directory of the v1 `freezer` hierarchy.
    V1(PathBuf),
    /// A directory of the v2 (unified) hierarchy.
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of cgroup directory `dir`: v1 if it has `freezer.state`, v2 if it has
    /// `cgroup.freeze`.
    pub fn of(dir: &Path) -> Result<Self, Error> {
        if dir.join("freezer.state").exists() {
            Ok(Freezer::V1(dir.to_owned()))
        } else if dir.join("cgroup.freeze").exists() {
            Ok(Freezer::V2(dir.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "{}: not a cgroup the freezer can stop (no freezer.state or cgroup.freeze; the \
                 root cgroup cannot be frozen)",
                dir.display()
            )))
        }
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V1(d) | Freezer::V2(d) => d,
        }
    }

    /// Asks the kernel to freeze (`true`) or thaw the cgroup.
    pub fn set(&self, frozen: bool) -> Result<(), Error> {
        let (file, value) = match self {
            Freezer::V1(d) => (
                d.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Freezer::V2(d) => (d.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
        };
        std::fs::write(&file, value).map_err(|e| Error::io(format!("write {}", file.display()), e))
    }

    /// Whether the kernel says the cgroup is frozen (all of it: not while still freezing).
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let (file, parse): (PathBuf, fn(&str) -> bool) = match self {
            Freezer::V1(d) => (d.join("freezer.state"), |t| t.trim() == "FROZEN"),
            Freezer::V2(d) => (d.join("cgroup.events"), events_frozen),
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::io(format!("read {}", file.display()), e))?;
        Ok(parse(&text))
    }

    /// Sets the state and waits (up to 2 s) until the kernel reports it.
    pub fn set_and_check(&self, frozen: bool) -> Result<(), Error> {
        self.set(frozen)?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Residue(format!(
                    "{} is not {} after 2 s",
                    self.dir().display(),
                    if frozen { "frozen" } else { "thawed" }
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `frozen 1` in a v2 `cgroup.events`.
pub fn events_frozen(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "frozen 1")
}

/// A frozen cgroup that cannot stay frozen by accident (see the module notes).
#[derive(Debug)]
pub struct FrozenCgroup {
    freezer: Freezer,
    guard: Child,
    lease: Option<ChildStdin>,
}

impl FrozenCgroup {
    /// Starts the thaw guard with `guard` (a command that runs [`run_thaw_guard`] for this
    /// cgroup and the fault's deadline), waits for it to be ready, then freezes.
    pub fn apply(freezer: Freezer, guard: Command) -> Result<Self, Error> {
        let (child, lease) = crate::process::start_guard(guard, "thaw guard")?;
        let frozen = Self {
            freezer,
            guard: child,
            lease,
        };
        if let Err(e) = frozen.freezer.set_and_check(true) {
            // Dropping `frozen` below thaws through the guard; thaw here too, at once.
            let _ = frozen.freezer.set(false);
            return Err(e);
        }
        Ok(frozen)
    }

    /// The guard's process id.
    pub fn guard_pid(&self) -> u32 {
        self.guard.id()
    }

    /// Thaws, checks the kernel says so, and ends the guard.
    pub fn revert(mut self) -> Result<(), Error> {
        let thawed = self.freezer.set_and_check(false);
        drop(self.lease.take());
        let _ = self.guard.wait();
        thawed
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        // The guard thaws when its lease ends.
        drop(self.lease.take());
    }
}

/// The thaw guard's whole life: says `ready`, waits until standard input (the lease pipe)
/// ends or `deadline` passes, then thaws `dir`. Ignores the terminal's signals.
pub fn run_thaw_guard(dir: &Path, deadline: Duration) -> Result<(), Error> {
    let freezer = Freezer::of(dir)?;
    crate::process::wait_for_lease(deadline)?;
    freezer.set_and_check(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_are_told_apart_and_read() {
        let tree = tempfile::tempdir().unwrap();
        assert!(Freezer::of(tree.path()).is_err());

        std::fs::write(tree.path().join("cgroup.freeze"), "0\n").unwrap();
        std::fs::write(tree.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        let v2 = Freezer::of(tree.path()).unwrap();
        assert_eq!(v2, Freezer::V2(tree.path().to_owned()));
        assert!(!v2.is_frozen().unwrap());
        v2.set(true).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        std::fs::write(tree.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert!(v2.is_frozen().unwrap());

        let v1dir = tempfile::tempdir().unwrap();
        std::fs::write(v1dir.path().join("freezer.state"), "THAWED\n").unwrap();
        let v1 = Freezer::of(v1dir.path()).unwrap();
        assert!(!v1.is_frozen().unwrap());
        std::fs::write(v1dir.path().join("freezer.state"), "FREEZING\n").unwrap();
        assert!(!v1.is_frozen().unwrap(), "freezing is not frozen yet");
        v1.set(true).unwrap();
        assert!(v1.is_frozen().unwrap());
        assert!(events_frozen("frozen 1"));
        assert!(!events_frozen("frozen 10\n"));
    }
}
