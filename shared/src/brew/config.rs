//! A Homebrew mirror's settings file (`config/homebrew.yaml`, named by its
//! entry in `config/repositories.yaml`), validated at load like the rest of
//! the configuration: errors name the file and the field.

use super::api::{Selection, check_formula_name, check_tag};
use crate::config::ConfigError;
use crate::fetch::{FetchRules, HostPolicy, check_host_pattern, check_url_allowed};
use crate::limits::{Limits, LimitsConfig};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

/// The API files brew 5.x fetches from `HOMEBREW_API_DOMAIN`; brew 6.x
/// fetches `internal/packages.<tag>.jws.json` for its own tag, which the
/// mirror adds for every configured tag.
pub const DEFAULT_API_FILES: &[&str] = &[
    "formula.jws.json",
    "cask.jws.json",
    "formula_tap_migrations.jws.json",
    "cask_tap_migrations.jws.json",
    "internal/executables.txt",
];

/// `formulae:` — `all`, or a list of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formulae {
    All,
    Names(Vec<String>),
}

impl<'de> Deserialize<'de> for Formulae {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Formulae, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Formulae::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("{w:?}: expected `all` or a list of formula names"))),
            Raw::List(l) => Ok(Formulae::Names(l)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomebrewConfig {
    /// Where brew's API files come from (`HOMEBREW_API_DOMAIN`'s default:
    /// `https://formulae.brew.sh/api`).
    pub api_url: String,
    /// The registry holding the bottles and their manifests
    /// (`https://ghcr.io/v2/homebrew/core`).
    pub registry_url: String,
    /// Hosts the registry's redirects may lead to (ghcr sends blobs from
    /// `pkg-containers.githubusercontent.com`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// The `Authorization` header the registry wants of anonymous clients
    /// (ghcr: `Bearer QQ==`, as brew sends). Sent to the registry's own host
    /// only, never to where it redirects.
    #[serde(default = "default_registry_auth")]
    pub registry_authorization: String,
    pub formulae: Formulae,
    /// Bottle tags mirrored: `arm64_tahoe`, `arm64_sequoia`, `arm64_sonoma`,
    /// `sonoma`, `x86_64_linux`, `arm64_linux`, …
    pub tags: Vec<String>,
    /// API files served unchanged (relative to `api_url`).
    #[serde(default = "default_api_files")]
    pub api_files: Vec<String>,
    /// Where clients reach the mirror's root (its prefix in the bucket).
    pub base_url: String,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// On AWS, how many bottles the scheduled run's Distributed Map downloads
    /// at once (the CDK app reads it into the weekly schedule's input;
    /// default 10). Locally downloads run one after another.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// The mirror's own grace period for bottles and files no generation
    /// lists any more (absent: `repository.yaml`'s, 7 days by default).
    #[serde(default)]
    pub retention: Option<crate::config::RetentionConfig>,
    /// The file, relative to the configuration directory; set at load.
    #[serde(skip)]
    pub file: String,
    /// Limits in force: the defaults, repository.yaml's, this file's; set at load.
    #[serde(skip)]
    pub effective_limits: Limits,
}

fn default_registry_auth() -> String {
    "Bearer QQ==".into()
}

fn default_api_files() -> Vec<String> {
    DEFAULT_API_FILES.iter().map(|s| s.to_string()).collect()
}

impl HomebrewConfig {
    pub fn selection(&self) -> Selection {
        match &self.formulae {
            Formulae::All => Selection::All,
            Formulae::Names(n) => Selection::Names(n.iter().cloned().collect()),
        }
    }

    /// Every API file published, in order: the configured ones, then brew
    /// 6's per-tag packages file for each tag.
    pub fn all_api_files(&self) -> Vec<String> {
        let mut files = self.api_files.clone();
        for tag in &self.tags {
            let f = format!("internal/packages.{tag}.jws.json");
            if !files.contains(&f) {
                files.push(f);
            }
        }
        files
    }

    /// Fetch rules for the API files (`api_url`'s host). They are held to
    /// the artifact limits, not the document ones: `formula.json` is about
    /// 30 MB (the document cap is 16 MiB by default), and every API file is
    /// streamed to a file, never held in memory.
    pub fn api_rules(&self) -> Result<FetchRules, String> {
        let hosts =
            HostPolicy::new(&self.api_url, &[], format!("api_url in {}", self.file)).map_err(|e| e.to_string())?;
        Ok(FetchRules { hosts, limits: self.effective_limits.artifacts(), headers: Vec::new(), sha256_only: false })
    }

    /// Fetch rules for the registry: `registry_url`'s host and
    /// `allowed_hosts`; `artifact`: a bottle (else a manifest).
    pub fn registry_rules(&self, artifact: bool) -> Result<FetchRules, String> {
        let hosts = HostPolicy::new(&self.registry_url, &self.allowed_hosts, format!("allowed_hosts in {}", self.file))
            .map_err(|e| e.to_string())?;
        let limits = if artifact { self.effective_limits.artifacts() } else { self.effective_limits.documents() };
        Ok(FetchRules {
            hosts,
            limits,
            headers: vec![("authorization".into(), self.registry_authorization.clone())],
            // A bottle's record and brew need its SHA-256 alone.
            sha256_only: artifact,
        })
    }

    /// Load and check `dir/<file>`; `limits`: the repository-wide ones.
    pub fn load(dir: &Path, file: &str, limits: &Limits) -> Result<HomebrewConfig, ConfigError> {
        let path = dir.join(file);
        let e =
            |field: &str, message: String| ConfigError { file: path.clone(), field: Some(field.to_owned()), message };
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError {
            file: path.clone(),
            field: None,
            message: format!("cannot read: {err}"),
        })?;
        let mut c: HomebrewConfig = serde_norway::from_str(&text).map_err(|err| ConfigError {
            file: path.clone(),
            field: None,
            message: err.to_string(),
        })?;
        c.file = file.to_owned();
        for (field, url) in [("api_url", &c.api_url), ("registry_url", &c.registry_url)] {
            check_url_allowed(url).map_err(|err| e(field, err.to_string()))?;
        }
        for h in &c.allowed_hosts {
            check_host_pattern(h).map_err(|err| e("allowed_hosts", err))?;
        }
        if c.registry_authorization.contains(['\r', '\n']) {
            return Err(e("registry_authorization", "must be a single line".into()));
        }
        if let Formulae::Names(names) = &c.formulae {
            if names.is_empty() {
                return Err(e("formulae", "list at least one formula, or write `all`".into()));
            }
            for n in names {
                check_formula_name(n).map_err(|err| e("formulae", err))?;
            }
        }
        if c.max_concurrency.is_some_and(|n| !(1..=1000).contains(&n)) {
            return Err(e("max_concurrency", "a whole number from 1 to 1000".into()));
        }
        if c.tags.is_empty() {
            return Err(e("tags", "list at least one bottle tag".into()));
        }
        let mut seen = BTreeSet::new();
        for t in &c.tags {
            check_tag(t).map_err(|err| e("tags", err))?;
            if !seen.insert(t) {
                return Err(e("tags", format!("{t} is listed twice")));
            }
        }
        for f in &c.api_files {
            let ok = !f.is_empty()
                && f.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                && f.chars().all(|ch| ch.is_ascii_alphanumeric() || "._-/".contains(ch));
            if !ok {
                return Err(e("api_files", format!("{f:?} is not a relative file path under api_url")));
            }
        }
        let url = url::Url::parse(&c.base_url).map_err(|err| e("base_url", format!("{:?}: {err}", c.base_url)))?;
        if !matches!(url.scheme(), "https" | "http") || url.query().is_some() {
            return Err(e("base_url", format!("{:?}: must be an http(s) URL without query", c.base_url)));
        }
        c.effective_limits = limits.with(&c.limits, file, false).map_err(|err| e(&err.field, err.message))?;
        if let Some(r) = &c.retention {
            r.check(&path, "retention.grace")?;
        }
        Ok(c)
    }
}
