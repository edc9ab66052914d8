//! nftables tables that live exactly as long as a process: an `nft -i` child, in the target's
//! network namespace, fed commands through a pipe that stays open. Tables are created with
//! `flags owner`, so the kernel deletes them when the netlink socket of that `nft` closes — when
//! the child exits for any reason: its stdin closed, its parent thread died
//! (`PR_SET_PDEATHSIG` turns that into a SIGKILL of the child), or someone killed it.
//!
//! One such holder serves every table a thread creates in one namespace, and is ended a short
//! while ([`LINGER`]) after its last table goes: starting `nft` costs about 5 ms, a command on a
//! running one about 0.3 ms. Each request ends with a command that must fail
//! (`list table inet faultline_no_such_table`): its error on stderr marks the end of the
//! answer, so errors are never mixed up between requests.
//!
//! Why a child `nft` rather than speaking nf_tables netlink in-process: the socket that owns
//! the table must live in the target's namespace, and a process enters a namespace only whole
//! (or per thread, for a thread that then can do nothing else). A child that enters the
//! namespace before exec is the simplest holder, and nft is the reference encoder of the rules.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
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

/// How long a holder stays after its last table is gone, so that faults in quick succession
/// in one namespace reuse it. `FAULTLINE_NFT_LINGER_MS` overrides it (0: end at once).
pub const LINGER: Duration = Duration::from_secs(2);

pub(crate) fn linger() -> Duration {
    std::env::var("FAULTLINE_NFT_LINGER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(LINGER, Duration::from_millis)
}

/// A command that must fail: its error closes every request's answer.
const END_MARK: &str = "list table inet faultline_no_such_table";

/// What one request printed: its standard output, and its errors (without the end marker's).
struct Answer {
    out: String,
    errors: String,
}

impl Answer {
    /// nft's first error line, if there was an error.
    fn error(&self) -> Option<Error> {
        let text = self.errors.trim();
        if text.is_empty() {
            return None;
        }
        let message = text
            .lines()
            .find(|l| l.starts_with("Error"))
            .unwrap_or(text);
        Some(Error::Nft(message.to_owned()))
    }
}

/// A running `nft -i` in one network namespace.
#[derive(Debug)]
struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
    /// Set when the holder stopped answering as expected: it is not used again.
    broken: bool,
}

impl Holder {
    fn spawn(netns: &File) -> Result<Self, Error> {
        let mut child = in_netns(netns, &["-i"], true)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("run {} -i", nft_binary().display()), e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Nft("nft -i started without its pipes".into()));
        };
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr,
            broken: false,
        })
    }

    /// Sends `commands` (one per line; a line is one transaction, all or nothing) and reads
    /// the answer up to the end marker. Gives up after 5 s; any failure to talk marks the
    /// holder broken.
    fn request(&mut self, commands: &str) -> Result<Answer, Error> {
        if self.broken {
            return Err(Error::Nft("nft -i stopped answering".into()));
        }
        let answer = self.exchange(commands);
        if answer.is_err() {
            self.broken = true;
        }
        answer
    }

    fn exchange(&mut self, commands: &str) -> Result<Answer, Error> {
        use std::io::Read as _;
        self.stdin
            .write_all(format!("{commands}\n{END_MARK}\n").as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| Error::io("write to nft -i".into(), e))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = end_of_answer(&errors) {
                errors.truncate(end);
                // nft flushes each command's output before it reads the next line: all of
                // the answer's output is in the pipe by now.
                while poll_readable(&self.stdout, 0) {
                    match self.stdout.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => out.extend_from_slice(&buf[..n]),
                    }
                }
                return Ok(Answer {
                    out: String::from_utf8_lossy(&out).into_owned(),
                    errors: String::from_utf8_lossy(&errors).into_owned(),
                });
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
                    fd: self.stdout.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stderr.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: two valid pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) } <= 0 {
                continue;
            }
            for (i, pipe) in [
                (0, &mut self.stdout as &mut dyn std::io::Read),
                (1, &mut self.stderr),
            ] {
                if fds[i].revents == 0 {
                    continue;
                }
                let got = pipe.read(&mut buf).unwrap_or(0);
                if got == 0 {
                    return Err(Error::Nft(format!(
                        "nft -i exited: {}",
                        String::from_utf8_lossy(&errors).trim()
                    )));
                }
                if i == 0 {
                    out.extend_from_slice(&buf[..got]);
                } else {
                    errors.extend_from_slice(&buf[..got]);
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.end();
    }
}

/// Where the end marker's error starts in `errors`, once it is complete (the marker's line
/// and nft's caret line under it).
fn end_of_answer(errors: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(errors);
    let body = text.strip_suffix('\n')?;
    let (rest, caret) = body.rsplit_once('\n')?;
    if !caret.trim_start().starts_with('^') {
        return None;
    }
    let (rest, line) = rest.rsplit_once('\n')?;
    if line.trim() != END_MARK {
        return None;
    }
    // `rest` ends with the marker's own "Error: ..." line. The marker's block is ASCII, so its
    // length is the same in the raw bytes (whatever else nft printed).
    let start = rest.rfind('\n').map_or(0, |i| i + 1);
    Some(errors.len().saturating_sub(text.len() - start))
}

fn poll_readable(pipe: &impl AsRawFd, ms: i32) -> bool {
    let mut fd = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&raw mut fd, 1, ms) > 0 && fd.revents & libc::POLLIN != 0 }
}

/// A namespace (by device and inode) and the thread that created the holder: the holder's
/// parent-death signal follows that thread, so holders are never shared across threads.
type Key = (u64, u64, std::thread::ThreadId);

#[derive(Debug)]
struct Entry {
    holder: Arc<Mutex<Holder>>,
    tables: usize,
    idle_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Registry {
    entries: HashMap<Key, Entry>,
    janitor: bool,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_of(netns: &File) -> Result<Key, Error> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = netns
        .metadata()
        .map_err(|e| Error::io("stat a network namespace".into(), e))?;
    Ok((meta.dev(), meta.ino(), std::thread::current().id()))
}

/// Takes a table slot on this thread's holder in `netns`, starting the holder if needed.
fn acquire(netns: &File) -> Result<(Key, Arc<Mutex<Holder>>), Error> {
    let key = key_of(netns)?;
    let mut registry = lock(&REGISTRY);
    if let Some(entry) = registry.entries.get_mut(&key) {
        let usable = {
            let mut holder = lock(&entry.holder);
            !holder.broken && matches!(holder.child.try_wait(), Ok(None))
        };
        if usable {
            entry.tables += 1;
            entry.idle_since = None;
            return Ok((key, Arc::clone(&entry.holder)));
        }
        // A broken or dead holder keeps serving the tables it has (their reverts find them
        // gone with it); new tables get a new holder.
        registry.entries.remove(&key);
    }
    let holder = Arc::new(Mutex::new(Holder::spawn(netns)?));
    registry.entries.insert(
        key,
        Entry {
            holder: Arc::clone(&holder),
            tables: 1,
            idle_since: None,
        },
    );
    Ok((key, holder))
}

/// Gives a table slot back; a holder left with no table ends after [`linger`].
fn release(key: Key, holder: &Arc<Mutex<Holder>>) {
    let linger = linger();
    let mut registry = lock(&REGISTRY);
    let Some(entry) = registry.entries.get_mut(&key) else {
        return;
    };
    if !Arc::ptr_eq(&entry.holder, holder) {
        return;
    }
    entry.tables = entry.tables.saturating_sub(1);
    if entry.tables > 0 {
        return;
    }
    if linger.is_zero() || lock(&entry.holder).broken {
        let ended = registry.entries.remove(&key);
        drop(registry);
        // Its tables are gone and confirmed so: the process's exit (some milliseconds, as the
        // kernel tears its socket down) need not hold up the caller.
        if let Some(entry) = ended {
            let holder = entry.holder;
            // Without a thread, the closure (and the holder) is dropped here, inline.
            let _ = std::thread::Builder::new()
                .name("faultline-nft-end".into())
                .spawn(move || drop(holder));
        }
        return;
    }
    entry.idle_since = Some(Instant::now());
    if !registry.janitor {
        registry.janitor = true;
        let started = std::thread::Builder::new()
            .name("faultline-nft-janitor".into())
            .spawn(move || janitor(linger));
        if started.is_err() {
            // No thread: end idle holders now rather than keep them forever.
            registry.janitor = false;
            registry.entries.retain(|_, e| e.tables > 0);
        }
    }
}

/// Ends holders idle for `linger`; exits when none is left.
fn janitor(linger: Duration) {
    loop {
        std::thread::sleep((linger / 4).max(Duration::from_millis(50)));
        let mut registry = lock(&REGISTRY);
        registry
            .entries
            .retain(|_, e| e.tables > 0 || e.idle_since.is_none_or(|t| t.elapsed() < linger));
        if registry.entries.is_empty() {
            registry.janitor = false;
            return;
        }
    }
}

/// A table held by a live `nft -i` (shared with the other tables this thread made in the same
/// namespace).
#[derive(Debug)]
pub struct OwnedTable {
    name: String,
    netns: PathBuf,
    key: Key,
    holder: Arc<Mutex<Holder>>,
    pid: u32,
    removed: bool,
}

impl OwnedTable {
    /// Creates the table in `netns`: the whole script as one line of `;`-separated commands,
    /// which nft applies as one transaction (all or nothing), then `list table` on the same
    /// socket, whose answer proves the table is in the kernel. An error is nft's own message,
    /// and nothing is left applied.
    pub fn create(netns: &Path, name: &str, script: &str) -> Result<Self, Error> {
        let file = open_netns(netns)?;
        let (key, holder) = acquire(&file)?;
        let commands: Vec<&str> = script.lines().filter(|l| !l.trim().is_empty()).collect();
        let request = format!("{}\nlist table inet {name}", commands.join("; "));
        let (answer, pid) = {
            let mut h = lock(&holder);
            (h.request(&request), h.pid())
        };
        if answer.is_err() {
            // The holder stopped answering: nft may have applied the script all the same. It
            // is ended (its owner tables go with it) and the table removed from outside if it
            // is a plain one, so that a fault reported failed is not in force.
            {
                let mut h = lock(&holder);
                h.broken = true;
                h.end();
            }
            let _ = remove_from_outside(netns, name);
        }
        let confirmed = answer.and_then(|a| match a.error() {
            Some(e) => Err(e),
            None if a.out.starts_with(&format!("table inet {name} {{")) => Ok(()),
            None => Err(Error::Nft(format!(
                "table inet {name} was not listed after its creation"
            ))),
        });
        if let Err(e) = confirmed {
            release(key, &holder);
            return Err(e);
        }
        Ok(Self {
            name: name.to_owned(),
            netns: netns.to_owned(),
            key,
            holder,
            pid,
            removed: false,
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process holding the table (whose death deletes it).
    pub fn holder_pid(&self) -> u32 {
        self.pid
    }

    /// Packets counted by the table's rules so far (the proof the fault bites).
    pub fn packets(&self) -> Result<u64, Error> {
        let answer = lock(&self.holder).request(&format!("list table inet {}", self.name))?;
        match answer.error() {
            Some(e) => Err(e),
            None => Ok(count_packets(&answer.out)),
        }
    }

    /// Deletes the table on its holder's socket and reads the namespace's tables back. Returns
    /// the packets its rules matched, read just before the delete (`None` if they could not be
    /// read), or an error naming the residue.
    pub fn remove(mut self) -> Result<Option<u64>, Error> {
        self.removed = true;
        let result = self.delete();
        release(self.key, &self.holder);
        result
    }

    fn delete(&self) -> Result<Option<u64>, Error> {
        let name = &self.name;
        let packets = lock(&self.holder)
            .request(&format!("list table inet {name}"))
            .ok()
            .filter(|a| a.error().is_none())
            .map(|a| count_packets(&a.out));
        let answer = lock(&self.holder).request(&format!("delete table inet {name}\nlist tables"));
        if let Ok(answer) = &answer {
            let listed = answer
                .out
                .lines()
                .any(|l| l.trim() == format!("table inet {name}"));
            if !listed {
                return Ok(packets);
            }
            // The holder answers but the delete did not take: a plain table someone else
            // can delete. The holder, and the other tables it holds, are left alone.
            if remove_from_outside(&self.netns, name).is_ok() {
                return Ok(packets);
            }
        }
        // The holder could not confirm (it died, or stopped answering), or the table resists:
        // the holder is ended, which removes its owner tables; a plain table is deleted from
        // outside.
        {
            let mut holder = lock(&self.holder);
            holder.broken = true;
            holder.end();
        }
        remove_from_outside(&self.netns, name)?;
        Ok(packets)
    }
}

/// Waits up to 2 s for table `inet <name>` to be gone from `netns`, deleting it from outside
/// (another nft, for a plain table) if it stays; an error names the residue.
fn remove_from_outside(netns: &Path, name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut deleted = false;
    loop {
        if !table_exists(netns, name)? {
            return Ok(());
        }
        // An owner table goes with its holder within a few milliseconds; one still there after
        // that is a plain table (or another process's): delete it.
        if !deleted && Instant::now() + Duration::from_millis(1900) > deadline {
            deleted = true;
            let _ = delete_table(netns, name);
            continue;
        }
        if Instant::now() > deadline {
            return Err(Error::Residue(format!(
                "table inet {name} is still in {}",
                netns.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for OwnedTable {
    /// A table dropped without [`OwnedTable::remove`] is deleted all the same.
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            let _ = self.delete();
            release(self.key, &self.holder);
        }
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

    fn partition_script(name: &str, addr: &str) -> String {
        format!(
            "add table inet {name} {{ flags owner; }}\n\
             add chain inet {name} c {{ type filter hook output priority -10; policy accept; }}\n\
             add rule inet {name} c ip daddr {addr} counter drop\n"
        )
    }

    #[test]
    fn tables_of_one_namespace_share_a_holder_and_a_refused_script_does_not_confuse_it() {
        let ns = Netns::new("sh");
        let a = OwnedTable::create(
            &ns.path(),
            "faultline_sha",
            &partition_script("faultline_sha", "192.0.2.1"),
        )
        .unwrap();
        let b = OwnedTable::create(
            &ns.path(),
            "faultline_shb",
            &partition_script("faultline_shb", "192.0.2.2"),
        )
        .unwrap();
        assert_eq!(a.holder_pid(), b.holder_pid(), "one nft -i per namespace");
        // nft's two errors (the script's, then the listing's) are this request's, not the next.
        let bad = "add table inet faultline_shc { flags owner; }\n\
                   add rule inet faultline_shc nochain ip daddr 192.0.2.3 drop\n";
        let err = OwnedTable::create(&ns.path(), "faultline_shc", bad).unwrap_err();
        assert!(err.to_string().contains("Error"), "{err}");
        assert_eq!(a.packets().unwrap(), 0);
        let mut tables = faultline_tables(&ns.path()).unwrap();
        tables.sort();
        assert_eq!(tables, ["faultline_sha", "faultline_shb"]);
        assert_eq!(a.remove().unwrap(), Some(0));
        assert_eq!(faultline_tables(&ns.path()).unwrap(), ["faultline_shb"]);
        let holder = b.holder_pid();
        drop(b);
        assert!(
            faultline_tables(&ns.path()).unwrap().is_empty(),
            "dropped, so deleted"
        );
        // The holder lingers a little for the next fault, then ends by itself.
        let deadline = Instant::now() + LINGER * 3;
        while crate::running(holder) {
            assert!(Instant::now() < deadline, "nft -i {holder} still runs");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn killing_the_shared_holder_removes_every_table_and_reverts_still_verify() {
        let ns = Netns::new("kh");
        let a = OwnedTable::create(
            &ns.path(),
            "faultline_kha",
            &partition_script("faultline_kha", "192.0.2.1"),
        )
        .unwrap();
        let b = OwnedTable::create(
            &ns.path(),
            "faultline_khb",
            &partition_script("faultline_khb", "192.0.2.2"),
        )
        .unwrap();
        // SAFETY: a plain kill(2) of the holder this test made.
        unsafe { libc::kill(i32::try_from(a.holder_pid()).unwrap(), libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while !faultline_tables(&ns.path()).unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "owner tables outlived their holder"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(a.remove().unwrap(), None);
        assert_eq!(b.remove().unwrap(), None);
        // The next table gets a new holder.
        let c = OwnedTable::create(
            &ns.path(),
            "faultline_khc",
            &partition_script("faultline_khc", "192.0.2.3"),
        )
        .unwrap();
        assert_eq!(c.remove().unwrap(), Some(0));
    }

    #[test]
    fn the_end_marker_closes_an_answer_whatever_came_before() {
        let marker =
            format!("Error: No such file or directory\n{END_MARK}\n                ^^^^^^^^^^\n");
        assert_eq!(end_of_answer(marker.as_bytes()), Some(0));
        let mut errors =
            b"Error: Could not process rule: \xff\xfe\nadd rule x\n    ^^^^\n".to_vec();
        let before = errors.len();
        errors.extend_from_slice(marker.as_bytes());
        assert_eq!(end_of_answer(&errors), Some(before));
        assert_eq!(
            end_of_answer(&errors[..errors.len() - 3]),
            None,
            "incomplete"
        );
    }

    #[test]
    fn a_plain_table_is_still_removed_when_its_holder_was_killed() {
        let ns = Netns::new("pl");
        let script = "add table inet faultline_pl\n\
                      add chain inet faultline_pl c { type filter hook output priority -10; policy accept; }\n\
                      add rule inet faultline_pl c ip daddr 192.0.2.1 counter drop\n";
        let table = OwnedTable::create(&ns.path(), "faultline_pl", script).unwrap();
        // SAFETY: a plain kill(2) of the holder this test made.
        unsafe { libc::kill(i32::try_from(table.holder_pid()).unwrap(), libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            table_exists(&ns.path(), "faultline_pl").unwrap(),
            "a plain table outlives its holder"
        );
        table.remove().unwrap();
        assert!(faultline_tables(&ns.path()).unwrap().is_empty());
    }
}
