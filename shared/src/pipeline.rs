//! The in-process pipeline: the five steps chained the way the state machine
//! chains them (`statemachine/pipeline.asl.json`), for `pkgrelay sync`.
//!
//! CheckSources -> (nothing to do: stop) -> for each candidate, at most
//! [`MAX_CONCURRENCY`] at once: DownloadPackage -> RecordMetadata (a failure is
//! reported and the others go on) -> BuildIndex -> Publish.

use crate::model::Candidate;
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

async fn ingest(ctx: &Context, candidate: Candidate) -> Result<(String, RecordOutcome), StepError> {
    let id = candidate.package_id();
    let staged = steps::download_package(ctx, candidate).await.map_err(|e| e.context(&id))?;
    let entry_key = staged.entry_key.clone();
    let recorded = steps::record_metadata(ctx, staged).await.map_err(|e| e.context(&id))?;
    // On AWS a lifecycle rule expires runs/; here the run tidies up after itself.
    if let Some(key) = entry_key {
        let _ = ctx.private.delete(&key).await;
    }
    Ok((recorded.package_id, recorded.outcome))
}

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
    let results: Vec<_> = futures_util::stream::iter(candidates)
        .map(|c| {
            let what = c.package_id();
            async move { (what, ingest(ctx, c).await) }
        })
        .buffer_unordered(MAX_CONCURRENCY)
        .collect()
        .await;
    for (what, result) in results {
        match result {
            Ok((id, RecordOutcome::Inserted)) => summary.new.push(id),
            Ok((_, RecordOutcome::AlreadyPresent)) => summary.already_processed += 1,
            Err(e) => {
                tracing::error!(package_id = %what, error_type = e.error_type(), "failed: {e}");
                summary.failed.push(Failure { what, error_type: e.error_type().into(), message: e.to_string() });
            }
        }
    }
    summary.new.sort();

    // Nothing changed in the store and the live index is fresh: leave it alone.
    if summary.new.is_empty() && !force && !checked.refresh_due && checked.unpublished == 0 {
        return Ok(summary);
    }
    let built = steps::build_index(ctx, BuildIndexInput { force_rebuild: force, items: None }).await?;
    let published =
        steps::publish(ctx, PublishInput { generation: built.generation, manifest_key: built.manifest_key }).await?;
    summary.published = Some(published);
    Ok(summary)
}
