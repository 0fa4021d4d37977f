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
use crate::model::{Candidate, SourceType, bounded_text, rfc3339};
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

pub async fn record_metadata(ctx: &Context, mut staged: StagedArtifact) -> StepResult<RecordOutput> {
    let source = staged.source.take();
    let entry = staged.entry(ctx).await?;
    let outcome = match source.as_ref().and_then(|s| s.conflict.clone()) {
        // download-package found the file to be a recorded version with other
        // bytes and put nothing in the pool: there is nothing to insert.
        Some(conflict) => Err(conflict),
        None => match ctx.store.insert(ctx.suite(), &entry).await? {
            InsertOutcome::Inserted => Ok(RecordOutcome::Inserted),
            InsertOutcome::AlreadyPresent => Ok(RecordOutcome::AlreadyPresent),
            InsertOutcome::Conflict { existing_sha256 } => Err(format!(
                "{} is already recorded with SHA256 {existing_sha256}; refusing to replace it with {}",
                entry.package_id, entry.checksums.sha256
            )),
        },
    };
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
            if entry.source_type == SourceType::LatestUrl {
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
            };
            return Err(super::download_package::refuse(ctx, &candidate, Some(entry.checksums.sha256.clone()), e).await);
        }
    };
    if entry.source_type == SourceType::StagingUpload {
        // The inbox is emptied only now that the store holds the entry: a
        // failure before this leaves the upload for the next run.
        if let Err(e) = ctx.private.delete(&entry.source_url).await {
            tracing::warn!(key = %entry.source_url, "recorded, but the staged file could not be removed: {e}");
        }
    }
    tracing::info!(package_id = %entry.package_id, ?outcome, "recorded");
    super::crash_point("record-metadata");
    Ok(RecordOutput { package_id: entry.package_id, outcome })
}
