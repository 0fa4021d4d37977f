//! record-metadata: the conditional write to the store. A new id is inserted;
//! the same id with the same SHA256 is a no-op; the same id with other bytes is
//! an error and nothing is overwritten.

use super::{Context, StagedArtifact, StepError, StepResult};
use crate::store::InsertOutcome;
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

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
    let entry = staged.entry(ctx).await?;
    let outcome = match ctx.store.insert(ctx.suite(), &entry).await? {
        InsertOutcome::Inserted => RecordOutcome::Inserted,
        InsertOutcome::AlreadyPresent => RecordOutcome::AlreadyPresent,
        InsertOutcome::Conflict { existing_sha256 } => {
            return Err(StepError::Conflict(anyhow!(
                "{} is already recorded with SHA256 {existing_sha256}; refusing to replace it with {}",
                entry.package_id,
                entry.checksums.sha256
            )));
        }
    };
    tracing::info!(package_id = %entry.package_id, ?outcome, "recorded");
    Ok(RecordOutput { package_id: entry.package_id, outcome })
}
