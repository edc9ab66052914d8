//! Signals to a target process through a pidfd: once opened, a pidfd names that process and no
//! other, so a PID reused after the target died can never receive our signal.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use crate::Error;

/// A process, held by pidfd.
#[derive(Debug)]
pub struct Process {
    pid: u32,
    fd: OwnedFd,
}

/// How a killed process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// Gone after the first signal, this long after it was sent.
    Exited {
        /// The signal sent.
        signal: i32,
        /// Time until it was gone.
        after: Duration,
    },
    /// Still there after the grace period, so SIGKILL followed.
    Killed {
        /// The first signal, which it survived.
        signal: i32,
        /// The grace period it was given.
        grace: Duration,
    },
}

impl Process {
    /// Opens a pidfd for `pid`.
    pub fn open(pid: u32) -> Result<Self, Error> {
        let raw = i32::try_from(pid).map_err(|_| Error::Invalid(format!("pid {pid}")))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchProcess(pid),
                _ => Error::io(format!("pidfd_open({pid})"), e),
            });
        }
        // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { pid, fd })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => Error::NoSuchProcess(self.pid),
                _ => Error::io(format!("signal {signal} to {}", self.pid), e),
            });
        }
        Ok(())
    }

    /// Whether the process has exited (its pidfd turns readable), waiting up to `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut poll, 1, ms) };
        n > 0
    }

    /// The process's state letter from `/proc/PID/stat` (`R`, `S`, `T` for stopped, …), or
    /// `None` once it is gone.
    pub fn state(&self) -> Option<char> {
        if self.wait_exit(Duration::ZERO) {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // `pid (comm) S …`: the state follows the last `)` (comm may hold parentheses).
        let after = &stat[stat.rfind(')')? + 1..];
        after.split_whitespace().next()?.chars().next()
    }

    /// Sends `signal`; if the process is still there after `grace`, SIGKILL; waits for it to
    /// be gone.
    pub fn kill(&self, signal: i32, grace: Duration) -> Result<KillOutcome, Error> {
        let start = Instant::now();
        self.signal(signal)?;
        if self.wait_exit(grace) {
            return Ok(KillOutcome::Exited {
                signal,
                after: start.elapsed(),
            });
        }
        match self.signal(libc::SIGKILL) {
            Ok(()) | Err(Error::NoSuchProcess(_)) => {}
            Err(e) => return Err(e),
        }
        if !self.wait_exit(Duration::from_secs(5)) {
            return Err(Error::Residue(format!(
                "process {} survived SIGKILL for 5 s",
                self.pid
            )));
        }
        Ok(KillOutcome::Killed { signal, grace })
    }

    /// Stops the process (SIGSTOP) and checks the kernel says so.
    pub fn pause(&self) -> Result<(), Error> {
        self.signal(libc::SIGSTOP)?;
        self.wait_state(|s| s == 'T' || s == 't', "stopped")
    }

    /// Continues a stopped process (SIGCONT) and checks it is no longer stopped.
    pub fn resume(&self) -> Result<(), Error> {
        self.signal(libc::SIGCONT)?;
        self.wait_state(|s| s != 'T' && s != 't', "running")
    }

    fn wait_state(&self, ok: impl Fn(char) -> bool, what: &str) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match self.state() {
                Some(s) if ok(s) => return Ok(()),
                None => return Err(Error::NoSuchProcess(self.pid)),
                Some(s) if Instant::now() > deadline => {
                    return Err(Error::Residue(format!(
                        "process {} is in state {s}, not {what}",
                        self.pid
                    )));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}

/// What [`kill_all`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupKill {
    /// Processes that got the first signal.
    pub signalled: usize,
    /// Of those, the ones that outlived the grace period and got SIGKILL.
    pub killed: usize,
}

/// Kills every process of `pids` (a cgroup's): pidfds first, so that no pid reused meanwhile
/// is hit; `signal` to all; SIGKILL to those that outlive `grace`; then checks all are gone.
/// Processes already gone are not counted.
pub fn kill_all(pids: &[u32], signal: i32, grace: Duration) -> Result<GroupKill, Error> {
    let processes: Vec<Process> = pids
        .iter()
        .filter_map(|&pid| Process::open(pid).ok())
        .collect();
    let signalled = processes
        .iter()
        .filter(|p| p.signal(signal).is_ok())
        .count();
    let deadline = Instant::now() + grace;
    let mut killed = 0;
    for process in &processes {
        if !process.wait_exit(deadline.saturating_duration_since(Instant::now())) {
            killed += 1;
            match process.signal(libc::SIGKILL) {
                Ok(()) | Err(Error::NoSuchProcess(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for process in &processes {
        if !process.wait_exit(Duration::from_secs(5)) {
            return Err(Error::Residue(format!(
                "process {} survived SIGKILL for 5 s",
                process.pid
            )));
        }
    }
    Ok(GroupKill { signalled, killed })
}

/// A signal by name (`TERM`, `SIGTERM`, `9`).
pub fn parse_signal(name: &str) -> Result<i32, Error> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match bare {
        "TERM" => libc::SIGTERM,
        "KILL" => libc::SIGKILL,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "HUP" => libc::SIGHUP,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "ABRT" => libc::SIGABRT,
        other => match other.parse::<i32>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => {
                return Err(Error::Invalid(format!(
                    "signal {name:?}: expected TERM, KILL, INT, QUIT, HUP, USR1, USR2, ABRT or a number from 1 to 64"
                )));
            }
        },
    };
    Ok(signal)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn signals_by_name() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn pause_resume_and_kill_a_real_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let process = Process::open(child.id()).unwrap();
        process.pause().unwrap();
        assert_eq!(process.state(), Some('T'));
        process.resume().unwrap();
        assert_ne!(process.state(), Some('T'));
        // sleep dies of SIGTERM at once; our child, so reap it for the pidfd to turn readable.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let outcome = process.kill(libc::SIGTERM, Duration::from_secs(5)).unwrap();
        assert!(matches!(outcome, KillOutcome::Exited { signal, .. } if signal == libc::SIGTERM));
        assert!(!reaper.join().unwrap().success());
        assert!(matches!(
            process.signal(libc::SIGTERM),
            Err(Error::NoSuchProcess(_))
        ));
    }

    #[test]
    fn a_process_that_ignores_term_is_killed_after_the_grace() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let process = Process::open(child.id()).unwrap();
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        let outcome = process
            .kill(libc::SIGTERM, Duration::from_millis(300))
            .unwrap();
        assert!(matches!(outcome, KillOutcome::Killed { .. }), "{outcome:?}");
        reaper.join().unwrap();
    }
}

/// A paused process that cannot stay paused by accident.
///
/// Before the SIGSTOP, a guard process starts (the caller's program re-executed in a hidden
/// mode that calls [`run_resume_guard`]) holding a pidfd of the target and the read end of a
/// lease pipe. The guard sends SIGCONT when the pipe reports end-of-file — when
/// [`PausedProcess::revert`] closes it, or when this process dies however it dies (the kernel
/// closes its descriptors) — or when the fault's deadline passes, whichever comes first.
#[derive(Debug)]
pub struct PausedProcess {
    process: Process,
    guard: std::process::Child,
    lease: Option<std::process::ChildStdin>,
}

impl PausedProcess {
    /// Starts the guard with `guard` (a command that runs [`run_resume_guard`] for `pid` with
    /// the fault's deadline), waits for it to be ready, then stops the process.
    pub fn apply(pid: u32, guard: std::process::Command) -> Result<Self, Error> {
        let process = Process::open(pid)?;
        // The guard says `ready` once it holds the target's pidfd.
        let (child, lease) = start_guard(guard, "resume guard")?;
        let paused = Self {
            process,
            guard: child,
            lease,
        };
        paused.process.pause()?;
        Ok(paused)
    }

    /// The guard's process id.
    pub fn guard_pid(&self) -> u32 {
        self.guard.id()
    }

    /// Continues the process, checks it is no longer stopped, and ends the guard.
    pub fn revert(mut self) -> Result<(), Error> {
        let resumed = self.process.resume();
        drop(self.lease.take());
        let _ = self.guard.wait();
        match resumed {
            // Gone meanwhile: nothing is left paused.
            Err(Error::NoSuchProcess(_)) => Ok(()),
            other => other,
        }
    }
}

/// The resume guard's whole life (see [`PausedProcess`]): holds a pidfd of `pid`, says
/// `ready` on standard output, waits until standard input (the lease pipe) ends or `deadline`
/// passes, then sends SIGCONT. Ignores the terminal's signals, so a Ctrl-C aimed at the
/// faultline in front cannot take the guard down before it has resumed the target.
pub fn run_resume_guard(pid: u32, deadline: Duration) -> Result<(), Error> {
    let process = Process::open(pid)?;
    wait_for_lease(deadline)?;
    match process.signal(libc::SIGCONT) {
        Ok(()) | Err(Error::NoSuchProcess(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat` field 22): with the
/// pid, it names one process and never a later one that reused the pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the comm; field 22 is 19 further.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` exists and is not a zombie. A zombie keeps its pid and start time
/// but has lost its namespaces and cannot act on a signal.
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Starts a guard (`what` names it in errors) and waits for its `ready`: the lease pipe is the
/// guard's standard input, and its write end is returned with the child. The other half of the
/// handshake is [`wait_for_lease`].
pub(crate) fn start_guard(
    mut command: std::process::Command,
    what: &str,
) -> Result<(std::process::Child, Option<std::process::ChildStdin>), Error> {
    use std::io::Read as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(format!("start the {what}"), e))?;
    let lease = child.stdin.take();
    let mut ready = [0u8; 6];
    let got = child
        .stdout
        .take()
        .map(|mut out| out.read_exact(&mut ready))
        .transpose()
        .map_err(|e| Error::io(format!("wait for the {what}"), e))?;
    if got.is_none() || &ready != b"ready\n" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Invalid(format!("the {what} did not start")));
    }
    Ok((child, lease))
}

/// A guard's wait: ignores the terminal's signals, says `ready` on standard output, and returns
/// when standard input (the lease pipe) ends or `deadline` passes.
pub(crate) fn wait_for_lease(deadline: Duration) -> Result<(), Error> {
    use std::io::Write as _;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: setting a signal's disposition to SIG_IGN.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut out = std::io::stdout();
    out.write_all(b"ready\n")
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("tell the parent".into(), e))?;
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let mut poll = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: one valid pollfd on standard input.
        let n = unsafe { libc::poll(&mut poll, 1, ms) };
        if n > 0 {
            let mut byte = [0u8; 1];
            // SAFETY: reading one byte from standard input into a local buffer.
            let read = unsafe { libc::read(0, byte.as_mut_ptr().cast(), 1) };
            if read <= 0 {
                return Ok(()); // end-of-file (or an error): the lease is gone
            }
        }
    }
}
