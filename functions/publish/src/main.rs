//! publish: make a built generation live, in order, unless a newer one already is.
//!
//! A thin shell: the step is `pkgrelay_core::steps::publish`; see pkgrelay_aws::lambda
//! for the event envelope, logging and error names.

use pkgrelay_aws::env::Needs;
use pkgrelay_aws::lambda;
use pkgrelay_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run("publish", Needs::default(), |ctx, input: steps::PublishInput| async move {
        steps::publish(&ctx, input).await
    })
    .await
}
