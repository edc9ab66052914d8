//! The end of the steps: the kills' outcomes recorded (a pod kill's replacement waited for),
//! then every fault the agents hold settled — reverted at once if it was cut short, else
//! waited for to its end — and its revert recorded as the agent read it back from the kernel.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_fault::Interrupts;

use super::journal::Journal;
use super::timeline::{Created, Timeline};
use crate::verdict::FaultRecord;

impl Timeline<'_> {
    /// Records the kills' outcomes. Pod kills wait for their replacements (up to their
    /// timeout): with `interrupts`, a signal ends that wait and is returned; without, a pod
    /// kill still waiting is recorded as cut short and left to finish on its own.
    pub(super) fn collect_kills(
        &mut self,
        faults: &mut [FaultRecord],
        journal: &mut Journal,
        interrupts: Option<&Interrupts>,
    ) -> Option<i32> {
        for (index, handle) in self.kills.drain(..) {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err("the kill thread panicked".into()));
            let record = &mut faults[index];
            match result {
                Ok(view) => {
                    record.id = Some(view.id.clone());
                    record.applied = format!("applied: {}", view.detail);
                    journal.log("fault", format!("kill {}: {}", view.id, view.detail));
                }
                Err(e) => {
                    record.applied = format!("failed: {e}");
                    journal.log("fault", format!("kill of {} failed: {e}", record.target));
                }
            }
        }
        let mut signal = None;
        for (index, handle) in std::mem::take(&mut self.pod_kills) {
            while !handle.is_finished() && signal.is_none() {
                // The faults still held keep their leases while a replacement is waited for.
                if let Err(e) = self.renew(journal) {
                    self.errors.push(e);
                }
                match interrupts {
                    Some(i) => signal = i.wait(Duration::from_millis(100)),
                    None => break,
                }
            }
            if !handle.is_finished() {
                let record = &mut faults[index];
                record.applied = format!(
                    "applied: {} deleted; the wait for its replacement was cut short",
                    record.pod.as_deref().unwrap_or_default()
                );
                journal.log("fault", format!("pod-kill {}", record.applied));
                continue;
            }
            let result = handle
                .join()
                .unwrap_or_else(|_| Err("the pod kill thread panicked".into()));
            let record = &mut faults[index];
            let pod = record.pod.clone().unwrap_or_default();
            match result {
                Ok(killed) => {
                    record.replacement = killed.replacement.clone();
                    record.ready_after = killed.ready_after.map(|d| d.as_secs_f64());
                    record.applied = format!(
                        "applied: {pod} deleted; gone after {}; {}",
                        seconds(killed.gone_after),
                        match (&killed.replacement, killed.ready_after) {
                            (Some(by), Some(after)) =>
                                format!("{by} Ready after {:.1}s", after.as_secs_f64()),
                            _ => "no replacement Ready in time".into(),
                        }
                    );
                    journal.log("fault", format!("pod-kill {}", record.applied));
                }
                Err(e) => {
                    record.applied = format!("failed: {e}");
                    journal.log("fault", format!("pod-kill of {pod} failed: {e}"));
                    self.errors.push(format!(
                        "step {}: pod-kill of {pod} failed: {e}",
                        record.step
                    ));
                }
            }
        }
        if let Some(signal) = signal {
            journal.log(
                "run",
                format!("signal {signal}: stopped waiting for replacements"),
            );
        }
        signal
    }
    /// Waits for every fault's end and records its revert as the agent verified it.
    pub(super) fn settle(&mut self, faults: &mut [FaultRecord], journal: &mut Journal) {
        self.collect_kills(faults, journal, None);
        // When each fault still held was to end: one cut short (a signal, an error) is
        // reverted at once, not waited for while the others' leases run out.
        let ends: HashMap<String, Instant> = self
            .held
            .drain(..)
            .map(|h| (h.id.clone(), h.ends))
            .collect();
        for created in std::mem::take(&mut self.created) {
            let Created { record, id, agent } = created;
            let record = &mut faults[record];
            record.id = Some(id.clone());
            let now = Instant::now();
            let view = match ends
                .get(&id)
                .filter(|end| **end > now + Duration::from_secs(1))
            {
                Some(_) => agent.revert_patiently(&id),
                None => {
                    // Its duration ends on the agent's clock; give it a moment past that. An
                    // agent that does not answer is asked again until then.
                    let deadline = now + Duration::from_secs(3);
                    let mut view = agent.get(&id);
                    while (view.is_err()
                        || view
                            .as_ref()
                            .is_ok_and(|v| v.as_ref().is_some_and(|v| v.state == "active")))
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(200));
                        view = agent.get(&id);
                    }
                    match view {
                        Ok(Some(v)) if v.state == "active" => agent.revert_patiently(&id),
                        other => other,
                    }
                }
            };
            match view {
                Err(e) => {
                    record.revert = Some(format!("the agent could not be asked: {e}"));
                    journal.log("revert", format!("{id}: the agent could not be asked: {e}"));
                }
                Ok(Some(v)) => {
                    record.packets = v.packets;
                    record.revert = v.revert.clone();
                    let why = v.reverted_by.clone().unwrap_or_default();
                    journal.log(
                        "revert",
                        format!(
                            "{} {} reverted ({why}): {}{}",
                            v.kind,
                            v.id,
                            v.revert.unwrap_or_else(|| "no revert reported".into()),
                            v.packets
                                .map(|p| format!(", {p} packets matched"))
                                .unwrap_or_default()
                        ),
                    );
                }
                Ok(None) => {
                    record.revert = Some("the agent no longer knows this fault".into());
                    journal.log("revert", format!("{id}: unknown to the agent"));
                }
            }
        }
        // A fault replaced when its pod peers changed, whose revert was not verified, leaves
        // its record unverified too.
        for (index, failure) in std::mem::take(&mut self.superseded) {
            journal.log("revert", failure.clone());
            faults[index].revert = Some(failure);
        }
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "not seen".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}
