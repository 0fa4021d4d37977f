//! `pkgrelay brew import-hash`: a mirror seeded from an earlier mirror's
//! `bottles_hash.json` and the flat bottle files it left under `bottles/`
//! (DESIGN.md's layout) downloads none of those bottles in its next sync;
//! an entry whose object is missing, corrupted, announced with another digest
//! or not a bottle name is refused by name, loses nothing, holds back no
//! other, and is downloaded by that sync as usual.

mod common;

use common::brew::*;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;

/// The APT workspace plus a mirror of every fixture formula for every
/// platform tag under `brew/` (as tests/brew_mirror.rs configures it).
fn workspace(up: &Upstream, fake: &FakeBrew) -> Workspace {
    let ws = Workspace::new(up);
    std::fs::write(
        ws.path("config/repositories.yaml"),
        "repositories:\n  - {name: apt, format: apt}\n  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}\n",
    )
    .unwrap();
    std::fs::write(
        ws.path("config/homebrew.yaml"),
        format!(
            "api_url: {}\nregistry_url: {}\nallowed_hosts: [127.0.0.1]\n\
             formulae: all\ntags: [{}]\nbase_url: http://127.0.0.1/brew\n",
            fake.api_domain(),
            fake.ghcr_root().replace("127.0.0.1", "localhost"),
            PLATFORM_TAGS.join(", ")
        ),
    )
    .unwrap();
    ws
}

/// The earlier mirror: every fixture bottle at `public/brew/bottles/<flat
/// name>` (openssl@3's with `%40`, as some mirrors stored it), and its hash
/// file (flat name → SHA-256).
fn earlier_mirror(ws: &Workspace, fake: &FakeBrew) -> BTreeMap<String, String> {
    let mut hashes = BTreeMap::new();
    for f in fake.formulae() {
        for b in &f.bottles {
            let flat = f.flat_name(&b.tag);
            let key = if f.name == "openssl@3" { flat.replace('@', "%40") } else { flat.clone() };
            let path = ws.path(&format!("public/brew/bottles/{key}"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &*b.bytes).unwrap();
            hashes.insert(flat, b.sha256.clone());
        }
    }
    hashes
}

fn write_hash_file(ws: &Workspace, hashes: &BTreeMap<String, String>) -> String {
    let path = ws.path("old-bottles_hash.json");
    std::fs::write(&path, serde_json::to_vec_pretty(hashes).unwrap()).unwrap();
    path.display().to_string()
}

/// The bottles the fake ghcr was asked for (by digest).
fn downloaded(fake: &FakeBrew) -> BTreeSet<String> {
    fake.ghcr
        .requests()
        .into_iter()
        .filter_map(|r| r.path.split_once("/blobs/sha256:").map(|(_, d)| d.to_owned()))
        .collect()
}

/// Every formula × tag installs from `pkgrelay serve` as brew would, in
/// both domain modes (the image indexes are made of what the import
/// recorded), with upstream's bytes.
fn brew_installs_everything(ws: &Workspace, fake: &FakeBrew) {
    let served = ws.serve();
    let mirror = format!("{}/brew", served.url.trim_end_matches('/'));
    pour_every_bottle(fake, &mirror, |_, _, _| {});
}

#[test]
fn a_seeded_mirror_downloads_no_bottle() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = workspace(&up, &fake);
    let hashes = earlier_mirror(&ws, &fake);
    let file = write_hash_file(&ws, &hashes);

    let out = ws.pkgrelay(&["brew", "import-hash", &file, "--repository", "brew", "--strict"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let n = hashes.len();
    assert!(text.contains(&format!("{n} entries: {n} imported")) && text.contains(" 0 refused"), "{text}");
    // The registry was asked for image indexes only, never for a bottle.
    assert!(downloaded(&fake).is_empty(), "{:?}", fake.ghcr.requests());

    // Each bottle is one file with two names: the flat one it had, and its
    // digest (a hard link, no second copy). (Not a tag whose bytes another
    // tag shares: that blob is the first name's file.)
    let hello = fake.formula("hello");
    let b = hello.bottle("x86_64_linux").unwrap();
    let flat = std::fs::metadata(ws.path(&format!("public/brew/bottles/{}", hello.flat_name("x86_64_linux")))).unwrap();
    let blob = std::fs::metadata(ws.path(&format!("public/brew/blobs/sha256/{}", b.sha256))).unwrap();
    assert_eq!((flat.dev(), flat.ino()), (blob.dev(), blob.ino()));

    // Running it again reads nothing and records nothing new.
    let again = ws.pkgrelay(&["brew", "import-hash", &file, "--repository", "brew"]);
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains(&format!("{n} entries: 0 imported (0.0 MiB checked), {n} recorded already")), "{text}");

    // The sync that follows downloads no bottle, and publishes them all.
    fake.ghcr.clear_log();
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("new: 0") && out.contains("failed: 0"), "{out}");
    assert!(out.contains("published generation 1"), "the imported entries are published: {out}");
    assert!(downloaded(&fake).is_empty(), "{:?}", fake.ghcr.requests());
    let published: BTreeMap<String, String> =
        serde_json::from_slice(&ws.read("public/brew/bottles_hash.json")).unwrap();
    assert_eq!(published, hashes);
    brew_installs_everything(&ws, &fake);
}

#[test]
fn a_bad_entry_is_refused_by_name_and_downloaded_by_the_next_sync() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = workspace(&up, &fake);
    let mut hashes = earlier_mirror(&ws, &fake);

    // Corrupted: same size, one byte changed.
    let gtk = fake.formula("gtk+3");
    let corrupt = gtk.flat_name(&gtk.bottles[0].tag);
    let corrupt_path = ws.path(&format!("public/brew/bottles/{corrupt}"));
    let mut bytes = std::fs::read(&corrupt_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&corrupt_path, &bytes).unwrap();
    // Missing: in the hash file, not in the bucket.
    let ca = fake.formula("ca-certificates");
    let missing = ca.flat_name("all");
    std::fs::remove_file(ws.path(&format!("public/brew/bottles/{missing}"))).unwrap();
    // Announced with another digest than the hash file's (rebuilt upstream since).
    let hello = fake.formula("hello");
    let stale = hello.flat_name("x86_64_linux");
    let stale_sha = hello.bottle("x86_64_linux").unwrap().sha256.clone();
    hashes.insert(stale.clone(), "0".repeat(64));
    // Not a bottle file name; not a digest; not in the plan (an old version).
    hashes.insert("README.txt".into(), "1".repeat(64));
    hashes.insert(hello.flat_name("arm64_tahoe"), "not-a-digest".into());
    hashes.insert("hello-2.12.1.arm64_sonoma.bottle.tar.gz".into(), "2".repeat(64));
    let file = write_hash_file(&ws, &hashes);

    // Without --strict: the others are imported, the refusals reported, exit 0.
    let out = ws.pkgrelay(&["brew", "import-hash", &file, "--repository", "brew"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let refused = |name: &str, why: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("refused {name}: ")))
            .unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(line.contains(why), "{line}");
    };
    refused(&corrupt, "its SHA-256 is");
    refused(&missing, "no object bottles/");
    refused(&stale, &format!("formula.json announces {stale_sha}"));
    refused("README.txt", "not a bottle file name");
    refused(&hello.flat_name("arm64_tahoe"), "not a SHA-256");
    assert!(text.contains("not in the current plan") && text.contains("hello-2.12.1.arm64_sonoma"), "{text}");
    let good = hashes.len() - 6;
    assert!(
        text.contains(&format!("{} entries: {good} imported", hashes.len())) && text.contains(" 5 refused"),
        "{text}"
    );
    // Nothing lost: the corrupted file is as it was, and no blob took its digest.
    assert_eq!(std::fs::read(&corrupt_path).unwrap(), bytes);
    let corrupt_sha = gtk.bottles[0].sha256.clone();
    assert!(!ws.path(&format!("public/brew/blobs/sha256/{corrupt_sha}")).exists());
    assert!(downloaded(&fake).is_empty());

    // --strict: the same refusals make the exit status 2.
    let strict = ws.pkgrelay(&["brew", "import-hash", &file, "--repository", "brew", "--strict"]);
    assert_eq!(strict.status.code(), Some(2));

    // The sync downloads exactly the refused bottles of the plan.
    fake.ghcr.clear_log();
    let out = ws.sync(&["--repository", "brew"]);
    assert!(out.contains("new: 4") && out.contains("failed: 0"), "{out}");
    let tahoe_sha = hello.bottle("arm64_tahoe").unwrap().sha256.clone();
    let expected: BTreeSet<String> =
        [corrupt_sha, ca.bottle("all").unwrap().sha256.clone(), stale_sha, tahoe_sha].into_iter().collect();
    assert_eq!(downloaded(&fake), expected);
    brew_installs_everything(&ws, &fake);
}
