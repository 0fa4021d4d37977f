//! The Kiro packages' real upstream feeds, on one machine (`pkgrelay sync`
//! against a fixture upstream on 127.0.0.1, a real apt reading the result):
//!
//! - kiro: vendor-built .debs whose control `Version` adds a build revision to
//!   the version the metadata announces (Code OSS packaging), under both URL
//!   shapes Kiro has used;
//! - kiro-cli: one "latest" URL that always serves the newest .deb, asked with
//!   a conditional request each run (ETag, else Last-Modified, else size).

mod common;

use common::*;
use pkgrelay_core::model::{PackageEntry, SourceState};
use pkgrelay_core::store::{PackageStore, SqliteStore};

/// The older URL shape (2025): a build directory per release.
const OLD_SHAPE: &str = "/releases/202511041200--distro-linux-x64-deb/202511041200-distro-linux-x64.deb";
/// The current one.
const NEW_SHAPE: &str = "/releases/stable/linux-x64/signed/0.7.45/deb/kiro-ide-0.7.45-stable-linux-x64.deb";
const LATEST: &str = "/latest/kiro-cli.deb";

/// A kiro .deb as the vendor builds it: `version` in its control paragraph.
/// No Depends, so that it installs into an empty private dpkg root.
fn vendor_deb(version: &str) -> Vec<u8> {
    deb("kiro", version, "amd64", None)
}

/// The older, flat metadata form announcing 0.6.0 at the older URL shape.
fn serve_old_release(up: &Upstream) -> Vec<u8> {
    let bytes = vendor_deb("0.6.0-1762210000");
    up.set(OLD_SHAPE, Reply::Body(bytes.clone()));
    let dir = OLD_SHAPE.rsplit_once('/').unwrap().0;
    up.set(&format!("{dir}/certificate.pem"), Reply::Body(b"CERT 0.6.0\n".to_vec()));
    up.set(&format!("{dir}/signature.bin"), Reply::Body(b"SIG 0.6.0".to_vec()));
    let metadata = serde_json::json!({
        "version": "0.6.0", "pub_date": "2025-11-04T12:00:00Z", "notes": "Kiro 0.6.0",
        "url": up.url(OLD_SHAPE),
        "certificate": up.url(&format!("{dir}/certificate.pem")),
        "signature": up.url(&format!("{dir}/signature.bin")),
    });
    up.set("/stable/metadata.json", Reply::Body(metadata.to_string().into_bytes()));
    bytes
}

/// The current, nested metadata form announcing 0.7.45 at the current URL shape.
fn serve_new_release(up: &Upstream) -> Vec<u8> {
    let bytes = vendor_deb("0.7.45-1763640000");
    up.set(NEW_SHAPE, Reply::Body(bytes.clone()));
    up.set("/signed/0.7.45/certificate.pem", Reply::Body(b"CERT 0.7.45\n".to_vec()));
    up.set("/signed/0.7.45/signature.bin", Reply::Body(b"SIG 0.7.45".to_vec()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(up, "0.7.45", NEW_SHAPE)));
    bytes
}

/// (Package, Version) of every stanza of a Packages file.
fn listed(ws: &Workspace, arch: &str) -> Vec<String> {
    let text = String::from_utf8(ws.read(&format!("public/dists/stable/main/binary-{arch}/Packages"))).unwrap();
    text.split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let f = |name: &str| s.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or_default();
            format!("{} {}", f("Package"), f("Version"))
        })
        .collect()
}

/// The versions `apt-cache madison` lists for `package`, newest first.
fn madison(apt: &Apt, package: &str) -> Vec<String> {
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// The workspace's store, read the way the pipeline reads it.
fn store(ws: &Workspace) -> SqliteStore {
    SqliteStore::open(&ws.path(".pkgrelay/state.db")).unwrap()
}

fn entry(ws: &Workspace, id: &str) -> Option<PackageEntry> {
    block_on(store(ws).get(id)).unwrap()
}

fn source_state(ws: &Workspace) -> SourceState {
    block_on(store(ws).source_state("kiro-cli")).unwrap().expect("kiro-cli's source record")
}

/// `pkgrelay serve` and a real apt (private state, real dpkg into a private root) reading it.
fn apt_installing(ws: &Workspace, root: &std::path::Path) -> (Served, Apt) {
    let served = ws.serve();
    let apt = Apt::with_dpkg_root(
        &format!("deb [signed-by={}] {} stable main", ws.path("public/kiro-archive-keyring.gpg").display(), served.url),
        root,
    );
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "apt-get update:\n{text}");
    (served, apt)
}

#[test]
fn vendor_builds_under_both_url_shapes_are_installed_and_not_fetched_again() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);

    // 0.6.0 in the older flat form at the older URL shape; the .deb says 0.6.0-1762210000.
    let old = serve_old_release(&up);
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.6.0-1762210000#amd64"), "{out}");
    assert!(out.contains("failed: 0"), "{out}");

    // 0.7.45 in the current nested form at the current URL shape.
    let new = serve_new_release(&up);
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.7.45-1763640000#amd64"), "{out}");
    assert!(out.contains("failed: 0"), "{out}");

    // Index, pool file names and store ids carry the .deb's own versions; the
    // entries remember what upstream announced.
    assert_eq!(listed(&ws, "amd64"), ["kiro 0.6.0-1762210000", "kiro 0.7.45-1763640000"]);
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.6.0-1762210000_amd64.deb"), old);
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.7.45-1763640000_amd64.deb"), new);
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.7.45-1763640000_amd64.pem"), b"CERT 0.7.45\n");
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.6.0-1762210000_amd64.sig"), b"SIG 0.6.0");
    let recorded = entry(&ws, "kiro#0.7.45-1763640000#amd64").unwrap();
    assert_eq!(recorded.announced_version.as_deref(), Some("0.7.45"));
    assert_eq!(recorded.source_url, up.url(NEW_SHAPE));
    assert_eq!(entry(&ws, "kiro#0.6.0-1762210000#amd64").unwrap().announced_version.as_deref(), Some("0.6.0"));
    assert!(entry(&ws, "kiro#0.7.45#amd64").is_none(), "no entry under the announced version");

    // Another run: the announced release is recognised; nothing is downloaded.
    let before = ws.snapshot();
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("skipped (already processed): 1"), "{out}");
    assert!(out.contains("repository unchanged"), "{out}");
    assert_eq!(before, ws.snapshot());
    // Nor when the metadata goes back to the older release, in the older form.
    serve_old_release(&up);
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("skipped (already processed): 1"), "{out}");
    assert_eq!((up.hits(OLD_SHAPE), up.hits(NEW_SHAPE)), (1, 1), "each .deb downloaded once");
    assert!(ws.verify().status.success());

    // A real apt installs the newest into a private dpkg root; apt and dpkg agree on its version.
    let root = dpkg_root();
    let (_served, apt) = apt_installing(&ws, root.path());
    assert_eq!(madison(&apt, "kiro"), ["0.7.45-1763640000", "0.6.0-1762210000"]);
    let (ok, text) = apt.run("apt-get", &["install", "-y", "--no-install-recommends", "kiro"]);
    assert!(ok, "apt-get install failed:\n{text}");
    let status = std::fs::read_to_string(root.path().join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: kiro\nStatus: install ok installed\n"), "{status}");
    assert!(status.contains("Version: 0.7.45-1763640000\n"), "{status}");
    assert_eq!(std::fs::read_to_string(root.path().join("usr/share/doc/kiro/VERSION")).unwrap(), "0.7.45-1763640000\n");
    let (ok, text) = apt.run("apt-cache", &["policy", "kiro"]);
    assert!(
        ok && text.contains("Installed: 0.7.45-1763640000") && text.contains("Candidate: 0.7.45-1763640000"),
        "{text}"
    );
    let (ok, text) = apt.run("apt-get", &["-s", "upgrade"]);
    assert!(ok && text.contains("0 upgraded, 0 newly installed"), "nothing to upgrade:\n{text}");
    // The older build is there to go back to.
    let (ok, text) = apt.run("apt-get", &["-s", "install", "--allow-downgrades", "kiro=0.6.0-1762210000"]);
    assert!(ok && text.contains("Inst kiro [0.7.45-1763640000] (0.6.0-1762210000"), "{text}");
}

#[test]
fn a_vendor_version_of_another_release_is_refused_naming_both() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    serve_old_release(&up);
    ws.sync(&[]);
    let snap = ws.snapshot();
    // The metadata announces 0.7.46; the .deb at its URL is 0.7.47's build.
    let path = "/releases/stable/linux-x64/signed/0.7.46/deb/kiro-ide-0.7.46-stable-linux-x64.deb";
    up.set(path, Reply::Body(vendor_deb("0.7.47-1764000000")));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.7.46", path)));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("[InvalidPackage]"), "{out}");
    assert!(
        out.contains("the package's Version is \"0.7.47-1764000000\", but upstream announced \"0.7.46\""),
        "{out}"
    );
    assert!(out.contains(path), "the URL is named: {out}");
    assert!(out.contains("repository unchanged"), "{out}");
    // Refused for what it is, and remembered: the next run does not fetch it
    // again while upstream announces it the same way.
    let hits = up.hits(path);
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 0") && out.contains("skipped (refused before, unchanged upstream): 1"), "{out}");
    assert_eq!(up.hits(path), hits, "not downloaded again");
    assert!(snap == ws.snapshot(), "nothing published");
}

/// Serve `version` of kiro-cli at the "latest" URL with the given validators.
fn serve_cli(up: &Upstream, version: &str, etag: Option<&str>, day: Option<i64>) -> Vec<u8> {
    serve_cli_bytes(up, deb("kiro-cli", version, "amd64", None), etag, day)
}

fn serve_cli_bytes(up: &Upstream, body: Vec<u8>, etag: Option<&str>, day: Option<i64>) -> Vec<u8> {
    up.set(
        LATEST,
        Reply::Validated { body: body.clone(), etag: etag.map(str::to_owned), last_modified: day.map(http_date) },
    );
    body
}

/// The requests for the "latest" URL since `from`: (method, If-None-Match, If-Modified-Since, status).
fn latest_requests(up: &Upstream, from: usize) -> Vec<(String, Option<String>, Option<String>, u16)> {
    up.requests(LATEST)[from..]
        .iter()
        .map(|r| {
            let h = |n: &str| r.header(n).map(str::to_owned);
            (r.method.clone(), h("if-none-match"), h("if-modified-since"), r.status)
        })
        .collect()
}

type Req = (String, Option<String>, Option<String>, u16);
fn head(inm: Option<&str>, ims: Option<String>, status: u16) -> Req {
    ("HEAD".into(), inm.map(str::to_owned), ims, status)
}
fn get() -> Req {
    ("GET".into(), None, None, 200)
}

/// A workspace with kiro-cli configured (as shipped: latest_url) and nothing else upstream.
fn cli_workspace(up: &Upstream) -> Workspace {
    let ws = Workspace::new(up);
    ws.with_kiro_cli(up);
    // kiro's metadata: no release is a failure of its own; these tests are about kiro-cli.
    std::fs::remove_file(ws.path("config/packages/kiro.yaml")).unwrap();
    ws
}

#[test]
fn the_latest_url_is_asked_with_its_etag_and_each_version_recorded_once() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);

    serve_cli(&up, "2.20.2", Some("\"v1\""), Some(0));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro-cli#2.20.2#amd64"), "{out}");
    assert_eq!(latest_requests(&up, 0), [head(None, None, 200), get()], "a first probe, then the download");
    let state = source_state(&ws);
    assert_eq!(state.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(state.validators.last_modified, Some(http_date(0)));
    assert_eq!((state.package_id.as_str(), state.conflict.as_deref()), ("kiro-cli#2.20.2#amd64", None));

    // Unchanged: one conditional request, answered 304; nothing downloaded, nothing published.
    let before = ws.snapshot();
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("failed: 0") && out.contains("repository unchanged"), "{out}");
    assert_eq!(latest_requests(&up, 2), [head(Some("\"v1\""), None, 304)]);
    assert_eq!(before, ws.snapshot());

    // The file changes to 2.21.1: downloaded once, recorded beside 2.20.2.
    let newest = serve_cli(&up, "2.21.1", Some("\"v2\""), Some(1));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro-cli#2.21.1#amd64"), "{out}");
    assert_eq!(latest_requests(&up, 3), [head(Some("\"v1\""), None, 200), get()]);
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("repository unchanged"), "{out}");
    assert_eq!(latest_requests(&up, 5), [head(Some("\"v2\""), None, 304)]);

    // The store keeps the history the URL does not.
    assert_eq!(listed(&ws, "amd64"), ["kiro-cli 2.20.2", "kiro-cli 2.21.1"]);
    assert_eq!(listed(&ws, "arm64"), Vec::<String>::new());
    let e = entry(&ws, "kiro-cli#2.21.1#amd64").unwrap();
    assert_eq!((e.source_url.as_str(), e.announced_version.as_deref()), (up.url(LATEST).as_str(), None));
    assert_eq!(ws.read("public/pool/main/k/kiro-cli/kiro-cli_2.21.1_amd64.deb"), newest);
    assert!(ws.verify().status.success());
    let root = dpkg_root();
    let (_served, apt) = apt_installing(&ws, root.path());
    assert_eq!(madison(&apt, "kiro-cli"), ["2.21.1", "2.20.2"]);
    let (ok, text) = apt.run("apt-get", &["install", "-y", "--no-install-recommends", "kiro-cli"]);
    assert!(ok, "{text}");
    let status = std::fs::read_to_string(root.path().join("var/lib/dpkg/status")).unwrap();
    assert!(
        status.contains("Package: kiro-cli\nStatus: install ok installed\n") && status.contains("Version: 2.21.1\n")
    );
}

#[test]
fn without_an_etag_the_last_modified_date_is_sent() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);
    serve_cli(&up, "2.20.2", None, Some(0));
    assert!(ws.sync(&[]).contains("kiro-cli#2.20.2#amd64"));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("failed: 0"), "{out}");
    assert_eq!(latest_requests(&up, 2), [head(None, Some(http_date(0)), 304)]);

    serve_cli(&up, "2.21.1", None, Some(1));
    let out = ws.sync(&[]);
    assert!(out.contains("kiro-cli#2.21.1#amd64"), "{out}");
    assert_eq!(latest_requests(&up, 3), [head(None, Some(http_date(0)), 200), get()]);
    assert_eq!(latest_requests(&up, 5).len(), 0);
    ws.sync(&[]);
    assert_eq!(latest_requests(&up, 5), [head(None, Some(http_date(1)), 304)]);
}

/// A server that sends neither ETag nor Last-Modified: an unconditional HEAD
/// whose Content-Length is compared with the recorded size.
#[test]
fn without_validators_the_size_is_compared() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);
    let first = deb("kiro-cli", "2.20.2", "amd64", None);
    let second = deb("kiro-cli", "2.21.1", "amd64", Some("libc6 (>= 2.28), zlib1g"));
    assert_ne!(first.len(), second.len(), "the test needs two sizes");
    up.set(LATEST, Reply::Body(first));
    assert!(ws.sync(&[]).contains("kiro-cli#2.20.2#amd64"));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("failed: 0"), "{out}");
    assert_eq!(latest_requests(&up, 2), [head(None, None, 200)], "same size: no download");

    up.set(LATEST, Reply::Body(second));
    let out = ws.sync(&[]);
    assert!(out.contains("kiro-cli#2.21.1#amd64"), "{out}");
    assert_eq!(latest_requests(&up, 3), [head(None, None, 200), get()]);
}

/// The file is replaced by one whose bytes the store already has (a
/// re-upload): nothing is recorded, but the next run sends the new ETag.
#[test]
fn a_known_file_under_a_new_etag_only_updates_the_validators() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);
    let bytes = serve_cli(&up, "2.20.2", Some("\"v1\""), Some(0));
    ws.sync(&[]);
    serve_cli_bytes(&up, bytes, Some("\"v1-again\""), Some(3));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("skipped (already processed): 1"), "{out}");
    assert!(out.contains("failed: 0") && out.contains("repository unchanged"), "{out}");
    assert_eq!(source_state(&ws).validators.etag.as_deref(), Some("\"v1-again\""));
    ws.sync(&[]);
    assert_eq!(
        latest_requests(&up, 2),
        [head(Some("\"v1\""), None, 200), get(), head(Some("\"v1-again\""), None, 304)]
    );
}

/// The file becomes a version already recorded, with other bytes: a loud
/// conflict; the recorded package is kept; the next runs report it again
/// without downloading the file, until upstream changes it.
#[test]
fn a_recorded_version_with_other_bytes_is_a_conflict_reported_until_the_file_changes() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);
    let original = serve_cli(&up, "2.21.1", Some("\"v1\""), Some(0));
    ws.sync(&[]);
    let snap = ws.snapshot();

    let other = deb("kiro-cli", "2.21.1", "amd64", Some("zlib1g"));
    serve_cli_bytes(&up, other.clone(), Some("\"v2\""), Some(1));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("[PackageConflict]"), "{out}");
    assert!(
        out.contains(&format!("kiro-cli#2.21.1#amd64 is already recorded with SHA256 {}", sha256(&original))),
        "{out}"
    );
    assert!(out.contains(&sha256(&other)) && out.contains("\"v2\""), "{out}");
    assert!(snap == ws.snapshot(), "the recorded package is kept, nothing republished");
    let state = source_state(&ws);
    assert_eq!(state.validators.etag.as_deref(), Some("\"v2\""));
    assert!(state.conflict.is_some());

    // Unchanged since: reported by each run, never downloaded again.
    for _ in 0..2 {
        let out = ws.sync(&[]);
        assert!(out.contains("failed: 1") && out.contains("source of kiro-cli [SourceError]"), "{out}");
        assert!(out.contains("is already recorded with SHA256") && out.contains("until the file at"), "{out}");
    }
    assert_eq!(
        latest_requests(&up, 2),
        [head(Some("\"v1\""), None, 200), get(), head(Some("\"v2\""), None, 304), head(Some("\"v2\""), None, 304)]
    );
    assert_eq!(ws.read("public/pool/main/k/kiro-cli/kiro-cli_2.21.1_amd64.deb"), original);

    // Upstream moves on: the next version is recorded and the conflict is over.
    serve_cli(&up, "2.22.0", Some("\"v3\""), Some(2));
    let out = ws.sync(&[]);
    assert!(out.contains("kiro-cli#2.22.0#amd64") && out.contains("failed: 0"), "{out}");
    assert_eq!(source_state(&ws).conflict, None);
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 0") && out.contains("repository unchanged"), "{out}");
}

/// A download that fails records no validators: the next run offers the file again.
#[test]
fn a_failed_download_is_offered_again_by_the_next_run() {
    let up = Upstream::start();
    let ws = cli_workspace(&up);
    serve_cli(&up, "2.20.2", Some("\"v1\""), Some(0));
    ws.sync(&[]);
    // A server without validators in front of a broken copy: only the size
    // tells that the file changed, and the download comes back cut short.
    let newer = deb("kiro-cli", "2.21.1", "amd64", Some("zlib1g"));
    assert_ne!(newer.len(), deb("kiro-cli", "2.20.2", "amd64", None).len(), "the test needs two sizes");
    up.set(LATEST, Reply::CutShort(newer));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("kiro-cli#latest#amd64"), "{out}");
    assert_eq!(source_state(&ws).validators.etag.as_deref(), Some("\"v1\""), "the old record is kept");
    serve_cli(&up, "2.21.1", Some("\"v2\""), Some(1));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro-cli#2.21.1#amd64"), "{out}");
}
