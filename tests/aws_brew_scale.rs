//! A full Homebrew mirror on AWS's terms: ~30,000 bottles (every formula ×
//! six tags) recorded in the mirror's packages table, then a forced run
//! through the deployed state machine, so that build-index renders and
//! writes every image index and publish writes every manifest, the
//! `bottles_hash.json` and 30,000 names into the CloudFront key value store
//! within the functions' memory sizes and timeouts as CDK gives them
//! (localaws enforces both), and the state payloads stay within 256 KiB.
//!
//! The bottles are not downloaded here (tests/aws_brew_mirror.rs downloads
//! real fixture bottles through the same steps): the entries are copies of
//! one the pipeline recorded, with their own names and digests, and the API
//! snapshot names them all (a mirror lists what its API files reference).
//! One test binary, run once (it takes minutes).

mod common;

use common::aws::*;
use common::brew::*;
use common::*;
use pkgrelay_core::brew::BrewMetadata;
use pkgrelay_core::model::{EntryMetadata, PackageEntry};
use serde_json::{Value, json};
use std::time::Instant;

/// Bottles of a full mirror: ~7,000 formulae, most with all six tags.
const FULL_MIRROR: usize = 30_000;

fn sha_of(i: usize) -> String {
    sha256(format!("bottle {i}").as_bytes())
}

/// The `i`-th bottle: formula `f<i/6>`, tag `i % 6`, its own digest.
fn bottle(template: &PackageEntry, i: usize) -> PackageEntry {
    let EntryMetadata::Brew(meta) = &template.metadata else { panic!("not a bottle: {template:?}") };
    let tag = PLATFORM_TAGS[i % PLATFORM_TAGS.len()];
    let sha = sha_of(i);
    let mut descriptor = meta.descriptor.clone().expect("a recorded bottle has its image-index entry");
    descriptor["digest"] = json!(format!("sha256:{sha}"));
    descriptor["annotations"]["sh.brew.bottle.digest"] = json!(sha);
    descriptor["annotations"]["org.opencontainers.image.ref.name"] = json!(format!("1.0.{tag}"));
    let meta = BrewMetadata {
        formula: format!("f{:05}", i / PLATFORM_TAGS.len()),
        pkg_version: "1.0".into(),
        tag: tag.into(),
        rebuild: 0,
        cellar: meta.cellar.clone(),
        sha256: sha.clone(),
        descriptor: Some(descriptor),
    };
    let mut e = template.clone();
    e.package_id = format!("{}#1.0#{tag}", meta.formula);
    e.package_name = meta.formula.clone();
    e.version = "1.0".into();
    e.architecture = tag.into();
    e.filename = format!("blobs/sha256/{sha}");
    e.checksums.sha256 = sha;
    e.metadata = EntryMetadata::Brew(meta);
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_mirror_is_rendered_and_published_within_the_functions_limits() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = Workspace::new(&up);
    configure_mirror(&ws, &fake, &PLATFORM_TAGS);
    let aws = Aws::setup(&ws).await;
    let input = json!({"trigger": "manual", "repository": "brew"});
    // PKGRELAY_SCALE_BOTTLES: a smaller mirror, to profile.
    let bottles: usize = std::env::var("PKGRELAY_SCALE_BOTTLES").ok().and_then(|v| v.parse().ok()).unwrap_or(FULL_MIRROR);

    // One real run records the fixtures' bottles: the template entry.
    let r = aws.execute(input.clone()).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let tables: Value =
        serde_json::from_str(aws.info["functions"]["publish"]["environment"]["PACKAGES_TABLES"].as_str().unwrap())
            .unwrap();
    let table = tables["brew"].as_str().unwrap().to_owned();
    let dynamodb = aws.dynamodb().await;
    let scanned = dynamodb.scan().table_name(&table).limit(1).send().await.unwrap();
    let template: PackageEntry = serde_dynamo::from_item(scanned.items()[0].clone()).unwrap();

    // 30,000 bottles into the table, 25 an item batch, 8 batches at once.
    let started = Instant::now();
    let items: Vec<_> = (0..bottles)
        .map(|i| {
            let item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
                serde_dynamo::to_item(bottle(&template, i)).unwrap();
            aws_sdk_dynamodb::types::WriteRequest::builder()
                .put_request(aws_sdk_dynamodb::types::PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    let batches: Vec<Vec<_>> = items.chunks(25).map(<[_]>::to_vec).collect();
    let writes = futures_util::stream::iter(batches.into_iter().map(|batch| {
        let (dynamodb, table) = (dynamodb.clone(), table.clone());
        async move {
            let mut pending = batch;
            while !pending.is_empty() {
                let out = dynamodb.batch_write_item().request_items(&table, pending).send().await.unwrap();
                pending = out.unprocessed_items().and_then(|u| u.get(&table)).cloned().unwrap_or_default();
            }
        }
    }));
    futures_util::StreamExt::collect::<Vec<()>>(futures_util::StreamExt::buffer_unordered(writes, 8)).await;
    // The mirror lists the bottles its API files reference (retention): the
    // API snapshot check-sources kept names them all, as formula.json
    // would for a full mirror.
    let snapshot_key = pkgrelay_core::brew::snapshot_key("brew");
    let mut snapshot: pkgrelay_core::brew::ApiSnapshot =
        serde_json::from_slice(&aws.get(&snapshot_key).await.expect("the first run's API snapshot")).unwrap();
    snapshot.bottles.extend((0..bottles).map(|i| {
        let EntryMetadata::Brew(mut meta) = bottle(&template, i).metadata else { unreachable!() };
        meta.descriptor = None;
        meta
    }));
    aws.put(&snapshot_key, serde_json::to_vec(&snapshot).unwrap()).await;
    eprintln!("seeded {bottles} bottles in {:.1} s", started.elapsed().as_secs_f64());

    // A forced run: check-sources asks no source; build-index reads the whole
    // table and renders; publish writes it all.
    let started = Instant::now();
    let mut forced = input.clone();
    forced["force_rebuild"] = json!(true);
    let r = aws.execute(forced).await;
    if r["status"] != "SUCCEEDED" {
        let logs = aws.all_logs().await;
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        panic!("{:#}\nlast log lines:\n{}", json!({"error": r["error"], "cause": r["cause"]}), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    assert_states_within_limit(&r);
    // How long each state took (its entered and exited events).
    let mut entered: std::collections::HashMap<String, f64> = Default::default();
    for e in r["events"].as_array().unwrap() {
        let t = e["timestamp"].as_f64().unwrap_or(0.0);
        if let Some(name) = e["stateEnteredEventDetails"]["name"].as_str() {
            entered.insert(name.to_owned(), t);
        }
        if let Some(name) = e["stateExitedEventDetails"]["name"].as_str()
            && let Some(t0) = entered.get(name)
            && t - t0 > 1.0
        {
            eprintln!("  {name}: {:.1} s", t - t0);
        }
    }
    eprintln!("forced run over {bottles} bottles: {:.1} s, {}", started.elapsed().as_secs_f64(), r["counts"]);
    let published = r["output"]["publish"]["packages"].as_u64().unwrap() as usize;
    assert!(published >= bottles, "{}", r["output"]["publish"]);

    // Every bottle name resolves through the key value store; one image
    // index per formula version, at both names; bottles_hash.json lists all.
    let kvs = admin(reqwest::Method::GET, &format!("deployments/{}/kvs", aws.id), None).await;
    let store = &kvs["stores"][0];
    assert!(store["ItemCount"].as_u64().unwrap() as usize >= bottles, "{kvs}");
    assert!(store["TotalSizeInBytes"].as_u64().unwrap() < 5 * 1024 * 1024, "within CloudFront's 5 MB: {kvs}");
    eprintln!("key value store: {} names, {} bytes", store["ItemCount"], store["TotalSizeInBytes"]);
    let hashes: Value = serde_json::from_slice(&aws.get("brew/bottles_hash.json").await.unwrap()).unwrap();
    assert!(hashes.as_object().unwrap().len() >= bottles);
    let last = bottles - 1;
    let image = format!("f{:05}", last / PLATFORM_TAGS.len());
    for at in [format!("brew/bottles/{image}/manifests/1.0"), format!("brew/v2/homebrew/core/{image}/manifests/1.0")] {
        let index: Value = serde_json::from_slice(&aws.get(&at).await.unwrap_or_else(|| panic!("{at}"))).unwrap();
        assert!(
            index["manifests"].as_array().unwrap().iter().any(|m| m["digest"] == json!(format!("sha256:{}", sha_of(last)))),
            "{at}: {index}"
        );
    }
}
