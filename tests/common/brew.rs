//! Homebrew on 127.0.0.1, for the bottle mirror's tests: fixture formulae with
//! real (small, deterministic) bottles, a fake formulae API, a fake ghcr.io
//! with a second host for its blob redirects, and a brew-equivalent client.
//!
//! Everything here is written from Homebrew/brew's source (6.0.18 and the
//! commits after it, August 2026), read in these files (paths in Homebrew/brew):
//!
//! - `Library/Homebrew/bottle.rb` (`Bottle::Filename`, `github_packages_manifest_resource`);
//! - `Library/Homebrew/github_packages.rb` (`image_formula_name`, `version_rebuild`,
//!   the image index and manifests `upload_bottle` writes);
//! - `Library/Homebrew/resource.rb` (`Resource::BottleManifest#manifest_annotations`);
//! - `Library/Homebrew/utils/bottles.rb` (`path_resolved_basename`, `Tag`, `Collector`);
//! - `Library/Homebrew/download_strategy/curl_download_strategy.rb` and
//!   `curl_github_packages_download_strategy.rb` (artifact-domain rewrite,
//!   the Authorization header, redirects);
//! - `Library/Homebrew/api.rb`, `api/internal.rb`, `cmd/update.sh`, `utils/api.sh`
//!   (the API files, JWS, `--compressed --time-cond`);
//! - `Library/Homebrew/formula.rb` (`to_hash`, `bottle_hash`: formula.json's shape),
//!   `api/formula_struct.rb` (`serialize`: the internal packages API's shape);
//! - `Library/Homebrew/brew.sh` (`HOMEBREW_GITHUB_PACKAGES_AUTH`).
//!
//! No code is shared with the product (`pkgrelay_core`): the client here is
//! the independent reading of brew's rules the product is checked against.
//! What could not be confirmed in brew's source is marked UNCONFIRMED.

#![allow(dead_code)]

use super::bigdeb::{fill_pseudo_random, tar_header};
use super::{Request, not_modified};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bottle tags the mirror handles (issue 13): six platforms and `all`.
pub const TAGS: [&str; 7] =
    ["arm64_tahoe", "arm64_sequoia", "arm64_sonoma", "sonoma", "x86_64_linux", "arm64_linux", "all"];
/// The tags of machines: a machine is never `all` (brew picks an `all` bottle
/// when its own tag has none; `Utils::Bottles::Collector#find_matching_tag`).
pub const PLATFORM_TAGS: [&str; 6] =
    ["arm64_tahoe", "arm64_sequoia", "arm64_sonoma", "sonoma", "x86_64_linux", "arm64_linux"];

/// `HOMEBREW_BOTTLE_DEFAULT_DOMAIN` (brew.sh).
pub const GHCR_DEFAULT_ROOT: &str = "https://ghcr.io/v2/homebrew/core";
/// `HOMEBREW_API_DEFAULT_DOMAIN` (brew.sh).
pub const API_DEFAULT_DOMAIN: &str = "https://formulae.brew.sh/api";
/// `HOMEBREW_GITHUB_PACKAGES_AUTH` when no `HOMEBREW_DOCKER_REGISTRY_*` token is set (brew.sh).
pub const ANONYMOUS_BEARER: &str = "Bearer QQ==";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The version the fake's API files and tabs claim, and the client's User-Agent.
pub const BREW_VERSION: &str = "6.0.18";

/// The API files brew 5.x fetched (`cmd/update.sh` of 5.0.0 and later 5.x;
/// `executables.txt` for `brew which-formula`), relative to `HOMEBREW_API_DOMAIN`.
pub const API_FILES_5X: [&str; 5] = [
    "formula.jws.json",
    "cask.jws.json",
    "formula_tap_migrations.jws.json",
    "cask_tap_migrations.jws.json",
    "internal/executables.txt",
];

/// The API file brew ≥ 6.0.0 fetches for a machine's tag (`cmd/update.sh`,
/// `api/internal.rb` `packages_endpoint`).
pub fn packages_file(tag: &str) -> String {
    format!("internal/packages.{tag}.jws.json")
}

/// Every API file a mirror serves byte for byte: brew 5.x's and brew 6.x's
/// for each platform tag.
pub fn api_file_names() -> Vec<String> {
    let mut names: Vec<String> = API_FILES_5X.iter().map(|s| s.to_string()).collect();
    names.extend(PLATFORM_TAGS.iter().map(|t| packages_file(t)));
    names
}

// ---------------------------------------------------------------------------
// brew's rules, as pure functions
// ---------------------------------------------------------------------------

/// brew's naming rules. Each names the Ruby it restates.
pub mod rules {
    /// `PkgVersion#to_s` (pkg_version.rb): `version`, or `version_N` when revision N > 0.
    pub fn pkg_version(version: &str, revision: u32) -> String {
        if revision > 0 { format!("{version}_{revision}") } else { version.to_owned() }
    }

    /// Ruby's `ERB::Util.url_encode`: every byte but `[A-Za-z0-9_.~-]` as `%XX`
    /// (upper-case hex). So `@` → `%40`, `+` → `%2B`. (Ruby's stdlib, not
    /// brew's source; brew calls it in `Bottle::Filename#url_encode`.)
    pub fn url_encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len() * 3);
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'~' | b'-') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// `Bottle::Filename#extname`: `.tag.bottle[.rebuild].tar.gz`, `.rebuild`
    /// only when rebuild > 0.
    pub fn extname(tag: &str, rebuild: u32) -> String {
        let r = if rebuild > 0 { format!(".{rebuild}") } else { String::new() };
        format!(".{tag}.bottle{r}.tar.gz")
    }

    /// The name brew url-encodes for a custom bottle domain
    /// (`Bottle::Filename#url_encode`, single `-`): the literal key a flat
    /// mirror stores (with a literal `@` or `+`).
    pub fn bottle_basename(name: &str, pkg_version: &str, tag: &str, rebuild: u32) -> String {
        format!("{name}-{pkg_version}{}", extname(tag, rebuild))
    }

    /// The path brew requests under `HOMEBREW_BOTTLE_DOMAIN`:
    /// `url_encode(bottle_basename)` (`Utils::Bottles.path_resolved_basename`).
    pub fn flat_bottle_path(name: &str, pkg_version: &str, tag: &str, rebuild: u32) -> String {
        url_encode(&bottle_basename(name, pkg_version, tag, rebuild))
    }

    /// The cache file name (`Bottle::Filename#to_s` / `#github_packages`: `--`).
    pub fn cache_basename(name: &str, pkg_version: &str, tag: &str, rebuild: u32) -> String {
        format!("{name}--{pkg_version}{}", extname(tag, rebuild))
    }

    /// `GitHubPackages.image_formula_name`: `@` → `/`, `+` → `x`.
    pub fn image_name(name: &str) -> String {
        name.replace('@', "/").replace('+', "x")
    }

    /// `GitHubPackages.version_rebuild`: without a tag `version[-rebuild]` (the
    /// manifest's tag), with one `version.tag[.rebuild]` (an index entry's
    /// `org.opencontainers.image.ref.name`); rebuild only when > 0.
    pub fn version_rebuild(pkg_version: &str, rebuild: u32, tag: Option<&str>) -> String {
        match (tag, rebuild) {
            (Some(t), 0) => format!("{pkg_version}.{t}"),
            (Some(t), r) => format!("{pkg_version}.{t}.{r}"),
            (None, 0) => pkg_version.to_owned(),
            (None, r) => format!("{pkg_version}-{r}"),
        }
    }

    /// `GitHubPackages::VALID_OCI_TAG_REGEX`: `^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`
    /// (`image_version_rebuild` raises otherwise).
    pub fn valid_oci_tag(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    }

    /// `HOMEBREW_ARTIFACT_DOMAIN` (CurlDownloadStrategy#fetch): `https://ghcr.io/`
    /// (or `http://`) becomes `domain/`, the domain's trailing `/` chomped; if the
    /// domain already has a `/v2` path, `https://ghcr.io/v2/` becomes `domain/`.
    /// Other URLs are left alone.
    pub fn artifact_rewrite(url: &str, domain: &str) -> String {
        let domain = domain.strip_suffix('/').unwrap_or(domain);
        let after_scheme = domain.split_once("://").map_or(domain, |(_, r)| r);
        let has_v2 = after_scheme.split_once('/').is_some_and(|(_, p)| p == "v2" || p.starts_with("v2/"));
        for scheme in ["https://", "http://"] {
            let ghcr = format!("{scheme}ghcr.io/");
            if let Some(rest) = url.strip_prefix(&ghcr) {
                if has_v2 {
                    if let Some(rest) = rest.strip_prefix("v2/") {
                        return format!("{domain}/{rest}");
                    }
                    return url.to_owned();
                }
                return format!("{domain}/{rest}");
            }
        }
        url.to_owned()
    }

    /// `MacOSVersion::SYMBOLS` (macos_version.rb), as major numbers.
    pub fn macos_major(system: &str) -> Option<u32> {
        Some(match system {
            "golden_gate" => 27,
            "tahoe" => 26,
            "sequoia" => 15,
            "sonoma" => 14,
            "ventura" => 13,
            "monterey" => 12,
            "big_sur" => 11,
            _ => return None,
        })
    }

    /// `Utils::Bottles::Tag.from_symbol`: (arch, system); the arch defaults to x86_64.
    pub fn split_tag(tag: &str) -> (&str, &str) {
        for arch in ["arm64", "x86_64"] {
            if let Some(system) = tag.strip_prefix(arch).and_then(|r| r.strip_prefix('_')) {
                return (arch, system);
            }
        }
        if tag == "all" { ("all", "all") } else { ("x86_64", tag) }
    }

    /// Which of a formula's bottle tags (in the formula's order) a machine
    /// with tag `host` pours (`Collector#find_matching_tag`): its own, else
    /// `all`, else on macOS the first one for the same arch and an older or
    /// equal macOS (extend/os/mac/utils/bottles.rb `find_older_compatible_tag`).
    pub fn resolve_tag<'a>(available: &[&'a str], host: &str) -> Option<&'a str> {
        if let Some(t) = available.iter().find(|t| **t == host) {
            return Some(t);
        }
        if let Some(t) = available.iter().find(|t| **t == "all") {
            return Some(t);
        }
        let (arch, system) = split_tag(host);
        let host_version = macos_major(system)?;
        available.iter().copied().find(|t| {
            let (a, s) = split_tag(t);
            a == arch && macos_major(s).is_some_and(|v| v <= host_version)
        })
    }
}

// ---------------------------------------------------------------------------
// Fixture formulae and their bottles
// ---------------------------------------------------------------------------

/// A bottle's `cellar` (formula.json `bottle.stable.files.<tag>.cellar`):
/// `:any`, `:any_skip_relocation` (Ruby symbols, written with their colon),
/// or a path (`Formula#bottle_hash`: `os_cellar.inspect if Symbol`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cellar {
    Any,
    AnySkipRelocation,
    Path(String),
}

impl Cellar {
    /// As formula.json writes it.
    pub fn as_api_str(&self) -> String {
        match self {
            Cellar::Any => ":any".into(),
            Cellar::AnySkipRelocation => ":any_skip_relocation".into(),
            Cellar::Path(p) => p.clone(),
        }
    }

    /// The default cellar of a tag's prefix (`Tag#default_cellar`; prefixes
    /// from utils/os.sh): `/opt/homebrew/Cellar` (arm64 macOS),
    /// `/usr/local/Cellar` (Intel macOS), `/home/linuxbrew/.linuxbrew/Cellar` (Linux).
    pub fn default_path(tag: &str) -> Cellar {
        let (arch, system) = rules::split_tag(tag);
        Cellar::Path(
            if system == "linux" {
                "/home/linuxbrew/.linuxbrew/Cellar"
            } else if arch == "arm64" {
                "/opt/homebrew/Cellar"
            } else {
                "/usr/local/Cellar"
            }
            .into(),
        )
    }
}

/// One bottle: a gzipped tarball of `<name>/<pkg_version>/...`.
#[derive(Clone, Debug)]
pub struct Bottle {
    pub tag: String,
    pub cellar: Cellar,
    pub bytes: Arc<Vec<u8>>,
    /// Hex SHA-256 of `bytes` (formula.json's `sha256`, the ghcr blob digest,
    /// the index entry's `sh.brew.bottle.digest`).
    pub sha256: String,
    /// The tab (INSTALL_RECEIPT.json) as the index's `sh.brew.tab` carries it.
    pub tab: String,
}

/// A formula of the fixture set.
#[derive(Clone, Debug)]
pub struct Formula {
    pub name: String,
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    /// In formula.json's order (newest macOS first, as brew's bottle blocks are).
    pub bottles: Vec<Bottle>,
    pub desc: String,
    pub dependencies: Vec<String>,
    pub executables: Vec<String>,
}

impl Formula {
    pub fn pkg_version(&self) -> String {
        rules::pkg_version(&self.version, self.revision)
    }
    /// The ghcr image (repository under `homebrew/core`).
    pub fn image(&self) -> String {
        rules::image_name(&self.name)
    }
    pub fn bottle(&self, tag: &str) -> Option<&Bottle> {
        self.bottles.iter().find(|b| b.tag == tag)
    }
    pub fn tags(&self) -> Vec<&str> {
        self.bottles.iter().map(|b| b.tag.as_str()).collect()
    }
    /// The bottle a machine with `host_tag` pours, if any, when brew reads
    /// all of the formula's bottles (formula.json: own tag, `all`, an older macOS).
    pub fn bottle_for_host(&self, host_tag: &str) -> Option<&Bottle> {
        rules::resolve_tag(&self.tags(), host_tag).and_then(|t| self.bottle(t))
    }
    /// The bottle the fake's `internal/packages.<tag>.jws.json` lists: the
    /// tag's own, else `all` (see [`packages_payload`]).
    pub fn packaged_bottle(&self, tag: &str) -> Option<&Bottle> {
        self.bottle(tag).or_else(|| self.bottle("all"))
    }
    /// The literal flat key (`name-pkg_version.tag.bottle[.rebuild].tar.gz`, `@` as is).
    pub fn flat_name(&self, tag: &str) -> String {
        rules::bottle_basename(&self.name, &self.pkg_version(), tag, self.rebuild)
    }
    /// The manifest's tag: `pkg_version[-rebuild]`.
    pub fn manifest_ref(&self) -> String {
        rules::version_rebuild(&self.pkg_version(), self.rebuild, None)
    }
    /// An index entry's ref name: `pkg_version.tag[.rebuild]`.
    pub fn entry_ref(&self, tag: &str) -> String {
        rules::version_rebuild(&self.pkg_version(), self.rebuild, Some(tag))
    }
}

/// Start a fixture formula.
pub fn formula(name: &str, version: &str) -> FormulaBuilder {
    FormulaBuilder {
        name: name.into(),
        version: version.into(),
        revision: 0,
        rebuild: 0,
        bottles: Vec::new(),
        same_bytes: Vec::new(),
        payload: 0,
        dependencies: Vec::new(),
        salt: String::new(),
    }
}

pub struct FormulaBuilder {
    name: String,
    version: String,
    revision: u32,
    rebuild: u32,
    bottles: Vec<(String, Cellar)>,
    same_bytes: Vec<Vec<String>>,
    payload: usize,
    dependencies: Vec<String>,
    salt: String,
}

impl FormulaBuilder {
    pub fn revision(mut self, n: u32) -> Self {
        self.revision = n;
        self
    }
    pub fn rebuild(mut self, n: u32) -> Self {
        self.rebuild = n;
        self
    }
    /// A bottle for `tag` with this cellar.
    pub fn bottle(mut self, tag: &str, cellar: Cellar) -> Self {
        self.bottles.push((tag.into(), cellar));
        self
    }
    /// Bottles for `tags`, all with this cellar.
    pub fn bottles(mut self, tags: &[&str], cellar: Cellar) -> Self {
        for t in tags {
            self.bottles.push((t.to_string(), cellar.clone()));
        }
        self
    }
    /// Bottles for `tags`, each in its tag's default cellar (a path).
    pub fn bottles_in_default_cellar(mut self, tags: &[&str]) -> Self {
        for t in tags {
            self.bottles.push((t.to_string(), Cellar::default_path(t)));
        }
        self
    }
    /// These tags' bottles are the same bytes (one blob, several names: it
    /// happens upstream for bottles that need no relocation).
    pub fn same_bytes(mut self, tags: &[&str]) -> Self {
        self.same_bytes.push(tags.iter().map(|t| t.to_string()).collect());
        self
    }
    /// Add `n` incompressible bytes to each bottle (for size and streaming tests).
    pub fn payload(mut self, n: usize) -> Self {
        self.payload = n;
        self
    }
    pub fn dependency(mut self, name: &str) -> Self {
        self.dependencies.push(name.into());
        self
    }
    /// Different bytes for otherwise equal bottles: an upstream re-bottling
    /// under the same name (one file name with a new hash).
    pub fn salt(mut self, s: &str) -> Self {
        self.salt = s.into();
        self
    }

    pub fn build(self) -> Formula {
        let pv = rules::pkg_version(&self.version, self.revision);
        let tool = self.name.split('@').next().unwrap().replace('+', "p");
        let mut bottles: Vec<Bottle> = Vec::new();
        for (tag, cellar) in &self.bottles {
            let group = self.same_bytes.iter().find(|g| g.contains(tag));
            let source_tag = group.map_or(tag.as_str(), |g| g[0].as_str());
            let tab = tab_json(&self.name, &self.version, tag, &self.dependencies, &self.salt);
            let bytes = if let Some(done) = bottles.iter().find(|b| b.tag == source_tag) {
                done.bytes.clone()
            } else {
                let receipt = tab_json(&self.name, &self.version, source_tag, &self.dependencies, &self.salt);
                Arc::new(bottle_tarball(&self.name, &pv, source_tag, cellar, &tool, &receipt, self.payload))
            };
            let sha256 = hex::encode(Sha256::digest(&*bytes));
            bottles.push(Bottle { tag: tag.clone(), cellar: cellar.clone(), bytes, sha256, tab });
        }
        Formula {
            desc: format!("Fixture formula {} for the bottle mirror's tests", self.name),
            executables: vec![tool],
            name: self.name,
            version: self.version,
            revision: self.revision,
            rebuild: self.rebuild,
            bottles,
            dependencies: self.dependencies,
        }
    }
}

/// The fixtures issue 13's "Done when" lists: a plain formula, one with `@`,
/// one with `+`, revision > 0, rebuild > 0, a tag `all`, both cellar forms
/// (`:any`/`:any_skip_relocation` and a path); every tag of [`TAGS`] appears.
///
/// | formula | what it covers |
/// |---|---|
/// | `hello` 2.12.2 | plain; six platform tags, `:any_skip_relocation`; arm64_sequoia and arm64_sonoma one blob |
/// | `openssl@3` 3.5.2 | `@` (image `openssl/3`, `%40` in the flat name); `:any` on macOS, a path on x86_64_linux |
/// | `gtk+3` 3.24.49 revision 1 | `+` (image `gtkx3`, `%2B`); pkg_version `3.24.49_1`; default cellar paths |
/// | `ca-certificates` 2025-09-09 rebuild 1 | only an `all` bottle; `.all.bottle.1.tar.gz`, manifest `2025-09-09-1` |
/// | `libsigc++@2` 2.12.1 revision 1 rebuild 2 | `@` and `+` together (image `libsigcxx/2`); no bottle for most tags (brew would build from source) |
pub fn fixture_formulae() -> Vec<Formula> {
    vec![
        formula("hello", "2.12.2")
            .bottles(&PLATFORM_TAGS, Cellar::AnySkipRelocation)
            .same_bytes(&["arm64_sequoia", "arm64_sonoma"])
            .build(),
        formula("openssl@3", "3.5.2")
            .dependency("ca-certificates")
            .bottles(&["arm64_tahoe", "arm64_sequoia", "arm64_sonoma", "sonoma"], Cellar::Any)
            .bottle("x86_64_linux", Cellar::default_path("x86_64_linux"))
            .bottle("arm64_linux", Cellar::Any)
            .build(),
        formula("gtk+3", "3.24.49")
            .revision(1)
            .dependency("openssl@3")
            .bottles_in_default_cellar(&PLATFORM_TAGS)
            .build(),
        formula("ca-certificates", "2025-09-09").rebuild(1).bottle("all", Cellar::AnySkipRelocation).build(),
        formula("libsigc++@2", "2.12.1")
            .revision(1)
            .rebuild(2)
            .bottle("arm64_sequoia", Cellar::Any)
            .bottle("x86_64_linux", Cellar::AnySkipRelocation)
            .build(),
    ]
}

/// A tab (INSTALL_RECEIPT.json) of the shape brew writes. UNCONFIRMED in
/// detail: the keys follow `Tab`'s attributes as the index's `sh.brew.tab`
/// shows them; values are made up. An `all` bottle's tab has no `arch` and no
/// `built_on` (`upload_bottle`: `tab.except("arch", "built_on")`).
fn tab_json(name: &str, version: &str, tag: &str, deps: &[String], salt: &str) -> String {
    let (arch, system) = rules::split_tag(tag);
    let mut fields = vec![
        ("homebrew_version", J::s(BREW_VERSION)),
        ("changed_files", J::Arr(vec![J::s("INSTALL_RECEIPT.json")])),
        ("source_modified_time", J::Num(1_757_000_000)),
        ("compiler", J::s(if system == "linux" { "gcc-12" } else { "clang" })),
        (
            "runtime_dependencies",
            J::Arr(
                deps.iter()
                    .map(|d| {
                        J::obj(vec![
                            ("full_name", J::s(d)),
                            ("version", J::s("1.0")),
                            ("revision", J::Num(0)),
                            ("declared_directly", J::Bool(true)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("source", J::obj(vec![("spec", J::s("stable")), ("versions", J::obj(vec![("stable", J::s(version))]))])),
    ];
    if tag != "all" {
        fields.push(("arch", J::s(arch)));
        let built_on = if system == "linux" {
            J::obj(vec![
                ("os", J::s("Linux")),
                ("os_version", J::s("Ubuntu 22.04")),
                ("glibc_version", J::s("2.35")),
                ("oldest_cpu_family", J::s("core2")),
            ])
        } else {
            let major = rules::macos_major(system).unwrap_or(14);
            J::obj(vec![
                ("os", J::s("Macintosh")),
                ("os_version", J::s(&format!("macOS {major}"))),
                ("cpu_family", J::s("dunno")),
                ("xcode", J::s("16.4")),
            ])
        };
        fields.push(("built_on", built_on));
    }
    if !salt.is_empty() {
        fields.push(("fixture_salt", J::s(salt)));
    }
    let _ = name;
    J::obj(fields).compact()
}

/// A bottle: `<name>/<pkg_version>/` with a receipt, the formula file under
/// `.brew/`, a tool in `bin/`, a pkg-config file naming the cellar, and
/// `payload` pseudo-random bytes. ustar, mtime 0, root-owned, gzip with
/// stored blocks: the same bytes on every run.
fn bottle_tarball(
    name: &str,
    pv: &str,
    tag: &str,
    cellar: &Cellar,
    tool: &str,
    receipt: &str,
    payload: usize,
) -> Vec<u8> {
    let root = format!("{name}/{pv}");
    let prefix = match cellar {
        Cellar::Path(p) => format!("{p}/{name}/{pv}"),
        _ => "@@HOMEBREW_CELLAR@@".to_owned() + &format!("/{name}/{pv}"),
    };
    let mut files: Vec<(String, u32, Vec<u8>)> = vec![
        (format!("{root}/INSTALL_RECEIPT.json"), 0o644, format!("{receipt}\n").into_bytes()),
        (
            format!("{root}/.brew/{name}.rb"),
            0o644,
            format!("class Fixture < Formula\n  desc \"{name}\"\n  version \"{pv}\"\nend\n").into_bytes(),
        ),
        (format!("{root}/bin/{tool}"), 0o755, format!("#!/bin/sh\necho '{name} {pv} ({tag})'\n").into_bytes()),
        (
            format!("{root}/lib/pkgconfig/{tool}.pc"),
            0o644,
            format!("prefix={prefix}\nName: {name}\nVersion: {pv}\n").into_bytes(),
        ),
    ];
    if payload > 0 {
        let mut blob = vec![0u8; payload];
        let seed = u64::from_le_bytes(Sha256::digest(format!("{name}/{pv}/{tag}"))[..8].try_into().unwrap()) | 1;
        fill_pseudo_random(&mut blob, seed);
        files.push((format!("{root}/share/{tool}/payload.bin"), 0o644, blob));
    }
    let mut tar = Vec::new();
    let mut dirs: Vec<String> = vec![format!("{name}/"), format!("{root}/")];
    for (path, _, _) in &files {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            let d = format!("{parent}/");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
            p = parent;
        }
    }
    dirs.sort();
    for d in &dirs {
        tar.extend_from_slice(&tar_header(d, 0o755, 0, b'5'));
    }
    for (path, mode, data) in &files {
        tar.extend_from_slice(&tar_header(path, *mode, data.len() as u64, b'0'));
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    gzip_stored(&tar)
}

// ---------------------------------------------------------------------------
// Bytes: gzip (stored blocks), CRC-32, base64url
// ---------------------------------------------------------------------------

fn crc32_table() -> &'static [u32; 256] {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *e = c;
        }
        t
    })
}

pub fn crc32(data: &[u8]) -> u32 {
    let t = crc32_table();
    !data.iter().fold(!0u32, |c, &b| t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

/// A valid gzip member (RFC 1952) whose deflate stream is stored blocks:
/// deterministic (mtime 0), no compression library needed.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

pub fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for c in s.chunks(4) {
        let mut n = 0u32;
        for (i, &b) in c.iter().enumerate() {
            n |= val(b)? << (18 - 6 * i);
        }
        for i in 0..c.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// xorshift64*: deterministic numbers for the generators.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes).map(|_| format!("{:02x}", self.next() as u8)).collect()
    }
}

// ---------------------------------------------------------------------------
// JSON with the key order brew writes
// ---------------------------------------------------------------------------

/// JSON whose objects keep their key order (serde_json's map sorts keys unless
/// its `preserve_order` feature is on; brew's files are in `to_hash` order).
#[derive(Clone, Debug)]
pub enum J {
    Null,
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn s(v: &str) -> J {
        J::Str(v.to_owned())
    }
    pub fn obj(fields: Vec<(&str, J)>) -> J {
        J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }
    pub fn strs(v: &[String]) -> J {
        J::Arr(v.iter().map(|s| J::Str(s.clone())).collect())
    }
    /// Ruby's `JSON.generate`: no whitespace.
    pub fn compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, None, 0);
        out
    }
    /// Ruby's `JSON.pretty_generate`: two spaces, `"key": value`, `[]` and `{}` when empty.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, Some(2), 0);
        out
    }
    fn write(&self, out: &mut String, indent: Option<usize>, depth: usize) {
        let nl = |out: &mut String, d: usize| {
            if let Some(n) = indent {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', n * d));
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(&n.to_string()),
            J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            J::Arr(v) if v.is_empty() => out.push_str("[]"),
            J::Obj(v) if v.is_empty() => out.push_str("{}"),
            J::Arr(v) => {
                out.push('[');
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    e.write(out, indent, depth + 1);
                }
                nl(out, depth);
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, e)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    e.write(out, indent, depth + 1);
                }
                nl(out, depth);
                out.push('}');
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The formulae API's documents
// ---------------------------------------------------------------------------

/// The pieces of one formula.json entry that vary: the fixtures fill them from
/// a [`Formula`], the full-size generator from its random numbers.
struct EntryParts<'a> {
    name: &'a str,
    version: &'a str,
    revision: u32,
    rebuild: u32,
    desc: String,
    license: String,
    homepage: String,
    source_url: String,
    source_sha: String,
    head: Option<String>,
    aliases: Vec<String>,
    versioned: Vec<String>,
    dependencies: Vec<String>,
    build_dependencies: Vec<String>,
    test_dependencies: Vec<String>,
    uses_from_macos: Vec<J>,
    requirements: Vec<J>,
    conflicts: Vec<(String, String)>,
    caveats: Option<String>,
    patches: Vec<J>,
    keg_only: Option<(String, String)>,
    service: Option<J>,
    /// (tag, cellar as formula.json writes it, sha256)
    files: Vec<(String, String, String)>,
    variations: Vec<(String, J)>,
    ruby_source_sha: String,
}

/// One formula.json entry, its keys in `Formula#to_hash` order (then
/// `variations`, from `to_hash_with_variations`), as formulae.brew.sh serves
/// it (`JSON.generate`, no whitespace). `url` is built as brew builds it
/// (`bottle_hash`: `root_url/` + the ghcr path); brew itself ignores it.
fn formula_entry(p: &EntryParts, root_url: &str) -> J {
    let image = rules::image_name(p.name);
    let files = J::Obj(
        p.files
            .iter()
            .map(|(tag, cellar, sha)| {
                (
                    tag.clone(),
                    J::obj(vec![
                        ("cellar", J::s(cellar)),
                        ("url", J::Str(format!("{root_url}/{image}/blobs/sha256:{sha}"))),
                        ("sha256", J::s(sha)),
                    ]),
                )
            })
            .collect(),
    );
    let bottle = if p.files.is_empty() {
        J::obj(vec![])
    } else {
        J::obj(vec![(
            "stable",
            J::obj(vec![("rebuild", J::Num(p.rebuild.into())), ("root_url", J::s(root_url)), ("files", files)]),
        )])
    };
    let mut urls = vec![(
        "stable",
        J::obj(vec![
            ("url", J::s(&p.source_url)),
            ("tag", J::Null),
            ("revision", J::Null),
            ("using", J::Null),
            ("checksum", J::s(&p.source_sha)),
        ]),
    )];
    if let Some(h) = &p.head {
        urls.push(("head", J::obj(vec![("url", J::s(h)), ("branch", J::s("main")), ("using", J::Null)])));
    }
    let keg_only_reason = p.keg_only.as_ref().map_or(J::Null, |(reason, explanation)| {
        J::obj(vec![("reason", J::Str(format!(":{reason}"))), ("explanation", J::s(explanation))])
    });
    let mut fields: Vec<(&str, J)> = vec![
        ("name", J::s(p.name)),
        ("full_name", J::s(p.name)),
        ("tap", J::s("homebrew/core")),
        ("oldnames", J::Arr(vec![])),
        ("aliases", J::strs(&p.aliases)),
        ("versioned_formulae", J::strs(&p.versioned)),
        ("desc", J::s(&p.desc)),
        ("license", J::s(&p.license)),
        ("homepage", J::s(&p.homepage)),
        (
            "versions",
            J::obj(vec![
                ("stable", J::s(p.version)),
                ("head", p.head.as_ref().map_or(J::Null, |_| J::s("HEAD"))),
                ("bottle", J::Bool(!p.files.is_empty())),
            ]),
        ),
        ("urls", J::obj(urls)),
        ("patches", J::Arr(p.patches.clone())),
        ("revision", J::Num(p.revision.into())),
        ("version_scheme", J::Num(0)),
        ("compatibility_version", J::Null),
        ("autobump", J::Bool(true)),
        ("no_autobump_message", J::Null),
        ("skip_livecheck", J::Bool(false)),
        ("bottle", bottle),
        ("pour_bottle_only_if", J::Null),
        ("keg_only", J::Bool(p.keg_only.is_some())),
        ("keg_only_reason", keg_only_reason),
        ("options", J::Arr(vec![])),
        ("build_dependencies", J::strs(&p.build_dependencies)),
        ("dependencies", J::strs(&p.dependencies)),
        ("test_dependencies", J::strs(&p.test_dependencies)),
        ("recommended_dependencies", J::Arr(vec![])),
        ("optional_dependencies", J::Arr(vec![])),
        ("uses_from_macos", J::Arr(p.uses_from_macos.clone())),
        ("uses_from_macos_bounds", J::Arr(p.uses_from_macos.iter().map(|_| J::obj(vec![])).collect())),
        ("requirements", J::Arr(p.requirements.clone())),
        ("conflicts_with", J::Arr(p.conflicts.iter().map(|(n, _)| J::s(n)).collect())),
        ("conflicts_with_reasons", J::Arr(p.conflicts.iter().map(|(_, r)| J::s(r)).collect())),
        ("link_overwrite", J::Arr(vec![])),
        ("caveats", p.caveats.as_ref().map_or(J::Null, |c| J::s(c))),
        ("installed", J::Arr(vec![])),
        ("linked_keg", J::Null),
        ("pinned", J::Bool(false)),
        ("outdated", J::Bool(false)),
        ("deprecated", J::Bool(false)),
        ("deprecation_date", J::Null),
        ("deprecation_reason", J::Null),
        ("deprecation_replacement_formula", J::Null),
        ("deprecation_replacement_cask", J::Null),
        ("deprecate_args", J::Null),
        ("disabled", J::Bool(false)),
        ("disable_date", J::Null),
        ("disable_reason", J::Null),
        ("disable_replacement_formula", J::Null),
        ("disable_replacement_cask", J::Null),
        ("disable_args", J::Null),
        ("post_install_steps", J::Arr(vec![])),
        ("post_install_defined", J::Bool(false)),
        ("service", p.service.clone().unwrap_or(J::Null)),
        ("tap_git_head", J::s("4c1a7e0f7b1d5c2e9a8b6f3d0e1c2b3a4d5e6f70")),
        ("ruby_source_path", J::Str(format!("Formula/{}/{}.rb", p.name.chars().next().unwrap_or('a'), p.name))),
        ("ruby_source_checksum", J::obj(vec![("sha256", J::s(&p.ruby_source_sha))])),
    ];
    fields.push(("variations", J::Obj(p.variations.clone())));
    J::obj(fields)
}

fn fixture_parts(f: &Formula) -> EntryParts<'_> {
    let tool = f.executables.first().cloned().unwrap_or_default();
    EntryParts {
        name: &f.name,
        version: &f.version,
        revision: f.revision,
        rebuild: f.rebuild,
        desc: f.desc.clone(),
        license: "MIT".into(),
        homepage: format!("https://example.org/{tool}"),
        source_url: format!("https://example.org/{tool}/{tool}-{}.tar.gz", f.version),
        source_sha: sha256_hex(format!("source {} {}", f.name, f.version).as_bytes()),
        head: None,
        aliases: vec![],
        versioned: vec![],
        dependencies: f.dependencies.clone(),
        build_dependencies: vec!["pkgconf".into()],
        test_dependencies: vec![],
        uses_from_macos: vec![J::s("zlib")],
        requirements: vec![],
        conflicts: vec![],
        caveats: None,
        patches: vec![],
        keg_only: None,
        service: None,
        files: f.bottles.iter().map(|b| (b.tag.clone(), b.cellar.as_api_str(), b.sha256.clone())).collect(),
        variations: vec![],
        ruby_source_sha: sha256_hex(format!("ruby {}", f.name).as_bytes()),
    }
}

/// formula.json for these formulae: a JSON array, one line, `url`s under `root_url`.
pub fn formula_json(formulae: &[Formula], root_url: &str) -> Vec<u8> {
    J::Arr(formulae.iter().map(|f| formula_entry(&fixture_parts(f), root_url)).collect()).compact().into_bytes()
}

/// The payload of `internal/packages.<tag>.jws.json`: what
/// `dev-cmd/generate-internal-api.rb` writes, each formula as
/// `FormulaStruct#serialize(bottle_tag:)` (api/formula_struct.rb) makes it —
/// blank values dropped, and the bottle as `bottle_checksum`, with
/// `bottle_tag` only when the bottle is another tag's (e.g. `all`) and
/// `bottle_cellar` only when it is not `:any_skip_relocation`.
/// UNCONFIRMED: which bottle the generator picks when only an older macOS
/// has one. `Collector#find_matching_tag` falls back to an older macOS only
/// when brew runs on macOS (`extend/os/bottles.rb`: `if OS.mac?`), and where
/// formulae.brew.sh runs `generate-internal-api` is not in Homebrew/brew; the
/// fake lists the tag's own bottle or `all` only (as on Linux). Also
/// unconfirmed: the values of the non-bottle fields.
pub fn packages_payload(formulae: &[Formula], tag: &str) -> String {
    let formulae_obj = J::Obj(
        formulae
            .iter()
            .map(|f| {
                let mut fields: Vec<(&str, J)> = vec![
                    ("bottle_rebuild", J::Num(f.rebuild.into())),
                    ("desc", J::s(&f.desc)),
                    ("homepage", J::Str(format!("https://example.org/{}", f.executables[0]))),
                    ("license", J::s("MIT")),
                    ("revision", J::Num(f.revision.into())),
                    ("ruby_source_checksum", J::Str(sha256_hex(format!("ruby {}", f.name).as_bytes()))),
                    (
                        "stable_dependencies",
                        J::Arr(f.dependencies.iter().map(|d| J::Arr(vec![J::s(d), J::obj(vec![])])).collect()),
                    ),
                    (
                        "stable_url_args",
                        J::Arr(vec![J::Str(format!(
                            "https://example.org/{0}/{0}-{1}.tar.gz",
                            f.executables[0], f.version
                        ))]),
                    ),
                    ("stable_version", J::s(&f.version)),
                    ("version_scheme", J::Num(0)),
                ];
                if let Some(b) = f.packaged_bottle(tag) {
                    if b.tag != tag {
                        fields.push(("bottle_tag", J::s(&b.tag)));
                    }
                    if b.cellar != Cellar::AnySkipRelocation {
                        fields.push(("bottle_cellar", J::Str(b.cellar.as_api_str())));
                    }
                    fields.push(("bottle_checksum", J::s(&b.sha256)));
                }
                (f.name.clone(), J::obj(fields))
            })
            .collect(),
    );
    J::obj(vec![
        (
            "metadata",
            J::obj(vec![
                ("homebrew_version", J::s(BREW_VERSION)),
                ("bottle_tag", J::s(tag)),
                ("generated_at", J::Num(1_761_998_400)),
            ]),
        ),
        ("formulae", formulae_obj),
        ("casks", J::obj(vec![])),
        ("formula_aliases", J::obj(vec![("openssl", J::s("openssl@3"))])),
        ("formula_renames", J::obj(vec![])),
        ("cask_renames", J::obj(vec![])),
        ("formula_tap_git_head", J::s("4c1a7e0f7b1d5c2e9a8b6f3d0e1c2b3a4d5e6f70")),
        ("cask_tap_git_head", J::s("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c")),
        ("formula_tap_migrations", J::obj(vec![])),
        ("cask_tap_migrations", J::obj(vec![])),
    ])
    .compact()
}

/// A JWS file as brew reads it (api.rb `verify_and_parse_jws`): `payload` is the
/// JSON document as a string (unencoded: the protected header says
/// `"b64": false`), and one of `signatures` has `header.kid == "homebrew-1"`,
/// a base64url `protected` header with `alg: PS512`, and a base64url `signature`.
/// brew verifies RSA-PSS SHA-512 over `protected + "." + payload` with its
/// bundled `api/homebrew-1.pem`. THE FAKE CANNOT SIGN WITH THAT KEY: its
/// signature is 512 deterministic bytes that verify against nothing, so a
/// real brew would refuse these files. A mirror must serve them byte for
/// byte. UNCONFIRMED: the exact protected header (`crit`), the signature
/// length (512: RSA-4096), the outer key order.
pub fn jws(payload: &str) -> Vec<u8> {
    let protected = base64url(br#"{"alg":"PS512","b64":false,"crit":["b64"]}"#);
    let mut sig = vec![0u8; 512];
    fill_pseudo_random(&mut sig, u64::from_le_bytes(Sha256::digest(payload.as_bytes())[..8].try_into().unwrap()) | 1);
    J::obj(vec![
        ("payload", J::s(payload)),
        (
            "signatures",
            J::Arr(vec![J::obj(vec![
                ("protected", J::Str(protected)),
                ("header", J::obj(vec![("kid", J::s("homebrew-1"))])),
                ("signature", J::Str(base64url(&sig))),
            ])]),
        ),
    ])
    .compact()
    .into_bytes()
}

/// A JWS file's parts, checked for the shape brew requires (not the signature).
#[derive(Debug, Clone)]
pub struct JwsParts {
    pub payload: String,
    pub protected: serde_json::Value,
    pub kid: String,
}

pub fn parse_jws(bytes: &[u8]) -> Result<JwsParts, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let payload = v["payload"].as_str().ok_or("no string `payload`")?.to_owned();
    let sig = v["signatures"]
        .as_array()
        .ok_or("no `signatures` array")?
        .iter()
        .find(|s| s["header"]["kid"] == "homebrew-1")
        .ok_or("no signature with kid homebrew-1 (brew: \"key not found\")")?;
    let protected_b64 = sig["protected"].as_str().ok_or("no `protected`")?;
    let protected: serde_json::Value =
        serde_json::from_slice(&base64url_decode(protected_b64).ok_or("`protected` is not base64url")?)
            .map_err(|e| format!("`protected` is not JSON: {e}"))?;
    if protected["alg"] != "PS512" || protected["b64"] != false {
        return Err(format!("brew refuses this header (\"invalid algorithm\"): {protected}"));
    }
    sig["signature"].as_str().and_then(base64url_decode).ok_or("no base64url `signature`")?;
    Ok(JwsParts { payload, protected, kid: "homebrew-1".into() })
}

/// `internal/executables.txt`: `name:exe exe` lines, sorted (api.rb
/// `write_executables_file!`). UNCONFIRMED that the served file has exactly
/// this format (brew 6 downloads it from ghcr's `command-not-found` image).
pub fn executables_txt(formulae: &[Formula]) -> Vec<u8> {
    let mut lines: Vec<String> = formulae.iter().map(|f| format!("{}:{}", f.name, f.executables.join(" "))).collect();
    lines.sort();
    format!("{}\n", lines.join("\n")).into_bytes()
}

/// Every API file's bytes for this formula set.
pub fn api_documents(formulae: &[Formula], root_url: &str) -> BTreeMap<String, Vec<u8>> {
    let formula_json_text = String::from_utf8(formula_json(formulae, root_url)).unwrap();
    let mut docs = BTreeMap::new();
    docs.insert("formula.json".to_owned(), formula_json_text.clone().into_bytes());
    // UNCONFIRMED: that formula.jws.json's payload is formula.json's text.
    docs.insert("formula.jws.json".to_owned(), jws(&formula_json_text));
    let cask = J::Arr(vec![J::obj(vec![
        ("token", J::s("fixture-app")),
        ("full_token", J::s("fixture-app")),
        ("version", J::s("1.0")),
        ("sha256", J::Str(sha256_hex(b"fixture-app"))),
        ("url", J::s("https://example.org/fixture-app-1.0.dmg")),
    ])])
    .compact();
    docs.insert("cask.jws.json".to_owned(), jws(&cask));
    docs.insert(
        "formula_tap_migrations.jws.json".to_owned(),
        jws(&J::obj(vec![("fixture-moved", J::s("homebrew/cask"))]).compact()),
    );
    docs.insert(
        "cask_tap_migrations.jws.json".to_owned(),
        jws(&J::obj(vec![("fixture-cask-moved", J::s("homebrew/core"))]).compact()),
    );
    docs.insert("internal/executables.txt".to_owned(), executables_txt(formulae));
    for tag in PLATFORM_TAGS {
        docs.insert(packages_file(tag), jws(&packages_payload(formulae, tag)));
    }
    docs
}

/// OCI `platform` of a tag (`upload_bottle`: tab arch → `arm64`/`amd64`,
/// `built_on.os` → `darwin`/`linux`, `os.version`); none for `all`.
fn platform(tag: &str) -> Option<J> {
    if tag == "all" {
        return None;
    }
    let (arch, system) = rules::split_tag(tag);
    let architecture = if arch == "arm64" { "arm64" } else { "amd64" };
    let (os, os_version) = if system == "linux" {
        ("linux", "Ubuntu 22.04".to_owned())
    } else {
        ("darwin", format!("macOS {}", rules::macos_major(system).unwrap_or(14)))
    };
    Some(J::obj(vec![("architecture", J::s(architecture)), ("os", J::s(os)), ("os.version", J::Str(os_version))]))
}

/// What ghcr holds for one formula version: the image index at
/// `manifests/<pkg_version[-rebuild]>`, an image manifest and a config blob per
/// tag (by digest), and the bottles as layers.
pub struct Image {
    pub index: Vec<u8>,
    /// (digest hex, bytes)
    pub manifests: Vec<(String, Vec<u8>)>,
    /// (digest hex, bytes): configs and bottles.
    pub blobs: Vec<(String, Arc<Vec<u8>>)>,
}

/// The image `brew pr-upload` pushes (github_packages.rb `upload_bottle`):
/// an index (`JSON.pretty_generate`; `schemaVersion`, `manifests`,
/// `annotations`) whose entries carry the descriptor annotations brew reads
/// back: `org.opencontainers.image.ref.name` = `pkg_version.tag[.rebuild]`,
/// `sh.brew.bottle.digest` = the bottle's sha256, `sh.brew.tab` = the tab as a
/// JSON string. The sizes, configs and other annotations follow the same
/// method; UNCONFIRMED whether ghcr serves the index byte-identical to what
/// skopeo uploaded (brew only parses it).
pub fn image(f: &Formula) -> Image {
    let pv = f.pkg_version();
    let version_rebuild = f.manifest_ref();
    let formula_annotations = vec![
        ("com.github.package.type", J::s("homebrew_bottle")),
        ("org.opencontainers.image.created", J::s("2025-11-01T12:00:00Z")),
        ("org.opencontainers.image.description", J::s(&f.desc)),
        ("org.opencontainers.image.documentation", J::Str(format!("https://formulae.brew.sh/formula/{}", f.name))),
        ("org.opencontainers.image.licenses", J::s("MIT")),
        ("org.opencontainers.image.ref.name", J::s(&version_rebuild)),
        ("org.opencontainers.image.revision", J::s("4c1a7e0f7b1d5c2e9a8b6f3d0e1c2b3a4d5e6f70")),
        (
            "org.opencontainers.image.source",
            J::Str(format!("https://github.com/Homebrew/homebrew-core/blob/HEAD/Formula/{}.rb", f.name)),
        ),
        ("org.opencontainers.image.title", J::s(&f.name)),
        ("org.opencontainers.image.url", J::Str(format!("https://example.org/{}", f.executables[0]))),
        ("org.opencontainers.image.vendor", J::s("homebrew")),
        ("org.opencontainers.image.version", J::s(&pv)),
    ];
    let mut manifests = Vec::new();
    let mut blobs: Vec<(String, Arc<Vec<u8>>)> = Vec::new();
    let mut entries = Vec::new();
    for b in &f.bottles {
        let tag_ref = f.entry_ref(&b.tag);
        let mut descriptor = vec![("org.opencontainers.image.ref.name", J::s(&tag_ref))];
        let (_, system) = rules::split_tag(&b.tag);
        if system == "linux" {
            descriptor.push(("sh.brew.bottle.cpu.variant", J::s("core2")));
        }
        descriptor.push(("sh.brew.bottle.digest", J::s(&b.sha256)));
        if system == "linux" {
            descriptor.push(("sh.brew.bottle.glibc.version", J::s("2.35")));
        }
        descriptor.push(("sh.brew.bottle.installed_size", J::Str((b.bytes.len() * 3).to_string())));
        descriptor.push(("sh.brew.bottle.size", J::Str(b.bytes.len().to_string())));
        descriptor.push(("sh.brew.license", J::s("MIT")));
        descriptor.push(("sh.brew.path_exec_files", J::Str(format!("bin/{}", f.executables[0]))));
        descriptor.push(("sh.brew.tab", J::s(&b.tab)));
        let plat = platform(&b.tag);
        let mut config_fields: Vec<(&str, J)> = match &plat {
            Some(J::Obj(p)) => p.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(),
            _ => vec![],
        };
        config_fields.push((
            "rootfs",
            J::obj(vec![
                ("type", J::s("layers")),
                ("diff_ids", J::Arr(vec![J::Str(format!("sha256:{}", sha256_hex(&b.bytes)))])),
            ]),
        ));
        let config = J::obj(config_fields).pretty().into_bytes();
        let config_sha = sha256_hex(&config);
        let mut manifest_annotations = descriptor.clone();
        manifest_annotations.push(("org.opencontainers.image.title", J::Str(format!("{} {}", f.name, tag_ref))));
        manifest_annotations.sort_by(|a, b| a.0.cmp(b.0));
        let manifest = J::obj(vec![
            ("schemaVersion", J::Num(2)),
            (
                "config",
                J::obj(vec![
                    ("mediaType", J::s(OCI_CONFIG)),
                    ("digest", J::Str(format!("sha256:{config_sha}"))),
                    ("size", J::Num(config.len() as i64)),
                ]),
            ),
            (
                "layers",
                J::Arr(vec![J::obj(vec![
                    ("mediaType", J::s(OCI_LAYER)),
                    ("digest", J::Str(format!("sha256:{}", b.sha256))),
                    ("size", J::Num(b.bytes.len() as i64)),
                    (
                        "annotations",
                        J::obj(vec![(
                            "org.opencontainers.image.title",
                            J::Str(rules::cache_basename(&f.name, &pv, &b.tag, f.rebuild)),
                        )]),
                    ),
                ])]),
            ),
            ("annotations", J::obj(manifest_annotations)),
        ])
        .pretty()
        .into_bytes();
        let manifest_sha = sha256_hex(&manifest);
        let mut entry = vec![
            ("mediaType", J::s(OCI_MANIFEST)),
            ("digest", J::Str(format!("sha256:{manifest_sha}"))),
            ("size", J::Num(manifest.len() as i64)),
        ];
        if let Some(p) = plat {
            entry.push(("platform", p));
        }
        entry.push(("annotations", J::obj(descriptor)));
        entries.push(J::obj(entry));
        manifests.push((manifest_sha, manifest));
        blobs.push((config_sha, Arc::new(config)));
        if !blobs.iter().any(|(d, _)| *d == b.sha256) {
            blobs.push((b.sha256.clone(), b.bytes.clone()));
        }
    }
    let index = J::obj(vec![
        ("schemaVersion", J::Num(2)),
        ("manifests", J::Arr(entries)),
        ("annotations", J::obj(formula_annotations)),
    ])
    .pretty()
    .into_bytes();
    Image { index, manifests, blobs }
}

// ---------------------------------------------------------------------------
// The full-size formula.json (planning benchmark)
// ---------------------------------------------------------------------------

/// A formula.json of `count` formulae with the field mix of the real one
/// (about 30 MB for 7,000): descriptions, URLs, dependencies, `uses_from_macos`,
/// requirements, caveats, services, `variations` with per-tag dependency
/// lists, six or seven bottle files or only `all`. Names include `@` (about
/// 4 %) and `+` (about 1 %); about 12 % have a revision and 8 % a rebuild; a
/// few have no bottle. Deterministic: the same bytes for the same `count`.
/// The sha256s are made up: there are no bottles behind them.
pub fn full_formula_json(count: usize) -> Vec<u8> {
    const SYL: [&str; 24] = [
        "lib", "gt", "xz", "open", "py", "ru", "cl", "ang", "mon", "ba", "tor", "qt", "zs", "ffm", "png", "ssl", "dev",
        "net", "sq", "lite", "go", "hub", "fi", "re",
    ];
    const WORDS: [&str; 32] = [
        "fast",
        "portable",
        "library",
        "for",
        "and",
        "the",
        "command-line",
        "tool",
        "parsing",
        "network",
        "image",
        "compression",
        "a",
        "of",
        "written",
        "in",
        "Rust",
        "C",
        "modern",
        "framework",
        "toolkit",
        "secure",
        "streaming",
        "data",
        "format",
        "utilities",
        "interface",
        "terminal",
        "editor",
        "server",
        "client",
        "protocol",
    ];
    let mut rng = Rng::new(0x5eed_b0771e);
    let mut names: Vec<String> = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::new();
    while names.len() < count {
        let parts = 1 + rng.below(3) as usize;
        let mut n: String = (0..parts).map(|_| SYL[rng.below(SYL.len() as u64) as usize]).collect();
        if rng.chance(4) {
            n.push_str(&format!("@{}", 1 + rng.below(20)));
        } else if rng.chance(1) {
            n.push_str("++");
        } else if rng.chance(30) {
            n.push_str(&format!("-{}", SYL[rng.below(SYL.len() as u64) as usize]));
        }
        if seen.insert(n.clone()) {
            names.push(n);
        } else {
            let n = format!("{n}{}", names.len());
            if seen.insert(n.clone()) {
                names.push(n);
            }
        }
    }
    let sentence = |rng: &mut Rng, words: usize| -> String {
        let s: Vec<&str> = (0..words.max(1)).map(|_| WORDS[rng.below(WORDS.len() as u64) as usize]).collect();
        let joined = s.join(" ");
        joined[..1].to_uppercase() + &joined[1..]
    };
    let mut out = String::with_capacity(count * 4_600);
    out.push('[');
    for (i, name) in names.iter().enumerate() {
        let version = format!("{}.{}.{}", rng.below(30), rng.below(40), rng.below(20));
        let revision = if rng.chance(12) { 1 + rng.below(4) as u32 } else { 0 };
        let rebuild = if rng.chance(8) { 1 + rng.below(3) as u32 } else { 0 };
        let pick = |rng: &mut Rng, n: u64| -> Vec<String> {
            let k = rng.below(n + 1);
            (0..k).map(|_| names[rng.below(i.max(1) as u64) as usize].clone()).collect()
        };
        let dependencies = pick(&mut rng, 8);
        let files: Vec<(String, String, String)> = if rng.chance(3) {
            vec![]
        } else if rng.chance(10) {
            vec![("all".into(), ":any_skip_relocation".into(), rng.hex(32))]
        } else {
            let cellar_kind = rng.below(3);
            let mut files = Vec::new();
            for t in PLATFORM_TAGS {
                if rng.chance(6) {
                    continue;
                }
                let cellar = match cellar_kind {
                    0 => ":any".into(),
                    1 => ":any_skip_relocation".into(),
                    _ => Cellar::default_path(t).as_api_str(),
                };
                files.push((t.to_string(), cellar, rng.hex(32)));
            }
            files
        };
        let mut variations = Vec::new();
        if rng.chance(60) {
            for t in ["x86_64_linux", "arm64_linux"] {
                let mut deps = dependencies.clone();
                deps.extend(pick(&mut rng, 10));
                deps.extend(
                    ["zlib", "bzip2", "libxcrypt", "ncurses", "readline", "expat", "libffi", "openssl@3"]
                        .iter()
                        .map(|s| s.to_string()),
                );
                variations.push((
                    t.to_owned(),
                    J::obj(vec![
                        ("dependencies", J::strs(&deps)),
                        ("build_dependencies", J::strs(&pick(&mut rng, 3))),
                        ("uses_from_macos", J::Arr(vec![])),
                        ("uses_from_macos_bounds", J::Arr(vec![])),
                    ]),
                ));
            }
            if rng.chance(90) {
                for t in ["arm64_tahoe", "arm64_sequoia", "arm64_sonoma", "sonoma"] {
                    variations.push((
                        t.to_owned(),
                        J::obj(vec![
                            ("dependencies", J::strs(&pick(&mut rng, 5))),
                            ("caveats", J::Str(sentence(&mut rng, 20))),
                        ]),
                    ));
                }
            }
        }
        let tool = name.split('@').next().unwrap().replace('+', "p");
        let parts = EntryParts {
            name,
            version: &version,
            revision,
            rebuild,
            desc: {
                let n = 4 + rng.below(8) as usize;
                sentence(&mut rng, n)
            },
            license: ["MIT", "Apache-2.0", "GPL-3.0-or-later", "BSD-3-Clause", "LGPL-2.1-or-later"]
                [rng.below(5) as usize]
                .into(),
            homepage: format!("https://{tool}.example.org/"),
            source_url: format!("https://github.com/example/{tool}/archive/refs/tags/v{version}.tar.gz"),
            source_sha: rng.hex(32),
            head: rng.chance(30).then(|| format!("https://github.com/example/{tool}.git")),
            aliases: if rng.chance(5) { vec![format!("{tool}-alias")] } else { vec![] },
            versioned: if name.contains('@') { vec![] } else { pick(&mut rng, 1) },
            dependencies,
            build_dependencies: pick(&mut rng, 3),
            test_dependencies: pick(&mut rng, 1),
            uses_from_macos: (0..rng.below(4))
                .map(|k| {
                    if k % 2 == 0 {
                        J::s(["zlib", "curl", "libxml2", "expat", "python"][rng.below(5) as usize])
                    } else {
                        J::obj(vec![("perl", J::s("build"))])
                    }
                })
                .collect(),
            requirements: if rng.chance(5) {
                vec![J::obj(vec![
                    ("name", J::s("macos")),
                    ("cask", J::Null),
                    ("download", J::Null),
                    ("version", J::s("13")),
                    ("contexts", J::Arr(vec![])),
                    ("specs", J::Arr(vec![J::s("stable")])),
                ])]
            } else {
                vec![]
            },
            conflicts: if rng.chance(4) {
                vec![(names[rng.below(count as u64) as usize].clone(), sentence(&mut rng, 6))]
            } else {
                vec![]
            },
            patches: (0..if rng.chance(20) { 1 + rng.below(3) } else { 0 })
                .map(|k| {
                    J::obj(vec![
                        ("strip", J::s("p1")),
                        (
                            "url",
                            J::Str(format!(
                                "https://raw.githubusercontent.com/Homebrew/formula-patches/{}/{tool}/fix-{k}.patch",
                                rng.hex(20)
                            )),
                        ),
                        ("sha256", J::Str(rng.hex(32))),
                    ])
                })
                .collect(),
            caveats: rng.chance(30).then(|| {
                (0..3 + rng.below(6)).map(|_| sentence(&mut rng, 12)).collect::<Vec<_>>().join(".\n")
                    + "\n  $HOMEBREW_PREFIX/etc"
            }),
            keg_only: rng.chance(6).then(|| ("provided_by_macos".to_owned(), sentence(&mut rng, 8))),
            service: rng.chance(3).then(|| {
                J::obj(vec![
                    (
                        "run",
                        J::Arr(vec![J::Str(format!("$HOMEBREW_PREFIX/opt/{tool}/bin/{tool}d")), J::s("--foreground")]),
                    ),
                    ("run_type", J::s("immediate")),
                    ("keep_alive", J::obj(vec![("always", J::Bool(true))])),
                    ("working_dir", J::s("$HOMEBREW_PREFIX/var")),
                    ("log_path", J::Str(format!("$HOMEBREW_PREFIX/var/log/{tool}.log"))),
                ])
            }),
            files,
            variations,
            ruby_source_sha: rng.hex(32),
        };
        if i > 0 {
            out.push(',');
        }
        out.push_str(&formula_entry(&parts, GHCR_DEFAULT_ROOT).compact());
    }
    out.push(']');
    out.into_bytes()
}

// ---------------------------------------------------------------------------
// A small HTTP/1.1 server whose replies depend on the whole request
// ---------------------------------------------------------------------------

/// One answer of a [`Host`].
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Arc<Vec<u8>>,
}

impl HttpReply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> HttpReply {
        HttpReply { status, headers: Vec::new(), body: Arc::new(body.into()) }
    }
    pub fn shared(status: u16, body: Arc<Vec<u8>>) -> HttpReply {
        HttpReply { status, headers: Vec::new(), body }
    }
    pub fn header(mut self, name: &str, value: &str) -> HttpReply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> HttpReply + Send + Sync>;

/// A server on 127.0.0.1 (std only; a thread per connection; `Connection:
/// close`) that answers with a function of the request, and logs each request
/// (method, path with query, headers, status) as [`Request`]s. HEAD gets a
/// GET's headers without a body. Stopped on drop.
pub struct Host {
    pub base: String,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Host {
    pub fn start(handler: impl Fn(&Request) -> HttpReply + Send + Sync + 'static) -> Host {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (s, l) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (h, l) = (handler.clone(), l.clone());
                std::thread::spawn(move || answer(conn, &*h, &l));
            }
        });
        Host { base: format!("http://{addr}"), addr, stop, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path (without the query) is `path`.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path.split('?').next() == Some(path)).collect()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    }
}

fn answer(conn: TcpStream, handler: &(dyn Fn(&Request) -> HttpReply + Send + Sync), log: &Mutex<Vec<Request>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(mut request) = super::read_request(&conn) else { return };
    let reply = handler(&request);
    request.status = reply.status;
    // Logged before the client can read its answer (see tests/common/mod.rs).
    log.lock().unwrap().push(request.clone());
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    let bodyless = reply.status == 304 || reply.status == 204;
    if !bodyless {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = out.write_all(head.as_bytes());
    if request.method != "HEAD" && !bodyless {
        let _ = out.write_all(&reply.body);
    }
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// `%XX` decoded (a `+` stays a `+`), as S3 and most static servers map a
/// request path to a key. UNCONFIRMED for S3: reports say S3 reads a raw `+`
/// in the path as a space; brew never sends one (ERB::Util.url_encode writes `%2B`).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A static file server over `root`, as a plain mirror (a directory behind
/// nginx, or S3 behind a CDN) answers: the path `%`-decoded and looked up
/// literally; `Last-Modified` (a fixed date) and 304 to `If-Modified-Since`;
/// `Content-Type` by name (`.../manifests/...` as an OCI index, `.json`,
/// `.txt`, else octet-stream). GET and HEAD; 404 for anything else.
pub fn serve_dir(root: &Path) -> Host {
    let root = root.to_path_buf();
    Host::start(move |req| {
        if req.method != "GET" && req.method != "HEAD" {
            return HttpReply::new(405, "method not allowed");
        }
        let path = req.path.split('?').next().unwrap_or("/");
        let decoded = percent_decode(path);
        let Ok(rel) = String::from_utf8(decoded) else { return HttpReply::new(400, "bad path") };
        if rel.split('/').any(|c| c == "..") {
            return HttpReply::new(400, "bad path");
        }
        let file = root.join(rel.trim_start_matches('/'));
        let Ok(bytes) = std::fs::read(&file) else {
            return HttpReply::new(404, "<Error><Code>NoSuchKey</Code></Error>");
        };
        let lm = super::http_date(0);
        let ctype = if rel.contains("/manifests/") {
            OCI_INDEX
        } else if rel.ends_with(".json") {
            "application/json"
        } else if rel.ends_with(".txt") {
            "text/plain"
        } else {
            "application/octet-stream"
        };
        if not_modified(req, None, Some(&lm)) {
            return HttpReply::new(304, Vec::new()).header("Last-Modified", &lm);
        }
        HttpReply::new(200, bytes).header("Last-Modified", &lm).header("Content-Type", ctype)
    })
}

// ---------------------------------------------------------------------------
// The fake upstream: formulae API, ghcr, ghcr's blob storage
// ---------------------------------------------------------------------------

/// One API file as the fake serves it.
#[derive(Clone, Debug)]
pub struct ApiFile {
    pub bytes: Vec<u8>,
    pub last_modified: String,
    pub etag: String,
}

struct UpstreamState {
    formulae: Vec<Formula>,
    api: BTreeMap<String, ApiFile>,
    /// (image, reference: tag or `sha256:<hex>`) → (media type, bytes)
    manifests: HashMap<(String, String), (String, Arc<Vec<u8>>)>,
    /// (image, hex digest) → bytes; the blob host serves any digest it holds.
    blobs: HashMap<(String, String), Arc<Vec<u8>>>,
    blob_store: HashMap<String, Arc<Vec<u8>>>,
    generation: i64,
}

/// A fake Homebrew upstream on 127.0.0.1, three hosts:
///
/// - `api`: the formulae API under `/api/` (so `HOMEBREW_API_DOMAIN` is
///   [`FakeBrew::api_domain`]): `formula.json` and every file of
///   [`api_file_names`], each with `Last-Modified` and an `ETag`, answering
///   `If-Modified-Since`/`If-None-Match` with 304, HEAD, and `Content-Encoding:
///   gzip` when the request accepts gzip (curl `--compressed`; formulae.brew.sh
///   is GitHub Pages, which compresses — UNCONFIRMED that it sends ETags too).
/// - `ghcr`: the registry API under `/v2/homebrew/core/<image>/`: `manifests/<ref>`
///   (the image index by tag, image manifests by `sha256:` digest) and
///   `blobs/sha256:<hex>`. Without `Authorization: Bearer QQ==` (or any bearer)
///   it answers 401 with a `WWW-Authenticate` challenge; a blob is a 307 to
///   the blob host (another port). UNCONFIRMED details, from ghcr's observed
///   behaviour rather than brew's source: the status 307 (brew only needs
///   curl `--location`), the challenge's text, the error bodies, that ghcr
///   ignores `Accept` for a tag pointing at an index.
/// - `blob_host`: serves a blob at `/ghcr1/blobs/sha256:<hex>?se=…&sig=…` to
///   anyone (a signed URL), and logs whether an `Authorization` header came
///   along (curl drops it on a redirect to another host or port; a client that
///   forwards it is not brew).
pub struct FakeBrew {
    pub api: Host,
    pub ghcr: Host,
    pub blob_host: Host,
    state: Arc<Mutex<UpstreamState>>,
    root_url: Option<String>,
}

impl FakeBrew {
    /// The fake with these formulae; formula.json's `root_url`/`url`s name
    /// this fake's ghcr.
    pub fn start(formulae: Vec<Formula>) -> FakeBrew {
        Self::start_inner(formulae, None)
    }

    /// The same, with formula.json's `root_url` as given (e.g.
    /// [`GHCR_DEFAULT_ROOT`], as the real file has it).
    pub fn start_with_root_url(formulae: Vec<Formula>, root_url: &str) -> FakeBrew {
        Self::start_inner(formulae, Some(root_url.to_owned()))
    }

    fn start_inner(formulae: Vec<Formula>, root_url: Option<String>) -> FakeBrew {
        let state = Arc::new(Mutex::new(UpstreamState {
            formulae: Vec::new(),
            api: BTreeMap::new(),
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            blob_store: HashMap::new(),
            generation: 0,
        }));
        let s = state.clone();
        let blob_host = Host::start(move |req| blob_reply(&s, req));
        let s = state.clone();
        let blob_base = blob_host.base.clone();
        let ghcr = Host::start(move |req| ghcr_reply(&s, req, &blob_base));
        let s = state.clone();
        let api = Host::start(move |req| api_reply(&s, req));
        let fake = FakeBrew { api, ghcr, blob_host, state, root_url };
        fake.publish(formulae);
        fake
    }

    /// Replace the upstream's contents: API files whose bytes change get a
    /// `Last-Modified` one day later than before; ghcr keeps every image it
    /// ever held (as ghcr does: old versions stay pullable).
    pub fn publish(&self, formulae: Vec<Formula>) {
        let root = self.root_url.clone().unwrap_or_else(|| self.ghcr_root());
        let docs = api_documents(&formulae, &root);
        let mut st = self.state.lock().unwrap();
        st.generation += 1;
        let generation = st.generation;
        for (name, bytes) in docs {
            let changed = st.api.get(&name).is_none_or(|f| f.bytes != bytes);
            if changed {
                let etag = format!("\"{}\"", &sha256_hex(&bytes)[..16]);
                st.api.insert(name, ApiFile { bytes, last_modified: super::http_date(generation), etag });
            }
        }
        for f in &formulae {
            let image_name = f.image();
            let img = image(f);
            st.manifests
                .insert((image_name.clone(), f.manifest_ref()), (OCI_INDEX.to_owned(), Arc::new(img.index.clone())));
            let index_sha = sha256_hex(&img.index);
            st.manifests.insert(
                (image_name.clone(), format!("sha256:{index_sha}")),
                (OCI_INDEX.to_owned(), Arc::new(img.index)),
            );
            for (d, m) in img.manifests {
                st.manifests
                    .insert((image_name.clone(), format!("sha256:{d}")), (OCI_MANIFEST.to_owned(), Arc::new(m)));
            }
            for (d, b) in img.blobs {
                st.blobs.insert((image_name.clone(), d.clone()), b.clone());
                st.blob_store.insert(d, b);
            }
        }
        st.formulae = formulae;
    }

    /// Make the blob host answer 404 for the blob `sha256` (a bottle whose
    /// download fails while the others succeed) until [`FakeBrew::restore_blob`];
    /// what it held.
    pub fn withhold_blob(&self, sha256: &str) -> Arc<Vec<u8>> {
        self.state.lock().unwrap().blob_store.remove(sha256).unwrap_or_else(|| panic!("no blob {sha256}"))
    }

    pub fn restore_blob(&self, sha256: &str, bytes: Arc<Vec<u8>>) {
        self.state.lock().unwrap().blob_store.insert(sha256.to_owned(), bytes);
    }

    /// `HOMEBREW_API_DOMAIN` for this fake.
    pub fn api_domain(&self) -> String {
        self.api.url("/api")
    }
    /// The fake's bottle root (what `https://ghcr.io/v2/homebrew/core` is upstream).
    pub fn ghcr_root(&self) -> String {
        self.ghcr.url("/v2/homebrew/core")
    }
    /// The fake ghcr's origin: `HOMEBREW_ARTIFACT_DOMAIN` pointed at it maps
    /// `https://ghcr.io/v2/…` onto it.
    pub fn ghcr_base(&self) -> String {
        self.ghcr.base.clone()
    }
    pub fn formulae(&self) -> Vec<Formula> {
        self.state.lock().unwrap().formulae.clone()
    }
    pub fn formula(&self, name: &str) -> Formula {
        self.formulae().into_iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no fixture formula {name}"))
    }
    /// An API file as served now (`formula.json` or a name of [`api_file_names`]).
    pub fn api_file(&self, name: &str) -> ApiFile {
        self.state
            .lock()
            .unwrap()
            .api
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("the fake serves no API file {name}"))
    }
    pub fn api_files(&self) -> BTreeMap<String, ApiFile> {
        self.state.lock().unwrap().api.clone()
    }
    /// A manifest (index by tag, or image manifest by `sha256:<hex>`).
    pub fn manifest(&self, image: &str, reference: &str) -> Option<Vec<u8>> {
        self.state.lock().unwrap().manifests.get(&(image.to_owned(), reference.to_owned())).map(|(_, b)| b.to_vec())
    }
    /// Every (formula, tag) pair with a bottle, `all` included.
    pub fn bottle_pairs(&self) -> Vec<(String, String)> {
        self.formulae()
            .iter()
            .flat_map(|f| f.bottles.iter().map(|b| (f.name.clone(), b.tag.clone())).collect::<Vec<_>>())
            .collect()
    }
}

fn registry_error(status: u16, code: &str, message: &str) -> HttpReply {
    HttpReply::new(
        status,
        J::obj(vec![("errors", J::Arr(vec![J::obj(vec![("code", J::s(code)), ("message", J::s(message))])]))])
            .compact(),
    )
    .header("Content-Type", "application/json")
}

fn api_reply(state: &Mutex<UpstreamState>, req: &Request) -> HttpReply {
    if req.method != "GET" && req.method != "HEAD" {
        return HttpReply::new(405, "");
    }
    let path = req.path.split('?').next().unwrap_or("");
    let Some(name) = path.strip_prefix("/api/") else { return HttpReply::new(404, "Not Found") };
    let Some(file) = state.lock().unwrap().api.get(name).cloned() else { return HttpReply::new(404, "Not Found") };
    if not_modified(req, Some(&file.etag), Some(&file.last_modified)) {
        return HttpReply::new(304, Vec::new()).header("ETag", &file.etag).header("Last-Modified", &file.last_modified);
    }
    let ctype = if name.ends_with(".txt") { "text/plain; charset=utf-8" } else { "application/json; charset=utf-8" };
    let gzip =
        req.header("accept-encoding").is_some_and(|a| a.split(',').any(|e| e.trim().split(';').next() == Some("gzip")));
    let reply = if gzip {
        HttpReply::new(200, gzip_stored(&file.bytes)).header("Content-Encoding", "gzip")
    } else {
        HttpReply::new(200, file.bytes)
    };
    reply
        .header("Content-Type", ctype)
        .header("Vary", "Accept-Encoding")
        .header("ETag", &file.etag)
        .header("Last-Modified", &file.last_modified)
        .header("Cache-Control", "max-age=600")
}

/// `/v2/homebrew/core/<image>/{manifests,blobs}/<ref>` → (image, kind, ref).
fn registry_path(path: &str) -> Option<(String, &'static str, String)> {
    let rest = path.strip_prefix("/v2/homebrew/core/")?;
    for kind in ["manifests", "blobs"] {
        if let Some((image, reference)) = rest.rsplit_once(&format!("/{kind}/")) {
            return Some((image.to_owned(), kind, reference.to_owned()));
        }
    }
    None
}

fn ghcr_reply(state: &Mutex<UpstreamState>, req: &Request, blob_base: &str) -> HttpReply {
    let path = req.path.split('?').next().unwrap_or("");
    if req.method != "GET" && req.method != "HEAD" {
        return registry_error(405, "UNSUPPORTED", "method not allowed");
    }
    let authorized = req.header("authorization").is_some_and(|a| a.starts_with("Bearer ") && a.len() > 7);
    let scope = registry_path(path)
        .map_or_else(String::new, |(image, _, _)| format!(",scope=\"repository:homebrew/core/{image}:pull\""));
    if !authorized {
        return registry_error(401, "UNAUTHORIZED", "authentication required")
            .header("WWW-Authenticate", &format!("Bearer realm=\"https://ghcr.io/token\",service=\"ghcr.io\"{scope}"));
    }
    if path == "/v2/" || path == "/v2" {
        return HttpReply::new(200, "{}").header("Content-Type", "application/json");
    }
    let Some((image, kind, reference)) = registry_path(path) else {
        return registry_error(404, "NOT_FOUND", "no such route");
    };
    let st = state.lock().unwrap();
    match kind {
        "manifests" => match st.manifests.get(&(image.clone(), reference.clone())) {
            Some((media, bytes)) => HttpReply::shared(200, bytes.clone())
                .header("Content-Type", media)
                .header("Docker-Content-Digest", &format!("sha256:{}", sha256_hex(bytes))),
            None => registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        },
        _ => {
            let Some(hex) = reference.strip_prefix("sha256:") else {
                return registry_error(400, "DIGEST_INVALID", "invalid digest");
            };
            if !st.blobs.contains_key(&(image.clone(), hex.to_owned())) {
                return registry_error(404, "BLOB_UNKNOWN", "blob unknown to registry");
            }
            let location =
                format!("{blob_base}/ghcr1/blobs/sha256:{hex}?se=2025-11-01T12%3A10%3A00Z&sig=fixture{}", &hex[..8]);
            HttpReply::new(307, format!("<a href=\"{location}\">Temporary Redirect</a>.\n"))
                .header("Location", &location)
                .header("Content-Type", "text/html; charset=utf-8")
                .header("Docker-Content-Digest", &format!("sha256:{hex}"))
        }
    }
}

fn blob_reply(state: &Mutex<UpstreamState>, req: &Request) -> HttpReply {
    let path = req.path.split('?').next().unwrap_or("");
    let Some(hex) = path.strip_prefix("/ghcr1/blobs/sha256:") else { return HttpReply::new(404, "BlobNotFound") };
    match state.lock().unwrap().blob_store.get(hex) {
        Some(bytes) => HttpReply::shared(200, bytes.clone())
            .header("Content-Type", "application/octet-stream")
            .header("Last-Modified", &super::http_date(0))
            .header("Accept-Ranges", "bytes"),
        None => HttpReply::new(404, "BlobNotFound"),
    }
}

// ---------------------------------------------------------------------------
// A brew-equivalent HTTP client (curl as brew runs it)
// ---------------------------------------------------------------------------

/// One HTTP exchange the client made (each hop of a redirect chain is one).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub request_headers: Vec<(String, String)>,
}

/// A response after redirects.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The URL that answered last (after redirects).
    pub url: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct ParsedUrl {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url}: not an absolute URL"))?;
    if scheme != "http" {
        return Err(format!(
            "{url}: this client speaks plain http only (loopback fakes, serve, the CloudFront stand-in)"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| format!("{url}: bad port"))?),
        None => (authority.to_owned(), 80),
    };
    Ok(ParsedUrl { scheme: scheme.into(), host, port, path: path.into() })
}

/// A `Location` resolved against the URL that sent it.
fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let Ok(b) = parse_url(base) else { return location.to_owned() };
    if location.starts_with('/') {
        return format!("{}://{}:{}{location}", b.scheme, b.host, b.port);
    }
    let dir = b.path.split('?').next().unwrap_or("/");
    let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
    format!("{}://{}:{}{dir}{location}", b.scheme, b.host, b.port)
}

/// One request, no redirect handling.
fn exchange(method: &str, url: &str, headers: &[(String, String)]) -> Result<Response, String> {
    let u = parse_url(url)?;
    let addr = (u.host.as_str(), u.port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut conn =
        TcpStream::connect_timeout(&addr, Duration::from_secs(15)).map_err(|e| format!("{url}: connect: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {} HTTP/1.1\r\nHost: {}:{}\r\n", u.path, u.host, u.port);
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).map_err(|e| format!("{url}: send: {e}"))?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).map_err(|e| format!("{url}: receive: {e}"))?;
    let end =
        raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("{url}: no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{url}: bad status line"))?;
    let resp_headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())))
        .collect();
    let find = |n: &str| resp_headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let rest = &raw[end + 4..];
    let body = if method == "HEAD" || status == 304 || status == 204 || (100..200).contains(&status) {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        dechunk(rest).ok_or_else(|| format!("{url}: bad chunked body"))?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| format!("{url}: bad Content-Length"))?;
        if rest.len() < len {
            // curl: (18) transfer closed with outstanding read data remaining
            return Err(format!("{url}: body cut short ({} of {len} bytes)", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers: resp_headers, body, url: url.to_owned() })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).ok()?.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn origin(url: &str) -> Option<(String, String, u16)> {
    parse_url(url).ok().map(|u| (u.scheme, u.host.to_ascii_lowercase(), u.port))
}

/// `curl --location`: follow 301/302/303/307/308 (at most 50, curl's default
/// `--max-redirs`), keeping the method (GET/HEAD) and custom headers, except
/// `Authorization`, which curl (≥ 7.58, and ≥ 7.83 for a port or scheme
/// change) sends only to the origin it was given for.
fn curl_location(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    log: &Mutex<Vec<Exchange>>,
) -> Result<Response, String> {
    let first = origin(url);
    let mut url = url.to_owned();
    for _ in 0..=50 {
        let sent: Vec<(String, String)> = headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization") || origin(&url) == first)
            .cloned()
            .collect();
        let resp = exchange(method, &url, &sent)?;
        log.lock().unwrap().push(Exchange {
            method: method.into(),
            url: url.clone(),
            status: resp.status,
            request_headers: sent,
        });
        match (resp.status, resp.header("location")) {
            (301 | 302 | 303 | 307 | 308, Some(loc)) => url = join_url(&url, loc),
            _ => return Ok(resp),
        }
    }
    Err(format!("{url}: more than 50 redirects"))
}

fn gunzip(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("gzip: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("gzip: {e}"))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err("gzip -dc failed: not a gzip body".into());
    }
    Ok(out.stdout)
}

// ---------------------------------------------------------------------------
// The brew-equivalent client
// ---------------------------------------------------------------------------

/// What went wrong, naming what brew was fetching and where.
#[derive(Debug, Clone)]
pub enum BrewError {
    /// An HTTP status curl `--fail` refuses.
    Status { what: String, url: String, status: u16 },
    /// No answer, a cut body, a redirect loop.
    Transport { what: String, url: String, error: String },
    /// The bottle's bytes do not hash to the API's sha256.
    Digest { what: String, url: String, expected: String, actual: String },
    /// The manifest has no entry brew would pick, or no usable tab.
    Manifest { url: String, reason: String },
    /// An API document brew could not use.
    Api { file: String, reason: String },
}

impl fmt::Display for BrewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrewError::Status { what, url, status } => write!(f, "{what}: HTTP {status} from {url}"),
            BrewError::Transport { what, url, error } => write!(f, "{what}: {error} ({url})"),
            BrewError::Digest { what, url, expected, actual } => {
                write!(f, "{what}: SHA-256 mismatch from {url}: expected {expected}, got {actual}")
            }
            BrewError::Manifest { url, reason } => write!(f, "manifest {url}: {reason}"),
            BrewError::Api { file, reason } => write!(f, "API file {file}: {reason}"),
        }
    }
}

impl std::error::Error for BrewError {}

/// One formula's bottle data as the client read it from an API document.
#[derive(Clone, Debug)]
pub struct ApiFormula {
    pub name: String,
    pub version: String,
    pub revision: u32,
    pub rebuild: u32,
    /// (tag, cellar, sha256) in the document's order.
    pub files: Vec<(String, String, String)>,
}

/// The bottle a machine would pour: everything brew builds its URLs from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BottleRef {
    pub name: String,
    pub pkg_version: String,
    pub rebuild: u32,
    /// The bottle's own tag (`all`, or an older macOS), not necessarily the machine's.
    pub tag: String,
    pub sha256: String,
    pub cellar: String,
}

/// The formulae the client knows, from formula.json (brew ≤ 5 and mirror
/// planning) or from an internal packages payload (brew 6).
#[derive(Clone, Debug, Default)]
pub struct ApiIndex {
    pub formulae: BTreeMap<String, ApiFormula>,
}

impl ApiIndex {
    /// From formula.json (a JSON array; brew reads `versions.stable`,
    /// `revision`, `bottle.stable.rebuild` and `bottle.stable.files`; it
    /// ignores `root_url` and `url`: `api/formula/formula_struct_generator.rb`).
    pub fn from_formula_json(bytes: &[u8]) -> Result<ApiIndex, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("formula.json: {e}"))?;
        let mut formulae = BTreeMap::new();
        for f in v.as_array().ok_or("formula.json is not an array")? {
            let name = f["name"].as_str().ok_or("an entry without name")?.to_owned();
            let stable = &f["bottle"]["stable"];
            let files = stable["files"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(tag, spec)| {
                            (
                                tag.clone(),
                                spec["cellar"].as_str().unwrap_or_default().to_owned(),
                                spec["sha256"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            formulae.insert(
                name.clone(),
                ApiFormula {
                    name,
                    version: f["versions"]["stable"].as_str().unwrap_or_default().to_owned(),
                    revision: f["revision"].as_u64().unwrap_or(0) as u32,
                    rebuild: stable["rebuild"].as_u64().unwrap_or(0) as u32,
                    files,
                },
            );
        }
        Ok(ApiIndex { formulae })
    }

    /// From the payload of `internal/packages.<tag>.jws.json`
    /// (`FormulaStruct.deserialize`: `bottle_checksum`, `bottle_tag` defaulting
    /// to the file's tag, `bottle_cellar` defaulting to `:any_skip_relocation`).
    pub fn from_packages_payload(payload: &str, tag: &str) -> Result<ApiIndex, String> {
        let v: serde_json::Value = serde_json::from_str(payload).map_err(|e| format!("packages payload: {e}"))?;
        let mut formulae = BTreeMap::new();
        for (name, f) in v["formulae"].as_object().ok_or("payload without `formulae`")? {
            let files = match f["bottle_checksum"].as_str() {
                Some(sha) => vec![(
                    f["bottle_tag"].as_str().unwrap_or(tag).to_owned(),
                    f["bottle_cellar"].as_str().unwrap_or(":any_skip_relocation").to_owned(),
                    sha.to_owned(),
                )],
                None => vec![],
            };
            formulae.insert(
                name.clone(),
                ApiFormula {
                    name: name.clone(),
                    version: f["stable_version"].as_str().unwrap_or_default().to_owned(),
                    revision: f["revision"].as_u64().unwrap_or(0) as u32,
                    rebuild: f["bottle_rebuild"].as_u64().unwrap_or(0) as u32,
                    files,
                },
            );
        }
        Ok(ApiIndex { formulae })
    }

    /// The bottle a machine with `host_tag` pours for `name` (None: brew
    /// would build from source).
    pub fn bottle(&self, name: &str, host_tag: &str) -> Option<BottleRef> {
        let f = self.formulae.get(name)?;
        let tags: Vec<&str> = f.files.iter().map(|(t, _, _)| t.as_str()).collect();
        let tag = rules::resolve_tag(&tags, host_tag)?;
        let (_, cellar, sha) = f.files.iter().find(|(t, _, _)| t == tag)?;
        Some(BottleRef {
            name: f.name.clone(),
            pkg_version: rules::pkg_version(&f.version, f.revision),
            rebuild: f.rebuild,
            tag: tag.to_owned(),
            sha256: sha.clone(),
            cellar: cellar.clone(),
        })
    }

    /// Every (formula, bottle tag) this index has, as a mirror must serve them.
    pub fn all_bottles(&self) -> Vec<BottleRef> {
        self.formulae
            .values()
            .flat_map(|f| {
                f.files.iter().map(|(tag, cellar, sha)| BottleRef {
                    name: f.name.clone(),
                    pkg_version: rules::pkg_version(&f.version, f.revision),
                    rebuild: f.rebuild,
                    tag: tag.clone(),
                    sha256: sha.clone(),
                    cellar: cellar.clone(),
                })
            })
            .collect()
    }
}

/// The URLs brew requests for one bottle, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrewUrls {
    /// The bottle.
    pub bottle: String,
    /// The image index (brew ≥ 6.0.13 with a custom bottle domain, or any ghcr-style root).
    pub manifest: String,
    /// Where brew would go next if the mirror fails (`HOMEBREW_BOTTLE_DOMAIN`'s
    /// GHCR fallback; `HOMEBREW_ARTIFACT_DOMAIN`'s original URL unless
    /// `HOMEBREW_ARTIFACT_DOMAIN_NO_FALLBACK`). This client never goes there:
    /// a miss on the mirror is what the tests must see.
    pub bottle_fallback: Option<String>,
    pub manifest_fallback: Option<String>,
    /// The bottle is fetched with CurlGitHubPackagesDownloadStrategy (a
    /// `/blobs/sha256:` URL: no preflight, the Authorization header) rather
    /// than CurlDownloadStrategy (a flat name: a HEAD preflight first).
    pub bottle_ghcr_style: bool,
    /// The Authorization header brew sends with ghcr-style requests, if any.
    pub authorization: Option<String>,
}

/// A bottle and its manifest entry, fetched and checked.
#[derive(Clone, Debug)]
pub struct FetchedBottle {
    pub bottle: BottleRef,
    pub urls: BrewUrls,
    pub bytes: Vec<u8>,
    /// The manifest entry's annotations (the one brew picked).
    pub annotations: BTreeMap<String, String>,
    /// `sh.brew.tab`, parsed.
    pub tab: serde_json::Value,
}

/// An API file fetched as brew fetches it.
#[derive(Clone, Debug)]
pub struct ApiFetch {
    pub status: u16,
    /// Decoded (curl `--compressed`); empty on 304.
    pub bytes: Vec<u8>,
    pub last_modified: Option<String>,
    pub content_encoding: Option<String>,
}

/// A machine running brew, reduced to what it asks a mirror for: given
/// `HOMEBREW_API_DOMAIN`, `HOMEBREW_BOTTLE_DOMAIN`, `HOMEBREW_ARTIFACT_DOMAIN`,
/// `HOMEBREW_DOCKER_REGISTRY_TOKEN` and its bottle tag, it builds the URLs brew
/// builds and fetches them as brew's curl does, and checks what brew checks.
/// Unlike brew it never falls back to formulae.brew.sh or ghcr.io: every
/// failure is returned, naming the file and URL.
pub struct BrewClient {
    pub host_tag: String,
    pub api_domain: String,
    pub bottle_domain: Option<String>,
    pub artifact_domain: Option<String>,
    pub docker_registry_token: Option<String>,
    log: Mutex<Vec<Exchange>>,
}

impl BrewClient {
    /// A machine with this bottle tag and `HOMEBREW_API_DOMAIN`.
    pub fn new(host_tag: &str, api_domain: &str) -> BrewClient {
        BrewClient {
            host_tag: host_tag.into(),
            api_domain: api_domain.trim_end_matches('/').into(),
            bottle_domain: None,
            artifact_domain: None,
            docker_registry_token: None,
            log: Mutex::new(Vec::new()),
        }
    }
    /// `HOMEBREW_BOTTLE_DOMAIN`.
    pub fn bottle_domain(mut self, d: &str) -> BrewClient {
        self.bottle_domain = Some(d.into());
        self
    }
    /// `HOMEBREW_ARTIFACT_DOMAIN`.
    pub fn artifact_domain(mut self, d: &str) -> BrewClient {
        self.artifact_domain = Some(d.into());
        self
    }
    /// `HOMEBREW_DOCKER_REGISTRY_TOKEN` (brew.sh: `Authorization: Bearer <token>`).
    pub fn docker_registry_token(mut self, t: &str) -> BrewClient {
        self.docker_registry_token = Some(t.into());
        self
    }
    /// The same machine with another bottle tag.
    pub fn with_tag(&self, host_tag: &str) -> BrewClient {
        BrewClient {
            host_tag: host_tag.into(),
            api_domain: self.api_domain.clone(),
            bottle_domain: self.bottle_domain.clone(),
            artifact_domain: self.artifact_domain.clone(),
            docker_registry_token: self.docker_registry_token.clone(),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every HTTP exchange so far (each redirect hop separately).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    fn user_agent(&self) -> String {
        format!("Homebrew/{BREW_VERSION} (pkgrelay test client; {}) curl/8.7.1", self.host_tag)
    }

    /// A custom bottle domain: set and not the default (`EnvConfig.bottle_domain_custom?`;
    /// brew.sh also unsets it when it equals the default).
    fn custom_bottle_domain(&self) -> Option<String> {
        self.bottle_domain.as_deref().map(|d| d.to_owned()).filter(|d| d != GHCR_DEFAULT_ROOT)
    }

    /// The bottle root brew uses (api/formula_bottle.rb, formulary.rb: the
    /// custom bottle domain or the default; never the API's `root_url`).
    /// `BottleSpecification#root_url` maps a ghcr-shaped domain to its canonical form.
    pub fn root_url(&self) -> String {
        let root = self.custom_bottle_domain().unwrap_or_else(|| GHCR_DEFAULT_ROOT.to_owned());
        canonical_ghcr_root(&root).unwrap_or(root)
    }

    /// `HOMEBREW_GITHUB_PACKAGES_AUTH` (brew.sh) as CurlGitHubPackagesDownloadStrategy
    /// sends it: only when no artifact domain is set, unless a docker registry
    /// token is (since brew 4.5.3, "anonymous OCI registry access").
    pub fn github_packages_auth(&self) -> Option<String> {
        let auth = match &self.docker_registry_token {
            Some(t) => format!("Bearer {t}"),
            None => ANONYMOUS_BEARER.to_owned(),
        };
        let artifact = self.artifact_domain.as_deref().is_some_and(|d| !d.is_empty());
        (!artifact || self.docker_registry_token.is_some()).then_some(auth)
    }

    /// The URLs brew requests for this bottle.
    pub fn urls(&self, b: &BottleRef) -> BrewUrls {
        let root = self.root_url();
        let image = rules::image_name(&b.name);
        let ghcr_style = canonical_ghcr_root(&root).is_some();
        let (bottle, bottle_fallback) = if ghcr_style {
            (format!("{root}/{image}/blobs/sha256:{}", b.sha256), None)
        } else {
            let flat = format!("{root}/{}", rules::flat_bottle_path(&b.name, &b.pkg_version, &b.tag, b.rebuild));
            // Bottle#fallback_on_error?: the default domain, ghcr-style.
            (flat, Some(format!("{GHCR_DEFAULT_ROOT}/{image}/blobs/sha256:{}", b.sha256)))
        };
        let manifest_path = format!("{image}/manifests/{}", rules::version_rebuild(&b.pkg_version, b.rebuild, None));
        let manifest = format!("{root}/{manifest_path}");
        let manifest_fallback = (!ghcr_style).then(|| format!("{GHCR_DEFAULT_ROOT}/{manifest_path}"));
        let rewrite = |u: String| match &self.artifact_domain {
            Some(d) if !d.is_empty() => rules::artifact_rewrite(&u, d),
            _ => u,
        };
        // With an artifact domain, the rewritten URL is tried first and the
        // original is the fallback (CurlDownloadStrategy#fetch).
        let (bottle, bottle_fallback) = {
            let r = rewrite(bottle.clone());
            if r != bottle { (r, Some(bottle)) } else { (bottle, bottle_fallback.map(rewrite)) }
        };
        let (manifest, manifest_fallback) = {
            let r = rewrite(manifest.clone());
            if r != manifest { (r, Some(manifest)) } else { (manifest, manifest_fallback.map(rewrite)) }
        };
        BrewUrls {
            bottle,
            manifest,
            bottle_fallback,
            manifest_fallback,
            bottle_ghcr_style: ghcr_style,
            authorization: self.github_packages_auth(),
        }
    }

    /// Fetch `internal/packages.<host_tag>.jws.json` (brew 6), check its JWS
    /// shape, and read its payload.
    pub fn packages_index(&self) -> Result<ApiIndex, BrewError> {
        let file = packages_file(&self.host_tag);
        let got = self.fetch_api_file(&file, None)?;
        let jws = parse_jws(&got.bytes).map_err(|reason| BrewError::Api { file: file.clone(), reason })?;
        ApiIndex::from_packages_payload(&jws.payload, &self.host_tag).map_err(|reason| BrewError::Api { file, reason })
    }

    /// Fetch formula.json (not signed; what a mirror plans from) and read it.
    pub fn formula_json_index(&self) -> Result<ApiIndex, BrewError> {
        let got = self.fetch_api_file("formula.json", None)?;
        ApiIndex::from_formula_json(&got.bytes).map_err(|reason| BrewError::Api { file: "formula.json".into(), reason })
    }

    /// An API file as `cmd/update.sh`'s `api_curl_download` fetches it: curl
    /// `--fail --compressed --location --remote-time`, plus `--time-cond
    /// <cache file>` when a cached copy exists (`If-Modified-Since`: pass
    /// `since`, an HTTP date). UNCONFIRMED: the exact Accept-Encoding list
    /// curl sends (it depends on curl's build); this client offers gzip only.
    pub fn fetch_api_file(&self, file: &str, since: Option<&str>) -> Result<ApiFetch, BrewError> {
        let url = format!("{}/{file}", self.api_domain);
        let mut headers = vec![
            ("User-Agent".to_owned(), self.user_agent()),
            ("Accept".to_owned(), "*/*".to_owned()),
            ("Accept-Encoding".to_owned(), "gzip".to_owned()),
        ];
        if let Some(s) = since {
            headers.push(("If-Modified-Since".to_owned(), s.to_owned()));
        }
        let what = format!("API file {file}");
        let resp = curl_location("GET", &url, &headers, &self.log).map_err(|error| BrewError::Transport {
            what: what.clone(),
            url: url.clone(),
            error,
        })?;
        if resp.status >= 400 {
            return Err(BrewError::Status { what, url: resp.url, status: resp.status });
        }
        let encoding = resp.header("content-encoding").map(str::to_owned);
        let bytes = match encoding.as_deref() {
            Some("gzip") => {
                gunzip(&resp.body).map_err(|error| BrewError::Transport { what, url: resp.url.clone(), error })?
            }
            Some(other) if other != "identity" => {
                return Err(BrewError::Transport {
                    what,
                    url: resp.url,
                    error: format!("unrequested Content-Encoding {other}"),
                });
            }
            _ => resp.body.clone(),
        };
        Ok(ApiFetch {
            status: resp.status,
            bytes,
            last_modified: resp.header("last-modified").map(str::to_owned),
            content_encoding: encoding,
        })
    }

    /// Fetch the image index and the bottle as brew does, and check both:
    /// the entry whose `sh.brew.bottle.digest` is the API's sha256 and whose
    /// `org.opencontainers.image.ref.name` is `pkg_version.tag[.rebuild]`
    /// (`Resource::BottleManifest#manifest_annotations`), a tab that parses,
    /// and the bottle's SHA-256.
    pub fn fetch_bottle(&self, b: &BottleRef) -> Result<FetchedBottle, BrewError> {
        let urls = self.urls(b);
        let (annotations, tab) = self.fetch_manifest(b, &urls)?;
        let bytes = self.fetch_bottle_bytes(b, &urls)?;
        Ok(FetchedBottle { bottle: b.clone(), urls, bytes, annotations, tab })
    }

    /// The manifest alone (Accept: the OCI index type; the GitHub Packages
    /// Authorization header as the strategy adds it).
    pub fn fetch_manifest(
        &self,
        b: &BottleRef,
        urls: &BrewUrls,
    ) -> Result<(BTreeMap<String, String>, serde_json::Value), BrewError> {
        let mut headers =
            vec![("User-Agent".to_owned(), self.user_agent()), ("Accept".to_owned(), OCI_INDEX.to_owned())];
        if let Some(a) = &urls.authorization {
            headers.push(("Authorization".to_owned(), a.clone()));
        }
        let what = format!("manifest of {} {}", b.name, rules::version_rebuild(&b.pkg_version, b.rebuild, None));
        let resp = curl_location("GET", &urls.manifest, &headers, &self.log).map_err(|error| BrewError::Transport {
            what: what.clone(),
            url: urls.manifest.clone(),
            error,
        })?;
        if resp.status >= 400 {
            return Err(BrewError::Status { what, url: urls.manifest.clone(), status: resp.status });
        }
        let bad = |reason: String| BrewError::Manifest { url: urls.manifest.clone(), reason };
        let json: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| bad(format!("not valid JSON ({e}): brew calls it corrupted")))?;
        let manifests = json["manifests"]
            .as_array()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad("Missing 'manifests' section.".into()))?;
        let annotated: Vec<&serde_json::Map<String, serde_json::Value>> =
            manifests.iter().filter_map(|m| m["annotations"].as_object()).collect();
        if annotated.is_empty() {
            return Err(bad("Missing 'annotations' section.".into()));
        }
        let want_ref = rules::version_rebuild(&b.pkg_version, b.rebuild, Some(&b.tag));
        let entry = annotated
            .iter()
            .find(|a| a.get("sh.brew.bottle.digest").and_then(|v| v.as_str()) == Some(b.sha256.as_str())
                && a.get("org.opencontainers.image.ref.name").and_then(|v| v.as_str()) == Some(want_ref.as_str()))
            .ok_or_else(|| {
                let seen: Vec<String> = annotated
                    .iter()
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.get("org.opencontainers.image.ref.name").and_then(|v| v.as_str()).unwrap_or("?"),
                            a.get("sh.brew.bottle.digest").and_then(|v| v.as_str()).unwrap_or("?")
                        )
                    })
                    .collect();
                bad(format!(
                    "Couldn't find manifest matching bottle checksum (want ref.name {want_ref} and digest {}; entries: {})",
                    b.sha256,
                    seen.join(", ")
                ))
            })?;
        let annotations: BTreeMap<String, String> =
            entry.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect();
        let tab_text = annotations
            .get("sh.brew.tab")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("Couldn't find tab from manifest.".into()))?;
        let tab = serde_json::from_str(tab_text).map_err(|_| bad("Couldn't parse tab JSON.".into()))?;
        Ok((annotations, tab))
    }

    /// The bottle alone. Flat (CurlDownloadStrategy): a HEAD preflight with
    /// `--location` (`curl_headers`), then a GET of the URL it resolved to.
    /// ghcr-style (CurlGitHubPackagesDownloadStrategy with a resolved
    /// basename): no preflight, one GET with `--location` carrying the
    /// Authorization header (curl drops it when the redirect leaves the origin).
    pub fn fetch_bottle_bytes(&self, b: &BottleRef, urls: &BrewUrls) -> Result<Vec<u8>, BrewError> {
        let what = format!("bottle {}", rules::bottle_basename(&b.name, &b.pkg_version, &b.tag, b.rebuild));
        let mut headers = vec![("User-Agent".to_owned(), self.user_agent()), ("Accept".to_owned(), "*/*".to_owned())];
        let transport = |error: String| BrewError::Transport { what: what.clone(), url: urls.bottle.clone(), error };
        let target = if urls.bottle_ghcr_style {
            if let Some(a) = &urls.authorization {
                headers.push(("Authorization".to_owned(), a.clone()));
            }
            urls.bottle.clone()
        } else {
            let head = curl_location("HEAD", &urls.bottle, &headers, &self.log).map_err(transport)?;
            if head.status < 400 { head.url } else { urls.bottle.clone() }
        };
        let resp = curl_location("GET", &target, &headers, &self.log).map_err(|error| BrewError::Transport {
            what: what.clone(),
            url: target.clone(),
            error,
        })?;
        if resp.status >= 400 {
            return Err(BrewError::Status { what, url: urls.bottle.clone(), status: resp.status });
        }
        let actual = sha256_hex(&resp.body);
        if actual != b.sha256 {
            return Err(BrewError::Digest { what, url: resp.url, expected: b.sha256.clone(), actual });
        }
        Ok(resp.body)
    }
}

/// `GitHubPackages.root_url_if_match`: a `https://ghcr.io/v2/<org>/<repo>`
/// domain in canonical form (org lower-cased, `homebrew-` dropped), else None.
pub fn canonical_ghcr_root(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://ghcr.io/v2/")?;
    let mut parts = rest.split('/');
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let (org, repo) = (parts.next()?, parts.next()?);
    (word(org) && word(repo))
        .then(|| format!("https://ghcr.io/v2/{}/{}", org.to_lowercase(), repo.trim_start_matches("homebrew-")))
}

/// Compare API files on a mirror with upstream's, byte for byte, naming each
/// that differs or is missing. Both fetched as brew fetches them.
pub fn api_files_identical(upstream_api_domain: &str, mirror_api_domain: &str, files: &[String]) -> Result<(), String> {
    let up = BrewClient::new("arm64_sequoia", upstream_api_domain);
    let mirror = BrewClient::new("arm64_sequoia", mirror_api_domain);
    let mut problems = Vec::new();
    for f in files {
        let want = match up.fetch_api_file(f, None) {
            Ok(r) => r.bytes,
            Err(e) => {
                problems.push(format!("upstream: {e}"));
                continue;
            }
        };
        match mirror.fetch_api_file(f, None) {
            Ok(r) if r.bytes == want => {}
            Ok(r) => problems.push(format!(
                "{f}: the mirror's {} bytes (sha256 {}) are not upstream's {} bytes (sha256 {})",
                r.bytes.len(),
                sha256_hex(&r.bytes),
                want.len(),
                sha256_hex(&want)
            )),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

/// A directory laid out as a mirror brew reads (DESIGN.md "Homebrew mirror
/// layout"), for tests that need one without the product: under `root`,
/// `bottles/<flat name>` (literal `@`), `bottles/<image>/manifests/<ref>`,
/// `v2/homebrew/core/<image>/blobs/sha256:<hex>` and `.../manifests/<ref>`,
/// and `api/<file>` byte for byte. `flat_key` maps the literal flat name to
/// the key stored (identity for a right mirror; `%40` for the broken one).
pub fn lay_out_mirror(root: &Path, fake: &FakeBrew, flat_key: impl Fn(&str) -> String) {
    let write = |rel: &str, bytes: &[u8]| {
        let p: PathBuf = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    };
    for (name, file) in fake.api_files() {
        write(&format!("api/{name}"), &file.bytes);
    }
    for f in fake.formulae() {
        let index = fake.manifest(&f.image(), &f.manifest_ref()).unwrap();
        write(&format!("bottles/{}/manifests/{}", f.image(), f.manifest_ref()), &index);
        write(&format!("v2/homebrew/core/{}/manifests/{}", f.image(), f.manifest_ref()), &index);
        for b in &f.bottles {
            write(&format!("bottles/{}", flat_key(&f.flat_name(&b.tag))), &b.bytes);
            write(&format!("v2/homebrew/core/{}/blobs/sha256:{}", f.image(), b.sha256), &b.bytes);
        }
    }
}

/// One plain request (no redirect following, no brew rules): for tests that
/// look at a fake's or a mirror's raw answers.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    exchange(method, url, &headers)
}

/// (Re)write the mirror's settings for `tags`.
pub fn configure_mirror(ws: &super::Workspace, fake: &FakeBrew, tags: &[&str]) {
    std::fs::write(
        ws.path("config/repositories.yaml"),
        "repositories:\n  - {name: apt, format: apt}\n  - {name: brew, format: homebrew, prefix: brew/, config: homebrew.yaml}\n",
    )
    .unwrap();
    std::fs::write(
        ws.path("config/homebrew.yaml"),
        format!(
            // The registry by the name `localhost`, so that the blob host it
            // redirects to (127.0.0.1, another port) is another loopback host,
            // allowed by name as ghcr's pkg-containers.githubusercontent.com is.
            "api_url: {}\nregistry_url: {}\nallowed_hosts: [127.0.0.1]\n\
             formulae: all\ntags: [{}]\nbase_url: http://127.0.0.1/brew\n",
            fake.api_domain(),
            fake.ghcr_root().replace("127.0.0.1", "localhost"),
            tags.join(", ")
        ),
    )
    .unwrap();
}

/// Bottle downloads the fake ghcr answered (its redirects to the blob host).
pub fn blob_requests(fake: &FakeBrew) -> usize {
    fake.ghcr.requests().iter().filter(|r| r.path.contains("/blobs/sha256:")).count()
}

/// Every formula × tag of `fake`, poured as brew would from the mirror at
/// `mirror` (its API at `<mirror>/api`) in both domain modes
/// (`HOMEBREW_BOTTLE_DOMAIN=<mirror>/bottles`, `HOMEBREW_ARTIFACT_DOMAIN=<mirror>`):
/// each bottle's bytes are upstream's, its SHA-256 the API's, its image-index
/// entry names that digest, and every fixture bottle is poured by some
/// platform. `each_tag` sees each platform's two clients afterwards (what
/// they asked).
pub fn pour_every_bottle(fake: &FakeBrew, mirror: &str, mut each_tag: impl FnMut(&str, &BrewClient, &BrewClient)) {
    let mut poured = std::collections::BTreeSet::new();
    for tag in PLATFORM_TAGS {
        let flat = BrewClient::new(tag, &format!("{mirror}/api")).bottle_domain(&format!("{mirror}/bottles"));
        let artifact = BrewClient::new(tag, &format!("{mirror}/api")).artifact_domain(mirror);
        let index = flat.packages_index().unwrap_or_else(|e| panic!("{tag}: {e}"));
        for f in fake.formulae() {
            let Some(b) = index.bottle(&f.name, tag) else { continue };
            let upstream = f.bottle(&b.tag).unwrap();
            assert_eq!(b.sha256, upstream.sha256, "{tag} {}", f.name);
            for client in [&flat, &artifact] {
                let got = client.fetch_bottle(&b).unwrap_or_else(|e| panic!("{tag} {}: {e}", f.name));
                assert_eq!(super::sha256(&got.bytes), b.sha256);
                assert_eq!(got.bytes, *upstream.bytes);
                assert_eq!(got.annotations.get("sh.brew.bottle.digest"), Some(&b.sha256));
            }
            poured.insert((f.name.clone(), b.tag.clone()));
        }
        each_tag(tag, &flat, &artifact);
    }
    let expected: std::collections::BTreeSet<(String, String)> = fake.bottle_pairs().into_iter().collect();
    assert_eq!(poured, expected, "every fixture bottle is poured by some platform");
}
