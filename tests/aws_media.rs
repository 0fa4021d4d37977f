//! The GoPro media sync on AWS as it really runs (issue 14): the media stack
//! CDK synthesizes (`pkgrelay-dev-media`), deployed into moto behind
//! tests/localaws — each function under its own synthesized role, KMS on the
//! bucket, the secret and the topic, states of at most 256 KiB, the deployed
//! memory sizes and timeouts — and executed through the Step Functions API,
//! against the fake GoPro API of tests/common/gopro.rs on 127.0.0.1.
//!
//! - `a_library_of_thirty`: 30 media items (a 3-chapter video, a burst, a
//!   photo, one deleted upstream, one not ready, a 4 GiB video, 24 short
//!   videos): each copied file compared byte for byte (SHA-256 of the S3
//!   object against the fake's; for the 4 GiB one S3's full-object
//!   CRC-64/NVME against the fake's stream and the recorded SHA-256), the
//!   status table, no token in any log or state; a second run copies nothing.
//! - `a_killed_upload_is_resumed`: download-media killed (SIGKILL) with parts
//!   uploaded: nothing visible under the key; the next run resumes from the
//!   recorded part with `Range` and completes; no upload left open.
//! - `a_token_dying_mid_run_is_refreshed_once`: the OAuth access token stops
//!   working after a few descriptors: one refresh, written back to the secret
//!   (a new version), a second pass, every item copied.
//! - `a_revoked_login_fails_the_run_once`: the cookie login is revoked: the
//!   run fails with LoginRequired, the alert says to log in again, no item is
//!   marked failed.

mod common;

use common::aws::*;
use common::gopro::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// One deployment of the media stack.
struct MediaAws {
    id: String,
    info: Value,
    bucket: String,
    table: String,
    secret_arn: String,
    state_machine_arn: String,
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    _config: tempfile::TempDir,
}

impl MediaAws {
    /// Deploy the media stack with `media.yaml` pointing at `fake`, and put
    /// `credentials` into the secret the stack created empty.
    async fn setup(fake: &FakeGoPro, credentials: &Value) -> MediaAws {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("media.yaml"),
            format!("gopro:\n  api_url: {}\n  download_hosts: [localhost]\n", fake.api),
        )
        .unwrap();
        let info = admin(
            reqwest::Method::POST,
            "deployments",
            Some(json!({"stack": "media", "config_dir": config.path(), "retry_delay_ms": 20})),
        )
        .await;
        let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{v} in {info:#}")).to_owned();
        let outputs = &info["outputs"];
        let sdk = sdk_config(&endpoint()).await;
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let secret_arn = s(&outputs["CredentialsSecretArn"]);
        secrets.put_secret_value().secret_id(&secret_arn).secret_string(credentials.to_string()).send().await.unwrap();
        MediaAws {
            id: s(&info["id"]),
            bucket: s(&outputs["MediaBucketName"]),
            table: s(&outputs["StatusTableName"]),
            state_machine_arn: s(&outputs["StateMachineArn"]),
            secret_arn,
            s3: aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build()),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            secrets,
            info,
            _config: config,
        }
    }

    async fn execute(&self, input: Value) -> Value {
        let arn = start_execution(&self.sfn, &self.state_machine_arn, input).await;
        finish_execution(&self.sfn, &arn).await
    }

    /// The status table, by media id.
    async fn statuses(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut pages = self.dynamodb.scan().table_name(&self.table).into_paginator().send();
        while let Some(page) = pages.next().await {
            for item in page.unwrap().items() {
                let value: Value = serde_dynamo::from_item(item.clone()).unwrap();
                out.insert(value["media_id"].as_str().unwrap().to_owned(), value);
            }
        }
        out
    }

    async fn sha256_of_object(&self, key: &str) -> Option<String> {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        let mut body = object.body.into_async_read();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut body, &mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Some(hex::encode(hasher.finalize()))
    }

    async fn head(&self, key: &str) -> Option<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        self.s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .ok()
    }

    async fn open_uploads(&self) -> usize {
        self.s3.list_multipart_uploads().bucket(&self.bucket).send().await.unwrap().uploads().len()
    }

    async fn logs(&self) -> String {
        admin(reqwest::Method::GET, &format!("deployments/{}/logs", self.id), None).await["logs"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The credentials the secret holds now.
    async fn credentials(&self) -> Value {
        let current = self.secrets.get_secret_value().secret_id(&self.secret_arn).send().await.unwrap();
        serde_json::from_str(current.secret_string().unwrap()).unwrap()
    }
}

fn cookie_login() -> Value {
    json!({"kind": "cookie", "access_token": FakeGoPro::COOKIE_TOKEN, "user_id": FakeGoPro::USER_ID})
}

fn oauth_login() -> Value {
    // Valid for a week by the document: no refresh at the start of a run.
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    json!({
        "kind": "oauth",
        "client_id": FakeGoPro::CLIENT_ID,
        "client_secret": FakeGoPro::CLIENT_SECRET,
        "refresh_token": FakeGoPro::REFRESH_TOKEN,
        "access_token": FakeGoPro::ACCESS_TOKEN,
        "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap(),
    })
}

/// Where the sync puts file `n` of `media` (`media/gopro/<yyyy>/<mm>/<dd>/<name>`).
fn key_of(media: &FakeMedia, file: &FakeFile) -> String {
    let day = &media.captured_at[..10];
    let (y, m, d) = (&day[..4], &day[5..7], &day[8..10]);
    let name = if media.filename.is_empty() {
        format!("{}.{}", media.id, media.file_extension)
    } else {
        media.filename.clone()
    };
    let name = match (file.item_number, name.rsplit_once('.')) {
        (Some(n), Some((stem, ext))) if media.files.len() > 1 => format!("{stem}_{n}.{ext}"),
        _ => name,
    };
    format!("media/gopro/{y}/{m}/{d}/{name}")
}

/// The library of the end-to-end run: 30 items; `big` bytes for the large video.
fn library(big: u64) -> Vec<FakeMedia> {
    let mut media = vec![
        FakeMedia::chaptered("Ch3", "GH010042.MP4", "2025-06-01T08:00:00Z", &[6 * MIB, 6 * MIB, 3 * MIB + 7]),
        FakeMedia::burst("Bu1", "G0010100.JPG", "2025-06-02T09:00:00Z", 3, 700_000),
        FakeMedia::photo("Ph1", "GOPR0101.JPG", "2025-06-03T10:00:00Z", 2 * MIB + 11),
        FakeMedia::video("Del", "GX010050.MP4", "2025-06-04T11:00:00Z", MIB),
        FakeMedia {
            ready_to_view: "transcoding".into(),
            ..FakeMedia::video("Nr1", "GX010051.MP4", "2025-06-05T12:00:00Z", MIB)
        },
        FakeMedia::video("Big", "GX010099.MP4", "2025-06-06T13:00:00Z", big),
        FakeMedia::video("NoName", "", "2025-06-07T14:00:00Z", MIB + 3),
    ];
    for i in 0..23u64 {
        let id = format!("V{i:02}");
        let name = format!("GX01{:04}.MP4", 200 + i);
        media.push(FakeMedia::video(&id, &name, &format!("2025-07-{:02}T06:30:00Z", 1 + i), MIB / 2 + i * 40_000));
    }
    assert_eq!(media.len(), 30);
    media
}

/// CRC-64/NVME of a fake file's generated stream, base64 as S3 gives it.
fn crc64nvme_of(seed: &str, size: u64) -> String {
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme);
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(8 << 20) as usize;
        crc.update(&content(seed, pos, n));
        pos += n as u64;
    }
    pkgrelay_core::media::transfer::crc_base64(crc.finalize())
}

fn count_file_gets(fake: &FakeGoPro) -> usize {
    fake.requests().iter().filter(|r| r.host == "files" && r.method == "GET").count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_library_of_thirty() {
    let media = library(4 * GIB);
    let fake = FakeGoPro::start(media.clone());
    fake.delete_keep_listed("Del");
    let aws = MediaAws::setup(&fake, &cookie_login()).await;

    let started = Instant::now();
    let report = aws.execute(json!({"trigger": "manual"})).await;
    eprintln!("first run: {:.1?}, {} transitions", started.elapsed(), report["counts"]["stateTransitions"]);
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    assert_states_within_limit(&report);
    let summary = &report["output"]["summary"];
    assert_eq!(summary["copied"], 28, "{summary:#}");
    assert_eq!(summary["deleted"], 1, "{summary:#}");
    assert_eq!(summary["failed"], 0, "{summary:#}");

    let statuses = aws.statuses().await;
    assert_eq!(statuses["Del"]["status"], "SOURCE_DELETED");
    assert!(statuses.get("Nr1").is_none_or(|s| s["status"] != "COMPLETED"), "not ready: {:?}", statuses.get("Nr1"));
    for m in media.iter().filter(|m| m.id != "Del" && m.id != "Nr1") {
        let record = &statuses[&m.id];
        assert_eq!(record["status"], "COMPLETED", "{}: {record:#}", m.id);
        let recorded: BTreeMap<String, String> = record["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["key"].as_str().unwrap().to_owned(), f["sha256"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(recorded.len(), m.files.len(), "{}: {record:#}", m.id);
        for f in &m.files {
            let key = key_of(m, f);
            let seed = FakeGoPro::seed(&m.id, f.item_number);
            let head = aws.head(&key).await.unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(head.content_length(), Some(f.size as i64), "{key}");
            if f.size > GIB {
                // Not read back: S3 checked the whole object against the CRC
                // the function computed, and that CRC is the fake's stream's.
                assert_eq!(head.checksum_crc64_nvme(), Some(crc64nvme_of(&seed, f.size).as_str()), "{key}");
                assert_eq!(recorded[&key], sha256_of(&seed, f.size), "{key}: recorded SHA-256");
            } else {
                let expected = sha256_of(&seed, f.size);
                assert_eq!(aws.sha256_of_object(&key).await.as_deref(), Some(expected.as_str()), "{key}");
                assert_eq!(recorded[&key], expected, "{key}: recorded SHA-256");
            }
        }
    }
    assert!(aws.head("media/gopro/2025/06/04/GX010050.MP4").await.is_none(), "the deleted item was never copied");
    assert_eq!(aws.open_uploads().await, 0);

    // No token in a log line or a state.
    let logs = aws.logs().await;
    assert!(logs.lines().count() > 10);
    let history = report["events"].to_string();
    for needle in [FakeGoPro::COOKIE_TOKEN, "Signature=", "X-Amz-Signature"] {
        assert!(!logs.contains(needle), "{needle} in the logs");
        assert!(!history.contains(needle), "{needle} in a state");
    }
    assert!(logs.contains("VideosSynced"), "the embedded metrics line");

    // A second run copies nothing.
    let gets = count_file_gets(&fake);
    let report = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    assert_eq!(report["output"]["summary"]["copied"], 0, "{:#}", report["output"]);
    assert_eq!(count_file_gets(&fake), gets, "no file downloaded again");
    assert_eq!(aws.statuses().await, statuses, "the status table unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_upload_is_resumed() {
    // Three parts of 100 MiB and a tail: killed once a part is up.
    let size = 300 * MIB + 12_345;
    let fake = FakeGoPro::start(vec![FakeMedia::video("K1", "GX010777.MP4", "2025-08-01T10:00:00Z", size)]);
    let aws = MediaAws::setup(&fake, &cookie_login()).await;
    let key = "media/gopro/2025/08/01/GX010777.MP4";

    // download-media run by hand as Lambda runs it (its role, its environment).
    let function = &aws.info["functions"]["download-media"];
    let mut cmd = Command::new(bin_dir_of("download-media"));
    for (k, v) in function["environment"].as_object().unwrap() {
        cmd.env(k, v.as_str().unwrap());
    }
    let secret_version = aws.secrets.get_secret_value().secret_id(&aws.secret_arn).send().await.unwrap();
    let item = json!({
        "id": "K1", "kind": "Video", "filename": "GX010777.MP4", "file_extension": "mp4", "file_size": size,
        "captured_at": "2025-08-01T10:00:00Z", "state": "ready",
    });
    let event = json!({"payload": {"secret_version_id": secret_version.version_id().unwrap(), "item": item},
                       "execution_id": "arn:aws:states:us-east-1:123456789012:execution:media:kill"});
    let mut child =
        cmd.arg("--invoke").stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), event.to_string().as_bytes()).unwrap();
    // Killed once a part is up and the item's record says so (the progress
    // the next attempt resumes from).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let parts_done = aws.statuses().await.get("K1").and_then(|r| r["upload"]["parts_done"].as_u64()).unwrap_or(0);
        if parts_done >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no part recorded in 5 minutes");
        assert!(child.try_wait().unwrap().is_none(), "download-media ended before a part was up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(aws.head(key).await.is_none(), "no partial object visible");
    assert_eq!(aws.open_uploads().await, 1);
    let record = &aws.statuses().await["K1"];
    assert_ne!(record["status"], "COMPLETED", "{record:#}");

    let report = aws.execute(json!({})).await;
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    let ranges: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.host == "files" && r.method == "GET")
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert!(
        ranges.iter().any(|r| r.starts_with("bytes=104857600-") || r.starts_with("bytes=209715200-")),
        "{ranges:?}"
    );
    assert_eq!(aws.sha256_of_object(key).await, Some(sha256_of(&FakeGoPro::seed("K1", None), size)));
    assert_eq!(aws.open_uploads().await, 0, "no upload left open");
    assert_eq!(aws.statuses().await["K1"]["status"], "COMPLETED");
}

fn bin_dir_of(binary: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(binary);
    assert!(path.exists(), "{} missing: run `cargo build --workspace --bins` (tests/run does)", path.display());
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_dying_mid_run_is_refreshed_once() {
    let media: Vec<FakeMedia> = (0..8)
        .map(|i| FakeMedia::video(&format!("T{i}"), &format!("GX0199{i:02}.MP4"), "2025-09-01T10:00:00Z", 300_000))
        .collect();
    let fake = FakeGoPro::start(media);
    fake.expire_access_tokens_after_descriptors(3);
    let aws = MediaAws::setup(&fake, &oauth_login()).await;
    let before = aws.secrets.get_secret_value().secret_id(&aws.secret_arn).send().await.unwrap();

    let report = aws.execute(json!({})).await;
    assert_eq!(report["status"], "SUCCEEDED", "{report:#}");
    assert_eq!(fake.tokens_issued(), 1, "one refresh");
    let entered = states_entered(&report);
    assert_eq!(entered.iter().filter(|s| *s == "Reauthenticate").count(), 1, "{entered:?}");
    let statuses = aws.statuses().await;
    assert_eq!(statuses.len(), 8);
    assert!(statuses.values().all(|s| s["status"] == "COMPLETED"), "{statuses:#?}");
    // The rotated tokens were written back, as a new version of the secret.
    let after = aws.secrets.get_secret_value().secret_id(&aws.secret_arn).send().await.unwrap();
    assert_ne!(before.version_id(), after.version_id());
    assert_eq!(aws.credentials().await["refresh_token"], fake.current_refresh_token());
    let logs = aws.logs().await;
    let history = report["events"].to_string();
    for needle in
        [FakeGoPro::REFRESH_TOKEN, FakeGoPro::ACCESS_TOKEN, FakeGoPro::CLIENT_SECRET, &fake.current_refresh_token()]
    {
        assert!(!logs.contains(needle), "a token in the logs");
        assert!(!history.contains(needle), "a token in a state");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_login_fails_the_run_once() {
    let fake = FakeGoPro::start(library(MIB));
    fake.revoke_cookie();
    let aws = MediaAws::setup(&fake, &cookie_login()).await;
    let report = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(report["status"], "FAILED", "{report:#}");
    assert_eq!(report["error"], "LoginRequired", "{report:#}");
    let entered = states_entered(&report);
    assert!(entered.contains(&"NotifyLoginRequired".to_owned()), "{entered:?}");
    let alert = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["taskScheduledEventDetails"]["parameters"].as_str())
        .find(|p| p.contains("log in to GoPro again"))
        .unwrap_or_else(|| panic!("no alert saying to log in again in {:#}", report["events"]));
    assert!(!alert.contains(FakeGoPro::COOKIE_TOKEN));
    assert!(aws.statuses().await.values().all(|s| s["status"] != "FAILED"), "no item failed");
    assert_eq!(count_file_gets(&fake), 0);
}
