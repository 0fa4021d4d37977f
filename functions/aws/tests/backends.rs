//! The DynamoDB and S3 backends against a real emulator (moto) on loopback,
//! through tests/localaws' gateway, which holds every caller to AWS's limits
//! (items of 400 KB, keys of 1024 bytes, user metadata of 2 KB, part sizes).
//!
//! `tests/run` starts both and exports `PKGRELAY_AWS_ENDPOINT`; without it these
//! tests fail rather than pass vacuously. Every test makes its own tables or
//! bucket, so they run in parallel against one long-lived server. They sign
//! with the operator's key (the account administrator's): IAM is the pipeline
//! tests' subject, not these.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::sdk_config;
use pkgrelay_aws::dynamo::{self, DynamoStore};
use pkgrelay_aws::s3::{self, S3Store};
use pkgrelay_core::blob::{BlobError, ObjectStore, WriteMode};

use pkgrelay_core::fetch::Validators;
use pkgrelay_core::model::{ConfigFields, Lease, Publication, SourceState, SourceType, StoredCompanion, SuiteState};
use pkgrelay_core::store::{Allocation, InsertOutcome, PackageStore, PublishRecord, StoreError};
use pkgrelay_core::testing::entry;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

const MIB: usize = 1024 * 1024;

/// A name no other test (in this run or an earlier one on the same server) uses.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    format!("pkgrelay-{tag}-{}-{millis:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------- DynamoDB

struct Tables {
    store: DynamoStore,
    client: aws_sdk_dynamodb::Client,
    packages: String,
}

async fn tables(tag: &str) -> Tables {
    let client = dynamo::client(&sdk_config().await);
    let (packages, state) = (unique(&format!("{tag}-packages")), unique(&format!("{tag}-state")));
    dynamo::create_tables(&client, &packages, &state).await.unwrap();
    // Creating again is a no-op (local tooling runs it on every start).
    dynamo::create_tables(&client, &packages, &state).await.unwrap();
    Tables { store: DynamoStore::new(client.clone(), &packages, &state), client, packages }
}

fn publication(generation: u64) -> Publication {
    Publication {
        generation,
        date: "2026-01-01T00:00:00Z".into(),
        valid_until: "2026-01-08T00:00:00Z".into(),
        manifest_key: format!("generations/stable/{generation}/manifest.json"),
        recorded: 0,
    }
}

#[tokio::test]
async fn dynamo_insert_is_conditional() {
    let t = tables("insert").await;
    let a = entry("kiro", "0.7.45", "amd64", b"one");
    assert_eq!(t.store.insert("stable", &a).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(t.store.insert("stable", &a).await.unwrap(), InsertOutcome::AlreadyPresent);
    let b = entry("kiro", "0.7.45", "amd64", b"two");
    assert_eq!(
        t.store.insert("stable", &b).await.unwrap(),
        InsertOutcome::Conflict { existing_sha256: a.checksums.sha256.clone() }
    );
    // The first entry is kept, untouched.
    assert_eq!(t.store.get(&a.package_id).await.unwrap().unwrap(), a);
    assert_eq!(t.store.get("kiro#9.9#amd64").await.unwrap(), None);
    // One insert raised the suite's mark; the no-op and the conflict did not.
    assert_eq!(t.store.suite("stable").await.unwrap().recorded, 1);
}

#[tokio::test]
async fn dynamo_reads_many_ids_in_batches_of_a_hundred() {
    let t = tables("batchget").await;
    let mut ids = Vec::new();
    for i in 0..230 {
        let e = entry("p", &format!("1.{i}"), "all", format!("{i}").as_bytes());
        t.store.insert("stable", &e).await.unwrap();
        ids.push(e.package_id);
    }
    ids.push("absent#1#all".into());
    ids.push(ids[0].clone()); // the same id twice is asked once
    let mut found: Vec<String> = t.store.get_many(&ids).await.unwrap().into_iter().map(|e| e.package_id).collect();
    found.sort();
    let mut want: Vec<String> = ids[..230].to_vec();
    want.sort();
    assert_eq!(found, want);
    assert_eq!(t.store.suite("stable").await.unwrap().recorded, 230);
}

#[tokio::test]
async fn an_entry_too_large_for_one_item_is_refused_by_name() {
    let t = tables("toolarge").await;
    let mut e = entry("kiro", "1.0", "amd64", b"big");
    e.apt_mut().unwrap().control.fields.push(("Description".into(), "x".repeat(410 * 1024)));
    let err = t.store.insert("stable", &e).await.unwrap_err().to_string();
    assert!(err.contains("kiro#1.0#amd64") && err.contains("409600"), "{err}");
    assert_eq!(t.store.get(&e.package_id).await.unwrap(), None);
    assert_eq!(t.store.suite("stable").await.unwrap().recorded, 0);
    // The size as DynamoDB counts it: names and values.
    let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> = [
        ("ab".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S("héllo".into())),
        ("n".to_owned(), aws_sdk_dynamodb::types::AttributeValue::N("12345".into())),
        ("b".to_owned(), aws_sdk_dynamodb::types::AttributeValue::Bool(true)),
    ]
    .into();
    // 2 + 6, 1 + (3 digits pairs + 1 = 4), 1 + 1
    assert_eq!(dynamo::item_size(&item), 8 + 5 + 2);
}

#[tokio::test]
async fn dynamo_round_trips_a_full_entry_as_native_attributes() {
    let t = tables("roundtrip").await;
    let mut e = entry("kiro", "1:0.7.45~rc1+b2", "amd64", b"deb bytes");
    e.apt_mut().unwrap().control.fields.extend([
        ("Installed-Size".into(), "412345".into()),
        ("Depends".into(), "libgtk-3-0 (>= 3.24), libnss3 | libnss3-tools".into()),
        ("Description".into(), "Kiro IDE\n An agentic IDE.\n .\n Unicode: ünïcødé ✓".into()),
        ("X-Empty".into(), String::new()),
    ]);
    e.config = ConfigFields {
        description: Some("The Kiro IDE".into()),
        maintainer: Some("Kiro <kiro@example.com>".into()),
        homepage: Some("https://kiro.dev".into()),
        section: Some("devel".into()),
        priority: Some("optional".into()),
        depends: vec!["libc6".into(), "git".into()],
    };
    e.source_type = SourceType::GithubRelease;
    e.companions = vec![
        StoredCompanion {
            kind: "certificate".into(),
            key: "pool/main/k/kiro/kiro_0.7.45_amd64.pem".into(),
            url: "https://example.com/certificate.pem".into(),
            size: 1234,
            sha256: hex::encode(Sha256::digest(b"pem")),
        },
        StoredCompanion {
            kind: "signature".into(),
            key: "pool/main/k/kiro/kiro_0.7.45_amd64.sig".into(),
            url: "https://example.com/signature.bin".into(),
            size: 256,
            sha256: hex::encode(Sha256::digest(b"sig")),
        },
    ];
    e.pub_date = Some("2025-11-20T10:00:00Z".into());
    e.notes = Some("Bug fixes.\nMore bug fixes.".into());
    e.checksums.size = 3_000_000_000; // above u32
    assert_eq!(t.store.insert("stable", &e).await.unwrap(), InsertOutcome::Inserted);
    assert_eq!(t.store.get(&e.package_id).await.unwrap().unwrap(), e);
    assert_eq!(t.store.all().await.unwrap(), vec![e.clone()]);
    assert_eq!(t.store.versions_of("kiro").await.unwrap(), vec![e.clone()]);

    // What the console shows: plain attributes, numbers as numbers.
    let item = t
        .client
        .get_item()
        .table_name(&t.packages)
        .key("package_id", AttributeValue::S(e.package_id.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    assert_eq!(s("package_name").as_deref(), Some("kiro"));
    assert_eq!(s("version").as_deref(), Some("1:0.7.45~rc1+b2"));
    assert_eq!(s("architecture").as_deref(), Some("amd64"));
    assert_eq!(s("sha256"), Some(e.checksums.sha256.clone()));
    assert_eq!(s("filename"), Some(e.filename.clone()));
    assert_eq!(s("source_type").as_deref(), Some("github_release"));
    assert_eq!(item.get("size").and_then(|v| v.as_n().ok()).map(String::as_str), Some("3000000000"));
    assert!(item.get("companions").is_some_and(|v| v.as_l().is_ok_and(|l| l.len() == 2)));
}

/// A latest_url source's record lives in the state table under
/// `source#<package>`, beside the suite's item and apart from it; an entry's
/// announced version round-trips.
#[tokio::test]
async fn dynamo_keeps_source_records_beside_the_suites() {
    let t = tables("sources").await;
    assert_eq!(t.store.source_state("kiro-cli").await.unwrap(), None);
    let mut state = SourceState {
        package: "kiro-cli".into(),
        url: "https://desktop-release.q.us-east-1.amazonaws.com/latest/kiro-cli.deb".into(),
        validators: Validators {
            etag: Some("\"0123abcd\"".into()),
            last_modified: Some("Tue, 04 Nov 2025 12:00:00 GMT".into()),
            size: Some(3_000_000_000),
        },
        package_id: "kiro-cli#2.20.2#amd64".into(),
        sha256: hex::encode(Sha256::digest(b"cli")),
        conflict: None,
        recorded_at: "2026-01-01T00:00:00Z".into(),
    };
    t.store.record_source(&state).await.unwrap();
    assert_eq!(t.store.source_state("kiro-cli").await.unwrap(), Some(state.clone()));
    // Replaced whole: a field that is gone is gone.
    state.validators = Validators { etag: None, last_modified: None, size: Some(10) };
    state.conflict = Some("kiro-cli#2.20.2#amd64 is already recorded with other bytes".into());
    t.store.record_source(&state).await.unwrap();
    assert_eq!(t.store.source_state("kiro-cli").await.unwrap(), Some(state));
    assert_eq!(t.store.source_state("kiro").await.unwrap(), None);

    // The suite's record is another item.
    t.store.insert("stable", &entry("kiro", "0.7.45-1763640000", "amd64", b"k")).await.unwrap();
    assert_eq!(t.store.suite("stable").await.unwrap().recorded, 1);
    let mut e = entry("kiro", "0.6.0-1762210000", "amd64", b"old");
    e.announced_version = Some("0.6.0".into());
    t.store.insert("stable", &e).await.unwrap();
    assert_eq!(t.store.get(&e.package_id).await.unwrap().unwrap(), e);
    let announced: Vec<_> =
        t.store.versions_of("kiro").await.unwrap().into_iter().map(|e| e.announced().to_owned()).collect();
    assert_eq!(announced.len(), 2);
    assert!(announced.contains(&"0.6.0".to_owned()) && announced.contains(&"0.7.45-1763640000".to_owned()));
}

#[tokio::test]
async fn dynamo_scan_and_index_query_paginate() {
    let t = tables("paginate").await;
    let store = t.store.with_page_size(3);
    let mut ids = Vec::new();
    for i in 0..8 {
        let e = entry("kiro", &format!("0.{i}.0"), "amd64", format!("kiro {i}").as_bytes());
        ids.push(e.package_id.clone());
        store.insert("stable", &e).await.unwrap();
    }
    for arch in ["amd64", "arm64", "i386", "riscv64"] {
        let e = entry("kiro-cli", "1.0", arch, arch.as_bytes());
        ids.push(e.package_id.clone());
        store.insert("stable", &e).await.unwrap();
    }
    let mut all: Vec<_> = store.all().await.unwrap().into_iter().map(|e| e.package_id).collect();
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "every item, each once, across 4 scan pages");

    let mut kiro: Vec<_> = store.versions_of("kiro").await.unwrap().into_iter().map(|e| e.version).collect();
    kiro.sort();
    assert_eq!(kiro, (0..8).map(|i| format!("0.{i}.0")).collect::<Vec<_>>());
    assert_eq!(store.versions_of("kiro-cli").await.unwrap().len(), 4);
    assert!(store.versions_of("nothing").await.unwrap().is_empty());
}

#[tokio::test]
async fn dynamo_generation_counter_is_atomic_and_leased() {
    let t = tables("generation").await;
    let store = &t.store;
    // 20 concurrent builds: exactly one gets the next generation and the lease,
    // the others see it busy. (DynamoDB makes each conditional update atomic;
    // tests/moto_server.py makes the emulator do the same.)
    let got = futures_util::future::try_join_all((0..20).map(|_| store.allocate_generation("stable", 1_000, 60)))
        .await
        .unwrap();
    let granted: Vec<_> = got.iter().filter(|a| matches!(a, Allocation::Granted(_))).collect();
    assert_eq!(granted, [&Allocation::Granted(1)], "{got:?}");
    assert_eq!(got.iter().filter(|a| **a == Allocation::Busy(Lease { generation: 1, until: 1_060 })).count(), 19);
    // Once the lease runs out (or is released), the counter moves on one by one.
    for (n, now) in (2..=5).zip([1_060, 2_000, 3_000, 4_000]) {
        assert_eq!(store.allocate_generation("stable", now, 60).await.unwrap(), Allocation::Granted(n));
        store.release_lease("stable", n).await.unwrap();
    }
    store.release_lease("stable", 99).await.unwrap(); // not the holder: no-op
    assert_eq!(store.suite("stable").await.unwrap().generation, 5);
    assert_eq!(store.suite("stable").await.unwrap().lease, None);
    // Suites count separately.
    assert_eq!(store.allocate_generation("beta", 1_000, 60).await.unwrap(), Allocation::Granted(1));
}

#[tokio::test]
async fn dynamo_record_published_refuses_older_generations_and_lost_leases() {
    let t = tables("publish").await;
    let s = &t.store;
    assert_eq!(s.suite("stable").await.unwrap(), SuiteState { suite: "stable".into(), ..Default::default() });
    assert_eq!(s.allocate_generation("stable", 100, 60).await.unwrap(), Allocation::Granted(1));
    // Generation 1 stalls past its lease; generation 2 takes over.
    assert_eq!(s.allocate_generation("stable", 200, 60).await.unwrap(), Allocation::Granted(2));
    assert_eq!(s.record_published("stable", &publication(1)).await.unwrap(), PublishRecord::LeaseLost);
    assert_eq!(s.suite("stable").await.unwrap().lease, Some(Lease { generation: 2, until: 260 }));
    assert_eq!(s.record_published("stable", &publication(2)).await.unwrap(), PublishRecord::Recorded);
    let st = s.suite("stable").await.unwrap();
    assert_eq!(
        (st.generation, st.published.clone(), st.lease),
        (2, Some(publication(2)), None),
        "publishing releases the lease"
    );
    assert_eq!(
        s.record_published("stable", &publication(1)).await.unwrap(),
        PublishRecord::Superseded { published: 2 }
    );
    assert_eq!(
        s.record_published("stable", &publication(2)).await.unwrap(),
        PublishRecord::Superseded { published: 2 }
    );
    assert_eq!(s.allocate_generation("stable", 300, 60).await.unwrap(), Allocation::Granted(3));
    assert_eq!(s.record_published("stable", &publication(3)).await.unwrap(), PublishRecord::Recorded);
    assert_eq!(s.suite("stable").await.unwrap().published, Some(publication(3)));
}

#[tokio::test]
async fn dynamo_errors_name_table_operation_and_code() {
    let client = dynamo::client(&sdk_config().await);
    let store = DynamoStore::new(client, "pkgrelay-no-such-packages", "pkgrelay-no-such-state");
    let StoreError::Backend(message) = store.get("kiro#1#amd64").await.unwrap_err() else { panic!("not Backend") };
    assert!(message.contains("pkgrelay-no-such-packages"), "{message}");
    assert!(message.contains("GetItem"), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    let StoreError::Backend(message) = store.allocate_generation("stable", 0, 60).await.unwrap_err() else { panic!() };
    assert!(message.contains("pkgrelay-no-such-state") && message.contains("UpdateItem"), "{message}");
}

// ---------------------------------------------------------------------- S3

struct Bucket {
    store: S3Store,
    client: aws_sdk_s3::Client,
    name: String,
}

async fn bucket(tag: &str) -> Bucket {
    let client = s3::client(&sdk_config().await, true);
    let name = unique(tag);
    client.create_bucket().bucket(&name).send().await.unwrap();
    // The bucket as the functions see it: the APT repository's files and the private prefixes.
    let layout = std::sync::Arc::new(pkgrelay_core::blob::BucketLayout::single(std::sync::Arc::new(
        pkgrelay_core::apt::AptLayout,
    )));
    Bucket { store: S3Store::new(client.clone(), &name).with_layout(layout), client, name }
}

impl Bucket {
    async fn head(&self, key: &str) -> aws_sdk_s3::operation::head_object::HeadObjectOutput {
        self.client.head_object().bucket(&self.name).key(key).send().await.unwrap()
    }

    async fn pending_uploads(&self) -> usize {
        let out = self.client.list_multipart_uploads().bucket(&self.name).send().await.unwrap();
        out.uploads().len()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Write `size` pseudo-random bytes (xorshift from `seed`) to `path`, a MiB at
/// a time; returns their SHA256.
fn write_random_file(path: &Path, size: usize, seed: u64) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut x = seed | 1;
    let mut chunk = vec![0u8; MIB];
    for _ in 0..size / MIB {
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    hex::encode(hasher.finalize())
}

fn file_sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test]
async fn s3_write_once_small_objects() {
    let b = bucket("small").await;
    let key = "pool/main/k/kiro/kiro_1.0_amd64.deb";
    b.store.put_bytes(key, b"one".to_vec(), WriteMode::WriteOnce).await.unwrap();
    b.store.put_bytes(key, b"one".to_vec(), WriteMode::WriteOnce).await.unwrap();
    match b.store.put_bytes(key, b"two".to_vec(), WriteMode::WriteOnce).await {
        Err(BlobError::Conflict { key: k, existing, new }) => {
            assert_eq!((k.as_str(), existing, new), (key, sha256_hex(b"one"), sha256_hex(b"two")));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(b.store.get_bytes(key).await.unwrap(), b"one");

    // The same through put_file (single PutObject, streamed from disk).
    let dir = tempfile::tempdir().unwrap();
    let (same, other) = (dir.path().join("same"), dir.path().join("other"));
    std::fs::write(&same, b"one").unwrap();
    std::fs::write(&other, b"three").unwrap();
    b.store.put_file(key, &same, &sha256_hex(b"one"), WriteMode::WriteOnce).await.unwrap();
    let e = b.store.put_file(key, &other, &sha256_hex(b"three"), WriteMode::WriteOnce).await.unwrap_err();
    assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
    assert_eq!(b.store.get_bytes(key).await.unwrap(), b"one");
    assert_eq!(b.head(key).await.metadata().unwrap()["sha256"], sha256_hex(b"one"));

    // Overwrite replaces.
    b.store.put_bytes("index.html", b"a".to_vec(), WriteMode::Overwrite).await.unwrap();
    b.store.put_file("index.html", &other, &sha256_hex(b"three"), WriteMode::Overwrite).await.unwrap();
    assert_eq!(b.store.get_bytes("index.html").await.unwrap(), b"three");
    assert_eq!(b.head("index.html").await.metadata().unwrap()["sha256"], sha256_hex(b"three"));

    // A SHA256 that is not one is refused before anything is sent.
    let e = b.store.put_file("x.deb", &same, "not-a-sha", WriteMode::Overwrite).await.unwrap_err();
    assert!(matches!(e, BlobError::Io { .. }), "{e}");
}

#[tokio::test]
async fn s3_multipart_upload_is_write_once() {
    let b = bucket("multipart").await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.deb"), dir.path().join("second.deb"));
    let sha_first = write_random_file(&first, 40 * MIB, 1);
    let sha_second = write_random_file(&second, 40 * MIB, 2);
    let key = "pool/main/k/kiro/kiro_2.0_amd64.deb";

    b.store.put_file(key, &first, &sha_first, WriteMode::WriteOnce).await.unwrap();
    let head = b.head(key).await;
    assert_eq!(head.content_length(), Some(40 * MIB as i64));
    assert_eq!(head.metadata().unwrap()["sha256"], sha_first);
    assert_eq!(head.content_type(), Some("application/vnd.debian.binary-package"));
    assert_eq!(head.cache_control(), Some("public, max-age=31536000, immutable"));

    b.store.put_file(key, &first, &sha_first, WriteMode::WriteOnce).await.unwrap();
    let e = b.store.put_file(key, &second, &sha_second, WriteMode::WriteOnce).await.unwrap_err();
    assert!(matches!(&e, BlobError::Conflict { existing, .. } if *existing == sha_first), "{e}");

    let back = dir.path().join("back.deb");
    b.store.get_to_file(key, &back).await.unwrap();
    assert_eq!(file_sha256(&back), sha_first);
    assert_eq!(b.pending_uploads().await, 0);

    // Overwrite goes through multipart too.
    b.store.put_file(key, &second, &sha_second, WriteMode::Overwrite).await.unwrap();
    assert_eq!(b.head(key).await.metadata().unwrap()["sha256"], sha_second);
}

#[tokio::test]
async fn s3_multipart_write_once_loses_a_race_cleanly() {
    // The key is free when the big upload checks, and taken by the time it
    // completes: CompleteMultipartUpload's If-None-Match refuses, the upload is
    // aborted and the existing object decides the outcome. (Two racing
    // multipart uploads would test moto rather than us: moto does not complete
    // uploads atomically.)
    let b = bucket("race").await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.deb");
    let sha_big = write_random_file(&big, 40 * MIB, 3);
    let key = "pool/main/k/kiro/kiro_3.0_amd64.deb";
    let upload = b.store.put_file(key, &big, &sha_big, WriteMode::WriteOnce);
    let interloper = async {
        // Once the upload exists, the existence check is behind it.
        while b.pending_uploads().await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        b.store.put_bytes(key, b"first".to_vec(), WriteMode::WriteOnce).await.unwrap();
    };
    let (result, ()) = tokio::join!(upload, interloper);
    match result {
        Err(BlobError::Conflict { existing, new, .. }) => {
            assert_eq!((existing, new), (sha256_hex(b"first"), sha_big))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(b.store.get_bytes(key).await.unwrap(), b"first");
    assert_eq!(b.pending_uploads().await, 0, "the refused upload was aborted");
}

#[tokio::test]
async fn s3_failed_multipart_upload_is_aborted() {
    let b = bucket("abort").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.deb");
    write_random_file(&file, 40 * MIB, 5);
    // A wrong SHA256 is caught after the last part, before completing.
    let wrong = sha256_hex(b"something else");
    for mode in [WriteMode::WriteOnce, WriteMode::Overwrite] {
        let e = b.store.put_file("pool/big.deb", &file, &wrong, mode).await.unwrap_err();
        assert!(matches!(&e, BlobError::Io { message, .. } if message.contains(&wrong)), "{e}");
        assert!(!b.store.exists("pool/big.deb").await.unwrap());
        assert_eq!(b.pending_uploads().await, 0, "no multipart upload left behind");
    }
    // A file that vanishes is an error too, before any upload starts.
    let e = b.store.put_file("pool/gone.deb", &dir.path().join("gone"), &wrong, WriteMode::Overwrite).await;
    assert!(matches!(e, Err(BlobError::Io { .. })), "{e:?}");
}

#[tokio::test]
async fn s3_sets_content_type_and_cache_control() {
    let b = bucket("headers").await;
    const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    const SHORT: &str = "public, max-age=60";
    let cases = [
        ("pool/main/k/kiro/kiro_1.0_amd64.deb", "application/vnd.debian.binary-package", IMMUTABLE),
        ("pool/main/k/kiro/kiro_1.0_amd64.pem", "application/octet-stream", IMMUTABLE),
        ("dists/stable/main/binary-amd64/by-hash/SHA256/0123abcd", "application/octet-stream", IMMUTABLE),
        ("dists/stable/main/binary-amd64/Packages", "text/plain; charset=utf-8", SHORT),
        ("dists/stable/main/binary-amd64/Packages.gz", "application/gzip", SHORT),
        ("dists/stable/main/binary-amd64/Packages.xz", "application/x-xz", SHORT),
        ("dists/stable/Release", "text/plain; charset=utf-8", SHORT),
        ("dists/stable/Release.gpg", "application/pgp-signature", SHORT),
        ("dists/stable/InRelease", "text/plain; charset=utf-8", SHORT),
        ("kiro-archive-keyring.gpg", "application/pgp-keys", SHORT),
        ("index.html", "text/html; charset=utf-8", SHORT),
        ("kiro-repo.deb", "application/vnd.debian.binary-package", SHORT),
        ("staging/kiro-repo_1.2_all.deb", "application/octet-stream", "no-store"),
        ("generations/stable/7/manifest.json", "application/json", "no-store"),
    ];
    for (key, _, _) in cases {
        b.store.put_bytes(key, key.as_bytes().to_vec(), WriteMode::Overwrite).await.unwrap();
    }
    for (key, content_type, cache_control) in cases {
        let head = b.head(key).await;
        assert_eq!(head.content_type(), Some(content_type), "{key}");
        assert_eq!(head.cache_control(), Some(cache_control), "{key}");
        assert_eq!(head.metadata().unwrap()["sha256"], sha256_hex(key.as_bytes()), "{key}");
    }
}

#[tokio::test]
async fn s3_copy_is_server_side_and_takes_destination_headers() {
    let b = bucket("copy").await;
    let pool = "pool/main/k/kiro-repo/kiro-repo_1.0+b1~rc1_all.deb";
    b.store.put_bytes(pool, b"repo deb".to_vec(), WriteMode::WriteOnce).await.unwrap();

    b.store.copy(pool, "kiro-repo.deb", WriteMode::Overwrite).await.unwrap();
    assert_eq!(b.store.get_bytes("kiro-repo.deb").await.unwrap(), b"repo deb");
    let head = b.head("kiro-repo.deb").await;
    assert_eq!(head.cache_control(), Some("public, max-age=60"));
    assert_eq!(head.content_type(), Some("application/vnd.debian.binary-package"));
    assert_eq!(head.metadata().unwrap()["sha256"], sha256_hex(b"repo deb"));

    // From a by-hash file to the canonical name: the destination's type wins.
    let by_hash = format!("dists/stable/main/binary-amd64/by-hash/SHA256/{}", sha256_hex(b"Package: x\n"));
    b.store.put_bytes(&by_hash, b"Package: x\n".to_vec(), WriteMode::WriteOnce).await.unwrap();
    b.store.copy(&by_hash, "dists/stable/main/binary-amd64/Packages", WriteMode::Overwrite).await.unwrap();
    let head = b.head("dists/stable/main/binary-amd64/Packages").await;
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    assert_eq!(head.cache_control(), Some("public, max-age=60"));

    // Write-once copies: same bytes fine, other bytes refused, nothing replaced.
    b.store.copy(pool, "pool/copy/same.deb", WriteMode::WriteOnce).await.unwrap();
    b.store.copy(pool, "pool/copy/same.deb", WriteMode::WriteOnce).await.unwrap();
    b.store.put_bytes("pool/copy/other.deb", b"other".to_vec(), WriteMode::WriteOnce).await.unwrap();
    let e = b.store.copy(pool, "pool/copy/other.deb", WriteMode::WriteOnce).await.unwrap_err();
    assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
    assert_eq!(b.store.get_bytes("pool/copy/other.deb").await.unwrap(), b"other");

    match b.store.copy("pool/nope.deb", "x.deb", WriteMode::Overwrite).await {
        Err(BlobError::NotFound { key }) => assert_eq!(key, "pool/nope.deb"),
        other => panic!("expected NotFound for the source, got {other:?}"),
    }
    assert!(!b.store.exists("x.deb").await.unwrap());
}

#[tokio::test]
async fn s3_list_paginates_and_sorts() {
    let b = bucket("list").await.store.with_list_page_size(7);
    let mut expected = Vec::new();
    for i in (0..25).rev() {
        let key = format!("staging/kiro-repo_{i:02}_all.deb");
        b.put_bytes(&key, vec![b'x'; i], WriteMode::Overwrite).await.unwrap();
        expected.push((key, i as u64));
    }
    b.put_bytes("stagingx/c", b"c".to_vec(), WriteMode::Overwrite).await.unwrap();
    b.put_bytes("index.html", b"i".to_vec(), WriteMode::Overwrite).await.unwrap();
    expected.sort();
    let listed: Vec<_> = b.list("staging/").await.unwrap().into_iter().map(|o| (o.key, o.size)).collect();
    assert_eq!(listed, expected);
    assert_eq!(b.list("").await.unwrap().len(), 27);
    assert!(b.list("nothing/").await.unwrap().is_empty());
}

#[tokio::test]
async fn s3_get_exists_delete_and_not_found() {
    let b = bucket("get").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    assert!(matches!(b.store.get_bytes("pool/nope").await, Err(BlobError::NotFound { key }) if key == "pool/nope"));
    assert!(matches!(b.store.get_to_file("pool/nope", &out).await, Err(BlobError::NotFound { .. })));
    assert!(!out.exists());
    assert!(!b.store.exists("pool/nope").await.unwrap());
    b.store.delete("pool/nope").await.unwrap();

    // A few MiB so that the body arrives in many chunks.
    let src = dir.path().join("src");
    let sha = write_random_file(&src, 5 * MIB, 6);
    b.store.put_file("pool/a/b.deb", &src, &sha, WriteMode::WriteOnce).await.unwrap();
    assert!(b.store.exists("pool/a/b.deb").await.unwrap());
    b.store.get_to_file("pool/a/b.deb", &out).await.unwrap();
    assert_eq!(file_sha256(&out), sha);
    b.store.delete("pool/a/b.deb").await.unwrap();
    assert!(!b.store.exists("pool/a/b.deb").await.unwrap());
}

#[tokio::test]
async fn s3_rejects_bad_keys() {
    let b = bucket("badkeys").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"f").unwrap();
    let sha = sha256_hex(b"f");
    b.store.put_bytes("pool/ok", b"f".to_vec(), WriteMode::Overwrite).await.unwrap();
    let bad_key = |r: Result<_, BlobError>| matches!(r, Err(BlobError::BadKey { .. }));
    for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a\\b", "pool/", "pool/../x"] {
        assert!(bad_key(b.store.put_bytes(bad, vec![], WriteMode::Overwrite).await), "{bad}");
        assert!(bad_key(b.store.put_file(bad, &file, &sha, WriteMode::WriteOnce).await), "{bad}");
        assert!(bad_key(b.store.get_bytes(bad).await.map(drop)), "{bad}");
        assert!(bad_key(b.store.get_to_file(bad, &dir.path().join("o")).await), "{bad}");
        assert!(bad_key(b.store.copy("pool/ok", bad, WriteMode::Overwrite).await), "{bad}");
        assert!(bad_key(b.store.exists(bad).await.map(drop)), "{bad}");
    }
    // What is only read and removed may be any key S3 holds (an upload named
    // `staging//x.deb` must still leave the inbox); the empty key is none.
    assert!(bad_key(b.store.delete("").await));
    assert!(bad_key(b.store.copy("", "pool/x", WriteMode::Overwrite).await));
    b.store.delete("a//b").await.unwrap();
    assert!(matches!(b.store.copy("a//b", "pool/x", WriteMode::Overwrite).await, Err(BlobError::NotFound { .. })));
    let keys: Vec<_> = b.store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["pool/ok"]);
}

#[tokio::test]
async fn s3_errors_carry_the_service_code() {
    let client = s3::client(&sdk_config().await, true);
    let store = S3Store::new(client, unique("missing"));
    match store.put_bytes("index.html", b"x".to_vec(), WriteMode::Overwrite).await {
        Err(BlobError::Io { key, message }) => {
            assert_eq!(key, "index.html");
            assert!(message.contains("NoSuchBucket") && message.contains("PutObject"), "{message}");
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    // A missing bucket is not a missing key.
    assert!(matches!(store.get_bytes("index.html").await, Err(BlobError::Io { .. })));
}

/// `pkgrelay brew import-hash` on S3: an object an earlier mirror stored
/// (no `sha256` metadata) is read once, and copied server-side to its blob
/// key only when its bytes are the expected ones, with the metadata that
/// write-once keys are compared by; the old object stays.
#[tokio::test]
async fn s3_adopt_copies_checked_bytes_server_side() {
    let b = bucket("adopt").await;
    let old = "brew/bottles/openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz";
    b.client
        .put_object()
        .bucket(&b.name)
        .key(old)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"bottle"))
        .send()
        .await
        .unwrap();
    let sha = sha256_hex(b"bottle");
    let blob = format!("brew/blobs/sha256/{sha}");

    let wrong = b.store.adopt(old, &blob, &"0".repeat(64), None).await.unwrap();
    assert!(!wrong.placed && wrong.checksums.sha256 == sha);
    assert!(!b.store.adopt(old, &blob, &sha, Some(7)).await.unwrap().placed, "the size is checked too");
    assert!(!b.store.exists(&blob).await.unwrap());

    let ok = b.store.adopt(old, &blob, &sha, Some(6)).await.unwrap();
    assert!(ok.placed && ok.checksums.size == 6);
    assert_eq!(b.store.get_bytes(&blob).await.unwrap(), b"bottle");
    assert_eq!(b.head(&blob).await.metadata().unwrap()["sha256"], sha);
    assert_eq!(b.store.get_bytes(old).await.unwrap(), b"bottle", "the old name stays");
    // Again: the blob is there with these bytes; a write-once put of them agrees.
    assert!(b.store.adopt(old, &blob, &sha, None).await.unwrap().placed);
    b.store.put_bytes(&blob, b"bottle".to_vec(), WriteMode::WriteOnce).await.unwrap();
    let e = b.store.adopt("brew/bottles/missing.tar.gz", &blob, &sha, None).await.unwrap_err();
    assert!(matches!(e, BlobError::NotFound { .. }), "{e}");
}
