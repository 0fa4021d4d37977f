//! The AWS pipeline end to end on AWS's terms (tests/localaws in front of moto,
//! started by `tests/run`): the state machine CDK synthesizes, started through
//! the Step Functions API, its Lambda tasks running the real Rust function
//! binaries each under its own role's synthesized policy, memory size and
//! timeout, against S3, DynamoDB, Secrets Manager and SNS on 127.0.0.1. A real
//! apt client then reads the repository through the CloudFront stand-in.

mod common;

use common::aws::*;
use common::*;
use serde_json::{Value, json};
use std::process::Command;

async fn published_generation(aws: &Aws) -> u64 {
    pkgrelay_core::store::PackageStore::suite(&aws.store().await, "stable").await.unwrap().published.map_or(0, |p| p.generation)
}

#[tokio::test(flavor = "multi_thread")]
async fn state_machine_runs_the_real_functions_against_local_aws() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;

    // 1. First run, scheduled: one Kiro release upstream.
    publish_kiro(&up, "0.7.44");
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_states_within_limit(&r);
    let mut entered = states_entered(&r);
    entered.extend(child_states(&r));
    for s in [
        "Defaults",
        "CheckSources",
        "AnythingToDo",
        "DownloadAll",
        "DownloadPackage",
        "RecordMetadata",
        "BuildIndex",
        "Publish",
        "Summarize",
        "NotifySuccess",
        "Done",
    ] {
        assert!(entered.iter().any(|e| e == s), "{s} not in history: {entered:?}");
    }
    let items = &r["output"]["summary"]["items"];
    assert_eq!(items["inserted"], json!(["kiro#0.7.44#amd64"]), "{items}");
    assert_eq!((items["inserted_count"].as_u64(), items["failed_count"].as_u64()), (Some(1), Some(0)));
    assert_eq!(r["output"]["publish"]["status"], "published");
    assert!(r["output"]["notification"]["MessageId"].is_string(), "SNS accepted the summary");
    assert_eq!(aws.get("pool/main/k/kiro/kiro_0.7.44_amd64.pem").await.unwrap(), b"CERT 0.7.44\n");
    assert_eq!(aws.cdn_status("dists/stable/InRelease").await, 200);
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.44"]);

    // 2. Nothing new, index fresh: the Choice short-circuits, nothing is written.
    let live = aws.get("dists/stable/InRelease").await.unwrap();
    let r = aws.execute(json!({"trigger": "schedule"})).await;
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert!(!states_entered(&r).iter().any(|s| s == "BuildIndex"));
    // What an idle hourly run costs: five state transitions, one invocation.
    assert!(r["counts"]["stateTransitions"].as_u64().unwrap() <= 5, "{}", r["counts"]);
    assert_eq!(r["counts"]["lambdaInvocations"], 1, "{}", r["counts"]);
    assert_eq!(aws.get("dists/stable/InRelease").await.unwrap(), live);
    aws.apt_accepts().await;

    // 3. One candidate fails (kiro-cli's "latest" URL serves an error page
    //    instead of a .deb) while the others succeed: the Map's Catch.
    publish_kiro(&up, "0.7.45");
    aws.put("staging/kiro-repo_1.0_all.deb", deb("kiro-repo", "1.0", "all", None)).await;
    ws.with_kiro_cli(&up);
    up.set("/latest/kiro-cli.deb", Reply::Body(b"<html><body>Service Unavailable</body></html>".to_vec()));
    let r = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let items = &r["output"]["summary"]["items"];
    let failed = items["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{items}");
    assert_eq!(failed[0]["package_id"], "kiro-cli#latest#amd64");
    assert_eq!(failed[0]["error"], "InvalidPackage");
    assert!(failed[0]["cause"].as_str().unwrap().contains("not a Debian package"), "{}", failed[0]);
    let mut inserted: Vec<&str> = items["inserted"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    inserted.sort();
    assert_eq!(inserted, ["kiro#0.7.45#amd64", "kiro-repo#1.0#all"]);
    assert_eq!(
        aws.get("kiro-repo.deb").await.unwrap(),
        aws.get("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.unwrap(),
        "convenience copy equals the pool copy"
    );
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.45", "0.7.44"]);
    std::fs::remove_file(ws.path("config/packages/kiro-cli.yaml")).unwrap();

    // 4. Two executions racing: both see the same new release and staged file;
    //    builds take turns through the suite's lease, the published generation
    //    only moves forward, and the last index holds every recorded package.
    publish_kiro(&up, "0.7.46");
    aws.put("staging/kiro-repo_1.1_all.deb", deb("kiro-repo", "1.1", "all", None)).await;
    let before = published_generation(&aws).await;
    aws.set_retry_delay(300).await;
    let (a, b) = tokio::join!(
        aws.execute(json!({"trigger": "schedule"})),
        aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.1_all.deb"})),
    );
    aws.set_retry_delay(20).await;
    for r in [&a, &b] {
        eprintln!("racing run: check {} items {}", r["output"]["check"], r["output"]["summary"]["items"]);
        assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
        assert!(matches!(r["output"]["publish"]["status"].as_str(), Some("published" | "superseded")), "{r:#}");
    }
    let generations = [
        a["output"]["publish"]["generation"].as_u64().unwrap(),
        b["output"]["publish"]["generation"].as_u64().unwrap(),
    ];
    let after = published_generation(&aws).await;
    assert!(
        after > before && after == *generations.iter().max().unwrap(),
        "published {before} -> {after}, runs built {generations:?}"
    );
    let apt = aws.apt_accepts().await;
    assert_eq!(madison(&apt, "kiro"), ["0.7.46", "0.7.45", "0.7.44"]);
    assert_eq!(madison(&apt, "kiro-repo"), ["1.1", "1.0"]);
    assert_eq!(
        aws.get("kiro-repo.deb").await.unwrap(),
        aws.get("pool/main/k/kiro-repo/kiro-repo_1.1_all.deb").await.unwrap(),
        "convenience copy follows the newest kiro-repo"
    );

    // 5. Manual force rebuild with the upstream down and one pool object
    //    deleted: it still publishes (from the store alone), and verification
    //    reports the missing object.
    up.stop();
    aws.s3.delete_object().bucket(&aws.bucket).key("pool/main/k/kiro/kiro_0.7.44_amd64.deb").send().await.unwrap();
    let packages = aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap();
    let r = aws.execute(json!({"force_rebuild": true})).await;
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["publish"]["status"], "published");
    assert_eq!(r["output"]["publish"]["generation"].as_u64().unwrap(), after + 1);
    assert!(!states_entered(&r).iter().any(|s| s == "DownloadAll"), "a forced run has no candidates");
    assert_eq!(aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap(), packages, "same Packages");
    let public = tempfile::tempdir().unwrap();
    aws.download_public(public.path()).await;
    let verify = ws.pkgrelay(&["verify", "--out", public.path().to_str().unwrap()]);
    assert!(!verify.status.success(), "verify must report the deleted pool object");
    assert!(String::from_utf8_lossy(&verify.stdout).contains("pool/main/k/kiro/kiro_0.7.44_amd64.deb: missing"));
    let apt = aws.apt_accepts().await;
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro", "kiro-repo"]);
    assert!(ok && text.contains("Inst kiro (0.7.46") && text.contains("Inst kiro-repo (1.1"), "{text}");

    // 6. Publish refuses to go backwards: generation 1 again is "superseded".
    let mut cmd = Command::new(bin_dir().join("publish"));
    cmd.arg("--invoke")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    aws.function_env("publish", &mut cmd);
    let mut child = cmd.spawn().unwrap();
    let event = json!({"payload": {"generation": 1, "manifest_key": "generations/stable/00000001/manifest.json"}, "execution_id": "arn:aws:states:us-east-1:123456789012:execution:pkgrelay:manual-1"});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), event.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "superseded", "{result}");
    assert_eq!(result["published_generation"].as_u64().unwrap(), after + 1);
    // Logs are JSON lines; those inside the step carry the execution id.
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(lines.iter().any(|l| l.get("span").is_some()), "{logs}");
    assert!(
        lines
            .iter()
            .filter(|l| l.get("span").is_some())
            .all(|l| l["span"]["execution_id"] == "arn:aws:states:us-east-1:123456789012:execution:pkgrelay:manual-1"),
        "{logs}"
    );
    aws.logs.lock().unwrap().push_str(&logs);

    // 7. staging/ stays private; generations/ and runs/ too: neither through
    //    CloudFront nor straight from the bucket.
    for key in ["staging/kiro-repo_1.0_all.deb", "generations/stable/00000001/manifest.json"] {
        assert_eq!(aws.cdn_status(key).await, 403, "{key} is never public");
        assert_eq!(aws.anonymous_status(key).await, 403, "{key} is never public");
    }
    // staging/ is an inbox: a recorded upload leaves it (the pool holds it).
    assert!(aws.get("staging/kiro-repo_1.0_all.deb").await.is_none(), "recorded uploads leave staging/");

    // 8. No credentials or key material in any log line of any function; the
    //    function log lines carry the execution id.
    let logs = aws.all_logs().await;
    assert!(logs.contains("\"execution_id\""), "function log lines carry the execution id");
    aws.assert_no_secrets_logged().await;
}
