//! The Homebrew bottle mirror end to end on one machine: `pkgrelay sync` on
//! embedded defaults mirrors the fake Homebrew upstream (formulae API, ghcr
//! with its bearer and its redirect to a blob host) beside the Kiro APT
//! repository, and `pkgrelay serve` serves both: the brew-equivalent client
//! (tests/common/brew.rs) installs every mirrored formula × tag in both
//! HOMEBREW_BOTTLE_DOMAIN and HOMEBREW_ARTIFACT_DOMAIN modes, and apt still
//! reads the APT repository.

mod common;

use common::brew::*;
use common::*;
use std::collections::BTreeSet;

/// The APT workspace plus a Homebrew mirror of every fixture formula for
/// every platform tag under `brew/`.
fn workspace(up: &Upstream, fake: &FakeBrew) -> Workspace {
    let ws = Workspace::new(up);
    configure_mirror(&ws, fake, &PLATFORM_TAGS);
    ws
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn sync_mirrors_homebrew_beside_apt_and_brew_installs_from_serve() {
    let up = Upstream::start();
    publish_kiro(&up, "0.7.45");
    let fake = FakeBrew::start(fixture_formulae());
    let ws = workspace(&up, &fake);

    // One sync runs both repositories of repositories.yaml.
    let out = ws.sync(&[]);
    assert!(out.contains("repository apt:") && out.contains("repository brew:"), "{out}");
    assert!(!out.contains("failed: 1") && out.matches("failed: 0").count() == 2, "{out}");
    assert!(out.contains("kiro#0.7.45#amd64") && out.contains("openssl@3#3.5.2#arm64_sonoma"), "{out}");
    assert!(out.contains("for http://127.0.0.1/brew"), "the mirror's own base_url: {out}");

    // Fetched from ghcr with the bearer, through its redirect; the blob host
    // never saw the registry's Authorization header.
    let first_blobs = blob_requests(&fake);
    assert!(first_blobs > 0);
    assert!(fake.ghcr.requests().iter().all(|r| r.header("authorization") == Some(ANONYMOUS_BEARER)));
    let blob_host = fake.blob_host.requests();
    assert!(!blob_host.is_empty() && blob_host.iter().all(|r| r.header("authorization").is_none()), "{blob_host:?}");

    // Each bottle once, by digest; no flat or v2 copy of any bottle.
    let mirrored: Vec<(String, String)> = fake.bottle_pairs();
    let digests: BTreeSet<String> =
        fake.formulae().iter().flat_map(|f| f.bottles.iter().map(|b| b.sha256.clone()).collect::<Vec<_>>()).collect();
    assert!(digests.len() < mirrored.len(), "the fixtures share a blob between two tags");
    let blobs = files_under(&ws.path("public/brew/blobs/sha256"));
    let stored: BTreeSet<String> =
        blobs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(stored, digests);
    let tarballs: Vec<_> = files_under(&ws.path("public/brew"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz") || p.to_string_lossy().contains("blobs/sha256:"))
        .collect();
    assert!(tarballs.is_empty(), "second copies: {tarballs:?}");
    let hashes: serde_json::Value = serde_json::from_slice(&ws.read("public/brew/bottles_hash.json")).unwrap();
    for f in fake.formulae() {
        for b in &f.bottles {
            assert_eq!(hashes[f.flat_name(&b.tag)].as_str(), Some(b.sha256.as_str()), "{}", f.flat_name(&b.tag));
        }
    }

    let served = ws.serve();
    let base = served.url.trim_end_matches('/').to_owned();
    let mirror = format!("{base}/brew");

    // The API files, byte for byte.
    let mut api = api_file_names();
    api.retain(|f| f != "formula.json");
    api_files_identical(&fake.api_domain(), &format!("{mirror}/api"), &api).unwrap();

    // Served with Last-Modified, answering brew's `--time-cond` with 304.
    let client = BrewClient::new("arm64_sonoma", &format!("{mirror}/api"));
    let first = client.fetch_api_file("formula.jws.json", None).unwrap();
    let since = first.last_modified.expect("Last-Modified");
    assert_eq!(client.fetch_api_file("formula.jws.json", Some(&since)).unwrap().status, 304);

    // Every formula × tag, as brew would pour it, in both domain modes.
    pour_every_bottle(&fake, &mirror, |tag, flat, artifact| {
        // The flat client asked with `%40`/`%2B` and a bearer on the manifest;
        // the artifact-domain client sent no Authorization at all.
        let flat_asked = flat.exchanges();
        assert!(flat_asked.iter().all(|e| e.status < 400), "{flat_asked:?}");
        if tag == "arm64_sonoma" {
            // `@` and `+` travel encoded; the mirror stores neither name.
            assert!(flat_asked.iter().any(|e| e.url.contains("/bottles/openssl%403-")), "{flat_asked:?}");
            assert!(flat_asked.iter().any(|e| e.url.contains("/bottles/gtk%2B3-")), "{flat_asked:?}");
        }
        assert!(artifact.exchanges().iter().all(|e| e.request_headers.iter().all(|(n, _)| n != "Authorization")));
    });

    // A second sync downloads no bottle and changes nothing brew reads.
    let before = ws.snapshot();
    fake.ghcr.clear_log();
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("new: 0") && out.contains("failed: 0"), "{out}");
    assert_eq!(blob_requests(&fake), 0, "{:?}", fake.ghcr.requests());
    let after = ws.snapshot();
    for key in ["brew/bottles_hash.json", "brew/api/formula.jws.json", "brew/api/internal/packages.sonoma.jws.json"] {
        assert_eq!(before.get(key), after.get(key), "{key}");
    }

    // The Kiro APT repository beside it still reads as apt reads it.
    assert!(ws.verify().status.success());
    let apt = Apt::new(&format!(
        "deb [signed-by={}] {} stable main",
        ws.path("public/kiro-archive-keyring.gpg").display(),
        served.url
    ));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok, "apt-get update failed:\n{text}");
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro"]);
    assert!(ok && text.contains("Inst kiro (0.7.45"), "{text}");
}

/// The API files wait for their bottles: while a bottle they reference
/// cannot be fetched, the mirror publishes the bottles it has but not the
/// API that would send brew to a 404; the next run with it in place does.
#[test]
fn api_files_are_published_only_after_every_bottle_they_reference() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = workspace(&up, &fake);
    // The blob host is gone: every bottle download fails.
    fake.blob_host.stop();
    let out = ws.pkgrelay(&["sync", "--repository", "brew"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("failed: 0"), "{text}");
    assert!(!ws.path("public/brew/api/formula.jws.json").exists(), "the API went out before its bottles");
    assert!(files_under(&ws.path("public/brew/blobs")).is_empty());
}

/// A bottle is stored once by digest: a tag added later whose bottle is the
/// same bytes as a mirrored tag's is read back from the mirror, not
/// downloaded again, and both names lead to the one blob.
#[test]
fn a_new_name_for_a_stored_digest_downloads_nothing() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = Workspace::new(&up);
    configure_mirror(&ws, &fake, &["arm64_sonoma"]);
    ws.sync(&["--repository", "brew"]);
    let hello = fake.formula("hello");
    let shared = hello.bottle("arm64_sequoia").unwrap().sha256.clone();
    assert_eq!(shared, hello.bottle("arm64_sonoma").unwrap().sha256, "the fixture shares this blob");

    configure_mirror(&ws, &fake, &["arm64_sonoma", "arm64_sequoia"]);
    fake.ghcr.clear_log();
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("hello#2.12.2#arm64_sequoia") && out.contains("failed: 0"), "{out}");
    let asked: Vec<String> =
        fake.ghcr.requests().into_iter().map(|r| r.path).filter(|p| p.contains("/blobs/")).collect();
    assert!(!asked.is_empty(), "the other new bottles are downloaded");
    assert!(!asked.iter().any(|p| p.ends_with(&shared)), "{asked:?}");
    let hashes: serde_json::Value = serde_json::from_slice(&ws.read("public/brew/bottles_hash.json")).unwrap();
    assert_eq!(hashes[hello.flat_name("arm64_sequoia")], hashes[hello.flat_name("arm64_sonoma")]);
    assert_eq!(files_under(&ws.path("public/brew/blobs/sha256")).iter().filter(|p| p.ends_with(&shared)).count(), 1);

    let served = ws.serve();
    let mirror = format!("{}/brew", served.url.trim_end_matches('/'));
    let flat = BrewClient::new("arm64_sequoia", &format!("{mirror}/api")).bottle_domain(&format!("{mirror}/bottles"));
    let b = flat.packages_index().unwrap().bottle("hello", "arm64_sequoia").unwrap();
    assert_eq!(b.tag, "arm64_sequoia");
    assert_eq!(sha256(&flat.fetch_bottle(&b).unwrap().bytes), shared);
}

/// Retention on a mirror: a bottle the published API files no longer
/// reference leaves the index at once and the bucket after the grace period
/// (the mirror's own `retention.grace`), but not in a run with a failure,
/// however long ago it was left out; brew, meanwhile, pours everything the
/// published API files name.
#[test]
fn an_unreferenced_bottle_leaves_after_the_grace_period_and_survives_a_failed_run() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = Workspace::new(&up);
    configure_mirror(&ws, &fake, &["arm64_sonoma"]);
    let settings = ws.path("config/homebrew.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, format!("{text}retention:\n  grace: 3s\n")).unwrap();
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("failed: 0") && out.contains("retention (grace 3 s)"), "{out}");
    let old = fake.formula("hello");
    let old_blob = ws.path(&format!("public/brew/blobs/sha256/{}", old.bottle("arm64_sonoma").unwrap().sha256));
    assert!(old_blob.exists());

    // hello 2.13.0 replaces 2.12.2 upstream.
    let upgrade = |mut formulae: Vec<Formula>, extra: Vec<Formula>| {
        formulae.retain(|f| f.name != "hello");
        formulae.push(formula("hello", "2.13.0").bottles(&["arm64_sonoma"], Cellar::AnySkipRelocation).build());
        formulae.extend(extra);
        formulae
    };
    fake.publish(upgrade(fixture_formulae(), vec![]));
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("hello#2.13.0#arm64_sonoma") && out.contains("failed: 0"), "{out}");
    assert!(out.contains("retention (grace 3 s): deleted 0,"), "within grace: {out}");
    let hashes: serde_json::Value = serde_json::from_slice(&ws.read("public/brew/bottles_hash.json")).unwrap();
    assert!(hashes.get(old.flat_name("arm64_sonoma")).is_none(), "no longer listed: {hashes}");
    assert!(old_blob.exists(), "kept within the grace period");

    // Past the grace period, a run with a failure (one new bottle cannot be
    // fetched, another can) publishes, and deletes nothing.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let wget = formula("wget", "1.25.0").bottles(&["arm64_sonoma"], Cellar::Any).build();
    let curl = formula("curl", "8.16.0").bottles(&["arm64_sonoma"], Cellar::Any).build();
    fake.publish(upgrade(fixture_formulae(), vec![wget.clone(), curl.clone()]));
    let broken = curl.bottle("arm64_sonoma").unwrap().sha256.clone();
    let held = fake.withhold_blob(&broken);
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("wget#1.25.0#arm64_sonoma") && out.contains("failed: 1"), "{out}");
    assert!(out.contains("held: the run had failures"), "{out}");
    assert!(old_blob.exists(), "an unreferenced bottle survives a run with a failure");
    // brew pours what the published API files (still the previous ones) name.
    let served = ws.serve();
    let mirror = format!("{}/brew", served.url.trim_end_matches('/'));
    let pour_all = |expect: &[&str]| {
        for client in [
            BrewClient::new("arm64_sonoma", &format!("{mirror}/api")).bottle_domain(&format!("{mirror}/bottles")),
            BrewClient::new("arm64_sonoma", &format!("{mirror}/api")).artifact_domain(&mirror),
        ] {
            let index = client.packages_index().unwrap();
            for name in expect {
                let b = index.bottle(name, "arm64_sonoma").unwrap_or_else(|| panic!("{name} not in the API"));
                let got = client.fetch_bottle(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(sha256(&got.bytes), b.sha256);
            }
        }
    };
    pour_all(&["hello", "openssl@3", "gtk+3", "ca-certificates"]);

    // The bottle is back: a run without failures publishes the new API files
    // and deletes what no generation within the grace period references.
    fake.restore_blob(&broken, held);
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("curl#8.16.0#arm64_sonoma") && out.contains("failed: 0"), "{out}");
    assert!(!out.contains("held"), "{out}");
    assert!(!old_blob.exists(), "past its grace period after a clean run: {out}");
    pour_all(&["hello", "openssl@3", "gtk+3", "ca-certificates", "wget", "curl"]);
    for f in [&wget, &curl] {
        let blob = ws.path(&format!("public/brew/blobs/sha256/{}", f.bottle("arm64_sonoma").unwrap().sha256));
        assert!(blob.exists(), "{}", f.name);
    }
}
