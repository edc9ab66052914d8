//! `faultline inject pod-kill`: pods chosen by selector through the API server, deleted, and
//! each controller's replacement waited for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_kube::{Grace, Targets};

use crate::PodKillArgs;
use crate::exit::Failure;

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
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let client = session.client();
    let outcome = session.block_on(async {
        let chosen = faultline_kube::pods::select(client, &targets).await?;
        println!(
            "faultline: pod-kill: {} of the pods of {} in {} (mode {}, seed {seed})",
            chosen.len(),
            targets.labels,
            targets.namespaces.join(", "),
            targets.mode
        );
        let mut reports = Vec::new();
        for pod in &chosen {
            reports.push(faultline_kube::kill(client, pod, &targets.labels, grace, timeout).await?);
        }
        Ok::<_, faultline_kube::Error>(reports)
    });
    let reports = outcome.map_err(|e| match e {
        faultline_kube::Error::Refused(_) => Failure::usage(e),
        other => Failure::failed(anyhow::anyhow!(other)),
    })?;
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
/// be is named, exit 2) that `faultline run` carries out as any other: `selected` is the pods
/// of `spec.selector`, `target` those of a NetworkChaos `spec.target`.
pub fn chaos_mesh_scenario(
    text: &str,
    file: &std::path::Path,
    seed: u64,
    allow_protected: bool,
) -> Result<faultline_scenario::Scenario, Failure> {
    use faultline_kube::chaos_mesh::Action;
    use faultline_scenario::model::*;
    let translation =
        faultline_kube::chaos_mesh::translate(text, seed, allow_protected).map_err(|reasons| {
            for reason in &reasons {
                eprintln!("faultline: {}: {reason}", file.display());
            }
            Failure::quiet(crate::exit::BAD_INPUT)
        })?;
    let pods = |name: &str, targets: &Targets, container: Option<String>| PodTarget {
        name: name.to_owned(),
        namespaces: targets.namespaces.clone(),
        selector: targets.labels.clone(),
        fields: targets.fields.clone(),
        mode: match targets.mode {
            faultline_kube::Mode::One => PodMode::One,
            faultline_kube::Mode::All => PodMode::All,
            faultline_kube::Mode::Fixed(n) => PodMode::Fixed(u32::try_from(n).unwrap_or(u32::MAX)),
            faultline_kube::Mode::Percent(p) => PodMode::Percent(p),
        },
        container,
        pos: Default::default(),
    };
    let step = |fault, duration| Step {
        pos: Default::default(),
        action: StepAction::Fault(FaultStep {
            target: "selected".into(),
            fault,
            duration,
        }),
    };
    let mut targets = Vec::new();
    let mut assertions = Vec::new();
    // A network fault of the selected pods: its peers (the target's pods, then the external
    // addresses) and how they read.
    let network = |targets: &mut Vec<PodTarget>,
                   direction: &String,
                   peers: &Option<Targets>,
                   external: &Vec<String>| {
        targets.push(pods("selected", &translation.targets, None));
        let mut names = external.clone();
        if let Some(peers) = peers {
            targets.push(pods("target", peers, None));
            names.insert(0, "target".into());
        }
        let described = peers
            .iter()
            .map(|p| format!("the pods of {}", p.labels))
            .chain(external.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        let net = NetOptions {
            peers: names,
            ports: Vec::new(),
            protocol: None,
            direction: direction.clone(),
            reject: false,
        };
        (net, described)
    };
    // The selected pods, as every description names them.
    let selected = format!(
        "{} of the pods of {} in {}",
        translation.targets.mode,
        translation.targets.labels,
        translation.targets.namespaces.join(", ")
    );
    let (what, steps) = match &translation.action {
        Action::PodKill(grace) => {
            let timeout = Duration::from_secs(120);
            targets.push(pods("selected", &translation.targets, None));
            assertions.push(Assertion {
                pos: Default::default(),
                check: AssertionCheck::Replaced {
                    target: Some("selected".into()),
                    within: timeout,
                },
            });
            let grace = match grace {
                Grace::Force => Duration::ZERO,
                Grace::Seconds(s) => Duration::from_secs(u64::from(*s)),
            };
            (
                format!(
                    "pod-kill of {selected}, {}",
                    if grace.is_zero() {
                        "at once".to_owned()
                    } else {
                        format!("with a {}s grace period", grace.as_secs())
                    }
                ),
                vec![step(Fault::PodKill { grace, timeout }, Duration::ZERO)],
            )
        }
        Action::ContainerKill { container } => {
            targets.push(pods(
                "selected",
                &translation.targets,
                Some(container.clone()),
            ));
            (
                format!("container-kill of container {container} of {selected}"),
                vec![step(
                    Fault::Kill {
                        signal: "KILL".into(),
                        grace: Duration::ZERO,
                    },
                    Duration::ZERO,
                )],
            )
        }
        Action::Partition {
            direction,
            peers,
            external,
            duration,
        } => {
            let (net, described) = network(&mut targets, direction, peers, external);
            (
                format!(
                    "partition of {selected} from {described} ({direction}) for {}",
                    humantime::format_duration(*duration)
                ),
                vec![step(Fault::Partition(net), *duration)],
            )
        }
        Action::Loss {
            percent,
            direction,
            peers,
            external,
            duration,
        } => {
            let (net, described) = network(&mut targets, direction, peers, external);
            (
                format!(
                    "loss of {percent}% between {selected} and {described} ({direction}) for {}",
                    humantime::format_duration(*duration)
                ),
                vec![step(
                    Fault::Loss {
                        net,
                        percent: *percent,
                    },
                    *duration,
                )],
            )
        }
        Action::Stress {
            workers,
            load,
            container,
            duration,
        } => {
            targets.push(pods("selected", &translation.targets, container.clone()));
            (
                format!(
                    "CPU stress ({workers} workers, load {load}) of {selected}{} for {}",
                    container
                        .as_ref()
                        .map(|c| format!(", container {c}"))
                        .unwrap_or_default(),
                    humantime::format_duration(*duration)
                ),
                vec![step(
                    Fault::Stress {
                        workers: *workers,
                        load: *load,
                    },
                    *duration,
                )],
            )
        }
    };
    eprintln!(
        "faultline: {} (Chaos Mesh, translated): {what}, seed {seed}",
        translation.name
    );
    for note in &translation.notes {
        eprintln!("faultline: note: {note}");
    }
    Ok(faultline_scenario::Scenario {
        name: translation.name.clone(),
        description: Some(format!(
            "Chaos Mesh {} translated: {what}",
            translation.name
        )),
        base_dir: file
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        hosts: Vec::new(),
        processes: Vec::new(),
        pods: targets,
        kubernetes: Kubernetes {
            allow_protected_namespaces: allow_protected,
            ..Kubernetes::default()
        },
        debug: Debug::default(),
        probes: Vec::new(),
        crash_targets: vec!["selected".into()],
        dumps: Vec::new(),
        steps,
        assertions,
        lease: Duration::from_secs(5),
    })
}

/// `pod:NS/NAME[/CONTAINER]` as an input of `analyze`: the log of the container's previous run
/// (the one that crashed), with the current kubeconfig context.
pub fn previous_log(spec: &str) -> Result<Vec<u8>, Failure> {
    let parts: Vec<&str> = spec.split('/').collect();
    let (namespace, pod, container) = match parts.as_slice() {
        [ns, pod] if !ns.is_empty() && !pod.is_empty() => (*ns, *pod, None),
        [ns, pod, c] if !ns.is_empty() && !pod.is_empty() && !c.is_empty() => (*ns, *pod, Some(*c)),
        _ => {
            return Err(Failure::usage(format!(
                "pod:{spec}: expected pod:NAMESPACE/POD or pod:NAMESPACE/POD/CONTAINER"
            )));
        }
    };
    let text = faultline_kube::Session::connect(None)
        .and_then(|session| {
            session.block_on(faultline_kube::pods::log(
                session.client(),
                namespace,
                pod,
                container,
                true,
            ))
        })
        .map_err(|e| Failure::failed(anyhow::anyhow!("pod:{spec}: {e}")))?;
    Ok(text.into_bytes())
}

/// Refuses kube-system, faultline-system and the agent's namespace without `allow` (exit 2).
fn protected(namespaces: &[String], agent_namespace: &str, allow: bool) -> Result<(), Failure> {
    if allow {
        return Ok(());
    }
    faultline_kube::select::check_namespaces(namespaces, false)
        .map_err(|e| Failure::usage(e.to_string()))?;
    match namespaces.iter().find(|ns| *ns == agent_namespace) {
        Some(ns) => Err(Failure::usage(format!(
            "namespace {ns} is the agent's own: faults there need --allow-protected-namespace"
        ))),
        None => Ok(()),
    }
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
        agents: match agents {
            "port-forward" => AgentRoute::PortForward,
            "pod-ip" => AgentRoute::PodIp,
            _ => AgentRoute::Auto,
        },
        allow_protected_namespaces: false,
    }
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
    let cluster = KubeCluster::connect(
        &settings(
            args.context.clone(),
            &args.agent_namespace,
            args.token_file.clone(),
            &args.agents,
        ),
        None,
        None,
        crate::exit::FAILED,
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
    let cluster = KubeCluster::connect(&settings, None, None, crate::exit::FAILED)?;
    let target = cluster
        .session
        .call(
            &format!("get pod {pod}"),
            faultline_kube::API_TIMEOUT,
            faultline_kube::pods::get(cluster.session.client(), namespace, name),
        )
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let container = match &args.container {
        None => None,
        Some(wanted) => Some(
            target
                .containers
                .iter()
                .find(|(name, _)| name == wanted)
                .map(|(_, id)| id.clone())
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "--container {wanted}: pod {pod} has no running container of that name \
                         (containers: {})",
                        target
                            .containers
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        ),
    };
    let client = match (&agent.agent, &target.node) {
        (Some(addr), _) => faultline_agent::Client::new(
            addr.parse().map_err(Failure::usage)?,
            cluster.token.clone(),
        ),
        (None, Some(node)) => faultline_scenario::cluster::Cluster::agent(&cluster, node)
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
        if agent.agent.is_none() && !cluster.pod_ip {
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

/// A scenario's cluster, over the API server: what `faultline run` hands the runner when the
/// scenario names `pods`.
pub struct KubeCluster {
    session: faultline_kube::Session,
    context: Option<String>,
    settings: faultline_scenario::model::Kubernetes,
    /// Straight to agent pods' IPs (in the cluster), or through port-forwards.
    pod_ip: bool,
    token: Option<String>,
    /// Port-forwards kept open for the run.
    forwards: std::sync::Mutex<Vec<faultline_kube::Forward>>,
    /// What pod kills in flight share: pods killed at once each need their own replacement.
    kills: faultline_kube::KillShare,
}

impl KubeCluster {
    /// Connects with `context` (else the scenario's, else the current one), and the agents'
    /// token from `token_file` (else the scenario's).
    /// A cluster that cannot be reached is exit `unreachable`.
    pub fn connect(
        settings: &faultline_scenario::model::Kubernetes,
        context: Option<String>,
        token_file: Option<&std::path::PathBuf>,
        unreachable: u8,
    ) -> Result<Self, Failure> {
        use faultline_scenario::model::AgentRoute;
        let context = context.or_else(|| settings.context.clone());
        // A bad token file is a usage error, found before anything is asked of the cluster.
        let token = crate::agent::read_token(token_file.or(settings.agent_token_file.as_ref()))?;
        // The cluster cannot be reached: the run's infrastructure exit code.
        let session = faultline_kube::Session::connect(context.as_deref())
            .map_err(|e| Failure::new(unreachable, anyhow::anyhow!(e)))?;
        let pod_ip = match settings.agents {
            AgentRoute::PodIp => true,
            AgentRoute::PortForward => false,
            // In a pod (a CI job in the cluster), pod IPs are routable; outside, they rarely
            // are.
            AgentRoute::Auto => {
                context.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            }
        };
        Ok(Self {
            session,
            context,
            settings: settings.clone(),
            pod_ip,
            token,
            forwards: std::sync::Mutex::default(),
            kills: faultline_kube::KillShare::default(),
        })
    }

    fn keep(&self, forward: faultline_kube::Forward) -> std::net::SocketAddr {
        let local = forward.local;
        self.forwards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(forward);
        local
    }
}

fn cluster_pod(pod: faultline_kube::PodRef) -> faultline_scenario::cluster::ClusterPod {
    faultline_scenario::cluster::ClusterPod {
        namespace: pod.namespace,
        name: pod.name,
        uid: pod.uid,
        node: pod.node,
        phase: pod.phase,
        ready: pod.ready && !pod.terminating,
        ip: pod.ip,
        owner: pod.owner,
        containers: pod.containers,
        restarts: pod.restarts,
    }
}

impl faultline_scenario::cluster::Cluster for KubeCluster {
    fn describe(&self) -> String {
        format!(
            "Kubernetes ({}), agents in {} reached {}",
            self.context.as_deref().map_or_else(
                || "the current context".to_owned(),
                |c| format!("context {c}")
            ),
            self.settings.agent_namespace,
            if self.pod_ip {
                "at their pod IPs"
            } else {
                "through the API server's port-forward"
            }
        )
    }

    fn select(
        &self,
        target: &faultline_scenario::model::PodTarget,
        seed: u64,
    ) -> Result<Vec<faultline_scenario::cluster::ClusterPod>, String> {
        use faultline_scenario::model::PodMode;
        let targets = Targets {
            namespaces: target.namespaces.clone(),
            labels: target.selector.clone(),
            fields: target.fields.clone(),
            mode: match target.mode {
                PodMode::One => faultline_kube::Mode::One,
                PodMode::All => faultline_kube::Mode::All,
                PodMode::Fixed(n) => faultline_kube::Mode::Fixed(n as usize),
                PodMode::Percent(p) => faultline_kube::Mode::Percent(p),
            },
            seed,
            include_not_ready: false,
            allow_protected: self.settings.allow_protected_namespaces,
        };
        let chosen = self
            .session
            .call(
                &format!("list pods {}", targets.labels),
                faultline_kube::API_TIMEOUT,
                faultline_kube::pods::select(self.session.client(), &targets),
            )
            .map_err(|e| e.to_string())?;
        Ok(chosen.into_iter().map(cluster_pod).collect())
    }

    fn pods(
        &self,
        target: &faultline_scenario::model::PodTarget,
    ) -> Result<Vec<faultline_scenario::cluster::ClusterPod>, String> {
        let pods = self
            .session
            .call(
                &format!("list pods {}", target.selector),
                faultline_kube::API_TIMEOUT,
                faultline_kube::pods::list(
                    self.session.client(),
                    &target.namespaces,
                    &target.selector,
                    target.fields.as_deref(),
                ),
            )
            .map_err(|e| e.to_string())?;
        Ok(pods.into_iter().map(cluster_pod).collect())
    }

    fn agent(&self, node: &str) -> Result<faultline_agent::Client, String> {
        let (agent, address) = self
            .session
            .call(
                &format!("find the faultline agent on node {node}"),
                faultline_kube::API_TIMEOUT,
                faultline_kube::pods::agent_on(
                    self.session.client(),
                    &self.settings.agent_namespace,
                    node,
                ),
            )
            .map_err(|e| e.to_string())?;
        let address = if self.pod_ip {
            address
        } else {
            let forward = self
                .session
                .forward(
                    &self.settings.agent_namespace,
                    faultline_kube::ForwardTo::Pod(agent.name.clone()),
                    address.port(),
                )
                .map_err(|e| e.to_string())?;
            self.keep(forward)
        };
        Ok(faultline_agent::Client::new(
            faultline_agent::AgentAddr::Tcp(address),
            self.token.clone(),
        ))
    }

    fn pod_kill(
        &self,
        target: &faultline_scenario::model::PodTarget,
        pod: &faultline_scenario::cluster::ClusterPod,
        grace: Duration,
        timeout: Duration,
    ) -> Result<faultline_scenario::cluster::PodKilled, String> {
        let grace = if grace.is_zero() {
            Grace::Force
        } else {
            Grace::Seconds(u32::try_from(grace.as_secs().max(1)).unwrap_or(u32::MAX))
        };
        let chosen = faultline_kube::PodRef {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            node: pod.node.clone(),
            phase: pod.phase.clone(),
            ready: pod.ready,
            terminating: false,
            owner: pod.owner.clone(),
            containers: pod.containers.clone(),
            ip: pod.ip.clone(),
            restarts: pod.restarts.clone(),
        };
        // The wait for the replacement is bounded by `timeout` (the delete does not wait for
        // the grace period); the calls around it by the API's own limit.
        let report = self
            .session
            .call(
                &format!("pod kill of {}", pod.id()),
                timeout + 3 * faultline_kube::API_TIMEOUT,
                faultline_kube::kill_claiming(
                    self.session.client(),
                    &chosen,
                    &target.selector,
                    grace,
                    timeout,
                    &self.kills,
                ),
            )
            .map_err(|e| e.to_string())?;
        Ok(faultline_scenario::cluster::PodKilled {
            gone_after: report.gone_after,
            replacement: report.replacement.filter(|_| report.ready_after.is_some()),
            ready_after: report.ready_after,
        })
    }

    fn log(
        &self,
        pod: &faultline_scenario::cluster::ClusterPod,
        container: &str,
        previous: bool,
    ) -> Result<String, String> {
        self.session
            .call(
                &format!("read the log of {} container {container}", pod.id()),
                2 * faultline_kube::API_TIMEOUT,
                faultline_kube::pods::log(
                    self.session.client(),
                    &pod.namespace,
                    &pod.name,
                    Some(container),
                    previous,
                ),
            )
            .map_err(|e| e.to_string())
    }

    fn reach(
        &self,
        target: &faultline_scenario::model::PodTarget,
        port: u16,
    ) -> Result<std::net::SocketAddr, String> {
        let namespace = target
            .namespaces
            .first()
            .ok_or_else(|| format!("pods {}: no namespace", target.name))?;
        let forward = self
            .session
            .forward(
                namespace,
                faultline_kube::ForwardTo::Selector(target.selector.clone()),
                port,
            )
            .map_err(|e| e.to_string())?;
        Ok(self.keep(forward))
    }
}

/// A pod's endpoint reached through a port-forward, for as long as this value lives.
pub struct PodEndpoint {
    /// `http://127.0.0.1:PORT/PATH`: the endpoint, forwarded.
    pub url: String,
    _session: faultline_kube::Session,
    _forward: faultline_kube::Forward,
}

/// `pod://NAMESPACE/NAME:PORT/PATH?QUERY` (a Go service's `/debug/pprof/goroutine?debug=2`,
/// faultline-capture's `/debug/faultline/tasks`) forwarded through the API server with the
/// current kubeconfig context, as `kubectl port-forward` would.
pub fn pod_endpoint(spec: &str) -> Result<PodEndpoint, Failure> {
    let expected = || {
        Failure::usage(format!(
            "pod://{spec}: expected pod://NAMESPACE/NAME:PORT/PATH (pod://shop/inventory-a:6060/debug/pprof/goroutine?debug=2)"
        ))
    };
    let (namespace, rest) = spec.split_once('/').ok_or_else(expected)?;
    let (name, rest) = rest.split_once(':').ok_or_else(expected)?;
    let (port, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let port: u16 = port.parse().map_err(|_| expected())?;
    if namespace.is_empty() || name.is_empty() || port == 0 {
        return Err(expected());
    }
    let session =
        faultline_kube::Session::connect(None).map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let forward = session
        .forward(
            namespace,
            faultline_kube::ForwardTo::Pod(name.to_owned()),
            port,
        )
        .map_err(|e| Failure::failed(anyhow::anyhow!(e)))?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(PodEndpoint {
        url: format!("http://{}{path}", forward.local),
        _session: session,
        _forward: forward,
    })
}
