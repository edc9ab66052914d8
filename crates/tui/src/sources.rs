//! Where the screen's data comes from: agents (over HTTP, or in this process), /proc, crash
//! directories and logs, and task dumps. Everything here runs on the loop's worker threads,
//! never on the thread that draws.

use std::collections::HashMap;
use std::path::PathBuf;

use faultline_agent::spec::{CreateFault, FaultView, TargetView};
use faultline_agent::{Client, LocalAgent, Refusal};
use faultline_dump::Limits;
use faultline_leak::{Config, Tracker};
use faultline_scenario::analysis::CrashSource;
use faultline_symbolize::Locator;

use crate::model::{CrashRow, FrameLine, TaskGroupRow};

/// An agent: over its API, or in this process.
#[derive(Debug)]
pub enum Link {
    /// `faultline agent` at an address.
    Http(Client),
    /// The agent in this process.
    Local(LocalAgent),
    /// An agent that could not be found (`--kube`: none on a node): every call says why.
    Missing {
        /// How the status line names it.
        name: String,
        /// Why there is no agent.
        why: String,
    },
}

fn refusal(r: Refusal) -> String {
    match r {
        Refusal::Invalid(m) => format!("invalid: {m}"),
        Refusal::Forbidden(m) => format!("forbidden: {m}"),
        Refusal::NotFound(m) => format!("not found: {m}"),
        Refusal::Conflict(m) => format!("conflict: {m}"),
        Refusal::Failed(m) => format!("failed: {m}"),
    }
}

impl Link {
    /// How the status line names it.
    pub fn name(&self) -> String {
        match self {
            Link::Http(client) => client.addr().to_string(),
            Link::Local(_) => "in-process agent".into(),
            Link::Missing { name, .. } => name.clone(),
        }
    }

    /// Whether its targets are processes of this machine (so /proc says more about them).
    pub fn on_this_machine(&self) -> bool {
        match self {
            Link::Http(client) => matches!(client.addr(), faultline_agent::AgentAddr::Unix(_)),
            Link::Local(_) => true,
            Link::Missing { .. } => false,
        }
    }

    /// Every fault it knows.
    pub fn list(&self) -> Result<Vec<FaultView>, String> {
        match self {
            Link::Http(client) => client.list().map_err(|e| e.to_string()),
            Link::Local(agent) => Ok(agent.list()),
            Link::Missing { why, .. } => Err(why.clone()),
        }
    }

    /// The processes it could fault.
    pub fn targets(&self) -> Result<Vec<TargetView>, String> {
        match self {
            Link::Http(client) => client.targets().map_err(|e| e.to_string()),
            Link::Local(_) => Ok(faultline_agent::list_targets()),
            Link::Missing { why, .. } => Err(why.clone()),
        }
    }

    /// Applies a fault.
    pub fn create(&self, request: CreateFault) -> Result<FaultView, String> {
        match self {
            Link::Http(client) => client.create(&request).map_err(|e| e.to_string()),
            Link::Local(agent) => agent.create(request).map_err(refusal),
            Link::Missing { why, .. } => Err(why.clone()),
        }
    }

    /// Reverts a fault.
    pub fn revert(&self, id: &str) -> Result<FaultView, String> {
        match self {
            Link::Http(client) => client.revert(id).map_err(|e| e.to_string()),
            Link::Local(agent) => agent.revert(id).ok_or_else(|| format!("no fault {id}")),
            Link::Missing { why, .. } => Err(why.clone()),
        }
    }

    /// Renews a fault's lease.
    pub fn renew(&self, id: &str) -> Result<FaultView, String> {
        match self {
            Link::Http(client) => client.renew(id).map_err(|e| e.to_string()),
            Link::Local(agent) => agent.renew(id).map_err(refusal),
            Link::Missing { why, .. } => Err(why.clone()),
        }
    }
}

/// CPU time and state of a process, from `/proc/PID/stat` and `status`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// State letter.
    pub state: char,
    /// User plus system CPU seconds so far.
    pub cpu_seconds: f64,
    /// OS threads.
    pub threads: u32,
}

/// Reads a process's sample, if it is there.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Fields 14 and 15 of stat (utime, stime), counted from the state (field 3).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let threads = fields.get(17)?.parse().ok()?;
    Some(ProcSample {
        state,
        cpu_seconds: (utime + stime) / clock_ticks(),
        threads,
    })
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks() -> f64 {
    100.0
}

/// Source files read for their lines (own-code frames show theirs), each read once.
#[derive(Debug, Default)]
pub struct SourceCache {
    files: HashMap<String, Option<Vec<String>>>,
}

impl SourceCache {
    /// Line `line` of `file`, if the file is readable here.
    pub fn line(&mut self, file: Option<&str>, line: Option<u32>) -> Option<String> {
        let (file, line) = (file?, line?);
        let lines = self
            .files
            .entry(file.to_owned())
            .or_insert_with(|| {
                std::fs::read_to_string(file)
                    .ok()
                    .map(|t| t.lines().map(str::to_owned).collect())
            })
            .as_ref()?;
        lines
            .get(usize::try_from(line).ok()?.checked_sub(1)?)
            .cloned()
    }
}

/// Crashes of `sources` (paths relative to `run_dir`), newest first, symbolized; source lines
/// are read where the files are here. Recomputed only when `fingerprint` changes.
#[derive(Debug)]
pub struct CrashScanner {
    sources: Vec<CrashSource>,
    run_dir: PathBuf,
    locator: Locator,
    fingerprint: Vec<(PathBuf, u64)>,
    source: SourceCache,
}

impl CrashScanner {
    /// A scanner over `sources`.
    pub fn new(sources: Vec<CrashSource>, run_dir: PathBuf, locator: Locator) -> Self {
        Self {
            sources,
            run_dir,
            locator,
            fingerprint: Vec::new(),
            source: SourceCache::default(),
        }
    }

    fn fingerprint(&self) -> Vec<(PathBuf, u64)> {
        let mut files = Vec::new();
        for source in &self.sources {
            if let Some(stderr) = &source.stderr {
                let path = self.run_dir.join(stderr);
                let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                files.push((path, len));
            }
            if let Some(dir) = &source.crash_dir
                && let Ok(entries) = std::fs::read_dir(dir)
            {
                for entry in entries.flatten() {
                    let len = entry.metadata().map_or(0, |m| m.len());
                    files.push((entry.path(), len));
                }
            }
        }
        files.sort();
        files
    }

    /// The crashes, when something changed since the last call.
    pub fn scan(&mut self) -> Option<Vec<CrashRow>> {
        let fingerprint = self.fingerprint();
        if fingerprint == self.fingerprint {
            return None;
        }
        self.fingerprint = fingerprint;
        let mut crashes =
            faultline_scenario::analysis::crashes(&self.sources, &self.run_dir, &self.locator);
        // Data races read like crashes on this screen (kind `go data race`).
        crashes.extend(faultline_scenario::analysis::races(
            &self.sources,
            &self.run_dir,
        ));
        let mut rows: Vec<CrashRow> = crashes
            .into_iter()
            .map(|c| CrashRow {
                frames: c
                    .frames
                    .iter()
                    .map(|f| FrameLine {
                        text: f.text.clone(),
                        own: f.own,
                        inlined: f.inlined,
                        source: if f.own {
                            self.source.line(f.file.as_deref(), f.line)
                        } else {
                            None
                        },
                    })
                    .collect(),
                target: c.target,
                kind: c.kind,
                message: c.message,
                top_frame: c.top_frame,
                file: c.file,
            })
            .collect();
        rows.reverse();
        Some(rows)
    }
}

/// One dump source's leak tracker.
#[derive(Debug)]
pub struct TaskSource {
    /// Its name (a target's).
    pub name: String,
    tracker: Tracker,
    /// The latest parse error, if the latest dump could not be read.
    pub error: Option<String>,
}

impl TaskSource {
    /// A source named `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            tracker: Tracker::new(Config::default()),
            error: None,
        }
    }

    /// Adds a dump taken `t` seconds after the start.
    pub fn push(&mut self, t: f64, bytes: &[u8], locator: &Locator) {
        let dump = if bytes.starts_with(b"{") {
            match faultline_record::CrashRecord::from_json(bytes) {
                Ok(record) => {
                    let mut resolved = faultline_symbolize::record::ResolvedRecord::new(
                        &record,
                        locator,
                        faultline_symbolize::Demangle::Short,
                    );
                    faultline_dump::from_record(&record, &Limits::default(), &mut resolved)
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        } else {
            faultline_dump::parse(bytes, &Limits::default())
        };
        match dump {
            Ok(dump) => {
                self.error = None;
                let _ = self.tracker.push_with_alive(t, &dump, dump.alive_tasks);
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// The groups, largest first; own-code frames with their source lines from `source`.
    pub fn groups(&self, source: &mut SourceCache) -> Vec<TaskGroupRow> {
        if self.tracker.pushed() == 0 {
            return Vec::new();
        }
        let report = self.tracker.report(0.0);
        report
            .groups
            .iter()
            .map(|g| {
                let frames: Vec<FrameLine> = g
                    .frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let own = g.own_frame == Some(i);
                        FrameLine {
                            text: frame_text(f),
                            own,
                            inlined: f.inlined,
                            source: if own {
                                source.line(f.file.as_deref(), f.line)
                            } else {
                                None
                            },
                        }
                    })
                    .collect();
                let top_frame = g
                    .own_frame
                    .and_then(|i| frames.get(i))
                    .or(frames.first())
                    .map_or_else(|| "(other groups)".into(), |f| f.text.clone());
                TaskGroupRow {
                    source: self.name.clone(),
                    count: g.trend.count_last,
                    history: g.trend.series.iter().map(|(_, c)| *c).collect(),
                    verdict: g.trend.verdict.name().into(),
                    slope_per_min: g.trend.slope_per_min,
                    p_value: g.trend.p_value,
                    state: g.state.clone().unwrap_or_default(),
                    frames,
                    top_frame,
                    proven_leaked: g.evidence.proven_leaked,
                    stays: g.evidence.turnover.map(|t| 1.0 - t),
                    oldest_seen_seconds: g.evidence.oldest_seen_seconds,
                    why: g.evidence.why.clone(),
                }
            })
            .collect()
    }
}

fn frame_text(frame: &faultline_dump::Frame) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{} at {file}:{line}", frame.function),
        _ => frame.function.to_string(),
    }
}

/// Every source's groups, largest first.
pub fn all_groups(sources: &[TaskSource], source: &mut SourceCache) -> Vec<TaskGroupRow> {
    let mut groups: Vec<TaskGroupRow> = sources.iter().flat_map(|s| s.groups(source)).collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.source.cmp(&b.source)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A race report as a `-race` build of Go 1.27 printed it (paths shortened).
    const RACE: &str = "==================\nWARNING: DATA RACE\n\
        Write at 0x00c00001a150 by goroutine 8:\n  main.store()\n      /src/forms/main.go:27 +0x4f\n\
        \nPrevious write at 0x00c00001a150 by goroutine 7:\n  main.store()\n      /src/forms/main.go:27 +0x4f\n\
        \nGoroutine 8 (running) created at:\n  main.race()\n      /src/forms/main.go:41 +0x124\n\
        \nGoroutine 7 (finished) created at:\n  main.race()\n      /src/forms/main.go:37 +0xbe\n\
        ==================\n";

    #[test]
    fn races_in_a_hosts_log_are_rows_of_the_crashes_view() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hosts/racer")).unwrap();
        std::fs::write(dir.path().join("hosts/racer/stderr.log"), RACE).unwrap();
        let mut scanner = CrashScanner::new(
            vec![CrashSource {
                target: "racer".into(),
                stderr: Some(PathBuf::from("hosts/racer/stderr.log")),
                crash_dir: None,
            }],
            dir.path().to_path_buf(),
            Locator::new(),
        );
        let rows = scanner.scan().unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].kind, "go data race");
        assert_eq!(rows[0].target, "racer");
        assert!(
            rows[0].message.contains("write by goroutine 8"),
            "{}",
            rows[0].message
        );
        assert!(
            rows[0]
                .top_frame
                .starts_with("main.store at /src/forms/main.go:27")
        );
        // Nothing changed: nothing to redraw.
        assert!(scanner.scan().is_none());
    }
}
