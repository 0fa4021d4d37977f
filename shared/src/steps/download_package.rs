//! download-package: bring one candidate's artifact into the public store at its
//! pool key, with size, MD5, SHA1 and SHA256 computed in the same pass, and read
//! its own metadata. Nothing is written until the artifact has been checked.

use super::{Context, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::digest::Checksums;
use crate::fetch::Expected;
use crate::model::{Candidate, PackageEntry, SourceType, StoredCompanion, package_id, rfc3339};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

/// A checked artifact in the pool, described well enough to be recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedArtifact {
    pub entry: PackageEntry,
}

pub async fn download_package(ctx: &Context, candidate: Candidate) -> StepResult<StagedArtifact> {
    let id = candidate.package_id();
    let label = format!("{} {} {}", candidate.package, candidate.version, candidate.architecture);
    let tmp = tempfile::Builder::new().prefix("download-").tempfile_in(&ctx.work_dir)?.into_temp_path();
    let expected = Expected { size: candidate.expected_size, sha256: candidate.expected_sha256.clone() };

    let checksums = match candidate.source_type {
        SourceType::StagingUpload => {
            ctx.private.get_to_file(&candidate.url, &tmp).await?;
            let sums = Checksums::of_file(&tmp)?;
            if let Some(want) = &expected.sha256
                && want != &sums.sha256
            {
                return Err(StepError::InvalidPackage(anyhow!(
                    "{}: changed since it was checked (SHA256 {want}, now {})",
                    candidate.url,
                    sums.sha256
                )));
            }
            sums
        }
        SourceType::ExternalDownload | SourceType::GithubRelease => {
            let mut progress = ctx.observer.download(&label);
            ctx.fetcher.download(&candidate.url, &tmp, &expected, progress.as_mut()).await?
        }
    };

    let described = ctx.format.describe_artifact(&candidate, &tmp).map_err(StepError::InvalidPackage)?;
    let id_from_artifact = package_id(&described.name, &described.version, &described.architecture);

    // Refuse before writing anything if the store knows this id with other bytes.
    if let Some(known) = ctx.store.get(&id_from_artifact).await?
        && known.checksums.sha256 != checksums.sha256
    {
        return Err(StepError::Conflict(anyhow!(
            "{id_from_artifact} is already recorded with SHA256 {} (from {}); {} now serves other bytes (SHA256 {}). \
             The recorded package is kept.",
            known.checksums.sha256,
            known.source_url,
            candidate.url,
            checksums.sha256
        )));
    }

    // Companions first, into temporary files, so that a failing one leaves the
    // pool untouched.
    let stem = described.key.strip_suffix(".deb").unwrap_or(&described.key).to_owned();
    let mut companion_files = Vec::new();
    for c in &candidate.companions {
        let path = tempfile::Builder::new().prefix("companion-").tempfile_in(&ctx.work_dir)?.into_temp_path();
        let sums = ctx
            .fetcher
            .download(&c.url, &path, &Expected::default(), &mut ())
            .await
            .map_err(|e| StepError::from(e).context(format!("{} of {id}", c.kind)))?;
        companion_files.push((c, path, sums));
    }

    ctx.public.put_file(&described.key, &tmp, &checksums.sha256, WriteMode::WriteOnce).await?;
    let mut companions = Vec::new();
    for (c, path, sums) in companion_files {
        let key = format!("{stem}.{}", c.suffix);
        ctx.public.put_file(&key, &path, &sums.sha256, WriteMode::WriteOnce).await?;
        companions.push(StoredCompanion {
            kind: c.kind.clone(),
            key,
            url: c.url.clone(),
            size: sums.size,
            sha256: sums.sha256,
        });
    }

    let config = ctx.config.package(&candidate.package).map(|p| p.fields()).unwrap_or_default();
    tracing::info!(package_id = %id_from_artifact, size = checksums.size, sha256 = %checksums.sha256, key = %described.key, "downloaded");
    Ok(StagedArtifact {
        entry: PackageEntry {
            package_id: id_from_artifact,
            package_name: described.name,
            version: described.version,
            architecture: described.architecture,
            control: described.control,
            config,
            filename: described.key,
            checksums,
            source_type: candidate.source_type,
            source_url: candidate.url,
            companions,
            pub_date: candidate.pub_date,
            notes: candidate.notes,
            processed_timestamp: rfc3339(now()),
        },
    })
}
