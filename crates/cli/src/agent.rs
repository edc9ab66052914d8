//! `faultline agent`, `faultline faults`, and `inject` through an agent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faultline_agent::client::ClientError;
use faultline_agent::spec::{CreateFault, FaultSpec, FaultView};
use faultline_agent::{AgentAddr, AgentOptions, Client, Helpers, Policy};
use faultline_fault::Interrupts;

use crate::exit::Failure;
use crate::{AgentArgs, AgentClientArgs, FaultsCommand, InjectKind};

pub fn run(args: AgentArgs) -> Result<(), Failure> {
    let listen: AgentAddr = args.listen.parse().map_err(Failure::usage)?;
    let token = read_token(args.token_file.as_ref())?;
    let policy = match &args.policy {
        Some(path) => Policy::load(path).map_err(Failure::usage)?,
        None => Policy::default(),
    };
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    let mut options = AgentOptions {
        listen,
        token,
        state_dir: args.state_dir.clone(),
        policy,
        helpers: Helpers { exe: exe.clone() },
        crash_dir: None,
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| faultline_agent::tls::ServerTls {
                cert,
                key,
                client_ca: args.client_ca.clone(),
            }),
        insecure_plaintext: args.insecure_plaintext,
    };
    // The listener's needs and the certificates, before anything is touched.
    options.check().map_err(Failure::usage)?;
    if let Some(tls) = &options.tls {
        tls.config().map_err(Failure::usage)?;
    }
    // Held while the agent runs; dropped (the old pattern put back) however it returns.
    let catch = match &args.catch_cores {
        Some(dir) => {
            let dir = std::path::absolute(dir).map_err(Failure::failed)?;
            std::fs::create_dir_all(&args.state_dir).map_err(|e| {
                Failure::failed(anyhow::anyhow!(
                    "--state-dir {}: {e}",
                    args.state_dir.display()
                ))
            })?;
            let handler = match &args.core_handler_exe {
                Some(path) => {
                    copy_binary(&exe, path)?;
                    path.clone()
                }
                None => exe.clone(),
            };
            let held = faultline_agent::cores::CatchCores::install(
                &args.core_pattern_file,
                &handler,
                &dir,
                &args.state_dir,
            )
            .map_err(Failure::usage)?;
            eprintln!(
                "faultline agent: catching cores into {} (core_pattern was {:?})",
                dir.display(),
                held.previous()
            );
            Some((held, dir))
        }
        None => None,
    };
    options.crash_dir = catch.as_ref().map(|(_, dir)| dir.clone());
    let served = faultline_agent::run(options);
    drop(catch);
    served.map_err(|e| {
        if e.contains("needs a bearer token") || e.contains("--policy") {
            Failure::usage(e)
        } else {
            Failure::failed(anyhow::anyhow!(e))
        }
    })
}

/// Puts a copy of `exe` at `to` (made executable, renamed into place) unless `to` already has
/// the same bytes.
fn copy_binary(exe: &std::path::Path, to: &std::path::Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt as _;
    let bytes = std::fs::read(exe).map_err(Failure::failed)?;
    if std::fs::read(to).is_ok_and(|have| have == bytes) {
        return Ok(());
    }
    let bad = |e: std::io::Error| {
        Failure::failed(anyhow::anyhow!("--core-handler-exe {}: {e}", to.display()))
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(bad)?;
    }
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, &bytes).map_err(bad)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(bad)?;
    std::fs::rename(&tmp, to).map_err(bad)
}

pub fn read_token(file: Option<&PathBuf>) -> Result<Option<String>, Failure> {
    let Some(file) = file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("--token-file {}: {e}", file.display())))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(Failure::usage(format!(
            "--token-file {}: the file is empty",
            file.display()
        )));
    }
    Ok(Some(token))
}

/// The agent a command should use: `--agent`, else a local agent at the default socket if one
/// is there, else none.
pub fn client(args: &AgentClientArgs, required: bool) -> Result<Option<Client>, Failure> {
    let credentials = credentials(
        args.token_file.as_ref(),
        args.ca.as_ref(),
        args.cert.as_ref().zip(args.key.as_ref()),
        &args.tls_server_name,
    )?;
    let addr = match &args.agent {
        Some(addr) => addr.parse().map_err(Failure::usage)?,
        None => {
            let default = PathBuf::from(AgentAddr::DEFAULT_SOCKET);
            if std::os::unix::net::UnixStream::connect(&default).is_ok() {
                AgentAddr::Unix(default)
            } else if required {
                return Err(Failure::usage(format!(
                    "no agent at {}: give --agent unix:PATH or tcp:IP:PORT",
                    AgentAddr::DEFAULT_SOCKET
                )));
            } else {
                return Ok(None);
            }
        }
    };
    Ok(Some(credentials.client(addr)))
}

/// The TLS files given on a command line (`--ca`, `--cert` with `--key`).
pub struct TlsFiles<'a> {
    pub ca: Option<&'a PathBuf>,
    pub identity: Option<(&'a PathBuf, &'a PathBuf)>,
}

/// The token and TLS a client reaches agents with: `--token-file`, `--ca` and `--cert` with
/// `--key`. A file that cannot be read, or is not PEM of the kind expected, is a usage error.
pub fn credentials(
    token_file: Option<&PathBuf>,
    ca: Option<&PathBuf>,
    identity: Option<(&PathBuf, &PathBuf)>,
    server_name: &str,
) -> Result<faultline_agent::Credentials, Failure> {
    let token = read_token(token_file)?;
    let tls = match (ca, identity) {
        (Some(ca), identity) => Some(faultline_agent::tls::ClientTls {
            ca: ca.clone(),
            identity: identity.map(|(c, k)| (c.clone(), k.clone())),
            server_name: server_name.to_owned(),
        }),
        (None, Some(_)) => {
            return Err(Failure::usage(
                "--cert and --key need --ca (the CA that signed the agent's certificate)",
            ));
        }
        (None, None) => None,
    };
    faultline_agent::Credentials::new(token, tls.as_ref()).map_err(Failure::usage)
}

fn client_failure(e: ClientError) -> Failure {
    match e {
        ClientError::Status(400 | 401 | 403 | 404 | 409, _) => Failure::usage(e),
        other => Failure::failed(other),
    }
}

fn describe(view: &FaultView) -> String {
    let left = view
        .seconds_left
        .map(|s| format!(", {s:.0}s left"))
        .unwrap_or_default();
    let packets = view
        .packets
        .map(|p| format!(", {p} packets matched"))
        .unwrap_or_default();
    let revert = view
        .revert
        .as_ref()
        .map(|r| {
            format!(
                ", revert {r}{}",
                view.reverted_by
                    .as_ref()
                    .map(|b| format!(" ({b})"))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let anchored = if view.kernel_anchored {
        ""
    } else {
        " (not kernel-anchored)"
    };
    let target = view.cgroup.as_ref().map_or_else(
        || format!("pid {}", view.pid),
        |dir| format!("cgroup {}", dir.display()),
    );
    format!(
        "{} {} {target} {}{anchored}{left}{packets}{revert}; {}",
        view.id, view.kind, view.state, view.detail
    )
}

pub fn faults(command: FaultsCommand) -> Result<(), Failure> {
    match command {
        FaultsCommand::List { agent } => {
            let client = client(&agent, true)?.ok_or_else(|| Failure::usage("no agent"))?;
            let views = client.list().map_err(client_failure)?;
            if views.is_empty() {
                println!("no faults");
            }
            for view in &views {
                println!("{}", describe(view));
            }
        }
        FaultsCommand::Revert { id, all, agent } => {
            let client = client(&agent, true)?.ok_or_else(|| Failure::usage("no agent"))?;
            let views = match (id, all) {
                (Some(id), false) => vec![client.revert(&id).map_err(client_failure)?],
                (None, true) => client.revert_all().map_err(client_failure)?,
                _ => return Err(Failure::usage("give a fault id or --all")),
            };
            for view in &views {
                println!("{}", describe(view));
            }
            if views
                .iter()
                .any(|v| v.revert.as_deref().is_some_and(|r| r != "verified"))
            {
                return Err(Failure::failed(anyhow::anyhow!(
                    "a revert left residue (see above)"
                )));
            }
        }
    }
    Ok(())
}

/// The agent's form of an `inject` fault; with `pod`, aimed at that pod instead of a pid or a
/// cgroup.
pub fn spec(
    kind: &InjectKind,
    pod: Option<faultline_agent::spec::PodTarget>,
) -> Result<FaultSpec, Failure> {
    let mut spec = spec_of(kind)?;
    if let Some(target) = pod {
        spec.aim_at_pod(target)
            .map_err(|_| Failure::usage("--pod names the target: leave out --pid and --cgroup"))?;
    }
    Ok(spec)
}

/// Checks, before the cluster is asked anything, that `kind` can be aimed at a pod: not when
/// it names a process or a cgroup too.
pub fn check_pod_aim(kind: &InjectKind) -> Result<(), Failure> {
    let pod = faultline_agent::spec::PodTarget {
        uid: String::new(),
        container: None,
    };
    spec(kind, Some(pod)).map(drop)
}

fn spec_of(kind: &InjectKind) -> Result<FaultSpec, Failure> {
    Ok(match kind {
        InjectKind::PodKill(_) => {
            return Err(Failure::usage(
                "pod-kill goes through the Kubernetes API, not a node agent",
            ));
        }
        InjectKind::Partition(net) => FaultSpec::Partition {
            pid: net.pid,
            cgroup: net.cgroup.clone(),
            pod: None,
            peers: net.peers.clone(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            reject: net.reject,
            allow_host_netns: net.allow_host_netns,
            seconds: net.duration.as_secs_f64(),
        },
        InjectKind::Loss { percent, net } => FaultSpec::Loss {
            pid: net.pid,
            cgroup: net.cgroup.clone(),
            pod: None,
            percent: u8::try_from(*percent).unwrap_or(u8::MAX),
            peers: net.peers.clone(),
            ports: net.ports.clone(),
            protocol: net.protocol.clone(),
            direction: net.direction.clone(),
            allow_host_netns: net.allow_host_netns,
            seconds: net.duration.as_secs_f64(),
        },
        InjectKind::Pause {
            pid,
            cgroup,
            duration,
        } => FaultSpec::Pause {
            pid: *pid,
            cgroup: cgroup.clone(),
            pod: None,
            seconds: duration.as_secs_f64(),
        },
        InjectKind::Stress {
            pid,
            cgroup,
            workers,
            load,
            duration,
        } => FaultSpec::Stress {
            pid: *pid,
            cgroup: cgroup.clone(),
            pod: None,
            workers: *workers,
            load: *load,
            seconds: duration.as_secs_f64(),
        },
        InjectKind::Kill {
            pid,
            cgroup,
            signal,
            grace,
        } => FaultSpec::Kill {
            pid: *pid,
            cgroup: cgroup.clone(),
            pod: None,
            signal: signal.clone(),
            grace_seconds: grace.as_secs_f64(),
        },
    })
}

/// `inject` through an agent: create the fault with a lease, renew it while waiting, revert
/// at the end. If this process stops renewing (killed, stopped, cut off), the lease expires
/// and the agent reverts the fault.
pub fn inject(
    client: &Client,
    kind: &InjectKind,
    lease: Duration,
    pod: Option<faultline_agent::spec::PodTarget>,
) -> Result<(), Failure> {
    let spec = spec(kind, pod)?;
    let duration = Duration::from_secs_f64(spec.seconds());
    let interrupts = Interrupts::block();
    let started = Instant::now();
    let view = client
        .create(&CreateFault {
            fault: spec,
            lease_seconds: Some(lease.as_secs_f64()),
            idempotency_key: None,
        })
        .map_err(client_failure)?;
    println!(
        "faultline: {} applied by the agent at {}: {}",
        view.kind,
        client.addr(),
        describe(&view)
    );
    if view.state != "active" {
        return Ok(());
    }
    let renew_every = (lease / 3).max(Duration::from_millis(200));
    let end = started + duration;
    let mut interrupted = None;
    while Instant::now() < end {
        let step = renew_every.min(end.saturating_duration_since(Instant::now()));
        if let Some(signal) = interrupts.wait(step) {
            interrupted = Some(signal);
            break;
        }
        if Instant::now() < end {
            match client.renew(&view.id) {
                Ok(_) => {}
                // Not active any more: reverted by someone else, or its lease ran out while
                // this process could not renew it. The fault did not last its duration.
                Err(ClientError::Status(409, _)) => {
                    let ended = client
                        .list()
                        .ok()
                        .and_then(|views| views.into_iter().find(|v| v.id == view.id));
                    let what = ended.as_ref().map_or_else(|| view.id.clone(), describe);
                    return Err(Failure::failed(anyhow::anyhow!(
                        "the fault ended before its duration: {what}"
                    )));
                }
                Err(e) => return Err(client_failure(e)),
            }
        }
    }
    // At the end of its duration the agent reverts it by itself; ask, so the answer says how.
    let done = client.revert(&view.id).map_err(client_failure)?;
    println!(
        "faultline: {} after {:.1}s{}: {}",
        done.state,
        started.elapsed().as_secs_f64(),
        interrupted
            .map(|s| format!(" (signal {s})"))
            .unwrap_or_default(),
        describe(&done)
    );
    if done.revert.as_deref().is_some_and(|r| r != "verified") {
        return Err(Failure::failed(anyhow::anyhow!("the revert left residue")));
    }
    Ok(())
}
