//! The Kiro packages' real upstream feeds on AWS's terms (tests/localaws in
//! front of moto): the state machine CDK synthesizes, each function under its
//! own role. kiro's vendor builds (a build revision on the announced version)
//! are recognised by check-sources through the package-name index, and
//! kiro-cli's "latest" URL is asked with the validators kept in the state
//! table: an idle hourly run costs one conditional request upstream and
//! writes nothing.

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::store::PackageStore;
use serde_json::{Value, json};

const LATEST: &str = "/latest/kiro-cli.deb";
const KIRO: &str = "/releases/stable/linux-x64/signed/0.7.45/deb/kiro-ide-0.7.45-stable-linux-x64.deb";

fn serve_cli(up: &Upstream, version: &str, etag: &str, day: i64) {
    up.set(
        LATEST,
        Reply::Validated {
            body: deb("kiro-cli", version, "amd64", None),
            etag: Some(etag.to_owned()),
            last_modified: Some(http_date(day)),
        },
    );
}

fn inserted(r: &Value) -> Vec<String> {
    let mut ids: Vec<String> = r["output"]["summary"]["items"]["inserted"]
        .as_array()
        .unwrap_or_else(|| panic!("no inserted items: {r:#}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// DynamoDB write units and S3 writes the deployment's functions spent since the meter was reset.
fn writes(meter: &Value) -> (f64, u64) {
    let totals = &meter["totals"];
    let wcu = totals["dynamodb"]["writeRequestUnits"].as_f64().unwrap_or(0.0);
    let puts = totals["s3"]["byOperation"]
        .as_object()
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| op.starts_with("Put") || op.starts_with("Copy"))
                .map(|(_, n)| n.as_u64().unwrap())
                .sum()
        })
        .unwrap_or(0);
    (wcu, puts)
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_builds_and_the_latest_url_through_the_state_machine() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    ws.with_kiro_cli(&up);
    let aws = Aws::setup(&ws).await;

    // 1. kiro 0.7.45 whose .deb says 0.7.45-1763640000; kiro-cli 2.20.2 at the latest URL.
    up.set(KIRO, Reply::Body(deb("kiro", "0.7.45-1763640000", "amd64", None)));
    up.set("/signed/0.7.45/certificate.pem", Reply::Body(b"CERT 0.7.45\n".to_vec()));
    up.set("/signed/0.7.45/signature.bin", Reply::Body(b"SIG 0.7.45".to_vec()));
    up.set("/stable/metadata.json", Reply::Body(kiro_metadata(&up, "0.7.45", KIRO)));
    serve_cli(&up, "2.20.2", "\"cli-1\"", 0);
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(inserted(&r), ["kiro#0.7.45-1763640000#amd64", "kiro-cli#2.20.2#amd64"], "{r:#}");
    assert_eq!(r["output"]["summary"]["items"]["failed_count"], 0, "{r:#}");
    let store = aws.store().await;
    let cli = store.source_state("kiro-cli").await.unwrap().expect("record-metadata saved the source's record");
    assert_eq!((cli.validators.etag.as_deref(), cli.package_id.as_str()), (Some("\"cli-1\""), "kiro-cli#2.20.2#amd64"));
    let kiro = store.get("kiro#0.7.45-1763640000#amd64").await.unwrap().unwrap();
    assert_eq!(kiro.announced_version.as_deref(), Some("0.7.45"));
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45-1763640000"]);
    assert_eq!(madison(&apt, "kiro-cli"), ["2.20.2"]);

    // 2. An idle hourly run: nothing changed upstream. kiro's announced
    //    release is found through the index (under its vendor version), and
    //    kiro-cli costs one conditional request, answered 304. Nothing is
    //    downloaded, nothing written, the Choice stops the run.
    let entries = store.all().await.unwrap().len();
    let (cli_before, kiro_before) = (up.requests(LATEST).len(), up.hits(KIRO));
    aws.reset_meter().await;
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert_eq!(r["output"]["check"]["already_processed"], 1, "{}", r["output"]["check"]);
    assert_eq!(r["output"]["check"]["failures"], json!([]), "{}", r["output"]["check"]);
    let asked = &up.requests(LATEST)[cli_before..];
    assert_eq!(asked.len(), 1, "one request: {asked:#?}");
    assert_eq!(
        (asked[0].method.as_str(), asked[0].header("if-none-match"), asked[0].status),
        ("HEAD", Some("\"cli-1\""), 304)
    );
    assert_eq!(up.hits(KIRO), kiro_before, "kiro's .deb is not downloaded again");
    let meter = aws.meter().await;
    assert_eq!(writes(&meter), (0.0, 0), "an idle run writes nothing: {meter:#}");
    assert_eq!(store.all().await.unwrap().len(), entries);
    assert_eq!(aws.denials().await, Vec::<Value>::new(), "every call allowed by the roles");

    // 3. The latest file changes to 2.21.1: recorded beside 2.20.2; its new
    //    validators are what the next run sends.
    serve_cli(&up, "2.21.1", "\"cli-2\"", 1);
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(inserted(&r), ["kiro-cli#2.21.1#amd64"], "{r:#}");
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro-cli"), ["2.21.1", "2.20.2"]);
    let before = up.requests(LATEST).len();
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    let asked = &up.requests(LATEST)[before..];
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!((asked[0].header("if-none-match"), asked[0].status), (Some("\"cli-2\""), 304));
    assert_eq!(aws.denials().await, Vec::<Value>::new());
}
