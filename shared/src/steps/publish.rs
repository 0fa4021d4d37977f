//! publish: make a built generation live, in the order its plan gives (for APT:
//! canonical index files, Release and Release.gpg, InRelease last, then the root
//! page and convenience copy). Refuses to go backwards: if a newer generation is
//! already published it stops with `superseded` and changes nothing.

use super::{Context, StepError, StepResult};
use crate::blob::{BlobError, WriteMode};
use crate::model::Publication;
use crate::repository::{Manifest, ObjectRef};
use crate::store::PublishRecord;
use anyhow::anyhow;
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
    // The live generation's notes, to log how noted objects change.
    // Unreadable: every entry is written, which is always safe.
    let live = ctx.store.suite(suite).await?.published;
    let live_manifest = super::live_manifest(ctx, live.as_ref()).await.ok().flatten();
    let previous = live_manifest.as_ref().map(|m| m.plan.clone()).unwrap_or_default();
    let mut warnings = Vec::new();
    for entry in &manifest.plan {
        // What the live generation already put there, and is still there,
        // needs no write (unless forced).
        if !manifest.full
            && previous.iter().any(|p| p.key == entry.key && p.from == entry.from)
            && ctx.public.exists(&entry.key).await?
        {
            continue;
        }
        let result = match &entry.from {
            ObjectRef::Public(from) => ctx.public.copy(from, &entry.key, WriteMode::Overwrite).await,
            inline => {
                let bytes = inline.inline().ok_or_else(|| {
                    StepError::Internal(anyhow!(
                        "manifest {}: {} has unreadable inline content",
                        input.manifest_key,
                        entry.key
                    ))
                })?;
                ctx.public.put_bytes(&entry.key, bytes, WriteMode::Overwrite).await
            }
        };
        match result {
            Ok(()) => {
                if let Some(note) = &entry.note {
                    let was = previous.iter().find(|p| p.key == entry.key).and_then(|p| p.note.as_deref());
                    tracing::info!(key = %entry.key, now = %note, was = was.unwrap_or("-"), "wrote {}: {note} (was {})", entry.key, was.unwrap_or("none"));
                }
            }
            Err(e @ BlobError::NotFound { .. }) if entry.optional => {
                let msg = format!("{} not written: {e}", entry.key);
                tracing::warn!("{msg}");
                warnings.push(msg);
            }
            Err(e) => return Err(StepError::from(e).context(format!("publishing {}", entry.key))),
        }
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
