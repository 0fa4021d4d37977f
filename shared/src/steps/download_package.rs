//! download-package: bring one candidate's artifact into the public store at its
//! pool key, with size, MD5, SHA1 and SHA256 computed in the same pass, and read
//! its own metadata. Nothing is written until the artifact has been checked.
//!
//! The entry it hands to record-metadata travels inline when it is small (the
//! usual case: a few KiB) and through the private store otherwise: its control
//! paragraph is whatever the .deb carries, and a state of Step Functions holds
//! 256 KiB at most.
//!
//! A `latest_url` candidate carries no version: the id is built from the
//! .deb's own, and the artifact also carries the per-source record
//! ([`SourceState`]: the validators of the response downloaded) for
//! record-metadata to save once the entry is recorded.
//!
//! Every fetch is held to the package's configuration: its host allow-list
//! and its limits (an artifact: `max_artifact_bytes`, `download_deadline`;
//! certificate and signature: the document limits). The artifact is then read
//! whole, as dpkg would check it, off the async workers.

use super::{Context, StepError, StepResult, now};
use crate::blob::{BlobError, WriteMode};
use crate::digest::Checksums;
use crate::fetch::{Expected, FetchRules};
use crate::model::{
    Candidate, NOTES_LIMIT, PackageEntry, Rejection, SourceState, StoredCompanion, bounded_text, package_id, rfc3339,
};
use crate::repository::ArtifactDescription;
use crate::sources::{ArtifactFile, Refused};
use anyhow::anyhow;
use serde::{Deserialize, Serialize};

/// Private prefix of entries too large to travel inline.
pub const ENTRIES_PREFIX: &str = "runs/entries/";

/// Largest entry (as JSON) carried inline in the step's output.
pub const INLINE_ENTRY_LIMIT: usize = 16 * 1024;

/// Largest entry (as JSON) recorded at all: DynamoDB holds items of 400 KB,
/// and the JSON form is at least as long as the item.
pub const ENTRY_LIMIT: usize = 380_000;

/// A checked artifact in the pool, described well enough to be recorded: the
/// entry itself, or the private key where it waits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedArtifact {
    pub package_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<PackageEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_key: Option<String>,
    /// `latest_url`: the source's record to save once the entry is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceState>,
}

impl StagedArtifact {
    /// Inline when small, else written to the private store.
    pub async fn new(ctx: &Context, entry: PackageEntry) -> StepResult<StagedArtifact> {
        let json = serde_json::to_vec(&entry).map_err(|e| StepError::Internal(e.into()))?;
        if json.len() > ENTRY_LIMIT {
            return Err(StepError::InvalidPackage(anyhow!(
                "{}: its metadata (control paragraph and all) takes {} bytes, more than the {ENTRY_LIMIT} bytes one                  store record can hold",
                entry.package_id,
                json.len()
            )));
        }
        if json.len() <= INLINE_ENTRY_LIMIT {
            return Ok(StagedArtifact {
                package_id: entry.package_id.clone(),
                entry: Some(entry),
                entry_key: None,
                source: None,
            });
        }
        let key = format!("{ENTRIES_PREFIX}{}.json", crate::digest::sha256_hex(&json));
        // Content-addressed: overwriting holds the same bytes (see check_sources).
        ctx.private.put_bytes(&key, json, WriteMode::Overwrite).await?;
        Ok(StagedArtifact { package_id: entry.package_id, entry: None, entry_key: Some(key), source: None })
    }

    /// The entry, read from the private store if it is not inline.
    pub async fn entry(self, ctx: &Context) -> StepResult<PackageEntry> {
        match (self.entry, self.entry_key) {
            (Some(entry), _) => Ok(entry),
            (None, Some(key)) => {
                let bytes = ctx.private.get_bytes(&key).await?;
                serde_json::from_slice(&bytes).map_err(|e| StepError::Internal(anyhow!("staged entry {key}: {e}")))
            }
            (None, None) => Err(StepError::Internal(anyhow!("staged artifact {} carries no entry", self.package_id))),
        }
    }
}

/// The rules of `candidate`'s fetches (`artifact`: the .deb, else a companion)
/// from its package's configuration.
fn fetch_rules(ctx: &Context, candidate: &Candidate, artifact: bool) -> StepResult<FetchRules> {
    let package = ctx.package(&candidate.package).ok_or_else(|| {
        StepError::InvalidPackage(anyhow!("{}: no package {:?} is configured", candidate.url, candidate.package))
    })?;
    let rules = if artifact { package.artifact_rules() } else { package.document_rules() };
    rules.map_err(|e| StepError::InvalidPackage(anyhow!("{}: {e}", candidate.url)))
}

/// download-package. A candidate refused for what it is (InvalidPackage or
/// PackageConflict once its bytes are in hand) is not offered again as it is:
/// a staged file moves to `staging/rejected/` with its reason, anything else
/// is remembered in the store ([`Rejection`]) until upstream announces it
/// differently. Transient failures are left for the next run to try again.
pub async fn download_package(ctx: &Context, candidate: Candidate) -> StepResult<StagedArtifact> {
    let mut fetched = None;
    match stage(ctx, &candidate, &mut fetched).await {
        Ok(staged) => {
            super::crash_point("download-package");
            Ok(staged)
        }
        Err(e) => Err(refuse(ctx, &candidate, fetched, e).await),
    }
}

/// Remember (or move aside) a candidate refused for its content; see [`download_package`].
pub(crate) async fn refuse(ctx: &Context, candidate: &Candidate, sha256: Option<String>, e: StepError) -> StepError {
    let content = matches!(e, StepError::InvalidPackage(_) | StepError::Conflict(_));
    if !content {
        return e;
    }
    let e = match crate::sources::configured(ctx, &candidate.package, candidate.source_type) {
        Some(source) => match source.refused(ctx, candidate, e).await {
            Refused::Handled(e) => return e,
            Refused::Remember(e) => e,
        },
        None => e,
    };
    // Only what was downloaded is judged on its content: an upstream that did
    // not answer (404, refused connection) is asked again by the next run.
    if sha256.is_none() {
        return e;
    }
    let rejection = Rejection {
        package_id: candidate.package_id(),
        package: candidate.package.clone(),
        url: candidate.url.clone(),
        expected_size: candidate.expected_size,
        expected_sha256: candidate.expected_sha256.clone(),
        latest: candidate.latest.clone(),
        sha256,
        error_type: e.error_type().to_owned(),
        reason: crate::model::bounded_text(&format!("{e}"), 2048),
        rejected_at: rfc3339(now()),
    };
    match ctx.store.record_rejection(&rejection).await {
        Ok(()) => e.context(format!(
            "{} is remembered as refused: not fetched again until upstream announces it differently \
             (or `pkgrelay clear-rejection {}`)",
            rejection.package_id, rejection.package_id
        )),
        Err(store) => {
            tracing::warn!(package_id = %rejection.package_id, "could not remember the refusal: {store}");
            e
        }
    }
}

async fn stage(ctx: &Context, candidate: &Candidate, fetched: &mut Option<String>) -> StepResult<StagedArtifact> {
    let candidate = candidate.clone();
    let id = candidate.package_id();
    let package = ctx.package(&candidate.package).ok_or_else(|| {
        StepError::InvalidPackage(anyhow!("{}: no package {:?} is configured", candidate.url, candidate.package))
    })?;
    let expected = Expected { size: candidate.expected_size, sha256: candidate.expected_sha256.clone() };
    // Companions go where upstream's document says: refuse one that may not
    // be fetched before spending a download on the artifact.
    let companion_rules =
        if candidate.companions.is_empty() { None } else { Some(fetch_rules(ctx, &candidate, false)?) };
    for c in &candidate.companions {
        let rules = companion_rules.as_ref().expect("made when there are companions");
        rules.hosts.check(&c.url).map_err(|e| StepError::from(e).context(format!("{} of {id}", c.kind)))?;
    }

    // The source brings the artifact in (an HTTP download, the staged
    // object), with its digests and, if it keeps them, the validators of
    // the response (latest_url: recorded with the entry).
    let crate::sources::Fetched { file: tmp, checksums, validators: seen, metadata, checked } =
        package.source.source().fetch(ctx, package, &candidate, &expected).await?;
    let mut candidate = candidate;
    if metadata.is_some() {
        candidate.metadata = metadata;
    }

    *fetched = Some(checksums.sha256.clone());
    // Reading the whole file (decompressing its data member) takes seconds for
    // a large package: not on an async worker, where it would stall the
    // other downloads of the run.
    // A staged file checked whole by check-sources in this process, with the
    // same bytes still (its source compared the SHA256): only its fields
    // are left to check, which takes microseconds.
    let described = match checked.as_ref().and_then(|c| ctx.format.describe_checked(&candidate, c)) {
        Some(described) => described.map_err(StepError::InvalidPackage)?,
        None => {
            let (format, for_check, path) = (ctx.format.clone(), candidate.clone(), tmp.path());
            tokio::task::spawn_blocking(move || format.describe_artifact(&for_check, &path))
                .await
                .map_err(|e| StepError::Internal(anyhow!("checking {}: {e}", candidate.url)))?
                .map_err(StepError::InvalidPackage)?
        }
    };
    let id_from_artifact = package_id(&described.name, &described.version, &described.architecture);

    let source = seen.map(|validators| SourceState {
        package: candidate.package.clone(),
        url: candidate.url.clone(),
        validators,
        package_id: id_from_artifact.clone(),
        sha256: checksums.sha256.clone(),
        conflict: None,
        recorded_at: String::new(),
    });

    // Refuse before writing anything if the store knows this id with other bytes.
    let conflicting = match ctx.store.get(&id_from_artifact).await? {
        Some(known) if known.checksums.sha256 != checksums.sha256 => Some(known),
        _ => None,
    };
    if let Some(known) = conflicting {
        let Some(mut source) = source else {
            return Err(StepError::Conflict(anyhow!(
                "{id_from_artifact} is already recorded with SHA256 {} (from {}); {} now serves other bytes \
                 (SHA256 {}). The recorded package is kept.",
                known.checksums.sha256,
                known.source_url,
                candidate.url,
                checksums.sha256
            )));
        };
        // latest_url: the same conflict, but the source's record must learn of
        // it, or the unchanged file would be downloaded and refused again by
        // every run; and only record-metadata writes the store. So nothing
        // goes to the pool (its key holds the recorded bytes), and the
        // artifact goes on marked as a conflict: record-metadata inserts
        // nothing, saves the record with the conflict, and fails loudly.
        let message = format!(
            "{id_from_artifact} is already recorded with SHA256 {} (from {}); the file at {} (ETag {}, \
             Last-Modified {}) is that version with other bytes (SHA256 {}). The recorded package is kept.",
            known.checksums.sha256,
            known.source_url,
            candidate.url,
            source.validators.etag.as_deref().unwrap_or("none"),
            source.validators.last_modified.as_deref().unwrap_or("none"),
            checksums.sha256
        );
        tracing::warn!(package_id = %id_from_artifact, "{message}");
        source.conflict = Some(message);
        let entry = entry(ctx, candidate, described, checksums, Vec::new());
        return Ok(StagedArtifact { source: Some(source), ..StagedArtifact::new(ctx, entry).await? });
    }

    // A companion that cannot be fetched says nothing about the package's
    // content: such a failure is not remembered as a refusal.
    let judged = fetched.take();
    // Companions first, into temporary files, so that a failing one leaves the
    // pool untouched.
    let stem = described.key.strip_suffix(".deb").unwrap_or(&described.key).to_owned();
    let mut companion_files = Vec::new();
    for c in &candidate.companions {
        let rules = companion_rules.as_ref().expect("made when there are companions");
        let path = tempfile::Builder::new().prefix("companion-").tempfile_in(&ctx.work_dir)?.into_temp_path();
        let sums = ctx
            .fetcher
            .download(&c.url, &path, &Expected::default(), rules, &mut ())
            .await
            .map_err(|e| StepError::from(e).context(format!("{} of {id}", c.kind)))?;
        companion_files.push((c, path, sums));
    }

    *fetched = judged;
    let put = match &tmp {
        ArtifactFile::Temp(path) => {
            ctx.public.put_file(&described.key, path, &checksums.sha256, WriteMode::WriteOnce).await
        }
        ArtifactFile::Open(file) => {
            ctx.public.put_open_file(&described.key, file, &checksums.sha256, WriteMode::WriteOnce).await
        }
    };
    put.map_err(|e| match e {
        // The id is new (checked above) but its pool file name is taken: two
        // versions that differ only by epoch (2.0 and 1:2.0) share it, since
        // Debian pool file names carry no epoch.
        BlobError::Conflict { .. } => StepError::Conflict(anyhow!(
            "{id_from_artifact}: its pool file {} already holds other bytes, of another version whose file name is \
             the same (Debian pool file names carry no epoch: {} and a version differing only by its epoch cannot \
             both be published). Nothing was written.",
            described.key,
            described.version
        )),
        e => e.into(),
    })?;
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

    tracing::info!(package_id = %id_from_artifact, size = checksums.size, sha256 = %checksums.sha256, key = %described.key, "downloaded");
    let entry = entry(ctx, candidate, described, checksums, companions);
    Ok(StagedArtifact { source, ..StagedArtifact::new(ctx, entry).await? })
}

/// The store entry of a described artifact.
fn entry(
    ctx: &Context,
    candidate: Candidate,
    described: ArtifactDescription,
    checksums: Checksums,
    companions: Vec<StoredCompanion>,
) -> PackageEntry {
    let config = ctx.package(&candidate.package).map(|p| p.fields()).unwrap_or_default();
    // Kept only where it differs from the .deb's own (a vendor revision):
    // check-sources recognises the release by it.
    let announced_version = Some(candidate.version).filter(|v| candidate.latest.is_none() && *v != described.version);
    PackageEntry {
        package_id: package_id(&described.name, &described.version, &described.architecture),
        package_name: described.name,
        version: described.version,
        architecture: described.architecture,
        metadata: described.metadata,
        config,
        filename: described.key,
        checksums,
        source_type: candidate.source_type,
        source_url: candidate.url,
        announced_version,
        companions,
        pub_date: candidate.pub_date,
        notes: candidate.notes.map(|n| bounded_text(&n, NOTES_LIMIT)),
        processed_timestamp: rfc3339(now()),
    }
}
