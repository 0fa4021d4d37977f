//! The records that flow between the pipeline steps and into the store.
//!
//! Everything here is plain serde data: it is what Step Functions carries between
//! Lambda functions (kept small: keys and ids, never file contents) and what the
//! CLI passes between the same step functions in-process.

use crate::digest::Checksums;
use crate::fetch::Validators;
use serde::{Deserialize, Serialize};

/// How a package reaches the repository: one variant per source type,
/// registered in [`crate::sources`].
pub use crate::sources::SourceType;

/// `name#version#architecture`: the store's partition key, with the version in
/// its canonical spelling ([`crate::version::canonical`]): `0:0.7.45` upstream
/// and `0.7.45` in the .deb are one id.
pub fn package_id(name: &str, version: &str, architecture: &str) -> String {
    format!("{name}#{}#{architecture}", crate::version::canonical(version))
}

/// A file published unmodified beside a package (Kiro's certificate and signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Companion {
    /// What it is: `certificate` or `signature`.
    pub kind: String,
    /// Where upstream serves it.
    pub url: String,
    /// File-name suffix in the pool: `pem`, `sig`.
    pub suffix: String,
}

/// What a source announces; check-sources emits these, download-package takes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Configured package name (`config/packages/<name>.yaml`).
    pub package: String,
    /// Version as upstream announces it; the .deb must agree (its own version
    /// may add a Debian revision: vendor builds). [`LATEST`] when upstream
    /// announces none (`latest` is set): the .deb alone says.
    pub version: String,
    /// Debian architecture, when the source knows it before download.
    pub architecture: String,
    pub source_type: SourceType,
    /// Where the artifact is: an https URL, or a `staging/` key of the private store.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<Companion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// `latest_url` only: the file's validators when check-sources saw it
    /// change. Its presence means the version is unknown until the file is
    /// downloaded (`version` is then only the label [`LATEST`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Validators>,
    /// What the source already knows of the artifact in its format's terms,
    /// when upstream describes it fully before download (a Homebrew bottle:
    /// name, version, tag, rebuild, cellar and digest, from the formulae API).
    /// The format checks the downloaded file against it and records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<EntryMetadata>,
}

/// The `version` of a candidate whose version only the downloaded file tells
/// (`latest_url`). Not a Debian version (those start with a digit), so it can
/// never name a recorded package; it keeps the ids people read in run
/// summaries (`kiro-cli#latest#amd64`) readable.
pub const LATEST: &str = "latest";

impl Candidate {
    /// `name#version#architecture` as announced (for a `latest_url`
    /// candidate, `name#latest#architecture`: the real id is known once the
    /// file is read).
    pub fn package_id(&self) -> String {
        package_id(&self.package, &self.version, &self.architecture)
    }

    /// Whether the version is known before download (everything but `latest_url`).
    pub fn version_known(&self) -> bool {
        self.latest.is_none()
    }
}

/// A companion file as stored: its pool key and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCompanion {
    pub kind: String,
    pub key: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

/// Descriptive fields from the package's configuration; the .deb's own control
/// paragraph wins where both have a field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
}

/// One package version in the store: everything an index needs without opening
/// the artifact again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEntry {
    pub package_id: String,
    pub package_name: String,
    pub version: String,
    pub architecture: String,
    /// What the repository format read from the artifact, in the format's own
    /// terms (APT: the control paragraph): one key of the record, named for
    /// the format (see [`EntryMetadata`]).
    #[serde(flatten)]
    pub metadata: EntryMetadata,
    #[serde(default)]
    pub config: ConfigFields,
    /// Pool key, relative to the repository root (APT's `Filename`).
    pub filename: String,
    #[serde(flatten)]
    pub checksums: Checksums,
    pub source_type: SourceType,
    pub source_url: String,
    /// The version upstream announced for this file when it differs from the
    /// .deb's own (a vendor revision: `0.6.0` announced, `0.6.0-1762210000`
    /// in the .deb). check-sources matches announcements by it. Absent when
    /// they agree, when upstream announced none (`latest_url`), and in
    /// entries recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<StoredCompanion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// RFC 3339 UTC time the entry was recorded.
    pub processed_timestamp: String,
}

/// An entry's metadata, owned by its repository format: one key of the
/// record, named for the format, holding the format's own fields. APT's is
/// `control` (the key records had before formats were told apart, so every
/// record already stored reads back unchanged); a Homebrew bottle's is
/// `bottle`. The pipeline carries it without looking inside; only the
/// format that wrote it reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryMetadata {
    #[serde(rename = "control")]
    Apt(crate::apt::AptMetadata),
    #[serde(rename = "bottle")]
    Brew(crate::brew::BrewMetadata),
}

impl PackageEntry {
    /// The APT metadata, when this is an entry of an APT repository.
    pub fn apt(&self) -> Option<&crate::apt::AptMetadata> {
        match &self.metadata {
            EntryMetadata::Apt(m) => Some(m),
            _ => None,
        }
    }

    pub fn apt_mut(&mut self) -> Option<&mut crate::apt::AptMetadata> {
        match &mut self.metadata {
            EntryMetadata::Apt(m) => Some(m),
            _ => None,
        }
    }

    /// The bottle's metadata, when this is an entry of a Homebrew mirror.
    pub fn brew(&self) -> Option<&crate::brew::BrewMetadata> {
        match &self.metadata {
            EntryMetadata::Brew(m) => Some(m),
            _ => None,
        }
    }

    /// The version upstream announced for this entry's file.
    pub fn announced(&self) -> &str {
        self.announced_version.as_deref().unwrap_or(&self.version)
    }
}

/// What a `latest_url` source last recorded, one small record per package:
/// the validators of the file it downloaded (sent back as a conditional
/// request, so that an unchanged file costs one `304`) and what that file
/// was. Written only once the file's entry is recorded (or refused as a
/// conflict), so a download that fails is tried again by the next run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// Configured package name.
    pub package: String,
    /// The URL the validators belong to: after a configuration change they
    /// are not sent.
    pub url: String,
    pub validators: Validators,
    /// The entry the file is (or, with `conflict`, would have been).
    pub package_id: String,
    pub sha256: String,
    /// Set when the file is a version already recorded with other bytes: the
    /// recorded package is kept, and every run reports this message until the
    /// file changes upstream, without downloading it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// RFC 3339 UTC time of the record.
    pub recorded_at: String,
}

/// A candidate refused for what it is (not a valid package, another version
/// than announced, other bytes under a recorded version, a pool file name
/// taken by another version): remembered, so that the next runs do not fetch
/// it again every hour. It stays refused until upstream announces something
/// different for it (URL, size or digest) or an operator clears it
/// (`pkgrelay status`, `pkgrelay clear-rejection`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The candidate's id as announced (what check-sources looks it up by).
    pub package_id: String,
    pub package: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
    /// The validators a `latest_url` candidate carried: its file changed when they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Validators>,
    /// SHA256 of the artifact that was refused, when it was downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The Step Functions error name (`InvalidPackage`, `PackageConflict`).
    pub error_type: String,
    pub reason: String,
    /// RFC 3339 UTC time of the refusal.
    pub rejected_at: String,
}

impl Rejection {
    /// Whether `candidate` is what was refused: upstream announces it the same
    /// way (URL, size, digest). Anything different is worth another look.
    pub fn still_applies(&self, candidate: &Candidate) -> bool {
        self.url == candidate.url
            && self.expected_size == candidate.expected_size
            && self.expected_sha256 == candidate.expected_sha256
            && self.latest == candidate.latest
    }
}

/// Per-suite bookkeeping: the generation counter and what is published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteState {
    pub suite: String,
    /// Highest generation number handed out by build-index.
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Publication>,
    /// The generation being built and published right now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// How many entries have ever been recorded for this suite: a high-water
    /// mark that record-metadata raises in the same transaction as each insert.
    /// A published generation remembers the mark it was built from, so a run
    /// can tell that entries were recorded but never published (a build or
    /// publish that failed after them) without reading the packages table.
    #[serde(default)]
    pub recorded: u64,
}

impl SuiteState {
    /// Entries recorded since the live generation was built (all of them when
    /// nothing is published).
    pub fn unpublished(&self) -> u64 {
        self.recorded.saturating_sub(self.published.as_ref().map_or(0, |p| p.recorded))
    }
}

/// A suite's build-and-publish lease. build-index takes it together with the
/// next generation number and publish gives it back: builds and publishes never
/// interleave, so a higher generation always saw at least what a lower one saw,
/// and the published generation only moves forward. A holder that dies loses it
/// when `until` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub generation: u64,
    /// Unix time (seconds) the lease runs out.
    pub until: i64,
}

/// What the last successful publish put live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub generation: u64,
    /// RFC 3339: the Release's Date.
    pub date: String,
    /// RFC 3339: the Release's Valid-Until.
    pub valid_until: String,
    pub manifest_key: String,
    /// The suite's `recorded` mark when this generation's build read the store.
    #[serde(default)]
    pub recorded: u64,
}

impl Publication {
    /// True once less than half of the Release's validity is left: the index must
    /// be re-signed even if nothing is new, or apt will refuse the repository.
    pub fn refresh_due(&self, now: time::OffsetDateTime) -> bool {
        use time::format_description::well_known::Rfc3339;
        let (Ok(date), Ok(until)) = (
            time::OffsetDateTime::parse(&self.date, &Rfc3339),
            time::OffsetDateTime::parse(&self.valid_until, &Rfc3339),
        ) else {
            return true;
        };
        now >= date + (until - date) / 2
    }
}

/// Longest upstream release note kept (candidate, entry, store), in bytes.
/// Notes are informational; a note of 300 KB would otherwise ride in every
/// Step Functions payload (256 KiB at most) and DynamoDB item (400 KB).
pub const NOTES_LIMIT: usize = 4096;

/// `text` cut to at most `limit` bytes on a character boundary, with a marker
/// saying how long it was; unchanged when it fits.
pub fn bounded_text(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let marker = format!(" … [cut: {} bytes in all]", text.len());
    let mut end = limit.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// Current UTC time as RFC 3339 (seconds precision).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    use time::format_description::well_known::Rfc3339;
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_marker() {
        assert_eq!(bounded_text("short", 10), "short");
        let long = "é".repeat(125_000); // 250,000 bytes of two-byte characters
        let cut = bounded_text(&long, NOTES_LIMIT);
        assert!(cut.len() <= NOTES_LIMIT, "{}", cut.len());
        assert!(cut.ends_with(" … [cut: 250000 bytes in all]"), "{}", &cut[cut.len() - 40..]);
        let four = "𝄞".repeat(125_000); // four-byte characters
        let cut = bounded_text(&four, 100);
        assert!(cut.len() <= 100 && cut.starts_with('𝄞'));
    }

    /// A record as stored before the metadata belonged to a format (and as
    /// an APT entry is still stored): `control` at the top level, beside the
    /// flattened checksums.
    const STORED: &str = r#"{"package_id":"kiro#0.7.45#amd64","package_name":"kiro","version":"0.7.45","architecture":"amd64","control":{"fields":[["Package","kiro"],["Version","0.7.45"],["Depends","libc6"]]},"config":{"section":"devel"},"filename":"pool/main/k/kiro/kiro_0.7.45_amd64.deb","size":3,"md5":"900150983cd24fb0d6963f7d28e17f72","sha1":"a9993e364706816aba3e25717850c26c9cd0d89d","sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","source_type":"external_download","source_url":"https://example.com/kiro.deb","processed_timestamp":"2025-11-20T10:00:00Z"}"#;

    #[test]
    fn stored_apt_records_read_back_and_write_back_unchanged() {
        let entry: PackageEntry = serde_json::from_str(STORED).unwrap();
        let control = &entry.apt().expect("an APT entry").control;
        assert_eq!(control.get("Depends"), Some("libc6"));
        assert_eq!(entry.checksums.size, 3);
        assert_eq!(entry.brew(), None);
        let again: serde_json::Value = serde_json::to_value(&entry).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(STORED).unwrap());
    }

    #[test]
    fn a_bottle_is_its_own_key_of_the_record() {
        let mut entry: PackageEntry = serde_json::from_str(STORED).unwrap();
        entry.metadata = EntryMetadata::Brew(crate::brew::BrewMetadata {
            formula: "python@3.13".into(),
            pkg_version: "3.13.1_1".into(),
            tag: "arm64_sonoma".into(),
            rebuild: 1,
            cellar: "/opt/homebrew/Cellar".into(),
            sha256: "a".repeat(64),
            descriptor: None,
        });
        let json = serde_json::to_value(&entry).unwrap();
        assert!(json.get("control").is_none());
        assert_eq!(json["bottle"]["formula"], "python@3.13");
        let back: PackageEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
        assert_eq!(back.apt(), None);
        assert_eq!(back.brew().unwrap().filename(), "python@3.13-3.13.1_1.arm64_sonoma.bottle.1.tar.gz");
        // A record of neither kind is refused, not read as an empty one.
        let mut neither = serde_json::from_str::<serde_json::Value>(STORED).unwrap();
        neither.as_object_mut().unwrap().remove("control");
        assert!(serde_json::from_value::<PackageEntry>(neither).is_err());
    }

    #[test]
    fn refresh_is_due_past_half_validity() {
        let p = Publication {
            generation: 1,
            date: "2026-01-01T00:00:00Z".into(),
            valid_until: "2026-01-08T00:00:00Z".into(),
            manifest_key: String::new(),
            recorded: 0,
        };
        assert!(!p.refresh_due(datetime!(2026-01-04 11:00 UTC)));
        assert!(p.refresh_due(datetime!(2026-01-04 12:00 UTC)));
        assert!(p.refresh_due(datetime!(2026-02-01 00:00 UTC)));
    }
}
