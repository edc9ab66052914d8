//! The write-ahead journal: one JSON line per fault applied (written and fsync'd before the
//! fault touches anything) and per fault reverted. At start the agent replays it and removes
//! what a previous agent left behind.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// A fault about to be applied.
    Apply {
        /// Fault id.
        id: String,
        /// Kind.
        kind: String,
        /// Target pid.
        pid: u32,
        /// The target's start time (`/proc/PID/stat` field 22), so a reused pid is never
        /// taken for it.
        pid_start: Option<u64>,
        /// The nftables table, for network faults.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        table: Option<String>,
        /// The target cgroup, for faults aimed at one (a frozen cgroup is thawed by the sweep).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
    },
    /// Processes a fault started that must not outlive it (stress workers), with their start
    /// times.
    Workers {
        /// Fault id.
        id: String,
        /// `(pid, start time)` of each.
        workers: Vec<(u32, u64)>,
    },
    /// A fault reverted (or never applied).
    Revert {
        /// Fault id.
        id: String,
    },
}

/// The journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens `DIR/journal.jsonl` for appending (creating `dir`), and returns it with the
    /// entries of faults a previous agent applied and never reverted.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Entry>)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("journal.jsonl");
        let mut pending: Vec<Entry> = Vec::new();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                // A line cut short by a crash mid-write is skipped: its fault was never applied
                // (the entry is written before the fault).
                let Ok(entry) = serde_json::from_str::<Entry>(&line?) else {
                    continue;
                };
                match &entry {
                    Entry::Revert { id } => pending.retain(|e| entry_id(e) != id),
                    _ => pending.push(entry),
                }
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        // After a torn line, start the next entry on a line of its own.
        let text = std::fs::read(&path)?;
        if text.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n")?;
        }
        Ok((Self { path, file }, pending))
    }

    /// Appends `entry` and waits until it is on disk.
    pub fn write(&mut self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Starts the journal afresh (after a replay has dealt with every entry).
    pub fn truncate(&mut self) -> std::io::Result<()> {
        self.file = File::create(&self.path)?;
        self.file.sync_all()?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

fn entry_id(entry: &Entry) -> &str {
    match entry {
        Entry::Apply { id, .. } | Entry::Workers { id, .. } | Entry::Revert { id } => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_what_was_never_reverted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, pending) = Journal::open(dir.path()).unwrap();
        assert!(pending.is_empty());
        let apply = |id: &str| Entry::Apply {
            id: id.into(),
            kind: "partition".into(),
            pid: 42,
            pid_start: Some(7),
            table: Some(format!("faultline_{id}")),
            cgroup: None,
        };
        journal.write(&apply("a")).unwrap();
        journal.write(&apply("b")).unwrap();
        journal.write(&Entry::Revert { id: "a".into() }).unwrap();
        drop(journal);
        // A torn last line (the agent died mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .unwrap()
            .write_all(b"{\"op\":\"apply\",\"id\":\"c\",\"ki")
            .unwrap();
        let (mut journal, pending) = Journal::open(dir.path()).unwrap();
        assert_eq!(pending, [apply("b")]);
        journal.truncate().unwrap();
        let (_, pending) = Journal::open(dir.path()).unwrap();
        assert!(pending.is_empty());
    }
}
