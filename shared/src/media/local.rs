//! A media sync on one machine: a provider's library copied into a directory,
//! one status row per item in SQLite (what `pkgrelay media sync` will run; the
//! AWS pipeline does the same with DynamoDB, S3 and one function per step).
//!
//! A run: authenticate (rotated credentials written back to their file before
//! anything else), list the library, and copy each ready item that is not
//! `COMPLETED` yet. Each file goes to `<dir>/<key>` through `<key>.part`: a run
//! cut short leaves the part, and the next run resumes it with a `Range`
//! request; the final name appears only once the byte count matches the size
//! upstream announced. An expired presigned URL is renewed by asking for the
//! descriptor again, once per file. Items gone from the listing, or whose
//! descriptor answers 404, become `SOURCE_DELETED` and keep their copy; such
//! an item is not asked for again while a lagging listing still shows it.
//!
//! A login that must be renewed stops the run at once with
//! [`MediaError::LoginRequired`]; the item being copied goes back to
//! `PENDING`, and no item is marked failed for it.
//!
//! The status table (`media_status`) is keyed `provider#media_id`, as the
//! DynamoDB table will be; `media_files` holds each copied file's key, size
//! and SHA-256.

use super::{Credentials, MediaError, MediaItem, MediaProvider, MediaStatus, Session, SourceFile};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::OffsetDateTime;

/// The SQLite status table of a local media sync.
pub struct StatusDb {
    conn: Mutex<Connection>,
}

/// One row of `media_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub media_id: String,
    pub status: MediaStatus,
    /// Bytes copied (all files).
    pub bytes: u64,
    pub attempts: u32,
}

impl StatusDb {
    pub fn open(path: &Path) -> Result<StatusDb, MediaError> {
        let fail = |e: rusqlite::Error| MediaError::Write { what: path.display().to_string(), message: e.to_string() };
        let conn = Connection::open(path).map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS media_status (
                 pk TEXT PRIMARY KEY,          -- provider#media_id
                 provider TEXT NOT NULL,
                 media_id TEXT NOT NULL,
                 status TEXT NOT NULL,
                 reason TEXT,
                 bytes INTEGER NOT NULL DEFAULT 0,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 updated_at TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS media_status_by_status ON media_status (status);
             CREATE TABLE IF NOT EXISTS media_files (
                 pk TEXT NOT NULL,
                 key TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 sha256 TEXT NOT NULL,
                 PRIMARY KEY (pk, key)
             );",
        )
        .map_err(fail)?;
        Ok(StatusDb { conn: Mutex::new(conn) })
    }

    fn fail(e: rusqlite::Error) -> MediaError {
        MediaError::Write { what: "media status table".into(), message: e.to_string() }
    }

    /// The row of one item.
    pub fn get(&self, provider: &str, media_id: &str) -> Result<Option<StatusRow>, MediaError> {
        let conn = self.conn.lock().unwrap();
        conn.query_row(
            "SELECT media_id, status, reason, bytes, attempts FROM media_status WHERE pk = ?1",
            params![format!("{provider}#{media_id}")],
            row_of,
        )
        .optional()
        .map_err(Self::fail)
    }

    /// Every row of `provider`, by media id.
    pub fn all(&self, provider: &str) -> Result<Vec<StatusRow>, MediaError> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT media_id, status, reason, bytes, attempts FROM media_status WHERE provider = ?1 ORDER BY \
                 media_id",
            )
            .map_err(Self::fail)?;
        let rows = stmt.query_map(params![provider], row_of).map_err(Self::fail)?;
        rows.collect::<Result<_, _>>().map_err(Self::fail)
    }

    /// Each copied file of an item: (key, bytes, sha256), by key.
    pub fn files(&self, provider: &str, media_id: &str) -> Result<Vec<(String, u64, String)>, MediaError> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT key, bytes, sha256 FROM media_files WHERE pk = ?1 ORDER BY key")
            .map_err(Self::fail)?;
        let rows = stmt
            .query_map(params![format!("{provider}#{media_id}")], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
            })
            .map_err(Self::fail)?;
        rows.collect::<Result<_, _>>().map_err(Self::fail)
    }

    /// Set an item's status (`attempt`: this write starts a copy).
    fn set(
        &self,
        provider: &str,
        media_id: &str,
        status: &MediaStatus,
        bytes: u64,
        attempt: bool,
    ) -> Result<(), MediaError> {
        let reason = match status {
            MediaStatus::Failed { reason } => Some(reason.as_str()),
            _ => None,
        };
        let now = OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        self.conn
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO media_status (pk, provider, media_id, status, reason, bytes, attempts, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (pk) DO UPDATE SET status = ?4, reason = ?5,
                     bytes = CASE WHEN ?4 = 'COMPLETED' THEN ?6 ELSE bytes END,
                     attempts = attempts + ?7, updated_at = ?8",
                params![
                    format!("{provider}#{media_id}"),
                    provider,
                    media_id,
                    status.as_str(),
                    reason,
                    bytes as i64,
                    attempt as i64,
                    now
                ],
            )
            .map(drop)
            .map_err(Self::fail)
    }

    fn record_file(
        &self,
        provider: &str,
        media_id: &str,
        key: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), MediaError> {
        self.conn
            .lock()
            .unwrap()
            .execute(
                "INSERT OR REPLACE INTO media_files (pk, key, bytes, sha256) VALUES (?1, ?2, ?3, ?4)",
                params![format!("{provider}#{media_id}"), key, bytes as i64, sha256],
            )
            .map(drop)
            .map_err(Self::fail)
    }
}

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<StatusRow> {
    let name: String = r.get(1)?;
    let status = match name.as_str() {
        "PENDING" => MediaStatus::Pending,
        "IN_PROGRESS" => MediaStatus::InProgress,
        "COMPLETED" => MediaStatus::Completed,
        "SOURCE_DELETED" => MediaStatus::SourceDeleted,
        _ => MediaStatus::Failed { reason: r.get::<_, Option<String>>(2)?.unwrap_or_default() },
    };
    Ok(StatusRow {
        media_id: r.get(0)?,
        status,
        bytes: r.get::<_, i64>(3)? as u64,
        attempts: r.get::<_, i64>(4)? as u32,
    })
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Items copied in this run.
    pub copied: u32,
    /// Items already `COMPLETED`.
    pub already: u32,
    pub failed: u32,
    /// Items found deleted upstream in this run.
    pub deleted: u32,
    /// Items not ready upstream (left for a later run).
    pub not_ready: u32,
    /// Bytes fetched in this run.
    pub bytes: u64,
    /// Whether the credentials were rotated and written back.
    pub credentials_rotated: bool,
}

/// Where a local run reads and writes.
pub struct LocalSync<'a> {
    pub provider: &'a dyn MediaProvider,
    /// The credentials document; rewritten when the provider rotates tokens.
    pub credentials: PathBuf,
    /// Files go to `<dir>/<key>`.
    pub dir: PathBuf,
    pub db: &'a StatusDb,
}

impl LocalSync<'_> {
    /// One run over the whole library (see the module docs).
    pub async fn run(&self) -> Result<SyncSummary, MediaError> {
        let provider = self.provider.name();
        let mut summary = SyncSummary::default();
        let mut session = self.authenticate(&mut summary, false).await?;
        let listing = match self.provider.list(&session).await {
            Err(MediaError::TokenRejected { .. }) => {
                session = self.authenticate(&mut summary, true).await?;
                self.provider.list(&session).await?
            }
            other => other?,
        };
        summary.not_ready = listing.not_ready.len() as u32;

        // Gone from the listing (and not merely not ready): deleted upstream.
        let listed: std::collections::HashSet<&str> = listing
            .items
            .iter()
            .map(|m| m.id.as_str())
            .chain(listing.not_ready.iter().map(|(id, _)| id.as_str()))
            .collect();
        for row in self.db.all(provider)? {
            if !listed.contains(row.media_id.as_str()) && row.status != MediaStatus::SourceDeleted {
                self.db.set(provider, &row.media_id, &MediaStatus::SourceDeleted, 0, false)?;
                summary.deleted += 1;
            }
        }

        for item in &listing.items {
            match self.db.get(provider, &item.id)?.map(|r| r.status) {
                Some(MediaStatus::Completed) => {
                    summary.already += 1;
                    continue;
                }
                // Its descriptor answered 404 before: a listing that lags
                // behind a deletion is not asked again.
                Some(MediaStatus::SourceDeleted) => continue,
                _ => {}
            }
            self.db.set(provider, &item.id, &MediaStatus::InProgress, 0, true)?;
            let mut result = self.copy_item(&session, item, &mut summary).await;
            if let Err(MediaError::TokenRejected { .. }) = result {
                // Refused before its expiry: refreshed once, the item tried again.
                session = self.authenticate(&mut summary, true).await?;
                result = self.copy_item(&session, item, &mut summary).await;
            }
            match result {
                Ok(bytes) => {
                    self.db.set(provider, &item.id, &MediaStatus::Completed, bytes, false)?;
                    summary.copied += 1;
                }
                Err(e) => match e.item_status() {
                    // The login: back to PENDING, and the run stops here.
                    None => {
                        self.db.set(provider, &item.id, &MediaStatus::Pending, 0, false)?;
                        return Err(e);
                    }
                    Some(status) => {
                        tracing::warn!(media = item.id, error = %e, "media item not copied");
                        match status {
                            MediaStatus::SourceDeleted => summary.deleted += 1,
                            _ => summary.failed += 1,
                        }
                        self.db.set(provider, &item.id, &status, 0, false)?;
                    }
                },
            }
        }
        Ok(summary)
    }

    /// Authenticate from the credentials file (`force`: refresh even if the
    /// token looks fresh), writing rotated credentials back at once.
    async fn authenticate(&self, summary: &mut SyncSummary, force: bool) -> Result<Session, MediaError> {
        let bad = |e: super::credentials::CredentialsError| MediaError::Invalid {
            what: self.credentials.display().to_string(),
            message: e.message,
        };
        let mut credentials = Credentials::load(&self.credentials).map_err(bad)?;
        if force {
            credentials.mark_expired();
        }
        let auth = self.provider.authenticate(&credentials, OffsetDateTime::now_utc()).await?;
        if let Some(rotated) = &auth.rotated {
            // Before anything else: the old refresh token is spent.
            rotated.save(&self.credentials).map_err(bad)?;
            summary.credentials_rotated = true;
        }
        Ok(auth.session)
    }

    /// Copy every source file of `item`; the bytes of all its files.
    async fn copy_item(
        &self,
        session: &Session,
        item: &MediaItem,
        summary: &mut SyncSummary,
    ) -> Result<u64, MediaError> {
        let files = self.provider.source_files(session, item).await?;
        let mut total = 0;
        for (index, file) in files.iter().enumerate() {
            let mut file = file.clone();
            let mut renewed = false;
            let bytes = loop {
                match self.copy_file(&file, &item.id, summary).await {
                    Err(MediaError::UrlExpired { .. }) if !renewed => {
                        // The descriptor's URLs expired: a fresh one, once.
                        renewed = true;
                        let fresh = self.provider.source_files(session, item).await?;
                        file = fresh.into_iter().nth(index).filter(|f| f.key == file.key).ok_or_else(|| {
                            MediaError::Invalid {
                                what: format!("media {}", item.id),
                                message: "the descriptor changed".into(),
                            }
                        })?;
                    }
                    other => break other?,
                }
            };
            total += bytes;
        }
        if let Some(expected) = item.file_size.filter(|n| *n != total) {
            return Err(MediaError::Length {
                what: format!("media {} (all its files)", item.id),
                expected,
                received: total,
            });
        }
        Ok(total)
    }

    /// One file: resumed from its `.part`, renamed into place when whole.
    async fn copy_file(&self, file: &SourceFile, media_id: &str, summary: &mut SyncSummary) -> Result<u64, MediaError> {
        let provider = self.provider.name();
        let dest = self.dir.join(&file.key);
        let part = dest.with_file_name(format!("{}.part", dest.file_name().unwrap_or_default().to_string_lossy()));
        let io = |what: &Path, e: std::io::Error| MediaError::Write {
            what: what.display().to_string(),
            message: e.to_string(),
        };
        let size = self.provider.file_size(file).await?;
        if let (Ok(meta), Some(size)) = (std::fs::metadata(&dest), size)
            && meta.len() == size
        {
            // Copied by an earlier run that stopped before recording it.
            let sha = sha256_file(&dest).map_err(|e| io(&dest, e))?;
            self.db.record_file(provider, media_id, &file.key, size, &sha)?;
            return Ok(size);
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io(parent, e))?;
        }
        let offset = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
        let offset = if size.is_some_and(|s| offset > s) { 0 } else { offset };
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .append(offset > 0)
            .write(true)
            .truncate(offset == 0)
            .open(&part)
            .await
            .map_err(|e| io(&part, e))?;
        let transfer = self.provider.download(file, offset, &mut out).await?;
        out.sync_all().await.map_err(|e| io(&part, e))?;
        drop(out);
        summary.bytes += transfer.bytes;
        let whole = offset + transfer.bytes;
        if let Some(expected) = size.or(transfer.total_size).filter(|n| *n != whole) {
            return Err(MediaError::Length { what: file.key.clone(), expected, received: whole });
        }
        // From the start: the digest of the stream; resumed: of the file.
        let sha = if offset == 0 { transfer.sha256 } else { sha256_file(&part).map_err(|e| io(&part, e))? };
        tokio::fs::rename(&part, &dest).await.map_err(|e| io(&dest, e))?;
        self.db.record_file(provider, media_id, &file.key, whole, &sha)?;
        Ok(whole)
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}
