//! `staging_upload`: `.deb` files dropped into the private `staging/` prefix
//! (locally a directory, on AWS the bucket's `staging/` prefix). The package's
//! own control paragraph names it; files for other packages are left to their
//! own configuration.

use super::{STAGING_PREFIX, Source, SourceContext};
use crate::config::PackageConfig;
use crate::digest::Checksums;
use crate::model::{Candidate, SourceType};
use anyhow::Context as _;
use async_trait::async_trait;

pub struct StagingUpload;

/// One staged .deb: its key, control paragraph and digests.
pub struct Staged {
    key: String,
    control: crate::deb::ControlParagraph,
    sums: Checksums,
}

/// Read every staged .deb once: in place when the store is a directory,
/// through a temporary copy otherwise.
async fn scan(ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Staged>> {
    let mut out = Vec::new();
    for object in ctx.private.list(STAGING_PREFIX).await? {
        if !object.key.ends_with(".deb") {
            continue;
        }
        let (control, sums) = match ctx.private.local_path(&object.key) {
            Some(path) => (
                crate::deb::read_control(&path).with_context(|| format!("staged file {}", object.key))?,
                Checksums::of_file(&path)?,
            ),
            None => {
                let tmp = tempfile::NamedTempFile::new_in(ctx.work_dir)?;
                ctx.private.get_to_file(&object.key, tmp.path()).await?;
                (
                    crate::deb::read_control(tmp.path()).with_context(|| format!("staged file {}", object.key))?,
                    Checksums::of_file(tmp.path())?,
                )
            }
        };
        out.push(Staged { key: object.key, control, sums });
    }
    Ok(out)
}

#[async_trait]
impl Source for StagingUpload {
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let staged = ctx.staged.get_or_try_init(|| scan(ctx)).await?;
        Ok(staged
            .iter()
            .filter(|s| s.control.get("Package") == Some(package.name.as_str()))
            .map(|s| Candidate {
                package: package.name.clone(),
                version: s.control.get("Version").unwrap_or_default().to_owned(),
                architecture: s.control.get("Architecture").unwrap_or_default().to_owned(),
                source_type: SourceType::StagingUpload,
                url: s.key.clone(),
                expected_size: Some(s.sums.size),
                expected_sha256: Some(s.sums.sha256.clone()),
                companions: vec![],
                pub_date: None,
                notes: None,
                latest: None,
            })
            .collect())
    }
}
