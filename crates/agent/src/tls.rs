//! TLS on the agent's TCP API, both sides, with rustls (the aws-lc-rs provider, as kube's).
//!
//! The agent ([`ServerTls`]) presents its certificate and, given a client CA, demands a client
//! certificate signed by it (mutual TLS). Its files are read again when they change (checked
//! at each connection), so a rotated certificate takes effect without a restart; a change that
//! does not load is said on stderr and the last good configuration kept. A client that speaks
//! plain HTTP to it gets a plain `400` naming what to give, not a handshake error.
//!
//! The client ([`ClientTls`]) checks the agent's certificate against `--ca` and the name
//! [`AGENT_NAME`] (or one given): a pod IP changes with every pod, a name in the certificate
//! does not, so an agent reached by IP is still checked by name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The name every agent certificate carries (`faultline certs init` puts it in), which the
/// client checks when no other is given.
pub const AGENT_NAME: &str = "faultline-agent";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(what: &str, path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "{what} {}: {e} (expected a PEM private key)",
            path.display()
        )
    })
}

fn roots(what: &str, path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(what, path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The agent's side: its certificate and key, and the CA its clients' certificates must be
/// signed by (mutual TLS), if any.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// `--tls-cert`: the agent's certificate chain (PEM).
    pub cert: PathBuf,
    /// `--tls-key`: its private key (PEM).
    pub key: PathBuf,
    /// `--client-ca`: clients must present a certificate this CA signed.
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// The rustls configuration the files give now.
    pub fn config(&self) -> Result<Arc<ServerConfig>, String> {
        let certs = read_certs("--tls-cert", &self.cert)?;
        let key = read_key("--tls-key", &self.key)?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca {
            Some(ca) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots("--client-ca", ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| format!("--client-ca {}: {e}", ca.display()))?,
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            format!(
                "--tls-cert {} and --tls-key {}: {e}",
                self.cert.display(),
                self.key.display()
            )
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// When each file last changed, to tell a rotation.
    fn stamp(&self) -> Vec<Option<SystemTime>> {
        std::iter::once(&self.cert)
            .chain(std::iter::once(&self.key))
            .chain(self.client_ca.iter())
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

/// The client's side: the CA that signed the agent's certificate, and the client's own
/// certificate and key for an agent that demands one.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// `--ca`.
    pub ca: PathBuf,
    /// `--cert` and `--key`, both or neither.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the agent's certificate must carry ([`AGENT_NAME`] by default).
    pub server_name: String,
}

impl ClientTls {
    /// The rustls configuration and the name to check.
    pub fn config(&self) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots("--ca", &self.ca)?);
        let config = match &self.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(read_certs("--cert", cert)?, read_key("--key", key)?)
                .map_err(|e| {
                    format!("--cert {} and --key {}: {e}", cert.display(), key.display())
                })?,
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from(self.server_name.clone())
            .map_err(|e| format!("the agent's name {:?}: {e}", self.server_name))?;
        Ok((Arc::new(config), name))
    }
}

/// A TCP listener that speaks TLS, reloading its files when they change.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    tls: ServerTls,
    stamp: Vec<Option<SystemTime>>,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, tls: ServerTls) -> Result<Self, String> {
        let stamp = tls.stamp();
        let acceptor = TlsAcceptor::from(tls.config()?);
        Ok(Self {
            tcp,
            tls,
            stamp,
            acceptor,
        })
    }

    fn reload_if_changed(&mut self) {
        let stamp = self.tls.stamp();
        if stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        match self.tls.config() {
            Ok(config) => {
                self.acceptor = TlsAcceptor::from(config);
                eprintln!("faultline agent: TLS certificates reloaded");
            }
            Err(e) => eprintln!(
                "faultline agent: TLS certificates changed but do not load, the old ones kept: {e}"
            ),
        }
    }
}

/// How long a client has to finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// Whether the first bytes of a connection are a plaintext HTTP request (not a TLS record,
/// which starts with 0x16).
fn looks_like_http(head: &[u8]) -> bool {
    [
        &b"GET "[..],
        b"POST",
        b"PUT ",
        b"DELE",
        b"HEAD",
        b"PATC",
        b"OPTI",
    ]
    .iter()
    .any(|m| head.starts_with(m))
}

async fn refuse_plaintext(mut tcp: TcpStream) {
    let body = r#"{"error":"this agent speaks TLS: give the client --ca (and --cert and --key if the agent demands a client certificate)"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            self.reload_if_changed();
            let _ = tcp.set_nodelay(true);
            let mut head = [0u8; 4];
            match tokio::time::timeout(HANDSHAKE, tcp.peek(&mut head)).await {
                Ok(Ok(n)) if looks_like_http(&head[..n]) => {
                    eprintln!(
                        "faultline agent: refused a plaintext HTTP request from {addr}: this \
                         listener speaks TLS"
                    );
                    tokio::spawn(refuse_plaintext(tcp));
                    continue;
                }
                // Connected and closed, saying nothing: a TCP probe (a kubelet's).
                Ok(Ok(0)) => continue,
                Ok(Ok(_)) => {}
                _ => continue,
            }
            match tokio::time::timeout(HANDSHAKE, self.acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => return (stream, addr),
                Ok(Err(e)) => {
                    eprintln!("faultline agent: refused a TLS connection from {addr}: {e}");
                }
                Err(_) => eprintln!(
                    "faultline agent: refused a TLS connection from {addr}: no handshake within \
                     {}s",
                    HANDSHAKE.as_secs()
                ),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
