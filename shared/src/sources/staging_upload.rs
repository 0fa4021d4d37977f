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

#[async_trait]
impl Source for StagingUpload {
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for object in ctx.private.list(STAGING_PREFIX).await? {
            if !object.key.ends_with(".deb") {
                continue;
            }
            let tmp = tempfile::NamedTempFile::new_in(ctx.work_dir)?;
            ctx.private.get_to_file(&object.key, tmp.path()).await?;
            let control =
                crate::deb::read_control(tmp.path()).with_context(|| format!("staged file {}", object.key))?;
            if control.get("Package") != Some(package.name.as_str()) {
                continue;
            }
            let sums = Checksums::of_file(tmp.path())?;
            out.push(Candidate {
                package: package.name.clone(),
                version: control.get("Version").unwrap_or_default().to_owned(),
                architecture: control.get("Architecture").unwrap_or_default().to_owned(),
                source_type: SourceType::StagingUpload,
                url: object.key,
                expected_size: Some(sums.size),
                expected_sha256: Some(sums.sha256),
                companions: vec![],
                pub_date: None,
                notes: None,
            });
        }
        Ok(out)
    }
}
