//! The repository configuration package (kiro-repo) end to end: built
//! reproducibly, staged, published by `sync`, installed by a real apt client
//! into a private dpkg root (maintainer scripts run there), upgraded through
//! APT, purged; the convenience copy follows the newest version.

mod common;

use common::*;
use std::process::Command;

fn sha(ws: &Workspace, rel: &str) -> String {
    sha256(&ws.read(rel))
}

fn dpkg_deb(args: &[&str], path: &std::path::Path) -> String {
    let out = Command::new("dpkg-deb").args(args).arg(path).output().expect("dpkg-deb is installed");
    assert!(out.status.success(), "dpkg-deb {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kiro_repo_installs_upgrades_and_purges_through_apt() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.45");
    ws.sync(&[]);
    let served = ws.serve();

    // The test deployment's URL comes from config, like dev/staging/prod.
    let repo_yaml = ws.path("config/repository.yaml");
    let text = std::fs::read_to_string(&repo_yaml).unwrap();
    let text = text.replace("environments:\n", &format!("environments:\n  test:\n    base_url: {}\n", served.url));
    std::fs::write(&repo_yaml, text).unwrap();

    // Reproducible: two builds, same bytes; dpkg-deb reads it.
    let out_a = ws.path("build-a");
    let out_b = ws.path("build-b");
    for out in [&out_a, &out_b] {
        let o = ws.pkgrelay(&[
            "config-package",
            "build",
            "--version",
            "1.0",
            "--env",
            "test",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success());
    }
    let deb_a = out_a.join("kiro-repo_1.0_all.deb");
    assert_eq!(slurp(&deb_a), slurp(&out_b.join("kiro-repo_1.0_all.deb")), "byte-reproducible");
    let info = dpkg_deb(&["--info"], &deb_a);
    for field in [
        "Package: kiro-repo",
        "Version: 1.0",
        "Architecture: all",
        "Maintainer: ",
        "Section: misc",
        "Priority: optional",
        "Homepage: ",
        "Description: ",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    assert!(info.contains("postinst") && info.contains("prerm") && info.contains("conffiles"), "{info}");
    let contents = dpkg_deb(&["--contents"], &deb_a);
    assert!(contents.contains("./etc/apt/sources.list.d/kiro.list"), "{contents}");
    assert!(contents.contains("./usr/share/keyrings/kiro-archive-keyring.gpg"), "{contents}");
    assert!(dpkg_deb(&["--field"], &deb_a).lines().count() >= 7);

    // Publish 1.0 into staging; sync picks it up; the convenience copy is the pool copy.
    let o = ws.pkgrelay(&["config-package", "publish", "--version", "1.0", "--env", "test"]);
    assert!(o.status.success());
    assert!(ws.path(".pkgrelay/staging/kiro-repo_1.0_all.deb").exists());
    let out = ws.sync(&[]);
    assert!(out.contains("kiro-repo#1.0#all"), "{out}");
    assert_eq!(sha(&ws, "public/kiro-repo.deb"), sha(&ws, "public/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"));

    // A real apt installs it into a private dpkg root; postinst runs there.
    let root = dpkg_root();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/apt/trusted.gpg.d")).unwrap();
    std::fs::write(r.join("etc/apt/trusted.gpg.d/kiro-archive-keyring.gpg"), b"legacy key").unwrap();
    let keyring = ws.path("public/kiro-archive-keyring.gpg");
    let apt = Apt::with_dpkg_root(&format!("deb [signed-by={}] {} stable main", keyring.display(), served.url), r);
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok, "{text}");
    let (ok, text) = apt.run("apt-get", &["install", "-y", "kiro-repo"]);
    assert!(ok, "apt-get install failed:\n{text}");
    let list = r.join("etc/apt/sources.list.d/kiro.list");
    let installed = std::fs::read_to_string(&list).unwrap();
    assert!(
        installed.contains(&format!(
            "deb [signed-by=/usr/share/keyrings/kiro-archive-keyring.gpg] {} stable main",
            served.url
        )),
        "{installed}"
    );
    assert_eq!(
        slurp(&r.join("usr/share/keyrings/kiro-archive-keyring.gpg")),
        slurp(&keyring),
        "binary keyring installed"
    );
    assert!(!r.join("etc/apt/trusted.gpg.d/kiro-archive-keyring.gpg").exists(), "postinst removed the legacy key");

    // The installed source list works for apt-get update (keyring path moved into the private root).
    let rewritten: String = installed
        .lines()
        .filter(|l| l.starts_with("deb "))
        .map(|l| l.replace("/usr/share/keyrings/", &format!("{}/usr/share/keyrings/", r.display())))
        .collect();
    let from_list = Apt::new(&rewritten);
    let (ok, text) = from_list.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "{text}");
    assert_eq!(madison_of(&from_list, "kiro-repo"), ["1.0"]);

    // Publishing 1.1 (version picked as the next after the newest recorded):
    // apt offers the upgrade 1.0 -> 1.1.
    let o = ws.pkgrelay(&["config-package", "publish", "--env", "test"]);
    assert!(o.status.success());
    assert!(ws.path(".pkgrelay/staging/kiro-repo_1.1_all.deb").exists(), "next version is 1.1");
    let out = ws.sync(&[]);
    assert!(out.contains("kiro-repo#1.1#all"), "{out}");
    assert_eq!(sha(&ws, "public/kiro-repo.deb"), sha(&ws, "public/pool/main/k/kiro-repo/kiro-repo_1.1_all.deb"));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok, "{text}");
    let (ok, text) = apt.run("apt-get", &["-s", "upgrade"]);
    assert!(ok && text.contains("Inst kiro-repo [1.0] (1.1"), "upgrade not offered:\n{text}");

    // A forced rebuild keeps the convenience copy equal to the newest pool copy.
    ws.sync(&["--force-rebuild"]);
    assert_eq!(sha(&ws, "public/kiro-repo.deb"), sha(&ws, "public/pool/main/k/kiro-repo/kiro-repo_1.1_all.deb"));

    // Removal takes the keyring and disables the list (a conffile, kept until
    // purge) so that apt update keeps working; purge removes everything.
    let (ok, text) = apt.run("apt-get", &["remove", "-y", "kiro-repo"]);
    assert!(ok, "{text}");
    let disabled = std::fs::read_to_string(&list).unwrap();
    assert!(disabled.contains("\n# disabled while the package is removed: deb [signed-by="), "{disabled}");
    assert!(!disabled.lines().any(|l| l.starts_with("deb ")), "{disabled}");
    assert!(!r.join("usr/share/keyrings/kiro-archive-keyring.gpg").exists(), "keyring removed");
    let (ok, text) = apt.run("apt-get", &["purge", "-y", "kiro-repo"]);
    assert!(ok, "{text}");
    assert!(!list.exists(), "source list purged");
    assert!(!r.join("usr/share/keyrings/kiro-archive-keyring.gpg").exists(), "keyring removed");
}

fn madison_of(apt: &Apt, package: &str) -> Vec<String> {
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
}

#[test]
fn publish_to_aws_needs_the_stack_outputs() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let missing = ws.pkgrelay(&["config-package", "publish", "--env", "dev", "--outputs-file", "cdk-outputs.json"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("cdk-outputs.json") && err.contains("cdk deploy -c env=dev --outputs-file"), "{err}");

    std::fs::write(ws.path("cdk-outputs.json"), r#"{"pkgrelay-dev": {"BucketName": "b"}}"#).unwrap();
    let partial = ws.pkgrelay(&["config-package", "publish", "--env", "dev", "--outputs-file", "cdk-outputs.json"]);
    assert!(!partial.status.success());
    let err = String::from_utf8_lossy(&partial.stderr);
    assert!(err.contains("has no output PackagesTableName"), "{err}");

    let dry = ws.pkgrelay(&["config-package", "publish", "--version", "2.0", "--dry-run"]);
    assert!(dry.status.success());
    assert!(!ws.path(".pkgrelay/staging/kiro-repo_2.0_all.deb").exists(), "dry run uploads nothing");
}
