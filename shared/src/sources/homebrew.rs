//! `homebrew`: the bottles of a Homebrew mirror, as the formulae API lists
//! them. Not a source a package file names: a mirror of `repositories.yaml`
//! (format `homebrew`) is one package standing for the whole mirror, and its
//! source is this one, made from the mirror's settings by
//! [`crate::context`].
//!
//! Each run, check-sources asks it for candidates:
//!
//! 1. `formula.json` is fetched from `api_url` (the document limits and
//!    hosts of the mirror's settings) into a temporary file and planned
//!    streaming ([`crate::brew::api::plan`]): one candidate per bottle file
//!    of a configured formula × tag, carrying its SHA-256 and everything
//!    brew names it by ([`BrewMetadata`]). check-sources then drops the
//!    bottles already recorded with that digest, so a run with nothing new
//!    downloads no bottle.
//! 2. Every API file the mirror serves is fetched too and kept in the
//!    mirror's public store by its digest (`api/by-hash/SHA256/<hex>`: a
//!    name no client asks for), and the list of them with the bottles they
//!    reference is written to the private store
//!    ([`crate::brew::ApiSnapshot`]). build-index hands that list to the
//!    format, which publishes the API files at their canonical names only
//!    when every bottle they reference is recorded (issue 13, item 3).
//!
//! download-package fetches a bottle's entry of the registry's image index,
//! then the bottle from the registry with the registry's `Authorization`
//! header (sent to the registry's host only, never after its redirect to the
//! blob host), its SHA-256 checked in the same pass; a bottle whose digest
//! the mirror already stores under another name is read back instead.

use super::{Fetched, Source, SourceContext};
use crate::blob::WriteMode;
use crate::brew::config::HomebrewConfig;
use crate::brew::{ApiFile, ApiSnapshot, BrewMetadata, OCI_IMAGE_INDEX, by_hash_key, naming, snapshot_key};
use crate::config::PackageConfig;
use crate::fetch::Expected;
use crate::model::{Candidate, EntryMetadata, SourceType};
use crate::steps::{Context, StepError, StepResult};
use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use serde::Deserialize;
use std::sync::Arc;

/// `type: homebrew`: made from a mirror's settings, never written in a
/// package file (a package file naming it is refused at load).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Homebrew {
    /// The mirror's name in `repositories.yaml`.
    pub repository: String,
    /// The mirror's settings; set by [`Homebrew::for_mirror`].
    #[serde(skip)]
    pub mirror: Option<Arc<HomebrewConfig>>,
}

impl Homebrew {
    pub fn for_mirror(repository: &str, mirror: HomebrewConfig) -> Homebrew {
        Homebrew { repository: repository.to_owned(), mirror: Some(Arc::new(mirror)) }
    }

    fn mirror(&self) -> anyhow::Result<&HomebrewConfig> {
        self.mirror
            .as_deref()
            .ok_or_else(|| anyhow!("source homebrew of {}: the mirror's settings are not loaded", self.repository))
    }

    /// The package standing for the mirror `repository` in its context.
    pub fn package(repository: &str, mirror: &HomebrewConfig) -> PackageConfig {
        PackageConfig {
            name: repository.to_owned(),
            description: format!("Homebrew bottle mirror {repository}"),
            maintainer: String::new(),
            homepage: mirror.base_url.clone(),
            section: String::new(),
            priority: String::new(),
            architecture: mirror.tags.join(" "),
            depends: Vec::new(),
            keep: None,
            source: super::SourceConfig::Homebrew(Homebrew::for_mirror(repository, mirror.clone())),
            limits: mirror.limits.clone(),
            file: mirror.file.clone(),
            effective_limits: mirror.effective_limits.clone(),
        }
    }
}

/// What mirror `mirror` must hold, from its `api_url`'s `formula.json`
/// (tens of MB: fetched into a file in `work_dir`, planned one formula at a
/// time, off the async workers).
pub async fn fetch_plan(
    fetcher: &crate::fetch::Fetcher,
    mirror: &HomebrewConfig,
    work_dir: &std::path::Path,
) -> anyhow::Result<crate::brew::api::Plan> {
    let api_rules = mirror.api_rules().map_err(|e| anyhow!(e))?;
    let formula_json = tempfile::Builder::new().prefix("formula-").tempfile_in(work_dir)?.into_temp_path();
    let url = format!("{}/formula.json", mirror.api_url.trim_end_matches('/'));
    fetcher.download(&url, &formula_json, &Expected::default(), &api_rules, &mut ()).await?;
    plan_file(mirror, formula_json.to_path_buf(), &url).await
}

/// What mirror `mirror` must hold, from the `formula.json` at `path`
/// (`what` names it in errors).
pub async fn plan_file(
    mirror: &HomebrewConfig,
    path: std::path::PathBuf,
    what: &str,
) -> anyhow::Result<crate::brew::api::Plan> {
    let (selection, tags) = (mirror.selection(), mirror.tags.clone());
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        crate::brew::api::plan(file, &selection, &tags).map_err(anyhow::Error::from)
    })
    .await
    .map_err(|e| anyhow!("planning from {what}: {e}"))?
    .with_context(|| format!("planning from {what}"))
}

/// The registry's image index of `formula` at `reference`
/// (`<registry_url>/<image>/manifests/<ref>`), asked for as brew asks for it,
/// with the registry's `Authorization`.
pub async fn image_index(
    fetcher: &crate::fetch::Fetcher,
    mirror: &HomebrewConfig,
    formula: &str,
    reference: &str,
) -> StepResult<Vec<u8>> {
    let mut manifest_rules =
        mirror.registry_rules(false).map_err(|e| StepError::InvalidPackage(anyhow!("{}: {e}", mirror.registry_url)))?;
    manifest_rules.headers.push(("accept".into(), OCI_IMAGE_INDEX.into()));
    let url =
        format!("{}/{}/manifests/{reference}", mirror.registry_url.trim_end_matches('/'), naming::image_name(formula),);
    fetcher.get_bytes(&url, &manifest_rules).await.map_err(|e| StepError::from(e).context(url))
}

/// The registry URL of a bottle: `<registry_url>/<image>/blobs/sha256:<hex>`,
/// built as brew builds it from its root rather than taken from the API's
/// `url` (which names ghcr.io whatever registry is configured).
pub fn blob_url(registry_url: &str, formula: &str, sha256: &str) -> String {
    format!("{}/{}/blobs/sha256:{sha256}", registry_url.trim_end_matches('/'), naming::image_name(formula))
}

#[async_trait]
impl Source for Homebrew {
    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let mirror = self.mirror()?;
        let api_rules = mirror.api_rules().map_err(|e| anyhow!(e))?;
        let api = mirror.api_url.trim_end_matches('/');

        let plan = fetch_plan(ctx.fetcher, mirror, ctx.work_dir).await?;
        for refused in &plan.refused {
            tracing::warn!(repository = %self.repository, "formula not mirrored: {refused}");
        }
        if !plan.unknown.is_empty() {
            tracing::warn!(repository = %self.repository, unknown = ?plan.unknown, "configured formulae the API does not list");
        }
        tracing::info!(
            repository = %self.repository,
            formulae = plan.formulae,
            bottles = plan.bottles.len(),
            without_bottle = plan.without_bottle,
            "planned from formula.json"
        );

        // The API files, by digest, in the mirror's public store: published
        // at their canonical names only by build-index and publish, once the
        // bottles they reference are recorded.
        let mut files = Vec::new();
        for name in mirror.all_api_files() {
            let tmp = tempfile::Builder::new().prefix("api-").tempfile_in(ctx.work_dir)?.into_temp_path();
            let url = format!("{api}/{name}");
            let sums = ctx.fetcher.download(&url, &tmp, &Expected::default(), &api_rules, &mut ()).await?;
            let key = by_hash_key(&sums.sha256);
            if !ctx.public.exists(&key).await? {
                ctx.public.put_file(&key, &tmp, &sums.sha256, WriteMode::WriteOnce).await?;
            }
            files.push(ApiFile { name, key, checksums: sums });
        }

        let mut candidates = Vec::with_capacity(plan.bottles.len());
        let mut bottles = Vec::with_capacity(plan.bottles.len());
        for b in plan.bottles {
            let metadata = b.metadata();
            bottles.push(metadata.clone());
            candidates.push(Candidate {
                package: b.formula.clone(),
                version: metadata.version(),
                architecture: b.tag.clone(),
                source_type: SourceType::Homebrew,
                url: blob_url(&mirror.registry_url, &b.formula, &b.sha256),
                expected_size: None,
                expected_sha256: Some(b.sha256.clone()),
                companions: Vec::new(),
                pub_date: None,
                notes: None,
                latest: None,
                metadata: Some(EntryMetadata::Brew(metadata)),
            });
        }
        let snapshot = ApiSnapshot { files, bottles };
        let json = serde_json::to_vec(&snapshot)?;
        ctx.private.put_bytes(&snapshot_key(&package.name), json, WriteMode::Overwrite).await?;
        Ok(candidates)
    }

    fn configured_url(&self) -> Option<(&'static str, &str)> {
        self.mirror.as_deref().map(|m| ("registry_url", m.registry_url.as_str()))
    }

    fn allowed_hosts(&self) -> &[String] {
        self.mirror.as_deref().map_or(&[], |m| m.allowed_hosts.as_slice())
    }

    fn check(&self, _package: &PackageConfig) -> Result<(), (&'static str, String)> {
        if self.mirror.is_none() {
            return Err((
                "source.type",
                "homebrew is the source of a Homebrew mirror, not of a package: list the mirror in \
                 repositories.yaml (format: homebrew) with its settings file"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The bottle's entry in the registry's image index
    /// (`<image>/manifests/<ref>`: brew reads `sh.brew.tab` from it), then
    /// the bottle, both with the registry's `Authorization` header (to its
    /// own host only: fetch.rs drops it on the redirect to the blob host,
    /// which must not see it), the bottle's SHA-256 held to the API's in the
    /// download's own pass.
    async fn fetch(
        &self,
        ctx: &Context,
        _package: &PackageConfig,
        candidate: &Candidate,
        expected: &Expected,
    ) -> StepResult<Fetched> {
        let mirror = self.mirror().map_err(StepError::Internal)?;
        let Some(EntryMetadata::Brew(m)) = &candidate.metadata else {
            return Err(StepError::InvalidPackage(anyhow!("{}: not a bottle candidate", candidate.package_id())));
        };
        let bad = |e: String| StepError::InvalidPackage(anyhow!("{}: {e}", candidate.url));
        let index = image_index(&ctx.fetcher, mirror, &m.formula, &m.version()).await?;
        let descriptor = descriptor_of(&index, m)
            .map_err(|e| bad(format!("{}/manifests/{}: {e}", naming::image_name(&m.formula), m.version())))?;

        let metadata = Some(EntryMetadata::Brew(BrewMetadata { descriptor: Some(descriptor), ..m.clone() }));
        let tmp = tempfile::Builder::new().prefix("bottle-").tempfile_in(&ctx.work_dir)?.into_temp_path();

        // Another name of the same bytes is stored already (a tag whose
        // bottle is another tag's, added to the settings later): read it
        // back rather than download it again. Checked like a download; a
        // stored object that is not what its key says is downloaded again,
        // and the write-once put then names the conflict.
        let stored = crate::brew::blob_key(&m.sha256);
        if ctx.public.exists(&stored).await? {
            ctx.public.get_to_file(&stored, &tmp).await?;
            let path = tmp.to_path_buf();
            let checksums = tokio::task::spawn_blocking(move || crate::digest::Checksums::of_file(&path))
                .await
                .map_err(|e| StepError::Internal(anyhow!("{stored}: {e}")))??;
            if checksums.sha256 == m.sha256 {
                tracing::info!(package_id = %candidate.package_id(), key = %stored, "bottle already stored under its digest: not downloaded");
                return Ok(Fetched { file: tmp.into(), checksums, validators: None, metadata, checked: None });
            }
            tracing::warn!(key = %stored, sha256 = %checksums.sha256, "a stored bottle does not match its key: downloading it");
        }

        let rules = mirror.registry_rules(true).map_err(bad)?;
        let label = format!("{} {} {}", candidate.package, candidate.version, candidate.architecture);
        let mut progress = ctx.observer.download(&label);
        let checksums = ctx.fetcher.download(&candidate.url, &tmp, expected, &rules, progress.as_mut()).await?;
        Ok(Fetched { file: tmp.into(), checksums, validators: None, metadata, checked: None })
    }
}

/// The entry of image index `index` that brew would pick for bottle `m`
/// (`Resource::BottleManifest`): `sh.brew.bottle.digest` is its SHA-256 and
/// `org.opencontainers.image.ref.name` is `<pkg_version>.<tag>[.<rebuild>]`;
/// it must carry the tab brew reads.
pub fn descriptor_of(index: &[u8], m: &BrewMetadata) -> Result<serde_json::Value, String> {
    let index: serde_json::Value =
        serde_json::from_slice(index).map_err(|e| format!("the image index is not JSON: {e}"))?;
    let want = m.ref_name();
    let entry = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| {
            d["annotations"]["sh.brew.bottle.digest"].as_str() == Some(m.sha256.as_str())
                && d["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(want.as_str())
        })
        .ok_or_else(|| format!("no entry for {want} with digest {}", m.sha256))?;
    if entry["annotations"]["sh.brew.tab"].as_str().is_none_or(str::is_empty) {
        return Err(format!("the entry for {want} carries no sh.brew.tab"));
    }
    let size = serde_json::to_vec(entry).map(|v| v.len()).unwrap_or(usize::MAX);
    // It is recorded with the entry (a store record holds 400 KB); a tab is
    // a few KB.
    if size > 64 * 1024 {
        return Err(format!("the entry for {want} takes {size} bytes, more than the 64 KiB a bottle's record keeps"));
    }
    Ok(entry.clone())
}
