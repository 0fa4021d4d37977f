//! build-index: allocate the next generation, stream the whole store into the
//! repository format, write the index's content-addressed files (write-once,
//! only the new ones; compressed files of unchanged text are reused from the
//! live generation) and keep the rest of the generation (signed Release files,
//! index.html) in its manifest, private until publish.

use super::items::{ItemsSummary, MapResults};
use super::{Context, LEASE_SECONDS, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::model::rfc3339;
use crate::repository::{Compressed, Manifest};
use crate::store::Allocation;
use anyhow::anyhow;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildIndexInput {
    /// Rewrite every published object, not only those that changed.
    #[serde(default)]
    pub force_rebuild: bool,
    /// The candidates' Distributed Map output, when the run had candidates:
    /// their outcomes are summarised into the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<MapResults>,
    /// check-sources' source failures (the state machine passes
    /// `$.check.failures`): a run with any deletes nothing ([`crate::retention`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_failures: Vec<super::SourceFailure>,
    /// Candidates that failed in this run, when the caller counted them
    /// itself (the in-process pipeline; on AWS `items` says).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildIndexOutput {
    pub generation: u64,
    pub manifest_key: String,
    pub packages: usize,
    /// What became of this run's candidates (counts, the first ids and
    /// failures); `null` when the run had none (always present: the state
    /// machine's Summarize reads it).
    #[serde(default)]
    pub items: Option<ItemsSummary>,
}

/// Private prefix of a generation's files.
pub fn generation_prefix(suite: &str, generation: u64) -> String {
    format!("generations/{suite}/{generation:08}")
}

/// The live generation's compressed index files that are still in the public
/// store (a forced rebuild recompresses any that went missing). No live
/// generation, or an unreadable manifest: nothing to reuse.
async fn reusable(ctx: &Context, live: Option<&Manifest>) -> StepResult<Vec<Compressed>> {
    let Some(manifest) = live else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(manifest.compressed.len());
    for c in &manifest.compressed {
        if ctx.public.exists(&c.key).await? {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// HEADs made at once when checking that newly listed artifacts exist.
const EXISTS_CONCURRENCY: usize = 16;

/// Of `keys`, those the public store does not hold.
async fn missing(ctx: &Context, keys: Vec<String>) -> StepResult<Vec<String>> {
    use futures_util::StreamExt;
    let checked: Vec<(String, Result<bool, crate::blob::BlobError>)> = futures_util::stream::iter(keys)
        .map(|key| async move {
            let found = ctx.public.exists(&key).await;
            (key, found)
        })
        .buffer_unordered(EXISTS_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (key, found) in checked {
        if !found? {
            out.push(key);
        }
    }
    Ok(out)
}

/// Content-addressed index files checked and written at once, at most.
const IMMUTABLE_WRITES_AT_ONCE: usize = 32;

/// Allocate the next generation (taking the suite's lease), build it, and give
/// the lease back if building fails; publish releases it on success.
pub async fn build_index(ctx: &Context, input: BuildIndexInput) -> StepResult<BuildIndexOutput> {
    let suite = ctx.suite().to_owned();
    let generation = match ctx.store.allocate_generation(&suite, now().unix_timestamp(), LEASE_SECONDS).await? {
        Allocation::Granted(g) => g,
        Allocation::Busy(lease) => {
            let until = time::OffsetDateTime::from_unix_timestamp(lease.until).map(rfc3339).unwrap_or_default();
            return Err(StepError::Busy(anyhow!(
                "generation {} of {suite} is being built and published (its lease runs until {until}); try again shortly",
                lease.generation
            )));
        }
    };
    // Whether the run had failures: retention deletes only after a run
    // without any. Unreadable results count as failures.
    let mut clean = input.source_failures.is_empty() && input.failed == 0;
    let items = match &input.items {
        Some(results) => match ItemsSummary::from_map_results(ctx, results).await {
            Ok(summary) => {
                clean &= summary.failed_count == 0;
                Some(summary)
            }
            // The summary is a report: an unreadable one never stops the index.
            Err(e) => {
                tracing::warn!("the candidates' results are unreadable: {e}");
                clean = false;
                None
            }
        },
        None => None,
    };
    let result = build(ctx, input, &suite, generation, clean).await.map(|out| BuildIndexOutput { items, ..out });
    if result.is_ok() {
        super::crash_point("build-index");
    }
    if result.is_err()
        && let Err(e) = ctx.store.release_lease(&suite, generation).await
    {
        tracing::warn!(generation, "could not release the lease after a failed build: {e}");
    }
    result
}

async fn build(
    ctx: &Context,
    input: BuildIndexInput,
    suite: &str,
    generation: u64,
    clean: bool,
) -> StepResult<BuildIndexOutput> {
    let suite = suite.to_owned();
    // Read before the scan: whatever is recorded after this mark may be missing
    // from this generation, and the next run will see it as unpublished.
    let state = ctx.store.suite(&suite).await?;
    let live = super::live_manifest(ctx, state.published.as_ref()).await?;
    let reuse = reusable(ctx, live.as_ref()).await?;
    let generation_input = match ctx.format.generation_input() {
        Some(key) => match ctx.private.get_bytes(&key).await {
            Ok(bytes) => Some(bytes),
            Err(crate::blob::BlobError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let live_refs: HashSet<String> = live.as_ref().map(|m| m.references.iter().cloned().collect()).unwrap_or_default();

    // Retention deletes the artifacts of entries no index lists any more,
    // but the store keeps the entries (check-sources must not fetch them
    // again). An index that lists such an entry again (a raised `keep`, a
    // bottle back in the API) would name a file that is gone. So the
    // artifacts of entries recorded before the last deletion (the ledger
    // says when) that this generation lists and the live one did not are
    // checked to exist (a HEAD each), and an entry whose artifact is gone is
    // left out — after which `keep` may list an older one, checked in turn.
    // Everything the live generation lists exists (retention never deletes
    // what a generation within its grace period references); an entry
    // recorded after the last deletion cannot have lost its file (a
    // deletion only takes what an earlier generation listed); a repository
    // that never deleted anything checks nothing (nor does the idle run,
    // which never gets here).
    let ledger_key = crate::retention::ledger_key(&suite);
    let last_deletion = match ctx.private.get_bytes(&ledger_key).await {
        Ok(bytes) => match serde_json::from_slice::<crate::retention::Ledger>(&bytes) {
            Ok(ledger) => ledger.last_deletion,
            // Unreadable: anything may have been deleted.
            Err(e) => {
                tracing::warn!(ledger = %ledger_key, "retention ledger unreadable, every listed artifact is checked: {e}");
                Some(i64::MAX)
            }
        },
        Err(crate::blob::BlobError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let recorded_before = |entry: &crate::model::PackageEntry, t: i64| {
        use time::format_description::well_known::Rfc3339;
        time::OffsetDateTime::parse(&entry.processed_timestamp, &Rfc3339)
            .map_or(true, |at| at.unix_timestamp() <= t.saturating_add(crate::retention::CLOCK_SLACK_SECS))
    };
    let mut gone: HashSet<String> = HashSet::new();
    let mut checked: HashSet<String> = HashSet::new();
    let rendered = loop {
        let mut builder =
            ctx.format.index_builder_with(reuse.clone(), generation_input.clone()).map_err(StepError::Internal)?;
        builder.live_references(&live_refs);
        // Artifacts that may be gone: of entries recorded before the last deletion.
        let mut suspect: HashSet<String> = HashSet::new();
        ctx.store
            .for_each_entry(&mut |entry| {
                let artifact_gone = !gone.is_empty()
                    && (gone.contains(&entry.filename) || entry.companions.iter().any(|c| gone.contains(&c.key)));
                if artifact_gone {
                    return;
                }
                if let Some(t) = last_deletion
                    && recorded_before(&entry, t)
                    && !live_refs.contains(&entry.filename)
                {
                    suspect.insert(entry.filename.clone());
                    suspect.extend(entry.companions.iter().map(|c| c.key.clone()));
                }
                builder.add(entry)
            })
            .await?;
        let rendered = builder.finish(now()).map_err(StepError::Internal)?;
        let unchecked: Vec<String> = rendered
            .artifacts
            .iter()
            .filter(|k| suspect.contains(*k) && !live_refs.contains(*k) && !checked.contains(*k))
            .cloned()
            .collect();
        if unchecked.is_empty() {
            break rendered;
        }
        checked.extend(unchecked.iter().cloned());
        let newly_gone = missing(ctx, unchecked).await?;
        if newly_gone.is_empty() {
            break rendered;
        }
        tracing::warn!(
            count = newly_gone.len(),
            first = %newly_gone[0],
            "entries whose artifact retention deleted are listed again: left out of the index"
        );
        gone.extend(newly_gone);
    };
    let mut references: Vec<String> = rendered.artifacts.iter().chain(&rendered.index_files).cloned().collect();
    references.sort();
    references.dedup();

    // Content-addressed: an object that exists already has these bytes (an
    // unchanged architecture's Packages costs no write). A forced rebuild writes
    // them all again (write-once: identical bytes are accepted).
    // Several at once: a full Homebrew mirror renders thousands of image
    // indexes, which one after another would outlast the function's timeout.
    let force = input.force_rebuild;
    futures_util::stream::iter(rendered.immutable.into_iter().map(Ok::<_, StepError>))
        .try_for_each_concurrent(IMMUTABLE_WRITES_AT_ONCE, |(key, bytes)| async move {
            if force || !ctx.public.exists(&key).await? {
                ctx.public.put_bytes(&key, bytes, WriteMode::WriteOnce).await?;
            }
            Ok(())
        })
        .await?;
    let manifest = Manifest {
        suite: suite.clone(),
        generation,
        date: rendered.date,
        valid_until: rendered.valid_until,
        packages: rendered.packages,
        full: input.force_rebuild,
        plan: rendered.plan,
        compressed: rendered.compressed,
        recorded: state.recorded,
        references,
        clean,
    };
    let manifest_key = format!("{}/manifest.json", generation_prefix(&suite, generation));
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StepError::Internal(e.into()))?;
    ctx.private.put_bytes(&manifest_key, json, WriteMode::Overwrite).await?;
    tracing::info!(generation, packages = manifest.packages, %manifest_key, "index built");
    Ok(BuildIndexOutput { generation, manifest_key, packages: manifest.packages, items: None })
}
