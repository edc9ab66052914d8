//! The event loop: the only place that does I/O. Worker threads (keys, agents, /proc, crash
//! scans, dump scrapes, fault requests, lease renewals) send [`Event`]s into one bounded
//! channel; the loop hands each to the state, draws, and passes the returned actions to the
//! worker that carries them out.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_agent::spec::CreateFault;
use faultline_scenario::analysis::CrashSource;
use faultline_scenario::cluster::{Cluster, ClusterPod};
use faultline_scenario::lab::{Lab, LabOptions};
use faultline_scenario::model::PodTarget;
use faultline_scenario::probe::{Context, Resolver, Watchers};
use faultline_scenario::{Plan, Scenario};
use ratatui::crossterm::event::{self as term, Event as TermEvent};

use crate::app::{Action, App, Event};
use crate::model::{AgentStatus, PodInfo, ProbeRow, TargetRow};
use crate::sources::{CrashScanner, Link, TaskSource, all_groups, proc_sample};

/// A directory name for an agent's address (`unix:/run/faultline/agent.sock`,
/// `tcp:10.0.0.7:7070`).
fn link_dir_name(addr: &str) -> String {
    addr.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What `faultline tui` was asked to open.
#[derive(Debug)]
pub struct Options {
    /// Agents to talk to.
    pub links: Vec<Link>,
    /// A scenario whose lab to open (its hosts become the targets).
    pub scenario: Option<(Scenario, Plan)>,
    /// Where the lab's logs, crash records and dumps go.
    pub out_dir: PathBuf,
    /// The faultline binary (the lab's namespace holders).
    pub exe: PathBuf,
    /// Extra crash-record directories to watch.
    pub crash_dirs: Vec<PathBuf>,
    /// Extra dump endpoints: (name, URL), scraped every `dump_every`.
    pub dumps: Vec<(String, String)>,
    /// How often the extra dump endpoints are scraped.
    pub dump_every: Duration,
    /// Debug directories for symbolization.
    pub debug_dirs: Vec<PathBuf>,
    /// The lease on this screen's faults.
    pub lease: Duration,
    /// Waits up to the given time for SIGTERM, SIGHUP or SIGINT (blocked by the caller before
    /// any thread started) and returns it: the screen then reverts its faults and leaves.
    pub signals: Option<SignalWait>,
    /// `--kube`: the targets are pods of a cluster, and `links` the agents on their nodes.
    pub kube: Option<KubeScreen>,
}

/// Pods as targets (`faultline tui --kube`).
pub struct KubeScreen {
    /// The cluster.
    pub cluster: Arc<dyn Cluster>,
    /// Which pods are listed (its namespaces and selector).
    pub pods: PodTarget,
    /// The node of each agent, by the index of its link.
    pub nodes: Vec<String>,
}

impl std::fmt::Debug for KubeScreen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeScreen")
            .field("pods", &self.pods)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// The latest listing of the pods, shared with the worker that deletes them.
type Listed = Arc<Mutex<Vec<ClusterPod>>>;

/// See [`Options::signals`].
pub struct SignalWait(pub Box<dyn FnMut(Duration) -> Option<i32> + Send>);

impl std::fmt::Debug for SignalWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalWait")
    }
}

/// A dump as scraped: its source, seconds since the start, and where it is.
type Scraped = (String, f64, DumpBody);

/// A scraped dump's content, or the file it was saved to (read on the tasks thread).
#[derive(Debug)]
enum DumpBody {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// How the screen ended, for the lines printed after it.
#[derive(Debug, Default)]
pub struct Summary {
    /// One line per thing done on the way out.
    pub lines: Vec<String>,
}

/// Restores the terminal when dropped: on every way out, a panic included (ratatui's panic
/// hook restores it before the panic message is printed).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps `total` in small steps; false once `stop` is set.
fn nap(stop: &AtomicBool, total: Duration) -> bool {
    let end = Instant::now() + total;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

/// The lab of a scenario, while the screen is open.
struct OpenLab {
    lab: Arc<Lab>,
    watchers: Option<Watchers>,
    hosts: Vec<(String, String)>,
    /// Dump capture → the host it scrapes (named in its URL).
    capture_hosts: HashMap<String, String>,
}

fn open_lab(
    scenario: &Scenario,
    plan: &Plan,
    options: &Options,
) -> Result<Option<OpenLab>, String> {
    if plan.hosts.is_empty() {
        return Ok(None);
    }
    eprintln!(
        "faultline tui: starting the lab of {}: {}",
        scenario.name,
        plan.hosts
            .iter()
            .map(|h| format!("{} {}", h.name, h.address))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let lab = Lab::start(
        &plan.hosts,
        &LabOptions {
            holder: vec![options.exe.display().to_string(), "__hold".into()],
            out_dir: options.out_dir.clone(),
            base_dir: scenario.base_dir.clone(),
        },
    )?;
    for host in &scenario.hosts {
        if let Some(port) = host.ready_port {
            lab.wait_ready(&host.name, port, host.ready_within, |waited| {
                eprintln!(
                    "faultline tui: waiting for {} on port {port} ({}s of {})",
                    host.name,
                    waited.as_secs(),
                    humantime::format_duration(host.ready_within)
                );
            })?;
        }
    }
    let cx = Context {
        netns: Some(lab.hub_path()),
        resolver: Resolver {
            hosts: lab.addresses(),
            forwards: Vec::new(),
        },
        zero: Instant::now(),
        out_dir: options.out_dir.clone(),
        base_dir: scenario.base_dir.clone(),
    };
    let watchers = Watchers::start(&scenario.probes, &scenario.dumps, &cx)?;
    let hosts: Vec<(String, String)> = lab
        .addresses()
        .into_iter()
        .map(|(name, ip)| (name, ip.to_string()))
        .collect();
    let capture_hosts = scenario
        .dumps
        .iter()
        .filter_map(|d| {
            let host = hosts.iter().find(|(name, address)| {
                d.url.contains(&format!("{{hosts.{name}}}"))
                    || d.url.contains(&format!("//{name}:"))
                    || d.url.contains(&format!("//{name}/"))
                    || d.url.contains(&format!("//{address}:"))
            })?;
            Some((d.name.clone(), host.0.clone()))
        })
        .collect();
    Ok(Some(OpenLab {
        lab: Arc::new(lab),
        watchers: Some(watchers),
        hosts,
        capture_hosts,
    }))
}

/// Opens the screen and runs it until the user quits.
pub fn run(mut options: Options) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let lab = match &options.scenario {
        Some((scenario, plan)) => open_lab(scenario, plan, &options)?,
        None => None,
    };
    let links: Vec<Arc<Link>> = options.links.into_iter().map(Arc::new).collect();
    if links.is_empty() {
        return Err("no agent to talk to".into());
    }
    let title = match (&options.scenario, &options.kube) {
        (Some((s, _)), _) => format!("scenario {} · lab in {}", s.name, options.out_dir.display()),
        (None, Some(kube)) => format!(
            "pods in {}{} · {}",
            kube.pods.namespaces.join(", "),
            if kube.pods.selector.is_empty() {
                String::new()
            } else {
                format!(" ({})", kube.pods.selector)
            },
            kube.cluster.describe()
        ),
        (None, None) => links
            .iter()
            .map(|l| l.name())
            .collect::<Vec<_>>()
            .join(", "),
    };
    // With --kube, an agent is named by its node (its address is a port-forward's).
    let names: Vec<String> = match &options.kube {
        Some(kube) => links
            .iter()
            .zip(&kube.nodes)
            .map(|(link, node)| match &**link {
                Link::Missing { .. } => link.name(),
                _ => node.clone(),
            })
            .collect(),
        None => links.iter().map(|l| l.name()).collect(),
    };
    let mut app = App::new(
        title,
        names.into_iter().map(AgentStatus::new).collect(),
        Instant::now(),
    );
    if let Some(lab) = &lab {
        app.peers = lab.hosts.clone();
    }
    app.kube = options.kube.is_some();

    let stop = Arc::new(AtomicBool::new(false));
    let (events, inbox) = sync_channel::<Event>(256);
    let mut threads = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .map_err(|e| format!("start {name}: {e}"))
    };

    // Keys and resizes.
    {
        let (stop, events) = (stop.clone(), events.clone());
        threads.push(spawn(
            "tui-input",
            Box::new(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !term::poll(Duration::from_millis(100)).unwrap_or(false) {
                        continue;
                    }
                    let event = match term::read() {
                        Ok(TermEvent::Key(key)) => Event::Key(key),
                        Ok(TermEvent::Resize(..)) => Event::Resize,
                        _ => continue,
                    };
                    if events.send(event).is_err() {
                        return;
                    }
                }
            }),
        )?);
    }

    // Signals: taken synchronously by a thread of their own.
    if let Some(SignalWait(mut wait)) = options.signals.take() {
        let (stop, events) = (stop.clone(), events.clone());
        threads.push(spawn(
            "tui-signals",
            Box::new(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(signal) = wait(Duration::from_millis(100)) {
                        let _ = events.send(Event::Signal(signal));
                        return;
                    }
                }
            }),
        )?);
    }

    // Pods (`--kube`): listed every two seconds, each under the agent of its node.
    let listed: Listed = Arc::default();
    if let Some(kube) = &options.kube {
        let (stop, events, listed) = (stop.clone(), events.clone(), listed.clone());
        let (cluster, pods, nodes) = (kube.cluster.clone(), kube.pods.clone(), kube.nodes.clone());
        threads.push(spawn(
            "tui-pods",
            Box::new(move || {
                // Rows are keyed by a number of their own (above any pid), stable per pod.
                let mut keys: HashMap<String, u32> = HashMap::new();
                loop {
                    if let Ok(found) = cluster.pods(&pods) {
                        // A pod on a node the screen has no agent for (none of the pods listed
                        // when it opened was there) is shown under no agent: it can be deleted,
                        // not faulted.
                        let mut rows: Vec<Vec<TargetRow>> = vec![Vec::new(); nodes.len() + 1];
                        for pod in &found {
                            let node = pod.node.clone().unwrap_or_default();
                            let agent =
                                nodes.iter().position(|n| *n == node).unwrap_or(nodes.len());
                            let next = 0x4000_0000 + u32::try_from(keys.len()).unwrap_or(0);
                            let key = *keys.entry(pod.uid.clone()).or_insert(next);
                            rows[agent].push(TargetRow {
                                pid: key,
                                name: pod.id(),
                                address: pod.ip.clone(),
                                pod: Some(PodInfo {
                                    uid: pod.uid.clone(),
                                    node,
                                    phase: pod.phase.clone(),
                                    ready: pod.ready,
                                    restarts: pod.restarts.iter().map(|(_, n)| n).sum(),
                                }),
                                ..TargetRow::default()
                            });
                        }
                        *lock(&listed) = found;
                        for (agent, rows) in rows.into_iter().enumerate() {
                            if events.send(Event::Targets { agent, rows }).is_err() {
                                return;
                            }
                        }
                    }
                    if !nap(&stop, Duration::from_secs(2)) {
                        return;
                    }
                }
            }),
        )?);
    }

    // Each agent: its faults every second, its targets every two.
    for (agent, link) in links.iter().enumerate() {
        let (stop, events, link) = (stop.clone(), events.clone(), link.clone());
        let hosts = lab.as_ref().map(|l| (l.lab.clone(), l.hosts.clone()));
        let kube = options.kube.is_some();
        threads.push(spawn(
            "tui-agent",
            Box::new(move || {
                let mut cpu: HashMap<u32, (f64, Instant)> = HashMap::new();
                let mut n = 0u64;
                loop {
                    let result = link.list();
                    if events
                        .send(Event::Faults {
                            agent,
                            result,
                            at: Instant::now(),
                        })
                        .is_err()
                    {
                        return;
                    }
                    if n.is_multiple_of(2) && !kube {
                        let rows = match &hosts {
                            Some((lab, hosts)) => Ok(lab_targets(lab, hosts)),
                            None => link.targets().map(|views| {
                                views
                                    .into_iter()
                                    .map(|v| TargetRow {
                                        pid: v.pid,
                                        name: v.comm,
                                        in_agent_netns: v.in_agent_netns,
                                        ..TargetRow::default()
                                    })
                                    .collect()
                            }),
                        };
                        if let Ok(mut rows) = rows {
                            if link.on_this_machine() {
                                sample(&mut rows, &mut cpu);
                            }
                            if events.send(Event::Targets { agent, rows }).is_err() {
                                return;
                            }
                        }
                    }
                    n += 1;
                    if !nap(&stop, Duration::from_secs(1)) {
                        return;
                    }
                }
            }),
        )?);
    }

    // Fault requests, and this screen's leases.
    let ours: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let (actions, requests) = sync_channel::<Action>(64);
    {
        let (events, links, ours, lease) =
            (events.clone(), links.clone(), ours.clone(), options.lease);
        let kube = options
            .kube
            .as_ref()
            .map(|k| (k.cluster.clone(), k.pods.clone(), listed.clone()));
        threads.push(spawn(
            "tui-actions",
            Box::new(move || carry_out(&requests, &events, &links, &ours, lease, kube)),
        )?);
    }
    // Leases: a thread per agent, so that a hung agent holds up only its own renewals.
    let every = (options.lease / 3).max(Duration::from_millis(200));
    for (agent, link) in links.iter().enumerate() {
        let (stop, events, link, ours) = (stop.clone(), events.clone(), link.clone(), ours.clone());
        threads.push(spawn(
            "tui-lease",
            Box::new(move || {
                while nap(&stop, every) {
                    let held: Vec<String> = lock(&ours)
                        .iter()
                        .filter(|(a, _)| *a == agent)
                        .map(|(_, id)| id.clone())
                        .collect();
                    let mut failure = None;
                    let mut ended = Vec::new();
                    for id in &held {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        match link.renew(id) {
                            Ok(_) => {}
                            // Reverted (by the user, its duration, someone else) or forgotten
                            // (the agent restarted and swept it): not ours to renew any more.
                            Err(e)
                                if ["409", "404", "conflict", "not found"]
                                    .iter()
                                    .any(|s| e.contains(s)) =>
                            {
                                ended.push((agent, id.clone()));
                            }
                            Err(e) => {
                                failure.get_or_insert(e);
                            }
                        }
                    }
                    lock(&ours).retain(|f| !ended.contains(f));
                    let result = failure.map_or(Ok(()), Err);
                    if events.send(Event::Renewed { agent, result }).is_err() {
                        return;
                    }
                }
            }),
        )?);
    }

    // Crashes: the lab's hosts (logs and crash directories) and any --crash-dir.
    let locator = || match &options.scenario {
        Some((scenario, _)) => faultline_scenario::analysis::locator(&scenario.debug)
            .with_stores(options.debug_dirs.iter().cloned()),
        None => Locator::new()
            .with_stores(options.debug_dirs.iter().cloned())
            .with_index(faultline_symbolize::index::IndexOptions::from_env()),
    };
    {
        let mut sources: Vec<CrashSource> = options
            .crash_dirs
            .iter()
            .map(|dir| CrashSource {
                target: dir
                    .file_name()
                    .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into()),
                stderr: None,
                crash_dir: Some(dir.clone()),
            })
            .collect();
        if let Some(lab) = &lab {
            for (name, _) in &lab.hosts {
                sources.push(CrashSource {
                    target: name.clone(),
                    stderr: Some(PathBuf::from(format!("hosts/{name}/stderr.log"))),
                    crash_dir: Some(options.out_dir.join(format!("hosts/{name}/crashes"))),
                });
            }
        }
        // The cores an agent's handler caught (`--catch-cores`), copied here to be read as
        // the rest are.
        let mut mirrors = Vec::new();
        for link in &links {
            if let Link::Http(client) = link.as_ref() {
                let dir = options
                    .out_dir
                    .join("agents")
                    .join(link_dir_name(&client.addr().to_string()))
                    .join("crashes");
                sources.push(CrashSource {
                    target: client.addr().to_string(),
                    stderr: None,
                    crash_dir: Some(dir.clone()),
                });
                mirrors.push((client.clone(), dir));
            }
        }
        let mut scanner = CrashScanner::new(sources, options.out_dir.clone(), locator());
        let (stop, events) = (stop.clone(), events.clone());
        // Symbolizing can take a while: this thread is never waited for.
        spawn(
            "tui-crashes",
            Box::new(move || {
                loop {
                    for (client, dir) in &mirrors {
                        // An agent that catches no cores says so: nothing to copy.
                        let _ = client.mirror_crashes(dir);
                    }
                    if let Some(rows) = scanner.scan()
                        && events.send(Event::Crashes(rows)).is_err()
                    {
                        return;
                    }
                    if !nap(&stop, Duration::from_secs(2)) {
                        return;
                    }
                }
            }),
        )?;
    }

    // Task dumps: the scenario's captures (scraped inside the lab) and any --dump.
    let scraped: Arc<Mutex<Vec<Scraped>>> = Arc::default();
    if !options.dumps.is_empty() {
        let (stop, scraped, dumps, every) = (
            stop.clone(),
            scraped.clone(),
            options.dumps.clone(),
            options.dump_every,
        );
        spawn(
            "tui-scrape",
            Box::new(move || {
                let zero = Instant::now();
                let resolver = Resolver::default();
                loop {
                    for (name, url) in &dumps {
                        if let Ok(body) = faultline_scenario::probe::fetch(
                            url,
                            &resolver,
                            Duration::from_secs(10),
                        ) {
                            lock(&scraped).push((
                                name.clone(),
                                zero.elapsed().as_secs_f64(),
                                DumpBody::Bytes(body),
                            ));
                        }
                    }
                    if !nap(&stop, every) {
                        return;
                    }
                }
            }),
        )?;
    }
    let mut task_sources: Vec<TaskSource> = Vec::new();
    let mut taken: Vec<usize> = Vec::new();
    let (tasks_in, tasks_out) = sync_channel::<Vec<Scraped>>(4);
    {
        let (events, locator) = (events.clone(), locator());
        spawn(
            "tui-tasks",
            Box::new(move || {
                let mut source = crate::sources::SourceCache::default();
                while let Ok(batch) = tasks_out.recv() {
                    for (name, t, body) in batch {
                        let bytes = match body {
                            DumpBody::Bytes(bytes) => bytes,
                            // A file the capture could not keep is a scrape lost: the series
                            // goes on without it.
                            DumpBody::File(path) => match std::fs::read(&path) {
                                Ok(bytes) => bytes,
                                Err(_) => continue,
                            },
                        };
                        let at = match task_sources.iter().position(|s| s.name == name) {
                            Some(at) => at,
                            None => {
                                task_sources.push(TaskSource::new(&name));
                                task_sources.len() - 1
                            }
                        };
                        task_sources[at].push(t, &bytes, &locator);
                    }
                    if events
                        .send(Event::Tasks(all_groups(&task_sources, &mut source)))
                        .is_err()
                    {
                        return;
                    }
                }
            }),
        )?;
    }

    drop(events);
    let mut terminal = ratatui::try_init().map_err(|e| format!("open the terminal: {e}"))?;
    let restore = Restore;
    let mut last_tick = Instant::now();
    let mut last_scan = Instant::now();
    // FAULTLINE_TUI_LOG=FILE: every event the screen handles, a line each (for bug reports).
    let started = Instant::now();
    let mut event_log = std::env::var_os("FAULTLINE_TUI_LOG").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let mut quit = None;
    let mut signalled = None;
    let mut pending: Vec<Scraped> = Vec::new();
    while quit.is_none() {
        // A terminal that cannot be drawn on (closed under us) ends the screen the safe way:
        // its faults reverted, the lab torn down.
        if let Err(e) = terminal.draw(|frame| crate::view::draw(frame, &app)) {
            summary.lines.push(format!("the terminal went away ({e})"));
            quit = Some(true);
            break;
        }
        let event = match inbox.recv_timeout(Duration::from_millis(250)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => Event::Tick(Instant::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![event];
        if last_tick.elapsed() >= Duration::from_millis(250) {
            last_tick = Instant::now();
            batch.push(Event::Tick(last_tick));
        }
        if last_scan.elapsed() >= Duration::from_secs(1) {
            last_scan = Instant::now();
            if let Some(lab) = &lab
                && let Some(w) = &lab.watchers
            {
                batch.push(Event::Probes(
                    w.latest()
                        .into_iter()
                        .map(|(name, sample)| ProbeRow {
                            name,
                            ok: sample.as_ref().map(|s| s.ok),
                            error: sample.and_then(|s| s.error),
                        })
                        .collect(),
                ));
                for (i, (name, scrapes)) in w.scrapes_since(&taken).into_iter().enumerate() {
                    if taken.len() <= i {
                        taken.resize(i + 1, 0);
                    }
                    taken[i] += scrapes.len();
                    for scrape in scrapes {
                        if let Some(file) = &scrape.file {
                            let source = lab.capture_hosts.get(&name).unwrap_or(&name);
                            pending.push((
                                source.clone(),
                                scrape.t,
                                DumpBody::File(options.out_dir.join(file)),
                            ));
                        }
                    }
                }
            }
            pending.append(&mut lock(&scraped));
            // The tracker may still be busy with the last batch: this one waits for the next
            // second rather than being dropped.
            if !pending.is_empty() {
                match tasks_in.try_send(std::mem::take(&mut pending)) {
                    Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                    Err(TrySendError::Full(back)) => pending = back,
                }
            }
        }
        for event in batch {
            if let Event::Signal(signal) = event {
                signalled = Some(signal);
            }
            if let Some(log) = &mut event_log {
                use std::io::Write as _;
                let _ = writeln!(
                    log,
                    "{:.3} {}",
                    started.elapsed().as_secs_f64(),
                    brief(&event)
                );
            }
            let mut refused = Vec::new();
            for action in app.handle(event) {
                match action {
                    Action::Quit { revert } => quit = Some(revert),
                    other => {
                        if let Err(
                            TrySendError::Full(action) | TrySendError::Disconnected(action),
                        ) = actions.try_send(other)
                        {
                            refused.push(action);
                        }
                    }
                }
            }
            // Never dropped in silence: the screen says the request was not sent.
            for action in refused {
                let busy = "not sent: earlier requests are still waiting for the agent".to_owned();
                let event = match action {
                    Action::Inject { agent, .. } => Event::Injected {
                        agent,
                        result: Err(busy),
                    },
                    Action::Revert { agent, id } => Event::Reverted {
                        agent,
                        id,
                        result: Err(busy),
                    },
                    Action::PodKill { pod } => Event::PodKilled {
                        pod,
                        result: Err(busy),
                    },
                    Action::Quit { .. } => continue,
                };
                app.handle(event);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Threads blocked on a full channel see it closed.
    drop(inbox);
    drop(restore);
    drop(terminal);

    // On the way out: this screen's faults, then the lab.
    drop(actions);
    // Workers stop within their next step; one stuck on an agent that does not answer is left
    // behind (it ends with the process) rather than holding up the reverts and the teardown.
    let deadline = Instant::now() + Duration::from_secs(3);
    for thread in threads {
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
    if let Some(signal) = signalled {
        summary.lines.push(format!("stopped by signal {signal}"));
    }
    let held = std::mem::take(&mut *lock(&ours));
    if quit == Some(true) {
        for (agent, id) in &held {
            match links[*agent].revert(id) {
                Ok(view) => summary.lines.push(format!(
                    "{} {id} reverted: {}",
                    view.kind,
                    view.revert.as_deref().unwrap_or("done")
                )),
                Err(e) => summary.lines.push(format!("revert {id} failed: {e}")),
            }
        }
    } else if !held.is_empty() {
        summary.lines.push(format!(
            "{} faults left to their lease ({} s); an agent in this process reverts them as it stops",
            held.len(),
            options.lease.as_secs()
        ));
    }
    drop(links);
    if let Some(mut lab) = lab {
        if let Some(w) = lab.watchers.take() {
            drop(w.stop());
        }
        match Arc::try_unwrap(lab.lab) {
            Ok(lab) => {
                let residue = lab.teardown();
                if residue.is_empty() {
                    summary.lines.push("lab torn down".into());
                } else {
                    summary
                        .lines
                        .extend(residue.into_iter().map(|r| format!("left behind: {r}")));
                }
            }
            Err(_) => summary
                .lines
                .push("lab still in use: torn down as faultline exits".into()),
        }
    }
    Ok(summary)
}

use faultline_symbolize::Locator;

/// An event in a line: keys and answers whole, data by its size.
fn brief(event: &Event) -> String {
    match event {
        Event::Targets { agent, rows } => {
            format!("Targets {{ agent: {agent}, rows: {} }}", rows.len())
        }
        Event::Faults { agent, result, .. } => match result {
            Ok(views) => format!("Faults {{ agent: {agent}, faults: {} }}", views.len()),
            Err(e) => format!("Faults {{ agent: {agent}, error: {e:?} }}"),
        },
        Event::Crashes(rows) => format!("Crashes({})", rows.len()),
        Event::Tasks(rows) => format!("Tasks({} groups)", rows.len()),
        Event::Probes(rows) => format!("Probes({})", rows.len()),
        other => format!("{other:?}"),
    }
}

/// The lab's hosts as targets.
fn lab_targets(lab: &Lab, hosts: &[(String, String)]) -> Vec<TargetRow> {
    hosts
        .iter()
        .filter_map(|(name, address)| {
            Some(TargetRow {
                pid: lab.pid(name)?,
                name: name.clone(),
                address: Some(address.clone()),
                ..TargetRow::default()
            })
        })
        .collect()
}

/// Fills in state, CPU and threads from /proc; `cpu` keeps the previous CPU times.
fn sample(rows: &mut [TargetRow], cpu: &mut HashMap<u32, (f64, Instant)>) {
    let now = Instant::now();
    let mut seen = HashMap::with_capacity(rows.len());
    for row in rows.iter_mut() {
        let Some(s) = proc_sample(row.pid) else {
            continue;
        };
        row.state = Some(s.state);
        row.threads = Some(s.threads);
        if let Some((before, at)) = cpu.get(&row.pid) {
            let wall = now.saturating_duration_since(*at).as_secs_f64();
            if wall > 0.0 {
                row.cpu = Some(((s.cpu_seconds - before) / wall).max(0.0));
            }
        }
        seen.insert(row.pid, (s.cpu_seconds, now));
    }
    *cpu = seen;
}

/// Carries out inject and revert requests, one at a time, and records this screen's faults
/// for the lease renewals.
fn carry_out(
    requests: &Receiver<Action>,
    events: &SyncSender<Event>,
    links: &[Arc<Link>],
    ours: &Mutex<Vec<(usize, String)>>,
    lease: Duration,
    kube: Option<(Arc<dyn Cluster>, PodTarget, Listed)>,
) {
    while let Ok(action) = requests.recv() {
        let event = match action {
            Action::Inject { agent, spec } => {
                let result = match links.get(agent) {
                    Some(link) => link.create(CreateFault {
                        fault: spec,
                        lease_seconds: Some(lease.as_secs_f64()),
                        idempotency_key: None,
                    }),
                    None => Err("no agent reaches this target".to_owned()),
                };
                if let Ok(view) = &result
                    && view.state == "active"
                {
                    lock(ours).push((agent, view.id.clone()));
                }
                Event::Injected { agent, result }
            }
            Action::Revert { agent, id } => {
                let result = links
                    .get(agent)
                    .ok_or_else(|| "no agent reaches this target".to_owned())
                    .and_then(|link| link.revert(&id));
                lock(ours).retain(|(a, i)| !(*a == agent && *i == id));
                Event::Reverted { agent, id, result }
            }
            Action::PodKill { pod } => {
                let Some((cluster, target, listed)) = &kube else {
                    continue;
                };
                let found = lock(listed).iter().find(|p| p.id() == pod).cloned();
                let (cluster, target, events) = (cluster.clone(), target.clone(), events.clone());
                // The wait for the replacement takes a while: on a thread of its own, so
                // injects and reverts go on meanwhile.
                std::thread::spawn(move || {
                    let result = match found {
                        None => Err("no longer listed".to_owned()),
                        Some(found) => cluster
                            .pod_kill(
                                &target,
                                &found,
                                Duration::from_secs(30),
                                Duration::from_secs(120),
                            )
                            .map(|k| match (k.replacement, k.ready_after) {
                                (Some(by), Some(after)) => format!(
                                    "{pod} deleted; {by} Ready after {:.1}s",
                                    after.as_secs_f64()
                                ),
                                _ => format!("{pod} deleted; no replacement Ready within 2m"),
                            }),
                    };
                    let _ = events.send(Event::PodKilled { pod, result });
                });
                continue;
            }
            Action::Quit { .. } => continue,
        };
        if events.send(event).is_err() {
            return;
        }
    }
}
