//! A connection to one cluster that lasts a whole run: the API client and the runtime its
//! calls and port-forwards run on, usable from any thread of a blocking caller.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::net::TcpListener;

use crate::pods::Error;

/// The client and a runtime of one worker thread; dropping it ends every forward.
pub struct Session {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Which pod a forwarded connection goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTo {
    /// This pod.
    Pod(String),
    /// The first Running and Ready pod of this label selector (by name), chosen again every
    /// 10 s and when a forward to it fails, so a forward outlives the pods it
    /// reaches.
    Selector(String),
}

/// How long a selector's forward keeps the pod it chose before it chooses again (the first
/// Running and Ready pod by name): a pod that stopped being Ready is left within that time.
const KEEP_CHOSEN: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one API call (a list, a get, a log) may take: far more than a healthy API server
/// needs, short enough that a run cut off from it ends and reports.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The signals that ask faultline to stop and revert its faults (those
/// `faultline_fault::Interrupts` waits for).
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The runtime's threads never take a stop signal. A signal sent to the process goes to a
/// thread that does not block it; if that were one of these, the process's default action
/// (termination) would end it at once and leave its faults to their leases. The caller's
/// thread, which blocks them and waits for them, takes them instead.
fn block_stop_signals() {
    // SAFETY: building a signal set and changing this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

impl Session {
    /// The client of [`crate::client`] (`context`, else the current one, else in-cluster).
    pub fn connect(context: Option<&str>) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("faultline-kube")
            .on_thread_start(block_stop_signals)
            .enable_all()
            .build()
            .map_err(|e| Error::Transport {
                what: "start the Kubernetes client's runtime".into(),
                why: e.to_string(),
            })?;
        let client = runtime.block_on(crate::client(context))?;
        Ok(Self { runtime, client })
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs an API call on the session's runtime, giving it up after `limit`: a connection
    /// left half-open (a load balancer that dropped it) would otherwise hang the caller, and a
    /// run waiting on it would never revert or report.
    pub fn call<T>(
        &self,
        what: &str,
        limit: std::time::Duration,
        future: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.runtime.block_on(async {
            tokio::time::timeout(limit, future)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Transport {
                        what: what.to_owned(),
                        why: format!("no answer within {}s", limit.as_secs()),
                    })
                })
        })
    }

    /// [`Session::block_on`], calling `tick` with the time waited so far every `every` until
    /// `future` ends: a long wait (a pod kill waiting for its replacement) says so as it goes.
    pub fn block_on_with_progress<F: std::future::Future>(
        &self,
        future: F,
        every: std::time::Duration,
        mut tick: impl FnMut(std::time::Duration),
    ) -> F::Output {
        self.runtime.block_on(async {
            let start = tokio::time::Instant::now();
            let mut interval = tokio::time::interval_at(start + every, every);
            tokio::pin!(future);
            loop {
                tokio::select! {
                    out = &mut future => return out,
                    _ = interval.tick() => tick(start.elapsed()),
                }
            }
        })
    }

    /// Runs `future` to its end on the session's runtime; callable from several threads at
    /// once (never from inside the runtime).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Forwards a port of loopback to `port` of pod `namespace/pod` through the API server, as
    /// `kubectl port-forward` does: every connection to the returned address gets a stream of
    /// its own (the `pods/portforward` subresource, over a WebSocket). Lasts until the
    /// [`Forward`] is dropped.
    pub fn forward(&self, namespace: &str, to: ForwardTo, port: u16) -> Result<Forward, Error> {
        let what = match &to {
            ForwardTo::Pod(pod) => format!("port-forward {namespace}/{pod}:{port}"),
            ForwardTo::Selector(labels) => {
                format!("port-forward a pod of {labels} in {namespace}, port {port}")
            }
        };
        let listener = self
            .runtime
            .block_on(TcpListener::bind(("127.0.0.1", 0)))
            .map_err(|e| Error::Transport {
                what: what.clone(),
                why: format!("bind a loopback port: {e}"),
            })?;
        let local = listener.local_addr().map_err(|e| Error::Transport {
            what: what.clone(),
            why: e.to_string(),
        })?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        // One stream first, so that what stops every forward (no such pod, no Ready pod, no
        // right to `pods/portforward`, a proxy that refuses the upgrade) is said here, not
        // met by each connection as a closed socket.
        let first = self
            .runtime
            .block_on(async {
                tokio::time::timeout(API_TIMEOUT, async {
                    let pod = pick(&api, &to).await?;
                    let forwarder = api.portforward(&pod, &[port]).await.map_err(|e| {
                        format!("open a stream to {pod}: {}", crate::pods::causes(&e))
                    })?;
                    forwarder.abort();
                    Ok::<_, String>(pod)
                })
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {}s", API_TIMEOUT.as_secs())))
            })
            .map_err(|why| Error::Transport {
                what: what.clone(),
                why,
            })?;
        // The pod a selector's connections go to, kept until a forward to it fails (it was
        // deleted, say), the pod's end reports an error (nothing listens: it is shutting down,
        // or restarting), or it was chosen KEEP_CHOSEN ago (it may no longer be Ready): not a
        // pod list per connection.
        let chosen: std::sync::Arc<tokio::sync::Mutex<Option<(String, std::time::Instant)>>> =
            std::sync::Arc::new(tokio::sync::Mutex::new(Some((
                first,
                std::time::Instant::now(),
            ))));
        let task = self.runtime.spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let (api, to, chosen) = (api.clone(), to.clone(), chosen.clone());
                tokio::spawn(async move {
                    // A connection that cannot be forwarded is closed: the caller sees its
                    // request fail (a probe failure, a failed scrape).
                    // The kept pod first; failing that (or with none kept), one chosen now.
                    let kept = chosen
                        .lock()
                        .await
                        .clone()
                        .filter(|(_, at)| {
                            matches!(to, ForwardTo::Pod(_)) || at.elapsed() < KEEP_CHOSEN
                        })
                        .map(|(pod, _)| pod);
                    let mut forwarded = None;
                    for candidate in [kept.clone(), None]
                        .into_iter()
                        .skip(usize::from(kept.is_none()))
                    {
                        let (pod, picked) = match candidate {
                            Some(pod) => (pod, false),
                            None => match pick(&api, &to).await {
                                Ok(pod) => (pod, true),
                                Err(_) => break,
                            },
                        };
                        if let Ok(forwarder) = api.portforward(&pod, &[port]).await {
                            let mut kept = chosen.lock().await;
                            // Chosen now (even the same pod again): kept for KEEP_CHOSEN more.
                            let since = match kept.take() {
                                Some((same, at)) if same == pod && !picked => at,
                                _ => std::time::Instant::now(),
                            };
                            *kept = Some((pod, since));
                            forwarded = Some(forwarder);
                            break;
                        }
                        *chosen.lock().await = None;
                    }
                    let Some(mut forwarder) = forwarded else {
                        return;
                    };
                    let error = forwarder.take_error(port);
                    if let Some(mut upstream) = forwarder.take_stream(port) {
                        let copy = tokio::io::copy_bidirectional(&mut socket, &mut upstream);
                        let mut copy = std::pin::pin!(copy);
                        if let Some(error) = error {
                            tokio::select! {
                                _ = &mut copy => {}
                                said = error => {
                                    // The pod's end failed (`connection refused` inside it):
                                    // the next connection chooses again.
                                    if said.is_some() {
                                        *chosen.lock().await = None;
                                    }
                                    let _ = copy.await;
                                }
                            }
                        } else {
                            let _ = copy.await;
                        }
                    }
                    forwarder.abort();
                });
            }
        });
        Ok(Forward { local, task })
    }
}

/// The pod a connection goes to, or why there is none.
async fn pick(api: &Api<Pod>, to: &ForwardTo) -> Result<String, String> {
    match to {
        ForwardTo::Pod(pod) => Ok(pod.clone()),
        ForwardTo::Selector(labels) => {
            let list = api
                .list(&kube::api::ListParams::default().labels(labels))
                .await
                .map_err(|e| format!("list pods {labels}: {}", crate::pods::causes(&e)))?;
            let mut ready: Vec<crate::PodRef> = list
                .items
                .iter()
                .map(crate::pods::pod_ref)
                .filter(|p| p.phase == "Running" && p.ready && !p.terminating)
                .collect();
            ready.sort_by(|a, b| a.name.cmp(&b.name));
            ready
                .into_iter()
                .next()
                .map(|p| p.name)
                .ok_or_else(|| format!("no pod of {labels} is Running and Ready"))
        }
    }
}

/// A forwarded port; dropping it stops accepting connections.
#[derive(Debug)]
pub struct Forward {
    /// Where to connect on this machine.
    pub local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}
