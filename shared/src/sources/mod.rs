//! Sources: where candidates come from.
//!
//! Each `type` of a package's `source` block is one module here, holding its
//! settings (the block's fields, as a struct) and its [`Source`]
//! implementation, and one line of [`sources!`] registers it: the line makes
//! the `type` name, the [`SourceType`] recorded in entries and the
//! [`SourceConfig`] variant. Everything a source does differently is a
//! method of [`Source`] with a default: what it announces (required), the
//! URL and hosts its fetches are held to, checks of its package's file, how
//! download-package brings its artifact in (default: an HTTP download under
//! the package's artifact rules), what happens to a candidate refused for
//! its content (default: remembered in the store) and once its entry is
//! recorded (default: nothing). Downloading, recording and indexing are
//! otherwise the same for every source, so adding a source type touches
//! nothing else.

mod external_download;
mod github_release;
pub mod homebrew;
mod latest_url;
mod staging_upload;

use crate::blob::ObjectStore;
use crate::config::PackageConfig;
use crate::digest::Checksums;
use crate::fetch::{Expected, Fetcher, Validators};
use crate::model::{Candidate, PackageEntry};
use crate::steps::{Context, StepError, StepResult};
use crate::store::PackageStore;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The registry: `module => Type`, one line per source type. `Type` is the
/// module's settings struct (deserialized from the `source` block without
/// its `type`, unknown fields refused) and implements [`Source`]; the
/// `type` name is `Type` in snake case, which is also the module's name.
macro_rules! sources {
    ($($module:ident => $variant:ident),+ $(,)?) => {
        /// How a package reaches the repository (the `type` of a package's
        /// `source` block), as candidates and entries record it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum SourceType {
            $($variant,)+
        }

        /// A package's `source` block: its `type` selects the source.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum SourceConfig {
            $($variant($module::$variant),)+
        }

        impl SourceConfig {
            pub fn source_type(&self) -> SourceType {
                match self {
                    $(SourceConfig::$variant(_) => SourceType::$variant,)+
                }
            }

            /// The source this block configures.
            pub fn source(&self) -> &dyn Source {
                match self {
                    $(SourceConfig::$variant(s) => s,)+
                }
            }
        }
    };
}

sources! {
    external_download => ExternalDownload,
    staging_upload => StagingUpload,
    github_release => GithubRelease,
    latest_url => LatestUrl,
    homebrew => Homebrew,
}

pub use external_download::{ExternalDownload, parse_kiro_metadata};
pub use github_release::GithubRelease;
pub use homebrew::{Homebrew, blob_url};
pub use latest_url::LatestUrl;
pub use staging_upload::StagingUpload;
pub use staging_upload::{REJECTED_PREFIX, StagedRejection, reject_staged};
pub use github_release::parse_github_releases;

/// The private prefix where `.deb` files are dropped for `staging_upload`.
pub const STAGING_PREFIX: &str = "staging/";

/// What a source may use to find candidates.
pub struct SourceContext<'a> {
    pub fetcher: &'a Fetcher,
    /// Private object store (holds `staging/`).
    pub private: &'a dyn ObjectStore,
    /// The repository's public store, below its prefix (a Homebrew mirror
    /// keeps the API files it fetched there by digest, unpublished).
    pub public: &'a dyn ObjectStore,
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
    /// Where a staged file checked whole is left for download-package
    /// ([`Context::staged_checks`]).
    pub staged_checks: &'a std::sync::Mutex<std::collections::HashMap<String, crate::deb::Checked>>,
}

/// Where the bytes of a fetched artifact are.
pub enum ArtifactFile {
    /// A temporary file in the step's scratch space (removed when dropped).
    Temp(tempfile::TempPath),
    /// The staged file itself, open: its inode is pinned by the descriptor
    /// (a new upload under its name since changes nothing here), and it
    /// goes to the pool by [`crate::blob::ObjectStore::put_open_file`]
    /// (locally one link, no temporary name).
    Open(std::fs::File),
}

impl ArtifactFile {
    /// A path that opens these bytes (an open file: its descriptor's path
    /// under /proc, so the same inode).
    pub fn path(&self) -> std::path::PathBuf {
        match self {
            ArtifactFile::Temp(path) => path.to_path_buf(),
            ArtifactFile::Open(file) => {
                std::path::PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file)))
            }
        }
    }
}

impl From<tempfile::TempPath> for ArtifactFile {
    fn from(path: tempfile::TempPath) -> ArtifactFile {
        ArtifactFile::Temp(path)
    }
}

/// An artifact download-package brought in, not yet checked.
pub struct Fetched {
    pub file: ArtifactFile,
    pub checksums: Checksums,
    /// The validators of the response it came in (a source that records them).
    pub validators: Option<Validators>,
    /// What the source learned of the artifact while bringing it in, in its
    /// format's terms; it replaces the candidate's `metadata` for the format
    /// to check and record (a Homebrew bottle: its entry in the registry's
    /// image index).
    pub metadata: Option<crate::model::EntryMetadata>,
    /// The file was checked whole already, in this process, and still has
    /// those bytes (a staged .deb: [`Context::staged_checks`]); the format
    /// may take the check instead of reading the file again.
    pub checked: Option<crate::deb::Checked>,
}

/// What a source made of a candidate refused for its content.
pub enum Refused {
    /// Remember it in the store, so that it is not fetched again until
    /// upstream announces it differently.
    Remember(StepError),
    /// The source dealt with it (a staged file moved aside): the error to report.
    Handled(StepError),
}

#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Every release the source currently offers for `package`; check-sources
    /// drops the ones already in the store. A source that can tell on its own
    /// that nothing changed (`latest_url`) offers nothing.
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>>;

    /// The URL this source is configured with, and its field
    /// (`source.metadata_url`); `None` for a source that fetches nothing
    /// over HTTP. Checked at load; its host is where the fetches may go.
    fn configured_url(&self) -> Option<(&'static str, &str)> {
        None
    }

    /// Hosts its fetches may reach besides the configured URL's
    /// (`source.allowed_hosts`).
    fn allowed_hosts(&self) -> &[String] {
        &[]
    }

    /// What this source asks of the rest of its package's file, checked at
    /// load: `Err((field, message))`.
    fn check(&self, _package: &PackageConfig) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// Bring `candidate`'s artifact into the step's scratch space, digests
    /// computed on the way, `expected` size and SHA-256 held to. The
    /// default: an HTTP download under the package's artifact rules.
    async fn fetch(
        &self,
        ctx: &Context,
        package: &PackageConfig,
        candidate: &Candidate,
        expected: &Expected,
    ) -> StepResult<Fetched> {
        download(ctx, package, candidate, expected).await.map(|(file, checksums, _)| Fetched {
            file: file.into(),
            checksums,
            validators: None,
            metadata: None,
            checked: None,
        })
    }

    /// `candidate` was refused for its content (`e`: InvalidPackage or
    /// PackageConflict). The default: [`Refused::Remember`] it in the store.
    async fn refused(&self, _ctx: &Context, _candidate: &Candidate, e: StepError) -> Refused {
        Refused::Remember(e)
    }

    /// `entry` is in the store (inserted, or there already with the same
    /// bytes). Failures here are the source's to log: the entry stays.
    async fn recorded(&self, _ctx: &Context, _entry: &PackageEntry) {}
}

/// The configured source of `package`, if it is still configured with the
/// source type that made the candidate or entry (a configuration changed
/// between two steps leaves the defaults).
pub fn configured<'a>(ctx: &'a Context, package: &str, source_type: SourceType) -> Option<&'a dyn Source> {
    ctx.package(package).filter(|p| p.source.source_type() == source_type).map(|p| p.source.source())
}

/// An HTTP download of `candidate.url` under `package`'s artifact rules into
/// a temporary file: the file, its digests and the response's validators.
pub async fn download(
    ctx: &Context,
    package: &PackageConfig,
    candidate: &Candidate,
    expected: &Expected,
) -> StepResult<(tempfile::TempPath, Checksums, Validators)> {
    let rules = package.artifact_rules().map_err(|e| StepError::InvalidPackage(anyhow::anyhow!("{}: {e}", candidate.url)))?;
    let tmp = tempfile::Builder::new().prefix("download-").tempfile_in(&ctx.work_dir)?.into_temp_path();
    let label = format!("{} {} {}", candidate.package, candidate.version, candidate.architecture);
    let mut progress = ctx.observer.download(&label);
    let (sums, validators) =
        ctx.fetcher.download_validated(&candidate.url, &tmp, expected, &rules, progress.as_mut()).await?;
    Ok((tmp, sums, validators))
}

/// Resolve a possibly relative URL found in a document against the document's URL.
fn resolve(base: &str, found: &str) -> anyhow::Result<String> {
    let base = url::Url::parse(base)?;
    Ok(base.join(found).map_err(|e| anyhow::anyhow!("{found:?} is not a valid URL: {e}"))?.to_string())
}
