//! Fetching over HTTP: where a fetch may go, how much it may take, streaming
//! with one-pass digests, retries with backoff.
//!
//! **Where.** Every fetch is made under a [`HostPolicy`] built from the
//! package's configuration. The URL the configuration names may be `https://`,
//! or plain `http://` to a loopback host (the test fixtures, a local mirror).
//! Every other URL — found in an upstream document, or a redirect — must be
//! `https://`, except on that configured URL's own loopback origin, and its
//! host must be allowed: the configured URL's host, or one the package's
//! `source.allowed_hosts` names. Redirects are followed here, hop by hop, each
//! checked the same way, never by the HTTP client on its own.
//!
//! **How much.** [`TransferLimits`]: a byte cap (the announced size when
//! upstream gives one), a deadline for the whole fetch, retries included, and
//! a minimum transfer rate measured over a window. Each error names the limit
//! and the setting that set it. Too large is the file's fault
//! ([`FetchError::is_transient`] is false); too slow or past the deadline is
//! usually the network's or the server's, so it is transient: retried while
//! the deadline allows, and by the pipeline's next attempt.
//!
//! Timeouts, 429 and 5xx are retried with exponential backoff, honouring a
//! capped `Retry-After`; a body shorter or longer than its `Content-Length` is
//! retried too. Anything else fails at once, with the URL in the message.
//!
//! [`Fetcher::probe`] asks whether a file changed without downloading it: a
//! conditional `HEAD` carrying what the last download saw ([`Validators`]:
//! `ETag`, `Last-Modified`, size), answered `304 Not Modified` or with the
//! file's current validators.

use crate::digest::Checksums;
use crate::limits::{Limit, show_bytes, show_duration};
use futures_util::StreamExt;
use reqwest::header::{
    CONTENT_LENGTH, ETAG, HeaderMap, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16, retry_after: Option<Duration> },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: body cut short or overlong: received {received} bytes, Content-Length announced {announced}")]
    Length { url: String, received: u64, announced: u64 },
    #[error("{url}: {what} mismatch: expected {expected}, received {received}")]
    Mismatch { url: String, what: &'static str, expected: String, received: String },
    /// More bytes than a limit allows (the message names the limit).
    #[error("{url}: {message}")]
    TooLarge { url: String, message: String },
    /// Below the minimum transfer rate for a whole window.
    #[error("{url}: too slow: {message}")]
    TooSlow { url: String, message: String },
    /// Not finished by the fetch's deadline.
    #[error("{url}: {message}")]
    Deadline { url: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl FetchError {
    /// Worth another try later (by this client's retries, or by the pipeline's).
    /// A slow or stalled transfer is: it is usually a congested path or an
    /// overloaded server, and the next try often goes elsewhere.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status == 429 || *status >= 500,
            FetchError::Network { .. }
            | FetchError::Length { .. }
            | FetchError::TooSlow { .. }
            | FetchError::Deadline { .. } => true,
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A URL a configuration names: `https://` anywhere, `http://` only to a
/// loopback host. (URLs found in upstream documents and redirects are held to
/// [`HostPolicy::check`].)
pub fn check_url_allowed(url: &str) -> Result<Url, FetchError> {
    let refused = |reason: &str| FetchError::Refused { url: url.to_owned(), reason: reason.to_owned() };
    let parsed = Url::parse(url).map_err(|e| refused(&format!("not a valid URL ({e})")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(refused("plain http is only allowed to loopback hosts; use https")),
        other => Err(refused(&format!("scheme {other:?} is not supported; use https"))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// An entry of an allow-list as configured: a host name or IP address, or
/// `*.example.com` for any host under example.com. Returned lower case.
pub fn check_host_pattern(entry: &str) -> Result<String, String> {
    let lower = entry.trim().to_ascii_lowercase();
    let (wildcard, host) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let bad =
        |why: &str| format!("{entry:?} is not a host name ({why}); write just the host, e.g. downloads.example.com");
    if host.is_empty() || host.contains(['/', ':', '@', '*', '?', '#']) && !host.starts_with('[') {
        return Err(bad("no scheme, port, path or inner wildcard"));
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) if d == host && d.contains('.') || d == "localhost" => {}
        Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) if !wildcard => {}
        _ => return Err(bad("a name with a dot, or an IP address")),
    }
    Ok(lower)
}

/// Where one source's fetches may go (see the module docs).
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// The URL the configuration names: its origin alone may use plain http
    /// (when it is a loopback origin, as in the tests).
    configured: Url,
    /// Lower-case hosts or `*.suffix` patterns; the configured URL's host first.
    allowed: Vec<String>,
    /// Where to allow another host, for the refusal: `source.allowed_hosts in packages/kiro.yaml`.
    how_to_allow: String,
}

impl HostPolicy {
    /// A source configured with the URL `configured`, also allowed the hosts
    /// `extra` (as [`check_host_pattern`] accepts them).
    pub fn new(configured: &str, extra: &[String], how_to_allow: impl Into<String>) -> Result<HostPolicy, FetchError> {
        let configured = check_url_allowed(configured)?;
        let mut allowed = vec![configured.host_str().unwrap_or_default().to_ascii_lowercase()];
        for entry in extra {
            let pattern = check_host_pattern(entry)
                .map_err(|reason| FetchError::Refused { url: configured.to_string(), reason })?;
            if !allowed.contains(&pattern) {
                allowed.push(pattern);
            }
        }
        Ok(HostPolicy { configured, allowed, how_to_allow: how_to_allow.into() })
    }

    /// Only `url`'s own host, for a tool that fetches one URL it was given.
    pub fn only(url: &str) -> Result<HostPolicy, FetchError> {
        HostPolicy::new(url, &[], "the URL given")
    }

    /// Whether `url` is on the configured URL's origin (scheme, host, port).
    pub fn is_configured_origin(&self, url: &Url) -> bool {
        url.origin() == self.configured.origin()
    }

    /// Whether `host` (as [`Url::host_str`] gives it) is allowed.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|pattern| match pattern.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
            None => *pattern == host,
        })
    }

    /// `url` if a fetch may go there.
    pub fn check(&self, url: &str) -> Result<Url, FetchError> {
        let refused = |reason: String| FetchError::Refused { url: url.to_owned(), reason };
        let parsed = Url::parse(url).map_err(|e| refused(format!("not a valid URL ({e})")))?;
        match parsed.scheme() {
            "https" => {}
            // The test fixtures (and a local mirror) serve plain http on
            // loopback; only the configured origin itself may. Anything else
            // over http is what upstream chose, and could be anything on this
            // machine or its network.
            "http"
                if self.configured.scheme() == "http"
                    && is_loopback(&self.configured)
                    && parsed.origin() == self.configured.origin() =>
            {
                return Ok(parsed);
            }
            // A loopback setup (the tests' registry and the storage host it
            // redirects to, a local mirror): another loopback host the
            // configuration lists by name in its allowed hosts. Never the
            // configured host on another port, nor a pattern: what upstream
            // may reach over http stays what the operator wrote down.
            "http"
                if self.configured.scheme() == "http"
                    && is_loopback(&self.configured)
                    && is_loopback(&parsed)
                    && parsed.host_str().is_some_and(|h| self.allowed[1..].iter().any(|a| a == h)) =>
            {
                return Ok(parsed);
            }
            "http" => {
                return Err(refused(format!(
                    "plain http: URLs found upstream and redirects must be https (only the configured {} may use \
                     http, being on loopback)",
                    self.configured.origin().ascii_serialization()
                )));
            }
            other => return Err(refused(format!("scheme {other:?} is not supported; use https"))),
        }
        let host = parsed.host_str().unwrap_or_default();
        if !self.allows_host(host) {
            return Err(refused(format!(
                "host {host} is not allowed for this source (allowed: {}); to fetch from it, add it to {}",
                self.allowed.join(", "),
                self.how_to_allow
            )));
        }
        Ok(parsed)
    }
}

/// How much one fetch may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferLimits {
    /// Bytes at most (an artifact: unless upstream announced fewer).
    pub max_bytes: Limit<u64>,
    /// The whole fetch, retries included.
    pub deadline: Limit<Duration>,
    /// Bytes per second at least, over every `window`; 0: no minimum.
    pub min_rate: Limit<u64>,
    pub window: Limit<Duration>,
}

impl Default for TransferLimits {
    /// The repository's defaults for an artifact.
    fn default() -> Self {
        crate::limits::Limits::default().artifacts()
    }
}

/// What one fetch may do: where it may go and how much it may take.
#[derive(Debug, Clone)]
pub struct FetchRules {
    pub hosts: HostPolicy,
    pub limits: TransferLimits,
    /// Headers sent with every request to the configured URL's own origin
    /// (a registry's `Authorization`), and never to a host it redirects to.
    pub headers: Vec<(String, String)>,
    /// A download computes size and SHA-256 alone, MD5 and SHA1 left empty
    /// (a Homebrew bottle; see [`crate::digest::StreamHasher`]).
    pub sha256_only: bool,
}

impl FetchRules {
    /// `url`'s host only, with the default limits of an artifact (tools, benchmarks).
    pub fn only(url: &str) -> Result<FetchRules, FetchError> {
        Ok(FetchRules {
            hosts: HostPolicy::only(url)?,
            limits: TransferLimits::default(),
            headers: Vec::new(),
            sha256_only: false,
        })
    }
}

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total tries, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    /// Cap for the backoff and for a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

/// What upstream promised about an artifact; a difference fails the download.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// What identifies one state of the file at a URL, as HTTP caches use it:
/// the response's `ETag` and `Last-Modified` (verbatim, as the server sent
/// them: they go back in `If-None-Match` / `If-Modified-Since`), and its size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Bytes: `Content-Length` of a probe, the byte count of a download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl Validators {
    fn of(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
        };
        Validators {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
            size: text(CONTENT_LENGTH).and_then(|n| n.parse().ok()),
        }
    }

    /// The conditional header that asks "changed since these?": `If-None-Match`
    /// with the ETag, else `If-Modified-Since` with the Last-Modified date, else
    /// none (RFC 9110 §13.1: a server that has the ETag ignores the date anyway).
    fn condition(&self) -> Option<(HeaderName, &str)> {
        match (&self.etag, &self.last_modified) {
            (Some(etag), _) => Some((IF_NONE_MATCH, etag)),
            (None, Some(date)) => Some((IF_MODIFIED_SINCE, date)),
            (None, None) => None,
        }
    }
}

/// What a conditional probe learnt of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `304 Not Modified`: the file is the one the validators describe.
    NotModified,
    /// The file as it is now (the server answered 200: it changed, or it
    /// ignores conditional requests; the caller compares).
    Current(Validators),
}

/// Receives progress of one download (a terminal progress bar, or nothing).
pub trait DownloadProgress: Send {
    /// The server announced the body's length.
    fn length(&mut self, _bytes: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn restart(&mut self) {}
}

impl DownloadProgress for () {}

/// Redirects followed at most, per request.
const MAX_REDIRECTS: usize = 10;

/// HTTP client with the retry policy and URL rules above. The client (and its
/// TLS roots, a few milliseconds to load) is made on first use: runs that
/// fetch nothing, such as a forced rebuild, never pay for it.
#[derive(Clone)]
pub struct Fetcher {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    policy: RetryPolicy,
}

impl Fetcher {
    pub fn new(policy: RetryPolicy) -> anyhow::Result<Fetcher> {
        Ok(Fetcher { client: Arc::default(), policy })
    }

    fn client(&self, url: &str) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| Self::build_client().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| FetchError::Network { url: url.to_owned(), message: format!("no HTTP client: {e}") })
    }

    fn build_client() -> anyhow::Result<reqwest::Client> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("pkgrelay/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `request`, each hop held to the
            // fetch's own host policy, which a client-wide policy cannot know.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Ok(client)
    }

    /// GET a small document (metadata JSON, a certificate) into memory, at
    /// most `rules.limits.max_bytes` bytes.
    pub async fn get_bytes(&self, url: &str, rules: &FetchRules) -> Result<Vec<u8>, FetchError> {
        rules.hosts.check(url)?;
        let until = Instant::now() + rules.limits.deadline.value;
        let mut backoff = Backoff::new(&self.policy, until);
        loop {
            match self.get_bytes_once(url, rules, until).await {
                Ok(body) => return Ok(body),
                Err(e) => backoff.wait(url, e).await?,
            }
        }
    }

    async fn get_bytes_once(&self, url: &str, rules: &FetchRules, until: Instant) -> Result<Vec<u8>, FetchError> {
        let mut pace = Pace::new(url, &rules.limits, until);
        let resp = self.get(url, rules, &mut pace).await?;
        let announced = resp.content_length();
        let cap = &rules.limits.max_bytes;
        if let Some(n) = announced.filter(|n| *n > cap.value) {
            return Err(over_cap(url, &format!("announces {} (Content-Length), more than", show_bytes(n)), cap));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = pace.next(&mut stream).await? {
            if body.len() as u64 + chunk.len() as u64 > cap.value {
                return Err(over_cap(url, "sent more than", cap));
            }
            body.extend_from_slice(&chunk);
        }
        check_length(url, body.len() as u64, announced)?;
        Ok(body)
    }

    /// Stream `url` into the file `dest` (created or truncated), computing size,
    /// MD5, SHA1 and SHA256 in the same pass, then check what was `expected`.
    pub async fn download(
        &self,
        url: &str,
        dest: &Path,
        expected: &Expected,
        rules: &FetchRules,
        progress: &mut dyn DownloadProgress,
    ) -> Result<Checksums, FetchError> {
        self.download_validated(url, dest, expected, rules, progress).await.map(|(sums, _)| sums)
    }

    /// [`Fetcher::download`], also returning the validators of the response
    /// whose body was kept (its ETag and Last-Modified; its byte count as size).
    pub async fn download_validated(
        &self,
        url: &str,
        dest: &Path,
        expected: &Expected,
        rules: &FetchRules,
        progress: &mut dyn DownloadProgress,
    ) -> Result<(Checksums, Validators), FetchError> {
        rules.hosts.check(url)?;
        let cap = &rules.limits.max_bytes;
        if let Some(n) = expected.size.filter(|n| *n > cap.value) {
            return Err(over_cap(url, &format!("upstream announces {} for it, more than", show_bytes(n)), cap));
        }
        let until = Instant::now() + rules.limits.deadline.value;
        let mut backoff = Backoff::new(&self.policy, until);
        let (sums, validators) = loop {
            progress.restart();
            match self.download_once(url, dest, expected, rules, until, progress).await {
                Ok(done) => break done,
                Err(e) => backoff.wait(url, e).await?,
            }
        };
        if let Some(want) = expected.size
            && want != sums.size
        {
            return Err(mismatch(url, "size", want, sums.size));
        }
        if let Some(want) = &expected.sha256
            && !want.eq_ignore_ascii_case(&sums.sha256)
        {
            return Err(mismatch(url, "SHA256", want, &sums.sha256));
        }
        Ok((sums, validators))
    }

    async fn download_once(
        &self,
        url: &str,
        dest: &Path,
        expected: &Expected,
        rules: &FetchRules,
        until: Instant,
        progress: &mut dyn DownloadProgress,
    ) -> Result<(Checksums, Validators), FetchError> {
        let io = |e: std::io::Error| FetchError::Io { path: dest.display().to_string(), message: e.to_string() };
        let mut pace = Pace::new(url, &rules.limits, until);
        let resp = self.get(url, rules, &mut pace).await?;
        let mut validators = Validators::of(resp.headers());
        let announced = resp.content_length();
        if let (Some(want), Some(got)) = (expected.size, announced)
            && want != got
        {
            return Err(mismatch(url, "size", want, got));
        }
        // Never more than upstream announced, nor than the configured cap
        // (which the announced size was checked against): an endless body
        // must not fill the disk.
        let cap = &rules.limits.max_bytes;
        let limit = expected.size.unwrap_or(cap.value);
        if let Some(n) = announced.filter(|n| *n > limit) {
            return Err(over_cap(url, &format!("announces {} (Content-Length), more than", show_bytes(n)), cap));
        }
        if let Some(n) = announced {
            progress.length(n);
        }
        let file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = crate::digest::StreamHasher::new(rules.sha256_only);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = pace.next(&mut stream).await? {
            if hasher.size() + chunk.len() as u64 > limit {
                return Err(match expected.size {
                    Some(n) => FetchError::TooLarge {
                        url: url.to_owned(),
                        message: format!("sent more than the {} upstream announced for it", show_bytes(n)),
                    },
                    None => over_cap(url, "sent more than", cap),
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(io)?;
            progress.advance(chunk.len() as u64);
        }
        out.flush().await.map_err(io)?;
        check_length(url, hasher.size(), announced)?;
        validators.size = Some(hasher.size());
        Ok((hasher.finish(), validators))
    }

    /// A GET whose answer is a success, redirects followed.
    async fn get(&self, url: &str, rules: &FetchRules, pace: &mut Pace<'_>) -> Result<reqwest::Response, FetchError> {
        let resp = self.request(Method::GET, url, None, rules, pace).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(url, &resp))
    }

    /// One request, and the requests its redirects lead to, each target held
    /// to `rules.hosts` before it is asked; the last answer, whatever its
    /// status. A response that never starts is bounded by `pace`.
    async fn request(
        &self,
        method: Method,
        url: &str,
        condition: Option<&(HeaderName, &str)>,
        rules: &FetchRules,
        pace: &mut Pace<'_>,
    ) -> Result<reqwest::Response, FetchError> {
        let client = self.client(url)?;
        let mut target = rules.hosts.check(url)?;
        for _ in 0..=MAX_REDIRECTS {
            let mut request = client.request(method.clone(), target.clone());
            if let Some((name, value)) = condition {
                request = request.header(name, *value);
            }
            // A registry's credentials are for the registry: ghcr redirects a
            // blob to a storage host with a signed URL, which must not see
            // them (and may refuse a request that carries both).
            if rules.hosts.is_configured_origin(&target) {
                for (name, value) in &rules.headers {
                    request = request.header(name.as_str(), value.as_str());
                }
            }
            let resp = pace.respond(request.send()).await?;
            let redirect = matches!(
                resp.status(),
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let (true, Some(location)) = (redirect, location) else {
                return Ok(resp);
            };
            let next = target.join(location).map_err(|e| FetchError::Refused {
                url: url.to_owned(),
                reason: format!("redirected to {location:?}, not a valid URL ({e})"),
            })?;
            target = rules.hosts.check(next.as_str()).map_err(|e| match e {
                FetchError::Refused { url: to, reason } => {
                    FetchError::Refused { url: url.to_owned(), reason: format!("redirected to {to}: {reason}") }
                }
                other => other,
            })?;
            tracing::debug!(%url, to = %target, status = resp.status().as_u16(), "following a redirect");
        }
        Err(FetchError::Refused { url: url.to_owned(), reason: format!("more than {MAX_REDIRECTS} redirects") })
    }

    /// Ask whether the file at `url` is still the one `known` describes,
    /// without downloading it: one `HEAD` request, conditional on `known`'s
    /// ETag (else its Last-Modified). Without `known`, a plain `HEAD` that
    /// reads the file's validators. Transient failures are retried like
    /// downloads, within `rules`' deadline.
    pub async fn probe(&self, url: &str, known: Option<&Validators>, rules: &FetchRules) -> Result<Probe, FetchError> {
        rules.hosts.check(url)?;
        let until = Instant::now() + rules.limits.deadline.value;
        let mut backoff = Backoff::new(&self.policy, until);
        loop {
            match self.probe_once(url, known, rules, until).await {
                Ok(probe) => return Ok(probe),
                Err(e) => backoff.wait(url, e).await?,
            }
        }
    }

    async fn probe_once(
        &self,
        url: &str,
        known: Option<&Validators>,
        rules: &FetchRules,
        until: Instant,
    ) -> Result<Probe, FetchError> {
        let condition = known.and_then(Validators::condition);
        let mut pace = Pace::new(url, &rules.limits, until);
        let mut resp = self.request(Method::HEAD, url, condition.as_ref(), rules, &mut pace).await?;
        if matches!(resp.status().as_u16(), 405 | 501) {
            // A server that refuses HEAD: the same conditional request as a
            // GET, of which only the headers are read. Dropping the response
            // closes the connection; at most what the network had already
            // buffered of the body is transferred, never the file.
            tracing::debug!(%url, status = resp.status().as_u16(), "HEAD refused: probing with a GET instead");
            resp = self.request(Method::GET, url, condition.as_ref(), rules, &mut pace).await?;
        }
        match resp.status().as_u16() {
            304 => Ok(Probe::NotModified),
            200..=299 => Ok(Probe::Current(Validators::of(resp.headers()))),
            _ => Err(status_error(url, &resp)),
        }
    }
}

/// Holds one attempt of a fetch to its deadline and minimum rate: every
/// `window`, at least `min_rate` bytes a second must have arrived (the
/// response's headers count as its first bytes: a server that answers nothing
/// for a whole window is too slow as well).
struct Pace<'a> {
    url: &'a str,
    limits: &'a TransferLimits,
    until: Instant,
    window_start: Instant,
    window_bytes: u64,
    total: u64,
}

impl<'a> Pace<'a> {
    fn new(url: &'a str, limits: &'a TransferLimits, until: Instant) -> Pace<'a> {
        Pace { url, limits, until, window_start: Instant::now(), window_bytes: 0, total: 0 }
    }

    /// When to look at the clock next: the window's end or the deadline.
    fn wake_at(&self) -> Instant {
        if self.limits.min_rate.value == 0 {
            self.until
        } else {
            (self.window_start + self.limits.window.value).min(self.until)
        }
    }

    /// The deadline, then the rate of a window that has ended.
    fn check(&mut self) -> Result<(), FetchError> {
        let now = Instant::now();
        if now >= self.until {
            let deadline = &self.limits.deadline;
            return Err(FetchError::Deadline {
                url: self.url.to_owned(),
                message: format!(
                    "not finished within {} ({}); {} received",
                    show_duration(deadline.value),
                    deadline.setting,
                    show_bytes(self.total)
                ),
            });
        }
        let (rate, window) = (&self.limits.min_rate, &self.limits.window);
        let elapsed = now - self.window_start;
        if rate.value == 0 || elapsed < window.value {
            return Ok(());
        }
        if (self.window_bytes as f64) < rate.value as f64 * elapsed.as_secs_f64() {
            return Err(FetchError::TooSlow {
                url: self.url.to_owned(),
                message: format!(
                    "{} bytes in {:.0} s, less than {} a second ({}, over {}: {}); {} received in all",
                    self.window_bytes,
                    elapsed.as_secs_f64(),
                    show_bytes(rate.value),
                    rate.setting,
                    show_duration(window.value),
                    window.setting,
                    show_bytes(self.total)
                ),
            });
        }
        self.window_start = now;
        self.window_bytes = 0;
        Ok(())
    }

    /// The response to a request being sent, within the deadline and window.
    async fn respond(
        &mut self,
        sending: impl Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<reqwest::Response, FetchError> {
        tokio::pin!(sending);
        loop {
            match tokio::time::timeout_at(self.wake_at(), &mut sending).await {
                Ok(Ok(resp)) => {
                    // Headers arrived: the window restarts for the body.
                    self.window_start = Instant::now();
                    self.window_bytes = 0;
                    return Ok(resp);
                }
                Ok(Err(e)) => return Err(network(self.url, e)),
                Err(_) => self.check()?,
            }
        }
    }

    /// The next chunk of a body, `None` at its end.
    async fn next(
        &mut self,
        stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        loop {
            match tokio::time::timeout_at(self.wake_at(), stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.window_bytes += chunk.len() as u64;
                    self.total += chunk.len() as u64;
                    self.check()?;
                    return Ok(Some(chunk));
                }
                Ok(Some(Err(e))) => return Err(network(self.url, e)),
                Ok(None) => return Ok(None),
                // Nothing arrived before the window's end (or the deadline).
                Err(_) => self.check()?,
            }
        }
    }
}

/// A response that is not what was asked for, as [`FetchError::Status`].
fn status_error(url: &str, resp: &reqwest::Response) -> FetchError {
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    FetchError::Status { url: url.to_owned(), status: resp.status().as_u16(), retry_after }
}

/// More bytes than `cap` allows: `found` says what was seen ("sent more
/// than", "announces 5000 bytes (Content-Length), more than").
fn over_cap(url: &str, found: &str, cap: &Limit<u64>) -> FetchError {
    FetchError::TooLarge {
        url: url.to_owned(),
        message: format!("{found} {} ({})", show_bytes(cap.value), cap.setting),
    }
}

/// Exponential backoff over one operation's tries, within its deadline.
struct Backoff<'a> {
    policy: &'a RetryPolicy,
    until: Instant,
    tries: u32,
    delay: Duration,
}

impl<'a> Backoff<'a> {
    fn new(policy: &'a RetryPolicy, until: Instant) -> Self {
        Backoff { policy, until, tries: 1, delay: policy.base_delay }
    }

    /// Sleep before the next try if `error` is transient, tries are left and
    /// the deadline leaves room for one; otherwise hand the error back.
    async fn wait(&mut self, url: &str, error: FetchError) -> Result<(), FetchError> {
        if !error.is_transient() || self.tries >= self.policy.attempts {
            return Err(error);
        }
        let wait = error.retry_after().unwrap_or(self.delay).min(self.policy.max_delay);
        if Instant::now() + wait >= self.until {
            return Err(error);
        }
        tracing::warn!(%url, attempt = self.tries, wait_ms = wait.as_millis() as u64, "transient failure, retrying: {error}");
        tokio::time::sleep(wait).await;
        self.tries += 1;
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        Ok(())
    }
}

fn network(url: &str, e: reqwest::Error) -> FetchError {
    // Keep the whole cause chain: "error sending request" alone says nothing.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Network { url: url.to_owned(), message }
}

fn mismatch(url: &str, what: &'static str, expected: impl ToString, received: impl ToString) -> FetchError {
    FetchError::Mismatch { url: url.to_owned(), what, expected: expected.to_string(), received: received.to_string() }
}

fn check_length(url: &str, received: u64, announced: Option<u64>) -> Result<(), FetchError> {
    match announced {
        Some(announced) if announced != received => {
            Err(FetchError::Length { url: url.to_owned(), received, announced })
        }
        _ => Ok(()),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let fmt = time::format_description::well_known::Rfc2822;
    let when = time::OffsetDateTime::parse(value.trim(), &fmt).ok()?;
    let wait = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};

    #[test]
    fn url_rules() {
        assert!(check_url_allowed("https://example.com/a.deb").is_ok());
        assert!(check_url_allowed("http://127.0.0.1:8080/a.deb").is_ok());
        assert!(check_url_allowed("http://[::1]:8080/a.deb").is_ok());
        assert!(check_url_allowed("http://localhost/a.deb").is_ok());
        assert!(check_url_allowed("http://example.com/a.deb").is_err());
        assert!(check_url_allowed("ftp://example.com/a.deb").is_err());
        assert!(check_url_allowed("file:///etc/passwd").is_err());
    }

    /// Only the configured origin may be plain http (loopback, for tests);
    /// other URLs must be https to an allowed host.
    #[test]
    fn host_policy() {
        let extra = vec!["Downloads.Example.net".to_owned(), "*.githubusercontent.com".to_owned()];
        let https =
            HostPolicy::new("https://meta.example.com/m.json", &extra, "source.allowed_hosts in k.yaml").unwrap();
        for ok in [
            "https://meta.example.com/k.deb",
            "https://META.example.com:8443/k.deb",
            "https://downloads.example.net/k.deb",
            "https://objects.githubusercontent.com/x",
            "https://a.b.githubusercontent.com/x",
        ] {
            assert!(https.check(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://meta.example.com/k.deb", "plain http"),
            ("https://githubusercontent.com/x", "host githubusercontent.com is not allowed"),
            ("https://evil.example.com/k.deb", "add it to source.allowed_hosts in k.yaml"),
            ("https://127.0.0.1/secret", "host 127.0.0.1 is not allowed"),
            ("ftp://meta.example.com/k.deb", "scheme \"ftp\""),
            ("file:///etc/passwd", "scheme \"file\""),
        ] {
            let e = https.check(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }

        // The tests' upstream: plain http on loopback, that origin only.
        let local = HostPolicy::new("http://127.0.0.1:4000/stable/m.json", &[], "x").unwrap();
        assert!(local.check("http://127.0.0.1:4000/signed/k.deb").is_ok());
        for bad in ["http://127.0.0.1:4001/secret", "http://localhost:4000/k.deb", "http://[::1]:4000/k.deb"] {
            let e = local.check(bad).unwrap_err().to_string();
            assert!(e.contains("plain http") && e.contains("http://127.0.0.1:4000"), "{bad}: {e}");
        }

        for (entry, ok) in [
            ("cdn.example.com", true),
            ("*.example.com", true),
            ("10.0.0.5", true),
            ("localhost", true),
            ("https://cdn.example.com", false),
            ("cdn.example.com:443", false),
            ("cdn.example.com/path", false),
            ("*.10.0.0.5", false),
            ("a.*.example.com", false),
            ("", false),
            ("com", false),
        ] {
            assert_eq!(check_host_pattern(entry).is_ok(), ok, "{entry:?}: {:?}", check_host_pattern(entry));
        }
    }

    /// A one-request-per-connection server answering each request line with
    /// the response `answer` gives it; the request lines seen.
    fn server(answer: fn(&str) -> String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        streaming_server(move |request, out| {
            let _ = out.write_all(answer(request).as_bytes());
        })
    }

    /// The same, with a handler that writes the response itself (bodies
    /// without end, trickles).
    fn streaming_server(
        answer: impl Fn(&str, &mut std::net::TcpStream) + Send + Sync + 'static,
    ) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                    let mut request = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        request.push_str(&line);
                    }
                    log.lock().unwrap().push(request.trim_end().replace("\r\n", " | "));
                    let mut out = conn;
                    answer(&request, &mut out);
                    let _ = out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        (base, seen)
    }

    /// Chunks of 64 KiB for as long as the client reads.
    fn endless(_: &str, out: &mut std::net::TcpStream) {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        let chunk = [b'x'; 64 << 10];
        while out.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_ok()
            && out.write_all(&chunk).is_ok()
            && out.write_all(b"\r\n").is_ok()
        {}
    }

    /// One byte every 100 ms of a 1000-byte body.
    fn trickle(_: &str, out: &mut std::net::TcpStream) {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n");
        for _ in 0..1000 {
            if out.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn rules(base: &str, limits: TransferLimits) -> FetchRules {
        FetchRules {
            hosts: HostPolicy::only(&format!("{base}/")).unwrap(),
            limits,
            headers: Vec::new(),
            sha256_only: false,
        }
    }

    fn limits(max_bytes: u64, deadline: Duration, min_rate: u64, window: Duration) -> TransferLimits {
        TransferLimits {
            max_bytes: Limit::new(max_bytes, "limits.max_artifact_bytes in test.yaml"),
            deadline: Limit::new(deadline, "limits.download_deadline in test.yaml"),
            min_rate: Limit::new(min_rate, "limits.min_transfer_rate in test.yaml"),
            window: Limit::new(window, "limits.min_rate_window in test.yaml"),
        }
    }

    fn once() -> Fetcher {
        Fetcher::new(RetryPolicy { attempts: 1, ..RetryPolicy::default() }).unwrap()
    }

    /// An endless body stops at the configured cap, or at the size upstream
    /// announced; a document at its own cap.
    #[tokio::test]
    async fn endless_bodies_stop_at_their_cap() {
        let (base, _) = streaming_server(endless);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.deb");
        let url = format!("{base}/x.deb");
        let capped = rules(&base, limits(1 << 20, Duration::from_secs(60), 0, Duration::from_secs(30)));
        let e = once().download(&url, &dest, &Expected::default(), &capped, &mut ()).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{url}: sent more than 1048576 bytes (1 MiB) (limits.max_artifact_bytes in test.yaml)")
        );
        assert!(std::fs::metadata(&dest).unwrap().len() <= 1 << 20);

        let announced = Expected { size: Some(1000), sha256: None };
        let e = once().download(&url, &dest, &announced, &capped, &mut ()).await.unwrap_err();
        assert_eq!(e.to_string(), format!("{url}: sent more than the 1000 bytes upstream announced for it"));
        let huge = Expected { size: Some(2 << 20), sha256: None };
        let e = once().download(&url, &dest, &huge, &capped, &mut ()).await.unwrap_err().to_string();
        assert!(e.contains("upstream announces 2097152 bytes (2 MiB) for it, more than 1048576 bytes (1 MiB)"), "{e}");

        let e = once().get_bytes(&url, &capped).await.unwrap_err();
        assert!(
            e.to_string().ends_with("sent more than 1048576 bytes (1 MiB) (limits.max_artifact_bytes in test.yaml)")
        );
    }

    /// A length over the cap is refused before the body is read.
    #[tokio::test]
    async fn an_announced_length_over_the_cap_is_refused_unread() {
        let (base, _) =
            server(|_| "HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\nConnection: close\r\n\r\nabc".into());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/big.deb");
        let capped = rules(&base, limits(4 << 20, Duration::from_secs(60), 0, Duration::from_secs(30)));
        let t = std::time::Instant::now();
        let e = once().download(&url, &dir.path().join("x"), &Expected::default(), &capped, &mut ()).await.unwrap_err();
        assert!(
            e.to_string().contains("announces 5000000000 bytes (Content-Length), more than 4194304 bytes (4 MiB)"),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// One byte every 100 ms is below 1 KB/s: given up after one window, as
    /// a transient failure; the deadline holds even without a minimum rate.
    #[tokio::test]
    async fn slow_transfers_fail_by_rate_or_deadline() {
        let (base, _) = streaming_server(trickle);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("{base}/slow.deb");
        let slow = rules(&base, limits(1 << 20, Duration::from_secs(60), 1000, Duration::from_secs(1)));
        let t = std::time::Instant::now();
        let e = once().download(&url, &dir.path().join("x"), &Expected::default(), &slow, &mut ()).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("{url}: too slow: ")), "{text}");
        assert!(
            text.contains("less than 1000 bytes a second (limits.min_transfer_rate in test.yaml, over 1s"),
            "{text}"
        );
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

        let deadline = rules(&base, limits(1 << 20, Duration::from_secs(1), 0, Duration::from_secs(30)));
        let t = std::time::Instant::now();
        let e = Fetcher::new(RetryPolicy::default())
            .unwrap()
            .download(&url, &dir.path().join("x"), &Expected::default(), &deadline, &mut ())
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("not finished within 1s (limits.download_deadline in test.yaml)"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "retries stop at the deadline: {:?}", t.elapsed());
    }

    /// Redirects are followed hop by hop, each held to the host policy.
    #[tokio::test]
    async fn redirects_are_held_to_the_host_policy() {
        let (other, other_seen) =
            server(|_| "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret".into());
        static OTHER: OnceLock<String> = OnceLock::new();
        OTHER.set(other.clone()).unwrap();
        let (base, seen) = server(|request| {
            let to = if request.starts_with("GET /same") {
                "/file".to_owned()
            } else if request.starts_with("GET /file") {
                return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfile".into();
            } else if request.starts_with("GET /elsewhere") {
                "https://elsewhere.example.org/x".to_owned()
            } else if request.starts_with("GET /loop") {
                "/loop".to_owned()
            } else {
                format!("{}/secret", OTHER.get().unwrap())
            };
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        });
        let fetcher = once();
        let documents = rules(&base, limits(1 << 20, Duration::from_secs(60), 0, Duration::from_secs(30)));
        assert_eq!(fetcher.get_bytes(&format!("{base}/same"), &documents).await.unwrap(), b"file");

        let e = fetcher.get_bytes(&format!("{base}/other-port"), &documents).await.unwrap_err().to_string();
        assert!(e.contains(&format!("redirected to {other}/secret: plain http")), "{e}");
        assert!(other_seen.lock().unwrap().is_empty(), "the other server was never asked");
        let e = fetcher.get_bytes(&format!("{base}/elsewhere"), &documents).await.unwrap_err().to_string();
        assert!(e.contains("host elsewhere.example.org is not allowed"), "{e}");
        let e = fetcher.get_bytes(&format!("{base}/loop"), &documents).await.unwrap_err().to_string();
        assert!(e.contains("more than 10 redirects"), "{e}");
        let e = fetcher.probe(&format!("{base}/other-port"), None, &documents).await.unwrap_err().to_string();
        assert!(e.contains("plain http"), "{e}");
        assert!(seen.lock().unwrap().len() >= 15);
    }

    /// A server that refuses HEAD is probed with the same conditional GET,
    /// whose body is never read.
    #[tokio::test]
    async fn a_refused_head_is_probed_with_a_conditional_get() {
        let (base, seen) = server(|request| {
            if request.starts_with("HEAD") {
                "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            } else if request.to_ascii_lowercase().contains("if-none-match: \"v1\"") {
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".into()
            } else {
                // Announces 100 MB: the probe must not wait for them.
                "HTTP/1.1 200 OK\r\nETag: \"v2\"\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\nabc".into()
            }
        });
        let fetcher = Fetcher::new(RetryPolicy::default()).unwrap();
        let url = format!("{base}/latest/tool.deb");
        let documents = FetchRules::only(&url).unwrap();
        let v1 = Validators { etag: Some("\"v1\"".into()), ..Default::default() };
        assert_eq!(fetcher.probe(&url, Some(&v1), &documents).await.unwrap(), Probe::NotModified);
        let v0 = Validators { etag: Some("\"v0\"".into()), last_modified: Some("x".into()), size: Some(1) };
        let probe =
            tokio::time::timeout(Duration::from_secs(10), fetcher.probe(&url, Some(&v0), &documents)).await.unwrap();
        assert_eq!(
            probe.unwrap(),
            Probe::Current(Validators { etag: Some("\"v2\"".into()), last_modified: None, size: Some(100_000_000) })
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "{seen:#?}");
        assert!(
            seen[0].starts_with("HEAD /latest/tool.deb") && seen[1].starts_with("GET /latest/tool.deb"),
            "{seen:#?}"
        );
        // The ETag is the condition; the date is not sent with it.
        assert!(seen[3].to_ascii_lowercase().contains("if-none-match: \"v0\""), "{seen:#?}");
        assert!(!seen[3].to_ascii_lowercase().contains("if-modified-since"), "{seen:#?}");
    }

    #[tokio::test]
    async fn a_probe_that_finds_no_file_names_the_url() {
        let (base, _) = server(|_| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into());
        let fetcher = Fetcher::new(RetryPolicy::default()).unwrap();
        let url = format!("{base}/latest/gone.deb");
        let e = fetcher.probe(&url, None, &FetchRules::only(&url).unwrap()).await.unwrap_err();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("/latest/gone.deb: HTTP status 404"), "{e}");
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
