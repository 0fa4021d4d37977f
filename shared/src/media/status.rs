//! The status table: one record per media item, keyed `<provider>#<media_id>`
//! (statemachine/media.md "The status table"). DynamoDB on AWS
//! (pkgrelay-aws `media::DynamoStatusTable`), SQLite locally
//! ([`super::local::StatusDb`]), in memory for tests ([`MemoryStatusTable`]).
//!
//! Which items are due: new ones, `PENDING`, `FAILED` once its `retry_after`
//! has passed (none: the next run), and `IN_PROGRESS`: a run starts when no
//! other copies (a daily schedule, a 12 h timeout), so an item still in
//! progress was left by a copy that died (killed, timed out), and the next
//! run resumes its upload at once. Were two runs to meet on an item,
//! download-media's conditional start and the store's checks keep the
//! object whole. `COMPLETED` and `SOURCE_DELETED` are not due.

use super::transfer::{CopiedFile, UploadProgress};
use super::{MediaError, MediaStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Keys per batch read (DynamoDB BatchGetItem's limit).
pub const BATCH_READ: usize = 100;

/// The status table's key of an item.
pub fn status_key(provider: &str, media_id: &str) -> String {
    format!("{provider}#{media_id}")
}

/// One file of an item, as copied (the record's `files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub key: String,
    pub bytes: u64,
    pub sha256: String,
    /// Base64 of the big-endian CRC-64/NVME of the whole file.
    pub crc64nvme: String,
}

impl From<&CopiedFile> for FileRecord {
    fn from(c: &CopiedFile) -> FileRecord {
        FileRecord { key: c.key.clone(), bytes: c.bytes, sha256: c.sha256.clone(), crc64nvme: c.crc64nvme.clone() }
    }
}

impl FileRecord {
    /// As [`CopyRequest::previous`](super::transfer::CopyRequest) takes it.
    pub fn to_copied(&self) -> CopiedFile {
        CopiedFile {
            key: self.key.clone(),
            bytes: self.bytes,
            sha256: self.sha256.clone(),
            crc64nvme: self.crc64nvme.clone(),
            transferred: 0,
            first_byte: None,
        }
    }
}

/// One item's record. Serialized flat, as the DynamoDB item is (`pk`,
/// `status`, `reason`, …; see the module docs of statemachine/media.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "RecordWire", try_from = "RecordWire")]
pub struct StatusRecord {
    pub provider: String,
    pub media_id: String,
    pub status: MediaStatus,
    /// Copies started (download-media invocations that began this item).
    pub attempts: u32,
    /// Bytes of the files copied (all of them).
    pub bytes: u64,
    pub files: Vec<FileRecord>,
    pub captured_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    /// A `FAILED` item is due again after this (none: at the next run).
    pub retry_after: Option<OffsetDateTime>,
    /// The multipart upload in progress, if any.
    pub upload: Option<UploadProgress>,
}

impl StatusRecord {
    /// A new record in `PENDING`.
    pub fn new(provider: &str, media_id: &str, captured_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Self {
        StatusRecord {
            provider: provider.to_owned(),
            media_id: media_id.to_owned(),
            status: MediaStatus::Pending,
            attempts: 0,
            bytes: 0,
            files: Vec::new(),
            captured_at,
            updated_at: now,
            retry_after: None,
            upload: None,
        }
    }

    pub fn pk(&self) -> String {
        status_key(&self.provider, &self.media_id)
    }

    /// Whether a run at `now` should copy this item (see the module docs).
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        match self.status {
            MediaStatus::Pending | MediaStatus::InProgress => true,
            MediaStatus::Failed { .. } => self.retry_after.is_none_or(|t| now >= t),
            MediaStatus::Completed | MediaStatus::SourceDeleted => false,
        }
    }

    /// The file copied to `key`, if recorded.
    pub fn file(&self, key: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.key == key)
    }

    /// Record `file` (replacing an earlier record of its key).
    pub fn set_file(&mut self, file: FileRecord) {
        match self.files.iter_mut().find(|f| f.key == file.key) {
            Some(f) => *f = file,
            None => self.files.push(file),
        }
    }
}

/// How long a `FAILED` item waits after its `attempts`-th failure that a
/// retry cannot help: 6 h, doubling, at most a week (a daily run then tries
/// it the next day, then every other day, …).
pub fn failure_backoff(attempts: u32) -> time::Duration {
    let hours = 6i64.saturating_mul(1 << attempts.saturating_sub(1).min(8));
    time::Duration::hours(hours.min(7 * 24))
}

/// The record as stored: flat, timestamps in RFC 3339.
#[derive(Serialize, Deserialize)]
struct RecordWire {
    pk: String,
    provider: String,
    media_id: String,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    files: Vec<FileRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    captured_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    retry_after: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upload: Option<UploadProgress>,
}

impl From<StatusRecord> for RecordWire {
    fn from(r: StatusRecord) -> RecordWire {
        let reason = match &r.status {
            MediaStatus::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        RecordWire {
            pk: r.pk(),
            status: r.status.as_str().to_owned(),
            reason,
            provider: r.provider,
            media_id: r.media_id,
            attempts: r.attempts,
            bytes: r.bytes,
            files: r.files,
            captured_at: r.captured_at,
            updated_at: r.updated_at,
            retry_after: r.retry_after,
            upload: r.upload,
        }
    }
}

impl TryFrom<RecordWire> for StatusRecord {
    type Error = String;
    fn try_from(w: RecordWire) -> Result<StatusRecord, String> {
        let status =
            status_of(&w.status, w.reason).ok_or_else(|| format!("{}: unknown status {:?}", w.pk, w.status))?;
        Ok(StatusRecord {
            provider: w.provider,
            media_id: w.media_id,
            status,
            attempts: w.attempts,
            bytes: w.bytes,
            files: w.files,
            captured_at: w.captured_at,
            updated_at: w.updated_at,
            retry_after: w.retry_after,
            upload: w.upload,
        })
    }
}

/// The status of a stored name (`reason`: a `FAILED` item's).
pub fn status_of(name: &str, reason: Option<String>) -> Option<MediaStatus> {
    Some(match name {
        "PENDING" => MediaStatus::Pending,
        "IN_PROGRESS" => MediaStatus::InProgress,
        "COMPLETED" => MediaStatus::Completed,
        "FAILED" => MediaStatus::Failed { reason: reason.unwrap_or_default() },
        "SOURCE_DELETED" => MediaStatus::SourceDeleted,
        _ => return None,
    })
}

/// Under which condition a write happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    None,
    /// Only if the item has no record yet.
    Absent,
    /// Only if the stored status is one of these names (`PENDING`, …), or there is no record.
    StatusIn(Vec<&'static str>),
}

impl Condition {
    /// Whether `current` (the stored record, if any) allows the write.
    pub fn allows(&self, current: Option<&StatusRecord>) -> bool {
        match (self, current) {
            (Condition::None, _) | (_, None) => true,
            (Condition::Absent, Some(_)) => false,
            (Condition::StatusIn(names), Some(r)) => names.contains(&r.status.as_str()),
        }
    }
}

/// Where item records live.
#[async_trait::async_trait]
pub trait StatusTable: Send + Sync {
    /// The records of these items of `provider` that exist (in batches of
    /// [`BATCH_READ`] on DynamoDB), by media id.
    async fn get_many(&self, provider: &str, ids: &[String]) -> Result<HashMap<String, StatusRecord>, MediaError>;

    /// One record.
    async fn get(&self, provider: &str, media_id: &str) -> Result<Option<StatusRecord>, MediaError> {
        let mut found = self.get_many(provider, &[media_id.to_owned()]).await?;
        Ok(found.remove(media_id))
    }

    /// Write `record` whole if `condition` allows; whether it was written.
    async fn put(&self, record: &StatusRecord, condition: Condition) -> Result<bool, MediaError>;

    /// Write each of `records` that does not exist yet (what a first run
    /// lists: thousands of new items); how many were written. One by one
    /// here; DynamoDB writes them a hundred to a request.
    async fn put_new(&self, records: &[StatusRecord]) -> Result<usize, MediaError> {
        let mut written = 0;
        for r in records {
            written += usize::from(self.put(r, Condition::Absent).await?);
        }
        Ok(written)
    }

    /// The ids of `provider`'s items whose status is not `SOURCE_DELETED`
    /// (what list-media compares with the listing to find deletions).
    async fn ids_not_deleted(&self, provider: &str) -> Result<Vec<String>, MediaError>;
}

/// A status table in memory (tests, and a dry run).
#[derive(Default)]
pub struct MemoryStatusTable {
    records: std::sync::Mutex<std::collections::BTreeMap<String, StatusRecord>>,
}

impl MemoryStatusTable {
    /// Every record, by key.
    pub fn all(&self) -> Vec<StatusRecord> {
        self.records.lock().unwrap().values().cloned().collect()
    }
}

#[async_trait::async_trait]
impl StatusTable for MemoryStatusTable {
    async fn get_many(&self, provider: &str, ids: &[String]) -> Result<HashMap<String, StatusRecord>, MediaError> {
        let records = self.records.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| records.get(&status_key(provider, id)).map(|r| (id.clone(), r.clone())))
            .collect())
    }

    async fn put(&self, record: &StatusRecord, condition: Condition) -> Result<bool, MediaError> {
        let mut records = self.records.lock().unwrap();
        if !condition.allows(records.get(&record.pk())) {
            return Ok(false);
        }
        records.insert(record.pk(), record.clone());
        Ok(true)
    }

    async fn ids_not_deleted(&self, provider: &str) -> Result<Vec<String>, MediaError> {
        let records = self.records.lock().unwrap();
        Ok(records
            .values()
            .filter(|r| r.provider == provider && r.status != MediaStatus::SourceDeleted)
            .map(|r| r.media_id.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn records_serialize_flat_and_back() {
        let now = datetime!(2026-01-02 03:04:05 UTC);
        let mut r = StatusRecord::new("gopro", "m1", Some(datetime!(2025-07-14 09:30 UTC)), now);
        r.status = MediaStatus::Failed { reason: "HTTP 500".into() };
        r.attempts = 2;
        r.retry_after = Some(now + failure_backoff(2));
        r.files.push(FileRecord {
            key: "media/gopro/a".into(),
            bytes: 3,
            sha256: "ab".into(),
            crc64nvme: "AA==".into(),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["pk"], "gopro#m1");
        assert_eq!(v["status"], "FAILED");
        assert_eq!(v["reason"], "HTTP 500");
        assert_eq!(v["updated_at"], "2026-01-02T03:04:05Z");
        assert_eq!(v["retry_after"], "2026-01-02T15:04:05Z");
        assert!(v.get("upload").is_none());
        assert_eq!(serde_json::from_value::<StatusRecord>(v).unwrap(), r);
    }

    #[test]
    fn what_is_due() {
        let now = datetime!(2026-01-02 03:00 UTC);
        let mut r = StatusRecord::new("gopro", "m1", None, now);
        assert!(r.is_due(now));
        r.status = MediaStatus::InProgress;
        assert!(r.is_due(now), "left by a copy that died: resumed by the next run");
        r.status = MediaStatus::Failed { reason: "x".into() };
        assert!(r.is_due(now), "no retry_after: the next run");
        r.retry_after = Some(now + time::Duration::hours(6));
        assert!(!r.is_due(now + time::Duration::hours(5)));
        assert!(r.is_due(now + time::Duration::hours(6)));
        r.status = MediaStatus::Completed;
        assert!(!r.is_due(now + time::Duration::days(99)));
        assert_eq!(failure_backoff(1), time::Duration::hours(6));
        assert_eq!(failure_backoff(3), time::Duration::hours(24));
        assert_eq!(failure_backoff(30), time::Duration::days(7));
    }

    #[tokio::test]
    async fn conditions() {
        let t = MemoryStatusTable::default();
        let now = OffsetDateTime::now_utc();
        let mut r = StatusRecord::new("gopro", "m1", None, now);
        assert!(t.put(&r, Condition::Absent).await.unwrap());
        assert!(!t.put(&r, Condition::Absent).await.unwrap());
        r.status = MediaStatus::Completed;
        assert!(t.put(&r, Condition::StatusIn(vec!["PENDING"])).await.unwrap());
        assert!(!t.put(&r, Condition::StatusIn(vec!["PENDING"])).await.unwrap());
        assert_eq!(t.get("gopro", "m1").await.unwrap().unwrap().status, MediaStatus::Completed);
        assert!(t.ids_not_deleted("gopro").await.unwrap() == ["m1"]);
    }
}
