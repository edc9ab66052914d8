//! The agent a run's faults go through: the in-process one (local targets) or a running one
//! (`--agent`, and the agent on each pod's node), behind one blocking interface.

use std::time::{Duration, Instant};

use faultline_agent::spec::{CreateFault, FaultView};
use faultline_agent::{Client, LocalAgent};

pub(super) enum Agent {
    Local(LocalAgent),
    Remote(Client),
}

impl Agent {
    pub(super) fn create(&self, request: CreateFault) -> Result<FaultView, String> {
        match self {
            Agent::Local(a) => a.create(request).map_err(|r| format!("{r:?}")),
            Agent::Remote(c) => c.create(&request).map_err(|e| e.to_string()),
        }
    }
    pub(super) fn renew(&self, id: &str) -> Result<FaultView, String> {
        match self {
            Agent::Local(a) => a.renew(id).map_err(|r| format!("{r:?}")),
            Agent::Remote(c) => c.renew(id).map_err(|e| e.to_string()),
        }
    }
    /// The fault as the agent has it (`None`: it does not know it), or why the agent could
    /// not be asked.
    pub(super) fn get(&self, id: &str) -> Result<Option<FaultView>, String> {
        match self {
            Agent::Local(a) => Ok(a.get(id)),
            Agent::Remote(c) => c
                .list()
                .map(|views| views.into_iter().find(|v| v.id == id))
                .map_err(|e| e.to_string()),
        }
    }
    /// The fault as reverted (`None`: the agent does not know it), or why the agent could not
    /// be asked.
    pub(super) fn revert(&self, id: &str) -> Result<Option<FaultView>, String> {
        match self {
            Agent::Local(a) => Ok(a.revert(id)),
            Agent::Remote(c) => c.revert(id).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// [`Agent::revert`], asked again for up to 3 s while the agent cannot be asked.
    pub(super) fn revert_patiently(&self, id: &str) -> Result<Option<FaultView>, String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match self.revert(id) {
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                done => return done,
            }
        }
    }
}
