//! Retention of the APT repository (`keep: N` in a package file): the index
//! lists the newest N versions of the package per architecture, by Debian
//! order; the store keeps every recorded version and the pool keeps its file
//! (objects leave only after a grace period, which a later change brings), so
//! a raised `keep` lists older versions again on the next rebuild.

mod common;

use common::*;

fn madison(apt: &Apt, package: &str) -> Vec<String> {
    apt.run("apt-get", &["update", "--error-on=any"]);
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
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
    // Left out of the index, not out of the repository's keeping.
    assert!(ws.path("public/pool/main/k/kiro/kiro_0.7.9_amd64.deb").exists(), "the pool keeps the file");
    assert!(ws.verify().status.success(), "verify is clean");

    // Raised again: the next rebuild lists every recorded version.
    set_keep(&ws, None);
    let out = ws.sync(&["--force-rebuild"]);
    assert!(out.contains("failed: 0"), "{out}");
    assert_eq!(madison(&apt, "kiro"), ["0.7.11", "0.7.10", "0.7.9"]);
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
