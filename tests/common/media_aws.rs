//! The media stack (issue 14) on localaws, for the media tests: one
//! deployment of `cdk/cdk.out.dev/pkgrelay-dev-media.template.json` under
//! the test's own prefix (tests/localaws/README.md, "The media stack"), its
//! outputs, and the calls a test makes: put the credentials in, fire the
//! daily schedule as EventBridge Scheduler would, wait for the execution,
//! take a statement out of a role. Include it with `pub mod media_aws;` in
//! tests/common/mod.rs.

use super::aws::{admin, endpoint, sdk_config, urlencode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct MediaAws {
    pub endpoint: String,
    /// The deployment's id in localaws, and everything it answered.
    pub id: String,
    pub info: Value,
    pub bucket: String,
    pub status_table: String,
    pub secret_arn: String,
    pub topic_arn: String,
    pub state_machine_arn: String,
    /// The daily schedule's name (`pkgrelay-tNNN-media-daily`).
    pub schedule: String,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub work: tempfile::TempDir,
}

impl MediaAws {
    /// Deploy the media stack: the functions read `config_dir` (their
    /// bundled /var/task/config) and get `lambda_env` on top of the
    /// template's environment (e.g. the fake GoPro cloud's URL).
    pub async fn setup(config_dir: &Path, lambda_env: Value) -> MediaAws {
        let endpoint = endpoint();
        let info = admin(
            reqwest::Method::POST,
            "deployments",
            Some(json!({"stack": "media", "config_dir": config_dir, "retry_delay_ms": 20, "lambda_env": lambda_env})),
        )
        .await;
        let s = |v: &Value| v.as_str().unwrap_or_else(|| panic!("{v} in {info:#}")).to_owned();
        let outputs = &info["outputs"];
        let sdk = sdk_config(&endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let schedule = info["schedules"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_else(|| panic!("the media stack has no schedule: {info:#}"));
        MediaAws {
            id: s(&info["id"]),
            bucket: s(&outputs["MediaBucketName"]),
            status_table: s(&outputs["StatusTableName"]),
            secret_arn: s(&outputs["CredentialsSecretArn"]),
            topic_arn: s(&outputs["AlertTopicArn"]),
            state_machine_arn: s(&outputs["StateMachineArn"]),
            schedule,
            sfn: aws_sdk_sfn::Client::new(&sdk),
            s3,
            endpoint,
            info,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// The operator puts the credentials (a JSON document) into the secret; its version id.
    pub async fn put_credentials(&self, secret: &Value) -> String {
        let out = aws_sdk_secretsmanager::Client::new(&sdk_config(&self.endpoint).await)
            .put_secret_value()
            .secret_id(&self.secret_arn)
            .secret_string(secret.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutSecretValue: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e)));
        out.version_id().unwrap_or_default().to_owned()
    }

    /// A DynamoDB client for the operator (the status table).
    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&sdk_config(&self.endpoint).await)
    }

    /// The environment `function` runs with, for invoking its binary directly.
    pub fn function_env(&self, function: &str, cmd: &mut Command) {
        let env = self.info["functions"][function]["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("no function {function} in the media deployment"));
        for (k, v) in env {
            cmd.env(k, v.as_str().unwrap());
        }
        cmd.env("WORK_DIR", self.work.path());
    }

    /// Fire the daily schedule as EventBridge Scheduler would (its role
    /// decides states:StartExecution): localaws' answer,
    /// `{fired, started, execution_arn?, outcome?, error?, dead_letter?}`.
    /// `input`: None sends the schedule's own input (`{"trigger":"schedule"}`).
    pub async fn fire_schedule(&self, input: Option<Value>) -> Value {
        let body = match input {
            Some(input) => json!({ "input": input }),
            None => json!({}),
        };
        admin(reqwest::Method::POST, &format!("deployments/{}/schedules/{}/fire", self.id, urlencode(&self.schedule)), Some(body)).await
    }

    /// Fire the schedule and wait for the execution it started; its report.
    pub async fn run_scheduled(&self) -> Value {
        let fired = self.fire_schedule(None).await;
        assert_eq!(fired["started"], json!(true), "the schedule started nothing: {fired:#}");
        self.finish(fired["execution_arn"].as_str().unwrap()).await
    }

    /// Wait for an execution to end; localaws' report of it (as `Aws::finish`).
    pub async fn finish(&self, arn: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let d = self.sfn.describe_execution().execution_arn(arn).send().await.unwrap();
            if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
                break;
            }
            assert!(Instant::now() < deadline, "{arn} still running after 30 minutes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin(reqwest::Method::GET, &format!("executions/report?arn={}", urlencode(arn)), None).await
    }

    /// Take one statement out of a role: a function's name, `media` (the
    /// state machine) or `schedule:<name>`; `restore_policy` puts it back.
    pub async fn remove_statement(&self, role: &str, sid: &str) -> Value {
        admin(
            reqwest::Method::POST,
            &format!("deployments/{}/statements", self.id),
            Some(json!({"role": role, "sid": sid, "action": "remove"})),
        )
        .await
    }

    pub async fn restore_policy(&self, role: &str) {
        admin(reqwest::Method::POST, &format!("deployments/{}/statements", self.id), Some(json!({"role": role, "action": "restore"})))
            .await;
    }

    /// Requests refused (IAM, KMS, limits, a schedule's role) in this deployment.
    pub async fn denials(&self) -> Vec<Value> {
        admin(reqwest::Method::GET, &format!("deployments/{}/denials", self.id), None).await["denials"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// What the functions logged.
    pub async fn logs(&self) -> String {
        admin(reqwest::Method::GET, &format!("deployments/{}/logs", self.id), None).await["logs"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}
