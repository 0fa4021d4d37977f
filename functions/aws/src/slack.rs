//! The optional Slack notifier: a Lambda function subscribed to the success
//! and failure topics posts each notification (the start notice, the run's
//! summary, a failure) to a Slack incoming webhook, as readable lines
//! (`pkgrelay_core::notify::chat_text`).
//!
//! The webhook URL is a credential (whoever holds it may post to the
//! channel), so it lives in a Secrets Manager secret (`SLACK_WEBHOOK_SECRET_ARN`),
//! is read once per cold start, and never reaches a log: a failed post is
//! logged with the webhook's host only. A secret without a value means "not
//! configured": the notification is skipped with one log line, not failed
//! (SNS would only retry it).

use anyhow::{Context as _, anyhow};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Where the webhook lives, and the URL once read.
pub struct Slack {
    secrets: aws_sdk_secretsmanager::Client,
    secret_arn: String,
    webhook: OnceCell<Option<reqwest::Url>>,
    http: reqwest::Client,
}

impl Slack {
    pub async fn from_env() -> anyhow::Result<Slack> {
        let secret_arn = std::env::var("SLACK_WEBHOOK_SECRET_ARN")
            .map_err(|_| anyhow!("environment variable SLACK_WEBHOOK_SECRET_ARN is not set"))?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // Slack answers directly; a redirect would be someone else's host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Slack { secrets: aws_sdk_secretsmanager::Client::new(&sdk), secret_arn, webhook: OnceCell::new(), http })
    }

    /// The webhook URL, or `None` while the secret holds no value.
    async fn webhook(&self) -> anyhow::Result<Option<&reqwest::Url>> {
        let url = self
            .webhook
            .get_or_try_init(|| async {
                let out = match self.secrets.get_secret_value().secret_id(&self.secret_arn).send().await {
                    Ok(out) => out,
                    // Created empty by the stack: no AWSCURRENT version yet.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                        return Ok(None);
                    }
                    Err(e) => {
                        return Err(anyhow!(
                            "reading the webhook secret {}: {}",
                            self.secret_arn,
                            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                        ));
                    }
                };
                let text = out.secret_string().unwrap_or_default().trim();
                if text.is_empty() {
                    return Ok(None);
                }
                // Never echo the value: it is the credential.
                let url = reqwest::Url::parse(text)
                    .map_err(|e| anyhow!("the webhook secret {} does not hold a URL ({e})", self.secret_arn))?;
                Ok::<_, anyhow::Error>(Some(url))
            })
            .await?;
        Ok(url.as_ref())
    }

    /// Post every SNS record of `event` (`{"Records": [{"Sns": {Subject, Message}}]}`).
    pub async fn handle(&self, event: Value) -> anyhow::Result<Value> {
        let records = event.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
        let Some(webhook) = self.webhook().await? else {
            tracing::info!(records = records.len(), "no Slack webhook in the secret: notification not sent");
            return Ok(serde_json::json!({"posted": 0, "configured": false}));
        };
        let host = webhook.host_str().unwrap_or("-").to_owned();
        let mut posted = 0;
        for r in &records {
            let sns = &r["Sns"];
            let subject = sns["Subject"].as_str().unwrap_or("pkgrelay");
            let message = sns["Message"].as_str().unwrap_or_default();
            let text = pkgrelay_core::notify::chat_text(subject, message);
            // The error of a failed send names the URL: report the host only.
            let response = self
                .http
                .post(webhook.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "text": text }).to_string())
                .send()
                .await
                .map_err(|e| anyhow!("posting to the Slack webhook at {host}: {}", e.without_url()))?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(anyhow!(
                    "the Slack webhook at {host} answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))
                .context(format!("notification {subject:?}"));
            }
            tracing::info!(subject, host = %host, "notification posted to Slack");
            posted += 1;
        }
        Ok(serde_json::json!({"posted": posted, "configured": true}))
    }
}
