//! What became of a run's candidates, told without carrying every item in a
//! Step Functions state.
//!
//! On AWS the candidates go through a Distributed Map whose ResultWriter puts
//! each child execution's outcome into the private store; build-index reads
//! them back through [`ItemsSummary::from_map_results`] and hands on a bounded
//! summary (counts, the first ids and failures). In-process, the pipeline adds
//! each outcome as it comes.

use super::{Context, RecordOutcome, StepError, StepResult};
use crate::model::{Candidate, bounded_text};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

/// Private prefix where the state machine's ResultWriter writes.
pub const RESULTS_PREFIX: &str = "runs/results/";

/// Ids listed by name in a summary; beyond, only counted.
const LISTED: usize = 100;
/// Failures listed with their cause; beyond, only counted.
const FAILURES_LISTED: usize = 25;
const CAUSE_LIMIT: usize = 600;

/// The output of a Distributed Map with a ResultWriter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MapResults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_run_arn: Option<String>,
    pub result_writer_details: ResultWriterDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultWriterDetails {
    pub bucket: String,
    pub key: String,
}

/// How one candidate ended: RecordMetadata's output, or the item processor's
/// `ItemFailed` state (`failed: true`, the error and its cause).
#[derive(Debug, Clone, Deserialize)]
pub struct ItemOutcome {
    pub package_id: String,
    #[serde(default)]
    pub outcome: Option<RecordOutcome>,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    pub package_id: String,
    pub error: String,
    pub cause: String,
}

/// Counts, and the first ids and failures by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsSummary {
    pub inserted_count: usize,
    pub inserted: Vec<String>,
    pub already_present: usize,
    pub failed_count: usize,
    pub failed: Vec<ItemFailure>,
}

/// The cause of a Lambda function's error as Step Functions reports it: the
/// JSON of `{errorMessage, errorType, …}`; its message is what a person reads.
pub fn readable_cause(cause: &str) -> String {
    serde_json::from_str::<serde_json::Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

/// One record of a ResultWriter file: a child execution's input and output
/// (JSON text), or its error and cause.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildResult {
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

impl ChildResult {
    /// The output of a child execution that succeeded.
    pub fn succeeded_output(&self) -> Option<&str> {
        self.output.as_deref().filter(|_| self.status.as_deref() == Some("SUCCEEDED"))
    }
}

/// A ResultWriter's output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MapResultsError {
    #[error(transparent)]
    Blob(#[from] crate::blob::BlobError),
    #[error("{0}")]
    Invalid(String),
}

impl From<MapResultsError> for StepError {
    fn from(e: MapResultsError) -> StepError {
        match e {
            MapResultsError::Blob(e) => e.into(),
            MapResultsError::Invalid(m) => StepError::Internal(anyhow!(m)),
        }
    }
}

/// Every record a Distributed Map's ResultWriter wrote: its manifest at
/// `manifest_key` (`ResultFiles` by status), then each result file, in
/// `store` (the bucket the ResultWriter wrote to). Shared by build-index and
/// the media pipeline's summarize.
pub async fn read_child_results(
    store: &dyn crate::blob::ObjectStore,
    manifest_key: &str,
) -> Result<Vec<ChildResult>, MapResultsError> {
    let bytes = store.get_bytes(manifest_key).await?;
    let manifest: ResultManifest = serde_json::from_slice(&bytes)
        .map_err(|e| MapResultsError::Invalid(format!("map results manifest {manifest_key}: {e}")))?;
    let mut all = Vec::new();
    for file in manifest.result_files.values().flatten() {
        let bytes = store.get_bytes(&file.key).await?;
        let records: Vec<ChildResult> = serde_json::from_slice(&bytes)
            .map_err(|e| MapResultsError::Invalid(format!("map results {}: {e}", file.key)))?;
        all.extend(records);
    }
    Ok(all)
}

/// The input of a child execution: the map's ItemSelector output.
#[derive(Deserialize)]
struct ChildInput {
    candidate: Candidate,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultManifest {
    result_files: std::collections::BTreeMap<String, Vec<ResultFile>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultFile {
    key: String,
}

impl ItemsSummary {
    pub fn add(&mut self, item: ItemOutcome) {
        match (item.failed, item.outcome) {
            (false, Some(RecordOutcome::Inserted)) => {
                self.inserted_count += 1;
                if self.inserted.len() < LISTED {
                    self.inserted.push(item.package_id);
                }
            }
            (false, Some(RecordOutcome::AlreadyPresent)) => self.already_present += 1,
            _ => {
                let cause = readable_cause(item.cause.as_deref().unwrap_or(""));
                self.fail(item.package_id, item.error.unwrap_or_else(|| "Unknown".into()), &cause);
            }
        }
    }

    pub fn fail(&mut self, package_id: String, error: String, cause: &str) {
        self.failed_count += 1;
        if self.failed.len() < FAILURES_LISTED {
            self.failed.push(ItemFailure { package_id, error, cause: bounded_text(cause, CAUSE_LIMIT) });
        }
    }

    /// Read what the ResultWriter wrote (its manifest, then each result file).
    pub async fn from_map_results(ctx: &Context, results: &MapResults) -> StepResult<ItemsSummary> {
        let manifest_key = &results.result_writer_details.key;
        if !manifest_key.starts_with(RESULTS_PREFIX) {
            return Err(StepError::Internal(anyhow!(
                "map results at {manifest_key}: expected under {RESULTS_PREFIX} (the state machine's ResultWriter prefix)"
            )));
        }
        let mut summary = ItemsSummary::default();
        for r in read_child_results(ctx.private.as_ref(), manifest_key).await? {
            let outcome = r.succeeded_output().and_then(|o| serde_json::from_str::<ItemOutcome>(o).ok());
            match outcome {
                Some(outcome) => summary.add(outcome),
                None => {
                    // The child execution itself failed (an error no Catch
                    // handles, e.g. States.DataLimitExceeded) or ended oddly.
                    let id = r
                        .input
                        .as_deref()
                        .and_then(|i| serde_json::from_str::<ChildInput>(i).ok())
                        .map(|i| i.candidate.package_id())
                        .unwrap_or_else(|| "?".into());
                    let error = r.error.unwrap_or_else(|| r.status.unwrap_or_else(|| "Unknown".into()));
                    summary.fail(id, error, &readable_cause(r.cause.as_deref().unwrap_or("")));
                }
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_everything_and_lists_a_bounded_part() {
        let mut s = ItemsSummary::default();
        for i in 0..150 {
            s.add(ItemOutcome {
                package_id: format!("p#{i}#all"),
                outcome: Some(RecordOutcome::Inserted),
                failed: false,
                error: None,
                cause: None,
            });
        }
        for i in 0..40 {
            let cause = serde_json::json!({"errorMessage": format!("bad {i} {}", "x".repeat(2000)), "errorType": "InvalidPackage"});
            s.add(ItemOutcome {
                package_id: format!("q#{i}#all"),
                outcome: None,
                failed: true,
                error: Some("InvalidPackage".into()),
                cause: Some(cause.to_string()),
            });
        }
        assert_eq!((s.inserted_count, s.inserted.len(), s.failed_count, s.failed.len()), (150, 100, 40, 25));
        assert!(s.failed[0].cause.starts_with("bad 0 xxx") && s.failed[0].cause.len() <= 600, "{}", s.failed[0].cause);
        assert!(serde_json::to_vec(&s).unwrap().len() < 32 * 1024);
    }
}
