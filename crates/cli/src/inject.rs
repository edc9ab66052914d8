//! `faultline inject`: apply one fault to a local process, in the foreground, until its
//! duration ends or Ctrl-C; then revert it and check the kernel's state says so.
//!
//! The lifetime does not depend on this process reaching its revert: a network fault's table
//! belongs to an `nft` child that dies with this process (and the kernel deletes the table
//! with it), and a paused process is resumed by a guard that notices this process is gone.

use std::time::{Duration, Instant};

use faultline_fault::{
    AppliedNetFault, AppliedStress, Cidr, Direction, Effect, Interrupts, NetFault, PausedProcess,
    Process, Protocol, Selector, Stress, Target,
};

use crate::exit::Failure;
use crate::{InjectArgs, InjectKind, NetArgs};

pub fn run(args: InjectArgs) -> Result<(), Failure> {
    // A pod kill goes through the API server, not a node agent.
    if let InjectKind::PodKill(kill) = &args.kind {
        if args.pod.pod.is_some() {
            return Err(Failure::usage(
                "pod-kill chooses its pods with -n and -l; --pod is for the other faults",
            ));
        }
        if args.agent.agent.is_some() || args.agent.token_file.is_some() {
            return Err(Failure::usage(
                "pod-kill deletes pods through the API server: --agent and --token-file are \
                 for the faults a node agent applies",
            ));
        }
        return crate::kube::pod_kill(kill, args.pod.allow_protected_namespace);
    }
    if let Some(pod) = &args.pod.pod {
        crate::agent::check_pod_aim(&args.kind)?;
        let found = crate::kube::agent_for_pod(pod, &args.pod, &args.agent)?;
        return crate::agent::inject(&found.client, &args.kind, args.lease, Some(found.target));
    }
    if let Some(client) = crate::agent::client(&args.agent, false)? {
        return crate::agent::inject(&client, &args.kind, args.lease, None);
    }
    match args.kind {
        InjectKind::PodKill(_) => Ok(()),
        InjectKind::Partition(net) => {
            let effect = if net.reject {
                Effect::Reject
            } else {
                Effect::Drop
            };
            network("partition", &net, effect)
        }
        InjectKind::Loss { percent, net } => {
            let percent = u8::try_from(percent)
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "--percent {percent}: expected a percentage from 1 to 100"
                    ))
                })?;
            network("loss", &net, Effect::Loss(percent))
        }
        InjectKind::Kill {
            pid: Some(pid),
            signal,
            grace,
            ..
        } => kill(pid, &signal, grace),
        InjectKind::Kill {
            cgroup: Some(cgroup),
            signal,
            grace,
            ..
        } => kill_cgroup(&cgroup, &signal, grace),
        InjectKind::Kill { .. } => Err(Failure::usage("kill needs --pid, --cgroup or --pod")),
        InjectKind::Pause {
            pid: Some(pid),
            duration,
            ..
        } => pause(pid, duration),
        InjectKind::Pause {
            cgroup: Some(cgroup),
            duration,
            ..
        } => freeze(&cgroup, duration),
        InjectKind::Pause { .. } => Err(Failure::usage("pause needs --pid, --cgroup or --pod")),
        InjectKind::Stress {
            pid,
            cgroup,
            workers,
            load,
            duration,
        } => {
            let target = match (pid, cgroup) {
                (Some(pid), _) => Target::process(pid).map_err(invalid)?,
                (None, Some(dir)) => Target::cgroup(&dir).map_err(invalid)?.0,
                (None, None) => {
                    return Err(Failure::usage("stress needs --pid, --cgroup or --pod"));
                }
            };
            stress(&target, Stress { workers, load }, duration)
        }
    }
}

fn invalid(e: faultline_fault::Error) -> Failure {
    use faultline_fault::Error as E;
    match e {
        E::Invalid(_) | E::NoSuchProcess(_) | E::HostNetns(_) | E::Nft(_) => Failure::usage(e),
        other => Failure::failed(other),
    }
}

fn network(kind: &str, net: &NetArgs, effect: Effect) -> Result<(), Failure> {
    let peers = net
        .peers
        .iter()
        .map(|p| p.parse::<Cidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let direction: Direction = net.direction.parse().map_err(invalid)?;
    let protocol: Option<Protocol> = net
        .protocol
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(invalid)?;
    let fault = NetFault {
        selector: Selector {
            peers,
            ports: net.ports.clone(),
            protocol,
            direction,
        },
        effect,
    };
    fault.validate().map_err(invalid)?;
    let (target, what) = match (net.pid, &net.cgroup) {
        (Some(pid), _) => (Target::process(pid).map_err(invalid)?, format!("pid {pid}")),
        (None, Some(dir)) => (
            Target::cgroup(dir).map_err(invalid)?.0,
            format!("the processes of cgroup {}", dir.display()),
        ),
        (None, None) => return Err(Failure::usage("give --pid, --cgroup or --pod")),
    };
    let id = faultline_fault::new_fault_id();
    let interrupts = Interrupts::block();
    let started = Instant::now();
    let applied =
        AppliedNetFault::apply(&target, &fault, &id, net.allow_host_netns).map_err(invalid)?;
    if !applied.kernel_anchored() {
        eprintln!(
            "faultline: warning: this kernel has no nftables owner tables: if this process is \
             killed before it reverts, table inet {} stays in the target's network namespace \
             (remove it with `nft delete table inet {}` there); an agent sweeps such leftovers \
             from its journal",
            applied.table(),
            applied.table()
        );
    }
    println!(
        "faultline: {kind} {} applied to {what} (table held by pid {}); reverting in {} or on Ctrl-C",
        applied.table(),
        applied.holder_pid(),
        humantime::format_duration(net.duration)
    );
    let interrupted = interrupts.wait(net.duration);
    let packets = applied.revert().map_err(Failure::failed)?.unwrap_or(0);
    println!(
        "faultline: {kind} reverted after {:.1}s{}; {packets} packets matched; revert verified",
        started.elapsed().as_secs_f64(),
        interrupted
            .map(|s| format!(" (signal {s})"))
            .unwrap_or_default()
    );
    Ok(())
}

fn kill(pid: u32, signal: &str, grace: Duration) -> Result<(), Failure> {
    let signal = faultline_fault::parse_signal(signal).map_err(invalid)?;
    let process = Process::open(pid).map_err(invalid)?;
    let outcome = process.kill(signal, grace).map_err(Failure::failed)?;
    match outcome {
        faultline_fault::KillOutcome::Exited { signal, after } => println!(
            "faultline: kill: pid {pid} exited {:.0} ms after signal {signal}",
            after.as_secs_f64() * 1000.0
        ),
        faultline_fault::KillOutcome::Killed { signal, grace } => println!(
            "faultline: kill: pid {pid} outlived signal {signal} for {}, so SIGKILL followed; it is gone",
            humantime::format_duration(grace)
        ),
    }
    Ok(())
}

fn pause(pid: u32, duration: Duration) -> Result<(), Failure> {
    let guard = helpers()?.resume_guard(pid, duration);
    let interrupts = Interrupts::block();
    let started = Instant::now();
    let paused = PausedProcess::apply(pid, guard).map_err(invalid)?;
    println!(
        "faultline: pause: pid {pid} stopped (resume guard pid {}); resuming in {} or on Ctrl-C",
        paused.guard_pid(),
        humantime::format_duration(duration)
    );
    let interrupted = interrupts.wait(duration);
    paused.revert().map_err(Failure::failed)?;
    println!(
        "faultline: pause reverted after {:.1}s{}; pid {pid} running; revert verified",
        started.elapsed().as_secs_f64(),
        interrupted
            .map(|s| format!(" (signal {s})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The hidden `__resume-guard PID DEADLINE_MS` mode (see faultline_fault::PausedProcess).
pub fn resume_guard(pid: u32, deadline_ms: u64) -> Result<(), Failure> {
    faultline_fault::run_resume_guard(pid, Duration::from_millis(deadline_ms))
        .map_err(Failure::failed)
}

fn stress(target: &Target, stress: Stress, duration: Duration) -> Result<(), Failure> {
    let pid = target.pid;
    let helpers = helpers()?;
    let interrupts = Interrupts::block();
    let started = Instant::now();
    let applied = AppliedStress::apply(target, &stress, |fraction| {
        helpers.stress_worker(fraction, duration)
    })
    .map_err(invalid)?;
    println!(
        "faultline: stress: {} workers in the cgroup of pid {pid}, each busy {:.0}% of the time \
         (pids {:?}); reverting in {} or on Ctrl-C",
        stress.workers,
        applied.busy_fraction() * 100.0,
        applied.worker_pids(),
        humantime::format_duration(duration)
    );
    let interrupted = interrupts.wait(duration);
    let report = applied.revert().map_err(Failure::failed)?;
    let throttled = match (report.throttled_periods, report.throttled_seconds) {
        (Some(periods), Some(seconds)) => {
            format!("; the cgroup was throttled {periods} times ({seconds:.2} s)")
        }
        _ => String::new(),
    };
    println!(
        "faultline: stress reverted after {:.1}s{}; workers used {:.3} cores of {:.3} asked{throttled}; revert verified",
        started.elapsed().as_secs_f64(),
        interrupted
            .map(|s| format!(" (signal {s})"))
            .unwrap_or_default(),
        report.cores_used,
        report.cores_asked,
    );
    Ok(())
}

/// The hidden `__stress-worker FRACTION DEADLINE_MS` mode.
pub fn stress_worker(busy_fraction: f64, deadline_ms: u64) -> Result<(), Failure> {
    faultline_fault::run_stress_worker(busy_fraction, Duration::from_millis(deadline_ms))
        .map_err(Failure::failed)
}

fn freeze(cgroup: &std::path::Path, duration: Duration) -> Result<(), Failure> {
    let freezer = faultline_fault::Freezer::of(cgroup).map_err(invalid)?;
    let guard = helpers()?.thaw_guard(freezer.dir(), duration);
    let interrupts = Interrupts::block();
    let started = Instant::now();
    let frozen = faultline_fault::FrozenCgroup::apply(freezer, guard).map_err(invalid)?;
    println!(
        "faultline: pause: cgroup {} frozen (thaw guard pid {}); thawing in {} or on Ctrl-C",
        cgroup.display(),
        frozen.guard_pid(),
        humantime::format_duration(duration)
    );
    let interrupted = interrupts.wait(duration);
    frozen.revert().map_err(Failure::failed)?;
    println!(
        "faultline: pause reverted after {:.1}s{}; cgroup {} thawed; revert verified",
        started.elapsed().as_secs_f64(),
        interrupted
            .map(|s| format!(" (signal {s})"))
            .unwrap_or_default(),
        cgroup.display()
    );
    Ok(())
}

/// The hidden `__thaw-guard DIR DEADLINE_MS` mode (see faultline_fault::FrozenCgroup).
pub fn thaw_guard(cgroup: &std::path::Path, deadline_ms: u64) -> Result<(), Failure> {
    faultline_fault::run_thaw_guard(cgroup, Duration::from_millis(deadline_ms))
        .map_err(Failure::failed)
}

/// Kills every process of a cgroup (see faultline_fault::kill_all).
fn kill_cgroup(cgroup: &std::path::Path, signal: &str, grace: Duration) -> Result<(), Failure> {
    let signal = faultline_fault::parse_signal(signal).map_err(invalid)?;
    let (_, pids) = Target::cgroup(cgroup).map_err(invalid)?;
    let outcome = faultline_fault::kill_all(&pids, signal, grace).map_err(Failure::failed)?;
    println!(
        "faultline: kill: {} processes of cgroup {} signalled with {signal}; {} outlived \
         {} and got SIGKILL; all gone",
        outcome.signalled,
        cgroup.display(),
        outcome.killed,
        humantime::format_duration(grace)
    );
    Ok(())
}

/// This binary, for the guards and workers of lasting faults.
fn helpers() -> Result<faultline_agent::Helpers, Failure> {
    let exe = std::env::current_exe().map_err(Failure::failed)?;
    Ok(faultline_agent::Helpers { exe })
}
