//! The staging trigger on the local AWS API server (moto, started by
//! `tests/run`): a `.deb` put under `staging/` starts the pipeline through the
//! EventBridge rule in `statemachine/staging-rule.json`, the file the CDK stack
//! deploys.
//!
//! moto 5.2.5 routes S3 `Object Created` events to EventBridge (the bucket's
//! `EventBridgeConfiguration`) and matches them against the rule's pattern
//! (`wildcard` included), but an S3 event reaching a Step Functions target
//! starts no execution there. So the rule's target here is an SQS queue: the
//! test receives the matched events from it, applies the rule's
//! InputTransformer itself, as EventBridge would, and runs the execution with
//! the result through the ASL interpreter (`Aws::execute`), with the real
//! function binaries. A real apt client then reads the repository from the
//! bucket.

mod common;

use common::aws::*;
use common::*;
use pkgrelay_core::model::SourceType;
use pkgrelay_core::store::PackageStore;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// `statemachine/staging-rule.json` with the bucket's name substituted, as the
/// CDK stack deploys it.
fn staging_rule(bucket: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("statemachine/staging-rule.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("${BucketName}"), "the rule names the bucket through ${{BucketName}}");
    let rule: Value = serde_json::from_str(&text.replace("${BucketName}", bucket)).unwrap();
    assert!(rule["EventPattern"].is_object() && rule["InputTransformer"].is_object(), "{rule:#}");
    rule
}

/// One call to an AWS JSON-protocol API on moto. moto picks the service and
/// the backend's region from the credential scope (us-east-1, like the bucket).
async fn aws_json(service: &str, target: &str, content_type: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/", endpoint()))
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260101/us-east-1/{service}/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-target, Signature=0"
            ),
        )
        .header("X-Amz-Target", target)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{target} {body}: {status} {text}");
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: {e}: {text}"))
    }
}

async fn events(action: &str, body: Value) -> Value {
    aws_json("events", &format!("AWSEvents.{action}"), "application/x-amz-json-1.1", body).await
}

async fn sqs(action: &str, body: Value) -> Value {
    aws_json("sqs", &format!("AmazonSQS.{action}"), "application/x-amz-json-1.0", body).await
}

/// Every message (body parsed as JSON) that arrives on the queue within
/// `window`; stops early once something has arrived and a later poll finds
/// the queue empty. Received messages are deleted.
async fn receive_events(queue_url: &str, window: Duration) -> Vec<Value> {
    let deadline = Instant::now() + window;
    let mut got = Vec::new();
    loop {
        let r = sqs("ReceiveMessage", json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}))
            .await;
        let batch = r.get("Messages").and_then(Value::as_array).cloned().unwrap_or_default();
        for m in &batch {
            let body = m["Body"].as_str().unwrap_or_else(|| panic!("message without a body: {m}"));
            got.push(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")));
            sqs("DeleteMessage", json!({"QueueUrl": queue_url, "ReceiptHandle": m["ReceiptHandle"]})).await;
        }
        if (!got.is_empty() && batch.is_empty()) || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An InputPathsMap path: `$`, then `.name` steps (dashes, underscores,
/// slashes allowed in a name), each optionally followed by `[index]` steps.
/// `None` when the event has no value there.
fn json_path<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$').unwrap_or_else(|| panic!("not a JSON path: {path}"));
    let mut node = event;
    if rest.is_empty() {
        return Some(node);
    }
    let rest = rest.strip_prefix('.').unwrap_or_else(|| panic!("only dot notation is supported here: {path}"));
    for step in rest.split('.') {
        let (name, mut indices) = step.split_once('[').map_or((step, ""), |(n, i)| (n, i));
        assert!(
            !name.is_empty() && !name.contains(['*', ']', '\'', '"']),
            "unsupported JSON path step {step:?} in {path}"
        );
        node = node.get(name)?;
        while !indices.is_empty() {
            let (index, after) = indices.split_once(']').unwrap_or_else(|| panic!("unclosed [ in {path}"));
            node =
                node.get(index.parse::<usize>().unwrap_or_else(|_| panic!("unsupported index {index:?} in {path}")))?;
            indices = after.strip_prefix('[').unwrap_or(after);
            assert!(after.is_empty() || after.starts_with('['), "unexpected {after:?} in {path}");
        }
    }
    Some(node)
}

/// EventBridge's InputTransformer, for a JSON InputTemplate: each `<name>` of
/// InputPathsMap is replaced by the value at its path. Outside a JSON string
/// the value goes in as JSON (a string value quoted and escaped: `"key": <key>`
/// gives `"key": "staging/…"`); inside a string (`"at <key>"`) a string
/// value's characters go in, escaped. A placeholder whose path the event
/// lacks, or a non-string value inside a string, fails the test: the rule
/// relies on neither (nor on the predefined `aws.events.*` variables).
fn transform_input(transformer: &Value, event: &Value) -> Value {
    let paths = transformer["InputPathsMap"].as_object().expect("InputPathsMap");
    let template = transformer["InputTemplate"].as_str().expect("InputTemplate");
    let values: BTreeMap<&str, &Value> = paths
        .iter()
        .map(|(name, path)| {
            let path = path.as_str().expect("a JSON path");
            (
                name.as_str(),
                json_path(event, path).unwrap_or_else(|| panic!("the event has nothing at {path}: {event}")),
            )
        })
        .collect();
    let mut out = String::new();
    let mut in_string = false;
    let mut i = 0;
    while i < template.len() {
        let rest = &template[i..];
        let c = rest.chars().next().unwrap();
        if in_string && c == '\\' {
            // An escape inside a JSON string: copy it and the escaped character.
            let escaped = rest[1..].chars().next().expect("template ends inside an escape");
            out.push(c);
            out.push(escaped);
            i += 1 + escaped.len_utf8();
            continue;
        }
        if c == '"' {
            in_string = !in_string;
        } else if c == '<'
            && let Some(end) = rest.find('>')
            && let Some(value) = values.get(&rest[1..end])
        {
            if in_string {
                let s = value
                    .as_str()
                    .unwrap_or_else(|| panic!("<{}> is not a string inside a JSON string", &rest[1..end]));
                let quoted = serde_json::to_string(s).unwrap();
                out.push_str(&quoted[1..quoted.len() - 1]);
            } else {
                out.push_str(&value.to_string());
            }
            i += end + 1;
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("the transformed input is not JSON ({e}): {out}"))
}

#[test]
fn input_transformer_quotes_and_escapes_string_values() {
    let rule = staging_rule("b");
    let event = json!({"detail": {"object": {"key": "staging/a \"b\" \\ c.deb"}, "list": [{"x": 1}]}});
    assert_eq!(
        transform_input(&rule["InputTransformer"], &event),
        json!({"trigger": "staging_upload", "key": "staging/a \"b\" \\ c.deb"})
    );
    let transformer = json!({
        "InputPathsMap": {"key": "$.detail.object.key", "x": "$.detail.list[0].x", "all": "$"},
        "InputTemplate": "{\"msg\": \"got <key> (\\\"<key>\\\")\", \"x\": <x>, \"d\": <all>}"
    });
    assert_eq!(
        transform_input(&transformer, &event),
        json!({"msg": "got staging/a \"b\" \\ c.deb (\"staging/a \"b\" \\ c.deb\")", "x": 1, "d": event})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_deb_starts_the_pipeline_through_the_eventbridge_rule() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    publish_kiro(&up, "0.7.45");

    // The bucket sends its events to EventBridge: the stack's
    // NotificationConfiguration, which localaws applied when it deployed it.
    // (moto 5.2.5 keeps the setting but leaves EventBridgeConfiguration out of
    // GetBucketNotificationConfiguration's answer: the events below are the proof.)

    // The rule, exactly as in the file, on the default bus; its target an SQS
    // queue standing in for the state machine. The target carries no
    // InputTransformer: the queue gets the matched event itself (moto applies
    // no transformer to S3 events anyway) and the test applies the rule's.
    let rule = staging_rule(&aws.bucket);
    let queue_name = format!("staging-trigger-{}", aws.bucket);
    let queue_url = sqs("CreateQueue", json!({"QueueName": queue_name})).await["QueueUrl"].as_str().unwrap().to_owned();
    let attrs = sqs("GetQueueAttributes", json!({"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]})).await;
    let queue_arn = attrs["Attributes"]["QueueArn"].as_str().unwrap_or_else(|| panic!("{attrs}")).to_owned();
    assert!(queue_arn.starts_with("arn:aws:sqs:us-east-1:"), "{queue_arn}");
    let rule_name = format!("staging-upload-{}", aws.bucket);
    let put = events(
        "PutRule",
        json!({"Name": rule_name, "EventPattern": rule["EventPattern"].to_string(), "State": "ENABLED",
               "Description": "starts the pipeline when a .deb lands in staging/"}),
    )
    .await;
    assert!(put["RuleArn"].as_str().is_some_and(|a| a.ends_with(&format!(":rule/{rule_name}"))), "{put}");
    let described = events("DescribeRule", json!({"Name": rule_name})).await;
    assert_eq!(
        serde_json::from_str::<Value>(described["EventPattern"].as_str().unwrap()).unwrap(),
        rule["EventPattern"],
        "the emulator keeps the pattern as given"
    );
    let targets =
        events("PutTargets", json!({"Rule": rule_name, "Targets": [{"Id": "pipeline", "Arn": queue_arn}]})).await;
    assert_eq!(targets["FailedEntryCount"], 0, "{targets}");
    assert!(receive_events(&queue_url, Duration::from_millis(500)).await.is_empty(), "the queue starts empty");

    // One .deb under staging/, and two objects the pattern must not match.
    let staged = deb("kiro-repo", "1.0", "all", None);
    aws.put("staging/notes.txt", b"release notes, not a package\n".to_vec()).await;
    aws.put("other/x.deb", deb("kiro-repo", "0.9", "all", None)).await;
    aws.put("staging/kiro-repo_1.0_all.deb", staged.clone()).await;

    let received = receive_events(&queue_url, Duration::from_secs(5)).await;
    let keys: Vec<&Value> = received.iter().map(|e| &e["detail"]["object"]["key"]).collect();
    assert_eq!(received.len(), 1, "exactly one event, for the staged .deb; got keys {keys:?}: {received:#?}");
    let event = &received[0];
    assert_eq!(event["source"], "aws.s3", "{event:#}");
    assert_eq!(event["detail-type"], "Object Created", "{event:#}");
    assert_eq!(event["detail"]["bucket"]["name"], aws.bucket.as_str(), "{event:#}");
    assert_eq!(event["detail"]["object"]["key"], "staging/kiro-repo_1.0_all.deb", "{event:#}");

    let input = transform_input(&rule["InputTransformer"], event);
    assert_eq!(input, json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"}));

    // The execution the rule starts.
    let r = aws.execute(input.clone()).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["input"]["trigger"], "staging_upload", "the input reached the state machine: {r:#}");
    assert_eq!(r["output"]["input"]["key"], input["key"], "{r:#}");
    let items = &r["output"]["summary"]["items"];
    let mut inserted: Vec<&str> = items["inserted"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    inserted.sort();
    assert_eq!(inserted, ["kiro#0.7.45#amd64", "kiro-repo#1.0#all"], "{r:#}");
    assert_eq!(items["failed_count"], 0, "{r:#}");
    assert_eq!(r["output"]["publish"]["status"], "published", "{r:#}");

    // The store has the staged package, with the staged bytes' digest.
    let sdk = sdk_config(&aws.endpoint).await;
    let store = pkgrelay_aws::dynamo::DynamoStore::new(
        pkgrelay_aws::dynamo::client(&sdk),
        &aws.packages_table,
        &aws.state_table,
    );
    let entry = store.get("kiro-repo#1.0#all").await.unwrap().expect("kiro-repo#1.0#all is in the packages table");
    assert_eq!(entry.source_type, SourceType::StagingUpload);
    assert_eq!(entry.source_url, "staging/kiro-repo_1.0_all.deb");
    assert_eq!(entry.checksums.sha256, sha256(&staged));
    assert_eq!(entry.filename, "pool/main/k/kiro-repo/kiro-repo_1.0_all.deb");

    // The published index lists it; the pool and the convenience copy hold its bytes.
    let packages = String::from_utf8(aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap()).unwrap();
    let stanza = packages
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == "Package: kiro-repo"))
        .unwrap_or_else(|| panic!("no kiro-repo in Packages:\n{packages}"));
    for line in ["Version: 1.0", "Architecture: all", "Filename: pool/main/k/kiro-repo/kiro-repo_1.0_all.deb"] {
        assert!(stanza.lines().any(|l| l == line), "{line:?} missing:\n{stanza}");
    }
    assert!(stanza.lines().any(|l| l == format!("SHA256: {}", sha256(&staged))), "{stanza}");
    let pool = aws.get("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.expect("pool copy");
    assert_eq!(pool, staged, "the pool copy is the staged file");
    assert_eq!(
        aws.get("kiro-repo.deb").await.expect("kiro-repo.deb at the root"),
        pool,
        "convenience copy equals the pool copy"
    );
    assert_eq!(
        aws.get("staging/kiro-repo_1.0_all.deb").await,
        None,
        "staging/ is an inbox: the recorded upload left it"
    );

    // What the pipeline wrote (pool/, dists/, generations/, runs/, kiro-repo.deb
    // at the root) matches no rule: the run does not trigger itself.
    let after = receive_events(&queue_url, Duration::from_millis(1500)).await;
    assert!(after.is_empty(), "the pipeline's own writes triggered the rule: {after:#?}");

    // Bad uploads: one not a package, one under a key no directory could hold.
    // Each upload is an event; the run that refuses them moves them to
    // staging/rejected/ by CopyObject, which starts nothing.
    aws.put("staging/broken.deb", b"not a package".to_vec()).await;
    aws.put("staging//odd.deb", deb("kiro-repo", "1.1", "all", None)).await;
    let uploads = receive_events(&queue_url, Duration::from_secs(5)).await;
    let keys: Vec<&Value> = uploads.iter().map(|e| &e["detail"]["object"]["key"]).collect();
    assert_eq!(uploads.len(), 2, "one event per upload: {keys:?}");
    assert!(uploads.iter().all(|e| e["detail"]["reason"] == "PutObject"), "{uploads:#?}");
    let r = aws.execute(transform_input(&rule["InputTransformer"], &uploads[0])).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let rejected: Vec<&str> =
        r["output"]["check"]["rejected"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert_eq!(rejected.len(), 2, "{r:#}");
    assert_eq!(r["output"]["summary"]["staging_rejected"].as_array().map(Vec::len), Some(2), "reported in the summary: {r:#}");
    for (key, moved) in [("staging/broken.deb", "staging/rejected/broken.deb"), ("staging//odd.deb", "staging/rejected/odd.deb")] {
        assert!(aws.get(key).await.is_none(), "{key} left the inbox");
        assert!(aws.get(moved).await.is_some(), "{moved}");
        let reason = String::from_utf8(aws.get(&format!("{moved}.reason")).await.unwrap()).unwrap();
        assert!(reason.starts_with(key), "{reason}");
    }
    let after = receive_events(&queue_url, Duration::from_millis(1500)).await;
    assert!(after.is_empty(), "moving refused uploads to staging/rejected/ started a run: {after:#?}");

    // A real apt client reads the repository through CloudFront, which the
    // bucket policy lets read the repository paths only.
    assert_eq!(aws.cdn_status("staging/kiro-repo_1.0_all.deb").await, 403, "staging/ is never public");
    let apt = aws.apt_accepts().await;
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro-repo"]);
    assert!(ok && text.contains("Inst kiro-repo (1.0"), "{text}");
}
