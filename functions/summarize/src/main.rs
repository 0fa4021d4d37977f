//! summarize: counts, bytes and the outcome of a media run from the Map's results; one embedded-metric line.
//!
//! A thin shell: the step is `pkgrelay_core::media::steps::summarize`; see
//! pkgrelay_aws::lambda for the event envelope, logging and error names, and
//! statemachine/media.md for the contract.

use pkgrelay_aws::lambda;
use pkgrelay_core::media::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_media(
        "summarize",
        |ctx, input: steps::SummarizeInput| async move { steps::summarize(&ctx, input).await },
    )
    .await
}
