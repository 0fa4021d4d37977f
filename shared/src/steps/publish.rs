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
}

pub async fn publish(ctx: &Context, input: PublishInput) -> StepResult<PublishOutput> {
    let suite = ctx.suite().to_owned();
    let url = ctx.config.repository.base_url.clone();
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
    };
    if let Some(live) = ctx.store.suite(&suite).await?.published
        && live.generation >= input.generation
    {
        tracing::warn!(generation = input.generation, published = live.generation, "superseded: a newer generation is live");
        return Ok(superseded(live.generation));
    }

    let mut warnings = Vec::new();
    for entry in &manifest.plan {
        let result = match &entry.from {
            ObjectRef::Public(from) => ctx.public.copy(from, &entry.key, WriteMode::Overwrite).await,
            ObjectRef::Staged(from) => match ctx.private.get_bytes(from).await {
                Ok(bytes) => ctx.public.put_bytes(&entry.key, bytes, WriteMode::Overwrite).await,
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => {}
            Err(e @ BlobError::NotFound { .. }) if entry.optional => {
                let msg = format!("{} not written: {e}", entry.key);
                tracing::warn!("{msg}");
                warnings.push(msg);
            }
            Err(e) => return Err(StepError::from(e).context(format!("publishing {}", entry.key))),
        }
    }

    let publication = Publication {
        generation: input.generation,
        date: manifest.date.clone(),
        valid_until: manifest.valid_until.clone(),
        manifest_key: input.manifest_key.clone(),
    };
    match ctx.store.record_published(&suite, &publication).await? {
        PublishRecord::Recorded => {}
        PublishRecord::Superseded { published } => return Ok(superseded(published)),
    }
    tracing::info!(generation = input.generation, packages = manifest.packages, %url, "published");
    Ok(PublishOutput {
        status: PublishStatus::Published,
        generation: input.generation,
        published_generation: input.generation,
        url,
        packages: manifest.packages,
        valid_until: manifest.valid_until,
        warnings,
    })
}
