//! notify-slack: subscribed to the success and failure topics, posts each
//! notification to the Slack incoming webhook whose URL is in the secret
//! `SLACK_WEBHOOK_SECRET_ARN` names (deployed only where the environment
//! asks for it: cdk/lib/environments.ts `slackNotifications`).
//!
//! A thin shell over `pkgrelay_aws::slack`.

use pkgrelay_aws::lambda;
use pkgrelay_aws::slack::Slack;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_plain("notify-slack", Slack::from_env(), |slack, event| async move { slack.handle(event).await }).await
}
