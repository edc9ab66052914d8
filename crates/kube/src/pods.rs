//! Pods through the API server: list them by selector, delete one, and watch until its
//! controller's replacement is Ready. Kept thin: the choosing is in [`crate::select`].

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, WatchEvent, WatchParams};

use crate::select::{self, Mode, PodRef, Refused};

/// What went wrong, for a person: what was being done, and what the API server said.
#[derive(Debug)]
pub enum Error {
    /// The API server answered with an error status.
    Api {
        /// What was being done (`list pods app=checkout in shop`).
        what: String,
        /// The HTTP status.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The API server could not be reached, or answered nonsense.
    Transport {
        /// What was being done.
        what: String,
        /// Why it failed.
        why: String,
    },
    /// The selection chose nothing, or was refused.
    Refused(Refused),
    /// A watch kept ending without telling anything.
    WatchEnded(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                what,
                code: 403,
                message,
            } => write!(
                f,
                "{what}: the API server refused (403 Forbidden): {message}. The account running \
                 faultline needs the rights of the faultline-runner role (deploy/runner-rbac.yaml)"
            ),
            Error::Api {
                what,
                code: 404,
                message,
            } => write!(f, "{what}: not found (404): {message}"),
            Error::Api {
                what,
                code: 409,
                message,
            } => write!(f, "{what}: conflict (409): {message}"),
            Error::Api {
                what,
                code,
                message,
            } => write!(f, "{what}: the API server failed ({code}): {message}"),
            Error::Transport { what, why } => write!(f, "{what}: {why}"),
            Error::Refused(refused) => refused.fmt(f),
            Error::WatchEnded(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {}

fn api_error(what: &str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) => Error::Api {
            what: what.to_owned(),
            code: status.code,
            message: status.message,
        },
        other => Error::Transport {
            what: what.to_owned(),
            why: causes(&other),
        },
    }
}

/// An error with its causes, each said once: `ServiceError: client error (Connect): tcp
/// connect error: Connection refused (os error 111)`, where the error alone stops at `Connect`.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// Which pods: namespaces, a label selector, optionally a field selector, and how to choose.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Namespaces to look in.
    pub namespaces: Vec<String>,
    /// A label selector (`app=checkout,tier!=canary`).
    pub labels: String,
    /// A field selector (`spec.nodeName=node-1`).
    pub fields: Option<String>,
    /// How many to hit.
    pub mode: Mode,
    /// The seed the choice is drawn with (recorded in reports).
    pub seed: u64,
    /// Also pods that are not Running and Ready.
    pub include_not_ready: bool,
    /// Also protected namespaces (`kube-system`, faultline's own).
    pub allow_protected: bool,
}

impl Targets {
    fn describe(&self) -> String {
        let mut text = format!("selector {} in {}", self.labels, self.namespaces.join(", "));
        if let Some(fields) = &self.fields {
            text.push_str(&format!(" (fields {fields})"));
        }
        text
    }
}

/// What the selection sees of a pod.
pub fn pod_ref(pod: &Pod) -> PodRef {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodRef {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        ready,
        terminating: meta.deletion_timestamp.is_some(),
        owner: meta.owner_references.as_ref().and_then(|owners| {
            owners
                .iter()
                .find(|o| o.controller == Some(true))
                .map(|o| format!("{}/{}", o.kind, o.name))
        }),
        containers: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| Some((c.name.clone(), c.container_id.clone()?)))
                    .collect()
            })
            .unwrap_or_default(),
        ip: status.and_then(|s| s.pod_ip.clone()),
        restarts: status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.name.clone(), u32::try_from(c.restart_count).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every pod of `labels` in each of `namespaces`, whatever its state (for peers' addresses
/// and restart counts; [`select`] is what chooses pods to hit).
pub async fn list(
    client: &Client,
    namespaces: &[String],
    labels: &str,
    fields: Option<&str>,
) -> Result<Vec<PodRef>, Error> {
    let mut params = ListParams::default().labels(labels);
    if let Some(fields) = fields {
        params = params.fields(fields);
    }
    let mut pods = Vec::new();
    for namespace in namespaces {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let what = format!("list pods {labels} in {namespace}").replace("pods  in", "pods in");
        let list = api.list(&params).await.map_err(|e| api_error(&what, e))?;
        pods.extend(list.items.iter().map(pod_ref));
    }
    Ok(pods)
}

/// Lists the pods `targets` describes and chooses among them.
pub async fn select(client: &Client, targets: &Targets) -> Result<Vec<PodRef>, Error> {
    select::check_namespaces(&targets.namespaces, targets.allow_protected)
        .map_err(Error::Refused)?;
    let mut params = ListParams::default().labels(&targets.labels);
    if let Some(fields) = &targets.fields {
        params = params.fields(fields);
    }
    let mut matched = Vec::new();
    for namespace in &targets.namespaces {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let what = format!("list pods {} in {namespace}", targets.labels);
        let list = api.list(&params).await.map_err(|e| api_error(&what, e))?;
        matched.extend(list.items.iter().map(pod_ref));
    }
    select::choose(
        matched,
        targets.mode,
        targets.seed,
        targets.include_not_ready,
        &targets.describe(),
    )
    .map_err(Error::Refused)
}

/// How a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// With this grace period (its containers get SIGTERM, then SIGKILL after it).
    Seconds(u32),
    /// At once (grace 0: `--force`).
    Force,
}

/// What a pod kill did, and how the pod's controller recovered.
#[derive(Debug, Clone, PartialEq)]
pub struct KillReport {
    /// The pod killed.
    pub pod: PodRef,
    /// How.
    pub grace: Grace,
    /// When it was gone from the API (after the delete was sent), if seen in time.
    pub gone_after: Option<Duration>,
    /// Its replacement (another pod of the same controller), once Ready.
    pub replacement: Option<String>,
    /// When the replacement was Ready, if in time: the recovery a gate asserts on.
    pub ready_after: Option<Duration>,
}

/// What pod kills running at the same time share: the pods there before the first of them
/// (a replacement is a pod made after it) and the replacements already taken, so that pods
/// killed at once (mode `all`) each need a replacement of their own. Reset when a kill starts
/// with none in flight.
#[derive(Debug, Default)]
pub struct KillShare {
    state: std::sync::Mutex<ShareState>,
}

#[derive(Debug, Default)]
struct ShareState {
    in_flight: usize,
    baseline: Option<HashSet<String>>,
    claimed: HashSet<String>,
}

impl KillShare {
    /// Marks `uid` as a replacement already taken (by a kill made elsewhere).
    pub fn take(&self, uid: &str) {
        self.state().claimed.insert(uid.to_owned());
    }

    /// Whether `uid` was taken as a replacement.
    pub fn taken(&self, uid: &str) -> bool {
        self.state().claimed.contains(uid)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ShareState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One kill's part in a [`KillShare`]: leaves it when dropped (also when the kill fails or is
/// given up), giving back its claim unless the kill succeeded.
struct Entered<'a> {
    share: &'a KillShare,
    claim: std::cell::RefCell<Option<String>>,
    keep: std::cell::Cell<bool>,
}

impl<'a> Entered<'a> {
    fn enter(share: &'a KillShare) -> Self {
        let mut state = share.state();
        if state.in_flight == 0 {
            state.baseline = None;
            state.claimed.clear();
        }
        state.in_flight += 1;
        Self {
            share,
            claim: std::cell::RefCell::new(None),
            keep: std::cell::Cell::new(false),
        }
    }

    /// The pods before the first kill in flight: `own` (this kill's listing) if it is first.
    fn baseline(&self, own: HashSet<String>) -> HashSet<String> {
        self.share.state().baseline.get_or_insert(own).clone()
    }

    fn claim(&self, uid: &str) -> bool {
        let taken = self.share.state().claimed.insert(uid.to_owned());
        if taken {
            *self.claim.borrow_mut() = Some(uid.to_owned());
        }
        taken
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut state = self.share.state();
        if !self.keep.get()
            && let Some(uid) = self.claim.borrow().as_ref()
        {
            state.claimed.remove(uid);
        }
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

/// Deletes `pod`, then watches the pods of `labels` in its namespace until it is gone and a
/// pod of the same controller (another UID) is Ready, or `timeout` passes.
pub async fn kill(
    client: &Client,
    pod: &PodRef,
    labels: &str,
    grace: Grace,
    timeout: Duration,
) -> Result<KillReport, Error> {
    kill_claiming(client, pod, labels, grace, timeout, &KillShare::default()).await
}

/// [`kill`], sharing `share` with the kills running at the same time: a replacement is a pod
/// made after the first of them started, and one no other kill took.
pub async fn kill_claiming(
    client: &Client,
    pod: &PodRef,
    labels: &str,
    grace: Grace,
    timeout: Duration,
    share: &KillShare,
) -> Result<KillReport, Error> {
    let entered = Entered::enter(share);
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let seconds = match grace {
        Grace::Seconds(s) => s,
        Grace::Force => 0,
    };
    // The pods there before the delete, and the version to watch from: a replacement is a
    // pod the controller makes after it. (A watch from version 0 would start with every pod
    // that exists, and an existing replica is not a recovery.)
    let list_what = format!("list pods {labels} in {}", pod.namespace);
    let before = api
        .list(&ListParams::default().labels(labels))
        .await
        .map_err(|e| api_error(&list_what, e))?;
    let existing = entered.baseline(
        before
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect(),
    );
    let started = Instant::now();
    let what = format!("delete pod {}/{}", pod.namespace, pod.name);
    api.delete(
        &pod.name,
        &DeleteParams {
            grace_period_seconds: Some(seconds),
            ..DeleteParams::default()
        },
    )
    .await
    .map_err(|e| api_error(&what, e))?;
    let mut report = KillReport {
        pod: pod.clone(),
        grace,
        gone_after: None,
        replacement: None,
        ready_after: None,
    };
    // A pod without a controller has nothing to replace it: only its going is waited for.
    let done =
        |r: &KillReport| r.gone_after.is_some() && (pod.owner.is_none() || r.ready_after.is_some());
    // A new Ready pod of the same controller that no other kill took.
    let replaces = |p: &Pod| {
        let seen = pod_ref(p);
        let candidate = seen.uid != pod.uid
            && !existing.contains(&seen.uid)
            && seen.owner.is_some()
            && seen.owner == pod.owner
            && seen.ready
            && !seen.terminating;
        (candidate && entered.claim(&seen.uid)).then_some(seen.name)
    };
    let what = format!("get pod {}/{}", pod.namespace, pod.name);
    let now = api
        .get_opt(&pod.name)
        .await
        .map_err(|e| api_error(&what, e))?;
    if now.is_none_or(|p| p.metadata.uid.as_deref() != Some(pod.uid.as_str())) {
        report.gone_after = Some(started.elapsed());
    }
    let deadline = started + timeout;
    let what = format!("watch pods {labels} in {}", pod.namespace);
    let mut version = before
        .metadata
        .resource_version
        .clone()
        .unwrap_or_else(|| "0".to_owned());
    let mut empty_watches = 0;
    let mut broken_watches = 0;
    while !done(&report) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // The server ends a watch at its timeout (or earlier): it is started again from the
        // last version seen.
        let seconds = u32::try_from(left.as_secs())
            .unwrap_or(u32::MAX)
            .clamp(1, 290);
        let params = WatchParams::default().labels(labels).timeout(seconds);
        let stream = api
            .watch(&params, &version)
            .await
            .map_err(|e| api_error(&what, e))?;
        let mut stream = std::pin::pin!(stream);
        let mut events = 0;
        let mut relist = false;
        loop {
            let next = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                stream.next(),
            )
            .await;
            let Ok(Some(event)) = next else { break };
            events += 1;
            let event = match event {
                Ok(event) => {
                    broken_watches = 0;
                    event
                }
                // The connection broke (a load balancer resets long ones): watched again from
                // the last version, unless it keeps breaking.
                Err(e) => {
                    broken_watches += 1;
                    if broken_watches >= 3 {
                        return Err(api_error(&what, e));
                    }
                    break;
                }
            };
            match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    version = p.metadata.resource_version.clone().unwrap_or(version);
                    if report.ready_after.is_none()
                        && let Some(name) = replaces(&p)
                    {
                        report.replacement = Some(name);
                        report.ready_after = Some(started.elapsed());
                    }
                }
                WatchEvent::Deleted(p) => {
                    version = p.metadata.resource_version.clone().unwrap_or(version);
                    if p.metadata.uid.as_deref() == Some(pod.uid.as_str())
                        && report.gone_after.is_none()
                    {
                        report.gone_after = Some(started.elapsed());
                    }
                }
                WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                // 410 Gone: the version is too old. What happened meanwhile is read from a
                // new listing, and the watch goes on from its version.
                WatchEvent::Error(status) if status.code == 410 => {
                    relist = true;
                    break;
                }
                WatchEvent::Error(status) => {
                    return Err(Error::Api {
                        what,
                        code: status.code,
                        message: status.message,
                    });
                }
            }
            if done(&report) {
                entered.keep.set(true);
                return Ok(report);
            }
        }
        if relist {
            let now = api
                .list(&ListParams::default().labels(labels))
                .await
                .map_err(|e| api_error(&list_what, e))?;
            version = now
                .metadata
                .resource_version
                .clone()
                .unwrap_or_else(|| "0".to_owned());
            if report.gone_after.is_none()
                && !now
                    .items
                    .iter()
                    .any(|p| p.metadata.uid.as_deref() == Some(pod.uid.as_str()))
            {
                report.gone_after = Some(started.elapsed());
            }
            if report.ready_after.is_none()
                && let Some(name) = now.items.iter().find_map(&replaces)
            {
                report.replacement = Some(name);
                report.ready_after = Some(started.elapsed());
            }
            continue;
        }
        if events == 0 {
            empty_watches += 1;
            if empty_watches >= 3 {
                return Err(Error::WatchEnded(format!(
                    "{what}: the watch ended {empty_watches} times without an event; the pod \
                     {} was{} seen gone and no replacement seen Ready",
                    pod.name,
                    if report.gone_after.is_some() {
                        ""
                    } else {
                        " not"
                    }
                )));
            }
        } else {
            empty_watches = 0;
        }
    }
    entered.keep.set(true);
    Ok(report)
}

/// The log of a container's previous run (`previous=true`: the run that crashed, when the
/// container restarted), or of its current run. `container` may be left out for a pod with one
/// container.
pub async fn log(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    previous: bool,
) -> Result<String, Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!(
        "read the {}log of {namespace}/{pod}{}",
        if previous { "previous run's " } else { "" },
        container
            .map(|c| format!(" container {c}"))
            .unwrap_or_default()
    );
    api.logs(
        pod,
        &LogParams {
            container: container.map(str::to_owned),
            previous,
            ..LogParams::default()
        },
    )
    .await
    .map_err(|e| api_error(&what, e))
}

/// Pod `namespace/name` as the selection sees it.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<PodRef, Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("get pod {namespace}/{name}");
    let pod = api.get(name).await.map_err(|e| api_error(&what, e))?;
    Ok(pod_ref(&pod))
}

/// The faultline agent on `node`: the Running and Ready pod of its DaemonSet there (labels
/// `app.kubernetes.io/name=faultline,app.kubernetes.io/component=agent` in `namespace`), and
/// the address of its API (its pod IP and the container port named `api`).
pub async fn agent_on(
    client: &Client,
    namespace: &str,
    node: &str,
) -> Result<(PodRef, std::net::SocketAddr), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let labels = "app.kubernetes.io/name=faultline,app.kubernetes.io/component=agent";
    let what = format!("find the faultline agent on node {node} (pods {labels} in {namespace})");
    let params = ListParams::default()
        .labels(labels)
        .fields(&format!("spec.nodeName={node}"));
    let list = api.list(&params).await.map_err(|e| api_error(&what, e))?;
    let agent = list
        .items
        .iter()
        .find(|p| {
            let r = pod_ref(p);
            r.phase == "Running" && r.ready && !r.terminating
        })
        .ok_or_else(|| Error::Transport {
            what: what.clone(),
            why: format!(
                "no Running and Ready agent pod there ({} found): is the DaemonSet deployed \
                 (deploy/) and scheduled on that node?",
                list.items.len()
            ),
        })?;
    let ip = agent
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
    let port = agent
        .spec
        .as_ref()
        .and_then(|s| {
            s.containers.iter().find_map(|c| {
                c.ports
                    .as_ref()?
                    .iter()
                    .find(|p| p.name.as_deref() == Some("api"))
                    .map(|p| p.container_port)
            })
        })
        .and_then(|p| u16::try_from(p).ok());
    match (ip, port) {
        (Some(ip), Some(port)) => Ok((pod_ref(agent), std::net::SocketAddr::new(ip, port))),
        _ => Err(Error::Transport {
            what,
            why: format!(
                "agent pod {} has no pod IP or no container port named api",
                agent.metadata.name.as_deref().unwrap_or("?")
            ),
        }),
    }
}
