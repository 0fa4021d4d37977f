//! build-index: allocate the next generation, read the whole store, render the
//! index, write its content-addressed files (write-once) and keep the signed
//! per-generation files private until publish.

use super::{Context, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::repository::{Manifest, ObjectRef};
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

pub async fn build_index(ctx: &Context, _input: BuildIndexInput) -> StepResult<BuildIndexOutput> {
    let suite = ctx.suite().to_owned();
    let generation = ctx.store.allocate_generation(&suite).await?;
    let entries = ctx.store.all().await?;
    let rendered = ctx.format.render(&entries, now()).map_err(StepError::Internal)?;

    for (key, bytes) in rendered.immutable {
        ctx.public.put_bytes(&key, bytes, WriteMode::WriteOnce).await?;
    }
    let prefix = generation_prefix(&suite, generation);
    for (name, bytes) in rendered.staged {
        ctx.private.put_bytes(&format!("{prefix}/{name}"), bytes, WriteMode::Overwrite).await?;
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
    ctx.private.put_bytes(&manifest_key, json, WriteMode::Overwrite).await?;
    tracing::info!(generation, packages = manifest.packages, %manifest_key, "index built");
    Ok(BuildIndexOutput { generation, manifest_key, packages: manifest.packages })
}
