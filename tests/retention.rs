//! Retention of the APT repository (`keep: N` in a package file): the index
//! lists the newest N versions of the package per architecture, by Debian
//! order; the store keeps every recorded version. A pool file no index lists
//! any more, a replaced by-hash index file and a replaced generation's
//! manifest leave only once no published generation within the grace period
//! (`retention.grace` in repository.yaml, 7 days by default) references them,
//! and only after a run without failures — while a real apt client, holding
//! an older index or a fresh one, stays clean.

mod common;

use common::*;

fn madison(apt: &Apt, package: &str) -> Vec<String> {
    apt.run("apt-get", &["update", "--error-on=any"]);
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
}

fn set_grace(ws: &Workspace, grace: &str) {
    let file = ws.path("config/repository.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\n  grace: 7d\n"), "repository.yaml sets retention.grace");
    std::fs::write(&file, text.replace("\n  grace: 7d\n", &format!("\n  grace: {grace}\n"))).unwrap();
}

fn by_hash_files(ws: &Workspace) -> std::collections::BTreeSet<String> {
    ws.snapshot().into_keys().filter(|k| k.contains("/by-hash/")).collect()
}

fn set_keep(ws: &Workspace, keep: Option<&str>) {
    let file = ws.path("config/packages/kiro.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("keep:")).map(|l| format!("{l}\n")).collect();
    let text = match keep {
        Some(n) => text.replacen("source:", &format!("keep: {n}\nsource:"), 1),
        None => text,
    };
    std::fs::write(&file, text).unwrap();
}

#[test]
fn keep_lists_the_newest_versions_and_the_rest_stays_recorded() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    set_keep(&ws, Some("2"));
    // Published oldest first; 0.7.9 < 0.7.10 in Debian order, not as text.
    for version in ["0.7.9", "0.7.10", "0.7.11"] {
        publish_kiro(&up, version);
        let out = ws.sync(&["--strict"]);
        assert!(out.contains("new: 1") && out.contains("failed: 0"), "{out}");
    }
    let served = ws.serve();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    assert_eq!(madison(&apt, "kiro"), ["0.7.11", "0.7.10"], "the newest two by Debian order");
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro"]);
    assert!(ok && text.contains("kiro (0.7.11"), "{text}");
    // Left out of the index; within the grace period (7 days by default) the
    // pool keeps the file.
    assert!(nothing_deleted_within_grace(&ws));
    assert!(ws.path("public/pool/main/k/kiro/kiro_0.7.9_amd64.deb").exists(), "the pool keeps the file");
    assert!(ws.verify().status.success(), "verify is clean");

    // Raised again: the next rebuild lists every recorded version.
    set_keep(&ws, None);
    let out = ws.sync(&["--force-rebuild"]);
    assert!(out.contains("failed: 0"), "{out}");
    assert_eq!(madison(&apt, "kiro"), ["0.7.11", "0.7.10", "0.7.9"]);
}

/// The last sync's retention line says nothing was deleted.
fn nothing_deleted_within_grace(ws: &Workspace) -> bool {
    let out = ws.sync(&["--force-rebuild"]);
    out.contains("retention (grace 604800 s): deleted 0,") && out.contains("manifests deleted 0,")
}

/// A pruned version leaves the index at once and the pool after the grace
/// period; an apt client that still holds the older index can fetch it
/// meanwhile, and one that updates is clean throughout. Replaced by-hash
/// files and manifests go the same way.
#[test]
fn pruned_versions_leave_the_pool_after_the_grace_period_and_apt_stays_clean() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    set_keep(&ws, Some("2"));
    set_grace(&ws, "3s");
    for version in ["0.7.9", "0.7.10"] {
        publish_kiro(&up, version);
        let out = ws.sync(&["--strict"]);
        assert!(out.contains("new: 1") && out.contains("failed: 0"), "{out}");
    }
    let served = ws.serve();
    let source =
        format!("deb [signed-by={}] {} stable main", ws.path("public/kiro-archive-keyring.gpg").display(), served.url);
    // Two clients: one keeps the index of generation 2 throughout.
    let stale = Apt::new(&source);
    let fresh = Apt::new(&source);
    assert_eq!(madison(&stale, "kiro"), ["0.7.10", "0.7.9"]);
    let by_hash_2 = by_hash_files(&ws);
    let pool = |v: &str| ws.path(&format!("public/pool/main/k/kiro/kiro_{v}_amd64.deb"));

    publish_kiro(&up, "0.7.11");
    let out = ws.sync(&["--strict"]);
    assert!(out.contains("new: 1") && out.contains("failed: 0"), "{out}");
    assert!(out.contains("retention (grace 3 s): deleted 0,"), "within the grace period: {out}");
    assert_eq!(madison(&fresh, "kiro"), ["0.7.11", "0.7.10"]);
    // The stale client's index names 0.7.9: it is still there to download.
    assert!(pool("0.7.9").exists());
    let (ok, text) = stale.run("apt-get", &["download", "kiro=0.7.9"]);
    assert!(
        ok,
        "a client holding the older index fetches what it names:
{text}"
    );
    assert!(by_hash_files(&ws).is_superset(&by_hash_2), "the replaced index files stay within grace");

    std::thread::sleep(std::time::Duration::from_millis(3500));
    // Past the grace period, the next publish (here a forced rebuild: a
    // refresh of Valid-Until does the same) deletes what no generation
    // within it references.
    let out = ws.sync(&["--force-rebuild", "--strict"]);
    assert!(out.contains("failed: 0"), "{out}");
    assert!(!pool("0.7.9").exists(), "pruned and past its grace period: {out}");
    assert!(pool("0.7.10").exists() && pool("0.7.11").exists());
    let now = by_hash_files(&ws);
    assert!(by_hash_2.iter().any(|k| !now.contains(k)), "generation 2's replaced Packages left: {out}");
    // Generations 1 and 2 were replaced more than the grace period ago.
    let manifests = |g: u32| ws.path(&format!(".pkgrelay/generations/stable/{g:08}/manifest.json"));
    assert!(!manifests(1).exists() && !manifests(2).exists(), "{out}");
    assert!(manifests(4).exists(), "the live generation's manifest stays");

    // apt, updating, is clean; so is verify (every pool file and by-hash
    // file the live index names is there).
    for apt in [&fresh, &stale] {
        assert_eq!(madison(apt, "kiro"), ["0.7.11", "0.7.10"]);
        let (ok, text) = apt.run("apt-get", &["download", "kiro=0.7.10"]);
        assert!(ok, "{text}");
        let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro"]);
        assert!(ok && text.contains("kiro (0.7.11"), "{text}");
    }
    assert!(ws.verify().status.success(), "verify is clean");

    // keep raised after 0.7.9's file left: the store still has 0.7.9, but
    // the index does not list a file that is gone.
    set_keep(&ws, None);
    let out = ws.sync(&["--force-rebuild", "--strict"]);
    assert!(out.contains("failed: 0"), "{out}");
    assert_eq!(madison(&fresh, "kiro"), ["0.7.11", "0.7.10"]);
    assert!(ws.verify().status.success(), "verify is clean");
}

/// A run with a failure deletes nothing, however long ago an object was
/// left out; the next run without failures does.
#[test]
fn a_run_with_failures_deletes_nothing() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    set_keep(&ws, Some("1"));
    set_grace(&ws, "0s");
    publish_kiro(&up, "0.7.9");
    ws.sync(&["--strict"]);
    let pool = |v: &str| ws.path(&format!("public/pool/main/k/kiro/kiro_{v}_amd64.deb"));
    // 0.7.10 arrives, and kiro-cli's source fails in the same run.
    ws.with_kiro_cli(&up);
    up.set("/latest/kiro-cli.deb", Reply::Status(500));
    publish_kiro(&up, "0.7.10");
    let out = ws.sync(&[]);
    assert!(out.contains("kiro#0.7.10#amd64") && !out.contains("failed: 0"), "{out}");
    assert!(out.contains("held: the run had failures"), "{out}");
    assert!(pool("0.7.9").exists(), "left out of the index, kept: the run had failures");
    let served = ws.serve();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    assert_eq!(madison(&apt, "kiro"), ["0.7.10"]);

    // The source answers again: the next run is clean and collects.
    std::fs::remove_file(ws.path("config/packages/kiro-cli.yaml")).unwrap();
    let out = ws.sync(&["--force-rebuild", "--strict"]);
    assert!(out.contains("failed: 0") && !out.contains("held"), "{out}");
    assert!(!pool("0.7.9").exists(), "{out}");
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro"]);
    assert!(ok && text.contains("kiro (0.7.10"), "{text}");
    assert!(ws.verify().status.success());
}

#[test]
fn keep_zero_is_refused_naming_the_file_and_field() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    set_keep(&ws, Some("0"));
    let out = ws.pkgrelay(&["sync"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("kiro.yaml") && text.contains("keep") && text.contains("at least 1"), "{text}");
}
