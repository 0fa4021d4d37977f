//! record-metadata: the conditional write to the store. A new id is inserted;
//! the same id with the same SHA256 is a no-op; the same id with other bytes is
//! an error and nothing is overwritten.
//!
//! For a `latest_url` file it then saves the source's record (the validators of
//! the file just recorded), whatever the outcome: inserted, already present
//! (a re-upload of a recorded version: only the validators are new), or a
//! conflict (found by download-package or by the insert; kept in the record,
//! so that the unchanged file is reported by the next runs rather than
//! downloaded again). A failure before this point leaves the old record, and
//! the next run offers the file again.
//!
//! A staged upload, once recorded (or found already recorded), leaves
//! `staging/`: the pool holds it. A staged upload refused as a conflict
//! moves to `staging/rejected/`; any other conflicting candidate is
//! remembered as refused (see download-package).

use super::{Context, StagedArtifact, StepError, StepResult, now};
use crate::model::{Candidate, PackageEntry, SourceState, bounded_text, rfc3339};
use crate::store::InsertOutcome;
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

/// Longest conflict message kept in a source's record.
const CONFLICT_LIMIT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    Inserted,
    AlreadyPresent,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordOutput {
    pub package_id: String,
    pub outcome: RecordOutcome,
}

pub async fn record_metadata(ctx: &Context, staged: StagedArtifact) -> StepResult<RecordOutput> {
    let (entry, source) = open(ctx, staged).await?;
    let inserted = match source.as_ref().and_then(|s| s.conflict.clone()) {
        // download-package found the file to be a recorded version with other
        // bytes and put nothing in the pool: there is nothing to insert.
        Some(conflict) => Err(conflict),
        None => Ok(ctx.store.insert(ctx.suite(), &entry).await?),
    };
    finish(ctx, entry, source, inserted).await
}

/// record-metadata for a whole batch (a bulk import in-process): one store
/// transaction for all the entries, then each one's outcome as
/// [`record_metadata`] reports it. The Lambda function records one item per
/// invocation; the local pipeline records what its downloads staged in
/// batches, which on SQLite is one commit instead of one per package.
pub async fn record_batch(ctx: &Context, staged: Vec<StagedArtifact>) -> Vec<StepResult<RecordOutput>> {
    let mut opened = Vec::with_capacity(staged.len());
    let mut out: Vec<Option<StepResult<RecordOutput>>> = Vec::with_capacity(staged.len());
    for s in staged {
        match open(ctx, s).await {
            Ok(pair) => {
                opened.push(Some(pair));
                out.push(None);
            }
            Err(e) => {
                opened.push(None);
                out.push(Some(Err(e)));
            }
        }
    }
    // Entries to insert: those without a conflict already found.
    let to_insert: Vec<PackageEntry> = opened
        .iter()
        .flatten()
        .filter(|(_, source)| source.as_ref().is_none_or(|s| s.conflict.is_none()))
        .map(|(entry, _)| entry.clone())
        .collect();
    let mut outcomes = match ctx.store.insert_batch(ctx.suite(), &to_insert).await {
        Ok(outcomes) => outcomes.into_iter(),
        Err(e) => {
            let message = e.to_string();
            return out
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Err(StepError::Internal(anyhow!("{message}")))))
                .collect();
        }
    };
    for (slot, pair) in out.iter_mut().zip(opened) {
        let Some((entry, source)) = pair else { continue };
        let inserted = match source.as_ref().and_then(|s| s.conflict.clone()) {
            Some(conflict) => Err(conflict),
            None => Ok(outcomes.next().expect("one outcome per entry inserted")),
        };
        *slot = Some(finish(ctx, entry, source, inserted).await);
    }
    out.into_iter().map(|o| o.expect("every slot filled")).collect()
}

/// The entry, and a latest_url source's record, out of a staged artifact.
async fn open(ctx: &Context, mut staged: StagedArtifact) -> StepResult<(PackageEntry, Option<SourceState>)> {
    let source = staged.source.take();
    Ok((staged.entry(ctx).await?, source))
}

/// What follows the insert: the source's record, a conflict refused (and
/// remembered), the inbox emptied.
async fn finish(
    ctx: &Context,
    entry: PackageEntry,
    source: Option<SourceState>,
    inserted: Result<InsertOutcome, String>,
) -> StepResult<RecordOutput> {
    let outcome = inserted.and_then(|o| match o {
        InsertOutcome::Inserted => Ok(RecordOutcome::Inserted),
        InsertOutcome::AlreadyPresent => Ok(RecordOutcome::AlreadyPresent),
        InsertOutcome::Conflict { existing_sha256 } => Err(format!(
            "{} is already recorded with SHA256 {existing_sha256}; refusing to replace it with {}",
            entry.package_id, entry.checksums.sha256
        )),
    });
    // A source that keeps a record (latest_url) holds a conflict in it.
    let conflict_kept_by_source = source.is_some();
    if let Some(mut source) = source {
        source.conflict = outcome.as_ref().err().map(|c| bounded_text(c, CONFLICT_LIMIT));
        source.recorded_at = rfc3339(now());
        ctx.store.record_source(&source).await?;
        tracing::info!(package = %source.package, validators = ?source.validators, conflict = source.conflict.is_some(), "latest file recorded");
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(conflict) => {
            let e = StepError::Conflict(anyhow!(conflict));
            // A latest_url conflict lives in the source's record already.
            if conflict_kept_by_source {
                return Err(e);
            }
            let candidate = Candidate {
                package: entry.package_name.clone(),
                version: entry.announced_version.clone().unwrap_or_else(|| entry.version.clone()),
                architecture: entry.architecture.clone(),
                source_type: entry.source_type,
                url: entry.source_url.clone(),
                expected_size: None,
                expected_sha256: None,
                companions: vec![],
                pub_date: None,
                notes: None,
                latest: None,
                metadata: None,
            };
            return Err(super::download_package::refuse(ctx, &candidate, Some(entry.checksums.sha256.clone()), e).await);
        }
    };
    if let Some(source) = crate::sources::configured(ctx, &entry.package_name, entry.source_type) {
        source.recorded(ctx, &entry).await;
    }
    tracing::info!(package_id = %entry.package_id, ?outcome, "recorded");
    super::crash_point("record-metadata");
    Ok(RecordOutput { package_id: entry.package_id, outcome })
}
