//! Cloud media sync: a provider's media library copied, original quality, one
//! status per media item (issue 14; DESIGN.md "Media sync (GoPro)").
//!
//! This is not a package repository: there is no index to render or sign, so
//! it has a pipeline of its own (authenticate, list-media, download-media,
//! summarize). What it shares with the package steps is the infrastructure:
//! the host policy of [`crate::fetch`], the object store, the Lambda shell.
//!
//! - [`MediaProvider`]: what a provider does: authenticate (refreshing and
//!   rotating tokens), list its whole library, turn one item into the source
//!   files to copy (from a fresh download descriptor), stream one file from
//!   an offset. A second provider is a second module implementing it.
//! - [`gopro`]: the one provider, GoPro's cloud (UPSTREAMS.md "GoPro cloud").
//! - [`credentials`]: the login document (OAuth or cookies), tokens redacted.
//! - [`local`]: a run on one machine: a directory and a SQLite status table.
//! - [`MediaItem`], [`SourceFile`], [`MediaStatus`]: the records; [`object_key`]:
//!   where a file goes, `media/<provider>/<yyyy>/<mm>/<dd>/<filename>`.
//! - [`MediaError`]: what went wrong, and what it means for the item's
//!   status: a login that must be renewed fails the run, never an item.
//!
//! No token reaches a message: credentials and sessions redact their `Debug`,
//! presigned URLs are shown without their query (which holds the signature),
//! and HTTP client errors are stripped of their URL.

pub mod credentials;
pub mod gopro;
pub mod local;
pub mod runner;
pub mod settings;
pub mod status;
pub mod steps;
pub mod transfer;

pub use credentials::{CredentialStore, Credentials, FileCredentials, Secret};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncWrite;

/// One media item of a provider's library, as its listing describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaItem {
    /// The provider's id of the item.
    pub id: String,
    /// The provider's type (GoPro: `Video`, `Photo`, `Burst`, `Chaptered`, …).
    pub kind: String,
    /// As listed; may be empty (the key then falls back to `<id>.<file_extension>`).
    pub filename: String,
    pub file_extension: String,
    /// Bytes, when listed: all the source files together.
    pub file_size: Option<u64>,
    /// When it was shot: the date in the object key.
    #[serde(with = "time::serde::rfc3339")]
    pub captured_at: OffsetDateTime,
    /// The provider's processing state (GoPro: `ready_to_view`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_model: Option<String>,
}

/// One file of an item to copy: a source file (a chapter, a burst frame, or
/// the item's only file), with where it goes and the presigned URLs to read it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub media_id: String,
    /// Chapter or frame number, when the provider numbers the item's files.
    pub item_number: Option<u32>,
    /// The object key ([`object_key`]).
    pub key: String,
    /// Presigned GET.
    pub url: PresignedUrl,
    /// Presigned HEAD, when the provider gives one.
    pub head: Option<PresignedUrl>,
}

/// A URL whose query is a credential (a presigned URL): `Debug` and `Display`
/// show its origin and path only.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl(String);

impl PresignedUrl {
    pub fn new(url: impl Into<String>) -> PresignedUrl {
        PresignedUrl(url.into())
    }

    /// The whole URL, for the request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl std::fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresignedUrl({self})")
    }
}

/// `url` without its query and fragment (and any user info): what may be shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}{}", u.origin().ascii_serialization(), u.path()),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Where an item stands (the status table, keyed `provider#media_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MediaStatus {
    Pending,
    InProgress,
    Completed,
    Failed {
        reason: String,
    },
    /// Gone upstream; the copy we hold is kept.
    SourceDeleted,
}

impl MediaStatus {
    /// The name stored in the status column and its index.
    pub fn as_str(&self) -> &'static str {
        match self {
            MediaStatus::Pending => "PENDING",
            MediaStatus::InProgress => "IN_PROGRESS",
            MediaStatus::Completed => "COMPLETED",
            MediaStatus::Failed { .. } => "FAILED",
            MediaStatus::SourceDeleted => "SOURCE_DELETED",
        }
    }
}

/// A usable login: the credentials after authentication (an OAuth access
/// token fresh for at least the refresh margin). `Debug` shows no token.
#[derive(Debug, Clone)]
pub struct Session {
    pub credentials: Credentials,
}

/// What authentication gives: the session, and the rotated credentials when
/// a refresh happened (to be written back, or the next run holds a spent
/// refresh token).
#[derive(Debug)]
pub struct Authenticated {
    pub session: Session,
    pub rotated: Option<Credentials>,
}

/// A whole library, listed.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Ready items, in the provider's order, each once.
    pub items: Vec<MediaItem>,
    /// Items not ready yet (id, state): left for a later run.
    pub not_ready: Vec<(String, String)>,
    /// Pages read.
    pub pages: u32,
    /// The provider's count of items, as the last page gave it.
    pub total_items: u64,
}

/// One transfer of a source file (or of its tail, from an offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes written to the sink.
    pub bytes: u64,
    /// SHA-256 (hex) of the bytes written: of the whole file when from offset 0.
    pub sha256: String,
    /// The whole file's size, as the response gave it.
    pub total_size: Option<u64>,
}

/// What a media provider does. Implementations hold their configuration and
/// HTTP client; everything per run comes in as arguments.
#[async_trait::async_trait]
pub trait MediaProvider: Send + Sync {
    /// The provider's name in object keys and status records: `gopro`.
    fn name(&self) -> &'static str;

    /// Check `credentials` at `now`, refreshing an OAuth token with less than
    /// a day left. A login that cannot be used any more is
    /// [`MediaError::LoginRequired`].
    async fn authenticate(&self, credentials: &Credentials, now: OffsetDateTime) -> Result<Authenticated, MediaError>;

    /// The whole library, page after page; items not ready are set apart.
    async fn list(&self, session: &Session) -> Result<Listing, MediaError>;

    /// The files to copy for `item`, from a fresh descriptor (its URLs
    /// expire: ask again rather than keep them). Gone upstream:
    /// [`MediaError::SourceDeleted`].
    async fn source_files(&self, session: &Session, item: &MediaItem) -> Result<Vec<SourceFile>, MediaError>;

    /// The size of `file` (its presigned HEAD), when the provider tells it.
    async fn file_size(&self, file: &SourceFile) -> Result<Option<u64>, MediaError>;

    /// Stream `file` from byte `offset` to its end into `sink`.
    async fn download(
        &self,
        file: &SourceFile,
        offset: u64,
        sink: &mut (dyn AsyncWrite + Send + Unpin),
    ) -> Result<Transfer, MediaError>;
}

/// Where a file of an item goes: `media/<provider>/<yyyy>/<mm>/<dd>/<filename>`,
/// the date the UTC day of `captured_at`. The file name is the item's (`<id>.<file_extension>`
/// when it has none); a file numbered among several (a chapter, a burst frame)
/// keeps its number: `GH010001.MP4` chapter 2 is `GH010001_2.MP4`.
pub fn object_key(provider: &str, item: &MediaItem, filename: &str, numbered: Option<u32>) -> String {
    let name = if filename.trim().is_empty() {
        let ext = item.file_extension.trim_start_matches('.');
        if ext.is_empty() { item.id.clone() } else { format!("{}.{ext}", item.id) }
    } else {
        filename.to_owned()
    };
    let name = match numbered {
        Some(n) => match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}_{n}.{ext}"),
            _ => format!("{name}_{n}"),
        },
        None => name,
    };
    let day = item.captured_at.to_offset(time::UtcOffset::UTC).date();
    format!(
        "media/{provider}/{:04}/{:02}/{:02}/{}",
        day.year(),
        u8::from(day.month()),
        day.day(),
        safe_file_name(&name)
    )
}

/// A file name from upstream made safe as one key segment and one local file
/// name: no separators, no control characters, never `.` or `..`.
fn safe_file_name(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

/// What went wrong, named for the item or request it concerns. No variant
/// carries a token or a presigned URL's query.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The login is no longer valid (revoked or expired cookies, a refresh
    /// token refused): a person must log in again. Fails the run, never an item.
    #[error("{provider}: the {kind} login is no longer valid ({reason}): log in again and store the new credentials")]
    LoginRequired { provider: &'static str, kind: &'static str, reason: String },
    /// An OAuth access token refused before its expiry: authenticate again
    /// (with [`Credentials::mark_expired`]) and retry once.
    #[error("{what}: access token refused (HTTP 401); refresh it and retry")]
    TokenRejected { what: String },
    #[error("media {id}: deleted upstream ({what} answered HTTP {status})")]
    SourceDeleted { id: String, what: String, status: u16 },
    /// A presigned URL expired (or its signature was refused): fetch the descriptor again.
    #[error("{url}: presigned URL refused (HTTP {status}): expired; fetch the descriptor again")]
    UrlExpired { url: String, status: u16 },
    #[error("media {id}: {message}")]
    Unavailable { id: String, message: String },
    #[error("{what}: HTTP status {status}{detail}")]
    Http { what: String, status: u16, detail: String },
    #[error("{what}: {message}")]
    Network { what: String, message: String },
    #[error("{what}: refused: {reason}")]
    Refused { what: String, reason: String },
    #[error("{what}: unexpected answer: {message}")]
    Invalid { what: String, message: String },
    #[error("{what}: body cut short or overlong: received {received} bytes, expected {expected}")]
    Length { what: String, expected: u64, received: u64 },
    #[error("{what}: {message}")]
    Write { what: String, message: String },
    /// Stopped cleanly before the end (a deadline), progress kept: try again.
    #[error("{what}: interrupted: {message}")]
    Interrupted { what: String, message: String },
}

impl MediaError {
    /// A person must log in again.
    pub fn is_login(&self) -> bool {
        matches!(self, MediaError::LoginRequired { .. })
    }

    /// What this error makes of the item it concerns: `None` for a failed
    /// login (the run fails, no item does).
    pub fn item_status(&self) -> Option<MediaStatus> {
        match self {
            MediaError::LoginRequired { .. } | MediaError::TokenRejected { .. } => None,
            MediaError::SourceDeleted { .. } => Some(MediaStatus::SourceDeleted),
            other => Some(MediaStatus::Failed { reason: other.to_string() }),
        }
    }

    /// Worth another try later in the same run (or the next).
    pub fn is_transient(&self) -> bool {
        match self {
            MediaError::Http { status, .. } => *status == 429 || *status >= 500,
            MediaError::Network { .. } | MediaError::Length { .. } | MediaError::UrlExpired { .. } => true,
            MediaError::TokenRejected { .. } | MediaError::Unavailable { .. } | MediaError::Interrupted { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(filename: &str, captured: OffsetDateTime) -> MediaItem {
        MediaItem {
            id: "Kx9".into(),
            kind: "Video".into(),
            filename: filename.into(),
            file_extension: "mp4".into(),
            file_size: None,
            captured_at: captured,
            state: "ready".into(),
            camera_model: None,
        }
    }

    #[test]
    fn keys() {
        let t = time::macros::datetime!(2025-07-04 23:30 -02:00); // 2025-07-05 01:30 UTC
        assert_eq!(
            object_key("gopro", &item("GX010001.MP4", t), "GX010001.MP4", None),
            "media/gopro/2025/07/05/GX010001.MP4"
        );
        assert_eq!(object_key("gopro", &item("", t), "", None), "media/gopro/2025/07/05/Kx9.mp4");
        assert_eq!(object_key("gopro", &item("", t), "", Some(3)), "media/gopro/2025/07/05/Kx9_3.mp4");
        assert_eq!(
            object_key("gopro", &item("a", t), "GH010001.MP4", Some(2)),
            "media/gopro/2025/07/05/GH010001_2.MP4"
        );
        assert_eq!(object_key("gopro", &item("a", t), "../x/..", None), "media/gopro/2025/07/05/.._x_..");
        assert_eq!(object_key("gopro", &item("a", t), "..", None), "media/gopro/2025/07/05/_..");
    }

    #[test]
    fn presigned_urls_show_no_query() {
        let u = PresignedUrl::new("https://u:p@files.example.com/v1/a?Signature=SECRET&X=1");
        assert_eq!(u.to_string(), "https://files.example.com/v1/a");
        assert!(!format!("{u:?}").contains("SECRET"));
    }

    #[test]
    fn status_names_and_serde() {
        let s = MediaStatus::Failed { reason: "x".into() };
        assert_eq!(s.as_str(), "FAILED");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"status":"FAILED","reason":"x"}"#);
        assert_eq!(serde_json::to_string(&MediaStatus::SourceDeleted).unwrap(), r#"{"status":"SOURCE_DELETED"}"#);
    }
}
