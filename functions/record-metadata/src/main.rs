//! record-metadata: the conditional write of one package entry to the store.
//!
//! A thin shell: the step is `pkgrelay_core::steps::record_metadata`; see pkgrelay_aws::lambda
//! for the event envelope, logging and error names.

use pkgrelay_aws::env::Needs;
use pkgrelay_aws::lambda;
use pkgrelay_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run("record-metadata", Needs::default(), |ctx, input: steps::StagedArtifact| async move {
        steps::record_metadata(&ctx, input).await
    })
    .await
}
