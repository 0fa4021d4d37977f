//! What a repository format hands the pipeline: bytes to store and a publish
//! plan. The steps know nothing of APT; the APT format (and later a Homebrew
//! or media format) implements [`RepositoryFormat`].

use crate::digest::Checksums;
use crate::model::{Candidate, EntryMetadata, PackageEntry};
use serde::{Deserialize, Serialize};
use std::path::Path;
use time::OffsetDateTime;

/// Where a published object's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectRef {
    /// An object already in the public store (a by-hash file, a pool file).
    Public(String),
    /// Small per-generation text kept in the manifest itself until publish
    /// (Release, Release.gpg, InRelease, index.html): no extra object writes.
    Text(String),
    /// The same for small binary content (the keyring), base64-encoded.
    Base64(String),
}

impl ObjectRef {
    pub fn bytes(data: &[u8]) -> ObjectRef {
        use base64::Engine as _;
        ObjectRef::Base64(base64::engine::general_purpose::STANDARD.encode(data))
    }

    /// The inline content, if this is inline.
    pub fn inline(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match self {
            ObjectRef::Public(_) => None,
            ObjectRef::Text(t) => Some(t.clone().into_bytes()),
            ObjectRef::Base64(b) => base64::engine::general_purpose::STANDARD.decode(b).ok(),
        }
    }
}

/// One object that publish writes, in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// Public key to write.
    pub key: String,
    pub from: ObjectRef,
    /// A missing source is a warning, not a failure (the convenience copy).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// What the object is, for the log (`kiro-repo 1.1`); publish says how it
    /// changed from the previous generation's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The object is a JSON map of file name → SHA-256 (a Homebrew mirror's
    /// `bottles_hash.json`) whose names, under this directory (`bottles/`),
    /// a rewrite in front of the public store resolves: publish hands the
    /// names that changed to the context's [`crate::blob::EdgeNames`] before
    /// writing the object, so that every later entry of the plan (the API
    /// files) only names what resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_names: Option<String>,
    /// Its order among the `unordered` entries next to it does not matter
    /// (a mirror's image indexes): publish writes such a run several at a
    /// time, and the next ordered entry only once all of them are written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unordered: bool,
}

impl PlanEntry {
    pub fn public(key: &str, from: &str) -> PlanEntry {
        PlanEntry {
            key: key.to_owned(),
            from: ObjectRef::Public(from.to_owned()),
            optional: false,
            note: None,
            edge_names: None,
            unordered: false,
        }
    }
    pub fn inline(key: &str, from: ObjectRef) -> PlanEntry {
        PlanEntry { key: key.to_owned(), from, optional: false, note: None, edge_names: None, unordered: false }
    }
}

/// A compressed index file as a generation published it: the next generation
/// reuses it, without compressing again, when the uncompressed text has not
/// changed (`of_sha256`). Kept in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compressed {
    /// Path in the index (`main/binary-amd64/Packages.xz`).
    pub path: String,
    /// SHA256 of the uncompressed text it was made from.
    pub of_sha256: String,
    /// The content-addressed public object holding it.
    pub key: String,
    pub checksums: Checksums,
}

/// A rendered generation of the repository index.
#[derive(Debug, Default)]
pub struct RenderedIndex {
    /// Content-addressed public objects, write-once (APT's by-hash files).
    /// Reused compressed files are not here: they exist already.
    pub immutable: Vec<(String, Vec<u8>)>,
    /// Every compressed index file of this generation, new or reused.
    pub compressed: Vec<Compressed>,
    /// Publish order.
    pub plan: Vec<PlanEntry>,
    /// RFC 3339 date of the index and end of its validity.
    pub date: String,
    pub valid_until: String,
    pub packages: usize,
    /// The artifacts this generation's index names (APT: each listed
    /// version's pool file and companions; Homebrew: each listed bottle's
    /// blob): public keys retention must keep while the generation is
    /// within its grace period ([`crate::retention`]).
    pub artifacts: Vec<String>,
    /// The content-addressed index files this generation publishes from
    /// (by-hash keys, new or reused): kept the same way.
    pub index_files: Vec<String>,
}

/// What a format reads from a downloaded artifact: its identity, its own
/// metadata (in the format's terms), and the key it is published under.
#[derive(Debug, Clone)]
pub struct ArtifactDescription {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub metadata: EntryMetadata,
    pub key: String,
}

/// A kind of repository (APT today).
pub trait RepositoryFormat: Send + Sync {
    /// Read the artifact at `path` (downloaded for `candidate`), check that it is
    /// what the candidate announced, and name its public key. Errors here mean
    /// the artifact is bad, not that the system is.
    fn describe_artifact(&self, candidate: &Candidate, path: &Path) -> anyhow::Result<ArtifactDescription>;
    /// [`RepositoryFormat::describe_artifact`] of a .deb whose bytes were
    /// already checked whole ([`crate::deb::check_package_hashed`]: a staged
    /// file, by check-sources in this process); the caller has made sure the
    /// file still has those bytes. `None`: this format does not take such a
    /// check (other caps, or not a .deb format), and the file is described
    /// from its path as usual.
    fn describe_checked(
        &self,
        _candidate: &Candidate,
        _checked: &crate::deb::Checked,
    ) -> Option<anyhow::Result<ArtifactDescription>> {
        None
    }
    /// Start a generation of the index. `reuse`: compressed files of the live
    /// generation that are still in the public store.
    fn index_builder(&self, reuse: Vec<Compressed>) -> anyhow::Result<Box<dyn IndexBuilder>>;
    /// A private object that build-index reads and hands to
    /// [`RepositoryFormat::index_builder_with`]: what a generation depends on
    /// beyond the store's entries (a Homebrew mirror: the API files its last
    /// check-sources fetched). `None` (APT): nothing.
    fn generation_input(&self) -> Option<String> {
        None
    }
    /// [`RepositoryFormat::index_builder`], given the bytes of
    /// [`RepositoryFormat::generation_input`] (`None`: not written yet).
    fn index_builder_with(
        &self,
        reuse: Vec<Compressed>,
        input: Option<Vec<u8>>,
    ) -> anyhow::Result<Box<dyn IndexBuilder>> {
        let _ = input;
        self.index_builder(reuse)
    }
    /// Render a generation from entries already in memory (tests and tools;
    /// build-index streams the store into [`RepositoryFormat::index_builder`]).
    fn render(&self, entries: &[PackageEntry], now: OffsetDateTime) -> anyhow::Result<RenderedIndex> {
        let mut builder = self.index_builder(Vec::new())?;
        for entry in entries {
            builder.add(entry.clone());
        }
        builder.finish(now)
    }
    /// The `Content-Type` and caching of the public object at `key` (a key
    /// of this format's layout: pool files, index files, the root page).
    fn object_meta(&self, key: &str) -> crate::blob::ObjectMeta;
    /// Where clients reach the repository, when the format's own settings
    /// say (a Homebrew mirror's `base_url`); `None`: `repository.yaml`'s.
    fn base_url(&self) -> Option<String> {
        None
    }
    /// The grace period of this repository's retention when the format's
    /// own settings give one (a Homebrew mirror's `retention.grace`);
    /// `None`: `repository.yaml`'s.
    fn retention_grace(&self) -> Option<std::time::Duration> {
        None
    }
    /// The public object whose absence means the repository is not (or no
    /// longer) published, e.g. APT's InRelease: its loss makes a run republish.
    fn published_marker(&self) -> Option<String> {
        None
    }

    /// Whether a key this format references is a name that a rewrite in
    /// front of the public store resolves ([`crate::blob::EdgeNames`]: a
    /// mirror's flat bottle names), not an object: retention removes it from
    /// the rewrite's table rather than from the store.
    fn is_edge_name(&self, _key: &str) -> bool {
        false
    }
}

/// One generation of an index in the making: every store entry is added once,
/// in any order, then `finish` renders and signs.
pub trait IndexBuilder: Send {
    fn add(&mut self, entry: PackageEntry);
    /// What the live generation references ([`Manifest::references`]),
    /// before any entry is added: a format whose listing follows an
    /// upstream file it may keep from the live generation (a mirror's API
    /// files) lists what the live one listed. Default: not needed.
    fn live_references(&mut self, _references: &std::collections::HashSet<String>) {}
    fn finish(self: Box<Self>, now: OffsetDateTime) -> anyhow::Result<RenderedIndex>;
}

/// What build-index leaves for publish: the generation and its plan. Stored as
/// JSON in the private store (one object per generation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub suite: String,
    pub generation: u64,
    pub date: String,
    pub valid_until: String,
    pub packages: usize,
    /// Write every entry, even those the live generation already has (forced
    /// rebuilds repair whatever was changed behind our back).
    #[serde(default)]
    pub full: bool,
    pub plan: Vec<PlanEntry>,
    /// The compressed index files, for the next generation to reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compressed: Vec<Compressed>,
    /// The suite's `recorded` mark when the build read the store.
    #[serde(default)]
    pub recorded: u64,
    /// Every public key this generation references that retention collects
    /// once no generation within the grace period does (artifacts and
    /// by-hash files; see [`crate::retention`]), sorted. Empty in
    /// manifests written before retention: nothing is learnt from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// The run that built it had no failures (no source failed, no
    /// candidate failed): only then may its publish delete anything.
    /// Absent (older manifests): false.
    #[serde(default)]
    pub clean: bool,
}
