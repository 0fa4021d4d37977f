//! download-package: stream one candidate into the pool with one-pass digests and describe it.
//!
//! A thin shell: the step is `pkgrelay_core::steps::download_package`; see pkgrelay_aws::lambda
//! for the event envelope, logging and error names.

use pkgrelay_aws::env::Needs;
use pkgrelay_aws::lambda;
use pkgrelay_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run("download-package", Needs::default(), |ctx, input: pkgrelay_core::model::Candidate| async move {
        steps::download_package(&ctx, input).await
    })
    .await
}
