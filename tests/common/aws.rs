//! AWS as it really runs, on 127.0.0.1 (`tests/localaws`, started by
//! `tests/run` in front of moto): each test deploys its own copy of the stack
//! CDK synthesizes for `env=dev` — the bucket with its policy, the tables, the
//! secret, the topics, the state machine — and everything it does goes
//! through the gateway that enforces what AWS enforces: each function signs
//! with its own role's credentials and may do exactly what that role's
//! synthesized policy allows; items over 400 KB, states over 256 KiB,
//! functions over their memory size or timeout fail as they would on AWS.
//! Executions start through the Step Functions API (`aws-sdk-sfn`); apt reads
//! the repository through the CloudFront stand-in (origin access control and
//! the bucket policy decide what is public).

use super::{Apt, Workspace};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The tests' own key: the account administrator's, as an operator would use
/// (localaws allows it everything; the functions never see it).
pub const ACCESS_KEY_ID: &str = "AKIAPKGRELAYTESTONLY";
pub const SECRET_ACCESS_KEY: &str = "pkgrelay/test/secret+access+key/never+logged";

/// The localaws endpoint (AWS APIs through the gateway, the Step Functions
/// API, the admin API under /_localaws/).
pub fn endpoint() -> String {
    std::env::var("PKGRELAY_AWS_ENDPOINT").expect(
        "PKGRELAY_AWS_ENDPOINT is not set: run the tests with `tests/run`, which starts moto and tests/localaws",
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

/// SDK configuration for the operator (admin) on localaws.
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

/// One call to the localaws admin API.
pub async fn admin(method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}/_localaws/{path}", endpoint());
    let mut request = reqwest::Client::new().request(method.clone(), &url);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {url}: {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: {e}: {text}"))
}

pub struct Aws {
    pub endpoint: String,
    /// The deployment's id in localaws, and everything it answered.
    pub id: String,
    pub info: Value,
    pub bucket: String,
    pub packages_table: String,
    pub state_table: String,
    pub secret_arn: String,
    pub state_machine_arn: String,
    /// Where clients reach the repository (the CloudFront stand-in).
    pub cdn: String,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub work: tempfile::TempDir,
    /// The armored signing key put into the secret (to prove it never reaches a log).
    pub signing_key_armored: String,
    /// What functions invoked directly by a test logged.
    pub logs: std::sync::Mutex<String>,
}

impl Aws {
    /// Deploy the synthesized stack for this test: the functions read
    /// `ws`'s config/ (their bundled /var/task/config), whose `dev`
    /// environment URL is pointed at the CloudFront stand-in.
    pub async fn setup(ws: &Workspace) -> Aws {
        let endpoint = endpoint();
        let info = admin(
            reqwest::Method::POST,
            "deployments",
            Some(json!({"config_dir": ws.path("config"), "retry_delay_ms": 20})),
        )
        .await;
        let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{v} in {info:#}")).to_owned();
        let outputs = &info["outputs"];
        let cdn = s(&info["cloudfront_url"]);
        let repository = ws.path("config/repository.yaml");
        let text = std::fs::read_to_string(&repository).unwrap();
        let text = text.replace("base_url: https://dev.apt.kiro.dev/", &format!("base_url: {cdn}"));
        assert!(text.contains(&cdn), "config/repository.yaml has no environments.dev.base_url to point at {cdn}");
        std::fs::write(&repository, text).unwrap();

        let sdk = sdk_config(&endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        // The operator puts the signing key into the secret the stack created empty.
        let key = pkgrelay_core::sign::SigningKey::generate("pkgrelay e2e <e2e@example.com>").unwrap();
        let armored = key.to_armored_secret().unwrap();
        let secret_arn = s(&outputs["SigningKeySecretArn"]);
        aws_sdk_secretsmanager::Client::new(&sdk)
            .put_secret_value()
            .secret_id(&secret_arn)
            .secret_string(armored.clone())
            .send()
            .await
            .unwrap();
        Aws {
            id: s(&info["id"]),
            bucket: s(&outputs["BucketName"]),
            packages_table: s(&outputs["PackagesTableName"]),
            state_table: s(&outputs["StateTableName"]),
            state_machine_arn: s(&outputs["StateMachineArn"]),
            secret_arn,
            cdn,
            sfn: aws_sdk_sfn::Client::new(&sdk),
            s3,
            endpoint,
            info,
            work: tempfile::tempdir().unwrap(),
            logs: Default::default(),
            signing_key_armored: armored,
        }
    }

    /// A DynamoDB client for the operator.
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&sdk_config(&self.endpoint).await)
    }

    /// The package store as the functions see it.
    pub async fn store(&self) -> pkgrelay_aws::dynamo::DynamoStore {
        pkgrelay_aws::dynamo::DynamoStore::new(self.dynamodb().await, &self.packages_table, &self.state_table)
    }

    /// The environment `function` runs with, for invoking its binary directly:
    /// its own role's credentials, its environment from the template.
    pub fn function_env(&self, function: &str, cmd: &mut Command) {
        let env = self.info["functions"][function]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("no function {function} in the deployment"));
        for (k, v) in env {
            cmd.env(k, v.as_str().unwrap());
        }
        cmd.env("WORK_DIR", self.work.path());
    }

    /// The environment of an operator's `pkgrelay` on this deployment.
    pub fn operator_env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("PKGRELAY_S3_FORCE_PATH_STYLE", "true");
    }

    /// The stack outputs as `cdk deploy --outputs-file` writes them.
    pub fn write_outputs_file(&self, path: &Path) {
        std::fs::write(path, self.info["cdk_outputs"].to_string()).unwrap();
    }

    /// Start an execution through the Step Functions API; its ARN.
    pub async fn start(&self, input: Value) -> String {
        start_execution(&self.sfn, &self.state_machine_arn, input).await
    }

    /// Wait for an execution to end; localaws' report of it: the status,
    /// output (parsed), error and cause, the history events as
    /// GetExecutionHistory gives them, counts (state transitions, Lambda
    /// invocations and GB-seconds), the largest state payload, the children of
    /// its Distributed Map.
    pub async fn finish(&self, arn: &str) -> Value {
        finish_execution(&self.sfn, arn).await
    }

    /// One execution, start to end.
    pub async fn execute(&self, input: Value) -> Value {
        let arn = self.start(input).await;
        self.finish(&arn).await
    }

    /// Every Retry pause of later executions, in milliseconds.
    pub async fn set_retry_delay(&self, ms: u64) {
        admin(reqwest::Method::POST, &format!("deployments/{}/options", self.id), Some(json!({"retry_delay_ms": ms})))
            .await;
    }

    /// Environment variables every function gets from now on (test switches).
    pub async fn set_function_env(&self, env: Value) {
        admin(reqwest::Method::POST, &format!("deployments/{}/options", self.id), Some(json!({"lambda_env": env})))
            .await;
    }

    /// Remove the statement `sid` from `role`'s policy (a function name, or
    /// `pipeline` for the state machine); `restore_policy` puts it back.
    pub async fn remove_statement(&self, role: &str, sid: &str) -> Value {
        admin(
            reqwest::Method::POST,
            &format!("deployments/{}/statements", self.id),
            Some(json!({"role": role, "sid": sid, "action": "remove"})),
        )
        .await
    }

    pub async fn restore_policy(&self, role: &str) {
        admin(
            reqwest::Method::POST,
            &format!("deployments/{}/statements", self.id),
            Some(json!({"role": role, "action": "restore"})),
        )
        .await;
    }

    /// Inject a fault in front of moto (tests/localaws/gateway.mjs FaultList):
    /// `rule` is `{match: {service, operation, principal, keyPrefix, …}, respond:
    /// {status, code, message} | {reset: true}, times}`; it is scoped to this
    /// deployment. Returns the rule's id.
    pub async fn add_fault(&self, mut rule: Value) -> String {
        rule["match"]["deployment"] = json!(self.id);
        let out = admin(reqwest::Method::POST, "faults", Some(rule)).await;
        out["fault"]["id"].as_str().unwrap().to_owned()
    }

    /// How many requests a fault hit; then it is removed.
    pub async fn remove_fault(&self, id: &str) -> u64 {
        let list = admin(reqwest::Method::GET, "faults", None).await;
        let hits = list["faults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map_or(0, |f| f["hits"].as_u64().unwrap());
        admin(reqwest::Method::DELETE, &format!("faults/{}", urlencode(id)), None).await;
        hits
    }

    /// What the gateway counted for this deployment since the last reset.
    pub async fn meter(&self) -> Value {
        admin(reqwest::Method::GET, &format!("deployments/{}/meter", self.id), None).await
    }

    pub async fn reset_meter(&self) {
        admin(reqwest::Method::POST, &format!("deployments/{}/meter/reset", self.id), None).await;
    }

    /// Requests the gateway refused (IAM, limits) or faulted, in order.
    pub async fn denials(&self) -> Vec<Value> {
        admin(reqwest::Method::GET, &format!("deployments/{}/denials", self.id), None).await["denials"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Everything the functions logged, in executions and direct invocations.
    pub async fn all_logs(&self) -> String {
        let executions = admin(reqwest::Method::GET, &format!("deployments/{}/logs", self.id), None).await["logs"]
            .as_str()
            .unwrap()
            .to_owned();
        format!("{executions}\n{}", self.logs.lock().unwrap())
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
                if ["staging/", "generations/", "config/", "runs/"].iter().any(|p| key.starts_with(p)) {
                    continue;
                }
                let path = dir.join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, self.get(key).await.unwrap()).unwrap();
            }
        }
    }

    /// HTTP status of a GET of `key` through the CloudFront stand-in, as any client.
    pub async fn cdn_status(&self, key: &str) -> u16 {
        reqwest::get(format!("{}{key}", self.cdn)).await.unwrap().status().as_u16()
    }

    /// HTTP status of an unsigned GET of `key` straight from the bucket.
    pub async fn anonymous_status(&self, key: &str) -> u16 {
        reqwest::get(format!("{}/{}/{key}", self.endpoint, self.bucket)).await.unwrap().status().as_u16()
    }

    /// A real apt client reads the repository through the CloudFront stand-in:
    /// `apt-get update --error-on=any` succeeds without a warning. Returns the client.
    pub async fn apt_accepts(&self) -> Apt {
        let keyring = self.work.path().join("keyring.gpg");
        let bytes = reqwest::get(format!("{}kiro-archive-keyring.gpg", self.cdn)).await.unwrap();
        assert_eq!(bytes.status(), 200, "the keyring is public");
        std::fs::write(&keyring, bytes.bytes().await.unwrap()).unwrap();
        let apt = Apt::new(&format!("deb [signed-by={}] {} stable main", keyring.display(), self.cdn));
        let (ok, text) = apt.run("apt-get", &["update", "--error-on=any"]);
        assert!(ok && !text.lines().any(|l| l.starts_with("W:") || l.starts_with("E:")), "apt-get update:\n{text}");
        apt
    }

    /// No credentials or key material in any log line of any function.
    pub async fn assert_no_secrets_logged(&self) {
        let logs = self.all_logs().await;
        assert!(logs.lines().count() > 5, "the functions logged: {}", logs.lines().count());
        let key_lines: Vec<&str> = self.signing_key_armored.lines().filter(|l| l.len() > 40).collect();
        let mut needles = vec![
            ("operator access key id", ACCESS_KEY_ID.to_owned()),
            ("operator secret access key", SECRET_ACCESS_KEY.to_owned()),
            ("private key block", "PRIVATE KEY BLOCK".to_owned()),
        ];
        for (name, f) in self.info["functions"].as_object().unwrap() {
            needles.push(("function secret key", f["secret_access_key"].as_str().unwrap().to_owned()));
            needles
                .push(("function session token", f["environment"]["AWS_SESSION_TOKEN"].as_str().unwrap().to_owned()));
            let _ = name;
        }
        needles.extend(key_lines.iter().map(|l| ("signing key material", (*l).to_owned())));
        for (what, needle) in needles {
            assert!(!logs.contains(&needle), "{what} found in the logs");
        }
    }
}

/// Start an execution of `state_machine_arn` through the Step Functions API; its ARN.
pub async fn start_execution(sfn: &aws_sdk_sfn::Client, state_machine_arn: &str, input: Value) -> String {
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .input(input.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartExecution: {}", aws_sdk_sfn::error::DisplayErrorContext(&e)));
    out.execution_arn().to_owned()
}

/// Wait for an execution to end (30 minutes at most) and answer localaws'
/// report of it (see [`Aws::finish`]).
pub async fn finish_execution(sfn: &aws_sdk_sfn::Client, arn: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let d = sfn.describe_execution().execution_arn(arn).send().await.unwrap();
        if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            break;
        }
        assert!(Instant::now() < deadline, "{arn} still running after 30 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = admin(reqwest::Method::GET, &format!("executions/report?arn={}", urlencode(arn)), None).await;
    eprintln!(
        "execution {}: {} (largest state {} bytes at {})",
        report["name"], report["status"], report["largestPayload"]["bytes"], report["largestPayload"]["where"]
    );
    report
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The states an execution entered, in order (its own history; the states of
/// its Distributed Map's children are in [`child_states`]).
pub fn states_entered(report: &Value) -> Vec<String> {
    report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.ends_with("StateEntered")))
        .filter_map(|e| e["stateEnteredEventDetails"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// The states the children of the execution's Distributed Map entered, all together.
pub fn child_states(report: &Value) -> Vec<String> {
    report["children"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["states"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The versions `apt-cache madison` lists for `package`, newest first.
pub fn madison(apt: &Apt, package: &str) -> Vec<String> {
    let (ok, text) = apt.run("apt-cache", &["madison", package]);
    assert!(ok, "{text}");
    text.lines().filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_owned())).collect()
}

/// Every state of the execution (and of its children) stayed under AWS's 256 KiB.
pub fn assert_states_within_limit(report: &Value) {
    let largest = &report["largestPayload"];
    let bytes = largest["bytes"].as_u64().unwrap();
    assert!(bytes <= 256 * 1024, "a state of {} bytes at {} (limit 262144)", bytes, largest["where"]);
}

/// A stand-in for a Slack incoming webhook on 127.0.0.1: records each
/// POST's path and JSON body, answers `200 ok` as Slack does.
pub struct FakeWebhook {
    pub url: String,
    posts: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

impl FakeWebhook {
    /// Listening at `path` (Slack's are `/services/T…/B…/<token>`).
    pub fn start(path: &str) -> FakeWebhook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let posts: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
        let log = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.split_once(':')
                        && n.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        FakeWebhook { url, posts }
    }

    /// The `text` of every post so far, in order.
    pub fn texts(&self) -> Vec<String> {
        self.posts.lock().unwrap().iter().map(|(_, b)| b["text"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

impl Aws {
    /// SNS deliveries to Lambda subscriptions so far, once all have ended:
    /// `[{function, topicArn, ok, error}]`.
    pub async fn sns_deliveries(&self) -> Vec<Value> {
        admin(reqwest::Method::GET, &format!("deployments/{}/sns-deliveries", self.id), None).await["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
