//! check-sources: ask every configured source for candidates and drop those already in the store.
//!
//! A thin shell: the step is `pkgrelay_core::steps::check_sources`; see pkgrelay_aws::lambda
//! for the event envelope, logging and error names.

use pkgrelay_aws::env::Needs;
use pkgrelay_aws::lambda;
use pkgrelay_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run("check-sources", Needs::default(), |ctx, input: steps::CheckSourcesInput| async move {
        steps::check_sources(&ctx, input).await
    })
    .await
}
