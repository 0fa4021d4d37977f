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
use crate::repository::{ArtifactDescription, Compressed, IndexBuilder, RepositoryFormat};
use anyhow::bail;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

impl BrewMetadata {
    /// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`, unencoded.
    pub fn filename(&self) -> String {
        naming::bottle_filename(&self.formula, &self.pkg_version, &self.tag, self.rebuild)
    }
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
        let (content_type, caching) = if in_dir("blobs") && name.starts_with("sha256:") {
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
/// What it decides today: the layout of its files and the marker whose
/// absence means it is not published. Reading a bottle and rendering the
/// mirror's generation (bottle names, manifests, the API files last) are
/// not written yet: a run of a Homebrew repository fails on them with an
/// error that says so, and nothing is written.
pub struct BrewRepository {
    /// The repository's name in `repositories.yaml`.
    pub name: String,
    pub config: config::HomebrewConfig,
}

impl BrewRepository {
    fn not_yet(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "repository {} (format homebrew): {what} is not implemented yet; this pkgrelay can load and check a \
             Homebrew mirror's configuration but cannot run it",
            self.name
        )
    }
}

impl RepositoryFormat for BrewRepository {
    fn describe_artifact(&self, candidate: &Candidate, _path: &Path) -> anyhow::Result<ArtifactDescription> {
        bail!(self.not_yet(&format!("reading the bottle of {}", candidate.package_id())))
    }

    fn index_builder(&self, _reuse: Vec<Compressed>) -> anyhow::Result<Box<dyn IndexBuilder>> {
        bail!(self.not_yet("rendering the mirror"))
    }

    fn object_meta(&self, key: &str) -> ObjectMeta {
        BrewLayout.meta(key)
    }

    /// The first API file: brew learns of the mirror's bottles from the API
    /// files, which are published last, so its absence means the mirror is
    /// not (or no longer) published.
    fn published_marker(&self) -> Option<String> {
        self.config.all_api_files().first().map(|f| format!("api/{f}"))
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

    #[test]
    fn a_bottle_names_its_file_as_brew_does() {
        let m = BrewMetadata {
            formula: "libxml++".into(),
            pkg_version: naming::pkg_version("5.4.0", 1),
            tag: "all".into(),
            rebuild: 2,
            cellar: ":any".into(),
            sha256: "a".repeat(64),
        };
        assert_eq!(m.filename(), "libxml++-5.4.0_1.all.bottle.2.tar.gz");
    }
}
