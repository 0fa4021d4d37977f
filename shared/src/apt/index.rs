//! One generation of the APT index, built from a stream of store entries.
//!
//! Each entry is turned into its stanza as the store hands it over, and
//! dropped: the store is never in memory as entries (the SQLite store decodes
//! on a thread of its own while it reads the next rows). Then every
//! `binary-<arch>` directory is sorted, joined, compressed and digested on a
//! thread of its own. A Packages whose SHA256 the live generation already
//! published keeps that generation's .gz and .xz: a forced rebuild, or the
//! re-signing that keeps Valid-Until fresh, compresses nothing that has not
//! changed.

use super::packages::{self, Stanzas};
use super::{compress, html, release};
use crate::config::{IndexCompression, RepositoryConfig};
use crate::digest::Checksums;
use crate::model::{PackageEntry, rfc3339};
use crate::repository::{Compressed, IndexBuilder, ObjectRef, PlanEntry, RenderedIndex};
use crate::sign::SigningKey;
use crate::version::VersionKey;
use anyhow::{Context as _, anyhow};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

/// The newest version of one package, for the root page and the convenience copy.
struct Newest {
    version: VersionKey,
    architectures: BTreeSet<String>,
    /// From the entry of the first of `architectures` (by name).
    summary: String,
    filename: String,
}

impl Newest {
    fn of(entry: &PackageEntry, version: VersionKey) -> Newest {
        let summary = entry
            .apt()
            .and_then(|m| m.control.get("Description"))
            .or(entry.config.description.as_deref())
            .and_then(|d| d.lines().next())
            .unwrap_or("")
            .to_owned();
        Newest {
            version,
            architectures: BTreeSet::from([entry.architecture.clone()]),
            summary,
            filename: entry.filename.clone(),
        }
    }
}

/// What the builder keeps of the entries.
#[derive(Default)]
struct Collected {
    /// Stanzas by architecture (`all` too).
    stanzas: HashMap<String, Stanzas>,
    entries: usize,
    newest: BTreeMap<String, Newest>,
    /// Pool keys of the entries listed (and of their companions).
    artifacts: Vec<String>,
}

impl Collected {
    fn add(&mut self, entry: PackageEntry) {
        self.entries += 1;
        // Referenced even when its architecture is not one the suite lists
        // (it then appears nowhere): retention collects what `keep` leaves
        // out, not what a configuration change hides.
        self.artifacts.push(entry.filename.clone());
        self.artifacts.extend(entry.companions.iter().map(|c| c.key.clone()));
        if !self.stanzas.contains_key(&entry.architecture) {
            self.stanzas.insert(entry.architecture.clone(), Stanzas::default());
        }
        let set = self.stanzas.get_mut(&entry.architecture).expect("inserted above");
        let version = set.push(&entry);
        match self.newest.get_mut(&entry.package_name) {
            None => {
                self.newest.insert(entry.package_name.clone(), Newest::of(&entry, version.clone()));
            }
            Some(newest) => match version.cmp(&newest.version) {
                std::cmp::Ordering::Greater => *newest = Newest::of(&entry, version.clone()),
                std::cmp::Ordering::Equal => {
                    let first = newest.architectures.first().is_none_or(|a| entry.architecture < *a);
                    newest.architectures.insert(entry.architecture.clone());
                    if first {
                        let architectures = std::mem::take(&mut newest.architectures);
                        *newest = Newest { architectures, ..Newest::of(&entry, version.clone()) };
                    }
                }
                std::cmp::Ordering::Less => {}
            },
        }
    }
}

pub(super) struct AptIndexBuilder {
    config: RepositoryConfig,
    key: Arc<SigningKey>,
    /// The live generation's compressed files by (path, SHA256 of the text).
    reuse: HashMap<(String, String), Compressed>,
    collected: Collected,
    retention: Retention,
}

impl AptIndexBuilder {
    pub(super) fn new(
        config: RepositoryConfig,
        key: Arc<SigningKey>,
        reuse: Vec<Compressed>,
        keep: BTreeMap<String, usize>,
    ) -> AptIndexBuilder {
        let reuse = reuse.into_iter().map(|c| ((c.path.clone(), c.of_sha256.clone()), c)).collect();
        AptIndexBuilder { config, key, reuse, collected: Collected::default(), retention: Retention::new(keep) }
    }
}

/// `keep: N`: of a package's entries, only the newest N per architecture (by
/// Debian order) reach the index. The store streams entries in no particular
/// order, so the entries of a package with a `keep` wait here, at most N+1 per
/// (package, architecture), until the scan ends; every other entry goes
/// straight to its stanza.
struct Retention {
    keep: BTreeMap<String, usize>,
    held: HashMap<(String, String), Vec<(VersionKey, PackageEntry)>>,
    /// Entries left out of the index.
    pruned: usize,
}

impl Retention {
    fn new(keep: BTreeMap<String, usize>) -> Retention {
        Retention { keep, held: HashMap::new(), pruned: 0 }
    }

    /// The entry back when its package keeps every version, else held.
    fn hold(&mut self, entry: PackageEntry) -> Option<PackageEntry> {
        let Some(&n) = self.keep.get(&entry.package_name) else { return Some(entry) };
        let kept = self.held.entry((entry.package_name.clone(), entry.architecture.clone())).or_default();
        kept.push((VersionKey::new(&entry.version), entry));
        if kept.len() > n {
            let oldest = (0..kept.len()).min_by(|&a, &b| kept[a].0.cmp(&kept[b].0)).expect("not empty");
            kept.swap_remove(oldest);
            self.pruned += 1;
        }
        None
    }

    /// Every held entry that stays in the index.
    fn kept(self) -> (impl Iterator<Item = PackageEntry>, usize) {
        (self.held.into_values().flatten().map(|(_, e)| e), self.pruned)
    }
}

/// One index file of a generation: listed in Release, published at `path`
/// from its by-hash `key`; `bytes` is `None` when a live one is reused.
struct IndexFile {
    path: String,
    checksums: Checksums,
    key: String,
    bytes: Option<Vec<u8>>,
}

/// Packages, Packages.gz and Packages.xz of one directory (`main/binary-amd64`).
fn directory_files(
    dists: &str,
    dir: &str,
    text: String,
    compression: &[IndexCompression],
    reuse: &HashMap<(String, String), Compressed>,
) -> (Vec<IndexFile>, Vec<Compressed>) {
    let by_hash = |c: &Checksums| format!("{dists}/{dir}/by-hash/SHA256/{}", c.sha256);
    let plain = Checksums::of(text.as_bytes());
    let mut files = Vec::with_capacity(3);
    let mut compressed = Vec::with_capacity(2);
    for &kind in compression {
        let path = format!("{dir}/Packages.{}", kind.suffix());
        let (made, bytes) = match reuse.get(&(path.clone(), plain.sha256.clone())) {
            Some(live) => (live.clone(), None),
            None => {
                let bytes = compress::encode(kind, text.as_bytes());
                let checksums = Checksums::of(&bytes);
                let key = by_hash(&checksums);
                (Compressed { path, of_sha256: plain.sha256.clone(), key, checksums }, Some(bytes))
            }
        };
        files.push(IndexFile {
            path: made.path.clone(),
            checksums: made.checksums.clone(),
            key: made.key.clone(),
            bytes,
        });
        compressed.push(made);
    }
    let key = by_hash(&plain);
    files.insert(
        0,
        IndexFile { path: format!("{dir}/Packages"), checksums: plain, key, bytes: Some(text.into_bytes()) },
    );
    (files, compressed)
}

impl IndexBuilder for AptIndexBuilder {
    fn add(&mut self, entry: PackageEntry) {
        if let Some(entry) = self.retention.hold(entry) {
            self.collected.add(entry);
        }
    }

    fn finish(self: Box<Self>, now: OffsetDateTime) -> anyhow::Result<RenderedIndex> {
        let AptIndexBuilder { config, key, reuse, mut collected, retention } = *self;
        let (kept, pruned) = retention.kept();
        for entry in kept {
            collected.add(entry);
        }
        if pruned > 0 {
            tracing::info!(pruned, "older versions left out of the index (keep)");
        }
        let cfg = &config;
        let dists = format!("dists/{}", cfg.suite);
        let now = now.replace_nanosecond(0)?;
        let valid_until = now + cfg.validity();
        let mut out = RenderedIndex { date: rfc3339(now), valid_until: rfc3339(valid_until), ..Default::default() };
        out.packages = collected.entries;
        out.artifacts = std::mem::take(&mut collected.artifacts);

        out.plan.push(PlanEntry::inline(&cfg.keyring_name, ObjectRef::bytes(&key.public_keyring()?)));

        // Only the first component holds packages for now; the others are
        // published empty so that source lists naming them keep working. Each
        // directory's thread owns its architecture's stanzas; `all` ones are shared.
        let all = collected.stanzas.remove("all").unwrap_or_default();
        let mut directories: Vec<(String, Stanzas, bool)> = Vec::new();
        for (i, component) in cfg.components.iter().enumerate() {
            for arch in &cfg.architectures {
                let own = if i == 0 {
                    collected.stanzas.remove(arch.as_str()).unwrap_or_default()
                } else {
                    Stanzas::default()
                };
                directories.push((format!("{component}/binary-{arch}"), own, i == 0));
            }
        }
        // Entries of architectures the suite does not list appear nowhere.
        drop(std::mem::take(&mut collected.stanzas));
        let all = &all;
        let reuse = &reuse;
        let per_directory: Vec<(Vec<IndexFile>, Vec<Compressed>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = directories
                .into_iter()
                .map(|(dir, own, holds_packages)| {
                    let dists = &dists;
                    let empty = Stanzas::default();
                    scope.spawn(move || {
                        let all = if holds_packages { all } else { &empty };
                        directory_files(dists, &dir, packages::assemble(own, all), &cfg.compression, reuse)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("an index thread panicked")))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;

        let mut listed = Vec::new();
        for (files, compressed) in per_directory {
            for file in files {
                out.plan.push(PlanEntry::public(&format!("{dists}/{}", file.path), &file.key));
                out.index_files.push(file.key.clone());
                if let Some(bytes) = file.bytes {
                    out.immutable.push((file.key, bytes));
                }
                listed.push(release::IndexFile { path: file.path, checksums: file.checksums });
            }
            out.compressed.extend(compressed);
        }

        let release = release::render_release(cfg, now, valid_until, &listed).into_bytes();
        let release_gpg = key.detached_sign(&release)?;
        let inrelease = key.clearsign(&release)?;
        for (name, bytes) in [("Release", release), ("Release.gpg", release_gpg), ("InRelease", inrelease)] {
            let text = String::from_utf8(bytes).context("signed Release files are text")?;
            out.plan.push(PlanEntry::inline(&format!("{dists}/{name}"), ObjectRef::Text(text)));
        }

        let listing: Vec<html::Listed> = collected
            .newest
            .iter()
            .map(|(name, n)| html::Listed {
                name: name.clone(),
                version: n.version.as_str().to_owned(),
                architectures: n.architectures.iter().map(String::as_str).collect::<Vec<_>>().join(" "),
                summary: n.summary.clone(),
            })
            .collect();
        let html = html::render_index_html(cfg, &key.fingerprint(), &listing, &release::release_date(now));
        out.plan.push(PlanEntry::inline("index.html", ObjectRef::Text(html)));

        if let Some(name) = &cfg.convenience_copy
            && let Some(newest) = collected.newest.get(name)
        {
            out.plan.push(PlanEntry {
                optional: true,
                note: Some(format!("{name} {}", newest.version.as_str())),
                ..PlanEntry::public(&format!("{name}.deb"), &newest.filename)
            });
        }
        Ok(out)
    }
}
