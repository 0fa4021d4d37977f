//! `pkgrelay verify --url`: the published repository checked over HTTP as apt
//! reads it, through `pkgrelay serve` and through the CloudFront stand-in in
//! front of the bucket (origin access control: a missing key answers 403).
//! Each fault is put into the repository by hand and must be reported on its
//! own, by path: a tampered Packages, a missing by-hash file, an expired
//! Release (re-signed with the archive key, so that only the date is wrong),
//! a Release with less than half of its validity left (a warning), a wrong
//! key, a pool file of the right size but other bytes (`--deep`).

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::sign::SigningKey;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Output;

/// Where the repository's files are changed: the served directory, or the bucket.
enum Target<'a> {
    Dir(PathBuf),
    Bucket(&'a Aws),
}

impl Target<'_> {
    async fn get(&self, path: &str) -> Vec<u8> {
        match self {
            Target::Dir(root) => std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}")),
            Target::Bucket(aws) => aws.get(path).await.unwrap_or_else(|| panic!("{path} is not in the bucket")),
        }
    }
    async fn put(&self, path: &str, bytes: Vec<u8>) {
        match self {
            // A new file, never a write through a hard link (by-hash and pool files are linked).
            Target::Dir(root) => {
                let file = root.join(path);
                let _ = std::fs::remove_file(&file);
                std::fs::write(&file, bytes).unwrap();
            }
            Target::Bucket(aws) => aws.put(path, bytes).await,
        }
    }
    async fn delete(&self, path: &str) {
        match self {
            Target::Dir(root) => std::fs::remove_file(root.join(path)).unwrap(),
            Target::Bucket(aws) => {
                aws.s3.delete_object().bucket(&aws.bucket).key(path).send().await.unwrap();
            }
        }
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `error:` lines of a verify run.
fn errors(out: &Output) -> Vec<String> {
    text(out).lines().filter_map(|l| l.strip_prefix("error: ")).map(str::to_owned).collect()
}

/// The SHA256 of `path` as the signed Release lists it.
fn listed_sha256(release: &str, path: &str) -> String {
    let field = release.split("SHA256:").nth(1).expect("Release has a SHA256 field");
    field
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut w| Some((w.next()?.to_owned(), w.next()?.to_owned(), w.next()?.to_owned())))
        .find(|(_, _, p)| p == path)
        .unwrap_or_else(|| panic!("{path} not listed in Release:\n{release}"))
        .0
}

/// Release with other Date and Valid-Until, signed again with the archive key
/// (InRelease, Release, Release.gpg): only the dates are wrong.
async fn resign_with_dates(
    target: &Target<'_>,
    key: &SigningKey,
    date: time::OffsetDateTime,
    until: time::OffsetDateTime,
) {
    let release = String::from_utf8(target.get("dists/stable/Release").await).unwrap();
    let release: String = release
        .lines()
        .map(|l| {
            if l.starts_with("Date: ") {
                format!("Date: {}\n", pkgrelay_core::apt::release::release_date(date))
            } else if l.starts_with("Valid-Until: ") {
                format!("Valid-Until: {}\n", pkgrelay_core::apt::release::release_date(until))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    target.put("dists/stable/InRelease", key.clearsign(release.as_bytes()).unwrap()).await;
    target.put("dists/stable/Release.gpg", key.detached_sign(release.as_bytes()).unwrap()).await;
    target.put("dists/stable/Release", release.into_bytes()).await;
}

/// Every fault, one at a time, each put back before the next.
async fn faults_are_named(ws: &Workspace, url: &str, target: &Target<'_>, key: &SigningKey, missing_status: u16) {
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--url", url];
        args.extend_from_slice(extra);
        ws.pkgrelay(&args)
    };
    let release = String::from_utf8(target.get("dists/stable/Release").await).unwrap();

    // Intact: OK, signed by the archive key, one verdict line.
    let out = verify(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let verdict = text(&out).lines().last().unwrap().to_owned();
    let base = if url.ends_with('/') { url.to_owned() } else { format!("{url}/") };
    assert!(verdict.starts_with(&format!("OK {base}: signed by {}, valid until ", key.fingerprint())), "{verdict}");
    assert!(verdict.ends_with("pool files by size"), "{verdict}");
    let out = verify(&["--deep", "--json"]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((doc["ok"].clone(), doc["pool_check"].clone()), (json!(true), json!("sha256")), "{doc:#}");
    assert_eq!(doc["errors"], json!([]));
    assert!(doc["index_files"].as_u64().unwrap() >= 3 && doc["pool_files"].as_u64().unwrap() >= 2, "{doc:#}");

    // 1. A tampered Packages (at its canonical path).
    let packages = "dists/stable/main/binary-amd64/Packages";
    let original = target.get(packages).await;
    let mut tampered = original.clone();
    let at = tampered.windows(8).position(|w| w == b"Version:").unwrap();
    tampered[at + 9] ^= 1;
    target.put(packages, tampered).await;
    let out = verify(&[]);
    assert!(!out.status.success());
    let found = errors(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!("{packages}: does not match Release (size {} sha256 ", original.len())),
        "{found:?}"
    );
    assert!(
        text(&out).lines().last().unwrap().starts_with(&format!("FAILED {base}: 1 error, 0 warnings")),
        "{}",
        text(&out)
    );
    target.put(packages, original).await;

    // 2. A missing by-hash file (Packages.xz's).
    let sha = listed_sha256(&release, "main/binary-amd64/Packages.xz");
    let by_hash = format!("dists/stable/main/binary-amd64/by-hash/SHA256/{sha}");
    let original = target.get(&by_hash).await;
    target.delete(&by_hash).await;
    let out = verify(&[]);
    assert!(!out.status.success());
    assert_eq!(
        errors(&out),
        [format!(
            "{by_hash}: missing (HTTP {missing_status} for {base}{by_hash}): clients with Acquire-By-Hash cannot fetch dists/stable/main/binary-amd64/Packages.xz"
        )]
    );
    target.put(&by_hash, original).await;

    // 3. An expired Release, and one with less than half of its validity left.
    let originals: Vec<(&str, Vec<u8>)> =
        read_all(target, &["dists/stable/InRelease", "dists/stable/Release", "dists/stable/Release.gpg"]).await;
    let now = time::OffsetDateTime::now_utc();
    resign_with_dates(
        target,
        key,
        now - time::Duration::days(8),
        now - time::Duration::days(1) - time::Duration::minutes(5),
    )
    .await;
    let out = verify(&[]);
    assert!(!out.status.success());
    let found = errors(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("dists/stable/InRelease: expired: Valid-Until "), "{found:?}");
    assert!(found[0].contains(" is 1d 0h ago; apt refuses the whole repository"), "{found:?}");
    resign_with_dates(target, key, now - time::Duration::days(6), now + time::Duration::days(1)).await;
    let out = verify(&[]);
    assert!(out.status.success(), "a warning is no error: {}", text(&out));
    let printed = text(&out);
    let warnings: Vec<&str> = printed.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{printed}");
    assert!(
        warnings[0].starts_with("warning: dists/stable/InRelease: less than half of its validity left: 23h "),
        "{warnings:?}"
    );
    assert!(text(&out).lines().last().unwrap().ends_with(", 1 warning"), "{}", text(&out));
    for (path, bytes) in originals {
        target.put(path, bytes).await;
    }

    // 4. A wrong key: InRelease is signed by the archive key, not the given one.
    let other = SigningKey::generate("Someone else <else@example.com>").unwrap();
    let keyring = ws.path("other-keyring.gpg");
    std::fs::write(&keyring, other.public_keyring().unwrap()).unwrap();
    let out = verify(&["--keyring", keyring.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(
        errors(&out),
        [
            format!(
                "kiro-archive-keyring.gpg: the published keyring holds {}, not the given keyring's {}: clients that install it trust another key",
                key.fingerprint(),
                other.fingerprint()
            ),
            format!(
                "dists/stable/InRelease: signature does not verify: signed by key {}, which the keyring does not hold (it holds {})",
                key.fingerprint(),
                other.fingerprint()
            ),
        ]
    );
    // The right key given explicitly: OK.
    let right = ws.path("right-keyring.gpg");
    std::fs::write(&right, key.public_keyring().unwrap()).unwrap();
    assert!(verify(&["--keyring", right.to_str().unwrap()]).status.success());

    // 5. A pool file with other bytes of the same size: only --deep sees it.
    let pool = "pool/main/k/kiro/kiro_0.7.45_amd64.deb";
    let original = target.get(pool).await;
    let mut other_bytes = original.clone();
    let last = other_bytes.len() - 1;
    other_bytes[last] ^= 0xff;
    target.put(pool, other_bytes).await;
    assert!(verify(&[]).status.success(), "sizes alone cannot tell");
    let out = verify(&["--deep"]);
    let found = errors(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(&format!(
            "{pool}: does not match dists/stable/main/binary-amd64/Packages (size {} sha256 ",
            original.len()
        )),
        "{found:?}"
    );
    target.delete(pool).await;
    let found = errors(&verify(&[]));
    assert_eq!(
        found,
        [format!(
            "{pool}: missing (HTTP {missing_status} for {base}{pool}; listed in dists/stable/main/binary-amd64/Packages)"
        )]
    );
    target.put(pool, original).await;
    assert!(verify(&["--deep"]).status.success(), "everything put back");
}

async fn read_all<'a>(target: &Target<'_>, paths: &[&'a str]) -> Vec<(&'a str, Vec<u8>)> {
    let mut out = Vec::new();
    for p in paths {
        out.push((*p, target.get(p).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_url_over_pkgrelay_serve() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.45");
    std::fs::create_dir_all(ws.path(".pkgrelay/staging")).unwrap();
    std::fs::write(ws.path(".pkgrelay/staging/kiro-repo_1.0_all.deb"), deb("kiro-repo", "1.0", "all", None)).unwrap();
    ws.sync(&[]);
    let key = SigningKey::from_bytes(&ws.read(".pkgrelay/signing-key.asc")).unwrap();
    let served = ws.serve();
    faults_are_named(&ws, &served.url, &Target::Dir(ws.path("public")), &key, 404).await;

    // The directory form reads the same checks: intact again, it passes.
    assert!(ws.verify().status.success());
    // Nothing listens there: the verdict names the URL and the error.
    let out = ws.pkgrelay(&["verify", "--url", "http://127.0.0.1:9/"]);
    assert!(!out.status.success());
    assert!(
        text(&out).starts_with(
            "error: kiro-archive-keyring.gpg: cannot be read: http://127.0.0.1:9/kiro-archive-keyring.gpg: "
        ),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_url_through_the_cloudfront_stand_in() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    publish_kiro(&up, "0.7.45");
    aws.put("staging/kiro-repo_1.0_all.deb", deb("kiro-repo", "1.0", "all", None)).await;
    let r = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let key = SigningKey::from_bytes(aws.signing_key_armored.as_bytes()).unwrap();
    // Through CloudFront with origin access control, a missing key is a 403.
    faults_are_named(&ws, &aws.cdn, &Target::Bucket(&aws), &key, 403).await;
}
