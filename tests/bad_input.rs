//! Bad input, one test each: the run reports what is wrong and where, and the
//! published repository is left exactly as it was (and still verifies).

mod common;

use common::*;

/// A workspace with kiro 0.7.44 published, and a snapshot of the repository.
fn baseline() -> (Upstream, Workspace, std::collections::BTreeMap<String, Vec<u8>>) {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.44");
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1"), "{out}");
    let snap = ws.snapshot();
    (up, ws, snap)
}

/// Sync, expect one failure whose text contains `needle`, and an untouched,
/// verifying repository.
fn expect_failure(ws: &Workspace, snap: &std::collections::BTreeMap<String, Vec<u8>>, needle: &str) -> String {
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1"), "{out}");
    assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
    assert!(out.contains("repository unchanged"), "{out}");
    assert!(*snap == ws.snapshot(), "the published repository changed");
    assert!(ws.verify().status.success(), "verify must pass");
    out
}

fn new_release_at(up: &Upstream, deb_path: &str) {
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(up, "0.7.45", deb_path)));
    up.set("/signed/0.7.45/certificate.pem", Reply::Body(b"CERT".to_vec()));
    up.set("/signed/0.7.45/signature.bin", Reply::Body(b"SIG".to_vec()));
}

#[test]
fn malformed_metadata_json() {
    let (up, ws, snap) = baseline();
    up.set("/stable/metadata.json", Reply::Body(b"{\"currentRelease\": \"0.7.45\", \"releases\": [".to_vec()));
    expect_failure(&ws, &snap, "metadata.json is not valid JSON");
}

#[test]
fn metadata_without_a_deb() {
    let (up, ws, snap) = baseline();
    let body = serde_json::json!({"currentRelease": "0.7.45", "releases": [
        {"version": "0.7.45", "updateTo": {"url": up.url("/signed/0.7.45/certificate.pem")}}]});
    up.set("/stable/metadata.json", Reply::Body(body.to_string().into_bytes()));
    expect_failure(&ws, &snap, "version 0.7.45 lists no .deb URL");
}

#[test]
fn deb_not_found() {
    let (up, ws, snap) = baseline();
    new_release_at(&up, "/missing.deb");
    let out = expect_failure(&ws, &snap, "missing.deb: HTTP status 404");
    assert!(out.contains("[InvalidPackage]"), "{out}");
    assert_eq!(up.hits("/missing.deb"), 1, "a 404 is not retried");
}

#[test]
fn deb_server_error_is_retried_then_reported() {
    let (up, ws, snap) = baseline();
    new_release_at(&up, "/broken.deb");
    up.set("/broken.deb", Reply::Status(500));
    let out = expect_failure(&ws, &snap, "broken.deb: HTTP status 500");
    assert!(out.contains("[TransientError]"), "{out}");
    assert_eq!(up.hits("/broken.deb"), 4, "tried four times");
}

#[test]
fn deb_body_cut_short() {
    let (up, ws, snap) = baseline();
    new_release_at(&up, "/short.deb");
    up.set("/short.deb", Reply::CutShort(deb("kiro", "0.7.45", "amd64", None)));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("short.deb"), "{out}");
    assert!(snap == ws.snapshot());
    assert!(ws.verify().status.success());
}

#[test]
fn deb_bytes_differ_from_expected_hash() {
    let (up, ws, snap) = baseline();
    let bytes = deb("kiro", "0.7.45", "amd64", None);
    up.set("/k.deb", Reply::Body(bytes));
    let body = serde_json::json!({"version": "0.7.45", "url": up.url("/k.deb"), "sha256": "0".repeat(64)});
    up.set("/stable/metadata.json", Reply::Body(body.to_string().into_bytes()));
    expect_failure(&ws, &snap, "SHA256 mismatch: expected 0000");
}

#[test]
fn html_page_served_as_deb() {
    let (up, ws, snap) = baseline();
    new_release_at(&up, "/page.deb");
    up.set("/page.deb", Reply::Body(b"<!DOCTYPE html><html><body>Access denied</body></html>".to_vec()));
    expect_failure(&ws, &snap, "not a Debian package");
}

#[test]
fn deb_that_is_another_version() {
    let (up, ws, snap) = baseline();
    new_release_at(&up, "/wrong.deb");
    up.set("/wrong.deb", Reply::Body(deb("kiro", "0.7.46", "amd64", None)));
    expect_failure(&ws, &snap, "upstream announced \"0.7.45\"");
}

#[test]
fn republished_version_with_other_bytes_keeps_the_first() {
    let (up, ws, snap) = baseline();
    let first = ws.read("public/pool/main/k/kiro/kiro_0.7.44_amd64.deb");
    let other = deb("kiro", "0.7.44", "amd64", Some("libc6 (>= 2.30)"));
    up.set("/rebuilt/kiro-0.7.44.deb", Reply::Body(other));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.7.44", "/rebuilt/kiro-0.7.44.deb")));
    let out = expect_failure(&ws, &snap, "kiro#0.7.44#amd64 is already recorded");
    assert!(out.contains("[PackageConflict]"), "{out}");
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.7.44_amd64.deb"), first);
}

fn expect_config_error(ws: &Workspace, snap: &std::collections::BTreeMap<String, Vec<u8>>, needles: &[&str]) {
    let out = ws.pkgrelay(&["sync"]);
    assert!(!out.status.success(), "sync must refuse a bad configuration");
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    assert!(*snap == ws.snapshot());
    assert!(ws.verify().status.success());
}

#[test]
fn config_with_a_missing_field() {
    let (_up, ws, snap) = baseline();
    let file = ws.path("config/packages/kiro.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace("maintainer: Kiro <support@kiro.dev>\n", "");
    std::fs::write(&file, text).unwrap();
    expect_config_error(&ws, &snap, &["packages/kiro.yaml", "missing field `maintainer`"]);
}

#[test]
fn package_name_with_a_slash_or_dots() {
    let (_up, ws, snap) = baseline();
    let file = ws.path("config/packages/kiro.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    for bad in ["kiro/../../etc", "..", "ki/ro"] {
        std::fs::write(&file, original.replace("name: kiro\n", &format!("name: \"{bad}\"\n"))).unwrap();
        expect_config_error(&ws, &snap, &["packages/kiro.yaml", "field `name`", "not a valid Debian package name"]);
    }
}

#[test]
fn plain_http_upstream_is_refused() {
    let (_up, ws, snap) = baseline();
    let file = ws.path("config/packages/kiro.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("metadata_url:") {
                "  metadata_url: http://kiro.example.com/m.json"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text).unwrap();
    expect_config_error(
        &ws,
        &snap,
        &["packages/kiro.yaml", "source.metadata_url", "plain http is only allowed to loopback"],
    );
}
