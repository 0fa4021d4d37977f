//! The five pipeline steps, each a plain async function `input -> Result<output>`
//! with serde types on both sides: the Lambda functions call them with AWS
//! backends in the [`Context`], the CLI with SQLite and a directory.
//!
//! | step | in | out |
//! |---|---|---|
//! | [`check_sources`] | trigger, force_rebuild | candidates |
//! | [`download_package`] | one candidate | staged artifact |
//! | [`record_metadata`] | staged artifact | package id |
//! | [`build_index`] | — | generation + manifest key |
//! | [`publish`] | generation + manifest key | url, summary |

mod build_index;
mod check_sources;
pub mod collect;
mod download_package;
pub mod items;
mod publish;
mod record_metadata;

pub use build_index::{BuildIndexInput, BuildIndexOutput, build_index};
pub use check_sources::{
    CANDIDATES_PREFIX, CheckSourcesInput, CheckSourcesOutput, SourceFailure, check_sources, read_candidates,
};
pub use download_package::{ENTRIES_PREFIX, StagedArtifact, download_package};
pub use publish::{PublishInput, PublishOutput, PublishStatus, publish};
pub use record_metadata::{RecordOutcome, RecordOutput, record_batch, record_metadata};

use crate::blob::{BlobError, ObjectStore};
use crate::config::Config;
use crate::fetch::{DownloadProgress, FetchError, Fetcher};
use crate::repository::RepositoryFormat;
use crate::store::{PackageStore, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Receives per-download progress (a terminal progress bar in the CLI).
pub trait Observer: Send + Sync {
    fn download(&self, _label: &str) -> Box<dyn DownloadProgress> {
        Box::new(())
    }
}

/// An observer that reports nothing (Lambda, tests).
pub struct Quiet;
impl Observer for Quiet {}

/// Everything a step may use. Built once per process (per Lambda cold start).
pub struct Context {
    pub config: Arc<Config>,
    pub store: Arc<dyn PackageStore>,
    /// The published repository (bucket / `public/`).
    pub public: Arc<dyn ObjectStore>,
    /// Private objects: `staging/` uploads and per-generation files.
    pub private: Arc<dyn ObjectStore>,
    /// Names resolved by a rewrite in front of `public` (full public keys).
    pub edge_names: Option<Arc<dyn crate::blob::EdgeNames>>,
    pub fetcher: Fetcher,
    pub format: Arc<dyn RepositoryFormat>,
    /// Scratch space for downloads (the Lambda's /tmp, the CLI's state directory).
    pub work_dir: PathBuf,
    pub observer: Arc<dyn Observer>,
    /// The repository this context serves (one of `config.repositories`):
    /// its format is `format`, its public files are `public` (already
    /// under its prefix), its state record is [`Context::suite`].
    pub repository: crate::config::RepositoryEntry,
    /// A Homebrew mirror's one package (see [`Context::packages`]); empty
    /// for the APT repository, whose packages are `config.packages`.
    pub mirror_packages: Vec<crate::config::PackageConfig>,
    /// Staged files this process has checked whole already, by key: where
    /// `staging/` is a directory, check-sources' scan checks each .deb as
    /// dpkg would, hashes it and reads its control paragraph in one read,
    /// and download-package, in the same process (`pkgrelay sync`), takes
    /// the result instead of reading the file twice more — once it has seen
    /// that the file still has the SHA256 that was checked. Filled only from
    /// a directory store (never on AWS, where the steps are separate
    /// processes), emptied at the start of each check-sources, and each
    /// entry taken once.
    pub staged_checks: std::sync::Mutex<std::collections::HashMap<String, crate::deb::Checked>>,
}

impl Context {
    /// The key of this repository's state record (APT: the suite).
    pub fn suite(&self) -> &str {
        self.config.state_key(&self.repository)
    }

    /// The packages whose sources check-sources asks: `config/packages/`
    /// for the APT repository; for a Homebrew mirror, one package standing
    /// for the whole mirror, whose source ([`crate::sources::Homebrew`])
    /// announces every bottle of its settings (`formulae`, `tags`).
    pub fn packages(&self) -> &[crate::config::PackageConfig] {
        match self.repository.format {
            crate::config::FormatName::Apt => &self.config.packages,
            crate::config::FormatName::Homebrew => &self.mirror_packages,
        }
    }

    /// The configured package a candidate or entry named `name` belongs to:
    /// the package of that name (APT), or the mirror's one package, whatever
    /// the formula (Homebrew: candidates are named for their formula).
    pub fn package(&self, name: &str) -> Option<&crate::config::PackageConfig> {
        match self.repository.format {
            crate::config::FormatName::Apt => self.config.package(name),
            crate::config::FormatName::Homebrew => self.mirror_packages.first(),
        }
    }
}

/// The manifest of the live generation `live`: `None` when nothing is
/// published or its manifest is gone; an unreadable one is logged and `None`.
pub(crate) async fn live_manifest(
    ctx: &Context,
    live: Option<&crate::model::Publication>,
) -> StepResult<Option<crate::repository::Manifest>> {
    let Some(live) = live else { return Ok(None) };
    match ctx.private.get_bytes(&live.manifest_key).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(manifest) => Ok(Some(manifest)),
            Err(e) => {
                tracing::warn!(manifest = %live.manifest_key, "live manifest unreadable: {e}");
                Ok(None)
            }
        },
        Err(BlobError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A step's failure, classified so that Step Functions `Retry`/`Catch` can match
/// on [`StepError::error_type`].
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying: network trouble, throttling, 5xx.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// The input is bad (not a .deb, hash mismatch, 404): retrying cannot help.
    #[error("{0:#}")]
    InvalidPackage(anyhow::Error),
    /// Same id, other bytes: refused, the first one kept.
    #[error("{0:#}")]
    Conflict(anyhow::Error),
    /// Another generation is being built and published right now: try again in
    /// a little while (the state machine retries this with a longer backoff).
    #[error("{0:#}")]
    Busy(anyhow::Error),
    /// Configuration or programming error, storage failure.
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl StepError {
    /// The `errorType` a Lambda returns and `ErrorEquals` matches.
    pub fn error_type(&self) -> &'static str {
        match self {
            StepError::Transient(_) => "TransientError",
            StepError::InvalidPackage(_) => "InvalidPackage",
            StepError::Conflict(_) => "PackageConflict",
            StepError::Busy(_) => "PublishInProgress",
            StepError::Internal(_) => "InternalError",
        }
    }

    /// Add context to the message, keeping the classification.
    pub fn context(self, what: impl std::fmt::Display) -> StepError {
        let wrap = |e: anyhow::Error| e.context(what.to_string());
        match self {
            StepError::Transient(e) => StepError::Transient(wrap(e)),
            StepError::InvalidPackage(e) => StepError::InvalidPackage(wrap(e)),
            StepError::Conflict(e) => StepError::Conflict(wrap(e)),
            StepError::Busy(e) => StepError::Busy(wrap(e)),
            StepError::Internal(e) => StepError::Internal(wrap(e)),
        }
    }
}

impl From<FetchError> for StepError {
    fn from(e: FetchError) -> Self {
        if e.is_transient() { StepError::Transient(e.into()) } else { StepError::InvalidPackage(e.into()) }
    }
}

impl From<BlobError> for StepError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Conflict { .. } => StepError::Conflict(e.into()),
            _ => StepError::Internal(e.into()),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            // The entry, not the system, is at fault: retrying cannot help.
            StoreError::TooLarge { .. } => StepError::InvalidPackage(e.into()),
            _ => StepError::Internal(e.into()),
        }
    }
}

impl From<std::io::Error> for StepError {
    fn from(e: std::io::Error) -> Self {
        StepError::Internal(e.into())
    }
}

pub type StepResult<T> = Result<T, StepError>;

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A crash injected by the fault tests (tests/faults.rs): when the environment
/// variable `PKGRELAY_CRASH_AFTER` names `step`, the process aborts right after
/// the step did its work and before anyone learns its result — what a Lambda
/// function killed at that moment, or a `pkgrelay sync` killed between two
/// steps, leaves behind. No server can produce this fault, hence a hook; it
/// reads one environment variable and does nothing otherwise.
pub fn crash_point(step: &str) {
    if std::env::var_os("PKGRELAY_CRASH_AFTER").is_some_and(|v| v == step) {
        eprintln!("PKGRELAY_CRASH_AFTER={step}: aborting after {step}, before its result is returned");
        std::process::abort();
    }
}

/// How long build-index and publish together may hold the suite's lease: the
/// longest a Lambda function runs (15 minutes), twice.
pub const LEASE_SECONDS: i64 = 30 * 60;

#[cfg(test)]
mod tests;
