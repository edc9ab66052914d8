//! The binary's side of Kubernetes: arguments checked and turned into faultline-kube's calls,
//! and what they did printed. `inject pod-kill` (pods chosen, deleted, each controller's
//! replacement waited for), `inject --pod` (a pod's agent), `tui --kube` (the screen's cluster
//! and agent links), `run` on a Chaos Mesh manifest or a scenario of pods (the cluster), and
//! the `pod:`/`pod://` inputs of `analyze` and `leaks`. The logic is faultline-kube's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_kube::{Grace, KubeCluster, Targets};

use crate::PodKillArgs;
use crate::exit::Failure;

/// How often a long wait says it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "not seen".into(), |d| format!("{:.1}s", d.as_secs_f64()))
}

pub fn pod_kill(args: &PodKillArgs, allow_protected: bool) -> Result<(), Failure> {
    // Checked before anything is asked of the cluster.
    if args.selector.trim().is_empty() {
        return Err(Failure::usage(
            "-l: the selector is empty: faultline never selects every pod of a namespace by \
             accident",
        ));
    }
    check_selection(
        &args.namespaces,
        Some(&args.selector),
        args.field_selector.as_deref(),
    )?;
    faultline_kube::select::check_namespaces(&args.namespaces, allow_protected)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let grace = if args.force {
        Grace::Force
    } else {
        Grace::Seconds(u32::try_from(args.grace.as_secs()).unwrap_or(u32::MAX))
    };
    let targets = Targets {
        namespaces: args.namespaces.clone(),
        labels: args.selector.clone(),
        fields: args.field_selector.clone(),
        mode: args.mode,
        seed,
        include_not_ready: args.include_not_ready,
        allow_protected,
    };
    kill_targets(targets, grace, args.timeout, args.context.clone())
}

/// Namespaces, a label selector and a field selector as the API server would take them:
/// checked before it is asked anything (exit 2).
fn check_selection(
    namespaces: &[String],
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<(), Failure> {
    use faultline_scenario::selector;
    for ns in namespaces {
        selector::check_namespace(ns).map_err(Failure::usage)?;
    }
    if let Some(labels) = labels.filter(|l| !l.trim().is_empty()) {
        selector::check_labels(labels.trim())
            .map_err(|why| Failure::usage(format!("-l {labels}: {why}")))?;
    }
    if let Some(fields) = fields {
        selector::check_fields(fields.trim())
            .map_err(|why| Failure::usage(format!("--field-selector {fields}: {why}")))?;
    }
    Ok(())
}

/// Chooses the pods of `targets` and kills each, waiting for its replacement; prints what
/// happened. Exit 1 when a replacement is not Ready within `timeout`.
fn kill_targets(
    targets: Targets,
    grace: Grace,
    timeout: Duration,
    context: Option<String>,
) -> Result<(), Failure> {
    let seed = targets.seed;
    let session = faultline_kube::Session::connect(context.as_deref())
        .map_err(|e| Failure::new(crate::exit::INFRASTRUCTURE, anyhow::anyhow!(e)))?;
    let client = session.client();
    let refused = |e: faultline_kube::Error| match e {
        faultline_kube::Error::Refused(_) => Failure::usage(e),
        other => Failure::failed(anyhow::anyhow!(other)),
    };
    let chosen = session
        .block_on(faultline_kube::pods::select(client, &targets))
        .map_err(refused)?;
    println!(
        "faultline: pod-kill: {} of the pods of {} in {} (mode {}, seed {seed})",
        chosen.len(),
        targets.labels,
        targets.namespaces.join(", "),
        targets.mode
    );
    let mut reports = Vec::new();
    for pod in &chosen {
        // The wait for the replacement can take minutes: say so as it goes.
        let report = session
            .block_on_with_progress(
                faultline_kube::kill(client, pod, &targets.labels, grace, timeout),
                PROGRESS_EVERY,
                |waited| {
                    eprintln!(
                        "faultline: pod-kill {}/{}: waiting for its replacement to be Ready \
                         ({}s of {})",
                        pod.namespace,
                        pod.name,
                        waited.as_secs(),
                        humantime::format_duration(timeout)
                    );
                },
            )
            .map_err(refused)?;
        reports.push(report);
    }
    let mut unrecovered = 0;
    for r in &reports {
        let how = match r.grace {
            Grace::Force => "at once (--force)".to_owned(),
            Grace::Seconds(s) => format!("with a {s}s grace period"),
        };
        println!(
            "faultline: pod-kill {}/{} (node {}): deleted {how}; gone after {}; {}",
            r.pod.namespace,
            r.pod.name,
            r.pod.node.as_deref().unwrap_or("?"),
            seconds(r.gone_after),
            match (&r.replacement, r.ready_after) {
                (Some(name), Some(after)) =>
                    format!("replacement {name} Ready after {:.1}s", after.as_secs_f64()),
                _ => {
                    unrecovered += 1;
                    format!(
                        "no replacement Ready within {}",
                        humantime::format_duration(timeout)
                    )
                }
            }
        );
    }
    if unrecovered > 0 {
        return Err(Failure::failed(anyhow::anyhow!(
            "{unrecovered} of {} pods were not replaced within {}",
            reports.len(),
            humantime::format_duration(timeout)
        )));
    }
    Ok(())
}

/// `faultline run` on a Chaos Mesh manifest: translated into a scenario of pods (what cannot
/// be is named, exit 2) that `faultline run` carries out as any other.
pub fn chaos_mesh_scenario(
    text: &str,
    file: &std::path::Path,
    seed: u64,
    allow_protected: bool,
) -> Result<faultline_scenario::Scenario, Failure> {
    let translation =
        faultline_kube::chaos_mesh::translate(text, seed, allow_protected).map_err(|reasons| {
            for reason in &reasons {
                eprintln!("faultline: {}: {reason}", file.display());
            }
            Failure::quiet(crate::exit::BAD_INPUT)
        })?;
    let base_dir = file
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let translated = faultline_kube::chaos_mesh::scenario(&translation, base_dir, allow_protected);
    eprintln!(
        "faultline: {} (Chaos Mesh, translated): {}, seed {seed}",
        translation.name, translated.what
    );
    for note in &translation.notes {
        eprintln!("faultline: note: {note}");
    }
    Ok(translated.scenario)
}

/// `pod:NS/NAME[/CONTAINER]` as an input of `analyze`: the log of the container's previous run
/// (the one that crashed), with the current kubeconfig context.
pub fn previous_log(spec: &str) -> Result<Vec<u8>, Failure> {
    let log = faultline_kube::inputs::PodLog::parse(spec).map_err(Failure::usage)?;
    let text = log
        .previous()
        .map_err(|e| Failure::failed(anyhow::anyhow!("pod:{spec}: {e}")))?;
    Ok(text.into_bytes())
}

/// Refuses kube-system, faultline-system and the agent's namespace without `allow` (exit 2).
fn protected(namespaces: &[String], agent_namespace: &str, allow: bool) -> Result<(), Failure> {
    faultline_kube::select::check_protected(namespaces, agent_namespace, allow)
        .map_err(|e| Failure::usage(e.to_string()))
}

/// How a one-off command (`inject --pod`, `tui --kube`) reaches the cluster and its agents.
fn settings(
    context: Option<String>,
    agent_namespace: &str,
    token_file: Option<std::path::PathBuf>,
    agents: &str,
) -> faultline_scenario::model::Kubernetes {
    use faultline_scenario::model::AgentRoute;
    faultline_scenario::model::Kubernetes {
        context,
        agent_namespace: agent_namespace.to_owned(),
        agent_token_file: token_file,
        agent_ca: None,
        agent_cert: None,
        agent_key: None,
        agents: match agents {
            "port-forward" => AgentRoute::PortForward,
            "pod-ip" => AgentRoute::PodIp,
            _ => AgentRoute::Auto,
        },
        allow_protected_namespaces: false,
    }
}

/// Connects to the cluster of `settings` with `context` (else the settings'), and the agents'
/// token from `token_file` (else the settings'). A bad token file is a usage error, found
/// before anything is asked of the cluster; a cluster that cannot be reached is exit
/// `unreachable`.
pub fn connect(
    settings: &faultline_scenario::model::Kubernetes,
    context: Option<String>,
    token_file: Option<&std::path::PathBuf>,
    tls: &crate::agent::TlsFiles<'_>,
    unreachable: u8,
) -> Result<KubeCluster, Failure> {
    let identity = tls.identity.or(settings
        .agent_cert
        .as_ref()
        .zip(settings.agent_key.as_ref()));
    let credentials = crate::agent::credentials(
        token_file.or(settings.agent_token_file.as_ref()),
        tls.ca.or(settings.agent_ca.as_ref()),
        identity,
        faultline_agent::tls::AGENT_NAME,
    )?;
    KubeCluster::connect(settings, context, credentials)
        .map_err(|e| Failure::new(unreachable, anyhow::anyhow!(e)))
}

/// `tui --kube`: the cluster, the pods to list, and a link to the agent on each of their nodes
/// (an unreachable one is a link that says why).
pub fn tui_screen(
    args: &crate::TuiArgs,
) -> Result<
    (
        faultline_tui::run::KubeScreen,
        Vec<faultline_tui::sources::Link>,
    ),
    Failure,
> {
    use faultline_scenario::cluster::Cluster as _;
    let namespaces = if args.namespaces.is_empty() {
        vec!["default".to_owned()]
    } else {
        args.namespaces.clone()
    };
    check_selection(&namespaces, args.selector.as_deref(), None)?;
    protected(
        &namespaces,
        &args.agent_namespace,
        args.allow_protected_namespace,
    )?;
    let cluster = connect(
        &settings(
            args.context.clone(),
            &args.agent_namespace,
            args.token_file.clone(),
            &args.agents,
        ),
        None,
        None,
        &crate::agent::TlsFiles {
            ca: args.ca.as_ref(),
            identity: args.cert.as_ref().zip(args.key.as_ref()),
        },
        crate::exit::INFRASTRUCTURE,
    )?;
    let pods = faultline_scenario::model::PodTarget {
        name: "pods".into(),
        namespaces,
        selector: args.selector.clone().unwrap_or_default(),
        fields: None,
        mode: faultline_scenario::model::PodMode::All,
        container: None,
        pos: Default::default(),
    };
    let listed = cluster
        .pods(&pods)
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let mut nodes: Vec<String> = listed.iter().filter_map(|p| p.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    let links = nodes
        .iter()
        .map(|node| match cluster.agent(node) {
            Ok(client) => faultline_tui::sources::Link::Http(client),
            Err(why) => faultline_tui::sources::Link::Missing {
                name: format!("node {node}"),
                why,
            },
        })
        .collect();
    eprintln!(
        "faultline tui: {} pods on {} nodes in {} ({})",
        listed.len(),
        nodes.len(),
        pods.namespaces.join(", "),
        cluster.describe()
    );
    Ok((
        faultline_tui::run::KubeScreen {
            cluster: std::sync::Arc::new(cluster),
            pods,
            nodes,
        },
        links,
    ))
}

/// What `inject --pod` holds while the fault lasts: the agent's client, the pod as the agent
/// names it, and the connection (and port-forward) that reaches the agent.
pub struct PodAgent {
    pub client: faultline_agent::Client,
    pub target: faultline_agent::spec::PodTarget,
    _cluster: KubeCluster,
}

/// `inject --pod NS/NAME`: the pod (its UID, node and containers) from the API server, and a
/// client of the agent on its node — `--agent` if given, else the agent pod, through a
/// port-forward or at its IP (`--agents`).
pub fn agent_for_pod(
    pod: &str,
    args: &crate::PodTargetArgs,
    agent: &crate::AgentClientArgs,
) -> Result<PodAgent, Failure> {
    use faultline_scenario::cluster::Cluster as _;
    let Some((namespace, name)) = pod
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
    else {
        return Err(Failure::usage(format!(
            "--pod {pod}: expected NAMESPACE/NAME"
        )));
    };
    check_selection(&[namespace.to_owned()], None, None)?;
    protected(
        &[namespace.to_owned()],
        &args.agent_namespace,
        args.allow_protected_namespace,
    )?;
    let settings = settings(
        args.context.clone(),
        &args.agent_namespace,
        agent.token_file.clone(),
        &args.agents,
    );
    let cluster = connect(
        &settings,
        None,
        None,
        &crate::agent::TlsFiles {
            ca: agent.ca.as_ref(),
            identity: agent.cert.as_ref().zip(agent.key.as_ref()),
        },
        crate::exit::INFRASTRUCTURE,
    )?;
    let target = cluster
        .get(namespace, name)
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let container = match &args.container {
        None => None,
        Some(wanted) => Some(
            faultline_kube::cluster::container_id(&target, wanted)
                .map_err(|e| Failure::usage(e.to_string()))?,
        ),
    };
    let client = match (&agent.agent, &target.node) {
        (Some(addr), _) => cluster.client_at(addr.parse().map_err(Failure::usage)?),
        (None, Some(node)) => cluster
            .agent(node)
            .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?,
        (None, None) => {
            return Err(Failure::failed(anyhow::anyhow!(
                "pod {pod} is not scheduled on a node yet: no agent can reach it"
            )));
        }
    };
    println!(
        "faultline: pod {pod} (uid {}, node {}) through the agent at {}{}",
        target.uid,
        target.node.as_deref().unwrap_or("?"),
        client.addr(),
        if agent.agent.is_none() && !cluster.pod_ip() {
            " (a port-forward through the API server)"
        } else {
            ""
        }
    );
    Ok(PodAgent {
        client,
        target: faultline_agent::spec::PodTarget {
            uid: target.uid,
            container,
        },
        _cluster: cluster,
    })
}

/// `pod://NAMESPACE/NAME:PORT/PATH?QUERY` (a Go service's `/debug/pprof/goroutine?debug=2`,
/// faultline-capture's `/debug/faultline/tasks`) forwarded through the API server with the
/// current kubeconfig context, as `kubectl port-forward` would.
pub fn pod_endpoint(spec: &str) -> Result<faultline_kube::inputs::PodEndpoint, Failure> {
    let url = faultline_kube::inputs::PodUrl::parse(spec).map_err(Failure::usage)?;
    faultline_kube::inputs::PodEndpoint::open(&url).map_err(|e| Failure::failed(anyhow::anyhow!(e)))
}
