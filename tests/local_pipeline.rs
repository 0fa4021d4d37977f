//! End to end on one machine: `pkgrelay sync` against a fixture upstream on
//! 127.0.0.1, then a real apt client with a private configuration reads the
//! published repository through `pkgrelay serve`.

mod common;

use common::*;

/// Lines of a Packages file as (Package, Version, Filename, SHA256).
fn stanzas(packages: &str) -> Vec<(String, String, String, String)> {
    packages
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let f = |name: &str| {
                s.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned)).unwrap_or_default()
            };
            (f("Package"), f("Version"), f("Filename"), f("SHA256"))
        })
        .collect()
}

#[test]
fn sync_twice_then_apt_installs_from_the_repository() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);

    // First release; kiro-repo dropped into staging; kiro-cli from its "latest" URL.
    publish_kiro(&up, "0.7.44");
    std::fs::create_dir_all(ws.path(".pkgrelay/staging")).unwrap();
    std::fs::write(ws.path(".pkgrelay/staging/kiro-repo_1.0_all.deb"), deb("kiro-repo", "1.0", "all", None)).unwrap();
    ws.with_kiro_cli(&up);
    up.set(
        "/latest/kiro-cli.deb",
        Reply::Validated {
            body: deb("kiro-cli", "1.2.0", "amd64", None),
            etag: Some("\"cli-1.2.0\"".into()),
            last_modified: Some(http_date(0)),
        },
    );
    let out = ws.sync(&[]);
    assert!(out.contains("new: 3") && out.contains("kiro-cli#1.2.0#amd64"), "{out}");
    assert!(out.contains("failed: 0"), "{out}");

    // The metadata moves on to a newer release; the older one stays in the
    // store. kiro-cli's file is unchanged: not offered again.
    // The staged kiro-repo left the inbox once recorded: staging/ is empty.
    assert_eq!(std::fs::read_dir(ws.path(".pkgrelay/staging")).unwrap().count(), 0, "staging/ is an inbox");
    let newest = publish_kiro(&up, "0.7.45");
    let out = ws.sync(&[]);
    assert!(out.contains("new: 1") && out.contains("kiro#0.7.45#amd64"), "{out}");
    assert!(out.contains("skipped (already processed): 0"), "{out}");

    // A third run with nothing new leaves the repository alone.
    let before = ws.snapshot();
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("repository unchanged"), "{out}");
    assert_eq!(before, ws.snapshot());

    // Certificates and signatures sit beside the .deb, unmodified.
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.7.45_amd64.pem"), b"CERT 0.7.45\n");
    assert_eq!(ws.read("public/pool/main/k/kiro/kiro_0.7.45_amd64.sig"), b"SIG 0.7.45");
    // The convenience copy is the newest kiro-repo from the pool.
    assert_eq!(ws.read("public/kiro-repo.deb"), ws.read("public/pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"));
    // Depends, Recommends and the real Description come from the .deb itself.
    let packages = String::from_utf8(ws.read("public/dists/stable/main/binary-amd64/Packages")).unwrap();
    assert!(packages.contains("Depends: libc6 (>= 2.28)\n"), "{packages}");
    assert!(packages.contains("Recommends: kiro-repo\n"));
    assert!(packages.contains("Description: kiro fixture\n Built by the test suite.\n .\n Version 0.7.45.\n"));
    let listed: Vec<_> = stanzas(&packages).into_iter().map(|(p, v, _, _)| format!("{p} {v}")).collect();
    assert_eq!(listed, ["kiro 0.7.44", "kiro 0.7.45", "kiro-cli 1.2.0", "kiro-repo 1.0"]);
    let arm = String::from_utf8(ws.read("public/dists/stable/main/binary-arm64/Packages")).unwrap();
    let listed: Vec<_> = stanzas(&arm).into_iter().map(|(p, v, _, _)| format!("{p} {v}")).collect();
    assert_eq!(listed, ["kiro-repo 1.0"]);
    let release = String::from_utf8(ws.read("public/dists/stable/Release")).unwrap();
    assert!(release.contains(" main/binary-amd64/Packages\n"), "Release must list the uncompressed Packages");
    assert!(release.contains("Acquire-By-Hash: yes\n") && release.contains("Valid-Until: "));
    assert!(ws.verify().status.success());

    // A real apt client, private configuration, signed-by the published key.
    let served = ws.serve();
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok, "apt-get update failed:\n{text}");
    assert!(!text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "apt-get update warned:\n{text}");

    let (ok, text) = apt.run("apt-cache", &["madison", "kiro"]);
    assert!(ok);
    let madison: Vec<String> = text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for v in ["0.7.45", "0.7.44"] {
        assert!(madison.iter().any(|l| l.starts_with(&format!("kiro | {v} |"))), "{v} missing:\n{text}");
    }

    let (ok, text) = apt.run("apt-get", &["download", "kiro"]);
    assert!(ok, "{text}");
    let got = slurp(&apt.download_dir().join("kiro_0.7.45_amd64.deb"));
    let (_, _, _, sha) = stanzas(&packages).into_iter().find(|(p, v, _, _)| p == "kiro" && v == "0.7.45").unwrap();
    assert_eq!(sha256(&got), sha);
    assert_eq!(got, newest);

    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro", "kiro-repo", "kiro-cli"]);
    assert!(ok, "{text}");
    for inst in ["Inst kiro (0.7.45", "Inst kiro-repo (1.0", "Inst kiro-cli (1.2.0"] {
        assert!(text.contains(inst), "{inst} missing:\n{text}");
    }
}

#[test]
fn force_rebuild_works_from_the_store_alone() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.44");
    ws.sync(&[]);
    publish_kiro(&up, "0.7.45");
    ws.sync(&[]);
    let before = ws.snapshot();

    up.stop();
    std::fs::remove_file(ws.path("public/pool/main/k/kiro/kiro_0.7.44_amd64.deb")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a later Date
    let out = ws.sync(&["--force-rebuild"]);
    assert!(out.contains("published generation 3"), "{out}");
    let after = ws.snapshot();

    for arch in ["amd64", "arm64"] {
        for f in ["Packages", "Packages.gz", "Packages.xz"] {
            let k = format!("dists/stable/main/binary-{arch}/{f}");
            assert_eq!(before[&k], after[&k], "{k} differs after a forced rebuild");
        }
    }
    let strip = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("Date:") && !l.starts_with("Valid-Until:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(strip(&before["dists/stable/Release"]), strip(&after["dists/stable/Release"]));
    assert_ne!(before["dists/stable/Release"], after["dists/stable/Release"], "Date moves on");

    let out = ws.verify();
    assert!(!out.status.success(), "verify must report the deleted pool file");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pool/main/k/kiro/kiro_0.7.44_amd64.deb: missing"), "{text}");
}

#[test]
fn stale_index_is_resigned_even_with_nothing_new() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let cfg = ws.path("config/repository.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("valid_for: 7d", "valid_for: 4s");
    std::fs::write(&cfg, text).unwrap();
    publish_kiro(&up, "0.7.45");
    ws.sync(&[]);
    let first = ws.read("public/dists/stable/InRelease");
    let out = ws.sync(&[]);
    assert!(out.contains("repository unchanged"), "fresh index is left alone: {out}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("published generation 2"), "{out}");
    assert_ne!(first, ws.read("public/dists/stable/InRelease"));
}

#[test]
fn a_lost_index_is_republished_by_the_next_run() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    publish_kiro(&up, "0.7.45");
    ws.sync(&[]);
    // Someone deletes part of the published repository.
    std::fs::remove_file(ws.path("public/dists/stable/InRelease")).unwrap();
    std::fs::remove_file(ws.path("public/dists/stable/main/binary-amd64/Packages.gz")).unwrap();
    std::fs::remove_file(ws.path("public/index.html")).unwrap();
    assert!(!ws.verify().status.success());
    let out = ws.sync(&[]);
    assert!(out.contains("new: 0") && out.contains("published generation 2"), "{out}");
    assert!(ws.verify().status.success(), "the next run restored what was missing");
    assert!(ws.path("public/index.html").exists());
}
