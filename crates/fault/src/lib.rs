//! Faults on local targets, with lifetimes the kernel enforces.
//!
//! The only crate that sends signals, enters network namespaces and writes nftables rules.
//! Faults are typed values, validated before anything is touched; nothing is passed through a
//! shell. So far: [`process`] (kill with a grace period, pause and resume, by pidfd) and
//! [`net`] (partitions that drop or reject, and packet loss, as nftables tables owned by a
//! holder process: [`nft::OwnedTable`]) and [`stress`] (CPU workers inside the target's
//! cgroup, on lease pipes). Each applied fault is undone by dropping it or
//! calling its revert, which reads the kernel's state back.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod foreground;
pub mod freezer;
pub mod kubepods;
pub mod lab;
pub mod net;
pub mod nfnl;
pub mod nft;
pub mod process;
pub mod stress;
pub mod target;

use std::time::{SystemTime, UNIX_EPOCH};

pub use foreground::Interrupts;
pub use freezer::{Freezer, FrozenCgroup, run_thaw_guard};
pub use net::{Cidr, Direction, Effect, NetFault, Protocol, Selector};
pub use process::{
    GroupKill, KillOutcome, PausedProcess, Process, kill_all, parse_signal, run_resume_guard,
    running, start_time,
};
pub use stress::{AppliedStress, Stress, StressReport, run_stress_worker};
pub use target::{CgroupPaths, Target};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fault's options are not acceptable; nothing was applied.
    #[error("{0}")]
    Invalid(String),
    /// The target process does not exist (any more).
    #[error("no process {0}")]
    NoSuchProcess(u32),
    /// The target runs in faultline's own network namespace (normally the host's).
    #[error(
        "process {0} runs in faultline's own network namespace or the host's (PID 1's): a \
         network fault there would cut this machine off too. Pass --allow-host-netns if that \
         is really meant"
    )]
    HostNetns(u32),
    /// nft refused the rules, or could not be run.
    #[error("nft: {0}")]
    Nft(String),
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A revert left something behind: the kernel still has it.
    #[error("revert not verified: {0}")]
    Residue(String),
}

impl Error {
    pub(crate) fn io(what: String, source: std::io::Error) -> Self {
        Error::Io { what, source }
    }
}

/// A fault's id: unique on this machine, and usable in an nftables table name
/// (`faultline_<id>`).
pub fn new_fault_id() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{ms:x}{:04x}{n:x}", std::process::id() & 0xffff)
}

/// A network fault in force on a target.
#[derive(Debug)]
pub struct AppliedNetFault {
    table: Table,
    kernel_anchored: bool,
}

/// Where a fault's table lives: made over netlink by this process (its socket owns the
/// table), or by an `nft -i` child (a kernel or environment the netlink path cannot use).
#[derive(Debug)]
enum Table {
    Netlink(nfnl::OwnedTable),
    Nft(nft::OwnedTable),
}

/// Set (to anything but empty or `0`) to create plain tables instead of owner tables, as on a
/// kernel before 5.12: for tests of the journal's sweep, and to diagnose a kernel that refuses
/// owner tables.
pub const NO_OWNER_TABLES_ENV: &str = "FAULTLINE_NO_OWNER_TABLES";

/// Set (to anything but empty or `0`) to make tables with an `nft -i` child rather than over
/// netlink from this process: the engine before, for comparisons and benchmarks.
pub const NFT_ENGINE_ENV: &str = "FAULTLINE_NFT_ENGINE";

impl AppliedNetFault {
    /// Applies `fault` inside `target`'s network namespace as table `faultline_<id>`. Refuses
    /// faultline's own namespace unless `allow_own_netns`.
    pub fn apply(
        target: &Target,
        fault: &NetFault,
        id: &str,
        allow_own_netns: bool,
    ) -> Result<Self, Error> {
        fault.validate()?;
        if target.in_own_netns && !allow_own_netns {
            return Err(Error::HostNetns(target.pid));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::Invalid(format!("fault id {id:?}")));
        }
        let name = format!("faultline_{id}");
        let forced_plain =
            std::env::var_os(NO_OWNER_TABLES_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        if !forced_plain
            && std::env::var_os(NFT_ENGINE_ENV).is_none_or(|v| v.is_empty() || v == "0")
        {
            // In-process: no nft started on the way. Should the kernel refuse what it cannot
            // do (an owner table before 5.12), nft is asked next, with its own messages.
            if let Ok(table) = nfnl::OwnedTable::create(&target.netns, &name, fault) {
                return Ok(Self {
                    table: Table::Netlink(table),
                    kernel_anchored: true,
                });
            }
        }
        if !forced_plain {
            match nft::OwnedTable::create(&target.netns, &name, &fault.nft_script(&name, true)) {
                Ok(table) => {
                    return Ok(Self {
                        table: Table::Nft(table),
                        kernel_anchored: true,
                    });
                }
                // A kernel before 5.12 (or an nft before 0.9.9) does not know owner tables.
                Err(Error::Nft(message)) if message.contains("owner") => {}
                Err(e) => return Err(e),
            }
        }
        // A plain table outlives its holder: only the revert, or the agent's journal sweep,
        // removes it.
        let table = nft::OwnedTable::create(&target.netns, &name, &fault.nft_script(&name, false))?;
        Ok(Self {
            table: Table::Nft(table),
            kernel_anchored: false,
        })
    }

    /// Whether the kernel removes the table by itself when its holder dies (an owner table).
    /// When not, a holder killed before its revert leaves the table behind.
    pub fn kernel_anchored(&self) -> bool {
        self.kernel_anchored
    }

    /// The nftables table (`faultline_<id>`).
    pub fn table(&self) -> &str {
        match &self.table {
            Table::Netlink(t) => t.name(),
            Table::Nft(t) => t.name(),
        }
    }

    /// The process whose death deletes the table: this one (its netlink socket), or its
    /// `nft -i` child.
    pub fn holder_pid(&self) -> u32 {
        match &self.table {
            Table::Netlink(_) => std::process::id(),
            Table::Nft(t) => t.holder_pid(),
        }
    }

    /// Whether the table was made in-process over netlink (no nft involved).
    pub fn in_process(&self) -> bool {
        matches!(self.table, Table::Netlink(_))
    }

    /// Packets the fault's rules matched so far.
    pub fn packets(&self) -> Result<u64, Error> {
        match &self.table {
            Table::Netlink(t) => t.packets(),
            Table::Nft(t) => t.packets(),
        }
    }

    /// Removes the fault and checks the table is gone. Returns the packets its rules matched,
    /// read just before the delete (`None` if they could not be read).
    pub fn revert(self) -> Result<Option<u64>, Error> {
        match self.table {
            Table::Netlink(t) => t.remove(),
            Table::Nft(t) => t.remove(),
        }
    }
}
