//! Debian version ordering.
//!
//! Versions always compare by Debian rules (epoch, upstream, revision, `~` sorting
//! before everything), never as strings: `0.10.1` is newer than `0.9.9`. The rules
//! come from the `debversion` crate; this module only names the operations the
//! rest of the crate needs and gives parse errors a useful message.

use std::cmp::Ordering;

pub use debversion::Version;

/// Parse a Debian version, naming the offending text on failure.
pub fn parse(text: &str) -> anyhow::Result<Version> {
    text.parse::<Version>().map_err(|e| anyhow::anyhow!("invalid Debian version {text:?}: {e}"))
}

/// Compare two version strings by Debian rules. Unparseable versions sort before
/// parseable ones and among themselves as strings, so a sort never panics.
pub fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<Version>(), b.parse::<Version>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Err(_), Ok(_)) => Ordering::Less,
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// A version parsed once and kept with its text, ordered as [`compare`] orders
/// the text: sorting thousands of entries parses each version once, not at
/// every comparison (`debversion` parses with a regex, ~400 ns a version).
#[derive(Debug, Clone)]
pub struct VersionKey {
    parsed: Option<Version>,
    text: String,
}

impl VersionKey {
    pub fn new(text: &str) -> VersionKey {
        VersionKey { parsed: text.parse().ok(), text: text.to_owned() }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.parsed, &other.parsed) {
            (Some(x), Some(y)) => x.cmp(y),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => self.text.cmp(&other.text),
        }
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal as Debian versions (`1.0` and `1.00` are equal), consistent with `Ord`.
impl PartialEq for VersionKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for VersionKey {}

/// Whether a package whose own control `Version` is `own` is the release
/// upstream announced as `announced`.
///
/// Either the two are the same Debian version, or `own` is `announced` plus a
/// Debian revision: vendor builds on Code OSS (Kiro, VS Code) append one to
/// the version their metadata announces (`0.6.0` announced, `0.6.0-1762210000`
/// in the .deb). `own` without its revision must then be Debian-equal to
/// `announced`, read as a whole (`1.2.3-beta` announced matches
/// `1.2.3-beta-1700000000`), epochs included (an absent epoch is 0). Anything
/// else (`0.6.1-5`, `0.6.0~rc1-5`, `1:0.6.0-5` for `0.6.0`) is another
/// release.
pub fn is_announced(own: &str, announced: &str) -> anyhow::Result<bool> {
    let (own, announced) = (parse(own)?, parse(announced)?);
    if own == announced {
        return Ok(true);
    }
    if own.debian_revision.is_none() {
        return Ok(false);
    }
    // Parsed again from text: what is a revision of `own` may be part of the
    // announced version's upstream part, and the reverse.
    let without_revision = Version { debian_revision: None, ..own }.to_string();
    Ok(parse(&without_revision)? == announced)
}

/// One spelling per Debian version, for store ids: Debian-equal spellings
/// (`0:0.7.45` and `0.7.45`, `1.01` and `1.1`, `1.0-0` and `1.0`) give the
/// same text, so a version upstream writes one way and the .deb another is
/// one package, not two downloaded forever. A zero epoch goes, leading zeros
/// of every number go, and a revision of zeros goes when the upstream part
/// has no hyphen of its own (in `1.2-beta-0` the `-0` is what makes `beta`
/// part of the upstream version). Text that is not a Debian version is kept
/// as it is (the id then simply matches nothing else).
///
/// Written here because `debversion` compares versions but keeps their
/// spelling; the rules are dpkg's (`dpkg --compare-versions` agrees, see the
/// tests).
pub fn canonical(text: &str) -> String {
    if parse(text).is_err() {
        return text.to_owned();
    }
    let (epoch, rest) = match text.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), r),
        _ => (None, text),
    };
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    fn numbers_without_leading_zeros(part: &str) -> String {
        let mut out = String::with_capacity(part.len());
        let mut digits = String::new();
        let flush = |digits: &mut String, out: &mut String| {
            if !digits.is_empty() {
                let trimmed = digits.trim_start_matches('0');
                out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
                digits.clear();
            }
        };
        for c in part.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
            } else {
                flush(&mut digits, &mut out);
                out.push(c);
            }
        }
        flush(&mut digits, &mut out);
        out
    }
    let mut out = String::with_capacity(text.len());
    if let Some(epoch) = epoch {
        let epoch = numbers_without_leading_zeros(epoch);
        if epoch != "0" {
            out.push_str(&epoch);
            out.push(':');
        }
    }
    out.push_str(&numbers_without_leading_zeros(upstream));
    if let Some(revision) = revision {
        let revision = numbers_without_leading_zeros(revision);
        if revision != "0" || upstream.contains('-') {
            out.push('-');
            out.push_str(&revision);
        }
    }
    out
}

/// The version as it appears in a pool file name: without its epoch, as the
/// Debian archive names files (`1:2.0-1` -> `2.0-1`).
pub fn without_epoch(version: &str) -> &str {
    match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_spellings_are_debian_equal_and_one_per_version() {
        for (a, b) in [
            ("0:0.7.45", "0.7.45"),
            ("1.01", "1.1"),
            ("1.0-0", "1.0"),
            ("1.0-00", "1.0"),
            ("00:1.0", "1.0"),
            ("1:2.0-01", "1:2.0-1"),
            ("a01", "a1"),
            ("1.2-beta-0", "1.2-beta-0"),
            ("2.0~rc01-3", "2.0~rc1-3"),
            ("0.6.0-1762210000", "0.6.0-1762210000"),
        ] {
            assert_eq!(canonical(a), b, "{a}");
            assert_eq!(canonical(b), b, "{b} is canonical already");
            // dpkg, the reference: the canonical spelling is the same version.
            let out = std::process::Command::new("dpkg").args(["--compare-versions", a, "eq", b]).status();
            if let Ok(status) = out {
                assert!(status.success(), "dpkg says {a} != {b}");
            }
        }
        // Different versions stay different.
        assert_ne!(canonical("1:2.0"), canonical("2.0"));
        assert_ne!(canonical("1.0-1"), canonical("1.0"));
        assert_ne!(canonical("1.2-beta-0"), canonical("1.2-beta"));
        assert_eq!(canonical("not a version!"), "not a version!");
    }

    /// Pairs whose order dpkg defines (checked with `dpkg --compare-versions`).
    const ORDERED: &[(&str, &str)] = &[
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0+b1"),
        ("1.0", "1.0-1"),
        ("1.0-1", "1.0-2"),
        ("1.0-2", "1.0-10"),
        ("0.9.9", "0.10.1"),
        ("0.7.45", "0.7.100"),
        ("2.0", "1:1.0"),
        ("1:1.0", "2:0.1"),
        ("1.0a", "1.0b"),
        ("1.0", "1.0a"),
        ("1.0.0", "1.0.1"),
        ("1.2.3-0ubuntu1", "1.2.3-1"),
        ("9", "10"),
        ("1.0-1~bpo1", "1.0-1"),
        ("1.0+dfsg", "1.0+dfsg1"),
        ("1.0.", "1.0.a"),
    ];

    #[test]
    fn debian_order_of_tricky_pairs() {
        for (lo, hi) in ORDERED {
            assert_eq!(compare(lo, hi), Ordering::Less, "{lo} < {hi}");
            assert_eq!(compare(hi, lo), Ordering::Greater, "{hi} > {lo}");
            assert!(VersionKey::new(lo) < VersionKey::new(hi), "{lo} < {hi}");
        }
        assert!(VersionKey::new("not a version!") < VersionKey::new("0"));
        assert_eq!(VersionKey::new("1.0"), VersionKey::new("1.00"));
    }

    /// The table itself is checked against dpkg, the reference implementation.
    #[test]
    fn table_agrees_with_dpkg() {
        for (lo, hi) in ORDERED {
            let status = std::process::Command::new("dpkg")
                .args(["--compare-versions", lo, "lt", hi])
                .status()
                .expect("dpkg is required to check the version table");
            assert!(status.success(), "dpkg disagrees: {lo} < {hi}");
        }
    }

    #[test]
    fn equal_versions() {
        assert_eq!(compare("1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare("1.00", "1.0"), Ordering::Equal);
    }

    #[test]
    fn vendor_revisions_of_the_announced_version() {
        for (own, announced) in [
            ("0.6.0-1762210000", "0.6.0"),
            ("1.95.3-1731513102", "1.95.3"),
            ("0.6.0", "0.6.0"),
            ("0.6.00", "0.6.0"),
            ("0:0.6.0-5", "0.6.0"),
            ("1:0.6.0-5", "1:0.6.0"),
            ("1.2.3-beta-1700000000", "1.2.3-beta"),
            ("0.6.0-1", "0.6.0-1"),
        ] {
            assert!(is_announced(own, announced).unwrap(), "{own} is {announced} as built by the vendor");
        }
        for (own, announced) in [
            ("0.6.1-1762210000", "0.6.0"),
            ("0.6.0~rc1-5", "0.6.0"),
            ("1:0.6.0-5", "0.6.0"),
            ("0.6.0-5", "1:0.6.0"),
            ("0.6.0", "0.6.0-1"),
            ("0.6.0-2", "0.6.0-1"),
            ("0.6.0-1-2", "0.6.0"),
            ("0.6", "0.6.0"),
        ] {
            assert!(!is_announced(own, announced).unwrap(), "{own} is not {announced}");
        }
        assert!(is_announced("0.6.0 beta", "0.6.0").unwrap_err().to_string().contains("0.6.0 beta"));
    }

    /// Each accepted pair is one dpkg itself orders as "announced, then the
    /// vendor's build of it" (or as equal): never an older or another release.
    #[test]
    fn accepted_revisions_sort_at_or_after_the_announced_version_in_dpkg() {
        for (own, announced) in [("0.6.0-1762210000", "0.6.0"), ("1.2.3-beta-1700000000", "1.2.3-beta")] {
            let status = std::process::Command::new("dpkg")
                .args(["--compare-versions", own, "ge", announced])
                .status()
                .expect("dpkg is required to check the version table");
            assert!(status.success(), "dpkg: {own} >= {announced}");
        }
    }

    #[test]
    fn epochs_leave_file_names() {
        assert_eq!(without_epoch("1:2.0-1"), "2.0-1");
        assert_eq!(without_epoch("2.0-1"), "2.0-1");
    }

    #[test]
    fn bad_versions_are_named() {
        let err = parse("1.0 beta").unwrap_err().to_string();
        assert!(err.contains("1.0 beta"), "{err}");
    }

    proptest::proptest! {
        /// Sorting with `compare` is a total order consistent with the table's tricky
        /// characters: shuffled input always sorts to the same sequence.
        #[test]
        fn sort_is_deterministic(mut v in proptest::collection::vec("[0-9]{1,2}(\\.[0-9a-z~+]{1,3}){0,3}(-[0-9]{1,2})?", 1..20)) {
            let mut a = v.clone();
            a.sort_by(|x, y| compare(x, y));
            v.reverse();
            v.sort_by(|x, y| compare(x, y));
            for (x, y) in a.iter().zip(v.iter()) {
                proptest::prop_assert_eq!(compare(x, y), Ordering::Equal);
            }
        }
    }
}
