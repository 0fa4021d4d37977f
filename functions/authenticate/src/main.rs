//! authenticate: check the credentials, refresh an OAuth token with less than a day left, write rotated tokens back.
//!
//! A thin shell: the step is `pkgrelay_core::media::steps::authenticate`; see
//! pkgrelay_aws::lambda for the event envelope, logging and error names, and
//! statemachine/media.md for the contract.

use pkgrelay_aws::lambda;
use pkgrelay_core::media::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_media("authenticate", |ctx, input: steps::AuthenticateInput| async move {
        steps::authenticate(&ctx, input).await
    })
    .await
}
