//! faultline on Kubernetes, API side: the only crate that imports `kube`. Pods by selector,
//! chosen by mode with a seed ([`select`]); a pod kill through the API and the wait for the
//! controller's replacement to be Ready, logs, the agent on a node ([`pods`]); a connection
//! that lasts a run, with port-forwards ([`session`]); the scenario runner's cluster over all
//! of it ([`cluster::KubeCluster`], faultline-scenario's `Cluster`); Chaos Mesh manifests as
//! scenarios ([`chaos_mesh`]); pods as inputs of `analyze` and `leaks` ([`inputs`]). The node
//! side — faults on a pod's processes — is the agent's (faultline-agent, faultline-fault),
//! reached per node.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chaos_mesh;
pub mod cluster;
pub mod inputs;
pub mod pods;
pub mod select;
pub mod session;

pub use cluster::KubeCluster;
pub use pods::{Error, Grace, KillReport, KillShare, Targets, kill, kill_claiming};
pub use select::{Mode, PodRef, Refused};
pub use session::{API_TIMEOUT, Forward, ForwardTo, Session};

/// A client from the user's kubeconfig (`KUBECONFIG`, `~/.kube/config`) with `context` (its
/// current context if `None`), or the in-cluster configuration when there is no kubeconfig, as
/// kubectl does.
pub async fn client(context: Option<&str>) -> Result<kube::Client, Error> {
    let what = match context {
        Some(context) => format!(
            "read the Kubernetes configuration (context {context} of KUBECONFIG or ~/.kube/config)"
        ),
        None => "read the Kubernetes configuration (KUBECONFIG or ~/.kube/config, its current \
                 context; in a pod, its service account)"
            .to_owned(),
    };
    let config = match context {
        Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
            context: Some(context.to_owned()),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            // A context that is not there: say which are.
            let known: Vec<String> = kube::config::Kubeconfig::read()
                .map(|k| k.contexts.into_iter().map(|c| c.name).collect())
                .unwrap_or_default();
            let why = if !known.is_empty() && !known.iter().any(|k| k == context) {
                format!(
                    "there is no context {context} (contexts: {})",
                    known.join(", ")
                )
            } else {
                pods::causes(&e)
            };
            Error::Transport {
                what: what.clone(),
                why,
            }
        })?,
        None => kube::Config::infer().await.map_err(|e| Error::Transport {
            what: what.clone(),
            why: pods::causes(&e),
        })?,
    };
    kube::Client::try_from(config).map_err(|e| Error::Transport {
        what,
        why: pods::causes(&e),
    })
}
