//! The APT repository format: pool layout, Packages, Release, signatures and the
//! root `index.html`, as one [`RepositoryFormat`].
//!
//! Everything here is pure: it turns store entries into bytes and a publish plan.
//! Writing those bytes is the steps' business.

pub mod config_package;
pub mod html;
pub mod packages;
pub mod release;
pub mod verify;

use crate::config::{RepositoryConfig, check_package_name};
use crate::digest::Checksums;
use crate::model::{Candidate, PackageEntry, rfc3339};
use crate::repository::{ArtifactDescription, ObjectRef, PlanEntry, RenderedIndex, RepositoryFormat};
use crate::sign::SigningKey;
use crate::version;
use anyhow::{Context as _, anyhow, bail};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;

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

/// xz preset for Packages.xz: apt reads any level; see bench/README.md for the
/// measurements behind the choice (higher presets cost far more time than they save bytes).
const XZ_PRESET: u32 = 6;

/// gzip level for Packages.gz: 6 gives the size of 9 (within 0.1 %, see
/// bench/README.md) in about 85 % of the time.
const GZIP_LEVEL: u32 = 6;

fn gzip(data: &[u8]) -> Vec<u8> {
    // No file name and mtime 0 in the header: the same Packages gives the same bytes.
    let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), XZ_PRESET);
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

impl AptRepository {
    fn dists(&self) -> String {
        format!("dists/{}", self.config.suite)
    }

    /// The newest entry of `name` by Debian version.
    fn newest<'a>(entries: &'a [PackageEntry], name: &str) -> Option<&'a PackageEntry> {
        entries.iter().filter(|e| e.package_name == name).max_by(|a, b| version::compare(&a.version, &b.version))
    }

    fn listing(entries: &[PackageEntry]) -> Vec<html::Listed> {
        let mut names: Vec<&str> = entries.iter().map(|e| e.package_name.as_str()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                let newest = Self::newest(entries, name)?;
                let mut archs: Vec<&str> = entries
                    .iter()
                    .filter(|e| e.package_name == name && e.version == newest.version)
                    .map(|e| e.architecture.as_str())
                    .collect();
                archs.sort();
                let summary = newest
                    .control
                    .get("Description")
                    .or(newest.config.description.as_deref())
                    .and_then(|d| d.lines().next())
                    .unwrap_or("")
                    .to_owned();
                Some(html::Listed {
                    name: name.to_owned(),
                    version: newest.version.clone(),
                    architectures: archs.join(" "),
                    summary,
                })
            })
            .collect()
    }
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
        Some(format!("{}/InRelease", self.dists()))
    }

    fn render(&self, entries: &[PackageEntry], now: OffsetDateTime) -> anyhow::Result<RenderedIndex> {
        let cfg = &self.config;
        let key = self.key.as_deref().ok_or_else(|| anyhow!("no signing key: this process cannot render the index"))?;
        let dists = self.dists();
        let now = now.replace_nanosecond(0)?;
        let valid_until = now + cfg.validity();
        let mut out = RenderedIndex { date: rfc3339(now), valid_until: rfc3339(valid_until), ..Default::default() };

        out.plan.push(PlanEntry::inline(&cfg.keyring_name, ObjectRef::bytes(&key.public_keyring()?)));

        let mut listed = Vec::new();
        for component in &cfg.components {
            // Only the first component holds packages for now; the others are
            // published empty so that source lists naming them keep working.
            let in_component: &[PackageEntry] = if component == &cfg.components[0] { entries } else { &[] };
            for arch in &cfg.architectures {
                let text = packages::render_packages(in_component, arch);
                let dir = format!("{component}/binary-{arch}");
                for (name, bytes) in [
                    ("Packages", text.clone().into_bytes()),
                    ("Packages.gz", gzip(text.as_bytes())),
                    ("Packages.xz", xz(text.as_bytes())),
                ] {
                    let checksums = Checksums::of(&bytes);
                    let by_hash = format!("{dists}/{dir}/by-hash/SHA256/{}", checksums.sha256);
                    out.plan.push(PlanEntry::public(&format!("{dists}/{dir}/{name}"), &by_hash));
                    out.immutable.push((by_hash, bytes));
                    listed.push(release::IndexFile { path: format!("{dir}/{name}"), checksums });
                }
            }
        }

        let release = release::render_release(cfg, now, valid_until, &listed).into_bytes();
        let release_gpg = key.detached_sign(&release)?;
        let inrelease = key.clearsign(&release)?;
        for (name, bytes) in [("Release", release), ("Release.gpg", release_gpg), ("InRelease", inrelease)] {
            let text = String::from_utf8(bytes).context("signed Release files are text")?;
            out.plan.push(PlanEntry::inline(&format!("{dists}/{name}"), ObjectRef::Text(text)));
        }

        let html =
            html::render_index_html(cfg, &key.fingerprint(), &Self::listing(entries), &release::release_date(now));
        out.plan.push(PlanEntry::inline("index.html", ObjectRef::Text(html)));

        if let Some(name) = &cfg.convenience_copy
            && let Some(newest) = Self::newest(entries, name)
        {
            out.plan.push(PlanEntry {
                key: format!("{name}.deb"),
                from: ObjectRef::Public(newest.filename.clone()),
                optional: true,
                note: Some(format!("{name} {}", newest.version)),
            });
        }
        out.packages = entries.len();
        Ok(out)
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

    #[test]
    fn compression_is_deterministic() {
        let text = b"Package: kiro\nVersion: 1\n";
        assert_eq!(gzip(text), gzip(text));
        assert_eq!(xz(text), xz(text));
    }
}
