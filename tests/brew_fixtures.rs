//! The Homebrew fixtures checked against brew's rules and against each other:
//! the fake formulae API and fake ghcr (tests/common/brew.rs) read by the
//! brew-equivalent client, directly and through a mirror laid out by hand.
//! The product is not involved: these tests pin what the fakes and the client
//! do, so that the pipeline tests can trust them.

mod common;

use common::brew::*;
use common::http_date;
use std::collections::BTreeSet;

/// Examples written in brew's own source, specs and docs.
#[test]
fn rules_restate_brews_examples() {
    use rules::*;
    // test/bottle_spec.rb "renders the bottle filename" (the cache name, `--`).
    assert_eq!(
        cache_basename("testball_bottle", "0.1", "arm64_big_sur", 0),
        "testball_bottle--0.1.arm64_big_sur.bottle.tar.gz"
    );
    // Bottle::Filename#url_encode: a single `-`; `.rebuild` only when > 0.
    assert_eq!(bottle_basename("foo", "1.2.3", "arm64_sonoma", 0), "foo-1.2.3.arm64_sonoma.bottle.tar.gz");
    assert_eq!(bottle_basename("foo", "1.2.3", "arm64_sonoma", 2), "foo-1.2.3.arm64_sonoma.bottle.2.tar.gz");
    // ERB::Util.url_encode keeps [A-Za-z0-9_.~-] only.
    assert_eq!(flat_bottle_path("openssl@3", "3.5.2", "sonoma", 0), "openssl%403-3.5.2.sonoma.bottle.tar.gz");
    assert_eq!(
        flat_bottle_path("gtk+3", "3.24.49_1", "x86_64_linux", 0),
        "gtk%2B3-3.24.49_1.x86_64_linux.bottle.tar.gz"
    );
    assert_eq!(url_encode("a b/c~d_e.f-g"), "a%20b%2Fc~d_e.f-g");
    // PkgVersion#to_s.
    assert_eq!(pkg_version("3.24.49", 0), "3.24.49");
    assert_eq!(pkg_version("3.24.49", 1), "3.24.49_1");
    // GitHubPackages.image_formula_name.
    assert_eq!(image_name("openssl@3"), "openssl/3");
    assert_eq!(image_name("gtk+3"), "gtkx3");
    assert_eq!(image_name("libsigc++@2"), "libsigcxx/2");
    // GitHubPackages.version_rebuild: the manifest's tag and an entry's ref name.
    assert_eq!(version_rebuild("1.2.3", 0, None), "1.2.3");
    assert_eq!(version_rebuild("1.2.3", 2, None), "1.2.3-2");
    assert_eq!(version_rebuild("1.2.3", 0, Some("arm64_sonoma")), "1.2.3.arm64_sonoma");
    assert_eq!(version_rebuild("1.2.3", 2, Some("arm64_sonoma")), "1.2.3.arm64_sonoma.2");
    assert!(
        valid_oci_tag("3.24.49_1-2") && valid_oci_tag("2025-09-09-1") && !valid_oci_tag("-1") && !valid_oci_tag("1+2")
    );
    // env_config.rb's HOMEBREW_ARTIFACT_DOMAIN examples.
    assert_eq!(
        artifact_rewrite("https://ghcr.io/v2/homebrew/core/gettext/manifests/0.21", "http://localhost:8080"),
        "http://localhost:8080/v2/homebrew/core/gettext/manifests/0.21"
    );
    assert_eq!(
        artifact_rewrite(
            "https://ghcr.io/v2/homebrew/core/gettext/manifests/0.21",
            "https://mirror.example.com/v2/ghcr-io/"
        ),
        "https://mirror.example.com/v2/ghcr-io/homebrew/core/gettext/manifests/0.21"
    );
    assert_eq!(
        artifact_rewrite("https://example.com/foo.tar.gz", "http://localhost:8080"),
        "https://example.com/foo.tar.gz"
    );
    // Collector#find_matching_tag: own tag, else `all`, else (macOS) an older one for the same arch.
    assert_eq!(resolve_tag(&["arm64_sonoma", "all"], "arm64_sonoma"), Some("arm64_sonoma"));
    assert_eq!(resolve_tag(&["arm64_sonoma", "all"], "x86_64_linux"), Some("all"));
    assert_eq!(resolve_tag(&["arm64_sequoia", "arm64_sonoma", "sonoma"], "arm64_tahoe"), Some("arm64_sequoia"));
    assert_eq!(resolve_tag(&["arm64_sequoia", "sonoma"], "arm64_sonoma"), None);
    assert_eq!(resolve_tag(&["x86_64_linux"], "arm64_linux"), None);
    assert_eq!(resolve_tag(&["sonoma"], "sonoma"), Some("sonoma"));

    // test/bottle_spec.rb "falls back to GHCR for a custom bottle domain":
    // the manifest at `<domain>/foo/manifests/1.2.3`, GHCR as its mirror.
    let domain = "http://mirror.example.com/homebrew-bottles";
    let client = BrewClient::new("arm64_sonoma", "http://mirror.example.com/api").bottle_domain(domain);
    let b = BottleRef {
        name: "foo".into(),
        pkg_version: "1.2.3".into(),
        rebuild: 0,
        tag: "arm64_sonoma".into(),
        sha256: "d7b9f4e8bf83608b71fe958a99f19f2e5e68bb2582965d32e41759c24f1aef97".into(),
        cellar: ":any_skip_relocation".into(),
    };
    let urls = client.urls(&b);
    assert_eq!(urls.manifest, format!("{domain}/foo/manifests/1.2.3"));
    assert_eq!(urls.manifest_fallback.as_deref(), Some("https://ghcr.io/v2/homebrew/core/foo/manifests/1.2.3"));
    assert_eq!(urls.bottle, format!("{domain}/foo-1.2.3.arm64_sonoma.bottle.tar.gz"));
    assert!(!urls.bottle_ghcr_style);
    assert_eq!(
        urls.authorization.as_deref(),
        Some("Bearer QQ=="),
        "the manifest strategy sends brew's anonymous bearer"
    );
    // The default domain: ghcr-style blobs; an artifact domain rewrites it and drops the header.
    let ghcr = BrewClient::new("arm64_sonoma", "http://x/api").urls(&b);
    assert_eq!(ghcr.bottle, format!("https://ghcr.io/v2/homebrew/core/foo/blobs/sha256:{}", b.sha256));
    let art = BrewClient::new("arm64_sonoma", "http://x/api").artifact_domain("http://127.0.0.1:9").urls(&b);
    assert_eq!(art.bottle, format!("http://127.0.0.1:9/v2/homebrew/core/foo/blobs/sha256:{}", b.sha256));
    assert_eq!(art.manifest, "http://127.0.0.1:9/v2/homebrew/core/foo/manifests/1.2.3");
    assert_eq!(art.bottle_fallback.as_deref(), Some(ghcr.bottle.as_str()));
    assert_eq!(
        art.authorization, None,
        "no Authorization with an artifact domain and no registry token (brew ≥ 4.5.3)"
    );
    let art_token = BrewClient::new("arm64_sonoma", "http://x/api")
        .artifact_domain("http://127.0.0.1:9")
        .docker_registry_token("QQ==");
    assert_eq!(art_token.urls(&b).authorization.as_deref(), Some("Bearer QQ=="));
    // A ghcr-shaped bottle domain is canonicalised and stays ghcr-style.
    assert_eq!(
        canonical_ghcr_root("https://ghcr.io/v2/MyOrg/homebrew-tap").as_deref(),
        Some("https://ghcr.io/v2/myorg/tap")
    );
}

/// The fixture set covers issue 13's list, and its bottles are real,
/// deterministic gzipped tarballs of `<name>/<pkg_version>/...`.
#[test]
fn fixtures_cover_the_issue() {
    let set = fixture_formulae();
    let again = fixture_formulae();
    for (a, b) in set.iter().zip(&again) {
        for (x, y) in a.bottles.iter().zip(&b.bottles) {
            assert_eq!(x.bytes, y.bytes, "{} {}: bottles differ between two builds", a.name, x.tag);
        }
    }
    assert!(set.iter().any(|f| !f.name.contains(['@', '+']) && f.revision == 0 && f.rebuild == 0), "a plain formula");
    assert!(set.iter().any(|f| f.name.contains('@')), "a formula with @");
    assert!(set.iter().any(|f| f.name.contains('+')), "a formula with +");
    assert!(set.iter().any(|f| f.revision > 0), "revision > 0");
    assert!(set.iter().any(|f| f.rebuild > 0), "rebuild > 0");
    let tags: BTreeSet<&str> = set.iter().flat_map(|f| f.bottles.iter().map(|b| b.tag.as_str())).collect();
    assert_eq!(tags, TAGS.iter().copied().collect(), "every tag appears");
    let cellars: Vec<&Cellar> = set.iter().flat_map(|f| f.bottles.iter().map(|b| &b.cellar)).collect();
    assert!(cellars.contains(&&Cellar::Any) && cellars.contains(&&Cellar::AnySkipRelocation));
    assert!(cellars.iter().any(|c| matches!(c, Cellar::Path(p) if p == "/opt/homebrew/Cellar")));
    assert!(cellars.iter().any(|c| matches!(c, Cellar::Path(p) if p == "/home/linuxbrew/.linuxbrew/Cellar")));

    let hello = set.iter().find(|f| f.name == "hello").unwrap();
    assert_eq!(
        hello.bottle("arm64_sequoia").unwrap().sha256,
        hello.bottle("arm64_sonoma").unwrap().sha256,
        "one blob, two names"
    );
    let mut digests = BTreeSet::new();
    let dir = tempfile::tempdir().unwrap();
    for f in &set {
        for b in &f.bottles {
            assert_eq!(common::sha256(&b.bytes), b.sha256);
            assert!(b.bytes.starts_with(&[0x1f, 0x8b]), "gzip");
            if !digests.insert(b.sha256.clone()) {
                continue;
            }
            // tar itself reads it: entries under <name>/<pkg_version>/.
            let path = dir.path().join(&b.sha256);
            std::fs::write(&path, &*b.bytes).unwrap();
            let out = std::process::Command::new("tar").arg("-tzf").arg(&path).output().unwrap();
            assert!(out.status.success(), "{} {}: tar -tzf: {}", f.name, b.tag, String::from_utf8_lossy(&out.stderr));
            let listing = String::from_utf8(out.stdout).unwrap();
            let root = format!("{}/{}/", f.name, f.pkg_version());
            assert!(listing.lines().all(|l| l == format!("{}/", f.name) || l.starts_with(&root)), "{listing}");
            assert!(listing.contains(&format!("{root}INSTALL_RECEIPT.json")), "{listing}");
            let tab: serde_json::Value = serde_json::from_str(&b.tab).unwrap();
            assert_eq!(tab.get("arch").is_none(), b.tag == "all", "an all bottle's tab has no arch");
        }
    }
    // A bigger bottle for streaming tests is still valid.
    let big = formula("bigfile", "1.0").payload(3 << 20).bottle("arm64_linux", Cellar::Any).build();
    let b = &big.bottles[0];
    assert!(b.bytes.len() > 3 << 20);
    let path = dir.path().join("big.tar.gz");
    std::fs::write(&path, &*b.bytes).unwrap();
    assert!(std::process::Command::new("gzip").arg("-t").arg(&path).status().unwrap().success());
}

/// The fake formulae API: formula.json's fields where brew has them, JWS files
/// of the shape brew checks, Last-Modified and 304, HEAD, gzip when asked.
#[test]
fn fake_api_serves_brews_files() {
    let fake = FakeBrew::start(fixture_formulae());
    let api = fake.api_domain();

    // formula.json
    let r = request("GET", &format!("{api}/formula.json"), &[]).unwrap();
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        text.starts_with("[{\"name\":\"hello\",\"full_name\":\"hello\","),
        "to_hash order, no whitespace: {}",
        &text[..80]
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), fixture_formulae().len());
    for (e, f) in entries.iter().zip(fixture_formulae()) {
        assert_eq!(e["name"], f.name.as_str());
        assert_eq!(e["full_name"], f.name.as_str());
        assert_eq!(e["versions"]["stable"], f.version.as_str());
        assert_eq!(e["versions"]["bottle"], true);
        assert_eq!(e["revision"], f.revision);
        let stable = &e["bottle"]["stable"];
        assert_eq!(stable["rebuild"], f.rebuild);
        assert_eq!(stable["root_url"], fake.ghcr_root().as_str());
        for b in &f.bottles {
            let file = &stable["files"][&b.tag];
            assert_eq!(file["sha256"], b.sha256.as_str());
            assert_eq!(file["cellar"], b.cellar.as_api_str().as_str());
            assert_eq!(file["url"], format!("{}/{}/blobs/sha256:{}", fake.ghcr_root(), f.image(), b.sha256).as_str());
        }
        assert!(e["variations"].is_object() && e["dependencies"].is_array() && e["desc"].is_string());
    }
    let index = ApiIndex::from_formula_json(&r.body).unwrap();
    assert_eq!(index.all_bottles().len(), fake.bottle_pairs().len());

    // The signed files: shape brew requires; payloads that parse.
    for name in api_file_names() {
        let r = request("GET", &format!("{api}/{name}"), &[]).unwrap();
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.body, fake.api_file(&name).bytes, "{name}");
        let lm = r.header("last-modified").unwrap_or_else(|| panic!("{name}: no Last-Modified"));
        assert!(r.header("etag").is_some());
        if name.ends_with(".jws.json") {
            let jws = parse_jws(&r.body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(jws.kid, "homebrew-1");
            assert_eq!(jws.protected["alg"], "PS512");
            let payload: serde_json::Value =
                serde_json::from_str(&jws.payload).unwrap_or_else(|e| panic!("{name}: payload {e}"));
            if let Some(tag) = name.strip_prefix("internal/packages.").and_then(|n| n.strip_suffix(".jws.json")) {
                assert_eq!(payload["metadata"]["bottle_tag"], tag);
                assert!(payload["formulae"]["hello"]["bottle_checksum"].is_string(), "{name}");
                assert_eq!(payload["formulae"]["ca-certificates"]["bottle_tag"], "all", "{name}");
            }
        }
        // Conditional requests: 304 to the same date or later, 200 to an earlier one.
        let r304 = request("GET", &format!("{api}/{name}"), &[("If-Modified-Since", lm)]).unwrap();
        assert_eq!((r304.status, r304.body.len()), (304, 0), "{name}");
        let r200 = request("GET", &format!("{api}/{name}"), &[("If-Modified-Since", &http_date(-3))]).unwrap();
        assert_eq!(r200.status, 200, "{name}");
        let etag = r.header("etag").unwrap();
        assert_eq!(request("GET", &format!("{api}/{name}"), &[("If-None-Match", etag)]).unwrap().status, 304);
        let head = request("HEAD", &format!("{api}/{name}"), &[]).unwrap();
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(head.header("content-length"), Some(r.body.len().to_string().as_str()));
    }
    assert_eq!(request("GET", &format!("{api}/nope.jws.json"), &[]).unwrap().status, 404);

    // curl --compressed: gzip on the wire, the same bytes once decoded.
    let client = BrewClient::new("arm64_sequoia", &api);
    let got = client.fetch_api_file("internal/packages.arm64_sequoia.jws.json", None).unwrap();
    assert_eq!(got.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(got.bytes, fake.api_file("internal/packages.arm64_sequoia.jws.json").bytes);
    let lm = got.last_modified.unwrap();
    let again = client.fetch_api_file("internal/packages.arm64_sequoia.jws.json", Some(&lm)).unwrap();
    assert_eq!((again.status, again.bytes.len()), (304, 0));
}

/// A new upstream generation: changed files get a later Last-Modified, a
/// client holding the old one gets 200 with the new bytes; unchanged files
/// still answer 304.
#[test]
fn fake_api_republishes() {
    let fake = FakeBrew::start(fixture_formulae());
    let before = fake.api_files();
    let mut next = fixture_formulae();
    next[0] = formula("hello", "2.12.3").bottles(&PLATFORM_TAGS, Cellar::AnySkipRelocation).build();
    fake.publish(next);
    let client = BrewClient::new("arm64_tahoe", &fake.api_domain());
    for (name, old) in &before {
        let r = client.fetch_api_file(name, Some(&old.last_modified)).unwrap();
        if name == "cask.jws.json" || name.contains("tap_migrations") || name.ends_with("executables.txt") {
            assert_eq!(r.status, 304, "{name} did not change");
        } else {
            assert_eq!(r.status, 200, "{name} changed");
            assert_ne!(r.bytes, old.bytes);
            assert_eq!(r.last_modified.as_deref(), Some(http_date(2).as_str()));
        }
    }
    let idx = client.packages_index().unwrap();
    assert_eq!(idx.bottle("hello", "arm64_tahoe").unwrap().pkg_version, "2.12.3");
    // ghcr keeps the old image, as ghcr does.
    assert!(fake.manifest("hello", "2.12.2").is_some() && fake.manifest("hello", "2.12.3").is_some());
}

/// The fake ghcr, raw: 401 without the bearer, a 307 for a blob to a host on
/// another port, the image index with the annotations brew reads.
#[test]
fn fake_ghcr_answers_as_ghcr() {
    let fake = FakeBrew::start(fixture_formulae());
    let ossl = fake.formula("openssl@3");
    let b = ossl.bottle("arm64_sonoma").unwrap();
    let blob = format!("{}/openssl/3/blobs/sha256:{}", fake.ghcr_root(), b.sha256);
    let manifest = format!("{}/openssl/3/manifests/3.5.2", fake.ghcr_root());

    let r = request("GET", &blob, &[]).unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("repository:homebrew/core/openssl/3:pull"));
    assert_eq!(request("GET", &manifest, &[("Accept", OCI_INDEX)]).unwrap().status, 401);

    let r = request("GET", &blob, &[("Authorization", ANONYMOUS_BEARER)]).unwrap();
    assert_eq!(r.status, 307);
    let location = r.header("location").unwrap();
    assert!(location.starts_with(&fake.blob_host.base) && fake.blob_host.base != fake.ghcr.base, "{location}");
    let bytes = request("GET", location, &[]).unwrap();
    assert_eq!((bytes.status, common::sha256(&bytes.body)), (200, b.sha256.clone()));
    let wrong_image = format!("{}/hello/blobs/sha256:{}", fake.ghcr_root(), b.sha256);
    assert_eq!(request("GET", &wrong_image, &[("Authorization", ANONYMOUS_BEARER)]).unwrap().status, 404);

    let r = request("GET", &manifest, &[("Authorization", ANONYMOUS_BEARER), ("Accept", OCI_INDEX)]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.starts_with("{\n  \"schemaVersion\": 2,\n  \"manifests\": ["), "pretty_generate: {text}");
    let index: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), ossl.bottles.len());
    for (e, b) in entries.iter().zip(&ossl.bottles) {
        let a = &e["annotations"];
        assert_eq!(a["org.opencontainers.image.ref.name"], format!("3.5.2.{}", b.tag).as_str());
        assert_eq!(a["sh.brew.bottle.digest"], b.sha256.as_str());
        let tab: serde_json::Value = serde_json::from_str(a["sh.brew.tab"].as_str().unwrap()).unwrap();
        assert!(tab["homebrew_version"].is_string());
        // The entry's digest names an image manifest the registry serves, whose layer is the bottle.
        let digest = e["digest"].as_str().unwrap();
        let m = request(
            "GET",
            &format!("{}/openssl/3/manifests/{digest}", fake.ghcr_root()),
            &[("Authorization", ANONYMOUS_BEARER)],
        )
        .unwrap();
        assert_eq!((m.status, format!("sha256:{}", common::sha256(&m.body))), (200, digest.to_owned()));
        let m: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(m["layers"][0]["digest"], format!("sha256:{}", b.sha256).as_str());
        assert_eq!(m["layers"][0]["size"], b.bytes.len());
    }
    assert_eq!(index["annotations"]["org.opencontainers.image.ref.name"], "3.5.2");

    // rebuild > 0: the manifest tag has `-rebuild`, entries `.tag.rebuild`.
    let ca = fake.formula("ca-certificates");
    let r = request(
        "GET",
        &format!("{}/ca-certificates/manifests/2025-09-09-1", fake.ghcr_root()),
        &[("Authorization", ANONYMOUS_BEARER)],
    )
    .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "2025-09-09.all.1");
    assert!(index["manifests"][0].get("platform").is_none(), "an all bottle has no platform");
    assert_eq!(index["manifests"][0]["annotations"]["sh.brew.bottle.digest"], ca.bottles[0].sha256.as_str());
    assert_eq!(
        request(
            "GET",
            &format!("{}/ca-certificates/manifests/2025-09-09", fake.ghcr_root()),
            &[("Authorization", ANONYMOUS_BEARER)]
        )
        .unwrap()
        .status,
        404
    );
}

/// The client with `HOMEBREW_ARTIFACT_DOMAIN` pointed at the fake ghcr itself
/// (and `HOMEBREW_DOCKER_REGISTRY_TOKEN=QQ==`, since brew sends no bearer to an
/// artifact domain otherwise): for every machine tag, brew 6's packages file,
/// then every formula's manifest and bottle, through the redirect, checked.
#[test]
fn client_reads_the_fake_ghcr_as_artifact_domain() {
    let fake = FakeBrew::start(fixture_formulae());
    let mut covered = BTreeSet::new();
    for tag in PLATFORM_TAGS {
        let client =
            BrewClient::new(tag, &fake.api_domain()).artifact_domain(&fake.ghcr_base()).docker_registry_token("QQ==");
        let index = client.packages_index().unwrap();
        for f in fake.formulae() {
            let Some(b) = index.bottle(&f.name, tag) else {
                assert!(
                    f.packaged_bottle(tag).is_none(),
                    "{} on {tag}: the packages file has no bottle, the fixture has one",
                    f.name
                );
                continue;
            };
            let expected = f.packaged_bottle(tag).unwrap();
            assert_eq!((b.tag.as_str(), b.sha256.as_str()), (expected.tag.as_str(), expected.sha256.as_str()));
            assert_eq!(b.cellar, expected.cellar.as_api_str());
            let got = client.fetch_bottle(&b).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(*got.bytes, **expected.bytes);
            assert_eq!(got.annotations["sh.brew.tab"], expected.tab);
            assert!(got.urls.bottle.starts_with(&format!(
                "{}/v2/homebrew/core/{}/blobs/sha256:",
                fake.ghcr_base(),
                f.image()
            )));
            covered.insert((f.name.clone(), b.tag.clone()));
        }
        // The bearer went to ghcr and never to the blob host.
        for e in client.exchanges() {
            let auth = e.request_headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
            assert_eq!(auth, e.url.starts_with(&fake.ghcr.base), "{} {}", e.method, e.url);
        }
    }
    assert!(covered.contains(&("ca-certificates".into(), "all".into())));
    assert!(fake.blob_host.requests().iter().all(|r| r.header("authorization").is_none()));
    assert!(
        fake.ghcr
            .requests()
            .iter()
            .filter(|r| r.path.contains("/manifests/"))
            .all(|r| r.header("accept") == Some(OCI_INDEX))
    );
    // Every bottle of every tag but libsigc++@2's arm64_sequoia was reached
    // through some machine; that one is also reached (arm64_sequoia host).
    let all: BTreeSet<(String, String)> = fake.bottle_pairs().into_iter().collect();
    assert_eq!(covered, all, "every formula × tag");

    // Without a registry token brew sends no Authorization to an artifact
    // domain: against ghcr itself that is a 401, reported with the URL.
    let anonymous = BrewClient::new("arm64_sonoma", &fake.api_domain()).artifact_domain(&fake.ghcr_base());
    let b = anonymous.packages_index().unwrap().bottle("hello", "arm64_sonoma").unwrap();
    let err = anonymous.fetch_bottle(&b).unwrap_err();
    assert!(
        matches!(&err, BrewError::Status { status: 401, url, .. } if url.contains("/hello/manifests/2.12.2")),
        "{err}"
    );
}

/// A mirror laid out by hand in a directory behind a plain static server:
/// brew with `HOMEBREW_BOTTLE_DOMAIN` (flat names with a literal `@`,
/// manifests beside them) and with `HOMEBREW_ARTIFACT_DOMAIN` (no bearer) gets
/// every bottle; the API files are upstream's, byte for byte.
#[test]
fn client_reads_a_mirror_laid_out_by_hand() {
    let fake = FakeBrew::start(fixture_formulae());
    let dir = tempfile::tempdir().unwrap();
    lay_out_mirror(dir.path(), &fake, |name| name.to_owned());
    assert!(dir.path().join("bottles/openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz").is_file());
    assert!(dir.path().join("bottles/gtk+3-3.24.49_1.sonoma.bottle.tar.gz").is_file());
    assert!(dir.path().join("bottles/libsigcxx/2/manifests/2.12.1_1-2").is_file());
    let mirror = serve_dir(dir.path());

    api_files_identical(&fake.api_domain(), &mirror.url("/api"), &api_file_names()).unwrap();
    let mut wanted: Vec<String> = api_file_names();
    wanted.push("formula.json".into());
    api_files_identical(&fake.api_domain(), &mirror.url("/api"), &wanted).unwrap();

    for tag in PLATFORM_TAGS {
        let flat = BrewClient::new(tag, &mirror.url("/api")).bottle_domain(&mirror.url("/bottles"));
        let artifact = BrewClient::new(tag, &mirror.url("/api")).artifact_domain(&mirror.base);
        let index = flat.packages_index().unwrap();
        for f in fake.formulae() {
            let Some(b) = index.bottle(&f.name, tag) else { continue };
            let got = flat.fetch_bottle(&b).unwrap_or_else(|e| panic!("bottle domain, {tag}: {e}"));
            assert_eq!(got.bottle.sha256, f.bottle(&b.tag).unwrap().sha256);
            assert!(!got.urls.bottle_ghcr_style);
            artifact.fetch_bottle(&b).unwrap_or_else(|e| panic!("artifact domain, {tag}: {e}"));
        }
        // Flat bottles: HEAD preflight then GET; the manifest carries brew's bearer.
        let ex = flat.exchanges();
        assert!(ex.iter().any(|e| e.method == "HEAD" && e.url.contains("%40")), "{ex:?}");
        assert!(
            ex.iter()
                .filter(|e| e.url.contains("/manifests/"))
                .all(|e| e.request_headers.iter().any(|(n, v)| n == "Authorization" && v == ANONYMOUS_BEARER))
        );
        assert!(artifact.exchanges().iter().all(|e| e.request_headers.iter().all(|(n, _)| n != "Authorization")));
    }
    // What a flat mirror is asked for: `%40` and `%2B` on the wire, literal on disk.
    let paths: BTreeSet<String> = mirror.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains("/bottles/openssl%403-3.5.2.arm64_sonoma.bottle.tar.gz"));
    assert!(paths.contains("/bottles/gtk%2B3-3.24.49_1.arm64_linux.bottle.tar.gz"));
    assert!(paths.contains("/bottles/ca-certificates-2025-09-09.all.bottle.1.tar.gz"));
    assert!(paths.contains("/bottles/openssl/3/manifests/3.5.2"));
    assert!(paths.contains("/api/internal/packages.sonoma.jws.json"));

    // A mirror whose API file differs by one byte is named.
    let mut bytes = fake.api_file("cask.jws.json").bytes;
    bytes.push(b'\n');
    std::fs::write(dir.path().join("api/cask.jws.json"), bytes).unwrap();
    let err = api_files_identical(&fake.api_domain(), &mirror.url("/api"), &api_file_names()).unwrap_err();
    assert!(err.starts_with("cask.jws.json: the mirror's") && !err.contains('\n'), "{err}");
}

/// A mirror that stored the url-encoded name (`%40`) as its key: brew's `%40`
/// is decoded to `@` and the key is not found. The client names the bottle.
#[test]
fn a_mirror_that_stored_percent40_fails_by_name() {
    let fake = FakeBrew::start(fixture_formulae());
    let dir = tempfile::tempdir().unwrap();
    lay_out_mirror(dir.path(), &fake, rules::url_encode);
    assert!(dir.path().join("bottles/openssl%403-3.5.2.arm64_sonoma.bottle.tar.gz").is_file());
    let mirror = serve_dir(dir.path());
    let client = BrewClient::new("arm64_sonoma", &mirror.url("/api")).bottle_domain(&mirror.url("/bottles"));
    let index = client.packages_index().unwrap();
    let b = index.bottle("openssl@3", "arm64_sonoma").unwrap();
    let err = client.fetch_bottle(&b).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BrewError::Status { status: 404, .. }), "{text}");
    assert!(text.contains("bottle openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz"), "{text}");
    assert!(text.contains("/bottles/openssl%403-3.5.2.arm64_sonoma.bottle.tar.gz"), "{text}");
    // Names without @ or + are the same encoded or not.
    let hello = index.bottle("hello", "arm64_sonoma").unwrap();
    client.fetch_bottle(&hello).unwrap();
    // gtk+3's `%2B` was stored too: also a 404.
    let gtk = index.bottle("gtk+3", "arm64_sonoma").unwrap();
    assert!(matches!(client.fetch_bottle(&gtk), Err(BrewError::Status { status: 404, .. })));
}

/// What the client refuses: other bytes under a bottle's name, a manifest
/// without the entry brew picks, a manifest that is not JSON.
#[test]
fn client_refuses_what_brew_refuses() {
    let fake = FakeBrew::start(fixture_formulae());
    let dir = tempfile::tempdir().unwrap();
    lay_out_mirror(dir.path(), &fake, |n| n.to_owned());
    let mirror = serve_dir(dir.path());
    let client = BrewClient::new("x86_64_linux", &mirror.url("/api")).bottle_domain(&mirror.url("/bottles"));
    let index = client.packages_index().unwrap();
    let b = index.bottle("hello", "x86_64_linux").unwrap();

    // Another tag's bytes under this name (a stale or mixed-up upload).
    let other = fake.formula("hello").bottle("arm64_linux").unwrap().bytes.clone();
    std::fs::write(dir.path().join("bottles/hello-2.12.2.x86_64_linux.bottle.tar.gz"), &*other).unwrap();
    let err = client.fetch_bottle(&b).unwrap_err();
    assert!(matches!(&err, BrewError::Digest { expected, .. } if *expected == b.sha256), "{err}");

    // The manifest of a different build: no entry with this digest.
    let gtk = index.bottle("gtk+3", "x86_64_linux").unwrap();
    let stale =
        formula("gtk+3", "3.24.49").revision(1).salt("rebottled").bottles_in_default_cellar(&PLATFORM_TAGS).build();
    std::fs::write(dir.path().join("bottles/gtkx3/manifests/3.24.49_1"), image(&stale).index).unwrap();
    let err = client.fetch_bottle(&gtk).unwrap_err();
    assert!(
        matches!(&err, BrewError::Manifest { reason, .. } if reason.starts_with("Couldn't find manifest matching bottle checksum")),
        "{err}"
    );

    // A manifest that is not JSON.
    std::fs::write(dir.path().join("bottles/openssl/3/manifests/3.5.2"), "<html>").unwrap();
    let ossl = index.bottle("openssl@3", "x86_64_linux").unwrap();
    assert!(matches!(client.fetch_bottle(&ossl), Err(BrewError::Manifest { .. })));

    // A missing manifest is a 404 naming it (brew ≥ 6.0.13 would try ghcr next).
    std::fs::remove_file(dir.path().join("bottles/ca-certificates/manifests/2025-09-09-1")).unwrap();
    let ca = index.bottle("ca-certificates", "x86_64_linux").unwrap();
    let err = client.fetch_bottle(&ca).unwrap_err();
    assert!(err.to_string().contains("manifest of ca-certificates 2025-09-09-1: HTTP 404"), "{err}");
    assert_eq!(
        client.urls(&ca).manifest_fallback.as_deref(),
        Some("https://ghcr.io/v2/homebrew/core/ca-certificates/manifests/2025-09-09-1")
    );
}

/// formula.json and the packages files agree on every bottle a machine pours.
#[test]
fn formula_json_and_packages_files_agree() {
    let fake = FakeBrew::start_with_root_url(fixture_formulae(), GHCR_DEFAULT_ROOT);
    let client = BrewClient::new("arm64_sonoma", &fake.api_domain());
    let from_json = client.formula_json_index().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fake.api_file("formula.json").bytes).unwrap();
    assert_eq!(v[0]["bottle"]["stable"]["root_url"], GHCR_DEFAULT_ROOT);
    for tag in PLATFORM_TAGS {
        let from_packages = client.with_tag(tag).packages_index().unwrap();
        for f in fake.formulae() {
            let (j, p) = (from_json.bottle(&f.name, tag), from_packages.bottle(&f.name, tag));
            match &p {
                Some(_) => assert_eq!(j, p, "{} on {tag}", f.name),
                // formula.json lets a Mac pour an older macOS's bottle; the
                // fake's packages files do not list those (see packages_payload).
                None => {
                    assert!(j.as_ref().is_none_or(|b| b.tag != tag && b.tag != "all"), "{} on {tag}: {j:?}", f.name)
                }
            }
        }
    }
}

/// The planning benchmark's input: about 30 MB and 7,000 formulae, the real
/// file's field mix, deterministic.
#[test]
fn full_formula_json_is_full_size() {
    let t = std::time::Instant::now();
    let bytes = full_formula_json(7_000);
    eprintln!("full_formula_json(7000): {} bytes in {:?}", bytes.len(), t.elapsed());
    assert!((27_000_000..33_000_000).contains(&bytes.len()), "{} bytes", bytes.len());
    assert_eq!(common::sha256(&bytes), common::sha256(&full_formula_json(7_000)), "deterministic");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let entries = v.as_array().unwrap();
    assert_eq!(entries.len(), 7_000);
    let names: BTreeSet<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 7_000, "unique names");
    let count = |p: &dyn Fn(&serde_json::Value) -> bool| entries.iter().filter(|e| p(e)).count();
    assert!(count(&|e| e["name"].as_str().unwrap().contains('@')) > 100);
    assert!(count(&|e| e["name"].as_str().unwrap().contains('+')) > 10);
    assert!(count(&|e| e["revision"].as_u64().unwrap() > 0) > 300);
    assert!(count(&|e| e["bottle"]["stable"]["rebuild"].as_u64().unwrap_or(0) > 0) > 200);
    assert!(count(&|e| e["bottle"]["stable"]["files"].get("all").is_some()) > 300);
    assert!(count(&|e| e["bottle"].get("stable").is_none()) > 50, "some without bottles");
    assert!(count(&|e| e["caveats"].is_string()) > 500);
    assert!(count(&|e| e["variations"].as_object().is_some_and(|v| !v.is_empty())) > 1_000);
    let bottles: usize =
        entries.iter().map(|e| e["bottle"]["stable"]["files"].as_object().map_or(0, |m| m.len())).sum();
    assert!((30_000..45_000).contains(&bottles), "{bottles} bottles: about 30,000 for six tags");
    let idx = ApiIndex::from_formula_json(&bytes).unwrap();
    assert_eq!(idx.formulae.len(), 7_000);
}

/// Not a check: bench/brew.sh runs this to write its input, the full-size
/// formula.json above, to the file `PKGRELAY_BENCH_FORMULA_JSON` names
/// (ignored otherwise).
#[test]
#[ignore = "writes bench/brew.sh's input; run by the benchmark"]
fn write_full_formula_json_for_the_benchmark() {
    let Some(path) = std::env::var_os("PKGRELAY_BENCH_FORMULA_JSON") else { return };
    std::fs::write(&path, full_formula_json(7_000)).unwrap();
}
