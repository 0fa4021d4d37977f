//! `github_release`: `.deb` assets of a GitHub-releases-shaped JSON list
//! (`[{"tag_name", "draft", "prerelease", "published_at", "body", "assets": [{"name", "browser_download_url", "size"}]}]`).
//! The architecture of an asset is read from its file name. Asset URLs are
//! held to the package's host policy where they are downloaded (GitHub serves
//! assets from `github.com`, redirecting to `*.githubusercontent.com`: both
//! must be in `source.allowed_hosts` unless the list itself is there).

use super::{Source, SourceContext, resolve};
use crate::config::PackageConfig;
use crate::model::{Candidate, SourceType};
use anyhow::Context as _;
use async_trait::async_trait;
use serde::Deserialize;

/// `type: github_release`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRelease {
    /// A GitHub-releases-shaped JSON list (`tag_name`, `assets[]`).
    pub releases_url: String,
    #[serde(default)]
    pub include_prereleases: bool,
    /// Hosts of the assets and their redirects besides `releases_url`'s
    /// (GitHub: `github.com`, `*.githubusercontent.com`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
    #[serde(default)]
    published_at: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(Deserialize)]
struct Asset {
    name: String,
    browser_download_url: String,
    #[serde(default)]
    size: Option<u64>,
}

#[async_trait]
impl Source for GithubRelease {
    fn configured_url(&self) -> Option<(&'static str, &str)> {
        Some(("source.releases_url", &self.releases_url))
    }

    fn allowed_hosts(&self) -> &[String] {
        &self.allowed_hosts
    }

    async fn candidates(&self, package: &PackageConfig, ctx: &SourceContext<'_>) -> anyhow::Result<Vec<Candidate>> {
        let rules = package.document_rules().map_err(anyhow::Error::msg)?;
        let body = ctx.fetcher.get_bytes(&self.releases_url, &rules).await?;
        parse_github_releases(&body, &self.releases_url, package, self.include_prereleases)
    }
}

/// The Debian architecture an asset name announces, by the words packagers use.
fn asset_architecture(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.trim_end_matches(".deb").split(['_', '-', '.']).collect();
    let has = |w: &[&str]| words.iter().any(|x| w.contains(x));
    if has(&["amd64", "x64"]) || lower.contains("x86_64") {
        Some("amd64")
    } else if has(&["arm64", "aarch64"]) {
        Some("arm64")
    } else if has(&["all", "noarch"]) {
        Some("all")
    } else {
        None
    }
}

pub fn parse_github_releases(
    body: &[u8],
    releases_url: &str,
    package: &PackageConfig,
    include_prereleases: bool,
) -> anyhow::Result<Vec<Candidate>> {
    let releases: Vec<Release> = serde_json::from_slice(body)
        .with_context(|| format!("releases at {releases_url} are not a GitHub releases JSON list"))?;
    let wanted: Vec<&str> = package.architectures().collect();
    let mut out = Vec::new();
    for r in releases.into_iter().filter(|r| !r.draft && (include_prereleases || !r.prerelease)) {
        let version = r.tag_name.strip_prefix('v').unwrap_or(&r.tag_name).to_owned();
        if crate::version::parse(&version).is_err() {
            tracing::warn!(tag = %r.tag_name, %releases_url, "skipping release: tag is not a Debian version");
            continue;
        }
        for asset in r.assets.iter().filter(|a| a.name.to_ascii_lowercase().ends_with(".deb")) {
            let Some(arch) = asset_architecture(&asset.name) else {
                tracing::warn!(asset = %asset.name, "skipping asset: no architecture in its name");
                continue;
            };
            if !(wanted.contains(&arch) || (arch == "all" && !wanted.is_empty())) {
                continue;
            }
            let url = resolve(releases_url, &asset.browser_download_url)
                .with_context(|| format!("releases at {releases_url}, asset {}", asset.name))?;
            out.push(Candidate {
                package: package.name.clone(),
                version: version.clone(),
                architecture: arch.to_owned(),
                source_type: SourceType::GithubRelease,
                url,
                expected_size: asset.size,
                expected_sha256: None,
                companions: vec![],
                pub_date: r.published_at.clone(),
                notes: r.body.clone(),
                latest: None,
                metadata: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    #[test]
    fn picks_debs_per_architecture() {
        let pkg = PackageConfig {
            name: "kiro-cli".into(),
            description: "d".into(),
            maintainer: "m".into(),
            homepage: "https://kiro.dev".into(),
            section: "devel".into(),
            priority: "optional".into(),
            architecture: "amd64 arm64".into(),
            depends: vec![],
            keep: None,
            source: SourceConfig::GithubRelease(GithubRelease {
                releases_url: "https://example.com/r".into(),
                include_prereleases: false,
                allowed_hosts: vec![],
            }),
            limits: Default::default(),
            file: "packages/kiro-cli.yaml".into(),
            effective_limits: Default::default(),
        };
        let body = br#"[
          {"tag_name": "v1.2.0", "assets": [
            {"name": "kiro-cli_1.2.0_amd64.deb", "browser_download_url": "https://example.com/a.deb", "size": 10},
            {"name": "kiro-cli_1.2.0_aarch64.deb", "browser_download_url": "https://example.com/b.deb", "size": 11},
            {"name": "kiro-cli_1.2.0_amd64.tar.gz", "browser_download_url": "https://example.com/c", "size": 12},
            {"name": "kiro-cli_1.2.0_riscv64.deb", "browser_download_url": "https://example.com/d.deb", "size": 13}]},
          {"tag_name": "v1.3.0-rc1", "prerelease": true, "assets": [
            {"name": "kiro-cli_1.3.0_amd64.deb", "browser_download_url": "https://example.com/e.deb"}]},
          {"tag_name": "v1.1.0", "draft": true, "assets": []}]"#;
        let c = parse_github_releases(body, "https://example.com/r", &pkg, false).unwrap();
        let got: Vec<_> = c.iter().map(|c| (c.version.as_str(), c.architecture.as_str(), c.expected_size)).collect();
        assert_eq!(got, [("1.2.0", "amd64", Some(10)), ("1.2.0", "arm64", Some(11))]);
        assert_eq!(parse_github_releases(body, "https://example.com/r", &pkg, true).unwrap().len(), 3);
        assert!(parse_github_releases(b"{}", "https://example.com/r", &pkg, false).is_err());
    }
}
