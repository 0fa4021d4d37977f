//! `pkgrelay brew import-hash`: seed a Homebrew mirror's store from the hash
//! file of an earlier mirror (`bottles_hash.json`: flat bottle file name →
//! SHA-256, the design documents' record of what is mirrored), so that the
//! first `pkgrelay sync` downloads none of the bottles that mirror already
//! holds.
//!
//! The earlier mirror kept each bottle under its flat name,
//! `<prefix>/bottles/<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`
//! (DESIGN.md, "Homebrew mirror layout"; some stored `@` as `%40`, which is
//! looked for too). For each entry of the hash file this:
//!
//! 1. checks the name's shape and the digest's, and finds the bottle in the
//!    current plan (`formula.json` for the mirror's formulae and tags): a
//!    bottle the API announces with another SHA-256 (rebuilt since) is
//!    refused, one the plan does not hold (a formula or tag not mirrored, an
//!    older version) is left alone and counted;
//! 2. fetches the bottle's entry of the registry's image index, which the
//!    mirror's own image indexes are made of (brew reads `sh.brew.tab` from
//!    it) and whose `sh.brew.bottle.size` gives the bottle's size;
//! 3. reads the stored object through once ([`ObjectStore::adopt`]): its
//!    SHA-256 must be the hash file's and the API's, its size the
//!    registry's; only then does it get its name `blobs/sha256/<hex>` — a
//!    hard link in a directory, a server-side copy on S3 — the flat name
//!    staying as it was;
//! 4. records the entry exactly as download-package and record-metadata
//!    would have (in batches, one store transaction each), which raises the
//!    repository's recorded mark: the next sync finds every imported bottle
//!    recorded, downloads none of them, and publishes.
//!
//! Each entry stands alone: a refusal (named by file, with the reason) holds
//! back no other, and nothing is deleted or overwritten, so a refused
//! bottle is simply downloaded by the next sync. Running it again is cheap
//! for what is recorded already (no object is read).

use crate::blob::BlobError;
use crate::brew::config::HomebrewConfig;
use crate::brew::{BrewMetadata, api::PlannedBottle, blob_key, naming};
use crate::model::{EntryMetadata, PackageEntry, SourceType, package_id, rfc3339};
use crate::sources::homebrew::{blob_url, descriptor_of, image_index};
use crate::steps::{Context, RecordOutcome, StagedArtifact, record_batch};
use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// What one entry of the hash file came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Checked, stored by digest and recorded.
    Imported,
    /// Recorded with this digest already (an earlier import or sync).
    AlreadyRecorded,
    /// Not a bottle of the current plan: left where it is, not recorded.
    NotPlanned,
    /// Refused, with the reason; nothing was lost or overwritten.
    Refused(String),
}

/// The outcome of every entry, by file name.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: BTreeMap<String, Outcome>,
    /// Bytes read to check the imported bottles.
    pub bytes_checked: u64,
}

impl Report {
    pub fn count(&self, what: fn(&Outcome) -> bool) -> usize {
        self.entries.values().filter(|o| what(o)).count()
    }

    pub fn refused(&self) -> impl Iterator<Item = (&String, &String)> {
        self.entries.iter().filter_map(|(f, o)| match o {
            Outcome::Refused(why) => Some((f, why)),
            _ => None,
        })
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not_planned: Vec<&String> =
            self.entries.iter().filter(|(_, o)| **o == Outcome::NotPlanned).map(|(n, _)| n).collect();
        for (file, why) in self.refused() {
            writeln!(f, "refused {file}: {why}")?;
        }
        if !not_planned.is_empty() {
            let shown: Vec<&str> = not_planned.iter().take(5).map(|s| s.as_str()).collect();
            let more = not_planned.len().saturating_sub(shown.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            writeln!(
                f,
                "not in the current plan (formula or tag not mirrored, or not the version formula.json lists), \
                 left as they are: {}{more}",
                shown.join(", ")
            )?;
        }
        writeln!(
            f,
            "{} entries: {} imported ({:.1} MiB checked), {} recorded already, {} not in the plan, {} refused",
            self.entries.len(),
            self.count(|o| *o == Outcome::Imported),
            self.bytes_checked as f64 / (1024.0 * 1024.0),
            self.count(|o| *o == Outcome::AlreadyRecorded),
            not_planned.len(),
            self.count(|o| matches!(o, Outcome::Refused(_))),
        )
    }
}

/// Where the plan comes from: the mirror's `api_url`, or a `formula.json`
/// on disk (an offline import; it must be the one the next sync will see,
/// or the bottles it names differently are downloaded again).
pub enum PlanFrom {
    Api,
    File(PathBuf),
}

/// Read a hash file: a JSON object of file name → SHA-256. A value that is
/// not a string is kept, to be refused by name.
pub fn read_hash_file(bytes: &[u8], what: &str) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).with_context(|| format!("{what} is not JSON"))?;
    match doc {
        serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
        _ => bail!("{what}: expected an object of bottle file name → SHA-256, as bottles_hash.json"),
    }
}

/// Check a flat bottle file name's shape,
/// `<name>-<pkg_version>.<tag>.bottle[.<rebuild>].tar.gz`, without the
/// plan (which alone says where the name ends and the version begins).
fn check_shape(file: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("not a bottle file name ({why})"));
    if file.contains('/') || file.contains('\\') || file.starts_with('.') {
        return bad("a path, not a file name");
    }
    let Some(stem) = file.strip_suffix(".tar.gz") else { return bad("no .tar.gz") };
    let stem = match stem.rsplit_once(".bottle") {
        Some((head, "")) => head,
        Some((head, rebuild)) if rebuild.strip_prefix('.').is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n > 0)) => {
            head
        }
        _ => return bad("no .bottle[.<rebuild>] before .tar.gz"),
    };
    let Some((name_version, tag)) = stem.rsplit_once('.') else { return bad("no tag") };
    crate::brew::api::check_tag(tag).map_err(|e| format!("not a bottle file name: {e}"))?;
    if !name_version.contains('-') {
        return bad("no -<version>");
    }
    Ok(())
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The registry's image indexes fetched so far, by (formula, reference):
/// one request per formula version, however many of its bottles are
/// imported (a failure is kept too, and refuses them all by the same reason).
type Indexes = tokio::sync::Mutex<HashMap<(String, String), Result<std::sync::Arc<Vec<u8>>, String>>>;

/// One entry checked and placed, waiting to be recorded.
struct Placed {
    file: String,
    entry: PackageEntry,
}

/// Import `hashes` into the mirror of `ctx` (a Homebrew repository's
/// context), checking `jobs` objects at once.
pub async fn import(
    ctx: &Context,
    mirror: &HomebrewConfig,
    hashes: BTreeMap<String, serde_json::Value>,
    plan_from: PlanFrom,
    jobs: usize,
) -> anyhow::Result<Report> {
    let plan = match plan_from {
        PlanFrom::Api => crate::sources::homebrew::fetch_plan(&ctx.fetcher, mirror, &ctx.work_dir).await?,
        PlanFrom::File(path) => {
            let what = path.display().to_string();
            crate::sources::homebrew::plan_file(mirror, path, &what).await?
        }
    };
    tracing::info!(bottles = plan.bottles.len(), formulae = plan.formulae, "planned from formula.json");
    let planned: HashMap<String, PlannedBottle> = plan.bottles.into_iter().map(|b| (b.filename(), b)).collect();

    let mut report = Report::default();
    let mut work = Vec::new();
    for (file, value) in hashes {
        let outcome = match (check_shape(&file), value.as_str()) {
            (Err(e), _) => Some(Outcome::Refused(e)),
            (_, None) => Some(Outcome::Refused(format!("its value {value} is not a SHA-256 string"))),
            (_, Some(sha)) if !is_sha256(sha) => {
                Some(Outcome::Refused(format!("{sha:?} is not a SHA-256 (64 lowercase hex digits)")))
            }
            (Ok(()), Some(sha)) => match planned.get(&file) {
                None => Some(Outcome::NotPlanned),
                Some(b) if b.sha256 != sha => Some(Outcome::Refused(format!(
                    "the hash file says {sha}, formula.json announces {} (rebuilt upstream since): left for sync \
                     to download",
                    b.sha256
                ))),
                Some(b) => {
                    work.push((file.clone(), b.clone()));
                    None
                }
            },
        };
        if let Some(o) = outcome {
            report.entries.insert(file, o);
        }
    }

    // Image indexes are per formula version: each fetched once.
    let indexes: Indexes = Default::default();
    let mut placed = futures_util::stream::iter(work)
        .map(|(file, b)| {
            let indexes = &indexes;
            async move {
                let result = place(ctx, mirror, &b, indexes).await;
                (file, result)
            }
        })
        .buffer_unordered(jobs.max(1));

    let mut batch: Vec<Placed> = Vec::new();
    while let Some((file, result)) = placed.next().await {
        match result {
            Ok(Some(p)) => {
                report.bytes_checked += p.entry.checksums.size;
                batch.push(p);
                if batch.len() >= 256 {
                    record(ctx, std::mem::take(&mut batch), &mut report).await;
                }
            }
            Ok(None) => {
                report.entries.insert(file, Outcome::AlreadyRecorded);
            }
            // Reported with the others by the caller (the report), not logged twice.
            Err(why) => {
                report.entries.insert(file, Outcome::Refused(why));
            }
        }
    }
    record(ctx, batch, &mut report).await;
    Ok(report)
}

/// Record a batch of placed bottles, one store transaction.
async fn record(ctx: &Context, batch: Vec<Placed>, report: &mut Report) {
    if batch.is_empty() {
        return;
    }
    let mut files = Vec::with_capacity(batch.len());
    let mut staged = Vec::with_capacity(batch.len());
    for p in batch {
        match StagedArtifact::new(ctx, p.entry).await {
            Ok(s) => {
                files.push(p.file);
                staged.push(s);
            }
            Err(e) => {
                report.entries.insert(p.file, Outcome::Refused(format!("not recorded: {e}")));
            }
        }
    }
    for (file, outcome) in files.into_iter().zip(record_batch(ctx, staged).await) {
        let outcome = match outcome {
            Ok(r) if r.outcome == RecordOutcome::Inserted => Outcome::Imported,
            Ok(_) => Outcome::AlreadyRecorded,
            Err(e) => Outcome::Refused(format!("not recorded: {e:#}")),
        };
        report.entries.insert(file, outcome);
    }
}

/// Check one planned bottle's stored object and give it its blob name;
/// `None` when it is recorded already. An error is the reason it is refused.
async fn place(
    ctx: &Context,
    mirror: &HomebrewConfig,
    b: &PlannedBottle,
    indexes: &Indexes,
) -> Result<Option<Placed>, String> {
    let m = b.metadata();
    let id = package_id(&m.formula, &m.version(), &m.tag);
    match ctx.store.get(&id).await {
        Ok(Some(known)) if known.checksums.sha256 == m.sha256 => return Ok(None),
        Ok(Some(known)) => {
            return Err(format!("{id} is recorded already with SHA-256 {}; nothing changed", known.checksums.sha256));
        }
        Ok(None) => {}
        Err(e) => return Err(format!("the store: {e}")),
    }

    // The registry's entry for it, without which brew could not install it
    // from the mirror (image index, sh.brew.tab).
    let index = {
        let key = (m.formula.clone(), m.version());
        let mut cache = indexes.lock().await;
        match cache.get(&key) {
            Some(known) => known.clone(),
            None => {
                let got = image_index(&ctx.fetcher, mirror, &m.formula, &m.version())
                    .await
                    .map(std::sync::Arc::new)
                    .map_err(|e| format!("the registry's image index: {e:#}"));
                cache.insert(key, got.clone());
                got
            }
        }
    }?;
    let descriptor = descriptor_of(&index, &m).map_err(|e| format!("the registry's image index: {e}"))?;
    let size = match descriptor["annotations"]["sh.brew.bottle.size"].as_str() {
        Some(s) => Some(s.parse::<u64>().map_err(|_| format!("the registry gives its size as {s:?}"))?),
        None => None,
    };

    // The earlier mirror's object: the literal name, else `%40`/`%2B` as
    // some mirrors stored them; or the blob itself, placed by an earlier
    // run that could not record it.
    let file = m.filename();
    let blob = blob_key(&m.sha256);
    let mut from = None;
    for key in [format!("bottles/{file}"), format!("bottles/{}", naming::url_encode(&file)), blob.clone()] {
        match ctx.public.exists(&key).await {
            Ok(true) => {
                from = Some(key);
                break;
            }
            Ok(false) => {}
            Err(e) => return Err(format!("{key}: {e}")),
        }
    }
    let Some(from) = from else {
        return Err(format!("no object bottles/{file} (nor {blob}) in the mirror's store"));
    };
    let adopted = match ctx.public.adopt(&from, &blob, &m.sha256, size).await {
        Ok(a) => a,
        Err(BlobError::Conflict { key, existing, .. }) => {
            return Err(format!("{key} holds other bytes already (SHA-256 {existing}); nothing was overwritten"));
        }
        Err(e) => return Err(format!("{from}: {e}")),
    };
    if !adopted.placed {
        let c = &adopted.checksums;
        let mut why = Vec::new();
        if c.sha256 != m.sha256 {
            why.push(format!("its SHA-256 is {}, the hash file and formula.json say {}", c.sha256, m.sha256));
        }
        if let Some(size) = size.filter(|s| *s != c.size) {
            why.push(format!("it has {} bytes, the registry says {size}", c.size));
        }
        return Err(format!("{from}: {}; left as it is, sync downloads the bottle", why.join("; ")));
    }

    let entry = PackageEntry {
        package_id: id,
        package_name: m.formula.clone(),
        version: m.version(),
        architecture: m.tag.clone(),
        config: ctx.package(&m.formula).map(|p| p.fields()).unwrap_or_default(),
        filename: blob,
        checksums: adopted.checksums,
        source_type: SourceType::Homebrew,
        source_url: blob_url(&mirror.registry_url, &m.formula, &m.sha256),
        announced_version: None,
        companions: Vec::new(),
        pub_date: None,
        notes: None,
        processed_timestamp: rfc3339(time::OffsetDateTime::now_utc()),
        metadata: EntryMetadata::Brew(BrewMetadata { descriptor: Some(descriptor), ..m }),
    };
    Ok(Some(Placed { file, entry }))
}

/// The mirror settings of `ctx`'s repository, or why it has none.
pub fn mirror_of(ctx: &Context) -> anyhow::Result<&HomebrewConfig> {
    ctx.config.homebrew.get(&ctx.repository.name).ok_or_else(|| {
        anyhow!("repository {} is not a Homebrew mirror (format: homebrew in repositories.yaml)", ctx.repository.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottle_file_names_are_checked_for_shape() {
        for ok in [
            "wget-1.25.0.arm64_sonoma.bottle.tar.gz",
            "openssl@3-3.5.2.arm64_sonoma.bottle.tar.gz",
            "ca-certificates-2025-01-01_1.all.bottle.2.tar.gz",
            "libxml++-5.4.0_1.x86_64_linux.bottle.1.tar.gz",
        ] {
            assert_eq!(check_shape(ok), Ok(()), "{ok}");
        }
        for bad in [
            "wget-1.25.0.arm64_sonoma.tar.gz",
            "wget-1.25.0.arm64_sonoma.bottle.0.tar.gz",
            "wget-1.25.0.arm64_sonoma.bottle.json",
            "../wget-1.25.0.arm64_sonoma.bottle.tar.gz",
            "dir/wget-1.25.0.arm64_sonoma.bottle.tar.gz",
            "wget.arm64_sonoma.bottle.tar.gz",
            "wget-1.0.Arm64.bottle.tar.gz",
            "README",
        ] {
            assert!(check_shape(bad).is_err(), "{bad}");
        }
        assert!(is_sha256(&"a".repeat(64)) && !is_sha256(&"A".repeat(64)) && !is_sha256("abc"));
    }
}
