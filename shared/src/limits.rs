//! Limits on what upstream can make a run do: how many bytes it may send, for
//! how long and how slowly, and how much a package may unpack to.
//!
//! Every limit has a built-in default ([`Limits::default`]); `limits:` in
//! `repository.yaml` sets it for the whole repository, and `limits:` in a
//! package's file overrides the transfer limits for that package (the
//! control-archive caps are repository-wide: staged files are read before
//! their package is known). A [`Limit`] carries the setting that put it in
//! force, so the error it raises tells the operator what to raise and where.
//!
//! | setting | default | bounds |
//! |---|---|---|
//! | `max_metadata_bytes` | 16 MiB | a metadata document, releases list, certificate or signature |
//! | `metadata_deadline` | 2m | fetching one of those (retries included) |
//! | `max_artifact_bytes` | 4 GiB | an artifact (.deb) whose size upstream does not announce |
//! | `download_deadline` | 10m | downloading one artifact (retries included) |
//! | `min_transfer_rate` | 16 KiB (per second; 0: none) | any transfer, measured over `min_rate_window` |
//! | `min_rate_window` | 30s | |
//! | `max_control_file_bytes` | 1 MiB | a package's `control` file |
//! | `max_control_tar_bytes` | 16 MiB | its control.tar, unpacked |

use crate::config::parse_duration;
use crate::deb::DebLimits;
use crate::fetch::TransferLimits;
use serde::Deserialize;
use std::time::Duration;

/// One limit in force, and the setting that put it there, as the operator
/// would look for it: `limits.max_artifact_bytes in packages/kiro.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit<T> {
    pub value: T,
    pub setting: String,
}

impl<T> Limit<T> {
    pub fn new(value: T, setting: impl Into<String>) -> Limit<T> {
        Limit { value, setting: setting.into() }
    }
}

/// A byte count as written in the configuration: a plain number of bytes, or
/// a number and a binary unit (`4 GiB`, `16KiB`, `512 B`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn bytes(&self) -> Result<u64, String> {
        match self {
            ByteSize::Bytes(n) => Ok(*n),
            ByteSize::Text(text) => parse_bytes(text),
        }
    }
}

/// `4294967296`, `4 GiB`, `16KiB`, `512 B` (binary units only: a `GB` would
/// leave the reader guessing). A rate may end in `/s`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let body = trimmed.strip_suffix("/s").unwrap_or(trimmed).trim_end();
    let split = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let bad = || format!("{text:?}: expected a number of bytes, or a number and B, KiB, MiB, GiB or TiB");
    let n: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

/// `4294967296 bytes (4 GiB)`; just `1000 bytes` when no binary unit divides it.
pub fn show_bytes(n: u64) -> String {
    let unit = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")]
        .into_iter()
        .find(|(shift, _)| n >= 1 << shift && n % (1 << shift) == 0);
    match unit {
        Some((shift, name)) => format!("{n} bytes ({} {name})", n >> shift),
        None => format!("{n} bytes"),
    }
}

/// `10m`, `90s`, `2h`: the way durations are written in the configuration.
pub fn show_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{} ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `limits:` as written in `repository.yaml` or a package's file; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default)]
    pub max_metadata_bytes: Option<ByteSize>,
    #[serde(default)]
    pub metadata_deadline: Option<String>,
    #[serde(default)]
    pub max_artifact_bytes: Option<ByteSize>,
    #[serde(default)]
    pub download_deadline: Option<String>,
    /// Bytes per second; `0` turns the check off.
    #[serde(default)]
    pub min_transfer_rate: Option<ByteSize>,
    #[serde(default)]
    pub min_rate_window: Option<String>,
    #[serde(default)]
    pub max_control_file_bytes: Option<ByteSize>,
    #[serde(default)]
    pub max_control_tar_bytes: Option<ByteSize>,
}

/// The limits in force (for the repository, or for one package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_metadata_bytes: Limit<u64>,
    pub metadata_deadline: Limit<Duration>,
    pub max_artifact_bytes: Limit<u64>,
    pub download_deadline: Limit<Duration>,
    /// Bytes per second over `min_rate_window`; 0: no minimum.
    pub min_transfer_rate: Limit<u64>,
    pub min_rate_window: Limit<Duration>,
    pub max_control_file_bytes: Limit<u64>,
    pub max_control_tar_bytes: Limit<u64>,
}

/// Why defaults are what they are:
/// - 16 MiB of metadata is thousands of releases (a GitHub list of 2,000 is
///   about 10 MiB with notes); check-sources holds the document in memory.
/// - 4 GiB of artifact is far above any .deb pkgrelay relays (Kiro's are
///   about 200 MiB) and below download-package's 10 GiB of /tmp.
/// - 10 minutes for a download leaves download-package (15 minutes on
///   Lambda) time to check the file and copy it into the pool; 2 minutes for
///   a document leaves check-sources (5 minutes) time for the rest.
/// - 16 KiB/s over 30 s: no healthy upstream is that slow for that long; a
///   stalled connection is given up well before the deadline, and retried.
/// - A control file of 1 MiB is hundreds of times a real one; a control.tar
///   of 16 MiB unpacked holds md5sums of a package with 100,000 files.
impl Default for Limits {
    fn default() -> Limits {
        let default = |name: &str| format!("limits.{name}, by default; set it in repository.yaml");
        let transfer =
            |name: &str| format!("limits.{name}, by default; set it in repository.yaml or the package's file");
        Limits {
            max_metadata_bytes: Limit::new(16 << 20, transfer("max_metadata_bytes")),
            metadata_deadline: Limit::new(Duration::from_secs(120), transfer("metadata_deadline")),
            max_artifact_bytes: Limit::new(4 << 30, transfer("max_artifact_bytes")),
            download_deadline: Limit::new(Duration::from_secs(600), transfer("download_deadline")),
            min_transfer_rate: Limit::new(16 << 10, transfer("min_transfer_rate")),
            min_rate_window: Limit::new(Duration::from_secs(30), transfer("min_rate_window")),
            max_control_file_bytes: Limit::new(1 << 20, default("max_control_file_bytes")),
            max_control_tar_bytes: Limit::new(16 << 20, default("max_control_tar_bytes")),
        }
    }
}

/// A setting that cannot be taken: its field (`limits.<name>`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    pub field: String,
    pub message: String,
}

impl Limits {
    /// These limits with `overrides` applied, as written in `file` (a name
    /// relative to the configuration directory). `repository_wide`: the
    /// control-archive caps may be set there only.
    pub fn with(&self, overrides: &LimitsConfig, file: &str, repository_wide: bool) -> Result<Limits, LimitError> {
        let mut out = self.clone();
        let setting = |name: &str| format!("limits.{name} in {file}");
        let fail = |name: &str, message: String| LimitError { field: format!("limits.{name}"), message };
        let size = |name: &str, value: &ByteSize, zero_ok: bool| -> Result<Limit<u64>, LimitError> {
            let n = value.bytes().map_err(|e| fail(name, e))?;
            if n == 0 && !zero_ok {
                return Err(fail(name, "must be more than zero".into()));
            }
            Ok(Limit::new(n, setting(name)))
        };
        let duration = |name: &str, value: &str| -> Result<Limit<Duration>, LimitError> {
            Ok(Limit::new(parse_duration(value).map_err(|e| fail(name, e))?, setting(name)))
        };
        if let Some(v) = &overrides.max_metadata_bytes {
            out.max_metadata_bytes = size("max_metadata_bytes", v, false)?;
        }
        if let Some(v) = &overrides.metadata_deadline {
            out.metadata_deadline = duration("metadata_deadline", v)?;
        }
        if let Some(v) = &overrides.max_artifact_bytes {
            out.max_artifact_bytes = size("max_artifact_bytes", v, false)?;
        }
        if let Some(v) = &overrides.download_deadline {
            out.download_deadline = duration("download_deadline", v)?;
        }
        if let Some(v) = &overrides.min_transfer_rate {
            out.min_transfer_rate = size("min_transfer_rate", v, true)?;
        }
        if let Some(v) = &overrides.min_rate_window {
            out.min_rate_window = duration("min_rate_window", v)?;
        }
        for (name, value, slot) in [
            ("max_control_file_bytes", &overrides.max_control_file_bytes, &mut out.max_control_file_bytes),
            ("max_control_tar_bytes", &overrides.max_control_tar_bytes, &mut out.max_control_tar_bytes),
        ] {
            let Some(value) = value else { continue };
            if !repository_wide {
                return Err(fail(
                    name,
                    "is set for the whole repository only, in repository.yaml: staged files are read before \
                     their package is known"
                        .into(),
                ));
            }
            *slot = size(name, value, false)?;
        }
        Ok(out)
    }

    /// A metadata document, a releases list, a certificate or signature, a probe.
    pub fn documents(&self) -> TransferLimits {
        TransferLimits {
            max_bytes: self.max_metadata_bytes.clone(),
            deadline: self.metadata_deadline.clone(),
            min_rate: self.min_transfer_rate.clone(),
            window: self.min_rate_window.clone(),
        }
    }

    /// An artifact (the .deb).
    pub fn artifacts(&self) -> TransferLimits {
        TransferLimits {
            max_bytes: self.max_artifact_bytes.clone(),
            deadline: self.download_deadline.clone(),
            min_rate: self.min_transfer_rate.clone(),
            window: self.min_rate_window.clone(),
        }
    }

    /// What reading a package may unpack.
    pub fn deb(&self) -> DebLimits {
        DebLimits { control_file: self.max_control_file_bytes.clone(), control_tar: self.max_control_tar_bytes.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4294967296"), Ok(4 << 30));
        assert_eq!(parse_bytes("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_bytes("16KiB"), Ok(16 << 10));
        assert_eq!(parse_bytes("16 KiB/s"), Ok(16 << 10));
        assert_eq!(parse_bytes("512 B"), Ok(512));
        for bad in ["4 GB", "4g", "-1", "", "1.5 MiB", "99999999999 TiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(show_bytes(4 << 30), "4294967296 bytes (4 GiB)");
        assert_eq!(show_bytes(1536), "1536 bytes");
        assert_eq!(show_bytes(3 << 10), "3072 bytes (3 KiB)");
        assert_eq!(show_duration(Duration::from_secs(600)), "10m");
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn overrides_name_their_file() {
        let repo = LimitsConfig {
            max_artifact_bytes: Some(ByteSize::Text("1 GiB".into())),
            max_control_tar_bytes: Some(ByteSize::Bytes(1 << 25)),
            ..Default::default()
        };
        let repo = Limits::default().with(&repo, "repository.yaml", true).unwrap();
        assert_eq!(repo.max_artifact_bytes, Limit::new(1 << 30, "limits.max_artifact_bytes in repository.yaml"));
        assert_eq!(repo.max_control_tar_bytes.value, 1 << 25);
        assert!(repo.download_deadline.setting.contains("by default"), "{:?}", repo.download_deadline);

        let pkg = LimitsConfig {
            download_deadline: Some("30m".into()),
            min_transfer_rate: Some(ByteSize::Bytes(0)),
            ..Default::default()
        };
        let pkg = repo.with(&pkg, "packages/kiro.yaml", false).unwrap();
        assert_eq!(
            pkg.download_deadline,
            Limit::new(Duration::from_secs(1800), "limits.download_deadline in packages/kiro.yaml")
        );
        assert_eq!(pkg.min_transfer_rate.value, 0);
        assert_eq!(pkg.max_artifact_bytes.setting, "limits.max_artifact_bytes in repository.yaml");

        let bad = |overrides: LimitsConfig, repository_wide| {
            Limits::default().with(&overrides, "x.yaml", repository_wide).unwrap_err()
        };
        let e = bad(LimitsConfig { max_control_file_bytes: Some(ByteSize::Bytes(1)), ..Default::default() }, false);
        assert_eq!(e.field, "limits.max_control_file_bytes");
        assert!(e.message.contains("repository.yaml"), "{e:?}");
        let e = bad(LimitsConfig { max_artifact_bytes: Some(ByteSize::Bytes(0)), ..Default::default() }, true);
        assert_eq!((e.field.as_str(), e.message.as_str()), ("limits.max_artifact_bytes", "must be more than zero"));
        let e = bad(LimitsConfig { download_deadline: Some("soon".into()), ..Default::default() }, true);
        assert_eq!(e.field, "limits.download_deadline");
    }
}
