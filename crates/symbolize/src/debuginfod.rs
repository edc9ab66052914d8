//! A synchronous debuginfod client: fetches a debug file by GNU build-id from the servers named
//! in `DEBUGINFOD_URLS`, with an on-disk cache shaped like elfutils' client cache.
//!
//! The protocol is one GET per server, `{url}/buildid/{hex}/debuginfo`; the first `200` wins
//! and a `404` means "ask the next server". What comes back is verified before it is kept: a
//! file whose GNU build-id is not the one asked for is deleted and counts as "not found" on
//! that server, so a misconfigured or malicious server cannot make us symbolize with the wrong
//! debug info.
//!
//! Cache layout under [`DebuginfodOptions::cache_dir`]:
//! - `{hex}/debuginfo`: a verified debug file. A hit is answered without touching the network.
//! - `{hex}/.miss`: empty marker whose mtime says when every server answered "not found". While
//!   it is younger than [`DebuginfodOptions::negative_ttl`] the lookup is answered from it.
//!
//! Everything here blocks. `reqwest::blocking` runs its own runtime thread and must not be
//! driven from inside an async executor: call [`DebuginfodClient::fetch_debuginfo`] from a plain
//! thread or `spawn_blocking`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use faultline_record::BuildId;

use crate::elf::ElfIdentity;
use crate::{Error, Result};

/// Default for [`DebuginfodOptions::timeout`] when `DEBUGINFOD_TIMEOUT` is unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`DebuginfodOptions::negative_ttl`]: elfutils' `cache_miss_s` default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(600);
/// Default cap on one download; see [`DebuginfodClient::with_max_download_size`].
pub const DEFAULT_MAX_DOWNLOAD_SIZE: u64 = 4 << 30;

/// Name of the positive cache entry inside `{cache_dir}/{hex}/`.
const DEBUGINFO_FILE: &str = "debuginfo";
/// Name of the negative cache marker inside `{cache_dir}/{hex}/`.
const MISS_MARKER: &str = ".miss";
/// The `User-Agent` sent with every request, so server operators can tell who is asking.
const USER_AGENT: &str = concat!("faultline/", env!("CARGO_PKG_VERSION"));

/// How a [`DebuginfodClient`] talks to servers and where it caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebuginfodOptions {
    /// Bound on connecting, on waiting for the response headers, and on each wait for more of
    /// the body (a stalled transfer fails; a slow but moving one does not). Zero means no
    /// timeout, as `DEBUGINFOD_TIMEOUT=0` does for elfutils.
    pub timeout: Duration,
    /// Root of the cache; entries live in `{cache_dir}/{hex}/`.
    pub cache_dir: PathBuf,
    /// How long a recorded miss is trusted before the servers are asked again. Zero disables
    /// reading misses from the cache.
    pub negative_ttl: Duration,
}

impl DebuginfodOptions {
    /// Options from the environment:
    /// - `timeout`: `DEBUGINFOD_TIMEOUT` in whole seconds (elfutils' variable), default 10 s;
    /// - `cache_dir`: `$FAULTLINE_CACHE_DIR`, else `$XDG_CACHE_HOME/faultline/debuginfod`, else
    ///   `$HOME/.cache/faultline/debuginfod`, else `faultline-debuginfod` in the temp directory;
    /// - `negative_ttl`: `FAULTLINE_DEBUGINFOD_NEGATIVE_TTL` in whole seconds, default 600 s.
    ///
    /// A value that is not a whole number of seconds is ignored and the default used: a typo in
    /// the environment should not stop symbolization.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// [`Self::from_env`] over any variable lookup, so the rules can be tested without touching
    /// the process environment.
    fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Self {
        // Empty values count as unset, as shells make `VAR=` easy to write by accident.
        let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
        let seconds = |name: &str| {
            non_empty(name)
                .and_then(|v| v.to_str().and_then(|s| s.trim().parse::<u64>().ok()))
                .map(Duration::from_secs)
        };
        let cache_dir = if let Some(dir) = non_empty("FAULTLINE_CACHE_DIR") {
            PathBuf::from(dir)
        } else if let Some(xdg) = non_empty("XDG_CACHE_HOME")
            .map(PathBuf::from)
            // The XDG spec says relative values are invalid and must be ignored.
            .filter(|p| p.is_absolute())
        {
            xdg.join("faultline").join("debuginfod")
        } else if let Some(home) = non_empty("HOME") {
            PathBuf::from(home)
                .join(".cache")
                .join("faultline")
                .join("debuginfod")
        } else {
            // No home at all (a bare container): still cache somewhere rather than refetch
            // every time. Entries are verified by build-id on every hit, so a shared directory
            // cannot feed us a file for the wrong binary.
            std::env::temp_dir().join("faultline-debuginfod")
        };
        Self {
            timeout: seconds("DEBUGINFOD_TIMEOUT").unwrap_or(DEFAULT_TIMEOUT),
            cache_dir,
            negative_ttl: seconds("FAULTLINE_DEBUGINFOD_NEGATIVE_TTL")
                .unwrap_or(DEFAULT_NEGATIVE_TTL),
        }
    }
}

/// The outcome of a lookup. Not finding a file is a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A debug file whose GNU build-id matches the one asked for.
    Found {
        /// The file, inside the cache directory.
        path: PathBuf,
        /// True when no server was asked because the cache already had it.
        from_cache: bool,
    },
    /// No server had a matching file.
    NotFound {
        /// What each server said, for a human: `not found on http://a (404); http://b:
        /// connection refused`.
        reason: String,
    },
}

/// Splits a `DEBUGINFOD_URLS` value into server URLs, with elfutils' semantics: URLs are
/// separated by whitespace, and a URL listed twice is asked once. elfutils ≥ 0.190 also
/// accepts `ima:<policy>` tokens that set a signature policy for the URLs after them; we do
/// not verify IMA signatures, so those tokens are skipped rather than treated as servers.
pub fn parse_urls(value: &str) -> Vec<String> {
    normalize_urls(
        value
            .split_ascii_whitespace()
            .filter(|token| !token.starts_with("ima:"))
            .map(str::to_owned),
    )
}

/// Trims whitespace and trailing slashes (we add our own `/buildid/...`), drops empty entries
/// and duplicates, keeping the first occurrence so the caller's order is the asking order.
fn normalize_urls(urls: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in urls {
        let url = url.trim().trim_end_matches('/');
        if !url.is_empty() && !out.iter().any(|seen| seen == url) {
            out.push(url.to_owned());
        }
    }
    out
}

/// What one server said about one build-id, remembered for the life of the client so that a
/// server is asked at most once per build-id (no retry storms against a server that is down).
#[derive(Debug, Clone)]
enum Answer {
    /// The server answered 404.
    Missing,
    /// Anything else that did not produce a file: transport error, unexpected HTTP status, a
    /// file with the wrong build-id, a file over the size limit.
    Failed(String),
}

/// One server's answer, including success, which is not remembered: the cache file is the
/// memory of a success.
enum Outcome {
    Found(PathBuf),
    Answer(Answer),
}

/// Per-build-id memory of server answers. Each build-id has its own lock so concurrent lookups
/// of the same build-id wait for each other instead of downloading twice, while different
/// build-ids proceed in parallel.
type Answers = Mutex<HashMap<BuildId, Arc<Mutex<HashMap<String, Answer>>>>>;

/// A debuginfod client with an on-disk cache. Cheap to share by reference across threads.
pub struct DebuginfodClient {
    urls: Vec<String>,
    options: DebuginfodOptions,
    max_download_size: u64,
    /// Built on first network use: a cache hit never starts reqwest's runtime thread, and
    /// constructing a client from an async context is harmless.
    http: OnceLock<std::result::Result<reqwest::blocking::Client, String>>,
    answers: Answers,
}

impl fmt::Debug for DebuginfodClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DebuginfodClient")
            .field("urls", &self.urls)
            .field("options", &self.options)
            .field("max_download_size", &self.max_download_size)
            .finish_non_exhaustive()
    }
}

impl DebuginfodClient {
    /// A client asking `urls` in order. URLs are normalized: surrounding whitespace and
    /// trailing `/` are removed, empty entries and duplicates dropped.
    pub fn new(urls: Vec<String>, options: DebuginfodOptions) -> Self {
        Self {
            urls: normalize_urls(urls),
            options,
            max_download_size: DEFAULT_MAX_DOWNLOAD_SIZE,
            http: OnceLock::new(),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// A client for the servers in `DEBUGINFOD_URLS` (see [`parse_urls`]) with
    /// [`DebuginfodOptions::from_env`], or `None` when the variable is unset or names no server:
    /// like elfutils, no configured server means debuginfod is off.
    pub fn from_env() -> Option<Self> {
        let value = std::env::var_os("DEBUGINFOD_URLS")?;
        let urls = parse_urls(&value.to_string_lossy());
        if urls.is_empty() {
            return None;
        }
        Some(Self::new(urls, DebuginfodOptions::from_env()))
    }

    /// Caps the size of one download (default [`DEFAULT_MAX_DOWNLOAD_SIZE`], 4 GiB). A larger
    /// file counts as "not found" on that server, with the reason saying so; nothing is cached.
    #[must_use]
    pub fn with_max_download_size(mut self, bytes: u64) -> Self {
        self.max_download_size = bytes;
        self
    }

    /// The servers, in the order they are asked.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The options this client was made with.
    pub fn options(&self) -> &DebuginfodOptions {
        &self.options
    }

    /// Finds the debug file for `build_id`: from the cache if present, else from the first
    /// server that has it. The returned file's GNU build-id has been checked to be `build_id`.
    ///
    /// Each server is asked at most once per build-id for the life of this client: its answer
    /// (404, transport error, bad file) is remembered and repeated, so a dead server costs one
    /// timeout per build-id, not one per frame. A miss is written to the cache only when at
    /// least one server answered 404; if every server failed, nothing is cached.
    ///
    /// Errors are local failures only (the cache directory cannot be written, the HTTP client
    /// cannot be created); whatever a server does is reported in [`Fetched::NotFound`].
    pub fn fetch_debuginfo(&self, build_id: &BuildId) -> Result<Fetched> {
        // The hex comes from `BuildId`, so it is `[0-9a-f]+` and safe as a path component.
        let hex = build_id.to_hex();
        let dir = self.options.cache_dir.join(&hex);
        let target = dir.join(DEBUGINFO_FILE);
        let marker = dir.join(MISS_MARKER);

        let slot = {
            let mut all = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(all.entry(build_id.clone()).or_default())
        };
        // Held for the whole lookup: a second thread asking for the same build-id waits here,
        // then finds the first thread's download in the cache.
        let mut answers = slot.lock().unwrap_or_else(PoisonError::into_inner);

        if let Some(path) = cached_debuginfo(&target, build_id)? {
            return Ok(Fetched::Found {
                path,
                from_cache: true,
            });
        }
        if let Some(age) = self.fresh_miss(&marker) {
            return Ok(Fetched::NotFound {
                reason: format!(
                    "not found on any debuginfod server (cached miss from {} s ago)",
                    age.as_secs()
                ),
            });
        }
        if self.urls.is_empty() {
            return Ok(Fetched::NotFound {
                reason: "no debuginfod servers configured".to_owned(),
            });
        }

        let mut parts = Vec::with_capacity(self.urls.len());
        let mut any_missing = false;
        for url in &self.urls {
            let answer = match answers.get(url) {
                Some(answer) => answer.clone(),
                None => match self.ask(url, build_id, &dir, &target)? {
                    Outcome::Found(path) => {
                        // A stale miss marker would be ignored anyway (the positive entry is
                        // checked first), but leaving it would mislead anyone reading the cache.
                        remove_if_exists(&marker);
                        return Ok(Fetched::Found {
                            path,
                            from_cache: false,
                        });
                    }
                    Outcome::Answer(answer) => {
                        answers.insert(url.clone(), answer.clone());
                        answer
                    }
                },
            };
            match answer {
                Answer::Missing => {
                    any_missing = true;
                    parts.push(format!("{url} (404)"));
                }
                Answer::Failed(why) => parts.push(format!("{url}: {why}")),
            }
        }

        // Only a real "no" is cached. If every server was unreachable the build-id may well
        // exist; caching that would hide it for `negative_ttl` after the servers come back.
        if any_missing {
            record_miss(&dir, &marker);
        }
        Ok(Fetched::NotFound {
            reason: format!("not found on {}", parts.join("; ")),
        })
    }

    /// How long ago the miss marker was written, if that is within the negative TTL.
    fn fresh_miss(&self, marker: &Path) -> Option<Duration> {
        if self.options.negative_ttl.is_zero() {
            return None;
        }
        let written = fs::metadata(marker).ok()?.modified().ok()?;
        // A marker from the future (clock change) is treated as stale: asking again costs one
        // request per server, trusting it could hide a file for a long time.
        let age = SystemTime::now().duration_since(written).ok()?;
        (age < self.options.negative_ttl).then_some(age)
    }

    fn http(&self) -> Result<&reqwest::blocking::Client> {
        let built = self.http.get_or_init(|| {
            let timeout = (!self.options.timeout.is_zero()).then_some(self.options.timeout);
            let mut builder = reqwest::blocking::Client::builder()
                .user_agent(USER_AGENT)
                .timeout(timeout);
            if let Some(timeout) = timeout {
                builder = builder.connect_timeout(timeout);
            }
            builder.build().map_err(|e| error_chain(&e))
        });
        built.as_ref().map_err(|message| Error::Debuginfod {
            url: self.urls.join(" "),
            message: format!("cannot create an HTTP client: {message}"),
        })
    }

    /// Asks one server. `Err` only for local failures; the server's behaviour is an `Outcome`.
    fn ask(&self, base: &str, build_id: &BuildId, dir: &Path, target: &Path) -> Result<Outcome> {
        let url = format!("{base}/buildid/{}/debuginfo", build_id.to_hex());
        let response = match self.http()?.get(&url).send() {
            Ok(response) => response,
            Err(e) => return Ok(failed(describe_request_error(&e, self.options.timeout))),
        };
        match response.status() {
            reqwest::StatusCode::OK => self.download(response, build_id, dir, target),
            reqwest::StatusCode::NOT_FOUND => Ok(Outcome::Answer(Answer::Missing)),
            status => Ok(failed(format!("HTTP {status}"))),
        }
    }

    /// Streams a 200 response into a temp file next to the cache entry, verifies its build-id
    /// and renames it into place. The rename is atomic, so readers (other threads, other
    /// faultline processes sharing the cache) see either no entry or a complete, verified one.
    fn download(
        &self,
        mut response: reqwest::blocking::Response,
        build_id: &BuildId,
        dir: &Path,
        target: &Path,
    ) -> Result<Outcome> {
        let limit = self.max_download_size;
        // Refuse early when the server says up front the file is too big.
        if let Some(len) = response.content_length().filter(|&len| len > limit) {
            return Ok(failed(too_big(len, limit)));
        }
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (tmp, mut file) = TempFile::create_in(dir)?;
        let io_err = |source| Error::Io {
            path: tmp.path.clone(),
            source,
        };

        let mut buf = vec![0u8; 64 * 1024];
        let mut received: u64 = 0;
        loop {
            // Read errors are the server's or the network's (reset, stall past the timeout,
            // body shorter than Content-Length); write errors are ours.
            let n = match response.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Ok(failed(format!(
                        "download failed after {received} bytes: {}",
                        describe_read_error(&e)
                    )));
                }
            };
            received = received.saturating_add(n as u64);
            // Without a (truthful) Content-Length the size is only known while reading; stop
            // as soon as the limit is passed rather than filling the disk.
            if received > limit {
                return Ok(failed(too_big(received, limit)));
            }
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(io_err)?;
        }
        // No fsync: a torn entry left by a crash fails the build-id check on the next hit and
        // is then deleted and fetched again, so durability is not worth a sync per download.
        file.flush().map_err(io_err)?;
        drop(file);

        if let Some(why) = build_id_mismatch(&tmp.path, build_id)? {
            return Ok(failed(why));
        }
        fs::rename(&tmp.path, target).map_err(|source| Error::Io {
            path: target.to_owned(),
            source,
        })?;
        tmp.persisted();
        Ok(Outcome::Found(target.to_owned()))
    }
}

fn failed(why: String) -> Outcome {
    Outcome::Answer(Answer::Failed(why))
}

fn too_big(size: u64, limit: u64) -> String {
    format!("file is over the download limit ({size} > {limit} bytes)")
}

/// Why the downloaded file at `path` is not the debug file for `build_id`, or `None` if it is.
fn build_id_mismatch(path: &Path, build_id: &BuildId) -> Result<Option<String>> {
    Ok(match crate::elf::identity(path) {
        Ok(ElfIdentity {
            build_id: Some(found),
            ..
        }) if found == *build_id => None,
        Ok(ElfIdentity {
            build_id: Some(found),
            ..
        }) => Some(format!(
            "server returned a file whose build-id is {found}, not {build_id}"
        )),
        Ok(ElfIdentity { build_id: None, .. }) => Some(format!(
            "server returned a file with no GNU build-id, not {build_id}"
        )),
        Err(Error::Object { source, .. }) => Some(format!(
            "server returned a file that is not a valid ELF file ({source})"
        )),
        // Reading our own temp file failed: a local problem, not the server's.
        Err(e) => return Err(e),
    })
}

/// The cache entry at `target` if it exists and really is the debug file for `build_id`.
///
/// Checking the build-id on every hit costs a header parse, and in exchange a truncated or
/// foreign file in the cache (crash mid-write on a filesystem without ordered renames, a
/// hand-copied file) is deleted and refetched instead of silently producing wrong symbols.
fn cached_debuginfo(target: &Path, build_id: &BuildId) -> Result<Option<PathBuf>> {
    match crate::elf::identity(target) {
        Ok(id) if id.build_id.as_ref() == Some(build_id) => Ok(Some(target.to_owned())),
        Ok(_) | Err(Error::Object { .. }) => {
            remove_if_exists(target);
            Ok(None)
        }
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes the negative marker with mtime = now. Best effort: failing to remember a miss only
/// costs a repeat request later, so it must not turn a clean "not found" into an error.
fn record_miss(dir: &Path, marker: &Path) {
    let write = || -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let file = File::create(marker)?;
        // Truncating an existing empty file does not reliably bump its mtime everywhere; the
        // mtime is the whole content of the marker, so set it explicitly.
        file.set_modified(SystemTime::now())
    };
    let _ = write();
}

fn remove_if_exists(path: &Path) {
    // Nothing useful to do on failure: the entry is re-verified (or the marker re-checked) on
    // every lookup anyway.
    let _ = fs::remove_file(path);
}

/// A temp file that is deleted on drop unless [`TempFile::persisted`] was called, so every early
/// return (mismatch, size limit, transfer error) cleans up after itself.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create_in(dir: &Path) -> Result<(Self, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            // Unique per process (pid) and per download (counter); `create_new` makes a clash
            // with a leftover from a crashed process with the same pid a retry, not a clobber.
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".debuginfo.{}.{n}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((Self { path, keep: false }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(Error::Io { path, source }),
            }
        }
    }

    fn persisted(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            remove_if_exists(&self.path);
        }
    }
}

/// A short reason for a failed request: "connection refused", "timed out after 10 s", else the
/// error's cause chain.
fn describe_request_error(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() && !timeout.is_zero() {
        return format!("timed out after {} s", timeout.as_secs_f64());
    }
    if let Some(short) = find_io_error(err).and_then(|io| describe_io_kind(io.kind())) {
        return short.to_owned();
    }
    error_chain(err)
}

fn describe_read_error(err: &io::Error) -> String {
    if let Some(short) = describe_io_kind(err.kind()) {
        return short.to_owned();
    }
    error_chain(err)
}

fn describe_io_kind(kind: io::ErrorKind) -> Option<&'static str> {
    Some(match kind {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset",
        io::ErrorKind::TimedOut => "timed out",
        _ => return None,
    })
}

fn find_io_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        next = e.source();
    }
    None
}

/// `outer: cause: root cause`, skipping a cause whose text is already contained in its parent's
/// (some layers repeat their source in their own message).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut last = text.clone();
    let mut next = err.source();
    while let Some(e) = next {
        let msg = e.to_string();
        if !last.contains(&msg) {
            text.push_str(": ");
            text.push_str(&msg);
        }
        last = msg;
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_from(vars: &[(&str, &str)]) -> DebuginfodOptions {
        DebuginfodOptions::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn urls_follow_elfutils_semantics() {
        let check = |input: &str, expected: &[&str]| assert_eq!(parse_urls(input), expected);
        check("", &[]);
        check("   \t\n", &[]);
        check("http://a", &["http://a"]);
        check(
            "  http://a/  https://b:8002//\thttp://a ",
            &["http://a", "https://b:8002"],
        );
        check(
            "ima:enforcing https://a ima:ignore http://b",
            &["https://a", "http://b"],
        );
    }

    #[test]
    fn options_defaults_and_overrides() {
        let o = options_from(&[("HOME", "/home/u")]);
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert_eq!(o.negative_ttl, DEFAULT_NEGATIVE_TTL);
        assert_eq!(
            o.cache_dir,
            PathBuf::from("/home/u/.cache/faultline/debuginfod")
        );

        let o = options_from(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("DEBUGINFOD_TIMEOUT", " 3 "),
            ("FAULTLINE_DEBUGINFOD_NEGATIVE_TTL", "0"),
        ]);
        assert_eq!(o.timeout, Duration::from_secs(3));
        assert_eq!(o.negative_ttl, Duration::ZERO);
        assert_eq!(o.cache_dir, PathBuf::from("/xdg/faultline/debuginfod"));

        let o = options_from(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("FAULTLINE_CACHE_DIR", "/c"),
            ("DEBUGINFOD_TIMEOUT", "soon"),
        ]);
        assert_eq!(o.cache_dir, PathBuf::from("/c"));
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);

        // Relative XDG_CACHE_HOME is invalid per the spec; empty values count as unset.
        let o = options_from(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "rel"),
            ("FAULTLINE_CACHE_DIR", ""),
        ]);
        assert_eq!(
            o.cache_dir,
            PathBuf::from("/home/u/.cache/faultline/debuginfod")
        );
    }

    #[test]
    fn client_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DebuginfodClient>();
    }

    #[test]
    fn new_normalizes_urls() {
        let options = options_from(&[("HOME", "/h")]);
        let client = DebuginfodClient::new(
            vec![
                "http://a/".into(),
                "".into(),
                "http://a".into(),
                " http://b ".into(),
            ],
            options,
        );
        assert_eq!(client.urls(), ["http://a", "http://b"]);
    }

    #[test]
    fn no_servers_is_not_found_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let options = DebuginfodOptions {
            timeout: DEFAULT_TIMEOUT,
            cache_dir: dir.path().to_owned(),
            negative_ttl: DEFAULT_NEGATIVE_TTL,
        };
        let client = DebuginfodClient::new(Vec::new(), options);
        let id = BuildId::from_hex("abcdef").unwrap();
        assert_eq!(
            client.fetch_debuginfo(&id).unwrap(),
            Fetched::NotFound {
                reason: "no debuginfod servers configured".into()
            }
        );
    }
}
