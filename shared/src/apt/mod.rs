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

use crate::config::{RepositoryConfig, check_package_name};
use crate::model::Candidate;
use crate::repository::{ArtifactDescription, Compressed, IndexBuilder, RepositoryFormat};
use crate::sign::SigningKey;
use crate::version;
use anyhow::{Context as _, anyhow, bail};
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

/// The APT format of one suite, signed with `key`. Only rendering needs the
/// key; steps that never render (and so never hold the secret) pass `None`.
pub struct AptRepository {
    pub config: RepositoryConfig,
    pub key: Option<Arc<SigningKey>>,
}

impl RepositoryFormat for AptRepository {
    fn describe_artifact(&self, candidate: &Candidate, path: &Path) -> anyhow::Result<ArtifactDescription> {
        let control = crate::deb::read_control(path).with_context(|| candidate.url.clone())?;
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
        if version::compare(&version, &candidate.version) != std::cmp::Ordering::Equal {
            bail!(
                "{}: the package's Version is {version:?}, but upstream announced {:?}",
                candidate.url,
                candidate.version
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
        Ok(ArtifactDescription { name, version, architecture, control, key })
    }

    fn published_marker(&self) -> Option<String> {
        Some(format!("dists/{}/InRelease", self.config.suite))
    }

    fn index_builder(&self, reuse: Vec<Compressed>) -> anyhow::Result<Box<dyn IndexBuilder>> {
        let key = self.key.clone().ok_or_else(|| anyhow!("no signing key: this process cannot render the index"))?;
        Ok(Box::new(index::AptIndexBuilder::new(self.config.clone(), key, reuse)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_keys() {
        assert_eq!(pool_key("main", "kiro", "0.7.45", "amd64"), "pool/main/k/kiro/kiro_0.7.45_amd64.deb");
        assert_eq!(pool_key("main", "libfoo", "1:2.0-1", "arm64"), "pool/main/libf/libfoo/libfoo_2.0-1_arm64.deb");
    }
}
