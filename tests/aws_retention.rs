//! Retention on AWS's terms (tests/localaws in front of moto): publish
//! deletes what no published generation within the grace period references
//! — a pruned version's pool files, replaced by-hash index files, replaced
//! generations' manifests — under its role's synthesized policy
//! (`CollectUnreferenced`, `WriteRetentionLedger` in cdk/lib/functions.ts),
//! and a real apt client reads the repository through the CloudFront
//! stand-in throughout. Without the delete grant the publish still succeeds
//! (the generation is live), nothing leaves, and the next run with the grant
//! collects it.

mod common;

use common::aws::*;
use common::*;
use serde_json::{Value, json};

fn succeeded(r: &Value) -> &Value {
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_states_within_limit(r);
    let retention = &r["output"]["publish"]["retention"];
    assert!(retention.is_object(), "the summary carries retention: {:#}", r["output"]["summary"]);
    assert_eq!(r["output"]["summary"]["publish"]["retention"], *retention, "SNS's summary carries it too");
    retention
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_collects_what_no_generation_within_grace_references() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    // kiro keeps one version; no grace period, so that one run shows it.
    let package = ws.path("config/packages/kiro.yaml");
    let text = std::fs::read_to_string(&package).unwrap().replacen("source:", "keep: 1\nsource:", 1);
    std::fs::write(&package, text).unwrap();
    let repository = ws.path("config/repository.yaml");
    let text = std::fs::read_to_string(&repository).unwrap();
    assert!(text.contains("\n  grace: 7d\n"), "repository.yaml sets retention.grace");
    std::fs::write(&repository, text.replace("\n  grace: 7d\n", "\n  grace: 0s\n")).unwrap();
    let aws = Aws::setup(&ws).await;

    publish_kiro(&up, "0.7.44");
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    let retention = succeeded(&r);
    assert_eq!(retention["deleted"], 0, "{retention}");
    let pool = |v: &str, suffix: &str| format!("pool/main/k/kiro/kiro_{v}_amd64.{suffix}");
    let by_hash_1: Vec<String> = list(&aws, "dists/stable/main/binary-amd64/by-hash/").await;
    assert!(!by_hash_1.is_empty());

    // publish may not delete: the new generation goes live all the same, and
    // nothing leaves.
    let removed = aws.remove_statement("publish", "CollectUnreferenced").await;
    assert_eq!(removed["removed"]["Action"], "s3:DeleteObject", "{removed}");
    publish_kiro(&up, "0.7.45");
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    let retention = succeeded(&r).clone();
    assert_eq!(retention["deleted"], 0, "{retention}");
    assert!(retention["deferred"].as_u64().unwrap() >= 3, "the .deb, .pem and .sig of 0.7.44: {retention}");
    let denied: Vec<Value> = aws.denials().await;
    assert!(
        denied
            .iter()
            .any(|d| d.to_string().contains("s3:DeleteObject") && d.to_string().contains(&pool("0.7.44", "deb"))),
        "{denied:#?}"
    );
    assert!(aws.get(&pool("0.7.44", "deb")).await.is_some());
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45"]);
    aws.restore_policy("publish").await;

    // With the grant, the next publish (a refresh, here forced) collects:
    // 0.7.44's pool files, generation 1's by-hash files, and generation 1's
    // manifest (generation 2's waits one more publish).
    let r = aws.execute(json!({"trigger": "manual", "force_rebuild": true})).await;
    let retention = succeeded(&r).clone();
    for suffix in ["deb", "pem", "sig"] {
        assert_eq!(aws.get(&pool("0.7.44", suffix)).await, None, "{suffix}: {retention}");
        assert!(aws.get(&pool("0.7.45", suffix)).await.is_some(), "{suffix}");
    }
    let by_hash_now = list(&aws, "dists/stable/main/binary-amd64/by-hash/").await;
    assert!(by_hash_1.iter().any(|k| !by_hash_now.contains(k)), "{by_hash_1:?} {by_hash_now:?}");
    assert!(retention["deleted"].as_u64().unwrap() >= 4, "{retention}");
    assert_eq!(retention["deleted_generations"], 1, "{retention}");
    assert_eq!(aws.get("generations/stable/00000001/manifest.json").await, None);
    assert!(aws.get("generations/stable/00000002/manifest.json").await.is_some());
    assert!(aws.get("generations/stable/retention.json").await.is_some(), "the ledger");
    // Through the CloudFront stand-in, apt is clean and fetches the package.
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45"]);
    let (ok, text) = apt.run("apt-get", &["download", "kiro"]);
    assert!(ok, "{text}");
    let denied_now = aws.denials().await;
    assert_eq!(denied_now.len(), denied.len(), "no new denial: {denied_now:#?}");

    // An idle run stops before build-index: it reads no ledger, deletes nothing.
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert_eq!(r["counts"]["lambdaInvocations"], 1, "{}", r["counts"]);
}

/// Keys under `prefix` in the deployment's bucket.
async fn list(aws: &Aws, prefix: &str) -> Vec<String> {
    let out = aws.s3.list_objects_v2().bucket(&aws.bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}
