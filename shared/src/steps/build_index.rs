//! build-index: allocate the next generation, read the whole store, render the
//! index, write its content-addressed files (write-once) and keep the signed
//! per-generation files private until publish.

use super::{Context, LEASE_SECONDS, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::model::rfc3339;
use crate::repository::{Manifest, ObjectRef};
use crate::store::Allocation;
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildIndexInput {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildIndexOutput {
    pub generation: u64,
    pub manifest_key: String,
    pub packages: usize,
}

/// Private prefix of a generation's files.
pub fn generation_prefix(suite: &str, generation: u64) -> String {
    format!("generations/{suite}/{generation:08}")
}

/// Allocate the next generation (taking the suite's lease), build it, and give
/// the lease back if building fails; publish releases it on success.
pub async fn build_index(ctx: &Context, input: BuildIndexInput) -> StepResult<BuildIndexOutput> {
    let suite = ctx.suite().to_owned();
    let generation = match ctx
        .store
        .allocate_generation(&suite, now().unix_timestamp(), LEASE_SECONDS)
        .await?
    {
        Allocation::Granted(g) => g,
        Allocation::Busy(lease) => {
            let until = time::OffsetDateTime::from_unix_timestamp(lease.until)
                .map(rfc3339)
                .unwrap_or_default();
            return Err(StepError::Busy(anyhow!(
                "generation {} of {suite} is being built and published (its lease runs until {until}); try again shortly",
                lease.generation
            )));
        }
    };
    let result = build(ctx, input, &suite, generation).await;
    if result.is_err()
        && let Err(e) = ctx.store.release_lease(&suite, generation).await
    {
        tracing::warn!(
            generation,
            "could not release the lease after a failed build: {e}"
        );
    }
    result
}

async fn build(
    ctx: &Context,
    _input: BuildIndexInput,
    suite: &str,
    generation: u64,
) -> StepResult<BuildIndexOutput> {
    let suite = suite.to_owned();
    let entries = ctx.store.all().await?;
    let rendered = ctx
        .format
        .render(&entries, now())
        .map_err(StepError::Internal)?;

    for (key, bytes) in rendered.immutable {
        ctx.public
            .put_bytes(&key, bytes, WriteMode::WriteOnce)
            .await?;
    }
    let prefix = generation_prefix(&suite, generation);
    for (name, bytes) in rendered.staged {
        ctx.private
            .put_bytes(&format!("{prefix}/{name}"), bytes, WriteMode::Overwrite)
            .await?;
    }
    let plan = rendered
        .plan
        .into_iter()
        .map(|mut p| {
            if let ObjectRef::Staged(name) = &p.from {
                p.from = ObjectRef::Staged(format!("{prefix}/{name}"));
            }
            p
        })
        .collect();
    let manifest = Manifest {
        suite,
        generation,
        date: rendered.date,
        valid_until: rendered.valid_until,
        packages: rendered.packages,
        plan,
    };
    let manifest_key = format!("{prefix}/manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| StepError::Internal(e.into()))?;
    ctx.private
        .put_bytes(&manifest_key, json, WriteMode::Overwrite)
        .await?;
    tracing::info!(generation, packages = manifest.packages, %manifest_key, "index built");
    Ok(BuildIndexOutput {
        generation,
        manifest_key,
        packages: manifest.packages,
    })
}
