//! Bad input, one test each: the run reports what is wrong and where, and the
//! published repository is left exactly as it was (and still verifies).
//!
//! Upstream documents, artifacts and redirects that would make a run fetch
//! elsewhere than allowed, take more than its limits, or accept a package
//! dpkg could not unpack; and `serve` asked for a non-loopback address.

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

// ---------------------------------------------------------------------------
// Where fetches may go (issue 11, item 3).

/// Add YAML lines to a file of the workspace's configuration.
fn append_config(ws: &Workspace, rel: &str, text: &str) {
    let path = ws.path(rel);
    let mut yaml = std::fs::read_to_string(&path).unwrap();
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    yaml.push_str(text);
    std::fs::write(path, yaml).unwrap();
}

/// The flat form's `certificate` pointing at another server on this machine,
/// over plain http: a URL upstream chose. It is neither fetched nor published.
#[test]
fn a_certificate_url_on_another_loopback_port_is_neither_fetched_nor_published() {
    let (up, ws, snap) = baseline();
    let other = Upstream::start();
    other.set("/secret", Reply::Body(b"TOP SECRET: the admin password".to_vec()));
    up.set("/k.deb", Reply::Body(deb("kiro", "0.7.45", "amd64", None)));
    up.set("/s.bin", Reply::Body(b"SIG".to_vec()));
    let body = serde_json::json!({"version": "0.7.45", "url": up.url("/k.deb"),
        "certificate": other.url("/secret"), "signature": up.url("/s.bin")});
    up.set("/stable/metadata.json", Reply::Body(body.to_string().into_bytes()));
    let out = expect_failure(&ws, &snap, &format!("{}: refused: plain http", other.url("/secret")));
    assert!(out.contains("[InvalidPackage]") && out.contains("certificate of kiro#0.7.45#amd64"), "{out}");
    assert_eq!(other.hits("/secret"), 0, "the other server was never asked");
    assert_eq!(up.hits("/k.deb"), 0, "refused before the artifact was downloaded");
}

/// An artifact on a host the package's configuration does not name is
/// refused, naming the host and how to allow it.
#[test]
fn an_artifact_on_an_unlisted_host_is_refused_naming_how_to_allow_it() {
    let (up, ws, snap) = baseline();
    let body = serde_json::json!({"currentRelease": "0.7.45", "releases": [{"version": "0.7.45",
        "updateTo": {"version": "0.7.45", "url": "https://downloads.example.net/kiro-0.7.45.deb"}}]});
    up.set("/stable/metadata.json", Reply::Body(body.to_string().into_bytes()));
    let out = expect_failure(&ws, &snap, "host downloads.example.net is not allowed for this source");
    assert!(out.contains("add it to source.allowed_hosts in packages/kiro.yaml"), "{out}");
    assert!(out.contains("[InvalidPackage]"), "{out}");
}

/// Redirects are followed on the configured origin, and refused elsewhere
/// over plain http.
#[test]
fn redirects_leave_the_configured_origin_only_for_https_to_allowed_hosts() {
    let (up, ws, snap) = baseline();
    let other = Upstream::start();
    other.set("/kiro.deb", Reply::Body(deb("kiro", "0.7.45", "amd64", None)));
    new_release_at(&up, "/go/kiro.deb");
    up.set("/go/kiro.deb", Reply::Redirect(other.url("/kiro.deb")));
    let out = expect_failure(&ws, &snap, &format!("redirected to {}: plain http", other.url("/kiro.deb")));
    assert!(out.contains("[InvalidPackage]"), "{out}");
    assert_eq!(other.hits("/kiro.deb"), 0);

    up.set("/go/kiro.deb", Reply::Redirect("https://mirror.example.org/kiro.deb".into()));
    expect_failure(
        &ws,
        &snap,
        "redirected to https://mirror.example.org/kiro.deb: host mirror.example.org is not allowed",
    );

    // On the configured origin itself, a redirect is followed.
    up.set("/signed/0.7.45/kiro.deb", Reply::Body(deb("kiro", "0.7.45", "amd64", None)));
    up.set("/go/kiro.deb", Reply::Redirect("/signed/0.7.45/kiro.deb".into()));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.7.45#amd64"), "{out}");
}

// ---------------------------------------------------------------------------
// Limits with clear errors (issue 11, item 2).

/// A body without end stops at the artifact cap the package sets, and is not
/// retried: the file, not the network, is at fault.
#[test]
fn an_endless_artifact_stops_at_the_configured_cap() {
    let (up, ws, snap) = baseline();
    append_config(&ws, "config/packages/kiro.yaml", "limits:\n  max_artifact_bytes: 1 MiB\n");
    new_release_at(&up, "/endless.deb");
    up.set("/endless.deb", Reply::Endless);
    let out = expect_failure(
        &ws,
        &snap,
        "endless.deb: sent more than 1048576 bytes (1 MiB) (limits.max_artifact_bytes in packages/kiro.yaml)",
    );
    assert!(out.contains("[InvalidPackage]"), "{out}");
    assert_eq!(up.hits("/endless.deb"), 1, "not retried");
}

/// Metadata without end stops at the repository's metadata cap.
#[test]
fn endless_metadata_stops_at_the_metadata_cap() {
    let (up, ws, snap) = baseline();
    up.set("/stable/metadata.json", Reply::Endless);
    let out = expect_failure(
        &ws,
        &snap,
        "metadata.json: sent more than 16777216 bytes (16 MiB) (limits.max_metadata_bytes in repository.yaml)",
    );
    assert!(out.contains("source of kiro"), "{out}");
}

/// A body that trickles in below the minimum rate for a whole window is
/// given up as transient (retried, then reported for the next run).
#[test]
fn a_trickling_artifact_is_given_up_as_transient() {
    let (up, ws, snap) = baseline();
    append_config(&ws, "config/packages/kiro.yaml", "limits:\n  min_transfer_rate: 1 KiB\n  min_rate_window: 1s\n");
    new_release_at(&up, "/slow.deb");
    let every = std::time::Duration::from_millis(200);
    up.set("/slow.deb", Reply::Trickle { body: deb("kiro", "0.7.45", "amd64", None), every });
    let out = expect_failure(&ws, &snap, "slow.deb: too slow: ");
    assert!(out.contains("[TransientError]"), "{out}");
    assert!(
        out.contains("less than 1024 bytes (1 KiB) a second (limits.min_transfer_rate in packages/kiro.yaml"),
        "{out}"
    );
    assert!(up.hits("/slow.deb") > 1, "a transient failure is retried");
}

/// A download that goes on past its deadline fails, however steadily it
/// trickles, and within about the deadline.
#[test]
fn a_download_past_its_deadline_fails_as_transient() {
    let (up, ws, snap) = baseline();
    append_config(&ws, "config/packages/kiro.yaml", "limits:\n  download_deadline: 2s\n  min_transfer_rate: 0\n");
    new_release_at(&up, "/steady.deb");
    let every = std::time::Duration::from_millis(50);
    up.set("/steady.deb", Reply::Trickle { body: deb("kiro", "0.7.45", "amd64", None), every });
    let t = std::time::Instant::now();
    let out = expect_failure(
        &ws,
        &snap,
        "steady.deb: not finished within 2s (limits.download_deadline in packages/kiro.yaml)",
    );
    assert!(out.contains("[TransientError]"), "{out}");
    assert!(t.elapsed() < std::time::Duration::from_secs(30), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------------------
// A .deb checked as dpkg would check it (issue 11, item 4).

/// The members of an ar archive, in order.
fn ar_members(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(bytes.starts_with(b"!<arch>\n"));
    let (mut at, mut out) = (8, Vec::new());
    while at + 60 <= bytes.len() {
        let header = &bytes[at..at + 60];
        let name = String::from_utf8_lossy(&header[..16]).trim_end().trim_end_matches('/').to_owned();
        let size: usize = String::from_utf8_lossy(&header[48..58]).trim().parse().unwrap();
        out.push((name, bytes[at + 60..at + 60 + size].to_vec()));
        at += 60 + size + size % 2;
    }
    out
}

/// An ar archive of `members`, as dpkg-deb writes one.
fn ar_archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, bytes) in members {
        out.extend_from_slice(
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, bytes.len()).as_bytes(),
        );
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A package whose data.tar.gz lost its last bytes before it was put into
/// the .deb (the file is whole, the stream is not): dpkg could not unpack it,
/// and write-once would keep it for good.
#[test]
fn a_deb_whose_data_member_is_cut_short_is_refused() {
    let (up, ws, snap) = baseline();
    let m = ar_members(&deb("kiro", "0.7.45", "amd64", None));
    assert_eq!(m[2].0, "data.tar.gz");
    let cut = &m[2].1[..m[2].1.len() - 20];
    new_release_at(&up, "/cut.deb");
    up.set("/cut.deb", Reply::Body(ar_archive(&[(&m[0].0, &m[0].1), (&m[1].0, &m[1].1), ("data.tar.gz", cut)])));
    let out = expect_failure(&ws, &snap, "cut.deb: data.tar.gz does not decode to its end");
    assert!(out.contains("[InvalidPackage]"), "{out}");
}

#[test]
fn a_deb_without_a_data_member_is_refused() {
    let (up, ws, snap) = baseline();
    let m = ar_members(&deb("kiro", "0.7.45", "amd64", None));
    new_release_at(&up, "/nodata.deb");
    up.set("/nodata.deb", Reply::Body(ar_archive(&[(&m[0].0, &m[0].1), (&m[1].0, &m[1].1)])));
    let out = expect_failure(&ws, &snap, "nodata.deb: no data.tar member (the archive ends after control.tar.gz)");
    assert!(out.contains("[InvalidPackage]"), "{out}");
}

/// A member dpkg-deb does not know, between the control and data members.
#[test]
fn a_deb_with_an_unknown_member_before_its_data_is_refused() {
    let (up, ws, snap) = baseline();
    let m = ar_members(&deb("kiro", "0.7.45", "amd64", None));
    new_release_at(&up, "/extra.deb");
    let members = [(&*m[0].0, &m[0].1[..]), (&m[1].0, &m[1].1), ("payload.bin", b"x"), (&m[2].0, &m[2].1)];
    up.set("/extra.deb", Reply::Body(ar_archive(&members)));
    expect_failure(&ws, &snap, "member order: unknown member \"payload.bin\" after control.tar.gz");
}

// ---------------------------------------------------------------------------
// serve binds loopback unless told otherwise (issue 11, item 8).

#[test]
fn serve_binds_loopback_unless_told_otherwise() {
    use std::io::{BufRead, Read, Write};
    let (_up, ws, _snap) = baseline();
    let mut refused = std::process::Command::new(env!("CARGO_BIN_EXE_pkgrelay"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .current_dir(ws.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = refused.kill();
            panic!("pkgrelay serve is serving on 0.0.0.0 without --allow-remote");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success(), "a non-loopback address needs --allow-remote");
    let mut err = String::new();
    refused.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("refusing to serve on 0.0.0.0:0: it is not a loopback address"), "{err}");
    assert!(err.contains("--allow-remote"), "{err}");

    // Told explicitly: it serves, and says what that means.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pkgrelay"))
        .args(["serve", "--bind", "0.0.0.0:0", "--allow-remote"])
        .current_dir(ws.dir.path())
        .env("PKGRELAY_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.split("http://0.0.0.0:").nth(1).and_then(|r| r.split('/').next()).expect(&line).to_owned();
    let mut conn = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(conn, "GET /dists/stable/InRelease HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("which is not a loopback address: anyone who can reach this machine can read it"), "{err}");
}
