//! build-index: allocate the next generation, stream the whole store into the
//! repository format, write the index's content-addressed files (write-once,
//! only the new ones; compressed files of unchanged text are reused from the
//! live generation) and keep the rest of the generation (signed Release files,
//! index.html) in its manifest, private until publish.

use super::{Context, LEASE_SECONDS, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::model::rfc3339;
use crate::repository::{Compressed, Manifest};
use crate::store::Allocation;
use super::items::{ItemsSummary, MapResults};
use anyhow::anyhow;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildIndexInput {
    /// Rewrite every published object, not only those that changed.
    #[serde(default)]
    pub force_rebuild: bool,
    /// The candidates' Distributed Map output, when the run had candidates:
    /// their outcomes are summarised into the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<MapResults>,
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
async fn reusable(ctx: &Context, live: Option<&crate::model::Publication>) -> StepResult<Vec<Compressed>> {
    let Some(manifest) = super::live_manifest(ctx, live).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(manifest.compressed.len());
    for c in manifest.compressed {
        if ctx.public.exists(&c.key).await? {
            out.push(c);
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
    let items = match &input.items {
        Some(results) => match ItemsSummary::from_map_results(ctx, results).await {
            Ok(summary) => Some(summary),
            // The summary is a report: an unreadable one never stops the index.
            Err(e) => {
                tracing::warn!("the candidates' results are unreadable: {e}");
                None
            }
        },
        None => None,
    };
    let result = build(ctx, input, &suite, generation).await.map(|out| BuildIndexOutput { items, ..out });
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

async fn build(ctx: &Context, input: BuildIndexInput, suite: &str, generation: u64) -> StepResult<BuildIndexOutput> {
    let suite = suite.to_owned();
    // Read before the scan: whatever is recorded after this mark may be missing
    // from this generation, and the next run will see it as unpublished.
    let state = ctx.store.suite(&suite).await?;
    let reuse = reusable(ctx, state.published.as_ref()).await?;
    let generation_input = match ctx.format.generation_input() {
        Some(key) => match ctx.private.get_bytes(&key).await {
            Ok(bytes) => Some(bytes),
            Err(crate::blob::BlobError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut builder = ctx.format.index_builder_with(reuse, generation_input).map_err(StepError::Internal)?;
    ctx.store.for_each_entry(&mut |entry| builder.add(entry)).await?;
    let rendered = builder.finish(now()).map_err(StepError::Internal)?;

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
    };
    let manifest_key = format!("{}/manifest.json", generation_prefix(&suite, generation));
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StepError::Internal(e.into()))?;
    ctx.private.put_bytes(&manifest_key, json, WriteMode::Overwrite).await?;
    tracing::info!(generation, packages = manifest.packages, %manifest_key, "index built");
    Ok(BuildIndexOutput { generation, manifest_key, packages: manifest.packages, items: None })
}
