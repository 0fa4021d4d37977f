//! Fetching over HTTP: streaming, one-pass digests, retries with backoff.
//!
//! Only `https://` is fetched, except plain `http://` to loopback hosts (the test
//! fixtures and a developer's local mirror). Redirects are held to the same rule.
//! Timeouts, 429 and 5xx are retried with exponential backoff, honouring a capped
//! `Retry-After`; a body shorter or longer than its `Content-Length` is retried
//! too. Anything else fails at once, with the URL in the message.
//!
//! [`Fetcher::probe`] asks whether a file changed without downloading it: a
//! conditional `HEAD` carrying what the last download saw ([`Validators`]:
//! `ETag`, `Last-Modified`, size), answered `304 Not Modified` or with the
//! file's current validators.

use crate::digest::Checksums;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
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
    #[error("{url}: response larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl FetchError {
    /// Worth another try later (by this client's retries, or by the pipeline's).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => *status == 429 || *status >= 500,
            FetchError::Network { .. } | FetchError::Length { .. } => true,
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

/// `https://` anywhere, `http://` only to a loopback host.
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
    fn condition(&self) -> Option<(reqwest::header::HeaderName, &str)> {
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
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else if let Err(e) = check_url_allowed(attempt.url().as_str()) {
                attempt.error(e)
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("pkgrelay/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()?;
        Ok(client)
    }

    /// GET a small document (metadata JSON) into memory, at most `limit` bytes.
    pub async fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        check_url_allowed(url)?;
        let mut backoff = Backoff::new(&self.policy);
        loop {
            match self.get_bytes_once(url, limit).await {
                Ok(body) => return Ok(body),
                Err(e) => backoff.wait(url, e).await?,
            }
        }
    }

    async fn get_bytes_once(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let resp = self.send(url).await?;
        let announced = resp.content_length();
        if announced.is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { url: url.to_owned(), limit });
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| network(url, e))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { url: url.to_owned(), limit });
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
        progress: &mut dyn DownloadProgress,
    ) -> Result<Checksums, FetchError> {
        self.download_validated(url, dest, expected, progress).await.map(|(sums, _)| sums)
    }

    /// [`Fetcher::download`], also returning the validators of the response
    /// whose body was kept (its ETag and Last-Modified; its byte count as size).
    pub async fn download_validated(
        &self,
        url: &str,
        dest: &Path,
        expected: &Expected,
        progress: &mut dyn DownloadProgress,
    ) -> Result<(Checksums, Validators), FetchError> {
        check_url_allowed(url)?;
        let mut backoff = Backoff::new(&self.policy);
        let (sums, validators) = loop {
            progress.restart();
            match self.download_once(url, dest, expected, progress).await {
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
        progress: &mut dyn DownloadProgress,
    ) -> Result<(Checksums, Validators), FetchError> {
        let io = |e: std::io::Error| FetchError::Io { path: dest.display().to_string(), message: e.to_string() };
        let resp = self.send(url).await?;
        let mut validators = Validators::of(resp.headers());
        let announced = resp.content_length();
        if let (Some(want), Some(got)) = (expected.size, announced)
            && want != got
        {
            return Err(mismatch(url, "size", want, got));
        }
        if let Some(n) = announced {
            progress.length(n);
        }
        let file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = crate::digest::ParallelHasher::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| network(url, e))?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(io)?;
            progress.advance(chunk.len() as u64);
        }
        out.flush().await.map_err(io)?;
        check_length(url, hasher.size(), announced)?;
        validators.size = Some(hasher.size());
        Ok((hasher.finish(), validators))
    }

    async fn send(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let resp = self.client(url)?.get(url).send().await.map_err(|e| network(url, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(url, &resp))
    }

    /// Ask whether the file at `url` is still the one `known` describes,
    /// without downloading it: one `HEAD` request, conditional on `known`'s
    /// ETag (else its Last-Modified). Without `known`, a plain `HEAD` that
    /// reads the file's validators. Transient failures are retried like
    /// downloads.
    pub async fn probe(&self, url: &str, known: Option<&Validators>) -> Result<Probe, FetchError> {
        check_url_allowed(url)?;
        let mut backoff = Backoff::new(&self.policy);
        loop {
            match self.probe_once(url, known).await {
                Ok(probe) => return Ok(probe),
                Err(e) => backoff.wait(url, e).await?,
            }
        }
    }

    async fn probe_once(&self, url: &str, known: Option<&Validators>) -> Result<Probe, FetchError> {
        let client = self.client(url)?;
        let condition = known.and_then(Validators::condition);
        let conditional = |mut request: reqwest::RequestBuilder| {
            if let Some((name, value)) = &condition {
                request = request.header(name, *value);
            }
            request
        };
        let mut resp = conditional(client.head(url)).send().await.map_err(|e| network(url, e))?;
        if matches!(resp.status().as_u16(), 405 | 501) {
            // A server that refuses HEAD: the same conditional request as a
            // GET, of which only the headers are read. Dropping the response
            // closes the connection; at most what the network had already
            // buffered of the body is transferred, never the file.
            tracing::debug!(%url, status = resp.status().as_u16(), "HEAD refused: probing with a GET instead");
            resp = conditional(client.get(url)).send().await.map_err(|e| network(url, e))?;
        }
        match resp.status().as_u16() {
            304 => Ok(Probe::NotModified),
            200..=299 => Ok(Probe::Current(Validators::of(resp.headers()))),
            _ => Err(status_error(url, &resp)),
        }
    }
}

/// A response that is not what was asked for, as [`FetchError::Status`].
fn status_error(url: &str, resp: &reqwest::Response) -> FetchError {
    let retry_after =
        resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    FetchError::Status { url: url.to_owned(), status: resp.status().as_u16(), retry_after }
}

/// Exponential backoff over one operation's tries.
struct Backoff<'a> {
    policy: &'a RetryPolicy,
    tries: u32,
    delay: Duration,
}

impl<'a> Backoff<'a> {
    fn new(policy: &'a RetryPolicy) -> Self {
        Backoff { policy, tries: 1, delay: policy.base_delay }
    }

    /// Sleep before the next try if `error` is transient and tries are left;
    /// otherwise hand the error back.
    async fn wait(&mut self, url: &str, error: FetchError) -> Result<(), FetchError> {
        if !error.is_transient() || self.tries >= self.policy.attempts {
            return Err(error);
        }
        let wait = error.retry_after().unwrap_or(self.delay).min(self.policy.max_delay);
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

    /// A one-request-per-connection server answering each request line with
    /// the response `answer` gives it; the request lines seen.
    fn server(answer: fn(&str) -> String) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
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
                let _ = out.write_all(answer(&request).as_bytes());
            }
        });
        (base, seen)
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
        let v1 = Validators { etag: Some("\"v1\"".into()), ..Default::default() };
        assert_eq!(fetcher.probe(&url, Some(&v1)).await.unwrap(), Probe::NotModified);
        let v0 = Validators { etag: Some("\"v0\"".into()), last_modified: Some("x".into()), size: Some(1) };
        let probe = tokio::time::timeout(Duration::from_secs(10), fetcher.probe(&url, Some(&v0))).await.unwrap();
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
        let e = fetcher.probe(&format!("{base}/latest/gone.deb"), None).await.unwrap_err();
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
