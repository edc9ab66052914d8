//! nftables tables that live exactly as long as a process: an `nft -i` child, in the target's
//! network namespace, fed the script through a pipe that stays open. The table is created with
//! `flags owner`, so the kernel deletes it when the netlink socket of that `nft` closes — when
//! the child exits for any reason: its stdin closed (a normal revert), or its parent died
//! (`PR_SET_PDEATHSIG` turns that into a SIGKILL of the child), or someone killed it.
//!
//! Why a child `nft` rather than speaking nf_tables netlink in-process: the socket that owns
//! the table must live in the target's namespace, and a process enters a namespace only whole
//! (or per thread, for a thread that then can do nothing else). A child that enters the
//! namespace before exec is the simplest holder, and nft is the reference encoder of the rules.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// The nft binary: `FAULTLINE_NFT` if set (tests, unusual installs), else `nft` on `PATH`.
fn nft_binary() -> PathBuf {
    std::env::var_os("FAULTLINE_NFT")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("nft"), PathBuf::from)
}

/// A command that runs in the network namespace `netns` (a `/proc/PID/ns/net` path), dies
/// with its parent thread, and starts with no signal blocked.
fn in_netns(netns: &File, args: &[&str], die_with_parent: bool) -> Command {
    let mut command = Command::new(nft_binary());
    command.args(args);
    let fd = netns.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec: setns, prctl, getppid,
    // sigprocmask; errors are returned, not handled with allocation.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if die_with_parent {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl: then nobody holds the lease.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("parent died"));
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
    command
}

fn open_netns(netns: &Path) -> Result<File, Error> {
    File::open(netns).map_err(|e| Error::io(format!("open {}", netns.display()), e))
}

/// Runs nft once in `netns` and returns its standard output, or its error message.
fn run(netns: &File, args: &[&str], input: Option<&str>) -> Result<String, Error> {
    let mut child = in_netns(netns, args, false)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("run {}", nft_binary().display()), e))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("write to nft".into(), e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::io("wait for nft".into(), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// Whether table `inet <name>` exists in `netns`.
pub fn table_exists(netns: &Path, name: &str) -> Result<bool, Error> {
    let file = open_netns(netns)?;
    let tables = run(&file, &["list", "tables"], None)?;
    Ok(tables
        .lines()
        .any(|l| l.trim() == format!("table inet {name}")))
}

/// Every `faultline_*` table in `netns` (for sweeps and censuses).
pub fn faultline_tables(netns: &Path) -> Result<Vec<String>, Error> {
    let file = open_netns(netns)?;
    let tables = run(&file, &["list", "tables"], None)?;
    Ok(tables
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table inet "))
        .filter(|n| n.starts_with("faultline_"))
        .map(str::to_owned)
        .collect())
}

/// A table held by a live `nft -i` child.
#[derive(Debug)]
pub struct OwnedTable {
    name: String,
    netns: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl OwnedTable {
    /// Checks `script` (nft's own dry run, which gives nft's error message), then creates the
    /// table in `netns` through a long-lived `nft -i` and waits until it is there.
    pub fn create(netns: &Path, name: &str, script: &str) -> Result<Self, Error> {
        let file = open_netns(netns)?;
        run(&file, &["-c", "-f", "-"], Some(script))?;
        let mut child = in_netns(&file, &["-i"], true)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("run {} -i", nft_binary().display()), e))?;
        let mut stdin = child.stdin.take();
        if let Some(pipe) = stdin.as_mut() {
            pipe.write_all(script.as_bytes())
                .and_then(|()| pipe.flush())
                .map_err(|e| Error::io("write to nft -i".into(), e))?;
        }
        let mut table = Self {
            name: name.to_owned(),
            netns: netns.to_owned(),
            child,
            stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if table_exists(netns, name)? {
                return Ok(table);
            }
            if Instant::now() > deadline || table.child.try_wait().ok().flatten().is_some() {
                // Dropping `table` ends the child, so nothing half-made stays behind.
                return Err(Error::Nft(format!(
                    "nft -i did not create table {name} within 5 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process holding the table (whose death deletes it).
    pub fn holder_pid(&self) -> u32 {
        self.child.id()
    }

    /// Packets counted by the table's rules so far (the proof the fault bites).
    pub fn packets(&self) -> Result<u64, Error> {
        let file = open_netns(&self.netns)?;
        let listing = run(&file, &["list", "table", "inet", &self.name], None)?;
        Ok(listing
            .split("counter packets ")
            .skip(1)
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    /// Ends the holder (closing its stdin, then killing it if it lingers) and checks the kernel
    /// removed the table. Returns an error naming the residue if it did not.
    pub fn remove(mut self) -> Result<(), Error> {
        self.end_holder();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if !table_exists(&self.netns, &self.name)? {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Residue(format!(
                    "table inet {} is still in {}",
                    self.name,
                    self.netns.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn end_holder(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnedTable {
    fn drop(&mut self) {
        self.end_holder();
    }
}

/// Deletes table `inet <name>` in `netns` (a table left behind where owner tables were not
/// used), and checks it is gone.
pub fn delete_table(netns: &Path, name: &str) -> Result<(), Error> {
    if !name.starts_with("faultline_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::Invalid(format!("not a faultline table: {name:?}")));
    }
    let file = open_netns(netns)?;
    run(&file, &["delete", "table", "inet", name], None)?;
    if table_exists(netns, name)? {
        return Err(Error::Residue(format!("table inet {name} is still there")));
    }
    Ok(())
}
