//! The media steps over in-memory fakes: what a server cannot easily be
//! made to do (a token refused between the descriptor and the bytes, a
//! crashed run's IN_PROGRESS record, a permanent failure's backoff), and the
//! contract's shapes. The steps against the fake GoPro cloud are in
//! tests/media_gopro.rs; on AWS, in the localaws tests.

use super::*;
use crate::media::local::DirMultipart;
use crate::media::status::MemoryStatusTable;
use crate::media::{Authenticated, Listing, PresignedUrl, Transfer, object_key};
use sha2::Digest;
use std::collections::HashMap;
use time::macros::datetime;
use tokio::io::AsyncWriteExt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// The descriptor answers 401 to an OAuth token.
    Token,
    /// The same, once.
    TokenOnce,
    /// The descriptor answers 401 to cookies.
    Login,
    /// 404 on the descriptor.
    Deleted,
    /// 503, retries exhausted.
    Transient,
    /// Refused for good (a host the policy does not allow).
    Refused,
}

#[derive(Default)]
struct FakeProvider {
    items: Mutex<Vec<MediaItem>>,
    not_ready: Mutex<Vec<(String, String)>>,
    /// Each item's files' bytes.
    files: Mutex<HashMap<String, Vec<Vec<u8>>>>,
    faults: Mutex<HashMap<String, Fault>>,
    login_dead: Mutex<bool>,
    refreshes: Mutex<u32>,
    downloads: Mutex<u32>,
}

fn item(id: &str, sizes: &[usize]) -> (MediaItem, Vec<Vec<u8>>) {
    let files: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(n, s)| (0..*s).map(|i| (i * 7 + n * 13 + id.len()) as u8).collect()).collect();
    let item = MediaItem {
        id: id.into(),
        kind: if sizes.len() > 1 { "Chaptered".into() } else { "Video".into() },
        filename: format!("{id}.MP4"),
        file_extension: "mp4".into(),
        file_size: Some(sizes.iter().sum::<usize>() as u64),
        captured_at: datetime!(2025-07-14 09:30 UTC),
        state: "ready".into(),
        camera_model: None,
    };
    (item, files)
}

impl FakeProvider {
    fn with(items: &[(&str, &[usize])]) -> FakeProvider {
        let fake = FakeProvider::default();
        for (id, sizes) in items {
            fake.add(id, sizes);
        }
        fake
    }
    fn add(&self, id: &str, sizes: &[usize]) {
        let (item, files) = item(id, sizes);
        self.items.lock().unwrap().push(item);
        self.files.lock().unwrap().insert(id.into(), files);
    }
    fn item(&self, id: &str) -> MediaItem {
        self.items.lock().unwrap().iter().find(|m| m.id == id).unwrap().clone()
    }
    fn fault(&self, id: &str, fault: Option<Fault>) {
        match fault {
            Some(f) => self.faults.lock().unwrap().insert(id.into(), f),
            None => self.faults.lock().unwrap().remove(id),
        };
    }
}

#[async_trait::async_trait]
impl MediaProvider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn authenticate(&self, credentials: &Credentials, now: OffsetDateTime) -> Result<Authenticated, MediaError> {
        if *self.login_dead.lock().unwrap() {
            return Err(MediaError::LoginRequired { provider: "fake", kind: "oauth", reason: "revoked".into() });
        }
        if !credentials.needs_refresh(now) {
            return Ok(Authenticated { session: Session { credentials: credentials.clone() }, rotated: None });
        }
        let mut n = self.refreshes.lock().unwrap();
        *n += 1;
        let Credentials::Oauth { client_id, client_secret, .. } = credentials else { unreachable!() };
        let rotated = Credentials::Oauth {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_token: super::super::Secret::new(format!("refresh-{n}")),
            access_token: Some(super::super::Secret::new(format!("access-{n}"))),
            expires_at: Some(now + time::Duration::days(7)),
            resource_owner_id: None,
        };
        Ok(Authenticated { session: Session { credentials: rotated.clone() }, rotated: Some(rotated) })
    }

    async fn list(&self, _: &Session) -> Result<Listing, MediaError> {
        let items = self.items.lock().unwrap().clone();
        let not_ready = self.not_ready.lock().unwrap().clone();
        Ok(Listing { total_items: (items.len() + not_ready.len()) as u64, items, not_ready, pages: 1 })
    }

    async fn source_files(&self, _: &Session, item: &MediaItem) -> Result<Vec<SourceFile>, MediaError> {
        let what = format!("GET /media/{}/download", item.id);
        let fault = self.faults.lock().unwrap().get(&item.id).copied();
        match fault {
            Some(Fault::Token) => return Err(MediaError::TokenRejected { what }),
            Some(Fault::TokenOnce) => {
                self.fault(&item.id, None);
                return Err(MediaError::TokenRejected { what });
            }
            Some(Fault::Login) => {
                return Err(MediaError::LoginRequired { provider: "fake", kind: "cookie", reason: "401".into() });
            }
            Some(Fault::Deleted) => return Err(MediaError::SourceDeleted { id: item.id.clone(), what, status: 404 }),
            Some(Fault::Transient) => return Err(MediaError::Http { what, status: 503, detail: String::new() }),
            Some(Fault::Refused) => return Err(MediaError::Refused { what, reason: "host not allowed".into() }),
            None => {}
        }
        let n = self.files.lock().unwrap()[&item.id].len();
        Ok((0..n)
            .map(|i| SourceFile {
                media_id: item.id.clone(),
                item_number: (n > 1).then_some(i as u32 + 1),
                key: object_key("fake", item, &item.filename, (n > 1).then_some(i as u32 + 1)),
                url: PresignedUrl::new(format!("https://files.fake/{}/{i}?Signature=S", item.id)),
                head: None,
            })
            .collect())
    }

    async fn file_size(&self, file: &SourceFile) -> Result<Option<u64>, MediaError> {
        Ok(Some(self.bytes_of(file).len() as u64))
    }

    async fn download(
        &self,
        file: &SourceFile,
        offset: u64,
        sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<Transfer, MediaError> {
        *self.downloads.lock().unwrap() += 1;
        let bytes = self.bytes_of(file);
        let tail = &bytes[offset as usize..];
        sink.write_all(tail).await.unwrap();
        Ok(Transfer {
            bytes: tail.len() as u64,
            sha256: hex::encode(sha2::Sha256::digest(tail)),
            total_size: Some(bytes.len() as u64),
        })
    }
}

impl FakeProvider {
    fn bytes_of(&self, file: &SourceFile) -> Vec<u8> {
        let path = url::Url::parse(file.url.expose()).unwrap().path().to_owned();
        let (_, index) = path.rsplit_once('/').unwrap();
        self.files.lock().unwrap()[&file.media_id][index.parse::<usize>().unwrap()].clone()
    }
}

/// Credentials kept in memory, each write a new version `v<n>`.
#[derive(Default)]
struct MemoryCredentials(Mutex<Vec<Credentials>>);

#[async_trait::async_trait]
impl CredentialStore for MemoryCredentials {
    async fn read(&self, version: Option<&str>) -> Result<(Credentials, String), CredentialsError> {
        let all = self.0.lock().unwrap();
        let n = match version {
            Some(v) => v.trim_start_matches('v').parse::<usize>().unwrap(),
            None => all.len(),
        };
        Ok((all[n - 1].clone(), format!("v{n}")))
    }
    async fn write(&self, credentials: &Credentials, _: &str) -> Result<String, CredentialsError> {
        let mut all = self.0.lock().unwrap();
        all.push(credentials.clone());
        Ok(format!("v{}", all.len()))
    }
}

struct Harness {
    ctx: MediaContext,
    fake: Arc<FakeProvider>,
    table: Arc<MemoryStatusTable>,
    credentials: Arc<MemoryCredentials>,
    clock: Arc<ManualClock>,
    metrics: Arc<CollectMetrics>,
    dir: tempfile::TempDir,
}

fn harness(fake: FakeProvider, credentials: Credentials) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(fake);
    let table = Arc::new(MemoryStatusTable::default());
    let store = Arc::new(MemoryCredentials(Mutex::new(vec![credentials])));
    let clock = Arc::new(ManualClock::new(datetime!(2026-01-10 02:00 UTC)));
    let metrics = Arc::new(CollectMetrics::default());
    let backends = MediaBackends {
        provider: fake.clone(),
        status: table.clone(),
        credentials: store.clone(),
        objects: Arc::new(DirMultipart::new(&dir.path().join("out")).unwrap()),
        runs: Arc::new(crate::blob::DirStore::new(dir.path().join("runs")).unwrap()),
        runs_bucket: "media-bucket".into(),
    };
    let ctx = MediaContext::new(backends, "test")
        .with_clock(clock.clone())
        .with_metrics(metrics.clone())
        .for_run("arn:aws:states:us-east-1:123456789012:execution:pkgrelay-test-media:run-1", None);
    Harness { ctx, fake, table, credentials: store, clock, metrics, dir }
}

fn oauth(expires_at: Option<OffsetDateTime>) -> Credentials {
    Credentials::Oauth {
        client_id: "c".into(),
        client_secret: super::super::Secret::new("cs"),
        refresh_token: super::super::Secret::new("refresh-0"),
        access_token: Some(super::super::Secret::new("access-0")),
        expires_at,
        resource_owner_id: None,
    }
}

fn cookie() -> Credentials {
    Credentials::Cookie { access_token: super::super::Secret::new("jwe"), user_id: "u".into(), user_agent: None }
}

async fn download(h: &Harness, id: &str) -> MediaResult<DownloadMediaOutput> {
    let input = DownloadMediaInput { secret_version_id: "v1".into(), item: h.fake.item(id) };
    download_media(&h.ctx, input).await
}

async fn record(h: &Harness, id: &str) -> StatusRecord {
    h.table.get("fake", id).await.unwrap().unwrap()
}

#[test]
fn execution_names_and_error_names() {
    assert_eq!(execution_name("arn:aws:states:us-east-1:1:execution:sm:2026-01-10T02-00"), "2026-01-10T02-00");
    assert_eq!(execution_name("a/b"), "a_b");
    assert_eq!(execution_name(".."), "unnamed");
    let e = MediaStepError::from(MediaError::Http { what: "x".into(), status: 429, detail: String::new() });
    assert_eq!(e.error_type(), "MediaTransient");
    let e = MediaStepError::from(MediaError::LoginRequired { provider: "p", kind: "cookie", reason: "r".into() });
    assert_eq!(e.error_type(), "LoginRequired");
    assert_eq!(MediaStepError::InvalidInput("x".into()).error_type(), "InvalidInput");
    assert_eq!(
        MediaStepError::from(MediaError::Invalid { what: "a".into(), message: "b".into() }).error_type(),
        "InternalError"
    );
}

#[tokio::test]
async fn authenticate_refreshes_under_a_day_writes_back_and_names_the_version() {
    let now = datetime!(2026-01-10 02:00 UTC);
    let h = harness(FakeProvider::default(), oauth(Some(now + time::Duration::days(3))));
    let out = authenticate(&h.ctx, AuthenticateInput::default()).await.unwrap();
    assert_eq!(out, AuthenticateOutput { secret_version_id: "v1".into(), kind: "oauth".into(), refreshed: false });
    // Forced: refreshed, the rotated tokens written as a new version, which the output names.
    let out = authenticate(&h.ctx, AuthenticateInput { force_refresh: true }).await.unwrap();
    assert_eq!((out.secret_version_id.as_str(), out.refreshed), ("v2", true));
    let (stored, _) = h.credentials.read(Some("v2")).await.unwrap();
    let Credentials::Oauth { refresh_token, .. } = stored else { panic!() };
    assert_eq!(refresh_token.expose(), "refresh-1");
    // No token in the output.
    let text = serde_json::to_string(&out).unwrap();
    assert!(!text.contains("access-") && !text.contains("refresh-"), "{text}");
    // Under a day left: refreshed without being asked.
    h.clock.advance(time::Duration::days(6) + time::Duration::hours(1));
    assert!(authenticate(&h.ctx, AuthenticateInput::default()).await.unwrap().refreshed);

    let h = harness(FakeProvider::default(), cookie());
    assert_eq!(authenticate(&h.ctx, AuthenticateInput::default()).await.unwrap().kind, "cookies");
    *h.fake.login_dead.lock().unwrap() = true;
    let e = authenticate(&h.ctx, AuthenticateInput::default()).await.unwrap_err();
    assert_eq!(e.error_type(), "LoginRequired");
    assert!(h.table.all().is_empty(), "no item touched");
}

#[tokio::test]
async fn list_media_emits_what_is_due_and_marks_new_and_deleted_items() {
    let fake = FakeProvider::with(&[("new", &[10]), ("done", &[10]), ("failed_soon", &[10]), ("failed_due", &[10])]);
    fake.add("crashed", &[10]);
    fake.add("busy", &[10]);
    fake.not_ready.lock().unwrap().push(("waiting".into(), "transcoding".into()));
    let h = harness(fake, cookie());
    let now = h.clock.now();
    let put = |id: &str, status: MediaStatus, updated: OffsetDateTime, retry: Option<OffsetDateTime>| {
        let mut r = StatusRecord::new("fake", id, None, updated);
        r.status = status;
        r.retry_after = retry;
        r
    };
    let failed = || MediaStatus::Failed { reason: "x".into() };
    for r in [
        put("done", MediaStatus::Completed, now, None),
        put("failed_soon", failed(), now, Some(now + time::Duration::hours(3))),
        put("failed_due", failed(), now, Some(now - time::Duration::minutes(1))),
        put("crashed", MediaStatus::InProgress, now - time::Duration::minutes(2), None),
        put("busy", MediaStatus::Completed, now - time::Duration::minutes(2), None),
        put("gone", MediaStatus::Completed, now, None),
        put("waiting", MediaStatus::Pending, now, None),
        put("gone_before", MediaStatus::SourceDeleted, now, None),
    ] {
        h.table.put(&r, Condition::None).await.unwrap();
    }
    let out = list_media(&h.ctx, ListMediaInput { secret_version_id: "v1".into() }).await.unwrap();
    assert_eq!(out.items, ItemsLocation { bucket: "media-bucket".into(), key: "runs/media/run-1/items.json".into() });
    assert_eq!(
        (out.to_copy, out.listed, out.not_ready, out.completed, out.deleted, out.pages),
        (3, 7, 1, 2, 1, 1),
        "{out:?}"
    );
    let items: Vec<MediaItem> =
        serde_json::from_slice(&std::fs::read(h.dir.path().join("runs/runs/media/run-1/items.json")).unwrap()).unwrap();
    let ids: Vec<&str> = items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["new", "failed_due", "crashed"]);
    assert_eq!(record(&h, "new").await.status, MediaStatus::Pending);
    assert_eq!(record(&h, "new").await.captured_at, Some(datetime!(2025-07-14 09:30 UTC)));
    assert_eq!(record(&h, "gone").await.status, MediaStatus::SourceDeleted);
    assert_eq!(record(&h, "waiting").await.status, MediaStatus::Pending, "not ready is not deleted");
    // The output is the contract's.
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["items"]["Key"], "runs/media/run-1/items.json");
    assert_eq!(v["to_copy"], 3);
}

#[tokio::test]
async fn download_media_copies_records_and_a_second_call_copies_nothing() {
    let h = harness(FakeProvider::with(&[("chap", &[3000, 2000, 1]), ("one", &[500])]), cookie());
    let out = download(&h, "chap").await.unwrap();
    assert_eq!((out.status, out.bytes, out.files, out.reason.as_deref()), (DownloadStatus::Completed, 5001, 3, None));
    let r = record(&h, "chap").await;
    assert_eq!(
        (r.status.clone(), r.attempts, r.bytes, r.files.len(), r.upload.clone()),
        (MediaStatus::Completed, 1, 5001, 3, None)
    );
    let key = "media/fake/2025/07/14/chap_2.MP4";
    let f = r.file(key).unwrap();
    let bytes = std::fs::read(h.dir.path().join("out").join(key)).unwrap();
    assert_eq!((f.bytes, f.sha256.clone()), (2000, hex::encode(sha2::Sha256::digest(&bytes))));
    assert_eq!(f.crc64nvme, crate::media::transfer::crc64nvme(&bytes));
    let downloads = *h.fake.downloads.lock().unwrap();
    // Again (pass 2): ALREADY_COPIED, nothing fetched.
    let again = download(&h, "chap").await.unwrap();
    assert_eq!((again.status, again.bytes, again.files), (DownloadStatus::AlreadyCopied, 0, 3));
    assert_eq!(*h.fake.downloads.lock().unwrap(), downloads);
    // A record that lost its COMPLETED (a crash after the last file): the objects are there, nothing fetched.
    let mut r = record(&h, "chap").await;
    r.status = MediaStatus::InProgress;
    h.table.put(&r, Condition::None).await.unwrap();
    let out = download(&h, "chap").await.unwrap();
    assert_eq!((out.status, out.bytes, out.files), (DownloadStatus::Completed, 0, 3));
    assert_eq!(*h.fake.downloads.lock().unwrap(), downloads);
    assert_eq!(record(&h, "chap").await.attempts, 2);
    let v = serde_json::to_value(download(&h, "one").await.unwrap()).unwrap();
    for field in ["media_id", "status", "bytes", "files", "duration_ms", "first_byte_ms"] {
        assert!(v.get(field).is_some(), "{field} in {v}");
    }
    assert_eq!(v["status"], "COMPLETED");
}

#[tokio::test]
async fn a_refused_login_puts_the_item_back_to_pending_and_never_fails_it() {
    let h = harness(FakeProvider::with(&[("a", &[10]), ("b", &[10])]), cookie());
    h.fake.fault("a", Some(Fault::Token));
    h.fake.fault("b", Some(Fault::Login));
    let a = download(&h, "a").await.unwrap();
    assert_eq!(a.status, DownloadStatus::TokenRejected);
    assert_eq!(record(&h, "a").await.status, MediaStatus::Pending);
    let b = download(&h, "b").await.unwrap();
    assert_eq!(b.status, DownloadStatus::LoginRequired);
    assert!(b.reason.unwrap().contains("log in again"));
    assert_eq!(record(&h, "b").await.status, MediaStatus::Pending);
}

#[tokio::test]
async fn deleted_transient_and_permanent_failures() {
    let h = harness(FakeProvider::with(&[("gone", &[10]), ("flaky", &[10]), ("bad", &[10])]), cookie());
    h.fake.fault("gone", Some(Fault::Deleted));
    h.fake.fault("flaky", Some(Fault::Transient));
    h.fake.fault("bad", Some(Fault::Refused));
    assert_eq!(download(&h, "gone").await.unwrap().status, DownloadStatus::SourceDeleted);
    assert_eq!(record(&h, "gone").await.status, MediaStatus::SourceDeleted);

    // Transient: the error the Map retries, the attempt and the reason recorded, due again at once.
    let e = download(&h, "flaky").await.unwrap_err();
    assert_eq!(e.error_type(), "MediaTransient");
    let r = record(&h, "flaky").await;
    assert!(matches!(&r.status, MediaStatus::Failed { reason } if reason.contains("503")), "{r:?}");
    assert_eq!((r.attempts, r.retry_after), (1, None));
    assert!(r.is_due(h.clock.now()));
    h.fake.fault("flaky", None);
    assert_eq!(download(&h, "flaky").await.unwrap().status, DownloadStatus::Completed);
    assert_eq!(record(&h, "flaky").await.attempts, 2);

    // Permanent: a FAILED result with its reason, due again after the backoff.
    let out = download(&h, "bad").await.unwrap();
    assert_eq!(out.status, DownloadStatus::Failed);
    assert!(out.reason.as_deref().unwrap().contains("host not allowed"));
    let r = record(&h, "bad").await;
    assert_eq!(r.retry_after, Some(h.clock.now() + time::Duration::hours(6)));
    assert!(!r.is_due(h.clock.now() + time::Duration::hours(5)));
}

/// Write a ResultWriter's manifest and one result file of `outputs`.
async fn results(h: &Harness, outputs: &[serde_json::Value]) -> ResultWriterDetails {
    let records: Vec<_> = outputs
        .iter()
        .map(|o| serde_json::json!({"Input": "{}", "Output": o.to_string(), "Status": "SUCCEEDED"}))
        .collect();
    let base = "runs/media/run-1/results/abc";
    let runs = &h.ctx.runs;
    runs.put_bytes(&format!("{base}/SUCCEEDED_0.json"), serde_json::to_vec(&records).unwrap(), WriteMode::Overwrite)
        .await
        .unwrap();
    let failed = serde_json::json!([{"Input": "{\"item\":{\"id\":\"dead\"}}", "Status": "FAILED", "Error": "States.Timeout", "Cause": "x"}]);
    runs.put_bytes(&format!("{base}/FAILED_0.json"), failed.to_string().into_bytes(), WriteMode::Overwrite)
        .await
        .unwrap();
    let manifest = serde_json::json!({"ResultFiles": {"SUCCEEDED": [{"Key": format!("{base}/SUCCEEDED_0.json")}], "FAILED": [{"Key": format!("{base}/FAILED_0.json")}]}});
    runs.put_bytes(&format!("{base}/manifest.json"), manifest.to_string().into_bytes(), WriteMode::Overwrite)
        .await
        .unwrap();
    ResultWriterDetails { bucket: "media-bucket".into(), key: format!("{base}/manifest.json") }
}

fn listing() -> ListMediaOutput {
    ListMediaOutput {
        items: ItemsLocation { bucket: "media-bucket".into(), key: "runs/media/run-1/items.json".into() },
        to_copy: 6,
        listed: 9,
        not_ready: 2,
        completed: 1,
        deleted: 1,
        pages: 1,
    }
}

#[tokio::test]
async fn summarize_counts_decides_and_writes_one_metric_line() {
    let h = harness(FakeProvider::default(), cookie());
    let done = |id: &str, bytes: u64| serde_json::json!({"media_id": id, "status": "COMPLETED", "bytes": bytes, "files": 1, "duration_ms": 2000, "first_byte_ms": 100});
    let outputs = [
        done("a", 10_000_000),
        done("b", 15_000_000),
        serde_json::json!({"media_id": "c", "status": "ALREADY_COPIED", "bytes": 0, "files": 1, "duration_ms": 5, "first_byte_ms": 0}),
        serde_json::json!({"media_id": "d", "status": "SOURCE_DELETED", "bytes": 0, "files": 0, "duration_ms": 5, "first_byte_ms": 0}),
        serde_json::json!({"media_id": "e", "status": "FAILED", "reason": "MediaTransient: {\"errorType\":\"MediaTransient\",\"errorMessage\":\"HTTP 503\"}"}),
    ];
    let details = results(&h, &outputs).await;
    let input = SummarizeInput { listing: listing(), results: details.clone(), pass: 1 };
    let out = summarize(&h.ctx, input).await.unwrap();
    assert_eq!(out.outcome, Outcome::Partial);
    assert_eq!(
        (out.copied, out.already, out.deleted, out.failed, out.not_ready, out.token_rejected, out.bytes),
        (2, 1, 2, 2, 2, 0, 25_000_000)
    );
    assert!(out.failures.contains(&ItemFailure { media_id: "e".into(), reason: "MediaTransient: HTTP 503".into() }));
    assert!(out.failures.contains(&ItemFailure { media_id: "dead".into(), reason: "States.Timeout: x".into() }));
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(v["outcome"], "partial");

    let lines = h.metrics.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 1);
    let m: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(m["_aws"]["CloudWatchMetrics"][0]["Namespace"], "pkgrelay/media");
    assert_eq!(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Environment"]]));
    assert_eq!(m["_aws"]["Timestamp"], datetime!(2026-01-10 02:00 UTC).unix_timestamp() * 1000);
    assert_eq!((m["Environment"].as_str(), m["VideosSynced"].as_u64()), (Some("test"), Some(2)));
    assert_eq!((m["BytesTransferred"].as_u64(), m["TransferDuration"].as_f64()), (Some(25_000_000), Some(4.0)));
    assert_eq!((m["TransferThroughput"].as_f64(), m["TimeToFirstByte"].as_u64()), (Some(50.0), Some(100)));
    for metric in m["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap() {
        assert!(m.get(metric["Name"].as_str().unwrap()).is_some(), "{metric}");
    }

    // The outcomes.
    let outcome = |outputs: Vec<serde_json::Value>, pass: u32| {
        let h = &h;
        async move {
            let details = results(h, &outputs).await;
            let mut l = listing();
            l.deleted = 0;
            summarize(&h.ctx, SummarizeInput { listing: l, results: details, pass }).await.unwrap().outcome
        }
    };
    let st = |s: &str| serde_json::json!({"media_id": "x", "status": s, "bytes": 0, "files": 0, "duration_ms": 1, "first_byte_ms": 0});
    // (The result file FAILED_0.json always adds one failed child: "dead".)
    assert_eq!(outcome(vec![], 1).await, Outcome::Critical);
    assert_eq!(outcome(vec![st("COMPLETED")], 1).await, Outcome::Partial);
    assert_eq!(outcome(vec![st("COMPLETED"), st("TOKEN_REJECTED")], 1).await, Outcome::Reauthenticate);
    assert_eq!(outcome(vec![st("TOKEN_REJECTED"), st("LOGIN_REQUIRED")], 1).await, Outcome::LoginRequired);
    assert_eq!(outcome(vec![st("TOKEN_REJECTED")], 2).await, Outcome::Critical);

    // A manifest elsewhere than the run prefix: refused.
    let bad = ResultWriterDetails { bucket: "b".into(), key: "generations/x/manifest.json".into() };
    let e = summarize(&h.ctx, SummarizeInput { listing: listing(), results: bad, pass: 1 }).await.unwrap_err();
    assert_eq!(e.error_type(), "InvalidInput");
    // The input as the state machine sends it.
    let input: SummarizeInput = serde_json::from_value(serde_json::json!({
        "listing": serde_json::to_value(listing()).unwrap(),
        "results": {"Bucket": "media-bucket", "Key": details.key},
        "pass": 2
    }))
    .unwrap();
    assert_eq!(input.pass, 2);
}

#[tokio::test]
async fn the_local_runner_chains_the_steps_and_refreshes_once() {
    let fake = FakeProvider::with(&[("a", &[100]), ("b", &[200, 300]), ("c", &[5])]);
    let now = datetime!(2026-01-10 02:00 UTC);
    let h = harness(fake, oauth(Some(now + time::Duration::days(3))));
    // The token refused for c in pass 1 only.
    h.fake.fault("c", Some(Fault::TokenOnce));
    let run = super::super::runner::run(&h.ctx).await.unwrap();
    assert_eq!(run.passes, 2);
    assert!(run.rotated);
    assert_eq!(run.summary.outcome, Outcome::Ok);
    // Pass 2: a and b answer ALREADY_COPIED, c is copied.
    assert_eq!((run.summary.copied, run.summary.already, run.summary.failed), (1, 2, 0), "{:?}", run.summary);
    assert_eq!(run.listing.to_copy, 3);
    assert!(h.table.all().iter().all(|r| r.status == MediaStatus::Completed));
    assert_eq!(*h.fake.refreshes.lock().unwrap(), 1);

    // A second run copies nothing.
    let again = super::super::runner::run(&h.ctx).await.unwrap();
    assert_eq!((again.listing.to_copy, again.summary.copied, again.summary.outcome), (0, 0, Outcome::Ok));
}
