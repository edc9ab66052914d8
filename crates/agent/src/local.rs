//! The agent in-process: the same holder thread, journal and sweep as `faultline agent`, with
//! a blocking API instead of HTTP. `faultline run` uses it on one machine, so a run's faults
//! get the very lifetimes, leases and verified reverts an agent gives them.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use tokio::sync::oneshot;

use crate::holder::{Command, Holder, Refusal};
use crate::journal::Journal;
use crate::spec::{CreateFault, FaultView};
use crate::{CounterSet, Helpers, Policy};

/// An agent living in this process. Dropping it reverts every fault it holds.
#[derive(Debug)]
pub struct LocalAgent {
    commands: Option<Sender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _lock: std::fs::File,
}

impl LocalAgent {
    /// Opens the journal in `state_dir` (locked: one agent per directory), sweeps what an
    /// earlier agent or run left behind, and starts the holder. Returns the agent and the
    /// sweep's log, one line per thing removed.
    pub fn start(
        state_dir: &Path,
        policy: Policy,
        helpers: Helpers,
    ) -> Result<(Self, Vec<String>), String> {
        Self::start_with(state_dir, policy, helpers, true)
    }

    /// As [`LocalAgent::start`], without a line on stderr per revert: for a full-screen UI.
    pub fn start_quiet(
        state_dir: &Path,
        policy: Policy,
        helpers: Helpers,
    ) -> Result<(Self, Vec<String>), String> {
        Self::start_with(state_dir, policy, helpers, false)
    }

    fn start_with(
        state_dir: &Path,
        policy: Policy,
        helpers: Helpers,
        log_reverts: bool,
    ) -> Result<(Self, Vec<String>), String> {
        let state = |e: std::io::Error| format!("state directory {}: {e}", state_dir.display());
        std::fs::create_dir_all(state_dir).map_err(state)?;
        let lock = crate::server::lock_state_dir(state_dir)?;
        let (mut journal, pending) = Journal::open(state_dir).map_err(state)?;
        let (log, unresolved) = crate::sweep(&pending);
        journal.truncate().map_err(state)?;
        for entry in &unresolved {
            journal.write(entry).map_err(state)?;
        }
        let mut holder = Holder::new(journal, policy, helpers, Arc::new(CounterSet::default()));
        if !log_reverts {
            holder = holder.quiet();
        }
        let (commands, receiver) = std::sync::mpsc::channel();
        // The holder thread spawns the nft holders and stress workers, whose parent-death
        // signal follows it: it lives as long as this value.
        let thread = std::thread::Builder::new()
            .name("fault-holder".into())
            .spawn(move || holder.run(&receiver))
            .map_err(|e| format!("start the fault holder: {e}"))?;
        Ok((
            Self {
                commands: Some(commands),
                thread: Some(thread),
                _lock: lock,
            },
            log,
        ))
    }

    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or("the agent has stopped")?
            .send(make(reply))
            .map_err(|_| "the fault holder has stopped".to_string())?;
        answer
            .blocking_recv()
            .map_err(|_| "the fault holder stopped before answering".to_string())
    }

    /// Applies a fault.
    pub fn create(&self, request: CreateFault) -> Result<FaultView, Refusal> {
        self.ask(|reply| Command::Create(Box::new(request), reply))
            .map_err(Refusal::Failed)?
    }

    /// Renews a fault's lease.
    pub fn renew(&self, id: &str) -> Result<FaultView, Refusal> {
        self.ask(|reply| Command::Renew(id.to_owned(), reply))
            .map_err(Refusal::Failed)?
    }

    /// One fault as the agent sees it now.
    pub fn get(&self, id: &str) -> Option<FaultView> {
        self.ask(|reply| Command::Get(id.to_owned(), reply))
            .ok()
            .flatten()
    }

    /// Reverts one fault now.
    pub fn revert(&self, id: &str) -> Option<FaultView> {
        self.ask(|reply| Command::Revert(id.to_owned(), reply))
            .ok()
            .flatten()
    }

    /// Every fault.
    pub fn list(&self) -> Vec<FaultView> {
        self.ask(Command::List).unwrap_or_default()
    }

    /// Reverts everything still active and stops the holder.
    pub fn shutdown(mut self) -> Vec<FaultView> {
        let reverted = self.ask(Command::RevertAll).unwrap_or_default();
        self.stop();
        reverted
    }

    fn stop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        self.stop();
    }
}
