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
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
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
    crate::target::exec_in_netns(&mut command, netns.as_raw_fd(), die_with_parent, false);
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

/// The packets every counter of a table listing counted.
fn count_packets(listing: &str) -> u64 {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A table held by a live `nft -i` child.
#[derive(Debug)]
pub struct OwnedTable {
    name: String,
    netns: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

impl OwnedTable {
    /// Creates the table in `netns` through a long-lived `nft -i`: the whole script as one
    /// line of `;`-separated commands, which nft applies as one transaction (all or nothing),
    /// then `list table` on the same socket, whose answer proves the table is in the kernel.
    /// An error is nft's own message, and nothing is left applied.
    pub fn create(netns: &Path, name: &str, script: &str) -> Result<Self, Error> {
        let file = open_netns(netns)?;
        let mut child = in_netns(&file, &["-i"], true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("run {} -i", nft_binary().display()), e))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut table = Self {
            name: name.to_owned(),
            netns: netns.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
        };
        let commands: Vec<&str> = script.lines().filter(|l| !l.trim().is_empty()).collect();
        let request = format!("{}\nlist table inet {name}\n", commands.join("; "));
        // On any error below, dropping `table` ends the child: nothing half-made stays.
        table.send(&request)?;
        table.read_listing()?;
        Ok(table)
    }

    fn send(&mut self, text: &str) -> Result<(), Error> {
        let pipe = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Nft("nft -i is gone".into()))?;
        pipe.write_all(text.as_bytes())
            .and_then(|()| pipe.flush())
            .map_err(|e| Error::io("write to nft -i".into(), e))
    }

    /// Reads what nft -i answers to `list table`: the listing, up to its closing `}` line, or
    /// an error on its stderr. Gives up after 5 s.
    fn read_listing(&mut self) -> Result<String, Error> {
        use std::io::Read as _;
        use std::os::fd::AsRawFd as _;
        let (Some(out), Some(err)) = (self.stdout.as_mut(), self.stderr.as_mut()) else {
            return Err(Error::Nft("nft -i is gone".into()));
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut listing = Vec::new();
        let mut errors = Vec::new();
        loop {
            if listing.ends_with(b"\n}\n") || listing == b"}\n" {
                return Ok(String::from_utf8_lossy(&listing).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Nft(format!(
                    "nft -i did not answer within 5 s{}",
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", String::from_utf8_lossy(&errors).trim())
                    }
                )));
            }
            let mut fds = [
                libc::pollfd {
                    fd: out.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: err.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: two valid pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            // The listing first: when a listing and a later command's error are both waiting,
            // the listing answers this call and the error is left for the next.
            if fds[0].revents != 0 {
                let got = out.read(&mut buf).unwrap_or(0);
                if got == 0 {
                    return Err(Error::Nft(format!(
                        "nft -i exited: {}",
                        String::from_utf8_lossy(&errors).trim()
                    )));
                }
                listing.extend_from_slice(&buf[..got]);
                continue;
            }
            if fds[1].revents != 0 {
                let got = err.read(&mut buf).unwrap_or(0);
                errors.extend_from_slice(&buf[..got]);
                // nft prints an error and the offending line with a caret under it; once
                // the caret line is there, the message is complete.
                let text = String::from_utf8_lossy(&errors);
                if got == 0 || text.lines().any(|l| l.trim_start().starts_with('^')) {
                    let message = text
                        .lines()
                        .find(|l| l.starts_with("Error"))
                        .unwrap_or(text.trim())
                        .to_owned();
                    return Err(Error::Nft(message));
                }
            }
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
        Ok(count_packets(&listing))
    }

    /// Ends the holder (closing its stdin, then killing it if it lingers) and checks the kernel
    /// removed the table. Returns an error naming the residue if it did not.
    pub fn remove(mut self) -> Result<Option<u64>, Error> {
        // On the holder's own socket: the last counters, the delete, then the table again:
        // nft's "No such file or directory" is the kernel saying it is gone. Then the holder
        // can simply be killed.
        let request = format!(
            "list table inet {0}\ndelete table inet {0}\nlist table inet {0}\n",
            self.name
        );
        let sent = self.send(&request);
        let packets = sent
            .as_ref()
            .ok()
            .and_then(|()| self.read_listing().ok())
            .map(|listing| count_packets(&listing));
        let confirmed = sent.and_then(|()| self.read_listing());
        self.end_holder();
        if let Err(Error::Nft(message)) = &confirmed
            && message.contains("No such file or directory")
        {
            return Ok(packets);
        }
        // Otherwise the holder's death removes an owner table: look from outside.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if !table_exists(&self.netns, &self.name)? {
                return Ok(packets);
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

    /// Ends the holder at once (the table, if it is still there, goes with it).
    fn end_holder(&mut self) {
        drop(self.stdin.take());
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// A network namespace for one test, deleted on drop.
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Self {
            let name = format!("flnft{}{tag}", std::process::id());
            let ok = Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip netns add {name}");
            Self(name)
        }

        fn path(&self) -> PathBuf {
            PathBuf::from("/run/netns").join(&self.0)
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[test]
    fn a_script_nft_refuses_leaves_nothing_and_says_why() {
        let ns = Netns::new("bad");
        let script = "add table inet faultline_bad { flags owner; }\n\
                      add rule inet faultline_bad nochain ip daddr 192.0.2.1 drop\n";
        let err = OwnedTable::create(&ns.path(), "faultline_bad", script).unwrap_err();
        assert!(err.to_string().contains("Error"), "{err}");
        assert!(
            !table_exists(&ns.path(), "faultline_bad").unwrap(),
            "half applied"
        );
    }

    #[test]
    fn a_table_lives_exactly_as_long_as_its_holder() {
        let ns = Netns::new("ok");
        let script = "add table inet faultline_ok { flags owner; }\n\
                      add chain inet faultline_ok c { type filter hook output priority -10; policy accept; }\n\
                      add rule inet faultline_ok c ip daddr 192.0.2.1 counter drop\n";
        let table = OwnedTable::create(&ns.path(), "faultline_ok", script).unwrap();
        assert!(table_exists(&ns.path(), "faultline_ok").unwrap());
        assert_eq!(faultline_tables(&ns.path()).unwrap(), ["faultline_ok"]);
        assert_eq!(table.packets().unwrap(), 0);
        assert_eq!(table.remove().unwrap(), Some(0));
        assert!(faultline_tables(&ns.path()).unwrap().is_empty());
    }
}
