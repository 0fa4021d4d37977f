//! The APT repository format: pool layout, Packages, Release, signatures and the
//! root `index.html`, as one [`RepositoryFormat`].
//!
//! Everything here is pure: it turns store entries into bytes and a publish plan.
//! Writing those bytes is the steps' business.

pub mod compress;
pub mod config_package;
pub mod html;
mod index;
pub mod packages;
pub mod release;
pub mod verify;

use crate::blob::{Caching, ObjectLayout, ObjectMeta};
use crate::config::{RepositoryConfig, check_package_name};
use crate::deb::ControlParagraph;
use crate::model::{Candidate, EntryMetadata};
use crate::repository::{ArtifactDescription, Compressed, IndexBuilder, RepositoryFormat};
use crate::sign::SigningKey;
use crate::version;
use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Pool key of a package: `pool/<component>/<prefix>/<name>/<name>_<version>_<arch>.deb`,
/// with `lib` packages under four-letter prefixes as in the Debian archive and
/// the epoch left out of the file name.
pub fn pool_key(component: &str, name: &str, version: &str, architecture: &str) -> String {
    let prefix = if name.starts_with("lib") && name.len() > 3 { &name[..4] } else { &name[..1] };
    let version = version::without_epoch(version);
    format!("pool/{component}/{prefix}/{name}/{name}_{version}_{architecture}.deb")
}

/// What an APT entry keeps of its .deb: the control paragraph exactly as
/// read, which its Packages stanza repeats (Depends, Installed-Size, …).
/// Stored as the paragraph itself under the record's `control` key, as
/// records were before the metadata belonged to a format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AptMetadata {
    pub control: ControlParagraph,
}

/// What each file of an APT repository is, from its name: content-addressed
/// files (the pool, by-hash) never change, everything else is replaced by the
/// next publish (InRelease, Release, Packages*, index.html, the root copy,
/// the keyring).
pub struct AptLayout;

fn is_by_hash(key: &str) -> bool {
    key.contains("/by-hash/") || key.starts_with("by-hash/")
}

impl ObjectLayout for AptLayout {
    fn meta(&self, key: &str) -> ObjectMeta {
        let name = key.rsplit('/').next().unwrap_or(key);
        let content_type = if is_by_hash(key) {
            // Content-addressed copies of any index file: the name says nothing.
            "application/octet-stream"
        } else if name.ends_with(".deb") {
            "application/vnd.debian.binary-package"
        } else if name == "Release.gpg" {
            "application/pgp-signature"
        } else if name.ends_with(".gpg") {
            "application/pgp-keys"
        } else if name.ends_with(".gz") {
            "application/gzip"
        } else if name.ends_with(".xz") {
            "application/x-xz"
        } else if matches!(name, "InRelease" | "Release" | "Packages") {
            "text/plain; charset=utf-8"
        } else if name.ends_with(".html") {
            "text/html; charset=utf-8"
        } else if name.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let caching = if key.starts_with("pool/") || is_by_hash(key) { Caching::Immutable } else { Caching::Short };
        ObjectMeta { content_type, caching }
    }
}

/// The APT format of one suite, signed with `key`. Only rendering needs the
/// key; steps that never render (and so never hold the secret) pass `None`.
pub struct AptRepository {
    pub config: RepositoryConfig,
    pub key: Option<Arc<SigningKey>>,
    /// Retention: package name -> how many of its newest versions the index
    /// lists per architecture (`keep` in its package file).
    pub keep: std::collections::BTreeMap<String, usize>,
}

impl RepositoryFormat for AptRepository {
    fn describe_artifact(&self, candidate: &Candidate, path: &Path) -> anyhow::Result<ArtifactDescription> {
        // The whole file, as dpkg would check it before unpacking (member
        // order, one control file, a data member that decodes to its end):
        // the pool is write-once, so what is accepted here is kept for good.
        let control =
            crate::deb::check_package(path, &self.config.limits().deb()).with_context(|| candidate.url.clone())?;
        self.describe_control(candidate, control)
    }

    /// A staged .deb check-sources checked whole already, within the same
    /// caps as [`AptRepository::describe_artifact`] would: only the fields
    /// are left to check against the candidate.
    fn describe_checked(
        &self,
        candidate: &Candidate,
        checked: &crate::deb::Checked,
    ) -> Option<anyhow::Result<ArtifactDescription>> {
        if !checked.within(&self.config.limits().deb()) {
            return None;
        }
        Some(self.describe_control(candidate, checked.control.clone()))
    }

    fn object_meta(&self, key: &str) -> ObjectMeta {
        AptLayout.meta(key)
    }

    fn published_marker(&self) -> Option<String> {
        Some(format!("dists/{}/InRelease", self.config.suite))
    }

    fn index_builder(&self, reuse: Vec<Compressed>) -> anyhow::Result<Box<dyn IndexBuilder>> {
        let key = self.key.clone().ok_or_else(|| anyhow!("no signing key: this process cannot render the index"))?;
        Ok(Box::new(index::AptIndexBuilder::new(self.config.clone(), key, reuse, self.keep.clone())))
    }
}

impl AptRepository {
    /// The checks of a .deb's control paragraph against its candidate, and its pool key.
    fn describe_control(
        &self,
        candidate: &Candidate,
        control: crate::deb::ControlParagraph,
    ) -> anyhow::Result<ArtifactDescription> {
        let field = |name: &str| control.get(name).unwrap_or_default().trim().to_owned();
        let (name, version, architecture) = (field("Package"), field("Version"), field("Architecture"));
        check_package_name(&name).map_err(|e| anyhow!("{}: control field Package: {e}", candidate.url))?;
        version::parse(&version).with_context(|| format!("{}: control field Version", candidate.url))?;
        if architecture.is_empty() || !architecture.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("{}: control field Architecture {architecture:?} is not a Debian architecture", candidate.url);
        }
        if name != candidate.package {
            bail!(
                "{}: the package calls itself {name:?}, but it was announced as {:?}",
                candidate.url,
                candidate.package
            );
        }
        // The .deb's own version is what the index, the pool file name and the
        // store id use (apt and dpkg must agree after install). Upstream's
        // announcement only has to be the same release: equal, or equal plus
        // the vendor's build revision (see `version::is_announced`). A
        // `latest_url` candidate announces nothing: the file alone says.
        if candidate.version_known()
            && !version::is_announced(&version, &candidate.version)
                .with_context(|| format!("{}: the version upstream announced", candidate.url))?
        {
            bail!(
                "{}: the package's Version is {version:?}, but upstream announced {:?} (accepted: that version, \
                 or that version plus a Debian revision such as {:?})",
                candidate.url,
                candidate.version,
                format!("{}-1", candidate.version)
            );
        }
        if architecture != candidate.architecture {
            bail!(
                "{}: the package's Architecture is {architecture:?}, but it was announced for {:?}",
                candidate.url,
                candidate.architecture
            );
        }
        let key = pool_key(&self.config.components[0], &name, &version, &architecture);
        Ok(ArtifactDescription {
            name,
            version,
            architecture,
            metadata: EntryMetadata::Apt(AptMetadata { control }),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::deb::{ControlParagraph, DebBuilder};
    use crate::model::SourceType;

    fn repository() -> AptRepository {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        AptRepository {
            config: crate::config::Config::load_repository(&dir).unwrap(),
            key: None,
            keep: Default::default(),
        }
    }

    fn candidate(version: &str, url: &str) -> Candidate {
        Candidate {
            package: "kiro".into(),
            version: version.into(),
            architecture: "amd64".into(),
            source_type: SourceType::ExternalDownload,
            url: url.into(),
            expected_size: None,
            expected_sha256: None,
            companions: vec![],
            pub_date: None,
            notes: None,
            latest: None,
            metadata: None,
        }
    }

    fn deb_file(version: &str) -> tempfile::NamedTempFile {
        let fields = [("Package", "kiro"), ("Version", version), ("Architecture", "amd64"), ("Description", "k\n k")];
        let deb = DebBuilder::new(ControlParagraph {
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
        .build()
        .unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), deb).unwrap();
        file
    }

    const OLD_SHAPE: &str = "https://prod.download.desktop.kiro.dev/releases/202511041200--distro-linux-x64-deb/202511041200-distro-linux-x64.deb";
    const NEW_SHAPE: &str = "https://prod.download.desktop.kiro.dev/releases/stable/linux-x64/signed/0.6.0/deb/kiro-ide-0.6.0-stable-linux-x64.deb";

    /// A vendor build revision is accepted, and the .deb's own version names
    /// the entry and the pool file (whatever the URL looks like).
    #[test]
    fn a_vendor_revision_of_the_announced_version_is_the_package_s_own_version() {
        let file = deb_file("0.6.0-1762210000");
        for url in [OLD_SHAPE, NEW_SHAPE] {
            let d = repository().describe_artifact(&candidate("0.6.0", url), file.path()).unwrap();
            assert_eq!(d.version, "0.6.0-1762210000");
            assert_eq!(d.key, "pool/main/k/kiro/kiro_0.6.0-1762210000_amd64.deb");
        }
    }

    #[test]
    fn any_other_version_is_refused_naming_both() {
        for (own, announced) in [("0.6.1-1762210000", "0.6.0"), ("0.6.0", "0.6.0-1"), ("1:0.6.0-1", "0.6.0")] {
            let file = deb_file(own);
            let e = repository().describe_artifact(&candidate(announced, NEW_SHAPE), file.path()).unwrap_err();
            let e = format!("{e:#}");
            assert!(e.contains(&format!("{own:?}")) && e.contains(&format!("announced {announced:?}")), "{e}");
            assert!(e.contains(NEW_SHAPE), "{e}");
        }
    }

    /// A `latest_url` candidate announces no version: the file's own is taken.
    #[test]
    fn a_file_without_an_announced_version_names_itself() {
        let file = deb_file("2.21.1");
        let mut c = candidate(crate::model::LATEST, "https://example.com/latest/kiro.deb");
        c.latest = Some(Default::default());
        let d = repository().describe_artifact(&c, file.path()).unwrap();
        assert_eq!((d.version.as_str(), d.key.as_str()), ("2.21.1", "pool/main/k/kiro/kiro_2.21.1_amd64.deb"));
    }

    #[test]
    fn content_types() {
        for (key, expected) in [
            ("pool/main/k/kiro/kiro_0.7.45_amd64.deb", "application/vnd.debian.binary-package"),
            ("kiro-repo.deb", "application/vnd.debian.binary-package"),
            ("dists/stable/main/binary-amd64/Packages.gz", "application/gzip"),
            ("dists/stable/main/binary-amd64/Packages.xz", "application/x-xz"),
            ("dists/stable/main/binary-amd64/Packages", "text/plain; charset=utf-8"),
            ("dists/stable/InRelease", "text/plain; charset=utf-8"),
            ("dists/stable/Release", "text/plain; charset=utf-8"),
            ("dists/stable/Release.gpg", "application/pgp-signature"),
            ("kiro-archive-keyring.gpg", "application/pgp-keys"),
            ("index.html", "text/html; charset=utf-8"),
            ("dists/stable/main/binary-amd64/by-hash/SHA256/ab12", "application/octet-stream"),
            ("pool/main/k/kiro/kiro_0.7.45_amd64.sig", "application/octet-stream"),
        ] {
            assert_eq!(AptLayout.meta(key).content_type, expected, "{key}");
        }
    }

    #[test]
    fn cache_controls() {
        const IMMUTABLE: &str = "public, max-age=31536000, immutable";
        const SHORT: &str = "public, max-age=60";
        let bucket = crate::blob::BucketLayout::single(Arc::new(AptLayout));
        for (key, expected) in [
            ("pool/main/k/kiro/kiro_0.7.45_amd64.deb", IMMUTABLE),
            ("pool/main/k/kiro/kiro_0.7.45_amd64.pem", IMMUTABLE),
            ("dists/stable/main/binary-amd64/by-hash/SHA256/ab12", IMMUTABLE),
            ("dists/stable/InRelease", SHORT),
            ("dists/stable/Release", SHORT),
            ("dists/stable/Release.gpg", SHORT),
            ("dists/stable/main/binary-amd64/Packages.xz", SHORT),
            ("index.html", SHORT),
            ("kiro-repo.deb", SHORT),
            ("kiro-archive-keyring.gpg", SHORT),
            ("staging/kiro-repo_1.0_all.deb", "no-store"),
            ("generations/stable/3/Release", "no-store"),
            ("runs/candidates/ab.json", "no-store"),
        ] {
            assert_eq!(bucket.meta(key).caching.header(), expected, "{key}");
        }
        assert_eq!(bucket.meta("generations/stable/3/manifest.json").content_type, "application/json");
    }

    #[test]
    fn pool_keys() {
        assert_eq!(pool_key("main", "kiro", "0.7.45", "amd64"), "pool/main/k/kiro/kiro_0.7.45_amd64.deb");
        assert_eq!(pool_key("main", "libfoo", "1:2.0-1", "arm64"), "pool/main/libf/libfoo/libfoo_2.0-1_arm64.deb");
    }
}
