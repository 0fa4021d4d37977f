//! download-media: copy one media item (every source file of a fresh descriptor) into S3, multipart, resumable.
//!
//! A thin shell: the step is `pkgrelay_core::media::steps::download_media`; see
//! pkgrelay_aws::lambda for the event envelope, logging and error names, and
//! statemachine/media.md for the contract.

use pkgrelay_aws::lambda;
use pkgrelay_core::media::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run_media("download-media", |ctx, input: steps::DownloadMediaInput| async move {
        steps::download_media(&ctx, input).await
    })
    .await
}
