//! `latest_url`: one URL that always serves the newest `.deb` of a package
//! (Kiro's install docs: `https://desktop-release.q.us-east-1.amazonaws.com/latest/kiro-cli.deb`).
//!
//! The URL announces no version and keeps no history: the version is read from
//! the file itself once downloaded, and the store keeps every version the URL
//! ever served. check-sources must not download the file to learn whether it
//! changed (it runs in a small Lambda function, and an idle hourly run should
//! cost one small request), so each run asks, cheapest first:
//!
//! 1. **ETag.** A `HEAD` with `If-None-Match: <the recorded ETag>`; `304`
//!    means unchanged. A server that ignores the condition and answers `200`
//!    is compared by the ETag it sends.
//! 2. **Last-Modified**, when the server sends no ETag: `If-Modified-Since`,
//!    the same way.
//! 3. **Size**, when it sends neither: the `HEAD`'s `Content-Length` against
//!    the recorded size. A new file of exactly the old size is missed until
//!    the size changes; a server this poor gives nothing better short of a
//!    download.
//! 4. **Nothing to compare** (no validators, no length): every run offers the
//!    file, download-package downloads it in full, and the store recognises
//!    bytes it already holds (a no-op). Correct, but one full download a run.
//!
//! A changed file becomes one candidate whose version is only the label
//! [`LATEST`]: download-package reads the real one from the `.deb` and builds
//! the store id from it. The validators of the response it downloaded are
//! recorded (the per-source [`crate::model::SourceState`]) by record-metadata,
//! and only once the entry is recorded: a failed download leaves the old
//! record, so the next run offers the file again.
//!
//! A file that turns out to be a version already recorded with the same bytes
//! (re-uploaded, or rolled back) records nothing but its new validators, so the
//! next run sends the new ETag. With other bytes it is a conflict: the recorded
//! package is kept, record-metadata fails loudly (`PackageConflict`) and keeps
//! the file's validators with the conflict, and every later run reports the
//! conflict again, as this source's failure, without downloading the file,
//! until upstream changes it.

use super::{Fetched, Source, SourceContext};
use crate::config::PackageConfig;
use crate::fetch::{Expected, Probe, Validators};
use crate::steps::{Context, StepResult};
use serde::Deserialize;
use crate::model::{Candidate, LATEST, SourceType};
use anyhow::bail;
use async_trait::async_trait;

/// `type: latest_url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestUrl {
    /// One URL that always serves the newest .deb of the package
    /// (`…/latest/kiro-cli.deb`); asked each run with a conditional request.
    pub url: String,
    /// Hosts its redirects may lead to besides `url`'s.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Whether the file at the URL is still the one last recorded, and how that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unchanged(&'static str),
    Changed(&'static str),
}

/// ETags compared the weak way (RFC 9110 §8.8.3.2): `W/"x"` and `"x"` are the
/// same file for this purpose (some servers weaken an ETag when compressing).
fn same_etag(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// Compare what was recorded (`known`) with what the probe found.
fn verdict(known: Option<&Validators>, probe: &Probe) -> Verdict {
    let Some(known) = known else {
        return Verdict::Changed("nothing recorded yet");
    };
    let now = match probe {
        Probe::NotModified => return Verdict::Unchanged("304 Not Modified"),
        Probe::Current(now) => now,
    };
    let by =
        |same: bool, unchanged, changed| if same { Verdict::Unchanged(unchanged) } else { Verdict::Changed(changed) };
    match (&known.etag, &now.etag, &known.last_modified, &now.last_modified, known.size, now.size) {
        (Some(a), Some(b), ..) => by(same_etag(a, b), "same ETag", "new ETag"),
        (_, _, Some(a), Some(b), ..) => by(a == b, "same Last-Modified", "new Last-Modified"),
        (.., Some(a), Some(b)) => by(a == b, "same size (no ETag, no Last-Modified)", "new size"),
        _ => Verdict::Changed("nothing to compare (no ETag, Last-Modified or size): downloaded every run"),
    }
}

#[async_trait]
impl Source for LatestUrl {
    fn configured_url(&self) -> Option<(&'static str, &str)> {
        Some(("source.url", &self.url))
    }

    fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    /// One URL, one file: the architecture is the package's, not the file
    /// name's, and there is no second file for another one.
    fn check(&self, package: &PackageConfig) -> Result<(), (&'static str, String)> {
        if package.architectures().count() == 1 {
            return Ok(());
        }
        Err((
            "architecture",
            format!("{:?}: a latest_url source serves one file: name exactly one architecture", package.architecture),
        ))
    }

    /// The download keeps the response's validators: record-metadata saves
    /// them with the entry, and the next run's conditional `HEAD` sends them.
    async fn fetch(
        &self,
        ctx: &Context,
        package: &PackageConfig,
        candidate: &Candidate,
        expected: &Expected,
    ) -> StepResult<Fetched> {
        let (file, checksums, validators) = super::download(ctx, package, candidate, expected).await?;
        if let Some(probed) = &candidate.latest
            && (probed.etag != validators.etag || probed.last_modified != validators.last_modified)
        {
            // Replaced again since check-sources looked: what was
            // downloaded is what gets recorded, with its own validators.
            tracing::info!(url = %candidate.url, ?probed, downloaded = ?validators, "the file changed again since check-sources");
        }
        Ok(Fetched { file: file.into(), checksums, validators: Some(validators), metadata: None, checked: None })
    }

    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        // Validators recorded for another URL (the configuration changed) say
        // nothing about this one.
        let recorded = ctx.store.source_state(&package.name).await?.filter(|s| s.url == self.url);
        let known = recorded.as_ref().map(|s| &s.validators);
        let rules = package.document_rules().map_err(anyhow::Error::msg)?;
        let probe = ctx.fetcher.probe(&self.url, known, &rules).await?;
        match verdict(known, &probe) {
            Verdict::Unchanged(how) => {
                tracing::info!(package = %package.name, url = %self.url, how, "latest file unchanged");
                if let Some(conflict) = recorded.and_then(|s| s.conflict) {
                    bail!("{conflict} (reported by every run until the file at {} changes)", self.url);
                }
                Ok(Vec::new())
            }
            Verdict::Changed(how) => {
                tracing::info!(package = %package.name, url = %self.url, how, "latest file changed: to be downloaded");
                let seen = match probe {
                    Probe::Current(v) => v,
                    Probe::NotModified => Validators::default(),
                };
                Ok(vec![Candidate {
                    package: package.name.clone(),
                    version: LATEST.to_owned(),
                    // Validated at load: a latest_url package names exactly one.
                    architecture: package.architectures().next().unwrap_or_default().to_owned(),
                    source_type: SourceType::LatestUrl,
                    url: self.url.clone(),
                    // The file may change again before it is downloaded: what
                    // is downloaded is read and recorded as it is.
                    expected_size: None,
                    expected_sha256: None,
                    companions: vec![],
                    pub_date: None,
                    notes: None,
                    latest: Some(seen),
                    metadata: None,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn v(etag: Option<&str>, last_modified: Option<&str>, size: Option<u64>) -> Validators {
        Validators { etag: etag.map(Into::into), last_modified: last_modified.map(Into::into), size }
    }

    const MON: &str = "Mon, 03 Nov 2025 10:00:00 GMT";
    const TUE: &str = "Tue, 04 Nov 2025 10:00:00 GMT";

    #[test]
    fn validators_are_compared_etag_first_then_date_then_size() {
        let all = v(Some("\"a\""), Some(MON), Some(10));
        let cases = [
            (None, Probe::Current(all.clone()), Changed("nothing recorded yet")),
            (Some(all.clone()), Probe::NotModified, Unchanged("304 Not Modified")),
            // A server that ignores If-None-Match: its ETag decides, not the date.
            (Some(all.clone()), Probe::Current(v(Some("\"a\""), Some(TUE), Some(11))), Unchanged("same ETag")),
            (Some(all.clone()), Probe::Current(v(Some("W/\"a\""), None, None)), Unchanged("same ETag")),
            (Some(all.clone()), Probe::Current(v(Some("\"b\""), Some(MON), Some(10))), Changed("new ETag")),
            // No ETag on one side: Last-Modified decides.
            (
                Some(v(None, Some(MON), Some(10))),
                Probe::Current(v(Some("\"b\""), Some(MON), Some(10))),
                Unchanged("same Last-Modified"),
            ),
            (Some(all.clone()), Probe::Current(v(None, Some(TUE), Some(10))), Changed("new Last-Modified")),
            // Neither: the size.
            (
                Some(v(None, None, Some(10))),
                Probe::Current(v(None, None, Some(10))),
                Unchanged("same size (no ETag, no Last-Modified)"),
            ),
            (Some(v(None, None, Some(10))), Probe::Current(v(None, None, Some(12))), Changed("new size")),
            // Not even a size: downloaded every run.
            (
                Some(v(None, None, Some(10))),
                Probe::Current(v(None, None, None)),
                Changed("nothing to compare (no ETag, Last-Modified or size): downloaded every run"),
            ),
        ];
        for (known, probe, want) in cases {
            assert_eq!(verdict(known.as_ref(), &probe), want, "{known:?} vs {probe:?}");
        }
    }
}
