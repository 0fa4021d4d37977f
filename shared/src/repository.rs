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
}

impl PlanEntry {
    pub fn public(key: &str, from: &str) -> PlanEntry {
        PlanEntry { key: key.to_owned(), from: ObjectRef::Public(from.to_owned()), optional: false, note: None }
    }
    pub fn inline(key: &str, from: ObjectRef) -> PlanEntry {
        PlanEntry { key: key.to_owned(), from, optional: false, note: None }
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
    /// The public object whose absence means the repository is not (or no
    /// longer) published, e.g. APT's InRelease: its loss makes a run republish.
    fn published_marker(&self) -> Option<String> {
        None
    }
}

/// One generation of an index in the making: every store entry is added once,
/// in any order, then `finish` renders and signs.
pub trait IndexBuilder: Send {
    fn add(&mut self, entry: PackageEntry);
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
}
