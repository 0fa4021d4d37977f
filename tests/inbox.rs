//! What is taken once and what is refused once: `staging/` as an inbox, one
//! package per Debian version whatever its spelling, an epoch collision in
//! pool file names, and refused candidates remembered until upstream changes
//! them or an operator clears them — on embedded defaults, read by a real apt.

mod common;

use common::*;
use std::path::Path;

fn staging(ws: &Workspace) -> std::path::PathBuf {
    let dir = ws.path(".pkgrelay/staging");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The certificate and signature `kiro_metadata` points at.
fn companions(up: &Upstream, version: &str) {
    up.set(&format!("/signed/{version}/certificate.pem"), Reply::Body(format!("CERT {version}\n").into_bytes()));
    up.set(&format!("/signed/{version}/signature.bin"), Reply::Body(format!("SIG {version}").into_bytes()));
}

fn strict_sync(ws: &Workspace) -> (bool, String) {
    let out = ws.pkgrelay(&["sync", "--strict"]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// 50 staged .debs, 5 of them bad: the 45 good ones are published, the 5 bad
/// ones wait in staging/rejected/ with their reasons, and a second run reads
/// nothing.
#[test]
fn fifty_staged_debs_with_five_bad_ones() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let dir = staging(&ws);
    for i in 0..45 {
        std::fs::write(dir.join(format!("kiro-repo_1.{i}_all.deb")), deb("kiro-repo", &format!("1.{i}"), "all", None))
            .unwrap();
    }
    let good = deb("kiro-repo", "9.0", "all", None);
    // A version Debian cannot parse: refused by download-package, which reads it.
    let bad_version = deb("kiro-repo", "2.0 beta", "all", None);
    let bad: [(&str, Vec<u8>, &str); 5] = [
        ("truncated_9.0_all.deb", good[..good.len() / 2].to_vec(), "not a package pkgrelay can read"),
        ("notes.deb", b"release notes, not a package\n".to_vec(), "not a package pkgrelay can read"),
        ("stranger_1.0_all.deb", deb("stranger", "1.0", "all", None), "no package of the configuration"),
        ("kiro-repo_2.0-beta_all.deb", bad_version, "2.0 beta"),
        ("empty.deb", Vec::new(), "not a package pkgrelay can read"),
    ];
    for (name, bytes, _) in &bad {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    publish_kiro(&up, "0.7.44");

    let (ok, out) = strict_sync(&ws);
    assert!(!ok, "--strict: rejections make the exit status non-zero\n{out}");
    assert!(out.contains("new: 46") && out.contains("failed: 5"), "{out}");
    for (name, _, why) in &bad {
        assert!(out.contains(name), "{name} reported: {out}");
        let reason = String::from_utf8(ws.read(&format!(".pkgrelay/staging/rejected/{name}.reason"))).unwrap();
        assert!(reason.contains(why), "{name}: {reason}");
        assert!(ws.path(&format!(".pkgrelay/staging/rejected/{name}")).exists(), "{name} kept for inspection");
    }
    assert_eq!(names_in(&dir), ["rejected"], "the inbox is empty");

    let served = ws.serve();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "{text}");
    let (_, text) = apt.run("apt-cache", &["madison", "kiro-repo"]);
    assert_eq!(text.lines().count(), 45, "{text}");

    // A second run reads nothing: nothing is left to take.
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("failed: 0"), "{out}");

    // A re-upload of a recorded version with other bytes: refused as a
    // conflict, moved aside, the recorded package kept.
    std::fs::write(dir.join("kiro-repo_1.3_all-rebuilt.deb"), deb("kiro-repo", "1.3", "all", Some("libc6"))).unwrap();
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("[PackageConflict]"), "{out}");
    let reason = String::from_utf8(ws.read(".pkgrelay/staging/rejected/kiro-repo_1.3_all-rebuilt.deb.reason")).unwrap();
    assert!(reason.contains("already recorded with SHA256"), "{reason}");
    assert_eq!(names_in(&dir), ["rejected"]);

    // The operator sees the refusals.
    let status = ws.pkgrelay(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && text.contains("staged files refused (staging/rejected/): 6"), "{text}");
}

/// More bad uploads than the step's output lists (20): each one is moved
/// aside with its reason, the first 20 are named and the rest counted, so the
/// output stays small whatever is uploaded.
#[test]
fn more_bad_uploads_than_the_output_lists() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let dir = staging(&ws);
    for i in 0..25 {
        std::fs::write(dir.join(format!("junk-{i:02}.deb")), format!("junk {i}\n")).unwrap();
    }
    std::fs::write(dir.join("kiro-repo_1.0_all.deb"), deb("kiro-repo", "1.0", "all", None)).unwrap();
    let (ok, out) = strict_sync(&ws);
    assert!(!ok, "{out}");
    assert!(out.contains("new: 1"), "the good one beside them is published: {out}");
    let named = (0..25).filter(|i| out.contains(&format!("staging/junk-{i:02}.deb"))).count();
    assert_eq!(named, 20, "{out}");
    assert!(out.contains("5 more moved to staging/rejected/"), "{out}");
    assert_eq!(names_in(&dir.join("rejected")).len(), 50, "25 uploads and 25 reasons");
    assert_eq!(names_in(&dir), ["rejected"]);
}

/// A candidate refused for its content is remembered with its reason and the
/// artifact's SHA256: not fetched again while upstream announces it the same
/// way; fetched again once upstream changes it, or once an operator clears it.
#[test]
fn a_refused_candidate_is_fetched_again_only_when_upstream_changes_it_or_it_is_cleared() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let path = "/signed/0.8.0/deb/kiro-ide-0.8.0-stable-linux-x64.deb";
    companions(&up, "0.8.0");
    up.set(path, Reply::Body(b"<html>a login page, not a package</html>".to_vec()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.8.0", path)));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("[InvalidPackage]") && out.contains("remembered as refused"), "{out}");
    assert_eq!(up.hits(path), 1);

    for _ in 0..2 {
        let out = ws.sync(&[]);
        assert!(out.contains("skipped (refused before, unchanged upstream): 1") && out.contains("failed: 0"), "{out}");
    }
    assert_eq!(up.hits(path), 1, "not fetched again");
    let status = String::from_utf8(ws.pkgrelay(&["status"]).stdout).unwrap();
    assert!(status.contains("kiro#0.8.0#amd64 [InvalidPackage]") && status.contains(&up.url(path)), "{status}");
    let json: serde_json::Value = serde_json::from_slice(&ws.pkgrelay(&["status", "--json"]).stdout).unwrap();
    let refused = &json["rejections"][0];
    assert_eq!(refused["package_id"], "kiro#0.8.0#amd64", "{json:#}");
    assert_eq!(refused["sha256"], sha256(b"<html>a login page, not a package</html>"), "{json:#}");

    // Cleared by the operator: fetched (and refused) again.
    let cleared = ws.pkgrelay(&["clear-rejection", "kiro#0.8.0#amd64"]);
    assert!(cleared.status.success(), "{}", String::from_utf8_lossy(&cleared.stderr));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1"), "{out}");
    assert_eq!(up.hits(path), 2);
    let unknown = ws.pkgrelay(&["clear-rejection", "kiro#9.9#amd64"]);
    assert!(!unknown.status.success());

    // Upstream fixes it under a new URL: a different announcement, fetched, published.
    let fixed = "/signed/0.8.0/deb/kiro-ide-0.8.0-stable-linux-x64-fixed.deb";
    up.set(fixed, Reply::Body(deb("kiro", "0.8.0", "amd64", None)));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.8.0", fixed)));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.8.0#amd64"), "{out}");
}

/// Upstream writes `0.7.45`, the .deb `0:0.7.45` (and `1.01` / `1.1` alike):
/// one package, recorded once, not fetched again.
#[test]
fn debian_equal_spellings_are_one_package() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let path = "/signed/0.7.45/deb/kiro-ide-0.7.45-stable-linux-x64.deb";
    companions(&up, "0.7.45");
    up.set(path, Reply::Body(deb("kiro", "0:0.7.45", "amd64", None)));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.7.45", path)));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.7.45#amd64"), "{out}");
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("skipped (already processed): 1"), "{out}");
    assert_eq!(up.hits(path), 1, "fetched once");
}

/// `2.0` recorded, then upstream announces `1:2.0`: both would be
/// `kiro_2.0_amd64.deb` in the pool (file names carry no epoch). Refused once,
/// with the reason, and remembered.
#[test]
fn an_epoch_collision_in_pool_file_names_is_refused_once() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let first = "/signed/2.0/deb/kiro-ide-2.0-stable-linux-x64.deb";
    companions(&up, "2.0");
    companions(&up, "1:2.0");
    up.set(first, Reply::Body(deb("kiro", "2.0", "amd64", None)));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "2.0", first)));
    assert!(ws.sync(&[]).contains("new: 1"));
    let second = "/signed/1-2.0/deb/kiro-ide-1-2.0-stable-linux-x64.deb";
    up.set(second, Reply::Body(deb("kiro", "1:2.0", "amd64", Some("libc6"))));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "1:2.0", second)));
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 1") && out.contains("[PackageConflict]"), "{out}");
    assert!(out.contains("pool/main/k/kiro/kiro_2.0_amd64.deb") && out.contains("carry no epoch"), "{out}");
    let out = ws.sync(&[]);
    assert!(out.contains("failed: 0") && out.contains("skipped (refused before, unchanged upstream): 1"), "{out}");
    assert_eq!(up.hits(second), 1, "refused once");
    assert!(ws.verify().status.success(), "the published repository is intact");
}
