//! The Homebrew bottle mirror through the AWS pipeline, on AWS's terms
//! (tests/localaws in front of moto, started by `tests/run`): the state
//! machine and roles CDK synthesizes from config/repositories.yaml (the Kiro
//! APT repository and the `brew` mirror side by side), an execution for the
//! mirror started as its weekly schedule starts it, every function under its
//! own role's policy. The brew-equivalent client (tests/common/brew.rs) then
//! pours every formula × tag through the CloudFront stand-in, whose cache
//! behavior for `brew/*` runs the synthesized CloudFront Function with the
//! key value store publish filled: no bottle is stored twice in the bucket.

mod common;

use common::aws::*;
use common::brew::*;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The weekly schedule's input, as CDK synthesizes it for the mirror.
fn weekly_input(aws: &Aws) -> Value {
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cdk/cdk.out.dev/pkgrelay-dev.template.json"),
        )
        .expect("the synthesized template (tests/run synthesizes it)"),
    )
    .unwrap();
    let rule = template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::Events::Rule" && r["Properties"]["Name"] == "pkgrelay-dev-brew-weekly")
        .unwrap_or_else(|| panic!("no weekly rule for the mirror in the template ({})", aws.id));
    assert_eq!(rule["Properties"]["ScheduleExpression"], "cron(0 3 ? * SUN *)");
    serde_json::from_str(rule["Properties"]["Targets"][0]["Input"].as_str().unwrap()).unwrap()
}

async fn keys_under(aws: &Aws, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pages = aws.s3.list_objects_v2().bucket(&aws.bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        out.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mirror_runs_through_the_aws_pipeline_and_brew_pours_through_cloudfront() {
    let up = Upstream::start();
    publish_kiro(&up, "0.7.45");
    let fake = FakeBrew::start(fixture_formulae());
    let ws = Workspace::new(&up);
    configure_mirror(&ws, &fake, &PLATFORM_TAGS);
    let aws = Aws::setup(&ws).await;

    // 1. The weekly run, as its schedule starts it.
    let input = weekly_input(&aws);
    assert_eq!((input["repository"].as_str(), input["notify_start"].as_bool()), (Some("brew"), Some(true)), "{input}");
    assert_eq!(input["max_concurrency"], 10, "homebrew.yaml's max_concurrency");
    let r = aws.execute(input.clone()).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_states_within_limit(&r);
    eprintln!("first weekly run ({bottles} bottles): {}", r["counts"], bottles = fake.bottle_pairs().len());
    let entered = states_entered(&r);
    for s in ["StartNotice", "NotifyStart", "CheckSources", "DownloadAll", "BuildIndex", "Publish", "NotifySuccess"] {
        assert!(entered.iter().any(|e| e == s), "{s} not in history: {entered:?}");
    }
    assert!(child_states(&r).iter().any(|s| s == "DownloadPackage"));
    assert!(aws.denials().await.is_empty(), "{:#?}", aws.denials().await);
    let summary = &r["output"]["summary"];
    assert_eq!(summary["repository"], "brew");
    let bottles = fake.bottle_pairs().len() as u64;
    assert_eq!(summary["items"]["inserted_count"].as_u64(), Some(bottles), "{summary:#}");
    assert_eq!(summary["items"]["failed_count"].as_u64(), Some(0), "{summary:#}");
    assert!(r["output"]["notification"]["MessageId"].is_string(), "the summary went to SNS");

    // Each bottle once, by digest, in the bucket; no flat or v2 copy.
    let digests: BTreeSet<String> =
        fake.formulae().iter().flat_map(|f| f.bottles.iter().map(|b| b.sha256.clone()).collect::<Vec<_>>()).collect();
    let blobs: BTreeSet<String> = keys_under(&aws, "brew/blobs/sha256/")
        .await
        .into_iter()
        .map(|k| k.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(blobs, digests);
    let copies: Vec<String> = keys_under(&aws, "brew/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".tar.gz") || k.contains("/blobs/sha256:"))
        .collect();
    assert!(copies.is_empty(), "second copies: {copies:?}");

    // 2. brew through CloudFront: the API files byte for byte, every
    // formula × tag poured in both domain modes.
    let mirror = format!("{}/brew", aws.cdn.trim_end_matches('/'));
    let mut api = api_file_names();
    api.retain(|f| f != "formula.json");
    api_files_identical(&fake.api_domain(), &format!("{mirror}/api"), &api).unwrap();
    pour_every_bottle(&fake, &mirror, |_, _, _| {});
    // A name the mirror does not hold is refused as S3 refuses a missing key.
    assert_eq!(aws.cdn_status("brew/bottles/nothing-1.0.arm64_sonoma.bottle.tar.gz").await, 403);

    // 3. The next weekly run downloads no bottle and publishes nothing new.
    fake.ghcr.clear_log();
    let before = aws.get("brew/api/formula.jws.json").await.unwrap();
    let r = aws.execute(input).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["summary"]["status"], "unchanged", "a weekly run says how it ended: {r:#}");
    eprintln!("weekly run with nothing new: {}", r["counts"]);
    // Nine transitions: Defaults, AnnounceStart, StartNotice, NotifyStart,
    // CheckSources, AnythingToDo, SummarizeUnchanged, NotifySuccess, Done.
    assert_eq!(r["counts"]["stateTransitions"], 9, "{}", r["counts"]);
    assert_eq!(r["counts"]["lambdaInvocations"], 1, "{}", r["counts"]);
    assert_eq!(blob_requests(&fake), 0, "{:?}", fake.ghcr.requests());
    assert!(!child_states(&r).iter().any(|s| s == "DownloadPackage"), "no candidate");
    assert_eq!(aws.get("brew/api/formula.jws.json").await.unwrap(), before);

    // 4. The Kiro APT repository beside it, from the same state machine.
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["summary"]["repository"], "apt");
    assert!(!states_entered(&r).iter().any(|s| s == "NotifyStart"), "hourly runs announce no start");
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45"]);
}

/// The weekly run tells people: with a webhook URL in the Slack secret,
/// the notifier subscribed to both topics posts the start, the summary and
/// a failure; before the secret holds one, it posts nothing and fails
/// nothing. The URL (a credential) never reaches a log.
#[tokio::test(flavor = "multi_thread")]
async fn the_weekly_run_posts_its_start_summary_and_failure_to_slack() {
    let up = Upstream::start();
    let fake = FakeBrew::start(fixture_formulae());
    let ws = Workspace::new(&up);
    configure_mirror(&ws, &fake, &["arm64_sonoma"]);
    let aws = Aws::setup(&ws).await;
    let input = weekly_input(&aws);
    let webhook = FakeWebhook::start("/services/T0001/B0001/webhooksecrettoken");

    // 1. No webhook yet: the notifier runs for both notifications and posts nothing.
    let r = aws.execute(input.clone()).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let deliveries = aws.sns_deliveries().await;
    assert_eq!(deliveries.len(), 2, "start and summary: {deliveries:?}");
    assert!(deliveries.iter().all(|d| d["function"] == "notify-slack" && d["ok"] == true), "{deliveries:?}");
    assert!(webhook.texts().is_empty());

    // 2. The operator puts the webhook URL into the secret the stack created empty.
    let secret =
        aws.info["outputs"]["SlackWebhookSecretArn"].as_str().expect("SlackWebhookSecretArn output").to_owned();
    aws_sdk_secretsmanager::Client::new(&sdk_config(&aws.endpoint).await)
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(&webhook.url)
        .send()
        .await
        .unwrap();
    // A run ending as `status`, then what the webhook received so far.
    let run = |input: Value, status: &'static str| {
        let (aws, webhook) = (&aws, &webhook);
        async move {
            let r = aws.execute(input).await;
            assert_eq!(r["status"], status, "{r:#}");
            aws.sns_deliveries().await;
            webhook.texts()
        }
    };
    let texts = run(input.clone(), "SUCCEEDED").await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("*pkgrelay brew: started*\ntrigger: schedule"), "{}", texts[0]);
    assert!(texts[1].starts_with("*pkgrelay brew: unchanged*"), "{}", texts[1]);

    // 3. A run that fails (publish may no longer write the mirror's names)
    // posts the start and the failure.
    aws.remove_statement("publish", "WriteMirrorNames").await;
    let mut forced = input.clone();
    forced["force_rebuild"] = json!(true);
    let texts = run(forced, "FAILED").await;
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(texts[3].starts_with("*pkgrelay brew: pipeline failed*\nerror: "), "{}", texts[3]);
    assert!(texts[3].contains("AccessDenied"), "{}", texts[3]);
    aws.restore_policy("publish").await;

    let logs = aws.all_logs().await;
    assert!(logs.contains("notification posted to Slack"), "the notifier logged its posts");
    assert!(!logs.contains("webhooksecrettoken"), "the webhook URL reached a log");
}
