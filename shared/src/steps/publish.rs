//! publish: make a built generation live, in the order its plan gives (for APT:
//! canonical index files, Release and Release.gpg, InRelease last, then the root
//! page and convenience copy). Refuses to go backwards: if a newer generation is
//! already published it stops with `superseded` and changes nothing.

use super::{Context, StepError, StepResult};
use crate::blob::{BlobError, WriteMode};
use crate::model::Publication;
use crate::repository::{Manifest, ObjectRef, PlanEntry};
use crate::store::PublishRecord;
use anyhow::anyhow;
use futures_util::{StreamExt as _, TryStreamExt as _};
use std::collections::HashMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishInput {
    pub generation: u64,
    pub manifest_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishStatus {
    Published,
    Superseded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishOutput {
    pub status: PublishStatus,
    pub generation: u64,
    /// The generation live after this step.
    pub published_generation: u64,
    pub url: String,
    pub packages: usize,
    pub valid_until: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What retention did (objects deleted, kept in grace, …); absent when
    /// this publish did not make its generation live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::retention::RetentionReport>,
}

pub async fn publish(ctx: &Context, input: PublishInput) -> StepResult<PublishOutput> {
    let suite = ctx.suite().to_owned();
    let url = ctx.format.base_url().unwrap_or_else(|| ctx.config.repository.base_url.clone());
    let bytes = ctx.private.get_bytes(&input.manifest_key).await?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StepError::Internal(anyhow!("manifest {}: {e}", input.manifest_key)))?;
    if manifest.generation != input.generation || manifest.suite != suite {
        return Err(StepError::Internal(anyhow!(
            "manifest {} is generation {} of {}, not {} of {suite}",
            input.manifest_key,
            manifest.generation,
            manifest.suite,
            input.generation
        )));
    }
    let superseded = |published| PublishOutput {
        status: PublishStatus::Superseded,
        generation: input.generation,
        published_generation: published,
        url: url.clone(),
        packages: manifest.packages,
        valid_until: manifest.valid_until.clone(),
        warnings: vec![],
        retention: None,
    };
    let state = ctx.store.suite(&suite).await?;
    let live = state.published.as_ref().map_or(0, |p| p.generation);
    if live >= input.generation {
        tracing::warn!(generation = input.generation, published = live, "superseded: a newer generation is live");
        return Ok(superseded(live));
    }
    match state.lease {
        Some(lease) if lease.generation == input.generation && lease.until > super::now().unix_timestamp() => {}
        // A newer generation took over the suite: it saw at least what this one did.
        Some(lease) if lease.generation > input.generation => {
            tracing::warn!(
                generation = input.generation,
                building = lease.generation,
                "superseded: a newer generation is being built"
            );
            return Ok(superseded(live));
        }
        _ => {
            return Err(StepError::Internal(anyhow!(
                "generation {} of {suite} no longer holds the suite's lease (it ran out): nothing published; the next run rebuilds",
                input.generation
            )));
        }
    }

    // The lease is this generation's: give it back if anything below fails, so
    // that the next run need not wait for it to run out.
    let (warnings, retention) = match write_plan_and_record(ctx, &input, &manifest, &suite).await {
        Ok(Some(done)) => done,
        Ok(None) => {
            return Ok(superseded(ctx.store.suite(&suite).await?.published.map_or(0, |p| p.generation)));
        }
        Err(e) => {
            if let Err(release) = ctx.store.release_lease(&suite, input.generation).await {
                tracing::warn!(generation = input.generation, "could not release the lease: {release}");
            }
            return Err(e);
        }
    };
    tracing::info!(generation = input.generation, packages = manifest.packages, %url, "published");
    super::crash_point("publish");
    Ok(PublishOutput {
        status: PublishStatus::Published,
        generation: input.generation,
        published_generation: input.generation,
        url,
        packages: manifest.packages,
        valid_until: manifest.valid_until,
        warnings,
        retention: Some(retention),
    })
}

/// The file name → SHA-256 map an `edge_names` entry holds.
async fn name_map(ctx: &Context, entry: &PlanEntry) -> StepResult<std::collections::BTreeMap<String, String>> {
    let bytes = match &entry.from {
        ObjectRef::Public(from) => ctx.public.get_bytes(from).await?,
        inline => inline.inline().unwrap_or_default(),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| StepError::Internal(anyhow!("{}: not a map of file names to SHA-256: {e}", entry.key)))
}

/// Hand the names of `entry` that differ from the live generation's (`was`;
/// all of them without one) to the rewrite in front of the public store, as
/// full public keys (`brew/bottles/<name>` → hex), before the entry itself
/// and everything after it in the plan (the API files naming the bottles).
/// Names the live generation had and this one dropped stay: clients holding
/// the older API files may still ask for them until retention collects the
/// bottle after its grace period.
async fn put_edge_names(
    ctx: &Context,
    names: &dyn crate::blob::EdgeNames,
    dir: &str,
    entry: &PlanEntry,
    was: Option<&PlanEntry>,
) -> StepResult<()> {
    let now = name_map(ctx, entry).await?;
    let before = match was {
        Some(was) if was.edge_names.as_deref() == Some(dir) => name_map(ctx, was).await.unwrap_or_else(|e| {
            tracing::warn!("the live generation's {} is unreadable ({e}): every name is written again", was.key);
            Default::default()
        }),
        _ => Default::default(),
    };
    let prefix = &ctx.repository.prefix;
    let changed: Vec<(String, String)> = now
        .iter()
        .filter(|(name, sha)| before.get(*name) != Some(*sha))
        .map(|(name, sha)| (format!("{prefix}{dir}{name}"), sha.clone()))
        .collect();
    tracing::info!(key = %entry.key, names = now.len(), changed = changed.len(), "names for the rewrite in front of the store");
    names.put(&changed).await.map_err(|e| StepError::from(e).context(format!("publishing the names of {}", entry.key)))
}

/// Plan entries marked `unordered` written at once, at most.
const WRITES_AT_ONCE: usize = 32;

/// Write one plan entry, unless the live generation already put the same
/// there (and it is still there) and the run is not forced. A missing
/// optional source is a warning, returned.
async fn write_entry(
    ctx: &Context,
    input: &PublishInput,
    manifest: &Manifest,
    previous: &HashMap<&str, &PlanEntry>,
    entry: &PlanEntry,
) -> StepResult<Option<String>> {
    let was = previous.get(entry.key.as_str()).copied();
    if !manifest.full && was.is_some_and(|p| p.from == entry.from) && ctx.public.exists(&entry.key).await? {
        return Ok(None);
    }
    if let (Some(dir), Some(names)) = (&entry.edge_names, &ctx.edge_names) {
        put_edge_names(ctx, names.as_ref(), dir, entry, if manifest.full { None } else { was }).await?;
    }
    let result = match &entry.from {
        ObjectRef::Public(from) => ctx.public.copy(from, &entry.key, WriteMode::Overwrite).await,
        inline => {
            let bytes = inline.inline().ok_or_else(|| {
                StepError::Internal(anyhow!("manifest {}: {} has unreadable inline content", input.manifest_key, entry.key))
            })?;
            ctx.public.put_bytes(&entry.key, bytes, WriteMode::Overwrite).await
        }
    };
    match result {
        Ok(()) => {
            if let Some(note) = &entry.note {
                let was = was.and_then(|p| p.note.as_deref());
                tracing::info!(key = %entry.key, now = %note, was = was.unwrap_or("-"), "wrote {}: {note} (was {})", entry.key, was.unwrap_or("none"));
            }
            Ok(None)
        }
        Err(e @ BlobError::NotFound { .. }) if entry.optional => {
            let msg = format!("{} not written: {e}", entry.key);
            tracing::warn!("{msg}");
            Ok(Some(msg))
        }
        Err(e) => Err(StepError::from(e).context(format!("publishing {}", entry.key))),
    }
}

/// Copy the plan in order, let retention account for the new generation
/// (and delete what is due; see [`super::collect`]), then record the
/// publication (which releases the lease). `None`: a newer generation was
/// recorded meanwhile.
async fn write_plan_and_record(
    ctx: &Context,
    input: &PublishInput,
    manifest: &Manifest,
    suite: &str,
) -> StepResult<Option<(Vec<String>, crate::retention::RetentionReport)>> {
    // The live generation's plan, by key: what it wrote needs no second write,
    // and its notes say how noted objects change. Unreadable: every entry is
    // written, which is always safe.
    let live = ctx.store.suite(suite).await?.published;
    let live_manifest = super::live_manifest(ctx, live.as_ref()).await.ok().flatten();
    let previous: HashMap<&str, &PlanEntry> =
        live_manifest.as_ref().map(|m| m.plan.iter().map(|p| (p.key.as_str(), p)).collect()).unwrap_or_default();
    let mut warnings = Vec::new();
    let plan = &manifest.plan;
    let mut i = 0;
    while i < plan.len() {
        if !plan[i].unordered {
            warnings.extend(write_entry(ctx, input, manifest, &previous, &plan[i]).await?);
            i += 1;
            continue;
        }
        // A run of entries whose order does not matter among themselves (a
        // Homebrew mirror's image indexes: thousands for a full mirror, one
        // copy each, which one after another would outlast the function's
        // timeout): several at once. The next ordered entry waits for all.
        let end = plan[i..].iter().position(|e| !e.unordered).map_or(plan.len(), |n| i + n);
        let writes: Vec<_> =
            plan[i..end].iter().map(|entry| write_entry(ctx, input, manifest, &previous, entry)).collect();
        let written: Vec<Option<String>> =
            futures_util::stream::iter(writes).buffer_unordered(WRITES_AT_ONCE).try_collect().await?;
        warnings.extend(written.into_iter().flatten());
        i = end;
    }
    let retention = super::collect::collect(
        ctx,
        suite,
        live.as_ref().map(|p| (p, live_manifest.as_ref())),
        &input.manifest_key,
        manifest,
    )
    .await;
    let publication = Publication {
        generation: input.generation,
        date: manifest.date.clone(),
        valid_until: manifest.valid_until.clone(),
        manifest_key: input.manifest_key.clone(),
        recorded: manifest.recorded,
    };
    match ctx.store.record_published(suite, &publication).await? {
        PublishRecord::Recorded => Ok(Some((warnings, retention))),
        PublishRecord::Superseded { .. } => Ok(None),
        PublishRecord::LeaseLost => Err(StepError::Internal(anyhow!(
            "generation {} of {suite} lost the suite's lease while publishing; the next run rebuilds",
            input.generation
        ))),
    }
}
