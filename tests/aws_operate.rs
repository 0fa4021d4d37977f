//! Operating a deployed stack from the CLI, against the Step Functions API of
//! tests/localaws (started by `tests/run`), which executes the synthesized
//! state machine with the real function binaries: `pkgrelay aws start`
//! (success, forced rebuild, a failure in BuildIndex named with its state,
//! error and cause, `--no-follow`, `--json`), `pkgrelay aws history`, and
//! `config-package publish --wait` following the execution its staging upload
//! starts until the new kiro-repo is in the public index.
//!
//! The CLI reads the stack from a `cdk deploy --outputs-file` document and
//! talks to AWS through the SDK's usual configuration (`AWS_ENDPOINT_URL`
//! pointed at localaws): no test-only path. Its stdout is not a terminal
//! here, so the live view is plain lines.

mod common;

use common::aws::*;
use common::*;
use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const OUTPUTS: &[&str] = &["--env", "dev", "--outputs-file", "cdk-outputs.json"];

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pkgrelay aws <args> --env dev --outputs-file cdk-outputs.json`.
fn aws_cli(ws: &Workspace, aws: &Aws, args: &[&str]) -> Output {
    let mut all = vec!["aws"];
    all.extend_from_slice(args);
    all.extend_from_slice(OUTPUTS);
    ws.pkgrelay_with(&all, |cmd| aws.operator_env(cmd))
}

/// The line of `text` that starts with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn start_follows_executions_to_their_end_and_history_lists_them() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    aws.write_outputs_file(&ws.path("cdk-outputs.json"));

    // 1. A run that publishes: a live line per state, the map's items, the summary.
    publish_kiro(&up, "0.7.45");
    let out = aws_cli(&ws, &aws, &["start"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let arn = line(&text, "started ").trim_start_matches("started ").to_owned();
    assert!(arn.starts_with(&format!("{}:", aws.state_machine_arn.replace(":stateMachine:", ":execution:"))), "{arn}");
    let states: Vec<&str> = text.lines().filter_map(|l| l.strip_suffix(": started")).collect();
    assert_eq!(
        states,
        [
            "Defaults",
            "AnnounceStart",
            "CheckSources",
            "AnythingToDo",
            "DownloadAll",
            "BuildIndex",
            "Publish",
            "Summarize",
            "NotifySuccess",
            "Done"
        ],
        "{text}"
    );
    for s in ["CheckSources", "DownloadAll", "BuildIndex", "Publish"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{s}: done in "))), "{s} done: {text}");
    }
    assert!(text.contains("\nDownloadAll: 1/1 items\n"), "the map's progress: {text}");
    let summary = line(&text, "SUCCEEDED in ");
    assert!(summary.ends_with(&format!(": published generation 1 at {}", aws.cdn)), "{summary}");
    assert_eq!(line(&text, "  new: "), "  new: 1 (kiro#0.7.45#amd64)");
    assert_eq!(line(&text, "  failed: "), "  failed: 0");
    assert_eq!(line(&text, "execution: "), format!("execution: {arn}"));
    assert_eq!(
        line(&text, "console: "),
        format!(
            "console: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{arn}"
        )
    );
    let r = aws.finish(&arn).await;
    assert_eq!(
        r["input"].as_str().map(|i| serde_json::from_str::<Value>(i).unwrap()),
        Some(json!({"trigger": "manual", "force_rebuild": false}))
    );

    // 2. Nothing new, for a script: one JSON document, nothing was written.
    let out = aws_cli(&ws, &aws, &["start", "--json"]);
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!((doc["status"].as_str(), doc["nothing_to_do"].as_bool()), (Some("SUCCEEDED"), Some(true)), "{doc:#}");
    assert_eq!(doc["summary"], Value::Null);
    assert_eq!(doc["trigger"], json!({"kind": "manual", "force_rebuild": false}));

    // 3. A forced rebuild: no source asked, no map, a new generation, nothing new.
    let out = aws_cli(&ws, &aws, &["start", "--force-rebuild"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("DownloadAll"), "a forced run has no candidates: {text}");
    assert!(line(&text, "SUCCEEDED in ").ends_with(&format!(": published generation 2 at {}", aws.cdn)), "{text}");
    assert_eq!(line(&text, "  new: "), "  new: 0");
    assert!(
        line(&text, "started ").contains(":execution:") && line(&text, "started ").contains(":force-rebuild-"),
        "{text}"
    );
    let out = aws_cli(&ws, &aws, &["start", "--force-rebuild", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["publish"]["generation"], 3, "{doc:#}");
    assert_eq!(doc["summary"]["force_rebuild"], true, "the pipeline's summary as Summarize wrote it: {doc:#}");
    assert_eq!(doc["summary"]["execution"], doc["execution_arn"]);
    assert_eq!(doc["trigger"]["force_rebuild"], true);

    // 4. BuildIndex may not read the signing key: the run fails there, and
    //    start names the state, the error type and the cause, and exits 1.
    publish_kiro(&up, "0.7.46");
    aws.remove_statement("build-index", "ReadSigningKey").await;
    let out = aws_cli(&ws, &aws, &["start"]);
    aws.restore_policy("build-index").await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(line(&text, "FAILED after ").ends_with(" in state BuildIndex"), "{text}");
    let error = line(&text, "  error: ").trim_start_matches("  error: ").to_owned();
    let cause = line(&text, "  cause: ").trim_start_matches("  cause: ").to_owned();
    assert_eq!(error, "InternalError", "{text}");
    assert!(
        cause.contains("secretsmanager:GetSecretValue") && cause.contains("AccessDenied"),
        "the function's message: {cause}"
    );
    assert!(!cause.starts_with('{'), "the Lambda error's message, not its JSON: {cause}");
    let live = line(&text, "BuildIndex: InternalError: ");
    assert!(
        cause.starts_with(&live["BuildIndex: InternalError: ".len()..live.len() - "…".len()]),
        "the live line of the failed task: {text}"
    );
    assert!(line(&text, "BuildIndex: failed after ").contains(" after "), "{text}");
    assert!(text.contains("NotifyFailure: started"), "{text}");
    let failed_arn = line(&text, "execution: ").trim_start_matches("execution: ").to_owned();

    // 5. --no-follow: the ARN and the console URL, then back at once.
    let out = aws_cli(&ws, &aws, &["start", "--no-follow"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let started = line(&text, "execution: ").trim_start_matches("execution: ").to_owned();
    assert!(line(&text, "console: ").ends_with(&format!("/v2/executions/details/{started}")), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    let r = aws.finish(&started).await;
    assert_eq!(r["status"], "SUCCEEDED", "the next run publishes what the failed one recorded");

    // 6. A scheduled run and a staging upload, as their triggers start them.
    aws.execute(json!({"trigger": "schedule"})).await;
    aws.put("staging/kiro-repo_1.0_all.deb", deb("kiro-repo", "1.0", "all", None)).await;
    let staging = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"})).await;
    assert_eq!(staging["status"], "SUCCEEDED");

    // history: newest first, trigger, status, duration, what was published.
    let out = aws_cli(&ws, &aws, &["history", "-n", "5"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 6, "a header and 5 rows: {text}");
    assert!(rows[0].starts_with("START (UTC)") && rows[0].ends_with("PUBLISHED"), "{text}");
    let cols =
        |row: &str| row.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let newest = cols(rows[1]);
    assert_eq!(newest[1], "SUCCEEDED", "{text}");
    assert_eq!(newest[3], "staging upload staging/kiro-repo_1.0_all.deb", "{text}");
    assert_eq!(newest[4], "generation 5: +1 (kiro-repo 1.0)", "{text}");
    assert_eq!(cols(rows[2])[3], "schedule", "{text}");
    assert_eq!(cols(rows[2])[4], "nothing new", "{text}");
    assert_eq!(cols(rows[3])[3], "manual", "{text}");
    assert_eq!(
        cols(rows[3])[4],
        "generation 4: no new package, 1 recorded by an earlier run",
        "the run after the failure publishes what the failed one recorded: {text}"
    );
    let failed = cols(rows[4]);
    assert_eq!((failed[1].as_str(), failed[3].as_str()), ("FAILED", "manual"), "{text}");
    assert!(failed[4].starts_with("nothing: failed at BuildIndex: InternalError: "), "{text}");
    assert_eq!(cols(rows[5])[3], "manual (force rebuild)", "{text}");
    assert_eq!(cols(rows[5])[4], "generation 3: no new package", "{text}");

    let out = aws_cli(&ws, &aws, &["history", "-n", "20", "--json"]);
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 8, "every execution of this stack, not the map's children");
    let failed = all.iter().find(|e| e["execution_arn"] == failed_arn.as_str()).unwrap();
    assert_eq!(failed["failure"]["state"], "BuildIndex", "{failed:#}");
    assert_eq!(failed["failure"]["error"], "InternalError");
    assert_eq!(
        all[0]["trigger"],
        json!({"kind": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb", "force_rebuild": false})
    );
    assert_eq!(all[0]["summary"]["items"]["inserted"], json!(["kiro-repo#1.0#all"]));
    assert!(all.iter().all(|e| e["duration_seconds"].as_f64().unwrap() > 0.0));

    // 7. A bad upload and nothing else new: the run publishes nothing, but says
    //    which upload it refused, where it moved it and why (SummarizeUnchanged).
    aws.put("staging/broken.deb", b"not a package".to_vec()).await;
    let out = aws_cli(&ws, &aws, &["start"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SummarizeUnchanged: started") && text.contains("NotifySuccess: started"), "{text}");
    assert!(line(&text, "SUCCEEDED in ").ends_with(": nothing new; the repository was left untouched"), "{text}");
    let refused = line(&text, "  refused upload: ");
    assert!(
        refused.starts_with("  refused upload: staging/broken.deb (moved to staging/rejected/broken.deb): ")
            && refused.contains("not a Debian package"),
        "{text}"
    );
    let out = aws_cli(&ws, &aws, &["history", "-n", "1"]);
    let text = stdout(&out);
    assert_eq!(cols(text.lines().nth(1).unwrap())[4], "nothing new, 1 staged upload refused", "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_wait_follows_the_staging_execution_until_kiro_repo_is_live() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;
    aws.write_outputs_file(&ws.path("cdk-outputs.json"));
    publish_kiro(&up, "0.7.45");
    // A scheduled run shortly before the upload: an execution in the window
    // --wait looks at, with no staging key.
    let schedule = aws.execute(json!({"trigger": "schedule"})).await["executionArn"].as_str().unwrap().to_owned();

    // The operator publishes kiro-repo and waits.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgrelay"));
    cmd.args(["config-package", "publish", "--wait"])
        .args(OUTPUTS)
        .current_dir(ws.dir.path())
        .env("PKGRELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    aws.operator_env(&mut cmd);
    let child = cmd.spawn().unwrap();

    // EventBridge's part (tests/aws_staging_trigger.rs shows the rule matching
    // the S3 event): once the object is there, a moment later, the execution
    // with the rule's input.
    let key = "staging/kiro-repo_1.0_all.deb";
    let deadline = Instant::now() + Duration::from_secs(60);
    while aws.get(key).await.is_none() {
        assert!(Instant::now() < deadline, "publish never uploaded {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let staging = aws.start(json!({"trigger": "staging_upload", "key": key})).await;

    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let text = stdout(&out);
    eprintln!("$ pkgrelay config-package publish --wait\n{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert_eq!(line(&text, "s3://"), format!("s3://{}/{key}", aws.bucket));
    assert_eq!(line(&text, "following "), format!("following {staging}"), "not the scheduled run {schedule}");
    assert_eq!(
        text.lines().last().unwrap(),
        format!("kiro-repo 1.0 is live: listed in {}dists/stable/main/binary-amd64/Packages", aws.cdn)
    );
    assert!(text.contains("  new: ") && text.contains("kiro-repo#1.0#all"), "{text}");
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro-repo"), ["1.0"]);

    // The next version, for a script, while the rebuild fails in BuildIndex:
    // --wait reports the failed state and exits non-zero.
    aws.remove_statement("build-index", "ReadSigningKey").await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgrelay"));
    cmd.args(["config-package", "publish", "--wait", "--json"])
        .args(OUTPUTS)
        .current_dir(ws.dir.path())
        .env("PKGRELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    aws.operator_env(&mut cmd);
    let child = cmd.spawn().unwrap();
    let key = "staging/kiro-repo_1.1_all.deb";
    while aws.get(key).await.is_none() {
        assert!(Instant::now() < deadline + Duration::from_secs(60), "publish never uploaded {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    aws.start(json!({"trigger": "staging_upload", "key": key})).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    aws.restore_policy("build-index").await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(doc["status"], "FAILED");
    assert_eq!(doc["failure"]["state"], "BuildIndex", "{doc:#}");
    assert_eq!(doc["failure"]["error"], "InternalError");
    assert_eq!(doc["trigger"], json!({"kind": "staging_upload", "key": key, "force_rebuild": false}));
}
