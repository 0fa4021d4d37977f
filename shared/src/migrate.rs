//! The one-time migration of stores written by the earlier single-package
//! system.
//!
//! That system kept one item per Kiro release, keyed by `version`, with
//! `deb_url`, `certificate_url`, `signature_url`, `pub_date`, `notes`,
//! `processed_timestamp` and sometimes `checksum` (the .deb's SHA256, hex).
//! Only the .deb URL identifies the bytes, so an old item is brought in exactly
//! as the pipeline would bring that release in: it becomes a [`Candidate`] and
//! goes through [`download_package`] and [`record_metadata`].
//!
//! [`run`], in this order:
//! 1. reads every old item ([`LegacyStore::items`]);
//! 2. writes them all to `migration-backup-<UTC time>.jsonl` and reads that file
//!    back, comparing item by item, before anything else;
//! 3. turns every item into a candidate and checks it: one bad item stops the
//!    run before any write, and is named;
//! 4. in a dry run, shows old and new side by side for the first items and stops;
//! 5. migrates in batches, in Debian version order, skipping ids the store
//!    already holds (with the same SHA256 when the old item has one): the first
//!    failure stops the run, the old items untouched;
//! 6. once every item is in the store, deletes the old items in batches.
//!
//! Running it again is safe: what is migrated is skipped, and old items are
//! deleted only when all of them are in the store.

use crate::config::{Config, check_package_name};
use crate::fetch::check_url_allowed;
use crate::model::{Candidate, Companion, ConfigFields, SourceType};
use crate::steps::{Context, download_package, record_metadata};
use crate::version;
use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An old item exactly as stored: attribute name -> value. The backup holds
/// these, so attributes this module does not know are kept too.
pub type RawItem = serde_json::Map<String, Value>;

/// The store of the earlier system.
#[async_trait]
pub trait LegacyStore: Send + Sync {
    /// What it is, for logs and messages ("DynamoDB table releases").
    fn name(&self) -> String;
    /// Every old item, in no particular order.
    async fn items(&self) -> anyhow::Result<Vec<RawItem>>;
    /// Delete the items with these versions (one batch).
    async fn delete(&self, versions: &[String]) -> anyhow::Result<()>;
}

/// One old item, read tolerantly: only `version` and `deb_url` are required;
/// absent, null or empty optional attributes are `None`, numbers are taken as
/// their text, unknown attributes are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LegacyItem {
    pub version: String,
    pub deb_url: String,
    #[serde(default, deserialize_with = "lenient")]
    pub certificate_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub signature_url: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub pub_date: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub notes: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub processed_timestamp: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub checksum: Option<String>,
}

/// The attributes an old item may lack.
const OPTIONAL: [&str; 6] =
    ["certificate_url", "signature_url", "pub_date", "notes", "processed_timestamp", "checksum"];

fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!("expected a string, found {other}")));
        }
    })
}

/// How an old item is named in messages: its version, else its .deb URL,
/// else the whole item.
pub fn describe(raw: &RawItem) -> String {
    match (raw.get("version"), raw.get("deb_url")) {
        (Some(Value::String(v)), _) => format!("old item version {v:?}"),
        (_, Some(Value::String(u))) => format!("old item with deb_url {u:?}"),
        _ => format!("old item {}", Value::Object(raw.clone())),
    }
}

impl LegacyItem {
    /// Read one raw item; an error names the item and the attribute.
    pub fn from_raw(raw: &RawItem) -> anyhow::Result<LegacyItem> {
        for field in ["version", "deb_url"] {
            match raw.get(field) {
                Some(Value::String(s)) if !s.trim().is_empty() => {}
                None | Some(Value::Null) => bail!("{}: no `{field}`", describe(raw)),
                Some(other) => bail!("{}: `{field}` must be a non-empty string, not {other}", describe(raw)),
            }
        }
        for field in OPTIONAL {
            if let Some(v @ (Value::Bool(_) | Value::Array(_) | Value::Object(_))) = raw.get(field) {
                bail!("{}: `{field}` must be a string, not {v}", describe(raw));
            }
        }
        serde_json::from_value(Value::Object(raw.clone())).map_err(|e| anyhow!("{}: {e}", describe(raw)))
    }

    /// The candidate the pipeline would have made of this release.
    pub fn candidate(&self, target: &Target) -> Candidate {
        let companions = [("certificate", "pem", &self.certificate_url), ("signature", "sig", &self.signature_url)]
            .into_iter()
            .filter_map(|(kind, suffix, url)| {
                url.as_ref().map(|url| Companion { kind: kind.into(), url: url.clone(), suffix: suffix.into() })
            })
            .collect();
        Candidate {
            package: target.package.clone(),
            version: self.version.clone(),
            architecture: target.architecture.clone(),
            source_type: SourceType::ExternalDownload,
            url: self.deb_url.clone(),
            expected_size: None,
            expected_sha256: self.checksum.as_ref().map(|c| c.trim().to_ascii_lowercase()),
            companions,
            pub_date: self.pub_date.clone(),
            notes: self.notes.clone(),
            latest: None,
            metadata: None,
        }
    }
}

/// Every field a migrated candidate needs, checked before anything is written.
pub fn check_candidate(c: &Candidate) -> anyhow::Result<()> {
    check_package_name(&c.package).map_err(|e| anyhow!("package: {e}"))?;
    version::parse(&c.version)?;
    if c.architecture.is_empty() || !c.architecture.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-') {
        bail!("architecture {:?} is not a Debian architecture", c.architecture);
    }
    check_url_allowed(&c.url).map_err(|e| anyhow!("deb_url: {e}"))?;
    for companion in &c.companions {
        check_url_allowed(&companion.url).map_err(|e| anyhow!("{} URL: {e}", companion.kind))?;
    }
    if let Some(sha) = &c.expected_sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!("checksum {sha:?} is not a SHA256 (64 hex digits)");
    }
    Ok(())
}

/// The package the old items are releases of, and its architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub package: String,
    pub architecture: String,
}

impl Target {
    /// `package`, or else the one configured `external_download` package; its
    /// first architecture.
    pub fn from_config(config: &Config, package: Option<&str>) -> anyhow::Result<Target> {
        let names = || config.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
        let pkg = match package {
            Some(name) => config
                .package(name)
                .ok_or_else(|| anyhow!("no package {name:?} in {} (configured: {})", config.dir.display(), names()))?,
            None => {
                let mut external =
                    config.packages.iter().filter(|p| p.source.source_type() == SourceType::ExternalDownload);
                match (external.next(), external.next()) {
                    (Some(p), None) => p,
                    (None, _) => bail!("no external_download package is configured; name the package with --package"),
                    (Some(_), Some(_)) => {
                        bail!("several external_download packages are configured; name one with --package")
                    }
                }
            }
        };
        let architecture =
            pkg.architectures().next().ok_or_else(|| anyhow!("package {} has no architecture", pkg.name))?;
        Ok(Target { package: pkg.name.clone(), architecture: architecture.to_owned() })
    }
}

/// What [`run`] is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Show, change nothing (the backup is still written: see [`run`]).
    pub dry_run: bool,
    pub backup_dir: PathBuf,
    /// Items per batch, for migrating and for deleting.
    pub batch_size: usize,
    /// Items shown side by side in a dry run.
    pub show: usize,
    /// The package the old items belong to (default: see [`Target::from_config`]).
    pub package: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub dry_run: bool,
    pub read: usize,
    /// Already in the store: skipped (in a dry run: would be).
    pub skipped: usize,
    /// Downloaded and recorded by this run.
    pub migrated: usize,
    /// Dry run: items that a real run would download and record.
    pub pending: usize,
    pub deleted: usize,
    pub backup: Option<PathBuf>,
    /// Dry run: old and new side by side for the first items.
    pub preview: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for block in &self.preview {
            writeln!(f, "{block}")?;
        }
        if self.dry_run {
            writeln!(f, "dry run: nothing was downloaded, written or deleted")?;
            writeln!(f, "read: {}", self.read)?;
            writeln!(f, "already migrated (would skip): {}", self.skipped)?;
            writeln!(f, "would migrate: {}", self.pending)?;
            writeln!(f, "would delete: {}", self.read)?;
        } else {
            writeln!(f, "read: {}", self.read)?;
            writeln!(f, "skipped (already migrated): {}", self.skipped)?;
            writeln!(f, "migrated: {}", self.migrated)?;
            writeln!(f, "deleted: {}", self.deleted)?;
        }
        match &self.backup {
            Some(path) => writeln!(f, "backup: {}", path.display()),
            None => writeln!(f, "backup: none (nothing to migrate)"),
        }
    }
}

/// One old item on its way.
struct Planned {
    raw: RawItem,
    item: LegacyItem,
    candidate: Candidate,
    /// The store already holds it.
    done: bool,
}

/// Migrate every item of `legacy` into `ctx`'s store (see the module docs).
///
/// A dry run still writes and verifies the backup: that only adds a file,
/// proves before the real run that the backup directory is writable and the
/// items survive the round trip, and leaves a snapshot of what was looked at.
/// It downloads, records and deletes nothing.
pub async fn run(ctx: &Context, legacy: &dyn LegacyStore, opts: &Options) -> anyhow::Result<Report> {
    let target = Target::from_config(&ctx.config, opts.package.as_deref())?;
    let source = legacy.name();
    let raw = legacy.items().await.with_context(|| format!("reading the old items from {source}"))?;
    tracing::info!("read {} old items from {source}", raw.len());
    let mut report = Report { dry_run: opts.dry_run, read: raw.len(), ..Default::default() };
    if raw.is_empty() {
        tracing::info!("nothing to migrate");
        return Ok(report);
    }

    let backup =
        write_backup(&opts.backup_dir, &raw, time::OffsetDateTime::now_utc()).context("backup of the old items")?;
    tracing::info!("backup written and verified: {} items in {}", raw.len(), backup.display());
    report.backup = Some(backup.clone());

    let mut plan = transform(raw, &target)?;
    tracing::info!("checked {} items: all complete, as {} {}", plan.len(), target.package, target.architecture);
    mark_done(ctx, &mut plan).await?;
    report.skipped = plan.iter().filter(|p| p.done).count();

    if opts.dry_run {
        let fields = ctx.config.package(&target.package).map(|p| p.fields()).unwrap_or_default();
        report.pending = plan.len() - report.skipped;
        report.preview = plan.iter().take(opts.show).map(|p| side_by_side(p, &fields)).collect();
        return Ok(report);
    }

    let kept = format!(
        "no old item was deleted and the backup {} is kept; fix the cause and run it again (what is migrated is skipped)",
        backup.display()
    );
    let batch_size = opts.batch_size.max(1);
    let batches = plan.len().div_ceil(batch_size);
    for (n, batch) in plan.chunks(batch_size).enumerate() {
        for p in batch.iter().filter(|p| !p.done) {
            let id = p.candidate.package_id();
            migrate_one(ctx, &p.candidate).await.with_context(|| {
                format!(
                    "migration stopped at {id} ({} migrated by this run, {} already in the store, {} of {} left); {kept}",
                    report.migrated,
                    report.skipped,
                    plan.len() - report.migrated - report.skipped,
                    plan.len()
                )
            })?;
            report.migrated += 1;
            tracing::info!("migrated {id}");
        }
        tracing::info!("batch {}/{batches} done ({} items)", n + 1, batch.len());
    }

    // Every item must be in the store before any old one goes.
    for p in &plan {
        let id = p.candidate.package_id();
        let entry = ctx.store.get(&id).await.with_context(|| format!("checking {id}; {kept}"))?;
        match (entry, &p.candidate.expected_sha256) {
            (Some(e), Some(want)) if !e.checksums.sha256.eq_ignore_ascii_case(want) => {
                bail!("{id} is stored with SHA256 {}, the old item says {want}; {kept}", e.checksums.sha256)
            }
            (Some(_), _) => {}
            (None, _) => bail!("{id} is not in the store after migrating it; {kept}"),
        }
    }
    tracing::info!("verified: all {} items are in the store", plan.len());

    for batch in plan.chunks(batch_size) {
        let versions: Vec<String> = batch.iter().map(|p| p.item.version.clone()).collect();
        legacy.delete(&versions).await.with_context(|| {
            format!(
                "deleting old items from {source} ({} of {} deleted so far; every item is migrated, run it again to finish)",
                report.deleted,
                plan.len()
            )
        })?;
        report.deleted += versions.len();
        tracing::info!("deleted {} old items ({}/{})", versions.len(), report.deleted, plan.len());
    }
    Ok(report)
}

async fn migrate_one(ctx: &Context, candidate: &Candidate) -> anyhow::Result<()> {
    let id = candidate.package_id();
    let what = |e: crate::steps::StepError| anyhow!("{id} from {}: [{}] {e}", candidate.url, e.error_type());
    let staged = download_package(ctx, candidate.clone()).await.map_err(what)?;
    record_metadata(ctx, staged).await.map_err(what)?;
    Ok(())
}

/// Parse, transform and check every item; report every bad one at once.
fn transform(raw: Vec<RawItem>, target: &Target) -> anyhow::Result<Vec<Planned>> {
    let mut plan = Vec::new();
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    let total = raw.len();
    for raw in raw {
        let item = match LegacyItem::from_raw(&raw) {
            Ok(item) => item,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let candidate = item.candidate(target);
        if let Err(e) = check_candidate(&candidate) {
            problems.push(format!("{}: {e:#}", describe(&raw)));
        } else if !ids.insert(candidate.package_id()) {
            problems.push(format!("{}: a second item for {}", describe(&raw), candidate.package_id()));
        }
        plan.push(Planned { raw, item, candidate, done: false });
    }
    if !problems.is_empty() {
        bail!(
            "{} of {} old items cannot be migrated; nothing was written:\n  {}",
            problems.len(),
            total,
            problems.join("\n  ")
        );
    }
    plan.sort_by(|a, b| version::compare(&a.candidate.version, &b.candidate.version));
    Ok(plan)
}

/// Mark what the store already holds; the same id with other bytes than the
/// old item's checksum stops the run before any write.
async fn mark_done(ctx: &Context, plan: &mut [Planned]) -> anyhow::Result<()> {
    for p in plan {
        let id = p.candidate.package_id();
        let Some(entry) = ctx.store.get(&id).await? else { continue };
        match &p.candidate.expected_sha256 {
            Some(want) if !want.eq_ignore_ascii_case(&entry.checksums.sha256) => bail!(
                "{}: the store already holds {id} with SHA256 {}, but the old item's checksum is {want}; nothing was written",
                describe(&p.raw),
                entry.checksums.sha256
            ),
            _ => p.done = true,
        }
    }
    Ok(())
}

/// Old and new of one item, in two columns.
fn side_by_side(p: &Planned, fields: &ConfigFields) -> String {
    let c = &p.candidate;
    let companion =
        |kind: &str| c.companions.iter().find(|x| x.kind == kind).map(|x| format!("{} (.{})", x.url, x.suffix));
    let old = |name: &str| match p.raw.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let mut rows: Vec<(String, Option<String>, String, Option<String>)> = vec![
        ("version".into(), old("version"), "version".into(), Some(c.version.clone())),
        ("deb_url".into(), old("deb_url"), "url".into(), Some(c.url.clone())),
        ("certificate_url".into(), old("certificate_url"), "certificate".into(), companion("certificate")),
        ("signature_url".into(), old("signature_url"), "signature".into(), companion("signature")),
        ("pub_date".into(), old("pub_date"), "pub_date".into(), c.pub_date.clone()),
        ("notes".into(), old("notes"), "notes".into(), c.notes.clone()),
        ("checksum".into(), old("checksum"), "expected SHA256".into(), c.expected_sha256.clone()),
        (
            "processed_timestamp".into(),
            old("processed_timestamp"),
            "processed_timestamp".into(),
            Some("(time of migration)".into()),
        ),
    ];
    let known = |k: &str| k == "version" || k == "deb_url" || OPTIONAL.contains(&k);
    for (name, _) in p.raw.iter().filter(|(k, _)| !known(k)) {
        rows.push((name.clone(), old(name), String::new(), Some("(kept in the backup only)".into())));
    }
    let new_only = [
        ("package", Some(c.package.clone())),
        ("architecture", Some(c.architecture.clone())),
        ("package_id", Some(c.package_id())),
        ("source_type", Some("external_download".into())),
        ("section", fields.section.clone()),
        ("priority", fields.priority.clone()),
        ("maintainer", fields.maintainer.clone()),
        ("homepage", fields.homepage.clone()),
        ("description", fields.description.clone()),
    ];
    for (name, value) in new_only {
        rows.push((String::new(), None, name.into(), value));
    }
    let cell = |name: &str, value: &Option<String>| match (name.is_empty(), value) {
        (true, _) => String::new(),
        (false, Some(v)) => format!("{name}: {}", short(v)),
        (false, None) => format!("{name}: -"),
    };
    let left: Vec<String> = rows.iter().map(|(n, v, _, _)| cell(n, v)).collect();
    let width = left.iter().map(|l| l.chars().count()).max().unwrap_or(0).max(3);
    let status = if p.done { "already migrated: would skip" } else { "would migrate" };
    let mut out = format!("== {} -> {} ({status})\n", p.item.version, c.package_id());
    out += &format!("  {:<width$} | {}\n", "old", "new");
    for (l, (_, _, name, value)) in left.iter().zip(&rows) {
        out += &format!("  {l:<width$} | {}\n", cell(name, value));
    }
    out
}

/// A value on one line, at most 80 characters.
fn short(text: &str) -> String {
    let one_line = text.replace('\n', "\\n");
    if one_line.chars().count() <= 80 {
        one_line
    } else {
        format!("{}…", one_line.chars().take(79).collect::<String>())
    }
}

/// Write every item to a new `migration-backup-<UTC time>.jsonl` in `dir`
/// (never over an existing file), flush it to disk, read it back and compare
/// item by item.
pub fn write_backup(dir: &Path, items: &[RawItem], now: time::OffsetDateTime) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = now.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))?;
    let (path, file) = (0..)
        .map(|n| match n {
            0 => dir.join(format!("migration-backup-{stamp}.jsonl")),
            n => dir.join(format!("migration-backup-{stamp}-{n}.jsonl")),
        })
        .find_map(|path| match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
            result => Some(result.map(|f| (path, f))),
        })
        .expect("an unused name")
        .with_context(|| format!("creating a backup file in {}", dir.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for item in items {
        serde_json::to_writer(&mut out, item)?;
        out.write_all(b"\n")?;
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;

    let back = read_backup(&path)?;
    if back.len() != items.len() {
        bail!("{}: read back {} items, wrote {}", path.display(), back.len(), items.len());
    }
    if let Some((n, item)) = items.iter().zip(&back).enumerate().find_map(|(n, (a, b))| (a != b).then_some((n, a))) {
        bail!("{}: line {} does not read back as {}", path.display(), n + 1, describe(item));
    }
    Ok(path)
}

/// The items of a backup file, one JSON object per line.
pub fn read_backup(path: &Path) -> anyhow::Result<Vec<RawItem>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(n, line)| {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&line).with_context(|| format!("{}: line {}", path.display(), n + 1))
        })
        .collect()
}

/// The earlier system's local table `releases`, in the same SQLite file as the
/// current store. No file or no table: nothing to migrate.
pub struct SqliteLegacy {
    path: PathBuf,
    conn: Option<Mutex<rusqlite::Connection>>,
}

/// The old table's name in SQLite.
pub const SQLITE_TABLE: &str = "releases";

impl SqliteLegacy {
    pub fn open(path: &Path) -> anyhow::Result<SqliteLegacy> {
        let conn = if path.exists() {
            let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .with_context(|| format!("{}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            Some(Mutex::new(conn))
        } else {
            None
        };
        Ok(SqliteLegacy { path: path.to_owned(), conn })
    }

    fn with<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>) -> anyhow::Result<Option<T>> {
        let Some(conn) = &self.conn else { return Ok(None) };
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let present: bool = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [SQLITE_TABLE],
            |r| r.get(0),
        )?;
        if !present {
            return Ok(None);
        }
        f(&mut conn).map(Some).with_context(|| self.name())
    }
}

#[async_trait]
impl LegacyStore for SqliteLegacy {
    fn name(&self) -> String {
        format!("SQLite table {SQLITE_TABLE} in {}", self.path.display())
    }

    async fn items(&self) -> anyhow::Result<Vec<RawItem>> {
        use rusqlite::types::ValueRef;
        let items = self.with(|c| {
            let mut stmt = c.prepare(&format!("SELECT * FROM {SQLITE_TABLE}"))?;
            let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
            stmt.query_map([], |row| {
                let mut item = RawItem::new();
                for (i, name) in names.iter().enumerate() {
                    let value = match row.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(n) => n.into(),
                        ValueRef::Real(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                        ValueRef::Blob(b) => hex::encode(b).into(),
                    };
                    item.insert(name.clone(), value);
                }
                Ok(item)
            })?
            .collect()
        })?;
        Ok(items.unwrap_or_default())
    }

    async fn delete(&self, versions: &[String]) -> anyhow::Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            for v in versions {
                tx.execute(&format!("DELETE FROM {SQLITE_TABLE} WHERE version = ?1"), [v])?;
            }
            tx.commit()
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> RawItem {
        v.as_object().unwrap().clone()
    }

    fn target() -> Target {
        Target { package: "kiro".into(), architecture: "amd64".into() }
    }

    #[test]
    fn tolerant_items_become_candidates() {
        let item = LegacyItem::from_raw(&raw(json!({
            "version": "0.10.1", "deb_url": "https://example.com/k.deb", "notes": null,
            "certificate_url": "https://example.com/certificate.pem", "signature_url": "",
            "processed_timestamp": 1700000000, "checksum": "AB".repeat(32), "extra": true
        })))
        .unwrap();
        assert_eq!(item.notes, None);
        assert_eq!(item.signature_url, None);
        assert_eq!(item.processed_timestamp.as_deref(), Some("1700000000"));
        let c = item.candidate(&target());
        assert_eq!(c.package_id(), "kiro#0.10.1#amd64");
        assert_eq!(c.expected_sha256, Some("ab".repeat(32)));
        assert_eq!(c.companions.len(), 1);
        assert_eq!((c.companions[0].kind.as_str(), c.companions[0].suffix.as_str()), ("certificate", "pem"));
        check_candidate(&c).unwrap();
    }

    #[test]
    fn missing_required_attributes_name_the_item() {
        let e = LegacyItem::from_raw(&raw(json!({"version": "0.9.9"}))).unwrap_err().to_string();
        assert!(e.contains("\"0.9.9\"") && e.contains("deb_url"), "{e}");
        let e = LegacyItem::from_raw(&raw(json!({"deb_url": "https://x/k.deb"}))).unwrap_err().to_string();
        assert!(e.contains("https://x/k.deb") && e.contains("version"), "{e}");
    }

    #[test]
    fn bad_candidates_are_refused_before_anything_is_written() {
        let bad = [
            json!({"version": "not a version!", "deb_url": "https://x/k.deb"}),
            json!({"version": "1.0", "deb_url": "http://example.com/k.deb"}),
            json!({"version": "1.1", "deb_url": "https://x/k.deb", "checksum": "abc"}),
        ];
        for b in bad {
            let e = transform(vec![raw(b.clone())], &target()).err().unwrap().to_string();
            assert!(e.contains(b["version"].as_str().unwrap()) && e.contains("nothing was written"), "{e}");
        }
    }

    #[test]
    fn plan_is_in_debian_order() {
        let items = ["0.9.9", "0.10.1", "0.7.44"]
            .map(|v| raw(json!({"version": v, "deb_url": format!("https://x/{v}.deb")})))
            .to_vec();
        let plan = transform(items, &target()).unwrap();
        let order: Vec<_> = plan.iter().map(|p| p.item.version.as_str()).collect();
        assert_eq!(order, ["0.7.44", "0.9.9", "0.10.1"]);
        let shown = side_by_side(&plan[2], &ConfigFields::default());
        assert!(
            shown.contains("deb_url: https://x/0.10.1.deb") && shown.contains("| url: https://x/0.10.1.deb"),
            "{shown}"
        );
    }

    #[test]
    fn backup_round_trips_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let items = vec![raw(json!({"version": "1.0", "deb_url": "https://x", "n": 1.5, "z": null}))];
        let now = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let a = write_backup(dir.path(), &items, now).unwrap();
        let b = write_backup(dir.path(), &items, now).unwrap();
        assert!(a.ends_with("migration-backup-20260102T030405Z.jsonl"), "{}", a.display());
        assert_ne!(a, b);
        assert_eq!(read_backup(&b).unwrap(), items);
    }
}
