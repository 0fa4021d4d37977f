//! What a run costs on AWS, counted by tests/localaws for three executions:
//! an idle hourly run, a run that adds one package, and a forced rebuild of a
//! store of 2,000 entries. For each: Lambda invocations and GB-seconds (at the
//! memory size CDK gives each function; durations are those of debug builds
//! here, an upper bound), state transitions (as Step Functions bills them),
//! S3 requests by pricing tier, DynamoDB read and write request units and
//! Scans. The idle run's budget is asserted: at most 5 state transitions, one
//! invocation, no Scan. `bench/aws-cost.sh` prints the table and the monthly
//! figure that bench/README.md records.

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::store::PackageStore;
use serde_json::{Value, json};

/// One execution's bill of materials.
#[derive(Debug)]
struct Cost {
    what: &'static str,
    transitions: u64,
    invocations: u64,
    gb_seconds: f64,
    s3_tier1: u64,
    s3_tier2: u64,
    read_units: f64,
    write_units: f64,
    scans: u64,
    sns: u64,
    secrets: u64,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

async fn measured(aws: &Aws, what: &'static str, input: Value) -> (Value, Cost) {
    aws.reset_meter().await;
    let r = aws.execute(input).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let meter = aws.meter().await;
    // Only what the deployment's own principals did (not the operator's reads here).
    let callers = meter["callers"].as_object().unwrap();
    let sum = |service: &str, field: &str| -> f64 {
        callers.iter().filter(|(c, _)| c.as_str() != "admin").map(|(_, s)| num(&s[service][field])).sum()
    };
    let cost = Cost {
        what,
        transitions: r["counts"]["stateTransitions"].as_u64().unwrap(),
        invocations: r["counts"]["lambdaInvocations"].as_u64().unwrap(),
        gb_seconds: num(&r["counts"]["lambdaGbSeconds"]),
        s3_tier1: sum("s3", "tier1") as u64,
        s3_tier2: sum("s3", "tier2") as u64,
        read_units: sum("dynamodb", "readRequestUnits"),
        write_units: sum("dynamodb", "writeRequestUnits"),
        scans: sum("dynamodb", "scans") as u64,
        sns: sum("sns", "publishes") as u64,
        secrets: sum("secretsmanager", "requests") as u64,
    };
    eprintln!("{what}: {cost:?}\n  meter by caller: {}", serde_json::to_string(&meter["callers"]).unwrap());
    (r, cost)
}

/// US East (N. Virginia) list prices, dated where we read them: Step Functions
/// standard $0.025 per 1,000 state transitions (pricing page, unchanged in a
/// 2026-03 guide); Lambda arm64 $0.0000133334 per GB-second and $0.20 per
/// million requests; S3 Standard $0.005 per 1,000 PUT/COPY/POST/LIST and $0.0004
/// per 1,000 GET/HEAD; DynamoDB on demand $0.625 per million write and $0.125 per
/// million read request units (since the 2024-11 reduction, as of 2025-07);
/// Secrets Manager $0.05 per 10,000 calls; SNS $0.50 per million publishes.
/// Free tiers are left out: the figure is what the pipeline itself costs.
fn dollars(c: &Cost) -> f64 {
    c.transitions as f64 * 0.025 / 1000.0
        + c.gb_seconds * 0.000_013_333_4
        + c.invocations as f64 * 0.20 / 1e6
        + c.s3_tier1 as f64 * 0.005 / 1000.0
        + c.s3_tier2 as f64 * 0.0004 / 1000.0
        + c.write_units * 0.625 / 1e6
        + c.read_units * 0.125 / 1e6
        + c.secrets as f64 * 0.05 / 10_000.0
        + c.sns as f64 * 0.50 / 1e6
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_run_costs() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    publish_kiro(&up, "0.7.44");
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");

    // 1. Idle: nothing new upstream, the Release still fresh.
    let (r, idle) = measured(&aws, "idle hourly run", json!({"trigger": "schedule"})).await;
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert!(idle.transitions <= 5, "{idle:?}");
    assert_eq!(idle.invocations, 1, "{idle:?}");
    assert_eq!(idle.scans, 0, "an idle run reads no table whole: {idle:?}");

    // 2. One new release.
    publish_kiro(&up, "0.7.45");
    let (_, one) = measured(&aws, "run adding one package", json!({"trigger": "schedule"})).await;
    assert_eq!(one.scans, 1, "{one:?}");

    // 3. A forced rebuild of 2,000 entries, seeded straight into the table
    //    (BatchWriteItem, 25 at a time; build-index needs no pool file).
    let store = aws.store().await;
    let template = store.get("kiro#0.7.45#amd64").await.unwrap().unwrap();
    let db = aws.dynamodb().await;
    let entries: Vec<_> = (0..1998)
        .map(|i| {
            let mut e = template.clone();
            e.version = format!("1.{}.{}", i / 100, i % 100);
            e.package_id = format!("kiro#{}#amd64", e.version);
            e.filename = format!("pool/main/k/kiro/kiro_{}_amd64.deb", e.version);
            e.checksums.sha256 = format!("{i:064x}");
            e
        })
        .collect();
    for chunk in entries.chunks(25) {
        let writes = chunk
            .iter()
            .map(|e| {
                let item = serde_dynamo::to_item(e).unwrap();
                let put = aws_sdk_dynamodb::types::PutRequest::builder().set_item(Some(item)).build().unwrap();
                aws_sdk_dynamodb::types::WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = db.batch_write_item().request_items(&aws.packages_table, writes).send().await.unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()), "moto processes every item");
    }
    let (r, rebuild) = measured(&aws, "forced rebuild of 2,000 entries", json!({"force_rebuild": true})).await;
    assert_eq!(r["output"]["publish"]["packages"], 2000, "{r:#}");

    let month = 720.0 * dollars(&idle) + 4.0 * dollars(&one);
    println!("| run | state transitions | Lambda invocations | GB-seconds | S3 PUT/COPY/POST/LIST | S3 GET/HEAD | DynamoDB RRU | DynamoDB WRU | Scans | SNS | Secrets Manager calls | cost |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in [&idle, &one, &rebuild] {
        println!(
            "| {} | {} | {} | {:.2} | {} | {} | {:.1} | {:.1} | {} | {} | {} | ${:.6} |",
            c.what,
            c.transitions,
            c.invocations,
            c.gb_seconds,
            c.s3_tier1,
            c.s3_tier2,
            c.read_units,
            c.write_units,
            c.scans,
            c.sns,
            c.secrets,
            dollars(c)
        );
    }
    println!("monthly: 720 idle runs + 4 releases = ${month:.4} (forced rebuild of 2,000 entries: ${:.4} each)", dollars(&rebuild));
}
