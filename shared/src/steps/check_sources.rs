//! check-sources: ask every configured source for candidates and drop those the
//! store already holds. Forced runs ask no source: they rebuild from the store.
//!
//! The candidates go to the private store as one JSON list
//! (`runs/candidates/<run-unique sha256>.json`), not into the step's output: upstream
//! decides how many there are (a metadata file may list thousands of
//! releases) and Step Functions refuses any state over 256 KiB. The state
//! machine's Distributed Map reads the list from there (ItemReader); the
//! output carries its key and counts only.
//!
//! A candidate is already in the store when an entry has its id, or — vendor
//! builds, whose .deb adds a Debian revision to the version upstream announced
//! (`0.6.0` announced, recorded as `kiro#0.6.0-1762210000#amd64`) — when an
//! entry of the package was recorded for that announced version; either way
//! from the same URL or with the same SHA256. A `latest_url` candidate has no
//! version to match: its source has already compared the file with what it
//! last recorded.

use super::{Context, StepError, StepResult, now};
use crate::blob::WriteMode;
use crate::model::{Candidate, NOTES_LIMIT, PackageEntry, bounded_text};
use crate::sources::{SourceContext, StagedRejection};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Private prefix of the candidate lists.
pub const CANDIDATES_PREFIX: &str = "runs/candidates/";

/// Longest source error kept in the output (one per configured package).
const ERROR_LIMIT: usize = 1024;

/// Largest candidate accepted from a source, as JSON, once its notes are cut:
/// each one is the input of one child execution of the Distributed Map.
pub const CANDIDATE_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CheckSourcesInput {
    #[serde(default)]
    pub force_rebuild: bool,
    /// `schedule`, `staging_upload`, `manual`; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceFailure {
    pub package: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckSourcesOutput {
    /// Private-store key of the JSON list of candidates; `None` when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates_key: Option<String>,
    pub candidate_count: usize,
    /// Candidates dropped because the store already has them.
    pub already_processed: usize,
    pub failures: Vec<SourceFailure>,
    pub force_rebuild: bool,
    /// The published Release has less than half of its validity left.
    pub refresh_due: bool,
    /// Entries recorded since the live generation was built (a run that
    /// recorded them failed before publishing): they must be published now.
    #[serde(default)]
    pub unpublished: u64,
    /// Anything to do at all: new candidates, forced, a refresh due, or unpublished entries.
    pub proceed: bool,
    /// Staged files moved to `staging/rejected/` by this run, the first
    /// [`REJECTIONS_LISTED`] of them with their reasons cut to
    /// [`REJECTION_REASON_LIMIT`] bytes (always present: the state machine's
    /// Summarize reads it). How many there are is up to whoever uploads, so the
    /// list is bounded to keep the state far below 256 KiB.
    #[serde(default)]
    pub rejected: Vec<StagedRejection>,
    /// How many staged files this run moved to `staging/rejected/` (the
    /// AnythingToDo choice reads it).
    #[serde(default)]
    pub rejected_count: usize,
    /// Candidates not fetched because they were refused before and upstream
    /// still announces them the same way (`pkgrelay status` lists them).
    #[serde(default)]
    pub skipped_rejected: usize,
}

/// Staged-file rejections listed in the step's output; the rest are counted.
pub const REJECTIONS_LISTED: usize = 20;
/// Bytes of a rejection's reason kept in the step's output (S3 keys are at
/// most 1,024 bytes, so 20 entries stay under 60 KB).
pub const REJECTION_REASON_LIMIT: usize = 1024;

/// The candidate list written by [`check_sources`].
pub async fn read_candidates(ctx: &Context, key: &str) -> StepResult<Vec<Candidate>> {
    let bytes = ctx.private.get_bytes(key).await?;
    serde_json::from_slice(&bytes).map_err(|e| StepError::Internal(anyhow::anyhow!("candidate list {key}: {e}")))
}

/// Cut what upstream may make arbitrarily long, and refuse a candidate that is
/// still too large to travel as a state (a URL of megabytes, say).
fn bounded(mut candidate: Candidate) -> Result<Candidate, String> {
    if let Some(notes) = &candidate.notes {
        candidate.notes = Some(bounded_text(notes, NOTES_LIMIT));
    }
    let size = serde_json::to_vec(&candidate).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > CANDIDATE_LIMIT {
        return Err(format!(
            "{} {} is described by {size} bytes of upstream text (URL, version, companions), more than the \
             {CANDIDATE_LIMIT} bytes a candidate may take; it is skipped",
            candidate.package,
            bounded_text(&candidate.version, 64)
        ));
    }
    Ok(candidate)
}

/// Whether `entry` was recorded for a release upstream announced as `version`.
fn announces(entry: &PackageEntry, version: &str) -> bool {
    crate::version::compare(entry.announced(), version) == std::cmp::Ordering::Equal
}

pub async fn check_sources(ctx: &Context, input: CheckSourcesInput) -> StepResult<CheckSourcesOutput> {
    let suite = ctx.store.suite(ctx.suite()).await?;
    let marker_lost = match ctx.format.published_marker() {
        Some(key) => !ctx.public.exists(&key).await?,
        None => false,
    };
    if marker_lost && suite.published.is_some() {
        tracing::warn!("the published index is gone from the repository: republishing");
    }
    let refresh_due = marker_lost || suite.published.as_ref().is_none_or(|p| p.refresh_due(now()));
    let unpublished = suite.unpublished();
    if unpublished > 0 && suite.published.is_some() {
        tracing::warn!(unpublished, "entries were recorded after the live generation was built: publishing them");
    }
    let mut out = CheckSourcesOutput {
        candidates_key: None,
        candidate_count: 0,
        already_processed: 0,
        failures: Vec::new(),
        force_rebuild: input.force_rebuild,
        refresh_due,
        unpublished,
        proceed: true,
        rejected: Vec::new(),
        rejected_count: 0,
        skipped_rejected: 0,
    };
    if input.force_rebuild {
        tracing::info!("forced rebuild: no source is asked");
        return Ok(out);
    }
    let sctx = SourceContext {
        fetcher: &ctx.fetcher,
        private: ctx.private.as_ref(),
        public: ctx.public.as_ref(),
        store: ctx.store.as_ref(),
        work_dir: &ctx.work_dir,
        staged: Default::default(),
        staging_packages: ctx
            .packages()
            .iter()
            .filter(|p| p.source.source_type() == crate::model::SourceType::StagingUpload)
            .map(|p| p.name.clone())
            .collect(),
        rejected: Default::default(),
        // The control-archive caps are repository-wide: every package's are the repository's.
        deb_limits: ctx.packages().first().map(|p| p.effective_limits.deb()).unwrap_or_default(),
        staged_checks: &ctx.staged_checks,
    };
    // What an earlier run in this process checked and did not take is stale.
    ctx.staged_checks.lock().unwrap().clear();
    // Sources are independent: ask them all at once.
    let answers = futures_util::future::join_all(ctx.packages().iter().map(|p| {
        let sctx = &sctx;
        async move { (p, p.source.source().candidates(p, sctx).await) }
    }))
    .await;
    let mut found = Vec::new();
    for (package, answer) in answers {
        match answer {
            Ok(list) => {
                for candidate in list {
                    match bounded(candidate) {
                        Ok(c) => found.push(c),
                        Err(e) => {
                            tracing::warn!(package = %package.name, "{e}");
                            out.failures.push(SourceFailure { package: package.name.clone(), error: e });
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(package = %package.name, "source failed: {e:#}");
                out.failures.push(SourceFailure {
                    package: package.name.clone(),
                    error: bounded_text(&format!("{e:#}"), ERROR_LIMIT),
                });
            }
        }
    }

    // What the store knows of them, in as few requests as the store allows:
    // the announced ids at once, then, for the packages of those not found by
    // id, their recorded versions (one query a package) to recognise vendor
    // builds by the version upstream announced for them.
    let ids: Vec<String> = found.iter().filter(|c| c.version_known()).map(Candidate::package_id).collect();
    let known: HashMap<String, _> =
        ctx.store.get_many(&ids).await?.into_iter().map(|e| (e.package_id.clone(), e)).collect();
    let mut by_package: HashMap<&str, Vec<PackageEntry>> = HashMap::new();
    for candidate in found.iter().filter(|c| c.version_known() && !known.contains_key(&c.package_id())) {
        if !by_package.contains_key(candidate.package.as_str()) {
            by_package.insert(&candidate.package, ctx.store.versions_of(&candidate.package).await?);
        }
    }
    let mut candidates = Vec::new();
    for candidate in &found {
        if !candidate.version_known() {
            candidates.push(candidate.clone());
            continue;
        }
        let recorded: Vec<&PackageEntry> = match known.get(&candidate.package_id()) {
            Some(entry) => vec![entry],
            None => by_package
                .get(candidate.package.as_str())
                .into_iter()
                .flatten()
                .filter(|e| e.architecture == candidate.architecture && announces(e, &candidate.version))
                .collect(),
        };
        if recorded.is_empty() {
            candidates.push(candidate.clone());
        } else if recorded.iter().any(|e| {
            // Known, and upstream still describes it the same way: nothing to do.
            e.source_url == candidate.url || candidate.expected_sha256.as_deref() == Some(e.checksums.sha256.as_str())
        }) {
            out.already_processed += 1
        } else {
            // Known, but upstream now points elsewhere: fetch it so that a
            // re-published version with other bytes is caught and reported.
            tracing::warn!(package_id = %candidate.package_id(), url = %candidate.url, "known version announced at a new location");
            candidates.push(candidate.clone())
        }
    }
    // Refused before, and upstream still announces them the same way: not
    // fetched again (one batch read of the refusals, only when there are
    // candidates at all).
    if !candidates.is_empty() {
        let ids: Vec<String> = candidates.iter().map(Candidate::package_id).collect();
        let refused: HashMap<String, _> =
            ctx.store.rejections(&ids).await?.into_iter().map(|r| (r.package_id.clone(), r)).collect();
        candidates.retain(|c| match refused.get(&c.package_id()) {
            Some(r) if r.still_applies(c) => {
                tracing::info!(package_id = %r.package_id, reason = %r.reason, "refused before, unchanged upstream: not fetched");
                out.skipped_rejected += 1;
                false
            }
            _ => true,
        });
    }
    let rejected = std::mem::take(&mut *sctx.rejected.lock().unwrap());
    out.rejected_count = rejected.len();
    out.rejected = rejected
        .into_iter()
        .take(REJECTIONS_LISTED)
        .map(|r| StagedRejection { reason: crate::model::bounded_text(&r.reason, REJECTION_REASON_LIMIT), ..r })
        .collect();
    if !candidates.is_empty() {
        let json = serde_json::to_vec(&candidates).map_err(|e| StepError::Internal(e.into()))?;
        let key = format!("{CANDIDATES_PREFIX}{}.json", run_unique_name(&json));
        // One object per run: two runs racing over the same list (a schedule and
        // an upload) must not share it, since the local pipeline deletes its list
        // once read. A plain put is safe (and needs no read permission, as a
        // write-once comparison would).
        ctx.private.put_bytes(&key, json, WriteMode::Overwrite).await?;
        out.candidates_key = Some(key);
    }
    out.candidate_count = candidates.len();
    out.proceed = !candidates.is_empty() || refresh_due || unpublished > 0;
    tracing::info!(
        candidates = out.candidate_count,
        already_processed = out.already_processed,
        failures = out.failures.len(),
        rejected = out.rejected.len(),
        skipped_rejected = out.skipped_rejected,
        refresh_due,
        unpublished,
        "sources checked"
    );
    super::crash_point("check-sources");
    Ok(out)
}

/// A name for this run's candidate list: the list's SHA-256 mixed with the
/// time, the process and a counter, so that no two runs (nor two calls in one
/// process) ever pick the same one.
fn run_unique_name(list: &[u8]) -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut salted = format!("{now}:{}:{call}:", std::process::id()).into_bytes();
    salted.extend_from_slice(list);
    crate::digest::sha256_hex(&salted)
}
