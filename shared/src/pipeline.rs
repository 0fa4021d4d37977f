//! The in-process pipeline: the five steps chained the way the state machine
//! chains them (`statemachine/pipeline.asl.json`), for `pkgrelay sync`.
//!
//! CheckSources -> (nothing to do: stop) -> for each candidate, at most
//! [`MAX_CONCURRENCY`] at once: DownloadPackage -> RecordMetadata (a failure is
//! reported and the others go on) -> BuildIndex -> Publish.

use crate::steps::{
    self, BuildIndexInput, CheckSourcesInput, Context, PublishInput, PublishOutput, RecordOutcome, StepError,
};
use futures_util::StreamExt;
use serde::Serialize;

/// Candidates downloaded at once (the state machine's Map MaxConcurrency default).
pub const MAX_CONCURRENCY: usize = 4;

/// One thing that failed during a run, with its Step Functions error name.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub what: String,
    pub error_type: String,
    pub message: String,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub new: Vec<String>,
    pub already_processed: usize,
    /// Candidates refused before and announced the same way again: not fetched.
    pub skipped_rejected: usize,
    pub failed: Vec<Failure>,
    pub published: Option<PublishOutput>,
}

/// Records staged in one store transaction at most (a bulk import).
const RECORD_BATCH: usize = 256;
/// How long a staged artifact may wait for the rest of its batch.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn run(ctx: &Context, input: CheckSourcesInput) -> Result<RunSummary, StepError> {
    let force = input.force_rebuild;
    let checked = steps::check_sources(ctx, input).await?;
    let mut summary = RunSummary {
        already_processed: checked.already_processed,
        skipped_rejected: checked.skipped_rejected,
        ..Default::default()
    };
    for r in &checked.rejected {
        summary.failed.push(Failure {
            what: format!("staged file {}", r.key),
            error_type: "Rejected".into(),
            message: match &r.moved_to {
                Some(to) => format!("{} (moved to {to})", r.reason),
                None => r.reason.clone(),
            },
        });
    }
    if checked.rejected_count > checked.rejected.len() {
        summary.failed.push(Failure {
            what: "staged files".into(),
            error_type: "Rejected".into(),
            message: format!(
                "{} more moved to staging/rejected/, each with a .reason beside it",
                checked.rejected_count - checked.rejected.len()
            ),
        });
    }
    for f in checked.failures {
        summary.failed.push(Failure {
            what: format!("source of {}", f.package),
            error_type: "SourceError".into(),
            message: f.error,
        });
    }
    if !checked.proceed {
        tracing::info!("nothing new and the published index is fresh");
        return Ok(summary);
    }

    let candidates = match &checked.candidates_key {
        Some(key) => {
            let list = steps::read_candidates(ctx, key).await?;
            let _ = ctx.private.delete(key).await;
            list
        }
        None => Vec::new(),
    };
    // Downloads run MAX_CONCURRENCY at once; what they stage is recorded in
    // batches, one store transaction each: a batch is recorded once it holds
    // RECORD_BATCH artifacts, once its first one has waited RECORD_WAIT, and at
    // the end. (Recording what happens to be ready at each moment would commit
    // once per one to four packages: the commits were a fifth of an ingest.)
    // Waiting costs nothing if the run stops: a staged upload leaves staging/
    // only once recorded, and a download already in the pool is found there
    // the next time.
    let mut staged = futures_util::stream::iter(candidates)
        .map(|c| async move {
            let what = c.package_id();
            let result = steps::download_package(ctx, c).await.map_err(|e| e.context(&what));
            (what, result)
        })
        .buffer_unordered(MAX_CONCURRENCY);
    let fail = |summary: &mut RunSummary, what: String, e: StepError| {
        tracing::error!(package_id = %what, error_type = e.error_type(), "failed: {e}");
        summary.failed.push(Failure { what, error_type: e.error_type().into(), message: e.to_string() });
    };
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut batch_ids = Vec::with_capacity(RECORD_BATCH);
    let mut deadline = tokio::time::Instant::now();
    loop {
        // `None`: the batch's time is up before the next artifact is ready.
        let next = if batch.is_empty() {
            Some(staged.next().await)
        } else {
            tokio::time::timeout_at(deadline, staged.next()).await.ok()
        };
        let done = matches!(next, Some(None));
        if let Some(Some((what, result))) = next {
            match result {
                Ok(artifact) => {
                    if batch.is_empty() {
                        deadline = tokio::time::Instant::now() + RECORD_WAIT;
                    }
                    batch_ids.push((what, artifact.entry_key.clone()));
                    batch.push(artifact);
                }
                Err(e) => fail(&mut summary, what, e),
            }
        }
        let due = done || batch.len() >= RECORD_BATCH || tokio::time::Instant::now() >= deadline;
        if !batch.is_empty() && due {
            let ids = std::mem::take(&mut batch_ids);
            let recorded = steps::record_batch(ctx, std::mem::take(&mut batch)).await;
            for ((what, entry_key), result) in ids.into_iter().zip(recorded) {
                // On AWS a lifecycle rule expires runs/; here the run tidies up after itself.
                if let Some(key) = entry_key {
                    let _ = ctx.private.delete(&key).await;
                }
                match result {
                    Ok(recorded) if recorded.outcome == RecordOutcome::Inserted => {
                        summary.new.push(recorded.package_id)
                    }
                    Ok(_) => summary.already_processed += 1,
                    Err(e) => fail(&mut summary, what.clone(), e.context(&what)),
                }
            }
        }
        if done {
            break;
        }
    }
    summary.new.sort();

    // Nothing changed in the store and the live index is fresh: leave it alone.
    if summary.new.is_empty() && !force && !checked.refresh_due && checked.unpublished == 0 {
        return Ok(summary);
    }
    // Retention deletes only after a run without failures: sources that
    // could not be asked and candidates that failed count; refused staged
    // uploads do not (they are the uploader's, and nothing published
    // depends on them).
    let failed = summary.failed.iter().filter(|f| f.error_type != "Rejected").count();
    let built = steps::build_index(
        ctx,
        BuildIndexInput { force_rebuild: force, items: None, source_failures: Vec::new(), failed },
    )
    .await?;
    let published =
        steps::publish(ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await?;
    summary.published = Some(published);
    Ok(summary)
}
