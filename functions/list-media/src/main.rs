//! list-media: page through the library, batch-read the status table, write the items due to runs/media/<execution>/items.json.
//!
//! A thin shell: the step is `pkgrelay_core::media::steps::list_media`; see
//! pkgrelay_aws::lambda for the event envelope, logging and error names, and
//! statemachine/media.md for the contract.

use pkgrelay_aws::lambda;
use pkgrelay_core::media::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_media(
        "list-media",
        |ctx, input: steps::ListMediaInput| async move { steps::list_media(&ctx, input).await },
    )
    .await
}
