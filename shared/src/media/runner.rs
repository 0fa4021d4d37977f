//! The in-process media pipeline: the four steps chained the way
//! `statemachine/media.asl.json` chains them, for `pkgrelay media sync`.
//!
//! Authenticate -> ListMedia -> each item of items.json, at most
//! [`MAX_CONCURRENCY`] at once: DownloadMedia (an error is the item's
//! `FAILED` result, as the Map's Catch makes it; no retry in-process: the
//! next run tries again) -> the results written as the Map's ResultWriter
//! writes them -> Summarize -> once, when an access token was refused:
//! Authenticate (force_refresh) and the items again (pass 2).

use super::MediaItem;
use super::steps::{
    self, AuthenticateInput, AuthenticateOutput, DownloadMediaInput, DownloadStatus, ListMediaInput, ListMediaOutput,
    MediaContext, MediaStepError, Outcome, SummarizeInput, SummarizeOutput,
};
use crate::blob::WriteMode;
use crate::steps::items::ResultWriterDetails;
use futures_util::StreamExt;

/// Items copied at once (the state machine's Map MaxConcurrency).
pub const MAX_CONCURRENCY: usize = 5;

/// What a run did.
#[derive(Debug, Clone)]
pub struct MediaRun {
    /// The last authentication (pass 2's, when there was one).
    pub authenticated: AuthenticateOutput,
    /// Whether the credentials were rotated and written back during the run.
    pub rotated: bool,
    pub listing: ListMediaOutput,
    /// The last pass's summary.
    pub summary: SummarizeOutput,
    pub passes: u32,
}

/// One run, as the state machine would make it, under a local execution name.
pub async fn run(ctx: &MediaContext) -> Result<MediaRun, MediaStepError> {
    let now = ctx.clock.now();
    let name = format!(
        "local-{:04}{:02}{:02}T{:02}{:02}{:02}-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        std::process::id()
    );
    let ctx = ctx.for_run(&name, None);
    let mut authenticated = steps::authenticate(&ctx, AuthenticateInput { force_refresh: false }).await?;
    let mut rotated = authenticated.refreshed;
    let listing =
        steps::list_media(&ctx, ListMediaInput { secret_version_id: authenticated.secret_version_id.clone() }).await?;
    let bytes = ctx.runs.get_bytes(&listing.items.key).await?;
    let items: Vec<MediaItem> =
        serde_json::from_slice(&bytes).map_err(|e| MediaStepError::Internal(format!("{}: {e}", listing.items.key)))?;
    let mut pass = 1;
    loop {
        let (results, login) = download_all(&ctx, &authenticated.secret_version_id, &items, pass).await?;
        let summary = steps::summarize(&ctx, SummarizeInput { listing: listing.clone(), results, pass }).await?;
        match summary.outcome {
            Outcome::Reauthenticate if pass == 1 => {
                authenticated = steps::authenticate(&ctx, AuthenticateInput { force_refresh: true }).await?;
                rotated |= authenticated.refreshed;
                pass += 1;
            }
            Outcome::LoginRequired => {
                return Err(MediaStepError::LoginRequired(
                    login.unwrap_or_else(|| "the login is no longer valid: log in again".into()),
                ));
            }
            _ => return Ok(MediaRun { authenticated, rotated, listing, summary, passes: pass }),
        }
    }
}

/// Every item through download-media; the results written as a ResultWriter
/// would, under `runs/media/<execution>/results/pass<n>/`. Also the first
/// re-login message an item answered, if any.
async fn download_all(
    ctx: &MediaContext,
    version: &str,
    items: &[MediaItem],
    pass: u32,
) -> Result<(ResultWriterDetails, Option<String>), MediaStepError> {
    let records: Vec<(serde_json::Value, Option<String>)> = futures_util::stream::iter(items.iter().cloned())
        .map(|item| async move {
            let id = item.id.clone();
            let input = DownloadMediaInput { secret_version_id: version.to_owned(), item };
            let input_json = serde_json::to_string(&input).unwrap_or_default();
            let (output, login) = match steps::download_media(ctx, input).await {
                Ok(out) => {
                    let login = (out.status == DownloadStatus::LoginRequired).then(|| out.reason.clone()).flatten();
                    (serde_json::to_value(&out).unwrap_or_default(), login)
                }
                // What the Map's Catch (ItemFailed) makes of an error.
                Err(e) => {
                    tracing::warn!(media = id, error_type = e.error_type(), "media item failed: {e}");
                    (serde_json::json!({"media_id": id, "status": "FAILED", "reason": e.to_string()}), None)
                }
            };
            let record = serde_json::json!({"Input": input_json, "Output": output.to_string(), "Status": "SUCCEEDED"});
            (record, login)
        })
        .buffer_unordered(MAX_CONCURRENCY)
        .collect()
        .await;
    let login = records.iter().find_map(|(_, l)| l.clone());
    let records: Vec<_> = records.into_iter().map(|(r, _)| r).collect();
    let base = format!("{}results/pass{pass}", ctx.run_prefix());
    let mut files = serde_json::Map::new();
    files.insert("FAILED".into(), serde_json::json!([]));
    files.insert("PENDING".into(), serde_json::json!([]));
    let mut succeeded = Vec::new();
    if !records.is_empty() {
        let key = format!("{base}/SUCCEEDED_0.json");
        let body = serde_json::to_vec(&records).map_err(|e| MediaStepError::Internal(e.to_string()))?;
        let size = body.len();
        ctx.runs.put_bytes(&key, body, WriteMode::Overwrite).await?;
        succeeded.push(serde_json::json!({"Key": key, "Size": size}));
    }
    files.insert("SUCCEEDED".into(), serde_json::Value::Array(succeeded));
    let manifest_key = format!("{base}/manifest.json");
    let manifest = serde_json::json!({"DestinationBucket": ctx.runs_bucket, "ResultFiles": files});
    ctx.runs.put_bytes(&manifest_key, manifest.to_string().into_bytes(), WriteMode::Overwrite).await?;
    Ok((ResultWriterDetails { bucket: ctx.runs_bucket.clone(), key: manifest_key }, login))
}
