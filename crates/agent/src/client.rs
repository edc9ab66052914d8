//! A small blocking HTTP/1.1 client for the agent's API, over a unix socket or TCP: one
//! request per connection (`Connection: close`), bodies as JSON.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::spec::{CreateFault, ErrorBody, FaultView};

/// Where an agent listens: `unix:PATH` or `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAddr {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl AgentAddr {
    /// The local agent's default socket.
    pub const DEFAULT_SOCKET: &'static str = "/run/faultline/agent.sock";
}

impl FromStr for AgentAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path (unix:/run/faultline/agent.sock)".into());
            }
            return Ok(AgentAddr::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = s.strip_prefix("tcp:") {
            return addr
                .parse()
                .map(AgentAddr::Tcp)
                .map_err(|_| format!("tcp:{addr}: expected tcp:IP:PORT (tcp:127.0.0.1:7070)"));
        }
        Err(format!("{s:?}: expected unix:PATH or tcp:IP:PORT"))
    }
}

impl std::fmt::Display for AgentAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            AgentAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// A client of one agent.
#[derive(Debug, Clone)]
pub struct Client {
    addr: AgentAddr,
    token: Option<String>,
    timeout: Duration,
    /// TLS to a TCP agent: the configuration and the name its certificate must carry.
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

/// How a client proves itself to agents and checks them: the bearer token, and TLS (the CA,
/// the client's certificate) for TCP agents. One set for many agents (the nodes of a
/// cluster).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The bearer token.
    pub token: Option<String>,
    tls: Option<(
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl Credentials {
    /// `token`, and TLS as `tls` says (its files read now).
    pub fn new(token: Option<String>, tls: Option<&crate::tls::ClientTls>) -> Result<Self, String> {
        Ok(Self {
            token,
            tls: tls.map(crate::tls::ClientTls::config).transpose()?,
        })
    }

    /// Whether TCP agents are spoken to over TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A client of the agent at `addr` with these credentials.
    pub fn client(&self, addr: AgentAddr) -> Client {
        Client {
            tls: self.tls.clone(),
            ..Client::new(addr, self.token.clone())
        }
    }
}

/// What a request came to.
#[derive(Debug)]
pub enum ClientError {
    /// The agent could not be reached or answered nonsense.
    Transport(String),
    /// The agent answered with an error status and message.
    Status(u16, String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Transport(m) => write!(f, "{m}"),
            ClientError::Status(code, m) => write!(f, "the agent answered {code}: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

trait Stream: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Stream for T {}

impl Client {
    /// A client of the agent at `addr`, sending `token` if given.
    pub fn new(addr: AgentAddr, token: Option<String>) -> Self {
        Self {
            addr,
            token,
            timeout: Duration::from_secs(30),
            tls: None,
        }
    }

    /// The same client speaking TLS to a TCP agent (`--ca`, and `--cert`/`--key` for an agent
    /// that demands a client certificate). A unix socket is reached as it is.
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, String> {
        self.tls = Some(tls.config()?);
        Ok(self)
    }

    /// Where it connects.
    pub fn addr(&self) -> &AgentAddr {
        &self.addr
    }

    /// Applies a fault.
    ///
    /// Retry-safe: the request goes with an idempotency key (a new one unless it names its
    /// own), and when its answer is lost (the connection broke, the agent was slow to answer)
    /// it is sent again with the same key, twice at most: the agent answers with the fault
    /// the first one made rather than making a second.
    pub fn create(&self, request: &CreateFault) -> Result<FaultView, ClientError> {
        let mut keyed = request.clone();
        if keyed.idempotency_key.is_none() {
            keyed.idempotency_key = Some(new_key());
        }
        let mut tries = 0;
        loop {
            match self.json("POST", "/v1/faults", Some(&keyed)) {
                Err(ClientError::Transport(_)) if tries < 2 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100 * tries));
                }
                answer => return answer,
            }
        }
    }

    /// Every fault the agent knows.
    pub fn list(&self) -> Result<Vec<FaultView>, ClientError> {
        self.json::<(), _>("GET", "/v1/faults", None)
    }

    /// Renews a fault's lease.
    pub fn renew(&self, id: &str) -> Result<FaultView, ClientError> {
        self.json::<(), _>("POST", &format!("/v1/faults/{id}/renew"), None)
    }

    /// Reverts a fault now.
    pub fn revert(&self, id: &str) -> Result<FaultView, ClientError> {
        self.json::<(), _>("DELETE", &format!("/v1/faults/{id}"), None)
    }

    /// The processes the agent could fault.
    pub fn targets(&self) -> Result<Vec<crate::spec::TargetView>, ClientError> {
        self.json::<(), _>("GET", "/v1/targets", None)
    }

    /// Reverts every fault.
    pub fn revert_all(&self) -> Result<Vec<FaultView>, ClientError> {
        self.json::<(), _>("DELETE", "/v1/faults", None)
    }

    fn json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let (status, bytes) = self.request(method, path, body.as_deref())?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(ClientError::Status(status, message));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Transport(format!("the agent's answer is not what was expected: {e}"))
        })
    }

    /// The crashes the agent's core handler kept (`--catch-cores`), oldest first.
    pub fn crashes(&self) -> Result<Vec<crate::cores::CrashFile>, ClientError> {
        self.json::<(), _>("GET", "/v1/crashes", None)
    }

    /// One of them, its bytes.
    pub fn crash(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        let (status, bytes) = self.request("GET", &format!("/v1/crashes/{name}"), None)?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(ClientError::Status(status, message));
        }
        Ok(bytes)
    }

    /// Copies into `dir` every crash the agent kept that `dir` does not hold yet (by name and
    /// size), each written whole or not at all. Returns how many were copied.
    pub fn mirror_crashes(&self, dir: &std::path::Path) -> Result<usize, ClientError> {
        let listed = self.crashes()?;
        let local = |e: std::io::Error| ClientError::Transport(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(local)?;
        let mut copied = 0;
        for file in listed {
            let to = dir.join(&file.name);
            if std::fs::metadata(&to).is_ok_and(|m| m.len() == file.size) {
                continue;
            }
            let bytes = self.crash(&file.name)?;
            let tmp = dir.join(format!(".{}.tmp", file.name));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &to))
                .map_err(local)?;
            copied += 1;
        }
        Ok(copied)
    }

    /// One raw request: the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let transport = |e: std::io::Error| ClientError::Transport(format!("{}: {e}", self.addr));
        let mut stream: Box<dyn Stream> = match &self.addr {
            AgentAddr::Unix(path) => {
                let s = std::os::unix::net::UnixStream::connect(path).map_err(transport)?;
                s.set_read_timeout(Some(self.timeout)).map_err(transport)?;
                Box::new(s)
            }
            AgentAddr::Tcp(addr) => {
                if self.tls.is_none() && self.token.is_some() && !addr.ip().is_loopback() {
                    return Err(ClientError::Transport(format!(
                        "{}: refusing to send the token in plain text to a non-loopback \
                         address: give --ca (the agent's CA) to speak TLS",
                        self.addr
                    )));
                }
                let s = std::net::TcpStream::connect_timeout(addr, Duration::from_secs(5))
                    .map_err(transport)?;
                s.set_read_timeout(Some(self.timeout)).map_err(transport)?;
                // A request is one write; without this, a small second segment waits for the
                // peer's delayed ACK (40 ms).
                s.set_nodelay(true).map_err(transport)?;
                match &self.tls {
                    Some((config, name)) => {
                        let connection =
                            rustls::ClientConnection::new(config.clone(), name.clone()).map_err(
                                |e| ClientError::Transport(format!("{}: TLS: {e}", self.addr)),
                            )?;
                        Box::new(rustls::StreamOwned::new(connection, s))
                    }
                    None => Box::new(s),
                }
            }
        };
        let transport = |e: std::io::Error| ClientError::Transport(self.explain(e));
        let body = body.unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: faultline-agent\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).map_err(transport)?;
        stream.flush().map_err(transport)?;
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw) {
            Ok(_) => {}
            // A TLS peer that closed without its close_notify, after a whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(transport(e)),
        }
        parse_response(&raw)
            .ok_or_else(|| ClientError::Transport(format!("{}: not an HTTP response", self.addr)))
    }
}

impl Client {
    /// An I/O error of a request, said with what it likely means when TLS is involved.
    fn explain(&self, e: std::io::Error) -> String {
        let text = e.to_string();
        if self.tls.is_none() {
            return format!("{}: {text}", self.addr);
        }
        let hint = match () {
            _ if text.contains("CertificateRequired") || text.contains("certificate required") => {
                " (the agent demands a client certificate: give --cert and --key)"
            }
            _ if text.contains("invalid peer certificate: UnknownIssuer")
                || text.contains("invalid peer certificate: BadSignature") =>
            {
                " (the agent's certificate is not signed by --ca)"
            }
            _ if text.contains("Expired") || text.contains("expired") => {
                " (a certificate has expired)"
            }
            _ if text.contains("NotValidForName") => {
                " (the agent's certificate does not carry the name checked: faultline-agent, or --tls-server-name)"
            }
            _ if text.contains("BadCertificate")
                || text.contains("UnknownCA")
                || text.contains("DecryptError") =>
            {
                " (the agent does not accept this client certificate: is it signed by the agent's --client-ca?)"
            }
            _ if text.contains("InvalidContentType") || text.contains("corrupt message") => {
                " (is the agent speaking TLS? a plaintext agent answers in the clear)"
            }
            _ => "",
        };
        format!("{}: TLS: {text}{hint}", self.addr)
    }
}

/// A new idempotency key: 128 random bits in hex (from the kernel), or, should
/// `/dev/urandom` be unreadable, this process's id, the time and a counter.
fn new_key() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return bytes.iter().map(|b| format!("{b:02x}")).collect();
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{nanos:x}-{n:x}", std::process::id())
}

/// The status and body of an HTTP/1.1 response (identity or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let body = &raw[end + 4..];
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            "unix:/run/f.sock".parse::<AgentAddr>().unwrap(),
            AgentAddr::Unix("/run/f.sock".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:7070".parse::<AgentAddr>().unwrap(),
            AgentAddr::Tcp("127.0.0.1:7070".parse().unwrap())
        );
        assert!("127.0.0.1:7070".parse::<AgentAddr>().is_err());
        assert!("tcp:localhost".parse::<AgentAddr>().is_err());
        assert!("unix:".parse::<AgentAddr>().is_err());
    }

    #[test]
    fn responses() {
        assert_eq!(
            parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}"),
            Some((201, b"{}".to_vec()))
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            ),
            Some((200, b"abcde".to_vec()))
        );
        assert_eq!(parse_response(b"garbage"), None);
    }
}
