//! Sources: where candidates come from.
//!
//! Each `type` of a package's `source` block is one [`Source`]. A source only
//! announces candidates (name, version, architecture, where the artifact is);
//! downloading, recording and indexing are the same for every source, so adding
//! a source type touches nothing else.

mod external_download;
mod github_release;
mod latest_url;
mod staging_upload;

use crate::blob::ObjectStore;
use crate::config::{PackageConfig, SourceConfig};
use crate::fetch::Fetcher;
use crate::model::Candidate;
use crate::store::PackageStore;
use async_trait::async_trait;
use std::path::Path;

pub use external_download::parse_kiro_metadata;
pub use staging_upload::{REJECTED_PREFIX, StagedRejection, reject_staged};
pub use github_release::parse_github_releases;

/// The private prefix where `.deb` files are dropped for `staging_upload`.
pub const STAGING_PREFIX: &str = "staging/";

/// What a source may use to find candidates.
pub struct SourceContext<'a> {
    pub fetcher: &'a Fetcher,
    /// Private object store (holds `staging/`).
    pub private: &'a dyn ObjectStore,
    /// The store (a `latest_url` source reads what it last recorded).
    pub store: &'a dyn PackageStore,
    /// Scratch directory for temporary files.
    pub work_dir: &'a Path,
    /// `staging/` read once per run, shared by every staging_upload package.
    pub staged: tokio::sync::OnceCell<Vec<staging_upload::Staged>>,
    /// The packages configured with `staging_upload` (a staged file of any
    /// other package is refused).
    pub staging_packages: Vec<String>,
    /// Staged files this run moved to `staging/rejected/`.
    pub rejected: std::sync::Mutex<Vec<StagedRejection>>,
    /// What reading a staged package may unpack (repository-wide settings:
    /// a staged file is read before its package is known).
    pub deb_limits: crate::deb::DebLimits,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Every release the source currently offers for `package`; check-sources
    /// drops the ones already in the store. A source that can tell on its own
    /// that nothing changed (`latest_url`) offers nothing.
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>>;
}

/// The source plugin for a package's `source` block.
pub fn for_package(package: &PackageConfig) -> Box<dyn Source> {
    match &package.source {
        SourceConfig::ExternalDownload { metadata_url, .. } => {
            Box::new(external_download::ExternalDownload { metadata_url: metadata_url.clone() })
        }
        SourceConfig::StagingUpload {} => Box::new(staging_upload::StagingUpload),
        SourceConfig::GithubRelease { releases_url, include_prereleases, .. } => {
            Box::new(github_release::GithubRelease {
                releases_url: releases_url.clone(),
                include_prereleases: *include_prereleases,
            })
        }
        SourceConfig::LatestUrl { url, .. } => Box::new(latest_url::LatestUrl { url: url.clone() }),
    }
}

/// Resolve a possibly relative URL found in a document against the document's URL.
fn resolve(base: &str, found: &str) -> anyhow::Result<String> {
    let base = url::Url::parse(base)?;
    Ok(base.join(found).map_err(|e| anyhow::anyhow!("{found:?} is not a valid URL: {e}"))?.to_string())
}
