//! The HTTP API (axum) in front of the holder thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;

use crate::client::AgentAddr;
use crate::holder::{Command, Helpers, Holder, Refusal};
use crate::journal::Journal;
use crate::spec::{CreateFault, ErrorBody};
use crate::{CounterSet, Counters, Policy};

/// Largest request body.
const MAX_BODY: usize = 64 * 1024;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where it listens.
    pub listen: AgentAddr,
    /// The bearer token clients must send (required on TCP).
    pub token: Option<String>,
    /// Where the journal lives.
    pub state_dir: PathBuf,
    /// What may be faulted.
    pub policy: Policy,
    /// The faultline binary, for resume guards and stress workers.
    pub helpers: Helpers,
    /// The directory the core handler writes into (`--catch-cores`), served at
    /// `/v1/crashes`.
    pub crash_dir: Option<PathBuf>,
    /// TLS for a TCP listener (required unless `insecure_plaintext`).
    pub tls: Option<crate::tls::ServerTls>,
    /// `--insecure-plaintext`: plain TCP, on a loopback address only.
    pub insecure_plaintext: bool,
}

impl AgentOptions {
    /// What a listener needs before it may start: on TCP, TLS (or plain TCP on loopback when
    /// asked for), and a token unless clients are checked by certificate.
    pub fn check(&self) -> Result<(), String> {
        match (&self.listen, &self.tls) {
            (AgentAddr::Unix(_), Some(_)) => Err(
                "--tls-cert and --tls-key are for a TCP listener; a unix socket is owner-only"
                    .into(),
            ),
            (AgentAddr::Unix(_), None) if self.insecure_plaintext => {
                Err("--insecure-plaintext is for a TCP listener".into())
            }
            (AgentAddr::Unix(_), None) => Ok(()),
            (AgentAddr::Tcp(addr), None) if !self.insecure_plaintext => Err(format!(
                "tcp:{addr} would be plain TCP, readable by anyone on the network: give \
                 --tls-cert and --tls-key (faultline certs init makes a set), or \
                 --insecure-plaintext on a loopback address"
            )),
            (AgentAddr::Tcp(addr), None) if !addr.ip().is_loopback() => Err(format!(
                "--insecure-plaintext is for a loopback address only; {} is not one: give \
                 --tls-cert and --tls-key",
                addr.ip()
            )),
            (AgentAddr::Tcp(_), tls) => {
                let by_certificate = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
                if self.token.is_none() && !by_certificate {
                    return Err(
                        "a TCP listener needs a bearer token: give --token-file, or \
                                --client-ca to check clients by certificate (a unix socket \
                                needs neither)"
                            .into(),
                    );
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    commands: Sender<Command>,
    token: Option<Arc<str>>,
    counters: Counters,
    crash_dir: Option<Arc<std::path::Path>>,
}

/// Runs the agent until SIGTERM or SIGINT, then reverts every fault and returns. Errors are
/// for the operator: a TCP listener without a token, an address in use, an unwritable state
/// directory.
pub fn run(options: AgentOptions) -> Result<(), String> {
    options.check()?;
    // The certificates load before anything is touched.
    if let Some(tls) = &options.tls {
        tls.config()?;
    }
    // Before touching the journal: is another agent already here?
    if let AgentAddr::Unix(path) = &options.listen
        && std::os::unix::net::UnixStream::connect(path).is_ok()
    {
        return Err(format!("{}: another agent is listening", path.display()));
    }
    let state_dir = |e: std::io::Error| format!("--state-dir {}: {e}", options.state_dir.display());
    std::fs::create_dir_all(&options.state_dir).map_err(state_dir)?;
    let _lock = lock_state_dir(&options.state_dir)?;
    let (mut journal, pending) = Journal::open(&options.state_dir).map_err(state_dir)?;
    let (log, unresolved) = crate::sweep(&pending);
    for line in log {
        eprintln!("faultline agent: journal: {line}");
    }
    journal.truncate().map_err(state_dir)?;
    // What the sweep could not settle stays in the journal for the next start.
    for entry in &unresolved {
        journal.write(entry).map_err(state_dir)?;
    }

    let counters: Counters = Arc::new(CounterSet::default());
    let (commands, receiver) = std::sync::mpsc::channel();
    let holder = Holder::new(
        journal,
        options.policy.clone(),
        options.helpers.clone(),
        counters.clone(),
    );
    let holder_thread = std::thread::Builder::new()
        .name("fault-holder".into())
        .spawn(move || holder.run(&receiver))
        .map_err(|e| format!("start the fault holder: {e}"))?;

    let state = AppState {
        commands,
        token: options.token.as_deref().map(Arc::from),
        counters,
        crash_dir: options.crash_dir.as_deref().map(Arc::from),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("start the runtime: {e}"))?;
    let counters = state.counters.clone();
    let served = runtime.block_on(serve(options.listen.clone(), options.tls.clone(), state));
    // The handlers (and their senders) are gone: the holder reverts everything and ends.
    drop(runtime);
    let _ = holder_thread.join();
    if let (AgentAddr::Unix(path), Ok(())) = (&options.listen, &served) {
        let _ = std::fs::remove_file(path);
    }
    let failures = counters
        .revert_failures
        .load(std::sync::atomic::Ordering::Relaxed);
    if failures == 0 {
        eprintln!("faultline agent: stopped; every fault reverted");
    } else {
        eprintln!("faultline agent: stopped; {failures} reverts left residue (logged above)");
    }
    served
}

/// An exclusive lock on the state directory, held while the agent runs: two agents sharing a
/// journal would sweep each other's faults.
pub(crate) fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd as _;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "--state-dir {}: another agent uses it",
            dir.display()
        ));
    }
    Ok(file)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/faults", get(list).post(create).delete(revert_all))
        .route("/v1/faults/{id}", get(get_one).delete(revert_one))
        .route("/v1/faults/{id}/renew", post(renew))
        .route("/v1/targets", get(targets))
        .route("/v1/crashes", get(crashes))
        .route("/v1/crashes/{name}", get(crash_file))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// The answers the HTTP layer writes itself (405 for a method a path does not take, 413 for a
/// body past the limit) get the API's JSON error body too, so every error reads the same.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this path does not take that method".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {MAX_BODY} bytes")
        }
        other => other
            .canonical_reason()
            .unwrap_or("request refused")
            .to_ascii_lowercase(),
    };
    let mut answer = error(status, message);
    if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
        answer
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    answer
}

async fn serve(
    listen: AgentAddr,
    tls: Option<crate::tls::ServerTls>,
    state: AppState,
) -> Result<(), String> {
    let app = router(state);
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        eprintln!("faultline agent: shutting down, reverting every fault");
    };
    match listen {
        AgentAddr::Unix(path) => {
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    return Err(format!("{}: another agent is listening", path.display()));
                }
                let _ = std::fs::remove_file(&path);
            }
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // Owner-only from the start: no window in which others could connect.
            // SAFETY: umask only changes this process's file-creation mask.
            let old = unsafe { libc::umask(0o177) };
            let listener = tokio::net::UnixListener::bind(&path);
            // SAFETY: as above, restoring it.
            unsafe { libc::umask(old) };
            let listener = listener.map_err(|e| format!("listen on {}: {e}", path.display()))?;
            eprintln!("faultline agent: listening on unix:{}", path.display());
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        AgentAddr::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("listen on {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            match tls {
                Some(tls) => {
                    let mutual = if tls.client_ca.is_some() {
                        ", client certificates required"
                    } else {
                        ""
                    };
                    let listener = crate::tls::TlsListener::new(listener, tls)?;
                    eprintln!("faultline agent: listening on tcp:{bound} (TLS{mutual})");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .map_err(|e| e.to_string())
                }
                None => {
                    eprintln!("faultline agent: listening on tcp:{bound} (plaintext, loopback)");
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .map_err(|e| e.to_string())
                }
            }
        }
    }
}

async fn auth(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    use subtle::ConstantTimeEq as _;
    if let Some(token) = &state.token
        && request.uri().path() != "/healthz"
    {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let ok: bool = given.as_bytes().ct_eq(token.as_bytes()).into();
        if !ok {
            return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        }
    }
    next.run(request).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        Refusal::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
        Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        Refusal::Conflict(m) => error(StatusCode::CONFLICT, m),
        Refusal::Failed(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// Sends a command to the holder and waits for its answer (the holder may be applying a
/// fault, which takes milliseconds; it never waits on the network, and kills with a grace
/// period run on threads of their own).
async fn ask<T>(state: &AppState, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    state.commands.send(make(reply)).ok()?;
    answer.await.ok()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down",
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.counters.render(),
    )
        .into_response()
}

async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    let mut de = serde_json::Deserializer::from_slice(&body);
    let request: CreateFault = match serde_path_to_error::deserialize(&mut de) {
        Ok(request) => request,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return error(
                StatusCode::BAD_REQUEST,
                format!("request body: {path}: {inner}"),
            );
        }
    };
    match ask(&state, |reply| Command::Create(Box::new(request), reply)).await {
        Some(Ok(view)) => (StatusCode::CREATED, axum::Json(view)).into_response(),
        Some(Err(r)) => refusal(r),
        None => unavailable(),
    }
}

async fn list(State(state): State<AppState>) -> Response {
    match ask(&state, Command::List).await {
        Some(views) => axum::Json(views).into_response(),
        None => unavailable(),
    }
}

async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match ask(&state, |reply| Command::Get(id.clone(), reply)).await {
        Some(Some(view)) => axum::Json(view).into_response(),
        Some(None) => error(StatusCode::NOT_FOUND, format!("no fault {id}")),
        None => unavailable(),
    }
}

async fn revert_one(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match ask(&state, |reply| Command::Revert(id.clone(), reply)).await {
        Some(Some(view)) => axum::Json(view).into_response(),
        Some(None) => error(StatusCode::NOT_FOUND, format!("no fault {id}")),
        None => unavailable(),
    }
}

async fn revert_all(State(state): State<AppState>) -> Response {
    match ask(&state, Command::RevertAll).await {
        Some(views) => axum::Json(views).into_response(),
        None => unavailable(),
    }
}

async fn renew(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match ask(&state, |reply| Command::Renew(id, reply)).await {
        Some(Ok(view)) => axum::Json(view).into_response(),
        Some(Err(r)) => refusal(r),
        None => unavailable(),
    }
}

/// `GET /v1/targets`: the processes on this machine, with their network namespace and
/// cgroups (read from /proc when asked; processes that vanish meanwhile are left out).
fn no_crash_dir() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this agent catches no cores (start it with --catch-cores DIR)",
    )
}

/// The small cores and minidumps the core handler kept, oldest first.
async fn crashes(State(state): State<AppState>) -> Response {
    let Some(dir) = state.crash_dir.clone() else {
        return no_crash_dir();
    };
    match tokio::task::spawn_blocking(move || crate::cores::list(&dir)).await {
        Ok(files) => axum::Json(files).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// One of them, as it is on disk.
async fn crash_file(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(dir) = state.crash_dir.clone() else {
        return no_crash_dir();
    };
    if !crate::cores::is_crash_file(&name) {
        return error(
            StatusCode::NOT_FOUND,
            format!("{name:?} is not a file the core handler writes"),
        );
    }
    let path = dir.join(&name);
    let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
    let read = match read {
        Ok(read) => read,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match read {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, format!("no crash {name:?}"))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {e}")),
    }
}

async fn targets() -> Response {
    let listed = tokio::task::spawn_blocking(crate::list_targets).await;
    match listed {
        Ok(views) => axum::Json(views).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
