//! The local lab: one network namespace per host on a private bridge, each host's command
//! started (and restarted) inside it, everything torn down when the [`Lab`] is dropped.
//!
//! Layout: a hub namespace holds a bridge with [`LAB_GATEWAY`]; every host's namespace has a
//! veth end `eth0` with its address, the other end on the bridge. Nothing is added to the
//! machine's own namespace: probes and scrapes run on threads that entered the hub
//! ([`Lab::hub_path`], [`enter`]). Every namespace belongs to a holder process that dies with the
//! runner, so even a SIGKILLed run leaves no namespace; hosts' processes die with their
//! supervisor thread; cgroups are swept by the next run.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline_fault::lab::{CgroupRoot, HeldNamespace, LabCgroup};

use crate::model::Restart;
use crate::plan::{LAB_GATEWAY, LAB_PREFIX, PlannedHost};

/// How often a wait for a host to be ready says it is still waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the lab needs from the outside.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The command that holds a namespace (`faultline __hold`): it waits for end of file on
    /// stdin.
    pub holder: Vec<String>,
    /// Where host logs and crash directories go (`hosts/<name>/`).
    pub out_dir: PathBuf,
    /// The directory commands run in and relative programs are found from.
    pub base_dir: PathBuf,
}

/// Something that happened to a host: started, exited, restarted.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEvent {
    /// When (since the lab started).
    pub at: Duration,
    /// The host.
    pub host: String,
    /// `started pid 123`, `exited with status 101`, `killed by signal 9`.
    pub what: String,
}

#[derive(Debug, Default)]
struct HostState {
    pid: Option<u32>,
    starts: u32,
}

#[derive(Debug)]
struct RunningHost {
    planned: PlannedHost,
    ns: HeldNamespace,
    cgroup: Option<LabCgroup>,
    state: Arc<Mutex<HostState>>,
    supervisor: Option<std::thread::JoinHandle<()>>,
}

/// A running lab. Drop it to tear it down.
#[derive(Debug)]
pub struct Lab {
    hub: HeldNamespace,
    hosts: BTreeMap<String, RunningHost>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<HostEvent>>>,
    started: Instant,
}

fn holder_command(holder: &[String]) -> Result<Command, String> {
    let (program, args) = holder.split_first().ok_or("no namespace holder command")?;
    let mut command = Command::new(program);
    command.args(args);
    Ok(command)
}

impl Lab {
    /// Builds the network and starts every host. Call from a thread that outlives the lab (the
    /// parent-death signals of its processes follow it).
    pub fn start(hosts: &[PlannedHost], options: &LabOptions) -> Result<Self, String> {
        fn err(what: &'static str) -> impl Fn(faultline_fault::Error) -> String {
            move |e| format!("{what}: {e}")
        }
        let hub = HeldNamespace::create(holder_command(&options.holder)?)
            .map_err(err("create the lab's hub namespace"))?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])
            .map_err(err("create the lab bridge"))?;
        hub.ip(&[
            "addr",
            "add",
            &format!("{LAB_GATEWAY}/{LAB_PREFIX}"),
            "dev",
            "br0",
        ])
        .map_err(err("address the lab bridge"))?;
        hub.ip(&["link", "set", "br0", "up"])
            .map_err(err("bring the lab bridge up"))?;
        let cgroup_root = CgroupRoot::host();
        let mut lab = Self {
            hub,
            hosts: BTreeMap::new(),
            stop: Arc::new(AtomicBool::new(false)),
            events: Arc::new(Mutex::new(Vec::new())),
            started: Instant::now(),
        };
        for (i, host) in hosts.iter().enumerate() {
            let running = lab.add_host(i, host, cgroup_root.as_ref(), options)?;
            lab.hosts.insert(host.name.clone(), running);
        }
        Ok(lab)
    }

    fn add_host(
        &self,
        index: usize,
        host: &PlannedHost,
        cgroup_root: Option<&CgroupRoot>,
        options: &LabOptions,
    ) -> Result<RunningHost, String> {
        let name = &host.name;
        let err =
            |what: String| move |e: faultline_fault::Error| format!("host {name}: {what}: {e}");
        let cgroup = match (cgroup_root, host.cpu) {
            (Some(root), cpu) => {
                Some(LabCgroup::create(root, name, cpu).map_err(err("create its cgroup".into()))?)
            }
            (None, Some(_)) => {
                return Err(format!(
                    "host {name}: a CPU limit needs a cgroup cpu controller (v1 `cpu` or v2 \
                     with `cpu` enabled), and this machine has none"
                ));
            }
            (None, None) => None,
        };
        let ns = HeldNamespace::create(holder_command(&options.holder)?)
            .map_err(err("create its network namespace".into()))?;
        if let Some(cgroup) = &cgroup {
            // The holder joins the host's cgroup, so faults that need a process of the host
            // (a stress) find the cgroup even while the host's own process restarts.
            std::fs::write(cgroup.dir().join("cgroup.procs"), ns.pid().to_string())
                .map_err(|e| format!("host {name}: move the holder into its cgroup: {e}"))?;
        }
        let outside = format!("flh{index}");
        self.hub
            .ip(&[
                "link",
                "add",
                &outside,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns.pid().to_string(),
            ])
            .map_err(err("create its veth pair".into()))?;
        self.hub
            .ip(&["link", "set", &outside, "master", "br0", "up"])
            .map_err(err("attach it to the bridge".into()))?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{}/{LAB_PREFIX}", host.address),
            "dev",
            "eth0",
        ])
        .map_err(err("address eth0".into()))?;
        ns.ip(&["link", "set", "eth0", "up"])
            .map_err(err("bring eth0 up".into()))?;

        let dir = options.out_dir.join("hosts").join(name);
        let crash_dir = dir.join("crashes");
        std::fs::create_dir_all(&crash_dir)
            .map_err(|e| format!("host {name}: {}: {e}", crash_dir.display()))?;
        let state = Arc::new(Mutex::new(HostState::default()));
        let mut running = RunningHost {
            planned: host.clone(),
            ns,
            cgroup,
            state,
            supervisor: None,
        };
        let launch = Launch {
            host: host.clone(),
            base_dir: options.base_dir.clone(),
            dir,
            crash_dir,
            cores: CorePattern::current(),
        };
        // The first start happens here, so a command that cannot start fails the lab now.
        let child = launch
            .spawn(&running.ns, running.cgroup.as_ref())
            .map_err(|e| format!("host {name}: {e}"))?;
        self.record(name, format!("started pid {}", child.id()));
        {
            let mut s = lock(&running.state);
            s.pid = Some(child.id());
            s.starts = 1;
        }
        running.supervisor = Some(self.supervise(&running, launch, child)?);
        Ok(running)
    }

    fn record(&self, host: &str, what: String) {
        lock(&self.events).push(HostEvent {
            at: self.started.elapsed(),
            host: host.to_owned(),
            what,
        });
    }

    /// Waits on the host's process and restarts it by its policy. The thread owns the
    /// children's parent-death signal, so it lives until the lab stops.
    fn supervise(
        &self,
        host: &RunningHost,
        launch: Launch,
        first: std::process::Child,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        // The namespace and cgroup are needed to restart: the supervisor gets their paths
        // through a second handle (the holder process keeps the namespace alive).
        let ns_path = host.ns.path().to_path_buf();
        let cgroup_procs = host.cgroup.as_ref().map(|c| c.dir().join("cgroup.procs"));
        let state = host.state.clone();
        let stop = self.stop.clone();
        let events = self.events.clone();
        let started = self.started;
        let name = launch.host.name.clone();
        std::thread::Builder::new()
            .name(format!("lab-{name}"))
            .spawn(move || {
                let record = |what: String| {
                    lock(&events).push(HostEvent {
                        at: started.elapsed(),
                        host: name.clone(),
                        what,
                    });
                };
                let mut child = first;
                loop {
                    // Poll, so a stop request is seen while the child runs.
                    let status = loop {
                        if stop.load(Ordering::Relaxed) {
                            stop_child(&mut child);
                            return;
                        }
                        match child.try_wait() {
                            Ok(Some(status)) => break status,
                            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                            Err(_) => return,
                        }
                    };
                    lock(&state).pid = None;
                    record(exit_text(status));
                    if std::os::unix::process::ExitStatusExt::core_dumped(&status)
                        && let Some(what) = launch.take_core(child.id())
                    {
                        record(what);
                    }
                    let again = match launch.host.restart {
                        Restart::Never => false,
                        Restart::OnFailure => !status.success(),
                        Restart::Always => true,
                    };
                    if !again {
                        return;
                    }
                    // A short back-off, like a kubelet's first restarts.
                    let until = Instant::now() + Duration::from_millis(500);
                    while Instant::now() < until {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    match launch.respawn(&ns_path, cgroup_procs.as_deref()) {
                        Ok(next) => {
                            record(format!("restarted, pid {}", next.id()));
                            let mut s = lock(&state);
                            s.pid = Some(next.id());
                            s.starts += 1;
                            child = next;
                        }
                        Err(e) => {
                            record(format!("could not restart: {e}"));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("start the supervisor of {}: {e}", host.planned.name))
    }

    /// The hub namespace, for [`enter`] on a probe's thread: every host is reachable there.
    pub fn hub_path(&self) -> PathBuf {
        self.hub.path().to_path_buf()
    }

    /// The host's current process, if it runs.
    pub fn pid(&self, host: &str) -> Option<u32> {
        lock(&self.hosts.get(host)?.state).pid
    }

    /// The host's namespace holder: a process in its network namespace (and cgroup) that
    /// lives as long as the lab.
    pub fn anchor_pid(&self, host: &str) -> Option<u32> {
        Some(self.hosts.get(host)?.ns.pid())
    }

    /// How many times the host's command was started.
    pub fn starts(&self, host: &str) -> u32 {
        self.hosts.get(host).map_or(0, |h| lock(&h.state).starts)
    }

    /// Name → address.
    pub fn addresses(&self) -> Vec<(String, Ipv4Addr)> {
        self.hosts
            .values()
            .map(|h| (h.planned.name.clone(), h.planned.address))
            .collect()
    }

    /// When the lab started (host events count from here).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Host events so far.
    pub fn events(&self) -> Vec<HostEvent> {
        lock(&self.events).clone()
    }

    /// Stops every host and removes the lab; returns what could not be removed (empty when
    /// everything is gone).
    pub fn teardown(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut residue = Vec::new();
        let hosts = std::mem::take(&mut self.hosts);
        let mut namespaces = Vec::new();
        for (name, mut host) in hosts {
            if let Some(thread) = host.supervisor.take() {
                let _ = thread.join();
            }
            let holder = host.ns.pid();
            let cgroup = host.cgroup.as_ref().map(|c| c.dir().to_path_buf());
            drop(host.cgroup.take());
            if let Some(dir) = cgroup
                && dir.exists()
            {
                residue.push(format!("host {name}: cgroup {} remains", dir.display()));
            }
            namespaces.push((name, holder, host.ns));
        }
        for (name, holder, ns) in namespaces {
            drop(ns);
            if faultline_fault::running(holder) {
                residue.push(format!("host {name}: namespace holder {holder} still runs"));
            }
        }
        residue
    }

    /// Waits until `host` accepts TCP connections on `port` (from the hub), up to `within`,
    /// calling `waiting` with the time waited so far every [`PROGRESS_EVERY`] until then.
    pub fn wait_ready(
        &self,
        host: &str,
        port: u16,
        within: Duration,
        mut waiting: impl FnMut(Duration) + Send,
    ) -> Result<Duration, String> {
        let address = self
            .hosts
            .get(host)
            .map(|h| h.planned.address)
            .ok_or_else(|| format!("no host {host}"))?;
        let hub = self.hub_path();
        let started = Instant::now();
        let target = SocketAddr::from((address, port));
        let (host_name, host_owned) = (
            host.to_owned(),
            self.hosts.get(host).map(|h| h.state.clone()),
        );
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    enter(&hub)?;
                    let mut told = Duration::ZERO;
                    loop {
                        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                            return Ok(started.elapsed());
                        }
                        if started.elapsed() >= told + PROGRESS_EVERY && started.elapsed() < within
                        {
                            told += PROGRESS_EVERY;
                            waiting(started.elapsed());
                        }
                        if started.elapsed() >= within {
                            let running =
                                host_owned.as_ref().is_some_and(|s| lock(s).pid.is_some());
                            return Err(format!(
                                "host {host_name} did not accept connections on port {port} \
                                 within {} ({}); see its log in hosts/{host_name}/",
                                humantime::format_duration(within),
                                if running {
                                    "it runs"
                                } else {
                                    "it is not running"
                                }
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .join()
                .unwrap_or_else(|_| Err("the readiness check panicked".into()))
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for host in self.hosts.values_mut() {
            if let Some(thread) = host.supervisor.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Enters the namespace at `path` on this thread.
pub fn enter(path: &Path) -> Result<(), String> {
    faultline_fault::lab::enter_netns(path).map_err(|e| format!("enter the lab: {e}"))
}

/// Locks `m`; a thread that panicked holding it left no broken invariant behind.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "exited".into(),
    }
}

/// SIGTERM to the child's process group, SIGKILL after a second.
fn stop_child(child: &mut std::process::Child) {
    let group = child.id();
    faultline_fault::lab::signal_group(group, 15);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            faultline_fault::lab::signal_group(group, 9);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    faultline_fault::lab::signal_group(group, 9);
    let _ = child.wait();
}

/// A host's core taking at most this much disk is kept whole rather than small.
const WHOLE_CORE_MAX: u64 = 64 << 20;

/// How to start a host's command.
#[derive(Debug, Clone)]
struct Launch {
    host: PlannedHost,
    base_dir: PathBuf,
    dir: PathBuf,
    crash_dir: PathBuf,
    /// Where the kernel writes a host's core, when this machine's `core_pattern` names a
    /// file in the crashing process's directory.
    cores: Option<CorePattern>,
}

/// This machine's `core_pattern` when it is a file name relative to the crashing process's
/// working directory (the default `core`), with `core_uses_pid`: the lab then lets its hosts
/// dump core and takes each core into the host's crash directory. A pipe (`|…`, a core
/// handler such as systemd-coredump or faultline's own) or a path elsewhere is left alone:
/// the lab never changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePattern {
    pattern: String,
    uses_pid: bool,
}

impl CorePattern {
    /// This machine's, if the lab can use it.
    pub fn current() -> Option<Self> {
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").ok()?;
        let uses_pid = std::fs::read_to_string("/proc/sys/kernel/core_uses_pid")
            .is_ok_and(|v| v.trim() == "1");
        Self::parse(pattern.trim_end_matches('\n'), uses_pid)
    }

    /// `pattern` and `uses_pid` as the kernel has them; `None` unless the core goes to a
    /// file in the process's working directory whose name the lab can tell (`%p`, `%e` and
    /// `%%` are the specifiers it expands).
    pub fn parse(pattern: &str, uses_pid: bool) -> Option<Self> {
        if pattern.is_empty() || pattern.starts_with('|') || pattern.contains('/') {
            return None;
        }
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == '%' && !matches!(chars.next(), Some('p' | 'e' | '%')) {
                return None;
            }
        }
        Some(Self {
            pattern: pattern.to_owned(),
            uses_pid,
        })
    }

    /// The file name of the core of process `pid` running `program` (its first 15 bytes are
    /// the kernel's `%e`).
    pub fn file_name(&self, pid: u32, program: &str) -> String {
        let comm: String = program.chars().take(15).collect();
        let mut out = String::new();
        let mut chars = self.pattern.chars();
        let mut has_pid = false;
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('p') => {
                    has_pid = true;
                    out.push_str(&pid.to_string());
                }
                Some('e') => out.push_str(&comm),
                _ => out.push('%'),
            }
        }
        // The kernel appends `.PID` when `core_uses_pid` is set and the pattern has no `%p`.
        if self.uses_pid && !has_pid {
            out.push_str(&format!(".{pid}"));
        }
        out
    }
}

impl Launch {
    fn command(&self) -> Result<Command, String> {
        let (program, args) = self.host.command.split_first().ok_or("empty command")?;
        // Programs with a slash are relative to the scenario's directory; bare names are
        // looked up in PATH.
        let program = if program.contains('/') {
            // Absolute, because the command also runs in that directory.
            std::path::absolute(self.base_dir.join(program)).map_err(|e| e.to_string())?
        } else {
            PathBuf::from(program)
        };
        let mut command = Command::new(&program);
        command
            .args(args)
            .current_dir(&self.base_dir)
            .env("FAULTLINE_CRASH_DIR", &self.crash_dir)
            .env("FAULTLINE_LAB_HOST", &self.host.name)
            .envs(self.host.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if self.cores.is_some() {
            faultline_fault::lab::allow_cores(&mut command);
        }
        let log = |name: &str| -> Result<File, String> {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map_err(|e| format!("{}: {e}", self.dir.join(name).display()))
        };
        command
            .stdout(log("stdout.log")?)
            .stderr(log("stderr.log")?);
        if !program.exists() && program.components().count() > 1 {
            return Err(format!(
                "{} does not exist (relative programs are found from the scenario's directory)",
                program.display()
            ));
        }
        Ok(command)
    }

    fn spawn(
        &self,
        ns: &HeldNamespace,
        cgroup: Option<&LabCgroup>,
    ) -> Result<std::process::Child, String> {
        ns.spawn(self.command()?, cgroup).map_err(|e| e.to_string())
    }

    /// After the host's process `pid` dumped core: the core the kernel wrote in its working
    /// directory, if it is that process's, taken into the crash directory — whole when it is
    /// small on disk, else small as `faultline core-handler` keeps it, with a minidump of the
    /// small one either way. What happened, for the host's events.
    fn take_core(&self, pid: u32) -> Option<String> {
        let pattern = self.cores.as_ref()?;
        let program = self.host.command.first()?;
        let program = Path::new(program).file_name()?.to_string_lossy();
        let path = self.base_dir.join(pattern.file_name(pid, &program));
        let mut file = File::open(&path).ok()?;
        // Another process's core (an earlier run's, the user's) is left where it is.
        let mut head = vec![0u8; 64 << 10];
        let n = std::io::Read::read(&mut file, &mut head).ok()?;
        let parsed = faultline_native::Core::parse(&head[..n]).ok()?;
        if parsed.pid != pid {
            return None;
        }
        drop(file);
        let time = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stem = format!("core-{time}-{pid}");
        let kept = self.crash_dir.join(format!("{stem}.core"));
        let write = |to: &Path, bytes: &[u8]| {
            let tmp = to.with_extension("tmp");
            std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, to))
        };
        let trimmed = File::open(&path).ok().map(|file| {
            faultline_native::trim::trim(
                std::io::BufReader::with_capacity(1 << 20, file),
                &faultline_native::trim::TrimOptions::default(),
            )
        });
        let trimmed = match trimmed {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                return Some(format!("dumped core to {}, not kept: {e}", path.display()));
            }
            None => return None,
        };
        // The minidump is of the small core, whichever core is kept.
        if let Some(dmp) = faultline_native::minidump::of_core(&trimmed.bytes, time) {
            let _ = write(&self.crash_dir.join(format!("{stem}.dmp")), &dmp);
        }
        // A core small on disk is kept whole (moved, its holes kept): it has every stack, and
        // a Go crash needs them (Go takes signals on a stack of its own, and the goroutine the
        // signal interrupted runs on another, outside the small core's windows).
        let on_disk = std::fs::metadata(&path).map_or(u64::MAX, |m| {
            std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512)
        });
        if on_disk <= WHOLE_CORE_MAX && std::fs::rename(&path, &kept).is_ok() {
            return Some(format!(
                "dumped core: kept {} whole ({on_disk} bytes on disk)",
                kept.display()
            ));
        }
        if let Err(e) = write(&kept, &trimmed.bytes) {
            return Some(format!("dumped core, not kept: {}: {e}", kept.display()));
        }
        let _ = std::fs::remove_file(&path);
        Some(format!(
            "dumped core: kept {} ({} of {} bytes)",
            kept.display(),
            trimmed.bytes.len(),
            trimmed.read
        ))
    }

    fn respawn(
        &self,
        ns_path: &Path,
        cgroup_procs: Option<&Path>,
    ) -> Result<std::process::Child, String> {
        faultline_fault::lab::spawn_in(ns_path, self.command()?, cgroup_procs)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::CorePattern;

    #[test]
    fn core_patterns_the_lab_can_follow_and_the_names_they_give() {
        let plain = CorePattern::parse("core", false).unwrap();
        assert_eq!(plain.file_name(42, "billing"), "core");
        let uses_pid = CorePattern::parse("core", true).unwrap();
        assert_eq!(uses_pid.file_name(42, "billing"), "core.42");
        let named = CorePattern::parse("core.%e.%p", true).unwrap();
        assert_eq!(
            named.file_name(42, "a-very-long-program-name"),
            "core.a-very-long-pro.42"
        );
        assert_eq!(
            CorePattern::parse("core%%", false)
                .unwrap()
                .file_name(1, "x"),
            "core%"
        );
        // A pipe, a path elsewhere, a specifier the lab cannot tell: left to the machine.
        for pattern in [
            "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h",
            "/var/crash/core.%p",
            "core.%t",
            "",
        ] {
            assert_eq!(CorePattern::parse(pattern, false), None, "{pattern}");
        }
    }
}
