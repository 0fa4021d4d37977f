//! check-sources: ask every configured source for candidates and drop those the
//! store already holds. Forced runs ask no source: they rebuild from the store.

use super::{Context, StepResult, now};
use crate::model::Candidate;
use crate::sources::{self, SourceContext};
use serde::{Deserialize, Serialize};

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
    pub candidates: Vec<Candidate>,
    /// Candidates dropped because the store already has them.
    pub already_processed: usize,
    pub failures: Vec<SourceFailure>,
    pub force_rebuild: bool,
    /// The published Release has less than half of its validity left.
    pub refresh_due: bool,
    /// Anything to do at all: new candidates, forced, or a refresh due.
    pub proceed: bool,
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
    let mut out = CheckSourcesOutput {
        candidates: Vec::new(),
        already_processed: 0,
        failures: Vec::new(),
        force_rebuild: input.force_rebuild,
        refresh_due,
        proceed: true,
    };
    if input.force_rebuild {
        tracing::info!("forced rebuild: no source is asked");
        return Ok(out);
    }
    let sctx = SourceContext {
        fetcher: &ctx.fetcher,
        private: ctx.private.as_ref(),
        work_dir: &ctx.work_dir,
        staged: Default::default(),
    };
    // Sources are independent: ask them all at once.
    let answers = futures_util::future::join_all(ctx.config.packages.iter().map(|p| {
        let sctx = &sctx;
        async move { (p, sources::for_package(p).candidates(p, sctx).await) }
    }))
    .await;
    for (package, answer) in answers {
        let found = match answer {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(package = %package.name, "source failed: {e:#}");
                out.failures.push(SourceFailure { package: package.name.clone(), error: format!("{e:#}") });
                continue;
            }
        };
        for candidate in found {
            match ctx.store.get(&candidate.package_id()).await? {
                None => out.candidates.push(candidate),
                // Known, and upstream still describes it the same way: nothing to do.
                Some(known)
                    if known.source_url == candidate.url
                        || candidate.expected_sha256.as_deref() == Some(known.checksums.sha256.as_str()) =>
                {
                    out.already_processed += 1
                }
                // Known, but upstream now points elsewhere: fetch it so that a
                // re-published version with other bytes is caught and reported.
                Some(_) => {
                    tracing::warn!(package_id = %candidate.package_id(), url = %candidate.url, "known version announced at a new location");
                    out.candidates.push(candidate)
                }
            }
        }
    }
    out.proceed = !out.candidates.is_empty() || refresh_due;
    tracing::info!(
        candidates = out.candidates.len(),
        already_processed = out.already_processed,
        failures = out.failures.len(),
        refresh_due,
        "sources checked"
    );
    Ok(out)
}
