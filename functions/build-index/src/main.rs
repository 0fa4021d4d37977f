//! build-index: allocate the next generation, render and sign the index, stage it.
//!
//! A thin shell: the step is `pkgrelay_core::steps::build_index`; see pkgrelay_aws::lambda
//! for the event envelope, logging and error names.

use pkgrelay_aws::env::Needs;
use pkgrelay_aws::lambda;
use pkgrelay_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run("build-index", Needs { signing_key: true }, |ctx, input: steps::BuildIndexInput| async move {
        steps::build_index(&ctx, input).await
    })
    .await
}
