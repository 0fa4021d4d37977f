//! `external_download`: a vendor metadata endpoint announcing releases (Kiro).
//!
//! Two shapes are understood. The current one lists entries grouped by version,
//! one URL each (the .deb, `certificate.pem`, `signature.bin`):
//! `{"currentRelease": "0.7.45", "releases": [{"version": "0.7.45", "updateTo": {"url": …, "pub_date": …, "notes": …}}, …]}`.
//! The older flat one is a single release:
//! `{"version", "pub_date", "url", "certificate", "signature", "notes"}`.
//! Either may carry a `sha256` (or `sha256hash`) of the .deb, which the download
//! must then match.
//!
//! The URLs found in the metadata are what upstream chose: they are resolved
//! here, and held to the package's host policy (https, allowed hosts) where
//! they are fetched, by download-package, so that one bad release fails alone.

use super::{Source, SourceContext, resolve};
use crate::config::PackageConfig;
use crate::model::{Candidate, Companion, SourceType};
use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

/// `type: external_download`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDownload {
    /// The vendor's JSON metadata endpoint.
    pub metadata_url: String,
    /// Hosts the URLs found in the metadata (and redirects) may point at
    /// besides `metadata_url`'s; `*.example.com` for any under it.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[async_trait]
impl Source for ExternalDownload {
    fn configured_url(&self) -> Option<(&'static str, &str)> {
        Some(("source.metadata_url", &self.metadata_url))
    }

    fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let rules = package.document_rules().map_err(anyhow::Error::msg)?;
        let body = ctx.fetcher.get_bytes(&self.metadata_url, &rules).await?;
        parse_kiro_metadata(&body, &self.metadata_url, package)
    }
}

/// One release as the metadata describes it, before it becomes a candidate.
#[derive(Default)]
struct Release {
    version: String,
    deb: Option<String>,
    certificate: Option<String>,
    signature: Option<String>,
    pub_date: Option<String>,
    notes: Option<String>,
    sha256: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The path part of a URL in lower case, for suffix checks that ignore queries.
fn url_path(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_ascii_lowercase()
}

impl Release {
    /// File a URL under the release by its suffix.
    fn add_url(&mut self, url: String) {
        let path = url_path(&url);
        if path.ends_with(".deb") {
            self.deb = Some(url);
        } else if path.ends_with(".pem") {
            self.certificate = Some(url);
        } else if path.ends_with(".bin") || path.ends_with(".sig") {
            self.signature = Some(url);
        }
    }
}

/// An optional SHA256 of the .deb, under the names vendors use for it.
fn sha256_of(v: &Value) -> Option<String> {
    text(v, "sha256").or_else(|| text(v, "sha256hash")).map(|h| h.to_ascii_lowercase())
}

/// Parse either metadata shape into candidates for `package`'s architecture.
pub fn parse_kiro_metadata(body: &[u8], metadata_url: &str, package: &PackageConfig) -> anyhow::Result<Vec<Candidate>> {
    let doc: Value =
        serde_json::from_slice(body).with_context(|| format!("metadata at {metadata_url} is not valid JSON"))?;
    let releases = if let Some(list) = doc.get("releases") {
        let list = list.as_array().ok_or_else(|| anyhow!("metadata at {metadata_url}: `releases` is not a list"))?;
        let mut grouped: Vec<Release> = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let update = item.get("updateTo").unwrap_or(item);
            let version = text(item, "version")
                .or_else(|| text(update, "version"))
                .ok_or_else(|| anyhow!("metadata at {metadata_url}: releases[{i}] has no `version`"))?;
            let url = text(update, "url").ok_or_else(|| {
                anyhow!("metadata at {metadata_url}: releases[{i}] ({version}) has no `updateTo.url`")
            })?;
            let pos = match grouped.iter().position(|r| r.version == version) {
                Some(p) => p,
                None => {
                    grouped.push(Release { version: version.clone(), ..Default::default() });
                    grouped.len() - 1
                }
            };
            let release = &mut grouped[pos];
            if url_path(&url).ends_with(".deb") {
                release.pub_date = text(update, "pub_date").or(release.pub_date.take());
                release.notes = text(update, "notes").or(release.notes.take());
                release.sha256 = sha256_of(update);
            }
            release.add_url(url);
        }
        grouped
    } else if doc.get("version").is_some() || doc.get("url").is_some() {
        let version =
            text(&doc, "version").ok_or_else(|| anyhow!("metadata at {metadata_url}: flat form without `version`"))?;
        let mut r = Release {
            version,
            pub_date: text(&doc, "pub_date"),
            notes: text(&doc, "notes"),
            sha256: sha256_of(&doc),
            ..Default::default()
        };
        if let Some(url) = text(&doc, "url") {
            r.add_url(url);
        }
        r.certificate = text(&doc, "certificate").or(r.certificate);
        r.signature = text(&doc, "signature").or(r.signature);
        vec![r]
    } else {
        bail!("metadata at {metadata_url} has neither `releases` nor `version`: not a known metadata shape");
    };
    if releases.is_empty() {
        bail!("metadata at {metadata_url} lists no releases");
    }

    let architecture = package.architectures().next().unwrap_or("amd64").to_owned();
    let mut out = Vec::new();
    for r in releases {
        crate::version::parse(&r.version).with_context(|| format!("metadata at {metadata_url}"))?;
        let deb =
            r.deb.ok_or_else(|| anyhow!("metadata at {metadata_url}: version {} lists no .deb URL", r.version))?;
        let deb = checked(metadata_url, &deb)?;
        let mut companions = Vec::new();
        for (kind, suffix, url) in [("certificate", "pem", r.certificate), ("signature", "sig", r.signature)] {
            if let Some(url) = url {
                companions.push(Companion {
                    kind: kind.into(),
                    url: checked(metadata_url, &url)?,
                    suffix: suffix.into(),
                });
            }
        }
        out.push(Candidate {
            package: package.name.clone(),
            version: r.version,
            architecture: architecture.clone(),
            source_type: SourceType::ExternalDownload,
            url: deb,
            expected_size: None,
            expected_sha256: r.sha256,
            companions,
            pub_date: r.pub_date,
            notes: r.notes,
            latest: None,
            metadata: None,
        });
    }
    Ok(out)
}

/// Resolve a URL found in the metadata against the metadata's own.
fn checked(metadata_url: &str, found: &str) -> anyhow::Result<String> {
    resolve(metadata_url, found).with_context(|| format!("metadata at {metadata_url}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    fn pkg() -> PackageConfig {
        PackageConfig {
            name: "kiro".into(),
            description: "d".into(),
            maintainer: "m".into(),
            homepage: "https://kiro.dev".into(),
            section: "devel".into(),
            priority: "optional".into(),
            architecture: "amd64".into(),
            depends: vec![],
            keep: None,
            source: SourceConfig::ExternalDownload(ExternalDownload {
                metadata_url: "https://example.com/m.json".into(),
                allowed_hosts: vec![],
            }),
            limits: Default::default(),
            file: "packages/kiro.yaml".into(),
            effective_limits: Default::default(),
        }
    }

    const URL: &str = "https://example.com/stable/metadata.json";

    #[test]
    fn nested_form() {
        let body = br#"{"currentRelease": "0.7.45", "releases": [
          {"version": "0.7.45", "updateTo": {"version": "0.7.45", "pub_date": "2025-11-20T10:00:00Z", "notes": "n",
             "url": "https://dl.example.com/signed/0.7.45/deb/kiro-ide-0.7.45-stable-linux-x64.deb"}},
          {"version": "0.7.45", "updateTo": {"url": "https://dl.example.com/signed/0.7.45/certificate.pem"}},
          {"version": "0.7.45", "updateTo": {"url": "https://dl.example.com/signed/0.7.45/signature.bin"}}]}"#;
        let c = parse_kiro_metadata(body, URL, &pkg()).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].version, "0.7.45");
        assert!(c[0].url.ends_with(".deb"));
        assert_eq!(c[0].pub_date.as_deref(), Some("2025-11-20T10:00:00Z"));
        let kinds: Vec<_> = c[0].companions.iter().map(|x| x.kind.as_str()).collect();
        assert_eq!(kinds, ["certificate", "signature"]);
    }

    #[test]
    fn flat_form_and_relative_urls() {
        let body = br#"{"version": "0.6.1", "pub_date": "2025-01-01T00:00:00Z", "url": "kiro-0.6.1.deb",
                        "certificate": "c.pem", "signature": "s.bin", "notes": "old"}"#;
        let c = parse_kiro_metadata(body, URL, &pkg()).unwrap();
        assert_eq!(c[0].url, "https://example.com/stable/kiro-0.6.1.deb");
        assert_eq!(c[0].companions.len(), 2);
    }

    #[test]
    fn bad_metadata_is_named() {
        let e = parse_kiro_metadata(b"{not json", URL, &pkg()).unwrap_err();
        assert!(format!("{e:#}").contains("not valid JSON"), "{e:#}");
        let e = parse_kiro_metadata(
            br#"{"releases": [{"version": "1.0", "updateTo": {"url": "https://x/a.pem"}}]}"#,
            URL,
            &pkg(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("lists no .deb"), "{e:#}");
        let e = parse_kiro_metadata(
            br#"{"releases": [{"version": "1.0", "updateTo": {"url": "https://[x/a.deb"}}]}"#,
            URL,
            &pkg(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not a valid URL"), "{e:#}");
        let e = parse_kiro_metadata(br#"{"foo": 1}"#, URL, &pkg()).unwrap_err();
        assert!(format!("{e:#}").contains("not a known metadata shape"), "{e:#}");
    }
}
