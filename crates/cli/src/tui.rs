//! `faultline tui`: sets up what the screen talks to (agents, a scenario's lab) and hands
//! over to faultline-tui.

use std::io::IsTerminal as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use faultline_agent::{AgentAddr, Helpers, LocalAgent, Policy};
use faultline_scenario::{LoadError, Plan, load_file};
use faultline_tui::sources::Link;

use crate::TuiArgs;
use crate::exit::Failure;

pub fn run(args: TuiArgs) -> Result<(), Failure> {
    // Before any thread starts: SIGTERM, SIGHUP and SIGINT are taken by the screen, which
    // reverts its faults, tears its lab down and restores the terminal.
    let interrupts = faultline_fault::Interrupts::block();
    let scenario = match &args.scenario {
        None => None,
        Some(path) => {
            let scenario = match load_file(path) {
                Ok(s) => s,
                Err(LoadError::Invalid(invalid)) => {
                    crate::run::render_problems(&invalid);
                    return Err(Failure::quiet(crate::exit::BAD_INPUT));
                }
                Err(e) => return Err(Failure::usage(e)),
            };
            if !scenario.pods.is_empty() {
                return Err(Failure::usage(format!(
                    "{}: this scenario's targets are pods: see them with `faultline tui --kube \
                     -n NAMESPACE`, or run it with `faultline run`",
                    path.display()
                )));
            }
            let plan = Plan::new(&scenario, 1)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            Some((scenario, plan))
        }
    };
    if !std::io::stdout().is_terminal() {
        return Err(Failure::usage(
            "faultline tui needs a terminal (for scripts: faultline run, faultline faults list)",
        ));
    }
    let dumps = args
        .dumps
        .iter()
        .map(|d| {
            d.split_once('=')
                .filter(|(name, url)| !name.is_empty() && url.starts_with("http://"))
                .map(|(name, url)| (name.to_owned(), url.to_owned()))
                .ok_or_else(|| {
                    Failure::usage(format!("--dump {d}: expected NAME=http://HOST:PORT/PATH"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::failed(anyhow::anyhow!("find the faultline binary: {e}")))?;
    let credentials = crate::agent::credentials(
        args.token_file.as_ref(),
        args.ca.as_ref(),
        args.cert.as_ref().zip(args.key.as_ref()),
        faultline_agent::tls::AGENT_NAME,
    )?;
    let mut kube = None;
    let mut links = Vec::new();
    if args.kube {
        let (screen, agents) = crate::kube::tui_screen(&args)?;
        if agents.is_empty() {
            return Err(Failure::usage(format!(
                "no pods in {}{}: nothing to show",
                screen.pods.namespaces.join(", "),
                args.selector
                    .as_ref()
                    .map(|s| format!(" matching {s}"))
                    .unwrap_or_default()
            )));
        }
        links = agents;
        kube = Some(screen);
    }
    for addr in &args.agent {
        let addr: AgentAddr = addr
            .parse()
            .map_err(|e| Failure::usage(format!("--agent {addr}: {e}")))?;
        links.push(Link::Http(credentials.client(addr)));
    }
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if links.is_empty() && kube.is_none() {
        let default = PathBuf::from(AgentAddr::DEFAULT_SOCKET);
        // A scenario's lab is this process's: its faults go through an agent here too.
        if scenario.is_none() && std::os::unix::net::UnixStream::connect(&default).is_ok() {
            links.push(Link::Http(credentials.client(AgentAddr::Unix(default))));
        } else if root {
            let (agent, swept) = LocalAgent::start_quiet(
                &args.state_dir,
                Policy::default(),
                Helpers { exe: exe.clone() },
            )
            .map_err(|e| Failure::failed(anyhow::anyhow!("start the in-process agent: {e}")))?;
            for line in swept {
                eprintln!("faultline tui: sweep: {line}");
            }
            links.push(Link::Local(agent));
        } else {
            return Err(Failure::usage(format!(
                "no agent at {} and not root (an agent in this process needs root): start \
                 `faultline agent`, or give --agent",
                AgentAddr::DEFAULT_SOCKET
            )));
        }
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let name = match (&scenario, &kube) {
            (Some((s, _)), _) => s.name.as_str(),
            (None, Some(_)) => "kube",
            (None, None) => "agent",
        };
        PathBuf::from("faultline-runs").join(format!(
            "tui-{}-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(':', "")
        ))
    });
    let summary = faultline_tui::run(faultline_tui::Options {
        links,
        scenario,
        out_dir,
        exe,
        crash_dirs: args.crash_dirs,
        dumps,
        dump_every: args.dump_every,
        debug_dirs: args.debug_dirs,
        lease: args.lease,
        signals: Some(faultline_tui::run::SignalWait(Box::new(move |within| {
            interrupts.wait(within)
        }))),
        kube,
    })
    .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    for line in summary.lines {
        println!("faultline tui: {line}");
    }
    Ok(())
}
