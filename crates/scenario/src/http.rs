//! A small blocking HTTP/1.1 GET, for probes and dump scrapes.
//!
//! Its own because the socket must be opened on the calling thread: probes of a lab run on a
//! thread that entered the lab's network namespace, and a client with its own connection
//! threads (reqwest's blocking client) would open sockets in the wrong namespace. Plain HTTP
//! only; bodies may be `Content-Length`, chunked or read to close, and are size-limited.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (without brackets).
    pub host: String,
    /// Port (80 by default).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses a plain-HTTP URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "only http:// URLs can be probed".to_string())?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let (host, after) = stripped
                .split_once(']')
                .ok_or_else(|| "unclosed [ in the address".to_string())?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?,
            None => 80,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// An HTTP response: status and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// GETs `path` from `addr` (sending `host` as the Host header), all within `timeout`; the
/// body may be at most `max_body` bytes.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
    max_body: usize,
) -> std::io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left()?)?;
    stream.set_write_timeout(Some(left()?))?;
    // One write: a server that answers after its first read must see the whole request.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: faultline/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(Deadlined { stream, deadline });
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("not an HTTP status line: {:?}", line.trim_end())))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("the connection closed inside the headers".into()));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let too_big = || bad(format!("the body is larger than {max_body} bytes"));
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("bad chunk size {:?}", line.trim())))?;
            if size == 0 {
                break;
            }
            if body.len() + size > max_body {
                return Err(too_big());
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = length {
        if length > max_body {
            return Err(too_big());
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.take(max_body as u64 + 1).read_to_end(&mut body)?;
        if body.len() > max_body {
            return Err(too_big());
        }
    }
    Ok(Response { status, body })
}

fn bad(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// A stream whose every read must finish by one deadline.
struct Deadlined {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls_name_a_host_a_port_and_a_path() {
        let u = Url::parse("http://checkout:8080/health?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("checkout", 8080, "/health?x=1")
        );
        let u = Url::parse("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://x:0/").is_err());
        assert!(Url::parse("http://:80/").is_err());
    }

    fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(reply).unwrap();
        });
        addr
    }

    #[test]
    fn chunked_length_and_close_delimited_bodies_are_read() {
        let cases: [(&[u8], &[u8]); 3] = [
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", b"busy"),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"until close"),
        ];
        for (reply, body) in cases {
            let addr = serve_once(reply);
            let r = get(addr, "x", "/", Duration::from_secs(5), 1024).unwrap();
            assert_eq!(r.body, body);
        }
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n");
        let err = get(addr, "x", "/", Duration::from_secs(5), 1024).unwrap_err();
        assert!(err.to_string().contains("larger than 1024"), "{err}");
    }
}
