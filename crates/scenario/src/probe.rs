//! Probes and dump scrapes: one thread each, in the lab's hub namespace when there is a lab,
//! each looping at its interval until told to stop and recording what it saw.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lab::lock;
use crate::model::{Check, DumpCapture, Probe};

/// One probe result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the steps started (negative: before).
    pub t: f64,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One scraped dump.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scrape {
    /// Seconds since the steps started.
    pub t: f64,
    /// Where it was saved (relative to the run directory), if it was fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Why it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Resolves names: lab hosts first, then the system.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Lab host name → address.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// A pod target's name and port → where it is forwarded to on this machine.
    pub forwards: Vec<(String, u16, SocketAddr)>,
}

impl Resolver {
    /// `host:port` to a socket address.
    pub fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        if let Some((_, _, a)) = self
            .forwards
            .iter()
            .find(|(n, p, _)| n == host && *p == port)
        {
            return Ok(*a);
        }
        if let Some((_, a)) = self.hosts.iter().find(|(n, _)| n == host) {
            return Ok(SocketAddr::from((*a, port)));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::from((ip, port)));
        }
        (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))
    }
}

/// Where the threads run and when time zero is.
#[derive(Debug, Clone)]
pub struct Context {
    /// The lab's hub namespace to enter, if there is a lab.
    pub netns: Option<PathBuf>,
    /// Names.
    pub resolver: Resolver,
    /// Time zero: when the steps start.
    pub zero: Instant,
    /// Where scraped dumps go.
    pub out_dir: PathBuf,
    /// Working directory of command probes.
    pub base_dir: PathBuf,
}

impl Context {
    fn t(&self) -> f64 {
        seconds_since(self.zero)
    }
}

/// Seconds from `zero` to now; negative before it.
pub(crate) fn seconds_since(zero: Instant) -> f64 {
    let now = Instant::now();
    match now.checked_duration_since(zero) {
        Some(d) => d.as_secs_f64(),
        None => -(zero - now).as_secs_f64(),
    }
}

/// Running probes and scrapes; [`Watchers::stop`] ends them and hands over the results.
#[derive(Debug)]
pub struct Watchers {
    stop: Arc<AtomicBool>,
    probes: Vec<(String, Arc<Mutex<Vec<Sample>>>)>,
    scrapes: Vec<(String, Arc<Mutex<Vec<Scrape>>>)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the watchers saw.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Probe name → samples.
    pub probes: Vec<(String, Vec<Sample>)>,
    /// Dump name → scrapes.
    pub scrapes: Vec<(String, Vec<Scrape>)>,
}

impl Watchers {
    /// Starts a thread per probe and per dump capture.
    pub fn start(probes: &[Probe], dumps: &[DumpCapture], cx: &Context) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut watchers = Self {
            stop: stop.clone(),
            probes: Vec::new(),
            scrapes: Vec::new(),
            threads: Vec::new(),
        };
        for probe in probes {
            let samples = Arc::new(Mutex::new(Vec::new()));
            watchers.probes.push((probe.name.clone(), samples.clone()));
            let (probe, cx, stop) = (probe.clone(), cx.clone(), stop.clone());
            watchers
                .threads
                .push(spawn(&format!("probe-{}", probe.name), move || {
                    if let Some(netns) = &cx.netns
                        && let Err(e) = crate::lab::enter(netns)
                    {
                        lock(&samples).push(Sample {
                            t: cx.t(),
                            ok: false,
                            latency_ms: 0.0,
                            error: Some(e),
                        });
                        return;
                    }
                    every(probe.every, &stop, || {
                        let t = cx.t();
                        let started = Instant::now();
                        let result = check(&probe.check, &cx);
                        lock(&samples).push(Sample {
                            t,
                            ok: result.is_ok(),
                            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                            error: result.err(),
                        });
                    });
                })?);
        }
        for dump in dumps {
            let scrapes = Arc::new(Mutex::new(Vec::new()));
            watchers.scrapes.push((dump.name.clone(), scrapes.clone()));
            let (dump, cx, stop) = (dump.clone(), cx.clone(), stop.clone());
            let dir = cx.out_dir.join("dumps").join(&dump.name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            watchers
                .threads
                .push(spawn(&format!("scrape-{}", dump.name), move || {
                    if let Some(netns) = &cx.netns
                        && crate::lab::enter(netns).is_err()
                    {
                        return;
                    }
                    let mut n = 0u32;
                    every(dump.every, &stop, || {
                        let t = cx.t();
                        let scrape = match fetch(&dump.url, &cx.resolver, Duration::from_secs(10)) {
                            Ok(body) => {
                                n += 1;
                                let name = format!("{n:04}.txt");
                                match std::fs::write(dir.join(&name), body) {
                                    Ok(()) => Scrape {
                                        t,
                                        file: Some(format!("dumps/{}/{name}", dump.name)),
                                        error: None,
                                    },
                                    Err(e) => Scrape {
                                        t,
                                        file: None,
                                        error: Some(e.to_string()),
                                    },
                                }
                            }
                            Err(e) => Scrape {
                                t,
                                file: None,
                                error: Some(e),
                            },
                        };
                        lock(&scrapes).push(scrape);
                    });
                })?);
        }
        Ok(watchers)
    }

    /// Success ratio so far of each probe: (name, passed, total).
    pub fn progress(&self) -> Vec<(String, usize, usize)> {
        self.probes
            .iter()
            .map(|(name, samples)| {
                let s = lock(samples);
                (name.clone(), s.iter().filter(|x| x.ok).count(), s.len())
            })
            .collect()
    }

    /// Each probe's latest sample, if it has one yet.
    pub fn latest(&self) -> Vec<(String, Option<Sample>)> {
        self.probes
            .iter()
            .map(|(name, samples)| (name.clone(), lock(samples).last().cloned()))
            .collect()
    }

    /// Every dump capture's scrapes so far, from the `from[i]`-th on for capture `i` (a screen
    /// polls them as they come).
    pub fn scrapes_since(&self, from: &[usize]) -> Vec<(String, Vec<Scrape>)> {
        self.scrapes
            .iter()
            .enumerate()
            .map(|(i, (name, scrapes))| {
                let skip = from.get(i).copied().unwrap_or(0);
                (
                    name.clone(),
                    lock(scrapes).iter().skip(skip).cloned().collect(),
                )
            })
            .collect()
    }

    /// The latest sample of probe `name` at or after `t`, and whether one passed.
    pub fn passed_since(&self, name: &str, t: f64) -> bool {
        self.probes
            .iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, s)| lock(s).iter().any(|x| x.t >= t && x.ok))
    }

    /// Stops every thread and returns what they saw.
    pub fn stop(self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        Observed {
            probes: self
                .probes
                .into_iter()
                .map(|(n, s)| (n, std::mem::take(&mut *lock(&s))))
                .collect(),
            scrapes: self
                .scrapes
                .into_iter()
                .map(|(n, s)| (n, std::mem::take(&mut *lock(&s))))
                .collect(),
        }
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| format!("start {name}: {e}"))
}

/// Runs `f` every `interval` (from its start) until `stop`.
fn every(interval: Duration, stop: &AtomicBool, mut f: impl FnMut()) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        f();
        next += interval;
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(20)));
        }
        // Running late (a slow check): start again from now, do not burst.
        next = next.max(Instant::now() - interval / 2);
    }
}

/// Runs one check.
pub fn check(check: &Check, cx: &Context) -> Result<(), String> {
    match check {
        Check::Http {
            url,
            status,
            within,
        } => {
            let started = Instant::now();
            let parsed = crate::http::Url::parse(url)?;
            let addr = cx.resolver.resolve(&parsed.host, parsed.port)?;
            let response = crate::http::get(addr, &parsed.host, &parsed.path, *within, 1 << 20)
                .map_err(|e| e.to_string())?;
            if response.status != *status {
                return Err(format!("HTTP {} (expected {status})", response.status));
            }
            let took = started.elapsed();
            if took > *within {
                return Err(format!(
                    "took {} ms (bound {} ms)",
                    took.as_millis(),
                    within.as_millis()
                ));
            }
            Ok(())
        }
        Check::Tcp { address, within } => {
            let (host, port) = address
                .rsplit_once(':')
                .ok_or_else(|| format!("{address}: no port"))?;
            let port = port.parse::<u16>().map_err(|e| format!("{address}: {e}"))?;
            let addr = cx.resolver.resolve(host.trim_matches(['[', ']']), port)?;
            TcpStream::connect_timeout(&addr, *within)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Check::Command { run, within } => {
            let (program, args) = run.split_first().ok_or("empty command")?;
            let mut child = std::process::Command::new(program)
                .args(args)
                .current_dir(&cx.base_dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("{program}: {e}"))?;
            let deadline = Instant::now() + *within;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => return Ok(()),
                    Ok(Some(status)) => return Err(format!("{program}: {status}")),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("{program}: still running after {within:?}"));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}

/// GETs a URL (plain HTTP) through the resolver; the body of a 2xx answer.
pub fn fetch(url: &str, resolver: &Resolver, timeout: Duration) -> Result<Vec<u8>, String> {
    let parsed = crate::http::Url::parse(url)?;
    let addr = resolver.resolve(&parsed.host, parsed.port)?;
    let response = crate::http::get(addr, &parsed.host, &parsed.path, timeout, 256 << 20)
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&response.status) {
        let text = String::from_utf8_lossy(&response.body);
        return Err(format!(
            "HTTP {}: {}",
            response.status,
            text.lines().next().unwrap_or_default()
        ));
    }
    Ok(response.body)
}
