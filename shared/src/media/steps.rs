//! The media pipeline's four steps (statemachine/media.md), each a plain
//! `async fn(&MediaContext, Input) -> Result<Output, MediaStepError>` with
//! serde types on both sides: the Lambda functions call them over DynamoDB,
//! Secrets Manager and S3 (pkgrelay-aws `media`), `pkgrelay media sync`
//! over SQLite, a file and a directory ([`super::runner`]).
//!
//! | step | in | out |
//! |---|---|---|
//! | [`authenticate`] | `force_refresh` | the secret's version id, kind, refreshed |
//! | [`list_media`] | the version id | `runs/media/<execution>/items.json` + counts |
//! | [`download_media`] | the version id, one item | what became of it |
//! | [`summarize`] | the listing, the Map's results, the pass | counts, outcome; one metric line |
//!
//! No token enters an input, an output or a message: states carry the
//! secret's version id, and each step reads the credentials at that version.

use super::credentials::{CredentialStore, CredentialsError};
use super::status::{Condition, FileRecord, StatusRecord, StatusTable, failure_backoff};
use super::transfer::{self, Checkpoint, CopyRequest, MultipartStore, UploadProgress};
use super::{Credentials, MediaError, MediaItem, MediaProvider, MediaStatus, Session, SourceFile};
use crate::blob::{BlobError, ObjectStore, WriteMode};
use crate::steps::items::{ResultWriterDetails, read_child_results, readable_cause};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Where a run's files go in the media bucket: `runs/media/<execution>/`.
pub const RUNS_PREFIX: &str = "runs/media/";

/// Stop starting parts this long before the Lambda's deadline: time left to
/// record the item's status and answer.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// Failures listed by name in a summary; beyond, only counted.
const FAILURES_LISTED: usize = 20;

/// The CloudWatch namespace of the metric lines.
pub const METRICS_NAMESPACE: &str = "pkgrelay/media";

// ---- The context ----

/// What time it is (a test sets it).
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told (tests).
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> ManualClock {
        ManualClock(Mutex::new(at))
    }
    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Where summarize's embedded-metric line goes: stdout in a Lambda (CloudWatch
/// Logs reads it there), stderr when stdout carries the result (`--invoke`),
/// nowhere or a list in tests.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, line: &str);
}

pub struct StdoutMetrics;
impl MetricsSink for StdoutMetrics {
    fn emit(&self, line: &str) {
        println!("{line}");
    }
}

pub struct StderrMetrics;
impl MetricsSink for StderrMetrics {
    fn emit(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// Keeps the lines (tests), or drops them (`pkgrelay media sync`, which prints its summary).
#[derive(Default)]
pub struct CollectMetrics(pub Mutex<Vec<String>>);
impl MetricsSink for CollectMetrics {
    fn emit(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

/// The backends of a media run: what [`MediaContext::new`] is built from.
pub struct MediaBackends {
    pub provider: Arc<dyn MediaProvider>,
    pub status: Arc<dyn StatusTable>,
    pub credentials: Arc<dyn CredentialStore>,
    /// Where media objects go (`media/<provider>/…`): S3 multipart, or a directory.
    pub objects: Arc<dyn MultipartStore>,
    /// Where run files go (`runs/media/…`): the media bucket, or the state directory.
    pub runs: Arc<dyn ObjectStore>,
    /// The bucket name `runs` stands for, as list-media's output names it
    /// (the Distributed Map's ItemReader reads it).
    pub runs_bucket: String,
}

/// The run an invocation belongs to.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The execution's name (the last part of its ARN): run files go under
    /// `runs/media/<execution>/`.
    pub execution: String,
    /// When the invocation must have answered (a Lambda's deadline).
    pub deadline: Option<Instant>,
}

/// Everything a media step may use. Made once per process
/// ([`MediaContext::new`]), then per invocation [`MediaContext::for_run`].
#[derive(Clone)]
pub struct MediaContext {
    pub provider: Arc<dyn MediaProvider>,
    pub status: Arc<dyn StatusTable>,
    pub credentials: Arc<dyn CredentialStore>,
    pub objects: Arc<dyn MultipartStore>,
    pub runs: Arc<dyn ObjectStore>,
    pub runs_bucket: String,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn MetricsSink>,
    /// The metric lines' `Environment` dimension (`PKGRELAY_ENV`; `local`).
    pub environment: String,
    pub run: RunInfo,
}

impl MediaContext {
    /// The one place a media context is made: the system clock, metric lines
    /// to stdout, no run yet.
    pub fn new(backends: MediaBackends, environment: impl Into<String>) -> MediaContext {
        MediaContext {
            provider: backends.provider,
            status: backends.status,
            credentials: backends.credentials,
            objects: backends.objects,
            runs: backends.runs,
            runs_bucket: backends.runs_bucket,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(StdoutMetrics),
            environment: environment.into(),
            run: RunInfo::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MediaContext {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSink>) -> MediaContext {
        self.metrics = metrics;
        self
    }

    /// This context for one invocation of execution `execution_id` (an ARN
    /// or a bare name), answering by `deadline`.
    pub fn for_run(&self, execution_id: &str, deadline: Option<Instant>) -> MediaContext {
        let mut ctx = self.clone();
        ctx.run = RunInfo { execution: execution_name(execution_id), deadline };
        ctx
    }

    fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// `runs/media/<execution>/`.
    pub fn run_prefix(&self) -> String {
        format!("{RUNS_PREFIX}{}/", self.run.execution)
    }
}

/// An execution's name from its ARN (`arn:aws:states:…:execution:<machine>:<name>`),
/// made safe as one key segment.
pub fn execution_name(execution_id: &str) -> String {
    let name = execution_id.rsplit(':').next().unwrap_or_default();
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    match safe.as_str() {
        "" | "." | ".." => "unnamed".to_owned(),
        _ => safe,
    }
}

// ---- Errors ----

/// A media step's failure, named for Step Functions' `Retry`/`Catch`
/// ([`MediaStepError::error_type`]).
#[derive(Debug, thiserror::Error)]
pub enum MediaStepError {
    /// A person must log in again: the run fails once, no item does.
    #[error("{0}")]
    LoginRequired(String),
    /// Worth retrying (the Map's Retry: 30, 60, 120 s); progress is kept.
    #[error("{0}")]
    Transient(String),
    /// The event is not what the step takes.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Internal(String),
}

impl MediaStepError {
    /// The `errorType` a Lambda returns and `ErrorEquals` matches.
    pub fn error_type(&self) -> &'static str {
        match self {
            MediaStepError::LoginRequired(_) => "LoginRequired",
            MediaStepError::Transient(_) => "MediaTransient",
            MediaStepError::InvalidInput(_) => "InvalidInput",
            MediaStepError::Internal(_) => "InternalError",
        }
    }
}

impl From<MediaError> for MediaStepError {
    fn from(e: MediaError) -> MediaStepError {
        if e.is_login() {
            MediaStepError::LoginRequired(e.to_string())
        } else if e.is_transient() {
            MediaStepError::Transient(e.to_string())
        } else {
            MediaStepError::Internal(e.to_string())
        }
    }
}

impl From<CredentialsError> for MediaStepError {
    fn from(e: CredentialsError) -> MediaStepError {
        MediaStepError::Internal(e.to_string())
    }
}

impl From<BlobError> for MediaStepError {
    fn from(e: BlobError) -> MediaStepError {
        MediaStepError::Internal(e.to_string())
    }
}

pub type MediaResult<T> = Result<T, MediaStepError>;

// ---- authenticate ----

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateInput {
    #[serde(default)]
    pub force_refresh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticateOutput {
    pub secret_version_id: String,
    /// `oauth` or `cookies`.
    pub kind: String,
    pub refreshed: bool,
}

/// Check the credentials; refresh an OAuth token with less than a day left
/// (or at once, `force_refresh`), writing the rotated tokens back before
/// anything else (the old refresh token is spent).
pub async fn authenticate(ctx: &MediaContext, input: AuthenticateInput) -> MediaResult<AuthenticateOutput> {
    let (mut credentials, version) = ctx.credentials.read(None).await?;
    if input.force_refresh {
        credentials.mark_expired();
    }
    let kind = match credentials {
        Credentials::Oauth { .. } => "oauth",
        Credentials::Cookie { .. } => "cookies",
    };
    let auth = ctx.provider.authenticate(&credentials, ctx.clock.now()).await?;
    let (secret_version_id, refreshed) = match &auth.rotated {
        Some(rotated) => (ctx.credentials.write(rotated, &version).await?, true),
        None => (version, false),
    };
    tracing::info!(kind, refreshed, secret_version_id, "authenticated");
    Ok(AuthenticateOutput { secret_version_id, kind: kind.to_owned(), refreshed })
}

/// A session from the credentials at `version` (as authenticate left them).
async fn session_at(ctx: &MediaContext, version: &str) -> MediaResult<Session> {
    if version.trim().is_empty() {
        return Err(MediaStepError::InvalidInput("secret_version_id is empty".into()));
    }
    let (credentials, _) = ctx.credentials.read(Some(version)).await?;
    Ok(Session { credentials })
}

// ---- list-media ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMediaInput {
    pub secret_version_id: String,
}

/// Where the items to copy are (the Distributed Map's ItemReader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsLocation {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMediaOutput {
    pub items: ItemsLocation,
    /// Items due (in items.json).
    pub to_copy: u64,
    /// Items the library listed, ready or not.
    pub listed: u64,
    pub not_ready: u64,
    /// Listed items already `COMPLETED`.
    pub completed: u64,
    /// Items found gone from the listing in this run (now `SOURCE_DELETED`).
    pub deleted: u64,
    pub pages: u64,
}

/// Page through the library, read the status table in batches, mark what
/// the listing no longer has `SOURCE_DELETED`, new items `PENDING`, and
/// write the items due to `runs/media/<execution>/items.json`.
pub async fn list_media(ctx: &MediaContext, input: ListMediaInput) -> MediaResult<ListMediaOutput> {
    let session = session_at(ctx, &input.secret_version_id).await?;
    let provider = ctx.provider_name();
    let listing = ctx.provider.list(&session).await.map_err(|e| match e {
        // Just authenticated, and refused: the next try (or run) refreshes.
        MediaError::TokenRejected { .. } => MediaStepError::Transient(e.to_string()),
        e => e.into(),
    })?;
    let now = ctx.clock.now();
    let ids: Vec<String> = listing.items.iter().map(|m| m.id.clone()).collect();
    let records = ctx.status.get_many(provider, &ids).await?;

    let mut due = Vec::new();
    let mut new = Vec::new();
    let mut completed = 0;
    for item in &listing.items {
        match records.get(&item.id) {
            Some(r) if r.status == MediaStatus::Completed => completed += 1,
            Some(r) if !r.is_due(now) => {}
            Some(_) => due.push(item.clone()),
            None => {
                new.push(StatusRecord::new(provider, &item.id, Some(item.captured_at), now));
                due.push(item.clone());
            }
        }
    }
    // New items as PENDING, never over a record written meanwhile (a first
    // run may meet thousands: batched by the table).
    ctx.status.put_new(&new).await?;

    // Gone from the listing (not merely not ready): deleted upstream, the copy kept.
    let listed: HashSet<&str> = listing
        .items
        .iter()
        .map(|m| m.id.as_str())
        .chain(listing.not_ready.iter().map(|(id, _)| id.as_str()))
        .collect();
    let gone: Vec<String> =
        ctx.status.ids_not_deleted(provider).await?.into_iter().filter(|id| !listed.contains(id.as_str())).collect();
    let mut deleted = 0;
    for chunk in gone.chunks(super::status::BATCH_READ) {
        for (_, mut record) in ctx.status.get_many(provider, chunk).await? {
            let was = record.status.as_str();
            if record.status == MediaStatus::SourceDeleted {
                continue;
            }
            record.status = MediaStatus::SourceDeleted;
            record.updated_at = now;
            record.retry_after = None;
            if ctx.status.put(&record, Condition::StatusIn(vec![was])).await? {
                deleted += 1;
            }
        }
    }

    let key = format!("{}items.json", ctx.run_prefix());
    let body = serde_json::to_vec(&due).map_err(|e| MediaStepError::Internal(format!("items.json: {e}")))?;
    ctx.runs.put_bytes(&key, body, WriteMode::Overwrite).await?;
    let out = ListMediaOutput {
        items: ItemsLocation { bucket: ctx.runs_bucket.clone(), key },
        to_copy: due.len() as u64,
        listed: (listing.items.len() + listing.not_ready.len()) as u64,
        not_ready: listing.not_ready.len() as u64,
        completed,
        deleted,
        pages: listing.pages as u64,
    };
    tracing::info!(to_copy = out.to_copy, listed = out.listed, deleted, completed, "listed");
    Ok(out)
}

// ---- download-media ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadMediaInput {
    pub secret_version_id: String,
    pub item: MediaItem,
}

/// What became of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DownloadStatus {
    Completed,
    SourceDeleted,
    AlreadyCopied,
    Failed,
    /// The OAuth access token was refused: the item is back to `PENDING`; the run refreshes once.
    TokenRejected,
    /// The cookie login is dead: back to `PENDING`; the run fails with the re-login alert.
    LoginRequired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadMediaOutput {
    pub media_id: String,
    pub status: DownloadStatus,
    /// Bytes copied by this invocation.
    pub bytes: u64,
    /// Files of the item (copied now or before).
    pub files: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
    /// From the first request for bytes to the first byte (0: none transferred).
    pub first_byte_ms: u64,
}

/// Saves a copy's progress into the item's record after each part.
struct RecordCheckpoint<'a> {
    ctx: &'a MediaContext,
    record: Mutex<StatusRecord>,
}

impl RecordCheckpoint<'_> {
    fn record(&self) -> StatusRecord {
        self.record.lock().unwrap().clone()
    }

    async fn write(&self, change: impl FnOnce(&mut StatusRecord)) -> Result<(), MediaError> {
        let record = {
            let mut r = self.record.lock().unwrap();
            change(&mut r);
            r.updated_at = self.ctx.clock.now();
            r.clone()
        };
        self.ctx.status.put(&record, Condition::None).await.map(drop)
    }
}

#[async_trait::async_trait]
impl Checkpoint for RecordCheckpoint<'_> {
    async fn save(&self, progress: Option<&UploadProgress>) -> Result<(), MediaError> {
        self.write(|r| r.upload = progress.cloned()).await
    }
}

/// Copy one item: every source file of a fresh descriptor, each resumed
/// from the progress its record holds and skipped when already there.
pub async fn download_media(ctx: &MediaContext, input: DownloadMediaInput) -> MediaResult<DownloadMediaOutput> {
    let started = Instant::now();
    let item = input.item;
    let provider = ctx.provider_name();
    let session = session_at(ctx, &input.secret_version_id).await?;
    let now = ctx.clock.now();
    let answer = |status, bytes, files, reason: Option<String>, first_byte: Option<Duration>| DownloadMediaOutput {
        media_id: item.id.clone(),
        status,
        bytes,
        files,
        reason,
        duration_ms: started.elapsed().as_millis() as u64,
        first_byte_ms: first_byte.map_or(0, |d| d.as_millis() as u64),
    };

    // Start: IN_PROGRESS, one more attempt; unless it was completed meanwhile.
    let mut record = ctx
        .status
        .get(provider, &item.id)
        .await?
        .unwrap_or_else(|| StatusRecord::new(provider, &item.id, Some(item.captured_at), now));
    if record.status == MediaStatus::Completed {
        return Ok(answer(DownloadStatus::AlreadyCopied, 0, record.files.len() as u64, None, None));
    }
    let was = record.status.as_str();
    record.status = MediaStatus::InProgress;
    record.attempts += 1;
    record.updated_at = now;
    record.captured_at = Some(item.captured_at);
    if !ctx.status.put(&record, Condition::StatusIn(vec![was])).await? {
        // Another invocation moved it first: what it is now decides.
        let current = ctx.status.get(provider, &item.id).await?;
        return Ok(match current {
            Some(r) if r.status == MediaStatus::Completed => {
                answer(DownloadStatus::AlreadyCopied, 0, r.files.len() as u64, None, None)
            }
            _ => return Err(MediaStepError::Transient(format!("media {}: its record changed under us", item.id))),
        });
    }
    let checkpoint = RecordCheckpoint { ctx, record: Mutex::new(record) };
    let result = copy_item(ctx, &session, &item, &checkpoint).await;
    let now = ctx.clock.now();
    match result {
        Ok(copied) => {
            let bytes: u64 = copied.iter().map(|c| c.bytes).sum();
            let transferred: u64 = copied.iter().map(|c| c.transferred).sum();
            let first_byte = copied.iter().find_map(|c| c.first_byte);
            let files = copied.len() as u64;
            if let Some(expected) = item.file_size.filter(|n| *n != bytes && copied.len() > 1) {
                // Every file as its HEAD said, the whole not as listed: a retry cannot change it.
                let e = MediaError::Length {
                    what: format!("media {} (all its files)", item.id),
                    expected,
                    received: bytes,
                };
                return fail_permanently(&checkpoint, e, now, answer).await;
            }
            checkpoint
                .write(|r| {
                    r.status = MediaStatus::Completed;
                    r.bytes = bytes;
                    r.upload = None;
                    r.retry_after = None;
                })
                .await?;
            tracing::info!(media = item.id, files, bytes, transferred, "media item copied");
            Ok(answer(DownloadStatus::Completed, transferred, files, None, first_byte))
        }
        Err(e @ (MediaError::TokenRejected { .. } | MediaError::LoginRequired { .. })) => {
            let status = if e.is_login() { DownloadStatus::LoginRequired } else { DownloadStatus::TokenRejected };
            tracing::warn!(media = item.id, "login refused: the item goes back to PENDING: {e}");
            checkpoint.write(|r| r.status = MediaStatus::Pending).await?;
            let files = checkpoint.record().files.len() as u64;
            Ok(answer(status, 0, files, Some(e.to_string()), None))
        }
        Err(e @ MediaError::SourceDeleted { .. }) => {
            tracing::info!(media = item.id, "deleted upstream: {e}");
            checkpoint
                .write(|r| {
                    r.status = MediaStatus::SourceDeleted;
                    r.retry_after = None;
                })
                .await?;
            let files = checkpoint.record().files.len() as u64;
            Ok(answer(DownloadStatus::SourceDeleted, 0, files, None, None))
        }
        // The deadline: progress is in the record, still IN_PROGRESS; the retry resumes.
        Err(e @ MediaError::Interrupted { .. }) => {
            checkpoint.write(|_| {}).await?;
            Err(MediaStepError::Transient(e.to_string()))
        }
        Err(e) if e.is_transient() => {
            // FAILED with its reason until a retry (the Map's, or the next run's: no backoff) does better.
            tracing::warn!(media = item.id, "media item: {e} (transient)");
            let reason = e.to_string();
            checkpoint
                .write(|r| {
                    r.status = MediaStatus::Failed { reason };
                    r.retry_after = None;
                })
                .await?;
            Err(MediaStepError::Transient(e.to_string()))
        }
        Err(e) => fail_permanently(&checkpoint, e, now, answer).await,
    }
}

/// The item failed for a reason a retry cannot mend: `FAILED`, due again after the backoff.
async fn fail_permanently(
    checkpoint: &RecordCheckpoint<'_>,
    e: MediaError,
    now: OffsetDateTime,
    answer: impl FnOnce(DownloadStatus, u64, u64, Option<String>, Option<Duration>) -> DownloadMediaOutput,
) -> MediaResult<DownloadMediaOutput> {
    let reason = e.to_string();
    let attempts = checkpoint.record().attempts;
    tracing::warn!(reason, attempts, "media item failed");
    let stored = reason.clone();
    checkpoint
        .write(|r| {
            r.status = MediaStatus::Failed { reason: stored };
            r.retry_after = Some(now + failure_backoff(attempts));
        })
        .await?;
    let files = checkpoint.record().files.len() as u64;
    Ok(answer(DownloadStatus::Failed, 0, files, Some(reason), None))
}

/// Every source file of `item`, in order; each recorded as it completes.
async fn copy_item(
    ctx: &MediaContext,
    session: &Session,
    item: &MediaItem,
    checkpoint: &RecordCheckpoint<'_>,
) -> Result<Vec<transfer::CopiedFile>, MediaError> {
    let files = ctx.provider.source_files(session, item).await?;
    let single = files.len() == 1;
    let deadline = ctx.run.deadline.map(|d| d.checked_sub(DEADLINE_MARGIN).unwrap_or(d));
    let mut copied = Vec::with_capacity(files.len());
    for (index, planned) in files.iter().enumerate() {
        let mut file = planned.clone();
        let mut renewed = false;
        let done = loop {
            match copy_one(ctx, session, item, &file, single, deadline, checkpoint).await {
                Err(MediaError::UrlExpired { .. }) if !renewed => {
                    // The descriptor's URLs expired: a fresh one, once per file.
                    renewed = true;
                    let fresh = ctx.provider.source_files(session, item).await?;
                    file = fresh.into_iter().nth(index).filter(|f| f.key == planned.key).ok_or_else(|| {
                        MediaError::Invalid {
                            what: format!("media {}", item.id),
                            message: "the descriptor changed".into(),
                        }
                    })?;
                }
                other => break other?,
            }
        };
        checkpoint.write(|r| r.set_file(FileRecord::from(&done))).await?;
        copied.push(done);
    }
    Ok(copied)
}

async fn copy_one(
    ctx: &MediaContext,
    session: &Session,
    item: &MediaItem,
    file: &SourceFile,
    single: bool,
    deadline: Option<Instant>,
    checkpoint: &RecordCheckpoint<'_>,
) -> Result<transfer::CopiedFile, MediaError> {
    // The listing's size is the item's: a file's own when it is the only one.
    let expected_size =
        if single && item.file_size.is_some() { item.file_size } else { ctx.provider.file_size(file).await? };
    let record = checkpoint.record();
    let previous = record.file(&file.key).map(FileRecord::to_copied);
    let resume = record.upload.clone().filter(|u| u.key == file.key);
    let request = CopyRequest { file, expected_size, previous: previous.as_ref(), resume, deadline };
    transfer::copy_file(ctx.provider.as_ref(), session, ctx.objects.as_ref(), checkpoint, request).await
}

// ---- summarize ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarizeInput {
    pub listing: ListMediaOutput,
    /// The Map's `ResultWriterDetails`: where its manifest is.
    pub results: ResultWriterDetails,
    #[serde(default = "first_pass")]
    pub pass: u32,
}

fn first_pass() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    pub media_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Partial,
    Critical,
    Reauthenticate,
    LoginRequired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarizeOutput {
    pub outcome: Outcome,
    pub copied: u64,
    pub already: u64,
    pub deleted: u64,
    pub failed: u64,
    pub not_ready: u64,
    pub token_rejected: u64,
    pub bytes: u64,
    pub failures: Vec<ItemFailure>,
}

/// One child's output: DownloadMedia's result, or the Catch's
/// `{"media_id", "status": "FAILED", "reason"}`.
#[derive(Deserialize)]
struct ChildOutcome {
    media_id: String,
    status: String,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    first_byte_ms: u64,
}

/// A child's input, for the id of one that failed without an output.
#[derive(Deserialize)]
struct ChildInput {
    item: ChildItem,
}

#[derive(Deserialize)]
struct ChildItem {
    id: String,
}

/// Counts, bytes and the outcome from the Map's results; one CloudWatch
/// embedded-metric line.
pub async fn summarize(ctx: &MediaContext, input: SummarizeInput) -> MediaResult<SummarizeOutput> {
    let manifest_key = &input.results.key;
    if !manifest_key.starts_with(RUNS_PREFIX) {
        return Err(MediaStepError::InvalidInput(format!(
            "map results at {manifest_key}: expected under {RUNS_PREFIX} (the state machine's ResultWriter prefix)"
        )));
    }
    let records = read_child_results(ctx.runs.as_ref(), manifest_key).await.map_err(|e| match e {
        crate::steps::items::MapResultsError::Blob(e) => MediaStepError::from(e),
        other => MediaStepError::Internal(other.to_string()),
    })?;
    let mut out = SummarizeOutput {
        outcome: Outcome::Ok,
        copied: 0,
        already: 0,
        deleted: input.listing.deleted,
        failed: 0,
        not_ready: input.listing.not_ready,
        token_rejected: 0,
        bytes: 0,
        failures: Vec::new(),
    };
    let mut login_required = 0u64;
    let mut transfer_ms = 0u64;
    let mut first_byte = (0u64, 0u64);
    let fail = |out: &mut SummarizeOutput, media_id: String, reason: String| {
        out.failed += 1;
        if out.failures.len() < FAILURES_LISTED {
            out.failures.push(ItemFailure { media_id, reason: crate::model::bounded_text(&reason, 600) });
        }
    };
    let total = records.len() as u64;
    for r in records {
        match r.succeeded_output().and_then(|o| serde_json::from_str::<ChildOutcome>(o).ok()) {
            Some(c) => match c.status.as_str() {
                "COMPLETED" => {
                    out.copied += 1;
                    out.bytes += c.bytes;
                    if c.bytes > 0 {
                        transfer_ms += c.duration_ms;
                        first_byte = (first_byte.0 + c.first_byte_ms, first_byte.1 + 1);
                    }
                }
                "ALREADY_COPIED" => out.already += 1,
                "SOURCE_DELETED" => out.deleted += 1,
                "TOKEN_REJECTED" => out.token_rejected += 1,
                "LOGIN_REQUIRED" => login_required += 1,
                _ => fail(&mut out, c.media_id, readable_reason(c.reason.as_deref().unwrap_or("failed"))),
            },
            None => {
                let id = r
                    .input
                    .as_deref()
                    .and_then(|i| serde_json::from_str::<ChildInput>(i).ok())
                    .map_or_else(|| "?".to_owned(), |i| i.item.id);
                let error = r.error.clone().unwrap_or_else(|| r.status.clone().unwrap_or_else(|| "Unknown".into()));
                let cause = readable_cause(r.cause.as_deref().unwrap_or(""));
                fail(&mut out, id, format!("{error}: {cause}"));
            }
        }
    }
    // A token refused on the second pass, after the one refresh: that item failed this run.
    let failed_all = out.failed + if input.pass >= 2 { out.token_rejected } else { 0 };
    out.outcome = if login_required > 0 {
        Outcome::LoginRequired
    } else if input.pass < 2 && out.token_rejected > 0 {
        Outcome::Reauthenticate
    } else if total > 0 && failed_all == total {
        Outcome::Critical
    } else if failed_all > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    };
    let first_byte_ms = first_byte.0.checked_div(first_byte.1).unwrap_or(0);
    ctx.metrics.emit(&metric_line(ctx, &out, transfer_ms, first_byte_ms));
    tracing::info!(outcome = ?out.outcome, copied = out.copied, failed = out.failed, bytes = out.bytes, "summarized");
    Ok(out)
}

/// The Catch's reason, `<Error>: <Cause>`, with a Lambda's cause (the JSON
/// of `{errorType, errorMessage}`) shown as its message.
fn readable_reason(reason: &str) -> String {
    match reason.split_once(": ") {
        Some((error, cause)) if cause.trim_start().starts_with('{') => format!("{error}: {}", readable_cause(cause)),
        _ => reason.to_owned(),
    }
}

/// One CloudWatch embedded-metric-format line (namespace [`METRICS_NAMESPACE`],
/// dimension `Environment`).
///
/// Written by hand, without a crate: the format is one JSON object with an
/// `_aws` key naming the metrics and the values beside it, which serde_json
/// already writes; an EMF crate would bring a metrics runtime and its
/// dependencies into every function for these few lines, and no SDK call is
/// wanted (CloudWatch Logs extracts the metrics from the log line itself).
fn metric_line(ctx: &MediaContext, out: &SummarizeOutput, transfer_ms: u64, first_byte_ms: u64) -> String {
    let seconds = transfer_ms as f64 / 1000.0;
    let throughput = if seconds > 0.0 { out.bytes as f64 * 8.0 / 1_000_000.0 / seconds } else { 0.0 };
    let timestamp = (ctx.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Environment"]],
                "Metrics": [
                    {"Name": "VideosSynced", "Unit": "Count"},
                    {"Name": "BytesTransferred", "Unit": "Bytes"},
                    {"Name": "TransferDuration", "Unit": "Seconds"},
                    {"Name": "TransferThroughput", "Unit": "Megabits/Second"},
                    {"Name": "TimeToFirstByte", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Environment": ctx.environment,
        "execution": ctx.run.execution,
        "outcome": out.outcome,
        "VideosSynced": out.copied,
        "BytesTransferred": out.bytes,
        "TransferDuration": seconds,
        "TransferThroughput": (throughput * 1000.0).round() / 1000.0,
        "TimeToFirstByte": first_byte_ms,
    })
    .to_string()
}

#[cfg(test)]
#[path = "steps_tests.rs"]
mod tests;
