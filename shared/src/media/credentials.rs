//! A media provider's login, as one JSON document: what the Secrets Manager
//! secret holds on AWS, and a file (mode 0600) locally.
//!
//! Two forms, by `kind`:
//! - `oauth`: a client id and secret and a refresh token; the access token and
//!   its expiry once refreshed. A refresh is due when the access token has
//!   less than [`REFRESH_MARGIN`] left; the provider answers with rotated
//!   tokens, which the caller writes back (a refresh token is good once).
//! - `cookie`: the cookies of a web login (an access token, a user id) and
//!   the browser User-Agent to send with them. There is no refresh: when the
//!   provider refuses them, a person logs in again.
//!
//! ```json
//! {"kind": "oauth", "client_id": "…", "client_secret": "…", "refresh_token": "…",
//!  "access_token": "…", "expires_at": "2026-12-01T00:00:00Z"}
//! {"kind": "cookie", "access_token": "<JWE>", "user_id": "<uuid>", "user_agent": "Mozilla/5.0 …"}
//! ```
//!
//! Every token is a [`Secret`]: its `Debug` and `Display` say `<redacted>`, and
//! an unreadable document's error names where it is and the line and column,
//! never its text (serde's messages can quote a value).

use serde::{Deserialize, Serialize};
use std::path::Path;
use time::OffsetDateTime;

/// A refresh is due when the access token has less than this left: a daily
/// run then never starts with a token that could expire during it.
pub const REFRESH_MARGIN: time::Duration = time::Duration::hours(24);

/// A token or password: shown nowhere, only handed to the request that needs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one header or form field that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A provider login in one of its two forms (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credentials {
    Oauth {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_token: Option<Secret>,
        #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
        /// The account, as the token endpoint names it (not secret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource_owner_id: Option<String>,
    },
    Cookie {
        access_token: Secret,
        user_id: String,
        /// The browser's User-Agent; the provider's default browser string without it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
    },
}

/// The credentials document could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("credentials {place}: {message}")]
pub struct CredentialsError {
    /// The file or secret: never its contents.
    pub place: String,
    pub message: String,
}

impl Credentials {
    /// Parse the document held at `place` (a path, a secret's name: for the error).
    pub fn from_json(text: &str, place: &str) -> Result<Credentials, CredentialsError> {
        serde_json::from_str(text).map_err(|e| CredentialsError {
            place: place.to_owned(),
            // Not `e`'s message: it can quote a token. Its category and position only.
            message: format!(
                "not a credentials document ({:?} error at line {}, column {}); expected {{\"kind\": \"oauth\" | \
                 \"cookie\", …}}",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("credentials serialize")
    }

    /// Read a local credentials file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let place = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CredentialsError { place: place.clone(), message: format!("cannot read: {e}") })?;
        Credentials::from_json(&text, &place)
    }

    /// Write a local credentials file in one step (a temporary file in the
    /// same directory, mode 0600, renamed over it): a crash leaves the old
    /// document or the new one, never half of one, and a rotated refresh token
    /// is not lost.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        use std::io::Write;
        let fail = |what: &str, e: std::io::Error| CredentialsError {
            place: path.display().to_string(),
            message: format!("cannot {what}: {e}"),
        };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail("create a temporary file", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| fail("chmod", e))?;
        }
        tmp.write_all(self.to_json().as_bytes()).map_err(|e| fail("write", e))?;
        tmp.as_file().sync_all().map_err(|e| fail("sync", e))?;
        tmp.persist(path).map_err(|e| fail("replace", e.error))?;
        Ok(())
    }

    /// Whether an OAuth login must be refreshed before use at `now`: no access
    /// token, no known expiry, or less than [`REFRESH_MARGIN`] left. A cookie
    /// login cannot be refreshed.
    pub fn needs_refresh(&self, now: OffsetDateTime) -> bool {
        match self {
            Credentials::Oauth { access_token: Some(_), expires_at: Some(at), .. } => *at - now < REFRESH_MARGIN,
            Credentials::Oauth { .. } => true,
            Credentials::Cookie { .. } => false,
        }
    }

    /// Forget the access token's expiry: the provider refused it before its
    /// time (revoked, or the clock was wrong), so the next authentication
    /// refreshes it.
    pub fn mark_expired(&mut self) {
        if let Credentials::Oauth { expires_at, .. } = self {
            *expires_at = None;
        }
    }

    /// `oauth` or `cookie`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Oauth { .. } => "oauth",
            Credentials::Cookie { .. } => "cookie",
        }
    }
}

/// Where the credentials document is kept, in versions: each write makes a
/// new version, and a run reads the version authenticate wrote (states carry
/// its id, never a token). Secrets Manager on AWS (pkgrelay-aws
/// `media::SecretCredentials`), a file locally ([`FileCredentials`]).
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    /// The document at `version` (`None`: the current one), and its version id.
    async fn read(&self, version: Option<&str>) -> Result<(Credentials, String), CredentialsError>;
    /// Write rotated credentials as the successor of `previous` (the version
    /// they were refreshed from): the new version id. Written again after a
    /// failure with the same `previous`, it makes no second version where the
    /// store can tell (Secrets Manager: the request token derives from `previous`).
    async fn write(&self, credentials: &Credentials, previous: &str) -> Result<String, CredentialsError>;
}

/// The credentials in a local file; a version id is the SHA-256 of the file's
/// bytes. The file holds one version only: asked for another, it answers the
/// current one (a newer login than the one asked for).
pub struct FileCredentials {
    pub path: std::path::PathBuf,
}

impl FileCredentials {
    pub fn new(path: impl Into<std::path::PathBuf>) -> FileCredentials {
        FileCredentials { path: path.into() }
    }

    fn read_now(&self) -> Result<(Credentials, String), CredentialsError> {
        use sha2::Digest;
        let place = self.path.display().to_string();
        let bytes = std::fs::read(&self.path)
            .map_err(|e| CredentialsError { place: place.clone(), message: format!("cannot read: {e}") })?;
        let version = hex::encode(sha2::Sha256::digest(&bytes));
        let text = String::from_utf8(bytes)
            .map_err(|_| CredentialsError { place: place.clone(), message: "not UTF-8 text".into() })?;
        Ok((Credentials::from_json(&text, &place)?, version))
    }
}

#[async_trait::async_trait]
impl CredentialStore for FileCredentials {
    async fn read(&self, version: Option<&str>) -> Result<(Credentials, String), CredentialsError> {
        let (credentials, current) = self.read_now()?;
        if let Some(asked) = version.filter(|v| *v != current) {
            tracing::debug!(asked, current, "credentials file rewritten since: reading its current version");
        }
        Ok((credentials, current))
    }

    async fn write(&self, credentials: &Credentials, _previous: &str) -> Result<String, CredentialsError> {
        credentials.save(&self.path)?;
        Ok(self.read_now()?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_tokens() {
        let c = Credentials::from_json(
            r#"{"kind":"cookie","access_token":"SECRET-JWE","user_id":"u-1"}"#,
            "/etc/pkgrelay/gopro.json",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("SECRET"));
        let e = Credentials::from_json(r#"{"kind":"oauth","client_id":1,"refresh_token":"SECRET-RT"}"#, "file")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET") && e.contains("file"), "{e}");
        let e = Credentials::from_json(r#"{"kind":"cookie","access_token":"SECRET","user_id":"u","x":"SECRET"}"#, "f")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn refresh_only_under_a_day() {
        let now = time::macros::datetime!(2026-01-01 0:00 UTC);
        let oauth = |left: Option<time::Duration>| Credentials::Oauth {
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            refresh_token: Secret::new("r"),
            access_token: Some(Secret::new("a")),
            expires_at: left.map(|d| now + d),
            resource_owner_id: None,
        };
        assert!(!oauth(Some(time::Duration::hours(25))).needs_refresh(now));
        assert!(oauth(Some(time::Duration::hours(23))).needs_refresh(now));
        assert!(oauth(None).needs_refresh(now));
    }

    #[tokio::test]
    async fn file_store_versions_are_content_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCredentials::new(dir.path().join("gopro.json"));
        let c = Credentials::Cookie { access_token: Secret::new("t"), user_id: "u".into(), user_agent: None };
        c.save(&store.path).unwrap();
        let (read, v1) = store.read(None).await.unwrap();
        assert_eq!((read, v1.len()), (c.clone(), 64));
        let d = Credentials::Cookie { access_token: Secret::new("t2"), user_id: "u".into(), user_agent: None };
        let v2 = store.write(&d, &v1).await.unwrap();
        assert_ne!(v1, v2);
        assert_eq!(store.read(Some(&v1)).await.unwrap(), (d, v2));
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gopro.json");
        let c = Credentials::Cookie { access_token: Secret::new("t"), user_id: "u".into(), user_agent: None };
        c.save(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
