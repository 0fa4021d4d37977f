//! Configuration: `config/repository.yaml` and `config/packages/*.yaml`.
//!
//! Loading validates everything up front and fails with a message that names the
//! file and the field: an unknown or missing field, a bad URL, a bad package name.
//! Nothing downstream re-checks what is validated here.
//!
//! Two settings bound what upstream can make a run do: `limits:` (see
//! [`crate::limits`]: repository-wide in `repository.yaml`, transfer limits
//! overridden per package) and a source's `allowed_hosts` (where its fetches
//! may go besides its configured URL's host; see [`crate::fetch::HostPolicy`]).

use crate::fetch::{FetchRules, HostPolicy, check_host_pattern, check_url_allowed};
use crate::limits::{LimitError, Limits, LimitsConfig};
use crate::model::ConfigFields;
pub use crate::sources::SourceConfig;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration error, always naming the file and, where known, the field.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

fn err(file: &Path, field: Option<&str>, message: impl Into<String>) -> ConfigError {
    ConfigError { file: file.to_owned(), field: field.map(str::to_owned), message: message.into() }
}

/// `config/repository.yaml`: how the published repository describes itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub origin: String,
    pub label: String,
    pub suite: String,
    pub codename: String,
    pub description: String,
    pub components: Vec<String>,
    /// Space-separated or list; `all` packages are listed under each of these.
    pub architectures: Vec<String>,
    /// Where clients reach the repository root (index.html, kiro-repo's source list).
    pub base_url: String,
    /// How long a Release stays valid: `7d`, `36h`, `90m`, `45s`.
    pub valid_for: String,
    /// File name of the binary public keyring at the repository root.
    pub keyring_name: String,
    /// Name of the file under /etc/apt/sources.list.d/ that clients use.
    pub source_list_name: String,
    /// Package whose newest version is also published at the root as `<name>.deb`.
    #[serde(default)]
    pub convenience_copy: Option<String>,
    /// Compressed forms of each Packages published beside it (`[gz, xz]` by
    /// default). apt fetches `.xz` when Release lists it; a very large
    /// repository that must publish within seconds can leave `xz` out.
    #[serde(default = "IndexCompression::default_set")]
    pub compression: Vec<IndexCompression>,
    /// Per deployment (`dev`, `staging`, `prod`, …): where clients reach that
    /// deployment's repository; `pkgrelay config-package build --env` writes it
    /// into the source list. Without `--env`, `base_url` is used.
    #[serde(default)]
    pub environments: std::collections::BTreeMap<String, EnvironmentConfig>,
    pub signing: SigningConfig,
    /// What upstream may make a run take (see [`crate::limits`]); unset
    /// fields keep their defaults.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// When objects no index lists any more leave the bucket (see
    /// [`crate::retention`]); a Homebrew mirror's settings may set their own.
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// `retention:` in `repository.yaml` (or a Homebrew mirror's settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long an object (a pool file, a bottle, a by-hash index file, a
    /// generation's manifest) stays after the last published generation that
    /// referenced it was replaced: clients and caches hold older indexes
    /// (apt's lists, a CDN's copy of InRelease) and fetch what they name.
    /// `7d` by default; `0s` collects at the next clean publish (tests).
    #[serde(default = "RetentionConfig::default_grace")]
    pub grace: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { grace: Self::default_grace() }
    }
}

impl RetentionConfig {
    fn default_grace() -> String {
        "7d".into()
    }

    /// The grace period (validated at load).
    pub fn grace(&self) -> Duration {
        parse_duration_or_zero(&self.grace).expect("validated at load")
    }

    /// Check `grace`; `field`: where it was set, for the error.
    pub fn check(&self, file: &Path, field: &str) -> Result<(), ConfigError> {
        parse_duration_or_zero(&self.grace).map(drop).map_err(|e| err(file, Some(field), e))
    }
}

/// A compressed form of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexCompression {
    Gz,
    Xz,
}

impl IndexCompression {
    fn default_set() -> Vec<IndexCompression> {
        vec![IndexCompression::Gz, IndexCompression::Xz]
    }

    /// File-name suffix: `Packages.gz`.
    pub fn suffix(self) -> &'static str {
        match self {
            IndexCompression::Gz => "gz",
            IndexCompression::Xz => "xz",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    pub base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// User id of a generated key.
    pub user_id: String,
    /// Armored secret key file (relative to the config directory). When absent the
    /// CLI generates one in its state directory on first run.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// `config/packages/<name>.yaml`: one package and where it comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConfig {
    pub name: String,
    pub description: String,
    pub maintainer: String,
    pub homepage: String,
    pub section: String,
    pub priority: String,
    /// Debian architectures, space separated (`amd64 arm64`, `all`).
    pub architecture: String,
    #[serde(default)]
    pub depends: Vec<String>,
    /// Retention: how many versions of this package the index lists per
    /// architecture, the newest by Debian order. Absent: every recorded one.
    /// The store keeps them all (a raised `keep` lists older ones again);
    /// the pool file of a version left out is deleted after the grace
    /// period ([`RetentionConfig`]), and such a version is not listed again.
    #[serde(default)]
    pub keep: Option<usize>,
    pub source: SourceConfig,
    /// Transfer limits of this package's fetches, over the repository's.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The file, relative to the configuration directory (`packages/kiro.yaml`),
    /// as messages name it; set at load.
    #[serde(skip)]
    pub file: String,
    /// The limits in force for this package: the defaults, `repository.yaml`'s
    /// and this file's, in that order; set at load.
    #[serde(skip)]
    pub effective_limits: Limits,
}

impl PackageConfig {
    pub fn architectures(&self) -> impl Iterator<Item = &str> {
        self.architecture.split_whitespace()
    }

    /// Where this package's fetches may go: its configured URL's host and
    /// `source.allowed_hosts`. An error for a source that fetches nothing.
    pub fn hosts(&self) -> Result<HostPolicy, String> {
        let source = self.source.source();
        let Some((_, url)) = source.configured_url() else {
            return Err(format!("package {} ({}) fetches nothing over HTTP", self.name, self.file));
        };
        HostPolicy::new(url, source.allowed_hosts(), format!("source.allowed_hosts in {}", self.file))
            .map_err(|e| e.to_string())
    }

    /// The rules of a metadata document, a certificate or signature, a probe.
    pub fn document_rules(&self) -> Result<FetchRules, String> {
        Ok(FetchRules {
            hosts: self.hosts()?,
            limits: self.effective_limits.documents(),
            headers: Vec::new(),
            sha256_only: false,
        })
    }

    /// The rules of an artifact download.
    pub fn artifact_rules(&self) -> Result<FetchRules, String> {
        Ok(FetchRules {
            hosts: self.hosts()?,
            limits: self.effective_limits.artifacts(),
            headers: Vec::new(),
            sha256_only: false,
        })
    }

    pub fn fields(&self) -> ConfigFields {
        ConfigFields {
            description: Some(self.description.clone()),
            maintainer: Some(self.maintainer.clone()),
            homepage: Some(self.homepage.clone()),
            section: Some(self.section.clone()),
            priority: Some(self.priority.clone()),
            depends: self.depends.clone(),
        }
    }
}

/// The format of a repository: how its index is rendered and what clients read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    /// A signed APT repository: `repository.yaml` and `packages/`.
    Apt,
    /// A Homebrew bottle mirror: its own settings file.
    Homebrew,
}

/// One repository of a deployment, as `config/repositories.yaml` lists it.
/// The CLI, the Lambda functions and the CDK app read the same list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryEntry {
    /// Lower-case letters, digits and `-`. Names the repository's store
    /// (locally `<state>/<name>.db`; on AWS its tables) and, for a format
    /// without suites, its state record.
    pub name: String,
    pub format: FormatName,
    /// Where its public files live in the bucket or directory: `""` (the
    /// root; the APT repository) or `<dir>/`.
    #[serde(default)]
    pub prefix: String,
    /// Its settings file, relative to the configuration directory (a
    /// Homebrew mirror's; the APT repository's are `repository.yaml` and `packages/`).
    #[serde(default)]
    pub config: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryList {
    repositories: Vec<RepositoryEntry>,
}

/// The list without a `repositories.yaml`: the APT repository alone, at the root.
pub fn default_repositories() -> Vec<RepositoryEntry> {
    vec![RepositoryEntry { name: "apt".into(), format: FormatName::Apt, prefix: String::new(), config: None }]
}

/// The whole configuration directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub repository: RepositoryConfig,
    pub packages: Vec<PackageConfig>,
    /// The repositories this deployment keeps side by side; the APT
    /// repository (`repository`, `packages`) is one of them.
    pub repositories: Vec<RepositoryEntry>,
    /// Each Homebrew mirror's settings, by repository name.
    pub homebrew: std::collections::BTreeMap<String, crate::brew::config::HomebrewConfig>,
}

impl Config {
    /// Load and validate `dir/repository.yaml` alone (enough to read a
    /// published repository).
    pub fn load_repository(dir: &Path) -> Result<RepositoryConfig, ConfigError> {
        let repo_file = dir.join("repository.yaml");
        let repository: RepositoryConfig = read_yaml(&repo_file)?;
        validate_repository(&repository, &repo_file)?;
        Ok(repository)
    }

    /// Load and validate `dir/repository.yaml` and every `dir/packages/*.yaml`.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let repo_file = dir.join("repository.yaml");
        let repository = Self::load_repository(dir)?;

        let pkg_dir = dir.join("packages");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&pkg_dir)
            .map_err(|e| err(&pkg_dir, None, format!("cannot read package directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let limits = repository.limits();
        let mut packages: Vec<PackageConfig> = Vec::new();
        for file in files {
            let mut pkg: PackageConfig = read_yaml(&file)?;
            pkg.file = format!("packages/{}", file.file_name().unwrap_or_default().to_string_lossy());
            validate_package(&mut pkg, &file, &limits)?;
            if packages.iter().any(|p| p.name == pkg.name) {
                return Err(err(&file, Some("name"), format!("package {:?} is configured twice", pkg.name)));
            }
            packages.push(pkg);
        }
        if let Some(copy) = &repository.convenience_copy
            && !packages.iter().any(|p| &p.name == copy)
        {
            return Err(err(&repo_file, Some("convenience_copy"), format!("no package named {copy:?} is configured")));
        }
        let (repositories, homebrew) = load_repositories(dir, &repository, &limits)?;
        Ok(Config { dir: dir.to_owned(), repository, packages, repositories, homebrew })
    }

    /// The repository named `name`.
    pub fn repository_entry(&self, name: &str) -> Result<&RepositoryEntry, String> {
        self.repositories.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.repositories.iter().map(|r| r.name.as_str()).collect();
            format!("no repository {name:?} is configured (repositories.yaml lists: {})", known.join(", "))
        })
    }

    /// The APT repository's entry (a loaded configuration has exactly one).
    pub fn apt_entry(&self) -> Option<&RepositoryEntry> {
        self.repositories.iter().find(|r| r.format == FormatName::Apt)
    }

    /// The key of `entry`'s record in the state store: the APT suite, else its name.
    pub fn state_key<'a>(&'a self, entry: &'a RepositoryEntry) -> &'a str {
        match entry.format {
            FormatName::Apt => &self.repository.suite,
            FormatName::Homebrew => &entry.name,
        }
    }

    /// This configuration as deployment `env` sees it: `base_url` becomes
    /// `environments.<env>.base_url`.
    pub fn for_environment(mut self, env: &str) -> Result<Config, ConfigError> {
        let url = self.repository.base_url_for(Some(env)).map_err(|message| ConfigError {
            file: self.dir.join("repository.yaml"),
            field: Some("environments".into()),
            message,
        })?;
        self.repository.base_url = url.to_owned();
        Ok(self)
    }

    pub fn package(&self, name: &str) -> Option<&PackageConfig> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// `dir/repositories.yaml` (or the APT repository alone without it), and
/// each Homebrew mirror's settings.
#[allow(clippy::type_complexity)]
fn load_repositories(
    dir: &Path,
    apt: &RepositoryConfig,
    limits: &Limits,
) -> Result<(Vec<RepositoryEntry>, std::collections::BTreeMap<String, crate::brew::config::HomebrewConfig>), ConfigError>
{
    let file = dir.join("repositories.yaml");
    let list = if file.exists() { read_yaml::<RepositoryList>(&file)?.repositories } else { default_repositories() };
    let mut homebrew = std::collections::BTreeMap::new();
    let field = |i: usize, name: &str| format!("repositories[{i}].{name}");
    for (i, r) in list.iter().enumerate() {
        let ok_name = !r.name.is_empty()
            && r.name.len() <= 32
            && r.name.starts_with(|c: char| c.is_ascii_lowercase())
            && r.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok_name {
            return Err(err(&file, Some(&field(i, "name")), format!("{:?}: lower-case letters, digits and -", r.name)));
        }
        if list[..i].iter().any(|o| o.name == r.name) {
            return Err(err(&file, Some(&field(i, "name")), format!("{:?} is listed twice", r.name)));
        }
        match r.format {
            FormatName::Apt => {
                if list[..i].iter().any(|o| o.format == FormatName::Apt) {
                    return Err(err(
                        &file,
                        Some(&field(i, "format")),
                        "one APT repository per deployment (repository.yaml)",
                    ));
                }
                if !r.prefix.is_empty() || r.config.is_some() {
                    return Err(err(
                        &file,
                        Some(&field(i, "prefix")),
                        "the APT repository lives at the root (prefix \"\") and is configured by repository.yaml and packages/",
                    ));
                }
            }
            FormatName::Homebrew => {
                let p = r.prefix.trim_end_matches('/');
                let ok_prefix = r.prefix.ends_with('/')
                    && !p.is_empty()
                    && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                    && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_/".contains(c));
                let reserved =
                    ["pool/", "dists/"].iter().chain(crate::blob::PRIVATE_PREFIXES).any(|x| r.prefix.starts_with(x));
                if !ok_prefix || reserved {
                    return Err(err(
                        &file,
                        Some(&field(i, "prefix")),
                        format!(
                            "{:?}: a directory of its own (`brew/`), outside pool/, dists/ and the private prefixes",
                            r.prefix
                        ),
                    ));
                }
                if let Some(o) = list[..i].iter().find(|o| {
                    !o.prefix.is_empty() && (o.prefix.starts_with(&r.prefix) || r.prefix.starts_with(&o.prefix))
                }) {
                    return Err(err(
                        &file,
                        Some(&field(i, "prefix")),
                        format!("{:?} overlaps {}'s {:?}", r.prefix, o.name, o.prefix),
                    ));
                }
                if r.name == apt.suite {
                    return Err(err(
                        &file,
                        Some(&field(i, "name")),
                        format!("{:?} is the APT suite's state record", r.name),
                    ));
                }
                let Some(settings) = &r.config else {
                    return Err(err(
                        &file,
                        Some(&field(i, "config")),
                        "a Homebrew mirror names its settings file (homebrew.yaml)",
                    ));
                };
                homebrew.insert(r.name.clone(), crate::brew::config::HomebrewConfig::load(dir, settings, limits)?);
            }
        }
    }
    if !list.iter().any(|r| r.format == FormatName::Apt) {
        return Err(err(&file, Some("repositories"), "list the APT repository (format: apt)"));
    }
    Ok((list, homebrew))
}

fn read_yaml<T: for<'de> Deserialize<'de>>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| err(file, None, format!("cannot read: {e}")))?;
    serde_norway::from_str(&text).map_err(|e| {
        // serde names the field ("unknown field `x`", "missing field `y`") and the
        // position; the file name is ours to add.
        err(file, None, e.to_string())
    })
}

/// Debian policy §5.6.1: lower case letters, digits, `+ - .`, at least two
/// characters, starting with an alphanumeric. `..` is refused as well because the
/// name becomes a path component of the pool.
pub fn check_package_name(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Debian package name (lower case letters, digits, '+', '-', '.'; \
             at least two characters; starting with a letter or digit; no '..')"
        ))
    }
}

/// Architecture, suite, component and similar path-forming words.
fn check_word(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && !value.contains("..")
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// A value that lands in a single-line deb822 field: no line breaks at all.
fn check_single_line(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(err(file, Some(field), "must not be empty"));
    }
    if value.contains(['\n', '\r']) {
        return Err(err(file, Some(field), "must be a single line"));
    }
    Ok(())
}

fn validate_repository(r: &RepositoryConfig, file: &Path) -> Result<(), ConfigError> {
    for (field, value) in [("origin", &r.origin), ("label", &r.label), ("description", &r.description)] {
        check_single_line(file, field, value)?;
    }
    for (field, value) in [("suite", &r.suite), ("codename", &r.codename)] {
        if !check_word(value) {
            return Err(err(file, Some(field), format!("{value:?} is not a valid suite name")));
        }
    }
    for (field, list) in [("components", &r.components), ("architectures", &r.architectures)] {
        if list.is_empty() {
            return Err(err(file, Some(field), "must list at least one entry"));
        }
        if let Some(bad) = list.iter().find(|v| !check_word(v)) {
            return Err(err(file, Some(field), format!("{bad:?} is not a valid name")));
        }
    }
    if r.architectures.iter().any(|a| a == "all") {
        return Err(err(file, Some("architectures"), "list real architectures; `all` packages are listed under each"));
    }
    check_base_url(file, "base_url", &r.base_url)?;
    for (name, env) in &r.environments {
        if !check_word(name) {
            return Err(err(file, Some("environments"), format!("{name:?} is not a valid environment name")));
        }
        check_base_url(file, &format!("environments.{name}.base_url"), &env.base_url)?;
    }
    parse_duration(&r.valid_for).map_err(|e| err(file, Some("valid_for"), e))?;
    r.retention.check(file, "retention.grace")?;
    if !check_word(&r.keyring_name) || !r.keyring_name.ends_with(".gpg") {
        return Err(err(
            file,
            Some("keyring_name"),
            format!("{:?}: must be a plain file name ending in .gpg", r.keyring_name),
        ));
    }
    if !check_word(&r.source_list_name) || !r.source_list_name.ends_with(".list") {
        return Err(err(
            file,
            Some("source_list_name"),
            format!("{:?}: must be a plain file name ending in .list", r.source_list_name),
        ));
    }
    check_single_line(file, "signing.user_id", &r.signing.user_id)?;
    Limits::default().with(&r.limits, "repository.yaml", true).map_err(|e| limit_error(file, e))?;
    if let Some((i, c)) = r.compression.iter().enumerate().find(|(i, c)| r.compression[..*i].contains(c)) {
        return Err(err(file, Some("compression"), format!("{} is listed twice (entry {})", c.suffix(), i + 1)));
    }
    Ok(())
}

/// A repository root URL: http(s), no query or fragment (it is written into
/// source lists as is).
fn check_base_url(file: &Path, field: &str, value: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(value).map_err(|e| err(file, Some(field), format!("{value:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || url.query().is_some() || url.fragment().is_some() {
        return Err(err(file, Some(field), format!("{value:?}: must be an http(s) URL without query or fragment")));
    }
    Ok(())
}

fn limit_error(file: &Path, e: LimitError) -> ConfigError {
    err(file, Some(&e.field), e.message)
}

/// Check one package's file; `limits`: the repository's, which its own override.
fn validate_package(p: &mut PackageConfig, file: &Path, limits: &Limits) -> Result<(), ConfigError> {
    check_package_name(&p.name).map_err(|e| err(file, Some("name"), e))?;
    if p.description.trim().is_empty() {
        return Err(err(file, Some("description"), "must not be empty"));
    }
    for (field, value) in [
        ("maintainer", &p.maintainer),
        ("homepage", &p.homepage),
        ("section", &p.section),
        ("priority", &p.priority),
        ("architecture", &p.architecture),
    ] {
        check_single_line(file, field, value)?;
    }
    if let Some(bad) = p.architectures().find(|a| !check_word(a)) {
        return Err(err(file, Some("architecture"), format!("{bad:?} is not a valid architecture")));
    }
    if let Some(bad) = p.depends.iter().find(|d| d.contains(['\n', '\r', ',']) || d.trim().is_empty()) {
        return Err(err(file, Some("depends"), format!("{bad:?}: one relation per list entry, single line")));
    }
    if p.keep == Some(0) {
        return Err(err(file, Some("keep"), "must be at least 1 (leave it out to list every version)"));
    }
    let source = p.source.source();
    if let Some((field, url)) = source.configured_url() {
        check_url_allowed(url).map_err(|e| err(file, Some(field), e.to_string()))?;
    }
    for entry in source.allowed_hosts() {
        check_host_pattern(entry).map_err(|e| err(file, Some("source.allowed_hosts"), e))?;
    }
    p.effective_limits = limits.with(&p.limits, &p.file, false).map_err(|e| limit_error(file, e))?;
    source.check(p).map_err(|(field, message)| err(file, Some(field), message))?;
    Ok(())
}

/// Parse `7d`, `36h`, `90m`, `45s`. Hand-written: four suffixes do not warrant a
/// dependency.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration_or_zero(text)?;
    if d.is_zero() {
        return Err(format!("{:?}: must be longer than zero", text.trim()));
    }
    Ok(d)
}

/// [`parse_duration`], zero allowed (a grace period may be none at all).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{text:?}: expected a number followed by d, h, m or s"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(format!("{text:?}: unit must be d, h, m or s")),
    };
    Ok(Duration::from_secs(secs))
}

impl RepositoryConfig {
    /// The limits in force for the whole repository (before any package's own).
    pub fn limits(&self) -> Limits {
        Limits::default().with(&self.limits, "repository.yaml", true).expect("validated at load")
    }

    pub fn validity(&self) -> Duration {
        parse_duration(&self.valid_for).expect("validated at load")
    }

    /// The repository URL of a deployment (`None`: `base_url`).
    pub fn base_url_for(&self, env: Option<&str>) -> Result<&str, String> {
        match env {
            None => Ok(&self.base_url),
            Some(name) => self.environments.get(name).map(|e| e.base_url.as_str()).ok_or_else(|| {
                let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
                format!("no environment {name:?} in repository.yaml (configured: {})", known.join(", "))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceType;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const REPO: &str = "origin: Kiro\nlabel: Kiro\nsuite: stable\ncodename: stable\ndescription: Kiro\n\
components: [main]\narchitectures: [amd64, arm64]\nbase_url: https://apt.example.com\nvalid_for: 7d\n\
keyring_name: kiro-archive-keyring.gpg\nsource_list_name: kiro.list\nsigning:\n  user_id: Kiro <apt@example.com>\n";

    const PKG: &str = "name: kiro\ndescription: Kiro IDE\nmaintainer: Kiro <k@example.com>\nhomepage: https://kiro.dev\n\
section: devel\npriority: optional\narchitecture: amd64\nsource:\n  type: external_download\n  metadata_url: https://example.com/m.json\n";

    fn load_with(pkg: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "repository.yaml", REPO);
        write(dir.path(), "packages/kiro.yaml", pkg);
        Config::load(dir.path())
    }

    #[test]
    fn loads_valid_config() {
        let c = load_with(PKG).unwrap();
        assert_eq!(c.packages[0].name, "kiro");
        assert_eq!(c.repository.validity(), Duration::from_secs(7 * 86400));
    }

    #[test]
    fn missing_field_names_file_and_field() {
        let e = load_with(&PKG.replace("maintainer: Kiro <k@example.com>\n", "")).unwrap_err().to_string();
        assert!(e.contains("kiro.yaml") && e.contains("missing field `maintainer`"), "{e}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let e = load_with(&format!("{PKG}colour: blue\n")).unwrap_err().to_string();
        assert!(e.contains("kiro.yaml") && e.contains("unknown field `colour`"), "{e}");
        let e = load_with(&PKG.replace("type: external_download", "type: external_download\n  mirror: x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `mirror`"), "{e}");
    }

    #[test]
    fn a_package_cannot_take_a_mirrors_source() {
        let pkg = PKG.replace(
            "type: external_download\n  metadata_url: https://example.com/m.json\n",
            "type: homebrew\n  repository: brew\n",
        );
        let e = load_with(&pkg).unwrap_err().to_string();
        assert!(e.contains("kiro.yaml") && e.contains("repositories.yaml"), "{e}");
    }

    #[test]
    fn bad_names_and_urls() {
        for bad in ["ki/ro", "..", "a..b", "Kiro", "k"] {
            let e = load_with(&PKG.replace("name: kiro", &format!("name: \"{bad}\""))).unwrap_err().to_string();
            assert!(e.contains("field `name`"), "{bad}: {e}");
        }
        let e =
            load_with(&PKG.replace("https://example.com/m.json", "http://example.com/m.json")).unwrap_err().to_string();
        assert!(e.contains("source.metadata_url") && e.contains("https"), "{e}");
        let e = load_with(&PKG.replace("https://example.com/m.json", "not a url")).unwrap_err().to_string();
        assert!(e.contains("source.metadata_url"), "{e}");
        assert!(load_with(&PKG.replace("https://example.com/m.json", "http://127.0.0.1:9/m.json")).is_ok());
    }

    #[test]
    fn latest_url_sources() {
        let latest = PKG.replace(
            "type: external_download\n  metadata_url: https://example.com/m.json",
            "type: latest_url\n  url: https://example.com/latest/kiro-cli.deb",
        );
        let c = load_with(&latest).unwrap();
        assert!(matches!(&c.packages[0].source, SourceConfig::LatestUrl(s) if s.url.ends_with("/kiro-cli.deb")));
        assert_eq!(c.packages[0].source.source_type(), SourceType::LatestUrl);
        let e = load_with(&latest.replace("architecture: amd64", "architecture: amd64 arm64")).unwrap_err().to_string();
        assert!(e.contains("field `architecture`") && e.contains("exactly one architecture"), "{e}");
        let e = load_with(&latest.replace("https://example.com/latest", "http://example.com/latest")).unwrap_err();
        assert!(e.to_string().contains("field `source.url`"), "{e}");
        let e = load_with(&latest.replace("  url:", "  metadata_url:")).unwrap_err().to_string();
        assert!(e.contains("kiro.yaml") && e.contains("metadata_url"), "{e}");
    }

    /// The shipped configuration: kiro-cli from the vendor's "latest" URL.
    #[test]
    fn shipped_kiro_cli_follows_the_latest_url() {
        let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")).unwrap();
        let cli = c.package("kiro-cli").unwrap();
        assert!(
            matches!(&cli.source, SourceConfig::LatestUrl(s)
                if s.url == "https://desktop-release.q.us-east-1.amazonaws.com/latest/kiro-cli.deb"),
            "{:?}",
            cli.source
        );
        assert_eq!(cli.architectures().collect::<Vec<_>>(), ["amd64"]);
    }

    /// `limits:` in repository.yaml and in a package's file: values, where
    /// they came from, and errors naming file and field.
    #[test]
    fn limits_and_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let repo = format!("{REPO}limits:\n  max_artifact_bytes: 1 GiB\n  min_rate_window: 45s\n");
        write(dir.path(), "repository.yaml", &repo);
        let pkg = format!("{PKG}limits:\n  download_deadline: 20m\n  max_metadata_bytes: 1048576\n");
        write(dir.path(), "packages/kiro.yaml", &pkg);
        let c = Config::load(dir.path()).unwrap();
        let l = &c.packages[0].effective_limits;
        assert_eq!(c.packages[0].file, "packages/kiro.yaml");
        assert_eq!(
            (l.max_artifact_bytes.value, l.max_artifact_bytes.setting.as_str()),
            (1 << 30, "limits.max_artifact_bytes in repository.yaml")
        );
        assert_eq!(l.download_deadline.value, Duration::from_secs(1200));
        assert_eq!(l.download_deadline.setting, "limits.download_deadline in packages/kiro.yaml");
        assert_eq!(l.max_metadata_bytes.value, 1 << 20);
        assert_eq!(l.min_rate_window.value, Duration::from_secs(45));
        assert_eq!(c.repository.limits().max_artifact_bytes.value, 1 << 30);
        let rules = c.packages[0].artifact_rules().unwrap();
        assert_eq!(rules.limits.max_bytes.value, 1 << 30);
        assert_eq!(c.packages[0].document_rules().unwrap().limits.max_bytes.value, 1 << 20);

        for (file, text, needles) in [
            (
                "repository.yaml",
                format!("{REPO}limits:\n  max_artifact_bytes: 4 GB\n"),
                vec!["field `limits.max_artifact_bytes`", "4 GB"],
            ),
            ("repository.yaml", format!("{REPO}limits:\n  colour: blue\n"), vec!["unknown field `colour`"]),
            (
                "packages/kiro.yaml",
                format!("{PKG}limits:\n  download_deadline: soon\n"),
                vec!["field `limits.download_deadline`"],
            ),
            (
                "packages/kiro.yaml",
                format!("{PKG}limits:\n  max_control_file_bytes: 2 MiB\n"),
                vec!["field `limits.max_control_file_bytes`", "repository.yaml"],
            ),
        ] {
            write(dir.path(), "repository.yaml", REPO);
            write(dir.path(), "packages/kiro.yaml", PKG);
            write(dir.path(), file, &text);
            let e = Config::load(dir.path()).unwrap_err().to_string();
            assert!(e.contains(file), "{e}");
            for n in needles {
                assert!(e.contains(n), "{n:?} not in {e}");
            }
        }
    }

    /// `source.allowed_hosts`: checked at load; the configured URL's host is
    /// always allowed, the listed ones too, nothing else.
    #[test]
    fn allowed_hosts() {
        let with = |hosts: &str| {
            load_with(&PKG.replace(
                "metadata_url: https://example.com/m.json",
                &format!("metadata_url: https://example.com/m.json\n  allowed_hosts: {hosts}"),
            ))
        };
        let c = with("[dl.example.net, \"*.cdn.example.org\"]").unwrap();
        let hosts = c.packages[0].hosts().unwrap();
        for (url, ok) in [
            ("https://example.com/k.deb", true),
            ("https://dl.example.net/k.deb", true),
            ("https://a.cdn.example.org/k.deb", true),
            ("https://other.example.com/k.deb", false),
        ] {
            assert_eq!(hosts.check(url).is_ok(), ok, "{url}");
        }
        let e = hosts.check("https://other.example.com/k.deb").unwrap_err().to_string();
        assert!(e.contains("add it to source.allowed_hosts in packages/kiro.yaml"), "{e}");
        let e = with("[\"https://dl.example.net/\"]").unwrap_err().to_string();
        assert!(
            e.contains("kiro.yaml") && e.contains("field `source.allowed_hosts`") && e.contains("not a host name"),
            "{e}"
        );
        let staging = PKG.replace(
            "type: external_download\n  metadata_url: https://example.com/m.json",
            "type: staging_upload\n  allowed_hosts: [x.example.com]",
        );
        let e = load_with(&staging).unwrap_err().to_string();
        assert!(e.contains("unknown field `allowed_hosts`"), "{e}");
    }

    /// The shipped configuration loads, and what it allows.
    #[test]
    fn shipped_hosts_and_limits() {
        let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")).unwrap();
        let kiro = c.package("kiro").unwrap().hosts().unwrap();
        assert!(kiro.check("https://prod.download.desktop.kiro.dev/releases/stable/linux-x64/signed/0.6.0/deb/kiro-ide-0.6.0-stable-linux-x64.deb").is_ok());
        assert!(kiro.check("http://prod.download.desktop.kiro.dev/x.deb").is_err());
        let cli = c.package("kiro-cli").unwrap().hosts().unwrap();
        assert!(cli.check("https://desktop-release.q.us-east-1.amazonaws.com/latest/kiro-cli.deb").is_ok());
        assert!(c.package("kiro-repo").unwrap().hosts().is_err(), "staging_upload fetches nothing");
        assert_eq!(
            c.repository.limits(),
            crate::limits::Limits::default().with(&c.repository.limits, "repository.yaml", true).unwrap()
        );
    }

    #[test]
    fn environments_select_the_repository_url() {
        let dir = tempfile::tempdir().unwrap();
        let repo = format!("{REPO}environments:\n  dev:\n    base_url: https://dev.example.com/\n");
        write(dir.path(), "repository.yaml", &repo);
        write(dir.path(), "packages/kiro.yaml", PKG);
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.clone().for_environment("dev").unwrap().repository.base_url, "https://dev.example.com/");
        let e = c.for_environment("prod").unwrap_err().to_string();
        assert!(e.contains("no environment \"prod\"") && e.contains("dev"), "{e}");
        write(dir.path(), "repository.yaml", &repo.replace("https://dev.example.com/", "ftp://x/"));
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("environments.dev.base_url"), "{e}");
    }

    #[test]
    fn index_compression() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "packages/kiro.yaml", PKG);
        write(dir.path(), "repository.yaml", REPO);
        let c = Config::load(dir.path()).unwrap();
        assert_eq!(c.repository.compression, [IndexCompression::Gz, IndexCompression::Xz]);
        write(dir.path(), "repository.yaml", &format!("{REPO}compression: [gz]\n"));
        assert_eq!(Config::load(dir.path()).unwrap().repository.compression, [IndexCompression::Gz]);
        write(dir.path(), "repository.yaml", &format!("{REPO}compression: [xz, gz, xz]\n"));
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("field `compression`") && e.contains("xz is listed twice"), "{e}");
        write(dir.path(), "repository.yaml", &format!("{REPO}compression: [bz2]\n"));
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("repository.yaml") && e.contains("bz2"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("36h").unwrap(), Duration::from_secs(36 * 3600));
        assert!(parse_duration("7 weeks").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
