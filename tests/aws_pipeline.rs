//! The AWS pipeline end to end on a local AWS API server (moto, started by
//! `tests/run`): `statemachine/pipeline.asl.json` executed by an existing ASL
//! interpreter (aws-local-stepfunctions) whose Lambda tasks run the real Rust
//! function binaries, against S3, DynamoDB, Secrets Manager and SNS on
//! 127.0.0.1. A real apt client then reads the repository straight from the
//! emulated bucket.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn endpoint() -> String {
    std::env::var("PKGRELAY_AWS_ENDPOINT").expect(
        "PKGRELAY_AWS_ENDPOINT is not set: run the tests with `tests/run`, which starts the local AWS API server",
    )
}

/// The directory holding the function binaries (built by `tests/run`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned(); // target/<profile>/deps/.. 
    for f in ["check-sources", "download-package", "record-metadata", "build-index", "publish"] {
        assert!(dir.join(f).exists(), "{} missing: run `cargo build --workspace --bins` (tests/run does)", dir.join(f).display());
    }
    dir
}

struct Aws {
    endpoint: String,
    bucket: String,
    packages_table: String,
    state_table: String,
    secret_arn: String,
    success_topic: String,
    failure_topic: String,
    s3: aws_sdk_s3::Client,
    work: tempfile::TempDir,
}

/// Create a topic through SNS's query API (no SDK needed for one call).
async fn create_topic(endpoint: &str, name: &str) -> String {
    let body = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("Action=CreateTopic&Name={name}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = body.find("<TopicArn>").expect("CreateTopic answered") + "<TopicArn>".len();
    body[start..start + body[start..].find("</TopicArn>").unwrap()].to_owned()
}

impl Aws {
    async fn setup(ws: &Workspace) -> Aws {
        let endpoint = endpoint();
        let n = format!("{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000);
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region("us-east-1")
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "test"))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let bucket = format!("pkgrelay-e2e-{n}");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let (packages_table, state_table) = (format!("packages-{n}"), format!("state-{n}"));
        pkgrelay_aws::dynamo::create_tables(&aws_sdk_dynamodb::Client::new(&sdk), &packages_table, &state_table)
            .await
            .unwrap();
        let key = pkgrelay_core::sign::SigningKey::generate("pkgrelay e2e <e2e@example.com>").unwrap();
        let secret = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(format!("pkgrelay-signing-key-{n}"))
            .secret_string(key.to_armored_secret().unwrap())
            .send()
            .await
            .unwrap();
        // The configuration lives in the bucket's private config/ prefix, as deployed.
        for rel in ["repository.yaml", "packages/kiro.yaml", "packages/kiro-repo.yaml", "packages/kiro-cli.yaml"] {
            let mut text = std::fs::read_to_string(ws.path(&format!("config/{rel}"))).unwrap();
            if rel == "repository.yaml" {
                text = text.replace("base_url: http://127.0.0.1:8080/", &format!("base_url: {endpoint}/{bucket}/"));
            }
            s3.put_object().bucket(&bucket).key(format!("config/{rel}")).body(ByteStream::from(text.into_bytes())).send().await.unwrap();
        }
        Aws {
            success_topic: create_topic(&endpoint, &format!("pkgrelay-success-{n}")).await,
            failure_topic: create_topic(&endpoint, &format!("pkgrelay-failure-{n}")).await,
            endpoint,
            bucket,
            packages_table,
            state_table,
            secret_arn: secret.arn().unwrap().to_owned(),
            s3,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// The environment the CDK stack gives the functions, pointed at moto.
    fn function_env(&self, cmd: &mut Command) {
        cmd.env("PACKAGES_TABLE", &self.packages_table)
            .env("STATE_TABLE", &self.state_table)
            .env("BUCKET", &self.bucket)
            .env("CONFIG_LOCATION", format!("s3://{}/config/", self.bucket))
            .env("SIGNING_KEY_SECRET_ARN", &self.secret_arn)
            .env("WORK_DIR", self.work.path())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("PKGRELAY_S3_FORCE_PATH_STYLE", "true")
            .env("PKGRELAY_LOG", "info");
    }

    /// One execution of the state machine; returns the harness report.
    fn execute(&self, input: Value) -> Value {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("node");
        cmd.arg(root.join("tests/stepfunctions/run-execution.mjs"))
            .args(["--definition", root.join("statemachine/pipeline.asl.json").to_str().unwrap()])
            .args(["--input", &input.to_string()])
            .args(["--bin-dir", bin_dir().to_str().unwrap()])
            .args(["--success-topic-arn", &self.success_topic, "--failure-topic-arn", &self.failure_topic])
            .args(["--retry-interval-ms", "50"])
            .env("SNS_ENDPOINT", &self.endpoint);
        self.function_env(&mut cmd);
        let out = cmd.output().expect("node runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "harness failed: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        eprintln!("execution {input}: {} {}", report["status"], report["output"].get("publish").unwrap_or(&Value::Null));
        report
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.s3.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }

    async fn put(&self, key: &str, data: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(data)).send().await.unwrap();
    }

    /// Copy the public part of the bucket into `dir` (for `pkgrelay verify`).
    async fn download_public(&self, dir: &Path) {
        let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                let key = o.key().unwrap();
                if key.starts_with("staging/") || key.starts_with("generations/") || key.starts_with("config/") {
                    continue;
                }
                let path = dir.join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, self.get(key).await.unwrap()).unwrap();
            }
        }
    }
}

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
