//! The local AWS API server (moto, started by `tests/run`) and what the AWS
//! tests set up on it: a bucket, the two tables, the signing key secret, SNS
//! topics, the configuration under `config/`; and the ASL executor that runs
//! `statemachine/pipeline.asl.json` with the real function binaries.

use super::{Apt, Workspace};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Distinctive dummy credentials, so that a test can prove they never reach a log.
pub const ACCESS_KEY_ID: &str = "AKIAPKGRELAYTESTONLY";
pub const SECRET_ACCESS_KEY: &str = "pkgrelay/test/secret+access+key/never+logged";

pub fn endpoint() -> String {
    std::env::var("PKGRELAY_AWS_ENDPOINT").expect(
        "PKGRELAY_AWS_ENDPOINT is not set: run the tests with `tests/run`, which starts the local AWS API server",
    )
}

/// The directory holding the function binaries (built by `tests/run`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned(); // target/<profile>/deps/.. 
    for f in ["check-sources", "download-package", "record-metadata", "build-index", "publish"] {
        assert!(
            dir.join(f).exists(),
            "{} missing: run `cargo build --workspace --bins` (tests/run does)",
            dir.join(f).display()
        );
    }
    dir
}

/// SDK configuration for the emulator.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region("us-east-1")
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .load()
        .await
}

pub struct Aws {
    pub endpoint: String,
    pub bucket: String,
    pub packages_table: String,
    pub state_table: String,
    pub secret_arn: String,
    pub success_topic: String,
    pub failure_topic: String,
    pub s3: aws_sdk_s3::Client,
    pub work: tempfile::TempDir,
    /// The armored signing key put into the secret (to prove it never reaches a log).
    pub signing_key_armored: String,
    /// Everything the function binaries logged, across executions.
    pub logs: std::sync::Mutex<String>,
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
    pub async fn setup(ws: &Workspace) -> Aws {
        let endpoint = endpoint();
        let n = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000
        );
        let sdk = sdk_config(&endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let bucket = format!("pkgrelay-e2e-{n}");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let (packages_table, state_table) = (format!("packages-{n}"), format!("state-{n}"));
        pkgrelay_aws::dynamo::create_tables(&aws_sdk_dynamodb::Client::new(&sdk), &packages_table, &state_table)
            .await
            .unwrap();
        let key = pkgrelay_core::sign::SigningKey::generate("pkgrelay e2e <e2e@example.com>").unwrap();
        let armored = key.to_armored_secret().unwrap();
        let secret = aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(format!("pkgrelay-signing-key-{n}"))
            .secret_string(armored.clone())
            .send()
            .await
            .unwrap();
        // The configuration lives in the bucket's private config/ prefix, as deployed.
        for rel in ["repository.yaml", "packages/kiro.yaml", "packages/kiro-repo.yaml", "packages/kiro-cli.yaml"] {
            let mut text = std::fs::read_to_string(ws.path(&format!("config/{rel}"))).unwrap();
            if rel == "repository.yaml" {
                text = text.replace("base_url: http://127.0.0.1:8080/", &format!("base_url: {endpoint}/{bucket}/"));
            }
            s3.put_object()
                .bucket(&bucket)
                .key(format!("config/{rel}"))
                .body(ByteStream::from(text.into_bytes()))
                .send()
                .await
                .unwrap();
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
            logs: Default::default(),
            signing_key_armored: armored,
        }
    }

    /// A DynamoDB client on the emulator.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&sdk_config(&self.endpoint).await)
    }

    /// The environment the CDK stack gives the functions, pointed at moto.
    pub fn function_env(&self, cmd: &mut Command) {
        cmd.env("PACKAGES_TABLE", &self.packages_table)
            .env("STATE_TABLE", &self.state_table)
            .env("BUCKET", &self.bucket)
            .env("CONFIG_LOCATION", format!("s3://{}/config/", self.bucket))
            .env("SIGNING_KEY_SECRET_ARN", &self.secret_arn)
            .env("WORK_DIR", self.work.path())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("PKGRELAY_S3_FORCE_PATH_STYLE", "true")
            .env("PKGRELAY_LOG", "info");
    }

    /// One execution of the state machine; returns the harness report.
    pub fn execute(&self, input: Value) -> Value {
        self.execute_with_retry_interval(input, 50)
    }

    /// One execution, with every Retry pause replaced by `retry_ms`.
    pub fn execute_with_retry_interval(&self, input: Value, retry_ms: u64) -> Value {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("node");
        cmd.arg(root.join("tests/stepfunctions/run-execution.mjs"))
            .args(["--definition", root.join("statemachine/pipeline.asl.json").to_str().unwrap()])
            .args(["--input", &input.to_string()])
            .args(["--bin-dir", bin_dir().to_str().unwrap()])
            .args(["--success-topic-arn", &self.success_topic, "--failure-topic-arn", &self.failure_topic])
            .args(["--retry-interval-ms", &retry_ms.to_string()])
            .env("SNS_ENDPOINT", &self.endpoint);
        self.function_env(&mut cmd);
        let out = cmd.output().expect("node runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.logs.lock().unwrap().push_str(&stderr);
        assert!(out.status.success(), "harness failed: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        eprintln!(
            "execution {input}: {} {}",
            report["status"],
            report["output"].get("publish").unwrap_or(&Value::Null)
        );
        report
    }

    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.s3.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        Some(out.body.collect().await.unwrap().into_bytes().to_vec())
    }

    pub async fn put(&self, key: &str, data: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(data)).send().await.unwrap();
    }

    /// Copy the public part of the bucket into `dir` (for `pkgrelay verify`).
    pub async fn download_public(&self, dir: &Path) {
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

/// The states an execution entered, in order.
pub fn states_entered(report: &Value) -> Vec<String> {
    report["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "StateEntered")
        .filter_map(|e| e["state"].as_str().map(str::to_owned))
        .collect()
}

/// The versions `apt-cache madison` lists for `package`, newest first.
pub fn madison(apt: &Apt, package: &str) -> Vec<String> {
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
}

impl Aws {
    /// Open the repository paths to anonymous reads, as the stack does;
    /// staging/ and the private prefixes stay closed.
    pub async fn open_repository_paths(&self) {
        let public_paths: Vec<String> =
            ["pool/*", "dists/*", "index.html", "kiro-repo.deb", "kiro-archive-keyring.gpg"]
                .iter()
                .map(|p| format!("arn:aws:s3:::{}/{p}", self.bucket))
                .collect();
        let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "PublicRepository",
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": public_paths}]});
        self.s3.put_bucket_policy().bucket(&self.bucket).policy(policy.to_string()).send().await.unwrap();
    }

    /// HTTP status of an anonymous GET of `key` from the bucket.
    pub async fn anonymous_status(&self, key: &str) -> u16 {
        reqwest::get(format!("{}/{}/{key}", self.endpoint, self.bucket)).await.unwrap().status().as_u16()
    }

    /// A real apt client reads the repository straight from the emulated
    /// bucket (opened with [`Aws::open_repository_paths`]): `apt-get update
    /// --error-on=any` succeeds without a warning. Returns the client.
    pub async fn apt_accepts(&self) -> Apt {
        let keyring = self.work.path().join("keyring.gpg");
        std::fs::write(&keyring, self.get("kiro-archive-keyring.gpg").await.expect("keyring published")).unwrap();
        let apt =
            Apt::new(&format!("deb [signed-by={}] {}/{}/ stable main", keyring.display(), self.endpoint, self.bucket));
        let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
        assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "apt-get update:\n{text}");
        apt
    }
}
