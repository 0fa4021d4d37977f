//! GoPro's cloud as a [`MediaProvider`] (UPSTREAMS.md "GoPro cloud", from the
//! public clients dustin/gopro-plus and itsankoff/gopro-plus; nothing here is
//! documented by GoPro).
//!
//! - **API.** `https://api.gopro.com` (configurable: the tests' fake), every
//!   call with `Accept: application/vnd.gopro.jk.media+json; version=2.0.0`.
//! - **Login.** OAuth: `POST /v1/oauth2/token` with the refresh grant when
//!   the access token has less than a day left, then `Authorization: Bearer`;
//!   the answer rotates the refresh token, returned for writing back. Cookies:
//!   `gp_access_token` and `gp_user_id` with a browser User-Agent, checked by
//!   `GET /media/user`; a 401 means a person logs in again.
//! - **Listing.** `GET /media/search`, pages from 1, until `total_pages` or an
//!   empty page; items not `ready` are set apart.
//! - **Descriptor.** `GET /media/{id}/download`: every file of `files[]`, and
//!   each variation labelled `source` of an `item_number` they lack; `concat` (the
//!   chapters joined), proxies and sidecars are derived and not copied. A 404
//!   (or 410) is the item deleted upstream.
//! - **Files.** `url` (GET) and `head` (HEAD) are presigned on another host,
//!   with no auth header; that host must be allowed explicitly
//!   ([`GoProConfig::download_hosts`]). An expired URL answers 403.
//! - **Throttling.** 429 and 5xx are retried, 429 after its `Retry-After`
//!   (capped), within [`GoProConfig::attempts`].
//!
//! Every URL is checked by the [`HostPolicy`] of [`crate::fetch`] before a
//! request: the API's own origin, and the presigned host as allowed.

use super::{
    Authenticated, Credentials, Listing, MediaError, MediaItem, MediaProvider, PresignedUrl, Secret, Session,
    SourceFile, Transfer, object_key, redact_url,
};
use crate::fetch::HostPolicy;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The versioned media type every API call accepts.
pub const ACCEPT: &str = "application/vnd.gopro.jk.media+json; version=2.0.0";

/// Sent with cookies when the credentials name no User-Agent of their own:
/// the cookie login is a browser's, and the public clients send one.
pub const DEFAULT_BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";

/// The listing fields the sync reads.
const FIELDS: &str = "id,type,filename,file_extension,file_size,captured_at,created_at,ready_to_view,camera_model";

/// The largest API answer read (a page of 100 items is a few tens of KiB).
const MAX_API_BODY: usize = 16 << 20;

/// Where and how to reach GoPro.
#[derive(Debug, Clone)]
pub struct GoProConfig {
    /// `https://api.gopro.com`, or a loopback fake.
    pub api_base: String,
    /// Hosts (or `*.suffix` patterns) the presigned file URLs may point to.
    /// UNCONFIRMED which hosts GoPro presigns on; none is allowed by default.
    pub download_hosts: Vec<String>,
    /// Items per listing page (UNCONFIRMED: a cap of 100).
    pub per_page: u32,
    /// Tries per request, the first included (429, 5xx, network errors).
    pub attempts: u32,
    /// The longest `Retry-After` honoured; longer waits are cut to this.
    pub max_retry_after: Duration,
    /// Backoff before the second try when no `Retry-After` says otherwise; doubles.
    pub base_delay: Duration,
}

impl Default for GoProConfig {
    fn default() -> Self {
        GoProConfig {
            api_base: "https://api.gopro.com".to_owned(),
            download_hosts: Vec::new(),
            per_page: 100,
            attempts: 5,
            max_retry_after: Duration::from_secs(120),
            base_delay: Duration::from_secs(1),
        }
    }
}

/// The GoPro provider.
pub struct GoPro {
    config: GoProConfig,
    hosts: HostPolicy,
    client: reqwest::Client,
}

impl GoPro {
    pub fn new(config: GoProConfig) -> Result<GoPro, MediaError> {
        let hosts = HostPolicy::new(&config.api_base, &config.download_hosts, "the GoPro provider's download_hosts")
            .map_err(|e| MediaError::Refused { what: config.api_base.clone(), reason: e.to_string() })?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("pkgrelay/", env!("CARGO_PKG_VERSION")))
            // Presigned URLs are fetched as given; a redirect would leave the
            // host policy's view, and neither the API nor the file host sends one.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| MediaError::Network { what: "HTTP client".into(), message: e.to_string() })?;
        Ok(GoPro { config, hosts, client })
    }

    fn api_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.config.api_base.trim_end_matches('/'))
    }

    fn check(&self, url: &str) -> Result<(), MediaError> {
        self.hosts
            .check(url)
            .map(drop)
            // The policy's message quotes the URL: shown without its query.
            .map_err(|e| MediaError::Refused {
                what: redact_url(url),
                reason: e.to_string().replace(url, &redact_url(url)),
            })
    }

    /// The login headers of a session.
    fn auth(&self, request: reqwest::RequestBuilder, session: &Session) -> reqwest::RequestBuilder {
        match &session.credentials {
            Credentials::Oauth { access_token, .. } => {
                let token = access_token.as_ref().map(Secret::expose).unwrap_or_default();
                request.header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            }
            Credentials::Cookie { access_token, user_id, user_agent } => request
                .header(
                    reqwest::header::COOKIE,
                    format!("gp_access_token={}; gp_user_id={user_id}", access_token.expose()),
                )
                .header(reqwest::header::USER_AGENT, user_agent.as_deref().unwrap_or(DEFAULT_BROWSER_UA)),
        }
    }

    /// Send what `make` builds, again on 429 (after `Retry-After`), 5xx and
    /// network errors, up to the configured tries; the final answer whatever
    /// its status otherwise.
    async fn send(
        &self,
        what: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, MediaError> {
        let mut delay = self.config.base_delay;
        let mut attempt = 1;
        loop {
            let result = make().send().await;
            let wait = match &result {
                Ok(resp) if resp.status() == 429 => Some(retry_after(resp).unwrap_or(delay)),
                Ok(resp) if resp.status().is_server_error() => Some(delay),
                Ok(_) => None,
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => Some(delay),
                Err(_) => None,
            };
            match (wait, result) {
                (Some(wait), result) if attempt < self.config.attempts => {
                    let wait = wait.min(self.config.max_retry_after);
                    let why = match result {
                        Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
                        Err(e) => e.without_url().to_string(),
                    };
                    tracing::warn!(what, attempt, wait_ms = wait.as_millis() as u64, why, "GoPro: retrying");
                    tokio::time::sleep(wait).await;
                    delay = (delay * 2).min(self.config.max_retry_after);
                    attempt += 1;
                }
                (_, Ok(resp)) => return Ok(resp),
                (_, Err(e)) => {
                    return Err(MediaError::Network { what: what.to_owned(), message: e.without_url().to_string() });
                }
            }
        }
    }

    /// GET an API document with the session's login: its body, or the error
    /// its status means (`deleted`: the item a 404 or 410 is about).
    async fn api_get(&self, session: &Session, path: &str, deleted: Option<&str>) -> Result<Vec<u8>, MediaError> {
        let url = self.api_url(path);
        self.check(&url)?;
        let what = format!("GET {}", redact_url(&url));
        let resp = self.send(&what, || self.auth(self.client.get(&url), session).header("Accept", ACCEPT)).await?;
        let status = resp.status().as_u16();
        let body = read_body(&what, resp).await?;
        match status {
            200 => Ok(body),
            401 => Err(match &session.credentials {
                Credentials::Cookie { .. } => MediaError::LoginRequired {
                    provider: "gopro",
                    kind: "cookie",
                    reason: format!("{what} answered HTTP 401{}", error_detail(&body)),
                },
                Credentials::Oauth { .. } => MediaError::TokenRejected { what },
            }),
            404 | 410 if deleted.is_some() => {
                Err(MediaError::SourceDeleted { id: deleted.unwrap_or_default().to_owned(), what, status })
            }
            _ => Err(MediaError::Http { what, status, detail: error_detail(&body) }),
        }
    }

    /// The refresh grant: new access and refresh tokens.
    async fn refresh(&self, credentials: &Credentials, now: OffsetDateTime) -> Result<Credentials, MediaError> {
        let Credentials::Oauth { client_id, client_secret, refresh_token, resource_owner_id, .. } = credentials else {
            unreachable!("only an OAuth login is refreshed")
        };
        let url = self.api_url("/v1/oauth2/token");
        self.check(&url)?;
        let what = format!("POST {}", redact_url(&url));
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret.expose())
            .append_pair("refresh_token", refresh_token.expose())
            .finish();
        let resp = self
            .send(&what, || {
                self.client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(form.clone())
            })
            .await?;
        let status = resp.status().as_u16();
        let body = read_body(&what, resp).await?;
        match status {
            200 => {}
            // RFC 6749 §5.2: the refresh token or the client refused. Only the
            // error code is shown: a description could echo what was sent.
            400 | 401 => {
                #[derive(Deserialize)]
                struct OAuthError {
                    error: Option<String>,
                }
                let code = serde_json::from_slice::<OAuthError>(&body).ok().and_then(|e| e.error);
                return Err(MediaError::LoginRequired {
                    provider: "gopro",
                    kind: "oauth",
                    reason: format!("the token endpoint answered HTTP {status} {}", code.as_deref().unwrap_or("")),
                });
            }
            _ => return Err(MediaError::Http { what, status, detail: error_detail(&body) }),
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: Secret,
            expires_in: i64,
            refresh_token: Option<Secret>,
            resource_owner_id: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| MediaError::Invalid {
            what: what.clone(),
            // Position only: serde's message could quote a token.
            message: format!("not a token answer ({:?} error at column {})", e.classify(), e.column()),
        })?;
        Ok(Credentials::Oauth {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            // Rotated when the answer has one; an answer without keeps the old one usable.
            refresh_token: answer.refresh_token.unwrap_or_else(|| refresh_token.clone()),
            access_token: Some(answer.access_token),
            expires_at: Some(now + time::Duration::seconds(answer.expires_in)),
            resource_owner_id: answer.resource_owner_id.or_else(|| resource_owner_id.clone()),
        })
    }

    /// One page of the listing.
    async fn page(&self, session: &Session, page: u32) -> Result<SearchPage, MediaError> {
        let path =
            format!("/media/search?fields={FIELDS}&order_by=created_at&per_page={}&page={page}", self.config.per_page);
        let body = self.api_get(session, &path, None).await?;
        serde_json::from_slice(&body).map_err(|e| MediaError::Invalid {
            what: format!("GET {}", redact_url(&self.api_url("/media/search"))),
            message: format!("listing page {page}: {e}"),
        })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the API, and
/// falls back to the backoff).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

async fn read_body(what: &str, resp: reqwest::Response) -> Result<Vec<u8>, MediaError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| MediaError::Network { what: what.to_owned(), message: e.without_url().to_string() })?;
        if body.len() + chunk.len() > MAX_API_BODY {
            return Err(MediaError::Invalid { what: what.to_owned(), message: "answer over 16 MiB".into() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `: <reason>: <description>` of an error body's first error
/// (`_embedded.errors[{reason, code, description, id}]`), or nothing.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        #[serde(rename = "_embedded")]
        embedded: Embedded,
    }
    #[derive(Deserialize)]
    struct Embedded {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        reason: Option<String>,
        description: Option<String>,
        id: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else { return String::new() };
    let Some(e) = parsed.embedded.errors.into_iter().next() else { return String::new() };
    let mut text: String = [e.reason, e.description].into_iter().flatten().collect::<Vec<_>>().join(": ");
    text.truncate(300);
    match e.id {
        Some(id) => format!(": {text} (error id {id})"),
        None => format!(": {text}"),
    }
}

#[derive(Deserialize)]
struct SearchPage {
    #[serde(rename = "_pages")]
    pages: Pages,
    #[serde(rename = "_embedded")]
    embedded: SearchEmbedded,
}

#[derive(Deserialize)]
struct Pages {
    current_page: u32,
    total_items: u64,
    total_pages: u32,
}

#[derive(Deserialize)]
struct SearchEmbedded {
    #[serde(default)]
    media: Vec<ListedMedia>,
}

#[derive(Deserialize)]
struct ListedMedia {
    id: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    file_extension: Option<String>,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    captured_at: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    ready_to_view: Option<String>,
    #[serde(default)]
    camera_model: Option<String>,
}

impl ListedMedia {
    /// The item, its date from `captured_at` (else `created_at`).
    fn into_item(self) -> Result<MediaItem, MediaError> {
        let when = self.captured_at.as_deref().or(self.created_at.as_deref()).unwrap_or_default();
        let captured_at = OffsetDateTime::parse(when, &time::format_description::well_known::Rfc3339).map_err(|e| {
            MediaError::Invalid { what: format!("media {}", self.id), message: format!("captured_at {when:?}: {e}") }
        })?;
        Ok(MediaItem {
            id: self.id,
            kind: self.kind,
            filename: self.filename.unwrap_or_default(),
            file_extension: self.file_extension.unwrap_or_default(),
            file_size: self.file_size,
            captured_at,
            state: self.ready_to_view.unwrap_or_default(),
            camera_model: self.camera_model,
        })
    }
}

/// `GET /media/{id}/download`.
#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    filename: Option<String>,
    #[serde(rename = "_embedded")]
    embedded: DescriptorEmbedded,
}

#[derive(Deserialize)]
struct DescriptorEmbedded {
    #[serde(default)]
    files: Vec<DescribedFile>,
    #[serde(default)]
    variations: Vec<DescribedFile>,
}

/// An entry of `files[]` (no label: the source) or of `variations[]`.
#[derive(Deserialize)]
struct DescribedFile {
    #[serde(default)]
    label: Option<String>,
    url: Option<String>,
    #[serde(default)]
    head: Option<String>,
    #[serde(default)]
    item_number: Option<u32>,
    #[serde(default)]
    available: Option<bool>,
}

/// The files to copy from a descriptor: every file of `files[]`, then every
/// `source` variation of an item number not already taken; derived labels
/// (`concat`, proxies) and sidecars are left. Keys by [`object_key`], a file
/// numbered when the item has several.
fn select_files(item: &MediaItem, descriptor: Descriptor) -> Result<Vec<SourceFile>, MediaError> {
    // Every entry of `files[]` is a source file, numbered or not (whether
    // GoPro numbers every chapter's entry is not known for sure); a `source`
    // variation adds only an item number `files[]` lacks.
    let mut chosen: Vec<DescribedFile> = descriptor.embedded.files;
    let mut taken: HashSet<Option<u32>> = chosen.iter().map(|f| f.item_number).collect();
    for variation in descriptor.embedded.variations {
        if variation.label.as_deref() == Some("source") && taken.insert(variation.item_number) {
            chosen.push(variation);
        }
    }
    if chosen.is_empty() {
        return Err(MediaError::Unavailable {
            id: item.id.clone(),
            message: "the descriptor lists no source file".into(),
        });
    }
    let filename = descriptor.filename.filter(|f| !f.trim().is_empty()).unwrap_or_else(|| item.filename.clone());
    let several = chosen.len() > 1;
    // By item number, unnumbered entries in the descriptor's order after them.
    chosen.sort_by_key(|f| f.item_number.unwrap_or(u32::MAX));
    let mut keys = HashSet::new();
    chosen
        .into_iter()
        .enumerate()
        .map(|(position, f)| {
            let number = f.item_number.map_or(String::new(), |n| format!(" item {n}"));
            if f.available == Some(false) {
                return Err(MediaError::Unavailable {
                    id: item.id.clone(),
                    message: format!("source file{number} not available yet"),
                });
            }
            let Some(url) = f.url.filter(|u| !u.is_empty()) else {
                return Err(MediaError::Unavailable {
                    id: item.id.clone(),
                    message: format!("source file{number} has no url"),
                });
            };
            // An unnumbered file among several: numbered by its place.
            let numbered = several.then(|| f.item_number.unwrap_or(position as u32 + 1));
            let key = object_key("gopro", item, &filename, numbered);
            if !keys.insert(key.clone()) {
                return Err(MediaError::Invalid {
                    what: format!("media {}", item.id),
                    message: format!("two source files would both be stored as {key}"),
                });
            }
            Ok(SourceFile {
                media_id: item.id.clone(),
                item_number: f.item_number,
                key,
                url: PresignedUrl::new(url),
                head: f.head.filter(|h| !h.is_empty()).map(PresignedUrl::new),
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl MediaProvider for GoPro {
    fn name(&self) -> &'static str {
        "gopro"
    }

    async fn authenticate(&self, credentials: &Credentials, now: OffsetDateTime) -> Result<Authenticated, MediaError> {
        match credentials {
            Credentials::Oauth { .. } if credentials.needs_refresh(now) => {
                let rotated = self.refresh(credentials, now).await?;
                Ok(Authenticated { session: Session { credentials: rotated.clone() }, rotated: Some(rotated) })
            }
            Credentials::Oauth { .. } => {
                Ok(Authenticated { session: Session { credentials: credentials.clone() }, rotated: None })
            }
            // No refresh for cookies: ask whether they still work, before any
            // item is touched, so that a dead login fails the run once.
            Credentials::Cookie { .. } => {
                let session = Session { credentials: credentials.clone() };
                self.api_get(&session, "/media/user", None).await?;
                Ok(Authenticated { session, rotated: None })
            }
        }
    }

    async fn list(&self, session: &Session) -> Result<Listing, MediaError> {
        let mut listing = Listing::default();
        // A library changing while it is paged shifts items across pages: an
        // item may come twice (kept once) or be missed (the next run has it).
        let mut seen = HashSet::new();
        let mut page = 1;
        loop {
            let answer = self.page(session, page).await?;
            listing.pages += 1;
            listing.total_items = answer.pages.total_items;
            let empty = answer.embedded.media.is_empty();
            for listed in answer.embedded.media {
                if !seen.insert(listed.id.clone()) {
                    continue;
                }
                let state = listed.ready_to_view.clone().unwrap_or_default();
                if state != "ready" {
                    listing.not_ready.push((listed.id, state));
                    continue;
                }
                listing.items.push(listed.into_item()?);
            }
            if empty || answer.pages.current_page.max(page) >= answer.pages.total_pages {
                break;
            }
            page += 1;
        }
        Ok(listing)
    }

    async fn source_files(&self, session: &Session, item: &MediaItem) -> Result<Vec<SourceFile>, MediaError> {
        // The id goes into a path: only what GoPro's ids are made of.
        if item.id.is_empty() || !item.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(MediaError::Invalid {
                what: "media id".into(),
                message: format!("{:?} is not an id", item.id),
            });
        }
        let path = format!("/media/{}/download", item.id);
        let body = self.api_get(session, &path, Some(&item.id)).await?;
        let descriptor: Descriptor = serde_json::from_slice(&body).map_err(|e| MediaError::Invalid {
            what: format!("GET {}", redact_url(&self.api_url(&path))),
            message: format!("not a download descriptor: {e}"),
        })?;
        select_files(item, descriptor)
    }

    async fn file_size(&self, file: &SourceFile) -> Result<Option<u64>, MediaError> {
        let Some(head) = &file.head else { return Ok(None) };
        self.check(head.expose())?;
        let what = format!("HEAD {head}");
        let resp = self.send(&what, || self.client.head(head.expose())).await?;
        match resp.status().as_u16() {
            // The header itself: reqwest's `content_length()` is the body's
            // size hint, 0 for any answer to HEAD.
            200 => Ok(resp
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())),
            403 => Err(MediaError::UrlExpired { url: head.to_string(), status: 403 }),
            status => Err(MediaError::Http { what, status, detail: String::new() }),
        }
    }

    async fn download(
        &self,
        file: &SourceFile,
        offset: u64,
        sink: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<Transfer, MediaError> {
        let url = &file.url;
        self.check(url.expose())?;
        let what = format!("GET {url}");
        let resp = self
            .send(&what, || {
                let request = self.client.get(url.expose());
                if offset > 0 { request.header(reqwest::header::RANGE, format!("bytes={offset}-")) } else { request }
            })
            .await?;
        let status = resp.status().as_u16();
        // The whole size: Content-Range's after the slash, or Content-Length of a 200.
        let total_size = match status {
            200 if offset == 0 => resp.content_length(),
            206 => {
                let range = resp.headers().get(reqwest::header::CONTENT_RANGE).and_then(|v| v.to_str().ok());
                let parsed = range.and_then(|r| {
                    let (span, total) = r.strip_prefix("bytes ")?.split_once('/')?;
                    let start: u64 = span.split_once('-')?.0.parse().ok()?;
                    Some((start, total.parse::<u64>().ok()))
                });
                match parsed {
                    Some((start, total)) if start == offset => total,
                    _ => {
                        return Err(MediaError::Invalid {
                            what,
                            message: format!("asked from byte {offset}, answered Content-Range {range:?}"),
                        });
                    }
                }
            }
            200 => {
                return Err(MediaError::Invalid {
                    what,
                    message: format!("asked from byte {offset}, the server ignored Range and sent the whole file"),
                });
            }
            403 => return Err(MediaError::UrlExpired { url: url.to_string(), status }),
            _ => return Err(MediaError::Http { what, status, detail: String::new() }),
        };
        let announced = resp.content_length();
        let mut bytes = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| MediaError::Network { what: what.clone(), message: e.without_url().to_string() })?;
            sink.write_all(&chunk)
                .await
                .map_err(|e| MediaError::Write { what: format!("{} (writing)", file.key), message: e.to_string() })?;
            bytes += chunk.len() as u64;
        }
        sink.flush()
            .await
            .map_err(|e| MediaError::Write { what: format!("{} (flushing)", file.key), message: e.to_string() })?;
        if let Some(expected) = announced.filter(|n| *n != bytes) {
            return Err(MediaError::Length { what, expected, received: bytes });
        }
        Ok(Transfer { bytes, total_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, filename: &str) -> MediaItem {
        MediaItem {
            id: id.into(),
            kind: "Chaptered".into(),
            filename: filename.into(),
            file_extension: "mp4".into(),
            file_size: None,
            captured_at: time::macros::datetime!(2025-07-14 09:30 UTC),
            state: "ready".into(),
            camera_model: None,
        }
    }

    #[test]
    fn descriptor_selection() {
        let descriptor: Descriptor = serde_json::from_value(serde_json::json!({
            "filename": "GH010001.MP4",
            "_embedded": {
                "files": [
                    {"url": "https://f.example/1?s=1", "head": "https://f.example/1?h", "item_number": 1},
                    {"url": "https://f.example/2?s=1", "head": "https://f.example/2?h", "item_number": 2}
                ],
                "variations": [
                    {"label": "source", "url": "https://f.example/v1?s", "item_number": 1},
                    {"label": "source", "url": "https://f.example/v3?s", "item_number": 3},
                    {"label": "concat", "url": "https://f.example/concat?s"},
                    {"label": "high_res_proxy_mp4", "url": "https://f.example/p?s"}
                ],
                "sidecar_files": [{"label": "gpmf", "url": "https://f.example/g?s"}]
            }
        }))
        .unwrap();
        let files = select_files(&item("m1", ""), descriptor).unwrap();
        let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "media/gopro/2025/07/14/GH010001_1.MP4",
                "media/gopro/2025/07/14/GH010001_2.MP4",
                "media/gopro/2025/07/14/GH010001_3.MP4"
            ]
        );
        assert_eq!(files[2].url.expose(), "https://f.example/v3?s");
        assert!(files[2].head.is_none());
    }

    #[test]
    fn unnumbered_files_are_all_kept() {
        let descriptor: Descriptor = serde_json::from_value(serde_json::json!({
            "filename": "GH010001.MP4",
            "_embedded": {
                "files": [{"url": "https://f.example/a?s"}, {"url": "https://f.example/b?s"}],
                "variations": [{"label": "source", "url": "https://f.example/v?s"}]
            }
        }))
        .unwrap();
        let files = select_files(&item("m1", ""), descriptor).unwrap();
        let keys: Vec<_> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["media/gopro/2025/07/14/GH010001_1.MP4", "media/gopro/2025/07/14/GH010001_2.MP4"]);
    }

    #[test]
    fn single_file_without_filename() {
        let descriptor: Descriptor = serde_json::from_value(serde_json::json!({
            "filename": "", "_embedded": {"files": [{"url": "https://f.example/1?s"}], "variations": []}
        }))
        .unwrap();
        let files = select_files(&item("Abc123", ""), descriptor).unwrap();
        assert_eq!(files[0].key, "media/gopro/2025/07/14/Abc123.mp4");
    }

    #[test]
    fn error_bodies() {
        let body =
            br#"{"_embedded":{"errors":[{"reason":"NotFound","code":404,"description":"media not found","id":"e1"}]}}"#;
        assert_eq!(error_detail(body), ": NotFound: media not found (error id e1)");
        assert_eq!(error_detail(b"<html>"), "");
    }
}
