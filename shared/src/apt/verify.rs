//! `pkgrelay verify`: walk a published repository the way a client trusts it —
//! InRelease (signature, validity), every index file it lists (at its
//! canonical path and by hash), every pool file every Packages names (size,
//! or size and SHA256) — and report each thing that is missing or wrong, by
//! path. Parsing uses `deb822-lossless`, not our renderer.
//!
//! The checks read the repository through [`RepositoryReader`], "fetch this
//! repository path": [`StoreReader`] reads a directory (any [`ObjectStore`]),
//! the CLI has one that reads a URL as apt does. The trait knows nothing of
//! APT, so that the Homebrew mirror's checks (the bottle URLs brew requests)
//! can read a mirror the same ways once that format exists.

use crate::blob::{BlobError, ObjectStore};
use crate::config::RepositoryConfig;
use crate::digest::Checksums;
use async_trait::async_trait;
use deb822_lossless::Deb822;
use futures_util::StreamExt;
use sequoia_openpgp as openpgp;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use time::OffsetDateTime;

/// Why a repository path could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// Not there (a 404, or the 403 S3 answers for a missing key to a reader
    /// that may not list the bucket); the detail says how the reader knows.
    Missing(String),
    /// Anything else (network, I/O, an unexpected status), with where.
    Failed(String),
}

/// Size and SHA256 of a file, streamed through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub sha256: String,
}

/// Reads one repository path (`dists/stable/InRelease`, `pool/…`): a
/// directory, a bucket, a URL.
#[async_trait]
pub trait RepositoryReader: Send + Sync {
    /// The repository's location, for messages (a directory, a URL).
    fn location(&self) -> String;
    /// The whole file (index files, keyrings: small).
    async fn get(&self, path: &str) -> Result<Vec<u8>, ReadError>;
    /// The file's size without reading it (over HTTP: a HEAD request).
    async fn size(&self, path: &str) -> Result<u64, ReadError>;
    /// Size and SHA256, streamed through (pool files can be gigabytes).
    async fn digest(&self, path: &str) -> Result<Digest, ReadError>;
}

/// A repository in an [`ObjectStore`] (a local directory, a bucket).
pub struct StoreReader<'a> {
    pub store: &'a dyn ObjectStore,
    /// What [`RepositoryReader::location`] says.
    pub location: String,
    /// Where objects the store cannot open in place are copied to be hashed.
    pub work_dir: PathBuf,
}

fn blob_error(e: BlobError) -> ReadError {
    match e {
        BlobError::NotFound { .. } => ReadError::Missing("no such file".into()),
        e => ReadError::Failed(e.to_string()),
    }
}

#[async_trait]
impl RepositoryReader for StoreReader<'_> {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, ReadError> {
        self.store.get_bytes(path).await.map_err(blob_error)
    }

    async fn size(&self, path: &str) -> Result<u64, ReadError> {
        if let Some(file) = self.store.local_path(path) {
            return match std::fs::metadata(&file) {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Missing("no such file".into())),
                Err(e) => Err(ReadError::Failed(format!("{}: {e}", file.display()))),
            };
        }
        let listed = self.store.list(path).await.map_err(blob_error)?;
        listed
            .into_iter()
            .find(|o| o.key == path)
            .map(|o| o.size)
            .ok_or_else(|| ReadError::Missing("no such object".into()))
    }

    async fn digest(&self, path: &str) -> Result<Digest, ReadError> {
        let of_file = |file: &Path| match Checksums::of_file(file) {
            Ok(c) => Ok(Digest { size: c.size, sha256: c.sha256 }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::Missing("no such file".into())),
            Err(e) => Err(ReadError::Failed(format!("{}: {e}", file.display()))),
        };
        if let Some(file) = self.store.local_path(path) {
            return tokio::task::block_in_place(|| of_file(&file));
        }
        let tmp = tempfile::NamedTempFile::new_in(&self.work_dir).map_err(|e| {
            ReadError::Failed(format!("{}: cannot create a temporary file: {e}", self.work_dir.display()))
        })?;
        self.store.get_to_file(path, tmp.path()).await.map_err(blob_error)?;
        tokio::task::block_in_place(|| of_file(tmp.path()))
    }
}

/// One thing found wrong, or worth a warning, at one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What verification found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// What makes apt refuse the repository or a package (non-zero exit).
    pub errors: Vec<Finding>,
    /// What apt still accepts but an operator must act on soon.
    pub warnings: Vec<Finding>,
    /// Index files listed in Release (each read at its path and by hash).
    pub index_files: usize,
    /// Stanzas in every Packages file.
    pub packages: usize,
    /// Distinct pool files checked.
    pub pool_files: usize,
    /// Fingerprint of the key whose signature of InRelease verified.
    pub signed_by: Option<String>,
    /// InRelease's Valid-Until, as written.
    pub valid_until: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Finding { path: path.into(), message: message.into() });
    }
    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Finding { path: path.into(), message: message.into() });
    }
}

/// Told each path as it is checked.
pub type Progress = Box<dyn Fn(&str) + Send + Sync>;

/// How to verify.
pub struct Options {
    /// The keyring InRelease must be signed with; `None`: the keyring the
    /// repository publishes (`keyring_name`), which proves consistency, not
    /// authenticity.
    pub keyring: Option<Vec<u8>>,
    /// Hash every pool file (else: its size only).
    pub deep: bool,
    /// The time Valid-Until is compared with.
    pub now: OffsetDateTime,
    /// Pool files checked at once.
    pub concurrency: usize,
    /// Told each path as it is checked (a progress display).
    pub progress: Option<Progress>,
}

impl Default for Options {
    fn default() -> Options {
        Options { keyring: None, deep: true, now: OffsetDateTime::now_utc(), concurrency: 8, progress: None }
    }
}

impl Options {
    fn tell(&self, path: &str) {
        if let Some(p) = &self.progress {
            p(path);
        }
    }
}

async fn read(reader: &dyn RepositoryReader, path: &str, report: &mut Report) -> Option<Vec<u8>> {
    match reader.get(path).await {
        Ok(b) => Some(b),
        Err(ReadError::Missing(how)) => {
            report.error(path, format!("missing ({how})"));
            None
        }
        Err(ReadError::Failed(e)) => {
            report.error(path, format!("cannot be read: {e}"));
            None
        }
    }
}

/// `(sha256, size, path)` lines of a Release hash field.
fn hash_lines(value: &str) -> Vec<(String, u64, String)> {
    value
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?, w.next()?.to_owned()))
        })
        .collect()
}

fn parse_release_date(value: &str) -> Option<OffsetDateTime> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    time::PrimitiveDateTime::parse(value.trim(), &fmt).ok().map(|t| t.assume_utc())
}

/// A duration for people: "3d 4h", "5h 12m", "42s".
fn human(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
        s if s >= 3_600 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Fingerprints of the keys (primary and subkeys) of a keyring.
fn keyring_fingerprints(keyring: &[u8]) -> Vec<String> {
    use openpgp::parse::Parse;
    let Ok(parser) = openpgp::cert::CertParser::from_bytes(keyring) else {
        return Vec::new();
    };
    parser
        .filter_map(Result::ok)
        .flat_map(|cert| cert.keys().map(|k| k.key().fingerprint().to_hex()).collect::<Vec<_>>())
        .collect()
}

/// Fingerprints of the primary keys of a keyring (what `gpg --show-keys` lists).
fn primary_fingerprints(keyring: &[u8]) -> BTreeSet<String> {
    use openpgp::parse::Parse;
    let Ok(parser) = openpgp::cert::CertParser::from_bytes(keyring) else {
        return BTreeSet::new();
    };
    parser.filter_map(Result::ok).map(|cert| cert.fingerprint().to_hex()).collect()
}

/// The keys that made the signatures of an armored signature block (their
/// fingerprints when the signature names them, else their key ids).
fn signature_issuers(signature: &[u8]) -> Vec<String> {
    use openpgp::parse::Parse;
    let Ok(pile) = openpgp::PacketPile::from_bytes(signature) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for packet in pile.descendants() {
        if let openpgp::Packet::Signature(sig) = packet {
            let fingerprints: Vec<String> = sig.issuer_fingerprints().map(|f| f.to_hex()).collect();
            if fingerprints.is_empty() {
                out.extend(sig.issuers().map(|id| format!("key id {}", id.to_hex())));
            } else {
                out.extend(fingerprints);
            }
        }
    }
    out
}

/// The armored signature block at the end of a cleartext-signed document.
fn clearsigned_signature(inrelease: &[u8]) -> &[u8] {
    const BEGIN: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
    inrelease.windows(BEGIN.len()).position(|w| w == BEGIN).map_or(&[][..], |at| &inrelease[at..])
}

/// "signed by key X; the keyring holds Y": what a wrong key looks like.
fn signer_mismatch(signature: &[u8], keyring: &[u8]) -> Option<String> {
    let issuers = signature_issuers(signature);
    let held = keyring_fingerprints(keyring);
    let known = |issuer: &String| match issuer.strip_prefix("key id ") {
        Some(id) => held.iter().any(|h| h.ends_with(id)),
        None => held.contains(issuer),
    };
    if issuers.is_empty() || issuers.iter().any(known) {
        return None;
    }
    let primaries: Vec<String> = primary_fingerprints(keyring).into_iter().collect();
    Some(format!(
        "signed by key {}, which the keyring does not hold (it holds {})",
        issuers.join(", "),
        if primaries.is_empty() { "no usable key".to_owned() } else { primaries.join(", ") }
    ))
}

/// Verify the APT repository `reader` reads, described by `repo` (suite,
/// keyring name). A Homebrew mirror will have checks of its own beside these.
pub async fn verify(reader: &dyn RepositoryReader, repo: &RepositoryConfig, options: &Options) -> Report {
    let mut report = Report::default();
    let dists = format!("dists/{}", repo.suite);
    options.tell(&repo.keyring_name);
    let published_keyring = read(reader, &repo.keyring_name, &mut report).await;
    let keyring = match (&options.keyring, published_keyring) {
        (Some(given), published) => {
            if let Some(published) = published {
                let (theirs, ours) = (primary_fingerprints(&published), primary_fingerprints(given));
                if theirs != ours {
                    report.error(
                        &repo.keyring_name,
                        format!(
                            "the published keyring holds {}, not the given keyring's {}: clients that install it trust another key",
                            theirs.into_iter().collect::<Vec<_>>().join(", "),
                            ours.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            given.clone()
        }
        (None, Some(published)) => published,
        (None, None) => return report,
    };
    let inrelease_path = format!("{dists}/InRelease");
    options.tell(&inrelease_path);
    let Some(inrelease) = read(reader, &inrelease_path, &mut report).await else {
        return report;
    };
    let release = match crate::sign::verify_clearsigned(&inrelease, &keyring) {
        Ok(text) => text,
        Err(e) => {
            let message = match signer_mismatch(clearsigned_signature(&inrelease), &keyring) {
                Some(who) => format!("signature does not verify: {who}"),
                None => format!("signature does not verify: {e:#}"),
            };
            report.error(&inrelease_path, message);
            return report;
        }
    };
    let held = keyring_fingerprints(&keyring);
    report.signed_by = signature_issuers(clearsigned_signature(&inrelease)).into_iter().find(|i| held.contains(i));
    for name in ["Release", "Release.gpg"] {
        options.tell(&format!("{dists}/{name}"));
    }
    if let (Some(plain), Some(sig)) = (
        read(reader, &format!("{dists}/Release"), &mut report).await,
        read(reader, &format!("{dists}/Release.gpg"), &mut report).await,
    ) {
        if let Err(e) = crate::sign::verify_detached(&plain, &sig, &keyring) {
            let why = signer_mismatch(&sig, &keyring).unwrap_or_else(|| format!("{e:#}"));
            report.error(format!("{dists}/Release.gpg"), format!("signature does not verify: {why}"));
        }
        if plain != release {
            report.error(format!("{dists}/Release"), "differs from the text signed in InRelease");
        }
    }
    let text = String::from_utf8_lossy(&release).into_owned();
    let parsed = match Deb822::from_str(&text) {
        Ok(p) => p,
        Err(e) => {
            report.error(&inrelease_path, format!("unparseable: {e:?}"));
            return report;
        }
    };
    let Some(fields) = parsed.paragraphs().next() else {
        report.error(&inrelease_path, "empty");
        return report;
    };
    check_validity(&fields, &inrelease_path, options.now, &mut report);
    let listed = hash_lines(&fields.get("SHA256").unwrap_or_default());
    if listed.is_empty() {
        report.error(&inrelease_path, "lists no SHA256 index files");
    }

    let mut pool: Vec<(String, PoolEntry)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (sha, size, path) in &listed {
        let key = format!("{dists}/{path}");
        report.index_files += 1;
        options.tell(&key);
        let canonical = read(reader, &key, &mut report).await;
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let by_hash = format!("{dists}/{dir}/by-hash/SHA256/{sha}");
        options.tell(&by_hash);
        match reader.get(&by_hash).await {
            Ok(bytes) => {
                let got = Checksums::of(&bytes);
                if got.size != *size || &got.sha256 != sha {
                    report.error(
                        &by_hash,
                        format!(
                            "holds other bytes (size {} sha256 {}) than Release lists for {key}",
                            got.size, got.sha256
                        ),
                    );
                }
            }
            Err(ReadError::Missing(how)) => {
                report.error(&by_hash, format!("missing ({how}): clients with Acquire-By-Hash cannot fetch {key}"))
            }
            Err(ReadError::Failed(e)) => report.error(&by_hash, format!("cannot be read: {e}")),
        }
        let Some(bytes) = canonical else { continue };
        let got = Checksums::of(&bytes);
        if got.size != *size || &got.sha256 != sha {
            report.error(
                &key,
                format!(
                    "does not match Release (size {} sha256 {}, Release says size {size} sha256 {sha})",
                    got.size, got.sha256
                ),
            );
            continue;
        }
        if path.ends_with("/Packages") {
            for (filename, entry) in packages_entries(&key, &String::from_utf8_lossy(&bytes), &mut report) {
                if seen.insert(filename.clone()) {
                    pool.push((filename, entry));
                }
            }
        }
    }
    report.pool_files = pool.len();
    let checks = futures_util::stream::iter(pool.iter().map(|(filename, entry)| async move {
        options.tell(filename);
        (filename, entry, check_pool_file(reader, filename, entry, options.deep).await)
    }))
    .buffered(options.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    for (filename, _, problem) in checks {
        if let Some(message) = problem {
            report.error(filename, message);
        }
    }
    report
}

/// Valid-Until: expired is an error (apt refuses the whole repository); less
/// than half of the validity left is a warning (the pipeline re-signs then:
/// a repository that stays there is not being refreshed). A Date in the future
/// is an error too (apt: "not valid yet").
fn check_validity(fields: &deb822_lossless::Paragraph, path: &str, now: OffsetDateTime, report: &mut Report) {
    let date = fields.get("Date");
    let until_text = fields.get("Valid-Until");
    report.valid_until = until_text.clone();
    let date = date.as_deref().and_then(parse_release_date);
    if let Some(date) = date
        && date > now + time::Duration::minutes(1)
    {
        report.error(path, format!("Date {date} is in the future: apt says it is not valid yet"));
    }
    let Some(until_text) = until_text else {
        report.warning(path, "no Valid-Until: clients cannot tell a stale mirror from a current one");
        return;
    };
    let Some(until) = parse_release_date(&until_text) else {
        report.error(path, format!("Valid-Until {until_text:?} is not an RFC 2822 date in UTC"));
        return;
    };
    if until <= now {
        report.error(
            path,
            format!(
                "expired: Valid-Until {until_text} is {} ago; apt refuses the whole repository",
                human(now - until)
            ),
        );
        return;
    }
    if let Some(date) = date {
        let total = until - date;
        let left = until - now;
        if left * 2 < total {
            report.warning(
                path,
                format!(
                    "less than half of its validity left: {} of {} (Valid-Until {until_text}); the next run should re-sign it",
                    human(left),
                    human(total)
                ),
            );
        }
    }
}

/// What a Packages stanza says of its pool file.
struct PoolEntry {
    listed_in: String,
    size: String,
    sha256: String,
}

fn packages_entries(key: &str, text: &str, report: &mut Report) -> Vec<(String, PoolEntry)> {
    let parsed = match Deb822::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            report.error(key, format!("unparseable: {e:?}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for para in parsed.paragraphs() {
        report.packages += 1;
        let name = para.get("Package").unwrap_or_default();
        let (Some(filename), Some(size), Some(sha256)) = (para.get("Filename"), para.get("Size"), para.get("SHA256"))
        else {
            report.error(key, format!("stanza {name:?} lacks Filename, Size or SHA256"));
            continue;
        };
        out.push((filename, PoolEntry { listed_in: key.to_owned(), size, sha256 }));
    }
    out
}

async fn check_pool_file(
    reader: &dyn RepositoryReader,
    filename: &str,
    entry: &PoolEntry,
    deep: bool,
) -> Option<String> {
    let listed = &entry.listed_in;
    let missing = |how: String| Some(format!("missing ({how}; listed in {listed})"));
    if deep {
        match reader.digest(filename).await {
            Ok(got) if got.sha256 == entry.sha256 && got.size.to_string() == entry.size => None,
            Ok(got) => Some(format!(
                "does not match {listed} (size {} sha256 {}, index says size {} sha256 {})",
                got.size, got.sha256, entry.size, entry.sha256
            )),
            Err(ReadError::Missing(how)) => missing(how),
            Err(ReadError::Failed(e)) => Some(format!("cannot be read: {e}")),
        }
    } else {
        match reader.size(filename).await {
            Ok(size) if size.to_string() == entry.size => None,
            Ok(size) => Some(format!("size {size} does not match {listed} (index says size {})", entry.size)),
            Err(ReadError::Missing(how)) => missing(how),
            Err(ReadError::Failed(e)) => Some(format!("cannot be read: {e}")),
        }
    }
}

/// Where the repository's signed index lists `name` at `version`: the
/// Packages file (its canonical path) whose stanza names both, read as apt
/// reads it — InRelease checked against the published keyring, each Packages
/// it lists compared with its hash (a cache may still serve an older one).
/// `Ok(None)`: not listed (yet); `Err`: the index cannot be read or trusted.
pub async fn find_package(
    reader: &dyn RepositoryReader,
    repo: &RepositoryConfig,
    name: &str,
    version: &str,
) -> Result<Option<String>, String> {
    let get = |path: String| async move {
        match reader.get(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(ReadError::Missing(how)) => Err(format!("{path}: missing ({how})")),
            Err(ReadError::Failed(e)) => Err(format!("{path}: {e}")),
        }
    };
    let keyring = get(repo.keyring_name.clone()).await?;
    let inrelease_path = format!("dists/{}/InRelease", repo.suite);
    let inrelease = get(inrelease_path.clone()).await?;
    let release = crate::sign::verify_clearsigned(&inrelease, &keyring)
        .map_err(|e| format!("{inrelease_path}: signature does not verify with {}: {e:#}", repo.keyring_name))?;
    let text = String::from_utf8_lossy(&release).into_owned();
    let fields = Deb822::from_str(&text)
        .ok()
        .and_then(|d| d.paragraphs().next())
        .ok_or_else(|| format!("{inrelease_path}: unparseable"))?;
    for (sha, _, path) in hash_lines(&fields.get("SHA256").unwrap_or_default()) {
        if !path.ends_with("/Packages") {
            continue;
        }
        let key = format!("dists/{}/{path}", repo.suite);
        let bytes = get(key.clone()).await?;
        if Checksums::of(&bytes).sha256 != sha {
            continue;
        }
        let Ok(parsed) = Deb822::from_str(&String::from_utf8_lossy(&bytes)) else { continue };
        if parsed
            .paragraphs()
            .any(|p| p.get("Package").as_deref() == Some(name) && p.get("Version").as_deref() == Some(version))
        {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> deb822_lossless::Paragraph {
        Deb822::from_str(text).unwrap().paragraphs().next().unwrap()
    }

    #[test]
    fn validity_expired_is_an_error_and_past_half_a_warning() {
        let now = time::macros::datetime!(2026-01-10 12:00 UTC);
        let mut r = Report::default();
        check_validity(
            &fields("Date: Thu, 01 Jan 2026 12:00:00 UTC\nValid-Until: Thu, 08 Jan 2026 12:00:00 UTC\n"),
            "dists/stable/InRelease",
            now,
            &mut r,
        );
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(
            r.errors[0].message.starts_with("expired: Valid-Until Thu, 08 Jan 2026 12:00:00 UTC is 2d 0h ago"),
            "{r:?}"
        );
        assert!(r.warnings.is_empty());

        let mut r = Report::default();
        check_validity(
            &fields("Date: Sun, 04 Jan 2026 12:00:00 UTC\nValid-Until: Sun, 11 Jan 2026 12:00:00 UTC\n"),
            "dists/stable/InRelease",
            now,
            &mut r,
        );
        assert!(r.errors.is_empty(), "{r:?}");
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].message.contains("less than half of its validity left: 1d 0h of 7d 0h"), "{r:?}");

        let mut r = Report::default();
        check_validity(
            &fields("Date: Sat, 10 Jan 2026 11:00:00 UTC\nValid-Until: Sat, 17 Jan 2026 11:00:00 UTC\n"),
            "p",
            now,
            &mut r,
        );
        assert!(r.errors.is_empty() && r.warnings.is_empty(), "{r:?}");
        assert_eq!(r.valid_until.as_deref(), Some("Sat, 17 Jan 2026 11:00:00 UTC"));
    }

    #[test]
    fn a_wrong_key_is_named_with_both_fingerprints() {
        let signer = crate::sign::SigningKey::generate("a <a@example.com>").unwrap();
        let other = crate::sign::SigningKey::generate("b <b@example.com>").unwrap();
        let signed = signer.clearsign(b"Origin: x\n").unwrap();
        let message = signer_mismatch(clearsigned_signature(&signed), &other.public_keyring().unwrap()).unwrap();
        assert_eq!(
            message,
            format!(
                "signed by key {}, which the keyring does not hold (it holds {})",
                signer.fingerprint(),
                other.fingerprint()
            )
        );
        assert_eq!(signer_mismatch(clearsigned_signature(&signed), &signer.public_keyring().unwrap()), None);
    }
}
