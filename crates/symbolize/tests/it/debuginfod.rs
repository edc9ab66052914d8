//! The debuginfod client against a real elfutils `debuginfod` (served files, 404s, a server
//! that goes away) and against a hand-rolled loopback HTTP server for the misbehaviours a real
//! server does not produce (wrong file, oversized file, 500, a server that never answers).
//!
//! Fixtures are built here: a tiny C program compiled by gcc with a fixed `--build-id`, split
//! with `objcopy --only-keep-debug`. The debuginfod harness is the workspace's shared one
//! (`faultline_tests::DebuginfodServer`): every process started is killed and reaped by a guard,
//! by its own PID, even when an assertion fails.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use faultline_symbolize::debuginfod::{DebuginfodClient, DebuginfodOptions, Fetched, parse_urls};
use faultline_symbolize::{BuildId, elf};
use faultline_tests::{CProgram, DebuginfodServer, split_debug};

/// Build-ids forced with `-Wl,--build-id=0x…`, so expectations do not depend on our own parser.
const ID_HELLO: &str = "f1a70000000000000000000000000000000000a1";
const ID_OTHER: &str = "f1a70000000000000000000000000000000000b2";
const ID_UNKNOWN: &str = "f1a70000000000000000000000000000000000c3";

fn id(hex: &str) -> BuildId {
    BuildId::from_hex(hex).unwrap()
}

fn options(cache_dir: &Path) -> DebuginfodOptions {
    DebuginfodOptions {
        timeout: Duration::from_secs(10),
        cache_dir: cache_dir.to_owned(),
        negative_ttl: Duration::from_secs(600),
    }
}

/// Compiles a tiny C program with debug info and the given build-id; returns the binary.
fn compile(dir: &Path, name: &str, build_id: &str) -> PathBuf {
    let source = format!(
        "#include <stdio.h>\n\
         static int {name}_helper(int x) {{ return x * 3 + 1; }}\n\
         int main(int argc, char **argv) {{ (void)argv; printf(\"%d\\n\", {name}_helper(argc)); return 0; }}\n"
    );
    CProgram::new(name, &source, build_id).compile(dir)
}

/// A loopback port that refuses connections: bound once to get a number, then released.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the fake server answers to every request.
#[derive(Clone)]
enum Reply {
    /// `200 OK` with `body`, with or without a `Content-Length` (without: body ends at close).
    Ok { body: Vec<u8>, declare_length: bool },
    /// A bare status line and an empty body.
    Status(&'static str),
    /// Accept the connection and never answer.
    Hang,
}

/// A one-thread HTTP server on 127.0.0.1 answering every request with the same [`Reply`],
/// recording request heads. Stopped and joined on drop.
struct FakeServer {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Non-blocking accept so the thread can notice `stop` without a wake-up connection.
        listener.set_nonblocking(true).unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (heads, stop) = (Arc::clone(&heads), Arc::clone(&stop));
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &reply, &heads, &stop),
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        Self {
            port,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    /// The request heads received so far, lowercased.
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, reply: &Reply, heads: &Mutex<Vec<String>>, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).to_lowercase());
    match reply {
        Reply::Ok {
            body,
            declare_length,
        } => {
            let length = if *declare_length {
                format!("Content-Length: {}\r\n", body.len())
            } else {
                String::new()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n"
            );
            let _ = stream.write_all(body);
        }
        Reply::Status(status) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Reply::Hang => {
            // Hold the connection open until the client gives up (closes) or the test ends.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
            while !stop.load(Ordering::SeqCst) {
                match stream.read(&mut byte) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Files (not directories) under `dir`, relative, sorted: what the cache holds.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn not_found_reason(fetched: Fetched) -> String {
    match fetched {
        Fetched::NotFound { reason } => reason,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn fetches_from_real_debuginfod_then_serves_from_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let cache = tmp.path().join("cache");
    fs::create_dir(&served).unwrap();
    let bin = compile(tmp.path(), "hello", ID_HELLO);
    split_debug(&bin, &served.join("hello.debug"));

    let mut server = DebuginfodServer::start(&served);
    server.wait_until_served(ID_HELLO);

    // Configured as a user would: a DEBUGINFOD_URLS value. The first server is down, so this
    // also checks that a dead server is skipped, not fatal.
    let urls = parse_urls(&format!(
        "http://127.0.0.1:{}  {}/",
        closed_port(),
        server.url()
    ));
    let client = DebuginfodClient::new(urls.clone(), options(&cache));
    let expected_path = cache.join(ID_HELLO).join("debuginfo");
    match client.fetch_debuginfo(&id(ID_HELLO)).unwrap() {
        Fetched::Found { path, from_cache } => {
            assert!(!from_cache);
            assert_eq!(path, expected_path);
            let identity = elf::identity(&path).unwrap();
            assert_eq!(identity.build_id, Some(id(ID_HELLO)));
            assert!(identity.has_dwarf, "downloaded file has no DWARF");
        }
        other => panic!("expected Found: {other:?}\n{}", server.log()),
    }
    // Only the verified file: no temp files, no miss marker.
    assert_eq!(files_under(&cache), [format!("{ID_HELLO}/debuginfo")]);

    server.stop();
    let offline = DebuginfodClient::new(urls, options(&cache));
    assert_eq!(
        offline.fetch_debuginfo(&id(ID_HELLO)).unwrap(),
        Fetched::Found {
            path: expected_path,
            from_cache: true
        }
    );
}

#[test]
fn unknown_build_id_is_remembered_as_a_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let cache = tmp.path().join("cache");
    fs::create_dir(&served).unwrap();
    let mut server = DebuginfodServer::start(&served);

    let down = format!("http://127.0.0.1:{}", closed_port());
    let urls = vec![down.clone(), server.url()];
    let client = DebuginfodClient::new(urls.clone(), options(&cache));
    let reason = not_found_reason(client.fetch_debuginfo(&id(ID_UNKNOWN)).unwrap());
    assert_eq!(
        reason,
        format!(
            "not found on {down}: connection refused; {} (404)",
            server.url()
        )
    );
    // One server said 404, so the miss is cached even though another was down.
    assert_eq!(files_under(&cache), [format!("{ID_UNKNOWN}/.miss")]);

    server.stop();
    let offline = DebuginfodClient::new(urls, options(&cache));
    let reason = not_found_reason(offline.fetch_debuginfo(&id(ID_UNKNOWN)).unwrap());
    assert!(
        reason.starts_with("not found on any debuginfod server (cached miss from "),
        "{reason}"
    );
}

#[test]
fn servers_down_leave_no_miss_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let down = format!("http://127.0.0.1:{}", closed_port());
    let client = DebuginfodClient::new(vec![down.clone()], options(&cache));

    let reason = not_found_reason(client.fetch_debuginfo(&id(ID_UNKNOWN)).unwrap());
    assert_eq!(reason, format!("not found on {down}: connection refused"));
    assert_eq!(files_under(&cache), Vec::<String>::new());

    // The same client does not ask again; it repeats what it learned.
    let again = not_found_reason(client.fetch_debuginfo(&id(ID_UNKNOWN)).unwrap());
    assert_eq!(again, reason);
}

#[test]
fn file_with_wrong_build_id_is_rejected_and_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let other = compile(tmp.path(), "other", ID_OTHER);
    let server = FakeServer::start(Reply::Ok {
        body: fs::read(&other).unwrap(),
        declare_length: true,
    });

    let client = DebuginfodClient::new(vec![format!("{}/", server.url())], options(&cache));
    let reason = not_found_reason(client.fetch_debuginfo(&id(ID_HELLO)).unwrap());
    assert_eq!(
        reason,
        format!(
            "not found on {}: server returned a file whose build-id is {ID_OTHER}, not {ID_HELLO}",
            server.url()
        )
    );
    assert_eq!(files_under(&cache), Vec::<String>::new());
    let heads = server.heads();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with(&format!("get /buildid/{ID_HELLO}/debuginfo http/1.1\r\n")),
        "{}",
        heads[0]
    );
    let user_agent = format!("user-agent: faultline/{}\r\n", env!("CARGO_PKG_VERSION"));
    assert!(heads[0].contains(&user_agent), "{}", heads[0]);

    // Asked at most once per build-id per client; a misbehaving server is not a cached miss,
    // so a new client asks again.
    assert_eq!(
        not_found_reason(client.fetch_debuginfo(&id(ID_HELLO)).unwrap()),
        reason
    );
    assert_eq!(server.requests(), 1);
    let fresh = DebuginfodClient::new(vec![server.url()], options(&cache));
    assert_eq!(
        not_found_reason(fresh.fetch_debuginfo(&id(ID_HELLO)).unwrap()),
        reason
    );
    assert_eq!(server.requests(), 2);
}

#[test]
fn not_elf_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let server = FakeServer::start(Reply::Ok {
        body: b"<html>login required</html>".to_vec(),
        declare_length: true,
    });
    let client = DebuginfodClient::new(vec![server.url()], options(&cache));
    let reason = not_found_reason(client.fetch_debuginfo(&id(ID_HELLO)).unwrap());
    assert!(
        reason.starts_with(&format!(
            "not found on {}: server returned a file that is not a valid ELF file",
            server.url()
        )),
        "{reason}"
    );
    assert_eq!(files_under(&cache), Vec::<String>::new());
}

#[test]
fn download_size_is_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = compile(tmp.path(), "hello", ID_HELLO);
    let body = fs::read(&bin).unwrap();
    let len = body.len() as u64;

    for declare_length in [true, false] {
        let cache = tmp.path().join(format!("cache-{declare_length}"));
        let server = FakeServer::start(Reply::Ok {
            body: body.clone(),
            declare_length,
        });

        let small = DebuginfodClient::new(vec![server.url()], options(&cache))
            .with_max_download_size(len - 1);
        let reason = not_found_reason(small.fetch_debuginfo(&id(ID_HELLO)).unwrap());
        assert!(
            reason.contains("over the download limit (") && reason.contains(&server.url()),
            "declare_length={declare_length}: {reason}"
        );
        assert_eq!(files_under(&cache), Vec::<String>::new());

        // At exactly the limit the same server's answer is accepted: the fake server and the
        // length-less (read until close) path both work.
        let exact =
            DebuginfodClient::new(vec![server.url()], options(&cache)).with_max_download_size(len);
        assert_eq!(
            exact.fetch_debuginfo(&id(ID_HELLO)).unwrap(),
            Fetched::Found {
                path: cache.join(ID_HELLO).join("debuginfo"),
                from_cache: false
            },
            "declare_length={declare_length}"
        );
    }
}

#[test]
fn server_errors_and_timeouts_are_reasons_not_misses() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let broken = FakeServer::start(Reply::Status("500 Internal Server Error"));
    let hanging = FakeServer::start(Reply::Hang);
    let client = DebuginfodClient::new(
        vec![broken.url(), hanging.url()],
        DebuginfodOptions {
            timeout: Duration::from_secs(1),
            ..options(&cache)
        },
    );
    let reason = not_found_reason(client.fetch_debuginfo(&id(ID_HELLO)).unwrap());
    assert_eq!(
        reason,
        format!(
            "not found on {}: HTTP 500 Internal Server Error; {}: timed out after 1 s",
            broken.url(),
            hanging.url()
        )
    );
    assert_eq!(files_under(&cache), Vec::<String>::new());
}

#[test]
fn concurrent_lookups_of_one_build_id_download_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let bin = compile(tmp.path(), "hello", ID_HELLO);
    let server = FakeServer::start(Reply::Ok {
        body: fs::read(&bin).unwrap(),
        declare_length: true,
    });
    let client = DebuginfodClient::new(vec![server.url()], options(&cache));
    let results: Vec<Fetched> = thread::scope(|scope| {
        let lookups: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| client.fetch_debuginfo(&id(ID_HELLO)).unwrap()))
            .collect();
        lookups.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let path = cache.join(ID_HELLO).join("debuginfo");
    let downloaded = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Fetched::Found {
                    from_cache: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(downloaded, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Fetched::Found { path: p, .. } if *p == path)),
        "{results:?}"
    );
    assert_eq!(server.requests(), 1);
}
