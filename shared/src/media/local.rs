//! A media sync on one machine, on embedded defaults: the same four steps as
//! on AWS ([`super::runner`]) over
//! - [`StatusDb`]: the status table in SQLite (`media_records`, keyed
//!   `provider#media_id` as the DynamoDB table is, the record as JSON beside
//!   its status);
//! - [`FileCredentials`]: the credentials file, rewritten when tokens rotate;
//! - [`DirMultipart`]: a directory standing in for S3's multipart upload:
//!   parts are files under `<dir>/.uploads/<upload id>/`, and `complete`
//!   concatenates them (checking the whole file's CRC-64/NVME) and renames the
//!   result into place: nothing is ever visible at the final name before;
//! - the run files (`runs/media/<execution>/`) in the state directory.
//!
//! [`context`] builds the [`MediaContext`] of such a run.

use super::credentials::FileCredentials;
use super::status::{Condition, StatusRecord, StatusTable, status_key};
use super::steps::{CollectMetrics, MediaBackends, MediaContext};
use super::transfer::{MultipartStore, StoredObject, StoredPart, crc_base64};
use super::{MediaError, MediaProvider, MediaStatus};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The hidden directory of uploads in progress, under the output directory.
pub const UPLOADS_DIR: &str = ".uploads";

/// The [`MediaContext`] of a local run: `provider`, the credentials file,
/// the status table `db`, run files under `state`, media files under `out`.
pub fn context(
    provider: Arc<dyn MediaProvider>,
    credentials: &Path,
    db: Arc<StatusDb>,
    state: &Path,
    out: &Path,
) -> Result<MediaContext, MediaError> {
    let io = |p: &Path, e: std::io::Error| MediaError::Write { what: p.display().to_string(), message: e.to_string() };
    let runs = crate::blob::DirStore::new(state).map_err(|e| io(state, e))?;
    let backends = MediaBackends {
        provider,
        status: db,
        credentials: Arc::new(FileCredentials::new(credentials)),
        objects: Arc::new(DirMultipart::new(out).map_err(|e| io(out, e))?),
        runs: Arc::new(runs),
        runs_bucket: state.display().to_string(),
    };
    // The command prints its own summary: no metric line on the terminal.
    Ok(MediaContext::new(backends, "local").with_metrics(Arc::new(CollectMetrics::default())))
}

// ---- The status table in SQLite ----

/// The SQLite status table of a local media sync.
pub struct StatusDb {
    conn: Mutex<Connection>,
}

impl StatusDb {
    pub fn open(path: &Path) -> Result<StatusDb, MediaError> {
        let fail = |e: rusqlite::Error| MediaError::Write { what: path.display().to_string(), message: e.to_string() };
        let conn = Connection::open(path).map_err(fail)?;
        // WAL, synced at checkpoints: one commit per record stays cheap when a
        // first run marks thousands of items PENDING.
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS media_records (
                 pk TEXT PRIMARY KEY,          -- provider#media_id
                 provider TEXT NOT NULL,
                 media_id TEXT NOT NULL,
                 status TEXT NOT NULL,
                 updated_at TEXT NOT NULL,
                 record TEXT NOT NULL          -- the StatusRecord as JSON
             );
             CREATE INDEX IF NOT EXISTS media_records_by_status ON media_records (status, updated_at);",
        )
        .map_err(fail)?;
        Ok(StatusDb { conn: Mutex::new(conn) })
    }

    fn fail(e: impl std::fmt::Display) -> MediaError {
        MediaError::Write { what: "media status table".into(), message: e.to_string() }
    }

    fn read(conn: &Connection, pk: &str) -> Result<Option<StatusRecord>, MediaError> {
        let text: Option<String> = conn
            .query_row("SELECT record FROM media_records WHERE pk = ?1", params![pk], |r| r.get(0))
            .optional()
            .map_err(Self::fail)?;
        text.map(|t| serde_json::from_str(&t).map_err(Self::fail)).transpose()
    }

    /// The record of one item.
    pub fn get(&self, provider: &str, media_id: &str) -> Result<Option<StatusRecord>, MediaError> {
        Self::read(&self.conn.lock().unwrap(), &status_key(provider, media_id))
    }

    /// Every record of `provider`, by media id.
    pub fn all(&self, provider: &str) -> Result<Vec<StatusRecord>, MediaError> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT record FROM media_records WHERE provider = ?1 ORDER BY media_id")
            .map_err(Self::fail)?;
        let rows = stmt.query_map(params![provider], |r| r.get::<_, String>(0)).map_err(Self::fail)?;
        rows.map(|t| serde_json::from_str(&t.map_err(Self::fail)?).map_err(Self::fail)).collect()
    }

    /// Each copied file of an item: (key, bytes, sha256), by key.
    pub fn files(&self, provider: &str, media_id: &str) -> Result<Vec<(String, u64, String)>, MediaError> {
        let mut files: Vec<_> = self
            .get(provider, media_id)?
            .map(|r| r.files.into_iter().map(|f| (f.key, f.bytes, f.sha256)).collect())
            .unwrap_or_default();
        files.sort();
        Ok(files)
    }
}

#[async_trait::async_trait]
impl StatusTable for StatusDb {
    async fn get_many(&self, provider: &str, ids: &[String]) -> Result<HashMap<String, StatusRecord>, MediaError> {
        let conn = self.conn.lock().unwrap();
        let mut found = HashMap::new();
        for id in ids {
            if let Some(r) = Self::read(&conn, &status_key(provider, id))? {
                found.insert(id.clone(), r);
            }
        }
        Ok(found)
    }

    async fn put(&self, record: &StatusRecord, condition: Condition) -> Result<bool, MediaError> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction().map_err(Self::fail)?;
        let pk = record.pk();
        if !condition.allows(Self::read(&tx, &pk)?.as_ref()) {
            return Ok(false);
        }
        let updated = record.updated_at.format(&time::format_description::well_known::Rfc3339).map_err(Self::fail)?;
        tx.execute(
            "INSERT OR REPLACE INTO media_records (pk, provider, media_id, status, updated_at, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                pk,
                record.provider,
                record.media_id,
                record.status.as_str(),
                updated,
                serde_json::to_string(record).map_err(Self::fail)?
            ],
        )
        .map_err(Self::fail)?;
        tx.commit().map_err(Self::fail)?;
        Ok(true)
    }

    async fn ids_not_deleted(&self, provider: &str) -> Result<Vec<String>, MediaError> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT media_id FROM media_records WHERE provider = ?1 AND status != ?2 ORDER BY media_id")
            .map_err(Self::fail)?;
        let rows =
            stmt.query_map(params![provider, MediaStatus::SourceDeleted.as_str()], |r| r.get(0)).map_err(Self::fail)?;
        rows.collect::<Result<_, _>>().map_err(Self::fail)
    }
}

// ---- Multipart uploads into a directory ----

/// S3's multipart upload over a directory (see the module docs):
/// `<root>/.uploads/<upload id>/key` names the object, `<n>.part` holds part
/// `n` and `<n>.etag` its ETag (the part's CRC-64/NVME in hex).
pub struct DirMultipart {
    root: PathBuf,
}

impl DirMultipart {
    pub fn new(root: &Path) -> std::io::Result<DirMultipart> {
        std::fs::create_dir_all(root.join(UPLOADS_DIR))?;
        Ok(DirMultipart { root: root.to_owned() })
    }

    fn uploads(&self) -> PathBuf {
        self.root.join(UPLOADS_DIR)
    }

    /// The object's path; a key that would leave the directory is refused.
    fn object(&self, key: &str) -> Result<PathBuf, MediaError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key.split('/').any(|s| s.is_empty() || s == "." || s == ".." || s == UPLOADS_DIR);
        if bad {
            return Err(MediaError::Refused {
                what: key.to_owned(),
                reason: "not a key of the media directory".into(),
            });
        }
        Ok(self.root.join(key))
    }

    /// The directory of upload `id` (ids are ours: hex).
    fn upload(&self, id: &str) -> Result<PathBuf, MediaError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(MediaError::Invalid {
                what: "upload id".into(),
                message: format!("{id:?} is not one of ours"),
            });
        }
        Ok(self.uploads().join(id))
    }

    fn io(what: &Path, e: std::io::Error) -> MediaError {
        MediaError::Write { what: what.display().to_string(), message: e.to_string() }
    }

    fn check_crc(what: &str, body: &[u8], crc64nvme: &str) -> Result<u64, MediaError> {
        let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, body);
        if crc_base64(crc) != crc64nvme {
            return Err(MediaError::Invalid {
                what: what.to_owned(),
                message: format!("CRC-64/NVME mismatch: sent {crc64nvme}, body has {}", crc_base64(crc)),
            });
        }
        Ok(crc)
    }

    /// Write `body` to `path` through a temporary file beside it.
    fn write_atomic(path: &Path, body: &[u8]) -> Result<(), MediaError> {
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(|e| Self::io(dir, e))?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(|e| Self::io(dir, e))?;
        tmp.write_all(body).map_err(|e| Self::io(path, e))?;
        tmp.as_file().sync_all().map_err(|e| Self::io(path, e))?;
        tmp.persist(path).map_err(|e| Self::io(path, e.error))?;
        Ok(())
    }

    fn crc_of_file(path: &Path) -> std::io::Result<u64> {
        let mut f = std::fs::File::open(path)?;
        let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(digest.finalize());
            }
            digest.update(&buf[..n]);
        }
    }

    fn parts_of(dir: &Path) -> std::io::Result<Vec<StoredPart>> {
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let Some(number) = name.strip_suffix(".part").and_then(|n| n.parse::<u32>().ok()) else { continue };
            let part = dir.join(&name);
            let Ok(etag) = std::fs::read_to_string(dir.join(format!("{number}.etag"))) else { continue };
            parts.push(StoredPart { number, size: std::fs::metadata(&part)?.len(), etag });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }
}

/// A fresh upload id: 128 random-enough bits in hex.
fn new_upload_id(key: &str) -> String {
    use sha2::Digest;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seed = format!(
        "{key}\0{}\0{}\0{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..16])
}

#[async_trait::async_trait]
impl MultipartStore for DirMultipart {
    async fn head(&self, key: &str) -> Result<Option<StoredObject>, MediaError> {
        let path = self.object(key)?;
        tokio::task::spawn_blocking(move || match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {
                let crc = Self::crc_of_file(&path).map_err(|e| Self::io(&path, e))?;
                Ok(Some(StoredObject { size: m.len(), crc64nvme: Some(crc_base64(crc)) }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(&path, e)),
        })
        .await
        .map_err(|e| MediaError::Write { what: key.to_owned(), message: e.to_string() })?
    }

    async fn create(&self, key: &str) -> Result<String, MediaError> {
        self.object(key)?;
        let id = new_upload_id(key);
        let dir = self.upload(&id)?;
        std::fs::create_dir_all(&dir).map_err(|e| Self::io(&dir, e))?;
        Self::write_atomic(&dir.join("key"), key.as_bytes())?;
        Ok(id)
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<StoredPart>>, MediaError> {
        let dir = self.upload(upload_id)?;
        match std::fs::read_to_string(dir.join("key")) {
            Ok(k) if k == key => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(&dir, e)),
        }
        Self::parts_of(&dir).map(Some).map_err(|e| Self::io(&dir, e))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: bytes::Bytes,
        crc64nvme: &str,
    ) -> Result<String, MediaError> {
        let dir = self.upload(upload_id)?;
        if std::fs::read_to_string(dir.join("key")).ok().as_deref() != Some(key) {
            return Err(MediaError::Invalid { what: key.to_owned(), message: format!("no upload {upload_id}") });
        }
        let what = format!("{key} part {number}");
        let sent = crc64nvme.to_owned();
        tokio::task::spawn_blocking(move || -> Result<String, MediaError> {
            // Refused like S3 refuses a part whose checksum differs.
            let crc = Self::check_crc(&what, &body, &sent)?;
            let etag = format!("{crc:016x}");
            // The ETag first: a part file without its ETag beside it is not listed.
            Self::write_atomic(&dir.join(format!("{number}.etag")), etag.as_bytes())?;
            Self::write_atomic(&dir.join(format!("{number}.part")), &body)?;
            Ok(etag)
        })
        .await
        .map_err(|e| MediaError::Write { what: key.to_owned(), message: e.to_string() })?
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
        crc64nvme: &str,
    ) -> Result<(), MediaError> {
        let dir = self.upload(upload_id)?;
        let dest = self.object(key)?;
        let stored = self
            .list_parts(key, upload_id)
            .await?
            .ok_or_else(|| MediaError::Invalid { what: key.to_owned(), message: format!("no upload {upload_id}") })?;
        for (i, p) in parts.iter().enumerate() {
            let ok = p.number == i as u32 + 1 && stored.iter().any(|s| s.number == p.number && s.etag == p.etag);
            if !ok {
                return Err(MediaError::Invalid {
                    what: key.to_owned(),
                    message: format!("part {} is not the one uploaded (InvalidPart)", p.number),
                });
            }
        }
        let expected = crc64nvme.to_owned();
        let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), MediaError> {
            let assembled = dir.join("assembled");
            let mut out = std::fs::File::create(&assembled).map_err(|e| Self::io(&assembled, e))?;
            let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
            let mut buf = vec![0; 1 << 20];
            for n in numbers {
                let part = dir.join(format!("{n}.part"));
                let mut f = std::fs::File::open(&part).map_err(|e| Self::io(&part, e))?;
                loop {
                    let read = f.read(&mut buf).map_err(|e| Self::io(&part, e))?;
                    if read == 0 {
                        break;
                    }
                    digest.update(&buf[..read]);
                    out.write_all(&buf[..read]).map_err(|e| Self::io(&assembled, e))?;
                }
            }
            let crc = crc_base64(digest.finalize());
            if crc != expected {
                let _ = std::fs::remove_file(&assembled);
                return Err(MediaError::Invalid {
                    what: key,
                    message: format!("full-object CRC-64/NVME mismatch: expected {expected}, the parts make {crc}"),
                });
            }
            out.sync_all().map_err(|e| Self::io(&assembled, e))?;
            drop(out);
            let parent = dest.parent().expect("has a parent");
            std::fs::create_dir_all(parent).map_err(|e| Self::io(parent, e))?;
            std::fs::rename(&assembled, &dest).map_err(|e| Self::io(&dest, e))?;
            std::fs::remove_dir_all(&dir).map_err(|e| Self::io(&dir, e))?;
            Ok(())
        })
        .await
        .map_err(|e| MediaError::Write { what: "complete".into(), message: e.to_string() })?
    }

    async fn abort(&self, _key: &str, upload_id: &str) -> Result<(), MediaError> {
        let dir = self.upload(upload_id)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::io(&dir, e)),
            _ => Ok(()),
        }
    }

    async fn put(&self, key: &str, body: bytes::Bytes, crc64nvme: &str) -> Result<(), MediaError> {
        let dest = self.object(key)?;
        Self::check_crc(key, &body, crc64nvme)?;
        // Through the uploads directory (same file system), then renamed into place.
        let uploads = self.uploads();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<(), MediaError> {
            let mut tmp =
                tempfile::Builder::new().prefix("put-").tempfile_in(&uploads).map_err(|e| Self::io(&uploads, e))?;
            tmp.write_all(&body).map_err(|e| Self::io(&dest, e))?;
            tmp.as_file().sync_all().map_err(|e| Self::io(&dest, e))?;
            let parent = dest.parent().expect("has a parent");
            std::fs::create_dir_all(parent).map_err(|e| Self::io(parent, e))?;
            tmp.persist(&dest).map_err(|e| Self::io(&dest, e.error))?;
            Ok(())
        })
        .await
        .map_err(|e| MediaError::Write { what: key, message: e.to_string() })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::transfer::crc64nvme;

    #[tokio::test]
    async fn parts_become_visible_only_when_complete_with_the_right_crc() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirMultipart::new(dir.path()).unwrap();
        let key = "media/gopro/2025/07/14/a.mp4";
        let (a, b) = (bytes::Bytes::from(vec![1u8; 1000]), bytes::Bytes::from(vec![2u8; 10]));
        let id = store.create(key).await.unwrap();
        let e1 = store.upload_part(key, &id, 1, a.clone(), &crc64nvme(&a)).await.unwrap();
        assert!(store.upload_part(key, &id, 2, b.clone(), &crc64nvme(&a)).await.is_err(), "wrong part CRC");
        let e2 = store.upload_part(key, &id, 2, b.clone(), &crc64nvme(&b)).await.unwrap();
        let parts = store.list_parts(key, &id).await.unwrap().unwrap();
        assert_eq!(parts.iter().map(|p| (p.number, p.size)).collect::<Vec<_>>(), [(1, 1000), (2, 10)]);
        assert_eq!(store.head(key).await.unwrap(), None);
        assert!(!dir.path().join(key).exists());
        let whole: Vec<u8> = [&a[..], &b[..]].concat();
        assert!(store.complete(key, &id, &parts, &crc64nvme(&a)).await.is_err(), "wrong whole CRC");
        assert!(!dir.path().join(key).exists());
        assert_eq!((parts[0].etag.clone(), parts[1].etag.clone()), (e1, e2));
        store.complete(key, &id, &parts, &crc64nvme(&whole)).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join(key)).unwrap(), whole);
        let head = store.head(key).await.unwrap().unwrap();
        assert_eq!((head.size, head.crc64nvme), (1010, Some(crc64nvme(&whole))));
        assert_eq!(store.list_parts(key, &id).await.unwrap(), None);
        // Aborted: gone. A key leaving the directory: refused.
        let id = store.create(key).await.unwrap();
        store.abort(key, &id).await.unwrap();
        assert_eq!(store.list_parts(key, &id).await.unwrap(), None);
        assert!(store.create("../x").await.is_err());
        assert!(store.create(".uploads/x").await.is_err());
        store.put("media/x.jpg", b.clone(), &crc64nvme(&b)).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("media/x.jpg")).unwrap(), &b[..]);
    }
}
