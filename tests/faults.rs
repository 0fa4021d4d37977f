//! The fault matrix: what goes wrong mid-run, on the emulated AWS store and on
//! the local one. After each fault the published repository is still clean
//! for a real apt, the store is consistent with the bucket, nothing
//! half-written is public, and the next run finishes the work.
//!
//! On AWS the faults are AWS's own answers, injected by tests/localaws'
//! gateway in front of moto (S3's 500 InternalError and 503 SlowDown,
//! DynamoDB's ThrottlingException) — transient ones, which the SDK's retries
//! absorb, and persistent ones, which fail the step; a cut connection
//! mid-download comes from the fake upstream. A crash between two steps is
//! the one fault no server can produce: `PKGRELAY_CRASH_AFTER=<step>` makes
//! the step's process abort once its work is done, before its result is
//! returned (shared/src/steps/mod.rs). Two executions racing are in
//! aws_pipeline.rs (AWS) and below (local).

mod common;

use common::aws::*;
use common::bigdeb::big_deb;
use common::*;
use pkgrelay_core::store::PackageStore;
use serde_json::json;
use std::process::Command;

const OLD: &str = "0.7.44";
const NEW: &str = "0.7.45";

/// A deployment that has published kiro `OLD`.
async fn published() -> (Upstream, Workspace, Aws) {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    publish_kiro(&up, OLD);
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    (up, ws, aws)
}

/// Serve kiro `version` as a .deb larger than one multipart part (16 MiB), so
/// that its upload to the pool goes through UploadPart.
fn publish_big_kiro(up: &Upstream, version: &str) {
    let deb_path = format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::Body(big_deb("kiro", version, "amd64", 20 << 20)));
    up.set(&format!("/signed/{version}/certificate.pem"), Reply::Body(format!("CERT {version}\n").into_bytes()));
    up.set(&format!("/signed/{version}/signature.bin"), Reply::Body(format!("SIG {version}").into_bytes()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(up, version, &deb_path)));
}

/// The repository as apt sees it through CloudFront lists exactly `versions`
/// of kiro; `pkgrelay verify` passes on a copy of the public bucket; every
/// entry's pool file is there with its size; every pool file is whole (its
/// bytes hash to the SHA256 it was written with).
async fn assert_clean(aws: &Aws, ws: &Workspace, versions: &[&str]) {
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), versions);
    let public = tempfile::tempdir().unwrap();
    aws.download_public(public.path()).await;
    let verify = ws.pkgrelay(&["verify", "--out", public.path().to_str().unwrap()]);
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    for entry in aws.store().await.all().await.unwrap() {
        let head = aws.s3.head_object().bucket(&aws.bucket).key(&entry.filename).send().await;
        let head = head.unwrap_or_else(|e| panic!("{} recorded, its pool file {} missing: {e}", entry.package_id, entry.filename));
        assert_eq!(head.content_length(), Some(entry.checksums.size as i64), "{}", entry.filename);
    }
    let listing = aws.s3.list_objects_v2().bucket(&aws.bucket).prefix("pool/").send().await.unwrap();
    for object in listing.contents() {
        let key = object.key().unwrap();
        let head = aws.s3.head_object().bucket(&aws.bucket).key(key).send().await.unwrap();
        let want = head.metadata().and_then(|m| m.get("sha256")).cloned().unwrap_or_else(|| panic!("{key} has no sha256"));
        assert_eq!(sha256(&aws.get(key).await.unwrap()), want, "{key} is whole");
    }
}

/// A run under a fault: it fails (the execution, or the new item) and leaves
/// the repository as it was; without the fault the next run publishes.
async fn persistent(operation: &str, principal: &str, status: u16, code: &str, big: bool) {
    let (up, ws, aws) = published().await;
    if big {
        publish_big_kiro(&up, NEW);
    } else {
        publish_kiro(&up, NEW);
    }
    let service = if ["TransactWriteItems", "UpdateItem", "PutItem"].contains(&operation) { "dynamodb" } else { "s3" };
    let fault = aws
        .add_fault(json!({"match": {"service": service, "operation": operation, "principal": principal},
            "respond": {"status": status, "code": code, "message": "injected by tests/faults.rs"}, "times": "always"}))
        .await;
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    let hits = aws.remove_fault(&fault).await;
    assert!(hits > 0, "{operation} by {principal} was never asked: {r:#}");
    let failed = r["status"] == "FAILED" || r["output"]["summary"]["items"]["failed_count"].as_u64().unwrap_or(0) > 0;
    assert!(failed, "{operation} {code} always: the run reports a failure: {r:#}");
    eprintln!("{operation} {status} {code} by {principal}: {hits} requests refused; run {} ({})", r["status"], r["error"]);
    // Whatever got through before the fault: never a half-written index.
    let apt = aws.apt_accepts().await;
    let listed = madison(&apt, "kiro");
    assert!(listed == [OLD] || listed == [NEW, OLD], "{listed:?}");
    assert_clean(&aws, &ws, &listed.iter().map(String::as_str).collect::<Vec<_>>()).await;

    // The next hourly run, the fault gone.
    expire_lease(&aws).await;
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_clean(&aws, &ws, &[NEW, OLD]).await;
}

/// The same fault, twice only: the SDK's retries absorb it and the run succeeds.
async fn transient(operation: &str, principal: &str, status: u16, code: &str, big: bool) {
    let (up, ws, aws) = published().await;
    if big {
        publish_big_kiro(&up, NEW);
    } else {
        publish_kiro(&up, NEW);
    }
    let service = if ["TransactWriteItems", "UpdateItem", "PutItem"].contains(&operation) { "dynamodb" } else { "s3" };
    let fault = aws
        .add_fault(json!({"match": {"service": service, "operation": operation, "principal": principal},
            "respond": {"status": status, "code": code, "message": "injected by tests/faults.rs"}, "times": 2}))
        .await;
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(aws.remove_fault(&fault).await, 2, "{operation} by {principal} was refused twice");
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["summary"]["items"]["failed_count"], 0, "{r:#}");
    assert_clean(&aws, &ws, &[NEW, OLD]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_put_object_500_and_503() {
    transient("PutObject", "download-package", 503, "SlowDown", false).await;
    persistent("PutObject", "download-package", 500, "InternalError", false).await;
    persistent("PutObject", "download-package", 503, "SlowDown", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_upload_part_500_and_503() {
    transient("UploadPart", "download-package", 500, "InternalError", true).await;
    persistent("UploadPart", "download-package", 500, "InternalError", true).await;
    persistent("UploadPart", "download-package", 503, "SlowDown", true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_copy_object_500_and_503() {
    transient("CopyObject", "publish", 503, "SlowDown", false).await;
    persistent("CopyObject", "publish", 500, "InternalError", false).await;
    persistent("CopyObject", "publish", 503, "SlowDown", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_head_object_500_and_503() {
    transient("HeadObject", "check-sources", 503, "SlowDown", false).await;
    persistent("HeadObject", "check-sources", 500, "InternalError", false).await;
    persistent("HeadObject", "build-index", 503, "SlowDown", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_throttling_on_the_insert_and_on_update_item() {
    // The insert is a TransactWriteItems (the entry's Put and the recorded mark).
    transient("TransactWriteItems", "record-metadata", 400, "ThrottlingException", false).await;
    transient("UpdateItem", "build-index", 400, "ThrottlingException", false).await;
    persistent("TransactWriteItems", "record-metadata", 400, "ThrottlingException", false).await;
    persistent("UpdateItem", "publish", 400, "ThrottlingException", false).await;
}

/// A cut connection mid-download, every time: the item fails after its
/// retries, nothing of it is written; fixed upstream, the next run publishes.
#[tokio::test(flavor = "multi_thread")]
async fn network_cut_mid_download() {
    let (up, ws, aws) = published().await;
    let bytes = publish_kiro(&up, NEW);
    let deb_path = format!("/signed/{NEW}/deb/kiro-ide-{NEW}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::CutShort(bytes.clone()));
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let failed = &r["output"]["summary"]["items"]["failed"][0];
    assert_eq!(failed["error"], "TransientError", "{r:#}");
    assert!(up.hits(&deb_path) > 1, "retried");
    assert_clean(&aws, &ws, &[OLD]).await;
    up.set(&deb_path, Reply::Body(bytes));
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_clean(&aws, &ws, &[NEW, OLD]).await;
}

/// The suite's lease, if a run left one, as if its half hour had passed: a
/// builder or publisher that died (or could not reach the table to give it
/// back) holds it until then, and the next hourly run finds it expired.
async fn expire_lease(aws: &Aws) {
    let held = aws.store().await.suite("stable").await.unwrap().lease;
    if let Some(lease) = held {
        eprintln!("the failed run left generation {}'s lease: expiring it, as the next hourly run would find it", lease.generation);
        aws.dynamodb()
            .await
            .update_item()
            .table_name(&aws.state_table)
            .key("suite", aws_sdk_dynamodb::types::AttributeValue::S("stable".into()))
            .update_expression("SET lease_until = :past")
            .expression_attribute_values(":past", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
            .send()
            .await
            .unwrap();
    }
}

/// A function killed right after each step did its work, before Step
/// Functions learns the result.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_each_two_steps() {
    for step in ["check-sources", "download-package", "record-metadata", "build-index", "publish"] {
        let (up, ws, aws) = published().await;
        publish_kiro(&up, NEW);
        aws.set_function_env(json!({"PKGRELAY_CRASH_AFTER": step})).await;
        let r = aws.execute(json!({"trigger": "schedule"})).await;
        let crashed = aws
            .all_logs()
            .await
            .contains(&format!("PKGRELAY_CRASH_AFTER={step}: aborting after {step}"));
        assert!(crashed, "{step} crashed");
        eprintln!("crash after {step}: run {} {}", r["status"], r["error"]);
        admin(reqwest::Method::POST, &format!("deployments/{}/options", aws.id), Some(json!({"unset_lambda_env": ["PKGRELAY_CRASH_AFTER"]})))
            .await;
        let apt = aws.apt_accepts().await;
        let listed = madison(&apt, "kiro");
        assert!(listed == [OLD] || listed == [NEW, OLD], "after a crash in {step}: {listed:?}");
        expire_lease(&aws).await;
        let r = aws.execute(json!({"trigger": "schedule"})).await;
        assert_eq!(r["status"], "SUCCEEDED", "the run after a crash in {step}: {r:#}");
        assert_clean(&aws, &ws, &[NEW, OLD]).await;
    }
}

// ---------------------------------------------------------------- local store

fn sync_with(ws: &Workspace, env: &[(&str, &str)]) -> (bool, String) {
    let out = ws.pkgrelay_with(&["sync"], |cmd: &mut Command| {
        for (k, v) in env {
            cmd.env(k, v);
        }
    });
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Clean for apt (served by `pkgrelay serve`), verified, listing `versions`.
fn assert_local_clean(ws: &Workspace, versions: &[&str]) {
    let verify = ws.verify();
    assert!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    let served = ws.serve();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "{text}");
    assert_eq!(madison(&apt, "kiro"), versions);
}

fn local_published() -> (Upstream, Workspace) {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, OLD);
    let (ok, out) = sync_with(&ws, &[]);
    assert!(ok, "{out}");
    (up, ws)
}

#[test]
fn local_network_cut_mid_download() {
    let (up, ws) = local_published();
    let bytes = publish_kiro(&up, NEW);
    let deb_path = format!("/signed/{NEW}/deb/kiro-ide-{NEW}-stable-linux-x64.deb");
    up.set(&deb_path, Reply::CutShort(bytes.clone()));
    let (ok, out) = sync_with(&ws, &[]);
    assert!(ok && out.contains("failed: 1") && out.contains("[TransientError]"), "{out}");
    assert_local_clean(&ws, &[OLD]);
    up.set(&deb_path, Reply::Body(bytes));
    let (ok, out) = sync_with(&ws, &[]);
    assert!(ok && out.contains("new: 1"), "{out}");
    assert_local_clean(&ws, &[NEW, OLD]);
}

#[test]
fn local_crash_between_each_two_steps() {
    for step in ["check-sources", "download-package", "record-metadata", "build-index", "publish"] {
        let (up, ws) = local_published();
        publish_kiro(&up, NEW);
        let (ok, out) = sync_with(&ws, &[("PKGRELAY_CRASH_AFTER", step)]);
        assert!(!ok && out.contains(&format!("aborting after {step}")), "{step}: {out}");
        let served_versions = if matches!(step, "publish") { vec![NEW, OLD] } else { vec![OLD] };
        assert_local_clean(&ws, &served_versions);
        if step == "build-index" {
            // The dead build's lease, as if its half hour had passed.
            let db = rusqlite::Connection::open(ws.path(".pkgrelay/state.db")).unwrap();
            db.execute("UPDATE suites SET lease_until = 0 WHERE suite = 'stable'", []).unwrap();
        }
        let (ok, out) = sync_with(&ws, &[]);
        assert!(ok, "the run after a crash in {step}: {out}");
        assert_local_clean(&ws, &[NEW, OLD]);
    }
}

#[test]
fn local_syncs_racing() {
    let (up, ws) = local_published();
    publish_kiro(&up, NEW);
    let results: Vec<(bool, String)> = std::thread::scope(|s| {
        let a = s.spawn(|| sync_with(&ws, &[]));
        let b = s.spawn(|| sync_with(&ws, &[]));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    // Both finish; at most one waits out the other's lease (PublishInProgress).
    for (ok, out) in &results {
        assert!(*ok || out.contains("PublishInProgress"), "{out}");
    }
    assert!(results.iter().any(|(ok, _)| *ok), "{results:#?}");
    let (ok, out) = sync_with(&ws, &[]);
    assert!(ok, "{out}");
    assert_local_clean(&ws, &[NEW, OLD]);
}
