//! `pkgrelay migrate`: old-schema items of the earlier single-package system
//! (keyed by `version`, odd ones included: no notes, no certificate/signature,
//! `0.10.1` next to `0.9.9`) migrate into the current store, on SQLite and on
//! the emulator's DynamoDB. A dry run changes nothing; a failure injected
//! mid-way stops with the backup intact and the old items untouched; a re-run
//! completes and deletes the old items; a force rebuild then publishes every
//! old version.

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::migrate::{RawItem, read_backup};
use pkgrelay_core::store::{PackageStore, SqliteStore};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// In Debian order; as strings `0.10.1` would sort first.
const DEBIAN_ORDER: [&str; 4] = ["0.7.44", "0.8.0", "0.9.9", "0.10.1"];
/// The release whose .deb the fixture breaks mid-way (the third of four).
const BROKEN: &str = "0.9.9";

fn deb_path(version: &str) -> String {
    format!("/signed/{version}/deb/kiro-ide-{version}-stable-linux-x64.deb")
}

/// Serve the old releases and return the items the old system stored for
/// them, every attribute a string, absent ones left out:
/// 0.7.44 has no certificate/signature, 0.8.0 has a checksum, 0.10.1 has no notes.
fn old_releases(up: &Upstream) -> Vec<RawItem> {
    ["0.9.9", "0.10.1", "0.7.44", "0.8.0"]
        .iter()
        .map(|&v| {
            let bytes = deb("kiro", v, "amd64", Some("libc6 (>= 2.28)"));
            up.set(&deb_path(v), Reply::Body(bytes.clone()));
            let mut item = json!({
                "version": v,
                "deb_url": up.url(&deb_path(v)),
                "pub_date": "2025-06-01T10:00:00Z",
                "notes": format!("Kiro {v}"),
                "processed_timestamp": "2025-06-01T11:00:00Z",
            });
            if v != "0.7.44" {
                for (attr, file, body) in [
                    ("certificate_url", "certificate.pem", format!("CERT {v}\n")),
                    ("signature_url", "signature.bin", format!("SIG {v}")),
                ] {
                    let path = format!("/signed/{v}/{file}");
                    up.set(&path, Reply::Body(body.into_bytes()));
                    item[attr] = up.url(&path).into();
                }
            }
            if v == "0.8.0" {
                item["checksum"] = sha256(&bytes).into();
            }
            if v == "0.10.1" {
                item.as_object_mut().unwrap().remove("notes");
            }
            item.as_object().unwrap().clone()
        })
        .collect()
}

/// Items as comparable maps (null and absent are the same), ordered by version.
fn normalized(items: &[RawItem]) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<BTreeMap<String, String>> = items
        .iter()
        .map(|i| i.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
        .collect();
    out.sort_by(|a, b| a["version"].cmp(&b["version"]));
    out
}

const COLUMNS: [&str; 8] =
    ["version", "deb_url", "certificate_url", "signature_url", "pub_date", "notes", "processed_timestamp", "checksum"];

/// The earlier system's local table, in the workspace's state.db.
fn insert_sqlite(ws: &Workspace, items: &[RawItem]) {
    std::fs::create_dir_all(ws.path(".pkgrelay")).unwrap();
    let db = rusqlite::Connection::open(ws.path(".pkgrelay/state.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE releases (version TEXT PRIMARY KEY, deb_url TEXT, certificate_url TEXT, signature_url TEXT,
         pub_date TEXT, notes TEXT, processed_timestamp TEXT, checksum TEXT)",
    )
    .unwrap();
    for item in items {
        let values: Vec<Option<&str>> = COLUMNS.iter().map(|c| item.get(*c).and_then(Value::as_str)).collect();
        db.execute("INSERT INTO releases VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", rusqlite::params_from_iter(values))
            .unwrap();
    }
}

/// The rows of the local old table, read directly.
fn sqlite_rows(ws: &Workspace) -> Vec<RawItem> {
    let db = rusqlite::Connection::open(ws.path(".pkgrelay/state.db")).unwrap();
    let mut stmt = db.prepare(&format!("SELECT {} FROM releases", COLUMNS.join(", "))).unwrap();
    stmt.query_map([], |row| {
        let mut item = RawItem::new();
        for (i, c) in COLUMNS.iter().enumerate() {
            if let Some(v) = row.get::<_, Option<String>>(i)? {
                item.insert((*c).to_owned(), v.into());
            }
        }
        Ok(item)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Backup files in `dir`.
fn backups(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("migration-backup-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The one backup file written since `before`; it must hold exactly `expected`.
fn check_new_backup(dir: &Path, before: &BTreeSet<PathBuf>, expected: &[RawItem]) {
    let new: Vec<_> = backups(dir).difference(before).cloned().collect();
    assert_eq!(new.len(), 1, "one new backup: {new:?}");
    let name = new[0].file_name().unwrap().to_string_lossy().into_owned();
    // migration-backup-<yyyymmdd>T<hhmmss>Z[-n].jsonl
    let stamp = name.strip_prefix("migration-backup-").and_then(|n| n.strip_suffix(".jsonl")).unwrap();
    assert!(stamp.len() >= 16 && &stamp[8..9] == "T" && &stamp[15..16] == "Z", "{name}");
    assert_eq!(normalized(&read_backup(&new[0]).unwrap()), normalized(expected));
}

/// Every file under `dir`, by relative path (empty when it does not exist).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for p in entries.map(|e| e.unwrap().path()) {
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The `kiro` versions a Packages file lists, in its order.
fn kiro_versions(packages: &str) -> Vec<String> {
    packages
        .split("\n\n")
        .filter(|s| s.lines().any(|l| l == "Package: kiro"))
        .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("Version: ")).map(str::to_owned))
        .collect()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn sqlite_ids(ws: &Workspace) -> BTreeSet<String> {
    let store = SqliteStore::open(&ws.path(".pkgrelay/state.db")).unwrap();
    store.all().await.unwrap().into_iter().map(|e| e.package_id).collect()
}

fn ids(versions: &[&str]) -> BTreeSet<String> {
    versions.iter().map(|v| format!("kiro#{v}#amd64")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_dry_run_failure_rerun_and_rebuild() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let items = old_releases(&up);
    insert_sqlite(&ws, &items);
    let state = ws.path(".pkgrelay");

    // (a) A dry run shows old and new side by side for the first items, in
    // Debian order, and downloads, writes and deletes nothing.
    let before = backups(&state);
    let out = ws.pkgrelay(&["migrate", "--dry-run", "--show", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for v in ["0.7.44", "0.8.0", "0.9.9"] {
        assert!(text.contains(&format!("== {v} -> kiro#{v}#amd64 (would migrate)")), "{text}");
    }
    assert!(!text.contains("== 0.10.1"), "only the first three are shown:\n{text}");
    let first = text.find("== 0.7.44").unwrap();
    assert!(first < text.find("== 0.8.0").unwrap() && text.find("== 0.8.0").unwrap() < text.find("== 0.9.9").unwrap());
    let deb_url = format!("deb_url: {}", up.url(&deb_path("0.7.44")));
    let row = text.lines().find(|l| l.contains(&deb_url)).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(&format!("| url: {}", up.url(&deb_path("0.7.44")))), "old and new on one line: {row}");
    assert!(text.contains("| section: devel") && text.contains("| package_id: kiro#0.9.9#amd64"), "{text}");
    assert!(text.contains("would migrate: 4") && text.contains("dry run: nothing was"), "{text}");
    assert_eq!(sqlite_ids(&ws).await, BTreeSet::new(), "store unchanged");
    assert_eq!(normalized(&sqlite_rows(&ws)), normalized(&items), "old table unchanged");
    assert!(files(&ws.path("public/pool")).is_empty(), "pool unchanged");
    assert!(DEBIAN_ORDER.iter().all(|v| up.hits(&deb_path(v)) == 0), "nothing downloaded");
    check_new_backup(&state, &before, &items);

    // (b) The third .deb fails (HTTP 500): the run stops there, keeps the
    // backup, and leaves the old table alone; 0.10.1 comes after 0.9.9 and is
    // never tried.
    up.set(&deb_path(BROKEN), Reply::Status(500));
    let before = backups(&state);
    let out = ws.pkgrelay(&["migrate", "--batch-size", "2"]);
    assert!(!out.status.success(), "an injected failure exits non-zero");
    let err = stderr(&out);
    assert!(
        err.contains("kiro#0.9.9#amd64") && err.contains("500") && err.contains("no old item was deleted"),
        "{err}"
    );
    check_new_backup(&state, &before, &items);
    assert_eq!(normalized(&sqlite_rows(&ws)), normalized(&items), "old items untouched");
    assert_eq!(sqlite_ids(&ws).await, ids(&["0.7.44", "0.8.0"]));
    assert_eq!(up.hits(&deb_path("0.10.1")), 0);

    // (c) Fixed: a re-run skips what is done, migrates the rest and deletes the
    // old items.
    up.set(&deb_path(BROKEN), Reply::Body(deb("kiro", BROKEN, "amd64", Some("libc6 (>= 2.28)"))));
    let out = ws.pkgrelay(&["migrate", "--batch-size", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in ["read: 4", "skipped (already migrated): 2", "migrated: 2", "deleted: 4"] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    assert_eq!(up.hits(&deb_path("0.7.44")), 1, "migrated items are not downloaded again");
    assert!(sqlite_rows(&ws).is_empty(), "old items deleted");
    let store = SqliteStore::open(&ws.path(".pkgrelay/state.db")).unwrap();
    let entries = store.all().await.unwrap();
    assert_eq!(entries.iter().map(|e| e.package_id.clone()).collect::<BTreeSet<_>>(), ids(&DEBIAN_ORDER));
    for e in &entries {
        let old = items.iter().find(|i| i["version"] == e.version.as_str()).unwrap();
        assert_eq!(e.source_url, old["deb_url"].as_str().unwrap());
        assert_eq!(e.notes.as_deref(), old.get("notes").and_then(Value::as_str));
        assert_eq!(e.pub_date.as_deref(), Some("2025-06-01T10:00:00Z"));
        assert_eq!(e.config.section.as_deref(), Some("devel"), "Debian fields from kiro.yaml");
        assert_eq!(e.companions.len(), if e.version == "0.7.44" { 0 } else { 2 });
        assert_eq!(e.apt().unwrap().control.get("Version"), Some(e.version.as_str()));
    }
    let again = ws.pkgrelay(&["migrate"]);
    assert!(again.status.success() && stdout(&again).contains("read: 0"), "nothing left to migrate");

    // (d) A force rebuild publishes every old version, in Debian order.
    ws.sync(&["--force-rebuild"]);
    let packages = String::from_utf8(ws.read("public/dists/stable/main/binary-amd64/Packages")).unwrap();
    assert_eq!(kiro_versions(&packages), DEBIAN_ORDER);
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.9.9_amd64.pem"), b"CERT 0.9.9\n");
    assert!(!ws.path("public/pool/main/k/kiro/kiro_0.7.44_amd64.pem").exists());
    assert!(ws.verify().status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_items_stop_the_run_before_any_write() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let mut items = old_releases(&up);
    items[1].remove("deb_url"); // 0.10.1: no .deb URL
    items[2]["deb_url"] = "http://example.com/kiro_0.7.44.deb".into(); // plain http, not loopback
    items[3]["version"] = "not a version!".into();
    insert_sqlite(&ws, &items);

    let out = ws.pkgrelay(&["migrate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("3 of 4 old items cannot be migrated; nothing was written"), "{err}");
    for named in ["\"0.10.1\"", "\"0.7.44\"", "\"not a version!\"", "deb_url"] {
        assert!(err.contains(named), "{named}:\n{err}");
    }
    assert_eq!(sqlite_ids(&ws).await, BTreeSet::new());
    assert_eq!(normalized(&sqlite_rows(&ws)), normalized(&items));
    assert_eq!(up.hits(&deb_path("0.9.9")), 0, "not even the valid item is downloaded");
}

/// Create the earlier system's table (partition key `version`) and put `items`.
async fn create_legacy_table(db: &aws_sdk_dynamodb::Client, table: &str, items: &[RawItem]) {
    use aws_sdk_dynamodb::types::*;
    db.create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("version")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("version").key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .unwrap();
    for item in items {
        let attrs = item.iter().map(|(k, v)| (k.clone(), AttributeValue::S(v.as_str().unwrap().to_owned())));
        db.put_item().table_name(table).set_item(Some(attrs.collect())).send().await.unwrap();
    }
}

async fn scan_legacy(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<RawItem> {
    use pkgrelay_core::migrate::LegacyStore;
    pkgrelay_aws::legacy::DynamoLegacy::new(db.clone(), table).with_page_size(3).items().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_dry_run_failure_rerun_and_rebuild() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    let db = aws.dynamodb().await;
    let items = old_releases(&up);
    let table = format!("kiro-releases-{}", aws.bucket);
    create_legacy_table(&db, &table, &items).await;
    assert_eq!(normalized(&scan_legacy(&db, &table).await), normalized(&items), "paginated scan reads them all");
    let outputs = json!({"pkgrelay-test": {"BucketName": aws.bucket, "PackagesTableName": aws.packages_table,
        "StateTableName": aws.state_table, "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:test",
        "StagingPrefix": "staging/"}});
    std::fs::write(ws.path("cdk-outputs.json"), outputs.to_string()).unwrap();
    let migrate = |extra: &[&str]| -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgrelay"));
        cmd.args(["migrate", "--outputs-file", "cdk-outputs.json", "--env", "test", "--legacy-table", &table])
            .args(extra)
            .current_dir(ws.dir.path());
        aws.operator_env(&mut cmd);
        let out = cmd.output().unwrap();
        eprintln!("$ pkgrelay migrate {}\n{}{}", extra.join(" "), stdout(&out), stderr(&out));
        out
    };
    let store = pkgrelay_aws::dynamo::DynamoStore::new(db.clone(), &aws.packages_table, &aws.state_table);
    let stored = || async { store.all().await.unwrap().into_iter().map(|e| e.package_id).collect::<BTreeSet<_>>() };
    let state = ws.path(".pkgrelay");

    // (a) Dry run: nothing changes.
    let out = migrate(&["--dry-run"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("== 0.10.1 -> kiro#0.10.1#amd64 (would migrate)"), "{}", stdout(&out));
    assert_eq!(stored().await, BTreeSet::new());
    assert_eq!(normalized(&scan_legacy(&db, &table).await), normalized(&items));
    assert_eq!(aws.get("pool/main/k/kiro/kiro_0.7.44_amd64.deb").await, None);

    // (b) Failure mid-way.
    up.set(&deb_path(BROKEN), Reply::Status(500));
    let before = backups(&state);
    let out = migrate(&["--batch-size", "2"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kiro#0.9.9#amd64") && stderr(&out).contains("no old item was deleted"),
        "{}",
        stderr(&out)
    );
    check_new_backup(&state, &before, &items);
    assert_eq!(normalized(&scan_legacy(&db, &table).await), normalized(&items), "old items untouched");
    assert_eq!(stored().await, ids(&["0.7.44", "0.8.0"]));
    assert!(aws.get("pool/main/k/kiro/kiro_0.8.0_amd64.pem").await.is_some());

    // (c) Fixed: the re-run completes and empties the old table.
    up.set(&deb_path(BROKEN), Reply::Body(deb("kiro", BROKEN, "amd64", Some("libc6 (>= 2.28)"))));
    let out = migrate(&["--batch-size", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for line in ["skipped (already migrated): 2", "migrated: 2", "deleted: 4"] {
        assert!(stdout(&out).contains(line), "{line}:\n{}", stdout(&out));
    }
    assert!(scan_legacy(&db, &table).await.is_empty(), "old items deleted");
    assert_eq!(stored().await, ids(&DEBIAN_ORDER));

    // (d) The state machine's force rebuild publishes every old version.
    let r = aws.execute(json!({"force_rebuild": true})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let packages = String::from_utf8(aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap()).unwrap();
    assert_eq!(kiro_versions(&packages), DEBIAN_ORDER);
    let public = tempfile::tempdir().unwrap();
    aws.download_public(public.path()).await;
    assert!(ws.pkgrelay(&["verify", "--out", public.path().to_str().unwrap()]).status.success());
}

/// Deletes go out in BatchWriteItem requests of at most 25.
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_deletes_more_than_one_batch() {
    use pkgrelay_core::migrate::LegacyStore;
    let db = aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint()).await);
    let table = format!("kiro-releases-many-{}", std::process::id());
    let items: Vec<RawItem> = (0..60)
        .map(|n| {
            json!({"version": format!("0.{n}"), "deb_url": format!("https://example.com/{n}.deb")})
                .as_object()
                .unwrap()
                .clone()
        })
        .collect();
    create_legacy_table(&db, &table, &items).await;
    let legacy = pkgrelay_aws::legacy::DynamoLegacy::new(db.clone(), &table).with_page_size(7);
    assert_eq!(normalized(&legacy.items().await.unwrap()), normalized(&items));
    let versions: Vec<String> = items.iter().map(|i| i["version"].as_str().unwrap().to_owned()).collect();
    legacy.delete(&versions[..55]).await.unwrap();
    let left = legacy.items().await.unwrap();
    assert_eq!(normalized(&left), normalized(&items[55..]));
    let e = pkgrelay_aws::legacy::DynamoLegacy::new(db, "no-such-table").items().await.unwrap_err().to_string();
    assert!(e.contains("no-such-table") && e.contains("Scan") && e.contains("ResourceNotFoundException"), "{e}");
}
