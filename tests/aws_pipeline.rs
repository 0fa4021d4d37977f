//! The AWS pipeline end to end on a local AWS API server (moto, started by
//! `tests/run`): `statemachine/pipeline.asl.json` executed by an existing ASL
//! interpreter (aws-local-stepfunctions) whose Lambda tasks run the real Rust
//! function binaries, against S3, DynamoDB, Secrets Manager and SNS on
//! 127.0.0.1. A real apt client then reads the repository straight from the
//! emulated bucket.

mod common;

use common::aws::*;
use common::*;
use serde_json::{Value, json};
use std::process::Command;

fn states_entered(report: &Value) -> Vec<String> {
    report["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn state_machine_runs_the_real_functions_against_local_aws() {
    let up = Upstream::start();
    let ws = Workspace::new(&up);
    let aws = Aws::setup(&ws).await;

    // 1. Scheduled run: one Kiro release upstream.
    publish_kiro(&up, "0.7.44");
    let r = aws.execute(json!({"trigger": "schedule"}));
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let entered = states_entered(&r);
    for s in ["CheckSources", "DownloadAll", "DownloadPackage", "RecordMetadata", "BuildIndex", "Publish", "NotifySuccess"] {
        assert!(entered.iter().any(|e| e == s), "{s} not in history: {entered:?}");
    }
    assert_eq!(r["output"]["items"], json!([{"package_id": "kiro#0.7.44#amd64", "outcome": "inserted"}]));
    assert_eq!(r["output"]["publish"]["status"], "published");
    assert!(r["output"]["notification"]["MessageId"].is_string(), "SNS accepted the summary");
    assert_eq!(aws.get("pool/main/k/kiro/kiro_0.7.44_amd64.pem").await.unwrap(), b"CERT 0.7.44\n");

    // 2. A .deb dropped into staging/ (the S3 event's input) and a new Kiro release.
    aws.put("staging/kiro-repo_1.0_all.deb", deb("kiro-repo", "1.0", "all", None)).await;
    publish_kiro(&up, "0.7.45");
    let r = aws.execute(json!({"trigger": "staging_upload", "key": "staging/kiro-repo_1.0_all.deb"}));
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let mut ids: Vec<String> = r["output"]["items"].as_array().unwrap().iter().map(|i| i["package_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["kiro#0.7.45#amd64", "kiro-repo#1.0#all"]);
    assert_eq!(
        aws.get("kiro-repo.deb").await.unwrap(),
        aws.get("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.unwrap(),
        "convenience copy equals the pool copy"
    );

    // 3. One bad package (an HTML page served as .deb) fails alone; the run succeeds.
    up.set("/cli/page.deb", Reply::Body(b"<!DOCTYPE html><html>rate limited</html>".to_vec()));
    up.set(
        "/cli/releases",
        Reply::Body(json!([{"tag_name": "v1.2.0", "assets": [
            {"name": "kiro-cli_1.2.0_amd64.deb", "browser_download_url": up.url("/cli/page.deb")}]}]).to_string().into_bytes()),
    );
    let r = aws.execute(json!({"trigger": "schedule"}));
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    let item = &r["output"]["items"][0];
    assert_eq!(item["failed"], true, "{item}");
    assert_eq!(item["error"], "InvalidPackage");
    assert!(item["cause"].as_str().unwrap().contains("not a Debian package"), "{item}");
    up.set("/cli/releases", Reply::Body(b"[]".to_vec()));

    // 4. Nothing new and the index is fresh: the run stops at NothingToDo.
    let live_inrelease = aws.get("dists/stable/InRelease").await.unwrap();
    let r = aws.execute(json!({"trigger": "schedule"}));
    assert_eq!(r["status"], "SUCCEEDED");
    assert_eq!(states_entered(&r).last().map(String::as_str), Some("NothingToDo"), "{r:#}");
    assert_eq!(aws.get("dists/stable/InRelease").await.unwrap(), live_inrelease);

    // 5. Manual force rebuild: no source asked, same Packages, new generation.
    up.stop();
    let packages = aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap();
    let r = aws.execute(json!({"force_rebuild": true}));
    assert_eq!(r["status"], "SUCCEEDED", "{r:#}");
    assert_eq!(r["output"]["publish"]["generation"], 4);
    assert_eq!(aws.get("dists/stable/main/binary-amd64/Packages").await.unwrap(), packages);
    assert_eq!(aws.get("kiro-repo.deb").await.unwrap(), aws.get("pool/main/k/kiro-repo/kiro-repo_1.0_all.deb").await.unwrap());

    // 6. Publish refuses to go backwards: generation 1 again is "superseded".
    let mut cmd = Command::new(bin_dir().join("publish"));
    cmd.arg("--invoke").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    aws.function_env(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let event = json!({"payload": {"generation": 1, "manifest_key": "generations/stable/00000001/manifest.json"}, "execution_id": "arn:aws:states:us-east-1:123456789012:execution:pkgrelay:manual-1"});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), event.to_string().as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "superseded", "{result}");
    assert_eq!(result["published_generation"], 4);
    // Logs are JSON lines, each with the execution id.
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().filter(|l| l.get("span").is_some()).all(|l| l["span"]["execution_id"] == "arn:aws:states:us-east-1:123456789012:execution:pkgrelay:manual-1"),
        "{logs}"
    );

    // 7. What the bucket holds verifies, and a real apt client reads it from S3,
    //    anonymously, through the repository paths a bucket policy opens (as the
    //    stack does); staging/ and the private prefixes stay closed.
    let public_paths: Vec<String> = ["pool/*", "dists/*", "index.html", "kiro-repo.deb", "kiro-archive-keyring.gpg"]
        .iter()
        .map(|p| format!("arn:aws:s3:::{}/{p}", aws.bucket))
        .collect();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "PublicRepository", "Effect": "Allow",
        "Principal": "*", "Action": "s3:GetObject", "Resource": public_paths}]});
    aws.s3.put_bucket_policy().bucket(&aws.bucket).policy(policy.to_string()).send().await.unwrap();
    let anonymous = |key: &str| {
        let url = format!("{}/{}/{key}", aws.endpoint, aws.bucket);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(anonymous("dists/stable/InRelease").await, 200);
    assert_eq!(anonymous("staging/kiro-repo_1.0_all.deb").await, 403, "staging/ is never public");
    assert_eq!(anonymous("generations/stable/00000004/manifest.json").await, 403);
    let public = tempfile::tempdir().unwrap();
    aws.download_public(public.path()).await;
    let verify = ws.pkgrelay(&["verify", "--out", public.path().to_str().unwrap()]);
    assert!(verify.status.success(), "verify failed");
    let keyring = public.path().join("kiro-archive-keyring.gpg");
    let apt = Apt::new(&format!("deb [signed-by={}] {}/{}/ stable main", keyring.display(), aws.endpoint, aws.bucket));
    let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
    assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "{text}");
    let (ok, text) = apt.run("apt-get", &["-s", "install", "kiro", "kiro-repo"]);
    assert!(ok && text.contains("Inst kiro (0.7.45") && text.contains("Inst kiro-repo (1.0"), "{text}");
    assert!(aws.get("staging/kiro-repo_1.0_all.deb").await.is_some(), "staging/ stays private and in place");
}
