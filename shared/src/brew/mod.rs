//! The Homebrew bottle mirror: its pure rules and its place at the format
//! seam.
//!
//! - [`naming`]: how brew names what it asks a mirror for (bottle file
//!   names, images, manifest references, bottle tags);
//! - [`api`]: which bottles the formulae API says a mirror of some formulae
//!   and tags must hold, read streaming;
//! - [`config`]: a mirror's settings file;
//! - [`BrewMetadata`], [`BrewLayout`], [`BrewRepository`]: what an entry of
//!   a mirror records, what each of its public files is to a client, and
//!   the [`RepositoryFormat`] the steps are handed for it.
//!
//! Nothing here fetches or stores anything; the rules are Homebrew/brew's
//! own (6.0.x: `bottle.rb`, `github_packages.rb`, `utils/bottles.rb`,
//! `resource.rb`), restated from reading them, so that the mirror's layout
//! and the tests' brew-equivalent client agree with brew rather than with
//! each other.

pub mod api;
pub mod config;
pub mod naming;

use crate::blob::{Caching, ObjectLayout, ObjectMeta};
use crate::model::Candidate;
use crate::repository::{ArtifactDescription, Compressed, IndexBuilder, PlanEntry, RenderedIndex, RepositoryFormat};
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// What an entry of a Homebrew mirror records of its bottle: what brew
/// builds the bottle's file name and manifest reference from, and what the
/// formulae API says the file is. Stored under the record's `bottle` key
/// ([`crate::model::EntryMetadata::Brew`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrewMetadata {
    /// The formula's name (`python@3.13`, `libxml++`).
    pub formula: String,
    /// `version`, or `version_N` for revision N > 0 ([`naming::pkg_version`]).
    pub pkg_version: String,
    /// The tag of the file (`arm64_sonoma`, `x86_64_linux`, `all`).
    pub tag: String,
    /// `bottle.stable.rebuild`: part of the file name when above zero.
    #[serde(default)]
    pub rebuild: u32,
    /// `:any`, `:any_skip_relocation`, or the cellar path it was built for.
    pub cellar: String,
    /// The bottle's SHA-256 as the API lists it (what brew checks, and the
    /// blob's name in the registry).
    pub sha256: String,
    /// The bottle's entry in the registry's image index
    /// (`<image>/manifests/<ref>`: its `mediaType`, `digest`, `size`,
    /// `platform` and `annotations`, `sh.brew.tab` among them), as upstream
    /// serves it: the mirror's own image index is made of these. Absent in
    /// what the API alone says (a candidate, the API snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<serde_json::Value>,
}

impl BrewMetadata {
    /// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`, unencoded.
    pub fn filename(&self) -> String {
        naming::bottle_filename(&self.formula, &self.pkg_version, &self.tag, self.rebuild)
    }

    /// The version of its store id: the manifest reference
    /// `<pkg_version>[-<rebuild>]`, so that a rebuild of the same version is
    /// another entry (other bytes), not a conflict.
    pub fn version(&self) -> String {
        naming::manifest_ref(&self.pkg_version, self.rebuild)
    }

    /// `org.opencontainers.image.ref.name` of its image-index entry.
    pub fn ref_name(&self) -> String {
        naming::image_ref_name(&self.pkg_version, &self.tag, self.rebuild)
    }

    /// The same bottle, as the API names it (formula, tag, digest).
    fn api_key(&self) -> (&str, &str, &str) {
        (&self.formula, &self.tag, &self.sha256)
    }
}

/// Where a mirror keeps each bottle, once, whatever names refer to it:
/// `blobs/sha256/<hex>` (below the mirror's prefix). Flat names and
/// `v2/…/blobs/sha256:<hex>` are not objects: `pkgrelay serve` (and on AWS
/// a rewrite in front of the bucket) maps them here, see [`rewrite`].
pub fn blob_key(sha256: &str) -> String {
    format!("blobs/sha256/{sha256}")
}

/// Where a mirror keeps a generated or fetched file by its digest until a
/// publish copies it to its canonical name (API files, image indexes,
/// `bottles_hash.json`): no client asks for these names.
pub fn by_hash_key(sha256: &str) -> String {
    format!("by-hash/SHA256/{sha256}")
}

/// Where check-sources leaves mirror `repository`'s [`ApiSnapshot`] for
/// build-index (private; each check-sources replaces it).
pub fn snapshot_key(repository: &str) -> String {
    format!("runs/brew/{repository}/api-snapshot.json")
}

/// The name of the map from flat bottle file name to SHA-256 (the design
/// documents' hash file), published at the mirror's root.
pub const BOTTLES_HASH: &str = "bottles_hash.json";

/// One API file as check-sources fetched it: its name under `api/`, and
/// the by-hash key that holds its bytes, unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiFile {
    /// Relative to `api_url` (`formula.jws.json`, `internal/packages.arm64_sonoma.jws.json`).
    pub name: String,
    pub key: String,
    #[serde(flatten)]
    pub checksums: crate::digest::Checksums,
}

/// What one check-sources saw of the API: the files, and every bottle of
/// the configured formulae and tags they reference. build-index publishes
/// these files only once every one of those bottles is recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSnapshot {
    pub files: Vec<ApiFile>,
    pub bottles: Vec<BrewMetadata>,
}

/// How a request for a mirror's bottle maps onto its one stored copy, as
/// `pkgrelay serve` does it and a rewrite in front of S3 (a CloudFront
/// Function with the flat map in a KeyValueStore) must do it. `path` is
/// relative to the mirror's prefix, still url-encoded as brew sent it.
///
/// - `v2/homebrew/core/<image>/blobs/sha256:<hex>` (HOMEBREW_ARTIFACT_DOMAIN)
///   → `blobs/sha256/<hex>`: a pure rewrite, the digest is in the path;
/// - `bottles/<url-encoded flat name>` (HOMEBREW_BOTTLE_DOMAIN): decoded
///   (brew sends `@` as `%40`, `+` as `%2B`), looked up in
///   `bottles_hash.json` → `blobs/sha256/<hex>`;
/// - anything else (manifests, API files, `bottles_hash.json`): `None`,
///   served as it is stored.
pub fn rewrite(path: &str, flat: impl FnOnce(&str) -> Option<String>) -> Option<String> {
    if let Some(rest) = path.strip_prefix("v2/homebrew/core/")
        && let Some((_image, digest)) = rest.rsplit_once("/blobs/")
    {
        let hex = digest.strip_prefix("sha256:").or_else(|| digest.strip_prefix("sha256%3A"))?;
        let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        return is_hex.then(|| blob_key(hex));
    }
    let name = naming::url_decode(path.strip_prefix("bottles/")?)?;
    if name.contains('/') || !name.ends_with(".tar.gz") {
        return None;
    }
    flat(&name).map(|sha| blob_key(&sha))
}

/// What each public file of a mirror is to brew and to caches, from its key
/// (relative to the mirror's prefix):
///
/// | key | Content-Type | caching |
/// |---|---|---|
/// | `bottles/<file>.bottle[.N].tar.gz` | `application/gzip` | immutable: a name is one build |
/// | `…/blobs/sha256:<hex>` | `application/octet-stream` (as ghcr) | immutable: named by digest |
/// | `…/manifests/<ref>` | OCI image index | short: upstream may push the ref again |
/// | `api/….json` | `application/json` | short: replaced by each publish |
/// | `api/internal/executables.txt` | `text/plain` | short |
/// | `bottles_hash.json` | `application/json` | short |
/// | `index.html` | `text/html` | short |
pub struct BrewLayout;

/// The media type brew and registries give an image index (`manifests/<ref>`).
pub const OCI_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl ObjectLayout for BrewLayout {
    fn meta(&self, key: &str) -> ObjectMeta {
        let name = key.rsplit('/').next().unwrap_or(key);
        let in_dir = |dir: &str| key.split('/').rev().nth(1) == Some(dir);
        let (content_type, caching) = if (in_dir("blobs") && name.starts_with("sha256:"))
            || key.starts_with("blobs/sha256/")
            || key.starts_with("by-hash/")
        {
            ("application/octet-stream", Caching::Immutable)
        } else if in_dir("manifests") {
            (OCI_IMAGE_INDEX, Caching::Short)
        } else if key.starts_with("bottles/") && name.ends_with(".tar.gz") {
            ("application/gzip", Caching::Immutable)
        } else if name.ends_with(".json") {
            ("application/json", Caching::Short)
        } else if name.ends_with(".txt") {
            ("text/plain; charset=utf-8", Caching::Short)
        } else if name.ends_with(".html") {
            ("text/html; charset=utf-8", Caching::Short)
        } else {
            ("application/octet-stream", Caching::Short)
        };
        ObjectMeta { content_type, caching }
    }
}

/// The Homebrew format of one mirror (`name` in `repositories.yaml`).
///
/// A bottle is checked against what the API and the registry said of it
/// (its candidate's [`BrewMetadata`]) and kept once, by digest
/// ([`blob_key`]). A generation ([`BrewIndex`]) publishes, below the
/// mirror's prefix and in this order:
///
/// 1. the image index of each formula version, at
///    `bottles/<image>/manifests/<ref>` (HOMEBREW_BOTTLE_DOMAIN = `<base>/bottles`)
///    and `v2/homebrew/core/<image>/manifests/<ref>` (HOMEBREW_ARTIFACT_DOMAIN
///    = `<base>`), made of upstream's entries for the mirrored bottles;
/// 2. `bottles_hash.json`: flat file name → SHA-256, which is also the map
///    the flat names are served through ([`rewrite`]);
/// 3. the API files, byte for byte, the published marker last; and only
///    when every bottle they reference is recorded: otherwise the live
///    generation's API files stay, so brew never learns of a bottle the
///    mirror does not hold.
pub struct BrewRepository {
    /// The repository's name in `repositories.yaml`.
    pub name: String,
    pub config: config::HomebrewConfig,
}

impl RepositoryFormat for BrewRepository {
    fn describe_artifact(&self, candidate: &Candidate, path: &Path) -> anyhow::Result<ArtifactDescription> {
        let id = candidate.package_id();
        let Some(crate::model::EntryMetadata::Brew(m)) = &candidate.metadata else {
            bail!("{id}: not a bottle of the formulae API (the candidate carries no bottle metadata)");
        };
        // The candidate's fields and its metadata come from one API entry;
        // a mismatch means the candidate was not made by this mirror's source.
        if candidate.package != m.formula || candidate.architecture != m.tag || candidate.version != m.version() {
            bail!("{id}: the candidate does not name the bottle its metadata describes ({})", m.filename());
        }
        if candidate.expected_sha256.as_deref() != Some(m.sha256.as_str()) {
            bail!("{id}: the bottle was not fetched against the API's SHA-256 {}", m.sha256);
        }
        if m.descriptor.is_none() {
            bail!("{id}: the registry's image index has no entry for {} (brew could not install it)", m.ref_name());
        }
        // The digest was checked in the download's own pass; what is left to
        // see is that the bytes are a gzip stream, as every bottle is.
        let mut magic = [0u8; 2];
        use std::io::Read as _;
        std::fs::File::open(path)?.read_exact(&mut magic).map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
        if magic != [0x1f, 0x8b] {
            bail!("{id}: {} is not a gzip stream", m.filename());
        }
        Ok(ArtifactDescription {
            name: m.formula.clone(),
            version: m.version(),
            architecture: m.tag.clone(),
            metadata: crate::model::EntryMetadata::Brew(m.clone()),
            key: blob_key(&m.sha256),
        })
    }

    fn index_builder(&self, reuse: Vec<Compressed>) -> anyhow::Result<Box<dyn IndexBuilder>> {
        self.index_builder_with(reuse, None)
    }

    fn generation_input(&self) -> Option<String> {
        Some(snapshot_key(&self.name))
    }

    fn index_builder_with(
        &self,
        reuse: Vec<Compressed>,
        input: Option<Vec<u8>>,
    ) -> anyhow::Result<Box<dyn IndexBuilder>> {
        let snapshot = match input {
            Some(bytes) => Some(
                serde_json::from_slice::<ApiSnapshot>(&bytes)
                    .map_err(|e| anyhow::anyhow!("repository {}: API snapshot unreadable: {e}", self.name))?,
            ),
            None => None,
        };
        Ok(Box::new(BrewIndex {
            name: self.name.clone(),
            api_files: self.config.all_api_files(),
            reuse,
            snapshot,
            entries: Vec::new(),
            live: None,
        }))
    }

    fn object_meta(&self, key: &str) -> ObjectMeta {
        BrewLayout.meta(key)
    }

    fn base_url(&self) -> Option<String> {
        Some(self.config.base_url.clone())
    }
    fn retention_grace(&self) -> Option<std::time::Duration> {
        self.config.retention.as_ref().map(crate::config::RetentionConfig::grace)
    }

    /// The first API file: brew learns of the mirror's bottles from the API
    /// files, which are published last, so its absence means the mirror is
    /// not (or no longer) published.
    fn published_marker(&self) -> Option<String> {
        self.config.all_api_files().first().map(|f| format!("api/{f}"))
    }

    /// `bottles/<flat bottle file name>`: a name, never stored (see [`rewrite`]).
    fn is_edge_name(&self, key: &str) -> bool {
        key.strip_prefix("bottles/").is_some_and(|n| !n.contains('/') && n.ends_with(".tar.gz"))
    }
}

/// One generation of a mirror in the making: the recorded bottles, the API
/// snapshot of the last check-sources, the live generation's API files.
pub struct BrewIndex {
    name: String,
    /// The API files the mirror publishes, marker first.
    api_files: Vec<String>,
    reuse: Vec<Compressed>,
    snapshot: Option<ApiSnapshot>,
    entries: Vec<(BrewMetadata, u64)>,
    /// What the live generation references, if it says (see `finish`).
    live: Option<std::collections::HashSet<String>>,
}

impl IndexBuilder for BrewIndex {
    fn add(&mut self, entry: crate::model::PackageEntry) {
        if let crate::model::EntryMetadata::Brew(m) = entry.metadata {
            self.entries.push((m, entry.checksums.size));
        }
    }

    fn live_references(&mut self, references: &std::collections::HashSet<String>) {
        if !references.is_empty() {
            self.live = Some(references.clone());
        }
    }

    fn finish(mut self: Box<Self>, now: OffsetDateTime) -> anyhow::Result<RenderedIndex> {
        // Which API files this generation publishes: the snapshot's once
        // every bottle they reference is recorded, else the live ones.
        type ApiKey = (String, String, String);
        let owned = |b: &BrewMetadata| -> ApiKey {
            let (f, t, s) = b.api_key();
            (f.to_owned(), t.to_owned(), s.to_owned())
        };
        let recorded: std::collections::HashSet<ApiKey> = self.entries.iter().map(|(m, _)| owned(m)).collect();
        let fresh = match &self.snapshot {
            Some(s) => {
                let missing: Vec<String> =
                    s.bottles.iter().filter(|b| !recorded.contains(&owned(b))).map(BrewMetadata::filename).collect();
                if let Some(first) = missing.first() {
                    tracing::warn!(
                        repository = %self.name,
                        missing = missing.len(),
                        first = %first,
                        "the API files fetched last reference bottles the mirror does not hold: the published ones stay"
                    );
                }
                missing.is_empty()
            }
            None => false,
        };
        // Retention: the mirror lists the bottles its published API files
        // reference, and no others (those leave the bucket once no
        // generation within the grace period lists them). With the
        // snapshot's files: the snapshot's bottles. With the live files:
        // what the live generation listed (its references); a live
        // generation from before retention says nothing, so every recorded
        // bottle stays listed, as it always was.
        if fresh {
            let wanted: std::collections::HashSet<ApiKey> =
                self.snapshot.iter().flat_map(|s| s.bottles.iter().map(owned)).collect();
            self.entries.retain(|(m, _)| wanted.contains(&owned(m)));
        } else if let Some(live) = &self.live {
            self.entries.retain(|(m, _)| live.contains(&blob_key(&m.sha256)));
        }
        let mut out = RenderedIndex {
            date: crate::model::rfc3339(now),
            // brew has no notion of validity; this only paces the pipeline's
            // own refresh (a run republishes once half of it has passed).
            valid_until: crate::model::rfc3339(now + time::Duration::days(7)),
            packages: self.entries.len(),
            ..RenderedIndex::default()
        };
        let mut artifacts: Vec<String> = self.entries.iter().map(|(m, _)| blob_key(&m.sha256)).collect();
        // The flat names the rewrite in front of the store resolves are
        // referenced too: retention removes a name from its table once no
        // generation within the grace period lists the bottle (without it,
        // the table would only grow: CloudFront's holds 5 MB).
        artifacts.extend(self.entries.iter().map(|(m, _)| format!("bottles/{}", m.filename())));
        artifacts.sort();
        artifacts.dedup();
        out.artifacts = artifacts;
        let mut immutable = std::collections::BTreeMap::new();
        let mut by_hash = |bytes: Vec<u8>| {
            let sha = crate::digest::sha256_hex(&bytes);
            let key = by_hash_key(&sha);
            immutable.entry(key.clone()).or_insert(bytes);
            key
        };

        // 1. Image indexes, one per formula version, entries by ref name.
        let mut images: BTreeMap<(String, String), Vec<&BrewMetadata>> = BTreeMap::new();
        for (m, _) in &self.entries {
            images.entry((naming::image_name(&m.formula), m.version())).or_default().push(m);
        }
        for ((image, reference), mut bottles) in images {
            bottles.sort_by_key(|m| m.ref_name());
            let manifests: Vec<serde_json::Value> = bottles.iter().filter_map(|m| m.descriptor.clone()).collect();
            if manifests.is_empty() {
                continue;
            }
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_INDEX,
                "manifests": manifests,
            });
            let key = by_hash(serde_json::to_vec_pretty(&index)?);
            let note = Some(format!("{image} {reference}: {} bottles", bottles.len()));
            for at in [
                format!("bottles/{image}/manifests/{reference}"),
                format!("v2/homebrew/core/{image}/manifests/{reference}"),
            ] {
                out.plan.push(PlanEntry { note: note.clone(), unordered: true, ..PlanEntry::public(&at, &key) });
            }
        }

        // 2. The flat names: what serve and the rewrite in front of S3 map
        // HOMEBREW_BOTTLE_DOMAIN requests through.
        let hashes: BTreeMap<String, &str> =
            self.entries.iter().map(|(m, _)| (m.filename(), m.sha256.as_str())).collect();
        let key = by_hash(serde_json::to_vec_pretty(&hashes)?);
        out.plan.push(PlanEntry {
            note: Some(format!("{} bottles", hashes.len())),
            edge_names: Some("bottles/".into()),
            ..PlanEntry::public(BOTTLES_HASH, &key)
        });

        // 3. The API files, only once every bottle they reference is here.
        let fresh = if fresh { self.snapshot.as_ref() } else { None };
        let api: Vec<Compressed> = match fresh {
            Some(s) => s
                .files
                .iter()
                .map(|f| Compressed {
                    path: format!("api/{}", f.name),
                    of_sha256: f.checksums.sha256.clone(),
                    key: f.key.clone(),
                    checksums: f.checksums.clone(),
                })
                .collect(),
            // The live generation's, as long as their bytes are still there.
            None => self.reuse.iter().filter(|c| c.path.starts_with("api/")).cloned().collect(),
        };
        // The marker (the first API file) goes last: while it is missing,
        // the next run republishes.
        let order = |c: &Compressed| {
            let name = c.path.strip_prefix("api/").unwrap_or(&c.path);
            match self.api_files.iter().position(|f| f == name) {
                Some(0) => usize::MAX,
                Some(i) => i,
                None => usize::MAX - 1,
            }
        };
        let mut ordered: Vec<&Compressed> = api.iter().collect();
        ordered.sort_by_key(|c| order(c));
        for c in ordered {
            out.plan.push(PlanEntry { note: Some(c.of_sha256.clone()), ..PlanEntry::public(&c.path, &c.key) });
        }
        out.index_files = out
            .plan
            .iter()
            .filter_map(|p| match &p.from {
                crate::repository::ObjectRef::Public(key) => Some(key.clone()),
                _ => None,
            })
            .collect();
        out.index_files.sort();
        out.index_files.dedup();
        out.compressed = api;
        out.immutable = immutable.into_iter().collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMMUTABLE: Caching = Caching::Immutable;
    const SHORT: Caching = Caching::Short;

    #[test]
    fn the_layout_says_what_each_file_is() {
        for (key, content_type, caching) in [
            ("bottles/python@3.13-3.13.1_1.arm64_sonoma.bottle.1.tar.gz", "application/gzip", IMMUTABLE),
            ("bottles/python/3.13/manifests/3.13.1_1-1", OCI_IMAGE_INDEX, SHORT),
            ("v2/homebrew/core/wget/manifests/1.25.0", OCI_IMAGE_INDEX, SHORT),
            (
                "v2/homebrew/core/wget/blobs/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "application/octet-stream",
                IMMUTABLE,
            ),
            ("api/formula.jws.json", "application/json", SHORT),
            ("api/internal/packages.arm64_sonoma.jws.json", "application/json", SHORT),
            ("api/internal/executables.txt", "text/plain; charset=utf-8", SHORT),
            ("bottles_hash.json", "application/json", SHORT),
            ("index.html", "text/html; charset=utf-8", SHORT),
        ] {
            assert_eq!(BrewLayout.meta(key), ObjectMeta { content_type, caching }, "{key}");
        }
    }

    fn bottle(formula: &str, tag: &str, sha: char) -> BrewMetadata {
        BrewMetadata {
            formula: formula.into(),
            pkg_version: "1.0_1".into(),
            tag: tag.into(),
            rebuild: 0,
            cellar: ":any".into(),
            sha256: sha.to_string().repeat(64),
            descriptor: Some(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "annotations": {
                    "org.opencontainers.image.ref.name": format!("1.0_1.{tag}"),
                    "sh.brew.bottle.digest": sha.to_string().repeat(64),
                    "sh.brew.tab": "{}",
                }
            })),
        }
    }

    fn mirror() -> BrewRepository {
        let config: config::HomebrewConfig = serde_norway::from_str(
            "api_url: https://formulae.brew.sh/api\nregistry_url: https://ghcr.io/v2/homebrew/core\n\
             formulae: all\ntags: [arm64_sonoma, arm64_sequoia]\nbase_url: https://m.example/brew\n",
        )
        .unwrap();
        BrewRepository { name: "brew".into(), config }
    }

    fn entry(m: &BrewMetadata) -> crate::model::PackageEntry {
        let mut e: crate::model::PackageEntry = serde_json::from_value(serde_json::json!({
            "package_id": "x", "package_name": m.formula, "version": m.version(), "architecture": m.tag,
            "bottle": m, "filename": blob_key(&m.sha256), "size": 3, "md5": "", "sha1": "", "sha256": m.sha256,
            "source_type": "homebrew", "source_url": "u", "processed_timestamp": "t",
        }))
        .unwrap();
        e.metadata = crate::model::EntryMetadata::Brew(m.clone());
        e
    }

    fn api_snapshot(bottles: &[BrewMetadata]) -> Vec<u8> {
        let files = ["formula.jws.json", "internal/packages.arm64_sonoma.jws.json"]
            .iter()
            .map(|name| ApiFile {
                name: name.to_string(),
                key: by_hash_key(&"c".repeat(64)),
                checksums: crate::digest::Checksums {
                    size: 1,
                    md5: String::new(),
                    sha1: String::new(),
                    sha256: "c".repeat(64),
                },
            })
            .collect();
        let bottles = bottles.iter().map(|b| BrewMetadata { descriptor: None, ..b.clone() }).collect();
        serde_json::to_vec(&ApiSnapshot { files, bottles }).unwrap()
    }

    #[test]
    fn both_of_brews_names_map_to_the_one_stored_blob() {
        let a = "a".repeat(64);
        let flat = |name: &str| (name == "openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz").then(|| a.clone());
        let blob = Some(format!("blobs/sha256/{a}"));
        assert_eq!(rewrite("bottles/openssl%403-3.5.2.arm64_sonoma.bottle.tar.gz", flat), blob);
        assert_eq!(rewrite("bottles/openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz", flat), blob);
        assert_eq!(rewrite(&format!("v2/homebrew/core/openssl/3/blobs/sha256:{a}"), |_| None), blob);
        assert_eq!(rewrite(&format!("v2/homebrew/core/openssl/3/blobs/sha256%3A{a}"), |_| None), blob);
        for untouched in [
            "bottles/wget-1.0.arm64_sonoma.bottle.tar.gz",
            "bottles/openssl/3/manifests/3.5.2",
            "v2/homebrew/core/openssl/3/manifests/3.5.2",
            "v2/homebrew/core/wget/blobs/sha256:ABC",
            "bottles/..%2Fx.tar.gz",
            "api/formula.jws.json",
            "bottles_hash.json",
        ] {
            assert_eq!(rewrite(untouched, flat), None, "{untouched}");
        }
    }

    #[test]
    fn a_bottle_is_checked_against_its_candidate_and_keyed_by_digest() {
        let repo = mirror();
        let m = bottle("openssl@3", "arm64_sonoma", 'a');
        let candidate = Candidate {
            package: m.formula.clone(),
            version: m.version(),
            architecture: m.tag.clone(),
            source_type: crate::model::SourceType::Homebrew,
            url: "https://ghcr.io/v2/homebrew/core/openssl/3/blobs/sha256:aa".into(),
            expected_size: None,
            expected_sha256: Some(m.sha256.clone()),
            companions: Vec::new(),
            pub_date: None,
            notes: None,
            latest: None,
            metadata: Some(crate::model::EntryMetadata::Brew(m.clone())),
        };
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("b");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0]).unwrap();
        let d = repo.describe_artifact(&candidate, &gz).unwrap();
        assert_eq!(
            (d.name.as_str(), d.version.as_str(), d.architecture.as_str()),
            ("openssl@3", "1.0_1", "arm64_sonoma")
        );
        assert_eq!(d.key, blob_key(&m.sha256));

        let text = dir.path().join("t");
        std::fs::write(&text, b"<html>").unwrap();
        let e = repo.describe_artifact(&candidate, &text).unwrap_err().to_string();
        assert!(e.contains("not a gzip stream"), "{e}");
        let no_entry = Candidate {
            metadata: Some(crate::model::EntryMetadata::Brew(BrewMetadata { descriptor: None, ..m.clone() })),
            ..candidate.clone()
        };
        let e = repo.describe_artifact(&no_entry, &gz).unwrap_err().to_string();
        assert!(e.contains("image index has no entry"), "{e}");
        let other_tag = Candidate { architecture: "sonoma".into(), ..candidate.clone() };
        assert!(repo.describe_artifact(&other_tag, &gz).is_err());
        let bare = Candidate { metadata: None, ..candidate };
        assert!(repo.describe_artifact(&bare, &gz).unwrap_err().to_string().contains("no bottle metadata"));
    }

    #[test]
    fn the_api_waits_for_every_bottle_it_references_and_goes_last() {
        let repo = mirror();
        // Two tags sharing one blob, and a bottle not recorded yet.
        let (sonoma, sequoia, late) =
            (bottle("hello", "arm64_sonoma", 'a'), bottle("hello", "arm64_sequoia", 'a'), bottle("wget", "all", 'b'));
        let snapshot = api_snapshot(&[sonoma.clone(), sequoia.clone(), late.clone()]);
        let now = time::macros::datetime!(2026-11-29 12:00 UTC);

        let render = |entries: &[&BrewMetadata], reuse: Vec<Compressed>| {
            let mut b = repo.index_builder_with(reuse, Some(snapshot.clone())).unwrap();
            for m in entries {
                b.add(entry(m));
            }
            b.finish(now).unwrap()
        };
        let keys = |r: &RenderedIndex| r.plan.iter().map(|p| p.key.clone()).collect::<Vec<_>>();

        let partial = render(&[&sonoma, &sequoia], Vec::new());
        let planned = keys(&partial);
        assert!(!planned.iter().any(|k| k.starts_with("api/")), "{planned:?}");
        assert!(planned.contains(&"bottles/hello/manifests/1.0_1".to_owned()));
        assert!(planned.contains(&"v2/homebrew/core/hello/manifests/1.0_1".to_owned()));
        // The live generation's API files stay while the new ones wait.
        let live = Compressed {
            path: "api/formula.jws.json".into(),
            of_sha256: "d".repeat(64),
            key: by_hash_key(&"d".repeat(64)),
            checksums: crate::digest::Checksums {
                size: 1,
                md5: String::new(),
                sha1: String::new(),
                sha256: "d".repeat(64),
            },
        };
        let kept = render(&[&sonoma, &sequoia], vec![live.clone()]);
        assert_eq!(kept.compressed, [live]);

        let full = render(&[&sonoma, &sequoia, &late], Vec::new());
        let planned = keys(&full);
        assert_eq!(planned.last().map(String::as_str), Some("api/formula.jws.json"), "the marker goes last");
        let first_api = planned.iter().position(|k| k.starts_with("api/")).unwrap();
        assert!(planned[..first_api].iter().any(|k| k == BOTTLES_HASH));
        assert!(planned[first_api..].iter().all(|k| k.starts_with("api/")), "{planned:?}");
        assert_eq!(full.compressed.len(), 2);
        // bottles_hash.json: both names, one digest.
        let hashes_key = match &full.plan.iter().find(|p| p.key == BOTTLES_HASH).unwrap().from {
            crate::repository::ObjectRef::Public(k) => k.clone(),
            other => panic!("{other:?}"),
        };
        let bytes = &full.immutable.iter().find(|(k, _)| *k == hashes_key).unwrap().1;
        let hashes: BTreeMap<String, String> = serde_json::from_slice(bytes).unwrap();
        assert_eq!(hashes[&sonoma.filename()], hashes[&sequoia.filename()]);
        assert_eq!(hashes.len(), 3);
        // The image index lists the recorded bottles' entries, as brew reads them.
        let index_key = match &full.plan.iter().find(|p| p.key == "bottles/hello/manifests/1.0_1").unwrap().from {
            crate::repository::ObjectRef::Public(k) => k.clone(),
            other => panic!("{other:?}"),
        };
        let index: serde_json::Value =
            serde_json::from_slice(&full.immutable.iter().find(|(k, _)| *k == index_key).unwrap().1).unwrap();
        let refs: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap())
            .collect();
        assert_eq!(refs, ["1.0_1.arm64_sequoia", "1.0_1.arm64_sonoma"]);
    }

    #[test]
    fn a_bottle_names_its_file_as_brew_does() {
        let m = BrewMetadata {
            formula: "libxml++".into(),
            pkg_version: naming::pkg_version("5.4.0", 1),
            tag: "all".into(),
            rebuild: 2,
            cellar: ":any".into(),
            sha256: "a".repeat(64),
            descriptor: None,
        };
        assert_eq!(m.filename(), "libxml++-5.4.0_1.all.bottle.2.tar.gz");
    }
}
